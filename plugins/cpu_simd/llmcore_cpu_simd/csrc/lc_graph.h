/* The graph executor's program format and entry points (llmcore_cpu_simd/library.py declares the
 * block between the cffi-cdef markers to cffi as it is: no preprocessor lines inside it).
 *
 * A program is a flat array of nodes run in order; every buffer is allocated before the first
 * run, so a run does no allocation. The threads wait for each other only after the nodes marked
 * barrier_after: the lowering leaves it off where the nodes up to the next barrier neither read nor
 * overwrite what another of them writes, or run one after the other on thread 0 (the last node
 * always has it).
 * Sizes per op (all activations f32, row-major, contiguous):
 *   GET_ROWS   src0 table (type, row_bytes), src1 i32 ids[ne1]; dst [ne1, ne0]
 *   QUANTIZE   src0 f32 [ne1, ne0]; dst ne1 rows of row_bytes in activation format `type`
 *   MUL_MAT    src0 weight [ne2, ne0] (type, row_bytes), src1 activations [ne1] rows of ne3 bytes
 *              (already in the weight's vec_dot format); dst [ne1, ne2]
 *   ADD, MUL, DIV  src0 [ne0], src1 [ne1] repeated over src0 (ne0 % ne1 == 0), or when i[0] > 0 one
 *              src1 value per row of i[0] values of src0; dst [ne0]
 *   SCALE      src0 [ne0] * f[0]
 *   CLAMP      src0 [ne0] clipped to [f[0], f[1]]
 *   RMS_NORM, NORM  src0 [ne1, ne0], eps f[0]
 *   ROPE       src0 [ne2, ne1, ne0] (tokens, heads, head_dim), src1 i32 positions[ne2],
 *              src2 NULL or f32 frequency factors [n_rot / 2] dividing each pair's angle;
 *              i[0] n_rot, i[1] neox; f: freq_base, freq_scale, ext_factor, attn_factor, corr_low, corr_high
 *   SILU, GELU, GELU_QUICK, SIGMOID  src0 [ne0];  SWIGLU, GEGLU src0 gate, src1 up [ne0]; SWIGLU with i[0] = 1 is
 *              gpt-oss's clamped form (ggml_swiglu_oai), f[0] alpha, f[1] limit
 *   KV_STORE   src0 f32 [ne1, ne0], src1 i32 cells[ne1]; dst the cache (type: F32, F16, BF16 or a block
 *              type) of rows of row_bytes, [*, ne0] values each
 *   HADAMARD   src0 f32 [ne0] rotated in chunks of i[0] (a power of two) by the Walsh-Hadamard matrix
 *   ATTENTION  src0 q [ne2, ne1, ne0] (tokens, heads, head_dim), src1 k cache (type), src2 v cache
 *              (type i[1]), src3 mask [ne2, ne3]; i[0] n_head_kv; i[2] flash attention; f[0] scale;
 *              f[1] soft-cap; f[2] ALiBi's max bias (0: none; the mask, times each head's slope, then
 *              holds -distance); f[3] the scores' factor inside the cap's tanh (0: 1 / soft-cap); i[3] no
 *              KV cache (an encoder's rows hold exactly n_kv cells, not a view padded to 256); src4
 *              NULL or f32 sinks[ne1], a logit per head joining the softmax; reads the first n_kv cells
 * Mixture of experts (moe.c):
 *   SOFTMAX, SUM_ROWS  src0 [ne1, ne0]; dst [ne1, ne0] / [ne1]
 *   TOP_K      src0 f32 [ne1, ne0]; dst i32 [ne1, ne2]: the ne2 largest, largest first, ties in std::sort's order
 *   GATHER     src0 f32 [ne1, ne0], src1 i32 ids [ne1, ne2]; dst [ne1, ne2]
 *   WEIGHTED_SUM  src0 [ne2, ne1, ne0], src1 weights [ne2, ne1]; dst [ne2, ne0]
 *   MOE_MAP    src0 i32 ids [ne0 tokens, ne1 slots], ne2 experts; dst the routing map (lc_moe.h)
 *   MOE_GATHER src0 activation rows of ne0 bytes [tokens, ne1 slots (1 or k)], src1 map; dst the rows
 *              each (token, slot) reads, grouped by expert (ne3 of them)
 *   MUL_MAT_ID src0 weight [ne1 experts][ne2 rows][ne0 cols] (type, row_bytes), src1 MOE_GATHER's rows
 *              of ne3 bytes, src2 map; dst [ne3 bytes apart: one f32 row of ne2 per routed (token, slot)]
 *              grouped by expert; in place when i[1] > 0 (a batch too short for the batched kernels):
 *              src1 the activations [tokens, i[2] slots] MOE_GATHER would read, dst [tokens, i[1] slots, ne2]
 *              as MOE_SCATTER would write it
 *   MOE_SCATTER src0 MUL_MAT_ID's rows of ne0, src1 map; dst [tokens, slots, ne0]
 * Recurrent state (ssm.c; each op updates its state rows in place):
 *   SSM_CONV   src0 state [slots][ne0 * (ne2 - 1)], src1 x [ne1][ne0], src2 weight [ne0][ne2], src3 i32 slots[ne1]
 *   SSM_SCAN   src0 state, src1 x [ne2][ne1][ne0], src2 dt, src3 A, src4 B, src5 C, src6 D, src7 slots; ne3
 *              d_state, i[0] groups, i[1] one decay per head (Mamba-2); see ssm.c
 * RWKV (rwkv.c; the token shift and wkv ops update their state rows in place):
 *   EXP        src0 [ne0];  L2_NORM src0 [ne1, ne0], eps f[0]
 *   TOKEN_SHIFT src0 state [slots][ne0], src1 x [ne1][ne0], src2 i32 slots[ne1]
 *   RWKV_WKV6  src0 state, src1 k, src2 v, src3 r [ne2][ne1][ne0], src4 u [ne1][ne0], src5 w, src6 slots
 *   RWKV_WKV7  src0 state, src1 r, src2 w, src3 k, src4 v, src5 a, src6 b [ne2][ne1][ne0], src7 slots
 *   GATED_LINEAR_ATTN  src0 state, src1 k, src2 v, src3 q, src4 g [ne2][ne1][ne0], src5 slots; f[0] scale
 *   MASK_GROUPS src0 f32 [ne1, ne0], src1 i32 group ids [ne1, ne2]; dst src0 with every group of ne3
 *              values not listed in its row's ids set to -inf
 *   COPY_COLS  ne0 rows: dst[r * ne2 + i[1] + c] = src0[r * ne1 + i[0] + c] for c < ne3 (a slice of
 *              each row, or one part of a concatenation)
 */
#ifndef LC_GRAPH_H
#define LC_GRAPH_H

#include <stdatomic.h>
#include <stdint.h>

/* cffi-cdef: begin */
enum lc_op {
    LC_OP_GET_ROWS, LC_OP_QUANTIZE, LC_OP_MUL_MAT, LC_OP_ADD, LC_OP_MUL, LC_OP_SCALE,
    LC_OP_RMS_NORM, LC_OP_NORM, LC_OP_ROPE, LC_OP_SILU, LC_OP_GELU, LC_OP_SWIGLU, LC_OP_GEGLU,
    LC_OP_KV_STORE, LC_OP_ATTENTION, LC_OP_TANH, LC_OP_CLAMP, LC_OP_HADAMARD,
    LC_OP_DIV, LC_OP_SIGMOID, LC_OP_SOFTMAX, LC_OP_SUM_ROWS, LC_OP_TOP_K, LC_OP_GATHER, LC_OP_WEIGHTED_SUM,
    LC_OP_MOE_MAP, LC_OP_MOE_GATHER, LC_OP_MUL_MAT_ID, LC_OP_MOE_SCATTER, LC_OP_MASK_GROUPS,
    LC_OP_COPY_COLS, LC_OP_SSM_CONV, LC_OP_SSM_SCAN,
    LC_OP_EXP, LC_OP_L2_NORM, LC_OP_TOKEN_SHIFT, LC_OP_RWKV_WKV6, LC_OP_RWKV_WKV7,
    LC_OP_GATED_LINEAR_ATTN, LC_OP_GELU_QUICK, LC_OP_COUNT
};

/* Who runs a node. A tiny node (one token's norm, rope, routing) runs on one thread alone (thread 0,
 * or the last to reach the barrier before a phase of such nodes only), so a chain of them needs no
 * barrier between its nodes: LC_RUN_ALONE gives the kernel a one-thread task; LC_RUN_FIRST_CLAIM
 * the pool's task as thread 0 sees it, for a node whose whole work is thread 0's first claim (a
 * product of one chunk of rows). */
enum lc_run { LC_RUN_ALL, LC_RUN_ALONE, LC_RUN_FIRST_CLAIM };

/* the most nodes run by all threads between two barriers (each claims chunks from its own counter);
 * a MUL_MAT's threads claim chunks of at least LC_MM_MIN_CHUNK_ROWS output rows, so a product of no
 * more rows is one chunk: thread 0's first claim */
enum { LC_MAX_SHARED_NODES = 8, LC_MM_MIN_CHUNK_ROWS = 16 };
/* how many chunks per thread a MUL_MAT's rows are cut into, for one token and for a batch (4 and 4
 * until the plugin sets what it timed on this CPU); rows are independent: results never change */
void lc_set_mul_mat_chunks(int one_token, int batch);

typedef struct {
    int32_t op;
    int32_t type;
    const void *src[8];
    void *dst;
    int64_t ne[4];
    int64_t row_bytes;
    float f[8];
    int32_t i[4];
    int32_t run;            /* enum lc_run */
    int32_t barrier_after;  /* the threads wait for each other after this node */
} lc_node;

typedef struct lc_pool lc_pool;

typedef struct {
    lc_node *nodes;
    int32_t n_nodes;
    lc_pool *pool;
    float *scratch;               /* n_threads * scratch_floats: per-thread work space */
    int64_t scratch_floats;
} lc_program;

lc_pool *lc_pool_new(int n_threads);
void lc_pool_free(lc_pool *pool);
int lc_pool_threads(const lc_pool *pool);
/* run every node of the program on the pool's threads; returns 0, and from then on no thread reads the
 * program (a program of no nodes wakes none) */
int lc_graph_run(const lc_program *program, int32_t n_kv);

/* LLMCORE_PROFILE: per-op-type seconds and counts accumulated by lc_graph_run (thread 0's time in
 * each node), its runs and barriers (runs[0], runs[1]), and thread 0's seconds waiting at them:
 * barrier_wait[0] for the others' shares of the work (the threads' imbalance, time the OS gave
 * another thread), barrier_wait[1] while another thread ran a serial phase */
void lc_profile_get(double *seconds, int64_t *counts, int64_t *runs, double *barrier_wait);
void lc_profile_reset(void);
const char *lc_isa(void);
/* cffi-cdef: end */

/* what a thread knows while it runs its share of one node */
typedef struct {
    int ith, nth;
    int32_t n_kv;
    float *scratch;          /* this thread's work space */
    int64_t scratch_stride;  /* floats from one thread's work space to the next's */
    atomic_int *next_chunk;  /* the node's own: the next chunk to claim; starts at nth for every node */
} lc_task;

/* thread ith's half-open share [*begin, *end) of n items */
static inline void share(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    const int64_t per = (n + nth - 1) / nth;
    *begin = per * ith < n ? per * ith : n;
    *end = *begin + per < n ? *begin + per : n;
}

/* thread task->ith's share of a node */
typedef void (*lc_op_fn)(const lc_node *node, const lc_task *task);
extern const lc_op_fn lc_ops[LC_OP_COUNT];

/* A thread that reaches a barrier before a one-token MUL_MAT asks for the first
 * LC_PREFETCH_FIRST_CHUNK_BYTES of its first chunk of the product's weights (they do not wait for the
 * activations) while it waits for the others, or as the last one lets them on: the product starts
 * with its weights on the way. Zen 4, 2 threads, decode (medians of 7-9 interleaved runs): SmolLM2
 * Q4_1 234 -> 275 t/s, dense Q4_K_M 552 -> 608; 2 KB gained less, 6 KB the same, 8 KB lost (239 and
 * 510). A chain of products alone (the tuning's) shows nothing: the gain is where one thread waits
 * while the other runs a phase's serial nodes (norms, rope, and then one token's attention). Nothing for
 * other nodes. */
enum { LC_PREFETCH_FIRST_CHUNK_BYTES = 4096 };
void lc_prefetch_first_chunk(const lc_node *node, int ith, int nth);

#endif
