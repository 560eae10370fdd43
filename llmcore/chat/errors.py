"""The error a chat template raises for a user's mistake."""

from __future__ import annotations

from llmcore.errors import LLMCoreError


class ChatTemplateError(LLMCoreError):
    """A chat template cannot be found, compiled or rendered for the given conversation.

    When the template itself refuses a conversation (``raise_exception('Roles must alternate')``),
    the message carries the template's own text.
    """
