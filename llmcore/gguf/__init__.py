"""GGUF files: a validating mmap-backed reader, a writer, and dequantization to float32.

Format constants (``GGMLType``, ``GGUFValueType``, block sizes) are the ``gguf`` package's, so they
always match llama.cpp's.
"""

from .dequant import SUPPORTED_TYPES, dequantize
from .reader import GGUFReader
from .types import GGML_QUANT_SIZES, GGMLType, GGUFValueType, TensorInfo
from .writer import GGUFWriter

__all__ = [
    "GGML_QUANT_SIZES",
    "GGMLType",
    "GGUFReader",
    "GGUFValueType",
    "GGUFWriter",
    "SUPPORTED_TYPES",
    "TensorInfo",
    "dequantize",
]
