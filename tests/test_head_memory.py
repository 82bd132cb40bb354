"""The head memory budget counts what a head really costs, and sealed heads go.

``HEAD_OVERHEAD`` is the fixed cost of one open stream's head (objects, not
data); a head that a seal under pressure or idleness leaves empty is dropped
and made again by the stream's next append, so 10,000 streams that went
quiet hold no head memory.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

import chunkstore
from chunkstore import EntryRejected
from chunkstore.head import HEAD_OVERHEAD, StreamHead
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


def test_heads_sealed_under_memory_pressure_are_dropped(store_path):
    """With a small budget and many streams, pressure seals heads and drops
    the emptied ones; the accounted memory stays the sum over live heads."""
    with chunkstore.open(store_path, maintenance_interval=0,
                         head_memory_budget=512 * 1024) as s:
        line = "x" * 200
        fewest = 500
        for r in range(20):
            s.push([({"app": "a", "n": str(i)}, [(HOUR + r * 1_000 + j, f"{line} {r} {j}")
                                                   for j in range(5)])
                    for i in range(500)])
            assert s._head_mem == sum(h.memory_bytes() for h in s.heads.values())
            fewest = min(fewest, len(s.heads))
        assert fewest < 500  # sealed heads were dropped
        assert s._head_mem <= 512 * 1024 + 500 * (HEAD_OVERHEAD + 8 * 1024)
        assert s.stats().chunks > 0
    with chunkstore.open(store_path, read_only=True) as s:
        assert s.stats().entries == 20 * 500 * 5
