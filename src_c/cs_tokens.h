/* Per-block token filters (docs/FORMAT.md section 4, "Token filters").
 *
 * A block's filter is a Bloom filter of the keys of its lines:
 *
 *   - a token is a maximal run of word bytes ([0-9A-Za-z_] and every byte
 *     >= 0x80) inside one line, ASCII-lowercased;
 *   - the keys of a token are the token itself when it is at most
 *     `prefix_len` (1..8; the store uses 8) bytes long, else its first and
 *     its last `prefix_len` bytes;
 *   - a key's hash is cs_tf_hash below; its k bit positions are
 *     ((x_i * m) >> 32) for i in 0..k-1, x_i = (h1 + i * h2) mod 2^32,
 *     h1 = the low 32 bits of the hash, h2 = the high 32 bits OR 1, m the
 *     filter's size in bits (a multiply-shift instead of a division).
 *
 * Building is two passes over the text (lowercased a word at a time): every key hash goes into
 * an open-addressing set (so m is sized by the distinct keys), then the set
 * is written into the bit array.  The Python twin is
 * chunkstore/_tokens_py.py; change both together.
 *
 * Plain C, no Python calls: usable without the GIL.
 */
#ifndef CS_TOKENS_H
#define CS_TOKENS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cs_raw.h"

#ifndef CS_UNUSED
#if defined(__GNUC__)
#define CS_UNUSED __attribute__((unused))
#else
#define CS_UNUSED
#endif
#endif

#define CS_TF_MAX_K 16

static const uint8_t cs_tf_word[256] = {
    /* 0x00 - 0x2f: none */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    /* 0x30 - 0x3f: digits */
    1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,0,
    /* 0x40 - 0x5f: @, A-Z, [\]^, _ */
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,1,
    /* 0x60 - 0x7f: `, a-z, {|}~ DEL */
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
    /* 0x80 - 0xff: every non-ASCII byte */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
};

/* The token hash of a key (FORMAT.md section 4): cheap for short keys, with
 * the murmur3 finalizer for mixing.  Reads up to 7 bytes past the key: the
 * caller's buffer has 8 bytes of padding. */
CS_UNUSED static inline uint64_t cs_tf_rd64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* The murmur3 64-bit finalizer, the last step of every key hash. */
static inline uint64_t cs_tf_fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

CS_UNUSED static inline uint64_t cs_tf_hash(const uint8_t *p, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ULL;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        h = (h ^ cs_tf_rd64(p + i)) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    if (i < len) {
        uint64_t w = cs_tf_rd64(p + i) & (~0ULL >> (8 * (8 - (len - i))));
        h = (h ^ w) * 0x94D049BB133111EBULL;
    }
    return cs_tf_fmix(h);
}

/* A growable open-addressing set of 64-bit hashes (0 is kept aside).  The
 * hashes are already mixed: the slot is taken from their top bits. */
typedef struct {
    uint64_t *slots;
    size_t cap;      /* power of two */
    unsigned shift;  /* 64 - log2(cap) */
    size_t count;    /* distinct non-zero values */
    int have_zero;
    uint64_t *dense; /* the distinct values in insertion order (cap / 2 room) */
} cs_hset;

CS_UNUSED static int cs_hset_init(cs_hset *s, size_t cap_hint)
{
    size_t cap = 1024;
    unsigned bits = 10;
    while (cap < cap_hint * 2) { cap <<= 1; bits++; }
    s->slots = (uint64_t *)calloc(cap, sizeof(uint64_t));
    s->dense = (uint64_t *)malloc(cap / 2 * sizeof(uint64_t));
    s->cap = cap;
    s->shift = 64 - bits;
    s->count = 0;
    s->have_zero = 0;
    if (s->slots && s->dense)
        return 0;
    free(s->slots);
    free(s->dense);
    s->slots = s->dense = NULL;
    return -1;
}

CS_UNUSED static void cs_hset_free(cs_hset *s)
{
    free(s->slots);
    free(s->dense);
    s->slots = NULL;
    s->dense = NULL;
}

CS_UNUSED static int cs_hset_grow(cs_hset *s)
{
    size_t ncap = s->cap * 2, mask = ncap - 1, i;
    unsigned nshift = s->shift - 1;
    uint64_t *ns = (uint64_t *)calloc(ncap, sizeof(uint64_t));
    uint64_t *nd = (uint64_t *)realloc(s->dense, ncap / 2 * sizeof(uint64_t));
    if (nd) s->dense = nd;
    if (!ns || !nd) { free(ns); return -1; }
    for (i = 0; i < s->cap; i++) {
        uint64_t v = s->slots[i];
        if (v) {
            size_t j = (size_t)(v >> nshift);
            while (ns[j]) j = (j + 1) & mask;
            ns[j] = v;
        }
    }
    free(s->slots);
    s->slots = ns;
    s->cap = ncap;
    s->shift = nshift;
    return 0;
}

CS_UNUSED static inline int cs_hset_add(cs_hset *s, uint64_t h)
{
    size_t mask, j;
    if (h == 0) { s->have_zero = 1; return 0; }
    mask = s->cap - 1;
    j = (size_t)(h >> s->shift);
    while (s->slots[j]) {
        if (s->slots[j] == h) return 0;
        j = (j + 1) & mask;
    }
    s->slots[j] = h;
    s->dense[s->count++] = h;  /* count < cap / 2 here */
    if (s->count * 2 >= s->cap) return cs_hset_grow(s);
    return 0;
}

/* Tokens repeat within a block ("INFO", "dfs", a host name): a token of at
 * most 8 bytes is its zero-padded word (word bytes are never 0), so a small
 * direct-mapped cache of recent words drops repeats before they are hashed. */
#define CS_TF_SEEN_BITS 12

/* Word-byte bits of 8 (16) lowercased bytes: bit j is set for a word byte. */
CS_UNUSED static inline uint64_t cs_tf_word_mask8(const uint8_t *p)
{
    return (uint64_t)cs_tf_word[p[0]] | (uint64_t)cs_tf_word[p[1]] << 1
         | (uint64_t)cs_tf_word[p[2]] << 2 | (uint64_t)cs_tf_word[p[3]] << 3
         | (uint64_t)cs_tf_word[p[4]] << 4 | (uint64_t)cs_tf_word[p[5]] << 5
         | (uint64_t)cs_tf_word[p[6]] << 6 | (uint64_t)cs_tf_word[p[7]] << 7;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* Word bytes: 0-9, A-Z, a-z, _ and >= 0x80 (OR-ing 0x20 folds A-Z onto a-z
 * and maps no other byte into a-z). */
CS_UNUSED static inline uint32_t cs_tf_word_mask16(const uint8_t *p)
{
    __m128i c = _mm_loadu_si128((const __m128i *)p);
    __m128i d = _mm_sub_epi8(c, _mm_set1_epi8('0'));
    __m128i a = _mm_sub_epi8(_mm_or_si128(c, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i isd = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
    __m128i isa = _mm_cmpeq_epi8(_mm_min_epu8(a, _mm_set1_epi8(25)), a);
    __m128i isu = _mm_cmpeq_epi8(c, _mm_set1_epi8('_'));
    __m128i w = _mm_or_si128(_mm_or_si128(isd, isa), _mm_or_si128(isu, c));
    return (uint32_t)_mm_movemask_epi8(w);
}
#endif

/* ASCII-lowercase the 8 bytes of a word at once (A-Z only). */
static inline uint64_t cs_tf_lower64(uint64_t w)
{
    uint64_t low7 = w & 0x7F7F7F7F7F7F7F7FULL;
    uint64_t ge_a = low7 + 0x3F3F3F3F3F3F3F3FULL;  /* bit 7 set when byte >= 'A' */
    uint64_t gt_z = low7 + 0x2525252525252525ULL;  /* bit 7 set when byte > 'Z' */
    uint64_t upper = (ge_a & ~gt_z) & ~w & 0x8080808080808080ULL;
    return w | (upper >> 2);
}

/* cs_tf_hash of a key of len <= 8 bytes given as its zero-extended word. */
static inline uint64_t cs_tf_hash_word(uint64_t w, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ULL;
    if (len == 8) {
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    } else {
        h = (h ^ w) * 0x94D049BB133111EBULL;
    }
    return cs_tf_fmix(h);
}

/* The lowercased word of the `len` (1..8) bytes at p; `avail` bytes are readable there. */
static inline uint64_t cs_tf_word_at(const uint8_t *p, size_t len, size_t avail)
{
    uint64_t w;
    if (avail >= 8) {
        w = cs_tf_rd64(p);
    } else {
        uint8_t tmp[8] = {0};
        memcpy(tmp, p, avail);
        w = cs_tf_rd64(tmp);
    }
    if (len < 8)
        w &= ~0ULL >> (8 * (8 - len));
    return cs_tf_lower64(w);
}

/* The keys of one token: every key is a single word (1 <= prefix_len <= 8),
 * lowercased as it is read, so the text itself is never copied. */
static inline int cs_tf_add_token_words(cs_hset *set, uint64_t *seen, const uint8_t *text,
                                        size_t s, size_t len, size_t text_len, size_t prefix_len)
{
    if (len <= prefix_len) {
        uint64_t w = cs_tf_word_at(text + s, len, text_len - s);
        size_t slot = (size_t)((w * 0x9E3779B97F4A7C15ULL) >> (64 - CS_TF_SEEN_BITS));
        if (seen[slot] == w) return 0;
        seen[slot] = w;
        return cs_hset_add(set, cs_tf_hash_word(w, len));
    }
    if (cs_hset_add(set, cs_tf_hash_word(cs_tf_word_at(text + s, prefix_len, text_len - s),
                                         prefix_len)))
        return -1;
    size_t t = s + len - prefix_len;
    return cs_hset_add(set, cs_tf_hash_word(cs_tf_word_at(text + t, prefix_len, text_len - t),
                                            prefix_len));
}

/* Add the keys of every token of `text` (text_len bytes, only those are
 * read; 1 <= prefix_len <= 8) to the set.  Line i is [off[i], off[i+1]),
 * off[n] == text_len.  `mask` has room for
 * text_len / 64 + 2 words: bit j is set when byte j is a word byte, so
 * tokens are found 64 bytes at a time.  Returns 0, or -1 when out of memory. */
CS_UNUSED static int cs_tf_collect(const uint8_t *text, size_t text_len, const uint64_t *off,
                                   uint64_t n, size_t prefix_len, uint64_t *mask,
                                   cs_hset *set)
{
    size_t nw = (text_len + 63) / 64, b, line = 0;
    uint64_t seen[1 << CS_TF_SEEN_BITS];
    memset(seen, 0, sizeof seen);  /* 0 is no token's word */
    for (b = 0; b < nw; b++) {
        const uint8_t *p = text + b * 64;
        uint64_t m = 0;
        size_t j, lim = text_len - b * 64 < 64 ? text_len - b * 64 : 64;
        if (lim == 64) {
#if defined(__SSE2__)
            for (j = 0; j < 64; j += 16)
                m |= (uint64_t)cs_tf_word_mask16(p + j) << j;
#else
            for (j = 0; j < 64; j += 8)
                m |= cs_tf_word_mask8(p + j) << j;
#endif
        } else {
            for (j = 0; j < lim; j++) m |= (uint64_t)cs_tf_word[p[j]] << j;
        }
        mask[b] = m;
    }
    mask[nw] = 0;
    for (b = 0; b < nw; b++) {
        uint64_t m = mask[b], carry = b ? mask[b - 1] >> 63 : 0;
        uint64_t starts = m & ~((m << 1) | carry);
        while (starts) {
            size_t s = b * 64 + (size_t)__builtin_ctzll(starts), bb, e;
            uint64_t inv;
            starts &= starts - 1;
            bb = s >> 6;
            inv = ~mask[bb] & (~0ULL << (s & 63));
            while (!inv) { bb++; inv = ~mask[bb]; }
            e = bb * 64 + (size_t)__builtin_ctzll(inv);
            if (e > text_len) e = text_len;
            /* a run of word bytes may cross line boundaries: split it there */
            while (line < n && off[line + 1] <= s) line++;
            while (line < n && off[line + 1] < e) {
                size_t cut = (size_t)off[line + 1];
                if (cut > s) {
                    if (cs_tf_add_token_words(set, seen, text, s, cut - s, text_len, prefix_len))
                        return -1;
                    s = cut;
                }
                line++;
            }
            if (e > s && cs_tf_add_token_words(set, seen, text, s, e - s, text_len, prefix_len))
                return -1;
        }
    }
    return 0;
}

/* Filter size in bytes (including the k byte) for `n` distinct keys. */
CS_UNUSED static size_t cs_tf_size(uint64_t n, uint64_t bits_per_key, uint64_t raw_len)
{
    uint64_t bytes = (n * bits_per_key + 7) / 8;
    uint64_t cap = raw_len / 4 + 8;
    if (bytes < 8) bytes = 8;
    if (bytes > cap) bytes = cap;
    return (size_t)bytes + 1;
}

/* k for m bits and n keys: round(m / n * ln 2) in integers, within 1..16. */
CS_UNUSED static uint8_t cs_tf_k(uint64_t m, uint64_t n)
{
    uint64_t k;
    if (n == 0) return 1;
    k = (m * 693 + n * 500) / (n * 1000);
    if (k < 1) k = 1;
    if (k > CS_TF_MAX_K) k = CS_TF_MAX_K;
    return (uint8_t)k;
}

CS_UNUSED static inline void cs_tf_set(uint8_t *bits, uint64_t m, uint8_t k, uint64_t h)
{
    uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1u, x = h1;
    uint8_t i;
    for (i = 0; i < k; i++, x += h2) {
        uint64_t j = ((uint64_t)x * m) >> 32;
        bits[j >> 3] |= (uint8_t)(1u << (j & 7));
    }
}

/* Write the filter of the set into out[0..size): out[0] = k, then the bits. */
CS_UNUSED static void cs_tf_write(const cs_hset *s, uint8_t *out, size_t size)
{
    uint64_t m = (uint64_t)(size - 1) * 8, n = s->count + (uint64_t)s->have_zero;
    uint8_t k = cs_tf_k(m, n);
    size_t i;
    memset(out, 0, size);
    out[0] = k;
    for (i = 0; i < s->count; i++)
        cs_tf_set(out + 1, m, k, s->dense[i]);
    if (s->have_zero) cs_tf_set(out + 1, m, k, 0);
}

/* The token filter of a whole raw block (FORMAT.md sections 2 and 4): parse
 * it, collect its keys, size and write the filter.  On success *out is a
 * malloc'd filter of *out_len bytes (the caller frees it) and 0 is returned;
 * -1: the block is malformed (*e says where); -2: out of memory.  One call
 * with no Python in it, so a caller can build filters for several blocks in
 * one GIL-free section. */
CS_UNUSED static int cs_tf_build(const uint8_t *base, size_t size, uint64_t bits_per_key,
                                 size_t prefix_len, uint8_t **out, size_t *out_len, cs_err *e)
{
    cs_raw r;
    cs_hset s;
    uint64_t *off = NULL, *mask = NULL;
    size_t flen;
    int rc;
    *out = NULL;
    *out_len = 0;
    if (cs_raw_header(base, size, &r, e))
        return -1;
    /* n <= size / 2 and text_len <= size were checked: bounded by the input.
     * The set starts sized for log text (about one distinct key per 48 bytes
     * of a 256 KiB block), so it rarely grows: 12% faster than starting small. */
    off = (uint64_t *)malloc((size_t)(r.n + 1) * sizeof(uint64_t));
    mask = (uint64_t *)malloc((size_t)(r.text_len / 64 + 2) * sizeof(uint64_t));
    if (!off || !mask || cs_hset_init(&s, (size_t)(r.text_len / 48))) {
        free(off);
        free(mask);
        return -2;
    }
    rc = cs_raw_columns(base, &r, NULL, off, e);
    if (rc == 0)
        rc = cs_raw_meta(base, &r, NULL, e);
    if (rc == 0 && cs_tf_collect(base + r.text_pos, (size_t)r.text_len, off, r.n, prefix_len,
                                 mask, &s))
        rc = -2;
    if (rc == 0) {
        flen = cs_tf_size(s.count + (uint64_t)s.have_zero, bits_per_key, (uint64_t)size);
        *out = (uint8_t *)malloc(flen);
        if (*out) {
            cs_tf_write(&s, *out, flen);
            *out_len = flen;
        } else {
            rc = -2;
        }
    }
    cs_hset_free(&s);
    free(off);
    free(mask);
    return rc;
}

/* 1 when every hash may be in the filter (size >= 2, 1 <= k <= 16). */
CS_UNUSED static int cs_tf_may_contain(const uint8_t *f, size_t size, const uint64_t *hs, size_t nh)
{
    uint64_t m = (uint64_t)(size - 1) * 8;
    uint8_t k = f[0], i;
    const uint8_t *bits = f + 1;
    size_t t;
    for (t = 0; t < nh; t++) {
        uint64_t h = hs[t];
        uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1u, x = h1;
        for (i = 0; i < k; i++, x += h2) {
            uint64_t j = ((uint64_t)x * m) >> 32;
            if (!(bits[j >> 3] & (1u << (j & 7)))) return 0;
        }
    }
    return 1;
}

#endif
