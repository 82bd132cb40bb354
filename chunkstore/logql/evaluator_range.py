"""Range aggregations: ``rate({...}[5m])``, ``avg_over_time({...} | unwrap x [1m]) by (l)``...

Step ``t`` of a range aggregation reads the log range's samples in the
window ``(t - range - offset, t - offset]`` (left-open, right-closed) and
reduces each series' samples to one value; a window without samples is a
gap (no point), except for ``absent_over_time``, which gives 1 where *no*
series has a sample.  A series is a label set: the stream labels plus
structured metadata and whatever the pipeline added or removed, grouped by
the aggregation's ``by``/``without`` when it has one.  Samples of streams
that end up with the same labels are merged in time order.

Samples come from Loki's two extractors:

* line ops (``count_over_time``, ``rate``, ``bytes_over_time``,
  ``bytes_rate``, ``absent_over_time``): one sample per line that passes
  the pipeline, valued 1 or its length in bytes (after ``line_format``);
  these are counted per window (by the source alone when it can:
  ``SampleSource.count_windows``, for the store ``evaluator_fast`` when the
  pipeline is only literal line filters);
* unwrap ops: the pipeline runs, then the unwrapped label's value is
  converted (``ParseFloat``, ``bytes()`` or ``duration()``/
  ``duration_seconds()`` in seconds).  A line without the label, or with
  an empty value, gives no sample; a conversion failure gives a sample
  valued 0 with ``__error__="SampleExtractionErr"`` and Go's message in
  ``__error_details__``.  The label filters written after the unwrap run
  next, and the unwrapped label leaves the series labels (Loki adds it to
  the ``without`` list unless the aggregation has a ``by``).

Labels carrying ``__error__`` skip the grouping (so the error stays
visible), and a range aggregation that yields any point for such a series
fails the query with Loki's pipeline error, unless a ``| __error__=""``
style filter removed those samples.

Like Loki's optimiser, a ``line_format`` that no later parser or line
filter reads is dropped from every range aggregation except ``bytes_*``.

Entries come from ``ctx.source`` (a :class:`~chunkstore.logql.evaluator.SampleSource`)
after the log pipeline; this module never reads a store itself.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_right
from itertools import accumulate

from chunkstore.errors import QueryError
from chunkstore.logql import ast
from chunkstore.logql.evaluator import ERROR_LABEL, EvalContext, LogSelection
from chunkstore.logql.pipeline import Pipeline
from chunkstore.logql.units import GoParseError, parse_bytes, parse_go_duration_ns, parse_go_float
from chunkstore.logql_plan import compile_stages, label_filter_stage, to_matchers
from chunkstore.timeutil import I64_MAX, I64_MIN

__all__ = [
    "eval_range_aggregation",
    "elide_line_format",
    "absent_labels",
    "sample_windows",
    "metadata_labels_fn",
    "RANGE_FUNCTIONS",
    "rate_counter",
    "pipeline_error",
    "decode_metadata",
    "UnwrapStage",
]

LINE_OPS = frozenset({"count_over_time", "rate", "bytes_over_time", "bytes_rate",
                      "absent_over_time"})
_PARSERS = (ast.JSONParser, ast.LogfmtParser, ast.RegexpParser, ast.PatternParser,
            ast.UnpackParser, ast.LineFilter)
ERR_SAMPLE_EXTRACTION = "SampleExtractionErr"
NAN = float("nan")
INF = float("inf")


# ---------------------------------------------------------------------------
# planning helpers


def elide_line_format(op: str, stages: tuple) -> tuple:
    """Drop the ``line_format`` stages no later parser or line filter reads (Loki's optimiser).

    Only the line's bytes make them matter, so they stay for ``bytes_over_time``
    and ``bytes_rate``.
    """
    if op in ("bytes_over_time", "bytes_rate"):
        return stages
    out = []
    for i, st in enumerate(stages):
        if isinstance(st, ast.LineFormat) and not any(isinstance(s, _PARSERS)
                                                      for s in stages[i + 1:]):
            continue
        out.append(st)
    return tuple(out)


def absent_labels(selector: ast.Selector) -> tuple:
    """The labels of ``absent_over_time``'s series: the selector's equality matchers.

    A name matched by anything but a single ``=`` is left out (Prometheus'
    ``createLabelsForAbsentFunction``); an empty value gives no label.
    """
    labels: dict = {}
    dropped: set = set()
    for m in selector.matchers:
        if m.op == "=" and m.name not in labels:
            labels[m.name] = m.value
        else:
            dropped.add(m.name)
    return tuple(sorted((k, v) for k, v in labels.items() if k not in dropped and v != ""))


def pipeline_error(key: tuple) -> QueryError:
    """Loki's error for a metric series that still carries ``__error__``."""
    labels = dict(key)
    err = labels.get(ERROR_LABEL, "")
    shown = "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"
    return QueryError(
        f"pipeline error: '{err}' for series: '{shown}'.\n"
        f"Use a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\n"
        "To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n"
        "The label filter can also be specified after unwrap. "
        "(e.g | unwrap latency | __error__=\"\" )")


def _grouped_key_fn(grouping: ast.Grouping | None):
    """Labels dict -> series key, applying a range aggregation's grouping (Loki's GroupedLabels)."""
    cache: dict = {}
    if grouping is None:
        def key_of(labels: dict):
            raw = tuple(labels.items())
            key = cache.get(raw)
            if key is None:
                key = cache[raw] = tuple(sorted(raw))
            return key
        return key_of
    names = frozenset(grouping.labels)
    without = grouping.without

    def key_of(labels: dict):
        raw = tuple(labels.items())
        key = cache.get(raw)
        if key is None:
            if ERROR_LABEL in labels:
                key = tuple(sorted(raw))  # errors bypass the grouping, so they surface
            elif without:
                key = tuple(sorted(p for p in raw if p[0] not in names))
            else:
                key = tuple(sorted(p for p in raw if p[0] in names))
            cache[raw] = key
        return key
    return key_of


def decode_metadata(meta):
    """Structured metadata pairs as ``str`` (block readers may give ``bytes``)."""
    return [(k.decode("utf-8", "replace") if isinstance(k, bytes) else k,
             v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in meta]


def metadata_labels_fn(stream_labels):
    """``metadata -> label key`` for entries of one stream with no pipeline stage.

    Structured metadata joins the labels exactly as the pipeline adds it.
    """
    sp = Pipeline(()).for_stream(stream_labels)
    key_of = _grouped_key_fn(None)

    def labels_of(meta):
        return key_of(sp.process(0, b"", decode_metadata(meta))[1])
    return labels_of


# ---------------------------------------------------------------------------
# the unwrap stage


def _duration_seconds(text: str) -> float:
    return parse_go_duration_ns(text) / 1e9


_CONVERSIONS = {
    None: parse_go_float,
    "bytes": lambda text: float(parse_bytes(text)),
    "duration": _duration_seconds,
    "duration_seconds": _duration_seconds,
}


class UnwrapStage:
    """``| unwrap [conv(]label[)]`` as a pipeline stage: the line becomes the value (a float).

    Drops lines without the label (or with an empty value); on a conversion
    error sets ``SampleExtractionErr`` and keeps the line with value 0.
    Only label filters may follow it (they pass the "line" through), so the
    value leaves the pipeline in the line's place and the stage keeps no
    state between entries.
    """

    __slots__ = ("label", "convert")

    def __init__(self, unwrap: ast.Unwrap):
        self.label = unwrap.label
        self.convert = _CONVERSIONS[unwrap.conversion]

    def process(self, ts, line, lb):
        text = lb.get(self.label)
        if not text:
            return line, False
        try:
            value = self.convert(text)
        except (GoParseError, ValueError, OverflowError) as exc:
            value = 0.0
            lb.set_error(ERR_SAMPLE_EXTRACTION, str(exc))
        return value, True


# ---------------------------------------------------------------------------
# reading samples


class _Series:
    """The samples of one series: timestamps and values, appended in stream order."""

    __slots__ = ("ts", "values", "ordered", "last")

    def __init__(self, typecode: str):
        self.ts = array("q")
        self.values = array(typecode)
        self.ordered = True
        self.last = -(1 << 63)

    def add(self, ts: int, value) -> None:
        if ts < self.last:
            self.ordered = False
        self.last = ts
        self.ts.append(ts)
        self.values.append(value)

    def finish(self) -> None:
        """Sort by time (stable: equal timestamps keep stream order) when needed."""
        if self.ordered:
            return
        order = sorted(range(len(self.ts)), key=self.ts.__getitem__)
        self.ts = array("q", (self.ts[i] for i in order))
        self.values = array(self.values.typecode, (self.values[i] for i in order))
        self.ordered = True


def _collect(ctx: EvalContext, selection: LogSelection, key_of, value_of,
             typecode: str) -> dict:
    """Samples of every series in the selection: ``{key: _Series}``.

    ``value_of(line)`` gives a sample's value from the line the pipeline
    left (after an unwrap stage, the value itself).
    """
    series: dict = {}
    for labels, entries in ctx.source.select(selection, ctx.stats):
        stream_key = None
        for ts, line, lbls in entries:
            if lbls is not None:
                key = key_of(lbls)
            else:
                if stream_key is None:
                    stream_key = key_of(dict(labels))
                key = stream_key
            s = series.get(key)
            if s is None:
                s = series[key] = _Series(typecode)
            s.add(ts, value_of(line))
    for s in series.values():
        s.finish()
    return series


def step_span(grid, first_ts: int, last_ts: int, range_ns: int, offset_ns: int) -> range:
    """The steps whose windows can hold samples with timestamps in ``[first_ts, last_ts]``.

    Window ``i`` is ``(t_i - range - offset, t_i - offset]``; a sparse
    series (a trace id seen in two lines) meets a few windows only, so rows
    cost time per point rather than per step.
    """
    n = grid.n
    if n == 1 or grid.step <= 0:
        return range(1)
    start, step = grid.start, grid.step
    lo = max(0, -((start - first_ts - offset_ns) // step))
    hi = min(n - 1, (last_ts + range_ns + offset_ns - 1 - start) // step)
    return range(lo, hi + 1)


def sample_windows(ts, lengths, grid, range_ns: int, offset_ns: int) -> dict:
    """``{step: (line count, byte sum)}`` of the non-empty windows, from time-ordered samples."""
    out: dict = {}
    if not ts:
        return out
    pref = list(accumulate(lengths, initial=0))
    steps = grid.steps
    for i in step_span(grid, ts[0], ts[-1], range_ns, offset_ns):
        t = steps[i]
        a = bisect_right(ts, t - range_ns - offset_ns)
        b = bisect_right(ts, t - offset_ns)
        if b > a:
            out[i] = (b - a, pref[b] - pref[a])
    return out


# ---------------------------------------------------------------------------
# range functions over the samples of one window


if sys.version_info >= (3, 12):  # sum() became compensated; Loki adds naively
    def _naive_sum(values) -> float:
        total = 0.0
        for v in values:
            total += v
        return total
else:
    def _naive_sum(values) -> float:
        return sum(values, 0.0)


def _avg_over_time(values) -> float:
    mean = 0.0
    count = 0
    for v in values:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean += v / count - mean / count
    return mean


def _min_over_time(values) -> float:
    m = values[0]
    for v in values:
        if v < m or math.isnan(m):
            m = v
    return m


def _max_over_time(values) -> float:
    m = values[0]
    for v in values:
        if v > m or math.isnan(m):
            m = v
    return m


def _stdvar_over_time(values) -> float:
    count = 0
    mean = 0.0
    aux = 0.0
    for v in values:
        count += 1
        delta = v - mean
        mean += delta / count
        aux += delta * (v - mean)
    return aux / count


def quantile(q: float, values) -> float:
    """Prometheus' quantile: linear interpolation between ranks; NaN sorts first."""
    if not values:
        return NAN
    if math.isnan(q):
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    ordered = sorted(values, key=lambda v: (not math.isnan(v), v))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def _fdiv(a: float, b: float) -> float:
    """``a / b`` with Go's float semantics (±Inf or NaN for a zero divisor)."""
    if b == 0:
        if a == 0 or math.isnan(a):
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)
    return a / b


def rate_counter(ts, values, range_start: int, range_end: int, range_ns: int) -> float:
    """Prometheus' extrapolated counter rate over one window (Loki's ``rate_counter``).

    Counter resets add the value before the drop back; each side is
    extrapolated to the window edge unless the nearest sample is more than
    1.1 average intervals away (then by half an interval), and the start is
    never extrapolated below the counter's zero point.  Fewer than two
    samples give 0.
    """
    n = len(values)
    if n < 2:
        return 0.0
    result = values[-1] - values[0]
    prev = values[0]
    for v in values[1:]:
        if v < prev:
            result += prev
        prev = v
    to_start = (ts[0] - range_start) / 1e9
    to_end = (range_end - ts[-1]) / 1e9
    sampled = (ts[-1] - ts[0]) / 1e9
    average = sampled / (n - 1)
    threshold = average * 1.1
    if to_start >= threshold:
        to_start = average / 2
    if result > 0 and values[0] >= 0:
        to_zero = sampled * _fdiv(values[0], result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = average / 2
    factor = _fdiv(sampled + to_start + to_end, sampled) / (range_ns / 1e9)
    return result * factor


#: op -> f(values) for the unwrap ops that only look at values.
RANGE_FUNCTIONS = {
    "sum_over_time": _naive_sum,
    "avg_over_time": _avg_over_time,
    "min_over_time": _min_over_time,
    "max_over_time": _max_over_time,
    "stdvar_over_time": _stdvar_over_time,
    "stddev_over_time": lambda values: math.sqrt(_stdvar_over_time(values)),
    "first_over_time": lambda values: values[0],
    "last_over_time": lambda values: values[-1],
}


def _unwrap_rows(op: str, param, series: dict, grid, range_ns: int, offset_ns: int) -> dict:
    out: dict = {}
    seconds = range_ns / 1e9
    fn = RANGE_FUNCTIONS.get(op)
    steps = grid.steps
    for key, s in series.items():
        ts, values = s.ts, s.values
        if not ts:
            continue
        row: dict = {}
        for i in step_span(grid, ts[0], ts[-1], range_ns, offset_ns):
            t = steps[i]
            lo = t - range_ns - offset_ns
            hi = t - offset_ns
            a = bisect_right(ts, lo)
            b = bisect_right(ts, hi)
            if a == b:
                continue
            window = values[a:b]
            if fn is not None:
                row[i] = fn(window)
            elif op == "rate":
                row[i] = _naive_sum(window) / seconds
            elif op == "quantile_over_time":
                row[i] = quantile(param, list(window))
            elif op == "rate_counter":
                row[i] = rate_counter(ts[a:b], window, lo, hi, range_ns)
            elif op == "absent_over_time":
                row[i] = 1.0  # presence only; absent_over_time inverts it
            else:
                raise QueryError(f"invalid aggregation {op} with unwrap")
        if row:
            out[key] = row
    return out


def _count_rows(op: str, windows: dict, range_ns: int) -> dict:
    """Rows of a line op from ``{key: {step: (count, bytes)}}``."""
    out: dict = {}
    seconds = range_ns / 1e9
    for key, per_step in windows.items():
        if op == "count_over_time":
            row = {i: float(c) for i, (c, _b) in per_step.items()}
        elif op == "bytes_over_time":
            row = {i: float(b) for i, (_c, b) in per_step.items()}
        elif op == "rate":
            row = {i: c / seconds for i, (c, _b) in per_step.items()}
        elif op == "bytes_rate":
            row = {i: b / seconds for i, (_c, b) in per_step.items()}
        else:  # absent_over_time: presence
            row = dict.fromkeys(per_step, 1.0)
        if row:
            out[key] = row
    return out


# ---------------------------------------------------------------------------
# entry point


def eval_range_aggregation(node: ast.RangeAggregation, ctx: EvalContext) -> dict:
    """Evaluate a range aggregation on every step of ``ctx.grid`` (see the module docstring)."""
    lr = node.log_range
    op = node.op
    range_ns, offset_ns = lr.range_ns, lr.offset_ns
    if range_ns <= 0:
        raise QueryError(f"query: the range of {op} must be positive, got {range_ns}ns")
    grid = ctx.grid
    steps = grid.steps
    # scan [lo, hi): the samples of every window (clamped to the int64 timestamps)
    lo = max(I64_MIN, steps[0] - range_ns - offset_ns + 1)
    hi = min(I64_MAX, steps[-1] - offset_ns + 1)
    stages = elide_line_format(op, lr.stages)
    clauses, python_stages = compile_stages(stages)
    extra: tuple = ()
    if lr.unwrap is not None:
        extra = (UnwrapStage(lr.unwrap),
                 *(label_filter_stage(f) for f in lr.unwrap.post_filters))
    selection = LogSelection(lr.selector, tuple(to_matchers(lr.selector)), stages,
                             tuple(clauses), tuple(python_stages), extra, lo, hi)
    if lr.unwrap is None:
        if op not in LINE_OPS:
            raise QueryError(f"invalid aggregation {op} without unwrap")
        windows = None
        if node.grouping is None:
            windows = ctx.source.count_windows(selection, grid, range_ns, offset_ns, ctx.stats)
        if windows is None:
            value_of = len if op in ("bytes_over_time", "bytes_rate") else (lambda line: 0)
            series = _collect(ctx, selection, _grouped_key_fn(node.grouping), value_of, "q")
            windows = {key: sample_windows(s.ts, s.values, grid, range_ns, offset_ns)
                       for key, s in series.items()}
        rows = _count_rows(op, windows, range_ns)
    else:
        grouping = node.grouping
        if grouping is None or grouping.without:
            names = tuple(grouping.labels) if grouping is not None else ()
            grouping = ast.Grouping(names + (lr.unwrap.label,), without=True)
        series = _collect(ctx, selection, _grouped_key_fn(grouping), float, "d")
        rows = _unwrap_rows(op, node.param, series, grid, range_ns, offset_ns)
    for key in rows:
        if any(p[0] == ERROR_LABEL for p in key):
            raise pipeline_error(key)
    if op == "absent_over_time":
        present = set()
        for row in rows.values():
            present.update(row)
        absent = {i: 1.0 for i in range(grid.n) if i not in present}
        return {absent_labels(lr.selector): absent} if absent else {}
    return dict(sorted(rows.items()))
