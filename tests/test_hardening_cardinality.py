"""Stream cardinality: very many tiny distinct streams against ``max_streams``.

A collector with a label that should never have been a label (a request id)
pushes a new stream with every entry.  The store must keep its promise:
streams up to ``max_streams`` are created, every new stream past it is
refused with the limit named in ``result.rejected`` while the rest of the
batch (entries of existing streams) is stored, the process's memory does not
grow with the number of refused label sets, and the store reopens with
exactly the streams it accepted.

Quick mode pushes 200 000 label sets (a few seconds);
``CHUNKSTORE_HARDENING_LONG=1`` pushes 3 000 000 against a larger limit.
Memory is the resident set size from ``/proc/self/status`` (Linux).
"""

from __future__ import annotations

import gc
import os
import time

import pytest

import chunkstore

LONG = os.environ.get("CHUNKSTORE_HARDENING_LONG", "") not in ("", "0")
MAX_STREAMS = 20_000 if LONG else 2_000
TOTAL = 3_000_000 if LONG else 200_000
BATCH = 5_000
T0 = 1_700_000_000 * 10**9
#: RSS may grow this much while only refused streams arrive (allocator
#: warm-up, the WAL of the one live stream); a leak of ~100 bytes per refused
#: label set over the second half of the run exceeds it.
REFUSED_GROWTH_KIB = 8 * 1024
#: generous per-stream cost of an accepted stream (index entry, postings, head)
PER_STREAM_KIB = 16

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                reason="RSS is read from /proc/self/status")


def rss_kib() -> int:
    """Resident set size of this process in KiB, after a full collection."""
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line in /proc/self/status")


def _batch(start: int, stop: int, keep: dict) -> list:
    """One entry for the first stream, then new tiny streams ``start..stop-1``."""
    return [(keep, [(T0 + stop, f"kept {stop}")])] + [
        ({"job": "tiny", "req": str(i)}, [(T0 + i, "x")]) for i in range(start, stop)]


def test_millions_of_tiny_streams_stop_at_max_streams(tmp_path):
    path = tmp_path / "store"
    keep = {"job": "tiny", "req": "0"}  # the first stream: always accepted
    kept_lines = []
    s = chunkstore.open(path, max_streams=MAX_STREAMS, maintenance_interval=0, fsync="never")
    try:
        rss0 = rss_kib()
        t0 = time.perf_counter()
        refused = 0
        rss_limit = rss_half = None
        for start in range(1, TOTAL, BATCH):
            stop = min(start + BATCH, TOTAL)
            r = s.push(_batch(start, stop, keep))
            kept_lines.append(f"kept {stop}")
            new_ok = max(0, min(stop, MAX_STREAMS) - start)  # stream 0 is `keep`
            assert r.accepted == new_ok + 1, (start, r.accepted)
            assert len(r.rejected) == (stop - start) - new_ok
            for labels, ts, reason in r.rejected:
                assert labels["job"] == "tiny" and ts == T0 + int(labels["req"])
                assert int(labels["req"]) >= MAX_STREAMS
                assert "stream limit reached" in reason and f"max_streams={MAX_STREAMS}" in reason
            refused += len(r.rejected)
            del r
            if rss_limit is None and stop >= MAX_STREAMS + BATCH:
                rss_limit = rss_kib()  # the limit is reached: from here on only refusals
            if rss_half is None and stop >= TOTAL // 2:
                rss_half = rss_kib()
        rss_end = rss_kib()
        elapsed = time.perf_counter() - t0
        assert len(s.index.streams) == MAX_STREAMS
        assert refused == TOTAL - MAX_STREAMS
        with pytest.raises(chunkstore.LimitError, match=f"max_streams={MAX_STREAMS}"):
            s.append({"job": "tiny", "req": "new"}, "refused", ts=T0)
        print(f"\ncardinality: {TOTAL} label sets, {MAX_STREAMS} streams accepted, {refused} "
              f"refused in {elapsed:.1f}s; RSS +{(rss_limit - rss0) // 1024} MiB up to the "
              f"limit ({(rss_limit - rss0) / MAX_STREAMS:.1f} KiB per stream), "
              f"+{(rss_end - rss_limit) // 1024} MiB after it "
              f"(+{(rss_end - rss_half) // 1024} MiB over the second half)")
        assert rss_limit - rss0 < MAX_STREAMS * PER_STREAM_KIB + 32 * 1024
        assert rss_end - rss_half < REFUSED_GROWTH_KIB, (rss_half, rss_end)
        assert rss_end - rss_limit < 2 * REFUSED_GROWTH_KIB, (rss_limit, rss_end)
    finally:
        s.close()
    with chunkstore.open(path, max_streams=MAX_STREAMS, maintenance_interval=0) as s:
        assert not s.replay_report.problems
        assert len(s.index.streams) == MAX_STREAMS
        assert len(s.series('{job="tiny"}')) == MAX_STREAMS
        got = [e.line for e in s.query('{job="tiny", req="0"}', direction="forward")]
        assert got == kept_lines
        last = str(MAX_STREAMS - 1)
        assert [e.line for e in s.query(f'{{job="tiny", req="{last}"}}')] == ["x"]
        assert not list(s.query(f'{{job="tiny", req="{MAX_STREAMS}"}}'))
        r = s.push([({"job": "tiny", "req": "after-reopen"}, [(T0, "refused")]),
                    (keep, [(T0 + TOTAL + 1, "after reopen")])])
        assert r.accepted == 1 and len(r.rejected) == 1
        assert f"max_streams={MAX_STREAMS}" in r.rejected[0][2]
    with chunkstore.open(path, read_only=True) as ro:
        assert len(ro.index.streams) == MAX_STREAMS
        assert [e.line for e in ro.query('{req="0"}', limit=1)] == ["after reopen"]
