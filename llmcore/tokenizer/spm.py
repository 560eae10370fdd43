"""SentencePiece BPE as llama.cpp runs it (llm_tokenizer_spm_session): merge by token score."""

from __future__ import annotations

import heapq

from llmcore.tokenizer.vocab import Vocab


class SpmEncoder:
    """Tokenizes one (already space-escaped) text fragment of an SPM vocabulary."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        scores = vocab.scores
        self.scores: list[float] = scores.tolist() if scores is not None else [0.0] * vocab.n_tokens

    def encode(self, text: str) -> list[int]:
        token_to_id = self.vocab.token_to_id
        scores = self.scores
        n = len(text)
        if n == 0:
            return []
        symbols = list(text)
        prev = list(range(-1, n - 1))
        nxt = [*range(1, n), -1]
        # max score first, then leftmost: heapq is a min-heap, so negate the score
        heap: list[tuple[float, int, int, str]] = []
        for i in range(n - 1):
            joined = symbols[i] + symbols[i + 1]
            token_id = token_to_id.get(joined)
            if token_id is not None:
                heap.append((-scores[token_id], i, i + 1, joined))
        heapq.heapify(heap)
        while heap:
            _, left, right, joined = heapq.heappop(heap)
            left_text, right_text = symbols[left], symbols[right]
            if not left_text or not right_text or left_text + right_text != joined:
                continue
            symbols[left] = joined
            symbols[right] = ""
            nxt[left] = after = nxt[right]
            if after >= 0:
                prev[after] = left
            before = prev[left]
            if before >= 0:
                pair = symbols[before] + joined
                token_id = token_to_id.get(pair)
                if token_id is not None:
                    heapq.heappush(heap, (-scores[token_id], before, left, pair))
            if after >= 0:
                pair = joined + symbols[after]
                token_id = token_to_id.get(pair)
                if token_id is not None:
                    heapq.heappush(heap, (-scores[token_id], left, after, pair))
        out: list[int] = []
        for symbol in symbols:
            if not symbol:
                continue
            token_id = token_to_id.get(symbol)
            if token_id is not None:
                out.append(token_id)
            else:  # a character outside the vocabulary: byte fallback
                out.extend(self.vocab.byte_token(b) for b in symbol.encode("utf-8", "surrogatepass"))
        return out
