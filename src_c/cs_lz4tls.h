/* Decompressing lz4 blocks into a reused per-thread buffer.
 *
 * python-lz4 (a dependency) returns a fresh bytes object per block; for a
 * 256 KiB block that is a fresh mapping whose pages fault in on every query,
 * and with two query threads the page faults serialise them.  The scanner
 * only needs the raw block until it has copied out the matching lines, so
 * it decompresses into a buffer kept per thread instead.
 *
 * The decompressor is python-lz4's own LZ4_decompress_safe (its extension
 * exports it), found at import with dlopen/dlsym: the lz4 library already
 * installed, no headers or second copy needed.  When it is not found the
 * scanner keeps using python-lz4's Python API.
 *
 * Plain C, no Python calls: usable without the GIL.
 */
#ifndef CS_LZ4TLS_H
#define CS_LZ4TLS_H

#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef CS_UNUSED
#if defined(__GNUC__)
#define CS_UNUSED __attribute__((unused))
#else
#define CS_UNUSED
#endif
#endif

typedef int (*cs_lz4_fn)(const char *src, char *dst, int src_size, int dst_capacity);

static cs_lz4_fn cs_lz4_decompress_safe = NULL;
/* Compression as python-lz4's block.compress does it in its default mode,
 * so the bytes are the same: LZ4_resetStream on a fresh LZ4_stream_t, then
 * LZ4_compress_fast_continue with acceleration 1 (that differs from
 * LZ4_compress_default on blocks under 64 KiB).  Set by cs_lz4c_init. */
typedef void (*cs_lz4_reset_fn)(void *stream);
typedef int (*cs_lz4_continue_fn)(void *stream, const char *src, char *dst, int src_size,
                                  int dst_capacity, int acceleration);
typedef int (*cs_lz4_sizeof_fn)(void);
static cs_lz4_reset_fn cs_lz4_reset_stream = NULL;
static cs_lz4_continue_fn cs_lz4_compress_continue = NULL;
static size_t cs_lz4_state_size = 0;
static pthread_key_t cs_tls_key;
static int cs_tls_ready = 0;

/* Buffers above this are allocated per call, not kept by the thread. */
#define CS_TLS_MAX_KEEP (16u << 20)

/* Two buffers per thread: slot 0 for raw blocks, slot 1 for stored blocks
 * read straight from a file (scan_block_at). */
#define CS_TLS_SLOTS 2

typedef struct {
    uint8_t *p;
    size_t cap;
    int busy;
} cs_tls_buf;

CS_UNUSED static void cs_tls_free(void *v)
{
    cs_tls_buf *b = (cs_tls_buf *)v;
    if (b) {
        for (int i = 0; i < CS_TLS_SLOTS; i++)
            free(b[i].p);
        free(b);
    }
}

/* Returns 1 when the per-thread buffers and the decompressor are usable. */
CS_UNUSED static int cs_lz4tls_init(const char *lib_path)
{
    void *h;
    if (!cs_tls_ready && pthread_key_create(&cs_tls_key, cs_tls_free) == 0)
        cs_tls_ready = 1;
    if (!cs_tls_ready || lib_path == NULL)
        return 0;
    h = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return 0;
    cs_lz4_decompress_safe = (cs_lz4_fn)dlsym(h, "LZ4_decompress_safe");
    return cs_lz4_decompress_safe != NULL;
}

/* Find the lz4 compressor in python-lz4's extension; 1 when found.  Needs no
 * per-thread buffers (cut_blocks compresses into fresh memory). */
CS_UNUSED static int cs_lz4c_init(const char *lib_path)
{
    void *h;
    if (lib_path == NULL)
        return 0;
    h = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return 0;
    cs_lz4_sizeof_fn size_of = (cs_lz4_sizeof_fn)dlsym(h, "LZ4_sizeofState");
    cs_lz4_reset_stream = (cs_lz4_reset_fn)dlsym(h, "LZ4_resetStream");
    cs_lz4_compress_continue = (cs_lz4_continue_fn)dlsym(h, "LZ4_compress_fast_continue");
    if (!size_of || !cs_lz4_reset_stream || !cs_lz4_compress_continue) {
        cs_lz4_reset_stream = NULL;
        cs_lz4_compress_continue = NULL;
        return 0;
    }
    cs_lz4_state_size = (size_t)size_of();
    return 1;
}

/* python-lz4's default-mode compression of n bytes into dst (capacity cap)
 * with `state` (cs_lz4_state_size bytes, 8-aligned): the compressed size, or
 * 0 on failure. */
CS_UNUSED static int cs_lz4_compress(void *state, const uint8_t *src, int n, uint8_t *dst, int cap)
{
    cs_lz4_reset_stream(state);
    return cs_lz4_compress_continue(state, (const char *)src, (char *)dst, n, cap, 1);
}

/* A buffer of at least n bytes for this thread, marked busy until
 * cs_tls_release; *owned says whether the caller must free it instead (too
 * big to keep, or the thread's buffer is already in use).  NULL: no memory. */
CS_UNUSED static uint8_t *cs_tls_acquire_slot(int slot, size_t n, int *owned)
{
    cs_tls_buf *all = (cs_tls_buf *)pthread_getspecific(cs_tls_key), *b;
    *owned = 0;
    if (!all) {
        all = (cs_tls_buf *)calloc(CS_TLS_SLOTS, sizeof *all);
        if (!all || pthread_setspecific(cs_tls_key, all)) {
            free(all);
            *owned = 1;
            return (uint8_t *)malloc(n ? n : 1);
        }
    }
    b = &all[slot];
    if (n > CS_TLS_MAX_KEEP || b->busy) {
        *owned = 1;
        return (uint8_t *)malloc(n ? n : 1);
    }
    if (b->cap < n || !b->p) {
        free(b->p);
        b->cap = n < 4096 ? 4096 : n;
        b->p = (uint8_t *)malloc(b->cap);
        if (!b->p) {
            b->cap = 0;
            return NULL;
        }
    }
    b->busy = 1;
    return b->p;
}

CS_UNUSED static void cs_tls_release_slot(int slot, uint8_t *p, int owned)
{
    if (owned) {
        free(p);
        return;
    }
    cs_tls_buf *all = (cs_tls_buf *)pthread_getspecific(cs_tls_key);
    if (all)
        all[slot].busy = 0;
}

CS_UNUSED static uint8_t *cs_tls_acquire(size_t n, int *owned)
{
    return cs_tls_acquire_slot(0, n, owned);
}

CS_UNUSED static void cs_tls_release(uint8_t *p, int owned)
{
    cs_tls_release_slot(0, p, owned);
}

/* pread exactly n bytes at off; 0 on success, -1 on error or a short file. */
CS_UNUSED static int cs_pread_all(int fd, uint8_t *dst, size_t n, int64_t off)
{
    while (n) {
        ssize_t got = pread(fd, dst, n, (off_t)off);
        if (got <= 0)
            return -1;
        dst += got;
        n -= (size_t)got;
        off += got;
    }
    return 0;
}

#endif
