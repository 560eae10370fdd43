/* i-quant kernels (lc_quants_iq.h). IQ4_XS follows ggml exactly: per 256-block, 8 integer lanes
 * (lane l sums the products of values 4l..4l+3 of each 32-value sub-block, times that sub-block's
 * scale ls - 32) are exact on every ISA path; the float combination is then either vec_dot's (one
 * fused multiply-add of d_w * d_x per lane and block, hsum_float_8 at the end) or the tiled
 * kernel's (the block's whole integer sum times d_w, fused-multiply-added with d_x into one sum). */
#include "lc_quants_iq.h"
#include "lc_simd.h"

#include <math.h>

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

#if defined(LC_AVX2)

/* sub-block ib's 8 lanes: |q4| x sign-adjusted q8 (pairs stay below 2^15, so the byte madds are
 * exact), the int16 pairs madd-ed with the scale as ggml does */
static inline __m256i iq4_xs_sub_block(const block_iq4_xs *x, const block_q8_K *y, int ib, __m128i values) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i bits = _mm_loadu_si128((const __m128i *)(x->qs + 16 * ib));
    const __m128i lo = _mm_shuffle_epi8(values, _mm_and_si128(bits, m4));
    const __m128i hi = _mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(bits, 4), m4));
    const __m256i q4 = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    const __m256i q8 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * ib));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4, q4), _mm256_sign_epi8(q8, q4));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16((int16_t)iq4_xs_scale(x, ib)));
}

static inline __m256i iq4_xs_block_lanes(const block_iq4_xs *x, const block_q8_K *y) {
    const __m128i values = _mm_loadu_si128((const __m128i *)kvalues_iq4nl);
    __m256i sum1 = _mm256_setzero_si256(), sum2 = _mm256_setzero_si256();  /* two chains, one exact sum */
    for (int ib = 0; ib < QK_K / 32; ib += 2) {
        sum1 = _mm256_add_epi32(sum1, iq4_xs_sub_block(x, y, ib, values));
        sum2 = _mm256_add_epi32(sum2, iq4_xs_sub_block(x, y, ib + 1, values));
    }
    return _mm256_add_epi32(sum1, sum2);
}

void lc_vec_dot_iq4_xs(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq4_xs *x = (const block_iq4_xs *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d) * y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(iq4_xs_block_lanes(x + i, y + i)), acc);
    }
    *s = lc_hsum256(acc);
}

static inline int32_t iq4_xs_block_isum(const block_iq4_xs *x, const block_q8_K *y) {
    const __m256i lanes = iq4_xs_block_lanes(x, y);
    __m128i v = _mm_add_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
    return _mm_cvtsi128_si32(v);
}

#else /* scalar (and NEON builds): the same lanes, spelled out */

static void iq4_xs_block_lanes(const block_iq4_xs *x, const block_q8_K *y, int32_t lanes[8]) {
    for (int l = 0; l < 8; ++l) lanes[l] = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        const uint8_t *qs = x->qs + 16 * ib;
        const int8_t *q8 = y->qs + 32 * ib;
        const int ls = iq4_xs_scale(x, ib);
        for (int l = 0; l < 8; ++l) {
            int sum = 0;
            for (int k = 4 * l; k < 4 * l + 4; ++k)
                sum += q8[k] * kvalues_iq4nl[k < 16 ? qs[k] & 0xF : qs[k - 16] >> 4];
            lanes[l] += ls * sum;
        }
    }
}

void lc_vec_dot_iq4_xs(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq4_xs *x = (const block_iq4_xs *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t lanes[8];
        iq4_xs_block_lanes(x + i, y + i, lanes);
        const float d = LC_H2F(x[i].d) * y[i].d;
        for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, (float)lanes[l], acc[l]);
    }
    *s = lc_hsum8_ordered(acc);
}

static inline int32_t iq4_xs_block_isum(const block_iq4_xs *x, const block_q8_K *y) {
    int32_t lanes[8], sum = 0;
    iq4_xs_block_lanes(x, y, lanes);
    for (int l = 0; l < 8; ++l) sum += lanes[l];
    return sum;
}

#endif

/* llama.cpp's tiled kernel (ggml-cpu/tiled): the block's exact integer sum times d_w, then fused
 * with d_x into the running sum, block after block */
void lc_vec_dot_iq4_xs_tiled(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq4_xs *x = (const block_iq4_xs *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK_K; ++i) {
        const float result = (float)iq4_xs_block_isum(x + i, y + i) * LC_H2F(x[i].d);
        acc = fmaf(result, y[i].d, acc);
    }
    *s = acc;
}

void lc_dequant_row_iq4_xs(const void *w_row, float *y, int64_t n) {
    const block_iq4_xs *x = (const block_iq4_xs *)w_row;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ++ib, y += 32) {
            const float dl = d * (float)iq4_xs_scale(x + i, ib);
            const uint8_t *qs = x[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * (float)kvalues_iq4nl[qs[j] & 0xF];
                y[j + 16] = dl * (float)kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}
