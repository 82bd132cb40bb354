"""The store as a :class:`~chunkstore.logql.evaluator.SampleSource`: entries from its blocks.

:class:`StoreSamples` is what ``store.query_range``/``query_instant`` hand
the evaluator.  It takes one snapshot of the selected streams under the
store lock (sealed chunk references, the head's cut blocks and open block,
the retention cutoff and the delete requests of each stream:
``querier.snapshot_streams``), then reads each stream's blocks lazily and
in time order (``querier.stream_source``) through the block scanner, which
applies the literal line filters of the pipeline (``selection.clauses``)
inside decompressed blocks; the rest of the pipeline runs in Python on the
entries that pass.  Plain counting queries skip the per-entry path
altogether (:meth:`StoreSamples.count_windows`, ``evaluator_fast``).
"""

from __future__ import annotations

from chunkstore import _kernels
from chunkstore.logql.evaluator import LogSelection, SampleSource, StepGrid
from chunkstore.logql.evaluator_range import decode_metadata
from chunkstore.logql.pipeline import Pipeline
from chunkstore.querier import snapshot_streams, stream_source
from chunkstore.results import QueryStats
from chunkstore.tokenfilter import SkipGate

__all__ = ["StoreSamples", "unpack_snapshot", "without_deleted"]


def unpack_snapshot(snap, lo: int):
    """``(sid, labels, chunks, head, start, tombstones)`` of one ``snapshot_streams`` item.

    ``start`` is where the stream's visible data begins (``lo``, or later when
    retention has cut the stream), ``tombstones`` the delete requests that
    apply to it.
    """
    sid, labels, chunks, head = snap[:4]
    start = max(lo, snap[4]) if len(snap) > 4 else lo
    tombs = snap[5] if len(snap) > 5 else ()
    return sid, labels, chunks, head, start, tombs


def without_deleted(entries, tombs, labels):
    """Drop the entries a delete request covers."""
    for ts, line, meta in entries:
        if not any(t.covers(ts, line, meta, labels) for t in tombs):
            yield ts, line, meta


class StoreSamples(SampleSource):
    """The entries of a :class:`chunkstore.Store` (or a read-only one), for the evaluator.

    ``timeout`` is the store's ``query_timeout``.  Each :meth:`select` takes
    its own snapshot, so the queries of one expression (both legs of a
    binary operator) may see different writes, as Loki's would.
    """

    __slots__ = ("store",)

    def __init__(self, store):
        self.store = store

    @property
    def timeout(self) -> float:
        return getattr(getattr(self.store, "options", None), "query_timeout", 0) or 0

    def select(self, selection: LogSelection, stats: QueryStats):
        store = self.store
        lo, hi = selection.start, selection.end
        flt = _kernels.scan.Filter(list(selection.clauses))
        stages = selection.rest + selection.extra
        pipeline = Pipeline(stages) if stages else None
        snaps = snapshot_streams(store, list(selection.matchers), lo, hi)
        stats.streams += len(snaps)
        gate = SkipGate.for_query(store, selection.clauses)
        for snap in snaps:
            _sid, labels, chunks, head_snap, start, tombs = unpack_snapshot(snap, lo)
            if start >= hi:
                continue
            entries = stream_source(store, chunks, head_snap, flt, start, hi, True, stats, gate)
            if tombs:
                entries = without_deleted(entries, tombs, labels)
            yield labels, _processed(entries, labels, pipeline, stats)

    def count_windows(self, selection: LogSelection, grid: StepGrid, range_ns: int,
                      offset_ns: int, stats: QueryStats) -> dict | None:
        """The scanner's counts when literal clauses are the whole pipeline (``evaluator_fast``)."""
        if selection.rest or selection.extra:
            return None
        from chunkstore.logql.evaluator_fast import count_windows

        return count_windows(self.store, grid, stats, list(selection.matchers),
                             _kernels.scan.Filter(list(selection.clauses)), range_ns, offset_ns)


def _processed(entries, labels, pipeline: Pipeline | None, stats: QueryStats):
    """``(ts, line, labels or None)`` of the scanned entries that pass the Python stages."""
    if pipeline is not None:
        sp = pipeline.for_stream(labels)
        for ts, line, meta in entries:
            stats.lines_matched += 1
            res = sp.process(ts, line, decode_metadata(meta) if meta else None)
            if res is not None:
                yield ts, res[0], res[1]
        return
    plain = None
    for ts, line, meta in entries:
        stats.lines_matched += 1
        if meta:
            if plain is None:
                plain = Pipeline(()).for_stream(labels)
            yield ts, line, plain.process(ts, line, decode_metadata(meta))[1]
        else:
            yield ts, line, None
