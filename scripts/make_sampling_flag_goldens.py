"""Make the goldens of tests/test_sampling_flags.py: what llama-completion (llama.cpp 0.3.36) prints
for 32 seeded tokens of the default model with each of llama.cpp's sampling flags, which must each
change the output from the run without it.

    .venv/bin/python scripts/make_sampling_flag_goldens.py [--llama-completion PATH]

Writes tests/fixtures/sampling/flag_goldens.json: the prompt, the common flags and, per case, its
flags and llama-completion's output (latin-1 text of its bytes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from llmcore.hub import default_model_path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sampling" / "flag_goldens.json"
PROMPT = "List the numbers: one, two, three, one, two, three, one, two,"
COMMON = ["-n", "32", "-s", "7", "-c", "256", "--ignore-eos"]
CASES = {
    "seed only": [],
    "dry": ["--dry-multiplier", "0.8", "--dry-allowed-length", "1"],
    "dry base and window": ["--dry-multiplier", "0.8", "--dry-base", "1.2", "--dry-penalty-last-n", "16",
                            "--dry-allowed-length", "1"],
    "xtc": ["--xtc-probability", "0.5", "--xtc-threshold", "0.05"],
    "top-nsigma": ["--top-nsigma", "0.5"],
    "logit bias": ["-l", "1296-100"],  # " three"
    "samplers": ["--samplers", "top_k;temperature;top_p"],
    "sampling-seq": ["--sampling-seq", "kpt"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-completion", default="/tmp/lcpp-build/bin/llama-completion")
    args = parser.parse_args()
    model = str(default_model_path(progress=False))
    outputs = {}
    for name, flags in CASES.items():
        run = subprocess.run([args.llama_completion, "-m", model, "-p", PROMPT, *COMMON, *flags, "-no-cnv",
                              "--no-display-prompt", "-t", "2"], capture_output=True, check=True)
        outputs[name] = {"flags": flags, "output": run.stdout.decode("latin-1")}
        print(f"{name}: {run.stdout[:80]!r}")
    base = outputs["seed only"]["output"]
    unchanged = [name for name, case in outputs.items() if name != "seed only" and case["output"] == base]
    assert not unchanged, f"these flags do not change the output: {unchanged}"
    OUT.write_text(json.dumps({"prompt": PROMPT, "common": COMMON, "cases": outputs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
