"""SmolLM3: Llama's block, except that every fourth layer has no rotary embedding ("NoPE")."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import (
    attend,
    qkv_projections,
    split_heads,
)
from llmcore.models.llama import Llama

NO_ROPE_LAYER_STEP = 4  # layers 3, 7, 11, ... attend without positions (fixed in llama.cpp too)


@register
class SmolLM3(Llama):
    names = ("smollm3",)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        rope = (il + 1) % NO_ROPE_LAYER_STEP != 0
        return attend(g, self, split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv), v, inp, il,
                      rope=rope)
