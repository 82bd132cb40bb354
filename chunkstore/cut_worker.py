"""Finishing cut blocks off the writer's thread: compression and token filters.

When a head block is cut, its raw block still has to be compressed (lz4,
about 1 GB/s) and, with token filters on, tokenized into its Bloom filter
(about 0.5 GB/s).  Done inline, that is over half of the CPU time of an
append; both kernels release the GIL, so a second core can do it while the
writer goes on accepting entries.  :class:`CutBlockWorker` is that core's
thread.

The worker takes every queued block at once and finishes them with one
kernel call (``block.compress_and_filter``: one GIL-free section for the
lot).  That matters more than it looks: the writer holds the GIL while it
runs Python code, and a thread that wants it back only gets it when the
writer releases it (its C calls do) or at the interpreter's switch interval
(5 ms).  Taking the GIL once per batch rather than three times per block
let the worker do its share on a second core instead of idling while the
writer finished blocks itself.

The worker writes its results straight into the cut blocks (``stored`` and
``token_filter``): no Future, lock or callback per block, because a head
under memory pressure may hold tens of thousands of small cut blocks.  Until
then ``stored`` is None and ``token_filter`` is :data:`PENDING`.
Everything that reads a cut block's bytes first calls :meth:`settle` (sealing,
query snapshots), which waits for exactly the blocks it needs, finishing
queued ones itself meanwhile.  At most
``MAX_PENDING`` raw blocks wait for the worker; beyond that the caller does
the work itself, which bounds the memory held and keeps the writer from
running ahead of a slow worker.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from chunkstore import _kernels
from chunkstore.errors import CorruptionError
from chunkstore.tokenfilter import BITS_PER_KEY, PREFIX_LEN

__all__ = ["PENDING", "CutBlockWorker"]

#: a cut block's ``token_filter`` while the worker builds it
PENDING = None

log = logging.getLogger("chunkstore.cut_worker")


class CutBlockWorker:
    """Compresses cut blocks (and builds their token filters when ``filters``) on one thread."""

    #: raw blocks (256 KiB each by default) that may wait for the worker
    MAX_PENDING = 8

    def __init__(self, filters: bool) -> None:
        self.filters = filters
        self._queue: deque = deque()  # (raw block, cut block, codec)
        self._busy = 0  # queued plus the one being finished
        self._failed: dict[int, tuple[bytes, int]] = {}  # id(cut block) -> (raw, codec)
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, raw_block: bytes, cut_block, codec: int) -> None:
        """Give ``cut_block`` its stored bytes and filter: from the worker, or now if it is busy."""
        with self._cond:
            queue_it = not self._closed and self._busy < self.MAX_PENDING
            if queue_it:
                cut_block.stored = None
                cut_block.token_filter = PENDING if self.filters else b""
                self._queue.append((raw_block, cut_block, codec))
                self._busy += 1
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, daemon=True,
                                                    name="chunkstore-cut-blocks")
                    self._thread.start()
                self._cond.notify_all()
        if not queue_it:
            self._finish_inline(raw_block, cut_block, codec)

    def _finish_inline(self, raw_block: bytes, cut_block, codec: int) -> None:
        stored, cut_block.token_filter = self._finish([raw_block], codec)[0]
        cut_block.stored = stored

    def _finish(self, raws: list[bytes], codec: int) -> list[tuple[bytes, bytes]]:
        """(stored, filter) of each raw block: one kernel call, one GIL-free section."""
        bits = BITS_PER_KEY if self.filters else 0
        try:
            return _kernels.block.compress_and_filter(raws, codec, bits, PREFIX_LEN)
        except (CorruptionError, MemoryError):
            if not self.filters:
                raise
        # A filter that cannot be built (it never should: the block was just
        # encoded) costs only a scan; the stored bytes must still be right.
        log.exception("token filter build failed; the block will be scanned")
        return [(s, b"") for s, _ in _kernels.block.compress_and_filter(raws, codec, 0)]

    def _work(self) -> None:
        cond = self._cond
        batch: list = []
        results: list | None = None
        while True:
            with cond:
                # Hand over the last batch's results and take every queued
                # block under one hold of the lock (and the GIL).
                for i, (raw, blk, codec) in enumerate(batch):
                    if results is None:
                        self._failed[id(blk)] = (raw, codec)
                        blk.token_filter = b""
                        blk.stored = b""  # not None: settle() finds it in _failed
                    else:
                        # The filter first: a writer that sees ``stored`` set
                        # (StreamHead.reconcile, without this lock) counts
                        # the final filter's bytes too.
                        stored, blk.token_filter = results[i]
                        blk.stored = stored
                if batch:
                    self._busy -= len(batch)
                    cond.notify_all()
                # Let go of the raw blocks before waiting: they are garbage
                # once handed over (up to MAX_PENDING x 256 KiB by default).
                batch, results, raw = [], None, None
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:
                    return
                codec = self._queue[0][2]
                batch = []
                while self._queue and self._queue[0][2] == codec:
                    batch.append(self._queue.popleft())
            try:
                results = self._finish([raw for raw, _, _ in batch], codec)
            except BaseException:  # noqa: BLE001 - redone (and raised) by settle()
                log.exception("compressing cut blocks failed; the writer will retry")
                results = None

    def settle(self, cut_blocks) -> None:
        """Wait until every one of ``cut_blocks`` has its stored bytes and filter.

        A block the worker failed to compress is compressed here, in the
        caller's thread, so the error (if it recurs) reaches the writer.
        """
        cond = self._cond
        with cond:
            while any(b.stored is None or b.token_filter is PENDING for b in cut_blocks):
                if not self._queue:
                    cond.wait()
                    continue
                # Help rather than wait: finish a queued block here (the
                # newest, most likely one of ours), so the writer's core is
                # never idle while the worker is behind.
                raw, blk, codec = self._queue.pop()
                cond.release()
                try:
                    self._finish_inline(raw, blk, codec)
                except BaseException:
                    with cond:  # no longer queued: never leave it pending
                        self._failed[id(blk)] = (raw, codec)
                        blk.stored = blk.stored if blk.stored is not None else b""
                        if blk.token_filter is PENDING:
                            blk.token_filter = b""
                    raise
                finally:
                    cond.acquire()
                    self._busy -= 1
                    cond.notify_all()
            redo = [(b, self._failed.pop(id(b))) for b in cut_blocks
                    if self._failed and id(b) in self._failed]
        for blk, (raw, codec) in redo:
            self._finish_inline(raw, blk, codec)

    def close(self, wait: bool = True) -> None:
        """Stop the worker: after the queued blocks are finished, or (``wait=False``,
        a crash simulation) at once, leaving queued blocks unfinished."""
        with self._cond:
            self._closed = True
            if not wait:
                self._queue.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and wait:
            thread.join()

