"""OLMo (1, AllenAI): Llama's block with non-parametric LayerNorms (no weight, no bias) in place
of RMSNorm, optionally clipped queries, keys and values (``attention.clamp_kqv``, applied by the
shared projections), and an untied output head."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import lm_head
from llmcore.models.llama import Llama


@register
class Olmo(Llama):
    names = ("olmo",)

    def norm(self, g: GraphBuilder, x: Node, name: str) -> Node:
        return g.norm(x, self.hp.norm_eps)

    def head(self, g: GraphBuilder, x: Node) -> Node:
        g.layer = self.hp.n_layer
        return lm_head(g, self, g.norm(x, self.hp.norm_eps))
