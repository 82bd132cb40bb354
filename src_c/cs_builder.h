/* The head block builder's storage and the raw block encoder.
 *
 * Columns, in arrival order: int64 timestamps, uint32 line start offsets
 * into one text buffer and uint32 metadata start offsets into one metadata
 * buffer (n + 1 of each, the last being the buffer's length; a zero-length
 * metadata span means "no metadata").  Every buffer grows by doubling and is
 * kept across cs_bb_reset(), because appending into memory that was already
 * touched runs about twice as fast as into fresh pages.
 *
 * Duplicate detection (an exact duplicate has the same ts, line bytes and
 * encoded metadata) must only look at entries with the same timestamp.  While
 * appends arrive in order that is the run of equal timestamps at the end, so
 * the common case costs one comparison.  The first out-of-order append, or a
 * run of equal timestamps longer than CS_DUP_SCAN, switches the builder to a
 * hash index over (ts, line, metadata) kept until reset, so no pattern of
 * appends is quadratic.
 *
 * Plain C, no Python calls: usable without the GIL.
 */
#ifndef CS_BUILDER_H
#define CS_BUILDER_H

#ifndef CS_UNUSED
#define CS_UNUSED __attribute__((unused))
#endif
#include <Python.h> /* Py_ssize_t */
#include <stdlib.h>
#include "cs_hash.h"
#include "cs_raw.h"

#define CS_DUP_SCAN 16
#define CS_BB_MAX_BYTES ((size_t)0xFFFFFFFFu)  /* uint32 offsets */
#define CS_BB_MAX_ENTRIES ((size_t)0x7FFFFFFEu)

enum { CS_BB_OK = 0, CS_BB_NOMEM = -1, CS_BB_TOOBIG = -2 };

typedef struct {
    size_t n, cap;
    int64_t *ts;
    uint32_t *off;    /* cap + 1 */
    uint32_t *moff;   /* cap + 1 */
    uint8_t *text;
    size_t text_cap;
    uint8_t *meta;
    size_t meta_cap;
    int64_t min_ts, max_ts;
    int ordered;
    /* duplicate index, see above */
    int hashed;
    uint64_t *hash;   /* cap entries once allocated */
    size_t hash_cap;
    uint32_t *table;  /* open addressing: entry index + 1, 0 = empty */
    size_t table_cap;
} cs_bb;

CS_UNUSED static void cs_bb_init(cs_bb *bb)
{
    memset(bb, 0, sizeof *bb);
    bb->ordered = 1;
}

CS_UNUSED static void cs_bb_free(cs_bb *bb)
{
    free(bb->ts);
    free(bb->off);
    free(bb->moff);
    free(bb->text);
    free(bb->meta);
    free(bb->hash);
    free(bb->table);
    cs_bb_init(bb);
}

CS_UNUSED static void cs_bb_reset(cs_bb *bb)
{
    bb->n = 0;
    if (bb->off)
        bb->off[0] = 0;
    if (bb->moff)
        bb->moff[0] = 0;
    bb->ordered = 1;
    bb->hashed = 0;
    bb->min_ts = bb->max_ts = 0;
}

static inline size_t cs_bb_text_len(const cs_bb *bb) { return bb->off ? bb->off[bb->n] : 0; }
static inline size_t cs_bb_meta_len(const cs_bb *bb) { return bb->moff ? bb->moff[bb->n] : 0; }

CS_UNUSED static size_t cs_bb_memory(const cs_bb *bb)
{
    size_t entry_bytes = bb->cap ? bb->cap * 8 + 2 * (bb->cap + 1) * 4 : 0;
    return entry_bytes + bb->text_cap + bb->meta_cap + bb->hash_cap * 8 + bb->table_cap * 4;
}

static inline uint64_t cs_bb_hash_of(int64_t ts, const uint8_t *line, size_t len,
                                     const uint8_t *meta, size_t mlen)
{
    uint64_t h = cs_xxh64(line, len, (uint64_t)ts);
    if (mlen)
        h = cs_xxh64(meta, mlen, h);
    return h;
}

static inline void cs_bb_table_insert(cs_bb *bb, size_t idx)
{
    size_t mask = bb->table_cap - 1, slot = (size_t)bb->hash[idx] & mask;
    while (bb->table[slot])
        slot = (slot + 1) & mask;
    bb->table[slot] = (uint32_t)(idx + 1);
}

/* (Re)build the hash table for at least `entries` entries, load <= 1/2. */
CS_UNUSED static int cs_bb_table_rebuild(cs_bb *bb, size_t entries)
{
    size_t cap = 1024;
    while (cap < 2 * entries)
        cap <<= 1;
    if (cap != bb->table_cap) {
        uint32_t *t = (uint32_t *)realloc(bb->table, cap * sizeof(uint32_t));
        if (!t)
            return CS_BB_NOMEM;
        bb->table = t;
        bb->table_cap = cap;
    }
    memset(bb->table, 0, cap * sizeof(uint32_t));
    for (size_t i = 0; i < bb->n; i++)
        cs_bb_table_insert(bb, i);
    return CS_BB_OK;
}

CS_UNUSED static int cs_bb_grow_hash(cs_bb *bb, size_t cap)
{
    if (bb->hash_cap >= cap)
        return CS_BB_OK;
    uint64_t *h = (uint64_t *)realloc(bb->hash, cap * sizeof(uint64_t));
    if (!h)
        return CS_BB_NOMEM;
    bb->hash = h;
    bb->hash_cap = cap;
    return CS_BB_OK;
}

CS_UNUSED static int cs_bb_start_hashing(cs_bb *bb)
{
    int rc = cs_bb_grow_hash(bb, bb->cap);
    if (rc)
        return rc;
    for (size_t i = 0; i < bb->n; i++)
        bb->hash[i] = cs_bb_hash_of(bb->ts[i], bb->text + bb->off[i], bb->off[i + 1] - bb->off[i],
                                    bb->meta + bb->moff[i], bb->moff[i + 1] - bb->moff[i]);
    rc = cs_bb_table_rebuild(bb, bb->cap);
    if (rc)
        return rc;
    bb->hashed = 1;
    return CS_BB_OK;
}

/* Buffers start small: a store may hold 100,000 streams that each see a few
 * lines; doubling reaches a 256 KiB block in ten steps. */
#define CS_BB_FIRST_TEXT 256
#define CS_BB_FIRST_META 16
#define CS_BB_FIRST_ENTRIES 8

CS_UNUSED static int cs_bb_grow_bytes(uint8_t **buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap && *buf)
        return CS_BB_OK;
    if (need > CS_BB_MAX_BYTES)
        return CS_BB_TOOBIG;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c = c > CS_BB_MAX_BYTES / 2 ? CS_BB_MAX_BYTES : c * 2;
    uint8_t *p = (uint8_t *)realloc(*buf, c);
    if (!p)
        return CS_BB_NOMEM;
    *buf = p;
    *cap = c;
    return CS_BB_OK;
}

CS_UNUSED static int cs_bb_grow_entries(cs_bb *bb, size_t need)
{
    if (need > CS_BB_MAX_ENTRIES)
        return CS_BB_TOOBIG;
    size_t c = bb->cap ? bb->cap : CS_BB_FIRST_ENTRIES;
    while (c < need)
        c *= 2;
    if (c > CS_BB_MAX_ENTRIES)
        c = CS_BB_MAX_ENTRIES;
    int64_t *ts = (int64_t *)realloc(bb->ts, c * sizeof(int64_t));
    if (!ts)
        return CS_BB_NOMEM;
    bb->ts = ts;
    uint32_t *off = (uint32_t *)realloc(bb->off, (c + 1) * sizeof(uint32_t));
    if (!off)
        return CS_BB_NOMEM;
    if (!bb->off)
        off[0] = 0;
    bb->off = off;
    uint32_t *moff = (uint32_t *)realloc(bb->moff, (c + 1) * sizeof(uint32_t));
    if (!moff)
        return CS_BB_NOMEM;
    if (!bb->moff)
        moff[0] = 0;
    bb->moff = moff;
    bb->cap = c;
    if (bb->hashed) {
        int rc = cs_bb_grow_hash(bb, c);
        if (rc)
            return rc;
        if (bb->table_cap < 2 * c)
            return cs_bb_table_rebuild(bb, c);
    }
    return CS_BB_OK;
}

/* Make room for `k` more entries with `text` and `meta` more bytes. */
static inline int cs_bb_reserve(cs_bb *bb, size_t k, size_t text, size_t meta)
{
    int rc;
    if (bb->n + k > bb->cap && (rc = cs_bb_grow_entries(bb, bb->n + k)))
        return rc;
    size_t tl = cs_bb_text_len(bb), ml = cs_bb_meta_len(bb);
    if (text > CS_BB_MAX_BYTES - tl || meta > CS_BB_MAX_BYTES - ml)
        return CS_BB_TOOBIG;
    /* the buffers always exist once anything is reserved: no NULL + 0 */
    if ((tl + text > bb->text_cap || !bb->text)
        && (rc = cs_bb_grow_bytes(&bb->text, &bb->text_cap, tl + text, CS_BB_FIRST_TEXT)))
        return rc;
    if ((ml + meta > bb->meta_cap || !bb->meta)
        && (rc = cs_bb_grow_bytes(&bb->meta, &bb->meta_cap, ml + meta, CS_BB_FIRST_META)))
        return rc;
    return CS_BB_OK;
}

static inline int cs_bb_equal(const cs_bb *bb, size_t i, int64_t ts, const uint8_t *line,
                              size_t len, const uint8_t *meta, size_t mlen)
{
    return bb->ts[i] == ts && bb->off[i + 1] - bb->off[i] == len
           && bb->moff[i + 1] - bb->moff[i] == mlen
           && memcmp(bb->text + bb->off[i], line, len) == 0
           && (mlen == 0 || memcmp(bb->meta + bb->moff[i], meta, mlen) == 0);
}

/* 1 when an exact duplicate is held, 0 when not, < 0 on allocation failure.
 * Sets *h to the entry's hash when the builder is (or becomes) hashed; pass
 * it to cs_bb_push.  Needs cs_bb_reserve(bb, 1, ...) first. */
CS_UNUSED static int cs_bb_is_dup(cs_bb *bb, int64_t ts, const uint8_t *line, size_t len,
                        const uint8_t *meta, size_t mlen, uint64_t *h)
{
    size_t n = bb->n;
    *h = 0;
    if (!bb->hashed) {
        if (n == 0 || ts > bb->ts[n - 1])
            return 0;  /* while ordered, nothing held has this ts */
        if (bb->ordered && ts == bb->ts[n - 1]) {
            size_t i = n, steps = 0;
            while (i > 0 && bb->ts[i - 1] == ts && steps < CS_DUP_SCAN) {
                if (cs_bb_equal(bb, i - 1, ts, line, len, meta, mlen))
                    return 1;
                i--;
                steps++;
            }
            if (i == 0 || bb->ts[i - 1] != ts)
                return 0;
        }
        /* out of order, or a long run of equal timestamps: index everything */
        int rc = cs_bb_start_hashing(bb);
        if (rc)
            return rc;
    }
    uint64_t hv = cs_bb_hash_of(ts, line, len, meta, mlen);
    *h = hv;
    size_t mask = bb->table_cap - 1, slot = (size_t)hv & mask;
    uint32_t idx;
    while ((idx = bb->table[slot]) != 0) {
        if (bb->hash[idx - 1] == hv && cs_bb_equal(bb, idx - 1, ts, line, len, meta, mlen))
            return 1;
        slot = (slot + 1) & mask;
    }
    return 0;
}

/* Append one entry; needs cs_bb_reserve(bb, 1, len, mlen) first. */
static inline void cs_bb_push(cs_bb *bb, int64_t ts, const uint8_t *line, size_t len,
                              const uint8_t *meta, size_t mlen, uint64_t h)
{
    size_t n = bb->n;
    if (n) {
        if (ts < bb->ts[n - 1])
            bb->ordered = 0;
        if (ts < bb->min_ts)
            bb->min_ts = ts;
        if (ts > bb->max_ts)
            bb->max_ts = ts;
    } else {
        bb->min_ts = bb->max_ts = ts;
    }
    bb->ts[n] = ts;
    uint32_t o = bb->off[n];
    if (len)
        memcpy(bb->text + o, line, len);
    bb->off[n + 1] = o + (uint32_t)len;
    uint32_t mo = bb->moff[n];
    if (mlen)
        memcpy(bb->meta + mo, meta, mlen);
    bb->moff[n + 1] = mo + (uint32_t)mlen;
    bb->n = n + 1;
    if (bb->hashed) {
        if (!h)
            h = cs_bb_hash_of(ts, line, len, meta, mlen);
        bb->hash[n] = h;
        cs_bb_table_insert(bb, n);
    }
}

/* ---- stable sort by timestamp ----------------------------------------- */

CS_UNUSED static void cs_msort(const int64_t *ts, uint32_t *a, uint32_t *tmp, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t v = a[i];
            int64_t t = ts[v];
            size_t j = i;
            while (j > 0 && ts[a[j - 1]] > t) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = v;
        }
        return;
    }
    size_t h = n / 2;
    cs_msort(ts, a, tmp, h);
    cs_msort(ts, a + h, tmp, n - h);
    if (ts[a[h - 1]] <= ts[a[h]])
        return;  /* already in order: nearly sorted input costs O(n) */
    memcpy(tmp, a, h * sizeof(uint32_t));
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (ts[a[j]] < ts[tmp[i]])
            a[k++] = a[j++];
        else
            a[k++] = tmp[i++];  /* ties take the left (earlier) entry: stable */
    }
    while (i < h)
        a[k++] = tmp[i++];
}

/* perm[0..n) = entry indices sorted by ts, stable.  tmp has n/2 + 1 slots. */
CS_UNUSED static void cs_bb_sort(const cs_bb *bb, uint32_t *perm, uint32_t *tmp)
{
    for (size_t i = 0; i < bb->n; i++)
        perm[i] = (uint32_t)i;
    if (!bb->ordered)
        cs_msort(bb->ts, perm, tmp, bb->n);
}

/* ---- raw block encoding from the builder ------------------------------- */

#define CS_IDX(j) (perm ? (size_t)perm[j] : first + (j))

/* Size of the raw block of entries idx(0..cnt), idx(j) = perm ? perm[j] :
 * first + j; also returns the text and metadata section lengths. */
CS_UNUSED static size_t cs_bb_encoded_size(const cs_bb *bb, const uint32_t *perm, size_t first, size_t cnt,
                                 uint64_t *text_len, uint64_t *meta_len)
{
    size_t cols = 0;
    uint64_t tl = 0, ml = 0, prev = 0;
    int any_meta = 0;
    for (size_t j = 0; j < cnt; j++) {
        size_t i = CS_IDX(j);
        uint64_t t = (uint64_t)bb->ts[i];
        uint64_t len = bb->off[i + 1] - bb->off[i];
        uint64_t mlen = bb->moff[i + 1] - bb->moff[i];
        cols += cs_uvarint_size(cs_zigzag(t - prev)) + cs_uvarint_size(len);
        prev = t;
        tl += len;
        ml += mlen ? mlen : 1;
        any_meta |= mlen != 0;
    }
    if (!any_meta)
        ml = 0;
    *text_len = tl;
    *meta_len = ml;
    return cs_uvarint_size(cnt) + cs_uvarint_size(tl) + cs_uvarint_size(ml) + cols + ml + tl;
}

CS_UNUSED static void cs_bb_encode(const cs_bb *bb, const uint32_t *perm, size_t first, size_t cnt,
                         uint64_t text_len, uint64_t meta_len, uint8_t *out)
{
    uint8_t *p = out;
    uint64_t prev = 0;
    p += cs_put_uvarint(p, cnt);
    p += cs_put_uvarint(p, text_len);
    p += cs_put_uvarint(p, meta_len);
    for (size_t j = 0; j < cnt; j++) {
        uint64_t t = (uint64_t)bb->ts[CS_IDX(j)];
        p += cs_put_uvarint(p, cs_zigzag(t - prev));
        prev = t;
    }
    for (size_t j = 0; j < cnt; j++) {
        size_t i = CS_IDX(j);
        p += cs_put_uvarint(p, bb->off[i + 1] - bb->off[i]);
    }
    if (meta_len) {
        for (size_t j = 0; j < cnt; j++) {
            size_t i = CS_IDX(j);
            size_t mlen = bb->moff[i + 1] - bb->moff[i];
            if (mlen) {
                memcpy(p, bb->meta + bb->moff[i], mlen);
                p += mlen;
            } else {
                *p++ = 0;
            }
        }
    }
    if (perm) {
        for (size_t j = 0; j < cnt; j++) {
            size_t i = perm[j];
            size_t len = bb->off[i + 1] - bb->off[i];
            if (len)
                memcpy(p, bb->text + bb->off[i], len);
            p += len;
        }
    } else if (text_len) {
        /* a contiguous range: its text is contiguous too */
        memcpy(p, bb->text + bb->off[first], text_len);
    }
}

#undef CS_IDX

/* ---- structured metadata from name/value pairs ------------------------ */

/* One (name, value) pair of UTF-8 bytes owned by the caller. */
typedef struct {
    const char *name;
    Py_ssize_t nlen;
    const char *value;
    Py_ssize_t vlen;
} cs_mpair;

static inline int cs_mpair_less(const cs_mpair *a, const cs_mpair *b)
{
    Py_ssize_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int c = memcmp(a->name, b->name, (size_t)n);
    return c < 0 || (c == 0 && a->nlen < b->nlen);
}

/* Sort pairs by name bytes (insertion sort: names are distinct, sets small)
 * and return the size of their section 2 encoding. */
CS_UNUSED static size_t cs_mpairs_sort(cs_mpair *p, size_t n)
{
    for (size_t j = 1; j < n; j++) {
        cs_mpair tmp = p[j];
        size_t m = j;
        while (m > 0 && cs_mpair_less(&tmp, &p[m - 1])) {
            p[m] = p[m - 1];
            m--;
        }
        p[m] = tmp;
    }
    size_t size = cs_uvarint_size(n);
    for (size_t j = 0; j < n; j++)
        size += cs_uvarint_size((uint64_t)p[j].nlen) + (size_t)p[j].nlen
                + cs_uvarint_size((uint64_t)p[j].vlen) + (size_t)p[j].vlen;
    return size;
}

/* Write the encoding sized by cs_mpairs_sort; returns the bytes written. */
CS_UNUSED static size_t cs_mpairs_encode(const cs_mpair *p, size_t n, uint8_t *out)
{
    size_t w = cs_put_uvarint(out, n);
    for (size_t j = 0; j < n; j++) {
        w += cs_put_uvarint(out + w, (uint64_t)p[j].nlen);
        memcpy(out + w, p[j].name, (size_t)p[j].nlen);
        w += (size_t)p[j].nlen;
        w += cs_put_uvarint(out + w, (uint64_t)p[j].vlen);
        memcpy(out + w, p[j].value, (size_t)p[j].vlen);
        w += (size_t)p[j].vlen;
    }
    return w;
}

#endif /* CS_BUILDER_H */
