"""The columnar chunk index (``chunkstore/index.py``): same answers as a plain model, less memory.

``ChunkIndexVsModel`` drives a ``MemIndex`` and a dict of ChunkRefs with
the same random adds (ids in order, out of order and repeated, in and out of
bulk-load mode), removals (of unknown ids too) and rebuilds of the columns,
and after every step compares every read the rest of the store uses:
``chunks_overlapping``, ``entry.chunks`` order, the ``chunks`` mapping,
per-segment counts, ``stored_bytes``, the streams' time bounds and
``check()``.  The streams share fingerprints (an injected fingerprint
function), so ``by_fingerprint`` holds both bare ids and collision lists.

The memory test pins the reason the index is columnar: 100,000 sealed
chunks cost ~149 bytes each (tracemalloc), where a ChunkRef object per
chunk with its dict entry and per-stream sorted list cost ~546.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chunkstore.index import I64_MAX, I64_MIN, ChunkRef, MemIndex
from chunkstore.labels import Labels

STREAMS = (1, 2, 3, 4)
SEGMENTS = [f"segments/2024-01-0{d}/0000000{k}.seg" for d in (1, 2) for k in (1, 2)]
END_UNBOUNDED = 1 << 63  # the querier's exclusive "no end"
WINDOWS = [(I64_MIN, END_UNBOUNDED), (0, 1), (-10, 10), (20, 21), (5, 5), (-60, -49),
           (I64_MAX, END_UNBOUNDED), (I64_MIN, I64_MIN + 1), (100, 40)]


def _labels(sid: int) -> Labels:
    return Labels.from_input({"app": "a" * sid})


def _collide(labels: Labels) -> int:
    """Streams 1 and 3 share a fingerprint, as do 2 and 4."""
    return len(labels["app"]) % 2


timestamps = st.one_of(st.integers(-60, 60), st.sampled_from([I64_MIN, I64_MAX - 50]))
chunk_fields = st.fixed_dictionaries({
    "sid": st.sampled_from(STREAMS), "seg": st.sampled_from(SEGMENTS), "ts": timestamps,
    "span": st.integers(0, 50), "length": st.integers(1, 5000), "lsn": st.integers(0, 99),
})


class ChunkIndexVsModel(RuleBasedStateMachine):
    """``MemIndex`` against a plain ``{chunk_id: ChunkRef}`` under random adds and removals."""

    def __init__(self):
        super().__init__()
        self.index = MemIndex(fingerprint_fn=_collide)
        self.model: dict[int, ChunkRef] = {}
        self.flushed = dict.fromkeys(STREAMS, 0)  # the largest max_lsn ever added
        self.next_id = 1
        self.snapshots: list[tuple] = []  # (ChunkList, the ChunkRefs it held when made)
        for sid in STREAMS:
            self.index.add_stream(sid, _labels(sid))

    def _ref(self, cid: int, f: dict) -> ChunkRef:
        max_ts = min(f["ts"] + f["span"], I64_MAX)
        return ChunkRef(cid, f["sid"], f["seg"], 16 * cid, f["length"], f["ts"], max_ts, 1 + cid,
                        f["length"] * 2, f["length"] + 7, f["lsn"])

    def _add(self, ref: ChunkRef, fields: bool) -> None:
        if fields:
            self.index.add_chunk_fields(ref.chunk_id, ref.stream_id, ref.segment, ref.offset,
                                        ref.length, ref.min_ts, ref.max_ts, ref.n_entries,
                                        ref.text_bytes, ref.stored_bytes, ref.max_lsn)
        else:
            self.index.add_chunk(ref)
        self.model[ref.chunk_id] = ref
        self.flushed[ref.stream_id] = max(self.flushed[ref.stream_id], ref.max_lsn)
        self.next_id = max(self.next_id, ref.chunk_id + 1)

    @rule(f=chunk_fields, fields=st.booleans())
    def add_next(self, f, fields):
        """The store's way: every id above the last."""
        self._add(self._ref(self.next_id, f), fields)

    @rule(cid=st.integers(0, 40), f=chunk_fields, fields=st.booleans())
    def add_any_id(self, cid, f, fields):
        """Out of order, or repeating a live or removed id (the new chunk replaces it)."""
        self._add(self._ref(cid, f), fields)

    @rule(batch=st.lists(st.tuples(st.integers(0, 3), chunk_fields), max_size=12),
          drop=st.lists(st.integers(0, 45), max_size=4))
    def bulk_load(self, batch, drop):
        """Adds (ids ahead, behind or repeated) and removals while keys wait to be sorted."""
        with self.index.bulk_load():
            for ahead, f in batch:
                cid = self.next_id + ahead if ahead else max(0, self.next_id - 5)
                self._add(self._ref(cid, f), fields=True)
            for cid in drop:
                self.remove(cid)

    @rule(cid=st.integers(-1, 45))
    def remove(self, cid):
        got = self.index.remove_chunk(cid)
        assert got == self.model.pop(cid, None)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_live(self, data):
        self.remove(data.draw(st.sampled_from(sorted(self.model))))

    @rule(sid=st.sampled_from(STREAMS), start=timestamps)
    def snapshot(self, sid, start):
        """A query's snapshot: it must keep its chunks whatever the index does next."""
        chunks = self.index.streams[sid].chunks_overlapping(start, END_UNBOUNDED)
        self.snapshots = [*self.snapshots[-3:], (chunks, list(chunks))]

    @rule()
    def compact(self):
        """What ``remove_chunk`` does once dead slots outnumber max(1024, live)."""
        self.index._table.compact()

    @rule(start=timestamps, end=st.one_of(timestamps, st.just(END_UNBOUNDED)))
    def query(self, start, end):
        self._check_window(start, end)

    def _check_window(self, start: int, end: int) -> None:
        idx = self.index
        for sid in STREAMS:
            e = idx.streams[sid]
            want = sorted((r for r in self.model.values()
                           if r.stream_id == sid and r.max_ts >= start and r.min_ts < end),
                          key=lambda r: (r.min_ts, r.chunk_id))
            assert e.chunks_overlapping(start, end) == want
            assert e.has_chunks_overlapping(start, end) == bool(want)
            assert e.chunk_totals(start, end) == (
                len(want), sum(r.n_entries for r in want), sum(r.text_bytes for r in want),
                sum(r.stored_bytes for r in want), min((r.min_ts for r in want), default=I64_MAX),
                max((r.max_ts for r in want), default=I64_MIN))
            before = [r for r in self.model.values() if r.stream_id == sid and r.min_ts < end]
            assert idx.chunks_with_min_ts_before(sid, end) == sorted(
                before, key=lambda r: (r.min_ts, r.chunk_id))

    @invariant()
    def same_as_the_model(self):
        idx, model = self.index, self.model
        ids = sorted(model)
        chunks = idx.chunks
        assert len(chunks) == len(model) and bool(chunks) == bool(model)
        assert list(chunks) == ids and list(chunks.keys()) == ids
        assert list(chunks.values()) == [model[c] for c in ids]
        assert list(chunks.items()) == [(c, model[c]) for c in ids]
        assert dict(chunks) == model and chunks == model
        for cid in range(-1, self.next_id + 2):
            assert (cid in chunks) == (cid in model)
            assert chunks.get(cid) == model.get(cid)
        assert "1" not in chunks and chunks.get("1") is None
        for sid in STREAMS:
            e = idx.streams[sid]
            mine = sorted((r for r in model.values() if r.stream_id == sid),
                          key=lambda r: (r.min_ts, r.chunk_id))
            assert e.chunks == mine and e.n_chunks == len(mine)
            assert e.min_ts == min((r.min_ts for r in mine), default=I64_MAX)
            assert e.max_ts == max((r.max_ts for r in mine), default=I64_MIN)
            assert e.flushed_lsn == self.flushed[sid]
            assert e.sealed_max_lsn() == max((r.max_lsn for r in mine), default=0)
            assert idx.find_stream(_labels(sid)) == sid
        assert idx.find_stream(_labels(5)) is None  # same fingerprint as 1 and 3, other labels
        for seg in SEGMENTS:
            assert idx.segment_chunks(seg) == sum(r.segment == seg for r in model.values())
        want: dict[str, int] = {}
        for r in model.values():
            want[r.segment] = want.get(r.segment, 0) + r.length
        assert idx.segment_live_bytes() == want
        assert idx.stored_bytes == sum(r.stored_bytes for r in model.values())
        assert list(idx.chunks_by_max_ts()) == sorted(model.values(),
                                                      key=lambda r: (r.max_ts, r.chunk_id))
        for start, end in WINDOWS:
            self._check_window(start, end)
        for chunks, held in self.snapshots:
            assert chunks == held and list(chunks) == held and len(chunks) == len(held)
            assert [chunks[k] for k in range(len(chunks))] == held
            assert chunks.time_spans() == ([r.min_ts for r in held], [r.max_ts for r in held])
        idx.check()


TestChunkIndexVsModel = ChunkIndexVsModel.TestCase


def _index_with_streams(n_streams: int) -> MemIndex:
    index = MemIndex()
    for sid in range(1, n_streams + 1):
        index.add_stream(sid, Labels.from_input({"app": f"svc-{sid % 50}", "pod": f"p{sid}"}))
    return index


def test_removals_rebuild_the_columns_and_forget_dead_segments():
    index = _index_with_streams(10)
    for cid in range(1, 3001):
        index.add_chunk(ChunkRef(cid, 1 + cid % 10, SEGMENTS[cid % 3], 0, 10, cid, cid + 5,
                                 1, 10, 10, cid))
    table = index._table
    for cid in range(3, 3001, 3):  # every chunk of SEGMENTS[0]: 1,000 dead slots
        index.remove_chunk(cid)
    assert table.dead == 1000 and SEGMENTS[0] in table.segment_names
    for cid in range(1, 1500):  # then half the rest: dead slots outnumber live ones
        index.remove_chunk(cid)
    index.check()
    assert table.dead <= max(1024, table.live)  # rebuilt on the way
    assert len(table.chunk_id) < 3000 and SEGMENTS[0] not in table.segment_names
    assert index.segment_chunks(SEGMENTS[0]) == 0
    live = [cid for cid in range(1500, 3001) if cid % 3]
    assert list(index.chunks) == live
    assert [c.chunk_id for c in index.streams[2].chunks] == [c for c in live if c % 10 == 1]
    assert index.streams[2].min_ts == 1501


def test_bad_fields_are_refused_and_change_nothing():
    index = _index_with_streams(2)
    ok = ChunkRef(5, 1, SEGMENTS[0], 0, 10, 0, 9, 1, 10, 10, 3)
    index.add_chunk(ok)
    for bad in (dict(chunk_id=-1), dict(stream_id=-3), dict(offset=1 << 63),
                dict(min_ts=I64_MIN - 1), dict(max_lsn=1 << 64)):
        fields = dict(zip(("chunk_id", "stream_id", "segment", "offset", "length", "min_ts",
                           "max_ts", "n_entries", "text_bytes", "stored_bytes", "max_lsn"),
                          (7, 1, SEGMENTS[0], 0, 10, 0, 9, 1, 10, 10, 3), strict=True))
        fields.update(bad)
        if fields["stream_id"] < 0:
            index.add_stream(fields["stream_id"], Labels.from_input({"app": "neg"}))
        with pytest.raises(ValueError):
            index.add_chunk_fields(*fields.values())
        for cid in (5, 3) if "chunk_id" not in bad else ():
            # a repeated id (the old chunk must stay) and one behind the last
            with pytest.raises(ValueError):
                index.add_chunk_fields(*{**fields, "chunk_id": cid}.values())
        assert dict(index.chunks) == {5: ok}
        index.check()
    with pytest.raises(TypeError):
        index.add_chunk_fields(8, 1, SEGMENTS[0], 0, 10, 0.5, 9, 1, 10, 10, 3)
    with pytest.raises(KeyError):
        index.add_chunk_fields(8, 99, SEGMENTS[0], 0, 10, 0, 9, 1, 10, 10, 3)
    assert dict(index.chunks) == {5: ok}
    index.check()


def test_iterating_the_chunks_while_they_change_raises():
    index = _index_with_streams(1)
    for cid in (1, 2, 3):
        index.add_chunk(ChunkRef(cid, 1, SEGMENTS[0], 0, 10, cid, cid, 1, 10, 10, cid))
    it = iter(index.chunks.values())
    next(it)
    index.remove_chunk(3)
    with pytest.raises(RuntimeError):
        next(it)


def test_chunk_refs_are_values_not_views():
    index = _index_with_streams(1)
    index.add_chunk(ChunkRef(1, 1, SEGMENTS[0], 0, 10, 0, 5, 1, 10, 10, 1))
    ref = index.chunks[1]
    ref.max_ts = 99
    assert index.chunks[1].max_ts == 5 and index.streams[1].max_ts == 5
    index.check()


def test_a_sealed_chunk_costs_under_250_bytes_in_the_index():
    """100,000 chunks over 10,000 streams, added as the store seals them (~149 B each;
    ~546 B with a ChunkRef, a dict entry and a per-stream SortedKeyList per chunk)."""
    n_streams, rounds = 10_000, 10
    index = _index_with_streams(n_streams)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cid = 0
        ts = 1_700_000_000_000_000_000
        for r in range(rounds):
            for sid in range(1, n_streams + 1):
                cid += 1
                index.add_chunk(ChunkRef(cid, sid, SEGMENTS[cid % 4], cid * 900, 900,
                                         ts + r * 10**9, ts + r * 10**9 + 5, 5, 400, 900,
                                         cid))
        gc.collect()
        per_chunk = (tracemalloc.get_traced_memory()[0] - before) / cid
    finally:
        tracemalloc.stop()
    assert len(index.chunks) == cid == n_streams * rounds
    assert per_chunk < 250, f"{per_chunk:.0f} bytes a chunk"
