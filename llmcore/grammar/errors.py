"""The error raised for a grammar or JSON schema that cannot be used."""

from __future__ import annotations

from llmcore.errors import LLMCoreError


class GrammarError(LLMCoreError):
    """A malformed or unusable grammar: GBNF syntax (with line and column), an unsupported JSON schema
    feature (with its JSON path), a grammar that matches nothing, or one that exceeds the engine's limits."""
