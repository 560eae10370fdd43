"""Refact (Small Magic AI): Llama's pre-norm block (RMSNorm, SwiGLU, multi-query attention in
the released model) with ALiBi (maximum bias 8, fixed by llama.cpp) instead of rotary positions."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import self_attention
from llmcore.models.llama import Llama


@register
class Refact(Llama):
    names = ("refact",)
    max_alibi_bias = 8.0

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return self_attention(g, self, x, inp, il, rope=False)
