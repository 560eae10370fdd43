"""Chat templates: turning a conversation into a model's prompt (jinja from the GGUF, or llama.cpp built-ins)."""

from llmcore.chat.builtin import builtin_template_names, detect_builtin_template
from llmcore.chat.errors import ChatContentError, ChatTemplateError
from llmcore.chat.messages import text_parts
from llmcore.chat.template import ChatTemplate, family_template

__all__ = [
    "ChatContentError",
    "ChatTemplate",
    "ChatTemplateError",
    "builtin_template_names",
    "detect_builtin_template",
    "family_template",
    "text_parts",
]
