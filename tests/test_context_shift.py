"""Context shift (``--context-shift``, ``--keep``): generating past a full context as llama.cpp does,
token for token against llama-completion's output (tests/fixtures/context_shift, made by
scripts/make_context_shift_goldens.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmcore.api import LLM
from llmcore.engine.sequence import context_shift_span

GOLDENS = json.loads((Path(__file__).parent / "fixtures" / "context_shift" / "goldens.json").read_text())


@pytest.fixture(scope="module")
def llm(default_model_path):
    return LLM(default_model_path, backend="cpu_simd", n_ctx=GOLDENS["n_ctx"], flash_attn=GOLDENS["flash_attn"],
               n_threads=2)


@pytest.mark.parametrize("keep", [-1])
def test_generation_past_the_context_matches_llama_completion(llm, keep):
    text = "".join(llm.generate(GOLDENS["prompt"], max_tokens=GOLDENS["n_predict"], ignore_eos=True,
                                temperature=0, context_shift=True, n_keep=keep))
    assert llm.last.completion_tokens == GOLDENS["n_predict"]
    assert text == GOLDENS["texts"][str(keep)]


def test_without_context_shift_generation_stops_at_a_full_context(llm):
    n_prompt = len(llm.tokenize(GOLDENS["prompt"]))
    "".join(llm.generate(GOLDENS["prompt"], max_tokens=GOLDENS["n_predict"], ignore_eos=True, temperature=0))
    assert llm.last.completion_tokens == GOLDENS["n_ctx"] - n_prompt
    assert llm.last.finish_reason == "length"


def test_the_run_command_shifts_with_llama_cpps_flags(default_model_path):
    command = [sys.executable, "-m", "llmcore", "run", "-m", str(default_model_path), "-p", GOLDENS["prompt"],
               "-c", str(GOLDENS["n_ctx"]), "-n", str(GOLDENS["n_predict"]), "--ignore-eos", "--context-shift",
               "--temp", "0", "-t", "2"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL).stdout
    assert out == GOLDENS["prompt"] + GOLDENS["texts"]["0"] + "\n"


def test_the_span_follows_llama_cpp():
    # llama-completion: --keep counts tokens after the BOS; half of the rest goes
    assert context_shift_span(255, 6, 256, n_keep=0, add_bos=True) == (1, 127)
    assert context_shift_span(255, 6, 256, n_keep=-1) == (6, 124)
    assert context_shift_span(255, 6, 256, n_keep=99) == (6, 124)  # more than the prompt: the prompt
    # llama-server's clamps: never keep more than n_ctx - 4, never discard everything left
    assert context_shift_span(255, 300, 256, n_keep=-1) == (252, 1)
    assert context_shift_span(255, 6, 256, n_keep=2, n_discard=500) == (2, 252)


def test_the_server_shifts_a_slots_context(default_model_path):
    from test_server import ServerProcess

    server = ServerProcess(default_model_path, "-c", str(GOLDENS["n_ctx"]), "--context-shift", "-t", "2")
    try:
        body = {"prompt": GOLDENS["prompt"], "n_predict": GOLDENS["n_predict"], "ignore_eos": True,
                "temperature": 0, "n_keep": -1}
        reply = httpx.post(f"{server.url}/completion", json=body, timeout=120).json()
        short = httpx.post(f"{server.url}/completion", json=body | {"n_predict": 8}, timeout=120).json()
    finally:
        server.stop()
    assert reply["content"] == GOLDENS["texts"]["-1"] and reply["truncated"] is True
    assert reply["tokens_predicted"] == GOLDENS["n_predict"]
    assert short["truncated"] is False and GOLDENS["texts"]["-1"].startswith(short["content"])


def test_interactive_completion_goes_on_after_a_shift(default_model_path):
    """The second turn continues from the shifted cache, not from the whole history (which no
    longer fits the context)."""
    command = [sys.executable, "-m", "llmcore", "run", "-m", str(default_model_path), "-p", GOLDENS["prompt"],
               "-c", str(GOLDENS["n_ctx"]), "-n", "300", "--ignore-eos", "--context-shift", "--temp", "0", "-t", "2",
               "-i"]
    done = subprocess.run(command, capture_output=True, text=True, input="And then\n", timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    first_reply = GOLDENS["texts"]["0"][:len(done.stdout) - len(GOLDENS["prompt"])]
    assert done.stdout.startswith(GOLDENS["prompt"] + first_reply[:1000])
    decoded = re.search(r"llmcore_perf: eval time = .* / +(\d+) runs", done.stderr)
    assert decoded and int(decoded.group(1)) == 2 * (300 - 1), done.stderr[-400:]  # a reply's last token is decoded with the next input
