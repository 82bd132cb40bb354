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
_TYPES = {STREAM, CHUNK, DROP, TOMBSTONE, TOMBSTONE_DONE}


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
        if n - pos < FRAME.size:
            problem = CorruptionError("index log: torn record header", path, pos)
            break
        length, crc = FRAME.unpack_from(data, pos)
        if length == 0 or length > MAX_BODY or pos + 8 + length > n:
            problem = CorruptionError(f"index log: record length {length} runs past the end",
                                      path, pos)
            break
        body = mv[pos + 8: pos + 8 + length]
        if crc32c(body, crc32c(mv[pos: pos + 4])) != crc:
            problem = CorruptionError("index log: record checksum mismatch", path, pos)
            break
        rtype = body[0]
        try:
            value = msgpack.unpackb(body[1:], raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several types
            problem = CorruptionError(f"index log: undecodable record: {exc}", path, pos)
            break
        if rtype not in _TYPES or not isinstance(value, list):
            problem = CorruptionError(f"index log: unknown record type {rtype}", path, pos)
            break
        records.append(IndexRecord(rtype, value, pos))
        pos += 8 + length
    if problem is not None and not tail_ok:
        raise problem
    return records, pos, problem


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
