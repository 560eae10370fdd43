"""Qwen (1), Qwen2 / Qwen2.5 and Qwen3: Llama's pre-norm block with neox-style rotary embeddings. Qwen2 adds
biases to the q, k, v projections (the shared projections pick them up); Qwen3 drops them and
RMS-normalises every query and key head before the rotation."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import (
    attend,
    qkv_projections,
    rms_norm,
    split_heads,
)
from llmcore.models.llama import Llama


@register
class Qwen(Llama):
    """Qwen (1): Llama's block with neox-style rotary embeddings and a fused QKV projection with
    biases, which the shared projections split."""

    names = ("qwen",)
    rope_neox = True


@register
class Qwen2(Llama):
    names = ("qwen2",)
    rope_neox = True


@register
class Qwen3(Llama):
    names = ("qwen3",)
    rope_neox = True

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        """q = RMSNorm_head(W_q x), k = RMSNorm_head(W_k x), then rotary attention as usual."""
        q, k, v = qkv_projections(g, self, x, il)
        q = rms_norm(g, self, split_heads(g, q, self.hp.n_head), f"blk.{il}.attn_q_norm.weight")
        k = rms_norm(g, self, split_heads(g, k, self.hp.n_head_kv), f"blk.{il}.attn_k_norm.weight")
        return attend(g, self, q, k, v, inp, il)
