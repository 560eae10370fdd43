"""Baichuan (1, 2): Llama's pre-norm block, told apart by depth as llama.cpp does: the 32-layer
7B models use rotary positions, the 40-layer 13B ones ALiBi (maximum bias 8), and any other depth
neither."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import self_attention
from llmcore.models.llama import Llama

ROPE_DEPTH, ALIBI_DEPTH = 32, 40  # llama.cpp's LLM_TYPE_7B and LLM_TYPE_13B


@register
class Baichuan(Llama):
    names = ("baichuan",)

    @property
    def max_alibi_bias(self) -> float:
        return 8.0 if self.hp.n_layer == ALIBI_DEPTH else 0.0

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return self_attention(g, self, x, inp, il, rope=self.hp.n_layer == ROPE_DEPTH)
