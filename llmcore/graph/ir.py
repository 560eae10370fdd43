"""The backend-agnostic compute graph: nodes with shapes and types fixed when the graph is built.

Shapes use numpy order (outermost first, the last axis contiguous), so a batch of ``n`` token
activations of width ``d`` is ``(n, d)`` and a weight matrix mapping ``d_in`` to ``d_out`` is
``(d_out, d_in)`` as it is stored in GGUF. A graph is built once per batch shape; the values that
change every step (token ids, positions, KV cells, the attention mask, the number of KV cells in
use) are graph inputs or run-time arguments, never baked into nodes.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Any

from llmcore.gguf import GGMLType


class Op(str, enum.Enum):
    """Every operation a backend may be asked to run. ``supports_op`` questions name these."""

    INPUT = "input"  # a per-step value the caller feeds (params: name)
    WEIGHT = "weight"  # a model tensor from the GGUF file (params: name)
    CACHE = "cache"  # a persistent KV cache buffer owned by the executing backend (params: name)
    GET_ROWS = "get_rows"  # table[ids]: embedding lookup, or picking output rows
    MUL_MAT = "mul_mat"  # x @ w.T; w may be quantized, x is f32 and rounded as llama.cpp does
    ADD = "add"  # b broadcasts over a's leading axes, or holds one value per row of a (see is_per_row)
    MUL = "mul"
    SCALE = "scale"
    CLAMP = "clamp"  # min(max(x, low), high): MPT's and OLMo's clipped queries, keys and values
    RMS_NORM = "rms_norm"
    NORM = "norm"
    ROPE = "rope"
    ROPE_MULTI = "rope_multi"  # ggml_rope_multi: srcs x [n, heads, dim], positions i32 [4, n] (a row per
    # section); params rope (its n_rot: ggml's n_dims), sections (4 widths in angles), vision. Angle i takes
    # the position of the section that i modulo the sections' total falls in; text (Qwen2-VL's M-RoPE):
    # n_rot / 2 angles, neox pairs over the first n_rot dims; vision: n_rot angles, pairs (i, i + n_rot) over
    # the whole head, each section's frequencies restarting (see graph.rope.mrope_cos_sin)
    SILU = "silu"
    GELU = "gelu"
    TANH = "tanh"  # logit soft-capping: cap * tanh(x / cap), as scale, tanh, scale
    SWIGLU = "swiglu"  # silu(gate) * up
    SWIGLU_OAI = "swiglu_oai"  # gpt-oss's: x = min(gate, limit), y = clamp(up, -limit, limit),
    # x / (1 + expf(alpha * -x)) * (y + 1) (params: alpha, limit), as ggml_swiglu_oai
    GEGLU = "geglu"  # gelu(gate) * up
    GELU_QUICK = "gelu_quick"  # x * sigmoid(1.702 x), read as ggml's CPU backend does from a table indexed by
    # the f16 value of x and holding f16 results: the FFN activation of CLIP vision encoders (LLaVA's mmproj)
    RESHAPE = "reshape"
    KV_STORE = "kv_store"  # cache[cells] = x; the node stands for the updated cache
    HADAMARD = "hadamard"  # x rotated by the orthonormal Walsh-Hadamard matrix of order n (params: n) in
    # consecutive chunks of n values, as ggml's fast transform (x / sqrtf(n), then butterflies): the
    # rotation llama.cpp applies around a quantized KV cache
    SIGMOID = "sigmoid"  # 1 / (1 + exp(-x)), with the C library's expf as ggml's CPU backend
    DIV = "div"  # broadcasts as ADD
    SOFTMAX = "softmax"  # over the last axis, as ggml_soft_max without a mask: expert gating
    SUM_ROWS = "sum_rows"  # the sum over the last axis, kept as an axis of 1 (ggml_sum_rows: in double)
    TOP_K = "top_k"  # i32 indices of the k largest values along the last axis, largest first, ties in
    # the order of ggml_argsort's std::sort (params: k): the experts a token is routed to
    GATHER = "gather"  # values[..., ids[..., j]]: each token's weights of its selected experts
    MUL_MAT_ID = "mul_mat_id"  # out[t, j] = w[ids[t, j]] @ x[t, j] (x[t, 0] when x has one slot): the
    # expert-routed product (ggml_mul_mat_id) over a stacked weight [n_expert, rows, cols]
    WEIGHTED_SUM = "weighted_sum"  # sum over j of x[t, j] * w[t, j], products rounded, then added in
    # order of j: the experts' outputs mixed by their routing weights
    MASK_GROUPS = "mask_groups"  # x [n, n_group * size] with every group of ``size`` values whose index is
    # not in ids[n, k] set to -inf (params: size): DeepSeek's group-limited routing (ggml_get_rows of the
    # chosen groups, ggml_set_rows into a tensor of -inf)
    SLICE = "slice"  # x[..., start:stop] along the last axis (params: start, stop), contiguous: ggml's views
    # of part of a row, e.g. a head's unrotated and rotated dims (multi-head latent attention)
    CONCAT = "concat"  # a and b joined along the last axis (ggml_concat on dim 0): leading axes equal
    MUL_MAT_HEADS = "mul_mat_heads"  # out[t, h] = w[h] @ x[t, h]: a matrix per head over a 3-D weight
    # [n_head, rows, cols] (ggml_mul_mat broadcast over heads: DeepSeek's absorbed key and value projections)
    ATTENTION = "attention"  # softmax(q k^T * scale + slope_h * mask) v over the first n_kv cache cells, GQA
    # (params: scale, n_head_kv, softcap: scores become softcap * tanh(scores / softcap) first when > 0;
    # max_bias: ALiBi's, which sets slope_h, 1 for every head when 0; flash: computed as ggml's
    # flash_attn_ext, an online softmax over the cells, instead of two products around a softmax;
    # softcap_scale, when present: the cap is softcap * tanh(scores * softcap_scale), Grok's; an optional
    # fifth source sinks f32[n_head]: a logit per head that joins each row's softmax max and sum, gpt-oss's;
    # no_cache: the cells are the batch's own keys and values (an encoder), ggml's rows exactly n_kv long)
    SSM_CONV = "ssm_conv"  # Mamba's causal depthwise conv1d (ggml_ssm_conv) over x [n, channels] with weight
    # [channels, d_conv]: token t of a sequence sees the d_conv - 1 inputs before it, which its state row
    # (srcs: state cache [slots, channels * (d_conv - 1)], x, weight, i32 slots[n]) holds across steps;
    # the node updates the rows in place as the tokens pass, in batch order
    SSM_SCAN = "ssm_scan"  # the selective scan (ggml_ssm_scan) plus the skip D * x: srcs state cache
    # [slots, n_head * head_dim * d_state], x [n, n_head, head_dim], dt [n, n_head], A [n_head * head_dim,
    # d_state] (Mamba) or [n_head, 1] (Mamba-2), B and C [n, n_group, d_state], D [n_head * head_dim] or
    # [n_head, 1], i32 slots[n]; gives y [n, n_head * head_dim] and leaves each slot's last state in place
    EXP = "exp"  # expf(x), the C library's (RWKV's decays)
    L2_NORM = "l2_norm"  # x / max(sqrt(sum of x*x in double), eps) over the last axis (params: eps), ggml_l2_norm
    TOKEN_SHIFT = "token_shift"  # RWKV's x_prev: row t becomes the row before it in t's sequence, the first
    # from the sequence's state row (srcs: state cache [slots, width], x [n, width], i32 slots[n]), which
    # ends holding the sequence's last row: llama.cpp's token-shift concat and store
    RWKV_WKV6 = "rwkv_wkv6"  # ggml_rwkv_wkv6: srcs state cache [slots, n_head * head * head], k, v, r
    # [n, n_head, head], time_first u [n_head, head], decay w [n, n_head, head], i32 slots[n]; gives y [n,
    # n_head * head] and leaves each slot's last state in place
    GATED_LINEAR_ATTN = "gated_linear_attn"  # ggml_gated_linear_attn (RWKV-6-Qwen2): as RWKV_WKV6 without the
    # bonus, srcs state cache, k, v, q, g [n, n_head, head], i32 slots[n] (params: scale of q):
    # S_ij = S_ij g_i + k_i v_j, y_j = sum over i of S_ij q_i scale
    RWKV_WKV7 = "rwkv_wkv7"  # ggml_rwkv_wkv7: srcs state cache, r, w, k, v, a, b [n, n_head, head], i32
    # slots[n]; gives y [n, n_head * head] and leaves each slot's last state in place


#: element types of activations, inputs and caches; weights carry a GGMLType instead. A cache may
#: also hold any of llama.cpp's KV cache types by name ("bf16", "q8_0", ...: see ``graph.kv_types``)
F32, F16, I32 = "f32", "f16", "i32"
DType = str | GGMLType

_ids = itertools.count()


@dataclass(eq=False)
class Node:
    """One value in the graph: the op that makes it, its sources, shape, type and parameters.

    ``layer`` tells the scheduler which model layer the node belongs to (-1 for the input
    embedding, ``n_layer`` for the output head, None for graph inputs).
    """

    op: Op
    srcs: tuple[Node, ...]
    shape: tuple[int, ...]
    dtype: DType
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    layer: int | None = None
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def is_leaf(self) -> bool:
        return self.op in (Op.INPUT, Op.WEIGHT, Op.CACHE)

    def __repr__(self) -> str:
        return f"Node({self.name or self.op.value}#{self.id} {self.op.value} {self.shape} {self.dtype})"


@dataclass
class Graph:
    """A built forward pass: its nodes in execution (topological) order and its outputs."""

    nodes: list[Node]
    outputs: dict[str, Node]
    inputs: dict[str, Node]
    n_tokens: int
    n_outputs: int

    @property
    def weights(self) -> list[Node]:
        return [n for n in self.nodes if n.op is Op.WEIGHT]

    @property
    def caches(self) -> list[Node]:
        return [n for n in self.nodes if n.op is Op.CACHE]


def topological_order(outputs: list[Node]) -> list[Node]:
    """Nodes reachable from ``outputs``, each after its sources, in a stable (creation) order."""
    seen: dict[int, Node] = {}
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if node.id not in seen:
            seen[node.id] = node
            stack.extend(node.srcs)
    # creation order is already topological: a node is created after its sources
    return sorted(seen.values(), key=lambda n: n.id)


def is_per_row(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> bool:
    """Whether a binary op's ``b`` holds one value per row of ``a`` (shape a.shape[:-1] + (1,): a
    gate or routing weight per token) rather than broadcasting over a's leading axes."""
    return len(b_shape) == len(a_shape) and b_shape[-1] == 1 and b_shape[:-1] == a_shape[:-1] and a_shape[-1] != 1
