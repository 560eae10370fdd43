"""Throughput measurement in the manner of llama.cpp's ``llama-bench``, optionally side by side with
llama-bench itself in interleaved repetitions, so that both see the same machine noise."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError


@dataclass
class BenchResult:
    engine: str  # "llmcore" or "llama.cpp"
    test: str  # "pp512", "tg128"
    samples: list[float] = field(default_factory=list)  # tokens per second, one per repetition

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0


def prompt_speed(llm, n_prompt: int, rng: np.random.Generator) -> float:
    """pp: tokens/s evaluating a random prompt (BOS first) from an empty cache, in n_batch steps."""
    tokens = [llm.tokenizer.bos_id] + list(rng.integers(0, llm.n_vocab, n_prompt - 1))
    llm.reset()
    batch = Batch(tokens, np.arange(n_prompt), np.zeros(n_prompt), np.arange(n_prompt) == n_prompt - 1)
    start = time.perf_counter()
    llm.context.decode(batch)
    return n_prompt / (time.perf_counter() - start)


def generation_speed(llm, n_gen: int, rng: np.random.Generator) -> float:
    """tg: tokens/s decoding one token at a time from an empty cache (random tokens, as llama-bench)."""
    llm.reset()
    tokens = [llm.tokenizer.bos_id] + list(rng.integers(0, llm.n_vocab, n_gen - 1))
    start = time.perf_counter()
    for pos, token in enumerate(tokens):
        llm.context.decode(Batch.for_sequence([int(token)], pos))
    return n_gen / (time.perf_counter() - start)


def llama_bench_speed(binary: str, model: str, test: str, n: int, threads: int, cache_args: list[str] = ()) -> float:
    """One repetition of llama.cpp's own llama-bench for ``test`` ("pp" or "tg"); ``cache_args``
    gives it the KV cache types and flash attention llmcore runs with."""
    size_args = ["-p", str(n), "-n", "0"] if test == "pp" else ["-p", "0", "-n", str(n)]
    cmd = [binary, "-m", model, *size_args, "-r", "1", "-t", str(threads), *cache_args, "-o", "json"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise LLMCoreError(f"llama-bench failed ({' '.join(cmd)}): {error}") from None
    return float(json.loads(out)[0]["avg_ts"])


def run_bench(llm, tests: list[tuple[str, int]], reps: int, threads: int, llama_bench: str | None = None,
              on_rep: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Repetitions of each test, ours and (with ``llama_bench``) llama.cpp's, interleaved."""
    rng = np.random.default_rng(0)
    results: list[BenchResult] = []
    for kind, n in tests:
        ours = BenchResult("llmcore", f"{kind}{n}")
        theirs = BenchResult("llama.cpp", f"{kind}{n}") if llama_bench else None
        measure = prompt_speed if kind == "pp" else generation_speed
        measure(llm, min(n, 32), rng)  # warm-up, as llama-bench does
        for rep in range(reps):
            ours.samples.append(measure(llm, n, rng))
            if theirs:
                theirs.samples.append(llama_bench_speed(llama_bench, str(llm.model_path), kind, n, threads,
                                                        _cache_args(llm.context.cache)))
            if on_rep:
                on_rep(f"{ours.test} rep {rep + 1}/{reps}")
        results.append(ours)
        if theirs:
            results.append(theirs)
    return results


def _cache_args(cache) -> list[str]:
    """llama-bench's flags for the KV cache setup ``cache`` (a ``kv_types.CacheConfig``)."""
    return ["-ctk", cache.type_k, "-ctv", cache.type_v, "-fa", "on" if cache.flash_attn else "off"]
