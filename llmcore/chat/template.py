"""Chat templates: a model's jinja ``tokenizer.chat_template`` or one of llama.cpp's named built-ins.

Jinja templates are untrusted code from a model file, so they run in jinja2's immutable sandbox, set up
the way transformers' ``apply_chat_template`` sets it up (same filters, globals, whitespace control and
message preparation), so a template renders here exactly as it does there. The one departure is content
given as a list of parts, which every template gets in the form it can read, as llama-server hands it over
(transformers passes the list on, and most templates then fail or print it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmcore.chat.builtin import builtin_template_names, format_builtin, is_builtin_template
from llmcore.chat.caps import content_support
from llmcore.chat.errors import ChatTemplateError
from llmcore.chat.sandbox import DEFAULT_BUDGET, RenderBudget, run_bounded
from llmcore.chat.messages import (
    content_as_template_reads,
    flatten_content,
    plain_data,
    template_messages,
    text_only_messages,
)

# The clock that strftime_now() reads during one render; None means the real time.
_FROZEN_NOW: ContextVar[datetime | None] = ContextVar("chat_template_now", default=None)


class _GenerationTag(jinja2.ext.Extension):
    """Accept transformers' ``{% generation %}...{% endgeneration %}`` (it marks assistant text); render its body."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # jinja's own tojson escapes HTML characters, which would change the prompt
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return (_FROZEN_NOW.get() or datetime.now()).strftime(format)


class _TemplateDict:
    """``dict`` for templates: building dicts only, without the class's attributes to climb through."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """``namespace()`` that refuses underscore attributes, which could reach CPython internals."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # jinja's signature trick, so namespace(self=...) works
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot set underscore attribute {name!r}")


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


def _compile(source: str, what: str) -> jinja2.Template:
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise ChatTemplateError(f"{what}: line {error.lineno}: {error.message}") from error


@lru_cache(maxsize=8)
def _compiled_with_content_support(source: str) -> tuple[jinja2.Template, bool, bool]:
    """(template, string, typed): ``source`` compiled, and how it reads a message's content (see
    :func:`content_support`), found once per source in the sandbox worker."""
    return (_compile(source, "chat template"), *content_support(source, _environment()))


def _render_jinja(source: str, messages: list[Any], tools: list[Any] | None, documents: list[Any] | None,
                  add_generation_prompt: bool, context: dict[str, Any], now: datetime | None) -> str:
    """One render of the jinja ``source``: runs in the sandbox worker (see :mod:`llmcore.chat.sandbox`)."""
    compiled, string_content, typed_content = _compiled_with_content_support(source)
    messages = content_as_template_reads(messages, string_content=string_content, typed_content=typed_content)
    clock = _FROZEN_NOW.set(now)
    try:
        return compiled.render(messages=template_messages(messages), tools=tools, documents=documents,
                               add_generation_prompt=add_generation_prompt, **context)
    except MemoryError:
        raise
    except Exception as error:  # a template can fail in any Python way on an input it does not expect
        own_message = type(error) is jinja2.TemplateError  # raised by the template's raise_exception()
        detail = str(error) if own_message else f"{type(error).__name__}: {error}"
        raise ChatTemplateError(f"chat template: {detail}") from None
    finally:
        _FROZEN_NOW.reset(clock)


def _token_text(metadata: Mapping[str, Any], id_key: str) -> str | None:
    tokens = metadata.get("tokenizer.ggml.tokens")
    token_id = metadata.get(id_key)
    if tokens is None or token_id is None or not 0 <= int(token_id) < len(tokens):
        return None
    return str(tokens[int(token_id)])


def _role_text_pairs(messages: Sequence[Any]) -> list[tuple[str, str]]:
    pairs = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ChatTemplateError(f"messages[{index}]: a chat message needs a string 'role'")
        pairs.append((message["role"], flatten_content(message.get("content"))))
    return pairs


#: architectures whose turns are not chatml's and whose files may carry no template (Gemma 3 270M's
#: GGUF has none): where llama.cpp would fall back to chatml, their family's built-in stands in
_FAMILY_TEMPLATES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma"}


def family_template(gguf_metadata: Mapping[str, Any]) -> str | None:
    """The built-in template of a model's family, for a file that carries none; None if there is none."""
    return _FAMILY_TEMPLATES.get(gguf_metadata.get("general.architecture"))


class ChatTemplate:
    """Turns a conversation of OpenAI-shaped messages into the prompt text a model was trained on.

    Build one with :meth:`from_string` (jinja source), :meth:`builtin` (a llama.cpp name) or
    :meth:`resolve` (the ``--chat-template`` flag and the model's metadata), then call :meth:`render`.
    """

    def __init__(
        self,
        name: str,
        *,
        source: str | None = None,
        special_tokens: Mapping[str, str] | None = None,
        tool_use_source: str | None = None,
    ) -> None:
        """Prefer the class methods; ``name`` is a built-in's name, or ``"jinja"`` with ``source`` set."""
        self.name = name
        self.source = source
        self._special_tokens = dict(special_tokens or {})
        self._tool_use_source = tool_use_source
        #: what one render may spend (jinja templates render in a bounded worker process)
        self.budget: RenderBudget = DEFAULT_BUDGET
        for text, what in ((source, "chat template"), (tool_use_source, "tool_use chat template")):
            if text is not None:
                _compile(text, what)  # a syntax error is found now, in one line

    @classmethod
    def from_string(
        cls,
        source: str,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        tool_use_source: str | None = None,
    ) -> ChatTemplate:
        """A jinja chat template; ``bos_token``/``eos_token`` are the variables of that name (omitted when None).

        ``tool_use_source`` is the model's separate tool-use template, used instead whenever tools are given.
        Raises :class:`ChatTemplateError` if the source does not compile.
        """
        pairs = (("bos_token", bos_token), ("eos_token", eos_token))
        tokens = {key: value for key, value in pairs if value is not None}
        return cls("jinja", source=source, special_tokens=tokens, tool_use_source=tool_use_source)

    @classmethod
    def builtin(cls, name: str) -> ChatTemplate:
        """One of llama.cpp's named templates (see :func:`builtin_template_names`), or one that
        :func:`detect_builtin_template` returned."""
        if not is_builtin_template(name):
            raise ChatTemplateError(
                f"unknown chat template {name!r}; built-in templates: {', '.join(builtin_template_names())}"
            )
        return cls(name)

    @classmethod
    def resolve(cls, name_or_file: str | None, gguf_metadata: Mapping[str, Any] | None = None) -> ChatTemplate:
        """The template for ``--chat-template NAME|FILE``, else the model's own, else its family's
        built-in (:func:`family_template`), else chatml (llama.cpp's fallback).

        ``name_or_file`` is a built-in name, a path to a jinja file, or inline jinja source.
        ``gguf_metadata`` maps GGUF keys to plain values; it supplies ``tokenizer.chat_template``
        (and ``.tool_use``) and the BOS/EOS token texts the jinja variables carry.
        """
        metadata = gguf_metadata or {}
        tokens = {
            "bos_token": _token_text(metadata, "tokenizer.ggml.bos_token_id"),
            "eos_token": _token_text(metadata, "tokenizer.ggml.eos_token_id"),
        }
        if name_or_file:
            if name_or_file in builtin_template_names():
                return cls.builtin(name_or_file)
            if "{{" in name_or_file or "{%" in name_or_file:
                return cls.from_string(name_or_file, **tokens)
            path = Path(name_or_file)
            if not path.is_file():
                raise ChatTemplateError(
                    f"--chat-template {name_or_file!r}: neither a built-in template "
                    f"({', '.join(builtin_template_names())}) nor a file"
                )
            try:
                return cls.from_string(path.read_text(encoding="utf-8"), **tokens)
            except ChatTemplateError as error:
                raise ChatTemplateError(f"{path}: {error}") from error
        source = metadata.get("tokenizer.chat_template")
        tool_use_source = metadata.get("tokenizer.chat_template.tool_use")
        if source or tool_use_source:
            return cls.from_string(source or tool_use_source, tool_use_source=tool_use_source, **tokens)
        return cls.builtin(family_template(metadata) or "chatml")

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        documents: Sequence[Mapping[str, Any]] | None = None,
        now: datetime | None = None,
        **extra: Any,
    ) -> str:
        """The prompt for ``messages``, ending with the assistant's header if ``add_generation_prompt``.

        ``tools`` are OpenAI function schemas, ``documents`` RAG documents (``title``/``text``), ``now`` the
        time ``strftime_now`` reports (default: the clock), and ``extra`` more template variables
        (``enable_thinking=False``...). Built-in templates see only each message's role and text.

        A message's ``content`` may be a string or a list of text parts (``{"type": "text", "text": ...}``),
        which each template gets as llama-server gives it: joined by newlines for one that reads strings
        only (every built-in), as parts for one that reads parts.
        Raises :class:`ChatContentError` (a :class:`ChatTemplateError`) naming the message for an image,
        audio or other non-text part, and :class:`ChatTemplateError` when the template refuses the conversation.
        """
        messages = text_only_messages(messages)
        if self.source is None:
            return format_builtin(self.name, _role_text_pairs(messages), add_generation_prompt)

        use_tool_template = tools is not None and self._tool_use_source is not None
        source = self._tool_use_source if use_tool_template else self.source
        job = (source, plain_data(messages), plain_data(list(tools)) if tools is not None else None,
               plain_data(list(documents)) if documents is not None else None, add_generation_prompt,
               plain_data({**self._special_tokens, **extra}), now)
        return run_bounded(_render_jinja, job, self.budget)

    def __repr__(self) -> str:
        return f"ChatTemplate({self.name!r})"
