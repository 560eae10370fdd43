"""Gemma 3 (text): Gemma 2's sandwich-norm block with RMSNorm of each query and key head before the
rotation instead of attention soft-capping; five sliding-window layers to one global layer (the
window from ``attention.sliding_window``), windowed layers rotating with base 10000 and global ones
with ``rope.freq_base`` and the file's rope scaling. Embeddings given as input (an image's, from a
``gemma3`` projector) are not scaled."""

from __future__ import annotations

import dataclasses

from llmcore.graph.builder import GraphBuilder, RopeParams
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, SlidingWindow, register
from llmcore.models.gemma2 import Gemma2
from llmcore.models.layers import rms_norm

WINDOW_ROPE_BASE = 10000.0  # llama.cpp's rope_freq_base_train_swa default


@register
class Gemma3(Gemma2):
    names = ("gemma3",)
    default_window = 0  # no window in the file: every layer is global
    default_pattern = 6
    default_attn_softcap = 0.0
    default_final_softcap = 0.0
    n_layer_27b = 62

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        """Token rows scaled by sqrt(n_embd) as Gemma's; embeddings given as input (an image's) as they are."""
        return inp.embd if inp.embd is not None else super().embed(g, inp)

    def sliding_rope(self, sliding: SlidingWindow) -> RopeParams:
        """Windowed layers: ``rope.freq_base_swa`` (else 10000), without the global layers' scaling."""
        return dataclasses.replace(self.rope, freq_base=sliding.rope_freq_base or WINDOW_ROPE_BASE, freq_scale=1.0)

    def qk_norm(self, g: GraphBuilder, q: Node, k: Node, il: int) -> tuple[Node, Node]:
        return (rms_norm(g, self, q, f"blk.{il}.attn_q_norm.weight"),
                rms_norm(g, self, k, f"blk.{il}.attn_k_norm.weight"))
