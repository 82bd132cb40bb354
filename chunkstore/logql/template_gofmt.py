"""Go's ``fmt`` for LogQL templates: how values print, ``print``, ``printf``, ``println``.

A ``{{ }}`` action prints its value with ``%v``; ``printf`` takes Go verbs
(``%s %d %v %f %.2f %q %x %5s %-5s %+d %T``...) with Go's flags, widths
(counted in characters), argument indexes (``%[2]d``) and Go's in-band
errors (``%!d(string=x)``, ``%!d(MISSING)``, ``%!(EXTRA int=2)``), which a
template prints rather than raises. Floats print as Go prints them: the
shortest round-trip digits, exponent form from ``1e+21`` and below ``1e-4``
for ``%v`` (so ``1e6`` prints ``1e+06``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .template_values import NIL_IFACE, GoInt, go_type_name, utf8

__all__ = ["go_quote", "go_sprint", "go_sprintln", "go_sprintf", "print_value", "format_float"]


class _Spec:
    """The flags, width and precision of one verb (Go's ``fmt.fmtFlags``)."""

    __slots__ = ("minus", "plus", "sharp", "space", "zero", "wid", "prec", "sharpv")

    def __init__(self):
        self.minus = self.plus = self.sharp = self.space = self.zero = self.sharpv = False
        self.wid = self.prec = None


_PLAIN = _Spec()


def _pad(s: str, sp: _Spec, zero: bool | None = None) -> str:
    w = sp.wid
    if w is None or w <= len(s):
        return s
    if sp.minus:
        return s + " " * (w - len(s))
    return ("0" if (sp.zero if zero is None else zero) else " ") * (w - len(s)) + s


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v"}


def _escape_rune(c: str, quote: str, ascii_only: bool) -> str:
    if c == quote or c == "\\":
        return "\\" + c
    if (c < "\x80" or not ascii_only) and c.isprintable():
        return c
    e = _ESCAPES.get(c)
    if e is not None:
        return e
    o = ord(c)
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    if 0xD800 <= o <= 0xDFFF:
        o = 0xFFFD
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def go_quote(s: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (``QuoteToASCII`` when ``ascii_only``)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return '"' + "".join(_escape_rune(c, '"', ascii_only) for c in s) + '"'


def _quote_rune(r: int, ascii_only: bool = False) -> str:
    c = chr(r) if 0 <= r <= 0x10FFFF and not 0xD800 <= r <= 0xDFFF else "\ufffd"
    return "'" + _escape_rune(c, "'", ascii_only) + "'"


def _shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of finite ``abs(f)`` and the decimal point position."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    dp = len(ip) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    return (digits, dp) if digits else ("0", 1)


def _fmt_e_digits(digits: str, dp: int, prec: int, e: str) -> str:
    m = digits[0] + ("." + digits[1:prec + 1].ljust(prec, "0") if prec > 0 else "")
    x = dp - 1 if digits != "0" else 0
    return f"{m}{e}{'-' if x < 0 else '+'}{abs(x):02d}"


def _fmt_f_digits(digits: str, dp: int, prec: int) -> str:
    if dp <= 0:
        ip, fp = "0", "0" * -dp + digits
    else:
        ip, fp = digits[:dp].ljust(dp, "0"), digits[dp:]
    return ip + ("." + fp[:prec].ljust(prec, "0") if prec > 0 else "")


def format_float(f: float, verb: str, prec: int) -> str:
    """Go's ``strconv.FormatFloat(f, verb, prec, 64)`` (``prec`` -1: shortest)."""
    if f != f:
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if verb in "xX":
        h = float.hex(abs(f))  # '0x1.8000000000000p+1'
        mant, _, exp = h[2:].partition("p")
        mant = mant.rstrip("0").rstrip(".") if prec < 0 else mant
        e = int(exp) if f else 0
        s = f"0x{mant}p{'-' if e < 0 else '+'}{abs(e):02d}"
        return sign + (s.upper() if verb == "X" else s)
    if verb == "b":
        m, e = math.frexp(abs(f))
        return f"{sign}{int(m * (1 << 53))}p{e - 53:+d}" if f else f"{sign}0p-1074"
    if prec < 0:
        digits, dp = _shortest_digits(f)
        nd = len(digits) if digits != "0" else 1
        if verb in "eE":
            return sign + _fmt_e_digits(digits, dp, nd - 1, verb)
        if verb in "fF":
            return sign + _fmt_f_digits(digits, dp, max(nd - dp, 0))
        x = dp - 1
        if digits != "0" and (x < -4 or x >= 6):  # %g with shortest precision
            return sign + _fmt_e_digits(digits, dp, nd - 1, "e" if verb == "g" else "E")
        if digits == "0":
            return sign + "0"
        return sign + _fmt_f_digits(digits, dp, max(nd - dp, 0))
    if verb == "F":
        verb = "f"
    return format(f, f".{prec}{verb}")


def _fmt_float(v: float, verb: str, sp: _Spec) -> str:
    if verb == "v":
        verb, prec = "g", -1
    elif verb in "bgGxX":
        prec = -1
    elif verb in "eEfF":
        prec = 6
    else:
        return _bad_verb(v, verb, sp)
    if sp.prec is not None:
        prec = sp.prec
    num = format_float(v, verb, prec)
    if num[0] not in "+-":
        num = "+" + num
    if sp.space and num[0] == "+" and not sp.plus:
        num = " " + num[1:]
    if num[1] in "IN":
        if num[1] == "N" and not sp.space and not sp.plus:
            num = num[1:]
        return _pad(num, sp, zero=False)
    if sp.sharp and verb != "b":
        digits = (6 if prec == -1 else prec) if verb in "gGx" else 0
        tail = ""
        body = num
        cut = next((i for i, ch in enumerate(num) if ch in ("pP" if verb in "xX" else "eEpP")), -1)
        if cut > 0:
            body, tail = num[:cut], num[cut:]
        saw_nonzero = False
        for ch in body[1:]:
            if ch == ".":
                continue
            if ch != "0":
                saw_nonzero = True
            if saw_nonzero:
                digits -= 1
        if "." not in body:
            if len(body) == 2 and body[1] == "0":
                digits -= 1
            body += "."
        num = body + "0" * max(digits, 0) + tail
    if sp.plus or num[0] != "+":
        if sp.zero and sp.wid is not None and sp.wid > len(num):
            return num[0] + "0" * (sp.wid - len(num)) + num[1:]
        return _pad(num, sp)
    return _pad(num[1:], sp)


def _fmt_int(v: int, verb: str, sp: _Spec, arg=None) -> str:
    if verb in "vd":
        base, digs = 10, "d"
    elif verb == "b":
        base, digs = 2, "b"
    elif verb in "oO":
        base, digs = 8, "o"
    elif verb == "x":
        base, digs = 16, "x"
    elif verb == "X":
        base, digs = 16, "X"
    elif verb == "c":
        return _pad(chr(v) if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF else "\ufffd", sp)
    elif verb == "q":
        return _pad(_quote_rune(v, sp.plus), sp)
    elif verb == "U":
        u = v & ((1 << 64) - 1)
        s = "U+" + format(u, "X").rjust(sp.prec if sp.prec is not None else 4, "0")
        if sp.sharp and u <= 0x10FFFF and chr(u).isprintable():
            s += " '" + chr(u) + "'"
        return _pad(s, sp, zero=False)
    else:
        return _bad_verb(v if arg is None else arg, verb, sp)
    neg = v < 0
    u = -v if neg else v
    prec = 0
    if sp.prec is not None:
        prec = sp.prec
        if prec == 0 and u == 0:
            return " " * (sp.wid or 0)
    elif sp.zero and sp.wid is not None:
        prec = sp.wid - (1 if neg or sp.plus or sp.space else 0)
    s = format(u, digs).rjust(prec, "0")
    if sp.sharp:
        if base == 2:
            s = "0b" + s
        elif base == 8 and s[0] != "0":
            s = "0" + s
        elif base == 16:
            s = ("0x" if digs == "x" else "0X") + s
    if verb == "O":
        s = "0o" + s
    if neg:
        s = "-" + s
    elif sp.plus:
        s = "+" + s
    elif sp.space:
        s = " " + s
    return _pad(s, sp, zero=False)


def _fmt_str(s: str, verb: str, sp: _Spec, arg=None) -> str:
    if verb == "s" or (verb == "v" and not sp.sharpv):
        if sp.prec is not None:
            s = s[:sp.prec]
        return _pad(s, sp)
    if verb == "q" or verb == "v":
        if sp.prec is not None:
            s = s[:sp.prec]
        if sp.sharp and "`" not in s and "\ufeff" not in s and all(
                c == "\t" or (c >= " " and c != "\x7f") for c in s):
            return _pad("`" + s + "`", sp)
        return _pad(go_quote(s, sp.plus), sp)
    if verb in "xX":
        b = utf8(s)
        if sp.prec is not None:
            b = b[:sp.prec]
        digits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
        if not b:
            return " " * (sp.wid or 0)
        prefix = "0" + verb if sp.sharp else ""
        if sp.space:
            out = " ".join(prefix + digits[c >> 4] + digits[c & 15] for c in b)
        else:
            out = prefix + "".join(digits[c >> 4] + digits[c & 15] for c in b)
        return _pad(out, sp)
    return _bad_verb(s if arg is None else arg, verb, sp)


def _bad_verb(arg, verb: str, sp: _Spec) -> str:
    if arg is None or arg is NIL_IFACE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type_name(arg)}={_fmt_arg(arg, 'v', sp)})"


def _fmt_arg(arg, verb: str, sp: _Spec) -> str:
    """Go's ``printArg``: format one operand for one verb."""
    if arg is None or arg is NIL_IFACE:
        return _pad("<nil>", sp) if verb in "Tv" else _bad_verb(None, verb, sp)
    if verb == "T":
        return _fmt_str(go_type_name(arg), "s", sp)
    t = type(arg)
    if t is str:
        return _fmt_str(arg, verb, sp)
    if t is bool:
        if verb in "tv":
            return _pad("true" if arg else "false", sp)
        return _bad_verb(arg, verb, sp)
    if t is int:
        return _fmt_int(arg, verb, sp)
    if t is float:
        return _fmt_float(arg, verb, sp)
    if verb == "p":
        return _bad_verb(arg, verb, sp)
    if getattr(t, "go_stringer", False):  # time.Time, time.Month, time.Weekday
        if verb in "vsxXq":
            return _fmt_str(str(arg), verb, sp, arg)
        if isinstance(arg, GoInt):
            return _fmt_int(int(arg), verb, sp, arg)
        return _bad_verb(arg, verb, sp)
    if isinstance(arg, GoInt):
        return _fmt_int(int(arg), verb, sp, arg)
    if t is complex:
        if verb not in "vbgGxXfFeE":
            return _bad_verb(arg, verb, sp)
        inner = _Spec()
        for k in _Spec.__slots__:
            setattr(inner, k, getattr(sp, k))
        inner.wid = None
        re_ = _fmt_float(arg.real, verb, inner)
        inner.plus = True
        im = _fmt_float(arg.imag, verb, inner)
        return _pad("(" + re_ + im + "i)", sp)
    if sp.sharpv and (t is list or isinstance(arg, Mapping)):
        return _go_syntax(arg, sp)
    if t is list:
        return "[" + " ".join("<nil>" if e is None else _fmt_arg(e, verb, sp) for e in arg) + "]"
    if isinstance(arg, Mapping):
        return "map[" + " ".join(
            _fmt_arg(k, verb, sp) + ":"
            + ("<nil>" if arg[k] is None else _fmt_arg(arg[k], verb, sp))
            for k in sorted(arg)) + "]"
    return _pad(str(arg), sp)


def _go_syntax(v, sp: _Spec) -> str:
    """``%#v`` of a container: Go-syntax literals (``map[string]string{"a":"b"}``)."""
    if v is None or v is NIL_IFACE:
        return "interface {}(nil)"
    if type(v) is list:
        return "[]interface {}{" + ", ".join(_go_syntax(e, sp) for e in v) + "}"
    if isinstance(v, Mapping):
        typ = go_type_name(v)
        return typ + "{" + ", ".join(
            go_quote(k) + ":" + _go_syntax(v[k], sp) for k in sorted(v)) + "}"
    return _fmt_arg(v, "v", sp)


def print_value(v) -> str:
    """How a ``{{ }}`` action prints its value (Go's ``fmt.Fprint`` after ``printableValue``)."""
    if type(v) is str:
        return v
    if v is None or v is NIL_IFACE:
        return "<no value>"
    return _fmt_arg(v, "v", _PLAIN)


def go_sprint(args) -> str:
    """Go's ``fmt.Sprint``: spaces between operands when neither is a string."""
    out = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = type(a) is str
        if i and not is_string and not prev_string:
            out.append(" ")
        out.append(_fmt_arg(a, "v", _PLAIN))
        prev_string = is_string
    return "".join(out)


def go_sprintln(args) -> str:
    """Go's ``fmt.Sprintln``: operands separated by spaces, then a newline."""
    return " ".join(_fmt_arg(a, "v", _PLAIN) for a in args) + "\n"


def _too_large(x: int) -> bool:
    return x > 1_000_000 or x < -1_000_000


def _parsenum(s: str, i: int, end: int) -> tuple[int, bool, int]:
    num, isnum = 0, False
    while i < end and "0" <= s[i] <= "9":
        if _too_large(num):
            return 0, False, end
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def go_sprintf(fmt: str, args) -> str:
    """Go's ``fmt.Sprintf``, including its in-band errors (``%!d(string=x)``)."""
    out = []
    end = len(fmt)
    argnum = 0
    reordered = False
    i = 0
    nargs = len(args)
    while i < end:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        sp = _Spec()
        good_argnum = True
        after_index = False
        while i < end:  # flags
            c = fmt[i]
            if c == "#":
                sp.sharp = True
            elif c == "0":
                sp.zero = not sp.minus
            elif c == "+":
                sp.plus = True
            elif c == "-":
                sp.minus, sp.zero = True, False
            elif c == " ":
                sp.space = True
            else:
                break
            i += 1

        def arg_number(argnum: int, i: int):
            nonlocal reordered, good_argnum
            if i >= end or fmt[i] != "[":
                return argnum, i, False
            reordered = True
            close = fmt.find("]", i + 1)
            if close < 0 or end - i < 3:
                good_argnum = False
                return argnum, i + 1, False
            width, ok, newi = _parsenum(fmt, i + 1, close)
            if not ok or newi != close:
                good_argnum = False
                return argnum, close + 1, False
            if 0 <= width - 1 < nargs:
                return width - 1, close + 1, True
            good_argnum = False
            return argnum, close + 1, True

        def int_from_arg(argnum: int):
            if argnum < nargs:
                a = args[argnum]
                if (type(a) is int or isinstance(a, GoInt)) and not _too_large(a):
                    return a, True, argnum + 1
                return 0, False, argnum + 1
            return 0, False, argnum

        argnum, i, after_index = arg_number(argnum, i)
        if i < end and fmt[i] == "*":
            i += 1
            wid, ok, argnum = int_from_arg(argnum)
            sp.wid = wid if ok else None
            if not ok:
                out.append("%!(BADWIDTH)")
            elif wid < 0:
                sp.wid, sp.minus, sp.zero = -wid, True, False
            after_index = False
        else:
            wid, ok, i = _parsenum(fmt, i, end)
            sp.wid = wid if ok else None
            if after_index and ok:
                good_argnum = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                good_argnum = False
            argnum, i, after_index = arg_number(argnum, i)
            if i < end and fmt[i] == "*":
                i += 1
                prec, ok, argnum = int_from_arg(argnum)
                sp.prec = prec if ok and prec >= 0 else None
                if not ok:
                    out.append("%!(BADPREC)")
                after_index = False
            else:
                prec, ok, i = _parsenum(fmt, i, end)
                sp.prec = prec if ok else 0
        if not after_index:
            argnum, i, after_index = arg_number(argnum, i)
        if i >= end:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
        elif not good_argnum:
            out.append(f"%!{verb}(BADINDEX)")
        elif argnum >= nargs:
            out.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                sp.sharpv, sp.sharp = sp.sharp, False
                sp.plus = False
            out.append(_fmt_arg(args[argnum], verb, sp))
            argnum += 1
    if not reordered and argnum < nargs:
        extra = ", ".join("<nil>" if a is None else f"{go_type_name(a)}={_fmt_arg(a, 'v', _PLAIN)}"
                          for a in args[argnum:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
