/* K-quant kernels (Q2_K..Q6_K weights x Q8_K activations) and the Q8_K activation quantizer.
 * Numerics follow ggml exactly: integer sums per block are exact, the float combination per
 * super-block is d * isum - dmin * summs; dequant_row matches ggml/gguf bit for bit. */
#ifndef LC_QUANTS_KQ_H
#define LC_QUANTS_KQ_H

#include "lc_types.h"
#include "lc_simd.h"

#include <string.h>

/* activations -> block_q8_K (ggml quantize_row_q8_K_ref, bsums included); n % 256 == 0 */
void lc_quantize_row_q8_K(const float *x, void *y, int64_t n);

/* one weight row (n elements, n % 256 == 0) . one block_q8_K row */
void lc_vec_dot_q2_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q3_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q4_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q5_K(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q6_K(int n, float *s, const void *w_row, const void *x_row);
/* the same products in the order of llama.cpp's tiled kernel (batches of 8 or more tokens) */
void lc_vec_dot_q2_K_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q3_K_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q4_K_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q5_K_tiled(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q6_K_tiled(int n, float *s, const void *w_row, const void *x_row);
/* in the order of llama.cpp's repacked Q4_K GEMM (groups of four tokens) */
void lc_vec_dot_q4_K_gemm(int n, float *s, const void *w_row, const void *x_row);
/* in the orders of llama.cpp's repacked Q2_K GEMV (one token; a batch's tokens past its groups of
 * four) and GEMM (groups of four tokens), which it runs on AVX-512 CPUs */
void lc_vec_dot_q2_K_repacked(int n, float *s, const void *w_row, const void *x_row);
void lc_vec_dot_q2_K_gemm(int n, float *s, const void *w_row, const void *x_row);

void lc_dequant_row_q2_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q3_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q4_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q5_K(const void *w_row, float *y, int64_t n);
void lc_dequant_row_q6_K(const void *w_row, float *y, int64_t n);

/* Q3_K: 12 bytes -> 16 six-bit scales (0..63, 32 = zero), as four little-endian words. Low nibbles:
 * bytes 0-7 (scales 0-7), their high nibbles (scales 8-15); top 2 bits: bytes 8-11, bit pair k for
 * scales 4k..4k+3. */
static inline void lc_q3_scale_words(const uint8_t *q, uint32_t words[4]) {
    uint32_t w[3];
    memcpy(w, q, 12);
    words[0] = (w[0] & 0x0f0f0f0fu) | ((w[2] & 0x03030303u) << 4);
    words[1] = (w[1] & 0x0f0f0f0fu) | (((w[2] >> 2) & 0x03030303u) << 4);
    words[2] = ((w[0] >> 4) & 0x0f0f0f0fu) | (((w[2] >> 4) & 0x03030303u) << 4);
    words[3] = ((w[1] >> 4) & 0x0f0f0f0fu) | (((w[2] >> 6) & 0x03030303u) << 4);
}

static inline void lc_unpack_q3_scales(const uint8_t *q, int8_t sc[16]) {
    uint32_t words[4];
    uint8_t u[16];
    lc_q3_scale_words(q, words);
    memcpy(u, words, 16);
    for (int j = 0; j < 16; ++j) sc[j] = (int8_t)(u[j] - 32);
}

/* Q4_K / Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins (ggml get_scale_min_k4).
 * Bytes 0-3: scales 0-3 (+ high bits of scales 4-7), 4-7: mins 0-3 (+ high bits of mins 4-7),
 * 8-11: low nibbles of scales 4-7 / high nibbles of mins 4-7; done four bytes at a time. */
static inline void lc_unpack_k4_scale_words(const uint8_t *q, uint64_t *sc, uint64_t *mn) {
    uint32_t w[3];
    memcpy(w, q, 12);
    *sc = (uint64_t)(w[0] & 0x3f3f3f3fu) | (uint64_t)((w[2] & 0x0f0f0f0fu) | (((w[0] >> 6) & 0x03030303u) << 4)) << 32;
    *mn = (uint64_t)(w[1] & 0x3f3f3f3fu) | (uint64_t)(((w[2] >> 4) & 0x0f0f0f0fu) | (((w[1] >> 6) & 0x03030303u) << 4)) << 32;
}
/* the same as bytes, scale (min) i in byte i of the little-endian words above */
static inline void lc_unpack_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    uint64_t s, m;
    lc_unpack_k4_scale_words(q, &s, &m);
    memcpy(sc, &s, 8);
    memcpy(mn, &m, 8);
}

#if defined(LC_AVX2)
/* 16-scale types (Q2_K, Q3_K, Q6_K): a madd operand whose int16 lanes 0-7 hold scale[2m] and lanes
 * 8-15 scale[2m+1], i.e. the scales of the two 16-element halves of the m-th 32-byte activation
 * chunk. sc_b holds the 16 (signed) scale bytes in both 128-bit lanes; each byte is duplicated
 * into an int16 and arithmetic-shifted down, which sign-extends it. */
#define LC_PAIR_PATTERN0 _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0x0101, 0x0101, 0x0101, 0x0101, 0x0101, 0x0101, 0x0101, 0x0101)
static inline __m256i lc_next_scale_pair(__m256i sc_b, __m256i *pattern) {
    const __m256i s = _mm256_srai_epi16(_mm256_shuffle_epi8(sc_b, *pattern), 8);
    *pattern = _mm256_add_epi16(*pattern, _mm256_set1_epi16(0x0202));
    return s;
}

/* One Q2_K block's exact integer sums in ggml's 8 int32 lanes, per 128-value half h: isum[h] the
 * scaled products (lanes: pairs of 16-value sub-blocks), and summs the mins times the activations'
 * sums (lane k: sub-blocks 2k and 2k + 1; lanes 0-3 the first half) */
static inline void lc_q2_K_block_isums(const block_q2_K *x, const block_q8_K *y, __m256i isum[2], __m256i *summs) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    const __m128i sc = _mm_loadu_si128((const __m128i *)x->scales);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
    *summs = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)y->bsums));
    const __m256i sc_b = _mm256_broadcastsi128_si256(_mm_and_si128(sc, m4));
    __m256i pattern = LC_PAIR_PATTERN0;
    const int8_t *q8 = y->qs;
    for (int h = 0; h < 2; ++h) {
        __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
        isum[h] = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j, q8 += 32) {
            const __m256i q = _mm256_and_si256(bits, m3);
            const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
            isum[h] = lc_madd_acc_epi16(isum[h], p, lc_next_scale_pair(sc_b, &pattern));
            bits = _mm256_srli_epi16(bits, 2);
        }
    }
}

/* Q6_K's unsigned quants (q + 32, 0..63) of half h of block b (values 128h..128h+127) as four
 * vectors of 32, in the activations' order: the low four bits from ql, the high two from qh
 * (vec_dot's and the GEMV's unpacking) */
static inline void lc_q6_K_unpack_half(const block_q6_K *b, int h, __m256i u[4]) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m48 = _mm256_set1_epi8(0x30);
    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    u[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m48));
    u[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m48));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m48));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m48));
}

/* Q6_K's scale pairs, the madd operands of a block's eight 32-value steps: step t's low 128 bits
 * scale 2t, its high ones scale 2t + 1, picked from s16 (the sixteen scales widened) by pshufb within
 * the step's copy of its half of them (vec_dot's and the GEMV's) */
static inline __m256i lc_q6_K_scale_pair(__m256i s16, int t) {
    const __m256i half = t < 4 ? _mm256_permute4x64_epi64(s16, 0x44) : _mm256_permute4x64_epi64(s16, 0xEE);
    const char lo = (char)(4 * (t % 4)), hi = (char)(4 * (t % 4) + 2);
    return _mm256_shuffle_epi8(half, _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1,
                                                      hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1));
}
#endif

/* ---- internal: NEON helper shared by quants_kq.c and quants_legacy.c (candidate for lc_simd.h) ---- */
#if defined(LC_NEON)
/* exact sum of the 16 products a[i] * b[i] (|a[i] * b[i]| < 2^15) */
static inline int lc_neon_dot16(int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), a, b));
#else
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_high_s8(a, b);
    return vaddvq_s32(vpadalq_s16(vpaddlq_s16(p0), p1));
#endif
}
#endif /* LC_NEON */

#endif /* LC_QUANTS_KQ_H */
