"""GLM-4 (Zhipu AI): ChatGLM's block (fused QKV and gate-up projections, rotary embeddings on part
of each head) with sandwich norms: the attention and feed-forward outputs are RMS-normalised again
before each residual addition."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.chatglm import ChatGLM
from llmcore.models.layers import rms_norm, select_outputs


@register
class GLM4(ChatGLM):
    names = ("glm4",)

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = self.embed(g, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, self.norm(g, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(rms_norm(g, self, h, f"blk.{il}.post_attention_norm.weight"), x)
            h = self.ffn(g, self.norm(g, x, f"blk.{il}.ffn_norm"), il)
            x = g.add(rms_norm(g, self, h, f"blk.{il}.post_ffw_norm.weight"), x)
            x = self.layer_output(g, x, il)
        return self.head(g, x)
