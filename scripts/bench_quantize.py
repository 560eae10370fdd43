"""Time ``llmcore quantize`` against llama.cpp's ``llama-quantize`` on the same input, repetitions
interleaved, wall time of each whole command (start-up included), and check the outputs are equal.

    .venv/bin/python scripts/bench_quantize.py /path/to/llama-quantize [--model M] [--type Q4_K_M]
        [--threads N] [-r 5]

The model defaults to the default model (SmolLM2-135M-Instruct Q4_1, requantized with
--allow-requantize); prints each pair of times, the medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_quantize")
    parser.add_argument("--model", help="default: the default model")
    parser.add_argument("--type", default="Q4_K_M")
    parser.add_argument("--threads", type=int, default=0, help="both tools' NTHREADS (default: every CPU)")
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    args = parser.parse_args()
    if args.model is None:
        from llmcore.hub import default_model_path

        args.model = default_model_path(progress=False)
    llmcore = [sys.executable, "-m", "llmcore", "quantize", "--no-progress"]
    times: dict[str, list[float]] = {"llmcore": [], "llama.cpp": []}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {"llmcore": Path(tmp) / "llmcore.gguf", "llama.cpp": Path(tmp) / "llama.gguf"}
        tail = [str(args.threads)] if args.threads > 0 else []
        commands = {
            "llmcore": [*llmcore, "--allow-requantize", args.model, str(outputs["llmcore"]), args.type, *tail],
            "llama.cpp": [args.llama_quantize, "--allow-requantize", args.model, str(outputs["llama.cpp"]),
                          args.type, *tail],
        }
        _timed(commands["llmcore"])  # builds the quantizers on a first run
        for repetition in range(args.repetitions):
            for name in ("llama.cpp", "llmcore") if repetition % 2 else ("llmcore", "llama.cpp"):
                times[name].append(_timed(commands[name]))
            print(f"rep {repetition + 1}: llmcore {times['llmcore'][-1]:.3f} s, llama.cpp {times['llama.cpp'][-1]:.3f} s")
        same = outputs["llmcore"].read_bytes() == outputs["llama.cpp"].read_bytes()
    ours, theirs = statistics.median(times["llmcore"]), statistics.median(times["llama.cpp"])
    print(f"median: llmcore {ours:.3f} s, llama.cpp {theirs:.3f} s, speed ratio {theirs / ours:.2f}x "
          f"(outputs {'identical' if same else 'DIFFERENT'})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
