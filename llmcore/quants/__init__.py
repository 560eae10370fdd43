"""ggml's block quantizers, in C: rows of float32 to F16, BF16, Q1_0, Q2_0, Q4_0, Q4_1, Q5_0, Q5_1,
Q8_0, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0 and the i-quants (IQ1_S, IQ1_M, IQ2_XXS,
IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS), byte for byte as llama.cpp's ``ggml_quantize_chunk``
writes them, with an importance matrix (``quantize_q4_K``'s weighted search) or without
(``quantize_row_q4_K_ref``). IQ1_S, IQ2_XXS and IQ2_XS need one (ggml asserts it; so does
``convert_rows``).

The C (``csrc/ggml_quants.c``, ported statement for statement from ggml-quants.c) is compiled on
first use (``build.py``) and called through ctypes, which releases the GIL: rows split over threads
quantize in parallel, and every row's bytes are the same however the rows are split.
"""

from __future__ import annotations

import ctypes
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llmcore.gguf import GGMLType
from llmcore.gguf.dequant import SUPPORTED_TYPES as _NUMPY_DEQUANT_TYPES
from llmcore.gguf.dequant import dequantize as _numpy_dequantize
from llmcore.gguf.types import GGML_QUANT_SIZES, row_bytes

__all__ = ["QUANTIZED_TYPES", "REQUIRES_IMATRIX", "TARGET_TYPES", "can_convert", "convert_rows", "quantize_rows", "to_float", "validate"]

#: the block types this module writes
QUANTIZED_TYPES = frozenset({
    GGMLType.Q1_0, GGMLType.Q2_0, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
    GGMLType.MXFP4, GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
    GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS,
    GGMLType.IQ2_S, GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
})
#: the types ggml quantizes only with an importance matrix (ggml_quantize_requires_imatrix)
REQUIRES_IMATRIX = frozenset({GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ1_S})
#: every type ``quantize_rows`` can write
TARGET_TYPES = QUANTIZED_TYPES | {GGMLType.F32, GGMLType.F16, GGMLType.BF16}

_ROWS_PER_TASK = 32  # the fewest rows a thread takes at a time (at least 16K values, as llama.cpp's chunks)
_TASKS_PER_THREAD = 4  # rows are shared out in about this many tasks per thread: few hand-offs, still balanced


#: the entry points of csrc/lq_quants.h called here: (result, argument types); pointers go as addresses
_SIGNATURES = {
    "lq_convert_rows": (ctypes.c_size_t, (ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                          ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)),
    "lq_to_float": (ctypes.c_int, (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)),
    "lq_validate": (ctypes.c_int, (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)),
}


@functools.cache
def _library() -> ctypes.CDLL:
    from .build import build

    lib = ctypes.CDLL(str(build()))
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def _pointer(array: np.ndarray | None) -> int | None:
    """The address of ``array``'s data (None: NULL); the caller keeps the array alive."""
    return None if array is None else array.ctypes.data


@functools.cache
def _pool(n_threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n_threads, thread_name_prefix="llmcore-quants")


def convert_rows(
    source_type: GGMLType,
    raw: np.ndarray,
    n_per_row: int,
    ggml_type: GGMLType,
    imatrix: np.ndarray | None = None,
    *,
    n_threads: int = 1,
) -> np.ndarray:
    """Whole rows of ``n_per_row`` values stored as ``source_type`` (``raw``: their bytes, any dtype),
    converted to float32 as ggml's ``to_float`` does and quantized to ``ggml_type``: a uint8 array of
    ``[n_rows, row_bytes]``. ``imatrix`` holds ``n_per_row`` importance weights (or None), used by the
    types whose ggml quantizer uses them. Each thread converts and quantizes rows of its own."""
    source_type, ggml_type = GGMLType(source_type), GGMLType(ggml_type)
    if ggml_type not in TARGET_TYPES:
        raise ValueError(f"cannot quantize to {ggml_type.name}")
    if n_per_row % GGML_QUANT_SIZES[ggml_type][0]:
        raise ValueError(f"{ggml_type.name} needs rows of a multiple of {GGML_QUANT_SIZES[ggml_type][0]} values")
    if imatrix is None and ggml_type in REQUIRES_IMATRIX:
        raise ValueError(f"quantizing to {ggml_type.name} needs an importance matrix")
    data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    if source_type not in TARGET_TYPES:  # read by numpy (llmcore.gguf.dequant), quantized here
        data, source_type = to_float(source_type, data, n_per_row).reshape(-1).view(np.uint8), GGMLType.F32
    n_rows = data.nbytes // row_bytes(source_type, n_per_row)
    data = data.reshape(n_rows, -1)
    if imatrix is not None:
        imatrix = np.ascontiguousarray(imatrix, dtype=np.float32)
        if imatrix.shape != (n_per_row,):
            raise ValueError(f"the importance matrix has {imatrix.size} values, rows have {n_per_row}")
    out = np.empty((n_rows, row_bytes(ggml_type, n_per_row)), np.uint8)
    lib = _library()
    weights = _pointer(imatrix)
    step = max(1, _ROWS_PER_TASK if n_per_row >= 512 else (16384 + n_per_row - 1) // n_per_row,
               -(-n_rows // (_TASKS_PER_THREAD * n_threads)))

    def run(first: int) -> None:
        count = min(step, n_rows - first)
        src, dst = data[first:first + count], out[first:first + count]
        written = lib.lq_convert_rows(int(source_type), _pointer(src), int(ggml_type), _pointer(dst), count,
                                      n_per_row, weights)
        if written != dst.nbytes:
            raise ValueError(f"converting {source_type.name} rows to {ggml_type.name} failed")

    starts = range(0, n_rows, step)
    if n_threads > 1 and len(starts) > 1:
        list(_pool(n_threads).map(run, starts))
    else:
        for first in starts:
            run(first)
    return out


def quantize_rows(
    ggml_type: GGMLType, rows: np.ndarray, imatrix: np.ndarray | None = None, *, n_threads: int = 1
) -> np.ndarray:
    """``rows`` (float32, ``[n_rows, n_per_row]``) quantized to ``ggml_type``, as ``convert_rows``."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return convert_rows(GGMLType.F32, rows, rows.shape[-1], ggml_type, imatrix, n_threads=n_threads)


def can_convert(ggml_type: GGMLType) -> bool:
    """Whether ``to_float`` reads tensors of ``ggml_type``."""
    return ggml_type in TARGET_TYPES or ggml_type in _NUMPY_DEQUANT_TYPES


def to_float(ggml_type: GGMLType, raw: np.ndarray, n_per_row: int) -> np.ndarray:
    """The float32 values of ``raw`` (the stored bytes of whole rows of ``n_per_row`` values), as
    ggml's ``to_float`` makes them: a ``[n_rows, n_per_row]`` array."""
    ggml_type = GGMLType(ggml_type)
    data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    n_rows = data.nbytes // row_bytes(ggml_type, n_per_row)
    if ggml_type == GGMLType.F32:
        return data.view(np.float32).reshape(n_rows, n_per_row)
    if ggml_type not in TARGET_TYPES:
        return _numpy_dequantize(data, ggml_type, (n_rows, n_per_row))
    out = np.empty((n_rows, n_per_row), np.float32)
    if not _library().lq_to_float(int(ggml_type), _pointer(data), _pointer(out), out.size):
        raise ValueError(f"cannot convert {ggml_type.name} to float32")
    return out


def validate(ggml_type: GGMLType, data: np.ndarray) -> bool:
    """ggml_validate_row_data: False when a value (F32, F16, BF16) or a block's fp16 scale is inf or NaN."""
    buffer = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return bool(_library().lq_validate(int(ggml_type), _pointer(buffer), buffer.nbytes))
