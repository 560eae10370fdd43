"""The Vulkan backend against the reference backend (the numerical oracle), op by op on random
tensors of awkward shapes, plus its device, memory and command-buffer behaviour. Runs wherever a
Vulkan driver is installed (CI installs Mesa's lavapipe); end-to-end parity with llama.cpp is
test_goldens.py's, which covers every usable backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gguf.quants as gguf_quants
from llmcore.graph.backend import Subgraph, WeightData
from llmcore.backends.reference import ReferenceBackend
from llmcore.gguf import GGMLType
from llmcore.graph.builder import GraphBuilder, RopeParams
from llmcore.graph.ir import F16, F32, I32, Op

llmcore_vulkan = pytest.importorskip("llmcore_vulkan", reason="the llmcore-vulkan plugin is not installed")
from llmcore_vulkan.backend import VulkanBackend, VulkanExecutable  # noqa: E402
from llmcore_vulkan.gpu import STAGING_ENV  # noqa: E402
from llmcore_vulkan.lowering import EXACT_MUL_MAT  # noqa: E402

STATUS = VulkanBackend.probe()
pytestmark = pytest.mark.skipif(not STATUS.usable, reason=f"Vulkan is unavailable: {STATUS.reason}")

rng = np.random.default_rng(1234)


@pytest.fixture(scope="module")
def vulkan():
    return VulkanBackend()


def make_weight(name: str, w_type: GGMLType, rows: int, cols: int) -> WeightData:
    """Random weights in GGUF's raw layout: legacy quants through gguf's quantizer, K-quants as
    random blocks with realistic f16 super-block scales."""
    values = rng.standard_normal((rows, cols)).astype(np.float32)
    if w_type == GGMLType.F32:
        raw = values
    elif w_type == GGMLType.F16:
        raw = values.astype(np.float16)
    elif w_type in (GGMLType.Q4_K, GGMLType.Q6_K):
        block = 144 if w_type == GGMLType.Q4_K else 210
        blocks = rng.integers(0, 256, (rows, cols // 256, block), dtype=np.uint8)
        scales = rng.uniform(0.002, 0.02, (rows, cols // 256, 2)).astype(np.float16).view(np.uint8)
        if w_type == GGMLType.Q4_K:
            blocks[:, :, 0:4] = scales  # d, dmin
        else:
            blocks[:, :, 208:210] = scales[:, :, 0:2]  # d
        raw = blocks.reshape(rows, -1)
    else:
        raw = gguf_quants.quantize(values, w_type)
    return WeightData(name, w_type, (rows, cols), raw)


def run_both(backend, build, feeds: dict[str, np.ndarray], weights=(), n_kv: int = 0, steps=None, reference=None):
    """Build a graph with ``build(g) -> output node`` and run it on the reference backend (a new
    one unless given) and on ``backend``; returns [(reference, vulkan)] per step (``steps``: a
    list of (feeds, n_kv)), or the pair itself without ``steps``."""
    n = next(iter(feeds.values())).shape[0]
    g = GraphBuilder(n, n)
    out = build(g)
    graph = g.build({"out": out})
    sub = Subgraph([x for x in graph.nodes if not x.is_leaf], [x for x in graph.nodes if x.op is Op.INPUT],
                   [out], graph.weights, graph.caches)
    results = []
    executables = []
    for b in (reference or ReferenceBackend(), backend):
        b.load_weights(list(weights))
        executables.append(b.compile(sub))
    for step_feeds, step_n_kv in steps or [(feeds, n_kv)]:
        by_id = {graph.inputs[k].id: v for k, v in step_feeds.items()}
        results.append(tuple(ex.run(by_id, step_n_kv)[0] for ex in executables))
    return results if steps else results[0]


def assert_close(ours: np.ndarray, ref: np.ndarray, rel: float) -> None:
    assert ours.shape == ref.shape and ours.dtype == np.float32
    err = np.abs(ours - ref).max()
    assert err <= rel * max(1.0, np.abs(ref).max()), f"max error {err} vs max |ref| {np.abs(ref).max()}"


# -- device ---------------------------------------------------------------------------------------

def test_probe_describes_the_device():
    device = STATUS.devices[0]
    assert device.kind in ("cpu", "gpu", "igpu", "accel")
    assert device.memory_total > 0
    assert any(f.startswith("vulkan ") for f in device.features)
    assert any(f.startswith("subgroup ") for f in device.features)


def test_probe_names_a_missing_device(monkeypatch):
    monkeypatch.setenv("LLMCORE_VULKAN_DEVICE", "99")
    status = VulkanBackend.probe()
    assert not status.usable and "LLMCORE_VULKAN_DEVICE=99 names no Vulkan device" in status.reason


# -- matrix products and lookups ------------------------------------------------------------------

COLS = {GGMLType.F32: 96, GGMLType.F16: 96, GGMLType.Q4_0: 96, GGMLType.Q4_1: 96, GGMLType.Q8_0: 96,
        GGMLType.Q4_K: 512, GGMLType.Q6_K: 512}


@pytest.mark.parametrize("w_type", list(COLS), ids=lambda t: t.name)
@pytest.mark.parametrize("rows,n", [(37, 1), (37, 33), (1, 33), (5, 8)])
def test_mul_mat(vulkan, w_type, rows, n):
    cols = COLS[w_type]
    weight = make_weight(f"mm.{w_type.name}.{rows}.{n}", w_type, rows, cols)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    ref, ours = run_both(vulkan, lambda g: g.mul_mat(g.weight(weight.name, (rows, cols), w_type),
                                                     g.input("x", (n, cols), F32)), {"x": x}, [weight])
    if w_type in EXACT_MUL_MAT and vulkan.target.exact:
        np.testing.assert_array_equal(ours, ref)  # llama.cpp's order: 8 float lanes, fused
    else:
        # activations are rounded to q8 / f16 exactly as the reference does: only the order of the
        # float sums differs
        assert_close(ours, ref, 2e-5 if w_type in (GGMLType.F32, GGMLType.F16) else 1e-5)


@pytest.mark.parametrize("w_type", list(COLS), ids=lambda t: t.name)
def test_get_rows_of_weights(vulkan, w_type):
    cols = COLS[w_type]
    weight = make_weight(f"rows.{w_type.name}", w_type, 11, cols)
    ids = np.array([3, 0, 10, 3, 7], np.int32)
    ref, ours = run_both(vulkan, lambda g: g.get_rows(g.weight(weight.name, (11, cols), w_type),
                                                      g.input("ids", (5,), I32)), {"ids": ids}, [weight])
    np.testing.assert_array_equal(ours, ref)


def test_get_rows_of_activations(vulkan):
    x = rng.standard_normal((33, 577)).astype(np.float32)
    ids = np.array([32, 0, 5], np.int32)
    ref, ours = run_both(vulkan, lambda g: g.get_rows(g.scale(g.input("x", (33, 577), F32), 2.0),
                                                      g.input("ids", (3,), I32)), {"x": x, "ids": ids})
    np.testing.assert_array_equal(ours, ref)


# -- element-wise ops and norms -------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 33])
def test_elementwise_ops(vulkan, n):
    cols = 577
    feeds = {name: rng.standard_normal((n, cols)).astype(np.float32) * 4 for name in ("a", "b")}
    feeds["row"] = rng.standard_normal(cols).astype(np.float32)
    cases = {
        "add": lambda g, a, b, r: g.add(a, r),
        "mul": lambda g, a, b, r: g.mul(a, r),
        "add_same_shape": lambda g, a, b, r: g.add(a, b),
        "scale": lambda g, a, b, r: g.scale(a, 0.125),
        "silu": lambda g, a, b, r: g.silu(a),
        "gelu": lambda g, a, b, r: g.gelu(a),
        "swiglu": lambda g, a, b, r: g.swiglu(a, b),
        "geglu": lambda g, a, b, r: g.geglu(a, b),
    }
    for name, op in cases.items():
        def build(g, op=op):
            return op(g, g.input("a", (n, cols), F32), g.input("b", (n, cols), F32), g.input("row", (cols,), F32))
        ref, ours = run_both(vulkan, build, feeds)
        if name in ("silu", "swiglu") and vulkan.target.exact:
            np.testing.assert_array_equal(ours, ref, err_msg=name)  # ggml's expf, fused as its build fuses
        elif name in ("gelu", "geglu"):
            # ggml's f16 table: another tanh may round to the next f16 (2^-10 relative), and
            # 1 + tanh(u) near tanh's saturation is a difference of float32 ulps
            bound = np.abs(ref) * 2.0**-10 + 1e-6 * np.abs(feeds["b"]).max()
            assert np.all(np.abs(ours - ref) <= bound), name
        else:
            assert_close(ours, ref, 2e-6)


def test_broadcast_over_three_axes(vulkan):
    a = rng.standard_normal((3, 4, 24)).astype(np.float32)
    b = rng.standard_normal((4, 24)).astype(np.float32)
    ref, ours = run_both(vulkan, lambda g: g.mul(g.input("a", (3, 4, 24), F32), g.input("b", (4, 24), F32)),
                         {"a": a, "b": b})
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("op", ["rms_norm", "norm"])
@pytest.mark.parametrize("n,cols", [(1, 576), (33, 577), (2, 3)])
def test_norms(vulkan, op, n, cols):
    x = (rng.standard_normal((n, cols)) * 3 + 1).astype(np.float32)
    ref, ours = run_both(vulkan, lambda g: getattr(g, op)(g.input("x", (n, cols), F32), 1e-5), {"x": x})
    # rms_norm sums in column order, in double, as ggml; norm's variance the reference takes in
    # ggml_vec_cvar_f32's AVX-512 lanes, an order the shader does not follow (a few ulps)
    if vulkan.target.exact and op == "rms_norm":
        np.testing.assert_array_equal(ours, ref)
    else:
        assert_close(ours, ref, 1e-5)


ROPES = {
    "normal": RopeParams(n_rot=64),
    "neox_partial": RopeParams(n_rot=32, neox=True, freq_base=500000.0),
    "yarn": RopeParams(n_rot=64, neox=True, freq_scale=0.25, ext_factor=1.0, attn_factor=1.0, n_ctx_orig=4096),
}


@pytest.mark.parametrize("name", list(ROPES))
@pytest.mark.parametrize("n", [1, 33])
def test_rope(vulkan, name, n):
    """The angles come from the host (rope_cos_sin: the C library's cosf/sinf, as llama.cpp), far
    positions included; the rotation is fused as ggml's build fuses it."""
    x = rng.standard_normal((n, 3, 64)).astype(np.float32)
    positions = rng.integers(0, 8000, n).astype(np.int32)
    ref, ours = run_both(vulkan, lambda g: g.rope(g.input("x", (n, 3, 64), F32), g.input("pos", (n,), I32), ROPES[name]),
                         {"x": x, "pos": positions})
    if vulkan.target.exact:
        np.testing.assert_array_equal(ours, ref)
    else:
        assert_close(ours, ref, 2e-6)


# -- KV cache and attention -----------------------------------------------------------------------

N_CTX, N_HEAD, N_HEAD_KV, HEAD_DIM = 64, 6, 2, 32
WIDTH = N_HEAD_KV * HEAD_DIM


def attention_graph(cache_type):
    def build(g):
        n = g.n_tokens
        q = g.input("q", (n, N_HEAD, HEAD_DIM), F32)
        cells = g.input("cells", (n,), I32)
        k = g.kv_store(g.cache(f"k.{cache_type}", (N_CTX, WIDTH), cache_type), g.input("k", (n, WIDTH), F32), cells)
        v = g.kv_store(g.cache(f"v.{cache_type}", (N_CTX, WIDTH), cache_type), g.input("v", (n, WIDTH), F32), cells)
        return g.attention(q, k, v, g.input("mask", (n, N_CTX), F32), 1 / math.sqrt(HEAD_DIM))
    return build


def attention_step(start: int, n: int) -> tuple[dict[str, np.ndarray], int]:
    """Tokens at positions start.. in cells start.., attending causally to every earlier cell."""
    cells = np.arange(start, start + n, dtype=np.int32)
    mask = np.full((n, N_CTX), -np.inf, np.float32)
    for i, cell in enumerate(cells):
        mask[i, :cell + 1] = 0
    feeds = {"q": rng.standard_normal((n, N_HEAD, HEAD_DIM)).astype(np.float32) * 2,
             "k": rng.standard_normal((n, WIDTH)).astype(np.float32) * 2,
             "v": rng.standard_normal((n, WIDTH)).astype(np.float32),
             "cells": cells, "mask": mask}
    return feeds, start + n


def run_attention_steps(backend, cache_type, n):
    """A prompt of n tokens, then two single-token steps through the same plan shape."""
    reference = ReferenceBackend()
    prompt = [attention_step(0, n)]
    results = run_both(backend, attention_graph(cache_type), prompt[0][0], steps=prompt, reference=reference)
    single = [attention_step(n, 1), attention_step(n + 1, 1)]
    return results + run_both(backend, attention_graph(cache_type), single[0][0], steps=single, reference=reference)


@pytest.mark.parametrize("cache_type", [F16, F32])
def test_kv_store_and_attention(vulkan, cache_type):
    ref_backend_results = run_attention_steps(vulkan, cache_type, 33)
    for ref, ours in ref_backend_results:
        # F16 caches: tinyBLAS's order for the prompt, vec_dot_f16's for single tokens; an F32 cache's
        # scores the reference takes in ggml_vec_dot_f32's compiled order, which the shader does not follow
        if vulkan.target.exact and cache_type == F16:
            np.testing.assert_array_equal(ours, ref)
        else:  # float sums: a probability may round to the next f16 step (2^-11 relative)
            assert_close(ours, ref, 2e-3)
    view = vulkan.cache_view(f"k.{cache_type}")
    assert view.dtype == (np.float16 if cache_type == F16 else np.float32) and view.shape == (N_CTX, WIDTH)
    assert np.all(view[35:] == 0) and np.all(np.isfinite(view[:35])) and np.any(view[34] != 0)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_kv_store_rounds_to_f16_like_numpy(vulkan):
    x = np.concatenate([rng.standard_normal((3, WIDTH)) * 10.0 ** rng.integers(-9, 5, (3, WIDTH)),
                        np.full((1, WIDTH), 70000.0)]).astype(np.float32)
    x[0, :4] = [6.1035156e-05, 5.9604645e-08, 2.9802322e-08, 1.0004883]  # f16 normal/subnormal edges, ties
    cells = np.array([5, 1, 9, 2], np.int32)
    run_both(vulkan, lambda g: g.kv_store(g.cache("k.round", (N_CTX, WIDTH), F16), g.input("x", (4, WIDTH), F32),
                                          g.input("cells", (4,), I32)), {"x": x, "cells": cells})
    np.testing.assert_array_equal(vulkan.cache_view("k.round")[cells], x.astype(np.float16))


def test_staging_path_and_cache_view_writes(monkeypatch):
    """Device memory the host cannot map (as on a discrete GPU): weights, inputs, outputs and
    cache views all go through staging copies, and writes to a cache view reach the next run."""
    monkeypatch.setenv(STAGING_ENV, "1")
    backend = VulkanBackend()
    weight = make_weight("staged", GGMLType.Q4_0, 9, 64)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    ref, ours = run_both(backend, lambda g: g.mul_mat(g.weight("staged", (9, 64), GGMLType.Q4_0),
                                                      g.input("x", (2, 64), F32)), {"x": x}, [weight])
    assert_close(ours, ref, 1e-5)
    results = run_attention_steps(backend, F16, 5)
    for ref, ours in results:
        assert_close(ours, ref, 2e-3)
    view = backend.cache_view(f"v.{F16}")
    assert backend.caches[f"v.{F16}"][0].block.mapped is None and np.any(view[:7] != 0)
    view[:] = 0  # wipe the values: attention must now return zeros
    feeds, n_kv = attention_step(7, 1)
    by_name = attention_graph(F16)
    g = GraphBuilder(1, 1)
    graph = g.build({"out": by_name(g)})
    executable = backend.compile(Subgraph([x for x in graph.nodes if not x.is_leaf],
                                          [x for x in graph.nodes if x.op is Op.INPUT], [graph.outputs["out"]],
                                          graph.weights, graph.caches))
    feeds["v"][:] = 0
    out = executable.run({graph.inputs[k].id: v for k, v in feeds.items()}, n_kv)[0]
    np.testing.assert_array_equal(out, 0)


# -- plans ----------------------------------------------------------------------------------------

def test_command_buffer_is_recorded_once_and_replayed(vulkan, monkeypatch):
    recorded = []
    original = VulkanExecutable._record
    monkeypatch.setattr(VulkanExecutable, "_record", lambda self: (recorded.append(self), original(self))[1])
    steps = [attention_step(0, 4), attention_step(4, 4), attention_step(8, 4)]
    for ref, ours in run_both(vulkan, attention_graph(F16), steps[0][0], steps=steps):
        assert_close(ours, ref, 2e-3)
    assert len(recorded) == 1


def test_a_larger_plan_moves_the_arena_and_older_plans_rerecord(vulkan):
    small = rng.standard_normal((2, 64)).astype(np.float32)
    g = GraphBuilder(2, 2)
    graph = g.build({"out": g.silu(g.input("x", (2, 64), F32))})
    plan = vulkan.compile(Subgraph([x for x in graph.nodes if not x.is_leaf], list(graph.inputs.values()),
                                   [graph.outputs["out"]]))
    first = plan.run({graph.inputs["x"].id: small}, 0)[0]
    big = GraphBuilder(4096, 4096)
    big_graph = big.build({"out": big.silu(big.input("x", (4096, 1024), F32))})
    vulkan.compile(Subgraph([x for x in big_graph.nodes if not x.is_leaf], list(big_graph.inputs.values()),
                            [big_graph.outputs["out"]]))
    np.testing.assert_array_equal(plan.run({graph.inputs["x"].id: small}, 0)[0], first)


def test_memory_used_by_kind(vulkan):
    used = vulkan.memory_used()
    assert set(used) == {"weights", "kv", "compute"}
    assert used["weights"] == sum(w.raw.nbytes for _, w in vulkan.weights.values())
    assert used["kv"] == sum(math.prod(shape) * dtype.itemsize for _, dtype, shape in vulkan.caches.values())
    assert used["compute"] >= vulkan.arena.size


# ---- the probe's findings kept on disk ------------------------------------------------------------

def test_probe_is_answered_from_disk_until_the_drivers_change(tmp_path, monkeypatch):
    from llmcore_vulkan.probe_cache import cached_probe

    monkeypatch.setenv("LLMCORE_CACHE", str(tmp_path))
    calls = []

    def probe():
        calls.append(1)
        return STATUS

    assert cached_probe(probe) == STATUS and len(calls) == 1
    assert cached_probe(probe) == STATUS and len(calls) == 1  # answered from the file
    monkeypatch.setenv("LLMCORE_VULKAN_DEVICE", "7")  # the loader's or the selection's settings changed
    assert cached_probe(probe) == STATUS and len(calls) == 2
    for stored in (tmp_path / "vulkan").glob("*.json"):
        stored.write_text("{not json")
    assert cached_probe(probe) == STATUS and len(calls) == 3  # a damaged file is probed again


def test_a_warm_probe_loads_no_driver(tmp_path):
    """With the findings on disk, choosing a backend does not load the Vulkan drivers: lavapipe maps
    libLLVM, about 60 MB resident for the life of the process."""
    import subprocess
    import sys

    from llmcore.paths import cache_dir

    script = ("from llmcore.engine.registry import choose_backend\n"
              "print(choose_backend('auto')[0].name)\n"
              "print(any('libvulkan_' in line for line in open('/proc/self/maps')))\n")
    # only the probe's findings start empty: the compiled CPU kernels the choice loads are the
    # session's (a cache of their own would rebuild them, a minute on a 2-core machine)
    kernels = cache_dir() / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    (tmp_path / "kernels").symlink_to(kernels, target_is_directory=True)
    env = {**__import__("os").environ, "LLMCORE_CACHE": str(tmp_path)}
    cold = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    warm = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert cold.stdout.split()[1] == "True"  # the first process asked the driver
    assert warm.stdout.split() == [cold.stdout.split()[0], "False"]


def test_exact_roundings_by_default_on_cpu_devices_and_on_request(monkeypatch):
    """lavapipe (a CPU device) takes llama.cpp's roundings unless told not to; the fast variants
    remain for GPUs, whose double precision is slow."""
    from llmcore_vulkan.backend import EXACT_ENV

    assert VulkanBackend().target.exact == (STATUS.devices[0].kind == "cpu" and "fp64" in STATUS.devices[0].features)
    monkeypatch.setenv(EXACT_ENV, "0")
    assert not VulkanBackend().target.exact
