/* The one-token GEMVs' row loop, for quants.c's legacy types and gemv_kq.c's K-quants: the rows in
 * groups of LC_GEMV_ROWS through the type's group kernel, the last few through its vec_dot. */
#ifndef LC_GEMV_H
#define LC_GEMV_H

#include "lc_types.h"

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

#endif
