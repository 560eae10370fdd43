/* Mixture-of-experts ops (moe.c) and the dense matmul pieces they reuse (ops.c).
 *
 * The routing map MOE_MAP writes (int32): counts[n_expert], offsets[n_expert + 1], then for each
 * expert in turn its routed (token, slot) pairs, token-major as ggml's mul_mat_id groups them. An
 * expert's rows sit at offsets[e] .. offsets[e + 1] in the gathered activations and in the
 * products, so each expert is one dense matmul over its tokens. */
#ifndef LC_MOE_H
#define LC_MOE_H

#include "lc_graph.h"

/* a MUL_MAT node's i[0]: the routed product of one expert, in ggml's mul_mat_id orders */
enum { LC_MM_ROUTED = 1 };

/* An expert's Q4_K rows meet fewer routed tokens than this by lc_gemv_q4_K, each token on its own,
 * and this many or more by the packed GEMM (measured with 2048 rows of 1024: packing them costs
 * about four tokens' GEMV, each further packed token a third of one). */
enum { LC_ROUTED_Q4_K_PACKED_MIN_TOKENS = 6 };

static inline int64_t lc_moe_map_ints(int64_t n_expert, int64_t n_routed) { return 2 * n_expert + 1 + 2 * n_routed; }

/* ops.c: output rows [r0, r1) of a MUL_MAT node for all its tokens (r0 a multiple of 16), plus
 * bias[r] where bias is not NULL (a MUL_MAT node's src[2]: the bias ADD fused into it) */
void lc_mul_mat_rows(const lc_node *nd, int64_t r0, int64_t r1, const float *bias, void *scratch);

void lc_op_softmax(const lc_node *nd, const lc_task *task);
void lc_op_sum_rows(const lc_node *nd, const lc_task *task);
void lc_op_top_k(const lc_node *nd, const lc_task *task);
void lc_op_gather(const lc_node *nd, const lc_task *task);
void lc_op_weighted_sum(const lc_node *nd, const lc_task *task);
void lc_op_moe_map(const lc_node *nd, const lc_task *task);
void lc_op_moe_gather(const lc_node *nd, const lc_task *task);
void lc_op_mul_mat_id(const lc_node *nd, const lc_task *task);
void lc_op_moe_scatter(const lc_node *nd, const lc_task *task);
void lc_op_mask_groups(const lc_node *nd, const lc_task *task);

#endif
