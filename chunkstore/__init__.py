"""chunkstore: an embeddable log storage engine with a Cython core.

Loki's ingester, chunk store and LogQL querier as a library: append log lines
to streams named by label sets, ask LogQL questions of them, all in one local
directory.  This module only re-exports the public API (see README.md).
"""

from chunkstore._kernels import ACCELERATED
from chunkstore.errors import (
    ChunkstoreError,
    CorruptionError,
    EntryRejected,
    LabelError,
    LimitError,
    QueryError,
    QueryTimeoutError,
    ReadOnlyError,
    StoreClosedError,
    StoreLockedError,
)
from chunkstore.labels import Labels, fingerprint
from chunkstore.options import StoreOptions
from chunkstore.retention import RetentionPolicy
from chunkstore.results import Entry, QueryStats, Sample, Series, Stats
from chunkstore.store import PushResult, Store, Stream
from chunkstore.store import open_store as open

__version__ = "0.1.0"

__all__ = [
    "ACCELERATED",
    "ChunkstoreError",
    "CorruptionError",
    "Entry",
    "EntryRejected",
    "LabelError",
    "Labels",
    "LimitError",
    "PushResult",
    "QueryError",
    "QueryStats",
    "QueryTimeoutError",
    "ReadOnlyError",
    "RetentionPolicy",
    "Sample",
    "Series",
    "Stats",
    "Store",
    "StoreClosedError",
    "StoreLockedError",
    "StoreOptions",
    "Stream",
    "fingerprint",
    "open",
]
