"""K-quant, Q4_0, Q8_0 and BF16 models against llama.cpp, bit for bit: a tiny random llama whose every
matrix is a K-quant (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), Q4_0, Q8_0 or BF16, and one with 8 experts, 2 per
token (moe_*: the routed products, the f32 router by tinyBLAS in a batch and ggml_vec_dot_f32 for one
token), quantized by llama-quantize, with the logits llama.cpp computed for a 40-token prompt in one
batch and 8 tokens decoded one at a time (scripts/make_kquant_goldens.py). The prompt takes cpu_simd's
packed GEMM in llama.cpp's tiled and repacked-GEMM orders (Q4_K's and Q2_K's; Q4_0's, whose GEMM and
GEMV share one order), tinyBLAS's BF16 order and its batched attention; the decoded tokens take the
one-row kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmcore.engine.registry import availability, backend_classes

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "kquant").glob("*.gguf"))
pytestmark = pytest.mark.skipif("cpu_simd" not in backend_classes() or not availability("cpu_simd").usable,
                                reason="the cpu_simd plugin is not installed or cannot build its kernels here")


# goldens whose numbers llama.cpp gives only on CPUs with a feature (those they were made on): it
# repacks Q2_K matrices where the CPU has AVX-512, and multiplies BF16 batches by AVX512-BF16's dot
# products where it has those
CPU_FEATURE_GOLDENS = {"q2_k": "avx512f", "bf16": "avx512_bf16"}


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


@pytest.mark.parametrize("model", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_k_quant_logits_equal_llama_cpp_bit_for_bit(model):
    from llmcore import LLM
    from llmcore.engine.batch import Batch

    feature = CPU_FEATURE_GOLDENS.get(model.stem)
    if feature and feature not in _cpu_flags():
        pytest.skip(f"{model.stem}'s golden holds llama.cpp's numbers on a CPU with {feature}; without it "
                    "llama.cpp and cpu_simd take other orders")

    golden = np.load(model.with_suffix(".logits.npz"))
    prompt, decoded = golden["prompt"].tolist(), golden["decoded"].tolist()
    llm = LLM(str(model), backend="cpu_simd", n_ctx=128)
    rows = [llm.logits(prompt)]
    for step, token in enumerate(decoded):
        rows.append(llm.context.decode(Batch.for_sequence([token], len(prompt) + step)))
    ours = np.concatenate(rows)
    assert ours.shape == golden["logits"].shape
    differing = np.flatnonzero((ours != golden["logits"]).any(axis=1))
    assert differing.size == 0, (f"rows {differing.tolist()[:8]} differ from llama.cpp's "
                                 f"(max {np.abs(ours - golden['logits']).max():.3g})")
