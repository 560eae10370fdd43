"""Grok (xAI's Grok-1 and Grok-2): RMSNorm blocks with a norm after attention and after the FFN as
well as before them, token embeddings scaled up, attention scores multiplied by an output scale
inside a tanh cap (and not by 1/sqrt(head_dim)), a mixture of GeGLU experts with normalised
weights plus, where a layer has one, a dense GeGLU FFN (the two summed and scaled by sqrt(2)/2),
and logits scaled down and optionally soft-capped. llama.cpp runs Grok without flash attention."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from llmcore.graph.builder import F16, GraphBuilder
from llmcore.graph.ir import DType, Node
from llmcore.graph.kv_types import CacheConfig
from llmcore.models.base import BatchInputs, HParams, WeightSpec, register
from llmcore.models.layers import ffn_geglu, lm_head, moe_ffn, rms_norm, token_embedding
from llmcore.models.llama import Llama
from llmcore.models.pooling import Pooling


@register
class Grok(Llama):
    names = ("grok",)
    expert_archs = names
    rope_neox = True
    #: llama.cpp's values where the file is silent (Grok-1's; llama_model_grok::load_arch_hparams)
    default_logit_scale = 0.5773502691896257
    default_embedding_scale = 78.38367176906169
    default_attn_out_scale = 0.08838834764831845
    default_attn_softcap = 30.0

    def __init__(self, hparams: HParams, weights: Mapping[str, WeightSpec], n_ctx: int,
                 cache: CacheConfig | DType = F16, pooling: Pooling | None = None):
        super().__init__(hparams, weights, n_ctx, cache, pooling)
        self.cache = dataclasses.replace(self.cache, flash_attn=False)  # as llama.cpp forces it
        hp = hparams
        self.logit_scale = self.default_logit_scale if hp.logit_scale is None else hp.logit_scale
        self.embedding_scale = self.default_embedding_scale if hp.embedding_scale is None else hp.embedding_scale
        self.attn_softcap = self.default_attn_softcap if hp.attn_softcap is None else hp.attn_softcap
        out_scale = self.default_attn_out_scale if hp.attn_out_scale is None else hp.attn_out_scale
        # llama.cpp scales the scores by f_attn_out_scale / f_attn_logit_softcapping, a float quotient
        self.attn_softcap_scale = float(np.float32(out_scale) / np.float32(self.attn_softcap))
        self.final_softcap = hp.final_softcap or 0.0

    @property
    def attn_scale(self) -> float:
        return 1.0  # the output scale inside the cap stands for it

    def post_attention(self, g: GraphBuilder, h: Node, il: int) -> Node:
        return self.norm(g, h, f"blk.{il}.attn_output_norm")

    def post_ffn(self, g: GraphBuilder, h: Node, il: int) -> Node:
        post = "layer_output_norm" if self.has(f"blk.{il}.layer_output_norm.weight") else "post_ffw_norm"
        return self.norm(g, h, f"blk.{il}.{post}")

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        return g.scale(token_embedding(g, self, inp), self.embedding_scale)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        experts = moe_ffn(g, self, x, il, normalize=True, scale=self.hp.expert_weights_scale, activation="gelu")
        if not self.has(f"blk.{il}.ffn_up.weight"):
            return experts
        return g.scale(g.add(ffn_geglu(g, self, x, il), experts), math.sqrt(2) / 2)

    def head(self, g: GraphBuilder, x: Node) -> Node:
        g.layer = self.hp.n_layer
        logits = g.scale(lm_head(g, self, rms_norm(g, self, x, "output_norm.weight")), self.logit_scale)
        if not self.final_softcap:
            return logits
        return g.scale(g.tanh(g.scale(logits, 1.0 / self.final_softcap)), self.final_softcap)
