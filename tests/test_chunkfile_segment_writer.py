"""SegmentWriter: atomic creation, appends, fsync failures, torn tails, crashes.

Also the reader's view of a segment that grows while it is open, and many
threads sharing one reader.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from chunkstore._kernels import block, xxh64
from chunkstore.chunkfile import SegmentReader, SegmentWriter, encode_chunk
from chunkstore.chunkfile_format import encode_segment_header
from chunkstore.errors import CorruptionError, StoreClosedError

LABELS = b"app\xffwriter\xff"


def make_chunk(n: int, seed: int = 0) -> bytes:
    ts = [seed * 1000 + i for i in range(n)]
    lines = [b"line %d of chunk %d" % (i, seed) for i in range(n)]
    raw = block.encode_entries(ts, lines)
    stored = block.compress_block(raw, 1)
    chunk, _ = encode_chunk(xxh64(LABELS), LABELS, [(stored, n, ts[0], ts[-1],
                                                     sum(map(len, lines)))])
    return chunk


def read_all(path: str) -> list:
    with SegmentReader(path) as r:
        return list(r.walk())


def test_create_writes_the_header_atomically(tmp_path):
    path = str(tmp_path / "a.seg")
    (tmp_path / "a.seg.tmp").write_bytes(b"stale half-created segment")
    with SegmentWriter(path) as w:
        assert w.size == 16
    assert open(path, "rb").read() == encode_segment_header()
    assert not os.path.exists(path + ".tmp")
    with pytest.raises(FileExistsError):
        SegmentWriter(path)
    assert open(path, "rb").read() == encode_segment_header()


def test_append_returns_offsets_and_sync_tracks_durable_size(tmp_path):
    path = str(tmp_path / "a.seg")
    chunks = [make_chunk(3, s) for s in range(4)]
    with SegmentWriter(path) as w:
        offsets = [w.append(c) for c in chunks]
        assert w.synced_size == 16
        w.sync()
        assert w.synced_size == w.size == os.path.getsize(path)
    expected, pos = [], 16
    for c in chunks:
        expected.append(pos)
        pos += len(c)
    assert offsets == expected
    assert [m.offset for m in read_all(path)] == expected


def test_append_rejects_what_is_not_a_chunk(tmp_path):
    with SegmentWriter(str(tmp_path / "a.seg")) as w:
        for bad in (b"", b"CSCK" + bytes(200), make_chunk(2)[:-1]):
            with pytest.raises(ValueError):
                w.append(bad)
        assert w.size == 16


def test_closed_writer_raises(tmp_path):
    w = SegmentWriter(str(tmp_path / "a.seg"))
    w.close()
    w.close()  # idempotent
    with pytest.raises(StoreClosedError):
        w.append(make_chunk(1))
    with pytest.raises(StoreClosedError):
        w.sync()


def test_closed_reader_raises(tmp_path):
    path = str(tmp_path / "a.seg")
    SegmentWriter(path).close()
    r = SegmentReader(path)
    r.close()
    with pytest.raises(StoreClosedError):
        r.read_chunk_meta(16, 200)
    with pytest.raises(StoreClosedError):
        list(r.walk())


def test_fsync_failure_is_permanent(tmp_path, monkeypatch):
    path = str(tmp_path / "a.seg")
    w = SegmentWriter(path)
    good = w.append(make_chunk(2, 1))
    w.sync()
    w.append(make_chunk(2, 2))
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(errno.EIO, "injected fsync failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="injected"):
        w.sync()
    monkeypatch.setattr(os, "fsync", real_fsync)
    # never retried as if nothing happened
    with pytest.raises(OSError, match="earlier write or fsync failed"):
        w.sync()
    with pytest.raises(OSError, match="earlier write or fsync failed"):
        w.append(make_chunk(2, 3))
    w.close()  # closes without claiming durability
    end_of_good = good + len(make_chunk(2, 1))
    with SegmentWriter.open_existing(path, end_of_good) as w2:
        assert w2.size == end_of_good
        w2.append(make_chunk(2, 4))
    assert [m.min_ts for m in read_all(path)] == [1000, 4000]


def test_failed_write_cuts_the_file_back(tmp_path, monkeypatch):
    path = str(tmp_path / "a.seg")
    w = SegmentWriter(path)
    w.append(make_chunk(2, 1))
    size = w.size
    real_pwrite = os.pwrite
    calls = []

    def half_then_fail(fd, data, offset):
        calls.append(len(data))
        if len(calls) == 1:
            return real_pwrite(fd, bytes(data)[: len(data) // 2], offset)
        raise OSError(errno.ENOSPC, "injected: no space left")

    monkeypatch.setattr(os, "pwrite", half_then_fail)
    with pytest.raises(OSError, match="no space"):
        w.append(make_chunk(5, 2))
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert os.path.getsize(path) == size == w.size
    w.append(make_chunk(2, 3))  # still usable: the failure left no trace
    w.close()
    assert [m.min_ts for m in read_all(path)] == [1000, 3000]


def test_short_writes_are_completed(tmp_path, monkeypatch):
    path = str(tmp_path / "a.seg")
    real_pwrite = os.pwrite
    with SegmentWriter(path) as w:
        monkeypatch.setattr(os, "pwrite", lambda fd, d, off: real_pwrite(fd, bytes(d)[:7], off))
        w.append(make_chunk(4, 1))
        monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert len(read_all(path)) == 1


def test_open_existing_cuts_a_torn_tail(tmp_path):
    path = str(tmp_path / "a.seg")
    with SegmentWriter(path) as w:
        w.append(make_chunk(3, 1))
        w.append(make_chunk(3, 2))
        valid = w.size
    third = make_chunk(3, 3)
    with open(path, "ab") as f:
        f.write(third[: len(third) // 2])  # a crash in the middle of the write
    with SegmentWriter.open_existing(path) as w:
        assert w.size == valid
        assert w.append(third) == valid
    assert [m.min_ts for m in read_all(path)] == [1000, 2000, 3000]
    with pytest.raises(ValueError):
        SegmentWriter.open_existing(path, 3)
    with SegmentWriter.open_existing(path, 16) as w:  # the index knows no chunk here
        assert w.size == 16
    assert os.path.getsize(path) == 16


def test_concurrent_appends_and_reads(tmp_path):
    path = str(tmp_path / "a.seg")
    w = SegmentWriter(path)
    reader = SegmentReader(path)  # opened before the appends: must see them
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def appender(k):
        for i in range(20):
            chunk = make_chunk(2 + i % 3, k * 100 + i)
            off = w.append(chunk)
            with lock:
                results.append((off, chunk))

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.sync()

    errors = []

    def checker(part):
        try:
            for off, chunk in part:
                meta = reader.read_chunk_meta(off, len(chunk))
                for b in meta.blocks:
                    reader.read_raw_block(off, b)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=checker, args=(results[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({off for off, _ in results}) == 80
    assert sorted(off for off, _ in results)[-1] + len(max(results)[1]) == w.size
    assert reader.verify() == []
    reader.close()
    w.close()


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_chunkfile_segment_writer import make_chunk
    from chunkstore.chunkfile import SegmentWriter
    w = SegmentWriter(sys.argv[1])
    i = 0
    while True:
        chunk = make_chunk(1 + i % 7, i)
        off = w.append(chunk)
        w.sync()
        print(off + len(chunk), flush=True)
        i += 1
""")


def test_sigkill_while_appending_keeps_every_synced_chunk(tmp_path):
    """A real process appending and syncing in a loop, killed by SIGKILL."""
    path = str(tmp_path / "crash.seg")
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    root = os.path.dirname(tests)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(tests=tests), path],
                             stdout=subprocess.PIPE, text=True, env=env)
    synced = 16
    try:
        for _ in range(30):
            line = child.stdout.readline()
            assert line, "child died early"
            synced = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with SegmentWriter.open_existing(path) as w:
        assert w.size >= synced
        recovered = w.size
    metas = read_all(path)
    assert all(not isinstance(m, CorruptionError) for m in metas)
    assert metas[-1].offset + metas[-1].chunk_len == recovered
    assert [m.min_ts for m in metas] == [i * 1000 for i in range(len(metas))]
    # the index-driven reopen works from the last synced length too
    with SegmentWriter.open_existing(path, synced) as w:
        assert w.size == synced
