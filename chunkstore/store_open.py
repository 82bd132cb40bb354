"""Opening a store: lock, load the index log, replay the WAL, clean up.

Recovery never needs manual action: a torn index-log tail is cut at the last
valid record, a torn WAL tail likewise (both logged and reported in
``store.replay_report``), WAL entries already sealed into chunks are skipped
by LSN, and segment files no live chunk points at (a crash between writing a
chunk and recording it) are removed — their entries are still in the WAL.

Damage in the middle of the index log is skipped (the reader resynchronises
on the next valid record, docs/FORMAT.md section 6) and reported; a chunk
whose stream lost its STREAM record gets its labels back from its own chunk
header.  The writer then moves unreferenced segments to ``lost+found/`` and
rewrites the log without the damage before its next append; a read-only
opener changes nothing.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from dataclasses import dataclass, field

from chunkstore import wal as wal_mod
from chunkstore import wal_records
from chunkstore.chunkfile_read import SegmentReader
from chunkstore.errors import ChunkstoreError, CorruptionError
from chunkstore.fsdir import fsync_dir
from chunkstore.head import StreamHead
from chunkstore.index import MemIndex
from chunkstore.index_log import (
    CHUNK,
    DROP,
    STREAM,
    TOMBSTONE,
    TOMBSTONE_DONE,
    IndexLog,
    scan_index_log,
)
from chunkstore.labels import Labels
from chunkstore.seal_commit import SealCommitter

log = logging.getLogger("chunkstore.store")

__all__ = ["open_into", "refresh", "OpenReport", "wal_stream_labels"]


@dataclass
class OpenReport:
    """What recovery found: records replayed and every problem it repaired or skipped."""

    index_records: int = 0
    wal_records: int = 0
    wal_entries_skipped: int = 0
    problems: list = field(default_factory=list)
    orphan_segments_removed: list = field(default_factory=list)
    #: ``(stream_id, labels, chunk_id)`` of each stream whose STREAM record was
    #: lost and whose labels were read back from that chunk's header
    streams_recovered: list = field(default_factory=list)
    #: True when the writer will rewrite index.log without its damaged records
    #: (before its next append; see ``IndexLog.rewrite_before_next_append``)
    index_rewrite_pending: bool = False


def open_into(store) -> None:
    path = store.path
    index_path = os.path.join(path, "index.log")
    if store.read_only:
        if not os.path.exists(index_path):
            raise FileNotFoundError(f"store {path}: no chunkstore here (missing index.log)")
    else:
        store._acquire_lock()
        try:
            os.makedirs(os.path.join(path, "wal"), exist_ok=True)
            os.makedirs(os.path.join(path, "segments"), exist_ok=True)
            if not os.path.exists(index_path):
                IndexLog.create(index_path)
        except BaseException:
            os.close(store._lock_fd)
            store._lock_fd = None
            raise
    try:
        report = OpenReport()
        _load(store, report)
        store.replay_report = report
        if not store.read_only:
            _open_writer(store, report)
    except BaseException:
        if store._lock_fd is not None:
            os.close(store._lock_fd)
            store._lock_fd = None
        raise


def _signature(path: str):
    try:
        st = os.stat(os.path.join(path, "index.log"))
        idx = (st.st_ino, st.st_size)
    except FileNotFoundError:
        idx = None
    wal_dir = os.path.join(path, "wal")
    try:
        wal = tuple(sorted((n, os.stat(os.path.join(wal_dir, n)).st_size)
                           for n in os.listdir(wal_dir) if n.endswith(".wal")))
    except FileNotFoundError:
        wal = ()
    return idx, wal


def _load(store, report: OpenReport) -> None:
    """Rebuild the in-memory index and heads from index.log and the WAL.

    The cyclic garbage collector is paused meanwhile: loading creates a few
    objects per chunk and none of them is garbage, yet every 700 allocations
    the collector would walk them all again (it doubled the open time of a
    100,000-chunk store).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _load_index_and_wal(store, report)
    finally:
        if was_enabled:
            gc.enable()


def _load_index_and_wal(store, report: OpenReport) -> None:
    index = MemIndex(fingerprint_fn=store.options.fingerprint_fn)
    heads: dict[int, StreamHead] = {}
    signature = _signature(store.path)
    index_path = os.path.join(store.path, "index.log")
    scan = scan_index_log(index_path)
    records, end, problem = scan.records, scan.end, scan.tail
    for skipped in scan.skipped:
        report.problems.append(skipped)
        log.warning("%s", skipped)
    if problem is not None:
        report.problems.append(problem)
        if store.read_only:
            log.debug("index log tail not complete (writer active?): %s", problem)
        else:
            log.warning("index log: %s; cutting the tail", problem)
    max_sid = 0
    max_cid = 0
    logged: set[int] = set()
    tombstones: dict[int, list] = {}
    applied: list[tuple[int, list]] = []  # what a repaired log holds, in order
    from chunkstore.store import chunk_from_record

    # Keys of the per-stream time order are sorted once, not inserted one by one.
    with index.bulk_load():
        for r in records:
            v = r.value
            try:
                _check_record(r.type, v)
                if r.type == STREAM:
                    sid = v[0]
                    if sid not in index.streams:
                        index.add_stream(sid, Labels.from_canonical(v[2]))
                    logged.add(sid)
                    max_sid = max(max_sid, sid)
                elif r.type == CHUNK and v[2] == "":
                    # compaction's index snapshot carries a stream's sealed LSN
                    # past its dropped chunks this way (FORMAT.md section 6):
                    # no file, so never in the index, only the LSN counts
                    e = index.streams.get(v[1])
                    if e is None:
                        raise ValueError(f"chunk {v[0]}: sealed-LSN record of unknown "
                                         f"stream {v[1]}")
                    if v[10] > e.flushed_lsn:
                        e.flushed_lsn = v[10]
                    if v[0] > max_cid:
                        max_cid = v[0]
                elif r.type == CHUNK:
                    sid = v[1]
                    if sid not in index.streams:
                        lbls = _recover_stream(store, index, chunk_from_record(v), report,
                                               index_path, r.offset)
                        logged.add(sid)
                        max_sid = max(max_sid, sid)
                        applied.append((STREAM, [sid, lbls.fingerprint, lbls.canonical]))
                    # straight from the record: the index keeps fields, not ChunkRefs
                    index.add_chunk_fields(*v[:11])
                    if v[0] > max_cid:
                        max_cid = v[0]
                elif r.type == DROP:
                    for cid in v:
                        index.remove_chunk(cid)
                elif r.type == TOMBSTONE:
                    tombstones[v[0]] = v
                elif r.type == TOMBSTONE_DONE:
                    for tid in v:
                        tombstones.pop(tid, None)
                applied.append((r.type, v))
            except (ValueError, TypeError, IndexError) as exc:
                report.problems.append(CorruptionError(f"index log: bad record: {exc}",
                                                       index_path, r.offset))
    report.index_records = len(records)
    store._index_end = end
    # Damage in the middle stays in the file until a writer rewrites it: the
    # snapshot is exactly what was applied, with the recovered STREAM records.
    store._index_repair = applied if (scan.skipped or report.streams_recovered) else None
    report.index_rewrite_pending = store._index_repair is not None and not store.read_only
    # WAL replay: entries whose LSN is at or below their stream's flushed LSN
    # are already in sealed chunks.
    wal_dir = os.path.join(store.path, "wal")
    seg_max: dict[int, int] = {}
    stream_record_seg: dict[int, int] = {}
    max_lsn = max((e.flushed_lsn for e in index.streams.values()), default=0)
    replay = wal_mod.read_segments(wal_dir, repair=not store.read_only)
    for seq, offset, rec in replay:
        report.wal_records += 1
        if isinstance(rec, wal_records.StreamRecord):
            sid = rec.stream_id
            # The id is taken even when the labels are bad: a new stream must
            # not inherit the entries the WAL still holds under it.
            max_sid = max(max_sid, sid)
            if sid not in index.streams:
                try:
                    lbls = wal_stream_labels(rec, os.path.join(wal_dir, wal_mod.segment_name(seq)),
                                             offset)
                except CorruptionError as exc:
                    # Not registered: its entries are reported as those of an
                    # unknown stream, and every other record still replays.
                    report.problems.append(exc)
                    log.warning("%s", exc)
                    continue
                index.add_stream(sid, lbls)
            if sid not in logged:
                stream_record_seg[sid] = seq
        else:
            sid, lsn = rec.stream_id, rec.lsn
            seg_max[seq] = max(seg_max.get(seq, 0), lsn)
            max_lsn = max(max_lsn, lsn)
            entry = index.streams.get(sid)
            if entry is None:
                report.problems.append(CorruptionError(
                    f"wal: entries for unknown stream {sid}",
                    os.path.join(wal_dir, f"{seq:08d}.wal"),
                    offset))
                continue
            if lsn <= entry.flushed_lsn:
                report.wal_entries_skipped += 1
                continue
            head = heads.get(sid)
            if head is None:
                head = heads[sid] = StreamHead(sid, entry.labels, entry.max_ts)
            try:
                head.builder.extend_raw(bytes(rec.raw))
            except CorruptionError as exc:
                report.problems.append(exc.with_location(
                    os.path.join(wal_dir, f"{seq:08d}.wal"), offset))
                continue
            head.note_append(lsn)
    rep = getattr(replay, "report", None)
    if rep is not None:
        report.problems.extend(getattr(rep, "problems", []))
    # Commit the rebuilt state to the store in one step (readers may refresh).
    with store._lock:
        store.index = index
        store.heads = heads
        store._label_cache = {}
        store._chunk_meta_cache = {}
        store._logged_streams = logged
        store._wal_seg_max_lsn = seg_max
        store._stream_record_seg = stream_record_seg
        store._pending_stream_records = {}
        store._tombstones = _compile_tombstones(tombstones, report, index_path)
        store.next_stream_id = max_sid + 1
        store.next_chunk_id = max_cid + 1
        store.next_lsn = max_lsn + 1
        store._head_mem = sum(h.memory_bytes() for h in heads.values())
        store._reader_signature = signature


def wal_stream_labels(rec: wal_records.StreamRecord, path: str, offset: int) -> Labels:
    """The labels of a WAL STREAM record, checked like an index-log record's.

    The record's checksum only says its bytes are as written; labels that are
    not a canonical encoding (a bug, a crafted file) raise
    :class:`CorruptionError` with the segment ``path`` and the record's
    ``offset``, for replay and ``verify()`` to report.
    """
    try:
        return Labels.from_canonical(bytes(rec.labels))
    except ValueError as exc:  # also UnicodeDecodeError
        raise CorruptionError(f"wal: bad STREAM record for stream {rec.stream_id}: {exc}",
                              path, offset) from None


def _recover_stream(store, index: MemIndex, ref, report: OpenReport, index_path: str,
                    offset: int) -> Labels:
    """Register the stream of ``ref``, whose STREAM record is lost, from the chunk's header.

    The chunk header carries the fingerprint and canonical labels (FORMAT.md
    section 4); the whole chunk metadata (header, index, trailer checksums)
    must verify, the fingerprint must match the labels, and the labels must
    not belong to another stream.  Reported in ``report``; raises
    ``ValueError`` when the labels cannot be recovered (the chunk is then
    reported, not applied).
    """
    sid, cid = ref.stream_id, ref.chunk_id
    why = f"chunk {cid} names stream {sid}, whose STREAM record is lost"
    try:
        with SegmentReader(os.path.join(store.path, ref.segment)) as reader:
            meta = reader.read_chunk_meta(ref.offset, ref.length)
        lbls = Labels.from_canonical(meta.labels)
    except (OSError, ValueError, ChunkstoreError) as exc:
        raise ValueError(f"{why}; its labels cannot be read from {ref.segment!r} at offset "
                         f"{ref.offset}: {exc}") from None
    if lbls.fingerprint != meta.fingerprint:
        raise ValueError(f"{why}; the chunk header in {ref.segment} at offset {ref.offset} "
                         f"has fingerprint {meta.fingerprint:#x}, not that of {lbls}")
    other = index.find_stream(lbls)
    if other is not None:
        raise ValueError(f"{why}; the labels {lbls} in its chunk header belong to stream {other}")
    index.add_stream(sid, lbls)
    report.streams_recovered.append((sid, str(lbls), cid))
    report.problems.append(CorruptionError(
        f"index log: {why}; labels {lbls} recovered from the chunk header in {ref.segment} "
        f"at offset {ref.offset}", index_path, offset))
    log.warning("index log: %s; labels %s recovered from the chunk header in %s", why, lbls,
                ref.segment)
    return lbls


# The fields of each record type (FORMAT.md section 6); all but these are integers.
_RECORD_FIELDS = {
    STREAM: ("stream", ("stream_id", "fingerprint", "labels")),
    CHUNK: ("chunk", ("chunk_id", "stream_id", "segment", "offset", "length", "min_ts",
                      "max_ts", "n_entries", "text_bytes", "stored_bytes", "max_lsn")),
    TOMBSTONE: ("tombstone", ("tombstone_id", "query", "start_ns", "end_ns", "created_ns")),
}
_TEXT_FIELDS = {"labels": bytes, "segment": str, "query": str}


_SAFE_SEGMENTS: set[str] = set()  # segment names already checked (few per store)


def _check_record(rtype: int, v: list) -> None:
    """Refuse an index record that no writer writes, before any of it is applied.

    Its checksum only says the bytes are as written; a record of the wrong
    shape (a bug, a crafted file) must be reported, not half-applied to the
    index for a later query, compaction or retention to trip over.  Segment
    names stay inside the store: retention unlinks the files they name.
    Raises ``ValueError``.
    """
    if (rtype == CHUNK and type(v) is list and len(v) >= 11 and type(v[2]) is str
            and v[2] in _SAFE_SEGMENTS and type(v[0]) is int and type(v[1]) is int
            and type(v[3]) is int and type(v[4]) is int and type(v[5]) is int
            and type(v[6]) is int and type(v[7]) is int and type(v[8]) is int
            and type(v[9]) is int and type(v[10]) is int):
        return  # the common case on open: one chunk record of a known segment
    _check_record_slow(rtype, v)


def _check_record_slow(rtype: int, v: list) -> None:
    if rtype in (DROP, TOMBSTONE_DONE):
        what, names = ("drop" if rtype == DROP else "tombstone-done"), ("id",) * len(v)
    else:
        what, names = _RECORD_FIELDS[rtype]
        if len(v) < len(names):
            raise ValueError(f"{what} record has {len(v)} fields, not {len(names)}")
    for name, value in zip(names, v, strict=False):  # later fields: a newer writer
        kind = _TEXT_FIELDS.get(name, int)
        if type(value) is not kind:
            raise ValueError(f"{what} record: {name} is {value!r:.60}, not {kind.__name__}")
    if rtype == CHUNK:
        # The only names writers make: segments/<day>/<n>.seg (FORMAT.md section 7),
        # and "" with length 0 for a sealed-LSN record (compaction's snapshot)
        seg = v[2]
        if seg == "" and v[4] == 0:
            return
        parts = seg.split("/")
        if ("\0" in seg or len(parts) != 3 or parts[0] != "segments"
                or parts[1] in ("", ".", "..") or len(parts[2]) <= 4
                or not parts[2].endswith(".seg")):
            raise ValueError(f"chunk {v[0]}: segment {seg!r:.80} is not a segment file of "
                             "the store (segments/<day>/<n>.seg)")
        if len(_SAFE_SEGMENTS) < 100_000:
            _SAFE_SEGMENTS.add(seg)


def _open_writer(store, report: OpenReport) -> None:
    opts = store.options
    ilog = IndexLog(os.path.join(store.path, "index.log"))
    ilog.open_append(store._index_end)
    ilog.records_written = report.index_records
    store._index_log = ilog
    store._committer = SealCommitter(ilog, store._commit_failed)
    # Orphans go to lost+found (durably) while the damage is still on disk;
    # only later may the repaired log, which no longer shows it, be written.
    _remove_orphans(store, report)
    if store._index_repair is not None:
        log.warning("index log %s: damaged records were skipped; the log will be rewritten "
                    "without them before the next append", ilog.path)
        ilog.rewrite_before_next_append(store._index_repair)
    store._index_repair = None
    w = wal_mod.WALWriter(
        os.path.join(store.path, "wal"), fsync=opts.fsync, segment_size=opts.wal_segment_size,
        batch_interval=opts.sync_interval, batch_bytes=opts.sync_bytes,
    )
    w.open()
    store._wal = w
    # Cut oversized heads into blocks so the head holds compressed data.
    for head in store.heads.values():
        if head.builder.size_bytes >= opts.block_size:
            store._cut(head)
    store._head_mem = sum(h.memory_bytes() for h in store.heads.values())
    if opts.maintenance_interval > 0:
        t = threading.Thread(target=store._maintenance_loop, name="chunkstore-maintenance",
                             daemon=True)
        store._maint_thread = t
        t.start()
    if opts.compaction_interval > 0:
        from chunkstore import compaction_background

        compaction_background.start(store)


def _remove_orphans(store, report: OpenReport) -> None:
    """Remove segment files no live chunk points at (a crash between write and record).

    Their entries are still in the WAL, unless the index log itself was
    damaged: then they are moved to ``lost+found/`` instead of deleted.
    """
    live = set(store.index.segment_live_bytes())  # the segments with a live chunk
    index_damaged = any(isinstance(p, CorruptionError) and p.path and
                        p.path.endswith("index.log") for p in report.problems)
    seg_root = os.path.join(store.path, "segments")
    moved_from: list[str] = []
    for day in sorted(os.listdir(seg_root)):
        d = os.path.join(seg_root, day)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            rel = f"segments/{day}/{name}"
            if name.endswith(".tmp"):
                os.unlink(os.path.join(d, name))
            elif name.endswith(".seg") and rel not in live:
                if index_damaged:
                    # The index log lost records: this segment may hold the only
                    # copy of sealed data.  Keep it aside for `chunkstore inspect`.
                    dest = os.path.join(store.path, "lost+found", f"{day}-{name}")
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    os.replace(os.path.join(d, name), dest)
                    moved_from.append(d)
                    log.warning("store %s: index log was damaged; moved unreferenced segment "
                                "%s to %s", store.path, rel, dest)
                else:
                    os.unlink(os.path.join(d, name))
                report.orphan_segments_removed.append(rel)
        if not os.listdir(d):
            os.rmdir(d)
    if moved_from:
        # The moves must be durable before a repaired index log (which no
        # longer shows the damage) lets a later writer delete orphans.
        for d in [os.path.join(store.path, "lost+found"), seg_root, *sorted(set(moved_from))]:
            if os.path.isdir(d):
                fsync_dir(d)



def refresh(store) -> bool:
    """For read-only stores: reload when the writer has flushed anything new.

    Returns True when the state was reloaded.  The reload is a fresh replay
    of index.log and the WAL, swapped in atomically, so a concurrent query
    keeps its consistent snapshot.
    """
    sig = _signature(store.path)
    if sig == store._reader_signature:
        return False
    for _attempt in range(5):
        report = OpenReport()
        try:
            _load(store, report)
        except (FileNotFoundError, CorruptionError, ChunkstoreError):
            # The writer removed a WAL segment or rewrote the index under us.
            continue
        if _signature(store.path) == store._reader_signature:
            store.replay_report = report
            return True
    store.replay_report = report
    return True


def _compile_tombstones(records: dict, report: OpenReport, path: str) -> dict:
    from chunkstore.deletion import compile_tombstone

    out = {}
    for tid, v in records.items():
        try:
            out[tid] = compile_tombstone(v)
        except (ChunkstoreError, ValueError, TypeError) as exc:
            report.problems.append(CorruptionError(f"index log: bad tombstone {tid}: {exc}",
                                                   path, None))
    return out
