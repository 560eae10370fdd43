/* The op kernels of the graph executor. Each runs thread ith's share of one node; the executor
 * puts a barrier after it where a later node depends on it. Numerics follow the reference backend
 * (llama.cpp's CPU math): norms accumulate in double, attention rounds queries and probabilities
 * to f16, rope uses ggml's running product for the angles. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lc_clip.h"
#include "lc_graph.h"
#include "lc_kernels.h"
#include "lc_kv.h"
#include "lc_mm_packed.h"
#include "lc_moe.h"
#include "lc_quants_iq.h"
#include "lc_quants_kq.h"
#include "lc_quants_legacy.h"
#include "lc_simd.h"
#include "lc_rwkv.h"
#include "lc_ssm.h"

/* thread ith's share of n elements in whole vectors of 16; the last thread also takes the tail */
static inline void share_vectors(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    share(n / 16, ith, nth, begin, end);
    *begin *= 16;
    *end = ith == nth - 1 ? n : *end * 16;
}

/* ---- rows in, rows out --------------------------------------------------------------------- */

static void op_get_rows(const lc_node *nd, const lc_task *task) {
    const int ith = task->ith, nth = task->nth;
    const int64_t cols = nd->ne[0];
    const int32_t *ids = nd->src[1];
    const char *table = nd->src[0];
    float *dst = nd->dst;
    const lc_dequant_row_fn dequant = lc_traits[nd->type].dequant_row;
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) dequant(table + (int64_t)ids[r] * nd->row_bytes, dst + r * cols, cols);
}

static void op_quantize(const lc_node *nd, const lc_task *task) {
    const int ith = task->ith, nth = task->nth;
    const int64_t cols = nd->ne[0];
    const float *src = nd->src[0];
    char *dst = nd->dst;
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) lc_quantize_row(nd->type, src + r * cols, dst + r * nd->row_bytes, cols);
}

/* The matmul is cut into chunks of weight rows that threads claim as they go, so a thread that
 * the OS delays does not hold the others up. Within a chunk, tokens go in tiles so the chunk's
 * weight rows are re-read from cache; each output is one tile dot, whatever the batch. */
enum { MM_TOKEN_TILE = 16 };

/* the weight bytes a short batch's GEMV takes for each token in turn (L1 on current x86 cores is 32-48 KiB) */
enum { BATCH_GEMV_BLOCK_BYTES = 16 << 10 };

/* chunks per thread, [0] for one token, [1] for a batch: more even out a delayed thread, fewer
 * keep each thread's run of weight rows long; which wins depends on the CPU (tuning.py times them) */
static int mm_chunks_per_thread[2] = {4, 4};

void lc_set_mul_mat_chunks(int one_token, int batch) {
    mm_chunks_per_thread[0] = one_token > 0 ? one_token : 1;
    mm_chunks_per_thread[1] = batch > 0 ? batch : 1;
}

static int q2_K_repacked(const lc_node *nd);

/* For a batch of 8 or more tokens llama.cpp multiplies the K-quant weights it does not repack (Q3_K,
 * Q5_K, Q6_K; Q4_K and Q2_K only when it has not repacked them) and the i-quants but IQ4_NL with its
 * tiled kernel, whose roundings differ from vec_dot's: the same choice here, so prompts give
 * llama.cpp's numbers bit for bit. */
enum { TILED_MIN_TOKENS = 8 };

static lc_vec_dot_fn tiled_dot(const lc_node *nd) {
    if (nd->ne[1] < TILED_MIN_TOKENS) return NULL;
    switch (nd->type) {
    case LC_TYPE_Q2_K: return q2_K_repacked(nd) ? NULL : lc_vec_dot_q2_K_tiled;
    case LC_TYPE_Q3_K: return lc_vec_dot_q3_K_tiled;
    case LC_TYPE_Q5_K: return lc_vec_dot_q5_K_tiled;
    case LC_TYPE_Q6_K: return lc_vec_dot_q6_K_tiled;
    case LC_TYPE_Q4_K: return nd->ne[2] % 8 ? lc_vec_dot_q4_K_tiled : NULL;
    case LC_TYPE_IQ4_XS: return lc_vec_dot_iq4_xs_tiled;
#if __has_include("ggml_tables.h") /* quants_iq_grid.c is built */
    case LC_TYPE_IQ2_XXS: return lc_vec_dot_iq2_xxs_tiled;
    case LC_TYPE_IQ2_XS: return lc_vec_dot_iq2_xs_tiled;
    case LC_TYPE_IQ2_S: return lc_vec_dot_iq2_s_tiled;
    case LC_TYPE_IQ3_XXS: return lc_vec_dot_iq3_xxs_tiled;
    case LC_TYPE_IQ3_S: return lc_vec_dot_iq3_s_tiled;
    case LC_TYPE_IQ1_S: return lc_vec_dot_iq1_s_tiled;
    case LC_TYPE_IQ1_M: return lc_vec_dot_iq1_m_tiled;
#endif
    default: return NULL;
    }
}

/* An f32 weight meets a batch of two or more tokens through llamafile's tinyBLAS when its rows are
 * whole vectors of 16 and it has a multiple of 4 rows (tinyBLAS::matmul declines other counts);
 * ggml_vec_dot_f32 otherwise, and always in mul_mat_id */
static int f32_gemm(const lc_node *nd) {
    return nd->type == LC_TYPE_F32 && nd->i[0] != LC_MM_ROUTED && nd->ne[1] >= 2 && nd->ne[0] % 16 == 0 &&
           nd->ne[2] % 4 == 0;
}

/* A BF16 weight likewise meets two or more tokens through tinyBLAS's BF16 GEMM (whole steps of its
 * vectors, a multiple of 4 rows), vec_dot otherwise */
static int bf16_gemm(const lc_node *nd) {
    return nd->type == LC_TYPE_BF16 && nd->i[0] != LC_MM_ROUTED && nd->ne[1] >= 2 &&
           nd->ne[0] % LC_BF16_TINYBLAS_STEP == 0 && nd->ne[2] % 4 == 0;
}

/* An f16 weight likewise meets two or more (f16-rounded) tokens through tinyBLAS's f16 GEMM, whose
 * tile reads each weight row once for up to LC_TILE_X tokens (a verified speculative draft, a few
 * server slots); one token, rows not of whole 16s and weights of a row count not a multiple of 4
 * (a rank-2 LoRA's A) go through ggml_vec_dot_f16 */
static int f16_gemm(const lc_node *nd) {
    return nd->type == LC_TYPE_F16 && nd->i[0] != LC_MM_ROUTED && nd->ne[1] >= 2 && nd->ne[0] % 16 == 0 &&
           nd->ne[2] % 4 == 0;
}

/* llama.cpp (x86) repacks a Q2_K weight whose rows are a multiple of 8 where the CPU has AVX-512 (its
 * native build's ggml_cpu_has_avx512), as it does Q4_K's (with AVX2) */
static int q2_K_repacked(const lc_node *nd) {
#if defined(__x86_64__) || defined(__i386__)
    return nd->type == LC_TYPE_Q2_K && nd->ne[2] % 8 == 0 && __builtin_cpu_supports("avx512f");
#else
    (void)nd;
    return 0;
#endif
}

/* A Q4_K or Q2_K weight llama.cpp repacks meets a batch in groups of four tokens through its GEMM, the
 * tokens left over through its GEMV (vec_dot's order here, lc_vec_dot_q4_K's and
 * lc_vec_dot_q2_K_repacked's): the tokens before this index take the GEMM's order (*gemm_dot). */
static int64_t repacked_gemm_tokens(const lc_node *nd, lc_vec_dot_fn *gemm_dot) {
    *gemm_dot = nd->type == LC_TYPE_Q2_K ? lc_vec_dot_q2_K_gemm : lc_vec_dot_q4_K_gemm;
    if (nd->i[0] == LC_MM_ROUTED) return 0;  /* its repacked mul_mat_id takes every routed row by the GEMV */
    const int repacked = (nd->type == LC_TYPE_Q4_K && nd->ne[2] % 8 == 0) || q2_K_repacked(nd);
    return repacked && nd->ne[1] > 3 ? nd->ne[1] - nd->ne[1] % 4 : 0;
}

/* llama.cpp repacks a Q4_0 weight whose rows are a multiple of 8 (x86 with AVX2: q4_0_8x8) and
 * multiplies it, any batch, routed or not, with its GEMV and GEMM, whose every output is one running sum
 * over the blocks (lc_vec_dot_q4_0_repacked); the other Q4_0 weights with vec_dot (lc_vec_dot_q4_0) */
static int q4_0_repacked(const lc_node *nd) { return nd->type == LC_TYPE_Q4_0 && nd->ne[2] % 8 == 0; }

/* the weights whose products are one running sum over the 32-blocks (the packed GEMM's block sums):
 * the Q4_0 ones llama.cpp repacks, IQ4_NL and MXFP4 (lc_vec_dot_iq4_nl's and lc_vec_dot_mxfp4's order) */
static int block_sums_order(const lc_node *nd) {
    return q4_0_repacked(nd) || nd->type == LC_TYPE_IQ4_NL || nd->type == LC_TYPE_MXFP4;
}

/* A prompt batch this long or longer goes through the packed GEMM (lc_mm_packed.h) when the weight
 * type has one: it unpacks each block of rows once for all tokens, which a few tokens do not repay.
 * Its outputs are the one-row kernels' bits, so where it starts changes no number. */
enum { PACKED_MIN_TOKENS = 16 };

/* Below this many tokens the tokens of a Q4_K weight llama.cpp repacks go through the GEMV in its GEMM's
 * order, each token over rows in cache, rather than the packed GEMM (dense Q4_K_M model, Zen 4: a batch
 * of 4 took 9.4 ms packed, 8 tokens 10.7) */
enum { GEMM_PACKED_MIN_TOKENS = 8 };

/* Likewise the Q4_0 weights llama.cpp repacks, from 8 tokens (its packing being quick: dense Q4_0, Zen 4,
 * 12 tokens 10.8 ms packed against 14.9 through the GEMV, 4 tokens 7.3 against 5.9) */
enum { Q4_0_PACKED_MIN_TOKENS = 8 };

/* An f16 weight meets a batch this long or longer through the register-tiled f16 GEMM (lc_gemm_f16),
 * which converts the chunk's weight rows to floats once: the f16 tile's bits, faster for many tokens;
 * a BF16 weight likewise through lc_gemm_bf16_tinyblas (AVX512-BF16 builds) */
enum { F16_GEMM_MIN_TOKENS = 16 };

/* The order of the packed GEMM for the tokens [0, *n_packed) of the batch, or LC_ORDER_NONE. */
static int packed_order(const lc_node *nd, int64_t *n_packed) {
    *n_packed = 0;
#if defined(LC_PACKED_ROWS)
    if (tiled_dot(nd) && lc_packed_bytes(nd->type, nd->ne[0])) {
        *n_packed = nd->ne[1];
        return LC_ORDER_KQ_TILED;
    }
    lc_vec_dot_fn gemm_dot;
    const int few_for_packing = nd->ne[1] < GEMM_PACKED_MIN_TOKENS && lc_gemm_order_gemv_for(nd->type);
    if (!few_for_packing && lc_packed_bytes(nd->type, nd->ne[0]) && (*n_packed = repacked_gemm_tokens(nd, &gemm_dot)) > 0)
        return LC_ORDER_KQ_GEMM;
    if (block_sums_order(nd) && nd->ne[1] >= (q4_0_repacked(nd) ? Q4_0_PACKED_MIN_TOKENS : PACKED_MIN_TOKENS) && lc_packed_bytes(nd->type, nd->ne[0])) {
        *n_packed = nd->ne[1];
        return LC_ORDER_BLOCK_SUMS;
    }
    /* the K-quants' packed kernels have the tiled and GEMM orders, and Q4_K vec_dot's, which a routed
     * repacked Q4_K takes (llama.cpp's mul_mat_id runs its GEMV on every routed row) */
    const int k_quant = nd->type == LC_TYPE_Q2_K || nd->type == LC_TYPE_Q3_K || nd->type == LC_TYPE_Q4_K ||
                        nd->type == LC_TYPE_Q5_K || nd->type == LC_TYPE_Q6_K;
    const int vec_dot_packed = !k_quant || (nd->type == LC_TYPE_Q4_K && nd->i[0] == LC_MM_ROUTED);
    const int64_t min_tokens = k_quant ? LC_ROUTED_Q4_K_PACKED_MIN_TOKENS : PACKED_MIN_TOKENS;
    if (vec_dot_packed && nd->ne[1] >= min_tokens && lc_packed_bytes(nd->type, nd->ne[0])) {
        *n_packed = nd->ne[1];
        return LC_ORDER_VEC_DOT;
    }
#endif
    (void)nd;
    return LC_ORDER_NONE;
}

void lc_mul_mat_rows(const lc_node *nd, int64_t r0, int64_t r1, const float *bias, void *scratch) {
    const int64_t k = nd->ne[0], m = nd->ne[1], n = nd->ne[2], x_bytes = nd->ne[3];
    const char *w = nd->src[0], *x = nd->src[1];
    float *y = nd->dst;
    int64_t packed_tokens;
    const int order = packed_order(nd, &packed_tokens);
#if defined(LC_PACKED_ROWS)
    for (int64_t r = r0; order != LC_ORDER_NONE && r < r1; r += LC_PACKED_ROWS) {
        const int nrows = (int)(r1 - r < LC_PACKED_ROWS ? r1 - r : LC_PACKED_ROWS);
        lc_pack_rows(nd->type, w + r * nd->row_bytes, (size_t)nd->row_bytes, nrows, k, scratch);
        lc_packed_mul(nd->type, order, scratch, nrows, k, x, (size_t)x_bytes, packed_tokens, y + r, (size_t)n);
    }
#else
    (void)scratch;
    (void)order;
#endif
    /* Q4_0's and Q2_K's GEMVs have the repacked orders */
    const int gemv_order = (nd->type != LC_TYPE_Q4_0 || q4_0_repacked(nd)) && (nd->type != LC_TYPE_Q2_K || q2_K_repacked(nd));
    const lc_gemv_fn gemv = m == 1 && gemv_order ? lc_gemv_for(nd->type) : NULL;
    if (gemv) {
        gemv(k, w + r0 * nd->row_bytes, (size_t)nd->row_bytes, r1 - r0, x, y + r0, lc_gemv_prefetches(nd->type));
        lc_add_bias(y, (size_t)n, 1, r0, r1, bias);
        return;
    }
#if defined(LC_HAVE_BF16_GEMM)
    if (bf16_gemm(nd) && m >= F16_GEMM_MIN_TOKENS) {
        lc_gemm_bf16_tinyblas(k, w + r0 * nd->row_bytes, (size_t)nd->row_bytes, r1 - r0, x, (size_t)x_bytes, m, y + r0,
                              (size_t)n);
        lc_add_bias(y, (size_t)n, m, r0, r1, bias);
        return;
    }
#endif
    if (f16_gemm(nd) && m >= F16_GEMM_MIN_TOKENS) {
        lc_gemm_f16(k, w + r0 * nd->row_bytes, (size_t)nd->row_bytes, r1 - r0, x, (size_t)x_bytes, m, y + r0, (size_t)n,
                    bias ? bias + r0 : NULL);
        return;
    }
    const lc_vec_dot_fn tiled = tiled_dot(nd);
    lc_vec_dot_fn gemm_dot;
    const int64_t gemm_tokens = repacked_gemm_tokens(nd, &gemm_dot);
    const lc_tile_fn tile = tiled || gemm_tokens ? NULL
                            : f16_gemm(nd)        ? lc_tile_f16_tinyblas
                            : bf16_gemm(nd)       ? lc_tile_bf16_tinyblas
                                                  : lc_tile_for(nd->type);
    const lc_vec_dot_fn dot = tiled                ? tiled
                              : f32_gemm(nd)       ? lc_vec_dot_f32_tinyblas
                              : q4_0_repacked(nd)  ? lc_vec_dot_q4_0_repacked
                              : q2_K_repacked(nd)  ? lc_vec_dot_q2_K_repacked
                                                   : lc_traits[nd->type].vec_dot;
    /* a short batch's tokens in vec_dot's order go through the type's GEMV, vec_dot's bits four rows at a
     * time, one token at a time over a block of rows small enough to stay in L1 for the next token */
    const lc_gemv_fn batch_gemv = !tiled && !tile && gemv_order ? lc_gemv_for(nd->type) : NULL;
    const lc_gemv_fn batch_gemm_gemv = packed_tokens < gemm_tokens ? lc_gemm_order_gemv_for(nd->type) : NULL;
    if (batch_gemv && (packed_tokens >= gemm_tokens || batch_gemm_gemv)) {
        const int64_t block_rows = (BATCH_GEMV_BLOCK_BYTES / nd->row_bytes + 3) / 4 * 4;
        for (int64_t r = r0; r < r1; r += block_rows) {
            const int64_t rn = r + block_rows < r1 ? block_rows : r1 - r;
            for (int64_t t = packed_tokens; t < m; t++)
                (t < gemm_tokens ? batch_gemm_gemv : batch_gemv)(k, w + r * nd->row_bytes, (size_t)nd->row_bytes, rn,
                                                                 x + t * x_bytes, y + t * n + r, lc_gemv_prefetches(nd->type));
        }
        lc_add_bias(y, (size_t)n, m, r0, r1, bias);
        return;
    }
    /* the f16 tile reads its tokens as floats: a token tile's rows converted once, not per weight row */
    float *x_f32 = tile == lc_tile_f16_tinyblas ? malloc((size_t)MM_TOKEN_TILE * (size_t)k * sizeof(float)) : NULL;
    for (int64_t t0 = packed_tokens; t0 < m; t0 += MM_TOKEN_TILE) {
        const int64_t t1 = t0 + MM_TOKEN_TILE < m ? t0 + MM_TOKEN_TILE : m;
        for (int64_t t = t0; x_f32 && t < t1; t++)
            lc_fp16_to_fp32_row((const lc_fp16_t *)(x + t * x_bytes), x_f32 + (t - t0) * k, k);
        for (int64_t r = r0; r < r1; r += 2) {
            const int nw = r + 1 < r1 ? 2 : 1;
            const char *w_row = w + r * nd->row_bytes;
            for (int64_t t = t0; t < t1; t += LC_TILE_X) {
                const int nx = (int)(t1 - t < LC_TILE_X ? t1 - t : LC_TILE_X);
                float *out = y + t * n + r;
                if (x_f32) {
                    tile((int)k, out, (size_t)n, w_row, (size_t)nd->row_bytes, nw, x_f32 + (t - t0) * k,
                         (size_t)k * sizeof(float), nx);
                    continue;
                }
                if (tile) {
                    tile((int)k, out, (size_t)n, w_row, (size_t)nd->row_bytes, nw, x + t * x_bytes, (size_t)x_bytes, nx);
                    continue;
                }
                for (int j = 0; j < nx; j++) {
                    const lc_vec_dot_fn dot_j = t + j < gemm_tokens ? gemm_dot : dot;
                    for (int i = 0; i < nw; i++) dot_j((int)k, out + j * n + i, w_row + i * nd->row_bytes, x + (t + j) * x_bytes);
                }
            }
        }
    }
    free(x_f32);
    lc_add_bias(y, (size_t)n, m, r0, r1, bias);
}

static int64_t mul_mat_row_unit(const lc_node *nd) {
    int64_t packed_tokens;
#if defined(LC_PACKED_ROWS)
    return packed_order(nd, &packed_tokens) != LC_ORDER_NONE ? LC_PACKED_ROWS : 2;
#else
    (void)packed_tokens;
    (void)nd;
    return 2;
#endif
}

/* the output rows of each chunk a MUL_MAT's nth threads claim (the last chunk may hold fewer) */
static int64_t mul_mat_chunk_rows(const lc_node *nd, int nth) {
    const int64_t n = nd->ne[2];
    const int64_t row_unit = mul_mat_row_unit(nd);  /* chunks of whole packed blocks of rows */
    const int64_t n_chunks_wanted = (int64_t)nth * mm_chunks_per_thread[nd->ne[1] > 1];
    int64_t rows = (n + n_chunks_wanted - 1) / n_chunks_wanted;
    if (rows < LC_MM_MIN_CHUNK_ROWS) rows = LC_MM_MIN_CHUNK_ROWS;
    return (rows + row_unit - 1) / row_unit * row_unit;
}

void lc_prefetch_first_chunk(const lc_node *nd, int ith, int nth) {
    if (nd->op != LC_OP_MUL_MAT || nd->ne[1] != 1 || nd->run != LC_RUN_ALL) return;
    const int64_t rows = mul_mat_chunk_rows(nd, nth), r0 = (int64_t)ith * rows, n = nd->ne[2];
    if (r0 >= n) return;
    const int64_t chunk_bytes = ((r0 + rows < n ? r0 + rows : n) - r0) * nd->row_bytes;
    const char *from = (const char *)nd->src[0] + r0 * nd->row_bytes;
    for (int64_t at = 0; at < chunk_bytes && at < LC_PREFETCH_FIRST_CHUNK_BYTES; at += 64) __builtin_prefetch(from + at, 0, 3);
}

static void op_mul_mat(const lc_node *nd, const lc_task *task) {
    const int64_t n = nd->ne[2];
    const int64_t rows = mul_mat_chunk_rows(nd, task->nth);
    const int64_t n_chunks = (n + rows - 1) / rows;
    for (int64_t chunk = task->ith; chunk < n_chunks; chunk = atomic_fetch_add(task->next_chunk, 1)) {
        const int64_t r0 = chunk * rows;
        lc_mul_mat_rows(nd, r0, r0 + rows < n ? r0 + rows : n, nd->src[2], task->scratch);
    }
}

/* ---- elementwise --------------------------------------------------------------------------- */

#define BROADCAST_OP(name, OPERATOR)                                                         \
    static void name(const lc_node *nd, const lc_task *task) {                               \
        const int ith = task->ith, nth = task->nth;                                          \
        const float *a = nd->src[0], *b = nd->src[1];                                        \
        float *y = nd->dst;                                                                  \
        const int64_t nb = nd->ne[1];                                                        \
        int64_t i, end;                                                                      \
        share(nd->ne[0], ith, nth, &i, &end);                                                \
        if (nd->i[0] > 0) { /* one b value per row of i[0] values */                         \
            for (; i < end; i++) y[i] = a[i] OPERATOR b[i / nd->i[0]];                       \
            return;                                                                          \
        }                                                                                    \
        while (i < end) {                                                                    \
            const int64_t j = i % nb;                                                        \
            const int64_t len = nb - j < end - i ? nb - j : end - i;                         \
            const float *bj = b + j;                                                         \
            for (int64_t e = 0; e < len; e++) y[i + e] = a[i + e] OPERATOR bj[e];            \
            i += len;                                                                        \
        }                                                                                    \
    }

BROADCAST_OP(op_add, +)
BROADCAST_OP(op_mul, *)
BROADCAST_OP(op_div, /)

/* ggml's silu: x / (1 + exp(-x)) with ggml's own expf, as its vectorised loops compute it */
static inline float silu(float x) { return x / (1.0f + lc_expf_ggml(-x)); }

/* ggml's CPU GELU: the tanh approximation read from a table indexed by the f16 value of x and
 * holding f16 results (here as floats); x >= 10 passes through, x <= -10 gives 0. The table is
 * filled once, on first use. */
static float gelu_table[1 << 16];
static pthread_once_t gelu_table_once = PTHREAD_ONCE_INIT;

static void fill_gelu_table(void) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    for (uint32_t i = 0; i < (1u << 16); i++) {
        const float h = lc_fp16_to_fp32((lc_fp16_t)i);
        /* ggml_gelu_f32 as the oracle's compiler contracted it: 1 + 0.044715 h h is one fused
         * multiply-add (the entry of h = -1.999 differs otherwise) */
        const float inner = fmaf(0.044715f * h, h, 1.0f);
        gelu_table[i] = lc_fp16_to_fp32(lc_fp32_to_fp16(0.5f * h * (1.0f + tanhf(c * h * inner))));
    }
}

static inline float gelu(float x) {
    if (x >= 10.0f) return x;
    if (x <= -10.0f) return 0.0f;
    return gelu_table[lc_fp32_to_fp16(x)];
}

/* y = gelu(a) (* b): 16 lanes at a time on AVX-512 (f16 indices, a gather from the table) */
static void gelu_rows(const float *a, const float *b, float *y, int64_t i0, int64_t i1) {
    pthread_once(&gelu_table_once, fill_gelu_table);
    int64_t i = i0;
#if defined(LC_AVX512)
    for (; i + 16 <= i1; i += 16) {
        const __m512 x = _mm512_loadu_ps(a + i);
        const __m512i index = _mm512_cvtepu16_epi32(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m512 v = _mm512_i32gather_ps(index, gelu_table, 4);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(10.0f), _CMP_GE_OQ), v, x);
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-10.0f), _CMP_NLE_UQ), v);
        if (b) v = _mm512_mul_ps(v, _mm512_loadu_ps(b + i));
        _mm512_storeu_ps(y + i, v);
    }
#elif defined(LC_AVX2)
    for (; i + 8 <= i1; i += 8) {
        const __m256 x = _mm256_loadu_ps(a + i);
        const __m256i index = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256 v = _mm256_i32gather_ps(gelu_table, index, 4);
        v = _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, _mm256_set1_ps(10.0f), _CMP_GE_OQ));
        v = _mm256_and_ps(v, _mm256_cmp_ps(x, _mm256_set1_ps(-10.0f), _CMP_NLE_UQ));
        if (b) v = _mm256_mul_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
#endif
    for (; i < i1; i++) y[i] = b ? gelu(a[i]) * b[i] : gelu(a[i]);
}

#define UNARY_OP(name, expr)                                                                 \
    static void name(const lc_node *nd, const lc_task *task) {    \
        const int ith = task->ith, nth = task->nth;                                          \
        const float *a = nd->src[0], *b = nd->src[1];                                        \
        (void)b;                                                                             \
        float *y = nd->dst;                                                                  \
        int64_t i0, i1;                                                                      \
        share(nd->ne[0], ith, nth, &i0, &i1);                                                \
        for (int64_t i = i0; i < i1; i++) y[i] = (expr);                                     \
    }

UNARY_OP(op_scale, a[i] * nd->f[0])
UNARY_OP(op_clamp, fmaxf(fminf(a[i], nd->f[1]), nd->f[0]))  /* ggml_clamp: MAX(MIN(x, max), min) */
UNARY_OP(op_sigmoid, 1.0f / (1.0f + expf(-a[i])))  /* ggml's op_sigmoid, with the C library's expf */

static void op_gelu(const lc_node *nd, const lc_task *task) {
    int64_t i0, i1;
    share_vectors(nd->ne[0], task->ith, task->nth, &i0, &i1);
    gelu_rows(nd->src[0], NULL, nd->dst, i0, i1);
}

static void op_geglu(const lc_node *nd, const lc_task *task) {
    int64_t i0, i1;
    share_vectors(nd->ne[0], task->ith, task->nth, &i0, &i1);
    gelu_rows(nd->src[0], nd->src[1], nd->dst, i0, i1);
}

/* y = silu(a) (* b): 16 lanes at a time with the AVX-512 expf, else one value at a time */
static void silu_rows(const float *a, const float *b, float *y, int64_t i0, int64_t i1) {
    int64_t i = i0;
#if defined(LC_AVX512)
    for (; i + 16 <= i1; i += 16) {
        const __m512 x = _mm512_loadu_ps(a + i);
        __m512 v = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), lc_expf_ggml_512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        if (b) v = _mm512_mul_ps(v, _mm512_loadu_ps(b + i));
        _mm512_storeu_ps(y + i, v);
    }
#elif defined(LC_AVX2)
    for (; i + 8 <= i1; i += 8) {
        const __m256 x = _mm256_loadu_ps(a + i);
        __m256 v = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), lc_expf_ggml_256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        if (b) v = _mm256_mul_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
#endif
    for (; i < i1; i++) y[i] = b ? silu(a[i]) * b[i] : silu(a[i]);
}

static void op_silu(const lc_node *nd, const lc_task *task) {
    int64_t i0, i1;
    share_vectors(nd->ne[0], task->ith, task->nth, &i0, &i1);
    silu_rows(nd->src[0], NULL, nd->dst, i0, i1);
}

/* ggml_vec_tanh_f32: the C library's tanhf, value by value */
static void op_tanh(const lc_node *nd, const lc_task *task) {
    int64_t i0, i1;
    share_vectors(nd->ne[0], task->ith, task->nth, &i0, &i1);
    const float *x = nd->src[0];
    float *y = nd->dst;
    for (int64_t i = i0; i < i1; i++) y[i] = tanhf(x[i]);
}

/* gpt-oss's clamped SwiGLU, ggml_swiglu_oai's loop: std::min and std::clamp, the C library's expf */
static void swiglu_oai_rows(const float *gate, const float *up, float *y, float alpha, float limit, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
        const float x = limit < gate[i] ? limit : gate[i];
        const float u = up[i] < -limit ? -limit : limit < up[i] ? limit : up[i];
        y[i] = x / (1.0f + expf(alpha * (-x))) * (u + 1.0f);
    }
}

static void op_swiglu(const lc_node *nd, const lc_task *task) {
    int64_t i0, i1;
    share_vectors(nd->ne[0], task->ith, task->nth, &i0, &i1);
    if (nd->i[0]) swiglu_oai_rows(nd->src[0], nd->src[1], nd->dst, nd->f[0], nd->f[1], i0, i1);
    else silu_rows(nd->src[0], nd->src[1], nd->dst, i0, i1);
}

/* ---- norms --------------------------------------------------------------------------------- */

/* a norm's row y = x * scale, then times its weight row (src[1]) and plus its bias row (src[2])
 * where the lowering folded those steps in: each the separate op's float operation */
static void scale_row(const lc_node *nd, const float *x, float *y, int64_t cols, float scale) {
    const float *w = nd->src[1], *b = nd->src[2];
    for (int64_t i = 0; i < cols; i++) y[i] = x[i] * scale;
    for (int64_t i = 0; w && i < cols; i++) y[i] *= w[i];
    for (int64_t i = 0; b && i < cols; i++) y[i] += b[i];
}

static void op_rms_norm(const lc_node *nd, const lc_task *task) {
    const int ith = task->ith, nth = task->nth;
    const int64_t cols = nd->ne[0];
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) {
        const float *x = (const float *)nd->src[0] + r * cols;
        float *y = (float *)nd->dst + r * cols;
        double sum = 0.0;
        for (int64_t i = 0; i < cols; i++) sum += (double)(x[i] * x[i]);
        scale_row(nd, x, y, cols, 1.0f / sqrtf((float)(sum / (double)cols) + nd->f[0]));
    }
}

static void op_norm(const lc_node *nd, const lc_task *task) {
    const int ith = task->ith, nth = task->nth;
    const int64_t cols = nd->ne[0];
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) {
        const float *x = (const float *)nd->src[0] + r * cols;
        float *y = (float *)nd->dst + r * cols;
        /* ggml_norm's AVX-512 build: the mean of the sum rounded to float; the squares added in
         * double 16 at a time, each 16 summed in float as _mm512_reduce_add_ps (ggml_vec_cvar_f32) */
        double sum = 0.0;
        for (int64_t i = 0; i < cols; i++) sum += (double)x[i];
        const float mean = (float)sum / (float)cols;
        double var = 0.0;
        int64_t i = 0;
        for (; i + 15 < cols; i += 16) {
            float squares[16];
            for (int k = 0; k < 16; k++) {
                y[i + k] = x[i + k] - mean;
                squares[k] = y[i + k] * y[i + k];
            }
            var += (double)lc_reduce16_ordered(squares);
        }
        for (; i < cols; i++) {
            y[i] = x[i] - mean;
            const float square = y[i] * y[i];
            var += (double)square;
        }
        scale_row(nd, y, y, cols, 1.0f / sqrtf((float)(var / (double)cols) + nd->f[0]));
    }
}

/* ---- rope ---------------------------------------------------------------------------------- */

/* i[2]: 0 ggml_rope_ext (positions [n]); 1 ggml_rope_multi's M-RoPE, 2 its vision variant (positions
 * [4][n], section widths in i[3], a byte each): angle i takes the position of the section its sector
 * (i modulo the sections' total) falls in; M-RoPE has n_rot / 2 angles whose running products go on
 * from angle 0, vision n_rot angles over the whole head whose products restart at each section. */
enum { ROPE_PLAIN = 0, ROPE_MULTI = 1, ROPE_VISION = 2 };

static void op_rope(const lc_node *nd, const lc_task *task) {
    const int ith = task->ith, nth = task->nth;
    float *scratch = task->scratch;
    const int64_t head_dim = nd->ne[0], n_head = nd->ne[1], n = nd->ne[2];
    const int n_rot = nd->i[0], neox = nd->i[1], mode = nd->i[2];
    const int half = mode == ROPE_VISION ? n_rot : n_rot / 2, rotated = 2 * half;
    int start[5] = {0};
    for (int s = 0; s < 4; s++) start[s + 1] = start[s] + ((nd->i[3] >> (8 * s)) & 255);
    const float freq_base = nd->f[0], freq_scale = nd->f[1], ext_factor = nd->f[2];
    const float corr_low = nd->f[4], corr_high = nd->f[5];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float mscale = nd->f[3];
    /* ggml is built with the compiler's default contraction, so its a*b + c*d are fused:
     * fma(a, b, c*d). The same fused forms here (this file disables implicit contraction). */
    if (ext_factor != 0.0f) mscale *= fmaf(0.1f, logf(1.0f / freq_scale), 1.0f);
    float *cos_t = scratch, *sin_t = scratch + half;
    const int32_t *pos = nd->src[1];
    const float *freq_factors = nd->src[2];  /* NULL, or one divisor per pair (Llama 3.1) */
    int64_t a, b;
    share(n, ith, nth, &a, &b);
    for (int64_t t = a; t < b; t++) {
        float theta_section[4];
        for (int s = 0; s < 4; s++) theta_section[s] = (float)pos[mode == ROPE_PLAIN ? t : t + s * n];
        for (int i = 0; i < half; i++) {
            int section = 0;
            if (mode != ROPE_PLAIN) {
                const int sector = i % start[4];
                while (section < 3 && sector >= start[section + 1]) section++;
                if (mode == ROPE_VISION && sector == start[section])  /* sections are never empty here */
                    theta_section[section] = (float)pos[t + section * n];
            }
            const float theta_extrap = theta_section[section];
            const float theta_pair = freq_factors ? theta_extrap / freq_factors[i] : theta_extrap;
            const float theta_interp = freq_scale * theta_pair;
            float theta = theta_interp;
            if (ext_factor != 0.0f) {
                const float y = ((float)i - corr_low) / fmaxf(0.001f, corr_high - corr_low);
                const float ramp_mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;
                theta = fmaf(theta_interp, 1.0f - ramp_mix, theta_pair * ramp_mix);
            }
            cos_t[i] = cosf(theta) * mscale;
            sin_t[i] = sinf(theta) * mscale;
            for (int s = 0; s < 4; s++) theta_section[s] *= theta_scale;
        }
        for (int64_t h = 0; h < n_head; h++) {
            const float *x = (const float *)nd->src[0] + (t * n_head + h) * head_dim;
            float *y = (float *)nd->dst + (t * n_head + h) * head_dim;
            for (int i = 0; i < half; i++) {
                const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const float x0 = x[i0], x1 = x[i1];
                y[i0] = fmaf(x0, cos_t[i], -(x1 * sin_t[i]));
                y[i1] = fmaf(x0, sin_t[i], x1 * cos_t[i]);
            }
            for (int64_t i = rotated; i < head_dim; i++) y[i] = x[i];
        }
    }
}

/* ---- KV cache ------------------------------------------------------------------------------ */

static void op_kv_store(const lc_node *nd, const lc_task *task) {
    const int ith = task->ith, nth = task->nth;
    const int64_t width = nd->ne[0];
    const int32_t *cells = nd->src[1];
    int64_t a, b;
    share(nd->ne[1], ith, nth, &a, &b);
    for (int64_t r = a; r < b; r++) {
        const float *x = (const float *)nd->src[0] + r * width;
        if (nd->type == LC_TYPE_F16) lc_fp32_to_fp16_row(x, (lc_fp16_t *)nd->dst + (int64_t)cells[r] * width, width);
        else if (nd->type == LC_TYPE_F32) memcpy((float *)nd->dst + (int64_t)cells[r] * width, x, (size_t)width * sizeof(float));
        else lc_kv_store_row(nd->type, x, (char *)nd->dst + (int64_t)cells[r] * nd->row_bytes, width);
    }
}

/* ---- attention ----------------------------------------------------------------------------
 * llama.cpp (without flash attention) computes softmax(K q * scale + mask) V with q and the
 * probabilities rounded to f16 and each product a ggml_vec_dot_f16: 64 lanes (four vectors of
 * 16) accumulated by fma, reduced pairwise, leftovers past a multiple of 64 added in double.
 * Its cache view is padded to 256 cells, so the sums over cells never have leftovers. */

enum { F16_DOT_LANES = 64 };

/* lanes[j % n_lanes][:] += p * v: the per-lane partial sums of ggml's dot over cells, for every dim */
void lc_attn_accumulate_v(float *lane, float p, const void *v, int type, int64_t n) {
    int64_t d = 0;
    const lc_fp16_t *vh = v;
    const float *vf = v;
#if defined(LC_AVX512)
    const __m512 pv = _mm512_set1_ps(p);
    for (; d + 16 <= n; d += 16) {
        const __m512 vv = type == LC_TYPE_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vh + d)))
                                              : _mm512_loadu_ps(vf + d);
        _mm512_storeu_ps(lane + d, _mm512_fmadd_ps(vv, pv, _mm512_loadu_ps(lane + d)));
    }
#elif defined(LC_AVX2)
    const __m256 pv = _mm256_set1_ps(p);
    for (; d + 8 <= n; d += 8) {
        const __m256 vv = type == LC_TYPE_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vh + d)))
                                              : _mm256_loadu_ps(vf + d);
        _mm256_storeu_ps(lane + d, _mm256_fmadd_ps(vv, pv, _mm256_loadu_ps(lane + d)));
    }
#endif
    for (; d < n; d++) lane[d] = fmaf(type == LC_TYPE_F16 ? LC_H2F(vh[d]) : vf[d], p, lane[d]);
}

/* The first cell a mask row lets its query see: the same for every token of one sequence. */
static int32_t first_visible(const float *mask_row, int32_t n_kv) {
    for (int32_t j = 0; j < n_kv; j++)
        if (mask_row[j] != -INFINITY) return j;
    return -1;
}

/* Whether two mask rows let their queries see a cell in common. */
static int see_a_common_cell(const float *a, const float *b, int32_t n_kv) {
    for (int32_t j = 0; j < n_kv; j++)
        if (a[j] != -INFINITY && b[j] != -INFINITY) return 1;
    return 0;
}

/* llama.cpp (without flash attention) takes tinyBLAS's order when its batch holds two or more
 * queries, ggml_vec_dot_f16's for one. A query here takes tinyBLAS's order when another token of
 * its own sequence is in the batch (beside it, batches keep a sequence's tokens together; the two
 * see a cell in common, which a sliding window keeps), so a row's result does not depend on other
 * sequences sharing the batch. */
static int has_sequence_neighbour(const float *mask, int64_t t, int64_t n_tokens, int64_t n_ctx, int32_t n_kv) {
    const float *own = mask + t * n_ctx;
    return (t > 0 && see_a_common_cell(own - n_ctx, own, n_kv)) ||
           (t + 1 < n_tokens && see_a_common_cell(own + n_ctx, own, n_kv));
}

#if defined(LC_AVX512)

static inline __m512 load_f16_or_f32(const void *base, int type, int64_t at) {
    return type == LC_TYPE_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const lc_fp16_t *)base + at)))
                               : _mm512_loadu_ps((const float *)base + at);
}

enum { MAX_SHARED_HEADS = 8 };

/* For the G query heads that share one KV head (grouped-query attention), each head's
 * y = softmax(K q16 * scale + mask) V over the cells [j0, j1) (multiples of 16 that hold every
 * visible cell). k and v point at the KV head's first cell, rows `stride` elements apart; q16, y and
 * scores hold the G heads one after another (head_dim, head_dim and n_ctx apart). Every K and V
 * vector is loaded once for the G heads. */
static inline __attribute__((always_inline)) void attend_tinyblas_512(
    const float *q16, const void *k, const void *v, int64_t stride, int type, int64_t head_dim, int64_t n_ctx,
    const float *mask, int32_t j0, int32_t j1, float scale, float *scores, float *y, const int G) {
    const int64_t elt = type == LC_TYPE_F16 ? 2 : 4;
    __m512 vmax[MAX_SHARED_HEADS];
    for (int g = 0; g < G; g++) vmax[g] = _mm512_set1_ps(-INFINITY);
    for (int32_t jb = j0; jb < j1; jb += 16) {
        __m512 part[MAX_SHARED_HEADS][16];
        for (int c = 0; c < 16; c++) {
            const char *k_row = (const char *)k + (int64_t)(jb + c) * stride * elt;
            __m512 acc[MAX_SHARED_HEADS];
            for (int g = 0; g < G; g++) acc[g] = _mm512_setzero_ps();
            for (int64_t i = 0; i < head_dim; i += 16) {
                const __m512 kv = load_f16_or_f32(k_row, type, i);
                for (int g = 0; g < G; g++) acc[g] = _mm512_fmadd_ps(kv, _mm512_loadu_ps(q16 + g * head_dim + i), acc[g]);
            }
            for (int g = 0; g < G; g++) part[g][c] = acc[g];
        }
        const __m512 m = _mm512_loadu_ps(mask + jb);
        const __mmask16 hidden = _mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
        for (int g = 0; g < G; g++) {
            __m512 sc = _mm512_add_ps(_mm512_mul_ps(lc_reduce_add_16_cells(part[g]), _mm512_set1_ps(scale)), m);
            sc = _mm512_mask_blend_ps(hidden, sc, m);
            _mm512_storeu_ps(scores + g * n_ctx + jb, sc);
            vmax[g] = _mm512_max_ps(vmax[g], sc);
        }
    }
    for (int g = 0; g < G; g++) {
        float *sg = scores + g * n_ctx;
        const float max = _mm512_reduce_max_ps(vmax[g]);
        /* ggml_vec_soft_max_f32: exps summed 16 at a time, each group's float sum added in double */
        double sum = 0.0;
        for (int32_t jb = j0; jb < j1; jb += 16) {
            const __m512 sc = _mm512_loadu_ps(sg + jb);
            const __mmask16 visible = _mm512_cmp_ps_mask(sc, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
            const __m512 e = _mm512_maskz_mov_ps(visible, lc_expf_ggml_512(_mm512_sub_ps(sc, _mm512_set1_ps(max))));
            _mm512_storeu_ps(sg + jb, e);
            sum += (double)_mm512_reduce_add_ps(e);
        }
        const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
        for (int32_t jb = j0; jb < j1; jb += 16) {  /* probabilities rounded to f16 */
            const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(sg + jb), inv);
            _mm512_storeu_ps(sg + jb, _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
        }
    }
    /* the V sums: cell j in lane j % 16 (each lane adds its cells in order), sixteen dims at a time,
     * then the lanes reduced in GCC's order */
    for (int64_t d = 0; d < head_dim; d += 16) {
        __m512 lane[MAX_SHARED_HEADS][16];
        for (int l = 0; l < 16; l++) {
            __m512 acc[MAX_SHARED_HEADS];
            for (int g = 0; g < G; g++) acc[g] = _mm512_setzero_ps();
            for (int32_t jb = j0; jb < j1; jb += 16) {
                const __m512 vv = load_f16_or_f32(v, type, (int64_t)(jb + l) * stride + d);
                for (int g = 0; g < G; g++) acc[g] = _mm512_fmadd_ps(vv, _mm512_set1_ps(scores[g * n_ctx + jb + l]), acc[g]);
            }
            for (int g = 0; g < G; g++) lane[g][l] = acc[g];
        }
        for (int g = 0; g < G; g++) {
            __m512 *a = lane[g];
            for (int l = 0; l < 8; l++) a[l] = _mm512_add_ps(a[l + 8], a[l]);
            for (int l = 0; l < 4; l++) a[l] = _mm512_add_ps(a[l + 4], a[l]);
            _mm512_storeu_ps(y + g * head_dim + d, _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3])));
        }
    }
}

/* attend_tinyblas_512 with the group size known to the compiler */
static void attend_group_512(const float *q16, const void *k, const void *v, int64_t stride, int type, int64_t head_dim,
                             int64_t n_ctx, const float *mask, int32_t j0, int32_t j1, float scale, float *scores,
                             float *y, int G) {
#define ATTEND(n) attend_tinyblas_512(q16, k, v, stride, type, head_dim, n_ctx, mask, j0, j1, scale, scores, y, n)
    switch (G) {
    case 1: ATTEND(1); break;
    case 2: ATTEND(2); break;
    case 3: ATTEND(3); break;
    case 4: ATTEND(4); break;
    case 5: ATTEND(5); break;
    case 6: ATTEND(6); break;
    case 7: ATTEND(7); break;
    default: ATTEND(8); break;
    }
#undef ATTEND
}
#endif

#if defined(LC_AVX2) && !defined(LC_AVX512)

static inline __m256 load8_f16_or_f32(const void *base, int type, int64_t at) {
    return type == LC_TYPE_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const lc_fp16_t *)base + at)))
                               : _mm256_loadu_ps((const float *)base + at);
}

/* lc_expf_ggml_512's value for 8 lanes: 2^n applied through the exponent where the result is a
 * normal float, the scalar form for the lanes where it is not */
static inline __m256 expf_ggml_256(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256 pow2n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));
    __m256 res = _mm256_mul_ps(j, pow2n);
    const __m256 outside = _mm256_or_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-125.0f), _CMP_LT_OQ),
                                        _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_GT_OQ));
    if (_mm256_movemask_ps(outside)) {
        float xs[8], rs[8];
        _mm256_storeu_ps(xs, x);
        _mm256_storeu_ps(rs, res);
        const int m = _mm256_movemask_ps(outside);
        for (int l = 0; l < 8; l++)
            if (m & (1 << l)) rs[l] = lc_expf_ggml(xs[l]);
        res = _mm256_loadu_ps(rs);
    }
    return res;
}

static void attend_tinyblas_256(const float *q16, const void *k, const void *v, int64_t stride, int type,
                                int64_t head_dim, const float *mask, int32_t j0, int32_t j1, float scale,
                                float *scores, float *y) {
    const int64_t elt = type == LC_TYPE_F16 ? 2 : 4;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int32_t jb = j0; jb < j1; jb += 8) {
        __m256 t3[8];
        for (int c = 0; c < 8; c++) {
            const char *k_row = (const char *)k + (int64_t)(jb + c) * stride * elt;
            __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
            for (int64_t i = 0; i < head_dim; i += 16) {
                lo = _mm256_fmadd_ps(load8_f16_or_f32(k_row, type, i), _mm256_loadu_ps(q16 + i), lo);
                hi = _mm256_fmadd_ps(load8_f16_or_f32(k_row, type, i + 8), _mm256_loadu_ps(q16 + i + 8), hi);
            }
            t3[c] = _mm256_add_ps(hi, lo);
        }
        const __m256 m = _mm256_loadu_ps(mask + jb);
        const __m256 hidden = _mm256_cmp_ps(m, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
        const __m256 sc = _mm256_blendv_ps(_mm256_add_ps(_mm256_mul_ps(lc_reduce_add_8_cells(t3), _mm256_set1_ps(scale)), m), m, hidden);
        _mm256_storeu_ps(scores + jb, sc);
        vmax = _mm256_max_ps(vmax, sc);
    }
    float lanes_max[8], max = -INFINITY;
    _mm256_storeu_ps(lanes_max, vmax);
    for (int l = 0; l < 8; l++) max = lanes_max[l] > max ? lanes_max[l] : max;
    /* ggml_vec_soft_max_f32: exps summed 16 at a time in _mm512_reduce_add_ps's order, in double */
    double sum = 0.0;
    for (int32_t jb = j0; jb < j1; jb += 16) {
        __m256 e[2];
        for (int h = 0; h < 2; h++) {
            const __m256 sc = _mm256_loadu_ps(scores + jb + 8 * h);
            const __m256 visible = _mm256_cmp_ps(sc, _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ);
            e[h] = _mm256_and_ps(visible, expf_ggml_256(_mm256_blendv_ps(_mm256_setzero_ps(), _mm256_sub_ps(sc, _mm256_set1_ps(max)), visible)));
            _mm256_storeu_ps(scores + jb + 8 * h, e[h]);
        }
        sum += (double)lc_hsum256(_mm256_add_ps(e[1], e[0]));
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (int32_t jb = j0; jb < j1; jb += 8) {  /* probabilities rounded to f16 */
        const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(scores + jb), inv);
        _mm256_storeu_ps(scores + jb, _mm256_cvtph_ps(_mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
    }
    /* the V sums: cell j in lane j % 16, eight dims at a time */
    for (int64_t d = 0; d < head_dim; d += 8) {
        __m256 lane[16];
        for (int l = 0; l < 16; l++) lane[l] = _mm256_setzero_ps();
        for (int32_t jb = j0; jb < j1; jb += 16)
            for (int l = 0; l < 16; l++)
                lane[l] = _mm256_fmadd_ps(load8_f16_or_f32(v, type, (int64_t)(jb + l) * stride + d), _mm256_set1_ps(scores[jb + l]), lane[l]);
        for (int l = 0; l < 8; l++) lane[l] = _mm256_add_ps(lane[l + 8], lane[l]);
        for (int l = 0; l < 4; l++) lane[l] = _mm256_add_ps(lane[l + 4], lane[l]);
        _mm256_storeu_ps(y + d, _mm256_add_ps(_mm256_add_ps(lane[0], lane[2]), _mm256_add_ps(lane[1], lane[3])));
    }
}
#endif

/* The last cell a mask row lets its query see, or -1. */
static int32_t last_visible(const float *mask_row, int32_t n_kv) {
    for (int32_t j = n_kv - 1; j >= 0; j--)
        if (mask_row[j] != -INFINITY) return j;
    return -1;
}

/* A cell's score from its dot with the query as ggml's steps make it: softcap > 0 caps it to
 * softcap * tanhf(dot / softcap) first, as ggml's scale, tanh, scale (Gemma 2); then it is scaled and
 * the mask added, times ALiBi's slope where that is not 1 (ggml's soft_max loop, contracted to a
 * fused multiply-add); a cell the mask hides scores -INFINITY. */
static inline float masked_score(float dot, float mask, float scale, float softcap, float slope) {
    if (mask == -INFINITY) return -INFINITY;
    if (softcap > 0.0f) dot = tanhf(dot * (1.0f / softcap)) * softcap;
    return slope == 1.0f ? dot * scale + mask : fmaf(slope, mask, dot * scale);
}

/* Query heads g < n (at most LC_ATTEND_HEADS_MAX) of one KV head in ggml's order, tinyBLAS's (batched)
 * or ggml_vec_dot_f16's, over the n_kv cells (some visible); each cell's K and V rows read once for the
 * heads, each head's numbers its own (its steps those of one head alone). softcap > 0 caps each score
 * to softcap * tanhf(score / softcap) first, as ggml's scale, tanh, scale (Gemma 2); a slope != 1 is
 * ALiBi's, multiplying the mask (ggml's soft_max loop, contracted to a fused multiply-add). q16: the
 * heads' f16-rounded queries, head_dim apart; lanes: n * F16_DOT_LANES * head_dim floats; scores: n *
 * n_kv floats. */
static void attend_heads_together(const float *q16, int n, const char *k, const char *v, int64_t stride, int type,
                                  int64_t head_dim, const float *mask, int32_t n_kv, float scale, float softcap,
                                  const float *slopes, int batched, float *lanes, float *scores, float *y) {
    const size_t elt = type == LC_TYPE_F16 ? sizeof(lc_fp16_t) : sizeof(float);
    const int n_lanes = batched ? 16 : F16_DOT_LANES;
    float max[LC_ATTEND_HEADS_MAX];
    for (int g = 0; g < n; g++) max[g] = -INFINITY;
    for (int64_t j = 0; j < n_kv; j++) {
        if (mask[j] == -INFINITY) {
            for (int g = 0; g < n; g++) scores[g * n_kv + j] = -INFINITY;
            continue;
        }
        const void *k_row = k + j * stride * elt;
        for (int g = 0; g < n; g++) {
            const float *q = q16 + g * head_dim;
            const float s = masked_score(batched ? lc_attn_dot_kq_tinyblas(k_row, type, q, head_dim)
                                                 : lc_attn_dot_kq(k_row, type, q, head_dim),
                                         mask[j], scale, softcap, slopes[g]);
            scores[g * n_kv + j] = s;
            if (s > max[g]) max[g] = s;
        }
    }
    /* ggml_vec_soft_max_f32, then the probabilities rounded to f16, as they meet V */
    for (int g = 0; g < n; g++) {
        float *p = scores + g * n_kv;
        lc_round_f16_times(p, p, n_kv, (float)(1.0 / lc_softmax_exps(p, n_kv, max[g])));
    }
    memset(lanes, 0, (size_t)(n * n_lanes * head_dim) * sizeof(float));
    for (int64_t j = 0; j < n_kv; j++) {
        const char *v_row = v + j * stride * elt;
        for (int g = 0; g < n; g++)
            if (scores[g * n_kv + j] != 0.0f)  /* a zero probability adds exactly nothing */
                lc_attn_accumulate_v(lanes + (g * n_lanes + j % n_lanes) * head_dim, scores[g * n_kv + j], v_row, type,
                                     head_dim);
    }
    for (int g = 0; g < n; g++) {
        const float *head_lanes = lanes + g * n_lanes * head_dim;
        for (int64_t d = 0; d < head_dim; d++) {
            float s16[16];
            for (int l = 0; l < 16; l++)
                s16[l] = batched ? head_lanes[l * head_dim + d]
                                 : (head_lanes[l * head_dim + d] + head_lanes[(32 + l) * head_dim + d]) +
                                   (head_lanes[(16 + l) * head_dim + d] + head_lanes[(48 + l) * head_dim + d]);
            y[g * head_dim + d] = lc_reduce16_ordered(s16);
        }
    }
}

#if defined(LC_AVX2)
/* x where the mask lets the cell be seen, else the mask's -INFINITY */
#if defined(LC_AVX512)
static inline __m512 hide_masked(__m512 x, __m512 m) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), x, m);
}
#else
static inline __m256 hide_masked(__m256 x, __m256 m) {
    return _mm256_blendv_ps(x, m, _mm256_cmp_ps(m, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
}
#endif

/* One query's attention in ggml_vec_dot_f16's order (llama.cpp's without flash attention when a
 * sequence has one token in the batch), attend_heads_together's result, for nh <= LC_VEC_SUM_HEADS
 * query heads of one KV head (a constant where inlined), f16 K and V rows of whole 64s, whose visible
 * cells are first..last: K q16 and V^T p as ggml multiplies them row by row, but every K row read
 * once for the heads and the V sums over cells held in registers, a row's whole values at a time.
 * Cell j of a V sum goes to lane j % 64 of ggml's four 16-lane accumulators, each lane adding its
 * cells in order; the lanes are then folded (l, 32 + l) + (16 + l, 48 + l) and the 16 reduced in
 * GCC's order. Cells outside first..last would add exact zeros: only the K rows from first's 64 on
 * are read (their scores hidden), and no row past last. scores: cells j at scores + g * n_ctx + j. */
static inline __attribute__((always_inline)) void attend_one_query(const float *q16, int nh, const lc_fp16_t *k,
                                                                   const lc_fp16_t *v, int64_t stride, int64_t hd,
                                                                   const float *mask, int32_t first, int32_t last,
                                                                   float scale, float softcap, const float *slopes,
                                                                   float *scores, int64_t n_ctx, float *y) {
    enum { W = LC_VEC_LANES };
    const int32_t j0 = first & ~63, j1 = last + 1;
    int plain = softcap == 0.0f;
    for (int g = 0; g < nh; g++) plain &= slopes[g] == 1.0f;
    int32_t jb = j0;
    for (; jb + W <= j1; jb += W) {
        /* a KV head's rows are a head's bytes out of each cell's, which the hardware prefetchers
         * follow late: K rows asked into L2 a block ahead, the V rows the sums will read too */
        for (int c = 0; c < W; c++)
            for (int64_t b = 0; b < hd * (int64_t)sizeof(lc_fp16_t); b += 64) {
                if (jb + W + c < j1) _mm_prefetch((const char *)(k + (jb + W + c) * stride) + b, _MM_HINT_T1);
                _mm_prefetch((const char *)(v + (jb + c) * stride) + b, _MM_HINT_T1);
            }
        lc_vec dots[LC_VEC_SUM_HEADS];
        lc_dots_of_cells(k + jb * stride, stride, q16, hd, nh, dots);
        const lc_vec m = lc_vec_load(mask + jb);
        for (int g = 0; g < nh; g++) {
            float *s = scores + g * n_ctx + jb;
            if (plain) {  /* ggml's soft_max: the scores scaled, then the mask added */
                lc_vec_store(s, hide_masked(lc_vec_add(lc_vec_mul(dots[g], lc_vec_set1(scale)), m), m));
            } else {
                lc_vec_store(s, dots[g]);
                for (int c = 0; c < W; c++) s[c] = masked_score(s[c], mask[jb + c], scale, softcap, slopes[g]);
            }
        }
    }
    for (; jb < j1; jb++)  /* the last few cells one by one */
        for (int g = 0; g < nh; g++)
            scores[g * n_ctx + jb] = masked_score(lc_attn_dot_kq(k + jb * stride, LC_TYPE_F16, q16 + g * hd, hd), mask[jb],
                                                  scale, softcap, slopes[g]);
    for (int g = 0; g < nh; g++) {  /* ggml_vec_soft_max_f32, then the probabilities rounded to f16 */
        float *p = scores + g * n_ctx, max = -INFINITY, lanes_max[W];
        lc_vec vmax = lc_vec_set1(-INFINITY);
        int32_t j = j0;
        for (; j + W <= j1; j += W) vmax = lc_vec_max(vmax, lc_vec_load(p + j));
        lc_vec_store(lanes_max, vmax);
        for (int l = 0; l < W; l++) max = lanes_max[l] > max ? lanes_max[l] : max;
        for (; j < j1; j++) max = p[j] > max ? p[j] : max;
        lc_round_f16_times(p + j0, p + j0, j1 - j0, (float)(1.0 / lc_softmax_exps(p + j0, j1 - j0, max)));
    }
    for (int64_t d0 = 0; d0 < hd; d0 += LC_VEC_SUM_STEP) {
        lc_vec folded[LC_VEC_SUM_HEADS][16][4];
        for (int l = 0; l < 16; l++) {
            lc_vec quarter[4][LC_VEC_SUM_HEADS][4];  /* lanes l, 16 + l, 32 + l, 48 + l */
            for (int qd = 0; qd < 4; qd++) {
                lc_vec acc[LC_VEC_SUM_HEADS][4];
                for (int g = 0; g < nh; g++)
                    for (int a = 0; a < 4; a++) acc[g][a] = lc_vec_zero();
                const int32_t lane_first = j0 + 16 * qd + l;
                for (int32_t j = lane_first < first ? lane_first + 64 : lane_first; j < j1; j += 64) {
                    const lc_fp16_t *v_row = v + j * stride + d0;
                    lc_vec vv[4];
                    for (int a = 0; a < 4; a++) vv[a] = lc_vec_load_f16(v_row + W * a);
                    for (int g = 0; g < nh; g++) {
                        const lc_vec pv = lc_vec_set1(scores[g * n_ctx + j]);
                        for (int a = 0; a < 4; a++) acc[g][a] = lc_vec_fmadd(vv[a], pv, acc[g][a]);
                    }
                }
                for (int g = 0; g < nh; g++)
                    for (int a = 0; a < 4; a++) quarter[qd][g][a] = acc[g][a];
            }
            for (int g = 0; g < nh; g++)
                for (int a = 0; a < 4; a++)
                    folded[g][l][a] = lc_vec_add(lc_vec_add(quarter[0][g][a], quarter[2][g][a]),
                                                 lc_vec_add(quarter[1][g][a], quarter[3][g][a]));
        }
        for (int g = 0; g < nh; g++)
            for (int a = 0; a < 4; a++) {  /* lc_reduce16_ordered, every dim of the vector at once */
                lc_vec t3[8], t6[4];
                for (int i = 0; i < 8; i++) t3[i] = lc_vec_add(folded[g][i + 8][a], folded[g][i][a]);
                for (int i = 0; i < 4; i++) t6[i] = lc_vec_add(t3[i + 4], t3[i]);
                lc_vec_store(y + g * hd + d0 + W * a, lc_vec_add(lc_vec_add(t6[0], t6[2]), lc_vec_add(t6[1], t6[3])));
            }
    }
}
#endif

/* Query heads g < n of one KV head for one token in ggml_vec_dot_f16's order, whose visible cells
 * are first..last of the n_kv cells: attend_one_query where it applies, else attend_heads_together.
 * scores: n * n_kv floats. */
static void attend_one_token(const float *q16, int n, const char *k, const char *v, int64_t stride, int type,
                             int64_t head_dim, const float *mask, int32_t n_kv, int32_t first, int32_t last,
                             float scale, float softcap, const float *slopes, float *lanes, float *scores, float *y) {
#if defined(LC_AVX2)
    if (type == LC_TYPE_F16 && head_dim % 64 == 0) {
        for (int g = 0; g < n; g += LC_VEC_SUM_HEADS) {
            const int nh = n - g < LC_VEC_SUM_HEADS ? n - g : LC_VEC_SUM_HEADS;
#define ATTEND(heads) attend_one_query(q16 + g * head_dim, heads, (const lc_fp16_t *)k, (const lc_fp16_t *)v, stride, \
                                       head_dim, mask, first, last, scale, softcap, slopes + g, scores, n_kv,       \
                                       y + g * head_dim)
            LC_WITH_SUM_HEADS(nh, ATTEND);
#undef ATTEND
        }
        return;
    }
#endif
    (void)first, (void)last;
    attend_heads_together(q16, n, k, v, stride, type, head_dim, mask, n_kv, scale, softcap, slopes, 0, lanes, scores, y);
}

static void op_attention(const lc_node *nd, const lc_task *task) {
    /* other types, flash attention, sinks and Grok's folded cap: kv.c's general path */
    if (nd->i[2] || nd->i[1] != nd->type || nd->type != LC_TYPE_F16 || nd->src[4] || nd->f[3] != 0.0f) {
        lc_op_attention_ext(nd, task);
        return;
    }
    const int64_t head_dim = nd->ne[0], n_head = nd->ne[1], n_ctx = nd->ne[3];
    const int64_t n_head_kv = nd->i[0], group = n_head / n_head_kv, kv_width = n_head_kv * head_dim;
    const int32_t n_kv = task->n_kv;
    const int type = nd->type;
    const size_t elt = type == LC_TYPE_F16 ? sizeof(lc_fp16_t) : sizeof(float);
    const float scale = nd->f[0], softcap = nd->f[1], max_bias = nd->f[2];
    /* ALiBi's slopes as ggml_soft_max_ext computes them */
    const uint32_t n_head_log2 = 1u << (uint32_t)floor(log2((double)n_head));
    const float m0 = powf(2.0f, -max_bias / n_head_log2), m1 = powf(2.0f, -(max_bias / 2.0f) / n_head_log2);
#if defined(LC_AVX2)
    const int plain_scores = softcap == 0.0f && max_bias == 0.0f;  /* what the SIMD group kernels compute */
#endif
    /* scratch: the group's f16-rounded queries and scores, then up to LC_ATTEND_HEADS_MAX heads' 64 lane
     * sums each */
    float *q16 = task->scratch, *scores = q16 + group * head_dim, *lanes = scores + group * n_ctx;

    /* One token with every thread in (lc_attention_shared): the threads claim a part of a KV head's
     * query heads at a time (lc_shared_heads_step), each head's numbers its own (the same bits as one
     * thread's loop below). */
    if (lc_attention_shared(nd, task)) {
        const float *mask = nd->src[3];
        const int32_t first = first_visible(mask, n_kv), last = last_visible(mask, n_kv);
        const int64_t most = lc_shared_heads_step(group, n_head_kv, task->nth);
        const int64_t step = most < LC_ATTEND_HEADS_MAX ? most : LC_ATTEND_HEADS_MAX, parts = (group + step - 1) / step;
        for (int64_t part = task->ith; part < n_head_kv * parts; part = atomic_fetch_add(task->next_chunk, 1)) {
            const int64_t kvh = part / parts, h = kvh * group + part % parts * step;
            const int n = (int)((kvh + 1) * group - h < step ? (kvh + 1) * group - h : step);
            float *y = (float *)nd->dst + h * head_dim;
            if (first < 0) {  /* a padding row */
                memset(y, 0, (size_t)(n * head_dim) * sizeof(float));
                continue;
            }
            float slopes[LC_ATTEND_HEADS_MAX];
            for (int g = 0; g < n; g++) slopes[g] = lc_alibi_slope((uint32_t)(h + g), max_bias, n_head_log2, m0, m1);
            lc_fp32_to_fp16_row((const float *)nd->src[0] + h * head_dim, (lc_fp16_t *)scores, n * head_dim);
            lc_fp16_to_fp32_row((const lc_fp16_t *)scores, q16, n * head_dim);
            attend_one_token(q16, n, (const char *)nd->src[1] + kvh * head_dim * elt,
                             (const char *)nd->src[2] + kvh * head_dim * elt, kv_width, type, head_dim, mask, n_kv,
                             first, last, scale, softcap, slopes, lanes, scores, y);
        }
        return;
    }

    /* Threads claim one token at a time: under a causal mask later tokens see more cells, so equal
     * shares of the tokens would not be equal shares of the work. */
    for (int64_t t = task->ith; t < nd->ne[2]; t = atomic_fetch_add(task->next_chunk, 1)) {
        const float *mask = (const float *)nd->src[3] + t * n_ctx;
        const int batched = has_sequence_neighbour(nd->src[3], t, nd->ne[2], n_ctx, n_kv);
        const int32_t first = first_visible(mask, n_kv), last = last_visible(mask, n_kv);
        for (int64_t kvh = 0; kvh < n_head_kv; kvh++) {
            const char *k = (const char *)nd->src[1] + kvh * head_dim * elt, *v = (const char *)nd->src[2] + kvh * head_dim * elt;
            const float *q = (const float *)nd->src[0] + (t * n_head + kvh * group) * head_dim;
            float *y = (float *)nd->dst + (t * n_head + kvh * group) * head_dim;
            lc_fp32_to_fp16_row(q, (lc_fp16_t *)scores, group * head_dim);  /* queries rounded to f16 */
            lc_fp16_to_fp32_row((const lc_fp16_t *)scores, q16, group * head_dim);
            if (first < 0) {  /* nothing visible: a padding row */
                memset(y, 0, (size_t)(group * head_dim) * sizeof(float));
                continue;
            }
#if defined(LC_AVX512)
            if (batched && plain_scores && head_dim % 16 == 0 && group <= MAX_SHARED_HEADS && ((last | 15) + 1) <= n_kv) {
                attend_group_512(q16, k, v, kv_width, type, head_dim, n_ctx, mask, first & ~15, (last | 15) + 1,
                                 scale, scores, y, (int)group);
                continue;
            }
#elif defined(LC_AVX2)
            if (batched && plain_scores && head_dim % 16 == 0 && ((last | 15) + 1) <= n_kv) {
                for (int64_t g = 0; g < group; g++)
                    attend_tinyblas_256(q16 + g * head_dim, k, v, kv_width, type, head_dim, mask, first & ~15,
                                        (last | 15) + 1, scale, scores, y + g * head_dim);
                continue;
            }
#endif
            for (int64_t g0 = 0; g0 < group; g0 += LC_ATTEND_HEADS_MAX) {
                const int n = (int)(group - g0 < LC_ATTEND_HEADS_MAX ? group - g0 : LC_ATTEND_HEADS_MAX);
                float slopes[LC_ATTEND_HEADS_MAX];
                for (int g = 0; g < n; g++)
                    slopes[g] = lc_alibi_slope((uint32_t)(kvh * group + g0 + g), max_bias, n_head_log2, m0, m1);
                if (batched)
                    attend_heads_together(q16 + g0 * head_dim, n, k, v, kv_width, type, head_dim, mask, n_kv, scale,
                                          softcap, slopes, 1, lanes, scores, y + g0 * head_dim);
                else
                    attend_one_token(q16 + g0 * head_dim, n, k, v, kv_width, type, head_dim, mask, n_kv, first, last,
                                     scale, softcap, slopes, lanes, scores, y + g0 * head_dim);
            }
        }
    }
}

/* a column range of each row copied into another's: SLICE, and each part of a CONCAT */
static void op_copy_cols(const lc_node *nd, const lc_task *task) {
    const float *x = nd->src[0];
    float *y = nd->dst;
    int64_t r0, r1;
    share(nd->ne[0], task->ith, task->nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        memcpy(y + r * nd->ne[2] + nd->i[1], x + r * nd->ne[1] + nd->i[0], (size_t)nd->ne[3] * sizeof(float));
}

const lc_op_fn lc_ops[LC_OP_COUNT] = {
    [LC_OP_GET_ROWS] = op_get_rows, [LC_OP_QUANTIZE] = op_quantize, [LC_OP_MUL_MAT] = op_mul_mat,
    [LC_OP_ADD] = op_add, [LC_OP_MUL] = op_mul, [LC_OP_SCALE] = op_scale,
    [LC_OP_RMS_NORM] = op_rms_norm, [LC_OP_NORM] = op_norm, [LC_OP_ROPE] = op_rope,
    [LC_OP_SILU] = op_silu, [LC_OP_GELU] = op_gelu, [LC_OP_SWIGLU] = op_swiglu,
    [LC_OP_GEGLU] = op_geglu, [LC_OP_KV_STORE] = op_kv_store, [LC_OP_ATTENTION] = op_attention,
    [LC_OP_TANH] = op_tanh, [LC_OP_CLAMP] = op_clamp, [LC_OP_HADAMARD] = lc_op_hadamard,
    [LC_OP_DIV] = op_div, [LC_OP_SIGMOID] = op_sigmoid, [LC_OP_SOFTMAX] = lc_op_softmax,
    [LC_OP_SUM_ROWS] = lc_op_sum_rows, [LC_OP_TOP_K] = lc_op_top_k, [LC_OP_GATHER] = lc_op_gather,
    [LC_OP_WEIGHTED_SUM] = lc_op_weighted_sum, [LC_OP_MOE_MAP] = lc_op_moe_map,
    [LC_OP_MOE_GATHER] = lc_op_moe_gather, [LC_OP_MUL_MAT_ID] = lc_op_mul_mat_id,
    [LC_OP_MOE_SCATTER] = lc_op_moe_scatter, [LC_OP_MASK_GROUPS] = lc_op_mask_groups,
    [LC_OP_COPY_COLS] = op_copy_cols, [LC_OP_SSM_CONV] = lc_op_ssm_conv, [LC_OP_SSM_SCAN] = lc_op_ssm_scan,
    [LC_OP_EXP] = lc_op_exp, [LC_OP_L2_NORM] = lc_op_l2_norm, [LC_OP_TOKEN_SHIFT] = lc_op_token_shift,
    [LC_OP_RWKV_WKV6] = lc_op_rwkv_wkv6, [LC_OP_RWKV_WKV7] = lc_op_rwkv_wkv7,
    [LC_OP_GATED_LINEAR_ATTN] = lc_op_gated_linear_attn, [LC_OP_GELU_QUICK] = lc_op_gelu_quick,
};
