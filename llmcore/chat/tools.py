"""Tool calls for chat templates without a tool-call format of their own, the way llama-server's
generic format does it: the tools are described in the system message, the reply is constrained to
JSON that is either ``{"tool_call": {"name": ..., "arguments": {...}}}`` or ``{"response": "..."}``,
and the JSON is turned back into OpenAI ``tool_calls``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from llmcore.chat.messages import flatten_content, text_only_messages
from llmcore.errors import LLMCoreError

INSTRUCTION = ("Respond in JSON format, either with `tool_call` (a request to call tools) or with `response` "
               "reply to the user's request")


def tool_schema(tools: Sequence[dict[str, Any]], tool_choice: str | dict[str, Any] | None = "auto") -> dict[str, Any]:
    """The JSON schema of a reply: one tool call of any (or the chosen) tool, or, unless tool_choice
    is "required" or names a tool, a plain response."""
    functions = [_function(tool, i) for i, tool in enumerate(tools)]
    if isinstance(tool_choice, dict):
        chosen = tool_choice.get("function", {}).get("name")
        functions = [f for f in functions if f["name"] == chosen]
        if not functions:
            raise LLMCoreError(f"tool_choice names {chosen!r}, which is not among the tools")
    calls = [{
        "type": "object",
        "properties": {"tool_call": {
            "type": "object",
            "properties": {"name": {"const": f["name"]}, "arguments": f.get("parameters") or {"type": "object"}},
            "required": ["name", "arguments"],
        }},
        "required": ["tool_call"],
    } for f in functions]
    if tool_choice in ("auto", None):
        calls.append({"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]})
    return {"anyOf": calls}


def with_instructions(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]],
                      schema: dict[str, Any]) -> list[dict[str, Any]]:
    """``messages`` with the tools, the instruction and the schema added to the system message, and
    earlier assistant tool calls and tool results written as the JSON the model is asked for.
    Content given as text parts is read as :meth:`ChatTemplate.render` reads it; a non-text part raises
    :class:`ChatContentError` naming the caller's message."""
    described = (f"{INSTRUCTION}\n\nAvailable tools:\n{json.dumps(list(tools), indent=2)}\n\n"
                 f"The JSON must follow this schema:\n{json.dumps(schema)}")
    out = [dict(m) for m in text_only_messages(messages)]
    for m in out:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            call = m.pop("tool_calls")[0]["function"]
            m["content"] = json.dumps({"tool_call": {"name": call["name"], "arguments": _arguments(call)}})
        elif m.get("role") == "tool":
            m["role"] = "user"
            content = m.get("content")
            content = flatten_content(content) if isinstance(content, list) else content
            m["content"] = json.dumps({"tool_response": {"tool": m.pop("name", None), "content": content}})
            m.pop("tool_call_id", None)
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{flatten_content(out[0].get('content'))}\n\n{described}".strip()
    else:
        out.insert(0, {"role": "system", "content": described})
    return out


def parse_reply(text: str) -> tuple[str | None, list[dict[str, Any]] | None]:
    """(content, tool_calls) from a reply in the generic format; text that is not that JSON (a reply
    cut by max_tokens) comes back as content."""
    try:
        reply = json.loads(text)
    except json.JSONDecodeError:
        return text, None
    if isinstance(reply, dict) and isinstance(reply.get("tool_call"), dict):
        call = reply["tool_call"]
        return None, [{
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": str(call.get("name")), "arguments": json.dumps(call.get("arguments", {}))},
        }]
    if isinstance(reply, dict) and "response" in reply:
        return str(reply["response"]), None
    return text, None


def _function(tool: dict[str, Any], index: int) -> dict[str, Any]:
    function = tool.get("function") if tool.get("type", "function") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise LLMCoreError(f"tools[{index}]: expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}")
    return function


def _arguments(call: dict[str, Any]) -> Any:
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments
