"""The index log: the durable, append-only record of streams and chunks.

Every sealed chunk, every stream that owns one, every chunk dropped by
retention or compaction and every delete request is one framed, checksummed
msgpack record (``docs/FORMAT.md`` section 6).  Opening a store replays this
file into :class:`chunkstore.index.MemIndex`; data files are never scanned.
When dead records pile up the writer rewrites the log as a snapshot of the
live records (write-temp, fsync, rename, fsync the directory).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from collections.abc import Iterator
from typing import NamedTuple

import msgpack

from chunkstore._kernels import crc32c
from chunkstore.errors import CorruptionError

__all__ = ["IndexLog", "IndexRecord", "STREAM", "CHUNK", "DROP", "TOMBSTONE", "read_index_log"]

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


def read_index_log(path: str, start: int = 0, *, tail_ok: bool = True
                   ) -> tuple[list[IndexRecord], int, CorruptionError | None]:
    """Read records from ``start`` (0 = the file header) to the last valid one.

    Returns ``(records, end_offset, problem)``: ``end_offset`` is where the
    valid records end (where a writer continues); ``problem`` describes a
    torn or corrupt tail (``None`` when the file ends cleanly).  A damaged
    file header raises :class:`CorruptionError`.
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
    records: list[IndexRecord] = []
    problem = None
    n = len(data)
    mv = memoryview(data)
    while pos < n:
        rec = _read_record(data, mv, pos, path)
        if isinstance(rec, CorruptionError):
            problem = rec
            break
        if rec.type != BATCH:
            records.append(IndexRecord(rec.type, rec.value, rec.offset))
            pos = rec.offset + rec.framed_len
            continue
        # A batch applies whole or not at all: a power loss may persist a
        # prefix of one append (a compaction's new CHUNKs without its DROP).
        count = rec.value[0] if len(rec.value) == 1 and isinstance(rec.value[0], int) else 0
        batch, bpos = [], rec.offset + rec.framed_len
        for _ in range(count):
            inner = _read_record(data, mv, bpos, path) if bpos < n else CorruptionError(
                "index log: batch ends early", path, bpos)
            if isinstance(inner, CorruptionError) or inner.type == BATCH:
                break
            batch.append(inner)
            bpos = inner.offset + inner.framed_len
        if count < 1 or len(batch) != count:
            problem = CorruptionError(
                f"index log: batch of {count} records is incomplete ({len(batch)} valid)",
                path, pos)
            break
        records.extend(IndexRecord(r.type, r.value, r.offset) for r in batch)
        pos = bpos
    if problem is not None and not tail_ok:
        raise problem
    return records, pos, problem


class _Record(NamedTuple):
    type: int
    value: list
    offset: int
    framed_len: int  # the next record starts at offset + framed_len


def _read_record(data: bytes, mv: memoryview, pos: int, path: str):
    """The framed record at ``pos``, or the :class:`CorruptionError` saying why it is not one."""
    n = len(data)
    if n - pos < FRAME.size:
        return CorruptionError("index log: torn record header", path, pos)
    length, crc = FRAME.unpack_from(data, pos)
    if length == 0 or length > MAX_BODY or pos + 8 + length > n:
        return CorruptionError(f"index log: record length {length} runs past the end", path, pos)
    body = mv[pos + 8: pos + 8 + length]
    if crc32c(body, crc32c(mv[pos: pos + 4])) != crc:
        return CorruptionError("index log: record checksum mismatch", path, pos)
    rtype = body[0]
    try:
        value = msgpack.unpackb(body[1:], raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several types
        return CorruptionError(f"index log: undecodable record: {exc}", path, pos)
    if rtype not in _TYPES or not isinstance(value, list):
        return CorruptionError(f"index log: unknown record type {rtype}", path, pos)
    return _Record(rtype, value, pos, 8 + length)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexLog:
    """Writer side of the index log (one per store; serialised by the store lock)."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self.size = 0
        self.records_written = 0
        self._failed: BaseException | None = None

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

    def append(self, records: list[tuple[int, list]], *, sync: bool = True) -> int:
        """Append records in one write, fsync, and return the offset of the first.

        Raises ``OSError`` when the write or fsync fails, or when an earlier
        :meth:`rewrite` failed (the log then refuses appends until reopened).
        """
        assert self._fd is not None
        if self._failed is not None:
            raise OSError(errno.EIO, f"index log: an earlier rewrite failed ({self._failed}); "
                          "reopen the store", self.path)
        data = b"".join(frame(t, v) for t, v in records)
        if len(records) > 1:  # all or none after a power loss (see read_index_log)
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
        return offset

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
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


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
