"""The template's kernels: one numpy function per op, each computing what docs/plugins.md's op
reference specifies, with the same rounding as the reference backend where rounding matters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmcore.plugin_api import GGMLType, Node, Op

QK8_0 = 32  # values per q8_0 block


def run_op(node: Node, srcs: Sequence[np.ndarray]) -> np.ndarray:
    """The value of ``node`` given the values of its sources (weights already float32)."""
    match node.op:
        case Op.MUL_MAT:
            return mul_mat(srcs[0], node.srcs[0].dtype, srcs[1])
        case Op.ADD:
            return srcs[0] + srcs[1]  # the second operand broadcasts over the first's leading axes
        case Op.MUL:
            return srcs[0] * srcs[1]
        case Op.SCALE:
            return srcs[0] * np.float32(node.params["factor"])
        case Op.RMS_NORM:
            return rms_norm(srcs[0], node.params["eps"])
        case Op.SILU:
            return silu(srcs[0])
        case Op.GELU:
            return gelu(srcs[0])
        case Op.SWIGLU:
            return silu(srcs[0]) * srcs[1]
        case Op.GEGLU:
            return gelu(srcs[0]) * srcs[1]
        case Op.RESHAPE:
            return srcs[0].reshape(node.shape)
    raise AssertionError(f"template: {node} was not claimed by supports_op")


def mul_mat(w: np.ndarray, w_type: GGMLType, x: np.ndarray) -> np.ndarray:
    """``x @ w.T`` for a weight dequantized to float32, with ``x`` first rounded the way ggml
    rounds activations for a dot product with a weight of ``w_type``: q8_0 blocks for Q8_0, f16
    for F16, nothing for F32. Skipping this rounding stays within the kit's bound but drifts
    from llama.cpp's results."""
    if w_type == GGMLType.Q8_0:
        x = round_to_q8_0(x)
    elif w_type == GGMLType.F16:
        x = x.astype(np.float16).astype(np.float32)
    return x @ w.T


def round_to_q8_0(x: np.ndarray) -> np.ndarray:
    """``x`` as ggml's q8_0 quantization leaves it: per block of 32 along the last axis,
    q = round(x * 127 / max|x|) and d = f16(max|x| / 127), giving back q * d."""
    blocks = x.reshape(*x.shape[:-1], -1, QK8_0)
    amax = np.abs(blocks).max(axis=-1, keepdims=True)
    inverse = np.divide(np.float32(127), amax, out=np.zeros_like(amax), where=amax != 0)
    q = np.rint(blocks * inverse)
    d = (amax / np.float32(127)).astype(np.float16).astype(np.float32)
    return (q * d).reshape(x.shape)


def rms_norm(x: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) over the last axis; the mean accumulates in double, as ggml's."""
    mean = np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True).astype(np.float32)
    return x * (np.float32(1) / np.sqrt(mean + np.float32(eps)))


def silu(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: silu is then -0
        return x / (np.float32(1) + np.exp(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    """ggml's tanh approximation of GELU."""
    c = np.float32(0.7978845608028654)  # sqrt(2 / pi)
    return np.float32(0.5) * x * (np.float32(1) + np.tanh(c * x * (np.float32(1) + np.float32(0.044715) * x * x)))
