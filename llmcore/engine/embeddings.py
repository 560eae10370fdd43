"""What an embedding context does around its graph, as llama.cpp's: micro-batches of whole
sequences, the row each sequence is pooled from (``llm_graph_input_cls``), the mean over each
sequence (``llm_graph_input_mean`` and its product), and the normalizations of
``common_embd_normalize`` (``--embd-normalize``)."""

from __future__ import annotations

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError
from llmcore.models.pooling import Pooling


def micro_batches(batch: Batch, n_batch: int) -> list[Batch]:
    """``batch`` cut into micro-batches of at most ``n_batch`` tokens, each holding whole
    sequences: a sequence is pooled (and, in an encoder, attends) within one micro-batch. A
    sequence's tokens must be consecutive in ``batch``."""
    starts = [0, *np.flatnonzero(np.diff(batch.seq_ids)) + 1]
    runs = list(zip(starts, [*starts[1:], len(batch)]))
    seen: set[int] = set()
    out: list[Batch] = []
    begin = 0
    for start, stop in runs:
        seq_id = int(batch.seq_ids[start])
        if seq_id in seen:
            raise LLMCoreError(f"sequence {seq_id}'s tokens are not consecutive in the batch")
        seen.add(seq_id)
        if stop - start > n_batch:
            raise LLMCoreError(f"an input of {stop - start} tokens exceeds the batch size {n_batch}; "
                               f"raise the batch size (-b) and the context (-c)")
        if stop - begin > n_batch:
            out.append(batch.slice(begin, start))
            begin = start
    if len(batch):
        out.append(batch.slice(begin, len(batch)))
    return out


def sequences(ubatch: Batch) -> np.ndarray:
    """The sequence ids of ``ubatch`` in order of first appearance: the order of pooled rows."""
    ids, first = np.unique(ubatch.seq_ids, return_index=True)
    return ids[np.argsort(first)]


def pool_rows(ubatch: Batch, pooling: Pooling, causal: bool) -> np.ndarray:
    """i32[n_seqs]: the row of each sequence that cls, last or rank pooling takes: its lowest
    position (cls; the first such row), or its highest (last, and rank in a causal model; the last
    such row), as llama.cpp's ``llm_graph_input_cls``."""
    last = pooling is Pooling.LAST or (pooling is Pooling.RANK and causal)
    rows = []
    for seq_id in sequences(ubatch):
        members = np.flatnonzero(ubatch.seq_ids == seq_id)
        positions = ubatch.positions[members]
        if last:
            rows.append(members[len(members) - 1 - np.argmax(positions[::-1])])
        else:
            rows.append(members[np.argmin(positions)])
    return np.array(rows, np.int32)


def mean_weights(ubatch: Batch) -> np.ndarray:
    """float32 [n_seqs, tokens]: 1/n (in float) at each of a sequence's n rows, 0 elsewhere, one row
    per sequence in the order of :func:`sequences` (llama.cpp's ``llm_graph_input_mean``)."""
    order = sequences(ubatch)
    weights = np.zeros((len(order), len(ubatch)), np.float32)
    for i, seq_id in enumerate(order):
        members = ubatch.seq_ids == seq_id
        weights[i, members] = np.float32(1.0) / np.float32(members.sum())
    return weights


def mean(hidden: np.ndarray, ubatch: Batch) -> np.ndarray:
    """float32 [n_seqs, width]: each sequence's mean row, as llama.cpp's product of the hidden
    states with :func:`mean_weights`."""
    # einsum's own loops, not BLAS: OpenBLAS's threads spin after a call and take the cores from the
    # backend's pool for the next batch
    return np.einsum("st,td->sd", mean_weights(ubatch), hidden)


def mean_feeds(ubatch: Batch) -> dict[str, np.ndarray]:
    """The inputs of a graph whose classification head reads each sequence's mean row
    (``pool_mean``, ``pool_mean_rows``: see ``BatchInputs``)."""
    weights = mean_weights(ubatch)
    return {"pool_mean": weights, "pool_mean_rows": np.tile(np.arange(len(ubatch), dtype=np.int32), len(weights))}


def normalize(x: np.ndarray, norm: int) -> np.ndarray:
    """Each row of ``x`` scaled as llama.cpp's ``common_embd_normalize``: -1 not at all, 0 to the
    int16 range by its largest magnitude (max |x| becomes 32760), 1 taxicab, 2 euclidean (the
    default), p > 2 the p-norm; sums in double, the factor rounded to float. A zero row stays zero."""
    rows = np.asarray(x, np.float32)
    values = rows.astype(np.float64)
    if norm == -1:
        total = np.ones(len(rows))
    elif norm == 0:
        total = np.abs(values).max(axis=-1, initial=0.0) / 32760.0
    elif norm == 2:
        total = np.sqrt((rows * rows).astype(np.float64).sum(axis=-1))
    elif norm > 0:
        total = (np.abs(values) ** norm).sum(axis=-1) ** (1.0 / norm)
    else:
        raise LLMCoreError(f"--embd-normalize {norm}: use -1 (none), 0 (max absolute, int16), 1 (taxicab), "
                           f"2 (euclidean) or a p-norm above 2")
    factor = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
    return rows * factor[:, None]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """llama.cpp's ``common_embd_similarity_cos``: products in float, sums in double; two zero
    vectors are similar (1), one zero vector is not (0)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    dot, na, nb = (float((x * y).astype(np.float64).sum()) for x, y in ((a, b), (a, a), (b, b)))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.float32(dot / (np.sqrt(na) * np.sqrt(nb))))
