"""The hooks a backend plugin implements. Plugins register a module through the entry-point group
``llmcore.backends``; the core calls these hooks once, at discovery, never in a hot loop."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("llmcore")
hookimpl = pluggy.HookimplMarker("llmcore")


@hookspec
def llmcore_backends() -> list[type]:
    """Return the :class:`llmcore.backends.Backend` subclasses this plugin provides.

    Called once when llmcore discovers plugins. Must not allocate devices or compile kernels:
    that belongs to ``Backend.probe`` (asked when the user lists or selects backends) and to
    ``Backend.__init__`` (when a model is loaded onto the backend).
    """
