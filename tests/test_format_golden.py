"""The golden segment ``tests/golden/v1-segment.seg`` against docs/FORMAT.md.

The file was written once by ``tests/golden/make_golden.py``.  These tests
parse it with ``struct``, a bitwise CRC-32C, ``lz4.block`` and a small
section-2 decoder written here, independently of ``chunkstore.chunkfile``,
so a change in the code that silently changes the format fails here; and
they check that the current code still writes exactly the same bytes.
"""

from __future__ import annotations

import importlib.util
import pathlib
import struct

import lz4.block
import pytest

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "golden"
GOLDEN = GOLDEN_DIR / "v1-segment.seg"


def _load_make_golden():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN_DIR / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = _load_make_golden()


# -- independent reference implementations -------------------------------------


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C, one bit at a time: slow, obviously the definition."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_reference_crc_matches_the_check_value():
    assert crc32c_bitwise(b"123456789") == 0xE3069283


def _uvarint(buf: bytes, p: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[p]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7


def decode_raw_block(raw: bytes) -> list[tuple[int, bytes, tuple | None]]:
    """Section 2, decoded from the text of FORMAT.md."""
    n, p = _uvarint(raw, 0)
    text_len, p = _uvarint(raw, p)
    meta_len, p = _uvarint(raw, p)
    ts, prev = [], 0
    for _ in range(n):
        z, p = _uvarint(raw, p)
        delta = (z >> 1) ^ -(z & 1)
        prev = (prev + delta) & (2**64 - 1)
        ts.append(prev - 2**64 if prev >= 2**63 else prev)
    lens = []
    for _ in range(n):
        length, p = _uvarint(raw, p)
        lens.append(length)
    metas: list[tuple | None] = [None] * n
    if meta_len:
        end = p + meta_len
        for i in range(n):
            pairs, p = _uvarint(raw, p)
            items = []
            for _ in range(pairs):
                nl, p = _uvarint(raw, p)
                name = raw[p : p + nl]
                p += nl
                vl, p = _uvarint(raw, p)
                items.append((name, raw[p : p + vl]))
                p += vl
            metas[i] = tuple(items) if items else None
        assert p == end
    assert sum(lens) == text_len
    assert len(raw) - p == text_len, "text must end exactly at the end of the raw block"
    lines = []
    for length in lens:
        lines.append(raw[p : p + length])
        p += length
    return list(zip(ts, lines, metas, strict=True))


# -- the byte-by-byte check -------------------------------------------------------


def parse_golden(data: bytes) -> list[dict]:
    """Walk the segment per FORMAT.md section 4, asserting every field."""
    # segment header
    assert data[0:4] == b"CSSG"
    assert data[4] == 1
    assert data[5:12] == bytes(7)
    assert struct.unpack_from("<I", data, 12)[0] == crc32c_bitwise(data[:12])
    chunks = []
    pos = 16
    while pos < len(data):
        c = {}
        magic, version, flags, reserved, chunk_len, fingerprint, labels_len = struct.unpack_from(
            "<4sBBHQQI", data, pos
        )
        assert (magic, version, flags, reserved) == (b"CSCK", 1, 0, 0)
        labels = data[pos + 28 : pos + 28 + labels_len]
        header_len = 32 + labels_len
        (hcrc,) = struct.unpack_from("<I", data, pos + 28 + labels_len)
        assert hcrc == crc32c_bitwise(data[pos : pos + 28 + labels_len])
        chunk = data[pos : pos + chunk_len]
        assert len(chunk) == chunk_len

        # trailer: the last 20 bytes
        index_offset, index_len, tmagic, tcrc = struct.unpack_from("<QI4sI", chunk, chunk_len - 20)
        assert tmagic == b"CSCE"
        assert tcrc == crc32c_bitwise(chunk[chunk_len - 20 : chunk_len - 4])
        assert index_offset + index_len == chunk_len - 20

        # index
        (n_blocks,) = struct.unpack_from("<I", chunk, index_offset)
        assert index_len == 8 + 41 * n_blocks
        (icrc,) = struct.unpack_from("<I", chunk, index_offset + index_len - 4)
        assert icrc == crc32c_bitwise(chunk[index_offset : index_offset + index_len - 4])

        blocks = []
        expect_offset = header_len
        for i in range(n_blocks):
            (off, stored_len, raw_len, n_entries, min_ts, max_ts, codec, text_len) = (
                struct.unpack_from("<QIIIqqBI", chunk, index_offset + 4 + 41 * i)
            )
            assert off == expect_offset, "blocks are back to back after the header"
            stored = chunk[off : off + stored_len]
            s_codec, s_raw_len, payload_len = struct.unpack_from("<BII", stored, 0)
            assert (s_codec, s_raw_len) == (codec, raw_len)
            assert stored_len == 13 + payload_len
            assert struct.unpack_from("<I", stored, stored_len - 4)[0] == crc32c_bitwise(
                stored[:-4]
            )
            payload = stored[9 : 9 + payload_len]
            if codec == 0:
                raw = payload
            else:
                assert codec in (1, 2)
                raw = lz4.block.decompress(payload, uncompressed_size=raw_len)
            assert len(raw) == raw_len
            entries = decode_raw_block(raw)
            assert n_entries == len(entries)
            assert min_ts == min(e[0] for e in entries)
            assert max_ts == max(e[0] for e in entries)
            assert text_len == sum(len(e[1]) for e in entries)
            blocks.append({"codec": codec, "entries": entries})
            expect_offset += stored_len
        assert expect_offset == index_offset, "the last block ends where the index starts"

        c.update(offset=pos, length=chunk_len, fingerprint=fingerprint, labels=labels,
                 blocks=blocks)
        chunks.append(c)
        pos += chunk_len
    assert pos == len(data)
    return chunks


def test_golden_file_matches_the_format_and_the_fixed_entries():
    from chunkstore._kernels import xxh64

    chunks = parse_golden(GOLDEN.read_bytes())
    assert len(chunks) == len(make_golden.CHUNKS)
    for got, (labels, blocks) in zip(chunks, make_golden.CHUNKS, strict=True):
        assert got["labels"] == labels
        assert got["fingerprint"] == xxh64(labels)
        assert [b["codec"] for b in got["blocks"]] == [codec for codec, _ in blocks]
        for gb, (_, entries) in zip(got["blocks"], blocks, strict=True):
            assert gb["entries"] == [(ts, line, meta) for ts, line, meta in entries]


def test_golden_fixed_values():
    """A few values pinned literally, so the reference parser cannot drift either."""
    data = GOLDEN.read_bytes()
    assert data[:12] == b"CSSG\x01" + bytes(7)
    assert struct.unpack_from("<I", data, 12)[0] == 0x3927EAEF
    assert len(data) == 621
    # the first chunk header starts at 16: magic, version 1, flags 0, reserved 0
    assert data[16:24] == b"CSCK\x01\x00\x00\x00"
    assert data[-8:-4] == b"CSCE"
    # the first chunk: 383 bytes, fingerprint of {app="golden", env="test"}, 20 label bytes
    assert struct.unpack_from("<QQI", data, 24) == (383, 0x92153F53101988B4, 20)


def test_current_code_reads_the_golden_segment():
    from chunkstore._kernels import block
    from chunkstore.chunkfile import SegmentReader

    reference = parse_golden(GOLDEN.read_bytes())
    with SegmentReader(GOLDEN) as reader:
        metas = list(reader.walk())
        assert len(metas) == len(reference)
        for meta, ref in zip(metas, reference, strict=True):
            assert not isinstance(meta, Exception), meta
            assert (meta.offset, meta.chunk_len, meta.labels, meta.fingerprint) == (
                ref["offset"], ref["length"], ref["labels"], ref["fingerprint"])
            again = reader.read_chunk_meta(meta.offset, meta.chunk_len)
            assert again == meta
            for bmeta, bref in zip(meta.blocks, ref["blocks"], strict=True):
                ts, lines, md = block.decode_entries(reader.read_raw_block(meta.offset, bmeta))
                assert list(zip(ts, lines, md, strict=True)) == bref["entries"]
        assert reader.verify(deep=True) == []


def test_reencoding_the_fixed_entries_reproduces_the_golden_bytes(tmp_path):
    path = tmp_path / "again.seg"
    make_golden.write_segment(str(path))
    again = path.read_bytes()
    golden = GOLDEN.read_bytes()
    if again != golden:
        first = next((i for i, (a, b) in enumerate(zip(again, golden, strict=False)) if a != b),
                     min(len(again), len(golden)))
        pytest.fail(f"re-encoded segment differs from the golden file from byte {first} "
                    f"({len(again)} vs {len(golden)} bytes)")
