"""Go's value model for LogQL templates: types, number syntax, sprig conversions.

Loki runs ``line_format`` and ``label_format`` through Go's ``text/template``,
so what a template prints, and which calls fail, depends on Go's types
(``trunc (add 1 2) "x"`` fails in Loki because ``add`` returns ``int64`` and
``trunc`` wants ``int``). Values keep just enough of those types:

====================  ===============================================
Go                    Python
====================  ===============================================
string                ``str``
int                   ``int``
int64 (sprig math)    :class:`Int64`
uint8 (string index)  :class:`Uint8`
float64               ``float``
bool                  ``bool``
time.Time             ``GoTime`` (:mod:`.template_time`)
map[string]string     the caller's labels mapping
map[string]any        :class:`JsonMap` (from ``fromJson``)
[]any                 ``list``
untyped nil           ``None`` (prints ``<no value>``)
nil inside interface  :data:`NIL_IFACE` (a missing ``fromJson`` key)
====================  ===============================================

Go strings are bytes; these are ``str``. Where Go slices bytes a cut through
a multi-byte character becomes one U+FFFD per stray byte
(:func:`bytes_to_str`), which is what a client of Loki receives after JSON
encoding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "FuncError", "NIL_IFACE", "GoInt", "Int64", "Uint8", "JsonMap", "I64_MIN", "I64_MAX",
    "wrap64", "is_go_int", "go_type_name", "parse_go_uint", "parse_go_int", "parse_go_float",
    "float_to_int64", "to_int64", "to_float64", "bytes_to_str", "utf8",
]


class FuncError(Exception):
    """A template function failed; the message is Go's error text."""


class _NilIface:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_IFACE"


#: A nil stored in an ``interface{}`` (a missing or null ``fromJson`` member).
#: Unlike ``None`` it is an error to take a field of it, as in Go.
NIL_IFACE = _NilIface()


class GoInt(int):
    """Base of the Go integer types other than ``int``; ``go_type`` is the Go name."""

    __slots__ = ()
    go_type = "int"


class Int64(GoInt):
    """A Go ``int64``: what sprig's integer arithmetic returns."""

    __slots__ = ()
    go_type = "int64"


class Uint8(GoInt):
    """A Go ``uint8``: what ``index`` of a string returns."""

    __slots__ = ()
    go_type = "uint8"


class JsonMap(dict):
    """A Go ``map[string]interface{}`` decoded by ``fromJson``."""

    __slots__ = ()
    go_type = "map[string]interface {}"


I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def wrap64(n: int) -> Int64:
    """``n`` wrapped to int64 as Go's arithmetic overflows."""
    return Int64(((n + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63))


def is_go_int(v) -> bool:
    """True for Go integer values (``int``, ``int64``, ...), false for ``bool``."""
    return type(v) is int or isinstance(v, GoInt)


_BUILTIN_NAMES = {str: "string", bool: "bool", int: "int", float: "float64",
                  list: "[]interface {}", complex: "complex128"}


def go_type_name(v) -> str:
    """Go's name for the type of ``v`` (as ``%T`` and error messages print it)."""
    t = type(v)
    name = _BUILTIN_NAMES.get(t) or getattr(t, "go_type", None)
    if name is not None:
        return name
    if v is None:
        return "<nil>"
    if v is NIL_IFACE:
        return "interface {}"
    if isinstance(v, Mapping):
        return "map[string]string"
    return t.__name__


def _underscore_ok(s: str) -> bool:
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i, saw, hexa = 2, "0", s[1] in "xX"
    for c in s[i:]:
        if "0" <= c <= "9" or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


_RANGE_ERR = "value out of range"
_SYNTAX_ERR = "invalid syntax"


def parse_go_uint(s: str, bits: int = 64) -> int:
    """Go's ``strconv.ParseUint(s, 0, bits)``; ValueError carries Go's reason."""
    s0 = s
    if not s:
        raise ValueError(_SYNTAX_ERR)
    base = 10
    if s[0] == "0":
        if len(s) >= 3 and s[1] in "bB":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1] in "oO":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1] in "xX":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    n = 0
    underscores = False
    for c in s:
        if c == "_":
            underscores = True
            continue
        d = "0123456789abcdef".find(c.lower()) if c.isascii() else -1
        if d < 0 or d >= base:
            raise ValueError(_SYNTAX_ERR)
        n = n * base + d
    if underscores and not _underscore_ok(s0):
        raise ValueError(_SYNTAX_ERR)
    if n >= 1 << bits:
        raise ValueError(_RANGE_ERR)
    return n


def parse_go_int(s: str, bits: int = 64) -> int:
    """Go's ``strconv.ParseInt(s, 0, bits)``; ValueError carries Go's reason."""
    if not s:
        raise ValueError(_SYNTAX_ERR)
    neg = s[0] == "-"
    u = parse_go_uint(s[1:] if s[0] in "+-" else s, 64)
    limit = 1 << (bits - 1)
    if (neg and u > limit) or (not neg and u >= limit):
        raise ValueError(_RANGE_ERR)
    return -u if neg else u


def parse_go_float(s: str) -> float:
    """Go's ``strconv.ParseFloat(s, 64)``; ValueError carries Go's reason."""
    body = s[1:] if s[:1] in ("+", "-") else s
    low = body.lower()
    if low in ("inf", "infinity"):
        return -math.inf if s[0] == "-" else math.inf
    if low == "nan":
        return math.nan
    if not body or not body.isascii():
        raise ValueError(_SYNTAX_ERR)
    if low.startswith("0x"):
        mant, p, exp = low[2:].partition("p")
        if not p or not exp.lstrip("+-") or not all(c in "0123456789_" for c in exp.lstrip("+-")):
            raise ValueError(_SYNTAX_ERR)
        if not any(c in "0123456789abcdef" for c in mant) or mant.count(".") > 1 or any(
                c not in "0123456789abcdef._" for c in mant):
            raise ValueError(_SYNTAX_ERR)
        if "_" in s and not _underscore_ok(s):
            raise ValueError(_SYNTAX_ERR)
        try:
            f = float.fromhex(("-" if s[0] == "-" else "") + "0x" + low[2:].replace("_", ""))
        except (OverflowError, ValueError):
            raise ValueError(_RANGE_ERR) from None
        return f
    mant, e, exp = low.partition("e")
    if (mant.count(".") > 1 or not any("0" <= c <= "9" for c in mant)
            or any(c not in "0123456789._" for c in mant)):
        raise ValueError(_SYNTAX_ERR)
    if e and (not exp.lstrip("+-") or exp[1:].count("+") + exp[1:].count("-")
              or any(c not in "0123456789_+-" for c in exp) or not any(c.isdigit() for c in exp)):
        raise ValueError(_SYNTAX_ERR)
    if "_" in s and not _underscore_ok(s):
        raise ValueError(_SYNTAX_ERR)
    f = float(s.replace("_", ""))
    if math.isinf(f):
        raise ValueError(_RANGE_ERR)
    return f


def float_to_int64(f: float) -> int:
    """Go's ``int64(f)`` on amd64: out of range and NaN give the minimum int64."""
    if f != f or f >= 9.223372036854775807e18 or f < -9.223372036854775808e18:
        return I64_MIN
    return int(f)


def _trim_zero_decimal(s: str) -> str:
    found_zero = False
    for i in range(len(s), 0, -1):
        c = s[i - 1]
        if c == ".":
            if found_zero:
                return s[:i - 1]
        elif c == "0":
            found_zero = True
        else:
            return s
    return s


def to_int64(v) -> int:
    """sprig's ``toInt64`` (spf13/cast ``ToInt64``, errors give 0)."""
    t = type(v)
    if t is int or t is bool or isinstance(v, GoInt):
        return int(v)
    if t is float:
        return float_to_int64(v)
    if t is str:
        try:
            return parse_go_int(_trim_zero_decimal(v))
        except ValueError:
            return 0
    return 0


def to_float64(v) -> float:
    """sprig's ``toFloat64`` (spf13/cast ``ToFloat64``, errors give 0)."""
    t = type(v)
    if t is float:
        return v
    if t is int or t is bool or isinstance(v, GoInt):
        return float(v)
    if t is str:
        try:
            return parse_go_float(v)
        except ValueError:
            return 0.0
    return 0.0


def bytes_to_str(b: bytes) -> str:
    """Go's ``string(b)`` as seen rune by rune: each invalid byte becomes one U+FFFD."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        s = b.decode("utf-8", "surrogateescape")
        return "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in s)


def utf8(s: str) -> bytes:
    """UTF-8 of ``s`` (lone surrogates pass through rather than raise)."""
    return s.encode("utf-8", "surrogatepass")
