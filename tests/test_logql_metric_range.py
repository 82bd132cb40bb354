"""Range aggregations: every function, window boundaries, offset, unwrap, grouping, errors."""

from __future__ import annotations

import math

import pytest

import chunkstore
from chunkstore.errors import QueryError
from chunkstore.logql.evaluator_range import quantile, rate_counter

S = 1_000_000_000
NAN = float("nan")
INF = float("inf")


@pytest.fixture
def make_store(tmp_path):
    opened = []

    def make(streams: dict, **opts):
        opts = {"maintenance_interval": 0, "out_of_order_window": "1000d", **opts}
        store = chunkstore.open(tmp_path / f"s{len(opened)}", **opts)
        opened.append(store)
        batch = []
        for labels, entries in streams.items():
            rows = []
            for e in sorted(entries, key=lambda e: e[0]):
                ts = int(e[0] * S)
                rows.append((ts, e[1], e[2]) if len(e) > 2 else (ts, e[1]))
            batch.append((dict(labels), rows))
        assert store.push(batch).rejected == []
        return store

    yield make
    for s in opened:
        s.close()


def instant(store, q, t):
    return {tuple(sorted(s.labels.items())): s.value for s in store.query_instant(q, int(t * S))}


def series(store, q, start, end, step):
    out = {}
    for s in store.query_range(q, int(start * S), int(end * S), int(step * S)):
        out[tuple(sorted(s.labels.items()))] = [(t / S, v) for t, v in s.points]
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


A = (("app", "a"),)


# ---------------------------------------------------------------------------
# windows


def test_window_is_left_open_right_closed(make_store):
    store = make_store({A: [(10, "x"), (20, "y"), (30, "z")]})
    q = 'count_over_time({app="a"}[10s])'
    assert instant(store, q, 20) == {A: 1.0}  # (10, 20]: 20 only
    assert instant(store, q, 19.999999999) == {A: 1.0}  # (9.99.., 19.99..]: 10
    assert instant(store, q, 10) == {A: 1.0}
    assert instant(store, q, 9.999999999) == {}
    assert instant(store, q, 40) == {}  # (30, 40]
    assert instant(store, 'count_over_time({app="a"}[30s])', 30) == {A: 3.0}
    assert instant(store, 'count_over_time({app="a"}[30s])', 40) == {A: 2.0}


def test_offset_shifts_the_window_back_and_forward(make_store):
    store = make_store({A: [(10, "x"), (20, "y"), (30, "z")]})
    assert instant(store, 'count_over_time({app="a"}[10s] offset 10s)', 30) == {A: 1.0}
    assert instant(store, 'count_over_time({app="a"}[10s] offset 30s)', 30) == {}
    assert instant(store, 'count_over_time({app="a"}[10s] offset -10s)', 10) == {A: 1.0}
    got = series(store, 'count_over_time({app="a"}[20s] offset 5s)', 0, 50, 5)
    # step t reads (t - 25s, t - 5s]
    assert got == {A: [(15, 1.0), (20, 1.0), (25, 2.0), (30, 2.0), (35, 2.0), (40, 2.0),
                       (45, 1.0), (50, 1.0)]}


def test_empty_windows_are_gaps_and_steps_stop_at_end(make_store):
    store = make_store({A: [(0, "x"), (60, "y")]})
    got = series(store, 'count_over_time({app="a"}[10s])', 0, 75, 15)
    assert got == {A: [(0, 1.0), (60, 1.0)]}


def test_overlapping_and_gapped_steps_agree_with_instants(make_store):
    entries = [(i * 0.7, f"l{i}") for i in range(200)]
    store = make_store({A: entries})
    for q in ('count_over_time({app="a"}[13s])', 'bytes_rate({app="a"}[5s] offset 2s)'):
        for step in (1, 3, 13, 20):
            got = series(store, q, 5, 120, step)[A]
            for t, v in got:
                assert same(instant(store, q, t)[A], v), (q, step, t)


# ---------------------------------------------------------------------------
# line range functions


def test_count_rate_bytes_and_bytes_rate(make_store):
    store = make_store({A: [(1, "a"), (2, "bb"), (3, "ccc"), (4, "")],
                        (("app", "b"),): [(2, "zz")]})
    assert instant(store, 'count_over_time({app="a"}[4s])', 4) == {A: 4.0}
    assert instant(store, 'rate({app="a"}[4s])', 4) == {A: 1.0}
    assert instant(store, 'bytes_over_time({app="a"}[4s])', 4) == {A: 6.0}
    assert instant(store, 'bytes_rate({app="a"}[2s])', 4) == {A: 1.5}
    # a window holding only an empty line has a point worth 0 bytes
    assert instant(store, 'bytes_over_time({app="a"}[1s])', 4) == {A: 0.0}
    assert instant(store, 'rate({app=~"a|b"} |= "b" [500ms])', 2) == {A: 2.0}
    assert instant(store, 'count_over_time({app=~"a|b"} |= "z" [5s])', 4) == {(("app", "b"),): 1.0}


def test_line_format_changes_bytes_but_not_counts(make_store):
    store = make_store({(("app", "a"), ("lvl", "error")): [(1, "xxxxxxxxxx"), (2, "y")]})
    key = (("app", "a"), ("lvl", "error"))
    assert instant(store, 'bytes_over_time({app="a"} | line_format "{{.lvl}}" [5s])', 3) == {
        key: 10.0}
    # count_over_time drops an unused line_format, as Loki's optimiser does
    assert instant(store, 'count_over_time({app="a"} | line_format "{{ nosuchfunc }}" [5s])',
                   3) == {key: 2.0}
    with pytest.raises(QueryError, match="not defined"):
        store.query_instant('bytes_over_time({app="a"} | line_format "{{ nosuchfunc }}" [5s])',
                            3 * S)


def test_absent_over_time_labels_and_steps(make_store):
    store = make_store({(("app", "a"), ("env", "prod")): [(10, "x")]})
    q = 'absent_over_time({app="a", env=~"p.*", x=""}[5s])'
    assert instant(store, q, 12) == {}
    # a name matched twice (job) or by anything but "=" (env) gives no label
    assert instant(store, 'absent_over_time({app="a", job="j", job!="k"}[5s])', 12) == {
        (("app", "a"),): 1.0}
    assert instant(store, 'absent_over_time({app="nope", env="prod"}[5s])', 12) == {
        (("app", "nope"), ("env", "prod")): 1.0}
    got = series(store, 'absent_over_time({app="a", env="prod"}[5s])', 0, 20, 5)
    assert got == {(("app", "a"), ("env", "prod")): [(0, 1.0), (5, 1.0), (15, 1.0), (20, 1.0)]}
    # labels from single equality matchers only
    assert instant(store, q, 30) == {(("app", "a"),): 1.0}


def test_structured_metadata_joins_series_labels(make_store):
    store = make_store({A: [(1, "x", {"trace_id": "t1"}), (2, "y", {"trace_id": "t1"}),
                            (3, "z"), (4, "w", {"app": "m", "k.v": "1"})]})
    got = instant(store, 'count_over_time({app="a"}[10s])', 5)
    assert got == {
        (("app", "a"), ("trace_id", "t1")): 2.0,
        A: 1.0,
        (("app", "a"), ("app_extracted", "m"), ("k_v", "1")): 1.0,
    }
    assert store.last_query_stats.fast_path


# ---------------------------------------------------------------------------
# unwrap


def test_unwrap_functions(make_store):
    store = make_store({A: [(1, "v=4"), (2, "v=1"), (3, "v=7"), (4, "v=2"), (5, "nov")]})
    q = '{}({{app="a"}} | logfmt | unwrap v [10s])'
    want = {"sum_over_time": 14, "avg_over_time": 3.5, "min_over_time": 1, "max_over_time": 7,
            "first_over_time": 4, "last_over_time": 2, "stdvar_over_time": 5.25,
            "stddev_over_time": math.sqrt(5.25), "rate": 1.4}
    for op, value in want.items():
        assert same(instant(store, q.format(op), 6)[A], value), op
    assert instant(store, 'quantile_over_time(0.5, {app="a"} | logfmt | unwrap v [10s])', 6) == {
        A: 3.0}
    assert instant(store, 'quantile_over_time(2, {app="a"} | logfmt | unwrap v [10s])', 6) == {
        A: INF}
    # lines without the label give no sample
    assert instant(store, 'sum(count_over_time({app="a"} | logfmt [10s]))', 6) == {(): 5.0}
    assert instant(store, 'count(sum_over_time({app="a"} | logfmt | unwrap v [10s]))', 6) == {
        (): 1.0}
    assert instant(store, 'absent_over_time({app="a"} | logfmt | unwrap v [1s])', 5.5) == {
        A: 1.0}


def test_unwrap_conversions(make_store):
    store = make_store({A: [(1, "d=1m30s b=1KiB"), (2, "d=250ms b=2kb")]})
    q = 'sum_over_time({app="a"} | logfmt | keep app, d, b | unwrap %s [10s])'
    assert instant(store, q % "duration(d)", 3) == {(("app", "a"), ("b", "1KiB")): 90.0,
                                                    (("app", "a"), ("b", "2kb")): 0.25}
    assert instant(store, "sum(%s)" % (q % "duration_seconds(d)"), 3) == {(): 90.25}
    assert instant(store, "sum(%s)" % (q % "bytes(b)"), 3) == {(): 3024.0}


def test_unwrap_errors_fail_unless_filtered(make_store):
    store = make_store({A: [(1, "v=1"), (2, "v=abc"), (3, "v=2")]})
    q = 'sum_over_time({app="a"} | logfmt | unwrap v [10s])'
    with pytest.raises(QueryError, match="SampleExtractionErr") as info:
        store.query_instant(q, 4 * S)
    assert "pipeline error" in str(info.value)
    filtered = 'sum_over_time({app="a"} | logfmt | unwrap v | __error__="" [10s])'
    assert instant(store, filtered, 4) == {A: 3.0}
    # outside every window the bad sample does not matter
    assert instant(store, q, 1.5) == {A: 1.0}


def test_parser_errors_fail_metric_queries(make_store):
    store = make_store({A: [(1, '{"a":1}'), (2, "not json")]})
    with pytest.raises(QueryError, match="JSONParserErr"):
        store.query_instant('count_over_time({app="a"} | json [10s])', 3 * S)
    assert instant(store, 'count_over_time({app="a"} | json | __error__="" [10s])', 3) == {
        (("a", "1"), ("app", "a")): 1.0}


def test_unwrapped_label_leaves_series_and_grouping(make_store):
    store = make_store({
        (("app", "a"), ("pod", "1")): [(1, "v=2 k=x"), (2, "v=4 k=x")],
        (("app", "a"), ("pod", "2")): [(1, "v=10 k=x"), (3, "v=20 k=y")],
    })
    q = 'avg_over_time({app="a"} | logfmt | unwrap v [10s])'
    assert instant(store, q, 5) == {
        (("app", "a"), ("k", "x"), ("pod", "1")): 3.0,
        (("app", "a"), ("k", "x"), ("pod", "2")): 10.0,
        (("app", "a"), ("k", "y"), ("pod", "2")): 20.0,
    }
    assert instant(store, q + " by (app)", 5) == {A: 9.0}
    assert instant(store, q + " without (pod, k)", 5) == {A: 9.0}
    assert instant(store, q + " by (v)", 5) == {
        (("v", "10"),): 10.0, (("v", "2"),): 2.0, (("v", "20"),): 20.0, (("v", "4"),): 4.0}
    assert instant(store, 'first_over_time({app="a"} | logfmt | unwrap v [10s]) by (app)', 5) == {
        A: 2.0}
    assert instant(store, 'last_over_time({app="a"} | logfmt | unwrap v [10s]) by (app)', 5) == {
        A: 20.0}


def test_unwrap_stream_label_and_post_filters(make_store):
    store = make_store({(("app", "a"), ("n", "3")): [(1, "x"), (2, "y")],
                        (("app", "b"), ("n", "oops")): [(1, "x")]})
    assert instant(store, 'sum_over_time({app=~"a|b"} | unwrap n | __error__="" [10s])', 3) == {
        A: 6.0}
    # a numeric filter cannot convert "oops" either: the error stays, so Loki fails too
    with pytest.raises(QueryError, match="SampleExtractionErr"):
        store.query_instant('sum_over_time({app=~"a|b"} | unwrap n | n > 2 [10s])', 3 * S)


def test_rate_counter_examples():
    # Prometheus extrapolation: (60, 120] with samples at 90 and 120 extrapolates to 60
    assert rate_counter([90 * S, 120 * S], [100.0, 130.0], 60 * S, 120 * S, 60 * S) == 1.0
    # counter reset adds the pre-drop value back
    assert rate_counter([60 * S, 90 * S, 120 * S, 150 * S], [60, 90, 30, 60],
                        30 * S, 150 * S, 120 * S) == pytest.approx(1.0)
    assert rate_counter([10 * S], [5.0], 0, 10 * S, 10 * S) == 0.0


def test_rate_counter_query(make_store):
    store = make_store({A: [(t, f"c={c}") for t, c in
                            [(90, 100), (120, 130), (150, 160), (180, 250)]]})
    got = series(store, 'rate_counter({app="a"} | logfmt | unwrap c [1m])', 60, 240, 60)
    assert got == {A: [(120, 1.0), (180, 3.0)]}


def test_special_values_in_unwrapped_samples(make_store):
    store = make_store({
        (("c", "nan"),): [(1, "v=7"), (2, "v=NaN")],
        (("c", "inf"),): [(1, "v=+Inf"), (2, "v=-Inf")],
        (("c", "lead"),): [(1, "v=NaN"), (2, "v=3"), (3, "v=1")],
    })
    nan, inf, lead = (("c", "nan"),), (("c", "inf"),), (("c", "lead"),)
    q = '{}({{c=~".+"}} | logfmt | unwrap v [10s])'
    got = instant(store, q.format("sum_over_time"), 5)
    assert math.isnan(got[nan]) and math.isnan(got[inf]) and math.isnan(got[lead])
    got = instant(store, q.format("min_over_time"), 5)
    assert math.isnan(got[nan]) is False and got[nan] == 7 and got[inf] == -INF and got[lead] == 1
    got = instant(store, q.format("max_over_time"), 5)
    assert got[nan] == 7 and got[inf] == INF and got[lead] == 3
    got = instant(store, q.format("avg_over_time"), 5)
    assert math.isnan(got[nan]) and math.isnan(got[inf])
    got = instant(store, q.format("last_over_time"), 5)
    assert math.isnan(got[nan])


def test_quantile_interpolation():
    assert quantile(0.4, [1, 2, 3, 4, 5]) == pytest.approx(2.6)
    assert quantile(0.5, [4, 5]) == 4.5
    assert quantile(-1, [1]) == -INF
    assert quantile(0.5, []) != quantile(0.5, [])  # NaN
    assert math.isnan(quantile(0.0, [NAN, 1.0]))  # NaN sorts first


# ---------------------------------------------------------------------------
# query-level checks


@pytest.mark.parametrize("query,message", [
    ('count_over_time({app="a"} | logfmt | unwrap v [1m])',
     "invalid aggregation count_over_time with unwrap"),
    ('sum_over_time({app="a"}[1m])', "invalid aggregation sum_over_time without unwrap"),
    ('rate({app="a"}[1m]) by (app)', "grouping not allowed for rate aggregation"),
    ('topk(1.5, count_over_time({app="a"}[1m]))', "invalid parameter"),
])
def test_invalid_aggregations(make_store, query, message):
    store = make_store({A: [(1, "x")]})
    with pytest.raises(QueryError, match=re_escape(message)):
        store.query_instant(query, 2 * S)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)
