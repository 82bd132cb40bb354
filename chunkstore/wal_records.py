"""WAL record types and their payload encoding (docs/FORMAT.md section 5).

What goes into the write-ahead log, byte by byte; where it goes (segment
files, group commit, torn-tail repair) is :mod:`chunkstore.wal`.  The split
follows Prometheus ``tsdb/record`` and ``tsdb/wlog``.

A framed record is::

    u32 length    bytes of the body (type byte + payload), 1 .. 64 MiB
    u32 crc32c    over the 4 length bytes and the body
    u8  type      STREAM = 1, ENTRIES = 2
    payload

The encoders return the *framed* record, ready for
:meth:`chunkstore.wal.WALWriter.write`: they sit on the append hot path, so
the payload is copied exactly once (one ``b"".join``) and the checksum is
chained over the pieces instead of over a concatenation.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from chunkstore._kernels import crc32c
from chunkstore.errors import CorruptionError, LimitError

__all__ = [
    "STREAM",
    "ENTRIES",
    "RECORD_TYPES",
    "FRAME_SIZE",
    "MAX_BODY",
    "StreamRecord",
    "EntriesRecord",
    "encode_stream",
    "encode_entries",
    "frame",
    "decode",
]

#: a new stream: ``uvarint stream_id, u64 fingerprint, canonical label bytes``
STREAM = 1
#: entries of one stream: ``u64 lsn, uvarint stream_id, raw block (section 2)``
ENTRIES = 2
#: every type this version reads; any other type byte is corruption
RECORD_TYPES = frozenset({STREAM, ENTRIES})

#: bytes of the frame before the body: u32 length, u32 crc32c
FRAME_SIZE = 8
#: largest body (type byte + payload) a writer produces and a reader accepts
MAX_BODY = 64 << 20

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_TYPE_U64 = struct.Struct("<BQ")  # type byte + u64 (lsn of ENTRIES)
_U64_MAX = (1 << 64) - 1


class StreamRecord(NamedTuple):
    """A stream was created: its id, fingerprint and canonical label bytes."""

    stream_id: int
    fingerprint: int
    labels: bytes


class EntriesRecord(NamedTuple):
    """Entries appended to one stream under WAL sequence number ``lsn``.

    ``raw`` is the raw block (FORMAT.md section 2), a ``memoryview`` into the
    bytes the reader read (no copy); ``bytes(raw)`` when it must outlive them.
    """

    lsn: int
    stream_id: int
    raw: memoryview


def _uvarint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return bytes((value,))
    if value < 0 or value > _U64_MAX:
        raise ValueError(f"wal record: stream id must be in [0, 2**64), got {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode a uvarint at ``pos``; ``CorruptionError`` (payload-relative offset) if bad."""
    value = 0
    shift = 0
    end = len(buf)
    start = pos
    while True:
        if pos >= end:
            raise CorruptionError("wal record: truncated uvarint", None, start)
        b = buf[pos]
        pos += 1
        if shift == 63 and b > 1:
            raise CorruptionError("wal record: uvarint overflows 64 bits", None, start)
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _check_body(body_len: int) -> None:
    if body_len > MAX_BODY:
        raise LimitError(
            f"wal record: body of {body_len} bytes exceeds the 64 MiB limit (MAX_BODY)"
        )


def encode_stream(stream_id: int, fingerprint: int, labels: bytes) -> bytes:
    """Return the framed STREAM record announcing a new stream.

    ``labels`` are the canonical label bytes (FORMAT.md section 1).  Raises
    ``ValueError`` for a negative or too large id or fingerprint and
    :class:`LimitError` when the record would exceed 64 MiB.
    """
    if not 0 <= fingerprint <= _U64_MAX:
        raise ValueError(f"wal record: fingerprint must be in [0, 2**64), got {fingerprint}")
    prefix = bytes((STREAM,)) + _uvarint(stream_id) + _U64.pack(fingerprint)
    body_len = len(prefix) + len(labels)
    _check_body(body_len)
    lenb = _U32.pack(body_len)
    crc = crc32c(labels, crc32c(prefix, crc32c(lenb)))
    return b"".join((lenb, _U32.pack(crc), prefix, labels))


def encode_entries(lsn: int, stream_id: int, raw: bytes) -> bytes:
    """Return the framed ENTRIES record holding the raw block ``raw``.

    The hot path of every append: ``raw`` is copied once (into the returned
    bytes) and checksummed once.  Raises ``ValueError`` for a negative or too
    large ``lsn``/``stream_id`` and :class:`LimitError` past 64 MiB.
    """
    try:
        prefix = _TYPE_U64.pack(ENTRIES, lsn) + _uvarint(stream_id)
    except struct.error:
        raise ValueError(f"wal record: lsn must be in [0, 2**64), got {lsn}") from None
    body_len = len(prefix) + len(raw)
    _check_body(body_len)
    lenb = _U32.pack(body_len)
    crc = crc32c(raw, crc32c(prefix, crc32c(lenb)))
    return b"".join((lenb, _U32.pack(crc), prefix, raw))


def frame(rtype: int, payload: bytes) -> bytes:
    """Frame an already encoded payload of type ``rtype`` (any type byte 0..255).

    For tools and tests (and future record types); the store uses the typed
    encoders above.  Raises :class:`LimitError` past 64 MiB.
    """
    prefix = bytes((rtype,))
    body_len = 1 + len(payload)
    _check_body(body_len)
    lenb = _U32.pack(body_len)
    crc = crc32c(payload, crc32c(prefix, crc32c(lenb)))
    return b"".join((lenb, _U32.pack(crc), prefix, payload))


def decode(rtype: int, payload) -> StreamRecord | EntriesRecord:
    """Decode the payload (the body after its type byte) of a record of type ``rtype``.

    ``payload`` is any bytes-like object; ``EntriesRecord.raw`` is a
    ``memoryview`` slice of it, ``StreamRecord.labels`` a (small) ``bytes``
    copy.  Raises :class:`CorruptionError` for an unknown type or a payload
    that does not parse, with ``path=None`` and the offset relative to the
    payload start (the reader relocates it into the file).
    """
    buf = payload if isinstance(payload, memoryview) else memoryview(payload)
    if rtype == ENTRIES:
        if len(buf) < 8:
            raise CorruptionError(
                f"wal record: ENTRIES payload of {len(buf)} bytes is shorter than its lsn", None, 0
            )
        (lsn,) = _U64.unpack_from(buf, 0)
        sid, pos = _read_uvarint(buf, 8)
        return EntriesRecord(lsn, sid, buf[pos:])
    if rtype == STREAM:
        sid, pos = _read_uvarint(buf, 0)
        if len(buf) - pos < 8:
            raise CorruptionError("wal record: STREAM payload truncated in its fingerprint",
                                  None, pos)
        (fingerprint,) = _U64.unpack_from(buf, pos)
        return StreamRecord(sid, fingerprint, bytes(buf[pos + 8:]))
    raise CorruptionError(f"wal record: unknown record type {rtype}", None, None)
