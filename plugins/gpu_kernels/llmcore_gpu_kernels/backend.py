"""The part of a GPU backend that is the same on every vendor: weights, KV caches and the arena in
device memory, plans lowered once per batch shape and replayed each step. A plugin supplies a
:class:`Runtime` (tinygrad's allocator, compiler and program runner: buffers, the kernels built
from its dialect's rendering, launches) and a :class:`GpuBackend` subclass with its name and probe.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from llmcore.plugin_api import (
    F16, STEP_KEY, ArenaProgram, Availability, Backend, BackendError, Device, Executable, Node, Ref, Subgraph,
    WeightData, rope_cos_sin,
)

from llmcore_gpu_kernels.lowering import Launch, Target, lower, supports
from llmcore_gpu_kernels.render import WORKGROUP, Rendering, render

_SCALARS = {"u32": np.uint32, "i32": np.int32, "float": np.float32}


class Runtime(abc.ABC):
    """One device of a vendor's API. Buffers are opaque handles the runtime made; a view is a
    byte range of one, as a kernel binds it."""

    #: the kernel dialect this runtime compiles (render.DIALECTS)
    dialect: ClassVar[str]
    #: the byte alignment every view's offset keeps
    alignment: int = 256
    #: whether the device is a CPU (PoCL, a CPU OpenCL driver): the lowering's work split
    is_cpu: bool = False
    #: the largest single buffer, bytes
    max_buffer: int = 1 << 31

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> Any: ...

    @abc.abstractmethod
    def view(self, buffer: Any, offset: int, nbytes: int) -> Any:
        """What a kernel binds for ``nbytes`` at ``offset`` of ``buffer``."""

    @abc.abstractmethod
    def upload(self, buffer: Any, data: np.ndarray) -> None:
        """Copy ``data`` to the start of ``buffer``; done when this returns."""

    @abc.abstractmethod
    def download(self, buffer: Any, offset: int, out: np.ndarray) -> None:
        """Fill ``out`` from ``buffer`` at ``offset`` once every launch so far has finished."""

    @abc.abstractmethod
    def build(self, rendering: Rendering) -> None:
        """Compile the program; failing, raise BackendError with the compiler's first error line."""

    @abc.abstractmethod
    def prepare(self, kernel: str, args: Sequence[Any], groups: tuple[int, int]) -> Any:
        """A launch of ``kernel`` ready to replay: ``args`` are views and numpy scalars in its
        parameter order, ``groups`` the grid in workgroups of WORKGROUP work-items along x."""

    @abc.abstractmethod
    def run(self, launches: Sequence[Any]) -> None:
        """Queue the prepared launches in order (each sees the writes of the ones before)."""

    @abc.abstractmethod
    def free(self, buffer: Any) -> None: ...


class GpuBackend(Backend):
    """An accelerator backend on the shared kernels; a subclass sets ``name`` and supplies
    :meth:`list_devices` and :meth:`open_runtime`."""

    api_version = "2.6"

    @classmethod
    def probe(cls) -> Availability:
        try:
            return Availability(True, devices=tuple(cls.list_devices()))
        except BackendError as error:
            return Availability(False, str(error))

    @classmethod
    @abc.abstractmethod
    def list_devices(cls) -> list[Device]:
        """The devices this backend can open, in the order ``device`` numbers them; BackendError
        saying exactly what is missing (driver, runtime library, device) when there is none."""

    def __init__(self, n_threads: int | None = None, device: int | None = None) -> None:
        super().__init__(n_threads, device)
        self.runtime = self.open_runtime(device or 0)
        self.runtime.build(render(self.runtime.dialect))
        self.target = Target(self.runtime.alignment, self.runtime.is_cpu)
        self.weights: dict[str, Any] = {}
        self.caches: dict[str, tuple[Any, np.dtype, tuple[int, ...]]] = {}
        self._mirrors: dict[str, np.ndarray] = {}  # cache views handed out, uploaded before the next run
        self._bytes = {"weights": 0, "kv": 0}
        self.arena: Any = None
        self.arena_size = 0
        self.arena_generation = 0

    @abc.abstractmethod
    def open_runtime(self, device: int) -> Runtime:
        """The runtime of device ``device`` as the probe lists them; BackendError if it cannot open."""

    def supports_op(self, node: Node) -> bool:
        return supports(node, self.runtime.max_buffer)

    def load_weights(self, weights: Sequence[WeightData]) -> None:
        """Uploads the raw GGUF bytes as they are: blocks are decoded in the kernels."""
        for w in weights:
            buffer = self.runtime.alloc(w.raw.nbytes)
            self.runtime.upload(buffer, w.raw)
            self.weights[w.name] = buffer
            self._bytes["weights"] += w.raw.nbytes

    def _cache(self, node: Node) -> None:
        if node.name in self.caches:
            return
        dtype = np.dtype(np.float16 if node.dtype == F16 else np.float32)
        zeros = np.zeros(node.shape, dtype)
        buffer = self.runtime.alloc(zeros.nbytes)
        self.runtime.upload(buffer, zeros)
        self.caches[node.name] = (buffer, dtype, node.shape)
        self._bytes["kv"] += zeros.nbytes

    def cache_view(self, name: str) -> np.ndarray:
        """A snapshot of the cache, downloaded now; writes to it are uploaded at the start of the
        next ``run`` (later steps do not update it: ask again)."""
        buffer, dtype, shape = self.caches[name]
        mirror = np.empty(shape, dtype)
        self.runtime.download(buffer, 0, mirror)
        self._mirrors[name] = mirror
        return mirror

    def sync_cache_views(self) -> None:
        for name, mirror in self._mirrors.items():
            self.runtime.upload(self.caches[name][0], mirror)
        self._mirrors.clear()

    def ensure_arena(self, size: int) -> None:
        """Grow the arena every plan shares (runs never overlap) to ``size`` bytes; plans bound to
        the old one bind again on their next run."""
        if self.arena is not None and self.arena_size >= size:
            return
        if self.arena is not None:
            self.runtime.free(self.arena)
        self.arena_size = max(size, 1 << 20)
        self.arena = self.runtime.alloc(self.arena_size)
        self.arena_generation += 1

    def memory_used(self) -> dict[str, int]:
        return {**self._bytes, "compute": self.arena_size}

    def compile(self, subgraph: Subgraph) -> Executable:
        for node in subgraph.caches:
            self._cache(node)
        program = lower(subgraph, self.target)
        self.ensure_arena(program.arena_size)
        return GpuExecutable(self, program)


class GpuExecutable(Executable):
    """One plan: its launches prepared once (re-prepared only when the shared arena moved), the
    host-written buffers, and the outputs read back after each step."""

    def __init__(self, backend: GpuBackend, program: ArenaProgram[Launch]) -> None:
        self.backend = backend
        self.program = program
        runtime = backend.runtime
        self.io = {key: runtime.alloc(max(size, 4)) for key, size in program.io.items()}
        self._launches: list[Any] = []
        self._generation = -1

    def __del__(self) -> None:
        for buffer in getattr(self, "io", {}).values():
            self.backend.runtime.free(buffer)

    def _buffer(self, ref: Ref) -> tuple[Any, int]:
        """(buffer, byte offset) of a ref."""
        backend = self.backend
        if ref.space == "weight":
            if ref.key not in backend.weights:
                raise BackendError(f"{backend.name}: weight {ref.key} was not loaded")
            return backend.weights[ref.key], 0
        if ref.space == "cache":
            return backend.caches[ref.key][0], 0
        if ref.space == "io":
            return self.io[ref.key], 0
        return backend.arena, self.program.arena_offsets[ref.key]

    def _prepare(self) -> None:
        runtime = self.backend.runtime
        signatures = render(runtime.dialect).kernels
        self._launches = []
        for launch in self.program.steps:
            args = []
            for param, arg in zip(signatures[launch.kernel].params, launch.args):
                if param.kind == "buffer":
                    buffer, offset = self._buffer(arg)
                    args.append(runtime.view(buffer, offset, max(arg.size, 4)))
                else:
                    args.append(_SCALARS[param.kind](arg))
            self._launches.append(runtime.prepare(launch.kernel, args, launch.groups))
        self._generation = self.backend.arena_generation

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        backend = self.backend
        runtime = backend.runtime
        backend.sync_cache_views()
        if self._generation != backend.arena_generation:
            self._prepare()
        for node_id, key, dtype, shape in self.program.inputs:
            runtime.upload(self.io[key], np.ascontiguousarray(inputs[node_id], dtype=dtype).reshape(shape))
        for key, positions_id, rope in self.program.rope_tables:
            cos, sin = rope_cos_sin(rope, np.asarray(inputs[positions_id]).ravel())
            runtime.upload(self.io[key], np.stack([cos, sin]).astype(np.float32))
        runtime.upload(self.io[STEP_KEY], np.array([n_kv, 0, 0, 0], np.uint32))
        runtime.run(self._launches)
        results = []
        for ref, shape, dtype in self.program.outputs:
            buffer, offset = self._buffer(ref)
            out = np.empty(shape, np.dtype(dtype))
            runtime.download(buffer, offset, out)
            results.append(out.astype(np.float32, copy=False))  # f16 caches come back as float32
        return results


def workgroups_to_items(groups: tuple[int, int]) -> tuple[int, int]:
    """A grid in work-items, as OpenCL's global size counts them."""
    return groups[0] * WORKGROUP, groups[1]

