"""Damaged segment files: every flip and every cut is caught where it happened.

A small segment (three chunks, five blocks, every codec but zstd) is built
here; then every single byte is flipped (two masks) and the file is cut at
every length.  For each variant, every read the store can make -- chunk metas
by (offset, length), raw and stored blocks, ``walk``, ``verify`` and the
writer's ``open_existing`` -- must return exactly the original data for what
the damage did not touch, or raise :class:`CorruptionError` naming the file
and an offset inside the damaged record.  Never wrong data, never another
exception.  The same variants, plus blocks whose crc was forged after the
damage (so the decompressor itself sees garbage), run again in a subprocess
so that a crash of the compiled decompressor fails the test instead of the
test run.  Finally, headers declaring huge lengths must fail fast, without
large reads or allocations.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
from dataclasses import dataclass
from functools import partial

import pytest

from chunkstore._kernels import block, crc32c, xxh64
from chunkstore.chunkfile import (
    BlockMeta,
    SegmentReader,
    SegmentWriter,
    decode_chunk_meta,
    encode_chunk,
)
from chunkstore.errors import CorruptionError
from chunkstore.tokenfilter import block_filter

# -- the small segment ----------------------------------------------------------


def _canonical(**labels: str) -> bytes:
    return b"".join(k.encode() + b"\xff" + v.encode() + b"\xff" for k, v in sorted(labels.items()))


SPEC = [
    (_canonical(app="api", env="prod"), [
        (1, [(100 + i, b"GET /a/b/c 200 in %d ms" % (i % 4), None) for i in range(6)]),
        (0, [(200, b"plain", ((b"trace", b"t1"),)), (201, b"text", None)]),
    ]),
    (_canonical(app="db"), [
        (2, [(-50 + i, b"query select * from t where id=%d" % i, None) for i in range(5)]),
    ]),
    (_canonical(app="web", host="h1"), [
        (1, [(1000, b"one", None), (1000, b"two two two two two two", None)]),
        (1, [(2000 + i, b"\xff\xfe binary \n %d" % i, None) for i in range(4)]),
    ]),
]


@dataclass(frozen=True)
class Record:
    start: int
    end: int
    kind: str  # "segment", "header", "block", "index", "trailer"
    chunk: int  # -1 for the segment header
    block: int = -1


@dataclass
class Golden:
    data: bytes
    metas: list  # ChunkMeta, located at "offset" (segment set per file later)
    raws: list  # raws[chunk][block]
    stored: list  # stored[chunk][block]
    records: list  # Record, ordered by start

    def record_at(self, pos: int) -> Record:
        for r in self.records:
            if r.start <= pos < r.end:
                return r
        raise AssertionError(pos)


def build_golden(tmpdir: str) -> Golden:
    path = os.path.join(tmpdir, "golden.seg")
    metas, raws, stored = [], [], []
    with SegmentWriter(path) as w:
        for labels, blocks in SPEC:
            items, chunk_raws = [], []
            for codec, entries in blocks:
                ts = [e[0] for e in entries]
                raw = block.encode_entries(ts, [e[1] for e in entries], [e[2] for e in entries])
                chunk_raws.append(raw)
                items.append((block.compress_block(raw, codec), len(ts), min(ts), max(ts),
                              sum(len(e[1]) for e in entries), block_filter(raw)))
            chunk, meta = encode_chunk(xxh64(labels), labels, items)
            offset = w.append(chunk)
            metas.append(meta.with_location(None, offset))
            raws.append(chunk_raws)
            stored.append([it[0] for it in items])
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    records = [Record(0, 16, "segment", -1)]
    for i, m in enumerate(metas):
        records.append(Record(m.offset, m.offset + m.header_len, "header", i))
        for j, b in enumerate(m.blocks):
            records.append(Record(m.offset + b.offset, m.offset + b.offset + b.stored_len,
                                  "block", i, j))
        records.append(Record(m.offset + m.filters_offset, m.offset + m.index_offset,
                              "filters", i))
        records.append(Record(m.offset + m.index_offset, m.offset + m.chunk_len - 20, "index", i))
        records.append(Record(m.offset + m.chunk_len - 20, m.offset + m.chunk_len, "trailer", i))
    return Golden(data, metas, raws, stored, records)


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    return build_golden(str(tmp_path_factory.mktemp("golden")))


def located(meta, path):
    return meta.with_location(path, meta.offset)


def chunk_end(meta) -> int:
    return meta.offset + meta.chunk_len


# -- checks shared by the in-process tests and the subprocess -------------------------


def assert_error(err, path, lo, hi):
    assert isinstance(err, CorruptionError), repr(err)
    assert err.path == path, (err.path, path)
    assert err.offset is not None and lo <= err.offset <= hi, (str(err), lo, hi)


def check_flip(g: Golden, path: str, pos: int, reopen: bool = True) -> None:
    """Every read of the flipped file at ``path`` (byte ``pos`` changed).

    ``reopen`` also reopens it for appending last (which cuts the file).
    """
    rec = g.record_at(pos)
    if rec.kind == "segment":
        with pytest.raises(CorruptionError) as info:
            SegmentReader(path)
        assert_error(info.value, path, 0, pos)
        if reopen:
            with pytest.raises(CorruptionError) as info:
                SegmentWriter.open_existing(path).close()
            assert_error(info.value, path, 0, pos)
        return
    with SegmentReader(path) as r:
        for i, m in enumerate(g.metas):
            if rec.chunk == i and rec.kind in ("header", "index", "trailer"):
                with pytest.raises(CorruptionError) as info:
                    r.read_chunk_meta(m.offset, m.chunk_len)
                assert_error(info.value, path, rec.start, pos)
            else:
                assert r.read_chunk_meta(m.offset, m.chunk_len) == located(m, path)
            for j, b in enumerate(m.blocks):
                if rec.kind == "block" and (rec.chunk, rec.block) == (i, j):
                    for read in (r.read_raw_block, partial(r.read_block, verify=True)):
                        with pytest.raises(CorruptionError) as info:
                            read(m.offset, b)
                        assert_error(info.value, path, rec.start, pos)
                    # unverified stored bytes: the decoder's crc check catches them
                    try:
                        stored = r.read_block(m.offset, b)
                    except CorruptionError as err:
                        assert_error(err, path, rec.start, pos)
                    else:
                        with pytest.raises(CorruptionError):
                            block.decompress_block(stored)
                else:
                    assert r.read_raw_block(m.offset, b) == g.raws[i][j]
                    assert r.read_block(m.offset, b) == g.stored[i][j]
        for i, m in enumerate(g.metas):
            if rec.kind == "filters" and rec.chunk == i:
                with pytest.raises(CorruptionError) as info:
                    r.read_filters(located(m, path))
                assert_error(info.value, path, rec.start, pos)
            else:
                assert len(r.read_filters(located(m, path))) == len(m.blocks)
        expected = []
        for i, m in enumerate(g.metas):
            if rec.chunk == i and rec.kind not in ("block", "filters"):
                expected.append("error")
                if rec.kind == "header":
                    break
            else:
                expected.append(located(m, path))
        walked = list(r.walk())
        assert len(walked) == len(expected)
        for got, exp in zip(walked, expected, strict=True):
            if exp == "error":
                assert_error(got, path, rec.start, pos)
            else:
                assert got == exp
        errors = r.verify(deep=True)
        assert len(errors) == 1, errors
        assert_error(errors[0], path, rec.start, pos)
    if reopen:
        with SegmentWriter.open_existing(path) as w:
            assert w.size == g.metas[rec.chunk].offset
        assert os.path.getsize(path) == g.metas[rec.chunk].offset


def check_truncation(g: Golden, path: str, length: int, reopen: bool = True) -> None:
    """Every read of the file cut to ``length`` bytes (``reopen``: see check_flip)."""
    if length < 16:
        with pytest.raises(CorruptionError) as info:
            SegmentReader(path)
        assert_error(info.value, path, 0, length)
        return
    with SegmentReader(path) as r:
        for i, m in enumerate(g.metas):
            if chunk_end(m) <= length:
                assert r.read_chunk_meta(m.offset, m.chunk_len) == located(m, path)
            else:
                with pytest.raises(CorruptionError) as info:
                    r.read_chunk_meta(m.offset, m.chunk_len)
                assert_error(info.value, path, length, length)
            for j, b in enumerate(m.blocks):
                if m.offset + b.offset + b.stored_len <= length:
                    assert r.read_raw_block(m.offset, b) == g.raws[i][j]
                else:
                    with pytest.raises(CorruptionError) as info:
                        r.read_raw_block(m.offset, b)
                    assert_error(info.value, path, length, length)
        whole = [m for m in g.metas if chunk_end(m) <= length]
        cut = [m for m in g.metas if m.offset < length < chunk_end(m)]
        walked = list(r.walk())
        assert walked[: len(whole)] == [located(m, path) for m in whole]
        assert len(walked) == len(whole) + len(cut)
        for got, m in zip(walked[len(whole):], cut, strict=True):
            assert_error(got, path, m.offset, m.offset + m.header_len - 1)
        assert len(r.verify()) == len(cut)
    if reopen:
        valid = max([16] + [chunk_end(m) for m in whole])
        with SegmentWriter.open_existing(path) as w:
            assert w.size == valid
        assert os.path.getsize(path) == valid


def fix_block_crc(stored: bytearray) -> None:
    stored[-4:] = struct.pack("<I", crc32c(bytes(stored[:-4])))


def check_forged(g: Golden, path: str, i: int, j: int) -> None:
    """A block damaged *and* re-checksummed: the decompressor sees the damage."""
    m = g.metas[i]
    b = m.blocks[j]
    start = m.offset + b.offset
    with SegmentReader(path) as r:
        try:
            raw = r.read_raw_block(m.offset, b)
        except CorruptionError as err:
            assert_error(err, path, start, start + b.stored_len - 1)
        else:
            assert len(raw) == b.raw_len
            try:
                block.decode_entries(raw)
            except CorruptionError:
                pass


# -- in-process tests -----------------------------------------------------------------


def make_variant_dir() -> str:
    """A fresh directory for the damaged variants: on tmpfs when there is one.

    Thousands of rewrites of one file (ext4 flushes a file truncated and
    rewritten on close) and the fsyncs of reopening would dominate the run
    on a shared disk, and test nothing more than one of them does.
    """
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix="chunkstore-variants-", dir=where)


@pytest.fixture
def variant_dir():
    d = make_variant_dir()
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def write_variant(tmp_path, data: bytes) -> str:
    path = str(tmp_path / "variant.seg")
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_golden_segment_reads_back(golden, tmp_path):
    path = write_variant(tmp_path, golden.data)
    check_truncation(golden, path, len(golden.data))  # uncut: everything reads
    with SegmentReader(path) as r:
        assert r.verify(deep=True) == []
    assert {r.kind for r in golden.records} == {"segment", "header", "block", "filters", "index",
                                                "trailer"}
    assert sum(r.end - r.start for r in golden.records) == len(golden.data)


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_every_byte_flip_is_caught_in_its_record(golden, variant_dir, mask):
    for pos in range(len(golden.data)):
        data = bytearray(golden.data)
        data[pos] ^= mask
        check_flip(golden, write_variant(variant_dir, bytes(data)), pos)


def test_every_truncation_is_caught(golden, variant_dir):
    for length in range(len(golden.data)):
        check_truncation(golden, write_variant(variant_dir, golden.data[:length]), length)


def test_forged_block_crcs_reach_the_decompressor_safely(golden, variant_dir):
    for i, m in enumerate(golden.metas):
        for j, b in enumerate(m.blocks):
            start = m.offset + b.offset
            for k in range(b.stored_len - 4):
                for mask in (0xFF, 0x01):
                    data = bytearray(golden.data)
                    stored = bytearray(data[start : start + b.stored_len])
                    stored[k] ^= mask
                    fix_block_crc(stored)
                    data[start : start + b.stored_len] = stored
                    check_forged(golden, write_variant(variant_dir, bytes(data)), i, j)


def test_valid_length_checks(golden, tmp_path):
    path = write_variant(tmp_path, golden.data + b"torn tail bytes")
    first_end = chunk_end(golden.metas[0])
    with SegmentWriter.open_existing(path, first_end) as w:
        assert w.size == first_end
    assert os.path.getsize(path) == first_end
    # more than the file holds: the index knows chunks that are gone
    with pytest.raises(CorruptionError) as info:
        SegmentWriter.open_existing(path, first_end + 100)
    assert_error(info.value, path, first_end, first_end)
    # not a chunk boundary
    with pytest.raises(CorruptionError):
        SegmentWriter.open_existing(path, first_end - 1)
    assert os.path.getsize(path) == first_end


# -- the subprocess crash guard ---------------------------------------------------------

_SUBPROCESS = textwrap.dedent("""
    import pathlib, shutil, sys
    sys.path.insert(0, {tests!r})
    import test_chunkfile_corruption as t

    d = t.make_variant_dir()
    try:
        g = t.build_golden(d)
        tmp = pathlib.Path(d)
        n = 0
        for pos in range(len(g.data)):
            for mask in (0x80, 0x55):
                data = bytearray(g.data)
                data[pos] ^= mask
                t.check_flip(g, t.write_variant(tmp, bytes(data)), pos, reopen=False)
                n += 1
        for length in range(len(g.data)):
            t.check_truncation(g, t.write_variant(tmp, g.data[:length]), length, reopen=False)
            n += 1
        for i, m in enumerate(g.metas):
            for j, b in enumerate(m.blocks):
                start = m.offset + b.offset
                for k in range(b.stored_len - 4):
                    for mask in (0xFF, 0x01, 0x10, 0x80):
                        data = bytearray(g.data)
                        stored = bytearray(data[start:start + b.stored_len])
                        stored[k] ^= mask
                        t.fix_block_crc(stored)
                        data[start:start + b.stored_len] = stored
                        t.check_forged(g, t.write_variant(tmp, bytes(data)), i, j)
                        n += 1
    finally:
        shutil.rmtree(d)
    print("variants", n)
""")


def test_corrupted_variants_do_not_crash_the_process():
    """Run every variant in a child: a segfault shows up as a signal exit code."""
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    root = os.path.dirname(tests)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS.format(tests=tests)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert "variants" in proc.stdout


# -- hostile headers --------------------------------------------------------------------


def _chunk_bytes(golden: Golden, i: int = 0) -> bytearray:
    m = golden.metas[i]
    return bytearray(golden.data[m.offset : m.offset + m.chunk_len])


def _fix_header_crc(chunk: bytearray, labels_len: int) -> None:
    end = 28 + labels_len
    chunk[end : end + 4] = struct.pack("<I", crc32c(bytes(chunk[:end])))


def _fix_trailer_crc(chunk: bytearray) -> None:
    chunk[-4:] = struct.pack("<I", crc32c(bytes(chunk[-20:-4])))


def _fix_index_crc(chunk: bytearray, index_offset: int, index_len: int) -> None:
    end = index_offset + index_len - 4
    chunk[end : end + 4] = struct.pack("<I", crc32c(bytes(chunk[index_offset:end])))


class _ReadSizes:
    """Record the size of every ``os.pread``."""

    def __init__(self, monkeypatch):
        self.sizes: list[int] = []
        real = os.pread

        def pread(fd, n, offset):
            self.sizes.append(n)
            return real(fd, n, offset)

        monkeypatch.setattr(os, "pread", pread)


def _segment_with(tmp_path, chunk: bytes) -> str:
    from chunkstore.chunkfile_format import encode_segment_header

    path = str(tmp_path / "hostile.seg")
    with open(path, "wb") as f:
        f.write(encode_segment_header() + bytes(chunk))
    return path


def _hostile_variants(golden: Golden):
    m = golden.metas[0]
    labels_len = len(m.labels)
    io, il = m.index_offset, m.index_len
    out = []

    c = _chunk_bytes(golden)
    c[24:28] = struct.pack("<I", 0xFFFFFFFF)
    out.append(("labels_len 4 GiB", c, 24))

    c = _chunk_bytes(golden)
    c[24:28] = struct.pack("<I", 1 << 20)
    out.append(("labels_len 1 MiB past the chunk", c, 24))

    c = _chunk_bytes(golden)
    c[8:16] = struct.pack("<Q", 2**64 - 1)
    _fix_header_crc(c, labels_len)
    out.append(("chunk_len 2^64-1", c, 8))

    c = _chunk_bytes(golden)
    c[-12:-8] = struct.pack("<I", 0xFFFFFFFF)
    _fix_trailer_crc(c)
    out.append(("index_len 4 GiB", c, len(c) - 20 + 8))

    c = _chunk_bytes(golden)
    c[-20:-12] = struct.pack("<Q", 2**64 - 100)
    _fix_trailer_crc(c)
    out.append(("index_offset 2^64-100", c, len(c) - 20))

    c = _chunk_bytes(golden)
    c[io : io + 4] = struct.pack("<I", 0xFFFFFFFF)
    _fix_index_crc(c, io, il)
    out.append(("n_blocks 4 G", c, io))

    c = _chunk_bytes(golden)
    c[io + 4 + 8 : io + 4 + 12] = struct.pack("<I", 0xFFFFFFFF)
    _fix_index_crc(c, io, il)
    out.append(("stored_len 4 GiB", c, io + 4 + 8))

    c = _chunk_bytes(golden)
    c[io + 4 + 12 : io + 4 + 16] = struct.pack("<I", 0xFFFFFFFF)
    _fix_index_crc(c, io, il)
    out.append(("raw_len 4 GiB", c, io + 4 + 12))

    c = _chunk_bytes(golden)
    c[io + 4 + 16 : io + 4 + 20] = struct.pack("<I", 0xFFFFFFFF)
    _fix_index_crc(c, io, il)
    out.append(("n_entries 4 G", c, io + 4 + 16))
    return out


@pytest.mark.parametrize("which", range(9))
def test_hostile_lengths_fail_fast(golden, tmp_path, monkeypatch, which):
    name, chunk, bad_at = _hostile_variants(golden)[which]
    chunk = bytes(chunk)

    tracemalloc.start()
    try:
        with pytest.raises(CorruptionError) as info:
            decode_chunk_meta(chunk, 16, "mem")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, (name, peak)
    assert info.value.offset == 16 + bad_at, (name, str(info.value))

    path = _segment_with(tmp_path, chunk)
    reads = _ReadSizes(monkeypatch)
    with SegmentReader(path) as r:
        with pytest.raises(CorruptionError) as info:
            r.read_chunk_meta(16, len(chunk))
        assert info.value.offset == 16 + bad_at, (name, str(info.value))
        walked = list(r.walk())
        assert len(walked) == 1 and isinstance(walked[0], CorruptionError), name
        assert walked[0].offset == 16 + bad_at
    assert max(reads.sizes) <= 4096, (name, reads.sizes)


def test_hostile_extents_from_the_index_fail_fast(golden, tmp_path, monkeypatch):
    path = _segment_with(tmp_path, _chunk_bytes(golden))
    size = os.path.getsize(path)
    reads = _ReadSizes(monkeypatch)
    with SegmentReader(path) as r:
        with pytest.raises(CorruptionError) as info:
            r.read_chunk_meta(16, 2**62)
        assert info.value.offset == size
        huge = BlockMeta(offset=40, stored_len=2**32 - 1, raw_len=10, n_entries=1, min_ts=0,
                         max_ts=0, codec=1, text_len=1)
        with pytest.raises(CorruptionError) as info:
            r.read_block(16, huge)
        assert info.value.offset == size
        with pytest.raises(CorruptionError):
            r.read_raw_block(16, huge)
    assert max(reads.sizes, default=0) <= 4096


def test_wrong_file_kinds(tmp_path):
    empty = tmp_path / "empty.seg"
    empty.write_bytes(b"")
    with pytest.raises(CorruptionError) as info:
        SegmentReader(str(empty))
    assert info.value.offset == 0 and info.value.path == str(empty)
    other = tmp_path / "other.seg"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(CorruptionError, match="magic"):
        SegmentReader(str(other))
    shutil.copy(other, tmp_path / "copy.seg")
    with pytest.raises(CorruptionError, match="magic"):
        SegmentWriter.open_existing(str(tmp_path / "copy.seg"), 16)
