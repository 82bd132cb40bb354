"""Hostile and oversized input: clear errors, linear-time regexes, bounded work."""

from __future__ import annotations

import os
import re
import time
import tracemalloc

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


def _sealed_store(path, *, n_pushes: int, per_push: int, line_bytes: int, **opts) -> int:
    """A store of one stream ``{app="a"}`` sealed into chunks; returns its raw bytes."""
    total = 0
    with chunkstore.open(path, maintenance_interval=0, fsync="never", **opts) as s:
        for k in range(n_pushes):
            batch = [(k * per_push + i, f"line {k * per_push + i} ".ljust(line_bytes, "x"))
                     for i in range(per_push)]
            total += sum(len(line) for _ts, line in batch)
            s.push([({"app": "a"}, batch)])
    return total


def test_query_timeout_stops_a_scan_that_returns_nothing(store_path):
    """The deadline is checked per block inside the scan, not only when an entry is yielded."""
    _sealed_store(store_path, n_pushes=400, per_push=20, line_bytes=200, block_size=2048)
    with chunkstore.open(store_path, read_only=True, query_timeout=1e-6) as s:
        t = time.perf_counter()
        with pytest.raises(chunkstore.QueryTimeoutError, match=r"exceeded query_timeout"):
            list(s.query('{app="a"} != "line"'))  # every block scanned, nothing matches
        assert time.perf_counter() - t < 5.0
        assert s.last_query_stats.blocks_read < 400  # stopped early, not at the end


def test_query_timeout_stops_metric_queries(store_path):
    _sealed_store(store_path, n_pushes=400, per_push=20, line_bytes=200, block_size=2048)
    with chunkstore.open(store_path, read_only=True, query_timeout=1e-6) as s:
        with pytest.raises(chunkstore.QueryTimeoutError, match="query_timeout"):
            s.query_range('count_over_time({app="a"} != "line" [1s])', 0, 8000, 1000)
    with chunkstore.open(store_path, read_only=True) as s:  # no timeout by default
        series = s.query_range('count_over_time({app="a"} [1s])', 0, 8000, 1000)
        assert sum(v for ser in series for _t, v in ser.points) > 0


def test_huge_lines_up_to_max_line_size_round_trip_and_longer_are_refused(store_path):
    limit = 256 * 1024  # the default max_line_size
    big = "b" * (limit - 10) + "end-marker"
    with chunkstore.open(store_path, block_size=4096, maintenance_interval=0) as s:
        s.append({"app": "a"}, big, ts=1)  # far beyond block_size: a block of its own
        with pytest.raises(chunkstore.EntryRejected, match=f"exceeds max_line_size {limit}"):
            s.append({"app": "a"}, big + "!", ts=2)
        t = time.perf_counter()
        r = s.push([({"app": "a"}, [(3, "x" * (64 << 20)), (4, "small")])])
        assert time.perf_counter() - t < 5.0
        assert r.accepted == 1 and "line too long" in r.rejected[0][2]
    with chunkstore.open(store_path, max_line_size=0, maintenance_interval=0) as s:  # no limit
        s.append({"app": "b"}, "c" * (8 << 20), ts=5)
    with chunkstore.open(store_path) as s:  # after replay and sealing
        assert [e.line for e in s.query('{app="a"}', direction="forward")] == [big, "small"]
        assert [len(e.raw) for e in s.query('{app="b"}')] == [8 << 20]
        assert s.verify().ok


def test_huge_label_sets_are_refused_fast_naming_the_limit(store_path):
    with chunkstore.open(store_path) as s:
        t = time.perf_counter()
        with pytest.raises(LabelError, match="10000 labels, more than max_names 15"):
            s.append({f"l{i}": "v" for i in range(10_000)}, "x", ts=1)
        with pytest.raises(LabelError, match="longer than max_value_length 2048"):
            s.append({"app": "v" * (16 << 20)}, "x", ts=1)
        with pytest.raises(LabelError, match="max_name_length 1024"):
            s.append({"n" * (1 << 20): "v"}, "x", ts=1)
        r = s.push([({f"l{i}": "v" for i in range(10_000)}, [(1, "x")]),
                    ({"app": "ok"}, [(1, "kept")])])
        assert r.accepted == 1 and "max_names 15" in r.rejected[0][2]
        assert time.perf_counter() - t < 5.0
        assert s.series('{app=~".+"}') == [{"app": "ok"}]


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


#: every name a store creates (docs/FORMAT.md): nothing else may ever appear
STORE_FILE = re.compile(r"LOCK|index\.log|wal|segments|wal/\d{8}\.wal|segments/\d{4}-\d\d-\d\d"
                        r"|segments/\d{4}-\d\d-\d\d/\d{8}\.seg")
HOSTILE_VALUES = ["../../etc/passwd\x00/\n", "..", "/", "a/../../b", "\\..\\x", "\x00",
                  "\x01\x1b[2J\r\t\x7f", "\u202e\ufeff", "~", "-rf", "*", "é/日本"]


def test_hostile_label_values_never_touch_file_names(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        for i, v in enumerate(HOSTILE_VALUES):
            s.append({"app": v, "job": v}, f"x{i}", ts=i + 1)
        s.append({"app": "a"}, "y", ts=86400 * 10**9 * 365)
        s.flush()
    with chunkstore.open(store_path, maintenance_interval=0) as s:  # sealed into segments
        s.compact()
        for i, v in enumerate(HOSTILE_VALUES):
            assert [e.line for e in s.query("{app=" + logql_string(v) + "}")] == [f"x{i}"]
            assert s.series("{job=" + logql_string(v) + "}") == [{"app": v, "job": v}]
        assert s.verify().ok
    names = sorted(p.relative_to(store_path).as_posix() for p in store_path.rglob("*"))
    assert len(names) > 4 and all(STORE_FILE.fullmatch(n) for n in names), names
    assert sorted(os.listdir(store_path.parent)) == [store_path.name]  # nothing outside


def logql_string(v: str) -> str:
    """``v`` as a double-quoted LogQL string (Go escapes)."""
    out = []
    for ch in v:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def test_int64_extreme_timestamps(store_path):
    lo, hi = -(1 << 63), (1 << 63) - 1
    with chunkstore.open(store_path, out_of_order_window="1000000d") as s:
        s.append({"app": "a"}, "min", ts=lo)
        s.append({"app": "a"}, "max", ts=hi)
        with pytest.raises((ValueError, chunkstore.EntryRejected)):
            s.append({"app": "a"}, "over", ts=hi + 1)
        with pytest.raises((ValueError, chunkstore.EntryRejected)):
            s.append({"app": "a"}, "under", ts=lo - 1)
    with chunkstore.open(store_path) as s:
        assert [e.line for e in s.query('{app="a"}', direction="forward")] == ["min", "max"]
        # query bounds at and beyond the extremes
        assert [e.line for e in s.query('{app="a"}', lo, hi)] == ["min"]  # end is exclusive
        assert [e.line for e in s.query('{app="a"}', hi, None)] == ["max"]
        assert [e.line for e in s.query('{app="a"}', lo, lo + 1)] == ["min"]
        s.compact()
        assert [e.line for e in s.query('{app="a"}', direction="forward")] == ["min", "max"]
        s.delete('{app="a"}', lo, lo + 1)
        assert [e.line for e in s.query('{app="a"}')] == ["max"]
        assert s.verify().ok


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


def test_huge_result_iterates_in_bounded_memory(store_path):
    """Reading a result to its end holds a few blocks at a time, never the result.

    38 MiB of lines in 100 blocks of ~400 KiB; the traced peak while
    iterating all of them, in either direction, stays far below what keeping
    the entries would take.
    """
    raw = _sealed_store(store_path, n_pushes=200, per_push=50, line_bytes=4000)
    with chunkstore.open(store_path, read_only=True) as s:
        for direction in ("forward", "backward"):
            tracemalloc.start()
            try:
                n = size = 0
                for e in s.query('{app="a"}', direction=direction):
                    n += 1
                    size += len(e.raw)
                _cur, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert n == 10_000 and size == raw
            assert s.last_query_stats.blocks_read >= 100
            assert peak < 8 << 20, (f"{direction}: peak {peak >> 10} KiB while reading "
                                    f"{raw >> 20} MiB")
