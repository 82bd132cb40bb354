"""Damaged and hostile blocks: CorruptionError, never wrong data or a crash.

- Every single-byte flip and every truncation of small stored blocks yields
  the exact original raw block or ``CorruptionError``; with the checksum
  forged to match, decoding still raises nothing but ``CorruptionError``.
- Every flip and truncation of raw blocks gives a decode or
  ``CorruptionError`` from every raw-block reader (decode, scan, count, replay).
- Hostile headers (huge declared counts and lengths) fail fast, without large
  allocations: checked under tracemalloc, and for the compiled modules in a
  subprocess with a capped address space, so a segfault or a runaway
  allocation fails the test instead of the test run.
"""

from __future__ import annotations

import array
import importlib
import os
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

from chunkstore import _block_py, _hashing_py, _kernels, _scan_py
from chunkstore.errors import CorruptionError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compiled(name: str):
    if _kernels.PURE_REQUESTED:
        return None
    try:
        return importlib.import_module(f"chunkstore.{name}")
    except ImportError:
        if _kernels.REQUIRE_EXT:
            raise
        return None


_BC, _SC = _compiled("_block"), _compiled("_scan")
BACKENDS = [pytest.param((_block_py, _scan_py), id="py")]
if _BC is not None and _SC is not None:
    BACKENDS.append(pytest.param((_BC, _SC), id="c"))


@pytest.fixture(scope="module", params=BACKENDS)
def mods(request):
    return request.param


def small_raws():
    enc = _block_py.encode_entries
    return [
        enc([], []),
        enc([1_700_000_000_000_000_000, 1_700_000_000_000_000_500], [b"GET /a 200", b""]),
        enc([5, 3, 5], [b"x", b"yy\n", b"\xff"], [None, ((b"k", b"v"),), ((b"", b"z"),)]),
        enc([-(2**63), 2**63 - 1], [b"ab" * 20, b"c"]),
    ]


def forge_crc(stored: bytes) -> bytes:
    body = stored[:-4]
    return body + struct.pack("<I", _hashing_py.crc32c(body))


def read_all(B, S, raw):
    """Run every raw-block reader; each must decode or raise CorruptionError."""
    flt = S.Filter([([b"a"], False, True)])
    for call in (
        lambda: B.decode_entries(raw),
        lambda: S.scan_raw(raw, flt, -(2**63), 2**63),
        lambda: S.scan_raw(raw, S.Filter([]), 0, 10, 1, True),
        lambda: S.count_raw(raw, flt, -(2**63), 2**63, 0, 7, array.array("q", [0] * 3),
                            array.array("q", [0] * 3)),
        lambda: B.BlockBuilder().extend_raw(raw),
    ):
        try:
            call()
        except CorruptionError as exc:
            assert exc.path is None and 0 <= exc.offset <= len(raw)


@pytest.mark.parametrize("codec", [0, 1, 2])
def test_every_flip_and_truncation_of_stored_blocks(mods, codec):
    B, S = mods
    for raw in small_raws():
        stored = B.compress_block(raw, codec)
        for k in range(len(stored)):
            for mask in (0x01, 0x80, 0xFF):
                data = bytearray(stored)
                data[k] ^= mask
                with pytest.raises(CorruptionError) as info:
                    B.decompress_block(bytes(data))
                assert info.value.offset == 0  # the checksum catches every flip
                # with a forged checksum the deeper checks must hold on their own
                try:
                    out = B.decompress_block(forge_crc(bytes(data)))
                except CorruptionError as exc:
                    assert 0 <= exc.offset < len(data)
                else:
                    assert len(out) == struct.unpack_from("<I", data, 1)[0]
                    read_all(B, S, out)
        for k in range(len(stored)):
            with pytest.raises(CorruptionError):
                B.decompress_block(stored[:k])
            with pytest.raises(CorruptionError):
                S.scan_block(stored[:k], S.Filter([]), 0, 1)
        assert B.decompress_block(stored) == raw


def test_every_flip_and_truncation_of_raw_blocks(mods):
    B, S = mods
    for raw in small_raws():
        for k in range(len(raw)):
            for mask in (0x01, 0x40, 0x80, 0xFF):
                data = bytearray(raw)
                data[k] ^= mask
                read_all(B, S, bytes(data))
            read_all(B, S, raw[:k])
            with pytest.raises(CorruptionError):
                B.decode_entries(raw[:k])


def hostile_raws():
    def uvarint(v):
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    return [
        uvarint(2**63 - 1) + b"\x00\x00",  # n far beyond the bytes present
        uvarint(2**64 - 1) + b"\x00\x00" + b"\x00" * 10,
        uvarint(5) + uvarint(2**40) + b"\x00" + b"\x00" * 10,  # text_len
        uvarint(1) + b"\x00" + uvarint(2**50) + b"\x00\x00",  # meta_len
        uvarint(2) + uvarint(3) + b"\x00" + b"\x02\x02" + uvarint(2**62) + b"\x00" + b"abc",
        # metadata: 1000 pairs declared in a 3-byte section, then 5000 (over the limit)
        b"\x01\x00\x03\x00\x00" + uvarint(1000) + b"\x00",
        b"\x01\x00\x04\x00\x00" + uvarint(5000) + b"\x00\x00",
        # a metadata name length far beyond the section
        b"\x01\x00\x08\x00\x00\x01" + uvarint(2**33) + b"\x00\x00",
        b"\xff" * 64,
    ]


def test_hostile_raw_blocks_fail_fast_without_allocating(mods):
    B, S = mods
    tracemalloc.start()
    try:
        for raw in hostile_raws():
            t0 = time.perf_counter()
            with pytest.raises(CorruptionError):
                B.decode_entries(raw)
            with pytest.raises(CorruptionError):
                S.scan_raw(raw, S.Filter([]), -(2**63), 2**63)
            with pytest.raises(CorruptionError):
                B.BlockBuilder().extend_raw(raw)
            assert time.perf_counter() - t0 < 5.0  # fails fast, not a hang (loaded CI, tracemalloc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_hostile_stored_headers(mods):
    B, _ = mods
    raw = _block_py.encode_entries([1], [b"x"])
    stored = bytearray(B.compress_block(raw, 1))
    for field, value, offset in ((1, 0xFFFFFFFF, 1), (5, 0xFFFFFFFF, 5), (5, 0, 5)):
        data = bytearray(stored)
        struct.pack_into("<I", data, field, value)
        with pytest.raises(CorruptionError) as info:
            B.decompress_block(forge_crc(bytes(data)))
        assert info.value.offset == offset
    data = bytearray(stored)
    data[0] = 7
    with pytest.raises(CorruptionError) as info:
        B.decompress_block(forge_crc(bytes(data)))
    assert info.value.offset == 0 and "unknown codec 7" in str(info.value)


CHILD = textwrap.dedent(
    """
    import array, resource, struct, sys
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    from chunkstore import _block as B, _scan as S, _hashing_py
    from chunkstore.errors import CorruptionError
    import test_kernels_corruption as t

    # Cap the address space: a runaway allocation becomes a MemoryError.
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), resource.RLIM_INFINITY))

    n = 0
    for raw in t.small_raws():
        for codec in (0, 1, 2):
            stored = B.compress_block(raw, codec)
            for k in range(len(stored)):
                for mask in (0x01, 0x80, 0xFF):
                    data = bytearray(stored)
                    data[k] ^= mask
                    try:
                        out = B.decompress_block(t.forge_crc(bytes(data)))
                    except CorruptionError:
                        continue
                    t.read_all(B, S, out)
                    n += 1
        for k in range(len(raw)):
            for mask in (0x01, 0x40, 0x80, 0xFF):
                data = bytearray(raw)
                data[k] ^= mask
                t.read_all(B, S, bytes(data))
                n += 1
            t.read_all(B, S, raw[:k])
    for raw in t.hostile_raws():
        for fn in (B.decode_entries, lambda r: S.scan_raw(r, S.Filter([]), 0, 1),
                   lambda r: B.BlockBuilder().extend_raw(r)):
            try:
                fn(raw)
            except CorruptionError:
                n += 1
            else:
                raise SystemExit("hostile block decoded")
    print("ok", n)
    """
)


def test_compiled_decoders_survive_corruption_in_a_subprocess():
    if _BC is None or _SC is None:
        pytest.skip("compiled kernels not in use")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, REPO, os.path.join(REPO, "tests")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.startswith("ok")
