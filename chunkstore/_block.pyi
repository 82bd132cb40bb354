"""Type stub for ``chunkstore._block`` (compiled from ``src_c/_block.pyx``).

The pure-Python twin ``chunkstore._block_py`` has the same names, results and
exceptions.  Layouts: docs/FORMAT.md sections 2 (raw block) and 3 (stored block).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from typing_extensions import Buffer

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

Metadata = tuple[tuple[bytes, bytes], ...]
PushEntry = (
    tuple[int, str | bytes] | tuple[int, str | bytes, Mapping[str, str] | None] | list[object]
)

CODEC_NONE: Final[int]
CODEC_LZ4: Final[int]
CODEC_LZ4HC: Final[int]
CODEC_ZSTD: Final[int]
MAX_RAW_LEN: Final[int]
MAX_METADATA_PAIRS: Final[int]
STORED_OVERHEAD: Final[int]

def encode_entries(
    ts: Sequence[int],
    lines: Sequence[Buffer],
    metadata: Sequence[Sequence[tuple[Buffer, Buffer]] | None] | None = None,
) -> bytes:
    """The raw block of the entries, in the given order."""

def decode_entries(raw: Buffer) -> tuple[list[int], list[bytes], list[Metadata | None]]:
    """Decode and validate a raw block; ``CorruptionError`` with the offset on damage."""

def merge_raw_blocks(raws: Iterable[Buffer]) -> bytes:
    """Every entry of ``raws`` in one raw block, stably sorted by timestamp, none dropped."""

def compress_block(raw: Buffer, codec: int = 1, level: int = 0,
                   zstd_params: dict[str, int] | None = None) -> bytes:
    """Compress and frame a raw block as a stored block."""

NOGIL_LZ4: bool

def compress_and_filter(raws: Iterable[Buffer], codec: int = 1, bits_per_key: int = 0,
                        prefix_len: int = 8) -> list[tuple[bytes, bytes]]:
    """``(compress_block(raw, codec), block_filter(raw, bits_per_key, prefix_len))`` per raw
    block, in one GIL-free section for lz4; ``bits_per_key`` 0: no filters (b"")."""

def release_free_memory() -> bool:
    """Give the heap's free pages back to the OS (glibc's ``malloc_trim``); True if any."""

def decompress_block(stored: Buffer, max_raw_len: int = 67108864) -> bytes:
    """Verify one stored block and return its raw block (``CorruptionError`` on damage)."""

def read_block_header(stored: Buffer, max_raw_len: int = 67108864) -> tuple[int, int, int]:
    """``(codec, raw_len, payload_len)`` of a buffer that starts with a stored block."""

class BlockBuilder:
    """The in-memory head block of one stream (reusable C buffers)."""

    def __init__(self, *, text_capacity: int = 0, entry_capacity: int = 0) -> None: ...
    def append(
        self, ts: int, line: Buffer, metadata: Sequence[tuple[Buffer, Buffer]] | None = None
    ) -> bool:
        """Append one entry; False for an exact duplicate."""
    def extend(
        self, entries: Iterable[PushEntry], max_line_size: int, min_ts: int
    ) -> tuple[int, list[tuple[int, str]], bytes]:
        """Validate and append pushed entries: ``(n_accepted, rejects, wal_raw)``."""
    def extend_record(
        self, entries: Iterable[PushEntry], max_line_size: int, min_ts: int, lsn: int,
        stream_id: int,
    ) -> tuple[int, list[tuple[int, str]], bytes | None]:
        """``extend``, returning the framed WAL ENTRIES record (None: nothing accepted)."""
    def extend_raw(self, raw: Buffer) -> int:
        """Append the entries of a raw block (WAL replay); return how many were new."""
    @property
    def n_entries(self) -> int: ...
    @property
    def text_bytes(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def min_ts(self) -> int | None: ...
    @property
    def max_ts(self) -> int | None: ...
    @property
    def ordered(self) -> bool: ...
    def build(self) -> bytes:
        """The raw block of all entries sorted by timestamp (stable)."""
    def entries(self) -> tuple[list[int], list[bytes], list[Metadata | None]]: ...
    def reset(self) -> None: ...
    def memory_bytes(self) -> int: ...
    def __len__(self) -> int: ...
    def _check(self) -> None: ...
