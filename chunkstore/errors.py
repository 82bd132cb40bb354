"""The chunkstore exception hierarchy.

Every error chunkstore raises derives from :class:`ChunkstoreError`; where a
builtin exception describes the same failure kind, the class inherits it too,
so callers may catch either (``except ValueError`` still catches a bad query).
Messages are lowercase "context: what went wrong", with the offending value.
"""

from __future__ import annotations

__all__ = [
    "ChunkstoreError",
    "QueryError",
    "LabelError",
    "EntryRejected",
    "LimitError",
    "CorruptionError",
    "StoreLockedError",
    "StoreClosedError",
    "ReadOnlyError",
    "QueryTimeoutError",
]


class ChunkstoreError(Exception):
    """Base class of every error raised by chunkstore."""


class QueryError(ChunkstoreError, ValueError):
    """A LogQL query is malformed or cannot be evaluated; carries the position.

    ``pos`` is the 0-based character offset into the query where the problem
    was found (``None`` when it concerns the whole query, e.g. a limit).
    """

    def __init__(self, message: str, pos: int | None = None, query: str | None = None):
        self.pos = pos
        self.query = query
        self.message = message
        if pos is not None:
            message = f"{message} (at position {pos})"
        super().__init__(message)


class LabelError(ChunkstoreError, ValueError):
    """A label set violates the label rules (name syntax, limits, reserved names)."""

    def __init__(self, message: str, label: str | None = None):
        self.label = label
        super().__init__(message)


class EntryRejected(ChunkstoreError, ValueError):
    """One log entry was refused (line too long, too far behind, bad timestamp)."""

    def __init__(self, message: str, reason: str | None = None):
        self.reason = reason or message
        super().__init__(message)


class LimitError(ChunkstoreError, ValueError):
    """A configured limit (series, points, cardinality, query size) was exceeded."""


class CorruptionError(ChunkstoreError):
    """An on-disk record failed validation; carries the file path and byte offset.

    ``path`` may be ``None`` when the bytes did not come from a file (a kernel
    decoding an in-memory buffer); readers re-raise with the path filled in.
    """

    def __init__(self, message: str, path: str | None = None, offset: int | None = None):
        self.path = None if path is None else str(path)
        self.offset = offset
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path if self.path is not None else "<buffer>"
        if self.offset is not None:
            where = f"{where} at offset {self.offset}"
        return f"{where}: {self.detail}"

    def with_location(self, path: str | None, base_offset: int = 0) -> "CorruptionError":
        """Return a copy located in ``path``, shifting the offset by ``base_offset``."""
        offset = None if self.offset is None else self.offset + base_offset
        return CorruptionError(self.detail, path=path if path is not None else self.path, offset=offset)

    def __reduce__(self):
        return (CorruptionError, (self.detail, self.path, self.offset))


class StoreLockedError(ChunkstoreError, OSError):
    """Another writer holds the store directory's lock."""


class StoreClosedError(ChunkstoreError):
    """The store (or a handle on it) was used after ``close()``."""


class ReadOnlyError(ChunkstoreError, PermissionError):
    """A write was attempted on a store opened with ``read_only=True``."""


class QueryTimeoutError(ChunkstoreError, TimeoutError):
    """A query ran longer than the store's ``query_timeout`` option."""
