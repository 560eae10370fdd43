"""Attention over KV caches of every type, in llama.cpp's CPU order of operations.

Without flash attention (``-fa off``) ggml computes ``mul_mat(K, q)``, a softmax and
``mul_mat(V, p)``: q is rounded to the K cache's ``vec_dot_type`` (f16, bf16, f32, or 8-bit blocks
for the block types) and each score is that type's dot product (its 8-lane block sums for the block
types, tinyBLAS's order for the float types in a batch); the probabilities meet V the same way.
The plain f16 case is :func:`kernels.attention`.

With flash attention (``-fa on``) ggml's ``flash_attn_ext`` runs per query row either

- the one-row path (``ggml_compute_forward_flash_attn_ext_f16_one_chunk``): q rounded to the K
  type's ``vec_dot_type``, each score a ``vec_dot``, an online softmax over the cells in order with
  the C library's ``expf``, and V accumulated in f16 (an f16 V cache) or in f32 (others, each row
  read with ``to_float``); or
- the tiled path (a batch of 64 or more queries over f16 caches): q in f32, scores as sequential
  fused multiply-adds, 64 cells at a time, each tile's exps from ggml's vectorised expf, V
  accumulated in f32.

An f32 cache is cast to f16 first, as llama.cpp's graph does for flash attention.
"""

from __future__ import annotations

import decimal

import numpy as np

from llmcore.backends.reference import kernels
from llmcore.backends.reference.kernels import LANES, QK8, _fma, _quantize_q8, _reduce16, expf
from llmcore.plugin_api import dequantize, kv_types

F32, F16, BF16 = kv_types.F32, kv_types.F16, kv_types.BF16
Q_TILE = KV_TILE = 64  # ggml's GGML_FA_TILE_Q and GGML_FA_TILE_KV
SPLIT_KV_CELLS = 512  # a single query over a view this long splits the cells among ggml's threads
DOT_LANES = 64  # ggml_vec_dot_f16/_f32 on AVX-512: four vectors of 16
_Q8_1_TYPES = ("q4_1", "q5_1")
_CHUNK = 1 << 21  # values per temporary of the block dot products


def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, mask: np.ndarray, scale: float,
              n_head_kv: int, n_kv: int, type_k: str, type_v: str, flash: bool = False,
              max_bias: float = 0.0, softcap: float = 0.0, n_threads: int = 1, softcap_scale: float = 0.0,
              sinks: np.ndarray | None = None, no_cache: bool = False) -> np.ndarray:
    """softmax(q k^T * scale + mask) v over the first ``n_kv`` cells of caches stored as
    ``kv_types.storage`` lays them out (q [n, n_head, d]; returns [n, n_head * d]). ``n_threads``
    is the thread count of the llama.cpp whose sums to follow: its flash attention for one query
    over a long f16 cache splits the cells among them. ``softcap_scale`` (0: 1 / softcap) multiplies
    the scores inside the cap's tanh; ``sinks`` [n_head] are the heads' attention sinks (see
    :func:`_add_sinks`). ``no_cache``: the cells are the batch's own (an encoder's), so llama.cpp's
    rows hold exactly ``n_kv`` cells instead of a cache view padded to 256."""
    cap = _Cap(softcap, softcap_scale)
    if not flash:
        if type_k == type_v == F16 and sinks is None and not softcap_scale:
            return kernels.attention(q, k_cache, v_cache, mask, scale, n_head_kv, n_kv, max_bias, softcap)
        return _products(q, k_cache, v_cache, mask, scale, n_head_kv, n_kv, type_k, type_v, max_bias, cap, sinks,
                         no_cache)
    return _flash(q, k_cache, v_cache, mask, scale, n_head_kv, n_kv, type_k, type_v, max_bias, softcap, n_threads, sinks)


class _Cap:
    """Soft-capping of the scores before the softmax: ``softcap * tanh(score * scale)``, ``scale``
    being 1 / softcap (ggml's scale, tanh, scale) unless Grok's folded multiplier is given."""

    def __init__(self, softcap: float, scale: float = 0.0) -> None:
        self.softcap = softcap
        self.scale = np.float32(scale) if scale else np.float32(1.0 / softcap) if softcap > 0 else None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.scale is None:
            return scores
        return np.tanh(scores * self.scale) * np.float32(self.softcap)


def _sinks_by_row(sinks: np.ndarray | None, n_head_kv: int) -> np.ndarray | None:
    """Sinks [n_head] as [n_head_kv, group, 1] for scores laid out per KV head and group."""
    return None if sinks is None else sinks.astype(np.float32).reshape(n_head_kv, -1, 1)


# -- shared pieces ------------------------------------------------------------------------------


def _by_kv_head(x: np.ndarray, n_head_kv: int) -> np.ndarray:
    """[n, n_head, d] -> [n_head_kv, group * n, d]: the query rows each KV head serves, head-major."""
    n, n_head, d = x.shape
    group = n_head // n_head_kv
    return x.reshape(n, n_head_kv, group, d).transpose(1, 2, 0, 3).reshape(n_head_kv, group * n, d)


def _from_kv_head(y: np.ndarray, n: int) -> np.ndarray:
    """The inverse of :func:`_by_kv_head`, flattened to [n, n_head * d]."""
    n_head_kv, rows, d = y.shape
    return np.ascontiguousarray(y.reshape(n_head_kv, rows // n, n, d).transpose(2, 0, 1, 3).reshape(n, -1))


def _cells(cache: np.ndarray, cache_type: str, n_kv: int, n_head_kv: int, width: int) -> np.ndarray:
    """The first ``n_kv`` cells (of ``width`` values) as float32 [n_head_kv, n_kv, head_dim] (ggml's to_float)."""
    values = kv_types.load_rows(cache_type, cache[:n_kv], width)
    return values.reshape(n_kv, n_head_kv, -1).transpose(1, 0, 2)


def _round(x: np.ndarray, vec_type: str) -> np.ndarray:
    """x rounded to a float ``vec_dot_type`` (f16, bf16; f32 unchanged)."""
    if vec_type == F16:
        return x.astype(np.float16).astype(np.float32)
    if vec_type == BF16:
        return (kv_types.round_bf16_bits(x).astype(np.uint32) << np.uint32(16)).view(np.float32)
    return x.astype(np.float32)


def _slopes(n_head: int, n_head_kv: int, max_bias: float) -> np.ndarray:
    """ALiBi's slope of every query row [n_head_kv, group, 1, 1] (1 without ALiBi)."""
    group = n_head // n_head_kv
    if max_bias <= 0:
        return np.ones((n_head_kv, group, 1, 1), np.float32)
    return kernels.alibi_slopes(n_head, max_bias).reshape(n_head_kv, group, 1, 1)


# -- dot products ---------------------------------------------------------------------------------


def _lane_dot(x: np.ndarray, y: np.ndarray, n_lanes: int) -> np.ndarray:
    """Float dot over the last axis of broadcast x, y as ``n_lanes`` fused multiply-add
    accumulators (lane l takes elements l, l + n_lanes, ...): returns the lanes [..., n_lanes]."""
    length = x.shape[-1]
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    lanes = np.zeros((*shape, n_lanes), np.float32)
    for start in range(0, length, n_lanes):
        stop = min(start + n_lanes, length)
        lanes[..., :stop - start] = _fma(x[..., start:stop], y[..., start:stop], lanes[..., :stop - start])
    return lanes


def _float_dot(x: np.ndarray, y: np.ndarray, batched: bool, f16: bool = False) -> np.ndarray:
    """ggml's f32/f16 dot: tinyBLAS (one 16-lane accumulator, then _mm512_reduce_add_ps) for a
    batch, ggml_vec_dot_f32/_f16 (64 lanes reduced as (0+2)+(1+3), then 16) for one row; values past
    a multiple of 64 then join one by one, in double for f16 values (``f16``), fused in float for f32."""
    if batched:
        return _reduce16(_lane_dot(x, y, 16))
    if f16:
        return kernels._f16_dot(x, y)
    whole = x.shape[-1] - x.shape[-1] % DOT_LANES
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    quarters = _lane_dot(x[..., :whole], y[..., :whole], DOT_LANES).reshape(*shape, 4, 16)
    total = _reduce16((quarters[..., 0, :] + quarters[..., 2, :]) + (quarters[..., 1, :] + quarters[..., 3, :]))
    for i in range(whole, x.shape[-1]):
        total = _fma(x[..., i], y[..., i], total)
    return total


def _vec_dot_f32(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ggml_vec_dot_f32 as the oracle's compiler built it: the SIMD loop over whole 64s, then the
    tail loop vectorized 16 and then 8 products at a time (each rounded, added in order), the last
    few fused in order."""
    length = x.shape[-1]
    whole = length - length % DOT_LANES
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    total = _float_dot(x[..., :whole], y[..., :whole], batched=False) if whole else np.zeros(shape, np.float32)
    tail = length - whole
    unfused_end = whole + tail // 16 * 16 + (8 if tail % 16 >= 8 else 0)
    for i in range(whole, length):
        product = x[..., i] * y[..., i]
        total = total + product if i < unfused_end else _fma(x[..., i], y[..., i], total)
    return np.asarray(total, np.float32)


def _bf16_lanes(x: np.ndarray, y: np.ndarray, lanes: np.ndarray) -> np.ndarray:
    """One _mm512_dpbf16_ps over 32 values: lane l adds the product of pair l's odd value, then its even one."""
    px, py = x.reshape(*x.shape[:-1], 16, 2), y.reshape(*y.shape[:-1], 16, 2)
    lanes = lanes + px[..., 1] * py[..., 1]  # bf16 products are exact in float32
    return lanes + px[..., 0] * py[..., 0]


def _bf16_dot(x: np.ndarray, y: np.ndarray, batched: bool) -> np.ndarray:
    """ggml's bf16 dot (AVX512-BF16): tinyBLAS's one accumulator over 32-value steps for a batch;
    ggml_vec_dot_bf16's two (the halves of each 64 values), each reduced and added in double."""
    length = x.shape[-1]
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    if batched:
        acc = np.zeros((*shape, 16), np.float32)
        for start in range(0, length, 32):
            acc = _bf16_lanes(x[..., start:start + 32], y[..., start:start + 32], acc)
        return _reduce16(acc)
    c1, c2 = np.zeros((*shape, 16), np.float32), np.zeros((*shape, 16), np.float32)
    whole = length - length % 64
    for start in range(0, whole, 64):
        c1 = _bf16_lanes(x[..., start:start + 32], y[..., start:start + 32], c1)
        c2 = _bf16_lanes(x[..., start + 32:start + 64], y[..., start + 32:start + 64], c2)
    total = _reduce16(c1).astype(np.float64) + _reduce16(c2)
    if whole < length:
        total = total + (x[..., whole:] * y[..., whole:]).astype(np.float64).sum(axis=-1)
    return total.astype(np.float32)


def _block_scores(q: np.ndarray, k_cache: np.ndarray, cache_type: str, n_kv: int, n_head_kv: int,
                  batched: bool) -> np.ndarray:
    """Scores [n_head_kv, rows, n_kv] of q rows [n_head_kv, rows, d] with a block-type K cache, as
    ggml's vec_dot (or tinyBLAS's, the same for every type but IQ4_NL) sums them: q as q8_0 (q8_1
    for Q4_1, Q5_1) blocks, per block 8 lanes of 4 adjacent integer products scaled by both block
    scales into 8 fused multiply-add accumulators, reduced as hsum_float_8, plus the minimum terms."""
    n_heads, rows, d = q.shape
    ggml = kv_types.ggml_type(cache_type)
    raw = np.ascontiguousarray(k_cache[:n_kv]).reshape(n_kv * n_head_kv, -1)
    block_bytes = raw.shape[1] * QK8 // d
    blocks = raw.reshape(n_kv * n_head_kv, -1, block_bytes)
    kd = blocks[:, :, 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    km = blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float32) if cache_type in _Q8_1_TYPES else None
    unit = blocks.copy()  # decoded with unit scale and no minimum: the integer quants
    unit[:, :, 0:2] = np.array([1.0], np.float16).view(np.uint8)
    if km is not None:
        unit[:, :, 2:4] = 0
    kq = dequantize(unit.reshape(len(unit), -1), ggml, (len(unit), d)).reshape(n_kv, n_head_kv, -1, LANES, 4)
    kd = kd.reshape(n_kv, n_head_kv, -1).transpose(1, 0, 2)  # [heads, cells, blocks]
    km = None if km is None else km.reshape(n_kv, n_head_kv, -1).transpose(1, 0, 2)
    kq = kq.transpose(1, 0, 2, 3, 4)  # [heads, cells, blocks, 8, 4]
    xq, xd, xs = _quantize_q8(q.reshape(n_heads * rows, d))
    xq = xq.reshape(n_heads, rows, -1, LANES, 4)
    xd, xs = xd.reshape(n_heads, rows, -1), xs.reshape(n_heads, rows, -1)
    n_blocks = xd.shape[-1]
    two_accumulators = cache_type == "iq4_nl" and not batched  # ggml_vec_dot_iq4_nl_q8_0 (AVX2)
    out = np.empty((n_heads, rows, n_kv), np.float32)
    step = max(1, _CHUNK // max(1, rows * n_blocks * LANES))
    for c0 in range(0, n_kv, step):
        c1 = min(n_kv, c0 + step)
        # exact integer lane sums [heads, rows, cells, blocks, 8]
        sumi = np.einsum("hrblk,hcblk->hrcbl", xq, kq[:, c0:c1], optimize=True)
        accs = [np.zeros((n_heads, rows, c1 - c0, LANES), np.float32) for _ in range(2 if two_accumulators else 1)]
        summs = np.zeros((n_heads, rows, c1 - c0), np.float32)
        whole = n_blocks - n_blocks % 2 if two_accumulators else n_blocks
        for b in range(whole):
            scale = (kd[:, None, c0:c1, b] * xd[:, :, None, b])[..., None]
            acc = accs[b % len(accs)]
            accs[b % len(accs)] = _fma(scale, sumi[:, :, :, b], acc)
            if km is not None:
                summs = _fma(km[:, None, c0:c1, b], xs[:, :, None, b], summs)
        acc = accs[0] if len(accs) == 1 else accs[0] + accs[1]
        halves = acc[..., :4] + acc[..., 4:]
        total = ((halves[..., 0] + halves[..., 2]) + (halves[..., 1] + halves[..., 3])) + summs
        for b in range(whole, n_blocks):  # IQ4_NL's odd last block: a scalar sum
            scale = kd[:, None, c0:c1, b] * xd[:, :, None, b]
            total = total + scale * sumi[:, :, :, b].sum(axis=-1)
        out[:, :, c0:c1] = total
    return out


def _scores(q: np.ndarray, k_cache: np.ndarray, type_k: str, n_kv: int, n_head_kv: int, batched: bool,
            width: int, vec_type: str | None = None) -> np.ndarray:
    """q rows [n_head_kv, rows, d] dotted with each K cell: [n_head_kv, rows, n_kv]."""
    if kv_types.is_quantized(type_k):
        return _block_scores(q, k_cache, type_k, n_kv, n_head_kv, batched)
    k = _cells(k_cache, type_k, n_kv, n_head_kv, width)
    vec_type = vec_type or type_k
    qr = _round(q, vec_type)[:, :, None, :]
    if vec_type == BF16:
        return _bf16_dot(qr, k[:, None, :, :], batched)
    return _float_dot(qr, k[:, None, :, :], batched, f16=vec_type == F16)


def _softmax(scores: np.ndarray, mask: np.ndarray, scale: float, slopes: np.ndarray, max_bias: float,
             cap: _Cap, sinks: np.ndarray | None = None, exact_rows: bool = False) -> np.ndarray:
    """ggml_soft_max_ext of scores [n_head_kv, group, n, n_kv] (with soft-capping first, as ggml's
    scale, tanh, scale), as :func:`kernels.attention` computes it. With ``sinks`` [n_head_kv,
    group, 1] (ggml_soft_max_add_sinks) a row's max is at least its head's sink, and the sum gains
    the sink's exp by the C library's expf, in double. A row of ``exact_rows`` ends past its whole
    16s with the C library's expf, each exp added in double (a cache view's padding has no end)."""
    scores = cap(scores)
    if max_bias > 0:
        scores = _fma(slopes, mask[None, None], scores * np.float32(scale))
    else:
        scores = scores * np.float32(scale) + mask[None, None]
    row_max = scores.max(axis=-1, keepdims=True)
    if sinks is not None:
        row_max = np.maximum(row_max, sinks[..., None])
    scores = scores - row_max
    hidden = np.isneginf(scores)
    probs = np.where(hidden, np.float32(0), expf(np.where(hidden, 0, scores)))
    whole = scores.shape[-1] - scores.shape[-1] % 16 if exact_rows else scores.shape[-1]
    probs[..., whole:] = np.where(hidden[..., whole:], np.float32(0), libm_expf(np.where(hidden, 0, scores)[..., whole:]))
    total = kernels._grouped_sum(probs[..., :whole])
    for j in range(whole, scores.shape[-1]):
        total = total + probs[..., j].astype(np.float64)
    if sinks is not None:
        total = total + libm_expf(sinks[..., None] - row_max)[..., 0].astype(np.float64)
    return probs * (1.0 / total).astype(np.float32)[..., None]


def _products(q, k_cache, v_cache, mask, scale, n_head_kv, n_kv, type_k, type_v, max_bias, cap, sinks, no_cache):
    """Attention without flash attention over caches other than f16/f16 (see the module docstring).
    llama.cpp multiplies a batch of two or more queries by tinyBLAS and one by vec_dot; a row counts
    as batched when a token of its own sequence sits beside it, as in :func:`kernels.attention`.
    Without a cache (``no_cache``) an f32 V's rows are exactly n_kv long: tinyBLAS only over whole
    16s of cells, else ggml_vec_dot_f32 with its compiled tail (:func:`_vec_dot_f32`)."""
    n, n_head, d = q.shape
    group = n_head // n_head_kv
    mask = mask[:, :n_kv]
    batched = np.tile(kernels._has_sequence_neighbour(mask), group)[None, :, None]  # per (group, token) row

    def by_row(dot):
        if batched.all() or not batched.any():
            return dot(bool(batched.all()))
        return np.where(batched, dot(True), dot(False))

    qh = _by_kv_head(q, n_head_kv)
    if type_k == F32:  # q already has K's vec_dot_type and is not contiguous: ggml skips tinyBLAS, every row vec_dot
        k = _cells(k_cache, type_k, n_kv, n_head_kv, d * n_head_kv)
        scores = _vec_dot_f32(qh[:, :, None, :], k[:, None, :, :])
    else:
        scores = by_row(lambda b: _scores(qh, k_cache, type_k, n_kv, n_head_kv, b, d * n_head_kv))
    probs = _softmax(scores.reshape(n_head_kv, group, n, n_kv), mask, scale, _slopes(n_head, n_head_kv, max_bias),
                     max_bias, cap, _sinks_by_row(sinks, n_head_kv), no_cache).reshape(n_head_kv, group * n, n_kv)
    if no_cache and type_v == F32:
        v = _cells(v_cache, type_v, n_kv, n_head_kv, d * n_head_kv).transpose(0, 2, 1)[:, None, :, :]
        probs = probs[:, :, None, :]
        if n_kv % 16 == 0:
            return _from_kv_head(by_row(lambda b: _vec_dot_f32(probs, v) if not b else _float_dot(probs, v, True)), n)
        return _from_kv_head(_vec_dot_f32(probs, v), n)
    # llama.cpp's cache view is padded to 256 cells: its sums over cells have no leftovers
    padding = -n_kv % 256
    probs = np.pad(_round(probs, type_v), ((0, 0), (0, 0), (0, padding)))[:, :, None, :]
    v = np.pad(_cells(v_cache, type_v, n_kv, n_head_kv, d * n_head_kv).transpose(0, 2, 1),
               ((0, 0), (0, 0), (0, padding)))[:, None, :, :]
    if type_v == BF16:
        return _from_kv_head(by_row(lambda b: _bf16_dot(probs, v, b)), n)
    return _from_kv_head(by_row(lambda b: _float_dot(probs, v, b, f16=type_v == F16)), n)


# -- flash attention --------------------------------------------------------------------------------


def _exp2_table() -> np.ndarray:
    """glibc's __exp2f_data.tab: the bits of 2^(i/32), correctly rounded, minus i << 47."""
    decimal.getcontext().prec = 60
    bits = [np.float64(float(decimal.Decimal(2) ** (decimal.Decimal(i) / 32))).view(np.uint64) for i in range(32)]
    return np.array([int(b) - (i << 47) for i, b in enumerate(bits)], np.uint64)


_EXP2_TABLE = _exp2_table()
_EXPF_INV_LN2_N = float.fromhex("0x1.71547652b82fep+0") * 32
_EXPF_SHIFT = float.fromhex("0x1.8p+52")
_EXPF_POLY = (float.fromhex("0x1.c6af84b912394p-5") / 32**3, float.fromhex("0x1.ebfce50fac4f3p-3") / 32**2,
              float.fromhex("0x1.62e42ff0c52d6p-1") / 32)


def libm_expf(x: np.ndarray) -> np.ndarray:
    """The C library's expf, which ggml's flash attention calls per score: glibc's algorithm (a
    32-entry table of 2^(i/32) and a cubic in double precision, within 0.502 ulp, not always the
    correctly rounded value), step for step."""
    x = np.asarray(x, np.float32)
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        z = _EXPF_INV_LN2_N * xd
        kd = z + _EXPF_SHIFT
        ki = kd.view(np.uint64)
        r = z - (kd - _EXPF_SHIFT)
        scale = (_EXP2_TABLE[(ki % np.uint64(32)).astype(np.intp)] + (ki << np.uint64(47))).view(np.float64)
        c0, c1, c2 = _EXPF_POLY
        y = ((c0 * r + c1) * (r * r) + (c2 * r + 1)) * scale
        y = y.astype(np.float32)
    y = np.where(x < np.float32(float.fromhex("-0x1.9fe368p6")), np.float32(0), y)
    return np.where(x > np.float32(float.fromhex("0x1.62e42ep6")), np.float32(np.inf), np.where(np.isnan(x), x, y))


def _flash(q, k_cache, v_cache, mask, scale, n_head_kv, n_kv, type_k, type_v, max_bias, softcap, n_threads, sinks):
    n, n_head, d = q.shape
    # llama.cpp's graph casts an f32 cache to f16 for flash attention
    type_k, type_v = (F16 if t == F32 else t for t in (type_k, type_v))
    k_cache, v_cache = (c.astype(np.float16) if c.dtype == np.float32 else c for c in (k_cache, v_cache))
    mask16 = mask[:, :n_kv].astype(np.float16).astype(np.float32)  # flash attention's mask is f16
    slopes = _slopes(n_head, n_head_kv, max_bias)  # [heads, group, 1, 1]
    group = n_head // n_head_kv
    # each query row's mask, times its head's slope: [heads, group * n, cells]
    masks = (slopes * mask16[None, None]).reshape(n_head_kv, group * n, n_kv)
    if softcap:
        scale = np.float32(scale) / np.float32(softcap)
    qh = _by_kv_head(q, n_head_kv)
    view = _cache_view_cells(n_kv, k_cache.shape[0])
    # each query row's sink, [heads, group * n] as the rows are laid out
    row_sinks = None if sinks is None else np.repeat(sinks.astype(np.float32).reshape(n_head_kv, group), n, axis=1)
    if n >= Q_TILE and type_k == type_v == F16:
        out = _flash_tiled(qh, k_cache, v_cache, masks, np.float32(scale), n_head_kv, n_kv, softcap, row_sinks)
    elif n == 1 and type_k == type_v == F16 and view >= SPLIT_KV_CELLS:
        out = _flash_split(qh, k_cache, v_cache, masks, np.float32(scale), n_head_kv, n_kv, softcap, view, n_threads,
                           row_sinks)
    else:
        out = _flash_one_row(qh, k_cache, v_cache, masks, np.float32(scale), n_head_kv, n_kv, type_k, type_v, softcap,
                             row_sinks=row_sinks)
    return _from_kv_head(out, n)


def _add_sinks(acc: np.ndarray, m: np.ndarray, total: np.ndarray, sinks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The attention sinks of ggml's flash attention (after the cells, on the first chunk only): a
    sink above a row's max rescales its sums by expf(max - sink) and adds 1, else it adds
    expf(sink - max), to the sum alone (a sink has no value). Returns (acc, total)."""
    higher = sinks > m
    ms = np.where(higher, libm_expf(np.where(higher, m - sinks, 0)), np.float32(1))
    vs = np.where(higher, np.float32(1), libm_expf(np.where(higher, 0, sinks - m)))
    return np.where(higher[..., None], acc * ms[..., None], acc), _fma(total, ms, vs)


def _cache_view_cells(n_kv: int, n_cells: int) -> int:
    """The cells of llama.cpp's view of the cache for ``n_kv`` used ones: padded to 256, at least 256."""
    return min(n_cells, max(256, -(-n_kv // 256) * 256))


def _flash_split(qh, k_cache, v_cache, masks, scale, n_head_kv, n_kv, softcap, view, n_threads, row_sinks):
    """One query over a cache view of 512 cells or more (f16 caches): ggml cuts the view's cells into
    one chunk per thread, runs the one-row path on each without normalising, then merges the chunks
    in order (ggml_flash_attn_ext_reduce_partials), each merge's multiply-adds fused as its C
    contracts them."""
    heads, rows, d = qh.shape
    chunk = -(-view // n_threads)
    acc = np.zeros((heads, rows, d), np.float32)
    m = np.full((heads, rows), -np.inf, np.float32)
    total = np.zeros((heads, rows), np.float32)
    for start in range(0, view, chunk):
        part, m_part, s_part = _flash_one_row(qh, k_cache, v_cache, masks, scale, n_head_kv, n_kv, F16, F16, softcap,
                                              cells=(start, min(start + chunk, n_kv)), normalize=False,
                                              row_sinks=row_sinks if start == 0 else None)
        use = s_part != 0
        m_new = np.maximum(m, m_part)
        with np.errstate(invalid="ignore"):  # -inf - -inf where a row saw no cell yet: not used
            scale_old, scale_new = libm_expf(m - m_new), libm_expf(m_part - m_new)
        acc = np.where(use[..., None], _fma(acc, scale_old[..., None], part * scale_new[..., None]), acc)
        total = np.where(use, _fma(total, scale_old, s_part * scale_new), total)
        m = np.where(use, m_new, m)
    inv = np.where(total == 0, np.float32(1), np.float32(1) / np.where(total == 0, np.float32(1), total))
    return acc * inv[..., None].astype(np.float32)


def _flash_one_row(qh, k_cache, v_cache, masks, scale, n_head_kv, n_kv, type_k, type_v, softcap,
                   cells: tuple[int, int] | None = None, normalize: bool = True, row_sinks: np.ndarray | None = None):
    """ggml_compute_forward_flash_attn_ext_f16_one_chunk over every query row at once, cell by cell
    (the cells [start, stop) of ``cells`` only; unnormalised, with each row's max and sum, unless
    ``normalize``), then the rows' sinks where given."""
    vec_type = F16 if type_k == F16 else BF16 if type_k == BF16 else None
    heads, rows, d = qh.shape
    s_all = _scores(qh, k_cache, type_k, n_kv, n_head_kv, False, heads * d, vec_type) * scale
    if softcap:
        s_all = np.float32(softcap) * np.tanh(s_all).astype(np.float32)
    s_all = s_all + masks
    v = _cells(v_cache, type_v, n_kv, n_head_kv, heads * d)  # [heads, cells, d]
    f16_acc = type_v == F16
    acc = np.zeros((heads, rows, d), np.float32)
    m = np.full((heads, rows), -np.inf, np.float32)
    total = np.zeros((heads, rows), np.float32)
    start, stop = cells or (0, n_kv)
    visible_cells = start + np.flatnonzero((masks[:, :, start:stop] != -np.inf).any(axis=(0, 1)))
    for j in visible_cells:
        s = s_all[:, :, j]
        seen = masks[:, :, j] != -np.inf
        higher = seen & (s > m)
        with np.errstate(invalid="ignore"):  # -inf - -inf in rows this cell is hidden from: not selected
            ms = np.where(higher, libm_expf(m - s), np.float32(1))
            vs = np.where(higher | ~seen, np.float32(1), libm_expf(s - m))
        m = np.where(higher, s, m)
        scaled = acc * ms[..., None]
        if f16_acc:
            scaled = scaled.astype(np.float16).astype(np.float32)
        acc = np.where(higher[..., None], scaled, acc)
        added = _fma(v[:, None, j, :], vs[..., None], acc)
        if f16_acc:
            added = added.astype(np.float16).astype(np.float32)
        acc = np.where(seen[..., None], added, acc)
        total = np.where(seen, _fma(total, ms, vs), total)
    if row_sinks is not None:
        acc, total = _add_sinks(acc, m, total, row_sinks)
        m = np.maximum(m, row_sinks)
    if not normalize:
        return acc, m, total
    inv = np.where(total == 0, np.float32(0), np.float32(1) / np.where(total == 0, np.float32(1), total))
    return acc * inv[..., None].astype(np.float32)


def _flash_tiled(qh, k_cache, v_cache, masks, scale, n_head_kv, n_kv, softcap, row_sinks):
    """ggml_compute_forward_flash_attn_ext_tiled (f16 caches, 64 or more queries), per query row:
    64 cells at a time, scores and V sums as sequential fused multiply-adds (simd_gemm)."""
    heads, rows, d = qh.shape
    k = _cells(k_cache, F16, n_kv, n_head_kv, heads * d)  # [heads, cells, d]
    v = _cells(v_cache, F16, n_kv, n_head_kv, heads * d)
    acc = np.zeros((heads, rows, d), np.float32)
    m = np.full((heads, rows), -np.inf, np.float32)
    total = np.zeros((heads, rows), np.float32)
    for c0 in range(0, n_kv, KV_TILE):
        c1 = min(n_kv, c0 + KV_TILE)
        tile_mask = np.full((heads, rows, KV_TILE), -np.inf, np.float32)
        tile_mask[:, :, :c1 - c0] = masks[:, :, c0:c1]
        seen = (tile_mask != -np.inf).any(axis=-1)
        if not seen.any():
            continue
        kq = np.zeros((heads, rows, KV_TILE), np.float32)
        for i in range(d):  # simd_gemm: one fused multiply-add per dimension, in order
            kq[:, :, :c1 - c0] = _fma(qh[:, :, i:i + 1], k[:, None, c0:c1, i], kq[:, :, :c1 - c0])
        kq = kq * scale
        if softcap:
            kq = np.tanh(kq).astype(np.float32) * np.float32(softcap)
        kq = kq + tile_mask
        tile_max = kq.max(axis=-1)
        new_m = np.maximum(m, tile_max)
        higher = seen & (new_m > m)
        with np.errstate(invalid="ignore"):  # rows that see no cell of the tile (a window's mask): discarded below
            ms = np.where(higher, libm_expf(m - new_m), np.float32(1))
            acc = np.where(higher[..., None], acc * ms[..., None], acc)
            total = np.where(higher, total * ms, total)
            m = np.where(seen, new_m, m)
            exps = np.where(kq == -np.inf, np.float32(0), expf(np.where(kq == -np.inf, 0, kq - m[..., None])))
        total = np.where(seen, (total.astype(np.float64) + kernels._grouped_sum(exps)).astype(np.float32), total)
        exps = np.where(seen[..., None], exps, np.float32(0))
        for j in range(c1 - c0):  # simd_gemm: the tile's cells in order
            acc = _fma(exps[:, :, j:j + 1], v[:, None, c0 + j, :], acc)
    if row_sinks is not None:
        acc, total = _add_sinks(acc, m, total, row_sinks)
    inv = np.where(total == 0, np.float32(0), np.float32(1) / np.where(total == 0, np.float32(1), total))
    return acc * inv[..., None].astype(np.float32)
