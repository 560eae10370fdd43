"""EXAONE 3 / 3.5 (LG AI Research): Llama's block with neox-style rotary embeddings."""

from __future__ import annotations

from llmcore.models.base import register
from llmcore.models.llama import Llama


@register
class Exaone(Llama):
    names = ("exaone",)
    rope_neox = True
