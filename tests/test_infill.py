"""Fill-in-the-middle: ``llmcore serve``'s ``/infill`` builds llama-server's prompt (format_prompt_infill:
the repo-level FIM pattern with the model's FIM tokens, found by their text) and continues it as
llama.cpp 0.3.36 does. A tiny random llama with Qwen2.5-Coder's FIM tokens added to its vocabulary
(tests/fixtures/infill, made by scripts/make_infill_goldens.py with llama.cpp's tokenizer and FIM ids)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np

from llmcore.engine.infill import ExtraChunk, infill_prompt
from llmcore.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
FIM = FIXTURES / "infill" / "fim.gguf"
GOLD = np.load(FIXTURES / "infill" / "goldens.npz")
REQUESTS = json.loads(str(GOLD["requests"]))


def test_the_prompt_is_llama_servers():
    tokenizer = Tokenizer.from_gguf(FIM)
    for name, request in REQUESTS.items():
        prompt = tokenizer.tokenize(request.get("prompt", ""), add_special=False, parse_special=True)
        tokens = infill_prompt(tokenizer, request["input_prefix"], request["input_suffix"],
                               [ExtraChunk(**chunk) for chunk in request.get("input_extra", [])], prompt,
                               n_batch=512, n_ctx=1024)
        assert tokens == GOLD[f"{name}.prompt"].tolist(), name


def test_the_api_continues_the_middle_as_llama_cpp():
    from llmcore import LLM

    llm = LLM(FIM, backend="cpu_simd", n_ctx=1024, n_batch=512)
    request = REQUESTS["extra"]
    tokens = llm.infill_prompt(request["input_prefix"], request["input_suffix"],
                               [ExtraChunk(**chunk) for chunk in request["input_extra"]], request["prompt"])
    assert tokens == GOLD["extra.prompt"].tolist()
    assert list(llm.generate_tokens(tokens, llm.sampler(temperature=0), 12, ignore_eos=True)) == GOLD["extra.greedy"].tolist()


def test_server_infill_answers_as_llama_cpp(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from test_server import ServerProcess

    server = ServerProcess(FIM, "-c", "1024", "-b", "512", "--backend", "cpu_simd", "-fa", "off")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for name, request in REQUESTS.items():
                reply = http.post("/infill", json={**request, "n_predict": 12, "temperature": 0, "ignore_eos": True})
                assert reply.status_code == 200, reply.text
                body = reply.json()
                assert body["tokens_evaluated"] == len(GOLD[f"{name}.prompt"]), name
                assert body["tokens"] == GOLD[f"{name}.greedy"].tolist(), name
            bad = http.post("/infill", json={"input_suffix": "x"})
            assert bad.status_code == 400 and "input_prefix" in bad.text
    finally:
        server.stop()


def test_a_model_without_fim_tokens_is_refused(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from test_server import ServerProcess

    server = ServerProcess(FIXTURES / "adapters" / "base.gguf", "-c", "128", "--backend", "cpu_simd")
    try:
        reply = httpx.post(f"{server.url}/infill", json={"input_prefix": "a", "input_suffix": "b"}, timeout=30)
        assert reply.status_code == 501
        assert "Infill is not supported by this model: prefix token is missing." in reply.text
    finally:
        server.stop()
