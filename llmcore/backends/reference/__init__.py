"""The reference backend: pure numpy, registered through the same hooks as any plugin.

It is the oracle every other backend is tested against, so each op is a short numpy function
(see ``kernels``). Weights are dequantized to float32 once, when first used, so that matrix
products run as BLAS calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from llmcore.backends.reference import attention, kernels, moe, rwkv, ssm
from llmcore.backends.reference.attention import libm_expf
from llmcore.plugin_api import (
    Availability, Backend, Device, Executable, GGMLType, Node, Op, Subgraph, WeightData, dequantize, hookimpl, kv_types, rope,
    rope_multi,
)


class ReferenceBackend(Backend):
    name = "reference"
    priority = 0
    api_version = "2.5"
    runs_on_host = True

    @classmethod
    def probe(cls) -> Availability:
        return Availability(True, devices=(Device("numpy", "cpu"),))

    def __init__(self, n_threads: int | None = None) -> None:
        super().__init__(n_threads)
        self._weights: dict[str, WeightData] = {}
        self._prepared: dict[str, np.ndarray | kernels.BlockQuants] = {}
        self._caches: dict[str, np.ndarray] = {}

    def supports_op(self, node: Node) -> bool:
        return True

    def load_weights(self, weights: Sequence[WeightData]) -> None:
        for w in weights:
            self._weights[w.name] = w

    def matrix(self, name: str) -> np.ndarray | kernels.BlockQuants:
        """Weight ``name`` prepared for ``kernels.mul_mat`` on first use: legacy quants split into
        integer quants and scales, other types dequantized to float32."""
        if name not in self._prepared:
            w = self._weights[name]
            self._prepared[name] = _prepared_matrix(w.raw, w.type, w.shape)
        return self._prepared[name]

    def expert_matrix(self, name: str, expert: int) -> np.ndarray | kernels.BlockQuants:
        """Expert ``expert``'s matrix of the stacked weight ``name`` [n_expert, rows, cols],
        prepared as :meth:`matrix` prepares a matrix, on first use: only routed experts are read."""
        key = f"{name}[{expert}]"
        if key not in self._prepared:
            w = self._weights[name]
            self._prepared[key] = _prepared_matrix(w.raw[expert], w.type, w.shape[1:])
        return self._prepared[key]

    def rows(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of weight ``name`` as float32, without dequantizing the whole table."""
        w = self._weights[name]
        return dequantize(np.ascontiguousarray(w.raw[ids]), w.type, (len(ids), *w.shape[1:]))

    def compile(self, subgraph: Subgraph) -> Executable:
        for node in subgraph.caches:
            if node.name not in self._caches:
                dtype, shape = kv_types.storage(node.dtype, node.shape)
                self._caches[node.name] = np.full(shape, 0, dtype)  # resident now, as llama.cpp clears its cache
        return _Interpreter(self, subgraph)

    def cache_view(self, name: str) -> np.ndarray:
        return self._caches[name]

    def memory_used(self) -> dict[str, int]:
        return {
            "weights": sum(w.raw.nbytes for w in self._weights.values())
            + sum(a.q.nbytes if isinstance(a, kernels.BlockQuants) else a.nbytes for a in self._prepared.values()),
            "kv": sum(c.nbytes for c in self._caches.values()),
        }


class _Interpreter(Executable):
    """Runs a subgraph op by op, in order, keeping every intermediate value by node id."""

    def __init__(self, backend: ReferenceBackend, subgraph: Subgraph) -> None:
        self.backend = backend
        self.subgraph = subgraph

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        values: dict[int, np.ndarray] = dict(inputs)
        values.update((w.id, self.backend._weights[w.name].raw) for w in self.subgraph.weights)
        values.update((c.id, self.backend._caches[c.name]) for c in self.subgraph.caches)
        for node in self.subgraph.nodes:
            values[node.id] = self._eval(node, values, n_kv)
        return [values[node.id] for node in self.subgraph.outputs]

    def _eval(self, node: Node, values: dict[int, np.ndarray], n_kv: int) -> np.ndarray:
        b = self.backend
        src = [values[s.id] for s in node.srcs]
        p = node.params
        match node.op:
            case Op.GET_ROWS:
                table = node.srcs[0]
                return b.rows(table.name, src[1]) if table.op is Op.WEIGHT else src[0][src[1]]
            case Op.MUL_MAT:
                w = node.srcs[0]
                return kernels.mul_mat(b.matrix(w.name), w.dtype, src[1])
            case Op.MUL_MAT_ID:
                w = node.srcs[0]
                return moe.mul_mat_id(
                    lambda e: lambda rows: kernels.mul_mat(b.expert_matrix(w.name, e), w.dtype, rows),
                    src[1], src[2], w.shape[1])
            case Op.MUL_MAT_HEADS:  # head h is expert h of every token
                w = node.srcs[0]
                heads = np.broadcast_to(np.arange(w.shape[0], dtype=np.int32), node.shape[:2])
                return moe.mul_mat_id(
                    lambda h: lambda rows: kernels.mul_mat(b.expert_matrix(w.name, h), w.dtype, rows),
                    src[1], heads, w.shape[1])
            case Op.TOP_K:
                return moe.top_k(src[0], p["k"])
            case Op.MASK_GROUPS:
                return moe.mask_groups(src[0], src[1], p["size"])
            case Op.SLICE:
                return np.ascontiguousarray(src[0][..., p["start"]:p["stop"]])
            case Op.CONCAT:
                return np.concatenate(src, axis=-1)
            case Op.GATHER:
                return np.take_along_axis(src[0], src[1], axis=-1)
            case Op.KV_STORE:
                cache, x, cells = src
                cache[cells] = kv_types.store_rows(node.dtype, x)
                return cache
            case Op.SSM_CONV:
                return ssm.ssm_conv(*src)
            case Op.SSM_SCAN:
                return ssm.ssm_scan(*src)
            case Op.TOKEN_SHIFT:
                return rwkv.token_shift(*src)
            case Op.RWKV_WKV6:
                return rwkv.rwkv_wkv6(*src)
            case Op.GATED_LINEAR_ATTN:
                return rwkv.gated_linear_attn(*src, p["scale"])
            case Op.RWKV_WKV7:
                return rwkv.rwkv_wkv7(*src)
            case Op.L2_NORM:
                return rwkv.l2_norm(src[0], p["eps"])
            case Op.EXP:
                return libm_expf(src[0])
            case Op.ATTENTION:
                return attention.attention(*src[:4], p["scale"], p["n_head_kv"], n_kv, node.srcs[1].dtype,
                                           node.srcs[2].dtype, p.get("flash", False), p["max_bias"], p["softcap"],
                                           b.n_threads or os.cpu_count() or 1, p.get("softcap_scale", 0.0),
                                           src[4] if len(src) > 4 else None, p.get("no_cache", False))
            case Op.ROPE:
                return rope(src[0], src[1], p["rope"], src[2] if len(src) > 2 else None)
            case Op.ROPE_MULTI:
                return rope_multi(src[0], src[1], p["rope"], p["sections"], p["vision"])
            case Op.RESHAPE:
                return src[0].reshape(node.shape)
            case Op.HADAMARD:
                return kv_types.hadamard(src[0], p["n"])
            case Op.RMS_NORM | Op.NORM:
                return _UNARY_WITH_EPS[node.op](src[0], p["eps"])
            case Op.SCALE:
                return src[0] * np.float32(p["factor"])
            case Op.SWIGLU_OAI:
                return _swiglu_oai(*src, p["alpha"], p["limit"])
            case Op.CLAMP:
                return np.clip(src[0], np.float32(p["low"]), np.float32(p["high"]))
            case _:
                return _ELEMENTWISE[node.op](*src)


_UNARY_WITH_EPS: dict[Op, Callable[[np.ndarray, float], np.ndarray]] = {
    Op.RMS_NORM: kernels.rms_norm,
    Op.NORM: kernels.norm,
}

_ELEMENTWISE: dict[Op, Callable[..., np.ndarray]] = {
    Op.ADD: np.add,
    Op.MUL: np.multiply,
    Op.SILU: kernels.silu,
    Op.GELU: kernels.gelu,
    Op.GELU_QUICK: kernels.gelu_quick,
    Op.TANH: np.tanh,
    Op.DIV: np.divide,
    Op.SIGMOID: moe.sigmoid,
    Op.SOFTMAX: moe.softmax,
    Op.SUM_ROWS: moe.sum_rows,
    Op.WEIGHTED_SUM: moe.weighted_sum,
    Op.SWIGLU: lambda gate, up: kernels.silu(gate) * up,
    Op.GEGLU: lambda gate, up: kernels.gelu(gate) * up,
}


def _swiglu_oai(gate: np.ndarray, up: np.ndarray, alpha: float, limit: float) -> np.ndarray:
    """ggml_swiglu_oai's loop: the C library's expf, each operation rounded to float32."""
    x = np.minimum(gate, np.float32(limit))
    y = np.clip(up, np.float32(-limit), np.float32(limit))
    return x / (np.float32(1) + libm_expf(np.float32(alpha) * -x)) * (y + np.float32(1))


def _prepared_matrix(raw: np.ndarray, w_type: GGMLType, shape: tuple[int, ...]) -> np.ndarray | kernels.BlockQuants:
    """A matrix as ``kernels.mul_mat`` takes it: legacy quants split into integer quants and scales,
    other types dequantized to float32."""
    if w_type in kernels.LEGACY_QUANTS:
        return kernels.BlockQuants.from_raw(raw, w_type, shape)
    return dequantize(raw, w_type, shape)


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [ReferenceBackend]
