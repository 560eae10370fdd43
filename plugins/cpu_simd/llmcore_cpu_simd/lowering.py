"""Lowering a subgraph to the C executor's flat program: one lc_node per op, every buffer placed
once in an arena before the first run.

Values are SSA: each op writes a fresh buffer, and a buffer returns to the arena's free list after
the barrier that follows the last op that reads it (a first-fit allocator over the op order), so
the arena holds only the values alive at once. Reshapes alias their source; a kv_store stands for
its cache. Activations that several matmuls read in the same format (q/k/v, gate/up) are quantized
once, right after the op that writes them.

The threads wait for each other only where a node depends on one before it: nodes that touch
nothing another writes (the q, k and v products) share a phase, and tiny nodes (one token's norm,
rope, routing) run on one thread alone, one after the other, with no barrier between them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llmcore.plugin_api import F16, F32, I32, Node, Op, RopeParams, Subgraph, is_per_row, kv_types, yarn_corr_dims

from llmcore_cpu_simd.buffers import ALIGN, aligned_array, aligned_bytes
from llmcore_cpu_simd.library import ffi

TYPE_F32, TYPE_F16 = 0, 1  # GGML type ids of the float formats

Key = tuple  # a storage: ("v", id) arena value, ("q", key, type) quantized copy, ("moe", what, ...) routing
# buffers of mul_mat_id, ("in", id), ("w", name), ("c", name), ("k", ...) a constant of the program

_NUMPY_DTYPES = {F32: np.float32, F16: np.float16, I32: np.int32}

_PLAIN_OPS = {
    Op.ADD: "LC_OP_ADD", Op.MUL: "LC_OP_MUL", Op.SCALE: "LC_OP_SCALE", Op.SILU: "LC_OP_SILU",
    Op.GELU: "LC_OP_GELU", Op.SWIGLU: "LC_OP_SWIGLU", Op.GEGLU: "LC_OP_GEGLU", Op.TANH: "LC_OP_TANH",
    Op.CLAMP: "LC_OP_CLAMP", Op.DIV: "LC_OP_DIV", Op.SIGMOID: "LC_OP_SIGMOID", Op.EXP: "LC_OP_EXP",
    Op.GELU_QUICK: "LC_OP_GELU_QUICK",
}

#: a routed product of a batch this long or longer gathers each expert's activation rows for the
#: batched kernels and scatters the products back; a shorter batch's is made in place, token by token
#: (each expert then meets fewer tokens than any batched kernel takes): two passes over the pool fewer
_ROUTED_GATHER_MIN_TOKENS = 4

#: ops small enough at one token that one thread runs them alone: the values of ne that count their
#: work (each kernel's split changes no bit: the threads share whole rows, or vectors of 16)
_ALONE_OPS = {
    **{op: 1 for op in ("LC_OP_ADD", "LC_OP_MUL", "LC_OP_DIV", "LC_OP_SCALE", "LC_OP_SILU", "LC_OP_GELU",
                        "LC_OP_SWIGLU", "LC_OP_GEGLU", "LC_OP_TANH", "LC_OP_CLAMP", "LC_OP_SIGMOID", "LC_OP_EXP",
                        "LC_OP_GELU_QUICK")},
    **{op: 2 for op in ("LC_OP_GET_ROWS", "LC_OP_QUANTIZE", "LC_OP_RMS_NORM", "LC_OP_NORM", "LC_OP_L2_NORM",
                        "LC_OP_KV_STORE", "LC_OP_SOFTMAX", "LC_OP_SUM_ROWS", "LC_OP_TOP_K", "LC_OP_GATHER",
                        "LC_OP_MASK_GROUPS")},
    "LC_OP_ROPE": 3, "LC_OP_WEIGHTED_SUM": 3,
    "LC_OP_MOE_MAP": 0,  # thread 0's work at any size
}
#: the most values of such an op one thread runs alone: a few microseconds, less than a barrier costs
#: where the threads share one core with other work
_ALONE_MAX_VALUES = 4096

#: ops that update their state rows (a source) in place
_IN_PLACE_OPS = {"LC_OP_SSM_CONV", "LC_OP_SSM_SCAN", "LC_OP_TOKEN_SHIFT", "LC_OP_RWKV_WKV6", "LC_OP_RWKV_WKV7",
                 "LC_OP_GATED_LINEAR_ATTN"}

#: ops over rows of the last axis: ne = (row length, rows[, k])
_ROW_OPS = {Op.SOFTMAX: "LC_OP_SOFTMAX", Op.SUM_ROWS: "LC_OP_SUM_ROWS", Op.TOP_K: "LC_OP_TOP_K",
            Op.GATHER: "LC_OP_GATHER"}


@dataclass
class _Step:
    """One lc_node before addresses are known."""

    op: str
    dst: Key
    srcs: list[Key]
    type: int = 0
    ne: tuple[int, ...] = ()
    row_bytes: int = 0
    f: tuple[float, ...] = ()
    i: tuple[int, ...] = ()
    run: str = "LC_RUN_ALL"
    barrier_after: bool = True


@dataclass
class _Arena:
    """First-fit placement of byte ranges; ``top`` is the arena size needed."""

    top: int = 0
    free: list[list[int]] = field(default_factory=list)  # [offset, size], sorted by offset

    def alloc(self, size: int) -> int:
        size = -(-size // ALIGN) * ALIGN
        for k, (offset, room) in enumerate(self.free):
            if room >= size:
                if room == size:
                    del self.free[k]
                else:
                    self.free[k] = [offset + size, room - size]
                return offset
        offset, self.top = self.top, self.top + size
        return offset

    def release(self, offset: int, size: int) -> None:
        size = -(-size // ALIGN) * ALIGN
        self.free.append([offset, size])
        self.free.sort()
        merged: list[list[int]] = []
        for block in self.free:
            if merged and merged[-1][0] + merged[-1][1] == block[0]:
                merged[-1][1] += block[1]
            else:
                merged.append(block)
        self.free = merged


class Program:
    """A subgraph lowered for ``lc_graph_run``: the C node array, its arena, and numpy views of
    the input and output buffers."""

    def __init__(self, lib: Any, pool: Any, n_threads: int, subgraph: Subgraph,
                 weights: Mapping[str, np.ndarray], caches: Mapping[str, np.ndarray]) -> None:
        self._lib = lib
        self._weights = weights
        self._caches = caches
        self._input_ids = {n.id for n in subgraph.inputs}
        self._input_arrays = {n.id: aligned_array(n.shape, _NUMPY_DTYPES.get(n.dtype, np.float32))
                              for n in subgraph.inputs}
        self._sizes: dict[Key, int] = {}
        self._constants: dict[Key, np.ndarray] = {}
        self._scratch_floats = 0
        steps: list[_Step] = []
        for node in subgraph.nodes:
            steps.extend(self._lower(node))
        steps = _quantizations_hoisted(_epilogues_folded(steps, {self._key(n) for n in subgraph.outputs}))
        self._schedule(steps)
        self._place(steps, [self._key(n) for n in subgraph.outputs])
        self.inputs = [(n.id, self._input_arrays[n.id]) for n in subgraph.inputs]
        self.outputs = [self._view(self._key(n), n.shape, _NUMPY_DTYPES.get(n.dtype, np.float32))
                        for n in subgraph.outputs]
        self._build_c_program(steps, pool, n_threads)

    # -- storage --------------------------------------------------------------------------------

    def _key(self, node: Node) -> Key:
        if node.id in self._input_ids:
            return ("in", node.id)
        if node.op is Op.WEIGHT:
            return ("w", node.name)
        if node.op is Op.CACHE:
            return ("c", node.name)
        if node.op in (Op.RESHAPE, Op.KV_STORE):
            return self._key(node.srcs[0])
        return ("v", node.id)

    def _value(self, node: Node) -> Key:
        """The key of ``node``'s result, sized in the arena when it is an intermediate."""
        key = self._key(node)
        if key[0] == "v":
            self._sizes[key] = math.prod(node.shape) * 4
        return key

    # -- lowering -------------------------------------------------------------------------------

    def _lower(self, node: Node) -> list[_Step]:
        op, srcs = node.op, node.srcs
        size = math.prod(node.shape)
        key = self._key
        if op is Op.RESHAPE:
            return []
        if op is Op.GET_ROWS:
            table, ids = srcs
            cols = table.shape[1]
            table_type = int(table.dtype) if table.op is Op.WEIGHT else TYPE_F32
            return [_Step("LC_OP_GET_ROWS", self._value(node), [key(table), key(ids)], table_type,
                          (cols, ids.shape[0]), self._row_bytes(table_type, cols))]
        if op is Op.MUL_MAT:
            return self._lower_mul_mat(node)
        if op is Op.MUL_MAT_ID:
            w, x, ids = srcs
            return self._lower_routed(node, self._key(ids), ids.shape)
        if op is Op.MUL_MAT_HEADS:  # head h is expert h of every token: a constant routing
            n, n_head = node.shape[:2]
            heads = ("k", "heads", n, n_head)
            if heads not in self._constants:
                self._constants[heads] = aligned_array((n, n_head), np.int32)
                self._constants[heads][:] = np.arange(n_head, dtype=np.int32)
            return self._lower_routed(node, heads, (n, n_head))
        if op is Op.MASK_GROUPS:
            x, ids = srcs
            return [_Step("LC_OP_MASK_GROUPS", self._value(node), [key(x), key(ids)],
                          ne=(x.shape[1], x.shape[0], ids.shape[1], node.params["size"]))]
        if op is Op.SLICE:
            x = srcs[0]
            start, stop = node.params["start"], node.params["stop"]
            return [_Step("LC_OP_COPY_COLS", self._value(node), [key(x)],
                          ne=(size // (stop - start), x.shape[-1], stop - start, stop - start), i=(start, 0))]
        if op is Op.CONCAT:  # each part copied into its columns of the result
            a, b = srcs
            rows, width = size // node.shape[-1], node.shape[-1]
            dst = self._value(node)
            return [_Step("LC_OP_COPY_COLS", dst, [key(a)], ne=(rows, a.shape[-1], width, a.shape[-1]), i=(0, 0)),
                    _Step("LC_OP_COPY_COLS", dst, [key(b)], ne=(rows, b.shape[-1], width, b.shape[-1]),
                          i=(0, a.shape[-1]))]
        if op in _ROW_OPS:
            cols = srcs[0].shape[-1]
            return [_Step(_ROW_OPS[op], self._value(node), [key(s) for s in srcs],
                          ne=(cols, math.prod(srcs[0].shape[:-1]), node.shape[-1]))]
        if op is Op.SSM_CONV:
            n, channels = srcs[1].shape
            return [_Step("LC_OP_SSM_CONV", self._value(node), [key(s) for s in srcs], ne=(channels, n, srcs[2].shape[1]))]
        if op is Op.SSM_SCAN:
            n, n_head, head_dim = srcs[1].shape
            n_group, d_state = srcs[4].shape[1:]
            per_head = srcs[3].shape == (n_head, 1)
            return [_Step("LC_OP_SSM_SCAN", self._value(node), [key(s) for s in srcs],
                          ne=(head_dim, n_head, n, d_state), i=(n_group, int(per_head)))]
        if op is Op.L2_NORM:
            cols = node.shape[-1]
            return [_Step("LC_OP_L2_NORM", self._value(node), [key(srcs[0])], ne=(cols, size // cols),
                          f=(node.params["eps"],))]
        if op is Op.TOKEN_SHIFT:
            n, width = srcs[1].shape
            return [_Step("LC_OP_TOKEN_SHIFT", self._value(node), [key(s) for s in srcs], ne=(width, n))]
        if op in (Op.RWKV_WKV6, Op.RWKV_WKV7, Op.GATED_LINEAR_ATTN):
            n, n_head, head = srcs[1].shape
            return [_Step(f"LC_OP_{op.name}", self._value(node), [key(s) for s in srcs], ne=(head, n_head, n),
                          f=(node.params["scale"],) if op is Op.GATED_LINEAR_ATTN else ())]
        if op is Op.WEIGHTED_SUM:
            n, k, d = srcs[0].shape
            return [_Step("LC_OP_WEIGHTED_SUM", self._value(node), [key(s) for s in srcs], ne=(d, k, n))]
        if op in (Op.RMS_NORM, Op.NORM):
            cols = node.shape[-1]
            return [_Step("LC_OP_RMS_NORM" if op is Op.RMS_NORM else "LC_OP_NORM", self._value(node),
                          [key(srcs[0])], ne=(cols, size // cols), f=(node.params["eps"],))]
        if op in (Op.ROPE, Op.ROPE_MULTI):
            return [self._lower_rope(node)]
        if op is Op.KV_STORE:
            cache, x, cells = srcs
            return [_Step("LC_OP_KV_STORE", key(cache), [key(x), key(cells)], _type_id(cache.dtype),
                          (cache.shape[1], x.shape[0]), kv_types.row_bytes(cache.dtype, cache.shape[1]))]
        if op is Op.HADAMARD:
            return [_Step("LC_OP_HADAMARD", self._value(node), [key(srcs[0])], ne=(size,), i=(node.params["n"],))]
        if op is Op.ATTENTION:
            q, k, v, mask = srcs[:4]
            n, n_head, head_dim = q.shape
            group = n_head // node.params["n_head_kv"]
            self._scratch_floats = max(self._scratch_floats, self._lib.lc_attention_scratch_floats(
                head_dim, n_head, group, mask.shape[1], int(bool(node.params.get("flash")))))
            return [_Step("LC_OP_ATTENTION", self._value(node), [key(s) for s in srcs],
                          _type_id(k.dtype), (head_dim, n_head, n, mask.shape[1]),
                          f=(node.params["scale"], node.params["softcap"], node.params["max_bias"],
                             node.params.get("softcap_scale", 0.0)),
                          i=(node.params["n_head_kv"], _type_id(v.dtype), int(bool(node.params.get("flash"))),
                             int(bool(node.params.get("no_cache")))))]
        if op is Op.SWIGLU_OAI:
            return [_Step("LC_OP_SWIGLU", self._value(node), [key(s) for s in srcs], ne=(size,),
                          f=(node.params["alpha"], node.params["limit"]), i=(1,))]
        binary = op in (Op.ADD, Op.MUL, Op.DIV)
        ne = (size, math.prod(srcs[1].shape)) if binary else (size,)
        per_row = (srcs[0].shape[-1],) if binary and is_per_row(srcs[0].shape, srcs[1].shape) else ()
        f = ((node.params["factor"],) if op is Op.SCALE
             else (node.params["low"], node.params["high"]) if op is Op.CLAMP else ())
        return [_Step(_PLAIN_OPS[op], self._value(node), [key(s) for s in srcs], ne=ne, f=f, i=per_row)]

    def _lower_mul_mat(self, node: Node) -> list[_Step]:
        w, x = node.srcs
        n_out, k = w.shape
        m = math.prod(x.shape[:-1])
        w_type = int(w.dtype)
        steps: list[_Step] = []
        x_key, x_bytes = self._activations(x, self._lib.lc_traits[w_type].vec_dot_type, k, m, steps)
        # the packed GEMM of prompt batches unpacks a block of weight rows into the thread's scratch
        self._scratch_floats = max(self._scratch_floats, -(-self._lib.lc_packed_bytes(w_type, k) // 4))
        steps.append(_Step("LC_OP_MUL_MAT", self._value(node), [self._key(w), x_key], w_type,
                           (k, m, n_out, x_bytes), self._row_bytes(w_type, k)))
        return steps

    def _activations(self, x: Node, vec_type: int, k: int, rows: int, steps: list[_Step]) -> tuple[Key, int]:
        """The key and row bytes of ``x`` in the weight's vec_dot format ``vec_type``: x itself
        for f32, else its quantized copy, made by the first matmul that reads it in this format."""
        if vec_type == TYPE_F32:
            return self._key(x), k * 4
        x_key, x_bytes = ("q", self._key(x), vec_type), self._row_bytes(vec_type, k)
        if x_key not in self._sizes:
            self._sizes[x_key] = rows * x_bytes
            steps.append(_Step("LC_OP_QUANTIZE", x_key, [self._key(x)], vec_type, (k, rows), x_bytes))
        return x_key, x_bytes

    def _lower_routed(self, node: Node, ids_key: Key, ids_shape: tuple[int, int]) -> list[_Step]:
        """A routed product (mul_mat_id, or mul_mat_heads with its constant routing): the routing
        map of the ids (once per ids), each expert's activation rows gathered together, every
        expert's product by the matmul kernels, and the rows put back in place; a short batch's
        products read and write the rows in place."""
        w, x = node.srcs[:2]
        n_expert, n_out, k = w.shape
        n, n_slots = ids_shape
        n_routed = n * n_slots
        w_type = int(w.dtype)
        steps: list[_Step] = []
        x_key, x_bytes = self._activations(x, self._lib.lc_traits[w_type].vec_dot_type, k,
                                           math.prod(x.shape[:-1]), steps)
        map_key = ("moe", "map", ids_key, n_expert)
        if map_key not in self._sizes:
            self._sizes[map_key] = 4 * (2 * n_expert + 1 + 2 * n_routed)
            steps.append(_Step("LC_OP_MOE_MAP", map_key, [ids_key], ne=(n, n_slots, n_expert)))
        row_bytes = self._row_bytes(w_type, k)
        if n < _ROUTED_GATHER_MIN_TOKENS:
            return [*steps, _Step("LC_OP_MUL_MAT_ID", self._value(node), [self._key(w), x_key, map_key], w_type,
                                  (k, n_expert, n_out, x_bytes), row_bytes, i=(0, n_slots, x.shape[1]))]
        # the gate and up products of a layer read the same rows: gathered once for both
        gathered, products = ("moe", "x", x_key, map_key), ("moe", "y", node.id)
        if gathered not in self._sizes:
            self._sizes[gathered] = n_routed * x_bytes
            steps.append(_Step("LC_OP_MOE_GATHER", gathered, [x_key, map_key],
                               ne=(x_bytes, x.shape[1], n_routed, n_expert)))
        self._sizes[products] = n_routed * n_out * 4
        self._scratch_floats = max(self._scratch_floats, -(-self._lib.lc_packed_bytes(w_type, k) // 4))
        return [*steps,
                _Step("LC_OP_MUL_MAT_ID", products, [self._key(w), gathered, map_key], w_type,
                      (k, n_expert, n_out, x_bytes), row_bytes),
                _Step("LC_OP_MOE_SCATTER", self._value(node), [products, map_key], ne=(n_out, n_slots, n_routed, n_expert))]

    def _lower_rope(self, node: Node) -> _Step:
        """ROPE, or ROPE_MULTI as ops.c's modes 1 (M-RoPE) and 2 (vision), its sections a byte each."""
        x, positions = node.srcs[:2]
        p: RopeParams = node.params["rope"]
        low, high = yarn_corr_dims(p) if p.ext_factor != 0.0 else (0.0, 0.0)
        vision = node.op is Op.ROPE_MULTI and node.params["vision"]
        mode = 0 if node.op is Op.ROPE else 2 if vision else 1
        sections = sum(width << (8 * k) for k, width in enumerate(node.params.get("sections", ())))
        self._scratch_floats = max(self._scratch_floats, 2 * p.n_rot if vision else p.n_rot)
        n, n_head, head_dim = x.shape
        return _Step("LC_OP_ROPE", self._value(node), [self._key(s) for s in node.srcs],
                     ne=(head_dim, n_head, n), i=(p.n_rot, int(p.neox or node.op is Op.ROPE_MULTI), mode, sections),
                     f=(p.freq_base, p.freq_scale, p.ext_factor, p.attn_factor, low, high))

    def _row_bytes(self, type_id: int, cols: int) -> int:
        traits = self._lib.lc_traits[type_id]
        return cols // traits.block_size * traits.type_size


    # -- placement ------------------------------------------------------------------------------

    def _place(self, steps: list[_Step], output_keys: list[Key]) -> None:
        last_read: dict[Key, int] = {}
        for index, step in enumerate(steps):
            for src in step.srcs:
                last_read[src] = index
        for key in output_keys:
            last_read[key] = len(steps)
        # a buffer is free again once the threads have waited after its last reader: the steps of
        # one phase run at once, and none may write where another reads
        phase_end, end = [0] * len(steps) + [len(steps)], len(steps) - 1  # outputs: never free
        for index in reversed(range(len(steps))):
            end = index if steps[index].barrier_after else end
            phase_end[index] = end
        arena = _Arena()
        self._offsets: dict[Key, int] = {}
        ending: dict[int, list[Key]] = {}
        for index, step in enumerate(steps):
            if step.dst in self._sizes and step.dst not in self._offsets:
                self._offsets[step.dst] = arena.alloc(self._sizes[step.dst])
                ending.setdefault(phase_end[max(index, last_read.get(step.dst, index))], []).append(step.dst)
            for key in ending.pop(index, []):  # after the op's own output is placed: no aliasing
                arena.release(self._offsets[key], self._sizes[key])
        self._arena = aligned_bytes(arena.top)

    def _schedule(self, steps: list[_Step]) -> None:
        """Who runs each step, and where the threads wait: a step joins the phase since the last
        barrier when, against every step of it, both run on one thread alone (in order) or neither
        writes what the other reads or writes."""
        phase: list[tuple[_Step, set[Key], set[Key]]] = []
        shared = 0
        for index, step in enumerate(steps):
            step.run = self._runner(step)
            reads = set(step.srcs)
            writes = {step.dst} | (reads if step.op in _IN_PLACE_OPS else set())
            alone = step.run != "LC_RUN_ALL"
            waits = shared == self._lib.LC_MAX_SHARED_NODES or any(
                not (alone and other.run != "LC_RUN_ALL")
                and (writes & (other_reads | other_writes) or other_writes & reads)
                for other, other_reads, other_writes in phase)
            if phase and waits:
                steps[index - 1].barrier_after = True
                phase, shared = [], 0
            elif phase:
                steps[index - 1].barrier_after = False
            phase.append((step, reads, writes))
            shared += not alone

    def _runner(self, step: _Step) -> str:
        """LC_RUN_ALONE for a tiny step; a product of one chunk of rows (an MoE's gating) is thread
        0's first claim. Attention runs on every thread, one token's too (the threads share its heads,
        or pieces of ggml's split of a long view's cells: the same bits as one thread; one token's on
        thread 0 alone had cost 15% of SmolLM2's decode, the others waiting)."""
        if step.op == "LC_OP_MUL_MAT" and step.ne[2] <= self._lib.LC_MM_MIN_CHUNK_ROWS:
            return "LC_RUN_FIRST_CLAIM"
        dims = _ALONE_OPS.get(step.op)
        if dims is not None and math.prod(step.ne[:dims]) <= _ALONE_MAX_VALUES:
            return "LC_RUN_ALONE"
        return "LC_RUN_ALL"

    def _view(self, key: Key, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if key[0] == "v":
            offset = self._offsets[key]
            return self._arena[offset:offset + math.prod(shape) * 4].view(dtype).reshape(shape)
        if key[0] == "c":
            return self._caches[key[1]]
        return self._input_arrays[key[1]].reshape(shape)

    def _address(self, key: Key) -> int:
        kind = key[0]
        if kind in ("v", "q", "moe"):
            return self._arena.ctypes.data + self._offsets[key]
        if kind == "in":
            return self._input_arrays[key[1]].ctypes.data
        if kind == "k":
            return self._constants[key].ctypes.data
        if kind == "w":
            return self._weights[key[1]].ctypes.data
        return self._caches[key[1]].ctypes.data

    def _build_c_program(self, steps: list[_Step], pool: Any, n_threads: int) -> None:
        lib = self._lib
        self._nodes = ffi.new("lc_node[]", max(1, len(steps)))
        for c, step in zip(self._nodes, steps):
            c.op = getattr(lib, step.op)
            c.type = step.type
            c.dst = ffi.cast("void *", self._address(step.dst))
            for k, src in enumerate(step.srcs):
                c.src[k] = ffi.cast("void *", self._address(src))
            for k, value in enumerate(step.ne):
                c.ne[k] = value
            c.row_bytes = step.row_bytes
            c.run = getattr(lib, step.run)
            c.barrier_after = step.barrier_after
            for k, value in enumerate(step.f):
                c.f[k] = value
            for k, value in enumerate(step.i):
                c.i[k] = value
        floats = -(-(self._scratch_floats + ALIGN) // 16) * 16
        self._scratch = aligned_array((n_threads * floats,), np.float32)
        self.program = ffi.new("lc_program *", {
            "nodes": self._nodes, "n_nodes": len(steps), "pool": pool,
            "scratch": ffi.cast("float *", self._scratch.ctypes.data), "scratch_floats": floats,
        })

    @property
    def arena_bytes(self) -> int:
        return self._arena.nbytes + self._scratch.nbytes


def _epilogues_folded(steps: list[_Step], output_keys: set[Key]) -> list[_Step]:
    """Elementwise steps folded into the step whose result only they read, where that step's kernel
    applies them as it stores each value, in the same float operations: a norm's MUL by its weight
    row (src[1]) and then its ADD of a bias row (src[2]), a product's ADD of a bias row (src[2]).
    One pass over the values and one barrier fewer for each."""
    readers: dict[Key, int] = {}
    for step in steps:
        for src in step.srcs:
            readers[src] = readers.get(src, 0) + 1
    producers: dict[Key, _Step] = {}
    folded: list[_Step] = []
    for step in steps:
        first = producers.get(step.srcs[0]) if step.op in ("LC_OP_MUL", "LC_OP_ADD") and not step.i else None
        if (first is not None and step.srcs[1][0] == "w" and readers[first.dst] == 1
                and first.dst not in output_keys and _takes_epilogue(first, step)):
            first.srcs.append(step.srcs[1])
            first.dst = step.dst
            producers[step.dst] = first
            continue
        producers[step.dst] = step
        folded.append(step)
    return folded


def _takes_epilogue(first: _Step, step: _Step) -> bool:
    """Whether ``step`` (a MUL or ADD by a weight row) can fold into ``first``, the step writing its
    first operand."""
    if first.op in ("LC_OP_NORM", "LC_OP_RMS_NORM"):
        n_srcs = 1 if step.op == "LC_OP_MUL" else 2  # the weight first, then the bias
        return len(first.srcs) == n_srcs and step.ne[1] == first.ne[0]
    return (first.op == "LC_OP_MUL_MAT" and step.op == "LC_OP_ADD" and not first.i and len(first.srcs) == 2
            and step.ne[1] == first.ne[2])


def _quantizations_hoisted(steps: list[_Step]) -> list[_Step]:
    """Each quantization moved up to just after the last step that writes its source: the products
    that read one input in different formats (q in Q8_K, k and v in Q8_0) then share a phase."""
    anchors: dict[int, list[_Step]] = {}
    last_write: dict[Key, int] = {}
    for index, step in enumerate(steps):
        if step.op == "LC_OP_QUANTIZE":
            anchors.setdefault(last_write.get(step.srcs[0], -1), []).append(step)
        for key in [step.dst, *(step.srcs if step.op in _IN_PLACE_OPS else ())]:
            last_write[key] = index
    hoisted = list(anchors.get(-1, []))
    for index, step in enumerate(steps):
        if step.op != "LC_OP_QUANTIZE":
            hoisted.append(step)
        hoisted.extend(anchors.get(index, []))
    return hoisted


def _type_id(cache_type: Any) -> int:
    """The GGML type id of a KV cache type (its name)."""
    return int(kv_types.ggml_type(str(cache_type)))
