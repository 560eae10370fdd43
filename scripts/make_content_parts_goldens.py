"""Write tests/fixtures/chat/content_parts_goldens.json: how llama-server reads a message ``content`` given
as a list of text parts, for every template in tests/fixtures/chat/templates, the default model's own
template and some built-ins.

Dev tool, not part of llmcore. It needs a llama-server built from the llama.cpp that llama-cpp-python
0.3.36 vendors (no download at test time)::

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    cmake -S /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp -B /tmp/lcp/build -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
    cmake --build /tmp/lcp/build --target llama-server -j
    .venv/bin/python scripts/make_content_parts_goldens.py /tmp/lcp/build/bin/llama-server

llama.cpp adds per-format touches of its own to a prompt (trimming, extra variables), so its prompts are
not the goldens; what is recorded is the decision: for each conversation, whether llama-server's prompt
for the parts is its prompt for the same conversation with each list's text parts joined by newlines
("joins"), or another one ("parts": the template read the list itself), or an error. For each jinja
template it also records the capabilities that decision rests on, as /props reports them
(``supports_string_content``, ``supports_typed_content``).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"
ORACLE = "llama-server /apply-template, llama.cpp as vendored by llama-cpp-python 0.3.36"
BUILTINS = ["chatml", "llama3", "llama2", "mistral-v7", "gemma", "phi3", "deepseek3", "vicuna"]


def _parts(*texts: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text} for text in texts]


CONVERSATIONS = {
    # transformers' goldens have this one as "content_parts" (jinja_goldens.json)
    "user_parts": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": _parts("Describe the weather", "in one word.")},
    ],
    "every_role_parts": [
        {"role": "system", "content": _parts("You are a helpful assistant.")},
        {"role": "user", "content": _parts("Hi", "there")},
        {"role": "assistant", "content": _parts("Hello!")},
        {"role": "user", "content": _parts("", "Name a colour.", "One word.")},
    ],
}


def joined(messages: list[dict]) -> list[dict]:
    """The conversation with each list of text parts as one string, parts joined by newlines (and an
    empty part adding no newline), as llama.cpp's concat_content_parts() does."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            text = ""
            for part in content:
                text = f"{text}\n{part['text']}" if text else part["text"]
            content = text
        out.append({**message, "content": content})
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def decisions(server: str, model: Path, template_args: list[str]) -> dict[str, Any]:
    port = _free_port()
    command = [server, "-m", str(model), "--port", str(port), "-c", "512", "-np", "1", *template_args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(600):
                if process.poll() is not None:
                    raise RuntimeError(f"llama-server {template_args} exited: {process.stderr.read()[-2000:]}")
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            caps = http.get("/props").json()["chat_template_caps"]
            result: dict[str, Any] = {}
            for name, messages in CONVERSATIONS.items():
                prompts = []
                for conversation in (messages, joined(messages)):
                    response = http.post("/apply-template", json={"messages": conversation})
                    body = response.json()
                    prompts.append(body["prompt"] if response.status_code == 200 else None)
                    if response.status_code != 200:
                        result[name] = f"error: {body['error']['message']}"
                        break
                else:
                    result[name] = "joins" if prompts[0] == prompts[1] else "parts"
            if "--jinja" in template_args:
                result["caps"] = [caps["supports_string_content"], caps["supports_typed_content"]]
            return result
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("llama_server", help="path of a llama-server binary")
    parser.add_argument("--model", type=Path, default=Path.home() / ".cache/llmcore/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    jinja = {}
    for template in sorted((FIXTURES / "templates").glob("*.jinja")):
        jinja[template.name] = decisions(args.llama_server, args.model, ["--jinja", "--chat-template-file", str(template)])
        print(template.name, jinja[template.name], flush=True)
    builtin = {name: decisions(args.llama_server, args.model, ["--no-jinja", "--chat-template", name]) for name in BUILTINS}
    goldens = {
        "oracle": ORACLE,
        "model": args.model.name,
        "conversations": CONVERSATIONS,
        "jinja": jinja,
        "model_template": decisions(args.llama_server, args.model, ["--jinja"]),
        "builtin": builtin,
    }
    out = FIXTURES / "content_parts_goldens.json"
    out.write_text(json.dumps(goldens, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
