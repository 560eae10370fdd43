/* This plugin's own type kernels: the activation quantizers (q8_0, q8_1, f16, bf16) and the
 * dot products of the default model's weight types, F32, F16, Q8_0 and Q4_1, with AVX-512,
 * AVX2 and scalar paths. Every path computes llama.cpp's math: per block d_w * d_x * sum(q_w q_x)
 * (+ m_w * s_x for q8_1), activations rounded with rint(x * 127 / amax). */
#include <math.h>
#include <string.h>

#include "lc_kernels.h"
#include "lc_simd.h"

/* ---- f16 rows ------------------------------------------------------------------------------ */

void lc_fp16_to_fp32_row(const lc_fp16_t *x, float *y, int64_t n) {
    int64_t i = 0;
#if defined(LC_AVX512)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
#elif defined(LC_AVX2)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
#endif
    for (; i < n; i++) y[i] = LC_H2F(x[i]);
}

void lc_fp32_to_fp16_row(const float *x, lc_fp16_t *y, int64_t n) {
    int64_t i = 0;
#if defined(LC_AVX512)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#elif defined(LC_AVX2)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) y[i] = lc_fp32_to_fp16(x[i]);
}

/* ---- activation quantizers ----------------------------------------------------------------- */

/* q8 of one block of 32: returns d = amax / 127 and writes q = rint(x * 127 / amax) */
static inline float quantize_block32(const float *x, int8_t *q, int *sum) {
#if defined(LC_AVX512)
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
    _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(i1));
    if (sum) *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    return amax / 127.0f;
#else
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)rintf(x[j] * id);
        s += q[j];
    }
    if (sum) *sum = s;
    return amax / 127.0f;
#endif
}

void lc_quantize_row_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++) y[i].d = lc_fp32_to_fp16(quantize_block32(x + i * QK8_0, y[i].qs, NULL));
}

void lc_quantize_row_q8_1(const float *x, void *vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = quantize_block32(x + i * QK8_1, y[i].qs, &sum);
        y[i].d = lc_fp32_to_fp16(d);
        y[i].s = lc_fp32_to_fp16(d * (float)sum);  /* d before f16 rounding, as ggml */
    }
}

void lc_quantize_row_f16(const float *x, void *y, int64_t n) { lc_fp32_to_fp16_row(x, y, n); }

void lc_quantize_row_bf16(const float *x, void *vy, int64_t n) {
    lc_bf16_t *y = vy;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) y[i] = (lc_bf16_t)((u >> 16) | 64); /* quiet NaN */
        else y[i] = (lc_bf16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
    }
}

/* ---- float dots ---------------------------------------------------------------------------- */

void lc_vec_dot_f32(int n, float *s, const void *w_row, const void *x_row) {
    const float *w = w_row, *x = x_row;
    int i = 0;
    float sum = 0.0f;
#if defined(LC_AVX512)
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    }
    sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#elif defined(LC_AVX2)
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    sum = lc_hsum256(_mm256_add_ps(a0, a1));
#endif
    for (; i < n; i++) sum += w[i] * x[i];
    *s = sum;
}

void lc_vec_dot_f16(int n, float *s, const void *w_row, const void *x_row) {
    const lc_fp16_t *w = w_row, *x = x_row;
    int i = 0;
    float sum = 0.0f;
#if defined(LC_AVX512)
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16))),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16))), a1);
    }
    sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#elif defined(LC_AVX2)
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))), a1);
    }
    sum = lc_hsum256(_mm256_add_ps(a0, a1));
#endif
    for (; i < n; i++) sum += LC_H2F(w[i]) * LC_H2F(x[i]);
    *s = sum;
}

/* ---- Q8_0 x q8_0 --------------------------------------------------------------------------- */

/* NX is a compile-time constant at every call site, so the accumulators stay in registers */
static inline void dot_q8_0_nx(int n, float *s, const block_q8_0 *w, const char *x, size_t xs, const int NX) {
    const int nb = n / QK8_0;
#if defined(LC_AVX512)
    __m512 acc[LC_MULTI_MAX];
    for (int j = 0; j < NX; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i += 2) {
        const int pair = i + 1 < nb;
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)w[i].qs);
        const __m256i w1 = pair ? _mm256_loadu_si256((const __m256i *)w[i + 1].qs) : _mm256_setzero_si256();
        const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
        const __m512i aw = _mm512_abs_epi8(qw);
        const __mmask64 neg = _mm512_movepi8_mask(qw);
        const float d0 = LC_H2F(w[i].d), d1 = pair ? LC_H2F(w[i + 1].d) : 0.0f;
        for (int j = 0; j < NX; j++) {
            const block_q8_0 *y = (const block_q8_0 *)(x + j * xs);
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)y[i].qs);
            const __m256i x1 = pair ? _mm256_loadu_si256((const __m256i *)y[i + 1].qs) : _mm256_setzero_si256();
            __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1);
            qx = _mm512_mask_sub_epi8(qx, neg, _mm512_setzero_si512(), qx);
            const __m512 sumi = _mm512_cvtepi32_ps(lc_dot_us8_512(aw, qx));
            const __m512 dd = _mm512_insertf32x8(_mm512_set1_ps(d0 * LC_H2F(y[i].d)),
                                                 _mm256_set1_ps(pair ? d1 * LC_H2F(y[i + 1].d) : 0.0f), 1);
            acc[j] = _mm512_fmadd_ps(dd, sumi, acc[j]);
        }
    }
    for (int j = 0; j < NX; j++) s[j] = _mm512_reduce_add_ps(acc[j]);
#elif defined(LC_AVX2)
    __m256 acc[LC_MULTI_MAX];
    for (int j = 0; j < NX; j++) acc[j] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256i qw = _mm256_loadu_si256((const __m256i *)w[i].qs);
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        const float dw = LC_H2F(w[i].d);
        for (int j = 0; j < NX; j++) {
            const block_q8_0 *y = (const block_q8_0 *)(x + j * xs);
            const __m256i qx = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[i].qs), qw);
            const __m256 sumi = _mm256_cvtepi32_ps(lc_dot_us8_256(aw, qx));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * LC_H2F(y[i].d)), sumi, acc[j]);
        }
    }
    for (int j = 0; j < NX; j++) s[j] = lc_hsum256(acc[j]);
#else
    for (int j = 0; j < NX; j++) {
        const block_q8_0 *y = (const block_q8_0 *)(x + j * xs);
        float sum = 0.0f;
        for (int i = 0; i < nb; i++) {
            int sumi = 0;
            for (int k = 0; k < QK8_0; k++) sumi += w[i].qs[k] * y[i].qs[k];
            sum += (LC_H2F(w[i].d) * LC_H2F(y[i].d)) * (float)sumi;
        }
        s[j] = sum;
    }
#endif
}

void lc_vec_dot_q8_0_multi(int n, float *s, const void *w_row, const void *x_row, size_t x_stride, int nx) {
    switch (nx) {
    case 1: dot_q8_0_nx(n, s, w_row, x_row, x_stride, 1); break;
    case 2: dot_q8_0_nx(n, s, w_row, x_row, x_stride, 2); break;
    case 3: dot_q8_0_nx(n, s, w_row, x_row, x_stride, 3); break;
    default: dot_q8_0_nx(n, s, w_row, x_row, x_stride, 4); break;
    }
}

void lc_vec_dot_q8_0(int n, float *s, const void *w_row, const void *x_row) {
    lc_vec_dot_q8_0_multi(n, s, w_row, x_row, 0, 1);
}

/* ---- Q4_1 x q8_1 --------------------------------------------------------------------------- */

static inline void dot_q4_1_nx(int n, float *s, const block_q4_1 *w, const char *x, size_t xs, const int NX) {
    const int nb = n / QK4_1;
    float summ[LC_MULTI_MAX];
    for (int j = 0; j < NX; j++) summ[j] = 0.0f;
#if defined(LC_AVX512)
    __m512 acc[LC_MULTI_MAX];
    for (int j = 0; j < NX; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i += 2) {
        const int pair = i + 1 < nb;
        const __m256i w1 = pair ? lc_unpack_nibbles(w[i + 1].qs) : _mm256_setzero_si256();
        const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(lc_unpack_nibbles(w[i].qs)), w1, 1);
        const float d0 = LC_H2F(w[i].d), m0 = LC_H2F(w[i].m);
        const float d1 = pair ? LC_H2F(w[i + 1].d) : 0.0f, m1 = pair ? LC_H2F(w[i + 1].m) : 0.0f;
        for (int j = 0; j < NX; j++) {
            const block_q8_1 *y = (const block_q8_1 *)(x + j * xs);
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)y[i].qs);
            const __m256i x1 = pair ? _mm256_loadu_si256((const __m256i *)y[i + 1].qs) : _mm256_setzero_si256();
            const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1);
            const __m512 sumi = _mm512_cvtepi32_ps(lc_dot_us8_512(qw, qx));
            const __m512 dd = _mm512_insertf32x8(_mm512_set1_ps(d0 * LC_H2F(y[i].d)),
                                                 _mm256_set1_ps(pair ? d1 * LC_H2F(y[i + 1].d) : 0.0f), 1);
            acc[j] = _mm512_fmadd_ps(dd, sumi, acc[j]);
            summ[j] += m0 * LC_H2F(y[i].s);
            if (pair) summ[j] += m1 * LC_H2F(y[i + 1].s);
        }
    }
    for (int j = 0; j < NX; j++) s[j] = _mm512_reduce_add_ps(acc[j]) + summ[j];
#elif defined(LC_AVX2)
    __m256 acc[LC_MULTI_MAX];
    for (int j = 0; j < NX; j++) acc[j] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256i qw = lc_unpack_nibbles(w[i].qs);
        const float dw = LC_H2F(w[i].d), mw = LC_H2F(w[i].m);
        for (int j = 0; j < NX; j++) {
            const block_q8_1 *y = (const block_q8_1 *)(x + j * xs);
            const __m256 sumi = _mm256_cvtepi32_ps(lc_dot_us8_256(qw, _mm256_loadu_si256((const __m256i *)y[i].qs)));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * LC_H2F(y[i].d)), sumi, acc[j]);
            summ[j] += mw * LC_H2F(y[i].s);
        }
    }
    for (int j = 0; j < NX; j++) s[j] = lc_hsum256(acc[j]) + summ[j];
#else
    for (int j = 0; j < NX; j++) {
        const block_q8_1 *y = (const block_q8_1 *)(x + j * xs);
        float sum = 0.0f;
        for (int i = 0; i < nb; i++) {
            int sumi = 0;
            for (int k = 0; k < QK4_1 / 2; k++)
                sumi += (w[i].qs[k] & 0x0F) * y[i].qs[k] + (w[i].qs[k] >> 4) * y[i].qs[k + QK4_1 / 2];
            sum += (LC_H2F(w[i].d) * LC_H2F(y[i].d)) * (float)sumi + LC_H2F(w[i].m) * LC_H2F(y[i].s);
        }
        s[j] = sum + summ[j];
    }
#endif
}

void lc_vec_dot_q4_1_multi(int n, float *s, const void *w_row, const void *x_row, size_t x_stride, int nx) {
    switch (nx) {
    case 1: dot_q4_1_nx(n, s, w_row, x_row, x_stride, 1); break;
    case 2: dot_q4_1_nx(n, s, w_row, x_row, x_stride, 2); break;
    case 3: dot_q4_1_nx(n, s, w_row, x_row, x_stride, 3); break;
    default: dot_q4_1_nx(n, s, w_row, x_row, x_stride, 4); break;
    }
}

void lc_vec_dot_q4_1(int n, float *s, const void *w_row, const void *x_row) {
    lc_vec_dot_q4_1_multi(n, s, w_row, x_row, 0, 1);
}

/* ---- dequantization (get_rows) ------------------------------------------------------------- */

void lc_dequant_row_f32(const void *w_row, float *y, int64_t n) { memcpy(y, w_row, (size_t)n * sizeof(float)); }

void lc_dequant_row_f16(const void *w_row, float *y, int64_t n) { lc_fp16_to_fp32_row(w_row, y, n); }

void lc_dequant_row_q8_0(const void *w_row, float *y, int64_t n) {
    const block_q8_0 *w = w_row;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = LC_H2F(w[i].d);
        for (int k = 0; k < QK8_0; k++) y[i * QK8_0 + k] = w[i].qs[k] * d;
    }
}

void lc_dequant_row_q4_1(const void *w_row, float *y, int64_t n) {
    const block_q4_1 *w = w_row;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = LC_H2F(w[i].d), m = LC_H2F(w[i].m);
        for (int k = 0; k < QK4_1 / 2; k++) {
            y[i * QK4_1 + k] = (w[i].qs[k] & 0x0F) * d + m;
            y[i * QK4_1 + k + QK4_1 / 2] = (w[i].qs[k] >> 4) * d + m;
        }
    }
}
