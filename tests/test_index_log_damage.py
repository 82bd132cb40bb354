"""Damage in the middle of ``index.log``: resynchronisation, stream recovery, repair, verify.

Real stores, real files, real byte flips (docs/FORMAT.md section 6, "Reading
a damaged log"):

* a damaged record followed by valid ones is skipped and reported with the
  path and the range's first offset; the records after it are applied; a
  torn tail is still cut;
* a batch with a damaged member is skipped whole, never half applied;
* a CHUNK whose STREAM record was lost gets its labels from its chunk header,
  or is reported when that header cannot be read;
* a read-only opener changes no byte; a writer moves unreferenced segments to
  ``lost+found/`` at open and rewrites the log without the damage before its
  next append (and not before: open and close alone change nothing);
* the search for the next record is bounded on a hostile file;
* ``verify()`` reports a complete-but-bad last record of ``index.log`` and of
  the newest WAL segment in read-only and writable stores, and stays silent
  on a torn one (a write in progress).
"""

from __future__ import annotations

import hashlib
import os
import struct
import time

import msgpack
import pytest

import chunkstore
from chunkstore import index_log
from chunkstore import wal as wal_mod
from chunkstore.index_log import BATCH, CHUNK, STREAM, scan_index_log

S = 10**9
DAY = 86_400 * S
T0 = 1_700_000_000 * S
OPTS = dict(maintenance_interval=0, fsync="never")


# ---------------------------------------------------------------------------
# helpers


def _seal(s) -> None:
    s._seal([h for h in s.heads.values() if not h.empty])
    s._truncate_wal()


def _push(s, labels: dict, day: int, n: int = 3) -> list:
    entries = [(T0 + day * DAY + i * S, f"{labels} day {day} line {i}") for i in range(n)]
    r = s.push([(labels, entries)])
    assert not r.rejected
    return entries


def build(path) -> dict:
    """A sealed store whose index-log appends are known, one segment file per day.

    append 0: BATCH [STREAM a, CHUNK 1 (day 0)]
    append 1: CHUNK 2 (a, day 1)                 single record, no batch
    append 2: BATCH [STREAM b, CHUNK 3 (day 1)]
    append 3: CHUNK 4 (b, day 2)
    append 4: BATCH [STREAM c, CHUNK 5 (day 3), STREAM d, CHUNK 6 (day 3)]
    append 5: CHUNK 7 (c, day 4)

    Returns ``{chunk_id: entries}``.
    """
    a, b, c, d = {"app": "a"}, {"app": "b"}, {"app": "c"}, {"app": "d", "env": "x"}
    chunks = {}
    with chunkstore.open(path, **OPTS) as s:
        for cid, (lb, day) in enumerate([(a, 0), (a, 1), (b, 1), (b, 2)], start=1):
            chunks[cid] = _push(s, lb, day)
            _seal(s)
        chunks[5] = _push(s, c, 3)
        chunks[6] = _push(s, d, 3)
        _seal(s)
        chunks[7] = _push(s, c, 4)
        _seal(s)
        assert sorted(s.index.chunks) == list(range(1, 8))
    return chunks


def appends(path) -> list[list[tuple[int, int, int]]]:
    """The appends of a clean log: per append, ``(offset, end, type)`` of each frame."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos, owed = [], 16, 0
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        rtype = data[pos + 8]
        frame = (pos, pos + 8 + length, rtype)
        if owed:
            out[-1].append(frame)
            owed -= 1
        else:
            out.append([frame])
            if rtype == BATCH:
                owed = msgpack.unpackb(data[pos + 9:pos + 8 + length])[0]
        pos += 8 + length
    return out


def flip(path, offset: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


def digest(root) -> dict:
    """Every file under ``root`` (except LOCK) with the sha256 of its bytes."""
    out = {}
    for d, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            if name != "LOCK":
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def got(s, selector: str) -> list:
    return [(e.ts, e.line) for e in s.query(selector, 0, T0 + 10 * DAY, direction="forward")]


def at(problems, path, offset: int) -> list:
    """Problems located in ``path`` at ``offset``."""
    return [p for p in problems if getattr(p, "path", None) == str(path)
            and getattr(p, "offset", None) == offset]


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    chunks = build(path)
    return path, chunks, appends(path / "index.log")


# ---------------------------------------------------------------------------
# resynchronisation


def test_flip_in_a_middle_record_skips_it_and_applies_the_rest(store):
    path, chunks, apps = store
    index = path / "index.log"
    (start, end, rtype), = apps[3]  # CHUNK 4, a single-record append
    assert rtype == CHUNK
    flip(index, start + 20)
    before = digest(path)
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        probs = at(ro.replay_report.problems, index, start)
        assert len(probs) == 1 and "checksum mismatch" in str(probs[0])
        assert f"skipped {end - start} bytes" in str(probs[0])
        assert f"next valid record at offset {end}" in str(probs[0])
        assert sorted(ro.index.chunks) == [1, 2, 3, 5, 6, 7]
        assert got(ro, '{app="b"}') == chunks[3]  # chunk 4 lost, chunk 3 intact
        assert got(ro, '{app="c"}') == chunks[5] + chunks[7]  # after the damage: applied
        rep = ro.verify()
        assert at(rep.problems, index, start), str(rep)
    assert digest(path) == before, "a read-only open changed a file"


def test_records_of_later_appends_survive_a_middle_flip(store):
    # the rule before resynchronisation (still the rule for a tail) cut the
    # log at the damage and lost appends 3..5; now only append 3 is lost
    path, _chunks, apps = store
    index = path / "index.log"
    flip(index, apps[3][0][0] + 20)
    scan = scan_index_log(str(index))
    assert scan.tail is None and scan.end == os.path.getsize(index)
    assert len(scan.skipped) == 1
    offsets = {r.offset for r in scan.records}
    assert {f[0] for app in apps[4:] for f in app if f[2] != BATCH} <= offsets


@pytest.mark.parametrize("member", [0, 1, 2, 3])
def test_a_damaged_batch_member_skips_the_whole_batch(store, member):
    path, chunks, apps = store
    index = path / "index.log"
    batch = apps[4]  # BATCH [STREAM c, CHUNK 5, STREAM d, CHUNK 6]
    assert [f[2] for f in batch] == [BATCH, STREAM, CHUNK, STREAM, CHUNK]
    start, end, _t = batch[1 + member]
    flip(index, end - 1)  # the last byte of the member's body
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        probs = at(ro.replay_report.problems, index, batch[0][0])
        assert len(probs) == 1 and "batch of 4 records is incomplete" in str(probs[0])
        assert f"next valid record at offset {batch[-1][1]}" in str(probs[0])
        # none of the batch: neither stream d nor chunk 5, whatever member was hit
        assert 5 not in ro.index.chunks and 6 not in ro.index.chunks
        assert not got(ro, '{app="d"}')
        # append 5 (CHUNK 7 of stream c) follows: stream c's STREAM record was in
        # the skipped batch, so its labels come back from chunk 7's header
        assert got(ro, '{app="c"}') == chunks[7]
        assert [(sid, lb, cid) for sid, lb, cid in ro.replay_report.streams_recovered] == [
            (ro.index.find_stream(chunkstore.Labels.from_input({"app": "c"})), '{app="c"}', 7)]
        assert got(ro, '{app="a"}') == chunks[1] + chunks[2]


def test_a_damaged_batch_marker_applies_the_intact_members_one_by_one(store):
    path, chunks, apps = store
    index = path / "index.log"
    marker = apps[4][0]
    flip(index, marker[1] - 1)
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        assert at(ro.replay_report.problems, index, marker[0])
        assert sorted(ro.index.chunks) == list(range(1, 8))
        assert got(ro, '{app="d"}') == chunks[6]


@pytest.mark.parametrize("byte,mask", [(0, 0x01), (0, 0x20), (3, 0x80), (3, 0x10)])
def test_a_damaged_length_field_resynchronises_on_the_next_record(store, byte, mask):
    # (3, 0x80) and (3, 0x10) make the length impossible (> 64 MiB); the low
    # byte flips give a plausible length that ends nowhere useful
    path, chunks, apps = store
    index = path / "index.log"
    (start, end, _t), = apps[1]  # CHUNK 2
    flip(index, start + byte, mask)
    scan = scan_index_log(str(index))
    assert [p.offset for p in scan.skipped] == [start]
    assert f"next valid record at offset {end}" in str(scan.skipped[0])
    assert scan.tail is None
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        assert sorted(ro.index.chunks) == [1, 3, 4, 5, 6, 7]
        assert got(ro, '{app="a"}') == chunks[1]


def test_a_zero_filled_hole_in_the_middle_is_skipped(store):
    path, chunks, apps = store
    index = path / "index.log"
    start, end = apps[2][0][0], apps[2][-1][1]  # append 2: STREAM b, CHUNK 3
    data = bytearray(index.read_bytes())
    data[start:end] = bytes(end - start) + bytes(4096)  # zeros, and more of them
    index.write_bytes(bytes(data))
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        probs = at(ro.replay_report.problems, index, start)
        assert len(probs) == 1 and "outside 1..67108864" in str(probs[0])
        assert sorted(ro.index.chunks) == [1, 2, 4, 5, 6, 7]
        # stream b lost its STREAM record; chunk 4's header gives its labels back
        assert got(ro, '{app="b"}') == chunks[4]


def test_a_torn_tail_is_still_cut_and_a_middle_flip_still_skipped(store):
    path, chunks, apps = store
    index = path / "index.log"
    (c2, c2_end, _t), = apps[1]
    (c7, _e, _t), = apps[5]
    flip(index, c2 + 30)
    with open(index, "r+b") as f:
        f.truncate(c7 + 11)  # inside the last record
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        probs = ro.replay_report.problems
        assert at(probs, index, c2) and at(probs, index, c7)
        assert sorted(ro.index.chunks) == [1, 3, 4, 5, 6]
        where = [(p.path, p.offset) for p in ro.verify().problems]
        assert where == [(str(index), c2)], "read-only verify: the torn tail is reported"
    with chunkstore.open(path, **OPTS) as w:
        assert w.replay_report.index_rewrite_pending
        assert os.path.getsize(index) == c7  # the torn tail is cut at open, as before
        assert sorted(w.index.chunks) == [1, 3, 4, 5, 6]
        assert got(w, '{app="c"}') == chunks[5]


def _cut_reads_the_same(index, scan) -> None:
    """A writer cuts the file where the valid records end: the same records read back."""
    with open(index, "r+b") as f:
        f.truncate(scan.end)
    again = scan_index_log(str(index))
    assert again.tail is None and again.end == scan.end
    assert again.records == scan.records


def test_every_single_byte_flip_loses_at_most_its_own_append(store):
    """For every byte of the log: flip it, read, compare with the clean records.

    Records of every other append are read back, and the damaged append is
    applied whole or not at all.  The exception: a flip in a length field of
    one of the last appends, when fewer than two valid records follow, ends
    the valid records there (the search wants two in a row).  Cutting the
    file where the valid records end (what a writer does) reads back the
    same records.
    """
    path, _chunks, apps = store
    index = path / "index.log"
    clean = index.read_bytes()
    by_append = [{(f[0]) for f in app if f[2] != BATCH} for app in apps]
    all_records = {r.offset: (r.type, r.value) for r in scan_index_log(str(index)).records}
    tails = 0
    for offset in range(16, len(clean)):
        k = next(i for i, app in enumerate(apps) if app[0][0] <= offset < app[-1][1])
        index.write_bytes(clean)
        flip(index, offset)
        scan = scan_index_log(str(index))
        got_records = {r.offset: (r.type, r.value) for r in scan.records}
        assert all(all_records.get(o) == v for o, v in got_records.items()), offset
        others = set().union(*(by_append[:k] + by_append[k + 1:]))
        mine = by_append[k]
        if scan.tail is not None and scan.end <= apps[k][0][0]:
            # the tail starts at the damaged append
            assert set(got_records) == set().union(*by_append[:k]), offset
            length_field = any(f[0] <= offset < f[0] + 4 for f in apps[k])
            assert k == len(apps) - 1 or (length_field and k >= len(apps) - 3), offset
            tails += k < len(apps) - 1
        else:
            assert scan.tail is None, offset
            assert set(got_records) in (others, others | mine), offset
            assert scan.skipped and scan.skipped[0].offset <= offset, offset
        _cut_reads_the_same(index, scan)
    assert tails < 16  # only some length-field flips of the last appends end in a tail


def test_a_cut_cannot_turn_a_damaged_record_into_a_torn_tail(tmp_path):
    """Found by fuzz_index_reader: a damaged record whose declared extent reaches
    past the records after it and into a damaged tail.

    Before the fix the writer cut the tail, after which the damaged record
    ran past the end of the file, read as a torn tail, and the valid records
    after it were lost on the next open.
    """
    path = tmp_path / "store"
    os.makedirs(path / "wal")
    os.makedirs(path / "segments")
    index = path / "index.log"
    r1, r2, r3 = (_frame_bytes(STREAM, [i, i, f"app\xff{i}\xff".encode()]) for i in (1, 2, 3))
    damaged = bytearray(_frame_bytes(STREAM, [9, 9, b"app\xffz\xff"]))
    struct.pack_into("<I", damaged, 0, len(damaged) - 8 + len(r2) + len(r3) + 40)
    tail = bytearray(_frame_bytes(STREAM, [4, 4, b"x" * 80]))
    tail[-1] ^= 1
    index.write_bytes(index_log._header_bytes() + r1 + bytes(damaged) + r2 + r3 + bytes(tail))
    scan = scan_index_log(str(index))
    assert [r.value[0] for r in scan.records] == [1, 2, 3] and scan.tail is not None
    with chunkstore.open(path, **OPTS):
        pass  # the writer cuts the tail
    again = scan_index_log(str(index))
    assert again.tail is None and again.records == scan.records
    assert [p.offset for p in again.skipped] == [16 + len(r1)]


# ---------------------------------------------------------------------------
# stream recovery


def test_lost_stream_record_is_recovered_from_the_chunk_header(store):
    path, chunks, apps = store
    index = path / "index.log"
    stream_a = apps[0][1]
    assert stream_a[2] == STREAM
    flip(index, stream_a[1] - 2)  # inside the labels of STREAM a: append 0 is lost
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        rep = ro.replay_report
        sid = ro.index.find_stream(chunkstore.Labels.from_input({"app": "a"}))
        assert sid == 1  # the id of the lost record, from the CHUNK record
        assert rep.streams_recovered == [(1, '{app="a"}', 2)]
        recovered = at(rep.problems, index, apps[1][0][0])
        assert len(recovered) == 1 and "recovered from the chunk header" in str(recovered[0])
        assert got(ro, '{app="a"}') == chunks[2]  # chunk 1 was in the lost batch
        assert ro.series('{app="a"}') == [{"app": "a"}]


def test_recovery_is_impossible_when_the_chunk_header_is_damaged_too(store):
    path, chunks, apps = store
    index = path / "index.log"
    flip(index, apps[0][1][1] - 2)  # lose STREAM a (and chunk 1)
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        ref = ro.index.chunks[2]
    seg = path / ref.segment
    flip(seg, ref.offset + 34)  # inside chunk 2's header labels
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        rep = ro.replay_report
        assert rep.streams_recovered == []
        bad = at(rep.problems, index, apps[1][0][0])
        assert len(bad) == 1 and "cannot be read from" in str(bad[0])
        assert 2 not in ro.index.chunks
        assert not got(ro, '{app="a"}')
    with chunkstore.open(path, **OPTS) as w:
        # chunk 1 (lost with the batch) was alone in its segment: kept aside;
        # chunk 2's segment stays, chunk 3 (stream b) still points at it
        day0 = f"segments/{_day(0)}/00000001.seg"
        assert w.replay_report.orphan_segments_removed == [day0]
        assert (path / "lost+found" / f"{_day(0)}-00000001.seg").exists()
        assert seg.exists() and w.index.chunks[3].segment == ref.segment
        assert got(w, '{app="b"}') == chunks[3] + chunks[4]


# ---------------------------------------------------------------------------
# the writer: lost+found, deferred rewrite


def test_writer_keeps_the_file_until_its_first_append(store):
    path, _chunks, apps = store
    index = path / "index.log"
    flip(index, apps[3][0][0] + 20)
    damaged = index.read_bytes()
    with chunkstore.open(path, **OPTS) as w:
        assert w.replay_report.index_rewrite_pending
        assert w._index_log.repair_pending
    assert index.read_bytes() == damaged, "open + close without writes rewrote the log"
    with chunkstore.open(path, **OPTS) as w:
        assert at(w.replay_report.problems, index, apps[3][0][0])  # still there, still reported


def test_writer_rewrites_the_log_without_the_damage_before_appending(store):
    path, chunks, apps = store
    index = path / "index.log"
    flip(index, apps[0][1][1] - 2)  # STREAM a lost with chunk 1; chunk 2 recovers it
    with chunkstore.open(path, **OPTS) as w:
        rep = w.replay_report
        assert rep.streams_recovered and rep.index_rewrite_pending
        # chunk 1 was the only chunk of its segment: moved aside at open
        assert rep.orphan_segments_removed == [f"segments/{_day(0)}/00000001.seg"]
        assert (path / "lost+found" / f"{_day(0)}-00000001.seg").exists()
        e = _push(w, {"app": "a"}, 5)
        _seal(w)  # the first append: rewrite, then append
        assert not w._index_log.repair_pending
        scan = scan_index_log(str(index))
        assert scan.tail is None and not scan.skipped
        types = [(r.type, r.value[0]) for r in scan.records]
        assert types.index((STREAM, 1)) < types.index((CHUNK, 2))
        assert w._index_log.size == os.path.getsize(index)
    with chunkstore.open(path, **OPTS) as w:
        assert not w.replay_report.problems, w.replay_report.problems
        assert not w.replay_report.streams_recovered
        assert got(w, '{app="a"}') == chunks[2] + e
        assert sorted(w.index.chunks) == [2, 3, 4, 5, 6, 7, 8]
        assert w.verify().ok
    # the moved segment stays in lost+found for `chunkstore inspect`
    assert (path / "lost+found" / f"{_day(0)}-00000001.seg").exists()


def _day(n: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp((T0 + n * DAY) // S, datetime.UTC).strftime(
        "%Y-%m-%d")


def test_read_only_refresh_sees_the_repaired_log(store):
    path, chunks, apps = store
    index = path / "index.log"
    flip(index, apps[3][0][0] + 20)
    ro = chunkstore.open(path, read_only=True, **OPTS)
    try:
        assert ro.replay_report.problems
        with chunkstore.open(path, **OPTS) as w:
            _push(w, {"app": "z"}, 6)
            _seal(w)
        assert len(got(ro, '{app="z"}')) == 3  # a query reloads a read-only store
        assert not ro.replay_report.problems
        assert got(ro, '{app="b"}') == chunks[3]
    finally:
        ro.close()


# ---------------------------------------------------------------------------
# hostile files: bounded search


def _frame_bytes(rtype: int, value) -> bytes:
    return index_log.frame(rtype, value)


def test_search_is_bounded_on_a_file_of_plausible_frames(tmp_path):
    """A damaged record, then 2 MiB of candidate record starts each claiming ~1 MiB.

    Without a bound every candidate costs a 1 MiB checksum (~200 GiB in all);
    the search gives up after a few times the file size and calls the rest
    the tail.
    """
    path = tmp_path / "index.log"
    head = index_log._header_bytes()
    bad = bytearray(_frame_bytes(STREAM, [1, 2, b"app\xffa\xff"]))
    bad[-1] ^= 0xFF
    # candidate at every 10 bytes: length 1 MiB, any crc, type 1, fixarray
    unit = struct.pack("<II", 1 << 20, 0) + b"\x01\x93"
    body = unit * ((2 << 20) // len(unit))
    good = _frame_bytes(STREAM, [2, 3, b"app\xffb\xff"]) * 2
    path.write_bytes(head + bytes(bad) + body + good)
    t = time.perf_counter()
    scan = scan_index_log(str(path))
    elapsed = time.perf_counter() - t
    assert scan.records == [] and scan.tail is not None and scan.end == 16
    assert scan.tail_complete
    assert elapsed < (5 if chunkstore.ACCELERATED else 30), elapsed


def test_search_finds_the_next_record_past_random_garbage(tmp_path):
    import random

    path = tmp_path / "index.log"
    rng = random.Random(9)
    head = index_log._header_bytes()
    first = _frame_bytes(STREAM, [1, 2, b"app\xffa\xff"])
    garbage = bytes(rng.randrange(256) for _ in range(64 << 10))
    after = [_frame_bytes(STREAM, [i, i, b"app\xffx\xff"]) for i in range(3, 6)]
    path.write_bytes(head + first + garbage + b"".join(after))
    scan = scan_index_log(str(path))
    assert [r.value[0] for r in scan.records] == [1, 3, 4, 5]
    assert [p.offset for p in scan.skipped] == [16 + len(first)]
    assert scan.tail is None


def test_a_record_embedded_in_a_damaged_record_is_not_applied(tmp_path):
    """A complete frame inside a damaged record's body is not taken for a record.

    The embedded DROP is valid on its own but is followed by the rest of the
    damaged record, not by a valid record; the reader resumes at the real
    next record.
    """
    path = tmp_path / "index.log"
    head = index_log._header_bytes()
    embedded = _frame_bytes(index_log.DROP, [7])
    outer = bytearray(_frame_bytes(STREAM, [1, 2, b"x" * 8 + embedded + b"y" * 8]))
    outer[3] ^= 0x10  # the length becomes impossible (> 64 MiB): search from the next byte
    nxt = _frame_bytes(STREAM, [3, 4, b"app\xffb\xff"])
    path.write_bytes(head + bytes(outer) + nxt + _frame_bytes(STREAM, [5, 6, b"c\xffd\xff"]))
    scan = scan_index_log(str(path))
    assert [(r.type, r.value[0]) for r in scan.records] == [(STREAM, 3), (STREAM, 5)]
    assert [p.offset for p in scan.skipped] == [16]


# ---------------------------------------------------------------------------
# verify(): complete-but-bad last records


def _last_wal_record(path) -> tuple[str, int, int]:
    wal_dir = os.path.join(path, "wal")
    recs = [(seq, off) for seq, off, _r in wal_mod.read_segments(wal_dir, repair=False)]
    seq, off = recs[-1]
    seg = os.path.join(wal_dir, wal_mod.segment_name(seq))
    return seg, off, os.path.getsize(seg)


def _unsealed_store(path):
    with chunkstore.open(path, **OPTS) as s:
        _push(s, {"app": "a"}, 0)
        _seal(s)
        _push(s, {"app": "a"}, 1)
        _push(s, {"app": "b"}, 1)
        s._crash_for_tests()  # the entries stay in the WAL


@pytest.mark.parametrize("read_only", [True, False])
def test_verify_reports_a_flipped_last_index_record(tmp_path, read_only):
    path = tmp_path / "store"
    _unsealed_store(path)
    index = path / "index.log"
    last = appends(index)[-1]
    if read_only:
        flip(index, last[-1][1] - 1)
        s = chunkstore.open(path, read_only=True, **OPTS)
    else:  # damage that happens while the writer has the store open
        s = chunkstore.open(path, **OPTS)
        flip(index, last[-1][1] - 1)
    try:
        rep = s.verify()
        assert at(rep.problems, index, last[0][0]), str(rep)
    finally:
        s._crash_for_tests() if not read_only else s.close()


@pytest.mark.parametrize("read_only", [True, False])
@pytest.mark.parametrize("damage", ["flip", "zeros"])
def test_verify_reports_a_bad_complete_record_in_the_newest_wal_segment(tmp_path, read_only,
                                                                         damage):
    path = tmp_path / "store"
    _unsealed_store(path)
    seg, off, size = _last_wal_record(path)

    def spoil():
        if damage == "flip":
            flip(seg, size - 1)
        else:  # a zero-filled tail after a power loss: a complete frame header, length 0
            with open(seg, "ab") as f:
                f.write(bytes(64))

    bad_at = off if damage == "flip" else size
    if read_only:
        spoil()
        s = chunkstore.open(path, read_only=True, **OPTS)
    else:
        s = chunkstore.open(path, **OPTS)
        seg, off, size = _last_wal_record(path)  # the writer may have moved on
        bad_at = off if damage == "flip" else size
        spoil()
    try:
        rep = s.verify()
        assert at(rep.problems, seg, bad_at), str(rep)
    finally:
        s._crash_for_tests() if not read_only else s.close()


@pytest.mark.parametrize("which", ["index", "wal"])
def test_read_only_verify_is_silent_on_a_torn_last_record(tmp_path, which):
    # a record that runs past the end of the file may be a write in progress
    path = tmp_path / "store"
    _unsealed_store(path)
    if which == "index":
        target = path / "index.log"
        cut = appends(target)[-1][-1][1] - 3
    else:
        target, off, _size = _last_wal_record(path)
        cut = off + 12
    with open(target, "r+b") as f:
        f.truncate(cut)
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        rep = ro.verify()
        assert rep.ok, str(rep)


def test_fixture_layout_is_what_the_tests_assume(store):
    path, _chunks, apps = store
    assert [[f[2] for f in app] for app in apps] == [
        [BATCH, STREAM, CHUNK], [CHUNK], [BATCH, STREAM, CHUNK], [CHUNK],
        [BATCH, STREAM, CHUNK, STREAM, CHUNK], [CHUNK]]
    with chunkstore.open(path, read_only=True, **OPTS) as ro:
        assert not ro.replay_report.problems
        segs = {c.segment for c in ro.index.chunks.values()}
        assert len(segs) == 5  # one per day
