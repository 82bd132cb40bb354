"""The in-memory label index: streams, postings and per-stream chunk lists.

Postings map ``name -> value -> {stream ids}``; selectors resolve by set
operations on postings (never by scanning every stream).  Each stream keeps
its sealed chunks in a ``SortedKeyList`` ordered by ``(min_ts, chunk_id)``,
so time pruning is a bisect.  The index is rebuilt on open from the index
log (``chunkstore/index_log.py``), never by scanning data files.

Per segment file the index also counts the live chunks and their bytes,
maintained by :meth:`MemIndex.add_chunk` / :meth:`MemIndex.remove_chunk`
themselves (so replay on open rebuilds them with no extra pass): whether a
segment file is dead after a drop is a dict lookup, and retention costs
O(chunks removed), not O(chunks kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sortedcontainers import SortedKeyList

from chunkstore.errors import QueryError
from chunkstore.labels import Labels
from chunkstore.matchers import Matcher

__all__ = ["ChunkRef", "StreamIndexEntry", "MemIndex"]

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


@dataclass(slots=True)
class ChunkRef:
    """Where a sealed chunk lives and what it holds (one index-log record)."""

    chunk_id: int
    stream_id: int
    segment: str  # path of the segment file, relative to the store root
    offset: int
    length: int
    min_ts: int
    max_ts: int
    n_entries: int
    text_bytes: int
    stored_bytes: int
    max_lsn: int

    def overlaps(self, start: int, end: int) -> bool:
        """Whether the chunk has entries in ``[start, end)``."""
        return self.max_ts >= start and self.min_ts < end


def _chunk_key(c: ChunkRef):
    return (c.min_ts, c.chunk_id)


class StreamIndexEntry:
    """One stream in the index: its labels, sealed chunks and flushed LSN."""

    __slots__ = ("stream_id", "labels", "chunks", "flushed_lsn", "max_ts", "min_ts")

    def __init__(self, stream_id: int, labels: Labels):
        self.stream_id = stream_id
        self.labels = labels
        self.chunks = SortedKeyList(key=_chunk_key)
        self.flushed_lsn = 0
        self.min_ts = I64_MAX
        self.max_ts = I64_MIN

    def chunks_overlapping(self, start: int, end: int) -> list[ChunkRef]:
        """Sealed chunks with entries in ``[start, end)``, by min_ts."""
        chunks = self.chunks
        if not chunks:
            return []
        hi = chunks.bisect_key_left((end, -1)) if end <= I64_MAX else len(chunks)
        return [c for c in chunks.islice(0, hi) if c.max_ts >= start]

    def _recompute_bounds(self) -> None:
        self.min_ts = min((c.min_ts for c in self.chunks), default=I64_MAX)
        self.max_ts = max((c.max_ts for c in self.chunks), default=I64_MIN)


class MemIndex:
    """Streams by id and fingerprint, postings, and chunk lists.

    Not thread-safe by itself: the store serialises mutations under its lock
    and readers take snapshots (lists) of what they need.
    """

    def __init__(self, fingerprint_fn=None):
        # The fingerprint function is injectable so tests can force collisions;
        # correctness never depends on it (labels are always compared in full).
        self._fp = fingerprint_fn or (lambda labels: labels.fingerprint)
        self.streams: dict[int, StreamIndexEntry] = {}
        self.by_fingerprint: dict[int, list[int]] = {}
        self.postings: dict[str, dict[str, set[int]]] = {}
        self.chunks: dict[int, ChunkRef] = {}
        # segment path -> [live chunks, their length in bytes]; a segment with
        # no live chunk has no key.  Kept by add_chunk/remove_chunk only.
        self._segment_live: dict[str, list[int]] = {}
        #: sum of ``stored_bytes`` over the live chunks (the size cap's figure)
        self.stored_bytes = 0

    # -- mutation -------------------------------------------------------
    def add_stream(self, stream_id: int, labels: Labels) -> StreamIndexEntry:
        entry = self.streams.get(stream_id)
        if entry is not None:
            return entry
        entry = StreamIndexEntry(stream_id, labels)
        self.streams[stream_id] = entry
        self.by_fingerprint.setdefault(self._fp(labels), []).append(stream_id)
        for name, value in labels.pairs:
            self.postings.setdefault(name, {}).setdefault(value, set()).add(stream_id)
        return entry

    def find_stream(self, labels: Labels) -> int | None:
        """The id of the stream with exactly these labels (fingerprint + full compare)."""
        for sid in self.by_fingerprint.get(self._fp(labels), ()):
            if self.streams[sid].labels.canonical == labels.canonical:
                return sid
        return None

    def add_chunk(self, ref: ChunkRef) -> None:
        """Add a sealed chunk (replacing one with the same id); O(log chunks of its stream).

        Raises ``KeyError`` when the chunk's stream is not in the index.
        """
        entry = self.streams[ref.stream_id]
        if ref.chunk_id in self.chunks:  # keep every count exact on a repeated id
            self.remove_chunk(ref.chunk_id)
        entry.chunks.add(ref)
        self.chunks[ref.chunk_id] = ref
        live = self._segment_live.get(ref.segment)
        if live is None:
            self._segment_live[ref.segment] = [1, ref.length]
        else:
            live[0] += 1
            live[1] += ref.length
        self.stored_bytes += ref.stored_bytes
        if ref.max_lsn > entry.flushed_lsn:
            entry.flushed_lsn = ref.max_lsn
        entry.min_ts = min(entry.min_ts, ref.min_ts)
        entry.max_ts = max(entry.max_ts, ref.max_ts)

    def remove_chunk(self, chunk_id: int) -> ChunkRef | None:
        """Remove a chunk by id and return it (None if unknown); O(log chunks of its stream)."""
        ref = self.chunks.pop(chunk_id, None)
        if ref is None:
            return None
        live = self._segment_live[ref.segment]
        if live[0] == 1:
            del self._segment_live[ref.segment]
        else:
            live[0] -= 1
            live[1] -= ref.length
        self.stored_bytes -= ref.stored_bytes
        entry = self.streams.get(ref.stream_id)
        if entry is not None:
            entry.chunks.discard(ref)
            chunks = entry.chunks
            if not chunks:
                entry.min_ts, entry.max_ts = I64_MAX, I64_MIN
            else:
                # chunks are ordered by min_ts: the minimum is the first; the
                # maximum needs a rescan only when the removed chunk held it
                entry.min_ts = chunks[0].min_ts
                if ref.max_ts >= entry.max_ts:
                    entry._recompute_bounds()
        return ref

    # -- segment files --------------------------------------------------
    def segment_chunks(self, segment: str) -> int:
        """Live chunks in a segment file (0: nothing points at it any more); O(1)."""
        live = self._segment_live.get(segment)
        return 0 if live is None else live[0]

    def segment_live_bytes(self) -> dict[str, int]:
        """Live chunk bytes per segment file that has any; O(segment files)."""
        return {name: live[1] for name, live in self._segment_live.items()}

    # -- selection ------------------------------------------------------
    def select(self, matchers: Sequence[Matcher]) -> list[int]:
        """Stream ids matching every matcher, sorted.

        At least one matcher must not match the empty string (Loki's rule);
        otherwise the selector would select every stream by accident.
        """
        if not matchers:
            raise QueryError("selector: at least one matcher is required")
        if all(m.matches_empty for m in matchers):
            raise QueryError(
                "selector: queries require at least one matcher that does not "
                "match the empty string, e.g. {app=\"x\"} or {app=~\".+\"}"
            )
        # Positive (non-empty-matching) matchers narrow the candidate set by
        # postings union per matcher, intersected; the rest filter candidates.
        candidates: set[int] | None = None
        positives = [m for m in matchers if not m.matches_empty]
        positives.sort(key=lambda m: 0 if m.op == "=" else 1)
        for m in positives:
            ids = self._postings_for(m)
            candidates = ids if candidates is None else candidates & ids
            if not candidates:
                return []
        assert candidates is not None
        rest = [m for m in matchers if m.matches_empty]
        if rest:
            out = []
            for sid in candidates:
                labels = self.streams[sid].labels
                if all(m.matches(labels.get(m.name)) for m in rest):
                    out.append(sid)
            return sorted(out)
        return sorted(candidates)

    def _postings_for(self, m: Matcher) -> set[int]:
        values = self.postings.get(m.name)
        if not values:
            return set()
        if m.op == "=":
            return set(values.get(m.value, ()))
        out: set[int] = set()
        for value, ids in values.items():
            if m.matches(value):
                out |= ids
        return out

    def streams_in_range(self, stream_ids: Iterable[int], start: int, end: int,
                         head_bounds: dict[int, tuple[int, int]] | None = None) -> list[int]:
        """Filter stream ids to those with data in ``[start, end)`` (sealed or head)."""
        out = []
        for sid in stream_ids:
            e = self.streams[sid]
            lo, hi = e.min_ts, e.max_ts
            if head_bounds and sid in head_bounds:
                hlo, hhi = head_bounds[sid]
                lo, hi = min(lo, hlo), max(hi, hhi)
            if hi >= start and lo < end:
                out.append(sid)
        return out

    def check(self) -> None:
        """Invariant check for stress tests: postings, fingerprints and chunks agree."""
        for sid, e in self.streams.items():
            assert e.stream_id == sid
            assert sid in self.by_fingerprint[self._fp(e.labels)]
            for name, value in e.labels.pairs:
                assert sid in self.postings[name][value]
            keys = [_chunk_key(c) for c in e.chunks]
            assert keys == sorted(keys)
            if e.chunks:
                assert e.min_ts == min(c.min_ts for c in e.chunks)
                assert e.max_ts == max(c.max_ts for c in e.chunks)
            for c in e.chunks:
                assert self.chunks[c.chunk_id] is c and c.stream_id == sid
                assert c.min_ts <= c.max_ts
        for name, values in self.postings.items():
            for value, ids in values.items():
                for sid in ids:
                    assert self.streams[sid].labels.get(name) == value
        assert sum(len(e.chunks) for e in self.streams.values()) == len(self.chunks)
        live: dict[str, list[int]] = {}
        for c in self.chunks.values():
            n = live.setdefault(c.segment, [0, 0])
            n[0] += 1
            n[1] += c.length
        assert self._segment_live == live, (self._segment_live, live)
        assert self.stored_bytes == sum(c.stored_bytes for c in self.chunks.values())
