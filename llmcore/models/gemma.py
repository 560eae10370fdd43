"""Gemma (1): Llama's pre-norm block with a GeGLU feed-forward network, token embeddings scaled by
sqrt(n_embd), queries scaled by 1/sqrt(head_dim) before attention and the output tied to the
embedding. The GGUF converter stores the RMSNorm weights already offset by one (Gemma's
``x * (1 + w)``), so the plain RMSNorm applies."""

from __future__ import annotations

import math

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import (
    attend,
    ffn_geglu,
    qkv_projections,
    split_heads,
    token_embedding,
)
from llmcore.models.llama import Llama


@register
class Gemma(Llama):
    names = ("gemma",)
    rope_neox = True
    attn_scale = 1.0  # the queries are scaled instead, as llama.cpp does

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        return g.scale(token_embedding(g, self, inp), math.sqrt(self.hp.n_embd))

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_geglu(g, self, x, il)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        # scaling before the rotation equals scaling after it: rope is linear
        q = g.scale(split_heads(g, q, self.hp.n_head), 1.0 / math.sqrt(self.hp.head_dim))
        return attend(g, self, q, split_heads(g, k, self.hp.n_head_kv), v, inp, il)
