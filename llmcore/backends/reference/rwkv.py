"""RWKV's recurrent ops as ggml's CPU backend computes them (ggml_compute_forward_rwkv_wkv6/_wkv7,
l2_norm and exp in ops.cpp, AVX-512 build): each token reads its sequence's state row and leaves it
updated, token by token in batch order.

WKV-6's state of a head (and gated linear attention's) is [key][value]: per key i the value row is
updated with fused multiply-adds, and the output adds key by key. WKV-7's is [value][key]: the dots over keys are
ggml's SIMD loop (ggml_vec_dot_f32's order, four 16-lane accumulators per 64 values)."""

from __future__ import annotations

import numpy as np

from llmcore.backends.reference.attention import _float_dot
from llmcore.backends.reference.kernels import _fma


def token_shift(state: np.ndarray, x: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Row t becomes the row before it in its sequence (``state``'s row for the first), and each
    sequence's state row keeps its last row."""
    out = np.empty_like(x)
    for t in range(len(x)):
        out[t] = state[slots[t]]
        state[slots[t]] = x[t]
    return out


def rwkv_wkv6(state: np.ndarray, k: np.ndarray, v: np.ndarray, r: np.ndarray, u: np.ndarray, w: np.ndarray,
              slots: np.ndarray) -> np.ndarray:
    """y[h, j] = sum over keys i of r_i (k_i v_j u_i + S_ij); then S_ij = S_ij w_i + k_i v_j."""
    return _linear_attention(state, k, v, r, w, slots, u)


def gated_linear_attn(state: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray, gate: np.ndarray,
                      slots: np.ndarray, scale: float) -> np.ndarray:
    """S_ij = S_ij g_i + k_i v_j, then y_j = sum over keys i of S_ij (q_i scale), per head."""
    return _linear_attention(state, k, v, q * np.float32(scale), gate, slots, None)


def _linear_attention(state: np.ndarray, k: np.ndarray, v: np.ndarray, r: np.ndarray, w: np.ndarray,
                      slots: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    """Per key i: S_ij' = S_ij w_i + k_i v_j; the output adds r_i (k_i v_j u_i + S_ij) with a bonus u,
    r_i S_ij' without, key by key."""
    n, n_head, head = k.shape
    states = state.reshape(len(state), n_head, head, head)
    y = np.empty((n, n_head, head), np.float32)
    for t in range(n):
        s = states[slots[t]]
        kv = k[t][:, :, None] * v[t][:, None, :]  # [head, key, value]
        updated = _fma(s, w[t][:, :, None], kv)
        read = updated if u is None else _fma(kv, u[:, :, None], s)
        out = np.zeros((n_head, head), np.float32)
        for i in range(head):
            out = _fma(read[:, i], r[t][:, i, None], out)
        y[t] = out
        states[slots[t]] = updated
    return y.reshape(n, n_head * head)


def rwkv_wkv7(state: np.ndarray, r: np.ndarray, w: np.ndarray, k: np.ndarray, v: np.ndarray, a: np.ndarray,
              b: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """S_ij = S_ij w_j + v_i k_j + (a . S_i) b_j, then y_i = S_i . r, per head."""
    n, n_head, head = r.shape
    states = state.reshape(len(state), n_head, head, head)
    y = np.empty((n, n_head, head), np.float32)
    for t in range(n):
        s = states[slots[t]]  # [head, value, key]
        sa = _float_dot(a[t][:, None, :], s, batched=False)  # [head, value]
        kv = v[t][:, :, None] * k[t][:, None, :]
        s = _fma(sa[..., None], b[t][:, None, :], _fma(s, w[t][:, None, :], kv))
        y[t] = _float_dot(s, r[t][:, None, :], batched=False)
        states[slots[t]] = s
    return y.reshape(n, n_head * head)


def l2_norm(x: np.ndarray, eps: float) -> np.ndarray:
    """x / max(sqrtf(sum), eps): the squares rounded to float, added one by one in double."""
    total = np.cumsum(np.square(x).astype(np.float64), axis=-1)[..., -1:]
    scale = np.float32(1) / np.maximum(np.sqrt(total.astype(np.float32)), np.float32(eps))
    return x * scale
