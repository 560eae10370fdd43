"""Shared helpers for the grammar tests (no tests here): a byte-level test vocabulary, so every string
is checked one byte per token.

Ids 0..31 are special tokens (``<|t0|>``..., so that llama.cpp's ``<[10]>`` cases have tokens to
match), ids 32..287 are the 256 single bytes, and 288 is the end-of-generation token.
"""

from __future__ import annotations

from llmcore.tokenizer.vocab import Attr

N_SPECIAL = 32
BYTE_BASE = N_SPECIAL
EOS = BYTE_BASE + 256


class ByteVocab:
    """Just enough of ``llmcore.tokenizer.Tokenizer`` for the grammar bridge."""

    n_vocab = EOS + 1
    eog_ids = frozenset({EOS})

    def token_to_piece(self, token_id: int, special: bool = True) -> bytes:
        if token_id < N_SPECIAL:
            return f"<|t{token_id}|>".encode()
        if token_id == EOS:
            return b"<|eos|>"
        return bytes([token_id - BYTE_BASE])

    def token_attr(self, token_id: int) -> Attr:
        return Attr.CONTROL if token_id < N_SPECIAL or token_id == EOS else Attr.NORMAL

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        if parse_special and text.startswith("<|t") and text.endswith("|>"):
            return [int(text[3:-2])]
        return [BYTE_BASE + b for b in text.encode("utf-8")]


def to_tokens(case: str | list) -> list[int]:
    """A test string (or llama.cpp's list of text and ``{"token": id}`` parts) as token ids."""
    parts = [case] if isinstance(case, str) else case
    ids: list[int] = []
    for part in parts:
        ids += [part["token"]] if isinstance(part, dict) else [BYTE_BASE + b for b in part.encode("utf-8")]
    return ids


def matches(grammar, vocab: ByteVocab, case: str | list) -> bool:
    """Whether the grammar accepts the whole case: every token allowed in turn, then the end allowed."""
    matcher = grammar.matcher(vocab)
    for token in to_tokens(case):
        if not matcher.allows(token):
            return False
        matcher.accept(token)
    return matcher.allows(EOS)
