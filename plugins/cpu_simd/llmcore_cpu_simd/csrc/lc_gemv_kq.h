/* One token times many K-quant (and IQ4_XS) rows, each output with its one-row kernel's bits (gemv_kq.c). */
#ifndef LC_GEMV_KQ_H
#define LC_GEMV_KQ_H

#include "lc_types.h"

/* y[r] = lc_vec_dot_TYPE(k, row r of w, x) for r < nrows; x one block_q8_K row of k elements */
void lc_gemv_q4_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
/* lc_vec_dot_q4_K_gemm's bits (the tokens of a batch llama.cpp's repacked GEMM takes), four rows at a time */
void lc_gemv_q4_K_gemm(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q5_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q6_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
/* AVX-512 builds only */
void lc_gemv_q3_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
/* y[r] = lc_vec_dot_q2_K_repacked(k, row r of w, x): the order of the Q2_K weights llama.cpp repacks */
void lc_gemv_q2_K_repacked(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y,
                           int prefetch);
/* built where ggml_tables.h is on the include path (gemv_kq.c) */
void lc_gemv_iq4_xs(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);

#endif
