"""The block line scanner against a brute-force oracle.

``scan_raw`` / ``scan_block`` / ``count_raw`` must equal testing every entry
with ``all(clause keeps line)`` in plain Python, for random entries and
needles that straddle entry boundaries, overlap, repeat and sit at the very
start or end of the text; case-insensitive and negated clauses; time ranges,
limits and reverse order.  The compiled scanner is run at every search level
(scalar, SSE2, AVX2) the CPU offers.
"""

from __future__ import annotations

import array
import importlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkstore import _block_py, _kernels, _scan_py
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


_C = _compiled("_scan")
BACKENDS = [pytest.param((_scan_py, None), id="py")]
if _C is not None:
    BACKENDS += [pytest.param((_C, level), id=f"c-level{level}") for level in (0, 1, 2)]


@pytest.fixture(scope="module", params=BACKENDS)
def S(request):
    mod, level = request.param
    if level is not None:
        if mod._set_search_level(level) != level:
            mod._set_search_level(2)
            pytest.skip(f"search level {level} not supported by this CPU")
        yield mod
        mod._set_search_level(2)
    else:
        yield mod


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ALPHABET = b"aAbB \n.-xyZ\xc3\xa9@`[{"


def keeps(line: bytes, clauses) -> bool:
    """The oracle: ASCII-folded substring tests, clause by clause."""
    for needles, negate, ci in clauses:
        hay = line.lower() if ci else line
        found = any((n.lower() if ci else n) in hay for n in needles)
        if found == negate:
            return False
    return True


def oracle(ts, lines, metas, clauses, start, end, limit=-1, reverse=False):
    idx = [i for i in range(len(ts)) if start <= ts[i] < end and keeps(lines[i], clauses)]
    if reverse:
        idx.reverse()
    if limit >= 0:
        idx = idx[:limit]
    return [(ts[i], lines[i], metas[i]) for i in idx]


# --- strategies -------------------------------------------------------------

small_lines = st.binary(max_size=12).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))
long_lines = st.binary(min_size=30, max_size=200).map(
    lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)
)


@st.composite
def blocks(draw):
    n = draw(st.integers(0, 40))
    ls = draw(st.lists(st.one_of(small_lines, long_lines), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n))
    if draw(st.booleans()):
        ts.sort()
    meta = [None if draw(st.booleans()) else ((b"k", bytes([65 + i % 26])),) for i in range(n)]
    if not draw(st.booleans()):
        meta = [None] * n
    return ts, ls, meta


@st.composite
def needles_for(draw, text: bytes):
    kind = draw(st.sampled_from(["alphabet", "slice", "slice", "empty", "edge"]))
    if kind == "empty" or (kind != "alphabet" and not text):
        return b"" if kind == "empty" else draw(small_lines)
    if kind == "alphabet":
        return draw(small_lines.map(lambda b: b[:4]))
    if kind == "edge":
        k = draw(st.integers(1, min(6, len(text))))
        return text[:k] if draw(st.booleans()) else text[-k:]
    a = draw(st.integers(0, len(text) - 1))
    b = draw(st.integers(a + 1, min(len(text), a + 8)))
    return text[a:b]  # may straddle entry boundaries


@st.composite
def filters(draw, text: bytes):
    clauses = []
    for _ in range(draw(st.integers(0, 3))):
        ns = draw(st.lists(needles_for(text), min_size=0, max_size=3))
        clauses.append((ns, draw(st.booleans()), draw(st.booleans())))
    return clauses


# --- properties ----------------------------------------------------------------


@settings(max_examples=150)
@given(data=st.data())
def test_scan_raw_equals_oracle(S, data):
    ts, ls, ms = data.draw(blocks())
    clauses = data.draw(filters(b"".join(ls)))
    start = data.draw(st.one_of(st.integers(-5, 5), st.just(INT64_MIN), st.just(-(2**70))))
    end = data.draw(st.one_of(st.integers(-5, 6), st.just(2**63), st.just(2**70)))
    limit = data.draw(st.integers(-1, 6))
    reverse = data.draw(st.booleans())
    raw = _block_py.encode_entries(ts, ls, ms)
    flt = S.Filter(clauses)
    got = S.scan_raw(raw, flt, start, end, limit, reverse)
    assert got == oracle(ts, ls, ms, clauses, start, end, limit, reverse)
    for line in ls[:5]:
        assert flt.matches(line) == keeps(line, clauses)


@settings(max_examples=80)
@given(data=st.data())
def test_count_raw_equals_brute_force(S, data):
    ts, ls, ms = data.draw(blocks())
    clauses = data.draw(filters(b"".join(ls)))
    start, end = data.draw(st.integers(-5, 5)), data.draw(st.integers(-5, 6))
    origin = data.draw(st.integers(-8, 4))
    width = data.draw(st.integers(1, 4))
    nb = data.draw(st.integers(0, 6))
    raw = _block_py.encode_entries(ts, ls, ms)
    counts, sums = array.array("q", [1] * nb), array.array("q", [2] * nb)
    want_c, want_s, want_n = [1] * nb, [2] * nb, 0
    for t, line in zip(ts, ls, strict=True):
        if start <= t < end and keeps(line, clauses):
            k = -((origin - t) // width) - 1  # ceil((t - origin) / width) - 1
            if 0 <= k < nb:
                want_c[k] += 1
                want_s[k] += len(line)
                want_n += 1
    n = S.count_raw(raw, S.Filter(clauses), start, end, origin, width, counts, sums)
    assert (n, counts.tolist(), sums.tolist()) == (want_n, want_c, want_s)


@settings(max_examples=30)
@given(data=st.data())
def test_scan_block_is_decompress_then_scan(S, data):
    ts, ls, ms = data.draw(blocks())
    clauses = data.draw(filters(b"".join(ls)))
    raw = _block_py.encode_entries(ts, ls, ms)
    stored = _block_py.compress_block(raw, data.draw(st.sampled_from([0, 1, 2])))
    flt = S.Filter(clauses)
    assert S.scan_block(stored, flt, -5, 5, 3, True) == oracle(ts, ls, ms, clauses, -5, 5, 3, True)


# --- examples --------------------------------------------------------------------


def scan_all(S, ls, clauses):
    raw = _block_py.encode_entries(list(range(len(ls))), ls)
    return [line for _, line, _ in S.scan_raw(raw, S.Filter(clauses), INT64_MIN, 2**63)]


def test_needles_at_edges_and_straddling(S):
    ls = [b"abc", b"def", b"", b"ghi"]
    assert scan_all(S, ls, [([b"ab"], False, False)]) == [b"abc"]
    assert scan_all(S, ls, [([b"hi"], False, False)]) == [b"ghi"]  # end of text
    assert scan_all(S, ls, [([b"cd"], False, False)]) == []  # straddles abc|def
    assert scan_all(S, ls, [([b"fg"], False, False)]) == []  # straddles def|(empty)|ghi
    assert scan_all(S, ls, [([b"cd", b"e"], False, False)]) == [b"def"]
    assert scan_all(S, ls, [([b""], False, False)]) == ls  # empty needle: every line
    assert scan_all(S, ls, [([b""], True, False)]) == []
    assert scan_all(S, ls, [([], False, False)]) == []  # no needle can be found
    assert scan_all(S, ls, [([], True, False)]) == ls
    assert scan_all(S, ls, []) == ls


def test_overlapping_and_repeated_needles(S):
    ls = [b"aaa", b"a", b"aab", b"baa" * 30]
    assert scan_all(S, ls, [([b"aa"], False, False)]) == [b"aaa", b"aab", b"baa" * 30]
    assert scan_all(S, ls, [([b"aaa"], False, False)]) == [b"aaa"]
    assert scan_all(S, ls, [([b"aa"], False, False), ([b"b"], True, False)]) == [b"aaa"]


def test_case_insensitive_is_ascii_only(S):
    ls = [b"ERROR x", b"error", b"ErRoR", b"\xc3\x89t\xc3\xa9", b"\xc3\xa9t\xc3\xa9", b"@[", b"`{"]
    ci = [([b"error"], False, True)]
    assert scan_all(S, ls, ci) == [b"ERROR x", b"error", b"ErRoR"]
    assert scan_all(S, ls, [([b"ERROR"], False, True)]) == [b"ERROR x", b"error", b"ErRoR"]
    # non-ASCII bytes compare exactly: \xc3\x89 (E acute) is not \xc3\xa9 (e acute)
    assert scan_all(S, ls, [([b"\xc3\xa9t"], False, True)]) == [b"\xc3\xa9t\xc3\xa9"]
    # only letters fold: '@' is not '`' and '[' is not '{'
    assert scan_all(S, ls, [([b"@["], False, True)]) == [b"@["]
    assert scan_all(S, ls, [([b"`{"], False, True)]) == [b"`{"]


def test_large_random_blocks_match_oracle(S):
    """Long lines and many entries exercise the vector loops and their tails."""
    rnd = random.Random(7)
    words = [b"GET", b"error", b"Error", b"ERROR", b"timeout", b"ok", b"id=", b"\xc3\xa9"]
    ls = []
    for _ in range(600):
        k = rnd.randint(0, 40)
        ls.append(b" ".join(rnd.choice(words) for _ in range(k)) + b" %d" % rnd.randint(0, 999))
    ts = sorted(rnd.randint(0, 1000) for _ in ls)
    raw = _block_py.encode_entries(ts, ls)
    text = b"".join(ls)
    for _ in range(40):
        a = rnd.randrange(len(text) - 10)
        needle = text[a:a + rnd.randint(1, 9)]
        for clauses in (
            [([needle], False, False)],
            [([needle.upper()], False, True)],
            [([needle], True, rnd.random() < 0.5), ([b"error", b"ok"], False, True)],
        ):
            start, end = rnd.randint(0, 500), rnd.randint(400, 1200)
            got = S.scan_raw(raw, S.Filter(clauses), start, end)
            assert got == oracle(ts, ls, [None] * len(ts), clauses, start, end)


# --- argument checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    "clauses,exc",
    [
        (b"abc", TypeError),
        ([b"abc"], TypeError),
        ([(b"abc", False, False)], TypeError),  # needles must be a sequence, not bytes
        ([(["abc"], False, False)], TypeError),  # a needle must be bytes
        ([([b"a"], 0, False)], TypeError),
        ([([b"a"], False, None)], TypeError),
        ([([b"a"], False)], ValueError),
        (None, TypeError),
    ],
)
def test_filter_argument_errors(S, clauses, exc):
    with pytest.raises(exc):
        S.Filter(clauses)


def test_filter_is_a_value(S):
    a = S.Filter([[[b"x"], False, True]])
    assert a.clauses == (((b"x",), False, True),)
    assert a == S.Filter([((b"x",), False, True)]) and hash(a) == hash(S.Filter(a.clauses))
    assert a != S.Filter([])


def test_scan_argument_errors(S):
    raw = _block_py.encode_entries([1], [b"x"])
    flt = S.Filter([])
    other = (_scan_py if S is not _scan_py else (_C or _scan_py)).Filter([])
    if type(other) is not type(flt):
        with pytest.raises(TypeError):
            S.scan_raw(raw, other, 0, 10)
    with pytest.raises(TypeError):
        S.scan_raw(raw, "x", 0, 10)
    with pytest.raises(TypeError):
        S.scan_raw(raw, flt, 0.5, 10)
    with pytest.raises(CorruptionError):
        S.scan_raw(raw[:-1], flt, 0, 10)
    with pytest.raises(CorruptionError):
        S.scan_raw(raw[:-1], flt, 0, 10, limit=0)  # validated even when nothing is wanted
    c, b = array.array("q", [0]), array.array("q", [0])
    with pytest.raises(ValueError):
        S.count_raw(raw, flt, 0, 10, 0, 0, c, b)
    with pytest.raises(OverflowError):
        S.count_raw(raw, flt, 0, 10, 2**63, 1, c, b)
    with pytest.raises(ValueError):
        S.count_raw(raw, flt, 0, 10, 0, 1, c, array.array("q", [0, 0]))
    with pytest.raises(TypeError):
        S.count_raw(raw, flt, 0, 10, 0, 1, array.array("i", [0]), b)
    with pytest.raises(TypeError):
        S.count_raw(raw, flt, 0, 10, 0, 1, bytes(8), b)
    with pytest.raises(TypeError):
        S.count_raw(raw, flt, 0, 10, 0, 1, memoryview(array.array("q", [0] * 4))[::2], b)
    assert S.count_raw(raw, flt, 0, 10, 0, 1, c, b) == 1 and (c[0], b[0]) == (1, 1)


def test_count_raw_extreme_timestamps(S):
    raw = _block_py.encode_entries([INT64_MIN, 0, INT64_MAX], [b"a", b"bb", b"ccc"])
    c, b = array.array("q", [0] * 4), array.array("q", [0] * 4)
    n = S.count_raw(raw, S.Filter([]), INT64_MIN, 2**63, INT64_MIN, 2**62, c, b)
    # buckets (origin + k*w, origin + (k+1)*w]: INT64_MIN itself is in no bucket,
    # ts - origin reaches 2**64 - 1 without overflowing
    assert n == 2 and c.tolist() == [0, 1, 0, 1] and b.tolist() == [0, 2, 0, 3]
    c, b = array.array("q", [0] * 2), array.array("q", [0] * 2)
    assert S.count_raw(raw, S.Filter([]), INT64_MIN, 2**63, INT64_MAX - 1, 1, c, b) == 1
    assert c.tolist() == [1, 0] and b.tolist() == [3, 0]


# -- scan_block's reused per-thread buffer (compiled, FAST_LZ4) ---------------------


def _lz4_blocks(seed: int, n_blocks: int):
    rng = random.Random(seed)
    out = []
    for b in range(n_blocks):
        n = rng.randrange(1, 300)
        ts = [rng.randrange(-10**6, 10**6) for _ in range(n)]
        lines = [(b"line %d %s" % (i, rng.choice([b"needle", b"hay", b"NEEDLE", b""])))
                 * rng.randrange(1, 4) for i in range(n)]
        metas = [None if i % 3 else [(b"k", b"v%d" % i)] for i in range(n)]
        raw = _block_py.encode_entries(ts, lines, metas)
        out.append(_block_py.compress_block(raw, 1 + b % 2))  # lz4 and lz4-hc
    return out


@pytest.mark.skipif(_C is None or not getattr(_C, "FAST_LZ4", False),
                    reason="needs the compiled scanner with python-lz4's decompressor")
def test_fast_lz4_path_equals_the_slow_path_and_the_twin(monkeypatch):
    flt = _C.Filter([((b"needle",), False, True)])
    pflt = _scan_py.Filter([((b"needle",), False, True)])
    for stored in _lz4_blocks(7, 40):
        for rev, limit in ((False, -1), (True, 5)):
            fast = _C.scan_block(stored, flt, -500_000, 500_000, limit, rev)
            monkeypatch.setattr(_C, "FAST_LZ4", False)
            slow = _C.scan_block(stored, flt, -500_000, 500_000, limit, rev)
            monkeypatch.setattr(_C, "FAST_LZ4", True)
            assert fast == slow == _scan_py.scan_block(stored, pflt, -500_000, 500_000, limit, rev)
        # damage: every error is exactly the twin's (the fast path defers to it)
        for pos in (0, 1, 5, 9, len(stored) // 2, len(stored) - 1):
            bad = bytearray(stored)
            bad[pos] ^= 0x41
            errs = []
            for fn, f in ((_C.scan_block, flt), (_scan_py.scan_block, pflt)):
                try:
                    fn(bytes(bad), f, -500_000, 500_000)
                    errs.append(None)
                except CorruptionError as e:
                    errs.append((str(e), e.offset))
            assert errs[0] == errs[1]


@pytest.mark.skipif(_C is None, reason="needs the compiled scanner")
def test_scan_block_threads_each_use_their_own_buffer():
    import threading

    blocks = _lz4_blocks(11, 30)
    flt = _C.Filter([((b"needle",), False, False)])
    want = [_scan_py.scan_block(b, _scan_py.Filter([((b"needle",), False, False)]),
                                -10**7, 10**7) for b in blocks]
    errors = []

    def worker(order):
        for _ in range(20):
            for i in order:
                if _C.scan_block(blocks[i], flt, -10**7, 10**7) != want[i]:
                    errors.append(i)

    threads = [threading.Thread(target=worker, args=(list(range(30))[::step],))
               for step in (1, -1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.skipif(_C is None or not getattr(_C, "FAST_LZ4", False),
                    reason="needs the compiled scanner with python-lz4's decompressor")
def test_scan_block_at_reads_checks_and_scans_or_declines(tmp_path):
    import os

    blocks = _lz4_blocks(5, 12)
    path = tmp_path / "blocks.bin"
    path.write_bytes(b"pad" + b"".join(blocks))
    flt = _C.Filter([((b"needle",), False, True)])
    with open(path, "rb") as f:
        fd = f.fileno()
        at = 3
        for stored in blocks:
            codec, raw_len = stored[0], int.from_bytes(stored[1:5], "little")
            got = _C.scan_block_at(fd, at, len(stored), codec, raw_len, flt, -10**7, 10**7)
            assert got == _C.scan_block(stored, flt, -10**7, 10**7)
            # anything that disagrees with the index declines (the caller's checked
            # path then raises the precise error): codec, raw_len, length, EOF
            assert _C.scan_block_at(fd, at, len(stored), 3 - codec, raw_len, flt, 0, 1) is None
            assert _C.scan_block_at(fd, at, len(stored), codec, raw_len + 1, flt, 0, 1) is None
            assert _C.scan_block_at(fd, at + 1, len(stored), codec, raw_len, flt, 0, 1) is None
            at += len(stored)
        assert _C.scan_block_at(fd, at, 64, 1, 100, flt, 0, 1) is None  # past the end
    # a flipped payload byte: the crc fails, the fast path declines
    data = bytearray(path.read_bytes())
    data[3 + 20] ^= 0x10
    path.write_bytes(bytes(data))
    with open(path, "rb") as f:
        stored = blocks[0]
        assert _C.scan_block_at(f.fileno(), 3, len(stored), stored[0],
                                int.from_bytes(stored[1:5], "little"), flt, 0, 1) is None
    assert os.path.exists(path)
