"""Architectures whose GGUF graph is Llama's block exactly, under their own names: InternLM2 (the
converter splits its fused wqkv into q, k and v), XVERSE and ERNIE 4.5 (dense). Attention output
biases, where present, are picked up by the shared projections."""

from __future__ import annotations

from llmcore.models.base import register
from llmcore.models.llama import Llama


@register
class LlamaAlike(Llama):
    names = ("internlm2", "xverse", "ernie4_5")
