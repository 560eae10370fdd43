"""i-quant, ternary, FP4 and 1/2-bit models against llama.cpp: a tiny random llama (rows of 256 and
512) quantized by llama-quantize to each type, with the logits llama.cpp computed for a 40-token
prompt in one batch and 8 tokens decoded one at a time (scripts/make_iquant_goldens.py).

The reference backend multiplies these weights dequantized, by BLAS, after rounding the activations
to the type's 8-bit vec_dot_type as ggml does (q8_K for the i-quants and ternary types, q8_0 for
IQ4_NL, MXFP4, NVFP4, Q1_0 and Q2_0); only the order of the sums differs from ggml's. So most rows
agree to ~1e-5, and a row where that last-bit difference moves an activation across a rounding
boundary of its 8-bit quantization (a flip that later rows inherit through the KV cache) is off by
up to ~0.2. The pass marks for those are the ones tests/test_goldens.py holds every backend to on
llama.cpp's quantized goldens: the top-1 token wherever llama.cpp's top two are not a near tie, and
the 99th percentile of the log-probability error of the top-1 and the top-10 tokens.

``auto`` is the default path: with cpu_simd installed, it runs every one of these types, and must then
give llama.cpp's logits bit for bit, prompt and decode rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmcore.engine.registry import availability, backend_classes

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "iquant").glob("*.gguf"))
NEAR_TIE = 0.1  # llama.cpp's top-2 logit gap under which either token may win (tests/test_goldens.py)
P99_TOP1_LOGPROB = 0.25
P99_TOP10_LOGPROB = 0.6
CLOSE_ROWS = 0.75  # rows that must match within 1e-3: those no 8-bit rounding flip has reached


def _prompt_and_decode_logits(llm, golden) -> np.ndarray:
    from llmcore.engine.batch import Batch

    prompt, decoded = golden["prompt"].tolist(), golden["decoded"].tolist()
    rows = [llm.logits(prompt)]
    for step, token in enumerate(decoded):
        rows.append(llm.context.decode(Batch.for_sequence([token], len(prompt) + step)))
    return np.concatenate(rows)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    peak = logits.max(axis=1, keepdims=True)
    return logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))


def test_fixtures_cover_every_new_type():
    from llmcore.gguf import GGUFReader, GGMLType

    seen = set()
    for path in FIXTURES:
        with GGUFReader(path) as reader:
            seen |= {info.type for info in reader.tensors.values()}
    wanted = {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_NL", "IQ4_XS",
              "TQ1_0", "TQ2_0", "MXFP4", "NVFP4", "Q1_0", "Q2_0"}
    assert {GGMLType[name] for name in wanted} <= seen


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("model", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_logits_within_llama_cpp_bounds(model, backend):
    from llmcore import LLM

    golden = np.load(model.with_suffix(".logits.npz"))
    expected = golden["logits"]
    llm = LLM(str(model), backend=backend, n_ctx=128)
    ours = _prompt_and_decode_logits(llm, golden)
    assert ours.shape == expected.shape

    row_error = np.abs(ours - expected).max(axis=1)
    top2 = np.sort(expected, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] >= NEAR_TIE
    idx = np.argsort(-expected, axis=1)[:, :10]
    error = np.abs(np.take_along_axis(log_softmax(ours), idx, 1) - np.take_along_axis(log_softmax(expected), idx, 1))
    print(f"{model.stem} on {backend}: max logit error {row_error.max():.3g}, rows within 1e-3 "
          f"{(row_error < 1e-3).mean():.2f}, p99 logprob error top-1 {np.percentile(error[:, 0], 99):.4f} "
          f"top-10 {np.percentile(error.max(axis=1), 99):.4f}")
    np.testing.assert_array_equal(ours.argmax(axis=1)[decided], expected.argmax(axis=1)[decided])
    assert np.percentile(error[:, 0], 99) <= P99_TOP1_LOGPROB
    assert np.percentile(error.max(axis=1), 99) <= P99_TOP10_LOGPROB
    assert (row_error < 1e-3).mean() >= CLOSE_ROWS


needs_cpu_simd = pytest.mark.skipif("cpu_simd" not in backend_classes() or not availability("cpu_simd").usable,
                                    reason="the cpu_simd plugin is not installed or cannot build its kernels here")


@needs_cpu_simd
@pytest.mark.parametrize("model", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_cpu_simd_kernels_equal_llama_cpp_bit_for_bit(model):
    """The 40-token prompt takes llama.cpp's tiled order where it has one (the grid i-quants, 8 tokens or
    more), the decoded tokens its vec_dot's; IQ4_NL and MXFP4 its repacked GEMM/GEMV's throughout."""
    from llmcore import LLM

    golden = np.load(model.with_suffix(".logits.npz"))
    llm = LLM(str(model), backend="cpu_simd", n_ctx=128)
    assert llm.plan.fallbacks() == {}
    ours = _prompt_and_decode_logits(llm, golden)
    differing = np.flatnonzero((ours != golden["logits"]).any(axis=1))
    assert differing.size == 0, (f"rows {differing.tolist()[:8]} differ from llama.cpp's "
                                 f"(max {np.abs(ours - golden['logits']).max():.3g})")


@pytest.mark.slow
@needs_cpu_simd
@pytest.mark.parametrize("level", ["avx2", "scalar"])
def test_cpu_simd_lower_isa_levels_equal_llama_cpp_bit_for_bit(level, monkeypatch):
    """The kernels' integer lanes and float order do not depend on the ISA level: the lower levels'
    builds (a compile each, hence slow) give llama.cpp's logits too."""
    from llmcore_cpu_simd import isa

    if level not in isa.supported_levels():
        pytest.skip(f"this CPU cannot run the {level} kernels")
    monkeypatch.setenv(isa.ISA_ENV, level)
    for model in FIXTURES:
        test_cpu_simd_kernels_equal_llama_cpp_bit_for_bit(model)


def test_vulkan_declines_every_type_it_has_no_shader_for():
    """The Vulkan backend computes none of these types: it declines their products and lookups, so
    the scheduler places them on a host backend instead of failing on the device."""
    if "vulkan" not in backend_classes() or not availability("vulkan").usable:
        pytest.skip("the vulkan plugin is not installed or finds no Vulkan device here")
    from llmcore.gguf import GGMLType
    from llmcore.graph.builder import GraphBuilder
    from llmcore.graph.ir import F32, I32

    vulkan = backend_classes()["vulkan"]()
    for name in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_NL", "IQ4_XS",
                 "TQ1_0", "TQ2_0", "MXFP4", "NVFP4", "Q1_0", "Q2_0"):
        g = GraphBuilder(4, 4)
        weight = g.weight(f"w.{name}", (8, 512), GGMLType[name])
        product = g.mul_mat(weight, g.input("x", (4, 512), F32))
        rows = g.get_rows(weight, g.input("ids", (2,), I32))
        assert not vulkan.supports_op(product) and not vulkan.supports_op(rows), name
