"""llmcore: llama.cpp's feature surface in Python, as a plugin-based backend framework.

``from llmcore import LLM`` is the entry point; see its docstring.
"""

from llmcore.errors import BackendError, GGUFError, LLMCoreError, ModelError, TokenizerError
from llmcore.version import __version__

__all__ = ["LLM", "BackendError", "GGUFError", "LLMCoreError", "ModelError", "Tokenizer", "TokenizerError"]


def __getattr__(name: str):
    # LLM and Tokenizer pull in numpy and the model code: import them on first use so that the
    # CLI's --help and argument errors stay instant.
    if name == "LLM":
        from llmcore.api import LLM

        return LLM
    if name == "Tokenizer":
        from llmcore.tokenizer import Tokenizer

        return Tokenizer
    raise AttributeError(f"module 'llmcore' has no attribute {name!r}")
