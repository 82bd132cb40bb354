/* Varints and the raw (columnar) block of docs/FORMAT.md section 2.
 *
 * The parser validates as it goes and stops at the first problem, filling a
 * cs_err with a code, the offending field, the byte offset (relative to the
 * start of the raw block) and the values the message needs.  The Python
 * twin (chunkstore/_block_py.py, class _RawColumns) performs the same checks
 * in the same order and builds the same message from them; change both
 * together.  Every declared count or length is checked against the bytes
 * left before anything is sized from it, so a hostile header can never make a
 * caller allocate more than a small multiple of the input.
 *
 * Plain C, no Python calls: usable without the GIL.
 */
#ifndef CS_RAW_H
#define CS_RAW_H

#ifndef CS_UNUSED
#define CS_UNUSED __attribute__((unused))
#endif
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CS_MAX_META_PAIRS 1024

enum {
    CS_OK = 0,
    CS_E_TRUNC,        /* truncated varint in <field> */
    CS_E_OVERFLOW,     /* varint in <field> overflows 64 bits */
    CS_E_COUNT,        /* a = n, b = bytes left */
    CS_E_TEXTLEN,      /* a = text_len, b = bytes available */
    CS_E_METALEN,      /* a = meta_len, b = bytes available */
    CS_E_LINELEN,      /* a = line length, b = text_len, entry */
    CS_E_COLS_END,     /* a = offset where the columns end, b = bytes missing */
    CS_E_SUM,          /* a = sum of line lengths, b = text_len */
    CS_E_PAIRS_LIMIT,  /* a = pairs, entry */
    CS_E_PAIRS_ROOM,   /* a = pairs, b = bytes left in the section, entry */
    CS_E_METAFIELD,    /* a = name or value length, b = bytes left, entry */
    CS_E_META_TRAIL,   /* a = trailing bytes */
    CS_E_NOMEM
};

enum {
    CS_F_COUNT = 0,   /* "entry count" */
    CS_F_TEXTLEN,     /* "text_len" */
    CS_F_METALEN,     /* "meta_len" */
    CS_F_TS,          /* "timestamp of entry {i}" */
    CS_F_LEN,         /* "line length of entry {i}" */
    CS_F_PAIRS,       /* "metadata pair count of entry {i}" */
    CS_F_METAFIELD    /* "metadata length of entry {i}" */
};

typedef struct {
    int code;
    int field;
    uint64_t offset;
    uint64_t a, b;
    uint64_t entry;
} cs_err;

static inline int cs_fail(cs_err *e, int code, uint64_t offset, uint64_t a, uint64_t b)
{
    e->code = code;
    e->offset = offset;
    e->a = a;
    e->b = b;
    return -1;
}

/* ---- varints ---------------------------------------------------------- */

CS_UNUSED static int cs_get_uvarint_slow(const uint8_t *buf, size_t *pp, size_t end, uint64_t *out,
                               cs_err *e, int field, uint64_t entry)
{
    size_t start = *pp, p = *pp;
    uint64_t result = 0;
    int shift = 0;
    for (;;) {
        if (p >= end) {
            e->field = field;
            e->entry = entry;
            return cs_fail(e, CS_E_TRUNC, start, 0, 0);
        }
        uint8_t b = buf[p++];
        if (shift == 63 && b > 1) {
            e->field = field;
            e->entry = entry;
            return cs_fail(e, CS_E_OVERFLOW, start, 0, 0);
        }
        result |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *out = result;
            *pp = p;
            return 0;
        }
        shift += 7;
    }
}

/* Read a uvarint at *pp that must end at or before `end`.  With ten bytes
 * of room (any varint fits) the loop needs no bounds checks. */
static inline int cs_get_uvarint(const uint8_t *buf, size_t *pp, size_t end, uint64_t *out,
                                 cs_err *e, int field, uint64_t entry)
{
    size_t p = *pp;
    if (__builtin_expect(p < end && end - p >= 10, 1)) {
        const uint8_t *q = buf + p;
        uint64_t r = 0;
        for (int i = 0; i < 9; i++) {
            uint8_t b = q[i];
            r |= (uint64_t)(b & 0x7F) << (7 * i);
            if (b < 0x80) {
                *out = r;
                *pp = p + (size_t)i + 1;
                return 0;
            }
        }
        if (q[9] <= 1) {
            *out = r | ((uint64_t)q[9] << 63);
            *pp = p + 10;
            return 0;
        }
    }
    return cs_get_uvarint_slow(buf, pp, end, out, e, field, entry);
}

/* Decode a uvarint known to be valid (already validated or self-written). */
static inline uint64_t cs_uvarint_trusted(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint64_t result = 0;
    int shift = 0;
    for (;;) {
        uint8_t b = *p++;
        result |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80)
            break;
        shift += 7;
    }
    *pp = p;
    return result;
}

static inline size_t cs_uvarint_size(uint64_t v)
{
    return v < 0x80 ? 1 : (size_t)((64 - __builtin_clzll(v) + 6) / 7);
}

static inline size_t cs_put_uvarint(uint8_t *p, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

/* zigzag of a 64-bit two's complement value (the difference modulo 2^64) */
static inline uint64_t cs_zigzag(uint64_t d)
{
    return (d << 1) ^ (uint64_t)((int64_t)d >> 63);
}

static inline uint64_t cs_unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

/* ---- raw block parsing ------------------------------------------------ */

typedef struct {
    uint64_t n, text_len, meta_len;
    size_t size;      /* bytes of the raw block */
    size_t tl_off;    /* offset of the text_len varint */
    size_t ml_off;    /* offset of the meta_len varint */
    size_t cols_pos;  /* first byte of the ts column */
    size_t cols_end;  /* end of the len column == start of the meta section */
    size_t text_pos;  /* start of the text section */
} cs_raw;

/* Parse and check the three header varints. */
CS_UNUSED static int cs_raw_header(const uint8_t *buf, size_t size, cs_raw *r, cs_err *e)
{
    size_t p = 0;
    uint64_t n, tl, ml;
    r->size = size;
    if (cs_get_uvarint(buf, &p, size, &n, e, CS_F_COUNT, 0))
        return -1;
    r->tl_off = p;
    if (cs_get_uvarint(buf, &p, size, &tl, e, CS_F_TEXTLEN, 0))
        return -1;
    r->ml_off = p;
    if (cs_get_uvarint(buf, &p, size, &ml, e, CS_F_METALEN, 0))
        return -1;
    uint64_t rem = size - p;
    if (n > rem / 2)
        return cs_fail(e, CS_E_COUNT, 0, n, rem);
    uint64_t avail = rem - 2 * n;
    if (tl > avail)
        return cs_fail(e, CS_E_TEXTLEN, r->tl_off, tl, avail);
    avail -= tl;
    if (ml > avail)
        return cs_fail(e, CS_E_METALEN, r->ml_off, ml, avail);
    r->n = n;
    r->text_len = tl;
    r->meta_len = ml;
    r->cols_pos = p;
    r->cols_end = size - tl - ml;
    r->text_pos = r->cols_end + ml;
    return 0;
}

/* Parse the ts and len columns: ts[0..n) (may be NULL) and off[0..n] (line
 * start offsets relative to the text section, off[n] == text_len). */
CS_UNUSED static int cs_raw_columns(const uint8_t *buf, const cs_raw *r, int64_t *ts, uint64_t *off,
                          cs_err *e)
{
    size_t p = r->cols_pos, end = r->cols_end;
    uint64_t n = r->n, prev = 0, z, total = 0, len, tl = r->text_len;
    for (uint64_t i = 0; i < n; i++) {
        if (cs_get_uvarint(buf, &p, end, &z, e, CS_F_TS, i))
            return -1;
        prev += cs_unzigzag(z);
        if (ts)
            ts[i] = (int64_t)prev;
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t at = p;
        if (cs_get_uvarint(buf, &p, end, &len, e, CS_F_LEN, i))
            return -1;
        if (len > tl - total) {
            e->entry = i;
            return cs_fail(e, CS_E_LINELEN, at, len, tl);
        }
        off[i] = total;
        total += len;
    }
    off[n] = total;
    if (p != end)
        return cs_fail(e, CS_E_COLS_END, p, p, end - p);
    if (total != tl)
        return cs_fail(e, CS_E_SUM, r->tl_off, total, tl);
    return 0;
}

/* Parse and check the metadata section.  When mstart is not NULL, mstart[i]
 * is the absolute offset of entry i's metadata (mstart[n] = section end).
 * Does nothing when meta_len is 0. */
CS_UNUSED static int cs_raw_meta(const uint8_t *buf, const cs_raw *r, uint64_t *mstart, cs_err *e)
{
    if (r->meta_len == 0)
        return 0;
    size_t p = r->cols_end, end = r->cols_end + r->meta_len;
    uint64_t k, len;
    for (uint64_t i = 0; i < r->n; i++) {
        size_t at = p;
        if (mstart)
            mstart[i] = p;
        if (cs_get_uvarint(buf, &p, end, &k, e, CS_F_PAIRS, i))
            return -1;
        if (k > CS_MAX_META_PAIRS) {
            e->entry = i;
            return cs_fail(e, CS_E_PAIRS_LIMIT, at, k, 0);
        }
        if (k > (end - p) / 2) {
            e->entry = i;
            return cs_fail(e, CS_E_PAIRS_ROOM, at, k, end - p);
        }
        for (uint64_t j = 0; j < 2 * k; j++) {
            size_t fat = p;
            if (cs_get_uvarint(buf, &p, end, &len, e, CS_F_METAFIELD, i))
                return -1;
            if (len > end - p) {
                e->entry = i;
                return cs_fail(e, CS_E_METAFIELD, fat, len, end - p);
            }
            p += len;
        }
    }
    if (mstart)
        mstart[r->n] = p;
    if (p != end)
        return cs_fail(e, CS_E_META_TRAIL, p, end - p, 0);
    return 0;
}

/* Re-encode one entry's validated metadata with minimal varints into dst
 * (at most as long as the source); returns 0 bytes for zero pairs. */
CS_UNUSED static size_t cs_meta_canonical(const uint8_t *src, uint8_t *dst)
{
    const uint8_t *p = src;
    uint64_t k = cs_uvarint_trusted(&p);
    if (k == 0)
        return 0;
    size_t w = cs_put_uvarint(dst, k);
    for (uint64_t j = 0; j < 2 * k; j++) {
        uint64_t len = cs_uvarint_trusted(&p);
        w += cs_put_uvarint(dst + w, len);
        memmove(dst + w, p, len);
        w += len;
        p += len;
    }
    return w;
}

#endif /* CS_RAW_H */
