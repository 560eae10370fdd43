"""The error bounds of the conformance kit, in one table, and the comparison that applies them.

Like llama.cpp's test-backend-ops, a backend's output is compared with the reference backend's by
the normalized mean squared error ``NMSE = sum((got - ref)^2) / sum(ref^2)`` over the whole output,
with a bound per op. The bounds are set by what legitimately differs between correct backends:

* summation order and fused multiply-adds: ~1e-12 for any op, far below every bound;
* ``exp``/``tanh`` approximations in SIMD or GPU math libraries: up to ~1e-8;
* for MUL_MAT, whether activations are rounded to the weight type's dot-product format (q8 blocks
  for quantized weights, f16 for F16 weights) as ggml does: ~1e-5. A backend should round as ggml
  does (its end-to-end results then match llama.cpp's goldens) but the bound does not require it;
* for ATTENTION, whether queries and probabilities are rounded to f16 before meeting an f16 cache.

Real bugs (a wrong eps, a sign, a transposed block, a GQA head mapped to the wrong KV head) give
errors of 1e-3 to 1, orders of magnitude above the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmcore.graph.ir import Op

#: NMSE bound per op: the single table the kit checks against (documented in docs/plugins.md)
NMSE_BOUNDS: dict[Op, float] = {
    Op.GET_ROWS: 1e-7,
    Op.MUL_MAT: 5e-4,
    Op.ADD: 1e-7,
    Op.MUL: 1e-7,
    Op.SCALE: 1e-7,
    Op.CLAMP: 1e-7,
    Op.RMS_NORM: 1e-6,
    Op.NORM: 1e-6,
    Op.ROPE: 1e-6,
    Op.ROPE_MULTI: 1e-6,
    Op.SILU: 1e-6,
    Op.GELU: 1e-6,
    Op.GELU_QUICK: 1e-6,  # ggml's f16 table, as GELU's
    Op.TANH: 1e-6,
    Op.SWIGLU: 1e-6,
    Op.GEGLU: 1e-6,
    Op.SWIGLU_OAI: 1e-6,
    Op.RESHAPE: 1e-7,
    Op.KV_STORE: 1e-7,
    Op.HADAMARD: 1e-7,
    Op.ATTENTION: 5e-4,
    Op.SIGMOID: 1e-6,
    Op.DIV: 1e-7,
    Op.SOFTMAX: 1e-6,
    Op.SUM_ROWS: 1e-7,
    Op.TOP_K: 0.0,  # indices: the same experts in the same order, ties included
    Op.GATHER: 1e-7,
    Op.MUL_MAT_ID: 5e-4,
    Op.WEIGHTED_SUM: 1e-7,
    Op.MASK_GROUPS: 0.0,  # copies and -inf: exact
    Op.SLICE: 0.0,
    Op.CONCAT: 0.0,
    Op.MUL_MAT_HEADS: 5e-4,
    Op.SSM_CONV: 1e-7,  # ggml's orders, fused multiply-adds included: exact on a CPU backend
    Op.SSM_SCAN: 1e-6,
    Op.EXP: 1e-7,  # the C library's expf on both sides
    Op.L2_NORM: 1e-7,
    Op.TOKEN_SHIFT: 0.0,  # copies
    Op.RWKV_WKV6: 1e-6,  # ggml's orders, fused multiply-adds included
    Op.RWKV_WKV7: 1e-6,
    Op.GATED_LINEAR_ATTN: 1e-6,
}

#: end-to-end marks on llama.cpp's goldens: what llama.cpp itself meets against them on a CPU with
#: other SIMD instructions than the one that made them (see the golden fixtures' README)
GOLDEN_TOP1_RATE = 0.98  # share of rows whose argmax is llama.cpp's
GOLDEN_P99_TOP1_ERROR = 0.25  # 99th percentile of |log-prob error| of llama.cpp's top-1 token
GOLDEN_P99_TOP10_ERROR = 0.6  # 99th percentile of the largest |log-prob error| over its top 10
GOLDEN_NEAR_TIE = 0.1  # a greedy step may differ only where llama.cpp's top two logits are this close


@dataclass(frozen=True)
class Mismatch:
    """Why a backend's value differs from the reference: printable as one paragraph."""

    what: str  # e.g. "output of step 2" or "cache <name> afterwards"
    problem: str

    def __str__(self) -> str:
        return f"{self.what}: {self.problem}"


def compare(what: str, got: np.ndarray, ref: np.ndarray, bound: float) -> Mismatch | None:
    """None when ``got`` matches ``ref`` within the NMSE ``bound``, else what is wrong and where
    the worst element is."""
    got = np.asarray(got)
    if got.shape != ref.shape:
        return Mismatch(what, f"shape {got.shape}, the reference's is {ref.shape}")
    got = got.astype(np.float64)
    ref = ref.astype(np.float64)
    finite = np.isfinite(ref)
    # -inf/nan must match where the reference has them (e.g. a fully masked row); elsewhere they are bugs
    same_special = (got == ref) | (np.isnan(got) & np.isnan(ref))
    bad = (np.isfinite(got) != finite) | (~finite & ~same_special)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        return Mismatch(what, f"{int(bad.sum())} non-finite mismatches; first at {list(at)}: "
                              f"got {got[at]:.6g}, reference {ref[at]:.6g}")
    diff = np.subtract(got, ref, out=np.zeros_like(ref), where=finite)
    ref_energy = float(np.square(ref, out=np.zeros_like(ref), where=finite).sum())
    error = float(np.square(diff).sum()) / max(ref_energy, np.finfo(np.float64).tiny)
    if error <= bound:
        return None
    at = tuple(int(i) for i in np.unravel_index(np.abs(diff).argmax(), diff.shape))
    return Mismatch(what, f"NMSE {error:.3g} exceeds the bound {bound:.0e}; worst element {list(at)}: "
                          f"got {got[at]:.6g}, reference {ref[at]:.6g} (|error| {abs(diff[at]):.3g})")


__all__ = [
    "GOLDEN_NEAR_TIE",
    "GOLDEN_P99_TOP1_ERROR",
    "GOLDEN_P99_TOP10_ERROR",
    "GOLDEN_TOP1_RATE",
    "NMSE_BOUNDS",
    "Mismatch",
    "compare",
]
