"""Metric queries against a brute-force evaluator; the fast counting path against the general one.

The brute-force evaluator is plain Python over the raw entries that were
written: for every step it walks all samples, keeps those in the window
``(t - range - offset, t - offset]`` and applies the textbook definition of
the function, then groups and combines step by step.  Only the label
extraction of parser stages is borrowed from the engine's pipeline module
(it has its own tests); line filters, selectors, windows, unwrap
conversions, grouping and every aggregation are written out here.

Queries are drawn at random over a realistic corpus (``chunkstore.corpus``:
logfmt, JSON, nginx and syslog lines, structured metadata on some lines) in
a store with tiny blocks and chunks, so a query crosses sealed chunks, cut
head blocks and the open head block.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from contextlib import contextmanager

import pytest

import chunkstore
from chunkstore import corpus, metric_query
from chunkstore.logql import ast, evaluator_fast
from chunkstore.logql.pipeline import Pipeline
from chunkstore.logql_plan import compile_stages

S = 1_000_000_000
START = corpus.DEFAULT_START_NS
SPAN = 20 * 60 * S


def floats_equal(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    diff = abs(a - b)
    return diff <= 1e-9 or diff / max(abs(a), abs(b)) <= 1e-9


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    entries = list(corpus.generate(seed=11, n_lines=5000, duration_ns=SPAN))
    path = tmp_path_factory.mktemp("metric-corpus")
    store = chunkstore.open(path, block_size=4096, chunk_target_size=12_000,
                            maintenance_interval=0)
    for labels, batch in corpus.stream_batches(batch_size=200, seed=11, n_lines=5000,
                                               duration_ns=SPAN):
        assert store.push([(labels, batch)]).rejected == []
    raw = [(dict(labels), ts, line.encode(), meta) for labels, ts, line, meta in entries]
    yield store, raw
    store.close()


@contextmanager
def fast_path(enabled: bool, max_buckets: int | None = None):
    saved = evaluator_fast.ENABLED, evaluator_fast.MAX_BUCKETS
    evaluator_fast.ENABLED = enabled
    if max_buckets is not None:
        evaluator_fast.MAX_BUCKETS = max_buckets
    try:
        yield
    finally:
        evaluator_fast.ENABLED, evaluator_fast.MAX_BUCKETS = saved


def as_map(result) -> dict:
    return {tuple(sorted(s.labels.items())): dict(s.points) for s in result}


def assert_same(got: dict, want: dict, query: str) -> None:
    assert set(got) == set(want), (query, sorted(got)[:5], sorted(want)[:5])
    for key, points in want.items():
        assert set(got[key]) == set(points), (query, key, sorted(got[key]), sorted(points))
        for t, v in points.items():
            assert floats_equal(got[key][t], v), (query, key, t, got[key][t], v)


# ---------------------------------------------------------------------------
# random query specs, rendered to LogQL and evaluated by brute force

SELECTORS = [
    [("env", "=", "prod")],
    [("app", "=~", "api|worker")],
    [("app", "=", "web"), ("env", "!=", "staging")],
    [("namespace", "=", "shop")],
    [("app", "=", "auth")],
]
LINE_FILTERS = [
    [],
    [("|=", "error")],
    [("!=", "GET")],
    [("|~", "duration=[0-9]+ms")],
    [("|=", "level="), ("!~", "debug|warn")],
    [("|=", "")],
]
LINE_OPS = ["count_over_time", "rate", "bytes_over_time", "bytes_rate"]
UNWRAP_OPS = ["sum_over_time", "avg_over_time", "min_over_time", "max_over_time",
              "first_over_time", "last_over_time", "stddev_over_time", "stdvar_over_time",
              "quantile_over_time", "rate"]
GROUPABLE = {"avg_over_time", "min_over_time", "max_over_time", "first_over_time",
             "last_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time"}
VECTOR_OPS = [None, "sum", "avg", "min", "max", "count", "stddev", "stdvar"]


def random_spec(rng: random.Random) -> dict:
    spec = {
        "selector": rng.choice(SELECTORS),
        "filters": rng.choice(LINE_FILTERS),
        "range": rng.choice([30, 60, 90, 300]) * S,
        "offset": rng.choice([0, 0, 30 * S, -60 * S]),
        "unwrap": None,
        "grouping": None,
        "param": None,
        "parser": None,
    }
    if rng.random() < 0.45:
        # unwrap a logfmt field of the api/worker lines
        spec["selector"] = [("app", "=~", "api|worker")]
        spec["filters"] = rng.choice([[], [("|=", "duration=")], [("!=", "cache")]])
        spec["parser"] = "logfmt"
        spec["unwrap"] = rng.choice([("duration", "duration"), ("bytes", "bytes"),
                                     ("status", None), ("attempt", None)])
        spec["op"] = rng.choice(UNWRAP_OPS)
        if spec["op"] == "quantile_over_time":
            spec["param"] = rng.choice([0.0, 0.5, 0.9, 1.0])
        if spec["op"] in GROUPABLE and rng.random() < 0.6:
            spec["grouping"] = rng.choice([("by", ("app",)), ("by", ("env", "level")),
                                           ("without", ("msg", "ts", "trace_id", "path",
                                                        "user_id"))])
    else:
        spec["op"] = rng.choice(LINE_OPS)
        if rng.random() < 0.3:
            spec["parser"] = "logfmt"
    spec["vector"] = rng.choice(VECTOR_OPS)
    spec["vgroup"] = rng.choice([None, ("by", ("app",)), ("by", ("env",)),
                                 ("without", ("trace_id",))])
    if spec["vector"] is None and spec["unwrap"] is None:
        spec["vector"] = "sum"  # lines with trace_id metadata: one series per request otherwise
    spec["binary"] = rng.choice([None, None, ("*", 2.0, False), ("/", 4.0, False),
                                 (">", 1.0, False), (">", 3.0, True), ("-", 1.0, False)])
    return spec


def _lit(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(spec: dict) -> str:
    sel = "{" + ", ".join(f"{n}{op}{_lit(v)}" for n, op, v in spec["selector"]) + "}"
    parts = [sel] + [f"{op} {_lit(v)}" for op, v in spec["filters"]]
    if spec["parser"]:
        parts.append("| " + spec["parser"])
    if spec["unwrap"]:
        label, conv = spec["unwrap"]
        parts.append(f"| unwrap {conv}({label})" if conv else f"| unwrap {label}")
        parts.append('| __error__=""')
    rng_s = spec["range"] // S
    body = " ".join(parts) + f" [{rng_s}s]"
    if spec["offset"]:
        body += f" offset {spec['offset'] // S}s"
    inner = f"{spec['op']}({'' if spec['param'] is None else str(spec['param']) + ', '}{body})"
    if spec["grouping"]:
        kind, labels = spec["grouping"]
        inner += f" {kind} ({', '.join(labels)})"
    if spec["vector"]:
        g = ""
        if spec["vgroup"]:
            kind, labels = spec["vgroup"]
            g = f" {kind} ({', '.join(labels)})"
        inner = f"{spec['vector']}{g} ({inner})"
    if spec["binary"]:
        op, value, as_bool = spec["binary"]
        inner = f"{inner} {op}{' bool' if as_bool else ''} {value}"
    return inner


def _matches_selector(labels: dict, selector) -> bool:
    for name, op, value in selector:
        have = labels.get(name, "")
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have, re.S):
            return False
        if op == "!~" and re.fullmatch(value, have, re.S):
            return False
    return True


def _passes_filters(line: bytes, filters) -> bool:
    text = line.decode("utf-8", "replace")
    for op, value in filters:
        if op == "|=" and value not in text:
            return False
        if op == "!=" and value in text:
            return False
        if op == "|~" and not re.search(value, text):
            return False
        if op == "!~" and re.search(value, text):
            return False
    return True


_DURATION = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _convert(text: str, conversion):
    try:
        if conversion == "duration":
            parts = _DURATION.findall(text)
            if not parts or "".join(a + b for a, b in parts) != text:
                return None
            return sum(float(a) * _UNITS[b] for a, b in parts)
        if conversion == "bytes":
            return float(int(text)) if text.isdigit() else None
        return float(text)
    except ValueError:
        return None


def brute_samples(entries, spec) -> dict:
    """``{series key: [(ts, value, line length)]}`` in time order."""
    stages = []
    if spec["parser"]:
        stages = compile_stages((ast.LogfmtParser(),))[1]
    pipeline = Pipeline(stages)
    out: dict = {}
    for labels, ts, line, meta in sorted(entries, key=lambda e: e[1]):
        if not _matches_selector(labels, spec["selector"]):
            continue
        if not _passes_filters(line, spec["filters"]):
            continue
        lbls = pipeline.for_stream(labels).process(ts, line, meta)[1]
        value = 1.0
        if spec["unwrap"]:
            label, conversion = spec["unwrap"]
            text = lbls.get(label, "")
            if not text:
                continue
            value = _convert(text, conversion)
            if value is None or "__error__" in lbls:
                continue
            if spec["grouping"] is None or spec["grouping"][0] == "without":
                lbls.pop(label, None)
        if spec["grouping"] and "__error__" not in lbls:
            kind, names = spec["grouping"]
            if kind == "by":
                lbls = {k: v for k, v in lbls.items() if k in names}
            else:
                lbls = {k: v for k, v in lbls.items() if k not in names}
        assert "__error__" not in lbls
        out.setdefault(tuple(sorted(lbls.items())), []).append((ts, value, len(line)))
    return out


def _quantile(q: float, values: list) -> float:
    values = sorted(values)
    rank = q * (len(values) - 1)
    lo = math.floor(rank)
    hi = min(len(values) - 1, lo + 1)
    w = rank - lo
    return values[lo] * (1 - w) + values[hi] * w


def _range_fn(spec, window, seconds: float) -> float:
    op = spec["op"]
    values = [v for _ts, v, _n in window]
    if op == "count_over_time":
        return float(len(window))
    if op == "bytes_over_time":
        return float(sum(n for _ts, _v, n in window))
    if op == "bytes_rate":
        return sum(n for _ts, _v, n in window) / seconds
    if op == "rate":
        return (sum(values) if spec["unwrap"] else len(window)) / seconds
    if op == "sum_over_time":
        return sum(values)
    if op == "avg_over_time":
        return sum(values) / len(values)
    if op == "min_over_time":
        return min(values)
    if op == "max_over_time":
        return max(values)
    if op == "first_over_time":
        return values[0]
    if op == "last_over_time":
        return values[-1]
    if op == "stdvar_over_time":
        return statistics.pvariance(values)
    if op == "stddev_over_time":
        return statistics.pstdev(values)
    if op == "quantile_over_time":
        return _quantile(spec["param"], values)
    raise AssertionError(op)


def _vector_fn(op: str, values: list) -> float:
    if op == "sum":
        return sum(values)
    if op == "avg":
        return sum(values) / len(values)
    if op == "min":
        return min(values)
    if op == "max":
        return max(values)
    if op == "count":
        return float(len(values))
    if op == "stdvar":
        return statistics.pvariance(values)
    if op == "stddev":
        return statistics.pstdev(values)
    raise AssertionError(op)


def brute_force(entries, spec, steps) -> dict:
    samples = brute_samples(entries, spec)
    seconds = spec["range"] / S
    rows: dict = {}
    for key, series in samples.items():
        for t in steps:
            lo, hi = t - spec["range"] - spec["offset"], t - spec["offset"]
            window = [s for s in series if lo < s[0] <= hi]
            if window:
                rows.setdefault(key, {})[t] = _range_fn(spec, window, seconds)
    if spec["vector"]:
        grouped: dict = {}
        for key, row in rows.items():
            if spec["vgroup"] is None:
                gkey = ()
            elif spec["vgroup"][0] == "by":
                gkey = tuple(p for p in key if p[0] in spec["vgroup"][1])
            else:
                gkey = tuple(p for p in key if p[0] not in spec["vgroup"][1])
            for t, v in row.items():
                grouped.setdefault(gkey, {}).setdefault(t, []).append(v)
        rows = {g: {t: _vector_fn(spec["vector"], vs) for t, vs in per.items()}
                for g, per in grouped.items()}
    if spec["binary"]:
        op, value, as_bool = spec["binary"]
        out: dict = {}
        for key, row in rows.items():
            new = {}
            for t, v in row.items():
                if op == "*":
                    new[t] = v * value
                elif op == "/":
                    new[t] = v / value
                elif op == "-":
                    new[t] = v - value
                elif as_bool:
                    new[t] = 1.0 if v > value else 0.0
                elif v > value:
                    new[t] = v
            if new:
                out[key] = new
        rows = out
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_random_query_matches_brute_force(corpus_store, seed):
    store, entries = corpus_store
    rng = random.Random(seed)
    spec = random_spec(rng)
    query = render(spec)
    step = rng.choice([15, 30, 60, 120]) * S
    start = START + rng.randrange(-5 * 60, SPAN // S, 5) * S
    end = start + rng.choice([0, 1, 5, 20]) * step
    steps = list(range(start, end + 1, step))
    # unwrapped api lines carry a trace id: one series per request, beyond Loki's limit
    got = as_map(metric_query.query_range(store, query, start, end, step, max_series=None))
    assert_same(got, brute_force(entries, spec, steps), query)
    # the same query at one instant
    instant = metric_query.query_instant(store, query, end, max_series=None)
    want = {k: r[end] for k, r in brute_force(entries, spec, [end]).items() if end in r}
    have = {tuple(sorted(s.labels.items())): s.value for s in instant}
    assert set(have) == set(want), query
    for k, v in want.items():
        assert floats_equal(have[k], v), (query, k, have[k], v)


# ---------------------------------------------------------------------------
# the fast counting path against the general path


def _random_count_query(rng: random.Random) -> str:
    sel = rng.choice(['{env="prod"}', '{app=~"api|web"}', '{namespace="shop"}', '{app="gateway"}',
                      '{env=~"prod|staging"}'])
    flt = rng.choice(["", ' |= "error"', ' != "GET"', ' |= "200" != "/healthz"', ' |= ""',
                      ' |= "zzz-nothing"'])
    op = rng.choice(["count_over_time", "rate", "bytes_over_time", "bytes_rate",
                     "absent_over_time"])
    rng_s = rng.choice([1, 10, 30, 60, 90, 300])
    off = rng.choice(["", "", " offset 30s", " offset -45s", " offset 1s"])
    inner = f"{op}({sel}{flt} [{rng_s}s]{off})"
    return rng.choice([inner, f"sum by (app) ({inner})", f"sum({inner})", f"{inner} * 2"])


@pytest.mark.parametrize("seed", range(30))
def test_fast_path_equals_general_path(corpus_store, seed):
    store, _entries = corpus_store
    rng = random.Random(1000 + seed)
    query = _random_count_query(rng)
    # a step of a whole number of seconds (buckets), or one a few ns off (window by window)
    step = rng.choice([1, 7, 15, 45, 60, 250]) * S + rng.choice([0, 0, 3])
    start = START + rng.randrange(-120, SPAN // S) * S + rng.randrange(1000)
    end = start + rng.randrange(0, 40) * step
    with fast_path(True):
        fast = store.query_range(query, start, end, step)
        assert store.last_query_stats.fast_path
        fast_instant = store.query_instant(query, end)
    with fast_path(True, max_buckets=1):  # every window counted on its own
        per_window = store.query_range(query, start, end, step)
    with fast_path(False):
        general = store.query_range(query, start, end, step)
        assert not store.last_query_stats.fast_path
        general_instant = store.query_instant(query, end)
    assert fast == general, query
    assert per_window == general, query
    assert fast_instant == general_instant, query


def test_fast_path_with_deletes_out_of_order_and_metadata(tmp_path):
    rng = random.Random(3)
    store = chunkstore.open(tmp_path / "s", block_size=1024, chunk_target_size=3000,
                            maintenance_interval=0, out_of_order_window="1h")
    for _ in range(30):
        batch = []
        for app in ("a", "b", "c"):
            entries = []
            for _ in range(rng.randrange(5, 40)):
                ts = START + rng.randrange(0, 600) * S + rng.randrange(S)
                line = rng.choice(["level=error boom", "level=info ok", "GET /x 200", ""])
                if rng.random() < 0.15:
                    entries.append((ts, line, {"trace_id": rng.choice(["t1", "t2"]),
                                               "app": "meta"}))
                else:
                    entries.append((ts, line))
            entries.sort(key=lambda e: e[0])
            batch.append(({"app": app, "env": "prod"}, entries))
        assert not store.push(batch).rejected
    store.delete('{app="b"} |= "error"', START + 100 * S, START + 300 * S)
    store.delete('{app="c"}', START + 400 * S, START + 450 * S)
    queries = ['count_over_time({env="prod"} [1m])', 'bytes_rate({env="prod"} != "GET" [45s])',
               'count_over_time({env="prod"} |= "error" [2m] offset 30s)',
               'absent_over_time({app="c"} [5s])']
    try:
        for q in queries:
            for step in (5 * S, 60 * S, 61 * S):
                with fast_path(True):
                    fast = store.query_range(q, START - 60 * S, START + 700 * S, step)
                with fast_path(True, max_buckets=1):
                    per_window = store.query_range(q, START - 60 * S, START + 700 * S, step)
                with fast_path(False):
                    general = store.query_range(q, START - 60 * S, START + 700 * S, step)
                assert fast == general, (q, step)
                assert per_window == general, (q, step)
    finally:
        store.close()
