/* One token times many K-quant rows, each output with its one-row kernel's bits (gemv_kq.c). */
#ifndef LC_GEMV_KQ_H
#define LC_GEMV_KQ_H

#include "lc_types.h"

/* y[r] = lc_vec_dot_q4_K(k, row r of w, x) for r < nrows; x one block_q8_K row of k elements */
void lc_gemv_q4_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y);

#endif
