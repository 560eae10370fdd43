"""ChatGLM3 (Zhipu AI): Llama's pre-norm block with a fused QKV projection (with biases) and a
fused gate-up projection, both split by the shared layers, and ChatGLM's "2D" rotary embedding,
which in GGUF form is the normal rotation of the first half of each head
(``rope.dimension_count`` = head_dim / 2)."""

from __future__ import annotations

from llmcore.models.base import register
from llmcore.models.llama import Llama


@register
class ChatGLM(Llama):
    names = ("chatglm",)
