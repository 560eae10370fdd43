"""OLMoE (AllenAI): Llama's pre-norm block with OLMo 2's attention (RMSNorm of the whole query and
key vectors before the neox rotation) and a mixture of experts with unnormalised routing weights."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import moe_ffn
from llmcore.models.llama import Llama
from llmcore.models.olmo2 import Olmo2


@register
class Olmoe(Llama):
    names = ("olmoe",)
    expert_archs = names
    rope_neox = True
    attention = Olmo2.attention

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return moe_ffn(g, self, x, il, normalize=False)
