/* One token times many Q2_K, Q3_K, Q4_K, Q5_K, Q6_K or IQ4_XS rows (decode's products with those matrices, and
 * the routed experts'), each row with its vec_dot's bits.
 *
 * Q4_K's vec_dot has two float steps per super-block, fmas of exact integer sums, so any way of
 * adding the integers gives its bits; Q5_K's, Q6_K's and IQ4_XS's have eight integer lanes, each
 * converted and fused into a float lane of its own, so their kernels keep each row's lanes as vec_dot
 * makes them. The kernels take four rows at a time: each row's quants meet the block's activations
 * (loaded once for the four rows), the sub-block scales applied to the 16-bit pair sums, and the float
 * steps done lane by lane as vec_dot does them; Q4_K's four rows' integer sums are reduced together.
 * Q4_K and Q5_K on AVX-512 read a row's 256 quants in two vectors whose low and high nibbles meet the
 * activations rearranged once per block, each sub-block's scale spread by a byte shuffle within
 * 128-bit lanes (a permute across them, vpermw, had made it slower than the AVX2 kernel on Zen 4); Q2_K,
 * Q3_K and Q6_K on AVX-512 take a block in four 64-value steps, each the same chunk of its two halves,
 * the scales spread likewise by a byte shuffle; the other kernels are AVX2's (traits.c says which builds
 * take them). */
#include <string.h>

#include "lc_gemv.h"
#include "lc_gemv_kq.h"
#include "lc_quants_kq.h"
/* IQ4_XS's levels are ggml's table (kvalues_iq4nl) in ggml_tables.h, on the include path of the
 * plugin's build (build.py), not of the tests' standalone builds of the older kernels */
#if __has_include("ggml_tables.h")
#include "ggml_tables.h"
#include "lc_quants_iq.h"
#define LC_GEMV_IQ4_XS 1
#endif

#if defined(LC_AVX2)

/* The group's bytes asked for this far past its start (lc_prefetch_step_share): loaded Zen 3, weights
 * not in cache, one thread, k = 1024-4096: 13-14.5 GB/s for each type; a burst for the next group at
 * its start, or each block's bytes asked for, fell behind vec_dot row by row (10-12) for Q6_K, and for
 * Q4_K at k = 1024 */
enum { PREFETCH_AHEAD = 8192 };

/* The helpers that ask for the bytes ahead are always inlined: left to gcc once they took the prefetch
 * flag, one went out of line and the K-quant GEMVs streamed 2.5-4x slower (Zen 4, Q4_K rows of 1024
 * from RAM: 57-100 ns a row against 22). */
#define LC_INLINE static inline __attribute__((always_inline))

LC_INLINE void prefetch_ahead(const uint8_t *rows, size_t block_bytes, int64_t i, int prefetch) {
    if (prefetch) lc_prefetch_step_share(rows + lc_prefetch_ahead_bytes(PREFETCH_AHEAD, prefetch), i, LC_GEMV_ROWS * block_bytes);
}

/* the Q2_K GEMVs' float steps: the four rows' exact scale and min sums of a block (isum, imin) fused into
 * their two running sums with d * d_x and dmin * d_x (d, dmin: the rows' f16 fields) */
LC_INLINE void q2_K_rows_floats(__m128i isum, __m128i imin, const void *const d[LC_GEMV_ROWS],
                                const void *const dmin[LC_GEMV_ROWS], float x_d, __m128 *acc, __m128 *acc_min) {
    const __m128 xd = _mm_set1_ps(x_d);
    *acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), _mm_mul_ps(_mm_cvtph_ps(lc_gather4_u16(d)), xd), *acc);
    *acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), _mm_mul_ps(_mm_cvtph_ps(lc_gather4_u16(dmin)), xd), *acc_min);
}

/* Four rows' block heads (d and dmin, then the 12 bytes of scales: 16 bytes) transposed so that
 * one 32-bit lane per row unpacks them as lc_unpack_k4_scale_words does one row's: row r's scales
 * 0-3 in lane r of sc_lo, 4-7 in lane r of sc_hi, likewise the mins; d of the four rows in the low
 * four int16 of dd, dmin in the high four. */
typedef struct { __m128i dd, sc_lo, sc_hi, mn_lo, mn_hi; } heads4;

static inline heads4 unpack_heads4(const block_q4_K *const b[LC_GEMV_ROWS]) {
    const __m128i m6 = _mm_set1_epi32(0x3f3f3f3f), low4 = _mm_set1_epi32(0x0f0f0f0f), top2 = _mm_set1_epi32(0x03030303);
    /* the d and dmin halves of four blocks' first words: d to the low four int16, dmin to the high */
    const __m128i split_d = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    const __m128i h0 = _mm_loadu_si128((const __m128i *)b[0]), h1 = _mm_loadu_si128((const __m128i *)b[1]);
    const __m128i h2 = _mm_loadu_si128((const __m128i *)b[2]), h3 = _mm_loadu_si128((const __m128i *)b[3]);
    const __m128i t0 = _mm_unpacklo_epi32(h0, h1), t1 = _mm_unpacklo_epi32(h2, h3);
    const __m128i t2 = _mm_unpackhi_epi32(h0, h1), t3 = _mm_unpackhi_epi32(h2, h3);
    const __m128i dd = _mm_unpacklo_epi64(t0, t1), w0 = _mm_unpackhi_epi64(t0, t1);
    const __m128i w1 = _mm_unpacklo_epi64(t2, t3), w2 = _mm_unpackhi_epi64(t2, t3);
    heads4 h;
    h.dd = _mm_shuffle_epi8(dd, split_d);
    h.sc_lo = _mm_and_si128(w0, m6);
    h.mn_lo = _mm_and_si128(w1, m6);
    h.sc_hi = _mm_or_si128(_mm_and_si128(w2, low4), _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(w0, 6), top2), 4));
    h.mn_hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi32(w2, 4), low4), _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(w1, 6), top2), 4));
    return h;
}

/* the four rows' i-th Q4_K blocks (into b), the bytes ahead asked for, and their heads unpacked */
LC_INLINE heads4 q4_K_blocks(const uint8_t *w, size_t row_bytes, int64_t i, const block_q4_K *b[LC_GEMV_ROWS],
                             int prefetch) {
    for (int r = 0; r < LC_GEMV_ROWS; ++r) {
        b[r] = (const block_q4_K *)(w + (size_t)r * row_bytes) + i;
    }
    prefetch_ahead(w, sizeof(block_q4_K), i, prefetch);
    return unpack_heads4(b);
}

/* the float steps of one block for the four rows: isum and imin the rows' exact integer sums */
static inline void block_floats(const heads4 *h, float xd, __m128i isum, __m128i imin, __m128 *sum_q4, __m128 *summs) {
    const __m128 vxd = _mm_set1_ps(xd);
    const __m128 d = _mm_mul_ps(vxd, _mm_cvtph_ps(h->dd));
    const __m128 dmin = _mm_mul_ps(vxd, _mm_cvtph_ps(_mm_unpackhi_epi64(h->dd, h->dd)));
    *sum_q4 = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), d, *sum_q4);
    *summs = _mm_fnmadd_ps(dmin, _mm_cvtepi32_ps(imin), *summs);  /* fmaf(-(d_x * dmin), ...) */
}

/* Each row's scales are broadcast from a small table of int16 pairs (a load, not a shuffle) for the
 * pair products of their sub-block: row r's scale k at pairs[8 * r + k]. */
static inline void scale_pairs4(const heads4 *h, int32_t pairs[8 * LC_GEMV_ROWS]) {
    /* int16 4r + k of the widened scales is row r's scale k (k < 4; likewise 4-7 in s_hi): each
     * 128-bit half holds two rows, whose scales the unpacks with themselves make pairs of: rows 0
     * and 2 in the low unpacks' halves, 1 and 3 in the high ones' */
    const __m256i s_lo = _mm256_cvtepu8_epi16(h->sc_lo), s_hi = _mm256_cvtepu8_epi16(h->sc_hi);
    const __m256i lo02 = _mm256_unpacklo_epi16(s_lo, s_lo), hi02 = _mm256_unpacklo_epi16(s_hi, s_hi);
    const __m256i lo13 = _mm256_unpackhi_epi16(s_lo, s_lo), hi13 = _mm256_unpackhi_epi16(s_hi, s_hi);
    _mm256_store_si256((__m256i *)pairs, _mm256_permute2x128_si256(lo02, hi02, 0x20));
    _mm256_store_si256((__m256i *)pairs + 1, _mm256_permute2x128_si256(lo13, hi13, 0x20));
    _mm256_store_si256((__m256i *)pairs + 2, _mm256_permute2x128_si256(lo02, hi02, 0x31));
    _mm256_store_si256((__m256i *)pairs + 3, _mm256_permute2x128_si256(lo13, hi13, 0x31));
}

/* the four rows' min products with the block's bsums, each sub-block pair's sum in an int32 lane: row 0's
 * pairs 0-3 in the low half of *p01, row 1's in its high half; rows 2 and 3 likewise in *p23 */
static inline void min_pairs4(const heads4 *h, const block_q8_K *x, __m256i *p01, __m256i *p23) {
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)x->bsums);
    const __m256i bsum32 = _mm256_broadcastsi128_si256(
        _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1)));
    *p01 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi32(h->mn_lo, h->mn_hi)), bsum32);
    *p23 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi32(h->mn_lo, h->mn_hi)), bsum32);
}

/* the four rows' exact min sums */
static inline __m128i mins4(const heads4 *h, const block_q8_K *x) {
    __m256i p01, p23;
    min_pairs4(h, x, &p01, &p23);
    __m256i mins = _mm256_hadd_epi32(p01, p23);     /* rows 0, 0, 2, 2 | 1, 1, 3, 3 */
    mins = _mm256_hadd_epi32(mins, mins);           /* rows 0, 2, 0, 2 | 1, 3, 1, 3 */
    return _mm_unpacklo_epi32(_mm256_castsi256_si128(mins), _mm256_extracti128_si256(mins, 1));
}

/* step j of four rows' Q4_K block products: sub-blocks 2j (the low nibbles of 32 quant bytes) and 2j + 1
 * (their high nibbles) met with the activations, each one's pair sums times its scale (pairs:
 * scale_pairs4's), added to isum */
LC_INLINE void q4_K_step4(const block_q4_K *const b[LC_GEMV_ROWS], const int8_t *q8, int j, const int32_t *pairs,
                          __m256i isum[LC_GEMV_ROWS]) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i x_lo = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)), x_hi = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32));
    const int32_t *scale = pairs + 2 * j;
#pragma GCC unroll 4
    for (int r = 0; r < LC_GEMV_ROWS; ++r) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b[r]->qs + 32 * j));
        const __m256i p_lo = _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), x_lo);
        const __m256i p_hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), x_hi);
        isum[r] = lc_madd_acc_epi16(isum[r], p_lo, _mm256_set1_epi32(scale[8 * r]));
        isum[r] = lc_madd_acc_epi16(isum[r], p_hi, _mm256_set1_epi32(scale[8 * r + 1]));
    }
}

/* lc_vec_dot_q4_K_gemm's bits for four rows (llama.cpp's repacked GEMM, each group of four tokens of a
 * batch): per sub-block pair, the rows' exact integer sums fused with d * d_x, and their min sums with
 * dmin * d_x, into two running sums; the result their difference */
static void gemv4_q4_K_gemm(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    __m128 acc = _mm_setzero_ps(), acc_min = _mm_setzero_ps();
    _Alignas(32) int32_t pairs[8 * LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; ++i) {
        const block_q4_K *b[LC_GEMV_ROWS];
        const heads4 h = q4_K_blocks(w, row_bytes, i, b, prefetch);
        scale_pairs4(&h, pairs);
        __m256i p01, p23;
        min_pairs4(&h, x + i, &p01, &p23);
        __m128i imin[4] = {_mm256_castsi256_si128(p01), _mm256_extracti128_si256(p01, 1), _mm256_castsi256_si128(p23),
                           _mm256_extracti128_si256(p23, 1)};  /* row r's four pairs, transposed below to pair j's four rows */
        const __m128i t0 = _mm_unpacklo_epi32(imin[0], imin[1]), t1 = _mm_unpacklo_epi32(imin[2], imin[3]);
        const __m128i t2 = _mm_unpackhi_epi32(imin[0], imin[1]), t3 = _mm_unpackhi_epi32(imin[2], imin[3]);
        imin[0] = _mm_unpacklo_epi64(t0, t1), imin[1] = _mm_unpackhi_epi64(t0, t1);
        imin[2] = _mm_unpacklo_epi64(t2, t3), imin[3] = _mm_unpackhi_epi64(t2, t3);
        const __m128 xd = _mm_set1_ps(x[i].d);
        const __m128 d = _mm_mul_ps(_mm_cvtph_ps(h.dd), xd), dmin = _mm_mul_ps(_mm_cvtph_ps(_mm_unpackhi_epi64(h.dd, h.dd)), xd);
#pragma GCC unroll 1
        for (int j = 0; j < 4; ++j) {
            __m256i isum[LC_GEMV_ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
            q4_K_step4(b, x[i].qs, j, pairs, isum);
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(lc_reduce4_epi32(isum)), d, acc);
            acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(imin[j]), dmin, acc_min);
        }
    }
    _mm_storeu_ps(y, _mm_sub_ps(acc, acc_min));
}

/* the four rows' i-th Q5_K blocks (into b), the bytes ahead asked for, and their heads unpacked
 * (Q5_K's blocks start as Q4_K's: d, dmin, scales[12]) */
LC_INLINE heads4 q5_K_blocks(const uint8_t *w, size_t row_bytes, int64_t i, const block_q5_K *b[LC_GEMV_ROWS],
                             int prefetch) {
    const block_q4_K *heads[LC_GEMV_ROWS];
    for (int r = 0; r < LC_GEMV_ROWS; ++r) {
        b[r] = (const block_q5_K *)(w + (size_t)r * row_bytes) + i;
        heads[r] = (const block_q4_K *)b[r];
    }
    prefetch_ahead(w, sizeof(block_q5_K), i, prefetch);
    return unpack_heads4(heads);
}

/* Q5_K vec_dot's per-block floats for the four rows: d = d_x * d into d[r], and the min term's fma
 * with dmin = -d_x * dmin (min_total: the rows' exact min sums) */
static inline void q5_K_block_floats(const heads4 *h, float xd, __m128i min_total, float d[LC_GEMV_ROWS], __m128 *summs) {
    _mm_storeu_ps(d, _mm_mul_ps(_mm_set1_ps(xd), _mm_cvtph_ps(h->dd)));
    const __m128 dmin = _mm_mul_ps(_mm_set1_ps(-xd), _mm_cvtph_ps(_mm_unpackhi_epi64(h->dd, h->dd)));
    *summs = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(min_total), *summs);
}

#endif

#if defined(LC_AVX512)


/* acc + the int16 pair products of a and b (vpdpwssd) */
static inline __m512i dot_pairs(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
    return _mm512_dpwssd_epi32(acc, a, b);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

/* 32 activations at a in the low half, 32 at b in the high half */
static inline __m512i two_halves(const int8_t *q8, int a, int b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + a))),
                              _mm256_loadu_si256((const __m256i *)(q8 + b)), 1);
}

/* the int16 lanes 0-15 set to the scale lo, 16-31 to the scale hi, of one row's eight scales in
 * every 128-bit lane of s16: a byte shuffle within the lanes (a cheaper op than a permute across them) */
static inline __m512i spread(__m512i s16, short lo, short hi) {
    const char a = (char)(2 * lo), b = (char)(2 * hi);
    const __m512i pick = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(a | (a + 1) << 8))),
                                            _mm256_set1_epi16((short)(b | (b + 1) << 8)), 1);
    return _mm512_shuffle_epi8(s16, pick);
}

/* the exact sums of the 16 int32 lanes of a[0..3], as the four lanes of one vector */
static inline __m128i reduce4(const __m512i a[LC_GEMV_ROWS]) {
    const __m512i a01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
    const __m512i a23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
    const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi64(a01, a23), _mm512_unpackhi_epi64(a01, a23));
    const __m256i c = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

/* What the four rows' products take from one block: the activations as the four steps meet them
 * (low nibbles of qs[0..63] are elements 0-31 and 64-95, high ones 32-63 and 96-127; likewise +128),
 * row r's eight scales at int16 lanes 8r..8r+7, and the rows' exact min sums. */
typedef struct { __m512i xa_lo, xa_hi, xb_lo, xb_hi, s16; __m128i min_total; } block4;

static inline block4 prepare_block4(const heads4 *h, const block_q8_K *x) {
    const __m512i firsts = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    block4 p;
    p.s16 = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi32(h->sc_lo, h->sc_hi), _mm_unpacklo_epi32(h->sc_lo, h->sc_hi)));
    const __m512i m16 = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi32(h->mn_lo, h->mn_hi), _mm_unpacklo_epi32(h->mn_lo, h->mn_hi)));
    const int8_t *q8 = x->qs;
    p.xa_lo = two_halves(q8, 0, 64), p.xa_hi = two_halves(q8, 32, 96);
    p.xb_lo = two_halves(q8, 128, 192), p.xb_hi = two_halves(q8, 160, 224);
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)x->bsums);
    const __m128i bsum32 = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
    /* the mins' products, row r's four pair sums in 128-bit lane r, summed within each lane */
    __m512i mins = _mm512_madd_epi16(m16, _mm512_broadcast_i32x4(bsum32));
    mins = _mm512_add_epi32(mins, _mm512_shuffle_epi32(mins, _MM_PERM_BADC));
    mins = _mm512_add_epi32(mins, _mm512_shuffle_epi32(mins, _MM_PERM_CDAB));
    p.min_total = _mm512_castsi512_si128(_mm512_permutexvar_epi32(firsts, mins));
    return p;
}

/* row r's 16 int32 lanes of scaled products: its four steps' quants (q4 bytes: the low and high
 * nibbles of qa, then of qb, where the fifth bits are already added) met with the activations, each
 * sub-block's pair sums times its scale */
static inline __m512i row_products(const block4 *p, int r, __m512i a_lo, __m512i a_hi, __m512i b_lo, __m512i b_hi) {
    const __m512i sr = _mm512_shuffle_i32x4(p->s16, p->s16, r * 0x55);  /* row r's scales in every lane */
    __m512i acc = _mm512_setzero_si512();
    acc = dot_pairs(acc, _mm512_maddubs_epi16(a_lo, p->xa_lo), spread(sr, 0, 2));
    acc = dot_pairs(acc, _mm512_maddubs_epi16(a_hi, p->xa_hi), spread(sr, 1, 3));
    acc = dot_pairs(acc, _mm512_maddubs_epi16(b_lo, p->xb_lo), spread(sr, 4, 6));
    return dot_pairs(acc, _mm512_maddubs_epi16(b_hi, p->xb_hi), spread(sr, 5, 7));
}

static void gemv4_q4_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    const __m512i m4 = _mm512_set1_epi8(0xF);
    __m128 sum_q4 = _mm_setzero_ps(), summs = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const block_q4_K *b[LC_GEMV_ROWS];
        const heads4 h = q4_K_blocks(w, row_bytes, i, b, prefetch);
        const block4 p = prepare_block4(&h, x + i);
        __m512i isum[LC_GEMV_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            const __m512i qa = _mm512_loadu_si512(b[r]->qs), qb = _mm512_loadu_si512(b[r]->qs + 64);
            isum[r] = row_products(&p, r, _mm512_and_si512(qa, m4), _mm512_and_si512(_mm512_srli_epi16(qa, 4), m4),
                                   _mm512_and_si512(qb, m4), _mm512_and_si512(_mm512_srli_epi16(qb, 4), m4));
        }
        block_floats(&h, x[i].d, reduce4(isum), p.min_total, &sum_q4, &summs);
    }
    _mm_storeu_ps(y, _mm_add_ps(sum_q4, summs));
}

/* the byte b0 in the low 256 bits, b1 in the high */
static inline __m512i halves_epi8(char b0, char b1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(b0)), _mm256_set1_epi8(b1), 1);
}

/* lc_vec_dot_q5_K's bits for four rows. Each row's integer products go into 16 int32 lanes whose
 * two 256-bit halves add up to vec_dot's 8 (lane l: elements 4l..4l+3 of every sub-block, the
 * halves holding sub-blocks 0, 1, 4, 5 and 2, 3, 6, 7): the quants and scales are met as gemv4_q4_K
 * meets Q4_K's, a quant's fifth bit (bit sb of qh[l] for element l of sub-block sb) added where it
 * tests set; then vec_dot's float steps, lane by lane: per block the 8-lane fma of the scale term
 * and the fma of the min term, summed at the end as its hsum does. */
static void gemv4_q5_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    const __m512i m4 = _mm512_set1_epi8(0xF), fifth = _mm512_set1_epi8(16);
    const __m512i bits_a_lo = halves_epi8(1 << 0, 1 << 2), bits_a_hi = halves_epi8(1 << 1, 1 << 3);
    const __m512i bits_b_lo = halves_epi8(1 << 4, 1 << 6), bits_b_hi = halves_epi8((char)(1 << 5), (char)(1 << 7));
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m128 summs = _mm_setzero_ps();
    float d[LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; ++i) {
        const block_q5_K *b[LC_GEMV_ROWS];
        const heads4 h = q5_K_blocks(w, row_bytes, i, b, prefetch);
        const block4 p = prepare_block4(&h, x + i);
        q5_K_block_floats(&h, x[i].d, p.min_total, d, &summs);
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            const __m512i qa = _mm512_loadu_si512(b[r]->qs), qb = _mm512_loadu_si512(b[r]->qs + 64);
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b[r]->qh));
            __m512i a_lo = _mm512_and_si512(qa, m4), a_hi = _mm512_and_si512(_mm512_srli_epi16(qa, 4), m4);
            __m512i b_lo = _mm512_and_si512(qb, m4), b_hi = _mm512_and_si512(_mm512_srli_epi16(qb, 4), m4);
            a_lo = _mm512_mask_add_epi8(a_lo, _mm512_test_epi8_mask(qh, bits_a_lo), a_lo, fifth);
            a_hi = _mm512_mask_add_epi8(a_hi, _mm512_test_epi8_mask(qh, bits_a_hi), a_hi, fifth);
            b_lo = _mm512_mask_add_epi8(b_lo, _mm512_test_epi8_mask(qh, bits_b_lo), b_lo, fifth);
            b_hi = _mm512_mask_add_epi8(b_hi, _mm512_test_epi8_mask(qh, bits_b_hi), b_hi, fifth);
            const __m512i isum = row_products(&p, r, a_lo, a_hi, b_lo, b_hi);
            const __m256i lanes = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d[r]), _mm256_cvtepi32_ps(lanes), acc[r]);
        }
    }
    _mm_storeu_ps(y, _mm_add_ps(lc_hsum8_rows4(acc), summs));
}

/* Q2_K's and Q6_K's blocks in four 64-value steps: step j takes 32-value chunk j of each 128-value half,
 * values 32j..32j+31 in the low 256 bits and 128+32j.. in the high ones, so its 128-bit lanes are
 * sub-blocks 2j, 2j+1, 8+2j and 9+2j. The activations of step j: */
static inline __m512i step_activations(const block_q8_K *x, int j) { return two_halves(x->qs, 32 * j, 128 + 32 * j); }

/* a row's 16 sub-block scales (bytes, signed or not) as int16 where the steps pick them: scales 0-7 in
 * 128-bit lanes 0 and 1, 8-15 in lanes 2 and 3 */
static inline __m512i step_scales(__m128i sc, int is_signed) {
    const __m256i twice = _mm256_permute4x64_epi64(_mm256_castsi128_si256(sc), 0x50);
    return is_signed ? _mm512_cvtepi8_epi16(twice) : _mm512_cvtepu8_epi16(twice);
}

/* step j's scale at every int16 of its lanes (a byte shuffle within them): word 2j of lanes 0 and 2,
 * word 2j + 1 of lanes 1 and 3 */
static inline __m512i step_scale(__m512i scales, int j) {
#define PICK(w) (int)((uint32_t)(2 * (w)) | (uint32_t)(2 * (w) + 1) << 8 | (uint32_t)(2 * (w)) << 16 | (uint32_t)(2 * (w) + 1) << 24)
    const int a = PICK(2 * j), b = PICK(2 * j + 1);
#undef PICK
    return _mm512_shuffle_epi8(scales, _mm512_setr_epi32(a, a, a, a, b, b, b, b, a, a, a, a, b, b, b, b));
}

/* A block's activations as the steps meet them: the quants, their pair sums times 4 (Q3_K's q + 4
 * taken back per pair, as vec_dot does), the bsums (what a kernel leaves unread, the compiler drops) */
typedef struct { __m512i q8[4], q8_times4[4]; __m256i bsums; } step_activations4;

static inline __attribute__((always_inline)) step_activations4 block_steps(const block_q8_K *x) {
    step_activations4 a;
    for (int j = 0; j < 4; ++j) {
        a.q8[j] = step_activations(x, j);
        a.q8_times4[j] = _mm512_maddubs_epi16(_mm512_set1_epi8(4), a.q8[j]);
    }
    a.bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    return a;
}

/* lc_vec_dot_q2_K_repacked's bits for four rows (llama.cpp's repacked Q2_K GEMV, where the CPU has
 * AVX-512): a row's block in the four steps, each sub-block's pair sums times its scale; the rows'
 * exact scale and min sums fused into their two running sums with d * d_x and dmin * d_x */
static void gemv4_q2_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m128 acc = _mm_setzero_ps(), acc_min = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        prefetch_ahead(w, sizeof(block_q2_K), i, prefetch);
        const step_activations4 a = block_steps(x + i);
        __m512i isum[LC_GEMV_ROWS];
        __m256i imin[LC_GEMV_ROWS];
        const void *d[LC_GEMV_ROWS], *dmin[LC_GEMV_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            const block_q2_K *b = (const block_q2_K *)(w + (size_t)r * row_bytes) + i;
            const __m128i sc = _mm_loadu_si128((const __m128i *)b->scales);
            imin[r] = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0xF))), a.bsums);
            const __m512i scales = step_scales(_mm_and_si128(sc, _mm_set1_epi8(0xF)), 0), bits = _mm512_loadu_si512(b->qs);
            isum[r] = _mm512_setzero_si512();
            for (int j = 0; j < 4; ++j)
                isum[r] = dot_pairs(isum[r], _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(bits, 2 * j), m3), a.q8[j]),
                                    step_scale(scales, j));
            d[r] = &b->d;
            dmin[r] = &b->dmin;
        }
        q2_K_rows_floats(reduce4(isum), lc_reduce4_epi32(imin), d, dmin, x[i].d, &acc, &acc_min);
    }
    _mm_storeu_ps(y, _mm_sub_ps(acc, acc_min));
}

/* the two halves' int32 lanes of a step sum added: vec_dot's 8 lanes */
static inline __m256i add_halves(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

/* Q6_K's block: its quants q + 32 from the low nibbles of ql and two bits of qh, each sub-block's pair
 * sums times its scale, less 32 times the scaled bsums */
static inline __attribute__((always_inline)) __m256i q6_K_row_lanes(const block_q6_K *b, const step_activations4 *a) {
    const __m512i m4 = _mm512_set1_epi8(0xF), m48 = _mm512_set1_epi8(0x30);
    const __m128i sc = _mm_loadu_si128((const __m128i *)b->scales);
    const __m512i scales = step_scales(sc, 1);
    const __m512i ql0 = two_halves((const int8_t *)b->ql, 0, 64), ql1 = two_halves((const int8_t *)b->ql, 32, 96);
    const __m512i qh = _mm512_loadu_si512(b->qh);
    const __m512i u[4] = {
        _mm512_or_si512(_mm512_and_si512(ql0, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m48)),
        _mm512_or_si512(_mm512_and_si512(ql1, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m48)),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql0, 4), m4), _mm512_and_si512(qh, m48)),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql1, 4), m4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), m48))};
    __m512i isum = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) isum = dot_pairs(isum, _mm512_maddubs_epi16(u[j], a->q8[j]), step_scale(scales, j));
    return _mm256_sub_epi32(add_halves(isum), _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), a->bsums), 5));
}

/* Q3_K's block: its quants q + 4 from two bits of qs and one of hmask (bit j of hmask[m] for step j's low
 * half, bit 4 + j for its high half), the 4 taken back per pair, each sub-block's pair sums times its scale */
static inline __attribute__((always_inline)) __m256i q3_K_row_lanes(const block_q3_K *b, const step_activations4 *a) {
    const __m512i m3 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(4);
    uint32_t words[4];
    lc_q3_scale_words(b->scales, words);
    const __m512i scales = step_scales(_mm_sub_epi8(_mm_setr_epi32((int)words[0], (int)words[1], (int)words[2], (int)words[3]),
                                                   _mm_set1_epi8(32)), 1);
    const __m256i hmask = _mm256_loadu_si256((const __m256i *)b->hmask);
    const __m512i bits = _mm512_loadu_si512(b->qs);
    const __m512i high = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_slli_epi16(hmask, 2)), _mm256_srli_epi16(hmask, 2), 1);
    __m512i isum = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
        const __m512i u = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(bits, 2 * j), m3), _mm512_and_si512(_mm512_srli_epi16(high, j), m4));
        isum = dot_pairs(isum, _mm512_sub_epi16(_mm512_maddubs_epi16(u, a->q8[j]), a->q8_times4[j]), step_scale(scales, j));
    }
    return add_halves(isum);
}

/* lc_vec_dot_q3_K's and lc_vec_dot_q6_K's bits for four rows: each row's 8 exact lanes of a block fused
 * lane by lane into its float lanes with d * d_x, then hsum_float_8 */
#define GEMV4_LANES(name)                                                                                          \
    static void gemv4_##name(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) { \
        const block_q8_K *x = vx;                                                                                   \
        __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
        for (int64_t i = 0; i < nb; ++i) {                                                                          \
            prefetch_ahead(w, sizeof(block_##name), i, prefetch);                                                   \
            const step_activations4 a = block_steps(x + i);                                                         \
            _Pragma("GCC unroll 4")                                                                                 \
            for (int r = 0; r < LC_GEMV_ROWS; ++r) {                                                                \
                const block_##name *b = (const block_##name *)(w + (size_t)r * row_bytes) + i;                      \
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(x[i].d * LC_H2F(b->d)), _mm256_cvtepi32_ps(name##_row_lanes(b, &a)), acc[r]); \
            }                                                                                                       \
        }                                                                                                           \
        for (int r = 0; r < LC_GEMV_ROWS; ++r) y[r] = lc_hsum256(acc[r]);                                           \
    }
GEMV4_LANES(q3_K)
GEMV4_LANES(q6_K)

#elif defined(LC_AVX2)

static void gemv4_q4_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    __m128 sum_q4 = _mm_setzero_ps(), summs = _mm_setzero_ps();
    _Alignas(32) int32_t pairs[8 * LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; ++i) {
        const block_q4_K *b[LC_GEMV_ROWS];
        const heads4 h = q4_K_blocks(w, row_bytes, i, b, prefetch);
        scale_pairs4(&h, pairs);
        const __m128i min_total = mins4(&h, x + i);
        __m256i isum[LC_GEMV_ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        /* not unrolled: GCC would compute every row's products of the four steps first and spill them */
#pragma GCC unroll 1
        for (int j = 0; j < 4; ++j) q4_K_step4(b, x[i].qs, j, pairs, isum);
        block_floats(&h, x[i].d, lc_reduce4_epi32(isum), min_total, &sum_q4, &summs);
    }
    _mm_storeu_ps(y, _mm_add_ps(sum_q4, summs));
}

/* lc_vec_dot_q5_K's bits for four rows, gemv4_q4_K's steps with the fifth bits: each row's integer
 * products in vec_dot's 8 int32 lanes (sub-blocks 2j and 2j + 1 take bits 2j and 2j + 1 of qh[l]
 * for their element l), then its float steps lane by lane: per block the 8-lane fma of the scale
 * term and the fma of the min term, summed at the end as its hsum does. */
static void gemv4_q5_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0xF), fifth = _mm256_set1_epi8(16);
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m128 summs = _mm_setzero_ps();
    _Alignas(32) int32_t pairs[8 * LC_GEMV_ROWS];
    float d[LC_GEMV_ROWS];
    for (int64_t i = 0; i < nb; ++i) {
        const block_q5_K *b[LC_GEMV_ROWS];
        const heads4 h = q5_K_blocks(w, row_bytes, i, b, prefetch);
        scale_pairs4(&h, pairs);
        q5_K_block_floats(&h, x[i].d, mins4(&h, x + i), d, &summs);

        __m256i isum[LC_GEMV_ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        const int8_t *q8 = x[i].qs;
#pragma GCC unroll 1
        for (int j = 0; j < 4; ++j) {
            const __m256i x_lo = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j));
            const __m256i x_hi = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32));
            const __m128i to_bit0 = _mm_cvtsi32_si128(2 * j);  /* qh's bit 2j to bit 0 */
            const int32_t *scale = pairs + 2 * j;
#pragma GCC unroll 4
            for (int r = 0; r < LC_GEMV_ROWS; ++r) {
                const __m256i bits = _mm256_loadu_si256((const __m256i *)(b[r]->qs + 32 * j));
                const __m256i hbits = _mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)b[r]->qh), to_bit0);
                const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_and_si256(_mm256_slli_epi16(hbits, 4), fifth));
                const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                                   _mm256_and_si256(_mm256_slli_epi16(hbits, 3), fifth));
                isum[r] = lc_madd_acc_epi16(isum[r], _mm256_maddubs_epi16(lo, x_lo), _mm256_set1_epi32(scale[8 * r]));
                isum[r] = lc_madd_acc_epi16(isum[r], _mm256_maddubs_epi16(hi, x_hi), _mm256_set1_epi32(scale[8 * r + 1]));
            }
        }
        for (int r = 0; r < LC_GEMV_ROWS; ++r) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d[r]), _mm256_cvtepi32_ps(isum[r]), acc[r]);
    }
    _mm_storeu_ps(y, _mm_add_ps(lc_hsum8_rows4(acc), summs));
}

#endif

#if defined(LC_AVX2)

#if defined(LC_GEMV_IQ4_XS)

/* IQ4_XS's eight sub-block scales (ls - 32) of one block, scale ib in both int16 halves of int32
 * lane ib: broadcast, a madd's operand for the sub-block's 16 pair sums */
static inline __m256i iq4_xs_scale_pairs(const block_iq4_xs *b) {
    const __m256i low_shift = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    /* scales_h is the upper half of the block's first 32-bit word (d the lower) */
    const __m256i high_shift = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
    uint32_t first_word, scales_l;
    memcpy(&first_word, b, sizeof first_word);
    memcpy(&scales_l, b->scales_l, sizeof scales_l);
    const __m256i low = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)scales_l), low_shift), _mm256_set1_epi32(0xF));
    const __m256i high = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)first_word), high_shift), _mm256_set1_epi32(3));
    const __m256i ls = _mm256_or_si256(low, _mm256_slli_epi32(high, 4));
    return _mm256_sub_epi16(_mm256_or_si256(ls, _mm256_slli_epi32(ls, 16)), _mm256_set1_epi16(32));
}

/* lc_vec_dot_iq4_xs's lanes for four rows: a sub-block's 16 quant bytes broadcast to both halves,
 * the high half shifted to its high nibbles, so one lookup gives vec_dot's 32 levels (values 0-15
 * low, 16-31 high). vec_dot's byte products are |w| times x signed by w; here |x| times w signed by
 * x, the same products (Q8_K's quants are within +-127, so neither sign wraps), so |x| is taken once
 * for the four rows. */
static void gemv4_iq4_xs(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl));
    const __m256i m4 = _mm256_set1_epi8(0xF), nibble_shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    _Alignas(32) int32_t scale_pairs[LC_GEMV_ROWS][QK_K / 32];
    for (int64_t i = 0; i < nb; ++i) {
        const block_iq4_xs *b[LC_GEMV_ROWS];
        prefetch_ahead(w, sizeof(block_iq4_xs), i, prefetch);
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            b[r] = (const block_iq4_xs *)(w + (size_t)r * row_bytes) + i;
            _mm256_store_si256((__m256i *)scale_pairs[r], iq4_xs_scale_pairs(b[r]));
        }
        __m256i isum[LC_GEMV_ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 1
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            const __m256i xq = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * ib));
            const __m256i x_abs = _mm256_abs_epi8(xq);
#pragma GCC unroll 4
            for (int r = 0; r < LC_GEMV_ROWS; ++r) {
                const __m256i bits = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b[r]->qs + 16 * ib)));
                const __m256i wq = _mm256_shuffle_epi8(levels, _mm256_and_si256(_mm256_srlv_epi32(bits, nibble_shift), m4));
                const __m256i pairs = _mm256_maddubs_epi16(x_abs, _mm256_sign_epi8(wq, xq));
                isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(pairs, _mm256_set1_epi32(scale_pairs[r][ib])));
            }
        }
        for (int r = 0; r < LC_GEMV_ROWS; ++r)
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(LC_H2F(b[r]->d) * x[i].d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
    }
    for (int r = 0; r < LC_GEMV_ROWS; ++r) y[r] = lc_hsum256(acc[r]);
}

#endif

#if !defined(LC_AVX512) /* AVX-512's are above */
/* lc_vec_dot_q6_K's lanes for four rows, a block of each in turn: the unsigned 6-bit quants (q + 32)
 * meet the activations, 32 times the scaled bsums taken back, as vec_dot does */
static void gemv4_q6_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    __m256 acc[LC_GEMV_ROWS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        prefetch_ahead(w, sizeof(block_q6_K), i, prefetch);
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            const block_q6_K *b = (const block_q6_K *)(w + (size_t)r * row_bytes) + i;
            /* opaque to the compiler, so that it does not hoist the block's 8 activation vectors out of
             * the rows' loop into registers the row's steps then spill for */
            const int8_t *q8 = x[i].qs;
            __asm__("" : "+r"(q8));
            const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(s16, bsums), 5));
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                __m256i u[4];
                lc_q6_K_unpack_half(b, h, u);
#pragma GCC unroll 4
                for (int k = 0; k < 4; ++k) {
                    const __m256i p = _mm256_maddubs_epi16(u[k], _mm256_loadu_si256((const __m256i *)(q8 + 128 * h + 32 * k)));
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, lc_q6_K_scale_pair(s16, 4 * h + k)));
                }
            }
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(x[i].d * LC_H2F(b->d)), _mm256_cvtepi32_ps(isum), acc[r]);
        }
    }
    for (int r = 0; r < LC_GEMV_ROWS; ++r) y[r] = lc_hsum256(acc[r]);
}

/* lc_vec_dot_q2_K_repacked's bits for four rows (llama.cpp's repacked Q2_K GEMV, where the CPU has
 * AVX-512): each row's exact scale and min sums of a block (vec_dot's lanes, reduced for the four rows
 * together), fused into the rows' two running sums with d * d_x and dmin * d_x */
static void gemv4_q2_K(int64_t nb, const uint8_t *w, size_t row_bytes, const void *vx, float *y, int prefetch) {
    const block_q8_K *x = vx;
    __m128 acc = _mm_setzero_ps(), acc_min = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        prefetch_ahead(w, sizeof(block_q2_K), i, prefetch);
        __m256i isum[LC_GEMV_ROWS], imin[LC_GEMV_ROWS];
        const void *d[LC_GEMV_ROWS], *dmin[LC_GEMV_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < LC_GEMV_ROWS; ++r) {
            const block_q2_K *b = (const block_q2_K *)(w + (size_t)r * row_bytes) + i;
            __m256i halves[2];
            lc_q2_K_block_isums(b, x + i, halves, &imin[r]);
            isum[r] = _mm256_add_epi32(halves[0], halves[1]);
            d[r] = &b->d;
            dmin[r] = &b->dmin;
        }
        q2_K_rows_floats(lc_reduce4_epi32(isum), lc_reduce4_epi32(imin), d, dmin, x[i].d, &acc, &acc_min);
    }
    _mm_storeu_ps(y, _mm_sub_ps(acc, acc_min));
}
#endif

#define GEMV4(name) gemv4_##name

#else

#define GEMV4(name) NULL  /* row by row */

#endif

#define GEMV4_ROWS(name) lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK_K, GEMV4(name), lc_vec_dot_##name, 1, prefetch)

void lc_gemv_q4_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) { GEMV4_ROWS(q4_K); }
void lc_gemv_q4_K_gemm(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
#if defined(LC_AVX2)
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK_K, gemv4_q4_K_gemm, lc_vec_dot_q4_K_gemm, 1, prefetch);
#else
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK_K, NULL, lc_vec_dot_q4_K_gemm, 1, prefetch);
#endif
}
void lc_gemv_q5_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) { GEMV4_ROWS(q5_K); }
void lc_gemv_q6_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) { GEMV4_ROWS(q6_K); }
#if defined(LC_AVX512)
void lc_gemv_q3_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) { GEMV4_ROWS(q3_K); }
#endif
void lc_gemv_q2_K_repacked(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) {
    lc_gemv_rows(k, w, row_bytes, nrows, x, y, QK_K, GEMV4(q2_K), lc_vec_dot_q2_K_repacked, 1, prefetch);
}
#if defined(LC_GEMV_IQ4_XS)
void lc_gemv_iq4_xs(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y, int prefetch) { GEMV4_ROWS(iq4_xs); }
#endif
