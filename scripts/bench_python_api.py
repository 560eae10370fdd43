"""Greedy decode through the Python API against llama-cpp-python's, in alternating processes:
``create_completion(prompt, max_tokens=N, temperature=0, stream=True)`` with EOS banned, tokens per
second from the first streamed chunk to the last (the prompt excluded), median of R process pairs.

    .venv/bin/python scripts/bench_python_api.py MODEL.gguf --llama-cpp-python /work/venv-oracle/bin/python

Each side runs in a fresh process of its own interpreter (llama-cpp-python lives in the oracle venv,
never in llmcore's), loads the model, warms up with a short completion, then times one completion.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PROMPT = "The history of the printing press begins"


def child(engine: str, model: str, n_gen: int, threads: int) -> None:
    """Print the decode tokens/s of one streamed greedy completion (run in the child process)."""
    import time

    if engine == "llmcore":
        from llmcore import LLM

        llm = LLM(model, backend="cpu_simd", n_ctx=1024, n_threads=threads)
        complete = lambda n: llm.create_completion(PROMPT, max_tokens=n, temperature=0, stream=True, ignore_eos=True)
    else:
        from llama_cpp import Llama

        llm = Llama(model, n_ctx=1024, n_threads=threads, verbose=False)
        eos = {llm.token_eos(): float("-inf")}
        complete = lambda n: llm.create_completion(PROMPT, max_tokens=n, temperature=0, stream=True, logit_bias=eos)
    list(complete(8))
    stamps = [time.perf_counter() for _ in complete(n_gen)]
    print(f"{(len(stamps) - 1) / (stamps[-1] - stamps[0]):.3f}")


def run_child(python: str, engine: str, args: argparse.Namespace) -> float:
    cmd = [python, __file__, args.model, "--child", engine, "-n", str(args.n_gen), "-t", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--llama-cpp-python", metavar="PYTHON", help="an interpreter that imports llama_cpp")
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    parser.add_argument("--child", choices=("llmcore", "llama_cpp"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.n_gen, args.threads)
        return 0
    if not args.llama_cpp_python:
        parser.error("--llama-cpp-python is required")
    ours, theirs = [], []
    for rep in range(args.repetitions):
        ours.append(run_child(sys.executable, "llmcore", args))
        theirs.append(run_child(args.llama_cpp_python, "llama_cpp", args))
        print(f"rep {rep + 1}: llmcore {ours[-1]:.1f} t/s, llama-cpp-python {theirs[-1]:.1f} t/s", file=sys.stderr)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"decode {args.n_gen} tokens, greedy, streamed: llmcore {a:.1f} t/s, llama-cpp-python {b:.1f} t/s, "
          f"{a / b:.2f}x (medians of {args.repetitions} alternating process pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
