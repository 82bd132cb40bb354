"""The golden segments ``tests/golden/v1-segment.seg`` and ``v2-segment.seg`` against docs/FORMAT.md.

The files were written once by ``tests/golden/make_golden.py`` (version 1 by
the script as it was before token filters; the current code must still read
it).  These tests
parse it with ``struct``, a bitwise CRC-32C, ``lz4.block`` and a small
section-2 decoder written here, independently of ``chunkstore.chunkfile``,
so a change in the code that silently changes the format fails here; and
they check that the current code still writes exactly the version 2 bytes.
The token filters of version 2 are rebuilt here from the rule in FORMAT.md
(tokenizer, key hash, bit positions) and compared byte for byte.
"""

from __future__ import annotations

import pathlib
import struct

import lz4.block
import pytest
from file_modules import load

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "golden"
GOLDEN = GOLDEN_DIR / "v2-segment.seg"
GOLDEN_V1 = GOLDEN_DIR / "v1-segment.seg"
GOLDENS = [pytest.param(GOLDEN_V1, id="v1"), pytest.param(GOLDEN, id="v2")]


make_golden = load("make_golden", GOLDEN_DIR / "make_golden.py")


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


# -- token filters, from the text of FORMAT.md section 4 ---------------------------

M64 = 2**64 - 1


def token_key_hash(key: bytes) -> int:
    h = (len(key) * 0x9E3779B97F4A7C15) & M64
    i = 0
    while i + 8 <= len(key):
        h = ((h ^ int.from_bytes(key[i:i + 8], "little")) * 0xBF58476D1CE4E5B9) & M64
        h ^= h >> 31
        i += 8
    if i < len(key):
        h = ((h ^ int.from_bytes(key[i:], "little")) * 0x94D049BB133111EB) & M64
    for mul in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h ^= h >> 33
        h = (h * mul) & M64
    return h ^ (h >> 33)


def reference_filter(lines: list[bytes], raw_len: int) -> bytes:
    keys = set()
    for line in lines:
        token = b""
        for byte in line.lower() + b" ":
            if byte >= 0x80 or chr(byte).isalnum() and byte < 0x80 or byte == ord("_"):
                token += bytes([byte])
                continue
            if token:
                if len(token) > 8:
                    keys.update((token[:8], token[-8:]))
                else:
                    keys.add(token)
            token = b""
    hashes = {token_key_hash(k) for k in keys}
    n = len(hashes)
    nbytes = min(max((n * 10 + 7) // 8, 8), raw_len // 4 + 8)
    m = nbytes * 8
    k = min(max((m * 693 + n * 500) // (n * 1000), 1), 16) if n else 1
    bits = bytearray(nbytes)
    for h in hashes:
        x, step = h & 0xFFFFFFFF, (h >> 32) | 1
        for _ in range(k):
            j = (x * m) >> 32
            bits[j // 8] |= 1 << (j % 8)
            x = (x + step) & 0xFFFFFFFF
    return bytes([k]) + bytes(bits)


def test_reference_key_hash_fixed_values():
    assert token_key_hash(b"") == 0
    assert token_key_hash(b"timeout") == 0x2AE39EC08370452D


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
        assert version in (1, 2)
        assert (magic, flags, reserved) == (b"CSCK", 0, 0)
        entry_len = 41 if version == 1 else 45
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
        assert index_len == 8 + entry_len * n_blocks
        (icrc,) = struct.unpack_from("<I", chunk, index_offset + index_len - 4)
        assert icrc == crc32c_bitwise(chunk[index_offset : index_offset + index_len - 4])

        blocks = []
        expect_offset = header_len
        filter_lens = []
        for i in range(n_blocks):
            at = index_offset + 4 + entry_len * i
            (off, stored_len, raw_len, n_entries, min_ts, max_ts, codec, text_len) = (
                struct.unpack_from("<QIIIqqBI", chunk, at)
            )
            if version == 2:
                filter_lens.append(struct.unpack_from("<I", chunk, at + 41)[0])
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
            blocks.append({"codec": codec, "entries": entries, "raw_len": raw_len})
            expect_offset += stored_len
        if version == 1:
            assert expect_offset == index_offset, "the last block ends where the index starts"
        else:
            # the filter section: each block's filter in block order, then a crc
            section = chunk[expect_offset : index_offset - 4]
            assert len(section) == sum(filter_lens)
            (fcrc,) = struct.unpack_from("<I", chunk, index_offset - 4)
            assert fcrc == crc32c_bitwise(section)
            p = 0
            for b, flen in zip(blocks, filter_lens, strict=True):
                b["filter"] = section[p : p + flen]
                p += flen
                assert b["filter"] == reference_filter([e[1] for e in b["entries"]],
                                                       b["raw_len"])

        c.update(offset=pos, length=chunk_len, fingerprint=fingerprint, labels=labels,
                 blocks=blocks)
        chunks.append(c)
        pos += chunk_len
    assert pos == len(data)
    return chunks


@pytest.mark.parametrize("golden_path", GOLDENS)
def test_golden_file_matches_the_format_and_the_fixed_entries(golden_path):
    from chunkstore._kernels import xxh64

    chunks = parse_golden(golden_path.read_bytes())
    assert len(chunks) == len(make_golden.CHUNKS)
    for got, (labels, blocks) in zip(chunks, make_golden.CHUNKS, strict=True):
        assert got["labels"] == labels
        assert got["fingerprint"] == xxh64(labels)
        assert [b["codec"] for b in got["blocks"]] == [codec for codec, _ in blocks]
        for gb, (_, entries) in zip(got["blocks"], blocks, strict=True):
            assert gb["entries"] == [(ts, line, meta) for ts, line, meta in entries]


def test_golden_fixed_values():
    """A few values pinned literally, so the reference parser cannot drift either."""
    data = GOLDEN_V1.read_bytes()
    assert data[:12] == b"CSSG\x01" + bytes(7)
    assert struct.unpack_from("<I", data, 12)[0] == 0x3927EAEF
    assert len(data) == 621
    # the first chunk header starts at 16: magic, version 1, flags 0, reserved 0
    assert data[16:24] == b"CSCK\x01\x00\x00\x00"
    assert data[-8:-4] == b"CSCE"
    # the first chunk: 383 bytes, fingerprint of {app="golden", env="test"}, 20 label bytes
    assert struct.unpack_from("<QQI", data, 24) == (383, 0x92153F53101988B4, 20)


def test_golden_v2_fixed_values():
    data = GOLDEN.read_bytes()
    assert len(data) == 686
    assert data[16:24] == b"CSCK\x02\x00\x00\x00"
    chunks = parse_golden(data)
    assert [len(b["filter"]) for c in chunks for b in c["blocks"]] == [10, 15, 20]


@pytest.mark.parametrize("golden_path", GOLDENS)
def test_current_code_reads_the_golden_segment(golden_path):
    from chunkstore._kernels import block
    from chunkstore.chunkfile import SegmentReader

    reference = parse_golden(golden_path.read_bytes())
    with SegmentReader(golden_path) as reader:
        metas = list(reader.walk())
        assert len(metas) == len(reference)
        for meta, ref in zip(metas, reference, strict=True):
            assert not isinstance(meta, Exception), meta
            assert (meta.offset, meta.chunk_len, meta.labels, meta.fingerprint) == (
                ref["offset"], ref["length"], ref["labels"], ref["fingerprint"])
            again = reader.read_chunk_meta(meta.offset, meta.chunk_len)
            assert again == meta
            filters = reader.read_filters(meta)
            for bmeta, bref, flt in zip(meta.blocks, ref["blocks"], filters, strict=True):
                ts, lines, md = block.decode_entries(reader.read_raw_block(meta.offset, bmeta))
                assert list(zip(ts, lines, md, strict=True)) == bref["entries"]
                assert bytes(flt) == bref.get("filter", b"")
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
