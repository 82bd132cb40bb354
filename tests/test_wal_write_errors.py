"""A failed WAL write or fsync is fatal: the caller sees it, later writes refuse, replay is exact.

``os.write``/``os.fsync`` are made to fail on their Nth call on a file of the
test's directory (ENOSPC, EIO), as a full or failing disk would.

What survives a failure, checked below: after a failed ``os.write`` the
record is absent (or its partial bytes are a torn tail that repair cuts);
after a failed fsync of the record's own write its bytes are complete in the
file, so replay returns it; after a failure while creating a segment the
record was never written.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import time

import pytest

from chunkstore import wal, wal_records
from chunkstore.errors import ChunkstoreError


def rec(lsn: int) -> bytes:
    return wal_records.encode_entries(lsn, 1, bytes([lsn]) * 40)  # 58 bytes framed


def lsns(d):
    return [r.lsn for _s, _o, r in wal.read_segments(d, repair=True)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Injector:
    """Make ``os.<name>`` fail with ``err`` on its ``nth`` call on a file under ``root``."""

    def __init__(self, monkeypatch, root, name, nth, err, short=False):
        self.root = str(root)
        self.nth = nth
        self.err = err
        self.short = short
        self.calls = 0
        self.failed_path = None
        self.real = getattr(os, name)
        monkeypatch.setattr(os, name, self)

    def __call__(self, fd, *args):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if path.startswith(self.root):
            self.calls += 1
            if self.calls == self.nth:
                self.failed_path = path
                if self.short:  # write half, report it; the retry of the rest fails
                    self.half = len(args[0]) // 2
                    return self.real(fd, memoryview(args[0])[:self.half])
                raise OSError(self.err, os.strerror(self.err))
            if self.short and self.calls == self.nth + 1:
                raise OSError(self.err, os.strerror(self.err))
        return self.real(fd, *args)


def run_until_failure(d, **opts):
    """Write records until the writer fails; return (writer, acked lsns, failed lsn, error)."""
    acked = []
    try:
        w = wal.WALWriter(d, fsync="always", segment_size=150, **opts).open()
    except OSError as exc:
        return None, acked, None, exc
    for lsn in range(1, 30):
        try:
            w.write(rec(lsn))
        except OSError as exc:
            return w, acked, lsn, exc
        acked.append(lsn)
    return w, acked, None, None


def check_broken(w, code):
    with pytest.raises(wal.WALBrokenError) as info:
        w.write(rec(99))
    assert info.value.errno == code and info.value.cause.errno == code
    assert isinstance(info.value, ChunkstoreError) and isinstance(info.value, OSError)
    with pytest.raises(wal.WALBrokenError):
        w.sync()
    with pytest.raises(wal.WALBrokenError):
        w.cut()
    fds = open_fds()
    with pytest.raises(wal.WALBrokenError):
        w.close()  # releases the file, then says the tail may not be durable
    assert open_fds() == fds - 1
    w.close()  # idempotent


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("nth", range(1, 13))
def test_failed_write(tmp_path, monkeypatch, nth, code):
    inj = Injector(monkeypatch, tmp_path, "write", nth, code)
    w, acked, failed, exc = run_until_failure(tmp_path)
    assert exc is not None and exc.errno == code
    assert not isinstance(exc, wal.WALBrokenError)
    assert "wal:" in str(exc)
    if w is not None:
        check_broken(w, code)
    monkeypatch.setattr(os, "write", inj.real)
    assert lsns(tmp_path) == acked  # the failed record never reached the file
    with wal.WALWriter(tmp_path, fsync="always") as w2:
        w2.write(rec(50))
    assert lsns(tmp_path) == acked + [50]


@pytest.mark.parametrize("nth", [2, 3, 4, 5])
def test_short_write_then_error_leaves_a_torn_tail_that_repair_cuts(tmp_path, monkeypatch, nth):
    inj = Injector(monkeypatch, tmp_path, "write", nth, errno.EIO, short=True)
    w, acked, failed, exc = run_until_failure(tmp_path)
    assert failed is not None and exc.errno == errno.EIO
    check_broken(w, errno.EIO)
    monkeypatch.setattr(os, "write", inj.real)
    r = wal.read_segments(tmp_path, repair=True)
    assert [x.lsn for _s, _o, x in r] == acked
    if inj.failed_path.endswith(".wal"):  # half a record: a torn tail
        [p] = r.report.problems
        assert p.bytes_cut == inj.half and p.path == inj.failed_path
    else:  # half a new segment's header, in its temp file: removed on open
        assert inj.failed_path.endswith(".wal.tmp") and r.report.clean
        with wal.WALWriter(tmp_path, fsync="never"):
            pass
        assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))


@pytest.mark.parametrize("nth", range(1, 14))
def test_failed_fsync(tmp_path, monkeypatch, nth):
    inj = Injector(monkeypatch, tmp_path, "fsync", nth, errno.EIO)
    w, acked, failed, exc = run_until_failure(tmp_path)
    assert exc is not None and exc.errno == errno.EIO
    if w is not None:
        check_broken(w, errno.EIO)
    monkeypatch.setattr(os, "fsync", inj.real)
    # A record whose own fsync failed is complete in the file (replay returns
    # it); a failure while creating a segment happened before the write.
    record_fsync = inj.failed_path.endswith(".wal")
    assert lsns(tmp_path) == acked + ([failed] if record_fsync else [])


def test_background_fsync_failure_breaks_the_writer(tmp_path, monkeypatch, caplog):
    w = wal.WALWriter(tmp_path, fsync="batch", batch_interval=0.05).open()
    inj = Injector(monkeypatch, tmp_path, "fsync", 1, errno.EIO)
    with caplog.at_level(logging.ERROR, logger="chunkstore.wal"):
        w.write(rec(1))
        end = time.monotonic() + 5
        while w.broken is None and time.monotonic() < end:
            time.sleep(0.01)
    assert w.broken is not None and w.broken.errno == errno.EIO
    assert "background fsync" in caplog.text
    check_broken(w, errno.EIO)
    monkeypatch.setattr(os, "fsync", inj.real)
    assert lsns(tmp_path) == [1]


def test_broken_error_pickles_and_names_the_cause():
    e = wal.WALBrokenError(OSError(errno.ENOSPC, "No space left on device"), "/x/00000001.wal")
    e2 = pickle.loads(pickle.dumps(e))
    assert e2.errno == errno.ENOSPC and e2.filename == "/x/00000001.wal"
    assert "No space left on device" in str(e2) and "reopen" in str(e2)


def test_a_list_of_records_is_written_whole_across_short_writev_calls(tmp_path, monkeypatch):
    # WALWriter.write(list) uses os.writev (no joined copy); a regular file may
    # still take fewer bytes than asked, even mid-record: the rest must follow
    # in order, and more than IOV_MAX records must go in several calls.
    real = os.writev
    calls = []

    def short_writev(fd, bufs):
        calls.append(len(bufs))
        data = b"".join(bytes(b) for b in bufs)
        return real(fd, [data[:37]])  # at most 37 bytes a call

    w = wal.WALWriter(tmp_path, fsync="never").open()
    monkeypatch.setattr(os, "writev", short_writev)
    w.write([rec(lsn) for lsn in range(1, 6)])
    monkeypatch.setattr(os, "writev", real)
    n = wal._IOV_MAX + 10
    many = [wal_records.encode_entries(lsn, 1, b"e" * 40) for lsn in range(6, 6 + n)]
    w.write(many)
    w.close()
    assert len(calls) > 5  # short writes were resumed
    assert lsns(tmp_path) == list(range(1, 6 + n))
