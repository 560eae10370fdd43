/* Prompt batches as a packed GEMM (see lc_mm_packed.h).
 *
 * A block of LC_PACKED_ROWS weight rows is unpacked once into a layout where one 32-bit vector lane
 * holds four consecutive quants of one row, as unsigned bytes; the block then meets every token of
 * the batch: one vector instruction (dpbusd, or maddubs + madd) advances LC_PACKED_ROWS dot products
 * by four elements, with the token's four activations broadcast, and no horizontal sum is needed.
 * Values that reach past what maddubs multiplies exactly as unsigned bytes (Q8_0's and the i-quants'
 * value + 128 times an activation: pairs past int16) are packed signed where the build has no dpbusd,
 * and meet the activations by ggml's sign trick (see dot4s).
 *
 * Integer sums are exact, and the float steps are those of the one-row kernels, lane by lane: for
 * the legacy types ggml's 8 float lanes per output (lane l: elements 4l..4l+3 of each block), for the
 * K-quants the per-block steps of llama.cpp's tiled kernel or repacked Q4_K GEMM. So every output
 * has the bits of the one-row functions; tests compare them on every ISA level. Where the OS grants
 * AMX (lc_amx.h), the legacy types' groups of 16 tokens take those exact integer lane sums from the
 * tiles instead, then the same float steps. */
#include <string.h>

#include "lc_amx.h"
#include "lc_mm_packed.h"
#include "lc_quants_iq.h"
#include "lc_quants_kq.h"
/* The i-quants' levels and grids come from ggml_tables.h and quants_iq_grid.c (the plugin's build;
 * the tests' builds of the older kernels lack them) */
#if __has_include("ggml_tables.h")
#include "ggml_tables.h"
#define LC_PACK_IQ 1
#endif

/* dpbusd multiplies unsigned bytes up to 255 with signed ones exactly; without it (AVX2, AVX-512
 * without VNNI) Q8_0 and the i-quants are packed as signed bytes */
#if (defined(LC_AVX512) && defined(__AVX512VNNI__)) || (!defined(LC_AVX512) && defined(__AVXVNNI__))
#define DPBUSD 1
#else
#define DPBUSD 0
#endif
#define SIGNED_PACK (!DPBUSD)

/* the i-quants packed as 16 sub-blocks of 16 values (value + 128, or signed) with their scales */
static inline int is_iq(int type) {
    return type == LC_TYPE_IQ4_XS || type == LC_TYPE_IQ2_XXS || type == LC_TYPE_IQ2_XS || type == LC_TYPE_IQ2_S ||
           type == LC_TYPE_IQ3_XXS || type == LC_TYPE_IQ3_S || type == LC_TYPE_IQ1_S || type == LC_TYPE_IQ1_M;
}

#if defined(LC_AVX512) || defined(LC_AVX2)

/* IQ4_NL and MXFP4: 32 values looked up by their nibbles (where the build has ggml's tables) */
static int is_nibble_lookup(int type) {
#if defined(LC_PACK_IQ)
    return type == LC_TYPE_IQ4_NL || type == LC_TYPE_MXFP4;
#else
    (void)type;
    return 0;
#endif
}

/* TQ1_0 and TQ2_0: 256 digits 0, 1, 2 (where the build has quants_iq_grid.c) */
static inline int is_ternary(int type) {
#if defined(LC_PACK_IQ)
    return type == LC_TYPE_TQ1_0 || type == LC_TYPE_TQ2_0;
#else
    (void)type;
    return 0;
#endif
}

/* ---- vectors of LC_PACKED_ROWS lanes ---- */

#if defined(LC_AVX512)
typedef __m512i vi;
typedef __m512 vf;
#define vi_zero() _mm512_setzero_si512()
#define vi_load(p) _mm512_load_si512((const void *)(p))
#define vi_set1(x) _mm512_set1_epi32(x)
#define vi_add(a, b) _mm512_add_epi32(a, b)
#define vi_sub(a, b) _mm512_sub_epi32(a, b)
#define vi_mullo(a, b) _mm512_mullo_epi32(a, b)
#define vi_madd16(a, b) _mm512_madd_epi16(a, b)
#define vi_maddubs(a, b) _mm512_maddubs_epi16(a, b)
#define vi_add16(a, b) _mm512_add_epi16(a, b)
#define vi_slli32(a, n) _mm512_slli_epi32(a, n)
#define vf_zero() _mm512_setzero_ps()
#define vf_load(p) _mm512_load_ps(p)
#define vf_set1(x) _mm512_set1_ps(x)
#define vf_cvt(a) _mm512_cvtepi32_ps(a)
#define vf_mul(a, b) _mm512_mul_ps(a, b)
#define vf_add(a, b) _mm512_add_ps(a, b)
#define vf_sub(a, b) _mm512_sub_ps(a, b)
#define vf_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vf_fnma(a, b, c) _mm512_fnmadd_ps(a, b, c)
/* acc + per lane the dot of its four unsigned quants with the four signed activations x4 */
static inline vi dot4(vi acc, vi w, int32_t x4) {
#if defined(__AVX512VNNI__)
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(x4));
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w, _mm512_set1_epi32(x4)), _mm512_set1_epi16(1)));
#endif
}
/* acc + per lane the dot of its four signed quants w (w_abs: their magnitudes, as unsigned bytes)
 * with the four activations x4, ggml's sign trick: |w| times x with w's sign, each pair of products
 * at most 2 * 128 * 127 in magnitude, so maddubs's int16 sums are exact (x4 is never -128) */
static inline vi dot4s(vi acc, vi w_abs, vi w, int32_t x4) {
    const __m512i x = _mm512_set1_epi32(x4);
    const __m512i xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w_abs, xs), _mm512_set1_epi16(1)));
}
#define vi_abs8(w) _mm512_abs_epi8(w)
static inline void vf_store_rows(float *y, vf v, int nrows) {
    if (nrows == LC_PACKED_ROWS) _mm512_storeu_ps(y, v);
    else _mm512_mask_storeu_ps(y, (__mmask16)((1u << nrows) - 1), v);
}
#else
typedef __m256i vi;
typedef __m256 vf;
#define vi_zero() _mm256_setzero_si256()
#define vi_load(p) _mm256_load_si256((const __m256i *)(p))
#define vi_set1(x) _mm256_set1_epi32(x)
#define vi_add(a, b) _mm256_add_epi32(a, b)
#define vi_sub(a, b) _mm256_sub_epi32(a, b)
#define vi_mullo(a, b) _mm256_mullo_epi32(a, b)
#define vi_madd16(a, b) _mm256_madd_epi16(a, b)
#define vi_maddubs(a, b) _mm256_maddubs_epi16(a, b)
#define vi_add16(a, b) _mm256_add_epi16(a, b)
#define vi_slli32(a, n) _mm256_slli_epi32(a, n)
#define vf_zero() _mm256_setzero_ps()
#define vf_load(p) _mm256_load_ps(p)
#define vf_set1(x) _mm256_set1_ps(x)
#define vf_cvt(a) _mm256_cvtepi32_ps(a)
#define vf_mul(a, b) _mm256_mul_ps(a, b)
#define vf_add(a, b) _mm256_add_ps(a, b)
#define vf_sub(a, b) _mm256_sub_ps(a, b)
#define vf_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vf_fnma(a, b, c) _mm256_fnmadd_ps(a, b, c)
static inline vi dot4(vi acc, vi w, int32_t x4) {
#if defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, w, _mm256_set1_epi32(x4));
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, _mm256_set1_epi32(x4)), _mm256_set1_epi16(1)));
#endif
}
static inline vi dot4s(vi acc, vi w_abs, vi w, int32_t x4) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(_mm256_set1_epi32(x4), w)),
                                                   _mm256_set1_epi16(1)));
}
#define vi_abs8(w) _mm256_abs_epi8(w)
static inline void vf_store_rows(float *y, vf v, int nrows) {
    if (nrows == LC_PACKED_ROWS) { _mm256_storeu_ps(y, v); return; }
    float tmp[LC_PACKED_ROWS];
    _mm256_storeu_ps(tmp, v);
    memcpy(y, tmp, (size_t)nrows * sizeof(float));
}
#endif

static inline int32_t x4_of(const int8_t *q) { int32_t v; memcpy(&v, q, 4); return v; }

/* dot4 of unsigned packed quants, or with is_signed dot4s of signed ones (w_abs = vi_abs8(w)) */
static inline __attribute__((always_inline)) vi dot4_any(vi acc, vi w_abs, vi w, int32_t x4, const int is_signed) {
    return is_signed ? dot4s(acc, w_abs, w, x4) : dot4(acc, w, x4);
}

/* ---- K-quants (256-blocks): Q2_K..Q6_K ----------------------------------------------------------- */

/* one super-block of LC_PACKED_ROWS rows, unpacked */
typedef struct {
    int32_t q[QK_K / 4][LC_PACKED_ROWS];    /* q[g][r]: quants 4g..4g+3 of row r, unsigned (or signed) bytes */
    int32_t scale[16][LC_PACKED_ROWS];      /* sub-block scales: 8 (Q4_K, Q5_K) or 16 (Q2_K, Q3_K, Q6_K) */
    int32_t min_pair[8][LC_PACKED_ROWS];    /* mins of sub-blocks 2p and 2p+1 as two int16: Q4_K, Q5_K 4
                                             * pairs (of 32 values), Q2_K 8 (of 16) */
    float d[LC_PACKED_ROWS], dmin[LC_PACKED_ROWS];
} kq_packed;

static inline int has_mins(int type) { return type == LC_TYPE_Q2_K || type == LC_TYPE_Q4_K || type == LC_TYPE_Q5_K; }

/* the 256 quants of one super-block as unsigned values (Q3_K: q + 4; Q6_K: q + 32; the i-quants: value +
 * 128; the ternary types: value + 1, without scales), and its scales and mins */
static void unpack_block(int type, const uint8_t *blk, uint8_t vals[QK_K], int32_t scale[16], int32_t mins[16],
                         float *d, float *dmin) {
#if defined(LC_PACK_IQ)
    if (type == LC_TYPE_IQ4_XS) {
        const block_iq4_xs *b = (const block_iq4_xs *)blk;
        for (int sb = 0; sb < 8; ++sb) {
            for (int l = 0; l < 16; ++l) {
                vals[32 * sb + l] = (uint8_t)(kvalues_iq4nl[b->qs[16 * sb + l] & 0xF] + 128);
                vals[32 * sb + l + 16] = (uint8_t)(kvalues_iq4nl[b->qs[16 * sb + l] >> 4] + 128);
            }
            scale[2 * sb] = scale[2 * sb + 1] = iq4_xs_scale(b, sb);
        }
        *d = LC_H2F(b->d);
        *dmin = 0.0f;
        return;
    }
    if (lc_iq_grid_unpack_biased(type, blk, vals, scale, d) || lc_ternary_unpack(type, blk, vals, d)) {
        *dmin = 0.0f;
        return;
    }
#endif
    if (type == LC_TYPE_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
#pragma GCC unroll 8
        for (int chunk = 0; chunk < 8; ++chunk) {  /* 32 values a step: loops GCC vectorizes (16 had not, on AVX2) */
            const int half = chunk / 4, part = chunk % 4;
            const uint8_t *ql = b->ql + 64 * half + 32 * (part & 1), *qh = b->qh + 32 * half;
            for (int l = 0; l < 32; ++l)
                vals[32 * chunk + l] = (uint8_t)(((ql[l] >> (4 * (part >> 1))) & 0xF) | (((qh[l] >> (2 * part)) & 3) << 4));
        }
        for (int sb = 0; sb < 16; ++sb) scale[sb] = b->scales[sb];
        *d = LC_H2F(b->d);
        *dmin = 0.0f;
        return;
    }
    if (type == LC_TYPE_Q3_K) {
        const block_q3_K *b = (const block_q3_K *)blk;
        int8_t sc[16];
        lc_unpack_q3_scales(b->scales, sc);
        for (int chunk = 0; chunk < 8; ++chunk)  /* loops GCC vectorizes: one element at a time had packed 0.16 GB/s */
            for (int l = 0; l < 32; ++l)
                vals[32 * chunk + l] = (uint8_t)(((b->qs[32 * (chunk / 4) + l] >> (2 * (chunk % 4))) & 3) | (((b->hmask[l] >> chunk) & 1) << 2));
        for (int sb = 0; sb < 16; ++sb) scale[sb] = sc[sb];
        *d = LC_H2F(b->d);
        *dmin = 0.0f;
        return;
    }
    if (type == LC_TYPE_Q2_K) {
        const block_q2_K *b = (const block_q2_K *)blk;
        for (int chunk = 0; chunk < 8; ++chunk)
            for (int l = 0; l < 32; ++l) vals[32 * chunk + l] = (uint8_t)((b->qs[32 * (chunk / 4) + l] >> (2 * (chunk % 4))) & 3);
        for (int sb = 0; sb < 16; ++sb) {
            scale[sb] = b->scales[sb] & 0xF;
            mins[sb] = b->scales[sb] >> 4;
        }
        *d = LC_H2F(b->d);
        *dmin = LC_H2F(b->dmin);
        return;
    }
    /* Q4_K and Q5_K share d, dmin, scales[12]; Q5_K then has qh[32] before qs */
    const block_q4_K *head = (const block_q4_K *)blk;
    const uint8_t *qs = type == LC_TYPE_Q5_K ? ((const block_q5_K *)blk)->qs : head->qs;
    const uint8_t *qh = type == LC_TYPE_Q5_K ? ((const block_q5_K *)blk)->qh : NULL;
    uint8_t sc[8], mn[8];
    lc_unpack_k4_scales(head->scales, sc, mn);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)  /* sub-blocks 2j and 2j + 1: the low and high nibbles of 32 bytes */
        for (int l = 0; l < 32; ++l) {
            vals[64 * j + l] = (uint8_t)(qs[32 * j + l] & 0xF);
            vals[64 * j + 32 + l] = (uint8_t)(qs[32 * j + l] >> 4);
        }
#pragma GCC unroll 8
    for (int sb = 0; qh && sb < 8; ++sb)
        for (int l = 0; l < 32; ++l) vals[32 * sb + l] |= (uint8_t)(((qh[l] >> sb) & 1) << 4);
    for (int sb = 0; sb < 8; ++sb) {
        scale[sb] = sc[sb];
        mins[sb] = mn[sb];
    }
    *d = LC_H2F(head->d);
    *dmin = LC_H2F(head->dmin);
}

/* what turns a lane of four unsigned quants (value + 128) into four signed bytes: the i-quants and
 * Q8_0 where SIGNED_PACK */
static inline uint32_t sign_flip(int type) {
    return SIGNED_PACK && (is_iq(type) || type == LC_TYPE_Q8_0 || is_nibble_lookup(type)) ? 0x80808080u : 0;
}

/* the rows' words (row r's at rows + r * stride, 64-byte aligned) as the packed layout's lanes:
 * q[g][r] = word g of row r, xor flip: a transpose, in 16x16 or 8x8 tiles in registers where the build
 * has AVX-512 or AVX2, word by word past them; stored word by word,
 * a block's quants had held packing to 2.4 GB/s of Q4_K on Zen 4 */
#if defined(LC_AVX512)
#define LC_TRANSPOSE_WORDS 16
#elif defined(LC_AVX2)
#define LC_TRANSPOSE_WORDS 8
#else
#define LC_TRANSPOSE_WORDS 1
#endif

static void rows_to_lanes(const int32_t *rows, int stride, int words, int32_t (*q)[LC_PACKED_ROWS], uint32_t flip) {
#if defined(LC_AVX512)
    const __m512i flips = _mm512_set1_epi32((int)flip);
    for (int t = 0; t < words / 16; ++t) {
        __m512i m[16], a[16], b[16];
        for (int r = 0; r < 16; ++r) m[r] = _mm512_xor_si512(_mm512_load_si512((const void *)(rows + r * stride + 16 * t)), flips);
        for (int k = 0; k < 8; ++k) {
            a[2 * k] = _mm512_unpacklo_epi32(m[2 * k], m[2 * k + 1]);
            a[2 * k + 1] = _mm512_unpackhi_epi32(m[2 * k], m[2 * k + 1]);
        }
        /* b[4u + j], 128-bit lane L: word 4L + j of rows 4u..4u+3 */
        for (int u = 0; u < 4; ++u) {
            b[4 * u] = _mm512_unpacklo_epi64(a[4 * u], a[4 * u + 2]);
            b[4 * u + 1] = _mm512_unpackhi_epi64(a[4 * u], a[4 * u + 2]);
            b[4 * u + 2] = _mm512_unpacklo_epi64(a[4 * u + 1], a[4 * u + 3]);
            b[4 * u + 3] = _mm512_unpackhi_epi64(a[4 * u + 1], a[4 * u + 3]);
        }
        for (int j = 0; j < 4; ++j) {  /* word 4L + j: lane L of b[j], b[4 + j], b[8 + j], b[12 + j] */
            const __m512i c0 = _mm512_shuffle_i32x4(b[j], b[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
            const __m512i c1 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
            const __m512i c2 = _mm512_shuffle_i32x4(b[j], b[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
            const __m512i c3 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
            _mm512_store_si512((void *)q[16 * t + j], _mm512_shuffle_i32x4(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm512_store_si512((void *)q[16 * t + 4 + j], _mm512_shuffle_i32x4(c0, c1, _MM_SHUFFLE(3, 1, 3, 1)));
            _mm512_store_si512((void *)q[16 * t + 8 + j], _mm512_shuffle_i32x4(c2, c3, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm512_store_si512((void *)q[16 * t + 12 + j], _mm512_shuffle_i32x4(c2, c3, _MM_SHUFFLE(3, 1, 3, 1)));
        }
    }
#elif defined(LC_AVX2)
    const __m256i flips = _mm256_set1_epi32((int)flip);
    for (int t = 0; t < words / 8; ++t) {
        __m256i m[8], a[8], b[8];
        for (int r = 0; r < 8; ++r) m[r] = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(rows + r * stride + 8 * t)), flips);
        for (int k = 0; k < 4; ++k) {
            a[2 * k] = _mm256_unpacklo_epi32(m[2 * k], m[2 * k + 1]);
            a[2 * k + 1] = _mm256_unpackhi_epi32(m[2 * k], m[2 * k + 1]);
        }
        for (int u = 0; u < 2; ++u) {
            b[4 * u] = _mm256_unpacklo_epi64(a[4 * u], a[4 * u + 2]);
            b[4 * u + 1] = _mm256_unpackhi_epi64(a[4 * u], a[4 * u + 2]);
            b[4 * u + 2] = _mm256_unpacklo_epi64(a[4 * u + 1], a[4 * u + 3]);
            b[4 * u + 3] = _mm256_unpackhi_epi64(a[4 * u + 1], a[4 * u + 3]);
        }
        for (int j = 0; j < 4; ++j) {  /* word 4L + j: lane L of b[j] (rows 0-3) and b[4 + j] (rows 4-7) */
            _mm256_store_si256((__m256i *)q[8 * t + j], _mm256_permute2x128_si256(b[j], b[4 + j], 0x20));
            _mm256_store_si256((__m256i *)q[8 * t + 4 + j], _mm256_permute2x128_si256(b[j], b[4 + j], 0x31));
        }
    }
#endif
    for (int g = words - words % LC_TRANSPOSE_WORDS; g < words; ++g)  /* the words past the last whole tile */
        for (int r = 0; r < LC_PACKED_ROWS; ++r) q[g][r] = (int32_t)((uint32_t)rows[r * stride + g] ^ flip);
}

enum { PACK_PREFETCH_BLOCKS = 2 };

static void pack_k_quant(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed) {
    const int64_t nb = k / QK_K;
    const size_t block_bytes = lc_traits[type].type_size;
    const uint32_t flip = sign_flip(type);
    kq_packed *pk = packed;
    if (nrows < LC_PACKED_ROWS) memset(pk, 0, (size_t)nb * sizeof(kq_packed));  /* absent rows: zeros */
    /* each row's block: its quant bytes, its 16 scales, its 8 min pairs (zeros where absent) */
    _Alignas(64) union { uint8_t bytes[QK_K]; int32_t words[QK_K / 4]; } vals[LC_PACKED_ROWS];
    _Alignas(64) int32_t scales[LC_PACKED_ROWS][16] = {{0}}, min_pairs[LC_PACKED_ROWS][16] = {{0}};
    for (int r = nrows; r < LC_PACKED_ROWS; ++r) memset(vals[r].bytes, (int)(flip & 0xFF), QK_K);  /* zeros once flipped */
    int32_t mins[16];
    for (int64_t i = 0; i < nb; ++i) {
        kq_packed *p = pk + i;
        for (int r = 0; r < nrows; ++r) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
            /* the rows are as many streams as the hardware prefetchers follow badly: each row's next
             * blocks asked for (Zen 4, Q4_K: its loads had taken a quarter of the packing's time) */
            for (size_t at = 0; i + PACK_PREFETCH_BLOCKS < nb && at < block_bytes; at += 64)
                __builtin_prefetch(row + (i + PACK_PREFETCH_BLOCKS) * block_bytes + at, 0, 0);
            unpack_block(type, row + i * block_bytes, vals[r].bytes, scales[r], mins, &p->d[r], &p->dmin[r]);
            for (int pr = 0; has_mins(type) && pr < (type == LC_TYPE_Q2_K ? 8 : 4); ++pr)
                min_pairs[r][pr] = (int32_t)((uint32_t)(uint16_t)mins[2 * pr] | ((uint32_t)(uint16_t)mins[2 * pr + 1] << 16));
        }
        rows_to_lanes(vals[0].words, QK_K / 4, QK_K / 4, p->q, flip);
        rows_to_lanes(scales[0], 16, 16, p->scale, 0);
        rows_to_lanes(min_pairs[0], 16, has_mins(type) ? 8 : 0, p->min_pair, 0);
    }
}

#define KQ_TOKENS 4  /* the most tokens each loaded weight vector serves (lc_set_tile_tokens: 2 or 4) */


/* bsum of sub-blocks 2p and 2p+1 (32 activations each), as two int16 for vi_madd16 with min_pair */
static inline int32_t bsum_pair(const block_q8_K *x, int p) {
    const int16_t *b = x->bsums + 4 * p;
    return (int32_t)((uint32_t)(uint16_t)(b[0] + b[1]) | ((uint32_t)(uint16_t)(b[2] + b[3]) << 16));
}

/* lane sums of one 32-element sub-block of Q4_K/Q5_K for nt tokens, times the sub-block's scale.
 * dpbusd sums each four products into int32; without it maddubs's int16 pairs (at most 2 * 31 * 127
 * for Q5_K, 2 * 15 * 127 for Q4_K) are added as int16 over `group` steps that cannot overflow them
 * (Q5_K 4, Q4_K 8), then madd-ed with the scale in both halves of the lane: the same exact sums */
static inline __attribute__((always_inline)) void subblock_scaled(vi out[KQ_TOKENS], const kq_packed *p,
        const block_q8_K *const *xs, const int sb, const int nt, const int group) {
    const vi sc = vi_load(p->scale[sb]);
#if !DPBUSD
    const vi sc16 = vi_add(sc, vi_slli32(sc, 16));
    for (int u = 0; u < nt; ++u) out[u] = vi_zero();
    for (int g0 = 0; g0 < 8; g0 += group) {
        vi sum16[KQ_TOKENS];
        for (int g = g0; g < g0 + group; ++g) {
            const vi w = vi_load(p->q[8 * sb + g]);
            for (int u = 0; u < nt; ++u) {
                const vi pairs = vi_maddubs(w, vi_set1(x4_of(xs[u]->qs + 32 * sb + 4 * g)));
                sum16[u] = g == g0 ? pairs : vi_add16(sum16[u], pairs);
            }
        }
        for (int u = 0; u < nt; ++u) out[u] = vi_add(out[u], vi_madd16(sum16[u], sc16));
    }
#else
    (void)group;
    for (int u = 0; u < nt; ++u) out[u] = vi_zero();
    for (int g = 0; g < 8; ++g) {
        const vi w = vi_load(p->q[8 * sb + g]);
        for (int u = 0; u < nt; ++u) out[u] = dot4(out[u], w, x4_of(xs[u]->qs + 32 * sb + 4 * g));
    }
    for (int u = 0; u < nt; ++u) out[u] = vi_mullo(out[u], sc);
#endif
}

/* one super-block of Q4_K/Q5_K for nt tokens: s1 = sum of scale * sub-block dot, s2 = sum of min * bsum */
static inline __attribute__((always_inline)) void k4_block_sums(const kq_packed *p, const block_q8_K *const *xs, const int nt,
                                                                vi s1[KQ_TOKENS], vi s2[KQ_TOKENS], const int group) {
    vi dots[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) { s1[u] = vi_zero(); s2[u] = vi_zero(); }
    for (int sb = 0; sb < 8; ++sb) {
        subblock_scaled(dots, p, xs, sb, nt, group);
        for (int u = 0; u < nt; ++u) s1[u] = vi_add(s1[u], dots[u]);
    }
    for (int pr = 0; pr < 4; ++pr) {
        const vi mn = vi_load(p->min_pair[pr]);
        for (int u = 0; u < nt; ++u) s2[u] = vi_add(s2[u], vi_madd16(mn, vi_set1(bsum_pair(xs[u], pr))));
    }
}

static inline __attribute__((always_inline)) void k4_tiled(const void *packed, int64_t nb, const char *const *x,
        float *y, size_t ldy, int nrows, const int nt, const int group) {
    const kq_packed *pk = packed;
    vf acc[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) acc[u] = vf_zero();
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vi s1[KQ_TOKENS], s2[KQ_TOKENS];
        for (int u = 0; u < nt; ++u) xs[u] = (const block_q8_K *)x[u] + i;
        k4_block_sums(p, xs, nt, s1, s2, group);
        const vf d = vf_load(p->d), dmin = vf_load(p->dmin);
        for (int u = 0; u < nt; ++u) {
            const vf r = vf_fnma(dmin, vf_cvt(s2[u]), vf_mul(vf_cvt(s1[u]), d));
            acc[u] = vf_fma(r, vf_set1(xs[u]->d), acc[u]);
        }
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, acc[u], nrows);
}

static inline __attribute__((always_inline)) void q4_K_tiled(const void *packed, int64_t nb, const char *const *x,
        size_t x_block, float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    k4_tiled(packed, nb, x, y, ldy, nrows, nt, 8);
}

static inline __attribute__((always_inline)) void q5_K_tiled(const void *packed, int64_t nb, const char *const *x,
        size_t x_block, float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    k4_tiled(packed, nb, x, y, ldy, nrows, nt, 4);
}

static inline __attribute__((always_inline)) void q4_K_gemm(const void *packed, int64_t nb, const char *const *x, size_t x_block,
        float *y, size_t ldy, int nrows, const int nt) {
    const kq_packed *pk = packed;
    (void)x_block;
    vf acc[KQ_TOKENS], acc_min[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) { acc[u] = vf_zero(); acc_min[u] = vf_zero(); }
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vf scale[KQ_TOKENS], scale_min[KQ_TOKENS];
        const vf d = vf_load(p->d), dmin = vf_load(p->dmin);
        for (int u = 0; u < nt; ++u) {
            xs[u] = (const block_q8_K *)x[u] + i;
            scale[u] = vf_mul(d, vf_set1(xs[u]->d));
            scale_min[u] = vf_mul(dmin, vf_set1(xs[u]->d));
        }
        for (int pr = 0; pr < 4; ++pr) {
            vi isum[KQ_TOKENS], dots[KQ_TOKENS];
            subblock_scaled(isum, p, xs, 2 * pr, nt, 8);
            subblock_scaled(dots, p, xs, 2 * pr + 1, nt, 8);
            const vi mn = vi_load(p->min_pair[pr]);
            for (int u = 0; u < nt; ++u) {
                isum[u] = vi_add(isum[u], dots[u]);
                acc[u] = vf_fma(vf_cvt(isum[u]), scale[u], acc[u]);
                acc_min[u] = vf_fma(vf_cvt(vi_madd16(mn, vi_set1(bsum_pair(xs[u], pr)))), scale_min[u], acc_min[u]);
            }
        }
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, vf_sub(acc[u], acc_min[u]), nrows);
}

/* bsums of 16-value sub-blocks 2p and 2p+1 (Q2_K's), as two int16 for vi_madd16 with min_pair */
static inline int32_t bsum16_pair(const block_q8_K *x, int p) {
    return (int32_t)((uint32_t)(uint16_t)x->bsums[2 * p] | ((uint32_t)(uint16_t)x->bsums[2 * p + 1] << 16));
}

/* one Q2_K super-block for nt tokens, per 128-value half h: s1[h] the scaled products' sum, s2[h] the
 * mins times the activations' sums (exact: dot4's int16 pairs are at most 2 * 3 * 128) */
static inline __attribute__((always_inline)) void q2_K_half_sums(const kq_packed *p, const block_q8_K *const *xs,
        const int nt, vi s1[2][KQ_TOKENS], vi s2[2][KQ_TOKENS]) {
    for (int h = 0; h < 2; ++h) {
        for (int u = 0; u < nt; ++u) { s1[h][u] = vi_zero(); s2[h][u] = vi_zero(); }
        for (int sb = 8 * h; sb < 8 * h + 8; ++sb) {
            vi dots[KQ_TOKENS];
            for (int u = 0; u < nt; ++u) dots[u] = vi_zero();
            for (int g = 0; g < 4; ++g) {
                const vi w = vi_load(p->q[4 * sb + g]);
                for (int u = 0; u < nt; ++u) dots[u] = dot4(dots[u], w, x4_of(xs[u]->qs + 16 * sb + 4 * g));
            }
            const vi sc = vi_load(p->scale[sb]);
            for (int u = 0; u < nt; ++u) s1[h][u] = vi_add(s1[h][u], vi_mullo(dots[u], sc));
        }
        for (int pr = 4 * h; pr < 4 * h + 4; ++pr) {
            const vi mn = vi_load(p->min_pair[pr]);
            for (int u = 0; u < nt; ++u) s2[h][u] = vi_add(s2[h][u], vi_madd16(mn, vi_set1(bsum16_pair(xs[u], pr))));
        }
    }
}

/* Q2_K in lc_vec_dot_q2_K_tiled's order or, with gemm, lc_vec_dot_q2_K_gemm's (llama.cpp's repacked
 * Q2_K GEMM) */
static inline __attribute__((always_inline)) void q2_K_orders(const void *packed, int64_t nb, const char *const *x,
        float *y, size_t ldy, int nrows, const int nt, const int gemm) {
    const kq_packed *pk = packed;
    vf acc[KQ_TOKENS], acc_min[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) { acc[u] = vf_zero(); acc_min[u] = vf_zero(); }
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vi s1[2][KQ_TOKENS], s2[2][KQ_TOKENS];
        for (int u = 0; u < nt; ++u) xs[u] = (const block_q8_K *)x[u] + i;
        q2_K_half_sums(p, xs, nt, s1, s2);
        const vf d = vf_load(p->d), dmin = vf_load(p->dmin);
        for (int u = 0; u < nt; ++u) {
            const vf xd = vf_set1(xs[u]->d);
            if (!gemm) {
                const vf r = vf_fnma(dmin, vf_cvt(vi_add(s2[0][u], s2[1][u])), vf_mul(vf_cvt(vi_add(s1[0][u], s1[1][u])), d));
                acc[u] = vf_fma(r, xd, acc[u]);
                continue;
            }
            const vf scale = vf_mul(d, xd), scale_min = vf_mul(dmin, xd);
            for (int h = 0; h < 2; ++h) {
                acc[u] = vf_fma(vf_cvt(s1[h][u]), scale, acc[u]);
                acc_min[u] = vf_fma(vf_cvt(s2[h][u]), scale_min, acc_min[u]);
            }
        }
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, gemm ? vf_sub(acc[u], acc_min[u]) : acc[u], nrows);
}

static inline __attribute__((always_inline)) void q2_K_tiled(const void *packed, int64_t nb, const char *const *x,
        size_t x_block, float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    q2_K_orders(packed, nb, x, y, ldy, nrows, nt, 0);
}

static inline __attribute__((always_inline)) void q2_K_gemm(const void *packed, int64_t nb, const char *const *x,
        size_t x_block, float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    q2_K_orders(packed, nb, x, y, ldy, nrows, nt, 1);
}

/* lc_vec_dot_q4_K's order (llama.cpp's repacked Q4_K GEMV, which its mul_mat_id takes for every
 * routed row): per super-block the whole integer scale sum fused into one running sum with
 * d * d_x, the whole min sum into another with -(dmin * d_x), the two added at the end */
static inline __attribute__((always_inline)) void q4_K_vec_dot(const void *packed, int64_t nb, const char *const *x, size_t x_block,
        float *y, size_t ldy, int nrows, const int nt) {
    const kq_packed *pk = packed;
    (void)x_block;
    vf acc[KQ_TOKENS], acc_min[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) { acc[u] = vf_zero(); acc_min[u] = vf_zero(); }
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vi s1[KQ_TOKENS], s2[KQ_TOKENS];
        for (int u = 0; u < nt; ++u) xs[u] = (const block_q8_K *)x[u] + i;
        k4_block_sums(p, xs, nt, s1, s2, 8);
        const vf d = vf_load(p->d), dmin = vf_load(p->dmin);
        for (int u = 0; u < nt; ++u) {
            const vf xd = vf_set1(xs[u]->d);
            acc[u] = vf_fma(vf_cvt(s1[u]), vf_mul(xd, d), acc[u]);
            acc_min[u] = vf_fnma(vf_mul(xd, dmin), vf_cvt(s2[u]), acc_min[u]);  /* fmaf(-(d_x * dmin), ...) */
        }
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, vf_add(acc[u], acc_min[u]), nrows);
}

/* the tiled order of 16 sub-blocks of 16 with their own scales, the unsigned quants less `offset`
 * (Q6_K: 32; the i-quants: 128), or signed quants (is_signed, offset 0) */
static inline __attribute__((always_inline)) void sub16_tiled(const void *packed, int64_t nb, const char *const *x,
        float *y, size_t ldy, int nrows, const int nt, const int offset, const int is_signed) {
    const kq_packed *pk = packed;
    vf acc[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) acc[u] = vf_zero();
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vi s1[KQ_TOKENS], dots[KQ_TOKENS];
        for (int u = 0; u < nt; ++u) { xs[u] = (const block_q8_K *)x[u] + i; s1[u] = vi_zero(); }
        for (int sb = 0; sb < 16; ++sb) {
            for (int u = 0; u < nt; ++u) dots[u] = offset ? vi_set1(-offset * xs[u]->bsums[sb]) : vi_zero();
            for (int g = 0; g < 4; ++g) {
                const vi w = vi_load(p->q[4 * sb + g]), w_abs = is_signed ? vi_abs8(w) : w;
                for (int u = 0; u < nt; ++u) dots[u] = dot4_any(dots[u], w_abs, w, x4_of(xs[u]->qs + 16 * sb + 4 * g), is_signed);
            }
            const vi sc = vi_load(p->scale[sb]);
            for (int u = 0; u < nt; ++u) s1[u] = vi_add(s1[u], vi_mullo(dots[u], sc));
        }
        const vf d = vf_load(p->d);
        for (int u = 0; u < nt; ++u) acc[u] = vf_fma(vf_mul(vf_cvt(s1[u]), d), vf_set1(xs[u]->d), acc[u]);
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, acc[u], nrows);
}

static inline __attribute__((always_inline)) void q6_K_tiled(const void *packed, int64_t nb, const char *const *x, size_t x_block,
        float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    sub16_tiled(packed, nb, x, y, ldy, nrows, nt, 32, 0);
}

static inline __attribute__((always_inline)) void q3_K_tiled(const void *packed, int64_t nb, const char *const *x, size_t x_block,
        float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    sub16_tiled(packed, nb, x, y, ldy, nrows, nt, 4, 0);
}

static inline __attribute__((always_inline)) void iq_tiled(const void *packed, int64_t nb, const char *const *x,
        size_t x_block, float *y, size_t ldy, int nrows, const int nt) {
    (void)x_block;
    sub16_tiled(packed, nb, x, y, ldy, nrows, nt, SIGNED_PACK ? 0 : 128, SIGNED_PACK);
}

/* ---- legacy types (32-blocks): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 ------------------------------------ */

/* one 32-block of LC_PACKED_ROWS rows, unpacked */
typedef struct {
    int32_t q[8][LC_PACKED_ROWS];  /* q[l][r]: quants 4l..4l+3 of row r, unsigned (value + offset) or signed */
    float d[LC_PACKED_ROWS], m[LC_PACKED_ROWS];
} legacy_packed;

static int is_legacy(int type) {
    return type == LC_TYPE_Q4_0 || type == LC_TYPE_Q4_1 || type == LC_TYPE_Q5_0 || type == LC_TYPE_Q5_1 ||
           type == LC_TYPE_Q8_0 || is_nibble_lookup(type);
}

/* the 32 unsigned quants of one block (ggml element order; IQ4_NL, MXFP4: value + 128; Q8_0 is pack_legacy's own), its d and
 * (Q4_1, Q5_1) m */
static void unpack_legacy_block(int type, const uint8_t *blk, uint8_t vals[32], float *d, float *m) {
    switch (type) {
#if defined(LC_PACK_IQ)
    case LC_TYPE_IQ4_NL: case LC_TYPE_MXFP4: {
        const int8_t *levels = type == LC_TYPE_IQ4_NL ? kvalues_iq4nl : kvalues_mxfp4;
        const uint8_t *qs = type == LC_TYPE_IQ4_NL ? ((const block_iq4_nl *)blk)->qs : ((const block_mxfp4 *)blk)->qs;
#if defined(LC_AVX2)
        /* the 16 levels + 128 looked up by pshufb, 16 nibbles at once (one at a time had packed IQ4_NL so
         * slowly that a 16-token prompt took 3x the GEMV's time on a dense model, Zen 4) */
        const __m128i table = _mm_xor_si128(_mm_loadu_si128((const __m128i *)levels), _mm_set1_epi8((char)0x80));
        const __m128i q = _mm_loadu_si128((const __m128i *)qs), low4 = _mm_set1_epi8(0x0F);
        _mm_storeu_si128((__m128i *)vals, _mm_shuffle_epi8(table, _mm_and_si128(q, low4)));
        _mm_storeu_si128((__m128i *)(vals + 16), _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), low4)));
#else
        for (int j = 0; j < 16; j++) {
            vals[j] = (uint8_t)(levels[qs[j] & 0x0F] + 128);
            vals[j + 16] = (uint8_t)(levels[qs[j] >> 4] + 128);
        }
#endif
        *d = type == LC_TYPE_IQ4_NL ? LC_H2F(((const block_iq4_nl *)blk)->d) : lc_e8m0_half(((const block_mxfp4 *)blk)->e);
        *m = 0.0f;
        return;
    }
#endif
    default: {  /* Q4_0, Q4_1, Q5_0, Q5_1: four quant bytes at a time, their low nibbles elements 4l..4l+3,
                 * their high ones 16 + 4l..; Q5's fifth bits (bit j of qh: element j) spread to bit 4 of each
                 * byte by a multiply (bit i of a nibble times 0x00204081 lands at bit 8i) */
        const int q5 = type == LC_TYPE_Q5_0 || type == LC_TYPE_Q5_1;
        const uint8_t *qs = type == LC_TYPE_Q4_0 ? ((const block_q4_0 *)blk)->qs
                            : type == LC_TYPE_Q4_1 ? ((const block_q4_1 *)blk)->qs
                            : type == LC_TYPE_Q5_0 ? ((const block_q5_0 *)blk)->qs : ((const block_q5_1 *)blk)->qs;
        uint32_t qh = 0;
        if (q5) memcpy(&qh, type == LC_TYPE_Q5_0 ? ((const block_q5_0 *)blk)->qh : ((const block_q5_1 *)blk)->qh, 4);
        for (int l = 0; l < 4; ++l) {
            uint32_t q, lo, hi;
            memcpy(&q, qs + 4 * l, 4);
            lo = q & 0x0F0F0F0Fu;
            hi = (q >> 4) & 0x0F0F0F0Fu;
            if (q5) {
                lo |= ((((qh >> (4 * l)) & 0xF) * 0x00204081u) & 0x01010101u) << 4;
                hi |= ((((qh >> (16 + 4 * l)) & 0xF) * 0x00204081u) & 0x01010101u) << 4;
            }
            memcpy(vals + 4 * l, &lo, 4);
            memcpy(vals + 16 + 4 * l, &hi, 4);
        }
    }
    }
    /* every 32-block type starts with d; Q4_1 and Q5_1 follow it with m */
    const lc_fp16_t *dm = (const lc_fp16_t *)blk;
    *d = LC_H2F(dm[0]);
    *m = type == LC_TYPE_Q4_1 || type == LC_TYPE_Q5_1 ? LC_H2F(dm[1]) : 0.0f;
}

static void pack_legacy(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed) {
    const int64_t nb = k / 32;
    const size_t block_bytes = row_bytes / (size_t)nb;
    const uint32_t flip = sign_flip(type);
    legacy_packed *pk = packed;
    if (nrows < LC_PACKED_ROWS) memset(pk, 0, (size_t)nb * sizeof(legacy_packed));
    uint8_t vals[32];
    for (int r = 0; r < nrows && type == LC_TYPE_Q8_0; ++r) {  /* its quants are whole bytes: + 128, i.e. xor 0x80 */
        const block_q8_0 *b = (const block_q8_0 *)((const uint8_t *)w + (size_t)r * row_bytes);
        for (int64_t i = 0; i < nb; ++i) {
            pk[i].d[r] = LC_H2F(b[i].d);
            pk[i].m[r] = 0.0f;
            for (int l = 0; l < 8; ++l) {
                uint32_t v;
                memcpy(&v, b[i].qs + 4 * l, 4);
                pk[i].q[l][r] = (int32_t)(v ^ 0x80808080u ^ flip);
            }
        }
    }
    /* a block at a time over the rows, so its lanes are written whole while in cache (row by row, a long
     * row's blocks outgrew L1 between its rows), each row's blocks ahead asked for as pack_k_quant does */
    for (int64_t i = 0; i < nb && type != LC_TYPE_Q8_0; ++i) {
        for (int r = 0; r < nrows; ++r) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
            if (i % 2 == 0 && i + 4 * PACK_PREFETCH_BLOCKS < nb) __builtin_prefetch(row + (i + 4 * PACK_PREFETCH_BLOCKS) * block_bytes, 0, 0);
            unpack_legacy_block(type, row + i * block_bytes, vals, &pk[i].d[r], &pk[i].m[r]);
            for (int l = 0; l < 8; ++l) {
                uint32_t v;
                memcpy(&v, vals + 4 * l, 4);
                pk[i].q[l][r] = (int32_t)(v ^ flip);
            }
        }
    }
}

#define LEGACY_TOKENS 2  /* the most (lc_set_tile_tokens: 1 or 2): eight float accumulators per token */

/* where an activation block's quants start: after d (q8_0), after d and s (q8_1) */
static inline size_t legacy_qs_at(const int has_min) { return has_min ? 4 : 2; }

/* The float steps of ggml's order, shared by the vector kernel and the AMX tiles' (lc_amx.h), so both
 * give vec_dot's bits. One token's part of block p (its activation block blk): d_w * d_x for every
 * row, the min term added (Q4_1, Q5_1), and for unsigned quants with an offset, -offset * (sum of each
 * four activations) per lane, the unsigned quants' excess; returns the token's quants. */
static inline __attribute__((always_inline)) const int8_t *legacy_token_block(const legacy_packed *p, const char *blk,
        const int has_min, const int offset, vf *scale, vf *summ, int32_t offs[8]) {
    const int8_t *qs = (const int8_t *)(blk + legacy_qs_at(has_min));
    *scale = vf_mul(vf_load(p->d), vf_set1(LC_H2F(*(const lc_fp16_t *)blk)));
    if (has_min) *summ = vf_add(*summ, vf_mul(vf_load(p->m), vf_set1(LC_H2F(((const lc_fp16_t *)blk)[1]))));
    if (offset) {
        const __m256i sums = lc_dot_us8_256(_mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)qs));
        _mm256_storeu_si256((__m256i *)offs, _mm256_mullo_epi32(sums, _mm256_set1_epi32(-offset)));
    }
    return qs;
}

/* one lane's step: its exact integer sum, converted, times d_w * d_x, added to the lane */
static inline __attribute__((always_inline)) vf legacy_lane_step(vf acc, vf scale, vi isum) {
    return vf_fma(scale, vf_cvt(isum), acc);
}

/* ggml's hsum of the 8 lanes (then the min term), for every row at once */
static inline __attribute__((always_inline)) void legacy_store(const vf a[8], vf summ, const int has_min, float *y,
                                                               int nrows) {
    vf out = vf_add(vf_add(vf_add(a[0], a[4]), vf_add(a[2], a[6])), vf_add(vf_add(a[1], a[5]), vf_add(a[3], a[7])));
    if (has_min) out = vf_add(out, summ);
    vf_store_rows(y, out, nrows);
}

/* x: activation rows in q8_0 (d, 32 quants) or, for the types with a min, q8_1 (d, s, 32 quants).
 * block_sums: the order of llama.cpp's repacked GEMM instead of vec_dot's, each output one float sum
 * over the blocks, each block's exact integer dot (its 8 lanes' sums added) fused into it */
static inline __attribute__((always_inline)) void legacy_mul(const void *packed, int64_t nb, const char *const *x,
                                                             size_t x_block, float *y, size_t ldy, int nrows,
                                                             const int nt, const int has_min, const int offset,
                                                             const int is_signed, const int block_sums) {
    const legacy_packed *pk = packed;
    vf acc[LEGACY_TOKENS][8], summ[LEGACY_TOKENS];
    for (int u = 0; u < nt; ++u) {
        for (int l = 0; l < 8; ++l) acc[u][l] = vf_zero();
        summ[u] = vf_zero();
    }
    for (int64_t i = 0; i < nb; ++i) {
        const legacy_packed *p = pk + i;
        vf scale[LEGACY_TOKENS];
        vi block_isum[LEGACY_TOKENS];
        const int8_t *qs[LEGACY_TOKENS];
        int32_t offs[LEGACY_TOKENS][8];
        for (int u = 0; u < nt; ++u) {
            qs[u] = legacy_token_block(p, x[u] + (size_t)i * x_block, has_min, offset, &scale[u], &summ[u], offs[u]);
            /* the block's whole sum needs the unsigned quants' excess once, not lane by lane */
            int32_t excess = 0;
            for (int l = 0; block_sums && offset && l < 8; ++l) excess += offs[u][l];
            block_isum[u] = vi_set1(excess);
        }
        for (int l = 0; l < 8; ++l) {
            const vi w = vi_load(p->q[l]), w_abs = is_signed ? vi_abs8(w) : w;
            for (int u = 0; u < nt; ++u) {
                if (block_sums) {
                    block_isum[u] = dot4_any(block_isum[u], w_abs, w, x4_of(qs[u] + 4 * l), is_signed);
                    continue;
                }
                const vi isum = dot4_any(offset ? vi_set1(offs[u][l]) : vi_zero(), w_abs, w, x4_of(qs[u] + 4 * l), is_signed);
                acc[u][l] = legacy_lane_step(acc[u][l], scale[u], isum);
            }
        }
        for (int u = 0; block_sums && u < nt; ++u) acc[u][0] = legacy_lane_step(acc[u][0], scale[u], block_isum[u]);
    }
    for (int u = 0; u < nt; ++u) {
        if (block_sums) vf_store_rows(y + u * ldy, acc[u][0], nrows);
        else legacy_store(acc[u], summ[u], has_min, y + u * ldy, nrows);
    }
}

#if defined(LC_AMX_KERNELS)
/* LC_AMX_TOKENS tokens (x: the first's activation row, each next x_bytes on) as legacy_mul takes them,
 * the lanes' integer sums from the tiles: exact int32 sums of the same four products, then the
 * same float steps lane by lane, so the same bits */
static inline __attribute__((always_inline)) void legacy_tiles(const void *packed, int64_t nb, const char *x,
        size_t x_bytes, size_t x_block, float *y, size_t ldy, int nrows, const int has_min, const int offset,
        const int is_signed) {
    const legacy_packed *pk = packed;
    vf acc[LC_AMX_TOKENS][8], summ[LC_AMX_TOKENS];
    int32_t lane_sums[8][LC_AMX_TOKENS][16] __attribute__((aligned(64)));
    for (int u = 0; u < LC_AMX_TOKENS; ++u) {
        for (int l = 0; l < 8; ++l) acc[u][l] = vf_zero();
        summ[u] = vf_zero();
    }
    for (int64_t i = 0; i < nb; ++i) {
        const legacy_packed *p = pk + i;
        const char *blk = x + (size_t)i * x_block;
        lc_amx_lane_sums(p->q, (const int8_t *)(blk + legacy_qs_at(has_min)), x_bytes, is_signed, lane_sums);
        for (int u = 0; u < LC_AMX_TOKENS; ++u) {
            vf scale;
            int32_t offs[8];
            legacy_token_block(p, blk + u * x_bytes, has_min, offset, &scale, &summ[u], offs);
            for (int l = 0; l < 8; ++l) {
                const vi isum = vi_load(lane_sums[l][u]);
                acc[u][l] = legacy_lane_step(acc[u][l], scale, offset ? vi_add(isum, vi_set1(offs[l])) : isum);
            }
        }
    }
    for (int u = 0; u < LC_AMX_TOKENS; ++u) legacy_store(acc[u], summ[u], has_min, y + u * ldy, nrows);
}

#define LEGACY_TILES(name, has_min, offset, is_signed)                                                          \
    static void name##_tiles(const void *packed, int64_t nb, const char *x, size_t x_bytes, size_t x_block,      \
                             float *y, size_t ldy, int nrows) {                                                  \
        legacy_tiles(packed, nb, x, x_bytes, x_block, y, ldy, nrows, has_min, offset, is_signed);                \
    }
#else
#define LEGACY_TILES(name, has_min, offset, is_signed)
#endif

#define LEGACY_VECTOR_KERNEL(name, has_min, offset, is_signed, block_sums)                                      \
    static void name(const void *packed, int64_t nb, const char *const *x, size_t x_block, float *y, size_t ldy, \
                     int nrows, const int nt) {                                                                   \
        if (nt == LEGACY_TOKENS)                                                                                  \
            legacy_mul(packed, nb, x, x_block, y, ldy, nrows, LEGACY_TOKENS, has_min, offset, is_signed, block_sums); \
        else legacy_mul(packed, nb, x, x_block, y, ldy, nrows, 1, has_min, offset, is_signed, block_sums);       \
    }
#define LEGACY_KERNEL(name, has_min, offset, is_signed)          \
    LEGACY_VECTOR_KERNEL(name, has_min, offset, is_signed, 0)   \
    LEGACY_TILES(name, has_min, offset, is_signed)
/* the offset: what the unsigned quants exceed the signed values by (types with a min have none) */
LEGACY_KERNEL(legacy_q4_0, 0, 8, 0)
LEGACY_KERNEL(legacy_q4_1, 1, 0, 0)
LEGACY_KERNEL(legacy_q5_0, 0, 16, 0)
LEGACY_KERNEL(legacy_q5_1, 1, 0, 0)
LEGACY_KERNEL(legacy_q8_0, 0, SIGNED_PACK ? 0 : 128, SIGNED_PACK)
/* the repacked Q4_0's, IQ4_NL's and MXFP4's order, by the vector kernel only (the AMX tiles' lane sums
 * serve vec_dot's order) */
LEGACY_VECTOR_KERNEL(legacy_q4_0_block_sums, 0, 8, 0, 1)
LEGACY_VECTOR_KERNEL(legacy_nibble_lookup_block_sums, 0, SIGNED_PACK ? 0 : 128, SIGNED_PACK, 1)

/* ---- ternary types (256-blocks of digits): TQ1_0, TQ2_0 ---------------------------------------- */

/* vec_dot's order (ggml's AVX2 ternary dot, which llama.cpp runs for batches too): per block 8 integer
 * lanes, lane l the digits' products over values 4l..4l+3 of every 32 less Q8_K's sums 2l and 2l+1 (the
 * -1 of every digit), each fused into its float lane times d_w * d_x, then hsum_float_8; kq_packed's
 * q[8c + l] holds chunk c's lane l. Eight float lanes a token, as the legacy types (1 or 2 tokens). */
static inline __attribute__((always_inline)) void ternary_vec_dot(const void *packed, int64_t nb, const char *const *x,
        size_t x_block, float *y, size_t ldy, int nrows, const int nt) {
    const kq_packed *pk = packed;
    (void)x_block;
    vf acc[LEGACY_TOKENS][8];
    for (int u = 0; u < nt; ++u)
        for (int l = 0; l < 8; ++l) acc[u][l] = vf_zero();
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[LEGACY_TOKENS];
        vf scale[LEGACY_TOKENS];
        for (int u = 0; u < nt; ++u) {
            xs[u] = (const block_q8_K *)x[u] + i;
            scale[u] = vf_mul(vf_load(p->d), vf_set1(xs[u]->d));
        }
        for (int l = 0; l < 8; ++l) {
            vi isum[LEGACY_TOKENS];
            for (int u = 0; u < nt; ++u) isum[u] = vi_set1(-(xs[u]->bsums[2 * l] + xs[u]->bsums[2 * l + 1]));
            for (int c = 0; c < 8; ++c) {
                const vi w = vi_load(p->q[8 * c + l]);
                for (int u = 0; u < nt; ++u) isum[u] = dot4(isum[u], w, x4_of(xs[u]->qs + 32 * c + 4 * l));
            }
            for (int u = 0; u < nt; ++u) acc[u][l] = legacy_lane_step(acc[u][l], scale[u], isum[u]);
        }
    }
    for (int u = 0; u < nt; ++u) legacy_store(acc[u], vf_zero(), 0, y + u * ldy, nrows);
}

/* ---- entry points ---------------------------------------------------------------------------- */

size_t lc_packed_bytes(int type, int64_t k) {
    if (is_legacy(type)) return (size_t)(k / 32) * sizeof(legacy_packed);
    if (type == LC_TYPE_Q2_K || type == LC_TYPE_Q3_K || type == LC_TYPE_Q4_K || type == LC_TYPE_Q5_K || type == LC_TYPE_Q6_K)
        return (size_t)(k / QK_K) * sizeof(kq_packed);
#if defined(LC_PACK_IQ)
    if (is_iq(type) || is_ternary(type)) return (size_t)(k / QK_K) * sizeof(kq_packed);
#endif
    return 0;
}

void lc_pack_rows(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed) {
    if (is_legacy(type)) pack_legacy(type, w, row_bytes, nrows, k, packed);
    else pack_k_quant(type, w, row_bytes, nrows, k, packed);
}

/* the tile's tokens, lc_set_tile_tokens's */
static int legacy_tile_tokens = LEGACY_TOKENS, kq_tile_tokens = KQ_TOKENS;

void lc_set_tile_tokens(int legacy, int k_quants) {
    legacy_tile_tokens = legacy == 1 ? 1 : LEGACY_TOKENS;
    kq_tile_tokens = k_quants == 2 ? 2 : KQ_TOKENS;
}

/* the kernel over groups of `group` tokens, then the tokens left one at a time */
#define OVER_TOKENS(group, kernel)                                                               \
    for (; t + (group) <= n_tokens; t += (group)) {                                              \
        for (int u = 0; u < (group); ++u) xs[u] = xb + (t + u) * x_bytes;                        \
        kernel(packed, nb, xs, x_block, y + t * ldy, ldy, nrows, (group));                       \
    }                                                                                            \
    for (; t < n_tokens; ++t) {                                                                  \
        xs[0] = xb + t * x_bytes;                                                                \
        kernel(packed, nb, xs, x_block, y + t * ldy, ldy, nrows, 1);                             \
    }                                                                                            \
    return;

/* where the OS granted AMX and the library switched it on (lc_amx.h): the legacy types' groups of
 * LC_AMX_TOKENS tokens through the tiles first, the tokens left by the vector kernels */
#if defined(LC_AMX_KERNELS)
#define OVER_TILES(kernel)                                                                          \
    if (n_tokens >= LC_AMX_TOKENS && lc_amx_active()) {                                             \
        lc_amx_tiles_begin();                                                                       \
        for (; t + LC_AMX_TOKENS <= n_tokens; t += LC_AMX_TOKENS)                                   \
            kernel##_tiles(packed, nb, xb + t * x_bytes, x_bytes, x_block, y + t * ldy, ldy, nrows); \
        lc_amx_tiles_end();                                                                         \
    }
#else
#define OVER_TILES(kernel)
#endif

/* the 32-block kernels over the tile's tokens (legacy_mul's variants: 2 or 1) */
#define OVER_LEGACY_TOKENS(kernel)                                      \
    if (legacy_tile_tokens == 1) { OVER_TOKENS(1, kernel) }             \
    OVER_TOKENS(LEGACY_TOKENS, kernel)

/* the K-quant and i-quant kernels over the tile's tokens (4 or 2) */
#define OVER_KQ_TOKENS(kernel)                                          \
    if (kq_tile_tokens == 2) { OVER_TOKENS(2, kernel) }                 \
    OVER_TOKENS(KQ_TOKENS, kernel)

void lc_packed_mul(int type, int order, const void *packed, int nrows, int64_t k, const void *x, size_t x_bytes,
                   int64_t n_tokens, float *y, size_t ldy) {
    const char *xb = x, *xs[KQ_TOKENS > LEGACY_TOKENS ? KQ_TOKENS : LEGACY_TOKENS];
    const int64_t nb = is_legacy(type) ? k / 32 : k / QK_K;
    const size_t x_block = x_bytes / (size_t)nb;
    int64_t t = 0;
    switch (type) {
    case LC_TYPE_IQ4_NL: case LC_TYPE_MXFP4: OVER_LEGACY_TOKENS(legacy_nibble_lookup_block_sums)
    case LC_TYPE_Q4_0:
        if (order == LC_ORDER_BLOCK_SUMS) { OVER_LEGACY_TOKENS(legacy_q4_0_block_sums) }
        OVER_TILES(legacy_q4_0) OVER_LEGACY_TOKENS(legacy_q4_0)
    case LC_TYPE_Q4_1: OVER_TILES(legacy_q4_1) OVER_LEGACY_TOKENS(legacy_q4_1)
    case LC_TYPE_Q5_0: OVER_TILES(legacy_q5_0) OVER_LEGACY_TOKENS(legacy_q5_0)
    case LC_TYPE_Q5_1: OVER_TILES(legacy_q5_1) OVER_LEGACY_TOKENS(legacy_q5_1)
    case LC_TYPE_Q8_0: OVER_TILES(legacy_q8_0) OVER_LEGACY_TOKENS(legacy_q8_0)
    case LC_TYPE_Q6_K: OVER_KQ_TOKENS(q6_K_tiled)
    case LC_TYPE_Q3_K: OVER_KQ_TOKENS(q3_K_tiled)
    case LC_TYPE_Q2_K:
        if (order == LC_ORDER_KQ_GEMM) { OVER_KQ_TOKENS(q2_K_gemm) }
        OVER_KQ_TOKENS(q2_K_tiled)
    case LC_TYPE_IQ4_XS: case LC_TYPE_IQ2_XXS: case LC_TYPE_IQ2_XS: case LC_TYPE_IQ2_S: case LC_TYPE_IQ3_XXS:
    case LC_TYPE_IQ3_S: case LC_TYPE_IQ1_S: case LC_TYPE_IQ1_M: OVER_KQ_TOKENS(iq_tiled)
    case LC_TYPE_TQ1_0: case LC_TYPE_TQ2_0: OVER_LEGACY_TOKENS(ternary_vec_dot)
    default:
        if (order == LC_ORDER_KQ_GEMM) { OVER_KQ_TOKENS(q4_K_gemm) }
        if (order == LC_ORDER_VEC_DOT) { OVER_KQ_TOKENS(q4_K_vec_dot) }
        if (type == LC_TYPE_Q5_K) { OVER_KQ_TOKENS(q5_K_tiled) }
        OVER_KQ_TOKENS(q4_K_tiled)
    }
}

#else

size_t lc_packed_bytes(int type, int64_t k) { (void)type; (void)k; return 0; }

void lc_set_tile_tokens(int legacy, int k_quants) { (void)legacy; (void)k_quants; }

#endif
