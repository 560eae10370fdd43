"""A context: a model placed on backends with a KV cache of ``n_ctx`` cells, decoding batches.

It plans one execution graph per batch shape (tokens, outputs) and reuses it for every step of
that shape; per step it only claims cache cells, builds the attention mask and runs the plan.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from llmcore.graph.backend import Backend, WeightData
from llmcore.engine.batch import Batch
from llmcore.graph.ir import F16, DType, Op
from llmcore.graph.placement import LayerPlacement
from llmcore.graph.scheduler import CompiledGraph, assign
from llmcore.engine.kv_cache import KVCells
from llmcore.engine.model import Model


#: compiled plans kept per context: decode shapes are few and small; prompt shapes are many (one per
#: prompt length) and each holds buffers for all its tokens, so only the latest few of them stay
MAX_PLANS = 16
MAX_PROMPT_PLANS = 2
PROMPT_PLAN_TOKENS = 32


class Context:
    def __init__(self, model: Model, placement: LayerPlacement, n_ctx: int, n_batch: int = 512,
                 cache_type: DType = F16) -> None:
        self.model = model
        self.placement = placement
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.arch = model.architecture(model.hparams, model.weight_specs, n_ctx, cache_type)
        self.cells = KVCells(n_ctx)
        self._plans: OrderedDict[tuple[int, int], CompiledGraph] = OrderedDict()
        self._load_weights()

    def _load_weights(self) -> None:
        """Hand each weight to every backend that runs an op reading it (learned from a 1-token
        graph): a tied embedding used by the input on the CPU and by an offloaded output head goes
        to both, as llama.cpp duplicates it."""
        graph = self.arch.build_graph(1, 1)
        by_backend: dict[int, tuple[Backend, dict[str, WeightData]]] = {}
        for node in graph.nodes:
            for src in node.srcs:
                if src.op is Op.WEIGHT:
                    backend = assign(node, self.placement, self.placement.cpu)
                    weights = by_backend.setdefault(id(backend), (backend, {}))[1]
                    if src.name not in weights:
                        info = self.model.reader.tensors[src.name]
                        weights[src.name] = WeightData(src.name, info.type, info.shape, self.model.reader.raw(src.name))
        for backend, weights in by_backend.values():
            backend.load_weights(list(weights.values()))

    @property
    def backends(self) -> list[Backend]:
        placed = [*self.placement.backends.values(), self.placement.cpu, *(o.backend for o in self.placement.overrides)]
        return list({id(b): b for b in placed}.values())

    def compiled(self, n_tokens: int, n_outputs: int) -> CompiledGraph:
        """The compiled plan for a batch shape; the most recently used shapes stay compiled (a
        server sees many shapes, and each plan holds backend buffers)."""
        key = (n_tokens, n_outputs)
        if key in self._plans:
            self._plans.move_to_end(key)
        else:
            graph = self.arch.build_graph(n_tokens, n_outputs)
            self._plans[key] = CompiledGraph(graph, self.placement, self.placement.cpu)
            prompt_plans = [k for k in self._plans if k[0] > PROMPT_PLAN_TOKENS]
            for old in prompt_plans[:-MAX_PROMPT_PLANS]:
                del self._plans[old]
            while len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        return self._plans[key]

    def decode(self, batch: Batch, n_batch: int | None = None) -> np.ndarray:
        """Run ``batch`` in micro-batches of at most ``n_batch`` tokens (default: the context's);
        return float32 logits [rows with batch.logits set, n_vocab] in batch order."""
        step = n_batch or self.n_batch
        outputs = []
        for start in range(0, len(batch), step):
            outputs.append(self._decode_ubatch(batch.slice(start, start + step)))
        if not outputs:
            return np.zeros((0, self.model.hparams.n_vocab), np.float32)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _decode_ubatch(self, ubatch: Batch) -> np.ndarray:
        cells = self.cells.place(ubatch)
        n_kv = self.cells.n_kv
        out_ids = np.flatnonzero(ubatch.logits).astype(np.int32)
        feeds = {
            "tokens": ubatch.tokens,
            "positions": ubatch.positions,
            "kv_cells": cells,
            "kq_mask": self.cells.mask(ubatch, n_kv),
            "out_ids": out_ids,
        }
        return self.compiled(len(ubatch), len(out_ids)).run(feeds, n_kv)["logits"]

    def memory_used(self) -> dict[str, dict[str, int]]:
        return {b.name: b.memory_used() for b in self.backends}
