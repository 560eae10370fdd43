/* An f16 weight times many f16-rounded activation rows (a prompt, an image's patches), in the order of
 * llamafile's tinyBLAS f16 GEMM as ggml's AVX-512 build runs it: per output one 16-lane accumulator
 * fused over the row in steps of 16, then _mm512_reduce_add_ps's order (the f16 tile's bits, quants.c).
 *
 * The AVX-512 build runs exactly that: an 8x3 register tile (8 weight rows times 3 tokens, 24 zmm
 * accumulators), each step's 3 token vectors converted from f16 as they load, each weight row's
 * vector loaded once for its 3 FMAs; the tile's outputs reduced four at a time in one vector.
 * With 256-bit registers the 16 lanes are two independent halves: lanes 0-7 see only the values
 * 16c .. 16c+7 of the row, lanes 8-15 only 16c+8 .. 16c+15. So each half is a GEMM of its own, run as
 * tinyBLAS's AVX2 build runs its 4x3 register tile (4 weight rows times 3 tokens, 12 accumulators),
 * and the two halves are added at the end.
 *
 * Both read the tokens where they are, f16 rows a block at a time (converted as the tiles load them,
 * which F16C does beside the FMAs; the AVX2 tile's two half passes share its rows' cache lines), the
 * block staying in the core's L2 cache while every panel of weight rows of the chunk meets it: no copy
 * per chunk, which each thread's chunks of one product would repeat. Each panel is packed a k block at
 * a time, converted to floats into a buffer that stays in cache while the block's token tiles pass
 * (the tiles' sums wait in memory between k blocks, exact). Keeping the tokens f16 halves what streams
 * from L2: floats up front cost FFN-sized matrices a quarter of their time. */
#include <stdlib.h>

#include "lc_kernels.h"
#include "lc_simd.h"

#if defined(LC_AVX512)
enum {
    GEMM_RM = 8,                      /* weight rows of a register tile */
    GEMM_RN = 3,                      /* tokens of a register tile */
    GEMM_K_STEPS = 256,               /* steps of 16 values per k block: a panel's block is 128 KB of L2 */
    GEMM_X_BLOCK_HALVES = 384 * 1024, /* a token block: 768 KB of f16 values, most of a Zen 4 core's L2 */
    GEMM_PREPACK_MIN_BLOCKS = 8,      /* this many token blocks convert the weights once for all of them */
    GEMM_TILE_ACC_VECS = GEMM_RM * GEMM_RN
};
typedef __m512 gemm_acc;

/* steps [c0, c0 + ks) of the weight rows [0, nr), step c0 + c: p[(c * nr + i) * 16 + l] = w[i][16 (c0 + c) + l] */
static void pack_weights(const lc_fp16_t *w, size_t w_stride, int nr, int64_t c0, int64_t ks, float *p) {
    for (int64_t c = 0; c < ks; c++)
        for (int i = 0; i < nr; i++)
            _mm512_storeu_ps(p + (c * nr + i) * 16,
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i * w_stride + 16 * (c0 + c)))));
}

/* _mm512_reduce_add_ps of a, b, c and d, the four at once in its order (lanes i and i + 8, then
 * lanes i and i + 4, then (0 + 2) + (1 + 3)): lane l of the result is the l-th one's sum */
static inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));  /* a's 8 sums, b's 8 */
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 quads = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));  /* 4 sums each */
    const __m512 pairs = _mm512_add_ps(quads, _mm512_permute_ps(quads, _MM_SHUFFLE(1, 0, 3, 2)));  /* 0 + 2, 1 + 3 */
    const __m512 sums = _mm512_add_ps(pairs, _mm512_permute_ps(pairs, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), sums));
}

/* an RM x RN tile's k block of ks steps (wp: the panel's block as pack_weights lays it out; x: the
 * first token's first value of the block), from zero at the first block, else from acc[j * RM + i]
 * (weight row i, token j), where it leaves them for the next; after the last block its outputs
 * y[j * ldy + i] in _mm512_reduce_add_ps's order plus bias[i] where there is one (a separate ADD's
 * sum, stored once) */
static inline __attribute__((always_inline)) void tile(int64_t ks, int first, int last, const float *wp,
                                                        const lc_fp16_t *x, int64_t x_stride, __m512 *acc, float *y,
                                                        size_t ldy, const float *bias, const int RM, const int RN) {
    __m512 r[GEMM_RN][GEMM_RM];
    for (int j = 0; j < RN; j++)
        for (int i = 0; i < RM; i++) r[j][i] = first ? _mm512_setzero_ps() : acc[j * RM + i];
    for (int64_t c = 0; c < ks; c++) {
        __m512 b[GEMM_RN];
        for (int j = 0; j < RN; j++) b[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + j * x_stride + 16 * c)));
        for (int i = 0; i < RM; i++) {
            __m512 a = _mm512_loadu_ps(wp + (c * RM + i) * 16);
            /* in a register: GCC would fold the load into each of its RN FMAs, and a 512-bit load per
             * FMA holds Zen 4's load ports at the FMAs' pace (the 8x3 tile ran 15% slower) */
            __asm__("" : "+v"(a));
            for (int j = 0; j < RN; j++) r[j][i] = _mm512_fmadd_ps(a, b[j], r[j][i]);
        }
    }
    if (!last) {
        for (int j = 0; j < RN; j++)
            for (int i = 0; i < RM; i++) acc[j * RM + i] = r[j][i];
        return;
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int j = 0; j < RN; j++)
        for (int i = 0; i < RM; i += 4) {
            const __mmask8 rows = (__mmask8)((1u << (RM - i < 4 ? RM - i : 4)) - 1);
            __m128 sum = reduce4(r[j][i], i + 1 < RM ? r[j][i + 1] : zero, i + 2 < RM ? r[j][i + 2] : zero,
                                 i + 3 < RM ? r[j][i + 3] : zero);
            if (bias) sum = _mm_add_ps(sum, _mm_maskz_loadu_ps(rows, bias + i));
            _mm_mask_storeu_ps(y + j * ldy + i, rows, sum);
        }
}
#elif defined(LC_AVX2)
enum {
    GEMM_RM = 4,                    /* weight rows of a register tile */
    GEMM_RN = 3,                    /* tokens of a register tile */
    GEMM_K_STEPS = 64,              /* steps of 16 values per k block: a panel's block is 16 KB of L1 */
    GEMM_X_BLOCK_HALVES = 192 * 1024, /* a token block: 384 KB of f16 values, most of a Zen 3 core's L2 */
    GEMM_PREPACK_MIN_BLOCKS = 8,     /* this many token blocks convert the weights once for all of them */
    GEMM_TILE_ACC_VECS = 2 * GEMM_RM * GEMM_RN
};
typedef __m256 gemm_acc;

/* steps [c0, c0 + ks) of the weight rows [0, nr), half h, step c0 + c:
 * p[((h * ks + c) * nr + i) * 8 + l] = w[i][16 (c0 + c) + 8h + l] */
static void pack_weights(const lc_fp16_t *w, size_t w_stride, int nr, int64_t c0, int64_t ks, float *p) {
    for (int h = 0; h < 2; h++)
        for (int64_t c = 0; c < ks; c++)
            for (int i = 0; i < nr; i++)
                _mm256_storeu_ps(p + ((h * ks + c) * nr + i) * 8,
                                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i * w_stride + 16 * (c0 + c) + 8 * h))));
}

/* one half of an RM x RN register tile over ks steps, the first if first: acc[j * RM + i] (kept in
 * memory between k blocks, which rounds nothing; from zero at the first) += the 8 lanes of weight
 * row i times token j (its half's values at xp + j x_stride + 16c), in order */
static inline __attribute__((always_inline)) void half_tile(int64_t ks, int first, const float *wp, const lc_fp16_t *xp,
                                                             int64_t x_stride, const int RM, const int RN, __m256 *acc) {
    __m256 r[GEMM_RN][GEMM_RM];
    for (int j = 0; j < RN; j++)
        for (int i = 0; i < RM; i++) r[j][i] = first ? _mm256_setzero_ps() : acc[j * RM + i];
    for (int64_t c = 0; c < ks; c++) {
        __m256 b[GEMM_RN];
        for (int j = 0; j < RN; j++) b[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xp + j * x_stride + 16 * c)));
        for (int i = 0; i < RM; i++) {
            const __m256 a = _mm256_loadu_ps(wp + (c * RM + i) * 8);
            for (int j = 0; j < RN; j++) r[j][i] = _mm256_fmadd_ps(a, b[j], r[j][i]);
        }
    }
    for (int j = 0; j < RN; j++)
        for (int i = 0; i < RM; i++) acc[j * RM + i] = r[j][i];
}

/* an RM x RN tile's k block of ks steps (wp: the panel's block as pack_weights lays it out; x: the
 * first token's first value of the block), both halves; after the last block its
 * outputs y[j * ldy + i] in _mm512_reduce_add_ps's order (low half plus high half, then
 * lc_hsum256's steps), plus bias[i] where there is one (a separate ADD's sum, stored once) */
static inline __attribute__((always_inline)) void tile(int64_t ks, int first, int last, const float *wp,
                                                        const lc_fp16_t *x, int64_t x_stride, __m256 *acc, float *y,
                                                        size_t ldy, const float *bias, const int RM, const int RN) {
    half_tile(ks, first, wp, x, x_stride, RM, RN, acc);
    half_tile(ks, first, wp + ks * RM * 8, x + 8, x_stride, RM, RN, acc + RM * RN);
    if (last)
        for (int j = 0; j < RN; j++)
            for (int i = 0; i < RM; i++) {
                const float sum = lc_hsum256(_mm256_add_ps(acc[j * RM + i], acc[RM * RN + j * RM + i]));
                y[j * ldy + i] = bias ? sum + bias[i] : sum;
            }
}

#endif

#if defined(LC_AVX2)
static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

#define GEMM_TILE(RM, RN) tile(ks, first, last, wp, x, x_stride, acc, y, ldy, bias, RM, RN)
#define GEMM_TILE_RN(RM)                                                                           \
    switch (rn) {                                                                                  \
    case 1: GEMM_TILE(RM, 1); break;                                                               \
    case 2: GEMM_TILE(RM, 2); break;                                                               \
    default: GEMM_TILE(RM, 3); break;                                                              \
    }

static void tile_any(int64_t ks, int first, int last, const float *wp, const lc_fp16_t *x, int64_t x_stride,
                     gemm_acc *acc, float *y, size_t ldy, const float *bias, int rm, int rn) {
    switch (rm) {
    case 1: GEMM_TILE_RN(1) break;
    case 2: GEMM_TILE_RN(2) break;
    case 3: GEMM_TILE_RN(3) break;
#if defined(LC_AVX512)
    case 4: GEMM_TILE_RN(4) break;
    case 5: GEMM_TILE_RN(5) break;
    case 6: GEMM_TILE_RN(6) break;
    case 7: GEMM_TILE_RN(7) break;
    default: GEMM_TILE_RN(8) break;
#else
    default: GEMM_TILE_RN(4) break;
#endif
    }
}

void lc_gemm_f16(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                 float *y, size_t ldy, const float *bias) {
    const int64_t nc = k / 16, xs = (int64_t)(x_stride / sizeof(lc_fp16_t));
    int64_t block = GEMM_X_BLOCK_HALVES / k / GEMM_RN * GEMM_RN;
    if (block < GEMM_RN) block = GEMM_RN;
    /* blocks of equal size: a last block of a few tokens would convert every panel for them alone */
    const int64_t n_blocks = (m + block - 1) / block;
    block = ((m + n_blocks - 1) / n_blocks + GEMM_RN - 1) / GEMM_RN * GEMM_RN;
    if (block > m) block = m;
    const int64_t n_tiles = (block + GEMM_RN - 1) / GEMM_RN;
    /* a panel's k block, converted as the tiles need it; or, where long rows leave room for few tokens
     * in a block (AVX2: FFN down), every panel converted once up front, panel r's block c0 at r k + rm 16 c0:
     * converting a panel for each of many small blocks costs more than reading the floats from L3 */
    const int prepacked = n_blocks >= GEMM_PREPACK_MIN_BLOCKS;
    float *wp = alloc64((size_t)(prepacked ? nr * k : GEMM_RM * 16 * GEMM_K_STEPS) * sizeof(float));
    for (int64_t r = 0; prepacked && r < nr; r += GEMM_RM) {
        const int rm = (int)(nr - r < GEMM_RM ? nr - r : GEMM_RM);
        for (int64_t c0 = 0; c0 < nc; c0 += GEMM_K_STEPS)
            pack_weights((const lc_fp16_t *)((const char *)w + r * w_stride), w_stride / sizeof(lc_fp16_t), rm, c0,
                         nc - c0 < GEMM_K_STEPS ? nc - c0 : GEMM_K_STEPS, wp + r * k + rm * 16 * c0);
    }
    gemm_acc *acc = alloc64((size_t)(n_tiles * GEMM_TILE_ACC_VECS) * sizeof(gemm_acc));  /* each token tile's sums */
    for (int64_t t0 = 0; t0 < m; t0 += block) {
        const int64_t nt = m - t0 < block ? m - t0 : block;
        const lc_fp16_t *xt = (const lc_fp16_t *)((const char *)x + t0 * x_stride);
        for (int64_t r = 0; r < nr; r += GEMM_RM) {
            const int rm = (int)(nr - r < GEMM_RM ? nr - r : GEMM_RM);
            for (int64_t c0 = 0; c0 < nc; c0 += GEMM_K_STEPS) {
                const int64_t ks = nc - c0 < GEMM_K_STEPS ? nc - c0 : GEMM_K_STEPS;
                const float *panel = prepacked ? wp + r * k + rm * 16 * c0 : wp;
                if (!prepacked)
                    pack_weights((const lc_fp16_t *)((const char *)w + r * w_stride), w_stride / sizeof(lc_fp16_t), rm, c0, ks, wp);
                for (int64_t t = 0; t < nt; t += GEMM_RN)
                    tile_any(ks, c0 == 0, c0 + ks == nc, panel, xt + t * xs + 16 * c0, xs, acc + t / GEMM_RN * GEMM_TILE_ACC_VECS,
                             y + (t0 + t) * ldy + r, ldy, bias ? bias + r : NULL, rm, (int)(nt - t < GEMM_RN ? nt - t : GEMM_RN));
            }
        }
    }
    free(wp);
    free(acc);
}
#else
/* without AVX2: the f16 tile's lanes, a few tokens at a time */
void lc_gemm_f16(int64_t k, const void *w, size_t w_stride, int64_t nr, const void *x, size_t x_stride, int64_t m,
                 float *y, size_t ldy, const float *bias) {
    float *xf = malloc((size_t)(LC_TILE_X * k) * sizeof(float));
    for (int64_t t = 0; t < m; t += LC_TILE_X) {
        const int nx = (int)(m - t < LC_TILE_X ? m - t : LC_TILE_X);
        for (int j = 0; j < nx; j++)
            lc_fp16_to_fp32_row((const lc_fp16_t *)((const char *)x + (t + j) * x_stride), xf + j * k, k);
        for (int64_t r = 0; r < nr; r += 2)
            lc_tile_f16_tinyblas((int)k, y + t * ldy + r, ldy, (const char *)w + r * w_stride, w_stride,
                                 nr - r < 2 ? 1 : 2, xf, (size_t)k * sizeof(float), nx);
    }
    lc_add_bias(y, ldy, m, 0, nr, bias);
    free(xf);
}
#endif
