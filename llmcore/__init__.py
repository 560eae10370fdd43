"""llmcore: llama.cpp's feature surface in Python, as a plugin-based backend framework."""

from llmcore.errors import BackendError, GGUFError, LLMCoreError, ModelError, TokenizerError

__all__ = ["BackendError", "GGUFError", "LLMCoreError", "ModelError", "TokenizerError"]
__version__ = "0.1.0"
