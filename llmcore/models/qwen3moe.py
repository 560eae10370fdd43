"""Qwen3-MoE: Qwen3's block (per-head QK norm, neox rotary) whose FFN is a mixture of experts with
routing weights normalised to sum to one."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.layers import moe_ffn
from llmcore.models.qwen import Qwen3


@register
class Qwen3Moe(Qwen3):
    names = ("qwen3moe",)
    expert_archs = names

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return moe_ffn(g, self, x, il, normalize=True)
