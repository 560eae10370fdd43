/* i-quant kernels: IQ4_XS weights (4-bit indices into ggml's non-linear kvalues_iq4nl, a 6-bit scale
 * per 32 values, an f16 scale per 256) dotted with Q8_K activations, and their row dequantizer. */
#ifndef LC_QUANTS_IQ_H
#define LC_QUANTS_IQ_H

#include "lc_types.h"

typedef struct {
    lc_fp16_t d;
    uint16_t scales_h;             /* top 2 bits of the 8 sub-block scales */
    uint8_t scales_l[QK_K / 64];   /* low 4 bits, two scales a byte */
    uint8_t qs[QK_K / 2];          /* per 32 values: 16 bytes, low nibbles first */
} block_iq4_xs;

/* one weight row (n % 256 == 0) . one block_q8_K row, in ggml's AVX2 vec_dot order */
void lc_vec_dot_iq4_xs(int n, float *s, const void *w_row, const void *x_row);
/* the same product in the order of llama.cpp's tiled kernel (batches of 8 or more tokens) */
void lc_vec_dot_iq4_xs_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_dequant_row_iq4_xs(const void *w_row, float *y, int64_t n);

#endif
