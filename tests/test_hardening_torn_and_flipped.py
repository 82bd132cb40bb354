"""Suite 3: torn tails and bit flips in every file of a small real store.

A template store is built once: three streams whose timestamps only grow,
sealed into chunks over several segment files (so each chunk covers a time
range no other data of its stream touches), a delete with a line filter
(a tombstone), a delete without one (a DROP record), and unsealed entries
spread over several WAL segments, left as if the writer was killed.  Each
*unit* — one chunk, or one stream's unsealed head — is queried on its own
time range, so damage in one unit cannot hide another.

Each mutation (a byte XORed, or the file truncated at an offset of its last
records) is applied to a fresh copy, for every WAL segment, every chunk
segment file and ``index.log``.  Then, opened read-only and as the writer:

* the store opens (the only exception: a damaged 16-byte ``index.log``
  file header, which raises ``CorruptionError`` naming the file);
* every unit the damage does not reach returns exactly its entries;
* a unit the damage reaches returns a subset of its entries or raises
  ``CorruptionError`` with the path — never an entry that was not written,
  never a duplicate, never a crash;
* the damage is reported with the file's path and an offset at or before the
  damaged byte: by the writer's ``replay_report`` (torn tails it repaired)
  or ``store.verify()``.  A read-only ``verify()`` reports damage in chunk
  segments, in WAL segments other than the newest and in complete records of
  the newest WAL segment and ``index.log``; it stays silent on an incomplete
  last record there (a live writer may be appending it), which includes a
  record whose length field the damage made run past the end of the file;
* ``chunkstore verify`` (read-only, like the CLI always is) agrees with the
  read-only ``verify()``: exit status 1 and a ``DAMAGED <file>`` line naming
  the damaged file exactly when that reports a problem, 0 otherwise, and a
  damaged ``index.log`` header is a one-line error, not a traceback.

``index.log`` damage follows the documented design (FORMAT.md section 6,
"Reading a damaged log"): a damaged record is skipped and reading resumes at
the next place where two valid records follow each other, so only the
damaged record's chunks (or DROP/TOMBSTONE) are lost to the index, and
their entries come back only while the WAL still holds them; a damaged tail
is cut.  The suite measures that and prints a summary line.

Quick mode samples ~300 offsets per file (fewer without the compiled core);
``CHUNKSTORE_HARDENING_LONG=1`` flips every byte and truncates at every
offset of the last three records of each file.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
from dataclasses import dataclass, field

import pytest

import chunkstore
from chunkstore import wal as wal_mod
from chunkstore.cli import run_command
from chunkstore.errors import CorruptionError
from chunkstore.index_log import CHUNK, STREAM, read_index_log

LONG = os.environ.get("CHUNKSTORE_HARDENING_LONG", "") not in ("", "0")
SAMPLES = 300 if chunkstore.ACCELERATED else 60
STREAMS = ({"app": "t0"}, {"app": "t1"}, {"app": "t2", "env": "x"})
S = 10**9
OPTS = dict(block_size=300, chunk_target_size=1 << 30, wal_segment_size=1200,
            segment_max_size=2500, maintenance_interval=0, codec="lz4")


@dataclass
class Unit:
    """One chunk, or one stream's unsealed head: queried on its own time range."""

    name: str
    selector: str
    lo: int
    hi: int
    entries: list  # sorted (ts, raw)


@dataclass
class FileMap:
    """The records of one file: ``(start, end, unit names)``, in offset order."""

    rel: str
    kind: str  # "wal", "seg", "index"
    size: int
    records: list = field(default_factory=list)
    header: int = 16
    #: offsets where a cut leaves a shorter but valid file (no record is torn)
    clean_cuts: set = field(default_factory=set)
    #: offset of every ``[length u32][crc u32][body]`` frame (WAL and index.log)
    frames: list = field(default_factory=list)

    def units_from(self, offset: int) -> set:
        """Units of the record holding ``offset`` and of every later record."""
        if offset < self.header:
            return {u for _s, _e, us in self.records for u in us}
        out = set()
        for _start, end, us in self.records:
            if end > offset:
                out.update(us)
        return out

    def units_at(self, offset: int) -> set:
        """Units of the record holding ``offset`` (all of the file for its header)."""
        if offset < self.header:
            return {u for _s, _e, us in self.records for u in us}
        for start, end, us in self.records:
            if start <= offset < end:
                return set(us)
        return set()



@dataclass
class Template:
    path: str
    units: dict
    universe: dict  # selector -> {(ts, raw)} ever written (deleted ones too)
    files: list


def _selector(labels: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _line(k: int, i: int) -> str:
    tag = "drop-me" if i % 5 == 2 else "keep"
    return f"stream {k} entry {i} {tag} " + "xyz" * (i % 13)


def build_template(root: str) -> Template:
    path = os.path.join(root, "template")
    universe = {_selector(lb): set() for lb in STREAMS}
    base = 1_700_000_000 * S
    s = chunkstore.open(path, **OPTS)
    i = 0
    for _r in range(5):  # five chunks per stream, over several segment files
        for k, lb in enumerate(STREAMS):
            batch = [(base + (i + j) * S, _line(k, i + j)) for j in range(9)]
            s.push([(lb, batch)])
            universe[_selector(lb)].update((ts, ln.encode()) for ts, ln in batch)
        i += 9
        s._seal(list(s.heads.values()))
        s._truncate_wal()
    s.delete('{app="t1"} |= "drop-me"', base, base + 20 * S)  # a tombstone
    s.delete('{app="t2"}', base, base + 9 * S)  # drops t2's first chunk (a DROP record)
    for _r in range(4):  # unsealed, over several WAL segments
        for k, lb in enumerate(STREAMS):
            batch = [(base + (i + j) * S, _line(k, i + j)) for j in range(4)]
            s.push([(lb, batch)])
            universe[_selector(lb)].update((ts, ln.encode()) for ts, ln in batch)
        i += 4
    # units: every live chunk, and each stream's head
    units: dict[str, Unit] = {}
    chunk_unit: dict[int, str] = {}
    head_unit: dict[int, str] = {}
    for sid, entry in s.index.streams.items():
        sel = _selector(entry.labels.as_dict())
        for c in entry.chunks:
            name = f"chunk{c.chunk_id}"
            units[name] = Unit(name, sel, c.min_ts, c.max_ts + 1, [])
            chunk_unit[c.chunk_id] = name
        h = s.heads[sid]
        lo, hi = h.bounds()
        name = f"head{sid}"
        units[name] = Unit(name, sel, lo, hi + 1, [])
        head_unit[sid] = name
    for u in units.values():
        u.entries = sorted((e.ts, e.raw) for e in s.query(u.selector, u.lo, u.hi,
                                                          direction="forward"))
        assert u.entries, u.name
    # where the deleted chunk was: nothing may show up here (unless index.log damage
    # loses the DROP and the tombstone, which the suite counts)
    units["dropped"] = Unit("dropped", _selector(STREAMS[2]), base, base + 9 * S, [])
    flushed = {sid: e.flushed_lsn for sid, e in s.index.streams.items()}
    chunks = list(s.index.chunks.values())
    s._crash_for_tests()  # the WAL keeps the unsealed entries
    # where each unit's bytes are
    files: list[FileMap] = []
    by_seg: dict[str, list] = {}
    for c in chunks:
        by_seg.setdefault(c.segment, []).append((c.offset, c.offset + c.length,
                                                 [chunk_unit[c.chunk_id]]))
    for rel, recs in sorted(by_seg.items()):
        files.append(FileMap(rel, "seg", os.path.getsize(os.path.join(path, rel)), sorted(recs)))
    wal_dir = os.path.join(path, "wal")
    wal_recs: dict[int, list] = {}
    for seq, offset, rec in wal_mod.read_segments(wal_dir, repair=False):
        us = []
        if getattr(rec, "lsn", None) is not None and rec.lsn > flushed.get(rec.stream_id, 0):
            us = [head_unit[rec.stream_id]]
        wal_recs.setdefault(seq, []).append([offset, None, us])
    for seq, recs in sorted(wal_recs.items()):
        rel = f"wal/{wal_mod.segment_name(seq)}"
        size = os.path.getsize(os.path.join(path, rel))
        for j, r in enumerate(recs):
            r[1] = recs[j + 1][0] if j + 1 < len(recs) else size
        files.append(FileMap(rel, "wal", size, [tuple(r) for r in recs],
                             clean_cuts={16} | {r[1] for r in recs},
                             frames=_frame_starts(os.path.join(path, rel))))
    records, end, problem = read_index_log(os.path.join(path, "index.log"))
    assert problem is None
    appends = _index_log_appends(os.path.join(path, "index.log"))
    idx = FileMap("index.log", "index", end, clean_cuts={16} | {e for _s, e in appends.values()},
                  frames=_frame_starts(os.path.join(path, "index.log")))
    for r in records:
        us = []
        if r.type == CHUNK and r.value[0] in chunk_unit:
            us = [chunk_unit[r.value[0]]]
        elif r.type == STREAM:  # without it the stream's WAL entries have no stream to go to
            us = [head_unit[r.value[0]]]
        idx.records.append((*appends[r.offset], us))
    files.append(idx)
    assert sum(f.kind == "wal" for f in files) >= 2 and sum(f.kind == "seg" for f in files) >= 2
    return Template(path, units, universe, files)


def _frame_starts(path: str) -> list:
    """Offsets of the ``[length u32][crc u32][body]`` frames after the 16-byte header."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 16
    while pos + 8 <= len(data):
        out.append(pos)
        pos += 8 + int.from_bytes(data[pos:pos + 4], "little")
    assert pos == len(data), path
    return out


def _length_runs_past_end(fmap: FileMap, target: str, offset: int) -> bool:
    """The flipped byte is in a frame's length field, which now runs past the file's end.

    To a read-only reader that is the look of a record still being appended
    (FORMAT.md; ``verify._complete_bad_record``), so it may stay silent.  In
    a WAL segment only the last frame may: valid records after an earlier
    one tell the damage from a torn tail, and verify must report it.
    """
    for start in fmap.frames:
        if start <= offset < start + 4:
            if fmap.kind == "wal" and start != max(fmap.frames):
                return False
            with open(target, "rb") as f:
                f.seek(start)
                (length,) = struct.unpack("<I", f.read(4))
            return start + 8 + length > os.path.getsize(target)
    return False


def _index_log_appends(path: str) -> dict:
    """``{record offset: (start, end)}`` of the append (batch) holding each record.

    A batch marker frames the records of one multi-record append, which
    replay applies whole or not at all; damage anywhere in it loses it all.
    """
    import msgpack

    from chunkstore.index_log import BATCH

    with open(path, "rb") as f:
        data = f.read()
    pos, inside, start, members, out = 16, 0, 16, [], {}
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "little")
        if data[pos + 8] == BATCH:
            inside = msgpack.unpackb(data[pos + 9:pos + 8 + length])[0] + 1
        else:
            members.append(pos)
        pos += 8 + length
        inside = max(inside - 1, 0)
        if not inside:
            out.update((m, (start, pos)) for m in members)
            start, members = pos, []
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A scratch directory in memory when there is one: thousands of copies are made."""
    import tempfile

    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = tempfile.mkdtemp(prefix="chunkstore-torn-", dir="/dev/shm")
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield str(tmp_path_factory.mktemp("torn"))


@pytest.fixture(scope="module")
def template(scratch):
    return build_template(scratch)


@pytest.fixture(autouse=True)
def _no_real_fsync(monkeypatch):
    """Durability is not under test here: skip the disk's fsync latency (thousands of opens)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


# ---------------------------------------------------------------------------


@dataclass
class Outcome:
    lost: int = 0
    resurrected: int = 0
    unreadable: int = 0


def _read_units(store, tpl: Template, affected: set, what: str, allow_extra: bool,
                out: Outcome) -> None:
    for u in tpl.units.values():
        try:
            got = [(e.ts, e.raw) for e in store.query(u.selector, u.lo, u.hi,
                                                       direction="forward")]
        except CorruptionError as exc:
            assert exc.path and exc.offset is not None, \
                f"{what}: CorruptionError without a path and offset: {exc!r}"
            assert u.name in affected, f"{what}: undamaged {u.name} unreadable: {exc}"
            out.unreadable += 1
            continue
        if got == u.entries:
            continue
        assert len(got) == len(set(got)), f"{what}: {u.name} returned duplicates"
        written = tpl.universe[u.selector]
        wrong = [g for g in got if g not in written]
        assert not wrong, f"{what}: {u.name} returned entries never written: {wrong[:2]}"
        extra = set(got) - set(u.entries)
        missing = set(u.entries) - set(got)
        assert u.name in affected or (not missing and allow_extra), (
            f"{what}: undamaged {u.name}: {len(missing)} entries missing, {len(extra)} extra")
        assert not extra or allow_extra, f"{what}: {u.name}: {len(extra)} deleted entries back"
        out.lost += len(missing)
        out.resurrected += len(extra)


def _reported(problems, path: str, offset: int) -> bool:
    """Some problem names ``path`` and an offset at or before ``offset``."""
    want = os.path.realpath(path)
    for p in problems:
        ppath, poff = getattr(p, "path", None), getattr(p, "offset", None)
        if ppath and os.path.realpath(ppath) == want and poff is not None and poff <= offset:
            return True
    return False


def check_mutation(tpl: Template, work: str, fmap: FileMap, kind: str, offset: int,
                   rng: random.Random, out: Outcome) -> None:
    """Apply one mutation to a fresh copy of the template and check both openers."""
    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(tpl.path, work)
    target = os.path.join(work, fmap.rel)
    with open(target, "r+b") as f:
        if kind == "flip":
            f.seek(offset)
            b = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([b ^ rng.choice([0x01, 0x10, 0x80, 0xFF, rng.randrange(1, 256)])]))
            affected = fmap.units_at(offset) if fmap.kind == "seg" else fmap.units_from(offset)
        else:
            f.truncate(offset)
            affected = fmap.units_from(offset)
    what = f"{fmap.rel} {kind} at {offset}"
    is_index = fmap.kind == "index"
    # a cut at a record boundary leaves a shorter valid log (nothing to see), and
    # verify() checks only the chunks the index points at (dead bytes go unread)
    silent_ok = (kind == "trunc" and offset in fmap.clean_cuts) or (
        fmap.kind == "seg" and not affected)
    if is_index and offset < fmap.header:
        for ro in (True, False):
            with pytest.raises(CorruptionError) as ei:
                chunkstore.open(work, read_only=ro, maintenance_interval=0)
            assert ei.value.path and ei.value.path.endswith("index.log"), what
        code, _stdout, stderr = _cli_verify(work)
        assert code == 1 and "index.log" in stderr and "Traceback" not in stderr, (
            f"{what}: chunkstore verify exit {code}: {stderr!r}")
        return
    # read-only first: it must not modify anything
    with chunkstore.open(work, read_only=True, maintenance_interval=0) as ro:
        _read_units(ro, tpl, affected, what + " (read-only)", is_index, out)
        rep = ro.verify()
        newest_wal = fmap.kind == "wal" and fmap is max(
            (f for f in tpl.files if f.kind == "wal"), key=lambda f: f.rel)
        # a read-only reader cannot tell a torn tail of the newest WAL segment or
        # index.log from a record being appended (see the module docstring)
        in_progress_look = (fmap.kind == "index" or newest_wal) and (
            kind == "trunc" or _length_runs_past_end(fmap, target, offset))
        if not silent_ok and not in_progress_look:
            assert _reported(rep.problems, target, offset), \
                f"{what}: read-only verify() does not report it: {rep}"
    # the command line reads the store as a read-only store does, and says the same
    code, stdout, stderr = _cli_verify(work)
    assert code == (0 if rep.ok else 1), f"{what}: chunkstore verify exit {code}: {stderr!r}"
    if not rep.ok:
        assert f"DAMAGED {fmap.rel}\n" in stdout or not _reported(rep.problems, target, offset), \
            f"{what}: chunkstore verify does not name {fmap.rel}: {stdout}"
    w = chunkstore.open(work, maintenance_interval=0, fsync="never")  # no group-commit thread
    try:
        _read_units(w, tpl, affected, what + " (writer)", is_index, Outcome())
        rep = w.verify()
        problems = list(rep.problems) + list(w.replay_report.problems)
        if not silent_ok:
            assert _reported(problems, target, offset), \
                f"{what}: not reported by the writer: {problems}"
    finally:
        w._crash_for_tests()


def _cli_verify(store: str) -> tuple[int, str, str]:
    """``chunkstore verify STORE`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = run_command(["verify", store], out, err)
    return code, out.getvalue(), err.getvalue()


def _offsets(fmap: FileMap, rng: random.Random) -> list[tuple[str, int]]:
    last = fmap.records[-3:] if fmap.records else []
    tail_start = last[0][0] if last else fmap.header
    truncs = list(range(tail_start, fmap.size))
    flips = list(range(fmap.size))
    if not LONG:
        truncs = rng.sample(truncs, min(len(truncs), SAMPLES // 3))
        flips = rng.sample(flips, min(len(flips), SAMPLES - len(truncs)))
    return [("trunc", o) for o in sorted(truncs)] + [("flip", o) for o in sorted(flips)]


@pytest.mark.parametrize("kind", ["wal", "seg", "index"])
def test_torn_and_flipped_files_never_give_wrong_data(template, scratch, kind):
    rng = random.Random(f"torn-{kind}")
    out = Outcome()
    n = 0
    for fmap in template.files:
        if fmap.kind != kind:
            continue
        for mkind, offset in _offsets(fmap, rng):
            check_mutation(template, os.path.join(scratch, "work"), fmap, mkind, offset, rng, out)
            n += 1
    total = sum(len(u.entries) for u in template.units.values())
    print(f"\ntorn/flipped {kind}: {n} mutations of {sum(f.kind == kind for f in template.files)}"
          f" files; per mutation on average {out.lost / n:.1f} of {total} entries lost, "
          f"{out.resurrected / n:.1f} deleted entries back, {out.unreadable} unit reads "
          f"refused with CorruptionError")
    assert n > 0
