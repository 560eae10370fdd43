"""A model file's jinja template renders within a budget (issue 15, finding 11): time, memory and the
prompt's length are bounded in a worker process, and the caller gets one-line errors."""

from __future__ import annotations

import time

import httpx
import pytest
from test_server import ServerProcess

from llmcore.chat import ChatTemplate, ChatTemplateError
from llmcore.chat.sandbox import RenderBudget

HUGE_STRING = "{{ 'a' * 300000000 }}"  # the attack of the issue: 300 MB
LONG_PROMPT = "{{ 'a' * 20000000 }}"  # fits in memory, not in the default 16 Mi characters
SLOW_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
MESSAGES = [{"role": "user", "content": "Hi"}]
CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _renders_normally() -> None:
    assert ChatTemplate.from_string(CHATML).render(MESSAGES) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_a_prompt_past_the_length_budget_is_refused_without_reaching_the_caller():
    started = time.monotonic()
    with pytest.raises(ChatTemplateError, match="20000000 characters, more than its render budget"):
        ChatTemplate.from_string(LONG_PROMPT).render(MESSAGES)
    assert time.monotonic() - started < 10
    _renders_normally()


def test_a_template_past_the_memory_budget_is_stopped():
    template = ChatTemplate.from_string(HUGE_STRING)
    template.budget = RenderBudget(memory_mib=128)
    with pytest.raises(ChatTemplateError, match=r"needed more than 128 MiB \(its render budget\)"):
        template.render(MESSAGES)
    _renders_normally()  # a fresh worker takes over


def test_a_template_past_the_time_budget_is_stopped():
    template = ChatTemplate.from_string(SLOW_LOOPS)
    template.budget = RenderBudget(seconds=1.0)
    started = time.monotonic()
    with pytest.raises(ChatTemplateError, match=r"longer than 1 s \(its render budget\)"):
        template.render(MESSAGES)
    assert time.monotonic() - started < 5
    _renders_normally()


def test_the_server_answers_a_runaway_template_with_an_error_and_stays_up(default_model_path, tmp_path):
    evil = tmp_path / "evil.jinja"
    evil.write_text(HUGE_STRING)
    server = ServerProcess(default_model_path, "--chat-template", str(evil))
    try:
        reply = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 4},
                           timeout=60)
        assert reply.status_code == 400
        assert "render budget" in reply.json()["error"]["message"]
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        completion = httpx.post(f"{server.url}/completion", json={"prompt": "Hi", "n_predict": 2}, timeout=60)
        assert completion.status_code == 200
    finally:
        server.stop()
