"""MPT (MosaicML) and SEA-LION: GPT-2's block (LayerNorms, biases where the file has them, fused
QKV, ungated GELU feed-forward network) with ALiBi (``attention.max_alibi_bias``) in place of
position embeddings (learned ones are added where the file has them), queries, keys and values
clipped to ``attention.clamp_kqv`` (by the shared projections)."""

from __future__ import annotations

from llmcore.errors import ModelError
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.gpt2 import GPT2
from llmcore.models.layers import position_embedding, token_embedding


@register
class MPT(GPT2):
    names = ("mpt",)

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        return g.add(x, position_embedding(g, self, inp)) if self.has("position_embd.weight") else x

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        if self.has(f"blk.{il}.attn_q_norm.weight"):  # llama.cpp 0.3.36 asserts on it with a fused QKV
            raise ModelError(f"mpt: blk.{il}.attn_q_norm (LayerNorm of queries and keys) is not supported yet")
        return super().attention(g, x, inp, il)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        if self.has(f"blk.{il}.ffn_act.scales"):
            raise ModelError(f"mpt: blk.{il}.ffn_act.scales (scaled GELU activations) is not supported yet")
        return super().ffn(g, x, il)
