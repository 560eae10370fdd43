"""``resolve_model``: what a ``-m/--model`` argument names, as a local file path."""

from __future__ import annotations

from pathlib import Path

from llmcore.hub.cache import find_cached
from llmcore.hub.default_model import default_model_path
from llmcore.hub.errors import HubError
from llmcore.hub.pull import pull
from llmcore.hub.refs import is_remote_ref


def resolve_model(model: str | None, *, progress: bool = True) -> Path:
    """The model file for ``model``, checked in this order (the network is used only by the last two):

    an existing file path; a cached model's name or the reference/URL it was pulled from; a URL or
    Hugging Face reference, pulled into the cache; ``None``: the default model.
    """
    if model is None:
        return default_model_path(progress=progress)
    path = Path(model).expanduser()
    if path.is_file():
        return path
    cached = find_cached(model)
    if cached is not None:
        return cached.path
    if is_remote_ref(model):
        return pull(model, progress=progress)
    raise HubError(f"{model}: no such file, cached model, URL or Hugging Face reference")
