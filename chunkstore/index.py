"""The in-memory label index: streams, postings and the table of sealed chunks.

Postings map ``name -> value -> {stream ids}``; selectors resolve by set
operations on postings (never by scanning every stream).  The index is
rebuilt on open from the index log (``chunkstore/index_log.py``), never by
scanning data files.

Sealed chunks are stored columnar, not as one object each, for memory: a
store that seals many small chunks (1 GB into 10,000 streams under memory
pressure seals ~50,000) paid ~450-550 bytes a chunk for a ``ChunkRef``
object, its dict entry and a per-stream ``SortedKeyList`` holding a key
tuple per chunk, plus ~450 bytes a stream for the empty list.
:class:`ChunkTable` keeps the eleven fields in ``array`` columns ordered by
chunk id (finding a chunk is a bisect), the segment as an index into a
table of interned file names.  The time order of every stream's chunks is
one ``SortedList`` of packed integer keys ``(stream_id, min_ts, slot)``, so
a stream's chunks by ``(min_ts, chunk_id)`` are one range of it and time
pruning is a bisect.  Measured with tracemalloc on 100,000 chunks over
10,000 streams (``tests/test_index_memory.py``): ~149 bytes a chunk
(~546 before) and ~450 bytes a stream less; opening a store of those
chunks takes +58 MiB of RSS instead of +124 MiB, and the peak RSS of the
1 GB ingest above fell from 124 to 102 MiB.

``ChunkRef`` stays the value object callers get, built on access
(``MemIndex.chunks[cid]``, iterating a :class:`ChunkList`).  A ChunkList
(``StreamIndexEntry.chunks``, ``chunks_overlapping``) captures the columns
and builds a ChunkRef only for the chunks read from it, so a query's
snapshot builds no ChunkRef for a chunk it never opens; callers that need only
sums or a yes/no use ``chunk_totals`` and ``has_chunks_overlapping``.

Per segment file the index also counts the live chunks and their bytes,
maintained by :meth:`MemIndex.add_chunk` / :meth:`MemIndex.remove_chunk`
themselves (so replay on open rebuilds them with no extra pass): whether a
segment file is dead after a drop is a dict lookup, and retention costs
O(chunks removed), not O(chunks kept).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress

from sortedcontainers import SortedList

from chunkstore.errors import QueryError
from chunkstore.labels import Labels
from chunkstore.matchers import Matcher

__all__ = ["ChunkRef", "ChunkList", "ChunkTable", "StreamIndexEntry", "MemIndex"]

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

# The time-order key of the chunk in slot i: stream_id << 128 | (min_ts +
# 2**63) << 64 | i.  Python ints compare like the tuple (stream_id, min_ts,
# i) as long as stream_id >= 0 and min_ts is a signed 64-bit integer, which
# ChunkTable.add checks; slots are in chunk-id order, so this is the order
# (stream_id, min_ts, chunk_id).  Such a key takes 48 bytes (any stream id
# below 2**52), against ~130 for a key tuple.  The slot, not the chunk id,
# ends the key so that reading a stream's chunks needs no lookup per chunk
# (a bisect on the id column, ~0.45 us); the price is rebuilding the keys
# when slots move (compact(), an out-of-order id), which is O(n) anyway.
_TS_BIAS = 1 << 63
_LOW64 = (1 << 64) - 1

_DEAD = -1  # stream_id of a removed chunk's slot


@dataclass(slots=True)
class ChunkRef:
    """Where a sealed chunk lives and what it holds (one index-log record).

    A value object: the index builds one on access and does not keep it, so
    changing its fields changes nothing in the index.
    """

    chunk_id: int
    stream_id: int
    segment: str  # path of the segment file, relative to the store root
    offset: int
    length: int
    min_ts: int
    max_ts: int
    n_entries: int
    text_bytes: int
    stored_bytes: int
    max_lsn: int

    def overlaps(self, start: int, end: int) -> bool:
        """Whether the chunk has entries in ``[start, end)``."""
        return self.max_ts >= start and self.min_ts < end


class ChunkTable:
    """The sealed chunks of an index, one array per field, ordered by chunk id.

    Slot ``i`` holds one chunk in every column; ``chunk_id`` strictly
    increases over the slots, so a lookup by id is a bisect (O(log n)).  Ids
    come from the store's counter, so adding is an append; an id below the
    last goes to its sorted place (O(n), rare).  Removing a chunk marks its
    slot dead (``stream_id`` -1); the columns are rebuilt without the dead
    slots once those outnumber ``max(1024, live)``, so removal is amortised
    O(log n).  ``by_stream`` holds the packed key of every live chunk (see
    ``_TS_BIAS``).  Columns are ``array('q')``, the segment column
    ``array('i')`` (an index into ``segment_names``).

    While :meth:`bulk` is on (opening a store), keys wait in a list and go
    into ``by_stream`` in one sort when something first reads it: adding a
    chunk then costs an append instead of a ``SortedList.add``.

    A slot's fields never change in place: removal only marks it dead, and
    whatever moves slots (:meth:`compact`, an id behind the last) builds new
    arrays.  So a :class:`ChunkList` that captured the arrays of one
    generation (``_gen``) reads what the chunks were when it was made, with
    no lock, while the writer goes on.  Slot numbers themselves are valid
    only until the next change; callers outside this module go through
    :class:`MemIndex`, under the store lock.
    """

    #: column names, in ChunkRef (and index-log record) order
    FIELDS = ("chunk_id", "stream_id", "segment", "offset", "length", "min_ts", "max_ts",
              "n_entries", "text_bytes", "stored_bytes", "max_lsn")

    __slots__ = FIELDS + ("segment_names", "_segment_ids", "_by_stream", "_pending", "_gen",
                          "max_span", "live", "dead", "version")

    def __init__(self) -> None:
        for name in self.FIELDS:
            setattr(self, name, array("i" if name == "segment" else "q"))
        #: segment file names (interned), indexed by the ``segment`` column
        self.segment_names: list[str] = []
        self._segment_ids: dict[str, int] = {}
        self._by_stream = SortedList()
        self._pending: list[int] | None = None  # keys not in _by_stream yet (bulk mode)
        # the columns and segment names of this generation, replaced in one
        # store when arrays are rebuilt: ChunkList and slot() (so ``chunk_id in
        # MemIndex.chunks``, as with the dict it replaced) need no lock
        self._gen: tuple = (*self.columns(), self.segment_names)
        #: at least ``max_ts - min_ts`` of every live chunk (exact after compact()):
        #: a chunk reaching ``start`` begins at ``start - max_span`` or later
        self.max_span = 0
        self.live = 0
        self.dead = 0
        #: bumped by every change, so iterators can tell they went stale
        self.version = 0

    def columns(self) -> tuple:
        """The column arrays in FIELDS order (valid until the next change)."""
        return (self.chunk_id, self.stream_id, self.segment, self.offset, self.length,
                self.min_ts, self.max_ts, self.n_entries, self.text_bytes, self.stored_bytes,
                self.max_lsn)

    @property
    def by_stream(self) -> SortedList:
        """The packed keys of the live chunks (see ``_TS_BIAS``), sorted."""
        if self._pending:
            self._by_stream.update(self._pending)
            self._pending.clear()
        return self._by_stream

    @contextmanager
    def bulk(self):
        """Defer sorting the keys of added chunks until they are read (or the end);
        for a table no other thread sees yet, such as one being loaded on open."""
        self._pending = []
        try:
            yield self
        finally:
            self.by_stream  # noqa: B018 - sorts what is pending
            self._pending = None

    # -- lookup ----------------------------------------------------------
    def slot(self, chunk_id: int) -> int:
        """The slot of a live chunk, -1 if there is none; O(log n)."""
        gen = self._gen
        ids, sids = gen[0], gen[1]
        i = bisect_left(ids, chunk_id)
        # (sids may be one short while add() appends, seen from another thread)
        if i < len(sids) and ids[i] == chunk_id and sids[i] != _DEAD:
            return i
        return -1

    def ref(self, i: int) -> ChunkRef:
        """The ChunkRef of slot ``i``."""
        return ChunkRef(self.chunk_id[i], self.stream_id[i],
                        self.segment_names[self.segment[i]], self.offset[i], self.length[i],
                        self.min_ts[i], self.max_ts[i], self.n_entries[i], self.text_bytes[i],
                        self.stored_bytes[i], self.max_lsn[i])

    def refs(self, slots: Iterable[int]) -> list[ChunkRef]:
        """The ChunkRefs of ``slots``, in that order."""
        ids, sids, segs, offs, lens, los, his, ns, tbs, sbs, lsns = self.columns()
        names = self.segment_names
        return [ChunkRef(ids[i], sids[i], names[segs[i]], offs[i], lens[i], los[i], his[i],
                         ns[i], tbs[i], sbs[i], lsns[i]) for i in slots]

    def live_slots(self) -> Iterator[int]:
        """Slots of the live chunks in chunk-id order; raises ``RuntimeError`` when
        the table changes during the iteration (like a dict)."""
        version = self.version
        sids = self.stream_id
        if not self.dead:
            slots: Iterable[int] = range(len(sids))
        else:
            slots = (i for i, sid in enumerate(sids) if sid != _DEAD)
        for i in slots:
            yield i
            if self.version != version:
                raise RuntimeError("chunk index changed during iteration")

    def stream_slots(self, sid: int, start: int = I64_MIN, end: int | None = None) -> list[int]:
        """Slots of stream ``sid``'s chunks with ``min_ts < end`` and ``max_ts >= start``
        (``end`` None: no upper bound), in ``(min_ts, chunk_id)`` order.

        O(log n) to find the stream's chunks starting in ``[start - max_span,
        end)``, then O(1) each to filter them by ``max_ts``: a range in the
        middle of a long stream costs what it holds, not what precedes it.
        """
        lo = hi = sid << 128
        if end is None or end > I64_MAX:
            hi += 1 << 128
        elif end <= I64_MIN:
            return []
        else:
            hi |= (end + _TS_BIAS) << 64
        if start > I64_MIN:
            floor = start - self.max_span
            if floor > I64_MIN:
                lo |= (floor + _TS_BIAS) << 64
        keys = self.by_stream.irange(lo, hi, (True, False))
        if start <= I64_MIN:
            return [k & _LOW64 for k in keys]
        his = self.max_ts
        return [i for k in keys if his[i := k & _LOW64] >= start]

    def stream_chunks(self, sid: int, start: int = I64_MIN,
                      end: int | None = None) -> ChunkList:
        """:meth:`stream_slots` as a :class:`ChunkList` (no ChunkRef built yet)."""
        return ChunkList(self._gen, sid, self.stream_slots(sid, start, end))

    def first_min_ts(self, sid: int) -> int:
        """The smallest ``min_ts`` of stream ``sid``'s chunks (it must have one); O(log n)."""
        key = next(self.by_stream.irange(sid << 128))
        return (key >> 64 & _LOW64) - _TS_BIAS

    # -- change ----------------------------------------------------------
    def segment_index(self, name: str) -> int:
        """The index of segment file ``name`` in ``segment_names`` (added, interned, if new)."""
        i = self._segment_ids.get(name)
        if i is None:
            if type(name) is not str:
                raise TypeError(f"chunk index: segment name {name!r:.80} is not a str")
            name = sys.intern(name)
            i = self._segment_ids[name] = len(self.segment_names)
            self.segment_names.append(name)
        return i

    def add(self, chunk_id: int, stream_id: int, segment: str, offset: int, length: int,
            min_ts: int, max_ts: int, n_entries: int, text_bytes: int, stored_bytes: int,
            max_lsn: int) -> None:
        """Store a chunk whose id is not live in the table; O(log n) for an id above all others.

        Raises ``ValueError`` (and stores nothing) when an id is negative or a
        field does not fit a signed 64-bit integer, ``TypeError`` when one is
        not an integer or the segment not a str.
        """
        if chunk_id < 0 or stream_id < 0:
            raise ValueError(f"chunk index: chunk {chunk_id} of stream {stream_id}: "
                             "ids must not be negative")
        seg = self._segment_ids.get(segment)
        if seg is None:
            seg = self.segment_index(segment)
        ids = self.chunk_id
        i = len(ids)
        if not i or chunk_id > ids[-1]:
            # the common case (ids come from the store's counter), spelled out:
            # it runs once per chunk when a store opens
            try:
                ids.append(chunk_id)
                self.stream_id.append(stream_id)
                self.segment.append(seg)
                self.offset.append(offset)
                self.length.append(length)
                self.min_ts.append(min_ts)
                self.max_ts.append(max_ts)
                self.n_entries.append(n_entries)
                self.text_bytes.append(text_bytes)
                self.stored_bytes.append(stored_bytes)
                self.max_lsn.append(max_lsn)
            except (OverflowError, TypeError) as exc:
                for col in self.columns():
                    del col[i:]
                raise _field_error((chunk_id, stream_id, seg, offset, length, min_ts, max_ts,
                                    n_entries, text_bytes, stored_bytes, max_lsn), exc) from None
            if max_ts - min_ts > self.max_span:
                self.max_span = max_ts - min_ts
            key = stream_id << 128 | (min_ts + _TS_BIAS) << 64 | i
            if self._pending is not None:
                self._pending.append(key)
            else:
                self._by_stream.add(key)
        else:
            values = (chunk_id, stream_id, seg, offset, length, min_ts, max_ts, n_entries,
                      text_bytes, stored_bytes, max_lsn)
            _check_fields(values)
            i = bisect_left(ids, chunk_id)
            reuse = ids[i] == chunk_id  # the dead slot of the same id, or a new slot
            # New arrays, not a change in place (see the class docstring): O(n),
            # as an insert is anyway, and the store's ids never take this path.
            for name, v in zip(self.FIELDS, values, strict=True):
                col = getattr(self, name)
                new = col[:i]
                new.append(v)
                new.extend(col[i + reuse:])
                setattr(self, name, new)
            self._gen = (*self.columns(), self.segment_names)
            self.max_span = max(self.max_span, max_ts - min_ts)
            if reuse:
                self.dead -= 1
                self.by_stream.add(stream_id << 128 | (min_ts + _TS_BIAS) << 64 | i)
            else:  # every later slot moved up one
                self._rebuild_keys()
        self.live += 1
        self.version += 1

    def kill(self, i: int) -> None:
        """Remove the live chunk in slot ``i``; the columns may be rebuilt (slots change)."""
        self.by_stream.remove(self.stream_id[i] << 128 | (self.min_ts[i] + _TS_BIAS) << 64 | i)
        self.stream_id[i] = _DEAD
        self.live -= 1
        self.dead += 1
        self.version += 1
        if self.dead > max(1024, self.live):
            self.compact()

    def compact(self) -> None:
        """Rebuild the columns without dead slots, the segment names without unused ones
        and the keys; O(n log n) (sorting the keys).  Readers holding the old arrays keep
        a consistent old view."""
        mask = bytes(sid != _DEAD for sid in self.stream_id)
        for name in self.FIELDS:
            col = getattr(self, name)
            setattr(self, name, array(col.typecode, compress(col, mask)))
        self.dead = 0
        used = sorted(set(self.segment))
        if len(used) < len(self.segment_names):
            names = [self.segment_names[s] for s in used]
            remap = {old: new for new, old in enumerate(used)}
            self.segment = array("i", map(remap.__getitem__, self.segment))
            self.segment_names = names
            self._segment_ids = {name: i for i, name in enumerate(names)}
        self._gen = (*self.columns(), self.segment_names)
        spans = (hi - lo for lo, hi in zip(self.min_ts, self.max_ts, strict=True))
        self.max_span = max(0, max(spans, default=0))
        self._rebuild_keys()
        self.version += 1

    def _rebuild_keys(self) -> None:
        pairs = enumerate(zip(self.stream_id, self.min_ts, strict=True))
        keys = [sid << 128 | (lo + _TS_BIAS) << 64 | i for i, (sid, lo) in pairs if sid != _DEAD]
        self._by_stream = SortedList(keys)
        if self._pending:
            self._pending.clear()

    # -- invariants ------------------------------------------------------
    def check(self) -> None:
        """Invariant check: columns agree in length, ids strictly increase, the
        counts and the time-order keys match the live slots."""
        cols = self.columns()
        n = len(self.chunk_id)
        assert all(len(c) == n for c in cols), [len(c) for c in cols]
        ids = self.chunk_id
        assert all(a < b for a, b in zip(ids, ids[1:], strict=False)), "ids not increasing"
        live = [i for i in range(n) if self.stream_id[i] != _DEAD]
        assert self.live == len(live) and self.dead == n - len(live), (self.live, self.dead)
        assert len(self._gen) == 12 and all(
            a is b for a, b in zip(self._gen, (*cols, self.segment_names), strict=True))
        assert all(0 <= s < len(self.segment_names) for s in self.segment)
        assert self._segment_ids == {name: i for i, name in enumerate(self.segment_names)}
        assert all(self.stream_id[i] >= 0 and I64_MIN <= self.min_ts[i] for i in live)
        assert all(self.max_ts[i] - self.min_ts[i] <= self.max_span for i in live)
        self.by_stream._check()
        keys = [self.stream_id[i] << 128 | (self.min_ts[i] + _TS_BIAS) << 64 | i for i in live]
        assert list(self.by_stream) == sorted(keys)


def _check_fields(values: tuple) -> None:
    """Raise what ``ChunkTable.add`` would for chunk ``values`` (FIELDS order, the
    segment as its index), before anything changes."""
    try:
        array("q", values)
    except (OverflowError, TypeError) as exc:
        raise _field_error(values, exc) from None


def _field_error(values: tuple, exc: Exception) -> Exception:
    """``ValueError`` (``TypeError``) naming the chunk field that does not fit a column."""
    for name, v in zip(ChunkTable.FIELDS, values, strict=True):
        if not isinstance(v, int):
            return TypeError(f"chunk index: chunk {values[0]!r:.40}: {name} is "
                             f"{v!r:.40}, not an integer")
        if not I64_MIN <= v <= I64_MAX:
            return ValueError(f"chunk index: chunk {values[0]}: {name} {v} does not fit "
                              "a signed 64-bit integer")
    return ValueError(f"chunk index: chunk {values[0]!r:.40}: {exc}")


class ChunkList(Sequence):
    """Chunks of one stream by ``(min_ts, chunk_id)``, as the index held them when the
    list was made; a ChunkRef is built for each chunk on access.

    Made under the store lock, read without it: the table never changes a
    slot in place (see :class:`ChunkTable`), so the columns captured here go
    on holding these chunks whatever the writer does meanwhile.  A query's
    snapshot therefore costs no object per chunk it never opens.  Compares
    equal to a list or tuple of the same ChunkRefs.
    """

    __slots__ = ("_gen", "_sid", "_slots")

    def __init__(self, gen: tuple, stream_id: int, slots: list[int]):
        self._gen = gen
        self._sid = stream_id
        self._slots = slots

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return ChunkList(self._gen, self._sid, self._slots[k])
        i = self._slots[k]
        ids, _sids, segs, offs, lens, los, his, ns, tbs, sbs, lsns, names = self._gen
        # the stream id is this list's: a chunk removed since has -1 in the column
        return ChunkRef(ids[i], self._sid, names[segs[i]], offs[i], lens[i], los[i], his[i],
                        ns[i], tbs[i], sbs[i], lsns[i])

    def __iter__(self) -> Iterator[ChunkRef]:
        if not self._slots:
            return iter(())
        ids, _sids, segs, offs, lens, los, his, ns, tbs, sbs, lsns, names = self._gen
        sid = self._sid
        return iter([ChunkRef(ids[i], sid, names[segs[i]], offs[i], lens[i], los[i], his[i],
                              ns[i], tbs[i], sbs[i], lsns[i]) for i in self._slots])

    def time_spans(self) -> tuple[list[int], list[int]]:
        """``(min_ts list, max_ts list)`` of the chunks, in order, with no ChunkRef built."""
        gen, slots = self._gen, self._slots
        if not slots:
            return [], []
        los, his = gen[5], gen[6]
        return [los[i] for i in slots], [his[i] for i in slots]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ChunkList, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ChunkList({list(self)!r})"


class StreamIndexEntry:
    """One stream in the index: its labels, sealed chunks and flushed LSN.

    ``min_ts``/``max_ts`` bound its sealed chunks (``I64_MAX``/``I64_MIN``
    when it has none); ``n_chunks`` counts them.
    """

    __slots__ = ("stream_id", "labels", "flushed_lsn", "max_ts", "min_ts", "n_chunks",
                 "_table")

    def __init__(self, stream_id: int, labels: Labels, table: ChunkTable | None = None):
        self.stream_id = stream_id
        self.labels = labels
        self.flushed_lsn = 0
        self.min_ts = I64_MAX
        self.max_ts = I64_MIN
        self.n_chunks = 0
        self._table = table if table is not None else ChunkTable()

    @property
    def chunks(self) -> ChunkList:
        """The stream's sealed chunks in ``(min_ts, chunk_id)`` order; O(log n + chunks)."""
        return self._table.stream_chunks(self.stream_id) if self.n_chunks else _NO_CHUNKS

    def _slots_overlapping(self, start: int, end: int) -> list[int]:
        if not self.n_chunks or self.max_ts < start or self.min_ts >= end:
            return []
        return self._table.stream_slots(self.stream_id, start, end)

    def chunks_overlapping(self, start: int, end: int) -> ChunkList:
        """Sealed chunks with entries in ``[start, end)``, by ``(min_ts, chunk_id)``.

        O(1) when the stream's bounds rule the range out, else O(log n) plus
        O(1) for each chunk starting before ``end``; no ChunkRef is built
        until one is read from the list.
        """
        if not self.n_chunks or self.max_ts < start or self.min_ts >= end:
            return _NO_CHUNKS
        return self._table.stream_chunks(self.stream_id, start, end)

    def has_chunks_overlapping(self, start: int, end: int) -> bool:
        """Whether a sealed chunk has entries in ``[start, end)`` (no ChunkRef built)."""
        return bool(self._slots_overlapping(start, end))

    def chunk_totals(self, start: int, end: int) -> tuple[int, int, int, int, int, int]:
        """``(chunks, entries, text_bytes, stored_bytes, min_ts, max_ts)`` over the sealed
        chunks with entries in ``[start, end)``, without building ChunkRefs; with no such
        chunk the bounds are ``(I64_MAX, I64_MIN)``."""
        slots = self._slots_overlapping(start, end)
        if not slots:
            return 0, 0, 0, 0, I64_MAX, I64_MIN
        t = self._table
        ns, tbs, sbs, los, his = t.n_entries, t.text_bytes, t.stored_bytes, t.min_ts, t.max_ts
        return (len(slots), sum(ns[i] for i in slots), sum(tbs[i] for i in slots),
                sum(sbs[i] for i in slots), los[slots[0]], max(his[i] for i in slots))

    def sealed_max_lsn(self) -> int:
        """The largest ``max_lsn`` of the stream's live chunks (0 when it has none)."""
        if not self.n_chunks:
            return 0
        t = self._table
        lsns = t.max_lsn
        return max(lsns[i] for i in t.stream_slots(self.stream_id))

    def _recompute_bounds(self) -> None:
        t = self._table
        slots = t.stream_slots(self.stream_id) if self.n_chunks else []
        self.min_ts = t.min_ts[slots[0]] if slots else I64_MAX
        self.max_ts = max((t.max_ts[i] for i in slots), default=I64_MIN)


_NO_CHUNKS = ChunkList((), 0, [])


class ChunkMap(Mapping):
    """``MemIndex.chunks``: a read-only mapping ``chunk_id -> ChunkRef`` of the live chunks.

    ``len`` and ``in`` are O(1) and O(log n); ``[]`` builds the ChunkRef;
    keys, values and items iterate in chunk-id order and raise
    ``RuntimeError`` when the index changes meanwhile.
    """

    __slots__ = ("_table",)

    def __init__(self, table: ChunkTable):
        self._table = table

    def __len__(self) -> int:
        return self._table.live

    def __contains__(self, chunk_id: object) -> bool:
        try:
            return self._table.slot(chunk_id) >= 0
        except TypeError:  # not comparable with an int: not a chunk id
            return False

    def __getitem__(self, chunk_id: int) -> ChunkRef:
        try:
            i = self._table.slot(chunk_id)
        except TypeError:
            i = -1
        if i < 0:
            raise KeyError(chunk_id)
        return self._table.ref(i)

    def __iter__(self) -> Iterator[int]:
        t = self._table
        for i in t.live_slots():
            yield t.chunk_id[i]

    def values(self) -> ValuesView:
        return _ChunkValues(self)

    def items(self) -> ItemsView:
        return _ChunkItems(self)

    def __repr__(self) -> str:
        return f"<ChunkMap of {len(self)} chunks>"


class _ChunkValues(ValuesView):
    __slots__ = ()

    def __iter__(self) -> Iterator[ChunkRef]:
        t = self._mapping._table
        ref = t.ref
        for i in t.live_slots():
            yield ref(i)


class _ChunkItems(ItemsView):
    __slots__ = ()

    def __iter__(self) -> Iterator[tuple[int, ChunkRef]]:
        t = self._mapping._table
        ref = t.ref
        for i in t.live_slots():
            yield t.chunk_id[i], ref(i)


class MemIndex:
    """Streams by id and fingerprint, postings, and the sealed chunks.

    Not thread-safe by itself: the store serialises mutations under its lock
    and readers take snapshots (lists) of what they need, under the lock too
    (a rebuild of the chunk columns moves every slot); ``chunk_id in
    chunks`` alone is safe without it, like the dict lookup it replaced.
    """

    def __init__(self, fingerprint_fn=None):
        # The fingerprint function is injectable so tests can force collisions;
        # correctness never depends on it (labels are always compared in full).
        self._fp = fingerprint_fn or (lambda labels: labels.fingerprint)
        self.streams: dict[int, StreamIndexEntry] = {}
        # fingerprint -> stream id, or a list of stream ids on a collision (a
        # list per stream would cost ~64 bytes a stream for the rare case)
        self.by_fingerprint: dict[int, int | list[int]] = {}
        # name -> value -> stream ids: a bare id while one stream has the
        # value (a set costs 216 bytes: most values of high-cardinality
        # labels such as pod names belong to one stream), else a set
        self.postings: dict[str, dict[str, int | set[int]]] = {}
        self._table = ChunkTable()
        #: read-only ``chunk_id -> ChunkRef`` of the live chunks
        self.chunks: ChunkMap = ChunkMap(self._table)
        # segment path -> [live chunks, their length in bytes]; a segment with
        # no live chunk has no key.  Kept by add_chunk/remove_chunk only.
        self._segment_live: dict[str, list[int]] = {}
        #: sum of ``stored_bytes`` over the live chunks (the size cap's figure)
        self.stored_bytes = 0

    # -- mutation -------------------------------------------------------
    def bulk_load(self):
        """Context manager for loading many chunks into an index no other thread sees
        yet (replay on open): their time-order keys are sorted once, when first
        needed, instead of one ``SortedList.add`` each."""
        return self._table.bulk()

    def add_stream(self, stream_id: int, labels: Labels) -> StreamIndexEntry:
        entry = self.streams.get(stream_id)
        if entry is not None:
            return entry
        entry = StreamIndexEntry(stream_id, labels, self._table)
        self.streams[stream_id] = entry
        fp = self._fp(labels)
        hit = self.by_fingerprint.get(fp)
        if hit is None:
            self.by_fingerprint[fp] = stream_id
        elif type(hit) is list:
            hit.append(stream_id)
        else:
            self.by_fingerprint[fp] = [hit, stream_id]
        for name, value in labels.pairs:
            values = self.postings.setdefault(name, {})
            hit = values.get(value)
            if hit is None:
                values[value] = stream_id
            elif type(hit) is int:
                if hit != stream_id:
                    values[value] = {hit, stream_id}
            else:
                hit.add(stream_id)
        return entry

    def find_stream(self, labels: Labels) -> int | None:
        """The id of the stream with exactly these labels (fingerprint + full compare)."""
        hit = self.by_fingerprint.get(self._fp(labels))
        if hit is None:
            return None
        canonical = labels.canonical
        if type(hit) is not list:
            return hit if self.streams[hit].labels.canonical == canonical else None
        for sid in hit:
            if self.streams[sid].labels.canonical == canonical:
                return sid
        return None

    def add_chunk(self, ref: ChunkRef) -> None:
        """Add a sealed chunk (replacing one with the same id); O(log n) (see add_chunk_fields).

        The index keeps the fields, not ``ref``.  Raises ``KeyError`` when the
        chunk's stream is not in the index.
        """
        self.add_chunk_fields(ref.chunk_id, ref.stream_id, ref.segment, ref.offset, ref.length,
                              ref.min_ts, ref.max_ts, ref.n_entries, ref.text_bytes,
                              ref.stored_bytes, ref.max_lsn)

    def add_chunk_fields(self, chunk_id: int, stream_id: int, segment: str, offset: int,
                         length: int, min_ts: int, max_ts: int, n_entries: int,
                         text_bytes: int, stored_bytes: int, max_lsn: int) -> None:
        """Add a sealed chunk from its fields (an index-log CHUNK record's order), with no
        ChunkRef built; a chunk with the same id is replaced.

        O(log n) for an id above every other (the store's counter); an id
        below the last is inserted at its sorted place, O(n).  Raises
        ``KeyError`` when the stream is not in the index, ``ValueError`` when
        an id is negative or a field does not fit a signed 64-bit integer and
        ``TypeError`` when one is not an integer (the index is then unchanged).
        """
        entry = self.streams[stream_id]
        t = self._table
        ids = t.chunk_id
        if ids and chunk_id <= ids[-1] and t.slot(chunk_id) >= 0:
            # a repeated id: the new fields must fit before the old chunk goes
            _check_fields((chunk_id, stream_id, 0, offset, length, min_ts, max_ts, n_entries,
                          text_bytes, stored_bytes, max_lsn))
            if stream_id < 0:
                raise ValueError(f"chunk index: chunk {chunk_id} of stream {stream_id}: "
                                 "ids must not be negative")
            if type(segment) is not str:
                raise TypeError(f"chunk index: segment name {segment!r:.80} is not a str")
            self.remove_chunk(chunk_id)  # keep every count exact
        t.add(chunk_id, stream_id, segment, offset, length, min_ts, max_ts, n_entries,
              text_bytes, stored_bytes, max_lsn)
        live = self._segment_live.get(segment)
        if live is None:
            self._segment_live[t.segment_names[t.segment_index(segment)]] = [1, length]
        else:
            live[0] += 1
            live[1] += length
        self.stored_bytes += stored_bytes
        entry.n_chunks += 1
        if max_lsn > entry.flushed_lsn:
            entry.flushed_lsn = max_lsn
        if min_ts < entry.min_ts:
            entry.min_ts = min_ts
        if max_ts > entry.max_ts:
            entry.max_ts = max_ts

    def remove_chunk(self, chunk_id: int) -> ChunkRef | None:
        """Remove a chunk by id and return it (None if unknown); O(log n) amortised."""
        t = self._table
        i = t.slot(chunk_id)
        if i < 0:
            return None
        ref = t.ref(i)
        t.kill(i)  # slot i is gone from here on
        live = self._segment_live[ref.segment]
        if live[0] == 1:
            del self._segment_live[ref.segment]
        else:
            live[0] -= 1
            live[1] -= ref.length
        self.stored_bytes -= ref.stored_bytes
        entry = self.streams.get(ref.stream_id)
        if entry is not None:
            entry.n_chunks -= 1
            if not entry.n_chunks:
                entry.min_ts, entry.max_ts = I64_MAX, I64_MIN
            else:
                if ref.min_ts <= entry.min_ts:
                    entry.min_ts = t.first_min_ts(ref.stream_id)
                if ref.max_ts >= entry.max_ts:
                    # only removing the newest chunk (rare: retention drops the
                    # oldest) makes a rescan of the stream's chunks
                    entry._recompute_bounds()
        return ref

    # -- chunks ---------------------------------------------------------
    def chunks_with_min_ts_before(self, stream_id: int, cutoff: int) -> ChunkList:
        """The chunks of a stream with ``min_ts < cutoff``, by ``(min_ts, chunk_id)``;
        O(log n) plus O(1) per chunk returned (a chunk past a retention cutoff is
        among them)."""
        entry = self.streams.get(stream_id)
        if entry is None or not entry.n_chunks or entry.min_ts >= cutoff:
            return _NO_CHUNKS
        return self._table.stream_chunks(stream_id, I64_MIN, cutoff)

    def chunks_by_max_ts(self) -> Iterator[ChunkRef]:
        """Every live chunk by ``(max_ts, chunk_id)``, each built when reached; sorting
        costs O(n log n) on packed integers, not on ChunkRefs."""
        t = self._table
        sids, his = t.stream_id, t.max_ts
        # slots are in chunk-id order, so (max_ts, slot) orders like (max_ts, chunk_id)
        order = sorted((his[i] + _TS_BIAS) << 64 | i for i in range(len(sids))
                       if sids[i] != _DEAD)
        version = t.version
        for key in order:
            if t.version != version:
                raise RuntimeError("chunk index changed during iteration")
            yield t.ref(key & _LOW64)

    # -- segment files --------------------------------------------------
    def segment_chunks(self, segment: str) -> int:
        """Live chunks in a segment file (0: nothing points at it any more); O(1)."""
        live = self._segment_live.get(segment)
        return 0 if live is None else live[0]

    def segment_live_bytes(self) -> dict[str, int]:
        """Live chunk bytes per segment file that has any; O(segment files)."""
        return {name: live[1] for name, live in self._segment_live.items()}

    # -- selection ------------------------------------------------------
    def select(self, matchers: Sequence[Matcher]) -> list[int]:
        """Stream ids matching every matcher, sorted.

        At least one matcher must not match the empty string (Loki's rule);
        otherwise the selector would select every stream by accident.
        """
        if not matchers:
            raise QueryError("selector: at least one matcher is required")
        if all(m.matches_empty for m in matchers):
            raise QueryError(
                "selector: queries require at least one matcher that does not "
                "match the empty string, e.g. {app=\"x\"} or {app=~\".+\"}"
            )
        # Positive (non-empty-matching) matchers narrow the candidate set by
        # postings union per matcher, intersected; the rest filter candidates.
        candidates: set[int] | None = None
        positives = [m for m in matchers if not m.matches_empty]
        positives.sort(key=lambda m: 0 if m.op == "=" else 1)
        for m in positives:
            ids = self._postings_for(m)
            candidates = ids if candidates is None else candidates & ids
            if not candidates:
                return []
        assert candidates is not None
        rest = [m for m in matchers if m.matches_empty]
        if rest:
            out = []
            for sid in candidates:
                labels = self.streams[sid].labels
                if all(m.matches(labels.get(m.name)) for m in rest):
                    out.append(sid)
            return sorted(out)
        return sorted(candidates)

    def _postings_for(self, m: Matcher) -> set[int]:
        values = self.postings.get(m.name)
        if not values:
            return set()
        if m.op == "=":
            hit = values.get(m.value)
            if hit is None:
                return set()
            return {hit} if type(hit) is int else set(hit)
        out: set[int] = set()
        for value, ids in values.items():
            if m.matches(value):
                if type(ids) is int:
                    out.add(ids)
                else:
                    out |= ids
        return out

    def streams_in_range(self, stream_ids: Iterable[int], start: int, end: int,
                         head_bounds: dict[int, tuple[int, int]] | None = None) -> list[int]:
        """Filter stream ids to those with data in ``[start, end)`` (sealed or head)."""
        out = []
        for sid in stream_ids:
            e = self.streams[sid]
            lo, hi = e.min_ts, e.max_ts
            if head_bounds and sid in head_bounds:
                hlo, hhi = head_bounds[sid]
                lo, hi = min(lo, hlo), max(hi, hhi)
            if hi >= start and lo < end:
                out.append(sid)
        return out

    def check(self) -> None:
        """Invariant check for stress tests: streams, fingerprints, postings, the chunk
        table and every count kept beside it agree."""
        t = self._table
        t.check()
        fp_seen: dict[int, int] = {}
        for fp, hit in self.by_fingerprint.items():
            sids = hit if type(hit) is list else [hit]
            assert type(hit) is not list or len(hit) >= 2, (fp, hit)  # one stream: a bare id
            for sid in sids:
                assert self._fp(self.streams[sid].labels) == fp
                fp_seen[sid] = fp_seen.get(sid, 0) + 1
        assert fp_seen == dict.fromkeys(self.streams, 1), "a stream not once in by_fingerprint"
        for sid, e in self.streams.items():
            assert e.stream_id == sid and e._table is t
            for name, value in e.labels.pairs:
                hit = self.postings[name][value]
                assert hit == sid if type(hit) is int else sid in hit
        for name, values in self.postings.items():
            for value, ids in values.items():
                assert type(ids) is int or len(ids) >= 2, (name, value, ids)
                for sid in ([ids] if type(ids) is int else ids):
                    assert self.streams[sid].labels.get(name) == value
        # per stream: the chunks of its key range are exactly its live slots, in order
        ids, sids, segs, _offs, lens, los, his, _ns, _tbs, sbs, lsns = t.columns()
        by_sid: dict[int, list[int]] = {}
        for i in range(len(ids)):
            if sids[i] != _DEAD:
                assert sids[i] in self.streams, f"chunk {ids[i]} of unknown stream {sids[i]}"
                by_sid.setdefault(sids[i], []).append(i)
        for sid, e in self.streams.items():
            mine = sorted(by_sid.get(sid, []), key=lambda i: (los[i], ids[i]))
            assert t.stream_slots(sid) == mine, sid
            assert e.n_chunks == len(mine), (sid, e.n_chunks, len(mine))
            if mine:
                assert e.min_ts == min(los[i] for i in mine)
                assert e.max_ts == max(his[i] for i in mine)
                assert e.flushed_lsn >= max(lsns[i] for i in mine)
            else:
                assert (e.min_ts, e.max_ts) == (I64_MAX, I64_MIN)
        live: dict[str, list[int]] = {}
        stored = 0
        for i in range(len(ids)):
            if sids[i] != _DEAD:
                assert los[i] <= his[i], f"chunk {ids[i]}: min_ts {los[i]} > max_ts {his[i]}"
                n = live.setdefault(t.segment_names[segs[i]], [0, 0])
                n[0] += 1
                n[1] += lens[i]
                stored += sbs[i]
        assert self._segment_live == live, (self._segment_live, live)
        assert self.stored_bytes == stored, (self.stored_bytes, stored)
        assert len(self.chunks) == t.live == sum(e.n_chunks for e in self.streams.values())
