"""One pipeline stage on one node: what the ray backend's actor does there. It maps its weights
from the model file on that node (by path and offset: the weights never travel), runs the layer
ranges it is handed on that node's own backends (the best host backend, ops it declines on the
next, down to ``reference``), and keeps their KV caches. Only activations cross the network.

Plain Python, no Ray: the backend wraps it in ``ray.remote``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from llmcore.plugin_api import Backend, BackendError, GGMLType, ScheduledSubgraph, Subgraph, WeightData, host_backends


@dataclass(frozen=True)
class WeightSource:
    """Where a weight's bytes lie in the model's file, and how to view them (``WeightData.raw``'s
    dtype and shape); ``inline`` holds a weight made in memory (a control vector's direction)."""

    name: str
    type: int
    shape: tuple[int, ...]
    dtype: str
    raw_shape: tuple[int, ...]
    file: str | None
    offset: int
    inline: np.ndarray | None = None

    @classmethod
    def of(cls, weight: WeightData) -> WeightSource:
        raw = weight.raw
        inline = None if weight.file is not None else np.ascontiguousarray(raw)
        return cls(weight.name, int(weight.type), weight.shape, raw.dtype.str, raw.shape, weight.file, weight.offset, inline)

    def load(self) -> WeightData:
        """The weight as a read-only view of this node's copy of the file."""
        if self.inline is not None:
            raw = self.inline
        elif not np.prod(self.raw_shape, dtype=np.int64):
            raw = np.empty(self.raw_shape, self.dtype)
        else:
            try:
                raw = np.memmap(self.file, self.dtype, "r", self.offset, self.raw_shape)
            except (OSError, ValueError) as error:
                raise BackendError(f"ray: node {os.uname().nodename} cannot read {self.name} from {self.file}: {error} "
                                   "(every node needs the model file at the same path)") from None
        return WeightData(self.name, GGMLType(self.type), self.shape, raw, self.file, self.offset)


class Stage:
    """A node's share of the model: weights, compiled layer ranges and their caches."""

    def __init__(self, n_threads: int) -> None:
        classes = host_backends()
        if not classes:
            raise BackendError(f"ray: node {os.uname().nodename} has no usable llmcore backend")
        self.backends: list[Backend] = [cls(n_threads=n_threads) for cls in classes]
        self.executables: dict[int, ScheduledSubgraph] = {}
        self.cache_holder: dict[str, Backend] = {}

    def describe(self) -> str:
        return f"{os.uname().nodename} pid {os.getpid()}: " + ", ".join(b.name for b in self.backends)

    def load_weights(self, sources: Sequence[WeightSource]) -> None:
        # every backend gets them all: which of them runs an op is decided per node at compile
        weights = [source.load() for source in sources]
        for backend in self.backends:
            backend.load_weights(weights)

    def compile(self, key: int, subgraph: Subgraph) -> None:
        executable = ScheduledSubgraph(subgraph, self.backends)
        self.executables[key] = executable
        self.cache_holder.update(executable.cache_holders())

    def drop(self, key: int) -> None:
        self.executables.pop(key, None)

    def run(self, key: int, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        return self.executables[key].run(inputs, n_kv)

    def cache_view(self, name: str) -> np.ndarray:
        return np.array(self.cache_holder[name].cache_view(name))

    def write_cache(self, name: str, contents: np.ndarray) -> None:
        self.cache_holder[name].cache_view(name)[...] = contents

    def memory_used(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for backend in self.backends:
            for kind, n in backend.memory_used().items():
                total[kind] = total.get(kind, 0) + n
        return total
