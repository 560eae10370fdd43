"""Embedding throughput against llama.cpp's llama-embedding, interleaved, median of N runs:
sentences per second for 256 sentences of ~32 tokens, batched, on one GGUF.

    .venv/bin/python scripts/bench_embeddings.py MODEL.gguf --llama-embedding /tmp/lcpp-build/bin/llama-embedding

llama-embedding's time is its decode time (from its first ``batch_decode`` log line to its context's
teardown, read from its timestamps); llmcore's is ``LLM.embed`` over the same texts in one process
(loading excluded on both sides), flash attention off on both.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

WORDS = ("the a river mountain quietly engineer bright seven yesterday computer garden music ancient library "
         "travels builds under across while storm silver market children laughter ocean paper window "
         "carefully remembers tomorrow village bridge").split()


def sentences(n: int = 256, words: int = 28) -> list[str]:
    rng = random.Random(7)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) + "." for _ in range(n)]


def llama_embedding_seconds(binary: str, model: str, path: str, threads: int, n_batch: int) -> float:
    run = subprocess.run([binary, "-m", model, "-f", path, "-t", str(threads), "-c", "512", "-b", str(n_batch),
                          "-ub", str(n_batch), "-fa", "off", "--embd-output-format", "array"], capture_output=True, text=True)
    # ggml's log stamps: minutes.seconds.milliseconds.microseconds
    stamps = [int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 1e3 + int(m.group(4)) / 1e6 for m in
              re.finditer(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) [IW] (?:batch_decode|~llama_context)", run.stderr, re.M)]
    if run.returncode or len(stamps) < 2:
        raise SystemExit(f"llama-embedding failed:\n{run.stderr[-2000:]}")
    return stamps[-1] - stamps[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--llama-embedding", required=True)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-b", "--batch-size", type=int, default=512)
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    args = parser.parse_args()
    from llmcore import LLM

    texts = sentences()
    llm = LLM(args.model, backend="cpu_simd", n_threads=args.threads, n_batch=args.batch_size, embedding=True,
              flash_attn="off")
    n_tokens = sum(len(llm.tokenize(t)) for t in texts)
    llm.embed(texts[:16])  # compile the plans once
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("\n".join(texts))
        f.flush()
        ours, theirs = [], []
        for _ in range(args.repetitions):
            theirs.append(llama_embedding_seconds(args.llama_embedding, args.model, f.name, args.threads, args.batch_size))
            start = time.perf_counter()
            llm.embed(texts)
            ours.append(time.perf_counter() - start)
    mine, ref = statistics.median(ours), statistics.median(theirs)
    print(f"{len(texts)} sentences, {n_tokens} tokens, batch {args.batch_size}, {args.threads} threads")
    print(f"llmcore cpu_simd: {len(texts) / mine:.1f} sentences/s; llama-embedding: {len(texts) / ref:.1f} sentences/s; "
          f"ratio {ref / mine:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
