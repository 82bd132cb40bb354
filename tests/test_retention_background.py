"""Retention and compaction on background threads of the writer.

``retention_interval`` runs ``apply_retention()`` on the maintenance thread;
``compaction_interval`` runs ``compact(codec=compaction_codec)`` on a thread
of its own.  Each test waits (bounded) for the thread to do its work, then
checks the store as a foreground call would have left it.
"""

from __future__ import annotations

import threading
import time

import pytest

import chunkstore
from chunkstore.options import _CODECS

S = 10**9
DAY = 86400 * S


def wait_for(cond, timeout: float = 20.0) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` seconds pass (loaded CI machines are slow)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_retention_interval_expires_chunks_on_the_maintenance_thread(store_path):
    now = time.time_ns()
    with chunkstore.open(store_path, retention="1d", retention_interval=0.05,
                         maintenance_interval=0.02) as s:
        s.push([({"app": "a"}, [(now - 5 * DAY + i, f"old {i}") for i in range(50)])])
        s._seal(list(s.heads.values()))
        s.push([({"app": "a"}, [(now - S + i, f"new {i}") for i in range(50)])])
        s._seal(list(s.heads.values()))
        assert len(s.index.chunks) == 2
        # the old chunk's file goes without any foreground call
        assert wait_for(lambda: len(s.index.chunks) == 1)
        assert [e.line for e in s.query('{app="a"}', direction="forward")] == \
            [f"new {i}" for i in range(50)]
        assert len(list(store_path.rglob("*.seg"))) == 1


def _small_chunks(s, rounds=12, per_round=40):
    model = []
    for r in range(rounds):
        entries = [(r * 1000 + i, f"req {r} {i} status={200 + i % 3}") for i in range(per_round)]
        s.push([({"app": "a"}, entries)])
        model.extend(entries)
        s._seal(list(s.heads.values()))
    return model


def test_compaction_interval_merges_and_recompresses_in_the_background(store_path):
    opts = dict(block_size=1024, chunk_target_size=8192, maintenance_interval=0,
                compaction_interval=0.05, compaction_codec="lz4hc")
    with chunkstore.open(store_path, **opts) as s:
        assert len(threads_named("chunkstore-compaction")) == 1
        with s._lock:  # no pass can run while the chunks are written
            model = _small_chunks(s)
            n_before = len(s.index.chunks)

        def compacted():
            with s._lock:
                return all(b.codec == _CODECS["lz4hc"] for c in s.index.chunks.values()
                           for b in s.chunk_meta(c).blocks)

        assert wait_for(compacted)
        assert len(s.index.chunks) < n_before / 3
        assert [(e.ts, e.line) for e in s.query('{app="a"}', direction="forward")] == model
    assert wait_for(lambda: not threads_named("chunkstore-compaction"), 5.0)
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        assert [(e.ts, e.line) for e in s.query('{app="a"}', direction="forward")] == model
        assert s.verify().ok


def test_background_compaction_is_off_by_default_and_for_readers(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        _small_chunks(s, rounds=2)
        assert not threads_named("chunkstore-compaction")
    with chunkstore.open(store_path, read_only=True, compaction_interval=0.01) as r:
        assert not threads_named("chunkstore-compaction")
        assert len(list(r.query('{app="a"}'))) == 80


def test_close_waits_for_a_background_pass_and_stops_the_thread(store_path):
    opts = dict(block_size=1024, chunk_target_size=8192, maintenance_interval=0,
                compaction_interval=0.01)
    for _ in range(5):  # close at different moments of the thread's cycle
        with chunkstore.open(store_path, **opts) as s:
            _small_chunks(s, rounds=4)
            time.sleep(0.03)
        assert wait_for(lambda: not threads_named("chunkstore-compaction"), 5.0)
        with chunkstore.open(store_path, maintenance_interval=0) as s:
            assert s.verify().ok
            s.index.check()


@pytest.mark.parametrize("kwargs, match", [
    (dict(compaction_interval=-1), "compaction_interval"),
    (dict(compaction_interval="soon"), "duration"),
    (dict(compaction_codec="gzip"), "compaction_codec"),
])
def test_background_compaction_options_are_validated(store_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        chunkstore.open(store_path, **kwargs)


def test_compaction_interval_accepts_a_duration_string():
    from chunkstore.options import StoreOptions

    assert StoreOptions.from_kwargs(compaction_interval="1h").compaction_interval == 3600.0
    assert StoreOptions().compaction_interval == 0.0
    assert StoreOptions().compaction_codec == "lz4hc"
