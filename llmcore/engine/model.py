"""A model file opened for use: its GGUF reader, tokenizer, hyper-parameters and architecture."""

from __future__ import annotations

from pathlib import Path

from llmcore.gguf import GGUFReader
from llmcore.models import Architecture, HParams, WeightSpec, architecture_for
from llmcore.tokenizer import Tokenizer


class Model:
    """Opening a model maps the file and parses its header; no weight is read until a backend
    takes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.reader = GGUFReader(self.path)
        self.metadata = self.reader.metadata
        self.tokenizer = Tokenizer.from_metadata(self.metadata)
        self.hparams = HParams.from_metadata(self.metadata, self.tokenizer.n_vocab)
        self.architecture: type[Architecture] = architecture_for(self.hparams.arch)
        self.weight_specs = {name: WeightSpec(t.shape, t.type) for name, t in self.reader.tensors.items()}

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
