"""Write the chat-template goldens in tests/fixtures/chat/ from the two reference implementations.

Dev tool, not part of llmcore. Run with the dev venv (it needs transformers, the jinja oracle):

    /work/venv/bin/python scripts/make_chat_goldens.py

It copies llama.cpp's models/templates/*.jinja into the fixtures, renders each over CONVERSATIONS with
transformers' ``apply_chat_template`` (jinja_goldens.json), then re-runs itself under the llama-cpp-python
venv to render llama.cpp's built-in templates and its template detection (builtin_goldens.json).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

LLAMA_TEMPLATES = Path("/work/llama-src/vendor/llama.cpp/models/templates")
ORACLE_PYTHON = "/work/venv-oracle/bin/python"
DEFAULT_MODEL = Path("/work/models/SmolLM2-135M-Instruct.Q4_1.gguf")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"

BOS_TOKEN, EOS_TOKEN = "<s>", "</s>"
NOW = "2025-03-14T09:26:53"  # what strftime_now() reports, so dated templates render reproducibly

_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
_SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
_SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
_TOOL_CALL_TURN = [
    {"role": "system", "content": "You are a helpful assistant with tools."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call12345",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call12345",
        "name": "get_weather",
        "content": '{"temperature": 18, "sky": "sunny"}',
    },
]

# name -> messages (and tools, documents, extra template variables)
CONVERSATIONS: dict[str, dict] = {
    "user_only": {"messages": [{"role": "user", "content": "Hello!"}]},
    "system_user": {"messages": [_SYSTEM, {"role": "user", "content": "What is the capital of France?"}]},
    "multi_turn": {
        "messages": [
            {"role": "user", "content": "Hi, who are you?"},
            {"role": "assistant", "content": "I am an assistant. How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ]
    },
    "system_multi_turn": {
        "messages": [
            _SYSTEM,
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6"},
            {"role": "user", "content": "Thanks."},
        ]
    },
    "ends_with_assistant": {
        "messages": [
            _SYSTEM,
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi!"},
        ]
    },
    "whitespace_unicode": {
        "messages": [
            {"role": "system", "content": "  Réponds en français.\n"},
            {"role": "user", "content": "\n  héllo 世界 <b>&</b>\u3000 \n"},
            {"role": "assistant", "content": " Bonjour ! 🙂 \n"},
            {"role": "user", "content": "Ça va ?"},
        ]
    },
    "content_parts": {
        "messages": [
            _SYSTEM,
            {
                "role": "user",
                "content": [{"type": "text", "text": "Describe the weather"}, {"type": "text", "text": "in one word."}],
            },
        ]
    },
    "reasoning": {
        "messages": [
            {"role": "user", "content": "What is 17*3?"},
            {"role": "assistant", "content": "51", "reasoning_content": "17*3 = 51."},
            {"role": "user", "content": "And 17*4?"},
        ]
    },
    "reasoning_field": {  # reasoning under another client's name for it, on the final assistant turn
        "messages": [
            {"role": "user", "content": "What is 17*3?"},
            {"role": "assistant", "content": "51", "reasoning": "Multiply: 17*3 = 51."},
        ]
    },
    "no_thinking": {
        "messages": [_SYSTEM, {"role": "user", "content": "Hi."}],
        "extra": {"enable_thinking": False},
    },
    "tools_available": {
        "messages": [_SYSTEM, {"role": "user", "content": "What's the weather in Paris?"}],
        "tools": [_WEATHER_TOOL, _SEARCH_TOOL],
    },
    "tool_call_round": {"messages": _TOOL_CALL_TURN, "tools": [_WEATHER_TOOL]},
    "tool_call_followup": {  # as OpenAI clients send it: empty content, arguments as a JSON string
        "messages": [
            _TOOL_CALL_TURN[0],
            _TOOL_CALL_TURN[1],
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call12345",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            _TOOL_CALL_TURN[3],
            {"role": "assistant", "content": "It is 18°C and sunny in Paris."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": [_WEATHER_TOOL],
    },
    "documents": {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "documents": [{"title": "France", "text": "Paris is the capital of France."}],
    },
}


def case_key(conversation: str, add_generation_prompt: bool) -> str:
    return f"{conversation}|{'gen' if add_generation_prompt else 'nogen'}"


def _cases():
    for name, conversation in CONVERSATIONS.items():
        for add_generation_prompt in (True, False):
            yield case_key(name, add_generation_prompt), conversation, add_generation_prompt


# ---- jinja templates, rendered by transformers -------------------------------------------------------


def make_jinja_goldens(template_dir: Path) -> dict:
    import gguf
    import transformers.utils.chat_template_utils as chat_utils
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromisoformat(NOW)

    chat_utils.datetime = FrozenDatetime  # strftime_now() reads the module's datetime at call time

    def render_all(source: str, bos_token: str, eos_token: str) -> dict:
        vocab = Tokenizer(WordLevel({bos_token: 0, eos_token: 1}, unk_token=eos_token))
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=vocab, bos_token=bos_token, eos_token=eos_token)
        results = {}
        for key, conversation, add_generation_prompt in _cases():
            try:
                text = tokenizer.apply_chat_template(
                    conversation["messages"],
                    tools=conversation.get("tools"),
                    documents=conversation.get("documents"),
                    chat_template=source,
                    add_generation_prompt=add_generation_prompt,
                    tokenize=False,
                    **conversation.get("extra", {}),
                )
                results[key] = {"text": text}
            except Exception as error:  # the template refused the conversation: ours must refuse it too
                results[key] = {"error": {"type": type(error).__name__, "message": str(error)}}
        return results

    renders = {
        path.name: render_all(path.read_text(encoding="utf-8"), BOS_TOKEN, EOS_TOKEN)
        for path in sorted(template_dir.glob("*.jinja"))
    }
    # The default model's own template, with its BOS/EOS texts, as ChatTemplate.resolve() finds them
    metadata = gguf.GGUFReader(DEFAULT_MODEL).fields
    tokens = metadata["tokenizer.ggml.tokens"].contents()
    model_bos = tokens[metadata["tokenizer.ggml.bos_token_id"].contents()]
    model_eos = tokens[metadata["tokenizer.ggml.eos_token_id"].contents()]
    model_source = metadata["tokenizer.chat_template"].contents()
    return {
        "oracle": f"transformers {__import__('transformers').__version__} apply_chat_template",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "now": NOW,
        "conversations": CONVERSATIONS,
        "renders": renders,
        "model": {
            "file": DEFAULT_MODEL.name,
            "bos_token": model_bos,
            "eos_token": model_eos,
            "renders": render_all(model_source, model_bos, model_eos),
        },
    }


# ---- llama.cpp built-ins, rendered by llama-cpp-python's C API -----------------------------------------


def _flatten(content) -> str:
    # llama-server's non-jinja path: a null content is empty, text parts are joined by newlines
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def _llama_apply(llama_cpp, template: str, messages: list[dict], add_generation_prompt: bool) -> str | None:
    encoded = [(m["role"].encode(), _flatten(m.get("content")).encode()) for m in messages]
    chat = (llama_cpp.llama_chat_message * len(encoded))(*[llama_cpp.llama_chat_message(r, c) for r, c in encoded])
    size = llama_cpp.llama_chat_apply_template(template.encode(), chat, len(encoded), add_generation_prompt, None, 0)
    if size < 0:
        return None
    buffer = ctypes.create_string_buffer(size + 1)
    llama_cpp.llama_chat_apply_template(template.encode(), chat, len(encoded), add_generation_prompt, buffer, size + 1)
    return buffer.raw[:size].decode("utf-8")


def make_builtin_goldens(template_dir: Path) -> dict:
    import llama_cpp

    count = llama_cpp.llama_chat_builtin_templates(None, 0)
    names_buffer = (ctypes.c_char_p * count)()
    llama_cpp.llama_chat_builtin_templates(names_buffer, count)
    names = [name.decode() for name in names_buffer]

    def render_all(template: str) -> dict:
        return {
            key: _llama_apply(llama_cpp, template, conversation["messages"], add_generation_prompt)
            for key, conversation, add_generation_prompt in _cases()
        }

    return {
        "oracle": f"llama-cpp-python {llama_cpp.__version__} llama_chat_apply_template",
        "names": names,
        "renders": {name: render_all(name) for name in names},
        # a jinja source goes through llm_chat_detect_template; None: llama.cpp knows no built-in for it
        "detected": {
            path.name: render_all(path.read_text(encoding="utf-8")) for path in sorted(template_dir.glob("*.jinja"))
        },
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builtin-only", action="store_true", help="(internal) the llama-cpp-python half")
    parser.add_argument("--oracle-python", default=ORACLE_PYTHON, help="a python that can import llama_cpp")
    args = parser.parse_args()
    template_dir = FIXTURES / "templates"
    if args.builtin_only:
        _write_json(FIXTURES / "builtin_goldens.json", make_builtin_goldens(template_dir))
        return
    template_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted(LLAMA_TEMPLATES.glob("*.jinja")):
        shutil.copyfile(source, template_dir / source.name)
    _write_json(FIXTURES / "jinja_goldens.json", make_jinja_goldens(template_dir))
    subprocess.run([args.oracle_python, __file__, "--builtin-only"], check=True)


if __name__ == "__main__":
    sys.exit(main())
