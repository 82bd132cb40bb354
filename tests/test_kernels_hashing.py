"""CRC-32C, XXH64 and the stream fingerprint: known vectors and properties.

Every test runs on the pure-Python twin and, unless ``CHUNKSTORE_PUREPYTHON``
is set, on the compiled module.  The ``xxhash`` package is used here only as
an oracle.
"""

from __future__ import annotations

import importlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkstore import _hashing_py, _kernels


def _compiled(name: str):
    if _kernels.PURE_REQUESTED:
        return None
    try:
        return importlib.import_module(f"chunkstore.{name}")
    except ImportError:
        if _kernels.REQUIRE_EXT:
            raise
        return None


_C = _compiled("_hashing")
BACKENDS = [pytest.param(_hashing_py, id="py")]
if _C is not None:
    BACKENDS.append(pytest.param(_C, id="c"))

xxhash = pytest.importorskip("xxhash")


@pytest.fixture(scope="module", params=BACKENDS)
def h(request):
    return request.param


# RFC 3720 (iSCSI) appendix B.4 test vectors, plus the usual check value.
CRC_VECTORS = [
    (b"", 0),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize("data,expected", CRC_VECTORS)
def test_crc32c_known_vectors(h, data, expected):
    assert h.crc32c(data) == expected


def test_xxh64_known_vectors(h):
    assert h.xxh64(b"") == 0xEF46DB3751D8E999
    assert h.xxh64(b"", 0) == xxhash.xxh64_intdigest(b"", 0)
    for n in (1, 3, 4, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 1000):
        data = bytes((i * 31 + 7) & 0xFF for i in range(n))
        for seed in (0, 1, 2**63, 2**64 - 1):
            assert h.xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)


@given(data=st.binary(max_size=300), seed=st.integers(0, 2**64 - 1))
def test_xxh64_matches_reference(h, data, seed):
    assert h.xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)
    assert h.fingerprint_canonical(data) == xxhash.xxh64_intdigest(data, 0)


@given(data=st.binary(max_size=300), cut=st.integers(0, 300))
def test_crc32c_continues_from_a_previous_value(h, data, cut):
    cut = min(cut, len(data))
    whole = h.crc32c(data)
    assert h.crc32c(data[cut:], h.crc32c(data[:cut])) == whole
    assert h.crc32c(bytearray(data)) == whole
    assert h.crc32c(memoryview(data)) == whole


def test_crc32c_large_inputs_agree_with_pure():
    """The compiled module's interleaved hardware path (3 x 8 KiB strides) and its
    GIL-free path (>= 64 KiB) agree with the table-driven twin."""
    if _C is None:
        pytest.skip("compiled module not in use")
    data = os.urandom(3 * 3 * 8192 + 77)
    assert _C.crc32c(data) == _hashing_py.crc32c(data)
    for cut in (1, 8191, 8192, 3 * 8192, len(data) - 5):
        assert _C.crc32c(data[cut:], _C.crc32c(data[:cut])) == _hashing_py.crc32c(data)
    big = os.urandom(200_000)
    assert _C.crc32c(big, 0x12345678) == _hashing_py.crc32c(big, 0x12345678)
    assert _C.xxh64(big, 99) == xxhash.xxh64_intdigest(big, 99)


def test_fingerprint_is_xxh64_of_canonical_bytes(h):
    canonical = b"app\xffapi\xffenv\xffprod\xff"
    assert h.fingerprint_canonical(canonical) == 0x5FD68E2544215F6C  # FORMAT.md section 1
    assert h.fingerprint_canonical(canonical) == h.xxh64(canonical, 0)
    assert h.fingerprint_canonical(canonical) == xxhash.xxh64_intdigest(canonical, 0)


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda h: h.crc32c("text"), TypeError),
        (lambda h: h.crc32c(b"x", -1), ValueError),
        (lambda h: h.crc32c(b"x", 2**32), ValueError),
        (lambda h: h.crc32c(b"x", 1.5), TypeError),
        (lambda h: h.xxh64(12), TypeError),
        (lambda h: h.xxh64(b"x", -1), ValueError),
        (lambda h: h.xxh64(b"x", 2**64), ValueError),
        (lambda h: h.fingerprint_canonical(None), TypeError),
    ],
)
def test_argument_errors(h, call, exc):
    with pytest.raises(exc):
        call(h)
