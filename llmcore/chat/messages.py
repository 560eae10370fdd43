"""Turn OpenAI-shaped chat messages into what each kind of template expects.

Jinja templates see the messages the way transformers' ``apply_chat_template`` hands them over;
llama.cpp's built-in templates see one ``(role, text)`` pair per message, as llama-server builds them.
A ``content`` given as a list of parts (``[{"type": "text", "text": "Hi"}]``) is read as llama-server
reads it: text parts only (this model takes text only), handed to each template in the form it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from llmcore.chat.errors import ChatContentError

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


def text_parts(content: Any, *, images: bool = False) -> Any:
    """``content`` as llama-server reads it: a list of parts becomes its text parts, each rebuilt as
    ``{"type": "text", "text": ...}`` (other keys dropped); anything else comes back unchanged. With
    ``images`` (a model with a multimodal projector) ``image_url`` parts stay too, as
    ``{"type": "image_url", "image_url": {"url": ...}}``, for :func:`media_parts` to read.

    Raises :class:`ChatContentError` (with no message index) for an image, audio or any other non-text
    part, as llama-server does for a model without a multimodal projector: this model takes text only.
    Also for a part that is not an object with a string ``type``, or a text part without a string ``text``.
    """
    if not isinstance(content, list):
        return content
    parts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if not isinstance(kind, str):
            raise ChatContentError(f"content part {number} must be an object with a string 'type'")
        if kind == "image_url" and images:
            parts.append({"type": "image_url", "image_url": {"url": _image_url(part, number)}})
            continue
        if kind != "text":
            raise ChatContentError(f"this model takes text only; content part {number} has type {kind!r}")
        if not isinstance(part.get("text"), str):
            raise ChatContentError(f"content part {number} (type 'text') needs a string 'text'")
        parts.append({"type": "text", "text": part["text"]})
    return parts


def text_only_messages(messages: Sequence[Any]) -> list[Any]:
    """``messages`` as plain data (see :func:`plain_data`) with each list ``content`` reduced to its text
    parts by :func:`text_parts`, whose :class:`ChatContentError` then names the message's index."""
    result = []
    for index, message in enumerate(plain_data(list(messages))):
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            try:
                message = {**message, "content": text_parts(message["content"])}
            except ChatContentError as error:
                raise ChatContentError(error.problem, index) from None
        result.append(message)
    return result


def content_as_template_reads(messages: list[Any], *, string_content: bool, typed_content: bool) -> list[Any]:
    """Each message's content in the form a jinja template reads, as llama.cpp's chat.cpp hands it over.

    ``string_content`` / ``typed_content`` say whether the template reads a content string / a list of
    text parts (found by :func:`llmcore.chat.caps.content_support`). A template that reads only strings gets a list's text parts joined by newlines
    (:func:`flatten_content`), one that reads only parts gets a string as one text part, one that reads
    both gets the content as it came; an empty list is an empty string, as llama.cpp makes it.
    A template that read neither in the probe gets strings (llama.cpp passes such content unchanged).
    """
    result = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if content == []:
            content = ""
        if isinstance(content, str) and typed_content and not string_content:
            content = [{"type": "text", "text": content}]
        elif isinstance(content, list) and not typed_content:
            content = flatten_content(content)
        if content is not None:
            message = {**message, "content": content}
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


def media_parts(messages: Sequence[Any], marker: str) -> tuple[list[Any], list[str]]:
    """``messages`` with each OpenAI ``image_url`` content part replaced by a text part holding the
    media ``marker`` (as llama-server does before rendering), and the parts' URLs in order. Raises
    :class:`ChatContentError` naming the message for an image part without a string URL."""
    result, urls = [], []
    for index, message in enumerate(plain_data(list(messages))):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts = []
            for number, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") == "image_url":
                    try:
                        urls.append(_image_url(part, number))
                    except ChatContentError as error:
                        raise ChatContentError(error.problem, index) from None
                    part = {"type": "text", "text": marker}
                parts.append(part)
            message = {**message, "content": parts}
        result.append(message)
    return result, urls


def _image_url(part: Mapping[str, Any], number: int) -> str:
    """The URL of content part ``number``, an ``image_url`` part (``{"url": ...}`` or the URL itself)."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str):
        raise ChatContentError(f"content part {number} (type 'image_url') needs a string 'url'")
    return url
