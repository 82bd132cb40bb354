"""The index log: the durable, append-only record of streams and chunks.

Every sealed chunk, every stream that owns one, every chunk dropped by
retention or compaction and every delete request is one framed, checksummed
msgpack record (``docs/FORMAT.md`` section 6).  Opening a store replays this
file into :class:`chunkstore.index.MemIndex`; data files are never scanned.
When dead records pile up the writer rewrites the log as a snapshot of the
live records (write-temp, fsync, rename, fsync the directory).

Reading (:func:`scan_index_log`) stops at a torn or corrupt tail, which the
next writer cuts, and resynchronises past a damaged record that valid
records follow: the damaged range is skipped and reported, never half
applied, and the writer rewrites the log without it before its next append
(:meth:`IndexLog.rewrite_before_next_append`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
from collections.abc import Iterator
from typing import NamedTuple

import msgpack

from chunkstore._kernels import crc32c
from chunkstore.errors import CorruptionError
from chunkstore.fsdir import fsync_dir

__all__ = ["IndexLog", "IndexRecord", "IndexScan", "STREAM", "CHUNK", "DROP", "TOMBSTONE",
           "read_index_log", "scan_index_log"]

log = logging.getLogger("chunkstore.index")

MAGIC = b"CSIX"
VERSION = 1
HEADER = struct.Struct("<4sB7sI")  # magic, version, reserved, crc32c of first 12 bytes
HEADER_SIZE = HEADER.size
FRAME = struct.Struct("<II")  # body length, crc32c(length bytes + body)
MAX_BODY = 64 << 20

STREAM = 1  # [stream_id, fingerprint, canonical_labels]
CHUNK = 2  # [chunk_id, stream_id, segment, offset, length, min_ts, max_ts,
#             n_entries, text_bytes, stored_bytes, max_lsn]
DROP = 3  # [chunk_id, ...]
TOMBSTONE = 4  # [tombstone_id, selector_query, start_ns, end_ns, created_ns]
TOMBSTONE_DONE = 5  # [tombstone_id]  (physically applied by compaction)
BATCH = 6  # [n]: the next n records are one atomic unit (framing; never returned)
_TYPES = {STREAM, CHUNK, DROP, TOMBSTONE, TOMBSTONE_DONE, BATCH}


class IndexRecord(NamedTuple):
    type: int
    value: list
    offset: int


def _header_bytes() -> bytes:
    head = struct.pack("<4sB7s", MAGIC, VERSION, b"\0" * 7)
    return head + struct.pack("<I", crc32c(head))


def frame(rtype: int, value) -> bytes:
    """One framed record: length, checksum, type byte, msgpack payload."""
    body = bytes([rtype]) + msgpack.packb(value, use_bin_type=True)
    length = struct.pack("<I", len(body))
    return length + struct.pack("<I", crc32c(body, crc32c(length))) + body


class IndexScan(NamedTuple):
    """What :func:`scan_index_log` read: the valid records and every damaged range.

    ``end`` is where the valid records end (where a writer continues);
    ``tail`` describes a torn or corrupt tail starting at ``end`` (``None``
    when the file ends cleanly), and ``tail_complete`` is true when its first
    bad record is complete in the file (a checksum or decoding failure, an
    impossible length: damage, never a write in progress).  ``skipped`` holds
    one :class:`CorruptionError` per damaged range in the middle of the file
    that the reader resynchronised past (located at the range's first byte).
    """

    records: list[IndexRecord]
    end: int
    tail: CorruptionError | None
    tail_complete: bool
    skipped: list[CorruptionError]


def read_index_log(path: str, start: int = 0, *, tail_ok: bool = True
                   ) -> tuple[list[IndexRecord], int, CorruptionError | None]:
    """Read the valid records from ``start`` (0 = the file header); see :func:`scan_index_log`.

    Returns ``(records, end_offset, problem)``: ``end_offset`` is where the
    valid records end (where a writer continues); ``problem`` describes a
    torn or corrupt tail (``None`` when the file ends cleanly).  Damaged
    records in the middle are skipped (``scan_index_log`` lists them).  A
    damaged file header raises :class:`CorruptionError`; so does the tail
    problem with ``tail_ok=False``.
    """
    scan = scan_index_log(path, start)
    if scan.tail is not None and not tail_ok:
        raise scan.tail
    return scan.records, scan.end, scan.tail


def scan_index_log(path: str, start: int = 0) -> IndexScan:
    """Read every valid record, resynchronising past damage in the middle of the file.

    A record that fails (checksum, framing, decoding) is skipped when valid
    records follow it, and the reader continues with the next one
    (``docs/FORMAT.md`` section 6 gives the exact rule); with nothing valid
    after it, it starts the tail, which a writer cuts.  A BATCH applies whole
    or not at all: one damaged member skips the whole batch.  Cost: linear in
    the file size (the search for the next record checks checksums within a
    budget of a few times the file size, then gives up and calls the rest a
    damaged tail).  Raises :class:`CorruptionError` for a damaged file header.
    """
    with open(path, "rb") as f:
        data = f.read()
    pos = start
    if start == 0:
        if len(data) < HEADER_SIZE:
            raise CorruptionError("index log: file header is truncated", path, 0)
        magic, version, _res, crc = HEADER.unpack_from(data, 0)
        if magic != MAGIC or crc != crc32c(data[:12]):
            raise CorruptionError("index log: bad file header", path, 0)
        if version != VERSION:
            raise CorruptionError(f"index log: unsupported version {version}", path, 4)
        pos = HEADER_SIZE
    return _Scanner(data, path).run(pos)


class _Record(NamedTuple):
    type: int
    value: list
    offset: int
    framed_len: int  # the next record starts at offset + framed_len


# Why a record at some offset is not a valid one (``_Bad.kind``):
_TORN = 0  # the frame header or the declared body runs past the end of the file
_BAD_LENGTH = 1  # declared length 0 or above MAX_BODY: the length field is damaged
_BAD_CRC = 2  # complete in the file, checksum mismatch (the length may be damaged too)
_BAD_BODY = 3  # checksum matches, body undecodable or of an unknown type: length is right


class _Bad(NamedTuple):
    error: CorruptionError
    kind: int
    framed_len: int  # 8 + declared length (0 when unknown)


def _read_record(data: bytes, mv: memoryview, pos: int, path: str) -> _Record | _Bad:
    """The framed record at ``pos``, or a :class:`_Bad` saying why it is not one."""
    n = len(data)
    if n - pos < FRAME.size:
        return _Bad(CorruptionError("index log: torn record header", path, pos), _TORN, 0)
    length, crc = FRAME.unpack_from(data, pos)
    if length == 0 or length > MAX_BODY:
        return _Bad(CorruptionError(f"index log: record length {length} outside 1..{MAX_BODY}",
                                    path, pos), _BAD_LENGTH, 0)
    if pos + 8 + length > n:
        return _Bad(CorruptionError(f"index log: record length {length} runs past the end",
                                    path, pos), _TORN, 8 + length)
    body = mv[pos + 8: pos + 8 + length]
    if crc32c(body, crc32c(mv[pos: pos + 4])) != crc:
        return _Bad(CorruptionError("index log: record checksum mismatch", path, pos),
                    _BAD_CRC, 8 + length)
    rtype = body[0]
    try:
        value = msgpack.unpackb(body[1:], raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several types
        return _Bad(CorruptionError(f"index log: undecodable record: {exc}", path, pos),
                    _BAD_BODY, 8 + length)
    if rtype not in _TYPES or not isinstance(value, list):
        return _Bad(CorruptionError(f"index log: unknown record type {rtype}", path, pos),
                    _BAD_BODY, 8 + length)
    return _Record(rtype, value, pos, 8 + length)


# Where a valid record can start: its type byte is a known type and its payload
# opens with a msgpack array (fixarray, array16, array32).  The two classes are
# disjoint, so non-overlapping matches find every such pair; the regex engine
# (C) skips the rest, zero-filled and random bytes alike.
_RECORD_START = re.compile(b"[" + b"".join(re.escape(bytes([t])) for t in sorted(_TYPES))
                           + rb"][\x90-\x9f\xdc\xdd]")
#: Checksum work the search for the next valid record may do, per byte of the
#: file, plus a fixed allowance: bounds a crafted file full of plausible frames.
_RESYNC_BUDGET_PER_BYTE = 4
_RESYNC_BUDGET_FIXED = 1 << 20


class _Scanner:
    """One pass over an index log held in memory (see :func:`scan_index_log`)."""

    def __init__(self, data: bytes, path: str):
        self.data = data
        self.mv = memoryview(data)
        self.path = path
        self.n = len(data)
        self.budget = _RESYNC_BUDGET_PER_BYTE * self.n + _RESYNC_BUDGET_FIXED

    def read(self, pos: int) -> _Record | _Bad:
        return _read_record(self.data, self.mv, pos, self.path)

    def run(self, pos: int) -> IndexScan:
        records: list[IndexRecord] = []
        skipped: list[CorruptionError] = []
        n = self.n
        while pos < n:
            rec = self.read(pos)
            if isinstance(rec, _Bad):
                nxt = self.next_valid(pos, rec)
                if nxt is None:
                    return IndexScan(records, pos, rec.error, rec.kind != _TORN, skipped)
                skipped.append(_skipped(rec.error.detail, self.path, pos, nxt))
                pos = nxt
                continue
            if rec.type != BATCH:
                records.append(IndexRecord(rec.type, rec.value, rec.offset))
                pos += rec.framed_len
                continue
            # A batch applies whole or not at all: a power loss may persist a
            # prefix of one append (a compaction's new CHUNKs without its DROP).
            v = rec.value
            count = v[0] if len(v) == 1 and type(v[0]) is int else 0
            if count < 1:  # no writer writes this marker; skip it alone
                skipped.append(_skipped(f"index log: batch marker {v!r:.40} is invalid",
                                        self.path, pos, pos + rec.framed_len))
                pos += rec.framed_len
                continue
            members: list[_Record] = []
            bpos = pos + rec.framed_len
            bad: _Record | _Bad | None = None
            for _ in range(count):
                if bpos >= n:
                    bad = _Bad(CorruptionError("index log: batch ends early", self.path, bpos),
                               _TORN, 0)
                    break
                inner = self.read(bpos)
                if isinstance(inner, _Bad) or inner.type == BATCH:
                    bad = inner
                    break
                members.append(inner)
                bpos += inner.framed_len
            if bad is None:
                records.extend(IndexRecord(r.type, r.value, r.offset) for r in members)
                pos = bpos
                continue
            what = f"index log: batch of {count} records is incomplete ({len(members)} valid)"
            if isinstance(bad, _Record):
                # A marker where a member should be: the batch lost members
                # and the next append starts here.
                skipped.append(_skipped(what, self.path, pos, bpos))
                pos = bpos
                continue
            nxt = self.skip_batch_rest(bpos, bad, count - len(members) - 1)
            if nxt is None:
                if bad.kind == _TORN:  # the append was cut short, or is in progress
                    return IndexScan(records, pos, CorruptionError(what, self.path, pos),
                                     False, skipped)
                return IndexScan(records, pos, CorruptionError(
                    f"{what}: {bad.error.detail} at offset {bpos}", self.path, pos), True,
                    skipped)
            skipped.append(_skipped(f"{what}: {bad.error.detail} at offset {bpos}", self.path,
                                    pos, nxt))
            pos = nxt
        return IndexScan(records, pos, None, False, skipped)

    def skip_batch_rest(self, pos: int, bad: _Bad, rest: int) -> int | None:
        """Past the damaged member at ``pos`` and the ``rest`` members after it.

        Members are counted as valid records (a damaged one counts as one);
        a BATCH marker ends the batch early (the damage swallowed more than
        one member, and a new append starts there).  ``None`` when nothing
        valid follows the batch: it is the tail.
        """
        nxt = self.next_valid(pos, bad)
        while nxt is not None and rest > 0:
            rec = self.read(nxt)
            if isinstance(rec, _Bad):
                nxt = self.next_valid(nxt, rec)
            elif rec.type == BATCH:
                break
            else:
                nxt += rec.framed_len
                if nxt >= self.n:
                    return None
            rest -= 1
        return nxt

    def next_valid(self, pos: int, bad: _Bad) -> int | None:
        """Offset of the next valid record after the bad one at ``pos`` (``None``: none).

        When a valid record starts at the bad record's declared end, the
        reader continues there.  Otherwise the length field itself may be
        what is damaged and the next record is searched from ``pos + 1``
        (from the declared end after a decoding failure: the checksum vouches
        for the length).  A record that runs past the end of the file is no
        exception: bytes inside it are accepted only as two valid records in
        a row, which an append in progress or a torn append never shows, and
        which no field a user controls (label values are UTF-8, timestamps
        8 bytes) can forge.  Cutting the file where the valid records end
        therefore reads back the same records.
        """
        n = self.n
        if bad.kind != _BAD_LENGTH and bad.framed_len:
            after = pos + bad.framed_len
            if after < n and isinstance(self.read(after), _Record):
                return after
            if bad.kind == _BAD_BODY:
                return self.search(after) if after < n else None
        return self.search(pos + 1)

    def search(self, lo: int) -> int | None:
        """First offset at or after ``lo`` where two valid records follow each other.

        ``None`` when there is none, or when the checksum budget runs out.
        """
        data, n = self.data, self.n
        unpack_from = FRAME.unpack_from
        for m in _RECORD_START.finditer(data, lo + FRAME.size):
            q = m.start() - FRAME.size
            length, _crc = unpack_from(data, q)
            if length < 2 or q + 8 + length + FRAME.size > n:
                continue
            self.budget -= 4 + length
            if self.budget < 0:
                log.warning("index log %s: giving up the search for the next valid record at "
                            "offset %d (checksum budget exhausted)", self.path, q)
                return None
            rec = self.read(q)
            if not isinstance(rec, _Record):
                continue
            end = q + rec.framed_len
            nlen, _crc = unpack_from(data, end)
            if 0 < nlen <= MAX_BODY and end + 8 + nlen <= n:
                self.budget -= 4 + nlen
                if isinstance(self.read(end), _Record):
                    return q
        return None


def _skipped(detail: str, path: str, start: int, resume: int) -> CorruptionError:
    return CorruptionError(f"{detail}; skipped {resume - start} bytes, resuming at the next "
                           f"valid record at offset {resume}", path, start)


class IndexLog:
    """Writer side of the index log (one per store; serialised by the store lock)."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self.unsynced = False  # records appended with sync=False and not yet fsynced
        self.size = 0
        self.records_written = 0
        self._failed: BaseException | None = None
        self._repair: list[tuple[int, list]] | None = None

    @staticmethod
    def create(path: str) -> None:
        """Create an empty log atomically (write-temp, fsync, rename, fsync dir)."""
        write_atomic(path, _header_bytes())

    def open_append(self, valid_end: int) -> None:
        """Open for appending after ``valid_end``, cutting any torn tail there."""
        fd = os.open(self.path, os.O_RDWR)
        size = os.fstat(fd).st_size
        if size > valid_end:
            log.warning("index log %s: cutting %d bytes of torn tail at offset %d",
                        self.path, size - valid_end, valid_end)
            os.ftruncate(fd, valid_end)
            os.fsync(fd)
        os.lseek(fd, valid_end, os.SEEK_SET)
        self._fd = fd
        self.size = valid_end

    def rewrite_before_next_append(self, records: list[tuple[int, list]]) -> None:
        """Have the next :meth:`append` first replace the log with ``records`` (a repair).

        Used after replay skipped damaged records: new records are never
        appended behind damage, yet a writer that writes nothing leaves the
        file as it found it.  A :meth:`rewrite` in between supersedes it.
        """
        self._repair = list(records)

    @property
    def repair_pending(self) -> bool:
        """True while a repair scheduled by :meth:`rewrite_before_next_append` is unwritten."""
        return self._repair is not None

    def append(self, records: list[tuple[int, list]], *, sync: bool = True) -> int:
        """Append records in one write, fsync, and return the offset of the first.

        A pending repair (:meth:`rewrite_before_next_append`) is written
        first.  Raises ``OSError`` when the write or fsync fails, or when an
        earlier :meth:`rewrite` failed (the log then refuses appends until
        reopened).
        """
        assert self._fd is not None
        if self._failed is not None:
            raise OSError(errno.EIO, f"index log: an earlier rewrite failed ({self._failed}); "
                          "reopen the store", self.path)
        if self._repair is not None:
            log.warning("index log %s: rewriting it without its damaged records (%d records)",
                        self.path, len(self._repair))
            self.rewrite(self._repair)
        data = b"".join(frame(t, v) for t, v in records)
        if len(records) > 1:  # all or none after a power loss (see scan_index_log)
            data = frame(BATCH, [len(records)]) + data
        offset = self.size
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        self.records_written += len(records)
        if sync:
            os.fsync(self._fd)
            self.unsynced = False
        else:
            self.unsynced = True
        return offset

    def sync(self) -> None:
        """fsync records appended with ``sync=False`` (nothing to do when there are none)."""
        if self.unsynced and self._fd is not None:
            os.fsync(self._fd)
            self.unsynced = False

    def rewrite(self, records: list[tuple[int, list]]) -> None:
        """Replace the log with exactly ``records`` (a snapshot), atomically.

        A failure is fatal for this writer: past the rename ``self._fd`` is
        the replaced file, where appended records would be lost, and after a
        failed directory fsync the rename itself may not be durable.
        """
        data = _header_bytes() + b"".join(frame(t, v) for t, v in records)
        try:
            write_atomic(self.path, data)
        except BaseException as exc:
            self._failed = exc
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR)
        os.lseek(self._fd, 0, os.SEEK_END)
        self.size = len(data)
        self.records_written = len(records)
        self._repair = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: write-temp, fsync, rename, fsync the directory."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def iter_live(records: list[IndexRecord]) -> Iterator[IndexRecord]:
    """Records still live after DROP/TOMBSTONE_DONE records (for snapshots)."""
    dropped: set[int] = set()
    done: set[int] = set()
    for r in records:
        if r.type == DROP:
            dropped.update(r.value)
        elif r.type == TOMBSTONE_DONE:
            done.update(r.value)
    for r in records:
        if r.type == CHUNK and r.value[0] in dropped:
            continue
        if r.type == TOMBSTONE and r.value[0] in done:
            continue
        if r.type in (DROP, TOMBSTONE_DONE):
            continue
        yield r
