"""Speculative decoding (a draft model, llama.cpp's draft-simple) and lookup decoding (ngram-simple):
the target's sampler walks the rows of each verified draft, so each token is sampled from the
target's distribution at its position and greedy output is plain decoding's; and the drafts are
actually used. (Seeded sampling is not compared token for token: a verified row's logits come from
a batch of several tokens, whose products ggml, and cpu_simd with it, sums in another order than a
one-token step's, so a draw near a boundary may differ, as it may in llama.cpp.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcore import LLM
from llmcore.engine.speculative import DraftParams, NgramDrafter
from llmcore.errors import LLMCoreError

KW = dict(backend="cpu_simd", n_ctx=512, flash_attn="auto")
REPETITIVE = "".join(f"{name} = {value}\n" for name, value in zip("abcdefgh", range(8))) * 3


def _tokens(llm: LLM, prompt: str, n: int, **sampling) -> list[int]:
    return list(llm.generate_tokens(llm.tokenize(prompt), llm.sampler(**sampling), n, ignore_eos=True))


@pytest.fixture(scope="module")
def plain(default_model_path):
    return LLM(default_model_path, **KW)


def test_the_model_as_its_own_draft_gives_plain_greedy_tokens(plain, default_model_path):
    spec = LLM(default_model_path, draft_model=default_model_path, draft=DraftParams(n_max=4), **KW)
    prompt = "The three primary colors are"
    assert _tokens(spec, prompt, 40, temperature=0) == _tokens(plain, prompt, 40, temperature=0)
    timings = spec.last.timings
    assert timings.draft_n >= 30 and timings.draft_n_accepted >= 0.8 * timings.draft_n, timings
    assert timings.predicted_n == 39  # every output token but the last was decoded, drafted or not


def test_lookup_decoding_gives_plain_greedy_tokens(plain, default_model_path):
    lookup = LLM(default_model_path, spec_type="ngram-simple", draft=DraftParams(ngram_size_n=3, ngram_size_m=8), **KW)
    assert _tokens(lookup, REPETITIVE, 48, temperature=0) == _tokens(plain, REPETITIVE, 48, temperature=0)
    assert lookup.last.timings.draft_n_accepted > 8, lookup.last.timings


def test_ngram_draft_is_llama_cpp_s():
    """common_ngram_simple_draft: the latest earlier match of the last n tokens (the sampled one
    included), its following tokens up to m, none when fewer than n follow."""
    drafter = NgramDrafter(size_n=2, size_m=3)
    history = [1, 5, 6, 7, 8, 9, 5, 6, 2, 3, 4, 9, 9]
    assert drafter.draft(history, 5, 16) == [6, 2, 3]   # [9, 5] last seen at 5..6, not at 0
    assert drafter.draft(history, 4, 16) == []          # [9, 4] never seen
    assert drafter.draft(history[:6], 5, 16) == []      # too short a history for n + m + 1


def test_speculative_flags(tmp_path: Path):
    from llmcore.cli import build_parser

    args = build_parser("run").parse_args(["run", "-md", "d.gguf", "--spec-draft-n-max", "8", "--draft-p-min", "0.5"])
    assert (args.model_draft, args.spec_draft_n_max, args.spec_draft_p_min, args.spec_draft_n_min) == ("d.gguf", 8, 0.5, 0)
    with pytest.raises(LLMCoreError, match="needs a draft model"):
        LLM(Path(__file__).parent / "fixtures" / "adapters" / "base.gguf", spec_type="draft-simple", backend="reference")


def test_the_server_decodes_speculatively_with_plain_text(default_model_path):
    """``llmcore serve -md``: /completion and /v1/chat/completions give the text of plain decoding,
    and /completion's timings count the drafted and accepted tokens, as llama-server's."""
    import httpx

    from test_server import ServerProcess

    # flash attention (-fa auto) computes a row as in a one-token step; without it a verified batch's
    # attention sums in tinyBLAS's order, as ggml's, and a near tie may go the other way
    server = ServerProcess(default_model_path, "-md", str(default_model_path), "--spec-draft-n-max", "4",
                           "-np", "2", "-c", "1024", "--backend", "cpu_simd", "-fa", "auto")
    oracle = LLM(default_model_path, **KW)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            done = http.post("/completion", json={"prompt": "The three primary colors are", "n_predict": 32,
                                                  "temperature": 0, "cache_prompt": False}).json()
            chat = http.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 24,
                                                           "temperature": 0, "cache_prompt": False}).json()
    finally:
        server.stop()
    oracle.reset()
    assert done["content"] == oracle.create_completion("The three primary colors are", max_tokens=32,
                                                       temperature=0).choices[0].text
    assert done["timings"]["draft_n"] >= 16 and done["timings"]["draft_n_accepted"] >= 8, done["timings"]
    oracle.reset()
    expected = oracle.create_chat_completion(messages, max_tokens=24, temperature=0)
    assert chat["choices"][0]["message"]["content"] == expected.choices[0].message.content
