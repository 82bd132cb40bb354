"""Round trips through chunks and segment files (docs/FORMAT.md section 4).

Random streams of entries are cut into blocks of random sizes and codecs,
framed into chunks, appended to one segment, and read back every way the
reader offers: by the index's (offset, length), by walking, by verifying.
Everything read must equal what was written.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkstore._kernels import block, xxh64
from chunkstore.chunkfile import (
    ChunkMeta,
    SegmentReader,
    SegmentWriter,
    decode_chunk_meta,
    describe_segment,
    encode_chunk,
)
from chunkstore.chunkfile_format import MAX_BLOCKS_PER_CHUNK

CODECS = [0, 1, 2]  # none, lz4, lz4-hc

timestamps = st.integers(min_value=-(2**63), max_value=2**63 - 1)
lines = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"GET /index.html 200", b"level=error msg=boom", b"x" * 300]),
)
metadata = st.one_of(
    st.none(),
    st.lists(
        st.tuples(st.text(max_size=8).map(str.encode), st.text(max_size=12).map(str.encode)),
        min_size=1, max_size=3,
    ).map(tuple),
)
entries = st.tuples(timestamps, lines, metadata)
label_sets = st.dictionaries(
    st.sampled_from(["app", "env", "host", "job"]), st.text(min_size=1, max_size=10),
    min_size=1, max_size=3,
)


def canonical(labels: dict[str, str]) -> bytes:
    return b"".join(
        k.encode() + b"\xff" + v.encode() + b"\xff" for k, v in sorted(labels.items())
    )


def stored_block(block_entries, codec):
    """Sort entries by ts (stably, as the head does) and build a stored-block tuple."""
    block_entries = sorted(block_entries, key=lambda e: e[0])
    ts = [e[0] for e in block_entries]
    text = [e[1] for e in block_entries]
    md = [e[2] for e in block_entries]
    raw = block.encode_entries(ts, text, md)
    stored = block.compress_block(raw, codec)
    item = (stored, len(ts), min(ts), max(ts), sum(map(len, text)))
    return item, raw, block_entries


@st.composite
def chunks(draw):
    """One chunk's worth: labels and 1..6 blocks of 1..20 entries, random codecs."""
    labels = canonical(draw(label_sets))
    blocks = draw(st.lists(
        st.tuples(st.lists(entries, min_size=1, max_size=20), st.sampled_from(CODECS)),
        min_size=1, max_size=6,
    ))
    return labels, blocks


def build_chunk(labels, blocks):
    items, raws, expected = [], [], []
    for block_entries, codec in blocks:
        item, raw, ordered = stored_block(block_entries, codec)
        items.append(item)
        raws.append(raw)
        expected.append(ordered)
    chunk, meta = encode_chunk(xxh64(labels), labels, items)
    return chunk, meta, raws, expected


@given(st.lists(chunks(), min_size=1, max_size=5))
def test_segment_round_trip(tmp_path_factory, chunk_specs):
    path = str(tmp_path_factory.mktemp("seg") / "rt.seg")
    written = []
    with SegmentWriter(path) as writer:
        for labels, blocks in chunk_specs:
            chunk, meta, raws, expected = build_chunk(labels, blocks)
            meta._check()
            assert len(chunk) == meta.chunk_len
            assert decode_chunk_meta(chunk) == meta
            assert decode_chunk_meta(chunk, 1000, "x.seg") == meta.with_location("x.seg", 1000)
            offset = writer.append(chunk)
            written.append((offset, meta, raws, expected))
        writer.sync()
        assert writer.size == os.path.getsize(path)

    with SegmentReader(path) as reader:
        for offset, meta, raws, expected in written:
            got = reader.read_chunk_meta(offset, meta.chunk_len)
            got._check()
            assert got == meta.with_location(path, offset)
            for bmeta, raw, exp in zip(got.blocks, raws, expected, strict=True):
                raw_read = reader.read_raw_block(offset, bmeta)
                assert raw_read == raw
                ts, text, md = block.decode_entries(raw_read)
                want = [(t, line, m or None) for t, line, m in exp]
                assert list(zip(ts, text, md, strict=True)) == want
                stored = reader.read_block(offset, bmeta)
                assert len(stored) == bmeta.stored_len
                assert block.decompress_block(stored) == raw
        walked = list(reader.walk())
        assert walked == [m.with_location(path, o) for o, m, _, _ in written]
        assert reader.verify(deep=True) == []

    summary = describe_segment(path)
    assert summary["errors"] == []
    assert summary["totals"]["entries"] == sum(m.n_entries for _, m, _, _ in written)
    assert summary["totals"]["raw_bytes"] == sum(m.raw_bytes for _, m, _, _ in written)
    assert [c["offset"] for c in summary["chunks"]] == [o for o, _, _, _ in written]
    assert all(b["checksum_ok"] for c in summary["chunks"] for b in c["blocks"])


def test_chunk_meta_aggregates_blocks():
    labels = canonical({"app": "a"})
    chunk, meta, _, _ = build_chunk(labels, [
        ([(5, b"a", None), (9, b"bcd", None)], 0),
        ([(-3, b"", None)], 1),
        ([(100, b"xyz", ((b"k", b"v"),))], 2),
    ])
    assert (meta.min_ts, meta.max_ts, meta.n_entries, meta.text_bytes) == (-3, 100, 4, 7)
    assert meta.raw_bytes == sum(b.raw_len for b in meta.blocks)
    assert meta.stored_bytes == sum(b.stored_len for b in meta.blocks)
    assert meta.blocks[0].offset == meta.header_len == 32 + len(labels)
    assert meta.index_offset + meta.index_len + 20 == meta.chunk_len == len(chunk)
    assert [b.codec for b in meta.blocks] == [0, 1, 2]
    assert isinstance(meta, ChunkMeta) and meta.segment is None and meta.offset is None


def test_decode_accepts_a_buffer_that_continues_past_the_chunk():
    labels = canonical({"app": "a"})
    chunk, meta, _, _ = build_chunk(labels, [([(1, b"x", None)], 1)])
    assert decode_chunk_meta(bytearray(chunk + b"trailing garbage")) == meta
    assert decode_chunk_meta(memoryview(chunk)) == meta


def test_many_blocks_index_larger_than_one_read(tmp_path):
    """An index longer than the reader's first 4 KiB tail read needs a second read."""
    labels = canonical({"app": "many"})
    stored, _, _ = stored_block([(1, b"l", None)], 0)
    items = [stored] * 300  # 300 x 41 index bytes > 4096
    chunk, meta = encode_chunk(xxh64(labels), labels, items)
    path = str(tmp_path / "many.seg")
    with SegmentWriter(path) as w:
        off = w.append(chunk)
    with SegmentReader(path) as r:
        assert r.read_chunk_meta(off, len(chunk)) == meta.with_location(path, off)
        assert [x for x in r.walk()] == [meta.with_location(path, off)]


def test_long_labels_need_a_second_header_read(tmp_path):
    labels = canonical({"app": "v" * 2000})
    stored, _, _ = stored_block([(1, b"l", None)], 1)
    chunk, meta = encode_chunk(xxh64(labels), labels, [stored])
    path = str(tmp_path / "labels.seg")
    with SegmentWriter(path) as w:
        off = w.append(chunk)
    with SegmentReader(path) as r:
        assert r.read_chunk_meta(off, len(chunk)).labels == labels
        assert list(r.walk())[0].labels == labels


@pytest.mark.parametrize("bad, message", [
    (lambda fp, lb, items: (fp ^ 1, lb, items), "XXH64"),
    (lambda fp, lb, items: (fp, lb, []), "blocks"),
    (lambda fp, lb, items: (fp, lb, [(items[0][0], 0, 1, 1, 0)]), "entries"),
    (lambda fp, lb, items: (fp, lb, [(items[0][0], 1, 2, 1, 0)]), "time range"),
    (lambda fp, lb, items: (fp, lb, [(items[0][0], 1, 1, 1, 10**6)]), "text_len"),
    (lambda fp, lb, items: (fp, lb, [(items[0][0][:-1], 1, 1, 1, 1)]), "payload"),
    (lambda fp, lb, items: (fp, lb, [(b"\x09" + items[0][0][1:], 1, 1, 1, 1)]), "stored block"),
])
def test_encode_chunk_rejects_what_a_reader_would_reject(bad, message):
    labels = canonical({"app": "a"})
    item, _, _ = stored_block([(1, b"x", None)], 0)
    args = bad(xxh64(labels), labels, [item])
    with pytest.raises(ValueError, match=message):
        encode_chunk(*args)


def test_encode_chunk_block_limit():
    labels = canonical({"app": "a"})
    item, _, _ = stored_block([(1, b"x", None)], 0)
    with pytest.raises(ValueError, match="blocks"):
        encode_chunk(xxh64(labels), labels, [item] * (MAX_BLOCKS_PER_CHUNK + 1))
