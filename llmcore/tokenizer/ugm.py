"""Unigram (T5, XLM-RoBERTa) as llama.cpp runs it (llm_tokenizer_ugm_session).

Normalises with the SentencePiece precompiled charsmap (a double-array trie of replacements), then
picks the best-scoring segmentation by Viterbi over a byte trie of the vocabulary.
"""

from __future__ import annotations

import numpy as np

from llmcore.errors import TokenizerError
from llmcore.tokenizer.vocab import ESCAPED_SPACE, Attr, Vocab

_UNKNOWN_PENALTY = 10.0
_SPACE = ESCAPED_SPACE.encode()


def _utf8_len(byte: int) -> int:
    return (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4)[byte >> 4]


class UgmEncoder:
    """Tokenizes one text fragment of a unigram vocabulary."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        charsmap = vocab.precompiled_charsmap
        self.xcda = np.zeros(0, dtype="<u4")
        self.replacements = b""
        if charsmap:
            blob = int.from_bytes(charsmap[:4], "little")
            if blob + 4 >= len(charsmap):
                raise TokenizerError(f"{vocab.source}: tokenizer.ggml.precompiled_charsmap: truncated")
            self.xcda = np.frombuffer(charsmap[4:4 + blob], dtype="<u4").tolist()
            self.replacements = charsmap[4 + blob:]
        scores = vocab.scores if vocab.scores is not None else np.zeros(vocab.n_tokens, dtype=np.float32)
        self.scores = scores.tolist()
        attrs = vocab.attrs
        normal = (attrs & Attr.NORMAL) != 0
        self.user_defined = (attrs & Attr.USER_DEFINED) != 0
        self.min_score = float(scores[normal].min()) if normal.any() else np.finfo(np.float32).max
        # float arithmetic, as in llama.cpp
        self.unknown_score = float(np.float32(self.min_score) - np.float32(_UNKNOWN_PENALTY))
        # byte string -> id; llama.cpp walks a byte trie, trying every prefix is the same set of matches
        texts = vocab.texts
        self.tokens = {texts[i].encode("utf-8", "surrogatepass"): i
                       for i in np.flatnonzero(normal | self.user_defined | ((attrs & Attr.UNUSED) != 0)).tolist()}
        self.max_len = max(map(len, self.tokens), default=0)
        self.user_tokens = {texts[i].encode("utf-8", "surrogatepass") for i in np.flatnonzero(self.user_defined).tolist()}
        self.user_prefixes = {key[:k] for key in self.user_tokens for k in range(1, len(key) + 1)}
        self.user_defined = self.user_defined.tolist()

    def encode(self, text: str) -> list[int]:
        normalized = self.normalize(text.encode("utf-8", "surrogatepass"))
        n = len(normalized)
        if n == 0:
            return []
        unk = self.vocab.unk_id if self.vocab.unk_id is not None else -1
        best_score = [-float("inf")] * (n + 1)
        best_token = [unk] * (n + 1)
        best_start = [0] * (n + 1)
        best_score[0] = 0.0
        tokens = self.tokens
        pos = 0
        while pos < n:
            char_len = min(_utf8_len(normalized[pos]), n - pos)
            here = best_score[pos]
            single_found = False
            for end in range(pos + 1, min(n, pos + self.max_len) + 1):
                token_id = tokens.get(normalized[pos:end])
                if token_id is not None:
                    if end - pos == char_len:
                        single_found = True
                    score = here + (0.0 if self.user_defined[token_id] else self.scores[token_id])
                    if score > best_score[end]:
                        best_score[end], best_token[end], best_start[end] = score, token_id, pos
            if not single_found:
                end = pos + char_len
                score = here + self.unknown_score
                if score > best_score[end]:
                    best_score[end], best_token[end], best_start[end] = score, unk, pos
            pos += char_len
        out: list[int] = []
        pos = n
        previous_unknown = False
        while True:
            token_id = best_token[pos]
            is_unknown = token_id == unk
            if not (previous_unknown and is_unknown):
                out.append(token_id)
            if best_start[pos] == 0:
                break
            previous_unknown = is_unknown
            pos = best_start[pos]
        out.reverse()
        return out

    def normalize(self, data: bytes) -> bytes:
        """llm_tokenizer_ugm_session::normalize: charsmap replacements and whitespace handling."""
        vocab = self.vocab
        space = _SPACE if vocab.escape_whitespaces else b" "
        prepend = not vocab.treat_whitespace_as_suffix and vocab.add_space_prefix
        append = vocab.treat_whitespace_as_suffix and vocab.add_space_prefix
        merge_spaces = vocab.remove_extra_whitespaces
        out = bytearray()
        space_prepended = False
        in_word = False
        pos = 0
        while pos < len(data):
            piece, consumed = self._normalize_prefix(data, pos)
            for byte in piece:
                if byte != 0x20:
                    if not in_word:
                        in_word = True
                        if (prepend and not space_prepended) or merge_spaces:
                            out += space
                            space_prepended = True
                    out.append(byte)
                else:
                    in_word = False
                    if not merge_spaces:
                        out += space
            pos += consumed
        if append:
            out += space
        return bytes(out)

    def _normalize_prefix(self, data: bytes, pos: int) -> tuple[bytes, int]:
        matched = self._user_token_prefix(data, pos)
        if matched:
            return data[pos:pos + matched], matched
        longest, replacement_at = 0, 0
        xcda = self.xcda
        if xcda:
            node = self._base(0)
            for offset in range(pos, len(data)):
                byte = data[offset]
                if byte == 0:
                    break
                node ^= byte
                if self._lcheck(node) != byte:
                    break
                leaf = (self._node(node) >> 8) & 1
                node ^= self._base(node)
                if leaf:
                    longest = offset - pos + 1
                    replacement_at = self._node(node) & 0x7FFFFFFF
        if longest:
            if replacement_at >= len(self.replacements):
                raise TokenizerError(f"{self.vocab.source}: precompiled charsmap: replacement index out of range")
            end = self.replacements.find(b"\0", replacement_at)
            if end < 0:
                raise TokenizerError(f"{self.vocab.source}: precompiled charsmap: unterminated replacement")
            return self.replacements[replacement_at:end], longest
        length = _valid_utf8_prefix(data, pos)
        if length:
            return data[pos:pos + length], length
        return "\ufffd".encode(), 1

    def _user_token_prefix(self, data: bytes, pos: int) -> int:
        """naive_trie::get_longest_prefix over the user-defined tokens: the longest path walked in the trie."""
        length = 0
        while pos + length < len(data) and data[pos:pos + length + 1] in self.user_prefixes:
            length += 1
        return length

    def _node(self, index: int) -> int:
        if index >= len(self.xcda):
            raise TokenizerError(f"{self.vocab.source}: precompiled charsmap: index out of range")
        return self.xcda[index]

    def _base(self, index: int) -> int:
        packed = self._node(index)
        return (packed >> 10) << ((packed & (1 << 9)) >> 6)

    def _lcheck(self, index: int) -> int:
        return self._node(index) & ((1 << 31) | 0xFF)


def _valid_utf8_prefix(data: bytes, pos: int) -> int:
    """Length of the UTF-8 character at data[pos] as unicode_cpt_from_utf8 accepts it, 0 if invalid."""
    lead = data[pos]
    if lead < 0x80:
        return 1
    if not lead & 0x40:
        return 0
    length = 2 if not lead & 0x20 else 3 if not lead & 0x10 else 4 if not lead & 0x08 else 0
    if not length or pos + length > len(data):
        return 0
    if any((data[pos + k] & 0xC0) != 0x80 for k in range(1, length)):
        return 0
    return length
