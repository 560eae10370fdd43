"""What a device backend's lowering shares with every other: a subgraph's values as references to
device buffers, and one arena for the intermediate values whose ranges are reused once a value has
been read for the last time.

A backend that replays a flat list of device steps (shader dispatches, kernel launches) subclasses
:class:`ArenaLowering`: its ``emit`` hooks append the steps of one node, given the node's sources
and output as buffer references (``new`` for a further value a step writes, ``read`` for one it
reads), and ``lower`` returns the :class:`ArenaProgram` with every arena value placed.

Nothing that changes per step is baked in: graph inputs, the step buffer (``STEP_KEY``: n_kv) and
the rope tables are buffers the host writes before each step, so one plan serves every step of a
batch shape.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from llmcore.gguf import GGMLType
from llmcore.gguf.types import row_bytes, tensor_bytes
from llmcore.graph import kv_types
from llmcore.graph.backend import Subgraph
from llmcore.graph.ir import F16, I32, Node, Op
from llmcore.graph.rope import RopeParams

#: the io buffer the host writes n_kv to before each step (uint32 at offset 0 of 16 bytes)
STEP_KEY = "step"
_STEP_BYTES = 16

#: how a device product rounds the activations before they meet each weight type (ggml's
#: vec_dot_type); the legacy quants' rounding keeps each block's sum too (q8_1), as ggml's GPU
#: backends do
_ACTIVATION_ROUNDING = {
    GGMLType.F16: "f16", GGMLType.BF16: "bf16",
    GGMLType.Q4_0: "q8_1", GGMLType.Q4_1: "q8_1", GGMLType.Q5_0: "q8_1", GGMLType.Q5_1: "q8_1", GGMLType.Q8_0: "q8_1",
    GGMLType.Q2_K: "q8_k", GGMLType.Q3_K: "q8_k", GGMLType.Q4_K: "q8_k", GGMLType.Q5_K: "q8_k", GGMLType.Q6_K: "q8_k",
}


@dataclass(frozen=True)
class Ref:
    """A buffer a device step binds: ``size`` bytes of a value in a space. Spaces: ``arena`` (key: a
    value number, placed by the plan), ``io`` (key: a host-written buffer of the plan), ``weight``
    and ``cache`` (key: the tensor's name)."""

    space: str
    key: str | int
    size: int


StepT = TypeVar("StepT")


@dataclass
class ArenaProgram(Generic[StepT]):
    """What a lowering gives its backend: the device steps and the buffers they bind."""

    #: the device steps in order (a backend's own type: a shader dispatch, a kernel launch)
    steps: list[StepT] = field(default_factory=list)
    #: host-written buffers: graph inputs, the step buffer, rope tables; bytes each
    io: dict[str, int] = field(default_factory=dict)
    #: (node id, io key, numpy dtype, shape) per Subgraph.inputs entry
    inputs: list[tuple[int, str, str, tuple[int, ...]]] = field(default_factory=list)
    #: (io key, positions input node id, rope params): cos/sin tables the host writes each step
    #: (``rope_cos_sin``: ggml's angles, which a device's own sin and cos would miss in the last bits)
    rope_tables: list[tuple[str, int, RopeParams]] = field(default_factory=list)
    #: (where, shape, element type) per Subgraph.outputs entry, in order
    outputs: list[tuple[Ref, tuple[int, ...], str]] = field(default_factory=list)
    #: byte offset in the arena of each arena value, and the arena's size
    arena_offsets: list[int] = field(default_factory=list)
    arena_size: int = 0


def node_bytes(node: Node) -> int:
    """Bytes of a node's value: a weight of a GGML type, a cache of a KV cache type, or a float32 or
    int32 activation."""
    if isinstance(node.dtype, GGMLType):
        return tensor_bytes(node.dtype, node.shape)
    if node.dtype in kv_types.KV_CACHE_TYPES:
        return math.prod(node.shape[:-1]) * kv_types.row_bytes(node.dtype, node.shape[-1])
    return 4 * math.prod(node.shape)


class ArenaLowering(abc.ABC, Generic[StepT]):
    """The lowering of one subgraph to a device's steps over one arena. A subclass appends its
    steps to ``program.steps`` in the ``emit`` hooks: a value's life runs from the step that
    writes it to the last step that reads it, and values whose lives do not overlap share arena
    space."""

    def __init__(self, alignment: int) -> None:
        self.program: ArenaProgram[StepT] = ArenaProgram()
        #: of every arena value's offset
        self.alignment = alignment
        #: where each node's value is, by node id
        self.where: dict[int, Ref] = {}
        self._sizes: list[int] = []  # bytes of each arena value
        self._defined: list[int] = []  # the step writing each arena value
        self._last_read: list[int] = []
        self._rounded: dict[tuple[Ref, str], tuple[Ref, int, int]] = {}

    @property
    def position(self) -> int:
        """How many device steps the lowering has emitted so far."""
        return len(self.program.steps)

    @abc.abstractmethod
    def emit(self, node: Node, srcs: list[Ref], out: Ref) -> None:
        """Emit the steps computing ``node`` from its sources into ``out`` (for KV_STORE, the cache
        itself, ``srcs[0]``); a node no step computes raises BackendError naming it."""

    def emit_mul_mat(self, node: Node, w: Ref, x: Ref, d_off: int, s_off: int, out: Ref) -> None:
        """Emit the steps of a MUL_MAT of weights ``w``: ``x`` holds the activations as they are
        for f32 weights, else rounded for the weights' type by ``emit_rounding``'s step, ``d_off``
        and ``s_off`` the offsets in floats of its blocks' scales and sums."""
        raise NotImplementedError(f"{type(self).__name__} emits no products")

    def emit_rounding(self, x: Ref, out: Ref, mode: str, blocks: int, d_off: int, s_off: int) -> None:
        """Emit the step rounding activations ``x`` into ``out`` for products with weights of
        another type than f32 (ggml's vec_dot_type), once per value and rounding: ``mode`` is
        "f16" or "bf16" (``blocks`` values), "q8_1" or "q8_k" (``blocks`` blocks of 32 or 256
        values); ``out`` holds the quants (or rounded values) as floats, the blocks' scales from
        ``d_off`` on and (q8_1) their sums from ``s_off`` on."""
        raise NotImplementedError(f"{type(self).__name__} rounds no activations for {mode} products")

    def lower(self, subgraph: Subgraph) -> ArenaProgram[StepT]:
        """Bind the weights, caches and inputs, lower every node, and place the arena values."""
        for space, nodes in (("weight", subgraph.weights), ("cache", subgraph.caches)):
            for node in nodes:
                self.where[node.id] = Ref(space, node.name, node_bytes(node))
        for node in subgraph.inputs:
            key = f"in{node.id}"
            size = 4 * math.prod(node.shape)
            self.program.io[key] = size
            self.program.inputs.append((node.id, key, "int32" if node.dtype == I32 else "float32", node.shape))
            self.where[node.id] = Ref("io", key, size)
        self.program.io[STEP_KEY] = _STEP_BYTES
        for node in subgraph.nodes:
            self._lower_node(node)
        end = self.position
        for node in subgraph.outputs:
            ref = self.where[node.id]
            if ref.space == "arena":
                self._last_read[ref.key] = end  # read back after the last step
            self.program.outputs.append((ref, node.shape, "float16" if node.dtype == F16 else "float32"))
        self._place()
        return self.program

    def _lower_node(self, node: Node) -> None:
        """RESHAPE is its source's value (the same bytes under another shape) and KV_STORE's the
        cache it writes in place; every other node's value is a new arena value of float32s."""
        if node.op is Op.RESHAPE:
            self.where[node.id] = self.where[node.srcs[0].id]
            return
        if node.op is Op.MUL_MAT:
            x, d_off, s_off = self._rounded_activations(node.srcs[1], node.srcs[0].dtype)
            w = self.src(node, 0)
            out = self.where[node.id] = self.new(4 * math.prod(node.shape))
            self.emit_mul_mat(node, w, x, d_off, s_off, out)
            return
        srcs = [self.src(node, i) for i in range(len(node.srcs))]
        out = self.where[node.id] = srcs[0] if node.op is Op.KV_STORE else self.new(4 * math.prod(node.shape))
        self.emit(node, srcs, out)

    # -- values -----------------------------------------------------------------------------------

    def new(self, size: int) -> Ref:
        """A new arena value of ``size`` bytes, written by the next step."""
        self._sizes.append(size)
        self._defined.append(self.position)
        self._last_read.append(self.position)
        return Ref("arena", len(self._sizes) - 1, size)

    def read(self, ref: Ref) -> Ref:
        """``ref``, read by the next step (which keeps an arena value alive until then)."""
        if ref.space == "arena":
            self._last_read[ref.key] = self.position
        return ref

    def src(self, node: Node, i: int) -> Ref:
        """Source ``i`` of ``node``, read by the next step."""
        return self.read(self.where[node.srcs[i].id])

    def step_buffer(self) -> Ref:
        """The step buffer (``STEP_KEY``), where a step reads n_kv."""
        return Ref("io", STEP_KEY, _STEP_BYTES)

    def _rounded_activations(self, x: Node, w_type: GGMLType) -> tuple[Ref, int, int]:
        """The activations ``x`` as a product with ``w_type`` weights reads them, read by the next
        step: (where, d_off, s_off), the offsets in floats of the blocks' scales and sums. Rounded
        by ``emit_rounding`` once per value and rounding: quants (or rounded values) as floats,
        then the scales, then (q8_1) the sums."""
        x_ref = self.where[x.id]
        mode = _ACTIVATION_ROUNDING.get(w_type)
        if mode is None:
            return self.read(x_ref), 0, 0
        if (x_ref, mode) not in self._rounded:
            values = math.prod(x.shape)
            if mode in ("f16", "bf16"):
                blocks, d_off, s_off, size = values, 0, 0, values
            elif mode == "q8_1":
                blocks = values // 32
                d_off, s_off, size = values, values + blocks, values + 2 * blocks
            else:
                blocks = values // 256
                d_off, s_off, size = values, 0, values + blocks
            out = self.new(4 * size)
            self.emit_rounding(self.read(x_ref), out, mode, blocks, d_off, s_off)
            self._rounded[(x_ref, mode)] = out, d_off, s_off
        out, d_off, s_off = self._rounded[(x_ref, mode)]
        return self.read(out), d_off, s_off

    def rope_table(self, node: Node) -> Ref:
        """The cos/sin table (2 x n x n_rot/2 floats) of a ROPE node, whose positions are a graph
        input: one for every rope node with the same positions and settings (each layer's q and k)."""
        rope = node.params["rope"]
        positions = node.srcs[1]
        size = 4 * 2 * node.shape[0] * (rope.n_rot // 2)
        key = next((k for k, pos_id, r in self.program.rope_tables if pos_id == positions.id and r == rope), None)
        if key is None:
            key = f"rope{len(self.program.rope_tables)}"
            self.program.io[key] = size
            self.program.rope_tables.append((key, positions.id, rope))
        return Ref("io", key, size)

    # -- memory plan ------------------------------------------------------------------------------

    def _place(self) -> None:
        """First-fit placement of the arena values in step order, freeing each value after its
        last reader (the backend orders a step's writes after the earlier steps' reads)."""
        align = self.alignment
        free: list[tuple[int, int]] = []  # (offset, size), sorted, coalesced
        top = 0
        offsets = [0] * len(self._sizes)
        by_def: dict[int, list[int]] = {}
        for v, k in enumerate(self._defined):
            by_def.setdefault(k, []).append(v)
        by_last = sorted(range(len(self._sizes)), key=lambda v: self._last_read[v])
        released = 0
        for k in sorted(by_def):
            while released < len(by_last) and self._last_read[by_last[released]] < k:
                v = by_last[released]
                free = _release(free, offsets[v], _align(self._sizes[v], align))
                released += 1
            for v in by_def[k]:
                size = _align(self._sizes[v], align)
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


__all__ = ["STEP_KEY", "ArenaLowering", "ArenaProgram", "Ref", "node_bytes", "row_bytes"]
