/* K-quant kernels (Q2_K..Q6_K weights x Q8_K activations) and the Q8_K activation quantizer.
 * Numerics follow ggml exactly: integer sums per block are exact, the float combination per
 * super-block is d * isum - dmin * summs; dequant_row matches ggml/gguf bit for bit. */
#ifndef LC_QUANTS_KQ_H
#define LC_QUANTS_KQ_H

#include "lc_types.h"
#include "lc_simd.h"

/* activations -> block_q8_K (ggml quantize_row_q8_K_ref, bsums included); n % 256 == 0 */
void lc_quantize_row_q8_K(const float *x, void *y, int64_t n);

/* one weight row (n elements, n % 256 == 0) . one block_q8_K row */
void lc_vec_dot_q2_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q3_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q4_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q5_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q6_K(int n, float *s, const void *w_row, const void *x_row);
/* the same products in the order of llama.cpp's tiled kernel (batches of 8 or more tokens) */
void lc_vec_dot_q4_K_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q5_K_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q6_K_tiled(int n, float *s, const void *w_row, const void *x_row);
/* in the order of llama.cpp's repacked Q4_K GEMM (groups of four tokens) */
void lc_vec_dot_q4_K_gemm(int n, float *s, const void *w_row, const void *x_row);

void lc_dequant_row_q2_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q3_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q4_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q5_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q6_K(const void *w_row, float *y, int64_t n);

/* ---- internal: NEON helper shared by quants_kq.c and quants_legacy.c (candidate for lc_simd.h) ---- */
#if defined(LC_NEON)
/* exact sum of the 16 products a[i] * b[i] (|a[i] * b[i]| < 2^15) */
static inline int lc_neon_dot16(int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), a, b));
#else
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_high_s8(a, b);
    return vaddvq_s32(vpadalq_s16(vpaddlq_s16(p0), p1));
#endif
}
#endif /* LC_NEON */

#endif /* LC_QUANTS_KQ_H */
