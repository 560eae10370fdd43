"""A model file opened for use: its GGUF reader, tokenizer, hyper-parameters and architecture."""

from __future__ import annotations

import os
from pathlib import Path

from llmcore.errors import ModelError
from llmcore.gguf import GGUFReader
from llmcore.graph.backend import WeightData
from llmcore.graph.ir import Node
from llmcore.models import Architecture, HParams, WeightSpec, architecture_for
from llmcore.tokenizer import Tokenizer


class Model:
    """Opening a model maps the file and parses its header; no weight is read until a backend
    takes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.reader = GGUFReader(self.path)
        self.metadata = self.reader.metadata
        try:
            self.tokenizer = Tokenizer.from_metadata(self.metadata, str(self.path))
            self.hparams = HParams.from_metadata(self.metadata, self.tokenizer.n_vocab)
            self.architecture: type[Architecture] = architecture_for(self.hparams.arch)
            self.weight_specs = {name: WeightSpec(t.shape, t.type) for name, t in self.reader.tensors.items()}
            # a one-cell context: the weights are checked before any cache or buffer is sized
            self.architecture(self.hparams, self.weight_specs, n_ctx=1).check_weights()
        except ModelError as error:
            self.reader.close()
            raise ModelError(f"{self.path}: {error}") from None

    def weight_data(self, node: Node) -> WeightData:
        """The bytes of weight ``node`` as a zero-copy view of the file: the whole tensor, or the
        row range a fused tensor's split names (``GraphBuilder.weight_rows``)."""
        tensor = node.params.get("tensor", node.name)
        info = self.reader.tensors[tensor]
        raw = self.reader.raw(tensor)
        offset = info.offset
        if "rows" in node.params:
            start, stop = node.params["rows"]
            offset += start * (raw.nbytes // max(len(raw), 1))
            raw = raw[start:stop]
        if raw.ndim != len(node.shape):  # a vector taken as a one-row matrix (Architecture.w_vector_as_row)
            raw = raw.reshape(*node.shape[:-1], -1)
        return WeightData(node.name, info.type, node.shape, raw, os.path.abspath(self.reader.part_paths[info.part]), offset)

    def weight_bytes(self, node: Node) -> int:
        return self.weight_data(node).raw.nbytes

    @property
    def size_bytes(self) -> int:
        return sum(t.n_bytes for t in self.reader.tensors.values())

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.reader.tensors.values())

    def describe(self) -> str:
        """A one-line summary like llama.cpp's model type line."""
        name = self.metadata.get("general.name", self.path.name)
        return (f"{name} ({self.hparams.arch}, {self.n_params / 1e6:.0f}M params, "
                f"{self.size_bytes / 2**20:.1f} MiB, {self.hparams.n_layer} layers)")

    def close(self) -> None:
        self.reader.close()
