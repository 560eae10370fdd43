"""The ray backend: each device is a node of the Ray cluster named by ``--ray``.

llmcore's scheduler places layer ranges on the devices (``-ngl``, ``-ts``, ``-ot``) as on local
GPUs and hands each its split; the backend claims every op, so a device's split is its whole layer
range. The split goes, once per batch shape, to an actor on that node (``stage.Stage``), which
reads its weights from the model file there, runs the range on the node's own backends and keeps
the range's KV cache. Per step only the split's inputs (activations, positions, the mask) go out
and its outputs come back.

A stage whose node or process dies fails the step with a one-line ``BackendError`` (the engine
then forgets the KV cache, which lived partly there); the next step starts the stage again, on the
same node if it is back, else on another node with CPUs, and reloads its weights there."""

from __future__ import annotations

import dataclasses
import importlib.util
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from llmcore.plugin_api import (PLUGIN_API_VERSION, Availability, Backend, BackendError, Executable, Node, Op, Subgraph,
                                WeightData)

from llmcore_ray import cluster
from llmcore_ray.stage import WeightSource

_NOT_CONNECTED = "not connected to a Ray cluster: pass --ray auto|HOST:PORT (LLM(ray=...)) to use its nodes"


class RayBackend(Backend):
    name = "ray"
    # above the local accelerators: a cluster is used only when the user names one with --ray
    priority = 40
    api_version = PLUGIN_API_VERSION
    # a run waits for the node: several steps in flight keep every stage busy (docs/ray.md)
    pipelines = True
    address: ClassVar[str | None] = None

    @classmethod
    def configure(cls, setting: str) -> None:
        cls.address = cluster.connect(setting)

    @classmethod
    def probe(cls) -> Availability:
        if importlib.util.find_spec("ray") is None:  # found, not imported: listing backends stays cheap
            return Availability(False, f"the ray package is not installed: {cluster.INSTALL}")
        if cls.address is None:
            return Availability(False, _NOT_CONNECTED)
        nodes = cluster.nodes()
        if not nodes:
            return Availability(False, f"the cluster at {cls.address} has no alive node with CPUs or GPUs")
        return Availability(True, devices=tuple(node.device for node in nodes))

    def __init__(self, n_threads: int | None = None, device: int | None = None) -> None:
        super().__init__(n_threads, device)
        if self.address is None:
            raise BackendError(f"ray: {_NOT_CONNECTED}")
        nodes = cluster.nodes()
        index = device or 0
        if index >= len(nodes):
            raise BackendError(f"ray: device {index} is gone: the cluster at {self.address} has {len(nodes)} node(s)")
        self.node = nodes[index]
        self._stage: Any = None
        self._failed_node: str | None = None
        self._weights: list[WeightSource] = []
        self._subgraphs: dict[int, Subgraph] = {}  # what the stage compiled, by key: replayed on a new stage
        self._next_key = 0
        self._views: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # cache views handed out: (view, as fetched)

    # -- the Backend contract -------------------------------------------------------------------

    def supports_op(self, node: Node) -> bool:
        return True  # the node's own backends run each op, down to reference, which runs all

    def load_weights(self, weights: Sequence[WeightData]) -> None:
        self._weights = [WeightSource.of(weight) for weight in weights]
        self._call("load_weights", self._weights)

    def compile(self, subgraph: Subgraph) -> Executable:
        key, self._next_key = self._next_key, self._next_key + 1
        standalone = _standalone(subgraph)
        self._subgraphs[key] = standalone
        self._call("compile", key, standalone)
        return RayExecutable(self, key)

    def cache_view(self, name: str) -> np.ndarray:
        if name not in self._views:
            fetched = self._call("cache_view", name)
            self._views[name] = (fetched, fetched.copy())
        return self._views[name][0]

    def memory_used(self) -> dict[str, int]:
        return self._call("memory_used") if self._stage is not None else {}

    # -- the stage on the node ---------------------------------------------------------------------

    def run(self, key: int, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        for name, (view, fetched) in self._views.items():  # cache_view's writes reach the stage first
            if not np.array_equal(view, fetched):
                self._call("write_cache", name, view)
        self._views.clear()
        return self._call("run", key, dict(inputs), n_kv)

    def drop(self, key: int) -> None:
        import ray

        self._subgraphs.pop(key, None)
        if self._stage is not None and ray.is_initialized():
            try:
                self._stage.drop.remote(key)
            except Exception:  # the stage or the cluster is gone already: nothing is left to free
                pass

    def _call(self, method: str, *args: Any) -> Any:
        """Call the stage's ``method`` and wait; a dead stage becomes a one-line BackendError."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        if self._stage is None:
            self._start_stage()
        try:
            return ray.get(getattr(self._stage, method).remote(*args))
        except RayTaskError as error:
            if isinstance(error.cause, BackendError):
                raise BackendError(str(error.cause)) from None
            raise error.cause from None
        except (RayActorError, GetTimeoutError) as error:
            self._stage = None
            self._views.clear()
            self._failed_node = self.node.node_id
            raise BackendError(f"ray: the stage on node {self.node.device.name} is gone ({type(error).__name__}); "
                               "its KV cache is lost and the next request starts it again") from None

    def _start_stage(self) -> None:
        """An actor on this device's node (another alive node if it is gone) holding the weights
        and every compiled range; its caches start empty."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from llmcore_ray.stage import Stage

        alive = cluster.nodes()
        # a node that just failed may still be listed alive until Ray's health checks give up on it
        usable = [node for node in alive if node.node_id != self._failed_node] or alive
        if not usable:
            raise BackendError(f"ray: the cluster at {self.address} has no alive node with CPUs left")
        self.node = next((node for node in usable if node.node_id == self.node.node_id), usable[0])
        # 0 CPUs reserved: the stage is placed by node affinity and may share a node with another
        # stage after a failure; it computes with the node's CPU count of threads
        actor = ray.remote(Stage).options(num_cpus=0, max_restarts=0, scheduling_strategy=
                                          NodeAffinitySchedulingStrategy(self.node.node_id, soft=False))
        self._stage = actor.remote(max(self.node.cpus, 1))
        if self._weights:
            self._call("load_weights", self._weights)
        for key, subgraph in self._subgraphs.items():
            self._call("compile", key, subgraph)


class RayExecutable(Executable):
    """A layer range compiled on a stage: ``run`` sends its inputs and waits for its outputs."""

    def __init__(self, backend: RayBackend, key: int) -> None:
        self.backend, self.key = backend, key
        weakref.finalize(self, backend.drop, key)

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        return self.backend.run(self.key, inputs, n_kv)


def _standalone(subgraph: Subgraph) -> Subgraph:
    """A copy of ``subgraph`` that travels alone: its inputs become source-less ``INPUT`` nodes
    with the same ids (their values arrive by id), so the rest of the graph stays behind."""
    copies: dict[int, Node] = {n.id: dataclasses.replace(n, op=Op.INPUT, srcs=(), params={}) for n in subgraph.inputs}
    nodes = []
    for node in subgraph.nodes:
        copy = dataclasses.replace(node, srcs=tuple(copies.get(src.id, src) for src in node.srcs))
        copies[node.id] = copy
        nodes.append(copy)
    return Subgraph(nodes, [copies[n.id] for n in subgraph.inputs], [copies[n.id] for n in subgraph.outputs],
                    list(subgraph.weights), list(subgraph.caches))
