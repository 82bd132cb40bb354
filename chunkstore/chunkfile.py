"""Chunks and segment files (``docs/FORMAT.md`` section 4): the public names.

The implementation is split by path, like Prometheus' ``tsdb/chunks``:

- :mod:`chunkstore.chunkfile_format` -- :class:`BlockMeta`, :class:`ChunkMeta`,
  :func:`encode_chunk` and :func:`decode_chunk_meta`: bytes in, bytes out,
  no I/O;
- :mod:`chunkstore.chunkfile_write` -- :class:`SegmentWriter`: creating a
  segment, appending chunks, fsync, reopening after a crash;
- :mod:`chunkstore.chunkfile_read` -- :class:`SegmentReader` (chunk metas,
  blocks, ``walk``, ``verify``) and :func:`describe_segment` for
  ``chunkstore inspect``.
"""

from chunkstore.chunkfile_format import (
    CODEC_NAMES,
    MAX_BLOCKS_PER_CHUNK,
    MAX_LABELS_LEN,
    MAX_RAW_BLOCK_LEN,
    SEGMENT_HEADER_LEN,
    BlockMeta,
    ChunkMeta,
    decode_chunk_meta,
    encode_chunk,
)
from chunkstore.chunkfile_read import SegmentReader, describe_segment
from chunkstore.chunkfile_write import SegmentWriter

__all__ = [
    "BlockMeta",
    "ChunkMeta",
    "encode_chunk",
    "decode_chunk_meta",
    "SegmentWriter",
    "SegmentReader",
    "describe_segment",
    "CODEC_NAMES",
    "SEGMENT_HEADER_LEN",
    "MAX_BLOCKS_PER_CHUNK",
    "MAX_LABELS_LEN",
    "MAX_RAW_BLOCK_LEN",
]
