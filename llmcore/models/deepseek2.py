"""DeepSeek V2 and V3: Llama's pre-norm block with multi-head latent attention (a compressed KV
cache: ``layers.latent_attention``) and, after ``leading_dense_block_count`` dense layers, a mixture
of experts plus shared experts that every token passes through. V2 gates the experts by a softmax;
V3 by a sigmoid, choosing among the best groups of experts with a per-expert bias, its weights
normalised and scaled."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, register
from llmcore.models.layers import GATING_SOFTMAX, ffn_swiglu, latent_attention, moe_ffn
from llmcore.models.llama import Llama


@register
class Deepseek2(Llama):
    names = ("deepseek2",)
    expert_archs = names

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # YaRN as llama.cpp pre-scales it (llama_context, then deepseek2.cpp): the rotation's magnitude
        # factor is cancelled, and the scores are scaled by mscale^2 instead (float32 throughout)
        f32, rope = np.float32, self.rope
        log_mul = f32(self.hp.rope_yarn_log_mul) / f32(0.1)  # the converter stores 0.1 * mscale_all_dim
        log_scale = np.log(f32(1.0) / f32(rope.freq_scale))
        attn_factor = f32(1.0)
        if rope.ext_factor != 0.0:
            factor = f32(1.0) / f32(rope.freq_scale)
            if log_mul == 0 and factor > 1:  # with a multiplier, llama.cpp's ratio of two equal mscales is 1
                attn_factor = f32(0.1) * np.log(factor) + f32(1.0)
            attn_factor = attn_factor * (f32(1.0) / (f32(1.0) + f32(0.1) * np.log(factor)))
        attn_factor = f32(attn_factor * f32(rope.attn_factor))
        self.rope = dataclasses.replace(rope, attn_factor=float(attn_factor))
        mscale = attn_factor * (f32(1.0) + f32(0.1) * log_scale)
        mscale = f32(mscale * (f32(1.0) + f32(0.1) * log_mul * log_scale))
        # a head's query and key dims in attention: the unrotated ones attn_k_b maps, then the rotated
        k_b = self.weights.get("blk.0.attn_k_b.weight")
        head_k = k_b.shape[2] + rope.n_rot if k_b is not None else self.hp.head_dim
        self.kq_scale = float(f32(mscale * mscale) / f32(math.sqrt(head_k)))

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        return latent_attention(g, self, x, inp, il, self.kq_scale)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        if not self.has(f"blk.{il}.ffn_gate_inp.weight"):  # one of the leading dense layers
            return ffn_swiglu(g, self, x, il)
        hp = self.hp
        routed = moe_ffn(g, self, x, il, normalize=hp.expert_weights_norm, scale=hp.expert_weights_scale,
                         gating=hp.expert_gating or GATING_SOFTMAX)
        return g.add(routed, ffn_swiglu(g, self, x, il, suffix="_shexp"))
