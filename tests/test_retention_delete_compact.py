"""Retention rules and size cap, delete requests (tombstones), compaction."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import chunkstore
from chunkstore import QueryError
from chunkstore.retention import RetentionPolicy

S = 10**9
DAY = 86400 * S
NOW = 1_800_000_000 * S  # a fixed "now" for retention tests


def fill(store, apps=("api", "db"), days=10, per_day=50):
    for d in range(days):
        base = NOW - (days - d) * DAY
        batch = [({"app": app, "env": "prod" if app == "api" else "dev"},
                  [(base + i * (DAY // per_day), f"{app} day {d} line {i}") for i in range(per_day)])
                 for app in apps]
        store.push(batch)
        store._seal(list(store.heads.values()))  # one chunk per stream per day


def lines(store, sel='{app=~".+"}', **kw):
    return [e.line for e in store.query(sel, direction="forward", **kw)]


def test_rules_priority_specificity_and_ties():
    p = RetentionPolicy(period="30d", rules=[
        ('{env="dev"}', "1d"),
        ('{env="dev", app="db"}', "3d"),          # more specific than env=dev
        ('{app="api"}', "10d"), ('{app="api"}', "5d"),   # tie -> shorter
        ('{app="audit"}', "2d", 5), ('{app="audit", env="prod"}', "100d"),  # priority wins
    ])
    assert p.period_for({"env": "dev", "app": "x"}) == 86400
    assert p.period_for({"env": "dev", "app": "db"}) == 3 * 86400
    assert p.period_for({"app": "api"}) == 5 * 86400
    assert p.period_for({"app": "audit", "env": "prod"}) == 2 * 86400
    assert p.period_for({"app": "other"}) == 30 * 86400
    assert RetentionPolicy().period_for({"a": "b"}) is None


def test_retention_expires_whole_chunks_and_files(store_path):
    policy = RetentionPolicy(period="7d", rules=[('{env="dev"}', "2d")])
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        fill(s)
        segs_before = set(p.relative_to(store_path) for p in store_path.rglob("*.seg"))
        rep = s.apply_retention(now=NOW)
        # api keeps the last 7 days (chunks whose newest entry is within), db the last 2
        assert rep.chunks == 3 + 8 and rep.entries == 11 * 50
        segs_after = set(p.relative_to(store_path) for p in store_path.rglob("*.seg"))
        assert len(segs_after) < len(segs_before) and rep.segments_removed
        api_days = {int(x.split()[2]) for x in lines(s, '{app="api"}')}
        db_days = {int(x.split()[2]) for x in lines(s, '{app="db"}')}
        assert min(api_days) >= 3 and min(db_days) >= 8
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        assert {int(x.split()[2]) for x in lines(s, '{app="db"}')} == db_days


def test_queries_hide_expired_entries_before_files_go(store_path):
    with chunkstore.open(store_path, retention="1d", maintenance_interval=0) as s:
        now = time.time_ns()
        s.append({"app": "a"}, "ancient", ts=now - 5 * DAY)
        s.append({"app": "a"}, "fresh", ts=now - S)
        assert lines(s, '{app="a"}') == ["fresh"]


def test_size_cap_drops_oldest_but_keeps_floor(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        fill(s, days=6, per_day=200)
        total = sum(c.stored_bytes for c in s.index.chunks.values())
    cap = total // 2
    policy = RetentionPolicy(max_bytes=cap, min_keep="1h")
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        rep = s.apply_retention(now=NOW)
        assert rep.by_size_cap > 0
        from chunkstore.retention import store_bytes

        assert store_bytes(s) <= cap
        days = {int(x.split()[2]) for x in lines(s)}
        assert max(days) == 5 and min(days) > 0  # oldest went first
    # a cap too small for even the last hour keeps the floor
    policy = RetentionPolicy(max_bytes=1, min_keep="3d")
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        s.apply_retention(now=NOW)
        assert {int(x.split()[2]) for x in lines(s)} == days  # all within the floor


def test_dry_run_changes_nothing(store_path):
    with chunkstore.open(store_path, retention="3d", maintenance_interval=0) as s:
        fill(s)
        n = len(lines(s, end=NOW + DAY))
        rep = s.apply_retention(now=NOW, dry_run=True)
        assert rep.chunks > 0 and rep.dry_run
        assert len(s.index.chunks) == 20


def test_delete_with_line_filter_is_immediate_and_durable(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        for i in range(500):
            s.append({"app": "a"}, f"user={i % 7} msg=hello {i}", ts=i)
            s.append({"app": "b"}, f"user={i % 7} msg=hello {i}", ts=i)
        rep = s.delete('{app="a"} |= "user=3 "', start=100, end=400)
        want_gone = {f"user=3 msg=hello {i}" for i in range(100, 400) if i % 7 == 3}
        assert rep.entries == len(want_gone)
        got = set(lines(s, '{app="a"}'))
        assert not (got & want_gone) and len(got) == 500 - len(want_gone)
        assert len(lines(s, '{app="b"}')) == 500  # other stream untouched
    with chunkstore.open(store_path, **small_opts) as s:  # tombstone persisted
        assert not (set(lines(s, '{app="a"}')) & want_gone)
        before = s.stats().entries
        rep = s.compact()
        assert rep.entries_removed == len(want_gone) and rep.tombstones_applied == 1
        assert s.stats().entries == before - len(want_gone)
        assert not (set(lines(s, '{app="a"}')) & want_gone)
        assert not s._tombstones
    with chunkstore.open(store_path, **small_opts) as s:
        assert len(lines(s, '{app="a"}')) == 500 - len(want_gone)
        assert s.verify().ok


def test_delete_without_filters_drops_chunks_without_rewriting(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        fill(s, days=4)
        rep = s.delete('{app="db"}', start=NOW - 4 * DAY, end=NOW - 2 * DAY)
        assert rep.chunks == 2 and rep.entries == 100 and rep.bytes > 0
        assert {int(x.split()[2]) for x in lines(s, '{app="db"}')} == {2, 3}


@pytest.mark.parametrize("q", ['{app="a"} | json', '{app="a"} | level="x"',
                               'count_over_time({app="a"}[1m])'])
def test_delete_accepts_only_selector_and_line_filters(store_path, q):
    with chunkstore.open(store_path) as s:
        with pytest.raises(QueryError):
            s.delete(q)


def test_compaction_merges_small_chunks_and_recompresses(store_path):
    rng = random.Random(5)
    opts = dict(block_size=1024, chunk_target_size=4096, maintenance_interval=0)
    model = []
    with chunkstore.open(store_path, **opts) as s:
        for r in range(30):
            entries = [(r * 1000 + i, f"req-{rng.getrandbits(32):08x} status={rng.choice([200, 500])}")
                       for i in range(40)]
            s.push([({"app": "a"}, entries)])
            model.extend(entries)
            s._seal(list(s.heads.values()))  # many small chunks
        n_before = len(s.index.chunks)
        rep = s.compact()
        assert rep.chunks_before == n_before and rep.chunks_after < n_before / 3
        assert all(s.chunk_meta(c).blocks[0].codec == 2 for c in s.index.chunks.values())
        got = [(e.ts, e.line) for e in s.query('{app="a"}', direction="forward")]
        assert got == model
        assert s.compact().chunks_before == 0  # idempotent: nothing left to do
    with chunkstore.open(store_path, **opts) as s:
        assert [(e.ts, e.line) for e in s.query('{app="a"}', direction="forward")] == model
        assert s.verify().ok


CHILD = textwrap.dedent("""
    import sys, chunkstore
    path = sys.argv[1]
    s = chunkstore.open(path, block_size=512, chunk_target_size=2048, maintenance_interval=0)
    print("ready", flush=True)
    while True:
        s.compact(codec=sys.argv[2])
        s.delete('{app="a"} |= "drop-me"')
""")


def test_sigkill_during_compaction_keeps_everything_exactly_once(tmp_path):
    path = str(tmp_path / "store")
    opts = dict(block_size=512, chunk_target_size=2048, maintenance_interval=0)
    keep = []
    with chunkstore.open(path, **opts) as s:
        for r in range(40):
            entries = [(r * 100 + i, f"keep {r} {i}" if i % 5 else f"drop-me {r} {i}")
                       for i in range(30)]
            s.push([({"app": "a"}, entries)])
            keep.extend((ts, line) for ts, line in entries if not line.startswith("drop-me"))
            s._seal(list(s.heads.values()))
        s.delete('{app="a"} |= "drop-me"')
    rng = random.Random(9)
    for rnd in range(4):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, path, ["lz4hc", "lz4"][rnd % 2]],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.01, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with chunkstore.open(path, **opts) as s:
            got = [(e.ts, e.line) for e in s.query('{app="a"}', direction="forward")]
            assert got == keep
            assert s.verify().ok


# -- per-segment live-chunk counts in the index ----------------------------------------------

from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402

from chunkstore.index import ChunkRef, MemIndex  # noqa: E402
from chunkstore.labels import Labels  # noqa: E402

SEGMENTS = [f"segments/2024-01-0{d}/0000000{k}.seg" for d in (1, 2) for k in (1, 2)]


class SegmentCountsVsModel(RuleBasedStateMachine):
    """``MemIndex`` counts of live chunks and bytes per segment against a plain dict of chunks.

    Chunks are added (ids may repeat: a repeated id replaces the chunk),
    removed (ids may be unknown) in random order across streams and segments;
    after every step the index's counts, its ``stored_bytes`` and
    ``MemIndex.check()`` must agree with counts recomputed from the model.
    """

    def __init__(self):
        super().__init__()
        self.index = MemIndex()
        self.model: dict[int, ChunkRef] = {}
        for sid in (1, 2, 3):
            self.index.add_stream(sid, Labels.from_input({"app": f"a{sid}"}))

    @rule(cid=st.integers(1, 30), sid=st.integers(1, 3), seg=st.sampled_from(SEGMENTS),
          ts=st.integers(0, 1000), span=st.integers(0, 100), length=st.integers(1, 5000))
    def add(self, cid, sid, seg, ts, span, length):
        ref = ChunkRef(cid, sid, seg, 16, length, ts, ts + span, 1, length, length + 7, 0)
        self.index.add_chunk(ref)
        self.model[cid] = ref

    @rule(cid=st.integers(1, 32))
    def remove(self, cid):
        got = self.index.remove_chunk(cid)
        assert got == self.model.pop(cid, None)  # a ChunkRef built from the index's columns

    @invariant()
    def counts_match_the_model(self):
        idx = self.index
        for seg in SEGMENTS:
            refs = [r for r in self.model.values() if r.segment == seg]
            assert idx.segment_chunks(seg) == len(refs)
        want = {}
        for r in self.model.values():
            want[r.segment] = want.get(r.segment, 0) + r.length
        assert idx.segment_live_bytes() == want
        assert idx.stored_bytes == sum(r.stored_bytes for r in self.model.values())
        assert set(idx.chunks) == set(self.model)
        idx.check()


TestSegmentCountsVsModel = SegmentCountsVsModel.TestCase


def test_index_check_catches_a_wrong_segment_count():
    index = MemIndex()
    index.add_stream(1, Labels.from_input({"app": "a"}))
    index.add_chunk(ChunkRef(1, 1, SEGMENTS[0], 16, 100, 0, 1, 1, 10, 100, 0))
    index.check()
    index._segment_live[SEGMENTS[0]][0] += 1
    with pytest.raises(AssertionError):
        index.check()


def test_segment_counts_are_rebuilt_on_open(store_path):
    policy = RetentionPolicy(period="7d")
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        fill(s, days=10)
        s.apply_retention(now=NOW)
        counts = {seg: s.index.segment_chunks(seg) for seg in s.index.segment_live_bytes()}
        live_bytes = s.index.segment_live_bytes()
        s.index.check()
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        s.index.check()
        assert s.index.segment_live_bytes() == live_bytes
        assert {seg: s.index.segment_chunks(seg) for seg in live_bytes} == counts
        files = {str(p.relative_to(store_path)) for p in store_path.rglob("*.seg")}
        assert files == set(live_bytes)  # one file per segment with live chunks, no other


def test_retention_removes_a_segment_with_its_last_chunk_only(store_path):
    """Two streams share each day's segment: expiring one stream keeps the file."""
    policy = RetentionPolicy(period="30d", rules=[('{app="db"}', "2d")])
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        fill(s, days=5)
        segs = set(s.index.segment_live_bytes())
        rep = s.apply_retention(now=NOW)
        assert rep.chunks == 3 and rep.segments_removed == []  # api still lives in them
        assert set(s.index.segment_live_bytes()) == segs
        s.index.check()
        policy.rules = ()
        policy.period_s = 2 * 86400.0  # now api expires too: the three files go
        rep = s.apply_retention(now=NOW)
        assert rep.chunks == 3 and len(rep.segments_removed) == 3
        assert set(s.index.segment_live_bytes()) == segs - set(rep.segments_removed)
        files = {str(p.relative_to(store_path)) for p in store_path.rglob("*.seg")}
        assert files == set(s.index.segment_live_bytes())
        s.index.check()
