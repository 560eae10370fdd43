"""The scheduler: places each node of a graph on a backend, layer by layer, cuts the graph into
splits of consecutive nodes on one backend, and runs the splits in order, copying the values that
cross a split boundary. Dispatch is decided here, once per graph, never per op call. Where backends
on other machines hold stages of the model, a :class:`Pipeline` keeps several steps in flight."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from llmcore.graph.backend import Backend, Executable, Subgraph
from llmcore.errors import BackendError
from llmcore.graph.ir import Graph, Node, Op


@dataclass
class Split:
    backend: Backend
    subgraph: Subgraph
    executable: Executable | None = None
    #: the ids of the subgraph's inputs and outputs, which every step looks up
    input_ids: tuple[int, ...] = field(init=False)
    output_ids: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.input_ids = tuple(node.id for node in self.subgraph.inputs)
        self.output_ids = tuple(node.id for node in self.subgraph.outputs)


class CompiledGraph:
    """A graph placed on backends and compiled: run it once per step with that step's inputs."""

    def __init__(self, graph: Graph, place: Callable[[Node], Backend], fallback: Backend | Sequence[Backend]) -> None:
        self.graph = graph
        self.splits = split_graph(graph, place, fallback)
        for split in self.splits:
            split.executable = split.backend.compile(split.subgraph)
        self._input_ids = {name: node.id for name, node in graph.inputs.items()}
        self._output_ids = [(name, node.id) for name, node in graph.outputs.items()]

    def run(self, feeds: Mapping[str, np.ndarray], n_kv: int) -> dict[str, np.ndarray]:
        """Run every split. ``feeds`` maps graph input names to arrays."""
        values = self.input_values(feeds)
        _run_splits(self.splits, values, n_kv)
        return self.output_values(values)

    def input_values(self, feeds: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        """``feeds`` by graph node id, as the splits read them."""
        input_ids = self._input_ids
        return {input_ids[name]: value for name, value in feeds.items()}

    def output_values(self, values: Mapping[int, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph's outputs by name, from the values of a step that ran."""
        return {name: values[node_id] for name, node_id in self._output_ids}


class ScheduledSubgraph(Executable):
    """A subgraph run by several backends: each node on the first of ``backends`` that supports it,
    cut into splits as a whole graph is. A backend that hands its split on to others (a device on
    another machine, running its layer range on that machine's backends) compiles it so."""

    def __init__(self, subgraph: Subgraph, backends: Sequence[Backend]) -> None:
        if not backends:
            raise BackendError("no backend to run the subgraph on")
        self.subgraph = subgraph
        outputs = {str(node.id): node for node in subgraph.outputs}
        graph = Graph(subgraph.nodes, outputs, {}, 0, 0)
        self.splits = split_graph(graph, lambda node: backends[0], backends[1:])
        for split in self.splits:
            split.executable = split.backend.compile(split.subgraph)

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        values = dict(inputs)
        _run_splits(self.splits, values, n_kv)
        return [values[node.id] for node in self.subgraph.outputs]

    def cache_holders(self) -> dict[str, Backend]:
        """The backend holding each cache the subgraph names (its ``cache_view`` answers for it)."""
        return {cache.name: split.backend for split in self.splits for cache in split.subgraph.caches}


def _run_splits(splits: Sequence[Split], values: dict[int, np.ndarray], n_kv: int) -> None:
    """Run ``splits`` in order, reading their inputs from ``values`` and adding their outputs."""
    for split in splits:
        results = split.executable.run({node_id: values[node_id] for node_id in split.input_ids}, n_kv)
        values.update(zip(split.output_ids, results))


class Pipeline:
    """Steps of compiled graphs in flight together, as llama.cpp's scheduler pipelines micro-batches
    over devices. Each backend that ``pipelines`` (a device on another machine) runs its splits on a
    thread of its own, the other backends theirs on one shared thread; every thread takes its splits
    in the order the steps were submitted, and a step's split starts once the step's previous split
    has ended. So stage k computes one step while stage k+1 computes the step before, and each
    backend meets the steps, and its caches their writes, in the order of running them one by one:
    the results are the same.

    A failed split fails its step and every step in flight behind it (their caches may miss its
    writes): :meth:`recover` waits for them and clears the failure."""

    def __init__(self) -> None:
        self._lanes: dict[int | None, queue.SimpleQueue[_Task | None]] = {}
        self._in_flight: list[Future[dict[str, np.ndarray]]] = []
        self.failure: BaseException | None = None

    @staticmethod
    def wanted(backends: Sequence[Backend]) -> bool:
        """Whether steps over ``backends`` gain from a pipeline: one of them pipelines."""
        return any(backend.pipelines for backend in backends)

    def submit(self, graph: CompiledGraph, feeds: Mapping[str, np.ndarray], n_kv: int) -> Future[dict[str, np.ndarray]]:
        """Queue one step of ``graph`` (what :meth:`CompiledGraph.run` computes) and return at once."""
        values = graph.input_values(feeds)
        step: Future[dict[str, np.ndarray]] = Future()
        previous: Future[None] | None = None
        for split in graph.splits:
            done: Future[None] = Future()
            self._lane(split.backend).put(_Task(self, split, values, n_kv, previous, done))
            previous = done

        def finish(last: Future[None]) -> None:
            error = last.exception()
            if error is not None:
                step.set_exception(error)
            else:
                step.set_result(graph.output_values(values))

        if previous is None:
            finish(_done())
        else:
            previous.add_done_callback(finish)
        self._in_flight = [f for f in self._in_flight if not f.done()] + [step]
        return step

    def wait(self) -> None:
        """Wait until every step submitted has ended (failed or not)."""
        for step in self._in_flight:
            step.exception()
        self._in_flight.clear()

    def recover(self) -> bool:
        """After a failure: wait for the steps in flight, which fail too, and run steps again from
        now on. Whether there was a failure to recover from."""
        if self.failure is None:
            return False
        self.wait()
        self.failure = None
        return True

    def close(self) -> None:
        """End the threads once the steps in flight have ended."""
        for lane in self._lanes.values():
            lane.put(None)
        self._lanes.clear()

    def _lane(self, backend: Backend) -> queue.SimpleQueue[_Task | None]:
        key = id(backend) if backend.pipelines else None
        if key not in self._lanes:
            lane: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
            name = backend.name if backend.pipelines else "host"
            threading.Thread(target=_work, args=(lane,), name=f"llmcore-pipeline-{name}", daemon=True).start()
            self._lanes[key] = lane
        return self._lanes[key]


@dataclass
class _Task:
    """One split of one step: run it once the step's previous split has ended."""

    pipeline: Pipeline
    split: Split
    values: dict[int, np.ndarray]
    n_kv: int
    previous: Future[None] | None
    done: Future[None]

    def run(self) -> None:
        error = self.previous.exception() if self.previous is not None else None
        error = error or self.pipeline.failure
        if error is None:
            try:
                _run_splits([self.split], self.values, self.n_kv)
            except BaseException as failed:  # noqa: BLE001 - handed to whoever waits for the step
                error = self.pipeline.failure = self.pipeline.failure or failed
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


def _work(lane: queue.SimpleQueue[_Task | None]) -> None:
    while (task := lane.get()) is not None:
        task.run()


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


def assign(node: Node, place: Callable[[Node], Backend], fallback: Backend | Sequence[Backend]) -> Backend:
    """The backend that runs ``node``: the one ``place`` picks if it supports the node, else the
    first of ``fallback`` (one backend, or several asked in order) that does."""
    backend = place(node)
    if backend.supports_op(node):
        return backend
    for candidate in (fallback,) if isinstance(fallback, Backend) else fallback:
        if candidate.supports_op(node):
            return candidate
    raise BackendError(f"no backend supports {node}")


def split_graph(graph: Graph, place: Callable[[Node], Backend], fallback: Backend | Sequence[Backend]) -> list[Split]:
    owner = {node.id: assign(node, place, fallback) for node in graph.nodes if not node.is_leaf}

    consumers: dict[int, set[int]] = {}
    for node in graph.nodes:
        for src in node.srcs:
            consumers.setdefault(src.id, set()).add(node.id)
    needed_outside = {n.id for n in graph.outputs.values()}

    splits: list[Split] = []
    computed = [n for n in graph.nodes if n.id in owner]
    start = 0
    while start < len(computed):
        backend = owner[computed[start].id]
        end = start
        while end < len(computed) and owner[computed[end].id] is backend:
            end += 1
        nodes = computed[start:end]
        inside = {n.id for n in nodes}
        leaves = {s.id: s for n in nodes for s in n.srcs if s.op in (Op.WEIGHT, Op.CACHE)}
        inputs = {s.id: s for n in nodes for s in n.srcs if s.id not in inside and s.id not in leaves}
        outputs = [n for n in nodes
                   if n.id in needed_outside or any(c not in inside for c in consumers.get(n.id, ()))]
        subgraph = Subgraph(
            nodes=nodes,
            inputs=list(inputs.values()),
            outputs=outputs,
            weights=[s for s in leaves.values() if s.op is Op.WEIGHT],
            caches=[s for s in leaves.values() if s.op is Op.CACHE],
        )
        splits.append(Split(backend, subgraph))
        start = end
    return splits
