"""Segment files on the write path: create, append chunks, fsync, reopen.

A segment (``docs/FORMAT.md`` section 4) is a 16-byte header followed by
whole chunks.  :class:`SegmentWriter` creates one atomically (temp file,
fsync, rename, fsync of the directory), appends each chunk with a single
positioned write at the end, and makes an fsync failure permanent: after a
failed fsync the kernel may have dropped the dirty pages, so retrying and
reporting success would lie about durability (the PostgreSQL "fsyncgate"
lesson).  The writer then refuses further appends; the owner must reopen the
segment, which truncates it to the length its index knows to be durable.
"""

from __future__ import annotations

import errno
import os
import struct
import threading

from chunkstore.chunkfile_format import (
    CHUNK_MAGIC,
    MIN_CHUNK_LEN,
    SEGMENT_HEADER_LEN,
    TRAILER_LEN,
    TRAILER_MAGIC,
    check_segment_header,
    encode_segment_header,
)
from chunkstore.chunkfile_read import SegmentReader, read_chunk_meta_fd
from chunkstore.errors import CorruptionError, StoreClosedError
from chunkstore.fsdir import fsync_dir

__all__ = ["SegmentWriter"]

_U64 = struct.Struct("<Q")
_TRAILER_HEAD = struct.Struct("<QI")  # index_offset, index_len


class SegmentWriter:
    """Appends chunks to one segment file; the only writer of that file.

    ``SegmentWriter(path)`` creates a new segment (``FileExistsError`` if
    ``path`` exists); :meth:`open_existing` continues one.  :meth:`append`
    returns the chunk's offset; data is durable only after :meth:`sync`.
    Thread-safe (appends are serialised).  A context manager: leaving it
    calls :meth:`close`, which fsyncs what is not yet synced.
    """

    def __init__(self, path: str | os.PathLike[str]):
        path = os.fspath(path)
        if os.path.exists(path):
            raise FileExistsError(errno.EEXIST, "segment writer: segment already exists", path)
        tmp = path + ".tmp"
        # A stale .tmp is a creation that crashed before its rename: no one
        # refers to it, so it is safe to overwrite.
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            header = encode_segment_header()
            _write_all(fd, header, 0)
            os.fsync(fd)
            os.rename(tmp, path)
            fsync_dir(os.path.dirname(os.path.abspath(path)))
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._init(path, fd, SEGMENT_HEADER_LEN)

    def _init(self, path: str, fd: int, size: int) -> None:
        self._path = path
        self._fd: int | None = fd
        self._size = size
        self._synced_size = size
        self._failed: BaseException | None = None
        self._lock = threading.Lock()

    @classmethod
    def open_existing(
        cls, path: str | os.PathLike[str], valid_length: int | None = None
    ) -> SegmentWriter:
        """Reopen a segment for appending, truncating a torn tail first.

        ``valid_length`` is the segment length the caller's index knows to be
        durable (the end of its last recorded chunk, or 16 for none); any
        bytes after it are cut off (they belong to no indexed chunk), after
        checking that a whole valid chunk (header, index, trailer) ends there.  With
        ``valid_length=None`` the segment is scanned instead, every chunk
        checked (header, index, trailer and block crcs, so this reads the
        whole file) and the file is cut after the last complete valid chunk.

        Raises :class:`CorruptionError` when the header is invalid, when the
        file is shorter than ``valid_length``, or when no chunk ends there.
        """
        path = os.fspath(path)
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            check_segment_header(os.pread(fd, SEGMENT_HEADER_LEN, 0), path)
            if valid_length is None:
                end = _scan_valid_end(path)
            else:
                end = int(valid_length)
                if end < SEGMENT_HEADER_LEN:
                    raise ValueError(
                        f"segment writer: valid_length {end} is inside the 16-byte header"
                    )
                if end > size:
                    raise CorruptionError(
                        f"segment: the index knows {end} valid bytes but the file has {size}",
                        path=path, offset=size,
                    )
                if end > SEGMENT_HEADER_LEN:
                    _check_chunk_ends_at(fd, end, path)
            if size > end:
                os.ftruncate(fd, end)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self = cls.__new__(cls)
        self._init(path, fd, end)
        return self

    # -- properties ---------------------------------------------------------
    @property
    def path(self) -> str:
        return self._path

    @property
    def size(self) -> int:
        """Bytes in the segment so far (the offset the next chunk gets)."""
        return self._size

    @property
    def synced_size(self) -> int:
        """Bytes known durable: the size at the last successful :meth:`sync`."""
        return self._synced_size

    @property
    def closed(self) -> bool:
        return self._fd is None

    # -- writing --------------------------------------------------------------
    def _usable_fd(self) -> int:
        fd = self._fd
        if fd is None:
            raise StoreClosedError(f"segment writer: {self._path} is closed")
        if self._failed is not None:
            raise OSError(
                errno.EIO,
                f"segment writer: an earlier write or fsync failed ({self._failed}); "
                "reopen the segment with open_existing()",
                self._path,
            )
        return fd

    def append(self, chunk: bytes) -> int:
        """Write one encoded chunk at the end of the segment; return its offset.

        One positioned write (repeated only if the OS writes short).  On a
        write error the file is cut back to its previous size before the
        error propagates; if even that fails the writer refuses further use.
        Raises ``ValueError`` when ``chunk`` does not look like an encoded
        chunk (its magic and ``chunk_len`` are checked, nothing more).
        """
        view = memoryview(chunk).cast("B")
        n = len(view)
        if (n < MIN_CHUNK_LEN or bytes(view[:4]) != CHUNK_MAGIC
                or _U64.unpack_from(view, 8)[0] != n):
            raise ValueError(
                f"segment writer: {n} bytes are not one encoded chunk (see encode_chunk)"
            )
        with self._lock:
            fd = self._usable_fd()
            offset = self._size
            try:
                _write_all(fd, view, offset)
            except BaseException as exc:
                try:
                    os.ftruncate(fd, offset)
                except OSError:
                    self._failed = exc
                raise
            self._size = offset + n
            return offset

    def sync(self) -> None:
        """Make every chunk appended so far durable (fsync); thread-safe.

        A failed fsync is fatal for this writer: the ``OSError`` propagates
        and every later :meth:`append`/:meth:`sync` raises ``OSError`` too.
        """
        with self._lock:
            fd = self._usable_fd()  # raises when closed or failed
            size = self._size
            if size <= self._synced_size:
                return
            # fsync a duplicate without the lock: the writer may append the
            # next chunk meanwhile (the store's seal committer fsyncs from its
            # own thread), and the duplicate outlives a concurrent close().
            fd = os.dup(fd)
        try:
            os.fsync(fd)
        except BaseException as exc:
            with self._lock:
                self._failed = exc
            raise
        finally:
            os.close(fd)
        with self._lock:
            if size > self._synced_size:
                self._synced_size = size

    def close(self) -> None:
        """Fsync anything not yet synced (unless the writer failed) and close.

        Idempotent.  Raises ``OSError`` if that last fsync fails (the file
        descriptor is closed regardless).
        """
        with self._lock:
            fd = self._fd
            if fd is None:
                return
            self._fd = None
            try:
                if self._failed is None and self._size > self._synced_size:
                    os.fsync(fd)
                    self._synced_size = self._size
            finally:
                os.close(fd)

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else f"size={self._size}"
        return f"<SegmentWriter {self._path!r} {state}>"


def _write_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - pwrite raises rather than returning 0
            raise OSError(errno.EIO, "segment writer: pwrite wrote nothing")
        view = view[n:]
        offset += n


def _check_chunk_ends_at(fd: int, end: int, path: str) -> None:
    """Check that a whole valid chunk (header, index, trailer) ends at ``end``.

    The trailer's ``index_offset + index_len + 20`` is the chunk's length,
    which pins where it starts; that chunk is then read and validated like
    any other (its header must agree).  Blocks are not read.
    """
    at = max(end - TRAILER_LEN, SEGMENT_HEADER_LEN)
    trailer = os.pread(fd, TRAILER_LEN, at)
    if len(trailer) == TRAILER_LEN and trailer[12:16] == TRAILER_MAGIC:
        index_offset, index_len = _TRAILER_HEAD.unpack_from(trailer)
        chunk_len = index_offset + index_len + TRAILER_LEN
        start = end - chunk_len
        if start >= SEGMENT_HEADER_LEN and chunk_len >= MIN_CHUNK_LEN:
            read_chunk_meta_fd(fd, start, chunk_len, path, end)
            return
    raise CorruptionError(
        f"segment: no chunk trailer ends at valid_length {end}", path=path, offset=at
    )


def _scan_valid_end(path: str) -> int:
    """End of the last complete valid chunk, walking the segment from offset 16."""
    end = SEGMENT_HEADER_LEN
    with SegmentReader(path) as reader:
        for item in reader.walk():
            if isinstance(item, CorruptionError):
                break
            if reader.verify_chunk_blocks(item):
                break
            end = item.offset + item.chunk_len
    return end
