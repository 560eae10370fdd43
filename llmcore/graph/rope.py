"""Rotary position embeddings as ggml computes them: the settings (from GGUF metadata) and the
angles, bit for bit (ggml's running product of theta_scale, its YaRN mix, the C library's cosf/sinf).

Every backend rotates with these angles, so this module is part of the plugin API."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RopeParams:
    """Rotary embedding settings as llama.cpp reads them from GGUF metadata."""

    n_rot: int
    neox: bool = False
    freq_base: float = 10000.0
    freq_scale: float = 1.0
    ext_factor: float = 0.0  # YaRN extrapolation mix; 0 disables YaRN
    attn_factor: float = 1.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    n_ctx_orig: int = 0


# cos/sin rows by rope settings, then by position: each position's angles are computed once
_ROPE_ROWS: dict[tuple[RopeParams, bytes | None], dict[int, tuple[np.ndarray, np.ndarray]]] = {}


def rope_cos_sin(p: RopeParams, positions: np.ndarray,
                 freq_factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ggml_rope_cache_init's cos and sin rows (float32 [n, n_rot/2] each, ``attn_factor`` and
    YaRN's magnitude scale applied) for ``positions``, bit for bit: ggml's running product of
    theta_scale, its YaRN mix, and the C library's cosf/sinf. Each position is computed once."""
    rows = _ROPE_ROWS.setdefault((p, None if freq_factors is None else freq_factors.tobytes()), {})
    missing = sorted({int(pos) for pos in positions} - rows.keys())
    if missing:
        cos, sin = _rope_angles(p, freq_factors, np.array(missing, np.int32))
        rows.update((pos, (cos[i], sin[i])) for i, pos in enumerate(missing))
    return (np.stack([rows[int(pos)][0] for pos in positions]), np.stack([rows[int(pos)][1] for pos in positions]))


def _rope_angles(p: RopeParams, freq_factors: np.ndarray | None,
                 positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = p.n_rot // 2
    theta_scale = np.float32(p.freq_base) ** np.float32(-2.0 / p.n_rot)
    # ggml starts from the position and multiplies by theta_scale pair after pair, rounding each time
    theta_extrap = np.empty((len(positions), half), np.float32)
    theta = positions.astype(np.float32)
    for i in range(half):
        theta_extrap[:, i] = theta
        theta = theta * theta_scale
    if freq_factors is not None:
        theta_extrap = theta_extrap / freq_factors[None, :]
    theta_interp = np.float32(p.freq_scale) * theta_extrap
    mscale = np.float32(p.attn_factor)
    if p.ext_factor != 0.0:
        low, high = yarn_corr_dims(p)
        ramp = 1.0 - np.clip((np.arange(half, dtype=np.float32) - low) / max(0.001, high - low), 0.0, 1.0)
        mix = (ramp * p.ext_factor).astype(np.float32)
        theta = (theta_interp.astype(np.float64) * (1 - mix) + theta_extrap * mix).astype(np.float32)
        mscale *= np.float32(np.float64(np.float32(0.1)) * np.float32(np.log(np.float32(1.0 / p.freq_scale))) + 1.0)
    else:
        theta = theta_interp
    return _c_cosf(theta) * mscale, _c_sinf(theta) * mscale


def _libm_function(name: str) -> Callable[[float], float] | None:
    path = ctypes.util.find_library("m")
    try:
        function = getattr(ctypes.CDLL(path), name) if path else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


def _c_float_function(name: str, fallback: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The C library's float function ``name`` over an array (ggml's rope calls cosf and sinf, which
    differ from numpy's float32 cos and sin in the last bit at some angles); ``fallback`` in double,
    rounded, where there is no C math library to load."""
    function = _libm_function(name)
    if function is None:
        return lambda x: fallback(x.astype(np.float64)).astype(np.float32)
    return lambda x: np.array([function(v) for v in x.ravel().tolist()], np.float32).reshape(x.shape)


_c_cosf = _c_float_function("cosf", np.cos)
_c_sinf = _c_float_function("sinf", np.sin)


def yarn_corr_dims(p: RopeParams) -> tuple[float, float]:
    """ggml_rope_yarn_corr_dims: the dims where YaRN's ramp from extrapolation to interpolation lies."""

    def corr_dim(n_rot: float) -> float:
        return p.n_rot * np.log(p.n_ctx_orig / (n_rot * 2 * np.pi)) / (2 * np.log(p.freq_base))

    low = np.floor(corr_dim(p.beta_fast))
    high = np.ceil(corr_dim(p.beta_slow))
    return max(0.0, float(low)), min(p.n_rot - 1.0, float(high))


def rope(x: np.ndarray, positions: np.ndarray, p: RopeParams, freq_factors: np.ndarray | None = None) -> np.ndarray:
    """Rotate the first ``n_rot`` dims of each head of x[n, heads, dim] by position-dependent angles.

    Normal mode rotates adjacent pairs (x[2i], x[2i+1]); neox mode rotates (x[i], x[i + n_rot/2]).
    Angles follow ggml's YaRN formulation, including its running product for the frequencies.
    ggml is compiled with the compiler's default contraction, so its ``a*b - c*d`` is
    ``fma(a, b, -(c*d))``: computed here as a*b exactly (in double) minus the rounded c*d.
    """
    half = p.n_rot // 2
    cos, sin = rope_cos_sin(p, positions, freq_factors)
    cos, sin = cos[:, None, :].astype(np.float64), sin[:, None, :].astype(np.float64)
    out = x.copy()
    pairs = (slice(0, half), slice(half, p.n_rot)) if p.neox else (slice(0, p.n_rot, 2), slice(1, p.n_rot, 2))
    a, b = x[..., pairs[0]], x[..., pairs[1]]
    out[..., pairs[0]] = (a * cos - (b * sin).astype(np.float32)).astype(np.float32)
    out[..., pairs[1]] = (a * sin + (b * cos).astype(np.float32)).astype(np.float32)
    return out


#: positions per token of a multi-section rotation (ggml's GGML_MROPE_SECTIONS: t, h, w, e)
MROPE_SECTIONS = 4


def mrope_cos_sin(p: RopeParams, positions: np.ndarray, sections: tuple[int, ...], vision: bool = False,
                  freq_factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ggml_mrope_cache_init's cos and sin rows (float32 [n, angles] each) for ``positions`` int32
    [4, n] (one row per section, as ggml_rope_multi reads them): angle i takes the position of
    the section its sector (i modulo the sections' total) falls in. Text M-RoPE (Qwen2-VL's decoder)
    has n_rot / 2 angles, each section's running product of theta_scale going on from angle 0; the
    vision variant (its encoder: ``vision``) has n_rot angles and restarts the product where a
    section begins. ``p.n_rot`` is ggml's n_dims in both."""
    n_angles = p.n_rot if vision else p.n_rot // 2
    starts = np.cumsum((0, *sections))
    sector = np.arange(n_angles) % int(starts[-1])
    section = np.searchsorted(starts[1:], sector, side="right")
    exponent = sector - starts[section] if vision else np.arange(n_angles)
    # each section's angles are a plain rotation's at that position (the vision variant's sections
    # are narrower than n_rot / 2 and use no YaRN nor frequency factors: see GraphBuilder.rope_multi)
    rows = [rope_cos_sin(p, positions[s], freq_factors) for s in range(MROPE_SECTIONS)]
    cos = np.stack([r[0] for r in rows])[section, :, exponent].T
    sin = np.stack([r[1] for r in rows])[section, :, exponent].T
    return np.ascontiguousarray(cos), np.ascontiguousarray(sin)


def rope_multi(x: np.ndarray, positions: np.ndarray, p: RopeParams, sections: tuple[int, ...], vision: bool = False,
               freq_factors: np.ndarray | None = None) -> np.ndarray:
    """ggml_rope_multi of x[n, heads, dim] at ``positions`` int32 [4, n] (see :func:`mrope_cos_sin`):
    neox-style pairs (i, i + angles) over the first 2 * angles dims, the rest copied, each product
    fused as :func:`rope`'s."""
    cos, sin = mrope_cos_sin(p, positions, sections, vision, freq_factors)
    half = cos.shape[1]
    cos, sin = cos[:, None, :].astype(np.float64), sin[:, None, :].astype(np.float64)
    out = x.copy()
    a, b = x[..., :half], x[..., half:2 * half]
    out[..., :half] = (a * cos - (b * sin).astype(np.float32)).astype(np.float32)
    out[..., half:2 * half] = (a * sin + (b * cos).astype(np.float32)).astype(np.float32)
    return out
