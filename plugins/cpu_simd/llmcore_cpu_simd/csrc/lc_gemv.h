/* The one-token GEMVs' row loop, for the legacy types (quants.c, quants_legacy.c) and gemv_kq.c's
 * K-quants: the rows in groups of LC_GEMV_ROWS through the type's group kernel, the last few through
 * its vec_dot; and the legacy group kernels' shared steps. */
#ifndef LC_GEMV_H
#define LC_GEMV_H

#include <string.h>

#include "lc_simd.h"

enum { LC_GEMV_ROWS = 4 };

/* Weights on 4 KB pages (the mapped file's, where the weights' arena of 2 MB pages is not made:
 * backend.py), physically scattered as a GGUF's page cache is: a group kernel's own prefetches run
 * ahead into pages whose translation is not yet in the TLB and seem to be dropped there, and the
 * hardware prefetchers stop at each page's end. Reading the first line of the page two pages ahead
 * (one line: asking for more lines of it lost the gain) has the page walk done before the stream gets
 * there. Zen 4, one thread, 128 MB chains of decode-shaped one-token products on scattered 4 KB pages:
 * Q4_K's GEMV (its prefetch 8 KB ahead) 1.24-1.43x, IQ4_XS's 1.09x; on 2 MB pages 0.99-1.01x. A page
 * ahead gained less (Q4_K 1.07-1.27x), 12-24 KB ahead cost 9-12% on 2 MB pages. Q5_0's GEMV (its
 * prefetch 1 KB past the group) lost 2-3% both ways, so it goes without, as do Q8_0's and Q4_1's
 * GEMVs (the same prefetch; the default model's decode 0.9-1.0x with it on either page size) and the
 * tiles and vec_dot row by row (Q6_K on AVX-512: nothing gained). prefetcht1/t2 did nothing (dropped
 * on a TLB miss). */
enum { LC_PAGE_BYTES = 4096, LC_PAGE_TOUCH_AHEAD = 2 * LC_PAGE_BYTES };

/* the first page boundary after at: where a row loop starting at at begins touching pages */
static inline const uint8_t *lc_next_page(const void *at) {
    return (const uint8_t *)(((uintptr_t)at & ~(uintptr_t)(LC_PAGE_BYTES - 1)) + LC_PAGE_BYTES);
}

/* reads the first line of each page from touched up to LC_PAGE_TOUCH_AHEAD past at (prefetcht0);
 * returns the next page to touch. A prefetch past the mapping's end does not fault. */
static inline const uint8_t *lc_touch_pages_ahead(const uint8_t *touched, const void *at) {
    for (; touched < (const uint8_t *)at + LC_PAGE_TOUCH_AHEAD; touched += LC_PAGE_BYTES) __builtin_prefetch(touched, 0, 3);
    return touched;
}

/* The four rows a group reads are four streams, which the hardware prefetchers follow less well than
 * one: block step i of a group asks for its share (the step's bytes of the four rows) of the run of
 * bytes at ahead, so the requests go ahead as one stream, spread evenly over the work (the kernels
 * say how far ahead: a burst for the next group at each group's start fell behind). */
static inline __attribute__((always_inline)) void lc_prefetch_step_share(const uint8_t *ahead, int64_t i,
                                                                         size_t step_bytes) {
    const uint8_t *share = ahead + (size_t)i * step_bytes;
    for (size_t at = 0; at < step_bytes; at += 64) __builtin_prefetch(share + at, 0, 3);
}

/* How far past a kernel's own distance the "farther" prefetch (prefetch 2) asks for its bytes: a CPU
 * whose memory answers later than Zen 4's wants its requests out earlier (timed per CPU: tuning.py) */
enum { LC_PREFETCH_FARTHER = 4096 };

static inline size_t lc_prefetch_ahead_bytes(size_t own, int prefetch) {
    return prefetch > 1 ? own + LC_PREFETCH_FARTHER : own;
}

/* y[0..LC_GEMV_ROWS-1] = the dots of the rows at w (row_bytes apart, nb blocks each) with x; prefetch:
 * 1 the kernel asks for its bytes ahead (lc_prefetch_step_share) at its own distance, 2 farther
 * (lc_prefetch_ahead_bytes), 0 leaves them to the hardware prefetchers (which streams fastest is timed
 * per CPU: tuning.py) */
typedef void (*lc_gemv_group_fn)(int64_t nb, const uint8_t *w, size_t row_bytes, const void *x, float *y, int prefetch);

/* y[r] = dot(k, row r of w, x) for r < nrows; group NULL: every row through dot. touch_pages: the
 * groups touch the pages ahead of the ones they read (lc_touch_pages_ahead); prefetch: the group
 * kernels ask for their own bytes ahead (lc_prefetch_step_share). Always inlined, so that group and dot are
 * direct calls and an unused page touch is no code. */
static inline __attribute__((always_inline)) void lc_gemv_rows(int64_t k, const void *w, size_t row_bytes, int64_t nrows,
                                                               const void *x, float *y, int block, lc_gemv_group_fn group,
                                                               lc_vec_dot_fn dot, int touch_pages, int prefetch) {
    const uint8_t *rows = w;
    int64_t r = 0;
    if (group) {
        const uint8_t *touched = lc_next_page(rows);
        for (; r + LC_GEMV_ROWS <= nrows; r += LC_GEMV_ROWS) {
            if (touch_pages) touched = lc_touch_pages_ahead(touched, rows + (size_t)r * row_bytes);
            group(k / block, rows + (size_t)r * row_bytes, row_bytes, x, y + r, prefetch);
        }
    }
    for (; r < nrows; r++) dot((int)k, y + r, rows + (size_t)r * row_bytes, x);
}

#if defined(LC_AVX2)
/* hsum_float_8 of four rows' accumulators, as the four lanes of one vector: the same adds */
static inline __m128 lc_hsum8_rows4(const __m256 acc[LC_GEMV_ROWS]) {
    __m128 s0 = _mm_add_ps(_mm256_castps256_ps128(acc[0]), _mm256_extractf128_ps(acc[0], 1));
    __m128 s1 = _mm_add_ps(_mm256_castps256_ps128(acc[1]), _mm256_extractf128_ps(acc[1], 1));
    __m128 s2 = _mm_add_ps(_mm256_castps256_ps128(acc[2]), _mm256_extractf128_ps(acc[2], 1));
    __m128 s3 = _mm_add_ps(_mm256_castps256_ps128(acc[3]), _mm256_extractf128_ps(acc[3], 1));
    _MM_TRANSPOSE4_PS(s0, s1, s2, s3);  /* s_k: lane k of the four rows */
    return _mm_add_ps(_mm_add_ps(s0, s2), _mm_add_ps(s1, s3));
}

/* the exact sums of the 8 int32 lanes of a[0..3], as the four lanes of one vector */
static inline __m128i lc_reduce4_epi32(const __m256i a[LC_GEMV_ROWS]) {
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}

/* the four 16-bit words at p[0..3] (one per row), as the low four of a vector */
static inline __m128i lc_gather4_u16(const void *const p[LC_GEMV_ROWS]) {
    uint16_t h[LC_GEMV_ROWS];
    for (int r = 0; r < LC_GEMV_ROWS; r++) memcpy(h + r, p[r], 2);
    return _mm_loadl_epi64((const __m128i *)h);
}

/* a block's quants as unsigned bytes in ggml's element order */
typedef __m256i (*lc_block_values_fn)(const uint8_t *block);

/* Four rows of a 32-block type with a min (Q4_1, Q5_1: f16 d and m open each block) times a token in
 * Q8_1: each row's int32 lanes (its unsigned quants, values(block), times the token's: one multiply-add
 * of bytes a row with VNNI) fused into its 8 float lanes times d_w * d_x, its min term m_w * s_x added
 * up beside them (a multiply and an add, as vec_dot's), then hsum and the min term: vec_dot's bits */
static inline __attribute__((always_inline)) void lc_gemv4_with_min(int64_t nb, const uint8_t *w, size_t row_bytes,
        const void *vx, float *y, int prefetch, const size_t block_bytes, const size_t prefetch_past_group,
        lc_block_values_fn values) {
    const block_q8_1 *x = vx;
    const uint8_t *ahead = w + LC_GEMV_ROWS * row_bytes + lc_prefetch_ahead_bytes(prefetch_past_group, prefetch);
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m128 summs = _mm_setzero_ps();
    _Alignas(16) float scale[LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; i++) {
        if (prefetch) lc_prefetch_step_share(ahead, i, LC_GEMV_ROWS * block_bytes);
        const uint8_t *b[LC_GEMV_ROWS];
        for (int r = 0; r < LC_GEMV_ROWS; r++) b[r] = w + (size_t)r * row_bytes + (size_t)i * block_bytes;
        const void *d[LC_GEMV_ROWS] = {b[0], b[1], b[2], b[3]};
        const void *m[LC_GEMV_ROWS] = {b[0] + 2, b[1] + 2, b[2] + 2, b[3] + 2};
        _mm_store_ps(scale, _mm_mul_ps(_mm_cvtph_ps(lc_gather4_u16(d)), _mm_set1_ps(LC_H2F(x[i].d))));
        summs = _mm_add_ps(summs, _mm_mul_ps(_mm_cvtph_ps(lc_gather4_u16(m)), _mm_set1_ps(LC_H2F(x[i].s))));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; r++) {
            const __m256 xy = _mm256_cvtepi32_ps(lc_dot_us8_256(values(b[r]), qx));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(scale + r), xy, acc[r]);
        }
    }
    _mm_storeu_ps(y, _mm_add_ps(lc_hsum8_rows4(acc), summs));
}
#endif

#endif
