/* This plugin's own type kernels: the activation quantizers (q8_0, q8_1, f16, bf16) and the
 * dot products of the default model's weight types, F32, F16, Q8_0 and Q4_1, with AVX-512,
 * AVX2 and scalar paths. Every path computes llama.cpp's math: per block d_w * d_x * sum(q_w q_x)
 * (+ m_w * s_x for q8_1), activations rounded with rint(x * 127 / amax). */
#include <math.h>
#include <string.h>

#include "lc_gemv.h"
#include "lc_kernels.h"
#include "lc_kv.h"
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

enum { F16_DOT_LANES = 64 };  /* ggml_vec_dot_f16/f32 (AVX-512): four vectors of 16 */

#if defined(LC_AVX2) && !defined(LC_AVX512)
/* eight values of an f16 or f32 row, as floats */
static inline __m256 load8_f32(const void *row, int type, int64_t i) {
    return type == LC_TYPE_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const lc_fp16_t *)row + i)))
                               : _mm256_loadu_ps((const float *)row + i);
}
#elif defined(LC_AVX512)
static inline __m512 load16_f32(const void *row, int type, int64_t i) {
    return type == LC_TYPE_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const lc_fp16_t *)row + i)))
                               : _mm512_loadu_ps((const float *)row + i);
}
#endif

static inline float value_f32(const void *row, int type, int64_t i) {
    return type == LC_TYPE_F16 ? LC_H2F(((const lc_fp16_t *)row)[i]) : ((const float *)row)[i];
}

/* ggml_vec_dot_f16 (AVX-512: four vectors of 16 lanes, 64 values a step, then the values past a
 * multiple of 64 added in double) of a row k of type k_type (F16, or F32 for ggml_vec_dot_f32's
 * fused tail instead) with q, f32 or f16 (q_type): the AVX2 and scalar builds spell out the same
 * lanes. */
static inline __attribute__((always_inline)) float dot_f16_order(const void *k, int k_type, const void *q,
                                                                 int q_type, int64_t n) {
    const int64_t np = n & ~(int64_t)(F16_DOT_LANES - 1);
    float sum;
#if defined(LC_AVX512)
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < np; i += F16_DOT_LANES)
        for (int a = 0; a < 4; a++)
            acc[a] = _mm512_fmadd_ps(load16_f32(k, k_type, i + 16 * a), load16_f32(q, q_type, i + 16 * a), acc[a]);
    sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
#elif defined(LC_AVX2)
    /* the 64 lanes as eight 256-bit halves: the same fmas, the same reduction */
    __m256 acc[8];
    for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
    for (int64_t i = 0; i < np; i += F16_DOT_LANES)
        for (int a = 0; a < 8; a++)
            acc[a] = _mm256_fmadd_ps(load8_f32(k, k_type, i + 8 * a), load8_f32(q, q_type, i + 8 * a), acc[a]);
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    sum = lc_hsum256(_mm256_add_ps(lo, hi));
#else
    float lanes[F16_DOT_LANES] = {0};
    for (int64_t i = 0; i < np; i += F16_DOT_LANES)
        for (int l = 0; l < F16_DOT_LANES; l++)
            lanes[l] = fmaf(value_f32(k, k_type, i + l), value_f32(q, q_type, i + l), lanes[l]);
    float s16[16];
    for (int l = 0; l < 16; l++) s16[l] = (lanes[l] + lanes[32 + l]) + (lanes[16 + l] + lanes[48 + l]);
    sum = lc_reduce16_ordered(s16);
#endif
    if (k_type != LC_TYPE_F16) {  /* ggml_vec_dot_f32: the values past a multiple of 64 fused in float */
        for (int64_t i = np; i < n; i++) sum = fmaf(value_f32(k, k_type, i), value_f32(q, q_type, i), sum);
        return sum;
    }
    double total = sum;  /* ggml_vec_dot_f16: in ggml_float */
    for (int64_t i = np; i < n; i++) total += (double)(value_f32(k, k_type, i) * value_f32(q, q_type, i));
    return (float)total;
}

/* ggml_vec_dot_f16 of a K row with the f16-rounded query q, or ggml_vec_dot_f32 of an f32 K row with q */
float lc_attn_dot_kq(const void *k, int type, const float *q, int64_t n) {
    return dot_f16_order(k, type, q, LC_TYPE_F32, n);
}

/* The same dot as llamafile's tinyBLAS f16 GEMM, which ggml uses instead when the product has two
 * or more columns (a batch of queries): one 16-lane accumulator over the row, then
 * _mm512_reduce_add_ps. */
float lc_attn_dot_kq_tinyblas(const void *k, int type, const float *q, int64_t n) {
    const lc_fp16_t *kh = k;
    const float *kf = k;
    float lanes[16] = {0};
    int64_t i = 0;
#if defined(LC_AVX512)
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        const __m512 kv = type == LC_TYPE_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kh + i)))
                                              : _mm512_loadu_ps(kf + i);
        acc = _mm512_fmadd_ps(kv, _mm512_loadu_ps(q + i), acc);
    }
    _mm512_storeu_ps(lanes, acc);
#elif defined(LC_AVX2)
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        lo = _mm256_fmadd_ps(load8_f32(k, type, i), _mm256_loadu_ps(q + i), lo);
        hi = _mm256_fmadd_ps(load8_f32(k, type, i + 8), _mm256_loadu_ps(q + i + 8), hi);
    }
    _mm256_storeu_ps(lanes, lo);
    _mm256_storeu_ps(lanes + 8, hi);
#endif
    for (; i < n; i += 16)
        for (int l = 0; l < 16 && i + l < n; l++)
            lanes[l] = fmaf(type == LC_TYPE_F16 ? LC_H2F(kh[i + l]) : kf[i + l], q[i + l], lanes[l]);
    return lc_reduce16_ordered(lanes);
}

/* ggml_vec_dot_f32 (ggml's one-row f32 product: decode, mul_mat_id) and llamafile's tinyBLAS, which
 * ggml uses for an f32 weight times two or more activation rows: the orders of attention's f32 scores */
void lc_vec_dot_f32(int n, float *s, const void *w_row, const void *x_row) {
    /* past the whole 64s, the oracle's compiler vectorized ggml's tail loop: 16 and then 8 products
     * at a time, each rounded and added in order; the last few are fused in order */
    const float *w = w_row, *x = x_row;
    int64_t i = n & ~(int64_t)(F16_DOT_LANES - 1);
    float sum = i ? lc_attn_dot_kq(w, LC_TYPE_F32, x, i) : 0.0f;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            const float product = w[i + k] * x[i + k];
            sum += product;
        }
    if (i + 8 <= n) {
        for (int k = 0; k < 8; k++) {
            const float product = w[i + k] * x[i + k];
            sum += product;
        }
        i += 8;
    }
    for (; i < n; i++) sum = fmaf(w[i], x[i], sum);
    *s = sum;
}

void lc_vec_dot_f32_tinyblas(int n, float *s, const void *w_row, const void *x_row) {
    *s = lc_attn_dot_kq_tinyblas(w_row, LC_TYPE_F32, x_row, n);
}

void lc_vec_dot_f16(int n, float *s, const void *w_row, const void *x_row) {
    *s = dot_f16_order(w_row, LC_TYPE_F16, x_row, LC_TYPE_F16, n);
}

/* An f16 weight times two or more f16-rounded activation rows, as llamafile's tinyBLAS f16 GEMM
 * (which ggml uses then, when the rows are whole vectors of 16): per output one 16-lane accumulator
 * over the row, reduced as _mm512_reduce_add_ps. The activations come as floats (converted once per
 * batch by the caller, not once per weight row); each weight row is read once for the nx
 * (<= LC_TILE_X) activation rows; the nw rows go one after the other (two at once ran slower on Zen 4). */
static inline __attribute__((always_inline)) void tile_f16_tinyblas(int n, float *y, size_t ldy, const char *w, size_t w_stride,
                                     const char *x, size_t x_stride, const int NW, const int NX) {
    for (int r = 0; r < NW; r++) {
        const lc_fp16_t *wr = (const lc_fp16_t *)(w + r * w_stride);
#if defined(LC_AVX512)
        __m512 acc[LC_TILE_X];
        for (int j = 0; j < NX; j++) acc[j] = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16) {
            const __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + i)));
            for (int j = 0; j < NX; j++)
                acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps((const float *)(x + j * x_stride) + i), acc[j]);
        }
        /* lc_reduce16_ordered's sums in registers: the halves added, then lc_hsum256's steps */
        for (int j = 0; j < NX; j++)
            y[j * ldy + r] = lc_hsum256(_mm256_add_ps(_mm512_castps512_ps256(acc[j]), _mm512_extractf32x8_ps(acc[j], 1)));
#elif defined(LC_AVX2)
        /* the same 16 lanes as two 256-bit halves: the same fmas, the same final reduction */
        __m256 lo[LC_TILE_X], hi[LC_TILE_X];
        for (int j = 0; j < NX; j++) lo[j] = hi[j] = _mm256_setzero_ps();
        for (int i = 0; i < n; i += 16) {
            const __m256 w_lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + i)));
            const __m256 w_hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + i + 8)));
            for (int j = 0; j < NX; j++) {
                const float *xr = (const float *)(x + j * x_stride) + i;
                lo[j] = _mm256_fmadd_ps(w_lo, _mm256_loadu_ps(xr), lo[j]);
                hi[j] = _mm256_fmadd_ps(w_hi, _mm256_loadu_ps(xr + 8), hi[j]);
            }
        }
        for (int j = 0; j < NX; j++) y[j * ldy + r] = lc_hsum256(_mm256_add_ps(lo[j], hi[j]));
#else
        for (int j = 0; j < NX; j++) {
            const float *xr = (const float *)(x + j * x_stride);
            float lanes[16] = {0};
            for (int i = 0; i < n; i += 16)
                for (int l = 0; l < 16; l++) lanes[l] = fmaf(LC_H2F(wr[i + l]), xr[i + l], lanes[l]);
            y[j * ldy + r] = lc_reduce16_ordered(lanes);
        }
#endif
    }
}

/* ---- quantized tiles ------------------------------------------------------------------------
 * A tile is nw (<= 2) weight rows times nx (<= LC_TILE_X) activation rows. Each of its dots adds
 * up exactly as ggml's AVX2 vec_dot does (8 float lanes, one fma per 32-block, hsum_float_8, then
 * the q8_1 min term), whichever ISA runs it: the AVX-512 path (Q4_1, two or more tokens) puts two
 * weight rows in the two halves of a register, the scalar path spells the 8 lanes out. For one token
 * the 256-bit path streams the weights faster (measured on Zen 4: 1.3x for Q4_1, 4x for Q8_0). */

#define LC_TILE_BODY(NAME, NW, NX) NAME(n, y, ldy, w, w_stride, x, x_stride, NW, NX)
#define LC_TILE_DISPATCH(NAME)                                                                     \
    if (nw == 2) {                                                                                 \
        switch (nx) {                                                                              \
        case 1: LC_TILE_BODY(NAME, 2, 1); break;                                                   \
        case 2: LC_TILE_BODY(NAME, 2, 2); break;                                                   \
        case 3: LC_TILE_BODY(NAME, 2, 3); break;                                                   \
        default: LC_TILE_BODY(NAME, 2, 4); break;                                                  \
        }                                                                                          \
    } else {                                                                                       \
        switch (nx) {                                                                              \
        case 1: LC_TILE_BODY(NAME, 1, 1); break;                                                   \
        case 2: LC_TILE_BODY(NAME, 1, 2); break;                                                   \
        case 3: LC_TILE_BODY(NAME, 1, 3); break;                                                   \
        default: LC_TILE_BODY(NAME, 1, 4); break;                                                  \
        }                                                                                          \
    }

#if !defined(LC_AVX512) && !defined(LC_AVX2)
/* lane l of ggml's 8-lane integer dot of a 32-block: elements 4l .. 4l+3 */
static inline void lanes_fma(float *acc, float d, const int *sumi) {
    for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
}
#endif

#if defined(LC_AVX2)
/* one 32-block of one weight row against NX tokens, fused into their 8-lane sums and min terms */
static inline __attribute__((always_inline)) void q4_1_step(const block_q4_1 *wb, const char *x, size_t x_stride, int i,
                                                            __m256 *acc, float *summ, const int NX) {
    const __m256i qw = lc_unpack_nibbles(wb->qs);
    const float dw = LC_H2F(wb->d), mw = LC_H2F(wb->m);
    for (int j = 0; j < NX; j++) {
        const block_q8_1 *xb = (const block_q8_1 *)(x + j * x_stride) + i;
        const __m256 xy = _mm256_cvtepi32_ps(lc_dot_us8_256(qw, _mm256_loadu_si256((const __m256i *)xb->qs)));
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * LC_H2F(xb->d)), xy, acc[j]);
        summ[j] += mw * LC_H2F(xb->s);
    }
}
#endif

static inline __attribute__((always_inline)) void tile_q8_0(int n, float *y, size_t ldy, const char *w, size_t w_stride,
                             const char *x, size_t x_stride, const int NW, const int NX) {
    const int nb = n / QK8_0;
    const block_q8_0 *w0 = (const block_q8_0 *)w, *w1 = (const block_q8_0 *)(w + (NW > 1 ? w_stride : 0));
#if defined(LC_AVX2)
    for (int r = 0; r < NW; r++) {
        const block_q8_0 *wr = r ? w1 : w0;
        __m256 acc[LC_TILE_X];
        for (int j = 0; j < NX; j++) acc[j] = _mm256_setzero_ps();
        for (int i = 0; i < nb; i++) {
            const __m256i qw = _mm256_loadu_si256((const __m256i *)wr[i].qs);
            const __m256i aw = _mm256_sign_epi8(qw, qw);
            const float dw = LC_H2F(wr[i].d);
            for (int j = 0; j < NX; j++) {
                const block_q8_0 *xb = (const block_q8_0 *)(x + j * x_stride) + i;
                const __m256i qx = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xb->qs), qw);
                const __m256 xy = _mm256_cvtepi32_ps(lc_dot_us8_256(aw, qx));
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * LC_H2F(xb->d)), xy, acc[j]);
            }
        }
        for (int j = 0; j < NX; j++) y[j * ldy + r] = lc_hsum256(acc[j]);
    }
#else
    for (int r = 0; r < NW; r++) {
        const block_q8_0 *wr = r ? w1 : w0;
        for (int j = 0; j < NX; j++) {
            const block_q8_0 *xr = (const block_q8_0 *)(x + j * x_stride);
            float acc[8] = {0};
            for (int i = 0; i < nb; i++) {
                int sumi[8];
                for (int l = 0; l < 8; l++) {
                    sumi[l] = 0;
                    for (int k = 4 * l; k < 4 * l + 4; k++) sumi[l] += wr[i].qs[k] * xr[i].qs[k];
                }
                lanes_fma(acc, LC_H2F(wr[i].d) * LC_H2F(xr[i].d), sumi);
            }
            y[j * ldy + r] = lc_hsum8_ordered(acc);
        }
    }
#endif
}

static inline __attribute__((always_inline)) void tile_q4_1(int n, float *y, size_t ldy, const char *w, size_t w_stride,
                             const char *x, size_t x_stride, const int NW, const int NX) {
    const int nb = n / QK4_1;
    const block_q4_1 *w0 = (const block_q4_1 *)w, *w1 = (const block_q4_1 *)(w + (NW > 1 ? w_stride : 0));
#if defined(LC_AVX512)
  if (NX > 1) {  /* one token streams faster through the 256-bit path below */
    __m512 acc[LC_TILE_X];
    float summ0[LC_TILE_X], summ1[LC_TILE_X];
    for (int j = 0; j < NX; j++) {
        acc[j] = _mm512_setzero_ps();
        summ0[j] = summ1[j] = 0.0f;
    }
    for (int i = 0; i < nb; i++) {
        const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(lc_unpack_nibbles(w0[i].qs)),
                                              lc_unpack_nibbles(w1[i].qs), 1);
        const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(LC_H2F(w0[i].d)), _mm256_set1_ps(LC_H2F(w1[i].d)), 1);
        const float m0 = LC_H2F(w0[i].m), m1 = LC_H2F(w1[i].m);
        for (int j = 0; j < NX; j++) {
            const block_q8_1 *xb = (const block_q8_1 *)(x + j * x_stride) + i;
            const __m512i qx = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xb->qs));
            const __m512 xy = _mm512_cvtepi32_ps(lc_dot_us8_512(qw, qx));
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(LC_H2F(xb->d))), xy, acc[j]);
            const float s = LC_H2F(xb->s);
            summ0[j] += m0 * s;
            if (NW > 1) summ1[j] += m1 * s;
        }
    }
    for (int j = 0; j < NX; j++) {
        y[j * ldy] = lc_hsum256(_mm512_castps512_ps256(acc[j])) + summ0[j];
        if (NW > 1) y[j * ldy + 1] = lc_hsum256(_mm512_extractf32x8_ps(acc[j], 1)) + summ1[j];
    }
    return;
  }
#endif
#if defined(LC_AVX2)
    /* the two weight rows side by side: each output's chain of fmas as ggml's, two run at once (the
     * weights of one token stream ~10% faster from memory on Zen 3; Q8_0's blocks, twice as long, ran
     * slower so) */
    __m256 acc0[LC_TILE_X], acc1[LC_TILE_X];
    float summ0[LC_TILE_X], summ1[LC_TILE_X];
    for (int j = 0; j < NX; j++) {
        acc0[j] = acc1[j] = _mm256_setzero_ps();
        summ0[j] = summ1[j] = 0.0f;
    }
    for (int i = 0; i < nb; i++) {
        q4_1_step(w0 + i, x, x_stride, i, acc0, summ0, NX);
        if (NW > 1) q4_1_step(w1 + i, x, x_stride, i, acc1, summ1, NX);
    }
    for (int j = 0; j < NX; j++) {
        y[j * ldy] = lc_hsum256(acc0[j]) + summ0[j];
        if (NW > 1) y[j * ldy + 1] = lc_hsum256(acc1[j]) + summ1[j];
    }
#else
    for (int r = 0; r < NW; r++) {
        const block_q4_1 *wr = r ? w1 : w0;
        for (int j = 0; j < NX; j++) {
            const block_q8_1 *xr = (const block_q8_1 *)(x + j * x_stride);
            float acc[8] = {0}, summ = 0.0f;
            for (int i = 0; i < nb; i++) {
                int sumi[8];
                for (int l = 0; l < 8; l++) {
                    sumi[l] = 0;
                    for (int k = 4 * l; k < 4 * l + 4; k++) {
                        const int q = k < 16 ? (wr[i].qs[k] & 0x0F) : (wr[i].qs[k - 16] >> 4);
                        sumi[l] += q * xr[i].qs[k];
                    }
                }
                lanes_fma(acc, LC_H2F(wr[i].d) * LC_H2F(xr[i].d), sumi);
                summ += LC_H2F(wr[i].m) * LC_H2F(xr[i].s);
            }
            y[j * ldy + r] = lc_hsum8_ordered(acc) + summ;
        }
    }
#endif
}

void lc_tile_q8_0(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw,
                  const void *x, size_t x_stride, int nx) {
    LC_TILE_DISPATCH(tile_q8_0)
}

void lc_tile_q4_1(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw,
                  const void *x, size_t x_stride, int nx) {
    LC_TILE_DISPATCH(tile_q4_1)
}

void lc_tile_f16_tinyblas(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw,
                          const void *x, size_t x_stride, int nx) {
    LC_TILE_DISPATCH(tile_f16_tinyblas)
}

void lc_vec_dot_q8_0(int n, float *s, const void *w_row, const void *x_row) {
    lc_tile_q8_0(n, s, 1, w_row, 0, 1, x_row, 0, 1);
}

void lc_vec_dot_q4_1(int n, float *s, const void *w_row, const void *x_row) {
    lc_tile_q4_1(n, s, 1, w_row, 0, 1, x_row, 0, 1);
}

/* ---- one token times many rows (decode's GEMV) ---------------------------------------------
 * Each row's dot is vec_dot's: the same 8-lane fma per 32-block, hsum_float_8, then (Q4_1) the min
 * term. AVX2 and AVX-512 builds take four rows at a time: the token's block loaded once for the four,
 * four independent chains of fmas, the four rows' block scales converted and multiplied in one vector
 * and the four hsums done together, lane by lane. llama.cpp runs vec_dot row by row for both types
 * (repack.cpp has no x86 layout for them). Each block step asks for its share of the next group's
 * bytes (lc_prefetch_step_share). Zen 4, rows of 1024 from RAM, one thread, ns a row: Q4_1 29 (a
 * burst for the next group before each, as before: 80-90; the two-row tile: 125), Q8_0 33-35 (burst
 * 80; row by row 42-50); the AVX2 build alike. */

/* where the next group's share starts past it (lc_prefetch_step_share) */
enum { GEMV_PREFETCH_PAST_GROUP = 1024 };

#if defined(LC_AVX2)

static void gemv4_q8_0(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_0 *x = vx;
    const uint8_t *ahead = w + LC_GEMV_ROWS * row_bytes + lc_prefetch_ahead_bytes(GEMV_PREFETCH_PAST_GROUP, prefetch);
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    _Alignas(16) float scale[LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; i++) {
        if (prefetch) lc_prefetch_step_share(ahead, i, LC_GEMV_ROWS * sizeof(block_q8_0));
        const block_q8_0 *b[LC_GEMV_ROWS];
        for (int r = 0; r < LC_GEMV_ROWS; r++) b[r] = (const block_q8_0 *)(w + (size_t)r * row_bytes) + i;
        const void *d[LC_GEMV_ROWS] = {&b[0]->d, &b[1]->d, &b[2]->d, &b[3]->d};
        _mm_store_ps(scale, _mm_mul_ps(_mm_cvtph_ps(lc_gather4_u16(d)), _mm_set1_ps(LC_H2F(x[i].d))));
        /* vec_dot's unsigned side is |w| and its signed one x with w's sign; here |x|, taken once for the
         * four rows, and w with x's sign: the same product of each pair of bytes, so the same sums */
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i abs_x = _mm256_sign_epi8(qx, qx);
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; r++) {
            const __m256i qw = _mm256_loadu_si256((const __m256i *)b[r]->qs);
            const __m256 xy = _mm256_cvtepi32_ps(lc_dot_us8_256(abs_x, _mm256_sign_epi8(qw, qx)));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(scale + r), xy, acc[r]);
        }
    }
    _mm_storeu_ps(y, lc_hsum8_rows4(acc));
}

/* a Q4_1 block's nibbles (lc_unpack_nibbles, from one broadcast load) */
static inline __m256i q4_1_values(const uint8_t *block) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const block_q4_1 *)block)->qs));
    return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

static void gemv4_q4_1(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    lc_gemv4_with_min(nb, w, row_bytes, vx, y, prefetch, sizeof(block_q4_1), GEMV_PREFETCH_PAST_GROUP, q4_1_values);
}

#define GEMV4(name) gemv4_##name

#else

#define GEMV4(name) NULL  /* row by row */

#endif

void lc_gemv_q8_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK8_0, GEMV4(q8_0), lc_vec_dot_q8_0, 0, prefetch);
}

void lc_gemv_q4_1(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK4_1, GEMV4(q4_1), lc_vec_dot_q4_1, 0, prefetch);
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
