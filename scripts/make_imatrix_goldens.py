"""Make tests/fixtures/imatrix: llama.cpp's llama-imatrix (0.3.36) run on the default model
(SmolLM2-135M-Instruct Q4_1) over tests/fixtures/perplexity/build-doc.txt, one output file per case
of ``CASES`` (the GGUF format, the legacy one, parallel sequences, micro-batches under 16 rows that
llama-imatrix skips, the output tensor, matrices combined with --in-file) and ``goldens.json`` with
each case's command line and the perplexities it printed. tests/test_imatrix.py runs ``llmcore
imatrix`` with the same arguments and compares.

    python scripts/make_imatrix_goldens.py [--llama-imatrix /tmp/lcpp-build/bin/llama-imatrix]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "imatrix"
TEXT_DIR = ROOT / "tests" / "fixtures" / "perplexity"  # the runs' working directory: "build-doc.txt" is recorded
TEXT = "build-doc.txt"

#: case -> llama-imatrix's arguments besides -m and -o ({fixtures} is tests/fixtures/imatrix)
CASES: dict[str, list[str]] = {
    # one chunk per batch
    "c64": ["-f", TEXT, "-c", "64", "-b", "64", "--chunks", "3"],
    # four chunks per batch as parallel sequences, 16 tokens of each per micro-batch; the output tensor
    "parallel": ["-f", TEXT, "-c", "32", "-b", "128", "-ub", "64", "--chunks", "5", "--process-output"],
    # micro-batches of 16, 16 and 8 tokens: llama-imatrix skips the 8; the legacy format; no perplexity
    "dat": ["-f", TEXT, "-c", "40", "-b", "40", "-ub", "16", "--chunks", "2", "--output-format", "dat", "--no-ppl"],
    # the two above combined, without a text
    "combined": ["--in-file", "{fixtures}/c64.gguf", "--in-file", "{fixtures}/dat.dat"],
}


def output_name(case: str) -> str:
    return f"{case}.dat" if "dat" in CASES[case] else f"{case}.gguf"


def case_arguments(case: str, model: str, output: str | Path) -> list[str]:
    args = [a.replace("{fixtures}", str(OUT)) for a in CASES[case]]
    return ["-m", model, "-o", str(output), *args]


def printed_perplexities(stdout: str) -> list[float]:
    """The running perplexities of llama-imatrix's ``[1]6.9715,[2]...`` line."""
    for line in stdout.splitlines():
        if line.startswith("[1]"):
            return [float(part.split("]")[1]) for part in line.rstrip(",").split(",") if part]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-imatrix", default="/tmp/lcpp-build/bin/llama-imatrix")
    args = parser.parse_args()
    from llmcore.hub.resolve import resolve_model

    model = str(resolve_model(None))
    OUT.mkdir(parents=True, exist_ok=True)
    goldens = {"llama_cpp": "llama-imatrix from llama-cpp-python 0.3.36's source tree, -t 2", "cases": {}}
    for case in CASES:
        output = OUT / output_name(case)
        command = [args.llama_imatrix, *case_arguments(case, model, output), "-t", "2"]
        done = subprocess.run(command, cwd=TEXT_DIR, capture_output=True, text=True, check=True)
        goldens["cases"][case] = {"args": CASES[case], "output": output.name,
                                  "chunk_ppls": printed_perplexities(done.stdout)}
        print(case, goldens["cases"][case]["chunk_ppls"])
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")


if __name__ == "__main__":
    main()
