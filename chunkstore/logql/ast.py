"""The LogQL syntax tree: one frozen dataclass per construct.

Nodes carry no source positions, so two parses of equivalent text compare
equal and nodes can be hashed, cached and used as dict keys; the parser
reports positions in its errors instead. Field values are already decoded
(strings unescaped, durations in integer nanoseconds, sizes in bytes), and
every tuple keeps source order.

The tree follows Loki's grammar rather than a desugared form where the
difference is visible to users (``|= "a" or "b"`` stays one
:class:`LineFilter` with two values; a metric query keeps ``by ()`` apart
from no grouping), and normalises only what Loki itself does not distinguish:
``x = 1`` and ``x == 1`` both give op ``"=="``, the two placements of a
range's pipeline (``{a="b"} | json [5m]`` and ``{a="b"}[5m] | json``) give
the same :class:`LogRange`, parentheses leave no node, and ``ignoring ()``
without ``group_left``/``group_right`` is no matching at all.

Evaluation is not described here; where a field's meaning is not obvious
the docstring says what Loki does with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = [
    "Node",
    "Expr",
    "SampleExpr",
    "Matcher",
    "Selector",
    "LogQuery",
    "Stage",
    "LineFilter",
    "ParserStage",
    "JSONParser",
    "LogfmtParser",
    "RegexpParser",
    "PatternParser",
    "UnpackParser",
    "LabelExtraction",
    "LabelFilter",
    "LabelFilterExpr",
    "StringLabelFilter",
    "NumericLabelFilter",
    "DurationLabelFilter",
    "BytesLabelFilter",
    "IPLabelFilter",
    "AndLabelFilter",
    "OrLabelFilter",
    "LineFormat",
    "LabelFormat",
    "LabelFormatItem",
    "Drop",
    "Keep",
    "Decolorize",
    "Unwrap",
    "LogRange",
    "Grouping",
    "RangeAggregation",
    "VectorAggregation",
    "VectorMatching",
    "BinaryOp",
    "NumberLiteral",
    "VectorExpr",
    "LabelReplace",
    "is_metric",
    "is_scalar",
    "walk",
    "MATCH_OPS",
    "LINE_FILTER_OPS",
    "COMPARISON_OPS",
    "RANGE_OPS",
    "VECTOR_OPS",
    "BINARY_OPS",
    "CONVERSIONS",
    "CARDINALITIES",
]

#: Label matcher operators, in selectors, string label filters, drop and keep.
MATCH_OPS = ("=", "!=", "=~", "!~")
#: Line filter operators: contains, not contains, regex, not regex, pattern, not pattern.
LINE_FILTER_OPS = ("|=", "!=", "|~", "!~", "|>", "!>")
#: Operators of numeric, duration and bytes label filters (``=`` is read as ``==``).
COMPARISON_OPS = ("==", "!=", ">", ">=", "<", "<=")
RANGE_OPS = (
    "count_over_time",
    "rate",
    "rate_counter",
    "bytes_over_time",
    "bytes_rate",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
)
VECTOR_OPS = (
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "sort",
    "sort_desc",
    "approx_topk",
)
#: Binary operators by precedence group, loosest first (``^`` is right-associative).
BINARY_OPS = ("or", "and", "unless", "==", "!=", ">", ">=", "<", "<=", "+", "-", "*", "/", "%", "^")
CONVERSIONS = (None, "bytes", "duration", "duration_seconds")
CARDINALITIES = ("one-to-one", "many-to-one", "one-to-many")


def _check(value: object, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"ast: {what} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every syntax tree node; ``str(node)`` is its canonical LogQL text."""

    def __str__(self) -> str:
        from .printer import to_string

        try:
            return to_string(self)
        except ValueError:
            return repr(self)


@dataclass(frozen=True, slots=True)
class Expr(Node):
    """A whole query: a :class:`LogQuery` or a :class:`SampleExpr`."""


@dataclass(frozen=True, slots=True)
class SampleExpr(Expr):
    """A metric expression: evaluates to a vector or, for literals, a scalar."""


# --------------------------------------------------------------------------
# Stream selection
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matcher(Node):
    """``name op "value"``: one condition on a label.

    ``op`` is one of :data:`MATCH_OPS`. Regex values are RE2 syntax and match
    the whole label value (Prometheus anchors them and lets ``.`` match a
    newline); the parser has already checked that they compile. A missing
    label compares as the empty string.
    """

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        _check(self.op, MATCH_OPS, "matcher op")


@dataclass(frozen=True, slots=True)
class Selector(Node):
    """``{m1, m2, ...}``: the stream selector, matchers in source order.

    ``parse`` guarantees at least one matcher that does not match the empty
    string (see ``validate_selector``); ``parse_selector(validate=False)``
    can return one that selects every stream, such as ``{}``.
    """

    matchers: tuple[Matcher, ...]


# --------------------------------------------------------------------------
# Pipeline stages
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage(Node):
    """One step of a log pipeline; stages run left to right."""


@dataclass(frozen=True, slots=True)
class LineFilter(Stage):
    """``|= "a"``, ``!~ "re"``, ``|> "<_> x"``, ``|= ip("10.0.0.0/8")``, with ``or`` chains.

    ``op`` is one of :data:`LINE_FILTER_OPS`. ``values`` holds the chain in
    source order (``|= "a" or "b"`` gives ``("a", "b")``) and ``ips`` says,
    value by value, whether it was written ``ip("...")`` (then it is an IP,
    CIDR or range pattern matched against addresses found in the line,
    allowed only with ``|=`` and ``!=``). A chain under a positive op keeps a
    line matching any value; under a negative op (``!=``, ``!~``, ``!>``) it
    drops a line matching any value, i.e. ``!= "a" or "b"`` means
    ``!= "a" != "b"``, as in Loki.
    """

    op: str
    values: tuple[str, ...]
    ips: tuple[bool, ...]

    def __post_init__(self) -> None:
        _check(self.op, LINE_FILTER_OPS, "line filter op")
        if not self.values or len(self.values) != len(self.ips):
            raise ValueError("ast: line filter needs one ips flag per value and at least one value")

    @property
    def negated(self) -> bool:
        return self.op[0] == "!"


@dataclass(frozen=True, slots=True)
class ParserStage(Stage):
    """Base of stages that extract labels from the line (json, logfmt, regexp, pattern, unpack)."""


@dataclass(frozen=True, slots=True)
class LabelExtraction(Node):
    """``name="expression"`` in ``| json`` or ``| logfmt``; a bare ``name`` has expression ``name``.

    For json the expression is a JSON path (``user.id``, ``tags[0]``,
    ``["a b"]``) kept unparsed; for logfmt it is a key.
    """

    name: str
    expression: str


@dataclass(frozen=True, slots=True)
class JSONParser(ParserStage):
    """``| json`` (every field) or ``| json a="x.y", b`` (only the listed ones)."""

    extractions: tuple[LabelExtraction, ...] = ()


@dataclass(frozen=True, slots=True)
class LogfmtParser(ParserStage):
    """``| logfmt [--strict] [--keep-empty] [a="k", b]``.

    ``strict`` stops at the first malformed pair and sets ``__error__``;
    ``keep_empty`` keeps standalone keys as empty labels.
    """

    strict: bool = False
    keep_empty: bool = False
    extractions: tuple[LabelExtraction, ...] = ()


@dataclass(frozen=True, slots=True)
class RegexpParser(ParserStage):
    """``| regexp "re"``: named groups become labels (RE2, unanchored; checked at parse time)."""

    pattern: str


@dataclass(frozen=True, slots=True)
class PatternParser(ParserStage):
    """``| pattern "<ip> - <_> <status>"``: Loki pattern syntax, validated at parse time."""

    pattern: str


@dataclass(frozen=True, slots=True)
class UnpackParser(ParserStage):
    """``| unpack``: JSON produced by Promtail's pack stage; ``_entry`` replaces the line."""


@dataclass(frozen=True, slots=True)
class LabelFilterExpr(Node):
    """Base of label filter predicates (the part after ``|`` in ``| status >= 500``)."""


@dataclass(frozen=True, slots=True)
class StringLabelFilter(LabelFilterExpr):
    """``name = "v"`` / ``!=`` / ``=~`` / ``!~``: a string comparison, like a :class:`Matcher`."""

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        _check(self.op, MATCH_OPS, "string label filter op")

    @property
    def matcher(self) -> Matcher:
        return Matcher(self.name, self.op, self.value)


@dataclass(frozen=True, slots=True)
class NumericLabelFilter(LabelFilterExpr):
    """``name > 1.5``: the label is converted with Go's ParseFloat; ``value`` is finite."""

    name: str
    op: str
    value: float

    def __post_init__(self) -> None:
        _check(self.op, COMPARISON_OPS, "numeric label filter op")


@dataclass(frozen=True, slots=True)
class DurationLabelFilter(LabelFilterExpr):
    """``name > 250ms``: the label is parsed as a Go duration; ``value_ns`` in nanoseconds."""

    name: str
    op: str
    value_ns: int

    def __post_init__(self) -> None:
        _check(self.op, COMPARISON_OPS, "duration label filter op")


@dataclass(frozen=True, slots=True)
class BytesLabelFilter(LabelFilterExpr):
    """``name > 20MB``: the label is parsed as a humanized size; ``value`` in bytes."""

    name: str
    op: str
    value: int

    def __post_init__(self) -> None:
        _check(self.op, COMPARISON_OPS, "bytes label filter op")


@dataclass(frozen=True, slots=True)
class IPLabelFilter(LabelFilterExpr):
    """``name = ip("192.168.0.0/16")`` or ``!=``: address, CIDR or ``a-b`` range, validated."""

    name: str
    op: str
    pattern: str

    def __post_init__(self) -> None:
        _check(self.op, ("=", "!="), "ip label filter op")


@dataclass(frozen=True, slots=True)
class AndLabelFilter(LabelFilterExpr):
    """``left and right``, also written ``left, right`` or ``left right``."""

    left: LabelFilterExpr
    right: LabelFilterExpr


@dataclass(frozen=True, slots=True)
class OrLabelFilter(LabelFilterExpr):
    """``left or right``; ``and`` binds tighter than ``or``."""

    left: LabelFilterExpr
    right: LabelFilterExpr


@dataclass(frozen=True, slots=True)
class LabelFilter(Stage):
    """``| <predicate>``: keeps lines whose labels satisfy ``expr``.

    Grouping follows Loki's grammar exactly: ``and`` binds tighter than
    ``or`` and both are left-associative, while a ``,`` or a plain space
    takes everything to its right as its right operand, so
    ``a, b or c`` is ``And(a, Or(b, c))``.
    """

    expr: LabelFilterExpr


@dataclass(frozen=True, slots=True)
class LineFormat(Stage):
    """``| line_format "template"``: the Go template text, decoded but not parsed."""

    template: str


@dataclass(frozen=True, slots=True)
class LabelFormatItem(Node):
    """One ``name=...`` of ``| label_format``.

    ``rename`` True means ``name=source`` (move label ``source`` to ``name``);
    False means ``name="template"`` with ``value`` the template text.
    """

    name: str
    value: str
    rename: bool


@dataclass(frozen=True, slots=True)
class LabelFormat(Stage):
    """``| label_format a="{{.b}}", c=d``; each name appears once (checked at parse time)."""

    items: tuple[LabelFormatItem, ...]


@dataclass(frozen=True, slots=True)
class Drop(Stage):
    """``| drop a, b="v"``: a bare name drops the label, a matcher drops it only when it matches."""

    items: tuple[str | Matcher, ...]


@dataclass(frozen=True, slots=True)
class Keep(Stage):
    """``| keep a, b="v"``: keeps only these labels; a matcher keeps its label when it matches."""

    items: tuple[str | Matcher, ...]


@dataclass(frozen=True, slots=True)
class Decolorize(Stage):
    """``| decolorize``: strips ANSI colour escapes from the line."""


@dataclass(frozen=True, slots=True)
class LogQuery(Expr):
    """A log query: a selector and its pipeline, e.g. ``{app="a"} |= "err" | json``."""

    selector: Selector
    stages: tuple[Stage, ...] = ()


# --------------------------------------------------------------------------
# Metric queries
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unwrap(Node):
    """``| unwrap [conversion(]label[)]`` plus the label filters written after it.

    ``conversion`` is None (ParseFloat), ``"bytes"``, ``"duration"`` or
    ``"duration_seconds"`` (both give seconds). ``post_filters`` are the
    ``| predicate`` stages after the unwrap, applied to the extracted sample
    (typically to drop conversion errors with ``| __error__=""``).
    """

    label: str
    conversion: str | None = None
    post_filters: tuple[LabelFilterExpr, ...] = ()

    def __post_init__(self) -> None:
        _check(self.conversion, CONVERSIONS, "unwrap conversion")


@dataclass(frozen=True, slots=True)
class LogRange(Node):
    """The log range a range aggregation reads: ``{sel} | pipeline [range] offset o``.

    ``range_ns`` and ``offset_ns`` are integer nanoseconds; the range is a
    whole number of milliseconds, the offset may be negative and is 0 when
    absent. ``unwrap`` is set for aggregations over extracted values.
    """

    selector: Selector
    stages: tuple[Stage, ...]
    range_ns: int
    offset_ns: int = 0
    unwrap: Unwrap | None = None


@dataclass(frozen=True, slots=True)
class Grouping(Node):
    """``by (labels)`` or ``without (labels)``; ``labels`` may be empty (``by ()``)."""

    labels: tuple[str, ...]
    without: bool = False


@dataclass(frozen=True, slots=True)
class RangeAggregation(SampleExpr):
    """``op([param,] log_range) [grouping]``, e.g. ``rate({a="b"}[5m])``.

    ``param`` is the quantile of ``quantile_over_time`` (None otherwise).
    ``grouping`` is only allowed for the unwrap aggregations Loki accepts it
    on (avg, stddev, stdvar, quantile, min, max, first, last over time).
    """

    op: str
    log_range: LogRange
    param: float | None = None
    grouping: Grouping | None = None

    def __post_init__(self) -> None:
        _check(self.op, RANGE_OPS, "range aggregation op")


@dataclass(frozen=True, slots=True)
class VectorAggregation(SampleExpr):
    """``op [grouping] ([param,] expr)``, e.g. ``sum by (app) (rate(...))``, ``topk(5, ...)``.

    ``param`` is the k of ``topk``/``bottomk``/``approx_topk`` (a positive
    int), None otherwise. No grouping (None) aggregates everything, like
    ``by ()``; the two are kept apart only so printing is faithful.
    """

    op: str
    expr: SampleExpr
    param: int | None = None
    grouping: Grouping | None = None

    def __post_init__(self) -> None:
        _check(self.op, VECTOR_OPS, "vector aggregation op")


@dataclass(frozen=True, slots=True)
class VectorMatching(Node):
    """``on (labels)`` / ``ignoring (labels)``, optionally ``group_left``/``group_right (include)``.

    ``card`` is one of :data:`CARDINALITIES`; ``include`` lists the extra
    labels copied from the "one" side and is empty for one-to-one.
    """

    on: bool
    labels: tuple[str, ...] = ()
    card: str = "one-to-one"
    include: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.card, CARDINALITIES, "vector matching cardinality")


@dataclass(frozen=True, slots=True)
class BinaryOp(SampleExpr):
    """``lhs op [bool] [matching] rhs``.

    ``return_bool`` is the ``bool`` modifier (Loki accepts it on any
    operator; only comparisons use it). ``matching`` None means the default
    one-to-one matching on all labels. Two scalar operands are not folded:
    Loki folds ``1 + 1`` to ``2`` while parsing, with comparison operators
    giving 0 or 1; evaluators must do the same.
    """

    op: str
    lhs: SampleExpr
    rhs: SampleExpr
    return_bool: bool = False
    matching: VectorMatching | None = None

    def __post_init__(self) -> None:
        _check(self.op, BINARY_OPS, "binary operator")


@dataclass(frozen=True, slots=True)
class NumberLiteral(SampleExpr):
    """A scalar, e.g. ``2``, ``-1.5``, ``1e3``; always finite (Loki rejects overflow)."""

    value: float


@dataclass(frozen=True, slots=True)
class VectorExpr(SampleExpr):
    """``vector(1)``: a one-sample vector with no labels at every step."""

    value: float


@dataclass(frozen=True, slots=True)
class LabelReplace(SampleExpr):
    """``label_replace(expr, "dst", "replacement", "src", "regex")``, as in Prometheus.

    The regex is fully anchored, like a label matcher's.
    """

    expr: SampleExpr
    dst: str
    replacement: str
    src: str
    regex: str


def is_metric(expr: Expr) -> bool:
    """True for a metric (sample) expression, False for a log query."""
    return isinstance(expr, SampleExpr)


def is_scalar(expr: Expr) -> bool:
    """True when ``expr`` evaluates to a scalar: a literal or arithmetic on literals."""
    if isinstance(expr, NumberLiteral):
        return True
    return isinstance(expr, BinaryOp) and is_scalar(expr.lhs) and is_scalar(expr.rhs)


def walk(node: Node):
    """Yield ``node`` and every node below it, parents before children, in field order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children = []
        for field in fields(current):
            value = getattr(current, field.name)
            if isinstance(value, Node):
                children.append(value)
            elif isinstance(value, tuple):
                children.extend(v for v in value if isinstance(v, Node))
        stack.extend(reversed(children))
