"""Running one op case on one backend, through the scheduler as a model would run it, and
checking a backend's results against the reference backend's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmcore.graph import kv_types
from llmcore.graph.backend import Backend
from llmcore.conformance.cases import CaseData, OpCase
from llmcore.conformance.compare import NMSE_BOUNDS, Mismatch, compare
from llmcore.graph.scheduler import CompiledGraph


@dataclass(frozen=True)
class CaseResult:
    """What a backend produced: the output of each step and the caches' contents at the end."""

    outputs: list[np.ndarray]
    caches: dict[str, np.ndarray]


def run_case(backend: Backend, case: OpCase, data: CaseData) -> CaseResult:
    """Load the case's weights onto ``backend``, compile the graph there (the scheduler places
    every node on it), fill the caches through ``cache_view`` and run every step."""
    backend.load_weights(data.weights)
    plan = CompiledGraph(case.graph, place=lambda node: backend, fallback=backend)
    for name, contents in data.caches.items():
        backend.cache_view(name)[...] = contents
    outputs = [np.array(plan.run(feeds, case.n_kv)["out"], np.float32) for feeds in data.steps]
    # the caches' values, decoded from their storage layout (block types as bytes, bf16 as bit patterns)
    caches = {c.name: kv_types.load_rows(c.dtype, np.array(backend.cache_view(c.name)), c.shape[1])
              for c in case.graph.caches}
    return CaseResult(outputs, caches)


def check_case(backend: Backend, reference: Backend, case: OpCase) -> list[Mismatch]:
    """Every way ``backend``'s results for ``case`` differ from ``reference``'s beyond the op's bound."""
    data = case.data()
    want = run_case(reference, case, data)
    got = run_case(backend, case, data)
    bound = NMSE_BOUNDS[case.op]
    problems = []
    for step, (g, w) in enumerate(zip(got.outputs, want.outputs)):
        problems.append(compare("output" if case.n_steps == 1 else f"output of step {step + 1}", g, w, bound))
    for name in want.caches:
        problems.append(compare(f"cache {name} afterwards", got.caches[name], want.caches[name], bound))
    return [p for p in problems if p is not None]


__all__ = ["CaseResult", "check_case", "run_case"]
