"""The error a chat template raises for a user's mistake."""

from __future__ import annotations

from llmcore.errors import LLMCoreError


class ChatTemplateError(LLMCoreError):
    """A chat template cannot be found, compiled or rendered for the given conversation.

    When the template itself refuses a conversation (``raise_exception('Roles must alternate')``),
    the message carries the template's own text.
    """


class ChatContentError(ChatTemplateError):
    """A message's ``content`` cannot be turned into prompt text: an image, audio or other non-text part
    (this model takes text only), or a malformed content part.

    ``index`` is the message's position in the conversation and ``param`` the request field it names,
    ``messages.N.content``; both are None when one message's content was checked on its own.
    """

    def __init__(self, problem: str, index: int | None = None) -> None:
        self.problem = problem
        self.index = index
        self.param = f"messages.{index}.content" if index is not None else None
        super().__init__(f"messages[{index}].content: {problem}" if index is not None else problem)
