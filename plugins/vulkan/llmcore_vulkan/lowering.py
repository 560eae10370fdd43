"""Lowering of a subgraph to the flat list of shader dispatches its command buffer replays, on the
plugin API's ArenaLowering (the memory plan of the intermediate values in one arena).

Nothing that changes per step is baked in: token ids, positions, cells and the mask are input
buffers the host rewrites before each submit, and n_kv is read by the attention shader from a
small step buffer, so one recording serves every step of a batch shape.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from llmcore.plugin_api import (
    F16, F32, ArenaLowering, ArenaProgram, BackendError, GGMLType, Node, Op, Ref, Subgraph, row_bytes,
)

#: weight types mul_mat and get_rows decode in the shaders
WEIGHT_SHADERS = {GGMLType.F32: "f32", GGMLType.F16: "f16", GGMLType.Q4_0: "q4_0", GGMLType.Q4_1: "q4_1",
                  GGMLType.Q8_0: "q8_0", GGMLType.Q4_K: "q4_k", GGMLType.Q6_K: "q6_k"}
#: weight types whose mul_mat has a variant in llama.cpp's exact order (devices with shaderFloat64)
EXACT_MUL_MAT = {GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q8_0}
CACHE_SHADERS = {F16: "f16", F32: "f32"}
MAX_HEAD_DIM = 256  # attention.comp keeps a query head in shared memory
MAX_GROUPS = 65535  # the dispatch size every Vulkan device supports per dimension


@dataclass
class Dispatch:
    shader: str
    spec: tuple[int, ...]  # specialization constants (mul_mat's tile shape)
    refs: list[Ref]
    push: bytes
    groups: tuple[int, int, int]


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


def lower(subgraph: Subgraph, target: Target) -> ArenaProgram[Dispatch]:
    return _Lowering(target).lower(subgraph)


class _Lowering(ArenaLowering[Dispatch]):
    def __init__(self, target: Target) -> None:
        super().__init__(target.alignment)
        self.target = target

    def _exact(self, shader: str) -> str:
        """The variant with llama.cpp's roundings where they need double precision (sums in
        double, fused multiply-adds and divisions emulated)."""
        return f"{shader}_f64" if self.target.exact else shader

    def _dispatch(self, shader: str, refs: list[Ref], push: tuple, groups: tuple[int, int, int],
                  spec: tuple[int, ...] = ()) -> None:
        packed = b"".join(struct.pack("<f" if isinstance(v, float) else "<I", v) for v in push)
        self.program.steps.append(Dispatch(shader, spec, refs, packed, groups))

    # -- ops --------------------------------------------------------------------------------------

    def emit(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        op, p = node.op, node.params
        total = math.prod(node.shape)
        match op:
            case Op.KV_STORE:
                n, width = node.srcs[1].shape
                per_thread = 2 if node.dtype == F16 else 1
                self._dispatch(f"kv_store_{CACHE_SHADERS[node.dtype]}", [srcs[1], srcs[2], out], (n, width),
                               _groups(n * width // per_thread, 256))
            case Op.GET_ROWS:
                table = node.srcs[0]
                n, cols = node.shape
                w_type = table.dtype if table.op is Op.WEIGHT else GGMLType.F32
                per_item = 1 if w_type in (GGMLType.F32, GGMLType.F16) else 32
                self._dispatch(f"get_rows_{WEIGHT_SHADERS[w_type]}", [srcs[0], srcs[1], out],
                               (n, cols, row_bytes(w_type, cols)), _groups(n * cols // per_item, 64))
            case Op.ADD | Op.MUL:
                nb = math.prod(node.srcs[1].shape)
                self._dispatch("binary", [srcs[0], srcs[1], out], (total, nb, 0 if op is Op.ADD else 1),
                               _groups(total, 256))
            case Op.SCALE | Op.SILU | Op.GELU:
                code = {Op.SCALE: 0, Op.SILU: 1, Op.GELU: 2}[op]
                self._dispatch(self._exact("unary"), [srcs[0], out], (total, code, float(p.get("factor", 1.0))),
                               _groups(total, 256))
            case Op.SWIGLU | Op.GEGLU:
                self._dispatch(self._exact("glu"), [srcs[0], srcs[1], out], (total, 0 if op is Op.SWIGLU else 1),
                               _groups(total, 256))
            case Op.RMS_NORM | Op.NORM:
                cols = node.shape[-1]
                self._dispatch(self._exact("norm"), [srcs[0], out],
                               (total // cols, cols, 0 if op is Op.RMS_NORM else 1, float(p["eps"])), _groups(total // cols, 1))
            case Op.ROPE:
                self._rope(node, srcs, out)
            case Op.ATTENTION:
                self._attention(node, srcs, out)
            case _:
                raise NotImplementedError(f"vulkan: no shader for {node}")

    def emit_mul_mat(self, node: Node, w_ref: Ref, x_ref: Ref, d_off: int, s_off: int, out: Ref) -> None:
        w, x = node.srcs
        rows, cols = w.shape
        n = math.prod(x.shape[:-1])
        tile, lanes = self.target.mul_mat_shape(n, cols // 32)
        shader = f"mul_mat_{WEIGHT_SHADERS[w.dtype]}"
        if self.target.exact and w.dtype in EXACT_MUL_MAT:
            # llama.cpp's order: on GPUs an invocation per float lane of its 8, on CPU devices per row
            shader, lanes = f"{shader}_f64", 1 if self.target.cpu else 8
        row_groups = -(-rows // (64 // lanes))
        gx = min(row_groups, MAX_GROUPS)
        self._dispatch(shader, [w_ref, x_ref, out, x_ref],
                       (rows, cols, n, row_bytes(w.dtype, cols), d_off, s_off),
                       (gx, -(-n // tile), -(-row_groups // gx)), spec=(tile, lanes))

    def emit_rounding(self, x: Ref, out: Ref, mode: str, blocks: int, d_off: int, s_off: int) -> None:
        # quantize.comp
        shader = f"quantize_{mode}" if mode == "f16" else self._exact(f"quantize_{mode}")
        self._dispatch(shader, [x, out], (blocks, d_off, s_off), _groups(blocks, 64))

    def _rope(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        n, heads, dim = node.shape
        rope = node.params["rope"]
        if srcs[1].space != "io":
            raise BackendError("vulkan: rope positions must be a graph input (the host computes their angles)")
        # the angles come from the host (rope_cos_sin: ggml's, with the C library's cosf/sinf),
        # written before each submit for the step's positions
        self._dispatch(self._exact("rope"), [srcs[0], self.rope_table(node), out],
                       (n, heads, dim, rope.n_rot // 2, int(rope.neox)), _groups(n * heads * dim // 2, 256))

    def _attention(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        q, k, v, mask = node.srcs
        n, n_head, head_dim = q.shape
        group = n_head // node.params["n_head_kv"]
        step = self.step_buffer()
        self._dispatch(self._exact(f"attention_{CACHE_SHADERS[k.dtype]}"), [*srcs, step, out],
                       (n, n_head, head_dim, group, k.shape[1], mask.shape[1], float(node.params["scale"])),
                       _groups(n * n_head, 1))


def _groups(count: int, per_group: int) -> tuple[int, int, int]:
    """Workgroups for ``count`` items, split over x and y beyond the per-dimension limit; the
    shaders rebuild the linear id and skip the excess."""
    groups = max(1, -(-count // per_group))
    x = min(groups, MAX_GROUPS)
    return x, -(-groups // x), 1


