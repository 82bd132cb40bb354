"""The block line scanner in pure Python: the twin of ``chunkstore._scan``.

Same names, signatures, results and exceptions as the compiled module
(``src_c/_scan.pyx``), which searches the whole text section of a block at
once in C; this twin tests each selected line with ``in``.

A :class:`Filter` is a conjunction of clauses.  Each clause is ``(needles,
negate, case_insensitive)``: a positive clause keeps a line containing at
least one needle, a negative clause keeps a line containing none.  Case
folding is ASCII only: ``A-Z`` match ``a-z``, every other byte (including
non-ASCII UTF-8 bytes) compares exactly.  An empty needle occurs in every line.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from chunkstore._block_py import MAX_RAW_LEN, _as_bytes, _RawColumns, decompress_block

__all__ = ["Filter", "scan_raw", "scan_block", "scan_block_at", "count_raw"]

#: The compiled scanner decompresses lz4 into a reused per-thread buffer when
#: this is True there; the twin always allocates (same results either way).
FAST_LZ4 = False

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

Clause = tuple[Sequence[bytes], bool, bool]


def _normalize_clauses(clauses: object) -> tuple[tuple[tuple[bytes, ...], bool, bool], ...]:
    """Validate filter clauses; return them as tuples (``TypeError``/``ValueError``)."""
    if isinstance(clauses, (bytes, bytearray, str)):
        raise TypeError("Filter: clauses must be a sequence of (needles, negate, case_insensitive)")
    out = []
    for clause in clauses:  # type: ignore[attr-defined]
        if not isinstance(clause, (tuple, list)):
            raise TypeError(f"Filter: a clause must be a tuple, got {type(clause).__name__}")
        if len(clause) != 3:
            raise ValueError(
                f"Filter: a clause is (needles, negate, case_insensitive), got {len(clause)} items"
            )
        needles, negate, ci = clause
        if isinstance(needles, (bytes, bytearray, str, memoryview)):
            raise TypeError("Filter: needles must be a sequence of bytes, not a single value")
        items = []
        for needle in needles:
            if not isinstance(needle, bytes):
                raise TypeError(f"Filter: a needle must be bytes, got {type(needle).__name__}")
            items.append(bytes(needle))
        if not isinstance(negate, bool) or not isinstance(ci, bool):
            raise TypeError("Filter: negate and case_insensitive must be bool")
        out.append((tuple(items), negate, ci))
    return tuple(out)


class Filter:
    """An immutable compiled line filter: every clause must keep the line.

    Zero clauses match every line.  Raises ``TypeError`` for wrongly typed
    clauses, needles or flags and ``ValueError`` for a clause that is not a
    3-tuple.
    """

    __slots__ = ("_clauses", "_folded")

    def __init__(self, clauses: Sequence[Clause]) -> None:
        self._clauses = _normalize_clauses(clauses)
        self._folded = tuple(
            (tuple(n.lower() for n in needles) if ci else needles, negate, ci)
            for needles, negate, ci in self._clauses
        )

    @property
    def clauses(self) -> tuple[tuple[tuple[bytes, ...], bool, bool], ...]:
        """The clauses as given, normalized to tuples."""
        return self._clauses

    def matches(self, line: bytes) -> bool:
        """Return True when every clause keeps ``line`` (a bytes-like object)."""
        data = _as_bytes(line)
        lowered = None
        for needles, negate, ci in self._folded:
            if ci:
                if lowered is None:
                    lowered = data.lower()
                hay = lowered
            else:
                hay = data
            found = False
            for needle in needles:
                if needle in hay:
                    found = True
                    break
            if found == negate:
                return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return self._clauses == other._clauses

    def __hash__(self) -> int:
        return hash(self._clauses)

    def __repr__(self) -> str:
        return f"Filter({list(self._clauses)!r})"


def _check_filter(flt: object) -> Filter:
    if not isinstance(flt, Filter):
        raise TypeError(f"flt must be a Filter of this module, got {type(flt).__name__}")
    return flt


def _selected(cols: _RawColumns, flt: Filter, start_ts: int, end_ts: int, reverse: bool):
    order = range(cols.n - 1, -1, -1) if reverse else range(cols.n)
    ts = cols.ts
    for i in order:
        t = ts[i]
        if start_ts <= t < end_ts and flt.matches(cols.line(i)):
            yield i


def scan_raw(
    raw: object,
    flt: Filter,
    start_ts: int,
    end_ts: int,
    limit: int = -1,
    reverse: bool = False,
) -> list[tuple[int, bytes, Any]]:
    """Return ``(ts, line, metadata)`` of the entries with ``start_ts <= ts < end_ts``
    that ``flt`` matches, in block order (or reversed), at most ``limit`` of them
    when ``limit >= 0``.

    ``start_ts``/``end_ts`` are any ints (so ``end_ts = 2**63`` includes the
    largest int64).  Raises ``CorruptionError`` like ``decode_entries``.
    """
    flt = _check_filter(flt)
    start_ts = operator.index(start_ts)
    end_ts = operator.index(end_ts)
    limit = operator.index(limit)
    reverse = bool(reverse)
    cols = _RawColumns(_as_bytes(raw))
    out: list[tuple[int, bytes, Any]] = []
    if limit == 0:
        return out
    for i in _selected(cols, flt, start_ts, end_ts, reverse):
        out.append((cols.ts[i], cols.line(i), cols.metadata(i)))
        if len(out) == limit:
            break
    return out


def scan_block(
    stored: object,
    flt: Filter,
    start_ts: int,
    end_ts: int,
    limit: int = -1,
    reverse: bool = False,
    max_raw_len: int = MAX_RAW_LEN,
) -> list[tuple[int, bytes, Any]]:
    """``scan_raw(decompress_block(stored, max_raw_len), ...)``."""
    flt = _check_filter(flt)
    return scan_raw(decompress_block(stored, max_raw_len), flt, start_ts, end_ts, limit, reverse)


def _int64_buffer(obj: object, name: str) -> memoryview:
    view = memoryview(obj)  # type: ignore[arg-type]
    if view.readonly:
        raise TypeError(f"count_raw: {name} must be writable")
    fmt = view.format.lstrip("@=<")
    if view.ndim != 1 or view.itemsize != 8 or fmt not in ("q", "l") or not view.c_contiguous:
        raise TypeError(
            f"count_raw: {name} must be a contiguous 1-D buffer of int64, "
            f"got format {view.format!r} with {view.ndim} dimensions"
        )
    return view


def count_raw(
    raw: object,
    flt: Filter,
    start_ts: int,
    end_ts: int,
    origin: int,
    width: int,
    counts: object,
    byte_sums: object,
) -> int:
    """Add matching entries of a raw block into per-step buckets; return how many.

    An entry with ``start_ts <= ts < end_ts`` that ``flt`` matches falls in
    bucket ``k = ceil((ts - origin) / width) - 1`` (buckets are left-open,
    right-closed: ``origin + k*width < ts <= origin + (k+1)*width``); when
    ``0 <= k < len(counts)``, ``counts[k] += 1`` and ``byte_sums[k] +=
    len(line)``, and the entry is counted in the result.  ``counts`` and
    ``byte_sums`` are writable 1-D int64 buffers (``array('q')``) of equal
    length.  ``origin`` must fit in int64 (``OverflowError``) and ``width``
    be in ``[1, 2**63)`` (``ValueError`` when < 1, ``OverflowError`` above).
    """
    flt = _check_filter(flt)
    start_ts = operator.index(start_ts)
    end_ts = operator.index(end_ts)
    origin = operator.index(origin)
    width = operator.index(width)
    if not _INT64_MIN <= origin <= _INT64_MAX:
        raise OverflowError(f"count_raw: origin {origin} is outside the int64 range")
    if width < 1:
        raise ValueError(f"count_raw: width must be positive, got {width}")
    if width > _INT64_MAX:
        raise OverflowError(f"count_raw: width {width} is outside the int64 range")
    cview = _int64_buffer(counts, "counts")
    bview = _int64_buffer(byte_sums, "byte_sums")
    if len(cview) != len(bview):
        raise ValueError(
            f"count_raw: counts has {len(cview)} buckets but byte_sums has {len(bview)}"
        )
    cols = _RawColumns(_as_bytes(raw))
    nb = len(cview)
    counted = 0
    for i in _selected(cols, flt, start_ts, end_ts, False):
        k = (cols.ts[i] - origin - 1) // width  # == ceil((ts - origin) / width) - 1
        if 0 <= k < nb:
            cview[k] += 1
            bview[k] += cols.line_starts[i + 1] - cols.line_starts[i]
            counted += 1
    return counted


def scan_block_at(fd, offset, stored_len, codec, raw_len, flt, start_ts, end_ts, limit=-1,
                  reverse=False):
    """The compiled scanner's read-and-scan shortcut; the twin has none (``FAST_LZ4`` is False).

    Always None: the caller then reads the block and calls :func:`scan_block`.
    """
    if not isinstance(flt, Filter):
        raise TypeError(f"flt must be a Filter of this module, got {type(flt).__name__}")
    return None
