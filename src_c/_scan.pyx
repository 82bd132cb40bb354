"""The block line scanner, compiled: ``chunkstore._scan``.

Where query speed comes from.  A raw block keeps its line text contiguous
(docs/FORMAT.md section 2), so instead of testing lines one by one the
scanner searches the whole text section for each needle (``cs_search.h``:
a two-rare-byte SIMD prefilter, AVX2 or SSE2 picked at run time), maps
every hit to its entry by binary search over the line offsets, drops hits
that straddle two entries, and skips to the next entry after a hit.  Clauses
are evaluated most selective first, each only over the entries still alive,
so later clauses touch only candidate lines.  Everything after decompression
runs without the GIL; Python objects are made only for returned lines.

A :class:`Filter` is a conjunction of clauses ``(needles, negate,
case_insensitive)``: a positive clause keeps a line containing at least one
needle, a negative clause keeps a line containing none.  Case folding is
ASCII only (``A-Z`` match ``a-z``; every other byte, including non-ASCII
UTF-8 bytes, compares exactly).  An empty needle occurs in every line.

The pure-Python twin is ``chunkstore._scan_py`` (same names, results,
exceptions).
"""

from cpython.buffer cimport PyBUF_ANY_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release
from cpython.buffer cimport PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from cs_common cimport (
    CS_E_NOMEM, as_bytes, cs_crc32c, cs_crc_init, cs_err, cs_raw, cs_raw_columns,
    cs_raw_header, cs_raw_meta, cs_uvarint_trusted, lz4_library_path, raw_error,
)

import operator

from chunkstore._block import MAX_RAW_LEN, decompress_block
from chunkstore.errors import CorruptionError


cdef extern from "cs_lz4tls.h" nogil:
    ctypedef int (*cs_lz4_fn)(const char *src, char *dst, int src_size, int dst_capacity)
    cs_lz4_fn cs_lz4_decompress_safe
    int cs_lz4tls_init(const char *lib_path)
    uint8_t *cs_tls_acquire(size_t n, int *owned)
    void cs_tls_release(uint8_t *p, int owned)
    uint8_t *cs_tls_acquire_slot(int slot, size_t n, int *owned)
    void cs_tls_release_slot(int slot, uint8_t *p, int owned)
    int cs_pread_all(int fd, uint8_t *dst, size_t n, int64_t off)


cdef extern from "cs_search.h" nogil:
    ctypedef struct cs_needle:
        const uint8_t *s
        size_t m
        int ci
        int rarity

    ctypedef struct cs_clause:
        size_t first
        size_t count
        int negate
        int has_empty

    ctypedef struct cs_filter:
        const cs_needle *needles
        const cs_clause *clauses
        const size_t *order
        size_t n_clauses

    int cs_search_level
    void cs_search_init(int max_level)
    void cs_needle_init(cs_needle *nd, const uint8_t *s, size_t m, int ci)
    size_t cs_filter_apply(const cs_filter *f, const uint8_t *text, const uint64_t *off,
                           size_t a, size_t b, uint8_t *alive, uint8_t *hit)


__all__ = ["Filter", "scan_raw", "scan_block", "scan_block_at", "count_raw"]

cs_search_init(2)
cs_crc_init()


cdef bint _init_fast_lz4():
    cdef bytes lib = lz4_library_path()
    return cs_lz4tls_init(<const char *>lib if lib is not None else NULL) != 0


#: True when lz4 blocks are decompressed into a per-thread buffer (see cs_lz4tls.h).
FAST_LZ4 = bool(_init_fast_lz4())

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _set_search_level(max_level):
    """Limit the search kernel (0 scalar, 1 SSE2, 2 AVX2); return the level in use.

    For tests that exercise every kernel; the module starts at the best level
    the CPU supports.
    """
    cs_search_init(operator.index(max_level))
    return cs_search_level


# --- filters (argument checks identical to _scan_py) ----------------------------


def _normalize_clauses(clauses):
    """Validate filter clauses; return them as tuples (``TypeError``/``ValueError``)."""
    if isinstance(clauses, (bytes, bytearray, str)):
        raise TypeError("Filter: clauses must be a sequence of (needles, negate, case_insensitive)")
    out = []
    for clause in clauses:
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


cdef class Filter:
    """An immutable compiled line filter: every clause must keep the line.

    Zero clauses match every line.  Raises ``TypeError`` for wrongly typed
    clauses, needles or flags and ``ValueError`` for a clause that is not a
    3-tuple.  Clauses are evaluated positive ones first, the most selective
    (fewest needles, rarest bytes) first.
    """

    cdef tuple _clauses
    cdef list _keep
    cdef cs_needle *needles
    cdef cs_clause *cls
    cdef size_t *order
    cdef cs_filter f

    def __cinit__(self, *args, **kwargs):
        self.needles = NULL
        self.cls = NULL
        self.order = NULL

    def __init__(self, clauses):
        if self.cls != NULL:
            raise TypeError("Filter: already initialized")
        self._clauses = _normalize_clauses(clauses)
        cdef size_t nc = len(self._clauses), nn = 0, k = 0, j
        for needles, negate, ci in self._clauses:
            nn += len(needles)
        self.needles = <cs_needle *>malloc((nn + 1) * sizeof(cs_needle))
        self.cls = <cs_clause *>malloc((nc + 1) * sizeof(cs_clause))
        self.order = <size_t *>malloc((nc + 1) * sizeof(size_t))
        if self.needles == NULL or self.cls == NULL or self.order == NULL:
            raise MemoryError()
        self._keep = []
        keys = []
        cdef bytes folded
        for j, (needles, negate, ci) in enumerate(self._clauses):
            self.cls[j].first = k
            self.cls[j].count = len(needles)
            self.cls[j].negate = negate
            self.cls[j].has_empty = 0
            worst = 0
            shortest = 1 << 62
            for needle in needles:
                folded = needle.lower() if ci else needle
                self._keep.append(folded)
                cs_needle_init(&self.needles[k], <const uint8_t *>PyBytes_AS_STRING(folded),
                               <size_t>PyBytes_GET_SIZE(folded), ci)
                if PyBytes_GET_SIZE(folded) == 0:
                    self.cls[j].has_empty = 1
                worst = max(worst, self.needles[k].rarity)
                shortest = min(shortest, PyBytes_GET_SIZE(folded))
                k += 1
            keys.append((bool(negate), len(needles), worst, -shortest, j))
        for k, key in enumerate(sorted(keys)):
            self.order[k] = key[4]
        self.f.needles = self.needles
        self.f.clauses = self.cls
        self.f.order = self.order
        self.f.n_clauses = nc

    def __dealloc__(self):
        free(self.needles)
        free(self.cls)
        free(self.order)

    @property
    def clauses(self):
        """The clauses as given, normalized to tuples."""
        return self._clauses

    def matches(self, line):
        """Return True when every clause keeps ``line`` (a bytes-like object)."""
        cdef bytes data = as_bytes(line)
        cdef uint64_t off[2]
        cdef uint8_t alive = 1, hit = 0
        off[0] = 0
        off[1] = <uint64_t>PyBytes_GET_SIZE(data)
        return cs_filter_apply(&self.f, <const uint8_t *>PyBytes_AS_STRING(data), off, 0, 1,
                               &alive, &hit) == 1

    def __eq__(self, other):
        if not isinstance(other, Filter):
            return NotImplemented
        return self._clauses == (<Filter>other)._clauses

    def __hash__(self):
        return hash(self._clauses)

    def __repr__(self):
        return f"Filter({list(self._clauses)!r})"

    def __reduce__(self):
        return (Filter, (self._clauses,))


cdef Filter _check_filter(object flt):
    if not isinstance(flt, Filter):
        raise TypeError(f"flt must be a Filter of this module, got {type(flt).__name__}")
    return <Filter>flt


# --- the scan core ----------------------------------------------------------------


cdef struct scan_state:
    cs_raw r
    void *mem
    int64_t *ts
    uint64_t *off
    uint64_t *mstart
    uint8_t *alive
    uint8_t *hit
    size_t a
    size_t b


cdef int _scan_core(const uint8_t *base, size_t size, const cs_filter *f, bint empty,
                    int64_t lo, int64_t hi, scan_state *s, cs_err *e) noexcept nogil:
    """Parse and validate a raw block, then leave alive[i] = 1 for the entries with
    lo <= ts <= hi that f keeps, all in [s.a, s.b).  s.mem must be freed."""
    s.mem = NULL
    if cs_raw_header(base, size, &s.r, e):
        return -1
    cdef size_t n = s.r.n, i
    # n <= size / 2 was checked: this allocation is bounded by the input.
    cdef size_t words = 2 * (n + 1) + (n + 1 if s.r.meta_len else 0)
    s.mem = malloc(words * 8 + 2 * (n + 1))
    if s.mem == NULL:
        e.code = CS_E_NOMEM
        return -1
    s.ts = <int64_t *>s.mem
    s.off = <uint64_t *>(s.ts + n + 1)
    s.mstart = s.off + n + 1 if s.r.meta_len else NULL
    s.alive = <uint8_t *>(<uint64_t *>s.mem + words)
    s.hit = s.alive + n + 1
    if cs_raw_columns(base, &s.r, s.ts, s.off, e) or cs_raw_meta(base, &s.r, s.mstart, e):
        return -1
    s.a = 0
    s.b = 0
    if empty or n == 0:
        return 0
    cdef size_t a = n, b = 0
    cdef int64_t t
    for i in range(n):
        t = s.ts[i]
        if lo <= t <= hi:
            s.alive[i] = 1
            if a == n:
                a = i
            b = i + 1
        else:
            s.alive[i] = 0
    if a == n:
        return 0
    s.a = a
    s.b = b
    cs_filter_apply(f, base + s.r.text_pos, s.off, a, b, s.alive, s.hit)
    return 0


cdef bint _bounds(object start_ts, object end_ts, int64_t *clo, int64_t *chi):
    """The inclusive int64 bounds of [start_ts, end_ts); True when the range is empty."""
    lo = start_ts if start_ts > _INT64_MIN else _INT64_MIN
    hi = end_ts - 1 if end_ts - 1 < _INT64_MAX else _INT64_MAX
    if lo > hi:
        return True
    clo[0] = lo
    chi[0] = hi
    return False


cdef int _run(bytes buf, Filter flt, object start_ts, object end_ts, scan_state *s) except -1:
    """Run the scan core over buf for [start_ts, end_ts) (any Python ints)."""
    cdef int64_t clo = 0, chi = 0
    cdef bint empty = _bounds(start_ts, end_ts, &clo, &chi)
    cdef cs_err e
    cdef int rc
    cdef const uint8_t *base = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef size_t size = <size_t>PyBytes_GET_SIZE(buf)
    with nogil:
        rc = _scan_core(base, size, &flt.f, empty, clo, chi, s, &e)
    if rc:
        free(s.mem)
        s.mem = NULL
        raise raw_error(&e)
    return 0


cdef object _decode_metadata(const uint8_t *p):
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


def scan_raw(raw, flt, start_ts, end_ts, limit=-1, reverse=False):
    """Return ``(ts, line, metadata)`` of the entries with ``start_ts <= ts < end_ts``
    that ``flt`` matches, in block order (or reversed), at most ``limit`` of them
    when ``limit >= 0``.

    ``start_ts``/``end_ts`` are any ints (so ``end_ts = 2**63`` includes the
    largest int64).  Raises ``CorruptionError`` like ``decode_entries``.
    """
    cdef Filter f = _check_filter(flt)
    start_ts = operator.index(start_ts)
    end_ts = operator.index(end_ts)
    limit = operator.index(limit)
    cdef bint rev = bool(reverse)
    cdef bytes buf = as_bytes(raw)
    cdef scan_state s
    _run(buf, f, start_ts, end_ts, &s)
    return _collect(<const uint8_t *>PyBytes_AS_STRING(buf), &s, limit, rev)


cdef list _collect(const uint8_t *base, scan_state *s, object limit, bint rev):
    """The alive entries of a finished scan as (ts, line, metadata); frees s.mem."""
    cdef list out = []
    cdef Py_ssize_t want = -1 if limit < 0 else (limit if limit < (1 << 62) else (1 << 62))
    cdef size_t j, i, cnt
    cdef const char *text = <const char *>(base + s.r.text_pos)
    try:
        if want == 0 or s.a >= s.b:
            return out
        cnt = s.b - s.a
        for j in range(cnt):
            i = s.b - 1 - j if rev else s.a + j
            if not s.alive[i]:
                continue
            line = PyBytes_FromStringAndSize(text + s.off[i], <Py_ssize_t>(s.off[i + 1] - s.off[i]))
            meta = _decode_metadata(base + s.mstart[i]) if s.mstart != NULL else None
            out.append((s.ts[i], line, meta))
            if <Py_ssize_t>len(out) == want:
                break
        return out
    finally:
        free(s.mem)


cdef inline uint32_t _get_u32(const uint8_t *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


def scan_block(stored, flt, start_ts, end_ts, limit=-1, reverse=False, max_raw_len=MAX_RAW_LEN):
    """``scan_raw(decompress_block(stored, max_raw_len), ...)``.

    A sound lz4 block is decompressed into this thread's reused buffer and
    scanned there, crc to scan without the GIL (``FAST_LZ4``); anything
    else, including every damaged block, takes ``decompress_block`` so the
    errors are exactly the twin's.
    """
    cdef Filter f = _check_filter(flt)
    if not FAST_LZ4 or type(stored) is not bytes or not isinstance(max_raw_len, int):
        return scan_raw(decompress_block(stored, max_raw_len), f, start_ts, end_ts, limit, reverse)
    start_ts = operator.index(start_ts)
    end_ts = operator.index(end_ts)
    limit = operator.index(limit)
    cdef bytes data = <bytes>stored
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef size_t size = <size_t>PyBytes_GET_SIZE(data)
    cdef uint32_t raw_len, payload_len
    cdef object got
    if (size < 13 or (p[0] != 1 and p[0] != 2) or not 0 <= max_raw_len <= MAX_RAW_LEN
            or size > 0x7FFFFFFF):
        return scan_raw(decompress_block(stored, max_raw_len), f, start_ts, end_ts, limit, reverse)
    raw_len = _get_u32(p + 1)
    payload_len = _get_u32(p + 5)
    if raw_len > max_raw_len or payload_len != size - 13 or raw_len > 0x7FFFFFFF:
        return scan_raw(decompress_block(stored, max_raw_len), f, start_ts, end_ts, limit, reverse)
    got = _scan_lz4(p, size, raw_len, f, start_ts, end_ts, limit, reverse)
    if got is None:  # the slow path raises the twin's error for this block
        return scan_raw(decompress_block(stored, max_raw_len), f, start_ts, end_ts, limit, reverse)
    return got


cdef object _scan_lz4(const uint8_t *p, size_t size, uint32_t raw_len, Filter f,
                      object start_ts, object end_ts, object limit, object reverse):
    """Scan a stored lz4 block whose header fields were checked (codec, ``raw_len``,
    payload length = ``size`` - 13): crc, decompression into this thread's buffer
    and scan, all without the GIL.  None when the crc or the decompression fails;
    ``CorruptionError`` for a damaged raw block."""
    cdef int64_t clo = 0, chi = 0
    cdef bint empty = _bounds(start_ts, end_ts, &clo, &chi)
    cdef int owned = 0, got = -1, rc = -1
    cdef uint8_t *buf = cs_tls_acquire(<size_t>raw_len + 8, &owned)
    cdef scan_state s
    cdef cs_err e
    cdef bint sound = False
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            if cs_crc32c(0, p, size - 4) == _get_u32(p + size - 4):
                got = cs_lz4_decompress_safe(<const char *>(p + 9), <char *>buf,
                                             <int>(size - 13), <int>raw_len)
                if got == <int>raw_len:
                    sound = True
                    rc = _scan_core(buf, raw_len, &f.f, empty, clo, chi, &s, &e)
        if not sound:
            return None
        if rc:
            free(s.mem)
            raise raw_error(&e)
        return _collect(buf, &s, limit, bool(reverse))
    finally:
        cs_tls_release(buf, owned)


def _int64_buffer(obj, name):
    view = memoryview(obj)
    if view.readonly:
        raise TypeError(f"count_raw: {name} must be writable")
    fmt = view.format.lstrip("@=<")
    if view.ndim != 1 or view.itemsize != 8 or fmt not in ("q", "l") or not view.c_contiguous:
        raise TypeError(
            f"count_raw: {name} must be a contiguous 1-D buffer of int64, "
            f"got format {view.format!r} with {view.ndim} dimensions"
        )
    return view


def count_raw(raw, flt, start_ts, end_ts, origin, width, counts, byte_sums):
    """Add matching entries of a raw block into per-step buckets; return how many.

    An entry with ``start_ts <= ts < end_ts`` that ``flt`` matches falls in
    bucket ``k = ceil((ts - origin) / width) - 1`` (buckets are left-open,
    right-closed: ``origin + k*width < ts <= origin + (k+1)*width``); when
    ``0 <= k < len(counts)``, ``counts[k] += 1`` and ``byte_sums[k] +=
    len(line)``, and the entry is counted in the result.  ``counts`` and
    ``byte_sums`` are writable 1-D int64 buffers (``array('q')``) of equal
    length.  ``origin`` must fit in int64 (``OverflowError``) and ``width``
    be in ``[1, 2**63)`` (``ValueError`` when < 1, ``OverflowError`` above).
    No Python object is made per line.
    """
    cdef Filter f = _check_filter(flt)
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
    cdef bytes buf = as_bytes(raw)
    cdef int64_t c_origin = origin
    cdef uint64_t c_width = <uint64_t>width, k, nb = <uint64_t>len(cview)
    cdef Py_buffer cb, bb
    cdef scan_state s
    cdef size_t i, counted = 0
    cdef int64_t t
    cdef uint64_t *cp
    cdef uint64_t *bp
    _run(buf, f, start_ts, end_ts, &s)
    try:
        PyObject_GetBuffer(cview, &cb, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
        try:
            PyObject_GetBuffer(bview, &bb, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
            cp = <uint64_t *>cb.buf
            bp = <uint64_t *>bb.buf
            try:
                with nogil:
                    for i in range(s.a, s.b):
                        if not s.alive[i]:
                            continue
                        t = s.ts[i]
                        if t <= c_origin:
                            continue  # k = ceil((t - origin) / width) - 1 < 0
                        # t - origin as an unsigned 64-bit difference cannot overflow
                        k = (<uint64_t>t - <uint64_t>c_origin - 1) // c_width
                        if k < nb:
                            cp[k] += 1
                            bp[k] += s.off[i + 1] - s.off[i]
                            counted += 1
            finally:
                PyBuffer_Release(&bb)
        finally:
            PyBuffer_Release(&cb)
    finally:
        free(s.mem)
    return counted


def scan_block_at(fd, offset, stored_len, codec, raw_len, flt, start_ts, end_ts, limit=-1,
                  reverse=False):
    """``scan_block`` of the stored block at ``offset`` of file ``fd``, read without the GIL.

    For the query hot path (``FAST_LZ4``): read, header check against
    ``codec``/``raw_len`` (from the chunk index), crc, decompression and scan
    all run in C without the GIL, in buffers reused per thread.  Returns
    None whenever anything is off (a short read, a header that disagrees, a
    bad crc, another codec, no fast decompressor): the caller then takes the
    checked path, which raises the precise error.
    """
    cdef Filter f = _check_filter(flt)
    if not FAST_LZ4:
        return None
    cdef int c_fd = operator.index(fd)
    cdef int64_t at = operator.index(offset)
    cdef size_t size = operator.index(stored_len)
    cdef uint32_t want_raw = operator.index(raw_len)
    cdef int want_codec = operator.index(codec)
    if (want_codec != 1 and want_codec != 2) or size < 13 or size > 0x7FFFFFFF or at < 0 \
            or want_raw > MAX_RAW_LEN:
        return None
    start_ts = operator.index(start_ts)
    end_ts = operator.index(end_ts)
    limit = operator.index(limit)
    cdef int sowned = 0
    cdef bint agrees = False
    cdef uint8_t *sbuf = cs_tls_acquire_slot(1, size, &sowned)
    if sbuf == NULL:
        raise MemoryError()
    try:
        with nogil:
            agrees = (cs_pread_all(c_fd, sbuf, size, at) == 0 and sbuf[0] == want_codec
                      and _get_u32(sbuf + 1) == want_raw and _get_u32(sbuf + 5) == size - 13)
        if not agrees:
            return None
        try:
            return _scan_lz4(sbuf, size, want_raw, f, start_ts, end_ts, limit, reverse)
        except CorruptionError:  # a damaged raw block: the checked path reports it precisely
            return None
    finally:
        cs_tls_release_slot(1, sbuf, sowned)
