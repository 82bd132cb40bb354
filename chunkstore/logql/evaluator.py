"""Evaluate a LogQL metric expression over a grid of steps, with Loki's semantics.

The evaluator works on whole step grids rather than one step at a time: a
node evaluates to either a :class:`Scalar` (LogQL's only scalars are number
literals, so a scalar is one constant) or a *matrix*, a ``dict`` from a label
key (the label set as a tuple of ``(name, value)`` pairs sorted by name) to a
*row*, a ``dict`` from step index to value holding only the steps where the
series has a point.  Rows are sparse because series often are: structured
metadata such as a trace id makes one series per request, with a point in a
handful of steps; every operation costs time in proportion to points, not to
series times steps.
Range aggregations fill whole rows at once from the entries a
:class:`SampleSource` hands them (``evaluator_range``); vector aggregations
and binary operators (``evaluator_vector``, ``evaluator_binary``) combine
rows step by step.  The grid is ``start, start+step, ... <= end``; an
instant query is a grid of one step.

The evaluator never reads a store: a :class:`SampleSource` gives it, for a
:class:`LogSelection` (selector, pipeline, time span), each selected
stream's entries after the log pipeline.  The real store's source
(``evaluator_store.StoreSamples``) reads blocks through the querier and
can count plain counting queries straight from the compressed blocks
(``evaluator_fast``); the test model ``chunkstore.testing.ReferenceStore``
has its own over plain lists, so both answer metric queries with the same
code above the source.

Dict order carries meaning in one place only: Loki keeps the order of an
instant result when the query contains ``sort``/``sort_desc`` and sorts
series by labels otherwise (see :func:`is_sortable`), so vector operations
keep their input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from chunkstore.errors import QueryError
from chunkstore.logql import ast
from chunkstore.results import QueryStats

__all__ = [
    "by_step",
    "Scalar",
    "StepGrid",
    "LogSelection",
    "SampleSource",
    "EvalContext",
    "evaluate",
    "fold_constants",
    "is_sortable",
    "labels_key",
    "ERROR_LABEL",
]

ERROR_LABEL = "__error__"


class Scalar:
    """A scalar operand: a number literal, the same at every step."""

    __slots__ = ("value",)

    def __init__(self, value: float):
        self.value = float(value)

    def __repr__(self) -> str:
        return f"Scalar({self.value!r})"


@dataclass(frozen=True)
class StepGrid:
    """The evaluation times: ``start, start+step, ... <= end`` (int ns).

    An instant query is ``start == end`` with ``step`` 0: one step.
    """

    start: int
    end: int
    step: int
    steps: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.step <= 0:
            steps: tuple[int, ...] = (self.start,)
        else:
            steps = tuple(range(self.start, self.end + 1, self.step))
        object.__setattr__(self, "steps", steps)

    @property
    def n(self) -> int:
        return len(self.steps)

    @property
    def instant(self) -> bool:
        return self.step <= 0


@dataclass(frozen=True)
class LogSelection:
    """What one range aggregation reads: selected streams, their pipeline, a time span.

    ``selector`` is the log range's selector and ``matchers`` the same as
    :class:`~chunkstore.labels.Matcher` objects.  ``stages`` are its pipeline
    stages as syntax (``line_format`` already elided where Loki's optimiser
    drops it); ``clauses`` and ``rest`` are the same pipeline split by
    ``logql_plan.compile_stages`` into literal clauses a block scanner can
    apply and the stage objects left to run in Python (a source without a
    scanner may ignore both and run ``stages`` whole).  ``extra`` are stage
    objects the evaluator adds after the pipeline: the unwrap stage, which
    replaces the line by the unwrapped value, and the label filters written
    after it.  ``start`` (inclusive) and ``end`` (exclusive) are int ns.
    """

    selector: ast.Selector
    matchers: tuple
    stages: tuple
    clauses: tuple
    rest: tuple
    extra: tuple
    start: int
    end: int


class SampleSource:
    """Where a metric query's entries come from: a store, the test model, your own data.

    Subclasses implement :meth:`select`; :meth:`count_windows` is an
    optional shortcut.  ``timeout`` (seconds, 0 = none) bounds each query
    evaluated from the source.
    """

    timeout: float = 0.0

    def select(self, selection: LogSelection, stats: QueryStats
               ) -> Iterable[tuple[Mapping[str, str], Iterator[tuple]]]:
        """Per stream the selector picks: ``(stream labels, entries)``.

        ``entries`` yields, in time order, ``(ts, line, labels)`` for each
        entry of the stream with ``selection.start <= ts < selection.end``
        that passes the pipeline (``selection.stages`` then
        ``selection.extra``), leaving out entries a log query would not
        return (deleted, past retention).  ``line`` is
        the line after the pipeline (the value, after an unwrap stage) and
        ``labels`` the labels the pipeline built (stream labels, structured
        metadata, parsed labels), or None when they are the stream's labels
        alone (no stage ran and the entry has no metadata).  Streams may be
        given in any order; ``stats`` may be updated as the entries are read.
        """
        raise NotImplementedError

    def count_windows(self, selection: LogSelection, grid: StepGrid, range_ns: int,
                      offset_ns: int, stats: QueryStats) -> dict | None:
        """Optional: per series, ``{step: (matching lines, their bytes)}`` of each non-empty window.

        Called only for a line-counting range aggregation (``count_over_time``,
        ``rate``, ``bytes_*``, ``absent_over_time``) without grouping and
        without ``extra`` stages; series keys are as :func:`labels_key`
        gives them for the labels :meth:`select` would give.  Window ``i``
        holds the entries with ``t_i - range - offset < ts <= t_i - offset``.
        Return None (the default) to have the evaluator count the entries
        :meth:`select` gives.
        """
        return None


@dataclass
class EvalContext:
    """What every node evaluation needs: where entries come from, the grid, the statistics."""

    source: SampleSource
    grid: StepGrid
    stats: QueryStats = field(default_factory=QueryStats)


def labels_key(labels) -> tuple:
    """The canonical key of a label mapping: ``(name, value)`` pairs sorted by name."""
    return tuple(sorted(labels.items()))


def by_step(matrix: dict) -> dict:
    """``{step: [(key, value), ...]}``: the points of a matrix grouped by step, in series order."""
    out: dict = {}
    for key, row in matrix.items():
        for i, v in row.items():
            bucket = out.get(i)
            if bucket is None:
                out[i] = [(key, v)]
            else:
                bucket.append((key, v))
    return out


def evaluate(expr: ast.SampleExpr, ctx: EvalContext):
    """Evaluate ``expr`` on ``ctx.grid``: a :class:`Scalar` or a matrix ``{key: {step: value}}``.

    Raises :class:`QueryError` for what Loki rejects at evaluation time
    (a series left with ``__error__``, vector matching conflicts, ...).
    """
    from chunkstore.logql import evaluator_binary, evaluator_range, evaluator_vector

    if isinstance(expr, ast.NumberLiteral):
        return Scalar(expr.value)
    if isinstance(expr, ast.VectorExpr):
        value = float(expr.value)
        return {(): dict.fromkeys(range(ctx.grid.n), value)}
    if isinstance(expr, ast.RangeAggregation):
        return evaluator_range.eval_range_aggregation(expr, ctx)
    if isinstance(expr, ast.VectorAggregation):
        return evaluator_vector.eval_vector_aggregation(expr, ctx)
    if isinstance(expr, ast.LabelReplace):
        return evaluator_vector.eval_label_replace(expr, ctx)
    if isinstance(expr, ast.BinaryOp):
        return evaluator_binary.eval_binary(expr, ctx)
    raise QueryError(f"query: cannot evaluate {type(expr).__name__} as a metric expression")


def fold_constants(expr: ast.Expr) -> ast.Expr:
    """Replace every operation on number literals by its value, as Loki's parser does.

    ``1 + 1`` becomes ``2``; a comparison of two literals gives 0 or 1 (with
    or without ``bool``); ``1 / 0`` is NaN (Loki's division).  Other nodes
    are rebuilt only when something below them was folded.
    """
    from chunkstore.logql.evaluator_binary import scalar_binop

    if isinstance(expr, ast.BinaryOp):
        lhs = fold_constants(expr.lhs)
        rhs = fold_constants(expr.rhs)
        if isinstance(lhs, ast.NumberLiteral) and isinstance(rhs, ast.NumberLiteral):
            return ast.NumberLiteral(scalar_binop(expr.op, lhs.value, rhs.value))
        if lhs is expr.lhs and rhs is expr.rhs:
            return expr
        return ast.BinaryOp(expr.op, lhs, rhs, expr.return_bool, expr.matching)
    if isinstance(expr, ast.VectorAggregation):
        inner = fold_constants(expr.expr)
        if inner is expr.expr:
            return expr
        return ast.VectorAggregation(expr.op, inner, expr.param, expr.grouping)
    if isinstance(expr, ast.LabelReplace):
        inner = fold_constants(expr.expr)
        if inner is expr.expr:
            return expr
        return ast.LabelReplace(inner, expr.dst, expr.replacement, expr.src, expr.regex)
    return expr


def is_sortable(expr: ast.Expr) -> bool:
    """Whether the result keeps its evaluation order (Loki's ``Sortable``).

    True when a ``sort`` or ``sort_desc`` appears anywhere in the query;
    otherwise instant results are sorted by labels.
    """
    return any(isinstance(node, ast.VectorAggregation) and node.op in ("sort", "sort_desc")
               for node in ast.walk(expr))
