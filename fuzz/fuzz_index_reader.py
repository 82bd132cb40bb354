"""Fuzz the index-log reader, and the store's interpretation of what it reads.

The input is written as ``index.log`` of an otherwise empty store directory.

1. ``read_index_log`` parses it: a damaged file header raises
   :class:`CorruptionError`; anything else ends at the last valid record with
   the problem returned (``problem is None`` exactly when the valid records
   end at the end of the file, ``tail_ok=False`` raises that problem);
2. a read-only ``chunkstore.open`` replays the records into the in-memory
   index (damaged records are reported in ``replay_report``, not raised), and
   ``verify()``, ``labels()`` and ``series()`` run over the result;
3. a writer opens the store (cutting a torn tail) and closes it; the log
   then reads back without a problem and with the same records;
4. damage ``read_index_log`` finds is found by ``verify()`` too: a writer
   reports it (``replay_report`` or ``verify()``) always, a read-only store
   (and so ``chunkstore verify``) unless it is an incomplete last record,
   which looks like an append in progress.

Allowed: :class:`CorruptionError`.  Everything else escaping, or a failed
oracle, is a finding.  Besides mutated seeds, inputs include logs of
well-framed records (valid checksums) holding arbitrary msgpack values, so
the replay meets records that only a bug or a crafted file would contain.

Run: ``python fuzz/fuzz_index_reader.py [--hypothesis] [--seconds N]``.
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
from chunkstore import index_log  # noqa: E402
from chunkstore._kernels import crc32c  # noqa: E402
from chunkstore.errors import CorruptionError  # noqa: E402

NAME = "index_reader"
_SCRATCH = fuzzlib.scratch_dir(NAME)
_STORE = os.path.join(_SCRATCH, "store")
_LOG = os.path.join(_STORE, "index.log")


def _fresh(data: bytes) -> None:
    shutil.rmtree(_STORE, ignore_errors=True)
    os.makedirs(os.path.join(_STORE, "wal"))
    os.makedirs(os.path.join(_STORE, "segments"))
    with open(_LOG, "wb") as f:
        f.write(data)


def _exercise(store) -> list:
    """Run the read paths over the replayed index; returns ``verify()``'s problems."""
    problems = store.verify().problems
    for name in store.labels():
        store.label_values(name)
    for sel in ('{app=~".+"}', '{app="api"}'):
        store.series(sel)
    store.stats()
    return problems


def _incomplete_tail(data: bytes, end: int) -> bool:
    """The bytes from ``end`` are a record that runs past the end of the file."""
    if len(data) - end < 8:
        return True
    (length,) = struct.unpack_from("<I", data, end)
    return end + 8 + length > len(data)


def check(data: bytes) -> bool:
    _fresh(data)
    try:
        records, end, problem = index_log.read_index_log(_LOG)
    except CorruptionError:
        try:
            chunkstore.open(_STORE, read_only=True, maintenance_interval=0).close()
        except CorruptionError:
            return False
        raise Finding("the store opened an index log whose header read_index_log refuses") from None
    if not 16 <= end <= len(data) or (problem is None) != (end == len(data)):
        raise Finding(f"read_index_log: end {end} of {len(data)} bytes with problem {problem}")
    offsets = [r.offset for r in records]
    if offsets != sorted(set(offsets)) or any(not 16 <= o < end for o in offsets):
        raise Finding(f"read_index_log: record offsets {offsets} outside [16, {end})")
    try:
        index_log.read_index_log(_LOG, tail_ok=False)
    except CorruptionError:
        if problem is None:
            raise Finding("read_index_log(tail_ok=False) raised on a clean log") from None
    else:
        if problem is not None:
            raise Finding("read_index_log(tail_ok=False) did not raise the tail problem")
    with chunkstore.open(_STORE, read_only=True, maintenance_interval=0) as store:
        ro_problems = _exercise(store)
        accepted = problem is None and not store.replay_report.problems
    if problem is not None and not ro_problems and not _incomplete_tail(data, end):
        raise Finding(f"read-only verify() found nothing, read_index_log found {problem}")
    with chunkstore.open(_STORE, maintenance_interval=0) as store:
        w_problems = list(store.replay_report.problems) + _exercise(store)
    if problem is not None and not w_problems:
        raise Finding(f"the writer reported nothing, read_index_log found {problem}")
    records2, end2, problem2 = index_log.read_index_log(_LOG)
    if problem2 is not None or records2 != records:
        raise Finding(f"after a writer's repair the log reads {len(records2)} records "
                      f"(was {len(records)}), problem {problem2}")
    # The records drive maintenance too: compaction reads what they point at
    # (a chunk whose segment file is missing may say so), retention drops them.
    with chunkstore.open(_STORE, maintenance_interval=0, retention="1d") as store:
        try:
            store.compact()
        except (CorruptionError, FileNotFoundError):
            pass
        store.apply_retention(now=1 << 62)
        _exercise(store)
    return accepted


# ---------------------------------------------------------------------------


def fixup(data: bytes) -> bytes:
    """Recompute the file header's crc and every complete record's crc."""
    b = bytearray(data)
    if len(b) >= 16:
        b[12:16] = struct.pack("<I", crc32c(bytes(b[:12])))
    pos = 16
    while pos + 8 <= len(b):
        (length,) = struct.unpack_from("<I", b, pos)
        if length == 0 or pos + 8 + length > len(b):
            break
        crc = crc32c(bytes(b[pos + 8:pos + 8 + length]), crc32c(bytes(b[pos:pos + 4])))
        b[pos + 4:pos + 8] = struct.pack("<I", crc)
        pos += 8 + length
    return bytes(b)


def extra_seeds():
    """Index logs of well-framed records with arbitrary (mostly plausible) msgpack values."""
    from hypothesis import strategies as st

    ints = st.one_of(st.integers(-2, 70), st.sampled_from((-(1 << 63), (1 << 63) - 1,
                                                           (1 << 64) - 1)))
    scalars = st.one_of(ints, st.text(max_size=12), st.binary(max_size=12), st.none(),
                        st.booleans(), st.floats(allow_nan=True))
    values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=3), kids, max_size=2), max_leaves=8)
    labels = st.sampled_from((b"app\xffapi\xff", b"", b"\xff", b"a\xff\xff", b"app\xffweb\xff"))
    segment = st.sampled_from(("segments/2024-01-01/00000001.seg", "", "../x", "/etc/passwd",
                               "segments/2024-01-01"))
    plausible = st.one_of(
        st.tuples(st.just(index_log.STREAM), st.tuples(ints, ints, labels).map(list)),
        st.tuples(st.just(index_log.CHUNK), st.tuples(
            ints, ints, segment, ints, ints, ints, ints, ints, ints, ints, ints).map(list)),
        st.tuples(st.just(index_log.DROP), st.lists(ints, max_size=3)),
        st.tuples(st.just(index_log.TOMBSTONE), st.tuples(
            ints, st.sampled_from(('{app="api"}', '{app="api"} |= "x"', "{", "",
                                   'rate({a="b"}[1m])')),
            ints, ints, ints).map(list)),
        st.tuples(st.just(index_log.TOMBSTONE_DONE), st.lists(ints, max_size=3)),
    )
    anything = st.tuples(st.integers(0, 7), values)
    record = st.one_of(plausible, plausible, anything).map(lambda r: (r[0], r[1]))

    def frame(rtype, value) -> bytes:
        import msgpack

        body = bytes([rtype]) + msgpack.packb(value, use_bin_type=True)
        length = struct.pack("<I", len(body))
        return length + struct.pack("<I", crc32c(body, crc32c(length))) + body

    return st.lists(record, max_size=8).map(
        lambda recs: index_log._header_bytes() + b"".join(frame(t, v) for t, v in recs))


if __name__ == "__main__":
    fuzzlib.main(NAME)
