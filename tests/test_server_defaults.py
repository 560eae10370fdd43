"""``llmcore serve``'s sampling flags are the defaults of requests (llama-server's behaviour): shown in
``/props``, applied to a request that sets nothing, overridden field by field by one that does. The
oracle is ``LLM.create_completion`` in this process with the same settings (greedy decoding)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from test_server import ServerProcess

from llmcore import LLM

YES_NO = 'root ::= "yes" | "no"'
PROMPT = "Is the sky blue? Answer:"


@pytest.fixture(scope="module")
def server(default_model_path):
    proc = ServerProcess(default_model_path, "--temp", "0", "--repeat-penalty", "1.5", "--seed", "7",
                         "--grammar", YES_NO)
    yield proc
    proc.stop()


def test_props_report_the_flags_as_default_settings(server):
    params = httpx.get(f"{server.url}/props", timeout=30).json()["default_generation_settings"]["params"]
    assert (params["temperature"], params["repeat_penalty"], params["seed"]) == (0.0, 1.5, 7)
    assert params["top_k"] == 40  # a flag not given keeps llama.cpp's default


def test_a_request_without_settings_follows_the_flags(server, default_model_path):
    reply = httpx.post(f"{server.url}/completion", json={"prompt": PROMPT, "n_predict": 4}, timeout=120).json()
    llm = LLM(default_model_path, flash_attn="auto")  # the server's -fa default
    expected = llm.create_completion(PROMPT, max_tokens=4, temperature=0, repeat_penalty=1.5, grammar=YES_NO)
    assert reply["content"] in ("yes", "no")
    assert reply["content"] == expected.choices[0].text


def test_a_request_overrides_the_defaults_it_names(server, default_model_path):
    grammar = 'root ::= "maybe"'
    reply = httpx.post(f"{server.url}/completion", json={"prompt": PROMPT, "n_predict": 4, "grammar": grammar},
                       timeout=120).json()
    assert reply["content"] == "maybe"
    props = httpx.get(f"{server.url}/props", timeout=30).json()
    assert props["default_generation_settings"]["params"]["temperature"] == 0.0  # defaults stay


def test_a_bad_default_grammar_fails_at_startup_in_one_line(default_model_path):
    result = subprocess.run([sys.executable, "-m", "llmcore", "serve", "-m", str(default_model_path), "--port", "0",
                             "--grammar", "root ::= ("], capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "grammar" in result.stderr.strip().splitlines()[-1].lower()
