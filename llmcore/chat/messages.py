"""Turn OpenAI-shaped chat messages into what each kind of template expects.

Jinja templates see the messages the way transformers' ``apply_chat_template`` hands them over;
llama.cpp's built-in templates see one ``(role, text)`` pair per message, as llama-server builds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# Names a message's reasoning arrives under; templates read the first, gpt-oss's reads "thinking".
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def plain_data(value: Any) -> Any:
    """Rebuild ``value`` from plain JSON types, so a sandboxed template only ever sees data, never objects.

    Pydantic models and dataclasses become dicts; anything else that is not JSON becomes an inert
    ``"<TypeName>"`` placeholder (templates only test media keys for presence).
    """
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):  # subclasses (enums, numpy strings) would carry extra methods
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {plain_data(key): plain_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain_data(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain_data(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return plain_data(value.model_dump())
    if callable(getattr(value, "item", None)):  # numpy scalars
        return plain_data(value.item())
    return f"<{type(value).__name__}>"


def template_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages as transformers passes them to a jinja template.

    Keys whose value is None are dropped (templates handle a missing ``content`` but print "None" for a
    null one), and a message's reasoning is copied under both ``reasoning_content`` and ``thinking``.
    """
    result = []
    for message in plain_data(list(messages)):
        if not isinstance(message, dict):
            raise TypeError(f"a chat message must be a dict, got {message!r}")
        message = {key: value for key, value in message.items() if value is not None}
        reasoning = next((message[key] for key in _REASONING_FIELDS if message.get(key) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        result.append(message)
    return result


def flatten_content(content: Any) -> str:
    """A message's content as one string, the way llama-server feeds its non-jinja templates.

    A list of content parts keeps its text parts, joined by newlines; other parts (images, audio) are dropped.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    text = ""
    for part in content:
        if part.get("type") != "text":
            continue
        if text:
            text += "\n"
        text += part.get("text", "")
    return text
