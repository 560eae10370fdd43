"""Speculative and lookup decoding against plain decoding, interleaved, median of repetitions:

    .venv/bin/python scripts/bench_speculative.py TARGET.gguf DRAFT.gguf [--reps 5] [-n 64]

TARGET is the default model requantized to Q8_0 (``llmcore quantize --allow-requantize`` or
llama-quantize), DRAFT the Q4_1 default model. Prints tokens per second of each way and checks
that every way gives plain decoding's greedy tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time

from llmcore import LLM
from llmcore.engine.speculative import DraftParams

PROSE = "The three primary colors are"
CODE = "".join(f"def {name}(a, b):\n    return a {op} b\n\n\n" for name, op in
               (("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("draft")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-n", type=int, default=64)
    args = parser.parse_args()
    kw = dict(backend="cpu_simd", n_ctx=1024, flash_attn="auto")
    ways = {
        "plain": LLM(args.target, **kw),
        "draft Q4_1, n_max 3 (default)": LLM(args.target, draft_model=args.draft, **kw),
        "draft Q4_1, n_max 8": LLM(args.target, draft_model=args.draft, draft=DraftParams(n_max=8), **kw),
        "ngram-simple 12/48 (default)": LLM(args.target, spec_type="ngram-simple", **kw),
        "ngram-simple 4/8": LLM(args.target, spec_type="ngram-simple", draft=DraftParams(ngram_size_n=4, ngram_size_m=8), **kw),
    }
    for name, prompt in (("prose", PROSE), ("code", CODE)):
        speeds: dict[str, list[float]] = {way: [] for way in ways}
        tokens: dict[str, list[int]] = {}
        rates: dict[str, str] = {}
        for _ in range(args.reps + 1):  # the first round compiles the plans
            for way, llm in ways.items():
                start = time.perf_counter()
                tokens[way] = list(llm.generate_tokens(llm.tokenize(prompt), llm.sampler(temperature=0), args.n,
                                                       ignore_eos=True))
                speeds[way].append(args.n / (time.perf_counter() - start))
                t = llm.last.timings
                rates[way] = f"{t.draft_n_accepted}/{t.draft_n} accepted" if t.draft_n else ""
        base = statistics.median(speeds["plain"][1:])
        for way in ways:
            median = statistics.median(speeds[way][1:])
            same = "identical" if tokens[way] == tokens["plain"] else "DIFFERENT"
            print(f"{name:5s} {way:32s} {median:6.1f} tok/s  x{median / base:4.2f}  {same}  {rates[way]}")


if __name__ == "__main__":
    main()
