"""Timestamps: integer nanoseconds since the Unix epoch, everywhere.

Where chunkstore accepts a time it also accepts a ``datetime`` (aware, or
naive meaning UTC).  Floats are refused: a float cannot hold a nanosecond
timestamp exactly, and silently rounding log times is a bug waiting to happen.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["to_ns", "now_ns", "I64_MIN", "I64_MAX", "format_ns"]

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_ns() -> int:
    return time.time_ns()


def to_ns(value, *, what: str = "timestamp") -> int:
    """Integer nanoseconds from an int or a datetime; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected int nanoseconds or datetime, got bool")
    if isinstance(value, int):
        if not I64_MIN <= value <= I64_MAX:
            raise ValueError(f"{what}: {value} is outside the int64 nanosecond range")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise TypeError(
        f"{what}: expected int nanoseconds or datetime, got {type(value).__name__} {value!r}"
    )


def format_ns(ts: int) -> str:
    """RFC 3339 with nanoseconds, UTC (falls back to the integer outside datetime's range)."""
    try:
        secs, frac = divmod(ts, 1_000_000_000)
        dt = datetime.fromtimestamp(secs, tz=timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
    except (OverflowError, ValueError, OSError):
        return str(ts)
