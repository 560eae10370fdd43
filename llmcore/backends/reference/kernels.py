"""The reference kernels: plain numpy, one function per op, written to be read and trusted.

They reproduce llama.cpp's CPU numerics where those matter for parity: activations are rounded
the way ggml rounds them before a dot product with a weight of each type (8-bit blocks for
quantized weights, f16 for f16 weights), queries and attention probabilities are rounded to f16
before meeting the f16 KV cache, and norms accumulate in double.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from llmcore.plugin_api import GGMLType, dequantize

QK8 = 32  # block size of ggml's q8_0 / q8_1 activations
QK_K = 256  # super-block size of the K-quants and of q8_K

_Q8_1_WEIGHTS = {GGMLType.Q4_1, GGMLType.Q5_1}
LEGACY_QUANTS = {GGMLType.Q4_0, GGMLType.Q5_0, GGMLType.Q8_0} | _Q8_1_WEIGHTS
_Q8_K_WEIGHTS = {
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
    GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S,
    GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.IQ4_XS, GGMLType.TQ1_0, GGMLType.TQ2_0,
}
# weights whose vec_dot_type is q8_0 but which the reference takes dequantized (not as BlockQuants)
_Q8_0_WEIGHTS = {GGMLType.IQ4_NL, GGMLType.MXFP4, GGMLType.NVFP4, GGMLType.Q1_0, GGMLType.Q2_0}


LANES = 8  # ggml's AVX2 dot products keep 8 float accumulators, each over 4 adjacent values


@dataclass(frozen=True)
class BlockQuants:
    """A legacy-quant weight (32 values per block, one scale) split the way ggml's dot product
    sees it: integer quants ``q`` as float32 [blocks * 8 lanes, 4, rows], scales ``d`` and, for
    Q4_1/Q5_1, minimums ``m`` as float32 [rows, blocks]."""

    q: np.ndarray
    d: np.ndarray
    m: np.ndarray | None

    @classmethod
    def from_raw(cls, raw: np.ndarray, w_type: GGMLType, shape: tuple[int, ...]) -> BlockQuants:
        rows, cols = shape
        block_bytes = raw.shape[-1] * QK8 // cols
        blocks = np.ascontiguousarray(raw).reshape(rows, -1, block_bytes)
        d = blocks[:, :, 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        m = blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float32) if w_type in _Q8_1_WEIGHTS else None
        # decoding with unit scale and zero minimum yields the integer quants (offsets included)
        unit = blocks.copy()
        unit[:, :, 0:2] = np.array([1.0], np.float16).view(np.uint8)
        if m is not None:
            unit[:, :, 2:4] = 0
        q = dequantize(unit.reshape(rows, -1), w_type, shape).reshape(rows, -1, 4)
        return cls(np.ascontiguousarray(q.transpose(1, 2, 0)), d, m)


def mul_mat(w: np.ndarray | BlockQuants, w_type: GGMLType, x: np.ndarray) -> np.ndarray:
    """``x @ w.T`` as ggml computes it.

    ggml rounds ``x`` to the weight type's vec_dot_type first (type_traits_cpu in ggml-cpu.c):
    q8_0 / q8_1 blocks of 32 for the legacy quants, IQ4_NL, MXFP4, NVFP4, Q1_0 and Q2_0, q8_K
    blocks of 256 for the K-quants, the other i-quants and the ternary types, f16 or bf16 for those
    weights. Legacy quants then take, per block, the exact integer dot product of the quants scaled
    by both block scales (plus, for Q4_1/Q5_1, the weight minimum times the activation block's f16
    sum ``s``), so ``w`` is given as :class:`BlockQuants`; other types are given dequantized to
    float32 and summed by BLAS (the rounding of ``x`` is ggml's, the order of the sum is not).
    """
    if isinstance(w, BlockQuants):
        return _mul_mat_blocks(w, x)
    if w_type in _Q8_K_WEIGHTS:
        return _round_q8_k(x) @ w.T
    if w_type in _Q8_0_WEIGHTS:
        q, d, _ = _quantize_q8(x)
        return (q * d[..., None]).reshape(x.shape) @ w.T
    if w_type == GGMLType.F16:
        return x.astype(np.float16).astype(np.float32) @ w.T
    if w_type == GGMLType.BF16:
        return _round_bf16(x) @ w.T
    return x @ w.T


def _mul_mat_blocks(w: BlockQuants, x: np.ndarray) -> np.ndarray:
    """ggml's AVX2 legacy-quant dot product, operation for operation: per block, 8 lanes of exact
    integer sums over 4 adjacent values, scaled by f32(d_w * d_x) and fused-multiply-added into 8
    float accumulators; the lanes are then summed in ggml's order, plus the minimum terms."""
    xq, xd, xs = _quantize_q8(x)  # [n, blocks, 32], [n, blocks], [n, blocks]
    n, n_blocks = xd.shape
    rows = w.q.shape[2]
    xq_lanes = np.ascontiguousarray(xq.reshape(n, n_blocks * LANES, 4).transpose(1, 0, 2))
    out = np.empty((n, rows), np.float32)
    step = max(1, (1 << 22) // (n_blocks * LANES * n))  # bounds the temporaries
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        sumi = np.matmul(xq_lanes, w.q[:, :, r0:r1]).reshape(n_blocks, LANES, n, r1 - r0)  # exact integers
        # every block's f32(d_w * d_x) at once, in double, where its products with the integer sums
        # (and the minimums' with s) are exact; the loop then only fuses block after block, each
        # sum rounded once to float32 as _fma does
        scales = (w.d[r0:r1].T[:, None, :] * xd.T[:, :, None]).astype(np.float64, order="C")
        acc = np.zeros((LANES, n, r1 - r0), np.float32)
        fused = np.empty(acc.shape, np.float64)
        for b in range(n_blocks):
            np.multiply(scales[b], sumi[b], out=fused)
            fused += acc
            acc[...] = fused
        summs = np.zeros((n, r1 - r0), np.float32)
        if w.m is not None:
            mins = np.multiply(w.m[r0:r1].T[:, None, :], xs.T[:, :, None], dtype=np.float64, order="C")
            for b in range(n_blocks):
                summs[...] = mins[b] + summs
        halves = acc[:4] + acc[4:]
        out[:, r0:r1] = ((halves[0] + halves[2]) + (halves[1] + halves[3])) + summs
    return out


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c rounded once to float32 (the products of float32 values are exact in float64)."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


def _quantize_q8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ggml's SIMD q8_0/q8_1 quantization of rows of ``x``: per 32 values q = rint(x * 127 / max|x|),
    d = f16(max|x| / 127), and q8_1's s = f16(d * sum(q)). Returns (q, d, s) as float32."""
    blocks = x.reshape(x.shape[0], -1, QK8)
    amax = np.abs(blocks).max(axis=-1)
    inv = np.divide(np.float32(127), amax, out=np.zeros_like(amax), where=amax != 0)
    q = np.rint(blocks * inv[..., None])
    d = amax / np.float32(127)
    s = (d * q.sum(axis=-1)).astype(np.float16).astype(np.float32)
    return q, d.astype(np.float16).astype(np.float32), s


def _round_q8_k(x: np.ndarray) -> np.ndarray:
    """q8_K: per 256 values, scale by -127 / (the value of largest magnitude), d kept in f32."""
    blocks = x.reshape(-1, QK_K)
    peak = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=1)[:, None], axis=1)
    iscale = np.divide(np.float32(-127), peak, out=np.zeros_like(peak), where=peak != 0)
    q = np.minimum(np.rint(blocks * iscale), 127)
    d = np.divide(np.float32(1), iscale, out=np.zeros_like(iscale), where=iscale != 0)
    return (q * d).reshape(x.shape)


def _round_bf16(x: np.ndarray) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def rms_norm(x: np.ndarray, eps: float) -> np.ndarray:
    mean = np.mean(np.square(x).astype(np.float64), axis=-1, keepdims=True)
    return x * (np.float32(1) / np.sqrt(mean.astype(np.float32) + np.float32(eps)))


def norm(x: np.ndarray, eps: float) -> np.ndarray:
    """ggml_norm's AVX-512 build: the mean of the sum rounded to float; the squares added in double
    16 at a time, each 16 summed in float as _mm512_reduce_add_ps (ggml_vec_cvar_f32), the rest one by one."""
    n = x.shape[-1]
    total = np.cumsum(x.astype(np.float64), axis=-1)[..., -1:]
    centered = x - total.astype(np.float32) / np.float32(n)
    squares = np.square(centered)
    whole = n - n % 16
    var = _grouped_sum(squares[..., :whole]) if whole else np.zeros(x.shape[:-1], np.float64)
    for i in range(whole, n):
        var = var + squares[..., i]
    var = var[..., None]
    return centered * (np.float32(1) / np.sqrt((var / n).astype(np.float32) + np.float32(eps)))


_EXPF_CONSTANTS = [np.float32(float.fromhex(h)) for h in (
    "0x1.8p23", "0x1.715476p+0", "0x1.7f7d1cp-20", "0x1.62e4p-1",  # rounding shift, log2(e), ln(2) split
    "0x1.0e4020p-7", "0x1.573e2ep-5", "0x1.555e66p-3", "0x1.fffdb6p-2", "0x1.ffffecp-1",  # polynomial
)]


def expf(x: np.ndarray) -> np.ndarray:
    """ggml's vectorised expf (ggml_v_expf): a range reduction and a degree-5 polynomial, whose
    last-bit rounding the softmax and SiLU of llama.cpp carry; each step rounds as the FMAs do."""
    shift, log2e, ln2_lo, ln2_hi, c5, c4, c3, c2, c1 = _EXPF_CONSTANTS
    x = x.astype(np.float32)
    n = _fma(x, log2e, shift) - shift
    b = _fma(-n, ln2_lo, _fma(-n, ln2_hi, x))
    u = b * b
    j = _fma(_fma(_fma(c5, b, c4), u, _fma(c3, b, c2)), u, _fma(c1, b, np.float32(1)))
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ldexp(j, n.astype(np.int32)).astype(np.float32)
    return np.where(np.abs(n) > 192, np.where(n <= 0, np.float32(0), np.float32(np.inf)), out)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (np.float32(1) + expf(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    """ggml's GELU: the tanh approximation, read (as ggml's CPU backend does) from a table indexed
    by the f16 value of x and holding f16 results; x >= 10 passes through, x <= -10 gives 0. The
    oracle's compiler fused 1 + 0.044715 x x into one multiply-add."""
    x16 = x.astype(np.float16).astype(np.float32)
    c = np.float32(0.7978845608028654)  # sqrt(2 / pi)
    inner = _fma(np.float32(0.044715) * x16, x16, np.float32(1))
    table = np.float32(0.5) * x16 * (np.float32(1) + np.tanh(c * x16 * inner))
    y = table.astype(np.float16).astype(np.float32)
    return np.where(x >= 10, x, np.where(x <= -10, np.float32(0), y)).astype(np.float32)


@functools.cache
def _gelu_quick_table() -> np.ndarray:
    """ggml_table_gelu_quick_f16 as float32: x * (1 / (1 + expf(-1.702 x))) for every f16 value x,
    each step rounded to float32 (expf correctly rounded, as the C library's), the result to f16."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
        e = np.exp((np.float32(-1.702) * x).astype(np.float64)).astype(np.float32)
        y = x * (np.float32(1) / (np.float32(1) + e))
    return y.astype(np.float16).astype(np.float32)


def gelu_quick(x: np.ndarray) -> np.ndarray:
    """ggml's quick GELU, x * sigmoid(1.702 x), read (as ggml's CPU backend does) from a table indexed
    by the f16 value of x and holding f16 results."""
    return _gelu_quick_table()[x.astype(np.float16).view(np.uint16)]


F16_DOT_LANES = 64  # ggml_vec_dot_f16 (AVX-512): four vectors of 16 lanes


def alibi_slopes(n_head: int, max_bias: float) -> np.ndarray:
    """ALiBi's per-head slopes as ggml_soft_max_ext computes them: powers of 2^(-max_bias / n)
    for the first n (a power of two) heads, interleaved odd powers of its square root after."""
    n_head_log2 = 1 << int(np.floor(np.log2(n_head)))
    m0 = np.float32(2.0) ** np.float32(-max_bias / n_head_log2)
    m1 = np.float32(2.0) ** np.float32(-(max_bias / 2.0) / n_head_log2)
    heads = np.arange(n_head)
    return np.where(heads < n_head_log2, m0 ** (heads + 1).astype(np.float32),
                    m1 ** (2 * (heads - n_head_log2) + 1).astype(np.float32)).astype(np.float32)


def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, mask: np.ndarray,
              scale: float, n_head_kv: int, n_kv: int, max_bias: float = 0.0, softcap: float = 0.0) -> np.ndarray:
    """softmax(q k^T * scale + mask) v over the first ``n_kv`` cells; query head h reads KV head
    h // (n_head / n_head_kv). Returns [n, n_head * head_dim].

    In llama.cpp's order of operations (without flash attention): each score is a
    ggml_vec_dot_f16 of the f16-rounded query with a K row (64 lanes, reduced pairwise); the
    softmax sums its exps 16 at a time, each group's float sum added in double; the f16-rounded
    probabilities meet V in a ggml_vec_dot_f16 over cells, 64 lanes over the cells. Products of
    two f16 values are exact in float32, so each lane's fused multiply-add is a float32 add here.
    """
    n, n_head, head_dim = q.shape
    group = n_head // n_head_kv
    q16 = q.astype(np.float16).astype(np.float32)
    q16 = q16.reshape(n, n_head_kv, group, head_dim).transpose(1, 2, 0, 3).reshape(n_head_kv, group * n, head_dim)
    k = k_cache[:n_kv].astype(np.float32).reshape(n_kv, n_head_kv, head_dim).transpose(1, 0, 2)
    v = v_cache[:n_kv].astype(np.float32).reshape(n_kv, n_head_kv, head_dim).transpose(1, 0, 2)
    # per query: tinyBLAS's order beside another token of its sequence, else ggml_vec_dot_f16's
    batched = _has_sequence_neighbour(mask[:, :n_kv])
    rows = np.tile(batched, group)[None, :, None]  # the (group, n) rows of each KV head, flattened
    scores = _dot_by_row(rows, q16[:, :, None, :], k[:, None, :, :]).reshape(n_head_kv, group, n, n_kv)
    if softcap > 0:  # Gemma 2: scale, tanh, scale, as three ggml ops
        scores = np.tanh(scores * np.float32(1.0 / softcap)) * np.float32(softcap)
    if max_bias > 0:  # ALiBi: slope_h * mask fused-multiply-added to the scaled scores, as ggml's loop compiles
        slopes = alibi_slopes(n_head, max_bias).reshape(n_head_kv, group, 1, 1)
        scores = _fma(slopes, mask[None, None, :, :n_kv], scores * np.float32(scale))
    else:
        scores = scores * np.float32(scale) + mask[None, None, :, :n_kv]
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.where(np.isneginf(scores), np.float32(0), expf(np.where(np.isneginf(scores), 0, scores)))
    probs *= (1.0 / _grouped_sum(probs)).astype(np.float32)[..., None]
    probs16 = probs.astype(np.float16).astype(np.float32).reshape(n_head_kv, group * n, n_kv)
    # llama.cpp's cache view is padded to 256 cells, so its sums over cells have no leftovers
    padding = -n_kv % F16_DOT_LANES
    probs16 = np.pad(probs16, ((0, 0), (0, 0), (0, padding)))[:, :, None, :]
    v_rows = np.pad(v.transpose(0, 2, 1), ((0, 0), (0, 0), (0, padding)))[:, None, :, :]
    out = _dot_by_row(rows, probs16, v_rows)
    out = out.reshape(n_head_kv, group, n, head_dim).transpose(2, 0, 1, 3)
    return np.ascontiguousarray(out.reshape(n, n_head * head_dim))


def _f16_dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ggml_vec_dot_f16 over the last axis of broadcast x and y (f16 values held as float32): lane l
    sums the products at l, l + 64, ... in order; lanes reduce as (0+2) + (1+3) of the four vectors,
    then in _mm512_reduce_add_ps's order; values past a multiple of 64 are added in double."""
    length = x.shape[-1]
    whole = length - length % F16_DOT_LANES
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    lanes = np.zeros((*shape, F16_DOT_LANES), np.float32)
    for start in range(0, whole, F16_DOT_LANES):
        lanes += x[..., start:start + F16_DOT_LANES] * y[..., start:start + F16_DOT_LANES]
    quarters = lanes.reshape(*shape, 4, 16)
    total = _reduce16((quarters[..., 0, :] + quarters[..., 2, :]) + (quarters[..., 1, :] + quarters[..., 3, :]))
    if whole < length:
        rest = (x[..., whole:] * y[..., whole:]).astype(np.float64)
        total = (total + rest.sum(axis=-1)).astype(np.float32)
    return total


def _dot_by_row(batched: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """tinyBLAS's order where ``batched`` (broadcast over the output) is set, ggml_vec_dot_f16's
    elsewhere; each order is computed only when some row takes it."""
    if batched.all():
        return _tinyblas_f16_dot(x, y)
    if not batched.any():
        return _f16_dot(x, y)
    return np.where(batched, _tinyblas_f16_dot(x, y), _f16_dot(x, y))


def _has_sequence_neighbour(mask: np.ndarray) -> np.ndarray:
    """llama.cpp (without flash attention) multiplies by tinyBLAS when its batch holds two or more
    queries, by ggml_vec_dot_f16 for one. Here a query counts as batched when a token next to it in
    the batch belongs to its sequence (the two see a cell in common; batches keep a sequence's
    tokens together, and a sliding window still shows a token its predecessor), so that a row's
    result does not depend on other sequences sharing the batch."""
    visible = mask != -np.inf
    same_as_previous = np.zeros(len(mask), bool)
    same_as_previous[1:] = (visible[1:] & visible[:-1]).any(axis=1)
    return same_as_previous | np.append(same_as_previous[1:], False)


def _tinyblas_f16_dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """llamafile's tinyBLAS f16 GEMM (AVX-512), which ggml uses for f16 products of two or more
    columns: one 16-lane accumulator per output over the last axis, then _mm512_reduce_add_ps.
    (llama.cpp's cache view is padded to 256 cells; the padding adds zeros, so a last partial
    group of 16 just sums fewer products.)"""
    length = x.shape[-1]
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    lanes = np.zeros((*shape, 16), np.float32)
    for start in range(0, length, 16):
        stop = min(start + 16, length)
        lanes[..., :stop - start] += x[..., start:stop] * y[..., start:stop]
    return _reduce16(lanes)


def _reduce16(a: np.ndarray) -> np.ndarray:
    """_mm512_reduce_add_ps over the last axis (16 lanes), in GCC's order."""
    t8 = a[..., 8:] + a[..., :8]
    t4 = t8[..., 4:] + t8[..., :4]
    return (t4[..., 0] + t4[..., 2]) + (t4[..., 1] + t4[..., 3])


def _grouped_sum(values: np.ndarray) -> np.ndarray:
    """ggml_vec_soft_max_f32's sum over the last axis: 16 values at a time reduced as floats, each
    group's sum added in double."""
    length = values.shape[-1]
    padded = np.zeros((*values.shape[:-1], -(-length // 16) * 16), np.float32)
    padded[..., :length] = values
    groups = _reduce16(padded.reshape(*values.shape[:-1], -1, 16)).astype(np.float64)
    total = np.zeros(values.shape[:-1], np.float64)
    for index in range(groups.shape[-1]):  # in order, as ggml's loop adds them
        total += groups[..., index]
    return total
