"""Gemma (1): Llama's pre-norm block with a GeGLU feed-forward network, token embeddings scaled by
sqrt(n_embd), queries scaled by 1/sqrt(head_dim) before attention and the output tied to the
embedding. The GGUF converter stores the RMSNorm weights already offset by one (Gemma's
``x * (1 + w)``), so the plain RMSNorm applies."""

from __future__ import annotations

import math

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    attend,
    ffn_geglu,
    output_head,
    qkv_projections,
    rms_norm,
    select_outputs,
    split_heads,
    token_embedding,
)


@register
class Gemma(Architecture):
    names = ("gemma",)
    rope_neox = True
    attn_scale = 1.0  # the queries are scaled instead, as llama.cpp does

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = g.scale(token_embedding(g, self, inp), math.sqrt(self.hp.n_embd))
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, rms_norm(g, self, x, f"blk.{il}.attn_norm.weight"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            x = g.add(x, ffn_geglu(g, self, rms_norm(g, self, x, f"blk.{il}.ffn_norm.weight"), il))
        return output_head(g, self, x)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        # scaling before the rotation equals scaling after it: rope is linear
        q = g.scale(split_heads(g, q, self.hp.n_head), 1.0 / math.sqrt(self.hp.head_dim))
        return attend(g, self, q, split_heads(g, k, self.hp.n_head_kv), v, inp, il)
