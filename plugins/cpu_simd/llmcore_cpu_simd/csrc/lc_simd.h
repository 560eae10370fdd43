/* Which SIMD paths this build compiles, and small helpers shared by the kernel files.
 * One source tree is built once per ISA level with different -m flags; these macros pick the
 * code paths from the compiler's predefined feature macros. */
#ifndef LC_SIMD_H
#define LC_SIMD_H

#include "lc_types.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__FMA__)
#define LC_AVX512 1
#endif
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LC_AVX2 1
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define LC_VNNI 1
#endif
#if defined(__ARM_NEON)
#define LC_NEON 1
#endif

#if defined(LC_AVX2) || defined(LC_AVX512)
#include <immintrin.h>
#endif
#if defined(LC_NEON)
#include <arm_neon.h>
#endif

/* exact f16 -> f32 of one value, with F16C when the build has it (same result either way) */
#if defined(__F16C__)
#define LC_H2F(h) _cvtsh_ss(h)
#else
#define LC_H2F(h) lc_fp16_to_fp32(h)
#endif

#if defined(LC_AVX2)
static inline float lc_hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    const __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* 32 unsigned bytes: the 16 low nibbles of qs, then the 16 high nibbles (ggml's q4 element order) */
static inline __m256i lc_unpack_nibbles(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* per 4 bytes: sum of u8 * s8 products, as 8 int32 lanes */
static inline __m256i lc_dot_us8_256(__m256i u, __m256i s) {
#if defined(LC_VNNI)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}
#endif

#if defined(LC_AVX512)
static inline __m512i lc_dot_us8_512(__m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
#else
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
#endif
}
#endif

#endif
