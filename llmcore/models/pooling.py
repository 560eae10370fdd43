"""How an embedding model's hidden states become one vector per sequence: llama.cpp's
``llama_pooling_type`` (read from ``{arch}.pooling_type``, overridden by ``--pooling``) and the
part of its ``build_pooling`` that runs in the graph; the mean is taken by the engine
(``engine.embeddings``)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from llmcore.errors import ModelError
from llmcore.graph.builder import GraphBuilder
from llmcore.graph.ir import Node

if TYPE_CHECKING:
    from llmcore.models.base import Architecture


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


def pooled_output(g: GraphBuilder, m: Architecture, hidden: Node, pool_rows: Node | None, pooling: Pooling) -> Node:
    """An embedding graph's output: ``hidden`` (every row) for ``none`` and ``mean`` (the engine
    averages on the host), the rows ``pool_rows`` names (one per sequence) for ``cls`` and
    ``last``, and for ``rank`` those rows through the reranker's classification head: ``cls``
    (dense, then tanh) and ``cls.output`` (dense), each where the model has it (jina-reranker-v1
    has only ``cls``, a one-projection head only ``cls.output``)."""
    if not pooling.picks_rows:
        return hidden
    g.layer = m.hp.n_layer
    rows = g.get_rows(hidden, pool_rows, name="pooled")
    if pooling is not Pooling.RANK:
        return rows
    if not (m.has("cls.weight") or m.has("cls.output.weight")):
        raise ModelError("rank pooling needs a classification head (tensor cls.weight or cls.output.weight), "
                         "which this model lacks")
    for head in ("cls", "cls.output"):
        if m.has(f"{head}.weight"):
            rows = g.mul_mat(m.w(g, f"{head}.weight"), rows, name=head)
            if m.has(f"{head}.bias"):
                rows = g.add(rows, m.w(g, f"{head}.bias"))
            if head == "cls":
                rows = g.tanh(rows)
    return rows
