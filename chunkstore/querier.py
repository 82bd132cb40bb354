"""The read path: select streams, prune by time, scan blocks, merge lazily.

A log query runs as: selector → postings → chunks and blocks overlapping
``[start, end)`` → the scanner applies literal line filters inside the
decompressed block (no Python object for a line that fails them) → the rest
of the pipeline (regexes, parsers, label filters, formatting) on survivors →
merge across streams by time with ``direction`` and a global ``limit``.

Everything is lazy: sources (chunks, then blocks) are opened only when the
merge frontier reaches their time range, so ``limit=10`` reads a handful of
blocks whatever the store size.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from itertools import islice

from chunkstore import _kernels
from chunkstore._block_py import _uvarint as _raw_uvarint
from chunkstore.deletion import applicable
from chunkstore.errors import CorruptionError, QueryError
from chunkstore.index import ChunkList, ChunkRef
from chunkstore.results import Entry, QueryStats, Stats
from chunkstore.timeutil import I64_MAX, I64_MIN, now_ns, to_ns
from chunkstore.tokenfilter import SkipGate, chunk_filters

__all__ = ["query", "select_entries", "label_names", "label_values", "series", "stats",
           "time_range", "snapshot_streams", "raw_entry_count"]

MATCH_ALL = None  # lazily built Filter([])
END_UNBOUNDED = 1 << 63  # exclusive end past every int64 timestamp


def time_range(start, end) -> tuple[int, int]:
    """``[start, end)`` in ns from user values (None = unbounded)."""
    s = I64_MIN if start is None else to_ns(start, what="start")
    # end is exclusive: "unbounded" is 2**63 so an entry at the largest int64 is included
    e = END_UNBOUNDED if end is None else to_ns(end, what="end")
    return s, e


def _match_all():
    global MATCH_ALL
    if MATCH_ALL is None:
        MATCH_ALL = _kernels.scan.Filter([])
    return MATCH_ALL


# ---------------------------------------------------------------------------
# lazy merging of time-ordered sources

def lazy_merge(sources: list[tuple[int, int, Callable[[object], Iterator], object]],
               forward: bool) -> Iterator:
    """Merge sources that each yield items ``(ts, ...)`` in order.

    ``sources`` are ``(min_ts, max_ts, opener, arg)``; a source is opened
    (``opener(arg)``) only when the merge can no longer rule out that it holds
    the next item.  One opener per kind of source and an argument each, not a
    closure each: a query over many chunks allocates one tuple per chunk (the
    garbage collector's full passes dominate such a query's time).  Sources
    may overlap in time (out-of-order writes); ties keep source order, then
    position, so equal timestamps stay in arrival order going forward and
    reverse going backward.
    """
    if not sources:
        return
    if len(sources) == 1:
        yield from sources[0][2](sources[0][3])
        return
    if forward:
        sources = sorted(sources, key=lambda s: s[0])
    else:
        sources = sorted(sources, key=lambda s: -s[1])
    heap: list = []
    i = 0
    n = len(sources)
    sign = 1 if forward else -1

    def push_from(idx: int, it: Iterator) -> None:
        for item in it:
            heapq.heappush(heap, (sign * item[0], idx, item, it))
            return

    while heap or i < n:
        if not heap:
            push_from(i, iter(sources[i][2](sources[i][3])))
            i += 1
            continue
        top = heap[0][0]
        # open every source that may hold something at or before the frontier
        while i < n and (sign * (sources[i][0] if forward else sources[i][1])) <= top:
            push_from(i, iter(sources[i][2](sources[i][3])))
            i += 1
            top = heap[0][0]
        key, idx, item, it = heapq.heappop(heap)
        yield item
        push_from(idx, it)


# ---------------------------------------------------------------------------
# snapshots and per-stream iteration

def snapshot_streams(store, matchers, start: int, end: int):
    """Under the store lock: ``[(sid, labels, chunk refs, head snapshot)]``."""
    with store._lock:
        store._check_open()
        if store.read_only:
            from chunkstore.store_open import refresh

            refresh(store)
        index = store.index
        policy = store.retention_policy
        now = now_ns() if policy is not None else 0
        out = []
        for sid in index.select(matchers):
            entry = index.streams[sid]
            s = start
            if policy is not None:
                # expired entries are never returned, even before files go
                cutoff = policy.cutoff_ns(entry.labels, now)
                if cutoff is not None and cutoff > s:
                    s = cutoff
            if s >= end:
                continue
            chunks = entry.chunks_overlapping(s, end)
            head = store.heads.get(sid)
            hs = head.snapshot(store._cut_worker) if head is not None and not head.empty else None
            if not chunks and hs is None:
                continue
            tombs = [t for t in applicable(store, entry.labels) if t.start < end and t.end > s]
            out.append((sid, entry.labels, chunks, hs, s, tombs))
        return out


def raw_entry_count(raw) -> int:
    """Entries in a raw block: its leading uvarint (``docs/FORMAT.md`` §2), 0 if unreadable."""
    try:
        return _raw_uvarint(raw, 0, len(raw), "count")[0]
    except CorruptionError:
        return 0


def _scan_stored(stored: bytes, flt, start, end, forward, stats: QueryStats, path=None,
                 base=0) -> list:
    stats.check_deadline()
    stats.blocks_read += 1
    stats.bytes_read += len(stored)
    try:
        return _kernels.scan.scan_block(stored, flt, start, end, -1, not forward)
    except Exception as exc:
        from chunkstore.errors import CorruptionError

        if isinstance(exc, CorruptionError):
            raise exc.with_location(path, base) from None
        raise


def _chunk_source(store, ref: ChunkRef, flt, start, end, forward, stats,
                  gate: SkipGate | None = None) -> Iterator:
    try:
        meta = store.chunk_meta(ref)
        reader = store.segment_reader(ref.segment)
        filters = chunk_filters(reader, meta, gate)
    except FileNotFoundError:
        with store._lock:  # the index is read under the lock (its columns move on a rebuild)
            dropped = ref.chunk_id not in store.index.chunks
        if dropped:
            return iter(())  # dropped by retention/compaction after our snapshot
        raise
    stats.chunks += 1
    fast_at = getattr(_kernels.scan, "scan_block_at", None) if _kernels.scan.FAST_LZ4 else None

    def open_block(bm):
        stats.bytes_decompressed += bm.raw_len
        stats.lines_scanned += bm.n_entries
        if fast_at is not None:
            # read + check + decompress + scan in C without the GIL
            stats.check_deadline()
            got = fast_at(reader._fileno(), ref.offset + bm.offset, bm.stored_len,
                          bm.codec, bm.raw_len, flt, start, end, -1, not forward)
            if got is not None:
                stats.blocks_read += 1
                stats.bytes_read += bm.stored_len
                return got
        stored = reader.read_block(ref.offset, bm)  # the checked path: precise errors
        return _scan_stored(stored, flt, start, end, forward, stats, reader.path,
                            ref.offset + bm.offset)

    blocks = []
    for i, bm in enumerate(meta.blocks):
        if bm.max_ts < start or bm.min_ts >= end:
            stats.blocks_skipped += 1  # outside the time range: never read
            continue
        if filters is not None and not gate.may_match(filters[i]):
            stats.blocks_filtered += 1
            continue
        blocks.append((bm.min_ts, bm.max_ts, open_block, bm))
    return lazy_merge(blocks, forward)


def stream_source(store, chunks, head_snap, flt, start, end, forward, stats,
                  gate: SkipGate | None = None) -> Iterator:
    """Entries ``(ts, line, metadata)`` of one stream in time order.

    ``gate`` (a :class:`~chunkstore.tokenfilter.SkipGate` over the token
    requirements of the scanner clauses) lets blocks whose token filter
    rules out a match go unread.
    """
    # A ChunkList (what snapshot_streams holds) gives the time spans without
    # building a ChunkRef: one is built only for a chunk the merge opens.
    if isinstance(chunks, ChunkList):
        los, his = chunks.time_spans()
    else:
        los, his = [r.min_ts for r in chunks], [r.max_ts for r in chunks]

    def open_chunk(k):
        return _chunk_source(store, chunks[k], flt, start, end, forward, stats, gate)

    sources = [(los[k], his[k], open_chunk, k) for k in range(len(los))]
    if head_snap is not None:
        cut, raw, lo, hi = head_snap

        def open_cut(b):
            stats.bytes_decompressed += b.raw_len
            stats.lines_scanned += b.n_entries
            return _scan_stored(b.stored, flt, start, end, forward, stats)

        for b in cut:
            if b.max_ts < start or b.min_ts >= end:
                stats.blocks_skipped += 1
                continue
            if gate is not None and not gate.may_match(b.token_filter):
                stats.blocks_filtered += 1
                continue
            sources.append((b.min_ts, b.max_ts, open_cut, b))
        if raw is not None and hi >= start and lo < end:
            def open_raw(raw):
                stats.check_deadline()
                stats.bytes_decompressed += len(raw)
                stats.lines_scanned += raw_entry_count(raw)
                return _kernels.scan.scan_raw(raw, flt, start, end, -1, not forward)

            sources.append((lo, hi, open_raw, raw))
    return lazy_merge(sources, forward)


# ---------------------------------------------------------------------------
# log queries

def select_entries(store, matchers, start: int, end: int, *, forward: bool, limit: int | None,
                   flt=None, process=None, stats: QueryStats | None = None) -> Iterator[Entry]:
    """Entries of the selected streams in ``[start, end)``, merged by time.

    ``flt`` is a compiled scanner ``Filter`` applied inside blocks (blocks
    whose token filter shows its clauses cannot match are skipped unread);
    ``process(ts, line, metadata, stream_labels)`` (optional) runs the rest
    of the pipeline and returns ``(line, labels)`` or ``None`` to drop.
    """
    stats = stats if stats is not None else QueryStats()
    t0 = time.perf_counter()
    timeout = store.options.query_timeout
    if timeout and not stats.deadline:
        stats.deadline = t0 + timeout
        stats._timeout = timeout
    flt = flt if flt is not None else _match_all()
    gate = SkipGate.for_query(store, flt.clauses)
    snaps = snapshot_streams(store, matchers, start, end)
    stats.streams = len(snaps)
    store.last_query_stats = stats
    gens = [_entries_of(store, sid, labels, chunks, hs, flt, s, end, forward, process, stats, tombs,
                        gate)
            for sid, labels, chunks, hs, s, tombs in snaps]
    if not gens:
        merged: Iterator = iter(())
    elif len(gens) == 1:
        merged = gens[0]
    elif forward:
        merged = heapq.merge(*gens, key=_entry_key)
    else:
        merged = heapq.merge(*gens, key=_entry_key, reverse=True)
    if limit is not None:
        merged = islice(merged, limit)
    for e in merged:
        stats.lines_returned += 1
        yield e
    stats.seconds = time.perf_counter() - t0


def _entry_key(e: Entry):
    return e.ts


def _entries_of(store, sid, labels, chunks, hs, flt, start, end, forward, process, stats,
                tombs=(), gate=None):
    src = stream_source(store, chunks, hs, flt, start, end, forward, stats, gate)
    if tombs:
        src = ((ts, line, meta) for ts, line, meta in src
               if not any(t.covers(ts, line, meta, labels) for t in tombs))
    if process is None:
        bare = None  # an empty pipeline: metadata labels exactly as a pipeline adds them
        for ts, line, meta in src:
            stats.lines_matched += 1
            if meta:
                if bare is None:
                    from chunkstore.logql_plan import bare_process

                    bare = bare_process()
                yield Entry(ts, line, bare(ts, line, meta, labels)[1], labels)
            else:
                yield Entry(ts, line, labels, labels)
    else:
        for ts, line, meta in src:
            stats.lines_matched += 1
            out = process(ts, line, meta, labels)
            if out is not None:
                yield Entry(ts, out[0], out[1], labels)


def query(store, logql: str, start=None, end=None, *, limit: int | None = None,
          direction: str = "backward") -> Iterator[Entry]:
    """``store.query``: a LogQL log query as a lazy iterator of entries."""
    from chunkstore.logql_plan import plan_log_query

    if direction not in ("forward", "backward"):
        raise ValueError(f"query: direction must be 'forward' or 'backward', got {direction!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"query: limit must be a non-negative int or None, got {limit!r}")
    s, e = time_range(start, end)
    plan = plan_log_query(logql)
    return select_entries(store, plan.matchers, s, e, forward=direction == "forward",
                          limit=limit, flt=plan.scan_filter, process=plan.process)


# ---------------------------------------------------------------------------
# metadata queries answered from the index

def _all_streams_in_range(store, start: int, end: int, matchers=None):
    with store._lock:
        store._check_open()
        if store.read_only:
            from chunkstore.store_open import refresh

            refresh(store)
        index = store.index
        sids = index.select(matchers) if matchers else list(index.streams)
        out = []
        for sid in sids:
            e = index.streams[sid]
            head = store.heads.get(sid)
            lo, hi = e.min_ts, e.max_ts
            if head is not None and not head.empty:
                hl, hh = head.bounds()
                lo, hi = min(lo, hl), max(hi, hh)
            if lo > hi:
                continue
            if start == I64_MIN and end >= I64_MAX:
                out.append((sid, e, head))
                continue
            if hi < start or lo >= end:
                continue
            # precise: some chunk or the head overlaps
            if e.has_chunks_overlapping(start, end) or (
                head is not None and not head.empty and head.bounds()[1] >= start
                and head.bounds()[0] < end
            ):
                out.append((sid, e, head))
        return out


def _selector_matchers(selector: str | None):
    if selector is None:
        return None
    from chunkstore.logql_plan import parse_selector_matchers

    return parse_selector_matchers(selector)


def label_names(store, start=None, end=None) -> list[str]:
    s, e = time_range(start, end)
    names = set()
    for _sid, entry, _h in _all_streams_in_range(store, s, e):
        names.update(entry.labels)
    return sorted(names)


def label_values(store, name: str, start=None, end=None, query: str | None = None) -> list[str]:
    s, e = time_range(start, end)
    values = set()
    for _sid, entry, _h in _all_streams_in_range(store, s, e, _selector_matchers(query)):
        v = entry.labels.get(name)
        if v is not None:
            values.add(v)
    return sorted(values)


def series(store, selector: str, start=None, end=None) -> list[dict[str, str]]:
    s, e = time_range(start, end)
    matchers = _selector_matchers(selector)
    if not matchers:
        raise QueryError("series: a selector is required")
    return [entry.labels.as_dict() for _sid, entry, _h in
            sorted(_all_streams_in_range(store, s, e, matchers),
                   key=lambda t: t[1].labels.pairs)]


def stats(store, selector: str | None = None, start=None, end=None) -> Stats:
    s, e = time_range(start, end)
    out = Stats()
    lo, hi = I64_MAX, I64_MIN
    streams = _all_streams_in_range(store, s, e, _selector_matchers(selector))
    for _sid, entry, head in streams:
        out.streams += 1
        # sums over the index's columns (no ChunkRef per chunk), read under
        # the lock: a rebuild of the columns moves the chunks' slots
        with store._lock:
            n, entries, text, stored, clo, chi = entry.chunk_totals(s, e)
        out.chunks += n
        out.entries += entries
        out.bytes_raw += text
        out.bytes_stored += stored
        lo, hi = min(lo, clo), max(hi, chi)
        if head is not None and not head.empty:
            n = head.n_entries()
            out.head_entries += n
            out.entries += n
            b = head.builder.text_bytes + sum(x.text_len for x in head.cut)
            out.head_bytes += b
            out.bytes_raw += b
            hl, hh = head.bounds()
            lo, hi = min(lo, hl), max(hi, hh)
    if lo <= hi:
        out.min_ts, out.max_ts = lo, hi
    return out


# ---------------------------------------------------------------------------
# context and tail

def context(store, entry: Entry, before: int = 10, after: int = 10
            ) -> tuple[list[Entry], list[Entry]]:
    """Lines just before and after ``entry`` in its stream, each list oldest first.

    Like ``grep -B/-A`` over the stream in time order.  Entries with the same
    timestamp as ``entry`` are ordered by arrival; the entry itself is found
    by its timestamp and exact bytes.
    """
    from chunkstore.matchers import Matcher

    if before < 0 or after < 0:
        raise ValueError("context: before and after must be >= 0")
    stream = entry.stream
    matchers = [Matcher(k, "=", v) for k, v in stream.items()]
    # Entries at the same ts: find our position among them.
    same = [e for e in select_entries(store, matchers, entry.ts, entry.ts + 1, forward=True,
                                      limit=None) if dict(e.stream) == dict(stream)]
    pos = next((i for i, e in enumerate(same) if e.raw == entry.raw), None)
    if pos is None:
        raise ValueError("context: entry not found in its stream")
    older_same, newer_same = same[:pos], same[pos + 1:]
    b: list[Entry] = []
    if before:
        need = before - len(older_same)
        older = []
        if need > 0:
            # lazily, newest first: reads only the blocks holding the lines wanted
            older = list(islice((e for e in select_entries(
                store, matchers, I64_MIN, entry.ts, forward=False, limit=None)
                if dict(e.stream) == dict(stream)), need))[::-1]
        b = (older + older_same)[-before:]
    a: list[Entry] = []
    if after:
        need = after - len(newer_same)
        newer = []
        if need > 0 and entry.ts < I64_MAX:
            newer = list(islice((e for e in select_entries(
                store, matchers, entry.ts + 1, END_UNBOUNDED, forward=True, limit=None)
                if dict(e.stream) == dict(stream)), need))
        a = (newer_same + newer)[:after]
    return b, a


def tail(store, logql: str, *, start=None, poll_interval: float = 0.2, stop=None):
    """Yield matching entries from ``start`` (default now), then new ones as they come.

    New entries are found by re-querying the window since the newest entry
    seen (the head and flushed data of a writer in another process are
    visible through the read-only refresh).  Entries already yielded are not
    repeated: at the boundary timestamp the entries seen are remembered.
    ``stop`` is an optional ``threading.Event`` ending the iteration.
    """
    from chunkstore.logql_plan import plan_log_query
    from chunkstore.timeutil import now_ns

    plan = plan_log_query(logql)
    cursor = now_ns() if start is None else to_ns(start, what="start")
    seen_at_cursor: set = set()
    while True:
        fresh = []
        for e in select_entries(store, plan.matchers, cursor, END_UNBOUNDED, forward=True,
                                limit=None,
                                flt=plan.scan_filter, process=plan.process):
            key = (e.ts, e.raw, tuple(sorted(e.stream.items())))
            if e.ts == cursor and key in seen_at_cursor:
                continue
            fresh.append((e, key))
        for e, key in fresh:
            if e.ts > cursor:
                cursor = e.ts
                seen_at_cursor = set()
            seen_at_cursor.add(key)
            yield e
        if stop is not None and stop.is_set():
            return
        if stop is not None:
            if stop.wait(poll_interval):
                return
        else:
            time.sleep(poll_interval)
