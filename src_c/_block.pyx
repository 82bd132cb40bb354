"""Raw and stored blocks, compiled: ``chunkstore._block``.

The byte layouts are docs/FORMAT.md section 2 (the raw, columnar block, also
the WAL entry payload) and section 3 (the stored block: compressed and
checksummed).  The C side is in ``cs_raw.h`` (parsing), ``cs_builder.h``
(the head block builder and its encoder) and ``cs_hash.h`` (CRC-32C).

The pure-Python twin is ``chunkstore._block_py``: same names, results,
exception types and messages.  Decoders raise
:class:`~chunkstore.errors.CorruptionError` with ``path=None`` and ``offset``
relative to the buffer given, checking every declared count and length
against the bytes left before sizing anything from it.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_CheckExact
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.list cimport PyList_Check, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_Check, PyLong_CheckExact, PyLong_FromLongLong
from cpython.dict cimport PyDict_CheckExact, PyDict_Next, PyDict_Size
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

from cs_common cimport (
    as_bytes, cs_crc32c, cs_crc_init, cs_err, cs_put_uvarint, cs_raw, cs_raw_columns, cs_tf_build,
    cs_raw_header, cs_raw_meta, cs_meta_canonical, cs_uvarint_size, cs_uvarint_trusted,
    cs_zigzag, lz4_library_path, raw_error,
)

import operator
from collections.abc import Mapping

import lz4.block as _lz4block

from chunkstore.errors import CorruptionError

try:  # optional codec
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None


cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(PyObject *obj, int *overflow)
    const char *PyUnicode_AsUTF8AndSize(PyObject *obj, Py_ssize_t *size)


cdef extern from *:
    """
    #if defined(__GLIBC__)
    #include <malloc.h>
    static int cs_heap_trim(void) { return malloc_trim(0); }
    #else
    static int cs_heap_trim(void) { return 0; }
    #endif
    """
    int cs_heap_trim() nogil


cdef extern from "cs_lz4tls.h" nogil:
    int cs_lz4c_init(const char *lib_path)
    size_t cs_lz4_state_size
    int cs_lz4_compress(void *state, const uint8_t *src, int n, uint8_t *dst, int cap)


cdef extern from "cs_builder.h" nogil:
    enum:
        CS_BB_OK
        CS_BB_NOMEM
        CS_BB_TOOBIG
        CS_BB_MAX_BYTES
        CS_BB_MAX_ENTRIES

    ctypedef struct cs_bb:
        size_t n
        size_t cap
        int64_t *ts
        uint32_t *off
        uint32_t *moff
        uint8_t *text
        uint8_t *meta
        int64_t min_ts
        int64_t max_ts
        int ordered
        int hashed
        uint64_t *hash
        uint32_t *table
        size_t table_cap

    void cs_bb_init(cs_bb *bb)
    void cs_bb_free(cs_bb *bb)
    void cs_bb_reset(cs_bb *bb)
    size_t cs_bb_text_len(const cs_bb *bb)
    size_t cs_bb_meta_len(const cs_bb *bb)
    size_t cs_bb_memory(const cs_bb *bb)
    int cs_bb_reserve(cs_bb *bb, size_t k, size_t text, size_t meta)
    int cs_bb_is_dup(cs_bb *bb, int64_t ts, const uint8_t *line, size_t len,
                     const uint8_t *meta, size_t mlen, uint64_t *h)
    void cs_bb_push(cs_bb *bb, int64_t ts, const uint8_t *line, size_t len,
                    const uint8_t *meta, size_t mlen, uint64_t h)
    void cs_bb_sort(const cs_bb *bb, uint32_t *perm, uint32_t *tmp)
    size_t cs_bb_encoded_size(const cs_bb *bb, const uint32_t *perm, size_t first, size_t cnt,
                              uint64_t *text_len, uint64_t *meta_len)
    void cs_bb_encode(const cs_bb *bb, const uint32_t *perm, size_t first, size_t cnt,
                      uint64_t text_len, uint64_t meta_len, uint8_t *out)
    uint64_t cs_bb_hash_of(int64_t ts, const uint8_t *line, size_t len,
                           const uint8_t *meta, size_t mlen)

    ctypedef struct cs_mpair:
        const char *name
        Py_ssize_t nlen
        const char *value
        Py_ssize_t vlen

    size_t cs_mpairs_sort(cs_mpair *p, size_t n)
    size_t cs_mpairs_encode(const cs_mpair *p, size_t n, uint8_t *out)


__all__ = [
    "CODEC_NONE",
    "CODEC_LZ4",
    "CODEC_LZ4HC",
    "CODEC_ZSTD",
    "MAX_RAW_LEN",
    "MAX_METADATA_PAIRS",
    "STORED_OVERHEAD",
    "BlockBuilder",
    "encode_entries",
    "decode_entries",
    "merge_raw_blocks",
    "compress_block",
    "compress_and_filter",
    "release_free_memory",
    "decompress_block",
    "read_block_header",
]

cs_crc_init()

CODEC_NONE = 0
CODEC_LZ4 = 1
CODEC_LZ4HC = 2
CODEC_ZSTD = 3
_CODEC_NAMES = {0: "none", 1: "lz4", 2: "lz4-hc", 3: "zstd"}

#: Largest raw (decompressed) block a reader accepts and a writer produces.
MAX_RAW_LEN = 64 << 20
#: Largest number of structured-metadata pairs on one entry.
MAX_METADATA_PAIRS = 1024
#: Bytes a stored block adds to its payload: 9-byte header + 4-byte crc32c.
STORED_OVERHEAD = 13

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
cdef size_t _NOGIL_MIN = 64 * 1024
#: wal_records.MAX_BODY: the largest WAL record body (FORMAT.md section 5)
cdef size_t _WAL_MAX_BODY = 64 << 20


# --- argument helpers (the same checks, order and messages as _block_py) ----------


def _ts64(value):
    """Return ``value`` as an int64 timestamp (``TypeError``/``OverflowError``)."""
    ts = operator.index(value)
    if not _INT64_MIN <= ts <= _INT64_MAX:
        raise OverflowError(f"timestamp {ts} is outside the int64 range")
    return ts


cdef inline int64_t _ts64_c(object value) except? -1:
    cdef int overflow = 0
    cdef long long t
    if PyLong_CheckExact(value):
        t = PyLong_AsLongLongAndOverflow(<PyObject *>value, &overflow)
        if not overflow:
            return t
    return _ts64(value)


cdef bytes _put_uvarint(uint64_t value):
    cdef uint8_t tmp[10]
    cdef size_t n = cs_put_uvarint(tmp, value)
    return PyBytes_FromStringAndSize(<char *>tmp, n)


def _encode_metadata(pairs):
    """Encode one entry's metadata pairs (section 2); ``b""`` for None or no pairs."""
    if pairs is None:
        return b""
    items = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)):
            raise TypeError(
                f"metadata: a pair must be a (name, value) tuple, got {type(pair).__name__}"
            )
        if len(pair) != 2:
            raise ValueError(f"metadata: a pair must have 2 items, got {len(pair)}")
        items.append((as_bytes(pair[0]), as_bytes(pair[1])))
    if not items:
        return b""
    if len(items) > MAX_METADATA_PAIRS:
        raise ValueError(
            f"metadata: {len(items)} pairs exceed the limit of {MAX_METADATA_PAIRS}"
        )
    out = [_put_uvarint(len(items))]
    for name, value in items:
        out.append(_put_uvarint(len(name)))
        out.append(name)
        out.append(_put_uvarint(len(value)))
        out.append(value)
    return b"".join(out)


def _mapping_metadata(meta):
    """Encode a Mapping[str, str] as sorted metadata pairs; (encoded, reject reason)."""
    if meta is None:
        return b"", None
    if not isinstance(meta, Mapping):
        return None, "invalid structured metadata"
    pairs = []
    for name, value in meta.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None, "invalid structured metadata"
        try:
            pairs.append((name.encode("utf-8"), value.encode("utf-8")))
        except UnicodeEncodeError:
            return None, "invalid structured metadata"
    if len(pairs) > MAX_METADATA_PAIRS:
        return None, (
            f"too many structured metadata pairs: {len(pairs)} exceeds {MAX_METADATA_PAIRS}"
        )
    pairs.sort()
    return _encode_metadata(pairs), None


cdef object _decode_metadata(const uint8_t *p):
    """Decode validated metadata at p: None for zero pairs, else a tuple of pairs."""
    cdef uint64_t k = cs_uvarint_trusted(&p)
    cdef uint64_t j, nl, vl
    if k == 0:
        return None
    out = []
    for j in range(k):
        nl = cs_uvarint_trusted(&p)
        name = PyBytes_FromStringAndSize(<const char *>p, <Py_ssize_t>nl)
        p += nl
        vl = cs_uvarint_trusted(&p)
        value = PyBytes_FromStringAndSize(<const char *>p, <Py_ssize_t>vl)
        p += vl
        out.append((name, value))
    return tuple(out)


# --- raw blocks -------------------------------------------------------------------


def encode_entries(ts, lines, metadata=None):
    """Encode entries, in the given order, as a raw block (FORMAT.md section 2).

    ``metadata`` is None or one item per entry (None or a tuple of
    ``(name, value)`` byte pairs); when no entry has a pair, ``meta_len`` is 0.
    An empty tuple encodes like None and decodes as None.  Raises
    ``ValueError`` on mismatched lengths or more than 1024 pairs,
    ``TypeError`` on a non-integer timestamp or a non-bytes line, name or
    value, ``OverflowError`` on a timestamp outside int64.
    """
    cdef Py_ssize_t n = len(ts)
    if len(lines) != n:
        raise ValueError(f"encode_entries: {n} timestamps but {len(lines)} lines")
    if metadata is not None and len(metadata) != n:
        raise ValueError(f"encode_entries: {n} timestamps but {len(metadata)} metadata items")
    cdef list ts_list = list(ts)
    cdef list line_list = list(lines)
    cdef list metas = None
    if len(ts_list) != n or len(line_list) != n:
        raise ValueError("encode_entries: a sequence changed length while being read")
    cdef int64_t *tsa = <int64_t *>malloc(<size_t>(n if n else 1) * sizeof(int64_t))
    if tsa == NULL:
        raise MemoryError()
    cdef Py_ssize_t i
    cdef uint64_t prev = 0, tl = 0, ml = 0, t, ln, mln
    cdef size_t total, cols = 0
    cdef bint any_meta = False
    cdef bytes out, b
    cdef uint8_t *p
    try:
        for i in range(n):
            tsa[i] = _ts64_c(ts_list[i])
        for i in range(n):
            b = as_bytes(line_list[i])
            line_list[i] = b
        if metadata is not None:
            metas = [_encode_metadata(m) for m in metadata]
            if len(metas) != n:
                raise ValueError("encode_entries: a sequence changed length while being read")
        for i in range(n):
            t = <uint64_t>tsa[i]
            ln = <uint64_t>PyBytes_GET_SIZE(line_list[i])
            cols += cs_uvarint_size(cs_zigzag(t - prev)) + cs_uvarint_size(ln)
            prev = t
            tl += ln
            if metas is not None:
                mln = <uint64_t>PyBytes_GET_SIZE(metas[i])
                if mln:
                    any_meta = True
                    ml += mln
                else:
                    ml += 1
        if not any_meta:
            ml = 0
        total = (cs_uvarint_size(<uint64_t>n) + cs_uvarint_size(tl) + cs_uvarint_size(ml)
                 + cols + ml + tl)
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)
        p = <uint8_t *>PyBytes_AS_STRING(out)
        p += cs_put_uvarint(p, <uint64_t>n)
        p += cs_put_uvarint(p, tl)
        p += cs_put_uvarint(p, ml)
        prev = 0
        for i in range(n):
            t = <uint64_t>tsa[i]
            p += cs_put_uvarint(p, cs_zigzag(t - prev))
            prev = t
        for i in range(n):
            p += cs_put_uvarint(p, <uint64_t>PyBytes_GET_SIZE(line_list[i]))
        if any_meta:
            for i in range(n):
                b = metas[i]
                mln = <uint64_t>PyBytes_GET_SIZE(b)
                if mln:
                    memcpy(p, PyBytes_AS_STRING(b), mln)
                    p += mln
                else:
                    p[0] = 0
                    p += 1
        for i in range(n):
            b = line_list[i]
            ln = <uint64_t>PyBytes_GET_SIZE(b)
            memcpy(p, PyBytes_AS_STRING(b), ln)
            p += ln
        return out
    finally:
        free(tsa)


cdef class _Parsed:
    """The validated columns of a raw block (C arrays owned by this object)."""

    cdef bytes buf
    cdef const uint8_t *base
    cdef cs_raw r
    cdef int64_t *ts
    cdef uint64_t *off
    cdef uint64_t *mstart

    def __dealloc__(self):
        free(self.ts)
        free(self.off)
        free(self.mstart)


cdef _Parsed _parse(object raw):
    cdef _Parsed c = _Parsed.__new__(_Parsed)
    cdef cs_err e
    cdef int rc
    c.buf = as_bytes(raw)
    c.base = <const uint8_t *>PyBytes_AS_STRING(c.buf)
    if cs_raw_header(c.base, <size_t>PyBytes_GET_SIZE(c.buf), &c.r, &e):
        raise raw_error(&e)
    # n <= len(raw) / 2 was checked: these allocations are bounded by the input.
    c.ts = <int64_t *>malloc((c.r.n + 1) * sizeof(int64_t))
    c.off = <uint64_t *>malloc((c.r.n + 1) * sizeof(uint64_t))
    if c.r.meta_len:
        c.mstart = <uint64_t *>malloc((c.r.n + 1) * sizeof(uint64_t))
    if c.ts == NULL or c.off == NULL or (c.r.meta_len and c.mstart == NULL):
        raise MemoryError()
    with nogil:
        rc = cs_raw_columns(c.base, &c.r, c.ts, c.off, &e)
        if rc == 0:
            rc = cs_raw_meta(c.base, &c.r, c.mstart, &e)
    if rc:
        raise raw_error(&e)
    return c


def decode_entries(raw):
    """Decode a raw block into ``(timestamps, lines, metadata)`` lists.

    Validates the whole block; raises ``CorruptionError(offset=...)`` (offset
    into ``raw``) on any inconsistency.  Entries without metadata give None.
    """
    cdef _Parsed c = _parse(raw)
    cdef size_t i, n = c.r.n
    cdef const char *text = <const char *>(c.base + c.r.text_pos)
    cdef list ts = [], lines = [], metas
    for i in range(n):
        ts.append(c.ts[i])
    for i in range(n):
        lines.append(PyBytes_FromStringAndSize(text + c.off[i],
                                               <Py_ssize_t>(c.off[i + 1] - c.off[i])))
    if c.r.meta_len:
        metas = []
        for i in range(n):
            metas.append(_decode_metadata(c.base + c.mstart[i]))
    else:
        metas = [None] * <Py_ssize_t>n
    return ts, lines, metas


def merge_raw_blocks(raws):
    """One raw block of every entry of ``raws``, sorted by timestamp (stable).

    Entries with equal timestamps keep their input order (block order, then
    position), and nothing is deduplicated: the result holds exactly the
    entries of the inputs.  The store merges a head's small cut blocks with
    it under memory pressure (``StreamHead.cut_merged``).  Every
    input is validated first (``CorruptionError`` with its offset).
    """
    parsed = [_parse(raw) for raw in raws]
    cdef BlockBuilder b = BlockBuilder()
    cdef _Parsed c
    for c in parsed:
        b._append_parsed(c, False)
    return b.build()


# --- stored blocks --------------------------------------------------------------


def _check_codec(codec, where):
    codec = operator.index(codec)
    if codec not in _CODEC_NAMES:
        raise ValueError(f"{where}: unknown codec {codec}")
    if codec == CODEC_ZSTD and _zstd is None:
        raise ValueError(f"{where}: codec 3 (zstd) needs the zstandard package")
    return codec


def _check_max_raw_len(max_raw_len, where):
    limit = operator.index(max_raw_len)
    if not 0 <= limit <= MAX_RAW_LEN:
        raise ValueError(f"{where}: max_raw_len must be in [0, {MAX_RAW_LEN}], got {limit}")
    return limit


cdef inline uint32_t _crc(const uint8_t *p, size_t n) noexcept:
    cdef uint32_t crc
    if n >= _NOGIL_MIN:
        with nogil:
            crc = cs_crc32c(0, p, n)
        return crc
    return cs_crc32c(0, p, n)


cdef inline void _put_u32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = v >> 24


cdef inline uint32_t _get_u32(const uint8_t *p) noexcept:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


def compress_block(raw, codec=CODEC_LZ4, level=0, zstd_params=None):
    """Compress and frame a raw block as a stored block (FORMAT.md section 3).

    ``codec`` is one of ``CODEC_NONE``, ``CODEC_LZ4`` (``level`` ignored),
    ``CODEC_LZ4HC`` (``level`` 0 means lz4-hc's default, 9) or ``CODEC_ZSTD``
    (needs the ``zstandard`` package; ``level`` 0 means zstd's default).
    Raises ``ValueError`` for an unknown or unavailable codec or a raw block
    above 64 MiB.
    ``zstd_params`` (zstd only) overrides the level's match-finder settings
    with ``zstandard.ZstdCompressionParameters`` fields, e.g.
    ``{"min_match": 6}``; the payload is still one frame with its content
    size.
    """
    cdef bytes data = as_bytes(raw)
    codec = _check_codec(codec, "compress_block")
    level = operator.index(level)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if n > MAX_RAW_LEN:
        raise ValueError(
            f"compress_block: raw block of {n} bytes exceeds the limit of "
            f"{MAX_RAW_LEN} bytes"
        )
    if codec == CODEC_NONE:
        payload = data
    elif codec == CODEC_LZ4:
        payload = _lz4block.compress(data, store_size=False, mode="default")
    elif codec == CODEC_LZ4HC:
        payload = _lz4block.compress(
            data, store_size=False, mode="high_compression", compression=level
        )
    else:
        payload = _zstd_compress(data, level, zstd_params)
    cdef bytes pb = as_bytes(payload)
    cdef Py_ssize_t pl = PyBytes_GET_SIZE(pb)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, pl + 13)
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
    p[0] = <uint8_t>codec
    _put_u32(p + 1, <uint32_t>n)
    _put_u32(p + 5, <uint32_t>pl)
    memcpy(p + 9, PyBytes_AS_STRING(pb), pl)
    _put_u32(p + 9 + pl, _crc(p, <size_t>(9 + pl)))
    return out


cdef bint _init_lz4c():
    cdef bytes lib = lz4_library_path()
    return cs_lz4c_init(<const char *>lib if lib is not None else NULL) != 0


#: True when compress_and_filter compresses lz4 blocks without the GIL.
NOGIL_LZ4 = bool(_init_lz4c())


def _check_filter_params(bits_per_key, prefix_len):
    bits_per_key = operator.index(bits_per_key)
    prefix_len = operator.index(prefix_len)
    if not 0 <= bits_per_key <= 64:
        raise ValueError(
            f"compress_and_filter: bits_per_key must be 0..64, got {bits_per_key}")
    if not 1 <= prefix_len <= 8:
        raise ValueError(f"compress_and_filter: prefix_len must be 1..8, got {prefix_len}")
    return bits_per_key, prefix_len


def compress_and_filter(raws, codec=CODEC_LZ4, bits_per_key=0, prefix_len=8):
    """``[(compress_block(raw, codec), block_filter(raw, bits_per_key, prefix_len)), ...]``.

    What a cut block needs before it can be sealed, for a list of raw
    blocks.  With lz4, the compression, checksums and token filters of the
    whole list run in one GIL-free section: a worker thread finishing cut
    blocks then takes the GIL twice per list instead of three times per block,
    and a Python thread holding the GIL (the writer) only hands it over at
    its switch interval, so every take can cost milliseconds.
    ``bits_per_key`` 0 means no filters (b""); else the filter is exactly
    ``chunkstore._tokens.block_filter``'s.  Raises what those two raise, for
    the first block that fails (``ValueError``, ``CorruptionError``).
    """
    codec = _check_codec(codec, "compress_block")
    cdef uint64_t bpk
    cdef size_t plen
    bpk, plen = _check_filter_params(bits_per_key, prefix_len)
    blocks = [as_bytes(r) for r in raws]
    cdef Py_ssize_t count = len(blocks), i
    for data in blocks:
        if PyBytes_GET_SIZE(data) > MAX_RAW_LEN:
            raise ValueError(
                f"compress_block: raw block of {PyBytes_GET_SIZE(data)} bytes exceeds the "
                f"limit of {MAX_RAW_LEN} bytes")
    if codec != CODEC_LZ4 or not NOGIL_LZ4:
        from chunkstore import _tokens
        return [(compress_block(r, codec),
                 _tokens.block_filter(r, bpk, plen) if bpk else b"") for r in blocks]
    if count == 0:
        return []
    cdef const uint8_t **src = <const uint8_t **>malloc(count * sizeof(uint8_t *))
    cdef size_t *srclen = <size_t *>malloc(count * sizeof(size_t))
    cdef uint8_t **stored = <uint8_t **>calloc(count, sizeof(uint8_t *))
    cdef size_t *stlen = <size_t *>calloc(count, sizeof(size_t))
    cdef uint8_t **flt = <uint8_t **>calloc(count, sizeof(uint8_t *))
    cdef size_t *fltlen = <size_t *>calloc(count, sizeof(size_t))
    cdef int *rc = <int *>calloc(count, sizeof(int))
    cdef cs_err *errs = <cs_err *>calloc(count, sizeof(cs_err))
    cdef void *state = malloc(cs_lz4_state_size)
    cdef size_t bound
    cdef int got
    cdef uint8_t *p
    try:
        if not (src and srclen and stored and stlen and flt and fltlen and rc and errs and state):
            raise MemoryError()
        for i in range(count):
            src[i] = <const uint8_t *>PyBytes_AS_STRING(blocks[i])
            srclen[i] = <size_t>PyBytes_GET_SIZE(blocks[i])
        with nogil:
            for i in range(count):
                bound = srclen[i] + srclen[i] // 255 + 16  # LZ4_COMPRESSBOUND
                p = <uint8_t *>malloc(bound + 13)
                if p == NULL:
                    rc[i] = -2
                    break
                stored[i] = p
                got = cs_lz4_compress(state, src[i], <int>srclen[i], p + 9, <int>bound)
                if got <= 0:
                    rc[i] = -3
                    break
                p[0] = 1  # CODEC_LZ4
                _put_u32(p + 1, <uint32_t>srclen[i])
                _put_u32(p + 5, <uint32_t>got)
                _put_u32(p + 9 + got, cs_crc32c(0, p, <size_t>(9 + got)))
                stlen[i] = <size_t>got + 13
                if bpk:
                    rc[i] = cs_tf_build(src[i], srclen[i], bpk, plen, &flt[i], &fltlen[i],
                                        &errs[i])
                    if rc[i]:
                        break
        out = []
        for i in range(count):
            if rc[i] == -1:
                raise raw_error(&errs[i])
            if rc[i] == -2:
                raise MemoryError()
            if rc[i] == -3:  # pragma: no cover - lz4 cannot fail within its bound
                raise ValueError("compress_block: lz4 compression failed")
            out.append((PyBytes_FromStringAndSize(<const char *>stored[i], <Py_ssize_t>stlen[i]),
                        PyBytes_FromStringAndSize(<const char *>flt[i], <Py_ssize_t>fltlen[i])
                        if bpk else b""))
        return out
    finally:
        if stored:
            for i in range(count):
                free(stored[i])
        if flt:
            for i in range(count):
                free(flt[i])
        free(src)
        free(srclen)
        free(stored)
        free(stlen)
        free(flt)
        free(fltlen)
        free(rc)
        free(errs)
        free(state)


def release_free_memory():
    """Give the heap's free pages back to the OS (glibc's ``malloc_trim``); True if any.

    A head under memory pressure frees many blocks, some allocated on the
    cut-block worker's thread (its own malloc arena), in an order that
    leaves free holes the allocator keeps; trimming returns them.  A no-op
    (False) where the C library has no such call.
    """
    cdef int rc
    with nogil:
        rc = cs_heap_trim()
    return rc != 0


def _zstd_compress(data, level, params):
    """One zstd frame of ``data`` (content size declared) at ``level``, with
    ``params`` overriding that level's parameters for a source of this size."""
    if not params:
        return _zstd.ZstdCompressor(level=level).compress(data)
    cp = _zstd.ZstdCompressionParameters.from_level(level, source_size=len(data), **params)
    return _zstd.ZstdCompressor(compression_params=cp).compress(data)


def _stored_corrupt(message, offset):
    return CorruptionError(f"stored block: {message}", offset=offset)


cdef tuple _parse_header(bytes data, object limit):
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    if size < 13:
        raise _stored_corrupt(f"{size} bytes, shorter than the 13-byte minimum", 0)
    codec = p[0]
    raw_len = _get_u32(p + 1)
    payload_len = _get_u32(p + 5)
    if codec not in _CODEC_NAMES:
        raise _stored_corrupt(f"unknown codec {codec}", 0)
    if raw_len > limit:
        raise _stored_corrupt(f"raw_len {raw_len} exceeds the limit of {limit} bytes", 1)
    if payload_len > size - 13:
        raise _stored_corrupt(
            f"payload_len {payload_len} exceeds the {size - 13} bytes present", 5
        )
    if codec == CODEC_NONE and payload_len != raw_len:
        raise _stored_corrupt(
            f"codec 0 payload_len {payload_len} differs from raw_len {raw_len}", 5
        )
    return codec, raw_len, payload_len


def read_block_header(stored, max_raw_len=MAX_RAW_LEN):
    """Return ``(codec, raw_len, payload_len)`` of a buffer starting with a stored block.

    Checks the header against the buffer (which may extend past the block) and
    the limits, not the checksum.  Raises ``CorruptionError`` on a bad header.
    """
    limit = _check_max_raw_len(max_raw_len, "read_block_header")
    return _parse_header(as_bytes(stored), limit)


def decompress_block(stored, max_raw_len=MAX_RAW_LEN):
    """Verify a stored block and return its raw block of exactly ``raw_len`` bytes.

    ``stored`` must be exactly one stored block.  Order of checks: the crc32c
    (offset 0 on mismatch), the header fields, then decompression bounded by
    the declared ``raw_len`` (at most ``max_raw_len``, itself at most 64 MiB).
    Any failure is a ``CorruptionError``; ``ValueError`` when the block uses
    zstd and the ``zstandard`` package is missing.
    """
    limit = _check_max_raw_len(max_raw_len, "decompress_block")
    cdef bytes data = as_bytes(stored)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    if size < 13:
        raise _stored_corrupt(f"{size} bytes, shorter than the 13-byte minimum", 0)
    cdef uint32_t want = _get_u32(p + size - 4)
    cdef uint32_t got = _crc(p, <size_t>(size - 4))
    if want != got:
        raise _stored_corrupt(
            f"crc32c mismatch: stored 0x{want:08x}, computed 0x{got:08x}", 0
        )
    codec, raw_len, payload_len = _parse_header(data, limit)
    if payload_len != size - 13:
        raise _stored_corrupt(
            f"payload_len {payload_len} does not match the {size - 13} "
            "payload bytes present",
            5,
        )
    if codec == CODEC_NONE:
        return data[9:9 + payload_len]
    payload = memoryview(data)[9:9 + payload_len]
    if codec == CODEC_ZSTD:
        out = _zstd_decompress(bytes(payload), raw_len)
    else:
        try:
            out = _lz4block.decompress(payload, uncompressed_size=raw_len)
        except (_lz4block.LZ4BlockError, ValueError) as exc:
            raise _stored_corrupt(f"lz4 payload does not decompress: {exc}", 9) from None
    if len(out) != raw_len:
        raise _stored_corrupt(
            f"payload decompresses to {len(out)} bytes, raw_len is {raw_len}", 9
        )
    return out


def _zstd_decompress(payload, raw_len):
    """Decompress a zstd frame to at most ``raw_len`` bytes (never trusting its header)."""
    if _zstd is None:
        raise ValueError("decompress_block: codec 3 (zstd) needs the zstandard package")
    try:
        declared = _zstd.frame_content_size(payload)
        if declared >= 0 and declared != raw_len:
            raise _stored_corrupt(
                f"zstd frame declares {declared} bytes, raw_len is {raw_len}", 9
            )
        # python-zstandard reads max_output_size=0 as "unbounded": ask for at
        # least 1 byte, so a frame that expands when raw_len is 0 still fails.
        out = _zstd.ZstdDecompressor().decompress(payload, max_output_size=max(raw_len, 1))
    except _zstd.ZstdError as exc:
        raise _stored_corrupt(f"zstd payload does not decompress: {exc}", 9) from None
    return out


# --- the head block builder -------------------------------------------------------


cdef int _check_rc(int rc) except -1:
    if rc == CS_BB_NOMEM:
        raise MemoryError()
    if rc == CS_BB_TOOBIG:
        raise OverflowError(
            "BlockBuilder: more than 4 GiB of text or metadata, or 2**31 entries"
        )
    return 0


cdef class BlockBuilder:
    """The in-memory head block of one stream: entries in arrival order, built sorted.

    Columns live in C buffers (int64 timestamps, uint32 line and metadata
    offsets, one text buffer, one metadata buffer) that grow by doubling and
    are kept across :meth:`reset`.  Exact duplicates (same timestamp, line
    bytes and encoded metadata) of an entry already held are dropped, as Loki
    does.  ``text_capacity`` / ``entry_capacity`` pre-size the buffers.  At
    most 4 GiB of text and of metadata, and 2**31 - 2 entries
    (``OverflowError``).  Not thread-safe.
    """

    cdef cs_bb bb
    # scratch for encoding dict metadata in extend(): pairs, then bytes
    cdef cs_mpair *mpairs
    cdef size_t mpairs_cap
    cdef uint8_t *mbuf
    cdef size_t mbuf_cap

    def __cinit__(self, *args, **kwargs):
        cs_bb_init(&self.bb)
        self.mpairs = NULL
        self.mpairs_cap = 0
        self.mbuf = NULL
        self.mbuf_cap = 0

    def __init__(self, *, text_capacity=0, entry_capacity=0):
        tc = operator.index(text_capacity)
        ec = operator.index(entry_capacity)
        if tc > 0 or ec > 0:
            _check_rc(cs_bb_reserve(&self.bb, <size_t>min(max(ec, 0), 1 << 30),
                                    <size_t>min(max(tc, 0), 1 << 31), 0))

    def __dealloc__(self):
        cs_bb_free(&self.bb)
        free(self.mpairs)
        free(self.mbuf)

    # -- appending --

    cdef int _add(self, int64_t ts, const uint8_t *line, size_t ln, const uint8_t *meta,
                  size_t mln) except -1:
        """Append unless an exact duplicate: 1 appended, 0 duplicate."""
        cdef uint64_t h
        cdef int rc = cs_bb_reserve(&self.bb, 1, ln, mln)
        if rc:
            _check_rc(rc)
        rc = cs_bb_is_dup(&self.bb, ts, line, ln, meta, mln, &h)
        if rc < 0:
            _check_rc(rc)
        if rc:
            return 0
        cs_bb_push(&self.bb, ts, line, ln, meta, mln, h)
        return 1

    cdef int _dict_metadata(self, object d, size_t *mln) except -1:
        """Encode a dict's metadata into self.mbuf, like _mapping_metadata in C.

        Returns 0 (encoded, *mln bytes), 1 (invalid structured metadata) or
        2 (too many pairs, *mln = their number).  Runs no Python code, so
        pointers into the caller's objects stay valid.
        """
        cdef Py_ssize_t pos = 0, k = 0, n = PyDict_Size(d)
        cdef PyObject *key
        cdef PyObject *val
        cdef cs_mpair *grown
        cdef uint8_t *buf
        cdef size_t size
        if n == 0:
            mln[0] = 0
            return 0
        if <size_t>n > self.mpairs_cap:
            grown = <cs_mpair *>realloc(self.mpairs, <size_t>n * sizeof(cs_mpair))
            if grown == NULL:
                raise MemoryError()
            self.mpairs = grown
            self.mpairs_cap = <size_t>n
        while PyDict_Next(d, &pos, &key, &val):
            if k >= n or not PyUnicode_Check(<object>key) or not PyUnicode_Check(<object>val):
                return 1
            self.mpairs[k].name = PyUnicode_AsUTF8AndSize(key, &self.mpairs[k].nlen)
            if self.mpairs[k].name == NULL:
                PyErr_Clear()
                return 1
            self.mpairs[k].value = PyUnicode_AsUTF8AndSize(val, &self.mpairs[k].vlen)
            if self.mpairs[k].value == NULL:
                PyErr_Clear()
                return 1
            k += 1
        if k != n:
            return 1
        if n > MAX_METADATA_PAIRS:
            mln[0] = <size_t>n
            return 2
        size = cs_mpairs_sort(self.mpairs, <size_t>n)
        if size > self.mbuf_cap:
            buf = <uint8_t *>realloc(self.mbuf, size)
            if buf == NULL:
                raise MemoryError()
            self.mbuf = buf
            self.mbuf_cap = size
        mln[0] = cs_mpairs_encode(self.mpairs, <size_t>n, self.mbuf)
        return 0

    def append(self, ts, line, metadata=None):
        """Append one entry; return False (and keep nothing) for an exact duplicate.

        Raises ``TypeError``/``OverflowError``/``ValueError`` like
        :func:`encode_entries` for a bad timestamp, line or metadata.
        """
        cdef int64_t t = _ts64_c(ts)
        cdef bytes lb = as_bytes(line)
        cdef bytes mb = _encode_metadata(metadata)
        return self._add(t, <const uint8_t *>PyBytes_AS_STRING(lb), <size_t>PyBytes_GET_SIZE(lb),
                         <const uint8_t *>PyBytes_AS_STRING(mb),
                         <size_t>PyBytes_GET_SIZE(mb)) == 1

    def extend(self, entries, max_line_size, min_ts):
        """Validate and append a batch of pushed entries; the collector fast path.

        Each item is ``(ts, line)`` or ``(ts, line, metadata)``: ``ts`` an int,
        ``line`` bytes or str (UTF-8 encoded), ``metadata`` None or a
        ``Mapping[str, str]`` (stored as UTF-8 pairs sorted by name).  Checks,
        in order, with the reject reason given: not a 2- or 3-tuple/list
        ("invalid entry"); ts not an int in int64 ("invalid timestamp"); line
        type ("line must be str or bytes", "line is not valid unicode"); line
        length above ``max_line_size`` when ``max_line_size > 0``
        ("line too long: N bytes exceeds max_line_size M"); metadata ("invalid
        structured metadata", "too many structured metadata pairs: N exceeds
        1024"); exact duplicate (skipped silently, not a reject); ``ts <
        min_ts`` ("too far behind").

        Returns ``(n_accepted, rejects, wal_raw)``: ``rejects`` lists
        ``(index, reason)``; ``wal_raw`` is :func:`encode_entries` of exactly
        the accepted entries in input order.  The loop runs in C; only
        metadata and rejects touch Python-level code.
        """
        return self._extend(entries, max_line_size, min_ts, True)

    cdef tuple _extend(self, entries, max_line_size, min_ts, bint encode):
        max_line_size = operator.index(max_line_size)
        cdef int64_t floor = _ts64_c(min_ts)
        cdef long long mls = 0
        if max_line_size > 0:
            mls = max_line_size if max_line_size < (1 << 62) else (1 << 62)
        cdef list items = list(entries)
        cdef list rejects = []
        cdef size_t first = self.bb.n
        cdef Py_ssize_t i, sz, nitems = PyList_GET_SIZE(items)
        cdef PyObject *item
        cdef PyObject *ts_obj
        cdef PyObject *line_obj
        cdef object meta_obj, enc, reason
        cdef bytes mb
        cdef long long t
        cdef int overflow, rc
        cdef const char *lp
        cdef Py_ssize_t ll
        cdef const uint8_t *mp
        cdef size_t mln
        cdef uint64_t h
        for i in range(nitems):
            # `items` is our own list and keeps every item alive; the borrowed
            # pointers into an item are only used before any Python-level call
            # except for tuples, which are immutable.
            item = PyList_GET_ITEM(items, i)
            if PyTuple_Check(<object>item):
                sz = PyTuple_GET_SIZE(<object>item)
                if sz < 2 or sz > 3:
                    rejects.append((i, "invalid entry"))
                    continue
                ts_obj = PyTuple_GET_ITEM(<object>item, 0)
                line_obj = PyTuple_GET_ITEM(<object>item, 1)
                meta_obj = <object>PyTuple_GET_ITEM(<object>item, 2) if sz == 3 else None
            elif PyList_Check(<object>item):
                sz = PyList_GET_SIZE(<object>item)
                if sz < 2 or sz > 3:
                    rejects.append((i, "invalid entry"))
                    continue
                ts_obj = PyList_GET_ITEM(<object>item, 0)
                line_obj = PyList_GET_ITEM(<object>item, 1)
                meta_obj = <object>PyList_GET_ITEM(<object>item, 2) if sz == 3 else None
            else:
                rejects.append((i, "invalid entry"))
                continue
            if not PyLong_Check(<object>ts_obj):
                rejects.append((i, "invalid timestamp"))
                continue
            overflow = 0
            t = PyLong_AsLongLongAndOverflow(ts_obj, &overflow)
            if overflow or (t == -1 and PyErr_Occurred() != NULL):
                PyErr_Clear()
                rejects.append((i, "invalid timestamp"))
                continue
            if PyBytes_Check(<object>line_obj):
                lp = PyBytes_AS_STRING(<object>line_obj)
                ll = PyBytes_GET_SIZE(<object>line_obj)
            elif PyUnicode_Check(<object>line_obj):
                lp = PyUnicode_AsUTF8AndSize(line_obj, &ll)
                if lp == NULL:
                    PyErr_Clear()
                    rejects.append((i, "line is not valid unicode"))
                    continue
            else:
                rejects.append((i, "line must be str or bytes"))
                continue
            if mls and ll > mls:
                rejects.append(
                    (i, f"line too long: {ll} bytes exceeds max_line_size {max_line_size}")
                )
                continue
            if meta_obj is None:
                mp = NULL
                mln = 0
            elif PyDict_CheckExact(meta_obj):
                rc = self._dict_metadata(meta_obj, &mln)
                if rc == 1:
                    rejects.append((i, "invalid structured metadata"))
                    continue
                if rc == 2:
                    rejects.append((i, f"too many structured metadata pairs: {mln} exceeds "
                                       f"{MAX_METADATA_PAIRS}"))
                    continue
                mp = self.mbuf
            else:
                # Python-level code may run here (Mapping.items): hold the line.
                line_ref = <object>line_obj
                enc, reason = _mapping_metadata(meta_obj)
                if reason is not None:
                    rejects.append((i, reason))
                    continue
                mb = <bytes>enc
                mp = <const uint8_t *>PyBytes_AS_STRING(mb)
                mln = <size_t>PyBytes_GET_SIZE(mb)
                if PyUnicode_Check(line_ref):
                    lp = PyUnicode_AsUTF8AndSize(<PyObject *>line_ref, &ll)
                else:
                    lp = PyBytes_AS_STRING(line_ref)
            rc = cs_bb_reserve(&self.bb, 1, <size_t>ll, mln)
            if rc:
                _check_rc(rc)
            rc = cs_bb_is_dup(&self.bb, t, <const uint8_t *>lp, <size_t>ll, mp, mln, &h)
            if rc < 0:
                _check_rc(rc)
            if rc:
                continue
            if t < floor:
                rejects.append((i, "too far behind"))
                continue
            cs_bb_push(&self.bb, t, <const uint8_t *>lp, <size_t>ll, mp, mln, h)
        accepted = self.bb.n - first
        return accepted, rejects, (self._encode(NULL, first, accepted) if encode else None)

    def extend_record(self, entries, max_line_size, min_ts, lsn, stream_id):
        """:meth:`extend`, returning the framed WAL ENTRIES record instead of the raw block.

        ``(n_accepted, rejects, record)``: ``record`` is exactly
        ``wal_records.encode_entries(lsn, stream_id, wal_raw)`` (FORMAT.md
        section 5), encoded in place with one allocation and one checksum
        pass, or None when nothing was accepted.  Every append of the store
        goes through here, so the framing costs no Python-level call.
        Raises ``ValueError`` for an ``lsn`` or ``stream_id`` outside
        ``[0, 2**64)`` (before appending anything) and ``LimitError`` for a
        record over 64 MiB (the entries are in the builder then, as with
        ``encode_entries`` after ``extend``).
        """
        if not 0 <= lsn <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"wal record: lsn must be in [0, 2**64), got {lsn}")
        if not 0 <= stream_id <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"wal record: stream id must be in [0, 2**64), got {stream_id}")
        cdef uint64_t ulsn = lsn, usid = stream_id
        cdef size_t first = self.bb.n
        accepted, rejects, _none = self._extend(entries, max_line_size, min_ts, False)
        if not accepted:
            return accepted, rejects, None
        cdef uint64_t tl, ml
        cdef size_t raw_size = cs_bb_encoded_size(&self.bb, NULL, first, accepted, &tl, &ml)
        cdef size_t head = 1 + 8 + cs_uvarint_size(usid)
        cdef size_t body = head + raw_size
        if body > _WAL_MAX_BODY:
            from chunkstore.errors import LimitError
            raise LimitError(
                f"wal record: body of {body} bytes exceeds the 64 MiB limit (MAX_BODY)")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(8 + body))
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
        cdef uint32_t crc
        cdef int k
        _put_u32(p, <uint32_t>body)
        p[8] = 2  # ENTRIES
        for k in range(8):
            p[9 + k] = (ulsn >> (8 * k)) & 0xFF
        cs_put_uvarint(p + 17, usid)
        cdef size_t n_acc = accepted
        # Without the GIL: a thread waiting for it (the cut-block worker)
        # gets it here at once instead of at the writer's switch interval.
        with nogil:
            cs_bb_encode(&self.bb, NULL, first, n_acc, tl, ml, p + 8 + head)
            crc = cs_crc32c(cs_crc32c(0, p, 4), p + 8, body)
        _put_u32(p + 4, crc)
        return accepted, rejects, out

    def extend_raw(self, raw):
        """Append the entries of a raw block (WAL replay); return how many were new.

        The block is validated first (``CorruptionError``, nothing appended);
        exact duplicates are skipped.
        """
        return self._append_parsed(_parse(raw), True)

    cdef Py_ssize_t _append_parsed(self, _Parsed c, bint dedupe) except -1:
        """Append the entries of a parsed raw block; how many were appended.

        ``dedupe`` False appends duplicates too; only for merge_raw_blocks'
        throwaway builder: without the duplicate check an out-of-order
        builder has no hash index, so its dedup invariant (``_check``) does
        not hold; ``build()`` still sorts it.
        """
        cdef size_t i, n = c.r.n, added = 0, mln, span, widest = 0
        cdef const uint8_t *text = c.base + c.r.text_pos
        cdef uint8_t *scratch = NULL
        cdef int rc
        if c.r.meta_len:
            for i in range(n):
                span = c.mstart[i + 1] - c.mstart[i]
                if span > widest:
                    widest = span
            scratch = <uint8_t *>malloc(widest + 1)
            if scratch == NULL:
                raise MemoryError()
        try:
            for i in range(n):
                mln = cs_meta_canonical(c.base + c.mstart[i], scratch) if scratch else 0
                if dedupe:
                    added += self._add(c.ts[i], text + c.off[i], c.off[i + 1] - c.off[i],
                                       scratch, mln)
                    continue
                rc = cs_bb_reserve(&self.bb, 1, c.off[i + 1] - c.off[i], mln)
                if rc:
                    _check_rc(rc)
                cs_bb_push(&self.bb, c.ts[i], text + c.off[i], c.off[i + 1] - c.off[i],
                           scratch, mln, 0)
                added += 1
        finally:
            free(scratch)
        return <Py_ssize_t>added

    # -- reading --

    @property
    def n_entries(self):
        """Number of entries held."""
        return self.bb.n

    @property
    def text_bytes(self):
        """Sum of the line lengths, in bytes."""
        return cs_bb_text_len(&self.bb)

    @property
    def size_bytes(self):
        """Text + encoded metadata + 16 bytes per entry: the flush accounting figure."""
        return cs_bb_text_len(&self.bb) + cs_bb_meta_len(&self.bb) + 16 * self.bb.n

    @property
    def min_ts(self):
        """Smallest timestamp held, None when empty."""
        return self.bb.min_ts if self.bb.n else None

    @property
    def max_ts(self):
        """Largest timestamp held, None when empty."""
        return self.bb.max_ts if self.bb.n else None

    @property
    def ordered(self):
        """True while every append came in non-decreasing timestamp order."""
        return bool(self.bb.ordered)

    cdef bytes _encode(self, const uint32_t *perm, size_t first, size_t cnt):
        cdef uint64_t tl, ml
        cdef size_t size = cs_bb_encoded_size(&self.bb, perm, first, cnt, &tl, &ml)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>size)
        cs_bb_encode(&self.bb, perm, first, cnt, tl, ml, <uint8_t *>PyBytes_AS_STRING(out))
        return out

    cdef uint32_t *_sorted(self) except? NULL:
        """A malloc'ed stable ts order of the entries (caller frees), or NULL if ordered."""
        if self.bb.ordered or self.bb.n == 0:
            return NULL
        cdef uint32_t *perm = <uint32_t *>malloc(self.bb.n * sizeof(uint32_t))
        cdef uint32_t *tmp = <uint32_t *>malloc((self.bb.n // 2 + 1) * sizeof(uint32_t))
        if perm == NULL or tmp == NULL:
            free(perm)
            free(tmp)
            raise MemoryError()
        cs_bb_sort(&self.bb, perm, tmp)
        free(tmp)
        return perm

    def build(self):
        """Return the raw block of all entries sorted by timestamp (stable)."""
        cdef uint32_t *perm = self._sorted()
        try:
            return self._encode(perm, 0, self.bb.n)
        finally:
            free(perm)

    def entries(self):
        """Return ``(timestamps, lines, metadata)`` sorted like :meth:`build`."""
        cdef uint32_t *perm = self._sorted()
        cdef size_t j, i, n = self.bb.n
        ts, lines, metas = [], [], []
        try:
            for j in range(n):
                i = perm[j] if perm != NULL else j
                ts.append(self.bb.ts[i])
                lines.append(PyBytes_FromStringAndSize(
                    <const char *>(self.bb.text + self.bb.off[i]),
                    <Py_ssize_t>(self.bb.off[i + 1] - self.bb.off[i])))
                if self.bb.moff[i + 1] > self.bb.moff[i]:
                    metas.append(_decode_metadata(self.bb.meta + self.bb.moff[i]))
                else:
                    metas.append(None)
        finally:
            free(perm)
        return ts, lines, metas

    def reset(self):
        """Drop every entry, keeping the memory for the next block."""
        cs_bb_reset(&self.bb)

    def memory_bytes(self):
        """Bytes of capacity held by the builder's buffers (for the head memory budget)."""
        return (cs_bb_memory(&self.bb) + self.mpairs_cap * sizeof(cs_mpair)
                + self.mbuf_cap)

    def __len__(self):
        return self.bb.n

    def __repr__(self):
        return f"BlockBuilder(n_entries={self.bb.n}, size_bytes={self.size_bytes})"

    def _check(self):
        """Assert the builder's invariants (used by stress and stateful tests)."""
        cdef size_t i, n = self.bb.n, found
        cdef uint64_t h
        if n == 0:
            return
        assert self.bb.off[0] == 0 and self.bb.moff[0] == 0
        lo = hi = self.bb.ts[0]
        in_order = True
        for i in range(n):
            assert self.bb.off[i] <= self.bb.off[i + 1]
            assert self.bb.moff[i] <= self.bb.moff[i + 1]
            lo = min(lo, self.bb.ts[i])
            hi = max(hi, self.bb.ts[i])
            if i and self.bb.ts[i] < self.bb.ts[i - 1]:
                in_order = False
        assert lo == self.bb.min_ts and hi == self.bb.max_ts
        assert in_order == bool(self.bb.ordered)
        assert self.bb.ordered or self.bb.hashed
        if self.bb.hashed:
            found = 0
            for i in range(self.bb.table_cap):
                if self.bb.table[i]:
                    found += 1
            assert found == n
            for i in range(n):
                h = cs_bb_hash_of(self.bb.ts[i], self.bb.text + self.bb.off[i],
                                  self.bb.off[i + 1] - self.bb.off[i],
                                  self.bb.meta + self.bb.moff[i],
                                  self.bb.moff[i + 1] - self.bb.moff[i])
                assert h == self.bb.hash[i]
