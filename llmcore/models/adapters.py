"""Adapters applied on top of a model's weights without changing them, as llama.cpp applies them:

- LoRA adapters in llama.cpp's GGUF adapter format (``general.type = adapter``, ``adapter.type =
  lora``, ``adapter.lora.alpha``, pairs of tensors ``<weight>.lora_a`` / ``<weight>.lora_b``, as
  ``convert_lora_to_gguf.py`` writes them). A weight product ``W x`` becomes
  ``W x + s * B(A x)`` with ``s = scale * alpha / rank`` (``scale`` alone when alpha is 0), in the
  graph, so that every backend runs it (llama.cpp's ``build_lora_mm``); the token embedding's pair
  adds ``s * B A[token]``.
- Control vectors (llama.cpp's GGUF ``direction.N`` tensors, one per layer N >= 1): scaled, summed
  over the files and added to the output of each layer in a range (``build_cvec``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmcore.errors import ModelError
from llmcore.gguf import GGMLType, GGUFReader
from llmcore.graph.backend import WeightData
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node

#: integer tensors hold indices, never factors a product can use
_INTEGER_TYPES = frozenset({GGMLType.I8, GGMLType.I16, GGMLType.I32, GGMLType.I64, GGMLType.F64})


@dataclass(frozen=True)
class LoraPair:
    """The two factors of one adapted weight: A [rank, in] and B [out, rank] (numpy order; for the
    token embedding, A [n_vocab, rank] and B [n_embd, rank], as llama.cpp stores that pair)."""

    a: str
    b: str
    rank: int


class LoraAdapter:
    """A LoRA adapter file opened against a model: its pairs, checked for shape against the model's
    weights as llama.cpp's ``llama_adapter_lora_init`` checks them."""

    def __init__(self, path: str | os.PathLike[str], arch: str, weight_shapes: Mapping[str, tuple[int, ...]],
                 index: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"--lora {self.path}: no such file")
        self.reader = GGUFReader(self.path)
        #: where this adapter's weights are named in a graph: ``lora<index>:<tensor>``
        self.prefix = f"lora{index}:"
        try:
            meta = self.reader.metadata
            self._expect_key(meta, "general.type", "adapter")
            if meta.get("general.architecture") != arch:
                raise self._error(f"general.architecture is {meta.get('general.architecture')!r}, "
                                  f"the model's is {arch!r} (model arch and LoRA arch mismatch)")
            self._expect_key(meta, "adapter.type", "lora")
            alpha = meta.get("adapter.lora.alpha", 0.0)
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
                raise self._error(f"adapter.lora.alpha is {alpha!r}, not a number")
            self.alpha = float(np.float32(alpha))
            self.task_name = str(meta.get("adapter.lora.task_name", ""))
            self.prompt_prefix = str(meta.get("adapter.lora.prompt_prefix", ""))
            self.pairs = self._pairs(weight_shapes)
        except BaseException:
            self.reader.close()
            raise

    def _expect_key(self, meta: Mapping[str, object], key: str, value: str) -> None:
        if meta.get(key) != value:
            raise self._error(f"expected {key} = {value!r}, got {meta.get(key, '')!r}")

    def _error(self, problem: str) -> ModelError:
        return ModelError(f"LoRA adapter {self.path}: {problem}")

    def _pairs(self, weight_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, LoraPair]:
        halves: dict[str, dict[str, str]] = {}
        for name in self.reader.tensors:
            if name.endswith((".lora_a", ".lora_b")):
                halves.setdefault(name[:-len(".lora_a")], {})[name[-1]] = name
            elif not name.endswith("_norm.weight"):  # llama.cpp skips norm vectors too
                raise self._error(f"tensor {name!r} has an unexpected suffix (expected .lora_a or .lora_b)")
        pairs = {}
        for weight, half in halves.items():
            if set(half) != {"a", "b"}:
                raise self._error(f"the pair of {weight!r} lacks its lora_{'b' if 'a' in half else 'a'}")
            if weight not in weight_shapes:
                raise self._error(f"tensor {weight!r} does not exist in the base model (a wrong base model?)")
            a, b = (self.reader.tensors[half[k]] for k in "ab")
            for info in (a, b):
                if info.type in _INTEGER_TYPES or len(info.shape) != 2:
                    raise self._error(f"tensor {info.name!r} is {info.type.name} {info.shape}; a 2-D float or "
                                      "quantized matrix is needed")
            shape = weight_shapes[weight]
            if weight.endswith("token_embd.weight"):  # A and B swapped, B not transposed (llm_build_inp_embd)
                fits = len(shape) == 2 and shape[1] == b.shape[0] and shape[0] == a.shape[0] and a.shape[1] == b.shape[1]
                rank = b.shape[1]
            else:
                fits = len(shape) == 2 and shape[1] == a.shape[1] and shape[0] == b.shape[0]
                if fits and a.shape[0] != b.shape[1]:
                    raise self._error(f"lora_a of {weight!r} is not transposed (an adapter of the old finetune "
                                      "example is not supported)")
                rank = a.shape[0]
            if not fits:
                raise self._error(f"the pair of {weight!r} ({a.shape}, {b.shape}) does not fit its shape {shape} "
                                  "(a wrong base model?)")
            pairs[weight] = LoraPair(half["a"], half["b"], rank)
        return pairs

    def scale_for(self, pair: LoraPair, scale: float) -> float:
        """llama.cpp's ``get_scale``: scale * alpha / rank in float32, or scale when alpha is 0."""
        s = np.float32(scale)
        return float(s * np.float32(self.alpha) / np.float32(pair.rank)) if self.alpha else float(s)

    def factors(self, g: GraphBuilder, pair: LoraPair, rows: tuple[int, int] | None = None) -> tuple[Node, Node]:
        """Graph weights of A and B (of B's rows [start, stop) for a row range of a fused weight),
        named ``lora<index>:<tensor>`` so that the context knows where their bytes are."""
        a, b = (self.reader.tensors[name] for name in (pair.a, pair.b))
        a_node = g.weight(self.prefix + a.name, a.shape, a.type)
        if rows is None:
            return a_node, g.weight(self.prefix + b.name, b.shape, b.type)
        return a_node, g.weight_rows(self.prefix + b.name, b.shape, b.type, *rows)

    def weight_data(self, node: Node) -> WeightData:
        """The bytes of this adapter's weight ``node`` (rows of it where the node is a row range)."""
        tensor = node.params.get("tensor", node.name).removeprefix(self.prefix)
        raw = self.reader.raw(tensor)
        if "rows" in node.params:
            start, stop = node.params["rows"]
            raw = raw[start:stop]
        return WeightData(node.name, self.reader.tensors[tensor].type, node.shape, raw)

    def close(self) -> None:
        self.reader.close()


@dataclass
class ActiveLora:
    """An adapter applied with a user's scale (llama.cpp omits an adapter whose scale is 0)."""

    adapter: LoraAdapter
    scale: float


@dataclass(frozen=True)
class ControlVector:
    """The summed, scaled directions of one or more control vector files: ``layers[il]`` is added to
    the output of layer il for ``start <= il <= end`` (layer 0 never has one)."""

    layers: dict[int, np.ndarray] = field(default_factory=dict)
    start: int = 1
    end: int = 0

    def for_layer(self, il: int) -> np.ndarray | None:
        return self.layers.get(il) if il >= 1 and self.start <= il <= self.end else None


def load_control_vector(files: Sequence[tuple[str | os.PathLike[str], float]], n_embd: int, n_layer: int,
                        layer_range: tuple[int, int] | None = None) -> ControlVector:
    """llama.cpp's ``common_control_vector_load`` and ``llama_set_adapter_cvec``: each file's
    ``direction.N`` tensors (F32 [n_embd], N >= 1) times its scale, summed in float32 over the files;
    applied to layers START..END of ``layer_range`` (both inclusive; values <= 0 mean 1 and the last
    layer, as ``--control-vector-layer-range`` defaults)."""
    layers: dict[int, np.ndarray] = {}
    for path, scale in files:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"--control-vector {path}: no such file")
        with GGUFReader(path) as reader:
            for name, info in reader.tensors.items():
                stem, _, number = name.partition(".")
                if stem != "direction" or not number.isdigit():
                    raise ModelError(f"control vector {path}: tensor {name!r} is not named direction.<layer>")
                il = int(number)
                if il == 0:
                    raise ModelError(f"control vector {path}: tensor {name!r}: layer 0 has no control vector")
                if info.type != GGMLType.F32 or len(info.shape) != 1:
                    raise ModelError(f"control vector {path}: tensor {name!r} is {info.type.name} {info.shape}; "
                                     "an F32 vector is needed")
                if info.shape[0] != n_embd:
                    raise ModelError(f"control vector {path}: tensor {name!r} has {info.shape[0]} values; "
                                     f"the model's embedding has {n_embd}")
                scaled = reader.raw(name).astype(np.float32) * np.float32(scale)
                layers[il] = layers[il] + scaled if il in layers else scaled
    start, end = layer_range or (0, 0)
    return ControlVector({il: v for il, v in layers.items() if il < n_layer},
                         start if start > 0 else 1, end if end > 0 else n_layer)


__all__ = ["ActiveLora", "ControlVector", "LoraAdapter", "LoraPair", "load_control_vector"]
