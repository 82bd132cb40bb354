"""The shipped Hypothesis strategies: valid output, argument checks, minimal examples.

Every strategy's output is checked against chunkstore itself (labels are
accepted, lines and streams ingest and come back byte for byte, queries
parse and select what they promise), the negative strategy is always
rejected, bad arguments raise InvalidArgument naming the parameter when the
strategy is built, and shrinking reaches the minimal examples the
docstrings promise.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import chunkstore
from chunkstore import logql
from chunkstore import strategies as cs
from chunkstore.labels import Labels
from chunkstore.logql_plan import parse_selector_matchers
from chunkstore.strategies import DEFAULT_MIN_TS, chunkstore_store  # noqa: F401 - a fixture
from chunkstore.testing import ReferenceStore

FIND = settings(database=None, max_examples=2000, deadline=None, derandomize=True,
                phases=[Phase.generate, Phase.shrink])  # no explain phase: it is slow here

_ts = itertools.count(DEFAULT_MIN_TS)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = chunkstore.open(tmp_path_factory.mktemp("strategies") / "store", maintenance_interval=0,
                        block_size=4096, chunk_target_size=16384, fsync="never")
    yield s
    s.close()


def _stream_rows(store, labels):
    sel = logql.to_string(logql.ast.Selector(tuple(
        logql.ast.Matcher(k, "=", v) for k, v in sorted(labels.items()))))
    return [(e.ts, e.raw) for e in store.query(sel, direction="forward")
            if dict(e.stream) == dict(labels)]


# ---------------------------------------------------------------------------
# labels

@given(cs.label_sets())
def test_label_sets_are_accepted(store, labels):
    assert Labels.from_input(labels) == labels
    store.append(labels, "x", ts=next(_ts))
    assert store.series(logql.to_string(logql.ast.Selector(tuple(
        logql.ast.Matcher(k, "=", v) for k, v in labels.items()))))


@given(cs.label_sets(min_size=2, max_size=3, names=["a", "b", "c"], values=st.sampled_from("xy")))
def test_label_sets_respect_names_values_and_sizes(labels):
    assert 2 <= len(labels) <= 3
    assert set(labels) <= {"a", "b", "c"} and set(labels.values()) <= {"x", "y"}


@given(cs.label_names())
def test_label_names_are_writable_in_selectors(name):
    Labels.from_input({name: "v"})
    assert logql.parse_selector(f'{{{name}="v"}}').matchers[0].name == name


@given(cs.label_values(min_size=3, max_size=5))
def test_label_values_sizes(value):
    assert 3 <= len(value) <= 5
    Labels.from_input({"a": value})


@given(cs.invalid_label_sets())
def test_invalid_label_sets_are_always_rejected(store, labels):
    with pytest.raises(chunkstore.LabelError):
        Labels.from_input(labels)
    with pytest.raises(chunkstore.LabelError):
        store.append(labels, "x", ts=next(_ts))
    ts = next(_ts)
    result = store.push([(labels, [(ts, "x")])])
    assert result.accepted == 0 and [(r[1], r[0] is labels) for r in result.rejected] == [
        (ts, True)]


def test_from_type_labels_works_without_importing_the_strategies_module():
    # The Hypothesis entry point (pyproject.toml) registers the strategy when
    # Hypothesis is imported; a fresh interpreter shows it without our import.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hypothesis import given, settings, strategies as st\n"
        "import chunkstore\n"
        "seen = []\n"
        "@settings(max_examples=30, database=None)\n"
        "@given(st.from_type(chunkstore.Labels))\n"
        "def check(labels):\n"
        "    assert chunkstore.Labels.from_input(labels.as_dict()) == labels\n"
        "    seen.append(labels)\n"
        "check()\n"
        "print(len(seen), 'chunkstore.strategies' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    n, imported = out.stdout.split()
    assert int(n) > 0 and imported == "True"


def test_from_type_labels():
    @given(st.from_type(chunkstore.Labels))
    def check(labels):
        assert isinstance(labels, chunkstore.Labels)
        assert Labels.from_input(labels.as_dict()) == labels

    check()


@given(cs.structured_metadata())
def test_structured_metadata_round_trips(store, meta):
    ts = next(_ts)
    store.append({"app": "meta"}, "m", ts=ts, metadata=meta)
    (entry,) = store.query('{app="meta"}', start=ts, end=ts + 1)
    assert {k: v for k, v in entry.labels.items() if k != "app"} == meta


# ---------------------------------------------------------------------------
# lines, entries, streams

_NGINX = re.compile(r'\S+ - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                    r'"[A-Z]+ /\S* HTTP/1\.1" \d{3} \d+ "-" "[^"]+"\Z')


@pytest.mark.parametrize("kind", cs.LINE_KINDS)
@given(data=st.data())
def test_log_lines_have_their_shape(kind, data):
    line = data.draw(cs.log_lines(kind=kind, max_size=4096))
    assert isinstance(line, str) and len(line.encode()) <= 4096
    if kind == "empty":
        assert line == ""
    elif kind == "plain":
        assert line.isascii()
    elif kind == "logfmt":
        assert re.match(r"level=(info|debug|warn|error) msg=", line)
    elif kind == "json":
        obj = json.loads(line)
        assert obj["level"] in ("info", "debug", "warn", "error") and "msg" in obj
    elif kind == "nginx":
        assert _NGINX.match(line), line
    elif kind == "unicode":
        assert not line.isascii()
    elif kind == "long":
        assert len(line) >= cs.LONG_LINE_MIN


@given(cs.log_lines(allow_invalid_utf8=True, max_size=2048))
def test_invalid_utf8_lines_are_bytes_and_ingest(store, line):
    assert isinstance(line, bytes) and len(line) <= 2048
    ts = next(_ts)
    store.append({"app": "bytes"}, line, ts=ts)
    (entry,) = store.query('{app="bytes"}', start=ts, end=ts + 1)
    assert entry.raw == line and entry.line == line.decode("utf-8", "replace")


def test_invalid_utf8_lines_do_occur():
    def invalid(b):
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    find(cs.log_lines(allow_invalid_utf8=True), invalid, settings=FIND)


@given(cs.timestamps(min=dt.datetime(2030, 1, 1), max=dt.datetime(2030, 1, 2)))
def test_timestamps_within_bounds(ts):
    lo = chunkstore.timeutil.to_ns(dt.datetime(2030, 1, 1))
    assert lo <= ts <= lo + 86_400 * 10**9


@given(cs.timestamps(max=5))
def test_timestamps_only_max(ts):
    assert 5 - 86_400 * 10**9 < ts <= 5


@given(cs.entries(metadata=True))
def test_entries_with_metadata(entry):
    ts, line, meta = entry
    assert isinstance(ts, int) and isinstance(line, str) and isinstance(meta, dict)


@given(cs.streams(labels={"app": "streams"}, lines=cs.log_lines(max_size=2048), metadata=True))
def test_streams_are_time_ordered_unique_and_ingest(tmp_path_factory, stream):
    labels, entries = stream
    ts = [e[0] for e in entries]
    assert ts == sorted(ts)
    assert len({(e[0], e[1], tuple(sorted(e[2].items()))) for e in entries}) == len(entries)
    ref = ReferenceStore()
    assert ref.push([stream]).accepted == len(entries)


_case = itertools.count()


def _fresh(labels: dict) -> dict:
    """The same labels in a stream no other example wrote to."""
    return {**labels, "t_case": str(next(_case))}


@given(cs.streams(out_of_order=True, duplicates=True, max_size=6))
def test_out_of_order_and_duplicate_streams_ingest_like_the_model(store, stream):
    stream = (_fresh(stream[0]), stream[1])
    ref = ReferenceStore()
    got, want = store.push([stream]), ref.push([stream])
    assert (got.accepted, got.rejected) == (want.accepted, want.rejected)
    assert not got.rejected  # displacements stay inside the default window
    # exact duplicates within one push are dropped by both
    assert sorted(_stream_rows(store, stream[0])) == sorted(
        (ts, raw) for _lbl, ts, raw, _m in ref.dump())


def test_streams_out_of_order_and_duplicates_occur():
    def disordered(s):
        return [e[0] for e in s[1]] != sorted(e[0] for e in s[1])

    find(cs.streams(out_of_order=True), disordered, settings=FIND)
    find(cs.streams(duplicates=True), lambda s: len(set(s[1])) < len(s[1]), settings=FIND)


@given(cs.push_batches())
def test_push_batches_ingest_completely(store, batch):
    batch = [(_fresh(labels), entries) for labels, entries in batch]
    result = store.push(batch)
    assert result.accepted == sum(len(e) for _l, e in batch) and not result.rejected
    for labels, entries in batch:
        rows = _stream_rows(store, labels)
        want = sorted((e[0], e[1].encode()) for e in entries)
        assert sorted(rows) == want


# ---------------------------------------------------------------------------
# queries

@given(cs.selectors())
def test_selectors_parse(text):
    logql.parse_selector(text)


@given(data=st.data(), labels=cs.label_sets())
def test_selectors_select_the_given_labels(data, labels):
    text = data.draw(cs.selectors(labels=labels))
    matchers = parse_selector_matchers(text)
    assert all(m.matches(labels.get(m.name)) for m in matchers), text
    assert any(not m.matches_empty for m in matchers)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), labels=cs.label_sets(max_size=3))
def test_selectors_find_the_stream_in_a_store(store, data, labels):
    ts = next(_ts)
    store.append(labels, "sel", ts=ts)
    text = data.draw(cs.selectors(labels=labels))
    got = [e for e in store.query(text, start=ts, end=ts + 1) if dict(e.stream) == labels]
    assert len(got) == 1


@given(cs.selectors(labels={"app": "api"}), cs.line_filters())
def test_line_filters_parse_after_a_selector(sel, flt):
    expr = logql.parse(f"{sel} {flt}")
    assert isinstance(expr.stages[0], logql.ast.LineFilter)


def _capped(n: int):
    """The profile's example count, at most ``n`` (a metric query takes a few ms to draw)."""
    return settings(max_examples=min(settings.default.max_examples, n),
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", [None, "log", "metric"])
@_capped(20)
@given(data=st.data())
def test_queries_parse(kind, data):
    text = data.draw(cs.queries(kind=kind))
    expr = logql.parse(text)
    if kind == "log":
        assert isinstance(expr, logql.ast.LogQuery)
    elif kind == "metric":
        assert logql.is_metric(expr)


@_capped(20)
@given(cs.queries(selector=st.just('{app="api"}')))
def test_queries_use_the_given_selector(text):
    expr = logql.parse(text)
    sels = [n for n in logql.ast.walk(expr) if isinstance(n, logql.ast.Selector)]
    assert all(logql.to_string(s) == '{app="api"}' for s in sels)


def test_query_strategies_are_built_once():
    # rebuilding them inside draws made a metric query cost ~75 ms (now ~5 ms)
    from chunkstore.logql import _ast_strategies as ast_st

    assert ast_st.metric_exprs() is ast_st.metric_exprs()
    assert ast_st.log_ranges(unwrap=True) is ast_st.log_ranges(unwrap=True)
    assert ast_st.label_filter_exprs(max_leaves=3) is not ast_st.label_filter_exprs()


@given(cs.queries(kind="log", selector=cs.selectors(labels={"app": "q"})))
def test_log_queries_run_on_a_store(store, text):
    store.append({"app": "q"}, 'level=info msg="hi" status=200', ts=next(_ts))
    list(store.query(text, limit=5))


# ---------------------------------------------------------------------------
# stores and the fixture

def test_stores_are_open_empty_and_closed_after_each_example():
    opened = []

    @settings(max_examples=min(settings.default.max_examples, 15))
    @given(cs.stores(block_size=512), cs.push_batches())
    def check(store, batch):
        opened.append(store)
        assert store.options.block_size == 512 and store.options.maintenance_interval == 0
        assert store.stats().entries == 0
        assert not store.push(batch).rejected
        assert not opened[-1]._closed

    check()
    assert opened and all(s._closed and not os.path.exists(s.path) for s in opened)


def test_fixture_yields_an_open_store(chunkstore_store):  # noqa: F811
    chunkstore_store.append({"app": "fx"}, "hello", ts=1)
    assert [e.line for e in chunkstore_store.query('{app="fx"}')] == ["hello"]


class TestFixtureOptions:
    @pytest.fixture
    def chunkstore_options(self):
        return {"max_line_size": 10}

    def test_options_fixture_is_used(self, chunkstore_store):  # noqa: F811
        with pytest.raises(chunkstore.EntryRejected):
            chunkstore_store.append({"app": "fx"}, "x" * 11, ts=1)


# ---------------------------------------------------------------------------
# argument checks happen when the strategy is built

@pytest.mark.parametrize("call, param", [
    (lambda: cs.label_sets(min_size=0), "min_size"),
    (lambda: cs.label_sets(max_size=16), "max_size"),
    (lambda: cs.label_sets(min_size=3, max_size=2), "min_size"),
    (lambda: cs.label_sets(min_size="1"), "min_size"),
    (lambda: cs.label_sets(names=["ok", "__no"]), "names"),
    (lambda: cs.label_sets(names=["a"], min_size=2), "names"),
    (lambda: cs.label_sets(names="abc"), "names"),
    (lambda: cs.label_sets(values=["x"]), "values"),
    (lambda: cs.label_values(min_size=0), "min_size"),
    (lambda: cs.label_values(max_size=513), "max_size"),
    (lambda: cs.log_lines(kind="xml"), "kind"),
    (lambda: cs.log_lines(max_size=100), "max_size"),
    (lambda: cs.log_lines(allow_invalid_utf8=1), "allow_invalid_utf8"),
    (lambda: cs.timestamps(min=5, max=4), "min"),
    (lambda: cs.timestamps(min=1.5), "min"),
    (lambda: cs.timestamps(max=2**64), "max"),
    (lambda: cs.entries(timestamps=5), "timestamps"),
    (lambda: cs.entries(metadata="yes"), "metadata"),
    (lambda: cs.streams(max_gap_ns=-1), "max_gap_ns"),
    (lambda: cs.streams(labels={"__x": "y"}), "labels"),
    (lambda: cs.streams(out_of_order=None), "out_of_order"),
    (lambda: cs.push_batches(max_size=-1), "max_size"),
    (lambda: cs.selectors(labels={"by": "x"}), "labels"),
    (lambda: cs.selectors(labels="app=x"), "labels"),
    (lambda: cs.queries(kind="sql"), "kind"),
    (lambda: cs.queries(selector='{a="b"}'), "selector"),
    (lambda: cs.stores(block_size=0), "options"),
    (lambda: cs.stores(nonsense=1), "options"),
    (lambda: cs.structured_metadata(max_size=-1), "max_size"),
])
def test_bad_arguments_raise_invalid_argument_at_once(call, param):
    with pytest.raises(InvalidArgument, match=param):
        call()


# ---------------------------------------------------------------------------
# shrinking reaches the documented minimal examples

_NGINX_MIN = '0.0.0.0 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 0 "-" "curl/8.4.0"'


@pytest.mark.parametrize("strategy, minimal", [
    (cs.label_names(), "app"),
    (cs.label_values(), "api"),
    (cs.label_sets(), {"app": "api"}),
    (cs.invalid_label_sets(), {}),
    (cs.structured_metadata(), {}),
    (cs.log_lines(), ""),
    (cs.log_lines(kind="plain"), ""),
    (cs.log_lines(kind="logfmt"), 'level=info msg=""'),
    (cs.log_lines(kind="json"), '{"level":"info","msg":""}'),
    (cs.log_lines(kind="nginx"), _NGINX_MIN),
    (cs.log_lines(kind="unicode"), "\x80"),
    (cs.log_lines(kind="long"), "0" * cs.LONG_LINE_MIN),
    (cs.log_lines(allow_invalid_utf8=True), b""),
    (cs.timestamps(), DEFAULT_MIN_TS),
    (cs.entries(), (DEFAULT_MIN_TS, "")),
    (cs.streams(), ({"app": "api"}, [(DEFAULT_MIN_TS, "")])),
    (cs.push_batches(), [({"app": "api"}, [(DEFAULT_MIN_TS, "")])]),
    (cs.selectors(labels={"env": "prod", "app": "api"}), '{app="api"}'),
    (cs.selectors(), '{app="0"}'),
    (cs.line_filters(), '|= ""'),
    (cs.queries(kind="log"), '{app="0"}'),
    (cs.queries(kind="log", selector=st.just('{app="api"}')), '{app="api"}'),
    (cs.queries(kind="metric"), 'count_over_time({app="0"}[1ms])'),
    (st.from_type(chunkstore.Labels), Labels.from_input({"app": "api"})),
])
def test_shrinks_to_the_documented_minimal_example(strategy, minimal):
    assert find(strategy, lambda _: True, settings=FIND) == minimal


def test_minimal_three_entry_stream_is_evenly_spaced_by_one_ns():
    labels, entries = find(cs.streams(), lambda s: len(s[1]) >= 3, settings=FIND)
    assert labels == {"app": "api"}
    assert entries == [(DEFAULT_MIN_TS + i, "") for i in range(3)]


# ---------------------------------------------------------------------------
# the ten-line example of docs/TESTING.md (and the README) runs as written

def test_docs_example():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "TESTING.md").read_text()
    section = text.split("## Ten lines", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    namespace: dict = {}
    exec(compile(code, "docs/TESTING.md", "exec"), namespace)
    test = namespace["test_what_goes_in_comes_out"]
    _capped(15)(test)()
