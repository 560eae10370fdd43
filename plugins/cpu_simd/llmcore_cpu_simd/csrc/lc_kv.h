/* The KV cache's other types and flash attention (kv.c): cache rows written as ggml's CPU backend
 * writes them, llama.cpp's Walsh-Hadamard rotation, and attention over caches other than f16/f16 or
 * with flash attention, in ggml's CPU order. ops.c dispatches here. */
#ifndef LC_KV_H
#define LC_KV_H

#include <math.h>

#include "lc_graph.h"
#include "lc_types.h"

/* the widest head ATTENTION takes (backend.py's MAX_HEAD_DIM): DeepSeek's latent rows are 576 */
enum { LC_MAX_HEAD_DIM = 1024 };

/* ggml block types a cache may hold beyond the lc_types.h ids */
#define LC_TYPE_IQ4_NL 20

/* one cache row of n values (n % 32 == 0 for the block types) as ggml's from_float writes it */
void lc_kv_store_row(int type, const float *x, void *dst, int64_t n);
/* bytes of one cache row of n values */
int64_t lc_kv_row_bytes(int type, int64_t n);

/* cffi-cdef: begin */
/* floats of a thread's scratch that ATTENTION needs (lowering.py sizes the scratch by it) for n_head
 * heads of head_dim, group query heads per KV head and n_ctx mask columns, with flash attention or not */
size_t lc_attention_scratch_floats(int64_t head_dim, int64_t n_head, int64_t group, int64_t n_ctx, int flash);
/* cffi-cdef: end */

/* Whether the threads of an ATTENTION node's task share one token's attention (the lowering runs
 * every ATTENTION on all of them): over a view of 512 cells or more of f16 caches with flash
 * attention in pieces of ggml's split of the cells among its threads (a chunk for one KV head's
 * heads), else in parts of the query heads */
static inline int lc_attention_shared(const lc_node *nd, const lc_task *task) { return task->nth > 1 && nd->ne[2] == 1; }

/* The query heads of one KV head ops.c's attention without flash attention takes together, each
 * cell's rows read once for them (their 64 lane sums each in the scratch) */
enum { LC_ATTEND_HEADS_MAX = 8 };

/* The query heads a thread claims at a time when it shares one token's heads: a KV head's group in
 * as many parts as give each of nth threads two claims */
static inline int64_t lc_shared_heads_step(int64_t group, int64_t n_head_kv, int nth) {
    const int64_t parts_wanted = (2 * nth + n_head_kv - 1) / n_head_kv;
    return (group + parts_wanted - 1) / parts_wanted;
}

/* head h's ALiBi slope as ggml_soft_max_ext computes it (1 without ALiBi): n_head_log2, m0 and m1
 * from the heads' count and max_bias as ggml derives them */
static inline float lc_alibi_slope(uint32_t h, float max_bias, uint32_t n_head_log2, float m0, float m1) {
    if (max_bias <= 0.0f) return 1.0f;
    return h < n_head_log2 ? powf(m0, h + 1) : powf(m1, 2 * (h - n_head_log2) + 1);
}

/* the ops */
void lc_op_hadamard(const lc_node *nd, const lc_task *task);
/* ATTENTION with i[1] the V cache's type and i[2] flash attention, whatever the types */
void lc_op_attention_ext(const lc_node *nd, const lc_task *task);

/* from ops.c: ggml_vec_dot_f16's order (64 lanes) and tinyBLAS's (16 lanes) of a K row (f16 or f32)
 * with a query row; the per-lane V sums of the attention without flash attention */
/* quants.c: the dots of a K row (f16 or f32) with a float query: ggml_vec_dot_f16/f32, tinyBLAS */
float lc_attn_dot_kq(const void *k, int type, const float *q, int64_t n);
float lc_attn_dot_kq_tinyblas(const void *k, int type, const float *q, int64_t n);
void lc_attn_accumulate_v(float *lane, float p, const void *v, int type, int64_t n);

#endif
