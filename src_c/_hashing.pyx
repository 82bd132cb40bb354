"""Checksums and fingerprints, compiled: ``chunkstore._hashing``.

- :func:`crc32c`: CRC-32C (Castagnoli), the checksum of every record
  chunkstore writes; the SSE4.2 ``crc32`` instruction (three interleaved
  streams) when the CPU has it, slicing-by-8 tables otherwise.  The GIL is
  released for inputs of 64 KiB and more.
- :func:`xxh64`: xxHash64 from its reference specification.
- :func:`fingerprint_canonical`: the stream fingerprint (docs/FORMAT.md
  section 1).

The pure-Python twin is ``chunkstore._hashing_py`` (same names, results and
exceptions).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from cs_common cimport as_bytes, cs_crc32c, cs_crc_have_hw, cs_crc_init, cs_xxh64

import operator

__all__ = ["crc32c", "xxh64", "fingerprint_canonical", "HARDWARE_CRC32C"]

cs_crc_init()

#: True when crc32c uses the CPU's SSE4.2 crc32 instruction.
HARDWARE_CRC32C = bool(cs_crc_have_hw)

cdef size_t _NOGIL_MIN = 64 * 1024


def crc32c(data, value=0):
    """Return the CRC-32C of ``data``, continuing from a previous result ``value``.

    ``crc32c(b, crc32c(a)) == crc32c(a + b)``; ``crc32c(b"123456789") ==
    0xE3069283``.  ``data`` is any bytes-like object.  Raises ``TypeError`` for
    a non-buffer ``data`` or a non-integer ``value`` and ``ValueError`` when
    ``value`` is outside ``[0, 2**32)``.
    """
    cdef bytes buf = as_bytes(data)
    value = operator.index(value)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"crc32c: value must be in [0, 2**32), got {value}")
    cdef uint32_t crc = <uint32_t>value
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef size_t n = <size_t>PyBytes_GET_SIZE(buf)
    if n >= _NOGIL_MIN:
        with nogil:
            crc = cs_crc32c(crc, p, n)
    else:
        crc = cs_crc32c(crc, p, n)
    return crc


def xxh64(data, seed=0):
    """Return the XXH64 hash of ``data`` with ``seed`` (an unsigned 64-bit int).

    ``xxh64(b"") == 0xEF46DB3751D8E999``.  Raises ``TypeError`` for a non-buffer
    ``data`` or a non-integer ``seed`` and ``ValueError`` when ``seed`` is
    outside ``[0, 2**64)``.
    """
    cdef bytes buf = as_bytes(data)
    seed = operator.index(seed)
    if not 0 <= seed <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"xxh64: seed must be in [0, 2**64), got {seed}")
    cdef uint64_t s = <uint64_t>seed
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef size_t n = <size_t>PyBytes_GET_SIZE(buf)
    cdef uint64_t h
    if n >= _NOGIL_MIN:
        with nogil:
            h = cs_xxh64(p, n, s)
    else:
        h = cs_xxh64(p, n, s)
    return h


def fingerprint_canonical(canonical):
    """Return the stream fingerprint of canonical label bytes: ``xxh64(canonical, 0)``.

    See docs/FORMAT.md section 1 for how the canonical bytes are built.
    """
    cdef bytes buf = as_bytes(canonical)
    return cs_xxh64(<const uint8_t *>PyBytes_AS_STRING(buf), <size_t>PyBytes_GET_SIZE(buf), 0)
