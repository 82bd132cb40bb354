"""store.context (grep -B/-A), store.tail (follow) and store.verify (checksums)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import chunkstore


def test_context_before_and_after_in_same_stream(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        for i in range(100):
            s.append({"app": "a"}, f"a line {i}", ts=i * 10)
            s.append({"app": "b"}, f"b line {i}", ts=i * 10 + 5)
        hit = next(iter(s.query('{app="a"} |= "line 50"')))
        before, after = s.context(hit, before=3, after=2)
        assert [e.line for e in before] == ["a line 47", "a line 48", "a line 49"]
        assert [e.line for e in after] == ["a line 51", "a line 52"]
        first = next(iter(s.query('{app="a"}', direction="forward")))
        b, a = s.context(first, before=5, after=1)
        assert b == [] and [e.line for e in a] == ["a line 1"]


def test_tail_in_process_sees_new_entries(store_path):
    with chunkstore.open(store_path) as s:
        s.append({"app": "a"}, "old error", ts=100)
        stop = threading.Event()
        got = []

        def follow():
            for e in s.tail('{app="a"} |= "error"', start=0, poll_interval=0.02, stop=stop):
                got.append(e.line)
                if len(got) == 3:
                    stop.set()

        t = threading.Thread(target=follow)
        t.start()
        s.append({"app": "a"}, "new error 1", ts=200)
        s.append({"app": "a"}, "no match", ts=250)
        s.append({"app": "a"}, "new error 2", ts=300)
        t.join(10)
        assert got == ["old error", "new error 1", "new error 2"]


def test_tail_follows_writer_in_other_process(store_path):
    chunkstore.open(store_path).close()
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import chunkstore, time
        s = chunkstore.open({str(store_path)!r})
        for i in range(5):
            s.append({{"app": "w"}}, f"tick {{i}}", ts=1000 + i)
            s.flush()
            time.sleep(0.05)
        s.close()
    """)])
    r = chunkstore.open(store_path, read_only=True)
    got = []
    stop = threading.Event()
    for e in r.tail('{app="w"}', start=0, poll_interval=0.02, stop=stop):
        got.append(e.line)
        if len(got) == 5:
            break
    writer.wait(30)
    assert got == [f"tick {i}" for i in range(5)]
    r.close()


def test_verify_clean_store_then_flipped_byte(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        for i in range(2000):
            s.append({"app": "a"}, f"line number {i}", ts=i)
    with chunkstore.open(store_path, **small_opts) as s:
        rep = s.verify()
        assert rep.ok, str(rep)
        assert rep.chunks >= 2 and rep.blocks >= rep.chunks
    seg_dir = store_path / "segments"
    seg = next(p for p in seg_dir.rglob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x40
    seg.write_bytes(bytes(data))
    with chunkstore.open(store_path, **small_opts) as s:
        rep = s.verify()
        assert not rep.ok
        assert any(p.path == str(seg) and p.offset is not None for p in rep.problems)
        # a query touching the damaged block raises CorruptionError naming the file
        try:
            list(s.query('{app="a"}'))
        except chunkstore.CorruptionError as exc:
            assert exc.path == str(seg)
        else:
            raise AssertionError("damaged block was read without error")


def test_regression_verify_reports_a_damaged_length_before_valid_wal_records(store_path):
    """A length field in the middle of the newest WAL segment damaged to run past its end.

    A read-only ``verify()`` took it for an append in progress and said ok,
    while a writer's replay cut the valid records after it.  A valid record
    after it shows the length is damaged: every store reports it at the
    record's offset; a record only cut short (nothing valid after it) stays
    a quiet torn tail for a read-only store.
    """
    from chunkstore import wal

    with chunkstore.open(store_path, maintenance_interval=0) as s:
        for i in range(3):
            s.push([({"app": "a"}, [(i, f"line {i}")])])
        s._crash_for_tests()
    wal_dir = store_path / "wal"
    seg = str(wal_dir / wal.segment_name(wal.list_segments(wal_dir)[-1]))
    offsets = [off for _seq, off, _rec in wal.read_segments(wal_dir, repair=False)]
    assert len(offsets) == 4  # a STREAM record, three ENTRIES records
    original = open(seg, "rb").read()
    for k, off in enumerate(offsets):
        damaged = bytearray(original)
        damaged[off + 2] ^= 0xFF  # the length now runs ~16 MiB past the end of the file
        with open(seg, "wb") as f:
            f.write(damaged)
        last = k == len(offsets) - 1
        with chunkstore.open(store_path, read_only=True, maintenance_interval=0) as r:
            problems = r.verify().problems
            if last:  # looks like a record still being appended
                assert problems == []
            else:
                assert [(p.path, p.offset) for p in problems] == [(seg, off)], k
                assert isinstance(problems[0], chunkstore.CorruptionError)
                assert f"valid record follows at offset {offsets[k + 1]}" in str(problems[0])
        with chunkstore.open(store_path, maintenance_interval=0) as w:
            [p] = w.replay_report.problems
            assert (p.path, p.offset) == (seg, off)
            assert f"({len(original) - off} bytes discarded)" in str(p)
            assert ("valid record follows" in str(p)) is not last
            assert w.verify().ok  # the writer's replay cut the file there
            w._crash_for_tests()
    # A record really cut short mid-segment (nothing after it) is a quiet torn tail.
    with open(seg, "wb") as f:
        f.write(original[:offsets[2] + 10])
    with chunkstore.open(store_path, read_only=True, maintenance_interval=0) as r:
        assert r.verify().ok
