/* The line scanner's search kernels: find needles in the text section of a
 * whole block and map the hits back to entries.
 *
 * Searching line by line, even in C, runs near 3 GB/s (a call per line); a
 * search over the whole text runs at memory speed.  So a needle is searched
 * over runs of consecutive candidate entries at once; a hit is mapped to its
 * entry by binary search over the line offsets, a hit that straddles two
 * entries is discarded, and after a real hit the search skips to the next
 * entry (one hit per entry is enough).
 *
 * Candidate positions come from a two-byte prefilter: the needle's two rarest
 * bytes (by their frequency in log text) are compared at their offsets for
 * 32 positions at a time (AVX2, picked at run time) or 16 (SSE2), and only
 * positions where both agree are verified.  Case-insensitive search is ASCII
 * folding: the needle is stored lower-cased, a letter is compared as
 * (byte | 0x20), which is exact for letters, and every other byte, including
 * non-ASCII ones, compares exactly.
 *
 * Plain C, no Python calls: callable without the GIL.
 */
#ifndef CS_SEARCH_H
#define CS_SEARCH_H

#ifndef CS_UNUSED
#define CS_UNUSED __attribute__((unused))
#endif
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define CS_SEARCH_X86 1
#include <immintrin.h>
#else
#define CS_SEARCH_X86 0
#endif

#define CS_NOTFOUND ((size_t)-1)

/* Byte frequency ranks in log text (0 rarest .. 255 most common), measured
 * on the loghub 2k samples; only the order matters. */
static const uint8_t cs_byte_rank[256] = {
      0,   1,   2,   3,   4,   5,   6,   7,   8,   9, 223,  10,  11, 220,  12,  13,
     14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,
    255, 165, 180, 189, 179, 162, 161, 172, 195, 194, 187, 164, 209, 237, 243, 218,
    254, 252, 248, 238, 236, 239, 235, 234, 232, 233, 245, 174, 173, 208, 170, 163,
    186, 205, 197, 210, 199, 204, 206, 182, 185, 211, 193, 188, 198, 201, 219, 200,
    196, 175, 213, 221, 203, 191, 183, 192, 171, 167, 176, 215, 166, 214,  30, 216,
     31, 251, 227, 242, 240, 253, 224, 225, 226, 244, 178, 222, 231, 229, 246, 250,
    228, 184, 247, 241, 249, 230, 217, 202, 207, 212, 181, 168, 190, 169, 177,  32,
     33,  34,  35,  36,  37,  38,  39,  40,  41,  42,  43,  44,  45,  46,  47,  48,
     49,  50,  51,  52,  53,  54,  55,  56,  57,  58,  59,  60,  61,  62,  63,  64,
     65,  66,  67,  68,  69,  70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,
     81,  82,  83,  84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,  95,  96,
     97,  98,  99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
    113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
    129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
    145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160,
};

static inline int cs_is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static inline int cs_is_lower(uint8_t c) { return c >= 'a' && c <= 'z'; }
static inline uint8_t cs_fold(uint8_t c) { return cs_is_upper(c) ? (uint8_t)(c | 0x20) : c; }

typedef struct {
    const uint8_t *s;  /* needle bytes; lower-cased when ci */
    size_t m;
    int ci;
    size_t i1, i2;     /* offsets of the two prefilter bytes */
    uint8_t b1, b2;    /* their (folded) values */
    uint8_t o1, o2;    /* 0x20 when the byte is a letter compared case-insensitively */
    int rarity;        /* rank of the rarer prefilter byte: lower is more selective */
} cs_needle;

static inline int cs_rank_of(uint8_t c, int ci)
{
    if (ci && cs_is_lower(c)) {
        int a = cs_byte_rank[c], b = cs_byte_rank[c & 0xDF];
        return a > b ? a : b;
    }
    return cs_byte_rank[c];
}

/* s must already be lower-cased when ci (the caller keeps it alive). */
CS_UNUSED static void cs_needle_init(cs_needle *nd, const uint8_t *s, size_t m, int ci)
{
    nd->s = s;
    nd->m = m;
    nd->ci = ci;
    nd->i1 = nd->i2 = 0;
    nd->rarity = 0;
    if (m == 0)
        return;
    size_t best = 0, second = m > 1 ? 1 : 0;
    for (size_t i = 0; i < m; i++) {
        if (cs_rank_of(s[i], ci) < cs_rank_of(s[best], ci))
            best = i;
    }
    if (m > 1) {
        second = best == 0 ? 1 : 0;
        for (size_t i = 0; i < m; i++) {
            if (i != best && cs_rank_of(s[i], ci) < cs_rank_of(s[second], ci))
                second = i;
        }
    }
    nd->i1 = best;
    nd->i2 = second;
    nd->b1 = s[best];
    nd->b2 = s[second];
    nd->o1 = (ci && cs_is_lower(nd->b1)) ? 0x20 : 0;
    nd->o2 = (ci && cs_is_lower(nd->b2)) ? 0x20 : 0;
    nd->rarity = cs_rank_of(nd->b1, ci);
}

static inline int cs_verify(const cs_needle *nd, const uint8_t *h)
{
    if (!nd->ci)
        return memcmp(h, nd->s, nd->m) == 0;
    const uint8_t *s = nd->s;
    for (size_t i = 0; i < nd->m; i++)
        if (cs_fold(h[i]) != s[i])
            return 0;
    return 1;
}

static inline int cs_pre(const cs_needle *nd, const uint8_t *h, size_t k)
{
    return (uint8_t)(h[k + nd->i1] | nd->o1) == nd->b1
           && (uint8_t)(h[k + nd->i2] | nd->o2) == nd->b2;
}

/* First k in [start, end - m] with the needle at h + k, or CS_NOTFOUND.
 * Requires 1 <= m. */
CS_UNUSED static size_t cs_find_scalar(const cs_needle *nd, const uint8_t *h, size_t start, size_t end)
{
    if (end < start + nd->m)
        return CS_NOTFOUND;
    size_t last = end - nd->m;
    if (!nd->o1) {
        /* memchr on the rarest byte, then verify */
        size_t k = start;
        while (k <= last) {
            const uint8_t *q = memchr(h + k + nd->i1, nd->b1, last - k + 1);
            if (!q)
                return CS_NOTFOUND;
            k = (size_t)(q - h) - nd->i1;
            if (cs_pre(nd, h, k) && cs_verify(nd, h + k))
                return k;
            k++;
        }
        return CS_NOTFOUND;
    }
    for (size_t k = start; k <= last; k++)
        if (cs_pre(nd, h, k) && cs_verify(nd, h + k))
            return k;
    return CS_NOTFOUND;
}

#if CS_SEARCH_X86
/* The vector loops come in two flavours, exact and folded, so the exact one
 * does not pay for the OR with the fold mask. */
static inline __attribute__((always_inline))
size_t cs_find_sse2_impl(const cs_needle *nd, const uint8_t *h, size_t start, size_t end,
                         const int fold)
{
    size_t m = nd->m;
    if (end < start + m)
        return CS_NOTFOUND;
    size_t last = end - m, k = start;
    const __m128i v1 = _mm_set1_epi8((char)nd->b1), v2 = _mm_set1_epi8((char)nd->b2);
    const __m128i o1 = _mm_set1_epi8((char)nd->o1), o2 = _mm_set1_epi8((char)nd->o2);
    const uint8_t *p1 = h + nd->i1, *p2 = h + nd->i2;
    while (k + 16 <= last + 1) {
        __m128i a = _mm_loadu_si128((const __m128i *)(p1 + k));
        __m128i b = _mm_loadu_si128((const __m128i *)(p2 + k));
        if (fold) {
            a = _mm_or_si128(a, o1);
            b = _mm_or_si128(b, o2);
        }
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(a, v1), _mm_cmpeq_epi8(b, v2)));
        while (mask) {
            size_t c = k + (size_t)__builtin_ctz(mask);
            if (cs_verify(nd, h + c))
                return c;
            mask &= mask - 1;
        }
        k += 16;
    }
    for (; k <= last; k++)
        if (cs_pre(nd, h, k) && cs_verify(nd, h + k))
            return k;
    return CS_NOTFOUND;
}

CS_UNUSED static size_t cs_find_sse2(const cs_needle *nd, const uint8_t *h, size_t start,
                                     size_t end)
{
    if (nd->o1 | nd->o2)
        return cs_find_sse2_impl(nd, h, start, end, 1);
    return cs_find_sse2_impl(nd, h, start, end, 0);
}

static inline __attribute__((always_inline, target("avx2")))
size_t cs_find_avx2_impl(const cs_needle *nd, const uint8_t *h, size_t start, size_t end,
                         const int fold)
{
    size_t m = nd->m;
    if (end < start + m)
        return CS_NOTFOUND;
    size_t last = end - m, k = start;
    const __m256i v1 = _mm256_set1_epi8((char)nd->b1), v2 = _mm256_set1_epi8((char)nd->b2);
    const __m256i o1 = _mm256_set1_epi8((char)nd->o1), o2 = _mm256_set1_epi8((char)nd->o2);
    const uint8_t *p1 = h + nd->i1, *p2 = h + nd->i2;
    /* 64 positions per step while there is room, then 32, then scalar */
    while (k + 64 <= last + 1) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(p1 + k));
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(p2 + k));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(p1 + k + 32));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(p2 + k + 32));
        if (fold) {
            a0 = _mm256_or_si256(a0, o1);
            b0 = _mm256_or_si256(b0, o2);
            a1 = _mm256_or_si256(a1, o1);
            b1 = _mm256_or_si256(b1, o2);
        }
        __m256i e0 = _mm256_and_si256(_mm256_cmpeq_epi8(a0, v1), _mm256_cmpeq_epi8(b0, v2));
        __m256i e1 = _mm256_and_si256(_mm256_cmpeq_epi8(a1, v1), _mm256_cmpeq_epi8(b1, v2));
        __m256i any = _mm256_or_si256(e0, e1);
        if (!_mm256_testz_si256(any, any)) {
            uint64_t mask = (uint64_t)(uint32_t)_mm256_movemask_epi8(e0)
                            | ((uint64_t)(uint32_t)_mm256_movemask_epi8(e1) << 32);
            while (mask) {
                size_t c = k + (size_t)__builtin_ctzll(mask);
                if (cs_verify(nd, h + c))
                    return c;
                mask &= mask - 1;
            }
        }
        k += 64;
    }
    while (k + 32 <= last + 1) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p1 + k));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p2 + k));
        if (fold) {
            a = _mm256_or_si256(a, o1);
            b = _mm256_or_si256(b, o2);
        }
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(
            _mm256_and_si256(_mm256_cmpeq_epi8(a, v1), _mm256_cmpeq_epi8(b, v2)));
        while (mask) {
            size_t c = k + (size_t)__builtin_ctz(mask);
            if (cs_verify(nd, h + c))
                return c;
            mask &= mask - 1;
        }
        k += 32;
    }
    for (; k <= last; k++)
        if (cs_pre(nd, h, k) && cs_verify(nd, h + k))
            return k;
    return CS_NOTFOUND;
}

__attribute__((target("avx2")))
CS_UNUSED static size_t cs_find_avx2(const cs_needle *nd, const uint8_t *h, size_t start,
                                     size_t end)
{
    if (nd->o1 | nd->o2)
        return cs_find_avx2_impl(nd, h, start, end, 1);
    return cs_find_avx2_impl(nd, h, start, end, 0);
}
#endif

typedef size_t (*cs_find_fn)(const cs_needle *, const uint8_t *, size_t, size_t);
CS_UNUSED static cs_find_fn cs_find_impl = cs_find_scalar;
CS_UNUSED static int cs_search_level = 0; /* 0 scalar, 1 sse2, 2 avx2 */

CS_UNUSED static void cs_search_init(int max_level)
{
    cs_find_impl = cs_find_scalar;
    cs_search_level = 0;
#if CS_SEARCH_X86
    __builtin_cpu_init();
    if (max_level >= 1) {
        cs_find_impl = cs_find_sse2;
        cs_search_level = 1;
    }
    if (max_level >= 2 && __builtin_cpu_supports("avx2")) {
        cs_find_impl = cs_find_avx2;
        cs_search_level = 2;
    }
#else
    (void)max_level;
#endif
}

static inline size_t cs_find(const cs_needle *nd, const uint8_t *h, size_t start, size_t end)
{
    if (nd->m == 1 && !nd->o1) {
        /* a single exact byte: glibc memchr is already vectorized */
        if (end <= start)
            return CS_NOTFOUND;
        const uint8_t *q = memchr(h + start, nd->b1, end - start);
        return q ? (size_t)(q - h) : CS_NOTFOUND;
    }
    return cs_find_impl(nd, h, start, end);
}

/* Largest e in [lo, hi) with off[e] <= k, given off[lo] <= k < off[hi]. */
static inline size_t cs_entry_of(const uint64_t *off, size_t lo, size_t hi, uint64_t k)
{
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (off[mid] <= k)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* For every entry i in [a, b) with want[i] set and hit[i] clear whose line
 * contains the needle, set hit[i].  Lines are text[off[i]:off[i+1]]. */
CS_UNUSED static void cs_mark_needle(const cs_needle *nd, const uint8_t *text, const uint64_t *off,
                           size_t a, size_t b, const uint8_t *want, uint8_t *hit)
{
    size_t m = nd->m, i = a;
    while (i < b) {
        while (i < b && !(want[i] && !hit[i]))
            i++;
        if (i >= b)
            break;
        size_t j = i + 1;
        while (j < b && want[j] && !hit[j])
            j++;
        /* one region: the lines of entries [i, j), end to end */
        size_t e = i;
        uint64_t pos = off[i], rend = off[j];
        while (rend - pos >= m) {
            size_t k = cs_find(nd, text, pos, rend);
            if (k == CS_NOTFOUND)
                break;
            if (off[e + 1] <= k)
                e = cs_entry_of(off, e + 1, j, k);
            if (k + m <= off[e + 1]) {
                hit[e] = 1;
                e++;
                pos = off[e];
            } else {
                pos = k + 1; /* straddles an entry boundary */
            }
        }
        i = j;
    }
}

/* ---- compiled filters --------------------------------------------------- */

typedef struct {
    size_t first, count;  /* needles[first .. first+count) */
    int negate;
    int has_empty;        /* an empty needle: the clause finds every line */
} cs_clause;

typedef struct {
    const cs_needle *needles;
    const cs_clause *clauses;
    const size_t *order;  /* evaluation order of the clauses */
    size_t n_clauses;
} cs_filter;

/* Narrow alive[a..b) to the entries every clause keeps.  hit is scratch of
 * the same size.  Returns the number of entries left alive. */
CS_UNUSED static size_t cs_filter_apply(const cs_filter *f, const uint8_t *text, const uint64_t *off,
                              size_t a, size_t b, uint8_t *alive, uint8_t *hit)
{
    for (size_t ci = 0; ci < f->n_clauses && a < b; ci++) {
        const cs_clause *c = &f->clauses[f->order[ci]];
        if (c->has_empty) {
            if (c->negate) {
                memset(alive + a, 0, b - a);
                b = a;
            }
            continue;
        }
        memset(hit + a, 0, b - a);
        for (size_t k = 0; k < c->count; k++)
            cs_mark_needle(&f->needles[c->first + k], text, off, a, b, alive, hit);
        if (c->negate) {
            for (size_t i = a; i < b; i++)
                alive[i] &= (uint8_t)!hit[i];
        } else {
            for (size_t i = a; i < b; i++)
                alive[i] &= hit[i];
        }
        while (a < b && !alive[a])
            a++;
        while (b > a && !alive[b - 1])
            b--;
    }
    size_t left = 0;
    for (size_t i = a; i < b; i++)
        left += alive[i];
    return left;
}

#endif /* CS_SEARCH_H */
