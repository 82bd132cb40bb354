"""Suite 2: simulated power loss — only what was fsynced survives.

:class:`PowerLossFS` monkeypatches the ``os`` calls the store writes through
(``open``, ``write``, ``pwrite``, ``fsync``, ``ftruncate``, ``rename``,
``replace``, ``unlink``, ``mkdir``, ``rmdir``, ``close``) and keeps the
durable state of the store directory in the strict POSIX model:

* a file's durable content is what it held at its last ``fsync`` (a snapshot,
  so even a later truncation is undone);
* a directory's durable entries are what it listed at its last ``fsync``:
  creations, renames and unlinks since then are not durable, and a file
  unlinked without a durable unlink comes back with its durable content;
* a new directory (``mkdir``) exists only once its parent is fsynced.

The workload (``tests/hardening/workload.py``, in-process) runs until the
Nth state-changing call, which raises :class:`SimulatedCrash` instead (a
write may first put a torn prefix down); the store object is then abandoned,
the directory is replaced by its durable state — the unsynced tail of each
file cut, or filled with garbage, or partly kept — and a fresh store opens it.
It must open, read-only and as the writer, see the same entries, verify, and:

* with ``fsync="always"``: hold every acknowledged entry (and honour every
  acknowledged delete);
* with ``fsync="batch"``: hold every entry acknowledged more than
  ``sync_interval`` (plus scheduling slack) before the crash, or before the
  last acknowledged ``flush()``/seal/reopen began — only the documented
  window may be lost.

At every other crash point the power fails a second time, at a random call
of the recovery (torn-tail repair, orphan removal, sealing on close), before
the check: recovery itself must be crash-safe.

Quick mode scans N = 1, 2, ... for one small scripted workload per fsync
mode (every operation kind, a UTC day rollover so a new segment directory
is created), rotating the tail treatment; ``CHUNKSTORE_HARDENING_LONG=1``
scans several seeds of random operations with every tail treatment and a
recovery crash at every point.  fsync itself is not performed (the shim only
records it), which keeps the scan fast.
"""

from __future__ import annotations

import copy
import errno
import os
import random
import shutil
import stat
import threading
import time

import pytest
from hardening.workload import SELECT_ALL, T0, CheckFailed, Expected, S, Workload, patched_clock

import chunkstore

LONG = os.environ.get("CHUNKSTORE_HARDENING_LONG", "") not in ("", "0")
FAST = chunkstore.ACCELERATED
TAILS = ("cut", "garbage", "partial")
SYNC_INTERVAL = 0.02
#: thread scheduling slack on top of sync_interval for "batch"
SLACK = 0.2
#: "batch" runs in real time: operations are this far apart at most, so some
#: acknowledged entries are older than the window when the power goes
PAUSE = 0.06
OPTIONS = dict(block_size=512, chunk_target_size=2048, wal_segment_size=2048,
               segment_max_size=8192, wal_max_bytes=16384, head_memory_budget=0, codec="lz4")
#: the crash runs start just before a UTC midnight (the base store is older), so a
#: new day directory of segments is created in the middle of the run
MIDNIGHT = (T0 // (86400 * S) + 1) * 86400 * S
#: quick mode: a fixed script that reaches every operation (long mode: random operations)
SCRIPT = ("push", "append", "seal", "push", "delete", "push", "compact", "append", "push",
          "retention", "flush", "push", "reopen", "push", "seal", "delete", "append", "compact")


class SimulatedCrash(BaseException):
    """The power went out at this system call (BaseException: nothing may swallow it)."""


class PowerLossFS:
    """Record what fsync made durable under ``root``; crash at the ``crash_at``-th call.

    Files and directories are identified by a ``uid`` given when they are
    created (inode numbers are reused after unlink).  Only calls in the
    installing thread are counted; calls of other threads (the group-commit
    thread) still update the durable state.
    """

    MUTATING_OPEN = os.O_CREAT | os.O_TRUNC

    def __init__(self, root: str, crash_at: int | None, *, seed: int = 0):
        self.root = os.path.abspath(root)
        self.crash_at = crash_at
        self.rng = random.Random(seed)
        self.calls = 0
        self.crashed = False
        self.faults = 0
        self._uids: dict[int, int] = {}  # inode -> uid
        self._next_uid = 0
        self.content: dict[int, bytes] = {}  # uid -> durable bytes
        self.dirs: dict[int, dict[str, tuple[bool, int]]] = {}  # dir uid -> name -> (is_dir, uid)
        self.fds: set[int] = set()
        self._orig: dict[str, object] = {}
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self.current: dict[int, bytes] = {}  # uid -> bytes at the crash (for tail treatments)
        for dirpath, _dirnames, filenames in os.walk(self.root):
            self._snap_dir(dirpath)
            for f in filenames:
                p = os.path.join(dirpath, f)
                with open(p, "rb") as fh:
                    self.content[self._uid(os.lstat(p).st_ino)] = fh.read()

    # -- identities ------------------------------------------------------------
    def _uid(self, ino: int, new: bool = False) -> int:
        uid = self._uids.get(ino)
        if uid is None or new:
            uid = self._uids[ino] = self._next_uid
            self._next_uid += 1
        return uid

    def _snap_dir(self, path: str) -> None:
        listing = {}
        for name in os.listdir(path):
            st = os.lstat(os.path.join(path, name))
            listing[name] = (stat.S_ISDIR(st.st_mode), self._uid(st.st_ino))
        self.dirs[self._uid(os.lstat(path).st_ino)] = listing

    def _inside(self, path) -> bool:
        p = os.path.abspath(os.fsdecode(path))
        return p == self.root or p.startswith(self.root + os.sep)

    def _fd_path(self, fd: int) -> str | None:
        try:
            p = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        if p.endswith(" (deleted)"):
            p = p[: -len(" (deleted)")]
        return p if self._inside(p) else None

    # -- the fault point -------------------------------------------------------
    def _point(self, what: str) -> bool:
        """Count a state-changing call; True when the crash happens at it."""
        if self.crashed:
            raise OSError(errno.EIO, f"simulated power loss: {what} after the crash")
        if threading.get_ident() != self._thread:
            return False
        self.calls += 1
        if self.crash_at is not None and self.calls >= self.crash_at:
            self.crashed = True
            self.faults += 1
            return True
        return False

    # -- wrappers ----------------------------------------------------------------
    def install(self) -> PowerLossFS:
        o = self._orig
        for name in ("open", "write", "writev", "pwrite", "fsync", "fdatasync", "ftruncate",
                     "rename", "replace", "unlink", "remove", "mkdir", "rmdir", "close"):
            o[name] = getattr(os, name)

        def _open(path, flags, mode=0o777, *, dir_fd=None):
            inside = dir_fd is None and self._inside(path)
            if inside and flags & self.MUTATING_OPEN:
                existed = os.path.lexists(path)
                if self._point(f"open {path}"):
                    raise SimulatedCrash(f"open {path}")
                fd = o["open"](path, flags, mode)
                if not existed:
                    self._uid(os.fstat(fd).st_ino, new=True)
            else:
                if self.crashed and inside:
                    raise OSError(errno.EIO, "simulated power loss")
                fd = o["open"](path, flags, mode, dir_fd=dir_fd)
            if inside:
                self.fds.add(fd)
            return fd

        def _write(fd, data):
            if self._fd_path(fd) is not None and self._point("write"):
                self._torn(lambda part: o["write"](fd, part), data)
            return o["write"](fd, data)

        def _writev(fd, bufs):  # one write of the buffers, torn the same way
            return _write(fd, b"".join(bytes(b) for b in bufs))

        def _pwrite(fd, data, offset):
            if self._fd_path(fd) is not None and self._point("pwrite"):
                self._torn(lambda part: o["pwrite"](fd, part, offset), data)
            return o["pwrite"](fd, data, offset)

        def _fsync(fd):
            path = self._fd_path(fd)
            if path is None:
                return None
            if self._point(f"fsync {path}"):
                raise SimulatedCrash(f"fsync {path}")
            self._record_fsync(fd)  # the real fsync is not needed to simulate a power loss
            return None

        def _ftruncate(fd, length):
            if self._fd_path(fd) is not None and self._point("ftruncate"):
                raise SimulatedCrash("ftruncate")
            return o["ftruncate"](fd, length)

        def _two(name):
            def f(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
                if self._inside(src) and self._point(f"{name} {src}"):
                    raise SimulatedCrash(f"{name} {src}")
                return o[name](src, dst)
            return f

        def _one(name):
            def f(path, *args, **kw):
                inside = self._inside(path)
                if inside and self._point(f"{name} {path}"):
                    raise SimulatedCrash(f"{name} {path}")
                r = o[name](path, *args, **kw)
                if inside and name == "mkdir":
                    self._uid(os.lstat(path).st_ino, new=True)
                return r
            return f

        def _close(fd):
            self.fds.discard(fd)
            return o["close"](fd)

        os.open = _open
        os.write = _write
        os.writev = _writev
        os.pwrite = _pwrite
        os.fsync = _fsync
        os.fdatasync = _fsync
        os.ftruncate = _ftruncate
        os.rename = _two("rename")
        os.replace = _two("replace")
        for name in ("unlink", "remove", "mkdir", "rmdir"):
            setattr(os, name, _one(name))
        os.close = _close
        return self

    def uninstall(self) -> None:
        for name, f in self._orig.items():
            setattr(os, name, f)
        self._orig = {}

    def _torn(self, write, data) -> None:
        """The crash hits a write: maybe a prefix of it reaches the file first."""
        view = memoryview(data).cast("B")
        if len(view) > 1 and self.rng.random() < 0.5:
            write(view[: self.rng.randrange(1, len(view))])
        raise SimulatedCrash("write")

    def _record_fsync(self, fd: int) -> None:
        with self._lock:
            st = os.fstat(fd)
            path = self._fd_path(fd)
            if stat.S_ISDIR(st.st_mode):
                self._snap_dir(path)
            else:
                with open(f"/proc/self/fd/{fd}", "rb") as fh:
                    self.content[self._uid(st.st_ino)] = fh.read()

    # -- after the crash -----------------------------------------------------------
    def freeze(self) -> None:
        """Stop all changes; remember what each file holds now (for the tail treatments)."""
        self.crashed = True
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    with open(p, "rb") as fh:
                        self.current[self._uid(os.lstat(p).st_ino)] = fh.read()
                except OSError:
                    pass

    def close_fds(self) -> None:
        for fd in list(self.fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()

    def materialise(self, tail: str) -> dict:
        """Replace ``root`` by its durable state; ``tail`` treats each file's unsynced tail.

        ``cut``: the file ends at its last synced length; ``garbage``: the
        unsynced bytes are random; ``partial``: a random prefix of them made it.
        Returns counts of what was undone.
        """
        undone = {"files": 0, "bytes_cut": 0, "tails": 0}
        root_uid = self._uid(os.lstat(self.root).st_ino)
        for name in os.listdir(self.root):
            p = os.path.join(self.root, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        rng = self.rng

        def build(dir_uid: int, path: str) -> None:
            for name, (is_dir, uid) in self.dirs.get(dir_uid, {}).items():
                p = os.path.join(path, name)
                if is_dir:
                    os.mkdir(p)
                    build(uid, p)
                    continue
                data = self.content.get(uid, b"")
                cur = self.current.get(uid)
                if cur is not None and len(cur) > len(data):
                    extra = len(cur) - len(data)
                    undone["bytes_cut"] += extra
                    if tail == "garbage":
                        data += rng.randbytes(extra)
                        undone["tails"] += 1
                    elif tail == "partial" and cur.startswith(data):
                        data = cur[: len(data) + rng.randint(0, extra)]
                        undone["tails"] += 1
                with open(p, "wb") as fh:
                    fh.write(data)

        build(root_uid, self.root)
        return undone


# ---------------------------------------------------------------------------


def _snapshot(store) -> list:
    return sorted((e.ts, e.raw, tuple(sorted(e.labels.items())))
                  for e in store.query(SELECT_ALL, direction="forward"))


def prepare_base(tmp_path, fsync: str, seed: int) -> tuple[str, Expected]:
    """A store with sealed chunks, a tombstone and unsealed WAL data, left as if killed."""
    base = str(tmp_path / "base")
    model = Expected()

    def emit(kind, n, payload):
        model.feed(kind, n, payload, 0.0)

    w = Workload(base, seed, emit=emit, fsync="always", options=OPTIONS, max_push=8)
    with patched_clock(w.now):
        w.open()
        for op in ("push", "push", "seal", "push", "delete", "append", "push"):
            w.step(op)
        w.store._crash_for_tests()
    model.end_session()
    return base, model


def crash_during_recovery(work: str, crash_at: int, seed: int, tail: str) -> bool:
    """Power loss again while a writer recovers the store (and closes it); True if it hit."""
    fs = PowerLossFS(work, crash_at, seed=seed)
    store = None
    fs.install()
    try:
        store = chunkstore.open(work, maintenance_interval=0, fsync="always")
        store.close()
    except BaseException:
        if not fs.crashed:
            raise
    finally:
        fs.freeze()
        if store is not None:
            store._crash_for_tests()
        fs.uninstall()
        fs.close_fds()
    fs.materialise(tail)
    return fs.faults > 0


def run_crash_point(base: str, base_model: Expected, work: str, fsync: str, seed: int,
                    crash_at: int | None, tail: str, script,
                    recovery_crash: int | None = None) -> tuple[bool, int, dict]:
    """One crash at call ``crash_at``; returns (crashed, entries checked, undo counts).

    With ``recovery_crash``, the power fails once more at that call of the
    first recovery (repairs, orphan removal, sealing on close) before the check.
    """
    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(base, work)
    model = copy.deepcopy(base_model)
    cursor, next_id, floor = model.next_start()
    cursor = max(cursor, MIDNIGHT - 3_000_000)

    def emit(kind, n, payload):
        model.feed(kind, n, payload, time.monotonic())

    fs = PowerLossFS(work, crash_at, seed=seed * 7919 + (crash_at or 0))
    w = Workload(work, seed, emit=emit, cursor=cursor, next_id=next_id, floor=floor,
                 fsync=fsync, options=dict(OPTIONS, sync_interval=SYNC_INTERVAL), max_push=8)
    crashed = False
    pause_rng = random.Random(seed)
    fs.install()
    try:
        with patched_clock(w.now):
            w.open()
            ops = [None] * script if isinstance(script, int) else script
            for op in ops:
                w.step(op)
                if fsync == "batch":
                    time.sleep(pause_rng.uniform(0, PAUSE))
    except BaseException:
        # after the crash every call fails, so cleanup code may raise OSError over it
        if not fs.crashed:
            raise
        crashed = True
    finally:
        t_crash = time.monotonic()
        fs.freeze()
        if w.store is not None:
            w.store._crash_for_tests()  # the process is gone: stop its threads, drop its fds
        fs.uninstall()
        fs.close_fds()
    undone = fs.materialise(tail)
    model.end_session()
    if recovery_crash is not None:
        undone["recovery_crash"] = crash_during_recovery(work, recovery_crash, seed, tail)
    horizon = None if fsync == "always" else t_crash - SYNC_INTERVAL - SLACK
    if horizon is not None:  # entries of this run the window no longer covers
        undone["aged"] = sum(1 for _s, _t, a in model.entries.values()
                             if a is not None and 0 < a <= horizon)
    try:
        with chunkstore.open(work, read_only=True, maintenance_interval=0) as ro:
            ro_view = _snapshot(ro)
        with chunkstore.open(work, maintenance_interval=0) as s:
            rep = s.verify()
            assert rep.ok, f"verify after power loss: {rep}"
            s.index.check()
            checked = model.check(s, horizon=horizon)
            view = _snapshot(s)
        assert ro_view == view, (f"read-only sees {len(ro_view)} entries, the writer "
                                 f"{len(view)}")
    except (CheckFailed, AssertionError, chunkstore.ChunkstoreError, OSError) as exc:
        raise AssertionError(
            f"fsync={fsync} seed {seed}, crash at call {crash_at} ({tail} tails, "
            f"{undone}): {type(exc).__name__}: {exc}") from exc
    return crashed, checked, undone


def crash_scan(tmp_path, fsync: str, seeds, script, tails_per_point, max_points=None):
    totals = {"points": 0, "checked": 0, "bytes_cut": 0, "aged": 0, "recovery_crashes": 0}
    for seed in seeds:
        base, base_model = prepare_base(tmp_path, fsync, seed + 1000)
        work = str(tmp_path / "work")
        n = 1
        while max_points is None or n <= max_points:
            done = False
            rng = random.Random(seed * 1_000_003 + n)
            for tail in tails_per_point(n):
                # every other point: the power fails again during the recovery
                again = rng.randint(1, 30) if LONG or n % 2 else None
                crashed, checked, undone = run_crash_point(
                    base, base_model, work, fsync, seed, n, tail, script, again)
                totals["points"] += 1
                totals["checked"] += checked
                totals["bytes_cut"] += undone["bytes_cut"]
                totals["aged"] += undone.get("aged", 0)
                totals["recovery_crashes"] += undone.get("recovery_crash", False)
                done = done or not crashed
            if done:  # the workload finished before call n: that was the last crash point
                break
            n += 1
        shutil.rmtree(base)
    return totals


def _tails(n: int):
    return TAILS if LONG else (TAILS[n % 3],)


@pytest.fixture(autouse=True)
def _no_real_fsync(monkeypatch):
    """Nothing here needs real durability (the shim decides what survives): skip the disk."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)


def test_power_loss_with_fsync_always_keeps_every_acknowledged_entry(tmp_path):
    seeds = range(5) if LONG else [11]
    script = 40 if LONG else (SCRIPT if FAST else SCRIPT[:12])
    totals = crash_scan(tmp_path, "always", seeds, script, _tails)
    print(f"\npower loss (fsync=always): {totals['points']} crash points "
          f"({totals['recovery_crashes']} crashed again during recovery), "
          f"{totals['checked']} entry checks, {totals['bytes_cut']} unsynced bytes undone")
    assert totals["points"] > 20


def test_power_loss_with_fsync_batch_loses_only_the_window(tmp_path):
    seeds = range(2) if LONG else [12]
    script = 24 if LONG else SCRIPT[:12]
    # batch runs in real time: scan every third point in quick mode
    step = 1 if LONG else 3
    totals = crash_scan(tmp_path, "batch", seeds, script,
                        lambda n: _tails(n) if n % step == 0 else ())
    print(f"\npower loss (fsync=batch): {totals['points']} crash points "
          f"({totals['recovery_crashes']} crashed again during recovery), "
          f"{totals['checked']} entry checks ({totals['aged']} acknowledged before the window), "
          f"{totals['bytes_cut']} unsynced bytes undone")
    assert totals["points"] > 8 and totals["aged"] > 0


def test_regression_new_day_directory_is_durable(tmp_path):
    """A chunk in a new ``segments/<day>`` directory survives a power loss.

    The day directory was created without fsyncing ``segments/``: after the
    chunk was recorded and the WAL truncated, a power loss dropped the
    directory with the only copy of the entries.  Found by suite 2.
    """
    path = str(tmp_path / "s")
    opts = dict(fsync="always", maintenance_interval=0)
    with chunkstore.open(path, **opts) as s:
        s.append({"app": "a"}, "day one", ts=T0)
    fs = PowerLossFS(path, None).install()
    try:
        s = chunkstore.open(path, **opts)
        s.append({"app": "a"}, "day two", ts=MIDNIGHT + S)
        s.close()  # seals into segments/<next day>/, truncates the WAL
    finally:
        fs.freeze()
        fs.uninstall()
        fs.close_fds()
    fs.materialise("cut")
    with chunkstore.open(path, maintenance_interval=0) as s:
        assert [e.line for e in s.query('{app="a"}', direction="forward")] == [
            "day one", "day two"]
        assert s.verify().ok


def test_regression_torn_compaction_switch_is_all_or_nothing(tmp_path):
    """A power loss that keeps only a prefix of compaction's index-log append.

    Compaction switches with one append ``[CHUNK new..., DROP old]``; a torn
    append could keep the new CHUNK records without the DROP, and every
    compacted entry then appeared twice.  Appends of several records are now
    framed as a batch that replay applies whole or not at all.  Found by
    suite 2.
    """
    before, after, work = (str(tmp_path / n) for n in ("before", "after", "work"))
    opts = dict(block_size=256, chunk_target_size=4096, maintenance_interval=0)
    with chunkstore.open(before, **opts) as s:
        for r in range(6):
            s.push([({"app": "a"}, [(r * 100 + i, f"line {r} {i}") for i in range(10)]),
                    ({"app": "b"}, [(r * 100 + i, f"line {r} {i}") for i in range(10)])])
            s._seal(list(s.heads.values()))
    shutil.copytree(before, after)
    with chunkstore.open(after, **opts) as s:
        assert s.compact().chunks_before >= 12
    old_len = os.path.getsize(os.path.join(before, "index.log"))
    with open(os.path.join(after, "index.log"), "rb") as f:
        new_log = f.read()
    expected = sorted(f"line {r} {i}" for r in range(6) for i in range(10)) * 2
    for cut in range(old_len, len(new_log) + 1, 3):
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(before, work)  # nothing was unlinked yet: the old files are all there
        for d, _dirs, files in os.walk(after):  # the new chunks were fsynced before the append
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), after)
                if f.endswith(".seg") and not os.path.exists(os.path.join(work, rel)):
                    os.makedirs(os.path.dirname(os.path.join(work, rel)), exist_ok=True)
                    shutil.copy(os.path.join(d, f), os.path.join(work, rel))
        with open(os.path.join(work, "index.log"), "wb") as f:
            f.write(new_log[:cut])
        with chunkstore.open(work, read_only=True) as s:
            got = sorted(e.line for e in s.query('{app=~"a|b"}'))
        assert got == sorted(expected), f"index log torn at {cut} of {len(new_log)}"
