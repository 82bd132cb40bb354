"""``store.query_range`` and ``store.query_instant``: LogQL metric queries.

The entry points check their arguments, parse the query, fold constant
arithmetic (``1 + 1``) as Loki's parser does, evaluate the expression on
the step grid (``chunkstore.logql.evaluator``), apply Loki's limits and turn
the result into :class:`~chunkstore.results.Series` / :class:`~chunkstore.results.Sample`.

Times are int nanoseconds or datetimes; a step is int nanoseconds, a
``timedelta`` or a duration string (``"1m"``, ``"30s"``).  Limits, with
Loki's defaults: at most ``max_series`` (500, Loki's ``max_query_series``)
series or samples in a result (:class:`~chunkstore.errors.LimitError`) and
at most 11,000 steps between start and end (Loki's check is ``(end -
start) / step > 11000``, so a query may have 11,001 points;
:class:`~chunkstore.errors.QueryError` with Loki's message).

Result order is Loki's: series sorted by labels (as ``sorted(labels.items())``),
except that an instant query containing ``sort`` or ``sort_desc`` keeps the
order those produce.  Label dicts are in name order.

The first argument is a store, or any
:class:`~chunkstore.logql.evaluator.SampleSource`: the evaluator reads
entries only through one (a store is wrapped in
:class:`~chunkstore.logql.evaluator_store.StoreSamples`), which is how
``chunkstore.testing.ReferenceStore`` answers metric queries from its own
lists with the same code.
"""

from __future__ import annotations

import time as _time
from datetime import timedelta

from chunkstore.errors import LimitError, QueryError
from chunkstore.logql import ast
from chunkstore.logql import parse as parse_logql
from chunkstore.logql.evaluator import (
    EvalContext,
    SampleSource,
    Scalar,
    StepGrid,
    evaluate,
    fold_constants,
    is_sortable,
)
from chunkstore.results import QueryStats, Sample, Series
from chunkstore.timeutil import now_ns, to_ns

__all__ = ["query_range", "query_instant", "parse_step", "MAX_QUERY_SERIES", "MAX_POINTS"]

#: Loki's ``max_query_series`` default.
MAX_QUERY_SERIES = 500
#: Loki's resolution limit: ``(end - start) / step`` may not exceed this.
MAX_POINTS = 11_000


def parse_step(step) -> int:
    """A step in int nanoseconds from int ns, a ``timedelta`` or a duration string.

    Raises ``TypeError`` for other types and :class:`QueryError` for a step
    that is not positive (Loki's message) or a string that is not a duration.
    """
    if isinstance(step, bool):
        raise TypeError("query_range: step must be int nanoseconds, a timedelta or a duration "
                        "string, got bool")
    if isinstance(step, timedelta):
        ns = (step.days * 86400 + step.seconds) * 1_000_000_000 + step.microseconds * 1000
    elif isinstance(step, int):
        ns = step
    elif isinstance(step, str):
        from chunkstore.logql.durations import parse_duration_ns

        try:
            ns = parse_duration_ns(step.strip())
        except ValueError as exc:
            raise QueryError(f"query_range: invalid step {step!r}: {exc}") from None
    else:
        raise TypeError("query_range: step must be int nanoseconds, a timedelta or a duration "
                        f"string, got {type(step).__name__} {step!r}")
    if ns <= 0:
        raise QueryError("zero or negative query resolution step widths are not accepted. "
                         "Try a positive integer")
    return ns


def _parse_metric(logql: str, what: str) -> ast.SampleExpr:
    if not isinstance(logql, str):
        raise QueryError(f"{what}: expected a LogQL string, got {type(logql).__name__}")
    expr = parse_logql(logql)
    if not isinstance(expr, ast.SampleExpr):
        raise QueryError(f"{what}: {logql!r} is a log query; use store.query() for log lines, "
                         "or wrap it in a range aggregation such as count_over_time(...[5m])")
    return fold_constants(expr)


def _check_series(n: int, max_series: int | None) -> None:
    if max_series is not None and n > max_series:
        raise LimitError(
            f"maximum number of series ({max_series}) reached for a single query; consider "
            "reducing query cardinality by adding more specific stream selectors, reducing the "
            "time range, or aggregating results with functions like sum(), count() or topk() "
            "(max_query_series)")


def _run(store, expr, grid: StepGrid):
    stats = QueryStats()
    if isinstance(store, SampleSource):
        source = store
    else:
        from chunkstore.logql.evaluator_store import StoreSamples

        source = StoreSamples(store)
    store.last_query_stats = stats
    t0 = _time.perf_counter()
    # The store's query_timeout bounds metric queries as it bounds log queries.
    timeout = source.timeout
    if timeout and hasattr(stats, "deadline"):
        stats.deadline = t0 + timeout
        stats._timeout = timeout
    try:
        return evaluate(expr, EvalContext(source, grid, stats))
    finally:
        stats.seconds = _time.perf_counter() - t0


def query_range(store, logql: str, start, end, step, *,
                max_series: int | None = MAX_QUERY_SERIES) -> list[Series]:
    """Evaluate a metric query at ``start, start+step, ... <= end``; ``list[Series]``.

    ``store``: a store or a :class:`SampleSource`; ``store.last_query_stats``
    is set to the query's :class:`~chunkstore.results.QueryStats`.

    A series has a point only at the steps where it has a value (an empty
    window is a gap).  A scalar query (``1 + 1``) gives one series with no
    labels and a point at every step.  Raises :class:`QueryError` for a bad
    query or time range, :class:`LimitError` beyond ``max_series`` series.
    """
    s = to_ns(start, what="start")
    e = to_ns(end, what="end")
    p = parse_step(step)
    if e < s:
        raise QueryError("end timestamp must not be before start time")
    if (e - s) // p > MAX_POINTS:
        raise QueryError("exceeded maximum resolution of 11,000 points per timeseries. "
                         "Try decreasing the query resolution (?step=XX)")
    expr = _parse_metric(logql, "query_range")
    grid = StepGrid(s, e, p)
    result = _run(store, expr, grid)
    steps = grid.steps
    if isinstance(result, Scalar):
        return [Series({}, [(t, result.value) for t in steps])]
    _check_series(len(result), max_series)
    out = []
    for key in sorted(result):
        row = result[key]
        if row:
            out.append(Series(dict(key), [(steps[i], row[i]) for i in sorted(row)]))
    return out


def query_instant(store, logql: str, time=None, *,
                  max_series: int | None = MAX_QUERY_SERIES) -> list[Sample] | float:
    """Evaluate a metric query at one time (default now): ``list[Sample]``, or a float for a scalar.

    Samples are sorted by labels unless the query contains ``sort`` or
    ``sort_desc``.  Raises :class:`QueryError` for a bad query,
    :class:`LimitError` beyond ``max_series`` samples.
    """
    t = now_ns() if time is None else to_ns(time, what="time")
    expr = _parse_metric(logql, "query_instant")
    result = _run(store, expr, StepGrid(t, t, 0))
    if isinstance(result, Scalar):
        return result.value
    _check_series(len(result), max_series)
    keys = list(result) if is_sortable(expr) else sorted(result)
    return [Sample(dict(key), result[key][0], t) for key in keys if 0 in result[key]]
