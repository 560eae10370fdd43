"""Byte-level BPE (llm_tokenizer_bpe_session): pre-tokenize, then merge each word by merge rank."""

from __future__ import annotations

import heapq

from llmcore.tokenizer import unicode as uc
from llmcore.tokenizer.pretokenizers import PreTokenizer
from llmcore.tokenizer.vocab import Vocab


class BpeEncoder:
    """Tokenizes raw text fragments of a BPE vocabulary exactly like llama.cpp."""

    def __init__(self, vocab: Vocab) -> None:
        assert vocab.pre is not None and vocab.merges is not None
        self.vocab = vocab
        self.pre_tokenizer = PreTokenizer(vocab.pre.pre_type)
        self.byte_encode = vocab.pre.pre_type not in ("GEMMA4", "SARVAM_MOE", "WHITESPACE")
        self.is_gemma4 = vocab.pre.pre_type == "GEMMA4"
        # "left right" -> rank; merging looks pairs up by their joined text with the separating space
        self.ranks: dict[str, int] = {}
        for rank, merge in enumerate(vocab.merges):
            if " " in merge[1:]:
                self.ranks.setdefault(merge, rank)
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode(self, text: str) -> list[int]:
        """Token ids of one raw text fragment (no special-token handling)."""
        if self.vocab.model == "whitespace":
            return self._encode_whitespace_model(text)
        out: list[int] = []
        cache = self._cache
        for word in self.pre_tokenizer.split(text):
            if self.byte_encode:
                word = word.encode("utf-8", "surrogatepass").decode("latin-1").translate(uc.BYTE_ENCODE_TABLE)
            ids = cache.get(word)
            if ids is None:
                ids = cache[word] = tuple(self._encode_word(word))
            out.extend(ids)
        return out

    def _encode_whitespace_model(self, text: str) -> list[int]:
        """llm_tokenizer_whitespace_session: drop whitespace, BPE each remaining run."""
        out: list[int] = []
        run: list[str] = []
        for char in text + " ":
            if ord(char) in uc.WHITESPACE_CODEPOINTS:
                if run:
                    segment = "".join(run)
                    run = []
                    for word in self.pre_tokenizer.split(segment):
                        out.extend(self._encode_word(word))
            else:
                run.append(chr(uc.to_lower(ord(char))) if self.vocab.lowercase else char)
        return out

    def _encode_word(self, word: str) -> list[int]:
        token_to_id = self.vocab.token_to_id
        if self.vocab.ignore_merges and word in token_to_id:
            return [token_to_id[word]]
        if self.is_gemma4 and not word.strip("\n") and word in token_to_id:
            return [token_to_id[word]]
        symbols = self._merge(word)
        out: list[int] = []
        for symbol in symbols:
            token_id = token_to_id.get(symbol)
            if token_id is not None:
                out.append(token_id)
            elif self.byte_encode:
                # llama.cpp looks each UTF-8 byte of the symbol up as a one-byte string: only ASCII can match
                out.extend(token_to_id[c] for c in symbol if c < "\x80" and c in token_to_id)
            else:
                for byte in symbol.encode("utf-8", "surrogatepass"):
                    token_id = token_to_id.get(f"<0x{byte:02X}>")
                    if token_id is not None:
                        out.append(token_id)
        return out

    def _merge(self, word: str) -> list[str]:
        """Apply merges lowest rank first (leftmost on ties), as llm_tokenizer_bpe_session does."""
        ranks = self.ranks
        n = len(word)
        if n <= 1:
            return [word] if word else []
        if n == 2:
            return [word] if word[0] + " " + word[1] in ranks else [word[0], word[1]]
        text = list(word)
        prev = list(range(-1, n - 1))
        nxt = [*range(1, n), -1]
        heap: list[tuple[int, int, int, str]] = []
        for i in range(n - 1):
            rank = ranks.get(text[i] + " " + text[i + 1])
            if rank is not None:
                heap.append((rank, i, i + 1, text[i] + text[i + 1]))
        heapq.heapify(heap)
        while heap:
            _, left, right, joined = heapq.heappop(heap)
            left_text, right_text = text[left], text[right]
            if not left_text or not right_text or nxt[left] != right or left_text + right_text != joined:
                continue
            text[left] = joined
            text[right] = ""
            nxt[left] = after = nxt[right]
            if after >= 0:
                prev[after] = left
            before = prev[left]
            if before >= 0:
                rank = ranks.get(text[before] + " " + joined)
                if rank is not None:
                    heapq.heappush(heap, (rank, before, left, text[before] + joined))
            if after >= 0:
                rank = ranks.get(joined + " " + text[after])
                if rank is not None:
                    heapq.heappush(heap, (rank, left, after, joined + text[after]))
        return [t for t in text if t]
