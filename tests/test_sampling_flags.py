"""Each of llama.cpp's sampling flags (-l, DRY, XTC, --top-nsigma, --samplers, --sampling-seq) as
`llmcore run` parses it gives llama-completion's 32 seeded tokens of the default model, byte for
byte (tests/fixtures/sampling/flag_goldens.json, made by scripts/make_sampling_flag_goldens.py; each
flag changes llama.cpp's output there). The seeded draws are std::mt19937's, as llama.cpp's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcore import LLM

GOLD = json.loads((Path(__file__).parent / "fixtures" / "sampling" / "flag_goldens.json").read_text())


@pytest.fixture(scope="module")
def llm(default_model_path):
    return LLM(default_model_path, backend="cpu_simd", n_ctx=256, flash_attn="auto", n_threads=2)


@pytest.mark.parametrize("case", list(GOLD["cases"]))
def test_flag_gives_llama_completion_tokens(llm, case):
    from llmcore.cli import build_parser
    from llmcore.cli.sampling_args import sampling_from_args

    args = build_parser("run").parse_args(["run", *GOLD["common"], *GOLD["cases"][case]["flags"]])
    sampler = llm.sampler(**sampling_from_args(args))
    llm.reset()
    tokens = llm.generate_tokens(llm.tokenize(GOLD["prompt"]), sampler, args.n_predict, ignore_eos=args.ignore_eos)
    text = b"".join(llm.tokenizer.token_to_piece(t, special=False) for t in tokens)
    assert text + b"\n\n" == GOLD["cases"][case]["output"].encode("latin-1")
