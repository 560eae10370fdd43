"""GPT-2 and StarCoder (1): pre-norm blocks of LayerNorm (with biases), learned absolute position
embeddings added to the token embeddings instead of rotary ones, a fused QKV projection with
biases (StarCoder's keys and values have one head: multi-query attention) and an ungated GELU
feed-forward network with biases."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import position_embedding, self_attention, token_embedding
from llmcore.models.starcoder2 import StarCoder2


@register
class GPT2(StarCoder2):
    names = ("gpt2", "starcoder")

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        return g.add(token_embedding(g, self, inp), position_embedding(g, self, inp))

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return self_attention(g, self, x, inp, il, rope=False)
