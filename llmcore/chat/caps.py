"""How a jinja chat template reads a message's ``content``: as a string, as a list of typed parts, or both.

llama-server hands each template the content in a form it reads (see ``content_as_template_reads``) and
finds out which forms those are with llama.cpp's ``jinja/caps.cpp``: it renders a probe conversation and
watches what the template does with the content value. This is that check on jinja2. The template is
compiled once more in a probe environment, the probe content is a ``str`` or ``list`` that notes being
looped over or indexed by an int, and the environment's filters and tests see it as the plain value it
stands for, except the two that llama.cpp counts: ``is string``, and ``selectattr`` (a list read).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jinja2

# llama.cpp's probe text
_MARKER = "STRING_MARKER"


class _Watched:
    """Probe content: ``used_as_array`` once looped over or indexed by an int, ``tested_string`` once tested."""

    used_as_array = False
    tested_string = False

    def __iter__(self) -> Any:
        self.used_as_array = True
        return super().__iter__()  # type: ignore[misc]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            self.used_as_array = True
        return super().__getitem__(key)  # type: ignore[misc]


class _WatchedStr(_Watched, str):
    pass


class _WatchedList(_Watched, list):
    pass


def _plain(value: Any) -> Any:
    if isinstance(value, _WatchedStr):
        return str.__str__(value)
    if isinstance(value, _WatchedList):
        return list.copy(value)  # copies without iterating
    return value


def _unwatched(function: Callable, note: str | None = None) -> Callable:
    """``function`` (a jinja filter or test) given the plain values of probe content; ``note`` is the flag
    it sets on the probe content it is given."""

    @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
    def call(*args: Any, **kwargs: Any) -> Any:
        if note is not None:
            for value in (*args, *kwargs.values()):
                if isinstance(value, _Watched):
                    setattr(value, note, True)
        return function(*map(_plain, args), **{key: _plain(value) for key, value in kwargs.items()})

    return call


@functools.lru_cache(maxsize=4)
def _probe_environment(environment: jinja2.Environment) -> jinja2.Environment:
    probe = environment.overlay()
    probe.filters = {name: _unwatched(f) for name, f in environment.filters.items()}
    probe.filters["selectattr"] = _unwatched(environment.filters["selectattr"], "used_as_array")
    probe.tests = {name: _unwatched(t) for name, t in environment.tests.items()}
    probe.tests["string"] = _unwatched(environment.tests["string"], "tested_string")
    return probe


def content_support(source: str, environment: jinja2.Environment) -> tuple[bool, bool]:
    """(string, typed): whether the template ``source`` reads a message's content as a string / as a list
    of parts, as llama.cpp decides it.

    A user message with string content is rendered: the template reads strings unless that fails (or it
    loops over the string and never prints it); it reads parts if it loops over or indexes the content,
    or if it tests the content for ``is string`` and then renders an empty list of parts, looping over,
    indexing or ``selectattr``-ing it. ``environment`` is the one the template is rendered in.
    """
    template = _probe_environment(environment).from_string(source)

    def renders(content: Any) -> str | None:
        try:
            return template.render(messages=[{"role": "user", "content": content}], tools=[],
                                   bos_token="", eos_token="", add_generation_prompt=True)
        except Exception:  # a template can fail in any Python way on content it does not read
            return None

    as_string = _WatchedStr(_MARKER)
    rendered = renders(as_string)
    typed = as_string.used_as_array
    string = rendered is not None and not (typed and _MARKER not in rendered)
    if as_string.tested_string:
        as_parts = _WatchedList()
        if renders(as_parts) is not None and as_parts.used_as_array:
            typed = True
    return string, typed
