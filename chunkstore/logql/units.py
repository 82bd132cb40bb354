"""Go-compatible parsing of the scalar values LogQL label filters compare.

Loki converts label values with Go's ``strconv.ParseFloat``, ``time.ParseDuration``
and go-humanize's ``ParseBytes``.  Python's ``float()`` and friends accept a
different language (``float(" 1 ")``, ``float("1e400")`` -> ``inf``, no ``µs``
unit, ...), so a line Loki keeps could be dropped here or the other way round.
These functions reimplement the Go grammars exactly, including the error
message text that ends up in ``__error_details__``.

Every parser raises :class:`GoParseError` (a ``ValueError``) whose ``str()`` is
the message Go would have produced.
"""

from __future__ import annotations

import math
import re
import unicodedata

__all__ = [
    "GoParseError",
    "go_quote",
    "parse_go_float",
    "parse_go_duration_ns",
    "parse_bytes",
]

_MAX_INT64 = (1 << 63) - 1
_MAX_UINT64_F = float(1 << 64)  # float64(math.MaxUint64) rounds to 2**64


class GoParseError(ValueError):
    """A value is not in the Go grammar; ``str()`` is Go's error message."""


# --------------------------------------------------------------------------
# Quoting (error messages embed the offending input the way Go prints it)
# --------------------------------------------------------------------------

_GO_SIMPLE_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
    "\r": "\\r", "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"',
}


def go_quote(s: str) -> str:
    """Return ``strconv.Quote(s)``: a double-quoted Go literal of ``s``.

    Lone surrogates U+DC80..U+DCFF (Python's ``surrogateescape`` for an
    invalid byte) print as ``\\xNN`` like the raw byte does in Go.
    """
    out = ['"']
    for ch in s:
        esc = _GO_SIMPLE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():  # Go's IsPrint: L, M, N, P, S and ASCII space
            out.append(ch)
        else:
            cp = ord(ch)
            if 0xDC80 <= cp <= 0xDCFF:
                out.append("\\x%02x" % (cp - 0xDC00))
            elif cp < 0x80:
                out.append("\\x%02x" % cp)
            elif cp < 0x10000:
                out.append("\\u%04x" % cp)
            else:
                out.append("\\U%08x" % cp)
    out.append('"')
    return "".join(out)


def _time_quote(s: str) -> str:
    """The private ``quote`` of Go's time package (used in duration errors).

    Unlike strconv.Quote it only escapes ``"`` and ``\\`` and prints every byte
    of a non-ASCII or control character as ``\\xNN``.
    """
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if cp >= 0x80 or cp < 0x20:
            raw = "\ufffd".encode() if ch == "\ufffd" else ch.encode("utf-8", "surrogatepass")
            out.extend("\\x%02x" % b for b in raw)
        else:
            if ch in '"\\':
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------
# strconv.ParseFloat(s, 64)
# --------------------------------------------------------------------------

# Go's readFloat: optional sign, then decimal or 0x-hex mantissa (underscores
# are skipped here and validated by _underscore_ok), optional exponent.  Hex
# mantissas require a 'p' exponent.
_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9][0-9_]*)?\Z")
_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9][0-9_]*\Z"
)
_HAS_DIGIT = re.compile(r"[0-9]")
_HAS_HEX_DIGIT = re.compile(r"[0-9a-fA-F]")


def _underscore_ok(s: str) -> bool:
    """Go's strconv.underscoreOK: underscores only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i = 2
        saw = "0"
        hexa = s[1] in "xX"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _special_float(s: str) -> float | None:
    """Go's strconv.special: [+-]inf, [+-]infinity, unsigned nan (any case)."""
    low = s.lower()
    sign = 1.0
    body = low
    if low[:1] in ("+", "-"):
        sign = -1.0 if low[0] == "-" else 1.0
        body = low[1:]
        if body in ("inf", "infinity"):
            return sign * math.inf
        return None
    if body in ("inf", "infinity"):
        return math.inf
    if body == "nan":
        return math.nan
    return None


def parse_go_float(s: str) -> float:
    """Parse ``s`` exactly like Go's ``strconv.ParseFloat(s, 64)``.

    Accepts decimal and ``0x`` hex-float syntax, digit-separating underscores,
    ``inf``/``infinity``/``nan``; rejects surrounding whitespace.  Values beyond
    float64 range raise (Go returns ``±Inf`` together with ``ErrRange``, and Loki
    treats any error as a conversion failure).  Raises :class:`GoParseError`.
    """
    special = _special_float(s)
    if special is not None:
        return special
    if _HEX_FLOAT.match(s):
        mantissa = s[: s.lower().index("p")]
        if not _HAS_HEX_DIGIT.search(mantissa[mantissa.lower().index("x") + 1:]):
            raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
        if "_" in s and not _underscore_ok(s):
            raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
        try:
            return float.fromhex(s.replace("_", ""))
        except OverflowError:
            raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: value out of range") from None
    if not _DEC_FLOAT.match(s):
        raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
    mant = re.split(r"[eE]", s, maxsplit=1)[0]
    if not _HAS_DIGIT.search(mant):
        raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
    if "_" in s and not _underscore_ok(s):
        raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
    value = float(s.replace("_", ""))
    if math.isinf(value):
        raise GoParseError(f"strconv.ParseFloat: parsing {go_quote(s)}: value out of range")
    return value


# --------------------------------------------------------------------------
# time.ParseDuration
# --------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DIGITS = frozenset("0123456789")


def parse_go_duration_ns(s: str) -> int:
    """Parse a Go duration string (``1m30s``, ``250ms``, ``-1.5h``) into nanoseconds.

    Implements ``time.ParseDuration`` exactly: a sequence of decimal numbers
    with optional fraction and a unit among ns, us, µs, μs, ms, s, m, h; a bare
    ``0`` is allowed; the total must fit in an int64 (``-2**63`` is allowed).
    Fractions are converted through float64 as Go does, so ``1.0000000001h``
    rounds the same way.  Raises :class:`GoParseError` with Go's message.
    """
    orig = s
    invalid = f"time: invalid duration {_time_quote(orig)}"
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise GoParseError(invalid)
    total = 0
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if not (c == "." or c in _DIGITS):
            raise GoParseError(invalid)
        # leading integer: overflow past 2**63 is an error
        start = i
        v = 0
        while i < n and s[i] in _DIGITS:
            if v > (1 << 63) // 10:
                raise GoParseError(invalid)
            v = v * 10 + (ord(s[i]) - 48)
            if v > 1 << 63:
                raise GoParseError(invalid)
            i += 1
        pre = i != start
        f = 0
        scale = 1.0
        post = False
        if i < n and s[i] == ".":
            i += 1
            fstart = i
            overflow = False
            while i < n and s[i] in _DIGITS:
                if not overflow:
                    if f > _MAX_INT64 // 10:
                        overflow = True
                    else:
                        y = f * 10 + (ord(s[i]) - 48)
                        if y > 1 << 63:
                            overflow = True
                        else:
                            f = y
                            scale *= 10
                i += 1
            post = i != fstart
        if not pre and not post:
            raise GoParseError(invalid)
        ustart = i
        while i < n and not (s[i] == "." or s[i] in _DIGITS):
            i += 1
        if i == ustart:
            raise GoParseError(f"time: missing unit in duration {_time_quote(orig)}")
        unit_name = s[ustart:i]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise GoParseError(
                f"time: unknown unit {_time_quote(unit_name)} in duration {_time_quote(orig)}"
            )
        if v > (1 << 63) // unit:
            raise GoParseError(invalid)
        v *= unit
        if f > 0:
            # Go: v += uint64(float64(f) * (float64(unit) / scale))
            v += int(float(f) * (float(unit) / scale))
            if v > 1 << 63:
                raise GoParseError(invalid)
        total += v
        if total > 1 << 63:
            raise GoParseError(invalid)
    if neg:
        return -total
    if total > _MAX_INT64:
        raise GoParseError(invalid)
    return total


# --------------------------------------------------------------------------
# humanize.ParseBytes (github.com/dustin/go-humanize v1.0.1)
# --------------------------------------------------------------------------

_KI, _K = 1024, 1000
_BYTES_SIZE_TABLE = {
    "b": 1,
    "kib": _KI, "kb": _K,
    "mib": _KI**2, "mb": _K**2,
    "gib": _KI**3, "gb": _K**3,
    "tib": _KI**4, "tb": _K**4,
    "pib": _KI**5, "pb": _K**5,
    "eib": _KI**6, "eb": _K**6,
    # without the "b" suffix
    "": 1,
    "ki": _KI, "k": _K,
    "mi": _KI**2, "m": _K**2,
    "gi": _KI**3, "g": _K**3,
    "ti": _KI**4, "t": _K**4,
    "pi": _KI**5, "p": _K**5,
    "ei": _KI**6, "e": _K**6,
}

# Go's unicode.IsSpace, used by strings.TrimSpace.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def parse_bytes(s: str) -> int:
    """Parse a humanized size (``5MB``, ``10KiB``, ``1.5 gb``, ``1,024``) into bytes.

    Implements go-humanize ``ParseBytes``: the leading run of Unicode digits,
    dots and commas is the number (commas removed, then ``strconv.ParseFloat``),
    the trimmed, lower-cased rest must be a known unit (SI ``kb`` = 1000, IEC
    ``kib`` = 1024, the ``b`` may be omitted).  The product is truncated to an
    integer; values of 2**64 or more are rejected.  Raises :class:`GoParseError`.
    """
    # Go counts runes but slices bytes with that count: mirror it exactly so a
    # non-ASCII digit yields the same (failing) number text as in Loki.
    raw = s.encode("utf-8", "surrogatepass")
    count = 0
    has_comma = False
    for ch in s:
        if not (unicodedata.category(ch) == "Nd" or ch == "." or ch == ","):
            break
        if ch == ",":
            has_comma = True
        count += 1
    num = raw[:count].decode("utf-8", "surrogateescape")
    if has_comma:
        num = num.replace(",", "")
    value = parse_go_float(num)
    extra = raw[count:].decode("utf-8", "replace").strip(GO_SPACE).lower()
    mult = _BYTES_SIZE_TABLE.get(extra)
    if mult is None:
        raise GoParseError(f"unhandled size name: {extra}")
    value *= float(mult)
    if value >= _MAX_UINT64_F:
        raise GoParseError(f"too large: {s}")
    # The number text holds only digits and dots, so value is finite and >= 0.
    return int(value)
