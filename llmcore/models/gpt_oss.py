"""gpt-oss (OpenAI's open-weight MoE): Llama's pre-norm block (its FFN norm named
post_attention_norm) with biased q, k, v and output projections, neox rotary, attention sinks (a
learned logit per head that takes a share of each softmax without a value), sliding-window
attention on every other layer (layers 0, 2, ...; the window from the file), and a mixture of
experts with biases whose routing weights are the softmax of the chosen experts' router logits,
each expert a clamped SwiGLU (x * sigmoid(1.702 x) with gate and up clipped at 7, times up + 1).
The released files hold the experts in MXFP4."""

from __future__ import annotations

from collections.abc import Mapping

from llmcore.graph.builder import F16, GraphBuilder
from llmcore.graph.ir import DType, Node
from llmcore.graph.kv_types import CacheConfig
from llmcore.models.base import HParams, WeightSpec, register
from llmcore.models.layers import GATING_SOFTMAX_WEIGHT, moe_ffn
from llmcore.models.llama import Llama
from llmcore.models.pooling import Pooling
from llmcore.models.sliding import AlternatingWindows


@register
class GptOss(AlternatingWindows, Llama):
    names = ("gpt-oss",)
    expert_archs = names
    rope_neox = True
    ffn_norm = "post_attention_norm"
    default_pattern = 2  # llama.cpp's load_swa_pattern(ml, 2): every second layer global

    def __init__(self, hparams: HParams, weights: Mapping[str, WeightSpec], n_ctx: int,
                 cache: CacheConfig | DType = F16, pooling: Pooling | None = None):
        super().__init__(hparams, weights, n_ctx, cache, pooling)
        self.set_windows(hparams)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return moe_ffn(g, self, x, il, normalize=False, scale=self.hp.expert_weights_scale,
                       gating=GATING_SOFTMAX_WEIGHT, activation="swiglu_oai")
