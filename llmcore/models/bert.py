"""BERT (``bert``: all-MiniLM, BGE, E5 and the rerankers built on them): an encoder. Each token
sees its whole sequence (non-causal attention, no KV cache kept), the embeddings add token-type
(all "sentence A") and learned position rows and are LayerNorm-ed, and each block is post-norm:
LayerNorm(x + attention(x)), then LayerNorm(x + FFN(x)) with an ungated GELU FFN, every
projection and norm with its bias. The graph gives hidden states (llama.cpp's ``t_embd``), which
the pooling turns into sentence embeddings or, through a classification head, rerank scores."""

from __future__ import annotations

from llmcore.graph.builder import I32, GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    ffn_gelu,
    ffn_swiglu,
    layer_norm,
    position_embedding,
    select_outputs,
    self_attention,
    token_embedding,
)


@register
class Bert(Architecture):
    names = ("bert",)
    encoder_only = True
    learned_positions = True  # position_embd.weight; rotary encoders have none

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = layer_norm(g, self, self.embed(g, inp), "token_embd_norm")
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, x, inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that are output go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = layer_norm(g, self, g.add(h, x), f"blk.{il}.attn_output_norm")
            x = layer_norm(g, self, g.add(self.ffn(g, x, il), x), f"blk.{il}.layer_output_norm")
            x = self.layer_output(g, x, il)
        g.embeddings = x
        return x

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        if self.has("token_types.weight"):  # every token is of type 0 ("sentence A"), as in llama.cpp
            types = g.input("token_types", inp.tokens.shape, I32)
            x = g.add(x, g.get_rows(self.w(g, "token_types.weight"), types, name="type_embd"))
        return g.add(position_embedding(g, self, inp), x) if self.learned_positions else x

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return self_attention(g, self, x, inp, il, rope=False)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_gelu(g, self, x, il)


@register
class NomicBert(Bert):
    """nomic-embed-text (``nomic-bert``): BERT's post-norm block with rotary positions (neox
    style) instead of learned ones, a fused QKV and a SwiGLU FFN."""

    names = ("nomic-bert",)
    rope_neox = True
    learned_positions = False

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return self_attention(g, self, x, inp, il)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_swiglu(g, self, x, il)
