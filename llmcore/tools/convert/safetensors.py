"""Reading Hugging Face safetensors checkpoints (one file or shards named by
``model.safetensors.index.json``) as zero-copy numpy views of memory-mapped files.

The format is a little-endian u64 header size, a JSON header (name -> dtype, shape, data offsets),
then the raw tensors. BF16 tensors are returned as their uint16 bit patterns (numpy has no bfloat16).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmcore.errors import LLMCoreError

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?"}


@dataclass(frozen=True)
class StoredTensor:
    """One checkpoint tensor: where it is and what it holds; ``load`` maps it."""

    name: str
    dtype: str  # safetensors' name: "F32", "F16", "BF16", ...
    shape: tuple[int, ...]
    path: Path
    offset: int  # of its first byte in the file
    n_bytes: int

    def load(self) -> np.ndarray:
        """The tensor as a read-only view of the file (BF16 as uint16 bit patterns)."""
        data = np.memmap(self.path, np.uint8, "r", offset=self.offset, shape=(self.n_bytes,)) if self.n_bytes else \
            np.zeros(0, np.uint8)
        return data.view(_DTYPES[self.dtype]).reshape(self.shape)


def part_names(directory: Path) -> list[str]:
    """The checkpoint's safetensors files in convert_hf_to_gguf.py's order: the index's files
    sorted, else every ``model*.safetensors`` sorted."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError):
            raise LLMCoreError(f"{index}: no 'weight_map'") from None
        return sorted(set(weight_map.values()))
    return sorted(p.name for p in directory.glob("model*.safetensors"))


def read_header(path: Path) -> list[StoredTensor]:
    """The tensors of one safetensors file, sorted by name (the order convert_hf_to_gguf.py reads them)."""
    try:
        with open(path, "rb") as handle:
            size_bytes = handle.read(8)
            if len(size_bytes) < 8:
                raise LLMCoreError(f"{path}: offset 0: header size: the file is shorter than 8 bytes")
            (size,) = struct.unpack("<Q", size_bytes)
            header_bytes = handle.read(size)
    except OSError as error:
        raise LLMCoreError(f"{path}: {error.strerror}") from None
    if len(header_bytes) < size:
        raise LLMCoreError(f"{path}: offset 8: header: {size} bytes claimed, the file ends first")
    try:
        header = json.loads(header_bytes)
    except ValueError as error:
        raise LLMCoreError(f"{path}: offset 8: header: not JSON ({error})") from None
    start = 8 + size
    tensors = []
    for name, entry in sorted(header.items()):
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype")
        if dtype not in _DTYPES:
            raise LLMCoreError(f"{path}: tensor {name}: unsupported dtype {dtype!r}")
        begin, end = entry["data_offsets"]
        shape = tuple(int(d) for d in entry["shape"])
        if end - begin != int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize:
            raise LLMCoreError(f"{path}: tensor {name}: {end - begin} bytes do not hold {dtype} {list(shape)}")
        tensors.append(StoredTensor(name, dtype, shape, path, start + begin, end - begin))
    if tensors and max(t.offset + t.n_bytes for t in tensors) > path.stat().st_size:
        raise LLMCoreError(f"{path}: tensor data runs past the end of the file")
    return tensors


def checkpoint_tensors(directory: Path) -> Iterator[StoredTensor]:
    """Every tensor of the checkpoint in ``directory``, file after file."""
    names = part_names(directory)
    if not names:
        raise LLMCoreError(f"{directory}: no model*.safetensors files (PyTorch .bin checkpoints are not supported)")
    for name in names:
        yield from read_header(directory / name)
