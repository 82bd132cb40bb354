"""A reference model of the store, and a state machine that checks a store against it.

:class:`ReferenceStore` implements chunkstore's public write and read API
over plain Python lists, with the same rules for what is accepted and what
is returned, and none of the machinery (no WAL, blocks, chunks, index or
scanner).  Use it as an oracle: do the same things to a real store and to
the model, and compare.  Label validation, LogQL parsing and the pipeline
stages are shared with the real store (they are the specification); the
store's scanner, index, merge, deletion and retention paths are not.

:class:`StoreStateMachine` is a Hypothesis ``RuleBasedStateMachine`` that
does exactly that, step by step: append, push, flush, query, delete,
compact, apply_retention, close and reopen, and a simulated crash.
Subclass it to plug in your own options or store::

    class MyStoreMachine(StoreStateMachine):
        options = {"block_size": 1024, "retention": "30d"}

    TestMyStore = MyStoreMachine.TestCase

Requires Hypothesis (``pip install 'chunkstore[hypothesis]'``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import chunkstore
from chunkstore import logql
from chunkstore import strategies as cs
from chunkstore.compaction import CompactionReport
from chunkstore.deletion import DeleteReport, validate_delete_query
from chunkstore.errors import (
    ChunkstoreError,
    EntryRejected,
    LabelError,
    LimitError,
    QueryError,
    StoreClosedError,
)
from chunkstore.labels import Labels
from chunkstore.logql import ast
from chunkstore.logql import line_filters as _lines
from chunkstore.logql.pipeline import Pipeline
from chunkstore.logql_plan import _line_filter, _stage, parse_selector_matchers, to_matchers
from chunkstore.options import StoreOptions
from chunkstore.querier import time_range
from chunkstore.results import Entry, Stats
from chunkstore.retention import RetentionReport, coerce_policy
from chunkstore.store import PushResult
from chunkstore.timeutil import I64_MAX, I64_MIN, to_ns

__all__ = ["ReferenceStore", "StoreStateMachine"]

_MAX_METADATA_PAIRS = 1024


# ---------------------------------------------------------------------------
# the model

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
        # With only literal line filters the store runs no pipeline at all, and
        # the entry's labels are the stream's plus its metadata as stored.
        self.literal_only = all(isinstance(s, _lines.Contains) for s in stages)

    def selects(self, labels: Labels) -> bool:
        return all(m.matches(labels.get(m.name)) for m in self.matchers)

    def run(self, stream: _Stream, held: _Held, *, metadata: bool = True):
        """``(raw, labels)`` of the entry as the query returns it, or None if dropped."""
        meta = list(held.meta) if metadata and held.meta else None
        out = self.pipeline.process(held.ts, held.raw, stream.labels, meta)
        if out is None:
            return None
        if self.literal_only:
            if not held.meta:
                return held.raw, stream.labels
            lbl = dict(stream.labels)
            lbl.update(held.meta)
            return held.raw, lbl
        return out


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

    Metric queries (``query_range``/``query_instant``), ``context`` and
    ``tail`` are not modelled.
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


# ---------------------------------------------------------------------------
# the state machine

_MINUTE = 60 * 1_000_000_000
#: how far from its stream's newest entry the next one goes: -5 to +1 minutes, in ms
_DELTA_MS = st.builds(lambda m, ms: m * 60_000 + ms, st.integers(-5, 0), st.integers(0, 119_999))


def _outcome(fn):
    """``("ok", value)`` or ``(exception type name, message)`` for comparing calls."""
    try:
        return "ok", fn()
    except (ChunkstoreError, ValueError, TypeError) as exc:
        return type(exc).__name__, str(exc)


def _entry_row(e: Entry) -> tuple:
    return (e.ts, bytes(e.raw), tuple(sorted(e.labels.items())), tuple(sorted(e.stream.items())))


def _key(labels: Mapping) -> frozenset:
    return frozenset((k, v) for k, v in labels.items() if v != "")


def _exact_selector(labels: Mapping) -> str:
    return logql.to_string(ast.Selector(tuple(
        ast.Matcher(k, "=", v) for k, v in sorted(labels.items()) if v != "")))


def _raw_key(entry: tuple) -> tuple | None:
    line = entry[1]
    try:
        raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
    except (UnicodeEncodeError, TypeError):
        return None
    meta = entry[2] if len(entry) == 3 and entry[2] else {}
    return entry[0], raw, tuple(sorted(meta.items()))


class StoreStateMachine(RuleBasedStateMachine):
    """Drive a real store and a :class:`ReferenceStore` with the same operations.

    Each rule does one thing to both and compares what they answered
    (rejections, push results, query results, delete counts); after every
    step the invariants compare each stream's full contents, ``stats()``,
    ``labels()`` and ``series()`` and run the index's own ``check()``.

    Hooks for subclasses:

    * ``options`` (class attribute) or :meth:`store_options`: options for
      ``chunkstore.open`` and the model, on top of ``fsync="always"`` and
      ``maintenance_interval=0``;
    * :meth:`make_store`: open the store at ``path`` (return a wrapper to
      test your own layer; the simulated crash needs ``_crash_for_tests``).

    Timestamps are drawn around the time the example starts: each stream's
    first entry 15 to 45 minutes before it, each next one from 5 minutes
    behind to 2 minutes ahead of the stream's newest entry (in whole
    milliseconds), so that with a small ``out_of_order_window`` some entries
    are rejected and with a ``retention`` of about half an hour some expire.

    The machine keeps away from what the model cannot decide (see
    :class:`ReferenceStore`): it never re-sends an entry it sent before in an
    earlier call (duplicates are only dropped within the head block), never
    writes into a range it deleted (the store's tombstone would hide it), and
    once the store was reopened does not write entries older than the
    model's out-of-order floor in streams that lost data.  Where a store may
    hold more than the model (deleted or expired entries not yet removed from
    disk), ``stats``/``labels``/``series`` are checked to lie between what
    the model holds and what it held.  ``apply_retention`` is only called
    with ``now`` at or before the wall clock, and queries are compared with
    the model's answer at the wall clock just before and just after.
    """

    #: options for both stores (merged over fsync="always", maintenance_interval=0)
    options: dict = {}

    @classmethod
    def store_options(cls) -> dict:
        return {"fsync": "always", "maintenance_interval": 0, **cls.options}

    def make_store(self, path: str):
        return chunkstore.open(path, **self.store_options())

    def make_reference(self) -> ReferenceStore:
        return ReferenceStore(**self.store_options())

    # -- setup ----------------------------------------------------------------
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="chunkstore-machine-")
        self.path = os.path.join(self.dir, "store")
        self.base_ns = time.time_ns() // 1_000_000 * 1_000_000
        self.start_ns = self.base_ns - 30 * _MINUTE
        self.store = self.make_store(self.path)
        self.ref = self.make_reference()
        self.pool: list[dict] = []
        self.sent: dict[frozenset, set] = {}
        self.deletes: list[tuple[_LogQuery, int, int]] = []
        self.restarted = False

    def teardown(self):
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - a crashed or broken store must not mask the failure
            pass
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(pool=st.lists(cs.label_sets(max_size=3), min_size=1, max_size=4, unique_by=_key),
                offsets=st.lists(st.integers(-15, 15), min_size=4, max_size=4))
    def choose_streams(self, pool, offsets):
        """The streams of this run, each with where (in minutes) its first entry goes."""
        self.pool = pool
        self.first_ts = {_key(lbl): self.start_ns + m * _MINUTE
                         for lbl, m in zip(pool, offsets[:len(pool)], strict=True)}

    # -- helpers ----------------------------------------------------------------
    def _labels(self, i: int) -> dict:
        return self.pool[i % len(self.pool)]

    def _anchor(self, labels: Mapping) -> int:
        newest = self.ref.newest_ts(labels)
        if newest is None:
            return self.first_ts.get(_key(labels), self.start_ns)
        return newest

    def _avoid(self, labels: Mapping, entry: tuple) -> bool:
        k = _raw_key(entry)
        if k is None:
            return False
        key = _key(labels)
        if k in self.sent.get(key, ()):
            return True
        if (self.restarted and entry[0] < self.ref.out_of_order_floor(labels)
                and key in {_key(lbl) for lbl in self.ref.streams_with_removals()}):
            # a reopened store rebuilds a stream's newest timestamp from what is
            # left of it; once data is removed it may accept older entries
            return True
        try:
            lbls = Labels.from_input(labels)
        except LabelError:
            return False
        for q, s, e in self.deletes:
            if s <= entry[0] < e and q.selects(lbls):
                if q.pipeline.process(entry[0], k[1], lbls, None) is not None:
                    return True
        return False

    def _note_sent(self, labels: Mapping, entries: Iterable[tuple]) -> None:
        bucket = self.sent.setdefault(_key(labels), set())
        for e in entries:
            k = _raw_key(e)
            if k is not None:
                bucket.add(k)

    def _check_query(self, q: str, start, end, direction: str, limit) -> None:
        t0 = time.time_ns()
        got = _outcome(lambda: [_entry_row(e) for e in self.store.query(
            q, start, end, limit=limit, direction=direction)])
        t1 = time.time_ns()
        nows = (t0, t1) if self.ref.retention_policy is not None else (None,)
        problems = []
        for now in nows:
            want = _outcome(lambda now=now: [_entry_row(e) for e in self.ref.query(
                q, start, end, direction=direction, now=now)])
            ok, why = _same_result(got, want, limit)
            if ok:
                return
            problems.append(why)
        raise AssertionError(f"query {q!r} [{start}, {end}) {direction} limit={limit}: "
                             + "; ".join(problems))

    # -- rules: writing -----------------------------------------------------------
    @rule(i=st.integers(0, 3), delta_ms=_DELTA_MS,
          line=cs.log_lines(
              max_size=8192) | cs.log_lines(max_size=8192, allow_invalid_utf8=True),
          metadata=st.none() | cs.structured_metadata(max_size=2))
    def append(self, i, delta_ms, line, metadata):
        labels = self._labels(i)
        ts = self._anchor(labels) + delta_ms * 1_000_000
        entry = (ts, line) if metadata is None else (ts, line, metadata)
        if self._avoid(labels, entry):
            return
        got = _outcome(lambda: self.store.append(labels, line, ts=ts, metadata=metadata))
        want = _outcome(lambda: self.ref.append(labels, line, ts=ts, metadata=metadata))
        self._note_sent(labels, [entry])
        assert got == want, f"append {labels} ts={ts}: store {got}, model {want}"

    @rule(items=st.lists(st.tuples(
        st.integers(0, 3) | st.integers(0, 3) | st.integers(0, 3) | cs.invalid_label_sets(),
        st.lists(st.tuples(
            _DELTA_MS,
            cs.log_lines(max_size=8192),
            st.none() | cs.structured_metadata(max_size=2)),
            max_size=6)),
        max_size=4))
    def push(self, items):
        batch = []
        for which, raw_entries in items:
            valid = isinstance(which, int)
            labels = self._labels(which) if valid else which
            anchor = self._anchor(labels) if valid else self.start_ns
            entries = []
            for delta_ms, line, meta in raw_entries:
                ts = anchor + delta_ms * 1_000_000
                e = (ts, line) if meta is None else (ts, line, meta)
                if valid and self._avoid(labels, e):
                    continue
                entries.append(e)
            batch.append((labels, entries))
        got = _outcome(lambda: self.store.push(batch))
        want = _outcome(lambda: self.ref.push(batch))
        for labels, entries in batch:
            self._note_sent(labels, entries)
        if got[0] == "ok" and want[0] == "ok":
            g, w = got[1], want[1]
            assert (g.accepted, g.rejected) == (w.accepted, w.rejected), (
                f"push: store accepted {g.accepted} rejected {g.rejected}; "
                f"model accepted {w.accepted} rejected {w.rejected}")
        else:
            assert got == want, f"push: store {got}, model {want}"

    @rule()
    def flush(self):
        self.store.flush()
        self.ref.flush()

    # -- rules: reading -------------------------------------------------------------
    @rule(data=st.data())
    def query(self, data):
        labels = data.draw(st.sampled_from(self.pool), label="stream")
        q = data.draw(cs.queries(kind="log", selector=cs.selectors(labels=labels)), label="query")
        start = data.draw(st.none() | st.integers(-10, 40).map(
            lambda m: self.start_ns + m * _MINUTE), label="start")
        end = data.draw(st.none() | st.integers(1, 40).map(
            lambda m: (self.start_ns if start is None else start) + m * _MINUTE), label="end")
        direction = data.draw(st.sampled_from(["backward", "forward"]), label="direction")
        limit = data.draw(st.none() | st.integers(0, 12), label="limit")
        self._check_query(q, start, end, direction, limit)

    # -- rules: removing data ---------------------------------------------------------
    @rule(data=st.data())
    def delete(self, data):
        labels = data.draw(st.sampled_from(self.pool), label="stream")
        sel = data.draw(cs.selectors(labels=labels), label="selector")
        filters = data.draw(st.lists(cs.line_filters(), max_size=2), label="filters")
        q = " ".join([sel, *filters])
        start = self.start_ns + data.draw(st.integers(-10, 40), label="start_min") * _MINUTE
        end = start + data.draw(st.integers(1, 30), label="span_min") * _MINUTE
        t0 = time.time_ns()
        got = _outcome(lambda: self.store.delete(q, start, end).entries)
        t1 = time.time_ns()
        targets = _outcome(lambda: self.ref._delete_targets(q, start, end))
        if targets[0] == "ok":
            counts = {self.ref._visible(targets[1], now) for now in (t0, t1)}
            want = _outcome(lambda: self.ref.delete(q, start, end, now=t0).entries)
            assert got[0] == "ok" and got[1] in counts, (
                f"delete {q!r} [{start}, {end}): store {got}, model {sorted(counts)}")
            self.deletes.append((_LogQuery(q), start, end))
        else:
            want = targets
            assert got == want, f"delete {q!r}: store {got}, model {want}"

    @rule(minutes_ago=st.integers(0, 20))
    def apply_retention(self, minutes_ago):
        # never later than the wall clock: the store's query-time cutoff must
        # hide at least what this drops
        now = self.base_ns - minutes_ago * _MINUTE
        got = _outcome(lambda: self.store.apply_retention(now) and None)
        want = _outcome(lambda: self.ref.apply_retention(now) and None)
        assert got == want, f"apply_retention({now}): store {got}, model {want}"

    @rule()
    def compact(self):
        got = _outcome(lambda: self.store.compact() and None)
        want = _outcome(lambda: self.ref.compact() and None)  # after the store: later clock
        assert got == want, f"compact: store {got}, model {want}"

    # -- rules: restarts --------------------------------------------------------------
    def _after_restart(self) -> None:
        self.restarted = True

    @rule()
    def reopen(self):
        self.store.close()
        self.store = self.make_store(self.path)
        self._after_restart()

    @precondition(lambda self: hasattr(self.store, "_crash_for_tests"))
    @rule()
    def crash(self):
        """kill -9 in process: handles dropped without close(); acknowledged writes survive."""
        self.store._crash_for_tests()
        self.store = self.make_store(self.path)
        self._after_restart()

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def contents_agree(self):
        for labels in self.pool:
            self._check_query(_exact_selector(labels), None, None, "forward", None)

    @invariant()
    def index_answers_agree(self):
        if not self.pool:
            return
        removed = self.ref.streams_with_removals()
        extra = {_key(lbl) for lbl in removed}
        got_streams, want_streams = set(), set()
        for labels in self.pool:
            sel = _exact_selector(labels)
            got_streams |= {_key(d) for d in self.store.series(sel)}
            want_streams |= {_key(d) for d in self.ref.series(sel)}
        assert want_streams <= got_streams <= want_streams | extra, (
            f"series: store {got_streams}, model {want_streams} (+ maybe {extra})")
        got_names = set(self.store.labels())
        want_names = set(self.ref.labels())
        maybe = {n for lbl in removed for n in lbl}
        assert want_names <= got_names <= want_names | maybe, (
            f"labels: store {sorted(got_names)}, model {sorted(want_names)}")
        g, w = self.store.stats(), self.ref.stats()
        slack, slack_bytes = self.ref.removed_entries, self.ref.removed_bytes
        assert w.entries <= g.entries <= w.entries + slack, (
            f"stats: store {g.entries} entries, model {w.entries} (+ up to {slack} removed)")
        assert w.bytes_raw <= g.bytes_raw <= w.bytes_raw + slack_bytes, (
            f"stats: store {g.bytes_raw} raw bytes, model {w.bytes_raw}")
        assert w.streams <= g.streams <= w.streams + len(removed), (
            f"stats: store {g.streams} streams, model {w.streams}")

    @invariant()
    def index_is_consistent(self):
        index = getattr(self.store, "index", None)
        if index is not None and hasattr(index, "check"):
            index.check()


def _same_result(got, want, limit) -> tuple[bool, str]:
    if got[0] != "ok" or want[0] != "ok":
        return got == want, f"store {got}, model {want}"
    g, w = got[1], want[1]
    if [r[0] for r in g] != [r[0] for r in (w if limit is None else w[:limit])]:
        return False, (f"timestamps differ: store {[r[0] for r in g]}, "
                       f"model {[r[0] for r in w][:limit]}")
    if limit is None:
        if sorted(g) != sorted(w):
            return False, f"entries differ: store {sorted(g)}, model {sorted(w)}"
    else:
        missing = [r for r in g if r not in set(w)]
        if missing:
            return False, f"store returned entries the model does not: {missing}"
    return True, ""
