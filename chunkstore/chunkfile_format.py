"""Chunk and segment-header encoding and validation (FORMAT.md section 4), no I/O.

A chunk is one stream's stored blocks framed by a header (magic, length,
fingerprint, canonical labels), a block index and a fixed 20-byte trailer
that points at the index.  This module builds a chunk in memory
(:func:`encode_chunk`) and parses/validates its metadata from bytes
(:func:`decode_chunk_meta`, and the three ``parse_*`` pieces that
:mod:`chunkstore.chunkfile_read` composes with small ``pread`` calls).

Every check raises :class:`~chunkstore.errors.CorruptionError` with the
absolute file offset of the first byte that failed validation (the record's
start when a checksum fails); every declared length is checked against the
limits and the bytes available *before* anything is sliced or allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from chunkstore._kernels import block as _block
from chunkstore._kernels import crc32c, xxh64
from chunkstore.errors import CorruptionError

__all__ = [
    "BlockMeta",
    "ChunkMeta",
    "ChunkHeader",
    "encode_chunk",
    "decode_chunk_meta",
    "parse_chunk_header",
    "parse_chunk_trailer",
    "parse_chunk_index",
    "encode_segment_header",
    "check_segment_header",
    "CODEC_NAMES",
    "CHUNK_MAGIC",
    "TRAILER_MAGIC",
    "SEGMENT_MAGIC",
    "SEGMENT_VERSION",
    "SEGMENT_HEADER_LEN",
    "CHUNK_HEADER_FIXED_LEN",
    "INDEX_ENTRY_LEN",
    "INDEX_ENTRY_LEN_V2",
    "CHUNK_VERSION",
    "CHUNK_VERSIONS",
    "index_entry_len",
    "check_filter_len",
    "TRAILER_LEN",
    "MIN_CHUNK_LEN",
    "MAX_BLOCKS_PER_CHUNK",
    "MAX_LABELS_LEN",
    "MAX_RAW_BLOCK_LEN",
    "MAX_INDEX_LEN",
    "STORED_BLOCK_OVERHEAD",
]

# -- layout constants (FORMAT.md section 4) ----------------------------------

CHUNK_MAGIC = b"CSCK"
TRAILER_MAGIC = b"CSCE"
CHUNK_VERSION = 2  # what the writer produces
CHUNK_VERSIONS = (1, 2)  # what readers accept (version 1: no token filters)
SEGMENT_MAGIC = b"CSSG"
SEGMENT_VERSION = 1
SEGMENT_HEADER_LEN = 16  # chunks start here

#: magic, version, flags, reserved, chunk_len, fingerprint, labels_len
_HEADER = struct.Struct("<4sBBHQQI")
CHUNK_HEADER_FIXED_LEN = _HEADER.size  # 28; the header is 32 + labels_len bytes
_U32 = struct.Struct("<I")
#: offset, stored_len, raw_len, n_entries, min_ts, max_ts, codec, text_len
_INDEX_ENTRY = struct.Struct("<QIIIqqBI")
INDEX_ENTRY_LEN = _INDEX_ENTRY.size  # 41, version 1
#: version 2 adds filter_len
_INDEX_ENTRY_V2 = struct.Struct("<QIIIqqBII")
INDEX_ENTRY_LEN_V2 = _INDEX_ENTRY_V2.size  # 45
_ENTRY_STRUCTS = {1: _INDEX_ENTRY, 2: _INDEX_ENTRY_V2}
#: index_offset, index_len, magic, crc32c
_TRAILER = struct.Struct("<QI4sI")
TRAILER_LEN = _TRAILER.size  # 20

STORED_BLOCK_OVERHEAD = 13  # codec u8, raw_len u32, payload_len u32, crc32c u32
MAX_BLOCKS_PER_CHUNK = 65536
MAX_LABELS_LEN = 1 << 20
MAX_RAW_BLOCK_LEN = 64 << 20
MAX_INDEX_LEN = 8 + INDEX_ENTRY_LEN_V2 * MAX_BLOCKS_PER_CHUNK
_MIN_INDEX_LEN = 8 + INDEX_ENTRY_LEN
#: header with no labels, one empty-payload block, a one-entry index, trailer
MIN_CHUNK_LEN = CHUNK_HEADER_FIXED_LEN + 4 + STORED_BLOCK_OVERHEAD + _MIN_INDEX_LEN + TRAILER_LEN

CODEC_NAMES = {0: "none", 1: "lz4", 2: "lz4-hc", 3: "zstd"}

# Field offsets inside an index entry, for error locations.
_E_OFFSET, _E_STORED, _E_RAW, _E_N, _E_MIN, _E_MAX, _E_CODEC, _E_TEXT = 0, 8, 12, 16, 20, 28, 36, 37
_E_FILTER = 41
_FILTER_MAX_K = 16


def index_entry_len(version: int) -> int:
    """Bytes of one block index entry in a chunk of ``version``."""
    return INDEX_ENTRY_LEN if version == 1 else INDEX_ENTRY_LEN_V2


def check_filter_len(filter_len: int, raw_len: int) -> bool:
    """Whether a token filter of ``filter_len`` bytes is allowed for a ``raw_len`` block.

    0 (no filter) or ``1 + nbytes`` with ``8 <= nbytes <= raw_len // 4 + 8``:
    the writer sizes filters by distinct keys but never beyond a quarter of
    the raw block, so a hostile index cannot make a reader allocate more.
    """
    return filter_len == 0 or 9 <= filter_len <= raw_len // 4 + 9

_U64_MAX = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


# -- segment file header ------------------------------------------------------


def encode_segment_header() -> bytes:
    """The 16-byte segment file header: magic, version, 7 zero bytes, crc32c."""
    first = SEGMENT_MAGIC + bytes([SEGMENT_VERSION]) + bytes(7)
    return first + _U32.pack(crc32c(first))


def check_segment_header(buf, path: str | None = None) -> None:
    """Validate a segment file header (``buf`` holds the file's first bytes).

    Raises :class:`CorruptionError` at the offending offset: 0 for a short
    file, a bad magic or a crc mismatch, 4 for an unknown version, 5..11 for
    a non-zero reserved byte.
    """
    view = memoryview(buf)
    if len(view) < SEGMENT_HEADER_LEN:
        raise CorruptionError(
            f"segment header: truncated, {len(view)} of {SEGMENT_HEADER_LEN} bytes present",
            path=path, offset=0,
        )
    if bytes(view[:4]) != SEGMENT_MAGIC:
        raise CorruptionError(
            f"segment header: bad magic {bytes(view[:4])!r}, expected {SEGMENT_MAGIC!r}",
            path=path, offset=0,
        )
    if crc32c(view[:12]) != _U32.unpack_from(view, 12)[0]:
        raise CorruptionError("segment header: crc32c mismatch", path=path, offset=0)
    if view[4] != SEGMENT_VERSION:
        raise CorruptionError(
            f"segment header: unsupported version {view[4]}", path=path, offset=4
        )
    for i in range(5, 12):
        if view[i]:
            raise CorruptionError(
                f"segment header: reserved byte {i} is {view[i]:#04x}, not 0",
                path=path, offset=i,
            )


# -- metadata types -----------------------------------------------------------


class BlockMeta(NamedTuple):
    """One block index entry: where a stored block is and what it holds.

    ``offset`` is from the chunk start; ``stored_len`` is the whole stored
    block (13 + payload bytes); ``raw_len`` the decompressed size; timestamps
    are ns; ``text_len`` the sum of line lengths (bytes).  ``filter_len`` is
    the size of the block's token filter (0: none; always 0 in a version 1
    chunk) and ``filter_offset`` where it starts, from the chunk start.
    """

    offset: int
    stored_len: int
    raw_len: int
    n_entries: int
    min_ts: int
    max_ts: int
    codec: int
    text_len: int
    filter_len: int = 0
    filter_offset: int = 0


@dataclass(frozen=True, slots=True)
class ChunkMeta:
    """A chunk's header and block index, without the block data.

    ``labels`` is the canonical label bytes (FORMAT.md section 1);
    ``min_ts``/``max_ts`` (ns) and the counts are aggregated over ``blocks``.
    ``segment``/``offset`` locate the chunk when it was read from a segment
    file (``None`` for a chunk just encoded in memory).
    """

    fingerprint: int
    labels: bytes
    chunk_len: int
    blocks: tuple[BlockMeta, ...]
    min_ts: int
    max_ts: int
    n_entries: int
    raw_bytes: int
    text_bytes: int
    segment: str | None = None
    offset: int | None = None
    version: int = CHUNK_VERSION

    @classmethod
    def from_blocks(
        cls,
        fingerprint: int,
        labels: bytes,
        chunk_len: int,
        blocks: tuple[BlockMeta, ...],
        segment: str | None = None,
        offset: int | None = None,
        version: int = CHUNK_VERSION,
    ) -> ChunkMeta:
        """Build a meta, aggregating time span and counts over ``blocks``."""
        return cls(
            fingerprint=fingerprint,
            labels=labels,
            chunk_len=chunk_len,
            blocks=blocks,
            min_ts=min(b.min_ts for b in blocks),
            max_ts=max(b.max_ts for b in blocks),
            n_entries=sum(b.n_entries for b in blocks),
            raw_bytes=sum(b.raw_len for b in blocks),
            text_bytes=sum(b.text_len for b in blocks),
            segment=segment,
            offset=offset,
            version=version,
        )

    @property
    def header_len(self) -> int:
        """Bytes of the chunk header (32 + labels)."""
        return CHUNK_HEADER_FIXED_LEN + len(self.labels) + 4

    @property
    def index_offset(self) -> int:
        """Offset of the block index from the chunk start."""
        return self.chunk_len - TRAILER_LEN - self.index_len

    @property
    def index_len(self) -> int:
        """Bytes of the block index including its crc."""
        return 8 + index_entry_len(self.version) * len(self.blocks)

    @property
    def filters_offset(self) -> int:
        """Offset of the token filter section (version 2), where the blocks end."""
        last = self.blocks[-1]
        return last.offset + last.stored_len

    @property
    def filters_len(self) -> int:
        """Bytes of the token filter section including its crc (0 in version 1)."""
        return self.index_offset - self.filters_offset

    @property
    def stored_bytes(self) -> int:
        """Sum of the stored (compressed and framed) block lengths."""
        return sum(b.stored_len for b in self.blocks)

    def with_location(self, segment: str | None, offset: int | None) -> ChunkMeta:
        """Return a copy located at ``offset`` in segment file ``segment``."""
        return replace(self, segment=segment, offset=offset)

    def _check(self) -> None:
        """Assert the invariants every decoded or encoded meta satisfies."""
        assert 1 <= len(self.blocks) <= MAX_BLOCKS_PER_CHUNK
        pos = self.header_len
        for b in self.blocks:
            assert b.offset == pos, (b, pos)
            assert b.stored_len >= STORED_BLOCK_OVERHEAD
            assert 1 <= b.n_entries <= b.raw_len <= MAX_RAW_BLOCK_LEN
            assert b.min_ts <= b.max_ts
            assert b.text_len <= b.raw_len
            assert b.codec in CODEC_NAMES
            pos += b.stored_len
        if self.version == 1:
            assert pos == self.index_offset
        else:
            for b in self.blocks:
                assert check_filter_len(b.filter_len, b.raw_len)
                assert b.filter_offset == pos
                pos += b.filter_len
            assert pos + 4 == self.index_offset
        assert self.chunk_len >= MIN_CHUNK_LEN
        assert self.min_ts == min(b.min_ts for b in self.blocks)
        assert self.max_ts == max(b.max_ts for b in self.blocks)
        assert self.n_entries == sum(b.n_entries for b in self.blocks)
        assert self.raw_bytes == sum(b.raw_len for b in self.blocks)
        assert self.text_bytes == sum(b.text_len for b in self.blocks)


class ChunkHeader(NamedTuple):
    """The validated fixed fields of a chunk header."""

    chunk_len: int
    fingerprint: int
    labels: bytes
    header_len: int
    version: int = CHUNK_VERSION


# -- encoding -----------------------------------------------------------------


def encode_chunk(
    fingerprint: int,
    labels: bytes,
    stored_blocks: Sequence[tuple],
) -> tuple[bytes, ChunkMeta]:
    """Build a whole chunk (header, blocks, token filters, index, trailer) in memory.

    ``stored_blocks`` holds, in the order they are to be read, tuples
    ``(stored_block, n_entries, min_ts_ns, max_ts_ns, text_len[, token_filter])``
    where ``stored_block`` is the output of ``block.compress_block``; its codec
    and raw length are read from its header (its crc is not recomputed), and
    ``token_filter`` is the block's filter (``tokenfilter.block_filter``; b""
    or absent: none).  The chunk is written in the current version (2).
    ``fingerprint`` must be the XXH64 of ``labels`` (FORMAT.md section 1).

    Returns ``(chunk_bytes, meta)``; ``meta.segment``/``offset`` are None.
    Raises ``ValueError`` when an argument breaks the format's rules or
    limits (the writer never produces what a reader would reject).
    """
    labels = bytes(labels)
    if not 0 <= fingerprint <= _U64_MAX:
        raise ValueError(f"encode_chunk: fingerprint {fingerprint!r} is not a u64")
    if len(labels) > MAX_LABELS_LEN:
        raise ValueError(
            f"encode_chunk: labels are {len(labels)} bytes, over the limit {MAX_LABELS_LEN}"
        )
    if xxh64(labels) != fingerprint:
        raise ValueError(
            f"encode_chunk: fingerprint {fingerprint:#018x} is not the XXH64 of the labels"
        )
    n_blocks = len(stored_blocks)
    if not 1 <= n_blocks <= MAX_BLOCKS_PER_CHUNK:
        raise ValueError(
            f"encode_chunk: {n_blocks} blocks; a chunk holds 1 to {MAX_BLOCKS_PER_CHUNK}"
        )

    header_len = CHUNK_HEADER_FIXED_LEN + len(labels) + 4
    parts: list[bytes] = [b"", b""]  # header and labels+crc, filled in below
    metas: list[BlockMeta] = []
    pos = header_len
    filters: list[bytes] = []
    for i, item in enumerate(stored_blocks):
        if len(item) == 6:
            stored, n_entries, min_ts, max_ts, text_len, tfilter = item
            tfilter = bytes(tfilter) if tfilter else b""
        else:
            stored, n_entries, min_ts, max_ts, text_len = item
            tfilter = b""
        stored = bytes(stored)
        try:
            codec, raw_len, payload_len = _block.read_block_header(stored)
        except CorruptionError as err:
            raise ValueError(
                f"encode_chunk: block {i} is not a stored block ({err.detail})"
            ) from None
        if len(stored) != STORED_BLOCK_OVERHEAD + payload_len:
            raise ValueError(
                f"encode_chunk: block {i} is {len(stored)} bytes but its header "
                f"declares a {payload_len}-byte payload"
            )
        if codec not in CODEC_NAMES:
            raise ValueError(f"encode_chunk: block {i} has unknown codec {codec}")
        if not 1 <= n_entries <= raw_len <= MAX_RAW_BLOCK_LEN:
            raise ValueError(
                f"encode_chunk: block {i} has {n_entries} entries in {raw_len} raw bytes"
            )
        if not _I64_MIN <= min_ts <= max_ts <= _I64_MAX:
            raise ValueError(f"encode_chunk: block {i} time range [{min_ts}, {max_ts}] is invalid")
        if not 0 <= text_len <= raw_len:
            raise ValueError(
                f"encode_chunk: block {i} text_len {text_len} exceeds raw_len {raw_len}"
            )
        if not check_filter_len(len(tfilter), raw_len) or (
                tfilter and not 1 <= tfilter[0] <= _FILTER_MAX_K):
            raise ValueError(
                f"encode_chunk: block {i} token filter of {len(tfilter)} bytes is malformed "
                f"for a {raw_len}-byte raw block"
            )
        metas.append(
            BlockMeta(pos, len(stored), raw_len, n_entries, min_ts, max_ts, codec, text_len,
                      len(tfilter))
        )
        filters.append(tfilter)
        parts.append(stored)
        pos += len(stored)

    section = b"".join(filters)
    for i, m in enumerate(metas):
        metas[i] = m._replace(filter_offset=pos)
        pos += m.filter_len
    parts.append(section + _U32.pack(crc32c(section)))
    pos += 4

    index_offset = pos
    index_body = bytearray(_U32.pack(n_blocks))
    for m in metas:
        index_body += _INDEX_ENTRY_V2.pack(*m[:9])
    index_body += _U32.pack(crc32c(index_body))
    index_len = len(index_body)
    parts.append(bytes(index_body))

    chunk_len = index_offset + index_len + TRAILER_LEN
    trailer16 = _TRAILER.pack(index_offset, index_len, TRAILER_MAGIC, 0)[:16]
    parts.append(trailer16 + _U32.pack(crc32c(trailer16)))

    head = _HEADER.pack(CHUNK_MAGIC, CHUNK_VERSION, 0, 0, chunk_len, fingerprint, len(labels))
    head += labels
    parts[0] = head
    parts[1] = _U32.pack(crc32c(head))
    chunk = b"".join(parts)
    assert len(chunk) == chunk_len
    meta = ChunkMeta.from_blocks(fingerprint, labels, chunk_len, tuple(metas))
    return chunk, meta


# -- decoding -----------------------------------------------------------------


def _corrupt(message: str, path: str | None, offset: int) -> CorruptionError:
    return CorruptionError(message, path=path, offset=offset)


def parse_chunk_header(
    buf, base: int = 0, path: str | None = None, *, available: int | None = None
) -> ChunkHeader:
    """Validate a chunk header at the start of ``buf`` (chunk at file offset ``base``).

    ``buf`` needs to hold at least the whole header (32 + labels_len bytes;
    fewer is reported as a truncated header).  ``available`` is how many
    bytes the chunk may span from ``base`` (``chunk_len`` must fit; default
    ``len(buf)``).  Raises :class:`CorruptionError` with absolute offsets.
    """
    view = memoryview(buf)
    if available is None:
        available = len(view)
    if len(view) < CHUNK_HEADER_FIXED_LEN:
        raise _corrupt(
            f"chunk header: truncated, {len(view)} of at least "
            f"{CHUNK_HEADER_FIXED_LEN + 4} bytes present",
            path, base,
        )
    magic, version, flags, reserved, chunk_len, fingerprint, labels_len = _HEADER.unpack_from(view)
    if magic != CHUNK_MAGIC:
        raise _corrupt(f"chunk header: bad magic {magic!r}, expected {CHUNK_MAGIC!r}", path, base)
    if labels_len > MAX_LABELS_LEN:
        raise _corrupt(
            f"chunk header: labels_len {labels_len} exceeds the limit {MAX_LABELS_LEN}",
            path, base + 24,
        )
    header_len = CHUNK_HEADER_FIXED_LEN + labels_len + 4
    if header_len > len(view):
        raise _corrupt(
            f"chunk header: labels_len {labels_len} runs past the {len(view)} bytes present",
            path, base + 24,
        )
    (stored_crc,) = _U32.unpack_from(view, header_len - 4)
    if crc32c(view[: header_len - 4]) != stored_crc:
        raise _corrupt("chunk header: crc32c mismatch", path, base)
    if version not in CHUNK_VERSIONS:
        raise _corrupt(f"chunk header: unsupported version {version}", path, base + 4)
    if flags != 0:
        raise _corrupt(f"chunk header: unknown flags {flags:#04x}", path, base + 5)
    if reserved != 0:
        raise _corrupt(f"chunk header: reserved field is {reserved:#06x}, not 0", path, base + 6)
    min_len = header_len + STORED_BLOCK_OVERHEAD + _MIN_INDEX_LEN + TRAILER_LEN
    if chunk_len < min_len:
        raise _corrupt(
            f"chunk header: chunk_len {chunk_len} is below the minimum {min_len}", path, base + 8
        )
    if chunk_len > available:
        raise _corrupt(
            f"chunk header: chunk_len {chunk_len} runs past the {available} bytes available",
            path, base + 8,
        )
    labels = bytes(view[CHUNK_HEADER_FIXED_LEN : header_len - 4])
    return ChunkHeader(chunk_len, fingerprint, labels, header_len, version)


def parse_chunk_trailer(
    buf, chunk_len: int, header_len: int, base: int = 0, path: str | None = None,
    version: int = 1,
) -> tuple[int, int]:
    """Validate the 20-byte trailer in ``buf`` of a chunk of ``chunk_len`` bytes at ``base``.

    Returns ``(index_offset, index_len)``, checked to be within the limits,
    to end exactly where the trailer starts and to leave room for at least
    one block after the ``header_len``-byte header.
    """
    at = base + chunk_len - TRAILER_LEN
    view = memoryview(buf)
    if len(view) < TRAILER_LEN:
        raise _corrupt(
            f"chunk trailer: truncated, {len(view)} of {TRAILER_LEN} bytes present", path, at
        )
    index_offset, index_len, magic, stored_crc = _TRAILER.unpack_from(view)
    if magic != TRAILER_MAGIC:
        raise _corrupt(
            f"chunk trailer: bad magic {magic!r}, expected {TRAILER_MAGIC!r}", path, at + 12
        )
    if crc32c(view[:16]) != stored_crc:
        raise _corrupt("chunk trailer: crc32c mismatch", path, at)
    entry_len = index_entry_len(version)
    if not (8 + entry_len <= index_len <= 8 + entry_len * MAX_BLOCKS_PER_CHUNK
            and (index_len - 8) % entry_len == 0):
        raise _corrupt(
            f"chunk trailer: index_len {index_len} is not 8 + {entry_len} x n_blocks "
            f"with 1 <= n_blocks <= {MAX_BLOCKS_PER_CHUNK}",
            path, at + 8,
        )
    if index_offset + index_len != chunk_len - TRAILER_LEN:
        raise _corrupt(
            f"chunk trailer: index at {index_offset} (+{index_len} bytes) does not end "
            f"at the trailer ({chunk_len - TRAILER_LEN})",
            path, at,
        )
    if index_offset < header_len + STORED_BLOCK_OVERHEAD + (4 if version >= 2 else 0):
        raise _corrupt(
            f"chunk trailer: index_offset {index_offset} leaves no room for blocks after "
            f"the {header_len}-byte header",
            path, at,
        )
    return index_offset, index_len


def parse_chunk_index(
    buf, index_offset: int, header_len: int, base: int = 0, path: str | None = None,
    version: int = 1,
) -> tuple[BlockMeta, ...]:
    """Validate a block index (``buf`` holds exactly the index, crc included).

    ``index_offset`` and ``header_len`` are from the chunk start at file
    offset ``base``: the blocks must tile ``[header_len, index_offset)``
    exactly, in order, without gaps or overlap (version 2: followed by the
    token filters, whose lengths plus their 4-byte crc fill the rest).
    """
    at = base + index_offset
    view = memoryview(buf)
    index_len = len(view)
    entry_len = index_entry_len(version)
    entry = _ENTRY_STRUCTS[1 if version == 1 else 2]
    v2 = version != 1
    if index_len < 8 + entry_len or index_len > MAX_INDEX_LEN:
        raise _corrupt(f"chunk index: length {index_len} is out of range", path, at)
    (n_blocks,) = _U32.unpack_from(view)
    if not 1 <= n_blocks <= MAX_BLOCKS_PER_CHUNK:
        raise _corrupt(
            f"chunk index: n_blocks {n_blocks} is not within 1 to {MAX_BLOCKS_PER_CHUNK}",
            path, at,
        )
    if 8 + entry_len * n_blocks != index_len:
        raise _corrupt(
            f"chunk index: n_blocks {n_blocks} does not match the index length {index_len}",
            path, at,
        )
    (stored_crc,) = _U32.unpack_from(view, index_len - 4)
    if crc32c(view[: index_len - 4]) != stored_crc:
        raise _corrupt("chunk index: crc32c mismatch", path, at)
    blocks = []
    pos = header_len
    room = index_offset - (4 if v2 else 0)  # version 2: the filters' crc at least
    for i in range(n_blocks):
        e = 4 + entry_len * i
        m = BlockMeta(*entry.unpack_from(view, e))
        ea = at + e
        if m.offset != pos:
            raise _corrupt(
                f"chunk index: block {i} at offset {m.offset}, expected {pos} "
                "(blocks must follow the header back to back)",
                path, ea + _E_OFFSET,
            )
        if m.stored_len < STORED_BLOCK_OVERHEAD or m.stored_len > room - pos:
            raise _corrupt(
                f"chunk index: block {i} stored_len {m.stored_len} does not fit "
                f"between {pos} and the index at {index_offset}",
                path, ea + _E_STORED,
            )
        if m.raw_len > MAX_RAW_BLOCK_LEN:
            raise _corrupt(
                f"chunk index: block {i} raw_len {m.raw_len} exceeds the limit "
                f"{MAX_RAW_BLOCK_LEN}",
                path, ea + _E_RAW,
            )
        if not 1 <= m.n_entries <= m.raw_len:
            raise _corrupt(
                f"chunk index: block {i} n_entries {m.n_entries} is not within 1 to "
                f"raw_len {m.raw_len}",
                path, ea + _E_N,
            )
        if m.min_ts > m.max_ts:
            raise _corrupt(
                f"chunk index: block {i} min_ts {m.min_ts} is after max_ts {m.max_ts}",
                path, ea + _E_MIN,
            )
        if m.codec not in CODEC_NAMES:
            raise _corrupt(f"chunk index: block {i} has unknown codec {m.codec}",
                           path, ea + _E_CODEC)
        if m.codec == 0 and m.stored_len != STORED_BLOCK_OVERHEAD + m.raw_len:
            raise _corrupt(
                f"chunk index: uncompressed block {i} stored_len {m.stored_len} is not "
                f"13 + raw_len {m.raw_len}",
                path, ea + _E_STORED,
            )
        if m.text_len > m.raw_len:
            raise _corrupt(
                f"chunk index: block {i} text_len {m.text_len} exceeds raw_len {m.raw_len}",
                path, ea + _E_TEXT,
            )
        if v2 and not check_filter_len(m.filter_len, m.raw_len):
            raise _corrupt(
                f"chunk index: block {i} filter_len {m.filter_len} is not 0 or 9 to "
                f"{m.raw_len // 4 + 9} for raw_len {m.raw_len}",
                path, ea + _E_FILTER,
            )
        blocks.append(m)
        pos += m.stored_len
    last_entry = at + 4 + entry_len * (n_blocks - 1)
    if v2:
        fpos = pos
        for i, m in enumerate(blocks):
            blocks[i] = m._replace(filter_offset=fpos)
            fpos += m.filter_len
        if fpos + 4 != index_offset:
            raise _corrupt(
                f"chunk index: blocks end at {pos} and their {fpos - pos} filter bytes "
                f"(+ 4 crc bytes) do not end where the index starts at {index_offset}",
                path, last_entry + (_E_FILTER if fpos > pos else _E_STORED),
            )
    elif pos != index_offset:
        raise _corrupt(
            f"chunk index: blocks end at {pos}, but the index starts at {index_offset}",
            path, last_entry + _E_STORED,
        )
    return tuple(blocks)


def decode_chunk_meta(buf, base_offset: int = 0, path: str | None = None) -> ChunkMeta:
    """Parse and validate the chunk at the start of ``buf`` (header, trailer, index).

    ``buf`` is any bytes-like holding the whole chunk (it may continue past
    the chunk's end); ``base_offset`` is the chunk's absolute file offset,
    used with ``path`` in errors.  With a ``path`` the returned meta is
    located there (``segment=path, offset=base_offset``); without one it is
    an in-memory chunk like :func:`encode_chunk`'s (both None).  Block
    payloads are not read: their crcs are checked when they are decoded.

    Raises :class:`CorruptionError` on any violation of FORMAT.md section 4.
    """
    view = memoryview(buf).cast("B")
    header = parse_chunk_header(view, base_offset, path)
    chunk_len = header.chunk_len
    tail = view[chunk_len - TRAILER_LEN : chunk_len]
    index_offset, index_len = parse_chunk_trailer(
        tail, chunk_len, header.header_len, base_offset, path, header.version
    )
    blocks = parse_chunk_index(
        view[index_offset : index_offset + index_len],
        index_offset, header.header_len, base_offset, path, header.version,
    )
    return ChunkMeta.from_blocks(
        header.fingerprint, header.labels, chunk_len, blocks,
        segment=path, offset=base_offset if path is not None else None,
        version=header.version,
    )
