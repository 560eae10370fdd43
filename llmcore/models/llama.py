"""Llama (1, 2, 3), Mistral, SmolLM2 and relatives: pre-norm decoder blocks of RMSNorm, rotary
grouped-query attention and a SwiGLU feed-forward network, with residual connections.

The block is written once here; relatives that differ in a part (their norm, attention, FFN,
embedding or head) subclass it and override that part alone."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    ffn_swiglu,
    moe_ffn,
    output_head,
    rms_norm,
    select_outputs,
    self_attention,
    token_embedding,
)


@register
class Llama(Architecture):
    names = ("llama", "mistral")
    expert_archs = ("llama",)  # Mixtral, GritLM 8x7B: the block with a mixture of experts as its FFN
    ffn_norm = "ffn_norm"  # the name of the norm before the FFN (DBRX's is attn_output_norm)

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = self.embed(g, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, self.norm(g, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that produce logits go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, self.post_attention(g, h, il))
            x = g.add(x, self.post_ffn(g, self.ffn(g, self.norm(g, x, f"blk.{il}.{self.ffn_norm}"), il), il))
            x = self.layer_output(g, x, il)
        return self.head(g, x)

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        return token_embedding(g, self, inp)

    def norm(self, g: GraphBuilder, x: Node, name: str) -> Node:
        return rms_norm(g, self, x, f"{name}.weight")

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return self_attention(g, self, x, inp, il)

    def post_attention(self, g: GraphBuilder, h: Node, il: int) -> Node:
        """The attention's output as the residual adds it (Grok norms it first)."""
        return h

    def post_ffn(self, g: GraphBuilder, h: Node, il: int) -> Node:
        """The FFN's output as the residual adds it (Grok norms it first)."""
        return h

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        if self.has(f"blk.{il}.ffn_gate_inp.weight"):
            return moe_ffn(g, self, x, il, normalize=True)
        return ffn_swiglu(g, self, x, il)

    def head(self, g: GraphBuilder, x: Node) -> Node:
        return output_head(g, self, x)
