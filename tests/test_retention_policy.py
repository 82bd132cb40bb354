"""Retention and delete semantics the issue names one by one (issue 6).

The size cap counts the WAL; the floor is the newest hour by default;
expired entries are hidden from log and metric queries while their chunk
still lives; expiry and whole-range deletes remove files or references and
never rewrite a surviving file; delete reports count exactly.
"""

from __future__ import annotations

import os
import time

import chunkstore
from chunkstore.retention import RetentionPolicy, store_bytes

S = 10**9
HOUR = 3600 * S
DAY = 24 * HOUR
NOW = 1_800_000_000 * S


def seal(s):
    s._seal(list(s.heads.values()))


def lines(s, sel='{app=~".+"}'):
    return [e.line for e in s.query(sel, direction="forward")]


def segment_files(path) -> dict[str, tuple[int, int, bytes]]:
    """Every segment file: (inode, mtime_ns, bytes)."""
    out = {}
    for p in path.rglob("*.seg"):
        st = os.stat(p)
        out[str(p.relative_to(path))] = (st.st_ino, st.st_mtime_ns, p.read_bytes())
    return out


def test_size_cap_counts_the_wal(store_path):
    """Old chunks go when chunks alone fit the cap but chunks plus the WAL do not."""
    with chunkstore.open(store_path, maintenance_interval=0, fsync="never") as s:
        for d in range(4):  # four small old chunks, one per day
            s.push([({"app": "a"}, [(NOW - (10 - d) * DAY + i, f"old {d} {i}")
                                    for i in range(20)])])
            seal(s)
        # recent data left in the head: it is only in the WAL
        s.push([({"app": "b"}, [(NOW - 60 * S + i, "x" * 200 + f" {i}") for i in range(400)])])
        wal = s._wal.size_bytes()
        live = s.index.stored_bytes
        idx = s._index_log.size
        assert wal > live  # the WAL holds more than the chunks
        cap = live + idx + wal // 2
        s.retention_policy = RetentionPolicy(max_bytes=cap)
        rep = s.apply_retention(now=NOW)
        # without the WAL the store (live + idx <= cap) would have kept everything
        assert rep.by_size_cap == 4 and rep.chunks == 4
        assert store_bytes(s) <= cap or not s.index.chunks
        assert lines(s, '{app="a"}') == []
        assert len(lines(s, '{app="b"}')) == 400  # the head is never expired


def test_size_cap_floor_is_the_newest_hour_by_default(store_path):
    with chunkstore.open(store_path, maintenance_interval=0, fsync="never") as s:
        for age in (5 * HOUR, 3 * HOUR, 2 * HOUR, 50 * 60 * S, 10 * 60 * S):
            s.push([({"app": "a"}, [(NOW - age + i, f"age {age // S}s {i}") for i in range(10)])])
            seal(s)
        s.retention_policy = RetentionPolicy(max_bytes=1)  # min_keep defaults to 1h
        assert s.retention_policy.min_keep_s == 3600
        rep = s.apply_retention(now=NOW)
        assert rep.by_size_cap == 3
        assert {line.split()[1] for line in lines(s)} == {"3000s", "600s"}


def test_expired_entries_are_hidden_while_their_chunk_still_lives(store_path):
    """A chunk spanning the cutoff is kept by retention; its old entries never show."""
    now = time.time_ns()
    with chunkstore.open(store_path, retention="1d", maintenance_interval=0) as s:
        # one chunk: entries from 3 days ago to a minute ago
        entries = [(now - 3 * DAY + k * 6 * HOUR, f"e{k}") for k in range(12)]
        entries.append((now - 60 * S, "e-last"))
        s.push([({"app": "a"}, entries)])
        # and a wholly expired chunk of another stream, not yet removed
        s.push([({"app": "b"}, [(now - 4 * DAY, "b-old")])])
        seal(s)
        assert len(s.index.chunks) == 2
        fresh = [line for ts, line in entries if ts >= now - DAY + 5 * 60 * S]
        assert lines(s) == fresh
        assert lines(s, '{app="b"}') == []
        # metric queries see the same entries
        got = s.query_instant('sum(count_over_time({app=~".+"}[7d]))', time=now)
        assert [smp.value for smp in got] == [len(fresh)]
        # retention keeps the spanning chunk (its newest entry is recent)...
        rep = s.apply_retention()
        assert rep.chunks == 1 and rep.entries == 1
        # ...and still hides its expired part
        assert lines(s) == fresh


def test_retention_never_rewrites_a_surviving_segment(store_path):
    policy = RetentionPolicy(period="3d")
    with chunkstore.open(store_path, retention=policy, maintenance_interval=0) as s:
        for d in range(6):
            s.push([({"app": app}, [(NOW - (6 - d) * DAY + i * S, f"{app} {d} {i}")
                                    for i in range(30)]) for app in ("a", "b")])
            seal(s)
        before = segment_files(store_path)
        rep = s.apply_retention(now=NOW)
        after = segment_files(store_path)
    assert rep.segments_removed and set(after) == set(before) - set(rep.segments_removed)
    for name, kept in after.items():
        assert kept == before[name], f"{name} was rewritten"


def test_delete_without_filters_drops_references_and_reports_exactly(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        for d in range(4):
            s.push([({"app": app}, [(NOW - (4 - d) * DAY + i * HOUR, f"{app} {d} {i}")
                                    for i in range(10)]) for app in ("a", "b")])
            seal(s)
        before_files = segment_files(store_path)
        stored_before = s.index.stored_bytes
        chunks_before = set(s.index.chunks)
        # days 0 and 1 whole, plus the first 5 entries of day 2 (a chunk partly in range)
        rep = s.delete('{app="a"}', start=NOW - 4 * DAY, end=NOW - 2 * DAY + 5 * HOUR)
        assert rep.entries == 25 and rep.chunks == 2
        assert rep.bytes == stored_before - s.index.stored_bytes > 0
        assert len(chunks_before - set(s.index.chunks)) == 2
        # nothing rewritten: every segment file is as it was (b's chunks share them)
        assert segment_files(store_path) == before_files
        assert lines(s, '{app="a"}') == [f"a 2 {i}" for i in range(5, 10)] + \
            [f"a 3 {i}" for i in range(10)]
        assert len(lines(s, '{app="b"}')) == 40


def test_filtered_delete_reports_entries_now_and_bytes_at_compaction(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        s.push([({"app": "a"}, [(NOW + i, f"user={i % 4} msg=hi {i}") for i in range(400)])])
        seal(s)
        rep = s.delete('{app="a"} |= "user=1 "')
        # nothing leaves the disk until compaction: no chunk, no byte yet
        assert (rep.entries, rep.chunks, rep.bytes) == (100, 0, 0)
        assert len(lines(s)) == 300
        crep = s.compact()
        assert crep.entries_removed == 100 and crep.tombstones_applied == 1
        assert crep.bytes_before > crep.bytes_after > 0
        assert len(lines(s)) == 300
