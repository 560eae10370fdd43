"""PLaMo (Preferred Networks): parallel blocks, where attention and a SwiGLU feed-forward network
both read one RMSNorm of the input and are added to it together, with neox-style rotary
embeddings over whole heads."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    ffn_swiglu,
    output_head,
    rms_norm,
    select_outputs,
    self_attention,
    token_embedding,
)


@register
class Plamo(Architecture):
    names = ("plamo",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            normed = rms_norm(g, self, x, f"blk.{il}.attn_norm.weight")
            h = self_attention(g, self, normed, inp, il)
            if il == self.hp.n_layer - 1:
                x, h, normed = (select_outputs(g, inp, t) for t in (x, h, normed))
            x = g.add(g.add(ffn_swiglu(g, self, normed, il), h), x)
            x = self.layer_output(g, x, il)
        return output_head(g, self, x)
