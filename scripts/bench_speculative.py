"""Speculative and lookup decoding against plain decoding, interleaved, median of repetitions:

    .venv/bin/python scripts/bench_speculative.py TARGET.gguf DRAFT.gguf [--reps 5] [-n 64] [-t THREADS]

TARGET is the default model requantized to F16 or Q8_0 (``llama-quantize --allow-requantize``),
DRAFT the Q4_1 default model. Prints, for each prompt and way, tokens per second of wall time and
of the process's CPU time (medians), the best repetition's wall tokens per second, and checks
that every way gives plain decoding's greedy tokens.

On a machine other jobs share, wall time swings with their load (a thread of a two-thread step
waits for the other whenever the OS runs something else on its core); ``-t 1`` and the CPU-time
column are what stays comparable there, and the best repetition of each way (the one the other
jobs disturbed least) approaches a quiet machine's figure. On a quiet machine, the wall column at
the default threads is the figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from llmcore import LLM
from llmcore.engine.speculative import DraftParams

PROSE = "The three primary colors are"
CODE = "".join(f"def {name}(a, b):\n    return a {op} b\n\n\n" for name, op in
               (("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/")))
# a list the model goes on repeating: what lookup decoding is for
LIST = "Fruits: apple, banana, cherry, date, fig, grape, kiwi, lemon, mango, orange, pear, plum.\n" * 3 + "Fruits:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("draft")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-n", type=int, default=64)
    parser.add_argument("-t", "--threads", type=int, default=None, help="threads (default: the physical cores)")
    args = parser.parse_args()
    kw = dict(backend="cpu_simd", n_ctx=1024, flash_attn="auto", n_threads=args.threads)
    ways = {
        "plain": LLM(args.target, **kw),
        "draft Q4_1, n_max 3 (default)": LLM(args.target, draft_model=args.draft, **kw),
        "draft Q4_1, n_max 8": LLM(args.target, draft_model=args.draft, draft=DraftParams(n_max=8), **kw),
        "ngram-simple 12/48 (default)": LLM(args.target, spec_type="ngram-simple", **kw),
        "ngram-simple 4/8": LLM(args.target, spec_type="ngram-simple", draft=DraftParams(ngram_size_n=4, ngram_size_m=8), **kw),
    }
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, prompt in (("prose", PROSE), ("code", CODE), ("list", LIST)):
        wall: dict[str, list[float]] = {way: [] for way in ways}
        cpu: dict[str, list[float]] = {way: [] for way in ways}
        tokens: dict[str, list[int]] = {}
        rates: dict[str, str] = {}
        for _ in range(args.reps + 1):  # the first round compiles the plans
            for way, llm in ways.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                tokens[way] = list(llm.generate_tokens(llm.tokenize(prompt), llm.sampler(temperature=0), args.n,
                                                       ignore_eos=True))
                wall[way].append(args.n / (time.perf_counter() - start))
                cpu[way].append(args.n / (time.process_time() - start_cpu))
                t = llm.last.timings
                rates[way] = f"{t.draft_n_accepted}/{t.draft_n} accepted" if t.draft_n else "no draft"
        base_wall, base_cpu = statistics.median(wall["plain"][1:]), statistics.median(cpu["plain"][1:])
        base_best = max(wall["plain"][1:])
        for way in ways:
            w, c, b = statistics.median(wall[way][1:]), statistics.median(cpu[way][1:]), max(wall[way][1:])
            same = "identical" if tokens[way] == tokens["plain"] else "DIFFERENT"
            print(f"{name:5s} {way:30s} wall {w:6.1f} tok/s x{w / base_wall:4.2f}   cpu {c:6.1f} tok/s "
                  f"x{c / base_cpu:4.2f}   best {b:6.1f} tok/s x{b / base_best:4.2f}  {same}  "
                  f"{'' if way == 'plain' else rates[way]}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
