"""The cpu_simd backend: the whole subgraph runs in one C call per step, on a pthread pool, with
SIMD kernels built for the best ISA level of this CPU."""

from __future__ import annotations

import atexit
import os
import platform
from collections.abc import Mapping, Sequence

import numpy as np
from llmcore.plugin_api import (
    F16, F32, I32, Availability, Backend, BackendError, Device, Executable, Node, Op, Subgraph, WeightData, kv_types,
)

from llmcore_cpu_simd import isa
from llmcore_cpu_simd.buffers import ALIGN, huge_page_bytes
from llmcore_cpu_simd.library import amx_state, ffi, library_name, load, tuned
from llmcore_cpu_simd.lowering import Program

PROFILE_ENV = "LLMCORE_PROFILE"

#: the KV cache types this backend stores and attends over (bf16 and iq4_nl: not yet, the
#: reference backend takes them)
CACHE_TYPES = ("f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")

_ELEMENTWISE = {Op.ADD, Op.MUL, Op.SCALE, Op.RMS_NORM, Op.NORM, Op.ROPE, Op.SILU, Op.GELU,
                Op.SWIGLU, Op.GEGLU, Op.RESHAPE, Op.TANH, Op.CLAMP, Op.DIV, Op.SIGMOID, Op.SOFTMAX,
                Op.SUM_ROWS, Op.GATHER, Op.WEIGHTED_SUM, Op.SWIGLU_OAI, Op.GELU_QUICK}
#: llama.cpp's LLAMA_MAX_EXPERTS: the widest row TOP_K sorts (on the stack)
MAX_SORTED = 512
#: the widest attention head (kv.c's LC_MAX_HEAD_DIM, its per-head buffers on the stack); DeepSeek's
#: latent rows are 576
MAX_HEAD_DIM = 1024


def _float_or_index(node: Node) -> bool:
    """Whether the kernels can read ``node`` as it is: float32 or int32 values, or a weight stored
    as F32 (norm weights, biases, CLIP's class embedding)."""
    return node.dtype in (F32, I32) or (node.op is Op.WEIGHT and int(node.dtype) == 0)


def selected_level(requested: str | None = None) -> str:
    """The ISA level to run: ``requested``, else ``$LLMCORE_CPU_ISA``, else the best this CPU has."""
    level = requested or os.environ.get(isa.ISA_ENV) or isa.supported_levels()[-1]
    if level not in isa.ISA_LEVELS:
        raise BackendError(f"unknown cpu_simd ISA level {level!r} (choose from {', '.join(isa.ISA_LEVELS)})")
    if level not in isa.supported_levels():
        raise BackendError(f"this CPU cannot run the {level} kernels (it supports {', '.join(isa.supported_levels())})")
    return level


class CpuSimdBackend(Backend):
    """Runs every op in C. ``n_threads`` defaults to the physical core count; ``isa`` forces an
    ISA level (``scalar``, ``avx2``, ``avx512``) as ``$LLMCORE_CPU_ISA`` does."""

    name = "cpu_simd"
    priority = 10
    runs_on_host = True
    api_version = "2.13"

    @classmethod
    def probe(cls) -> Availability:
        """Usable when the kernels for this CPU are cached or a C compiler can build them (the
        first probe on a machine compiles them, once)."""
        try:
            level = selected_level()
            lib = load(level)
        except (BackendError, OSError) as exc:
            return Availability(False, str(exc).splitlines()[0])
        cpu = platform.processor() or platform.machine()
        choices = tuned(level)
        timed = ", ".join(f"{name} {choice['path']}" for name, choice in choices["one-token paths"].items())
        chunks = choices["mul_mat chunks"]
        features = (ffi.string(lib.lc_isa()).decode(), f"amx: {amx_state(level)}",
                    f"one-token products (timed here): {timed or 'row by row'}",
                    f"product chunks per thread (timed here): one token {chunks['one token']['chunks']}, "
                    f"batch {chunks['batch']['chunks']}",
                    "prompt GEMM tile tokens (timed here): "
                    + ", ".join(f"{family} {tile['tokens']}" for family, tile in choices["tile tokens"].items()))
        return Availability(True, devices=(Device(f"CPU ({cpu})", "cpu", features=features),))

    def __init__(self, n_threads: int | None = None, isa_level: str | None = None) -> None:
        super().__init__(n_threads or isa.physical_cores())
        self.isa = selected_level(isa_level)
        self.lib = load(self.isa)
        self._pool = ffi.gc(self.lib.lc_pool_new(self.n_threads), self.lib.lc_pool_free)
        self._weights: dict[str, np.ndarray] = {}
        self._weight_types: dict[str, int] = {}
        self._caches: dict[str, np.ndarray] = {}
        self._compute_bytes = 0
        if os.environ.get(PROFILE_ENV, "0") not in ("", "0"):
            atexit.register(self.print_profile)

    # -- capabilities ---------------------------------------------------------------------------

    def supports_op(self, node: Node) -> bool:
        op = node.op
        if op in (Op.MUL_MAT, Op.MUL_MAT_ID, Op.MUL_MAT_HEADS):
            w, x = node.srcs[:2]
            traits = self._weight_traits(w)
            vec_traits = self.lib.lc_traits[traits.vec_dot_type] if traits is not None else None
            return (traits is not None and traits.vec_dot != ffi.NULL and x.dtype == F32
                    and w.shape[-1] % traits.block_size == 0 and w.shape[-1] % vec_traits.block_size == 0)
        if op is Op.TOP_K:
            return node.srcs[0].dtype == F32 and node.srcs[0].shape[-1] <= MAX_SORTED
        if op is Op.GET_ROWS:
            table = node.srcs[0]
            if table.op is Op.WEIGHT:
                traits = self._weight_traits(table)
                return traits is not None and traits.dequant_row != ffi.NULL and table.shape[1] % traits.block_size == 0
            return table.dtype == F32
        if op is Op.KV_STORE:
            return node.dtype in CACHE_TYPES and node.srcs[1].dtype == F32
        if op is Op.ATTENTION:
            q, k, v, mask = node.srcs[:4]
            head_dim = q.shape[2]
            return (k.dtype in CACHE_TYPES and v.dtype in CACHE_TYPES and q.dtype == F32 and mask.dtype == F32
                    and head_dim <= MAX_HEAD_DIM and (node.params.get("flash") or v.dtype in (F16, F32))
                    and all(head_dim % self.lib.lc_traits[kv_types.ggml_type(t)].block_size == 0
                            for t in (k.dtype, v.dtype)))
        if op is Op.ROPE_MULTI:  # ops.c takes the four sections as a byte each
            return node.srcs[0].dtype == F32 and max(node.params["sections"]) < 256
        if op in (Op.HADAMARD, Op.SLICE, Op.CONCAT, Op.MASK_GROUPS, Op.TOKEN_SHIFT, Op.RWKV_WKV6, Op.RWKV_WKV7,
                  Op.GATED_LINEAR_ATTN, Op.L2_NORM, Op.EXP):
            return all(_float_or_index(s) for s in node.srcs)
        if op in (Op.SSM_CONV, Op.SSM_SCAN):
            # float32 states, activations and weights; ggml sums a conv kernel of 16 or more otherwise
            floats = all(_float_or_index(s) for s in node.srcs)
            return floats and (op is Op.SSM_SCAN or node.srcs[2].shape[1] < 16)
        if op in _ELEMENTWISE:
            return all(_float_or_index(s) for s in node.srcs)
        return False

    def _weight_traits(self, weight: Node):
        """The C library's traits of ``weight``'s GGML type; None when the node is not a weight or
        its type id lies past the library's table."""
        type_id = int(weight.dtype)
        return self.lib.lc_traits[type_id] if weight.op is Op.WEIGHT and type_id < self.lib.LC_TYPE_COUNT else None

    # -- memory ---------------------------------------------------------------------------------

    def load_weights(self, weights: Sequence[WeightData]) -> None:
        """Copies the weights, GGUF blocks as they are, into one arena of 2 MB pages where the kernel
        gives them (:func:`huge_page_bytes`), else keeps the zero-copy views of the mapped file.
        Decode streams every weight once per token: from the file's 4 KB pages every page was a TLB
        miss, which held the prefetches up (Zen 4, a 55 MB Q4_K_M model's products, one thread:
        2.9 ms a token from the file's pages, 2.2 ms from 2 MB pages, llama.cpp's 2.7)."""
        offsets, total = [], 0
        for w in weights:
            offsets.append(total)
            total += -(-w.raw.nbytes // ALIGN) * ALIGN
        arena = huge_page_bytes(total) if total else None
        for w, offset in zip(weights, offsets):
            if arena is None:
                self._weights[w.name] = np.ascontiguousarray(w.raw)
                continue
            copy = arena[offset:offset + w.raw.nbytes].view(w.raw.dtype).reshape(w.raw.shape)
            copy[...] = w.raw
            copy.flags.writeable = False
            self._weights[w.name] = copy

    def compile(self, subgraph: Subgraph) -> Executable:
        for node in subgraph.caches:
            if node.name not in self._caches:
                # written through now, as llama.cpp clears its cache buffer: the pages are resident
                # from the start instead of RSS creeping up as sequences reach new cells
                dtype, shape = kv_types.storage(node.dtype, node.shape)
                self._caches[node.name] = np.full(shape, 0, dtype)
        missing = [w.name for w in subgraph.weights if w.name not in self._weights]
        if missing:
            raise BackendError(f"cpu_simd: weights {', '.join(missing[:3])} were not loaded onto this backend")
        program = Program(self.lib, self._pool, self.n_threads, subgraph, self._weights, self._caches)
        self._compute_bytes += program.arena_bytes
        return CompiledSubgraph(self, program)

    def cache_view(self, name: str) -> np.ndarray:
        return self._caches[name]

    def build_id(self) -> str:
        """The kernel library this instance runs (its ISA level and its sources' digest)."""
        return library_name(self.isa)

    def memory_used(self) -> dict[str, int]:
        return {
            "weights": sum(a.nbytes for a in self._weights.values()),
            "kv": sum(c.nbytes for c in self._caches.values()),
            "compute": self._compute_bytes,
        }

    # -- profiling ------------------------------------------------------------------------------

    def profile(self) -> tuple[dict[str, tuple[float, int]], int, int, tuple[float, float]]:
        """Seconds and calls per op type since the last reset (collected when LLMCORE_PROFILE=1:
        thread 0's time in the nodes), the program runs, the barriers they waited at, and thread 0's
        seconds waiting at them: for the others' shares of the work, and while another thread ran a
        serial phase (one token's norms, ropes, KV stores: the last thread at a barrier runs them)."""
        n_ops = self.lib.LC_OP_COUNT
        seconds, counts = ffi.new("double[]", n_ops), ffi.new("int64_t[]", n_ops)
        runs, waits = ffi.new("int64_t[2]"), ffi.new("double[2]")
        self.lib.lc_profile_get(seconds, counts, runs, waits)
        names = {getattr(self.lib, n): n[len("LC_OP_"):].lower()
                 for n in dir(self.lib) if n.startswith("LC_OP_") and n != "LC_OP_COUNT"}
        return ({names[k]: (seconds[k], counts[k]) for k in range(n_ops) if counts[k]}, runs[0], runs[1],
                (waits[0], waits[1]))

    def print_profile(self) -> None:
        stats, runs, barriers, (wait, serial_elsewhere) = self.profile()
        total = (sum(s for s, _ in stats.values()) + wait + serial_elsewhere) or 1.0
        print(f"cpu_simd profile ({self.isa}, {self.n_threads} threads; thread 0's time):")
        for name, (seconds, count) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
            print(f"  {name:<10} {seconds * 1e3:10.2f} ms {100 * seconds / total:5.1f}% {count:8d} calls")
        if runs:
            nodes = sum(count for _, count in stats.values())
            print(f"  {'barriers':<10} {wait * 1e3:10.2f} ms {100 * wait / total:5.1f}% waiting for the other threads' "
                  f"shares, {serial_elsewhere * 1e3:.2f} ms ({100 * serial_elsewhere / total:.1f}%) while another ran "
                  f"a serial phase")
            print(f"  {runs} runs: {nodes / runs:.1f} nodes and {barriers / runs:.1f} barriers per run")


class CompiledSubgraph(Executable):
    """A lowered program. ``run`` copies the inputs in, makes one C call and returns copies of the
    outputs, so they stay valid after the next run."""

    def __init__(self, backend: CpuSimdBackend, program: Program) -> None:
        self._backend = backend  # keeps the pool, weights and caches alive
        self._program = program
        self._n_ctx = max((c.shape[0] for c in backend._caches.values()), default=0)

    def run(self, inputs: Mapping[int, np.ndarray], n_kv: int) -> list[np.ndarray]:
        if self._n_ctx and not 0 <= n_kv <= self._n_ctx:
            raise BackendError(f"cpu_simd: n_kv {n_kv} is outside the cache of {self._n_ctx} cells")
        for node_id, buffer in self._program.inputs:
            buffer[...] = inputs[node_id]
        self._backend.lib.lc_graph_run(self._program.program, n_kv)
        return [out.copy() for out in self._program.outputs]
