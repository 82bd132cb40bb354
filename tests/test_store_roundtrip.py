"""Entries written through every write API come back exactly, across reopen."""

from __future__ import annotations

import random

import pytest

import chunkstore
from chunkstore import EntryRejected, LabelError


def all_entries(store, selector, **kw):
    return [(e.ts, e.raw, dict(e.labels)) for e in store.query(selector, direction="forward", **kw)]


def test_append_query_single_stream(store_path):
    with chunkstore.open(store_path) as s:
        s.append({"app": "api"}, "hello", ts=10)
        s.append({"app": "api"}, b"world\xff", ts=20)
        got = all_entries(s, '{app="api"}')
    assert got == [(10, b"hello", {"app": "api"}), (20, b"world\xff", {"app": "api"})]


def test_backward_is_default_and_newest_first(store_path):
    with chunkstore.open(store_path) as s:
        for i in range(5):
            s.append({"app": "a"}, f"l{i}", ts=i)
        assert [e.ts for e in s.query('{app="a"}')] == [4, 3, 2, 1, 0]
        assert [e.ts for e in s.query('{app="a"}', limit=2)] == [4, 3]
        assert [e.ts for e in s.query('{app="a"}', direction="forward", limit=2)] == [0, 1]


@pytest.mark.parametrize("reopen", [False, True])
def test_many_streams_push_roundtrip(store_path, small_opts, reopen):
    rng = random.Random(7)
    model: dict[tuple, list] = {}
    s = chunkstore.open(store_path, **small_opts)
    for batch in range(20):
        streams = []
        for _ in range(5):
            app = f"app{rng.randrange(12)}"
            env = rng.choice(["prod", "dev"])
            key = (("app", app), ("env", env))
            base = model.get(key, [(0, b"")])[-1][0]
            entries = []
            for _ in range(rng.randrange(1, 30)):
                base += rng.randrange(1, 1000)
                line = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
                entries.append((base, line))
            model.setdefault(key, []).extend(entries)
            streams.append(({"app": app, "env": env}, entries))
        r = s.push(streams)
        assert r.rejected == []
        assert r.accepted == sum(len(e) for _, e in streams)
    if reopen:
        s.close()
        s = chunkstore.open(store_path, **small_opts)
    for key, entries in model.items():
        labels = dict(key)
        sel = "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"
        got = [(e.ts, e.raw) for e in s.query(sel, direction="forward")]
        assert got == entries, key
    total = sum(len(v) for v in model.values())
    assert len(list(s.query('{app=~"app.*"}'))) == total
    st = s.stats()
    assert st.entries == total and st.streams == len(model)
    s.close()


def test_merge_across_streams_by_time(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        s.push([({"app": "a"}, [(1, "a1"), (4, "a4"), (6, "a6")]),
                ({"app": "b"}, [(2, "b2"), (3, "b3"), (5, "b5")])])
        fwd = [e.line for e in s.query('{app=~"a|b"}', direction="forward")]
        assert fwd == ["a1", "b2", "b3", "a4", "b5", "a6"]
        assert [e.line for e in s.query('{app=~"a|b"}')] == fwd[::-1]
        assert [e.line for e in s.query('{app=~"a|b"}', start=3, end=6, direction="forward")] == [
            "b3", "a4", "b5"]


def test_stream_handle_and_rejects(store_path):
    with chunkstore.open(store_path, max_line_size=10) as s:
        h = s.stream({"app": "x"})
        h.append("short", ts=1)
        with pytest.raises(EntryRejected, match="line too long"):
            h.append("x" * 11, ts=2)
        with pytest.raises(LabelError):
            s.append({"__name__": "x"}, "l", ts=1)
        r = s.push([({"app": "x"}, [(3, "ok"), (4, "y" * 20), (5, 7), ("bad", "z")]),
                    ({"bad-name": "v"}, [(1, "a")]),
                    ({"app": "y"}, [(1, "fine")])])
        assert r.accepted == 2
        reasons = sorted(reason.split(":")[0] for _l, _t, reason in r.rejected)
        assert reasons == ["invalid timestamp", "labels", "line must be str or bytes",
                           "line too long"]
        assert [e.line for e in s.query('{app="x"}', direction="forward")] == ["short", "ok"]


def test_structured_metadata_in_labels(store_path):
    with chunkstore.open(store_path) as s:
        s.append({"app": "a"}, "x", ts=1, metadata={"trace_id": "abc"})
        s.push([({"app": "a"}, [(2, "y", {"user": "u1"}), (3, "z")])])
        got = [dict(e.labels) for e in s.query('{app="a"}', direction="forward")]
        assert got == [{"app": "a", "trace_id": "abc"}, {"app": "a", "user": "u1"}, {"app": "a"}]


def test_regression_metadata_labels_are_the_same_with_and_without_a_pipeline(store_path):
    # A selector with only literal filters runs no pipeline; its entries'
    # metadata labels were taken as stored ("trace.id", and "env" replacing the
    # stream's env) while every pipeline normalises names and suffixes a clash
    # with a stream label with "_extracted", as Loki's labels builder does.
    from chunkstore.testing import ReferenceStore

    want = {"app": "api", "env": "prod", "env_extracted": "dev", "trace_id": "abc"}
    ref = ReferenceStore()
    with chunkstore.open(store_path) as s:
        for st in (s, ref):
            st.append({"app": "api", "env": "prod"}, "hello", ts=1,
                      metadata={"trace.id": "abc", "env": "dev"})
        for q in ('{app="api"}', '{app="api"} |= "hello"', '{app="api"} |~ "hel+o"',
                  '{app="api"} | trace_id="abc"'):
            assert [dict(e.labels) for e in s.query(q)] == [want], q
            assert [dict(e.labels) for e in ref.query(q)] == [want], q


def test_datetime_timestamps(store_path):
    from datetime import datetime, timezone

    with chunkstore.open(store_path) as s:
        s.append({"app": "a"}, "x", ts=datetime(2024, 1, 1, tzinfo=timezone.utc))
        s.push([({"app": "a"}, [(datetime(2024, 1, 2), "y")])])
        ts = [e.ts for e in s.query('{app="a"}', direction="forward")]
        assert ts == [1704067200 * 10**9, 1704153600 * 10**9]


def test_labels_series_label_values(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        s.push([({"app": "a", "env": "prod"}, [(100, "x")]),
                ({"app": "b", "env": "dev"}, [(200, "y")]),
                ({"app": "c", "team": "t1"}, [(300, "z")])])
        assert s.labels() == ["app", "env", "team"]
        assert s.labels(start=150, end=250) == ["app", "env"]
        assert s.label_values("app") == ["a", "b", "c"]
        assert s.label_values("app", query='{env="prod"}') == ["a"]
        assert s.series('{app=~"a|c"}') == [{"app": "a", "env": "prod"}, {"app": "c", "team": "t1"}]
        assert s.series('{app=~".+"}', start=250) == [{"app": "c", "team": "t1"}]


def test_selector_regex_dot_matches_newline_in_label_values(store_path):
    # Prometheus' matchers compile `^(?s:re)$`: a value holding a newline is
    # still matched by `.+` (it was missed with `^(?:re)$`).
    with chunkstore.open(store_path) as s:
        s.append({"app": "multi\nline"}, "x", ts=1)
        s.append({"app": "plain"}, "y", ts=2)
        assert [e.line for e in s.query('{app=~".+"}', direction="forward")] == ["x", "y"]
        assert [e.line for e in s.query('{app=~"multi.line"}')] == ["x"]
        assert [e.line for e in s.query('{app=~".+", app!~"m.*"}')] == ["y"]


def test_reopen_after_close_keeps_everything(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        for i in range(3000):
            s.append({"app": "a"}, f"line {i}", ts=i)
    with chunkstore.open(store_path, **small_opts) as s:
        assert [e.ts for e in s.query('{app="a"}', direction="forward")] == list(range(3000))
        st = s.stats()
        assert st.chunks > 1 and st.head_entries == 0


def test_regression_close_leaves_no_sealed_wal_behind(store_path):
    # bench_ingest found 42 MB of fully sealed WAL left after close()
    with chunkstore.open(store_path, wal_segment_size=4096, block_size=1024,
                         chunk_target_size=4096) as s:
        for i in range(40):
            s.push([({"app": "a"}, [(i * 100 + k, "x" * 200) for k in range(20)])])
    wal = store_path / "wal"
    assert sum(p.stat().st_size for p in wal.glob("*.wal")) <= 16 * 2
    with chunkstore.open(store_path) as s:
        assert s.replay_report.wal_records == 0
        assert len(list(s.query('{app="a"}'))) == 800
