"""``store.verify()``: check every checksum in a store and list what is damaged.

It walks what the index log references (every live chunk's header, index,
trailer and block checksums, deep-decoding blocks), every segment file on
disk (also chunks the index does not point at), the index log itself and the
WAL. Nothing is repaired: the report says what is damaged and where.

The last record of ``index.log`` and of the newest WAL segment may be a
write in progress when another process writes the store, so there a record
that runs past the end of the file is not reported by a read-only store
(in the WAL, unless a valid record follows it: then its length is damaged).
A record that is complete in the file (its frame header is there and its
declared length fits) and still fails its checksum or decoding is damage,
not a write in progress (a reader only ever sees a prefix of what a writer
wrote), and is reported by every store, with the file and offset.  So is a
WAL STREAM record whose labels are not a canonical encoding.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from chunkstore import wal as wal_mod
from chunkstore._kernels import crc32c
from chunkstore.chunkfile import SegmentReader
from chunkstore.errors import ChunkstoreError, CorruptionError
from chunkstore.index_log import scan_index_log
from chunkstore.store_open import wal_stream_labels
from chunkstore.wal_records import FRAME_SIZE, MAX_BODY, StreamRecord, decode

__all__ = ["VerifyReport", "verify_store"]


@dataclass
class VerifyReport:
    """What :func:`verify_store` checked and every problem found."""

    segments: int = 0
    chunks: int = 0
    blocks: int = 0
    wal_segments: int = 0
    wal_records: int = 0
    index_records: int = 0
    problems: list[CorruptionError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (f"checked {self.segments} segment files, {self.chunks} chunks, {self.blocks} "
                f"blocks, {self.index_records} index records, {self.wal_records} WAL records "
                f"in {self.wal_segments} segments")
        if self.ok:
            return head + ": all checksums verify"
        return head + f": {len(self.problems)} problem(s)\n" + "\n".join(
            f"  {p}" for p in self.problems)


def verify_store(store) -> VerifyReport:
    rep = VerifyReport()
    root = store.path
    with store._lock:
        store._check_open()
        if not store.read_only:
            store._commit_seals()  # sealed chunks' records are in the log we read
        refs = list(store.index.chunks.values())
    # index log: damage in the middle always; the tail when it is not a write in progress
    try:
        scan = scan_index_log(os.path.join(root, "index.log"))
        rep.index_records = len(scan.records)
        rep.problems.extend(scan.skipped)
        if scan.tail is not None and (scan.tail_complete or not store.read_only):
            rep.problems.append(scan.tail)
    except CorruptionError as exc:
        rep.problems.append(exc)
    # chunks referenced by the index
    by_segment: dict[str, list] = {}
    for ref in refs:
        by_segment.setdefault(ref.segment, []).append(ref)
    for name, seg_refs in sorted(by_segment.items()):
        path = os.path.join(root, name)
        try:
            reader = SegmentReader(path)
        except (OSError, CorruptionError) as exc:
            rep.problems.append(exc if isinstance(exc, CorruptionError) else
                                CorruptionError(f"segment unreadable: {exc}", path, None))
            continue
        try:
            for ref in seg_refs:
                rep.chunks += 1
                try:
                    meta = reader.read_chunk_meta(ref.offset, ref.length)
                except CorruptionError as exc:
                    rep.problems.append(exc)
                    continue
                rep.blocks += len(meta.blocks)
                rep.problems.extend(reader.verify_chunk_blocks(meta, deep=True))
        finally:
            reader.close()
    # every segment file on disk (also ones the index does not reference)
    seg_root = os.path.join(root, "segments")
    for day in sorted(os.listdir(seg_root)) if os.path.isdir(seg_root) else ():
        d = os.path.join(seg_root, day)
        for fname in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            if not fname.endswith(".seg"):
                continue
            rep.segments += 1
            rel = f"segments/{day}/{fname}"
            if rel in by_segment:
                continue  # checked deeply above
            try:
                with SegmentReader(os.path.join(d, fname)) as r:
                    rep.problems.extend(r.verify())
            except CorruptionError as exc:
                rep.problems.append(exc)
    # WAL
    wal_dir = os.path.join(root, "wal")
    if os.path.isdir(wal_dir):
        it = wal_mod.read_segments(wal_dir, repair=False)
        try:
            for seq, offset, rec in it:
                rep.wal_records += 1
                if isinstance(rec, StreamRecord):
                    try:
                        wal_stream_labels(rec, os.path.join(wal_dir, wal_mod.segment_name(seq)),
                                          offset)
                    except CorruptionError as exc:
                        rep.problems.append(exc)
        except ChunkstoreError as exc:  # pragma: no cover - reader reports instead
            rep.problems.append(CorruptionError(str(exc), wal_dir, None))
        report = getattr(it, "report", None)
        if report is not None:
            rep.wal_segments = report.segments_read
            for p in report.problems:
                rep.problems.append(p.as_error() if hasattr(p, "as_error") else p)
            if report.end is not None:
                # replay ends quietly at the newest segment's last valid record
                seq, offset = report.end
                damage = _complete_bad_record(
                    os.path.join(wal_dir, wal_mod.segment_name(seq)), offset)
                if damage is not None:
                    rep.problems.append(damage)
    return rep


_FRAME = struct.Struct("<II")


def _complete_bad_record(path: str, offset: int) -> CorruptionError | None:
    """The damage of the WAL record at ``offset``, where replay ended quietly, if any.

    Damage: a record complete in the file that fails its checksum or
    decoding, an impossible length, or a record that runs past the end of
    the file while a valid record follows it (its length is damaged:
    :func:`chunkstore.wal.find_valid_record`).  ``None`` when the file ends
    there, when the record runs past the end with nothing valid after it (a
    write in progress, or a torn tail the writer cuts) or when it is valid
    now (a writer finished it after replay read the file).
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:  # a bad newest segment: the writer starts the next one
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        hdr = os.pread(f.fileno(), FRAME_SIZE, offset)
        if len(hdr) < FRAME_SIZE:
            return None
        length, crc = _FRAME.unpack(hdr)
        if length == 0 or length > MAX_BODY:
            return CorruptionError(f"wal: declared body length {length} outside 1..{MAX_BODY} "
                                   "in the newest segment", path, offset)
        if offset + FRAME_SIZE + length > size:
            # An append in progress or cut short, unless a valid record
            # follows: then the length field is what is damaged.
            after = wal_mod.find_valid_record(f.fileno(), offset + 1, size)
            if after is None:
                return None
            return CorruptionError(
                f"wal: record of {length} bytes runs past the end of the newest segment "
                f"({size - offset - FRAME_SIZE} bytes left), but a valid record follows at "
                f"offset {after}: the length is damaged, not an append in progress", path,
                offset)
        body = os.pread(f.fileno(), length, offset + FRAME_SIZE)
        if len(body) < length:  # the file shrank under us
            return None
    if crc32c(body, crc32c(hdr[:4])) != crc:
        return CorruptionError(f"wal: record checksum mismatch (body length {length}) in the "
                               "newest segment", path, offset)
    try:
        decode(body[0], memoryview(body)[1:])
    except CorruptionError as exc:
        return CorruptionError(f"wal: bad record in the newest segment: {exc.detail}", path,
                               offset)
    return None
