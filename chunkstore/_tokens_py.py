"""Per-block token filters in pure Python: the twin of ``chunkstore._tokens``.

Same names, signatures, results and exceptions as the compiled module
(``src_c/_tokens.pyx``, rule in ``src_c/cs_tokens.h``).
"""

from __future__ import annotations

import operator
import re

from chunkstore._block_py import _as_bytes, _RawColumns

__all__ = ["block_filter", "may_contain", "key_hash", "DEFAULT_BITS_PER_KEY", "DEFAULT_PREFIX_LEN",
           "MAX_K"]

DEFAULT_BITS_PER_KEY = 10
DEFAULT_PREFIX_LEN = 8
MAX_K = 16

_TOKEN = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def key_hash(key) -> int:
    """The token hash of one key (bytes, already lowercased): FORMAT.md section 4."""
    b = _as_bytes(key)
    n = len(b)
    h = (n * 0x9E3779B97F4A7C15) & _MASK64
    full = n - n % 8
    for i in range(0, full, 8):
        h = ((h ^ int.from_bytes(b[i:i + 8], "little")) * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
    if full < n:
        h = ((h ^ int.from_bytes(b[full:], "little")) * 0x94D049BB133111EB) & _MASK64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    h ^= h >> 33
    return h


def _check_params(bits_per_key, prefix_len) -> tuple[int, int]:
    bits_per_key = operator.index(bits_per_key)
    prefix_len = operator.index(prefix_len)
    if not 1 <= bits_per_key <= 64:
        raise ValueError(f"block_filter: bits_per_key must be 1..64, got {bits_per_key}")
    if not 1 <= prefix_len <= 8:
        raise ValueError(f"block_filter: prefix_len must be 1..8, got {prefix_len}")
    return bits_per_key, prefix_len


def _size(n: int, bits_per_key: int, raw_len: int) -> int:
    nbytes = min(max((n * bits_per_key + 7) // 8, 8), raw_len // 4 + 8)
    return nbytes + 1


def _k(m: int, n: int) -> int:
    if n == 0:
        return 1
    return min(max((m * 693 + n * 500) // (n * 1000), 1), MAX_K)


def block_filter(raw, bits_per_key=DEFAULT_BITS_PER_KEY, prefix_len=DEFAULT_PREFIX_LEN) -> bytes:
    """The token filter of a raw block (FORMAT.md section 2) as bytes: ``k``, then the bits.

    Raises ``CorruptionError`` for a malformed raw block, ``ValueError`` for
    parameters out of range.
    """
    bits_per_key, prefix_len = _check_params(bits_per_key, prefix_len)
    buf = _as_bytes(raw)
    cols = _RawColumns(buf)
    starts = cols.line_starts
    joined = b"\n".join(buf[starts[i]:starts[i + 1]] for i in range(cols.n)).lower()
    keys = set()
    for t in set(_TOKEN.findall(joined)):
        if len(t) <= prefix_len:
            keys.add(t)
        else:
            keys.add(t[:prefix_len])
            keys.add(t[-prefix_len:])
    hashes = {key_hash(k) for k in keys}
    size = _size(len(hashes), bits_per_key, len(buf))
    m = (size - 1) * 8
    k = _k(m, len(hashes))
    bits = bytearray(size - 1)
    for h in hashes:
        x, h2 = h & _MASK32, (h >> 32) | 1
        for _ in range(k):
            j = (x * m) >> 32
            bits[j >> 3] |= 1 << (j & 7)
            x = (x + h2) & _MASK32
    return bytes((k,)) + bytes(bits)


def may_contain(filter, hashes) -> bool:
    """True when every hash in ``hashes`` (u64 key hashes) may be in ``filter``.

    An empty ``filter`` (a block without one) may contain anything.  Raises
    ``ValueError`` for a filter whose ``k`` byte is not 1..16 or that has no
    bits, ``TypeError``/``ValueError`` for hashes that are not u64 integers.
    """
    f = memoryview(filter).cast("B") if not isinstance(filter, bytes) else filter
    n = len(f)
    if n == 0:
        return True
    if n < 2 or not 1 <= f[0] <= MAX_K:
        raise ValueError("may_contain: malformed token filter")
    hs = [operator.index(h) for h in hashes]
    for h in hs:
        if not 0 <= h <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"may_contain: hash {h} is not a u64")
    k, m = f[0], (n - 1) * 8
    for h in hs:
        x, h2 = h & _MASK32, (h >> 32) | 1
        for _ in range(k):
            j = (x * m) >> 32
            if not f[1 + (j >> 3)] & (1 << (j & 7)):
                return False
            x = (x + h2) & _MASK32
    return True
