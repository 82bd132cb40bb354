"""Raw blocks, stored blocks and the head BlockBuilder (docs/FORMAT.md sections 2-3).

Round-trip properties for every encoder, byte-exact layouts, and the builder
against a plain Python model (examples plus a Hypothesis state machine).
Every test runs on the pure twin and, unless ``CHUNKSTORE_PUREPYTHON`` is
set, on the compiled module.
"""

from __future__ import annotations

import importlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chunkstore import _block_py, _hashing_py, _kernels
from chunkstore.errors import CorruptionError


def _compiled(name: str):
    if _kernels.PURE_REQUESTED:
        return None
    try:
        return importlib.import_module(f"chunkstore.{name}")
    except ImportError:
        if _kernels.REQUIRE_EXT:
            raise
        return None


_C = _compiled("_block")
BACKENDS = [pytest.param(_block_py, id="py")]
if _C is not None:
    BACKENDS.append(pytest.param(_C, id="c"))

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture(scope="module", params=BACKENDS)
def B(request):
    return request.param


# --- strategies -------------------------------------------------------------

timestamps = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]),
    st.integers(-5, 5),
)
lines = st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"\n", b"\xff\xfe", b"a" * 300]))
pairs = st.tuples(st.binary(max_size=8), st.binary(max_size=12))
metadatas = st.one_of(st.none(), st.just(()), st.lists(pairs, max_size=6).map(tuple))


@st.composite
def entry_columns(draw, max_size=30, with_meta=None):
    n = draw(st.integers(0, max_size))
    ts = draw(st.lists(timestamps, min_size=n, max_size=n))
    ls = draw(st.lists(lines, min_size=n, max_size=n))
    if with_meta is None:
        with_meta = draw(st.booleans())
    ms = draw(st.lists(metadatas, min_size=n, max_size=n)) if with_meta else None
    return ts, ls, ms


def norm_meta(m):
    """What decode returns for an encoded metadata item: None for no pairs."""
    if not m:
        return None
    return tuple((bytes(a), bytes(b)) for a, b in m)


def header(raw: bytes) -> tuple[int, int, int]:
    """(n, text_len, meta_len) of a raw block."""
    vals, p = [], 0
    for _ in range(3):
        v = shift = 0
        while True:
            b = raw[p]
            p += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        vals.append(v)
    return tuple(vals)  # type: ignore[return-value]


# --- raw blocks ----------------------------------------------------------------


def test_raw_layout_is_byte_exact(B):
    raw = B.encode_entries([5, 3], [b"ab", b""], [None, ((b"k", b"v"),)])
    assert raw == b"\x02\x02\x06\x0a\x03\x02\x00\x00\x01\x01k\x01vab"
    assert B.encode_entries([], []) == b"\x00\x00\x00"
    # ts deltas wrap modulo 2**64 and are zigzagged as signed 64-bit values
    raw = B.encode_entries([INT64_MIN, INT64_MAX], [b"", b""])
    assert raw == b"\x02\x00\x00" + b"\xff" * 9 + b"\x01" + b"\x01" + b"\x00\x00"


@given(cols=entry_columns())
def test_raw_block_round_trip(B, cols):
    ts, ls, ms = cols
    raw = B.encode_entries(ts, ls, ms)
    got_ts, got_lines, got_meta = B.decode_entries(raw)
    assert got_ts == ts
    assert got_lines == ls
    assert got_meta == [norm_meta(m) for m in (ms or [None] * len(ts))]
    n, text_len, meta_len = header(raw)
    assert (n, text_len) == (len(ts), sum(map(len, ls)))
    assert (meta_len == 0) == (not ms or not any(ms))
    assert B.decode_entries(bytearray(raw)) == (got_ts, got_lines, got_meta)


def test_many_metadata_pairs_round_trip(B):
    many = tuple((b"n%d" % i, b"v" * (i % 7)) for i in range(1024))
    raw = B.encode_entries([1, 2], [b"x", b"y"], [many, None])
    assert B.decode_entries(raw)[2] == [many, None]
    with pytest.raises(ValueError, match="1024"):
        B.encode_entries([1], [b"x"], [many + ((b"a", b"b"),)])


@pytest.mark.parametrize(
    "args,exc",
    [
        (([1, 2], [b"x"]), ValueError),
        (([1], [b"x"], []), ValueError),
        ((["1"], [b"x"]), TypeError),
        (([1.0], [b"x"]), TypeError),
        (([2**63], [b"x"]), OverflowError),
        (([INT64_MIN - 1], [b"x"]), OverflowError),
        (([1], ["text"]), TypeError),
        (([1], [b"x"], [((b"k", "v"),)]), TypeError),
        (([1], [b"x"], [((b"k",),)]), ValueError),
    ],
)
def test_encode_argument_errors(B, args, exc):
    with pytest.raises(exc):
        B.encode_entries(*args)


def test_decode_reports_offsets(B):
    raw = B.encode_entries([1, 2], [b"ab", b"c"])
    with pytest.raises(CorruptionError) as info:
        B.decode_entries(raw + b"!")
    assert info.value.path is None and info.value.offset is not None
    with pytest.raises(CorruptionError) as info:
        B.decode_entries(b"\x80")
    assert info.value.offset == 0 and "truncated varint in entry count" in str(info.value)
    with pytest.raises(CorruptionError, match="overflows 64 bits"):
        B.decode_entries(b"\xff" * 10 + b"\x02")


# --- stored blocks ----------------------------------------------------------------


def _codecs(B):
    out = [(B.CODEC_NONE, 0), (B.CODEC_LZ4, 0), (B.CODEC_LZ4HC, 0), (B.CODEC_LZ4HC, 3)]
    try:
        import zstandard  # noqa: F401

        out += [(B.CODEC_ZSTD, 1), (B.CODEC_ZSTD, 0)]
    except ImportError:
        pass
    return out


@given(cols=entry_columns(max_size=20))
def test_stored_block_round_trip(B, cols):
    raw = B.encode_entries(*cols)
    for codec, level in _codecs(B):
        stored = B.compress_block(raw, codec, level)
        assert len(stored) == 13 + struct.unpack_from("<I", stored, 5)[0]
        assert B.read_block_header(stored) == (codec, len(raw), len(stored) - 13)
        assert B.decompress_block(stored) == raw
        assert B.decompress_block(memoryview(stored)) == raw


def test_stored_layout_is_byte_exact(B):
    raw = B.encode_entries([7], [b"hello"])
    stored = B.compress_block(raw, B.CODEC_NONE)
    head = struct.pack("<BII", 0, len(raw), len(raw)) + raw
    assert stored == head + struct.pack("<I", _hashing_py.crc32c(head))
    # the example of FORMAT.md section 3
    raw = B.encode_entries([5, 3], [b"ab", b""], [None, ((b"k", b"v"),)])
    assert B.compress_block(raw, B.CODEC_NONE) == bytes.fromhex(
        "00 0f000000 0f000000 0202060a0302000001016b017661 62 4691fefb")
    assert B.decompress_block(B.compress_block(b"", B.CODEC_LZ4)) == b""
    assert B.decompress_block(B.compress_block(b"", B.CODEC_NONE)) == b""


def test_stored_block_limits_and_codecs(B):
    raw = B.encode_entries([1, 2, 3], [b"x" * 100, b"y", b"z"])
    stored = B.compress_block(raw)
    with pytest.raises(CorruptionError) as info:
        B.decompress_block(stored, max_raw_len=len(raw) - 1)
    assert info.value.offset == 1 and "exceeds the limit" in str(info.value)
    assert B.decompress_block(stored, max_raw_len=len(raw)) == raw
    with pytest.raises(ValueError):
        B.decompress_block(stored, max_raw_len=(64 << 20) + 1)
    with pytest.raises(ValueError, match="unknown codec 9"):
        B.compress_block(raw, 9)
    with pytest.raises(ValueError, match="exceeds the limit"):
        B.compress_block(bytes((64 << 20) + 1), B.CODEC_NONE)
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="zstd"):
            B.compress_block(raw, B.CODEC_ZSTD)
    with pytest.raises(CorruptionError) as info:
        B.read_block_header(stored[:12])
    assert info.value.offset == 0
    # a header followed by more bytes than the block is fine for read_block_header
    assert B.read_block_header(stored + b"tail")[1] == len(raw)


def test_decompress_bomb_is_corruption(B):
    """A payload that expands past its declared raw_len is refused, not allocated."""
    raw = b"\x00" * (1 << 20)
    stored = bytearray(B.compress_block(raw, B.CODEC_LZ4))
    struct.pack_into("<I", stored, 1, 1000)  # declare a much smaller raw_len
    struct.pack_into("<I", stored, len(stored) - 4, _hashing_py.crc32c(bytes(stored[:-4])))
    with pytest.raises(CorruptionError) as info:
        B.decompress_block(bytes(stored))
    assert info.value.offset == 9


# --- BlockBuilder ------------------------------------------------------------------


def test_builder_empty(B):
    bb = B.BlockBuilder()
    assert (bb.n_entries, bb.text_bytes, bb.size_bytes) == (0, 0, 0)
    assert bb.min_ts is None and bb.max_ts is None and bb.ordered
    assert bb.build() == B.encode_entries([], [])
    assert bb.entries() == ([], [], [])
    n, rejects, wal = bb.extend([], 100, 0)
    assert (n, rejects, wal) == (0, [], b"\x00\x00\x00")


def test_builder_append_dedups_and_sorts_stably(B):
    bb = B.BlockBuilder()
    assert bb.append(10, b"a")
    assert not bb.append(10, b"a")
    assert bb.append(10, b"a", ((b"k", b"v"),))
    assert not bb.append(10, b"a", ((b"k", b"v"),))
    assert bb.append(10, b"b")
    assert not bb.append(10, b"a", ())  # () is "no metadata"
    assert bb.ordered
    assert bb.append(5, b"late")
    assert not bb.ordered
    assert not bb.append(10, b"b")  # duplicate found after going out of order
    assert bb.append(10, b"c")
    assert (bb.min_ts, bb.max_ts, bb.n_entries) == (5, 10, 5)
    ts, ls, ms = bb.entries()
    assert ts == [5, 10, 10, 10, 10]
    assert ls == [b"late", b"a", b"a", b"b", b"c"]
    assert ms == [None, None, ((b"k", b"v"),), None, None]
    assert bb.build() == B.encode_entries(ts, ls, ms)
    meta_bytes = len(_block_py._encode_metadata(((b"k", b"v"),)))
    assert bb.size_bytes == bb.text_bytes + meta_bytes + 16 * 5
    bb._check()


def test_builder_long_equal_timestamp_runs_dedup(B):
    """Runs longer than the in-order scan window switch to the hash index."""
    bb = B.BlockBuilder()
    for i in range(100):
        assert bb.append(7, b"line %d" % i)
    for i in range(100):
        assert not bb.append(7, b"line %d" % i)
    assert bb.ordered and bb.n_entries == 100
    assert bb.append(8, b"line 0") and bb.append(7, b"line 100")
    assert not bb.append(7, b"line 50")
    bb._check()


def test_builder_extend_rejects_with_exact_reasons(B):
    bb = B.BlockBuilder()
    batch = [
        (100, "ok"),  # 0
        (100, "ok"),  # 1 duplicate: skipped silently
        (50, b"behind"),  # 2
        ("100", "x"),  # 3
        (2**63, "x"),  # 4
        (101, 5),  # 5
        (102, "x" * 11),  # 6
        (103, "\ud800"),  # 7
        (104, "m", {"b": "2", "a": "1"}),  # 8
        (105, "m", {"a": 1}),  # 9
        (106, "m", ["a"]),  # 10
        (107,),  # 11
        "junk",  # 12
        [108, b"list item", None],  # 13
        (109, "é"),  # 14
        (110, "many", {str(i): "" for i in range(1025)}),  # 15
        (99, b"ok too"),  # 16: out of order but not too far behind
    ]
    n, rejects, wal = bb.extend(batch, 10, 60)
    assert rejects == [
        (2, "too far behind"),
        (3, "invalid timestamp"),
        (4, "invalid timestamp"),
        (5, "line must be str or bytes"),
        (6, "line too long: 11 bytes exceeds max_line_size 10"),
        (7, "line is not valid unicode"),
        (9, "invalid structured metadata"),
        (10, "invalid structured metadata"),
        (11, "invalid entry"),
        (12, "invalid entry"),
        (15, "too many structured metadata pairs: 1025 exceeds 1024"),
    ]
    accepted_ts = [100, 104, 108, 109, 99]
    accepted_lines = [b"ok", b"m", b"list item", "é".encode(), b"ok too"]
    accepted_meta = [None, ((b"a", b"1"), (b"b", b"2")), None, None, None]
    assert n == 5
    assert wal == B.encode_entries(accepted_ts, accepted_lines, accepted_meta)
    assert not bb.ordered
    assert bb.entries() == (
        [99, 100, 104, 108, 109],
        [b"ok too", b"ok", b"m", b"list item", "é".encode()],
        [None, None, ((b"a", b"1"), (b"b", b"2")), None, None],
    )
    # max_line_size <= 0 means no limit; a second identical batch adds nothing
    n, rejects, wal = bb.extend([(200, "y" * 1000)], 0, 0)
    assert n == 1 and rejects == []
    n, rejects, wal = bb.extend(batch, 10, 60)
    assert n == 0 and wal == b"\x00\x00\x00" and len(rejects) == 11
    bb._check()


@given(cols=entry_columns(max_size=30),
       lsn=st.integers(0, 2**64 - 1), sid=st.integers(0, 2**64 - 1))
@settings(max_examples=40)
def test_builder_extend_record_frames_the_wal_record(B, cols, lsn, sid):
    from chunkstore import wal_records

    ts, lines, metas = cols
    metas = metas or [None] * len(ts)
    items = [(t, ln) if m is None else
             (t, ln, {k.decode("latin-1"): v.decode("latin-1") for k, v in m})
             for t, ln, m in zip(ts, lines, metas, strict=True)]
    a, b = B.BlockBuilder(), B.BlockBuilder()
    n, rejects, raw = a.extend(items, 0, -(2**63))
    n2, rejects2, rec = b.extend_record(items, 0, -(2**63), lsn, sid)
    assert (n2, rejects2) == (n, rejects)
    assert rec == (wal_records.encode_entries(lsn, sid, raw) if n else None)
    assert a.build() == b.build()
    if rec is not None:  # and the WAL reads it back
        assert rec[8] == wal_records.ENTRIES
        r = wal_records.decode(rec[8], rec[9:])
        assert (r.lsn, r.stream_id, bytes(r.raw)) == (lsn, sid, raw)


def test_builder_extend_record_argument_errors(B):
    bb = B.BlockBuilder()
    for lsn, sid in ((-1, 1), (2**64, 1), (1, -1), (1, 2**64)):
        with pytest.raises(ValueError, match="wal record"):
            bb.extend_record([(1, b"x")], 0, 0, lsn, sid)
    assert bb.n_entries == 0  # nothing appended before the check


def test_builder_extend_raw_and_reset(B):
    src = B.BlockBuilder()
    src.extend([(3, "c"), (1, "a", {"k": "v"}), (2, "b")], 0, 0)
    raw = src.build()
    dst = B.BlockBuilder()
    assert dst.extend_raw(raw) == 3
    assert dst.extend_raw(raw) == 0
    assert dst.build() == raw
    with pytest.raises(CorruptionError):
        dst.extend_raw(raw[:-1])
    assert dst.n_entries == 3
    before = dst.memory_bytes()
    dst.reset()
    assert dst.n_entries == 0 and dst.min_ts is None and dst.ordered
    if B is not _block_py:
        assert dst.memory_bytes() == before  # memory is kept for the next block
    assert dst.extend_raw(raw) == 3 and dst.build() == raw


def test_builder_extend_raw_canonicalizes_metadata(B):
    """Non-minimal varints in a valid block do not defeat duplicate detection."""
    canonical = B.encode_entries([1], [b"x"], [((b"k", b"v"),)])
    padded = b"\x01\x01\x06\x02\x01\x81\x00\x01k\x01vx"
    assert B.decode_entries(padded) == B.decode_entries(canonical)
    bb = B.BlockBuilder()
    assert bb.extend_raw(padded) == 1
    assert bb.extend_raw(canonical) == 0
    assert bb.build() == canonical


def test_builder_argument_errors(B):
    bb = B.BlockBuilder()
    with pytest.raises(TypeError):
        bb.append("1", b"x")
    with pytest.raises(OverflowError):
        bb.append(2**63, b"x")
    with pytest.raises(TypeError):
        bb.append(1, "str is not bytes here")
    with pytest.raises(TypeError):
        bb.extend([], "10", 0)
    with pytest.raises(OverflowError):
        bb.extend([], 10, 2**63)
    assert bb.n_entries == 0


def test_builder_capacity_hints(B):
    bb = B.BlockBuilder(text_capacity=1 << 16, entry_capacity=1000)
    assert bb.extend([(i, b"x" * 50) for i in range(100)], 0, 0)[0] == 100
    assert bb.memory_bytes() >= bb.size_bytes - 16 * 100


# --- the builder against a model -------------------------------------------------


def _model_meta(meta):
    """Encoded canonical metadata of an extend() item, None if it is rejected."""
    if meta is None:
        return b""
    return _block_py._encode_metadata(sorted((k.encode(), v.encode()) for k, v in meta.items()))


def _machine(B):
    class BuilderMachine(RuleBasedStateMachine):
        """Apply every builder operation to the real builder and a list model."""

        def __init__(self):
            super().__init__()
            self.bb = B.BlockBuilder()
            self.model: list[tuple[int, bytes, bytes]] = []

        def _add(self, ts, line, meta):
            key = (ts, line, meta)
            if key in self.model:
                return False
            self.model.append(key)
            return True

        @rule(ts=st.integers(-3, 3), line=st.sampled_from([b"", b"a", b"b", b"ab"]),
              meta=st.sampled_from([None, (), ((b"k", b"v"),), ((b"k", b"w"), (b"a", b""))]))
        def append(self, ts, line, meta):
            expected = self._add(ts, line, _block_py._encode_metadata(meta))
            assert self.bb.append(ts, line, meta) == expected

        @rule(items=st.lists(st.tuples(
            st.integers(-3, 3),
            st.sampled_from(["", "a", "b", b"a", "é", "long line"]),
            st.sampled_from([None, {}, {"k": "v"}, {"b": "1", "a": "2"}]),
        ), max_size=12), floor=st.integers(-4, 1))
        def extend(self, items, floor):
            expected_rejects, accepted = [], []
            for i, (ts, line, meta) in enumerate(items):
                lb = line.encode() if isinstance(line, str) else line
                if len(lb) > 5:
                    reason = f"line too long: {len(lb)} bytes exceeds max_line_size 5"
                    expected_rejects.append((i, reason))
                    continue
                enc = _model_meta(meta)
                if (ts, lb, enc) in self.model:
                    continue
                if ts < floor:
                    expected_rejects.append((i, "too far behind"))
                    continue
                self._add(ts, lb, enc)
                accepted.append((ts, lb, enc))
            n, rejects, wal = self.bb.extend(items, 5, floor)
            assert rejects == expected_rejects
            assert n == len(accepted)
            assert wal == _block_py._encode_columns(
                [a[0] for a in accepted], [a[1] for a in accepted], [a[2] for a in accepted])

        @rule(ts=st.lists(st.integers(-3, 3), max_size=6))
        def extend_raw(self, ts):
            lines = [b"r%d" % (t % 2) for t in ts]
            raw = _block_py.encode_entries(ts, lines)
            expected = sum(self._add(t, line, b"") for t, line in zip(ts, lines, strict=True))
            assert self.bb.extend_raw(raw) == expected

        @precondition(lambda self: len(self.model) > 0)
        @rule()
        def reset(self):
            self.bb.reset()
            self.model.clear()

        @invariant()
        def matches_model(self):
            self.bb._check()
            order = sorted(range(len(self.model)), key=lambda i: self.model[i][0])
            ts = [self.model[i][0] for i in order]
            assert self.bb.n_entries == len(self.model)
            assert self.bb.text_bytes == sum(len(m[1]) for m in self.model)
            assert self.bb.size_bytes == sum(len(m[1]) + len(m[2]) + 16 for m in self.model)
            assert self.bb.min_ts == (min(ts) if ts else None)
            assert self.bb.max_ts == (max(ts) if ts else None)
            arrival = [m[0] for m in self.model]
            in_order = all(a <= b for a, b in zip(arrival, arrival[1:], strict=False))
            assert self.bb.ordered == in_order
            assert self.bb.build() == _block_py._encode_columns(
                ts, [self.model[i][1] for i in order], [self.model[i][2] for i in order])

    BuilderMachine.TestCase.settings = settings(
        BuilderMachine.TestCase.settings, stateful_step_count=25
    )
    return BuilderMachine


TestBuilderModelPy = _machine(_block_py).TestCase
if _C is not None:
    TestBuilderModelC = _machine(_C).TestCase
