"""Turn a LogQL syntax tree back into canonical query text.

The contract, checked by property tests: ``parse(to_string(tree)) == tree``
for every tree the printer accepts, and so ``to_string(parse(text))`` is a
fixed point. Canonical means: keywords lower case, strings double-quoted
with Go escapes, single spaces around operators, the pipeline of a range
before ``[range]``, grouping before a vector aggregation's arguments,
parentheses only where precedence needs them, numbers in their shortest
round-tripping form, durations in ``h m s ms us ns`` and sizes in the
largest exact unit.

Trees that cannot be written (a label name that is a keyword, a NaN
literal, a negative range, a 0.5 ns offset) raise ValueError naming the
offending value; the parser never produces such trees.
"""

from __future__ import annotations

import math

from . import ast
from .durations import format_bytes, format_duration, format_range
from .lexer import KEYWORDS
from .parser_metric import BINARY_PRECEDENCE

__all__ = ["to_string", "quote"]

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def to_string(node: ast.Node) -> str:
    """Canonical LogQL text for any node (a whole query, a selector, a stage, a filter...)."""
    return _Printer().node(node)


def quote(text: str) -> str:
    """A double-quoted LogQL string literal with Go escapes; non-printable characters escaped."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            if 0xD800 <= code <= 0xDFFF:
                raise ValueError(f"printer: string holds a lone surrogate U+{code:04X}: {text!r}")
            if code < 0x80:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _name(name: str) -> str:
    """A label name as written: it must lex as a plain identifier."""
    if (
        not name
        or not (name[0] == "_" or name[0].isalpha())
        or not all(c == "_" or c.isalpha() or c.isdecimal() for c in name)
    ):
        raise ValueError(f"printer: {name!r} is not a valid label name")
    if name.lower() in KEYWORDS:
        raise ValueError(f"printer: label name {name!r} is a LogQL keyword and cannot be written")
    return name


def _number(value: float, *, signed: bool = True) -> str:
    """Shortest text the lexer reads back as exactly ``value``."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"printer: number must be finite, got {value!r}")
    if value == 0:
        if math.copysign(1.0, value) < 0:
            if not signed:
                raise ValueError("printer: -0.0 cannot be written here")
            return "-0.0"  # "-0" would lex as a Go duration of zero
        return "0"
    if value < 0 and not signed:
        raise ValueError(f"printer: a negative number cannot be written here: {value!r}")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(labels: tuple[str, ...]) -> str:
    return "(" + ", ".join(_name(label) for label in labels) + ")"


class _Printer:
    def node(self, node: ast.Node) -> str:
        method = getattr(self, "p_" + type(node).__name__, None)
        if method is None:
            raise ValueError(f"printer: cannot print {type(node).__name__}")
        return method(node)

    # -- selectors and log queries ----------------------------------------

    def p_Matcher(self, m: ast.Matcher) -> str:
        return f"{_name(m.name)}{m.op}{quote(m.value)}"

    def p_Selector(self, s: ast.Selector) -> str:
        return "{" + ", ".join(self.p_Matcher(m) for m in s.matchers) + "}"

    def p_LogQuery(self, q: ast.LogQuery) -> str:
        return " ".join([self.p_Selector(q.selector)] + self.stages(q.stages))

    def stages(self, stages: tuple[ast.Stage, ...]) -> list[str]:
        for stage, following in zip(stages, stages[1:], strict=False):
            if (
                isinstance(stage, (ast.Drop, ast.Keep))
                and isinstance(stage.items[-1], str)
                and isinstance(following, ast.LineFilter)
                and following.op in ("!=", "!~")
            ):
                # "| drop a != "x"" reads as a drop matcher, in Loki as here.
                raise ValueError(
                    f"printer: a {following.op} line filter right after drop/keep"
                    " of a bare label name cannot be written"
                )
        return [self.node(stage) for stage in stages]

    # -- stages ------------------------------------------------------------

    def p_LineFilter(self, f: ast.LineFilter) -> str:
        operands = [
            f"ip({quote(v)})" if is_ip else quote(v)
            for v, is_ip in zip(f.values, f.ips, strict=True)
        ]
        return f"{f.op} " + " or ".join(operands)

    def _extractions(self, items: tuple[ast.LabelExtraction, ...]) -> str:
        parts = []
        for item in items:
            name = _name(item.name)
            parts.append(
                name if item.expression == item.name else f"{name}={quote(item.expression)}"
            )
        return ", ".join(parts)

    def p_JSONParser(self, p: ast.JSONParser) -> str:
        return "| json" + (" " + self._extractions(p.extractions) if p.extractions else "")

    def p_LogfmtParser(self, p: ast.LogfmtParser) -> str:
        text = "| logfmt"
        if p.strict:
            text += " --strict"
        if p.keep_empty:
            text += " --keep-empty"
        if p.extractions:
            text += " " + self._extractions(p.extractions)
        return text

    def p_RegexpParser(self, p: ast.RegexpParser) -> str:
        return f"| regexp {quote(p.pattern)}"

    def p_PatternParser(self, p: ast.PatternParser) -> str:
        return f"| pattern {quote(p.pattern)}"

    def p_UnpackParser(self, p: ast.UnpackParser) -> str:
        return "| unpack"

    def p_Decolorize(self, p: ast.Decolorize) -> str:
        return "| decolorize"

    def p_LineFormat(self, p: ast.LineFormat) -> str:
        return f"| line_format {quote(p.template)}"

    def p_LabelFormatItem(self, item: ast.LabelFormatItem) -> str:
        value = _name(item.value) if item.rename else quote(item.value)
        return f"{_name(item.name)}={value}"

    def p_LabelFormat(self, p: ast.LabelFormat) -> str:
        if not p.items:
            raise ValueError("printer: label_format needs at least one item")
        return "| label_format " + ", ".join(self.p_LabelFormatItem(item) for item in p.items)

    def _named_matchers(self, word: str, items: tuple) -> str:
        if not items:
            raise ValueError(f"printer: {word} needs at least one label")
        parts = [
            self.p_Matcher(item) if isinstance(item, ast.Matcher) else _name(item) for item in items
        ]
        return f"| {word} " + ", ".join(parts)

    def p_Drop(self, p: ast.Drop) -> str:
        return self._named_matchers("drop", p.items)

    def p_Keep(self, p: ast.Keep) -> str:
        return self._named_matchers("keep", p.items)

    def p_LabelFilter(self, p: ast.LabelFilter) -> str:
        return "| " + self.filter(p.expr)

    # -- label filter predicates ------------------------------------------
    #
    # Printed with "and"/"or" only. The right operand of either needs
    # parentheses when it is a chain of its own kind or looser (both are
    # left-associative), an "or" under an "and" always does.

    def filter(self, f: ast.LabelFilterExpr) -> str:
        if isinstance(f, ast.AndLabelFilter):
            left = self._filter_operand(f.left, parenthesise=isinstance(f.left, ast.OrLabelFilter))
            right = self._filter_operand(
                f.right, parenthesise=isinstance(f.right, (ast.AndLabelFilter, ast.OrLabelFilter))
            )
            return f"{left} and {right}"
        if isinstance(f, ast.OrLabelFilter):
            left = self._filter_operand(f.left, parenthesise=False)
            right = self._filter_operand(
                f.right, parenthesise=isinstance(f.right, ast.OrLabelFilter)
            )
            return f"{left} or {right}"
        return self.node(f)

    def _filter_operand(self, f: ast.LabelFilterExpr, *, parenthesise: bool) -> str:
        text = self.filter(f)
        return f"({text})" if parenthesise else text

    def p_StringLabelFilter(self, f: ast.StringLabelFilter) -> str:
        return f"{_name(f.name)}{f.op}{quote(f.value)}"

    def p_NumericLabelFilter(self, f: ast.NumericLabelFilter) -> str:
        return f"{_name(f.name)} {f.op} {_number(f.value)}"

    def p_DurationLabelFilter(self, f: ast.DurationLabelFilter) -> str:
        return f"{_name(f.name)} {f.op} {format_duration(f.value_ns)}"

    def p_BytesLabelFilter(self, f: ast.BytesLabelFilter) -> str:
        return f"{_name(f.name)} {f.op} {format_bytes(f.value)}"

    def p_IPLabelFilter(self, f: ast.IPLabelFilter) -> str:
        return f"{_name(f.name)}{f.op}ip({quote(f.pattern)})"

    p_AndLabelFilter = filter
    p_OrLabelFilter = filter

    # -- metric expressions ------------------------------------------------

    def p_Unwrap(self, u: ast.Unwrap) -> str:
        label = _name(u.label)
        text = f"| unwrap {u.conversion}({label})" if u.conversion else f"| unwrap {label}"
        return " ".join([text] + ["| " + self.filter(f) for f in u.post_filters])

    def p_LogRange(self, r: ast.LogRange) -> str:
        parts = [self.p_Selector(r.selector)] + self.stages(r.stages)
        if r.unwrap is not None:
            parts.append(self.p_Unwrap(r.unwrap))
        text = " ".join(parts)
        # "{a="b"}[5m]" reads better glued; after a pipeline a space keeps
        # the last string or name visibly apart from the range.
        text += ("" if len(parts) == 1 else " ") + f"[{format_range(r.range_ns)}]"
        if r.offset_ns:
            text += f" offset {format_duration(r.offset_ns)}"
        return text

    def p_Grouping(self, g: ast.Grouping) -> str:
        return ("without " if g.without else "by ") + _labels(g.labels)

    def p_RangeAggregation(self, e: ast.RangeAggregation) -> str:
        param = "" if e.param is None else _number(e.param, signed=False) + ", "
        text = f"{e.op}({param}{self.p_LogRange(e.log_range)})"
        if e.grouping is not None:
            text += " " + self.p_Grouping(e.grouping)
        return text

    def p_VectorAggregation(self, e: ast.VectorAggregation) -> str:
        grouping = "" if e.grouping is None else self.p_Grouping(e.grouping) + " "
        if e.param is not None:
            if isinstance(e.param, bool) or int(e.param) != e.param or e.param < 0:
                raise ValueError(
                    f"printer: aggregation parameter must be a non-negative int, got {e.param!r}"
                )
            param = f"{int(e.param)}, "
        else:
            param = ""
        return (
            f"{e.op} {grouping}({param}{self.expr(e.expr)})"
            if grouping
            else f"{e.op}({param}{self.expr(e.expr)})"
        )

    def p_NumberLiteral(self, e: ast.NumberLiteral) -> str:
        return _number(e.value)

    def p_VectorExpr(self, e: ast.VectorExpr) -> str:
        return f"vector({_number(e.value, signed=False)})"

    def p_LabelReplace(self, e: ast.LabelReplace) -> str:
        args = [self.expr(e.expr)] + [quote(s) for s in (e.dst, e.replacement, e.src, e.regex)]
        return "label_replace(" + ", ".join(args) + ")"

    def p_VectorMatching(self, m: ast.VectorMatching, rhs_text: str = "") -> str:
        text = ("on " if m.on else "ignoring ") + _labels(m.labels)
        if m.card == "many-to-one":
            text += " group_left"
        elif m.card == "one-to-many":
            text += " group_right"
        if m.include:
            if m.card == "one-to-one":
                raise ValueError("printer: include labels need group_left or group_right")
            text += " " + _labels(m.include)
        elif m.card != "one-to-one" and rhs_text.startswith("("):
            text += " ()"  # otherwise "(" would open the include list
        return text

    def p_BinaryOp(self, e: ast.BinaryOp) -> str:
        prec, right_assoc = BINARY_PRECEDENCE[e.op]
        lhs = self._operand(e.lhs, prec, tighter_on_tie=right_assoc)
        rhs = self._operand(e.rhs, prec, tighter_on_tie=not right_assoc)
        op = e.op
        if e.return_bool:
            op += " bool"
        if e.matching is not None:
            op += " " + self.p_VectorMatching(e.matching, rhs)
        return f"{lhs} {op} {rhs}"

    def _operand(self, e: ast.Expr, prec: int, *, tighter_on_tie: bool) -> str:
        text = self.expr(e)
        if isinstance(e, ast.BinaryOp):
            child = BINARY_PRECEDENCE[e.op][0]
            if child < prec or (child == prec and tighter_on_tie):
                return f"({text})"
        return text

    def expr(self, e: ast.Expr) -> str:
        if isinstance(e, ast.LogQuery):
            raise ValueError("printer: a log query cannot be an operand of a metric expression")
        return self.node(e)
