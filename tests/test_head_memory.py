"""The head memory budget counts what a head really costs, and sealed heads go.

``STREAM_OVERHEAD``, what each known stream costs besides its head, is
charged to the budget too (``Store._heads_budget``), and a head too small to
be worth a chunk is not sealed under pressure (``_MIN_PRESSURE_SEAL``).

``HEAD_OVERHEAD`` is the fixed cost of one open stream's head (objects, not
data); a head that a seal under pressure or idleness leaves empty is dropped
and made again by the stream's next append, so 10,000 streams that went
quiet hold no head memory.
"""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest

import chunkstore
import chunkstore.store as store_module
from chunkstore import EntryRejected
from chunkstore.head import HEAD_OVERHEAD, STREAM_OVERHEAD, StreamHead
from chunkstore.labels import Labels

HOUR = 3600 * 10**9


@pytest.mark.skipif(not chunkstore.ACCELERATED,
                    reason="HEAD_OVERHEAD is measured for the compiled builder; the pure-Python "
                           "twin keeps its buffers in Python objects")
def test_head_overhead_is_not_an_underestimate():
    """The Python objects of a head holding one entry fit in HEAD_OVERHEAD
    (the builder's C buffers are counted apart, by ``memory_bytes``)."""
    labels = Labels.from_input({"app": "a"})
    heads = {}
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for i in range(5_000):
            h = heads[i + 1_000] = StreamHead(i + 1_000, labels, 0)
            h.builder.extend_record([(10**18 + i, b"hello")], 1 << 20, -(1 << 63), i + 1,
                                    i + 1_000)
            h.note_append(i + 1)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_head = (used - base) / len(heads)
    assert HEAD_OVERHEAD / 2 < per_head <= HEAD_OVERHEAD, per_head


def test_idle_sealed_heads_are_dropped_and_made_again(store_path):
    with chunkstore.open(store_path, maintenance_interval=0, chunk_idle_period="1m",
                         chunk_max_age="2h") as s:
        s.push([({"app": "a", "n": str(i)}, [(10 * HOUR + i, f"line {i}")])
                for i in range(1_000)])
        assert len(s.heads) == 1_000
        assert s._head_mem == sum(h.memory_bytes() for h in s.heads.values())
        assert s._head_mem >= 1_000 * HEAD_OVERHEAD
        s.maintain(now=time.monotonic() + 120)  # every head idle: sealed, then dropped
        assert s.heads == {} and s._head_mem == 0
        assert s.stats().chunks == 1_000
        # the next append makes the head again, with the stream's out-of-order
        # window taken from the index (window: 1h behind the newest entry)
        with pytest.raises(EntryRejected, match="too far behind"):
            s.append({"app": "a", "n": "7"}, "too old", ts=10 * HOUR + 7 - 2 * HOUR)
        s.append({"app": "a", "n": "7"}, "again", ts=10 * HOUR + 8)
        assert list(s.heads) == [s.index.find_stream(Labels.from_input({"app": "a", "n": "7"}))]
        assert s._head_mem == sum(h.memory_bytes() for h in s.heads.values())
        got = [e.line for e in s.query('{app="a", n="7"}', direction="forward")]
        assert got == ["line 7", "again"]
    with chunkstore.open(store_path, read_only=True) as s:
        assert s.stats().entries == 1_001


def test_under_pressure_a_seal_that_drops_heads_trims_the_heap(store_path, monkeypatch):
    """Heads a seal drops leave free pages the allocator would keep: within
    ``_PRESSURE_RECENT`` seconds of a pressure relief the store trims the
    heap after such a seal too, not only after the relief; without pressure
    it does not (the pages would soon be faulted in again)."""
    monkeypatch.setattr(store_module, "_HEAP_TRIM_INTERVAL", 0.0)
    rng = random.Random(5)
    with chunkstore.open(store_path, maintenance_interval=0, chunk_idle_period="1m",
                         head_memory_budget=1 << 20) as s:
        s.push([({"app": "a", "n": str(i)}, [(10 * HOUR + i, "x" * 200)]) for i in range(50)])
        s.maintain(now=time.monotonic() + 120)  # idle: sealed, then dropped
        assert s.heads == {} and s.stats().chunks == 50
        assert s._last_heap_trim == 0.0  # no pressure: no trim
        for r in range(40):  # poorly compressible lines, 2 MiB: over the budget
            s.push([({"app": "a", "n": str(i)},
                     [(11 * HOUR + r, rng.randbytes(500).hex())]) for i in range(50)])
        assert s._last_relief > 0 and s._last_heap_trim >= s._last_relief
        after_relief = s._last_heap_trim
        s.maintain(now=time.monotonic() + 240)
        assert s.heads == {}
        assert s._last_heap_trim > after_relief
        monkeypatch.setattr(store_module, "_PRESSURE_RECENT", 0.0)  # the relief is long past
        s.push([({"app": "a", "n": "1"}, [(12 * HOUR, "z")])])
        trimmed_at = s._last_heap_trim
        s.maintain(now=time.monotonic() + 360)
        assert s.heads == {} and s._last_heap_trim == trimmed_at


def test_heads_sealed_under_memory_pressure_are_dropped(store_path):
    """With a small budget and many streams, pressure seals heads and drops
    the emptied ones; the accounted memory stays the sum over live heads.
    (Lines that compress poorly, so heads grow past ``_MIN_PRESSURE_SEAL``.)"""
    rng = random.Random(5)
    with chunkstore.open(store_path, maintenance_interval=0,
                         head_memory_budget=512 * 1024) as s:
        fewest = 500
        for r in range(20):
            s.push([({"app": "a", "n": str(i)}, [(HOUR + r * 1_000 + j,
                                                   f"{rng.randbytes(100).hex()} {r} {j}")
                                                  for j in range(5)])
                    for i in range(500)])
            assert s._head_mem == sum(h.memory_bytes() for h in s.heads.values())
            fewest = min(fewest, len(s.heads))
        assert fewest < 500  # sealed heads were dropped
        assert s._head_mem <= 512 * 1024 + 500 * (HEAD_OVERHEAD + 8 * 1024)
        assert s.stats().chunks > 0
    with chunkstore.open(store_path, read_only=True) as s:
        assert s.stats().entries == 20 * 500 * 5


def test_stream_overhead_is_not_an_underestimate(store_path):
    """What a stream costs once its head is gone (labels, index entry,
    postings, the writer's maps, and its one sealed chunk's index entry,
    under 250 bytes: tests/test_index_memory.py) fits in STREAM_OVERHEAD + 250."""
    n = 3_000
    labels = [{"app": f"svc-{i % 50:02d}", "env": ("prod", "dev")[i % 2], "pod": f"pod-{i:05d}"}
              for i in range(n)]
    with chunkstore.open(store_path, maintenance_interval=0, chunk_idle_period="1m") as s:
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            for a in range(0, n, 500):
                s.push([(labels[i], [(HOUR + i, b"hello")]) for i in range(a, a + 500)])
            s.maintain(now=time.monotonic() + 120)  # idle: sealed, heads dropped
            s._commit_seals()  # the committer has written (and let go of) the index records
            assert s.heads == {} and len(s.index.chunks) == n
            used, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    per_stream = (used - base) / n
    assert STREAM_OVERHEAD / 2 < per_stream <= STREAM_OVERHEAD + 250, per_stream


def test_streams_are_charged_to_the_head_budget(store_path):
    """Heads get the budget less STREAM_OVERHEAD per known stream (at least
    half of it), and pressure keeps them there."""
    budget = 8 << 20
    rng = random.Random(7)
    with chunkstore.open(store_path, maintenance_interval=0, head_memory_budget=budget) as s:
        assert s._heads_budget() == budget
        n = 1_000
        s.push([({"app": "a", "n": str(i)}, [(HOUR, "first")]) for i in range(n)])
        heads_budget = budget - n * STREAM_OVERHEAD
        assert s._heads_budget() == heads_budget
        most = 0
        for r in range(40):  # ~40 MB of poorly compressible lines through 1,000 streams
            s.push([({"app": "a", "n": str(i)},
                     [(HOUR + 1 + r * 100 + j, rng.randbytes(100).hex()) for j in range(40)])
                    for i in range(r * 100 % n, r * 100 % n + 100)])
            assert s._head_mem == sum(h.memory_bytes() for h in s.heads.values())
            most = max(most, s._head_mem)
        # pressure held the heads to their share, and that share was used
        assert heads_budget - (1 << 20) < most <= heads_budget, (most, heads_budget)
        assert s.stats().chunks > 0
    with chunkstore.open(store_path, maintenance_interval=0, head_memory_budget=budget) as s:
        assert s._heads_budget() == heads_budget  # the streams are known again at open
    with chunkstore.open(store_path, maintenance_interval=0,
                         head_memory_budget=1 << 20) as s:
        assert s._heads_budget() == 1 << 19  # never less than half


def test_heads_too_small_for_a_chunk_are_not_sealed_under_pressure(store_path, caplog):
    """Below _MIN_PRESSURE_SEAL a head is left open even over budget: sealing
    it would add an index entry per few KiB, so a budget too small for the
    streams costs memory in the heads rather than a growing index.  The
    store says so, once, with the budget that would fit."""
    from chunkstore.store import _MIN_PRESSURE_SEAL
    caplog.set_level("WARNING", logger="chunkstore.store")
    with chunkstore.open(store_path, maintenance_interval=0,
                         head_memory_budget=256 * 1024) as s:
        reliefs = []
        relieve = s._relieve_memory_pressure
        s._relieve_memory_pressure = lambda budget: (reliefs.append(s._head_mem),
                                                     relieve(budget))
        n = 600  # 600 heads' fixed costs alone are over the budget
        s.push([({"app": "a", "n": str(i)}, [(HOUR, f"line 0 of {i}")]) for i in range(n)])
        for r in range(1, 31):  # then a tenth of the streams a push
            s.push([({"app": "a", "n": str(i)}, [(HOUR + r, f"line {r} of {i}")])
                    for i in range(r % 10, n, 10)])
            assert all(h.memory_bytes() < _MIN_PRESSURE_SEAL for h in s.heads.values())
        assert len(s.heads) == n and s._head_mem > 256 * 1024
        assert s.stats().chunks == 0
        assert s.stats().entries == n + 30 * n // 10
        # a relief that could do nothing is not repeated at every push, only
        # once the heads have grown by another eighth of their budget
        assert 1 <= len(reliefs) < 10, reliefs
        eighth = s._heads_budget() // 8
        steps = [b - a for a, b in zip(reliefs, reliefs[1:], strict=False)]
        assert all(step > eighth for step in steps), (reliefs, eighth)
        assert s._pressure_floor > s._heads_budget()
        warned = [r.getMessage() for r in caplog.records if r.name == "chunkstore.store"]
        assert len(warned) == 1, warned
        assert ("head_memory_budget 0.2 MiB is too small for 600 streams written at once"
                in warned[0])
        fits = (600 * STREAM_OVERHEAD + 600 * _MIN_PRESSURE_SEAL) / 2**20
        assert f"a budget of about {fits:.0f} MiB fits them" in warned[0]
        # once the heads are back under budget (here: all sealed as idle), the
        # floor goes, so the next excess is relieved at once
        s.maintain(now=time.monotonic() + 3 * 3600)
        s.push([({"app": "a", "n": "0"}, [(HOUR + 99, "after")])])
        assert s._head_mem <= s._heads_budget() and s._pressure_floor == 0
