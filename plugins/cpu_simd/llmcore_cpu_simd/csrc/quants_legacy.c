/* Legacy block kernels: Q4_0 / Q5_0 (x Q8_0), Q5_1 (x Q8_1), BF16 (x BF16) and their row
 * dequantizers, with ggml's numerics (ggml-cpu/quants.c, ggml-cpu/vec.cpp, ggml-quants.c):
 *   q4_0/q5_0: sum_b d_w*d_x * sum(q_w*q_x)          q5_1: sum_b d_w*d_x * sum(q_w*q_x) + m_w*s_x
 *   bf16: products accumulated in fp32 lanes, lane sums and tail in double.
 * The SIMD paths rely on ggml's quantizers never producing -128 in Q8_0/Q8_1 activations. */
#include "lc_quants_legacy.h"
#include "lc_gemv_nibbles.h"
#include "lc_kernels.h"    /* LC_TILE_X */
#include "lc_quants_kq.h" /* lc_neon_dot16 */

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- dequantizers: must round exactly like ggml's reference C, so no fp contraction ---- */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

void lc_dequant_row_q4_0(const void *w_row, float *y, int64_t n) {
    const block_q4_0 *x = (const block_q4_0 *)w_row;
    for (int64_t i = 0; i < n / QK4_0; ++i, y += QK4_0) {
        const float d = LC_H2F(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            y[j] = (float)((x[i].qs[j] & 0xF) - 8) * d;
            y[j + QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void lc_dequant_row_q5_0(const void *w_row, float *y, int64_t n) {
    const block_q5_0 *x = (const block_q5_0 *)w_row;
    for (int64_t i = 0; i < n / QK5_0; ++i, y += QK5_0) {
        const float d = LC_H2F(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int v0 = ((x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16;
            const int v1 = ((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            y[j] = (float)v0 * d;
            y[j + QK5_0 / 2] = (float)v1 * d;
        }
    }
}

void lc_dequant_row_q5_1(const void *w_row, float *y, int64_t n) {
    const block_q5_1 *x = (const block_q5_1 *)w_row;
    for (int64_t i = 0; i < n / QK5_1; ++i, y += QK5_1) {
        const float d = LC_H2F(x[i].d), m = LC_H2F(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int v0 = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            const int v1 = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (float)v0 * d + m;
            y[j + QK5_1 / 2] = (float)v1 * d + m;
        }
    }
}

#if defined(__clang__)
#pragma clang fp contract(on)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

void lc_dequant_row_bf16(const void *w_row, float *y, int64_t n) {
    const lc_bf16_t *x = (const lc_bf16_t *)w_row;
    for (int64_t i = 0; i < n; ++i) y[i] = lc_bf16_to_fp32(x[i]);
}

/* ---- dot products ---- */

#if defined(LC_AVX2)

/* byte i = 0xFF where bit i of the Q5 high-bit word is set */
static inline __m256i bytes_from_bits_32(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, sizeof(bits));
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* int32 lanes of sum(a_signed * b_signed) over groups of 4 bytes (|a| <= 127, b != -128) */
static inline __m256i dot_i8_i8(__m256i a, __m256i b) {
    return lc_dot_us8_256(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

void lc_vec_dot_q4_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q4_0 *x = (const block_q4_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK8_0; ++i) {
        const __m256i q = _mm256_sub_epi8(lc_unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
        const __m256i sumi = dot_i8_i8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        const float d = LC_H2F(x[i].d) * LC_H2F(y[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = lc_hsum256(acc);
}

/* Q5_0's values plus 16, (nibble | high bit << 4) in 0..31, as unsigned bytes in ggml's element order:
 * its dots with q8_0 bytes, less 16 times their sums (minus_bias_sums), are ggml's integer sums of q * x
 * (with fewer operations than ggml's signed form; AVX-512 sets the high bits from a mask register) */
static inline __m256i q5_plus16(const uint8_t *qs, const uint8_t *qh) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i nibbles = _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
#if defined(LC_AVX512)
    uint32_t bits;
    memcpy(&bits, qh, sizeof(bits));
    return _mm256_mask_add_epi8(nibbles, (__mmask32)bits, nibbles, _mm256_set1_epi8(16));
#else
    return _mm256_or_si256(nibbles, _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(16)));
#endif
}

static inline __m256i q5_0_plus16(const block_q5_0 *b) { return q5_plus16(b->qs, b->qh); }

/* -bias times the sum of each 4 bytes of x: the int32 lanes that turn dots with q + bias into dots
 * with q */
static inline __m256i minus_bias_sums(int8_t bias, __m256i qx) {
    return _mm256_sub_epi32(_mm256_setzero_si256(), lc_dot_us8_256(_mm256_set1_epi8(bias), qx));
}

/* the exact integer dot of a Q4_0 block with a Q8_0 block */
static inline int32_t q4_0_block_isum(const block_q4_0 *x, const block_q8_0 *y) {
    const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    return lc_hsum_epi32_256(lc_dot_us8_acc_256(minus_bias_sums(8, qy), lc_unpack_nibbles(x->qs), qy));
}

void lc_vec_dot_q5_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q5_0 *x = (const block_q5_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK8_0; ++i) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i sumi = lc_dot_us8_acc_256(minus_bias_sums(16, qy), q5_0_plus16(x + i), qy);
        const float d = LC_H2F(x[i].d) * LC_H2F(y[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = lc_hsum256(acc);
}

/* the next group's bytes asked for this far past its start (lc_prefetch_step_share). Q5_0, Zen 4, weights
 * not in cache, one thread, calls of 24-192 rows of k = 576 or 1536: 21-23 GB/s; a burst for the next
 * group before each, 16-20 GB/s */
enum { BIASED_PREFETCH_PAST_GROUP = 1024 };

/* Four rows of lc_vec_dot_q5_0: the quants plus 16 (unsigned bytes) meet the token's block (one
 * multiply-add of bytes a row with VNNI), 16 times the block's sums taken back and the scale made once
 * for the four rows: vec_dot's int32 lanes, each fused into its row's 8 float lanes, then hsum, so its
 * bits; four independent chains */
static void gemv4_q5_0(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_0 *x = vx;
    const uint8_t *ahead = w + LC_GEMV_ROWS * row_bytes + lc_prefetch_ahead_bytes(BIASED_PREFETCH_PAST_GROUP, prefetch);
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    _Alignas(16) float scale[LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; i++) {
        if (prefetch) lc_prefetch_step_share(ahead, i, LC_GEMV_ROWS * sizeof(block_q5_0));
        const block_q5_0 *b[LC_GEMV_ROWS];  /* each block opens with its f16 scale */
        for (int r = 0; r < LC_GEMV_ROWS; r++) b[r] = (const block_q5_0 *)(w + (size_t)r * row_bytes) + i;
        const void *d[LC_GEMV_ROWS] = {b[0], b[1], b[2], b[3]};
        _mm_store_ps(scale, _mm_mul_ps(_mm_cvtph_ps(lc_gather4_u16(d)), _mm_set1_ps(LC_H2F(x[i].d))));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i offset = minus_bias_sums(16, qx);
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; r++) {
            const __m256 xy = _mm256_cvtepi32_ps(lc_dot_us8_acc_256(offset, q5_0_plus16(b[r]), qx));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(scale + r), xy, acc[r]);
        }
    }
    _mm_storeu_ps(y, lc_hsum8_rows4(acc));
}

/* a Q5_1 block's quants (nibbles and fifth bits) */
static inline __m256i q5_1_values(const uint8_t *block) {
    const block_q5_1 *b = (const block_q5_1 *)block;
    return q5_plus16(b->qs, b->qh);
}

/* Four rows of lc_vec_dot_q5_1: Q4_1's GEMV with the fifth bits */
static void gemv4_q5_1(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    lc_gemv4_with_min(nb, w, row_bytes, vx, y, prefetch, sizeof(block_q5_1), BIASED_PREFETCH_PAST_GROUP, q5_1_values);
}

void lc_gemv_q5_1(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK5_1, gemv4_q5_1, lc_vec_dot_q5_1, 0, prefetch);
}

/* Q4_0's values as 16 levels picked by its nibbles */
static const int8_t q4_0_levels[16] = {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};

static void gemv4_q4_0_repacked(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    lc_gemv4_nibble_levels(nb, w, row_bytes, vx, y, prefetch, q4_0_levels, sizeof(block_q4_0), offsetof(block_q4_0, qs),
                           lc_f16_scales4);
}

void lc_gemv_q5_0(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK5_0, gemv4_q5_0, lc_vec_dot_q5_0, 0, prefetch);
}

void lc_gemv_q4_0_repacked(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y,
                           int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK4_0, gemv4_q4_0_repacked, lc_vec_dot_q4_0_repacked, 0, prefetch);
}

/* lc_vec_dot_q5_0's operations for a tile of nw (<= 2) weight rows by nx (<= LC_TILE_X) tokens:
 * each weight block is unpacked once for all the tile's tokens */
void lc_tile_q5_0(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x, size_t x_stride,
                  int nx) {
    for (int r = 0; r < nw; r++) {
        const block_q5_0 *wr = (const block_q5_0 *)((const char *)w + r * w_stride);
        __m256 acc[LC_TILE_X];
        for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps();
        for (int i = 0; i < n / QK8_0; ++i) {
            const __m256i u = q5_0_plus16(wr + i);
            const float dw = LC_H2F(wr[i].d);
            for (int j = 0; j < nx; j++) {
                const block_q8_0 *xb = (const block_q8_0 *)((const char *)x + j * x_stride) + i;
                const __m256i qx = _mm256_loadu_si256((const __m256i *)xb->qs);
                const __m256i sumi = lc_dot_us8_acc_256(minus_bias_sums(16, qx), u, qx);
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * LC_H2F(xb->d)), _mm256_cvtepi32_ps(sumi), acc[j]);
            }
        }
        for (int j = 0; j < nx; j++) y[j * ldy + r] = lc_hsum256(acc[j]);
    }
}

void lc_vec_dot_q5_1(int n, float *s, const void *w_row, const void *x_row) {
    const block_q5_1 *x = (const block_q5_1 *)w_row;
    const block_q8_1 *y = (const block_q8_1 *)x_row;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.f;
    for (int i = 0; i < n / QK8_1; ++i) {
        const __m256i hi = _mm256_and_si256(bytes_from_bits_32(x[i].qh), _mm256_set1_epi8(0x10));
        const __m256i u = _mm256_or_si256(lc_unpack_nibbles(x[i].qs), hi);
        const __m256i sumi = lc_dot_us8_256(u, _mm256_loadu_si256((const __m256i *)y[i].qs));
        const float d = LC_H2F(x[i].d) * LC_H2F(y[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        summ += LC_H2F(x[i].m) * LC_H2F(y[i].s);
    }
    *s = lc_hsum256(acc) + summ;
}

#elif defined(LC_NEON)

/* 16 bytes = 0xFF where bit i of the two Q5 high-bit bytes (elements 8*k .. 8*k+15) is set */
static inline uint8x16_t bytes_from_bits_16(uint8_t lo, uint8_t hi) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vtstq_u8(vcombine_u8(vdup_n_u8(lo), vdup_n_u8(hi)), vld1q_u8(bit));
}

/* the exact integer dot of a Q4_0 block with a Q8_0 block */
static inline int32_t q4_0_block_isum(const block_q4_0 *x, const block_q8_0 *y) {
    const uint8x16_t b = vld1q_u8(x->qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0xF))), vdupq_n_s8(8));
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), vdupq_n_s8(8));
    return lc_neon_dot16(lo, vld1q_s8(y->qs)) + lc_neon_dot16(hi, vld1q_s8(y->qs + 16));
}

/* NEON paths keep the scalar float combination per block; only the integer sums are vectorized */
void lc_vec_dot_q4_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q4_0 *x = (const block_q4_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float sumf = 0.f;
    for (int i = 0; i < n / QK8_0; ++i) sumf += (float)q4_0_block_isum(x + i, y + i) * LC_H2F(x[i].d) * LC_H2F(y[i].d);
    *s = sumf;
}

void lc_vec_dot_q5_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q5_0 *x = (const block_q5_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    const uint8x16_t m4 = vdupq_n_u8(0xF), m16 = vdupq_n_u8(16);
    const int8x16_t s16 = vdupq_n_s8(16);
    float sumf = 0.f;
    for (int i = 0; i < n / QK8_0; ++i) {
        const uint8x16_t b = vld1q_u8(x[i].qs);
        const uint8x16_t h0 = vandq_u8(bytes_from_bits_16(x[i].qh[0], x[i].qh[1]), m16);
        const uint8x16_t h1 = vandq_u8(bytes_from_bits_16(x[i].qh[2], x[i].qh[3]), m16);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b, m4), h0)), s16);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b, 4), h1)), s16);
        const int sumi = lc_neon_dot16(lo, vld1q_s8(y[i].qs)) + lc_neon_dot16(hi, vld1q_s8(y[i].qs + 16));
        sumf += (LC_H2F(x[i].d) * LC_H2F(y[i].d)) * (float)sumi;
    }
    *s = sumf;
}

void lc_vec_dot_q5_1(int n, float *s, const void *w_row, const void *x_row) {
    const block_q5_1 *x = (const block_q5_1 *)w_row;
    const block_q8_1 *y = (const block_q8_1 *)x_row;
    const uint8x16_t m4 = vdupq_n_u8(0xF), m16 = vdupq_n_u8(16);
    float sumf = 0.f;
    for (int i = 0; i < n / QK8_1; ++i) {
        const uint8x16_t b = vld1q_u8(x[i].qs);
        const uint8x16_t h0 = vandq_u8(bytes_from_bits_16(x[i].qh[0], x[i].qh[1]), m16);
        const uint8x16_t h1 = vandq_u8(bytes_from_bits_16(x[i].qh[2], x[i].qh[3]), m16);
        const int8x16_t lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b, m4), h0));
        const int8x16_t hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b, 4), h1));
        const int sumi = lc_neon_dot16(lo, vld1q_s8(y[i].qs)) + lc_neon_dot16(hi, vld1q_s8(y[i].qs + 16));
        sumf += (LC_H2F(x[i].d) * LC_H2F(y[i].d)) * (float)sumi
              + LC_H2F(x[i].m) * LC_H2F(y[i].s);
    }
    *s = sumf;
}

#else /* scalar */

/* Q4_0 / Q5_0 spell out the lanes of the AVX2 path (ggml's): int32 lane l holds elements
 * 4l .. 4l+3 of a block; one fma per block and lane, then hsum_float_8 */
static inline void lanes_fma(float acc[8], float d, const int8_t q[32], const int8_t *q8) {
    for (int l = 0; l < 8; ++l) {
        int sum = 0;
        for (int k = 4 * l; k < 4 * l + 4; ++k) sum += q[k] * q8[k];
        acc[l] = fmaf(d, (float)sum, acc[l]);
    }
}

/* the exact integer dot of a Q4_0 block with a Q8_0 block */
static inline int32_t q4_0_block_isum(const block_q4_0 *x, const block_q8_0 *y) {
    int32_t sum = 0;
    for (int j = 0; j < QK4_0 / 2; ++j)
        sum += ((x->qs[j] & 0xF) - 8) * y->qs[j] + ((x->qs[j] >> 4) - 8) * y->qs[j + QK4_0 / 2];
    return sum;
}

void lc_vec_dot_q4_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q4_0 *x = (const block_q4_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc[8] = {0};
    int8_t q[QK4_0];
    for (int i = 0; i < n / QK8_0; ++i) {
        for (int j = 0; j < QK4_0 / 2; ++j) {
            q[j] = (int8_t)((x[i].qs[j] & 0xF) - 8);
            q[j + QK4_0 / 2] = (int8_t)((x[i].qs[j] >> 4) - 8);
        }
        lanes_fma(acc, LC_H2F(x[i].d) * LC_H2F(y[i].d), q, y[i].qs);
    }
    *s = lc_hsum8_ordered(acc);
}

void lc_vec_dot_q5_0(int n, float *s, const void *w_row, const void *x_row) {
    const block_q5_0 *x = (const block_q5_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc[8] = {0};
    int8_t q[QK5_0];
    for (int i = 0; i < n / QK8_0; ++i) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_0 / 2; ++j) {
            q[j] = (int8_t)(((x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16);
            q[j + QK5_0 / 2] = (int8_t)(((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16);
        }
        lanes_fma(acc, LC_H2F(x[i].d) * LC_H2F(y[i].d), q, y[i].qs);
    }
    *s = lc_hsum8_ordered(acc);
}

void lc_vec_dot_q5_1(int n, float *s, const void *w_row, const void *x_row) {
    const block_q5_1 *x = (const block_q5_1 *)w_row;
    const block_q8_1 *y = (const block_q8_1 *)x_row;
    float sumf = 0.f;
    for (int i = 0; i < n / QK8_1; ++i) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        int sumi = 0;
        for (int j = 0; j < QK8_1 / 2; ++j) {
            const int v0 = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            const int v1 = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            sumi += v0 * y[i].qs[j] + v1 * y[i].qs[j + QK8_1 / 2];
        }
        sumf += (LC_H2F(x[i].d) * LC_H2F(y[i].d)) * (float)sumi
              + LC_H2F(x[i].m) * LC_H2F(y[i].s);
    }
    *s = sumf;
}

#endif

/* llama.cpp's repacked x86 GEMV/GEMM's order (q4_0_8x8): one running sum over the blocks, each block's
 * exact integer dot times d_w * d_x fused into it */
void lc_vec_dot_q4_0_repacked(int n, float *s, const void *w_row, const void *x_row) {
    const block_q4_0 *x = (const block_q4_0 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK4_0; ++i) acc = fmaf((float)q4_0_block_isum(x + i, y + i), LC_H2F(x[i].d) * LC_H2F(y[i].d), acc);
    *s = acc;
}

void lc_vec_dot_bf16(int n, float *s, const void *w_row, const void *x_row) {
    const lc_bf16_t *x = (const lc_bf16_t *)w_row;
    const lc_bf16_t *y = (const lc_bf16_t *)x_row;
    int i = 0;
    double sumf = 0.0;
#if defined(LC_AVX512) && defined(__AVX512BF16__)
    __m512 c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps();
    for (; i + 64 <= n; i += 64) {
        c1 = _mm512_dpbf16_ps(c1, (__m512bh)_mm512_loadu_si512(x + i), (__m512bh)_mm512_loadu_si512(y + i));
        c2 = _mm512_dpbf16_ps(c2, (__m512bh)_mm512_loadu_si512(x + i + 32), (__m512bh)_mm512_loadu_si512(y + i + 32));
    }
    sumf += (double)_mm512_reduce_add_ps(c1) + (double)_mm512_reduce_add_ps(c2);
#elif defined(LC_AVX512)
#define LOAD_BF16_16(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
    __m512 c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        c1 = _mm512_fmadd_ps(LOAD_BF16_16(x + i), LOAD_BF16_16(y + i), c1);
        c2 = _mm512_fmadd_ps(LOAD_BF16_16(x + i + 16), LOAD_BF16_16(y + i + 16), c2);
    }
#undef LOAD_BF16_16
    sumf += (double)_mm512_reduce_add_ps(c1) + (double)_mm512_reduce_add_ps(c2);
#elif defined(LC_AVX2)
#define LOAD_BF16_8(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
    __m256 c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps(), c4 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) { /* four chains hide the FMA latency */
        c1 = _mm256_fmadd_ps(LOAD_BF16_8(x + i), LOAD_BF16_8(y + i), c1);
        c2 = _mm256_fmadd_ps(LOAD_BF16_8(x + i + 8), LOAD_BF16_8(y + i + 8), c2);
        c3 = _mm256_fmadd_ps(LOAD_BF16_8(x + i + 16), LOAD_BF16_8(y + i + 16), c3);
        c4 = _mm256_fmadd_ps(LOAD_BF16_8(x + i + 24), LOAD_BF16_8(y + i + 24), c4);
    }
#undef LOAD_BF16_8
    sumf += (double)lc_hsum256(_mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4)));
#elif defined(LC_NEON)
    float32x4_t c1 = vdupq_n_f32(0.f), c2 = vdupq_n_f32(0.f);
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t a = vld1q_u16(x + i), b = vld1q_u16(y + i);
        c1 = vfmaq_f32(c1, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(a), 16)), vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(b), 16)));
        c2 = vfmaq_f32(c2, vreinterpretq_f32_u32(vshll_high_n_u16(a, 16)), vreinterpretq_f32_u32(vshll_high_n_u16(b, 16)));
    }
    sumf += (double)vaddvq_f32(vaddq_f32(c1, c2));
#endif
    for (; i < n; ++i) sumf += (double)(lc_bf16_to_fp32(x[i]) * lc_bf16_to_fp32(y[i]));
    *s = (float)sumf;
}

/* A BF16 weight times two or more BF16 activation rows, as llamafile's tinyBLAS BF16 GEMM, which ggml
 * takes then (rows of whole steps, a multiple of 4 weight rows: ops.c): per output one accumulator over
 * the row, with AVX512-BF16 16 float lanes advanced by dpbf16 over 32 values a step and reduced as
 * _mm512_reduce_add_ps; without it (tinyBLAS's AVX2 form) the values widened to floats, 8 lanes of fmas
 * and its hsum. One weight row meets nx (<= LC_TILE_X) activation rows x_stride bytes apart, each step
 * of it loaded once for them. */
static inline __attribute__((always_inline)) void bf16_tinyblas_row(int n, const lc_bf16_t *w, const char *x,
                                                                    size_t x_stride, const int nx, float *y, size_t ldy) {
#if defined(LC_AVX512) && defined(__AVX512BF16__)
    __m512 acc[LC_TILE_X];
    for (int j = 0; j < nx; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += LC_BF16_TINYBLAS_STEP) {
        const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + i);
        for (int j = 0; j < nx; j++)
            acc[j] = _mm512_dpbf16_ps(acc[j], wv, (__m512bh)_mm512_loadu_si512((const lc_bf16_t *)(x + j * x_stride) + i));
    }
    for (int j = 0; j < nx; j++) y[j * ldy] = _mm512_reduce_add_ps(acc[j]);
#elif defined(LC_AVX2)
#define LOAD_BF16_8(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
    __m256 acc[LC_TILE_X];
    for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps();
    for (int i = 0; i < n; i += LC_BF16_TINYBLAS_STEP) {
        const __m256 wv = LOAD_BF16_8(w + i);
        for (int j = 0; j < nx; j++) acc[j] = _mm256_fmadd_ps(wv, LOAD_BF16_8((const lc_bf16_t *)(x + j * x_stride) + i), acc[j]);
    }
#undef LOAD_BF16_8
    for (int j = 0; j < nx; j++) y[j * ldy] = lc_hsum256(acc[j]);
#else
    for (int j = 0; j < nx; j++) {
        const lc_bf16_t *xj = (const lc_bf16_t *)(x + j * x_stride);
        float acc[8] = {0};
        for (int i = 0; i < n; i += LC_BF16_TINYBLAS_STEP)
            for (int l = 0; l < 8; ++l) acc[l] = fmaf(lc_bf16_to_fp32(w[i + l]), lc_bf16_to_fp32(xj[i + l]), acc[l]);
        y[j * ldy] = lc_hsum8_ordered(acc);
    }
#endif
}

void lc_tile_bf16_tinyblas(int n, float *y, size_t ldy, const void *w, size_t w_stride, int nw, const void *x,
                           size_t x_stride, int nx) {
    for (int r = 0; r < nw; r++) {
        const lc_bf16_t *wr = (const lc_bf16_t *)((const char *)w + r * w_stride);
        switch (nx) {  /* a constant token count a call, so that the accumulators stay in registers */
        case 4: bf16_tinyblas_row(n, wr, x, x_stride, 4, y + r, ldy); break;
        case 3: bf16_tinyblas_row(n, wr, x, x_stride, 3, y + r, ldy); break;
        case 2: bf16_tinyblas_row(n, wr, x, x_stride, 2, y + r, ldy); break;
        default: bf16_tinyblas_row(n, wr, x, x_stride, 1, y + r, ldy);
        }
    }
}

#if defined(LC_AVX512) && defined(__AVX512BF16__)
enum { BF16_GEMM_RM = 4, BF16_GEMM_RN = 4 };  /* a register tile: 4 weight rows by 4 tokens, 16 zmm sums */

/* an RM x RN tile (rows w, tokens x) over the whole row, then each output's reduce as tinyBLAS's hsum */
static inline __attribute__((always_inline)) void bf16_gemm_tile(int64_t k, const lc_bf16_t *w, size_t w_stride,
        const lc_bf16_t *x, size_t x_stride, float *y, size_t ldy, const int rm, const int rn) {
    __m512 acc[BF16_GEMM_RM][BF16_GEMM_RN];
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t c = 0; c < k; c += LC_BF16_TINYBLAS_STEP) {
        __m512bh xv[BF16_GEMM_RN];
        for (int j = 0; j < rn; j++) xv[j] = (__m512bh)_mm512_loadu_si512(x + j * x_stride + c);
        for (int i = 0; i < rm; i++) {
            const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + i * w_stride + c);
            for (int j = 0; j < rn; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
        }
    }
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) y[j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}

void lc_gemm_bf16_tinyblas(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                           float *y, size_t ldy) {
    const size_t ws = w_stride / sizeof(lc_bf16_t), xs = x_stride / sizeof(lc_bf16_t);
    /* a panel of weight rows stays in L1 while every token tile meets it */
    for (int64_t r = 0; r < nr; r += BF16_GEMM_RM) {
        const lc_bf16_t *wr = (const lc_bf16_t *)w + r * ws;
        const int rm = nr - r < BF16_GEMM_RM ? (int)(nr - r) : BF16_GEMM_RM;
        for (int64_t t = 0; t < m; t += BF16_GEMM_RN) {
            const lc_bf16_t *xt = (const lc_bf16_t *)x + t * xs;
            float *yt = y + t * ldy + r;
            const int rn = m - t < BF16_GEMM_RN ? (int)(m - t) : BF16_GEMM_RN;
            if (rm == BF16_GEMM_RM && rn == BF16_GEMM_RN) bf16_gemm_tile(k, wr, ws, xt, xs, yt, ldy, BF16_GEMM_RM, BF16_GEMM_RN);
            else bf16_gemm_tile(k, wr, ws, xt, xs, yt, ldy, rm, rn);
        }
    }
}
#endif
