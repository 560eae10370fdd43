"""Llama (1, 2, 3), Mistral, SmolLM2 and relatives: pre-norm decoder blocks of RMSNorm, rotary
grouped-query attention and a SwiGLU feed-forward network, with residual connections."""

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
class Llama(Architecture):
    names = ("llama", "mistral")

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self_attention(g, self, rms_norm(g, self, x, f"blk.{il}.attn_norm.weight"), inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that produce logits go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            h = ffn_swiglu(g, self, rms_norm(g, self, x, f"blk.{il}.ffn_norm.weight"), il)
            x = g.add(x, h)
        return output_head(g, self, x)
