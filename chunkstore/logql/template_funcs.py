"""The function library of LogQL text templates: Go builtins, sprig, Loki's own.

Loki's ``line_format`` and ``label_format`` templates may call exactly the
functions of ``pkg/logql/log/fmt.go``: Go's ``text/template`` builtins, the
sprig functions Loki enables (argument order as in sprig: ``replace old new
src``, ``trunc n s``, ``substr start end s``, ``default dflt value``), Loki's
deprecated ``strings`` wrappers (``ToLower``, ``Replace s old new n``...) and
Loki's helpers (``__line__``, ``__timestamp__``, ``bytes``, ``duration``,
``unixToTime``, ``alignLeft``...). Any other name is a parse error, as in
Loki. :data:`FUNCTIONS` maps each name to a :class:`FuncSpec` giving the Go
parameter types, which the compiler in :mod:`chunkstore.logql.template` uses
to convert arguments and report type errors as Go does.

Functions raise :class:`FuncError` with Go's error text; the template turns
it into ``error calling NAME: ...``. Where Go panics (``div 1 0``), the
message is the panic's. Regular expressions are RE2 (Go's regexp dialect)
and replacements expand ``$1``/``${name}`` as Go's ``Regexp.Expand``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time as _time
import urllib.parse
from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation

import re2

from . import template_builtins as builtins
from .template_builtins import is_true
from .template_gofmt import (
    format_float,
    go_quote,
    go_sprint,
    go_sprintf,
    go_sprintln,
)
from .template_time import (
    ZERO_TIME,
    BadTime,
    GoTime,
    Layout,
    Month,
    Weekday,
    format_time,
    load_location,
    parse_duration,
    parse_time,
)
from .template_values import (
    NIL_IFACE,
    FuncError,
    Int64,
    JsonMap,
    bytes_to_str,
    parse_go_float,
    parse_go_int,
    to_float64,
    to_int64,
    utf8,
    wrap64,
)

__all__ = ["FuncSpec", "FUNCTIONS", "TIME_METHODS", "is_true", "compile_regex"]


# ----------------------------------------------------------------------------
# sprig and Loki's functions


def _go_to_upper(s: str) -> str:
    if s.isascii():
        return s.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _go_to_lower(s: str) -> str:
    if s.isascii():
        return s.lower()
    return "".join(lo if len(lo := c.lower()) == 1 else ("i" if c == "\u0130" else c) for c in s)


def _is_title_separator(c: str) -> bool:
    if c < "\x80":
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdecimal():
        return False
    return c in _GO_SPACE


def _title(s: str) -> str:
    out = []
    prev = " "
    for c in s:
        if _is_title_separator(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


# unicode.IsSpace (Python's str.isspace also counts \x1c-\x1f)
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _byte_slice(s: str, start: int | None, end: int | None) -> str:
    if s.isascii():
        return s[start:end]
    return bytes_to_str(utf8(s)[start:end])


def _blen(s: str) -> int:
    return len(s) if s.isascii() else len(utf8(s))


def _trunc(c: int, s: str) -> str:
    n = _blen(s)
    if c < 0 and n + c > 0:
        return _byte_slice(s, n + c, None)
    if c >= 0 and n > c:
        return _byte_slice(s, None, c)
    return s


def _slice_panic(msg: str):
    return FuncError("runtime error: slice bounds out of range " + msg)


def _substr(start: int, end: int, s: str) -> str:
    n = _blen(s)
    if start < 0:
        if end < 0:
            raise _slice_panic(f"[:{end}]")
        if end > n:
            raise _slice_panic(f"[:{end}] with length {n}")
        return _byte_slice(s, None, end)
    if end < 0 or end > n:
        if start > n:
            raise _slice_panic(f"[{start}:{n}]")
        return _byte_slice(s, start, None)
    if start > end:
        raise _slice_panic(f"[{start}:{end}]")
    return _byte_slice(s, start, end)


# Go allocates whatever a template asks for (and a Loki querier dies of it); here a
# result over 1 GiB is refused with Go's overflow message instead.
_MAX_RESULT = 1 << 30


def _check_size(n: int) -> None:
    if n > _MAX_RESULT:
        raise FuncError("strings: Repeat output length overflow")


def _repeat(count: int, s: str) -> str:
    if count < 0:
        raise FuncError("strings: negative Repeat count")
    _check_size(count * _blen(s))
    return s * count


def _indent(spaces: int, v: str) -> str:
    if spaces < 0:
        raise FuncError("strings: negative Repeat count")
    _check_size(spaces * (v.count("\n") + 1) + len(v))
    pad = " " * spaces
    return pad + v.replace("\n", "\n" + pad)


def _align_left(count: int, src: str) -> str:
    _check_size(count)
    n = len(src)
    if count < 0 or count == n:
        return src
    return src + " " * (count - n) if count > n else src[:count]


def _align_right(count: int, src: str) -> str:
    _check_size(count)
    n = len(src)
    if count < 0 or count == n:
        return src
    return " " * (count - n) + src if count > n else src[n - count:]


def _b64dec(v: str) -> str:
    """sprig's ``b64dec``: on bad input it *returns* Go's error text."""
    src = utf8(v)
    try:
        if b"\r" in src or b"\n" in src:
            raise binascii.Error
        return bytes_to_str(base64.b64decode(src, validate=True))
    except (binascii.Error, ValueError):
        return _b64_error(src)


_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _b64_error(src: bytes) -> str:
    """Decode like Go's ``base64.StdEncoding``, which skips newlines; report its error offset."""
    out = bytearray()
    si, n = 0, len(src)
    while True:
        quantum = []
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes_to_str(bytes(out))
                return f"illegal base64 data at input byte {si - j}"
            c = src[si]
            si += 1
            if c in _B64:
                quantum.append(c)
                j += 1
                continue
            if c in (10, 13):
                continue
            if c != 61:  # '='
                return f"illegal base64 data at input byte {si - 1}"
            if j < 2:
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:
                while si < n and src[si] in (10, 13):
                    si += 1
                if si == n:
                    return f"illegal base64 data at input byte {n}"
                if src[si] != 61:
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < n and src[si] in (10, 13):
                si += 1
            if si < n:
                return f"illegal base64 data at input byte {si}"
            out += base64.b64decode(bytes(quantum) + b"=" * (4 - j))
            return bytes_to_str(bytes(out))
        out += base64.b64decode(bytes(quantum))


def _urldecode(s: str) -> str:
    b = utf8(s)
    i = 0
    n = len(b)
    while True:
        i = b.find(b"%", i)
        if i < 0:
            break
        if i + 2 >= n or b[i + 1:i + 2] not in _HEX or b[i + 2:i + 3] not in _HEX:
            bad = bytes_to_str(b[i:i + 3])
            raise FuncError("invalid URL escape " + go_quote(bad))
        i += 3
    return bytes_to_str(urllib.parse.unquote_to_bytes(b.replace(b"+", b" ")))


_HEX = frozenset(bytes([c]) for c in b"0123456789abcdefABCDEF")


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # configured once here, never mutated afterwards


def compile_regex(pattern: str):
    """Compile a Go regexp with RE2; raises :class:`FuncError` with Go's message shape."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        code, _, arg = msg.partition(": ")
        code = _RE2_TO_GO_ERRORS.get(code, code)
        if code.startswith("trailing backslash"):
            arg = ""
        elif not arg:
            arg = pattern
        raise FuncError(f"error parsing regexp: {code}: `{arg}`") from None


# RE2's error texts, as Go's regexp/syntax words them.
_RE2_TO_GO_ERRORS = {
    "missing ]": "missing closing ]", "missing )": "missing closing )", "missing (": "unexpected )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
}


def _regex(pattern):
    return pattern if not isinstance(pattern, str) else compile_regex(pattern)


def _expand_template(rx, template: str):
    """Pre-parse a Go ``Regexp.Expand`` template into literal and group parts."""
    parts = []
    names = rx.groupindex
    while True:
        i = template.find("$")
        if i < 0:
            break
        parts.append(template[:i])
        template = template[i + 1:]
        if template[:1] == "$":
            parts.append("$")
            template = template[1:]
            continue
        brace = template[:1] == "{"
        body = template[1:] if brace else template
        j = 0
        while j < len(body) and (body[j].isalpha() or body[j].isdecimal() or body[j] == "_"):
            j += 1
        if j == 0 or (brace and body[j:j + 1] != "}"):
            parts.append("$")
            continue
        name = body[:j]
        template = body[j + 1:] if brace else body[j:]
        number = name.isascii() and name.isdigit()
        if number and not (name[0] == "0" and len(name) > 1) and len(name) < 9:
            parts.append(int(name))
        elif name in names:
            parts.append(names[name])
        else:
            parts.append("")  # unknown name or malformed number: expands to nothing
    parts.append(template)
    return [p for p in parts if p != ""]


def _replace_all(rx, src: str, repl) -> str:
    """Go's ``Regexp.replaceAll``: empty matches adjacent to a previous match are skipped."""
    out = []
    last = 0
    pos = 0
    n = len(src)
    search = rx.search
    while pos <= n:
        m = search(src, pos)
        if m is None:
            break
        a0, a1 = m.span()
        out.append(src[last:a0])
        if a1 > last or a0 == 0:
            if type(repl) is str:
                out.append(repl)
            else:
                for p in repl:
                    if type(p) is str:
                        out.append(p)
                    elif p <= rx.groups:
                        g = m.group(p)
                        if g is not None:
                            out.append(g)
        last = a1
        pos = pos + 1 if pos + 1 > a1 else a1
    out.append(src[last:])
    return "".join(out)


def _regex_replace_all(regex, s: str, repl: str) -> str:
    rx = _regex(regex)
    return _replace_all(rx, s, _expand_template(rx, repl) if "$" in repl else repl)


def _regex_replace_all_literal(regex, s: str, repl: str) -> str:
    return _replace_all(_regex(regex), s, repl)


def _count(regex, s: str) -> int:
    rx = _regex(regex)
    n = len(s)
    pos, prev_end, count = 0, -1, 0
    while pos <= n:
        m = rx.search(s, pos)
        if m is None:
            break
        a0, a1 = m.span()
        accept = True
        if a1 == pos:
            if a0 == prev_end:
                accept = False
            pos += 1
        else:
            pos = a1
        prev_end = a1
        count += accept
    return count


def _convert_bytes(v: str) -> float:
    """Loki's ``bytes``: go-humanize ``ParseBytes`` as float64."""
    i = 0
    has_comma = False
    while i < len(v) and (v[i].isdecimal() or v[i] in ".,"):
        has_comma |= v[i] == ","
        i += 1
    num = v[:i].replace(",", "") if has_comma else v[:i]
    try:
        f = parse_go_float(num)
    except ValueError as exc:
        raise FuncError(f"strconv.ParseFloat: parsing {go_quote(num)}: {exc}") from None
    extra = v[i:].strip(_GO_SPACE).lower()
    mult = _BYTE_SIZES.get(extra)
    if mult is None:
        raise FuncError(f"unhandled size name: {extra}")
    f *= mult
    if f >= 18446744073709551615.0:
        raise FuncError(f"too large: {v}")
    return float(int(f)) if f == f else f


_BYTE_SIZES = {"": 1, "b": 1}
for _i, (_si, _iec) in enumerate((("k", "ki"), ("m", "mi"), ("g", "gi"), ("t", "ti"),
                                  ("p", "pi"), ("e", "ei")), start=1):
    _BYTE_SIZES[_si] = _BYTE_SIZES[_si + "b"] = 1000 ** _i
    _BYTE_SIZES[_iec] = _BYTE_SIZES[_iec + "b"] = 1024 ** _i


def _convert_duration(v: str) -> float:
    """Loki's ``duration``: Go ``time.ParseDuration(v).Seconds()``."""
    ns = parse_duration(v)
    sec, nsec = abs(ns) // 1_000_000_000, abs(ns) % 1_000_000_000
    sign = -1 if ns < 0 else 1
    return sign * sec + sign * nsec / 1e9


def _unix_to_time(epoch: str) -> GoTime:
    try:
        i = parse_go_int(epoch) if epoch.isascii() and epoch.lstrip("+-").isdigit() else None
        if i is None:
            raise ValueError("invalid syntax")
    except ValueError as exc:
        raise FuncError(f"unable to parse time '{epoch}': strconv.ParseInt: parsing "
                        f"{go_quote(epoch)}: {exc}") from None
    mult = {5: 86400 * 10**9, 10: 10**9, 13: 10**6, 16: 10**3, 19: 1}.get(len(epoch))
    if mult is None:
        raise FuncError(f"unable to parse time '{epoch}': %!w(<nil>)")
    return GoTime.from_unix_ns(i * mult)


def _date(fmt: str, date) -> str:
    t = type(date)
    if t is GoTime:
        tm = date
    elif t is int or t is Int64:
        tm = GoTime(int(date))
    else:
        tm = GoTime.from_unix_ns(_time.time_ns())
    return format_time(GoTime(tm.sec, tm.nsec), fmt)


def _to_date(fmt: str, s: str) -> GoTime:
    try:
        return parse_time(fmt, s, None)
    except (BadTime, ValueError, IndexError):
        return ZERO_TIME


def _to_date_in_zone(fmt: str, zone: str, s: str) -> GoTime:
    try:
        return parse_time(fmt, s, load_location(zone))
    except (BadTime, ValueError, IndexError):
        return ZERO_TIME


def _from_json(v: str):
    try:
        return json.loads(v, object_hook=JsonMap, parse_int=float, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None


def _reject_constant(name):
    raise ValueError(name)


def _empty(v) -> bool:
    if v is None or v is NIL_IFACE:
        return True
    t = type(v)
    if t is GoTime:
        return False
    if t is str or t is list or isinstance(v, Mapping):
        return len(v) == 0
    return not v


def _default(d, *given):
    return d if not given or _empty(given[0]) else given[0]


def _decimal_op(a, rest, op: str) -> float:
    ctx = Context(prec=400, rounding=ROUND_DOWN, traps=[InvalidOperation, DivisionByZero])
    acc = _to_decimal(to_float64(a))
    for x in rest:
        d = _to_decimal(to_float64(x))
        if op == "+":
            acc = ctx.add(acc, d)
        elif op == "-":
            acc = ctx.subtract(acc, d)
        elif op == "*":
            acc = ctx.multiply(acc, d)
        else:
            if d == 0:
                raise FuncError("decimal division by 0")
            acc = ctx.divide(acc, d).quantize(Decimal("1e-16"), rounding=ROUND_HALF_UP, context=ctx)
    return float(acc) if acc else 0.0  # shopspring/decimal has no negative zero


def _to_decimal(f: float) -> Decimal:
    if f != f or math.isinf(f):
        raise FuncError(f"Cannot create a Decimal from {format_float(f, 'g', -1)}")
    return Decimal(repr(f))


def _go_max(a: float, b: float) -> float:
    if math.isinf(a) and a > 0 or math.isinf(b) and b > 0:
        return math.inf
    if a != a or b != b:
        return math.nan
    if a == 0 and b == 0:
        return b if math.copysign(1, a) < 0 else a
    return a if a > b else b


def _go_min(a: float, b: float) -> float:
    if math.isinf(a) and a < 0 or math.isinf(b) and b < 0:
        return -math.inf
    if a != a or b != b:
        return math.nan
    if a == 0 and b == 0:
        return a if math.copysign(1, a) < 0 else b
    return a if a < b else b


def _ceil(a) -> float:
    f = to_float64(a)
    return f if not math.isfinite(f) else float(math.ceil(f))


def _floor(a) -> float:
    f = to_float64(a)
    return f if not math.isfinite(f) else float(math.floor(f))


def _round(a, p: int, *r_opt: float) -> float:
    round_on = r_opt[0] if r_opt else 0.5
    val = to_float64(a)
    try:
        pow_ = math.pow(10, float(p))
    except OverflowError:
        pow_ = math.inf
    digit = pow_ * val
    if not math.isfinite(digit):
        return digit / pow_ if pow_ else math.nan
    frac = math.modf(digit)[0]
    rounded = float(math.ceil(digit) if frac >= round_on else math.floor(digit))
    if pow_ == 0:  # Go's float division: x/0 is NaN or an infinity
        return math.nan if rounded == 0 else math.copysign(math.inf, rounded)
    return rounded / pow_


def _div(a, b) -> Int64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(x) // abs(y)
    return wrap64(q if (x < 0) == (y < 0) else -q)


def _mod(a, b) -> Int64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    r = abs(x) % abs(y)
    return wrap64(-r if x < 0 else r)


def _mul(a, *v) -> Int64:
    acc = to_int64(a)
    for x in v:
        acc = wrap64(acc * to_int64(x))
    return wrap64(acc)


def _add(*v) -> Int64:
    acc = 0
    for x in v:
        acc += to_int64(x)
    return wrap64(acc)


def _max(a, *v) -> Int64:
    acc = to_int64(a)
    for x in v:
        acc = max(acc, to_int64(x))
    return Int64(acc)


def _min(a, *v) -> Int64:
    acc = to_int64(a)
    for x in v:
        acc = min(acc, to_int64(x))
    return Int64(acc)


def _maxf(a, *v) -> float:
    acc = to_float64(a)
    for x in v:
        acc = _go_max(acc, to_float64(x))
    return acc


def _minf(a, *v) -> float:
    acc = to_float64(a)
    for x in v:
        acc = _go_min(acc, to_float64(x))
    return acc


def _go_replace(s: str, old: str, new: str, n: int) -> str:
    return s.replace(old, new, n if n >= 0 else -1)


class FuncSpec:
    """How a template calls a Go function.

    ``params`` are the fixed parameters' kinds and ``variadic`` the kind of a
    ``...`` tail (or None). Kinds: ``"string"``, ``"int"``, ``"float64"``,
    ``"bool"``, ``"time.Time"`` (exact Go types: a value of another type is a
    "wrong type" error), ``"any"`` (``interface{}``) and ``"value"``
    (``reflect.Value``: builtins that see nil as it is). ``prepare`` is
    ``(index, fn)`` when argument ``index``, if a string literal, may be
    turned once by ``fn`` into what the function also accepts in its place
    (a compiled regexp, a split layout); if ``fn`` raises :class:`FuncError`
    the literal is left alone, so the error still surfaces when called.
    """

    __slots__ = ("name", "fn", "params", "variadic", "prepare")

    def __init__(self, name, fn, params=(), variadic=None, prepare=None):
        self.name = name
        self.fn = fn
        self.params = params
        self.variadic = variadic
        self.prepare = prepare


_S, _I, _F, _A, _V, _T = "string", "int", "float64", "any", "value", "time.Time"

FUNCTIONS: dict[str, FuncSpec] = {spec.name: spec for spec in (
    # Go text/template builtins (and/or short-circuit and are compiled specially)
    FuncSpec("and", None, (_V,), _V),
    FuncSpec("or", None, (_V,), _V),
    FuncSpec("not", lambda a: not is_true(a), (_V,)),
    FuncSpec("call", builtins.call, (_V,), _V),
    FuncSpec("html", builtins.html, (), _A),
    FuncSpec("js", builtins.js, (), _A),
    FuncSpec("urlquery", builtins.urlquery, (), _A),
    FuncSpec("index", builtins.index, (_V,), _V),
    FuncSpec("slice", builtins.slice, (_V,), _V),
    FuncSpec("len", builtins.length, (_V,)),
    FuncSpec("print", lambda *a: go_sprint(a), (), _A),
    FuncSpec("printf", lambda f, *a: go_sprintf(f, a), (_S,), _A),
    FuncSpec("println", lambda *a: go_sprintln(a), (), _A),
    FuncSpec("eq", builtins.eq, (_V,), _V),
    FuncSpec("ne", builtins.ne, (_V, _V)),
    FuncSpec("lt", builtins.lt, (_V, _V)),
    FuncSpec("le", builtins.le, (_V, _V)),
    FuncSpec("gt", builtins.gt, (_V, _V)),
    FuncSpec("ge", builtins.ge, (_V, _V)),
    # Loki's own (pkg/logql/log/fmt.go); __line__ and __timestamp__ read the entry
    FuncSpec("__line__", None),
    FuncSpec("__timestamp__", None),
    FuncSpec("ToLower", _go_to_lower, (_S,)),
    FuncSpec("ToUpper", _go_to_upper, (_S,)),
    FuncSpec("Replace", _go_replace, (_S, _S, _S, _I)),
    FuncSpec("Trim", lambda s, cut: s.strip(cut), (_S, _S)),
    FuncSpec("TrimLeft", lambda s, cut: s.lstrip(cut), (_S, _S)),
    FuncSpec("TrimRight", lambda s, cut: s.rstrip(cut), (_S, _S)),
    FuncSpec("TrimPrefix", lambda s, p: s.removeprefix(p), (_S, _S)),
    FuncSpec("TrimSuffix", lambda s, p: s.removesuffix(p), (_S, _S)),
    FuncSpec("TrimSpace", lambda s: s.strip(_GO_SPACE), (_S,)),
    FuncSpec("regexReplaceAll", _regex_replace_all, (_S, _S, _S), prepare=(0, compile_regex)),
    FuncSpec("regexReplaceAllLiteral", _regex_replace_all_literal, (_S, _S, _S),
             prepare=(0, compile_regex)),
    FuncSpec("count", _count, (_S, _S), prepare=(0, compile_regex)),
    FuncSpec("urldecode", _urldecode, (_S,)),
    FuncSpec("urlencode", builtins.query_escape, (_S,)),
    FuncSpec("bytes", _convert_bytes, (_S,)),
    FuncSpec("duration", _convert_duration, (_S,)),
    FuncSpec("duration_seconds", _convert_duration, (_S,)),
    FuncSpec("unixEpochMillis", lambda t: str(wrap64(t.sec * 1000 + t.nsec // 1_000_000)), (_T,)),
    FuncSpec("unixEpochNanos", lambda t: str(t.unix_nano()), (_T,)),
    FuncSpec("toDateInZone", _to_date_in_zone, (_S, _S, _S)),
    FuncSpec("unixToTime", _unix_to_time, (_S,)),
    FuncSpec("alignLeft", _align_left, (_I, _S)),
    FuncSpec("alignRight", _align_right, (_I, _S)),
    # sprig (the subset Loki enables)
    FuncSpec("b64enc", lambda s: base64.b64encode(utf8(s)).decode("ascii"), (_S,)),
    FuncSpec("b64dec", _b64dec, (_S,)),
    FuncSpec("lower", _go_to_lower, (_S,)),
    FuncSpec("upper", _go_to_upper, (_S,)),
    FuncSpec("title", _title, (_S,)),
    FuncSpec("trunc", _trunc, (_I, _S)),
    FuncSpec("substr", _substr, (_I, _I, _S)),
    FuncSpec("contains", lambda sub, s: sub in s, (_S, _S)),
    FuncSpec("hasPrefix", lambda p, s: s.startswith(p), (_S, _S)),
    FuncSpec("hasSuffix", lambda p, s: s.endswith(p), (_S, _S)),
    FuncSpec("indent", _indent, (_I, _S)),
    FuncSpec("nindent", lambda n, v: "\n" + _indent(n, v), (_I, _S)),
    FuncSpec("replace", lambda old, new, src: src.replace(old, new), (_S, _S, _S)),
    FuncSpec("repeat", _repeat, (_I, _S)),
    FuncSpec("trim", lambda s: s.strip(_GO_SPACE), (_S,)),
    FuncSpec("trimAll", lambda cut, s: s.strip(cut), (_S, _S)),
    FuncSpec("trimSuffix", lambda suf, s: s.removesuffix(suf), (_S, _S)),
    FuncSpec("trimPrefix", lambda pre, s: s.removeprefix(pre), (_S, _S)),
    FuncSpec("int", to_int64, (_A,)),
    FuncSpec("float64", to_float64, (_A,)),
    FuncSpec("add", _add, (), _A),
    FuncSpec("sub", lambda a, b: wrap64(to_int64(a) - to_int64(b)), (_A, _A)),
    FuncSpec("mul", _mul, (_A,), _A),
    FuncSpec("div", _div, (_A, _A)),
    FuncSpec("mod", _mod, (_A, _A)),
    FuncSpec("addf", lambda *v: _decimal_op(0.0, v, "+"), (), _A),
    FuncSpec("subf", lambda a, *v: _decimal_op(a, v, "-"), (_A,), _A),
    FuncSpec("mulf", lambda a, *v: _decimal_op(a, v, "*"), (_A,), _A),
    FuncSpec("divf", lambda a, *v: _decimal_op(a, v, "/"), (_A,), _A),
    FuncSpec("max", _max, (_A,), _A),
    FuncSpec("min", _min, (_A,), _A),
    FuncSpec("maxf", _maxf, (_A,), _A),
    FuncSpec("minf", _minf, (_A,), _A),
    FuncSpec("ceil", _ceil, (_A,)),
    FuncSpec("floor", _floor, (_A,)),
    FuncSpec("round", _round, (_A, _I), _F),
    FuncSpec("fromJson", _from_json, (_S,)),
    FuncSpec("date", _date, (_S, _A), prepare=(0, Layout)),
    FuncSpec("toDate", _to_date, (_S, _S)),
    FuncSpec("now", lambda: GoTime.from_unix_ns(_time.time_ns())),
    FuncSpec("unixEpoch", lambda t: str(t.sec), (_T,)),
    FuncSpec("default", _default, (_A,), _A),
)}


def _time_in_utc(t: GoTime) -> GoTime:
    return GoTime(t.sec, t.nsec)


#: Methods of ``time.Time`` reachable as fields (``{{ (__timestamp__).Unix }}``).
TIME_METHODS: dict[str, FuncSpec] = {spec.name: spec for spec in (
    FuncSpec("Unix", lambda t: Int64(t.sec)),
    FuncSpec("UnixMilli", lambda t: wrap64(t.sec * 1000 + t.nsec // 1_000_000)),
    FuncSpec("UnixMicro", lambda t: wrap64(t.sec * 1_000_000 + t.nsec // 1000)),
    FuncSpec("UnixNano", lambda t: t.unix_nano()),
    FuncSpec("Year", lambda t: t.fields()[0]),
    FuncSpec("Month", lambda t: Month(t.fields()[1])),
    FuncSpec("Day", lambda t: t.fields()[2]),
    FuncSpec("Hour", lambda t: t.fields()[3]),
    FuncSpec("Minute", lambda t: t.fields()[4]),
    FuncSpec("Second", lambda t: t.fields()[5]),
    FuncSpec("Nanosecond", lambda t: t.nsec),
    FuncSpec("YearDay", lambda t: t.fields()[6]),
    FuncSpec("Weekday", lambda t: Weekday(t.fields()[7])),
    FuncSpec("Format", lambda t, layout: format_time(t, layout), (_S,)),
    FuncSpec("String", lambda t: str(t)),
    FuncSpec("UTC", _time_in_utc),
    FuncSpec("Local", _time_in_utc),
    FuncSpec("IsZero", lambda t: t.sec == ZERO_TIME.sec and t.nsec == 0),
    FuncSpec("Before", lambda t, u: (t.sec, t.nsec) < (u.sec, u.nsec), (_T,)),
    FuncSpec("After", lambda t, u: (t.sec, t.nsec) > (u.sec, u.nsec), (_T,)),
    FuncSpec("Equal", lambda t, u: (t.sec, t.nsec) == (u.sec, u.nsec), (_T,)),
)}

