/* One token times many rows of a 32-block type whose values are 16 levels picked by nibbles (Q4_0 as
 * llama.cpp repacks it: levels -8..7; IQ4_NL; MXFP4), in llama.cpp's repacked GEMV order: each output
 * one running sum over the blocks, the block's exact integer dot times d_w * d_x fused into it
 * (quants_legacy.c's and quants_iq_grid.c's GEMVs; AVX2 builds). */
#ifndef LC_GEMV_NIBBLES_H
#define LC_GEMV_NIBBLES_H

#include "lc_gemv.h"
#include "lc_types.h"

#if defined(LC_AVX2)

/* the block's 32 values looked up by their nibbles (levels in both 128-bit lanes) as signed bytes in
 * ggml's element order */
static inline __m256i lc_nibble_values(__m256i levels, const uint8_t *qs) { return _mm256_shuffle_epi8(levels, lc_unpack_nibbles(qs)); }

/* int32 lanes of the products of signed values v (|v| <= 127) with activations q8 (never -128): ggml's
 * sign trick, |v| times q8 with v's sign */
static inline __m256i lc_signed_dot_lanes(__m256i v, const int8_t *q8) {
    const __m256i y = _mm256_loadu_si256((const __m256i *)q8);
    return lc_dot_us8_256(_mm256_sign_epi8(v, v), _mm256_sign_epi8(y, v));
}

/* the four rows' scales (d_w) of the blocks at b[0..3] */
typedef __m128 (*lc_nibble_scales4_fn)(const uint8_t *const b[LC_GEMV_ROWS]);

/* ... where each block opens with its f16 scale (Q4_0, IQ4_NL) */
static inline __m128 lc_f16_scales4(const uint8_t *const b[LC_GEMV_ROWS]) {
    const void *d16[LC_GEMV_ROWS] = {b[0], b[1], b[2], b[3]};
    return _mm_cvtph_ps(lc_gather4_u16(d16));
}

/* the next group's bytes asked for this far past its start (lc_prefetch_step_share), as Q5_0's GEMV */
enum { LC_NIBBLES_PREFETCH_PAST_GROUP = 1024 };

/* the four rows' exact integer dots of one 32-block (b[r]'s quants at qs_at) with x; lut the levels (+
 * 128 with VNNI: dpbusd multiplies them as unsigned bytes exactly, 128 times the block's sums taken back
 * once for the four rows, fewer operations a row than the sign trick) */
static inline __m128i lc_nibble_isums4(const uint8_t *const b[LC_GEMV_ROWS], size_t qs_at, __m256i lut,
                                       const block_q8_0 *x) {
    __m256i isum[LC_GEMV_ROWS];
#if defined(LC_VNNI) || defined(__AVXVNNI__)
    const __m256i qx = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i offset = _mm256_sub_epi32(_mm256_setzero_si256(), lc_dot_us8_256(_mm256_set1_epi8((char)0x80), qx));
#pragma GCC unroll 4
    for (int r = 0; r < LC_GEMV_ROWS; ++r) isum[r] = lc_dot_us8_acc_256(offset, lc_nibble_values(lut, b[r] + qs_at), qx);
#else
#pragma GCC unroll 4
    for (int r = 0; r < LC_GEMV_ROWS; ++r) isum[r] = lc_signed_dot_lanes(lc_nibble_values(lut, b[r] + qs_at), x->qs);
#endif
    return lc_reduce4_epi32(isum);
}

/* Four rows (lc_gemv_group_fn's y[0..3]): per block the four rows' exact integer dots reduced together,
 * fused into their running sums times d_w * d_x. With VNNI two blocks go at a time: a row's two blocks'
 * quants in one vector ([block i | block i + 1] of their 16 bytes), their low and high nibbles meeting
 * the two blocks' activations likewise paired, the eight sums reduced together; the fmas still block
 * by block. */
static inline __attribute__((always_inline)) void lc_gemv4_nibble_levels(int64_t nb, const uint8_t *w, size_t row_bytes,
        const void *vx, float *y, int prefetch, const int8_t levels[16], const size_t block_bytes, const size_t qs_at,
        lc_nibble_scales4_fn scales4) {
    const block_q8_0 *x = vx;
    __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)levels));
#if defined(LC_VNNI) || defined(__AVXVNNI__)
    lut = _mm256_add_epi8(lut, _mm256_set1_epi8((char)0x80));
#endif
    const uint8_t *ahead = w + LC_GEMV_ROWS * row_bytes + lc_prefetch_ahead_bytes(LC_NIBBLES_PREFETCH_PAST_GROUP, prefetch);
    __m128 acc = _mm_setzero_ps();
    int64_t i = 0;
#if defined(LC_VNNI) || defined(__AVXVNNI__)
    const __m256i m4 = _mm256_set1_epi8(0x0F), bias = _mm256_set1_epi8((char)0x80);
    for (; i + 2 <= nb; i += 2) {
        if (prefetch) lc_prefetch_step_share(ahead, i / 2, 2 * LC_GEMV_ROWS * block_bytes);
        const __m256i x_lo = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)x[i].qs)),
                                                     _mm_loadu_si128((const __m128i *)x[i + 1].qs), 1);
        const __m256i x_hi = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(x[i].qs + 16))),
                                                     _mm_loadu_si128((const __m128i *)(x[i + 1].qs + 16)), 1);
        const __m256i offset = _mm256_sub_epi32(_mm256_setzero_si256(),
                                                lc_dot_us8_acc_256(lc_dot_us8_256(bias, x_lo), bias, x_hi));
        __m256i isum[LC_GEMV_ROWS];  /* lanes 0-3 block i's, 4-7 block i + 1's */
        const uint8_t *b0[LC_GEMV_ROWS], *b1[LC_GEMV_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            b0[r] = w + (size_t)r * row_bytes + (size_t)i * block_bytes;
            b1[r] = b0[r] + block_bytes;
            const __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0[r] + qs_at))),
                                                      _mm_loadu_si128((const __m128i *)(b1[r] + qs_at)), 1);
            const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(q, m4));
            const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
            isum[r] = lc_dot_us8_acc_256(lc_dot_us8_acc_256(offset, lo, x_lo), hi, x_hi);
        }
        /* rows 0-3 of block i in the low half, of block i + 1 in the high one */
        const __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(isum[0], isum[1]), _mm256_hadd_epi32(isum[2], isum[3]));
        const __m128 scale0 = _mm_mul_ps(scales4(b0), _mm_set1_ps(LC_H2F(x[i].d)));
        const __m128 scale1 = _mm_mul_ps(scales4(b1), _mm_set1_ps(LC_H2F(x[i + 1].d)));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm256_castsi256_si128(sums)), scale0, acc);
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm256_extracti128_si256(sums, 1)), scale1, acc);
    }
#endif
    for (; i < nb; ++i) {
        if (prefetch) lc_prefetch_step_share(ahead, i, LC_GEMV_ROWS * block_bytes);
        const uint8_t *b[LC_GEMV_ROWS];
        for (int r = 0; r < LC_GEMV_ROWS; ++r) b[r] = w + (size_t)r * row_bytes + (size_t)i * block_bytes;
        const __m128 scale = _mm_mul_ps(scales4(b), _mm_set1_ps(LC_H2F(x[i].d)));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(lc_nibble_isums4(b, qs_at, lut, x + i)), scale, acc);
    }
    _mm_storeu_ps(y, acc);
}

#endif /* LC_AVX2 */

#endif /* LC_GEMV_NIBBLES_H */
