"""The reference model of the store: chunkstore's public API over plain Python lists.

:class:`ReferenceStore` (re-exported by :mod:`chunkstore.testing`, where the
user documentation is) implements the write path, log and metric queries,
the index answers, delete, retention and compaction the obvious way, with
none of the store's machinery (no WAL, blocks, chunks, index or scanner).
Label validation, LogQL parsing, the pipeline stages and the metric
evaluator above its sample source are shared with the store: they are the
specification.  Metric queries read the model's entries through
:class:`chunkstore._reference_metric.ReferenceSamples`.

Does not need Hypothesis (the state machine in ``_state_machine`` does).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from chunkstore import logql
from chunkstore.compaction import CompactionReport
from chunkstore.deletion import DeleteReport, validate_delete_query
from chunkstore.errors import (
    EntryRejected,
    LabelError,
    LimitError,
    QueryError,
    StoreClosedError,
)
from chunkstore.labels import Labels
from chunkstore.logql import ast
from chunkstore.logql.pipeline import Pipeline
from chunkstore.logql_plan import _line_filter, _stage, parse_selector_matchers, to_matchers
from chunkstore.metric_query import MAX_QUERY_SERIES
from chunkstore.options import StoreOptions
from chunkstore.querier import time_range
from chunkstore.results import Entry, Sample, Series, Stats
from chunkstore.retention import RetentionReport, coerce_policy
from chunkstore.store import PushResult
from chunkstore.timeutil import I64_MAX, I64_MIN, to_ns

__all__ = ["ReferenceStore"]

_MAX_METADATA_PAIRS = 1024


@dataclass
class _Held:
    """One entry the model holds: ``meta`` is sorted ``(name, value)`` pairs."""

    ts: int
    raw: bytes
    meta: tuple
    seq: int  # arrival order, for ties


@dataclass
class _Stream:
    labels: Labels
    entries: list = field(default_factory=list)
    keys: set = field(default_factory=set)
    max_ts: int = I64_MIN  # newest timestamp ever accepted (the out-of-order floor)
    removed: int = 0  # entries removed by delete, retention or compaction
    removed_bytes: int = 0


def _validate_entry(item, max_line_size: int):
    """``(reason, ts, raw, meta)`` with reason None for an acceptable entry.

    The checks, their order and the reasons are those of ``BlockBuilder.extend``
    (see ``chunkstore/_block_py.py``).
    """
    if not isinstance(item, (tuple, list)) or not 2 <= len(item) <= 3:
        return "invalid entry", None, None, None
    ts = item[0]
    if not isinstance(ts, int) or not I64_MIN <= ts <= I64_MAX:
        return "invalid timestamp", ts, None, None
    line = item[1]
    if isinstance(line, bytes):
        raw = bytes(line)
    elif isinstance(line, str):
        try:
            raw = line.encode("utf-8")
        except UnicodeEncodeError:
            return "line is not valid unicode", ts, None, None
    else:
        return "line must be str or bytes", ts, None, None
    if 0 < max_line_size < len(raw):
        return (f"line too long: {len(raw)} bytes exceeds max_line_size {max_line_size}",
                ts, None, None)
    meta = item[2] if len(item) == 3 else None
    if meta is None:
        pairs: tuple = ()
    elif not isinstance(meta, Mapping):
        return "invalid structured metadata", ts, None, None
    else:
        enc = []
        for k, v in meta.items():
            if not isinstance(k, str) or not isinstance(v, str):
                return "invalid structured metadata", ts, None, None
            try:
                enc.append((k.encode("utf-8"), v.encode("utf-8")))
            except UnicodeEncodeError:
                return "invalid structured metadata", ts, None, None
        if len(enc) > _MAX_METADATA_PAIRS:
            return (f"too many structured metadata pairs: {len(enc)} exceeds "
                    f"{_MAX_METADATA_PAIRS}", ts, None, None)
        pairs = tuple((k.decode(), v.decode()) for k, v in sorted(enc))
    return None, ts, raw, pairs


class _LogQuery:
    """A parsed log query evaluated the obvious way: every stage in Python, per entry."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise QueryError(f"query: expected a LogQL string, got {type(text).__name__}")
        expr = logql.parse_log_query(text)
        self.matchers = to_matchers(expr.selector)
        stages = [_line_filter(s) if isinstance(s, ast.LineFilter) else _stage(s)
                  for s in expr.stages]
        self.pipeline = Pipeline(stages)

    def selects(self, labels: Labels) -> bool:
        return all(m.matches(labels.get(m.name)) for m in self.matchers)

    def run(self, stream: _Stream, held: _Held, *, metadata: bool = True):
        """``(raw, labels)`` of the entry as the query returns it, or None if dropped."""
        meta = list(held.meta) if metadata and held.meta else None
        return self.pipeline.process(held.ts, held.raw, stream.labels, meta)


class _ReferenceStreamHandle:
    """What :meth:`ReferenceStore.stream` returns (mirrors :class:`chunkstore.Stream`)."""

    def __init__(self, store: ReferenceStore, labels: Labels):
        self._store = store
        self.labels = labels

    def append(self, line, ts=None, metadata=None) -> None:
        self._store.append(self.labels, line, ts=ts, metadata=metadata)

    def push(self, entries) -> PushResult:
        return self._store.push([(self.labels, entries)])


class ReferenceStore:
    """A plain in-memory model of :class:`chunkstore.Store`, for use as a test oracle.

    Accepts the options of :func:`chunkstore.open` (validated the same way)
    and uses those that decide results: the label limits, ``max_streams``,
    ``max_line_size``, ``out_of_order_window`` (default ``chunk_max_age/2``)
    and ``retention``.  Storage options (block and chunk sizes, codec, fsync
    ...) change nothing here.  ``clock`` (default ``time.time_ns``) gives
    "now" for default timestamps and for retention.

    The model's semantics, and where a real store may legitimately differ:

    * Entries are accepted or rejected exactly as the store does (same checks,
      order and reasons).  The out-of-order floor is the newest timestamp
      ever accepted in the stream minus the window, fixed per
      ``(labels, entries)`` item of a push.  A store that is reopened after
      the newest data of a stream was deleted or expired may have forgotten
      that timestamp and accept older entries than the model.
    * An exact duplicate (same ts, line bytes and metadata) of an entry the
      stream holds is dropped silently.  chunkstore, like Loki, drops it only
      while the first copy is still in the stream's open head block (always
      within one ``push`` or ``append`` call).
    * ``delete`` removes the matching entries at once.  The store hides them
      with a tombstone that also hides entries appended later into the
      deleted range, until ``compact()`` retires it.
    * ``query`` never returns entries older than their stream's retention
      cutoff at ``now`` (default: the clock), as the store does;
      ``apply_retention(now)`` removes every such entry (the store drops
      whole sealed chunks), and ``compact()`` removes those expired at the
      clock's now (the store: from sealed chunks).  ``max_bytes`` caps
      cannot be modelled and raise ``ValueError``.
    * ``labels``, ``label_values``, ``series`` and ``stats`` count exactly
      the entries held in ``[start, end)``; the store answers from its
      index, by whole chunks, and counts deleted or expired entries until
      they are physically removed.  ``Stats.chunks`` and ``bytes_stored``
      are 0 here.
    * Entries with equal timestamps come back in arrival order (reversed
      for ``direction="backward"``); the store orders ties across streams
      arbitrarily.
    * ``query_range`` and ``query_instant`` evaluate metric queries with the
      store's evaluator (``chunkstore.logql.evaluator``) over the entries a
      log query at ``now`` would return, run through the whole pipeline in
      Python; the store counts plain counting queries in its blocks and
      applies literal line filters in its scanner.  Results are the same
      (exactly, not within a tolerance) except where the order of entries
      with equal timestamps matters: ``first_over_time``,
      ``last_over_time``, ``rate_counter`` and the rounding of sums over
      unwrapped values.

    ``context`` and ``tail`` are not modelled.
    """

    def __init__(self, *, clock=None, **options):
        opts = StoreOptions.from_kwargs(**options)
        self.options = opts
        self.retention_policy = coerce_policy(opts.retention)
        if self.retention_policy is not None and self.retention_policy.max_bytes is not None:
            raise ValueError("reference store: a retention max_bytes cap cannot be modelled")
        self.clock = clock if clock is not None else time.time_ns
        self._streams: dict[Labels, _Stream] = {}
        self._seq = 0
        self._closed = False
        self._next_tombstone = 1
        #: the QueryStats of the last metric query (few of its counters are kept)
        self.last_query_stats = None

    # -- lifecycle ----------------------------------------------------------
    def __enter__(self) -> ReferenceStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("reference store: used after close()")

    def flush(self) -> None:
        """Nothing to make durable; checks the store is open."""
        self._check_open()

    def close(self) -> None:
        """Idempotent; any later call raises StoreClosedError."""
        self._closed = True

    # -- write path -----------------------------------------------------------
    def _resolve(self, labels) -> _Stream:
        lbls = Labels.from_input(labels, self.options.label_limits)
        stream = self._streams.get(lbls)
        if stream is None:
            limit = self.options.max_streams
            if limit and len(self._streams) >= limit:
                raise LimitError(
                    f"push: stream limit reached: the store has {len(self._streams)} "
                    f"streams (max_streams={limit}); new stream {lbls} refused"
                )
            stream = self._streams[lbls] = _Stream(lbls)
        return stream

    def _floor(self, stream: _Stream) -> int:
        if stream.max_ts == I64_MIN:
            return I64_MIN
        return max(I64_MIN, stream.max_ts - self.options.ooo_window_ns)

    def _extend(self, stream: _Stream, entries: list, result: PushResult, labels) -> None:
        floor = self._floor(stream)
        max_line = self.options.max_line_size
        newest = stream.max_ts
        retry = []
        for pass_entries, first in ((entries, True), (retry, False)):
            for item in pass_entries:
                reason, ts, raw, meta = _validate_entry(item, max_line)
                if reason == "invalid timestamp" and first and not isinstance(ts, int):
                    try:
                        retry.append((to_ns(ts),) + tuple(item[1:]))
                        continue
                    except (TypeError, ValueError) as exc:
                        reason = f"invalid timestamp: {exc}"
                if reason is None:
                    key = (ts, raw, meta)
                    if key in stream.keys:
                        continue  # exact duplicate: dropped silently
                    if ts < floor:
                        reason = "too far behind"
                if reason is not None:
                    result.rejected.append((labels, ts if reason != "invalid entry"
                                            else _entry_ts(item), reason))
                    continue
                self._seq += 1
                stream.entries.append(_Held(ts, raw, meta, self._seq))
                stream.keys.add(key)
                newest = max(newest, ts)
                result.accepted += 1
        stream.max_ts = newest

    def append(self, labels, line, ts=None, metadata=None) -> None:
        """Like :meth:`chunkstore.Store.append`: LabelError, LimitError or EntryRejected."""
        self._check_open()
        stream = self._resolve(labels)
        ts = self.clock() if ts is None else to_ns(ts)
        entry = (ts, line) if metadata is None else (ts, line, metadata)
        result = PushResult()
        self._extend(stream, [entry], result, stream.labels)
        if result.rejected:
            reason = result.rejected[0][2]
            raise EntryRejected(f"append: entry rejected: {reason}", reason=reason)

    def push(self, streams: Iterable) -> PushResult:
        """Like :meth:`chunkstore.Store.push`: invalid entries are listed, the rest kept."""
        self._check_open()
        result = PushResult()
        for item in streams:
            try:
                labels, entries = item
            except (TypeError, ValueError):
                raise TypeError(
                    f"push: expected (labels, entries) pairs, got {type(item).__name__}"
                ) from None
            entries = list(entries)
            try:
                stream = self._resolve(labels)
            except (LabelError, LimitError) as exc:
                result.rejected.extend((labels, _entry_ts(e), str(exc)) for e in entries)
                continue
            self._extend(stream, entries, result, labels)
        return result

    def stream(self, labels) -> _ReferenceStreamHandle:
        self._check_open()
        return _ReferenceStreamHandle(self, self._resolve(labels).labels)

    # -- read path --------------------------------------------------------------
    def _cutoff(self, labels: Labels, now: int | None) -> int:
        policy = self.retention_policy
        if policy is None:
            return I64_MIN
        cutoff = policy.cutoff_ns(labels, self.clock() if now is None else now)
        return I64_MIN if cutoff is None else cutoff

    def query(self, logql: str, start=None, end=None, *, limit: int | None = None,
              direction: str = "backward", now: int | None = None) -> Iterator[Entry]:
        """Entries matching a LogQL log query, by time (see the class docstring on ties).

        ``now`` (ns, default the clock) is the time the retention cutoff is
        taken at; the store uses the wall clock.
        """
        if direction not in ("forward", "backward"):
            raise ValueError(f"query: direction must be 'forward' or 'backward', got {direction!r}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"query: limit must be a non-negative int or None, got {limit!r}")
        s, e = time_range(start, end)
        q = _LogQuery(logql)
        self._check_open()
        out = []
        for stream in self._streams.values():
            if not q.selects(stream.labels):
                continue
            lo = max(s, self._cutoff(stream.labels, now))
            for held in stream.entries:
                if not lo <= held.ts < e:
                    continue
                res = q.run(stream, held)
                if res is not None:
                    out.append((held.ts, held.seq, Entry(held.ts, res[0], res[1], stream.labels)))
        out.sort(key=lambda t: (t[0], t[1]))
        if direction == "backward":
            out.reverse()
        if limit is not None:
            out = out[:limit]
        return iter([t[2] for t in out])

    def query_range(self, logql: str, start, end, step, *,
                    max_series: int | None = MAX_QUERY_SERIES,
                    now: int | None = None) -> list[Series]:
        """A metric query at ``start, start+step, ... <= end``, like ``Store.query_range``.

        Same arguments, errors, limits (``max_series``, 11,000 steps) and
        result order as the store; ``now`` (ns, default the clock) is the
        time the retention cutoff is taken at.
        """
        from chunkstore import metric_query
        from chunkstore._reference_metric import ReferenceSamples

        source = ReferenceSamples(self, now)
        try:
            return metric_query.query_range(source, logql, start, end, step,
                                            max_series=max_series)
        finally:
            self.last_query_stats = getattr(source, "last_query_stats", None)

    def query_instant(self, logql: str, time=None, *,
                      max_series: int | None = MAX_QUERY_SERIES,
                      now: int | None = None) -> list[Sample] | float:
        """A metric query at one time, like :meth:`chunkstore.Store.query_instant`.

        ``time`` defaults to the clock's now; ``now`` as for :meth:`query_range`.
        """
        from chunkstore import metric_query
        from chunkstore._reference_metric import ReferenceSamples

        source = ReferenceSamples(self, now)
        at = self.clock() if time is None else time
        try:
            return metric_query.query_instant(source, logql, at, max_series=max_series)
        finally:
            self.last_query_stats = getattr(source, "last_query_stats", None)

    def _held_in(self, start, end, selector: str | None = None, *, required: bool = False):
        s, e = time_range(start, end)
        matchers = None
        if selector is not None:
            matchers = parse_selector_matchers(selector)
        if required and not matchers:
            raise QueryError("series: a selector is required")
        self._check_open()
        for stream in self._streams.values():
            if matchers and not all(m.matches(stream.labels.get(m.name)) for m in matchers):
                continue
            held = [h for h in stream.entries if s <= h.ts < e]
            if held:
                yield stream, held

    def labels(self, start=None, end=None) -> list[str]:
        """Label names of streams holding entries in ``[start, end)``."""
        return sorted({n for stream, _h in self._held_in(start, end) for n in stream.labels})

    def label_values(self, name: str, start=None, end=None, query: str | None = None) -> list[str]:
        out = set()
        for stream, _h in self._held_in(start, end, query):
            v = stream.labels.get(name)
            if v is not None:
                out.add(v)
        return sorted(out)

    def series(self, selector: str, start=None, end=None) -> list[dict[str, str]]:
        found = [stream.labels for stream, _h in self._held_in(start, end, selector, required=True)]
        return [lbl.as_dict() for lbl in sorted(found, key=lambda lbl: lbl.pairs)]

    def stats(self, selector: str | None = None, start=None, end=None) -> Stats:
        """Streams, entries, raw bytes and time bounds of the entries held in ``[start, end)``."""
        out = Stats()
        for _stream, held in self._held_in(start, end, selector):
            out.streams += 1
            out.entries += len(held)
            out.bytes_raw += sum(len(h.raw) for h in held)
            lo, hi = min(h.ts for h in held), max(h.ts for h in held)
            out.min_ts = lo if out.min_ts is None else min(out.min_ts, lo)
            out.max_ts = hi if out.max_ts is None else max(out.max_ts, hi)
        return out

    # -- keeping the disk in bounds ---------------------------------------------
    def _remove(self, stream: _Stream, doomed: list) -> None:
        gone = {id(h) for h in doomed}
        stream.entries = [h for h in stream.entries if id(h) not in gone]
        for h in doomed:
            stream.keys.discard((h.ts, h.raw, h.meta))
        stream.removed += len(doomed)
        stream.removed_bytes += sum(len(h.raw) for h in doomed)

    def _delete_targets(self, query: str, start, end) -> list:
        validate_delete_query(query)
        s, e = time_range(start, end)
        if s >= e:
            raise ValueError(f"delete: empty time range [{s}, {e})")
        self._check_open()
        q = _LogQuery(query)
        targets = []
        for stream in self._streams.values():
            if q.selects(stream.labels):
                doomed = [h for h in stream.entries
                          if s <= h.ts < e and q.run(stream, h, metadata=False) is not None]
                if doomed:
                    targets.append((stream, doomed))
        return targets

    def _visible(self, targets: list, now: int | None) -> int:
        return sum(1 for stream, doomed in targets for h in doomed
                   if h.ts >= self._cutoff(stream.labels, now))

    def delete(self, query: str, start=None, end=None, *, now: int | None = None) -> DeleteReport:
        """Remove entries matching a selector plus optional line filters in ``[start, end)``.

        ``report.entries`` counts those a query at ``now`` would have returned.
        """
        targets = self._delete_targets(query, start, end)
        rep = DeleteReport(entries=self._visible(targets, now), tombstone_id=self._next_tombstone)
        self._next_tombstone += 1
        for stream, doomed in targets:
            self._remove(stream, doomed)
        return rep

    def _expire(self, now: int) -> int:
        n = 0
        for stream in self._streams.values():
            cutoff = self._cutoff(stream.labels, now)
            doomed = [h for h in stream.entries if h.ts < cutoff]
            if doomed:
                self._remove(stream, doomed)
                n += len(doomed)
        return n

    def apply_retention(self, now=None, *, dry_run: bool = False) -> RetentionReport:
        """Remove every entry past its stream's retention at ``now`` (default the clock)."""
        self._check_open()
        now = self.clock() if now is None else to_ns(now, what="now")
        rep = RetentionReport(dry_run=dry_run)
        if self.retention_policy is None:
            return rep
        if dry_run:
            rep.entries = sum(1 for s in self._streams.values() for h in s.entries
                              if h.ts < self._cutoff(s.labels, now))
            return rep
        rep.entries = self._expire(now)
        return rep

    def compact(self, *, codec: str = "lz4hc") -> CompactionReport:
        """Deletes are already applied; removes entries expired at the clock's now."""
        self._check_open()
        rep = CompactionReport()
        rep.entries_removed = self._expire(self.clock())
        return rep

    # -- for tests ----------------------------------------------------------------
    def dump(self) -> list[tuple[dict, int, bytes, dict]]:
        """Every entry held: ``(labels, ts, raw, metadata)`` in arrival order."""
        out = []
        for stream in self._streams.values():
            for h in stream.entries:
                out.append((h.seq, stream.labels.as_dict(), h.ts, h.raw, dict(h.meta)))
        return [t[1:] for t in sorted(out, key=lambda t: t[0])]

    def newest_ts(self, labels) -> int | None:
        """The newest timestamp ever accepted in a stream (its out-of-order anchor)."""
        try:
            stream = self._streams.get(Labels.from_input(labels, self.options.label_limits))
        except LabelError:
            return None
        return None if stream is None or stream.max_ts == I64_MIN else stream.max_ts

    def out_of_order_floor(self, labels) -> int:
        """Entries of the stream older than this are rejected as too far behind."""
        try:
            stream = self._streams.get(Labels.from_input(labels, self.options.label_limits))
        except LabelError:
            return I64_MIN
        return I64_MIN if stream is None else self._floor(stream)

    @property
    def removed_entries(self) -> int:
        """Entries removed by delete, retention and compaction so far."""
        return sum(s.removed for s in self._streams.values())

    @property
    def removed_bytes(self) -> int:
        return sum(s.removed_bytes for s in self._streams.values())

    def streams_with_removals(self) -> set[Labels]:
        return {lbl for lbl, s in self._streams.items() if s.removed}


def _entry_ts(e):
    try:
        return e[0]
    except (TypeError, IndexError, KeyError):
        return None

