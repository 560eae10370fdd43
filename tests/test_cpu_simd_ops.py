"""The cpu_simd backend op by op against the reference backend (the numerical oracle), on random
tensors of awkward shapes, at every ISA level this CPU supports and at odd thread counts.

Error bounds, relative to the largest magnitude of the reference result:
- mul_mat: 1e-5 (both round the activations identically; only the float summation order differs)
- get_rows, kv_store, add, mul, scale, rms_norm, norm: 1e-6 (the same float operations)
- silu, gelu, swiglu, geglu, tanh: 1e-5 (libm expf/tanhf against numpy's)
- rope: 2e-4 at positions up to 3000 (ggml's running product for the angles against the
  reference's cumulative product)
- attention: 2e-3 (a probability may round to the neighbouring f16 value)
"""

from __future__ import annotations

import numpy as np
import pytest
from llmcore.graph.backend import Subgraph, WeightData
from llmcore.backends.reference import ReferenceBackend
from llmcore.gguf import GGMLType
from llmcore.quants import quantize_rows
from llmcore.graph.builder import GraphBuilder, RopeParams
from llmcore.graph.ir import F16, F32, I32, Node, Op

cpu_simd = pytest.importorskip("llmcore_cpu_simd", reason="the cpu_simd plugin is not installed")
gguf = pytest.importorskip("gguf")

from llmcore_cpu_simd import CpuSimdBackend  # noqa: E402
from llmcore_cpu_simd.isa import cpu_flags, supported_levels  # noqa: E402

_status = CpuSimdBackend.probe()
if not _status.usable:
    pytest.skip(f"cpu_simd cannot run here: {_status.reason}", allow_module_level=True)

LEVELS = supported_levels()
RNG = np.random.default_rng(1234)


@pytest.fixture(scope="module", params=[(level, threads) for level in LEVELS for threads in (1, 3)],
                ids=lambda p: f"{p[0]}-t{p[1]}")
def backend_factory(request):
    level, threads = request.param
    return lambda: CpuSimdBackend(n_threads=threads, isa_level=level)


def run_graph(backend, build, feeds: dict[str, np.ndarray], weights: dict[str, np.ndarray] | None = None,
              n_kv: int = 0) -> np.ndarray:
    """Build a small graph with ``build(g) -> node``, compile it on ``backend`` and run it once."""
    g = GraphBuilder(1, 1)
    out = build(g)
    graph = g.build({"out": out})
    inputs = [n for n in graph.nodes if n.op is Op.INPUT]
    subgraph = Subgraph([n for n in graph.nodes if not n.is_leaf], inputs, [out], graph.weights, graph.caches)
    backend.load_weights([WeightData(n.name, n.dtype, n.shape, (weights or {})[n.name]) for n in graph.weights])
    by_name = {n.name: n for n in inputs}
    return backend.compile(subgraph).run({by_name[k].id: v for k, v in feeds.items()}, n_kv)[0]


def check(factory, build, feeds, weights=None, bound=1e-6, n_kv=0):
    ours = run_graph(factory(), build, feeds, weights, n_kv).astype(np.float32)
    ref = run_graph(ReferenceBackend(), build, feeds, weights, n_kv).astype(np.float32)
    assert ours.shape == ref.shape
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(ours - ref).max())
    assert err <= bound * scale, f"max error {err:.3g} > {bound:g} x {scale:.3g}"


def randn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


WEIGHT_TYPES = [GGMLType.Q4_1, GGMLType.Q8_0, GGMLType.F16, GGMLType.F32]


@pytest.mark.parametrize("w_type", WEIGHT_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("m, k, n", [(1, 64, 1), (1, 96, 7), (5, 160, 33), (33, 576, 45)])
def test_mul_mat(backend_factory, w_type, m, k, n):
    raw = gguf.quantize(randn(n, k), w_type)
    x = randn(m, k) * 3
    check(backend_factory, lambda g: g.mul_mat(g.weight("w", (n, k), w_type), g.input("x", (m, k), F32)),
          {"x": x}, {"w": raw}, bound=1e-5)


SHORT_BATCH_TYPES = [GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q3_K, GGMLType.Q2_K, GGMLType.IQ4_XS,
                     GGMLType.Q4_0, GGMLType.IQ4_NL]


@pytest.mark.parametrize("w_type", SHORT_BATCH_TYPES, ids=lambda t: t.name)
def test_short_batch_products_keep_the_one_token_and_gemm_bits(backend_factory, w_type):
    """A batch of 2-7 tokens (short of the tiled kernel's 8) gives each token the bits a one-token
    product gives it, but for a weight llama.cpp repacks (Q4_K with rows a multiple of 8; Q2_K too
    where the CPU has AVX-512), whose groups of four tokens take its GEMM's order, as the same tokens
    do in a batch of 8 (the packed GEMM)."""
    n, k = 48, 512
    repacked = {GGMLType.Q4_K} | ({GGMLType.Q2_K} if "avx512f" in cpu_flags() else set())
    raw = quantize_rows(w_type, randn(n, k))
    x = randn(8, k) * 3
    product = lambda m: (lambda g: g.mul_mat(g.weight("w", (n, k), w_type), g.input("x", (m, k), F32)))  # noqa: E731
    run = lambda rows: run_graph(backend_factory(), product(len(rows)), {"x": rows}, {"w": raw})  # noqa: E731
    one_token = np.concatenate([run(x[t:t + 1]) for t in range(8)])
    gemm = run(x)  # 8 tokens: Q4_K's two groups of four in the GEMM's order
    for m in (2, 3, 4, 5, 7):
        got = run(x[:m])
        grouped = m - m % 4 if w_type in repacked else 0
        want = np.concatenate([gemm[:grouped], one_token[grouped:m]])
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"{m} tokens"
    if w_type in repacked:  # the two orders differ here, or the test could not tell them apart
        assert not np.array_equal(gemm[:4], one_token[:4])


def program_ops(factory, build, weights: dict[str, np.ndarray]) -> list[int]:
    """The C ops of the program ``build(g)`` compiles to on a backend from ``factory``."""
    g = GraphBuilder(1, 1)
    out = build(g)
    graph = g.build({"out": out})
    subgraph = Subgraph([n for n in graph.nodes if not n.is_leaf], [n for n in graph.nodes if n.op is Op.INPUT],
                        [out], graph.weights, graph.caches)
    backend = factory()
    backend.load_weights([WeightData(w.name, w.dtype, w.shape, weights[w.name]) for w in graph.weights])
    program = backend.compile(subgraph)._program.program
    return [program.nodes[i].op for i in range(program.n_nodes)]


@pytest.mark.parametrize("w_type", [GGMLType.F16, GGMLType.Q4_1, GGMLType.Q4_K, GGMLType.F32], ids=lambda t: t.name)
@pytest.mark.parametrize("m", [1, 5, 40])
def test_bias_add_folds_into_the_product_with_the_same_bits(backend_factory, w_type, m):
    """A product plus a bias row is one kernel call (the ADD step folded into MUL_MAT) whose every
    output is the product's own float plus the bias, as a separate ADD rounds it: the one-token GEMV,
    the register tiles, the K-quants' packed GEMM and the f16 GEMM's store."""
    k, n = 256, 40
    rng = np.random.default_rng(m)  # its own draws: the shared RNG's sequence stays the other tests'
    raw = quantize_rows(w_type, rng.standard_normal((n, k), np.float32))
    x, bias = rng.standard_normal((m, k), np.float32) * 3, rng.standard_normal(n, np.float32)
    weights, feeds = {"w": raw, "b": bias}, {"x": x}
    product = lambda g: g.mul_mat(g.weight("w", (n, k), w_type), g.input("x", (m, k), F32))  # noqa: E731
    plain = run_graph(backend_factory(), product, feeds, weights)
    biased = lambda g: g.add(product(g), g.weight("b", (n,), GGMLType.F32))  # noqa: E731
    np.testing.assert_array_equal(run_graph(backend_factory(), biased, feeds, weights).view(np.uint32),
                                  (plain + bias).view(np.uint32))
    ops = program_ops(backend_factory, biased, weights)
    lib = backend_factory().lib
    assert lib.LC_OP_ADD not in ops and lib.LC_OP_MUL_MAT in ops


@pytest.mark.parametrize("norm", ["norm", "rms_norm"])
def test_norm_weight_and_bias_fold_into_the_norm_with_the_same_bits(backend_factory, norm):
    """A norm times its weight row plus its bias row (LayerNorm; RMSNorm without the bias) is one
    NORM step whose values are the separate MUL's and ADD's float operations on the norm's."""
    cols = 96
    rng = np.random.default_rng(96)
    x, w, b = (rng.standard_normal(shape, np.float32) for shape in ((7, cols), cols, cols))
    weights, feeds = {"w": w, "b": b}, {"x": x}
    normed = lambda g: getattr(g, norm)(g.input("x", (7, cols), F32), 1e-5)  # noqa: E731
    scaled = lambda g: g.mul(normed(g), g.weight("w", (cols,), GGMLType.F32))  # noqa: E731
    shifted = lambda g: g.add(scaled(g), g.weight("b", (cols,), GGMLType.F32))  # noqa: E731
    plain = run_graph(backend_factory(), normed, feeds, weights)
    for build, want in ((scaled, plain * w), (shifted, plain * w + b)):
        got = run_graph(backend_factory(), build, feeds, weights)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        lib = backend_factory().lib
        assert program_ops(backend_factory, build, weights) == [lib.LC_OP_NORM if norm == "norm" else lib.LC_OP_RMS_NORM]


def test_shared_activation_quantization(backend_factory):
    """Two matmuls read the same activations (quantized once) and feed one add."""
    wa, wb = gguf.quantize(randn(40, 64), GGMLType.Q4_1), gguf.quantize(randn(40, 64), GGMLType.Q4_1)

    def build(g):
        x = g.input("x", (3, 64), F32)
        return g.add(g.mul_mat(g.weight("a", (40, 64), GGMLType.Q4_1), x),
                     g.mul_mat(g.weight("b", (40, 64), GGMLType.Q4_1), x))

    check(backend_factory, build, {"x": randn(3, 64)}, {"a": wa, "b": wb}, bound=1e-5)


@pytest.mark.parametrize("table_type", WEIGHT_TYPES, ids=lambda t: t.name)
def test_get_rows_from_weights(backend_factory, table_type):
    raw = gguf.quantize(randn(70, 96), table_type)
    ids = np.array([69, 0, 5, 5, 33], np.int32)
    check(backend_factory, lambda g: g.get_rows(g.weight("t", (70, 96), table_type), g.input("i", (5,), I32)),
          {"i": ids}, {"t": raw})


def test_get_rows_from_activations(backend_factory):
    check(backend_factory, lambda g: g.get_rows(g.input("x", (33, 50), F32), g.input("i", (2,), I32)),
          {"x": randn(33, 50), "i": np.array([32, 4], np.int32)})


@pytest.mark.parametrize("shape_a, shape_b", [((33, 77), (77,)), ((1, 5), (1, 5)), ((3, 4, 6), (4, 6))])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_broadcast_binary(backend_factory, op, shape_a, shape_b):
    check(backend_factory, lambda g: getattr(g, op)(g.input("a", shape_a, F32), g.input("b", shape_b, F32)),
          {"a": randn(*shape_a), "b": randn(*shape_b)})


def test_mul_by_f32_weight(backend_factory):
    check(backend_factory, lambda g: g.mul(g.input("a", (3, 40), F32), g.weight("w", (40,), GGMLType.F32)),
          {"a": randn(3, 40)}, {"w": randn(40)})


@pytest.mark.parametrize("shape", [(1, 576), (33, 61)])
@pytest.mark.parametrize("op, bound", [("rms_norm", 1e-6), ("norm", 1e-6), ("scale", 1e-6), ("silu", 1e-5),
                                       ("gelu", 1e-5)])
def test_unary(backend_factory, op, bound, shape):
    def build(g):
        x = g.input("x", shape, F32)
        if op in ("rms_norm", "norm"):
            return getattr(g, op)(x, 1e-5)
        return g.scale(x, 0.37) if op == "scale" else getattr(g, op)(x)

    check(backend_factory, build, {"x": randn(*shape) * 4}, bound=bound)


@pytest.mark.parametrize("op", ["swiglu", "geglu"])
def test_gated(backend_factory, op):
    check(backend_factory, lambda g: getattr(g, op)(g.input("a", (33, 97), F32), g.input("b", (33, 97), F32)),
          {"a": randn(33, 97) * 4, "b": randn(33, 97)}, bound=1e-5)


ROPES = {
    "normal": RopeParams(n_rot=64, freq_base=100000.0),
    "neox-partial": RopeParams(n_rot=32, neox=True),
    "yarn": RopeParams(n_rot=64, freq_scale=0.25, ext_factor=1.0, attn_factor=1.0, n_ctx_orig=4096),
}


def test_rope_with_frequency_factors(backend_factory):
    factors = np.linspace(1.0, 8.0, 32).astype(np.float32)
    check(backend_factory,
          lambda g: g.rope(g.input("x", (3, 2, 64), F32), g.input("p", (3,), I32), ROPES["normal"],
                           g.weight("f", (32,), GGMLType.F32)),
          {"x": randn(3, 2, 64), "p": np.array([0, 5, 700], np.int32)}, {"f": factors}, bound=1e-4)


@pytest.mark.parametrize("name", ROPES)
def test_rope(backend_factory, name):
    positions = np.array([0, 1, 17, 999, 3000], np.int32)
    check(backend_factory,
          lambda g: g.rope(g.input("x", (5, 3, 64), F32), g.input("p", (5,), I32), ROPES[name]),
          {"x": randn(5, 3, 64), "p": positions}, bound=2e-4)


def _attention_graph(n: int, n_head: int, n_head_kv: int, head_dim: int, n_ctx: int, cache_type: str,
                     max_bias: float = 0.0, softcap: float = 0.0):
    def build(g: GraphBuilder) -> Node:
        width = n_head_kv * head_dim
        cells = g.input("cells", (n,), I32)
        k = g.kv_store(g.cache("k", (n_ctx, width), cache_type), g.input("kx", (n, width), F32), cells)
        v = g.kv_store(g.cache("v", (n_ctx, width), cache_type), g.input("vx", (n, width), F32), cells)
        return g.attention(g.input("q", (n, n_head, head_dim), F32), k, v, g.input("mask", (n, n_ctx), F32),
                           1 / np.sqrt(head_dim), max_bias=max_bias, softcap=softcap)
    return build


@pytest.mark.parametrize("cache_type", [F16, F32])
@pytest.mark.parametrize("n, n_head, n_head_kv, head_dim", [(1, 9, 3, 64), (33, 4, 4, 40), (5, 6, 2, 24)])
def test_attention(backend_factory, cache_type, n, n_head, n_head_kv, head_dim):
    n_ctx = 48
    cells = RNG.permutation(n_ctx)[:n].astype(np.int32)
    n_kv = int(cells.max()) + 1
    mask = np.where(RNG.random((n, n_ctx)) < 0.7, 0.0, -np.inf).astype(np.float32)
    mask[np.arange(n), cells] = 0.0  # every token sees at least itself
    mask[:, n_kv:] = -np.inf
    feeds = {"cells": cells, "kx": randn(n, n_head_kv * head_dim), "vx": randn(n, n_head_kv * head_dim),
             "q": randn(n, n_head, head_dim) * 2, "mask": mask}
    check(backend_factory, _attention_graph(n, n_head, n_head_kv, head_dim, n_ctx, cache_type), feeds,
          bound=2e-3, n_kv=n_kv)


def _attention_on_both(backend, n_head: int, n_head_kv: int, head_dim: int, mask: np.ndarray,
                       max_bias: float = 0.0, softcap: float = 0.0, flash: bool = True,
                       n_kv: int | None = None) -> list[np.ndarray]:
    """Attention (flash or not) of len(mask) queries over f16 caches of mask.shape[1] random cells,
    n_kv of them in use (all by default), on ``backend`` and on the reference backend: their results."""
    n, n_ctx = mask.shape
    feeds = {"q": randn(n, n_head, head_dim) * 2, "mask": mask}
    cells = randn(n_ctx, n_head_kv * head_dim), randn(n_ctx, n_head_kv * head_dim)
    results = []
    for each in (backend, ReferenceBackend()):
        g = GraphBuilder(1, 1)
        k, v = (g.cache(name, (n_ctx, n_head_kv * head_dim), F16) for name in "kv")
        out = g.attention(g.input("q", (n, n_head, head_dim), F32), k, v, g.input("mask", (n, n_ctx), F32),
                          1 / np.sqrt(head_dim), flash=flash, max_bias=max_bias, softcap=softcap)
        graph = g.build({"out": out})
        sub = Subgraph([x for x in graph.nodes if not x.is_leaf], list(graph.inputs.values()), [out], [], graph.caches)
        executable = each.compile(sub)
        for name, values in zip("kv", cells):
            each.cache_view(name)[...] = values
        results.append(executable.run({graph.inputs[k].id: v for k, v in feeds.items()}, n_kv or n_ctx)[0])
    return results


@pytest.mark.parametrize("head_dim", [64, 40, 76])  # the V sums' 64-value register blocks, 8s, and a scalar tail
@pytest.mark.parametrize("encoder_mask", [False, True])  # cells hidden at random, or an encoder's mask of zeros
def test_flash_attention_of_a_long_batch_equals_the_reference_bit_for_bit(backend_factory, head_dim, encoder_mask):
    """70 queries take ggml's tiled flash attention (two 64-cell tiles, the second short, f16 caches):
    cpu_simd's vector paths give the reference backend's bits, for head sizes its V sums run in
    64-value blocks, in 8s and value by value, with a mask hiding cells and with one of zeros only."""
    mask = np.where(RNG.random((70, 80)) < 0.9, 0.0, -np.inf).astype(np.float32)
    mask[:, :1] = 0.0
    if encoder_mask:
        mask[...] = 0.0
    np.testing.assert_array_equal(*_attention_on_both(backend_factory(), 4, 2, head_dim, mask))


@pytest.mark.parametrize("n_head, head_dim", [(8, 128), (6, 64), (2, 64)])  # 4 + 4 heads a KV head, 3, 1
@pytest.mark.parametrize("max_bias", [0.0, 8.0])
def test_one_querys_flash_attention_equals_the_reference_bit_for_bit(backend_factory, n_head, head_dim, max_bias):
    """One query's flash attention (ggml's one-row path: each head's online softmax cell by cell, its
    V sums in f16) over 61 of 80 cells, some hidden: cpu_simd's blocks of cells (a KV head's query
    heads' V sums held in registers, 64 values at a time) give the reference backend's bits, with
    ALiBi's slopes too."""
    mask = np.where(RNG.random((1, 80)) < 0.8, 0.0, -np.inf).astype(np.float32)
    mask[0, :2] = 0.0
    mask[0, 61:] = -np.inf
    if max_bias:
        mask[0, :61] -= np.arange(61, 0, -1, dtype=np.float32) * (mask[0, :61] == 0)
    got, want = _attention_on_both(backend_factory(), n_head, 2, head_dim, mask, max_bias)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("n_head, head_dim", [(12, 128), (6, 64), (2, 64)])  # 4 + 2 heads a KV head, 3, 1
@pytest.mark.parametrize("window", [(2, 61, 80), (70, 250, 320)])  # visible cells first..last of n_ctx
@pytest.mark.parametrize("max_bias, softcap", [(0.0, 0.0), (8.0, 0.0), (0.0, 1.5)])
def test_one_querys_attention_equals_the_reference_bit_for_bit(backend_factory, n_head, head_dim, window, max_bias,
                                                               softcap):
    """One query without flash attention (ggml_vec_dot_f16's order: K q and V^T p, each sum over
    cells in 64 lanes): cpu_simd's vector path (the cells taken 64 at a time from the first visible
    one's, V sums held in registers) gives the reference backend's bits, with cells hidden at random,
    the visible ones past the first 64 or not, ALiBi's slopes and Gemma 2's soft cap, and reads no
    cell past the n_kv in use (the mask shows them visible there, the cache holds other values)."""
    first, last, n_ctx = window
    mask = np.full((1, n_ctx), -np.inf, np.float32)
    mask[0, first:last + 1] = np.where(RNG.random(last + 1 - first) < 0.8, 0.0, -np.inf)
    mask[0, [first, last]] = 0.0
    if max_bias:
        mask[0] -= np.abs(np.arange(n_ctx, dtype=np.float32) - last) * (mask[0] == 0)
    mask[0, last + 1:] = 0.0  # past the n_kv cells in use the mask is no guide: attention must not look there
    got, want = _attention_on_both(backend_factory(), n_head, 2, head_dim, mask, max_bias, softcap, flash=False,
                                   n_kv=last + 1)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("n, n_head", [(1, 4), (9, 6)])  # 6 heads: slopes past the largest power of two
def test_attention_with_alibi(backend_factory, n, n_head):
    """ALiBi: the mask holds -|distance| where visible, which each head scales by its slope."""
    n_ctx, head_dim = 32, 16
    cells = np.arange(n, dtype=np.int32) + 3
    n_kv = int(cells.max()) + 1
    distance = np.abs(cells[:, None] - np.arange(n_ctx)[None, :]).astype(np.float32)
    mask = np.where(np.arange(n_ctx)[None, :] <= cells[:, None], -distance, -np.inf).astype(np.float32)
    feeds = {"cells": cells, "kx": randn(n, n_head * head_dim), "vx": randn(n, n_head * head_dim),
             "q": randn(n, n_head, head_dim) * 2, "mask": mask}
    check(backend_factory, _attention_graph(n, n_head, n_head, head_dim, n_ctx, F16, max_bias=8.0), feeds,
          bound=2e-3, n_kv=n_kv)


@pytest.mark.parametrize("n", [1, 12])
def test_attention_soft_capped_in_a_sliding_window(backend_factory, n):
    """Gemma 2: scores capped to 1.5 * tanh(score / 1.5); each token sees the last 4 positions only
    (so neighbouring tokens of one sequence see different first cells, and still count as batched)."""
    n_ctx, head_dim, n_head = 32, 32, 4
    cells = np.arange(n, dtype=np.int32) + 2
    cell = np.arange(n_ctx)[None, :]
    mask = np.where((cell <= cells[:, None]) & (cells[:, None] - cell < 4), 0.0, -np.inf).astype(np.float32)
    feeds = {"cells": cells, "kx": randn(n, 2 * head_dim), "vx": randn(n, 2 * head_dim),
             "q": randn(n, n_head, head_dim) * 4, "mask": mask}
    check(backend_factory, _attention_graph(n, n_head, 2, head_dim, n_ctx, F16, softcap=1.5), feeds,
          bound=2e-3, n_kv=int(cells.max()) + 1)


def test_tanh(backend_factory):
    check(backend_factory, lambda g: g.tanh(g.input("x", (33, 61), F32)), {"x": randn(33, 61) * 3}, bound=1e-5)


def test_clamp(backend_factory):
    check(backend_factory, lambda g: g.clamp(g.input("x", (33, 61), F32), -1.5, 2.0), {"x": randn(33, 61) * 4})


@pytest.mark.parametrize("cache_type", [F16, F32])
def test_kv_store_writes_the_cache(backend_factory, cache_type):
    backend = backend_factory()
    x = randn(3, 20)
    cells = np.array([7, 0, 4], np.int32)
    run_graph(backend, lambda g: g.kv_store(g.cache("c", (8, 20), cache_type), g.input("x", (3, 20), F32),
                                            g.input("cells", (3,), I32)), {"x": x, "cells": cells})
    cache = backend.cache_view("c")
    assert cache.dtype == (np.float16 if cache_type == F16 else np.float32)
    np.testing.assert_array_equal(cache[cells], x.astype(cache.dtype))
    np.testing.assert_array_equal(cache[[1, 2, 3, 5, 6]], 0)


def test_runs_reuse_buffers_without_leaking_state():
    """A compiled graph gives the same answer on every run and outputs survive the next run."""
    backend = CpuSimdBackend(n_threads=2)
    raw = gguf.quantize(randn(16, 64), GGMLType.Q4_1)
    g = GraphBuilder(1, 1)
    x = g.input("x", (2, 64), F32)
    projected = g.mul_mat(g.weight("w", (16, 64), GGMLType.Q4_1), g.rms_norm(x, 1e-5))
    out = g.silu(g.add(projected, g.input("b", (16,), F32)))
    graph = g.build({"out": out})
    backend.load_weights([WeightData("w", GGMLType.Q4_1, (16, 64), raw)])
    inputs = list(graph.inputs.values())
    program = backend.compile(Subgraph([n for n in graph.nodes if not n.is_leaf], inputs, [out], graph.weights, []))
    feeds_a = {graph.inputs["x"].id: randn(2, 64), graph.inputs["b"].id: randn(16)}
    feeds_b = {graph.inputs["x"].id: randn(2, 64), graph.inputs["b"].id: randn(16)}
    first = program.run(feeds_a, 0)[0]
    first_copy = first.copy()
    program.run(feeds_b, 0)
    np.testing.assert_array_equal(first, first_copy)
    np.testing.assert_array_equal(program.run(feeds_a, 0)[0], first_copy)


def test_supports_op_rejects_what_it_cannot_run():
    backend = CpuSimdBackend(n_threads=1)
    g = GraphBuilder(1, 1)
    odd = g.mul_mat(g.weight("w", (4, 48), GGMLType.Q4_1), g.input("x", (1, 48), F32))  # 48 % 32 != 0
    assert not backend.supports_op(odd)
    ok = g.mul_mat(g.weight("v", (4, 64), GGMLType.Q4_1), g.input("y", (1, 64), F32))
    assert backend.supports_op(ok)
