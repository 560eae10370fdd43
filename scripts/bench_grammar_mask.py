"""Grammar mask speed: llmcore (llguidance) against llama.cpp's own GBNF sampler, same grammar, same
vocabulary, same token sequence, same run.

For every token of a fixed JSON document (tokenized with the vocabulary) both engines compute the
full mask over the whole vocabulary, then advance past that token:

* llmcore: ``GrammarMatcher.fill_mask`` (the worst case: the sampler only needs it when the sampled
  token was rejected);
* llama.cpp: ``llama_sampler_apply`` of ``llama_sampler_init_grammar`` on a full candidate array,
  through llama-cpp-python in the oracle venv (run as a child process of this script).

    python scripts/bench_grammar_mask.py [--vocab ggml-vocab-qwen2.gguf] [--grammar json.gbnf]

Prints median and p99 per token for both, and the ratio. Target: ours <= 1/100 of llama.cpp's
median, p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_VOCAB = "/work/shared/fixtures/vocab/ggml-vocab-qwen2.gguf"
DEFAULT_GRAMMAR = "/work/llama-src/vendor/llama.cpp/grammars/json.gbnf"
ORACLE_PYTHON = "/work/venv-oracle/bin/python"
DOCUMENT = json.dumps({
    "name": "Ada Lovelace", "born": 1815, "languages": ["English", "French"], "ratio": 0.618,
    "notes": "First to publish an algorithm for a machine.\nHonoured in 1980.",
    "works": [{"title": "Sketch of the Analytical Engine", "year": 1843, "pages": 65, "translated": True},
              {"title": "Notes", "year": 1843, "pages": None, "translated": False}],
    "scores": {"math": 9.5e1, "poetry": -3, "music": 7},
}, indent=1)


class _Timer:
    """Per-token wall time and thread CPU time; on a shared machine the CPU time leaves out the
    moments this thread was preempted, which otherwise dominate the p99."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.cpu.append(time.thread_time() - self._cpu)
        self.wall.append(time.perf_counter() - self._wall)

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {"tokens": len(self.wall)}
        for name, seconds in (("wall", self.wall), ("cpu", self.cpu)):
            values = np.array(seconds) * 1e6
            out[f"{name}_median_us"] = float(np.median(values))
            out[f"{name}_p99_us"] = float(np.percentile(values, 99))
        return out


def bench_llmcore(vocab_path: str, grammar_text: str, token_ids: list[int]) -> dict[str, float]:
    from llmcore.grammar import Grammar
    from llmcore.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_gguf(vocab_path)
    grammar = Grammar.from_gbnf(grammar_text)
    grammar.matcher(tokenizer)  # build the vocabulary bridge and compile once, outside the timing
    matcher = grammar.matcher(tokenizer)
    mask = np.zeros(tokenizer.n_vocab, dtype=bool)
    timer = _Timer()
    for token in token_ids:
        mask[:] = False
        with timer:
            matcher.fill_mask(mask)
        if not mask[token]:
            raise SystemExit(f"llmcore rejected token {token} of the benchmark document")
        matcher.accept(token)
    return timer.stats()


def bench_llama_cpp(vocab_path: str, grammar_text: str, token_ids: list[int]) -> dict[str, float]:
    """Runs inside the oracle venv (llama-cpp-python)."""
    import ctypes

    import llama_cpp

    model = llama_cpp.Llama(model_path=vocab_path, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(model.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar_text.encode(), b"root")
    if not sampler:
        raise SystemExit("llama.cpp could not parse the grammar")
    candidates = (llama_cpp.llama_token_data * n_vocab)()
    ids = np.arange(n_vocab, dtype=np.int32)
    fresh = np.zeros(n_vocab, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)])
    fresh["id"] = ids
    view = np.frombuffer(candidates, dtype=fresh.dtype)
    array = llama_cpp.llama_token_data_array(candidates, n_vocab, -1, False)
    timer = _Timer()
    for token in token_ids:
        view[:] = fresh
        array.size, array.selected, array.sorted = n_vocab, -1, False
        with timer:
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        if not np.isfinite(view["logit"][token]):
            raise SystemExit(f"llama.cpp rejected token {token} of the benchmark document")
        llama_cpp.llama_sampler_accept(sampler, token)
    llama_cpp.llama_sampler_free(sampler)
    return timer.stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default=DEFAULT_VOCAB)
    parser.add_argument("--grammar", default=DEFAULT_GRAMMAR)
    parser.add_argument("--oracle-python", default=ORACLE_PYTHON)
    parser.add_argument("--llama-cpp-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    grammar_text = Path(args.grammar).read_text(encoding="utf-8")

    if args.llama_cpp_child:
        token_ids = json.loads(sys.stdin.read())
        print(json.dumps(bench_llama_cpp(args.vocab, grammar_text, token_ids)))
        return

    from llmcore.tokenizer import Tokenizer

    token_ids = Tokenizer.from_gguf(args.vocab).tokenize(DOCUMENT, add_special=False)
    ours = bench_llmcore(args.vocab, grammar_text, token_ids)
    child = subprocess.run([args.oracle_python, __file__, "--llama-cpp-child", "--vocab", args.vocab,
                            "--grammar", args.grammar], input=json.dumps(token_ids), capture_output=True,
                           text=True, check=True)
    theirs = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"vocabulary {Path(args.vocab).name}, grammar {Path(args.grammar).name}, {len(token_ids)} tokens")
    print(f"  {'per token':26s} {'median wall':>13s} {'p99 wall':>13s} {'median cpu':>13s} {'p99 cpu':>13s}")
    for name, result in (("llmcore (llguidance)", ours), ("llama.cpp grammar sampler", theirs)):
        cells = "".join(f"{result[key]:10.1f} us" for key in ("wall_median_us", "wall_p99_us", "cpu_median_us",
                                                              "cpu_p99_us"))
        print(f"  {name:26s} {cells}")
    for clock in ("wall", "cpu"):
        ratio = theirs[f"{clock}_median_us"] / ours[f"{clock}_median_us"]
        print(f"  median ratio llama.cpp / llmcore ({clock}): {ratio:.0f}x")


if __name__ == "__main__":
    main()
