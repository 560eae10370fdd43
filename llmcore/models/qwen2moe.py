"""Qwen1.5-MoE and Qwen2-MoE: Qwen2's block (QKV biases, neox rotary) whose FFN is a mixture of
experts with unnormalised routing weights plus a shared expert that every token passes through,
scaled by a sigmoid gate of its own."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import ffn_swiglu, moe_ffn
from llmcore.models.llama import Llama


@register
class Qwen2Moe(Llama):
    names = ("qwen2moe",)
    expert_archs = names
    rope_neox = True

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        routed = moe_ffn(g, self, x, il, normalize=False)
        gate_logit = g.mul_mat(self.w_vector_as_row(g, f"blk.{il}.ffn_gate_inp_shexp.weight"), x)
        gate = g.div(g.silu(gate_logit), gate_logit)  # llama.cpp's sigmoid: silu(x) / x
        return g.add(routed, g.mul(ffn_swiglu(g, self, x, il, suffix="_shexp"), gate))
