"""Command-R (Cohere): parallel blocks, where attention and a SwiGLU feed-forward network both
read one LayerNorm (weight only) of the input and are added to it together; per-head LayerNorm of
queries and keys where the model has them (Command-R+), and logits multiplied by ``logit_scale``."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    attend,
    ffn_swiglu,
    layer_norm,
    lm_head,
    qkv_projections,
    select_outputs,
    split_heads,
    token_embedding,
)


@register
class CommandR(Architecture):
    names = ("command-r",)

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            normed = layer_norm(g, self, x, f"blk.{il}.attn_norm")
            h = self.attention(g, normed, inp, il)
            if il == self.hp.n_layer - 1:
                x, h, normed = (select_outputs(g, inp, t) for t in (x, h, normed))
            x = g.add(g.add(ffn_swiglu(g, self, normed, il), x), h)
            x = self.layer_output(g, x, il)
        g.layer = self.hp.n_layer
        logits = lm_head(g, self, layer_norm(g, self, x, "output_norm"))
        scale = self.hp.logit_scale
        return logits if scale is None or scale == 1.0 else g.scale(logits, scale)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        q, k = split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv)
        if self.has(f"blk.{il}.attn_q_norm.weight"):
            q = layer_norm(g, self, q, f"blk.{il}.attn_q_norm")
            k = layer_norm(g, self, k, f"blk.{il}.attn_k_norm")
        return attend(g, self, q, k, v, inp, il)
