/* The one-token GEMVs' row loop, for the legacy types (quants.c, quants_legacy.c) and gemv_kq.c's
 * K-quants: the rows in groups of LC_GEMV_ROWS through the type's group kernel, the last few through
 * its vec_dot; and the legacy group kernels' shared steps. */
#ifndef LC_GEMV_H
#define LC_GEMV_H

#include <string.h>

#include "lc_simd.h"

enum { LC_GEMV_ROWS = 4 };

/* y[0..LC_GEMV_ROWS-1] = the dots of the rows at w (row_bytes apart, nb blocks each) with x */
typedef void (*lc_gemv_group_fn)(int64_t nb, const uint8_t *w, size_t row_bytes, const void *x, float *y);

/* y[r] = dot(k, row r of w, x) for r < nrows; group NULL: every row through dot. prefetch_ahead > 0
 * asks for the first prefetch_ahead bytes at the start and, before each group, for a group's bytes
 * that far past its start (0: the group kernel asks for its own). Always inlined, so that group
 * and dot are direct calls and an unused prefetch is no code. */
static inline __attribute__((always_inline)) void lc_gemv_rows(int64_t k, const void *w, size_t row_bytes, int64_t nrows,
                                                               const void *x, float *y, int block, lc_gemv_group_fn group,
                                                               lc_vec_dot_fn dot, size_t prefetch_ahead) {
    const uint8_t *rows = w;
    int64_t r = 0;
    if (group) {
        const size_t bytes = (size_t)nrows * row_bytes;
        for (size_t at = 0; at < prefetch_ahead && at < bytes; at += 64) __builtin_prefetch(rows + at, 0, 3);
        for (; r + LC_GEMV_ROWS <= nrows; r += LC_GEMV_ROWS) {
            if (prefetch_ahead) {
                const size_t ahead = (size_t)r * row_bytes + prefetch_ahead, ahead_end = ahead + LC_GEMV_ROWS * row_bytes;
                for (size_t at = ahead; at < ahead_end && at < bytes; at += 64) __builtin_prefetch(rows + at, 0, 3);
            }
            group(k / block, rows + (size_t)r * row_bytes, row_bytes, x, y + r);
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

/* the four 16-bit words at p[0..3] (one per row), as the low four of a vector */
static inline __m128i lc_gather4_u16(const void *const p[LC_GEMV_ROWS]) {
    uint16_t h[LC_GEMV_ROWS];
    for (int r = 0; r < LC_GEMV_ROWS; r++) memcpy(h + r, p[r], 2);
    return _mm_loadl_epi64((const __m128i *)h);
}
#endif

#endif
