"""``store.query_range`` / ``store.query_instant``: arguments, limits, errors and statistics."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

import chunkstore
from chunkstore import metric_query
from chunkstore.errors import LimitError, QueryError
from chunkstore.results import Sample, Series

S = 1_000_000_000
BASE = 1_700_000_000 * S


@pytest.fixture
def store(tmp_path):
    s = chunkstore.open(tmp_path / "s", maintenance_interval=0, block_size=512,
                        chunk_target_size=2048)
    pad = "-" * 200
    for j in range(0, 120, 10):  # one push per 10 lines: several blocks and chunks
        s.push([({"app": "a"}, [(BASE + i * S, f"line {i} error {pad}" if i % 3 == 0 else
                                 f"line {i} {pad}") for i in range(j, j + 10)])])
    yield s
    s.close()


def test_range_returns_series_with_ns_points(store):
    got = store.query_range('count_over_time({app="a"}[10s])', BASE + 10 * S, BASE + 30 * S,
                            10 * S)
    assert got == [Series({"app": "a"}, [(BASE + 10 * S, 10.0), (BASE + 20 * S, 10.0),
                                         (BASE + 30 * S, 10.0)])]


@pytest.mark.parametrize("step", [10 * S, timedelta(seconds=10), "10s", " 10s"])
def test_step_forms(store, step):
    got = store.query_range('count_over_time({app="a"}[10s])', BASE + 10 * S, BASE + 30 * S, step)
    assert [t for t, _ in got[0].points] == [BASE + 10 * S, BASE + 20 * S, BASE + 30 * S]


def test_datetimes_are_accepted(store):
    start = datetime.fromtimestamp(BASE // S + 10, tz=timezone.utc)
    naive = datetime.utcfromtimestamp(BASE // S + 30) if hasattr(datetime, "utcfromtimestamp") \
        else start.replace(tzinfo=None)
    got = store.query_range('count_over_time({app="a"}[10s])', start, naive, "10s")
    assert got[0].points[0] == (BASE + 10 * S, 10.0)
    inst = store.query_instant('count_over_time({app="a"}[10s])', start)
    assert inst == [Sample({"app": "a"}, 10.0, BASE + 10 * S)]


def test_instant_defaults_to_now(tmp_path):
    with chunkstore.open(tmp_path / "now", maintenance_interval=0) as s:
        now = time.time_ns()
        s.push([({"app": "a"}, [(now - 5 * S, "x")])])
        got = s.query_instant('count_over_time({app="a"}[1m])')
        assert [x.value for x in got] == [1.0]
        assert abs(got[0].ts - time.time_ns()) < 60 * S


@pytest.mark.parametrize("step,exc,match", [
    (0, QueryError, "zero or negative query resolution step"),
    (-S, QueryError, "zero or negative query resolution step"),
    ("soon", QueryError, "invalid step"),
    (1.5, TypeError, "step must be"),
    (True, TypeError, "step must be"),
])
def test_bad_steps(store, step, exc, match):
    with pytest.raises(exc, match=match):
        store.query_range('count_over_time({app="a"}[10s])', BASE, BASE + S, step)


def test_bad_times_and_ranges(store):
    with pytest.raises(QueryError, match="end timestamp must not be before start time"):
        store.query_range('count_over_time({app="a"}[10s])', BASE + S, BASE, S)
    with pytest.raises(TypeError):
        store.query_range('count_over_time({app="a"}[10s])', 1.5, BASE, S)
    with pytest.raises(TypeError):
        store.query_instant('count_over_time({app="a"}[10s])', "now")


def test_points_limit_is_lokis(store):
    q = 'count_over_time({app="a"}[10s])'
    # (end - start) / step may be 11000 (11,001 points), not more
    assert store.query_range(q, BASE, BASE + 11_000 * S, S)
    with pytest.raises(QueryError, match="exceeded maximum resolution of 11,000 points"):
        store.query_range(q, BASE, BASE + 11_001 * S, S)


def test_series_limit(tmp_path):
    with chunkstore.open(tmp_path / "many", maintenance_interval=0) as s:
        s.push([({"app": "a", "i": str(i)}, [(BASE, "x")]) for i in range(501)])
        q = 'count_over_time({app="a"}[10s])'
        with pytest.raises(LimitError, match=r"maximum number of series \(500\)"):
            s.query_instant(q, BASE + S)
        with pytest.raises(LimitError, match="max_query_series"):
            s.query_range(q, BASE, BASE + S, S)
        assert s.query_instant(f"sum({q})", BASE + S)[0].value == 501.0
        assert len(metric_query.query_instant(s, q, BASE + S, max_series=None)) == 501
        with pytest.raises(LimitError):
            metric_query.query_instant(s, f"sum({q})", BASE + S, max_series=0)


@pytest.mark.parametrize("query,match", [
    ('{app="a"}', "is a log query"),
    ('{app="a"} |= "x"', "is a log query"),
    ("sum(", "syntax error"),
    ('rate({app="a"})', "expected a range"),
])
def test_bad_queries(store, query, match):
    with pytest.raises(QueryError, match=match):
        store.query_instant(query, BASE)
    with pytest.raises(QueryError, match=match):
        store.query_range(query, BASE, BASE + S, S)


def test_not_a_string(store):
    with pytest.raises(QueryError, match="expected a LogQL string"):
        store.query_instant(42, BASE)


def test_stats_show_the_fast_path(store):
    store.query_range('sum(count_over_time({app="a"} |= "error" [10s]))', BASE, BASE + 60 * S,
                      5 * S)
    st = store.last_query_stats
    assert st.fast_path and st.streams == 1 and st.lines_matched == 20 + 1
    assert st.blocks_read > 1 and st.bytes_decompressed > 0 and st.seconds > 0
    store.query_range('sum(count_over_time({app="a"} |~ "err.r" [10s]))', BASE, BASE + 60 * S,
                      5 * S)
    assert not store.last_query_stats.fast_path
    store.query_instant('sum(count_over_time({app="a"} | line_format "{{.app}}" [10s]))',
                        BASE + 60 * S)
    assert store.last_query_stats.fast_path  # the unused line_format is dropped, as in Loki
    store.query_instant('sum(bytes_over_time({app="a"} | line_format "{{.app}}" [10s]))',
                        BASE + 60 * S)
    assert not store.last_query_stats.fast_path


def test_fast_path_skips_blocks_outside_every_window(store):
    # 1s windows every 60s: most blocks hold no entry of any window
    store.query_range('count_over_time({app="a"}[1s])', BASE, BASE + 120 * S, 60 * S)
    st = store.last_query_stats
    assert st.fast_path and st.blocks_skipped > 0


def test_closed_store(tmp_path):
    s = chunkstore.open(tmp_path / "c", maintenance_interval=0)
    s.close()
    with pytest.raises(chunkstore.errors.StoreClosedError):
        s.query_instant('count_over_time({app="a"}[1m])', BASE)


def test_read_only_reader_sees_flushed_data(tmp_path):
    path = tmp_path / "ro"
    with chunkstore.open(path, maintenance_interval=0) as w:
        w.push([({"app": "a"}, [(BASE + i * S, "x") for i in range(10)])])
        w.flush()
        with chunkstore.open(path, read_only=True) as r:
            got = r.query_instant('count_over_time({app="a"}[1m])', BASE + 30 * S)
            assert [x.value for x in got] == [10.0]
