"""The cut-block worker (chunkstore/cut_worker.py) and the head under memory pressure.

The worker compresses cut blocks and builds their token filters off the
writer's thread; whatever it produces must be byte-identical to doing the
same work inline, every path (queued, inline when busy, stolen by settle)
must finish every block, and a head under memory pressure must stay within
its budget while compressing before it seals.
"""

from __future__ import annotations

import random
import threading

import pytest

import chunkstore
from chunkstore import _kernels
from chunkstore.cut_worker import PENDING, CutBlockWorker
from chunkstore.head import STREAM_OVERHEAD, CutBlock
from chunkstore.tokenfilter import block_filter

CODEC_LZ4 = 1


def raw_blocks(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        b = _kernels.block.BlockBuilder()
        b.extend([(i, b"level=info req=%08x user=%d msg=block%d" % (rng.getrandbits(32), i, k))
                  for i in range(rng.randrange(1, 400))], 0, -(2**63))
        out.append(b.build())
    return out


def new_block(raw: bytes) -> CutBlock:
    return CutBlock(None, 0, 0, 0, 0, len(raw))


@pytest.mark.parametrize("filters", [True, False])
def test_worker_output_equals_inline_work(filters):
    raws = raw_blocks(60)
    w = CutBlockWorker(filters=filters)
    blocks = [new_block(r) for r in raws]
    for r, b in zip(raws, blocks, strict=True):
        w.submit(r, b, CODEC_LZ4)
    # settle half from this thread while the worker runs (steals queued ones)
    w.settle(blocks[: len(blocks) // 2])
    w.settle(blocks)
    for r, b in zip(raws, blocks, strict=True):
        assert b.stored == _kernels.block.compress_block(r, CODEC_LZ4)
        assert b.token_filter == (block_filter(r) if filters else b"")
        assert _kernels.block.decompress_block(b.stored) == r
    w.close()


def test_worker_bounds_what_waits_and_finishes_the_rest_inline():
    raws = raw_blocks(40, seed=1)
    w = CutBlockWorker(filters=True)
    gate = threading.Event()
    real = w._work

    def slow_start():  # the worker thread waits until everything is submitted
        gate.wait(10)
        real()

    w._work = slow_start
    blocks = [new_block(r) for r in raws]
    for r, b in zip(raws, blocks, strict=True):
        w.submit(r, b, CODEC_LZ4)
    pending = [b for b in blocks if b.stored is None]
    assert len(pending) == CutBlockWorker.MAX_PENDING  # the rest was done by the caller
    assert all(b.token_filter is PENDING for b in pending)
    w.settle(blocks)  # nothing runs on the worker yet: settle finishes them itself
    assert all(b.stored is not None and b.token_filter is not PENDING for b in blocks)
    gate.set()
    w.close()
    for r, b in zip(raws, blocks, strict=True):
        assert b.stored == _kernels.block.compress_block(r, CODEC_LZ4)
        assert b.token_filter == block_filter(r)


def test_after_close_blocks_are_finished_inline():
    raws = raw_blocks(3, seed=2)
    w = CutBlockWorker(filters=True)
    w.close()
    b = new_block(raws[0])
    w.submit(raws[0], b, CODEC_LZ4)
    assert b.stored == _kernels.block.compress_block(raws[0], CODEC_LZ4)


def test_a_failed_compression_is_redone_by_settle(monkeypatch):
    raws = raw_blocks(2, seed=3)
    w = CutBlockWorker(filters=False)
    real = _kernels.block.compress_block
    calls = {"n": 0}

    def flaky(raw, codec, *a):
        calls["n"] += 1
        if threading.current_thread().name == "chunkstore-cut-blocks" and calls["n"] == 1:
            raise MemoryError("injected")
        return real(raw, codec, *a)

    monkeypatch.setattr(_kernels.block, "compress_block", flaky)
    b = new_block(raws[0])
    w.submit(raws[0], b, CODEC_LZ4)
    w.settle([b])
    assert b.stored == real(raws[0], CODEC_LZ4)
    w.close()


def _pressure_workload(path) -> tuple[int, int]:
    """Push 60 rounds over 300 streams with 2 MiB for the heads; (chunks sealed, entries).

    Every entry pushed must come back, exactly, from the writer and after
    reopening.  (300 open heads' fixed cost, ``HEAD_OVERHEAD`` each, is a
    tenth of that; the streams' own ``STREAM_OVERHEAD`` comes on top.)"""
    budget = (2 << 20) + 300 * STREAM_OVERHEAD
    rng = random.Random(5)
    labels = [{"app": "a", "pod": f"p{i}"} for i in range(300)]
    sent = []
    with chunkstore.open(path, head_memory_budget=budget, fsync="never",
                         maintenance_interval=0) as s:
        t = 1_700_000_000 * 10**9
        n = 0
        for _ in range(60):
            batch = []
            for lb in rng.sample(labels, 50):
                ents = []
                for _ in range(20):
                    n += 1
                    # every 7th entry a little out of order (within the window)
                    ts = t + n - (5_000 if n % 7 == 0 else 0)
                    ents.append((ts, b"msg=hello user=%d id=%016x" % (n % 97,
                                                                    rng.getrandbits(64))))
                    sent.append((lb["pod"], ts, ents[-1][1]))
                batch.append((lb, ents))
            assert s.push(batch).accepted == 1000
            assert s._head_mem <= s._heads_budget()  # 2 MiB once all 300 streams are known
            assert s._head_mem == sum(h.memory_bytes() for h in s.heads.values())
        sealed = s.stats().chunks
        assert s.stats().entries == n
        assert _entries_of(s) == sorted(sent)
    with chunkstore.open(path, read_only=True) as s:
        assert s.stats().entries == n
        assert _entries_of(s) == sorted(sent)
    return sealed, n


def _entries_of(s) -> list:
    got = [(e.labels["pod"], e.ts, e.raw) for e in s.query('{app="a"}', direction="forward")]
    by_pod: dict = {}
    for pod, ts, _ in got:
        by_pod.setdefault(pod, []).append(ts)
    assert all(ts == sorted(ts) for ts in by_pod.values())  # each stream in time order
    return sorted(got)


def test_head_memory_stays_within_budget_and_pressure_compresses_first(tmp_path, monkeypatch,
                                                                        caplog):
    """A many-stream workload in miniature: the accounted head memory never
    exceeds the budget after a push, nothing is lost, and compressing heads
    before sealing them makes far fewer (larger) chunks than sealing at once.
    The budget fits the streams, so the store does not warn that it is too small."""
    from chunkstore import store as store_mod

    caplog.set_level("WARNING", logger="chunkstore.store")
    compress_first, n = _pressure_workload(tmp_path / "a")
    assert not [r for r in caplog.records if "too small" in r.getMessage()]
    monkeypatch.setattr(store_mod, "_MIN_PRESSURE_CUT", 1 << 62)  # never cut: seal at once
    seal_at_once, n2 = _pressure_workload(tmp_path / "b")
    assert n == n2
    assert compress_first * 3 < seal_at_once * 2, (compress_first, seal_at_once)


def test_pressure_merges_small_cut_blocks_into_fewer_chunks(tmp_path, monkeypatch):
    """Under pressure a head's early cut is merged with its small cut blocks
    (StreamHead.cut_merged): the same entries come back, and the heads hold
    more entries per byte, so far fewer chunks are sealed than with every
    early cut kept as its own small block."""
    from chunkstore import store as store_mod

    merged, n = _pressure_workload(tmp_path / "a")
    monkeypatch.setattr(store_mod, "_PRESSURE_MERGE_MAX_RAW", 0)  # never merge
    unmerged, n2 = _pressure_workload(tmp_path / "b")
    assert n == n2
    assert merged < unmerged, (merged, unmerged)
    if chunkstore.ACCELERATED:
        # (the pure twin's builder only estimates its memory, larger, so its
        # heads are sealed before they hold several cut blocks to merge)
        assert merged * 3 < unmerged * 2, (merged, unmerged)


def _head_with_cut_blocks(rng, blocks: int, worker=None):
    """A head with ``blocks`` finished cut blocks and entries in its head
    block; the entries in arrival order.  An exact duplicate spans two blocks."""
    from chunkstore.head import StreamHead

    h = StreamHead(1, None)
    arrived = []
    for k in range(blocks + 1):
        ents = [(rng.randrange(50), b"k=%d i=%d %s" % (k, i, b"x" * rng.randrange(30)))
                for i in range(rng.randrange(1, 40))]
        ents.append((7, b"the same line"))  # an exact duplicate of the other blocks'
        n, rejects, _ = h.builder.extend(ents, 0, -(2**63))
        assert n == len(ents) and not rejects
        arrived += ents
        h.note_append(10 + k)
        if k < blocks:
            h.cut_block(CODEC_LZ4, worker)
    return h, arrived


def test_cut_merged_holds_exactly_its_parts_in_time_order():
    rng = random.Random(11)
    h, arrived = _head_with_cut_blocks(rng, 4)
    assert len(h.cut) == 4
    first = h.cut[0].first_lsn
    start = h.mergeable_from(1 << 20)
    assert start == 0
    blk = h.cut_merged(start, CODEC_LZ4)
    assert h.cut == [blk] and not h.builder.n_entries
    ts, lines, _ = _kernels.block.decode_entries(_kernels.block.decompress_block(blk.stored))
    expect = sorted(arrived, key=lambda e: e[0])  # stable: arrival order within a timestamp
    assert list(zip(ts, lines, strict=True)) == expect
    assert lines.count(b"the same line") == 5  # duplicates across blocks are all kept
    assert (blk.n_entries, blk.min_ts, blk.max_ts) == (len(arrived), expect[0][0], expect[-1][0])
    assert blk.text_len == sum(len(line) for _, line in arrived)
    assert (blk.first_lsn, blk.last_lsn) == (first, h.last_lsn) == (10, 14)
    assert h.cut_stored_bytes == len(blk.stored)
    assert h.n_entries() == len(arrived)


def test_mergeable_from_stops_at_the_bound_and_at_unfinished_blocks():
    rng = random.Random(12)
    h, _ = _head_with_cut_blocks(rng, 4)
    raws = [b.raw_len for b in h.cut]
    own = h.builder.size_bytes
    # the bound takes the newest blocks that fit, counted back from the end
    assert h.mergeable_from(own + raws[-1] + raws[-2]) == 2
    assert h.mergeable_from(own + raws[-1] - 1) is None
    assert h.mergeable_from(own) is None
    # a block the worker has not finished ends the run, and so does one it
    # failed to compress (b"" until settle() redoes it)
    h._unfinished.append(h.cut[2])
    assert h.mergeable_from(1 << 20) == 3
    h._unfinished.clear()
    stored, h.cut[1].stored = h.cut[1].stored, b""
    assert h.mergeable_from(1 << 20) == 2
    h.cut[1].stored = stored
    # nothing to cut: no merge
    h.cut_block(CODEC_LZ4)
    assert h.mergeable_from(1 << 20) is None


def test_cut_merged_through_the_worker_settles_like_a_cut(tmp_path):
    rng = random.Random(13)
    w = CutBlockWorker(filters=True)
    try:
        h, arrived = _head_with_cut_blocks(rng, 3, w)
        w.settle(h.cut)
        h.reconcile()
        blk = h.cut_merged(h.mergeable_from(1 << 20), CODEC_LZ4, w)
        w.settle([blk])
        h.reconcile()
        assert h.cut == [blk] and not h._unfinished and h._unfinished_raw == 0
        assert h.cut_stored_bytes == len(blk.stored)
        raw = _kernels.block.decompress_block(blk.stored)
        assert blk.token_filter == block_filter(raw)
        # the filter is memory the head holds, counted exactly
        assert h.cut_filter_bytes == len(blk.token_filter) > 0
        assert h.memory_bytes() >= len(blk.stored) + len(blk.token_filter)
        ts, lines, _ = _kernels.block.decode_entries(raw)
        assert list(zip(ts, lines, strict=True)) == sorted(arrived, key=lambda e: e[0])
    finally:
        w.close()


def _layout_workload(path, slow: bool, monkeypatch):
    """Push ~3 MB into 3 streams in small batches; the chunk layout (entries
    per sealed chunk, per stream) after close.  ``slow``: the worker takes
    2 ms extra per batch of blocks, so it is always behind the writer."""
    import time

    if slow:
        real = CutBlockWorker._finish

        def lagging(self, raws, codec):
            time.sleep(0.002)
            return real(self, raws, codec)

        monkeypatch.setattr(CutBlockWorker, "_finish", lagging)
    rng = random.Random(7)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"timeout", b"GET", b"/api/v1"]
    with chunkstore.open(path, block_size=16 << 10, chunk_target_size=64 << 10,
                         maintenance_interval=0) as s:
        ts = 1_000_000
        for _ in range(300):
            batch = []
            for app in ("a", "b", "c"):
                entries = []
                for _ in range(rng.randrange(5, 40)):
                    ts += rng.randrange(1, 1000)
                    line = b" ".join(rng.choice(words) for _ in range(8))
                    entries.append((ts, line + b" id=%x" % rng.getrandbits(40)))
                batch.append(({"app": app}, entries))
            s.push(batch)
        layout = {tuple(st.labels.canonical): [c.n_entries for c in st.chunks]
                  for st in s.index.streams.values()}
        total = sum(1 for _ in s.query('{app=~".+"}'))
    monkeypatch.undo()
    return layout, total


def test_chunk_layout_does_not_depend_on_the_workers_timing(tmp_path, monkeypatch):
    """A chunk is full when its earlier blocks' exact stored size plus an
    estimate for the newest block reach the target: data alone decides, so a
    worker that lags behind seals the same chunks (sealed later, by block)."""
    fast, n1 = _layout_workload(tmp_path / "fast", False, monkeypatch)
    slow, n2 = _layout_workload(tmp_path / "slow", True, monkeypatch)
    assert n1 == n2 > 0
    assert fast == slow
    # several size-triggered chunks per stream, none of them the whole stream
    assert all(len(sizes) >= 3 for sizes in fast.values()), fast


def test_a_crash_after_sealing_a_full_chunk_keeps_the_open_blocks(tmp_path):
    """Sealing a full chunk leaves the blocks cut after it (and the head block)
    open; a crash then loses none of them (the WAL replays exactly those)."""
    path = tmp_path / "s"
    s = chunkstore.open(path, block_size=4 << 10, chunk_target_size=16 << 10,
                        maintenance_interval=0)
    rng = random.Random(3)
    want = []
    for i in range(4000):
        line = b"req=%x user=%d msg=%s" % (rng.getrandbits(64), i % 97, b"x" * rng.randrange(80))
        want.append((i + 1, line))
        if len(want) % 50 == 0:
            s.push([({"app": "a"}, want[-50:])])
    sealed = [c.n_entries for st in s.index.streams.values() for c in st.chunks]
    head = next(iter(s.heads.values()))
    assert sealed and sum(sealed) < len(want)  # some sealed, some still open
    assert sum(sealed) + head.n_entries() == len(want)
    s._crash_for_tests()
    with chunkstore.open(path) as s2:
        got = [(e.ts, e.raw) for e in s2.query('{app="a"}', direction="forward")]
    assert got == want


def test_regression_a_huge_push_to_one_stream_is_cut_into_blocks(tmp_path):
    # One push of 66 MB to one stream used to make one 66 MB head block: the
    # WAL record went over its 64 MiB limit (LimitError after the entries were
    # in the head), and close() then failed compressing the block.
    with chunkstore.open(tmp_path / "s", maintenance_interval=0) as s:
        entries = [(i, b"%08d " % i + b"x" * 1000) for i in range(66_000)]
        r = s.push([({"app": "a"}, entries)])
        assert r.accepted == len(entries) and not r.rejected
        head = next(iter(s.heads.values()))
        assert len(head.cut) > 200
        assert max(b.raw_len for b in head.cut) < s.options.block_size + 4096
        assert len(list(s.query('{app="a"}', limit=10))) == 10
        assert s.last_query_stats.lines_scanned < 1000  # one block, not the stream
    with chunkstore.open(tmp_path / "s") as s:
        got = [(e.ts, e.raw) for e in s.query('{app="a"}', direction="forward")]
    assert got == entries


def test_a_push_that_fills_several_chunks_seals_each_at_the_target(tmp_path):
    rng = random.Random(11)
    opts = dict(block_size=8 << 10, chunk_target_size=32 << 10, maintenance_interval=0)
    entries = [(i, b"%x" % rng.getrandbits(400)) for i in range(20_000)]  # ~2 MB, 1.2x lz4
    with chunkstore.open(tmp_path / "s", **opts) as s:
        s.push([({"app": "a"}, entries)])  # ~2 MB for one stream in one call
        s.push([({"app": "a"}, [(20_000, b"next")])])  # the next push seals the full ones
        sizes = [c.stored_bytes for st in s.index.streams.values() for c in st.chunks]
        assert len(sizes) >= 20
        assert all(16 << 10 < n < 64 << 10 for n in sizes), sizes
    with chunkstore.open(tmp_path / "s") as s:
        assert sum(1 for _ in s.query('{app="a"}')) == len(entries) + 1
