"""Seed-OSS (ByteDance): Llama's block with neox-style rotary embeddings and biased q, k, v; its
second norm is stored as ``post_attention_norm`` but sits where Llama's ``ffn_norm`` does."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import register
from llmcore.models.llama import Llama


@register
class SeedOss(Llama):
    names = ("seed_oss",)
    rope_neox = True

    def norm(self, g: GraphBuilder, x: Node, name: str) -> Node:
        return super().norm(g, x, name.replace(".ffn_norm", ".post_attention_norm"))
