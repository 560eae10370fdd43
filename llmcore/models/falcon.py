"""Falcon (TII): parallel blocks, where attention and an ungated GELU feed-forward network read
LayerNorms (with biases) of the same input and are added to it together, neox-style rotary
embeddings, a fused QKV projection, and multi-query attention (Falcon-7B); Falcon-40B gives
attention its own LayerNorm (``attn_norm_2``)."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    ffn_gelu,
    layer_norm,
    output_head_layer_norm,
    select_outputs,
    self_attention,
    token_embedding,
)


@register
class Falcon(Architecture):
    names = ("falcon",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            normed = layer_norm(g, self, x, f"blk.{il}.attn_norm")
            separate = self.has(f"blk.{il}.attn_norm_2.weight")
            attn_in = layer_norm(g, self, x, f"blk.{il}.attn_norm_2") if separate else normed
            h = self_attention(g, self, attn_in, inp, il)
            if il == self.hp.n_layer - 1:
                x, h, normed = (select_outputs(g, inp, t) for t in (x, h, normed))
            x = g.add(g.add(ffn_gelu(g, self, normed, il), h), x)
            x = self.layer_output(g, x, il)
        return output_head_layer_norm(g, self, x)
