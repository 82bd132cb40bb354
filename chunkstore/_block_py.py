"""Raw and stored blocks in pure Python: the twin of ``chunkstore._block``.

Same names, signatures, results and exceptions as the compiled module
(``src_c/_block.pyx``).  The byte layouts are docs/FORMAT.md section 2 (the
raw, columnar block: also the WAL entry payload) and section 3 (the stored,
compressed and checksummed block).

Decoders validate everything and raise :class:`~chunkstore.errors.CorruptionError`
with ``path=None`` and ``offset`` relative to the buffer they were given; every
declared count or length is checked against the bytes that remain before
anything is allocated for it.  Argument errors raise ``TypeError`` (wrong
type), ``OverflowError`` (timestamp outside int64) or ``ValueError``.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import lz4.block

from chunkstore._hashing_py import crc32c
from chunkstore.errors import CorruptionError

try:  # optional codec
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

__all__ = [
    "CODEC_NONE",
    "CODEC_LZ4",
    "CODEC_LZ4HC",
    "CODEC_ZSTD",
    "MAX_RAW_LEN",
    "MAX_METADATA_PAIRS",
    "STORED_OVERHEAD",
    "BlockBuilder",
    "encode_entries",
    "decode_entries",
    "merge_raw_blocks",
    "compress_block",
    "compress_and_filter",
    "release_free_memory",
    "decompress_block",
    "read_block_header",
]

CODEC_NONE = 0
CODEC_LZ4 = 1
CODEC_LZ4HC = 2
CODEC_ZSTD = 3
_CODEC_NAMES = {0: "none", 1: "lz4", 2: "lz4-hc", 3: "zstd"}

#: Largest raw (decompressed) block a reader accepts and a writer produces.
MAX_RAW_LEN = 64 << 20
#: Largest number of structured-metadata pairs on one entry.
MAX_METADATA_PAIRS = 1024
#: Bytes a stored block adds to its payload: 9-byte header + 4-byte crc32c.
STORED_OVERHEAD = 13

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_MASK64 = (1 << 64) - 1
_HEADER = struct.Struct("<BII")
_U32 = struct.Struct("<I")

Metadata = tuple[tuple[bytes, bytes], ...]


# --- argument helpers --------------------------------------------------------


def _as_bytes(data: object) -> bytes:
    """Return ``data`` as ``bytes`` (any buffer; ``TypeError`` for anything else)."""
    if isinstance(data, bytes):
        return data
    return bytes(memoryview(data))  # type: ignore[arg-type]


def _ts64(value: object) -> int:
    """Return ``value`` as an int64 timestamp (``TypeError``/``OverflowError``)."""
    ts = operator.index(value)  # type: ignore[arg-type]
    if not _INT64_MIN <= ts <= _INT64_MAX:
        raise OverflowError(f"timestamp {ts} is outside the int64 range")
    return ts


def _put_uvarint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _encode_metadata(pairs: object) -> bytes:
    """Encode one entry's metadata pairs (section 2); ``b""`` for None or no pairs."""
    if pairs is None:
        return b""
    items = []
    for pair in pairs:  # type: ignore[attr-defined]
        if not isinstance(pair, (tuple, list)):
            raise TypeError(
                f"metadata: a pair must be a (name, value) tuple, got {type(pair).__name__}"
            )
        if len(pair) != 2:
            raise ValueError(f"metadata: a pair must have 2 items, got {len(pair)}")
        items.append((_as_bytes(pair[0]), _as_bytes(pair[1])))  # type: ignore[attr-defined]
    if not items:
        return b""
    if len(items) > MAX_METADATA_PAIRS:
        raise ValueError(
            f"metadata: {len(items)} pairs exceed the limit of {MAX_METADATA_PAIRS}"
        )
    out = bytearray()
    _put_uvarint(out, len(items))
    for name, value in items:
        _put_uvarint(out, len(name))
        out += name
        _put_uvarint(out, len(value))
        out += value
    return bytes(out)


def _encode_columns(ts: Sequence[int], lines: Sequence[bytes], metas: Sequence[bytes]) -> bytes:
    """Lay out a raw block from validated columns; ``metas`` are encoded (b"" = none)."""
    out = bytearray()
    n = len(ts)
    text_len = sum(map(len, lines))
    has_meta = any(metas)
    meta_len = sum(len(m) if m else 1 for m in metas) if has_meta else 0
    _put_uvarint(out, n)
    _put_uvarint(out, text_len)
    _put_uvarint(out, meta_len)
    prev = 0
    for t in ts:
        d = (t - prev) & _MASK64
        # zigzag of the delta as a signed 64-bit value
        d = ((d << 1) & _MASK64) ^ (_MASK64 if d >> 63 else 0)
        _put_uvarint(out, d)
        prev = t
    for line in lines:
        _put_uvarint(out, len(line))
    if has_meta:
        for m in metas:
            out += m if m else b"\x00"
    out += b"".join(lines)
    return bytes(out)


# --- raw block decoding --------------------------------------------------------


def _corrupt(message: str, offset: int) -> CorruptionError:
    return CorruptionError(f"raw block: {message}", offset=offset)


def _uvarint(buf: bytes, p: int, end: int, field: str) -> tuple[int, int]:
    """Read a uvarint at ``p`` that must end before ``end``; return (value, next p)."""
    start = p
    result = 0
    shift = 0
    while True:
        if p >= end:
            raise _corrupt(f"truncated varint in {field}", start)
        b = buf[p]
        p += 1
        if shift == 63 and b > 1:
            raise _corrupt(f"varint in {field} overflows 64 bits", start)
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7


class _RawColumns:
    """The validated columns of a raw block (offsets are absolute in ``buf``)."""

    __slots__ = ("buf", "n", "ts", "line_starts", "meta_spans", "text_pos", "text_len")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        size = len(buf)
        n, p = _uvarint(buf, 0, size, "entry count")
        tl_off = p
        text_len, p = _uvarint(buf, p, size, "text_len")
        ml_off = p
        meta_len, p = _uvarint(buf, p, size, "meta_len")
        rem = size - p
        if n > rem // 2:
            raise _corrupt(f"entry count {n} needs more than the {rem} bytes left", 0)
        avail = rem - 2 * n
        if text_len > avail:
            raise _corrupt(f"text_len {text_len} exceeds the {avail} bytes available", tl_off)
        avail -= text_len
        if meta_len > avail:
            raise _corrupt(f"meta_len {meta_len} exceeds the {avail} bytes available", ml_off)
        cols_end = size - text_len - meta_len

        ts = [0] * n
        prev = 0
        for i in range(n):
            z, p = _uvarint(buf, p, cols_end, f"timestamp of entry {i}")
            delta = (z >> 1) ^ -(z & 1)
            prev = (prev + delta) & _MASK64
            ts[i] = prev - (1 << 64) if prev >> 63 else prev
        text_pos = cols_end + meta_len
        starts = [0] * (n + 1)
        total = 0
        for i in range(n):
            off = p
            length, p = _uvarint(buf, p, cols_end, f"line length of entry {i}")
            if length > text_len - total:
                raise _corrupt(
                    f"line length {length} of entry {i} overflows text_len {text_len}", off
                )
            starts[i] = text_pos + total
            total += length
        starts[n] = text_pos + total
        if p != cols_end:
            raise _corrupt(
                f"entry columns end at offset {p}, {cols_end - p} bytes before the "
                "metadata and text sections",
                p,
            )
        if total != text_len:
            raise _corrupt(f"line lengths sum to {total}, text_len is {text_len}", tl_off)

        spans: list[tuple[int, int]] | None = None
        if meta_len:
            meta_end = cols_end + meta_len
            spans = [(0, 0)] * n
            for i in range(n):
                start = p
                k, p = _uvarint(buf, p, meta_end, f"metadata pair count of entry {i}")
                if k > MAX_METADATA_PAIRS:
                    raise _corrupt(
                        f"metadata of entry {i}: {k} pairs exceed the limit of "
                        f"{MAX_METADATA_PAIRS}",
                        start,
                    )
                if k > (meta_end - p) // 2:
                    raise _corrupt(
                        f"metadata of entry {i}: {k} pairs need more than the "
                        f"{meta_end - p} bytes left in the metadata section",
                        start,
                    )
                for _ in range(2 * k):
                    off = p
                    length, p = _uvarint(buf, p, meta_end, f"metadata length of entry {i}")
                    if length > meta_end - p:
                        raise _corrupt(
                            f"metadata length {length} of entry {i} exceeds the "
                            f"{meta_end - p} bytes left in the metadata section",
                            off,
                        )
                    p += length
                spans[i] = (start, p)
            if p != meta_end:
                raise _corrupt(f"metadata section has {meta_end - p} trailing bytes", p)
        self.n = n
        self.ts = ts
        self.line_starts = starts
        self.meta_spans = spans
        self.text_pos = text_pos
        self.text_len = text_len

    def line(self, i: int) -> bytes:
        return self.buf[self.line_starts[i] : self.line_starts[i + 1]]

    def metadata(self, i: int) -> Metadata | None:
        if self.meta_spans is None:
            return None
        start, end = self.meta_spans[i]
        return _decode_metadata(self.buf, start)

    def meta_bytes(self, i: int) -> bytes:
        """The entry's encoded metadata, ``b""`` when it has none."""
        # Re-encoded rather than sliced so that non-minimal varints in a valid
        # block do not make equal metadata compare unequal.
        return _encode_metadata(self.metadata(i))


def _decode_metadata(buf: bytes, p: int) -> Metadata | None:
    """Decode already-validated metadata at ``p``; None for zero pairs."""
    k, p = _uvarint(buf, p, len(buf), "metadata")
    if k == 0:
        return None
    pairs = []
    for _ in range(k):
        nl, p = _uvarint(buf, p, len(buf), "metadata")
        name = buf[p : p + nl]
        p += nl
        vl, p = _uvarint(buf, p, len(buf), "metadata")
        value = buf[p : p + vl]
        p += vl
        pairs.append((name, value))
    return tuple(pairs)


# --- public raw block API --------------------------------------------------------


def encode_entries(
    ts: Sequence[int],
    lines: Sequence[bytes],
    metadata: Sequence[Metadata | None] | None = None,
) -> bytes:
    """Encode entries, in the given order, as a raw block (FORMAT.md section 2).

    ``metadata`` is None or one item per entry (None or a tuple of
    ``(name, value)`` byte pairs); when no entry has a pair, ``meta_len`` is 0.
    An empty tuple encodes like None and decodes as None.  Raises
    ``ValueError`` on mismatched lengths or more than 1024 pairs,
    ``TypeError`` on a non-integer timestamp or a non-bytes line, name or
    value, ``OverflowError`` on a timestamp outside int64.
    """
    n = len(ts)
    if len(lines) != n:
        raise ValueError(f"encode_entries: {n} timestamps but {len(lines)} lines")
    if metadata is not None and len(metadata) != n:
        raise ValueError(f"encode_entries: {n} timestamps but {len(metadata)} metadata items")
    ts_list = [_ts64(t) for t in ts]
    line_list = [_as_bytes(line) for line in lines]
    if metadata is None:
        metas = [b""] * n
    else:
        metas = [_encode_metadata(m) for m in metadata]
    return _encode_columns(ts_list, line_list, metas)


def decode_entries(raw: object) -> tuple[list[int], list[bytes], list[Metadata | None]]:
    """Decode a raw block into ``(timestamps, lines, metadata)`` lists.

    Validates the whole block; raises ``CorruptionError(offset=...)`` (offset
    into ``raw``) on any inconsistency.  Entries without metadata give None.
    """
    cols = _RawColumns(_as_bytes(raw))
    lines = [cols.line(i) for i in range(cols.n)]
    metas = [cols.metadata(i) for i in range(cols.n)]
    return cols.ts, lines, metas


# --- stored blocks -----------------------------------------------------------------


def _check_codec(codec: object, where: str) -> int:
    codec = operator.index(codec)  # type: ignore[arg-type]
    if codec not in _CODEC_NAMES:
        raise ValueError(f"{where}: unknown codec {codec}")
    if codec == CODEC_ZSTD and _zstd is None:
        raise ValueError(f"{where}: codec 3 (zstd) needs the zstandard package")
    return codec


def _check_max_raw_len(max_raw_len: object, where: str) -> int:
    limit = operator.index(max_raw_len)  # type: ignore[arg-type]
    if not 0 <= limit <= MAX_RAW_LEN:
        raise ValueError(f"{where}: max_raw_len must be in [0, {MAX_RAW_LEN}], got {limit}")
    return limit


def compress_block(raw: object, codec: int = CODEC_LZ4, level: int = 0,
                   zstd_params: dict | None = None) -> bytes:
    """Compress and frame a raw block as a stored block (FORMAT.md section 3).

    ``codec`` is one of ``CODEC_NONE``, ``CODEC_LZ4`` (``level`` ignored),
    ``CODEC_LZ4HC`` (``level`` 0 means lz4-hc's default, 9) or ``CODEC_ZSTD``
    (needs the ``zstandard`` package; ``level`` 0 means zstd's default).
    Raises ``ValueError`` for an unknown or unavailable codec or a raw block
    above 64 MiB.
    ``zstd_params`` (zstd only) overrides the level's match-finder settings
    with ``zstandard.ZstdCompressionParameters`` fields, e.g.
    ``{"min_match": 6}``; the payload is still one frame with its content
    size.
    """
    data = _as_bytes(raw)
    codec = _check_codec(codec, "compress_block")
    level = operator.index(level)
    if len(data) > MAX_RAW_LEN:
        raise ValueError(
            f"compress_block: raw block of {len(data)} bytes exceeds the limit of "
            f"{MAX_RAW_LEN} bytes"
        )
    if codec == CODEC_NONE:
        payload = data
    elif codec == CODEC_LZ4:
        payload = lz4.block.compress(data, store_size=False, mode="default")
    elif codec == CODEC_LZ4HC:
        payload = lz4.block.compress(
            data, store_size=False, mode="high_compression", compression=level
        )
    else:
        payload = _zstd_compress(data, level, zstd_params)
    head = _HEADER.pack(codec, len(data), len(payload)) + payload
    return head + _U32.pack(crc32c(head))


#: True when compress_and_filter compresses lz4 blocks without the GIL (never, here).
NOGIL_LZ4 = False


def merge_raw_blocks(raws) -> bytes:
    """One raw block of every entry of ``raws``, sorted by timestamp (stable).

    Entries with equal timestamps keep their input order (block order, then
    position), and nothing is deduplicated.  Every input is validated first.
    """
    parsed = [_RawColumns(_as_bytes(raw)) for raw in raws]
    ts: list[int] = []
    lines: list[bytes] = []
    metas: list[bytes] = []
    for cols in parsed:
        for i in range(cols.n):
            ts.append(cols.ts[i])
            lines.append(cols.line(i))
            metas.append(cols.meta_bytes(i))
    order = sorted(range(len(ts)), key=ts.__getitem__)  # stable
    return _encode_columns([ts[i] for i in order], [lines[i] for i in order],
                           [metas[i] for i in order])


def compress_and_filter(raws, codec: int = CODEC_LZ4, bits_per_key: int = 0,
                        prefix_len: int = 8) -> list[tuple[bytes, bytes]]:
    """``[(compress_block(raw, codec), block_filter(raw, bits_per_key, prefix_len)), ...]``.

    What a cut block needs before it can be sealed, for a list of raw blocks
    (the compiled kernel finishes the whole list in one GIL-free section).
    ``bits_per_key`` 0 means no filters (b""); else the filter is exactly
    ``chunkstore._tokens_py.block_filter``'s.  Raises what those two raise,
    for the first block that fails, after checking every block's size.
    """
    from chunkstore import _tokens_py

    codec = _check_codec(codec, "compress_block")
    bits_per_key = operator.index(bits_per_key)
    prefix_len = operator.index(prefix_len)
    if not 0 <= bits_per_key <= 64:
        raise ValueError(
            f"compress_and_filter: bits_per_key must be 0..64, got {bits_per_key}")
    if not 1 <= prefix_len <= 8:
        raise ValueError(f"compress_and_filter: prefix_len must be 1..8, got {prefix_len}")
    blocks = [_as_bytes(r) for r in raws]
    for data in blocks:
        if len(data) > MAX_RAW_LEN:
            raise ValueError(
                f"compress_block: raw block of {len(data)} bytes exceeds the limit of "
                f"{MAX_RAW_LEN} bytes")
    return [(compress_block(r, codec),
             _tokens_py.block_filter(r, bits_per_key, prefix_len) if bits_per_key else b"")
            for r in blocks]


def release_free_memory() -> bool:
    """Give the heap's free pages back to the OS (glibc's ``malloc_trim``); True if any.

    A head under memory pressure frees many blocks, some allocated on the
    cut-block worker's thread (its own malloc arena), in an order that
    leaves free holes the allocator keeps; trimming returns them.  A no-op
    (False) where the C library has no such call.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def _malloc_trim():
    global _TRIM
    if _TRIM is False:
        import ctypes

        try:
            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = None
    return _TRIM


_TRIM = False


def _zstd_compress(data, level, params):
    """One zstd frame of ``data`` (content size declared) at ``level``, with
    ``params`` overriding that level's parameters for a source of this size."""
    if not params:
        return _zstd.ZstdCompressor(level=level).compress(data)
    cp = _zstd.ZstdCompressionParameters.from_level(level, source_size=len(data), **params)
    return _zstd.ZstdCompressor(compression_params=cp).compress(data)


def _stored_corrupt(message: str, offset: int) -> CorruptionError:
    return CorruptionError(f"stored block: {message}", offset=offset)


def _parse_header(data: bytes, limit: int) -> tuple[int, int, int]:
    size = len(data)
    if size < STORED_OVERHEAD:
        raise _stored_corrupt(f"{size} bytes, shorter than the 13-byte minimum", 0)
    codec, raw_len, payload_len = _HEADER.unpack_from(data, 0)
    if codec not in _CODEC_NAMES:
        raise _stored_corrupt(f"unknown codec {codec}", 0)
    if raw_len > limit:
        raise _stored_corrupt(f"raw_len {raw_len} exceeds the limit of {limit} bytes", 1)
    if payload_len > size - STORED_OVERHEAD:
        raise _stored_corrupt(
            f"payload_len {payload_len} exceeds the {size - STORED_OVERHEAD} bytes present", 5
        )
    if codec == CODEC_NONE and payload_len != raw_len:
        raise _stored_corrupt(
            f"codec 0 payload_len {payload_len} differs from raw_len {raw_len}", 5
        )
    return codec, raw_len, payload_len


def read_block_header(stored: object, max_raw_len: int = MAX_RAW_LEN) -> tuple[int, int, int]:
    """Return ``(codec, raw_len, payload_len)`` of a buffer starting with a stored block.

    Checks the header against the buffer (which may extend past the block) and
    the limits, not the checksum.  Raises ``CorruptionError`` on a bad header.
    """
    limit = _check_max_raw_len(max_raw_len, "read_block_header")
    return _parse_header(_as_bytes(stored), limit)


def decompress_block(stored: object, max_raw_len: int = MAX_RAW_LEN) -> bytes:
    """Verify a stored block and return its raw block of exactly ``raw_len`` bytes.

    ``stored`` must be exactly one stored block.  Order of checks: the crc32c
    (offset 0 on mismatch), the header fields, then decompression bounded by
    the declared ``raw_len`` (at most ``max_raw_len``, itself at most 64 MiB).
    Any failure is a ``CorruptionError``; ``ValueError`` when the block uses
    zstd and the ``zstandard`` package is missing.
    """
    limit = _check_max_raw_len(max_raw_len, "decompress_block")
    data = _as_bytes(stored)
    size = len(data)
    if size < STORED_OVERHEAD:
        raise _stored_corrupt(f"{size} bytes, shorter than the 13-byte minimum", 0)
    (want,) = _U32.unpack_from(data, size - 4)
    got = crc32c(memoryview(data)[: size - 4])
    if want != got:
        raise _stored_corrupt(
            f"crc32c mismatch: stored 0x{want:08x}, computed 0x{got:08x}", 0
        )
    codec, raw_len, payload_len = _parse_header(data, limit)
    if payload_len != size - STORED_OVERHEAD:
        raise _stored_corrupt(
            f"payload_len {payload_len} does not match the {size - STORED_OVERHEAD} "
            "payload bytes present",
            5,
        )
    payload = data[9 : 9 + payload_len]
    if codec == CODEC_NONE:
        return payload
    if codec == CODEC_ZSTD:
        out = _zstd_decompress(payload, raw_len)
    else:
        try:
            out = lz4.block.decompress(payload, uncompressed_size=raw_len)
        except (lz4.block.LZ4BlockError, ValueError) as exc:
            raise _stored_corrupt(f"lz4 payload does not decompress: {exc}", 9) from None
    if len(out) != raw_len:
        raise _stored_corrupt(
            f"payload decompresses to {len(out)} bytes, raw_len is {raw_len}", 9
        )
    return out


def _zstd_decompress(payload: bytes, raw_len: int) -> bytes:
    """Decompress a zstd frame to at most ``raw_len`` bytes (never trusting its header)."""
    if _zstd is None:
        raise ValueError("decompress_block: codec 3 (zstd) needs the zstandard package")
    try:
        declared = _zstd.frame_content_size(payload)
        if declared >= 0 and declared != raw_len:
            raise _stored_corrupt(
                f"zstd frame declares {declared} bytes, raw_len is {raw_len}", 9
            )
        # python-zstandard reads max_output_size=0 as "unbounded": ask for at
        # least 1 byte, so a frame that expands when raw_len is 0 still fails.
        out = _zstd.ZstdDecompressor().decompress(payload, max_output_size=max(raw_len, 1))
    except _zstd.ZstdError as exc:
        raise _stored_corrupt(f"zstd payload does not decompress: {exc}", 9) from None
    return out


# --- the head block builder ---------------------------------------------------------

def _line_reject_reason(line: object) -> tuple[bytes | None, str | None]:
    if isinstance(line, bytes):
        return bytes(line), None
    if isinstance(line, str):
        try:
            return line.encode("utf-8"), None
        except UnicodeEncodeError:
            return None, "line is not valid unicode"
    return None, "line must be str or bytes"


def _mapping_metadata(meta: object) -> tuple[bytes | None, str | None]:
    """Encode a Mapping[str, str] as sorted metadata pairs; (encoded, reject reason)."""
    if meta is None:
        return b"", None
    if not isinstance(meta, Mapping):
        return None, "invalid structured metadata"
    pairs = []
    for name, value in meta.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None, "invalid structured metadata"
        try:
            pairs.append((name.encode("utf-8"), value.encode("utf-8")))
        except UnicodeEncodeError:
            return None, "invalid structured metadata"
    if len(pairs) > MAX_METADATA_PAIRS:
        return None, (
            f"too many structured metadata pairs: {len(pairs)} exceeds {MAX_METADATA_PAIRS}"
        )
    pairs.sort()
    return _encode_metadata(pairs), None


class BlockBuilder:
    """The in-memory head block of one stream: entries in arrival order, built sorted.

    Exact duplicates (same timestamp, line bytes and encoded metadata) of an
    entry already held are dropped, as Loki does.  Not thread-safe.  In this
    pure twin the capacity hints are ignored and :meth:`memory_bytes` is an
    estimate.
    """

    def __init__(self, *, text_capacity: int = 0, entry_capacity: int = 0) -> None:
        operator.index(text_capacity)
        operator.index(entry_capacity)
        self._ts: list[int] = []
        self._lines: list[bytes] = []
        self._metas: list[bytes] = []
        self._keys: set[tuple[int, bytes, bytes]] = set()
        self._text = 0
        self._meta = 0
        self._ordered = True
        self._min: int | None = None
        self._max: int | None = None

    # -- appending --

    def _add(self, ts: int, line: bytes, meta: bytes) -> bool:
        key = (ts, line, meta)
        if key in self._keys:
            return False
        self._keys.add(key)
        if self._ts:
            if ts < self._ts[-1]:
                self._ordered = False
            if ts < self._min:  # type: ignore[operator]
                self._min = ts
            if ts > self._max:  # type: ignore[operator]
                self._max = ts
        else:
            self._min = self._max = ts
        self._ts.append(ts)
        self._lines.append(line)
        self._metas.append(meta)
        self._text += len(line)
        self._meta += len(meta)
        return True

    def append(self, ts: int, line: bytes, metadata: Metadata | None = None) -> bool:
        """Append one entry; return False (and keep nothing) for an exact duplicate.

        Raises ``TypeError``/``OverflowError``/``ValueError`` like
        :func:`encode_entries` for a bad timestamp, line or metadata.
        """
        return self._add(_ts64(ts), _as_bytes(line), _encode_metadata(metadata))

    def extend(
        self, entries: Sequence[Any], max_line_size: int, min_ts: int
    ) -> tuple[int, list[tuple[int, str]], bytes]:
        """Validate and append a batch of pushed entries; the collector fast path.

        Each item is ``(ts, line)`` or ``(ts, line, metadata)``: ``ts`` an int,
        ``line`` bytes or str (UTF-8 encoded), ``metadata`` None or a
        ``Mapping[str, str]`` (stored as UTF-8 pairs sorted by name).  Checks,
        in order, with the reject reason given: not a 2- or 3-tuple/list
        ("invalid entry"); ts not an int in int64 ("invalid timestamp"); line
        type ("line must be str or bytes", "line is not valid unicode"); line
        length above ``max_line_size`` when ``max_line_size > 0``
        ("line too long: N bytes exceeds max_line_size M"); metadata ("invalid
        structured metadata", "too many structured metadata pairs: N exceeds
        1024"); exact duplicate (skipped silently, not a reject); ``ts <
        min_ts`` ("too far behind").

        Returns ``(n_accepted, rejects, wal_raw)``: ``rejects`` lists
        ``(index, reason)``; ``wal_raw`` is :func:`encode_entries` of exactly
        the accepted entries in input order.
        """
        max_line_size = operator.index(max_line_size)
        min_ts = _ts64(min_ts)
        first = len(self._ts)
        rejects: list[tuple[int, str]] = []
        for index, item in enumerate(entries):
            if not isinstance(item, (tuple, list)) or not 2 <= len(item) <= 3:
                rejects.append((index, "invalid entry"))
                continue
            ts = item[0]
            if not isinstance(ts, int) or not _INT64_MIN <= ts <= _INT64_MAX:
                rejects.append((index, "invalid timestamp"))
                continue
            line, reason = _line_reject_reason(item[1])
            if reason is not None:
                rejects.append((index, reason))
                continue
            assert line is not None
            if 0 < max_line_size < len(line):
                rejects.append((
                    index,
                    f"line too long: {len(line)} bytes exceeds max_line_size {max_line_size}",
                ))
                continue
            meta, reason = _mapping_metadata(item[2] if len(item) == 3 else None)
            if reason is not None:
                rejects.append((index, reason))
                continue
            assert meta is not None
            key = (int(ts), line, meta)
            if key in self._keys:
                continue
            if ts < min_ts:
                rejects.append((index, "too far behind"))
                continue
            self._add(int(ts), line, meta)
        wal = _encode_columns(self._ts[first:], self._lines[first:], self._metas[first:])
        return len(self._ts) - first, rejects, wal

    def extend_record(
        self, entries: Sequence[Any], max_line_size: int, min_ts: int, lsn: int, stream_id: int
    ) -> tuple[int, list[tuple[int, str]], bytes | None]:
        """:meth:`extend`, returning the framed WAL ENTRIES record instead of the raw block.

        ``record`` is ``wal_records.encode_entries(lsn, stream_id, wal_raw)``
        (FORMAT.md section 5), or None when nothing was accepted.  Raises
        ``ValueError`` for an ``lsn`` or ``stream_id`` outside ``[0, 2**64)``
        before appending anything.
        """
        from chunkstore import wal_records  # the record layout lives there

        if not 0 <= lsn <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"wal record: lsn must be in [0, 2**64), got {lsn}")
        if not 0 <= stream_id <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"wal record: stream id must be in [0, 2**64), got {stream_id}")
        n, rejects, raw = self.extend(entries, max_line_size, min_ts)
        return n, rejects, (wal_records.encode_entries(lsn, stream_id, raw) if n else None)

    def extend_raw(self, raw: object) -> int:
        """Append the entries of a raw block (WAL replay); return how many were new.

        The block is validated first (``CorruptionError``, nothing appended);
        exact duplicates are skipped.
        """
        cols = _RawColumns(_as_bytes(raw))
        added = 0
        for i in range(cols.n):
            added += self._add(cols.ts[i], cols.line(i), cols.meta_bytes(i))
        return added

    # -- reading --

    @property
    def n_entries(self) -> int:
        """Number of entries held."""
        return len(self._ts)

    @property
    def text_bytes(self) -> int:
        """Sum of the line lengths, in bytes."""
        return self._text

    @property
    def size_bytes(self) -> int:
        """Text + encoded metadata + 16 bytes per entry: the flush accounting figure."""
        return self._text + self._meta + 16 * len(self._ts)

    @property
    def min_ts(self) -> int | None:
        """Smallest timestamp held, None when empty."""
        return self._min

    @property
    def max_ts(self) -> int | None:
        """Largest timestamp held, None when empty."""
        return self._max

    @property
    def ordered(self) -> bool:
        """True while every append came in non-decreasing timestamp order."""
        return self._ordered

    def _order(self) -> list[int]:
        n = len(self._ts)
        if self._ordered:
            return list(range(n))
        return sorted(range(n), key=self._ts.__getitem__)  # stable

    def build(self) -> bytes:
        """Return the raw block of all entries sorted by timestamp (stable)."""
        order = self._order()
        return _encode_columns(
            [self._ts[i] for i in order],
            [self._lines[i] for i in order],
            [self._metas[i] for i in order],
        )

    def entries(self) -> tuple[list[int], list[bytes], list[Metadata | None]]:
        """Return ``(timestamps, lines, metadata)`` sorted like :meth:`build`."""
        order = self._order()
        return (
            [self._ts[i] for i in order],
            [self._lines[i] for i in order],
            [_decode_metadata(self._metas[i], 0) if self._metas[i] else None for i in order],
        )

    def reset(self) -> None:
        """Drop every entry (the compiled builder keeps its memory for reuse)."""
        self._ts.clear()
        self._lines.clear()
        self._metas.clear()
        self._keys.clear()
        self._text = 0
        self._meta = 0
        self._ordered = True
        self._min = self._max = None

    def memory_bytes(self) -> int:
        """Bytes of memory held (an estimate in this pure twin)."""
        return self.size_bytes + 8 * len(self._ts)

    def __len__(self) -> int:
        return len(self._ts)

    def __repr__(self) -> str:
        return f"BlockBuilder(n_entries={len(self._ts)}, size_bytes={self.size_bytes})"

    def _check(self) -> None:
        """Assert the builder's invariants (used by stress and stateful tests)."""
        n = len(self._ts)
        assert len(self._lines) == n and len(self._metas) == n
        assert self._text == sum(map(len, self._lines))
        assert self._meta == sum(map(len, self._metas))
        assert len(self._keys) == n
        if n:
            assert self._min == min(self._ts) and self._max == max(self._ts)
        else:
            assert self._min is None and self._max is None
        if self._ordered:
            assert all(a <= b for a, b in zip(self._ts, self._ts[1:], strict=False))
