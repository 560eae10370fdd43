/* The grid i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S), the ternary TQ1_0 and
 * TQ2_0 (all dotted with Q8_K activations), IQ4_NL, MXFP4 and NVFP4 (with Q8_0), in llama.cpp's x86
 * orders.
 *
 * Each 256-block is first unpacked into small integers: its signed grid values and the odd integer
 * scale (2 * ls + 1) of each 16 values. ggml's AVX2 vec_dot sums these products exactly into 8 int32
 * lanes (lane l: values 4l..4l+3 of every 32, times their scale), then fuses d_w * d_x times each
 * lane into 8 float sums and adds those up with hsum_float_8; its tiled kernel (8 tokens or more)
 * takes the block's whole integer sum times d_w, fused-multiply-added with d_x into one sum. Both are
 * reproduced here from the integers, so every ISA level gives llama.cpp's bits. The tables are
 * ggml-common.h's, from ggml_tables.h (llmcore's one copy, written by build.py). */
#if __has_include("ggml_tables.h")
#include "ggml_tables.h"
#include "lc_gemv_nibbles.h"
#include "lc_quants_iq.h"
#include "lc_simd.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(block_iq2_xxs) == 66 && sizeof(block_iq2_xs) == 74 && sizeof(block_iq2_s) == 82, "iq2 blocks");
_Static_assert(sizeof(block_iq3_xxs) == 98 && sizeof(block_iq3_s) == 110, "iq3 blocks");
_Static_assert(sizeof(block_iq1_s) == 50 && sizeof(block_iq1_m) == 56, "iq1 blocks");
_Static_assert(sizeof(block_tq1_0) == 54 && sizeof(block_tq2_0) == 66, "tq blocks");
_Static_assert(sizeof(block_mxfp4) == 17 && sizeof(block_nvfp4) == 36, "fp4 blocks");

/* one 256-block as integers: the values (signed grid entries; IQ1: -1, 0, 1), the odd scale of each
 * 16 values, and (IQ1) the +-1 offset of each 8 values ggml adds as +-IQ1S_DELTA */
typedef struct {
    int8_t q[QK_K];
    int8_t scale[QK_K / 16];
    int8_t delta[QK_K / 8];
    float d;  /* the block's f16 scale */
} unpacked_block;

/* one 32-value sub-block of the signed grid types (IQ2, IQ3): its signs (bit j of byte l: value 8l + j
 * negative) and the integer scales of its two 16s (ls: the odd scale 2 * ls + 1); its grid entries'
 * indices come apart (NAME_indices: 4 of 8-byte entries for IQ2, 8 of 4-byte ones for IQ3) */
typedef struct {
    uint32_t signs;
    int ls_lo, ls_hi;
} grid_signs;

static inline uint32_t sign_bytes4(uint8_t s0, uint8_t s1, uint8_t s2, uint8_t s3) {
    return (uint32_t)s0 | (uint32_t)s1 << 8 | (uint32_t)s2 << 16 | (uint32_t)s3 << 24;
}

#if defined(LC_AVX2)
/* 0x80 at each of the 16 nibbles of odd parity, for pshufb */
static inline __m128i odd_parity_bits(void) {
    return _mm_setr_epi8(0, (char)0x80, (char)0x80, 0, (char)0x80, 0, 0, (char)0x80, (char)0x80, 0, 0, (char)0x80, 0, (char)0x80,
                         (char)0x80, 0);
}

/* the 16 sign bytes of four sub-blocks' 7-bit sign fields (byte 4k + l: sub-block k's field l), the eighth
 * bit their parity, as ggml's ksigns_iq2xs */
static inline __m128i parity_signs16(__m128i fields) {
    const __m128i nibbles = _mm_xor_si128(fields, _mm_and_si128(_mm_srli_epi16(fields, 4), _mm_set1_epi8(0x0F)));
    return _mm_or_si128(fields, _mm_shuffle_epi8(odd_parity_bits(), nibbles));
}

/* the 16 sign bytes of four sub-blocks' sign words (IQ2_XXS, IQ3_XXS: four 7-bit fields at bits 0, 7, 14, 21) */
static inline __m128i word_signs16(__m128i words) {
    const __m128i fields = _mm_or_si128(_mm_or_si128(_mm_and_si128(words, _mm_set1_epi32(0x7F)), _mm_and_si128(_mm_slli_epi32(words, 1), _mm_set1_epi32(0x7F00))),
                                        _mm_or_si128(_mm_and_si128(_mm_slli_epi32(words, 2), _mm_set1_epi32(0x7F0000)),
                                                     _mm_and_si128(_mm_slli_epi32(words, 3), _mm_set1_epi32(0x7F000000))));
    return parity_signs16(fields);
}
#endif

/* four sign bytes from the four 7-bit fields of w at bits 0, 7, 14, 21 */
static inline uint32_t signs_of_fields(uint32_t w) {
#if defined(LC_AVX2)
    return (uint32_t)_mm_cvtsi128_si32(word_signs16(_mm_cvtsi32_si128((int)w)));
#else
    return sign_bytes4(ksigns_iq2xs[w & 127], ksigns_iq2xs[(w >> 7) & 127], ksigns_iq2xs[(w >> 14) & 127],
                       ksigns_iq2xs[(w >> 21) & 127]);
#endif
}

static inline void iq2_xxs_indices(const block_iq2_xxs *x, int ib32, uint32_t idx[4]) {
    const uint8_t *aux8 = (const uint8_t *)(x->qs + 4 * ib32);
    for (int l = 0; l < 4; ++l) idx[l] = aux8[l];
}
static inline grid_signs iq2_xxs_signs(const block_iq2_xxs *x, int ib32) {
    uint32_t aux;
    memcpy(&aux, x->qs + 4 * ib32 + 2, sizeof(aux));
    return (grid_signs){signs_of_fields(aux), (int)(aux >> 28), (int)(aux >> 28)};
}

static inline void iq2_xs_indices(const block_iq2_xs *x, int ib32, uint32_t idx[4]) {
    for (int l = 0; l < 4; ++l) idx[l] = x->qs[4 * ib32 + l] & 511;
}
static inline grid_signs iq2_xs_signs(const block_iq2_xs *x, int ib32) {
    const uint16_t *q = x->qs + 4 * ib32;
#if defined(LC_AVX2)
    const __m128i fields = _mm_srli_epi16(_mm_loadl_epi64((const __m128i *)q), 9);
    const uint32_t signs = (uint32_t)_mm_cvtsi128_si32(parity_signs16(_mm_packus_epi16(fields, fields)));
#else
    const uint32_t signs = sign_bytes4(ksigns_iq2xs[q[0] >> 9], ksigns_iq2xs[q[1] >> 9], ksigns_iq2xs[q[2] >> 9], ksigns_iq2xs[q[3] >> 9]);
#endif
    return (grid_signs){signs, x->scales[ib32] & 0xF, x->scales[ib32] >> 4};
}

/* IQ2_S's and IQ3_S's indices: 8 bits of qs, the high bits from qh (in vectors on AVX2: a loop of scalar
 * shifts had made IQ3_S's dense decode 10% slower) */
static inline void iq2_s_indices(const block_iq2_s *x, int ib32, uint32_t idx[4]) {
#if defined(LC_AVX2)
    uint32_t low;
    memcpy(&low, x->qs + 4 * ib32, 4);
    const __m128i high = _mm_and_si128(_mm_sllv_epi32(_mm_set1_epi32(x->qh[ib32]), _mm_setr_epi32(8, 6, 4, 2)), _mm_set1_epi32(0x300));
    _mm_storeu_si128((__m128i *)idx, _mm_or_si128(_mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)low)), high));
#else
    for (int l = 0; l < 4; ++l) idx[l] = x->qs[4 * ib32 + l] | ((x->qh[ib32] << (8 - 2 * l)) & 0x300);
#endif
}
static inline grid_signs iq2_s_signs(const block_iq2_s *x, int ib32) {
    grid_signs g = {0, x->scales[ib32] & 0xF, x->scales[ib32] >> 4};
    memcpy(&g.signs, x->qs + QK_K / 8 + 4 * ib32, 4);
    return g;
}

static inline void iq3_xxs_indices(const block_iq3_xxs *x, int ib32, uint32_t idx[8]) {
    for (int l = 0; l < 8; ++l) idx[l] = x->qs[8 * ib32 + l];
}
static inline grid_signs iq3_xxs_signs(const block_iq3_xxs *x, int ib32) {
    uint32_t aux;
    memcpy(&aux, x->qs + QK_K / 4 + 4 * ib32, sizeof(aux));
    return (grid_signs){signs_of_fields(aux), (int)(aux >> 28), (int)(aux >> 28)};
}

static inline void iq3_s_indices(const block_iq3_s *x, int ib32, uint32_t idx[8]) {
#if defined(LC_AVX2)
    const __m256i high = _mm256_and_si256(_mm256_sllv_epi32(_mm256_set1_epi32(x->qh[ib32]), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1)),
                                          _mm256_set1_epi32(256));
    const __m256i low = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * ib32)));
    _mm256_storeu_si256((__m256i *)idx, _mm256_or_si256(low, high));
#else
    for (int l = 0; l < 8; ++l) idx[l] = x->qs[8 * ib32 + l] | ((x->qh[ib32] << (8 - l)) & 256);
#endif
}
static inline grid_signs iq3_s_signs(const block_iq3_s *x, int ib32) {
    const int ls = (x->scales[ib32 / 2] >> 4 * (ib32 % 2)) & 0xF;
    grid_signs g = {0, ls, ls};
    memcpy(&g.signs, x->signs + 4 * ib32, 4);
    return g;
}

/* each type's grid: its table and the bytes of an entry */
#define IQ2_XXS_GRID iq2xxs_grid, 8
#define IQ2_XS_GRID iq2xs_grid, 8
#define IQ2_S_GRID iq2s_grid, 8
#define IQ3_XXS_GRID iq3xxs_grid, 4
#define IQ3_S_GRID iq3s_grid, 4

/* the 32 grid magnitudes at idx, looked up one by one */
static inline void grid_entries(const void *table, int entry_bytes, const uint32_t *idx, uint8_t out[32]) {
    for (int e = 0; e < 32 / entry_bytes; ++e) memcpy(out + entry_bytes * e, (const uint8_t *)table + (size_t)entry_bytes * idx[e], (size_t)entry_bytes);
}

#if defined(LC_AVX2)
/* 0xFF at each of 32 values whose sign bit is set (ggml's way: each sign byte spread over its 8 values,
 * compared with the bit of each value) */
static inline __m256i sign_mask32(uint32_t signs) {
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)signs),
                                               _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* sub-block ib's two int16 scales, each spread over its 128-bit half, from a vector of all 16 at
 * int16 word (ib % 2) * 4 + ib / 2 of each half (ggml's IQ1_M order) or word ib (IQ1_S) */
static inline __m256i scale_word_pair(__m256i scales, int word) {
    return _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0202 * word + 0x0100)));
}

/* the scales of a sub-block's two 16s, each in the int16 of its 128-bit half */
static inline __m256i scale_pair(int lo, int hi) { return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo)); }

#endif

static inline void scales_of_32(unpacked_block *u, int ib32, int lo, int hi) {
    u->scale[2 * ib32] = (int8_t)(2 * lo + 1);
    u->scale[2 * ib32 + 1] = (int8_t)(2 * hi + 1);
}

/* the sub-block's signed values (its magnitudes m), its scales, into u */
static inline void put_sub32(unpacked_block *u, int ib32, const uint8_t m[32], grid_signs g) {
    scales_of_32(u, ib32, g.ls_lo, g.ls_hi);
    int8_t *q = u->q + 32 * ib32;
#if defined(LC_AVX2)
    const __m256i negate = sign_mask32(g.signs);
    _mm256_storeu_si256((__m256i *)q, _mm256_sub_epi8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)m), negate), negate));
#else
    for (int j = 0; j < 32; ++j) q[j] = (g.signs >> j) & 1 ? (int8_t)-m[j] : (int8_t)m[j];
#endif
}

#define GRID_UNPACK(name, grid)                                                          \
    static void unpack_##name(const block_##name *x, unpacked_block *u) {                \
        u->d = LC_H2F(x->d);                                                             \
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32) {                                   \
            uint32_t idx[8];                                                             \
            uint8_t m[32];                                                               \
            name##_indices(x, ib32, idx);                                                \
            grid_entries(grid, idx, m);                                                  \
            put_sub32(u, ib32, m, name##_signs(x, ib32));                                \
        }                                                                                \
    }
GRID_UNPACK(iq2_xxs, IQ2_XXS_GRID)
GRID_UNPACK(iq2_xs, IQ2_XS_GRID)
GRID_UNPACK(iq2_s, IQ2_S_GRID)
GRID_UNPACK(iq3_xxs, IQ3_XXS_GRID)
GRID_UNPACK(iq3_s, IQ3_S_GRID)

static inline void put_ternary8(int8_t *q, uint64_t entry) {
    memcpy(q, &entry, 8);  /* iq1s_grid's bytes are int8 -1, 0, 1 */
}

static void unpack_iq1_s(const block_iq1_s *x, unpacked_block *u) {
    u->d = LC_H2F(x->d);
    const uint8_t *qs = x->qs;
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4) {
        const int qh = x->qh[ib], ls = (qh >> 12) & 7;
        scales_of_32(u, ib, ls, ls);
        for (int l = 0; l < 4; ++l) {
            put_ternary8(u->q + 32 * ib + 8 * l, iq1s_grid[qs[l] | (((qh >> 3 * l) & 7) << 8)]);
            u->delta[4 * ib + l] = (int8_t)(qh & 0x8000 ? -1 : 1);
        }
    }
}

/* IQ1_M's f16 scale, spread over the top nibbles of its four scale words */
static inline float iq1_m_d(const block_iq1_m *x) {
    uint16_t sc[4];
    memcpy(sc, x->scales, sizeof(sc));
    return LC_H2F((lc_fp16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000)));
}

static void unpack_iq1_m(const block_iq1_m *x, unpacked_block *u) {
    uint16_t sc[4];
    memcpy(sc, x->scales, sizeof(sc));
    u->d = iq1_m_d(x);
    const uint8_t *qs = x->qs, *qh = x->qh;
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4, qh += 2) {
        const int shift = 6 * (ib % 2);
        scales_of_32(u, ib, (sc[ib / 2] >> shift) & 7, (sc[ib / 2] >> (shift + 3)) & 7);
        const uint16_t idx[4] = {(uint16_t)(qs[0] | ((qh[0] << 8) & 0x700)), (uint16_t)(qs[1] | ((qh[0] << 4) & 0x700)),
                                 (uint16_t)(qs[2] | ((qh[1] << 8) & 0x700)), (uint16_t)(qs[3] | ((qh[1] << 4) & 0x700))};
        const int signs[4] = {qh[0] & 0x08, qh[0] & 0x80, qh[1] & 0x08, qh[1] & 0x80};
        for (int l = 0; l < 4; ++l) {
            put_ternary8(u->q + 32 * ib + 8 * l, iq1s_grid[idx[l]]);
            u->delta[4 * ib + l] = (int8_t)(signs[l] ? -1 : 1);
        }
    }
}

/* ggml's AVX2 lanes: lane l sums values 4l..4l+3 of every 32, each times its 16 values' scale */
static inline void scaled_lanes(const unpacked_block *u, const int8_t *q8, int32_t lanes[8]) {
#if defined(LC_AVX2)
    /* |value| <= 62: the byte pairs of |q| * (q8 signed by q) stay exact in int16, as in ggml */
    __m256i acc = _mm256_setzero_si256();
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(u->q + 32 * ib));
        const __m256i y = _mm256_loadu_si256((const __m256i *)(q8 + 32 * ib));
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scale_pair(u->scale[2 * ib], u->scale[2 * ib + 1])));
    }
    _mm256_storeu_si256((__m256i *)lanes, acc);
#else
    for (int l = 0; l < 8; ++l) lanes[l] = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        const int8_t *q = u->q + 32 * ib, *y = q8 + 32 * ib;
        for (int l = 0; l < 8; ++l) {
            const int sum = q[4 * l] * y[4 * l] + q[4 * l + 1] * y[4 * l + 1] + q[4 * l + 2] * y[4 * l + 2] + q[4 * l + 3] * y[4 * l + 3];
            lanes[l] += u->scale[2 * ib + l / 4] * sum;
        }
    }
#endif
}

/* the IQ1 offsets' lanes: lane l sums +-q8 over values 4l..4l+3 of every 32, times their scale */
static inline void delta_lanes(const unpacked_block *u, const int8_t *q8, int32_t lanes[8]) {
    for (int l = 0; l < 8; ++l) lanes[l] = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        const int8_t *y = q8 + 32 * ib;
        for (int l = 0; l < 8; ++l)
            lanes[l] += u->scale[2 * ib + l / 4] * u->delta[4 * ib + l / 2] * (y[4 * l] + y[4 * l + 1] + y[4 * l + 2] + y[4 * l + 3]);
    }
}

static inline int32_t lanes_sum(const int32_t lanes[8]) {
    int32_t s = 0;
    for (int l = 0; l < 8; ++l) s += lanes[l];
    return s;
}

#if defined(LC_AVX2)
/* four 16-bit grid indices: the bytes of low (bits 0-7) and above them the first `bits` bits of each
 * `width`-bit field of high. pdep where the build has BMI2; shifts and masks elsewhere (pdep is slow
 * microcode on AMD before Zen 3, where isa.py leaves BMI2 out) */
static inline uint64_t grid_indices4(uint32_t low, uint32_t high, int width, int bits) {
    const uint64_t field = (1u << bits) - 1;
#if defined(__BMI2__)
    uint64_t src_mask = 0, dst_mask = 0;
    for (int l = 0; l < 4; ++l) {
        src_mask |= field << (width * l);
        dst_mask |= ((1ULL << width) - 1) << (16 * l + 8);
    }
    return _pdep_u64(low, 0x00FF00FF00FF00FFULL) | _pdep_u64(high & src_mask, dst_mask);
#else
    uint64_t bytes = low, fields = 0;
    bytes = (bytes | bytes << 16) & 0x0000FFFF0000FFFFULL;
    bytes = (bytes | bytes << 8) & 0x00FF00FF00FF00FFULL;
    for (int l = 0; l < 4; ++l) fields |= ((high >> (width * l)) & field) << (16 * l + 8);
    return bytes | fields;
#endif
}

/* the 32 magnitudes of four 8-byte grid entries at the 16-bit indices idx, looked up one by one (ggml's
 * way; a zmm gather of two sub-blocks' was 7-20% slower a row on Zen 4) */
static inline __m256i grid_entries4(const uint64_t *table, uint64_t idx) {
    return _mm256_set_epi64x((int64_t)table[idx >> 48], (int64_t)table[(idx >> 32) & 0xFFFF], (int64_t)table[(idx >> 16) & 0xFFFF],
                             (int64_t)table[idx & 0xFFFF]);
}

/* the same of eight 4-byte entries */
static inline __m256i grid_entries8(const uint32_t *table, uint64_t lo, uint64_t hi) {
    return _mm256_set_epi32((int)table[hi >> 48], (int)table[(hi >> 32) & 0xFFFF], (int)table[(hi >> 16) & 0xFFFF], (int)table[hi & 0xFFFF],
                            (int)table[lo >> 48], (int)table[(lo >> 32) & 0xFFFF], (int)table[(lo >> 16) & 0xFFFF], (int)table[lo & 0xFFFF]);
}

static inline uint32_t load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* sub-block k's four bytes of a vector of 16 (in both 128-bit halves), each over its 8 values */
static inline __m256i spread_bytes4(__m256i bytes16, int k) {
    return _mm256_shuffle_epi8(bytes16, _mm256_add_epi8(_mm256_set1_epi8((char)(4 * k)), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)));
}

/* the activations y with sub-block k's sign bytes of signs16 (16 sign bytes in both 128-bit halves) applied */
static inline __m256i signed_activations(__m256i y, __m256i signs16, int k) {
    const __m256i spread = spread_bytes4(signs16, k), bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
#if defined(LC_AVX512)
    return _mm256_mask_sub_epi8(y, _mm256_test_epi8_mask(spread, bit), _mm256_setzero_si256(), y);
#else
    const __m256i negative = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_sub_epi8(_mm256_xor_si256(y, negative), negative);
#endif
}

/* the odd scales 2 * s + 1 of four sub-blocks' scale fields s (int16 word k: sub-block k's first 16
 * values in lo, its second 16 in hi), word k of each 128-bit half, as scale_word_pair takes them */
static inline __m256i odd_scales4(__m128i lo, __m128i hi) {
    const __m128i one = _mm_set1_epi16(1);
    return _mm256_set_m128i(_mm_or_si128(_mm_slli_epi16(hi, 1), one), _mm_or_si128(_mm_slli_epi16(lo, 1), one));
}

/* the 4-bit scales of four sub-blocks, low nibble the first 16 values' (IQ2_XS, IQ2_S) */
static inline __m256i nibble_scales4(const uint8_t *scales) {
    const __m128i s = _mm_cvtepu8_epi16(_mm_cvtsi32_si128((int)load_u32(scales)));
    return odd_scales4(_mm_and_si128(s, _mm_set1_epi16(0xF)), _mm_srli_epi16(s, 4));
}

/* a grid block's lanes (ggml's AVX2 lanes) four sub-blocks a step: the activations signed by the
 * sub-blocks' sign bytes (NAME_signs16), times the grid magnitudes (NAME_grid), each 16's pair sums
 * times its odd scale (NAME_scales4); byte pairs are exact in int16, the magnitudes being <= 62 */
#define GRID_LANES(name)                                                                                             static inline __m256i name##_lanes(const block_##name *x, const int8_t *q8) {                                        __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};                                             _Pragma("GCC unroll 2") for (int g = 0; g < 2; ++g) {                                                                const __m256i signs16 = _mm256_broadcastsi128_si256(name##_signs16(x, g)), scales = name##_scales4(x, g);             _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) {                                                                const int ib = 4 * g + k;                                                                                        const __m256i y = signed_activations(_mm256_loadu_si256((const __m256i *)(q8 + 32 * ib)), signs16, k);                 acc[k & 1] = lc_madd_acc_epi16(acc[k & 1], _mm256_maddubs_epi16(name##_grid(x, ib), y), scale_word_pair(scales, k));             }                                                                                                            }                                                                                                                return _mm256_add_epi32(acc[0], acc[1]);                                                                     }

/* IQ2_XXS and IQ3_XXS keep a sub-block's four 7-bit sign fields and its scale (top 4 bits) in one word */
static inline __m256i word_scales4(__m128i words) {
    const __m128i s = _mm_srli_epi32(words, 28);
    const __m128i s16 = _mm_packs_epi32(s, s);
    return odd_scales4(s16, s16);
}

/* IQ2_XXS: a sub-block is two words, its 4 index bytes, then its sign word */
static inline __m128i iq2_xxs_words(const block_iq2_xxs *x, int g) {
    const __m128 lo = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(x->qs + 16 * g))), hi = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(x->qs + 16 * g + 8)));
    return _mm_castps_si128(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
}
static inline __m128i iq2_xxs_signs16(const block_iq2_xxs *x, int g) { return word_signs16(iq2_xxs_words(x, g)); }
static inline __m256i iq2_xxs_scales4(const block_iq2_xxs *x, int g) { return word_scales4(iq2_xxs_words(x, g)); }
static inline __m256i iq2_xxs_grid(const block_iq2_xxs *x, int ib) {
    return grid_entries4(iq2xxs_grid, grid_indices4(load_u32(x->qs + 4 * ib), 0, 1, 0));
}

/* IQ3_XXS: 8 index bytes a sub-block, then the sign words */
static inline __m128i iq3_xxs_words(const block_iq3_xxs *x, int g) { return _mm_loadu_si128((const __m128i *)(x->qs + QK_K / 4 + 16 * g)); }
static inline __m128i iq3_xxs_signs16(const block_iq3_xxs *x, int g) { return word_signs16(iq3_xxs_words(x, g)); }
static inline __m256i iq3_xxs_scales4(const block_iq3_xxs *x, int g) { return word_scales4(iq3_xxs_words(x, g)); }
static inline __m256i iq3_xxs_grid(const block_iq3_xxs *x, int ib) {
    return grid_entries8(iq3xxs_grid, grid_indices4(load_u32(x->qs + 8 * ib), 0, 1, 0), grid_indices4(load_u32(x->qs + 8 * ib + 4), 0, 1, 0));
}

/* IQ2_XS: 16-bit quants, a 9-bit index and a 7-bit sign field */
static inline __m128i iq2_xs_signs16(const block_iq2_xs *x, int g) {
    const __m256i fields = _mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(x->qs + 16 * g)), 9);
    return parity_signs16(_mm_packus_epi16(_mm256_castsi256_si128(fields), _mm256_extracti128_si256(fields, 1)));
}
static inline __m256i iq2_xs_scales4(const block_iq2_xs *x, int g) { return nibble_scales4(x->scales + 4 * g); }
static inline __m256i iq2_xs_grid(const block_iq2_xs *x, int ib) {
    uint64_t q;
    memcpy(&q, x->qs + 4 * ib, sizeof(q));
    return grid_entries4(iq2xs_grid, q & 0x01FF01FF01FF01FFULL);
}

/* IQ2_S: index bytes with 2 high bits each from qh, then the sign bytes */
static inline __m128i iq2_s_signs16(const block_iq2_s *x, int g) { return _mm_loadu_si128((const __m128i *)(x->qs + QK_K / 8 + 16 * g)); }
static inline __m256i iq2_s_scales4(const block_iq2_s *x, int g) { return nibble_scales4(x->scales + 4 * g); }
static inline __m256i iq2_s_grid(const block_iq2_s *x, int ib) {
    return grid_entries4(iq2s_grid, grid_indices4(load_u32(x->qs + 4 * ib), x->qh[ib], 2, 2));
}

/* IQ3_S: 8 index bytes a sub-block with 1 high bit each from qh, the sign bytes apart, a 4-bit scale a sub-block */
static inline __m128i iq3_s_signs16(const block_iq3_s *x, int g) { return _mm_loadu_si128((const __m128i *)(x->signs + 16 * g)); }
static inline __m256i iq3_s_scales4(const block_iq3_s *x, int g) {
    const __m128i s = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(x->scales[2 * g] | x->scales[2 * g + 1] << 8));
    const __m128i ls = _mm_unpacklo_epi16(_mm_and_si128(s, _mm_set1_epi16(0xF)), _mm_srli_epi16(s, 4));
    return odd_scales4(ls, ls);
}
static inline __m256i iq3_s_grid(const block_iq3_s *x, int ib) {
    const uint32_t qh = x->qh[ib];
    return grid_entries8(iq3s_grid, grid_indices4(load_u32(x->qs + 8 * ib), qh, 1, 1), grid_indices4(load_u32(x->qs + 8 * ib + 4), qh >> 4, 1, 1));
}

/* vec_dot of the IQ2/IQ3 types: d_w * d_x times the lanes fused into 8 float sums, times the type's
 * factor (ggml's 0.125 or 0.25 for the grids' halved scales) after hsum_float_8 */
#define GRID_VEC_DOT(name, factor)                                                                              \
    void lc_vec_dot_##name(int n, float *s, const void *w_row, const void *x_row) {                             \
        const block_##name *x = (const block_##name *)w_row;                                                    \
        const block_q8_K *y = (const block_q8_K *)x_row;                                                        \
        __m256 acc = _mm256_setzero_ps();                                                                       \
        for (int i = 0; i < n / QK_K; ++i)                                                                      \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(LC_H2F(x[i].d) * y[i].d), _mm256_cvtepi32_ps(name##_lanes(x + i, y[i].qs)), acc); \
        *s = (factor) * lc_hsum256(acc);                                                                        \
    }                                                                                                           \
    TILED(name, factor, grid_block_sum)
#else
#define GRID_VEC_DOT(name, factor)                                                       \
    void lc_vec_dot_##name(int n, float *s, const void *w_row, const void *x_row) {      \
        const block_##name *x = (const block_##name *)w_row;                             \
        const block_q8_K *y = (const block_q8_K *)x_row;                                 \
        float acc[8] = {0};                                                              \
        unpacked_block u;                                                                \
        for (int i = 0; i < n / QK_K; ++i) {                                             \
            int32_t lanes[8];                                                            \
            unpack_##name(x + i, &u);                                                    \
            scaled_lanes(&u, y[i].qs, lanes);                                            \
            const float d = u.d * y[i].d;                                                \
            for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, (float)lanes[l], acc[l]);       \
        }                                                                                \
        *s = (factor) * lc_hsum8_ordered(acc);                                           \
    }                                                                                    \
    TILED(name, factor, grid_block_sum)
#endif

/* the block's whole integer sum, as the tiled kernel adds it up */
static inline int32_t grid_block_sum(const unpacked_block *u, const int8_t *q8) {
    int32_t lanes[8];
    scaled_lanes(u, q8, lanes);
    return lanes_sum(lanes);
}

/* the tiled kernel stores an IQ1 value as 8 * grid + offset (its d_w is d / 8) */
static inline int32_t iq1_block_sum(const unpacked_block *u, const int8_t *q8) {
    int32_t lanes_delta[8];
    delta_lanes(u, q8, lanes_delta);
    return 8 * grid_block_sum(u, q8) + lanes_sum(lanes_delta);
}

/* llama.cpp's tiled kernel: the block's integer sum times d_w (the f16 d times the type's factor),
 * fused-multiply-added with d_x into one running sum */
#define TILED(name, factor, block_sum)                                                   \
    void lc_vec_dot_##name##_tiled(int n, float *s, const void *w_row, const void *x_row) { \
        const block_##name *x = (const block_##name *)w_row;                             \
        const block_q8_K *y = (const block_q8_K *)x_row;                                 \
        float acc = 0.0f;                                                                \
        unpacked_block u;                                                                \
        for (int i = 0; i < n / QK_K; ++i) {                                             \
            unpack_##name(x + i, &u);                                                    \
            acc = fmaf((float)block_sum(&u, y[i].qs) * (u.d * (factor)), y[i].d, acc);   \
        }                                                                                \
        *s = acc;                                                                        \
    }

#if defined(LC_AVX2)
GRID_LANES(iq2_xxs)
GRID_LANES(iq2_xs)
GRID_LANES(iq2_s)
GRID_LANES(iq3_xxs)
GRID_LANES(iq3_s)
#endif
GRID_VEC_DOT(iq2_xxs, 0.125f)
GRID_VEC_DOT(iq2_xs, 0.125f)
GRID_VEC_DOT(iq2_s, 0.125f)
GRID_VEC_DOT(iq3_xxs, 0.25f)
GRID_VEC_DOT(iq3_s, 1.0f)

#if defined(LC_AVX2)
/* acc + the lanes of 32 small signed values q (IQ1's grid entries) with the activations y: |q| times y
 * signed by q, each 16's pair sums times its scale */
static inline __m256i signed_lanes_acc(__m256i acc, __m256i q, __m256i y, __m256i scale) {
    return lc_madd_acc_epi16(acc, _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)), scale);
}

/* IQ1_S's grid lanes of a block, and its offsets' sum: Q8_K's per-16 sums times each sub-block's offset
 * sign (qh bit 15) and scale */
static inline __m256i iq1_s_lanes(const block_iq1_s *x, const block_q8_K *y, int32_t *sum_delta) {
    const __m128i qh = _mm_loadu_si128((const __m128i *)x->qh);
    const __m128i scales8 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(qh, 11), _mm_set1_epi16(14)), _mm_set1_epi16(1));
    const __m256i scales = _mm256_broadcastsi128_si256(scales8);
    const __m128i signed_scales = _mm_sign_epi16(scales8, _mm_or_si128(qh, _mm_set1_epi16(1)));
    const __m256i each_16 = _mm256_set_m128i(_mm_unpackhi_epi16(signed_scales, signed_scales), _mm_unpacklo_epi16(signed_scales, signed_scales));
    *sum_delta = lc_hsum_epi32_256(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), each_16));
    __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 8
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        const __m256i grid = grid_entries4(iq1s_grid, grid_indices4(load_u32(x->qs + 4 * ib), x->qh[ib], 3, 3));
        acc[ib & 1] = signed_lanes_acc(acc[ib & 1], grid, _mm256_loadu_si256((const __m256i *)(y->qs + 32 * ib)), scale_word_pair(scales, ib));
    }
    return _mm256_add_epi32(acc[0], acc[1]);
}

/* IQ1_M's 16 odd scales as int16, in ggml's order: the low 128 bits hold the first 16 values' scale of
 * sub-blocks 0, 2, 4, 6, 1, 3, 5, 7; the high 128 bits the second 16 values' */
static inline __m256i iq1_m_scales(const block_iq1_m *x) {
    int64_t sc;
    memcpy(&sc, x->scales, sizeof(sc));
    const __m256i fields = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(sc), _mm256_setr_epi64x(0, 6, 3, 9)), _mm256_set1_epi16(7));
    return _mm256_add_epi16(_mm256_add_epi16(fields, fields), _mm256_set1_epi16(1));
}

/* the offset signs of four sub-blocks' 8-value groups, 0xFF where negative: byte 4k + l
 * sub-block k's group l, sign bit 3 (l even) or 7 (l odd) of its qh byte l / 2 */
static inline __m256i iq1_m_delta_signs16(const uint8_t *qh) {
    const __m128i bytes = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)qh), _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
    const __m128i bit = _mm_set1_epi16(0x8008);
    return _mm256_broadcastsi128_si256(_mm_cmpeq_epi8(_mm_and_si128(bytes, bit), bit));
}

/* IQ1_M's grid lanes and offset lanes (each 8 values' offset sign times the activations) of a block,
 * four sub-blocks a step */
static inline void iq1_m_lanes(const block_iq1_m *x, const int8_t *q8, __m256i *lanes, __m256i *lanes_delta) {
    const __m256i scales = iq1_m_scales(x), ones = _mm256_set1_epi8(1);
    __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, acc_delta[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 2
    for (int g = 0; g < 2; ++g) {
        const __m256i delta_signs16 = iq1_m_delta_signs16(x->qh + 8 * g);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
            const int ib = 4 * g + k;
            uint16_t high;
            memcpy(&high, x->qh + 2 * ib, sizeof(high));
            const __m256i y = _mm256_loadu_si256((const __m256i *)(q8 + 32 * ib)), scale = scale_word_pair(scales, ib / 2 + 4 * (ib % 2));
            acc[k & 1] = signed_lanes_acc(acc[k & 1], grid_entries4(iq1s_grid, grid_indices4(load_u32(x->qs + 4 * ib), high, 4, 3)), y, scale);
            const __m256i negative = spread_bytes4(delta_signs16, k), y_delta = _mm256_sub_epi8(_mm256_xor_si256(y, negative), negative);
            acc_delta[k & 1] = lc_madd_acc_epi16(acc_delta[k & 1], _mm256_maddubs_epi16(ones, y_delta), scale);
        }
    }
    *lanes = _mm256_add_epi32(acc[0], acc[1]);
    *lanes_delta = _mm256_add_epi32(acc_delta[0], acc_delta[1]);
}

/* IQ1_S: the grid lanes into 8 fused float sums; the offsets' sum into one (ggml's accum1, a contracted
 * d * sumi1 + accum1), added as IQ1S_DELTA times it */
void lc_vec_dot_iq1_s(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq1_s *x = (const block_iq1_s *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    __m256 acc = _mm256_setzero_ps();
    float acc_delta = 0.0f;
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t sum_delta;
        const __m256i lanes = iq1_s_lanes(x + i, y + i, &sum_delta);
        const float d = y[i].d * LC_H2F(x[i].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_set1_ps(d), acc);
        acc_delta = fmaf(d, (float)sum_delta, acc_delta);
    }
    *s = lc_hsum256(acc) + IQ1S_DELTA * acc_delta;
}

/* IQ1_M: grid lanes and offset lanes, each into 8 fused float sums */
void lc_vec_dot_iq1_m(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq1_m *x = (const block_iq1_m *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    __m256 acc = _mm256_setzero_ps(), acc_delta = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; ++i) {
        __m256i lanes, lanes_delta;
        iq1_m_lanes(x + i, y[i].qs, &lanes, &lanes_delta);
        const __m256 d = _mm256_set1_ps(y[i].d * iq1_m_d(x + i));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), d, acc);
        acc_delta = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes_delta), d, acc_delta);
    }
    *s = lc_hsum256(acc) + IQ1M_DELTA * lc_hsum256(acc_delta);
}
#else
/* IQ1_S: the grid lanes as above; the offsets through Q8_K's per-16 sums into one scalar sum
 * (ggml's accum1, a contracted d * sumi1 + accum1), added as IQ1S_DELTA times it */
void lc_vec_dot_iq1_s(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq1_s *x = (const block_iq1_s *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc[8] = {0}, acc_delta = 0.0f;
    unpacked_block u;
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t lanes[8], sum_delta = 0;
        unpack_iq1_s(x + i, &u);
        scaled_lanes(&u, y[i].qs, lanes);
        for (int ib = 0; ib < QK_K / 32; ++ib)
            sum_delta += (y[i].bsums[2 * ib] + y[i].bsums[2 * ib + 1]) * u.delta[4 * ib] * u.scale[2 * ib];
        const float d = y[i].d * u.d;
        for (int l = 0; l < 8; ++l) acc[l] = fmaf(d, (float)lanes[l], acc[l]);
        acc_delta = fmaf(d, (float)sum_delta, acc_delta);
    }
    *s = lc_hsum8_ordered(acc) + IQ1S_DELTA * acc_delta;
}

/* IQ1_M: grid lanes and offset lanes, each into 8 fused float sums */
void lc_vec_dot_iq1_m(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq1_m *x = (const block_iq1_m *)w_row;
    const block_q8_K *y = (const block_q8_K *)x_row;
    float acc[8] = {0}, acc_delta[8] = {0};
    unpacked_block u;
    for (int i = 0; i < n / QK_K; ++i) {
        int32_t lanes[8], lanes_delta[8];
        unpack_iq1_m(x + i, &u);
        scaled_lanes(&u, y[i].qs, lanes);
        delta_lanes(&u, y[i].qs, lanes_delta);
        const float d = y[i].d * u.d;
        for (int l = 0; l < 8; ++l) {
            acc[l] = fmaf(d, (float)lanes[l], acc[l]);
            acc_delta[l] = fmaf(d, (float)lanes_delta[l], acc_delta[l]);
        }
    }
    *s = lc_hsum8_ordered(acc) + IQ1M_DELTA * lc_hsum8_ordered(acc_delta);
}

#endif

TILED(iq1_s, 0.125f, iq1_block_sum)
TILED(iq1_m, 0.125f, iq1_block_sum)

/* for the packed GEMM (mm_packed.c): a block's values + 128 as unsigned bytes (IQ1: 8 * grid + offset
 * + 128, the tiled kernel's codes), the scale of each 16 values, and d_w as the tiled kernel takes it */
int lc_iq_grid_unpack_biased(int type, const void *blk, uint8_t vals[QK_K], int32_t scale[QK_K / 16], float *d) {
    unpacked_block u;
    float factor = 0.125f;
    switch (type) {
    case LC_TYPE_IQ2_XXS: unpack_iq2_xxs(blk, &u); break;
    case LC_TYPE_IQ2_XS: unpack_iq2_xs(blk, &u); break;
    case LC_TYPE_IQ2_S: unpack_iq2_s(blk, &u); break;
    case LC_TYPE_IQ3_XXS: unpack_iq3_xxs(blk, &u); factor = 0.25f; break;
    case LC_TYPE_IQ3_S: unpack_iq3_s(blk, &u); factor = 1.0f; break;
    case LC_TYPE_IQ1_S: unpack_iq1_s(blk, &u); break;
    case LC_TYPE_IQ1_M: unpack_iq1_m(blk, &u); break;
    default: return 0;
    }
    const int iq1 = type == LC_TYPE_IQ1_S || type == LC_TYPE_IQ1_M;
    for (int k = 0; k < QK_K; ++k) vals[k] = (uint8_t)((iq1 ? 8 * u.q[k] + u.delta[k / 8] : u.q[k]) + 128);
    for (int g = 0; g < QK_K / 16; ++g) scale[g] = u.scale[g];
    *d = u.d * factor;
    return 1;
}

/* ---- dequantization, in ggml's float operations (dequantize_row_*) ------------------------------ */

/* per 16 values ggml's multiplier (IQ2: d * (0.5 + ls) * 0.25 with ls = scale >> 1; IQ3_XXS the same
 * times 0.5; IQ3_S and IQ1: d * scale), times the value (IQ1: plus its offset of +-IQ1S_DELTA) */
#define GRID_DEQUANT(name, body)                                      \
    void lc_dequant_row_##name(const void *w_row, float *y, int64_t n) {                  \
        const block_##name *x = (const block_##name *)w_row;                             \
        unpacked_block u;                                                                \
        for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {                              \
            unpack_##name(x + i, &u);                                                    \
            for (int g = 0; g < QK_K / 16; ++g) {                                        \
                body                                                                     \
            }                                                                            \
        }                                                                                \
    }
#define HALF_SCALE_BODY(factor)                                                          \
    const float db = u.d * (0.5f + (float)(u.scale[g] >> 1)) * (factor);                \
    for (int j = 16 * g; j < 16 * g + 16; ++j) y[j] = db * (float)u.q[j];
#define ODD_SCALE_BODY                                                                   \
    const float db = u.d * (float)u.scale[g];                                            \
    for (int j = 16 * g; j < 16 * g + 16; ++j) y[j] = db * (float)u.q[j];
#define IQ1_BODY                                                                         \
    const float dl = u.d * (float)u.scale[g];                                            \
    for (int j = 16 * g; j < 16 * g + 16; ++j)                                           \
        y[j] = dl * ((float)u.q[j] + (u.delta[j / 8] < 0 ? -IQ1S_DELTA : IQ1S_DELTA));

GRID_DEQUANT(iq2_xxs, HALF_SCALE_BODY(0.25f))
GRID_DEQUANT(iq2_xs, HALF_SCALE_BODY(0.25f))
GRID_DEQUANT(iq2_s, HALF_SCALE_BODY(0.25f))
GRID_DEQUANT(iq3_xxs, HALF_SCALE_BODY(0.5f))
GRID_DEQUANT(iq3_s, ODD_SCALE_BODY)
GRID_DEQUANT(iq1_s, IQ1_BODY)
GRID_DEQUANT(iq1_m, IQ1_BODY)

/* ---- ternary types: digits 0, 1, 2 standing for -1, 0, 1 ------------------------------------ */

#if defined(LC_AVX2)
/* 3x and 9x of each byte, modulo 256 (ggml's: adds, and a shift by 3 kept within the byte) */
static inline __m256i times3_epi8(__m256i x) { return _mm256_add_epi8(x, _mm256_add_epi8(x, x)); }
static inline __m256i times9_epi8(__m256i x) {
    return _mm256_add_epi8(_mm256_and_si256(_mm256_slli_epi16(x, 3), _mm256_set1_epi8(-8)), x);
}

/* of each byte v its top base-3 digit, (v * 3) >> 8, as ggml takes it: 3v/4 by two rounding averages of
 * v - 1 (saturated), then the top two bits (the same digit for every v) */
static inline __m256i top_digit(__m256i v) {
    const __m256i a = _mm256_subs_epu8(v, _mm256_set1_epi8(1));
    const __m256i three_quarters = _mm256_avg_epu8(a, _mm256_avg_epu8(a, _mm256_setzero_si256()));
    return _mm256_and_si256(_mm256_srli_epi16(three_quarters, 6), _mm256_set1_epi8(3));
}

/* TQ1_0's 8 chunks of 32 digits: digit n of a byte is the top digit of the byte times 3^n. Chunks 0-4
 * are the digits of qs[0..31]; chunks 5-7 those of qs[32..47], two digits a chunk, and in chunk 7's high
 * half those of qh[0..3] (values 240 + 4n + j: digit n of qh[j]) */
static inline __attribute__((always_inline)) void tq1_0_chunks(const block_tq1_0 *x, __m256i chunk[8]) {
    const __m256i x1 = _mm256_loadu_si256((const __m256i *)x->qs), x3 = times3_epi8(x1), x9 = times9_epi8(x1);
    chunk[0] = top_digit(x1);
    chunk[1] = top_digit(x3);
    chunk[2] = top_digit(x9);
    chunk[3] = top_digit(times9_epi8(x3));
    chunk[4] = top_digit(times9_epi8(x9));
    const __m256i twice = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x->qs + 32)));
    const __m256i x1_3 = _mm256_blend_epi32(twice, times3_epi8(twice), 0xF0), x9_27 = times9_epi8(x1_3);
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    const __m256i h = _mm256_set1_epi32((int)qh), h3 = times3_epi8(h);  /* qh times 1, 3, 9, 27 by dwords */
    const __m256i h_powers = _mm256_blend_epi32(_mm256_blend_epi32(h, h3, 0x22), times9_epi8(_mm256_blend_epi32(h, h3, 0x88)), 0xCC);
    chunk[5] = top_digit(x1_3);
    chunk[6] = top_digit(x9_27);
    chunk[7] = top_digit(_mm256_blend_epi32(times9_epi8(x9_27), h_powers, 0xF0));
}

/* TQ2_0's 8 chunks: each 32 bytes hold four chunks' digits, two bits apart */
static inline __attribute__((always_inline)) void tq2_0_chunks(const block_tq2_0 *x, __m256i chunk[8]) {
    for (int j = 0; j < 2; ++j) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
        for (int l = 0; l < 4; ++l) chunk[4 * j + l] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * l), _mm256_set1_epi8(3));
    }
}

/* ggml's AVX2 ternary dot's 8 int32 lanes of a block: lane l sums digit * q8 over values 4l..4l+3 of
 * every 32-value chunk, less Q8_K's per-16 sums 2l and 2l+1 (the -1 of every digit) */
static inline __attribute__((always_inline)) __m256i ternary_lanes(const __m256i chunk[8], const block_q8_K *y) {
    __m256i sum = _mm256_sub_epi32(_mm256_setzero_si256(),
                                   _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), _mm256_set1_epi16(1)));
    for (int c = 0; c < 8; ++c) sum = lc_dot_us8_acc_256(sum, chunk[c], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * c)));
    return sum;
}

#define TERNARY_LANES(name)                                                                                     \
    static inline __attribute__((always_inline)) __m256i name##_lanes(const block_##name *x, const block_q8_K *y) { \
        __m256i chunk[8];                                                                                       \
        name##_chunks(x, chunk);                                                                                \
        return ternary_lanes(chunk, y);                                                                         \
    }                                                                                                           \
    static void digits_##name(const block_##name *x, uint8_t q[QK_K]) {                                         \
        __m256i chunk[8];                                                                                       \
        name##_chunks(x, chunk);                                                                                \
        for (int c = 0; c < 8; ++c) _mm256_storeu_si256((__m256i *)(q + 32 * c), chunk[c]);                    \
    }
TERNARY_LANES(tq1_0)
TERNARY_LANES(tq2_0)

/* vec_dot: per block a contracted d * lane + sum per lane, then hsum_float_8; the GEMV: four rows of it */
#define TERNARY_SIMD(name)                                                                                      \
    void lc_vec_dot_##name(int n, float *s, const void *w_row, const void *x_row) {                             \
        const block_##name *x = w_row;                                                                          \
        const block_q8_K *y = x_row;                                                                            \
        __m256 acc = _mm256_setzero_ps();                                                                       \
        for (int i = 0; i < n / QK_K; ++i)                                                                      \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(name##_lanes(x + i, y + i)), _mm256_set1_ps(y[i].d * LC_H2F(x[i].d)), acc); \
        *s = lc_hsum256(acc);                                                                                   \
    }                                                                                                           \
    static void gemv4_##name(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) { \
        const block_q8_K *x = vx;                                                                               \
        const uint8_t *ahead = w + LC_GEMV_ROWS * row_bytes + lc_prefetch_ahead_bytes(LC_NIBBLES_PREFETCH_PAST_GROUP, prefetch); \
        __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
        for (int64_t i = 0; i < nb; ++i) {                                                                      \
            if (prefetch) lc_prefetch_step_share(ahead, i, LC_GEMV_ROWS * sizeof(block_##name));                \
            _Pragma("GCC unroll 4")                                                                             \
            for (int r = 0; r < LC_GEMV_ROWS; ++r) {                                                            \
                const block_##name *b = (const block_##name *)(w + (size_t)r * row_bytes) + i;                 \
                const __m256 d = _mm256_set1_ps(x[i].d * LC_H2F(b->d));                                         \
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(name##_lanes(b, x + i)), d, acc[r]);                \
            }                                                                                                   \
        }                                                                                                       \
        for (int r = 0; r < LC_GEMV_ROWS; ++r) y[r] = lc_hsum256(acc[r]);                                       \
    }                                                                                                           \
    void lc_gemv_##name(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) { \
        lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK_K, gemv4_##name, lc_vec_dot_##name, 0, prefetch);         \
    }
TERNARY_SIMD(tq1_0)
TERNARY_SIMD(tq2_0)
#endif

#if !defined(LC_AVX2)
/* a block's 256 digits in ggml's value order; TQ1_0 packs five a byte, digit n of byte b being
 * ((uint8_t)(b * 3^n) * 3) >> 8 */
static const uint8_t pow3[5] = {1, 3, 9, 27, 81};

static void digits_tq1_0(const block_tq1_0 *x, uint8_t q[QK_K]) {
    for (int n = 0; n < 5; ++n)
        for (int m = 0; m < 32; ++m) q[32 * n + m] = (uint8_t)(((uint16_t)(uint8_t)(x->qs[m] * pow3[n]) * 3) >> 8);
    for (int n = 0; n < 5; ++n)
        for (int m = 0; m < 16; ++m) q[160 + 16 * n + m] = (uint8_t)(((uint16_t)(uint8_t)(x->qs[32 + m] * pow3[n]) * 3) >> 8);
    for (int n = 0; n < 4; ++n)
        for (int j = 0; j < 4; ++j) q[240 + 4 * n + j] = (uint8_t)(((uint16_t)(uint8_t)(x->qh[j] * pow3[n]) * 3) >> 8);
}

static void digits_tq2_0(const block_tq2_0 *x, uint8_t q[QK_K]) {
    for (int j = 0; j < QK_K / 4; j += 32)
        for (int l = 0; l < 4; ++l)
            for (int m = 0; m < 32; ++m) q[4 * j + 32 * l + m] = (x->qs[j + m] >> (2 * l)) & 3;
}

/* the lanes (see ternary_lanes) from the digits, and the same float steps as TERNARY_SIMD's */
#define TERNARY_DOT(name)                                                                \
    void lc_vec_dot_##name(int n, float *s, const void *w_row, const void *x_row) {      \
        const block_##name *x = (const block_##name *)w_row;                             \
        const block_q8_K *y = (const block_q8_K *)x_row;                                 \
        float acc[8] = {0};                                                              \
        uint8_t q[QK_K];                                                                 \
        for (int i = 0; i < n / QK_K; ++i) {                                             \
            digits_##name(x + i, q);                                                     \
            const float d = y[i].d * LC_H2F(x[i].d);                                     \
            for (int l = 0; l < 8; ++l) {                                                \
                int32_t lane = -(y[i].bsums[2 * l] + y[i].bsums[2 * l + 1]);             \
                for (int c = 0; c < QK_K; c += 32)                                       \
                    for (int j = 4 * l; j < 4 * l + 4; ++j) lane += q[c + j] * y[i].qs[c + j]; \
                acc[l] = fmaf((float)lane, d, acc[l]);                                   \
            }                                                                            \
        }                                                                                \
        *s = lc_hsum8_ordered(acc);                                                      \
    }
TERNARY_DOT(tq1_0)
TERNARY_DOT(tq2_0)
#endif

int lc_ternary_unpack(int type, const void *blk, uint8_t digits[QK_K], float *d) {
    switch (type) {
    case LC_TYPE_TQ1_0: digits_tq1_0(blk, digits); *d = LC_H2F(((const block_tq1_0 *)blk)->d); return 1;
    case LC_TYPE_TQ2_0: digits_tq2_0(blk, digits); *d = LC_H2F(((const block_tq2_0 *)blk)->d); return 1;
    default: return 0;
    }
}

#define TERNARY_DEQUANT(name)                                                            \
    void lc_dequant_row_##name(const void *w_row, float *y, int64_t n) {                  \
        const block_##name *x = (const block_##name *)w_row;                             \
        uint8_t q[QK_K];                                                                 \
        for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {                              \
            digits_##name(x + i, q);                                                     \
            const float d = LC_H2F(x[i].d);                                              \
            for (int k = 0; k < QK_K; ++k) y[k] = (float)(q[k] - 1) * d;                 \
        }                                                                                \
    }
TERNARY_DEQUANT(tq1_0)
TERNARY_DEQUANT(tq2_0)

/* ---- IQ4_NL and MXFP4: 4-bit indices into 16 levels, one scale per 32 values ------------------ */

/* a 32-value block's exact integer dot (low nibbles: values 0..15, high: 16..31) */
#if defined(LC_AVX2)
static inline int32_t nibble_block_dot(const int8_t levels[16], const uint8_t *qs, const int8_t *q8) {
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)levels));
    return lc_hsum_epi32_256(lc_signed_dot_lanes(lc_nibble_values(lut, qs), q8));
}
#else
static inline int32_t nibble_block_dot(const int8_t levels[16], const uint8_t *qs, const int8_t *q8) {
    int32_t sum = 0;
    for (int j = 0; j < 16; ++j) sum += levels[qs[j] & 0xF] * q8[j] + levels[qs[j] >> 4] * q8[j + 16];
    return sum;
}
#endif

static inline void nibble_block_dequant(const int8_t levels[16], const uint8_t *qs, float d, float *y) {
    for (int j = 0; j < 16; ++j) {
        y[j] = d * (float)levels[qs[j] & 0xF];
        y[j + 16] = d * (float)levels[qs[j] >> 4];
    }
}

/* llama.cpp repacks these weights (rows a multiple of 8) and multiplies them with its x86 GEMV/GEMM,
 * whose every output is one running sum over the 32-blocks: the block's exact integer dot, times
 * d_w * d_x, fused-multiply-added */
void lc_vec_dot_iq4_nl(int n, float *s, const void *w_row, const void *x_row) {
    const block_iq4_nl *x = (const block_iq4_nl *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK4_NL; ++i)
        acc = fmaf((float)nibble_block_dot(kvalues_iq4nl, x[i].qs, y[i].qs), LC_H2F(x[i].d) * LC_H2F(y[i].d), acc);
    *s = acc;
}

void lc_vec_dot_mxfp4(int n, float *s, const void *w_row, const void *x_row) {
    const block_mxfp4 *x = (const block_mxfp4 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc = 0.0f;
    for (int i = 0; i < n / QK_MXFP4; ++i)
        acc = fmaf((float)nibble_block_dot(kvalues_mxfp4, x[i].qs, y[i].qs), lc_e8m0_half(x[i].e) * LC_H2F(y[i].d), acc);
    *s = acc;
}

#if defined(LC_AVX2)
/* lc_e8m0_half of four exponents (int32 lanes) */
static inline __m128 e8m0_half4(__m128i e) {
    const __m128i normal = _mm_slli_epi32(_mm_sub_epi32(e, _mm_set1_epi32(1)), 23);
    const __m128i tiny = _mm_sllv_epi32(_mm_set1_epi32(0x00200000), e);
    return _mm_castsi128_ps(_mm_blendv_epi8(normal, tiny, _mm_cmplt_epi32(e, _mm_set1_epi32(2))));
}

static __m128 mxfp4_scales4(const uint8_t *const b[LC_GEMV_ROWS]) {
    return e8m0_half4(_mm_setr_epi32(b[0][0], b[1][0], b[2][0], b[3][0]));  /* each block opens with its exponent */
}

static void gemv4_iq4_nl(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    lc_gemv4_nibble_levels(nb, w, row_bytes, vx, y, prefetch, kvalues_iq4nl, sizeof(block_iq4_nl),
                           offsetof(block_iq4_nl, qs), lc_f16_scales4);
}

static void gemv4_mxfp4(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    lc_gemv4_nibble_levels(nb, w, row_bytes, vx, y, prefetch, kvalues_mxfp4, sizeof(block_mxfp4),
                           offsetof(block_mxfp4, qs), mxfp4_scales4);
}

void lc_gemv_iq4_nl(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK4_NL, gemv4_iq4_nl, lc_vec_dot_iq4_nl, 0, prefetch);
}

void lc_gemv_mxfp4(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK_MXFP4, gemv4_mxfp4, lc_vec_dot_mxfp4, 0, prefetch);
}
#endif

void lc_dequant_row_iq4_nl(const void *w_row, float *y, int64_t n) {
    const block_iq4_nl *x = (const block_iq4_nl *)w_row;
    for (int64_t i = 0; i < n / QK4_NL; ++i) nibble_block_dequant(kvalues_iq4nl, x[i].qs, LC_H2F(x[i].d), y + QK4_NL * i);
}

void lc_dequant_row_mxfp4(const void *w_row, float *y, int64_t n) {
    const block_mxfp4 *x = (const block_mxfp4 *)w_row;
    for (int64_t i = 0; i < n / QK_MXFP4; ++i) nibble_block_dequant(kvalues_mxfp4, x[i].qs, lc_e8m0_half(x[i].e), y + QK_MXFP4 * i);
}

/* ---- NVFP4: E2M1 levels (doubled) and a UE4M3 scale per 16 values, 64 values a block ------------ */

/* ggml_ue4m3_to_fp32: the scale, halved to undo kvalues_mxfp4's doubling */
static inline float ue4m3_half(uint8_t x) {
    if (x == 0 || x == 0x7F) return 0.0f;
    const int exp = (x >> 3) & 0xF, man = x & 0x7;
    const float raw = exp == 0 ? ldexpf((float)man, -9) : ldexpf(1.0f + (float)man / 8.0f, exp - 7);
    return raw * 0.5f;
}

/* ggml's AVX2 order: per block, two vectors of 8 integer lanes (values 4l..4l+3 of each Q8_0 block),
 * each lane fused into its float sum times its 16 values' scale * d_x, then hsum_float_8 */
void lc_vec_dot_nvfp4(int n, float *s, const void *w_row, const void *x_row) {
    const block_nvfp4 *x = (const block_nvfp4 *)w_row;
    const block_q8_0 *y = (const block_q8_0 *)x_row;
    float acc[8] = {0};
    for (int ib = 0; ib < n / QK_NVFP4; ++ib) {
        for (int h = 0; h < 2; ++h) {  /* the block's halves: its Q8_0 blocks 2ib and 2ib + 1 */
            const block_q8_0 *yb = y + 2 * ib + h;
            const float dy = LC_H2F(yb->d);
            for (int l = 0; l < 8; ++l) {
                const int sub = 2 * h + l / 4;  /* 16-value sub-block of lane l */
                const uint8_t *qs = x[ib].qs + 8 * sub;
                int32_t lane = 0;
                for (int k = 4 * (l % 4); k < 4 * (l % 4) + 4; ++k) {
                    const int v = k < 8 ? kvalues_mxfp4[qs[k] & 0xF] : kvalues_mxfp4[qs[k - 8] >> 4];
                    lane += v * yb->qs[16 * (l / 4) + k];
                }
                acc[l] = fmaf(ue4m3_half(x[ib].d[sub]) * dy, (float)lane, acc[l]);
            }
        }
    }
    *s = lc_hsum8_ordered(acc);
}

void lc_dequant_row_nvfp4(const void *w_row, float *y, int64_t n) {
    const block_nvfp4 *x = (const block_nvfp4 *)w_row;
    for (int64_t i = 0; i < n / QK_NVFP4; ++i) {
        for (int sub = 0; sub < QK_NVFP4 / QK_NVFP4_SUB; ++sub, y += QK_NVFP4_SUB) {
            const float d = ue4m3_half(x[i].d[sub]);
            const uint8_t *qs = x[i].qs + (QK_NVFP4_SUB / 2) * sub;
            for (int j = 0; j < QK_NVFP4_SUB / 2; ++j) {
                y[j] = (float)kvalues_mxfp4[qs[j] & 0xF] * d;
                y[j + QK_NVFP4_SUB / 2] = (float)kvalues_mxfp4[qs[j] >> 4] * d;
            }
        }
    }
}

#endif
