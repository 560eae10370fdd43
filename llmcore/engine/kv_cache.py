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


#: sequence ids are bits of a cell's 64-bit mask (llama.cpp allows 256; its server rarely uses more than a few)
MAX_SEQUENCES = 64


class KVCells:
    """Which position each cache cell holds, and for which sequences (a bit each: after
    :meth:`copy` one cell serves several sequences, as in llama.cpp's unified cache)."""

    BYTES_PER_CELL = 4 + 8  # pos (int32) and seqs (uint64)

    def __init__(self, n_ctx: int, mrope: bool = False) -> None:
        self.n_ctx = n_ctx
        self.pos = np.full(n_ctx, EMPTY, np.int32)
        self.seqs = np.zeros(n_ctx, np.uint64)  # bit s: the cell belongs to sequence s
        self.range_size: int | None = None  # cells per sequence once partitioned
        # M-RoPE (``mrope``): the rotary time position that follows each cell's. A cell's position
        # (its index in the sequence, which the mask and the cache's bookkeeping use) and its
        # rotary time differ after an image, whose tokens share one time and whose positions
        # take max(rows, columns) times (mtmd_image_tokens_get_n_pos): ordering cells by index is
        # the order llama.cpp's M-RoPE mask gives them (by time, then row and column).
        self.rope_next = np.zeros(n_ctx, np.int32) if mrope else None

    def partition(self, n_seq: int) -> int:
        """Give sequence s its own cells [s * size, (s + 1) * size), as llama.cpp's per-sequence
        (non-unified) KV cache does for server slots: a sequence then computes exactly the same
        numbers whichever other sequences share its batches. Returns the cells per sequence."""
        _check_seq(n_seq - 1)
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
        occupied = self.pos != EMPTY
        last_from_end = int(occupied[::-1].argmax())
        return self.n_ctx - last_from_end if occupied[-1 - last_from_end] else 0

    def holds(self, seq_id: int) -> np.ndarray:
        """bool[n_ctx]: the cells of sequence ``seq_id``."""
        return (self.seqs & _bit(seq_id)) != 0

    def seq_pos_max(self, seq_id: int) -> int:
        mask = self.holds(seq_id)
        return int(self.pos[mask].max()) if mask.any() else -1

    def place(self, batch: Batch) -> np.ndarray:
        """Claim a cell for every token of ``batch``: the lowest free cells (of its sequence's
        range, once partitioned), as llama.cpp does."""
        one_seq = _one_sequence(batch)
        seq_ids = [one_seq] if one_seq is not None else [int(s) for s in np.unique(batch.seq_ids)]
        for seq_id in seq_ids:
            _check_seq(seq_id)
        if self.range_size is None:
            cells = self._claim(0, self.n_ctx, len(batch), "the context")
        else:
            cells = np.empty(len(batch), np.int32)
            for seq_id in seq_ids:
                rows = np.arange(len(batch)) if one_seq is not None else np.flatnonzero(batch.seq_ids == seq_id)
                start = seq_id * self.range_size
                if not 0 <= start < self.n_ctx:
                    raise LLMCoreError(f"sequence {seq_id} is outside the {self.n_ctx // self.range_size} partitions")
                cells[rows] = self._claim(start, start + self.range_size, len(rows),
                                          f"sequence {seq_id}'s {self.range_size} cells")
        self.pos[cells] = batch.positions
        self.seqs[cells] = np.left_shift(np.uint64(1), batch.seq_ids.astype(np.uint64))
        if self.rope_next is not None:  # text's times until rope_positions says otherwise (a restored state)
            self.rope_next[cells] = batch.positions + 1
        return cells

    def rope_start(self, seq_id: int, position: int) -> int:
        """The rotary time of ``seq_id``'s ``position`` in an M-RoPE cache: what follows the cell at
        the position before it, or the position itself where there is none."""
        before = np.flatnonzero(self.holds(seq_id) & (self.pos == position - 1))
        return int(self.rope_next[before[0]]) if len(before) else position

    def rope_positions(self, batch: Batch, cells: np.ndarray) -> np.ndarray:
        """int32 [4, n]: the M-RoPE positions of ``batch``, placed in ``cells``: an image's as the
        batch gives them, a text token's rotary time three times and 0 (llama.cpp's
        llm_graph_input_pos); each cell then records the time that follows it."""
        if batch.rope_positions is not None:
            out = batch.rope_positions
        else:
            times = batch.positions.copy()
            for seq_id in np.unique(batch.seq_ids):
                rows = batch.seq_ids == seq_id
                first = int(batch.positions[rows].min())
                times[rows] += self.rope_start(int(seq_id), first) - first
            out = np.stack([times, times, times, np.zeros_like(times)])
        self.rope_next[cells] = out[:3].max(axis=0) + 1
        return out

    def _claim(self, start: int, stop: int, n: int, where: str) -> np.ndarray:
        """The lowest ``n`` free cells of [start, stop)."""
        free = self.pos[start:stop] == EMPTY
        if n == 1:  # a decode step: the first free cell, without listing every free one
            first = int(free.argmax())
            if free[first]:
                return np.array([start + first], np.int32)
        else:
            found = np.flatnonzero(free)[:n]
            if len(found) == n:
                return (start + found).astype(np.int32)
        raise ContextFullError(f"context is full: {n} more tokens do not fit in {where} "
                               f"(n_ctx={self.n_ctx}, {self.n_used} cells in use); raise -c/--ctx-size")

    def mask(self, batch: Batch, n_kv: int, window: int = 0, alibi: bool = False, causal: bool = True,
             symmetric: bool = False) -> np.ndarray:
        """f32[n, n_ctx]: 0 where token i may attend to cell j, -inf elsewhere (and past n_kv); with
        a ``window``, only cells of the last ``window`` positions (llama.cpp's standard SWA). For
        ALiBi models (``alibi``) a visible cell holds -|distance| instead of 0, which attention
        multiplies by each head's slope, as llama.cpp's mask does. Without ``causal`` (an encoder)
        a token also sees the later positions of its sequence; a ``symmetric`` window reaches
        window // 2 positions both ways (llama.cpp's LLAMA_SWA_TYPE_SYMMETRIC)."""
        out = np.full((len(batch), self.n_ctx), -np.inf, np.float32)
        pos, seqs = self.pos[:n_kv], self.seqs[:n_kv]
        one_seq = _one_sequence(batch)
        if one_seq is not None:  # one row of membership serves every token
            member = (seqs & _bit(one_seq)) != 0
        else:
            member = ((seqs[None, :] >> batch.seq_ids.astype(np.uint64)[:, None]) & np.uint64(1)) != 0
        allowed = member & (pos != EMPTY)  # [n, n_kv], or [n_kv] for every token of one sequence
        positions = batch.positions[:, None]
        if causal:
            allowed = allowed & (pos <= positions)
        if window:
            distance = positions.astype(np.int64) - pos
            allowed = allowed & (np.abs(distance) <= window // 2 if symmetric else distance < window)
        if alibi:
            distance = np.abs(positions.astype(np.float32) - pos.astype(np.float32))
            out[:, :n_kv] = np.where(allowed, -distance, out[:, :n_kv])
        else:
            np.copyto(out[:, :n_kv], np.float32(0.0), where=allowed)
        return out

    def _span(self, seq_id: int | None, p0: int, p1: int | None) -> np.ndarray:
        """bool[n_ctx]: occupied cells of ``seq_id`` (any sequence when None) at positions [p0, p1)."""
        hit = (self.pos != EMPTY) & (self.pos >= p0)
        if p1 is not None and p1 >= 0:
            hit &= self.pos < p1
        if seq_id is not None and seq_id >= 0:
            hit &= self.holds(seq_id)
        return hit

    def remove(self, seq_id: int | None = None, p0: int = 0, p1: int | None = None) -> bool:
        """Free the cells of ``seq_id`` (every sequence when None or < 0) with positions in
        [p0, p1) (p1 None or < 0: to the end); a cell other sequences share stays theirs."""
        hit = self._span(seq_id, p0, p1)
        if seq_id is None or seq_id < 0:
            self.seqs[hit] = 0
        else:
            self.seqs[hit] &= ~_bit(seq_id)
        self.pos[hit & (self.seqs == 0)] = EMPTY
        return True

    def copy(self, src: int, dst: int, p0: int = 0, p1: int | None = None) -> None:
        """Make ``dst`` share ``src``'s cells at positions [p0, p1) (llama_memory_seq_cp, unified
        cache; a partitioned one copies rows instead, see :meth:`copy_across`)."""
        _check_seq(dst)
        self.seqs[self._span(src, p0, p1)] |= _bit(dst)

    def copy_across(self, src: int, dst: int, p0: int = 0, p1: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """In a partitioned cache: claim cells in ``dst``'s range for ``src``'s positions [p0, p1)
        (after dropping what ``dst`` held there). Returns (source cells, destination cells), whose
        keys and values the caller copies."""
        _check_seq(dst)
        self.remove(dst, p0, p1)
        source = np.flatnonzero(self._span(src, p0, p1))
        start = dst * self.range_size
        target = self._claim(start, start + self.range_size, len(source), f"sequence {dst}'s {self.range_size} cells")
        self.pos[target] = self.pos[source]
        self.seqs[target] = _bit(dst)
        if self.rope_next is not None:
            self.rope_next[target] = self.rope_next[source]
        return source, target

    def keep(self, seq_id: int) -> None:
        """Drop every sequence but ``seq_id`` (llama_memory_seq_keep)."""
        self.seqs &= _bit(seq_id)
        self.pos[self.seqs == 0] = EMPTY

    def shift(self, seq_id: int, p0: int, p1: int | None, delta: int) -> np.ndarray:
        """Add ``delta`` to the positions [p0, p1) of ``seq_id`` (llama_memory_seq_add); cells whose
        position would fall below 0 are freed. Returns the shifted cells, whose keys the caller
        rotates by ``delta``. Cells shared with other sequences cannot move for one of them."""
        hit = self._span(seq_id, p0, p1)
        if (self.seqs[hit] != _bit(seq_id)).any():
            raise LLMCoreError(f"cannot shift sequence {seq_id}: some of its cells are shared with other sequences")
        self.pos[hit] += delta
        gone = hit & (self.pos < 0)
        self.pos[gone] = EMPTY
        self.seqs[gone] = 0
        return np.flatnonzero(hit & ~gone)

    def clear(self) -> None:
        self.pos[:] = EMPTY
        self.seqs[:] = 0


def _bit(seq_id: int) -> np.uint64:
    return np.uint64(1) << np.uint64(seq_id)


def _one_sequence(batch: Batch) -> int | None:
    """The sequence of every token of ``batch`` where they share one (a decode step, a prompt)."""
    seq_ids = batch.seq_ids
    if not len(seq_ids):
        return None
    first = int(seq_ids[0])
    return first if len(seq_ids) == 1 or (seq_ids == first).all() else None


def _check_seq(seq_id: int) -> None:
    if not 0 <= seq_id < MAX_SEQUENCES:
        raise LLMCoreError(f"sequence id {seq_id} is outside 0..{MAX_SEQUENCES - 1}")


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    """How many leading tokens ``a`` and ``b`` share (at most ``limit``): the cells a new prompt can reuse."""
    n = 0
    for x, y in zip(a, b):
        if x != y or n >= limit:
            break
        n += 1
    return n
