"""A context: a model placed on backends with a KV cache of ``n_ctx`` cells, decoding batches.
The counterpart of llama.h's ``llama_context``: :meth:`Context.decode` and the KV cache's sequence
operations (``seq_remove``, ``seq_copy``, ``seq_keep``, ``seq_shift``, ``seq_pos_max``).

It compiles one graph per batch shape (tokens, outputs) and reuses it for every step of that
shape; per step it only claims cache cells, builds the attention mask and runs the graph. Where
layers run on other machines (a backend that ``pipelines``), steps are queued on a
:class:`~llmcore.graph.scheduler.Pipeline` and several are in flight at once
(:meth:`Context.decode_async`).
"""

from __future__ import annotations

import math
import resource
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from llmcore.graph.backend import Backend, WeightData
from llmcore.engine.batch import Batch
from llmcore.gguf import GGMLType, dequantize
from llmcore.errors import BackendError, LLMCoreError
from llmcore.graph import kv_types
from llmcore.graph.ir import F16, DType, Graph, Node, Op
from llmcore.graph.kv_types import CacheConfig
from llmcore.graph.placement import INPUT_LAYER, LayerPlacement
from llmcore.graph.rope import RopeParams, rope
from llmcore.graph.scheduler import CompiledGraph, Pipeline, assign
from llmcore.graph.taps import mul_mat_inputs, tap_mul_mat_inputs
from llmcore.engine import embeddings
from llmcore.engine.kv_cache import KVCells
from llmcore.engine.recurrent import RecurrentStates
from llmcore.engine.model import Model
from llmcore.models.adapters import ActiveLora, ControlVector, LoraAdapter
from llmcore.models.pooling import Pooling


#: what ``Context.observe_mul_mat_inputs`` calls: (GGUF tensor name, float32 activations [rows, columns])
MulMatObserver = Callable[[str, np.ndarray], None]

#: compiled plans kept per context: decode shapes are few and small; prompt shapes are many (one per
#: prompt length) and each holds buffers for all its tokens, so only the latest few of them stay
MAX_PLANS = 16
MAX_PROMPT_PLANS = 2
PROMPT_PLAN_TOKENS = 32
#: a recurrent model's scan states are the caches named so (the rest are its conv states)
SCAN_STATE_SUFFIX = "ssm_state"
#: cells a context may hold: positions and cell indices are int32, as in llama.cpp
MAX_CONTEXT = 2**31 - 1


class Context:
    def __init__(self, model: Model, placement: LayerPlacement, n_ctx: int, n_batch: int = 512,
                 cache: CacheConfig | DType = F16, pooling: Pooling | None = None,
                 lora_adapters: Sequence[LoraAdapter] = (), control_vector: ControlVector | None = None,
                 n_seq_max: int = 1) -> None:
        """``pooling`` set makes an embedding context (llama.cpp's ``embeddings = true``): its
        steps give :meth:`embeddings` pooled so, not logits. An encoder's context always is one.
        ``lora_adapters`` are loaded with the weights and applied at scale 1 until
        :meth:`set_lora_scales` says otherwise; ``control_vector`` is added to the layers' outputs."""
        self.model = model
        self.placement = placement
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.arch = model.architecture(model.hparams, model.weight_specs, n_ctx, cache, pooling)
        self.arch.n_seq_max = n_seq_max  # the states a recurrent model keeps (llama.cpp's n_seq_max)
        self.pooling = self.arch.pooling
        self.cache = self.arch.cache
        self.lora_adapters = list(lora_adapters)
        self.arch.control_vector = control_vector
        # every adapter in the graph that places the weights, so that any scale may be set later
        self.arch.loras = [ActiveLora(adapter, 1.0) for adapter in self.lora_adapters]
        one_token = self.arch.build_graph(1, 1)
        _check_adapters_used(one_token, self.lora_adapters)
        _check_memory(one_token, n_ctx, min(n_batch, n_ctx))
        self.cells = (RecurrentStates(n_ctx, n_seq_max) if self.arch.recurrent
                      else KVCells(n_ctx, mrope=self.arch.n_pos_per_embd > 1))
        self._plans: OrderedDict[tuple[int, int, bool], CompiledGraph] = OrderedDict()
        self._mul_mat_observer: MulMatObserver | None = None
        placed = [*placement.backends.values(), *(o.backend for o in placement.overrides)]
        self._pipeline = Pipeline() if Pipeline.wanted(placed) else None
        if self._pipeline is not None:
            weakref.finalize(self, self._pipeline.close)
        self._load_weights(one_token)

    @property
    def lora_scales(self) -> list[float]:
        """Each adapter's scale, in the order they were given (0: not applied)."""
        active = {id(lora.adapter): lora.scale for lora in self.arch.loras}
        return [active.get(id(adapter), 0.0) for adapter in self.lora_adapters]

    def set_lora_scales(self, scales: Sequence[float]) -> None:
        """Apply adapter i at ``scales[i]`` from the next step on (llama_set_adapters_lora: an
        adapter at scale 0 is left out of the graph). Changing them recompiles the plans."""
        if len(scales) != len(self.lora_adapters):
            raise LLMCoreError(f"{len(scales)} LoRA scales for {len(self.lora_adapters)} adapters")
        if [float(s) for s in scales] == self.lora_scales:
            return
        self.arch.loras = [ActiveLora(a, float(s)) for a, s in zip(self.lora_adapters, scales) if s != 0]
        self._plans.clear()

    def _weight_data(self, node: Node) -> WeightData:
        """Weight ``node``'s bytes: the model's, a LoRA adapter's (``lora<i>:...``) or the control
        vector's direction of a layer."""
        for adapter in self.lora_adapters:
            if node.name.startswith(adapter.prefix):
                return adapter.weight_data(node)
        if node.name.startswith("control_vector.") and self.arch.control_vector is not None:
            direction = self.arch.control_vector.for_layer(int(node.name.rpartition(".")[2]))
            return WeightData(node.name, GGMLType.F32, node.shape, direction)
        return self.model.weight_data(node)

    def _load_weights(self, graph: Graph) -> None:
        """Hand each weight to every backend that runs an op reading it (learned from the 1-token
        ``graph``): a tied embedding used by the input on the CPU and by an offloaded output head
        goes to both, as llama.cpp duplicates it."""
        by_backend: dict[int, tuple[Backend, dict[str, WeightData]]] = {}
        for node in graph.nodes:
            for src in node.srcs:
                if src.op is Op.WEIGHT:
                    backend = assign(node, self.placement, self.placement.fallbacks)
                    weights = by_backend.setdefault(id(backend), (backend, {}))[1]
                    if src.name not in weights:
                        weights[src.name] = self._weight_data(src)
        for backend, weights in by_backend.values():
            backend.load_weights(list(weights.values()))
        self._weight_holders = [backend for backend, _ in by_backend.values()]

    @property
    def backends(self) -> list[Backend]:
        placed = [*self.placement.backends.values(), self.placement.cpu, *(o.backend for o in self.placement.overrides)]
        # the last-resort backend counts once it holds weights or runs a split
        placed += [*self._weight_holders, *(s.backend for plan in self._plans.values() for s in plan.splits)]
        return list({id(b): b for b in placed}.values())

    def observe_mul_mat_inputs(self, observer: MulMatObserver | None) -> None:
        """Call ``observer(tensor name, activations)`` for every weight matrix multiplication of
        every step from now on (None: stop), with the float32 [rows, columns] that multiply the
        weight: what llama-imatrix collects through ggml's ``cb_eval``. Plans compiled while
        observing return those values besides the logits; a context never observed compiles and
        runs its plans as before."""
        if (observer is None) != (self._mul_mat_observer is None):
            self._plans.clear()
        self._mul_mat_observer = observer

    def compiled(self, n_tokens: int, n_outputs: int, embd_input: bool = False) -> CompiledGraph:
        """The compiled plan for a batch shape; the most recently used shapes stay compiled (a
        server sees many shapes, and each plan holds backend buffers)."""
        key = (n_tokens, n_outputs, embd_input)
        if key in self._plans:
            self._plans.move_to_end(key)
        else:
            self.synchronize()  # a backend compiles while none of its steps runs
            graph = self.arch.build_graph(n_tokens, n_outputs, embd_input)
            if self._mul_mat_observer is not None:
                graph = tap_mul_mat_inputs(graph)
            self._plans[key] = CompiledGraph(graph, self.placement, self.placement.fallbacks)
            prompt_plans = [k for k in self._plans if k[0] > PROMPT_PLAN_TOKENS]
            for old in prompt_plans[:-MAX_PROMPT_PLANS]:
                del self._plans[old]
            while len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        return self._plans[key]

    def decode(self, batch: Batch, n_batch: int | None = None, causal_attn: bool = True) -> np.ndarray:
        """Run ``batch`` in micro-batches of at most ``n_batch`` tokens (default: the context's);
        return float32 logits [rows with batch.logits set, n_vocab] in batch order. Without
        ``causal_attn`` (llama_set_causal_attn off: Gemma 3's images) a token also sees the later
        positions of its sequence in the micro-batch."""
        return self.decode_async(batch, n_batch, causal_attn).result()

    def decode_async(self, batch: Batch, n_batch: int | None = None, causal_attn: bool = True) -> PendingLogits:
        """:meth:`decode` without waiting for the logits, as llama_decode's work goes on until its
        logits are read. Where layers run on other machines (a backend that ``pipelines``), the
        micro-batches of this call and of the calls made before their logits are read are in flight
        together: stage k computes one while stage k+1 computes the one before (llama.cpp's pipeline
        parallelism), with the results of decoding them one by one. Elsewhere it computes the logits
        before it returns."""
        if self.pooling is not None:
            encoder = f" ({self.model.hparams.arch} is an encoder)" if self.arch.encoder_only else ""
            raise LLMCoreError(f"this context computes embeddings, not logits{encoder}")
        step = n_batch or self.n_batch
        ubatches = [batch] if 0 < len(batch) <= step else [batch.slice(start, start + step)
                                                            for start in range(0, len(batch), step)]
        return PendingLogits(self, [self._submit_ubatch(ubatch, causal_attn) for ubatch in ubatches])

    @property
    def pipeline_depth(self) -> int:
        """How many steps are worth having in flight: one per backend holding layers where steps
        pipeline (a stage each), else 1."""
        if self._pipeline is None:
            return 1
        return len({id(backend) for layer, backend in self.placement.backends.items() if layer != INPUT_LAYER})

    def synchronize(self) -> None:
        """Wait for the steps in flight (llama_synchronize): the caches hold their writes after it."""
        if self._pipeline is not None:
            self._pipeline.wait()

    def embeddings(self, batch: Batch) -> np.ndarray:
        """Run ``batch`` in an embedding context and return its embeddings (llama.cpp's
        ``llama_get_embeddings`` / ``_seq``): with pooling ``none`` float32 [tokens, n_embd], one
        row per token (every token is output); otherwise one row per sequence, in the order the
        sequences first appear, [n_seqs, n_embd] (``rank``: [n_seqs, n_cls_out] scores). The
        micro-batches hold whole sequences (:func:`embeddings.micro_batches`)."""
        pooling = self.pooling
        if pooling is None:
            raise LLMCoreError("this context computes logits: create it with a pooling type for embeddings")
        self.synchronize()
        outputs = []
        for ubatch in embeddings.micro_batches(batch, self.n_batch):
            every_row = np.arange(len(ubatch), dtype=np.int32)
            rows = embeddings.pool_rows(ubatch, pooling, self.arch.hp.causal) if pooling.picks_rows else None
            mean_rows = self.arch.head_reads_mean
            n_kv, feeds = self._feeds(ubatch, every_row, None if mean_rows else rows)
            if mean_rows:
                feeds.update(embeddings.mean_feeds(ubatch))
            out = self.compiled(len(ubatch), len(every_row if rows is None else rows)).run(feeds, n_kv)["embd"]
            outputs.append(embeddings.mean(out, ubatch) if pooling is Pooling.MEAN else out)
        return np.concatenate(outputs) if outputs else np.zeros((0, self.model.hparams.n_embd), np.float32)

    def _feeds(self, ubatch: Batch, out_ids: np.ndarray, pool_rows: np.ndarray | None = None,
               causal_attn: bool = True) -> tuple[int, dict[str, np.ndarray]]:
        """Claim cells for ``ubatch`` and make its graph inputs: rows ``out_ids`` leave the last
        layer, and an embedding graph pooling by rows returns rows ``pool_rows`` of them. Returns
        the cells attention reads and the inputs."""
        if self.arch.recurrent:
            return 0, self._recurrent_feeds(ubatch, out_ids, pool_rows)
        if self.arch.encoder_only:  # keys and values serve this micro-batch alone
            self.cells.clear()
        cells = self.cells.place(ubatch)
        n_kv = self.cells.n_kv
        causal = self.arch.hp.causal and causal_attn
        feeds = {
            "tokens": ubatch.tokens,
            "positions": self.cells.rope_positions(ubatch, cells) if self.arch.n_pos_per_embd > 1 else ubatch.positions,
            "kv_cells": cells,
            "kq_mask": self.cells.mask(ubatch, n_kv, alibi=self.arch.max_alibi_bias > 0, causal=causal),
            "out_ids": out_ids,
        }
        if self.arch.sliding_window:
            feeds["kq_mask_swa"] = self.cells.mask(ubatch, n_kv, window=self.arch.sliding_window, causal=causal,
                                                   symmetric=self.arch.symmetric_window)
        if pool_rows is not None:
            feeds["pool_rows"] = pool_rows
        if self.arch.encoder_only and self.arch.has("token_types.weight"):
            feeds["token_types"] = np.zeros(len(ubatch), np.int32)  # all "sentence A", as llama.cpp
        return n_kv, feeds

    def _recurrent_feeds(self, ubatch: Batch, out_ids: np.ndarray, pool_rows: np.ndarray | None) -> dict[str, np.ndarray]:
        """A recurrent model's inputs: the state row of each token's sequence; a sequence without a
        state yet starts from zeros (llama.cpp clears a state's first use)."""
        slots, starting = self.cells.place(ubatch)
        if starting:
            for view in self.cache_views().values():
                view[starting] = 0
        feeds = {"tokens": ubatch.tokens, "state_slots": slots, "out_ids": out_ids}
        if pool_rows is not None:
            feeds["pool_rows"] = pool_rows
        return feeds

    def _submit_ubatch(self, ubatch: Batch, causal_attn: bool = True) -> StepResult:
        """Claim cells for ``ubatch`` and run its step, or queue it on the pipeline."""
        if self._pipeline is not None and self._pipeline.failure is not None:
            self.forget_failed_steps()
        out_ids = ubatch.logits.nonzero()[0].astype(np.int32)  # logits is one-dimensional
        n_kv, feeds = self._feeds(ubatch, out_ids, causal_attn=causal_attn)
        if ubatch.embd is not None:
            feeds["embd"] = ubatch.embd
        plan = self.compiled(len(ubatch), len(out_ids), ubatch.embd is not None)
        if self._pipeline is not None:
            return self._pipeline.submit(plan, feeds, n_kv)
        try:
            results = plan.run(feeds, n_kv)
        except BackendError:
            self.forget_failed_steps()
            raise
        return Finished(results)

    def forget_failed_steps(self) -> None:
        """After a step failed: the step may have written some layers' caches and not others (or a
        device holding a part of the cache died), and so may the steps in flight behind it: every
        sequence starts over."""
        if self._pipeline is None or self._pipeline.recover():
            self.cells.clear()

    def memory_used(self) -> dict[str, dict[str, int]]:
        self.synchronize()
        return {b.name: b.memory_used() for b in self.backends}

    def kv_bytes(self) -> tuple[int, int]:
        """Bytes of the K caches and of the V caches, all layers (what llama.cpp's
        ``llama_kv_cache: size = ...`` line reports)."""
        keys, values = {}, {}
        for node in self.arch.build_graph(1, 1).nodes:
            if node.op is Op.ATTENTION:
                for caches, stored in ((keys, node.srcs[1]), (values, node.srcs[2])):
                    cache = stored.srcs[0] if stored.op is Op.KV_STORE else stored
                    caches[cache.name] = kv_types.nbytes(cache.dtype, cache.shape)
        # multi-head latent attention reads its values from the key cache: no V cache, as in llama.cpp
        return sum(keys.values()), sum(size for name, size in values.items() if name not in keys)

    # -- the KV cache's sequences (llama.h's llama_memory_seq_*) ---------------------------------

    def seq_remove(self, seq_id: int | None = None, p0: int = 0, p1: int | None = None) -> bool:
        """Forget positions [p0, p1) of ``seq_id`` (p1 None: to the end; seq_id None: every sequence).
        Returns False, changing nothing, where the memory cannot (llama_memory_seq_rm): a recurrent
        model's state cannot forget its last tokens, only the whole sequence."""
        return self.cells.remove(seq_id, p0, p1)

    def seq_copy(self, src: int, dst: int, p0: int = 0, p1: int | None = None) -> None:
        """Give ``dst`` the keys and values of ``src``'s positions [p0, p1): shared cells in a
        unified cache, copied rows when each sequence has its own range (a server's slots). A
        recurrent model's ``dst`` takes ``src``'s whole state, whatever the range."""
        if self.arch.recurrent:
            if self.cells.copy(src, dst):
                for view in self.cache_views().values():
                    view[dst] = view[src]
            return
        if self.cells.range_size is None:
            self.cells.copy(src, dst, p0, p1)
            return
        source, target = self.cells.copy_across(src, dst, p0, p1)
        for view in self.cache_views().values():
            view[target] = view[source]

    def seq_keep(self, seq_id: int) -> None:
        """Forget every sequence but ``seq_id``."""
        self.cells.keep(seq_id)

    def seq_shift(self, seq_id: int, p0: int, p1: int | None, delta: int) -> None:
        """Move positions [p0, p1) of ``seq_id`` by ``delta`` (llama.cpp's context shift): their
        keys are rotated by ``delta`` as llama.cpp's K-shift does (read as float32, rotated, stored
        back in the cache type: a block type is quantized again); positions that would fall below 0
        are forgotten."""
        if self.arch.n_pos_per_embd > 1:  # llama.cpp's seq_add asserts n_pos_per_embd() == 1
            raise LLMCoreError(f"context shift is not supported by {self.model.hparams.arch}: its M-RoPE positions "
                               "cannot be moved")
        cells = self.cells.shift(seq_id, p0, p1, delta)
        if not len(cells) or not delta:
            return
        views = self.cache_views()
        shift = np.full(len(cells), delta, np.int32)
        type_k = self.cache.type_k
        for name, rotation in self._key_rotations().items():
            view = views[name]
            width = rotation.start + math.prod(rotation.head_shape)
            rows = kv_types.load_rows(type_k, view[cells], width)
            keys = rows[:, rotation.start:].reshape(len(cells), *rotation.head_shape)
            if rotation.hadamard:  # a quantized cache's keys: rotated back first, and forward after
                keys = kv_types.hadamard(keys, rotation.hadamard)
            rotated = rope(keys, shift, rotation.params, rotation.freq_factors)
            if rotation.hadamard:
                rotated = kv_types.hadamard(rotated, rotation.hadamard)
            rows[:, rotation.start:] = rotated.reshape(len(cells), -1)
            view[cells] = kv_types.store_rows(type_k, rows)

    def seq_shift_out(self, seq_id: int, keep: int, discard: int) -> None:
        """llama.cpp's context shift: forget positions [keep, keep + discard) of ``seq_id`` and move
        the later ones back by ``discard`` (their keys rotated), making room at the end."""
        if self.arch.recurrent:  # llama_memory_can_shift is false for recurrent memory
            raise LLMCoreError(f"context shift is not supported by {self.model.hparams.arch}: its state cannot "
                               "forget tokens in the middle of a sequence")
        self.seq_remove(seq_id, keep, keep + discard)
        self.seq_shift(seq_id, keep + discard, None, -discard)

    def seq_pos_max(self, seq_id: int) -> int:
        """The last position ``seq_id`` holds, -1 when it holds none."""
        return self.cells.seq_pos_max(seq_id)

    def cache_views(self) -> dict[str, np.ndarray]:
        """Every KV cache by name, as its backend's host-visible [n_ctx, width] array (writes reach
        the backend by the next step). Compiling the one-token graph allocates the caches of a
        context that has not decoded yet; every generation step runs it anyway. Waits for the steps
        in flight first."""
        self.synchronize()
        views = {}
        for split in self.compiled(1, 1).splits:
            for node in split.subgraph.caches:
                views[node.name] = split.backend.cache_view(node.name)
        return views

    def kv_cache_line(self) -> str:
        """What the KV cache costs, in llama.cpp's words (``llama_kv_cache: size = ...``)."""
        if self.arch.recurrent:
            return self._recurrent_memory_line()
        k, v = self.kv_bytes()
        n_layers = sum(1 for node in self.arch.build_graph(1, 1).nodes if node.op is Op.ATTENTION)
        n_seq = self.n_ctx // self.cells.range_size if self.cells.range_size else 1
        mib = np.float32(1024.0 * 1024.0)
        return (f"size = {np.float32(k + v) / mib:7.2f} MiB ({self.n_ctx:6d} cells, {n_layers:3d} layers, "
                f"{n_seq:2d}/{n_seq} seqs), K ({self.cache.type_k}): {np.float32(k) / mib:7.2f} MiB, "
                f"V ({self.cache.type_v}): {np.float32(v) / mib:7.2f} MiB")

    def _recurrent_memory_line(self) -> str:
        """llama.cpp's ``llama_memory_recurrent: size = ...``: R the conv states, S the scan states."""
        caches = [node for node in self.arch.build_graph(1, 1).nodes if node.op is Op.CACHE]
        s = sum(kv_types.nbytes(n.dtype, n.shape) for n in caches if n.name.endswith(SCAN_STATE_SUFFIX))
        r = sum(kv_types.nbytes(n.dtype, n.shape) for n in caches) - s
        mib = np.float32(1024.0 * 1024.0)
        n_seq = self.cells.n_seq_max
        return (f"size = {np.float32(r + s) / mib:7.2f} MiB ({n_seq:6d} cells, {self.arch.hp.n_layer:3d} layers, "
                f"{n_seq:2d} seqs), R (f32): {np.float32(r) / mib:7.2f} MiB, S (f32): {np.float32(s) / mib:7.2f} MiB")

    def cache_widths(self) -> dict[str, int]:
        """Every KV cache's width (values per cell) by name; its view may hold bytes instead."""
        return {node.name: node.shape[1] for node in self.arch.build_graph(1, 1).nodes if node.op is Op.CACHE}

    def _key_rotations(self) -> dict[str, _KeyRotation]:
        """For each cache that stores rotated keys, how they were rotated (from the rope node
        whose result the one-token graph stores there)."""
        rotations = {}
        for node in self.arch.build_graph(1, 1).nodes:
            if node.op is not Op.KV_STORE:
                continue
            stored, order, start = node.srcs[1], 0, 0
            if stored.op is Op.CONCAT:  # multi-head latent attention: the rotated keys follow the latent
                start, stored = stored.srcs[0].shape[-1], stored.srcs[1]
            while stored.op in (Op.RESHAPE, Op.HADAMARD):
                order = stored.params["n"] if stored.op is Op.HADAMARD else order
                stored = stored.srcs[0]
            if stored.op is Op.ROPE:
                factors = self._weight(stored.srcs[2]) if len(stored.srcs) > 2 else None
                rotations[node.srcs[0].name] = _KeyRotation(stored.params["rope"], factors, stored.shape[1:], order,
                                                            start)
        return rotations

    def _weight(self, node: Node) -> np.ndarray:
        data = self.model.weight_data(node)
        return dequantize(data.raw, data.type, data.shape)


class Finished:
    """A step computed before it was handed back: answers as a Future holding its outputs would,
    without the lock and condition each Future makes (a cost of every decode step)."""

    __slots__ = ("_outputs",)

    def __init__(self, outputs: dict[str, np.ndarray]) -> None:
        self._outputs = outputs

    def done(self) -> bool:
        return True

    def result(self) -> dict[str, np.ndarray]:
        return self._outputs


#: a step's outputs by name: queued on the pipeline, or computed already
StepResult = Future[dict[str, np.ndarray]] | Finished


class PendingLogits:
    """The logits of a :meth:`Context.decode_async` call, maybe still being computed."""

    def __init__(self, context: Context, parts: Sequence[StepResult]) -> None:
        self._context = context
        self._parts = parts

    def done(self) -> bool:
        return all(part.done() for part in self._parts)

    def result(self) -> np.ndarray:
        """Wait for the logits: float32 [rows with batch.logits set, n_vocab] in batch order. A
        failed step raises its ``BackendError`` (every sequence starts over)."""
        try:
            results = [part.result() for part in self._parts]
        except BackendError:
            self._context.forget_failed_steps()
            raise
        observer = self._context._mul_mat_observer
        for outputs in results if observer is not None else ():
            for tensor, activations in mul_mat_inputs(outputs):
                observer(tensor, activations)
        if not results:
            return np.zeros((0, self._context.model.hparams.n_vocab), np.float32)
        return results[0]["logits"] if len(results) == 1 else np.concatenate([r["logits"] for r in results])


def _check_adapters_used(graph: Graph, adapters: Sequence[LoraAdapter]) -> None:
    """Refuse an adapter with a pair for a weight that the model's graph does not apply adapters
    to (the experts' stacked matrices, a pooling head) rather than silently leave it out."""
    used = {node.name for node in graph.nodes if node.op is Op.WEIGHT}
    for adapter in adapters:
        for weight, pair in adapter.pairs.items():
            if not any(name.startswith(adapter.prefix + pair.b) for name in used):
                raise LLMCoreError(f"LoRA adapter {adapter.path}: its pair for {weight} is not supported yet "
                                   "(llmcore applies adapters to the attention, feed-forward, embedding and "
                                   "output matrices)")


def _check_memory(graph: Graph, n_ctx: int, n_ubatch: int) -> None:
    """Refuse a context whose KV cache, cell table and attention mask alone exceed the memory
    available, before any of them is allocated (numpy would fail midway, or the OOM killer)."""
    if n_ctx > MAX_CONTEXT:
        raise LLMCoreError(f"-c {n_ctx}: a context holds at most {MAX_CONTEXT} cells (positions are int32)")
    caches = [node for node in graph.nodes if node.op is Op.CACHE]
    kv_bytes = sum(kv_types.nbytes(node.dtype, node.shape) for node in caches)
    cells_bytes = n_ctx * KVCells.BYTES_PER_CELL
    mask_bytes = n_ubatch * n_ctx * 4  # f32 [tokens of a step, n_ctx], built for every step
    needed = kv_bytes + cells_bytes + mask_bytes
    available = _host_memory_available()
    if available is not None and needed > available:
        raise LLMCoreError(
            f"-c {n_ctx}: the KV cache needs {_gib(kv_bytes)} ({len(caches)} caches), its cell table and "
            f"attention mask {_gib(cells_bytes + mask_bytes)}, {needed} bytes in all; only {_gib(available)} "
            f"of memory is available; lower -c/--ctx-size")


def _host_memory_available() -> int | None:
    """Bytes this process can still allocate: the kernel's MemAvailable plus free swap, capped by
    what RLIMIT_AS leaves beyond the address space already mapped; None where unknown."""
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo if line.count(":") == 1}
        available = fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft_limit != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/status") as status:
                mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        except (OSError, StopIteration, ValueError, IndexError):
            mapped = 0
        left = max(soft_limit - mapped, 0)
        available = left if available is None else min(available, left)
    return available


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


@dataclass(frozen=True)
class _KeyRotation:
    params: RopeParams
    freq_factors: np.ndarray | None
    head_shape: tuple[int, ...]  # (KV heads, head size) of one cell's keys
    hadamard: int = 0  # the order of the Walsh-Hadamard rotation the keys were stored with (0: none)
    start: int = 0  # the column of a cell's row where its rotated keys begin (after MLA's latent part)
