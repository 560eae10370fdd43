"""CodeShell (WisdomShell): StarCoder 2's block (LayerNorm with biases, neox-style rotary
attention, an ungated GELU feed-forward network with biases) with a fused QKV projection, which the
shared projections split."""

from __future__ import annotations

from llmcore.models.base import register
from llmcore.models.starcoder2 import StarCoder2


@register
class CodeShell(StarCoder2):
    names = ("codeshell",)
