"""Bookkeeping of the KV cache cells: which position of which sequence each cell holds.

The tensors themselves live on the backends that run each layer; this object decides where a
batch's keys and values go and builds the attention mask, as llama.cpp's unified KV cache does:
several sequences share one pool of ``n_ctx`` cells, and a token attends to the cells of its own
sequence at positions up to its own.
"""

from __future__ import annotations

import numpy as np

from llmcore.batch import Batch
from llmcore.errors import LLMCoreError

EMPTY = -1


class ContextFullError(LLMCoreError):
    """The KV cache has no room for the batch (the context size, -c, is too small)."""


class KVCells:
    def __init__(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.pos = np.full(n_ctx, EMPTY, np.int32)
        self.seq = np.full(n_ctx, EMPTY, np.int32)

    @property
    def n_used(self) -> int:
        return int((self.pos != EMPTY).sum())

    @property
    def n_kv(self) -> int:
        """Cells attention must read: up to the last occupied one."""
        used = np.flatnonzero(self.pos != EMPTY)
        return int(used[-1]) + 1 if len(used) else 0

    def seq_pos_max(self, seq_id: int) -> int:
        mask = self.seq == seq_id
        return int(self.pos[mask].max()) if mask.any() else -1

    def place(self, batch: Batch) -> np.ndarray:
        """Claim a cell for every token of ``batch``: the lowest free cells, as llama.cpp does."""
        free = np.flatnonzero(self.pos == EMPTY)
        if len(free) < len(batch):
            raise ContextFullError(
                f"context is full: {len(batch)} more tokens do not fit in n_ctx={self.n_ctx} "
                f"({self.n_used} cells in use); raise -c/--ctx-size")
        cells = free[: len(batch)].astype(np.int32)
        self.pos[cells] = batch.positions
        self.seq[cells] = batch.seq_ids
        return cells

    def mask(self, batch: Batch, n_kv: int) -> np.ndarray:
        """f32[n, n_ctx]: 0 where token i may attend to cell j, -inf elsewhere (and past n_kv)."""
        out = np.full((len(batch), self.n_ctx), -np.inf, np.float32)
        pos, seq = self.pos[:n_kv], self.seq[:n_kv]
        allowed = (seq[None, :] == batch.seq_ids[:, None]) & (pos[None, :] <= batch.positions[:, None]) & (pos[None, :] != EMPTY)
        out[:, :n_kv][allowed] = 0.0
        return out

    def remove(self, seq_id: int | None = None, p0: int = 0, p1: int | None = None) -> None:
        """Free the cells of ``seq_id`` (every sequence when None) with positions in [p0, p1)."""
        hit = self.pos >= p0
        if p1 is not None:
            hit &= self.pos < p1
        if seq_id is not None:
            hit &= self.seq == seq_id
        self.pos[hit] = EMPTY
        self.seq[hit] = EMPTY

    def clear(self) -> None:
        self.pos[:] = EMPTY
        self.seq[:] = EMPTY


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    """How many leading tokens ``a`` and ``b`` share (at most ``limit``): the cells a new prompt can reuse."""
    n = 0
    for x, y in zip(a, b):
        if x != y or n >= limit:
            break
        n += 1
    return n
