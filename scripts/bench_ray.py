"""Decode speed of the default model split over a local Ray cluster (a head without CPUs and two
one-CPU workers on loopback), against one machine's cpu_simd with one thread: what each stage
boundary costs (BENCHMARKS.md); then 1, 2 and 4 sequences in flight, batched in each step as the
server's slots are (the batch passes the stages one after another), and pipelined: the sequences in
micro-batches, each submitted as soon as its previous logits are read (Context.decode_async), so
that one stage computes one micro-batch while the other computes another.

    nice .venv/bin/python scripts/bench_ray.py               # everything
    nice .venv/bin/python scripts/bench_ray.py --in-flight   # the sequences in flight only
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # everything on loopback

from ray.cluster_utils import Cluster  # noqa: E402

from llmcore import LLM  # noqa: E402
from llmcore.api import Batch  # noqa: E402

N_TOKENS, REPEATS = 48, 5


def decode_tokens_per_s(llm: LLM) -> float:
    """Median over REPEATS generations of N_TOKENS greedy tokens."""
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        n = sum(1 for _ in llm.generate("Once upon a time", max_tokens=N_TOKENS, temperature=0, ignore_eos=True))
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def batched_tokens_per_s(llm: LLM, n_sequences: int) -> float:
    """Aggregate decode tokens/s with ``n_sequences`` in flight: each step decodes one batch holding
    the next token of every sequence (the server's continuous batching), which passes the stages one
    after another; median of REPEATS runs of N_TOKENS steps after each sequence read its prompt."""
    prompt = llm.tokenize("Once upon a time")
    rates = []
    for _ in range(REPEATS):
        llm.reset()
        last = [int(np.argmax(llm.context.decode(Batch.for_sequence(prompt, 0, seq))[-1])) for seq in range(n_sequences)]
        started = time.perf_counter()
        for step in range(N_TOKENS):
            position = len(prompt) + step
            batch = Batch(np.array(last), np.full(n_sequences, position), np.arange(n_sequences),
                          np.ones(n_sequences, dtype=bool))
            last = [int(t) for t in np.argmax(llm.context.decode(batch), axis=-1)]
        rates.append(n_sequences * N_TOKENS / (time.perf_counter() - started))
    return statistics.median(rates)


def pipelined_tokens_per_s(llm: LLM, n_sequences: int, n_micro_batches: int) -> float:
    """Aggregate decode tokens/s with ``n_sequences`` in flight in ``n_micro_batches`` micro-batches
    (consecutive sequences together): each micro-batch's next step is submitted as soon as its
    logits are read, the others' steps still in flight; median of REPEATS runs of N_TOKENS steps."""
    prompt = llm.tokenize("Once upon a time")
    groups = np.array_split(np.arange(n_sequences), n_micro_batches)
    context = llm.context
    rates = []
    for _ in range(REPEATS):
        llm.reset()
        last = [int(np.argmax(context.decode(Batch.for_sequence(prompt, 0, seq))[-1])) for seq in range(n_sequences)]

        def submit(group: np.ndarray, position: int):
            return context.decode_async(Batch(np.array([last[s] for s in group]), np.full(len(group), position), group,
                                              np.ones(len(group), dtype=bool)))

        started = time.perf_counter()
        pending = [submit(group, len(prompt)) for group in groups]
        for step in range(1, N_TOKENS + 1):
            for index, group in enumerate(groups):
                for seq, row in zip(group, pending[index].result()):
                    last[seq] = int(np.argmax(row))
                if step < N_TOKENS:
                    pending[index] = submit(group, len(prompt) + step)
        rates.append(n_sequences * N_TOKENS / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", action="store_true", help="only the table of sequences in flight")
    args = parser.parse_args()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ways = [("one machine, cpu_simd -t 1", dict(backend="cpu_simd", n_threads=1)),
            ("input here, layers 0-29 + output on one node", dict(ray=cluster.address, split_mode="none")),
            ("input here, 0-15 and 16-29 + output on two nodes (-ts 1,1)", dict(ray=cluster.address, tensor_split=[1, 1])),
            ("input + 0-10 here, 11-20 and 21-29 + output on two nodes (-ngl 20 -ts 1,1)",
             dict(ray=cluster.address, n_gpu_layers=20, tensor_split=[1, 1]))]
    try:
        for name, options in [] if args.in_flight else ways:
            llm = LLM(n_ctx=256, **options)
            print(f"| {name} | {', '.join(f'{layers}: {backend}' for layers, backend in llm.placement)} | "
                  f"{decode_tokens_per_s(llm):.1f} |", flush=True)
            del llm
        for name, options in [ways[0], ways[2]]:
            llm = LLM(n_ctx=512, n_seq_max=4, **options)
            batched = [batched_tokens_per_s(llm, n) for n in (1, 2, 4)]
            pipelined = [pipelined_tokens_per_s(llm, n, n) for n in (1, 2, 4)]
            print(f"| {name} | batched | {' | '.join(f'{r:.1f}' for r in batched)} |", flush=True)
            print(f"| {name} | a micro-batch per sequence | {' | '.join(f'{r:.1f}' for r in pipelined)} |", flush=True)
            print(f"| {name} | 4 sequences in two micro-batches | | | {pipelined_tokens_per_s(llm, 4, 2):.1f} |",
                  flush=True)
            del llm
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
