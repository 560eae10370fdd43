"""The cpu_simd executor's phases: nodes that share a phase (independent products, tiny nodes run by
one thread alone, by the last to reach the barrier before them where the whole phase is such) give
the bits of a program that waits after every node on all threads, and one token's decode waits at
far fewer barriers than it has nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llmcore_cpu_simd", reason="the cpu_simd plugin is not installed")

from llmcore import LLM  # noqa: E402
from llmcore_cpu_simd import CpuSimdBackend  # noqa: E402
from llmcore_cpu_simd.lowering import Program  # noqa: E402

_status = CpuSimdBackend.probe()
assert _status.usable, f"cpu_simd is installed but cannot run: {_status.reason}"  # a failure, never a skip

ARCH_DIR = Path(__file__).parent / "fixtures" / "arch"


def batch_and_one_by_one(arch: str, n_threads: int) -> np.ndarray:
    tokens = np.load(ARCH_DIR / f"{arch}.logits.npz")["tokens"].tolist()
    llm = LLM(ARCH_DIR / f"{arch}.gguf", backend="cpu_simd", n_ctx=128, n_threads=n_threads)
    half = len(tokens) // 2
    rows = [llm.eval_prompt(tokens[:half])]
    rows += [llm.eval_prompt(tokens[: i + 1]) for i in range(half, len(tokens))]
    return np.array(rows)


# dense and routed layers (qwen3moe: gating, top-k, weights; deepseek2: group-limited routing and
# latent attention), states updated in place (mamba2, rwkv6), sinks and a clamped SwiGLU (gpt-oss)
@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("arch", ["llama", "qwen3moe", "deepseek2", "gpt-oss", "mamba2", "rwkv6"])
def test_phases_give_the_bits_of_a_barrier_after_every_node(arch, n_threads, monkeypatch):
    phased = batch_and_one_by_one(arch, n_threads)
    monkeypatch.setattr(Program, "_schedule", lambda self, steps: None)  # all threads, a barrier after each
    np.testing.assert_array_equal(phased, batch_and_one_by_one(arch, n_threads))


def test_one_token_waits_at_few_barriers(default_model_path, monkeypatch):
    """SmolLM2's layer: the q/k/v products share a phase, so do gate and up; the norms, ropes, KV
    stores, attention and quantizations of one token run on thread 0 between them: 8 barriers."""
    schedules: list[tuple[int, int]] = []
    schedule = Program._schedule

    def counting(self, steps):
        schedule(self, steps)
        schedules.append((len(steps), sum(step.barrier_after for step in steps)))

    monkeypatch.setattr(Program, "_schedule", counting)
    llm = LLM(default_model_path, backend="cpu_simd", n_ctx=64, n_threads=2)
    llm.eval_prompt([1, 2, 3])
    llm.eval_prompt([1, 2, 3, 4])
    n_layer = llm.model.hparams.n_layer
    nodes, barriers = schedules[-1]
    assert nodes > 20 * n_layer
    assert barriers <= 8 * n_layer + 4
