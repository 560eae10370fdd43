"""Mamba's recurrent ops as ggml's CPU backend computes them (ggml_compute_forward_ssm_conv and
_ssm_scan in ops.cpp, compiled with the compiler's default contraction): each token's state update
and output are read off its sequence's state row, which the op leaves updated, token by token in
batch order.

The sums follow the oracle's machine code: the conv's window and Mamba's state dot are fused
multiply-adds in order; Mamba-2's state dot is ggml's SIMD loop (four 16-lane accumulators over each
64 values, reduced as (0+2)+(1+3), then the rest fused in order), ggml_vec_dot_f32's order. Softplus
is ``logf(1 + expf(dt))`` below 20 with the C library's functions (glibc's algorithms, step for step).
"""

from __future__ import annotations

import numpy as np

from llmcore.backends.reference.attention import _float_dot, libm_expf
from llmcore.backends.reference.kernels import _fma

_LOGF_TABLE = (  # glibc's __logf_data: (1/c, log(c)) of 16 subintervals
    ("0x1.661ec79f8f3bep+0", "-0x1.57bf7808caadep-2"), ("0x1.571ed4aaf883dp+0", "-0x1.2bef0a7c06ddbp-2"),
    ("0x1.49539f0f010bp+0", "-0x1.01eae7f513a67p-2"), ("0x1.3c995b0b80385p+0", "-0x1.b31d8a68224e9p-3"),
    ("0x1.30d190c8864a5p+0", "-0x1.6574f0ac07758p-3"), ("0x1.25e227b0b8eap+0", "-0x1.1aa2bc79c81p-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.a4e76ce8c0e5ep-4"), ("0x1.12358f08ae5bap+0", "-0x1.1973c5a611cccp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.252f438e10c1ep-5"), ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.aa5aa5df25984p-5"), ("0x1.ca4b31f026aap-1", "0x1.c5e53aa362eb4p-4"),
    ("0x1.b2036576afce6p-1", "0x1.526e57720db08p-3"), ("0x1.9c2d163a1aa2dp-1", "0x1.bc2860d22477p-3"),
    ("0x1.886e6037841edp-1", "0x1.1058bc8a07ee1p-2"), ("0x1.767dcf5534862p-1", "0x1.4043057b6ee09p-2"),
)
_LOGF_INVC = np.array([float.fromhex(invc) for invc, _ in _LOGF_TABLE])
_LOGF_LOGC = np.array([float.fromhex(logc) for _, logc in _LOGF_TABLE])
_LOGF_POLY = [float.fromhex(h) for h in ("-0x1.00ea348b88334p-2", "0x1.5575b0be00b6ap-2", "-0x1.ffffef20a4123p-2")]
_LN2 = float.fromhex("0x1.62e42fefa39efp-1")


def libm_logf(x: np.ndarray) -> np.ndarray:
    """The C library's logf for normal positive x (softplus's 1 + e^dt): glibc's algorithm, a
    16-entry table and a cubic in double precision."""
    ix = np.asarray(x, np.float32).view(np.uint32)
    tmp = ix - np.uint32(0x3F330000)
    i = (tmp >> np.uint32(19)) % np.uint32(16)
    k = tmp.view(np.int32) >> 23
    z = (ix - (tmp & np.uint32(0xFF800000))).view(np.float32).astype(np.float64)
    r = z * _LOGF_INVC[i] - 1.0
    y0 = _LOGF_LOGC[i] + k.astype(np.float64) * _LN2
    r2 = r * r
    a0, a1, a2 = _LOGF_POLY
    y = a1 * r + a2
    y = a0 * r2 + y
    y = y * r2 + (y0 + r)
    return np.where(ix == np.uint32(0x3F800000), np.float32(0), y.astype(np.float32))


def softplus(x: np.ndarray) -> np.ndarray:
    """ggml_compute_softplus_f32: x above 20, else logf(1 + expf(x))."""
    with np.errstate(over="ignore"):
        soft = libm_logf(np.float32(1) + libm_expf(np.minimum(x, np.float32(20))))
    return np.where(x > np.float32(20), x, soft).astype(np.float32)


def ssm_conv(state: np.ndarray, x: np.ndarray, weight: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Causal conv1d of x [n, channels] by weight [channels, d_conv]; ``state`` [slots, channels *
    (d_conv - 1)] holds each sequence's last inputs and is updated in place."""
    n, channels = x.shape
    d_conv = weight.shape[1]
    windows = state.reshape(len(state), channels, d_conv - 1)
    out = np.empty_like(x)
    for t in range(n):
        window = np.concatenate([windows[slots[t]], x[t][:, None]], axis=1)
        total = np.zeros(channels, np.float32)
        for i in range(d_conv):
            total = _fma(window[:, i], weight[:, i], total)
        out[t] = total
        windows[slots[t]] = window[:, 1:]
    return out


def ssm_scan(state: np.ndarray, x: np.ndarray, dt: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
             d: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """The selective scan of x [n, n_head, head_dim] plus D * x; ``state`` [slots, n_head * head_dim
    * d_state] is updated in place. Per token: dt' = softplus(dt), s = s * exp(dt' A) + B (x dt'),
    y = s . C, with head h reading group h // (n_head / n_group) of B and C."""
    n, n_head, head_dim = x.shape
    n_group, d_state = b.shape[1:]
    group = np.arange(n_head) // (n_head // n_group)
    states = state.reshape(len(state), n_head, head_dim, d_state)
    per_head = a.shape == (n_head, 1)
    skip = x * (d.reshape(n_head, 1) if per_head else d.reshape(n_head, head_dim))
    y = np.empty((n, n_head, head_dim), np.float32)
    for t in range(n):
        step = softplus(dt[t])  # [n_head]
        x_dt = x[t] * step[:, None]  # [n_head, head_dim]
        bt, ct = b[t][group][:, None, :], c[t][group][:, None, :]  # [n_head, 1, d_state]
        if per_head:
            decay = libm_expf(step * a[:, 0])[:, None, None]
        else:
            decay = libm_expf(step[:, None, None] * a.reshape(n_head, head_dim, d_state))
        s = _fma(states[slots[t]], decay, bt * x_dt[..., None])
        if per_head:  # ggml's SIMD loop over d_state, ggml_vec_dot_f32's order
            y[t] = _float_dot(s, ct, batched=False)
        else:  # a scalar loop: one fused multiply-add after another
            total = np.zeros((n_head, head_dim), np.float32)
            for i in range(d_state):
                total = _fma(s[..., i], ct[..., i], total)
            y[t] = total
        states[slots[t]] = s
    return (y + skip).reshape(n, n_head * head_dim)
