"""Our vocabulary as llguidance's ``LLTokenizer``: the bytes of every token, which ones are special,
and the end-of-generation ids.

Control tokens (and user-defined ones written like ``<...>``, and unknown/unused ones) get llguidance's
0xFF prefix: they are then never produced by text in a grammar, only by token syntax (``<[id]>``,
``<think>``), so a string rule cannot emit ``<|im_end|>``. Building the table walks the whole
vocabulary (about a second for 150k tokens), so the result is cached per tokenizer object.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

import llguidance

from llmcore.tokenizer.vocab import Attr

_SPECIAL_PREFIX = b"\xff"
_ALWAYS_SPECIAL = Attr.CONTROL | Attr.UNKNOWN | Attr.UNUSED
_cache: weakref.WeakKeyDictionary[Any, llguidance.LLTokenizer] = weakref.WeakKeyDictionary()


class VocabularyLike(Protocol):
    """What the bridge reads from a tokenizer (``llmcore.tokenizer.Tokenizer`` provides it)."""

    n_vocab: int
    eog_ids: frozenset[int]

    def token_to_piece(self, token_id: int, special: bool = True) -> bytes: ...

    def token_attr(self, token_id: int) -> Attr: ...

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]: ...


class _Wrapped:
    """The duck-typed object ``llguidance.TokenizerWrapper`` expects."""

    def __init__(self, tokenizer: VocabularyLike) -> None:
        self._tokenizer = tokenizer
        self.tokens: list[bytes] = []
        self.special_token_ids: list[int] = []
        for token_id in range(tokenizer.n_vocab):
            piece = tokenizer.token_to_piece(token_id, special=True)
            attr = tokenizer.token_attr(token_id)
            if attr & _ALWAYS_SPECIAL or (attr & Attr.USER_DEFINED and piece.startswith(b"<")
                                          and piece.endswith(b">")):
                piece = _SPECIAL_PREFIX + piece
                self.special_token_ids.append(token_id)
            self.tokens.append(piece)
        eog = sorted(tokenizer.eog_ids)
        if not eog:  # a vocabulary without an end token still needs one to mark where a grammar may end
            eog = [len(self.tokens)]
            self.tokens.append(_SPECIAL_PREFIX + b"<end-of-grammar>")
            self.special_token_ids.append(eog[0])
        self.eos_token_ids = eog
        self.eos_token_id = eog[0]
        self.bos_token_id = None

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._tokenizer.tokenize(text, add_special=False, parse_special=False)


def lltokenizer(tokenizer: VocabularyLike) -> llguidance.LLTokenizer:
    """llguidance's view of ``tokenizer``, built once per tokenizer object."""
    try:
        return _cache[tokenizer]
    except (KeyError, TypeError):
        pass
    wrapped = _Wrapped(tokenizer)
    result = llguidance.LLTokenizer(llguidance.TokenizerWrapper(wrapped), eos_token=wrapped.eos_token_ids)
    try:
        _cache[tokenizer] = result
    except TypeError:  # not weak-referenceable: build again next time
        pass
    return result
