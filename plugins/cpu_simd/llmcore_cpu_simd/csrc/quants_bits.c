/* Q1_0 and Q2_0 (lc_quants_bits.h), each spanning several Q8_0 activation blocks per weight block. */
#include "lc_quants_bits.h"
#include "lc_simd.h"

#include <math.h>

/* ggml's AVX2 order: per Q8_0 block, 8 integer lanes of +-q8 (lane l: values 4l..4l+3), scaled by
 * d_x into the block's float lanes (a product for the first, fused after), then fused times d_w
 * into the running lanes; hsum_float_8 at the end */
void lc_vec_dot_q1_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q1_0 *x = (const block_q1_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc[8] = {0};
    for (int ib = 0; ib < n / QK1_0; ++ib) {
        float block[8];
        for (int k = 0; k < QK1_0 / QK8_0; ++k) {
            const block_q8_0 *yb = y + (QK1_0 / QK8_0) * ib + k;
            const float dy = LC_H2F(yb->d);
            for (int l = 0; l < 8; ++l) {
                int32_t lane = 0;
                for (int j = 4 * l; j < 4 * l + 4; ++j)
                    lane += (x[ib].qs[4 * k + j / 8] >> (j % 8)) & 1 ? yb->qs[j] : -yb->qs[j];
                block[l] = k == 0 ? dy * (float)lane : fmaf(dy, (float)lane, block[l]);
            }
        }
        const float d = LC_H2F(x[ib].d);
        for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, block[l], acc[l]);
    }
    *s = lc_hsum8_ordered(acc);
}

void lc_dequant_row_q1_0(const void *w_row, float *y, int64_t n) {
    const block_q1_0 *x = (const block_q1_0 *)w_row;
    for (int64_t i = 0; i < n / QK1_0; ++i, y += QK1_0) {
        const float d = LC_H2F(x[i].d);
        for (int j = 0; j < QK1_0; ++j) y[j] = (x[i].qs[j / 8] >> (j % 8)) & 1 ? d : -d;
    }
}

/* ggml's generic order, as its x86 build compiles it: per Q8_0 block the exact integer dot times d_x
 * into the block's sum (each product exact: an f16 times a 13-bit integer), then d_w times that sum,
 * rounded, added to the total (not fused: checked against libggml-cpu's own function) */
void lc_vec_dot_q2_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q2_0 *x = (const block_q2_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float sum = 0.0f;
    for (int i = 0; i < n / QK2_0; ++i) {
        float block = 0.0f;
        for (int k = 0; k < QK2_0 / QK8_0; ++k) {
            const block_q8_0 *yb = y + (QK2_0 / QK8_0) * i + k;
            int32_t dot = 0;
            for (int j = 0; j < QK8_0; ++j) dot += (((x[i].qs[8 * k + j / 4] >> (2 * (j % 4))) & 3) - 1) * yb->qs[j];
            block = fmaf(LC_H2F(yb->d), (float)dot, block);
        }
        sum += LC_H2F(x[i].d) * block;
    }
    *s = sum;
}

void lc_dequant_row_q2_0(const void *w_row, float *y, int64_t n) {
    const block_q2_0 *x = (const block_q2_0 *)w_row;
    for (int64_t i = 0; i < n / QK2_0; ++i, y += QK2_0) {
        const float d = LC_H2F(x[i].d);
        for (int j = 0; j < QK2_0; ++j) y[j] = (float)(((x[i].qs[j / 4] >> (2 * (j % 4))) & 3) - 1) * d;
    }
}
