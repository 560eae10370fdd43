"""Qwen2-VL's language model (``qwen2vl``): Qwen2's block with M-RoPE, multi-section rotary
positions. Each token has four positions (time, height, width and an unused fourth): a text token
has its position three times (and 0), an image's patch tokens share one time and carry their row
and column, so that the rotation of the head's angles in each section (``rope.dimension_sections``)
follows one of the three."""

from __future__ import annotations

from llmcore.errors import ModelError
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import attend, qkv_projections, split_heads
from llmcore.models.qwen import Qwen2


@register
class Qwen2VL(Qwen2):
    names = ("qwen2vl",)
    n_pos_per_embd = 4

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        arch = self.hp.arch
        if not self.hp.rope_sections:
            raise ModelError(f"metadata key {arch}.rope.dimension_sections is missing")
        if self.rope.n_rot != self.hp.head_dim:  # llama.cpp asserts it
            raise ModelError(f"metadata '{arch}.rope.dimension_count': {self.rope.n_rot}; {arch} rotates whole heads "
                             f"of {self.hp.head_dim}")
        if sum(self.hp.rope_sections) == 0:
            raise ModelError(f"metadata '{arch}.rope.dimension_sections': every section is empty")

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        q, k = split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv)
        sections = self.hp.rope_sections
        q = g.rope_multi(q, inp.positions, self.rope, sections, name=f"q_rope.{il}")
        k = g.rope_multi(k, inp.positions, self.rope, sections, name=f"k_rope.{il}")
        return attend(g, self, q, k, v, inp, il, rope=False)
