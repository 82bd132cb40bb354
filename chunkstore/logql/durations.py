"""Duration and byte-size literals exactly as Loki reads them.

LogQL borrows three unit grammars from Go libraries, and a query means
something different if we are even slightly off, so each is ported rule for
rule rather than approximated with a regular expression:

* :func:`parse_prometheus_duration_ns` is Prometheus ``model.ParseDuration``:
  units ``y w d h m s ms`` in strictly descending order, each at most once,
  integers only, no sign, ``"0"`` allowed without a unit. Range selectors
  (``[5m]``) use only this form.
* :func:`parse_go_duration_ns` is Go ``time.ParseDuration``: an optional sign,
  then any sequence of decimal numbers (fractions allowed) with units ``ns us
  µs μs ms s m h``; no ``d``/``w``/``y``.
* :func:`parse_duration_ns` is what a LogQL ``DURATION`` token means (label
  filters such as ``latency > 1.5s`` and ``offset``): Prometheus first, Go as
  the fallback, so both ``1d`` and ``-1.5h`` are accepted.
* :func:`parse_bytes` is go-humanize ``ParseBytes`` (``10MB``, ``1KiB``,
  ``5 B``, ``1,000kb``): SI units are powers of 1000, IEC units (``KiB``)
  powers of 1024, case-insensitive, computed in float64 and truncated.

All durations are returned as integer nanoseconds (Go's ``time.Duration``) and
sizes as integer bytes. Every parser raises :class:`ValueError` with a message
naming the offending text; the LogQL lexer turns that into a ``QueryError``.

:func:`format_duration` and :func:`format_range` are the inverse used by the
printer: they produce text that the matching parser reads back to the same
integer.
"""

from __future__ import annotations

__all__ = [
    "parse_duration_ns",
    "parse_prometheus_duration_ns",
    "parse_go_duration_ns",
    "parse_bytes",
    "format_duration",
    "format_range",
    "format_bytes",
]

_NS = 1
_US = 1_000
_MS = 1_000_000
_S = 1_000_000_000
_M = 60 * _S
_H = 60 * _M
_D = 24 * _H

# Prometheus: unit -> (position, multiplier). Positions force the order
# y > w > d > h > m > s > ms, so "1m1d" (a minute and a day? a month?) fails.
_PROM_UNITS = {
    "y": (1, 365 * _D),
    "w": (2, 7 * _D),
    "d": (3, _D),
    "h": (4, _H),
    "m": (5, _M),
    "s": (6, _S),
    "ms": (7, _MS),
}

_GO_UNITS = {
    "ns": _NS,
    "us": _US,
    "\u00b5s": _US,  # MICRO SIGN
    "\u03bcs": _US,  # GREEK SMALL LETTER MU
    "ms": _MS,
    "s": _S,
    "m": _M,
    "h": _H,
}

_INT64_MAX = (1 << 63) - 1


def _is_digit(ch: str) -> bool:
    # Go compares bytes against '0'..'9'; str.isdigit() would also accept
    # other scripts' digits and superscripts.
    return "0" <= ch <= "9"


def parse_prometheus_duration_ns(text: str) -> int:
    """Parse a Prometheus duration (``1h30m``, ``5m``, ``1d``, ``2w``, ``1y``).

    Returns integer nanoseconds (never negative). Raises ValueError for an
    empty string, a sign, a fraction, an unknown unit, units out of order or
    repeated, or a value beyond the int64 nanosecond range (~292 years).
    """
    if text == "0":
        return 0
    if text == "":
        raise ValueError("empty duration string")
    s = text
    total = 0
    last_pos = 0
    while s:
        if not _is_digit(s[0]):
            raise ValueError(f"not a valid duration string: {_go_quote(text)}")
        i = 0
        while i < len(s) and _is_digit(s[i]):
            i += 1
        value = int(s[:i])
        if value > (1 << 64) - 1:  # strconv.ParseUint overflow
            raise ValueError(f"not a valid duration string: {_go_quote(text)}")
        s = s[i:]
        i = 0
        while i < len(s) and not _is_digit(s[i]):
            i += 1
        if i == 0:
            raise ValueError(f"not a valid duration string: {_go_quote(text)}")
        unit, s = s[:i], s[i:]
        if unit not in _PROM_UNITS:
            raise ValueError(f"unknown unit {_go_quote(unit)} in duration {_go_quote(text)}")
        pos, mult = _PROM_UNITS[unit]
        if pos <= last_pos:
            raise ValueError(f"not a valid duration string: {_go_quote(text)}")
        last_pos = pos
        if value > (1 << 63) // mult:
            raise ValueError("duration out of range")
        total += value * mult
        if total > _INT64_MAX:
            raise ValueError("duration out of range")
    return total


def _leading_int(s: str) -> tuple[int, str]:
    x = 0
    i = 0
    while i < len(s) and _is_digit(s[i]):
        if x > (1 << 63) // 10:
            raise ValueError("bad [0-9]*")
        x = x * 10 + ord(s[i]) - 48
        if x > 1 << 63:
            raise ValueError("bad [0-9]*")
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    # Digits past int64 precision are consumed but ignored, as Go does.
    x = 0
    scale = 1.0
    overflow = False
    i = 0
    while i < len(s) and _is_digit(s[i]):
        if not overflow:
            if x > _INT64_MAX // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 48
                if y > 1 << 63:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration_ns(text: str) -> int:
    """Parse a Go duration (``300ms``, ``-1.5h``, ``2h45m``, ``1µs``).

    Returns integer nanoseconds, negative when the text starts with ``-``.
    Fractions are converted through float64 exactly as Go does, so
    ``0.1s`` is 100000000 ns. Raises ValueError naming the text otherwise.
    """
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError(f"time: invalid duration {_go_quote(text)}")
    total = 0
    while s:
        if not (s[0] == "." or _is_digit(s[0])):
            raise ValueError(f"time: invalid duration {_go_quote(text)}")
        before = len(s)
        try:
            v, s = _leading_int(s)
        except ValueError:
            raise ValueError(f"time: invalid duration {_go_quote(text)}") from None
        pre = before != len(s)
        post = False
        f, scale = 0, 1.0
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise ValueError(f"time: invalid duration {_go_quote(text)}")
        i = 0
        while i < len(s) and not (s[i] == "." or _is_digit(s[i])):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_go_quote(text)}")
        unit, s = s[:i], s[i:]
        if unit not in _GO_UNITS:
            raise ValueError(f"time: unknown unit {_go_quote(unit)} in duration {_go_quote(text)}")
        mult = _GO_UNITS[unit]
        if v > (1 << 63) // mult:
            raise ValueError(f"time: invalid duration {_go_quote(text)}")
        v *= mult
        if f > 0:
            # Go: uint64(float64(f) * (float64(unit) / scale)), truncating.
            v += int(float(f) * (float(mult) / scale))
            if v > 1 << 63:
                raise ValueError(f"time: invalid duration {_go_quote(text)}")
        total += v
        if total > 1 << 63:
            raise ValueError(f"time: invalid duration {_go_quote(text)}")
    if neg:
        return -total
    if total > _INT64_MAX:
        raise ValueError(f"time: invalid duration {_go_quote(text)}")
    return total


def parse_duration_ns(text: str) -> int:
    """Parse a LogQL duration literal: Prometheus syntax first, then Go syntax.

    This is the meaning of a ``DURATION`` token in label filters
    (``latency > 250ms``) and after ``offset``. Returns integer nanoseconds.
    Raises ValueError with Go's message when neither syntax accepts the text.
    """
    try:
        return parse_prometheus_duration_ns(text)
    except ValueError:
        return parse_go_duration_ns(text)


_SI = 1000
_IEC = 1024
_BYTE_UNITS = {
    "b": 1,
    "kib": _IEC,
    "kb": _SI,
    "mib": _IEC**2,
    "mb": _SI**2,
    "gib": _IEC**3,
    "gb": _SI**3,
    "tib": _IEC**4,
    "tb": _SI**4,
    "pib": _IEC**5,
    "pb": _SI**5,
    "eib": _IEC**6,
    "eb": _SI**6,
    "": 1,
    "ki": _IEC,
    "k": _SI,
    "mi": _IEC**2,
    "m": _SI**2,
    "gi": _IEC**3,
    "g": _SI**3,
    "ti": _IEC**4,
    "t": _SI**4,
    "pi": _IEC**5,
    "p": _SI**5,
    "ei": _IEC**6,
    "e": _SI**6,
}


def parse_bytes(text: str) -> int:
    """Parse a human byte size the way go-humanize ``ParseBytes`` does.

    ``"10MB"`` is 10_000_000, ``"1KiB"`` 1024, ``"5 B"`` 5, ``"42"`` 42 and
    ``"1,000 kb"`` 1_000_000; the unit is case-insensitive and may be
    separated by spaces. The number goes through float64 and is truncated
    (``"1.5B"`` is 1). Raises ValueError for a missing number, an unknown unit
    or a size of 2**64 bytes or more.

    Note that in a LogQL query no space may separate number and unit: the
    lexer only offers the adjacent characters to this function.
    """
    end = 0
    has_comma = False
    for ch in text:
        if not (_is_digit(ch) or ch in ".,"):
            break
        has_comma = has_comma or ch == ","
        end += 1
    number = text[:end].replace(",", "") if has_comma else text[:end]
    value = _go_parse_decimal(number)
    if value is None:
        raise ValueError(f"parsefloat {text}: invalid syntax")
    unit = text[end:].strip().lower()
    if unit not in _BYTE_UNITS:
        raise ValueError(f"unhandled size name: {unit}")
    value *= _BYTE_UNITS[unit]
    if value >= 18446744073709551615.0:  # float64(math.MaxUint64) == 2**64
        raise ValueError(f"too large: {text}")
    return int(value)


def _go_parse_decimal(number: str) -> float | None:
    """strconv.ParseFloat restricted to what ParseBytes can hand it: digits and dots."""
    if not number or number.count(".") > 1 or number == ".":
        return None
    value = float(number)
    if value == float("inf"):
        return None
    return value


def _go_quote(text: str) -> str:
    """Render text like Go's %q for error messages (close enough for ASCII)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x80
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    out.append('"')
    return "".join(out)


def format_duration(ns: int) -> str:
    """Render nanoseconds as a duration literal that :func:`parse_duration_ns` reads back exactly.

    Uses only ``h m s ms us ns`` so Go's syntax accepts it (``1h30m``,
    ``250ms``, ``-1h1ns``); zero is ``0s``. Raises ValueError outside the
    int64 range.
    """
    if not -(1 << 63) <= ns <= _INT64_MAX:
        raise ValueError(f"duration out of range: {ns} ns")
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    rest = -ns if ns < 0 else ns
    parts = []
    for unit, mult in (("h", _H), ("m", _M), ("s", _S), ("ms", _MS), ("us", _US), ("ns", _NS)):
        count, rest = divmod(rest, mult)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def format_range(ns: int) -> str:
    """Render nanoseconds as a range duration that :func:`parse_prometheus_duration_ns` reads back.

    Ranges only have millisecond resolution and cannot be negative; raises
    ValueError otherwise. Uses ``d h m s ms`` (``1d``, ``1h30m``, ``500ms``).
    """
    if ns < 0 or ns % _MS or ns > _INT64_MAX:
        raise ValueError(f"range must be a non-negative whole number of milliseconds: {ns} ns")
    if ns == 0:
        return "0s"
    parts = []
    rest = ns
    for unit, mult in (("d", _D), ("h", _H), ("m", _M), ("s", _S), ("ms", _MS)):
        count, rest = divmod(rest, mult)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_bytes(size: int) -> str:
    """Render a byte count as a size literal that :func:`parse_bytes` reads back exactly.

    Picks the largest SI or IEC unit up to ``TB`` dividing the size
    (``20MB``, ``1KiB``) and falls back to ``B``. Because ParseBytes goes through float64, a size
    above 2**53 may have no exact spelling; raises ValueError then.
    """
    if not 0 <= size < 1 << 64:
        raise ValueError(f"byte size must be in [0, 2**64): {size}")
    if size == 0:
        return "0KB"  # Go's scanner reads "0B" as an empty binary literal
    candidates = [
        f"{size // mult}{unit}"
        # No P or E units: Go's scanner reads "5PB" and "5EB" as a number
        # with a malformed exponent, so Loki cannot lex them.
        for unit, mult in (
            ("TiB", _IEC**4),
            ("TB", _SI**4),
            ("GiB", _IEC**3),
            ("GB", _SI**3),
            ("MiB", _IEC**2),
            ("MB", _SI**2),
            ("KiB", _IEC),
            ("KB", _SI),
        )
        if size and size % mult == 0
    ]
    candidates.append(f"{size}B")
    for text in candidates:
        try:
            if parse_bytes(text) == size:
                return text
        except ValueError:
            continue
    raise ValueError(f"byte size has no exact literal: {size}")
