/* RWKV's ops (rwkv.c): expf, the L2 norm of rows, the token shift, the wkv recurrences of RWKV-6
 * and RWKV-7 and gated linear attention over each token's sequence state, in ggml's CPU orders. */
#ifndef LC_RWKV_H
#define LC_RWKV_H

#include "lc_graph.h"

void lc_op_exp(const lc_node *nd, const lc_task *task);
void lc_op_l2_norm(const lc_node *nd, const lc_task *task);
void lc_op_token_shift(const lc_node *nd, const lc_task *task);
void lc_op_rwkv_wkv6(const lc_node *nd, const lc_task *task);
void lc_op_rwkv_wkv7(const lc_node *nd, const lc_task *task);
void lc_op_gated_linear_attn(const lc_node *nd, const lc_task *task);

#endif
