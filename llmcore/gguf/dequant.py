"""Dequantization of GGML tensor data to float32, vectorised with numpy.

Each block type is described by a numpy structured dtype that mirrors ggml's C struct (``block_q4_0``
and friends in ggml-common.h), and a kernel turns an array of such blocks into ``(n_blocks,
block_size)`` float32 values. Kernels perform the same float32 operations in the same order as
ggml's ``dequantize_row_*`` so the results are bit-exact (the ``gguf`` package's reference is the
test oracle). Large tensors are processed in chunks of blocks to keep the temporaries cache-sized.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmcore.errors import GGUFError

from .types import GGML_QUANT_SIZES, GGMLType, tensor_bytes

__all__ = ["SUPPORTED_TYPES", "dequantize"]

QK_K = 256  # values per super-block of the k-quants
_CHUNK_BLOCKS = 1 << 14

_BLOCK_DTYPES: dict[GGMLType, np.dtype] = {
    GGMLType.Q4_0: np.dtype([("d", "<f2"), ("qs", "u1", 16)]),
    GGMLType.Q4_1: np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)]),
    GGMLType.Q5_0: np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)]),
    GGMLType.Q5_1: np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)]),
    GGMLType.Q8_0: np.dtype([("d", "<f2"), ("qs", "i1", 32)]),
    GGMLType.Q2_K: np.dtype([("scales", "u1", 16), ("qs", "u1", 64), ("d", "<f2"), ("dmin", "<f2")]),
    GGMLType.Q3_K: np.dtype([("hmask", "u1", 32), ("qs", "u1", 64), ("scales", "u1", 12), ("d", "<f2")]),
    GGMLType.Q4_K: np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)]),
    GGMLType.Q5_K: np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qh", "u1", 32), ("qs", "u1", 128)]),
    GGMLType.Q6_K: np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", "<f2")]),
}

_NIBBLE_SHIFTS = np.array([0, 4], dtype=np.uint8)
_CRUMB_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)
_BIT_SHIFTS = np.arange(8, dtype=np.uint8)
_BIT_SHIFTS_32 = np.arange(32, dtype=np.uint32)


def _scale(field: np.ndarray) -> np.ndarray:
    """A per-block fp16 scale as a float32 column that broadcasts over the block's values."""
    return field.astype(np.float32)[:, None]


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """Split bytes (n, k) into (n, 2, k): low nibbles first, then high nibbles (ggml's packing)."""
    return (qs[:, None, :] >> _NIBBLE_SHIFTS[None, :, None]) & np.uint8(0x0F)


def _q5_high_bits(qh: np.ndarray) -> np.ndarray:
    """The fifth bit of each of the 32 values of a Q5_0/Q5_1 block, shifted into place (0 or 16)."""
    return (((qh[:, None] >> _BIT_SHIFTS_32) & np.uint32(1)) << np.uint32(4)).astype(np.uint8)


def _q4_0(b: np.ndarray) -> np.ndarray:
    q = _nibbles(b["qs"]).reshape(len(b), 32).astype(np.int8) - np.int8(8)
    return _scale(b["d"]) * q.astype(np.float32)


def _q4_1(b: np.ndarray) -> np.ndarray:
    q = _nibbles(b["qs"]).reshape(len(b), 32).astype(np.float32)
    return _scale(b["d"]) * q + _scale(b["m"])


def _q5_0(b: np.ndarray) -> np.ndarray:
    q = (_nibbles(b["qs"]).reshape(len(b), 32) | _q5_high_bits(b["qh"])).astype(np.int8) - np.int8(16)
    return _scale(b["d"]) * q.astype(np.float32)


def _q5_1(b: np.ndarray) -> np.ndarray:
    q = (_nibbles(b["qs"]).reshape(len(b), 32) | _q5_high_bits(b["qh"])).astype(np.float32)
    return _scale(b["d"]) * q + _scale(b["m"])


def _q8_0(b: np.ndarray) -> np.ndarray:
    return b["qs"].astype(np.float32) * _scale(b["d"])


def _q2_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    scales = b["scales"]
    dl = (_scale(b["d"]) * (scales & np.uint8(0x0F)).astype(np.float32))[:, :, None]
    ml = (_scale(b["dmin"]) * (scales >> np.uint8(4)).astype(np.float32))[:, :, None]
    # qs holds two halves of 32 bytes; each byte carries one 2-bit value for 4 consecutive 32-runs.
    q = (b["qs"].reshape(n, 2, 1, 32) >> _CRUMB_SHIFTS[:, None]) & np.uint8(3)
    q = q.reshape(n, 16, 16).astype(np.float32)
    return (dl * q - ml).reshape(n, QK_K)


def _q3_k_scales(packed: np.ndarray) -> np.ndarray:
    """Unpack the 16 signed 6-bit sub-block scales of Q3_K: low nibbles in bytes 0-7, top 2 bits in 8-11."""
    n = len(packed)
    low = _nibbles(packed[:, :8]).reshape(n, 16)
    high = ((packed[:, None, 8:] >> _CRUMB_SHIFTS[:, None]) & np.uint8(3)).reshape(n, 16)
    return ((low | (high << np.uint8(4))).astype(np.int8) - np.int8(32)).astype(np.float32)


def _q3_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    dl = (_scale(b["d"]) * _q3_k_scales(b["scales"]))[:, :, None]
    low = ((b["qs"].reshape(n, 2, 1, 32) >> _CRUMB_SHIFTS[:, None]) & np.uint8(3)).reshape(n, 16, 16)
    # hmask bit i of byte l belongs to value 32*i + l; a CLEAR bit subtracts 4.
    high_clear = ((b["hmask"][:, None, :] >> _BIT_SHIFTS[:, None]) & np.uint8(1)) ^ np.uint8(1)
    q = low.astype(np.int8) - (high_clear.reshape(n, 16, 16) << np.uint8(2)).astype(np.int8)
    return (dl * q.astype(np.float32)).reshape(n, QK_K)


def _k_scale_min(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unpack Q4_K/Q5_K's 8 six-bit scales and 8 six-bit mins from 12 bytes (ggml's get_scale_min_k4)."""
    d, m, md = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = np.concatenate([d & np.uint8(0x3F), (md & np.uint8(0x0F)) | ((d >> np.uint8(2)) & np.uint8(0x30))], axis=1)
    mins = np.concatenate([m & np.uint8(0x3F), (md >> np.uint8(4)) | ((m >> np.uint8(2)) & np.uint8(0x30))], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_scales_and_offsets(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scales, mins = _k_scale_min(b["scales"])
    return (_scale(b["d"]) * scales)[:, :, None], (_scale(b["dmin"]) * mins)[:, :, None]


def _q4_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    d, m = _k_scales_and_offsets(b)
    q = _nibbles(b["qs"].reshape(n * 4, 32)).reshape(n, 8, 32).astype(np.float32)
    return (d * q - m).reshape(n, QK_K)


def _q5_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    d, m = _k_scales_and_offsets(b)
    low = _nibbles(b["qs"].reshape(n * 4, 32)).reshape(n, 8, 32)
    high = (b["qh"][:, None, :] >> _BIT_SHIFTS[:, None]) & np.uint8(1)
    q = (low | (high << np.uint8(4))).astype(np.float32)
    return (d * q - m).reshape(n, QK_K)


def _q6_k(b: np.ndarray) -> np.ndarray:
    n = len(b)
    d = (_scale(b["d"]) * b["scales"].astype(np.float32))[:, :, None]
    # Each 128-value half: ql's 64 bytes give low nibbles (values 0-63) then high nibbles (64-127);
    # qh's 32 bytes give 2 bits for each of the four 32-value runs.
    low = _nibbles(b["ql"].reshape(n * 2, 64)).reshape(n, 2, 4, 32)
    high = (b["qh"].reshape(n, 2, 1, 32) >> _CRUMB_SHIFTS[:, None]) & np.uint8(3)
    q = (low | (high << np.uint8(4))).astype(np.int8) - np.int8(32)
    return (d * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, QK_K)


_BLOCK_KERNELS: dict[GGMLType, Callable[[np.ndarray], np.ndarray]] = {
    GGMLType.Q4_0: _q4_0,
    GGMLType.Q4_1: _q4_1,
    GGMLType.Q5_0: _q5_0,
    GGMLType.Q5_1: _q5_1,
    GGMLType.Q8_0: _q8_0,
    GGMLType.Q2_K: _q2_k,
    GGMLType.Q3_K: _q3_k,
    GGMLType.Q4_K: _q4_k,
    GGMLType.Q5_K: _q5_k,
    GGMLType.Q6_K: _q6_k,
}

# Unquantized types: the stored element dtype, converted with a plain cast.
_CAST_TYPES: dict[GGMLType, str] = {
    GGMLType.F32: "<f4",
    GGMLType.F16: "<f2",
    GGMLType.F64: "<f8",
    GGMLType.I8: "<i1",
    GGMLType.I16: "<i2",
    GGMLType.I32: "<i4",
    GGMLType.I64: "<i8",
}

SUPPORTED_TYPES: frozenset[GGMLType] = frozenset({*_BLOCK_KERNELS, *_CAST_TYPES, GGMLType.BF16})


def _dequantize_blocks(data: np.ndarray, ggml_type: GGMLType) -> np.ndarray:
    blocks = data.view(_BLOCK_DTYPES[ggml_type])
    kernel = _BLOCK_KERNELS[ggml_type]
    out = np.empty((len(blocks), GGML_QUANT_SIZES[ggml_type][0]), dtype=np.float32)
    with np.errstate(all="ignore"):  # garbage scales give inf/nan, as in ggml; not worth a warning
        for start in range(0, len(blocks), _CHUNK_BLOCKS):
            out[start : start + _CHUNK_BLOCKS] = kernel(blocks[start : start + _CHUNK_BLOCKS])
    return out


def dequantize(raw: np.ndarray, type: GGMLType, shape: tuple[int, ...]) -> np.ndarray:
    """Convert the stored bytes of a tensor to a new float32 array of ``shape`` (numpy order).

    ``raw`` is the tensor's data in any dtype/shape whose bytes are the file's bytes (for example
    ``GGUFReader.raw(name)``). Raises ``GGUFError`` for a type llmcore cannot dequantize and
    ``ValueError`` when ``raw`` does not hold exactly the bytes ``shape`` needs.
    """
    ggml_type = GGMLType(type)
    if ggml_type not in SUPPORTED_TYPES:
        supported = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))
        raise GGUFError(
            "<array>", None, f"{ggml_type.name} data", f"cannot dequantize {ggml_type.name} (supported: {supported})"
        )
    shape = tuple(int(dim) for dim in shape)
    data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    expected = tensor_bytes(ggml_type, shape)
    if data.nbytes != expected:
        raise ValueError(f"{ggml_type.name} tensor of shape {shape} needs {expected} bytes, got {data.nbytes}")
    if ggml_type == GGMLType.BF16:
        values = (data.view("<u2").astype(np.uint32) << np.uint32(16)).view(np.float32)
    elif ggml_type in _CAST_TYPES:
        values = data.view(_CAST_TYPES[ggml_type]).astype(np.float32)
    else:
        values = _dequantize_blocks(data, ggml_type)
    return values.reshape(shape)
