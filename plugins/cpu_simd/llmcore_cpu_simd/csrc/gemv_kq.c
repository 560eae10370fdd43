/* One token times many Q4_K rows (the routed experts' decode product), lc_vec_dot_q4_K's bits.
 *
 * vec_dot's float steps per super-block are two fmas of exact integer sums, so any way of adding the
 * integers gives its bits. The kernels take four rows at a time: each row's quants meet the block's
 * activations (loaded once for the four rows), the sub-block scales applied to the 16-bit pair sums,
 * the four rows' integer sums reduced together, and the float steps done for the four rows in one
 * vector, lane by lane as vec_dot does them. AVX-512 reads a row's 256 quants in two vectors whose
 * low and high nibbles meet the activations rearranged once per block; AVX2 in four. */
#include <string.h>

#include "lc_gemv_kq.h"
#include "lc_quants_kq.h"

#if defined(LC_AVX2)

enum { GEMV_ROWS = 4 };

/* Four rows' block heads (d and dmin, then the 12 bytes of scales: 16 bytes) transposed so that
 * one 32-bit lane per row unpacks them as lc_unpack_k4_scale_words does one row's: row r's scales
 * 0-3 in lane r of sc_lo, 4-7 in lane r of sc_hi, likewise the mins; d of the four rows in the low
 * four int16 of dd, dmin in the high four. */
typedef struct { __m128i dd, sc_lo, sc_hi, mn_lo, mn_hi; } heads4;

static inline heads4 unpack_heads4(const block_q4_K *const b[GEMV_ROWS]) {
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

/* the float steps of one block for the four rows: isum and imin the rows' exact integer sums */
static inline void block_floats(const heads4 *h, float xd, __m128i isum, __m128i imin, __m128 *sum_q4, __m128 *summs) {
    const __m128 vxd = _mm_set1_ps(xd);
    const __m128 d = _mm_mul_ps(vxd, _mm_cvtph_ps(h->dd));
    const __m128 dmin = _mm_mul_ps(vxd, _mm_cvtph_ps(_mm_unpackhi_epi64(h->dd, h->dd)));
    *sum_q4 = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), d, *sum_q4);
    *summs = _mm_fnmadd_ps(dmin, _mm_cvtepi32_ps(imin), *summs);  /* fmaf(-(d_x * dmin), ...) */
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

/* the int16 lanes 0-15 set to row r's scale lo, 16-31 to its scale hi, of the four rows' eight
 * scales each in s16 (row r's at lanes 8r..8r+7) */
static inline __m512i spread(__m512i s16, int r, short lo, short hi) {
    const __m512i idx = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)(8 * r + lo)),
                                                _mm512_set1_epi16((short)(8 * r + hi)));
    return _mm512_permutexvar_epi16(idx, s16);
}

/* the exact sums of the 16 int32 lanes of a[0..3], as the four lanes of one vector */
static inline __m128i reduce4(const __m512i a[GEMV_ROWS]) {
    const __m512i a01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
    const __m512i a23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
    const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi64(a01, a23), _mm512_unpackhi_epi64(a01, a23));
    const __m256i c = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

static void gemv4_q4_K(int64_t nb, const uint8_t *w, size_t row_bytes, const block_q8_K *x, float *y) {
    const __m512i m4 = _mm512_set1_epi8(0xF);
    const __m512i firsts = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128 sum_q4 = _mm_setzero_ps(), summs = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const block_q4_K *b[GEMV_ROWS];
        for (int r = 0; r < GEMV_ROWS; ++r) b[r] = (const block_q4_K *)(w + (size_t)r * row_bytes) + i;
        const heads4 h = unpack_heads4(b);
        /* row r's eight scales (mins) at int16 lanes 8r..8r+7 */
        const __m512i s16 = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi32(h.sc_lo, h.sc_hi), _mm_unpacklo_epi32(h.sc_lo, h.sc_hi)));
        const __m512i m16 = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi32(h.mn_lo, h.mn_hi), _mm_unpacklo_epi32(h.mn_lo, h.mn_hi)));

        const int8_t *q8 = x[i].qs;
        /* low nibbles of qs[0..63] are elements 0-31 and 64-95, high ones 32-63 and 96-127; likewise +128 */
        const __m512i xa_lo = two_halves(q8, 0, 64), xa_hi = two_halves(q8, 32, 96);
        const __m512i xb_lo = two_halves(q8, 128, 192), xb_hi = two_halves(q8, 160, 224);
        const __m256i q8sums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        const __m128i bsum32 = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
        /* the mins' products, row r's four pair sums in 128-bit lane r, summed within each lane */
        __m512i mins = _mm512_madd_epi16(m16, _mm512_broadcast_i32x4(bsum32));
        mins = _mm512_add_epi32(mins, _mm512_shuffle_epi32(mins, _MM_PERM_BADC));
        mins = _mm512_add_epi32(mins, _mm512_shuffle_epi32(mins, _MM_PERM_CDAB));
        const __m128i min_total = _mm512_castsi512_si128(_mm512_permutexvar_epi32(firsts, mins));

        __m512i isum[GEMV_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < GEMV_ROWS; ++r) {
            const __m512i qa = _mm512_loadu_si512(b[r]->qs), qb = _mm512_loadu_si512(b[r]->qs + 64);
            __m512i acc = _mm512_setzero_si512();
            acc = dot_pairs(acc, _mm512_maddubs_epi16(_mm512_and_si512(qa, m4), xa_lo), spread(s16, r, 0, 2));
            acc = dot_pairs(acc, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(qa, 4), m4), xa_hi), spread(s16, r, 1, 3));
            acc = dot_pairs(acc, _mm512_maddubs_epi16(_mm512_and_si512(qb, m4), xb_lo), spread(s16, r, 4, 6));
            acc = dot_pairs(acc, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(qb, 4), m4), xb_hi), spread(s16, r, 5, 7));
            isum[r] = acc;
        }
        block_floats(&h, x[i].d, reduce4(isum), min_total, &sum_q4, &summs);
    }
    _mm_storeu_ps(y, _mm_add_ps(sum_q4, summs));
}

#elif defined(LC_AVX2)

/* acc + the int16 pair products of a and b */
static inline __m256i dot_pairs(__m256i acc, __m256i a, __m256i b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }

/* the exact sums of the 8 int32 lanes of a[0..3], as the four lanes of one vector */
static inline __m128i reduce4(const __m256i a[GEMV_ROWS]) {
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}

/* Each row's scales are broadcast from a small table of int16 pairs (a load, not a shuffle) for the
 * pair products of their sub-block: row r's scale k at pairs[8 * r + k]. */
static void gemv4_q4_K(int64_t nb, const uint8_t *w, size_t row_bytes, const block_q8_K *x, float *y) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m128 sum_q4 = _mm_setzero_ps(), summs = _mm_setzero_ps();
    _Alignas(32) int32_t pairs[8 * GEMV_ROWS];
    for (int64_t i = 0; i < nb; ++i) {
        const block_q4_K *b[GEMV_ROWS];
        for (int r = 0; r < GEMV_ROWS; ++r) b[r] = (const block_q4_K *)(w + (size_t)r * row_bytes) + i;
        const heads4 h = unpack_heads4(b);
        /* int16 4r + k of the widened scales is row r's scale k (k < 4; likewise 4-7 in s_hi): each
         * 128-bit half holds two rows, whose scales the unpacks with themselves make pairs of: rows 0
         * and 2 in the low unpacks' halves, 1 and 3 in the high ones' */
        const __m256i s_lo = _mm256_cvtepu8_epi16(h.sc_lo), s_hi = _mm256_cvtepu8_epi16(h.sc_hi);
        const __m256i lo02 = _mm256_unpacklo_epi16(s_lo, s_lo), hi02 = _mm256_unpacklo_epi16(s_hi, s_hi);
        const __m256i lo13 = _mm256_unpackhi_epi16(s_lo, s_lo), hi13 = _mm256_unpackhi_epi16(s_hi, s_hi);
        _mm256_store_si256((__m256i *)pairs, _mm256_permute2x128_si256(lo02, hi02, 0x20));
        _mm256_store_si256((__m256i *)pairs + 1, _mm256_permute2x128_si256(lo13, hi13, 0x20));
        _mm256_store_si256((__m256i *)pairs + 2, _mm256_permute2x128_si256(lo02, hi02, 0x31));
        _mm256_store_si256((__m256i *)pairs + 3, _mm256_permute2x128_si256(lo13, hi13, 0x31));

        /* the mins' products: rows 0 and 1 (2 and 3) in the two halves, then summed per row */
        const __m256i q8sums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        const __m256i bsum32 = _mm256_broadcastsi128_si256(
            _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1)));
        const __m256i p01 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi32(h.mn_lo, h.mn_hi)), bsum32);
        const __m256i p23 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi32(h.mn_lo, h.mn_hi)), bsum32);
        __m256i mins = _mm256_hadd_epi32(p01, p23);     /* rows 0, 0, 2, 2 | 1, 1, 3, 3 */
        mins = _mm256_hadd_epi32(mins, mins);           /* rows 0, 2, 0, 2 | 1, 3, 1, 3 */
        const __m128i min_total = _mm_unpacklo_epi32(_mm256_castsi256_si128(mins), _mm256_extracti128_si256(mins, 1));

        /* 32 quant bytes hold sub-block 2j in their low nibbles, 2j + 1 in their high ones */
        __m256i isum[GEMV_ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        const int8_t *q8 = x[i].qs;
        /* not unrolled: GCC would compute every row's products of the four steps first and spill them */
#pragma GCC unroll 1
        for (int j = 0; j < 4; ++j) {
            const __m256i x_lo = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j));
            const __m256i x_hi = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32));
            const int32_t *scale = pairs + 2 * j;
#pragma GCC unroll 4
            for (int r = 0; r < GEMV_ROWS; ++r) {
                const __m256i bits = _mm256_loadu_si256((const __m256i *)(b[r]->qs + 32 * j));
                const __m256i p_lo = _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), x_lo);
                const __m256i p_hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), x_hi);
                isum[r] = dot_pairs(isum[r], p_lo, _mm256_set1_epi32(scale[8 * r]));
                isum[r] = dot_pairs(isum[r], p_hi, _mm256_set1_epi32(scale[8 * r + 1]));
            }
        }
        block_floats(&h, x[i].d, reduce4(isum), min_total, &sum_q4, &summs);
    }
    _mm_storeu_ps(y, _mm_add_ps(sum_q4, summs));
}

#endif

#if defined(LC_AVX2)

/* The four rows a group reads are four streams at once, which the hardware prefetcher follows less
 * well than one: each group asks for the bytes this far ahead of it (measured on Zen 4 with weights
 * not in cache: 16 GB/s per core with it, 7.5 without, 12.8 for vec_dot row by row). */
enum { PREFETCH_AHEAD = 8192 };

void lc_gemv_q4_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y) {
    const char *rows = w, *end = rows + (size_t)nrows * row_bytes;
    int64_t r = 0;
    for (; r + GEMV_ROWS <= nrows; r += GEMV_ROWS) {
        const char *ahead = rows + (size_t)r * row_bytes + PREFETCH_AHEAD;
        for (const char *p = ahead; p < ahead + GEMV_ROWS * row_bytes && p < end; p += 64) _mm_prefetch(p, _MM_HINT_T0);
        gemv4_q4_K(k / QK_K, (const uint8_t *)rows + (size_t)r * row_bytes, row_bytes, x, y + r);
    }
    for (; r < nrows; ++r) lc_vec_dot_q4_K((int)k, y + r, rows + (size_t)r * row_bytes, x);
}

#else

void lc_gemv_q4_K(int64_t k, const void *w, size_t row_bytes, int64_t nrows, const void *x, float *y) {
    for (int64_t r = 0; r < nrows; ++r) lc_vec_dot_q4_K((int)k, y + r, (const uint8_t *)w + (size_t)r * row_bytes, x);
}

#endif
