"""DBRX (Databricks): pre-norm blocks of LayerNorms without biases, attention through one fused QKV
matrix whose outputs are clipped to [-clamp_kqv, clamp_kqv] (neox rotary), and a mixture of SwiGLU
experts with routing weights normalised to sum to one."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import layer_norm, moe_ffn, output_head_layer_norm, select_outputs
from llmcore.models.llama import Llama


@register
class Dbrx(Llama):
    names = ("dbrx",)
    expert_archs = names
    rope_neox = True

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = self.embed(g, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, layer_norm(g, self, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that produce logits go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, h)
            x = g.add(x, self.ffn(g, layer_norm(g, self, x, f"blk.{il}.attn_output_norm"), il))
            x = self.layer_output(g, x, il)
        return self.head(g, x)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return moe_ffn(g, self, x, il, normalize=True, scale=self.hp.expert_weights_scale)

    def head(self, g: GraphBuilder, x: Node) -> Node:
        return output_head_layer_norm(g, self, x)
