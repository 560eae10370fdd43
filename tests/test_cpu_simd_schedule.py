"""The cpu_simd executor's phases: nodes that share a phase (independent products, tiny nodes run by
one thread alone, by the last to reach the barrier before them where the whole phase is such) give
the bits of a program that waits after every node on all threads, and one token's decode waits at
far fewer barriers than it has nodes; once a run returns, no worker reads its program."""

from __future__ import annotations

import subprocess
import sys
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
    stores and quantizations of one token run on one thread between them, its attention on all: 10
    barriers a layer, of which the threads wait at about half (a phase that one thread runs does so
    inside the barrier before it, and the barrier closing it costs no wait of its own)."""
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
    assert barriers <= 10 * n_layer + 4


# A program of no nodes (the lowering of a reshape) ran no barrier, yet woke the workers, which read
# it after lc_graph_run returned: from freed memory once its executable was dropped (the conformance
# kit's SIGSEGV at rope-normal-1x3x64, after the reshape cases; ASan: heap-use-after-free in
# run_nodes), or the next program under a stale generation, run twice. Here the caller turns the empty
# program into one whose node a worker would run (thread 1's half of a SCALE) right after each run
# returns. In a child process: a worker that ran it would wait at its barrier for good.
EMPTY_PROGRAM_STAYS_THE_CALLERS = """
import os, time
import numpy as np
from llmcore_cpu_simd.backend import selected_level
from llmcore_cpu_simd.library import ffi, load
lib = load(selected_level())
pool = lib.lc_pool_new(2)
ones, out = np.ones(2, np.float32), np.zeros(2, np.float32)
nodes = ffi.new("lc_node[]", 1)
nodes[0].op, nodes[0].run, nodes[0].barrier_after = lib.LC_OP_SCALE, lib.LC_RUN_ALL, 1
nodes[0].src[0], nodes[0].dst, nodes[0].ne[0], nodes[0].f[0] = ffi.from_buffer(ones), ffi.from_buffer(out), 2, 2.0
program = ffi.new("lc_program *", {"nodes": nodes, "n_nodes": 0, "pool": pool})
for attempt in range(40):
    time.sleep(0.005)  # the worker asleep, as between two steps of a model
    lib.lc_graph_run(program, 0)
    program.n_nodes = 1
    time.sleep(0.005)
    if out[1]:
        print(f"run {attempt}: a worker ran the program after lc_graph_run returned", flush=True)
        os._exit(1)
    program.n_nodes = 0
lib.lc_pool_free(pool)
"""


def test_a_run_of_no_nodes_leaves_the_program_to_the_caller():
    result = subprocess.run([sys.executable, "-c", EMPTY_PROGRAM_STAYS_THE_CALLERS], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
