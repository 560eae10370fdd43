"""Where each part of a model runs: llama.cpp's placement rules, layer by layer.

``-ngl N`` offloads the last N of the model's ``n_layer + 1`` offloadable layers (the repeating
blocks, then the output head) to the accelerator backend; the input embedding always stays on the
CPU backend, as in llama.cpp. ``--override-tensor REGEX=BACKEND`` pins matching weights, and the
ops that read them, to a named backend. With several devices of one accelerator backend,
``--split-mode layer`` cuts the offloaded layers between them in ``--tensor-split`` proportions.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmcore.graph.backend import Backend
from llmcore.errors import LLMCoreError
from llmcore.graph.ir import Node, Op

INPUT_LAYER = -1


@dataclass(frozen=True)
class TensorOverride:
    pattern: re.Pattern[str]
    backend: Backend


@dataclass
class LayerPlacement:
    """Which backend runs each layer (-1 the input embedding, ``n_layer`` the output head)."""

    n_layer: int
    backends: dict[int, Backend]
    cpu: Backend  # runs what the others cannot
    overrides: list[TensorOverride] = field(default_factory=list)
    # runs what even ``cpu`` cannot (the reference backend, which supports every op and type), as
    # llama.cpp's CPU backend is the scheduler's last resort
    last_resort: Backend | None = None

    @property
    def fallbacks(self) -> tuple[Backend, ...]:
        """The backends asked, in order, for a node its placed backend declines."""
        return (self.cpu,) if self.last_resort is None or self.last_resort is self.cpu else (self.cpu, self.last_resort)

    @classmethod
    def single(cls, backend: Backend, n_layer: int) -> LayerPlacement:
        return cls(n_layer, {il: backend for il in range(INPUT_LAYER, n_layer + 1)}, backend)

    @classmethod
    def offload(cls, cpu: Backend, accelerators: Sequence[Backend], n_layer: int, n_gpu_layers: int,
                shares: Sequence[float] = (1.0,)) -> LayerPlacement:
        """llama.cpp's rule: layers ``il >= n_layer + 1 - n_gpu_layers`` (the output head counting
        as layer ``n_layer``) run on the accelerators; the rest, and the input, on ``cpu``. With
        several accelerators (``--split-mode layer``) the offloaded layers are cut in the proportions
        ``shares`` (``--tensor-split``), in order: see :func:`split_layers`."""
        device_of = split_layers(n_layer, n_gpu_layers, shares)
        backends = {il: accelerators[device_of[il]] if il in device_of else cpu for il in range(INPUT_LAYER, n_layer + 1)}
        return cls(n_layer, backends, cpu)

    def __call__(self, node: Node) -> Backend:
        weight = node if node.op is Op.WEIGHT else next((s for s in node.srcs if s.op is Op.WEIGHT), None)
        if weight is not None:
            for override in self.overrides:
                if override.pattern.search(weight.name):
                    return override.backend
        return self.backends.get(node.layer, self.cpu)

    def describe(self) -> list[tuple[str, str]]:
        """Runs of consecutive layers on one backend, e.g. ``[("input, 0-15", "cpu_simd"), ("16-29, output", "vulkan")]``."""
        runs: list[tuple[list[int], str]] = []
        for layer in range(INPUT_LAYER, self.n_layer + 1):
            name = self.backends[layer].name
            if runs and runs[-1][1] == name:
                runs[-1][0].append(layer)
            else:
                runs.append(([layer], name))
        described = [(self._name_layers(layers), name) for layers, name in runs]
        described += [(f"tensors matching {o.pattern.pattern!r}", o.backend.name) for o in self.overrides]
        return described

    def _name_layers(self, layers: list[int]) -> str:
        parts = []
        blocks = [il for il in layers if 0 <= il < self.n_layer]
        if INPUT_LAYER in layers:
            parts.append("input")
        if blocks:
            parts.append(f"{blocks[0]}-{blocks[-1]}" if len(blocks) > 1 else str(blocks[0]))
        if self.n_layer in layers:
            parts.append("output")
        return ", ".join(parts)


def split_layers(n_layer: int, n_gpu_layers: int, shares: Sequence[float]) -> dict[int, int]:
    """Which accelerator (index into ``shares``) runs each offloaded layer, as llama.cpp's
    ``llama_model::load_tensors`` assigns them: layer ``il`` goes to the first device whose
    cumulative share exceeds ``(il - first) / n_offloaded``."""
    first = max(n_layer + 1 - n_gpu_layers, 0)
    n_offloaded = n_layer + 1 - first
    total = float(sum(shares))
    cuts = list(itertools.accumulate(share / total for share in shares))
    return {il: min(bisect.bisect_right(cuts, (il - first) / n_offloaded), len(shares) - 1)
            for il in range(first, n_layer + 1)}


def parse_n_gpu_layers(value: str | int | None, n_layer: int) -> int:
    """``-ngl`` takes N, ``auto`` or ``all`` (and -1 means all, as in llama-cpp-python)."""
    if value is None or value in ("all", "auto", -1, "-1"):
        return n_layer + 1
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise LLMCoreError(f"-ngl/--n-gpu-layers takes a number, 'auto' or 'all', got {value!r}") from None
    if n < 0:
        raise LLMCoreError(f"-ngl/--n-gpu-layers must be >= 0 (or -1 for all), got {n}")
    return min(n, n_layer + 1)


def parse_override(spec: str, backends: dict[str, Backend]) -> TensorOverride:
    """``REGEX=BACKEND`` as llama.cpp's ``--override-tensor``."""
    pattern, sep, name = spec.rpartition("=")
    if not sep or not pattern:
        raise LLMCoreError(f"--override-tensor takes REGEX=BACKEND, got {spec!r}")
    if name not in backends:
        raise LLMCoreError(f"--override-tensor {spec!r}: backend {name!r} is not in use (in use: {', '.join(backends)})")
    try:
        return TensorOverride(re.compile(pattern), backends[name])
    except re.error as error:
        raise LLMCoreError(f"--override-tensor {spec!r}: bad regular expression: {error}") from None
