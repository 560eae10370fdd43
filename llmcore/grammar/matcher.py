"""Grammar objects built once, and the per-sequence matchers the sampler drives (llguidance inside).

``Grammar.from_gbnf(text)`` / ``Grammar.from_json_schema(schema)`` check and compile the grammar
text once; ``grammar.matcher(tokenizer)`` gives a fresh :class:`GrammarMatcher` per sequence (a cheap
copy of a matcher compiled once per tokenizer), which implements ``llmcore.engine.sampling.Grammar``:
``allows`` (the lazy check on the sampled token), ``fill_mask`` (the full mask, only when the
sampled token was rejected) and ``accept``.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import llguidance
import numpy as np

from llmcore.grammar.errors import GrammarError
from llmcore.grammar.gbnf import GbnfGrammar
from llmcore.grammar.json_schema import COMPILE_OPTIONS, prepare_schema
from llmcore.grammar.tokenizer_bridge import VocabularyLike, lltokenizer

# llguidance's resource limits (its defaults, named here): every step is bounded by "fuel", so a
# pathological grammar ends in an error instead of a hang.
_LIMITS = llguidance.LLParserLimits()
# llguidance's compiler recurses through rules that refer to one another, about 2.7 KB of stack
# a level: a grammar at gbnf.MAX_TOTAL_NESTING needs far more than a thread's usual 8 MB (beyond
# it the process dies of a segfault). Compiling runs on a thread with this much stack, reserved
# address space of which only what the recursion reaches is ever touched.
_COMPILER_STACK_BYTES = 256 << 20
_stack_size_lock = threading.Lock()

T = TypeVar("T")


def _on_compiler_stack(compile_step: Callable[[], T]) -> T:
    """``compile_step()`` run on a thread with llguidance's compiler stack; its result or its exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, compile_step()))
        except BaseException as error:  # handed to the caller's thread as it is
            outcome.append((False, error))

    with _stack_size_lock:  # threading.stack_size is process-wide: set it only for this thread's start
        previous = threading.stack_size(_COMPILER_STACK_BYTES)
        try:
            thread = threading.Thread(target=run, name="llmcore-grammar-compile", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


def _engine_error(prefix: str, message: str) -> GrammarError:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return GrammarError(f"{prefix}: {first_line}")


class Grammar:
    """A constraint on generated text: GBNF or JSON Schema, compiled once and reused.

    Build with :meth:`from_gbnf` or :meth:`from_json_schema`; call :meth:`matcher` once per sequence.
    Thread-safe: server slots may share one Grammar.
    """

    def __init__(self, kind: str, source: str, gbnf: GbnfGrammar | None, engine_grammar: str | None) -> None:
        self.kind = kind  # "gbnf" or "json_schema"
        self.source = source
        self._gbnf = gbnf
        self._engine_grammar = engine_grammar  # None when <text> tokens need a vocabulary first
        # one compiled matcher per tokenizer; sequences get copies of it
        self._templates: weakref.WeakKeyDictionary[Any, llguidance.LLMatcher] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @classmethod
    def from_gbnf(cls, text: str, root: str = "root") -> Grammar:
        """Parse llama.cpp GBNF; errors name the line and column."""
        gbnf = GbnfGrammar(text, root)
        engine_grammar = None
        if not gbnf.token_names:
            engine_grammar = llguidance.LLMatcher.grammar_from_lark(gbnf.to_lark())
            _on_compiler_stack(lambda: _validate(engine_grammar, "grammar"))
        return cls("gbnf", text, gbnf, engine_grammar)

    @classmethod
    def from_json_schema(cls, schema: Mapping[str, Any] | bool | str) -> Grammar:
        """Compile a JSON Schema (a dict, a bool or JSON text) with llama.cpp's conversion semantics."""
        prepared = prepare_schema(schema)
        try:
            engine_grammar = llguidance.LLMatcher.grammar_from_json_schema(prepared, defaults=COMPILE_OPTIONS)
        except ValueError as exc:
            raise _engine_error("json schema", str(exc)) from None
        _on_compiler_stack(lambda: _validate(engine_grammar, "json schema"))
        source = schema if isinstance(schema, str) else json.dumps(schema)
        return cls("json_schema", source, None, engine_grammar)

    def matcher(self, tokenizer: VocabularyLike) -> GrammarMatcher:
        """A fresh matcher for one sequence over ``tokenizer``'s vocabulary."""
        ll_tokenizer = lltokenizer(tokenizer)
        with self._lock:
            template = self._templates.get(tokenizer)
            if template is None:
                template = self._compile(tokenizer, ll_tokenizer)
                self._templates[tokenizer] = template
        return GrammarMatcher(template.deep_copy(), tokenizer.n_vocab, ll_tokenizer.vocab_size,
                              frozenset(ll_tokenizer.eos_tokens))

    def _compile(self, tokenizer: VocabularyLike, ll_tokenizer: llguidance.LLTokenizer) -> llguidance.LLMatcher:
        engine_grammar = self._engine_grammar
        if engine_grammar is None:
            lark = self._gbnf.to_lark(lambda text: _single_token(tokenizer, text))
            engine_grammar = llguidance.LLMatcher.grammar_from_lark(lark)
        matcher = _on_compiler_stack(
            lambda: llguidance.LLMatcher(ll_tokenizer, engine_grammar, log_level=0, limits=_LIMITS))
        if matcher.is_error():
            raise _engine_error("grammar" if self.kind == "gbnf" else "json schema", matcher.get_error())
        return matcher


def _validate(engine_grammar: str, prefix: str) -> None:
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(engine_grammar, limits=_LIMITS)
    if is_error:
        raise _engine_error(prefix, messages[0])


def _single_token(tokenizer: VocabularyLike, text: str) -> int:
    """The id of ``<text>`` in GBNF: the text must be exactly one token (as llama.cpp requires)."""
    ids = tokenizer.tokenize(text, add_special=False, parse_special=True)
    if len(ids) != 1:
        raise GrammarError(f"grammar: token {text} is not a single token in this vocabulary ({len(ids)} tokens)")
    return ids[0]


class GrammarMatcher:
    """One sequence's position in a grammar (``llmcore.engine.sampling.Grammar``)."""

    def __init__(self, matcher: llguidance.LLMatcher, n_vocab: int, engine_vocab_size: int,
                 eog_ids: frozenset[int]) -> None:
        self._matcher = matcher
        self._n_vocab = n_vocab
        self._eog_ids = eog_ids
        # one bit per token of the engine's vocabulary (ours, plus a stand-in end token if it has none)
        self._bitmask = np.zeros((engine_vocab_size + 31) // 32, dtype=np.int32)

    def allows(self, token: int) -> bool:
        """Whether ``token`` may come next (an end-of-generation token: whether the grammar may end)."""
        if token in self._eog_ids:
            return self._matcher.is_accepting()
        if not 0 <= token < self._n_vocab:
            return False
        return self._matcher.validate_tokens([token]) == 1

    def fill_mask(self, mask: np.ndarray) -> None:
        """Set ``mask[t] = True`` for every allowed token ``t`` (``mask`` may be longer than the vocabulary)."""
        bits = self._bitmask
        self._matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
        if self._matcher.is_error():
            raise _engine_error("grammar", self._matcher.get_error())
        allowed = np.unpackbits(bits.view(np.uint8), count=self._n_vocab, bitorder="little")
        np.copyto(mask[:self._n_vocab], allowed.view(np.bool_))

    def accept(self, token: int) -> None:
        """Advance past ``token``; a token the grammar does not allow is an error."""
        if not self._matcher.consume_token(token):
            raise _engine_error(f"grammar: token {token} is not allowed here", self._matcher.get_error())

    @property
    def is_accepting(self) -> bool:
        """Whether the text so far is a complete match (an end token would be allowed)."""
        return self._matcher.is_accepting()

    @property
    def is_finished(self) -> bool:
        """Whether nothing but an end token can follow (or an end token was accepted)."""
        return self._matcher.is_stopped()

    def reset(self) -> None:
        """Back to the start of the grammar."""
        self._matcher.reset()
