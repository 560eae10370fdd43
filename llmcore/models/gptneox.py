"""GPT-NeoX and Pythia (EleutherAI): LayerNorm (with biases) before attention and before the
ungated GELU feed-forward network, neox-style rotary embeddings on part of each head, a fused QKV
projection with biases, and (``use_parallel_residual``, the default) the parallel form
x + attn(ln1(x)) + ffn(ln2(x)) instead of two residual steps."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs, register
from llmcore.models.layers import (
    ffn_gelu,
    layer_norm,
    output_head_layer_norm,
    select_outputs,
    self_attention,
    token_embedding,
)


@register
class GPTNeoX(Architecture):
    names = ("gptneox",)
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self_attention(g, self, layer_norm(g, self, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            if self.hp.parallel_residual:
                x = g.add(g.add(self.ffn(g, x, il), x), h)
            else:
                x = g.add(h, x)
                x = g.add(self.ffn(g, x, il), x)
            x = self.layer_output(g, x, il)
        return output_head_layer_norm(g, self, x)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_gelu(g, self, layer_norm(g, self, x, f"blk.{il}.ffn_norm"), il)
