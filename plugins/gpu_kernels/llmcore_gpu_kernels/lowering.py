"""What the kernels run, device-independently: which nodes they compute (:func:`supports`) and the
lowering of a subgraph to the flat list of kernel launches a GPU backend replays each step, on the
plugin API's ArenaLowering (the memory plan of the intermediate values in one arena).

Nothing that changes per step is baked in: token ids, positions, cells and the mask are input
buffers the host rewrites before each step, the rope angles a table it writes, and n_kv is read by
the attention kernel from a small step buffer, so one plan serves every step of a batch shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmcore.plugin_api import (
    F16, F32, ArenaLowering, ArenaProgram, BackendError, GGMLType, Node, Op, Ref, Subgraph, is_per_row, node_bytes,
    row_bytes,
)

from llmcore_gpu_kernels.render import WORKGROUP

#: weight types the kernels decode (get_rows_<name>, mul_mat_<name>)
WEIGHT_KERNELS = {
    GGMLType.F32: "f32", GGMLType.F16: "f16", GGMLType.BF16: "bf16",
    GGMLType.Q4_0: "q4_0", GGMLType.Q4_1: "q4_1", GGMLType.Q5_0: "q5_0", GGMLType.Q5_1: "q5_1", GGMLType.Q8_0: "q8_0",
    GGMLType.Q2_K: "q2_k", GGMLType.Q3_K: "q3_k", GGMLType.Q4_K: "q4_k", GGMLType.Q5_K: "q5_k", GGMLType.Q6_K: "q6_k",
}
#: weight types with a mul_mat in llama.cpp's CPU order (mul_mat_ordered_<name>), for CPU devices
ORDERED_MUL_MAT = {GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0}
#: KV cache types the kernels store and attend over
CACHE_KERNELS = {F16: "f16", F32: "f32"}
_ATTENTION_PARAMS = {"scale", "n_head_kv", "softcap", "max_bias", "flash"}
MAX_HEAD_DIM = 256  # attention keeps a query head in workgroup memory
MAX_TILE = 8  # tokens per mul_mat workgroup (common.h)
_BINARY = {Op.ADD: 0, Op.MUL: 1, Op.DIV: 2}
_UNARY = {Op.SCALE: 0, Op.SILU: 1, Op.GELU: 2, Op.TANH: 3, Op.CLAMP: 4}
_ELEMENTWISE = frozenset({*_BINARY, *_UNARY, Op.SWIGLU, Op.GEGLU, Op.RMS_NORM, Op.NORM, Op.RESHAPE})


def supports(node: Node, max_buffer: int) -> bool:
    """Whether the kernels compute ``node`` as the op reference specifies, no buffer it reads
    larger than ``max_buffer`` bytes (the device's largest allocation)."""
    if node.op in (Op.MUL_MAT, Op.GET_ROWS) and node.srcs[0].op is Op.WEIGHT:
        w = node.srcs[0]
        # mul_mat reads whole 32-value units (every block type's rows are made of them)
        return (w.dtype in WEIGHT_KERNELS and len(w.shape) == 2 and node_bytes(w) <= max_buffer
                and (node.op is Op.GET_ROWS or w.shape[1] % 32 == 0))
    if node.op is Op.MUL_MAT:
        return False  # activation x activation products are not in a decoder's graph
    if node.op is Op.GET_ROWS:
        return node.srcs[0].dtype == F32
    if any(s.op is Op.WEIGHT and s.dtype != GGMLType.F32 for s in node.srcs):
        return False
    if node.op is Op.KV_STORE:
        return node.dtype in CACHE_KERNELS and node_bytes(node) <= max_buffer
    if node.op is Op.ATTENTION:
        # q, k, v and the mask with these params; a source or param added later is not known here
        if len(node.srcs) != 4 or not set(node.params) <= _ATTENTION_PARAMS:
            return False
        q, k, v, _ = node.srcs
        # ALiBi and ggml's flash-attention order: no kernel yet
        return (not node.params.get("max_bias") and not node.params.get("flash")
                and k.dtype in CACHE_KERNELS and v.dtype == k.dtype
                and q.shape[2] <= MAX_HEAD_DIM and node_bytes(k) <= max_buffer)
    if node.op is Op.ROPE:  # angles from the host for input positions; no frequency factors yet
        return len(node.srcs) == 2 and node.srcs[1].op is Op.INPUT and node.shape[2] % 2 == 0
    return node.op in _ELEMENTWISE


@dataclass
class Launch:
    kernel: str
    args: list[Ref | int | float]  # in the kernel's parameter order
    groups: tuple[int, int]


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


def lower(subgraph: Subgraph, target: Target) -> ArenaProgram[Launch]:
    return _Lowering(target).lower(subgraph)


def _groups(count: int) -> tuple[int, int]:
    return max(1, -(-count // WORKGROUP)), 1


class _Lowering(ArenaLowering[Launch]):
    def __init__(self, target: Target) -> None:
        super().__init__(target.alignment)
        self.target = target

    def _launch(self, kernel: str, args: list[Ref | int | float], groups: tuple[int, int]) -> None:
        self.program.steps.append(Launch(kernel, args, groups))

    def emit(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        op, p = node.op, node.params
        total = math.prod(node.shape)
        match op:
            case Op.KV_STORE:
                n, width = node.srcs[1].shape
                self._launch(f"kv_store_{CACHE_KERNELS[node.dtype]}", [srcs[1], srcs[2], out, n, width],
                             _groups(n * width))
            case Op.GET_ROWS:
                table = node.srcs[0]
                n, cols = node.shape
                w_type = table.dtype if table.op is Op.WEIGHT else GGMLType.F32
                per_item = 1 if w_type in (GGMLType.F32, GGMLType.F16, GGMLType.BF16) else 32
                self._launch(f"get_rows_{WEIGHT_KERNELS[w_type]}",
                             [srcs[0], srcs[1], out, n, cols, row_bytes(w_type, cols)], _groups(n * cols // per_item))
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
        step = self.step_buffer()
        shape = [n_head, head_dim, n_head // p["n_head_kv"], k.shape[1], mask.shape[1], float(p["scale"])]
        cache = CACHE_KERNELS[k.dtype]
        if self.target.cpu and not p.get("softcap"):
            # llama.cpp's CPU order, which costs little on a CPU: q rounded in device memory first
            q_ref = srcs[0]
            if k.dtype == F16:
                values = n * n_head * head_dim
                q_ref = self.new(4 * values)
                self._launch("prepare_float", [srcs[0], q_ref, values, 0], _groups(values))
            self._launch(f"attention_ordered_{cache}", [self.read(q_ref), *srcs[1:], step, out, n, *shape],
                         (n * n_head, 1))
            return
        self._launch(f"attention_{cache}", [*srcs, step, out, *shape, float(p.get("softcap") or 0.0)], (n * n_head, 1))

    def emit_mul_mat(self, node: Node, w_ref: Ref, x_ref: Ref, d_off: int, s_off: int, out: Ref) -> None:
        w, x = node.srcs
        rows, cols = w.shape
        n = math.prod(x.shape[:-1])
        tile = 1 if n == 1 else MAX_TILE
        shape = [w_ref, x_ref, out, rows, cols, n, row_bytes(w.dtype, cols), d_off, s_off]
        if self.target.cpu and w.dtype in ORDERED_MUL_MAT:  # llama.cpp's CPU order, a row per work-item
            self._launch(f"mul_mat_ordered_{WEIGHT_KERNELS[w.dtype]}", [*shape, tile],
                         (-(-rows // WORKGROUP), -(-n // tile)))
            return
        lanes = self.target.lanes(cols // 32)
        self._launch(f"mul_mat_{WEIGHT_KERNELS[w.dtype]}", [*shape, lanes, tile],
                     (-(-rows // (WORKGROUP // lanes)), -(-n // tile)))

    def emit_rounding(self, x: Ref, out: Ref, mode: str, blocks: int, d_off: int, s_off: int) -> None:
        if mode in ("f16", "bf16"):
            self._launch("prepare_float", [x, out, blocks, int(mode == "bf16")], _groups(blocks))
        elif mode == "q8_1":
            self._launch("prepare_q8_1", [x, out, blocks, d_off, s_off], _groups(blocks))
        else:
            self._launch("prepare_q8_k", [x, out, blocks, d_off], _groups(blocks))

    def _rope(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        n, heads, dim = node.shape
        rope = node.params["rope"]
        self._launch("rope", [srcs[0], self.rope_table(node), out, n, heads, dim, rope.n_rot // 2, int(rope.neox)],
                     _groups(n * heads * dim // 2))
