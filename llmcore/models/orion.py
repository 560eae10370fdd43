"""Orion (OrionStar): Llama's block with LayerNorm (weight and bias) in place of RMSNorm, and
neox-style rotary embeddings."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import layer_norm, output_head_layer_norm
from llmcore.models.llama import Llama


@register
class Orion(Llama):
    names = ("orion",)
    rope_neox = True

    def norm(self, g: GraphBuilder, x: Node, name: str) -> Node:
        return layer_norm(g, self, x, name)

    def head(self, g: GraphBuilder, x: Node) -> Node:
        return output_head_layer_norm(g, self, x)
