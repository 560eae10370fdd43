"""StarCoder2: pre-norm blocks of LayerNorm (with biases), neox-rotary grouped-query attention with
biased projections, and an ungated GELU feed-forward network with biases."""

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
class StarCoder2(Architecture):
    names = ("starcoder2",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self_attention(g, self, layer_norm(g, self, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            x = g.add(x, ffn_gelu(g, self, layer_norm(g, self, x, f"blk.{il}.ffn_norm"), il))
        return output_head_layer_norm(g, self, x)
