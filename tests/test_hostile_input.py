"""Hostile and oversized input: clear errors, linear-time regexes, bounded work."""

from __future__ import annotations

import time

import pytest

import chunkstore
from chunkstore import LabelError, QueryError


def test_query_timeout_stops_long_queries(store_path):
    with chunkstore.open(store_path, block_size=256, query_timeout=0.05) as s:
        for i in range(50):
            s.push([({"app": "a"}, [(i * 1000 + k, f"line {i} {k} " + "x" * 50)
                                    for k in range(20)])])
        seen = 0
        with pytest.raises(chunkstore.QueryTimeoutError, match="query_timeout"):
            for _ in s.query('{app="a"} |= "line"'):
                seen += 1
                time.sleep(0.002)  # a slow consumer: the deadline passes between blocks
        assert 0 < seen < 1000
    with chunkstore.open(store_path) as s:  # no timeout by default
        assert len(list(s.query('{app="a"}'))) == 1000


def test_catastrophic_regex_runs_in_linear_time(store_path):
    with chunkstore.open(store_path) as s:
        s.push([({"app": "a"}, [(i, "a" * 5000 + "!") for i in range(20)])])
        t = time.perf_counter()
        assert list(s.query('{app="a"} |~ "(a+)+$x"')) == []
        assert list(s.query('{app=~"(a|aa)+b"}')) == []
        assert time.perf_counter() - t < 10.0  # backtracking would take years


@pytest.mark.parametrize("name", ["../etc", "a/b", "a\x00b", "\n", "..", "é"])
def test_hostile_label_names_rejected(store_path, name):
    with chunkstore.open(store_path) as s:
        with pytest.raises(LabelError):
            s.append({name: "v"}, "x", ts=1)


def test_hostile_label_values_never_touch_file_names(store_path):
    with chunkstore.open(store_path) as s:
        s.append({"app": "../../etc/passwd\x00/\n"}, "x", ts=1)
        s.append({"app": "a"}, "y", ts=86400 * 10**9 * 365)
    names = [p.name for p in store_path.rglob("*")]
    assert not any("passwd" in n or "etc" in n for n in names)
    with chunkstore.open(store_path) as s:
        assert [e.line for e in s.query('{app="../../etc/passwd\\x00/\\n"}')] == ["x"]


def test_int64_extreme_timestamps(store_path):
    lo, hi = -(1 << 63), (1 << 63) - 1
    with chunkstore.open(store_path, out_of_order_window="1000000d") as s:
        s.append({"app": "a"}, "min", ts=lo)
        s.append({"app": "a"}, "max", ts=hi)
        with pytest.raises((ValueError, chunkstore.EntryRejected)):
            s.append({"app": "a"}, "over", ts=hi + 1)
    with chunkstore.open(store_path) as s:
        assert [e.line for e in s.query('{app="a"}', direction="forward")] == ["min", "max"]


def test_enormous_and_deep_queries_rejected_cleanly(store_path):
    with chunkstore.open(store_path) as s:
        with pytest.raises(QueryError, match="too long"):
            list(s.query('{app="a"} |= "' + "x" * 200_000 + '"'))
        with pytest.raises(QueryError):
            list(s.query("{app=" + "(" * 5000))
        with pytest.raises(QueryError):
            list(s.query('{app=""}'))  # matches everything: refused as in Loki


def test_huge_result_is_lazy(store_path):
    with chunkstore.open(store_path, block_size=4096) as s:
        s.push([({"app": "a"}, [(i, f"line {i}") for i in range(50_000)])])
        it = s.query('{app="a"}')
        first = [next(it) for _ in range(10)]
        assert [e.ts for e in first] == list(range(49_999, 49_989, -1))
        assert s.last_query_stats.blocks_read <= 3
