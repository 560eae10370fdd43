"""``Tokenizer``: llama.cpp's tokenize / detokenize over a GGUF vocabulary."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from llmcore.errors import TokenizerError
from llmcore.tokenizer.detokenizer import StreamDecoder, clean_up_spaces
from llmcore.tokenizer.vocab import ESCAPED_SPACE, SPECIAL_ATTRS, Attr, TokenType, Vocab, VocabType

_ASCII_SPACE = " \t\n\v\f\r"  # what C's isspace() strips around LSTRIP/RSTRIP special tokens
_LSTRIP, _RSTRIP = Attr.LSTRIP.value, Attr.RSTRIP.value


class Tokenizer:
    """Text <-> token ids exactly as llama.cpp does it for the same GGUF vocabulary.

    Build one with :meth:`from_gguf` (a model or a vocab-only file) or :meth:`from_metadata`.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self._encoder: Any = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], source: str = "<metadata>") -> Tokenizer:
        """Build from GGUF metadata (``tokenizer.ggml.*`` keys), as read by ``llmcore.gguf.GGUFReader``."""
        return cls(Vocab(metadata, source))

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Build from a GGUF file's metadata."""
        from llmcore.gguf import GGUFReader

        return cls.from_metadata(GGUFReader(path).metadata, str(path))

    # -- vocabulary facts ------------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return self.vocab.n_tokens

    @property
    def bos_id(self) -> int | None:
        return self.vocab.bos_id

    @property
    def eos_id(self) -> int | None:
        return self.vocab.eos_id

    @property
    def eot_id(self) -> int | None:
        return self.vocab.eot_id

    @property
    def eog_ids(self) -> frozenset[int]:
        """Tokens that end generation (EOS, EOT, EOM, <|im_end|>, ... as llama.cpp collects them)."""
        return self.vocab.eog_ids

    @property
    def add_bos(self) -> bool:
        return self.vocab.add_bos

    @property
    def add_eos(self) -> bool:
        return self.vocab.add_eos

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.vocab.eog_ids

    def token_text(self, token_id: int) -> str:
        """The token's text as stored in the vocabulary (e.g. ``Ġthe``, ``▁the``, ``<|im_end|>``)."""
        return self.vocab.texts[self._check(token_id)]

    def token_type(self, token_id: int) -> TokenType:
        """The token's ``tokenizer.ggml.token_type`` (NORMAL, CONTROL, USER_DEFINED, BYTE, ...)."""
        return TokenType(int(self.vocab.token_types[self._check(token_id)]))

    def token_attr(self, token_id: int) -> Attr:
        """llama.cpp's attributes of the token (type bits plus LSTRIP/RSTRIP/UNUSED overrides)."""
        return self.vocab.attr(self._check(token_id))

    def _check(self, token_id: int) -> int:
        if not 0 <= token_id < self.vocab.n_tokens:
            raise TokenizerError(f"{self.vocab.source}: token id {token_id} outside the vocabulary "
                                 f"(0..{self.vocab.n_tokens - 1})")
        return token_id

    # -- text -> ids -----------------------------------------------------------------------------

    @property
    def encoder(self) -> Any:
        """The model-specific encoder of raw text fragments, built on first use."""
        if self._encoder is None:
            vocab_type = self.vocab.type
            if vocab_type is VocabType.SPM:
                from llmcore.tokenizer.spm import SpmEncoder as encoder_class
            elif vocab_type is VocabType.BPE:
                from llmcore.tokenizer.bpe import BpeEncoder as encoder_class
            elif vocab_type is VocabType.WPM:
                from llmcore.tokenizer.wpm import WpmEncoder as encoder_class
            elif vocab_type is VocabType.UGM:
                from llmcore.tokenizer.ugm import UgmEncoder as encoder_class
            else:
                from llmcore.tokenizer.rwkv import RwkvEncoder as encoder_class
            self._encoder = encoder_class(self.vocab)
        return self._encoder

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of ``text`` (llama_tokenize).

        ``add_special`` adds BOS/EOS/SEP as the vocabulary's flags say; ``parse_special`` lets text such as
        ``<|im_start|>`` become its control token (user-defined tokens are always matched).
        """
        vocab = self.vocab
        fragments = self._partition(text, parse_special) if text else []
        encode = self.encoder.encode
        out: list[int] = []
        vocab_type = vocab.type
        if add_special and (vocab.add_bos if vocab_type is not VocabType.WPM else True) \
                and vocab_type is not VocabType.RWKV:
            out.append(self._required(vocab.bos_id, "BOS"))
        previous_special = True  # SPM: a space is prefixed to text at the start and after special tokens
        for fragment in fragments:
            if isinstance(fragment, int):
                out.append(fragment)
                previous_special = True
                continue
            piece = text[fragment[0]:fragment[1]]
            if vocab_type is VocabType.SPM:
                if vocab.add_space_prefix and previous_special:
                    piece = " " + piece
                piece = piece.replace(" ", ESCAPED_SPACE)
            elif vocab_type is VocabType.BPE and vocab.escape_whitespaces:
                piece = piece.replace(" ", ESCAPED_SPACE)
            out.extend(encode(piece))
            previous_special = False
        if add_special:
            if vocab_type is VocabType.WPM:
                out.append(self._required(vocab.sep_id, "SEP"))
            elif vocab.add_eos and vocab_type is not VocabType.RWKV:
                out.append(self._required(vocab.eos_id, "EOS"))
        return out

    def _required(self, token_id: int | None, name: str) -> int:
        if token_id is None:
            raise TokenizerError(f"{self.vocab.source}: the vocabulary asks for a {name} token but has none")
        return token_id

    def _partition(self, text: str, parse_special: bool) -> list[int | tuple[int, int]]:
        """tokenizer_st_partition: cut special-token text out of ``text``, longest tokens first."""
        vocab = self.vocab
        fragments: list[int | tuple[int, int]] = [(0, len(text))]
        for token_id in vocab.special_tokens:
            attr = vocab.attr_list[token_id]
            if not parse_special and attr & SPECIAL_ATTRS:
                continue  # control and unknown tokens only when parsing specials; user-defined always
            token = vocab.texts[token_id]
            if token not in text:
                continue
            split: list[int | tuple[int, int]] = []
            for fragment in fragments:
                if isinstance(fragment, int):
                    split.append(fragment)
                    continue
                start, end = fragment
                while start < end:
                    found = text.find(token, start, end)
                    if found < 0:
                        break
                    left_end = found
                    if attr & _LSTRIP:
                        while left_end > start and text[left_end - 1] in _ASCII_SPACE:
                            left_end -= 1
                    if left_end > start:
                        split.append((start, left_end))
                    split.append(token_id)
                    start = found + len(token)
                    if attr & _RSTRIP:
                        while start < end and text[start] in _ASCII_SPACE:
                            start += 1
                if start < end:
                    split.append((start, end))
            fragments = split
        return fragments

    # -- ids -> text -----------------------------------------------------------------------------

    def token_to_piece(self, token_id: int, special: bool = True) -> bytes:
        """The bytes of one token (llama_token_to_piece); control/unknown tokens give b"" unless ``special``."""
        self._check(token_id)
        if not special and self.vocab.attr_list[token_id] & SPECIAL_ATTRS:
            return b""
        return self.vocab.piece(token_id)

    def detokenize_bytes(self, ids: Iterable[int], remove_special: bool = False,
                         unparse_special: bool = False) -> bytes:
        """llama_detokenize as bytes: pieces joined, SPM's leading space dropped, spaces cleaned up."""
        vocab = self.vocab
        ids = list(ids)
        remove_space = vocab.add_space_prefix
        if remove_special and vocab.add_bos and ids and ids[0] == vocab.bos_id:
            remove_space = False
            ids = ids[1:]
        if remove_special and vocab.add_eos and ids and ids[-1] == vocab.eos_id:
            ids = ids[:-1]
        pieces = []
        for token_id in ids:
            piece = self.token_to_piece(token_id, unparse_special)
            if remove_space:
                remove_space = False
                if piece.startswith(b" "):
                    piece = piece[1:]
            pieces.append(piece)
        text = b"".join(pieces)
        return clean_up_spaces(text) if vocab.clean_spaces else text

    def detokenize(self, ids: Iterable[int], remove_special: bool = False, unparse_special: bool = False) -> str:
        """llama_detokenize as text (invalid UTF-8, e.g. a cut multi-byte character, becomes U+FFFD)."""
        return self.detokenize_bytes(ids, remove_special, unparse_special).decode("utf-8", "replace")

    def stream_decoder(self, special: bool = False) -> StreamDecoder:
        """A decoder for streaming output: ``feed(id)`` returns only complete characters, ``flush()`` the rest."""
        return StreamDecoder(lambda token_id: self.token_to_piece(token_id, special))
