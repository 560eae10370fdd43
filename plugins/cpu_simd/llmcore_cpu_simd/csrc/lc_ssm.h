/* Mamba's recurrent ops (ssm.c): the causal conv1d and the selective scan over each token's
 * sequence state, in ggml's CPU orders (ggml_compute_forward_ssm_conv / _ssm_scan). */
#ifndef LC_SSM_H
#define LC_SSM_H

#include "lc_graph.h"

void lc_op_ssm_conv(const lc_node *nd, const lc_task *task);
void lc_op_ssm_scan(const lc_node *nd, const lc_task *task);

#endif
