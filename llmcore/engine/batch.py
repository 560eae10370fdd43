"""A batch of tokens to decode, shaped like llama.cpp's ``llama_batch``: each token has a position,
the sequence it belongs to, and whether its logits are wanted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    tokens: np.ndarray  # int32[n]
    positions: np.ndarray  # int32[n]
    seq_ids: np.ndarray  # int32[n]
    logits: np.ndarray  # bool[n]: return this token's logits

    def __post_init__(self) -> None:
        self.tokens = np.asarray(self.tokens, np.int32)
        self.positions = np.asarray(self.positions, np.int32)
        self.seq_ids = np.asarray(self.seq_ids, np.int32)
        self.logits = np.asarray(self.logits, bool)

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def for_sequence(cls, tokens: list[int], start_pos: int, seq_id: int = 0, all_logits: bool = False) -> Batch:
        """Consecutive tokens of one sequence; logits for the last one (or for every one)."""
        n = len(tokens)
        logits = np.ones(n, bool) if all_logits else np.arange(n) == n - 1
        return cls(np.array(tokens, np.int32), np.arange(start_pos, start_pos + n, dtype=np.int32),
                   np.full(n, seq_id, np.int32), logits)

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(self.tokens[start:stop], self.positions[start:stop], self.seq_ids[start:stop],
                     self.logits[start:stop])
