"""Metric queries on the reference model, against the store.

``ReferenceStore.query_range``/``query_instant`` run the store's evaluator
over the model's own lists (``chunkstore._reference_metric``), so these
tests check the store's side of the sample-source interface: stream
selection, the snapshot, block and head reads, the scanner's literal
filters, the counting fast path, delete requests and retention.  Answers
must be identical (NaN equal to NaN); the data never has two entries with
the same timestamp, the one case where they may differ.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkstore
from chunkstore import corpus
from chunkstore import strategies as cs
from chunkstore._state_machine import _metric_queries, _metric_rows
from chunkstore.errors import QueryError, StoreClosedError
from chunkstore.logql import evaluator_fast
from chunkstore.logql.evaluator import SampleSource
from chunkstore.metric_query import query_instant, query_range
from chunkstore.retention import RetentionPolicy
from chunkstore.testing import ReferenceSamples, ReferenceStore
from chunkstore.timeutil import now_ns

S = 1_000_000_000
MINUTE = 60 * S

QUERIES = [
    # counting: the fast path (literal filters only) and the general path
    'count_over_time({app=~".+"}[1m])',
    'sum by (app) (rate({env="prod"} |= "error" [5m]))',
    'bytes_over_time({app="api"} |~ "GET|POST" [2m] offset 30s)',
    'bytes_rate({namespace="shop"} != "info" |= "" [90s])',
    'sum by (level) (count_over_time({app=~".+"} | logfmt [1m]))',
    'count_over_time({app="web"} | pattern `<_> - - [<_>] "<method> <_>" <status> <_>` '
    '| status >= 400 [3m])',
    'absent_over_time({app="nope"}[1m])',
    # unwrap
    'avg_over_time({app="api"} | logfmt | unwrap duration(duration) | __error__="" [5m])',
    'quantile_over_time(0.9, {app="payments"} | json | unwrap amount_cents [5m]) by (app)',
    'max_over_time({app="api"} | logfmt | unwrap bytes [2m]) by (method)',
    'sum_over_time({app="api"} | logfmt | unwrap status | status >= 500 [4m])',
    'rate({app="api"} | logfmt | unwrap bytes(bytes) [1m])',
    # vector operations and binary operators
    'topk(2, sum by (app) (count_over_time({app=~".+"}[3m])))',
    'sum(count_over_time({app=~".+"} |= "error" [1m])) / sum(count_over_time({app=~".+"}[1m]))',
    'sort_desc(sum by (env) (bytes_over_time({app=~".+"}[5m])))',
    'label_replace(count_over_time({app="auth"}[2m]), "svc", "$1", "app", "(.*)")',
    'count_over_time({app="api"}[1m]) > bool 1',
    '1 + 2',
]


def _answers(target, q: str, start: int, end: int, step: int):
    out = []
    for call in (lambda: target.query_range(q, start, end, step),
                 lambda: target.query_instant(q, end)):
        try:
            out.append(("ok", _metric_rows(call())))
        except chunkstore.ChunkstoreError as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


@pytest.fixture(scope="module")
def corpus_pair(tmp_path_factory):
    """The corpus (structured metadata on some lines) in a store of tiny blocks and in the model."""
    store = chunkstore.open(tmp_path_factory.mktemp("ref-metric") / "s", block_size=2048,
                            chunk_target_size=8192, maintenance_interval=0)
    ref = ReferenceStore()
    raw = list(corpus.generate(seed=5, n_lines=1500, duration_ns=15 * MINUTE))
    assert len({ts for _l, ts, _line, _m in raw}) == len(raw)
    for labels, ts, line, meta in raw:
        store.append(labels, line, ts=ts, metadata=meta)
        ref.append(labels, line, ts=ts, metadata=meta)
    yield store, ref, raw[0][1]
    store.close()


@pytest.mark.parametrize("q", QUERIES)
def test_model_answers_metric_queries_like_the_store(corpus_pair, q):
    store, ref, t0 = corpus_pair
    for start, end, step in [(t0, t0 + 15 * MINUTE, MINUTE),
                             (t0 - 2 * MINUTE, t0 + 7 * MINUTE, 37 * S + 1)]:
        want = _answers(ref, q, start, end, step)
        assert _answers(store, q, start, end, step) == want, q
        saved = evaluator_fast.ENABLED
        evaluator_fast.ENABLED = False  # the store's general path too
        try:
            assert _answers(store, q, start, end, step) == want, q
        finally:
            evaluator_fast.ENABLED = saved


def test_deletes_and_retention_hide_the_same_entries(tmp_path):
    now = now_ns()
    policy = RetentionPolicy(period="1h", rules=[('{env="dev"}', "20m")])
    store = chunkstore.open(tmp_path / "s", block_size=512, chunk_target_size=2048,
                            maintenance_interval=0, retention=policy)
    ref = ReferenceStore(retention=policy)
    # both read the wall clock; no entry lies where the 20m cutoff moves during the test
    moving = range(now - 20 * MINUTE - S, now - 20 * MINUTE + 30 * S)
    batch = [({"app": "a", "env": env}, [(ts, f"line {i} x={i % 7}") for i in range(400)
                                         if (ts := now - 50 * MINUTE + i * 7 * S + k)
                                         not in moving])
             for k, env in enumerate(["dev", "prod"])]
    assert store.push(batch).accepted == ref.push(batch).accepted > 780
    assert store.delete('{app="a"} |= "x=3"', now - 40 * MINUTE, now - 10 * MINUTE).entries == \
        ref.delete('{app="a"} |= "x=3"', now - 40 * MINUTE, now - 10 * MINUTE).entries
    for q in ['count_over_time({app="a"}[5m])', 'sum by (env) (bytes_rate({app="a"} |= "x" [2m]))',
              'sum_over_time({app="a"} | logfmt | unwrap x [10m])']:
        got = _answers(store, q, now - 60 * MINUTE, now, MINUTE)
        assert got == _answers(ref, q, now - 60 * MINUTE, now, MINUTE), q
    store.close()


def test_reference_metric_api():
    ref = ReferenceStore(clock=lambda: 100 * MINUTE)
    ref.push([({"app": "a"}, [(100 * MINUTE - i * S, "x") for i in range(10)])])
    # time defaults to the clock, as the store's does to the wall clock
    [sample] = ref.query_instant('count_over_time({app="a"}[1m])')
    assert (sample.labels, sample.value, sample.ts) == ({"app": "a"}, 10.0, 100 * MINUTE)
    assert ref.query_instant("2 * 3") == 6.0
    [series] = ref.query_range('count_over_time({app="a"}[5s])', 100 * MINUTE - 10 * S,
                               100 * MINUTE, "5s")
    assert series.points == [(100 * MINUTE - 5 * S, 5.0), (100 * MINUTE, 5.0)]  # (t-5s, t]
    assert ref.last_query_stats.streams == 1
    with pytest.raises(QueryError, match="log query"):
        ref.query_range('{app="a"}', 0, 1, 1)
    with pytest.raises(chunkstore.LimitError):
        ref.query_instant('count_over_time({app="a"}[1m])', 100 * MINUTE, max_series=0)
    ref.close()
    assert ref.query_instant("1 + 1", 5) == 2.0  # no data read: as on a closed store
    with pytest.raises(StoreClosedError):
        ref.query_instant('count_over_time({app="a"}[1m])', 5)


def test_any_sample_source_feeds_the_evaluator():
    """The interface on its own: a source over a dict of lists."""

    class Lists(SampleSource):
        def __init__(self, streams):
            self.streams = streams

        def select(self, selection, stats):
            for labels, entries in self.streams.items():
                if all(m.matches(dict(labels).get(m.name)) for m in selection.matchers):
                    yield dict(labels), ((ts, line, None) for ts, line in entries
                                         if selection.start <= ts < selection.end)

    src = Lists({(("app", "a"),): [(1 * S, b"x"), (2 * S, b"yy")],
                 (("app", "b"),): [(2 * S, b"z")]})
    got = query_range(src, 'sum(bytes_over_time({app=~"a|b"}[2s]))', 2 * S, 3 * S, S)
    assert [(s.labels, s.points) for s in got] == [({}, [(2 * S, 4.0), (3 * S, 3.0)])]
    assert src.last_query_stats is not None
    assert isinstance(ReferenceSamples(ReferenceStore()), SampleSource)
    assert query_instant(src, 'count_over_time({app="b"}[1s])', 2 * S)[0].value == 1.0


# ---------------------------------------------------------------------------
# random data, random queries


def _unique_timestamps(batch):
    """The batch with no two entries at the same time: a repeated ts moves to the next free ns.

    Each stream keeps its order (a moved entry only moves later, past taken ones).
    """
    taken: set = set()
    out = []
    for labels, entries in batch:
        moved = []
        for e in entries:
            ts = e[0]
            while ts in taken:
                ts += 1
            taken.add(ts)
            moved.append((ts,) + tuple(e[1:]))
        out.append((labels, moved))
    return out


# up to 3 streams of up to 12 entries, at most 30 s apart
_BATCHES = cs.push_batches(max_size=3, streams=cs.streams(
    max_size=12, metadata=True, lines=cs.log_lines(max_size=2048), max_gap_ns=30 * S))


@settings(max_examples=min(settings.default.max_examples, 40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(store=cs.stores(block_size=512, chunk_target_size=2048), batch=_BATCHES, data=st.data())
def test_random_metric_queries_agree(store, batch, data):
    batch = _unique_timestamps(batch)
    ref = ReferenceStore()
    assert store.push(batch).accepted == ref.push(batch).accepted
    labels = data.draw(st.sampled_from([lbl for lbl, _e in batch]), label="labels")
    q = data.draw(_metric_queries(cs.selectors(labels=labels)), label="query")
    stamps = sorted(e[0] for _l, entries in batch for e in entries)
    end = data.draw(st.sampled_from(stamps), label="near") + data.draw(
        st.integers(-2, 30), label="after_min") * MINUTE
    step = data.draw(st.sampled_from([60, 30, 300, 45]), label="step_s") * S + data.draw(
        st.sampled_from([0, 0, 1]), label="step_ns")
    start = end - data.draw(st.integers(0, 25), label="steps") * step
    assert _answers(store, q, start, end, step) == _answers(ref, q, start, end, step), q


def test_docs_example():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "TESTING.md").read_text()
    section = text.split("### Metric queries in the model", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/TESTING.md", "exec"), namespace)
    test = namespace["test_metrics_agree"]
    settings(max_examples=min(settings.default.max_examples, 15), deadline=None,
             suppress_health_check=[HealthCheck.too_slow])(test)()
