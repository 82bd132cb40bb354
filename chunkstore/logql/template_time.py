"""Go's ``time`` package as LogQL templates see it: ``time.Time``, layouts, durations.

``__timestamp__``, ``now``, ``toDate``, ``date`` and friends pass Go
``time.Time`` values around and format them with Go *layouts* (the reference
time ``Mon Jan 2 15:04:05 MST 2006`` written the way the output should look).
This module ports ``Time.Format``, ``time.ParseInLocation`` and
``time.ParseDuration`` rule for rule. Go's ``Local`` zone is UTC here so that
output does not depend on the host; named zones come from :mod:`zoneinfo`.
Calendar arithmetic is done on day numbers, so every year Go accepts works
(``datetime`` stops at 1..9999; the zero ``time.Time`` is year 1).
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from .template_values import I64_MAX, FuncError, GoInt, Int64, wrap64

__all__ = ["GoTime", "Layout", "Month", "Weekday", "ZERO_TIME", "format_time", "parse_time",
           "load_location", "parse_duration"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July",
           "August", "September", "October", "November", "December")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class Month(GoInt):
    """A Go ``time.Month``: an integer that prints as its English name."""

    __slots__ = ()
    go_type = "time.Month"
    go_stringer = True

    def __str__(self) -> str:
        return _MONTHS[self - 1] if 1 <= self <= 12 else f"%!Month({int(self)})"


class Weekday(GoInt):
    """A Go ``time.Weekday``: an integer (Sunday is 0) that prints as its name."""

    __slots__ = ()
    go_type = "time.Weekday"
    go_stringer = True

    def __str__(self) -> str:
        return _DAYS[self] if 0 <= self <= 6 else f"%!Weekday({int(self)})"


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _zone_at(loc, sec: int) -> tuple[int, str]:
    """(offset seconds, abbreviation) of location ``loc`` at Unix second ``sec``."""
    if loc is None:
        return 0, "UTC"
    if type(loc) is tuple:  # a fixed zone: (name, offset)
        return loc[1], loc[0]
    try:
        dt = datetime.fromtimestamp(sec, loc)
        return int(dt.utcoffset().total_seconds()), dt.tzname() or ""
    except (OverflowError, ValueError, OSError):
        return 0, "UTC"


class GoTime:
    """A Go ``time.Time``: an instant (Unix seconds and nanoseconds) in a location.

    ``loc`` is ``None`` for UTC (which also stands in for Go's ``Local``), a
    ``(name, offset)`` tuple for a fixed zone, or a :class:`zoneinfo.ZoneInfo`.
    """

    __slots__ = ("sec", "nsec", "loc", "offset", "zone")
    go_type = "time.Time"
    go_stringer = True

    def __init__(self, sec: int, nsec: int = 0, loc=None):
        self.sec = sec
        self.nsec = nsec
        self.loc = loc
        self.offset, self.zone = (0, "UTC") if loc is None else _zone_at(loc, sec)

    @classmethod
    def from_unix_ns(cls, ns: int) -> GoTime:
        sec, nsec = divmod(ns, 1_000_000_000)
        return cls(sec, nsec)

    @classmethod
    def date(cls, year, month, day, hour, minute, sec, nsec, loc) -> GoTime:
        """Go's ``time.Date`` for in-range fields: wall clock in ``loc`` to an instant."""
        unix = (_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec)
        if loc is not None:
            off, _ = _zone_at(loc, unix)
            if off:
                off2, _ = _zone_at(loc, unix - off)
                unix -= off if off2 == off else off2
        return cls(unix, nsec, loc)

    def __eq__(self, other) -> bool:
        return (type(other) is GoTime and self.sec == other.sec and self.nsec == other.nsec
                and self.offset == other.offset and self.zone == other.zone)

    def __hash__(self) -> int:
        return hash((self.sec, self.nsec))

    def unix_nano(self) -> Int64:
        return wrap64(self.sec * 1_000_000_000 + self.nsec)

    def fields(self) -> tuple[int, int, int, int, int, int, int, int]:
        """(year, month, day, hour, minute, second, yday, weekday) on the local wall clock."""
        local = self.sec + self.offset
        days, secs = divmod(local, 86400)
        y, m, d = _civil_from_days(days)
        yday = days - _days_from_civil(y, 1, 1) + 1
        return y, m, d, secs // 3600, secs // 60 % 60, secs % 60, yday, (days + 4) % 7

    def format(self, layout: str) -> str:
        return format_time(self, layout)

    def __str__(self) -> str:
        return format_time(self, "2006-01-02 15:04:05.999999999 -0700 MST")

    __repr__ = __str__



# --- layouts: Go's nextStdChunk, as a list of (literal, code) pairs

_STD_PREFIXED = (  # (text, code) tried in this order after the lead character
    ("January", "January"), ("Jan", "Jan"), ("Monday", "Monday"), ("Mon", "Mon"), ("MST", "MST"),
    ("-070000", "-070000"), ("-07:00:00", "-07:00:00"), ("-0700", "-0700"), ("-07:00", "-07:00"),
    ("-07", "-07"), ("Z070000", "Z070000"), ("Z07:00:00", "Z07:00:00"), ("Z0700", "Z0700"),
    ("Z07:00", "Z07:00"), ("Z07", "Z07"),
)


def _next_std(layout: str, i: int):
    """Find the next layout element at or after ``i``: (start, end, code) or None."""
    n = len(layout)
    while i < n:
        c = layout[i]
        if c == "J" and layout.startswith("Jan", i):
            if layout.startswith("January", i):
                return i, i + 7, "January"
            if not (i + 3 < n and "a" <= layout[i + 3] <= "z"):
                return i, i + 3, "Jan"
        elif c == "M" and i + 3 <= n:
            if layout.startswith("Mon", i):
                if layout.startswith("Monday", i):
                    return i, i + 6, "Monday"
                if not (i + 3 < n and "a" <= layout[i + 3] <= "z"):
                    return i, i + 3, "Mon"
            if layout.startswith("MST", i):
                return i, i + 3, "MST"
        elif c == "0":
            if i + 1 < n and "1" <= layout[i + 1] <= "6":
                return i, i + 2, "0" + layout[i + 1]
            if layout.startswith("002", i):
                return i, i + 3, "002"
        elif c == "1":
            if layout.startswith("15", i):
                return i, i + 2, "15"
            return i, i + 1, "1"
        elif c == "2":
            if layout.startswith("2006", i):
                return i, i + 4, "2006"
            return i, i + 1, "2"
        elif c == "_":
            if i + 1 < n and layout[i + 1] == "2":
                if layout.startswith("2006", i + 1):
                    return i + 1, i + 5, "2006"
                return i, i + 2, "_2"
            if layout.startswith("__2", i):
                return i, i + 3, "__2"
        elif c in "345":
            return i, i + 1, c
        elif c == "P" and layout.startswith("PM", i):
            return i, i + 2, "PM"
        elif c == "p" and layout.startswith("pm", i):
            return i, i + 2, "pm"
        elif c in "-Z":
            for text, code in _STD_PREFIXED[5:]:
                if layout.startswith(text, i):
                    return i, i + len(text), code
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            if not (j < n and "0" <= layout[j] <= "9"):
                return i, j, ("." + ch, j - i - 1, c)
        i += 1
    return None


class Layout:
    """A Go layout split once into (literal text, element) pairs, for repeated formatting."""

    __slots__ = ("text", "chunks", "tail")

    def __init__(self, text: str):
        chunks = []
        prev = 0
        while (found := _next_std(text, prev)) is not None:
            start, end, code = found
            chunks.append((text[prev:start], code))
            prev = end
        self.text = text
        self.chunks = tuple(chunks)
        self.tail = text[prev:]


def format_time(t: GoTime, layout: str | Layout) -> str:
    """Go's ``Time.Format``."""
    if type(layout) is not Layout:
        layout = Layout(layout)
    y, mo, d, h, mi, s, yday, wd = t.fields()
    out = []
    for literal, code in layout.chunks:
        out.append(literal)
        out.append(_format_std(code, t, y, mo, d, h, mi, s, yday, wd))
    out.append(layout.tail)
    return "".join(out)


def _pad_int(x: int, width: int) -> str:
    return ("-" + str(-x).zfill(width)) if x < 0 else str(x).zfill(width)


def _format_std(code, t, y, mo, d, h, mi, s, yday, wd) -> str:
    if type(code) is tuple:  # fractional seconds: ('.0' | '.9', digits, separator)
        kind, n, sep = code
        frac = str(t.nsec).zfill(9)[:n]
        if kind == ".9":
            frac = frac.rstrip("0")
            return sep + frac if frac else ""
        return sep + frac
    if code == "2006":
        return _pad_int(y, 4)
    if code == "06":
        return str(y % 100).zfill(2)
    if code == "January":
        return _MONTHS[mo - 1]
    if code == "Jan":
        return _MONTHS[mo - 1][:3]
    if code == "1":
        return str(mo)
    if code == "01":
        return str(mo).zfill(2)
    if code == "Monday":
        return _DAYS[wd]
    if code == "Mon":
        return _DAYS[wd][:3]
    if code == "2":
        return str(d)
    if code == "_2":
        return str(d).rjust(2)
    if code == "02":
        return str(d).zfill(2)
    if code == "__2":
        return str(yday).rjust(3)
    if code == "002":
        return str(yday).zfill(3)
    if code == "15":
        return str(h).zfill(2)
    if code == "3":
        return str(h % 12 or 12)
    if code == "03":
        return str(h % 12 or 12).zfill(2)
    if code == "4":
        return str(mi)
    if code == "04":
        return str(mi).zfill(2)
    if code == "5":
        return str(s)
    if code == "05":
        return str(s).zfill(2)
    if code == "PM":
        return "PM" if h >= 12 else "AM"
    if code == "pm":
        return "pm" if h >= 12 else "am"
    offset = t.offset
    if code == "MST":
        if t.zone:
            return t.zone
        code = "-0700"
    if code[0] == "Z" and offset == 0:
        return "Z"
    zone, absoff, sign = int(offset / 60), offset, "+"
    if zone < 0:
        zone, absoff, sign = -zone, -absoff, "-"
    out = [sign, str(zone // 60).zfill(2)]
    if ":" in code:
        out.append(":")
    if code not in ("-07", "Z07"):
        out.append(str(zone % 60).zfill(2))
    if code.endswith(("0000", ":00:00")):
        if code.endswith(":00:00"):
            out.append(":")
        out.append(str(absoff % 60).zfill(2))
    return "".join(out)


# --- Go's time.Parse (errors only matter as "failed": sprig ignores them)


class BadTime(Exception):
    """``parse_time`` failed (sprig discards Go's message, so none is kept)."""


def _getnum(v: str, fixed: bool, maxd: int = 2) -> tuple[int, str]:
    n = 0
    while n < maxd and n < len(v) and "0" <= v[n] <= "9":
        n += 1
    if n == 0 or (fixed and n < maxd):
        raise BadTime
    return int(v[:n]), v[n:]


def _lookup(tab, v: str) -> tuple[int, str]:
    for i, name in enumerate(tab):
        if len(v) >= len(name) and v[:len(name)].lower() == name.lower():
            return i, v[len(name):]
    raise BadTime


def _skip(v: str, prefix: str) -> str:
    while prefix:
        if prefix[0] == " ":
            if v and v[0] != " ":
                raise BadTime
            prefix = prefix.lstrip(" ")
            v = v.lstrip(" ")
            continue
        if not v or v[0] != prefix[0]:
            raise BadTime
        prefix, v = prefix[1:], v[1:]
    return v


def _parse_nanos(v: str, nbytes: int) -> int:
    if v[0] not in ".,":
        raise BadTime
    digits = v[1:min(nbytes, 10)]
    if not digits.isascii() or not digits.isdigit():
        raise BadTime
    return int(digits) * 10 ** (10 - min(nbytes, 10))


def _tz_abbrev_len(v: str) -> int:
    if len(v) < 3:
        return 0
    if v[:4] in ("ChST", "MeST"):
        return 4
    if v[:3] == "GMT":
        rest = v[3:]
        if rest[:1] in ("+", "-") and rest[1:2].isdigit():
            n = 2
            while n < len(rest) and rest[n].isdigit():
                n += 1
            return 3 + n if -23 <= int(rest[:n]) <= 23 else 3
        return 3
    n = 0
    while n < 6 and n < len(v) and "A" <= v[n] <= "Z":
        n += 1
    if n == 3 or (n == 4 and (v[3] == "T" or v[:4] == "WITA")) or (n == 5 and v[4] == "T"):
        return n
    return 0


def parse_time(layout: str, value: str, loc) -> GoTime:
    """Go's ``time.ParseInLocation``; raises :class:`BadTime` where Go returns an error."""
    year, month, day, yday, hour, minute, sec, nsec = 0, -1, -1, -1, 0, 0, 0, 0
    am = pm = False
    z = False
    zone_offset, zone_name = None, ""
    prev = 0
    while True:
        found = _next_std(layout, prev)
        if found is None:
            if _skip(value, layout[prev:]):
                raise BadTime  # extra text
            break
        start, end, code = found
        value = _skip(value, layout[prev:start])
        prev = end
        if type(code) is tuple:
            kind, n, _sep = code
            if kind == ".0":
                if len(value) < n + 1:
                    raise BadTime
                nsec, value = _parse_nanos(value, n + 1), value[n + 1:]
            elif len(value) >= 2 and value[0] in ".," and "0" <= value[1] <= "9":
                i = 1
                while i < len(value) and "0" <= value[i] <= "9":
                    i += 1
                nsec, value = _parse_nanos(value, i), value[i:]
        elif code == "06":
            if len(value) < 2 or not value[:2].isdigit() or not value[:2].isascii():
                raise BadTime
            year = int(value[:2]) + (1900 if int(value[:2]) >= 69 else 2000)
            value = value[2:]
        elif code == "2006":
            if len(value) < 4 or not value[:4].isascii() or not value[:4].isdigit():
                raise BadTime
            year, value = int(value[:4]), value[4:]
        elif code in ("Jan", "January"):
            month, value = _lookup([m[:3] if code == "Jan" else m for m in _MONTHS], value)
            month += 1
        elif code in ("1", "01"):
            month, value = _getnum(value, code == "01")
            if not 1 <= month <= 12:
                raise BadTime
        elif code in ("Mon", "Monday"):
            _, value = _lookup([x[:3] if code == "Mon" else x for x in _DAYS], value)
        elif code in ("2", "_2", "02"):
            if code == "_2" and value[:1] == " ":
                value = value[1:]
            day, value = _getnum(value, code == "02")
        elif code in ("__2", "002"):
            if code == "__2":
                value = value[2:] if value[:2] == "  " else value[1:] if value[:1] == " " else value
            yday, value = _getnum(value, code == "002", 3)
        elif code == "15":
            hour, value = _getnum(value, False)
            if hour >= 24:
                raise BadTime
        elif code in ("3", "03"):
            hour, value = _getnum(value, code == "03")
            if hour > 12:
                raise BadTime
        elif code in ("4", "04"):
            minute, value = _getnum(value, code == "04")
            if minute >= 60:
                raise BadTime
        elif code in ("5", "05"):
            sec, value = _getnum(value, code == "05")
            if sec >= 60:
                raise BadTime
            if len(value) >= 2 and value[0] in ".," and "0" <= value[1] <= "9":
                nxt = _next_std(layout, prev)
                if not (nxt is not None and type(nxt[2]) is tuple and nxt[0] == prev):
                    i = 2
                    while i < len(value) and "0" <= value[i] <= "9":
                        i += 1
                    nsec, value = _parse_nanos(value, i), value[i:]
        elif code in ("PM", "pm"):
            p = value[:2]
            if p == code or p == ("AM" if code == "PM" else "am"):
                pm, am = p in ("PM", "pm"), p in ("AM", "am")
            else:
                raise BadTime
            value = value[2:]
        elif code == "MST":
            if value[:3] == "UTC":
                z, value = True, value[3:]
            else:
                n = _tz_abbrev_len(value)
                if not n:
                    raise BadTime
                zone_name, value = value[:n], value[n:]
        else:  # numeric zones
            if code in ("Z0700", "Z07", "Z07:00") and value[:1] == "Z":
                z, value = True, value[1:]
                continue
            colon = ":" in code
            width = {"-07": 3, "Z07": 3, "-0700": 5, "Z0700": 5, "-07:00": 6, "Z07:00": 6,
                     "-070000": 7, "Z070000": 7, "-07:00:00": 9, "Z07:00:00": 9}[code]
            if (len(value) < width or (colon and value[3] != ":")
                    or (width == 9 and value[6] != ":")):
                raise BadTime
            part = value[:width]
            value = value[width:]
            digits = part[1:].replace(":", "")
            if not digits.isascii() or not digits.isdigit():
                raise BadTime
            hh, mm, ss = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
            if part[0] not in "+-":
                raise BadTime
            zone_offset = (hh * 3600 + mm * 60 + ss) * (-1 if part[0] == "-" else 1)
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    if yday >= 0:
        if month < 0:
            days = _days_from_civil(year, 1, 1) + yday - 1
            y2, month, d2 = _civil_from_days(days)
            if y2 != year or yday < 1:
                raise BadTime
            if day >= 0 and day != d2:
                raise BadTime
            day = d2
        elif _days_from_civil(year, month, max(day, 1)) - _days_from_civil(year, 1, 1) + 1 != yday:
            raise BadTime
    else:
        month = 1 if month < 0 else month
        day = 1 if day < 0 else day
    if day < 1 or day > _days_in(month, year):
        raise BadTime
    if z:
        return GoTime.date(year, month, day, hour, minute, sec, nsec, None)
    if zone_offset is not None:
        t = GoTime.date(year, month, day, hour, minute, sec, nsec, None)
        t = GoTime(t.sec - zone_offset, nsec)
        off, name = _zone_at(loc, t.sec)
        if off == zone_offset and (not zone_name or name == zone_name):
            return GoTime(t.sec, nsec, loc)
        return GoTime(t.sec, nsec, (zone_name, zone_offset))
    if zone_name:
        t = GoTime.date(year, month, day, hour, minute, sec, nsec, None)
        for guess in (t.sec, t.sec - 3600 * 12, t.sec + 3600 * 12):
            off, name = _zone_at(loc, guess)
            if name == zone_name:
                return GoTime(t.sec - off, nsec, loc)
        offset = 0
        if len(zone_name) > 3 and zone_name[:3] == "GMT":
            offset = int(zone_name[3:]) * 3600
        return GoTime(t.sec - offset, nsec, (zone_name, offset))
    return GoTime.date(year, month, day, hour, minute, sec, nsec, loc)


def load_location(name: str):
    """Go's ``time.LoadLocation``, with ``Local`` meaning UTC; unknown names give UTC."""
    if name in ("", "UTC", "Local"):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except Exception:  # invalid key, missing tzdata: Loki falls back to UTC
        return None


# --- Go's time.ParseDuration

_DURATION_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def _time_quote(s: str) -> str:
    out = ['"']
    for c in s:
        if c >= "\x80" or c < " ":
            out.extend(f"\\x{b:02x}" for b in c.encode())
        else:
            out.append("\\" + c if c in '"\\' else c)
    out.append('"')
    return "".join(out)


def _invalid_duration(orig: str) -> FuncError:
    return FuncError("time: invalid duration " + _time_quote(orig))


def parse_duration(orig: str) -> int:
    """Nanoseconds of a Go duration string; raises :class:`FuncError` with Go's message."""
    s = orig
    neg = False
    if s and s[0] in "+-":
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise _invalid_duration(orig)
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise _invalid_duration(orig)
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        v = int(s[:i] or 0)
        pre = i > 0
        s = s[i:]
        f, scale, post = 0, 1, False
        if s[:1] == ".":
            s = s[1:]
            i = 0
            while i < len(s) and "0" <= s[i] <= "9":
                if f < (1 << 63) // 10:  # Go stops accumulating on overflow
                    f, scale = f * 10 + ord(s[i]) - 48, scale * 10
                i += 1
            post = i > 0
            s = s[i:]
        if not pre and not post:
            raise _invalid_duration(orig)
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise FuncError("time: missing unit in duration " + _time_quote(orig))
        unit = _DURATION_UNITS.get(s[:i])
        if unit is None:
            raise FuncError(
                f"time: unknown unit {_time_quote(s[:i])} in duration {_time_quote(orig)}")
        s = s[i:]
        if v > (1 << 63) // unit:
            raise _invalid_duration(orig)
        v *= unit
        if f:
            v += int(float(f) * (float(unit) / scale))
            if v > 1 << 63:
                raise _invalid_duration(orig)
        total += v
        if total > 1 << 63:
            raise _invalid_duration(orig)
    if not neg and total > I64_MAX:
        raise _invalid_duration(orig)
    return -total if neg else total


#: Go's zero ``time.Time`` (January 1, year 1, UTC): what ``toDate`` returns on failure.
ZERO_TIME = GoTime(-62135596800)
