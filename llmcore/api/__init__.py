"""The public, typed Python API."""

from llmcore.api.llm import LLM
from llmcore.api.types import Completion, CompletionChoice, Timings, Usage

__all__ = ["LLM", "Completion", "CompletionChoice", "Timings", "Usage"]
