"""Fuzz the WAL reader: replay, torn-tail repair, and a writer continuing after it.

The input is written as segment ``00000001.wal`` of a fresh ``wal/``
directory (followed, for inputs of odd length, by a valid segment 2, so the
"bad record in an earlier segment" path runs too).  Then:

1. ``read_segments(repair=False)`` replays it: it must never raise (damage is
   reported in ``report.problems``), and never modifies a file;
2. every ENTRIES record's raw block goes through ``decode_entries`` and
   ``BlockBuilder.extend_raw`` (what opening a store does), and the compiled
   kernels and pure-Python twins must agree;
3. ``read_segments(repair=True)`` returns the same records, and a second
   repairing replay finds nothing left to repair (repair is idempotent and
   cuts only what the first replay reported);
4. a ``WALWriter`` opens the repaired log and appends a record; a last replay
   returns the old records followed by the new one;
5. the same files as the ``wal/`` of a whole store: it opens read-only and as
   the writer (a damaged or hostile record is a problem in ``replay_report``,
   never a failed open), ``verify()`` and a query of every stream run, and
   every problem has a path and an offset (a :class:`CorruptionError`, or the
   :class:`~chunkstore.wal.WALProblem` of a replay).
   Whatever a strict replay (``tail_ok=False``) finds, the writer reports;
   so does a read-only ``verify()``, unless it is an incomplete last record
   of the newest segment with no valid record after it (an append in
   progress, FORMAT.md section 5).

Allowed: :class:`CorruptionError` from the kernels (reported by replay, never
raised).  Anything else escaping, or a failed oracle, is a finding.

Run: ``python fuzz/fuzz_wal_reader.py [--hypothesis] [--seconds N]``.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzzlib  # noqa: E402
from fuzzlib import Finding  # noqa: E402

import chunkstore  # noqa: E402
from chunkstore import _block_py, wal, wal_records  # noqa: E402
from chunkstore._kernels import crc32c  # noqa: E402
from chunkstore.errors import CorruptionError  # noqa: E402

NAME = "wal_reader"

BLOCKS = [_block_py]
try:
    from chunkstore import _block as _block_c  # type: ignore[attr-defined]
except ImportError:
    pass
else:
    BLOCKS.insert(0, _block_c)

_SCRATCH = fuzzlib.scratch_dir(NAME)
_WAL = os.path.join(_SCRATCH, "wal")
_STORE = os.path.join(_SCRATCH, "store")
_EMPTY_STORE = os.path.join(_SCRATCH, "empty-store")
_LAST = wal_records.encode_entries(1 << 40, 1, _block_py.encode_entries([7], [b"tail"]))
_SEGMENT_2 = wal.segment_header(2) + wal_records.encode_entries(
    1 << 30, 1, _block_py.encode_entries([1], [b"second segment"]))


def _files() -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(_WAL)):
        with open(os.path.join(_WAL, name), "rb") as f:
            out[name] = f.read()
    return out


def _replay(repair: bool):
    r = wal.read_segments(_WAL, repair=repair)
    records = [(seq, off, type(rec).__name__, rec[0], rec[1], bytes(rec[2]))
               for seq, off, rec in r]
    return records, r.report, r


def _kernel_outcome(fn):
    try:
        return ("ok", fn())
    except CorruptionError as exc:
        return ("corrupt", exc.offset)


def _check_raw(raw: bytes) -> None:
    outcomes = []
    for b in BLOCKS:
        builder = b.BlockBuilder()
        outcomes.append((_kernel_outcome(lambda b=b: b.decode_entries(raw)),
                         _kernel_outcome(lambda bb=builder: bb.extend_raw(raw)),
                         builder.entries(), builder.build()))
        builder._check()
    if any(o != outcomes[0] for o in outcomes[1:]):
        raise Finding(f"WAL entries: the backends disagree on a raw block: {outcomes!r}"[:600])


def check(data: bytes) -> bool:
    shutil.rmtree(_WAL, ignore_errors=True)
    os.makedirs(_WAL)
    with open(os.path.join(_WAL, wal.segment_name(1)), "wb") as f:
        f.write(data)
    if len(data) % 2:
        with open(os.path.join(_WAL, wal.segment_name(2)), "wb") as f:
            f.write(_SEGMENT_2)
    before = _files()
    records, report, replay = _replay(repair=False)
    if _files() != before:
        raise Finding("read_segments(repair=False) modified a file")
    for rec in replay_records(records):
        _check_raw(rec)
    repaired, rep2, _ = _replay(repair=True)
    if repaired != records:
        raise Finding(f"repairing replay returned other records: {len(repaired)} vs {len(records)}")
    again, rep3, _ = _replay(repair=True)
    kept = [p for p in rep2.problems if not p.bytes_cut]  # skipped segments, gaps: never cut
    if again != records or rep3.problems != kept:
        raise Finding(f"repair is not idempotent: {rep2.problems} then {rep3.problems}")
    with wal.WALWriter(_WAL, fsync="never") as w:
        w.write(_LAST)
    final, _rep4, _ = _replay(repair=True)
    if final[:-1] != records or final[-1][2:] != ("EntriesRecord", 1 << 40, 1,
                                                  _block_py.encode_entries([7], [b"tail"])):
        raise Finding("a writer opened after replay lost or changed records")
    _check_store(data)
    return rep2.clean  # the reader (tail_ok) does not report a bad last record


def _check_store(data: bytes) -> None:
    """Step 5: ``data`` as the WAL of a whole store, opened read-only and as the writer."""
    if not os.path.isdir(_EMPTY_STORE):
        chunkstore.open(_EMPTY_STORE, maintenance_interval=0).close()
    shutil.rmtree(_STORE, ignore_errors=True)
    shutil.copytree(_EMPTY_STORE, _STORE)
    wal_dir = os.path.join(_STORE, "wal")
    shutil.rmtree(wal_dir)
    os.makedirs(wal_dir)
    newest = os.path.join(wal_dir, wal.segment_name(1))
    with open(newest, "wb") as f:
        f.write(data)
    if len(data) % 2:
        newest = os.path.join(wal_dir, wal.segment_name(2))
        with open(newest, "wb") as f:
            f.write(_SEGMENT_2)
    strict = wal.read_segments(wal_dir, repair=False, tail_ok=False)
    for _ in strict:
        pass
    found = strict.report.problems
    quiet_tail = (len(found) == 1 and found[0].path == newest
                  and found[0].offset >= wal.HEADER_SIZE
                  and _incomplete_without_valid_after(data, found[0].offset))
    reported = {}
    for read_only in (True, False):
        what = "read-only" if read_only else "writer"
        with chunkstore.open(_STORE, read_only=read_only, maintenance_interval=0) as s:
            problems = list(s.replay_report.problems) + list(s.verify().problems)
            for _ in s.query('{app=~".+"}'):
                pass
        for p in problems:
            if not isinstance(p, CorruptionError | wal.WALProblem) or not p.path \
                    or p.offset is None:
                raise Finding(f"{what} store: a problem without a path and offset: {p!r}")
        reported[what] = problems
    if found and not reported["writer"]:
        raise Finding(f"the writer's store reports nothing of {found}")
    if found and not quiet_tail and not reported["read-only"]:
        raise Finding(f"a read-only store's verify() reports nothing of {found}")


def _valid_record(data: bytes, q: int) -> int | None:
    """The end of the valid record at ``q`` of ``data`` (``None``: there is none)."""
    if q + 8 > len(data):
        return None
    length, crc = _FRAME.unpack_from(data, q)
    if not 0 < length <= wal_records.MAX_BODY or q + 8 + length > len(data):
        return None
    body = data[q + 8:q + 8 + length]
    if crc32c(body, crc32c(data[q:q + 4])) != crc:
        return None
    try:
        wal_records.decode(body[0], body[1:])
    except CorruptionError:
        return None
    return q + 8 + length


def _incomplete_without_valid_after(data: bytes, offset: int) -> bool:
    """The record at ``offset`` runs past the end, and no valid record pair follows it.

    The oracle of ``verify``'s search (``wal.find_valid_record``), by brute
    force: a valid record that ends the file or is followed by another valid
    record must be found, so a read-only store must report the damage.
    """
    if len(data) - offset >= 8:
        (length,) = struct.unpack_from("<I", data, offset)
        if not 0 < length <= wal_records.MAX_BODY or offset + 8 + length <= len(data):
            return False  # complete in the file, or an impossible length: damage
    for q in range(offset + 1, len(data) - 8):
        end = _valid_record(data, q)
        if end is not None and (end == len(data) or _valid_record(data, end) is not None):
            return False
    return True


def replay_records(records) -> list[bytes]:
    return [r[5] for r in records if r[2] == "EntriesRecord"]


# ---------------------------------------------------------------------------

_FRAME = struct.Struct("<II")


def fixup(data: bytes) -> bytes:
    """Recompute the segment header's crc and every complete record's crc."""
    b = bytearray(data)
    if len(b) >= 16:
        b[12:16] = struct.pack("<I", crc32c(bytes(b[:12])))
    pos = 16
    while pos + 8 <= len(b):
        (length,) = struct.unpack_from("<I", b, pos)
        if length == 0 or pos + 8 + length > len(b):
            break
        body = bytes(b[pos + 8:pos + 8 + length])
        crc = crc32c(body, crc32c(bytes(b[pos:pos + 4])))
        b[pos + 4:pos + 8] = struct.pack("<I", crc)
        pos += 8 + length
    return bytes(b)


if __name__ == "__main__":
    fuzzlib.main(NAME)
