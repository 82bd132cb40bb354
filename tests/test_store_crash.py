"""Crash safety with real processes and real SIGKILL.

A child appends with ``fsync="always"`` and prints every acknowledged entry;
the parent kills it at a random moment, reopens the store and requires every
acknowledged entry exactly once, byte-exact, and nothing never written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import chunkstore

ROUNDS = int(os.environ.get("CHUNKSTORE_CRASH_ROUNDS", "4"))

CHILD = textwrap.dedent("""
    import sys, chunkstore
    path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = chunkstore.open(path, fsync="always", block_size=512, chunk_target_size=2048,
                        maintenance_interval=0)
    start = int(sys.argv[4])
    i = start
    out = sys.stdout
    while True:
        if mode == "append":
            app = f"a{i % 5}"
            s.append({"app": app}, f"entry {i} " + "x" * (i % 37), ts=i)
            out.write(f"{i}\\n")
        else:
            batch = [({"app": f"a{k}"}, [(j, f"entry {j} " + "x" * (j % 37))
                                        for j in range(i + k * 10, i + k * 10 + 10)])
                     for k in range(5)]
            r = s.push(batch)
            assert not r.rejected, r.rejected
            out.write(f"{i} {i + 50}\\n")
            i += 49
        out.flush()
        i += 1
""")


def expected_line(i: int) -> bytes:
    return f"entry {i} ".encode() + b"x" * (i % 37)


@pytest.mark.parametrize("mode", ["append", "push"])
def test_sigkill_loses_nothing_acknowledged(tmp_path, mode):
    path = str(tmp_path / "store")
    rng = random.Random(1234)
    acked: set[int] = set()
    start = 0
    for _round in range(ROUNDS):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, path, mode, "0", str(start)],
                                stdout=subprocess.PIPE, text=True)
        # let it write for a random while, reading acknowledgements as they come
        deadline = time.monotonic() + rng.uniform(0.3, 1.2)
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
        for ln in lines + rest.splitlines():
            parts = ln.split()
            if len(parts) == 1:
                acked.add(int(parts[0]))
            elif len(parts) == 2:
                acked.update(range(int(parts[0]), int(parts[1])))
        start = max(acked) + 1000 if acked else start + 1000
        with chunkstore.open(path, maintenance_interval=0) as s:
            got = [(e.ts, e.raw) for e in s.query('{app=~"a.*"}', direction="forward")]
        seen = [ts for ts, _ in got]
        assert len(seen) == len(set(seen)), "duplicated entries after crash"
        for ts, raw in got:
            assert raw == expected_line(ts), f"entry {ts} corrupted"
        missing = acked - set(seen)
        assert not missing, f"lost acknowledged entries: {sorted(missing)[:10]}"
    assert len(acked) > 20


def test_reopen_is_idempotent_after_crash(tmp_path):
    path = str(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path, "push", "0", "0"],
                            stdout=subprocess.PIPE, text=True)
    for _ in range(5):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    views = []
    for _ in range(3):
        with chunkstore.open(path, maintenance_interval=0) as s:
            views.append([(e.ts, e.raw) for e in s.query('{app=~".+"}')])
    assert views[0] == views[1] == views[2]
    assert len(views[0]) >= 250


def test_regression_damaged_index_log_keeps_unreferenced_segments(tmp_path):
    # hardening suite 3: a flipped byte in index.log made the next writer delete
    # every segment it no longer referenced, although they held the only copy.
    path = tmp_path / "store"
    with chunkstore.open(path, maintenance_interval=0) as s:
        s.append({"app": "a"}, "sealed line", ts=1)
    index = path / "index.log"
    data = bytearray(index.read_bytes())
    data[-3] ^= 0xFF  # inside the last record (the chunk record)
    index.write_bytes(bytes(data))
    with chunkstore.open(path, maintenance_interval=0) as s:
        assert s.replay_report.problems
        assert s.replay_report.orphan_segments_removed
    kept = list((path / "lost+found").glob("*.seg"))
    assert kept, "unreferenced segment was deleted instead of kept"
    from chunkstore.chunkfile import SegmentReader

    with SegmentReader(str(kept[0])) as r:
        assert r.verify() == []


STREAM_BEFORE_TRUNCATION_CHILD = textwrap.dedent("""
    import sys, chunkstore
    s = chunkstore.open(sys.argv[1], fsync="always", maintenance_interval=0, block_size=256,
                        chunk_target_size=512, wal_segment_size=1024)
    s.push([({"env": "quiet"}, [])])          # a stream with no entries yet
    for i in range(200):                      # another stream seals and truncates the WAL
        s.append({"app": "busy"}, "x" * 40 + str(i), ts=i)
    s.append({"env": "quiet"}, "first line of the quiet stream", ts=1000)
    print("acked", flush=True)
    sys.stdin.read()                          # wait to be killed
""")


def test_regression_stream_created_before_a_wal_truncation_survives_a_crash(tmp_path):
    # found by the SealingMachine state machine in CI: a stream created without
    # entries had its WAL STREAM record in a segment that truncation removed, so
    # its later entries named a stream replay never saw and were dropped.
    path = str(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", STREAM_BEFORE_TRUNCATION_CHILD, path],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"acked\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with chunkstore.open(path, maintenance_interval=0) as s:
        assert not s.replay_report.problems, s.replay_report.problems
        got = [(e.ts, e.line) for e in s.query('{env="quiet"}')]
        assert got == [(1000, "first line of the quiet stream")]
        assert len(list(s.query('{app="busy"}'))) == 200
