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
from chunkstore.tokenfilter import FilterBuilder

__all__ = ["CutBlock", "StreamHead"]

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


@dataclass(slots=True)
class CutBlock:
    """A compressed block of the open chunk, waiting to be sealed."""

    stored: bytes
    n_entries: int
    min_ts: int
    max_ts: int
    text_len: int
    raw_len: int
    #: FORMAT.md section 4: bytes, a Future of them while the FilterBuilder
    #: works (tokenfilter.resolve), or b"" for none (filters switched off)
    token_filter: object = b""


class StreamHead:
    """Open data of one stream: cut blocks plus the uncompressed head block.

    All methods are called with the store's write lock held; readers use
    :meth:`snapshot`, which returns immutable pieces safe to scan without it.
    """

    __slots__ = (
        "stream_id", "labels", "builder", "cut", "cut_stored_bytes", "first_lsn",
        "last_lsn", "max_ts", "chunk_min_ts", "chunk_max_ts", "last_append",
        "_snapshot_raw",
    )

    def __init__(self, stream_id: int, labels, max_ts: int = I64_MIN):
        self.stream_id = stream_id
        self.labels = labels
        self.builder = _kernels.block.BlockBuilder()
        self.cut: list[CutBlock] = []
        self.cut_stored_bytes = 0
        self.first_lsn = 0  # 0: nothing unsealed
        self.last_lsn = 0
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

    def cut_block(self, codec: int, filters: FilterBuilder | None = None) -> CutBlock | None:
        """Compress the head block into a cut block of the open chunk.

        ``filters`` builds its token filter (None: no filter).
        """
        b = self.builder
        if not b.n_entries:
            return None
        raw = b.build()
        stored = _kernels.block.compress_block(raw, codec)
        tf = filters.submit(raw) if filters is not None else b""
        blk = CutBlock(stored, b.n_entries, b.min_ts, b.max_ts, b.text_bytes, len(raw), tf)
        b.reset()
        self.cut.append(blk)
        self.cut_stored_bytes += len(stored)
        self._snapshot_raw = None
        return blk

    def take_chunk(self, codec: int, filters: FilterBuilder | None = None) -> list[CutBlock]:
        """Cut the head block and hand over every block of the open chunk."""
        self.cut_block(codec, filters)
        blocks, self.cut = self.cut, []
        self.cut_stored_bytes = 0
        self.chunk_min_ts = I64_MAX
        self.chunk_max_ts = I64_MIN
        self.first_lsn = 0
        return blocks

    # -- accounting ---------------------------------------------------------
    @property
    def empty(self) -> bool:
        return not self.cut and not self.builder.n_entries

    def memory_bytes(self) -> int:
        """What the head holds: builder buffers (capacity, not just content) and cut blocks."""
        return self.builder.memory_bytes() + self.cut_stored_bytes

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
    def snapshot(self) -> tuple[list[CutBlock], bytes | None, int, int]:
        """Immutable view for readers: cut blocks, raw head block, bounds.

        The raw head block is cached until the next append so that repeated
        queries (e.g. ``tail``) do not re-encode an unchanged head.
        """
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
