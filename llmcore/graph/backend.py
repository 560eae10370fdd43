"""The backend interface, in ggml-backend's vocabulary: a backend reports its devices and which ops
it supports, owns the buffers of the weights and caches placed on it, and compiles the subgraph the
scheduler gives it into an executable that runs all of its ops in one call per step."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from llmcore.errors import BackendError
from llmcore.gguf import GGMLType
from llmcore.graph.ir import Node


@dataclass(frozen=True)
class Device:
    """One device a backend can run on, as ``llmcore backends`` lists it."""

    name: str
    kind: str  # "cpu", "gpu", "igpu" or "accel", as ggml names device types
    memory_total: int = 0  # bytes; 0 when unknown
    memory_free: int = 0
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here and, when it cannot, exactly why (no driver, no device...)."""

    usable: bool
    reason: str = ""
    devices: tuple[Device, ...] = ()


@dataclass(frozen=True)
class WeightData:
    """A model tensor as the GGUF file holds it: a read-only, zero-copy view of its raw bytes.

    ``raw`` is float32/float16 of ``shape`` for F32/F16, uint16 for BF16 and uint8 rows of blocks
    (``shape[:-1] + (row_bytes,)``) for quantized types. A backend may repack it at load.
    ``file`` and ``offset`` say where ``raw``'s bytes lie, contiguous, in the model's file (None for
    a weight made in memory, such as a control vector's direction): a backend on another machine
    reads them there itself instead of receiving them (plugin API 2.6).
    """

    name: str
    type: GGMLType
    shape: tuple[int, ...]
    raw: np.ndarray
    file: str | None = None
    offset: int = 0


@dataclass
class Subgraph:
    """The part of a graph one backend executes: its nodes in order, the values it is fed from
    outside (graph inputs and results of other backends) and the values others need from it."""

    nodes: list[Node]
    inputs: list[Node]
    outputs: list[Node]
    weights: list[Node] = field(default_factory=list)
    caches: list[Node] = field(default_factory=list)


class Executable(abc.ABC):
    """A compiled subgraph. Built once per batch shape, run once per step."""

    @abc.abstractmethod
    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        """Run every op. ``inputs`` maps the id of each ``Subgraph.inputs`` node to its value;
        ``n_kv`` is the number of cache cells attention reads this step. Returns the values of
        ``Subgraph.outputs`` as float32 host arrays, in order."""


class Backend(abc.ABC):
    """Base class of every backend. Subclasses are returned by the ``llmcore_backends`` hook."""

    #: the backend's name: its plugin folder's name (``cpu_simd``, ``vulkan``...)
    name: ClassVar[str]
    #: preference of ``--backend auto`` among usable backends: higher wins
    priority: ClassVar[int] = 0
    #: the plugin API version this backend targets (``llmcore.plugin_api.PLUGIN_API_VERSION`` when it
    #: was written); backends that declare none target 1.0, the first
    api_version: ClassVar[str] = "1.0"
    #: True for backends that compute in host memory on the CPU (reference, cpu_simd): they run
    #: the layers that are not offloaded and the ops an accelerator lacks
    runs_on_host: ClassVar[bool] = False
    #: True for backends whose devices are other machines, whose ``run`` mostly waits for them: the
    #: scheduler then runs their splits on threads of their own, several steps in flight through the
    #: stages (``scheduler.Pipeline``)
    pipelines: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Availability:
        """Cheap check, without allocating, of whether this backend can run on this machine."""

    def __init__(self, n_threads: int | None = None, device: int | None = None) -> None:
        self.n_threads = n_threads
        self.device = device
        if device is not None:  # one of several instances: named as llama.cpp names devices (vulkan1)
            self.name = f"{type(self).name}{device}"

    @classmethod
    def configure(cls, setting: str) -> None:
        """Take the user's setting for this backend as a whole, given before it is probed: the
        command line's ``--<name> SETTING`` or ``LLM(<name>=SETTING)`` (``--ray auto`` calls
        ``configure("auto")`` on the ``ray`` backend). Raise ``BackendError`` for a setting it
        refuses. The default takes none (plugin API 2.6)."""
        raise BackendError(f"{cls.name}: takes no setting (got {setting!r})")

    @abc.abstractmethod
    def supports_op(self, node: Node) -> bool:
        """Whether this backend can execute ``node`` (its op and its source types)."""

    @abc.abstractmethod
    def load_weights(self, weights: Sequence[WeightData]) -> None:
        """Take ownership of the weights placed on this backend (copy, repack or keep the views)."""

    @abc.abstractmethod
    def compile(self, subgraph: Subgraph) -> Executable:
        """Prepare ``subgraph`` for repeated execution; allocate caches it names on first sight."""

    @abc.abstractmethod
    def cache_view(self, name: str) -> np.ndarray:
        """The host-visible contents of cache ``name`` ([cells, width]), for state save/restore
        and for moving cells between sequences. Writes to it must reach the backend's copy by the
        next ``run`` (backends with device memory return a staging copy and sync it)."""

    def memory_used(self) -> dict[str, int]:
        """Bytes this backend allocated, by kind: ``weights``, ``kv``, ``compute``."""
        return {}

    def build_id(self) -> str:
        """What identifies the code this backend runs beyond llmcore's version (a compiled kernel
        library's hash, a plugin's own version): ``llmcore plan``'s calibrations are kept under it,
        so that timings of other kernels are not reused. The default, empty, says nothing more
        (plugin API 2.13)."""
        return ""


__all__ = ["Availability", "Backend", "Device", "Executable", "Subgraph", "WeightData"]
