"""Errors that llmcore raises for a user's mistake: one readable line, never a traceback on the CLI."""

from __future__ import annotations


class LLMCoreError(Exception):
    """Base of every error caused by input (a file, a flag, a request) rather than a bug."""


class GGUFError(LLMCoreError):
    """A GGUF file is malformed or unsupported.

    The message names the file, the byte offset and the field, e.g.
    ``model.gguf: offset 24: metadata key #3: string length 2**60 exceeds the file size``.
    """

    def __init__(self, path: str, offset: int | None, field: str, problem: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.field = field
        self.problem = problem
        where = f"offset {offset}: " if offset is not None else ""
        super().__init__(f"{self.path}: {where}{field}: {problem}")


class TokenizerError(LLMCoreError):
    """The vocabulary metadata cannot be turned into a tokenizer (unknown model or pre-tokenizer, ...)."""


class ModelError(LLMCoreError):
    """A model cannot be built from a GGUF file: unknown architecture, missing tensor, bad shape."""


class BackendError(LLMCoreError):
    """A backend cannot run what was asked of it (unknown name, unavailable device, unsupported op)."""
