"""The head: each stream's open (not yet sealed) data, in memory.

Loki's model: a stream appends into an uncompressed head block (a C
``BlockBuilder``); when that reaches ``block_size`` raw bytes it is sorted,
compressed and kept as a *cut block* of the stream's open chunk; when the
open chunk reaches ``chunk_target_size`` stored bytes, spans more than
``chunk_max_age`` of log time, or sits idle for ``chunk_idle_period`` of wall
time, the store seals it into a segment file.  Everything in the head is also
in the WAL until it is sealed; ``first_lsn`` is the oldest WAL sequence
number whose entries are still only in the head, which bounds WAL truncation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chunkstore import _kernels
from chunkstore.cut_worker import CutBlockWorker

__all__ = ["CutBlock", "StreamHead"]

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
#: bytes a cut block holds besides its stored bytes and token filter: the
#: CutBlock object and its ints (~370) and the two bytes objects' headers
#: (~90; measured with tracemalloc on a head under memory pressure)
CUT_BLOCK_OVERHEAD = 512
#: bytes a head holds besides its builder's buffers and cut blocks: the
#: StreamHead, its BlockBuilder object, lists and numbers and its slot in the
#: store's dict (~660 measured with tracemalloc, plus the malloc headers of
#: the builder's buffers); counted in the head memory budget, and freed when
#: a sealed, empty head is dropped (tests/test_head_memory.py measures it)
HEAD_OVERHEAD = 768
#: bytes each stream the store knows holds besides its head: its labels
#: (pairs, canonical bytes, fingerprint), index entry, postings and the
#: writer's maps (tracemalloc: ~910 a stream over 10,000 streams, ~1,090
#: over 3,000, as dict and set tables grow in steps);
#: charged to the head memory budget while the store is open for writing
#: (``Store._heads_budget``; tests/test_head_memory.py measures it)
STREAM_OVERHEAD = 1152


@dataclass(slots=True)
class CutBlock:
    """A compressed block of the open chunk, waiting to be sealed.

    ``stored`` is None (and ``token_filter`` ``cut_worker.PENDING``) while
    the cut-block worker finishes it; readers settle it first.
    """

    stored: bytes | None
    n_entries: int
    min_ts: int
    max_ts: int
    text_len: int
    raw_len: int
    #: FORMAT.md section 4: bytes, ``cut_worker.PENDING`` while the
    #: worker builds it, or b"" for none (filters switched off)
    token_filter: bytes | None = b""
    #: the WAL sequence numbers of its first and last entries' records: a
    #: block holds whole records, so sealing blocks up to one of them is
    #: exactly "every entry up to that lsn" (the chunk's ``max_lsn``)
    first_lsn: int = 0
    last_lsn: int = 0


class StreamHead:
    """Open data of one stream: cut blocks plus the uncompressed head block.

    All methods are called with the store's write lock held; readers use
    :meth:`snapshot`, which returns immutable pieces safe to scan without it.
    """

    __slots__ = (
        "stream_id", "labels", "builder", "cut", "cut_stored_bytes", "cut_filter_bytes",
        "first_lsn",
        "last_lsn", "max_ts", "chunk_min_ts", "chunk_max_ts", "last_append",
        "_snapshot_raw", "_unfinished", "_unfinished_raw", "builder_first_lsn",
    )

    def __init__(self, stream_id: int, labels, max_ts: int = I64_MIN):
        self.stream_id = stream_id
        self.labels = labels
        self.builder = _kernels.block.BlockBuilder()
        self.cut: list[CutBlock] = []
        #: stored bytes of the finished cut blocks (the chunk-size trigger)
        self.cut_stored_bytes = 0
        #: token filter bytes of the finished cut blocks (memory only)
        self.cut_filter_bytes = 0
        # cut blocks the worker has not finished, and their raw bytes (counted
        # as memory until reconcile() swaps in the stored size)
        self._unfinished: list[CutBlock] = []
        self._unfinished_raw = 0
        self.first_lsn = 0  # 0: nothing unsealed
        self.last_lsn = 0
        self.builder_first_lsn = 0  # of the entries in the builder (0: none)
        self.max_ts = max_ts  # newest ts of the whole stream (sealed + head)
        self.chunk_min_ts = I64_MAX
        self.chunk_max_ts = I64_MIN
        self.last_append = time.monotonic()
        self._snapshot_raw: bytes | None = None

    # -- write path -------------------------------------------------------
    def note_append(self, lsn: int) -> None:
        """Record that entries with WAL sequence ``lsn`` went into the builder."""
        if not self.first_lsn:
            self.first_lsn = lsn
        if not self.builder_first_lsn:
            self.builder_first_lsn = lsn
        self.last_lsn = lsn
        self.last_append = time.monotonic()
        b = self.builder
        if b.n_entries:
            lo, hi = b.min_ts, b.max_ts
            if lo < self.chunk_min_ts:
                self.chunk_min_ts = lo
            if hi > self.chunk_max_ts:
                self.chunk_max_ts = hi
            if hi > self.max_ts:
                self.max_ts = hi
        self._snapshot_raw = None

    def cut_block(self, codec: int, worker: CutBlockWorker | None = None) -> CutBlock | None:
        """Turn the head block into a cut block of the open chunk.

        ``worker`` compresses it and builds its token filter on its thread
        (None: compress here, no filter).
        """
        b = self.builder
        if not b.n_entries:
            return None
        raw = b.build()
        blk = CutBlock(None, b.n_entries, b.min_ts, b.max_ts, b.text_bytes, len(raw),
                       first_lsn=self.builder_first_lsn, last_lsn=self.last_lsn)
        self.builder_first_lsn = 0
        if worker is None:
            blk.stored = _kernels.block.compress_block(raw, codec)
        else:
            worker.submit(raw, blk, codec)
        b.reset()
        self.cut.append(blk)
        if blk.stored is None:
            self._unfinished.append(blk)
            self._unfinished_raw += len(raw)
        else:
            self._count_finished(blk)
        self._snapshot_raw = None
        return blk

    def _count_finished(self, blk: CutBlock, sign: int = 1) -> None:
        """Count (``sign`` -1: uncount) a finished cut block's stored and filter bytes."""
        self.cut_stored_bytes += sign * len(blk.stored)
        self.cut_filter_bytes += sign * len(blk.token_filter)

    def mergeable_from(self, max_raw: int) -> int | None:
        """Where the run of cut blocks that :meth:`cut_merged` would merge starts.

        The longest run at the end of ``cut`` whose raw bytes, with the head
        block's, stay within ``max_raw``, counted back from the newest block
        and stopping at one the worker has not finished (or failed to: its
        ``stored`` is b"" until ``settle`` redoes it); None when that run is
        empty or there is no head block to cut.
        """
        b = self.builder
        if not b.n_entries or not self.cut:
            return None
        total = b.size_bytes
        start = len(self.cut)
        pending = {id(blk) for blk in self._unfinished}
        while start > 0:
            blk = self.cut[start - 1]
            if id(blk) in pending or not blk.stored or total + blk.raw_len > max_raw:
                break
            total += blk.raw_len
            start -= 1
        return start if start < len(self.cut) else None

    def cut_merged(self, start: int, codec: int, worker: CutBlockWorker | None = None
                   ) -> CutBlock:
        """Cut the head block together with cut blocks ``cut[start:]`` into one block.

        Under memory pressure a head is cut long before its block is full,
        leaving many small cut blocks that compress poorly (a 4 KiB block of
        log lines to ~1/4 of its size) and each cost an object, a filter and
        an index slot.  Merging them as they come keeps one block per run of
        up to the caller's bound: half the stored bytes and a third of the
        blocks on the 10,000-stream benchmark, so the head holds twice the
        entries in the same memory and seals fewer, larger chunks.  The
        merged block holds exactly the entries of its parts (none dropped:
        ``merge_raw_blocks``) and their whole WAL records, from the first
        part's ``first_lsn`` to the head block's last.  ``cut[start:]`` must
        be finished (:meth:`mergeable_from` ensures it).
        """
        block = _kernels.block
        parts = self.cut[start:]
        b = self.builder
        raws = [block.decompress_block(p.stored) for p in parts]
        raws.append(b.build())
        raw = block.merge_raw_blocks(raws)
        del raws
        lo, hi = b.min_ts, b.max_ts
        for p in parts:
            lo, hi = min(lo, p.min_ts), max(hi, p.max_ts)
        blk = CutBlock(None, b.n_entries + sum(p.n_entries for p in parts), lo, hi,
                       b.text_bytes + sum(p.text_len for p in parts), len(raw),
                       first_lsn=parts[0].first_lsn, last_lsn=self.last_lsn)
        self.builder_first_lsn = 0
        b.reset()
        for p in parts:
            self._count_finished(p, -1)
        del self.cut[start:]
        self.cut.append(blk)
        if worker is None:
            blk.stored = block.compress_block(raw, codec)
            self._count_finished(blk)
        else:
            worker.submit(raw, blk, codec)
            if blk.stored is None:
                self._unfinished.append(blk)
                self._unfinished_raw += len(raw)
            else:
                self._count_finished(blk)
        self._snapshot_raw = None
        return blk

    def reconcile(self) -> None:
        """Count the cut blocks the worker has finished by their stored size."""
        if not self._unfinished:
            return
        left = []
        for blk in self._unfinished:
            stored = blk.stored
            if stored is None:
                left.append(blk)
            else:
                self._unfinished_raw -= blk.raw_len
                self._count_finished(blk)
        self._unfinished = left

    def take_chunk(self, codec: int, worker: CutBlockWorker | None = None,
                   n_blocks: int | None = None) -> tuple[list[CutBlock], int]:
        """Hand over the blocks of the open chunk and the WAL lsn they hold up to.

        Everything (the head block cut first) when ``n_blocks`` is None;
        else only the first ``n_blocks`` cut blocks, and the later ones and
        the head block stay as the start of the next chunk.  The caller
        settles the blocks with the worker before using their bytes.
        """
        if n_blocks is None:
            self.cut_block(codec, worker)
            blocks, self.cut = self.cut, []
            self.cut_stored_bytes = self.cut_filter_bytes = 0
            self._unfinished = []
            self._unfinished_raw = 0
            self.chunk_min_ts = I64_MAX
            self.chunk_max_ts = I64_MIN
            self.first_lsn = 0
            return blocks, self.last_lsn
        blocks, rest = self.cut[:n_blocks], self.cut[n_blocks:]
        self.cut = rest
        kept = {id(b) for b in rest}
        self._unfinished = [b for b in self._unfinished if id(b) in kept]
        self._unfinished_raw = sum(b.raw_len for b in self._unfinished)
        left = {id(b) for b in self._unfinished}
        finished = [b for b in rest if id(b) not in left]
        self.cut_stored_bytes = sum(len(b.stored) for b in finished)
        self.cut_filter_bytes = sum(len(b.token_filter) for b in finished)
        lo, hi = I64_MAX, I64_MIN
        for b in rest:
            lo, hi = min(lo, b.min_ts), max(hi, b.max_ts)
        if self.builder.n_entries:
            lo, hi = min(lo, self.builder.min_ts), max(hi, self.builder.max_ts)
        self.chunk_min_ts, self.chunk_max_ts = lo, hi
        self.first_lsn = rest[0].first_lsn if rest else self.builder_first_lsn
        return blocks, blocks[-1].last_lsn

    # -- accounting ---------------------------------------------------------
    @property
    def empty(self) -> bool:
        return not self.cut and not self.builder.n_entries

    def memory_bytes(self) -> int:
        """What the head holds: its fixed cost, builder buffers (capacity, not
        just content) and cut blocks.

        A cut block costs more than its stored bytes: its token filter
        (counted exactly once the worker has built it) and its object, ints
        and object headers (``CUT_BLOCK_OVERHEAD``, an estimate); under
        memory pressure a head may hold many small ones, so that is counted too.
        """
        return (HEAD_OVERHEAD + self.builder.memory_bytes() + self.cut_stored_bytes
                + self.cut_filter_bytes + self._unfinished_raw
                + len(self.cut) * CUT_BLOCK_OVERHEAD)

    def release_idle_buffers(self) -> int:
        """Free an empty builder's buffers (kept across cuts for speed); bytes released."""
        b = self.builder
        if b.n_entries or not b.memory_bytes():
            return 0
        freed = b.memory_bytes()
        self.builder = _kernels.block.BlockBuilder()
        return freed

    def n_entries(self) -> int:
        return self.builder.n_entries + sum(b.n_entries for b in self.cut)

    def bounds(self) -> tuple[int, int]:
        return self.chunk_min_ts, self.chunk_max_ts

    # -- read path -----------------------------------------------------------
    def snapshot(self, worker: CutBlockWorker | None = None
                 ) -> tuple[list[CutBlock], bytes | None, int, int]:
        """Immutable view for readers: cut blocks, raw head block, bounds.

        Cut blocks the ``worker`` has not finished are waited for (readers
        scan stored bytes).  The raw head block is cached until the next
        append so that repeated queries (e.g. ``tail``) do not re-encode an
        unchanged head.
        """
        if self._unfinished and worker is not None:
            worker.settle(self._unfinished)
        raw = None
        b = self.builder
        if b.n_entries:
            raw = self._snapshot_raw
            if raw is None:
                raw = self._snapshot_raw = b.build()
            lo, hi = b.min_ts, b.max_ts
        else:
            lo, hi = I64_MAX, I64_MIN
        return list(self.cut), raw, lo, hi
