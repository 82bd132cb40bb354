"""WAL records and framing: golden bytes, round trips across segments, bookkeeping, tailing."""

from __future__ import annotations

import os
import struct
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkstore import wal, wal_records
from chunkstore._kernels import crc32c, xxh64
from chunkstore.errors import CorruptionError, LimitError, StoreClosedError
from chunkstore.wal_records import ENTRIES, STREAM, EntriesRecord, StreamRecord

U64 = (1 << 64) - 1

# --- golden bytes (docs/FORMAT.md section 5, "Example") -----------------------------

LABELS = b"app\xffapi\xff"
RAW = bytes.fromhex("01 02 00 d0 0f 02 68 69")  # one entry: ts=1000, line "hi"
GOLDEN_HEADER = bytes.fromhex("43 53 57 4c 01 00 00 00 01 00 00 00 6e cb d3 66")
GOLDEN_STREAM = bytes.fromhex(
    "12 00 00 00 e1 21 9f 8d 01 01 71 6d a3 c0 e3 f3 bb 49 61 70 70 ff 61 70 69 ff")
GOLDEN_ENTRIES = bytes.fromhex(
    "12 00 00 00 de 3e 6c 07 02 01 00 00 00 00 00 00 00 01 01 02 00 d0 0f 02 68 69")


def test_golden_bytes_match_format_doc():
    fp = xxh64(LABELS)
    assert wal.segment_header(1) == GOLDEN_HEADER
    assert wal_records.encode_stream(1, fp, LABELS) == GOLDEN_STREAM
    assert wal_records.encode_entries(1, 1, RAW) == GOLDEN_ENTRIES
    doc = (os.path.join(os.path.dirname(__file__), "..", "docs", "FORMAT.md"))
    with open(doc, encoding="utf-8") as f:
        text = " ".join(f.read().split())
    for golden in (GOLDEN_HEADER, GOLDEN_STREAM[:18], GOLDEN_ENTRIES[:18]):
        assert golden.hex(" ") in text


def test_golden_segment_replays(tmp_path):
    (tmp_path / "00000001.wal").write_bytes(GOLDEN_HEADER + GOLDEN_STREAM + GOLDEN_ENTRIES)
    replay = wal.read_segments(tmp_path, repair=False)
    got = [(seq, off, rec) for seq, off, rec in replay]
    assert got[0] == (1, 16, StreamRecord(1, xxh64(LABELS), LABELS))
    seq, off, rec = got[1]
    assert (seq, off, rec.lsn, rec.stream_id, bytes(rec.raw)) == (1, 42, 1, 1, RAW)
    assert replay.report.clean and replay.report.end == (1, 68)


# --- record encoding --------------------------------------------------------------

def parse_frame(framed: bytes):
    length, crc = struct.unpack_from("<II", framed)
    assert len(framed) == 8 + length
    assert crc == crc32c(framed[8:], crc32c(framed[:4]))
    return wal_records.decode(framed[8], framed[9:])


ids = st.one_of(st.integers(0, 300), st.integers(0, U64))


@given(ids, st.integers(0, U64), st.binary(max_size=300))
def test_stream_record_roundtrip(sid, fp, labels):
    assert parse_frame(wal_records.encode_stream(sid, fp, labels)) == StreamRecord(sid, fp, labels)


@given(st.integers(0, U64), ids, st.binary(max_size=2000))
def test_entries_record_roundtrip(lsn, sid, raw):
    rec = parse_frame(wal_records.encode_entries(lsn, sid, raw))
    assert isinstance(rec, EntriesRecord) and isinstance(rec.raw, memoryview)
    assert (rec.lsn, rec.stream_id, bytes(rec.raw)) == (lsn, sid, raw)


def test_entries_raw_is_a_view_not_a_copy():
    payload = bytearray(wal_records.encode_entries(7, 3, b"abcdef")[9:])
    rec = wal_records.decode(ENTRIES, payload)
    payload[-1] = ord("X")
    assert bytes(rec.raw) == b"abcdeX"


@pytest.mark.parametrize("call", [
    lambda: wal_records.encode_entries(-1, 1, b""),
    lambda: wal_records.encode_entries(1 << 64, 1, b""),
    lambda: wal_records.encode_entries(1, -1, b""),
    lambda: wal_records.encode_entries(1, 1 << 64, b""),
    lambda: wal_records.encode_stream(1, -1, b""),
    lambda: wal_records.encode_stream(1, 1 << 64, b""),
])
def test_encoders_reject_out_of_range_integers(call):
    with pytest.raises(ValueError):
        call()


def test_encoders_enforce_the_64_mib_body_limit():
    big = bytes(wal_records.MAX_BODY)
    with pytest.raises(LimitError, match="64 MiB"):
        wal_records.encode_entries(1, 1, big)
    with pytest.raises(LimitError):
        wal_records.encode_stream(1, 1, big)


@pytest.mark.parametrize("rtype, payload, what", [
    (3, b"", "unknown record type 3"),
    (0, b"x", "unknown record type 0"),
    (ENTRIES, b"\x01\x02", "shorter than its lsn"),
    (ENTRIES, bytes(8), "truncated uvarint"),
    (ENTRIES, bytes(8) + b"\xff" * 9 + b"\x02", "overflows"),
    (STREAM, b"", "truncated uvarint"),
    (STREAM, b"\x01" + bytes(7), "fingerprint"),
])
def test_decode_rejects_bad_payloads(rtype, payload, what):
    with pytest.raises(CorruptionError, match=what):
        wal_records.decode(rtype, payload)


def test_generic_frame_matches_typed_encoder():
    payload = wal_records.encode_entries(5, 9, b"xyz")[9:]
    assert wal_records.frame(ENTRIES, payload) == wal_records.encode_entries(5, 9, b"xyz")


# --- writing and reading back across segments --------------------------------------

records_st = st.lists(
    st.one_of(
        st.tuples(st.just(STREAM), ids, st.integers(0, U64), st.binary(max_size=80)),
        st.tuples(st.just(ENTRIES), st.integers(0, U64), ids, st.binary(max_size=200)),
    ),
    min_size=1, max_size=40,
)


def encode(rec):
    kind, a, b, c = rec
    if kind == STREAM:
        return wal_records.encode_stream(a, b, c)
    return wal_records.encode_entries(a, b, c)


def as_tuple(rec):
    if isinstance(rec, StreamRecord):
        return (STREAM, rec.stream_id, rec.fingerprint, bytes(rec.labels))
    return (ENTRIES, rec.lsn, rec.stream_id, bytes(rec.raw))


@given(records_st, st.integers(60, 600), st.lists(st.integers(1, 4), min_size=1))
def test_roundtrip_across_segment_boundaries(recs, segment_size, batches):
    framed = [encode(r) for r in recs]
    with tempfile.TemporaryDirectory() as d:
        w = wal.WALWriter(d, fsync="never", segment_size=segment_size).open()
        i, b = 0, 0
        writes_per_seg: dict[int, int] = {}
        while i < len(framed):
            k = batches[b % len(batches)]
            part = framed[i:i + k]
            seq = w.write(part if k > 1 else part[0])
            assert seq == w.current_segment()
            writes_per_seg[seq] = writes_per_seg.get(seq, 0) + 1
            w._check()
            i += k
            b += 1
        w.close()
        sizes = {s: os.path.getsize(os.path.join(d, wal.segment_name(s))) for s in w.segments()}
        assert w.size_bytes() == sum(sizes.values())
        assert sorted(sizes) == list(range(1, len(sizes) + 1))
        replay = wal.read_segments(d, repair=True)
        got = list(replay)
        assert [as_tuple(r) for _s, _o, r in got] == list(recs)
        assert replay.report.clean and replay.report.records == len(recs)
        assert replay.report.segments_read == len(sizes)
        assert replay.report.bytes == sum(map(len, framed))
        # A segment only outgrows segment_size by holding one oversized write.
        for s, size in sizes.items():
            assert size <= segment_size or writes_per_seg[s] == 1


def test_segment_names_sort_numerically_past_eight_digits(tmp_path):
    for seq in (99_999_999, 100_000_000):
        (tmp_path / wal.segment_name(seq)).write_bytes(
            wal.segment_header(seq) + wal_records.encode_entries(seq, 1, b""))
    (tmp_path / "junk.wal").write_bytes(b"x")
    (tmp_path / "1.wal").write_bytes(b"x")  # fewer than 8 digits: not a segment
    assert wal.list_segments(tmp_path) == [99_999_999, 100_000_000]
    assert [rec.lsn for _s, _o, rec in wal.read_segments(tmp_path, repair=False)] == [
        99_999_999, 100_000_000]
    assert wal.segment_name(100_000_000) == "100000000.wal"


def test_writer_continues_the_newest_segment_after_reopen(tmp_path):
    with wal.WALWriter(tmp_path, fsync="never") as w:
        w.write(wal_records.encode_entries(1, 1, b"a"))
        assert w.current_segment() == 1
    with wal.WALWriter(tmp_path, fsync="never") as w:
        assert w.current_segment() == 1 and w.segments() == [1]
        w.write(wal_records.encode_entries(2, 1, b"b"))
    assert [r.lsn for _s, _o, r in wal.read_segments(tmp_path, repair=True)] == [1, 2]
    assert wal.list_segments(tmp_path) == [1]


def test_writer_starts_a_new_segment_after_an_unrepaired_tail(tmp_path, caplog):
    with wal.WALWriter(tmp_path, fsync="never") as w:
        w.write(wal_records.encode_entries(1, 1, b"a"))
    with open(tmp_path / "00000001.wal", "ab") as f:
        f.write(b"\x05\x00\x00")  # torn frame header, never repaired
    with wal.WALWriter(tmp_path, fsync="never") as w:
        assert w.current_segment() == 2
        w.write(wal_records.encode_entries(2, 1, b"b"))
    assert "does not end with a valid record" in caplog.text
    replay = wal.read_segments(tmp_path, repair=False, tail_ok=False)
    assert [r.lsn for _s, _o, r in replay] == [1, 2]
    assert len(replay.report.problems) == 1  # the torn tail of segment 1, now non-last


def test_writer_removes_leftover_temp_segments(tmp_path):
    (tmp_path / "00000001.wal.tmp").write_bytes(b"CSWL")
    with wal.WALWriter(tmp_path, fsync="never") as w:
        assert w.segments() == [1]
    assert sorted(os.listdir(tmp_path)) == ["00000001.wal"]


def test_cut_and_remove_segments_before(tmp_path):
    with wal.WALWriter(tmp_path, fsync="never") as w:
        assert w.cut() == 1  # nothing in segment 1 yet: no-op
        for lsn in range(1, 4):
            w.write(wal_records.encode_entries(lsn, 1, b"x" * 10))
            w.cut()
        assert w.segments() == [1, 2, 3, 4] and w.current_segment() == 4
        total = sum(os.path.getsize(tmp_path / wal.segment_name(s)) for s in w.segments())
        assert w.size_bytes() == total
        w._check()
        assert w.remove_segments_before(3) == 2
        w._check()
        assert w.segments() == [3, 4] and wal.list_segments(tmp_path) == [3, 4]
        assert w.remove_segments_before(100) == 1  # never the current segment
        assert w.segments() == [4]
        assert w.size_bytes() == os.path.getsize(tmp_path / "00000004.wal")
    assert list(wal.read_segments(tmp_path, repair=True)) == []


def test_writer_argument_checks_and_closed_use(tmp_path):
    with pytest.raises(ValueError, match="fsync"):
        wal.WALWriter(tmp_path, fsync="sometimes")
    with pytest.raises(ValueError, match="segment_size"):
        wal.WALWriter(tmp_path, segment_size=0)
    with pytest.raises(ValueError, match="batch_interval"):
        wal.WALWriter(tmp_path, batch_interval=0)
    with pytest.raises(ValueError, match="batch_bytes"):
        wal.WALWriter(tmp_path, batch_bytes=-1)
    w = wal.WALWriter(tmp_path, fsync="never")
    with pytest.raises(StoreClosedError, match="not open"):
        w.write(b"")
    w.open()
    w.close()
    w.close()  # idempotent
    with pytest.raises(StoreClosedError, match="closed"):
        w.write(wal_records.encode_entries(1, 1, b""))


def test_empty_or_missing_directory_replays_nothing(tmp_path):
    replay = wal.read_segments(tmp_path / "nope", repair=False)
    assert list(replay) == [] and replay.report.end is None and replay.report.clean


def test_repair_and_tail_ok_are_exclusive(tmp_path):
    with pytest.raises(ValueError):
        wal.read_segments(tmp_path, repair=True, tail_ok=True)


# --- tailing ----------------------------------------------------------------------

def lsns(polled):
    return [r.lsn for _s, _o, r in polled]


def test_tailer_follows_appends_and_segments(tmp_path):
    w = wal.WALWriter(tmp_path, fsync="never", segment_size=100).open()
    t = wal.WALTailer(tmp_path)
    assert t.poll() == []
    w.write(wal_records.encode_entries(1, 1, b"a" * 20))
    assert lsns(t.poll()) == [1]
    assert t.poll() == []
    for lsn in range(2, 12):
        w.write(wal_records.encode_entries(lsn, 1, b"b" * 20))
    assert len(w.segments()) > 2
    assert lsns(t.poll()) == list(range(2, 12))
    assert t.position == (w.current_segment(), os.path.getsize(
        tmp_path / wal.segment_name(w.current_segment())))
    w.close()


def test_tailer_waits_for_a_partial_record(tmp_path):
    w = wal.WALWriter(tmp_path, fsync="never").open()
    w.write(wal_records.encode_entries(1, 1, b"a"))
    t = wal.WALTailer(tmp_path)
    assert lsns(t.poll()) == [1]
    rec = wal_records.encode_entries(2, 1, b"second")
    w.write(rec[:5])  # a write in progress, as another process would see it
    assert t.poll() == []
    w.write(rec[5:])
    assert lsns(t.poll()) == [2]
    assert t.problems == []
    w.close()


def test_tailer_starts_where_replay_ended(tmp_path):
    with wal.WALWriter(tmp_path, fsync="never") as w:
        w.write([wal_records.encode_entries(i, 1, b"x") for i in (1, 2)])
    replay = wal.read_segments(tmp_path, repair=False)
    assert lsns(replay) == [1, 2]
    t = wal.WALTailer(tmp_path, start=replay.report.end)
    assert t.poll() == []
    with wal.WALWriter(tmp_path, fsync="never") as w:
        w.write(wal_records.encode_entries(3, 1, b"x"))
    assert lsns(t.poll()) == [3]


def test_tailer_raises_reset_when_its_segment_is_removed(tmp_path):
    w = wal.WALWriter(tmp_path, fsync="never").open()
    w.write(wal_records.encode_entries(1, 1, b"a"))
    t = wal.WALTailer(tmp_path)
    assert lsns(t.poll()) == [1]
    w.cut()
    w.write(wal_records.encode_entries(2, 1, b"a"))
    w.remove_segments_before(w.current_segment())
    with pytest.raises(wal.WALResetError, match="segment 1 was removed"):
        t.poll()
    w.close()


def test_tailer_skips_a_corrupt_finished_segment(tmp_path):
    w = wal.WALWriter(tmp_path, fsync="never").open()
    w.write([wal_records.encode_entries(i, 1, b"abc") for i in (1, 2)])
    w.cut()
    w.write(wal_records.encode_entries(3, 1, b"abc"))
    w.close()
    path = tmp_path / "00000001.wal"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # corrupt record 2
    path.write_bytes(bytes(data))
    t = wal.WALTailer(tmp_path)
    assert lsns(t.poll()) == [1, 3]
    assert len(t.problems) == 1 and "checksum" in t.problems[0].reason
