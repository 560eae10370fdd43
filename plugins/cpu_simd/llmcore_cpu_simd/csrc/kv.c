/* The KV cache's other types (bf16 and the block types) and flash attention, in ggml's CPU order.
 *
 * Cache rows are written as ggml's set_rows writes them: f16/bf16 rounded to nearest even, Q8_0 by
 * the x86 quantize_row_q8_0 (this plugin's activation quantizer), Q4_0, Q4_1, Q5_0 and Q5_1 by
 * ggml-quants.c's quantize_row_*_ref, float operation for float operation (the build has no FMA
 * contraction, as ggml-base).
 *
 * Attention without flash attention scores each cell with the K type's dot product (q rounded to
 * its vec_dot type; tinyBLAS's order for an f16 K cache in a batch, ggml_vec_dot_f32's for f32
 * whatever the batch, the block types' vec_dot), then the softmax and the V sums of ops.c.
 * Flash attention is ggml_compute_forward_flash_attn_ext_f16: per query row an online softmax over
 * the cells in order with the C library's expf, V accumulated in f16 for an f16 V cache (f32
 * otherwise), or, for 64 queries or more over f16 caches, its tiled path: q in f32, scores and V
 * sums as sequential fused multiply-adds 64 cells at a time. An f32 cache is read as f16 there, as
 * llama.cpp's graph casts it. */
#include <math.h>
#include <string.h>

#include "lc_kernels.h"
#include "lc_kv.h"
#include "lc_simd.h"

enum { FA_TILE = 64 };  /* GGML_FA_TILE_Q and GGML_FA_TILE_KV */
/* the query rows (tokens times the heads of a KV head) whose states a thread's scratch holds, at
 * least 64 tokens' (lc_attention_scratch_floats): each tile loaded serves them all */
enum { FA_CHUNK_ROWS = 256 };
/* the query heads of one KV head flash attention's one-row path takes together (attend_flash_cells) */
enum { FLASH_ROW_HEADS = 8 };
/* the cells flash_cells_in_blocks takes at a time */
enum { FLASH_BLOCK_CELLS = 16 };
/* the floats of a thread's scratch attend_flash_cells works in: its rows (a query, float and f16 sums
 * per head, a V row) */
#define FLASH_ROW_FLOATS(head_dim) ((3 * FLASH_ROW_HEADS + 1) * (head_dim))

size_t lc_attention_scratch_floats(int64_t head_dim, int64_t n_head, int64_t group, int64_t n_ctx, int flash) {
    /* ops.c's f16 path: the group's f16-rounded queries and scores, up to LC_ATTEND_HEADS_MAX heads'
     * 64 lane sums each (more than attend_products' one query, scores and lanes) */
    const int64_t together = group < LC_ATTEND_HEADS_MAX ? group : LC_ATTEND_HEADS_MAX;
    const size_t plain = (size_t)(group * (head_dim + n_ctx) + together * 64 * head_dim);
    if (!flash) return plain;
    /* attend_flash_tiled: a tile's keys and values, then each row's M, S and sums for a chunk of
     * FA_CHUNK_ROWS rows or 64 tokens' heads; attend_flash_cells' rows (FLASH_ROW_FLOATS), then
     * attend_flash_split's chunk sums and merged ones per head, or
     * attend_flash_split_shared's chunk sums, maxima and sums of every head */
    const int64_t rows = FA_CHUNK_ROWS > FA_TILE * group ? FA_CHUNK_ROWS : FA_TILE * group;
    const size_t tiled = (size_t)(2 * FA_TILE * head_dim + FA_TILE + rows * (head_dim + 2));
    const int64_t split = 2 * FLASH_ROW_HEADS * head_dim > n_head * (head_dim + 2) ? 2 * FLASH_ROW_HEADS * head_dim
                                                                                   : n_head * (head_dim + 2);
    const size_t one_row = (size_t)(FLASH_ROW_FLOATS(head_dim) + split);
    const size_t most = plain > tiled ? plain : tiled;
    return most > one_row ? most : one_row;
}

/* ---- cache rows ---------------------------------------------------------------------------- */

/* the block's value of largest magnitude, the first one on a tie (Q4_0 and Q5_0 scale by it) */
static float signed_max(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

static void store_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float d = signed_max(x) / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = lc_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            const int8_t a = (int8_t)(x0 + 8.5f), b = (int8_t)(x1 + 8.5f);
            y[i].qs[j] = (uint8_t)((a < 15 ? a : 15) | ((b < 15 ? b : 15) << 4));
        }
    }
}

static void store_q5_0(const float *x, block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float d = signed_max(x) / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = lc_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            int8_t a = (int8_t)(x0 + 16.5f), b = (int8_t)(x1 + 16.5f);
            const uint8_t xa = (uint8_t)(a < 31 ? a : 31), xb = (uint8_t)(b < 31 ? b : 31);
            y[i].qs[j] = (uint8_t)((xa & 0x0F) | ((xb & 0x0F) << 4));
            qh |= ((uint32_t)(xa & 0x10u) >> 4) << j;
            qh |= ((uint32_t)(xb & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

/* Q4_1 and Q5_1: the block's minimum and scale (max - min) / levels, stored as the block's f16 d and
 * m; returns the minimum and, in *id, the inverse scale */
static float min_scale(const float *x, float levels, lc_fp16_t *d16, lc_fp16_t *m16, float *id) {
    float lo = 3.402823466e+38f, hi = -3.402823466e+38f;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    const float d = (hi - lo) / levels;
    *id = d ? 1.0f / d : 0.0f;
    *d16 = lc_fp32_to_fp16(d);
    *m16 = lc_fp32_to_fp16(lo);
    return lo;
}

static void store_q4_1(const float *x, block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float id;
        const float min = min_scale(x, 15.0f, &y[i].d, &y[i].m, &id);
        for (int j = 0; j < 16; j++) {
            const int8_t a = (int8_t)((x[j] - min) * id + 0.5f), b = (int8_t)((x[16 + j] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((a < 15 ? a : 15) | ((b < 15 ? b : 15) << 4));
        }
    }
}

static void store_q5_1(const float *x, block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float id;
        const float min = min_scale(x, 31.0f, &y[i].d, &y[i].m, &id);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t a = (uint8_t)((x[j] - min) * id + 0.5f), b = (uint8_t)((x[16 + j] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((a & 0x0F) | ((b & 0x0F) << 4));
            qh |= ((uint32_t)(a & 0x10u) >> 4) << j;
            qh |= ((uint32_t)(b & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

void lc_kv_store_row(int type, const float *x, void *dst, int64_t n) {
    switch (type) {
    case LC_TYPE_F32: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    case LC_TYPE_F16: lc_fp32_to_fp16_row(x, dst, n); break;
    case LC_TYPE_BF16: lc_quantize_row_bf16(x, dst, n); break;
    case LC_TYPE_Q8_0: lc_quantize_row_q8_0(x, dst, n); break;
    case LC_TYPE_Q4_0: store_q4_0(x, dst, n / 32); break;
    case LC_TYPE_Q4_1: store_q4_1(x, dst, n / 32); break;
    case LC_TYPE_Q5_0: store_q5_0(x, dst, n / 32); break;
    case LC_TYPE_Q5_1: store_q5_1(x, dst, n / 32); break;
    default: break;
    }
}

int64_t lc_kv_row_bytes(int type, int64_t n) {
    return n / lc_traits[type].block_size * (int64_t)lc_traits[type].type_size;
}

/* ---- the Walsh-Hadamard rotation ------------------------------------------------------------ */

/* rows of ne[0] values in chunks of i[0]: each value times 1/sqrtf(n), then the butterflies */
void lc_op_hadamard(const lc_node *nd, const lc_task *task) {
    const int64_t n = nd->i[0], chunks = nd->ne[0] / n;
    const float scale = 1.0f / sqrtf((float)n);
    const int64_t per = (chunks + task->nth - 1) / task->nth;
    const int64_t a = per * task->ith < chunks ? per * task->ith : chunks, b = a + per < chunks ? a + per : chunks;
    for (int64_t c = a; c < b; c++) {
        const float *x = (const float *)nd->src[0] + c * n;
        float *y = (float *)nd->dst + c * n;
        for (int64_t j = 0; j < n; j++) y[j] = x[j] * scale;
        for (int64_t len = 1; len < n; len <<= 1)
            for (int64_t i = 0; i < n; i += 2 * len)
                for (int64_t j = 0; j < len; j++) {
                    const float u = y[i + j], v = y[i + len + j];
                    y[i + j] = u + v;
                    y[i + len + j] = u - v;
                }
    }
}

/* ---- attention ------------------------------------------------------------------------------ */

typedef struct {
    int64_t head_dim, n_head, n_tokens, n_ctx, n_head_kv, group;
    int type_k, type_v, flash;
    int exact_rows;                /* no KV cache (an encoder): ggml's rows hold exactly n_kv cells, not a
                                    * cache view padded to 256 */
    int64_t k_row, v_row;          /* bytes per cell of the whole K / V cache */
    int64_t k_head, v_head;        /* bytes of one head within a cell */
    float scale, softcap, max_bias, m0, m1;
    float cap_scale;               /* the scores' factor inside the cap's tanh: 1 / softcap, or Grok's */
    const float *sinks;            /* NULL, or one sink logit per query head */
    uint32_t n_head_log2;
    int32_t n_kv;
} attn_shape;

static int64_t row_bytes(int type, int64_t n) { return lc_kv_row_bytes(type, n); }

static float head_slope(const attn_shape *a, uint32_t h) {
    return lc_alibi_slope(h, a->max_bias, a->n_head_log2, a->m0, a->m1);
}

/* the K row of cell j for KV head kvh, as f16 values where flash attention reads an f32 cache as
 * f16 (the cast llama.cpp's graph makes): converted into buf */
static const void *k_cell(const attn_shape *a, const char *k, int64_t j, int64_t kvh, lc_fp16_t *buf) {
    const char *row = k + j * a->k_row + kvh * a->k_head;
    if (a->flash && a->type_k == LC_TYPE_F32) {
        lc_fp32_to_fp16_row((const float *)row, buf, a->head_dim);
        return buf;
    }
    return row;
}

/* V row of cell j as float32 (f16 values for an f32 cache under flash attention) */
static void v_cell_f32(const attn_shape *a, const char *v, int64_t j, int64_t kvh, float *out) {
    const char *row = v + j * a->v_row + kvh * a->v_head;
    if (a->type_v == LC_TYPE_F32) {
        if (a->flash) {  /* rounded through f16 */
            for (int64_t d = 0; d < a->head_dim; d++) out[d] = LC_H2F(lc_fp32_to_fp16(((const float *)row)[d]));
        } else {
            memcpy(out, row, (size_t)a->head_dim * sizeof(float));
        }
    } else {
        lc_traits[a->type_v].dequant_row(row, out, a->head_dim);
    }
}

/* the query row in K's vec_dot format: f16-rounded floats (f16 K), floats (f32 K without flash
 * attention), or 8-bit blocks */
static void convert_query(const attn_shape *a, const float *q, float *qf, void *qb) {
    const int k_as_f16 = a->type_k == LC_TYPE_F16 || (a->flash && a->type_k == LC_TYPE_F32);
    if (k_as_f16) {
        lc_fp32_to_fp16_row(q, qb, a->head_dim);
        lc_fp16_to_fp32_row(qb, qf, a->head_dim);
    } else if (a->type_k == LC_TYPE_F32) {
        memcpy(qf, q, (size_t)a->head_dim * sizeof(float));
    } else {
        lc_quantize_row(lc_traits[a->type_k].vec_dot_type, q, qb, a->head_dim);
    }
}

/* q . k[j] in the order ggml takes for this K type and batch */
static float score(const attn_shape *a, const void *k_row, const float *qf, const void *qb, int batched) {
    if (a->type_k == LC_TYPE_F16 || (a->flash && a->type_k == LC_TYPE_F32))
        return batched && !a->flash ? lc_attn_dot_kq_tinyblas(k_row, LC_TYPE_F16, qf, a->head_dim)
                                    : lc_attn_dot_kq(k_row, LC_TYPE_F16, qf, a->head_dim);
    float s;
    if (a->type_k == LC_TYPE_F32) {  /* ggml_vec_dot_f32, its tail past whole 64s included */
        lc_vec_dot_f32((int)a->head_dim, &s, k_row, qf);
        return s;
    }
    lc_traits[a->type_k].vec_dot((int)a->head_dim, &s, k_row, qb);
    return s;
}

static inline float round_f16(float x) { return LC_H2F(lc_fp32_to_fp16(x)); }

/* One query head without flash attention (ops.c's attend_heads_together for one head, the K and V
 * types apart);
 * sink: NULL or the head's sink logit, which joins the max and, by expf in double, the sum
 * (ggml_soft_max_add_sinks). */
static void attend_products(const attn_shape *a, const float *q, const char *k, const char *v, int64_t kvh,
                            const float *mask, float slope, const float *sink, int batched, float *work, float *y) {
    const int64_t hd = a->head_dim;
    float *qf = work, *scores = qf + hd, *lanes = scores + a->n_ctx;
    lc_fp16_t kbuf[LC_MAX_HEAD_DIM];
    char qb[LC_MAX_HEAD_DIM * sizeof(lc_fp16_t)];  /* the query as f16, or smaller as q8_0 / q8_1 */
    convert_query(a, q, qf, qb);
    float max = -INFINITY;
    for (int64_t j = 0; j < a->n_kv; j++) {
        if (mask[j] == -INFINITY) {
            scores[j] = -INFINITY;
            continue;
        }
        float s = score(a, k_cell(a, k, j, kvh, kbuf), qf, qb, batched);
        if (a->softcap > 0.0f) s = tanhf(s * a->cap_scale) * a->softcap;
        scores[j] = slope == 1.0f ? s * a->scale + mask[j] : fmaf(slope, mask[j], s * a->scale);
        if (scores[j] > max) max = scores[j];
    }
    if (sink && *sink > max) max = *sink;
    /* ggml_vec_soft_max_f32: exps summed 16 at a time, each group's sum in double (a cache view's
     * padding adds zeros); past the whole 16s of an exact row the C library's expf, each exp added
     * in double */
    const int64_t whole = a->exact_rows ? a->n_kv & ~(int64_t)15 : a->n_kv;
    double sum = lc_softmax_exps(scores, whole, max);
    for (int64_t j = whole; j < a->n_kv; j++) {
        scores[j] = scores[j] == -INFINITY ? 0.0f : expf(scores[j] - max);
        sum += (double)scores[j];
    }
    if (sink) sum += (double)expf(*sink - max);
    const float inv = (float)(1.0 / sum);
    const int v_type = a->type_v;  /* f16 or f32 here */
    /* an exact row of f32 V meets a batch's probabilities through tinyBLAS only over whole 16s of
     * cells; otherwise ggml_vec_dot_f32: 64 lanes over whole 64s, then its compiled tail (16 and then
     * 8 products rounded and added in order, the rest fused). A padded cache view has no tail. */
    const int exact_f32 = a->exact_rows && v_type == LC_TYPE_F32;
    const int tinyblas = batched && (!exact_f32 || a->n_kv % 16 == 0);
    const int n_lanes = tinyblas ? 16 : 64;
    const int64_t lane_cells = tinyblas || !exact_f32 ? a->n_kv : a->n_kv & ~(int64_t)63;
    memset(lanes, 0, (size_t)(n_lanes * hd) * sizeof(float));
    for (int64_t j = 0; j < lane_cells; j++) {
        float p = scores[j] * inv;
        if (v_type == LC_TYPE_F16) p = round_f16(p);  /* the probabilities meet an f16 V as f16 */
        if (p != 0.0f)
            lc_attn_accumulate_v(lanes + (j % n_lanes) * hd, p, v + j * a->v_row + kvh * a->v_head, v_type, hd);
    }
    for (int64_t d = 0; d < hd; d++) {
        float s16[16];
        for (int l = 0; l < 16; l++)
            s16[l] = tinyblas ? lanes[l * hd + d]
                              : (lanes[l * hd + d] + lanes[(32 + l) * hd + d]) + (lanes[(16 + l) * hd + d] + lanes[(48 + l) * hd + d]);
        y[d] = lc_reduce16_ordered(s16);
    }
    const int64_t tail = a->n_kv - lane_cells;
    const int64_t unfused_end = lane_cells + tail / 16 * 16 + (tail % 16 >= 8 ? 8 : 0);
    for (int64_t j = lane_cells; j < a->n_kv; j++) {
        const float p = scores[j] * inv;
        if (p == 0.0f) continue;  /* a hidden cell adds nothing either way */
        const float *vj = (const float *)(v + j * a->v_row + kvh * a->v_head);
        for (int64_t d = 0; d < hd; d++) {
            if (j < unfused_end) {
                const float product = vj[d] * p;
                y[d] += product;
            } else {
                y[d] = fmaf(vj[d], p, y[d]);
            }
        }
    }
}

/* A sink after flash attention's cells (ggml_flash_attn_ext_add_sinks): above the row's max M it
 * rescales the sums and becomes the max, else it adds its exp to the sum S alone. */
static void add_sink(float sink, float *M, float *S, float *acc, int64_t hd) {
    float ms = 1.0f, vs = 1.0f;
    if (sink > *M) {
        ms = expf(*M - sink);
        *M = sink;
        for (int64_t d = 0; d < hd; d++) acc[d] *= ms;
    } else {
        vs = expf(sink - *M);
    }
    *S = fmaf(*S, ms, vs);
}

#if defined(LC_AVX2)
/* The f16 V sums (ggml_vec_scale_f16, then ggml_vec_mad_f16, per cell) of nh heads (a constant where
 * inlined) over a block's n cells (f16 V rows v_stride values apart), LC_VEC_SUM_STEP values of each
 * head at a time held in registers: the heads' chains of dependent roundings overlap. Head g's sums
 * are at sums + g * hd; hidden[g][i] skips cell i for head g. */
static inline __attribute__((always_inline)) void flash_v_sums(int nh, int64_t hd, int n, const lc_fp16_t *v_rows,
                                                               int64_t v_stride,
                                                               const float (*ms)[FLASH_BLOCK_CELLS],
                                                               const float (*vs)[FLASH_BLOCK_CELLS],
                                                               const unsigned char (*hidden)[FLASH_BLOCK_CELLS],
                                                               lc_fp16_t *sums) {
    for (int64_t d0 = 0; d0 < hd; d0 += LC_VEC_SUM_STEP) {
        lc_vec cur[LC_VEC_SUM_HEADS][4];
        for (int g = 0; g < nh; g++)
            for (int l = 0; l < 4; l++) cur[g][l] = lc_vec_load_f16(sums + g * hd + d0 + LC_VEC_LANES * l);
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int g = 0; g < nh; g++) seen |= !hidden[g][i];
            if (!seen) continue;
            const lc_fp16_t *v_row = v_rows + i * v_stride + d0;
            lc_vec vd[4];
            for (int l = 0; l < 4; l++) vd[l] = lc_vec_load_f16(v_row + LC_VEC_LANES * l);
            for (int g = 0; g < nh; g++) {
                if (hidden[g][i]) continue;
                if (ms[g][i] != 1.0f) {
                    const lc_vec msv = lc_vec_set1(ms[g][i]);
                    for (int l = 0; l < 4; l++) cur[g][l] = lc_vec_round_f16(lc_vec_mul(cur[g][l], msv));
                }
                const lc_vec vsv = lc_vec_set1(vs[g][i]);
                for (int l = 0; l < 4; l++) cur[g][l] = lc_vec_round_f16(lc_vec_fmadd(vd[l], vsv, cur[g][l]));
            }
        }
        for (int g = 0; g < nh; g++)  /* f16 values already: stored exactly */
            for (int l = 0; l < 4; l++) lc_vec_store_f16(sums + g * hd + d0 + LC_VEC_LANES * l, cur[g][l]);
    }
}

/* A KV head's n_heads query heads over the cells [c0, c1) of f16 K and V rows of whole 64s, a block
 * of cells at a time: every head's scores (whole blocks' in vectors, lc_dots_of_cells), then each
 * head's chain of maxima and expf, then the heads' V sums (flash_v_sums). */
static void flash_cells_in_blocks(const attn_shape *a, const float *qf, const char *k, const char *v, int64_t kvh,
                                  const float *mask, int n_heads, const float *slope, int64_t c0, int64_t c1,
                                  float *M, float *S, lc_fp16_t *acc16) {
    const int64_t hd = a->head_dim;
    const int64_t k_stride = a->k_row / (int64_t)sizeof(lc_fp16_t), v_stride = a->v_row / (int64_t)sizeof(lc_fp16_t);
    const lc_fp16_t *k_head = (const lc_fp16_t *)(k + kvh * a->k_head), *v_head = (const lc_fp16_t *)(v + kvh * a->v_head);
    for (int64_t j0 = c0; j0 < c1; j0 += FLASH_BLOCK_CELLS) {
        const int n = (int)(j0 + FLASH_BLOCK_CELLS < c1 ? FLASH_BLOCK_CELLS : c1 - j0);
        float block_mask[FLASH_BLOCK_CELLS];
        lc_round_f16_times(mask + j0, block_mask, n, 1.0f);  /* flash attention's mask is f16 */
        /* the rows a block ahead asked into L2: one KV head's rows are a head's bytes out of each
         * cell's, which the hardware prefetchers follow late (decode at depth 2048, interleaved: dense
         * 1024x8 +10%, SmolLM2 +29%; into L1, or a block's rows in a burst, helped the first and
         * slowed the second) */
        for (int64_t j = j0 + FLASH_BLOCK_CELLS; j < j0 + FLASH_BLOCK_CELLS + n && j < c1; j++)
            for (int64_t b = 0; b < hd * (int64_t)sizeof(lc_fp16_t); b += 64) {
                _mm_prefetch((const char *)(k_head + j * k_stride) + b, _MM_HINT_T1);
                _mm_prefetch((const char *)(v_head + j * v_stride) + b, _MM_HINT_T1);
            }
        float dots[FLASH_ROW_HEADS][FLASH_BLOCK_CELLS];
        const lc_fp16_t *k_rows = k_head + j0 * k_stride;
        if (n == FLASH_BLOCK_CELLS) {
            for (int g = 0; g < n_heads; g += LC_VEC_SUM_HEADS)
                for (int c = 0; c < FLASH_BLOCK_CELLS; c += LC_VEC_LANES) {
                    lc_vec cells[LC_VEC_SUM_HEADS];
                    const int nh = n_heads - g < LC_VEC_SUM_HEADS ? n_heads - g : LC_VEC_SUM_HEADS;
#define DOTS(heads) lc_dots_of_cells(k_rows + c * k_stride, k_stride, qf + g * hd, hd, heads, cells)
                    LC_WITH_SUM_HEADS(nh, DOTS);
#undef DOTS
                    for (int h = 0; h < nh; h++) lc_vec_store(dots[g + h] + c, cells[h]);
                }
        } else {
            for (int g = 0; g < n_heads; g++)
                for (int i = 0; i < n; i++) dots[g][i] = lc_attn_dot_kq(k_rows + i * k_stride, LC_TYPE_F16, qf + g * hd, hd);
        }
        float ms[FLASH_ROW_HEADS][FLASH_BLOCK_CELLS], vs[FLASH_ROW_HEADS][FLASH_BLOCK_CELLS];
        unsigned char hidden[FLASH_ROW_HEADS][FLASH_BLOCK_CELLS];
        for (int g = 0; g < n_heads; g++)
            for (int i = 0; i < n; i++) {
                const float mv = slope[g] * block_mask[i];
                hidden[g][i] = mv == -INFINITY;
                if (hidden[g][i]) continue;
                float s = dots[g][i] * a->scale;
                if (a->softcap != 0.0f) s = a->softcap * tanhf(s);
                s += mv;
                const float Mold = M[g];
                ms[g][i] = vs[g][i] = 1.0f;
                if (s > M[g]) {
                    M[g] = s;
                    ms[g][i] = expf(Mold - M[g]);
                } else {
                    vs[g][i] = expf(s - M[g]);
                }
                S[g] = fmaf(S[g], ms[g][i], vs[g][i]);
            }
        const lc_fp16_t *v_rows = v_head + j0 * v_stride;
        for (int g = 0; g < n_heads; g += LC_VEC_SUM_HEADS) {
            lc_fp16_t *sums = acc16 + g * hd;
#define V_SUMS(heads) flash_v_sums(heads, hd, n, v_rows, v_stride, ms + g, vs + g, hidden + g, sums)
            LC_WITH_SUM_HEADS(n_heads - g < LC_VEC_SUM_HEADS ? n_heads - g : LC_VEC_SUM_HEADS, V_SUMS);
#undef V_SUMS
        }
    }
}
#endif

/* Query heads h0 .. h0 + n_heads - 1 of KV head kvh (rows of q and y head_dim apart; at most
 * FLASH_ROW_HEADS) with flash attention, ggml's one-row path: each head's online softmax cell by
 * cell. The heads take each cell together, each with its own steps and numbers: the cell's K and V
 * rows are read once for them, and the heads' chains of dependent steps (the running max, the f16 V
 * sums) overlap; with AVX2 or AVX-512, f16 rows of whole 64s go a block of cells at a time
 * (flash_cells_in_blocks).
 * The cells [c0, c1) only; with partial != NULL the sums are left unnormalised in y
 * and head g's max and sum go to partial[2g], partial[2g + 1] (one chunk of ggml's split over
 * threads). A head's sink (a->sinks: NULL, none) joins the first chunk after its cells. */
static void attend_flash_cells(const attn_shape *a, const float *q, const char *k, const char *v, int64_t kvh,
                               const float *mask, int64_t h0, int n_heads, int64_t c0, int64_t c1, float *work,
                               float *y, float *partial) {
    const int64_t hd = a->head_dim;
    float *qf = work, *acc = qf + n_heads * hd, *v32 = acc + n_heads * hd;
    lc_fp16_t *acc16 = (lc_fp16_t *)(v32 + hd), kbuf[LC_MAX_HEAD_DIM];
    char qb[FLASH_ROW_HEADS][LC_MAX_HEAD_DIM * sizeof(lc_fp16_t)];  /* the queries as f16, or smaller as q8_0 / q8_1 */
    const int v_f16 = a->type_v == LC_TYPE_F16 || a->type_v == LC_TYPE_F32;  /* an f32 cache is read as f16 */
    float S[FLASH_ROW_HEADS], M[FLASH_ROW_HEADS], slope[FLASH_ROW_HEADS];
    int slopes_positive = 1;  /* then a cell the mask hides is hidden from every head */
    for (int g = 0; g < n_heads; g++) {
        convert_query(a, q + g * hd, qf + g * hd, qb[g]);
        S[g] = 0.0f;
        M[g] = -INFINITY;
        slope[g] = head_slope(a, (uint32_t)(h0 + g));
        slopes_positive &= slope[g] > 0.0f;
    }
    memset(acc, 0, (size_t)(n_heads * hd) * sizeof(float));
    memset(acc16, 0, (size_t)(n_heads * hd) * sizeof(lc_fp16_t));
#if defined(LC_AVX2)
    if (a->type_k == LC_TYPE_F16 && a->type_v == LC_TYPE_F16 && hd % 64 == 0)  /* the usual head sizes */
        flash_cells_in_blocks(a, qf, k, v, kvh, mask, n_heads, slope, c0, c1, M, S, acc16);
    else
#endif
    for (int64_t j = c0; j < c1; j++) {
        const float m = round_f16(mask[j]);  /* flash attention's mask is f16 */
        if (m == -INFINITY && slopes_positive) continue;
        const void *k_row = k_cell(a, k, j, kvh, kbuf);
        const char *row = v + j * a->v_row + kvh * a->v_head;
        if (!v_f16) v_cell_f32(a, v, j, kvh, v32);
        for (int g = 0; g < n_heads; g++) {
            const float mv = slope[g] * m;
            if (mv == -INFINITY) continue;
            float s = score(a, k_row, qf + g * hd, qb[g], 0) * a->scale;
            if (a->softcap != 0.0f) s = a->softcap * tanhf(s);
            s += mv;
            const float Mold = M[g];
            float ms = 1.0f, vs = 1.0f;
            if (s > M[g]) {
                M[g] = s;
                ms = expf(Mold - M[g]);
            } else {
                vs = expf(s - M[g]);
            }
            if (v_f16) {
                lc_fp16_t *sums = acc16 + g * hd;
                int64_t d = 0;
#if defined(LC_AVX512)
                if (a->type_v == LC_TYPE_F16) {
                    const __m512 msv = _mm512_set1_ps(ms), vsv = _mm512_set1_ps(vs);
                    for (; d + 16 <= hd; d += 16) {
                        __m512 cur = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sums + d)));
                        if (ms != 1.0f) cur = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(cur, msv), _MM_FROUND_TO_NEAREST_INT));
                        const __m512 vd = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const lc_fp16_t *)row + d)));
                        _mm256_storeu_si256((__m256i *)(sums + d),
                                            _mm512_cvtps_ph(_mm512_fmadd_ps(vd, vsv, cur), _MM_FROUND_TO_NEAREST_INT));
                    }
                }
#elif defined(LC_AVX2)
                if (a->type_v == LC_TYPE_F16) {
                    const __m256 msv = _mm256_set1_ps(ms), vsv = _mm256_set1_ps(vs);
                    for (; d + 8 <= hd; d += 8) {
                        __m256 cur = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sums + d)));
                        if (ms != 1.0f) cur = _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(cur, msv), _MM_FROUND_TO_NEAREST_INT));
                        const __m256 vd = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const lc_fp16_t *)row + d)));
                        _mm_storeu_si128((__m128i *)(sums + d),
                                         _mm256_cvtps_ph(_mm256_fmadd_ps(vd, vsv, cur), _MM_FROUND_TO_NEAREST_INT));
                    }
                }
#endif
                for (; d < hd; d++) {
                    float cur = LC_H2F(sums[d]);
                    if (ms != 1.0f) cur = round_f16(cur * ms);  /* ggml_vec_scale_f16 */
                    const float vd = a->type_v == LC_TYPE_F16 ? LC_H2F(((const lc_fp16_t *)row)[d])
                                                              : round_f16(((const float *)row)[d]);
                    sums[d] = lc_fp32_to_fp16(fmaf(vd, vs, cur));  /* ggml_vec_mad_f16 */
                }
            } else {
                float *sums = acc + g * hd;
                int64_t d = 0;
#if defined(LC_AVX512)
                const __m512 msv = _mm512_set1_ps(ms), vsv = _mm512_set1_ps(vs);
                for (; d + 16 <= hd; d += 16) {
                    __m512 cur = _mm512_loadu_ps(sums + d);
                    if (ms != 1.0f) cur = _mm512_mul_ps(cur, msv);
                    _mm512_storeu_ps(sums + d, _mm512_fmadd_ps(_mm512_loadu_ps(v32 + d), vsv, cur));
                }
#elif defined(LC_AVX2)
                const __m256 msv = _mm256_set1_ps(ms), vsv = _mm256_set1_ps(vs);
                for (; d + 8 <= hd; d += 8) {
                    __m256 cur = _mm256_loadu_ps(sums + d);
                    if (ms != 1.0f) cur = _mm256_mul_ps(cur, msv);
                    _mm256_storeu_ps(sums + d, _mm256_fmadd_ps(_mm256_loadu_ps(v32 + d), vsv, cur));
                }
#endif
                for (; d < hd; d++) {
                    const float cur = ms != 1.0f ? sums[d] * ms : sums[d];  /* ggml_vec_scale_f32 */
                    sums[d] = fmaf(v32[d], vs, cur);  /* ggml_vec_mad_f32 */
                }
            }
            S[g] = fmaf(S[g], ms, vs);
        }
    }
    for (int g = 0; g < n_heads; g++) {
        float *sums = acc + g * hd;
        if (v_f16)
            for (int64_t d = 0; d < hd; d++) sums[d] = LC_H2F(acc16[g * hd + d]);
        if (a->sinks && c0 == 0) add_sink(a->sinks[h0 + g], &M[g], &S[g], sums, hd);
        if (partial) {
            partial[2 * g] = M[g];
            partial[2 * g + 1] = S[g];
            memcpy(y + g * hd, sums, (size_t)hd * sizeof(float));
            continue;
        }
        const float inv = S[g] == 0.0f ? 0.0f : 1.0f / S[g];
        for (int64_t d = 0; d < hd; d++) y[g * hd + d] = sums[d] * inv;
    }
}

/* The cells of llama.cpp's view of a cache of n_ctx cells for n_kv used ones: padded to 256, at least
 * 256. */
static int64_t view_of(int64_t n_kv, int64_t n_ctx) {
    const int64_t padded = (n_kv + 255) / 256 * 256;
    const int64_t view = padded > 256 ? padded : 256;
    return view < n_ctx ? view : n_ctx;
}

static int64_t view_cells(const attn_shape *a) { return view_of(a->n_kv, a->n_ctx); }

/* Whether one query's flash attention splits the cells among the threads (ggml's split-KV path, for
 * a view of 512 cells or more of f16 caches, or f32 read as f16), as llama.cpp's threads do */
static int splits_cells(int flash, int64_t n_tokens, int type_k, int type_v, int64_t n_kv, int64_t n_ctx) {
    const int f16_or_f32_k = type_k == LC_TYPE_F16 || type_k == LC_TYPE_F32;
    const int f16_or_f32_v = type_v == LC_TYPE_F16 || type_v == LC_TYPE_F32;
    return flash && n_tokens == 1 && f16_or_f32_k && f16_or_f32_v && view_of(n_kv, n_ctx) >= 512;
}

/* One chunk's partial results (each head's sums, then its max and sum in ms[2g], ms[2g + 1]) merged
 * into the running ones (acc, M, S) of n_heads heads, as ggml_flash_attn_ext_reduce_partials merges
 * (its C fuses each merge's first product) */
static void merge_partial(int n_heads, int64_t hd, const float *sums, const float *ms, float *acc, float *M, float *S) {
    for (int g = 0; g < n_heads; g++) {
        if (ms[2 * g + 1] == 0.0f) continue;
        const float m_new = fmaxf(M[g], ms[2 * g]);
        const float scale_old = expf(M[g] - m_new), scale_new = expf(ms[2 * g] - m_new);
        float *acc_g = acc + g * hd;
        const float *sums_g = sums + g * hd;
        for (int64_t d = 0; d < hd; d++) acc_g[d] = fmaf(acc_g[d], scale_old, sums_g[d] * scale_new);
        S[g] = fmaf(S[g], scale_old, ms[2 * g + 1] * scale_new);
        M[g] = m_new;
    }
}

/* y = the merged sums over their sum, per head */
static void normalise_merged(int n_heads, int64_t hd, const float *acc, const float *S, float *y) {
    for (int g = 0; g < n_heads; g++) {
        const float inv = S[g] != 0.0f ? 1.0f / S[g] : 1.0f;
        for (int64_t d = 0; d < hd; d++) y[g * hd + d] = acc[g * hd + d] * inv;
    }
}

/* Query heads h0 .. h0 + n_heads - 1 of KV head kvh over a view of 512 cells or more (f16 caches, or
 * f32 read as f16): ggml cuts the view into one chunk per thread (nth), runs the one-row path on each
 * without normalising, and merges the chunks in order (ggml_flash_attn_ext_reduce_partials; its C
 * fuses each merge's first product); here each chunk for the heads together. */
static void attend_flash_split(const attn_shape *a, const float *q, const char *k, const char *v, int64_t kvh,
                               const float *mask, int64_t h0, int n_heads, int nth, float *work, float *y) {
    const int64_t hd = a->head_dim, view = view_cells(a), chunk = (view + nth - 1) / nth;
    /* after attend_flash_cells' rows (lc_attention_scratch_floats): the chunk's sums, then the merged ones */
    float *part = work + FLASH_ROW_FLOATS(hd), *acc = part + n_heads * hd;
    float M[FLASH_ROW_HEADS], S[FLASH_ROW_HEADS], ms_part[2 * FLASH_ROW_HEADS];
    for (int g = 0; g < n_heads; g++) {
        M[g] = -INFINITY;
        S[g] = 0.0f;
    }
    memset(acc, 0, (size_t)(n_heads * hd) * sizeof(float));
    for (int64_t c0 = 0; c0 < view; c0 += chunk) {
        const int64_t c1 = c0 + chunk < a->n_kv ? c0 + chunk : a->n_kv;
        if (c0 >= c1) continue;  /* padding cells only: nothing visible */
        attend_flash_cells(a, q, k, v, kvh, mask, h0, n_heads, c0, c1, work, part, ms_part);
        merge_partial(n_heads, hd, part, ms_part, acc, M, S);
    }
    normalise_merged(n_heads, hd, acc, S, y);
}

/* attend_flash_split for every head of the one query with all nth threads of the pool in
 * (lc_attention_shared): the threads claim the pieces, a chunk of the cells for the heads of a KV
 * head, as they go (a chunk a thread would leave one idle where the used cells end early in the last
 * chunk), each chunk's sums, maxima and sums kept past attend_flash_cells' rows in the scratch of the
 * thread of that chunk's number; the last thread to finish merges the chunks in order for every head,
 * as attend_flash_split does on one thread: the same bits. */
static void attend_flash_split_shared(const attn_shape *a, const float *q, const char *k, const char *v,
                                      const float *mask, const lc_task *task, float *y) {
    const int64_t hd = a->head_dim, chunk = (view_cells(a) + task->nth - 1) / task->nth;
    const int64_t parts = (a->group + FLASH_ROW_HEADS - 1) / FLASH_ROW_HEADS, per_chunk = a->n_head_kv * parts;
    const int64_t pieces = task->nth * per_chunk;
    /* chunk c's results: every head's sums, then its max and sum */
    float *const results = task->scratch + FLASH_ROW_FLOATS(hd) - task->ith * task->scratch_stride;
    int64_t claim = task->ith;
    for (; claim < pieces; claim = atomic_fetch_add_explicit(task->next_chunk, 1, memory_order_acq_rel)) {
        const int64_t c = claim / per_chunk, kvh = claim % per_chunk / parts;
        const int64_t c0 = c * chunk, c1 = c0 + chunk < a->n_kv ? c0 + chunk : a->n_kv;
        if (c0 >= c1) continue;  /* padding cells only: nothing visible */
        const int64_t h = kvh * a->group + claim % parts * FLASH_ROW_HEADS, group_end = (kvh + 1) * a->group;
        float *chunk_results = results + c * task->scratch_stride;
        attend_flash_cells(a, q + h * hd, k, v, kvh, mask, h, (int)(group_end - h < FLASH_ROW_HEADS ? group_end - h : FLASH_ROW_HEADS),
                           c0, c1, task->scratch, chunk_results + h * hd, chunk_results + a->n_head * hd + 2 * h);
    }
    /* the counter starts at nth and a thread takes one past the pieces only once its last piece is
     * done: the one that takes the last number is the last to finish, and its acquire sees every
     * other thread's results (their releases on the same counter) */
    if (claim != task->nth + pieces - 1) return;
    for (int64_t h = 0; h < a->n_head;) {
        const int64_t group_end = (h / a->group + 1) * a->group;
        const int n = (int)(group_end - h < FLASH_ROW_HEADS ? group_end - h : FLASH_ROW_HEADS);
        float M[FLASH_ROW_HEADS], S[FLASH_ROW_HEADS];
        for (int g = 0; g < n; g++) {
            M[g] = -INFINITY;
            S[g] = 0.0f;
        }
        float *acc = y + h * hd;  /* merged in place, then normalised */
        memset(acc, 0, (size_t)(n * hd) * sizeof(float));
        for (int64_t c = 0; c < task->nth && c * chunk < a->n_kv; c++) {
            const float *chunk_results = results + c * task->scratch_stride;
            merge_partial(n, hd, chunk_results + h * hd, chunk_results + a->n_head * hd + 2 * h, acc, M, S);
        }
        normalise_merged(n, hd, acc, S, acc);
        h += n;
    }
}

/* ---- flash attention's tiled path ---------------------------------------------------------- */

enum { FA_ROWS = 3 };  /* query rows sharing each key and value load: their 12 sums fill 12 of AVX2's 16 registers */

#if defined(LC_AVX2)
/* eight rows of eight floats transposed in place */
static inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

/* The tile of 64 cells from c0 (nc of them in the cache) as floats: the keys transposed,
 * kt[d * 64 + c], zeros past nc, and the values, vt[c * hd + d], for the nc cells only (no row past
 * them is read); an f32 cache rounded through f16. */
static void load_tile(const attn_shape *a, const char *k, const char *v, int64_t kvh, int64_t c0, int64_t nc,
                      float *kt, float *vt) {
    const int64_t hd = a->head_dim;
    int64_t c = 0;
#if defined(LC_AVX2)
    if (a->type_k == LC_TYPE_F16 && a->type_v == LC_TYPE_F16)
        for (; c + 8 <= nc; c += 8) {  /* eight cells at a time, their keys transposed 8x8 in registers */
            const lc_fp16_t *krow[8];
            for (int i = 0; i < 8; i++) krow[i] = (const lc_fp16_t *)(k + (c0 + c + i) * a->k_row + kvh * a->k_head);
            int64_t d = 0;
            for (; d + 8 <= hd; d += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(krow[i] + d)));
                transpose8(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(kt + (d + i) * FA_TILE + c, r[i]);
            }
            for (; d < hd; d++)
                for (int i = 0; i < 8; i++) kt[d * FA_TILE + c + i] = LC_H2F(krow[i][d]);
            for (int i = 0; i < 8; i++)
                lc_fp16_to_fp32_row((const lc_fp16_t *)(v + (c0 + c + i) * a->v_row + kvh * a->v_head), vt + (c + i) * hd, hd);
        }
#endif
    for (; c < nc; c++) {
        const char *krow = k + (c0 + c) * a->k_row + kvh * a->k_head;
        const char *vrow = v + (c0 + c) * a->v_row + kvh * a->v_head;
        for (int64_t d = 0; d < hd; d++) {
            kt[d * FA_TILE + c] = a->type_k == LC_TYPE_F16 ? LC_H2F(((const lc_fp16_t *)krow)[d]) : round_f16(((const float *)krow)[d]);
            vt[c * hd + d] = a->type_v == LC_TYPE_F16 ? LC_H2F(((const lc_fp16_t *)vrow)[d]) : round_f16(((const float *)vrow)[d]);
        }
    }
    if (nc < FA_TILE)
        for (int64_t d = 0; d < hd; d++) memset(kt + d * FA_TILE + nc, 0, (size_t)(FA_TILE - nc) * sizeof(float));
}

#if defined(LC_AVX2)
/* 32 columns from j of n <= FA_ROWS rows: out[r][j + i] = the sequential fused multiply-adds over
 * the steps k in [0, steps) of m[k * m_stride + j + i] times v[r][k], from zero (from_zero) or from
 * out's values; each row's 32 sums held in registers (ggml's simd_gemm, FA_ROWS rows a load). */
static inline __attribute__((always_inline)) void fma_rows_32(const float *m, int64_t m_stride, int64_t steps,
                                                               const float *const *v, float *const *out, int64_t j,
                                                               int from_zero, const int n) {
    __m256 s[FA_ROWS][4];
    for (int r = 0; r < n; r++)
        for (int i = 0; i < 4; i++) s[r][i] = from_zero ? _mm256_setzero_ps() : _mm256_loadu_ps(out[r] + j + 8 * i);
    for (int64_t k = 0; k < steps; k++) {
        const float *mk = m + k * m_stride + j;
        for (int r = 0; r < n; r++) {
            const __m256 vk = _mm256_set1_ps(v[r][k]);
            for (int i = 0; i < 4; i++) s[r][i] = _mm256_fmadd_ps(_mm256_loadu_ps(mk + 8 * i), vk, s[r][i]);
        }
    }
    for (int r = 0; r < n; r++)
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(out[r] + j + 8 * i, s[r][i]);
}
#endif

/* The scores of n <= FA_ROWS query rows against the tile's first `width` keys (a multiple of 32):
 * kq[r * 64 + c] is the sequential fused multiply-adds over d of kt[d][c] times q[r][d], from zero
 * (ggml's simd_gemm); the columns past width are left alone. */
static inline __attribute__((always_inline)) void tile_scores(const float *kt, const float *const *q, int64_t hd,
                                                               int64_t width, const int n, float *kq) {
#if defined(LC_AVX2)
    float *const rows[FA_ROWS] = {kq, kq + FA_TILE, kq + 2 * FA_TILE};
    for (int64_t c = 0; c < width; c += 32) fma_rows_32(kt, FA_TILE, hd, q, rows, c, 1, n);
#else
    for (int r = 0; r < n; r++)
        for (int64_t c = 0; c < width; c++) {
            float s = 0.0f;
            for (int64_t d = 0; d < hd; d++) s = fmaf(kt[d * FA_TILE + c], q[r][d], s);
            kq[r * FA_TILE + c] = s;
        }
#endif
}

/* The V sums of n <= FA_ROWS rows: acc[r][d] += p[r][c] * vt[c][d] over the cells [0, nc) in
 * order, one fused multiply-add each (simd_gemm). */
static inline __attribute__((always_inline)) void tile_values(const float *vt, int64_t hd, int64_t nc,
                                                               const float *const *p, float *const *acc, const int n) {
    int64_t d = 0;
#if defined(LC_AVX2)
    for (; d + 32 <= hd; d += 32) fma_rows_32(vt, hd, nc, p, acc, d, 0, n);
    for (; d + 8 <= hd; d += 8) {
        __m256 s[FA_ROWS];
        for (int r = 0; r < n; r++) s[r] = _mm256_loadu_ps(acc[r] + d);
        for (int64_t c = 0; c < nc; c++)
            for (int r = 0; r < n; r++) s[r] = _mm256_fmadd_ps(_mm256_loadu_ps(vt + c * hd + d), _mm256_set1_ps(p[r][c]), s[r]);
        for (int r = 0; r < n; r++) _mm256_storeu_ps(acc[r] + d, s[r]);
    }
#endif
    for (; d < hd; d++)
        for (int r = 0; r < n; r++)
            for (int64_t c = 0; c < nc; c++) acc[r][d] = fmaf(vt[c * hd + d], p[r][c], acc[r][d]);
}

#if defined(LC_AVX2)
/* lc_hsum256 of four vectors at once, each sum in its order: {hsum(a), hsum(b), hsum(c), hsum(d)} */
static inline __m128 hsum256_of_4(__m256 a, __m256 b, __m256 c, __m256 d) {
    /* halves added: [a lo + a hi | b lo + b hi], [c ... | d ...] */
    const __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    const __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20), _mm256_permute2f128_ps(c, d, 0x31));
    /* then x[i] + x[i + 2]: [a0+a2, a1+a3, c0+c2, c1+c3 | b.., b.., d.., d..] */
    const __m256 w = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, 0x44), _mm256_shuffle_ps(ab, cd, 0xEE));
    /* then the two: [a, c, a, c | b, d, b, d] */
    const __m256 f = _mm256_add_ps(_mm256_shuffle_ps(w, w, 0x88), _mm256_shuffle_ps(w, w, 0xDD));
    return _mm_unpacklo_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
}
#endif

/* One row's online-softmax step over a tile: its scores kq (scaled, capped, plus bias: slope times
 * the f16 mask, -inf past the tile's cells) become the probabilities exp(s - M) with ggml's
 * vectorised exp, their sum in double 16 at a time; st = {M, S, acc[hd]} rescaled to the new max.
 * Only the first `width` columns (nc rounded up to 16) are read: the 16-column blocks past the
 * cells would add exp(-inf) = 0 to the sum and nothing to the max. */
static void softmax_step(const attn_shape *a, float *kq, const float *bias, int64_t nc, int64_t width, float *st,
                         int64_t hd) {
    float tile_max = -INFINITY;
#if defined(LC_AVX2)
    __m256 max8 = _mm256_set1_ps(-INFINITY);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t c = 0; c < width; c += 8) {
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(kq + c), _mm256_set1_ps(a->scale));
        if (a->softcap != 0.0f) {
            float capped[8];
            _mm256_storeu_ps(capped, s);
            for (int l = 0; l < 8; l++) capped[l] = tanhf(capped[l]) * a->softcap;
            s = _mm256_loadu_ps(capped);
        }
        if (c + 8 > nc) {
            const __m256 past = _mm256_castsi256_ps(  /* the lanes c + l >= nc */
                _mm256_cmpgt_epi32(_mm256_add_epi32(_mm256_set1_epi32((int)c), lane), _mm256_set1_epi32((int)nc - 1)));
            s = _mm256_blendv_ps(s, _mm256_set1_ps(-INFINITY), past);
        }
        s = _mm256_add_ps(s, _mm256_loadu_ps(bias + c));
        _mm256_storeu_ps(kq + c, s);
        max8 = _mm256_max_ps(s, max8);  /* s > max ? s : max, a NaN score skipped as below */
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, max8);
    for (int l = 0; l < 8; l++) tile_max = lanes[l] > tile_max ? lanes[l] : tile_max;
#else
    for (int64_t c = 0; c < width; c++) {
        float s = kq[c] * a->scale;
        if (a->softcap != 0.0f) s = tanhf(s) * a->softcap;
        if (c >= nc) s = -INFINITY;
        kq[c] = s + bias[c];
        tile_max = kq[c] > tile_max ? kq[c] : tile_max;
    }
#endif
    const float Mold = st[0], Mnew = fmaxf(Mold, tile_max);
    float *acc = st + 2;
    if (Mnew > Mold) {
        const float ms = expf(Mold - Mnew);
        for (int64_t d = 0; d < hd; d++) acc[d] *= ms;
        st[1] *= ms;
    }
    st[0] = Mnew;
    double sum = 0.0;  /* ggml_vec_soft_max_f32: ggml_v_expf, 16 at a time, summed in double */
#if defined(LC_AVX2)
    __m256 pairs[FA_TILE / 16];  /* each 16 values' e[0] + e[1], lc_reduce16_ordered's first step */
#endif
    for (int64_t c = 0; c < width; c += 16) {
#if defined(LC_AVX2)
        __m256 e[2];
        for (int h = 0; h < 2; h++) {
            /* a hidden cell's exp is 0 whatever its neighbours: computed as exp(0), then cleared, so
             * its -inf does not send the whole vector down lc_expf_ggml_256's scalar path */
            const __m256 x = _mm256_sub_ps(_mm256_loadu_ps(kq + c + 8 * h), _mm256_set1_ps(Mnew));
            const __m256 hidden = _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
            e[h] = _mm256_andnot_ps(hidden, lc_expf_ggml_256(_mm256_andnot_ps(hidden, x)));
            _mm256_storeu_ps(kq + c + 8 * h, e[h]);
        }
        pairs[c / 16] = _mm256_add_ps(e[0], e[1]);
#else
        float e[16];
        for (int l = 0; l < 16; l++) e[l] = kq[c + l] = lc_expf_ggml(kq[c + l] - Mnew);
        sum += (double)lc_reduce16_ordered(e);
#endif
    }
#if defined(LC_AVX2)
    if (width == FA_TILE) {
        double sums[4];
        _mm256_storeu_pd(sums, _mm256_cvtps_pd(hsum256_of_4(pairs[0], pairs[1], pairs[2], pairs[3])));
        for (int i = 0; i < 4; i++) sum += sums[i];
    } else
        for (int64_t i = 0; i < width / 16; i++) sum += (double)lc_hsum256(pairs[i]);
#endif
    st[1] = (float)((double)st[1] + sum);
}

/* A row's bias over the tile: slope times the f16 mask for its nc cells, -inf past them; whether
 * the row sees any cell. */
static int row_bias(const float *mask16, float slope, int64_t nc, float *bias) {
    int64_t c = 0;
    int seen = 0;
#if defined(LC_AVX2)
    const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
    for (; c + 8 <= nc; c += 8) {
        const __m256 b = _mm256_mul_ps(_mm256_set1_ps(slope), _mm256_loadu_ps(mask16 + c));
        _mm256_storeu_ps(bias + c, b);
        seen |= _mm256_movemask_ps(_mm256_cmp_ps(b, minus_inf, _CMP_NEQ_UQ));
    }
#endif
    for (; c < FA_TILE; c++) {
        bias[c] = c < nc ? slope * mask16[c] : -INFINITY;
        seen |= bias[c] != -INFINITY;
    }
    return seen != 0;
}

/* n <= FA_ROWS query rows through one tile: their scores, softmax steps and V sums */
static inline __attribute__((always_inline)) void attend_tile_rows(const attn_shape *a, const float *kt, const float *vt,
                                                                    int64_t nc, const float *const *q,
                                                                    const float *const *bias, float *const *st, const int n) {
    const int64_t hd = a->head_dim, width = (nc + 15) / 16 * 16;
    float kq[FA_ROWS][FA_TILE];
    const float *p[FA_ROWS];
    float *acc[FA_ROWS];
    tile_scores(kt, q, hd, (width + 31) / 32 * 32, n, kq[0]);
    for (int r = 0; r < n; r++) {
        softmax_step(a, kq[r], bias[r], nc, width, st[r], hd);
        p[r] = kq[r];
        acc[r] = st[r] + 2;
    }
    tile_values(vt, hd, nc, p, acc, n);
}

static void attend_tile(const attn_shape *a, const float *kt, const float *vt, int64_t nc, const float *const *q,
                        const float *const *bias, float *const *st, int n) {
    switch (n) {
    case 1: attend_tile_rows(a, kt, vt, nc, q, bias, st, 1); break;
    case 2: attend_tile_rows(a, kt, vt, nc, q, bias, st, 2); break;
    default: attend_tile_rows(a, kt, vt, nc, q, bias, st, FA_ROWS); break;
    }
}

/* ggml's tiled flash attention for the tokens [t0, t1) and KV head kvh (f16 or f32 caches, both
 * read as f16): per query row and 64-cell tile, the scores of the tile as sequential fused
 * multiply-adds of the f32 query with the keys, an online-softmax step with ggml's vectorised exp,
 * and the V sums as sequential fused multiply-adds over the tile's cells; FA_ROWS rows at a time
 * share each load of a key or value (each row's numbers are its own either way). With mask_zero
 * (every mask value +0 and no ALiBi) every row's bias over a tile is the same: 0, -inf past the cells. */
static void attend_flash_tiled(const attn_shape *a, const float *q_all, const char *k, const char *v, int64_t kvh,
                               const float *mask_all, int mask_zero, int64_t t0, int64_t t1, float *work,
                               float *y_all) {
    const int64_t hd = a->head_dim, G = a->group, rows = (t1 - t0) * G;
    float *kt = work;                    /* [hd][64]: the tile's keys, transposed */
    float *vt = kt + hd * FA_TILE;       /* [64][hd]: the tile's values */
    float *state = vt + hd * FA_TILE;    /* per row: M, S, acc[hd] */
    for (int64_t r = 0; r < rows; r++) {
        state[r * (hd + 2)] = -INFINITY;
        state[r * (hd + 2) + 1] = 0.0f;
        memset(state + r * (hd + 2) + 2, 0, (size_t)hd * sizeof(float));
    }
    for (int64_t c0 = 0; c0 < a->n_kv; c0 += FA_TILE) {
        const int64_t nc = a->n_kv - c0 < FA_TILE ? a->n_kv - c0 : FA_TILE;
        int any = mask_zero;
        for (int64_t t = t0; t < t1 && !any; t++)
            for (int64_t c = 0; c < nc; c++)
                if (mask_all[t * a->n_ctx + c0 + c] != -INFINITY) { any = 1; break; }
        if (!any) continue;
        load_tile(a, k, v, kvh, c0, nc, kt, vt);
        const float *q[FA_ROWS];
        float *st[FA_ROWS];
        float bias[FA_ROWS][FA_TILE];
        const float *bias_of[FA_ROWS];
        int n = 0;  /* rows gathered for the next attend_tile */
        if (mask_zero) {
            static const float zeros[FA_TILE];
            row_bias(zeros, 1.0f, nc, bias[0]);
            for (int r = 0; r < FA_ROWS; r++) bias_of[r] = bias[0];
            for (int64_t row = 0; row < rows; row++) {
                q[n] = q_all + ((t0 + row / G) * a->n_head + kvh * G + row % G) * hd;
                st[n] = state + row * (hd + 2);
                if (++n == FA_ROWS) {
                    attend_tile(a, kt, vt, nc, q, bias_of, st, n);
                    n = 0;
                }
            }
            if (n) attend_tile(a, kt, vt, nc, q, bias_of, st, n);
            continue;
        }
        for (int r = 0; r < FA_ROWS; r++) bias_of[r] = bias[r];
        for (int64_t t = t0; t < t1; t++) {
            const float *mask = mask_all + t * a->n_ctx + c0;
            float mask16[FA_TILE];  /* the tile's mask, rounded to f16 once for the group's heads */
            int64_t m = 0;
#if defined(LC_AVX2)
            for (; m + 8 <= nc; m += 8)
                _mm256_storeu_ps(mask16 + m, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(mask + m), _MM_FROUND_TO_NEAREST_INT)));
#endif
            for (; m < nc; m++) mask16[m] = round_f16(mask[m]);
            for (int64_t g = 0; g < G; g++) {
                const int64_t h = kvh * G + g;
                const float slope = head_slope(a, (uint32_t)h);
                if (!row_bias(mask16, slope, nc, bias[n])) continue;
                q[n] = q_all + (t * a->n_head + h) * hd;
                st[n] = state + ((t - t0) * G + g) * (hd + 2);
                if (++n == FA_ROWS) {
                    attend_tile(a, kt, vt, nc, q, bias_of, st, n);
                    n = 0;
                }
            }
        }
        if (n) attend_tile(a, kt, vt, nc, q, bias_of, st, n);
    }
    for (int64_t t = t0; t < t1; t++)
        for (int64_t g = 0; g < G; g++) {
            float *st = state + ((t - t0) * G + g) * (hd + 2);
            if (a->sinks) add_sink(a->sinks[kvh * G + g], &st[0], &st[1], st + 2, hd);
            const float inv = st[1] == 0.0f ? 0.0f : 1.0f / st[1];
            float *y = y_all + (t * a->n_head + kvh * G + g) * hd;
            for (int64_t d = 0; d < hd; d++) y[d] = st[2 + d] * inv;
        }
}

/* Whether the first n_kv values of each of the n rows (stride apart) are all +0 (an encoder's mask) */
static int all_positive_zero(const float *mask, int64_t n, int64_t stride, int64_t n_kv) {
    for (int64_t t = 0; t < n; t++) {
        const uint32_t *row = (const uint32_t *)(mask + t * stride);
        uint32_t bits = 0;
        for (int64_t j = 0; j < n_kv; j++) bits |= row[j];
        if (bits) return 0;
    }
    return 1;
}

/* Whether two mask rows let their queries see a cell in common (ops.c's has_sequence_neighbour). */
static int common_cell(const float *x, const float *z, int32_t n_kv) {
    for (int32_t j = 0; j < n_kv; j++)
        if (x[j] != -INFINITY && z[j] != -INFINITY) return 1;
    return 0;
}

/* Query heads h .. h + n - 1 of token t (n > 1 with flash attention only: heads of one KV head) by
 * the one-row paths: zeros for a row that sees no cell (!visible), flash attention's split of the
 * cells (split), its one-row path, or the products without flash attention. */
static void attend_heads(const attn_shape *a, const float *q_all, const char *k, const char *v, const float *mask,
                         int64_t t, int64_t h, int n, int visible, int split, int batched, const lc_task *task,
                         float *y_all) {
    const int64_t kvh = h / a->group;
    const float *q = q_all + (t * a->n_head + h) * a->head_dim;
    float *y = y_all + (t * a->n_head + h) * a->head_dim;
    if (!visible) {
        memset(y, 0, (size_t)(n * a->head_dim) * sizeof(float));
    } else if (a->flash && split) {
        attend_flash_split(a, q, k, v, kvh, mask, h, n, task->nth, task->scratch, y);
    } else if (a->flash) {
        attend_flash_cells(a, q, k, v, kvh, mask, h, n, 0, a->n_kv, task->scratch, y, NULL);
    } else {
        attend_products(a, q, k, v, kvh, mask, head_slope(a, (uint32_t)h), a->sinks ? a->sinks + h : NULL, batched,
                        task->scratch, y);
    }
}

void lc_op_attention_ext(const lc_node *nd, const lc_task *task) {
    attn_shape a;
    a.head_dim = nd->ne[0];
    a.n_head = nd->ne[1];
    a.n_tokens = nd->ne[2];
    a.n_ctx = nd->ne[3];
    a.n_head_kv = nd->i[0];
    a.group = a.n_head / a.n_head_kv;
    a.type_k = nd->type;
    a.type_v = nd->i[1];
    a.flash = nd->i[2];
    a.exact_rows = nd->i[3];
    a.k_row = row_bytes(a.type_k, a.n_head_kv * a.head_dim);
    a.v_row = row_bytes(a.type_v, a.n_head_kv * a.head_dim);
    a.k_head = row_bytes(a.type_k, a.head_dim);
    a.v_head = row_bytes(a.type_v, a.head_dim);
    a.scale = nd->f[0];
    a.softcap = nd->f[1];
    a.max_bias = nd->f[2];
    a.cap_scale = nd->f[3] != 0.0f ? nd->f[3] : 1.0f / a.softcap;
    a.sinks = nd->src[4];
    a.n_head_log2 = 1u << (uint32_t)floor(log2((double)a.n_head));
    a.m0 = powf(2.0f, -a.max_bias / a.n_head_log2);
    a.m1 = powf(2.0f, -(a.max_bias / 2.0f) / a.n_head_log2);
    a.n_kv = task->n_kv;
    if (a.flash && a.softcap != 0.0f) a.scale /= a.softcap;
    const float *q_all = nd->src[0];
    const char *k = nd->src[1], *v = nd->src[2];
    const float *mask_all = nd->src[3];
    float *y_all = nd->dst;
    const int f16_or_f32_k = a.type_k == LC_TYPE_F16 || a.type_k == LC_TYPE_F32;
    const int f16_or_f32_v = a.type_v == LC_TYPE_F16 || a.type_v == LC_TYPE_F32;
    if (a.flash && a.n_tokens >= FA_TILE && f16_or_f32_k && f16_or_f32_v) {
        /* ggml's tiled path in chunks of tokens (every row's result is the same however they are
         * cut): of FA_CHUNK_ROWS rows or 64 tokens, whichever is more, cut evenly, or of down to 64
         * tokens where fewer would leave threads without two chunks each */
        const int64_t most_tokens = FA_CHUNK_ROWS / a.group > FA_TILE ? FA_CHUNK_ROWS / a.group : FA_TILE;
        const int64_t fewest = (a.n_tokens + most_tokens - 1) / most_tokens, most = (a.n_tokens + FA_TILE - 1) / FA_TILE;
        const int64_t for_threads = (2 * task->nth + a.n_head_kv - 1) / a.n_head_kv;
        const int64_t n_chunks = fewest > for_threads ? fewest : (for_threads < most ? for_threads : most);
        const int64_t chunk_tokens = (a.n_tokens + n_chunks - 1) / n_chunks;
        const int mask_zero = a.max_bias <= 0.0f && all_positive_zero(mask_all, a.n_tokens, a.n_ctx, a.n_kv);
        for (int64_t c = task->ith; c < n_chunks * a.n_head_kv; c = atomic_fetch_add(task->next_chunk, 1)) {
            const int64_t t0 = (c / a.n_head_kv) * chunk_tokens, kvh = c % a.n_head_kv;
            const int64_t t1 = t0 + chunk_tokens < a.n_tokens ? t0 + chunk_tokens : a.n_tokens;
            attend_flash_tiled(&a, q_all, k, v, kvh, mask_all, mask_zero, t0, t1, task->scratch, y_all);
        }
        return;
    }
    /* One query with every thread in (lc_attention_shared): over a view of 512 cells or more of f16
     * caches with flash attention llama.cpp splits the cells among its threads (ggml's split-KV path,
     * the same count as this pool's), and the threads claim pieces of that split; else they claim
     * parts of the query heads, heads of a KV head together with flash attention (its one-row path),
     * one without. */
    const int split = splits_cells(a.flash, a.n_tokens, a.type_k, a.type_v, a.n_kv, a.n_ctx);
    if (lc_attention_shared(nd, task)) {
        int visible = 0;
        for (int32_t j = 0; j < a.n_kv && !visible; j++) visible = mask_all[j] != -INFINITY;
        if (!visible) {  /* a padding row */
            if (task->ith == 0) memset(y_all, 0, (size_t)(a.n_head * a.head_dim) * sizeof(float));
            return;
        }
        if (split) {
            attend_flash_split_shared(&a, q_all, k, v, mask_all, task, y_all);
            return;
        }
        /* with flash attention a KV head's heads in as many parts as give every thread two */
        const int64_t most = lc_shared_heads_step(a.group, a.n_head_kv, task->nth);
        const int64_t step = a.flash ? (most < FLASH_ROW_HEADS ? most : FLASH_ROW_HEADS) : 1;
        const int64_t parts = (a.group + step - 1) / step;
        for (int64_t part = task->ith; part < a.n_head_kv * parts; part = atomic_fetch_add(task->next_chunk, 1)) {
            const int64_t kvh = part / parts, h = kvh * a.group + part % parts * step, group_end = (kvh + 1) * a.group;
            attend_heads(&a, q_all, k, v, mask_all, 0, h, (int)(group_end - h < step ? group_end - h : step), 1, 0, 0,
                         task, y_all);
        }
        return;
    }
    for (int64_t t = task->ith; t < a.n_tokens; t = atomic_fetch_add(task->next_chunk, 1)) {
        const float *mask = mask_all + t * a.n_ctx;
        const int batched = (t > 0 && common_cell(mask - a.n_ctx, mask, a.n_kv)) ||
                            (t + 1 < a.n_tokens && common_cell(mask + a.n_ctx, mask, a.n_kv));
        int visible = 0;
        for (int32_t j = 0; j < a.n_kv && !visible; j++) visible = mask[j] != -INFINITY;
        for (int64_t h = 0; h < a.n_head;) {
            const int64_t group_end = (h / a.group + 1) * a.group;
            /* flash attention's one-row path takes the heads of a KV head together */
            const int n = a.flash ? (int)(group_end - h < FLASH_ROW_HEADS ? group_end - h : FLASH_ROW_HEADS) : 1;
            attend_heads(&a, q_all, k, v, mask, t, h, n, visible, split, batched, task, y_all);
            h += n;
        }
    }
}
