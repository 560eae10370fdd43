/* Ops of CLIP vision encoders (clip.c): the quick GELU of their FFNs, in ggml's CPU order. */
#ifndef LC_CLIP_H
#define LC_CLIP_H

#include "lc_graph.h"

void lc_op_gelu_quick(const lc_node *nd, const lc_task *task);

#endif
