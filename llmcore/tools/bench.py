"""Throughput measurement in the manner of llama.cpp's ``llama-bench``, optionally side by side with
llama-bench itself in interleaved repetitions, so that both see the same machine noise."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError
from llmcore.graph.ir import Graph, Op

STREAM_BYTES = 256 << 20  # the buffer a streaming read times: many times any CPU's last-level cache
STREAM_REPEATS = 5
# the warm-up before each repetition lasts at least this long: after llama-bench's run the backend's
# threads have slept, and woken they can share one core until the scheduler spreads them again (a
# 2-core VM: short prompts' runs took 2-3x their time for tens of milliseconds)
WARM_UP_S = 0.1


@dataclass
class BenchResult:
    engine: str  # "llmcore" or "llama.cpp"
    kind: str  # "pp" or "tg"
    n: int  # the test's tokens
    depth: int = 0  # the tokens in the cache before it
    samples: list[float] = field(default_factory=list)  # tokens per second, one per repetition

    @property
    def test(self) -> str:
        """The test as llama-bench names it: pp512, tg128 @ d1024"""
        return f"{self.kind}{self.n}" + (f" @ d{self.depth}" if self.depth else "")

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0


def fill_context(llm, depth: int, rng: np.random.Generator) -> None:
    """llama-bench's ``-d``: an empty cache, then ``depth`` random tokens (BOS first) in it, untimed."""
    llm.reset()
    if depth:
        tokens = [llm.tokenizer.bos_id] + list(rng.integers(0, llm.n_vocab, depth - 1))
        llm.context.decode(Batch(tokens, np.arange(depth), np.zeros(depth), np.arange(depth) == depth - 1))


def prompt_speed(llm, n_prompt: int, rng: np.random.Generator, depth: int = 0) -> float:
    """pp: tokens/s evaluating a random prompt (BOS first from an empty cache) after ``depth``
    tokens, in n_batch steps."""
    fill_context(llm, depth, rng)
    tokens = ([] if depth else [llm.tokenizer.bos_id]) + list(rng.integers(0, llm.n_vocab, n_prompt - (not depth)))
    positions = depth + np.arange(n_prompt)
    batch = Batch(tokens, positions, np.zeros(n_prompt), np.arange(n_prompt) == n_prompt - 1)
    start = time.perf_counter()
    llm.context.decode(batch)
    return n_prompt / (time.perf_counter() - start)


def generation_speed(llm, n_gen: int, rng: np.random.Generator, depth: int = 0) -> float:
    """tg: tokens/s decoding one token at a time (random tokens, as llama-bench; BOS first from an
    empty cache) after ``depth`` tokens."""
    fill_context(llm, depth, rng)
    tokens = ([] if depth else [llm.tokenizer.bos_id]) + list(rng.integers(0, llm.n_vocab, n_gen - (not depth)))
    start = time.perf_counter()
    for pos, token in enumerate(tokens, depth):
        llm.context.decode(Batch.for_sequence([int(token)], pos))
    return n_gen / (time.perf_counter() - start)


def llama_bench_speed(binary: str, model: str, test: str, n: int, threads: int, cache_args: list[str] = (),
                      depth: int = 0) -> float:
    """One repetition of llama.cpp's own llama-bench for ``test`` ("pp" or "tg") after ``depth``
    tokens; ``cache_args`` gives it the KV cache types and flash attention llmcore runs with."""
    size_args = ["-p", str(n), "-n", "0"] if test == "pp" else ["-p", "0", "-n", str(n)]
    depth_args = ["-d", str(depth)] if depth else []  # older llama-bench builds (and ik_llama.cpp's) have no -d
    cmd = [binary, "-m", model, *size_args, *depth_args, "-r", "1", "-t", str(threads), *cache_args, "-o", "json"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise LLMCoreError(f"llama-bench failed ({' '.join(cmd)}): {error}") from None
    return float(json.loads(out)[0]["avg_ts"])


def run_bench(llm, tests: list[tuple[str, int, int]], reps: int, threads: int, llama_bench: str | None = None,
              on_rep: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Repetitions of each test (kind "pp" or "tg", tokens, depth: the tokens in the cache before
    it), ours and (with ``llama_bench``) llama.cpp's, interleaved; tests named as llama-bench names
    them ("pp512", "tg128 @ d1024")."""
    for _, n, depth in tests:
        if depth + n > llm.n_ctx:
            raise LLMCoreError(f"bench: a depth of {depth} tokens and a test of {n} need {depth + n} cells of "
                               f"context; -c is {llm.n_ctx}")
    rng = np.random.default_rng(0)
    results: list[BenchResult] = []
    for kind, n, depth in tests:
        ours = BenchResult("llmcore", kind, n, depth)
        theirs = BenchResult("llama.cpp", kind, n, depth) if llama_bench else None
        measure = prompt_speed if kind == "pp" else generation_speed
        for rep in range(reps):
            # a warm-up before each repetition, as llama-bench's own (the test's prompt, or one token
            # decoded) precedes each of its runs: interleaved, each of those runs is one repetition
            warm_until = time.perf_counter() + WARM_UP_S
            while time.perf_counter() < warm_until:
                measure(llm, n if kind == "pp" else 1, rng)
            ours.samples.append(measure(llm, n, rng, depth))
            if theirs:
                theirs.samples.append(llama_bench_speed(llama_bench, str(llm.model_path), kind, n, threads,
                                                        _cache_args(llm.context.cache), depth))
            if on_rep:
                on_rep(f"{ours.test} rep {rep + 1}/{reps}")
        results.append(ours)
        if theirs:
            results.append(theirs)
    return results


def _cache_args(cache) -> list[str]:
    """llama-bench's flags for the KV cache setup ``cache`` (a ``kv_types.CacheConfig``)."""
    return ["-ctk", cache.type_k, "-ctv", cache.type_v, "-fa", "on" if cache.flash_attn else "off"]


def decode_weight_bytes(model, graph: Graph) -> int:
    """The weight bytes one decode step streams: every matrix product's weight of the 1-token
    ``graph``, read once (a tied embedding counts as the output head; the input embedding's one
    row, the norms and biases are left out); of an expert-routed product, the share of the experts
    the token is routed to (the experts are equal in size, so the share is exact whichever they are)."""
    total = 0
    for node in graph.nodes:
        w = node.srcs[0] if node.srcs else None
        if w is None or w.op is not Op.WEIGHT:
            continue
        if node.op in (Op.MUL_MAT, Op.MUL_MAT_HEADS):
            total += model.weight_bytes(w)
        elif node.op is Op.MUL_MAT_ID:
            n_expert, n_routed = w.shape[0], node.shape[0] * node.shape[1]
            total += model.weight_bytes(w) // n_expert * min(n_expert, n_routed)
    return total


def streaming_read_bandwidth(threads: int) -> float:
    """Bytes per second that ``threads`` threads reach reading a buffer far larger than the caches,
    each its own contiguous part (numpy's integer reductions run at the speed of memory and release
    the GIL): the median of a few repeats (on a shared VM the best of five once read 59 GB/s where
    the others and every later run read 33-36: one repeat's clock cannot be trusted alone)."""
    buffer = np.ones(STREAM_BYTES // 8, np.uint64)  # written, so every page is mapped before timing
    parts = np.array_split(buffer, threads)
    seconds = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(STREAM_REPEATS):
            start = time.perf_counter()
            list(pool.map(np.bitwise_or.reduce, parts))
            seconds.append(time.perf_counter() - start)
    return buffer.nbytes / statistics.median(seconds)
