"""DBRX (Databricks): pre-norm blocks of LayerNorms without biases (the FFN's is named
attn_output_norm), attention through one fused QKV matrix whose outputs are clipped to
[-clamp_kqv, clamp_kqv] (neox rotary), and a mixture of SwiGLU experts with routing weights
normalised to sum to one."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import layer_norm, moe_ffn, output_head_layer_norm
from llmcore.models.llama import Llama


@register
class Dbrx(Llama):
    names = ("dbrx",)
    expert_archs = names
    rope_neox = True
    ffn_norm = "attn_output_norm"

    def norm(self, g: GraphBuilder, x: Node, name: str) -> Node:
        return layer_norm(g, self, x, name)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return moe_ffn(g, self, x, il, normalize=True, scale=self.hp.expert_weights_scale)

    def head(self, g: GraphBuilder, x: Node) -> Node:
        return output_head_layer_norm(g, self, x)
