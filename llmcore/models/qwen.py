"""Qwen2 / Qwen2.5 and Qwen3: Llama's pre-norm block with neox-style rotary embeddings. Qwen2 adds
biases to the q, k, v projections (the shared projections pick them up); Qwen3 drops them and
RMS-normalises every query and key head before the rotation."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    attend,
    ffn_swiglu,
    output_head,
    qkv_projections,
    rms_norm,
    select_outputs,
    split_heads,
    token_embedding,
)
from llmcore.models.llama import Llama


@register
class Qwen2(Llama):
    names = ("qwen2",)
    rope_neox = True


@register
class Qwen3(Architecture):
    names = ("qwen3",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, rms_norm(g, self, x, f"blk.{il}.attn_norm.weight"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            x = g.add(x, ffn_swiglu(g, self, rms_norm(g, self, x, f"blk.{il}.ffn_norm.weight"), il))
        return output_head(g, self, x)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        """q = RMSNorm_head(W_q x), k = RMSNorm_head(W_k x), then rotary attention as usual."""
        q, k, v = qkv_projections(g, self, x, il)
        q = rms_norm(g, self, split_heads(g, q, self.hp.n_head), f"blk.{il}.attn_q_norm.weight")
        k = rms_norm(g, self, split_heads(g, k, self.hp.n_head_kv), f"blk.{il}.attn_k_norm.weight")
        return attend(g, self, q, k, v, inp, il)
