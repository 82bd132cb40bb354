"""Compaction: merge small chunks, apply deletes, recompress cold data.

For each stream, compaction rewrites the sealed chunks that need it — chunks
smaller than half the target size, chunks a tombstone touches, chunks whose
blocks are not in the target codec (default lz4-hc: slower to compress,
smaller, and faster to decompress than lz4) — into full-size chunks:

* a block no tombstone touches, already in the target codec and at least
  half of ``compact_block_size`` raw bytes is copied verbatim (its checksum
  verified first, its token filter kept);
* the entries of every other block are decoded, stripped of deleted and
  expired entries, and re-cut, in time order, into new blocks of about
  ``compact_block_size`` raw bytes (default 4 MiB, 16x the ingest block:
  larger blocks compress better), compressed in the target codec at the level
  in ``COMPACT_LEVELS`` (zstd with the match-finder settings of
  ``COMPACT_ZSTD_PARAMS``), each with its token filter at
  ``COMPACT_FILTER_BITS_PER_KEY`` bits per key (cold data: smaller filters,
  a few more false positives; see the constants);
* empty results are dropped.

Compaction also reclaims space: a segment file whose dead bytes (chunks
dropped by retention, deletes or an earlier compaction) reach a quarter of
its chunk bytes has every stream with a chunk in it rewritten, so the file
dies whole.  New chunks go to segment files of their own, never to one that
holds chunks being replaced, so every replaced segment can be unlinked (a
segment shared with live chunks keeps its dead bytes until the next pass
finds it over the threshold: at most 4/3 of the live bytes per file).

The switch is atomic: new chunks are written and fsynced into segment files
first; then one index-log append holds the new CHUNK records, the DROP of the
old chunks and the TOMBSTONE_DONE of fully applied deletes, fsynced; only then
are dead segment files unlinked.  A crash before the append leaves the old
state (the new chunk bytes are unreferenced garbage in a segment, removed
with it); after it, the new state.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add

from chunkstore import _kernels
from chunkstore.chunkfile import MAX_BLOCKS_PER_CHUNK, SegmentWriter, encode_chunk
from chunkstore.chunkfile_format import SEGMENT_HEADER_LEN
from chunkstore.index import ChunkRef
from chunkstore.index_log import CHUNK, TOMBSTONE_DONE
from chunkstore.options import _CODECS
from chunkstore.tokenfilter import PREFIX_LEN

__all__ = ["COMPACT_FILTER_BITS_PER_KEY", "COMPACT_LEVELS", "COMPACT_ZSTD_PARAMS",
           "CompactionReport", "block_filter", "compact"]

#: compression level of the blocks compaction builds, per codec id (0 or
#: absent: the codec's default; lz4-hc's is 9).  Measured on the 200 MB loghub
#: corpus of benchmarks/bench_retention.py (random-ns timestamps), the 64
#: re-cut 4 MiB blocks, zstd payload bytes vs gzip -6 of the raw text (27.62 MB)
#: and compression speed per core: level 3 1.21x (540 MB/s), 6 1.10x (165 MB/s),
#: 9 1.06x (110 MB/s), 11 1.05x (60 MB/s), 13 1.03x (25 MB/s), 16 0.97x
#: (6 MB/s).  Compaction holds the store lock, so its speed is also how long
#: writers wait: the default stays well above 20 MB/s per core.
COMPACT_LEVELS = {_kernels.block.CODEC_ZSTD: 9}

#: zstd parameters that replace the level's own when compaction compresses at
#: that level (names of ``zstandard.ZstdCompressionParameters``; a level not
#: listed uses zstd's parameters for it).  Log text is full of random digits
#: and ids, where a 5-byte match is mostly noise: matches of at least 6 bytes,
#: searched a little deeper, give 2.9% fewer payload bytes on the loghub corpus
#: above (2.7% on the synthetic app logs of chunkstore.corpus, 5.5% on the
#: loghub corpus with request ids) at about 0.7x the compression speed (75 MB/s
#: per core; the whole compaction about 53 MB/s per core instead of 67).  Tried
#: and not kept: long-distance matching (1% larger: a 4 MiB block is inside the
#: window anyway), other windows (within 0.4%), btopt settings (9-11% smaller
#: on the loghub corpus but at 10-20 MB/s per core, and no better than plain
#: level 16 on the app logs).  The payload stays one zstd frame with its
#: content size (FORMAT.md section 3).
COMPACT_ZSTD_PARAMS: dict[int, dict[str, int]] = {9: {"min_match": 6, "search_log": 6}}

#: Bloom filter bits per distinct key of the token filters of the blocks
#: compaction builds (blocks cut at ingest use ``tokenfilter.BITS_PER_KEY``,
#: 10).  Readers size a filter by its length and ``k`` byte, so any value is
#: the same format (FORMAT.md section 4).  Measured on the re-cut 4 MiB blocks
#: of the loghub corpus, false positives for one key (a short token) and for
#: two (a long token's ends): 10 bits 0.8% / 0.007%, filters 1.16% of the raw
#: bytes; 8 bits 2.2% / 0.05%, 0.93%; 6 bits 5.6% / 0.3%, 0.70%.  Cold data is
#: searched less often than it is stored: 8 bits saves a fifth of the filter
#: bytes (1.6% of the zstd store) for 1.4 more blocks scanned per 100 that a
#: short-token needle could skip.
COMPACT_FILTER_BITS_PER_KEY = 8


@dataclass
class CompactionReport:
    """What one compaction did."""

    streams: int = 0
    chunks_before: int = 0
    chunks_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    entries_removed: int = 0
    blocks_copied: int = 0
    blocks_reencoded: int = 0  # blocks decoded (re-cut, filtered or recompressed)
    blocks_written: int = 0  # new blocks built from their entries
    tombstones_applied: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_before / 1e6 / self.seconds if self.seconds else 0.0


def compact(store, *, codec: str = "lz4hc") -> CompactionReport:
    from chunkstore.deletion import applicable
    from chunkstore.retention import drop_chunks
    from chunkstore.store import chunk_record
    from chunkstore.timeutil import now_ns

    if codec not in _CODECS:
        raise ValueError(f"compact: unknown codec {codec!r} (one of {sorted(_CODECS)})")
    codec_id = _CODECS[codec]
    t0 = time.perf_counter()
    rep = CompactionReport()
    with store._lock:
        store._check_writable()
        now = now_ns()
        policy = store.retention_policy
        new_refs: list[ChunkRef] = []
        old_ids: list[int] = []
        segments: dict[str, SegmentWriter] = {}  # this compaction's own output files
        mostly_dead = _mostly_dead_segments(store)
        try:
            _compact_streams(store, rep, codec_id, now, policy, applicable, mostly_dead,
                             new_refs, old_ids, segments)
        except BaseException:
            for seg in segments.values():  # unreferenced: removed on the next open
                seg.close()
            raise
        # tombstones fully applied: no head data they could still cover
        done = []
        for tid, t in list(store._tombstones.items()):
            in_head = False
            for h in store.heads.values():
                if not h.empty and t.applies_to(h.labels):
                    lo, hi = h.bounds()
                    if t.start <= hi and t.end > lo:
                        in_head = True
                        break
            if not in_head:
                done.append(tid)
        if not old_ids and not done:
            rep.seconds = time.perf_counter() - t0
            return rep
        try:
            for seg in segments.values():
                seg.sync()
        except BaseException as exc:
            store._broken = exc
            raise
        records = [(CHUNK, chunk_record(r)) for r in new_refs]
        if done:
            records.append((TOMBSTONE_DONE, done))
        for r in new_refs:
            store.index.add_chunk(r)
        drop_chunks(store, old_ids, extra_records=records)
        for seg in segments.values():
            seg.close()
        for tid in done:
            store._tombstones.pop(tid, None)
        rep.tombstones_applied = len(done)
        _maybe_rewrite_index(store)
    rep.seconds = time.perf_counter() - t0
    return rep


def _mostly_dead_segments(store) -> set[str]:
    """Segments whose dead bytes are at least a quarter of their chunk bytes."""
    live = store.index.segment_live_bytes()
    out = set()
    for name, n in live.items():
        w = store._segments.get(name)
        try:
            size = w.size if w is not None else os.path.getsize(os.path.join(store.path, name))
        except OSError:
            continue
        dead = size - SEGMENT_HEADER_LEN - n
        if dead > 0 and 4 * dead >= size - SEGMENT_HEADER_LEN:
            out.add(name)
    return out


def _output_segment(store, segments: dict, min_ts: int) -> tuple[str, SegmentWriter]:
    """A new segment file of the day of ``min_ts`` holding only this compaction's chunks."""
    from chunkstore.store import _day_dir, ensure_day_dir

    day = _day_dir(min_ts)
    prefix = f"segments/{day}/"
    for name, seg in segments.items():
        if name.startswith(prefix) and seg.size < store.options.segment_max_size:
            return name, seg
    d = ensure_day_dir(store.path, day)
    seq = 1 + max((int(f[:-4]) for f in os.listdir(d) if f.endswith(".seg") and f[:-4].isdigit()),
                  default=0)
    name = f"{prefix}{seq:08d}.seg"
    seg = segments[name] = SegmentWriter(os.path.join(store.path, name))
    return name, seg


def _compact_streams(store, rep, codec_id, now, policy, applicable, mostly_dead,
                     new_refs, old_ids, segments) -> None:
    """Write the new chunks of every stream that needs it (nothing is switched yet)."""
    opts = store.options
    block_bytes = opts.compact_block_size or opts.block_size
    level = COMPACT_LEVELS.get(codec_id, 0)
    with_filters = getattr(opts, "token_filters", True)  # off: new chunks carry none
    for sid, entry in list(store.index.streams.items()):
        chunks = list(entry.chunks)
        if not chunks:
            continue
        tombs = applicable(store, entry.labels)
        cutoff = policy.cutoff_ns(entry.labels, now) if policy is not None else None
        plan = []
        dirty = False
        n_small = 0
        for ref in chunks:
            meta = store.chunk_meta(ref)
            touched = [t for t in tombs if t.start <= ref.max_ts and t.end > ref.min_ts]
            expired = cutoff is not None and ref.min_ts < cutoff
            recode = any(b.codec != codec_id for b in meta.blocks)
            n_small += ref.stored_bytes < opts.chunk_target_size // 2
            dirty = (dirty or bool(touched) or expired or recode
                     or ref.segment in mostly_dead)
            plan.append((ref, meta, touched))
        # one small chunk (a stream's tail) is fine; two or more are merged
        if not dirty and n_small < 2:
            continue
        rep.streams += 1
        blocks = []
        for ref, meta, touched in plan:
            rep.chunks_before += 1
            rep.bytes_before += ref.stored_bytes
            old_ids.append(ref.chunk_id)
            blocks.extend((bm, i, ref, meta, touched) for i, bm in enumerate(meta.blocks))
        # in time order, so the re-cut blocks follow each other in time
        blocks.sort(key=lambda b: (b[0].min_ts, b[0].max_ts))
        out_blocks = []  # (stored, n, min_ts, max_ts, text_len, token_filter)
        recut = _BlockCutter(block_bytes, codec_id, level, out_blocks, with_filters)
        filters: dict[int, list[bytes]] = {}  # chunk id -> its blocks' token filters
        for bm, i, ref, meta, touched in blocks:
            hit = [t for t in touched if t.start <= bm.max_ts and t.end > bm.min_ts]
            exp = cutoff is not None and bm.min_ts < cutoff
            reader = store.segment_reader(ref.segment)
            if (not hit and not exp and bm.codec == codec_id
                    and 2 * bm.raw_len >= block_bytes):
                # big enough and in the target codec: copied as it is
                recut.flush()
                stored = reader.read_block(ref.offset, bm, verify=True)
                tf = _kept_filter(reader, ref, meta, bm, i, filters) if with_filters else b""
                out_blocks.append((stored, bm.n_entries, bm.min_ts, bm.max_ts, bm.text_len, tf))
                rep.blocks_copied += 1
                continue
            raw = reader.read_raw_block(ref.offset, bm)
            ts_list, lines, metas = _kernels.block.decode_entries(raw)
            n = len(ts_list)
            if hit or exp:
                keep = [j for j, (ts, line, m) in enumerate(zip(ts_list, lines, metas, strict=True))
                        if not (exp and ts < cutoff)
                        and not any(t.covers(ts, line, m, entry.labels) for t in hit)]
                if len(keep) < n:
                    ts_list = [ts_list[j] for j in keep]
                    lines = [lines[j] for j in keep]
                    metas = [metas[j] for j in keep]
            rep.entries_removed += n - len(ts_list)
            rep.blocks_reencoded += 1
            recut.add(ts_list, lines, metas)
        recut.flush()
        rep.blocks_written += recut.written
        # pack blocks into chunks of about the target size, in time order
        out_blocks.sort(key=lambda b: (b[2], b[3]))
        group: list = []
        size = 0
        groups = []
        for b in out_blocks:
            group.append(b)
            size += len(b[0])
            if size >= opts.chunk_target_size or len(group) == MAX_BLOCKS_PER_CHUNK:
                groups.append(group)
                group, size = [], 0
        if group:
            groups.append(group)
        max_lsn = max(ref.max_lsn for ref, _m, _t in plan)
        for g in groups:
            data, cmeta = encode_chunk(entry.labels.fingerprint, entry.labels.canonical, g)
            name, seg = _output_segment(store, segments, cmeta.min_ts)
            offset = seg.append(data)
            ref = ChunkRef(store.next_chunk_id, sid, name, offset, len(data), cmeta.min_ts,
                           cmeta.max_ts, cmeta.n_entries, cmeta.text_bytes, len(data),
                           max_lsn)
            store.next_chunk_id += 1
            new_refs.append(ref)
            rep.chunks_after += 1
            rep.bytes_after += len(data)


def block_filter(raw_block) -> bytes:
    """The token filter of a block compaction builds (``COMPACT_FILTER_BITS_PER_KEY``)."""
    return _kernels.tokens.block_filter(raw_block, COMPACT_FILTER_BITS_PER_KEY, PREFIX_LEN)


def compress_block(raw: bytes, codec_id: int, level: int) -> bytes:
    """The stored block (FORMAT.md section 3) of a raw block compaction built:
    the kernel's ``compress_block`` with the ``COMPACT_ZSTD_PARAMS`` of its level."""
    params = COMPACT_ZSTD_PARAMS.get(level) if codec_id == _kernels.block.CODEC_ZSTD else None
    return _kernels.block.compress_block(raw, codec_id, level, zstd_params=params)


def _kept_filter(reader, ref, meta, bm, i: int, cache: dict) -> bytes:
    """The token filter of block ``i`` of a chunk, for a copy of the block (b"": none).

    The chunk's filter section is read once, on the first block copied from
    that chunk (chunk version 1 has none).
    """
    if not bm.filter_len:
        return b""
    got = cache.get(ref.chunk_id)
    if got is None:
        got = cache[ref.chunk_id] = reader.read_filters(meta)
    return got[i]


#: estimated raw bytes of an entry beyond its line: the ts and length varints
#: of a typical entry (FORMAT.md section 2); only where blocks are cut depends on it
_ENTRY_OVERHEAD = 8


def _meta_bytes(m) -> int:
    """Raw bytes of one entry's metadata pairs (at most: every varint counted as 5 bytes)."""
    return 2 + sum(10 + len(k) + len(v) for k, v in m)


class _BlockCutter:
    """Re-cuts a stream's entries into blocks of about ``block_bytes`` raw bytes.

    Entries arrive a decoded block at a time, blocks in order of their first
    timestamp; a block is cut once the next entry would take it past
    ``block_bytes`` (a block holds at least one entry, so a single entry larger
    than that is a block of its own: still within the 64 MiB raw limit, since
    it came from a valid block).  Entries are sorted by timestamp (stable)
    before a cut when the input blocks overlapped in time.  Each finished
    block is compressed, given its token filter (b"" without ``with_filters``),
    and appended to ``out`` as the 6-tuple ``encode_chunk`` takes.
    """

    def __init__(self, block_bytes: int, codec_id: int, level: int, out: list,
                 with_filters: bool = True):
        self.block_bytes = block_bytes
        self.codec_id = codec_id
        self.level = level
        self.out = out
        self.with_filters = with_filters
        self.written = 0
        self._clear()

    def _clear(self) -> None:
        self.ts: list[int] = []
        self.lines: list[bytes] = []
        self.metas: list = []
        self.sizes: list[int] = []
        self.size = 0
        self.ordered = True

    def add(self, ts_list: list[int], lines: list[bytes], metas: list) -> None:
        if not ts_list:
            return
        if self.ts and ts_list[0] < self.ts[-1]:
            self.ordered = False
        # C-level maps: this runs once per entry of every rewritten stream
        sizes = list(map(add, map(len, lines), repeat(_ENTRY_OVERHEAD, len(lines))))
        if any(metas):
            sizes = list(map(add, sizes, [_meta_bytes(m) if m else 0 for m in metas]))
        self.ts += ts_list
        self.lines += lines
        self.metas += metas
        self.sizes += sizes
        self.size += sum(sizes)
        if self.size > self.block_bytes:
            self._cut(final=False)

    def flush(self) -> None:
        """Write out every pending entry (before a block copied verbatim, or at the end)."""
        if self.ts:
            self._cut(final=True)

    def _cut(self, final: bool) -> None:
        if not self.ordered:
            order = sorted(range(len(self.ts)), key=self.ts.__getitem__)
            self.ts = [self.ts[i] for i in order]
            self.lines = [self.lines[i] for i in order]
            self.metas = [self.metas[i] for i in order]
            self.sizes = [self.sizes[i] for i in order]
            self.ordered = True
        ends = list(accumulate(self.sizes))
        a = 0
        while a < len(ends):
            base = ends[a - 1] if a else 0
            if not final and ends[-1] - base <= self.block_bytes:
                break  # the rest waits for more entries
            b = max(a + 1, bisect_right(ends, base + self.block_bytes, a))
            self._emit(a, b)
            a = b
        rest = len(ends) - a
        if rest == 0:
            self._clear()
        elif a:
            del self.ts[:a], self.lines[:a], self.metas[:a], self.sizes[:a]
            self.size = sum(self.sizes)

    def _emit(self, a: int, b: int) -> None:
        ts = self.ts[a:b]
        lines = self.lines[a:b]
        metas = self.metas[a:b]
        raw = _kernels.block.encode_entries(ts, lines, metas if any(metas) else None)
        stored = compress_block(raw, self.codec_id, self.level)
        self.out.append((stored, b - a, ts[0], ts[-1], sum(map(len, lines)),
                         block_filter(raw) if self.with_filters else b""))
        self.written += 1



def _maybe_rewrite_index(store) -> None:
    """Snapshot the index log when dead records outnumber live ones."""
    from chunkstore.index_log import DROP, STREAM, TOMBSTONE
    from chunkstore.store import chunk_record

    live = len(store.index.chunks) + len(store.index.streams) + len(store._tombstones)
    store._commit_seals()  # the rewrite replaces the log: queued records first
    if store._index_log.records_written < 2 * live + 64:
        return
    records = []
    for sid in sorted(store._logged_streams):
        e = store.index.streams.get(sid)
        if e is not None:
            records.append((STREAM, [sid, e.labels.fingerprint, e.labels.canonical]))
    for ref in store.index.chunks.values():  # in chunk-id order
        records.append((CHUNK, chunk_record(ref)))
    # Replay skips WAL entries at or below a stream's sealed LSN, which it
    # learns from CHUNK records.  A stream whose newest sealed chunks were
    # dropped would lose that LSN with them, and entries still in the WAL
    # (held there by another stream's head) would come back on open.  An empty
    # CHUNK record dropped at once carries the LSN through the snapshot.
    dropped = []
    for sid in sorted(store._logged_streams):
        e = store.index.streams.get(sid)
        if e is None or e.flushed_lsn <= e.sealed_max_lsn():
            continue
        cid = store.next_chunk_id
        store.next_chunk_id += 1
        records.append((CHUNK, [cid, sid, "", 0, 0, 0, 0, 0, 0, 0, e.flushed_lsn]))
        dropped.append(cid)
    if dropped:
        records.append((DROP, dropped))
    for t in store._tombstones.values():
        records.append((TOMBSTONE, [t.id, t.query, t.start, t.end, t.created]))
    store._index_log.rewrite(records)
    store._index_log.records_written = len(records)
