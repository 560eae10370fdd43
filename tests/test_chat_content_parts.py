"""A message ``content`` given as a list of parts (``[{"type": "text", "text": "Hi"}]``, as the official
OpenAI clients and many UIs send it): text parts are read the way llama-server reads them, anything else
is refused (this model takes text only), in ChatTemplate, LLM.create_chat_completion and the server.

The oracle is llama-server itself: fixtures/chat/content_parts_goldens.json records, per template and
conversation, whether its prompt for the parts is its prompt for the parts joined by newlines ("joins")
or the template read the list itself ("parts"), and the content capabilities llama.cpp found in each
jinja template; scripts/make_content_parts_goldens.py writes it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from llmcore.chat import ChatContentError, ChatTemplate, ChatTemplateError
from llmcore.chat.caps import content_support
from llmcore.chat.template import _environment
from llmcore.chat.tools import tool_schema, with_instructions
from llmcore.errors import LLMCoreError

FIXTURES = Path(__file__).parent / "fixtures" / "chat"
GOLDENS = json.loads((FIXTURES / "content_parts_goldens.json").read_text(encoding="utf-8"))
TRANSFORMERS = json.loads((FIXTURES / "jinja_goldens.json").read_text(encoding="utf-8"))
NOW = datetime.fromisoformat(TRANSFORMERS["now"])

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def text(*texts: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t} for t in texts]


def joined(messages: list[dict]) -> list[dict]:
    """Each list of text parts as one string, joined by newlines (an empty part adds none), as
    llama.cpp's concat_content_parts() joins them."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = ""
            for part in message["content"]:
                content = f"{content}\n{part['text']}" if content else part["text"]
        out.append({**message, "content": content})
    return out


def _render(template: ChatTemplate, messages: list[dict]) -> str:
    """The prompt, or the error as text: llama-server has per-format workarounds (a system message merged
    into the first user turn, say) where a template as written refuses a conversation, parts or not."""
    try:
        return template.render(messages, now=NOW)
    except ChatTemplateError as error:
        return f"error: {error}"


def _differences(template: ChatTemplate, decisions: dict[str, str], transformers: dict | None = None) -> list[str]:
    """How our reading of each golden conversation differs from llama-server's decision."""
    problems = []
    for name, messages in GOLDENS["conversations"].items():
        decision = decisions[name]
        ours, ours_joined = _render(template, messages), _render(template, joined(messages))
        if decision == "joins" and ours != ours_joined:
            problems.append(f"{name}: llama-server joins the parts, ours:\n{ours!r}\njoined:\n{ours_joined!r}")
        elif decision == "parts" and (ours == ours_joined or ours.startswith("error: ")):
            problems.append(f"{name}: llama-server gives the template the parts, ours: {ours!r}")
        elif decision == "parts" and name == "user_parts" and transformers is not None:
            golden = transformers["content_parts|gen"]
            if ours != golden.get("text"):
                problems.append(f"{name}: the template reads the parts; transformers renders {golden}, ours {ours!r}")
        elif decision not in ("joins", "parts"):
            problems.append(f"{name}: llama-server refused it ({decision}); regenerate the goldens")
    return problems


def test_the_goldens_cover_every_template() -> None:
    assert sorted(GOLDENS["jinja"]) == sorted(p.name for p in (FIXTURES / "templates").glob("*.jinja"))
    assert GOLDENS["conversations"]["user_parts"] == TRANSFORMERS["conversations"]["content_parts"]["messages"]


@pytest.mark.parametrize("template_file", sorted(GOLDENS["jinja"]))
def test_jinja_template_reads_text_parts_as_llama_server(template_file: str) -> None:
    source = (FIXTURES / "templates" / template_file).read_text(encoding="utf-8")
    template = ChatTemplate.from_string(source, bos_token=TRANSFORMERS["bos_token"], eos_token=TRANSFORMERS["eos_token"])
    transformers = TRANSFORMERS["renders"][template_file]
    assert _differences(template, GOLDENS["jinja"][template_file], transformers) == []


@pytest.mark.parametrize("template_file", sorted(GOLDENS["jinja"]))
def test_content_support_is_what_llama_cpp_finds(template_file: str) -> None:
    source = (FIXTURES / "templates" / template_file).read_text(encoding="utf-8")
    string, typed = content_support(source, _environment())
    want_string, want_typed = GOLDENS["jinja"][template_file]["caps"]
    assert typed == want_typed
    if "error" not in TRANSFORMERS["renders"][template_file]["user_only|gen"]:
        # (a template that refuses even a plain conversation here, where llama.cpp's engine renders it,
        # fails the string probe too; either way its lists are joined)
        assert string == want_string


@pytest.mark.parametrize("name", sorted(GOLDENS["builtin"]))
def test_builtin_template_joins_text_parts_as_llama_server(name: str) -> None:
    assert _differences(ChatTemplate.builtin(name), GOLDENS["builtin"][name]) == []


def test_model_template_reads_text_parts_as_llama_server(default_model_path) -> None:
    gguf = pytest.importorskip("gguf")
    fields = gguf.GGUFReader(default_model_path).fields
    keys = ("tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")
    template = ChatTemplate.resolve(None, {key: fields[key].contents() for key in keys})
    assert _differences(template, GOLDENS["model_template"]) == []


def test_a_template_that_reads_only_parts_gets_strings_as_one_part() -> None:
    template = ChatTemplate.from_string("{% for m in messages %}{% for p in m.content %}[{{ p.text }}]{% endfor %}{% endfor %}")
    assert template.render([{"role": "user", "content": "Hi"}]) == "[Hi]"
    assert template.render([{"role": "user", "content": text("Hi", "there")}]) == "[Hi][there]"


def test_parts_are_rebuilt_from_type_and_text_only() -> None:
    template = ChatTemplate.from_string("{{ messages[0].content | tojson }}|{{ messages[1].content | tojson }}")
    both = ChatTemplate.from_string(
        "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
        "{% for p in m.content %}{{ p | tojson }}{% endfor %}{% endif %};{% endfor %}")
    extra = [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]
    # a template that never loops over or indexes content reads strings: the parts joined; an empty list is ""
    assert template.render([{"role": "user", "content": extra}, {"role": "user", "content": []}]) == '"Hi"|""'
    # a template reading both: the parts as llama-server passes them, type and text only
    assert both.render([{"role": "user", "content": extra}]) == '{"type": "text", "text": "Hi"};'


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [ChatTemplate.builtin("chatml"), ChatTemplate.builtin("llama3"),
                                      ChatTemplate.from_string("{{ messages }}")], ids=repr)
@pytest.mark.parametrize("part", [IMAGE, {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                                  {"type": "file", "file": {"file_id": "f"}}], ids=lambda p: p["type"])
def test_a_non_text_part_is_refused_naming_the_message(template: ChatTemplate, part: dict) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [*text("What is this?"), part]}]
    with pytest.raises(ChatContentError) as caught:
        template.render(messages)
    error = caught.value
    assert isinstance(error, LLMCoreError) and isinstance(error, ChatTemplateError)
    assert error.index == 1 and error.param == "messages.1.content"
    assert str(error) == f"messages[1].content: this model takes text only; content part 1 has type {part['type']!r}"


@pytest.mark.parametrize(("content", "problem"), [
    ([{"text": "no type"}], "content part 0 must be an object with a string 'type'"),
    (["a string, not a part"], "content part 0 must be an object with a string 'type'"),
    ([{"type": "text", "text": "ok"}, {"type": "text"}], "content part 1 (type 'text') needs a string 'text'"),
    ([{"type": "text", "text": 3}], "content part 0 (type 'text') needs a string 'text'"),
])
def test_a_malformed_part_is_a_user_error(content: list, problem: str) -> None:
    with pytest.raises(ChatContentError, match="^" + re.escape(f"messages[0].content: {problem}") + "$"):
        ChatTemplate.builtin("chatml").render([{"role": "user", "content": content}])


def test_tool_instructions_read_parts_and_name_the_callers_message() -> None:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    messages = [{"role": "system", "content": text("Be brief.", "Be kind.")},
                {"role": "user", "content": text("1+2?")},
                {"role": "tool", "name": "add", "content": text("3")}]
    out = with_instructions(messages, tools, tool_schema(tools))
    assert out[0]["content"].startswith("Be brief.\nBe kind.\n\nRespond in JSON")
    assert json.loads(out[2]["content"])["tool_response"]["content"] == "3"
    with pytest.raises(ChatContentError, match=r"^messages\[0\]\.content: this model takes text only"):
        with_instructions([{"role": "user", "content": [IMAGE]}], tools, tool_schema(tools))  # no system: one is added


# -- the Python API ----------------------------------------------------------------------------------

PARTS = [{"role": "system", "content": text("Answer briefly.")},
         {"role": "user", "content": text("What is the capital", "of France?")}]
PLAIN = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital\nof France?"}]


@pytest.fixture(scope="module")
def llm(default_model_path):
    from llmcore.api import LLM

    return LLM(default_model_path, backend="auto", n_ctx=512)


def _chat(llm, messages: list[dict], **kwargs):
    llm.reset()  # each prompt read in one batch, as the server is asked to below
    return llm.create_chat_completion(messages, max_tokens=10, temperature=0, **kwargs)


def test_api_answers_text_parts_as_the_plain_string(llm) -> None:
    question = "What is the capital of France?"
    assert llm.chat_template.render([{"role": "user", "content": text(question)}]) == \
        llm.chat_template.render([{"role": "user", "content": question}])
    assert llm.chat_template.render(PARTS) == llm.chat_template.render(PLAIN)
    got, expected = _chat(llm, PARTS), _chat(llm, PLAIN)
    assert got.choices[0].message.content == expected.choices[0].message.content
    assert got.usage.prompt_tokens == expected.usage.prompt_tokens
    stream = "".join(chunk.choices[0].delta.content or "" for chunk in _chat(llm, PARTS, stream=True))
    assert stream == expected.choices[0].message.content


def test_api_refuses_an_image_with_a_user_error(llm) -> None:
    with pytest.raises(ChatContentError, match=r"^messages\[1\]\.content: this model takes text only"):
        _chat(llm, [PLAIN[0], {"role": "user", "content": [IMAGE, *text("What is this?")]}])


# -- the server, through the official openai client --------------------------------------------------


@pytest.fixture(scope="module")
def server(default_model_path):
    openai = pytest.importorskip("openai")
    from test_server import ServerProcess

    proc = ServerProcess(default_model_path, "-np", "2", "-c", "1024")
    client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0, timeout=120)
    yield proc, client
    proc.stop()


def test_server_answers_text_parts_as_the_api_answers_the_string(server, llm) -> None:
    _, client = server
    expected = _chat(llm, PLAIN)
    got = client.chat.completions.create(model="any", messages=PARTS, max_tokens=10, temperature=0,
                                         extra_body={"cache_prompt": False})
    assert got.choices[0].message.content == expected.choices[0].message.content
    assert got.usage.prompt_tokens == expected.usage.prompt_tokens


def test_server_refuses_an_image_part_with_a_400_naming_the_message(server) -> None:
    import openai

    _, client = server
    messages = [PLAIN[0], {"role": "user", "content": [*text("What is this?"), IMAGE]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="any", messages=messages, max_tokens=4)
    error = caught.value.body.get("error", caught.value.body)  # the body or its "error", by client version
    assert error["param"] == "messages.1.content"
    assert error["message"] == "field 'messages.1.content': this model takes text only; content part 1 has type 'image_url'"


def test_apply_template_reads_text_parts(server, llm) -> None:
    proc, _ = server
    with httpx.Client(base_url=proc.url, timeout=60) as http:
        response = http.post("/apply-template", json={"messages": PARTS})
        assert response.status_code == 200, response.text
        assert response.json()["prompt"] == llm.chat_template.render(PLAIN)
        refused = http.post("/apply-template", json={"messages": [{"role": "user", "content": [IMAGE]}]})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["param"] == "messages.0.content" and "this model takes text only" in error["message"]
