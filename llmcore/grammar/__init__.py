"""Grammar-constrained generation: llama.cpp GBNF and JSON Schema, decoded with llguidance.

``Grammar.from_gbnf(text)`` / ``Grammar.from_json_schema(schema)`` build a grammar once;
``grammar.matcher(tokenizer)`` gives the per-sequence object that ``llmcore.engine.sampling.Sampler(...,
grammar=)`` drives. See docs/grammar.md for the engine choice and deliberate differences from llama.cpp.
"""

from llmcore.grammar.matcher import Grammar, GrammarMatcher
from llmcore.grammar.errors import GrammarError
from llmcore.grammar.requests import grammar_for, schema_for_response_format

__all__ = ["Grammar", "GrammarError", "GrammarMatcher", "grammar_for", "schema_for_response_format"]
