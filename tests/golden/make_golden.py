"""Write ``tests/golden/v2-segment.seg``: a small segment from fixed entries.

Run once with the current code and commit the file; ``tests/test_format_golden.py``
then checks it byte by byte against docs/FORMAT.md and checks that the current
code still writes exactly these bytes.  Only rerun this script on a deliberate
format change (and bump the format version)::

    PYTHONPATH=. python tests/golden/make_golden.py

``v1-segment.seg`` holds the same entries in chunk version 1 (no token
filters), written by this script as it was at commit c4278fb; it stays so
that every version the readers accept has a golden file.  Version 2 adds a
token filter per block (FORMAT.md section 4).

The segment holds two chunks: ``{app="golden", env="test"}`` with an
uncompressed block (entries with structured metadata) and an lz4 block, and
``{app="other"}`` with one lz4-hc block (negative and equal timestamps, a
line holding a newline, non-UTF-8 bytes and an empty line).
"""

from __future__ import annotations

import os
import sys

CODEC_NONE, CODEC_LZ4, CODEC_LZ4HC = 0, 1, 2
T0 = 1_700_000_000_000_000_000

LABELS_A = b"app\xffgolden\xffenv\xfftest\xff"
LABELS_B = b"app\xffother\xff"

#: (canonical labels, [(codec, [(ts_ns, line, metadata or None), ...]), ...])
CHUNKS = [
    (
        LABELS_A,
        [
            (
                CODEC_NONE,
                [
                    (T0, b"level=info msg=started", None),
                    (T0 + 1_000, b"level=warn msg=slow", ((b"trace_id", b"4bf92f35"),)),
                    (T0 + 2_000, b"level=info msg=done", ((b"a", b""), (b"user", b"\xc3\xa9"))),
                ],
            ),
            (
                CODEC_LZ4,
                [
                    (T0 + 3_000 + i * 250, b"GET /api/v1/query?limit=100 200 %d ms" % (i % 3), None)
                    for i in range(8)
                ],
            ),
        ],
    ),
    (
        LABELS_B,
        [
            (
                CODEC_LZ4HC,
                [
                    (-5, b"before the epoch", None),
                    (-5, b"same timestamp, kept in order", None),
                    (0, b"", None),
                    (7, b"two\nlines and \xff\xfe bytes", None),
                    (7, b"repeat repeat repeat repeat repeat repeat repeat", None),
                ],
            ),
        ],
    ),
]

GOLDEN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "v2-segment.seg")
V1_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "v1-segment.seg")


def write_segment(path: str) -> None:
    """Write the golden segment to ``path`` with the current code."""
    from chunkstore._kernels import block, xxh64
    from chunkstore.chunkfile import SegmentWriter, encode_chunk
    from chunkstore.tokenfilter import block_filter

    with SegmentWriter(path) as writer:
        for labels, blocks in CHUNKS:
            stored = []
            for codec, entries in blocks:
                ts = [e[0] for e in entries]
                lines = [e[1] for e in entries]
                meta = [e[2] for e in entries]
                raw = block.encode_entries(ts, lines, meta)
                stored.append(
                    (block.compress_block(raw, codec), len(entries), min(ts), max(ts),
                     sum(map(len, lines)), block_filter(raw))
                )
            chunk, _ = encode_chunk(xxh64(labels), labels, stored)
            writer.append(chunk)
        writer.sync()


def main() -> int:
    if os.path.exists(GOLDEN_PATH):
        os.unlink(GOLDEN_PATH)
    write_segment(GOLDEN_PATH)
    print(f"wrote {GOLDEN_PATH} ({os.path.getsize(GOLDEN_PATH)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
