/* Legacy 32-element block kernels owned here: Q4_0 and Q5_0 (x Q8_0), Q5_1 (x Q8_1), and BF16
 * (x BF16 activations), with their row dequantizers. Q4_1, Q8_0, F16, F32 and the Q8_0/Q8_1
 * quantizers live with the executor's kernels. */
#ifndef LC_QUANTS_LEGACY_H
#define LC_QUANTS_LEGACY_H

#include "lc_simd.h" /* LC_AVX512 */
#include "lc_types.h"

/* one weight row (n elements; n % 32 == 0 for the block types, any n for BF16) . one activation row */
void lc_vec_dot_q4_0(int n, float *s, const void *w_row, const void *x_row);
/* Q4_0 in the order of llama.cpp's repacked x86 GEMV/GEMM (q4_0_8x8), which it runs for every Q4_0
 * matrix whose rows are a multiple of 8: per 32-block the exact integer dot, times d_w * d_x
 * fused-multiply-added into one running sum */
void lc_vec_dot_q4_0_repacked(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q5_0(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q5_1(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_bf16(int n, float *s, const void *w_row, const void *x_row);
/* BF16 . BF16 in the order of llamafile's tinyBLAS (ggml's batches of two or more tokens) for nw (<= 2)
 * weight rows by nx (<= LC_TILE_X) activation rows (lc_tile_fn's layout); n a multiple of
 * LC_BF16_TINYBLAS_STEP, the values its GEMM takes a step */
#if defined(LC_AVX512) && defined(__AVX512BF16__)
#define LC_BF16_TINYBLAS_STEP 32
#else
#define LC_BF16_TINYBLAS_STEP 8
#endif
#if defined(LC_AVX512) && defined(__AVX512BF16__)
/* the same for nr weight rows by m activation rows, register-tiled (a prompt's batch): y[t * ldy + r] */
#define LC_HAVE_BF16_GEMM 1
void lc_gemm_bf16_tinyblas(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                           float *y, size_t ldy);
#endif
void lc_tile_bf16_tinyblas(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x,
                           size_t x_stride, int nx);

/* one token times nrows Q5_0 (Q5_1) rows, each output lc_vec_dot_q5_0's (q5_1's) bits, and nrows Q4_0
 * rows, each lc_vec_dot_q4_0_repacked's (AVX2 builds: lc_gemv_for) */
void lc_gemv_q5_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q5_1(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q4_0_repacked(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y,
                           int prefetch);

void lc_dequant_row_q4_0(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q5_0(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q5_1(const void *w_row, float *y, int64_t n);
void lc_dequant_row_bf16(const void *w_row, float *y, int64_t n);

#endif /* LC_QUANTS_LEGACY_H */
