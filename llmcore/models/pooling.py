"""How an embedding model's hidden states become one vector per sequence: llama.cpp's
``llama_pooling_type`` (read from ``{arch}.pooling_type``, overridden by ``--pooling``) and the
part of its ``build_pooling`` that runs in the graph; the mean of ``mean`` pooling is taken by the
engine (``engine.embeddings``), a reranker head's in the graph."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from llmcore.errors import ModelError
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node

if TYPE_CHECKING:
    from llmcore.models.base import Architecture, BatchInputs


class Pooling(enum.IntEnum):
    """llama.cpp's ``llama_pooling_type`` values (the GGUF key and ``--pooling`` use them)."""

    NONE = 0
    MEAN = 1
    CLS = 2
    LAST = 3
    RANK = 4

    @classmethod
    def parse(cls, value: str | int | Pooling) -> Pooling:
        """A pooling type from its name (``--pooling mean``) or llama.cpp's number."""
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            try:
                return cls[value.upper()]
            except KeyError:
                names = ", ".join(p.name.lower() for p in cls)
                raise ModelError(f"unknown pooling type {value!r} (choose from {names})") from None
        try:
            return cls(int(value))
        except ValueError:
            raise ModelError(f"unknown pooling type {value!r} (llama.cpp's are 0-4)") from None

    @property
    def picks_rows(self) -> bool:
        """Whether the graph takes one row per sequence (``pool_rows``) of the hidden states."""
        return self in (Pooling.CLS, Pooling.LAST, Pooling.RANK)


def pooled_output(g: GraphBuilder, m: Architecture, hidden: Node, inp: BatchInputs, pooling: Pooling) -> Node:
    """An embedding graph's output, as llama.cpp's ``build_pooling``: ``hidden`` (every row) for
    ``none`` and ``mean`` (the engine averages on the host), the rows ``pool_rows`` names (one per
    sequence) for ``cls`` and ``last``, and for ``rank`` a reranker's scores: those rows, or each
    sequence's mean where the head reads means (``head_reads_mean``), through its classification
    head: ``cls`` (dense, then tanh, or GELU and the LayerNorm ``cls.norm`` in ModernBERT) and
    ``cls.output`` (dense), each where the model has it (jina-reranker-v1 has only ``cls``, a
    one-projection head only ``cls.output``)."""
    if not pooling.picks_rows:
        return hidden
    g.layer = m.hp.n_layer
    if m.head_reads_mean:
        return _classification_head(g, m, _mean_rows(g, hidden, inp))
    rows = g.get_rows(hidden, inp.pool_rows, name="pooled")
    return _classification_head(g, m, rows) if pooling is Pooling.RANK else rows


def _mean_rows(g: GraphBuilder, hidden: Node, inp: BatchInputs) -> Node:
    """[n_seqs, width]: each sequence's mean row, the sum over every row weighted by ``pool_mean``
    (llama.cpp's product of the hidden states with inp_mean; these products are added in row order)."""
    n_seqs, n_rows = inp.pool_mean.shape
    every = g.reshape(g.get_rows(hidden, inp.pool_mean_rows), (n_seqs, n_rows, hidden.shape[-1]))
    return g.weighted_sum(every, inp.pool_mean, name="pooled")


def _classification_head(g: GraphBuilder, m: Architecture, rows: Node) -> Node:
    from llmcore.models.layers import layer_norm

    if not (m.has("cls.weight") or m.has("cls.output.weight")):
        raise ModelError("rank pooling needs a classification head (tensor cls.weight or cls.output.weight), "
                         "which this model lacks")
    for head in ("cls", "cls.output"):
        if m.has(f"{head}.weight"):
            rows = g.mul_mat(m.w(g, f"{head}.weight"), rows, name=head)
            if m.has(f"{head}.bias"):
                rows = g.add(rows, m.w(g, f"{head}.bias"))
            if head == "cls":
                rows = g.gelu(rows) if m.classifier_gelu else g.tanh(rows)
                if m.has("cls.norm.weight"):
                    rows = layer_norm(g, m, rows, "cls.norm")
    return rows
