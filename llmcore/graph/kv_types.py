"""The KV cache's element types, named as llama.cpp's ``-ctk/--cache-type-k`` and ``-ctv`` name
them, and how a cache row of each is stored: f32, f16 and bf16 element by element, the block types
in ggml's block layout (``row_bytes`` bytes per cell, blocks of 32 values).

Writing a row into a cache rounds it as ggml's CPU backend does when it stores keys and values
(``ggml_set_rows`` through the type's ``from_float``): f16 and bf16 round to nearest even, Q8_0 is
the x86 ``quantize_row_q8_0`` (scale 127 / max|x|, rounded to nearest even), and Q4_0, Q4_1, Q5_0,
Q5_1 and IQ4_NL are ggml-quants.c's ``quantize_row_*_ref``, float operation for float operation.
Reading a row back is ggml's ``to_float`` (:func:`llmcore.gguf.dequantize`).

A quantized cache holds its keys (values) rotated by an orthonormal Walsh-Hadamard matrix, as
llama.cpp does since its "attention rotation": queries and keys are rotated alike (their dot
products do not change, the keys' outliers are spread before quantization), values are rotated
before the cache and the attention output rotated back (:func:`rotation_k`, :func:`rotation_v`,
:func:`hadamard`; ``LLAMA_ATTN_ROT_DISABLE=1`` turns it off, as in llama.cpp).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from llmcore.errors import LLMCoreError
from llmcore.gguf import GGML_QUANT_SIZES, GGMLType, dequantize
from llmcore.gguf.iq_grids import KVALUES_IQ4NL

#: llama.cpp's ``kv_cache_types`` (common/arg.cpp), in its order
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
F32, F16, BF16 = "f32", "f16", "bf16"

_GGML_TYPES = {name: GGMLType[name.upper()] for name in KV_CACHE_TYPES}
QK = 32  # values per block of every block type here

#: ``flash_attn`` when ``LLM`` is given none: llama-cpp-python's default
DEFAULT_FLASH_ATTN = "off"
#: ``-fa`` when the command line (run, serve, bench ...) gives none: llama.cpp's tools' default
DEFAULT_FLASH_ATTN_CLI = "auto"

#: ``-fa``'s values (llama.cpp's is_truthy, is_falsey and is_autoy)
_FLASH_ATTN_VALUES = {
    **dict.fromkeys(("on", "enabled", "true", "1"), "on"),
    **dict.fromkeys(("off", "disabled", "false", "0"), "off"),
    **dict.fromkeys(("auto", "-1"), "auto"),
}


@dataclass(frozen=True)
class CacheConfig:
    """The element types of the K and V caches and whether attention runs as flash attention
    (``-fa on``: ggml's ``flash_attn_ext``) or as two matrix products around a softmax."""

    type_k: str = F16
    type_v: str = F16
    flash_attn: bool = False

    def describe(self) -> str:
        return f"K {self.type_k}, V {self.type_v}, flash attention {'on' if self.flash_attn else 'off'}"

    def rotation_k(self, head_dim: int) -> int:
        """The order of the Hadamard rotation of queries and keys (0: none): llama.cpp rotates a
        quantized K cache whose head size is a multiple of 64, by the largest power of two (64 or
        more) dividing the head size."""
        if not is_quantized(self.type_k) or head_dim % 64 or _rotation_disabled():
            return 0
        n = 64
        while head_dim % (2 * n) == 0:
            n *= 2
        return n

    def rotation_v(self, head_dim: int) -> int:
        """The order of the Hadamard rotation of values (0: none): 64 for a quantized V cache whose
        head size is a multiple of 64, as llama.cpp (a smaller matrix serves V better, it notes)."""
        return 64 if is_quantized(self.type_v) and head_dim % 64 == 0 and not _rotation_disabled() else 0


def _rotation_disabled() -> bool:
    try:
        return int(os.environ.get("LLAMA_ATTN_ROT_DISABLE", "0") or 0) != 0
    except ValueError:
        return False


def hadamard(x: np.ndarray, n: int) -> np.ndarray:
    """x (float32, its size a multiple of ``n``, a power of two) rotated by the orthonormal
    Walsh-Hadamard matrix of order ``n`` in consecutive chunks of ``n``, as ggml's CPU fast
    transform computes it: each value times 1/sqrtf(n), then log2(n) butterfly passes (u + v, u - v)."""
    y = np.asarray(x, np.float32).reshape(-1, n) * (np.float32(1) / np.sqrt(np.float32(n)))
    span = 1
    while span < n:
        pairs = y.reshape(len(y), n // (2 * span), 2, span)
        y = np.stack([pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]], axis=2).reshape(len(y), n)
        span *= 2
    return y.reshape(np.shape(x))


def check_cache_type(name: str, flag: str = "-ctk/--cache-type-k") -> str:
    """``name`` if llama.cpp's KV cache accepts it, else a one-line error listing the types that it does."""
    if name not in _GGML_TYPES:
        raise LLMCoreError(f"{flag}: unsupported cache type {name!r} (allowed: {', '.join(KV_CACHE_TYPES)})")
    return name


def parse_flash_attn(value: str | bool | None) -> str:
    """``-fa``'s value as "on", "off" or "auto" (also True/False/None, as ``LLM(flash_attn=)`` takes it)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    parsed = _FLASH_ATTN_VALUES.get(str(value))
    if parsed is None:
        raise LLMCoreError(f"-fa/--flash-attn: unknown value {value!r} (use on, off or auto)")
    return parsed


def ggml_type(name: str) -> GGMLType:
    return _GGML_TYPES[name]


def is_quantized(name: str) -> bool:
    """ggml_is_quantized: the block types (f32, f16 and bf16 are not)."""
    return name not in (F32, F16, BF16)


def row_bytes(name: str, width: int) -> int:
    """Bytes one cache cell of ``width`` values takes."""
    block, size = GGML_QUANT_SIZES[_GGML_TYPES[name]]
    return width // block * size


def nbytes(name: str, shape: tuple[int, int]) -> int:
    """Bytes of a cache of ``shape`` (cells, width)."""
    return shape[0] * row_bytes(name, shape[1])


def storage(name: str, shape: tuple[int, int]) -> tuple[np.dtype, tuple[int, int]]:
    """The numpy dtype and shape a backend's host copy of a cache of ``shape`` (cells, width) has:
    float32 or float16 values, bf16 bit patterns as uint16, block types as rows of bytes."""
    if name == F32:
        return np.dtype(np.float32), shape
    if name == F16:
        return np.dtype(np.float16), shape
    if name == BF16:
        return np.dtype(np.uint16), shape
    return np.dtype(np.uint8), (shape[0], row_bytes(name, shape[1]))


def load_rows(name: str, rows: np.ndarray, width: int) -> np.ndarray:
    """float32 [n, width] from ``rows`` of a cache (its storage layout), as ggml's to_float."""
    if name in (F32, F16):
        return rows.astype(np.float32)
    return dequantize(np.ascontiguousarray(rows), _GGML_TYPES[name], (len(rows), width))


def store_rows(name: str, x: np.ndarray) -> np.ndarray:
    """float32 [n, width] rounded into cache rows of type ``name`` (see the module's docstring)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if name == F32:
        return x
    if name == F16:
        return x.astype(np.float16)
    if name == BF16:
        return round_bf16_bits(x)
    blocks = x.reshape(len(x), -1, QK)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        packed = _QUANTIZERS[name](blocks)
    return packed.reshape(len(x), -1)


def round_bf16_bits(x: np.ndarray) -> np.ndarray:
    """ggml's fp32 -> bf16 (round to nearest even; a NaN stays a quiet NaN) as uint16 bit patterns."""
    bits = x.astype(np.float32).view(np.uint32)
    rounded = ((bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16))
    nan = ((bits >> np.uint32(16)) | np.uint32(64)).astype(np.uint16)
    return np.where((bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000), nan, rounded.astype(np.uint16))


# -- ggml's block quantizers (blocks: float32 [rows, blocks, 32] -> uint8 [rows, blocks, block bytes]) ---------


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16)[..., None].view(np.uint8)


def _signed_max(blocks: np.ndarray) -> np.ndarray:
    """The value of largest magnitude in each block, the first one on a tie (ggml's ``amax < fabsf(v)``)."""
    return np.take_along_axis(blocks, np.abs(blocks).argmax(axis=-1)[..., None], axis=-1)[..., 0]


def _inverse(d: np.ndarray) -> np.ndarray:
    """``d ? 1.0f/d : 0.0f``."""
    return np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)), np.float32(0)).astype(np.float32)


def _truncate(x: np.ndarray) -> np.ndarray:
    """C's (int8_t) cast of a float: toward zero."""
    return np.trunc(x).astype(np.int32)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """Values 0..15 of each 32-value block as ggml packs them: byte j holds value j and value j + 16."""
    return (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)


def _high_bits(q: np.ndarray) -> np.ndarray:
    """The fifth bit of each of a block's 32 values as Q5's ``qh`` (bit j of a little-endian uint32)."""
    bits = ((q >> 4) & 1).astype(np.uint32) << np.arange(QK, dtype=np.uint32)
    return bits.sum(axis=-1, dtype=np.uint32)[..., None].view(np.uint8)


def _q8_0(blocks: np.ndarray) -> np.ndarray:
    amax = np.abs(blocks).max(axis=-1)
    d = amax / np.float32(127)
    inv = np.where(amax != 0, np.float32(127) / np.where(amax != 0, amax, np.float32(1)), np.float32(0))
    q = np.rint(blocks * inv[..., None].astype(np.float32)).astype(np.int8)
    return np.concatenate([_f16_bytes(d), q.view(np.uint8)], axis=-1)


def _q4_0(blocks: np.ndarray) -> np.ndarray:
    d = _signed_max(blocks) / np.float32(-8)
    q = np.minimum(15, _truncate(blocks * _inverse(d)[..., None] + np.float32(8.5)))
    return np.concatenate([_f16_bytes(d), _pack_nibbles(q)], axis=-1)


def _q5_0(blocks: np.ndarray) -> np.ndarray:
    d = _signed_max(blocks) / np.float32(-16)
    q = np.minimum(31, _truncate(blocks * _inverse(d)[..., None] + np.float32(16.5)))
    return np.concatenate([_f16_bytes(d), _high_bits(q), _pack_nibbles(q & 15)], axis=-1)


def _min_and_scale(blocks: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, high = blocks.min(axis=-1), blocks.max(axis=-1)
    d = (high - low) / np.float32(levels)
    return low, d, (blocks - low[..., None]) * _inverse(d)[..., None]


def _q4_1(blocks: np.ndarray) -> np.ndarray:
    low, d, scaled = _min_and_scale(blocks, 15)
    q = np.minimum(15, _truncate(scaled + np.float32(0.5)))
    return np.concatenate([_f16_bytes(d), _f16_bytes(low), _pack_nibbles(q)], axis=-1)


def _q5_1(blocks: np.ndarray) -> np.ndarray:
    low, d, scaled = _min_and_scale(blocks, 31)
    q = _truncate(scaled + np.float32(0.5)) & 0xFF  # (uint8_t), no clamp in ggml's
    return np.concatenate([_f16_bytes(d), _f16_bytes(low), _high_bits(q), _pack_nibbles(q & 15)], axis=-1)


_IQ4NL_VALUES = KVALUES_IQ4NL.astype(np.float32)


def _nearest_iq4nl(x: np.ndarray) -> np.ndarray:
    """best_index_int8(16, kvalues_iq4nl, x): the index of the nearest codebook value, the upper one
    on a tie, by ggml's float comparisons."""
    values = _IQ4NL_VALUES
    upper = np.clip(np.searchsorted(values, x, side="right"), 1, len(values) - 1)
    pick = np.where(x - values[upper - 1] < values[upper] - x, upper - 1, upper)
    return np.where(x <= values[0], 0, np.where(x >= values[-1], len(values) - 1, pick))


def _iq4_nl(blocks: np.ndarray) -> np.ndarray:
    """quantize_row_iq4_nl_ref: scale -max/127 picks each value's codebook entry, then the scale is
    the weighted least-squares one (weights x^2), sums in float in ggml's order."""
    peak = _signed_max(blocks)
    amax = np.abs(peak)
    d = peak / _IQ4NL_VALUES[0]
    index = _nearest_iq4nl(blocks * (np.float32(1) / d)[..., None])
    q = _IQ4NL_VALUES[index]
    sumqx = np.zeros(blocks.shape[:-1], np.float32)
    sumq2 = np.zeros(blocks.shape[:-1], np.float32)
    for j in range(QK):  # in order, as ggml's loop adds them
        x, qj = blocks[..., j], q[..., j]
        wq = (x * x) * qj
        sumqx = sumqx + wq * x
        sumq2 = sumq2 + wq * qj
    scale = np.where(sumq2 > 0, sumqx / np.where(sumq2 > 0, sumq2, np.float32(1)), np.float32(0))
    small = amax < np.float32(1e-15)  # ggml leaves such a block's scale 0 (and its indices unset: 0 here)
    scale = np.where(small, np.float32(0), scale).astype(np.float32)
    index = np.where(small[..., None], 0, index)
    return np.concatenate([_f16_bytes(scale), _pack_nibbles(index)], axis=-1)


_QUANTIZERS = {"q8_0": _q8_0, "q4_0": _q4_0, "q4_1": _q4_1, "q5_0": _q5_0, "q5_1": _q5_1, "iq4_nl": _iq4_nl}
