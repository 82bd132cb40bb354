"""Per-block token filters, compiled: ``chunkstore._tokens``.

- :func:`block_filter` builds the Bloom filter of the tokens of a raw block's
  lines (the rule is in ``src_c/cs_tokens.h`` and docs/FORMAT.md section 4);
  it runs without the GIL.
- :func:`may_contain` tells whether every given key hash may be in a filter.

The pure-Python twin is ``chunkstore._tokens_py`` (same names, results and
exceptions).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from cs_common cimport as_bytes, cs_err, cs_tf_build, cs_tf_hash, cs_tf_may_contain, raw_error

import operator

__all__ = ["block_filter", "may_contain", "key_hash", "DEFAULT_BITS_PER_KEY", "DEFAULT_PREFIX_LEN",
           "MAX_K"]

DEFAULT_BITS_PER_KEY = 10
DEFAULT_PREFIX_LEN = 8
MAX_K = 16


def _check_params(bits_per_key, prefix_len):
    bits_per_key = operator.index(bits_per_key)
    prefix_len = operator.index(prefix_len)
    if not 1 <= bits_per_key <= 64:
        raise ValueError(f"block_filter: bits_per_key must be 1..64, got {bits_per_key}")
    if not 1 <= prefix_len <= 8:
        raise ValueError(f"block_filter: prefix_len must be 1..8, got {prefix_len}")
    return bits_per_key, prefix_len


def block_filter(raw, bits_per_key=DEFAULT_BITS_PER_KEY, prefix_len=DEFAULT_PREFIX_LEN):
    """The token filter of a raw block (FORMAT.md section 2) as bytes: ``k``, then the bits.

    Raises ``CorruptionError`` for a malformed raw block, ``ValueError`` for
    parameters out of range.
    """
    cdef uint64_t bpk, plen
    bpk, plen = _check_params(bits_per_key, prefix_len)
    cdef bytes buf = as_bytes(raw)
    cdef const uint8_t *base = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef size_t size = <size_t>PyBytes_GET_SIZE(buf)
    cdef cs_err e
    cdef uint8_t *flt = NULL
    cdef size_t flen = 0
    cdef int rc
    with nogil:
        rc = cs_tf_build(base, size, bpk, <size_t>plen, &flt, &flen, &e)
    if rc == -1:
        raise raw_error(&e)
    if rc:
        raise MemoryError()
    try:
        return PyBytes_FromStringAndSize(<const char *>flt, <Py_ssize_t>flen)
    finally:
        free(flt)


def may_contain(filter, hashes):
    """True when every hash in ``hashes`` (u64 key hashes) may be in ``filter``.

    An empty ``filter`` (a block without one) may contain anything.  Raises
    ``ValueError`` for a filter whose ``k`` byte is not 1..16 or that has no
    bits, ``TypeError``/``ValueError`` for hashes that are not u64 integers.
    """
    cdef const uint8_t[::1] f = filter
    cdef size_t n = f.shape[0], nh, t
    if n == 0:
        return True
    if n < 2 or not 1 <= f[0] <= 16:
        raise ValueError("may_contain: malformed token filter")
    hs = [operator.index(h) for h in hashes]
    nh = len(hs)
    cdef uint64_t stack[8]
    cdef uint64_t *buf = stack
    if nh > 8:
        buf = <uint64_t *>malloc(nh * sizeof(uint64_t))
        if buf == NULL:
            raise MemoryError()
    try:
        for t in range(nh):
            h = hs[t]
            if not 0 <= h <= 0xFFFFFFFFFFFFFFFF:
                raise ValueError(f"may_contain: hash {h} is not a u64")
            buf[t] = <uint64_t>h
        return bool(cs_tf_may_contain(&f[0], n, buf, nh))
    finally:
        if buf != stack:
            free(buf)


def key_hash(key):
    """The token hash of one key (bytes, already lowercased): FORMAT.md section 4."""
    cdef bytes buf = as_bytes(key)
    cdef size_t n = <size_t>PyBytes_GET_SIZE(buf)
    cdef uint8_t tmp[64]
    cdef uint8_t *p
    if n + 8 <= 64:
        memset(tmp, 0, 64)
        if n:
            memcpy(tmp, PyBytes_AS_STRING(buf), n)
        return cs_tf_hash(tmp, n)
    padded = buf + bytes(8)
    return cs_tf_hash(<const uint8_t *>PyBytes_AS_STRING(padded), n)
