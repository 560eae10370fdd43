"""BERT (``bert``: all-MiniLM, BGE, E5 and the rerankers built on them): an encoder. Each token
sees its whole sequence (non-causal attention, no KV cache kept), the embeddings add token-type
(all "sentence A") and learned position rows and are LayerNorm-ed, and each block is post-norm:
LayerNorm(x + attention(x)), then LayerNorm(x + FFN(x)) with an ungated GELU FFN, every
projection and norm with its bias. The graph gives hidden states (llama.cpp's ``t_embd``), which
the pooling turns into sentence embeddings or, through a classification head, rerank scores."""

from __future__ import annotations

from collections.abc import Mapping

from llmcore.errors import ModelError
from llmcore.graph.builder import F16, I32, GraphBuilder
from llmcore.graph.ir import DType, Node
from llmcore.graph.kv_types import CacheConfig
from llmcore.models.base import Architecture, BatchInputs, HParams, WeightSpec, register
from llmcore.models.layers import (
    attend,
    ffn_geglu,
    ffn_gelu,
    ffn_swiglu,
    layer_norm,
    position_embedding,
    qkv_projections,
    select_outputs,
    split_heads,
    token_embedding,
)
from llmcore.models.pooling import Pooling
from llmcore.models.sliding import AlternatingWindows


@register
class Bert(Architecture):
    names = ("bert",)
    encoder_only = True
    learned_positions = True  # position_embd.weight; rotary and ALiBi encoders have none
    rotary = False  # queries and keys rotated by their positions

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = layer_norm(g, self, self.embed(g, inp), "token_embd_norm")
        for il in range(self.hp.n_layer):
            g.layer = il
            h = self.attention(g, x, inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that are output go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            h = layer_norm(g, self, g.add(h, x), f"blk.{il}.attn_output_norm")
            if self.has(f"blk.{il}.attn_norm_2.weight"):  # jina-bert-v2: the layer's input added once more
                h = layer_norm(g, self, g.add(h, x), f"blk.{il}.attn_norm_2")
            x = layer_norm(g, self, g.add(self.ffn(g, h, il), h), f"blk.{il}.layer_output_norm")
            x = self.layer_output(g, x, il)
        g.embeddings = x
        return x

    def embed(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = token_embedding(g, self, inp)
        if self.has("token_types.weight"):  # every token is of type 0 ("sentence A"), as in llama.cpp
            types = g.input("token_types", inp.tokens.shape, I32)
            x = g.add(x, g.get_rows(self.w(g, "token_types.weight"), types, name="type_embd"))
        return g.add(position_embedding(g, self, inp), x) if self.learned_positions else x

    def attention(self, g: GraphBuilder, x: Node, inp: BatchInputs, il: int) -> Node:
        """Self-attention over the sequence, queries and keys LayerNorm-ed first where the model
        has those norms (jina-bert-v2), rotated where its positions are rotary."""
        q, k, v = qkv_projections(g, self, x, il)
        if self.has(f"blk.{il}.attn_q_norm.weight"):
            q = layer_norm(g, self, q, f"blk.{il}.attn_q_norm")
        if self.has(f"blk.{il}.attn_k_norm.weight"):
            k = layer_norm(g, self, k, f"blk.{il}.attn_k_norm")
        return attend(g, self, split_heads(g, q, self.hp.n_head), split_heads(g, k, self.hp.n_head_kv), v, inp, il,
                      rope=self.rotary)

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_gelu(g, self, x, il)


@register
class NomicBert(Bert):
    """nomic-embed-text (``nomic-bert``): BERT's post-norm block with rotary positions (neox
    style) instead of learned ones, a fused QKV and a SwiGLU FFN."""

    names = ("nomic-bert",)
    rope_neox = True
    learned_positions = False
    rotary = True

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_swiglu(g, self, x, il)


@register
class JinaBertV2(Bert):
    """jina-embeddings-v2 (``jina-bert-v2``): BERT's block with ALiBi (llama.cpp's fixed bias of 8;
    the encoder's distances count both ways) instead of learned positions, LayerNorms of q and k
    and a second post-attention norm where the file has them, and a GEGLU FFN (gate and up fused
    in ``ffn_up``, or a separate ``ffn_gate``)."""

    names = ("jina-bert-v2",)
    learned_positions = False
    max_alibi_bias = 8.0

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        fused = self.weights[f"blk.{il}.ffn_up.weight"].shape[0] != self.hp.n_ff
        return ffn_geglu(g, self, x, il) if fused or self.has(f"blk.{il}.ffn_gate.weight") else ffn_gelu(g, self, x, il)


@register
class ModernBert(AlternatingWindows, Bert):
    """ModernBERT (``modern-bert``): a pre-norm encoder of LayerNorms without biases (none before
    layer 0's attention), rotary positions (neox style), a fused QKV, a GEGLU FFN with gate and up
    fused in ``ffn_up`` (SwiGLU where ``hidden_activation`` says silu), and local attention on all
    but every third layer (the first of each three global): a window reaching ``sliding_window / 2``
    positions both ways, rotated with ``rope.freq_base_swa``. A reranker's head (rank pooling) reads
    each sequence's mean unless ``classifier.pooling_type`` says otherwise, and its dense layer is
    followed by GELU and the LayerNorm ``cls.norm`` (ModernBertPredictionHead)."""

    names = ("modern-bert",)
    default_classifier_pooling = Pooling.MEAN
    classifier_gelu = True
    rope_neox = True
    learned_positions = False
    rotary = True
    default_pattern = 3
    dense_first = True
    symmetric_window = True

    def __init__(self, hparams: HParams, weights: Mapping[str, WeightSpec], n_ctx: int,
                 cache: CacheConfig | DType = F16, pooling: Pooling | None = None):
        super().__init__(hparams, weights, n_ctx, cache, pooling)
        self.set_windows(hparams)
        act = hparams.hidden_act
        if act not in (None, "gelu", "geglu", "silu", "swish", "swiglu"):
            raise ModelError(f"metadata '{hparams.arch}.hidden_activation': {act!r} is not supported "
                             "(gelu, geglu, silu, swish or swiglu)")
        self.swiglu = act in ("silu", "swish", "swiglu")

    def forward(self, g: GraphBuilder, inp: BatchInputs) -> Node:
        x = layer_norm(g, self, token_embedding(g, self, inp), "token_embd_norm")
        for il in range(self.hp.n_layer):
            g.layer = il
            h = layer_norm(g, self, x, f"blk.{il}.attn_norm") if self.has(f"blk.{il}.attn_norm.weight") else x
            h = self.attention(g, h, inp, il)
            if il == self.hp.n_layer - 1:  # only the rows that are output go further
                x, h = select_outputs(g, inp, x), select_outputs(g, inp, h)
            x = g.add(h, x)
            x = g.add(self.ffn(g, layer_norm(g, self, x, f"blk.{il}.ffn_norm"), il), x)
        g.embeddings = layer_norm(g, self, x, "output_norm")
        return g.embeddings

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        return ffn_swiglu(g, self, x, il) if self.swiglu else ffn_geglu(g, self, x, il)
