"""The C builder's text buffer on pages of its own (``src_c/cs_builder.h``).

From 4 KiB a head block's text buffer is an anonymous mapping, grown with
``mremap`` and unmapped when freed, so heads freed in every order under
memory pressure leave no holes in the malloc heap.  At most 16,384 buffers
are paged at a time; past that they are malloc'd.  These tests read the
process's real mappings (``/proc/self/maps``) and compare every block with the
pure-Python twin's.
"""

from __future__ import annotations

import sys

import pytest

from chunkstore import _block_py, _kernels

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="paged only on Linux"),
    pytest.mark.skipif(not _kernels.ACCELERATED, reason="a property of the C builder"),
]

PAGED_MAX = 16384  # CS_BB_PAGED_MAX


def mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def fill(bb, n_lines: int, width: int, seed: int) -> tuple[list[int], list[bytes]]:
    ts = [1_000 + i for i in range(n_lines)]
    lines = [(b"%d-%d " % (seed, i)).ljust(width, b"x") for i in range(n_lines)]
    for t, line in zip(ts, lines, strict=True):
        assert bb.append(t, line)
    return ts, lines


def test_paged_text_grows_moves_and_resets_with_the_same_blocks_as_the_twin():
    bb = _kernels.block.BlockBuilder()
    twin = _block_py.BlockBuilder()
    # 256 B -> 4 KiB (moves from malloc to a mapping) -> ... -> 2 MiB (mremap)
    for i in range(20_000):
        line = b"line %d " % i + b"y" * (i % 97)
        assert bb.append(i, line) and twin.append(i, line)
        if i in (10, 40, 300, 5_000):
            assert bb.build() == twin.build()
    assert bb.build() == twin.build()
    assert bb.memory_bytes() >= 2 * 1024 * 1024  # the 2 MiB mapping is counted
    bb._check()
    bb.reset()
    twin.reset()
    fill(bb, 50, 100, 1)
    fill(twin, 50, 100, 1)
    assert bb.build() == twin.build()


def test_paged_text_buffers_are_unmapped_when_freed():
    base = mappings()
    builders = []
    for k in range(2_000):
        bb = _kernels.block.BlockBuilder()
        fill(bb, 40, 200, k)  # 8 KiB of text: paged
        builders.append(bb)
    grown = mappings() - base
    # adjacent anonymous mappings may merge, so at least some, at most one each
    assert 0 < grown <= 2_000 + 16, grown
    del builders
    assert mappings() - base <= 16


def test_past_the_paged_limit_buffers_are_malloced_and_blocks_stay_exact():
    base = mappings()
    n = PAGED_MAX + 1_500
    builders = []
    for k in range(n):
        bb = _kernels.block.BlockBuilder()
        fill(bb, 10, 500, k)  # 5,000 bytes: an 8 KiB buffer
        builders.append(bb)
    # never more than the limit (the interpreter maps a few arenas meanwhile)
    assert mappings() - base <= PAGED_MAX + 64
    for k in (0, 1, PAGED_MAX - 1, PAGED_MAX, PAGED_MAX + 1, n - 1):
        twin = _block_py.BlockBuilder()
        fill(twin, 10, 500, k)
        assert builders[k].build() == twin.build(), k
    # freeing paged ones makes room again: a new buffer is paged
    del builders[:100]
    before = mappings()
    extra = [_kernels.block.BlockBuilder() for _ in range(50)]
    for k, bb in enumerate(extra):
        fill(bb, 10, 500, k)
    assert mappings() > before
    del builders, extra
    assert mappings() - base <= 16
