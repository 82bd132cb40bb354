# Shared declarations of the chunkstore Cython core.
#
# The C kernels live in headers (cs_hash.h: CRC-32C and XXH64; cs_raw.h:
# varints and the raw block parser; cs_builder.h: the head block builder's
# storage and encoder; cs_search.h: the line scanner's search).  Each module
# that cimports this file compiles its own static copy of what it uses.
# The inline helpers below turn C results into the exceptions the pure-Python
# twins raise, with the same messages.

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "cs_hash.h" nogil:
    void cs_crc_init()
    uint32_t cs_crc32c(uint32_t value, const uint8_t *p, size_t n)
    uint64_t cs_xxh64(const uint8_t *p, size_t n, uint64_t seed)
    int cs_crc_have_hw


cdef extern from "cs_raw.h" nogil:
    enum:
        CS_MAX_META_PAIRS
        CS_OK
        CS_E_TRUNC
        CS_E_OVERFLOW
        CS_E_COUNT
        CS_E_TEXTLEN
        CS_E_METALEN
        CS_E_LINELEN
        CS_E_COLS_END
        CS_E_SUM
        CS_E_PAIRS_LIMIT
        CS_E_PAIRS_ROOM
        CS_E_METAFIELD
        CS_E_META_TRAIL
        CS_E_NOMEM
        CS_F_COUNT
        CS_F_TEXTLEN
        CS_F_METALEN
        CS_F_TS
        CS_F_LEN
        CS_F_PAIRS
        CS_F_METAFIELD

    ctypedef struct cs_err:
        int code
        int field
        uint64_t offset
        uint64_t a
        uint64_t b
        uint64_t entry

    ctypedef struct cs_raw:
        uint64_t n
        uint64_t text_len
        uint64_t meta_len
        size_t size
        size_t tl_off
        size_t ml_off
        size_t cols_pos
        size_t cols_end
        size_t text_pos

    int cs_raw_header(const uint8_t *buf, size_t size, cs_raw *r, cs_err *e)
    int cs_raw_columns(const uint8_t *buf, const cs_raw *r, int64_t *ts, uint64_t *off, cs_err *e)
    int cs_raw_meta(const uint8_t *buf, const cs_raw *r, uint64_t *mstart, cs_err *e)
    size_t cs_meta_canonical(const uint8_t *src, uint8_t *dst)
    uint64_t cs_uvarint_trusted(const uint8_t **pp)
    size_t cs_uvarint_size(uint64_t v)
    size_t cs_put_uvarint(uint8_t *p, uint64_t v)
    uint64_t cs_zigzag(uint64_t d)


cdef inline str _field_name(const cs_err *e):
    cdef int f = e.field
    if f == CS_F_COUNT:
        return "entry count"
    if f == CS_F_TEXTLEN:
        return "text_len"
    if f == CS_F_METALEN:
        return "meta_len"
    if f == CS_F_TS:
        return f"timestamp of entry {e.entry}"
    if f == CS_F_LEN:
        return f"line length of entry {e.entry}"
    if f == CS_F_PAIRS:
        return f"metadata pair count of entry {e.entry}"
    return f"metadata length of entry {e.entry}"


cdef inline object raw_error(const cs_err *e):
    """The exception for a failed raw block parse (same messages as _block_py)."""
    from chunkstore.errors import CorruptionError

    cdef int c = e.code
    if c == CS_E_NOMEM:
        return MemoryError()
    if c == CS_E_TRUNC:
        msg = f"truncated varint in {_field_name(e)}"
    elif c == CS_E_OVERFLOW:
        msg = f"varint in {_field_name(e)} overflows 64 bits"
    elif c == CS_E_COUNT:
        msg = f"entry count {e.a} needs more than the {e.b} bytes left"
    elif c == CS_E_TEXTLEN:
        msg = f"text_len {e.a} exceeds the {e.b} bytes available"
    elif c == CS_E_METALEN:
        msg = f"meta_len {e.a} exceeds the {e.b} bytes available"
    elif c == CS_E_LINELEN:
        msg = f"line length {e.a} of entry {e.entry} overflows text_len {e.b}"
    elif c == CS_E_COLS_END:
        msg = (f"entry columns end at offset {e.a}, {e.b} bytes before the "
               "metadata and text sections")
    elif c == CS_E_SUM:
        msg = f"line lengths sum to {e.a}, text_len is {e.b}"
    elif c == CS_E_PAIRS_LIMIT:
        msg = (f"metadata of entry {e.entry}: {e.a} pairs exceed the limit of "
               f"{CS_MAX_META_PAIRS}")
    elif c == CS_E_PAIRS_ROOM:
        msg = (f"metadata of entry {e.entry}: {e.a} pairs need more than the "
               f"{e.b} bytes left in the metadata section")
    elif c == CS_E_METAFIELD:
        msg = (f"metadata length {e.a} of entry {e.entry} exceeds the {e.b} bytes "
               "left in the metadata section")
    elif c == CS_E_META_TRAIL:
        msg = f"metadata section has {e.a} trailing bytes"
    else:
        msg = f"unknown parse error {c}"
    return CorruptionError("raw block: " + msg, offset=e.offset)


cdef inline bytes as_bytes(object data):
    """``data`` as bytes: bytes as is, any other buffer copied, else TypeError."""
    if type(data) is bytes:
        return <bytes>data
    if isinstance(data, bytes):
        return bytes(data)
    return bytes(memoryview(data))


cdef extern from "cs_tokens.h" nogil:
    ctypedef struct cs_hset:
        size_t count
        int have_zero
    int cs_hset_init(cs_hset *s, size_t cap_hint)
    void cs_hset_free(cs_hset *s)
    int cs_tf_collect(const uint8_t *text, size_t text_len, const uint64_t *off, uint64_t n,
                      size_t prefix_len, uint64_t *mask, cs_hset *set)
    uint64_t cs_tf_hash(const uint8_t *p, size_t len)
    size_t cs_tf_size(uint64_t n, uint64_t bits_per_key, uint64_t raw_len)
    void cs_tf_write(const cs_hset *s, uint8_t *out, size_t size)
    int cs_tf_may_contain(const uint8_t *f, size_t size, const uint64_t *hs, size_t nh)
    int cs_tf_build(const uint8_t *base, size_t size, uint64_t bits_per_key, size_t prefix_len,
                    uint8_t **out, size_t *out_len, cs_err *e)


cdef inline bytes lz4_library_path():
    """The file of python-lz4's block extension, whose lz4 functions the
    kernels look up with dlsym (no second copy of lz4); None if not found."""
    try:
        import lz4.block._block as ext
        return ext.__file__.encode()
    except (ImportError, AttributeError):  # pragma: no cover - depends on the install
        return None
