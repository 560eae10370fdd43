"""Seed-OSS (ByteDance): Llama's block with neox-style rotary embeddings and biased q, k, v; its
second norm is stored as ``post_attention_norm`` but sits where Llama's ``ffn_norm`` does."""

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
class SeedOss(Architecture):
    names = ("seed_oss",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self_attention(g, self, rms_norm(g, self, x, f"blk.{il}.attn_norm.weight"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            x = g.add(x, ffn_swiglu(g, self, rms_norm(g, self, x, f"blk.{il}.post_attention_norm.weight"), il))
        return output_head(g, self, x)
