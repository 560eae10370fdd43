"""Shared building blocks of decoder-only transformers: attention over the KV cache, feed-forward
networks and the output head. Architectures compose these; backends never see them."""

from __future__ import annotations

from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node
from llmcore.models.base import Architecture, BatchInputs


def rms_norm(g: GraphBuilder, m: Architecture, x: Node, weight: str) -> Node:
    return g.mul(g.rms_norm(x, m.hp.norm_eps), m.w(g, weight))


def self_attention(g: GraphBuilder, m: Architecture, x: Node, inp: BatchInputs, il: int) -> Node:
    """Multi-head (grouped-query) self-attention of layer ``il`` with rotary positions.

    Keys and values of this batch are written into the layer's cache cells first; the queries
    then attend over every cell the mask allows, which covers earlier steps and other sequences.
    """
    hp = m.hp
    n = x.shape[0]
    prefix = f"blk.{il}"
    q = _project(g, m, x, f"{prefix}.attn_q")
    k = _project(g, m, x, f"{prefix}.attn_k")
    v = _project(g, m, x, f"{prefix}.attn_v")
    q = g.rope(g.reshape(q, (n, hp.n_head, hp.head_dim)), inp.positions, m.rope, name=f"q_rope.{il}")
    k = g.rope(g.reshape(k, (n, hp.n_head_kv, hp.head_dim)), inp.positions, m.rope, name=f"k_rope.{il}")
    k_cache = g.cache(f"cache_k.{il}", (m.n_ctx, m.kv_width), m.cache_type)
    v_cache = g.cache(f"cache_v.{il}", (m.n_ctx, m.kv_width), m.cache_type)
    k_all = g.kv_store(k_cache, g.reshape(k, (n, m.kv_width)), inp.kv_cells, name=f"k_store.{il}")
    v_all = g.kv_store(v_cache, v, inp.kv_cells, name=f"v_store.{il}")
    out = g.attention(q, k_all, v_all, inp.kq_mask, m.attn_scale, name=f"attn.{il}")
    return _project(g, m, out, f"{prefix}.attn_output")


def _project(g: GraphBuilder, m: Architecture, x: Node, name: str) -> Node:
    """A linear layer: the weight ``name.weight`` and, where the model has one, its bias."""
    y = g.mul_mat(m.w(g, f"{name}.weight"), x, name=name)
    if m.has(f"{name}.bias"):
        y = g.add(y, m.w(g, f"{name}.bias"))
    return y


def ffn_swiglu(g: GraphBuilder, m: Architecture, x: Node, il: int) -> Node:
    prefix = f"blk.{il}"
    gate = _project(g, m, x, f"{prefix}.ffn_gate")
    up = _project(g, m, x, f"{prefix}.ffn_up")
    return _project(g, m, g.swiglu(gate, up, name=f"ffn_act.{il}"), f"{prefix}.ffn_down")


def select_outputs(g: GraphBuilder, inp: BatchInputs, x: Node) -> Node:
    """Keep the rows whose logits were asked for (llama.cpp does this inside the last layer)."""
    return g.get_rows(x, inp.out_ids)


def output_head(g: GraphBuilder, m: Architecture, x: Node) -> Node:
    """Final norm and the vocabulary projection. Models without ``output.weight`` tie it to the
    token embedding, as llama.cpp does."""
    g.layer = m.hp.n_layer
    x = rms_norm(g, m, x, "output_norm.weight")
    head = "output.weight" if m.has("output.weight") else "token_embd.weight"
    return g.mul_mat(m.w(g, head), x, name="logits")


def token_embedding(g: GraphBuilder, m: Architecture, inp: BatchInputs) -> Node:
    g.layer = -1
    return g.get_rows(m.w(g, "token_embd.weight"), inp.tokens, name="embd")
