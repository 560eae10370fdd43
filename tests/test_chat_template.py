"""Chat templates against their references.

Jinja: every template in llama.cpp's models/templates, over a standard conversation set, must render what
transformers' ``apply_chat_template`` renders (or refuse what it refuses). Built-ins: llama.cpp's named
templates and its template detection must render what ``llama_chat_apply_template`` renders.
Goldens come from scripts/make_chat_goldens.py.

Content given as a list of text parts is the exception: it is read as llama-server reads it
(tests/test_chat_content_parts.py), so transformers' render of it is the reference only where llama-server
too hands the template the parts as they are.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from llmcore.chat import ChatTemplate, ChatTemplateError, builtin_template_names, detect_builtin_template
from llmcore.errors import LLMCoreError

FIXTURES = Path(__file__).parent / "fixtures" / "chat"
JINJA = json.loads((FIXTURES / "jinja_goldens.json").read_text(encoding="utf-8"))
BUILTIN = json.loads((FIXTURES / "builtin_goldens.json").read_text(encoding="utf-8"))
NOW = datetime.fromisoformat(JINJA["now"])
CONTENT_PARTS = json.loads((FIXTURES / "content_parts_goldens.json").read_text(encoding="utf-8"))


def _transformers_goldens(goldens: dict, content_parts: dict) -> dict:
    """``goldens`` without the content_parts cases where llama-server joins the parts (``content_parts`` is
    its decision per conversation, from content_parts_goldens.json); transformers passes them on as a list."""
    if content_parts["user_parts"] == "parts":
        return goldens
    return {key: golden for key, golden in goldens.items() if not key.startswith("content_parts|")}


def _case(key: str) -> tuple[dict, bool]:
    conversation, generation = key.split("|")
    return JINJA["conversations"][conversation], generation == "gen"


def _render(template: ChatTemplate, key: str) -> str:
    conversation, add_generation_prompt = _case(key)
    return template.render(
        conversation["messages"],
        add_generation_prompt=add_generation_prompt,
        tools=conversation.get("tools"),
        documents=conversation.get("documents"),
        now=NOW,
        **conversation.get("extra", {}),
    )


def _check_against(template: ChatTemplate, goldens: dict) -> list[str]:
    """Render every case; return a description of each one that differs from its golden."""
    mismatches = []
    for key, golden in goldens.items():
        if "error" in golden:
            try:
                _render(template, key)
                mismatches.append(f"{key}: rendered, but the reference raised {golden['error']}")
            except ChatTemplateError as error:
                if golden["error"]["message"] not in str(error):
                    mismatches.append(f"{key}: raised {error!s}, the reference raised {golden['error']}")
        else:
            rendered = _render(template, key)
            if rendered != golden["text"]:
                mismatches.append(f"{key}:\n  ours: {rendered!r}\n  want: {golden['text']!r}")
    return mismatches


@pytest.mark.parametrize("template_file", sorted(JINJA["renders"]))
def test_jinja_template_renders_like_transformers(template_file: str) -> None:
    source = (FIXTURES / "templates" / template_file).read_text(encoding="utf-8")
    template = ChatTemplate.from_string(source, bos_token=JINJA["bos_token"], eos_token=JINJA["eos_token"])
    assert template.name == "jinja"
    goldens = _transformers_goldens(JINJA["renders"][template_file], CONTENT_PARTS["jinja"][template_file])
    assert _check_against(template, goldens) == []


def test_model_template_resolved_from_gguf_metadata(default_model_path) -> None:
    gguf = pytest.importorskip("gguf")
    fields = gguf.GGUFReader(default_model_path).fields
    keys = ("tokenizer.chat_template", "tokenizer.ggml.tokens")
    keys += ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")
    metadata = {key: fields[key].contents() for key in keys}
    template = ChatTemplate.resolve(None, metadata)
    assert template.name == "jinja"
    assert _check_against(template, _transformers_goldens(JINJA["model"]["renders"], CONTENT_PARTS["model_template"])) == []


def test_builtin_names_match_llama_cpp() -> None:
    assert builtin_template_names() == BUILTIN["names"]


@pytest.mark.parametrize("name", BUILTIN["names"])
def test_builtin_template_renders_like_llama_cpp(name: str) -> None:
    template = ChatTemplate.builtin(name)
    assert template.name == name
    goldens = {key: {"text": text} for key, text in BUILTIN["renders"][name].items()}
    assert _check_against(template, goldens) == []


@pytest.mark.parametrize("template_file", sorted(BUILTIN["detected"]))
def test_detection_picks_llama_cpp_builtin(template_file: str) -> None:
    source = (FIXTURES / "templates" / template_file).read_text(encoding="utf-8")
    detected = detect_builtin_template(source)
    expected = BUILTIN["detected"][template_file]
    if all(text is None for text in expected.values()):
        assert detected is None
        return
    assert detected is not None, "llama.cpp detects a built-in for this template"
    goldens = {key: {"text": text} for key, text in expected.items()}
    assert _check_against(ChatTemplate.builtin(detected), goldens) == []


def test_detection_accepts_builtin_names() -> None:
    assert [detect_builtin_template(name) for name in builtin_template_names()] == builtin_template_names()


# ---- resolve(): --chat-template NAME|FILE, else the model's template, else chatml ----------------------

_GOLDEN_FILE = "Qwen-Qwen2.5-7B-Instruct.jinja"


def _tokens_metadata(bos: str, eos: str) -> dict:
    return {
        "tokenizer.ggml.tokens": ["<unk>", bos, eos],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }


def test_resolve_name_gives_builtin() -> None:
    template = ChatTemplate.resolve("llama3", {"tokenizer.chat_template": "{{ 'ignored' }}"})
    assert template.name == "llama3"


def test_resolve_file_renders_like_transformers() -> None:
    path = FIXTURES / "templates" / _GOLDEN_FILE
    template = ChatTemplate.resolve(str(path), _tokens_metadata(JINJA["bos_token"], JINJA["eos_token"]))
    goldens = _transformers_goldens(JINJA["renders"][_GOLDEN_FILE], CONTENT_PARTS["jinja"][_GOLDEN_FILE])
    assert _check_against(template, goldens) == []


def test_resolve_model_template_takes_bos_eos_from_vocab() -> None:
    # Llama 3.1 starts with {{ bos_token }}: the rendered prompt must start with the vocab's BOS text
    source = (FIXTURES / "templates" / "meta-llama-Llama-3.1-8B-Instruct.jinja").read_text(encoding="utf-8")
    metadata = {"tokenizer.chat_template": source, **_tokens_metadata(JINJA["bos_token"], JINJA["eos_token"])}
    name = "meta-llama-Llama-3.1-8B-Instruct.jinja"
    goldens = _transformers_goldens(JINJA["renders"][name], CONTENT_PARTS["jinja"][name])
    assert _check_against(ChatTemplate.resolve(None, metadata), goldens) == []


def test_resolve_without_any_template_falls_back_to_chatml() -> None:
    assert ChatTemplate.resolve(None, {}).name == "chatml"
    assert ChatTemplate.resolve(None, None).name == "chatml"


def test_resolve_unknown_name_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ChatTemplateError, match="no-such-template"):
        ChatTemplate.resolve("no-such-template", None)
    with pytest.raises(LLMCoreError):
        ChatTemplate.resolve(str(tmp_path / "missing.jinja"), None)


def test_tool_use_template_is_used_when_tools_are_given() -> None:
    metadata = {
        "tokenizer.chat_template": "plain",
        "tokenizer.chat_template.tool_use": "tools:{{ tools | length }}",
    }
    template = ChatTemplate.resolve(None, metadata)
    assert template.render([{"role": "user", "content": "hi"}]) == "plain"
    assert template.render([{"role": "user", "content": "hi"}], tools=[{"type": "function"}]) == "tools:1"


def test_syntax_error_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{{ messages }}\n{% for message in messages %}")
    with pytest.raises(ChatTemplateError, match="broken.jinja: .*line 2"):
        ChatTemplate.resolve(str(broken), None)


def test_sandbox_refuses_escapes() -> None:
    escape = ChatTemplate.from_string("{{ messages.__class__.__mro__ }}")
    with pytest.raises(ChatTemplateError):
        escape.render([{"role": "user", "content": "hi"}])
    with pytest.raises(ChatTemplateError, match="underscore"):
        ChatTemplate.from_string("{% set ns = namespace(_x=1) %}").render([])
