/* The kernels this plugin's own files provide (quants.c): activation quantizers, the vec_dot and
 * dequant_row of F32, F16, Q8_0 and Q4_1, and the multi-activation dots the matmul uses. */
#ifndef LC_KERNELS_H
#define LC_KERNELS_H

#include "lc_types.h"

void lc_quantize_row_q8_0(const float *x, void *y, int64_t n);
void lc_quantize_row_q8_1(const float *x, void *y, int64_t n);
void lc_quantize_row_f16(const float *x, void *y, int64_t n);
void lc_quantize_row_bf16(const float *x, void *y, int64_t n);

void lc_vec_dot_f32(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_f16(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q8_0(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q4_1(int n, float *s, const void *w_row, const void *x_row);

void lc_dequant_row_f32(const void *w_row, float *y, int64_t n);
void lc_dequant_row_f16(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q8_0(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q4_1(const void *w_row, float *y, int64_t n);

/* Dot of one weight row with nx (<= LC_MULTI_MAX) activation rows x_row + j * x_stride, into s[j].
 * Each s[j] is computed by exactly the operations vec_dot would use, so results never depend
 * on how many rows share the call (decode batches stay bit-identical to single tokens). */
#define LC_MULTI_MAX 4
typedef void (*lc_vec_dot_multi_fn)(int n, float *s, const void *w_row, const void *x_row, size_t x_stride, int nx);
void lc_vec_dot_q8_0_multi(int n, float *s, const void *w_row, const void *x_row, size_t x_stride, int nx);
void lc_vec_dot_q4_1_multi(int n, float *s, const void *w_row, const void *x_row, size_t x_stride, int nx);
lc_vec_dot_multi_fn lc_vec_dot_multi_for(int type); /* NULL when the type has none */

/* f16 <-> f32 over arrays, with the ISA's conversion instructions where it has them */
void lc_fp16_to_fp32_row(const lc_fp16_t *x, float *y, int64_t n);
void lc_fp32_to_fp16_row(const float *x, lc_fp16_t *y, int64_t n);

#endif
