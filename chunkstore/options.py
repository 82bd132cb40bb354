"""Store options: every knob with its default and unit in one place.

Sizes are bytes, durations are seconds of wall time unless the name ends in
``_ns`` (log time, nanoseconds).  Strings like ``"2h"``, ``"30m"``, ``"256KiB"``
are accepted by :func:`StoreOptions.from_kwargs` for convenience.  A value of
0 disables a limit where that makes sense (documented per field).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from chunkstore.labels import LabelLimits

__all__ = ["StoreOptions", "parse_duration_s", "parse_size"]

_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_DUR_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
             "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "y": 365 * 86400.0}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*\Z")
_SIZE_UNIT = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration_s(value) -> float:
    """Seconds from a number or a Prometheus-style duration (``"1h30m"``, ``"7d"``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        pos, total = 0, 0.0
        for m in _DUR_RE.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DUR_UNIT[m.group(2)]
            pos = m.end()
        if s and pos == len(s):
            return total
    raise ValueError(f"options: invalid duration {value!r} (examples: 30s, 15m, 2h, 7d)")


def parse_size(value) -> int:
    """Bytes from a number or a size string (``"256KiB"``, ``"1.5MB"``; k=1000, Ki=1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            base = 1024 if m.group(3) else 1000
            return int(float(m.group(1)) * base ** _SIZE_UNIT[m.group(2).lower()])
    raise ValueError(f"options: invalid size {value!r} (examples: 4096, 256KiB, 1.5MB)")


@dataclass(frozen=True)
class StoreOptions:
    """Every option of :func:`chunkstore.open`, with Loki's defaults where Loki has one."""

    #: raw bytes in a head block before it is compressed into a block (Loki: 256KB)
    block_size: int = 256 * 1024
    #: stored (compressed) bytes at which an open chunk is sealed (Loki: 1.5MB)
    chunk_target_size: int = 1536 * 1024
    #: seconds of log time one chunk may span before it is sealed (Loki: 2h)
    chunk_max_age: float = 2 * 3600.0
    #: seconds of wall time without appends after which a chunk is sealed (Loki: 30m)
    chunk_idle_period: float = 30 * 60.0
    #: seconds of log time an entry may be older than its stream's newest entry;
    #: older ones are rejected "too far behind" (Loki: max_chunk_age / 2); None = that
    out_of_order_window: float | None = None
    #: bytes of open (unsealed) data across all streams, each open head's
    #: fixed cost included; when exceeded the largest head blocks are
    #: compressed first, then the largest heads sealed early (0 = unbounded)
    head_memory_budget: int = 64 * 1024 * 1024
    #: bytes per line; longer lines are rejected per entry (Loki: 256KB; 0 = no limit)
    max_line_size: int = 256 * 1024
    #: label limits for new streams (Loki: 15 names, 1024-byte names, 2048-byte values)
    max_label_names: int = 15
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048
    #: maximum number of streams in the store (cardinality limit; 0 = unbounded)
    max_streams: int = 100_000
    #: block codec for new chunks: "lz4", "lz4hc", "zstd" (needs zstandard), "none"
    #: (compaction may recompress)
    codec: str = "lz4"
    #: build a token filter for every block so needle queries skip blocks that
    #: cannot match (FORMAT.md section 4; ~8% of the stored bytes and ~0.2 us of
    #: CPU a line, on the cut-block worker's thread)
    token_filters: bool = True
    #: fsync policy: "always", "batch" (group commit), "never"
    fsync: str = "batch"
    #: group commit bound for fsync="batch": durable within this many seconds...
    sync_interval: float = 1.0
    #: ...or once this many bytes are unsynced, whichever comes first
    sync_bytes: int = 16 * 1024 * 1024
    #: bytes per WAL segment file
    wal_segment_size: int = 64 * 1024 * 1024
    #: WAL bytes that trigger sealing of the streams holding the oldest segment
    wal_max_bytes: int = 512 * 1024 * 1024
    #: bytes per chunk segment file before a new one is started
    segment_max_size: int = 256 * 1024 * 1024
    #: raw bytes per block in the chunks compaction writes: it re-cuts the entries
    #: of the streams it rewrites into blocks of about this size (larger blocks
    #: compress better: on the loghub corpus zstd level 9 blocks take 1.12x the
    #: bytes of gzip -6 at 1 MiB, 1.06x at 4 MiB; a query then decompresses up to
    #: this much for one entry).  0 = the ``block_size``; at most 16 MiB (a single
    #: larger entry is a block of its own)
    compact_block_size: int = 4 * 1024 * 1024
    #: seconds between background compactions, on a thread of their own in the
    #: writer (0 = only on demand, ``store.compact()``).  A pass holds the store
    #: lock while it rewrites (writers wait; ``close()`` waits for a pass in
    #: progress) and looks at every chunk's block list even when nothing needs it
    compaction_interval: float = 0.0
    #: target codec of background compactions (``store.compact(codec=...)``):
    #: "lz4hc" (the default: fast to decompress), "zstd" (about 0.7x the bytes;
    #: needs zstandard), "lz4" or "none"
    compaction_codec: str = "lz4hc"
    #: seconds between background maintenance passes (idle sealing, retention); 0 = off
    maintenance_interval: float = 5.0
    #: retention policy (a RetentionPolicy, a duration string, or None = keep forever)
    retention: object = None
    #: seconds between background retention runs in the writer (0 = only on
    #: demand); they run on the maintenance thread, so need maintenance_interval > 0
    retention_interval: float = 0.0
    #: seconds a query may run before QueryTimeoutError (0 = no limit)
    query_timeout: float = 0.0
    #: injectable fingerprint function (tests force collisions with it)
    fingerprint_fn: object = field(default=None, compare=False)

    @property
    def ooo_window_ns(self) -> int:
        w = self.out_of_order_window
        if w is None:
            w = self.chunk_max_age / 2
        return int(w * 1e9)

    @property
    def chunk_max_age_ns(self) -> int:
        return int(self.chunk_max_age * 1e9)

    @property
    def label_limits(self) -> LabelLimits:
        return LabelLimits(self.max_label_names, self.max_label_name_length,
                           self.max_label_value_length)

    @property
    def codec_id(self) -> int:
        return _CODECS[self.codec]

    @classmethod
    def from_kwargs(cls, **kwargs) -> StoreOptions:
        """Build options from keyword arguments, parsing duration and size strings.

        Raises ``TypeError`` for an unknown option and ``ValueError`` for a
        bad value, naming the option.
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"open: unknown option {key!r}")
            if key in _DURATIONS and value is not None:
                value = parse_duration_s(value)
            elif key in _SIZES:
                value = parse_size(value)
            values[key] = value
        opts = cls(**values)
        opts._validate()
        return opts

    def _validate(self) -> None:
        if self.fsync not in ("always", "batch", "never"):
            raise ValueError(f"open: fsync must be 'always', 'batch' or 'never', got {self.fsync!r}")
        if self.codec not in _CODECS:
            raise ValueError(f"open: unknown codec {self.codec!r} (one of {sorted(_CODECS)})")
        for name in ("block_size", "chunk_target_size", "wal_segment_size", "segment_max_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"open: {name} must be positive, got {getattr(self, name)}")
        if not isinstance(self.token_filters, bool):
            raise ValueError(f"open: token_filters must be True or False, got "
                             f"{self.token_filters!r}")
        if self.block_size > 16 * 1024 * 1024:
            raise ValueError(f"open: block_size {self.block_size} exceeds 16 MiB")
        if self.compaction_codec not in _CODECS:
            raise ValueError(f"open: unknown compaction_codec {self.compaction_codec!r} "
                             f"(one of {sorted(_CODECS)})")
        if self.compaction_interval < 0:
            raise ValueError(f"open: compaction_interval must be 0 (off) or positive, got "
                             f"{self.compaction_interval}")
        if not 0 <= self.compact_block_size <= 16 * 1024 * 1024:
            raise ValueError(f"open: compact_block_size must be 0 to 16 MiB, got "
                             f"{self.compact_block_size}")


_CODECS = {"none": 0, "lz4": 1, "lz4hc": 2, "zstd": 3}
_DURATIONS = {"chunk_max_age", "chunk_idle_period", "out_of_order_window", "sync_interval",
              "maintenance_interval", "retention_interval", "query_timeout",
              "compaction_interval"}
_SIZES = {"block_size", "chunk_target_size", "head_memory_budget", "max_line_size",
          "sync_bytes", "wal_segment_size", "wal_max_bytes", "segment_max_size",
          "compact_block_size"}
