"""Bookkeeping of the KV cache cells: which position of which sequence each cell holds.

The tensors themselves live on the backends that run each layer; this object decides where a
batch's keys and values go and builds the attention mask, as llama.cpp's unified KV cache does:
several sequences share one pool of ``n_ctx`` cells, and a token attends to the cells of its own
sequence at positions up to its own.
"""

from __future__ import annotations

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError

EMPTY = -1


class ContextFullError(LLMCoreError):
    """The KV cache has no room for the batch (the context size, -c, is too small)."""


#: per-sequence cell ranges start at multiples of this, so that the blocks in which backends sum a
#: sequence's attention scores never depend on where other sequences sit
RANGE_ALIGNMENT = 64


class KVCells:
    def __init__(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.pos = np.full(n_ctx, EMPTY, np.int32)
        self.seq = np.full(n_ctx, EMPTY, np.int32)
        self.range_size: int | None = None  # cells per sequence once partitioned

    def partition(self, n_seq: int) -> int:
        """Give sequence s its own cells [s * size, (s + 1) * size), as llama.cpp's per-sequence
        (non-unified) KV cache does for server slots: a sequence then computes exactly the same
        numbers whichever other sequences share its batches. Returns the cells per sequence."""
        size = self.n_ctx // n_seq
        if n_seq > 1:
            size -= size % RANGE_ALIGNMENT
        if size < 1:
            raise LLMCoreError(f"-c {self.n_ctx} is too small for {n_seq} sequences")
        self.clear()
        self.range_size = size
        return size

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
        """Claim a cell for every token of ``batch``: the lowest free cells (of its sequence's
        range, once partitioned), as llama.cpp does."""
        if self.range_size is None:
            cells = self._claim(np.flatnonzero(self.pos == EMPTY), len(batch), "the context")
        else:
            cells = np.empty(len(batch), np.int32)
            for seq_id in np.unique(batch.seq_ids):
                rows = np.flatnonzero(batch.seq_ids == seq_id)
                start = int(seq_id) * self.range_size
                if not 0 <= start < self.n_ctx:
                    raise LLMCoreError(f"sequence {seq_id} is outside the {self.n_ctx // self.range_size} partitions")
                free = start + np.flatnonzero(self.pos[start:start + self.range_size] == EMPTY)
                cells[rows] = self._claim(free, len(rows), f"sequence {seq_id}'s {self.range_size} cells")
        self.pos[cells] = batch.positions
        self.seq[cells] = batch.seq_ids
        return cells

    def _claim(self, free: np.ndarray, n: int, where: str) -> np.ndarray:
        if len(free) < n:
            raise ContextFullError(f"context is full: {n} more tokens do not fit in {where} "
                                   f"(n_ctx={self.n_ctx}, {self.n_used} cells in use); raise -c/--ctx-size")
        return free[:n].astype(np.int32)

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
