"""Result types returned by queries: entries, series, samples, statistics."""

from __future__ import annotations

from collections.abc import Mapping
import time
from dataclasses import dataclass, field

__all__ = ["Entry", "Series", "Sample", "Stats", "QueryStats"]


class Entry:
    """One log line returned by a query.

    ``ts`` is int nanoseconds; ``raw`` the exact bytes stored; ``line`` the
    same decoded as UTF-8 with invalid bytes replaced; ``labels`` the stream
    labels plus structured metadata and parsed labels (when the query has a
    parser); ``stream`` the stream's own labels.
    """

    __slots__ = ("ts", "raw", "labels", "stream", "_line")

    def __init__(self, ts: int, raw: bytes, labels: Mapping[str, str], stream: Mapping[str, str]):
        self.ts = ts
        self.raw = raw
        self.labels = labels
        self.stream = stream
        self._line: str | None = None

    @property
    def line(self) -> str:
        s = self._line
        if s is None:
            s = self._line = self.raw.decode("utf-8", "replace")
        return s

    def __repr__(self) -> str:
        return f"Entry(ts={self.ts}, labels={dict(self.labels)}, line={self.line!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.ts, self.raw, dict(self.labels)) == (other.ts, other.raw, dict(other.labels))

    def __hash__(self) -> int:
        return hash((self.ts, self.raw))

    def as_tuple(self) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        return self.ts, self.raw, tuple(sorted(self.labels.items()))


@dataclass
class Series:
    """A range-query result series: labels and ``(ts_ns, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Sample:
    """An instant-query result sample."""

    labels: dict[str, str]
    value: float
    ts: int = 0


@dataclass
class Stats:
    """What a store (or a selector's part of it) holds, answered from the index."""

    streams: int = 0
    chunks: int = 0
    entries: int = 0
    bytes_raw: int = 0
    bytes_stored: int = 0
    head_entries: int = 0
    head_bytes: int = 0
    min_ts: int | None = None
    max_ts: int | None = None

    @property
    def compression_ratio(self) -> float:
        return self.bytes_raw / self.bytes_stored if self.bytes_stored else 0.0


@dataclass
class QueryStats:
    """What one query cost; ``store.last_query_stats`` after each query."""

    streams: int = 0
    chunks: int = 0
    blocks_read: int = 0
    blocks_skipped: int = 0
    #: blocks whose token filter showed they cannot match (never read)
    blocks_filtered: int = 0
    bytes_read: int = 0
    bytes_decompressed: int = 0
    lines_scanned: int = 0
    lines_matched: int = 0
    lines_returned: int = 0
    seconds: float = 0.0
    fast_path: bool = False
    #: perf_counter() deadline set from the store's query_timeout (0 = none)
    deadline: float = 0.0

    def check_deadline(self) -> None:
        """Raise QueryTimeoutError once the deadline has passed (checked per block)."""
        if self.deadline and time.perf_counter() > self.deadline:
            from chunkstore.errors import QueryTimeoutError

            raise QueryTimeoutError(
                f"query: exceeded query_timeout after {self.seconds_so_far():.3f}s; "
                f"narrow the time range or the selector, or raise query_timeout")

    def seconds_so_far(self) -> float:
        return time.perf_counter() - self.deadline + self._timeout

    _timeout: float = 0.0
