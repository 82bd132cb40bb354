"""Terminal rendering for the command line: times, colours, tables, charts, progress.

Everything here degrades to plain text: ``rich`` (the ``cli`` extra) is used
for tables and progress bars when it is importable *and* the output is a
terminal; otherwise output is plain, aligned, uncoloured text that pipes and
scripts can read.  Per-line log output never goes through ``rich`` (its
markup costs tens of microseconds a line); colour there is a few ANSI codes.

Time arguments (``--from``, ``--to``) accept, in this order of detection:

* ``now``, ``now-1h``, ``now+30m`` (any LogQL duration after the sign);
* a number: with a fraction it is Unix seconds (``1704067200.25``); an
  integer is read by magnitude: below 1e11 seconds, below 1e14
  milliseconds, below 1e17 microseconds, otherwise nanoseconds (so the
  ``ts`` of ``--output jsonl`` can be pasted back as is);
* RFC 3339 (``2024-01-01T00:00:00Z``, ``2024-01-01T01:00:00.5+01:00``), with a
  space allowed for ``T``, a missing zone meaning UTC, and a bare date
  (``2024-01-01``) meaning its midnight UTC.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from chunkstore.timeutil import I64_MAX, I64_MIN, format_ns

__all__ = [
    "TimeParseError", "parse_time", "parse_duration", "parse_timestamp_text", "number_to_ns",
    "format_ns", "format_ts_short", "format_ts_ms", "format_duration_ns", "format_bytes",
    "format_count",
    "format_labels", "Palette", "use_color", "is_tty", "have_rich", "print_table",
    "sparkline", "bar_chart", "Progress", "term_width",
]

_NS = 1_000_000_000


class TimeParseError(ValueError):
    """A time or duration argument could not be read (the message lists what is accepted)."""


# ---------------------------------------------------------------------------
# durations and times

def parse_duration(text: str) -> int:
    """A duration (``15m``, ``1h30m``, ``2d``, ``1.5h``, ``90s``) in nanoseconds, > 0."""
    from chunkstore.logql.durations import parse_duration_ns

    s = text.strip()
    try:
        ns = parse_duration_ns(s)
    except ValueError:
        raise TimeParseError(
            f"invalid duration {text!r} (examples: 30s, 15m, 1h30m, 2d)") from None
    if ns <= 0:
        raise TimeParseError(f"invalid duration {text!r}: must be positive")
    return ns


def number_to_ns(text: str) -> int:
    """Unix time from a number string: seconds with a fraction, else s/ms/us/ns by magnitude.

    Integers below 1e11 are seconds (up to year 5138), below 1e14
    milliseconds, below 1e17 microseconds, anything larger nanoseconds.
    Raises ``TimeParseError`` when the text is not a number.
    """
    s = text.strip()
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s):
        raise TimeParseError(f"not a number: {text!r}")
    if re.fullmatch(r"[+-]?\d+", s):
        v = int(s)
        a = abs(v)
        if a < 10**11:
            ns = v * _NS
        elif a < 10**14:
            ns = v * 1_000_000
        elif a < 10**17:
            ns = v * 1_000
        else:
            ns = v
    else:
        try:
            ns = int(Decimal(s) * _NS)
        except InvalidOperation:  # pragma: no cover - the regex rules it out
            raise TimeParseError(f"not a number: {text!r}") from None
    if not I64_MIN <= ns <= I64_MAX:
        raise TimeParseError(f"time {text!r} is outside the int64 nanosecond range")
    return ns


_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?)?"
    r"\s*(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?"
)


def _rfc3339_to_ns(text: str) -> int | None:
    m = _RFC3339.fullmatch(text.strip())
    if not m:
        return None
    try:
        y, mo, d = (int(x) for x in m["date"].split("-"))
        dt = datetime(y, mo, d, int(m["h"] or 0), int(m["m"] or 0), int(m["s"] or 0),
                      tzinfo=timezone.utc)
    except ValueError as exc:
        raise TimeParseError(f"invalid time {text!r}: {exc}") from None
    secs = int(dt.timestamp())
    tz = m["tz"]
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    frac = m["frac"] or ""
    return secs * _NS + int(frac.ljust(9, "0")) if frac else secs * _NS


def parse_time(text: str, now_ns: int | None = None) -> int:
    """A time argument (``--from``/``--to``) in Unix nanoseconds; see the module docstring."""
    s = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    low = s.lower()
    if low.startswith("now"):
        rest = low[3:].strip()
        if not rest:
            return now
        if rest[0] in "+-":
            d = parse_duration(rest[1:].strip())
            return now + d if rest[0] == "+" else now - d
        raise TimeParseError(f"invalid time {text!r} (examples: now, now-1h, now-15m)")
    try:
        return number_to_ns(s)
    except TimeParseError as exc:
        if "range" in str(exc):
            raise
    ns = _rfc3339_to_ns(s)
    if ns is not None:
        return ns
    raise TimeParseError(
        f"invalid time {text!r} (accepted: RFC 3339 like 2024-01-01T10:00:00Z, Unix seconds "
        f"like 1704103200.5, Unix nanoseconds, or relative like now-1h)")


_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_SYSLOG = re.compile(r"(?P<mon>[A-Za-z]{3})\s+(?P<d>\d{1,2})\s+"
                     r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
                     r"(?:\.(?P<frac>\d{1,9}))?(?:\s+(?P<y>\d{4}))?")
_APACHE = re.compile(r"\[?(?P<d>\d{2})/(?P<mon>[A-Za-z]{3})/(?P<y>\d{4}):(?P<h>\d{2}):(?P<m>\d{2})"
                     r":(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?(?:\s+(?P<tz>[+-]\d{4}))?\]?")
_SLASHED = re.compile(r"(?P<y>\d{4})/(?P<mo>\d{2})/(?P<d>\d{2})[ T](?P<h>\d{2}):(?P<m>\d{2}):"
                      r"(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?")

#: Names accepted by ``--ts-format`` besides strptime patterns.
NAMED_FORMATS = ("rfc3339", "unix", "unix_ms", "unix_us", "unix_ns")


def _fields_to_ns(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str | None,
                  tz: str | None, text: str) -> int:
    try:
        dt = datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
    except ValueError as exc:
        raise TimeParseError(f"invalid timestamp {text!r}: {exc}") from None
    secs = int(dt.timestamp())
    if tz:
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)
    return secs * _NS + (int(frac.ljust(9, "0")) if frac else 0)


def parse_timestamp_text(text: str, fmt: str | None = None, *, year: int | None = None,
                         now_ns: int | None = None) -> int:
    """A log line's timestamp text in Unix nanoseconds (for ``chunkstore ingest``).

    ``fmt`` is a strptime pattern (``%Y-%m-%d %H:%M:%S``; a naive result
    means UTC) or one of ``rfc3339``, ``unix``, ``unix_ms``, ``unix_us``,
    ``unix_ns``.  Without ``fmt`` the text is recognised: Unix numbers
    (s/ms/us/ns by magnitude), RFC 3339, ``2024/01/02 15:04:05``, syslog
    ``Jan  2 15:04:05`` (no year: ``year``, default the current one, or the
    year before when that would be more than a day in the future) and
    Apache/nginx ``02/Jan/2024:15:04:05 +0000``.  Raises ``TimeParseError``.
    """
    s = text.strip()
    if fmt is not None:
        f = fmt.lower()
        if f in ("unix", "unix_ms", "unix_us", "unix_ns"):
            mult = {"unix": _NS, "unix_ms": 1_000_000, "unix_us": 1_000, "unix_ns": 1}[f]
            try:
                return int(Decimal(s) * mult)
            except InvalidOperation:
                raise TimeParseError(f"timestamp {text!r} is not a number ({fmt})") from None
        if f == "rfc3339":
            ns = _rfc3339_to_ns(s)
            if ns is None:
                raise TimeParseError(f"timestamp {text!r} is not RFC 3339")
            return ns
        try:
            dt = datetime.strptime(s, fmt)
        except ValueError as exc:
            raise TimeParseError(f"timestamp {text!r} does not match {fmt!r}: {exc}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
            if "%Y" not in fmt and "%y" not in fmt:
                dt = dt.replace(year=_guess_year(dt, year, now_ns))
        secs = int(dt.replace(microsecond=0).timestamp())
        return secs * _NS + dt.microsecond * 1000
    try:
        return number_to_ns(s)
    except TimeParseError:
        pass
    ns = _rfc3339_to_ns(s)
    if ns is not None:
        return ns
    m = _SLASHED.fullmatch(s)
    if m:
        return _fields_to_ns(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["m"]),
                             int(m["s"]), m["frac"], None, text)
    m = _APACHE.fullmatch(s)
    if m and m["mon"].lower() in _MONTHS:
        return _fields_to_ns(int(m["y"]), _MONTHS[m["mon"].lower()], int(m["d"]), int(m["h"]),
                             int(m["m"]), int(m["s"]), m["frac"], m["tz"], text)
    m = _SYSLOG.fullmatch(s)
    if m and m["mon"].lower() in _MONTHS:
        mo = _MONTHS[m["mon"].lower()]
        if m["y"]:
            y = int(m["y"])
        else:
            probe = datetime(2000, mo, min(int(m["d"]), 28), tzinfo=timezone.utc)
            y = _guess_year(probe, year, now_ns)
        return _fields_to_ns(y, mo, int(m["d"]), int(m["h"]), int(m["m"]), int(m["s"]),
                             m["frac"], None, text)
    raise TimeParseError(f"unrecognised timestamp {text!r} (give --ts-format)")


def _guess_year(dt: datetime, year: int | None, now_ns: int | None) -> int:
    if year is not None:
        return year
    now = datetime.fromtimestamp((time.time_ns() if now_ns is None else now_ns) / _NS,
                                 tz=timezone.utc)
    try:
        candidate = dt.replace(year=now.year)
    except ValueError:  # 29 February
        return now.year
    if (candidate - now).total_seconds() > 86400:
        return now.year - 1
    return now.year


# ---------------------------------------------------------------------------
# formatting

def format_ts_short(ts: int) -> str:
    """``2024-01-01T10:00:00Z`` (seconds precision, UTC) for ranges and axes."""
    try:
        return datetime.fromtimestamp(ts // _NS, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return str(ts)


def format_ts_ms(ts: int) -> str:
    """``2024-01-01T10:00:00.123Z`` (milliseconds, UTC): the text output's timestamps."""
    try:
        dt = datetime.fromtimestamp(ts // _NS, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return str(ts)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts % _NS // 1_000_000:03d}Z"


def format_duration_ns(ns: int) -> str:
    """A short human duration: ``5m``, ``1h30m``, ``250ms``, ``2d3h``."""
    if ns <= 0:
        return "0s"
    if ns < _NS:
        if ns % 1_000_000 == 0:
            return f"{ns // 1_000_000}ms"
        return f"{ns / 1_000_000:g}ms"
    secs = ns // _NS
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out or "0s"


def format_bytes(n: int | float) -> str:
    """``11.2 MiB`` style sizes (powers of 1024)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def format_count(n: int) -> str:
    return f"{n:,}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels) -> str:
    """``{app="api", env="prod"}`` with names sorted and values escaped as LogQL strings."""
    return "{" + ", ".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items())) + "}"


# ---------------------------------------------------------------------------
# terminal, colour

def is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_color(mode: str, stream) -> bool:
    """Whether to colour ``stream``: ``always``, ``never`` or ``auto`` (TTY, no ``NO_COLOR``)."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return is_tty(stream) and os.environ.get("TERM") != "dumb"


def term_width(default: int = 100) -> int:
    return max(40, shutil.get_terminal_size((default, 24)).columns)


def unicode_ok(stream) -> bool:
    enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return enc in ("utf8", "utf_8")


class Palette:
    """ANSI styles, or identity functions when colour is off."""

    CODES = {
        "dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33", "blue": "34",
        "magenta": "35", "cyan": "36", "grey": "90", "match": "1;31",
        "bold_red": "1;31", "bold_yellow": "1;33", "bold_cyan": "1;36",
    }

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not text:
            return text
        return f"\x1b[{self.CODES[style]}m{text}\x1b[0m"


_LEVEL = re.compile(
    r'(?:level|lvl|severity)[=:]\s*"?(?P<a>[A-Za-z]+)|"(?:level|lvl|severity)"\s*:\s*"(?P<b>[A-Za-z]+)"'
    r"|\b(?P<c>ERROR|WARN(?:ING)?|CRIT(?:ICAL)?|FATAL|PANIC|error|fatal|panic)\b")
_LEVEL_STYLE = {"err": "red", "fat": "bold_red", "cri": "bold_red", "pan": "bold_red",
                "eme": "bold_red", "ale": "bold_red", "war": "yellow", "deb": "grey",
                "tra": "grey"}


def level_style(line: str) -> str | None:
    """The colour of a line by its log level (``level=error`` → red), or None."""
    m = _LEVEL.search(line, 0, 400)
    if not m:
        return None
    word = (m["a"] or m["b"] or m["c"] or "").lower()
    return _LEVEL_STYLE.get(word[:3])


def highlight(line: str, needles: list[str], pal: Palette, base: str | None) -> str:
    """``line`` with every occurrence of a needle in bold red (grep --color), else ``base``."""
    if not pal.enabled:
        return line
    if needles:
        pattern = "|".join(re.escape(n) for n in sorted(set(needles), key=len, reverse=True) if n)
        if pattern:
            parts = []
            pos = 0
            for m in re.finditer(pattern, line):
                if m.start() > pos:
                    parts.append(pal(line[pos:m.start()], base) if base else line[pos:m.start()])
                parts.append(pal(m.group(0), "match"))
                pos = m.end()
            if parts:
                tail = line[pos:]
                parts.append(pal(tail, base) if base else tail)
                return "".join(parts)
    return pal(line, base) if base else line


# ---------------------------------------------------------------------------
# tables

def have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def print_table(headers: list[str], rows: list[list], out, *, align: str | None = None,
                title: str | None = None, color: bool = False) -> None:
    """A table: ``rich`` on a colour terminal, else plain columns separated by two spaces.

    ``align`` is one letter per column (``l`` or ``r``); by default columns
    whose values are all numbers are right-aligned.  Cells are ``str()``-ed.
    """
    cells = [["" if c is None else str(c) for c in r] for r in rows]
    if align is None:
        align = "".join(
            "r" if cells and all(_numeric(r[i]) for r in cells if r[i]) else "l"
            for i in range(len(headers)))
    if color and have_rich():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left",
                      header_style="bold", pad_edge=False)
        for h, a in zip(headers, align, strict=True):
            table.add_column(h, justify="right" if a == "r" else "left", overflow="fold")
        for r in cells:
            table.add_row(*r)
        Console(file=out, force_terminal=True, width=term_width(),
                highlight=False).print(table)
        return
    if title:
        out.write(title + "\n")
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def fmt(r):
        parts = []
        for i, c in enumerate(r):
            last = i == len(r) - 1
            if align[i] == "r":
                parts.append(c.rjust(widths[i]))
            else:
                parts.append(c if last else c.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out.write(fmt(headers) + "\n")
    for r in cells:
        out.write(fmt(r) + "\n")


def _numeric(s: str) -> bool:
    s = s.replace(",", "").replace("x", "").replace("%", "").strip()
    for unit in (" B", " KiB", " MiB", " GiB", " TiB"):
        if s.endswith(unit):
            s = s[: -len(unit)]
    try:
        float(s)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# charts

_SPARKS = "▁▂▃▄▅▆▇█"
_ASCII_SPARKS = "_.-:=+*#"


def sparkline(values: list[float], *, ascii_only: bool = False, width: int | None = None) -> str:
    """One character per value (resampled to ``width`` by max), scaled min..max."""
    vals = [v for v in values if v == v]  # drop NaN for scaling
    if not values:
        return ""
    if width is not None and len(values) > width:
        values = _resample(values, width)
    chars = _ASCII_SPARKS if ascii_only else _SPARKS
    lo = min(vals) if vals else 0.0
    hi = max(vals) if vals else 0.0
    span = hi - lo
    out = []
    for v in values:
        if v != v:
            out.append(" ")
        elif span == 0:
            out.append(chars[0] if hi == 0 else chars[len(chars) // 2])
        else:
            out.append(chars[min(len(chars) - 1, int((v - lo) / span * (len(chars) - 1) + 0.5))])
    return "".join(out)


def _resample(values: list[float], width: int) -> list[float]:
    n = len(values)
    out = []
    for i in range(width):
        a, b = i * n // width, max(i * n // width + 1, (i + 1) * n // width)
        out.append(max(values[a:b]))
    return out


def bar_chart(counts: list[int], *, height: int = 6, ascii_only: bool = False) -> list[str]:
    """Rows (top first) of a vertical bar chart, one column per count, eighth-block resolution."""
    top = max(counts) if counts else 0
    if top == 0:
        return [" " * len(counts)] * 1
    levels = [c / top * height * 8 for c in counts]
    rows = []
    for row in range(height - 1, -1, -1):
        line = []
        for lv in levels:
            fill = lv - row * 8
            if fill >= 8:
                line.append("#" if ascii_only else "█")
            elif fill > 0:
                if ascii_only:
                    line.append("#" if fill >= 4 else ".")
                else:
                    line.append(_SPARKS[max(0, int(fill) - 1)])
            else:
                line.append(" ")
        rows.append("".join(line))
    # a non-zero bucket always shows at least a sliver
    if not ascii_only:
        last = list(rows[-1])
        for i, c in enumerate(counts):
            if c and last[i] == " ":
                last[i] = "▁"
        rows[-1] = "".join(last)
    return rows


# ---------------------------------------------------------------------------
# progress

class Progress:
    """A progress display for one file: bytes done of total, lines and lines/s.

    ``rich`` progress bar when importable and ``stream`` is a terminal; a
    plain one-line ``\\r`` display on a terminal without rich; nothing when
    ``stream`` is not a terminal (logs and CI stay clean).
    """

    def __init__(self, label: str, total: int | None, stream=None, *, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.lines = 0
        self.done = 0
        self.t0 = time.monotonic()
        self._last = 0.0
        self._rich = None
        self._task = None
        self.active = enabled and is_tty(self.stream)
        if self.active and have_rich():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RP

            self._rich = RP(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TextColumn("{task.fields[lines]} lines, {task.fields[rate]} lines/s"),
                TimeRemainingColumn(),
                console=Console(file=self.stream), transient=True,
            )
            self._rich.start()
            self._task = self._rich.add_task(label, total=total, lines="0", rate="0")

    def update(self, done_bytes: int, lines: int) -> None:
        self.done, self.lines = done_bytes, lines
        if not self.active:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        rate = lines / max(now - self.t0, 1e-9)
        if self._rich is not None:
            self._rich.update(self._task, completed=done_bytes, lines=format_count(lines),
                              rate=format_count(int(rate)))
        else:
            pct = f"{done_bytes * 100 // self.total:3d}%  " if self.total else ""
            self.stream.write(f"\r{self.label}  {pct}{format_bytes(done_bytes)}  "
                              f"{format_count(lines)} lines  {format_count(int(rate))} lines/s"
                              f"\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if not self.active:
            return
        if self._rich is not None:
            self._rich.stop()
        else:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.active = False
