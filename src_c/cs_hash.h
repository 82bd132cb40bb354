/* CRC-32C and XXH64 for the chunkstore Cython core (see docs/FORMAT.md).
 *
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE4.2 crc32
 * instruction when the CPU has it (checked once at run time, so the module
 * still loads on CPUs without it), slicing-by-8 tables otherwise.  Three
 * independent crc32 streams hide the instruction's 3-cycle latency on long
 * inputs; their partial results are joined with a "shift by N zero bytes"
 * operator (a 32x32 GF(2) matrix applied by table look-up).
 *
 * XXH64 follows the reference specification (xxhash.h, XXH64 section).
 *
 * Every function here is plain C with no Python calls: callable without the GIL.
 */
#ifndef CS_HASH_H
#define CS_HASH_H

#ifndef CS_UNUSED
#define CS_UNUSED __attribute__((unused))
#endif
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CS_X86 1
#include <immintrin.h>
#else
#define CS_X86 0
#endif

static inline uint64_t cs_load64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t cs_load32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* ---- CRC-32C ------------------------------------------------------------ */

static uint32_t cs_crc_table[8][256];
CS_UNUSED static int cs_crc_have_hw = 0;
CS_UNUSED static int cs_crc_ready = 0;

/* Operators shifting a raw crc state over 8*CS_CRC_STRIDE zero bits, as four
 * byte-indexed tables (the GF(2) matrix split by input byte). */
#define CS_CRC_STRIDE 8192
static uint32_t cs_crc_shift[4][256];

CS_UNUSED static uint32_t cs_crc_sw_byte_shift(uint32_t crc, size_t nbytes)
{
    /* Shift the state over nbytes zero bytes, slowly: used only at init. */
    while (nbytes--)
        crc = (crc >> 8) ^ cs_crc_table[0][crc & 0xFF];
    return crc;
}

CS_UNUSED static void cs_crc_init(void)
{
    if (cs_crc_ready)
        return;
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        cs_crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            cs_crc_table[t][n] = (cs_crc_table[t - 1][n] >> 8)
                                 ^ cs_crc_table[0][cs_crc_table[t - 1][n] & 0xFF];
    /* The shift operator is linear over GF(2): shift the 32 basis states,
     * then tabulate it on each byte of the state by XOR of basis images. */
    uint32_t basis[32];
    for (int i = 0; i < 32; i++)
        basis[i] = cs_crc_sw_byte_shift(1u << i, CS_CRC_STRIDE);
    for (int b = 0; b < 4; b++)
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++)
                if (n & (1u << i))
                    v ^= basis[8 * b + i];
            cs_crc_shift[b][n] = v;
        }
#if CS_X86
    __builtin_cpu_init();
    cs_crc_have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
    cs_crc_ready = 1;
}

static inline uint32_t cs_crc_shift_stride(uint32_t crc)
{
    return cs_crc_shift[0][crc & 0xFF] ^ cs_crc_shift[1][(crc >> 8) & 0xFF]
           ^ cs_crc_shift[2][(crc >> 16) & 0xFF] ^ cs_crc_shift[3][crc >> 24];
}

/* Raw state update (no pre/post inversion), slicing-by-8. */
CS_UNUSED static uint32_t cs_crc32c_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = (crc >> 8) ^ cs_crc_table[0][(crc ^ *p++) & 0xFF];
        n--;
    }
    while (n >= 8) {
        uint64_t w = cs_load64(p) ^ crc;
        crc = cs_crc_table[7][w & 0xFF] ^ cs_crc_table[6][(w >> 8) & 0xFF]
              ^ cs_crc_table[5][(w >> 16) & 0xFF] ^ cs_crc_table[4][(w >> 24) & 0xFF]
              ^ cs_crc_table[3][(w >> 32) & 0xFF] ^ cs_crc_table[2][(w >> 40) & 0xFF]
              ^ cs_crc_table[1][(w >> 48) & 0xFF] ^ cs_crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ cs_crc_table[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if CS_X86 && defined(__x86_64__)
__attribute__((target("sse4.2")))
CS_UNUSED static uint32_t cs_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = _mm_crc32_u8(crc, *p++);
        n--;
    }
    /* Three interleaved streams over blocks of 3 * CS_CRC_STRIDE bytes. */
    while (n >= 3 * CS_CRC_STRIDE) {
        uint64_t c0 = crc, c1 = 0, c2 = 0;
        const uint8_t *q = p;
        for (size_t i = 0; i < CS_CRC_STRIDE; i += 8, q += 8) {
            c0 = _mm_crc32_u64(c0, cs_load64(q));
            c1 = _mm_crc32_u64(c1, cs_load64(q + CS_CRC_STRIDE));
            c2 = _mm_crc32_u64(c2, cs_load64(q + 2 * CS_CRC_STRIDE));
        }
        /* The crc of A||B from raw states: shift(crc(A)) ^ crc_from_zero(B). */
        crc = cs_crc_shift_stride((uint32_t)c0) ^ (uint32_t)c1;
        crc = cs_crc_shift_stride(crc) ^ (uint32_t)c2;
        p += 3 * CS_CRC_STRIDE;
        n -= 3 * CS_CRC_STRIDE;
    }
    uint64_t c = crc;
    while (n >= 8) {
        c = _mm_crc32_u64(c, cs_load64(p));
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

/* CRC-32C of p[0:n] continuing from a previous (finalized) crc value. */
CS_UNUSED static uint32_t cs_crc32c(uint32_t value, const uint8_t *p, size_t n)
{
    uint32_t crc = ~value;
#if CS_X86 && defined(__x86_64__)
    if (cs_crc_have_hw)
        return ~cs_crc32c_hw(crc, p, n);
#endif
    return ~cs_crc32c_sw(crc, p, n);
}

/* ---- XXH64 --------------------------------------------------------------- */

#define CS_P64_1 0x9E3779B185EBCA87ULL
#define CS_P64_2 0xC2B2AE3D27D4EB4FULL
#define CS_P64_3 0x165667B19E3779F9ULL
#define CS_P64_4 0x85EBCA77C2B2AE63ULL
#define CS_P64_5 0x27D4EB2F165667C5ULL

static inline uint64_t cs_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t cs_xxh64_round(uint64_t acc, uint64_t lane)
{
    acc += lane * CS_P64_2;
    acc = cs_rotl64(acc, 31);
    return acc * CS_P64_1;
}

static inline uint64_t cs_xxh64_merge(uint64_t acc, uint64_t val)
{
    acc ^= cs_xxh64_round(0, val);
    return acc * CS_P64_1 + CS_P64_4;
}

CS_UNUSED static uint64_t cs_xxh64(const uint8_t *p, size_t n, uint64_t seed)
{
    const uint8_t *end = p + n;
    uint64_t h;
    if (n >= 32) {
        const uint8_t *limit = end - 32;
        uint64_t v1 = seed + CS_P64_1 + CS_P64_2;
        uint64_t v2 = seed + CS_P64_2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - CS_P64_1;
        do {
            v1 = cs_xxh64_round(v1, cs_load64(p));
            v2 = cs_xxh64_round(v2, cs_load64(p + 8));
            v3 = cs_xxh64_round(v3, cs_load64(p + 16));
            v4 = cs_xxh64_round(v4, cs_load64(p + 24));
            p += 32;
        } while (p <= limit);
        h = cs_rotl64(v1, 1) + cs_rotl64(v2, 7) + cs_rotl64(v3, 12) + cs_rotl64(v4, 18);
        h = cs_xxh64_merge(h, v1);
        h = cs_xxh64_merge(h, v2);
        h = cs_xxh64_merge(h, v3);
        h = cs_xxh64_merge(h, v4);
    } else {
        h = seed + CS_P64_5;
    }
    h += (uint64_t)n;
    while (p + 8 <= end) {
        h ^= cs_xxh64_round(0, cs_load64(p));
        h = cs_rotl64(h, 27) * CS_P64_1 + CS_P64_4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)cs_load32(p) * CS_P64_1;
        h = cs_rotl64(h, 23) * CS_P64_2 + CS_P64_3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p) * CS_P64_5;
        h = cs_rotl64(h, 11) * CS_P64_1;
        p++;
    }
    h ^= h >> 33;
    h *= CS_P64_2;
    h ^= h >> 29;
    h *= CS_P64_3;
    h ^= h >> 32;
    return h;
}

#endif /* CS_HASH_H */
