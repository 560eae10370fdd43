"""Time ``llmcore quantize`` against llama.cpp's ``llama-quantize`` on the same input, repetitions
interleaved, wall and CPU time (user + system) of each whole command (start-up included), and check
the outputs are equal.

    .venv/bin/python scripts/bench_quantize.py /path/to/llama-quantize [--model M] [--type Q4_K_M]
        [--threads N] [--imatrix FILE] [-r 5]

The model defaults to the default model (SmolLM2-135M-Instruct Q4_1, requantized with
--allow-requantize); prints each pair of times, the medians and their ratios, and the load average
before and after (the machine may be shared). llmcore runs with its bytecode cached, as an installed
package does (pip compiles it when installing): PYTHONDONTWRITEBYTECODE is lifted for it and the cache
kept in the run's temporary directory (the first, untimed run fills it); ``--no-bytecode-cache``
compiles every module on every run instead.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """The command's wall time and CPU time (its user and system time, threads included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_quantize")
    parser.add_argument("--model", help="default: the default model")
    parser.add_argument("--type", default="Q4_K_M")
    parser.add_argument("--threads", type=int, default=0, help="both tools' NTHREADS (default: every CPU)")
    parser.add_argument("--imatrix", help="an importance matrix both tools quantize with")
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    parser.add_argument("--no-bytecode-cache", action="store_true", help="llmcore compiles its modules on every run")
    args = parser.parse_args()
    if args.model is None:
        from llmcore.hub import default_model_path

        args.model = default_model_path(progress=False)
    llmcore = [sys.executable, "-m", "llmcore", "quantize", "--no-progress"]
    times: dict[str, list[tuple[float, float]]] = {"llmcore": [], "llama.cpp": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {"llmcore": Path(tmp) / "llmcore.gguf", "llama.cpp": Path(tmp) / "llama.gguf"}
        tail = [str(args.threads)] if args.threads > 0 else []
        options = ["--allow-requantize", *(["--imatrix", args.imatrix] if args.imatrix else [])]
        commands = {
            "llmcore": [*llmcore, *options, args.model, str(outputs["llmcore"]), args.type, *tail],
            "llama.cpp": [args.llama_quantize, *options, args.model, str(outputs["llama.cpp"]), args.type, *tail],
        }
        envs = {"llama.cpp": dict(os.environ), "llmcore": dict(os.environ)}
        if args.no_bytecode_cache:
            envs["llmcore"]["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            envs["llmcore"].pop("PYTHONDONTWRITEBYTECODE", None)
            envs["llmcore"]["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        _timed(commands["llmcore"], envs["llmcore"])  # builds the quantizers (and the bytecode) on a first run
        for repetition in range(args.repetitions):
            for name in ("llama.cpp", "llmcore") if repetition % 2 else ("llmcore", "llama.cpp"):
                times[name].append(_timed(commands[name], envs[name]))
            print(f"rep {repetition + 1}: " + ", ".join(f"{name} {times[name][-1][0]:.3f} s wall {times[name][-1][1]:.3f} s CPU"
                                                   for name in ("llmcore", "llama.cpp")))
        same = outputs["llmcore"].read_bytes() == outputs["llama.cpp"].read_bytes()
    for column, what in ((0, "wall"), (1, "CPU")):
        ours = statistics.median(t[column] for t in times["llmcore"])
        theirs = statistics.median(t[column] for t in times["llama.cpp"])
        print(f"median {what}: llmcore {ours:.3f} s, llama.cpp {theirs:.3f} s, ratio {theirs / ours:.2f}x")
    print(f"outputs {'identical' if same else 'DIFFERENT'}; load average before "
          f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
