"""Lowering of a subgraph to the flat list of shader dispatches its command buffer replays, with
the memory plan of its intermediate values: one arena whose ranges are reused once a value has
been read for the last time.

Nothing that changes per step is baked in: token ids, positions, cells and the mask are input
buffers the host rewrites before each submit, and n_kv is read by the attention shader from a
small step buffer, so one recording serves every step of a batch shape.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcore.plugin_api import F16, F32, GGML_QUANT_SIZES, I32, BackendError, GGMLType, Node, Op, Subgraph

#: weight types mul_mat and get_rows decode in the shaders
WEIGHT_SHADERS = {GGMLType.F32: "f32", GGMLType.F16: "f16", GGMLType.Q4_0: "q4_0", GGMLType.Q4_1: "q4_1",
                  GGMLType.Q8_0: "q8_0", GGMLType.Q4_K: "q4_k", GGMLType.Q6_K: "q6_k"}
#: how activations are rounded before meeting each weight type (ggml's vec_dot_type)
_PREPARE = {GGMLType.F16: "f16", GGMLType.Q4_0: "q8_1", GGMLType.Q4_1: "q8_1", GGMLType.Q8_0: "q8_1",
            GGMLType.Q4_K: "q8_k", GGMLType.Q6_K: "q8_k"}
#: weight types whose mul_mat has a variant in llama.cpp's exact order (devices with shaderFloat64)
EXACT_MUL_MAT = {GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q8_0}
CACHE_SHADERS = {F16: "f16", F32: "f32"}
MAX_HEAD_DIM = 256  # attention.comp keeps a query head in shared memory
MAX_GROUPS = 65535  # the dispatch size every Vulkan device supports per dimension
STEP_KEY = "step"


@dataclass(frozen=True)
class Ref:
    """What a descriptor binds: ``size`` bytes of a value in a space. Spaces: ``arena`` (key: a
    value number, placed by the plan), ``io`` (key: a host-visible region of the plan),
    ``weight`` and ``cache`` (key: the tensor's name)."""

    space: str
    key: str | int
    size: int


@dataclass
class Dispatch:
    shader: str
    spec: tuple[int, ...]  # specialization constants (mul_mat's tile shape)
    refs: list[Ref]
    push: bytes
    groups: tuple[int, int, int]


@dataclass
class Program:
    dispatches: list[Dispatch] = field(default_factory=list)
    #: host-visible regions: graph inputs, the step buffer, constant tables; bytes each
    io: dict[str, int] = field(default_factory=dict)
    #: constant tables written once, when the plan is compiled
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    #: (node id, io key, numpy dtype, shape) per Subgraph.inputs entry
    inputs: list[tuple[int, str, str, tuple[int, ...]]] = field(default_factory=list)
    #: (io key, positions input node id, rope params): cos/sin tables the host writes each step
    rope_tables: list[tuple[str, int, Any]] = field(default_factory=list)
    #: (where, shape, element type) per Subgraph.outputs entry, in order
    outputs: list[tuple[Ref, tuple[int, ...], str]] = field(default_factory=list)
    #: byte offset in the arena of each arena value, and the arena's size
    arena_offsets: list[int] = field(default_factory=list)
    arena_size: int = 0


def row_bytes(w_type: GGMLType, cols: int) -> int:
    block, size = GGML_QUANT_SIZES[w_type]
    return cols // block * size


@dataclass(frozen=True)
class Target:
    """What of the device the lowering depends on."""

    alignment: int  # of every binding's offset
    cpu: bool  # a CPU-type device (lavapipe): an invocation per SIMD lane, costly barriers
    #: llama.cpp's CPU roundings exactly (sums in double, fused multiply-adds and divisions emulated
    #: in double): needs shaderFloat64; see VulkanBackend for when it is on
    exact: bool

    def mul_mat_shape(self, n: int, units: int) -> tuple[int, int]:
        """(tokens, lanes) of a mul_mat workgroup. On GPUs several invocations share a row so
        that neighbours read neighbouring blocks, and prompts take 8 tokens per weight read; on
        CPU devices a row per invocation for single tokens, small tiles for prompts."""
        if self.cpu:
            return (1, 1) if n == 1 else (4, 4)
        return (1 if n == 1 else 8), (4 if units < 64 else 8 if units < 256 else 16)


def lower(subgraph: Subgraph, target: Target) -> Program:
    return _Lowering(subgraph, target).program


class _Lowering:
    def __init__(self, subgraph: Subgraph, target: Target) -> None:
        self.program = Program()
        self.target = target
        self.sizes: list[int] = []  # bytes of each arena value
        self.defined: list[int] = []  # the dispatch writing each arena value
        self.last_read: list[int] = []
        self.where: dict[int, Ref] = {}
        self.prepared: dict[tuple[Ref, str], tuple[Ref, int, int]] = {}
        for node in subgraph.weights:
            self.where[node.id] = Ref("weight", node.name, _nbytes(node))
        for node in subgraph.caches:
            self.where[node.id] = Ref("cache", node.name, _nbytes(node))
        for node in subgraph.inputs:
            key = f"in{node.id}"
            self.program.io[key] = 4 * math.prod(node.shape)
            self.program.inputs.append((node.id, key, "int32" if node.dtype == I32 else "float32", node.shape))
            self.where[node.id] = Ref("io", key, 4 * math.prod(node.shape))
        self.program.io[STEP_KEY] = 16
        for node in subgraph.nodes:
            self._lower(node)
        end = len(self.program.dispatches)
        for node in subgraph.outputs:
            ref = self.where[node.id]
            if ref.space == "arena":
                self.last_read[ref.key] = end
            self.program.outputs.append((ref, node.shape, "float16" if node.dtype == F16 else "float32"))
        self._place()

    # -- values -----------------------------------------------------------------------------------

    def _new(self, nbytes: int) -> Ref:
        self.sizes.append(nbytes)
        self.defined.append(len(self.program.dispatches))
        self.last_read.append(len(self.program.dispatches))
        return Ref("arena", len(self.sizes) - 1, nbytes)

    def _read(self, ref: Ref) -> Ref:
        if ref.space == "arena":
            self.last_read[ref.key] = len(self.program.dispatches)
        return ref

    def _src(self, node: Node, i: int) -> Ref:
        return self._read(self.where[node.srcs[i].id])

    def _exact(self, shader: str) -> str:
        """The variant with llama.cpp's roundings where they need double precision (sums in
        double, fused multiply-adds and divisions emulated)."""
        return f"{shader}_f64" if self.target.exact else shader

    def _emit(self, shader: str, refs: list[Ref], push: tuple, groups: tuple[int, int, int],
              spec: tuple[int, ...] = ()) -> None:
        packed = b"".join(struct.pack("<f" if isinstance(v, float) else "<I", v) for v in push)
        self.program.dispatches.append(Dispatch(shader, spec, refs, packed, groups))

    # -- ops --------------------------------------------------------------------------------------

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
            per_thread = 2 if node.dtype == F16 else 1
            self._emit(f"kv_store_{CACHE_SHADERS[node.dtype]}", [x, cells, cache], (n, width),
                       _groups(n * width // per_thread, 256))
            self.where[node.id] = cache
            return
        srcs = [self._src(node, i) for i in range(len(node.srcs))]
        out = self.where[node.id] = self._new(4 * total)
        match op:
            case Op.GET_ROWS:
                table = node.srcs[0]
                n, cols = node.shape
                w_type = table.dtype if table.op is Op.WEIGHT else GGMLType.F32
                per_item = 1 if w_type in (GGMLType.F32, GGMLType.F16) else 32
                self._emit(f"get_rows_{WEIGHT_SHADERS[w_type]}", [srcs[0], srcs[1], out],
                           (n, cols, row_bytes(w_type, cols)), _groups(n * cols // per_item, 64))
            case Op.ADD | Op.MUL:
                nb = math.prod(node.srcs[1].shape)
                self._emit("binary", [srcs[0], srcs[1], out], (total, nb, 0 if op is Op.ADD else 1),
                           _groups(total, 256))
            case Op.SCALE | Op.SILU | Op.GELU:
                code = {Op.SCALE: 0, Op.SILU: 1, Op.GELU: 2}[op]
                self._emit(self._exact("unary"), [srcs[0], out], (total, code, float(p.get("factor", 1.0))), _groups(total, 256))
            case Op.SWIGLU | Op.GEGLU:
                self._emit(self._exact("glu"), [srcs[0], srcs[1], out], (total, 0 if op is Op.SWIGLU else 1), _groups(total, 256))
            case Op.RMS_NORM | Op.NORM:
                cols = node.shape[-1]
                self._emit(self._exact("norm"), [srcs[0], out], (total // cols, cols, 0 if op is Op.RMS_NORM else 1, float(p["eps"])),
                           _groups(total // cols, 1))
            case Op.ROPE:
                self._rope(node, srcs, out)
            case Op.ATTENTION:
                self._attention(node, srcs, out)
            case _:
                raise NotImplementedError(f"vulkan: no shader for {node}")

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
        tile, lanes = self.target.mul_mat_shape(n, cols // 32)
        shader = f"mul_mat_{WEIGHT_SHADERS[w.dtype]}"
        if self.target.exact and w.dtype in EXACT_MUL_MAT:
            shader, lanes = f"{shader}_f64", 8  # llama.cpp's order: an invocation per float lane of its 8
        row_groups = -(-rows // (64 // lanes))
        gx = min(row_groups, MAX_GROUPS)
        self._emit(shader, [w_ref, x_ref, out, x_ref],
                   (rows, cols, n, row_bytes(w.dtype, cols), d_off, s_off),
                   (gx, -(-n // tile), -(-row_groups // gx)), spec=(tile, lanes))

    def _prepare(self, x: Ref, mode: str, n: int, cols: int) -> tuple[Ref, int, int]:
        """Activations rounded for a weight type (quantize.comp); returns (ref, d_off, s_off)."""
        values = n * cols
        if mode == "f16":
            blocks, d_off, s_off, size = values, 0, 0, values
        elif mode == "q8_1":
            blocks = values // 32
            d_off, s_off, size = values, values + blocks, values + 2 * blocks
        else:
            blocks = values // 256
            d_off, s_off, size = values, 0, values + blocks
        out = self._new(4 * size)
        shader = f"quantize_{mode}" if mode == "f16" else self._exact(f"quantize_{mode}")
        self._emit(shader, [x, out], (blocks, d_off, s_off), _groups(blocks, 64))
        return out, d_off, s_off

    def _rope(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        n, heads, dim = node.shape
        rope = node.params["rope"]
        positions = node.srcs[1]
        if srcs[1].space != "io":
            raise BackendError("vulkan: rope positions must be a graph input (the host computes their angles)")
        # the angles come from the host (rope_cos_sin: ggml's, with the C library's cosf/sinf),
        # written before each submit for the step's positions: one table for every rope node with
        # the same positions and settings (each layer's q and k)
        key = next((k for k, pos_id, r in self.program.rope_tables if pos_id == positions.id and r == rope), None)
        size = 4 * 2 * n * (rope.n_rot // 2)
        if key is None:
            key = f"rope{len(self.program.rope_tables)}"
            self.program.io[key] = size
            self.program.rope_tables.append((key, positions.id, rope))
        self._emit(self._exact("rope"), [srcs[0], Ref("io", key, size), out], (n, heads, dim, rope.n_rot // 2, int(rope.neox)),
                   _groups(n * heads * dim // 2, 256))

    def _attention(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        q, k, v, mask = node.srcs
        n, n_head, head_dim = q.shape
        group = n_head // node.params["n_head_kv"]
        step = Ref("io", STEP_KEY, 16)
        self._emit(self._exact(f"attention_{CACHE_SHADERS[k.dtype]}"), [*srcs, step, out],
                   (n, n_head, head_dim, group, k.shape[1], mask.shape[1], float(node.params["scale"])),
                   _groups(n * n_head, 1))

    # -- memory plan ------------------------------------------------------------------------------

    def _place(self) -> None:
        """First-fit placement of the arena values in dispatch order, freeing each value after
        its last reader (the barrier between dispatches orders the reuse)."""
        align = self.target.alignment
        free: list[tuple[int, int]] = []  # (offset, size), sorted, coalesced
        top = 0
        offsets = [0] * len(self.sizes)
        by_def: dict[int, list[int]] = {}
        for v, k in enumerate(self.defined):
            by_def.setdefault(k, []).append(v)
        by_last = sorted(range(len(self.sizes)), key=lambda v: self.last_read[v])
        released = 0
        for k in sorted(by_def):
            while released < len(by_last) and self.last_read[by_last[released]] < k:
                v = by_last[released]
                free = _release(free, offsets[v], _align(self.sizes[v], align))
                released += 1
            for v in by_def[k]:
                size = _align(self.sizes[v], align)
                slot = next((i for i, (_, s) in enumerate(free) if s >= size), None)
                if slot is None:
                    offsets[v] = top
                    top += size
                else:
                    offset, s = free[slot]
                    offsets[v] = offset
                    free[slot:slot + 1] = [(offset + size, s - size)] if s > size else []
        self.program.arena_offsets = offsets
        self.program.arena_size = top


def _release(free: list[tuple[int, int]], offset: int, size: int) -> list[tuple[int, int]]:
    merged = sorted([*free, (offset, size)])
    out: list[tuple[int, int]] = []
    for o, s in merged:
        if out and out[-1][0] + out[-1][1] == o:
            out[-1] = (out[-1][0], out[-1][1] + s)
        else:
            out.append((o, s))
    return out


def _align(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def _nbytes(node: Node) -> int:
    if isinstance(node.dtype, GGMLType):
        return row_bytes(node.dtype, node.shape[-1]) * math.prod(node.shape[:-1])
    return math.prod(node.shape) * (2 if node.dtype == F16 else 4)


def _groups(count: int, per_group: int) -> tuple[int, int, int]:
    """Workgroups for ``count`` items, split over x and y beyond the per-dimension limit; the
    shaders rebuild the linear id and skip the excess."""
    groups = max(1, -(-count // per_group))
    x = min(groups, MAX_GROUPS)
    return x, -(-groups // x), 1


