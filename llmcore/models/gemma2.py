"""Gemma 2: Gemma's GeGLU block wrapped in "sandwich" norms (RMSNorm before and after attention and
the feed-forward network), attention scores and logits soft-capped (``cap * tanh(x / cap)``), and
sliding-window attention on every other layer (layers 0, 2, ... see the last 4096 positions)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from llmcore.graph.builder import F16, GraphBuilder
from llmcore.graph.ir import DType, Node
from llmcore.graph.kv_types import CacheConfig
from llmcore.models.base import BatchInputs, HParams, WeightSpec, register
from llmcore.models.gemma import Gemma
from llmcore.models.layers import attend, output_head, qkv_projections, select_outputs, split_heads
from llmcore.models.pooling import Pooling
from llmcore.models.sliding import AlternatingWindows


@register
class Gemma2(AlternatingWindows, Gemma):
    names = ("gemma2",)
    #: llama.cpp's defaults where the file is silent
    default_window = 4096  # 0: every layer global
    default_pattern = 2  # every second layer global
    default_attn_softcap = 50.0  # 0: not capped
    default_final_softcap = 30.0
    n_layer_27b = 46  # the 27B model scales queries by its n_embd / n_head instead of its head width

    def __init__(self, hparams: HParams, weights: Mapping[str, WeightSpec], n_ctx: int,
                 cache: CacheConfig | DType = F16, pooling: Pooling | None = None):
        super().__init__(hparams, weights, n_ctx, cache, pooling)
        self.set_windows(hparams)
        given = (hparams.attn_softcap, hparams.final_softcap)
        self.attn_softcap = self.default_attn_softcap if given[0] is None else given[0]
        self.final_softcap = self.default_final_softcap if given[1] is None else given[1]
        width = hparams.n_embd // hparams.n_head if hparams.n_layer == self.n_layer_27b else hparams.head_dim
        self.query_scale = 1.0 / math.sqrt(width)

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = self.embed(g, inp)
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, self.norm(g, x, f"blk.{il}.attn_norm"), inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that produce logits go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(x, self.norm(g, h, f"blk.{il}.post_attention_norm"))
            h = self.ffn(g, self.norm(g, x, f"blk.{il}.ffn_norm"), il)
            x = g.add(x, self.norm(g, h, f"blk.{il}.post_ffw_norm"))
            x = self.layer_output(g, x, il)
        return self.head(g, x)

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        q, k, v = qkv_projections(g, self, x, il)
        q, k = self.qk_norm(g, split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv), il)
        # rotated here, not in attend: the queries are scaled after the rotation, as llama.cpp does
        q = g.rope(q, inp.positions, self.layer_rope(il), name=f"q_rope.{il}")
        k = g.rope(k, inp.positions, self.layer_rope(il), name=f"k_rope.{il}")
        return attend(g, self, g.scale(q, self.query_scale), k, v, inp, il, rope=False)

    def qk_norm(self, g: GraphBuilder, q: Node, k: Node, il: int) -> tuple[Node, Node]:
        """Per-head norms of queries and keys before the rotation (none in Gemma 2)."""
        return q, k

    def head(self, g: GraphBuilder, x: Node) -> Node:
        logits = output_head(g, self, x)
        if not self.final_softcap:
            return logits
        return g.scale(g.tanh(g.scale(logits, 1.0 / self.final_softcap)), self.final_softcap)
