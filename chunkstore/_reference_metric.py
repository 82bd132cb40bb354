"""Metric queries on the reference model: its entries as a :class:`SampleSource`.

The evaluator (``chunkstore.logql.evaluator``) reads entries only through a
:class:`~chunkstore.logql.evaluator.SampleSource`; :class:`ReferenceSamples`
is the model's, so :meth:`ReferenceStore.query_range` and
:meth:`~ReferenceStore.query_instant` share everything above it with the
store: parsing, constant folding, windows, range and vector functions,
binary operators, limits and result order.  What the store does with its
own machinery is done here from the model's lists: streams selected by
testing every matcher, entries cut at the time range and the retention
cutoff, sorted by time (ties in arrival order), and the whole pipeline run
in Python (no literal prefilter, no block counting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkstore.logql import ast
from chunkstore.logql.evaluator import LogSelection, SampleSource
from chunkstore.logql.pipeline import Pipeline
from chunkstore.logql_plan import _line_filter, _stage
from chunkstore.results import QueryStats

if TYPE_CHECKING:
    from chunkstore._reference import ReferenceStore

__all__ = ["ReferenceSamples"]


class ReferenceSamples(SampleSource):
    """A :class:`~chunkstore.testing.ReferenceStore`'s entries as a log query at ``now`` sees them.

    ``now`` (int ns) is when the retention cutoff is taken; None takes the
    model's clock once, when the source is made.  Raises
    :class:`~chunkstore.errors.StoreClosedError` from :meth:`select` when
    the model is closed (so ``1 + 1`` still evaluates, as on a closed store).
    """

    def __init__(self, model: ReferenceStore, now: int | None = None):
        self.model = model
        self.now = model.clock() if now is None else now

    def select(self, selection: LogSelection, stats: QueryStats):
        model = self.model
        model._check_open()
        stages = [_line_filter(s) if isinstance(s, ast.LineFilter) else _stage(s)
                  for s in selection.stages]
        stages += selection.extra
        pipeline = Pipeline(stages) if stages else None
        matchers = selection.matchers
        for stream in list(model._streams.values()):
            labels = stream.labels
            if not all(m.matches(labels.get(m.name)) for m in matchers):
                continue
            lo = max(selection.start, model._cutoff(labels, self.now))
            held = [h for h in stream.entries if lo <= h.ts < selection.end]
            if not held:
                continue
            held.sort(key=lambda h: (h.ts, h.seq))
            stats.streams += 1
            stats.lines_scanned += len(held)
            yield labels, _entries(labels, held, pipeline, stats)


def _entries(labels, held: list, pipeline: Pipeline | None, stats: QueryStats):
    if pipeline is None:
        plain = Pipeline(()).for_stream(labels)
        for h in held:
            stats.lines_matched += 1
            if h.meta:
                yield h.ts, h.raw, plain.process(h.ts, h.raw, list(h.meta))[1]
            else:
                yield h.ts, h.raw, None
        return
    sp = pipeline.for_stream(labels)
    for h in held:
        res = sp.process(h.ts, h.raw, list(h.meta) if h.meta else None)
        if res is not None:
            stats.lines_matched += 1
            yield h.ts, res[0], res[1]
