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

/* acc + pairwise int16 products summed to int32 (VNNI fuses the add) */
static inline __m256i lc_madd_acc_epi16(__m256i acc, __m256i a, __m256i b) {
#if defined(LC_VNNI)
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/* acc + per 4 bytes the sum of u8 * s8 products, as 8 int32 lanes (one instruction with VNNI) */
static inline __m256i lc_dot_us8_acc_256(__m256i acc, __m256i u, __m256i s) {
#if defined(LC_VNNI)
    return _mm256_dpbusd_epi32(acc, u, s);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* per 4 bytes: sum of u8 * s8 products, as 8 int32 lanes */
static inline __m256i lc_dot_us8_256(__m256i u, __m256i s) { return lc_dot_us8_acc_256(_mm256_setzero_si256(), u, s); }

/* exact sum of the 8 int32 lanes */
static inline int lc_hsum_epi32_256(__m256i v) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
    return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 1)));
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

/* One vector of floats, whatever the build's width: 16 (AVX-512) or 8 (AVX2), for kernels written
 * once for both */
#if defined(LC_AVX512)
typedef __m512 lc_vec;
enum { LC_VEC_LANES = 16 };
#define LC_VEC_SUM_HEADS 4  /* heads whose sums of four vectors fit in half the registers */
#define lc_vec_zero() _mm512_setzero_ps()
#define lc_vec_load(p) _mm512_loadu_ps(p)
#define lc_vec_store(p, x) _mm512_storeu_ps((p), (x))
#define lc_vec_set1(x) _mm512_set1_ps(x)
#define lc_vec_add(x, y) _mm512_add_ps((x), (y))
#define lc_vec_mul(x, y) _mm512_mul_ps((x), (y))
#define lc_vec_max(x, y) _mm512_max_ps((x), (y))
#define lc_vec_fmadd(x, y, z) _mm512_fmadd_ps((x), (y), (z))
#define lc_vec_load_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define lc_vec_store_f16(p, x) _mm256_storeu_si256((__m256i *)(p), _mm512_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT))
#define lc_vec_round_f16(x) _mm512_cvtph_ps(_mm512_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT))
#elif defined(LC_AVX2)
typedef __m256 lc_vec;
enum { LC_VEC_LANES = 8 };
#define LC_VEC_SUM_HEADS 2  /* 8 of 16 registers */
#define lc_vec_zero() _mm256_setzero_ps()
#define lc_vec_load(p) _mm256_loadu_ps(p)
#define lc_vec_store(p, x) _mm256_storeu_ps((p), (x))
#define lc_vec_set1(x) _mm256_set1_ps(x)
#define lc_vec_add(x, y) _mm256_add_ps((x), (y))
#define lc_vec_mul(x, y) _mm256_mul_ps((x), (y))
#define lc_vec_max(x, y) _mm256_max_ps((x), (y))
#define lc_vec_fmadd(x, y, z) _mm256_fmadd_ps((x), (y), (z))
#define lc_vec_load_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define lc_vec_store_f16(p, x) _mm_storeu_si128((__m128i *)(p), _mm256_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT))
#define lc_vec_round_f16(x) _mm256_cvtph_ps(_mm256_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT))
#endif
#if defined(LC_AVX2)
enum { LC_VEC_SUM_STEP = 4 * LC_VEC_LANES };  /* the values of one head's sums of four vectors */
/* CALL(h) with h the constant from 1 to LC_VEC_SUM_HEADS that nh holds: a kernel inlined with its
 * count of heads known keeps their sums in registers */
#if LC_VEC_SUM_HEADS == 4
#define LC_WITH_SUM_HEADS(nh, CALL) \
    do { switch (nh) { case 1: CALL(1); break; case 2: CALL(2); break; case 3: CALL(3); break; default: CALL(4); } } while (0)
#else
#define LC_WITH_SUM_HEADS(nh, CALL) do { if ((nh) == 1) CALL(1); else CALL(2); } while (0)
#endif
#endif

/* y[i] = x[i] * times rounded to f16 and back (y may be x), in vectors where the build has them */
static inline void lc_round_f16_times(const float *x, float *y, int64_t n, float times) {
    int64_t i = 0;
#if defined(LC_AVX2)
    for (; i + LC_VEC_LANES <= n; i += LC_VEC_LANES)
        lc_vec_store(y + i, lc_vec_round_f16(lc_vec_mul(lc_vec_load(x + i), lc_vec_set1(times))));
#endif
    for (; i < n; i++) y[i] = lc_fp16_to_fp32(lc_fp32_to_fp16(x[i] * times));
}

/* ---- llama.cpp's summation orders -----------------------------------------------------------
 * Tiny rounding differences are amplified through 30 layers of 8-bit re-quantized activations,
 * so the kernels reproduce the exact order in which llama.cpp's x86 build adds things up: every
 * ISA level then gives the same bits, and those bits are llama.cpp's. */
#include <math.h>

/* ggml's hsum_float_8 of 8 lanes: (a0+a4 + a2+a6) + (a1+a5 + a3+a7) */
static inline float lc_hsum8_ordered(const float *a) {
    const float r0 = a[0] + a[4], r1 = a[1] + a[5], r2 = a[2] + a[6], r3 = a[3] + a[7];
    return (r0 + r2) + (r1 + r3);
}

/* _mm512_reduce_add_ps of 16 lanes, in GCC's order */
static inline float lc_reduce16_ordered(const float *a) {
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[i + 4] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

/* ggml_v_expf (its AVX-512 form), one value: exp(x) to about 1.5 ulp */
static inline float lc_expf_ggml(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    return ldexpf(j, (int)n);
}

#if defined(LC_AVX2)
/* lc_expf_ggml, eight values: the same steps; 2^n built in the exponent bits, exact where |n| <= 126
 * (j * 2^n then rounds once, as ldexpf does), the rare vector with a larger |n| value by value */
static inline __m256 lc_expf_ggml_256(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    if (_mm256_movemask_ps(_mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ))) {
        float v[8];
        _mm256_storeu_ps(v, x);
        for (int l = 0; l < 8; l++) v[l] = lc_expf_ggml(v[l]);
        return _mm256_loadu_ps(v);
    }
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(j, _mm256_castsi256_ps(bits));
}
#endif

#if defined(LC_AVX512)
static inline __m512 lc_expf_ggml_512(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (!big) return res;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(big, res, alt);
}
#endif

/* ggml_vec_soft_max_f32's exps: scores[0, n) less max, in place (a hidden cell, -INFINITY, gives 0),
 * summed 16 at a time, each group's float sum added in double (a short last group as if padded with
 * zeros); whole 16s in vectors (the same steps) */
static inline double lc_softmax_exps(float *scores, int64_t n, float max) {
    double sum = 0.0;
    int64_t j0 = 0;
#if defined(LC_AVX512)
    const __m512 max16 = _mm512_set1_ps(max);
    for (; j0 + 16 <= n; j0 += 16) {
        const __m512 s = _mm512_loadu_ps(scores + j0);
        const __mmask16 seen = _mm512_cmp_ps_mask(s, _mm512_set1_ps(-INFINITY), _CMP_NEQ_UQ);
        _mm512_storeu_ps(scores + j0, _mm512_maskz_mov_ps(seen, lc_expf_ggml_512(_mm512_sub_ps(s, max16))));
        sum += (double)lc_reduce16_ordered(scores + j0);
    }
#elif defined(LC_AVX2)
    const __m256 max8 = _mm256_set1_ps(max);
    for (; j0 + 16 <= n; j0 += 16) {
        for (int h = 0; h < 2; h++) {
            /* a hidden cell's exp computed as exp(0), then cleared: its -inf would send the whole
             * vector down lc_expf_ggml_256's scalar path */
            const __m256 s = _mm256_loadu_ps(scores + j0 + 8 * h);
            const __m256 hidden = _mm256_cmp_ps(s, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
            const __m256 x = _mm256_andnot_ps(hidden, _mm256_sub_ps(s, max8));
            _mm256_storeu_ps(scores + j0 + 8 * h, _mm256_andnot_ps(hidden, lc_expf_ggml_256(x)));
        }
        sum += (double)lc_reduce16_ordered(scores + j0);
    }
#endif
    for (; j0 < n; j0 += 16) {
        float group_exps[16] = {0};
        for (int64_t j = j0; j < j0 + 16 && j < n; j++) {
            scores[j] = scores[j] == -INFINITY ? 0.0f : lc_expf_ggml(scores[j] - max);
            group_exps[j - j0] = scores[j];
        }
        sum += (double)lc_reduce16_ordered(group_exps);
    }
    return sum;
}


/* ---- ggml_vec_dot_f16 of consecutive rows, a vector of cells at a time (attention's K q) ---- */
#if defined(LC_AVX512)
/* Sixteen cells' 16-lane partial sums reduced exactly as _mm512_reduce_add_ps (GCC's tree) reduces
 * one vector, but for the 16 at once: every add pairs the same two values as the one-cell reduction
 * does. Lane c of the result is cell c's sum. */
static inline __m512 lc_reduce_add_16_cells(const __m512 a[16]) {
    __m512 x[8], y[4], z[2];
    for (int c = 0; c < 8; c++)  /* v[i + 8] + v[i], cells 2c and 2c+1 in the low and high halves */
        x[c] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * c], a[2 * c + 1], 0xEE), _mm512_shuffle_f32x4(a[2 * c], a[2 * c + 1], 0x44));
    for (int c = 0; c < 4; c++)  /* t[i + 4] + t[i]: one cell per 128-bit quarter */
        y[c] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * c], x[2 * c + 1], 0xDD), _mm512_shuffle_f32x4(x[2 * c], x[2 * c + 1], 0x88));
    for (int c = 0; c < 2; c++)  /* (t[0] + t[2]), (t[1] + t[3]) */
        z[c] = _mm512_add_ps(_mm512_shuffle_ps(y[2 * c], y[2 * c + 1], 0x44), _mm512_shuffle_ps(y[2 * c], y[2 * c + 1], 0xEE));
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x88), _mm512_shuffle_ps(z[0], z[1], 0xDD));
    /* lane 4q + m of r holds cell 4m + q */
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

/* ggml_vec_dot_f16 of LC_VEC_LANES consecutive f16 K rows (stride values apart, hd a multiple of 64)
 * with each of nh <= LC_VEC_SUM_HEADS queries (hd apart; nh a constant where inlined): out[g] holds
 * head g's dots, one cell per lane. Each row's four vectors of fmas are added (0 + 2) + (1 + 3), as
 * ggml does, and then reduced sixteen cells at once. */
static inline __attribute__((always_inline)) void lc_dots_of_cells(const lc_fp16_t *k, int64_t stride,
                                                                   const float *q16, int64_t hd, int nh, __m512 *out) {
    __m512 part[LC_VEC_SUM_HEADS][16];
    for (int c = 0; c < 16; c++) {
        const lc_fp16_t *k_row = k + c * stride;
        __m512 acc[LC_VEC_SUM_HEADS][4];
        for (int g = 0; g < nh; g++)
            for (int a = 0; a < 4; a++) acc[g][a] = _mm512_setzero_ps();
        for (int64_t i = 0; i < hd; i += 64) {
            __m512 kv[4];
            for (int a = 0; a < 4; a++) kv[a] = lc_vec_load_f16(k_row + i + 16 * a);
            for (int g = 0; g < nh; g++)
                for (int a = 0; a < 4; a++)
                    acc[g][a] = _mm512_fmadd_ps(kv[a], _mm512_loadu_ps(q16 + g * hd + i + 16 * a), acc[g][a]);
        }
        for (int g = 0; g < nh; g++)
            part[g][c] = _mm512_add_ps(_mm512_add_ps(acc[g][0], acc[g][2]), _mm512_add_ps(acc[g][1], acc[g][3]));
    }
    for (int g = 0; g < nh; g++) out[g] = lc_reduce_add_16_cells(part[g]);
}
#elif defined(LC_AVX2)
/* The same with 256-bit vectors: a cell's 16 lanes are two registers, and 8 cells are reduced
 * together pair by pair as _mm512_reduce_add_ps reduces one cell. */
static inline __m256 lc_reduce_add_8_cells(const __m256 t3[8]) {  /* t3[c]: cell c's lanes i + 8 and i added */
    __m256 x[4], z[2];
    for (int c = 0; c < 4; c++)  /* t3[i + 4] + t3[i]: cells 2c and 2c+1 in the low and high halves */
        x[c] = _mm256_add_ps(_mm256_permute2f128_ps(t3[2 * c], t3[2 * c + 1], 0x31),
                             _mm256_permute2f128_ps(t3[2 * c], t3[2 * c + 1], 0x20));
    for (int c = 0; c < 2; c++)  /* (t[0] + t[2]), (t[1] + t[3]) */
        z[c] = _mm256_add_ps(_mm256_shuffle_ps(x[2 * c], x[2 * c + 1], 0x44), _mm256_shuffle_ps(x[2 * c], x[2 * c + 1], 0xEE));
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(z[0], z[1], 0x88), _mm256_shuffle_ps(z[0], z[1], 0xDD));
    /* r holds cells 0, 2, 4, 6 | 1, 3, 5, 7 */
    return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The same with 8 cells a vector: each row's 64 lanes as eight halves, added as their 16-lane
 * vectors are and their halves then added (lanes i and i + 8), then 8 cells reduced at once. */
static inline __attribute__((always_inline)) void lc_dots_of_cells(const lc_fp16_t *k, int64_t stride,
                                                                   const float *q16, int64_t hd, int nh, __m256 *out) {
    for (int g = 0; g < nh; g++) {
        __m256 t3[8];
        for (int c = 0; c < 8; c++) {
            const lc_fp16_t *k_row = k + c * stride;
            __m256 acc[8];
            for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
            for (int64_t i = 0; i < hd; i += 64)
                for (int a = 0; a < 8; a++)
                    acc[a] = _mm256_fmadd_ps(lc_vec_load_f16(k_row + i + 8 * a), _mm256_loadu_ps(q16 + g * hd + i + 8 * a), acc[a]);
            const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
            const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
            t3[c] = _mm256_add_ps(lo, hi);
        }
        out[g] = lc_reduce_add_8_cells(t3);
    }
}
#endif

#endif
