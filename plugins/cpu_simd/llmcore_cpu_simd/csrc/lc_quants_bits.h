/* The 1- and 2-bit types of llama.cpp's newest release: Q1_0 (one sign bit per value, an f16 scale
 * per 128) and Q2_0 (values -1..2, an f16 scale per 64), dotted with Q8_0 activations. */
#ifndef LC_QUANTS_BITS_H
#define LC_QUANTS_BITS_H

#include "lc_types.h"

#define QK1_0 128
#define QK2_0 64
typedef struct { lc_fp16_t d; uint8_t qs[QK1_0 / 8]; } block_q1_0;
typedef struct { lc_fp16_t d; uint8_t qs[QK2_0 / 4]; } block_q2_0;

/* Q1_0 in ggml's AVX2 order; Q2_0 in its generic one (it has no x86 kernel) */
void lc_vec_dot_q1_0(int n, float *s, const void *w_row, const void *x_row);
void lc_dequant_row_q1_0(const void *w_row, float *y, int64_t n);
void lc_vec_dot_q2_0(int n, float *s, const void *w_row, const void *x_row);
void lc_dequant_row_q2_0(const void *w_row, float *y, int64_t n);

#endif
