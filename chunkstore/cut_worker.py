"""Finishing cut blocks off the writer's thread: compression and token filters.

When a head block is cut, its raw block still has to be compressed (lz4,
about 1 GB/s) and, with token filters on, tokenized into its Bloom filter
(about 0.5 GB/s).  Done inline, that is over half of the CPU time of an
append; both kernels release the GIL, so a second core can do it while the
writer goes on accepting entries.  :class:`CutBlockWorker` is that core's
thread.

The worker writes its results straight into the cut block (``stored``, then
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
from chunkstore.tokenfilter import block_filter

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
        cut_block.stored = _kernels.block.compress_block(raw_block, codec)
        cut_block.token_filter = _filter_of(raw_block) if self.filters else b""

    def _work(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:
                    return
                raw, blk, codec = self._queue.popleft()
            try:
                stored = _kernels.block.compress_block(raw, codec)
            except BaseException:  # noqa: BLE001 - redone (and raised) by settle()
                log.exception("compressing a cut block failed; the writer will retry")
                stored = None
            flt = _filter_of(raw) if self.filters and stored is not None else b""
            with cond:
                if stored is None:
                    self._failed[id(blk)] = (raw, codec)
                    blk.stored = b""  # not None: settle() finds it in _failed
                else:
                    blk.stored = stored
                if blk.token_filter is PENDING:
                    blk.token_filter = flt
                self._busy -= 1
                cond.notify_all()

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


def _filter_of(raw_block: bytes) -> bytes:
    """``block_filter``, or b"" if it fails (it never should: the block was just
    encoded); a block without a filter is scanned, so nothing is lost."""
    try:
        return block_filter(raw_block)
    except Exception:  # noqa: BLE001
        log.exception("token filter build failed; the block will be scanned")
        return b""
