"""Make the context-shift goldens of tests/test_context_shift.py: what llama.cpp's ``llama-completion``
prints for the default model (SmolLM2-135M-Instruct Q4_1) generating past a small context with
``--context-shift``, greedy, for each ``--keep`` in ``CASES``.

    python scripts/make_context_shift_goldens.py LLAMA_COMPLETION [MODEL]

``LLAMA_COMPLETION`` is llama.cpp 0.3.36's tool (built from llama-cpp-python 0.3.36's tree); MODEL
defaults to the cached default model. Written to ``tests/fixtures/context_shift/goldens.json``: the
flags and, per case, the generated text (what llama-completion writes after the prompt, less the
two newlines it ends with).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "context_shift" / "goldens.json"
PROMPT = "The history of the printing press"
N_CTX, N_PREDICT = 256, 400
CASES = (0, -1)  # --keep


def main() -> None:
    tool = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else str(Path.home() / ".cache/llmcore/SmolLM2-135M-Instruct.Q4_1.gguf")
    goldens = {"prompt": PROMPT, "n_ctx": N_CTX, "n_predict": N_PREDICT, "flash_attn": "auto", "texts": {}}
    for keep in CASES:
        command = [tool, "-m", model, "-p", PROMPT, "-c", str(N_CTX), "-n", str(N_PREDICT), "--ignore-eos",
                   "--context-shift", "--keep", str(keep), "--temp", "0", "-t", "2", "-no-cnv"]
        out = subprocess.run(command, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL).stdout
        assert out.startswith(PROMPT) and out.endswith("\n\n"), out[-40:]
        goldens["texts"][str(keep)] = out[len(PROMPT):-2]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(goldens, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
