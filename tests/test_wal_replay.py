"""WAL replay: torn tails at every byte, bit flips in every byte, bad segments, a real kill -9."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from chunkstore import wal, wal_records
from chunkstore._kernels import crc32c
from chunkstore.wal_records import StreamRecord

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def as_tuple(rec):
    if isinstance(rec, StreamRecord):
        return ("stream", rec.stream_id, rec.fingerprint, bytes(rec.labels))
    return ("entries", rec.lsn, rec.stream_id, bytes(rec.raw))


def make_records(n_entries: int, seed: int = 1):
    """A STREAM record, then ``n_entries`` ENTRIES records of varying sizes (framed, tuple)."""
    rng = random.Random(seed)
    out = [(wal_records.encode_stream(1, 0xABCDEF, b"app\xffapi\xff"),
            ("stream", 1, 0xABCDEF, b"app\xffapi\xff"))]
    for lsn in range(1, n_entries + 1):
        raw = rng.randbytes(rng.randrange(0, 30))
        out.append((wal_records.encode_entries(lsn, 1, raw), ("entries", lsn, 1, raw)))
    return out


def build_wal(d, groups):
    """Write each group of records into its own segment; return [(seq, offset, end, tuple)]."""
    layout = []
    with wal.WALWriter(d, fsync="never") as w:
        for g, group in enumerate(groups):
            if g:
                w.cut()
            for framed, tup in group:
                seq = w.current_segment()
                off = os.path.getsize(os.path.join(d, wal.segment_name(seq)))
                w.write(framed)
                layout.append((seq, off, off + len(framed), tup))
    return layout


def replay(d, **kw):
    r = wal.read_segments(d, **kw)
    got = [as_tuple(rec) for _s, _o, rec in r]
    return got, r.report


# --- torn tails ---------------------------------------------------------------------

def test_torn_tail_at_every_byte_of_the_last_three_records(tmp_path):
    recs = make_records(9)
    layout = build_wal(tmp_path, [recs[:5], recs[5:]])
    last_seq = layout[-1][0]
    path = tmp_path / wal.segment_name(last_seq)
    original = path.read_bytes()
    tail = [item for item in layout if item[0] == last_seq][-3:]
    first_cut = tail[0][1]
    for cut in range(first_cut, len(original) + 1):
        path.write_bytes(original[:cut])
        complete = [t for s, _o, end, t in layout if s < last_seq or end <= cut]
        boundary = max([wal.HEADER_SIZE] +
                       [end for s, _o, end, _t in layout if s == last_seq and end <= cut])
        # A reader that may not modify files sees the prefix, reports the torn bytes.
        got, rep = replay(tmp_path, repair=False, tail_ok=False)
        assert got == complete, cut
        if cut == boundary:
            assert rep.clean
        else:
            [p] = rep.problems
            assert (p.path, p.offset, p.bytes_cut) == (str(path), boundary, cut - boundary)
        assert path.read_bytes() == original[:cut]
        # The writer's replay repairs: same records, file cut at the boundary.
        got, rep = replay(tmp_path, repair=True)
        assert got == complete and path.stat().st_size == boundary
        assert rep.end == (last_seq, boundary)
        got, rep = replay(tmp_path, repair=True)
        assert got == complete and rep.clean
        # Appending after the repair continues the same segment.
        extra = wal_records.encode_entries(1000, 2, b"after")
        with wal.WALWriter(tmp_path, fsync="never") as w:
            assert w.current_segment() == last_seq
            w.write(extra)
        got, rep = replay(tmp_path, repair=True)
        assert got == complete + [("entries", 1000, 2, b"after")] and rep.clean


def test_zero_filled_tail_is_reported_and_cut(tmp_path, caplog):
    recs = make_records(3)
    build_wal(tmp_path, [recs])
    path = tmp_path / "00000001.wal"
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(4096))
    with caplog.at_level(logging.WARNING, logger="chunkstore.wal"):
        got, rep = replay(tmp_path, repair=True)
    assert got == [t for _f, t in recs]
    [p] = rep.problems
    assert "zero-filled" in p.reason and (p.offset, p.bytes_cut) == (size, 4096)
    assert path.stat().st_size == size
    assert "truncated 4096 bytes" in caplog.text and str(path) in caplog.text


@pytest.mark.parametrize("length, reason", [
    (0xFFFFFFFF, "declared body length"),
    (wal_records.MAX_BODY + 1, "declared body length"),
    (wal_records.MAX_BODY, "runs past the end"),
    (60 << 20, "runs past the end"),
])
def test_declared_lengths_are_checked_before_reading(tmp_path, length, reason):
    recs = make_records(2)
    build_wal(tmp_path, [recs])
    path = tmp_path / "00000001.wal"
    with open(path, "ab") as f:
        f.write(length.to_bytes(4, "little") + b"\x01\x02\x03\x04" + b"junk" * 10)
    tracemalloc.start()
    try:
        got, rep = replay(tmp_path, repair=False, tail_ok=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [t for _f, t in recs]
    assert reason in rep.problems[0].reason
    assert peak < 1 << 20


def test_read_only_replay_never_modifies_files(tmp_path):
    recs = make_records(4)
    build_wal(tmp_path, [recs[:2], recs[2:]])
    for seg in (1, 2):
        p = tmp_path / wal.segment_name(seg)
        p.write_bytes(p.read_bytes()[:-3])
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    for tail_ok in (False, True):
        got, rep = replay(tmp_path, repair=False, tail_ok=tail_ok)
        assert got == [t for _f, t in recs[:1] + recs[2:4]]
        # The torn first segment is always reported; the torn last one only
        # when a concurrent writer cannot explain it.
        assert len(rep.problems) == (1 if tail_ok else 2)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert before == after


def test_tail_ok_is_the_default_for_read_only_replay(tmp_path):
    recs = make_records(2)
    build_wal(tmp_path, [recs])
    with open(tmp_path / "00000001.wal", "ab") as f:
        f.write(recs[1][0][:7])
    got, rep = replay(tmp_path, repair=False)
    assert got == [t for _f, t in recs] and rep.clean


# --- bit flips ----------------------------------------------------------------------

def flip_everywhere(tmp_path, groups):
    """Flip every bit of every byte of every segment; check what replay returns."""
    layout = build_wal(tmp_path, groups)
    segs = sorted({s for s, *_ in layout})
    originals = {s: (tmp_path / wal.segment_name(s)).read_bytes() for s in segs}
    for seq in segs:
        path = tmp_path / wal.segment_name(seq)
        data = originals[seq]
        for i in range(len(data)):
            for bit in range(8):
                flipped = bytearray(data)
                flipped[i] ^= 1 << bit
                path.write_bytes(bytes(flipped))
                mine = [(o, end, t) for s, o, end, t in layout if s == seq]
                hit = next((k for k, (o, end, _t) in enumerate(mine) if o <= i < end), None)
                others_before = [t for s, _o, _e, t in layout if s < seq]
                others_after = [t for s, _o, _e, t in layout if s > seq]
                if i < wal.HEADER_SIZE:
                    kept, offset, cut = [], 0, 0
                else:
                    kept = [t for _o, _e, t in mine[:hit]]
                    offset, cut = mine[hit][0], len(data) - mine[hit][0]
                got, rep = replay(tmp_path, repair=bit == 0, tail_ok=False)
                assert got == others_before + kept + others_after, (seq, i, bit)
                [p] = rep.problems
                assert (p.path, p.offset) == (str(path), offset), (seq, i, bit)
                if i < wal.HEADER_SIZE:
                    assert "segment skipped" in p.reason
                    assert path.read_bytes() == bytes(flipped)  # never modified
                elif bit == 0:
                    assert p.bytes_cut == cut and path.stat().st_size == offset
                    got2, rep2 = replay(tmp_path, repair=True)
                    assert got2 == got and rep2.clean
                if seq != segs[-1] and i >= wal.HEADER_SIZE:
                    assert "rest of this segment is lost" in p.reason
        path.write_bytes(data)


def test_bit_flips_in_a_single_segment_yield_a_prefix(tmp_path):
    flip_everywhere(tmp_path, [make_records(3)])


def test_bit_flips_in_an_earlier_segment_lose_only_that_segment_tail(tmp_path):
    recs = make_records(4, seed=2)
    flip_everywhere(tmp_path, [recs[:3], recs[3:]])


# --- bad and missing segments -------------------------------------------------------

def test_missing_segment_is_reported(tmp_path):
    recs = make_records(3)
    build_wal(tmp_path, [recs[:2], recs[2:3], recs[3:]])
    os.unlink(tmp_path / "00000002.wal")
    got, rep = replay(tmp_path, repair=True)
    assert got == [t for _f, t in recs[:2] + recs[3:]]
    [p] = rep.problems
    assert p.path.endswith("00000002.wal") and "segments 2..2 are missing" in p.reason


def test_unsupported_version_and_wrong_sequence_are_skipped_untouched(tmp_path):
    recs = make_records(3)
    build_wal(tmp_path, [recs[:2], recs[2:]])
    p1 = tmp_path / "00000001.wal"
    data = bytearray(p1.read_bytes())
    data[4] = 2  # version 2 with a valid checksum
    data[12:16] = crc32c(bytes(data[:12])).to_bytes(4, "little")
    p1.write_bytes(bytes(data))
    os.rename(tmp_path / "00000002.wal", tmp_path / "00000005.wal")
    got, rep = replay(tmp_path, repair=True)
    assert got == []
    reasons = [p.reason for p in rep.problems]
    assert "unsupported segment version 2" in reasons[0]
    assert "segments 2..4 are missing" in reasons[1]
    assert "names sequence 2, the file name 5" in reasons[2]
    assert p1.read_bytes() == bytes(data)
    assert rep.end == (6, wal.HEADER_SIZE)
    with wal.WALWriter(tmp_path, fsync="never") as w:
        assert w.current_segment() == 6
        w.write(wal_records.encode_entries(7, 1, b"x"))
    got, _rep = replay(tmp_path, repair=True)
    assert got == [("entries", 7, 1, b"x")]


def test_truncated_segment_header_is_skipped(tmp_path):
    (tmp_path / "00000001.wal").write_bytes(b"CSWL\x01")
    got, rep = replay(tmp_path, repair=True)
    assert got == [] and "segment header truncated (5 of 16 bytes)" in rep.problems[0].reason


def test_unknown_record_type_is_corruption(tmp_path):
    recs = make_records(1)
    build_wal(tmp_path, [recs])
    with open(tmp_path / "00000001.wal", "ab") as f:
        f.write(wal_records.frame(9, b"future"))
    got, rep = replay(tmp_path, repair=False, tail_ok=False)
    assert got == [t for _f, t in recs]
    assert "unknown record type 9" in rep.problems[0].reason


# --- records a store cannot apply ---------------------------------------------------

@pytest.mark.parametrize("bad_labels", [b"app\xffapi", b"app\xff\xb2\xff"])
def test_regression_wal_stream_record_with_malformed_labels_is_reported_not_fatal(
        tmp_path, bad_labels):
    """A STREAM record whose checksum matches but whose labels are not canonical bytes.

    Opening the store used to raise ``ValueError`` / ``UnicodeDecodeError``;
    now the record is reported like a damaged index-log record, its stream's
    entries like those of an unknown stream, and the rest of the WAL replays.
    """
    import chunkstore
    from chunkstore import _block_py
    from chunkstore.labels import Labels

    path = tmp_path / "store"
    chunkstore.open(path, maintenance_interval=0).close()
    wal_dir = path / "wal"
    for name in os.listdir(wal_dir):
        os.unlink(wal_dir / name)
    ok = Labels.from_input({"app": "ok"})
    records = [
        wal_records.encode_stream(1, ok.fingerprint, ok.canonical),
        wal_records.encode_entries(1, 1, _block_py.encode_entries([10], [b"first"])),
        wal_records.encode_stream(2, 123, bad_labels),
        wal_records.encode_entries(2, 2, _block_py.encode_entries([5], [b"lost"])),
        wal_records.encode_entries(3, 1, _block_py.encode_entries([20], [b"second"])),
    ]
    offsets = [wal.HEADER_SIZE]
    for framed in records:
        offsets.append(offsets[-1] + len(framed))
    seg = str(wal_dir / wal.segment_name(1))
    with open(seg, "wb") as f:
        f.write(wal.segment_header(1) + b"".join(records))
    for read_only in (True, False):
        with chunkstore.open(path, read_only=read_only, maintenance_interval=0) as s:
            problems = s.replay_report.problems
            assert all(isinstance(p, chunkstore.CorruptionError) for p in problems)
            assert [(p.path, p.offset) for p in problems] == [(seg, offsets[2]),
                                                              (seg, offsets[3])]
            assert "bad STREAM record for stream 2" in str(problems[0])
            assert "unknown stream 2" in str(problems[1])
            assert s.replay_report.wal_records == len(records)
            assert [e.line for e in s.query('{app=~".+"}', direction="forward")] == \
                ["first", "second"]
            rep = s.verify()
            assert [(p.path, p.offset) for p in rep.problems] == [(seg, offsets[2])]
            if not read_only:
                # Stream id 2 stays taken: its entries are still in the WAL.
                new = s.stream({"app": "new"})
                assert new._sid == 3
                new.append("third", ts=30)
    with chunkstore.open(path, read_only=True, maintenance_interval=0) as s:
        assert [e.line for e in s.query('{app="new"}')] == ["third"]
        assert [e.line for e in s.query('{app="ok"}', direction="forward")] == \
            ["first", "second"]


# --- a real crash -------------------------------------------------------------------

CHILD = r"""
import hashlib, sys
sys.path.insert(0, sys.argv[2])
from chunkstore import wal, wal_records

def payload(lsn):
    n = 40_000 + lsn % 7 if lsn % 9 == 0 else (lsn * 7919) % 1500
    seed = hashlib.sha256(str(lsn).encode()).digest()
    return (seed * (n // 32 + 1))[:n]

last = 0
for _s, _o, rec in wal.read_segments(sys.argv[1], repair=True):
    last = rec.lsn
w = wal.WALWriter(sys.argv[1], fsync="always", segment_size=32 << 10).open()
lsn = last + 1
while True:
    w.write(wal_records.encode_entries(lsn, 1, payload(lsn)))
    print(lsn, flush=True)
    lsn += 1
"""


def child_payload(lsn):
    n = 40_000 + lsn % 7 if lsn % 9 == 0 else (lsn * 7919) % 1500
    seed = hashlib.sha256(str(lsn).encode()).digest()
    return (seed * (n // 32 + 1))[:n]


def test_sigkill_loses_no_acknowledged_record(tmp_path):
    rng = random.Random(1234)
    wal_dir = tmp_path / "wal"
    acked_max = 0
    for _round in range(5):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(wal_dir), REPO],
                                stdout=subprocess.PIPE, text=True)
        acks: list[int] = []
        first = threading.Event()

        def reader(proc=proc, acks=acks, first=first):
            for line in proc.stdout:
                acks.append(int(line))
                first.set()

        t = threading.Thread(target=reader)
        t.start()
        assert first.wait(30), "child never acknowledged a write"
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t.join()
        assert proc.returncode == -signal.SIGKILL
        assert acks == list(range(acked_max + 1, acked_max + 1 + len(acks)))
        acked_max = max([acked_max, *acks])
        r = wal.read_segments(wal_dir, repair=True)
        got = [(rec.lsn, bytes(rec.raw)) for _s, _o, rec in r]
        lsns = [lsn for lsn, _raw in got]
        # Every acknowledged record exactly once, in order; at most the one in flight more.
        assert lsns in (list(range(1, acked_max + 1)), list(range(1, acked_max + 2)))
        for lsn, raw in got:
            assert raw == child_payload(lsn), lsn
        acked_max = lsns[-1]  # the in-flight record, if it survived, is now part of the log
        assert all(p.path.endswith(wal.segment_name(wal.list_segments(wal_dir)[-1]))
                   for p in r.report.problems)
