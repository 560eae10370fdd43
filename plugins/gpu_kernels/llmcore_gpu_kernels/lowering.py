"""What the kernels run, device-independently: which nodes they compute (:func:`supports`) and the
lowering of a subgraph to the flat list of kernel launches a GPU backend replays each step, with
the memory plan of its intermediate values (one arena, ranges reused once read for the last time).

Nothing that changes per step is baked in: token ids, positions, cells and the mask are input
buffers the host rewrites before each step, the rope angles a table it writes, and n_kv is read by
the attention kernel from a small step buffer, so one plan serves every step of a batch shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llmcore.plugin_api import (
    F16, F32, GGML_QUANT_SIZES, I32, BackendError, GGMLType, Node, Op, Subgraph, is_per_row,
)

from llmcore_gpu_kernels.render import WORKGROUP

#: weight types the kernels decode (get_rows_<name>, mul_mat_<name>)
WEIGHT_KERNELS = {
    GGMLType.F32: "f32", GGMLType.F16: "f16", GGMLType.BF16: "bf16",
    GGMLType.Q4_0: "q4_0", GGMLType.Q4_1: "q4_1", GGMLType.Q5_0: "q5_0", GGMLType.Q5_1: "q5_1", GGMLType.Q8_0: "q8_0",
    GGMLType.Q2_K: "q2_k", GGMLType.Q3_K: "q3_k", GGMLType.Q4_K: "q4_k", GGMLType.Q5_K: "q5_k", GGMLType.Q6_K: "q6_k",
}
#: how the activations are rounded before meeting each weight type (ggml's vec_dot_type)
_PREPARE = {
    GGMLType.F16: "f16", GGMLType.BF16: "bf16",
    GGMLType.Q4_0: "q8_1", GGMLType.Q4_1: "q8_1", GGMLType.Q5_0: "q8_1", GGMLType.Q5_1: "q8_1", GGMLType.Q8_0: "q8_1",
    GGMLType.Q2_K: "q8_k", GGMLType.Q3_K: "q8_k", GGMLType.Q4_K: "q8_k", GGMLType.Q5_K: "q8_k", GGMLType.Q6_K: "q8_k",
}
#: weight types with a mul_mat in llama.cpp's CPU order (mul_mat_ordered_<name>), for CPU devices
ORDERED_MUL_MAT = {GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0}
#: KV cache types the kernels store and attend over
CACHE_KERNELS = {F16: "f16", F32: "f32"}
_ATTENTION_PARAMS = {"scale", "n_head_kv", "softcap", "max_bias", "flash"}
MAX_HEAD_DIM = 256  # attention keeps a query head in workgroup memory
MAX_TILE = 8  # tokens per mul_mat workgroup (common.h)
STEP_KEY = "step"
_BINARY = {Op.ADD: 0, Op.MUL: 1, Op.DIV: 2}
_UNARY = {Op.SCALE: 0, Op.SILU: 1, Op.GELU: 2, Op.TANH: 3, Op.CLAMP: 4}
_ELEMENTWISE = frozenset({*_BINARY, *_UNARY, Op.SWIGLU, Op.GEGLU, Op.RMS_NORM, Op.NORM, Op.RESHAPE})


def supports(node: Node, max_buffer: int) -> bool:
    """Whether the kernels compute ``node`` as the op reference specifies, no buffer it reads
    larger than ``max_buffer`` bytes (the device's largest allocation)."""
    if node.op in (Op.MUL_MAT, Op.GET_ROWS) and node.srcs[0].op is Op.WEIGHT:
        w = node.srcs[0]
        # mul_mat reads whole 32-value units (every block type's rows are made of them)
        return (w.dtype in WEIGHT_KERNELS and len(w.shape) == 2 and nbytes(w) <= max_buffer
                and (node.op is Op.GET_ROWS or w.shape[1] % 32 == 0))
    if node.op is Op.MUL_MAT:
        return False  # activation x activation products are not in a decoder's graph
    if node.op is Op.GET_ROWS:
        return node.srcs[0].dtype == F32
    if any(s.op is Op.WEIGHT and s.dtype != GGMLType.F32 for s in node.srcs):
        return False
    if node.op is Op.KV_STORE:
        return node.dtype in CACHE_KERNELS and nbytes(node) <= max_buffer
    if node.op is Op.ATTENTION:
        # q, k, v and the mask with these params; a source or param added later is not known here
        if len(node.srcs) != 4 or not set(node.params) <= _ATTENTION_PARAMS:
            return False
        q, k, v, _ = node.srcs
        # ALiBi and ggml's flash-attention order: no kernel yet
        return (not node.params.get("max_bias") and not node.params.get("flash")
                and k.dtype in CACHE_KERNELS and v.dtype == k.dtype
                and q.shape[2] <= MAX_HEAD_DIM and nbytes(k) <= max_buffer)
    if node.op is Op.ROPE:  # angles from the host for input positions; no frequency factors yet
        return len(node.srcs) == 2 and node.srcs[1].op is Op.INPUT and node.shape[2] % 2 == 0
    return node.op in _ELEMENTWISE


@dataclass(frozen=True)
class Ref:
    """A buffer a kernel binds: ``size`` bytes of a value in a space. Spaces: ``arena`` (key: a
    value number, placed by the plan), ``io`` (key: a host-written buffer of the plan), ``weight``
    and ``cache`` (key: the tensor's name)."""

    space: str
    key: str | int
    size: int


@dataclass
class Launch:
    kernel: str
    args: list[Ref | int | float]  # in the kernel's parameter order
    groups: tuple[int, int]


@dataclass
class Program:
    launches: list[Launch] = field(default_factory=list)
    #: host-written buffers: graph inputs, the step buffer, rope tables; bytes each
    io: dict[str, int] = field(default_factory=dict)
    #: (node id, io key, numpy dtype, shape) per Subgraph.inputs entry
    inputs: list[tuple[int, str, str, tuple[int, ...]]] = field(default_factory=list)
    #: (io key, positions input node id, rope params): cos/sin tables the host writes each step
    rope_tables: list[tuple[str, int, Any]] = field(default_factory=list)
    #: (where, shape, element type) per Subgraph.outputs entry, in order
    outputs: list[tuple[Ref, tuple[int, ...], str]] = field(default_factory=list)
    #: byte offset in the arena of each arena value, and the arena's size
    arena_offsets: list[int] = field(default_factory=list)
    arena_size: int = 0


@dataclass(frozen=True)
class Target:
    """What of the device the lowering depends on: ``alignment`` of every arena value's offset,
    and whether it is a CPU (one work-item per weight row there; several sharing a row on GPUs,
    so that neighbours read neighbouring blocks)."""

    alignment: int
    cpu: bool

    def lanes(self, units: int) -> int:
        """Work-items per weight row of ``units`` 32-value units (a power of two <= WG)."""
        if self.cpu:
            return 1
        return 4 if units < 64 else 8 if units < 256 else 16


def nbytes(node: Node) -> int:
    if isinstance(node.dtype, GGMLType):
        return row_bytes(node.dtype, node.shape[-1]) * math.prod(node.shape[:-1])
    return math.prod(node.shape) * (2 if node.dtype == F16 else 4)


def row_bytes(w_type: GGMLType, cols: int) -> int:
    block, size = GGML_QUANT_SIZES[w_type]
    return cols // block * size


def lower(subgraph: Subgraph, target: Target) -> Program:
    return _Lowering(subgraph, target).program


def _groups(count: int) -> tuple[int, int]:
    return max(1, -(-count // WORKGROUP)), 1


class _Lowering:
    def __init__(self, subgraph: Subgraph, target: Target) -> None:
        self.program = Program()
        self.target = target
        self.sizes: list[int] = []  # bytes of each arena value
        self.defined: list[int] = []  # the launch writing each arena value
        self.last_read: list[int] = []
        self.where: dict[int, Ref] = {}
        self.prepared: dict[tuple[Ref, str], tuple[Ref, int, int]] = {}
        for node in subgraph.weights:
            self.where[node.id] = Ref("weight", node.name, nbytes(node))
        for node in subgraph.caches:
            self.where[node.id] = Ref("cache", node.name, nbytes(node))
        for node in subgraph.inputs:
            key = f"in{node.id}"
            size = 4 * math.prod(node.shape)
            self.program.io[key] = size
            self.program.inputs.append((node.id, key, "int32" if node.dtype == I32 else "float32", node.shape))
            self.where[node.id] = Ref("io", key, size)
        self.program.io[STEP_KEY] = 16
        for node in subgraph.nodes:
            self._lower(node)
        end = len(self.program.launches)
        for node in subgraph.outputs:
            ref = self.where[node.id]
            if ref.space == "arena":
                self.last_read[ref.key] = end
            self.program.outputs.append((ref, node.shape, "float16" if node.dtype == F16 else "float32"))
        self._place()

    def _new(self, size: int) -> Ref:
        self.sizes.append(size)
        self.defined.append(len(self.program.launches))
        self.last_read.append(len(self.program.launches))
        return Ref("arena", len(self.sizes) - 1, size)

    def _read(self, ref: Ref) -> Ref:
        if ref.space == "arena":
            self.last_read[ref.key] = len(self.program.launches)
        return ref

    def _src(self, node: Node, i: int) -> Ref:
        return self._read(self.where[node.srcs[i].id])

    def _launch(self, kernel: str, args: list[Ref | int | float], groups: tuple[int, int]) -> None:
        self.program.launches.append(Launch(kernel, args, groups))

    def _lower(self, node: Node) -> None:
        op, p = node.op, node.params
        if op is Op.RESHAPE:
            self.where[node.id] = self.where[node.srcs[0].id]
            return
        if op is Op.MUL_MAT:
            self._mul_mat(node)
            return
        total = math.prod(node.shape)
        if op is Op.KV_STORE:
            cache, x, cells = (self._src(node, i) for i in range(3))
            n, width = node.srcs[1].shape
            self._launch(f"kv_store_{CACHE_KERNELS[node.dtype]}", [x, cells, cache, n, width], _groups(n * width))
            self.where[node.id] = cache
            return
        srcs = [self._src(node, i) for i in range(len(node.srcs))]
        out = self.where[node.id] = self._new(4 * total)
        match op:
            case Op.GET_ROWS:
                table = node.srcs[0]
                n, cols = node.shape
                w_type = table.dtype if table.op is Op.WEIGHT else GGMLType.F32
                per_item = 1 if w_type in (GGMLType.F32, GGMLType.F16, GGMLType.BF16) else 32
                self._launch(f"get_rows_{WEIGHT_KERNELS[w_type]}", [srcs[0], srcs[1], out, n, cols, row_bytes(w_type, cols)],
                             _groups(n * cols // per_item))
            case Op.ADD | Op.MUL | Op.DIV:
                a, b = node.srcs
                self._launch("binary", [srcs[0], srcs[1], out, total, math.prod(b.shape), _BINARY[op],
                                        a.shape[-1] if is_per_row(a.shape, b.shape) else 0], _groups(total))
            case Op.SCALE | Op.SILU | Op.GELU | Op.TANH | Op.CLAMP:
                self._launch("unary", [srcs[0], out, total, _UNARY[op], float(p.get("factor", 1.0)),
                                       float(p.get("low", 0.0)), float(p.get("high", 0.0))], _groups(total))
            case Op.SWIGLU | Op.GEGLU:
                self._launch("glu", [srcs[0], srcs[1], out, total, int(op is Op.GEGLU)], _groups(total))
            case Op.RMS_NORM | Op.NORM:
                cols = node.shape[-1]
                self._launch("row_norm", [srcs[0], out, total // cols, cols, int(op is Op.NORM), float(p["eps"])],
                             (total // cols, 1))
            case Op.ROPE:
                self._rope(node, srcs, out)
            case Op.ATTENTION:
                self._attention(node, srcs, out)
            case _:
                raise BackendError(f"gpu kernels: no kernel for {node}")

    def _attention(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        q, k, _, mask = node.srcs
        n, n_head, head_dim = q.shape
        p = node.params
        step = Ref("io", STEP_KEY, 16)
        shape = [n_head, head_dim, n_head // p["n_head_kv"], k.shape[1], mask.shape[1], float(p["scale"])]
        cache = CACHE_KERNELS[k.dtype]
        if self.target.cpu and not p.get("softcap"):
            # llama.cpp's CPU order, which costs little on a CPU: q rounded in device memory first
            q_ref = srcs[0]
            if k.dtype == F16:
                values = n * n_head * head_dim
                q_ref = self._new(4 * values)
                self._launch("prepare_float", [srcs[0], q_ref, values, 0], _groups(values))
            self._launch(f"attention_ordered_{cache}", [self._read(q_ref), *srcs[1:], step, out, n, *shape],
                         (n * n_head, 1))
            return
        self._launch(f"attention_{cache}", [*srcs, step, out, *shape, float(p.get("softcap") or 0.0)], (n * n_head, 1))

    def _mul_mat(self, node: Node) -> None:
        w, x = node.srcs
        rows, cols = w.shape
        n = math.prod(x.shape[:-1])
        x_ref = self.where[x.id]
        d_off = s_off = 0
        mode = _PREPARE.get(w.dtype)
        if mode is not None:
            key = (x_ref, mode)
            if key not in self.prepared:
                self.prepared[key] = self._prepare(self._read(x_ref), mode, n, cols)
            x_ref, d_off, s_off = self.prepared[key]
        w_ref, x_ref = self._src(node, 0), self._read(x_ref)
        out = self.where[node.id] = self._new(4 * n * rows)
        tile = 1 if n == 1 else MAX_TILE
        shape = [w_ref, x_ref, out, rows, cols, n, row_bytes(w.dtype, cols), d_off, s_off]
        if self.target.cpu and w.dtype in ORDERED_MUL_MAT:  # llama.cpp's CPU order, a row per work-item
            self._launch(f"mul_mat_ordered_{WEIGHT_KERNELS[w.dtype]}", [*shape, tile],
                         (-(-rows // WORKGROUP), -(-n // tile)))
            return
        lanes = self.target.lanes(cols // 32)
        self._launch(f"mul_mat_{WEIGHT_KERNELS[w.dtype]}", [*shape, lanes, tile],
                     (-(-rows // (WORKGROUP // lanes)), -(-n // tile)))

    def _prepare(self, x: Ref, mode: str, n: int, cols: int) -> tuple[Ref, int, int]:
        """The activations rounded for a weight type: (where, d_off, s_off) in floats."""
        values = n * cols
        if mode in ("f16", "bf16"):
            out = self._new(4 * values)
            self._launch("prepare_float", [x, out, values, int(mode == "bf16")], _groups(values))
            return out, 0, 0
        if mode == "q8_1":
            blocks = values // 32
            out = self._new(4 * (values + 2 * blocks))
            self._launch("prepare_q8_1", [x, out, blocks, values, values + blocks], _groups(blocks))
            return out, values, values + blocks
        blocks = values // 256
        out = self._new(4 * (values + blocks))
        self._launch("prepare_q8_k", [x, out, blocks, values], _groups(blocks))
        return out, values, 0

    def _rope(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        n, heads, dim = node.shape
        rope = node.params["rope"]
        positions = node.srcs[1]
        # one cos/sin table for every rope node with the same positions and settings (each
        # layer's q and k), written by the host before each step
        key = next((k for k, pos_id, r in self.program.rope_tables if pos_id == positions.id and r == rope), None)
        size = 4 * 2 * n * (rope.n_rot // 2)
        if key is None:
            key = f"rope{len(self.program.rope_tables)}"
            self.program.io[key] = size
            self.program.rope_tables.append((key, positions.id, rope))
        self._launch("rope", [srcs[0], Ref("io", key, size), out, n, heads, dim, rope.n_rot // 2, int(rope.neox)],
                     _groups(n * heads * dim // 2))

    def _place(self) -> None:
        """Arena offsets: a value takes the range of a value of the same (aligned) size whose
        last reader came before the launch that writes it, else new space at the top. A
        decoder's layers repeat their shapes, so exact sizes find their match."""
        align = self.target.alignment
        order = sorted(range(len(self.sizes)), key=lambda v: self.defined[v])
        by_last_read = sorted(range(len(self.sizes)), key=lambda v: self.last_read[v])
        free: dict[int, list[int]] = {}  # aligned size -> offsets free for reuse
        offsets = [0] * len(self.sizes)
        top = released = 0
        for v in order:
            while released < len(by_last_read) and self.last_read[by_last_read[released]] < self.defined[v]:
                done = by_last_read[released]
                free.setdefault(-(-self.sizes[done] // align) * align, []).append(offsets[done])
                released += 1
            size = -(-self.sizes[v] // align) * align
            if free.get(size):
                offsets[v] = free[size].pop()
            else:
                offsets[v] = top
                top += size
        self.program.arena_offsets = offsets
        self.program.arena_size = top
