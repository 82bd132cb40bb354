"""Retention, deletion and compaction against a plain in-memory model (Hypothesis).

A ``RuleBasedStateMachine`` (as PyRoaringBitMap tests its bitmaps) drives one
store and a model — per stream, a ``{ts: line}`` dict — through a random
workload: pushes across three streams with timestamps inside the
out-of-order window, seals, deletes with and without line filters over
random ranges, compactions with random codecs, retention passes after the
clock moves on, close/reopen and a simulated crash.  Before and after every
compaction and retention pass, each stream's whole-range forward query must
equal the model exactly, ``store.verify().ok`` must hold and
``store.index.check()`` must pass.

The clock is simulated: ``chunkstore.timeutil.now_ns`` (retention,
compaction, deletes) and the querier's ``now_ns`` (which hides expired
entries) read ``self.clock``, so "now" moves only when a rule moves it and
the model knows exactly which entries are past retention.

Two restrictions keep the model exact without modelling chunk layout:

* timestamps are unique per stream: the order of equal timestamps across
  out-of-order chunks is not what this test is about;
* a stream never receives an entry at or before the end of a delete request
  that selected it: whether a tombstone also hides entries written after it
  depends on when compaction retires it (Loki has the same window), which a
  model without chunk layout cannot predict.

``HYPOTHESIS_PROFILE`` (``ci``/``dev``/``thorough``, see ``conftest.py``)
sets the example count; the thorough profile also runs longer workloads.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

import chunkstore
from chunkstore import _kernels, compaction, querier, timeutil
from chunkstore.chunkfile_format import SEGMENT_HEADER_LEN
from chunkstore.options import _CODECS
from chunkstore.retention import RetentionPolicy

S = 10**9
MIN = 60 * S
T0 = 1_700_000_000 * S  # the simulated clock starts here

STREAMS = (
    {"app": "api", "env": "prod"},
    {"app": "db", "env": "prod"},
    {"app": "web", "env": "dev"},
)
EXACT = ['{app="api", env="prod"}', '{app="db", env="prod"}', '{app="web", env="dev"}']
#: delete selectors and the streams (indexes into STREAMS) each one selects
SELECTORS = {
    '{app="api"}': (0,),
    '{env="prod"}': (0, 1),
    '{app=~"db|web"}': (1, 2),
    '{env=~".+"}': (0, 1, 2),
}
#: delete line filters and the model's reading of each
FILTERS = {
    "": lambda line: True,
    ' |= "err"': lambda line: "err" in line,
    ' != "err"': lambda line: "err" not in line,
    ' |~ "user=[12] "': lambda line: re.search(r"user=[12] ", line) is not None,
    ' |= "user=3" != "warn"': lambda line: "user=3" in line and "warn" not in line,
}
CODECS = ["lz4hc", "lz4", "none", "zstd"]
try:
    import zstandard  # noqa: F401
except ImportError:  # an optional extra: test the other codecs without it
    CODECS.remove("zstd")

#: retention policies drawn once per example (None: keep forever)
POLICIES = [
    None,
    dict(period="40m", rules=[('{env="dev"}', "15m")]),
    dict(period="25m", rules=[('{app="db"}', "1h", 1)]),
]

OPTIONS = dict(block_size=256, chunk_target_size=1024, chunk_max_age="10m",
               maintenance_interval=0, fsync="never")
WINDOW = 5 * MIN  # out-of-order window: chunk_max_age / 2
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")

entry_draws = st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from(["info", "warn", "err"]),
              st.integers(0, 4)),
    min_size=1, max_size=25)


class CompactionVsModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="chunkstore-compact-")
        self.path = os.path.join(self.dir, "store")
        self.clock = T0
        self._patches = [mock.patch.object(timeutil, "now_ns", lambda: self.clock),
                         mock.patch.object(querier, "now_ns", lambda: self.clock)]
        for p in self._patches:
            p.start()
        self.model: list[dict[int, str]] = [{} for _ in STREAMS]
        self.max_ts = [None] * len(STREAMS)  # newest ts ever accepted per stream
        self.delete_floor = [None] * len(STREAMS)
        self.counter = 0
        self.store = None

    def teardown(self):
        try:
            if self.store is not None:
                self.store.close()
        finally:
            for p in self._patches:
                p.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the model ------------------------------------------------------------
    def _period_ns(self, i):
        if self.policy is None:
            return None
        p = self.policy.period_for(STREAMS[i])
        return None if p is None else int(p * 1e9)

    def _cutoff(self, i):
        p = self._period_ns(i)
        return None if p is None else self.clock - p

    def _visible(self, i):
        cutoff = self._cutoff(i)
        return sorted((ts, line) for ts, line in self.model[i].items()
                      if cutoff is None or ts >= cutoff)

    def _open(self):
        self.store = chunkstore.open(self.path, retention=self.policy, **OPTIONS)

    def check(self):
        s = self.store
        for i, sel in enumerate(EXACT):
            got = [(e.ts, e.line) for e in s.query(sel, direction="forward")]
            assert got == self._visible(i), f"stream {sel}"
        rep = s.verify()
        assert rep.ok, str(rep)
        s.index.check()  # includes the per-segment live-chunk counts
        # a segment file exists exactly while a live chunk points into it
        assert self._segment_files() == set(s.index.segment_live_bytes())

    # -- rules ------------------------------------------------------------------
    @initialize(policy=st.sampled_from(POLICIES))
    def start(self, policy):
        self.policy = None if policy is None else RetentionPolicy(**policy)
        self._open()

    @rule(batch=st.lists(st.tuples(st.integers(0, len(STREAMS) - 1), entry_draws),
                         min_size=1, max_size=3))
    def push(self, batch):
        """Entries between the stream's out-of-order floor and a minute past now."""
        pushes = []
        for i, draws in batch:  # a stream may come twice: later pairs see earlier ones
            lo = self.clock - WINDOW
            if self.max_ts[i] is not None:
                lo = max(lo, self.max_ts[i] - WINDOW + 1)
            if self.delete_floor[i] is not None:
                lo = max(lo, self.delete_floor[i])
            hi = max(lo, self.clock) + MIN
            entries = []
            for x, level, user in draws:
                ts = lo + (hi - lo) * x // 10**6
                if ts in self.model[i]:
                    continue
                self.counter += 1
                line = f"{level} user={user} n={self.counter}"
                entries.append((ts, line))
                self.model[i][ts] = line
                self.max_ts[i] = ts if self.max_ts[i] is None else max(self.max_ts[i], ts)
            if entries:
                pushes.append((STREAMS[i], entries))
        result = self.store.push(pushes)
        assert not result.rejected, result.rejected

    @rule()
    def seal(self):
        self.store._seal(list(self.store.heads.values()))

    @rule(minutes=st.integers(0, 20))
    def tick(self, minutes):
        self.clock += minutes * MIN

    @rule(selector=st.sampled_from(sorted(SELECTORS)), flt=st.sampled_from(sorted(FILTERS)),
          a=st.integers(0, 1000), b=st.integers(0, 1000), open_start=st.booleans())
    def delete(self, selector, flt, a, b, open_start):
        picked = SELECTORS[selector]
        all_ts = [ts for m in self.model for ts in m] or [self.clock]
        lo, hi = min(all_ts) - S, max(all_ts) + S
        start = lo + (hi - lo) * min(a, b) // 1000
        end = lo + (hi - lo) * max(a, b) // 1000 + 1
        if open_start:
            start = None
        keep = FILTERS[flt]
        gone = []
        for i in picked:
            cutoff = self._cutoff(i)
            for ts, line in self.model[i].items():
                if (start is None or ts >= start) and ts < end and keep(line):
                    gone.append((i, ts, cutoff is None or ts >= cutoff))
        rep = self.store.delete(selector + flt, start, end)
        event(f"delete: entries {'>0' if rep.entries else '0'}, chunks dropped "
              f"{'>0' if rep.chunks else '0'}")
        # the report counts what disappears from queries: visible entries only
        assert rep.entries == sum(visible for _i, _ts, visible in gone)
        for i, ts, _visible in gone:
            del self.model[i][ts]
        for i in picked:
            f = self.delete_floor[i]
            self.delete_floor[i] = end if f is None else max(f, end)

    @rule(codec=st.sampled_from(CODECS))
    def compact(self, codec):
        self.check()
        before = set(self.store.index.chunks)
        rep = self.store.compact(codec=codec)
        event(f"compact: entries removed {'>0' if rep.entries_removed else '0'}, tombstones "
              f"applied {'>0' if rep.tombstones_applied else '0'}")
        self.check()
        chunks = self.store.index.chunks
        codec_id = _CODECS[codec]
        for ref in chunks.values():  # every stream with another codec was recompressed
            assert {b.codec for b in self.store.chunk_meta(ref).blocks} == {codec_id}
        live = {}
        for ref in chunks.values():
            live[ref.segment] = live.get(ref.segment, 0) + ref.length
        assert self._segment_files() == set(live)  # dead segment files are gone
        # what compaction replaced never stays on disk in a segment it wrote to
        for name in {chunks[c].segment for c in set(chunks) - before}:
            size = os.path.getsize(os.path.join(self.path, name))
            assert size == SEGMENT_HEADER_LEN + live[name], name

    def _segment_files(self):
        root = os.path.join(self.path, "segments")
        if not os.path.isdir(root):
            return set()
        return {f"segments/{d}/{f}" for d in os.listdir(root)
                for f in os.listdir(os.path.join(root, d)) if f.endswith(".seg")}

    @rule(minutes=st.integers(0, 40), dry_run=st.booleans())
    def retention(self, minutes, dry_run):
        self.clock += minutes * MIN
        self.check()
        before = dict(self.store.index.chunks)
        rep = self.store.apply_retention(now=self.clock, dry_run=dry_run)
        event(f"retention: chunks {'>0' if rep.chunks else '0'}, segments removed "
              f"{'>0' if rep.segments_removed else '0'}")
        self.check()
        if dry_run or self.policy is None:
            assert set(self.store.index.chunks) == set(before)
            return
        # every chunk whose newest entry is past its stream's cutoff went, no other
        gone = set(before) - set(self.store.index.chunks)
        for cid, ref in before.items():
            labels = self.store.index.streams[ref.stream_id].labels
            cutoff = self.policy.cutoff_ns(labels, self.clock)
            assert (cid in gone) == (cutoff is not None and ref.max_ts < cutoff)
        assert rep.chunks == len(gone)

    @rule()
    def reopen(self):
        self.store.close()
        self._open()

    @rule()
    def crash(self):
        """Handles dropped without sealing or syncing; the reopen replays the WAL."""
        s = self.store
        s._crash_for_tests()
        # _crash_for_tests leaves the index log and segment writers open (a
        # killed process would lose them); release the descriptors so long
        # runs do not hit the open-file limit.  What was written is in the
        # page cache either way, as after a real kill -9.
        s._index_log.close()
        for seg in s._segments.values():
            seg.close()
        self._open()


CompactionVsModel.TestCase.settings = settings(
    settings.default, stateful_step_count=80 if PROFILE == "thorough" else 30)
TestCompactionVsModel = CompactionVsModel.TestCase


def _segment_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f))
               for d, _dirs, files in os.walk(os.path.join(path, "segments")) for f in files)


def test_compaction_reclaims_the_space_of_the_chunks_it_replaces(tmp_path):
    """Recompressed chunks must not leave their old bytes behind in a live segment."""
    opts = dict(block_size=1024, chunk_target_size=4096, maintenance_interval=0)
    with chunkstore.open(tmp_path / "s", **opts) as s:
        for r in range(20):
            s.push([({"app": "a"}, [(r * 1000 + i, f"req {r} {i} status=200 " * 3)
                                    for i in range(40)])])
            s._seal(list(s.heads.values()))
        s.compact(codec="lz4hc")
        live = sum(c.length for c in s.index.chunks.values())
        files = len({c.segment for c in s.index.chunks.values()})
        assert _segment_bytes(tmp_path / "s") == live + files * SEGMENT_HEADER_LEN


def test_compaction_rewrites_segments_that_are_mostly_dead(tmp_path):
    """Space freed inside a shared segment (here by a delete) returns with the next compaction."""
    day = 86400 * S
    opts = dict(maintenance_interval=0, codec="lz4hc")
    now = T0
    with chunkstore.open(tmp_path / "s", **opts) as s:
        for h in range(4):  # one segment of one day: four streams, one expires
            base = now - 2 * day + h * 3600 * S
            s.push([({"app": f"a{k}"}, [(base + i * S, f"line {k} {i} " * 4) for i in range(200)])
                    for k in range(4)])
            s._seal(list(s.heads.values()))
        s.push([({"app": "a0"}, [(now - 1 * S, "recent")])])
        s._seal(list(s.heads.values()))
        s.delete('{app=~"a1|a2|a3"}', now - 3 * day, now)  # drops their chunks, no rewrite
        before = _segment_bytes(tmp_path / "s")
        s.compact(codec="lz4hc")
        live = sum(c.length for c in s.index.chunks.values())
        files = len({c.segment for c in s.index.chunks.values()})
        assert _segment_bytes(tmp_path / "s") == live + files * SEGMENT_HEADER_LEN < before
        assert [e.line for e in s.query('{app=~".+"}')][0] == "recent"
        assert s.verify().ok


@pytest.mark.parametrize("query", ['{app="a"}', '{app="a"} |= "a "'])
def test_deleted_entries_stay_gone_after_index_snapshot_and_crash(tmp_path, query):
    """The index-log snapshot must keep each stream's sealed LSN, or the WAL resurrects data.

    Stream ``b`` keeps the only WAL segment alive (its entry stays in the
    head); all of stream ``a`` is deleted (chunks dropped, or emptied by
    compaction); enough seals make compaction snapshot the index log; a crash
    then replays the WAL on open, where LSNs at or below a stream's sealed LSN
    are skipped.
    """
    from chunkstore.index_log import read_index_log

    opts = dict(maintenance_interval=0, block_size=256, chunk_target_size=1024)
    path = tmp_path / "s"
    s = chunkstore.open(path, **opts)
    s.push([({"app": "b"}, [(0, "b keeps the WAL segment")])])
    for r in range(80):
        s.push([({"app": "a"}, [(r * 10 * S + i, f"a {r} {i}") for i in range(5)])])
        s._seal([h for h in s.heads.values() if h.labels.get("app") == "a"])
    s.delete(query)
    s.compact()
    records, _end, _problem = read_index_log(os.path.join(path, "index.log"))
    assert len(records) < 10  # the log was snapshot
    assert [e.line for e in s.query('{app=~".+"}')] == ["b keeps the WAL segment"]
    s._crash_for_tests()
    with chunkstore.open(path, **opts) as s:
        assert [e.line for e in s.query('{app=~".+"}')] == ["b keeps the WAL segment"]


# -- re-cutting blocks ----------------------------------------------------------------------


def _blocks_by_stream(store):
    """``{stream labels: [(BlockMeta, ref), ...]}`` of every live chunk, by block min_ts."""
    out = {}
    for ref in store.index.chunks.values():
        labels = str(store.index.streams[ref.stream_id].labels)
        out.setdefault(labels, []).extend((bm, ref) for bm in store.chunk_meta(ref).blocks)
    for blocks in out.values():
        blocks.sort(key=lambda b: (b[0].min_ts, b[0].max_ts))
    return out


def _entries(store):
    """Every entry of the store as (ts, raw, labels incl. metadata), in query order."""
    return [(e.ts, e.raw, tuple(sorted(e.labels.items())))
            for e in store.query('{app=~".+"}', direction="forward")]


def _fill(store, streams=2, rounds=15, per_round=200, line_bytes=40):
    n = 0
    for r in range(rounds):
        batch = []
        for k in range(streams):
            entries = []
            for i in range(per_round):
                n += 1
                entries.append((T0 + n * 1_000_000, f"s{k} r{r} i{i} ".ljust(line_bytes, "x")))
            batch.append(({"app": f"a{k}"}, entries))
        store.push(batch)
        store._seal(list(store.heads.values()))


def test_compaction_recuts_entries_into_blocks_of_compact_block_size(tmp_path):
    cbs = 8192
    opts = dict(block_size=512, chunk_target_size=16384, compact_block_size=cbs,
                maintenance_interval=0, fsync="never")
    with chunkstore.open(tmp_path / "s", **opts) as s:
        _fill(s, rounds=60, per_round=25)  # 120 small chunks of one block each
        before = _entries(s)
        n_before = sum(len(b) for b in _blocks_by_stream(s).values())
        rep = s.compact(codec="lz4hc")
        assert rep.blocks_copied == 0 and rep.blocks_reencoded == n_before
        blocks = _blocks_by_stream(s)
        assert rep.blocks_written == sum(len(b) for b in blocks.values()) < n_before / 4
        for stream_blocks in blocks.values():
            sizes = [bm.raw_len for bm, _ref in stream_blocks]
            # every block but a stream's last is full; the cut estimates 8 bytes of
            # varints per entry, these entries take 4 (1 ms apart, short lines)
            assert all(0.85 * cbs <= n <= cbs + 16 for n in sizes[:-1]), sizes
            assert 0 < sizes[-1] <= cbs + 16
            assert all(bm.codec == _CODECS["lz4hc"] for bm, _ref in stream_blocks)
        assert _entries(s) == before
        assert s.verify().ok
        s.index.check()
        assert s.compact(codec="lz4hc").chunks_before == 0  # nothing left to do
    with chunkstore.open(tmp_path / "s", **opts) as s:
        assert _entries(s) == before


def test_compact_block_size_zero_means_the_block_size(tmp_path):
    opts = dict(block_size=1024, chunk_target_size=16384, compact_block_size=0,
                maintenance_interval=0, fsync="never")
    with chunkstore.open(tmp_path / "s", **opts) as s:
        _fill(s, rounds=6, per_round=100)
        before = _entries(s)
        s.compact(codec="zstd" if "zstd" in CODECS else "lz4hc")
        for stream_blocks in _blocks_by_stream(s).values():
            sizes = [bm.raw_len for bm, _ref in stream_blocks]
            assert all(0.85 * 1024 <= n <= 1024 + 16 for n in sizes[:-1]), sizes
        assert _entries(s) == before


def test_big_blocks_in_the_target_codec_are_copied_with_their_token_filters(tmp_path):
    """Only the block a delete touches is rebuilt; the others keep their bytes and filters.

    ``block_filter`` is replaced by a stand-in (k = 1 and 8 bytes of the raw
    block's hash: well-formed, never read back by a query here), and the
    blocks handed to ``encode_chunk`` are recorded: a new block carries
    ``block_filter`` of its raw bytes, a copied block the filter it had.
    """
    calls = []
    real_encode = compaction.encode_chunk

    def fake_filter(raw):
        return bytes([1]) + _kernels.xxh64(bytes(raw)).to_bytes(8, "little")

    def recording_encode(fingerprint, labels, blocks):
        assert all(len(b) == 6 for b in blocks)
        calls.extend(blocks)
        return real_encode(fingerprint, labels, blocks)

    opts = dict(block_size=512, chunk_target_size=16384, compact_block_size=4096,
                maintenance_interval=0, fsync="never")
    with mock.patch.object(compaction, "block_filter", fake_filter), \
            mock.patch.object(compaction, "encode_chunk", recording_encode):
        with chunkstore.open(tmp_path / "s", **opts) as s:
            _fill(s, streams=1, rounds=10)
            s.compact(codec="lz4hc")
            first = {b[0]: b[5] for b in calls}
            for stored, *_rest, tf in calls:
                raw = _kernels.block.decompress_block(stored)
                assert tf == fake_filter(raw)
            victim = "s0 r3 i7 "
            ts = next(e[0] for e in _entries(s) if victim in e[1].decode())
            s.delete('{app="a0"} |= "' + victim + '"', ts, ts + 1)  # touches one block
            calls.clear()
            rep = s.compact(codec="lz4hc")
            assert rep.entries_removed == 1 and rep.blocks_reencoded >= 1
            # the touched block, a stream's small tail block and what they re-cut into
            assert rep.blocks_copied >= len(first) - 4
            copied = [b for b in calls if b[0] in first]  # (a re-cut tail may match too)
            assert len(copied) >= rep.blocks_copied
            if hasattr(s.segment_reader(next(iter(s.index.chunks.values())).segment),
                       "read_filters"):
                assert all(b[5] == first[b[0]] for b in copied)
            assert not any(victim in e[1].decode() for e in _entries(s))
            assert s.verify().ok


def test_a_chunk_never_holds_more_blocks_than_the_format_allows(tmp_path):
    opts = dict(block_size=512, chunk_target_size=1 << 20, compact_block_size=600,
                maintenance_interval=0, fsync="never")
    with mock.patch.object(compaction, "MAX_BLOCKS_PER_CHUNK", 3):
        with chunkstore.open(tmp_path / "s", **opts) as s:
            _fill(s, streams=1, rounds=4, per_round=50)
            before = _entries(s)
            s.compact(codec="lz4hc")
            metas = [s.chunk_meta(r) for r in s.index.chunks.values()]
            assert max(len(m.blocks) for m in metas) == 3
            assert _entries(s) == before


@pytest.mark.parametrize("value", [-1, 16 * 1024 * 1024 + 1, "17MiB"])
def test_compact_block_size_is_validated(tmp_path, value):
    with pytest.raises(ValueError, match="compact_block_size"):
        chunkstore.open(tmp_path / "s", compact_block_size=value)


def test_compact_block_size_accepts_a_size_string():
    from chunkstore.options import StoreOptions

    assert StoreOptions.from_kwargs(compact_block_size="2MiB").compact_block_size == 2 << 20
    assert StoreOptions().compact_block_size == 4 << 20


line_texts = st.one_of(st.sampled_from(["", "a", "err x", "user=1 ok"]),
                       st.text(alphabet="abc =\n", max_size=60),
                       st.binary(max_size=20).map(lambda b: b.hex() * 40))
metadata = st.one_of(st.none(), st.dictionaries(st.sampled_from(["trace", "user"]),
                                                st.text(alphabet="xyz", max_size=5),
                                                max_size=2))
seal_batches = st.lists(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 40), line_texts, metadata),
             min_size=1, max_size=30),
    min_size=1, max_size=6)


@given(batches=seal_batches, cbs=st.sampled_from([0, 64, 300, 4096]),
       codec=st.sampled_from(CODECS))
def test_compaction_returns_exactly_what_was_there(batches, cbs, codec):
    """Any entries (out of order, duplicates across chunks, metadata), any block size, any codec.

    Every batch is sealed into chunks of its own, so chunks overlap in time
    and may hold the same entry; compaction must keep every entry, drop none
    as a duplicate, and write each block in timestamp order.
    """
    d = tempfile.mkdtemp(prefix="chunkstore-recut-")
    try:
        opts = dict(block_size=256, chunk_target_size=1024, compact_block_size=cbs,
                    maintenance_interval=0, fsync="never")
        with chunkstore.open(os.path.join(d, "s"), **opts) as s:
            for batch in batches:
                pushes = {}
                for k, t, line, meta in batch:
                    entry = (T0 + t * S, line) if meta is None else (T0 + t * S, line, meta)
                    pushes.setdefault(k, []).append(entry)
                res = s.push([({"app": f"a{k}"}, es) for k, es in pushes.items()])
                assert not res.rejected, res.rejected
                s._seal(list(s.heads.values()))
            before = _entries(s)
            s.compact(codec=codec)
            after = _entries(s)
            assert sorted(after) == sorted(before)
            assert [e[0] for e in after] == sorted(e[0] for e in after)
            for stream_blocks in _blocks_by_stream(s).values():
                for bm, ref in stream_blocks:
                    raw = s.segment_reader(ref.segment).read_raw_block(ref.offset, bm)
                    ts = _kernels.block.decode_entries(raw)[0]
                    assert ts == sorted(ts) and (bm.min_ts, bm.max_ts) == (ts[0], ts[-1])
                    assert bm.codec == _CODECS[codec]
            assert s.verify().ok
            s.index.check()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_compaction_writes_no_token_filters_when_they_are_off(tmp_path):
    opts = dict(block_size=512, chunk_target_size=16384, compact_block_size=4096,
                maintenance_interval=0, fsync="never", token_filters=False)
    with chunkstore.open(tmp_path / "s", **opts) as s:
        _fill(s, streams=1, rounds=6, per_round=50)
        before = _entries(s)
        s.compact(codec="lz4hc")
        metas = [s.chunk_meta(r) for r in s.index.chunks.values()]
        assert all(getattr(bm, "filter_len", 0) == 0 for m in metas for bm in m.blocks)
        assert _entries(s) == before
