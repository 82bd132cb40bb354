"""One writer per directory, read-only openers see flushed data, threads are safe."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

import chunkstore
from chunkstore import StoreLockedError


def test_second_writer_in_process_is_refused(store_path):
    with chunkstore.open(store_path):
        with pytest.raises(StoreLockedError):
            chunkstore.open(store_path)
    # released on close
    chunkstore.open(store_path).close()


def test_second_writer_in_other_process_is_refused(store_path):
    with chunkstore.open(store_path):
        code = textwrap.dedent(f"""
            import chunkstore, sys
            try:
                chunkstore.open({str(store_path)!r})
            except chunkstore.StoreLockedError as e:
                print("locked:", e); sys.exit(3)
            sys.exit(0)
        """)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        assert "another writer holds the lock" in proc.stdout


def test_read_only_sees_flushed_data_from_writer_in_other_process(store_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import chunkstore, sys
            s = chunkstore.open({str(store_path)!r}, block_size=256)
            for line in sys.stdin:
                n = int(line)
                s.push([({{"app": "w"}}, [(i, f"line {{i}}") for i in range(n, n + 100)])])
                s.flush()
                print("ok", flush=True)
            s.close()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        writer.stdin.write("0\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "ok"
        r = chunkstore.open(store_path, read_only=True)
        assert len(list(r.query('{app="w"}'))) == 100
        writer.stdin.write("100\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "ok"
        assert len(list(r.query('{app="w"}'))) == 200
        with pytest.raises(chunkstore.ReadOnlyError):
            r.append({"app": "w"}, "x")
        writer.stdin.close()
        assert writer.wait(30) == 0
        # after the writer sealed everything and truncated its WAL
        assert [e.ts for e in r.query('{app="w"}', direction="forward")] == list(range(200))
        r.close()
    finally:
        if writer.poll() is None:
            writer.kill()


def test_read_only_on_missing_store_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        chunkstore.open(tmp_path / "nope", read_only=True)


def test_queries_run_concurrently_with_appends(store_path):
    s = chunkstore.open(store_path, block_size=1024, chunk_target_size=4096)
    stop = threading.Event()
    errors = []

    def reader():
        try:
            while not stop.is_set():
                got = [e.ts for e in s.query('{app="a"}', direction="forward")]
                assert got == sorted(got)
                assert len(set(got)) == len(got)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(3000):
        s.append({"app": "a"}, f"line {i}", ts=i)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(list(s.query('{app="a"}'))) == 3000
    s.close()
