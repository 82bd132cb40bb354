"""Segment files on the read path: chunk metadata, blocks, walking, verifying.

:class:`SegmentReader` keeps one read-only file descriptor per segment and
reads with ``os.pread`` only, so any number of threads may share it.  The
store's index log gives each chunk's offset and length, so reading a chunk's
metadata costs two small reads (the last page, holding the trailer and
usually the whole block index, and the header), never the blocks; a block is
then one read of exactly its stored bytes.  Without the index, :meth:`walk`
follows the ``chunk_len`` of each chunk header from offset 16.

Every length read from the file is checked against the limits of
``docs/FORMAT.md`` and against the file size before it is used to read, so
a hostile file cannot make the reader allocate more than it holds.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from chunkstore._kernels import block as _block
from chunkstore._kernels import crc32c, xxh64
from chunkstore.chunkfile_format import (
    CHUNK_HEADER_FIXED_LEN,
    CHUNK_MAGIC,
    CODEC_NAMES,
    MAX_LABELS_LEN,
    MIN_CHUNK_LEN,
    SEGMENT_HEADER_LEN,
    STORED_BLOCK_OVERHEAD,
    TRAILER_LEN,
    BlockMeta,
    ChunkMeta,
    check_segment_header,
    index_entry_len,
    parse_chunk_header,
    parse_chunk_index,
    parse_chunk_trailer,
)
from chunkstore.errors import CorruptionError, StoreClosedError

__all__ = ["SegmentReader", "describe_segment", "read_chunk_meta_fd"]

#: First read of a chunk's header: enough for typical label sets.
_HEAD_READ = 512
#: First read of a chunk's end: one page, holding the trailer and the index
#: of up to 99 blocks.
_TAIL_READ = 4096
_LABELS_LEN = struct.Struct("<I")
_BLOCK_HEADER = struct.Struct("<BII")  # codec, raw_len, payload_len
_U32 = struct.Struct("<I")


def _pread_exact(fd: int, n: int, offset: int, path: str | None, what: str) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        # The file shrank under us (or the caller's size was stale).
        raise CorruptionError(
            f"{what}: truncated, the file ends at {offset + len(data)}",
            path=path, offset=offset + len(data),
        )
    return data


def _read_head(fd: int, offset: int, available: int, path: str | None) -> bytes:
    """Read a chunk header: a first small read, a second one for long labels."""
    head = _pread_exact(fd, min(available, _HEAD_READ), offset, path, "chunk header")
    if len(head) >= CHUNK_HEADER_FIXED_LEN and head[:4] == CHUNK_MAGIC:
        (labels_len,) = _LABELS_LEN.unpack_from(head, 24)
        need = CHUNK_HEADER_FIXED_LEN + labels_len + 4
        if len(head) < need <= min(available, CHUNK_HEADER_FIXED_LEN + MAX_LABELS_LEN + 4):
            head = _pread_exact(fd, need, offset, path, "chunk header")
    return head


def read_chunk_meta_fd(
    fd: int,
    offset: int,
    length: int,
    path: str | None,
    file_size: int,
    head: bytes | None = None,
) -> ChunkMeta:
    """Read and validate the metadata of the chunk at ``offset`` of ``length`` bytes.

    Reads the last ``min(length, 4096)`` bytes (trailer and, usually, the
    whole index), the index itself when it is longer, and the header.
    ``file_size`` bounds every read; ``head`` may pass header bytes already
    read.  Raises :class:`CorruptionError` with absolute offsets.
    """
    if offset < SEGMENT_HEADER_LEN or length < MIN_CHUNK_LEN:
        raise ValueError(
            f"segment reader: no chunk can be at offset {offset} with length {length}"
        )
    end = offset + length
    if end > file_size:
        raise CorruptionError(
            f"chunk at {offset} ({length} bytes) runs past the end of the file ({file_size} bytes)",
            path=path, offset=file_size,
        )
    tail_len = min(length, _TAIL_READ)
    tail = _pread_exact(fd, tail_len, end - tail_len, path, "chunk trailer")
    if head is None:
        head = _read_head(fd, offset, length, path)
    header = parse_chunk_header(head, offset, path, available=length)
    if header.chunk_len != length:
        raise CorruptionError(
            f"chunk header: chunk_len {header.chunk_len} differs from the length "
            f"{length} recorded for it",
            path=path, offset=offset + 8,
        )
    index_offset, index_len = parse_chunk_trailer(
        tail[-TRAILER_LEN:], length, header.header_len, offset, path, header.version
    )
    in_tail = index_offset - (length - tail_len)
    if in_tail >= 0:
        index = memoryview(tail)[in_tail : in_tail + index_len]
    else:  # index_len is bounded by MAX_INDEX_LEN (2.6 MiB) and lies inside the file
        index = _pread_exact(fd, index_len, offset + index_offset, path, "chunk index")
    blocks = parse_chunk_index(index, index_offset, header.header_len, offset, path,
                               header.version)
    return ChunkMeta.from_blocks(
        header.fingerprint, header.labels, length, blocks, segment=path, offset=offset,
        version=header.version,
    )


class SegmentReader:
    """Reads chunks from one segment file; thread-safe (``pread`` only).

    Opening validates the 16-byte file header (:class:`CorruptionError`
    otherwise).  The file may grow while it is open (a writer appending):
    reads beyond the size last seen refresh it.  A context manager; after
    :meth:`close` every method raises :class:`StoreClosedError`.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self._path = os.fspath(path)
        self._fd: int | None = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self._size = os.fstat(self._fd).st_size
            check_segment_header(os.pread(self._fd, SEGMENT_HEADER_LEN, 0), self._path)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    # -- plumbing -----------------------------------------------------------
    @property
    def path(self) -> str:
        return self._path

    @property
    def size(self) -> int:
        """The file size now (one ``fstat``)."""
        self._size = os.fstat(self._fileno()).st_size
        return self._size

    def _fileno(self) -> int:
        fd = self._fd
        if fd is None:
            raise StoreClosedError(f"segment reader: {self._path} is closed")
        return fd

    def _size_covering(self, end: int) -> int:
        """The file size, refreshed when ``end`` lies past the size last seen."""
        size = self._size
        if end > size:
            size = self.size
        return size

    # -- chunks ---------------------------------------------------------------
    def read_chunk_meta(self, offset: int, length: int) -> ChunkMeta:
        """Read and validate the header, index and trailer of one chunk.

        ``offset``/``length`` come from the store's index.  Blocks are not
        read.  Raises :class:`CorruptionError` (absolute offsets) when the
        chunk is damaged or does not end where ``length`` says.
        """
        fd = self._fileno()
        size = self._size_covering(offset + length)
        return read_chunk_meta_fd(fd, offset, length, self._path, size)

    def read_block(self, chunk_offset: int, block: BlockMeta, *, verify: bool = False) -> bytes:
        """Return the stored bytes of one block (one ``pread`` of exactly them).

        Checks that the block lies inside the file and that its header
        agrees with ``block`` (codec, raw_len, payload length).  The crc32c
        is left to whoever decodes the bytes (``block.decompress_block`` and
        ``scan.scan_block`` check it first), so the hot path computes it
        once; pass ``verify=True`` to check it here, e.g. before copying the
        stored bytes unread.  Raises :class:`CorruptionError` at the block's
        absolute offset (or the failing header field).
        """
        fd = self._fileno()
        if block.stored_len < STORED_BLOCK_OVERHEAD or block.offset < 0 or chunk_offset < 0:
            raise ValueError(f"segment reader: invalid block meta {block!r}")
        at = chunk_offset + block.offset
        end = at + block.stored_len
        size = self._size_covering(end)
        if end > size:
            raise CorruptionError(
                f"block at {at} ({block.stored_len} bytes) runs past the end of the file "
                f"({size} bytes)",
                path=self._path, offset=size,
            )
        stored = _pread_exact(fd, block.stored_len, at, self._path, "stored block")
        codec, raw_len, payload_len = _BLOCK_HEADER.unpack_from(stored)
        if codec != block.codec:
            raise CorruptionError(
                f"stored block: codec {codec}, but the chunk index says {block.codec}",
                path=self._path, offset=at,
            )
        if raw_len != block.raw_len:
            raise CorruptionError(
                f"stored block: raw_len {raw_len}, but the chunk index says {block.raw_len}",
                path=self._path, offset=at + 1,
            )
        if STORED_BLOCK_OVERHEAD + payload_len != block.stored_len:
            raise CorruptionError(
                f"stored block: payload_len {payload_len} does not fill the "
                f"{block.stored_len} bytes the chunk index gives it",
                path=self._path, offset=at + 5,
            )
        (stored_crc,) = _U32.unpack_from(stored, len(stored) - 4)
        if verify and crc32c(memoryview(stored)[:-4]) != stored_crc:
            raise CorruptionError("stored block: crc32c mismatch", path=self._path, offset=at)
        return stored

    def read_filters(self, meta: ChunkMeta) -> list[bytes]:
        """The token filter of each block of a chunk (b"" for none; all b"" in version 1).

        One ``pread`` of the filter section; its crc32c and each filter's
        ``k`` byte are checked (:class:`CorruptionError` at the section's
        start or the bad filter's first byte).
        """
        if meta.offset is None:
            raise ValueError("segment reader: read_filters needs a meta read from a file")
        if meta.version == 1:
            return [b""] * len(meta.blocks)
        fd = self._fileno()
        start = meta.offset + meta.filters_offset
        n = meta.filters_len
        size = self._size_covering(start + n)
        if start + n > size:
            raise CorruptionError(
                f"token filters at {start} ({n} bytes) run past the end of the file "
                f"({size} bytes)", path=self._path, offset=size)
        section = _pread_exact(fd, n, start, self._path, "token filters")
        (stored_crc,) = _U32.unpack_from(section, n - 4)
        if crc32c(memoryview(section)[:-4]) != stored_crc:
            raise CorruptionError("token filters: crc32c mismatch", path=self._path, offset=start)
        out = []
        base = meta.filters_offset
        for b in meta.blocks:
            if not b.filter_len:
                out.append(b"")
                continue
            f = section[b.filter_offset - base : b.filter_offset - base + b.filter_len]
            if not 1 <= f[0] <= 16:
                raise CorruptionError(
                    f"token filter: k = {f[0]} is not within 1 to 16",
                    path=self._path, offset=meta.offset + b.filter_offset)
            out.append(f)
        return out

    def read_raw_block(self, chunk_offset: int, block: BlockMeta) -> bytes:
        """Return the decompressed (raw) bytes of one block, checked.

        The crc32c and decompression are checked by the block kernel;
        errors are re-raised with this file's path and absolute offsets.
        """
        stored = self.read_block(chunk_offset, block)
        try:
            return _block.decompress_block(stored, max_raw_len=block.raw_len)
        except CorruptionError as err:
            raise err.with_location(self._path, chunk_offset + block.offset) from None

    # -- without the index --------------------------------------------------------
    def walk(self) -> Iterator[ChunkMeta | CorruptionError]:
        """Yield each chunk's meta in file order, following ``chunk_len`` from offset 16.

        A chunk whose index or trailer is damaged is yielded as its
        :class:`CorruptionError` and the walk goes on (its header, checked
        by its crc, still says where the next chunk starts).  A damaged
        header, or one whose ``chunk_len`` runs past the end of the file (a
        torn tail), is yielded as an error and ends the walk.
        """
        fd = self._fileno()
        size = self.size
        offset = SEGMENT_HEADER_LEN
        while offset < size:
            remaining = size - offset
            try:
                head = _read_head(fd, offset, remaining, self._path)
                header = parse_chunk_header(head, offset, self._path, available=remaining)
            except CorruptionError as err:
                yield err
                return
            try:
                meta = read_chunk_meta_fd(fd, offset, header.chunk_len, self._path, size, head)
            except CorruptionError as err:
                yield err
            else:
                yield meta
            offset += header.chunk_len

    def verify_chunk_blocks(self, meta: ChunkMeta, *, deep: bool = False) -> list[CorruptionError]:
        """Check every block of one chunk against its crc and the index.

        ``deep`` also decompresses and decodes each block and checks that the
        entry count, time range and text length match the index entry, and
        that the fingerprint is the XXH64 of the labels.
        """
        if meta.offset is None:
            raise ValueError("segment reader: verify_chunk_blocks needs a meta read from a file")
        errors: list[CorruptionError] = []
        for i, b in enumerate(meta.blocks):
            try:
                stored = self.read_block(meta.offset, b, verify=True)
                if deep:
                    self._check_block_contents(meta, i, b, stored)
            except CorruptionError as err:
                errors.append(err)
        try:
            self.read_filters(meta)
        except CorruptionError as err:
            errors.append(err)
        if deep and xxh64(meta.labels) != meta.fingerprint:
            errors.append(CorruptionError(
                f"chunk header: fingerprint {meta.fingerprint:#018x} is not the XXH64 "
                "of its labels",
                path=self._path, offset=meta.offset + 16,
            ))
        return errors

    def _check_block_contents(self, meta: ChunkMeta, i: int, b: BlockMeta, stored: bytes) -> None:
        at = meta.offset + b.offset
        entry_at = meta.offset + meta.index_offset + 4 + index_entry_len(meta.version) * i
        try:
            raw = _block.decompress_block(stored, max_raw_len=b.raw_len)
            ts, lines, _meta = _block.decode_entries(raw)
        except CorruptionError as err:
            raise err.with_location(self._path, at) from None
        text_len = sum(len(line) for line in lines)
        found = (len(ts), min(ts, default=0), max(ts, default=0), text_len)
        expected = (b.n_entries, b.min_ts, b.max_ts, b.text_len)
        if found != expected:
            raise CorruptionError(
                f"chunk index: block {i} holds (entries, min_ts, max_ts, text_len) = "
                f"{found}, the index says {expected}",
                path=self._path, offset=entry_at,
            )

    def verify(self, *, deep: bool = False) -> list[CorruptionError]:
        """Check every chunk's header, index and trailer and every block's crc.

        Returns the errors found (empty when the segment is sound); see
        :meth:`verify_chunk_blocks` for ``deep``.  Reads the whole file.
        """
        errors: list[CorruptionError] = []
        for item in self.walk():
            if isinstance(item, CorruptionError):
                errors.append(item)
            else:
                errors.extend(self.verify_chunk_blocks(item, deep=deep))
        return errors

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SegmentReader {self._path!r}{' closed' if self._fd is None else ''}>"


def _labels_text(canonical: bytes) -> str:
    try:
        from chunkstore.labels import Labels

        return str(Labels.from_canonical(canonical))
    except (ValueError, ImportError):
        return repr(canonical)


def _ratio(raw: int, stored: int) -> float:
    return raw / stored if stored else 0.0


def describe_segment(path: str | os.PathLike[str]) -> dict:
    """Summarise a segment file's structure for ``chunkstore inspect FILE``.

    Returns ``{"path", "size", "chunks": [...], "errors": [...], "totals"}``.
    Each chunk: ``offset``, ``length``, ``fingerprint`` (hex), ``labels``
    (``{name="value", ...}``), ``min_ts``/``max_ts`` (ns), ``entries``,
    ``raw_bytes``, ``stored_bytes``, ``text_bytes``, ``ratio`` (raw/stored)
    and ``blocks``: each with ``offset`` (absolute), ``codec`` (name),
    ``entries``, ``min_ts``, ``max_ts``, ``raw_bytes``, ``stored_bytes``,
    ``text_bytes`` and ``checksum_ok``.  ``errors`` lists every problem as
    ``{"offset", "message"}``.  Reads the whole file (block crcs).  Raises
    :class:`CorruptionError` only when the file header itself is invalid.
    """
    chunks: list[dict] = []
    errors: list[dict] = []
    totals = {"chunks": 0, "blocks": 0, "entries": 0, "raw_bytes": 0, "stored_bytes": 0,
              "text_bytes": 0}
    with SegmentReader(path) as reader:
        size = reader.size
        for item in reader.walk():
            if isinstance(item, CorruptionError):
                errors.append({"offset": item.offset, "message": item.detail})
                continue
            blocks = []
            for b in item.blocks:
                try:
                    reader.read_block(item.offset, b, verify=True)
                    ok = True
                except CorruptionError as err:
                    ok = False
                    errors.append({"offset": err.offset, "message": err.detail})
                blocks.append({
                    "offset": item.offset + b.offset,
                    "codec": CODEC_NAMES.get(b.codec, str(b.codec)),
                    "entries": b.n_entries,
                    "min_ts": b.min_ts,
                    "max_ts": b.max_ts,
                    "raw_bytes": b.raw_len,
                    "stored_bytes": b.stored_len,
                    "text_bytes": b.text_len,
                    "checksum_ok": ok,
                })
            chunks.append({
                "offset": item.offset,
                "length": item.chunk_len,
                "fingerprint": f"{item.fingerprint:016x}",
                "labels": _labels_text(item.labels),
                "min_ts": item.min_ts,
                "max_ts": item.max_ts,
                "entries": item.n_entries,
                "raw_bytes": item.raw_bytes,
                "stored_bytes": item.stored_bytes,
                "text_bytes": item.text_bytes,
                "ratio": _ratio(item.raw_bytes, item.stored_bytes),
                "blocks": blocks,
            })
            totals["chunks"] += 1
            totals["blocks"] += len(blocks)
            totals["entries"] += item.n_entries
            totals["raw_bytes"] += item.raw_bytes
            totals["stored_bytes"] += item.stored_bytes
            totals["text_bytes"] += item.text_bytes
    totals["ratio"] = _ratio(totals["raw_bytes"], totals["stored_bytes"])
    return {"path": os.fspath(path), "size": size, "chunks": chunks, "errors": errors,
            "totals": totals}
