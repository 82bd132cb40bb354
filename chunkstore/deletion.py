"""Delete requests (Loki's): a selector plus optional line filters over a time range.

``store.delete(query, start, end)`` persists a *tombstone* in the index log
(fsynced before it returns) and matching entries disappear from every query
at once: the querier drops entries a tombstone covers.  Without line filters
the chunks of the selected streams that lie wholly inside the range are
dropped immediately, without rewriting anything.  The next ``compact()``
removes the remaining entries physically (re-encoding only the blocks they
touch) and retires the tombstone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chunkstore.errors import QueryError
from chunkstore.index_log import TOMBSTONE

__all__ = ["Tombstone", "DeleteReport", "delete", "compile_tombstone"]


@dataclass
class DeleteReport:
    """What a delete request removed from query results (and from disk, so far)."""

    entries: int = 0
    chunks: int = 0
    bytes: int = 0
    tombstone_id: int | None = None


class Tombstone:
    """A compiled delete request: which streams, which time range, which lines."""

    __slots__ = ("id", "query", "start", "end", "created", "matchers", "plan")

    def __init__(self, tid: int, query: str, start: int, end: int, created: int):
        from chunkstore.logql_plan import plan_log_query

        self.id = tid
        self.query = query
        self.start = start
        self.end = end
        self.created = created
        self.plan = plan_log_query(query)
        self.matchers = self.plan.matchers

    @property
    def whole_lines(self) -> bool:
        """True when the request has no line filter (every line in range goes)."""
        return not self.plan.clauses and self.plan.pipeline is None

    def applies_to(self, labels) -> bool:
        return all(m.matches(labels.get(m.name)) for m in self.matchers)

    def covers(self, ts: int, line: bytes, meta, labels) -> bool:
        """Whether this request deletes the entry."""
        if not (self.start <= ts < self.end):
            return False
        if self.plan.clauses and not self.plan.scan_filter.matches(line):
            return False
        pipe = self.plan.pipeline
        if pipe is not None:
            return pipe.for_stream(labels).process(ts, line, None) is not None
        return True


def compile_tombstone(record: list) -> Tombstone:
    tid, query, start, end, created = record[:5]
    return Tombstone(tid, query, start, end, created)


def validate_delete_query(query: str) -> None:
    from chunkstore import logql
    from chunkstore.logql import ast

    expr = logql.parse_log_query(query)
    for st in expr.stages:
        if not isinstance(st, ast.LineFilter):
            raise QueryError(
                f"delete: only a stream selector and line filters are allowed, got "
                f"{logql.to_string(st).strip()!r}")


def delete(store, query: str, start=None, end=None) -> DeleteReport:
    from chunkstore import querier
    from chunkstore.retention import drop_chunks
    from chunkstore.timeutil import now_ns

    validate_delete_query(query)
    s, e = querier.time_range(start, end)
    if s >= e:
        raise ValueError(f"delete: empty time range [{s}, {e})")
    rep = DeleteReport()
    with store._lock:
        store._check_writable()
        plan_matchers = Tombstone(0, query, s, e, 0)
        rep.entries = sum(1 for _ in querier.select_entries(
            store, plan_matchers.matchers, s, e, forward=True, limit=None,
            flt=plan_matchers.plan.scan_filter, process=plan_matchers.plan.process))
        tid = max(store._tombstones, default=0) + 1
        tomb = Tombstone(tid, query, s, e, now_ns())
        drop = []
        if tomb.whole_lines:
            for sid in store.index.select(tomb.matchers):
                # a chunk wholly inside [s, e) overlaps it: the index prunes the rest
                for c in store.index.streams[sid].chunks_overlapping(s, e):
                    if c.min_ts >= s and c.max_ts < e:
                        drop.append(c)
        rep.chunks = len(drop)
        rep.bytes = sum(c.stored_bytes for c in drop)
        rep.tombstone_id = tid
        record = (TOMBSTONE, [tid, query, s, e, tomb.created])
        drop_chunks(store, [c.chunk_id for c in drop], extra_records=[record])
        store._tombstones[tid] = tomb
    return rep


def applicable(store, labels) -> list[Tombstone]:
    """Tombstones that apply to a stream (called under the store lock)."""
    if not store._tombstones:
        return []
    return [t for t in store._tombstones.values() if t.applies_to(labels)]


