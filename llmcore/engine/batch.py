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
    #: float32 [n, n_embd]: embeddings that take the tokens' place (an image's, llama_batch's ``embd``)
    embd: np.ndarray | None = None
    #: int32 [4, n]: an image's M-RoPE positions (time, row, column, 0) for a model with several
    #: positions per token; None: each token's one position (see KVCells.rope_positions)
    rope_positions: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.tokens = np.asarray(self.tokens, np.int32)
        self.positions = np.asarray(self.positions, np.int32)
        self.seq_ids = np.asarray(self.seq_ids, np.int32)
        self.logits = np.asarray(self.logits, bool)
        if self.embd is not None:
            self.embd = np.asarray(self.embd, np.float32)
        if self.rope_positions is not None:
            self.rope_positions = np.asarray(self.rope_positions, np.int32)

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def for_sequence(cls, tokens: list[int], start_pos: int, seq_id: int = 0, all_logits: bool = False) -> Batch:
        """Consecutive tokens of one sequence; logits for the last one (or for every one)."""
        n = len(tokens)
        logits = np.ones(n, bool) if all_logits else np.arange(n) == n - 1
        return cls(np.array(tokens, np.int32), np.arange(start_pos, start_pos + n, dtype=np.int32),
                   np.full(n, seq_id, np.int32), logits)

    @classmethod
    def for_embeddings(cls, embd: np.ndarray, start_pos: int, seq_id: int = 0, last_logits: bool = False,
                       rope_positions: np.ndarray | None = None) -> Batch:
        """Consecutive positions of one sequence given as embeddings [n, n_embd] instead of tokens
        (``rope_positions``: their M-RoPE positions, int32 [4, n])."""
        n = len(embd)
        logits = (np.arange(n) == n - 1) & last_logits
        return cls(np.zeros(n, np.int32), np.arange(start_pos, start_pos + n, dtype=np.int32),
                   np.full(n, seq_id, np.int32), logits, embd, rope_positions)

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(self.tokens[start:stop], self.positions[start:stop], self.seq_ids[start:stop],
                     self.logits[start:stop], None if self.embd is None else self.embd[start:stop],
                     None if self.rope_positions is None else self.rope_positions[:, start:stop])
