"""The counting fast path: ``count_over_time``/``rate``/``bytes_*`` straight from blocks.

The store's sample source (``evaluator_store.StoreSamples.count_windows``)
takes it when a range aggregation has no unwrap and no grouping and its
pipeline is nothing but literal line filters the scanner absorbs (no
stage left to run in Python): then each series is a stream (plus, for entries carrying
structured metadata, that metadata) and only the number of matching lines
and their bytes per window matter.  The Cython ``count_raw`` kernel adds
each matching entry of a decompressed block into per-bucket counters
without creating any Python object for it.

Buckets make overlapping windows cheap.  Step ``i`` reads the window
``(t_i - range - offset, t_i - offset]``; with ``W = gcd(step, range)`` and
buckets ``(origin + k*W, origin + (k+1)*W]`` aligned at ``origin = start -
range - offset``, every window is exactly ``range/W`` consecutive buckets
starting at bucket ``i*step/W``.  Each entry is counted once, in one
bucket, and each window is a difference of two prefix sums, so a query
with ``step < range`` costs the same scan as one with ``step == range``.
An instant query is one bucket of width ``range``.  Blocks that overlap no
window (gaps when ``step > range``) are neither read nor decompressed.

When the buckets would be too many (a ``gcd`` of a few nanoseconds over a
long range) each window is counted on its own instead, one kernel call per
block and window.  Entries with structured metadata (their series differ)
and blocks touched by a delete request are counted per entry in Python.
"""

from __future__ import annotations

import math
from array import array
from itertools import accumulate

from chunkstore import _kernels
from chunkstore.errors import CorruptionError
from chunkstore.logql.evaluator import labels_key
from chunkstore.querier import raw_entry_count, snapshot_streams
from chunkstore.timeutil import I64_MAX, I64_MIN
from chunkstore.tokenfilter import SkipGate, chunk_filters

__all__ = ["count_windows", "MAX_BUCKETS", "ENABLED", "has_metadata"]

#: Largest bucket array (per stream, two int64 arrays) the fast path allocates.
MAX_BUCKETS = 1 << 21
#: Tests switch the fast path off to compare it with the general path.
ENABLED = True


def _uvarint(buf, p: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[p]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7


def has_metadata(raw: bytes) -> bool:
    """Whether a raw block carries structured metadata (its ``meta_len`` header field is > 0).

    The raw block starts with three uvarints: entry count, text length and
    metadata length (docs/FORMAT.md section 2).
    """
    try:
        _, p = _uvarint(raw, 0)
        _, p = _uvarint(raw, p)
        meta_len, _ = _uvarint(raw, p)
    except IndexError:
        return True  # let the scanner report the corruption on the slow path
    return meta_len > 0


class _Windows:
    """Which blocks can hold entries of some window: a block skipped here is not read."""

    __slots__ = ("origin", "step", "range", "n")

    def __init__(self, origin: int, step: int, range_ns: int, n: int):
        self.origin, self.step, self.range, self.n = origin, step, range_ns, n

    def touches(self, lo: int, hi: int) -> bool:
        """Whether some window ``(origin + i*step, origin + i*step + range]`` meets ``[lo, hi]``."""
        if self.step <= 0 or self.step <= self.range:
            return True  # windows tile the scanned span
        # the first window whose right edge reaches lo
        i = max(0, -((self.origin + self.range - lo) // self.step))
        return i < self.n and self.origin + i * self.step < hi


def _decompress(stored, stats, path=None, base=0) -> bytes:
    check = getattr(stats, "check_deadline", None)
    if check is not None:
        check()
    stats.blocks_read += 1
    stats.bytes_read += len(stored)
    try:
        return _kernels.block.decompress_block(stored)
    except CorruptionError as exc:
        raise exc.with_location(path, base) from None


def _raw_blocks(store, chunks, head_snap, lo: int, hi: int, windows: _Windows, stats,
                gate=None):
    """``(min_ts, max_ts, raw block)`` of the blocks of a stream that may hold ``[lo, hi)``.

    ``gate`` (a ``tokenfilter.SkipGate``) drops blocks whose token filter
    shows no line can match: they would count nothing.
    """
    for ref in chunks:
        try:
            meta = store.chunk_meta(ref)
            reader = store.segment_reader(ref.segment)
            filters = chunk_filters(reader, meta, gate)
        except FileNotFoundError:
            index_chunks = getattr(store.index, "chunks", None)
            if index_chunks is not None and ref.chunk_id not in index_chunks:
                continue  # dropped by retention or compaction after the snapshot
            raise
        stats.chunks += 1
        for i, bm in enumerate(meta.blocks):
            if bm.max_ts < lo or bm.min_ts >= hi or not windows.touches(bm.min_ts, bm.max_ts):
                stats.blocks_skipped += 1
                continue
            if filters is not None and not gate.may_match(filters[i]):
                stats.blocks_filtered += 1
                continue
            stored = reader.read_block(ref.offset, bm)
            stats.bytes_decompressed += bm.raw_len
            stats.lines_scanned += bm.n_entries
            yield bm.min_ts, bm.max_ts, _decompress(stored, stats, reader.path,
                                                    ref.offset + bm.offset)
    if head_snap is None:
        return
    cut, raw, rlo, rhi = head_snap
    for b in cut:
        if b.max_ts < lo or b.min_ts >= hi or not windows.touches(b.min_ts, b.max_ts):
            stats.blocks_skipped += 1
            continue
        if gate is not None and not gate.may_match(b.token_filter):
            stats.blocks_filtered += 1
            continue
        stats.bytes_decompressed += b.raw_len
        stats.lines_scanned += b.n_entries
        yield b.min_ts, b.max_ts, _decompress(b.stored, stats)
    if raw is not None and rhi >= lo and rlo < hi:
        stats.bytes_decompressed += len(raw)
        stats.lines_scanned += raw_entry_count(raw)
        yield rlo, rhi, raw


def _bucket_windows(counts, byte_sums, n: int, per_step: int, per_range: int) -> dict:
    """``{step: (count, bytes)}`` of the non-empty windows; window ``i`` is buckets
    ``[i*per_step, i*per_step + per_range)``."""
    if per_range == 1 and per_step <= 1:  # step == range (or an instant): a bucket per window
        return {i: (c, b) for i, (c, b) in enumerate(zip(counts, byte_sums, strict=True)) if c}
    pc = list(accumulate(counts, initial=0))
    pb = list(accumulate(byte_sums, initial=0))
    return {i: (c, pb[a + per_range] - pb[a])
            for i, a in enumerate(range(0, n * per_step, per_step))
            if (c := pc[a + per_range] - pc[a])}


def _add(out: dict, key, windows: dict) -> None:
    prev = out.get(key)
    if prev is None:
        out[key] = windows
        return
    for i, (c, b) in windows.items():
        pc, pb = prev.get(i, (0, 0))
        prev[i] = (pc + c, pb + b)


def count_windows(store, grid, stats, matchers, flt, range_ns: int, offset_ns: int):
    """Per series, the matching line count and byte sum of every non-empty window, or None.

    Returns ``{label key: {step: (count, bytes)}}``; series are streams, or
    stream plus structured metadata for entries that carry it (their labels
    built as the pipeline would: names normalised, clashes suffixed
    ``_extracted``).  None means "use the general path" (only when the
    bucket origin falls outside int64).
    """
    from chunkstore.logql.evaluator_range import metadata_labels_fn, sample_windows, step_span
    from chunkstore.logql.evaluator_store import unpack_snapshot

    steps = grid.steps
    n = len(steps)
    step = grid.step if n > 1 else 0
    width = math.gcd(step, range_ns) if n > 1 else range_ns
    origin = steps[0] - range_ns - offset_ns
    span = range_ns + (n - 1) * step
    nb = span // width
    if not ENABLED or origin < I64_MIN or origin + span >= I64_MAX:
        return None
    # With a tiny gcd (a step of 60.000001s against a 5m range) the buckets
    # would outnumber the entries; count each window on its own instead: one
    # kernel call per (block, window) pair, still no Python object per line.
    per_window = nb > MAX_BUCKETS
    lo, hi = origin + 1, origin + span + 1  # every window inside (origin, origin + span]
    per_step, per_range = step // width, range_ns // width
    windows = _Windows(origin, step, range_ns, n)
    count_raw = _kernels.scan.count_raw
    scan_raw = _kernels.scan.scan_raw
    out: dict = {}
    snaps = snapshot_streams(store, matchers, lo, hi)
    stats.streams += len(snaps)
    stats.fast_path = True
    gate = SkipGate.for_query(store, flt.clauses)
    zero = bytes(8 * (n if per_window else nb))
    for snap in snaps:
        _sid, labels, chunks, head_snap, start, tombs = unpack_snapshot(snap, lo)
        if start >= hi:
            continue
        counts = array("q", zero)
        byte_sums = array("q", zero)
        cview, bview = memoryview(counts), memoryview(byte_sums)
        plain: list = []  # (ts, line length) of entries counted in Python
        with_meta: list = []  # (ts, line length, metadata) of entries carrying metadata
        counted = 0
        for bmin, bmax, raw in _raw_blocks(store, chunks, head_snap, start, hi, windows,
                                           stats, gate):
            deleting = [t for t in tombs if t.start <= bmax and t.end > bmin]
            if not deleting and not has_metadata(raw):
                if not per_window:
                    counted += count_raw(raw, flt, start, hi, origin, width, counts, byte_sums)
                    continue
                for i in step_span(grid, bmin, bmax, range_ns, offset_ns):
                    counted += count_raw(raw, flt, start, hi, origin + i * step, range_ns,
                                         cview[i:i + 1], bview[i:i + 1])
                continue
            # Per entry, in Python: the block has metadata or a delete request touches it.
            for ts, line, meta in scan_raw(raw, flt, start, hi):
                if deleting and any(t.covers(ts, line, meta, labels) for t in deleting):
                    continue
                if meta:
                    with_meta.append((ts, len(line), meta))
                else:
                    plain.append((ts, len(line)))
        stats.lines_matched += len(plain) + len(with_meta)
        key = labels_key(labels)
        if counted:
            if per_window:
                found = {i: (c, byte_sums[i]) for i, c in enumerate(counts) if c}
            else:
                found = _bucket_windows(counts, byte_sums, n, per_step, per_range)
            stats.lines_matched += counted  # per window: a line counts once per window
            _add(out, key, found)
        if plain:
            plain.sort(key=lambda e: e[0])
            _add(out, key, sample_windows(array("q", (e[0] for e in plain)),
                                          array("q", (e[1] for e in plain)),
                                          grid, range_ns, offset_ns))
        if with_meta:
            key_of = metadata_labels_fn(labels)
            per_key: dict = {}
            for ts, length, meta in sorted(with_meta, key=lambda e: e[0]):
                tl, ll = per_key.setdefault(key_of(meta), (array("q"), array("q")))
                tl.append(ts)
                ll.append(length)
            for mkey, (tl, ll) in per_key.items():
                _add(out, mkey, sample_windows(tl, ll, grid, range_ns, offset_ns))
    return out
