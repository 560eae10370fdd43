/* K-quant kernels: Q2_K..Q6_K weights dotted with Q8_K activations, their row dequantizers, and
 * the Q8_K activation quantizer. The math is ggml's (ggml-quants.c, ggml-cpu/quants.c):
 *   dot = sum over super-blocks of  d_w*d_x * sum_sub(scale_sub * sum(q_w*q_x))  -  dmin_w*d_x * sum_sub(min_sub * bsum_sub)
 * Integer parts are exact in every ISA path, so paths differ only in float summation order.
 * Signed weight quants (Q3_K, Q6_K) are handled as unsigned (q + offset) with the offset taken back
 * through the activation block sums (bsums), which lets x86 use the unsigned x signed byte madds. */
#include "lc_quants_kq.h"

#include <math.h>
#include <string.h>

/* ---- scale unpacking (shared by all ISA paths) ---- */

/* ---- llama.cpp's tiled K-quant matmul (ggml-cpu/tiled) -----------------------------------------
 * llama.cpp multiplies a K-quant weight that it has not repacked by a batch of 8 or more tokens with
 * its tiled kernel instead of vec_dot. Per 256-block it takes the block's exact integer sum times the
 * weight's d (minus dmin times the mins' sum, fused), times the activation's d fused into the running
 * sum: other roundings than vec_dot's 8 float lanes. These give the same numbers, one output at a time. */

static inline float tiled_add(float acc, int32_t s1, float d, int32_t s2, float dmin, int has_min, float d_x) {
    float result = (float)s1 * d;
    if (has_min) result = fmaf(-dmin, (float)s2, result);
    return fmaf(result, d_x, acc);  /* ggml's build fuses the kernel's multiply and add */
}

/* ---- Q8_K activation quantizer and dequantizers ----
 * These must round exactly like ggml's reference C (no FMA contraction), so fp contraction is
 * switched off for this section whatever the ISA flags are. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

/* ggml nearest_int: round half to even through the float mantissa */
static inline int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

#if defined(LC_AVX512)
/* the index of the first element of the largest magnitude in 256 values */
static inline int first_argmax_abs(const float *x, float *amax_out) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < QK_K; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    const float amax = _mm512_reduce_max_ps(m);
    *amax_out = amax;
    for (int j = 0; j < QK_K; j += 16) {
        const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
        if (hit) return j + __builtin_ctz(hit);
    }
    return 0;
}
#elif defined(LC_AVX2)
static inline int first_argmax_abs(const float *x, float *amax_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 t = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    t = _mm_max_ps(t, _mm_movehl_ps(t, t));
    const float amax = _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
    *amax_out = amax;
    for (int j = 0; j < QK_K; j += 8) {
        const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j));
        const int hit = _mm256_movemask_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(amax), _CMP_EQ_OQ));
        if (hit) return j + __builtin_ctz((unsigned)hit);
    }
    return 0;
}

/* nearest_int(iscale * x), capped at 127, eight at a time: the same multiply and magic-number add */
static inline __m256i quantize8(const float *x, __m256 iscale) {
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(iscale, _mm256_loadu_ps(x)), _mm256_set1_ps(12582912.f));
    const __m256i q = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(q, _mm256_set1_epi32(127));
}
#endif

void lc_quantize_row_q8_K(const float *x, void *vy, int64_t n) {
    block_q8_K *y = (block_q8_K *)vy;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        /* the signed value with the largest magnitude (first one on ties) sets the scale */
        float amax = 0.f, max = 0.f;
#if defined(LC_AVX2)
        max = x[first_argmax_abs(x, &amax)];
#else
        for (int j = 0; j < QK_K; ++j) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
#endif
        if (amax == 0.f) {
            y[i].d = 0.f;
            memset(y[i].qs, 0, sizeof(y[i].qs));
            memset(y[i].bsums, 0, sizeof(y[i].bsums)); /* ggml leaves these unset; zero is their true value */
            continue;
        }
        const float iscale = -127.f / max;
#if defined(LC_AVX512)
        /* nearest_int, sixteen at a time: the same multiply and magic-number add */
        for (int j = 0; j < QK_K; j += 16) {
            const __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(iscale), _mm512_loadu_ps(x + j)), _mm512_set1_ps(12582912.f));
            __m512i q = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x00400000));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y[i].qs + j), _mm512_cvtepi32_epi8(q));
            y[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
        }
#elif defined(LC_AVX2)
        const __m256 vscale = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 16) {
            const __m256i q0 = quantize8(x + j, vscale), q1 = quantize8(x + j + 8, vscale);
            /* int16 in lane order q0[0..3] q1[0..3] | q0[4..7] q1[4..7], then the 64-bit quarters in order */
            const __m256i q16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
            _mm_storeu_si128((__m128i *)(y[i].qs + j),
                             _mm_packs_epi16(_mm256_castsi256_si128(q16), _mm256_extracti128_si256(q16, 1)));
            y[i].bsums[j / 16] = (int16_t)lc_hsum_epi32_256(_mm256_add_epi32(q0, q1));
        }
#else
        for (int j = 0; j < QK_K; ++j) {
            const int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
#endif
        y[i].d = 1.f / iscale;
    }
}

void lc_dequant_row_q2_K(const void *w_row, float *y, int64_t n) {
    const block_q2_K *x = (const block_q2_K *)w_row;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d), dmin = LC_H2F(x[i].dmin);
        for (int sb = 0; sb < 16; ++sb) {            /* sub-blocks of 16 */
            const uint8_t *q = x[i].qs + 32 * (sb / 8) + 16 * (sb & 1);
            const int shift = 2 * ((sb % 8) / 2);
            const float dl = d * (float)(x[i].scales[sb] & 0xF), ml = dmin * (float)(x[i].scales[sb] >> 4);
            for (int l = 0; l < 16; ++l) *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
        }
    }
}

void lc_dequant_row_q3_K(const void *w_row, float *y, int64_t n) {
    const block_q3_K *x = (const block_q3_K *)w_row;
    int8_t sc[16];
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d);
        lc_unpack_q3_scales(x[i].scales, sc);
        for (int sb = 0; sb < 16; ++sb) {
            const int chunk = sb / 2;                 /* 32-element chunk: high-bit index */
            const uint8_t *q = x[i].qs + 32 * (chunk / 4) + 16 * (sb & 1);
            const uint8_t *hm = x[i].hmask + 16 * (sb & 1);
            const int shift = 2 * (chunk % 4);
            const float dl = d * (float)sc[sb];
            for (int l = 0; l < 16; ++l) {
                const int v = ((q[l] >> shift) & 3) - ((hm[l] >> chunk) & 1 ? 0 : 4);
                *y++ = dl * (float)v;
            }
        }
    }
}

void lc_dequant_row_q4_K(const void *w_row, float *y, int64_t n) {
    const block_q4_K *x = (const block_q4_K *)w_row;
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d), dmin = LC_H2F(x[i].dmin);
        lc_unpack_k4_scales(x[i].scales, sc, mn);
        for (int sb = 0; sb < 8; ++sb) {              /* sub-blocks of 32: low then high nibbles */
            const uint8_t *q = x[i].qs + 32 * (sb / 2);
            const int shift = 4 * (sb & 1);
            const float dl = d * (float)sc[sb], ml = dmin * (float)mn[sb];
            for (int l = 0; l < 32; ++l) *y++ = dl * (float)((q[l] >> shift) & 0xF) - ml;
        }
    }
}

void lc_dequant_row_q5_K(const void *w_row, float *y, int64_t n) {
    const block_q5_K *x = (const block_q5_K *)w_row;
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d), dmin = LC_H2F(x[i].dmin);
        lc_unpack_k4_scales(x[i].scales, sc, mn);
        for (int sb = 0; sb < 8; ++sb) {
            const uint8_t *q = x[i].qs + 32 * (sb / 2);
            const int shift = 4 * (sb & 1);
            const float dl = d * (float)sc[sb], ml = dmin * (float)mn[sb];
            for (int l = 0; l < 32; ++l) {
                const int v = ((q[l] >> shift) & 0xF) | (((x[i].qh[l] >> sb) & 1) << 4);
                *y++ = dl * (float)v - ml;
            }
        }
    }
}

void lc_dequant_row_q6_K(const void *w_row, float *y, int64_t n) {
    const block_q6_K *x = (const block_q6_K *)w_row;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = LC_H2F(x[i].d);
        for (int sb = 0; sb < 16; ++sb) {
            const int chunk = sb / 2;                 /* 32-element chunk within the super-block */
            const int half = chunk / 4, part = chunk % 4, off = 16 * (sb & 1);
            const uint8_t *ql = x[i].ql + 64 * half + 32 * (part & 1) + off;
            const uint8_t *qh = x[i].qh + 32 * half + off;
            const int lshift = 4 * (part >> 1), hshift = 2 * part;
            const float dl = d * (float)x[i].scales[sb];
            for (int l = 0; l < 16; ++l) {
                const int v = (((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32;
                *y++ = dl * (float)v;
            }
        }
    }
}

#if defined(__clang__)
#pragma clang fp contract(on)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

/* ---- dot products ---- */

#if !defined(LC_AVX2)
/* The NEON and scalar paths' exact integer sums of a block (see the AVX2 path's) */

/* ggml's int32 lane of element e of a 256-block: lane l of each 32-element chunk holds its elements
 * 4l .. 4l+3 */
#define K_LANE(e) (((e) % 32) / 4)

/* one Q3_K block's exact integer products in ggml's 8 int32 lanes */
static inline void q3_K_block_lanes(const block_q3_K *x, const block_q8_K *y, int32_t sumi[8]) {
    int8_t sc[16];
    lc_unpack_q3_scales(x->scales, sc);
    memset(sumi, 0, 8 * sizeof(int32_t));
    for (int e = 0; e < QK_K; ++e) {
        const int chunk = e / 32;
        const int low = (x->qs[32 * (chunk / 4) + e % 32] >> (2 * (chunk % 4))) & 3;
        const int q = low - ((x->hmask[e % 32] >> chunk) & 1 ? 0 : 4);
        sumi[K_LANE(e)] += sc[e / 16] * q * y->qs[e];
    }
}

static inline int32_t q3_K_block_total(const block_q3_K *x, const block_q8_K *y) {
    int32_t sumi[8], total = 0;
    q3_K_block_lanes(x, y, sumi);
    for (int l = 0; l < 8; ++l) total += sumi[l];
    return total;
}

/* One Q2_K block's exact integer sums per 128-value half: the scaled products, the mins times the
 * activations' sums */
static inline void q2_K_half_sums(const block_q2_K *x, const block_q8_K *y, int32_t isum[2], int32_t imin[2]) {
    for (int h = 0; h < 2; ++h) {
        isum[h] = imin[h] = 0;
        for (int sb = 8 * h; sb < 8 * h + 8; ++sb) {
            const uint8_t *q = x->qs + 32 * (sb / 8) + 16 * (sb & 1);
            const int8_t *q8 = y->qs + 16 * sb;
            const int shift = 2 * ((sb % 8) / 2);
            int32_t sum = 0;
            for (int l = 0; l < 16; ++l) sum += q8[l] * ((q[l] >> shift) & 3);
            isum[h] += (x->scales[sb] & 0xF) * sum;
            imin[h] += (x->scales[sb] >> 4) * y->bsums[sb];
        }
    }
}
#endif

#if defined(LC_AVX2)

/* ggml's order: per block the mins' lanes times -dmin * d_x, then the scaled products' lanes times
 * d * d_x, fused into the same 8 float lanes; hsum at the end */
void lc_vec_dot_q2_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q2_K *x = (const block_q2_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; ++i) {
        const float dall = y[i].d * LC_H2F(x[i].d);
        const float dmin = -y[i].d * LC_H2F(x[i].dmin);
        __m256i isum[2], summs;
        lc_q2_K_block_isums(x + i, y + i, isum, &summs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(summs), acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dall), _mm256_cvtepi32_ps(_mm256_add_epi32(isum[0], isum[1])), acc);
    }
    *s = lc_hsum256(acc);
}

static inline void q2_K_half_sums(const block_q2_K *x, const block_q8_K *y, int32_t isum[2], int32_t imin[2]) {
    __m256i lanes[2], summs;
    lc_q2_K_block_isums(x, y, lanes, &summs);
    for (int h = 0; h < 2; ++h) isum[h] = lc_hsum_epi32_256(lanes[h]);
    const __m128i lo = _mm256_castsi256_si128(summs), hi = _mm256_extracti128_si256(summs, 1);
    imin[0] = _mm_extract_epi32(lo, 0) + _mm_extract_epi32(lo, 1) + _mm_extract_epi32(lo, 2) + _mm_extract_epi32(lo, 3);
    imin[1] = _mm_extract_epi32(hi, 0) + _mm_extract_epi32(hi, 1) + _mm_extract_epi32(hi, 2) + _mm_extract_epi32(hi, 3);
}

/* one Q3_K block's exact integer products in ggml's 8 int32 lanes */
static inline __m256i q3_K_block_isum(const block_q3_K *x, const block_q8_K *y) {
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    uint32_t words[4];
    lc_q3_scale_words(x->scales, words); /* kept in registers: no store-to-load round trip */
    const __m128i sc8 = _mm_sub_epi8(_mm_setr_epi32((int)words[0], (int)words[1], (int)words[2], (int)words[3]), _mm_set1_epi8(32));
    const __m256i sc_b = _mm256_broadcastsi128_si256(sc8);
    __m256i pattern = LC_PAIR_PATTERN0;
    __m256i hbits = _mm256_loadu_si256((const __m256i *)x->hmask);
    __m256i isum = _mm256_setzero_si256();
    const int8_t *q8 = y->qs;
    for (int h = 0; h < 2; ++h) {
        __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
        for (int j = 0; j < 4; ++j, q8 += 32) {
            /* q = u - 4 with u = low2 | high<<2 in 0..7, the 4 taken back per pair of products (int16):
             * ggml's int32 lanes */
            const __m256i u = _mm256_or_si256(_mm256_and_si256(bits, m3), _mm256_and_si256(_mm256_slli_epi16(hbits, 2), m4));
            const __m256i y8 = _mm256_loadu_si256((const __m256i *)q8);
            const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, y8), _mm256_maddubs_epi16(m4, y8));
            isum = lc_madd_acc_epi16(isum, p, lc_next_scale_pair(sc_b, &pattern));
            bits = _mm256_srli_epi16(bits, 2);
            hbits = _mm256_srli_epi16(hbits, 1);
        }
    }
    return isum;
}

static inline int32_t q3_K_block_total(const block_q3_K *x, const block_q8_K *y) { return lc_hsum_epi32_256(q3_K_block_isum(x, y)); }

void lc_vec_dot_q3_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q3_K *x = (const block_q3_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; ++i) {
        const float d = y[i].d * LC_H2F(x[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q3_K_block_isum(x + i, y + i)), acc);
    }
    *s = lc_hsum256(acc);
}

/* Q4_K / Q5_K share everything but the fifth bit and how the floats add up. Q5_K follows ggml's
 * vec_dot (scale term in 8 float lanes, min term in one float). Q4_K follows ggml's x86 repacked
 * kernel (repack.cpp gemv_q4_K_8x8_q8_K), which llama.cpp uses for every Q4_K matrix on AVX2
 * CPUs: per super-block one fma of the whole integer scale sum and one of the whole min sum,
 * subtracted at the end: its one-row (decode) path; its 4-row gemm rounds the activations otherwise. */
static inline void dot_k4_k5(int n, float *s, const void *w_row, const void *x_row, int with_high_bit) {
    const block_q8_K *y = (const block_q8_K *)x_row;
    const size_t stride = with_high_bit ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i m4 = _mm256_set1_epi8(0xF), m16 = _mm256_set1_epi8(16);
    uint8_t sc[8], mn[8];
    __m256 acc = _mm256_setzero_ps();
    float sum_q4 = 0.f, summs = 0.f; /* summs: the (negated) min term */
    for (int i = 0; i < n / QK_K; ++i) {
        const uint8_t *blk = (const uint8_t *)w_row + (size_t)i * stride;
        /* both layouts start with d, dmin, scales[12]; Q5_K then has qh[32] before qs */
        const block_q4_K *head = (const block_q4_K *)blk;
        const uint8_t *qs = with_high_bit ? ((const block_q5_K *)blk)->qs : head->qs;
        const float d = y[i].d * LC_H2F(head->d);
        const float dmin = -y[i].d * LC_H2F(head->dmin);
        lc_unpack_k4_scales(head->scales, sc, mn);

        /* int32 lane k: min[2k] * bsum32[2k] + min[2k+1] * bsum32[2k+1] (bsum32: per 32 elements) */
        const __m256i q8sums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m128i bsum32 = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
        const __m128i prod = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn)), bsum32);
        const __m128i t = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
        summs = fmaf(dmin, (float)_mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 1))), summs);

        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        __m256i pattern = _mm256_set1_epi16(0x0100); /* selects int16 lane k of sc16 everywhere */
        const __m256i step = _mm256_set1_epi16(0x0202);
        __m256i hbits = with_high_bit ? _mm256_loadu_si256((const __m256i *)((const block_q5_K *)blk)->qh) : _mm256_setzero_si256();
        __m256i isum = _mm256_setzero_si256();
        const int8_t *q8 = y[i].qs;
        for (int j = 0; j < 4; ++j, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(bits, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            if (with_high_bit) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hbits, 4), m16));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hbits, 3), m16));
                hbits = _mm256_srli_epi16(hbits, 2);
            }
            const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            isum = lc_madd_acc_epi16(isum, p_lo, _mm256_shuffle_epi8(sc16, pattern));
            pattern = _mm256_add_epi16(pattern, step);
            isum = lc_madd_acc_epi16(isum, p_hi, _mm256_shuffle_epi8(sc16, pattern));
            pattern = _mm256_add_epi16(pattern, step);
        }
        if (with_high_bit) acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
        else sum_q4 = fmaf((float)lc_hsum_epi32_256(isum), d, sum_q4);
    }
    *s = (with_high_bit ? lc_hsum256(acc) : sum_q4) + summs;
}

/* one Q6_K block's integer products in ggml's 8 int32 lanes (q = u - 32 with u in 0..63: 32 * the
 * scaled bsums taken back at the end); a half's four steps in accumulators of their own, so that
 * VNNI's fused adds make four chains of two, not one of eight (exact sums: the same lanes) */
static inline __m256i q6_K_block_isum(const block_q6_K *x, const block_q8_K *y) {
    const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    const __m256i offset = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)y->bsums));
    __m256i isum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    const int8_t *q8 = y->qs;
    for (int h = 0; h < 2; ++h) {
        __m256i u[4];
        lc_q6_K_unpack_half(x, h, u);
        for (int k = 0; k < 4; ++k, q8 += 32) {
            const __m256i p = _mm256_maddubs_epi16(u[k], _mm256_loadu_si256((const __m256i *)q8));
            isum[k] = lc_madd_acc_epi16(isum[k], p, lc_q6_K_scale_pair(s16, 4 * h + k));
        }
    }
    const __m256i total = _mm256_add_epi32(_mm256_add_epi32(isum[0], isum[1]), _mm256_add_epi32(isum[2], isum[3]));
    return _mm256_sub_epi32(total, _mm256_slli_epi32(offset, 5));
}

void lc_vec_dot_q6_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q6_K *x = (const block_q6_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; ++i) {
        const float d = y[i].d * LC_H2F(x[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q6_K_block_isum(x + i, y + i)), acc);
    }
    *s = lc_hsum256(acc);
}

/* llama.cpp's tiled order (tiled_add) on the same integer sums: their total is the block's exact sum */
void lc_vec_dot_q6_K_tiled(int n, float *s, const void *w_row, const void *x_row) {
    const block_q6_K *x = (const block_q6_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK_K; ++i)
        acc = tiled_add(acc, lc_hsum_epi32_256(q6_K_block_isum(x + i, y + i)), LC_H2F(x[i].d), 0, 0.0f, 0, y[i].d);
    *s = acc;
}

#elif defined(LC_NEON)

/* NEON: signed weight quants times q8 per 16-element group, exact int32 sums, then the same float
 * combination per super-block as the scalar path */

void lc_vec_dot_q2_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q2_K *x = (const block_q2_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sumf = 0.f;
    for (int i = 0; i < n / QK_K; ++i) {
        int summs = 0, isum = 0;
        for (int sb = 0; sb < 16; ++sb) summs += y[i].bsums[sb] * (x[i].scales[sb] >> 4);
        const int8_t *q8 = y[i].qs;
        for (int h = 0; h < 2; ++h) {
            uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * h), b1 = vld1q_u8(x[i].qs + 32 * h + 16);
            for (int j = 0; j < 4; ++j, q8 += 32) {
                const int sb = 8 * h + 2 * j;
                isum += (x[i].scales[sb] & 0xF) * lc_neon_dot16(vreinterpretq_s8_u8(vandq_u8(b0, m3)), vld1q_s8(q8));
                isum += (x[i].scales[sb + 1] & 0xF) * lc_neon_dot16(vreinterpretq_s8_u8(vandq_u8(b1, m3)), vld1q_s8(q8 + 16));
                b0 = vshrq_n_u8(b0, 2);
                b1 = vshrq_n_u8(b1, 2);
            }
        }
        const float dall = y[i].d * LC_H2F(x[i].d);
        const float dmin = y[i].d * LC_H2F(x[i].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

void lc_vec_dot_q3_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q3_K *x = (const block_q3_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    int8_t sc[16];
    float sumf = 0.f;
    for (int i = 0; i < n / QK_K; ++i) {
        lc_unpack_q3_scales(x[i].scales, sc);
        const uint8x16_t hm0 = vld1q_u8(x[i].hmask), hm1 = vld1q_u8(x[i].hmask + 16);
        const int8_t *q8 = y[i].qs;
        int isum = 0;
        for (int h = 0; h < 2; ++h) {
            uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * h), b1 = vld1q_u8(x[i].qs + 32 * h + 16);
            for (int j = 0; j < 4; ++j, q8 += 32) {
                const int chunk = 4 * h + j, sb = 2 * chunk;
                const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << chunk));
                /* low 2 bits minus 4 where the high bit is clear */
                const int8x16_t q0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b0, m3)), vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm0, bit))));
                const int8x16_t q1 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b1, m3)), vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm1, bit))));
                isum += sc[sb] * lc_neon_dot16(q0, vld1q_s8(q8));
                isum += sc[sb + 1] * lc_neon_dot16(q1, vld1q_s8(q8 + 16));
                b0 = vshrq_n_u8(b0, 2);
                b1 = vshrq_n_u8(b1, 2);
            }
        }
        sumf += y[i].d * LC_H2F(x[i].d) * (float)isum;
    }
    *s = sumf;
}

static inline void dot_k4_k5(int n, float *s, const void *w_row, const void *x_row, int with_high_bit) {
    const block_q8_K *y = (const block_q8_K *)x_row;
    const size_t stride = with_high_bit ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const uint8x16_t m4 = vdupq_n_u8(0xF), m16 = vdupq_n_u8(16);
    uint8_t sc[8], mn[8];
    float sumf = 0.f, sum_min = 0.f;
    for (int i = 0; i < n / QK_K; ++i) {
        const uint8_t *blk = (const uint8_t *)w_row + (size_t)i * stride;
        const block_q4_K *head = (const block_q4_K *)blk; /* d, dmin, scales are laid out alike */
        const uint8_t *qs = with_high_bit ? ((const block_q5_K *)blk)->qs : head->qs;
        const uint8_t *qh = with_high_bit ? ((const block_q5_K *)blk)->qh : NULL;
        lc_unpack_k4_scales(head->scales, sc, mn);
        int summs = 0, isum = 0;
        for (int sb = 0; sb < 16; ++sb) summs += y[i].bsums[sb] * mn[sb / 2];
        const uint8x16_t qh0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), qh1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
        for (int sb = 0; sb < 8; ++sb) {
            const uint8x16_t b0 = vld1q_u8(qs + 32 * (sb / 2)), b1 = vld1q_u8(qs + 32 * (sb / 2) + 16);
            uint8x16_t u0 = (sb & 1) ? vshrq_n_u8(b0, 4) : vandq_u8(b0, m4);
            uint8x16_t u1 = (sb & 1) ? vshrq_n_u8(b1, 4) : vandq_u8(b1, m4);
            const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << sb));
            u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(qh0, bit), m16));
            u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(qh1, bit), m16));
            const int8_t *q8 = y[i].qs + 32 * sb;
            isum += sc[sb] * (lc_neon_dot16(vreinterpretq_s8_u8(u0), vld1q_s8(q8)) + lc_neon_dot16(vreinterpretq_s8_u8(u1), vld1q_s8(q8 + 16)));
        }
        const float d = y[i].d * LC_H2F(head->d);
        const float dmin = y[i].d * LC_H2F(head->dmin);
        if (with_high_bit) {
            sumf += d * (float)isum - dmin * (float)summs;
        } else { /* as x86 ggml's repacked Q4_K kernel (see the AVX2 path) */
            sumf = fmaf((float)isum, d, sumf);
            sum_min = fmaf((float)summs, dmin, sum_min);
        }
    }
    *s = sumf - sum_min;
}

void lc_vec_dot_q6_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q6_K *x = (const block_q6_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    const uint8x16_t m4 = vdupq_n_u8(0xF), m48 = vdupq_n_u8(0x30);
    const int8x16_t m32 = vdupq_n_s8(32);
    float sumf = 0.f;
    for (int i = 0; i < n / QK_K; ++i) {
        int isum = 0;
        for (int h = 0; h < 2; ++h) {
            for (int half16 = 0; half16 < 2; ++half16) {  /* 16-byte halves of the 32-wide chunks */
                const int o = 16 * half16;
                const uint8x16_t ql0 = vld1q_u8(x[i].ql + 64 * h + o), ql1 = vld1q_u8(x[i].ql + 64 * h + 32 + o);
                const uint8x16_t qh = vld1q_u8(x[i].qh + 32 * h + o);
                const uint8x16_t u[4] = {
                    vorrq_u8(vandq_u8(ql0, m4), vandq_u8(vshlq_n_u8(qh, 4), m48)),
                    vorrq_u8(vandq_u8(ql1, m4), vandq_u8(vshlq_n_u8(qh, 2), m48)),
                    vorrq_u8(vshrq_n_u8(ql0, 4), vandq_u8(qh, m48)),
                    vorrq_u8(vshrq_n_u8(ql1, 4), vandq_u8(vshrq_n_u8(qh, 2), m48)),
                };
                for (int part = 0; part < 4; ++part) {
                    const int sb = 8 * h + 2 * part + half16;
                    const int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(u[part]), m32);
                    isum += x[i].scales[sb] * lc_neon_dot16(q, vld1q_s8(y[i].qs + 16 * sb));
                }
            }
        }
        sumf += y[i].d * LC_H2F(x[i].d) * (float)isum;
    }
    *s = sumf;
}

#else /* scalar */

void lc_vec_dot_q2_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q2_K *x = (const block_q2_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t sumi[8] = {0}, summs[8];
        for (int k = 0; k < 8; ++k)
            summs[k] = y[i].bsums[2 * k] * (x[i].scales[2 * k] >> 4) + y[i].bsums[2 * k + 1] * (x[i].scales[2 * k + 1] >> 4);
        for (int e = 0; e < QK_K; ++e) {
            const int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            sumi[K_LANE(e)] += (x[i].scales[e / 16] & 0xF) * q * y[i].qs[e];
        }
        const float dall = y[i].d * LC_H2F(x[i].d);
        const float dmin = -y[i].d * LC_H2F(x[i].dmin);
        for (int l = 0; l < 8; ++l) acc[l] = fmaf(dall, (float)sumi[l], fmaf(dmin, (float)summs[l], acc[l]));
    }
    *s = lc_hsum8_ordered(acc);
}

void lc_vec_dot_q3_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q3_K *x = (const block_q3_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t sumi[8];
        q3_K_block_lanes(x + i, y + i, sumi);
        const float d = y[i].d * LC_H2F(x[i].d);
        for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
    }
    *s = lc_hsum8_ordered(acc);
}

/* The scalar paths spell out the lanes of the AVX2 path (ggml's): int32 lane l of a 32-element
 * chunk holds elements 4l .. 4l+3; one fma per super-block and lane, then hsum_float_8. */

/* Q4_K / Q5_K: see the AVX2 path for the two ways the floats add up */
static inline void dot_k4_k5(int n, float *s, const void *w_row, const void *x_row, int with_high_bit) {
    const block_q8_K *y = (const block_q8_K *)x_row;
    const size_t stride = with_high_bit ? sizeof(block_q5_K) : sizeof(block_q4_K);
    uint8_t sc[8], mn[8];
    float acc[8] = {0}, sum_q4 = 0.f, summs = 0.f; /* summs: the (negated) min term */
    for (int i = 0; i < n / QK_K; ++i) {
        const uint8_t *blk = (const uint8_t *)w_row + (size_t)i * stride;
        const block_q4_K *head = (const block_q4_K *)blk; /* d, dmin, scales are laid out alike */
        const uint8_t *qs = with_high_bit ? ((const block_q5_K *)blk)->qs : head->qs;
        const uint8_t *qh = with_high_bit ? ((const block_q5_K *)blk)->qh : NULL;
        lc_unpack_k4_scales(head->scales, sc, mn);
        const float d = y[i].d * LC_H2F(head->d);
        const float dmin = -y[i].d * LC_H2F(head->dmin);
        const int16_t *b = y[i].bsums;
        int mins_total = 0;
        for (int k = 0; k < 4; ++k) mins_total += mn[2 * k] * (b[4 * k] + b[4 * k + 1]) + mn[2 * k + 1] * (b[4 * k + 2] + b[4 * k + 3]);
        summs = fmaf(dmin, (float)mins_total, summs);
        int sumi[8] = {0};
        for (int sb = 0; sb < 8; ++sb) {
            const uint8_t *q = qs + 32 * (sb / 2);
            const int8_t *q8 = y[i].qs + 32 * sb;
            const int shift = 4 * (sb & 1);
            for (int l = 0; l < 8; ++l) {
                int sum = 0;
                for (int k = 4 * l; k < 4 * l + 4; ++k)
                    sum += q8[k] * (((q[k] >> shift) & 0xF) | (qh ? ((qh[k] >> sb) & 1) << 4 : 0));
                sumi[l] += sc[sb] * sum;
            }
        }
        if (with_high_bit) {
            for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
        } else {
            int isum = 0;
            for (int l = 0; l < 8; ++l) isum += sumi[l];
            sum_q4 = fmaf((float)isum, d, sum_q4);
        }
    }
    *s = (with_high_bit ? lc_hsum8_ordered(acc) : sum_q4) + summs;
}

/* Q6_K as unsigned u = q + 32 per 32-element chunk c (scale sc[2c] for lanes 0-3, sc[2c+1] for
 * lanes 4-7), minus 32 * (bsum[2l] sc[2l] + bsum[2l+1] sc[2l+1]) in lane l, as ggml does */
void lc_vec_dot_q6_K(int n, float *s, const void *w_row, const void *x_row) {
    const block_q6_K *x = (const block_q6_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; ++i) {
        const int8_t *sc = x[i].scales;
        int sumi[8];
        for (int l = 0; l < 8; ++l) sumi[l] = -32 * (y[i].bsums[2 * l] * sc[2 * l] + y[i].bsums[2 * l + 1] * sc[2 * l + 1]);
        for (int c = 0; c < 8; ++c) {
            const int half = c / 4, part = c % 4;
            const uint8_t *ql = x[i].ql + 64 * half + 32 * (part & 1);
            const uint8_t *qh = x[i].qh + 32 * half;
            const int8_t *q8 = y[i].qs + 32 * c;
            const int lshift = 4 * (part >> 1), hshift = 2 * part;
            for (int l = 0; l < 8; ++l) {
                int sum = 0;
                for (int k = 4 * l; k < 4 * l + 4; ++k) sum += q8[k] * (((ql[k] >> lshift) & 0xF) | (((qh[k] >> hshift) & 3) << 4));
                sumi[l] += sc[2 * c + l / 4] * sum;
            }
        }
        const float d = y[i].d * LC_H2F(x[i].d);
        for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
    }
    *s = lc_hsum8_ordered(acc);
}

#endif

/* Q2_K and Q3_K in the order of llama.cpp's tiled kernel (batches of 8 tokens or more, where it has
 * not repacked the weight) */
void lc_vec_dot_q2_K_tiled(int n, float *s, const void *w_row, const void *x_row) {
    const block_q2_K *x = (const block_q2_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t isum[2], imin[2];
        q2_K_half_sums(x + i, y + i, isum, imin);
        acc = tiled_add(acc, isum[0] + isum[1], LC_H2F(x[i].d), imin[0] + imin[1], LC_H2F(x[i].dmin), 1, y[i].d);
    }
    *s = acc;
}

void lc_vec_dot_q3_K_tiled(int n, float *s, const void *w_row, const void *x_row) {
    const block_q3_K *x = (const block_q3_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK_K; ++i) acc = tiled_add(acc, q3_K_block_total(x + i, y + i), LC_H2F(x[i].d), 0, 0.0f, 0, y[i].d);
    *s = acc;
}

/* Q2_K in the orders of llama.cpp's repacked x86 kernels (q2_K_8x8, which it runs on AVX-512 CPUs for
 * every Q2_K matrix whose rows are a multiple of 8): the integer scale sum times d * d_x and the mins'
 * sum times dmin * d_x, each fused into its own running sum, the result their difference; per block
 * (the GEMV: one token, and the tokens a batch leaves past its groups of four) or per 128-value half
 * (the GEMM: groups of four tokens) */
static inline void dot_q2_K_repacked(int n, float *s, const void *w_row, const void *x_row, const int per_half) {
    const block_q2_K *x = (const block_q2_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f, acc_min = 0.0f;
    for (int i = 0; i < n / QK_K; ++i) {
        const float scale = LC_H2F(x[i].d) * y[i].d, scale_min = LC_H2F(x[i].dmin) * y[i].d;
        int32_t isum[2], imin[2];
        q2_K_half_sums(x + i, y + i, isum, imin);
        if (!per_half) {
            isum[0] += isum[1];
            imin[0] += imin[1];
        }
        for (int h = 0; h < (per_half ? 2 : 1); ++h) {
            acc = fmaf((float)isum[h], scale, acc);
            acc_min = fmaf((float)imin[h], scale_min, acc_min);
        }
    }
    *s = acc - acc_min;
}

void lc_vec_dot_q2_K_repacked(int n, float *s, const void *w_row, const void *x_row) {
    dot_q2_K_repacked(n, s, w_row, x_row, 0);
}

void lc_vec_dot_q2_K_gemm(int n, float *s, const void *w_row, const void *x_row) {
    dot_q2_K_repacked(n, s, w_row, x_row, 1);
}

/* each ISA path's dot_k4_k5 */
void lc_vec_dot_q4_K(int n, float *s, const void *w_row, const void *x_row) { dot_k4_k5(n, s, w_row, x_row, 0); }
void lc_vec_dot_q5_K(int n, float *s, const void *w_row, const void *x_row) { dot_k4_k5(n, s, w_row, x_row, 1); }

static void dot_k4_k5_tiled(int n, float *s, const void *w_row, const void *x_row, int with_high_bit) {
    const block_q5_K *x5 = (const block_q5_K *)w_row;
    const block_q4_K *x4 = (const block_q4_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f;
    uint8_t sc[8], mn[8];
    for (int i = 0; i < n / QK_K; ++i) {
        const uint8_t *qs = with_high_bit ? x5[i].qs : x4[i].qs;
        lc_unpack_k4_scales(with_high_bit ? x5[i].scales : x4[i].scales, sc, mn);
        int32_t s1 = 0, s2 = 0;
        for (int sb = 0; sb < 8; ++sb) {
            const uint8_t *q = qs + 32 * (sb / 2);
            const int shift = 4 * (sb & 1);
            int32_t sum = 0;
            for (int l = 0; l < 32; ++l) {
                int v = (q[l] >> shift) & 0xF;
                if (with_high_bit) v |= ((x5[i].qh[l] >> sb) & 1) << 4;
                sum += v * y[i].qs[32 * sb + l];
            }
            s1 += (int32_t)sc[sb] * sum;
            s2 += (int32_t)mn[sb] * (y[i].bsums[2 * sb] + y[i].bsums[2 * sb + 1]);
        }
        const lc_fp16_t d = with_high_bit ? x5[i].d : x4[i].d, dmin = with_high_bit ? x5[i].dmin : x4[i].dmin;
        acc = tiled_add(acc, s1, LC_H2F(d), s2, LC_H2F(dmin), 1, y[i].d);
    }
    *s = acc;
}

void lc_vec_dot_q4_K_tiled(int n, float *s, const void *w_row, const void *x_row) { dot_k4_k5_tiled(n, s, w_row, x_row, 0); }
void lc_vec_dot_q5_K_tiled(int n, float *s, const void *w_row, const void *x_row) { dot_k4_k5_tiled(n, s, w_row, x_row, 1); }

#if !defined(LC_AVX2)
void lc_vec_dot_q6_K_tiled(int n, float *s, const void *w_row, const void *x_row) {
    const block_q6_K *x = (const block_q6_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t s1 = 0;
        for (int sb = 0; sb < 16; ++sb) {
            const int chunk = sb / 2, half = chunk / 4, part = chunk % 4, off = 16 * (sb & 1);
            const uint8_t *ql = x[i].ql + 64 * half + 32 * (part & 1) + off;
            const uint8_t *qh = x[i].qh + 32 * half + off;
            const int lshift = 4 * (part >> 1), hshift = 2 * part;
            int32_t sum = 0;
            for (int l = 0; l < 16; ++l)
                sum += ((((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32) * y[i].qs[16 * sb + l];
            s1 += (int32_t)x[i].scales[sb] * sum;
        }
        acc = tiled_add(acc, s1, LC_H2F(x[i].d), 0, 0.0f, 0, y[i].d);
    }
    *s = acc;
}
#endif

/* llama.cpp's repacked Q4_K GEMM (q4_K_8x8, x86), which it uses for each group of four tokens of a
 * batch when it has repacked the weight (rows a multiple of 8): per pair of sub-blocks, the pair's
 * integer sum times (d * d_x), and the mins' sum times (dmin * d_x), each fused into its own running
 * sum; the result is their difference. */
void lc_vec_dot_q4_K_gemm(int n, float *s, const void *w_row, const void *x_row) {
    const block_q4_K *x = (const block_q4_K *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc = 0.0f, acc_min = 0.0f;
    uint8_t sc[8], mn[8];
    for (int i = 0; i < n / QK_K; ++i) {
        lc_unpack_k4_scales(x[i].scales, sc, mn);
        const float scale = LC_H2F(x[i].d) * y[i].d, scale_min = LC_H2F(x[i].dmin) * y[i].d;
        for (int pair = 0; pair < 4; ++pair) {
            int32_t isum = 0, imin = 0;
            for (int sb = 2 * pair; sb < 2 * pair + 2; ++sb) {
                const uint8_t *q = x[i].qs + 32 * (sb / 2);
                const int shift = 4 * (sb & 1);
                int32_t sum = 0;
                for (int l = 0; l < 32; ++l) sum += ((q[l] >> shift) & 0xF) * y[i].qs[32 * sb + l];
                isum += (int32_t)sc[sb] * sum;
                imin += (int32_t)mn[sb] * (y[i].bsums[2 * sb] + y[i].bsums[2 * sb + 1]);
            }
            acc = fmaf((float)isum, scale, acc);
            acc_min = fmaf((float)imin, scale_min, acc_min);
        }
    }
    *s = acc - acc_min;
}
