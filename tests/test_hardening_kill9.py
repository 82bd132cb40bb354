"""Suite 1: SIGKILL a writer doing a random mix of every operation, then check the store.

The child (``tests/hardening/workload.py``, ``fsync="always"``) appends, pushes,
flushes, seals, deletes (with and without line filters), compacts, applies
retention and reopens, announcing each operation before the call and
acknowledging it after.  The parent kills it at a random moment (sometimes
while it is still opening the store), then:

* opens the store read-only, then as the writer, then as the writer again:
  all three see exactly the same entries (recovery is idempotent, and a
  reader sees what the writer's repair produces);
* ``store.verify().ok`` and ``store.index.check()`` hold;
* every acknowledged entry is there unless an acknowledged or in-flight
  delete covers it or it is below an expiry cutoff; nothing covered by an
  acknowledged delete comes back; nothing is duplicated, nothing was never
  written, every line is byte-exact; an in-flight write recovery dropped
  never comes back in a later round (see ``Expected`` in the workload).

The store directory lives on across rounds, so each round also recovers
whatever the previous rounds left.  Quick mode runs 6 rounds;
``CHUNKSTORE_SOAK_ROUNDS=500 pytest -s tests/test_hardening_kill9.py`` is the
long run (``CHUNKSTORE_SOAK_SEED`` picks another seed) and prints a summary.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

from hardening.workload import SELECT_ALL, CheckFailed, Expected

import chunkstore

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKLOAD = REPO / "tests" / "hardening" / "workload.py"
ROUNDS = int(os.environ.get("CHUNKSTORE_SOAK_ROUNDS", "6"))
SEED = int(os.environ.get("CHUNKSTORE_SOAK_SEED", "20240901"))
#: longest a child runs before the kill (pure-Python mode is slower; give it longer)
MAX_RUN = 1.2 if chunkstore.ACCELERATED else 1.8


def _snapshot(store) -> list:
    return sorted((e.ts, e.raw, tuple(sorted(e.labels.items())))
                  for e in store.query(SELECT_ALL, direction="forward"))


def run_child(path: str, seed: int, start: tuple[int, int, int], kill_after: float,
              model: Expected) -> tuple[bool, int]:
    """Run one writer session, SIGKILL it after ``kill_after`` s; feed what it printed.

    Returns ``(killed, operations begun)``.
    """
    cursor, next_id, floor = start
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen(
        [sys.executable, str(WORKLOAD), path, str(seed), str(cursor), str(next_id), str(floor)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    chunks: list[bytes] = []
    err: list[bytes] = []
    readers = [threading.Thread(target=lambda: chunks.append(proc.stdout.read())),
               threading.Thread(target=lambda: err.append(proc.stderr.read()))]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=kill_after)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = True
    for t in readers:
        t.join()
    if not killed or proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"workload exited by itself (rc {proc.returncode}):\n"
                             f"{b''.join(err).decode(errors='replace')[-3000:]}")
    data = b"".join(chunks).decode()
    lines = data.split("\n")
    if lines and lines[-1]:
        lines = lines[:-1]  # killed in the middle of printing: that operation never started
    begun = 0
    for line in lines:
        if line:
            model.feed_line(line)
            begun += line.startswith("B ")
    model.end_session()
    return killed, begun


def check_round(path: str, model: Expected) -> int:
    """Reopen three ways and compare with the model; returns entries checked."""
    views = []
    if os.path.exists(os.path.join(path, "index.log")):
        with chunkstore.open(path, read_only=True, maintenance_interval=0) as ro:
            views.append(("read-only", _snapshot(ro)))
    with chunkstore.open(path, maintenance_interval=0) as s:
        s.index.check()
        rep = s.verify()
        assert rep.ok, f"verify after recovery: {rep}"
        checked = model.check(s)
        views.append(("writer", _snapshot(s)))
    with chunkstore.open(path, maintenance_interval=0) as s:
        assert s.verify().ok
        views.append(("writer again", _snapshot(s)))
    base_name, base = views[-1]
    for name, v in views:
        assert v == base, (f"reopen not idempotent: {name} sees {len(v)} entries, "
                           f"{base_name} {len(base)}: first difference "
                           f"{sorted(set(v) ^ set(base))[:3]}")
    return checked


def test_kill9_during_random_operations(tmp_path):
    path = str(tmp_path / "store")
    rng = random.Random(SEED)
    model = Expected()
    kills = ops = checked = 0
    t0 = time.monotonic()
    for rnd in range(ROUNDS):
        # a fifth of the kills land while the child is still starting or recovering
        delay = rng.uniform(0.05, 0.4) if rng.random() < 0.2 else rng.uniform(0.4, MAX_RUN)
        start = model.next_start()
        try:
            killed, begun = run_child(path, rng.randrange(1 << 30), start, delay, model)
            kills += killed
            ops += begun
            checked += check_round(path, model)
        except (CheckFailed, AssertionError) as exc:
            raise AssertionError(f"round {rnd} (seed {SEED}, kill after {delay:.2f}s): {exc}") \
                from exc
    print(f"\nkill9 soak: {ROUNDS} rounds, {kills} kills, {ops} operations begun, "
          f"{model.acked_writes} entries and {model.acked_deletes} deletes acknowledged, "
          f"{model.expiries} retention passes, {checked} entry checks, nothing lost, "
          f"{len(model.gone)} in-flight entries the crash lost stayed lost, "
          f"{time.monotonic() - t0:.1f}s")
    assert kills == ROUNDS
    assert model.acked_writes > 0


def test_regression_seal_across_a_segment_rotation(tmp_path):
    """Sealing several heads whose chunks rotate the day's segment mid-seal.

    ``_segment_for`` closes a full segment when the next chunk would go to
    it; ``_seal`` then called ``sync()`` on that closed writer, raised
    ``StoreClosedError`` and marked the store broken.  Found by suite 1.
    """
    opts = dict(block_size=256, chunk_target_size=1 << 20, segment_max_size=64,
                maintenance_interval=0, fsync="always")
    with chunkstore.open(tmp_path / "s", **opts) as s:
        for k in range(3):
            s.push([({"app": f"a{k}"}, [(1000 + i, f"line {k} {i}") for i in range(20)])])
        s._seal(list(s.heads.values()))  # three chunks, three segments
        assert len({c.segment for c in s.index.chunks.values()}) == 3
        s.append({"app": "a0"}, "after", ts=5000)
    with chunkstore.open(tmp_path / "s", maintenance_interval=0) as s:
        assert len(list(s.query('{app=~"a.+"}'))) == 61
        assert s.verify().ok
