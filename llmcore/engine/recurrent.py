"""Bookkeeping of a recurrent model's memory (Mamba): one state per sequence instead of KV cells.

As llama.cpp's recurrent memory (llama-memory-recurrent.cpp), sequence s keeps its conv and scan
states in row s of each layer's state caches, and remembers the last position they have read. A
state cannot forget its last tokens, so removing a tail of a sequence is refused (``remove``
returns False, as llama_memory_seq_rm does) and the caller starts the sequence over; removing a
whole sequence, copying one to another, keeping one and shifting positions work. A new sequence's
rows start from zeros, which the context writes before its first tokens run.
"""

from __future__ import annotations

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError

EMPTY = -1


class RecurrentStates:
    """The last position each sequence's state has read (-1: no state yet), for ``n_seq_max``
    sequences; the states themselves live in the backends' caches, row s for sequence s."""

    BYTES_PER_CELL = 0  # no per-cell table: a state per sequence

    def __init__(self, n_ctx: int, n_seq_max: int) -> None:
        self.n_ctx = n_ctx
        self.n_seq_max = n_seq_max
        self.pos = np.full(n_seq_max, EMPTY, np.int32)
        self.range_size: int | None = None

    def partition(self, n_seq: int) -> int:
        """Serve ``n_seq`` sequences (a server's slots): each has its own state already; returns
        each one's share of the context, as a partitioned KV cache does."""
        if n_seq > self.n_seq_max:
            raise LLMCoreError(f"{n_seq} sequences need a context made for them: this recurrent model keeps "
                               f"states for n_seq_max={self.n_seq_max}")
        self.clear()
        self.range_size = self.n_ctx // n_seq
        return self.range_size

    @property
    def n_used(self) -> int:
        """Sequences holding a state (llama.cpp's used cells of recurrent memory)."""
        return int((self.pos != EMPTY).sum())

    n_kv = 0  # no attention reads cells

    def seq_pos_max(self, seq_id: int) -> int:
        return int(self.pos[seq_id]) if 0 <= seq_id < self.n_seq_max else -1

    def place(self, batch: Batch) -> tuple[np.ndarray, list[int]]:
        """The state row of every token of ``batch`` (its sequence id) and the sequences that start
        here without a state (their rows must be zeroed first). Each sequence's tokens must go on
        from the position its state has read, one position after another, as llama.cpp requires."""
        seq_ids = batch.seq_ids.astype(np.int64)
        starting = []
        for seq_id in np.unique(seq_ids):
            self._check_seq(int(seq_id))
            positions = batch.positions[seq_ids == seq_id]
            last = int(self.pos[seq_id])
            first = last + 1 if last != EMPTY else int(positions[0])
            if not np.array_equal(positions, np.arange(first, first + len(positions))):
                raise LLMCoreError(
                    f"sequence {seq_id}: a recurrent model's positions must go on one after another from "
                    f"{first} (its state has read up to {last}); the batch has {positions[:4].tolist()}...")
            if last == EMPTY:
                starting.append(int(seq_id))
            self.pos[seq_id] = positions[-1]
        return seq_ids.astype(np.int32), starting

    def remove(self, seq_id: int | None = None, p0: int = 0, p1: int | None = None) -> bool:
        """llama_memory_seq_rm: forget ``seq_id``'s state (every sequence's when None or < 0) if
        [p0, p1) covers its last position; False, changing nothing, when the range cuts into what
        the state has read (only the state after the last token exists)."""
        p0 = max(p0, 0)
        end = np.iinfo(np.int32).max if p1 is None or p1 < 0 else p1
        if seq_id is None or seq_id < 0:
            if p0 == end:
                return True
            if (p0, end) != (0, np.iinfo(np.int32).max):
                return False
            self.clear()
            return True
        self._check_seq(seq_id)
        last = int(self.pos[seq_id])
        if last == EMPTY:
            return True
        if 0 < p0 <= last < end:
            return False
        if p0 <= last < end:
            self.pos[seq_id] = EMPTY
        return True

    def copy(self, src: int, dst: int) -> bool:
        """llama_memory_seq_cp for a recurrent memory: ``dst`` takes ``src``'s state (whatever the
        positions asked for). Returns whether there was one, whose rows the caller copies."""
        self._check_seq(src)
        self._check_seq(dst)
        self.pos[dst] = self.pos[src]
        return src != dst and self.pos[src] != EMPTY

    def keep(self, seq_id: int) -> None:
        last = self.seq_pos_max(seq_id)
        self.pos[:] = EMPTY
        if 0 <= seq_id < self.n_seq_max:
            self.pos[seq_id] = last

    def shift(self, seq_id: int, p0: int, p1: int | None, delta: int) -> np.ndarray:
        """llama_memory_seq_add: move ``seq_id``'s last position by ``delta`` when it lies in
        [p0, p1); a state has no keys to rotate, so no cells are returned."""
        last = self.seq_pos_max(seq_id)
        if last != EMPTY and p0 <= last and (p1 is None or p1 < 0 or last < p1):
            self.pos[seq_id] = last + delta
        return np.zeros(0, np.int32)

    def clear(self) -> None:
        self.pos[:] = EMPTY

    def _check_seq(self, seq_id: int) -> None:
        if not 0 <= seq_id < self.n_seq_max:
            raise LLMCoreError(f"sequence id {seq_id} is outside 0..{self.n_seq_max - 1}: this recurrent model "
                               f"keeps states for n_seq_max={self.n_seq_max} sequences")
