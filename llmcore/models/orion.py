"""Orion (OrionStar): Llama's block with LayerNorm (weight and bias) in place of RMSNorm, and
neox-style rotary embeddings."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    ffn_swiglu,
    layer_norm,
    output_head_layer_norm,
    select_outputs,
    self_attention,
    token_embedding,
)


@register
class Orion(Architecture):
    names = ("orion",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self_attention(g, self, layer_norm(g, self, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            x = g.add(x, ffn_swiglu(g, self, layer_norm(g, self, x, f"blk.{il}.ffn_norm"), il))
        return output_head_layer_norm(g, self, x)
