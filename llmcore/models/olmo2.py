"""OLMo 2 (AllenAI): no pre-norms; instead RMSNorm of the whole query and key vectors before the
neox-style rotation, and RMSNorm of the attention and feed-forward outputs before each residual
addition."""

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


@register
class Olmo2(Architecture):
    names = ("olmo2",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, x, inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, rms_norm(g, self, h, f"blk.{il}.post_attention_norm.weight"))
            x = g.add(x, rms_norm(g, self, ffn_swiglu(g, self, x, il), f"blk.{il}.post_ffw_norm.weight"))
            x = self.layer_output(g, x, il)
        return output_head(g, self, x)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        q = rms_norm(g, self, q, f"blk.{il}.attn_q_norm.weight")
        k = rms_norm(g, self, k, f"blk.{il}.attn_k_norm.weight")
        return attend(g, self, split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv), v, inp, il)
