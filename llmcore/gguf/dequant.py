"""Dequantization of GGML tensor data to float32, vectorised with numpy.

Each block type is described by a numpy structured dtype that mirrors ggml's C struct (``block_q4_0``
and friends in ggml-common.h), and a kernel turns an array of such blocks into ``(n_blocks,
block_size)`` float32 values. Kernels perform the same float32 operations in the same order as
ggml's ``dequantize_row_*`` so the results are bit-exact (the ``gguf`` package's reference is the
test oracle; for types it lacks, ggml's C ``dequantize_row_*``). The i-quants look their values up
in ggml's codebooks (``iq_grids``). Large tensors are processed in chunks of blocks to keep the
temporaries cache-sized.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmcore.errors import GGUFError

from . import iq_grids
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
    GGMLType.IQ2_XXS: np.dtype([("d", "<f2"), ("qs", "u1", 64)]),
    GGMLType.IQ2_XS: np.dtype([("d", "<f2"), ("qs", "<u2", 32), ("scales", "u1", 8)]),
    GGMLType.IQ2_S: np.dtype([("d", "<f2"), ("qs", "u1", 32), ("signs", "u1", 32), ("qh", "u1", 8), ("scales", "u1", 8)]),
    GGMLType.IQ3_XXS: np.dtype([("d", "<f2"), ("qs", "u1", 64), ("scales_and_signs", "u1", 32)]),
    GGMLType.IQ3_S: np.dtype([("d", "<f2"), ("qs", "u1", 64), ("qh", "u1", 8), ("signs", "u1", 32), ("scales", "u1", 4)]),
    GGMLType.IQ1_S: np.dtype([("d", "<f2"), ("qs", "u1", 32), ("qh", "<u2", 8)]),
    GGMLType.IQ1_M: np.dtype([("qs", "u1", 32), ("qh", "u1", 16), ("scales", "<u2", 4)]),
    GGMLType.IQ4_NL: np.dtype([("d", "<f2"), ("qs", "u1", 16)]),
    GGMLType.IQ4_XS: np.dtype([("d", "<f2"), ("scales_h", "<u2"), ("scales_l", "u1", 4), ("qs", "u1", 128)]),
    GGMLType.TQ1_0: np.dtype([("qs", "u1", 48), ("qh", "u1", 4), ("d", "<f2")]),
    GGMLType.TQ2_0: np.dtype([("qs", "u1", 64), ("d", "<f2")]),
    GGMLType.MXFP4: np.dtype([("e", "u1"), ("qs", "u1", 16)]),
    GGMLType.NVFP4: np.dtype([("d", "u1", 4), ("qs", "u1", 32)]),
    GGMLType.Q1_0: np.dtype([("d", "<f2"), ("qs", "u1", 16)]),
    GGMLType.Q2_0: np.dtype([("d", "<f2"), ("qs", "u1", 16)]),
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


# -- i-quants: 8 (IQ2, IQ1) or 4 (IQ3) values per codebook entry, one byte each -------------------

def _grid(table: np.ndarray, dtype: str = "u1") -> np.ndarray:
    """A codebook of packed bytes (ggml's uint64/uint32 grids) as one row of values per entry."""
    packed = table.astype(f"<u{table.itemsize}")
    return packed.view(dtype).reshape(len(table), table.itemsize)


_IQ2XXS_GRID = _grid(iq_grids.IQ2XXS_GRID)
_IQ2XS_GRID = _grid(iq_grids.IQ2XS_GRID)
_IQ2S_GRID = _grid(iq_grids.IQ2S_GRID)
_IQ3XXS_GRID = _grid(iq_grids.IQ3XXS_GRID)
_IQ3S_GRID = _grid(iq_grids.IQ3S_GRID)
_IQ1S_GRID = _grid(iq_grids.IQ1S_GRID, "i1")
_KVALUES_IQ4NL = iq_grids.KVALUES_IQ4NL.astype(np.float32)
_KVALUES_FP4 = iq_grids.KVALUES_FP4.astype(np.float32)
_SIGN = np.array([1, -1], dtype=np.float32)
_IQ1_DELTA = np.array([0.125, -0.125], dtype=np.float32)  # IQ1S_DELTA, negated by its flag bit
_SEVEN_BIT_SHIFTS = np.array([0, 7, 14, 21], dtype=np.uint32)
_HALF = np.float32(0.5)


def _nibble_pairs(packed: np.ndarray) -> np.ndarray:
    """Bytes (..., k) as (..., k, 2): each byte's low nibble, then its high nibble."""
    return (packed[..., None] >> _NIBBLE_SHIFTS) & np.uint8(0x0F)


def _bits(packed: np.ndarray) -> np.ndarray:
    """Bytes (..., k) as their bits (..., k, 8), least significant first."""
    return (packed[..., None] >> _BIT_SHIFTS) & np.uint8(1)


def _signed(values: np.ndarray, sign_bytes: np.ndarray) -> np.ndarray:
    """``values`` (..., 8) times -1 where the matching bit of ``sign_bytes`` (...) is set."""
    return values * _SIGN[_bits(sign_bytes)]


def _iq2_scale(d: np.ndarray, nibble: np.ndarray, factor: float) -> np.ndarray:
    """ggml's i-quant sub-block scale d * (0.5f + s) * factor, in its order."""
    return d * (_HALF + nibble.astype(np.float32)) * np.float32(factor)


def _iq2_xxs(b: np.ndarray) -> np.ndarray:
    n = len(b)
    q = b["qs"].reshape(n, 8, 8)  # per 32 values: 4 grid indices, then a uint32 of signs and scale
    aux = np.ascontiguousarray(q[:, :, 4:]).view("<u4")  # (n, 8, 1)
    db = _iq2_scale(_scale(b["d"])[:, :, None], aux >> np.uint32(28), 0.25)[..., None]
    signs = iq_grids.KSIGNS_IQ2XS[(aux >> _SEVEN_BIT_SHIFTS) & np.uint32(127)]
    return _signed(db * _IQ2XXS_GRID[q[:, :, :4]].astype(np.float32), signs).reshape(n, QK_K)


def _iq2_xs(b: np.ndarray) -> np.ndarray:
    n = len(b)
    qs = b["qs"].reshape(n, 8, 4)  # 9-bit grid index, 7-bit sign index
    scales = np.repeat(_nibble_pairs(b["scales"]), 2, axis=2)  # 2 scales per 32 values, one per 16
    db = _iq2_scale(_scale(b["d"])[:, :, None], scales, 0.25)[..., None]
    grid = _IQ2XS_GRID[qs & np.uint16(511)].astype(np.float32)
    return _signed(db * grid, iq_grids.KSIGNS_IQ2XS[qs >> np.uint16(9)]).reshape(n, QK_K)


def _iq2_s(b: np.ndarray) -> np.ndarray:
    n = len(b)
    high = (b["qh"][:, :, None] >> _CRUMB_SHIFTS) & np.uint8(3)  # 2 high index bits per 8 values
    index = b["qs"].reshape(n, 8, 4) | (high.astype(np.uint16) << np.uint16(8))
    scales = np.repeat(_nibble_pairs(b["scales"]), 2, axis=2)
    db = _iq2_scale(_scale(b["d"])[:, :, None], scales, 0.25)[..., None]
    grid = _IQ2S_GRID[index].astype(np.float32)
    return _signed(db * grid, b["signs"].reshape(n, 8, 4)).reshape(n, QK_K)


def _iq3_xxs(b: np.ndarray) -> np.ndarray:
    n = len(b)
    aux = np.ascontiguousarray(b["scales_and_signs"]).view("<u4")[:, :, None]  # (n, 8, 1)
    db = _iq2_scale(_scale(b["d"])[:, :, None], aux >> np.uint32(28), 0.5)[..., None]
    signs = iq_grids.KSIGNS_IQ2XS[(aux >> _SEVEN_BIT_SHIFTS) & np.uint32(127)]
    grid = _IQ3XXS_GRID[b["qs"]].reshape(n, 8, 4, 8).astype(np.float32)
    return _signed(db * grid, signs).reshape(n, QK_K)


def _iq3_s(b: np.ndarray) -> np.ndarray:
    n = len(b)
    index = b["qs"].reshape(n, 8, 8) | (_bits(b["qh"]).astype(np.uint16) << np.uint16(8))
    scales = _nibble_pairs(b["scales"]).reshape(n, 8)
    db = (_scale(b["d"]) * (1 + 2 * scales.astype(np.int32)).astype(np.float32))[:, :, None]
    grid = _IQ3S_GRID[index].reshape(n, 8, 32).astype(np.float32)
    signs = _SIGN[_bits(b["signs"])].reshape(n, 8, 32)
    return (db * grid * signs).reshape(n, QK_K)


def _iq1_values(dl: np.ndarray, index: np.ndarray, negative_delta: np.ndarray) -> np.ndarray:
    """dl * (grid value + delta) for IQ1_S/IQ1_M: ``index`` (n, 8, 4) grid entries of 8 values."""
    grid = _IQ1S_GRID[index].astype(np.float32)
    return dl[..., None] * (grid + _IQ1_DELTA[negative_delta][..., None])


def _iq1_s(b: np.ndarray) -> np.ndarray:
    n = len(b)
    qh = b["qh"][:, :, None]  # per 32 values: 4 x 3 high index bits, a 3-bit scale, the delta's sign
    high = (qh >> np.array([0, 3, 6, 9], np.uint16)) & np.uint16(7)
    index = b["qs"].reshape(n, 8, 4) | (high << np.uint16(8))
    dl = _scale(b["d"])[:, :, None] * (2 * ((qh >> np.uint16(12)) & np.uint16(7)).astype(np.int32) + 1).astype(np.float32)
    negative = np.broadcast_to(qh >> np.uint16(15), index.shape)
    return _iq1_values(np.broadcast_to(dl, index.shape), index, negative).reshape(n, QK_K)


_IQ1M_SCALE_SHIFTS = np.array([[0, 3], [6, 9]], dtype=np.uint16)  # even, odd 32-value group


def _iq1_m(b: np.ndarray) -> np.ndarray:
    n = len(b)
    sc = b["scales"]  # 4 x uint16: 3-bit group scales, and the f16 super-block scale in their top nibbles
    d_bits = ((sc[:, 0] >> 12) | ((sc[:, 1] >> 8) & 0x00F0) | ((sc[:, 2] >> 4) & 0x0F00) | (sc[:, 3] & 0xF000))
    d = d_bits.astype(np.uint16).view(np.float16).astype(np.float32)[:, None, None]
    group = (sc[:, :, None, None] >> _IQ1M_SCALE_SHIFTS) & np.uint16(7)  # (n, 4 words, 2 groups, 2 halves)
    dl = d * (2 * group.reshape(n, 8, 2).astype(np.int32) + 1).astype(np.float32)
    dl = np.repeat(dl, 2, axis=2)  # one scale per 16 values
    qh = b["qh"].reshape(n, 8, 2)[..., None] >> np.array([0, 4], np.uint8)  # a nibble per 8 values
    index = b["qs"].reshape(n, 8, 4) | ((qh & np.uint8(7)).reshape(n, 8, 4).astype(np.uint16) << np.uint16(8))
    negative = ((qh >> np.uint8(3)) & np.uint8(1)).reshape(n, 8, 4)
    return _iq1_values(dl, index, negative).reshape(n, QK_K)


def _iq4_nl(b: np.ndarray) -> np.ndarray:
    return _scale(b["d"]) * _KVALUES_IQ4NL[_nibbles(b["qs"]).reshape(len(b), 32)]


def _iq4_xs(b: np.ndarray) -> np.ndarray:
    n = len(b)
    low = _nibble_pairs(b["scales_l"]).reshape(n, 8)
    high = ((b["scales_h"][:, None] >> (2 * np.arange(8, dtype=np.uint16))) & np.uint16(3)).astype(np.uint8)
    dl = (_scale(b["d"]) * ((low | (high << np.uint8(4))).astype(np.int32) - 32).astype(np.float32))[:, :, None]
    q = _nibbles(b["qs"].reshape(n * 8, 16)).reshape(n, 8, 32)
    return (dl * _KVALUES_IQ4NL[q]).reshape(n, QK_K)


# -- ternary, FP4 and 1/2-bit types -----------------------------------------------------------------

_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint16)


def _trits(packed: np.ndarray, digits: int) -> np.ndarray:
    """TQ1_0's base-3 digits (..., k) -> (..., digits, k) in 0..2: byte * 3^n kept to 8 bits, times 3, >> 8."""
    shifted = (packed[..., None, :].astype(np.uint16) * _POW3[:digits, None]) & np.uint16(0xFF)
    return ((shifted * np.uint16(3)) >> np.uint16(8)).astype(np.int16)


def _tq1_0(b: np.ndarray) -> np.ndarray:
    n = len(b)
    qs = b["qs"]
    q = np.concatenate([_trits(qs[:, :32], 5).reshape(n, 160), _trits(qs[:, 32:], 5).reshape(n, 80),
                        _trits(b["qh"], 4).reshape(n, 16)], axis=1)
    return (q - 1).astype(np.float32) * _scale(b["d"])


def _tq2_0(b: np.ndarray) -> np.ndarray:
    n = len(b)
    q = (b["qs"].reshape(n, 2, 1, 32) >> _CRUMB_SHIFTS[:, None]) & np.uint8(3)
    return (q.reshape(n, QK_K).astype(np.int8) - np.int8(1)).astype(np.float32) * _scale(b["d"])


def _e8m0_half(e: np.ndarray) -> np.ndarray:
    """ggml_e8m0_to_fp32_half: 2^(e - 128) as float32 bits (subnormal patterns for e < 2)."""
    e32 = e.astype(np.uint32)
    bits = np.where(e32 < 2, np.uint32(0x00200000) << e32, (e32 - np.uint32(1)) << np.uint32(23))
    return bits.astype(np.uint32).view(np.float32)


def _ue4m3_table() -> np.ndarray:
    """ggml_ue4m3_to_fp32 for every byte: unsigned E4M3 (bias 7, the top bit ignored) times 0.5, 0 and 0x7F as 0."""
    x = np.arange(256)
    exp, man = (x >> 3) & 0xF, x & 7
    raw = np.where(exp == 0, np.ldexp(man.astype(np.float64), -9), np.ldexp(1.0 + man / 8.0, exp - 7))
    raw[(x == 0) | (x == 0x7F)] = 0.0
    return (raw * 0.5).astype(np.float32)  # every value is exact in float32


_UE4M3_HALF = _ue4m3_table()


def _mxfp4(b: np.ndarray) -> np.ndarray:
    return _KVALUES_FP4[_nibbles(b["qs"]).reshape(len(b), 32)] * _e8m0_half(b["e"])[:, None]


def _nvfp4(b: np.ndarray) -> np.ndarray:
    n = len(b)
    q = _nibbles(b["qs"].reshape(n * 4, 8)).reshape(n, 4, 16)  # 4 sub-blocks of 16, one scale each
    return (_KVALUES_FP4[q] * _UE4M3_HALF[b["d"]][:, :, None]).reshape(n, 64)


def _q1_0(b: np.ndarray) -> np.ndarray:
    d = _scale(b["d"])
    return np.where(_bits(b["qs"]).reshape(len(b), 128) != 0, d, -d)


def _q2_0(b: np.ndarray) -> np.ndarray:
    q = (b["qs"][:, :, None] >> _CRUMB_SHIFTS) & np.uint8(3)  # 4 consecutive values per byte
    return (q.reshape(len(b), 64).astype(np.int8) - np.int8(1)).astype(np.float32) * _scale(b["d"])


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
    GGMLType.IQ2_XXS: _iq2_xxs,
    GGMLType.IQ2_XS: _iq2_xs,
    GGMLType.IQ2_S: _iq2_s,
    GGMLType.IQ3_XXS: _iq3_xxs,
    GGMLType.IQ3_S: _iq3_s,
    GGMLType.IQ1_S: _iq1_s,
    GGMLType.IQ1_M: _iq1_m,
    GGMLType.IQ4_NL: _iq4_nl,
    GGMLType.IQ4_XS: _iq4_xs,
    GGMLType.TQ1_0: _tq1_0,
    GGMLType.TQ2_0: _tq2_0,
    GGMLType.MXFP4: _mxfp4,
    GGMLType.NVFP4: _nvfp4,
    GGMLType.Q1_0: _q1_0,
    GGMLType.Q2_0: _q2_0,
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
