"""EXAONE 3 / 3.5 (LG AI Research): Llama's block with neox-style rotary embeddings."""

from __future__ import annotations

from llmcore.errors import ModelError
from llmcore.models.base import register
from llmcore.models.llama import Llama


@register
class Exaone(Llama):
    names = ("exaone",)
    rope_neox = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.has("rope_freqs.weight"):  # llama3-style long-context rope scaling of EXAONE 3.5
            raise ModelError("exaone: per-dimension rope frequency factors (rope_freqs.weight) are not supported yet")
