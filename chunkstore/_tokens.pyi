"""Per-block token filters (compiled ``chunkstore._tokens``; twin ``chunkstore._tokens_py``)."""

from collections.abc import Iterable

from typing_extensions import Buffer

DEFAULT_BITS_PER_KEY: int
DEFAULT_PREFIX_LEN: int
MAX_K: int

def block_filter(raw: Buffer, bits_per_key: int = 10, prefix_len: int = 8) -> bytes:
    """The token filter of a raw block: ``k``, then the bits (FORMAT.md section 4)."""

def may_contain(filter: Buffer, hashes: Iterable[int]) -> bool:
    """True when every key hash may be in ``filter`` (an empty filter may hold anything)."""

def key_hash(key: Buffer) -> int:
    """The token hash of one (lowercased) key."""
