"""BLOOM (BigScience): GPT-2's block (LayerNorms with biases, fused biased QKV, ungated GELU
feed-forward network) without position embeddings: ALiBi biases the attention scores by distance
instead (maximum bias 8, fixed by llama.cpp), and the token embeddings are LayerNorm-ed first."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.gpt2 import GPT2
from llmcore.models.layers import layer_norm, token_embedding


@register
class Bloom(GPT2):
    names = ("bloom",)
    max_alibi_bias = 8.0

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        return layer_norm(g, self, token_embedding(g, self, inp), "token_embd_norm")
