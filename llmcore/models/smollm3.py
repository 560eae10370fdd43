"""SmolLM3: Llama's block, except that every fourth layer has no rotary embedding ("NoPE")."""

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

NO_ROPE_LAYER_STEP = 4  # layers 3, 7, 11, ... attend without positions (fixed in llama.cpp too)


@register
class SmolLM3(Architecture):
    names = ("smollm3",)

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
        q, k, v = qkv_projections(g, self, x, il)
        rope = (il + 1) % NO_ROPE_LAYER_STEP != 0
        return attend(g, self, split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv), v, inp, il,
                      rope=rope)
