"""StableLM (2): LayerNorm pre-norms, rotary embeddings on part of each head (neox style,
``rope.dimension_count`` < head_dim), a SwiGLU feed-forward network, optional per-head LayerNorm of
queries and keys (StableLM 2 12B), and, where a block has no ``ffn_norm``, the parallel form in
which attention and feed-forward both read the same normalised input."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    attend,
    ffn_swiglu,
    layer_norm,
    output_head_layer_norm,
    qkv_projections,
    select_outputs,
    split_heads,
    token_embedding,
)


@register
class StableLM(Architecture):
    names = ("stablelm",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            normed = layer_norm(g, self, x, f"blk.{il}.attn_norm")
            h = self.attention(g, normed, inp, il)
            if il == self.hp.n_layer - 1:
                x, h, normed = (select_outputs(g, inp, t) for t in (x, h, normed))
            x = g.add(x, h)
            parallel = not self.has(f"blk.{il}.ffn_norm.weight")
            ffn_in = normed if parallel else layer_norm(g, self, x, f"blk.{il}.ffn_norm")
            x = g.add(x, ffn_swiglu(g, self, ffn_in, il))
            x = self.layer_output(g, x, il)
        return output_head_layer_norm(g, self, x)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        q, k = split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv)
        if self.has(f"blk.{il}.attn_q_norm.weight"):
            q = layer_norm(g, self, q, f"blk.{il}.attn_q_norm")
            k = layer_norm(g, self, k, f"blk.{il}.attn_k_norm")
        return attend(g, self, q, k, v, inp, il)
