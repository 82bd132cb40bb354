"""Compiled kernels against their pure-Python twins on the same Hypothesis inputs.

Each call is made on both modules; the outcomes must be identical: the same
result, or an exception of the same type with the same message (and, for
``CorruptionError``, the same offset).  Inputs include garbage, mutated valid
blocks and wrongly typed arguments.  Skipped when the compiled modules are
not built or ``CHUNKSTORE_PUREPYTHON`` is set.
"""

from __future__ import annotations

import array
import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkstore import _block_py, _hashing_py, _kernels, _scan_py
from chunkstore.errors import CorruptionError

if _kernels.PURE_REQUESTED:
    pytest.skip("CHUNKSTORE_PUREPYTHON is set: no compiled kernels", allow_module_level=True)
try:
    _block_c = importlib.import_module("chunkstore._block")
    _hashing_c = importlib.import_module("chunkstore._hashing")
    _scan_c = importlib.import_module("chunkstore._scan")
except ImportError:
    if _kernels.REQUIRE_EXT:
        raise
    pytest.skip("compiled kernels are not built", allow_module_level=True)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def outcome(fn, *args, **kwargs):
    """A comparable summary of a call: its result or its exception."""
    try:
        return ("ok", fn(*args, **kwargs))
    except CorruptionError as exc:
        return ("corrupt", exc.detail, exc.offset, exc.path)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return ("raise", type(exc), str(exc))


def same(fn_name, mod_c, mod_py, *args, **kwargs):
    c = outcome(getattr(mod_c, fn_name), *args, **kwargs)
    p = outcome(getattr(mod_py, fn_name), *args, **kwargs)
    assert c == p, (fn_name, args)
    return c


# --- strategies ---------------------------------------------------------------

timestamps = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 2**63, INT64_MIN - 1, True]),
)
messy_ts = st.one_of(timestamps, st.sampled_from([1.5, "7", None, b"1"]))
lines = st.binary(max_size=40)
messy_lines = st.one_of(
    lines, st.text(max_size=5), lines.map(bytearray), st.sampled_from([None, 3])
)
pairs = st.tuples(st.binary(max_size=6), st.binary(max_size=6))
metadatas = st.one_of(st.none(), st.lists(pairs, max_size=4).map(tuple))
messy_metadatas = st.one_of(
    metadatas,
    st.sampled_from([((b"k",),), ((b"k", "v"),), (b"kv",), 5, ((b"a", b"b", b"c"),)]),
)


@st.composite
def valid_raw(draw):
    n = draw(st.integers(0, 12))
    ts = draw(st.lists(timestamps.filter(lambda t: INT64_MIN <= t <= INT64_MAX and t is not True),
                       min_size=n, max_size=n))
    ls = draw(st.lists(lines, min_size=n, max_size=n))
    ms = draw(st.one_of(st.none(), st.lists(metadatas, min_size=n, max_size=n)))
    return _block_py.encode_entries(ts, ls, ms)


@st.composite
def mutated(draw, base):
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        if op == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif data:
            at = draw(st.integers(0, len(data) - 1))
            if op == "flip":
                data[at] ^= draw(st.sampled_from([0x01, 0x80, 0xFF, 0x7F]))
            else:
                data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(data)


raw_inputs = st.one_of(st.binary(max_size=60), mutated(valid_raw()))


# --- hashing -------------------------------------------------------------------


@given(data=st.one_of(st.binary(max_size=100), st.sampled_from(["s", 5, None, bytearray(b"ab")])),
       value=st.one_of(st.integers(-1, 2**64), st.sampled_from([1.0, "1"])))
def test_hashing_twins_agree(data, value):
    same("crc32c", _hashing_c, _hashing_py, data, value)
    same("xxh64", _hashing_c, _hashing_py, data, value)
    same("fingerprint_canonical", _hashing_c, _hashing_py, data)


# --- raw and stored blocks ---------------------------------------------------------


@given(ts=st.lists(messy_ts, max_size=6), ls=st.lists(messy_lines, max_size=6),
       ms=st.one_of(st.none(), st.lists(messy_metadatas, max_size=6)))
def test_encode_entries_twins_agree(ts, ls, ms):
    n = min(len(ts), len(ls))
    same("encode_entries", _block_c, _block_py, ts[:n], ls[:n], ms)
    same("encode_entries", _block_c, _block_py, ts, ls, ms)


@settings(max_examples=300)
@given(raw=raw_inputs)
def test_decode_entries_twins_agree(raw):
    same("decode_entries", _block_c, _block_py, raw)


@st.composite
def stored_inputs(draw):
    raw = draw(valid_raw())
    stored = _block_py.compress_block(raw, draw(st.sampled_from([0, 1, 2])))
    return draw(st.one_of(st.just(stored), mutated(st.just(stored)), st.binary(max_size=20)))


@settings(max_examples=150)
@given(stored=stored_inputs(), limit=st.sampled_from([0, 5, 64, 64 << 20, -1, (64 << 20) + 1]),
       fix_crc=st.booleans())
def test_stored_block_twins_agree(stored, limit, fix_crc):
    if fix_crc and len(stored) >= 13:
        body = stored[:-4]
        stored = body + _hashing_py.crc32c(body).to_bytes(4, "little")
    same("decompress_block", _block_c, _block_py, stored, limit)
    same("read_block_header", _block_c, _block_py, stored, limit)


@given(raw=st.one_of(st.binary(max_size=50), st.sampled_from(["s", None])),
       codec=st.sampled_from([0, 1, 2, 3, 4, -1, 1.0]), level=st.sampled_from([0, 1, 12, "x"]))
def test_compress_block_twins_agree(raw, codec, level):
    same("compress_block", _block_c, _block_py, raw, codec, level)


@settings(max_examples=200)
@given(raws=st.lists(st.one_of(valid_raw(), valid_raw(), raw_inputs, st.sampled_from(["s", None])),
                    max_size=4))
def test_merge_raw_blocks_twins_agree(raws):
    # the head's merge of small cut blocks under memory pressure: the same
    # bytes (stable ts order, nothing dropped) or the same error
    c = same("merge_raw_blocks", _block_c, _block_py, raws)
    if c[0] == "ok":
        entries = []
        for raw in raws:
            entries += zip(*_block_py.decode_entries(raw), strict=True)
        entries.sort(key=lambda e: e[0])  # stable: block order, then position
        assert list(zip(*_block_py.decode_entries(c[1]), strict=True)) == entries


@given(raws=st.lists(st.one_of(raw_inputs, valid_raw(), st.sampled_from(["s", None])),
                    max_size=4),
       codec=st.sampled_from([0, 1, 2, 1, 1, 7, "x"]),
       bits=st.sampled_from([0, 10, 1, 64, 65, -1]), prefix=st.sampled_from([8, 1, 0, 9]))
def test_compress_and_filter_twins_agree(raws, codec, bits, prefix):
    # the cut-block worker's batch kernel: lz4 without the GIL in C, the
    # twin composing compress_block and block_filter; bytes and errors equal
    c = same("compress_and_filter", _block_c, _block_py, raws, codec, bits, prefix)
    if c[0] == "ok" and codec in (0, 1, 2):
        for raw, (stored, flt) in zip(raws, c[1], strict=True):
            assert stored == _block_c.compress_block(raw, codec)
            assert flt == (_kernels.tokens.block_filter(raw, bits, prefix) if bits else b"")


# --- builder --------------------------------------------------------------------


extend_items = st.one_of(
    st.tuples(messy_ts, messy_lines),
    st.tuples(
        st.integers(-3, 3),
        st.one_of(st.sampled_from(["a", "b", "\ud800", "é"]), st.binary(max_size=3)),
        st.one_of(st.none(), st.dictionaries(st.sampled_from(["k", "a", 1]),
                                             st.sampled_from(["v", "", 2, "\udfff"]), max_size=2),
                  st.sampled_from([[("k", "v")], "kv"])),
    ),
    st.lists(st.integers(-2, 2), max_size=4),
    st.sampled_from([None, "x", ()]),
)

operations = st.one_of(
    st.tuples(st.just("append"), messy_ts, messy_lines, messy_metadatas),
    st.tuples(st.just("extend"), st.lists(extend_items, max_size=8),
              st.sampled_from([0, 2, 5, -1, "x"]), st.sampled_from([-3, 0, 2, 2**63])),
    st.tuples(st.just("extend_raw"), raw_inputs),
    st.tuples(st.just("reset")),
)


@settings(max_examples=100)
@given(ops=st.lists(operations, max_size=12))
def test_builder_twins_agree(ops):
    c, p = _block_c.BlockBuilder(), _block_py.BlockBuilder()
    for op in ops:
        name, args = op[0], op[1:]
        assert outcome(getattr(c, name), *args) == outcome(getattr(p, name), *args), op
        for prop in ("n_entries", "text_bytes", "size_bytes", "min_ts", "max_ts", "ordered"):
            assert getattr(c, prop) == getattr(p, prop), (op, prop)
        c._check()
        p._check()
    assert c.build() == p.build()
    assert c.entries() == p.entries()


# --- scanner --------------------------------------------------------------------

needles = st.one_of(st.binary(max_size=4), st.sampled_from(["s", None, 1]))
clause_lists = st.one_of(
    st.lists(st.tuples(st.lists(st.binary(max_size=4), max_size=3), st.booleans(), st.booleans()),
             max_size=3),
    st.lists(st.one_of(
        st.tuples(st.lists(needles, max_size=2), st.sampled_from([True, 0, None]), st.booleans()),
        st.tuples(st.binary(max_size=2), st.booleans(), st.booleans()),
        st.tuples(st.lists(st.binary(max_size=2), max_size=1), st.booleans()),
        st.sampled_from([b"x", None, 5]),
    ), max_size=2),
    st.sampled_from([None, b"abc", "abc"]),
)


@settings(max_examples=200)
@given(clauses=clause_lists, raw=raw_inputs, start=st.sampled_from([INT64_MIN, -2**70, -1, 0, 3]),
       end=st.sampled_from([2**63, 2**70, 0, 1, 5]), limit=st.sampled_from([-1, 0, 1, 3]),
       reverse=st.booleans())
def test_scanner_twins_agree(clauses, raw, start, end, limit, reverse):
    fc, fp = outcome(_scan_c.Filter, clauses), outcome(_scan_py.Filter, clauses)
    assert fc[0] == fp[0] and fc[1:] == fp[1:] if fc[0] != "ok" else fp[0] == "ok"
    if fc[0] != "ok":
        return
    flt_c, flt_p = fc[1], fp[1]
    assert flt_c.clauses == flt_p.clauses
    assert (outcome(_scan_c.scan_raw, raw, flt_c, start, end, limit, reverse)
            == outcome(_scan_py.scan_raw, raw, flt_p, start, end, limit, reverse))
    buckets = [array.array("q", [0] * 4) for _ in range(4)]
    got_c = outcome(_scan_c.count_raw, raw, flt_c, start, end, -2, 2, buckets[0], buckets[1])
    got_p = outcome(_scan_py.count_raw, raw, flt_p, start, end, -2, 2, buckets[2], buckets[3])
    assert got_c == got_p and buckets[0] == buckets[2] and buckets[1] == buckets[3]
    stored = _block_py.compress_block(raw)
    assert (outcome(_scan_c.scan_block, stored, flt_c, start, end, limit, reverse)
            == outcome(_scan_py.scan_block, stored, flt_p, start, end, limit, reverse))


def test_compress_and_filter_equals_python_lz4_on_large_blocks():
    # lz4 picks its hash table by input size (64 KiB and up differ): check
    # blocks well past that against python-lz4's own output
    import random

    rng = random.Random(5)
    for n in (70_000, 300_000, 1_100_000):
        line_words = [b"GET", b"/api/v1/users", b"200", b"timeout", b"dfs.DataNode", b"blk_%d"]
        lines, size = [], 0
        while size < n:
            line = b" ".join(rng.choice(line_words) for _ in range(6)).replace(
                b"%d", b"%d" % rng.getrandbits(30))
            lines.append(line)
            size += len(line)
        raw = _block_py.encode_entries(list(range(len(lines))), lines)
        [(stored, flt)] = _block_c.compress_and_filter([raw], 1, 10, 8)
        assert stored == _block_py.compress_block(raw, 1)
        assert flt == _kernels.tokens.block_filter(raw, 10, 8)
