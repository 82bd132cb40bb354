"""``block.release_free_memory``: freed heap holes go back to the OS.

A head under memory pressure frees blocks in an order that leaves holes
glibc keeps (``chunkstore/store.py`` trims at most every 0.25 s there).
"""

from __future__ import annotations

import os
import platform
import sys
import threading

import pytest

from chunkstore import _block_py, _kernels

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc
@pytest.mark.parametrize("release", [_kernels.block.release_free_memory,
                                     _block_py.release_free_memory],
                         ids=["kernel", "twin"])
def test_release_free_memory_returns_holes_left_by_another_threads_frees(release):
    held: list[bytes] = []

    def allocate():  # like the cut-block worker: its own malloc arena
        held.extend(os.urandom(16) * 4096 for _ in range(3000))  # 3000 x 64 KiB

    t = threading.Thread(target=allocate)
    t.start()
    t.join()
    del held[::2]  # free every other block: holes, not a free top of heap
    before = rss_bytes()
    assert release() is True
    after = rss_bytes()
    held.clear()
    assert before - after > 50 << 20, (before, after)
