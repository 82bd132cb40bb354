"""The store: one directory, one writer, any number of readers.

Layout of a store directory (details in ``docs/FORMAT.md``)::

    LOCK                      flock'ed by the single writer
    index.log                 streams and sealed chunks (chunkstore/index_log.py)
    wal/00000001.wal ...      write-ahead log of unsealed entries (chunkstore/wal.py)
    segments/DAY/NNNNNNNN.seg sealed chunks, one directory per UTC day of log time

The write path lives here (append, push, sealing, WAL truncation); recovery
is in ``store_open.py`` and the read path in ``querier.py``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chunkstore import _kernels, wal_records
from chunkstore.chunkfile import SegmentReader, SegmentWriter, encode_chunk
from chunkstore.cut_worker import CutBlockWorker
from chunkstore.errors import (
    ChunkstoreError,
    EntryRejected,
    LabelError,
    LimitError,
    ReadOnlyError,
    StoreClosedError,
    StoreLockedError,
)
from chunkstore.fsdir import fsync_dir
from chunkstore.head import STREAM_OVERHEAD, StreamHead
from chunkstore.index import ChunkRef, MemIndex
from chunkstore.index_log import CHUNK, STREAM, IndexLog
from chunkstore.labels import Labels
from chunkstore.options import StoreOptions
from chunkstore.seal_commit import SealCommitter
from chunkstore.timeutil import I64_MAX, I64_MIN, now_ns, to_ns

__all__ = ["Store", "PushResult", "Stream", "open_store"]

_DAY_NS = 86400 * 1_000_000_000


@dataclass
class PushResult:
    """What :meth:`Store.push` did: entries stored, and each rejected one with why."""

    accepted: int = 0
    rejected: list = field(default_factory=list)  # (labels, ts, reason)


#: a head block smaller than this is not cut under memory pressure: the few
#: bytes freed do not pay for another block (and its index entry and filter)
_MIN_PRESSURE_CUT = 4096
#: a head holding less than this is not sealed under memory pressure: its
#: chunk would free a few KiB and add an index entry (~150 bytes) for as long
#: as the chunk lives, so with many streams and a small budget, sealing tiny
#: heads grows the index faster than it frees the heads (1 GB into 10,000
#: streams under a 32 MiB budget: 40,067 chunks with this rule in
#: bench_ingest.py; 142,855 before it, and ~595,000 in a diagnostic run
#: with the streams charged to the budget but without the rule)
_MIN_PRESSURE_SEAL = 8192
#: entries for one stream in one call above which they are appended in slices
_SLICE_CHECK = 2048
#: at most one heap trim per this many seconds (Store._trim_heap; a trim
#: takes 1.5-2.5 ms in the 10,000-stream benchmark, 2-7 ms on a heap of
#: 200 MiB with 50,000 holes)
_HEAP_TRIM_INTERVAL = 0.05
#: a seal that drops heads trims the heap only this many seconds after a
#: pressure relief: without pressure the heads are well under budget and the
#: pages a trim gives back are soon faulted in again (the 32-stream ingest)
_PRESSURE_RECENT = 5.0
#: under memory pressure a head's early cut is merged with its newest small
#: cut blocks while their raw bytes stay within this (StreamHead.cut_merged)
_PRESSURE_MERGE_MAX_RAW = 64 * 1024
#: most heads a paced WAL seal waits to gather into one group (_pace_wal_seals;
#: fewer in a store of fewer than 16 x this many heads)
_WAL_PACE_GROUP = 64

#: heads sealed per group at close (bounds the records in flight)
_CLOSE_SEAL_GROUP = 512

class Stream:
    """A handle on one stream: ``append`` skips label validation and lookup."""

    __slots__ = ("_store", "_sid", "labels")

    def __init__(self, store: Store, sid: int, labels: Labels):
        self._store = store
        self._sid = sid
        self.labels = labels

    def append(self, line, ts=None, metadata=None) -> None:
        """Append one line; raises :class:`EntryRejected` if it is refused."""
        self._store._append_sid(self._sid, line, ts, metadata)

    def push(self, entries) -> PushResult:
        """Append many ``(ts, line[, metadata])`` entries to this stream."""
        return self._store._push_sid(self._sid, entries)


def _day_dir(ts: int) -> str:
    day = ts // _DAY_NS
    try:
        import datetime as _dt

        return (_dt.date(1970, 1, 1) + _dt.timedelta(days=day)).isoformat()
    except OverflowError:
        return f"day{day:+d}"


def ensure_day_dir(root: str, day: str) -> str:
    """The directory ``segments/<day>`` of the store at ``root``, created durably if missing.

    A new directory entry survives a power loss only once its parent is
    fsynced, and the index log may point at a chunk only when its segment
    file does.  Called once per new segment file, so the parent is fsynced
    each time (also covering a directory a crashed process created).
    """
    segs = os.path.join(root, "segments")
    d = os.path.join(segs, day)
    os.makedirs(d, exist_ok=True)
    fsync_dir(segs)
    return d


class Store:
    """An open chunkstore directory.  Use :func:`chunkstore.open` to get one.

    Thread-safe: appends are serialised by one lock; queries snapshot what
    they need under that lock and read files without it, so they run
    concurrently with appends and with each other.
    """

    def __init__(self, path: str, *, read_only: bool, options: StoreOptions):
        self.path = os.path.abspath(path)
        self.read_only = read_only
        self.options = options
        self._lock = threading.RLock()
        self._closed = False
        self._broken: BaseException | None = None
        self.index = MemIndex(fingerprint_fn=options.fingerprint_fn)
        self.heads: dict[int, StreamHead] = {}
        self._label_cache: dict = {}
        self._readers: dict[str, SegmentReader] = {}
        self._chunk_meta_cache: dict[int, object] = {}
        self._logged_streams: set[int] = set()  # streams with a STREAM record in index.log
        # Streams known only from the WAL: the WAL segment holding their STREAM
        # record.  WAL truncation re-writes these records before removing the
        # segment, or entries written later would name a stream replay never saw.
        self._stream_record_seg: dict[int, int] = {}
        self._pending_stream_records: dict[int, bytes] = {}  # created, not yet in the WAL
        self._segments: dict[str, SegmentWriter] = {}
        self._segment_of_day: dict[str, str] = {}
        self._wal_seg_max_lsn: dict[int, int] = {}
        self._head_mem = 0
        self._wal_paced_at = 0  # WAL bytes written at the last paced seal
        self._unfinished_heads: set[StreamHead] = set()  # cut blocks the worker still has
        # per-append constants of the options, computed once for the hot path
        self._max_line = options.max_line_size or (1 << 62)
        self._ooo_ns = options.ooo_window_ns
        self._to_seal: set[int] = set()
        # heads whose first cut blocks make full chunks, sealed (just those
        # blocks) once the worker has finished them: stream id -> the block
        # counts where each full chunk ends, ascending (usually one; a push
        # of several MB to one stream can fill more)
        self._full_chunks: dict[int, list[int]] = {}
        self._last_heap_trim = 0.0
        self._last_relief = float("-inf")  # time of the last pressure relief
        # head memory below which no relief runs although over budget: set when
        # a relief found only heads too small to seal (_MIN_PRESSURE_SEAL)
        self._pressure_floor = 0
        self._small_budget_warned = False  # _warn_small_budget: once per store
        self.next_stream_id = 1
        self.next_chunk_id = 1
        self.next_lsn = 1
        self.replay_report = None
        self.last_query_stats = None
        self._lock_fd: int | None = None
        self._wal = None
        self._index_log: IndexLog | None = None
        #: fsyncs sealed chunks and appends their index records off the
        #: writer's thread (chunkstore/seal_commit.py); None when read-only
        self._committer: SealCommitter | None = None
        self._maint_thread: threading.Thread | None = None
        #: compresses cut blocks and builds their token filters off the
        #: writer's thread (a reader compresses the few it cuts itself)
        self._cut_worker: CutBlockWorker | None = (
            None if read_only else CutBlockWorker(filters=options.token_filters))
        self._maint_stop = threading.Event()
        self._reader_signature = None
        self._tombstones: dict = {}
        self._last_retention = 0.0
        from chunkstore.retention import coerce_policy

        self.retention_policy = coerce_policy(options.retention)
        from chunkstore import store_open

        store_open.open_into(self)

    # ------------------------------------------------------------------
    # lifecycle
    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self.path}: used after close()")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"store {self.path}: opened read_only, cannot write")
        if self._broken is not None:
            raise ChunkstoreError(
                f"store {self.path}: a previous write failed ({self._broken}); reopen the store"
            )

    def _acquire_lock(self) -> None:
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreLockedError(
                f"store {self.path}: another writer holds the lock (open it with read_only=True "
                f"to read while it writes)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def flush(self) -> None:
        """Make everything written so far durable (fsync the WAL) and visible to readers."""
        with self._lock:
            self._check_writable()
            self._wal.sync()
            self._commit_seals()

    def close(self) -> None:
        """Seal every open chunk, sync, release the lock.  Idempotent."""
        if self._closed:
            return
        self._maint_stop.set()
        t = self._maint_thread
        if t is not None and t is not threading.current_thread():
            t.join()
        with self._lock:
            if self._closed:
                return
            try:
                if not self.read_only and self._broken is None:
                    heads = [h for h in self.heads.values() if not h.empty]
                    for i in range(0, len(heads), _CLOSE_SEAL_GROUP):
                        # a group at a time: the chunks' records and bytes
                        # in flight stay small with 10,000s of open heads
                        self._seal(heads[i:i + _CLOSE_SEAL_GROUP], release_memory=True)
                        self._commit_seals()
                    self._truncate_wal()
                    self._commit_seals()
                    self._index_log.sync()
            finally:
                self._closed = True
                if self._committer is not None:
                    self._committer.close()
                if self._cut_worker is not None:
                    self._cut_worker.close()
                if self._wal is not None:
                    try:
                        self._wal.close()
                    except OSError:
                        pass
                for seg in self._segments.values():
                    try:
                        seg.close()
                    except OSError:
                        pass
                for r in self._readers.values():
                    r.close()
                if self._index_log is not None:
                    self._index_log.close()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    def _crash_for_tests(self) -> None:
        """Drop every file handle without sealing or syncing (simulates kill -9)."""
        self._maint_stop.set()
        with self._lock:
            self._closed = True
            if self._cut_worker is not None:
                self._cut_worker.close(wait=False)
            if self._committer is not None:
                self._committer.close(wait=False)
            if self._wal is not None:
                self._wal._abandon() if hasattr(self._wal, "_abandon") else None
            for r in self._readers.values():
                r.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # ------------------------------------------------------------------
    # streams
    def _resolve(self, labels) -> tuple[int, StreamHead]:
        """Stream id and head for ``labels``, creating the stream if new.

        A new stream's WAL STREAM record is queued and goes out ahead of the
        entries in the next :meth:`_wal_write` (even if this call fails later).
        The cache key is the caller's own item order, so the common case (a
        collector reusing the same dict) costs one tuple and one dict lookup.
        """
        if type(labels) is dict:  # the common case, before the slower ABC checks
            try:
                key = tuple(labels.items())
                sid = self._label_cache.get(key)
            except TypeError:
                key, sid = None, None
            if sid is not None:
                head = self.heads.get(sid)
                if head is not None:
                    return sid, head
        elif isinstance(labels, Mapping) and not isinstance(labels, Labels):
            try:
                key = tuple(labels.items())
                sid = self._label_cache.get(key)
            except TypeError:
                key, sid = None, None
        elif isinstance(labels, Labels):
            key, sid = labels.canonical, self._label_cache.get(labels.canonical)
        else:
            key, sid = None, None
        if sid is not None:
            return sid, self.heads.get(sid) or self._new_head(sid)
        lbls = Labels.from_input(labels, self.options.label_limits)
        sid = self.index.find_stream(lbls)
        if sid is None:
            limit = self.options.max_streams
            if limit and len(self.index.streams) >= limit:
                raise LimitError(
                    f"push: stream limit reached: the store has {len(self.index.streams)} "
                    f"streams (max_streams={limit}); new stream {lbls} refused"
                )
            sid = self.next_stream_id
            self.next_stream_id += 1
            self.index.add_stream(sid, lbls)
            self._pending_stream_records[sid] = wal_records.encode_stream(
                sid, lbls.fingerprint, lbls.canonical)
        head = self.heads.get(sid)
        if head is None:
            head = self._new_head(sid)
        if key is not None and len(self._label_cache) < 1_000_000:
            if key == lbls.pairs:  # a caller's dict in sorted order: share the
                key = lbls.pairs  # stream's own tuple (about 220 bytes a stream)
            self._label_cache[key] = sid
        return sid, head

    def _new_head(self, sid: int) -> StreamHead:
        entry = self.index.streams[sid]
        head = StreamHead(sid, entry.labels, entry.max_ts)
        self.heads[sid] = head
        self._head_mem += head.memory_bytes()  # its fixed cost (HEAD_OVERHEAD)
        return head

    def stream(self, labels) -> Stream:
        """A handle for repeated appends to one stream (validated once, here)."""
        with self._lock:
            self._check_writable()
            sid, _head = self._resolve(labels)
            self._wal_write([], [])
            return Stream(self, sid, self.index.streams[sid].labels)

    # ------------------------------------------------------------------
    # write path
    def append(self, labels, line, ts=None, metadata=None) -> None:
        """Append one line to the stream named by ``labels``.

        ``ts`` is int nanoseconds or a datetime (default: now).  Raises
        :class:`LabelError` for invalid labels and :class:`EntryRejected` for
        a refused entry (line too long, too far behind, bad timestamp).
        """
        with self._lock:
            self._check_writable()
            sid, head = self._resolve(labels)
            self._append_one(sid, head, line, ts, metadata)

    def _append_sid(self, sid: int, line, ts, metadata) -> None:
        with self._lock:
            self._check_writable()
            head = self.heads.get(sid) or self._new_head(sid)
            self._append_one(sid, head, line, ts, metadata)

    def _append_one(self, sid, head, line, ts, metadata) -> None:
        ts = now_ns() if ts is None else to_ns(ts)
        entry = (ts, line) if metadata is None else (ts, line, metadata)
        result = PushResult()
        self._push_entries(sid, head, [entry], result, [])
        if result.rejected:
            reason = result.rejected[0][2]
            raise EntryRejected(f"append: entry rejected: {reason}", reason=reason)

    def push(self, streams: Iterable) -> PushResult:
        """Append many entries to many streams; the fast path for collectors.

        ``streams`` is an iterable of ``(labels, entries)``; entries are
        ``(ts, line)`` or ``(ts, line, metadata)``.  Invalid entries (and every
        entry of a stream with invalid labels) are listed in
        ``result.rejected`` as ``(labels, ts, reason)``; all others are stored
        and in the WAL before this returns.
        """
        result = PushResult()
        with self._lock:
            self._check_writable()
            records: list[bytes] = []
            touched: list[StreamHead] = []
            # The per-(labels, entries) Python work is a third of a push's
            # time at ~30 entries an item: the common case (a dict of labels
            # seen before, whose head is open, not too many entries) is
            # spelled out here rather than in three method calls.
            cache, heads, extend_part = self._label_cache, self.heads, self._extend_part
            for item in streams:
                try:
                    labels, entries = item
                except (TypeError, ValueError):
                    raise TypeError(
                        f"push: expected (labels, entries) pairs, got {type(item).__name__}"
                    ) from None
                if type(entries) is not list:
                    entries = list(entries)
                head = None
                if type(labels) is dict:
                    try:
                        sid = cache.get(tuple(labels.items()))
                    except TypeError:
                        sid = None
                    if sid is not None:
                        head = heads.get(sid)
                if head is None:
                    try:
                        sid, head = self._resolve(labels)
                    except (LabelError, LimitError) as exc:
                        result.rejected.extend((labels, _entry_ts(e), str(exc)) for e in entries)
                        continue
                if len(entries) <= _SLICE_CHECK:
                    max_ts = head.max_ts
                    floor = max_ts - self._ooo_ns if max_ts != I64_MIN else I64_MIN
                    extend_part(sid, head, entries, floor if floor > I64_MIN else I64_MIN,
                                result, records, touched, labels)
                else:
                    self._extend(sid, head, entries, result, records, touched, labels)
            self._wal_write(records, touched)
        return result

    def _push_sid(self, sid: int, entries) -> PushResult:
        result = PushResult()
        with self._lock:
            self._check_writable()
            head = self.heads.get(sid) or self._new_head(sid)
            self._push_entries(sid, head, entries if isinstance(entries, list) else list(entries),
                               result, [])
        return result

    def _push_entries(self, sid, head, entries, result, records) -> None:
        touched: list[StreamHead] = []
        self._extend(sid, head, entries, result, records, touched, head.labels)
        self._wal_write(records, touched)

    def _extend(self, sid, head, entries, result, records, touched, labels) -> None:
        """Validate and append ``entries`` to one head; queue their WAL record.

        The hot path of every push: one C call validates, appends and frames
        the WAL record (``BlockBuilder.extend_record``); Python-level work is
        per call, not per entry, except for rejected entries.
        """
        max_ts = head.max_ts
        floor = max_ts - self._ooo_ns if max_ts != I64_MIN else I64_MIN
        if floor < I64_MIN:
            floor = I64_MIN
        if len(entries) <= _SLICE_CHECK:
            self._extend_part(sid, head, entries, floor, result, records, touched, labels)
            return
        # Many entries for one stream: append them a block at a time, so head
        # blocks stay near block_size and no WAL record nears its 64 MiB limit
        # (sealing still waits until the WAL write; cut blocks only go to the
        # worker).  The out-of-order floor is the one of the whole call.
        opts = self.options
        for part in _slices(entries, opts.block_size):
            self._extend_part(sid, head, part, floor, result, records, touched, labels)
            if head.builder.size_bytes >= opts.block_size:
                if head._unfinished:
                    self._reconcile(head)
                self._cut_block(head, opts.chunk_target_size)

    def _extend_part(self, sid, head, entries, floor, result, records, touched, labels) -> None:
        b = head.builder
        bmem0 = b.memory_bytes()
        lsn = self.next_lsn
        n, rejects, record = b.extend_record(entries, self._max_line, floor, lsn, sid)
        if n:  # _emitted, inlined on the hot path
            self.next_lsn = lsn + 1
            records.append(record)
            head.note_append(lsn)
            touched.append(head)
            result.accepted += n
        if rejects:
            retry = []
            for idx, reason in rejects:
                e = entries[idx]
                ts = _entry_ts(e)
                if reason == "invalid timestamp" and not isinstance(ts, int):
                    try:
                        retry.append((to_ns(ts),) + tuple(e[1:]))
                        continue
                    except (TypeError, ValueError) as exc:
                        reason = f"invalid timestamp: {exc}"
                result.rejected.append((labels, ts, reason))
            if retry:
                # Converted datetimes go through the same C path, once more.
                lsn = self.next_lsn
                n, rej2, record = b.extend_record(retry, self._max_line, floor, lsn, sid)
                for idx, reason in rej2:
                    result.rejected.append((labels, retry[idx][0], reason))
                if n:
                    self._emitted(head, lsn, record, records, touched)
                    result.accepted += n
        self._head_mem += b.memory_bytes() - bmem0

    def _emitted(self, head, lsn, record, records, touched) -> None:
        """Account for a WAL record of ``head``'s new entries (sequence ``lsn``)."""
        self.next_lsn = lsn + 1
        records.append(record)
        head.note_append(lsn)
        touched.append(head)

    def _wal_write(self, records: list[bytes], touched: list[StreamHead]) -> None:
        new_streams = self._pending_stream_records
        if new_streams:
            records = [*new_streams.values(), *records]
        if records:
            try:
                self._wal.write(records)
            except BaseException as exc:
                self._broken = exc
                raise
            seg = self._wal.current_segment()
            if new_streams:
                for sid in new_streams:
                    self._stream_record_seg[sid] = seg
                new_streams.clear()
            self._wal_seg_max_lsn[seg] = self.next_lsn - 1
        if touched:
            self._after_append(touched)

    def _after_append(self, touched: list[StreamHead]) -> None:
        opts = self.options
        max_age = opts.chunk_max_age_ns
        target = opts.chunk_target_size
        full = self._full_chunks
        for head in touched:
            if head._unfinished:
                self._reconcile(head)
            if head.builder.size_bytes >= opts.block_size:
                if head.stream_id in full:  # rare: its last block is still not finished
                    self._seal_full_chunks([head])
                self._cut_block(head, target)
            if head.chunk_max_ts - head.chunk_min_ts > max_age:
                self._note_aged_chunk(head, max_age)
        if full:
            ready = [self.heads[sid] for sid, ends in full.items()
                     if all(b.stored is not None for b in self.heads[sid].cut[:ends[-1]])]
            if ready:
                self._seal_full_chunks(ready)
                self._truncate_wal()
        budget = self._heads_budget()
        if budget and self._head_mem > max(budget, self._pressure_floor):
            for head in list(self._unfinished_heads):  # count them exactly first
                self._reconcile(head, settle=True)
            if self._head_mem > max(budget, self._pressure_floor):
                self._relieve_memory_pressure(budget)
        elif self._pressure_floor and self._head_mem <= budget:
            self._pressure_floor = 0  # back under budget: the next excess is relieved at once
        if self._to_seal:
            heads = [self.heads[s] for s in self._to_seal if s in self.heads]
            self._to_seal.clear()
            self._seal(heads, release_memory=True)
            self._truncate_wal()
        elif opts.wal_max_bytes:
            wal_bytes = self._wal.size_bytes()
            if wal_bytes > opts.wal_max_bytes:
                self._seal_oldest_wal_holders()
            elif wal_bytes > opts.wal_max_bytes // 2:
                self._pace_wal_seals()
            else:
                self._wal_paced_at = self._wal.written_bytes()

    def _chunk_full_after_cut(self, head: StreamHead, target: int) -> bool:
        """Whether the block just cut completes ``head``'s open chunk.

        The rule (README, "How it works"): the exact stored size of the
        chunk's earlier blocks plus an estimate for the newest one (its raw
        size at the compression ratio of the block before it) reaches
        ``target``.  It depends only on the data, never on whether the worker
        has finished the newest block yet, so the chunk layout is the same
        however the threads ran, and the writer waits for nothing but blocks
        cut one block earlier (the worker has long finished those).
        """
        ends = self._full_chunks.get(head.stream_id)
        cut = head.cut[ends[-1] if ends else 0:]  # the blocks of the open chunk
        last = cut[-1]
        earlier = [b for b in head._unfinished if b is not last]
        if earlier:
            self._cut_worker.settle(earlier)
            self._reconcile(head)
        exact = sum(len(b.stored) for b in cut[:-1])
        if len(cut) >= 2:
            prev = cut[-2]
            estimate = last.raw_len * len(prev.stored) // max(prev.raw_len, 1)
        else:
            estimate = last.raw_len
        return exact + estimate >= target

    def _cut_block(self, head: StreamHead, target: int) -> None:
        """Cut ``head``'s full head block and note where a full chunk ends."""
        self._cut(head)
        if self._chunk_full_after_cut(head, target):
            self._full_chunks.setdefault(head.stream_id, []).append(len(head.cut))

    def _note_aged_chunk(self, head: StreamHead, max_age: int) -> None:
        """Note ``head``'s open chunk as full when it spans more than ``max_age``.

        Like a chunk that reached the target size, it is cut here (the worker
        compresses its last block) and sealed block-wise at a later push once
        that block is finished, so the writer never compresses it itself.  The
        span is the open chunk's: the blocks after a full chunk still waiting
        to be sealed start the next one.
        """
        sid = head.stream_id
        ends = self._full_chunks.get(sid)
        start = ends[-1] if ends else 0
        lo, hi = I64_MAX, I64_MIN
        for blk in head.cut[start:]:
            if blk.min_ts < lo:
                lo = blk.min_ts
            if blk.max_ts > hi:
                hi = blk.max_ts
        b = head.builder
        if b.n_entries:
            lo, hi = min(lo, b.min_ts), max(hi, b.max_ts)
        if lo > hi or hi - lo <= max_age:
            return
        if b.n_entries:
            self._cut(head)
        self._full_chunks.setdefault(sid, []).append(len(head.cut))

    def _seal_full_chunks(self, heads: list[StreamHead]) -> list[ChunkRef]:
        """Seal the full chunks of each head (its first cut blocks, noted in
        ``_full_chunks``), leaving its later blocks and head block open."""
        pending = {h.stream_id: self._full_chunks.pop(h.stream_id) for h in heads}
        done = dict.fromkeys(pending, 0)
        sealed: list[ChunkRef] = []
        for k in range(max(len(ends) for ends in pending.values())):
            batch = [h for h in heads if len(pending[h.stream_id]) > k]
            counts = {}
            for h in batch:
                end = pending[h.stream_id][k]
                counts[h.stream_id] = end - done[h.stream_id]
                done[h.stream_id] = end
            sealed += self._seal(batch, n_blocks=counts)
        return sealed

    def _cut(self, head: StreamHead, merge_from: int | None = None):
        """Cut ``head``'s block (the worker finishes it), keeping the memory count;
        merged with cut blocks ``merge_from`` on (``StreamHead.cut_merged``) if given."""
        mem0 = head.memory_bytes()
        if merge_from is None:
            blk = head.cut_block(self.options.codec_id, self._cut_worker)
        else:
            blk = head.cut_merged(merge_from, self.options.codec_id, self._cut_worker)
        self._head_mem += head.memory_bytes() - mem0
        if head._unfinished:
            self._unfinished_heads.add(head)
        return blk

    def _cut_under_pressure(self, head: StreamHead) -> None:
        """Cut ``head``'s block early, merged with its small cut blocks where it can be.

        Merging (``StreamHead.cut_merged``) is for the open chunk only: a
        head with a full chunk noted keeps its block positions until that
        chunk is sealed.
        """
        start = None
        if head.stream_id not in self._full_chunks:
            start = head.mergeable_from(_PRESSURE_MERGE_MAX_RAW)
        self._cut(head, start)

    def _reconcile(self, head: StreamHead, *, settle: bool = False) -> None:
        """Count ``head``'s finished cut blocks by stored size (``settle``: wait for all)."""
        if settle and head._unfinished:
            self._cut_worker.settle(head._unfinished)
        mem0 = head.memory_bytes()
        head.reconcile()
        self._head_mem += head.memory_bytes() - mem0
        if not head._unfinished:
            self._unfinished_heads.discard(head)

    def _heads_budget(self) -> int:
        """What the heads may hold: ``head_memory_budget`` less what the streams
        themselves cost (``STREAM_OVERHEAD`` each), but at least half of it (0: unbounded).

        Every stream the store knows holds memory whether or not its head is
        open (labels, index entry, postings); with 10,000 streams that is
        ~11 MiB, which would otherwise come on top of the budget.  Sealed
        chunks are not charged: under a small budget that would seal smaller
        chunks, whose index entries would take more of it, and so on.
        """
        budget = self.options.head_memory_budget
        if not budget:
            return 0
        return max(budget - len(self.index.streams) * STREAM_OVERHEAD, budget // 2)

    def _relieve_memory_pressure(self, budget: int) -> None:
        """Bring the head under budget: compress first, seal only what that cannot free.

        Loki's ingesters grow without bound here; we do not.  Cutting the
        head block of the largest heads (compressing it into a cut block and
        freeing the builder's buffers) keeps their entries in memory at a
        fraction of the size, so with many streams the chunks sealed later
        are several times larger and fewer than if pressure sealed at once;
        a smaller in-memory index and better compression follow.  Only when
        compressed data alone keeps the head over ``3/4`` of the budget are
        the largest heads sealed (queued in ``_to_seal``).
        """
        target = budget * 3 // 4  # budget: the heads' share (_heads_budget)
        heads = list(self.heads.values())
        heads.sort(key=lambda h: h.builder.memory_bytes(), reverse=True)
        cut: list[StreamHead] = []
        expect = self._head_mem
        for h in heads:
            bmem = h.builder.memory_bytes()
            if expect <= target or bmem < _MIN_PRESSURE_CUT:
                break
            if h.builder.n_entries:
                self._cut_under_pressure(h)  # the worker compresses these in parallel
                cut.append(h)
            mem0 = h.memory_bytes()
            h.release_idle_buffers()
            self._head_mem += h.memory_bytes() - mem0
            expect -= bmem * 3 // 4  # what compression frees, roughly (lz4 on logs: 3-6x)
        full = self.options.chunk_target_size
        for h in cut:
            self._reconcile(h, settle=True)
            # (a head with a full chunk noted seals that one at the next push)
            if h.cut_stored_bytes >= full and h.stream_id not in self._full_chunks:
                self._to_seal.add(h.stream_id)
        self._last_relief = time.monotonic()
        self._trim_heap()
        mem = self._head_mem
        self._pressure_floor = 0
        if mem <= target:
            return
        heads.sort(key=lambda h: h.memory_bytes(), reverse=True)
        for h in heads:
            if mem <= target:
                break
            if h.memory_bytes() < _MIN_PRESSURE_SEAL:
                # The rest are smaller still: over budget rather than tiny
                # chunks.  Until the heads grow by another eighth of the
                # budget there is nothing new to do, so no relief (two sorts
                # of every head) at every push meanwhile.
                self._pressure_floor = mem + budget // 8
                if mem > budget and not self._small_budget_warned:
                    self._small_budget_warned = True
                    self._warn_small_budget(heads, mem, budget)
                break
            if not h.empty:
                self._to_seal.add(h.stream_id)
                mem -= h.memory_bytes()

    def _warn_small_budget(self, heads: list[StreamHead], mem: int, budget: int) -> None:
        """Say once per store that the heads stay over a budget too small for them."""
        n_open = sum(1 for h in heads if not h.empty)
        need = len(self.index.streams) * STREAM_OVERHEAD + n_open * _MIN_PRESSURE_SEAL
        logging.getLogger("chunkstore.store").warning(
            "%s: head_memory_budget %.1f MiB is too small for %d streams written at once: "
            "their heads hold %.2f MiB against their share of %.2f MiB, each under %d KiB, "
            "and are left over budget rather than sealed as chunks of a few KiB; "
            "a budget of about %.0f MiB fits them (%d KiB a stream written at once "
            "plus %d bytes a known stream)",
            self.path, self.options.head_memory_budget / 2**20, n_open, mem / 2**20,
            budget / 2**20, _MIN_PRESSURE_SEAL // 1024, need / 2**20,
            _MIN_PRESSURE_SEAL // 1024, STREAM_OVERHEAD)

    def _trim_heap(self) -> None:
        """Give the allocator's free pages back to the OS, at most every
        ``_HEAP_TRIM_INTERVAL`` seconds; after a pressure relief, and after
        a seal that dropped heads within ``_PRESSURE_RECENT`` seconds of one.

        Both free head memory of all sizes, much of it made on the worker's
        thread (its own malloc arena), in an order that leaves free pages the
        allocator keeps while the heads refill from fresh ones.  1 GB into
        10,000 streams (the bench_ingest.py workload): the trim after reliefs
        took peak RSS from 161 to 133 MiB under a 64 MiB budget; adding it
        after seals, at most every 0.05 s instead of 0.25 s, from 156 to
        148-149 MiB under a 128 MiB budget and from 80 to 78 MiB under 64 MiB,
        for 0.3-0.4 s of trims in a run of 17-25 s.
        """
        now = time.monotonic()
        if now - self._last_heap_trim >= _HEAP_TRIM_INTERVAL:
            self._last_heap_trim = now
            _kernels.block.release_free_memory()

    # ------------------------------------------------------------------
    # sealing
    def _segment_for(self, min_ts: int) -> tuple[str, SegmentWriter]:
        day = _day_dir(min_ts)
        name = self._segment_of_day.get(day)
        seg = self._segments.get(name) if name else None
        if seg is not None and seg.size >= self.options.segment_max_size:
            self._commit_seals()  # queued fsyncs of this file first
            seg.close()
            del self._segments[name]
            seg = None
        if seg is None:
            d = ensure_day_dir(self.path, day)
            existing = [f for f in os.listdir(d) if f.endswith(".seg")]
            seq = 1 + max((int(f[:-4]) for f in existing if f[:-4].isdigit()), default=0)
            name = f"segments/{day}/{seq:08d}.seg"
            seg = SegmentWriter(os.path.join(self.path, name))
            self._segments[name] = seg
            self._segment_of_day[day] = name
        return name, seg

    def _seal(self, heads: list[StreamHead], *, release_memory: bool = False,
              n_blocks: dict[int, int] | None = None) -> list[ChunkRef]:
        """Write the open chunk of each head to a segment and record it in the index log.

        Order matters for crash safety: chunk bytes are fsynced before the
        index record that points at them, and the index record is fsynced
        before the WAL that still holds the entries may be truncated.
        """
        codec = self.options.codec_id
        pending: list[ChunkRef] = []
        early: list[ChunkRef] = []
        if n_blocks is None:
            # Full chunks noted by the size or age rule go first, as they are,
            # so a close, flush or idle seal keeps the layout those rules made
            # instead of merging them with the open rest.
            noted = [h for h in heads if h.stream_id in self._full_chunks]
            if noted:
                early = self._seal_full_chunks(noted)
        touched_segments: dict[str, SegmentWriter] = {}
        index_records: list[tuple[int, list]] = []
        for head in heads:
            if head.empty:
                continue
            mem0 = head.memory_bytes()
            n = n_blocks.get(head.stream_id) if n_blocks else None
            if n is None:
                self._full_chunks.pop(head.stream_id, None)  # all of it goes now
            blocks, last_lsn = head.take_chunk(codec, self._cut_worker, n)
            if release_memory and head.empty:
                # Nothing of the stream is left in memory: drop its head (made
                # again by the next append; the out-of-order window then comes
                # from the index's max_ts, which now holds the stream's newest).
                del self.heads[head.stream_id]
                self._head_mem -= mem0
                # Free its builder's buffers now: the caller's list keeps the
                # head object alive until every head of a seal is written
                # (10,000 at once when the WAL cap seals its oldest holders).
                head.release_idle_buffers()
            else:
                if release_memory and not head.builder.n_entries:
                    head.builder = _kernels.block.BlockBuilder()
                self._head_mem += head.memory_bytes() - mem0
            if not head._unfinished:
                self._unfinished_heads.discard(head)
            if self._cut_worker is not None:
                self._cut_worker.settle(blocks)
            chunk_bytes, meta = encode_chunk(
                head.labels.fingerprint,
                head.labels.canonical,
                [(b.stored, b.n_entries, b.min_ts, b.max_ts, b.text_len, b.token_filter)
                 for b in blocks],
            )
            try:
                name, seg = self._segment_for(meta.min_ts)
                offset = seg.append(chunk_bytes)
            except BaseException as exc:
                # The head has handed these entries over; only the WAL holds
                # them now.  Going on would let a later WAL truncation drop
                # them, so the store stops writing until it is reopened.
                self._broken = exc
                raise
            touched_segments[name] = seg
            ref = ChunkRef(
                chunk_id=self.next_chunk_id, stream_id=head.stream_id, segment=name,
                offset=offset, length=len(chunk_bytes), min_ts=meta.min_ts, max_ts=meta.max_ts,
                n_entries=meta.n_entries, text_bytes=meta.text_bytes,
                stored_bytes=len(chunk_bytes), max_lsn=last_lsn,
            )
            self.next_chunk_id += 1
            if head.stream_id not in self._logged_streams:
                lbls = head.labels
                index_records.append((STREAM, [head.stream_id, lbls.fingerprint, lbls.canonical]))
                self._logged_streams.add(head.stream_id)
                self._stream_record_seg.pop(head.stream_id, None)
            index_records.append((CHUNK, chunk_record(ref)))
            pending.append(ref)
        if not pending:
            return early
        # The segment fsync and then the index-log append (not fsynced: until
        # the WAL segments holding these entries are removed, and
        # _truncate_wal syncs the log first, a lost record only leaves an
        # unrecorded chunk, cut at open, whose entries the WAL replays;
        # FORMAT.md section 7) run on the committer's thread, in order.
        # Readers need neither: the chunk is in the in-memory index now.
        try:
            self._committer.submit(
                [seg for seg in touched_segments.values() if not seg.closed], index_records)
        except BaseException as exc:
            self._broken = exc
            raise
        for ref in pending:
            self.index.add_chunk(ref)
        if release_memory and time.monotonic() - self._last_relief < _PRESSURE_RECENT:
            self._trim_heap()
        return early + pending

    def _commit_seals(self) -> None:
        """Wait until every sealed chunk's segment is fsynced and its record is in the
        index log; before anything that needs those records (or appends after them)."""
        if self._committer is None:
            return
        try:
            self._committer.drain()
        except BaseException as exc:
            self._broken = exc
            raise

    def _commit_failed(self, exc: BaseException) -> None:
        """The committer thread's failure: the store stops writing until reopened."""
        if self._broken is None:
            self._broken = exc

    def _truncate_wal(self) -> None:
        """Remove WAL segments whose every entry is sealed."""
        live = [h.first_lsn for h in self.heads.values() if h.first_lsn]
        horizon = min(live) if live else self.next_lsn
        current = self._wal.current_segment()
        if not live and self._wal_seg_max_lsn.get(current):
            # Everything is sealed: start a fresh segment so the current one can go too.
            self._wal.cut()
            current = self._wal.current_segment()
        removable = [s for s, m in self._wal_seg_max_lsn.items() if m < horizon and s < current]
        if not removable:
            return
        upto = max(removable) + 1
        self._commit_seals()
        try:
            self._index_log.sync()  # the sealed chunks' records, before their WAL goes
        except BaseException as exc:
            self._broken = exc
            raise
        self._relog_streams_before(upto)
        self._wal.remove_segments_before(upto)
        for s in [s for s in self._wal_seg_max_lsn if s < upto]:
            del self._wal_seg_max_lsn[s]

    def _relog_streams_before(self, upto: int) -> None:
        """Copy the STREAM records of WAL-only streams out of segments about to go.

        A stream created without entries (or whose entries were all sealed
        before it reached the index log) is known only from its WAL STREAM
        record; the copy goes to the current segment and is fsynced before the
        old segments are deleted.
        """
        moving = sorted(sid for sid, seg in self._stream_record_seg.items() if seg < upto)
        if not moving:
            return
        streams = self.index.streams
        records = [wal_records.encode_stream(sid, streams[sid].labels.fingerprint,
                                             streams[sid].labels.canonical)
                   for sid in moving if sid in streams]
        try:
            self._wal.write(records)
            self._wal.sync()
        except BaseException as exc:
            self._broken = exc
            raise
        seg = self._wal.current_segment()
        for sid in moving:
            self._stream_record_seg[sid] = seg

    def _pace_wal_seals(self) -> None:
        """Over half of ``wal_max_bytes``: seal the heads holding the oldest WAL
        entries a group at a time, in step with what the WAL takes in.

        Streams written evenly all hold entries of the oldest WAL segment, so
        left to the cap, ``_seal_oldest_wal_holders`` seals nearly every head
        at once (6,000 of 10,000 in the 10,000-stream benchmark): a burst of
        chunks, and memory the allocator keeps fragmented once the heads
        refill (RSS 20 MiB higher after).  Here each group is the oldest
        ``heads x written / (cap / 4)`` heads, so every head has been sealed
        by the time the WAL takes in another quarter of the cap (the first
        round, whose heads all hold entries of the first segment, ends at
        three quarters), and the WAL is truncated as they go.  Candidates
        come from the front of ``heads``, whose order is about their age: a
        sealed head is dropped and made again at the end.
        """
        written = self._wal.written_bytes()
        quarter = self.options.wal_max_bytes // 4
        n_heads = len(self.heads)
        owed = n_heads * (written - self._wal_paced_at) // max(quarter, 1)
        if owed < max(1, min(_WAL_PACE_GROUP, n_heads // 16)):
            return
        self._wal_paced_at = written
        candidates = []
        for h in self.heads.values():
            if h.first_lsn:
                candidates.append(h)
                if len(candidates) >= 2 * owed:
                    break
        candidates.sort(key=lambda h: h.first_lsn)
        if candidates:
            self._seal(candidates[:owed], release_memory=True)
            self._truncate_wal()

    def _seal_oldest_wal_holders(self) -> None:
        if not self._wal_seg_max_lsn:
            return
        oldest = min(self._wal_seg_max_lsn)
        bound = self._wal_seg_max_lsn[oldest]
        heads = [h for h in self.heads.values() if h.first_lsn and h.first_lsn <= bound]
        if heads:
            self._seal(heads, release_memory=True)
        self._truncate_wal()

    def _maintenance_loop(self) -> None:
        interval = self.options.maintenance_interval
        while not self._maint_stop.wait(interval):
            try:
                self.maintain()
            except Exception:  # keep the thread alive; the error is logged, not lost
                logging.getLogger("chunkstore.store").exception(
                    "store %s: background maintenance failed", self.path)

    def maintain(self, now: float | None = None) -> None:
        """Seal idle chunks (and run due retention); the background thread calls this."""
        with self._lock:
            if self._closed or self.read_only or self._broken is not None:
                return
            t = time.monotonic() if now is None else now
            ri = self.options.retention_interval
            if ri and self.retention_policy is not None and t - self._last_retention >= ri:
                self._last_retention = t
                self.apply_retention()
            idle = self.options.chunk_idle_period
            heads = [h for h in self.heads.values()
                     if not h.empty and t - h.last_append >= idle]
            if heads:
                self._seal(heads, release_memory=True)
                self._truncate_wal()

    # ------------------------------------------------------------------
    # segment reading (shared by the querier, verify and compaction)
    def segment_reader(self, name: str) -> SegmentReader:
        r = self._readers.get(name)
        if r is None:
            with self._lock:
                r = self._readers.get(name)
                if r is None:
                    r = SegmentReader(os.path.join(self.path, name))
                    self._readers[name] = r
        return r

    def chunk_meta(self, ref: ChunkRef):
        meta = self._chunk_meta_cache.get(ref.chunk_id)
        if meta is None:
            meta = self.segment_reader(ref.segment).read_chunk_meta(ref.offset, ref.length)
            if len(self._chunk_meta_cache) > 32_768:  # ~1-2 KiB each: bounded memory
                self._chunk_meta_cache.clear()
            self._chunk_meta_cache[ref.chunk_id] = meta
        return meta

    # ------------------------------------------------------------------
    # read path (see chunkstore/querier.py)
    def query(self, logql: str, start=None, end=None, *, limit: int | None = None,
              direction: str = "backward"):
        """Entries matching a LogQL log query, merged across streams by time (lazy)."""
        from chunkstore import querier

        return querier.query(self, logql, start, end, limit=limit, direction=direction)

    def query_range(self, logql: str, start, end, step) -> list:
        """Evaluate a LogQL metric query at ``start, start+step, ... <= end``: ``list[Series]``."""
        from chunkstore import metric_query

        return metric_query.query_range(self, logql, start, end, step)

    def query_instant(self, logql: str, time=None):
        """Evaluate a LogQL metric query at one time: ``list[Sample]`` or a float (scalar)."""
        from chunkstore import metric_query

        return metric_query.query_instant(self, logql, time)

    def context(self, entry, before: int = 10, after: int = 10):
        """The ``before`` lines just before and ``after`` lines just after ``entry``
        in the same stream, oldest first (like ``grep -B/-A``)."""
        from chunkstore import querier

        return querier.context(self, entry, before, after)

    def tail(self, logql: str, *, start=None, poll_interval: float = 0.2, stop=None):
        """Matching entries from ``start`` (default: now), then new ones as they arrive."""
        from chunkstore import querier

        return querier.tail(self, logql, start=start, poll_interval=poll_interval, stop=stop)

    def verify(self):
        """Check every checksum (index log, chunks, blocks, WAL); a ``VerifyReport``."""
        from chunkstore.verify import verify_store

        return verify_store(self)

    # ------------------------------------------------------------------
    # keeping the disk in bounds (retention.py, deletion.py, compaction.py)
    def apply_retention(self, now=None, *, dry_run: bool = False):
        """Expire whole chunks past their stream's retention; a ``RetentionReport``."""
        from chunkstore.retention import apply_retention

        return apply_retention(self, now, dry_run=dry_run)

    def delete(self, logql: str, start=None, end=None):
        """Delete entries matching a selector plus optional line filters in ``[start, end)``.

        Effective for queries immediately (a durable tombstone); physically
        removed by the next :meth:`compact`.  Returns a ``DeleteReport``.
        """
        from chunkstore.deletion import delete

        return delete(self, logql, start, end)

    def compact(self, *, codec: str = "lz4hc"):
        """Merge small chunks, apply deletes, recompress; a ``CompactionReport``."""
        from chunkstore.compaction import compact

        return compact(self, codec=codec)

    def labels(self, start=None, end=None) -> list[str]:
        from chunkstore import querier

        return querier.label_names(self, start, end)

    def label_values(self, name: str, start=None, end=None, query: str | None = None) -> list[str]:
        from chunkstore import querier

        return querier.label_values(self, name, start, end, query)

    def series(self, selector: str, start=None, end=None) -> list[dict[str, str]]:
        from chunkstore import querier

        return querier.series(self, selector, start, end)

    def stats(self, selector: str | None = None, start=None, end=None):
        from chunkstore import querier

        return querier.stats(self, selector, start, end)


def _slices(entries: list, block_size: int) -> list[list]:
    """``entries`` cut into runs of about ``block_size`` line bytes (a str line
    counted at up to 4 bytes a character); malformed entries count as 0 (the
    kernel rejects them)."""
    out = []
    start = acc = 0
    for i, e in enumerate(entries):
        try:
            line = e[1]
            n = len(line) if type(line) is not str or line.isascii() else 4 * len(line)
        except (TypeError, IndexError, KeyError):
            n = 0
        acc += n + 16
        if acc >= block_size:
            out.append(entries[start:i + 1])
            start, acc = i + 1, 0
    if start < len(entries):
        out.append(entries[start:])
    return out


def chunk_record(ref: ChunkRef) -> list:
    return [ref.chunk_id, ref.stream_id, ref.segment, ref.offset, ref.length, ref.min_ts,
            ref.max_ts, ref.n_entries, ref.text_bytes, ref.stored_bytes, ref.max_lsn]


def chunk_from_record(v: list) -> ChunkRef:
    """The ChunkRef of an index CHUNK record; segment names are interned
    (a store has a few segment files and may have millions of chunks)."""
    ref = ChunkRef(*v[:11])
    ref.segment = sys.intern(ref.segment)
    return ref


def _entry_ts(e):
    try:
        return e[0]
    except (TypeError, IndexError, KeyError):
        return None


def open_store(path, *, read_only: bool = False, fsync: str = "batch", **options) -> Store:
    """Open (creating unless ``read_only``) the store at ``path``; see ``chunkstore.open``."""
    opts = StoreOptions.from_kwargs(fsync=fsync, **options)
    return Store(os.fspath(path), read_only=read_only, options=opts)
