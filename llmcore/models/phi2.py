"""Phi-2 (Microsoft): parallel blocks, where attention and an ungated GELU feed-forward network
both read one LayerNorm of the input and are added to it together; biases on every projection,
neox-style rotary embeddings on part of each head, queries scaled before attention, and a biased
output projection."""

from __future__ import annotations

import math

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    attend,
    ffn_gelu,
    layer_norm,
    output_head_layer_norm,
    qkv_projections,
    select_outputs,
    split_heads,
    token_embedding,
)


@register
class Phi2(Architecture):
    names = ("phi2",)
    rope_neox = True
    attn_scale = 1.0  # the queries are scaled instead, as llama.cpp does

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            normed = layer_norm(g, self, x, f"blk.{il}.attn_norm")
            h = self.attention(g, normed, inp, il)
            if il == self.hp.n_layer - 1:
                x, h, normed = (select_outputs(g, inp, t) for t in (x, h, normed))
            x = g.add(g.add(h, ffn_gelu(g, self, normed, il)), x)
            x = self.layer_output(g, x, il)
        return output_head_layer_norm(g, self, x)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        # scaling before the rotation equals scaling after it: rope is linear
        q = g.scale(split_heads(g, q, self.hp.n_head), 1.0 / math.sqrt(self.hp.head_dim))
        return attend(g, self, q, split_heads(g, k, self.hp.n_head_kv), v, inp, il)
