"""The write-ahead log: segment files, framing, group commit, replay and torn-tail repair.

Layout and bytes are in docs/FORMAT.md section 5; what the records mean is
:mod:`chunkstore.wal_records` (the split of Prometheus ``tsdb/wlog`` and
``tsdb/record``).  ``wal/`` holds segment files ``00000001.wal``,
``00000002.wal``, ... each a 16-byte header followed by framed records.

- :class:`WALWriter` appends framed records, one ``os.write`` per call, and
  makes them durable per its ``fsync`` mode (``always``, ``batch`` = group
  commit, ``never``).  A failed write or fsync is fatal: the writer never
  retries an fsync as if nothing happened (after a failed fsync the kernel may
  already have dropped the dirty pages), it raises and stays broken until the
  store is reopened and the log replayed.
- :func:`read_segments` replays every segment in order; a torn or corrupt
  tail ends replay at the last valid record and, with ``repair=True``, is
  truncated there — always reported in the :class:`ReplayReport` and logged.
- :class:`WALTailer` follows a log another process is writing.
"""

from __future__ import annotations

import errno as errno_mod
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from chunkstore._kernels import crc32c
from chunkstore.errors import ChunkstoreError, CorruptionError, StoreClosedError
from chunkstore.fsdir import fsync_dir
from chunkstore.wal_records import (
    FRAME_SIZE,
    MAX_BODY,
    RECORD_TYPES,
    EntriesRecord,
    StreamRecord,
    decode,
)

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "FSYNC_MODES",
    "WALWriter",
    "WALTailer",
    "WALReplay",
    "ReplayReport",
    "WALProblem",
    "WALBrokenError",
    "WALResetError",
    "read_segments",
    "list_segments",
    "segment_name",
    "segment_header",
    "find_valid_record",
]

log = logging.getLogger("chunkstore.wal")

MAGIC = b"CSWL"
VERSION = 1
_HEADER = struct.Struct("<4sB3sII")  # magic, version, reserved, sequence, crc32c(first 12)
HEADER_SIZE = _HEADER.size  # 16
_FRAME = struct.Struct("<II")  # body length, crc32c(length bytes + body)
FSYNC_MODES = ("always", "batch", "never")
_NAME_RE = re.compile(r"^(\d{8,})\.wal$")
_TMP_SUFFIX = ".tmp"

Record = StreamRecord | EntriesRecord


class WALBrokenError(ChunkstoreError, OSError):
    """The WAL writer failed an earlier write or fsync; reopen the store to recover.

    ``errno`` is the original error's; ``cause`` is the original exception.
    """

    def __init__(self, cause: BaseException, path: str | None = None):
        self.cause = cause
        code = getattr(cause, "errno", None) or errno_mod.EIO
        super().__init__(
            code,
            f"wal: writer is broken by an earlier failure ({cause}); "
            "reopen the store to replay the log",
        )
        self.filename = path

    def __reduce__(self):
        return (WALBrokenError, (self.cause, self.filename))


class WALResetError(ChunkstoreError):
    """A :class:`WALTailer`'s segment was removed or shrank under it; re-sync from scratch."""


class WALProblem(NamedTuple):
    """One torn, corrupt or missing piece of the log found by replay.

    ``offset`` is the absolute file offset where valid data ends (the start
    of the first bad record, 0 for a bad or missing segment); ``bytes_cut``
    counts the bytes after it that replay discarded (truncated when it ran
    with ``repair=True``; 0 for a skipped segment, which is never modified).
    """

    path: str
    offset: int
    reason: str
    bytes_cut: int

    def __str__(self) -> str:
        cut = f" ({self.bytes_cut} bytes discarded)" if self.bytes_cut else ""
        return f"{self.path} at offset {self.offset}: {self.reason}{cut}"

    def as_error(self) -> CorruptionError:
        """The same problem as a :class:`CorruptionError` (path and offset set)."""
        return CorruptionError(f"wal: {self.reason}", self.path, self.offset)


@dataclass
class ReplayReport:
    """What a replay read and every problem it found (complete once iteration ends).

    ``end`` is ``(segment, offset)`` just after the last valid record of the
    newest segment, where a writer continues and a :class:`WALTailer` can
    start (``None`` when the log is empty).
    """

    segments_read: int = 0
    records: int = 0
    bytes: int = 0
    problems: list[WALProblem] = field(default_factory=list)
    end: tuple[int, int] | None = None

    @property
    def clean(self) -> bool:
        """True when replay found nothing torn, corrupt or missing."""
        return not self.problems


# --------------------------------------------------------------------------
# names and headers


def segment_name(seq: int) -> str:
    """File name of segment ``seq``: at least 8 decimal digits, then ``.wal``."""
    return f"{seq:08d}.wal"


def list_segments(wal_dir: str | os.PathLike) -> list[int]:
    """Sequence numbers of the segment files in ``wal_dir``, ascending ([] if it is missing)."""
    try:
        names = os.listdir(wal_dir)
    except FileNotFoundError:
        return []
    seqs = []
    for name in names:
        m = _NAME_RE.match(name)
        if m:
            seqs.append(int(m.group(1)))
    seqs.sort()
    return seqs


def segment_header(seq: int) -> bytes:
    """The 16 header bytes of segment ``seq`` (FORMAT.md section 5)."""
    head = struct.pack("<4sB3sI", MAGIC, VERSION, b"\0\0\0", seq)
    return head + struct.pack("<I", crc32c(head))


def _header_problem(hdr: bytes, seq: int) -> str | None:
    """Why ``hdr`` is not a valid header for segment ``seq`` (None when it is)."""
    if len(hdr) < HEADER_SIZE:
        return f"segment header truncated ({len(hdr)} of {HEADER_SIZE} bytes)"
    magic, version, _reserved, hseq, crc = _HEADER.unpack(hdr)
    if magic != MAGIC:
        return f"bad segment magic {magic!r}"
    if crc != crc32c(hdr[:12]):
        return "segment header checksum mismatch"
    if version != VERSION:
        return f"unsupported segment version {version}"
    if hseq != seq:
        return f"segment header names sequence {hseq}, the file name {seq}"
    return None


def _write_all(fd: int, data) -> None:
    """``os.write`` until every byte is written (regular files rarely write short)."""
    view = memoryview(data)
    n = os.write(fd, view)
    while n < len(view):
        if n == 0:
            raise OSError(errno_mod.EIO, "wal: os.write wrote 0 bytes")
        view = view[n:]
        n = os.write(fd, view)


def _iov_max() -> int:
    """Buffers one ``os.writev`` may take (POSIX IOV_MAX: 1024 on Linux, at least 16)."""
    try:
        n = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        return 16
    return min(n, 1024) if n > 0 else 16


_IOV_MAX = _iov_max()


def _writev_all(fd: int, bufs: list) -> None:
    """Write ``bufs`` in order with ``os.writev``: one system call for up to
    IOV_MAX records, with no joined copy of them (a push's records are
    megabytes: joining cost a third of the write), resuming after a short write."""
    views = [memoryview(b) for b in bufs]
    i = 0
    while i < len(views):
        batch = views[i:i + _IOV_MAX]
        n = os.writev(fd, batch)
        if n == 0:
            raise OSError(errno_mod.EIO, "wal: os.writev wrote 0 bytes")
        for v in batch:  # skip what was written, cut the buffer it stopped in
            if n >= len(v):
                n -= len(v)
                i += 1
            else:
                views[i] = v[n:]
                break


# --------------------------------------------------------------------------
# reading one segment

_OK, _INCOMPLETE, _CORRUPT = 0, 1, 2


class _SegmentScan:
    """Walk the records of one open segment from ``start`` to ``size``.

    Iterating yields ``(offset, record, framed_len)``; afterwards ``end`` is
    the offset after the last valid record and ``kind``/``reason`` say why the
    walk stopped before ``size`` (``_INCOMPLETE``: the file ends inside a
    record, which is normal while a writer appends; ``_CORRUPT``: the bytes
    are wrong).  Every declared length is checked against the bytes left in
    the file before anything is read, so a corrupt length never allocates.
    """

    __slots__ = ("f", "size", "start", "end", "kind", "reason")

    def __init__(self, f, start: int, size: int):
        self.f = f
        self.start = start
        self.size = size
        self.end = start
        self.kind = _OK
        self.reason = ""

    def _stop(self, kind: int, reason: str) -> None:
        self.kind = kind
        self.reason = reason

    def _rest_is_zero(self, pos: int) -> bool:
        f = self.f
        f.seek(pos)
        left = self.size - pos
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk or chunk.count(0) != len(chunk):
                return False
            left -= len(chunk)
        return True

    def __iter__(self) -> Iterator[tuple[int, Record, int]]:
        f = self.f
        size = self.size
        pos = self.start
        f.seek(pos)
        read = f.read
        unpack = _FRAME.unpack
        while pos < size:
            avail = size - pos
            if avail < FRAME_SIZE:
                if self._rest_is_zero(pos):
                    self._stop(_CORRUPT, f"zero-filled tail ({avail} bytes)")
                else:
                    self._stop(_INCOMPLETE, f"short frame header ({avail} of 8 bytes)")
                return
            hdr = read(FRAME_SIZE)
            if len(hdr) < FRAME_SIZE:  # the file shrank under us
                self._stop(_INCOMPLETE, "file ended inside a frame header")
                return
            length, crc = unpack(hdr)
            if length == 0 or length > MAX_BODY or length > avail - FRAME_SIZE:
                if hdr == b"\0" * FRAME_SIZE and self._rest_is_zero(pos):
                    self._stop(_CORRUPT, f"zero-filled tail ({avail} bytes)")
                elif length == 0 or length > MAX_BODY:
                    self._stop(_CORRUPT, f"declared body length {length} outside 1..{MAX_BODY}")
                else:
                    self._stop(_INCOMPLETE, f"record of {length} bytes runs past the end of "
                                            f"the file ({avail - FRAME_SIZE} bytes left)")
                return
            body = read(length)
            if len(body) < length:
                self._stop(_INCOMPLETE, "file ended inside a record")
                return
            if crc32c(body, crc32c(hdr[:4])) != crc:
                self._stop(_CORRUPT, f"record checksum mismatch (body length {length})")
                return
            try:
                rec = decode(body[0], memoryview(body)[1:])
            except CorruptionError as exc:
                self._stop(_CORRUPT, f"bad record: {exc.detail}")
                return
            yield pos, rec, FRAME_SIZE + length
            pos += FRAME_SIZE + length
            self.end = pos


# A record's type byte, 8 bytes into its frame: what the search for a valid
# record looks for first (the regex engine, in C, skips every other byte,
# zero-filled and text bytes alike).
_TYPE_BYTE = re.compile(b"[" + b"".join(re.escape(bytes([t])) for t in sorted(RECORD_TYPES))
                        + b"]")
#: the largest top byte (the 4th, little-endian) of a valid length
_MAX_TOP = MAX_BODY >> 24
#: Checksum work :func:`find_valid_record` may do, per byte searched, plus a
#: fixed allowance: bounds a crafted file full of plausible frames.
_SEARCH_BUDGET_PER_BYTE = 4
_SEARCH_BUDGET_FIXED = 1 << 20


def find_valid_record(fd: int, lo: int, size: int) -> int | None:
    """Offset of the first valid record starting in ``[lo, size)`` of the open segment ``fd``.

    Valid: the frame ends by ``size``, its length is in 1..MAX_BODY, its
    checksum matches and its body decodes.  This tells a damaged length from
    a torn tail: an append is written front to back, so nothing valid
    follows a record that is only cut short, while a record whose length
    field is damaged (and now seems to run past the end of the file) is
    followed by the records written after it.  The one exception is a record
    forged inside a log line of the record cut short (line bytes are
    arbitrary): it can only make damage be reported that is not there.

    Only a frame whose declared end is the end of the data or the possible
    start of another frame (a length's top byte at most MAX_BODY's and a
    known type byte 8 bytes on, or fewer than 9 bytes left) is checksummed:
    every record a writer wrote passes unless the next one is damaged there
    too, while in random bytes about one candidate in 6,500 does.  Reads the
    ``size - lo`` bytes once (never a declared length); the checksums it
    computes are bounded by 4 x those bytes + 1 MiB, past which it gives up
    and returns ``None``, as it does when there is no valid record.
    """
    if size - lo < FRAME_SIZE:
        return None
    data = os.pread(fd, size - lo, lo)  # shorter if the file shrank meanwhile
    n = len(data)
    budget = _SEARCH_BUDGET_PER_BYTE * n + _SEARCH_BUDGET_FIXED
    view = memoryview(data)
    unpack_from = _FRAME.unpack_from
    types = RECORD_TYPES
    for m in _TYPE_BYTE.finditer(data, FRAME_SIZE):
        q = m.start() - FRAME_SIZE
        if data[q + 3] > _MAX_TOP:
            continue
        length, crc = unpack_from(data, q)
        end = q + FRAME_SIZE + length
        if length < 2 or length > MAX_BODY or end > n:
            continue
        if n - end > FRAME_SIZE and (data[end + 3] > _MAX_TOP
                                     or data[end + FRAME_SIZE] not in types):
            continue
        budget -= 4 + length
        if budget < 0:
            log.warning("wal: giving up the search for a valid record after offset %d "
                        "(checksum budget exhausted)", lo)
            return None
        body = view[q + FRAME_SIZE:end]
        if crc32c(body, crc32c(view[q:q + 4])) != crc:
            continue
        try:
            decode(body[0], body[1:])
        except CorruptionError:
            continue
        return lo + q
    return None


def _valid_end(path: str, seq: int) -> int | None:
    """Where a writer may append to segment ``seq``: its size if it ends cleanly.

    Checks the header, walks the frame lengths to the end of the file and
    verifies the checksum of the last record; ``None`` when any of that fails
    (the caller should have repaired the tail first; the writer then starts a
    fresh segment rather than appending after garbage).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if _header_problem(f.read(HEADER_SIZE), seq) is not None:
            return None
        pos, last = HEADER_SIZE, None
        buf, buf_start = b"", pos  # 1 MiB windows: one read serves many small records
        unpack_from = struct.unpack_from
        while pos < size:
            rel = pos - buf_start
            if rel + 4 > len(buf):
                f.seek(pos)
                buf, buf_start, rel = f.read(1 << 20), pos, 0
                if len(buf) < FRAME_SIZE:
                    return None
            (length,) = unpack_from("<I", buf, rel)
            if length == 0 or length > MAX_BODY or length > size - pos - FRAME_SIZE:
                return None
            last = pos
            pos += FRAME_SIZE + length
        if last is not None:
            scan = _SegmentScan(f, last, size)
            for _ in scan:
                pass
            if scan.end != size:
                return None
        return pos


# --------------------------------------------------------------------------
# replay


def read_segments(wal_dir: str | os.PathLike, *, repair: bool,
                  tail_ok: bool | None = None) -> WALReplay:
    """Replay every segment of ``wal_dir`` in order: an iterator of ``(seq, offset, record)``.

    ``offset`` is the record's absolute offset in its segment file.  The
    returned :class:`WALReplay` has a ``report`` (:class:`ReplayReport`) that is
    complete, and every repair done, once the iterator is exhausted.

    - A torn or corrupt tail of the **last** segment ends replay at the last
      valid record.  With ``repair=True`` the file is truncated there and
      fsynced; the cut is reported and logged (warning on ``chunkstore.wal``).
    - A bad record in an **earlier** segment ends that segment (its later
      records are lost; reported) and replay goes on with the next segment;
      with ``repair=True`` that segment's tail is truncated too.
    - A segment with a missing or corrupt header is reported and skipped,
      never modified; a gap in the sequence numbers is reported.

    ``repair=False`` never modifies a file.  ``tail_ok`` (default: ``not
    repair``) is for read-only openers while a writer appends: a torn or
    corrupt tail of the last segment then just ends replay, unreported.
    Raises ``ValueError`` for ``repair=True`` with ``tail_ok=True``.
    """
    if tail_ok is None:
        tail_ok = not repair
    if repair and tail_ok:
        raise ValueError("wal replay: repair=True with tail_ok=True (a repairer owns the log)")
    return WALReplay(os.fspath(wal_dir), repair, tail_ok)


class WALReplay:
    """Iterator over ``(seq, offset, record)`` of a replay; see :func:`read_segments`."""

    def __init__(self, wal_dir: str, repair: bool, tail_ok: bool):
        self.wal_dir = wal_dir
        self.repair = repair
        self.tail_ok = tail_ok
        self.report = ReplayReport()
        self._it = self._run()

    def __iter__(self) -> WALReplay:
        return self

    def __next__(self) -> tuple[int, int, Record]:
        return next(self._it)

    def _problem(self, path: str, offset: int, reason: str, cut: int, repaired: bool) -> None:
        self.report.problems.append(WALProblem(path, offset, reason, cut))
        if repaired:
            action = f"; truncated {cut} bytes"
        elif cut:
            action = f"; {cut} bytes after it ignored (not repaired)"
        else:
            action = ""
        log.warning("wal: %s at offset %d: %s%s", path, offset, reason, action)

    def _run(self) -> Iterator[tuple[int, int, Record]]:
        report = self.report
        seqs = list_segments(self.wal_dir)
        prev = None
        for i, seq in enumerate(seqs):
            last = i == len(seqs) - 1
            path = os.path.join(self.wal_dir, segment_name(seq))
            if prev is not None and seq != prev + 1:
                missing = os.path.join(self.wal_dir, segment_name(prev + 1))
                self._problem(missing, 0, f"segments {prev + 1}..{seq - 1} are missing; "
                              "their records are lost", 0, False)
            prev = seq
            try:
                f = open(path, "r+b" if self.repair else "rb")
            except FileNotFoundError:  # removed by a concurrent writer's truncation
                log.debug("wal: %s vanished during replay", path)
                continue
            with f:
                size = os.fstat(f.fileno()).st_size
                bad = _header_problem(f.read(HEADER_SIZE), seq)
                if bad is not None:
                    self._problem(path, 0, f"{bad}; segment skipped", 0, False)
                    if last:
                        report.end = (seq + 1, HEADER_SIZE)  # where a writer starts anew
                    continue
                scan = _SegmentScan(f, HEADER_SIZE, size)
                for offset, rec, n in scan:
                    report.records += 1
                    report.bytes += n
                    yield seq, offset, rec
                report.segments_read += 1
                if last:
                    report.end = (seq, scan.end)
                if scan.kind == _OK:
                    continue
                if last and self.tail_ok:
                    log.debug("wal: %s at offset %d: tail not complete (writer active?): %s",
                              path, scan.end, scan.reason)
                    continue
                reason = scan.reason
                if scan.kind == _INCOMPLETE:
                    # Cut all the same (replay semantics), but say when the
                    # bytes cut hold valid records: not a torn tail.
                    after = find_valid_record(f.fileno(), scan.end + 1, size)
                    if after is not None:
                        reason += (f"; a valid record follows at offset {after}: the length "
                                   "is damaged, not a torn tail")
                if not last:
                    reason += "; the rest of this segment is lost, replay goes on with the next"
                cut = size - scan.end
                if self.repair:
                    f.truncate(scan.end)
                    f.flush()
                    os.fsync(f.fileno())
                self._problem(path, scan.end, reason, cut, self.repair)


# --------------------------------------------------------------------------
# writing


class WALWriter:
    """Appends framed records to the newest segment and makes them durable.

    ``fsync`` is the durability policy:

    - ``"always"``: every :meth:`write` is fsynced before it returns;
    - ``"batch"`` (group commit): a write is durable at the latest
      ``batch_interval`` seconds after it (a daemon thread fsyncs when there
      are unsynced bytes) and never more than ``batch_bytes`` bytes are
      unsynced: at half of that the thread is woken to fsync at once while
      writers go on, and a write that finds ``batch_bytes`` unsynced fsyncs
      synchronously (so a fast writer rarely waits for the disk and the bound
      still holds); ``batch_bytes=0`` means no byte bound;
    - ``"never"``: only :meth:`sync`, :meth:`close` and segment cuts fsync.

    A new segment is started before a write that would take the current one
    past ``segment_size`` bytes (so a segment exceeds it only when a single
    write is larger); the old segment is fsynced first in every mode, so a
    crash can lose a suffix of the log but never leave a hole in it.

    Thread-safe.  Any failed write or fsync is fatal: the caller gets an
    ``OSError`` (original errno, context in the message), and every later call
    raises :class:`WALBrokenError` until the store is reopened.  Use after
    :meth:`close` raises :class:`StoreClosedError`.
    """

    def __init__(self, wal_dir: str | os.PathLike, *, fsync: str = "batch",
                 segment_size: int = 64 << 20, batch_interval: float = 1.0,
                 batch_bytes: int = 16 << 20):
        if fsync not in FSYNC_MODES:
            raise ValueError(f"wal: fsync must be 'always', 'batch' or 'never', got {fsync!r}")
        if segment_size <= 0:
            raise ValueError(f"wal: segment_size must be positive, got {segment_size}")
        if not batch_interval > 0:
            raise ValueError(f"wal: batch_interval must be positive seconds, got {batch_interval}")
        if batch_bytes < 0:
            raise ValueError(
                f"wal: batch_bytes must be >= 0 (0 = no byte bound), got {batch_bytes}")
        self.dir = os.fspath(wal_dir)
        self.fsync = fsync
        self.segment_size = segment_size
        self.batch_interval = float(batch_interval)
        self.batch_bytes = batch_bytes
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._fd: int | None = None
        self._seq = 0
        self._segs: list[int] = []
        self._seg_size = 0  # bytes in the current segment file
        self._total = 0  # bytes in all segment files
        self._written = 0  # bytes written by this writer ...
        self._synced = 0  # ... and how many of them are known durable
        self._dirty_since: float | None = None  # monotonic time of the oldest unsynced write
        self._sync_now = False  # half of batch_bytes unsynced: the thread fsyncs at once
        self._broken: BaseException | None = None
        self._opened = False
        self._closed = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------
    def open(self) -> WALWriter:
        """Continue after the last record of the newest segment, or start a new one.

        Replay (with ``repair=True``) first: when the newest segment does not
        end cleanly (bad header, torn or corrupt tail) the writer does not
        append after it but starts the next segment, and logs a warning.
        Leftover ``*.wal.tmp`` files of an interrupted segment creation are
        removed.  Returns ``self``.
        """
        with self._lock:
            if self._opened:
                raise StoreClosedError("wal: writer already opened (open() is called once)")
            os.makedirs(self.dir, exist_ok=True)
            for name in os.listdir(self.dir):
                if name.endswith(".wal" + _TMP_SUFFIX):
                    os.unlink(os.path.join(self.dir, name))
            seqs = list_segments(self.dir)
            self._total = sum(os.stat(os.path.join(self.dir, segment_name(s))).st_size
                              for s in seqs)
            self._segs = seqs
            if seqs:
                seq = seqs[-1]
                path = os.path.join(self.dir, segment_name(seq))
                end = _valid_end(path, seq)
                if end is not None:
                    self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
                    self._seq = seq
                    self._seg_size = end
                else:
                    log.warning("wal: %s does not end with a valid record (not repaired?); "
                                "starting segment %d", path, seq + 1)
                    self._start_segment(seq + 1)
            else:
                self._start_segment(1)
            self._opened = True
            if self.fsync == "batch":
                self._thread = threading.Thread(target=self._sync_loop, daemon=True,
                                                name=f"chunkstore-wal-sync {self.dir}")
                self._thread.start()
        return self

    def __enter__(self) -> WALWriter:
        if not self._opened:
            self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Sync, stop the sync thread, close the segment.  Idempotent.

        The file is closed even when the writer is broken; then
        :class:`WALBrokenError` is raised so the caller knows the tail may
        not be durable.
        """
        self._stop_thread()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._fd is not None and self._broken is None and self._written > self._synced:
                    try:
                        os.fsync(self._fd)
                        self._synced = self._written
                    except OSError as exc:
                        self._broken = exc
                        log.error("wal: fsync of %s failed on close: %s", self._path(), exc)
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
            if self._broken is not None:
                raise WALBrokenError(self._broken, self._path())

    def _abandon(self) -> None:
        """Drop the file without syncing (tests simulating kill -9)."""
        self._stop_thread()
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _stop_thread(self) -> None:
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()

    # -- state ---------------------------------------------------------------
    def current_segment(self) -> int:
        """Sequence number of the segment being appended to."""
        return self._seq

    def segments(self) -> list[int]:
        """Sequence numbers of every segment file, ascending (including skipped bad ones)."""
        with self._lock:
            return list(self._segs)

    def size_bytes(self) -> int:
        """Bytes in all segment files (O(1), tracked by the writer)."""
        return self._total

    def written_bytes(self) -> int:
        """Bytes this writer has written since it was opened (never goes down)."""
        return self._written

    def unsynced_bytes(self) -> int:
        """Bytes written but not yet known durable."""
        return self._written - self._synced

    @property
    def broken(self) -> BaseException | None:
        """The error that broke the writer, or ``None``."""
        return self._broken

    def _check(self) -> None:
        """Assert the writer's invariants against the files (stress and property tests)."""
        with self._lock:
            assert self._segs == sorted(set(self._segs)), self._segs
            assert self._synced <= self._written
            if self._fd is None:
                return
            assert self._segs and self._segs[-1] == self._seq
            assert list_segments(self.dir) == self._segs
            assert os.fstat(self._fd).st_size == self._seg_size
            assert sum(os.path.getsize(self._path(s)) for s in self._segs) == self._total
            if self._broken is None:
                assert _valid_end(self._path(), self._seq) == self._seg_size

    def _path(self, seq: int | None = None) -> str:
        return os.path.join(self.dir, segment_name(self._seq if seq is None else seq))

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreClosedError(f"wal: writer for {self.dir} is closed")
        if not self._opened:
            raise StoreClosedError(f"wal: writer for {self.dir} is not open (call open())")
        if self._broken is not None:
            raise WALBrokenError(self._broken, self._path())

    def _fail(self, what: str, exc: OSError) -> OSError:
        """Record a fatal error; return the ``OSError`` to raise to the caller.

        The error is logged before the writer is marked broken, so whoever
        observes ``broken`` (another thread, a test) also finds the log line.
        """
        log.error("wal: %s failed, the writer is now broken: %s", what, exc)
        self._broken = exc
        return OSError(exc.errno, f"wal: {what} failed: {exc.strerror or exc}", exc.filename)

    # -- writing -------------------------------------------------------------
    def write(self, framed: bytes | list[bytes]) -> int:
        """Append framed records with one ``os.write``; durable per the fsync mode.

        ``framed`` is one framed record or a list of them (encoded by
        :mod:`chunkstore.wal_records`); a list is written with one
        ``writev`` (per 1,024 records), and always lands in one segment.  Returns the sequence
        number of that segment.  Raises ``OSError`` when the write or fsync
        fails (fatal, see the class), :class:`WALBrokenError` after an
        earlier failure, :class:`StoreClosedError` after :meth:`close`.
        """
        if isinstance(framed, list | tuple):
            data = framed[0] if len(framed) == 1 else list(framed)
        else:
            data = framed
        n = sum(map(len, data)) if type(data) is list else len(data)
        with self._lock:
            self._check_usable()
            if n == 0:
                return self._seq
            if self._seg_size > HEADER_SIZE and self._seg_size + n > self.segment_size:
                self._cut_locked()
            try:
                if type(data) is list:
                    _writev_all(self._fd, data)
                else:
                    _write_all(self._fd, data)
            except OSError as exc:
                raise self._fail(f"write of {n} bytes to {self._path()}", exc) from exc
            self._seg_size += n
            self._total += n
            self._written += n
            mode = self.fsync
            if mode == "always":
                self._sync_locked()
            elif mode == "batch":
                unsynced = self._written - self._synced
                limit = self.batch_bytes
                if limit and unsynced >= limit:
                    self._sync_locked()
                elif self._dirty_since is None:
                    self._dirty_since = time.monotonic()
                    self._cond.notify()
                if limit and not self._sync_now and unsynced * 2 >= limit \
                        and self._written > self._synced:
                    self._sync_now = True
                    self._cond.notify()
            return self._seq

    def sync(self) -> None:
        """Fsync everything written so far, now.  Raises like :meth:`write`."""
        with self._lock:
            self._check_usable()
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._written == self._synced:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise self._fail(f"fsync of {self._path()}", exc) from exc
        self._synced = self._written
        self._dirty_since = None
        self._sync_now = False

    def cut(self) -> int:
        """Start a new segment now (a no-op while the current one holds no record).

        Returns the current segment's sequence number afterwards.
        """
        with self._lock:
            self._check_usable()
            if self._seg_size > HEADER_SIZE:
                self._cut_locked()
            return self._seq

    def _cut_locked(self) -> None:
        # Sync the old segment before the new one exists: after an OS crash
        # the log then loses at most a suffix, never a piece in the middle.
        self._sync_locked()
        old = self._fd
        self._start_segment(self._seq + 1)
        os.close(old)

    def _start_segment(self, seq: int) -> None:
        """Create segment ``seq`` atomically (temp, fsync, rename, fsync dir); append to it."""
        path = self._path(seq)
        tmp = path + _TMP_SUFFIX
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                _write_all(fd, segment_header(seq))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
            fsync_dir(self.dir)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise self._fail(f"creating segment {path}", exc) from exc
        self._fd = fd
        self._seq = seq
        self._segs.append(seq)
        self._seg_size = HEADER_SIZE
        self._total += HEADER_SIZE

    def remove_segments_before(self, seq: int) -> int:
        """Delete whole segments numbered below ``seq`` (never the current one).

        Fsyncs the directory afterwards.  Returns how many were removed.
        Raises ``OSError`` if a removal fails (not fatal to the writer: a
        segment that survives is replayed again, and the store skips its
        entries by LSN).
        """
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"wal: writer for {self.dir} is closed")
            bound = min(seq, self._seq)
            victims = [s for s in self._segs if s < bound]
            for s in victims:
                path = self._path(s)
                try:
                    size = os.stat(path).st_size
                    os.unlink(path)
                except FileNotFoundError:
                    size = 0
                self._total -= size
                self._segs.remove(s)
            if victims:
                fsync_dir(self.dir)
            return len(victims)

    # -- group commit --------------------------------------------------------
    def _sync_loop(self) -> None:
        """Fsync at the latest ``batch_interval`` after the oldest unsynced write.

        The fsync runs on a duplicate of the descriptor without the lock held,
        so writers keep appending meanwhile (that is the point of group
        commit); a segment cut in between fsyncs the old segment itself.
        """
        cond = self._cond
        interval = self.batch_interval
        with cond:
            while not self._stopping:
                since = self._dirty_since
                if since is None or self._broken is not None or self._fd is None:
                    cond.wait()
                    continue
                delay = 0 if self._sync_now else since + interval - time.monotonic()
                if delay > 0:
                    cond.wait(delay)
                    continue
                mark = self._written
                path = self._path()
                self._dirty_since = None
                self._sync_now = False
                err = None
                try:
                    fd = os.dup(self._fd)
                except OSError as exc:
                    err = exc
                else:
                    cond.release()
                    try:
                        os.fsync(fd)
                    except OSError as exc:
                        err = exc
                    finally:
                        os.close(fd)
                        cond.acquire()
                if err is not None:
                    if self._broken is None:
                        self._fail(f"background fsync of {path}", err)
                elif mark > self._synced:
                    self._synced = mark


# --------------------------------------------------------------------------
# tailing


class WALTailer:
    """Incremental reader of a log another process is writing (read-only openers, ``tail``).

    Remembers ``(segment, offset)``; :meth:`poll` returns the complete records
    appended since the last poll as ``(seq, offset, record)``, moving on to
    newer segments.  ``start`` is where to begin (``ReplayReport.end`` after a
    replay); ``None`` starts at the oldest segment.  Never modifies a file.
    Problems in segments the writer has finished (a corrupt record, a bad
    header, missing segments) are appended to ``problems`` and skipped.
    """

    def __init__(self, wal_dir: str | os.PathLike, *, start: tuple[int, int] | None = None):
        self.dir = os.fspath(wal_dir)
        self.problems: list[WALProblem] = []
        if start is None:
            self._seq: int | None = None
            self._off = HEADER_SIZE
        else:
            self._seq, self._off = start

    @property
    def position(self) -> tuple[int, int] | None:
        """``(segment, offset)`` of the next record to read (``None`` before the first)."""
        return None if self._seq is None else (self._seq, self._off)

    def _reset(self, why: str) -> WALResetError:
        return WALResetError(f"wal tail: segment {self._seq} {why}; re-sync from the store")

    def poll(self) -> list[tuple[int, int, Record]]:
        """New complete records since the last poll, oldest first.

        Raises :class:`WALResetError` when the segment being read was removed
        (a newer one exists but it does not) or shrank below the position.
        """
        out: list[tuple[int, int, Record]] = []
        while True:
            # List before reading: a segment with a newer one beside it is
            # final (the writer creates the next one only after its last
            # write here), so reading it to its end then loses nothing.
            seqs = list_segments(self.dir)
            if self._seq is None:
                if not seqs:
                    return out
                self._seq, self._off = seqs[0], HEADER_SIZE
            seq = self._seq
            later = [s for s in seqs if s > seq]
            path = os.path.join(self.dir, segment_name(seq))
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                if later:
                    raise self._reset("was removed") from None
                return out  # not created yet
            with f:
                size = os.fstat(f.fileno()).st_size
                if size < self._off:
                    raise self._reset(f"shrank to {size} bytes below offset {self._off}")
                bad = _header_problem(f.read(HEADER_SIZE), seq)
                if bad is not None:
                    if not later:
                        return out
                    self.problems.append(WALProblem(path, 0, f"{bad}; segment skipped", 0))
                else:
                    scan = _SegmentScan(f, self._off, size)
                    for offset, rec, _n in scan:
                        out.append((seq, offset, rec))
                    self._off = scan.end
                    if not later:
                        return out
                    if scan.kind != _OK:
                        self.problems.append(WALProblem(
                            path, scan.end, scan.reason + "; the rest of this segment is lost",
                            size - scan.end))
            nxt = later[0]
            if nxt != seq + 1:
                self.problems.append(WALProblem(
                    os.path.join(self.dir, segment_name(seq + 1)), 0,
                    f"segments {seq + 1}..{nxt - 1} are missing; their records are lost", 0))
            self._seq, self._off = nxt, HEADER_SIZE
