"""llmcore's template backend plugin: the module the ``llmcore.backends`` entry point names.

llmcore loads this module when it discovers plugins and calls its ``llmcore_backends`` hook once;
the hook only returns classes. Nothing here may touch a device: that happens in
``TemplateBackend.probe`` (asked when backends are listed or chosen) and ``__init__`` (when a model
is loaded onto the backend).
"""

from __future__ import annotations

from llmcore.plugin_api import Backend, hookimpl
from llmcore_template.backend import TemplateBackend


@hookimpl
def llmcore_backends() -> list[type[Backend]]:
    return [TemplateBackend]


__all__ = ["TemplateBackend"]
