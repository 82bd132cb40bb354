"""Retention: keep the disk in bounds by expiring whole chunks, never rewriting data.

A :class:`RetentionPolicy` gives every stream a retention period: the
``period`` default, overridden by ``rules`` — label selectors with their own
period, as in Loki's per-stream retention.  When several rules match a
stream the winner is decided by, in order: the higher explicit priority (the
optional third element of a rule, default 0), the more specific selector
(more matchers), and finally the shorter period (Loki's tie-break).

``apply_retention`` drops every sealed chunk whose newest entry is older than
its stream's cutoff with one ``DROP`` record in the index log (fsynced), then
removes segment files no live chunk points at.  Segments are laid out by UTC
day of log time, so expiring a day removes files; nothing is rewritten.

``max_bytes`` caps the store's size: live chunk bytes + WAL bytes + the index
log.  Beyond it the oldest chunks (by newest entry) go first, but never one
holding data from the last ``min_keep`` (default 1 hour) — the floor that
keeps the newest data even when the cap is too small.  Space held by dropped
chunks that share a segment with live ones is reclaimed by ``compact()``.

Queries never return expired entries, even before the files are removed:
the querier clamps each stream's time range to its cutoff.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from chunkstore.index_log import DROP
from chunkstore.options import parse_duration_s, parse_size

__all__ = ["RetentionPolicy", "RetentionReport", "apply_retention", "coerce_policy"]


@dataclass(frozen=True)
class RetentionRule:
    selector: str
    period_s: float
    priority: int
    matchers: tuple

    def matches(self, labels) -> bool:
        return all(m.matches(labels.get(m.name)) for m in self.matchers)


class RetentionPolicy:
    """How long to keep each stream and how large the store may grow.

    ``period``: default retention (``"7d"``, seconds, or None = forever);
    ``max_bytes``: size cap (int or ``"10GiB"``; None = no cap); ``rules``:
    ``[(selector, period)]`` or ``[(selector, period, priority)]``;
    ``min_keep``: the floor the size cap never expires (default ``"1h"``).
    Raises ``ValueError``/``QueryError`` for a bad period or selector.
    """

    def __init__(self, period=None, max_bytes=None, rules=(), min_keep="1h"):
        from chunkstore.logql_plan import parse_selector_matchers

        self.period_s = None if period is None else parse_duration_s(period)
        if self.period_s is not None and self.period_s <= 0:
            raise ValueError(f"retention: period must be positive, got {period!r}")
        self.max_bytes = None if max_bytes is None else parse_size(max_bytes)
        self.min_keep_s = parse_duration_s(min_keep)
        compiled = []
        for rule in rules:
            if len(rule) not in (2, 3):
                raise ValueError(f"retention: a rule is (selector, period[, priority]), got {rule!r}")
            selector, p = rule[0], rule[1]
            prio = int(rule[2]) if len(rule) == 3 else 0
            ps = parse_duration_s(p)
            if ps <= 0:
                raise ValueError(f"retention: rule period must be positive, got {p!r}")
            compiled.append(RetentionRule(selector, ps, prio,
                                          tuple(parse_selector_matchers(selector))))
        self.rules = tuple(compiled)

    def period_for(self, labels) -> float | None:
        """The retention period (seconds) of a stream, or None to keep forever."""
        best = None
        for r in self.rules:
            if r.matches(labels):
                key = (r.priority, len(r.matchers), -r.period_s)
                if best is None or key > best[0]:
                    best = (key, r.period_s)
        return best[1] if best is not None else self.period_s

    def cutoff_ns(self, labels, now_ns: int) -> int | None:
        """Entries of this stream with ``ts < cutoff`` are expired; None = none are."""
        p = self.period_for(labels)
        return None if p is None else now_ns - int(p * 1e9)

    def __repr__(self) -> str:
        rules = [(r.selector, r.period_s, r.priority) for r in self.rules]
        return (f"RetentionPolicy(period={self.period_s}, max_bytes={self.max_bytes}, "
                f"rules={rules})")


def coerce_policy(value) -> RetentionPolicy | None:
    """``retention=`` option: None, a duration (``"7d"``) or a RetentionPolicy."""
    if value is None or isinstance(value, RetentionPolicy):
        return value
    return RetentionPolicy(period=value)


@dataclass
class RetentionReport:
    """What one retention pass expired (or would expire, with ``dry_run``)."""

    chunks: int = 0
    entries: int = 0
    bytes: int = 0
    segments_removed: list = field(default_factory=list)
    by_size_cap: int = 0
    dry_run: bool = False
    seconds: float = 0.0


def store_bytes(store) -> int:
    """Bytes the size cap counts: live chunks + WAL + index log; O(1)."""
    live = store.index.stored_bytes
    wal = store._wal.size_bytes() if store._wal is not None else 0
    idx = store._index_log.size if store._index_log is not None else 0
    return live + wal + idx


def apply_retention(store, now=None, dry_run: bool = False) -> RetentionReport:
    from chunkstore.timeutil import now_ns, to_ns

    t0 = time.perf_counter()
    now = now_ns() if now is None else to_ns(now, what="now")
    rep = RetentionReport(dry_run=dry_run)
    policy = store.retention_policy
    with store._lock:
        store._check_writable()
        if policy is None:
            return rep
        doomed: dict[int, object] = {}
        index = store.index
        for sid, entry in index.streams.items():
            if not entry.n_chunks:
                continue
            cutoff = policy.cutoff_ns(entry.labels, now)
            if cutoff is None:
                continue
            # max_ts < cutoff implies min_ts < cutoff: the index looks only at
            # the stream's chunks that start before the cutoff (a bisect), not
            # at what stays
            for c in index.chunks_with_min_ts_before(sid, cutoff):
                if c.max_ts < cutoff:
                    doomed[c.chunk_id] = c
        if policy.max_bytes is not None:
            size = store_bytes(store) - sum(c.stored_bytes for c in doomed.values())
            if size > policy.max_bytes:
                floor = now - int(policy.min_keep_s * 1e9)
                for c in index.chunks_by_max_ts():
                    if c.chunk_id in doomed:
                        continue
                    if size <= policy.max_bytes or c.max_ts >= floor:
                        break
                    doomed[c.chunk_id] = c
                    size -= c.stored_bytes
                    rep.by_size_cap += 1
        rep.chunks = len(doomed)
        rep.entries = sum(c.n_entries for c in doomed.values())
        rep.bytes = sum(c.stored_bytes for c in doomed.values())
        if doomed and not dry_run:
            drop_chunks(store, list(doomed), rep.segments_removed)
    rep.seconds = time.perf_counter() - t0
    return rep


def drop_chunks(store, chunk_ids: list[int], removed: list | None = None,
                extra_records: list | None = None) -> None:
    """Drop chunks durably (one fsynced index-log append), then delete dead segment files.

    Called with the store lock held.  ``extra_records`` are appended in the
    same write (e.g. the new chunks of a compaction), which makes the switch
    atomic: after a crash the log holds either all of them or none.
    """
    records = list(extra_records or [])
    if chunk_ids:
        records.append((DROP, list(chunk_ids)))
    store._commit_seals()  # queued CHUNK records go first: a DROP never precedes its CHUNK
    try:
        store._index_log.append(records, sync=True)
    except BaseException as exc:
        store._broken = exc
        raise
    segments = set()
    for cid in chunk_ids:
        ref = store.index.remove_chunk(cid)
        if ref is not None:
            segments.add(ref.segment)
            store._chunk_meta_cache.pop(cid, None)
    remove_dead_segments(store, segments, removed)


def remove_dead_segments(store, candidates, removed: list | None = None) -> None:
    """Close and unlink each candidate segment file no live chunk points at.

    The index counts live chunks per segment (``MemIndex.segment_chunks``),
    so this costs O(candidates), whatever the store holds besides.  Called
    with the store lock held, after the index-log record that dropped the
    chunks is durable.
    """
    index = store.index
    for name in candidates:
        if index.segment_chunks(name):
            continue
        w = store._segments.pop(name, None)
        if w is not None:
            w.close()
            for day, n in list(store._segment_of_day.items()):
                if n == name:
                    del store._segment_of_day[day]
        r = store._readers.pop(name, None)
        if r is not None:
            r.close()
        path = os.path.join(store.path, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        d = os.path.dirname(path)
        try:
            if not os.listdir(d):
                os.rmdir(d)
        except OSError:
            pass
        if removed is not None:
            removed.append(name)
