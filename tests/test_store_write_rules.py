"""Loki's write rules: labels, out-of-order window, duplicates, collisions, limits."""

from __future__ import annotations

import pytest

import chunkstore
from chunkstore import EntryRejected, LabelError, LimitError

HOUR = 3600 * 10**9


@pytest.mark.parametrize("labels, fragment", [
    ({}, "at least one label"),
    ({"a": ""}, "at least one label"),
    ({"1a": "x"}, "invalid label name '1a'"),
    ({"a-b": "x"}, "invalid label name 'a-b'"),
    ({"__x": "y"}, "reserved"),
    ({"a": 1}, "must be str"),
    ({f"l{i}": "v" for i in range(16)}, "more than max_names 15"),
    ({"n" * 1025: "v"}, "max_name_length 1024"),
    ({"a": "v" * 2049}, "max_value_length 2048"),
    ([("a", "1"), ("a", "2")], "duplicate label name 'a'"),
])
def test_invalid_labels_rejected_naming_the_label(store_path, labels, fragment):
    with chunkstore.open(store_path) as s:
        with pytest.raises(LabelError, match=fragment):
            s.append(labels, "x", ts=1)


def test_empty_values_are_dropped(store_path):
    with chunkstore.open(store_path) as s:
        s.append({"app": "a", "env": ""}, "x", ts=1)
        s.append({"app": "a"}, "y", ts=2)
        assert s.series('{app="a"}') == [{"app": "a"}]
        assert chunkstore.fingerprint({"app": "a", "env": ""}) == chunkstore.fingerprint({"app": "a"})


def test_label_limits_are_options(store_path):
    with chunkstore.open(store_path, max_label_names=2) as s:
        with pytest.raises(LabelError, match="max_names 2"):
            s.append({"a": "1", "b": "2", "c": "3"}, "x", ts=1)


def test_out_of_order_window(store_path):
    with chunkstore.open(store_path, chunk_max_age="2h") as s:  # window = 1h
        s.append({"app": "a"}, "new", ts=10 * HOUR)
        s.append({"app": "a"}, "older but ok", ts=10 * HOUR - HOUR // 2)
        with pytest.raises(EntryRejected, match="too far behind"):
            s.append({"app": "a"}, "too old", ts=10 * HOUR - 2 * HOUR)
        r = s.push([({"app": "a"}, [(10 * HOUR - 3 * HOUR, "old"), (10 * HOUR + 1, "newer")])])
        assert r.accepted == 1 and r.rejected[0][2] == "too far behind"
        got = [e.line for e in s.query('{app="a"}', direction="forward")]
        assert got == ["older but ok", "new", "newer"]
        # other streams have their own window
        s.append({"app": "b"}, "independent", ts=1)


def test_out_of_order_served_in_time_order_across_blocks(store_path):
    with chunkstore.open(store_path, block_size=256, chunk_target_size=512,
                         out_of_order_window="1h") as s:
        import random

        rng = random.Random(3)
        ts = list(range(1000, 1600))
        rng.shuffle(ts)
        for t in ts:
            s.append({"app": "a"}, f"line-{t:06d}", ts=t)
        want = sorted(ts)
        assert [e.ts for e in s.query('{app="a"}', direction="forward")] == want
        assert [e.ts for e in s.query('{app="a"}')] == want[::-1]
        s.close()
        s2 = chunkstore.open(store_path)
        assert [e.ts for e in s2.query('{app="a"}', direction="forward")] == want
        s2.close()


def test_exact_duplicates_dropped_silently(store_path):
    with chunkstore.open(store_path) as s:
        s.append({"app": "a"}, "x", ts=5)
        s.append({"app": "a"}, "x", ts=5)  # exact duplicate: dropped
        s.append({"app": "a"}, "y", ts=5)  # same ts, other line: kept
        s.append({"app": "a"}, "x", ts=5, metadata={"k": "v"})  # other metadata: kept
        r = s.push([({"app": "a"}, [(5, "x"), (5, "y")])])
        assert r.rejected == []
        assert sorted(e.line for e in s.query('{app="a"}')) == ["x", "x", "y"]


def test_fingerprint_collisions_never_share_entries(store_path):
    # Force every label set onto one fingerprint bucket.
    with chunkstore.open(store_path, fingerprint_fn=lambda labels: 42, block_size=256) as s:
        for i in range(50):
            s.append({"app": f"a{i}"}, f"line of a{i}", ts=i)
        for i in range(50):
            got = [e.line for e in s.query(f'{{app="a{i}"}}')]
            assert got == [f"line of a{i}"]
    with chunkstore.open(store_path, fingerprint_fn=lambda labels: 42) as s:
        assert len(s.series('{app=~".+"}')) == 50
        assert [e.line for e in s.query('{app="a7"}')] == ["line of a7"]


def test_fingerprint_is_stable_and_documented():
    # docs/FORMAT.md section 1: XXH64 of name 0xFF value 0xFF ... sorted by name.
    import xxhash

    canonical = b"app\xffapi\xffenv\xffprod\xff"
    assert chunkstore.fingerprint({"env": "prod", "app": "api"}) == xxhash.xxh64_intdigest(canonical)


def test_stream_cardinality_limit(store_path):
    with chunkstore.open(store_path, max_streams=3) as s:
        for i in range(3):
            s.append({"app": str(i)}, "x", ts=1)
        with pytest.raises(LimitError, match="max_streams=3"):
            s.append({"app": "new"}, "x", ts=1)
        r = s.push([({"app": "new2"}, [(1, "a")]), ({"app": "0"}, [(2, "b")])])
        assert r.accepted == 1 and "stream limit" in r.rejected[0][2]


def test_closed_store_raises(store_path):
    s = chunkstore.open(store_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(chunkstore.StoreClosedError):
        s.append({"app": "a"}, "x")
    with pytest.raises(chunkstore.StoreClosedError):
        list(s.query('{app="a"}'))


def test_chunks_are_sealed_at_the_maximum_age(store_path):
    """A chunk whose entries span more than ``chunk_max_age`` is full: it is
    sealed (at a later push, once the worker has compressed its last block,
    or at close) and the next chunk starts after it, so every chunk spans at
    most the age plus the push that crossed it."""
    minute = HOUR // 60
    with chunkstore.open(store_path, chunk_max_age="1h", maintenance_interval=0) as s:
        for k in range(31):  # one push every 10 minutes for 5 hours
            s.push([({"app": "a"}, [(k * 10 * minute + i, f"line {k} {i}") for i in range(50)])])
    with chunkstore.open(store_path, read_only=True) as s:
        spans = sorted((c.min_ts, c.max_ts) for c in s.index.chunks.values())
        # 0-60, 70-130, ... : each chunk's first entry plus 60 minutes, crossed
        assert [lo // minute for lo, _hi in spans] == [0, 70, 140, 210, 280]
        for lo, hi in spans:
            assert hi - lo <= 70 * minute
        got = [e.line for e in s.query('{app="a"}', direction="forward")]
        assert got == [f"line {k} {i}" for k in range(31) for i in range(50)]


def _wal_cap_workload(path, *, paced: bool, monkeypatch) -> tuple[int, int]:
    """Write evenly to 200 streams under a 1 MiB WAL cap (no memory budget).

    A WAL segment (256 KiB) outlasts a round over every stream (200 KB), as
    in a store of 10,000 streams with 64 MiB segments.

    Returns the most chunks one push sealed and how many pushes found the WAL
    over the cap; every entry must come back exactly, from the writer and
    reopened.
    """
    from chunkstore.store import Store

    if not paced:
        monkeypatch.setattr(Store, "_pace_wal_seals", lambda self: None)
    at_cap = []  # pushes that reached the cap (the hard rule sealed)
    real = Store._seal_oldest_wal_holders

    def counted(self):
        at_cap.append(self._wal.size_bytes())
        real(self)

    monkeypatch.setattr(Store, "_seal_oldest_wal_holders", counted)
    cap = 1 << 20
    labels = [{"app": "w", "pod": f"p{i:03d}"} for i in range(200)]
    sent, most = [], 0
    with chunkstore.open(path, wal_max_bytes=cap, wal_segment_size=256 << 10,
                         head_memory_budget=0, fsync="never", maintenance_interval=0) as s:
        ts = 10**18
        for r in range(200):
            batch = []
            for lb in labels[(r % 10) * 20:(r % 10) * 20 + 20]:
                ents = []
                for _ in range(10):
                    ts += 1000
                    ents.append((ts, b"round=%d pod=%s msg=%s" % (r, lb["pod"].encode(),
                                                                   b"x" * (ts % 61))))
                    sent.append((lb["pod"], ts, ents[-1][1]))
                batch.append((lb, ents))
            before = len(s.index.chunks)
            assert s.push(batch).accepted == 200
            most = max(most, len(s.index.chunks) - before)
        got = sorted((e.labels["pod"], e.ts, e.raw) for e in s.query('{app="w"}'))
        assert got == sorted(sent)
    monkeypatch.undo()
    with chunkstore.open(path, read_only=True) as s:
        assert sorted((e.labels["pod"], e.ts, e.raw) for e in s.query('{app="w"}')) == sorted(sent)
    return most, len(at_cap)


def test_wal_cap_seals_are_paced_not_a_burst(tmp_path, monkeypatch):
    """Streams written evenly all hold entries of the oldest WAL segment: at
    the cap, sealing its holders would seal nearly every head in one push.
    Past half the cap the oldest heads are sealed a group at a time instead,
    the WAL is truncated as they go, and it never reaches the cap."""
    most, over_cap = _wal_cap_workload(tmp_path / "paced", paced=True, monkeypatch=monkeypatch)
    burst, over_cap_unpaced = _wal_cap_workload(tmp_path / "burst", paced=False,
                                                monkeypatch=monkeypatch)
    assert burst >= 150 and over_cap_unpaced >= 1, burst  # the cap: most of the 200 heads at once
    assert most <= 40 and over_cap == 0, (most, over_cap)
