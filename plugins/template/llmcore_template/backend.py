"""The template backend: numpy kernels for a few ops and weight types, and nothing else.

It shows the whole contract of a backend (see docs/plugins.md): ``probe`` says whether and where it
can run, ``supports_op`` claims exactly what it runs (the scheduler gives every other op to the CPU
backend), ``load_weights`` takes the model's tensors, ``compile`` turns the subgraph it is given
into an executable, and ``run`` executes it once per step. Of llmcore it imports only
``llmcore.plugin_api``, as every plugin must.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from llmcore.plugin_api import (
    F32,
    Availability,
    Backend,
    BackendError,
    Device,
    Executable,
    GGMLType,
    Node,
    Op,
    Subgraph,
    WeightData,
    dequantize,
)

from llmcore_template import kernels

#: weight types of MUL_MAT this backend runs; matrices of other types run on the CPU backend
MATMUL_TYPES = frozenset({GGMLType.F32, GGMLType.F16, GGMLType.Q8_0})
#: ops it runs when every operand is float32 (activations, or weights stored as F32)
FLOAT_OPS = frozenset({Op.ADD, Op.MUL, Op.SCALE, Op.RMS_NORM, Op.SILU, Op.GELU, Op.SWIGLU, Op.GEGLU, Op.RESHAPE})


class TemplateBackend(Backend):
    name = "template"  # the entry point's name, and what --backend selects
    api_version = "2.0"  # the plugin API this backend was written against (llmcore.plugin_api.PLUGIN_API_VERSION)
    priority = -10  # below the reference backend: --backend auto never picks a demo
    runs_on_host = False  # only backends that run every op may be the CPU fallback

    @classmethod
    def probe(cls) -> Availability:
        """A real backend looks for its driver and devices here, without allocating, and returns
        ``Availability(False, "why")`` when it cannot run (no driver, no device, a failed build)."""
        return Availability(True, devices=(Device("numpy", "cpu", features=(f"numpy {np.__version__}",)),))

    def __init__(self, n_threads: int | None = None) -> None:
        super().__init__(n_threads)  # numpy picks its own BLAS threads; a real CPU backend uses these
        self._weights: dict[str, WeightData] = {}
        self._float_weights: dict[str, np.ndarray] = {}

    def supports_op(self, node: Node) -> bool:
        """Asked once per node when a graph is planned; everything claimed here must match the
        reference backend within the conformance kit's bounds."""
        if node.op is Op.MUL_MAT:
            w, x = node.srcs
            return w.op is Op.WEIGHT and w.dtype in MATMUL_TYPES and x.dtype == F32
        if node.op in FLOAT_OPS:
            return all(src.dtype in (F32, GGMLType.F32) for src in node.srcs)
        return False

    def load_weights(self, weights: Sequence[WeightData]) -> None:
        """Keeps the zero-copy views of the model file; ``compile`` converts only the weights its
        subgraphs read (a weight placed here may only be read by ops that fell back elsewhere)."""
        for w in weights:
            self._weights[w.name] = w

    def compile(self, subgraph: Subgraph) -> Executable:
        for node in subgraph.weights:
            if node.name not in self._weights:
                raise BackendError(f"template: weight {node.name} was not loaded onto this backend")
            if node.name not in self._float_weights:
                w = self._weights[node.name]
                self._float_weights[node.name] = dequantize(w.raw, w.type, w.shape)
        return TemplateExecutable(subgraph, {node.id: self._float_weights[node.name] for node in subgraph.weights})

    def cache_view(self, name: str) -> np.ndarray:
        # it claims neither KV_STORE nor ATTENTION, so the KV caches live on another backend
        raise BackendError(f"template: holds no KV cache (asked for {name})")

    def memory_used(self) -> dict[str, int]:
        return {"weights": sum(a.nbytes for a in self._float_weights.values())}


class TemplateExecutable(Executable):
    """Runs the subgraph's nodes in order, keeping each value by node id for this run only."""

    def __init__(self, subgraph: Subgraph, weights: dict[int, np.ndarray]) -> None:
        self._nodes = subgraph.nodes
        self._outputs = subgraph.outputs
        self._weights = weights

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        values = {**inputs, **self._weights}
        for node in self._nodes:
            values[node.id] = kernels.run_op(node, [values[src.id] for src in node.srcs])
        # copies in float32: what the caller holds must not change when the next run reuses memory
        return [np.array(values[node.id], np.float32) for node in self._outputs]
