"""Sealed chunks committed off the writer's thread (chunkstore/seal_commit.py).

The committer fsyncs segment files and then appends the chunks' CHUNK
records to the index log.  These tests check the order on disk (a DROP
never precedes its CHUNK; records only after the bytes are fsynced), that a
failed commit stops the store without losing an acknowledged entry, and that
reopening always gives back what was acknowledged.
"""

from __future__ import annotations

import errno
import os
import threading

import pytest

import chunkstore
from chunkstore.errors import ChunkstoreError
from chunkstore.index_log import CHUNK, DROP, read_index_log

T0 = 1_700_000_000 * 10**9
OPTS = dict(block_size=512, chunk_target_size=2048, maintenance_interval=0, fsync="never")


def fill(store, n: int, streams: int = 4, t0: int = T0) -> list[tuple[int, str]]:
    out = []
    for i in range(n):
        line = f"entry {i} of stream {i % streams} " + "x" * (i % 37)
        store.append({"app": f"s{i % streams}"}, line, ts=t0 + i)
        out.append((t0 + i, line))
    return out


def test_index_log_gets_every_sealed_chunk_after_drain(tmp_path):
    with chunkstore.open(tmp_path / "s", **OPTS) as s:
        fill(s, 3000)
        s._commit_seals()
        live = set(s.index.chunks)
        assert len(live) > 10
        recs, _end, _problem = read_index_log(str(tmp_path / "s" / "index.log"))
        chunk_ids = {r.value[0] for r in recs if r.type == CHUNK}
        assert live <= chunk_ids


def test_commit_happens_on_its_own_thread_after_the_segment_fsync(tmp_path, monkeypatch):
    events = []
    real_fsync = os.fsync
    seg_dir = str(tmp_path / "s" / "segments")

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(seg_dir):
            events.append(("fsync", threading.current_thread().name))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    from chunkstore import index_log

    real_append = index_log.IndexLog.append

    def append(self, records, *, sync=True):
        if any(t == CHUNK for t, _ in records):
            events.append(("append", threading.current_thread().name))
        return real_append(self, records, sync=sync)

    monkeypatch.setattr(index_log.IndexLog, "append", append)
    with chunkstore.open(tmp_path / "s", **OPTS) as s:
        fill(s, 2000)
        s._commit_seals()
        seen = list(events)
    assert seen and seen[0][0] == "fsync"
    committer = [e for e in seen if e[1] == "chunkstore-seal-commit"]
    assert committer, seen  # the writer's thread did not wait for them
    # every append is preceded by an fsync of the segments it points into
    for i, (what, _thread) in enumerate(seen):
        if what == "append":
            assert any(w == "fsync" for w, _ in seen[:i])


def test_retention_drop_follows_the_queued_chunk_records(tmp_path):
    day = 86_400 * 10**9
    with chunkstore.open(tmp_path / "s", retention="1d", **OPTS) as s:
        fill(s, 1500, t0=T0)
        # new data a week later; then expire the old: the DROP must come after
        # the CHUNK records still queued from the seals just now
        fill(s, 500, t0=T0 + 7 * day)
        before = set(s.index.chunks)
        rep = s.apply_retention(now=T0 + 7 * day + 1)
        assert rep.chunks > 0
        dropped = before - set(s.index.chunks)
        assert len(dropped) == rep.chunks
    recs, _end, _problem = read_index_log(str(tmp_path / "s" / "index.log"))
    first_chunk = {}
    for k, r in enumerate(recs):
        if r.type == CHUNK:
            first_chunk.setdefault(r.value[0], k)
        if r.type == DROP:
            for cid in r.value:
                assert first_chunk.get(cid, len(recs)) < k, cid
    with chunkstore.open(tmp_path / "s", read_only=True) as s:
        assert dropped.isdisjoint(s.index.chunks)  # replay agrees: dropped stay dropped


def test_a_failed_segment_fsync_stops_the_store_and_loses_nothing(tmp_path, monkeypatch):
    path = tmp_path / "s"
    real_fsync = os.fsync
    seg_dir = str(path / "segments")
    fail = threading.Event()

    def fsync(fd):
        if (fail.is_set() and threading.current_thread().name == "chunkstore-seal-commit"
                and os.readlink(f"/proc/self/fd/{fd}").startswith(seg_dir)):
            raise OSError(errno.EIO, "injected", "segment")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    s = chunkstore.open(path, **OPTS)
    acked = fill(s, 500)
    s._commit_seals()
    fail.set()
    unacked = None  # the append that raised: its entry may be in the WAL already
    with pytest.raises((ChunkstoreError, OSError)):
        for k in range(5000):  # seals soon; the failure surfaces at the next write
            unacked = (T0 + 10_000 + k, f"after {k}")
            s.append({"app": "s0"}, unacked[1], ts=unacked[0])
            acked.append(unacked)
            unacked = None
        s._commit_seals()
    assert s._broken is not None
    with pytest.raises(ChunkstoreError):
        s.append({"app": "s0"}, "refused", ts=T0 + 99_999)
    s._crash_for_tests()
    fail.clear()
    with chunkstore.open(path, **OPTS) as s:
        got = sorted((e.ts, e.line) for e in s.query('{app=~"s.+"}', direction="forward"))
    # every acknowledged entry exactly once; besides them at most the one
    # whose call raised (written ahead before the failure surfaced)
    assert len(got) == len(set(got))
    assert set(acked) <= set(got)
    assert set(got) - set(acked) <= ({unacked} if unacked else set())
