"""Checksums and fingerprints in pure Python: the twin of ``chunkstore._hashing``.

Same names, signatures, results and exceptions as the compiled module
(``src_c/_hashing.pyx``); used when the extension is not built or when
``CHUNKSTORE_PUREPYTHON=1``.  Correct first, and only as fast as plain Python
allows (CRC-32C slicing-by-8 runs at a few MB/s, XXH64 at tens of MB/s).

- :func:`crc32c` is CRC-32C (Castagnoli, reflected polynomial ``0x82F63B78``),
  the checksum of every record chunkstore writes (docs/FORMAT.md).
- :func:`xxh64` is xxHash64 as specified by its reference implementation.
- :func:`fingerprint_canonical` is the stream fingerprint of canonical label
  bytes (docs/FORMAT.md section 1).
"""

from __future__ import annotations

import operator
import struct

__all__ = ["crc32c", "xxh64", "fingerprint_canonical"]

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _as_bytes(data: object) -> bytes:
    """Return ``data`` as ``bytes`` (any buffer; ``TypeError`` for anything else)."""
    if isinstance(data, bytes):
        return data
    return bytes(memoryview(data))  # type: ignore[arg-type]


# --- CRC-32C ---------------------------------------------------------------


def _crc_tables() -> list[list[int]]:
    poly = 0x82F63B78
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _crc_tables()


def crc32c(data: object, value: int = 0) -> int:
    """Return the CRC-32C of ``data``, continuing from a previous result ``value``.

    ``crc32c(b, crc32c(a)) == crc32c(a + b)``; ``crc32c(b"123456789") ==
    0xE3069283``.  ``data`` is any bytes-like object.  Raises ``TypeError`` for
    a non-buffer ``data`` or a non-integer ``value`` and ``ValueError`` when
    ``value`` is outside ``[0, 2**32)``.
    """
    buf = _as_bytes(data)
    value = operator.index(value)
    if not 0 <= value <= _MASK32:
        raise ValueError(f"crc32c: value must be in [0, 2**32), got {value}")
    crc = value ^ _MASK32
    n = len(buf)
    n8 = n - n % 8
    t0, t1, t2, t3, t4, t5, t6, t7 = _T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7
    if n8:
        # Slicing-by-8: one table look-up per byte, eight bytes per iteration.
        for (word,) in struct.iter_unpack("<Q", buf[:n8]):
            x = crc ^ (word & _MASK32)
            h = word >> 32
            crc = (
                t7[x & 0xFF]
                ^ t6[(x >> 8) & 0xFF]
                ^ t5[(x >> 16) & 0xFF]
                ^ t4[x >> 24]
                ^ t3[h & 0xFF]
                ^ t2[(h >> 8) & 0xFF]
                ^ t1[(h >> 16) & 0xFF]
                ^ t0[h >> 24]
            )
    for b in buf[n8:]:
        crc = (crc >> 8) ^ t0[(crc ^ b) & 0xFF]
    return crc ^ _MASK32


# --- XXH64 -----------------------------------------------------------------

_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _MASK64
    acc = ((acc << 31) | (acc >> 33)) & _MASK64
    return (acc * _P1) & _MASK64


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _MASK64


def xxh64(data: object, seed: int = 0) -> int:
    """Return the XXH64 hash of ``data`` with ``seed`` (an unsigned 64-bit int).

    ``xxh64(b"") == 0xEF46DB3751D8E999``.  Raises ``TypeError`` for a non-buffer
    ``data`` or a non-integer ``seed`` and ``ValueError`` when ``seed`` is
    outside ``[0, 2**64)``.
    """
    buf = _as_bytes(data)
    seed = operator.index(seed)
    if not 0 <= seed <= _MASK64:
        raise ValueError(f"xxh64: seed must be in [0, 2**64), got {seed}")
    n = len(buf)
    p = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _MASK64
        v2 = (seed + _P2) & _MASK64
        v3 = seed
        v4 = (seed - _P1) & _MASK64
        stripes = n // 32
        lanes = struct.unpack_from(f"<{stripes * 4}Q", buf, 0)
        rnd = _round
        for i in range(0, stripes * 4, 4):
            v1 = rnd(v1, lanes[i])
            v2 = rnd(v2, lanes[i + 1])
            v3 = rnd(v3, lanes[i + 2])
            v4 = rnd(v4, lanes[i + 3])
        p = stripes * 32
        h = (
            ((v1 << 1) | (v1 >> 63))
            + ((v2 << 7) | (v2 >> 57))
            + ((v3 << 12) | (v3 >> 52))
            + ((v4 << 18) | (v4 >> 46))
        ) & _MASK64
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _MASK64
    h = (h + n) & _MASK64
    while p + 8 <= n:
        (lane,) = struct.unpack_from("<Q", buf, p)
        h ^= _round(0, lane)
        h = ((((h << 27) | (h >> 37)) & _MASK64) * _P1 + _P4) & _MASK64
        p += 8
    if p + 4 <= n:
        (lane,) = struct.unpack_from("<I", buf, p)
        h ^= (lane * _P1) & _MASK64
        h = ((((h << 23) | (h >> 41)) & _MASK64) * _P2 + _P3) & _MASK64
        p += 4
    while p < n:
        h ^= (buf[p] * _P5) & _MASK64
        h = ((((h << 11) | (h >> 53)) & _MASK64) * _P1) & _MASK64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _MASK64
    h ^= h >> 29
    h = (h * _P3) & _MASK64
    h ^= h >> 32
    return h


def fingerprint_canonical(canonical: object) -> int:
    """Return the stream fingerprint of canonical label bytes: ``xxh64(canonical, 0)``.

    See docs/FORMAT.md section 1 for how the canonical bytes are built.
    """
    return xxh64(canonical, 0)
