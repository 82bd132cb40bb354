"""Committing sealed chunks off the writer's thread: segment fsync, then index record.

A sealed chunk becomes part of the store in two durable steps, in this order
(docs/FORMAT.md section 7): its bytes are fsynced in the segment file, then
its CHUNK record is appended to the index log.  Neither step is needed for
the chunk to be *read* (the writer adds it to the in-memory index at once,
and the bytes are in the page cache), and the entries stay in the WAL until
the index log is fsynced, so nothing depends on the steps happening before
``push()`` returns.  Done inline, the fsync is the slowest part of a seal;
:class:`SealCommitter` does both steps on one thread, in submission order.

Whoever needs the records in the log waits with :meth:`drain` first: WAL
truncation (before it fsyncs the index log), any other index-log append
(retention, compaction: a DROP must never precede the CHUNK it drops), a
segment file being closed, and close.  A crash before a job ran leaves a
chunk without its record; opening removes it as an orphan and the WAL
replays its entries, exactly as when a crash hits an inline seal.  A failed
fsync or append breaks the store (``on_error``) and is raised by the next
:meth:`drain`; later jobs are not committed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from chunkstore.errors import StoreClosedError

__all__ = ["SealCommitter"]

log = logging.getLogger("chunkstore.seal_commit")


class SealCommitter:
    """One thread that fsyncs segment files and then appends their chunks' index records."""

    def __init__(self, index_log, on_error) -> None:
        self._index_log = index_log
        self._on_error = on_error
        self._jobs: deque = deque()  # (segment writers, index records)
        self._running = False  # a job is being committed
        self._error: BaseException | None = None
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, segments: list, records: list[tuple[int, list]]) -> None:
        """Queue: fsync ``segments``, then append ``records`` to the index log (no fsync)."""
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._stopped:
                raise StoreClosedError("seal committer: stopped")
            self._jobs.append((segments, records))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="chunkstore-seal-commit")
                self._thread.start()
            self._cond.notify_all()

    def _work(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._jobs and not self._stopped:
                    cond.wait()
                if not self._jobs or self._error is not None:
                    self._jobs.clear()
                    self._running = False
                    cond.notify_all()
                    if self._stopped:
                        return
                    continue
                segments, records = self._jobs.popleft()
                self._running = True
            err = None
            try:
                for seg in segments:
                    try:
                        seg.sync()
                    except StoreClosedError:
                        pass  # closed since: close() fsynced it (or raised to the writer)
                self._index_log.append(records, sync=False)
            except BaseException as exc:  # noqa: BLE001 - handed to the writer
                err = exc
                log.error("seal commit failed, the store stops writing: %s", exc)
                self._on_error(exc)
            # not kept while the thread waits for the next job: the records
            # of a large seal (close(), an idle sweep) are ~300 bytes a chunk
            del segments, records
            with cond:
                if err is not None and self._error is None:
                    self._error = err
                self._running = False
                cond.notify_all()

    def drain(self) -> None:
        """Wait until every submitted job is committed; raise the failure if one failed."""
        with self._cond:
            while self._jobs or self._running:
                self._cond.wait()
            if self._error is not None:
                raise self._error

    def close(self, wait: bool = True) -> None:
        """Stop the thread after the queued jobs, or (``wait=False``, a crash
        simulation) after the job in progress, dropping the queued ones: they are
        exactly what a crash would lose.  Either way the thread has stopped
        touching the store's files when this returns (a reopened store may
        write them next)."""
        with self._cond:
            self._stopped = True
            if not wait:
                self._jobs.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
