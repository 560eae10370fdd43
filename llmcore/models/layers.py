"""Shared building blocks of decoder-only transformers: attention over the KV cache, feed-forward
networks and the output head. Architectures compose these; backends never see them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llmcore.errors import ModelError
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node

if TYPE_CHECKING:  # annotations only: base builds the pooling head, which reads layer_norm from here
    from llmcore.models.base import Architecture, BatchInputs


def rms_norm(g: GraphBuilder, m: Architecture, x: Node, weight: str) -> Node:
    return g.mul(g.rms_norm(x, m.hp.norm_eps), m.w(g, weight))


def layer_norm(g: GraphBuilder, m: Architecture, x: Node, name: str) -> Node:
    """LayerNorm over the last axis, scaled by ``name.weight`` and shifted by ``name.bias`` where
    the model has one (per-head weights of shape [heads, head_dim] broadcast over tokens)."""
    y = g.mul(g.norm(x, m.hp.norm_eps), m.w(g, f"{name}.weight"))
    if m.has(f"{name}.bias"):
        y = g.add(y, m.w(g, f"{name}.bias"))
    return y


def self_attention(g: GraphBuilder, m: Architecture, x: Node, inp: BatchInputs, il: int, rope: bool = True) -> Node:
    """Multi-head (grouped-query) self-attention of layer ``il``, with rotary positions unless
    ``rope`` is False (models with learned positions or ALiBi).

    Keys and values of this batch are written into the layer's cache cells first; the queries
    then attend over every cell the mask allows, which covers earlier steps and other sequences.
    """
    q, k, v = qkv_projections(g, m, x, il)
    return attend(g, m, split_heads(g, q, m.hp.n_head), split_heads(g, k, m.hp.n_head_kv), v, inp, il, rope=rope)


def qkv_projections(g: GraphBuilder, m: Architecture, x: Node, il: int) -> tuple[Node, Node, Node]:
    """Queries [n, n_head * head_dim], keys and values [n, n_head_kv * head_dim] of layer ``il``,
    with their biases where the model has them."""
    prefix = f"blk.{il}"
    if m.has(f"{prefix}.attn_qkv.weight"):  # one fused matrix: q, k and v are row ranges of it
        q_width = m.hp.n_head * m.hp.head_dim
        bounds = (0, q_width, q_width + m.kv_width, q_width + 2 * m.kv_width)
        q, k, v = (_project_rows(g, m, x, f"{prefix}.attn_qkv", start, stop)
                   for start, stop in zip(bounds, bounds[1:]))
    else:
        q, k, v = (_project(g, m, x, f"{prefix}.attn_{name}") for name in "qkv")
    if m.hp.clamp_kqv > 0:  # MPT, OLMo
        q, k, v = (g.clamp(t, -m.hp.clamp_kqv, m.hp.clamp_kqv) for t in (q, k, v))
    return q, k, v


def split_heads(g: GraphBuilder, x: Node, n_heads: int) -> Node:
    """[n, n_heads * head_dim] -> [n, n_heads, head_dim]."""
    n, width = x.shape
    return g.reshape(x, (n, n_heads, width // n_heads))


def attend(g: GraphBuilder, m: Architecture, q: Node, k: Node, v: Node, inp: BatchInputs, il: int,
           rope: bool = True) -> Node:
    """The rest of self-attention once q [n, n_head, d], k [n, n_head_kv, d] and v [n, kv_width]
    are made: rotary positions (unless ``rope`` is False, for layers without them), the KV cache,
    softmax(q k^T * m.attn_scale + mask) v and the output projection. The layer's ``attn_sinks``
    (gpt-oss: a logit per head that takes a share of the softmax without a value) join where the
    model has them."""
    n = q.shape[0]
    if rope:
        factors = m.rope_factors(g)
        q = g.rope(q, inp.positions, m.layer_rope(il), factors, name=f"q_rope.{il}")
        k = g.rope(k, inp.positions, m.layer_rope(il), factors, name=f"k_rope.{il}")
    # a quantized cache holds keys and values rotated, as llama.cpp's (see graph.kv_types)
    rot_k, rot_v = m.cache.rotation_k(q.shape[2]), m.cache.rotation_v(q.shape[2])
    if rot_k:
        q, k = g.hadamard(q, rot_k, name=f"q_rot.{il}"), g.hadamard(k, rot_k, name=f"k_rot.{il}")
    if rot_v:
        v = g.hadamard(v, rot_v, name=f"v_rot.{il}")
    k_cache = g.cache(f"cache_k.{il}", (m.n_ctx, m.kv_width), m.cache.type_k)
    v_cache = g.cache(f"cache_v.{il}", (m.n_ctx, m.kv_width), m.cache.type_v)
    k_all = g.kv_store(k_cache, g.reshape(k, (n, m.kv_width)), inp.kv_cells, name=f"k_store.{il}")
    v_all = g.kv_store(v_cache, v, inp.kv_cells, name=f"v_store.{il}")
    sinks = m.w(g, f"blk.{il}.attn_sinks.weight") if m.has(f"blk.{il}.attn_sinks.weight") else None
    out = g.attention(q, k_all, v_all, m.layer_kq_mask(inp, il), m.attn_scale, name=f"attn.{il}",
                      softcap=m.attn_softcap, max_bias=m.max_alibi_bias, flash=m.cache.flash_attn,
                      softcap_scale=m.attn_softcap_scale, sinks=sinks, no_cache=m.encoder_only)
    if rot_v:
        out = g.hadamard(out, rot_v, name=f"attn_rot.{il}")
    return _project(g, m, out, f"blk.{il}.attn_output")


def weight_product(g: GraphBuilder, m: Architecture, w: Node, x: Node, name: str,
                   rows: tuple[int, int] | None = None) -> Node:
    """``w @ x`` plus, for each LoRA adapter of the model with a pair for ``w``'s tensor,
    ``s * B(A x)`` (llama.cpp's build_lora_mm: the adapter is never merged into the weight).
    ``rows``: ``w`` is that row range of a fused tensor, and so are B's rows."""
    y = g.mul_mat(w, x, name=name)
    for lora in m.loras:
        pair = lora.adapter.pairs.get(w.params.get("tensor", w.name))
        if pair is not None:
            a, b = lora.adapter.factors(g, pair, rows)
            ab = g.mul_mat(b, g.mul_mat(a, x, name=f"{name}.lora_a"), name=f"{name}.lora_b")
            y = g.add(y, g.scale(ab, lora.adapter.scale_for(pair, lora.scale)))
    return y


def _project(g: GraphBuilder, m: Architecture, x: Node, name: str) -> Node:
    """A linear layer: the weight ``name.weight`` and, where the model has one, its bias."""
    y = weight_product(g, m, m.w(g, f"{name}.weight"), x, name)
    if m.has(f"{name}.bias"):
        y = g.add(y, m.w(g, f"{name}.bias"))
    return y


def _project_rows(g: GraphBuilder, m: Architecture, x: Node, name: str, start: int, stop: int) -> Node:
    """Outputs [start, stop) of the fused linear layer ``name``: its weight's rows and bias's
    elements in that range (views; ggml computes the whole product and views the result, which
    gives the same numbers)."""
    y = weight_product(g, m, m.w_rows(g, f"{name}.weight", start, stop), x, f"{name}[{start}:{stop}]", (start, stop))
    if m.has(f"{name}.bias"):
        y = g.add(y, m.w_rows(g, f"{name}.bias", start, stop))
    return y


def latent_attention(g: GraphBuilder, m: Architecture, x: Node, inp: BatchInputs, il: int, kq_scale: float) -> Node:
    """Multi-head latent attention (DeepSeek V2/V3) as llama.cpp computes it with the projections
    absorbed. Each token's keys and values are compressed into one latent vector c_kv
    (``attn_kv_a_mqa``'s first ``kv_lora_rank`` outputs, RMS-normed) and a rotary key k_pe (its last
    ``n_rot``) that every head shares; the cache keeps just [c_kv | k_pe] per token. A head's query
    (through the low-rank ``attn_q_a``, its norm and ``attn_q_b``, or one ``attn_q``) is split into
    dims without rotation, mapped into the latent space by the head's ``attn_k_b`` matrix, and the
    rotated last ``n_rot`` dims: then every head attends to the cached rows as one shared KV head
    would (scores scaled by ``kq_scale``), the values being the rows' c_kv part, and the head's
    ``attn_v_b`` maps its latent output to its values before ``attn_output``."""
    prefix, hp = f"blk.{il}", m.hp
    if m.has(f"{prefix}.attn_kv_b.weight") and not m.has(f"{prefix}.attn_k_b.weight"):
        raise ModelError(f"tensor {prefix}.attn_kv_b.weight: this file predates llama.cpp's split of it into "
                         "attn_k_b and attn_v_b (multi-head latent attention); convert the model again")
    n, n_rot = x.shape[0], m.rope.n_rot
    rank = m.weights[f"{prefix}.attn_kv_a_norm.weight"].shape[0]
    if m.has(f"{prefix}.attn_q_a.weight"):
        q = _project(g, m, rms_norm(g, m, _project(g, m, x, f"{prefix}.attn_q_a"), f"{prefix}.attn_q_a_norm.weight"),
                     f"{prefix}.attn_q_b")
    else:
        q = _project(g, m, x, f"{prefix}.attn_q")
    q = split_heads(g, q, hp.n_head)
    head_k = q.shape[2]
    q_nope = g.slice(q, 0, head_k - n_rot, name=f"q_nope.{il}")
    q_pe = g.rope(g.slice(q, head_k - n_rot, head_k), inp.positions, m.rope, name=f"q_pe.{il}")
    q_latent = g.mul_mat_heads(m.w(g, f"{prefix}.attn_k_b.weight"), q_nope, name=f"q_nope_absorbed.{il}")
    kv_latent = rms_norm(g, m, _project_rows(g, m, x, f"{prefix}.attn_kv_a_mqa", 0, rank),
                         f"{prefix}.attn_kv_a_norm.weight")
    k_pe = _project_rows(g, m, x, f"{prefix}.attn_kv_a_mqa", rank, rank + n_rot)
    k_pe = g.rope(g.reshape(k_pe, (n, 1, n_rot)), inp.positions, m.rope, name=f"k_pe.{il}")
    cache = g.cache(f"cache_k.{il}", (m.n_ctx, rank + n_rot), m.cache.type_k)
    rows = g.kv_store(cache, g.concat(kv_latent, g.reshape(k_pe, (n, n_rot))), inp.kv_cells, name=f"k_store.{il}")
    # the values are the rows' first rank dims: attending to the whole rows and keeping those
    # outputs gives them exactly, each output dim being its own weighted sum over the cells
    out = g.attention(g.concat(q_latent, q_pe, name=f"q_mla.{il}"), rows, rows, m.layer_kq_mask(inp, il), kq_scale,
                      name=f"attn.{il}", flash=m.cache.flash_attn)
    latent = g.slice(g.reshape(out, (n, hp.n_head, rank + n_rot)), 0, rank)
    values = g.mul_mat_heads(m.w(g, f"{prefix}.attn_v_b.weight"), latent, name=f"kqv_mla.{il}")
    return _project(g, m, g.reshape(values, (n, hp.n_head * values.shape[2])), f"{prefix}.attn_output")


def ffn_swiglu(g: GraphBuilder, m: Architecture, x: Node, il: int, suffix: str = "") -> Node:
    """down(silu(gate(x)) * up(x)); without ``ffn_gate``, ``ffn_up`` holds both, gate rows first
    (Phi-3, ChatGLM, GLM-4: ggml_swiglu splits the fused product in halves). ``suffix`` names
    another FFN of the block (``_shexp``: a mixture of experts' shared expert)."""
    gate, up = _gate_and_up(g, m, x, il, suffix)
    return _project(g, m, g.swiglu(gate, up, name=f"ffn_act{suffix}.{il}"), f"blk.{il}.ffn_down{suffix}")


def _gate_and_up(g: GraphBuilder, m: Architecture, x: Node, il: int, suffix: str = "") -> tuple[Node, Node]:
    """gate(x) and up(x) of layer ``il``'s FFN; without ``ffn_gate``, ``ffn_up`` holds both, gate
    rows first (ggml's swiglu and geglu split the fused product in halves)."""
    prefix = f"blk.{il}"
    if m.has(f"{prefix}.ffn_gate{suffix}.weight"):
        return _project(g, m, x, f"{prefix}.ffn_gate{suffix}"), _project(g, m, x, f"{prefix}.ffn_up{suffix}")
    n_ff = m.weights[f"{prefix}.ffn_up{suffix}.weight"].shape[0] // 2
    return (_project_rows(g, m, x, f"{prefix}.ffn_up{suffix}", 0, n_ff),
            _project_rows(g, m, x, f"{prefix}.ffn_up{suffix}", n_ff, 2 * n_ff))


#: llama.cpp clamps the sum of a token's routing weights to f16's smallest normal before dividing by it
MIN_WEIGHT_SUM = 6.103515625e-5


#: llama.cpp's expert gating functions (LLAMA_EXPERT_GATING_FUNC_TYPE_*): how the router's logits
#: become the probabilities that choose and weight the experts
GATING_SOFTMAX, GATING_SIGMOID, GATING_SOFTMAX_WEIGHT = 1, 2, 3


def moe_ffn(g: GraphBuilder, m: Architecture, x: Node, il: int, normalize: bool, scale: float = 0.0,
            gating: int = GATING_SOFTMAX, activation: str = "silu") -> Node:
    """A mixture of gated experts (llama.cpp's build_moe_ffn): the router ``ffn_gate_inp`` (and its
    bias, if any) scores the experts, each token goes to its ``n_expert_used`` most probable ones
    (:func:`route_experts`), whose outputs are summed weighted by their probabilities
    (``normalize``: rescaled to sum to one; then times ``scale`` unless it is 0 or 1). The experts'
    matrices are stacked in ``ffn_{gate,up,down}_exps`` (with a bias row per expert where the model
    has ``ffn_*_exps.bias``: gpt-oss); an expert is down(act(gate(x)) * up(x)), act being SiLU or
    GELU (``activation``), or without ``ffn_gate_exps`` down(act(up(x))); ``"swiglu_oai"`` is
    gpt-oss's clamped SwiGLU of gate and up instead."""
    prefix = f"blk.{il}"
    n, n_embd = x.shape
    logits = weight_product(g, m, m.w(g, f"{prefix}.ffn_gate_inp.weight"), x, f"ffn_moe_logits.{il}")
    if m.has(f"{prefix}.ffn_gate_inp.bias"):
        logits = g.add(logits, m.w(g, f"{prefix}.ffn_gate_inp.bias"))
    selected, weights = route_experts(g, m, logits, il, gating)
    if normalize:
        weights = g.div(weights, g.clamp(g.sum_rows(weights), MIN_WEIGHT_SUM, math.inf))
    if scale not in (0.0, 1.0):
        weights = g.scale(weights, scale)
    x = g.reshape(x, (n, 1, n_embd))  # one input row that every selected expert reads
    up = _expert_product(g, m, f"{prefix}.ffn_up_exps", x, selected, f"ffn_moe_up.{il}")
    gelu = activation == "gelu"
    if activation == "swiglu_oai":
        gate = _expert_product(g, m, f"{prefix}.ffn_gate_exps", x, selected, f"ffn_moe_gate.{il}")
        act = g.swiglu_oai(gate, up, SWIGLU_OAI_ALPHA, SWIGLU_OAI_LIMIT, name=f"ffn_moe_act.{il}")
    elif m.has(f"{prefix}.ffn_gate_exps.weight"):
        gate = _expert_product(g, m, f"{prefix}.ffn_gate_exps", x, selected, f"ffn_moe_gate.{il}")
        act = (g.geglu if gelu else g.swiglu)(gate, up, name=f"ffn_moe_act.{il}")
    else:
        act = (g.gelu if gelu else g.silu)(up, name=f"ffn_moe_act.{il}")
    experts = _expert_product(g, m, f"{prefix}.ffn_down_exps", act, selected, f"ffn_moe_down.{il}")
    return g.weighted_sum(experts, weights, name=f"ffn_moe_out.{il}")


#: gpt-oss's SwiGLU constants (llama.cpp's LLM_FFN_SWIGLU_OAI_MOE)
SWIGLU_OAI_ALPHA, SWIGLU_OAI_LIMIT = 1.702, 7.0


def _expert_product(g: GraphBuilder, m: Architecture, name: str, x: Node, selected: Node, node_name: str) -> Node:
    """The routed product of the stacked ``name.weight`` plus, where the model has ``name.bias``
    [n_expert, rows], each selected expert's bias row (ggml_add_id)."""
    y = g.mul_mat_id(m.w(g, f"{name}.weight"), x, selected, name=node_name)
    if m.has(f"{name}.bias"):
        y = g.add_id(y, m.w(g, f"{name}.bias"), selected, name=f"{node_name}.biased")
    return y


def route_experts(g: GraphBuilder, m: Architecture, logits: Node, il: int, gating: int) -> tuple[Node, Node]:
    """The ``n_expert_used`` experts of each token, best first, and their weights: the gating's
    probabilities of the experts chosen (their softmax for ``GATING_SOFTMAX_WEIGHT``). The choice
    ranks the probabilities plus ``exp_probs_b.bias`` where the layer has one (DeepSeek V3: the
    weights stay unbiased), and with experts in groups (``n_expert_groups``) only among the
    ``n_group_used`` groups whose two best experts score highest."""
    probs = (g.softmax(logits, name=f"ffn_moe_probs.{il}") if gating == GATING_SOFTMAX
             else g.sigmoid(logits, name=f"ffn_moe_probs.{il}") if gating == GATING_SIGMOID else logits)
    ranked = probs
    if m.has(f"blk.{il}.exp_probs_b.bias"):
        ranked = g.add(probs, m.w(g, f"blk.{il}.exp_probs_b.bias"), name=f"ffn_moe_probs_biased.{il}")
    if m.hp.n_expert_groups > 1:
        ranked = _best_groups_only(g, m, ranked, il)
    selected = g.top_k(ranked, m.hp.n_expert_used, name=f"ffn_moe_topk.{il}")
    weights = g.gather(probs, selected, name=f"ffn_moe_weights.{il}")
    if gating == GATING_SOFTMAX_WEIGHT:
        weights = g.softmax(weights, name=f"ffn_moe_weights_softmax.{il}")
    return selected, weights


def _best_groups_only(g: GraphBuilder, m: Architecture, scores: Node, il: int) -> Node:
    """``scores`` [n, n_expert] with the experts outside each token's ``n_group_used`` best groups
    at -inf; a group's score is the sum of its two best experts' (DeepSeek V3's group-limited routing)."""
    n, n_expert = scores.shape
    n_groups, n_used = m.hp.n_expert_groups, m.hp.n_group_used
    if n_expert % n_groups or n_expert // n_groups < 2 or not 0 < n_used < n_groups:
        raise ModelError(f"metadata '{m.hp.arch}.expert_group_count' ({n_groups}) and "
                         f"'{m.hp.arch}.expert_group_used_count' ({n_used}) do not group {n_expert} experts")
    size = n_expert // n_groups
    grouped = g.reshape(scores, (n * n_groups, size))
    best_two = g.gather(grouped, g.top_k(grouped, 2, name=f"ffn_moe_group_best.{il}"))
    group_scores = g.reshape(g.sum_rows(best_two), (n, n_groups))
    groups = g.top_k(group_scores, n_used, name=f"ffn_moe_group_topk.{il}")
    return g.mask_groups(scores, groups, size, name=f"ffn_moe_probs_masked.{il}")


def ffn_geglu(g: GraphBuilder, m: Architecture, x: Node, il: int) -> Node:
    """down(gelu(gate(x)) * up(x)): Gemma's feed-forward network. Without ``ffn_gate``, ``ffn_up``
    holds both, gate rows first (jina-bert-v2)."""
    gate, up = _gate_and_up(g, m, x, il)
    return _project(g, m, g.geglu(gate, up, name=f"ffn_act.{il}"), f"blk.{il}.ffn_down")


def ffn_gelu(g: GraphBuilder, m: Architecture, x: Node, il: int) -> Node:
    """down(gelu(up(x))): the ungated feed-forward network of GPT-2 and its descendants."""
    prefix = f"blk.{il}"
    return _project(g, m, g.gelu(_project(g, m, x, f"{prefix}.ffn_up"), name=f"ffn_act.{il}"), f"{prefix}.ffn_down")


def select_outputs(g: GraphBuilder, inp: BatchInputs, x: Node) -> Node:
    """Keep the rows whose logits were asked for (llama.cpp does this inside the last layer)."""
    return g.get_rows(x, inp.out_ids)


def output_head(g: GraphBuilder, m: Architecture, x: Node) -> Node:
    """Final norm and the vocabulary projection. Models without ``output.weight`` tie it to the
    token embedding, as llama.cpp does."""
    g.layer = m.hp.n_layer
    return lm_head(g, m, rms_norm(g, m, x, "output_norm.weight"))


def output_head_layer_norm(g: GraphBuilder, m: Architecture, x: Node) -> Node:
    """:func:`output_head` for models whose final norm is a LayerNorm (with its bias, if any)."""
    g.layer = m.hp.n_layer
    return lm_head(g, m, layer_norm(g, m, x, "output_norm"))


def lm_head(g: GraphBuilder, m: Architecture, x: Node) -> Node:
    """The vocabulary projection of final hidden states, tied to the token embedding when the
    model has no ``output.weight``; ``output.bias`` is added where the model has one. ``x`` is
    what an embedding graph returns instead (llama.cpp's ``t_embd``)."""
    g.embeddings = x
    head = "output.weight" if m.has("output.weight") else "token_embd.weight"
    logits = weight_product(g, m, m.w(g, head), x, "logits")
    return g.add(logits, m.w(g, "output.bias")) if m.has("output.bias") else logits


def token_embedding(g: GraphBuilder, m: Architecture, inp: BatchInputs) -> Node:
    """The rows of the tokens in ``token_embd.weight``, plus each LoRA adapter's ``s * B A[token]``
    (its pair for the embedding holds A [n_vocab, rank] and B [n_embd, rank], as llama.cpp's). A batch
    given as embeddings (an image's) passes them on as they are."""
    g.layer = -1
    if inp.embd is not None:
        return inp.embd
    x = g.get_rows(m.w(g, "token_embd.weight"), inp.tokens, name="embd")
    for lora in m.loras:
        pair = lora.adapter.pairs.get("token_embd.weight")
        if pair is not None:
            a, b = lora.adapter.factors(g, pair)
            delta = g.mul_mat(b, g.get_rows(a, inp.tokens, name="embd.lora_a"), name="embd.lora_b")
            x = g.add(x, g.scale(delta, lora.adapter.scale_for(pair, lora.scale)))
    return x


def position_embedding(g: GraphBuilder, m: Architecture, inp: BatchInputs) -> Node:
    """Learned absolute positions (GPT-2, StarCoder): row ``position`` of ``position_embd.weight``,
    which has a row for each position the model was trained on and none beyond."""
    g.layer = -1
    table = m.w(g, "position_embd.weight")
    if m.n_ctx > table.shape[0]:
        raise ModelError(f"a context of {m.n_ctx} exceeds the {table.shape[0]} learned positions of {table.name}")
    return g.get_rows(table, inp.positions, name="pos_embd")
