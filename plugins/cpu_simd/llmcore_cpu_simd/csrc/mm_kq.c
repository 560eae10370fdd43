/* Prompt batches through the K-quant weights (Q4_K, Q5_K, Q6_K), as a packed GEMM.
 *
 * A block of LC_KQ_ROWS weight rows is unpacked once into a layout where one 32-bit vector lane
 * holds four consecutive quants of one row; the block then meets every token of the batch: one
 * vector instruction (dpbusd, or maddubs + madd) advances LC_KQ_ROWS dot products by four elements,
 * with the token's four activations broadcast, and no horizontal sum is needed anywhere.
 *
 * Integer block sums are exact, and the float steps per block are llama.cpp's, lane by lane: the
 * tiled order (lc_vec_dot_q*_K_tiled) or the repacked Q4_K GEMM's (lc_vec_dot_q4_K_gemm). So every
 * output has the bits of the one-row functions; tests compare them on every ISA level. */
#include <string.h>

#include "lc_quants_kq.h"

#if defined(LC_AVX512) || defined(LC_AVX2)

/* one super-block of LC_KQ_ROWS rows, unpacked */
typedef struct {
    int32_t q[QK_K / 4][LC_KQ_ROWS];    /* q[g][r]: quants 4g..4g+3 of row r, as unsigned bytes */
    int32_t scale[16][LC_KQ_ROWS];      /* sub-block scales: 8 (Q4_K, Q5_K) or 16 (Q6_K) */
    int32_t min_pair[4][LC_KQ_ROWS];    /* Q4_K, Q5_K: mins of sub-blocks 2p and 2p+1, two int16 */
    float d[LC_KQ_ROWS], dmin[LC_KQ_ROWS];
} kq_packed;

size_t lc_kq_packed_bytes(int64_t k) { return (size_t)(k / QK_K) * sizeof(kq_packed); }

/* ---- packing ---- */

/* the 256 quants of one super-block as unsigned values (Q6_K: q + 32), and its scales */
static void unpack_block(int type, const uint8_t *blk, uint8_t vals[QK_K], int32_t scale[16], int32_t mins[8],
                         float *d, float *dmin) {
    if (type == LC_TYPE_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
        for (int sb = 0; sb < 16; ++sb) {
            const int chunk = sb / 2, half = chunk / 4, part = chunk % 4, off = 16 * (sb & 1);
            const uint8_t *ql = b->ql + 64 * half + 32 * (part & 1) + off, *qh = b->qh + 32 * half + off;
            const int lshift = 4 * (part >> 1), hshift = 2 * part;
            for (int l = 0; l < 16; ++l) vals[16 * sb + l] = (uint8_t)(((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4));
            scale[sb] = b->scales[sb];
        }
        *d = LC_H2F(b->d);
        *dmin = 0.0f;
        return;
    }
    /* Q4_K and Q5_K share d, dmin, scales[12]; Q5_K then has qh[32] before qs */
    const block_q4_K *head = (const block_q4_K *)blk;
    const uint8_t *qs = type == LC_TYPE_Q5_K ? ((const block_q5_K *)blk)->qs : head->qs;
    const uint8_t *qh = type == LC_TYPE_Q5_K ? ((const block_q5_K *)blk)->qh : NULL;
    uint8_t sc[8], mn[8];
    lc_unpack_k4_scales(head->scales, sc, mn);
    for (int sb = 0; sb < 8; ++sb) {
        const uint8_t *q = qs + 32 * (sb / 2);
        const int shift = 4 * (sb & 1);
        for (int l = 0; l < 32; ++l) vals[32 * sb + l] = (uint8_t)((q[l] >> shift) & 0xF);
        if (qh)
            for (int l = 0; l < 32; ++l) vals[32 * sb + l] |= (uint8_t)(((qh[l] >> sb) & 1) << 4);
        scale[sb] = sc[sb];
        mins[sb] = mn[sb];
    }
    *d = LC_H2F(head->d);
    *dmin = LC_H2F(head->dmin);
}

void lc_kq_pack(int type, const void *w, size_t row_bytes, int nrows, int64_t k, void *packed) {
    const int64_t nb = k / QK_K;
    const size_t block_bytes = type == LC_TYPE_Q6_K ? sizeof(block_q6_K)
                             : type == LC_TYPE_Q5_K ? sizeof(block_q5_K) : sizeof(block_q4_K);
    kq_packed *pk = packed;
    if (nrows < LC_KQ_ROWS) memset(pk, 0, (size_t)nb * sizeof(kq_packed));  /* absent rows: zeros */
    uint8_t vals[QK_K];
    int32_t scale[16], mins[8];
    for (int r = 0; r < nrows; ++r) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int64_t i = 0; i < nb; ++i) {
            kq_packed *p = pk + i;
            unpack_block(type, row + i * block_bytes, vals, scale, mins, &p->d[r], &p->dmin[r]);
            for (int g = 0; g < QK_K / 4; ++g) memcpy(&p->q[g][r], vals + 4 * g, 4);
            for (int sb = 0; sb < 16; ++sb) p->scale[sb][r] = scale[sb];
            if (type != LC_TYPE_Q6_K)
                for (int pr = 0; pr < 4; ++pr) p->min_pair[pr][r] = (int32_t)((uint32_t)mins[2 * pr] | ((uint32_t)mins[2 * pr + 1] << 16));
        }
    }
}

/* ---- vectors of LC_KQ_ROWS lanes ---- */

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
#define vf_zero() _mm512_setzero_ps()
#define vf_load(p) _mm512_load_ps(p)
#define vf_set1(x) _mm512_set1_ps(x)
#define vf_cvt(a) _mm512_cvtepi32_ps(a)
#define vf_mul(a, b) _mm512_mul_ps(a, b)
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
static inline void vf_store_rows(float *y, vf v, int nrows) {
    if (nrows == LC_KQ_ROWS) _mm512_storeu_ps(y, v);
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
#define vf_zero() _mm256_setzero_ps()
#define vf_load(p) _mm256_load_ps(p)
#define vf_set1(x) _mm256_set1_ps(x)
#define vf_cvt(a) _mm256_cvtepi32_ps(a)
#define vf_mul(a, b) _mm256_mul_ps(a, b)
#define vf_sub(a, b) _mm256_sub_ps(a, b)
#define vf_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vf_fnma(a, b, c) _mm256_fnmadd_ps(a, b, c)
static inline vi dot4(vi acc, vi w, int32_t x4) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, _mm256_set1_epi32(x4)), _mm256_set1_epi16(1)));
}
static inline void vf_store_rows(float *y, vf v, int nrows) {
    if (nrows == LC_KQ_ROWS) { _mm256_storeu_ps(y, v); return; }
    float tmp[LC_KQ_ROWS];
    _mm256_storeu_ps(tmp, v);
    memcpy(y, tmp, (size_t)nrows * sizeof(float));
}
#endif

/* ---- the products, KQ_TOKENS tokens at a time (each loaded weight vector serves all of them) ---- */

enum { KQ_TOKENS = 4 };

static inline int32_t x4_at(const block_q8_K *x, int e) { int32_t v; memcpy(&v, x->qs + e, 4); return v; }

/* bsum of sub-blocks 2p and 2p+1 (32 activations each), as two int16 for vi_madd16 with min_pair */
static inline int32_t bsum_pair(const block_q8_K *x, int p) {
    const int16_t *b = x->bsums + 4 * p;
    return (int32_t)((uint32_t)(uint16_t)(b[0] + b[1]) | ((uint32_t)(uint16_t)(b[2] + b[3]) << 16));
}

/* lane sums of one 32-element sub-block of Q4_K/Q5_K for nt tokens */
#define SUBBLOCK_DOTS(dots, p, xs, sb, nt)                                                      \
    for (int u = 0; u < (nt); ++u) dots[u] = vi_zero();                                          \
    for (int g = 0; g < 8; ++g) {                                                                \
        const vi w_ = vi_load((p)->q[8 * (sb) + g]);                                             \
        for (int u = 0; u < (nt); ++u) dots[u] = dot4(dots[u], w_, x4_at(xs[u], 32 * (sb) + 4 * g)); \
    }

static inline __attribute__((always_inline)) void k4_tiled(const kq_packed *pk, int64_t nb, const block_q8_K *const *x,
                                                           float *y, size_t ldy, int nrows, const int nt) {
    vf acc[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) acc[u] = vf_zero();
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vi s1[KQ_TOKENS], s2[KQ_TOKENS], dots[KQ_TOKENS];
        for (int u = 0; u < nt; ++u) { xs[u] = x[u] + i; s1[u] = vi_zero(); s2[u] = vi_zero(); }
        for (int sb = 0; sb < 8; ++sb) {
            SUBBLOCK_DOTS(dots, p, xs, sb, nt)
            const vi sc = vi_load(p->scale[sb]);
            for (int u = 0; u < nt; ++u) s1[u] = vi_add(s1[u], vi_mullo(dots[u], sc));
        }
        for (int pr = 0; pr < 4; ++pr) {
            const vi mn = vi_load(p->min_pair[pr]);
            for (int u = 0; u < nt; ++u) s2[u] = vi_add(s2[u], vi_madd16(mn, vi_set1(bsum_pair(xs[u], pr))));
        }
        const vf d = vf_load(p->d), dmin = vf_load(p->dmin);
        for (int u = 0; u < nt; ++u) {
            const vf r = vf_fnma(dmin, vf_cvt(s2[u]), vf_mul(vf_cvt(s1[u]), d));
            acc[u] = vf_fma(r, vf_set1(xs[u]->d), acc[u]);
        }
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, acc[u], nrows);
}

static inline __attribute__((always_inline)) void q4_K_gemm(const kq_packed *pk, int64_t nb, const block_q8_K *const *x,
                                                            float *y, size_t ldy, int nrows, const int nt) {
    vf acc[KQ_TOKENS], acc_min[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) { acc[u] = vf_zero(); acc_min[u] = vf_zero(); }
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vf scale[KQ_TOKENS], scale_min[KQ_TOKENS];
        const vf d = vf_load(p->d), dmin = vf_load(p->dmin);
        for (int u = 0; u < nt; ++u) {
            xs[u] = x[u] + i;
            scale[u] = vf_mul(d, vf_set1(xs[u]->d));
            scale_min[u] = vf_mul(dmin, vf_set1(xs[u]->d));
        }
        for (int pr = 0; pr < 4; ++pr) {
            vi isum[KQ_TOKENS], dots[KQ_TOKENS];
            SUBBLOCK_DOTS(dots, p, xs, 2 * pr, nt)
            const vi sc0 = vi_load(p->scale[2 * pr]);
            for (int u = 0; u < nt; ++u) isum[u] = vi_mullo(dots[u], sc0);
            SUBBLOCK_DOTS(dots, p, xs, 2 * pr + 1, nt)
            const vi sc1 = vi_load(p->scale[2 * pr + 1]), mn = vi_load(p->min_pair[pr]);
            for (int u = 0; u < nt; ++u) {
                isum[u] = vi_add(isum[u], vi_mullo(dots[u], sc1));
                acc[u] = vf_fma(vf_cvt(isum[u]), scale[u], acc[u]);
                acc_min[u] = vf_fma(vf_cvt(vi_madd16(mn, vi_set1(bsum_pair(xs[u], pr)))), scale_min[u], acc_min[u]);
            }
        }
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, vf_sub(acc[u], acc_min[u]), nrows);
}

static inline __attribute__((always_inline)) void q6_K_tiled(const kq_packed *pk, int64_t nb, const block_q8_K *const *x,
                                                             float *y, size_t ldy, int nrows, const int nt) {
    vf acc[KQ_TOKENS];
    for (int u = 0; u < nt; ++u) acc[u] = vf_zero();
    for (int64_t i = 0; i < nb; ++i) {
        const kq_packed *p = pk + i;
        const block_q8_K *xs[KQ_TOKENS];
        vi s1[KQ_TOKENS], dots[KQ_TOKENS];
        for (int u = 0; u < nt; ++u) { xs[u] = x[u] + i; s1[u] = vi_zero(); }
        for (int sb = 0; sb < 16; ++sb) {
            for (int u = 0; u < nt; ++u) dots[u] = vi_set1(-32 * xs[u]->bsums[sb]);  /* the quants' offset of 32 */
            for (int g = 0; g < 4; ++g) {
                const vi w = vi_load(p->q[4 * sb + g]);
                for (int u = 0; u < nt; ++u) dots[u] = dot4(dots[u], w, x4_at(xs[u], 16 * sb + 4 * g));
            }
            const vi sc = vi_load(p->scale[sb]);
            for (int u = 0; u < nt; ++u) s1[u] = vi_add(s1[u], vi_mullo(dots[u], sc));
        }
        const vf d = vf_load(p->d);
        for (int u = 0; u < nt; ++u) acc[u] = vf_fma(vf_mul(vf_cvt(s1[u]), d), vf_set1(xs[u]->d), acc[u]);
    }
    for (int u = 0; u < nt; ++u) vf_store_rows(y + u * ldy, acc[u], nrows);
}

#define KQ_DISPATCH(kernel)                                                               \
    for (; t + KQ_TOKENS <= n_tokens; t += KQ_TOKENS) {                                     \
        for (int u = 0; u < KQ_TOKENS; ++u) xs[u] = (const block_q8_K *)(xb + (t + u) * x_bytes); \
        kernel(pk, nb, xs, y + t * ldy, ldy, nrows, KQ_TOKENS);                             \
    }                                                                                       \
    for (; t < n_tokens; ++t) {                                                             \
        xs[0] = (const block_q8_K *)(xb + t * x_bytes);                                     \
        kernel(pk, nb, xs, y + t * ldy, ldy, nrows, 1);                                     \
    }

void lc_kq_mul(int type, int order, const void *packed, int nrows, int64_t k, const void *x, size_t x_bytes,
               int64_t n_tokens, float *y, size_t ldy) {
    const kq_packed *pk = packed;
    const int64_t nb = k / QK_K;
    const char *xb = x;
    const block_q8_K *xs[KQ_TOKENS];
    int64_t t = 0;
    if (type == LC_TYPE_Q6_K) {
        KQ_DISPATCH(q6_K_tiled)
    } else if (order == LC_KQ_GEMM) {
        KQ_DISPATCH(q4_K_gemm)
    } else {
        KQ_DISPATCH(k4_tiled)
    }
}

#else

size_t lc_kq_packed_bytes(int64_t k) { (void)k; return 0; }

#endif
