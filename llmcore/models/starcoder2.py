"""StarCoder2: pre-norm blocks of LayerNorm (with biases), neox-rotary grouped-query attention with
biased projections, and an ungated GELU feed-forward network with biases."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import ffn_gelu
from llmcore.models.orion import Orion


@register
class StarCoder2(Orion):
    names = ("starcoder2",)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_gelu(g, self, x, il)
