"""chunkstore.testing: the reference model and the store-vs-model state machine.

The state machine runs on several option sets (tiny blocks and chunks with
a short out-of-order window and retention, so every write, seal, retention
and compaction path runs; the defaults; a WAL- and memory-bound set), and
must catch deliberately broken stores (one losing its newest entry on
reopen, one whose metric queries miscount).  Metric queries on the model
have their own tests in ``test_testing_reference_metric.py``.  The model itself is checked
against the real store on fixed cases and on the bundled corpus.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

import chunkstore
from chunkstore import corpus
from chunkstore.retention import RetentionPolicy
from chunkstore.testing import ReferenceStore, StoreStateMachine, _exact_selector


def _machine_settings(**overrides) -> settings:
    """A quarter of the profile's examples (each runs up to 25 steps on disk)."""
    base = dict(
        max_examples=max(5, settings.default.max_examples // 4),
        stateful_step_count=25,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
    )
    base.update(overrides)
    return settings(**base)


class TinyBlocksMachine(StoreStateMachine):
    """Every code path: blocks of a few entries, chunks of a few blocks, a 2 minute
    out-of-order window and 32 minute retention inside the machine's hour of data."""

    options = dict(block_size=256, chunk_target_size=1024, max_line_size=4096,
                   out_of_order_window="2m", retention=RetentionPolicy(period="32m"))


class DefaultsMachine(StoreStateMachine):
    """chunkstore's defaults (plus the machine's fsync="always"): everything stays in the head."""


class SealingMachine(StoreStateMachine):
    """Sealing by age, WAL size and memory budget; uncompressed blocks; per-stream retention."""

    options = dict(block_size=1024, chunk_target_size=4096, codec="none", chunk_max_age="4m",
                   wal_segment_size=4096, head_memory_budget=4096, fsync="never",
                   retention=RetentionPolicy(period="1h", rules=[('{app=~".+"}', "25m")]))


@pytest.mark.parametrize("machine", [TinyBlocksMachine, DefaultsMachine, SealingMachine],
                         ids=lambda m: m.__name__)
def test_store_agrees_with_the_model(machine):
    run_state_machine_as_test(machine, settings=_machine_settings())


class DropsNewestEntryOnReopen(StoreStateMachine):
    """A broken store: every reopen loses the newest entry (as a torn WAL tail would)."""

    def make_store(self, path):
        existed = os.path.exists(path)
        store = super().make_store(path)
        if existed:
            newest = None
            for labels in self.pool:
                sel = _exact_selector(labels)
                for entry in store.query(sel, limit=1):
                    if newest is None or entry.ts > newest[1]:
                        newest = (sel, entry.ts)
            if newest is not None:
                store.delete(newest[0], newest[1], newest[1] + 1)
        return store


def test_machine_finds_an_injected_bug():
    # no shrinking: a failing run on disk shrinks slowly, and finding it is the point
    with pytest.raises(AssertionError, match="differ"):
        run_state_machine_as_test(DropsNewestEntryOnReopen, settings=_machine_settings(
            max_examples=200, stateful_step_count=20, phases=[Phase.generate],
            report_multiple_bugs=False))


class _MiscountingStore:
    """A store whose range queries count one entry too few in windows holding two or more."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def query_range(self, *args, **kwargs):
        out = self._store.query_range(*args, **kwargs)
        for series in out:
            series.points = [(t, v - 1 if v >= 2 else v) for t, v in series.points]
        return out


class MiscountsMetrics(StoreStateMachine):
    def make_store(self, path):
        return _MiscountingStore(super().make_store(path))


def test_machine_finds_a_metric_query_bug():
    with pytest.raises(AssertionError, match="metric results differ"):
        run_state_machine_as_test(MiscountsMetrics, settings=_machine_settings(
            max_examples=200, stateful_step_count=20, phases=[Phase.generate],
            report_multiple_bugs=False))


def test_module_split_keeps_every_name():
    # chunkstore.testing re-exports the model (_reference, _reference_metric)
    # and the machine (_state_machine), private helpers and old imports included
    import chunkstore.testing as testing

    for name in ["ReferenceStore", "ReferenceSamples", "StoreStateMachine", "_exact_selector",
                 "_Held", "_Stream", "_validate_entry", "_LogQuery", "_ReferenceStreamHandle",
                 "_entry_ts", "_MAX_METADATA_PAIRS", "_MINUTE", "_DELTA_MS", "_outcome",
                 "_entry_row", "_key", "_raw_key", "_same_result", "Labels", "Entry", "Stats",
                 "PushResult", "Pipeline", "RuleBasedStateMachine", "rule", "st", "cs"]:
        assert hasattr(testing, name), name
    assert set(testing.__all__) == {"ReferenceStore", "ReferenceSamples", "StoreStateMachine"}
    assert StoreStateMachine.__module__ == "chunkstore._state_machine"


def test_subclass_hooks():
    class Custom(StoreStateMachine):
        options = {"block_size": 512, "fsync": "never"}

    assert Custom.store_options() == {"fsync": "never", "maintenance_interval": 0,
                                      "block_size": 512}
    assert StoreStateMachine.store_options()["fsync"] == "always"


# ---------------------------------------------------------------------------
# the model on its own, against the store

def _both(tmp_path, **options):
    return (chunkstore.open(tmp_path / "s", maintenance_interval=0, **options),
            ReferenceStore(**options))


def test_model_rejects_like_the_store(tmp_path):
    store, ref = _both(tmp_path, max_line_size=8, out_of_order_window="1s")
    s = 10**9
    batch = [
        ({"app": "a"}, [(100 * s, "ok"), (50 * s, "far back"), (99 * s, "x" * 9), (101 * s, "ok"),
                        (101 * s, "ok"), ("soon", "bad ts"), (102 * s, b"\xff"), (103 * s, 5),
                        (104 * s, "m", {"k": 1}), (105 * s,), (106 * s, "mm", {"k": "v"})]),
        ({"__bad": "x"}, [(1, "a"), (2, "b")]),
        ({"app": "a"}, [(99 * s, "back"), (98 * s, "too far")]),
    ]
    got, want = store.push(batch), ref.push(batch)
    assert got.accepted == want.accepted == 5
    assert got.rejected == want.rejected
    for args in [({"app": "a"}, "y" * 20), ({"app": "a"}, "z"), ({"1": "x"}, "z")]:
        outcomes = []
        for target in (store, ref):
            try:
                target.append(*args, ts=10 * s)
                outcomes.append(None)
            except chunkstore.ChunkstoreError as exc:
                outcomes.append((type(exc), str(exc)))
        assert outcomes[0] == outcomes[1] and outcomes[0] is not None
    store.close()


def test_model_answers_like_the_store_on_the_corpus(tmp_path):
    store, ref = _both(tmp_path, block_size=2048, chunk_target_size=8192)
    raw = list(corpus.generate(seed=5, n_lines=800, duration_ns=600 * 10**9))
    for labels, ts, line, meta in raw:
        store.append(labels, line, ts=ts, metadata=meta)
        ref.append(labels, line, ts=ts, metadata=meta)
    t0 = raw[0][1]
    queries = [
        '{app="api"}',
        '{app=~".+"} |= "error"',
        '{app="api"} | logfmt | status >= 500',
        '{app="payments"} | json | amount_cents > 5000 | keep app, amount_cents',
        '{app=~"web|gateway"} |~ "GET|POST" | pattern "<ip> - <_>"',
        '{namespace="shop"} != "info" | line_format "{{.app}}: {{__line__}}"',
    ]
    for q in queries:
        for direction in ("forward", "backward"):
            for start, end, limit in [(None, None, None), (t0 + 10**11, t0 + 3 * 10**11, 7)]:
                got = [e.as_tuple() for e in store.query(q, start, end, limit=limit,
                                                         direction=direction)]
                want = [e.as_tuple() for e in ref.query(q, start, end, limit=limit,
                                                        direction=direction)]
                assert [g[0] for g in got] == [w[0] for w in want], q
                if limit is None:
                    assert sorted(got) == sorted(want), q
    assert store.labels() == ref.labels()
    assert store.label_values("app") == ref.label_values("app")
    assert store.series('{env="prod"}') == ref.series('{env="prod"}')
    g, w = store.stats(), ref.stats()
    assert (g.streams, g.entries, g.bytes_raw, g.min_ts, g.max_ts) == (
        w.streams, w.entries, w.bytes_raw, w.min_ts, w.max_ts)
    got = store.delete('{app="api"} |= "error"', t0, t0 + 3 * 10**11)
    want = ref.delete('{app="api"} |= "error"', t0, t0 + 3 * 10**11)
    assert got.entries == want.entries > 0
    store.compact()
    ref.compact()
    assert sorted(e.as_tuple() for e in store.query('{app="api"}')) == sorted(
        e.as_tuple() for e in ref.query('{app="api"}'))
    store.close()


def test_model_retention_and_close():
    policy = RetentionPolicy(period="1h", rules=[('{env="dev"}', "10m")])
    now = 10**13
    ref = ReferenceStore(retention=policy, clock=lambda: now)
    m = 60 * 10**9
    ref.push([({"app": "a", "env": "dev"}, [(now - 20 * m, "old"), (now - 5 * m, "new")]),
              ({"app": "a", "env": "prod"}, [(now - 20 * m, "kept")])])
    assert [e.line for e in ref.query('{app="a"}', direction="forward")] == ["kept", "new"]
    assert ref.stats().entries == 3  # expired, but not yet removed
    assert ref.apply_retention().entries == 1
    assert ref.stats().entries == 2 and ref.removed_entries == 1
    with pytest.raises(ValueError, match="max_bytes"):
        ReferenceStore(retention=RetentionPolicy(max_bytes="1MiB"))
    ref.close()
    with pytest.raises(chunkstore.StoreClosedError):
        ref.append({"app": "a"}, "x", ts=1)
