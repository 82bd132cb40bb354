"""The metric half of the LogQL parser: expressions, aggregations and log ranges.

:class:`MetricGrammar` is mixed into the parser in :mod:`.parser`, which
supplies token handling, selectors and pipelines. Binary operators use
precedence climbing with Loki's (= Prometheus') table, loosest first:
``or``; ``and unless``; comparisons; ``+ -``; ``* / %``; ``^``
(right-associative). A sign is part of a number literal, as in Loki's
grammar, so ``-1 ^ 2`` is ``(-1) ^ 2`` and ``-rate(...)`` is an error.
"""

from __future__ import annotations

import math
import re

from . import ast

__all__ = ["MetricGrammar", "BINARY_PRECEDENCE"]

#: Binary operator -> (precedence, right-associative).
BINARY_PRECEDENCE = {
    "or": (1, False),
    "and": (2, False),
    "unless": (2, False),
    "==": (3, False),
    "!=": (3, False),
    ">": (3, False),
    ">=": (3, False),
    "<": (3, False),
    "<=": (3, False),
    "+": (4, False),
    "-": (4, False),
    "*": (5, False),
    "/": (5, False),
    "%": (5, False),
    "^": (6, True),
}
_SET_OPS = frozenset({"or", "and", "unless"})

# Range aggregations and what Loki allows with them (RangeAggregationExpr.validate).
_GROUPING_ALLOWED = frozenset(
    {
        "avg_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
        "max_over_time",
        "min_over_time",
        "first_over_time",
        "last_over_time",
    }
)
_UNWRAP_ALLOWED = frozenset(
    {
        "avg_over_time",
        "sum_over_time",
        "max_over_time",
        "min_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
        "rate",
        "rate_counter",
        "absent_over_time",
        "first_over_time",
        "last_over_time",
    }
)
_WITHOUT_UNWRAP_ALLOWED = frozenset(
    {"bytes_over_time", "bytes_rate", "count_over_time", "rate", "absent_over_time"}
)
_K_OPS = frozenset({"topk", "bottomk", "approx_topk"})
_ATOI = re.compile(r"[0-9]+")


class MetricGrammar:
    """Metric expression rules; relies on the token and pipeline methods of ``parser._Parser``."""

    # -- expressions -------------------------------------------------------

    def parse_expr(self, min_prec: int = 0) -> ast.Expr:
        """An expression whose binary operators all bind at least as tightly as ``min_prec``."""
        start = self.tok
        with self.nested(start.pos):
            lhs = self.parse_operand()
            chain = 0
            while True:
                token = self.tok
                op = self._binary_operator(token)
                if op is None:
                    return lhs
                prec, right_assoc = BINARY_PRECEDENCE[op]
                if prec < min_prec:
                    return lhs
                self.advance()
                return_bool, matching = self.parse_binary_modifiers()
                # A left-associative chain nests its left operands one level
                # deeper per operator, so the chain counts towards the depth.
                chain += 1
                with self.nested(token.pos, chain - 1):
                    rhs = self.parse_expr(prec if right_assoc else prec + 1)
                lhs = self.make_binary(op, lhs, rhs, return_bool, matching, start.pos, token.pos)

    @staticmethod
    def _binary_operator(token) -> str | None:
        if token.kind == "KW" and token.value in _SET_OPS:
            return token.value
        if token.kind in BINARY_PRECEDENCE:
            return token.kind
        return None

    def parse_binary_modifiers(self) -> tuple[bool, ast.VectorMatching | None]:
        """``[bool] [on|ignoring (labels) [group_left|group_right [(labels)]]]``."""
        return_bool = False
        if self.tok.is_kw("bool"):
            self.advance()
            return_bool = True
        if not (self.tok.is_kw("on") or self.tok.is_kw("ignoring")):
            return return_bool, None
        on = self.advance().value == "on"
        labels = self.parse_label_list()
        card, include = "one-to-one", ()
        if self.tok.is_kw("group_left") or self.tok.is_kw("group_right"):
            card = "many-to-one" if self.advance().value == "group_left" else "one-to-many"
            if self.tok.kind == "(":
                include = self.parse_label_list()
        if not on and not labels and card == "one-to-one":
            return return_bool, None  # "ignoring ()" changes nothing
        return return_bool, ast.VectorMatching(on, labels, card, include)

    def make_binary(self, op, lhs, rhs, return_bool, matching, lhs_pos, op_pos) -> ast.BinaryOp:
        for side, leg in (("left", lhs), ("right", rhs)):
            if not isinstance(leg, ast.SampleExpr):
                pos = lhs_pos if side == "left" else op_pos
                raise self.error(
                    f"unexpected type for {side} leg of binary operation ({op}):"
                    " a log query is not a metric expression",
                    pos,
                )
        if op in _SET_OPS:
            for side, leg in (("left", lhs), ("right", rhs)):
                if ast.is_scalar(leg):
                    self.defer(
                        f"unexpected literal for {side} leg of logical/set binary operation"
                        f" ({op}): {_go_f(_fold(leg))}",
                        lhs_pos if side == "left" else op_pos,
                    )
        return ast.BinaryOp(op, lhs, rhs, return_bool, matching)

    def parse_operand(self) -> ast.Expr:
        token = self.tok
        kind = token.kind
        if kind in ("+", "-"):
            if self.peek().kind != "NUMBER":
                self.advance()
                raise self.syntax_error(
                    "a number after the sign (only number literals can be negated)"
                )
            return self.parse_number_literal()
        if kind == "NUMBER":
            return self.parse_number_literal()
        if kind == "{":
            return self.parse_log_query()
        if kind == "(":
            self.advance()
            inner = self.parse_expr()
            self.expect(")", '")"')
            return inner
        if kind == "FUNC":
            if token.value in ast.RANGE_OPS:
                return self.parse_range_aggregation()
            if token.value in ast.VECTOR_OPS:
                return self.parse_vector_aggregation()
            if token.value == "vector":
                return self.parse_vector()
            if token.value == "label_replace":
                return self.parse_label_replace()
        raise self.syntax_error("an expression")

    def parse_number_literal(self) -> ast.NumberLiteral:
        from .parser import number_error

        sign = 1.0
        if self.tok.kind in ("+", "-"):
            sign = -1.0 if self.advance().kind == "-" else 1.0
        number = self.advance()
        if number.value is None:
            self.defer(number_error(number.text, "literal"), number.pos)
            return ast.NumberLiteral(0.0)
        return ast.NumberLiteral(sign * number.value)

    def parse_metric_argument(self, function: str) -> ast.SampleExpr:
        start = self.tok
        inner = self.parse_expr()
        if not isinstance(inner, ast.SampleExpr):
            raise self.error(
                f"syntax error: expected a metric expression as the argument of {function}"
                " but found a log query",
                start.pos,
            )
        return inner

    # -- aggregations ------------------------------------------------------

    def parse_label_list(self) -> tuple[str, ...]:
        """``(a, b)`` or ``()``."""
        self.expect("(", '"("')
        labels = []
        if self.tok.kind != ")":
            while True:
                labels.append(self.expect_ident())
                if self.tok.kind != ",":
                    break
                self.advance()
        self.expect(")", '"," or ")"')
        return tuple(labels)

    def parse_grouping(self) -> ast.Grouping | None:
        if not (self.tok.is_kw("by") or self.tok.is_kw("without")):
            return None
        without = self.advance().value == "without"
        return ast.Grouping(self.parse_label_list(), without)

    def _parameter(self):
        """A leading ``NUMBER ,`` inside an aggregation's parentheses, or None."""
        if self.tok.kind == "NUMBER" and self.peek().kind == ",":
            number = self.advance()
            self.advance()
            return number
        return None

    def parse_range_aggregation(self) -> ast.RangeAggregation:
        op_token = self.advance()
        op = op_token.value
        self.expect("(", '"("')
        with self.nested(op_token.pos):
            param_token = self._parameter()
            log_range = self.parse_log_range()
        self.expect(")", '")"')
        grouping = self.parse_grouping()
        param = None
        if param_token is not None:
            if op != "quantile_over_time":
                self.defer(
                    f"parameter {param_token.text} not supported for operation {op}",
                    param_token.pos,
                )
            elif param_token.value is None:
                from .parser import number_error

                detail = number_error(param_token.text, "literal").split(": ", 1)[1]
                self.defer(f"invalid parameter for operation {op}: {detail}", param_token.pos)
            else:
                param = param_token.value
        elif op == "quantile_over_time":
            self.defer(f"parameter required for operation {op}", op_token.pos)
        if grouping is not None and op not in _GROUPING_ALLOWED:
            self.defer(f"grouping not allowed for {op} aggregation", op_token.pos)
        elif log_range.unwrap is not None and op not in _UNWRAP_ALLOWED:
            self.defer(f"invalid aggregation {op} with unwrap", op_token.pos)
        elif log_range.unwrap is None and op not in _WITHOUT_UNWRAP_ALLOWED:
            self.defer(f"invalid aggregation {op} without unwrap", op_token.pos)
        return ast.RangeAggregation(op, log_range, param, grouping)

    def parse_vector_aggregation(self) -> ast.VectorAggregation:
        op_token = self.advance()
        op = op_token.value
        grouping = self.parse_grouping()
        self.expect("(", '"("')
        with self.nested(op_token.pos):
            param_token = self._parameter()
            inner = self.parse_metric_argument(op)
        self.expect(")", '")"')
        if grouping is None:
            grouping = self.parse_grouping()
        param = None
        if op in _K_OPS:
            if param_token is None:
                self.defer(f"parameter required for operation {op}", op_token.pos)
            elif not _ATOI.fullmatch(param_token.text) or int(param_token.text) >= 1 << 63:
                self.defer(f"invalid parameter {op}({param_token.text},", param_token.pos)
            elif int(param_token.text) <= 0:
                self.defer(
                    f"invalid parameter (must be greater than 0) {op}({param_token.text}",
                    param_token.pos,
                )
            else:
                param = int(param_token.text)
            if op == "approx_topk" and grouping is not None:
                self.defer(f"grouping not allowed for {op} aggregation", op_token.pos)
        elif param_token is not None:
            self.defer(
                f"unsupported parameter for operation {op}({param_token.text},", param_token.pos
            )
        if op in ("sort", "sort_desc") and grouping is not None and grouping.labels:
            self.defer("sort and sort_desc doesn't allow grouping by ", op_token.pos)
        return ast.VectorAggregation(op, inner, param, grouping)

    def parse_vector(self) -> ast.VectorExpr:
        from .parser import number_error

        self.advance()
        self.expect("(", '"("')
        number = self.expect("NUMBER", "a number")
        self.expect(")", '")"')
        if number.value is None:
            self.defer(number_error(number.text, "vectorExpr"), number.pos)
            return ast.VectorExpr(0.0)
        return ast.VectorExpr(number.value)

    def parse_label_replace(self) -> ast.LabelReplace:
        from .parser import regex_error

        token = self.advance()
        self.expect("(", '"("')
        with self.nested(token.pos):
            inner = self.parse_metric_argument("label_replace")
        strings = []
        for _ in range(4):
            self.expect(",", '","')
            strings.append(self.expect("STRING", "a string"))
        self.expect(")", '")"')
        dst, replacement, src, regex = (s.value for s in strings)
        error = regex_error(regex) or regex_error("^(?:" + regex + ")$")
        if error is not None:
            self.defer(f"invalid regex in label_replace: {error}", strings[3].pos)
        return ast.LabelReplace(inner, dst, replacement, src, regex)

    # -- log ranges --------------------------------------------------------

    def parse_log_range(self) -> ast.LogRange:
        """Every placement Loki accepts, normalised to one :class:`~.ast.LogRange`.

        ``{s} | p [r] offset o``, ``{s}[r] offset o | p`` (pipeline after the
        range, only when none precedes it), ``({s} | p)[r] offset o`` and
        ``(<any of these>)``; an unwrap ends the pipeline wherever it is.
        """
        token = self.tok
        if token.kind == "(":
            self.advance()
            with self.nested(token.pos):
                if self.tok.kind == "(":
                    inner = self.parse_log_range()
                    self.expect(")", '")"')
                    return inner
                selector = self.parse_selector()
                stages, unwrap = self.parse_pipeline(allow_unwrap=True)
                if self.tok.kind == ")":
                    self.advance()
                    range_ns = self.expect("RANGE", "a range such as [5m]").value
                    return ast.LogRange(selector, stages, range_ns, self.parse_offset(), unwrap)
                log_range = self._finish_log_range(selector, stages, unwrap)
                self.expect(")", '")"')
                return log_range
        if token.kind != "{":
            raise self.syntax_error('a log range such as {app="a"}[5m]')
        selector = self.parse_selector()
        stages, unwrap = self.parse_pipeline(allow_unwrap=True)
        return self._finish_log_range(selector, stages, unwrap)

    def _finish_log_range(self, selector, stages, unwrap) -> ast.LogRange:
        range_ns = self.expect("RANGE", "a range such as [5m]").value
        offset_ns = self.parse_offset()
        if not stages and unwrap is None:
            stages, unwrap = self.parse_pipeline(allow_unwrap=True)
        return ast.LogRange(selector, stages, range_ns, offset_ns, unwrap)

    def parse_offset(self) -> int:
        if not self.tok.is_kw("offset"):
            return 0
        self.advance()
        return self.expect("DURATION", "a duration such as 5m").value


def _fold(expr: ast.SampleExpr) -> float:
    """Value of a scalar expression, the way Loki folds literals (x/0 and x%0 are NaN)."""
    if isinstance(expr, ast.NumberLiteral):
        return expr.value
    a, b, op = _fold(expr.lhs), _fold(expr.rhs), expr.op
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if b == 0:
            return math.nan
        return a / b if op == "/" else math.fmod(a, b)
    if op == "^":
        try:
            return math.pow(a, b)
        except (OverflowError, ValueError):
            return math.inf if a > 0 else math.nan
    comparisons = {
        "==": a == b,
        "!=": a != b,
        ">": a > b,
        ">=": a >= b,
        "<": a < b,
        "<=": a <= b,
    }
    return 1.0 if comparisons[op] else 0.0


def _go_f(value: float) -> str:
    """Go's %f: six decimals, NaN and ±Inf spelled Go's way."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:f}"
