"""GGUF format vocabulary: value and tensor types, their sizes, and the tensor descriptor.

The enums and block sizes come from the ``gguf`` package (llama.cpp's own Python bindings) so that
llmcore never drifts from the format's definition; tensor types that ggml.h of llama.cpp 0.3.36
defines and an older ``gguf`` package lacks are added from ``_GGML_TYPES_SINCE_GGUF``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType

import numpy as np


def _gguf_constants() -> ModuleType:
    """The ``gguf`` package's ``constants`` module. Imported through its package it would bring the
    whole package (its reader, writer, tensor names and yaml-reading metadata: most of a command's
    start-up after numpy), so where the package is not imported yet, that one file is loaded alone
    (it imports nothing of the package)."""
    if "gguf.constants" in sys.modules:
        return sys.modules["gguf.constants"]
    package = importlib.util.find_spec("gguf")
    if package is None or not package.submodule_search_locations:
        raise ImportError("llmcore needs the gguf package (pip install gguf)")
    path = os.path.join(package.submodule_search_locations[0], "constants.py")
    spec = importlib.util.spec_from_file_location(f"{__name__}._gguf_constants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_constants = _gguf_constants()
_GGUF_QUANT_SIZES = _constants.GGML_QUANT_SIZES
_GGUFType = _constants.GGMLQuantizationType
GGUFValueType = _constants.GGUFValueType

__all__ = [
    "DEFAULT_ALIGNMENT",
    "EncodedStrings",
    "GGML_QUANT_SIZES",
    "GGUF_MAGIC",
    "GGMLType",
    "GGUFValueType",
    "MAX_DIMS",
    "MAX_TENSOR_NAME_BYTES",
    "SUPPORTED_VERSIONS",
    "TensorInfo",
    "numpy_dtype",
    "row_bytes",
    "tensor_bytes",
]

# ggml.h's tensor types newer than some gguf releases: name -> (type id, (values per block, bytes per block)).
_GGML_TYPES_SINCE_GGUF = {
    "TQ1_0": (34, (256, 2 + 4 * 13)),
    "TQ2_0": (35, (256, 2 + 64)),
    "MXFP4": (39, (32, 1 + 16)),
    "NVFP4": (40, (64, 4 + 32)),
    "Q1_0": (41, (128, 2 + 16)),
    "Q2_0": (42, (64, 2 + 16)),
}

GGMLType = IntEnum("GGMLType", {
    **{t.name: t.value for t in _GGUFType},
    **{name: value for name, (value, _) in _GGML_TYPES_SINCE_GGUF.items() if name not in _GGUFType.__members__},
}, module=__name__)
GGMLType.__doc__ = "ggml's tensor types (ggml.h's enum ggml_type), equal as integers to gguf's GGMLQuantizationType."

GGML_QUANT_SIZES: dict[GGMLType, tuple[int, int]] = {
    **{GGMLType(int(t)): sizes for t, sizes in _GGUF_QUANT_SIZES.items()},
    **{GGMLType(value): sizes for value, sizes in _GGML_TYPES_SINCE_GGUF.values()},
}

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # version 1 used 32-bit counts and is long gone
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME - 1 (ggml keeps a NUL-terminated 64-byte buffer)

# Fixed-width metadata value types -> little-endian numpy dtype.
SCALAR_DTYPES: dict[GGUFValueType, np.dtype] = {
    GGUFValueType.UINT8: np.dtype("<u1"),
    GGUFValueType.INT8: np.dtype("<i1"),
    GGUFValueType.UINT16: np.dtype("<u2"),
    GGUFValueType.INT16: np.dtype("<i2"),
    GGUFValueType.UINT32: np.dtype("<u4"),
    GGUFValueType.INT32: np.dtype("<i4"),
    GGUFValueType.FLOAT32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype("<u1"),
    GGUFValueType.UINT64: np.dtype("<u8"),
    GGUFValueType.INT64: np.dtype("<i8"),
    GGUFValueType.FLOAT64: np.dtype("<f8"),
}

# Tensor types stored as plain numpy elements (one element per value); BF16 has no numpy dtype.
_ELEMENT_DTYPES: dict[GGMLType, np.dtype] = {
    GGMLType.F32: np.dtype("<f4"),
    GGMLType.F16: np.dtype("<f2"),
    GGMLType.BF16: np.dtype("<u2"),
    GGMLType.F64: np.dtype("<f8"),
    GGMLType.I8: np.dtype("<i1"),
    GGMLType.I16: np.dtype("<i2"),
    GGMLType.I32: np.dtype("<i4"),
    GGMLType.I64: np.dtype("<i8"),
}


@dataclass(frozen=True)
class EncodedStrings:
    """A metadata array of strings as the file stores it: ``count`` length-prefixed UTF-8 strings
    back to back in ``data``. ``GGUFReader(path, decode_strings=False)`` gives these, and the writer
    stores them back byte for byte: a vocabulary copied without a Python string per token."""

    count: int
    data: bytes


def numpy_dtype(ggml_type: GGMLType) -> np.dtype | None:
    """The numpy dtype of one element of an unquantized type (BF16 -> uint16), None for block types."""
    return _ELEMENT_DTYPES.get(ggml_type)


def row_bytes(ggml_type: GGMLType, n_per_row: int) -> int:
    """Bytes taken by ``n_per_row`` values of ``ggml_type``; the count must be a multiple of the block size."""
    block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    if n_per_row % block_size:
        raise ValueError(f"{ggml_type.name} rows need a multiple of {block_size} values, got {n_per_row}")
    return n_per_row // block_size * type_size


def tensor_bytes(ggml_type: GGMLType, shape: tuple[int, ...]) -> int:
    """Bytes taken by a tensor of ``shape`` (numpy order, last axis = rows) and ``ggml_type``."""
    n_rows = 1
    for dim in shape[:-1]:
        n_rows *= dim
    return n_rows * row_bytes(ggml_type, shape[-1] if shape else 1)


@dataclass(frozen=True)
class TensorInfo:
    """Where and how one tensor is stored.

    ``shape`` is in numpy order (outermost first), i.e. ggml's ``ne`` reversed: ``token_embd.weight``
    with ggml ne ``[n_embd, n_vocab]`` has shape ``(n_vocab, n_embd)``. ``offset`` is the absolute byte
    offset of the data in the file of split ``part`` (0 for single-file models).
    """

    name: str
    type: GGMLType
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    offset: int
    part: int = 0

    @property
    def ne(self) -> tuple[int, ...]:
        """The shape in ggml order (fastest-varying dimension first)."""
        return tuple(reversed(self.shape))
