/* The kernels this plugin's own files provide (quants.c, gemm_f16.c): activation quantizers, the vec_dot and
 * dequant_row of F32, F16, Q8_0 and Q4_1, and the tile kernels the matmul uses. */
#ifndef LC_KERNELS_H
#define LC_KERNELS_H

#include "lc_types.h"

void lc_quantize_row_q8_0(const float *x, void *y, int64_t n);
void lc_quantize_row_q8_1(const float *x, void *y, int64_t n);
void lc_quantize_row_f16(const float *x, void *y, int64_t n);
void lc_quantize_row_bf16(const float *x, void *y, int64_t n);

void lc_vec_dot_f32(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_f32_tinyblas(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_f16(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q8_0(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q4_1(int n, float *s, const void *w_row, const void *x_row);

void lc_dequant_row_f32(const void *w_row, float *y, int64_t n);
void lc_dequant_row_f16(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q8_0(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q4_1(const void *w_row, float *y, int64_t n);

/* Tiles for the matmul: y[j * ldy + r] = dot(weight row r, activation row j) for r < nw (<= 2) and
 * j < nx (<= LC_TILE_X). Every dot is computed by exactly the operations vec_dot uses, so results
 * never depend on how many rows share a call (decode batches stay bit-identical to single tokens);
 * except the f16 tile, tinyBLAS's order, which ggml takes for two or more tokens only. */
#define LC_TILE_X 4
typedef void (*lc_tile_fn)(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw,
                           const void *x, size_t x_stride, int nx);
void lc_tile_q8_0(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_tile_q4_1(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx);
void lc_tile_q5_0(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx); /* AVX2 builds */
void lc_tile_f16_tinyblas(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride, int nx); /* f16 w, f32 x (f16 values), rows of 16s */
lc_tile_fn lc_tile_for(int type); /* NULL when the type has no tile kernel */

/* One token times many weight rows: y[r] = vec_dot(k, row r of w, x) for r < nrows, with vec_dot's
 * bits, several rows streamed at once (x one activation row of the type's vec_dot format); prefetch:
 * the kernel asks for the rows' bytes ahead of its reads, 0 leaves that to the hardware prefetchers */
typedef void (*lc_gemv_fn)(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
lc_gemv_fn lc_gemv_for(int type); /* NULL when the type's one-token product goes row by row */
/* the GEMV with the order of llama.cpp's repacked GEMM (a batch's groups of four tokens), NULL where none */
lc_gemv_fn lc_gemm_order_gemv_for(int type);
int lc_gemv_prefetches(int type); /* the prefetch argument the type's GEMV takes on this CPU (lc_gemv_group_fn) */
void lc_gemv_q8_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);
void lc_gemv_q4_1(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch);

/* gemm_f16.c: y[j * ldy + r] for nr f16 weight rows (w_stride bytes apart) times m f16 activation
 * rows (x_stride bytes apart), k a multiple of 16: the f16 tile's order (tinyBLAS's), register-tiled
 * and cache-blocked for many tokens; plus bias[r] where bias is not NULL */
void lc_gemm_f16(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                 float *y, size_t ldy, const float *bias);

/* y[t * ldy + r] += bias[r] for the tokens [0, m) and rows [r0, r1), nothing when bias is NULL: a
 * product's folded bias ADD (the lowering's epilogue), the same float sums as ggml's separate ADD */
static inline void lc_add_bias(float *y, size_t ldy, int64_t m, int64_t r0, int64_t r1, const float *bias) {
    for (int64_t t = 0; bias && t < m; t++)
        for (int64_t r = r0; r < r1; r++) y[t * (int64_t)ldy + r] += bias[r];
}

/* f16 <-> f32 over arrays, with the ISA's conversion instructions where it has them */
void lc_fp16_to_fp32_row(const lc_fp16_t *x, float *y, int64_t n);
void lc_fp32_to_fp16_row(const float *x, lc_fp16_t *y, int64_t n);

#endif
