"""Grammars as API and server requests name them: GBNF text, a JSON schema, or OpenAI's
``response_format``."""

from __future__ import annotations

from typing import Any

from llmcore.errors import LLMCoreError
from llmcore.grammar.matcher import Grammar


def grammar_for(grammar: Grammar | str | None, json_schema: dict | str | bool | None) -> Grammar | None:
    """The grammar a request asks for: a :class:`Grammar`, GBNF text, or a JSON schema (not both)."""
    if grammar is not None and json_schema is not None:
        raise LLMCoreError("give either a grammar or a JSON schema, not both")
    if isinstance(grammar, str):
        return Grammar.from_gbnf(grammar)
    if json_schema is not None:
        return Grammar.from_json_schema(json_schema)
    return grammar


def schema_for_response_format(response_format: dict[str, Any]) -> dict | bool | None:
    """The JSON schema an OpenAI ``response_format`` asks for (None for plain text)."""
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return response_format.get("schema", {"type": "object"})
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        if "schema" not in spec:
            raise LLMCoreError("response_format: field 'json_schema.schema' is required")
        return spec["schema"]
    raise LLMCoreError(f"response_format: field 'type' must be text, json_object or json_schema, got {kind!r}")
