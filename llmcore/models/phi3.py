"""Phi-3 (Microsoft): Llama's pre-norm block with neox-style rotary embeddings, queries scaled by
1/sqrt(head_dim) before attention (llama.cpp scales after the rotation: the same, rope being
linear), QKV and gate-up projections that may each be one fused matrix (split by the
shared layers), and LongRoPE: per-pair frequency divisors, ``rope_factors_long`` when the context
exceeds the original training context and ``rope_factors_short`` otherwise."""

from __future__ import annotations

import math

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import attend, qkv_projections, split_heads
from llmcore.models.llama import Llama


@register
class Phi3(Llama):
    names = ("phi3",)
    rope_neox = True
    attn_scale = 1.0  # the queries are scaled instead, as llama.cpp does

    def rope_factors(self, g: GraphBuilder) -> Node | None:
        name = "rope_factors_long" if self.n_ctx > self.rope.n_ctx_orig else "rope_factors_short"
        return self.w(g, f"{name}.weight") if self.has(f"{name}.weight") else super().rope_factors(g)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        q = g.scale(split_heads(g, q, self.hp.n_head), 1.0 / math.sqrt(self.hp.head_dim))
        return attend(g, self, q, split_heads(g, k, self.hp.n_head_kv), v, inp, il)
