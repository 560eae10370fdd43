"""One generation loop and one sampling model: the server and the Python API sample the same tokens
for the same prompt, seed and settings (penalties over the whole context and DRY included), and
a sampling field declared once appears as a CLI flag, an ``LLM`` keyword and a request field."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import pytest
from test_server import ServerProcess

N_CTX = 512
PROMPT = "The old lighthouse keeper climbed the stairs every night, counting them: one, two, three,"
# settings that make every stage with a history matter: penalties over the whole context (-1),
# DRY over the whole context, a seeded random draw
SETTINGS = {
    "seed": 1234, "temperature": 0.9, "top_k": 0, "top_p": 1.0, "min_p": 0.02,
    "repeat_penalty": 1.3, "repeat_last_n": -1, "frequency_penalty": 0.3, "presence_penalty": 0.2,
    "dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 2, "dry_penalty_last_n": -1,
    "dry_sequence_breakers": ["\n", ","],
}


@pytest.fixture(scope="module")
def llm(default_model_path):
    from llmcore.api import LLM

    return LLM(default_model_path, n_ctx=N_CTX, flash_attn="auto")  # the server's default, as llama-server's


@pytest.fixture(scope="module")
def server(default_model_path):
    proc = ServerProcess(default_model_path, "-np", "1", "-c", str(N_CTX))
    yield proc
    proc.stop()


@pytest.mark.parametrize("stop", [[], ["Captain Grimstone"]])
def test_server_and_api_sample_the_same_tokens(llm, server, stop):
    reply = httpx.post(f"{server.url}/completion", timeout=120, json={
        "prompt": PROMPT, "n_predict": 40, "stop": stop, "cache_prompt": False, **SETTINGS})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    sampler = llm.sampler(**SETTINGS)
    tokens = [step.token for step in llm.generation(llm.tokenize(PROMPT, parse_special=True), sampler, 40, stop=stop)]
    assert body["tokens"] == tokens
    assert body["tokens_predicted"] == llm.last.completion_tokens
    assert body["stop_type"] == ("word" if stop else "limit")
    assert body["content"] == "".join(llm.generate(PROMPT, max_tokens=40, stop=stop, **SETTINGS))
    # the histories shape these tokens: without penalties and DRY, the same seed samples others
    plain = llm.sampler(**{**SETTINGS, "repeat_last_n": 0, "dry_multiplier": 0.0})
    assert body["tokens"] != [step.token for step in llm.generation(llm.tokenize(PROMPT, parse_special=True), plain, 40)]


def test_a_field_declared_once_reaches_the_cli_the_api_and_the_server(default_model_path):
    script = textwrap.dedent(f"""
        import json
        import llmcore.engine.sampling as sampling

        class WithShine(sampling.SamplingParams):
            shine: float = sampling.knob(0.25, "--shine", help="how much the tokens shine")

        sampling.SamplingParams = WithShine  # before the faces import it

        from llmcore.api import LLM
        from llmcore.cli import build_parser
        from llmcore.cli.sampling_args import sampling_from_args
        from llmcore.server.schemas import CompletionRequest

        parser = build_parser()
        args = parser.parse_args(["run", "--shine", "0.75"])
        request = CompletionRequest(prompt="hi", shine=0.5)
        sampler = LLM({str(default_model_path)!r}, n_ctx=64).sampler(shine=0.9)
        print(json.dumps({{
            "help": "--shine" in parser._subparsers._group_actions[0].choices["run"].format_help(),
            "cli": sampling_from_args(args).get("shine"),
            "server": request.sampling_settings().get("shine"),
            "server_default": CompletionRequest(prompt="hi").sampling_settings().get("shine"),
            "api": sampler.params.shine,
        }}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen == {"help": True, "cli": 0.75, "server": 0.5, "server_default": None, "api": 0.9}


def test_defaults_are_written_once(llm):
    from llmcore.cli import build_parser
    from llmcore.cli.sampling_args import sampling_from_args
    from llmcore.engine.sampling import SamplingParams
    from llmcore.server.schemas import ChatCompletionRequest

    assert sampling_from_args(build_parser().parse_args(["run"])) == {}  # no flag: the model's defaults
    assert ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}]).sampling_settings() == {}
    assert llm.sampler().params == SamplingParams(seed=llm.seed)
    assert (SamplingParams().temperature, SamplingParams().top_k, SamplingParams().dry_penalty_last_n) == (0.8, 40, 64)
