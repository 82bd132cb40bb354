"""Vector aggregations, binary operators, label_replace and constant folding.

Series values are set up with ``max_over_time`` over one unwrapped sample
per stream, so any float (NaN and infinities included) can be fed to the
operators.
"""

from __future__ import annotations

import math

import pytest

import chunkstore
from chunkstore.errors import QueryError
from chunkstore.logql.evaluator_binary import arithmetic, go_mod, go_pow, scalar_binop

S = 1_000_000_000
T = 10 * S
NAN = float("nan")
INF = float("inf")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = chunkstore.open(tmp_path_factory.mktemp("ops"), maintenance_interval=0)
    values = {
        ("a", "x", "eu"): "1", ("a", "y", "eu"): "2", ("b", "x", "us"): "5",
        ("b", "y", "us"): "8", ("c", "x", "us"): "NaN", ("d", "x", "eu"): "+Inf",
        ("e", "x", "eu"): "-Inf",
    }
    batch = [({"app": app, "pod": pod, "zone": zone, "k": "v"}, [(5 * S, f"v={v}")])
             for (app, pod, zone), v in values.items()]
    assert s.push(batch).rejected == []
    yield s
    s.close()


def V(sel: str) -> str:
    """A vector of the stored values for a selector (labels app, k, pod, zone)."""
    return f"max_over_time({sel} | logfmt | unwrap v [10s])"


def apps(regex: str) -> str:
    """The stored values of the apps matching ``regex``."""
    return V(f'{{app=~"{regex}"}}')


FIN = apps("a|b")  # four finite series: 1, 2, 5, 8


def q(store, query):
    out = store.query_instant(query, T)
    if isinstance(out, float):
        return out
    return {tuple(sorted(s.labels.items())): s.value for s in out}


def lbl(**kw):
    return tuple(sorted(kw.items()))


def full(app, pod, zone):
    return lbl(app=app, k="v", pod=pod, zone=zone)


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) < 1e-12


# ---------------------------------------------------------------------------
# vector aggregations


@pytest.mark.parametrize("op,want", [
    ("sum", 16.0), ("avg", 4.0), ("min", 1.0), ("max", 8.0), ("count", 4.0),
    ("stdvar", 7.5), ("stddev", math.sqrt(7.5)),
])
def test_aggregations_without_grouping(store, op, want):
    got = q(store, f"{op}({FIN})")
    assert list(got) == [()]
    assert same(got[()], want)


def test_by_and_without_before_or_after(store):
    want = {lbl(app="a"): 3.0, lbl(app="b"): 13.0}
    assert q(store, f"sum by (app) ({FIN})") == want
    assert q(store, f"sum({FIN}) by (app)") == want
    assert q(store, f"sum without (pod, zone, k) ({FIN})") == want
    assert q(store, f"count by (zone, nope) ({FIN})") == {lbl(zone="eu"): 2.0, lbl(zone="us"): 2.0}
    assert q(store, f"max without () ({FIN})") == {
        full("a", "x", "eu"): 1.0, full("a", "y", "eu"): 2.0,
        full("b", "x", "us"): 5.0, full("b", "y", "us"): 8.0}


@pytest.mark.parametrize("regex,op,want", [
    ("a|c", "sum", NAN), ("a|d", "sum", INF), ("d|e", "sum", NAN),
    ("a|d", "avg", INF), ("d|e", "avg", NAN), ("c|d", "avg", NAN),
    ("a|c", "min", 1.0), ("c|d", "min", INF), ("d|e", "min", -INF),
    ("a|c", "max", 2.0), ("c|e", "max", -INF),
    ("a|c|d|e", "count", 5.0),
    ("a|d", "stddev", NAN), ("a|c", "stdvar", NAN),
])
def test_aggregations_of_special_values(store, regex, op, want):
    got = q(store, f"{op}({apps(regex)})")
    assert same(got[()], want), got


def test_topk_bottomk_select_without_aggregating(store):
    assert q(store, f"topk(2, {FIN})") == {full("b", "x", "us"): 5.0, full("b", "y", "us"): 8.0}
    assert q(store, f"bottomk(1, {FIN}) by (app)") == {full("a", "x", "eu"): 1.0,
                                                      full("b", "x", "us"): 5.0}
    with pytest.raises(QueryError, match="invalid parameter"):
        q(store, f"topk(0, {FIN})")
    # NaN loses to any number; infinities are the extremes
    allv = V('{k="v"}')
    assert q(store, f"topk(1, {allv})") == {full("d", "x", "eu"): INF}
    assert q(store, f"bottomk(1, {allv})") == {full("e", "x", "eu"): -INF}
    assert q(store, f"topk(1, {apps('a|c')})") == {full("a", "y", "eu"): 2.0}


def test_sort_and_sort_desc_keep_their_order(store):
    allv = V('{k="v"}')
    asc = [s.value for s in store.query_instant(f"sort({allv})", T)]
    assert asc[:-1] == [-INF, 1.0, 2.0, 5.0, 8.0, INF] and math.isnan(asc[-1])
    desc = [s.value for s in store.query_instant(f"sort_desc({allv}) * 2", T)]
    assert desc[:-1] == [INF, 16.0, 10.0, 4.0, 2.0, -INF] and math.isnan(desc[-1])
    # without sort, instant results come sorted by labels
    labels = [tuple(sorted(s.labels.items())) for s in store.query_instant(allv, T)]
    assert labels == sorted(labels)


def test_range_results_are_sorted_by_labels(store):
    got = store.query_range(f"sort_desc({FIN})", 0, T, 5 * S)
    keys = [tuple(sorted(s.labels.items())) for s in got]
    assert keys == sorted(keys)
    assert all(list(s.labels) == sorted(s.labels) for s in got)


# ---------------------------------------------------------------------------
# binary operators


def test_go_float_semantics():
    assert math.isnan(arithmetic("/", 1.0, 0.0)) and math.isnan(arithmetic("%", 1.0, 0.0))
    assert arithmetic("/", 1.0, INF) == 0.0
    assert go_mod(-7.0, 3.0) == -1.0 and go_mod(7.0, -3.0) == 1.0 and math.isnan(go_mod(INF, 2))
    assert go_mod(5.0, INF) == 5.0
    assert go_pow(2.0, 10.0) == 1024.0 and go_pow(0.0, -1.0) == INF
    assert go_pow(-0.0, -3.0) == -INF and math.isnan(go_pow(-8.0, 1 / 3))
    assert go_pow(10.0, 400.0) == INF and go_pow(-10.0, 401.0) == -INF
    assert go_pow(NAN, 0.0) == 1.0 and go_pow(1.0, NAN) == 1.0
    assert scalar_binop(">", 2.0, 1.0) == 1.0 and scalar_binop("==", NAN, NAN) == 0.0
    assert scalar_binop("!=", NAN, NAN) == 1.0


@pytest.mark.parametrize("query,want", [
    ("1 + 1", 2.0), ("2 * 3 - 4 / 2", 4.0), ("2 ^ 3 ^ 2", 512.0), ("7 % 4", 3.0),
    ("1 / 0", NAN), ("5 % 0", NAN), ("2 > 1", 1.0), ("2 < bool 1", 0.0), ("-1 ^ 2", 1.0),
    ("(1 + 2) * 3", 9.0),
])
def test_scalar_expressions_fold(store, query, want):
    got = store.query_instant(query, T)
    assert isinstance(got, float) and same(got, want)


def test_scalar_range_query_is_one_series(store):
    got = store.query_range("1 + 1", 0, 20 * S, 10 * S)
    assert len(got) == 1 and got[0].labels == {}
    assert got[0].points == [(0, 2.0), (10 * S, 2.0), (20 * S, 2.0)]


def test_vector_scalar_arithmetic_and_comparisons(store):
    one = V('{app="a", pod="y"}')
    k = full("a", "y", "eu")
    assert q(store, f"{one} * 3") == {k: 6.0}
    assert q(store, f"10 - {one}") == {k: 8.0}
    assert q(store, f"{one} ^ 2") == {k: 4.0}
    assert same(q(store, f"{one} / 0")[k], NAN)
    assert same(q(store, f"{one} % 0")[k], NAN)
    assert q(store, f"{one} > 1") == {k: 2.0}
    assert q(store, f"{one} > 5") == {}
    assert q(store, f"{one} > bool 5") == {k: 0.0}
    assert q(store, f"1 < {one}") == {k: 2.0}  # the vector's value, not the scalar's
    assert q(store, f"1 < bool {one}") == {k: 1.0}
    assert q(store, f"{one} == 2") == {k: 2.0}
    nan_key = full("c", "x", "us")
    assert math.isnan(q(store, f"{apps('c')} != 0")[nan_key])  # NaN != 0 holds
    assert q(store, f"{apps('c')} == {apps('c')}") == {}  # NaN == NaN does not


def test_vector_vector_one_to_one(store):
    left = f"sum by (app) ({FIN})"
    right = f"count by (app) ({FIN})"
    assert q(store, f"{left} / {right}") == {lbl(app="a"): 1.5, lbl(app="b"): 6.5}
    assert q(store, f"{left} > {right}") == {lbl(app="a"): 3.0, lbl(app="b"): 13.0}
    assert q(store, f"{right} > bool {left}") == {lbl(app="a"): 0.0, lbl(app="b"): 0.0}
    # on(): result labels are the matching labels
    by_zone = f"sum by (app, zone) ({FIN})"
    assert q(store, f"{by_zone} - on (app) {right}") == {lbl(app="a"): 1.0, lbl(app="b"): 11.0}
    assert q(store, f"{by_zone} - ignoring (zone) {right}") == {lbl(app="a"): 1.0,
                                                               lbl(app="b"): 11.0}
    # no match, no point
    assert q(store, f"{by_zone} - {right}") == {}


def test_group_left_and_group_right(store):
    per_pod = f"sum by (app, pod) ({FIN})"
    per_app = f'label_replace(sum by (app) ({FIN}), "team", "t-$1", "app", "(.*)")'
    want = {lbl(app="a", pod="x", team="t-a"): 1 / 3, lbl(app="a", pod="y", team="t-a"): 2 / 3,
            lbl(app="b", pod="x", team="t-b"): 5 / 13, lbl(app="b", pod="y", team="t-b"): 8 / 13}
    got = q(store, f"{per_pod} / on (app) group_left (team) {per_app}")
    assert got.keys() == want.keys() and all(same(got[k], v) for k, v in want.items())
    got = q(store, f"{per_app} + on (app) group_right {per_pod}")
    assert got == {lbl(app="a", pod="x"): 4.0, lbl(app="a", pod="y"): 5.0,
                   lbl(app="b", pod="x"): 18.0, lbl(app="b", pod="y"): 21.0}


def test_matching_errors(store):
    per_pod = f"sum by (app, pod) ({FIN})"
    per_app = f"sum by (app) ({FIN})"
    with pytest.raises(QueryError, match="many-to-one matching must be explicit"):
        store.query_instant(f"{per_pod} / on (app) {per_app}", T)
    with pytest.raises(QueryError, match="duplicate series for the match group"):
        store.query_instant(f"{per_app} / on (app) {per_pod}", T)
    with pytest.raises(QueryError, match="duplicate series for the match group"):
        store.query_instant(f"{per_pod} / on (app) group_left {per_pod}", T)


def test_set_operators(store):
    left = f"sum by (app) ({FIN})"
    a_only = f"sum by (app) ({apps('a')})"
    assert q(store, f"{left} and {a_only}") == {lbl(app="a"): 3.0}
    assert q(store, f"{left} unless {a_only}") == {lbl(app="b"): 13.0}
    assert q(store, f"{a_only} or {left}") == {lbl(app="a"): 3.0, lbl(app="b"): 13.0}
    by_zone = f"sum by (app, zone) ({FIN})"
    assert q(store, f"{by_zone} and on (app) {a_only}") == {lbl(app="a", zone="eu"): 3.0}
    assert q(store, f"{by_zone} unless ignoring (zone) {a_only}") == {lbl(app="b", zone="us"): 13.0}


def test_vector_function_and_range_steps(store):
    assert q(store, "vector(3)") == {(): 3.0}
    assert q(store, "vector(1) + vector(2)") == {(): 3.0}
    got = store.query_range(f"sum({FIN}) + vector(1)", 0, 20 * S, 5 * S)
    # the samples sit at 5s: in the windows (-5s, 5s] and (0s, 10s], not (5s, 15s]
    assert got[0].points == [(5 * S, 17.0), (10 * S, 17.0)]


# ---------------------------------------------------------------------------
# label_replace


def test_label_replace(store):
    one = V('{app="a", pod="x"}')
    base = full("a", "x", "eu")
    got = q(store, f'label_replace({one}, "dst", "$1-${{2}}", "zone", "(e)(u)")')
    assert got == {tuple(sorted(dict(base, dst="e-u").items())): 1.0}
    got = q(store, f'label_replace({one}, "dst", "<$name>", "zone", "(?P<name>.)u")')
    assert got == {tuple(sorted(dict(base, dst="<e>").items())): 1.0}
    # no match: unchanged; empty result: label removed; $$ is a dollar
    assert q(store, f'label_replace({one}, "dst", "x", "zone", "us")') == {base: 1.0}
    got = q(store, f'label_replace({one}, "zone", "", "zone", ".*")')
    assert got == {lbl(app="a", k="v", pod="x"): 1.0}
    got = q(store, f'label_replace({one}, "dst", "$$1$1x", "zone", "(.*)")')
    assert got == {tuple(sorted(dict(base, dst="$1").items())): 1.0}
    with pytest.raises(QueryError, match="same labelset"):
        store.query_instant(f'label_replace({FIN}, "pod", "", "pod", ".*")', T)
    with pytest.raises(QueryError, match="invalid destination label name"):
        store.query_instant(f'label_replace({one}, "1bad", "x", "zone", ".*")', T)
