"""Constructors for graph nodes. Every shape and type is checked here, when the graph is built,
so that backends can trust what they are given and kernels carry no checks."""

from __future__ import annotations

import math

from llmcore.errors import ModelError
from llmcore.gguf import GGMLType
from llmcore.graph import kv_types
from llmcore.graph.ir import F16, F32, I32, DType, Graph, Node, Op, is_per_row, topological_order
from llmcore.graph.rope import RopeParams


class GraphBuilder:
    """Builds one forward pass. ``layer`` is stamped on every node created while it is set."""

    def __init__(self, n_tokens: int, n_outputs: int) -> None:
        self.n_tokens = n_tokens
        self.n_outputs = n_outputs
        self.layer: int | None = None
        #: the final hidden states (llama.cpp's ``t_embd``): set by the output head or an encoder's
        #: forward pass; what an embedding graph returns
        self.embeddings: Node | None = None
        self._inputs: dict[str, Node] = {}
        self._leaves: dict[tuple[Op, str], Node] = {}

    # -- leaves ---------------------------------------------------------------------------------

    def input(self, name: str, shape: tuple[int, ...], dtype: DType) -> Node:
        node = self._inputs.get(name)
        if node is None:
            node = self._inputs[name] = Node(Op.INPUT, (), shape, dtype, {"name": name}, name)
        return node

    def weight(self, name: str, shape: tuple[int, ...], dtype: GGMLType) -> Node:
        return self._leaf(Op.WEIGHT, name, shape, dtype)

    def weight_rows(self, tensor: str, shape: tuple[int, ...], dtype: GGMLType, start: int, stop: int) -> Node:
        """Rows [start, stop) of weight ``tensor`` (of ``shape``) as a weight of its own: a fused
        QKV or gate-up matrix split without a copy, since a row range of a GGUF tensor is
        contiguous. Backends see an ordinary weight named ``tensor[start:stop]``."""
        _expect(0 <= start < stop <= shape[0], f"weight rows {tensor}[{start}:{stop}] outside {shape}")
        name = f"{tensor}[{start}:{stop}]"
        node = self._leaf(Op.WEIGHT, name, (stop - start, *shape[1:]), dtype)
        node.params.update(tensor=tensor, rows=(start, stop))
        return node

    def cache(self, name: str, shape: tuple[int, ...], dtype: DType) -> Node:
        """A KV cache of ``shape`` (cells, width) whose cells hold ``dtype``, one of llama.cpp's cache types."""
        kv_types.check_cache_type(str(dtype), f"cache {name}")
        return self._leaf(Op.CACHE, name, shape, dtype)

    def _leaf(self, op: Op, name: str, shape: tuple[int, ...], dtype: DType) -> Node:
        key = (op, name)
        if key not in self._leaves:
            self._leaves[key] = Node(op, (), tuple(shape), dtype, {"name": name}, name, self.layer)
        return self._leaves[key]

    def _node(self, op: Op, srcs: tuple[Node, ...], shape: tuple[int, ...], name: str = "", **params) -> Node:
        return Node(op, srcs, tuple(shape), F32, params, name, self.layer)

    # -- ops ------------------------------------------------------------------------------------

    def get_rows(self, table: Node, ids: Node, name: str = "") -> Node:
        _expect(ids.dtype == I32 and len(ids.shape) == 1, f"get_rows ids must be i32[n], got {ids}")
        _expect(len(table.shape) == 2, f"get_rows table must be 2-D, got {table}")
        return self._node(Op.GET_ROWS, (table, ids), (ids.shape[0], table.shape[1]), name)

    def mul_mat(self, w: Node, x: Node, name: str = "") -> Node:
        _expect(len(w.shape) == 2, f"mul_mat weight must be 2-D, got {w}")
        _expect(x.dtype == F32 and x.shape[-1] == w.shape[1],
                f"mul_mat {name}: activations {x.shape} do not match weight {w.name} {w.shape}")
        return self._node(Op.MUL_MAT, (w, x), (*x.shape[:-1], w.shape[0]), name)

    def add(self, a: Node, b: Node, name: str = "") -> Node:
        return self._binary(Op.ADD, a, b, name)

    def mul(self, a: Node, b: Node, name: str = "") -> Node:
        return self._binary(Op.MUL, a, b, name)

    def div(self, a: Node, b: Node, name: str = "") -> Node:
        return self._binary(Op.DIV, a, b, name)

    def _binary(self, op: Op, a: Node, b: Node, name: str) -> Node:
        # b broadcasts over a's leading axes (a bias or norm weight over every row), as in ggml, or
        # is one value per row of a (shape a.shape[:-1] + (1,): a routing weight or gate per token)
        _expect(a.shape[len(a.shape) - len(b.shape):] == b.shape or is_per_row(a.shape, b.shape),
                f"{op.value} {name}: cannot broadcast {b.shape} over {a.shape}")
        return self._node(op, (a, b), a.shape, name)

    def scale(self, a: Node, factor: float, name: str = "") -> Node:
        return self._node(Op.SCALE, (a,), a.shape, name, factor=float(factor))

    def clamp(self, a: Node, low: float, high: float, name: str = "") -> Node:
        return self._node(Op.CLAMP, (a,), a.shape, name, low=float(low), high=float(high))

    def rms_norm(self, a: Node, eps: float, name: str = "") -> Node:
        return self._node(Op.RMS_NORM, (a,), a.shape, name, eps=float(eps))

    def norm(self, a: Node, eps: float, name: str = "") -> Node:
        return self._node(Op.NORM, (a,), a.shape, name, eps=float(eps))

    def rope(self, x: Node, positions: Node, rope: RopeParams, freq_factors: Node | None = None,
             name: str = "") -> Node:
        """Rotary embedding; ``freq_factors`` (f32 [n_rot / 2], Llama 3.1's ``rope_freqs.weight``)
        divides each pair's angle, as ggml_rope_ext's third source does."""
        _expect(len(x.shape) == 3 and positions.shape == (x.shape[0],),
                f"rope {name}: expects x[n, heads, dim] and positions[n], got {x.shape}, {positions.shape}")
        _expect(rope.n_rot % 2 == 0 and rope.n_rot <= x.shape[2], f"rope {name}: bad n_rot {rope.n_rot}")
        srcs = (x, positions)
        if freq_factors is not None:
            _expect(freq_factors.shape == (rope.n_rot // 2,), f"rope {name}: freq factors {freq_factors.shape}")
            srcs += (freq_factors,)
        return self._node(Op.ROPE, srcs, x.shape, name, rope=rope)

    def rope_multi(self, x: Node, positions: Node, rope: RopeParams, sections: tuple[int, ...], vision: bool = False,
                   name: str = "") -> Node:
        """Multi-section rotary embedding (ggml_rope_multi, Qwen2-VL's M-RoPE) of x[n, heads, dim] at
        ``positions`` i32[4, n], one row per section; ``rope.n_rot`` is ggml's n_dims. Text mode
        (GGML_ROPE_TYPE_MROPE) rotates the first n_rot dims in neox pairs, angle i from the position
        of the section its sector falls in; ``vision`` (GGML_ROPE_TYPE_VISION) rotates the whole
        head, 2 * n_rot dims, each section's angles restarting their frequencies."""
        _expect(len(x.shape) == 3 and positions.shape == (4, x.shape[0]),
                f"rope_multi {name}: expects x[n, heads, dim] and positions[4, n], got {x.shape}, {positions.shape}")
        _expect(len(sections) == 4 and min(sections) >= 0 and sum(sections) > 0,
                f"rope_multi {name}: bad sections {sections}")
        _expect(rope.n_rot % 2 == 0 and (2 * rope.n_rot == x.shape[2] if vision else rope.n_rot <= x.shape[2]),
                f"rope_multi {name}: bad n_rot {rope.n_rot} for heads of {x.shape[2]}")
        if vision:  # as clip.cpp calls it: each section narrower than n_rot / 2, no YaRN
            _expect(min(sections) > 0 and max(sections) <= rope.n_rot // 2 and rope.ext_factor == 0.0,
                    f"rope_multi {name}: vision sections {sections} do not fit n_rot {rope.n_rot}")
        return self._node(Op.ROPE_MULTI, (x, positions), x.shape, name, rope=rope,
                          sections=tuple(int(v) for v in sections), vision=bool(vision))

    def tanh(self, a: Node, name: str = "") -> Node:
        return self._node(Op.TANH, (a,), a.shape, name)

    def silu(self, a: Node, name: str = "") -> Node:
        return self._node(Op.SILU, (a,), a.shape, name)

    def gelu(self, a: Node, name: str = "") -> Node:
        return self._node(Op.GELU, (a,), a.shape, name)

    def gelu_quick(self, a: Node, name: str = "") -> Node:
        return self._node(Op.GELU_QUICK, (a,), a.shape, name)

    def swiglu(self, gate: Node, up: Node, name: str = "") -> Node:
        _expect(gate.shape == up.shape, f"swiglu {name}: {gate.shape} != {up.shape}")
        return self._node(Op.SWIGLU, (gate, up), gate.shape, name)

    def geglu(self, gate: Node, up: Node, name: str = "") -> Node:
        _expect(gate.shape == up.shape, f"geglu {name}: {gate.shape} != {up.shape}")
        return self._node(Op.GEGLU, (gate, up), gate.shape, name)

    def swiglu_oai(self, gate: Node, up: Node, alpha: float, limit: float, name: str = "") -> Node:
        """gpt-oss's clamped SwiGLU (ggml_swiglu_oai): x = min(gate, limit), y = clamp(up, -limit,
        limit), x * sigmoid(alpha * x) * (y + 1)."""
        _expect(gate.shape == up.shape, f"swiglu_oai {name}: {gate.shape} != {up.shape}")
        return self._node(Op.SWIGLU_OAI, (gate, up), gate.shape, name, alpha=float(alpha), limit=float(limit))

    def sigmoid(self, a: Node, name: str = "") -> Node:
        return self._node(Op.SIGMOID, (a,), a.shape, name)

    def softmax(self, a: Node, name: str = "") -> Node:
        """softmax over the last axis (the gating probabilities of a token's experts)."""
        return self._node(Op.SOFTMAX, (a,), a.shape, name)

    def sum_rows(self, a: Node, name: str = "") -> Node:
        return self._node(Op.SUM_ROWS, (a,), (*a.shape[:-1], 1), name)

    # -- mixture of experts ---------------------------------------------------------------------

    def top_k(self, a: Node, k: int, name: str = "") -> Node:
        """i32 indices of the ``k`` largest values of each row of ``a``, largest first
        (ggml_argsort_top_k: a descending argsort cut to its first ``k``)."""
        _expect(a.dtype == F32 and len(a.shape) == 2 and 0 < k <= a.shape[1], f"top_k {name}: k={k} of {a}")
        return Node(Op.TOP_K, (a,), (a.shape[0], k), I32, {"k": int(k)}, name, self.layer)

    def gather(self, values: Node, ids: Node, name: str = "") -> Node:
        """values[t, ids[t, j]] for each row t: the routing weights of each token's selected experts."""
        _expect(ids.dtype == I32 and len(values.shape) == 2 and len(ids.shape) == 2 and ids.shape[0] == values.shape[0],
                f"gather {name}: ids {ids} do not index the rows of {values}")
        return self._node(Op.GATHER, (values, ids), ids.shape, name)

    def mul_mat_id(self, w: Node, x: Node, ids: Node, name: str = "") -> Node:
        """For each token t and slot j, ``w[ids[t, j]] @ x[t, j]`` (``x[t, 0]`` for every slot when x
        has one: the expert FFN's input): w [n_expert, rows, cols] stacks the experts' matrices;
        the result is [n_tokens, n_slots, rows]."""
        _expect(len(w.shape) == 3, f"mul_mat_id weight must be 3-D [experts, rows, cols], got {w}")
        _expect(ids.dtype == I32 and len(ids.shape) == 2, f"mul_mat_id {name}: ids must be i32[n, k], got {ids}")
        n, k = ids.shape
        _expect(x.dtype == F32 and len(x.shape) == 3 and x.shape[0] == n and x.shape[1] in (1, k)
                and x.shape[2] == w.shape[2],
                f"mul_mat_id {name}: activations {x.shape} do not match weight {w.name} {w.shape} and ids {ids.shape}")
        return self._node(Op.MUL_MAT_ID, (w, x, ids), (n, k, w.shape[1]), name)

    def add_id(self, x: Node, table: Node, ids: Node, name: str = "") -> Node:
        """x[t, j] + table[ids[t, j]] (x [n, k, d], table [n_expert, d], ids i32[n, k]): each routed
        expert's own bias (ggml_add_id), as a row lookup and an add."""
        n, k, d = x.shape
        _expect(ids.shape == (n, k) and len(table.shape) == 2 and table.shape[1] == d,
                f"add_id {name}: table {table.shape} and ids {ids.shape} do not fit {x.shape}")
        rows = self.get_rows(table, self.reshape(ids, (n * k,)), name=f"{name}.rows" if name else "")
        return self.add(x, self.reshape(rows, (n, k, d)), name)

    def weighted_sum(self, x: Node, weights: Node, name: str = "") -> Node:
        """sum over j of x[t, j] * weights[t, j] (x [n, k, d], weights [n, k]), each product rounded
        and the products added in order of j, as llama.cpp's ggml_mul and chain of ggml_adds."""
        _expect(len(x.shape) == 3 and weights.shape == x.shape[:2],
                f"weighted_sum {name}: weights {weights.shape} do not match {x.shape}")
        return self._node(Op.WEIGHTED_SUM, (x, weights), (x.shape[0], x.shape[2]), name)

    def mask_groups(self, x: Node, ids: Node, size: int, name: str = "") -> Node:
        """x [n, n_group * size] with every group of ``size`` values not listed in ids [n, k] set to
        -inf: the experts of the groups a token may not use drop out of its top-k."""
        _expect(len(x.shape) == 2 and size > 0 and x.shape[1] % size == 0 and ids.dtype == I32
                and len(ids.shape) == 2 and ids.shape[0] == x.shape[0] and ids.shape[1] <= x.shape[1] // size,
                f"mask_groups {name}: ids {ids.shape} do not pick groups of {size} in {x.shape}")
        return self._node(Op.MASK_GROUPS, (x, ids), x.shape, name, size=int(size))

    def slice(self, x: Node, start: int, stop: int, name: str = "") -> Node:
        """x[..., start:stop]: a range of the last axis, as a contiguous value."""
        _expect(0 <= start < stop <= x.shape[-1], f"slice {name}: [{start}:{stop}] outside {x.shape}")
        return self._node(Op.SLICE, (x,), (*x.shape[:-1], stop - start), name, start=int(start), stop=int(stop))

    def concat(self, a: Node, b: Node, name: str = "") -> Node:
        """a and b joined along the last axis; their other axes must be equal."""
        _expect(a.shape[:-1] == b.shape[:-1], f"concat {name}: {a.shape} and {b.shape}")
        return self._node(Op.CONCAT, (a, b), (*a.shape[:-1], a.shape[-1] + b.shape[-1]), name)

    def mul_mat_heads(self, w: Node, x: Node, name: str = "") -> Node:
        """``w[h] @ x[t, h]`` for each token t and head h: w [n_head, rows, cols] holds a matrix per
        head; x is [n, n_head, cols], the result [n, n_head, rows]."""
        _expect(len(w.shape) == 3 and x.dtype == F32 and len(x.shape) == 3 and x.shape[1:] == (w.shape[0], w.shape[2]),
                f"mul_mat_heads {name}: activations {x.shape} do not match weight {w.name} {w.shape}")
        return self._node(Op.MUL_MAT_HEADS, (w, x), (x.shape[0], w.shape[0], w.shape[1]), name)

    def hadamard(self, a: Node, n: int, name: str = "") -> Node:
        """``a`` rotated by the Walsh-Hadamard matrix of order ``n`` (a power of two) in chunks of
        ``n`` along its last axis (see ``kv_types.hadamard``)."""
        _expect(n > 0 and n & (n - 1) == 0 and a.shape[-1] % n == 0,
                f"hadamard {name}: order {n} does not divide the rows of {a.shape}")
        return self._node(Op.HADAMARD, (a,), a.shape, name, n=int(n))

    def reshape(self, a: Node, shape: tuple[int, ...], name: str = "") -> Node:
        """``a`` as ``shape`` (same values, same type: i32 ids stay i32)."""
        _expect(math.prod(shape) == math.prod(a.shape), f"reshape {name}: {a.shape} -> {shape}")
        return Node(Op.RESHAPE, (a,), tuple(shape), a.dtype, {}, name, self.layer)

    def kv_store(self, cache: Node, x: Node, cells: Node, name: str = "") -> Node:
        _expect(cache.op is Op.CACHE and x.shape == (cells.shape[0], cache.shape[1]),
                f"kv_store {name}: {x.shape} into cache {cache.shape} at cells {cells.shape}")
        node = Node(Op.KV_STORE, (cache, x, cells), cache.shape, cache.dtype, {}, name, self.layer)
        return node

    def attention(self, q: Node, k: Node, v: Node, kq_mask: Node, scale: float, name: str = "",
                  softcap: float = 0.0, max_bias: float = 0.0, flash: bool = False,
                  softcap_scale: float = 0.0, sinks: Node | None = None, no_cache: bool = False) -> Node:
        """GQA attention of q[n, n_head, d] over the cache cells k, v [n_cells, n_head_kv * d];
        ``softcap`` > 0 caps each score q.k to softcap * tanh(q.k / softcap) (Gemma 2), or to
        softcap * tanh(q.k * softcap_scale) where ``softcap_scale`` is given (Grok's multiplier
        folded into the cap's divisor, one float as llama.cpp computes it; not with ``flash``).
        ``max_bias`` > 0 is ALiBi: the mask then holds -|query position - key position| where
        visible, which head h adds times its slope (ggml_soft_max_ext's ``max_bias``). ``sinks``
        f32[n_head]: each head's attention sink (gpt-oss), a logit that joins the softmax's max and
        sum without a value. ``flash`` computes it as ggml's flash attention does; a quantized V
        cache needs it, and the block types need head sizes that are a multiple of their block.
        ``no_cache``: k and v are the batch's own keys and values (an encoder's), so ggml's rows hold
        exactly n_kv cells where a cache view is padded to 256 (their sums end differently)."""
        n, n_head, head_dim = q.shape
        n_head_kv = k.shape[1] // head_dim
        _expect(k.shape == v.shape and k.shape[1] == n_head_kv * head_dim and n_head % n_head_kv == 0,
                f"attention {name}: q {q.shape} does not fit caches {k.shape}, {v.shape}")
        _expect(kq_mask.shape == (n, k.shape[0]), f"attention {name}: mask {kq_mask.shape}")
        _expect(flash or not kv_types.is_quantized(v.dtype),
                f"attention {name}: a quantized V cache ({v.dtype}) needs flash attention")
        for cache in (k, v):
            _expect(not kv_types.is_quantized(cache.dtype) or head_dim % kv_types.QK == 0,
                    f"attention {name}: cache type {cache.dtype} with block size {kv_types.QK} does not divide "
                    f"the head size {head_dim}")
        _expect(not softcap_scale or (softcap > 0 and not flash),
                f"attention {name}: softcap_scale needs a softcap and no flash attention")
        _expect(sinks is None or (sinks.shape == (n_head,) and sinks.dtype in (F32, GGMLType.F32)),
                f"attention {name}: sinks {sinks} are not one f32 value per head")
        srcs = (q, k, v, kq_mask) if sinks is None else (q, k, v, kq_mask, sinks)
        params = {"softcap_scale": float(softcap_scale)} if softcap_scale else {}
        if no_cache:
            params["no_cache"] = True
        return self._node(Op.ATTENTION, srcs, (n, n_head * head_dim), name,
                          scale=float(scale), n_head_kv=n_head_kv, softcap=float(softcap),
                          max_bias=float(max_bias), flash=bool(flash), **params)

    # -- recurrent state (Mamba) ----------------------------------------------------------------

    def ssm_conv(self, state: Node, x: Node, weight: Node, slots: Node, name: str = "") -> Node:
        """Mamba's causal conv1d of x [n, channels] by weight [channels, d_conv], each token's window
        continuing from its sequence's state row ``slots[t]`` of cache ``state``, which it updates."""
        n, channels = x.shape
        d_conv = weight.shape[1]
        _expect(state.op is Op.CACHE and weight.shape[0] == channels and d_conv >= 2
                and state.shape[1] == channels * (d_conv - 1) and slots.shape == (n,) and slots.dtype == I32,
                f"ssm_conv {name}: x {x.shape}, weight {weight.shape}, state {state.shape}, slots {slots.shape}")
        return self._node(Op.SSM_CONV, (state, x, weight, slots), x.shape, name)

    def ssm_scan(self, state: Node, x: Node, dt: Node, a: Node, b: Node, c: Node, d: Node, slots: Node,
                 name: str = "") -> Node:
        """The selective scan of x [n, n_head, head_dim] with step sizes dt [n, n_head], decay A, input
        and output projections B, C [n, n_group, d_state], plus the skip D * x (see ``Op.SSM_SCAN``)."""
        n, n_head, head_dim = x.shape
        n_group, d_state = b.shape[1:]
        per_head = a.shape == (n_head, 1)  # Mamba-2: one decay per head
        _expect((per_head or a.shape == (n_head * head_dim, d_state)) and n_head % n_group == 0
                and dt.shape == (n, n_head) and b.shape == c.shape == (n, n_group, d_state)
                and d.shape == ((n_head, 1) if per_head else (n_head * head_dim,))
                and state.op is Op.CACHE and state.shape[1] == n_head * head_dim * d_state
                and slots.shape == (n,) and slots.dtype == I32,
                f"ssm_scan {name}: x {x.shape}, dt {dt.shape}, A {a.shape}, B {b.shape}, D {d.shape}, "
                f"state {state.shape}")
        return self._node(Op.SSM_SCAN, (state, x, dt, a, b, c, d, slots), (n, n_head * head_dim), name)

    # -- recurrent state (RWKV) -----------------------------------------------------------------

    def exp(self, a: Node, name: str = "") -> Node:
        return self._node(Op.EXP, (a,), a.shape, name)

    def l2_norm(self, a: Node, eps: float, name: str = "") -> Node:
        return self._node(Op.L2_NORM, (a,), a.shape, name, eps=float(eps))

    def token_shift(self, state: Node, x: Node, slots: Node, name: str = "") -> Node:
        """Each row of x [n, width] replaced by the row before it in its sequence, the first one by
        the sequence's state row ``slots[t]`` of cache ``state``, which then keeps the last row."""
        _expect(state.op is Op.CACHE and len(x.shape) == 2 and state.shape[1] == x.shape[1]
                and slots.shape == (x.shape[0],) and slots.dtype == I32,
                f"token_shift {name}: x {x.shape}, state {state.shape}, slots {slots.shape}")
        return self._node(Op.TOKEN_SHIFT, (state, x, slots), x.shape, name)

    def rwkv_wkv6(self, state: Node, k: Node, v: Node, r: Node, u: Node, w: Node, slots: Node,
                  name: str = "") -> Node:
        """RWKV-6's linear attention over k, v, r, w [n, n_head, head] with the bonus u [n_head, head]
        (see ``Op.RWKV_WKV6``)."""
        n, n_head, head = k.shape
        _expect(v.shape == r.shape == w.shape == k.shape and u.shape == (n_head, head)
                and state.op is Op.CACHE and state.shape[1] == n_head * head * head
                and slots.shape == (n,) and slots.dtype == I32,
                f"rwkv_wkv6 {name}: k {k.shape}, v {v.shape}, r {r.shape}, u {u.shape}, w {w.shape}, "
                f"state {state.shape}")
        return self._node(Op.RWKV_WKV6, (state, k, v, r, u, w, slots), (n, n_head * head), name)

    def gated_linear_attn(self, state: Node, k: Node, v: Node, q: Node, gate: Node, slots: Node, scale: float,
                          name: str = "") -> Node:
        """Gated linear attention over k, v, q and the per-key decays ``gate`` [n, n_head, head] (see
        ``Op.GATED_LINEAR_ATTN``)."""
        n, n_head, head = k.shape
        _expect(v.shape == q.shape == gate.shape == k.shape and state.op is Op.CACHE
                and state.shape[1] == n_head * head * head and slots.shape == (n,) and slots.dtype == I32,
                f"gated_linear_attn {name}: k {k.shape}, v {v.shape}, q {q.shape}, g {gate.shape}, state {state.shape}")
        return self._node(Op.GATED_LINEAR_ATTN, (state, k, v, q, gate, slots), (n, n_head * head), name,
                          scale=float(scale))

    def rwkv_wkv7(self, state: Node, r: Node, w: Node, k: Node, v: Node, a: Node, b: Node, slots: Node,
                  name: str = "") -> Node:
        """RWKV-7's generalized delta rule over r, w, k, v, a, b [n, n_head, head] (see ``Op.RWKV_WKV7``)."""
        n, n_head, head = r.shape
        _expect(all(t.shape == r.shape for t in (w, k, v, a, b))
                and state.op is Op.CACHE and state.shape[1] == n_head * head * head
                and slots.shape == (n,) and slots.dtype == I32,
                f"rwkv_wkv7 {name}: r {r.shape}, w {w.shape}, k {k.shape}, v {v.shape}, a {a.shape}, "
                f"b {b.shape}, state {state.shape}")
        return self._node(Op.RWKV_WKV7, (state, r, w, k, v, a, b, slots), (n, n_head * head), name)

    # -- result ---------------------------------------------------------------------------------

    def build(self, outputs: dict[str, Node]) -> Graph:
        nodes = topological_order(list(outputs.values()))
        return Graph(nodes, outputs, dict(self._inputs), self.n_tokens, self.n_outputs)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ModelError(message)


__all__ = ["F16", "F32", "I32", "GraphBuilder", "RopeParams"]
