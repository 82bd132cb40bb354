"""Fuzz the chunk reader: chunk metadata, stored blocks, raw blocks, segment walking.

One input is tried as what a reader meets on disk (docs/FORMAT.md sections
2-4): a chunk (``decode_chunk_meta``, then every block it lists), else a
stored block (``decompress_block``) and a raw block (``decode_entries``); and,
behind a segment header, as a segment file (``SegmentReader.walk`` and
``verify(deep=True)``, ``SegmentWriter.open_existing``'s scan, and
``describe_segment`` of ``chunkstore inspect``).

Allowed: :class:`CorruptionError` (and ``ValueError`` for a zstd block
without the ``zstandard`` package, as documented).  Oracles, each a
finding when it fails:

- the compiled kernels and their pure-Python twins agree on every input:
  the same result, or a ``CorruptionError`` at the same offset;
- a decoded meta satisfies ``ChunkMeta._check()``;
- a decoded raw block re-encodes (both backends, byte-identical) to a block
  that decodes to the same entries;
- the scanner returns exactly the decoded entries that a plain Python filter
  selects (time range, literal, negation, limit, reverse order).

Run: ``python fuzz/fuzz_chunk_reader.py [--hypothesis] [--seconds N]``.
"""

from __future__ import annotations

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzzlib  # noqa: E402
from fuzzlib import Finding  # noqa: E402

from chunkstore import _block_py, _scan_py, _tokens_py  # noqa: E402
from chunkstore._kernels import crc32c  # noqa: E402
from chunkstore.chunkfile_format import decode_chunk_meta, encode_segment_header  # noqa: E402
from chunkstore.chunkfile_read import SegmentReader, describe_segment  # noqa: E402
from chunkstore.chunkfile_write import SegmentWriter  # noqa: E402
from chunkstore.errors import CorruptionError  # noqa: E402

NAME = "chunk_reader"
I64_MIN = -(1 << 63)
END_ALL = 1 << 63  # an exclusive end past every int64 timestamp

BACKENDS = [("pure", _block_py, _scan_py)]
_tokens_c = None
try:
    from chunkstore import _block as _block_c  # type: ignore[attr-defined]
    from chunkstore import _scan as _scan_c  # type: ignore[attr-defined]
    from chunkstore import _tokens as _tokens_c  # type: ignore[attr-defined]
except ImportError:  # pure-Python install: the twins are checked alone
    pass
else:
    BACKENDS.insert(0, ("compiled", _block_c, _scan_c))

_SCRATCH = fuzzlib.scratch_dir(NAME)
_SEGMENT = os.path.join(_SCRATCH, "fuzz.seg")
_SEG_HEADER = encode_segment_header()


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except CorruptionError as exc:
        return ("corrupt", exc.offset)
    except ValueError as exc:
        if "zstandard" in str(exc):  # documented: zstd block, package missing
            return ("no-zstd",)
        raise


def _agree(what: str, outcomes: list) -> tuple:
    first = outcomes[0]
    for (name, _b, _s), other in zip(BACKENDS[1:], outcomes[1:], strict=True):
        if other != first:
            raise Finding(f"{what}: {BACKENDS[0][0]} gives {_short(first)}, "
                          f"{name} gives {_short(other)}")
    return first


def _short(outcome) -> str:
    text = repr(outcome)
    return text if len(text) < 300 else text[:300] + "..."


def _expected_scan(entries, flt_fn, start, end, limit, reverse):
    out = [e for e in entries if start <= e[0] < end and flt_fn(e[1])]
    if reverse:
        out.reverse()
    return out if limit < 0 else out[:limit]


def check_raw(raw: bytes) -> bool:
    """Decode ``raw`` as a raw block with every backend; scan and re-encode it."""
    result = _agree("decode_entries", [_outcome(b.decode_entries, raw) for _n, b, _s in BACKENDS])
    if result[0] != "ok":
        return False
    ts, lines, metas = result[1]
    if not (len(ts) == len(lines) == len(metas)):
        raise Finding(f"decode_entries: column lengths {len(ts)}, {len(lines)}, {len(metas)}")
    entries = list(zip(ts, lines, metas, strict=True))
    encoded = {b.encode_entries(ts, lines, metas) for _n, b, _s in BACKENDS}
    if len(encoded) != 1:
        raise Finding("encode_entries: the backends encode the decoded entries differently")
    again = _agree("decode_entries(encode_entries(...))",
                   [_outcome(b.decode_entries, next(iter(encoded))) for _n, b, _s in BACKENDS])
    if again != ("ok", (ts, lines, metas)):
        raise Finding(f"raw block round trip changed the entries: {_short(again)}")
    # the scanner against a plain Python filter
    needle = lines[0][:3] if lines and lines[0] else b"a"
    mid = ts[len(ts) // 2] if ts else 0
    cases = [
        ([], lambda line: True, I64_MIN, END_ALL, -1, False),
        ([], lambda line: True, I64_MIN, END_ALL, -1, True),
        ([], lambda line: True, mid, END_ALL, 1, False),
        ([((needle,), False, False)], lambda line: needle in line, I64_MIN, mid + 1, -1, True),
        ([((needle, b"zz"), True, False)],
         lambda line: needle not in line and b"zz" not in line, I64_MIN, END_ALL, 2, False),
    ]
    for clauses, fn, start, end, limit, reverse in cases:
        want = _expected_scan(entries, fn, start, end, limit, reverse)
        for name, _b, s in BACKENDS:
            got = _outcome(s.scan_raw, raw, s.Filter(clauses), start, end, limit, reverse)
            if got != ("ok", want):
                raise Finding(f"scan_raw ({name}, {clauses}, [{start}, {end}), limit {limit}, "
                              f"reverse {reverse}): {_short(got)}, expected {_short(want)}")
    # case-insensitive search: the backends must agree (no simple oracle for folding)
    flt = [((needle.upper(),), False, True)]
    _agree("scan_raw case-insensitive",
           [_outcome(s.scan_raw, raw, s.Filter(flt), I64_MIN, END_ALL) for _n, _b, s in BACKENDS])
    return True


def check_stored(stored: bytes, max_raw_len: int = 64 << 20) -> bool:
    """Decompress ``stored`` with every backend; decode, scan and compare the result."""
    result = _agree("decompress_block",
                    [_outcome(b.decompress_block, stored, max_raw_len) for _n, b, _s in BACKENDS])
    header = _agree("read_block_header", [_outcome(b.read_block_header, stored, max_raw_len)
                                          for _n, b, _s in BACKENDS])
    if result[0] != "ok":
        return False
    raw = result[1]
    if header[0] != "ok" or header[1][1] != len(raw):
        raise Finding(f"decompress_block returned {len(raw)} bytes, header says {header}")
    ok = check_raw(raw)
    decoded = _outcome(BACKENDS[0][1].decode_entries, raw)
    for name, _b, s in BACKENDS:
        got = _outcome(s.scan_block, stored, s.Filter([]), I64_MIN, END_ALL, -1, False,
                       max_raw_len)
        want = ("ok", list(zip(*decoded[1], strict=True))) if decoded[0] == "ok" else decoded
        if got != want:
            raise Finding(f"scan_block ({name}) differs from decode_entries: {_short(got)}")
    return ok


def check_segment(data: bytes, chunk_ok: bool) -> None:
    """The on-disk path: ``data`` as the chunks of a segment file.

    When ``data`` is not one sound chunk, ``verify`` must say so.
    """
    with open(_SEGMENT, "wb") as f:
        f.write(_SEG_HEADER)
        f.write(data)
    with SegmentReader(_SEGMENT) as reader:
        for item in reader.walk():
            if not isinstance(item, CorruptionError):
                item._check()
        problems = reader.verify(deep=True)
    if data and not chunk_ok and not problems:
        raise Finding("SegmentReader.verify(deep=True) found nothing wrong with a segment "
                      "whose chunk the reader refuses")
    describe_segment(_SEGMENT)
    try:
        SegmentWriter.open_existing(_SEGMENT).close()
    except CorruptionError:
        pass


_PROBES = (0, 1, 0x9E3779B97F4A7C15, (1 << 64) - 1, 0x2AE39EC08370452D)


def check_filters(data: bytes, meta) -> bool:
    """A version 2 chunk's token filters: section crc, each ``k``, and both twins'
    ``may_contain`` agreeing on a few key hashes.  True when they are sound."""
    if meta.version < 2:
        return True
    body = data[meta.filters_offset:meta.index_offset - 4]
    if crc32c(body) != _U32.unpack_from(data, meta.index_offset - 4)[0]:
        return False
    ok = True
    for b in meta.blocks:
        if not b.filter_len:
            continue
        f = data[b.filter_offset:b.filter_offset + b.filter_len]
        if not 1 <= f[0] <= 16:  # readers refuse it before probing (read_filters)
            ok = False
            continue
        twins = ([_tokens_c] if _tokens_c is not None else []) + [_tokens_py]  # BACKENDS order
        for h in _PROBES:
            _agree("may_contain", [_outcome(t.may_contain, f, [h]) for t in twins])
    return ok


def check(data: bytes) -> bool:
    """Feed one input to every chunk-level reader; True when some reader accepts it."""
    try:
        meta = decode_chunk_meta(data)
    except CorruptionError:
        meta = None
    chunk_ok = meta is not None
    if meta is not None:
        meta._check()
        for b in meta.blocks:
            chunk_ok &= check_stored(data[b.offset:b.offset + b.stored_len], b.raw_len)
        chunk_ok &= check_filters(data, meta)
        accepted = chunk_ok
    else:
        accepted = check_stored(data)
        accepted |= check_raw(data)
    check_segment(data, chunk_ok)
    return accepted


# ---------------------------------------------------------------------------
# checksum fixups, so mutations get past the CRCs

_U32 = struct.Struct("<I")


def _put_crc(b: bytearray, start: int, end: int) -> None:
    """Store crc32c(b[start:end]) at b[end:end + 4] when it fits."""
    if 0 <= start <= end and end + 4 <= len(b):
        b[end:end + 4] = _U32.pack(crc32c(bytes(b[start:end])))


def fixup(data: bytes) -> bytes:
    """Recompute every checksum a chunk (or a lone stored block) carries."""
    b = bytearray(data)
    n = len(b)
    if not data.startswith(b"CSCK"):
        if n >= 13:
            _put_crc(b, 0, n - 4)
        return bytes(b)
    if n < 32:
        return data
    chunk_len = struct.unpack_from("<Q", b, 8)[0]
    if not 20 <= chunk_len <= n:
        chunk_len = n
    t = chunk_len - 20
    index_offset, index_len = struct.unpack_from("<QI", b, t)
    entry = 41 if b[4] == 1 else 45  # chunk version 2 adds filter_len
    if 8 <= index_len and index_offset + index_len <= t:
        n_blocks = _U32.unpack_from(b, index_offset)[0]
        end = 0
        for i in range(min(n_blocks, (index_len - 8) // entry)):
            off, slen = struct.unpack_from("<QI", b, index_offset + 4 + entry * i)
            if slen >= 13 and off + slen <= index_offset:
                _put_crc(b, off, off + slen - 4)
                end = max(end, off + slen)
        if entry == 45 and end:  # the token filter section: from the blocks' end
            _put_crc(b, end, index_offset - 4)
        _put_crc(b, index_offset, index_offset + index_len - 4)
    _put_crc(b, t, t + 16)
    labels_len = _U32.unpack_from(b, 24)[0]
    _put_crc(b, 0, 28 + labels_len)
    return bytes(b)


if __name__ == "__main__":
    fuzzlib.main(NAME)
