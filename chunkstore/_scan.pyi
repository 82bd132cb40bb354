"""Type stub for ``chunkstore._scan`` (compiled from ``src_c/_scan.pyx``).

The pure-Python twin ``chunkstore._scan_py`` has the same names, results and
exceptions (except ``_set_search_level``, a test hook of the compiled module).
"""

from collections.abc import Sequence

from typing_extensions import Buffer

__all__ = ["Filter", "scan_raw", "scan_block", "scan_block_at", "count_raw"]

Metadata = tuple[tuple[bytes, bytes], ...]
Clause = tuple[Sequence[bytes], bool, bool]

class Filter:
    """An immutable conjunction of ``(needles, negate, case_insensitive)`` clauses."""

    def __init__(self, clauses: Sequence[Clause]) -> None: ...
    @property
    def clauses(self) -> tuple[tuple[tuple[bytes, ...], bool, bool], ...]: ...
    def matches(self, line: Buffer) -> bool: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def scan_raw(
    raw: Buffer, flt: Filter, start_ts: int, end_ts: int, limit: int = -1, reverse: bool = False
) -> list[tuple[int, bytes, Metadata | None]]:
    """Matching entries with ``start_ts <= ts < end_ts``, in block order or reversed."""

def scan_block(
    stored: Buffer,
    flt: Filter,
    start_ts: int,
    end_ts: int,
    limit: int = -1,
    reverse: bool = False,
    max_raw_len: int = 67108864,
) -> list[tuple[int, bytes, Metadata | None]]:
    """``scan_raw(decompress_block(stored, max_raw_len), ...)``."""

#: True when lz4 blocks are decompressed into a reused per-thread buffer
#: (python-lz4's LZ4_decompress_safe, found at import); the twin has False.
FAST_LZ4: bool

def scan_block_at(
    fd: int,
    offset: int,
    stored_len: int,
    codec: int,
    raw_len: int,
    flt: Filter,
    start_ts: int,
    end_ts: int,
    limit: int = -1,
    reverse: bool = False,
) -> list[tuple[int, bytes, Metadata | None]] | None:
    """Read, check and scan one lz4 block of a file without the GIL; None: use the checked path."""

def count_raw(
    raw: Buffer,
    flt: Filter,
    start_ts: int,
    end_ts: int,
    origin: int,
    width: int,
    counts: Buffer,
    byte_sums: Buffer,
) -> int:
    """Add matching entries into left-open, right-closed buckets; return how many."""

def _set_search_level(max_level: int) -> int:
    """Test hook: limit the search kernel (0 scalar, 1 SSE2, 2 AVX2)."""
