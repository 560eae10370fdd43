"""The plan of a model's placement, made before any weight is read: which backend runs which
layers and why, the memory each backend will allocate, and the expected prompt and decode speed.

``LLM`` builds its placement from the same ``Plan`` that ``llmcore plan`` prints, so what the table
says is what ``run`` does. The estimates follow what the context and the backends do:

- weights: the GGUF bytes of every weight read by an op a backend runs, in a 1-token graph (a tied
  embedding read by the CPU input and an offloaded output head counts on both), as
  ``Context._load_weights`` hands them out;
- kv: the cache tensors read or written by a backend's ops (``n_ctx`` cells x K and V width x
  element size x its layers);
- compute: the float32 activations of the two graph shapes a generation compiles (an
  ``n_batch``-token prompt step and a 1-token decode step), each value alive from the op writing
  it to its last reader within its split. A host backend (cpu_simd, reference) keeps one arena per
  split, so its arenas add up; a device backend shares one arena among its splits (the largest
  counts) and holds every split's inputs in host-visible staging buffers;
- speed: per step, the sum over the graph's ops of the calibrated cost on the backend running it
  (``llmcore.engine.calibration``): a weight product costs the slower of streaming its bytes and doing
  its operations, attention a cost per query and per (query, cell) pair on the cache types, every
  op a fixed cost on top, each split a fixed cost per run, and each step the engine's own work
  around the runs (``calibration.engine_step_s``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmcore.graph.backend import Backend, Device
from llmcore.engine.registry import availability, backend_classes, best_host_backend, choose_backend
from llmcore.errors import LLMCoreError
from llmcore.gguf import GGMLType
from llmcore.graph import kv_types
from llmcore.graph.ir import F16, F32, Graph, Node, Op
from llmcore.graph.kv_types import CacheConfig
from llmcore.graph.placement import LayerPlacement, parse_n_gpu_layers, parse_override
from llmcore.graph.scheduler import Split, split_graph
from llmcore.engine.model import Model

if TYPE_CHECKING:
    from llmcore.engine.calibration import BackendSpeed

_ELEMENT_BYTES = {F32: 4, F16: 2, "i32": 4}
DECODE_TOKENS = 128  # the decode steps a speed is the mean of, as llama-bench's tg128


SPLIT_MODES = ("none", "layer", "row", "tensor")  # llama.cpp's
_SPLIT_MODES_NOT_SUPPORTED = {
    "row": "each weight's rows split across devices, which llama.cpp does with CUDA only",
    "tensor": "weights and the KV cache split across devices, experimental in llama.cpp",
}


def check_split_mode(split_mode: str) -> None:
    """Refuse a split mode llmcore lacks whatever the backend: a CPU-only run would ignore it, and
    the same command would then fail only on a machine with an accelerator."""
    if split_mode not in SPLIT_MODES:
        raise LLMCoreError(f"--split-mode must be one of {', '.join(SPLIT_MODES)}, got {split_mode!r}")
    if split_mode in _SPLIT_MODES_NOT_SUPPORTED:
        raise LLMCoreError(f"--split-mode {split_mode} ({_SPLIT_MODES_NOT_SUPPORTED[split_mode]}) is not supported "
                           "yet: llmcore splits by layer; use --split-mode layer or none")


def choose_devices(backend_cls: type[Backend], split_mode: str, tensor_split: Sequence[float] | None,
                   main_gpu: int) -> tuple[list[int], list[float]]:
    """The devices of an accelerator backend that run the offloaded layers, and their shares, as
    llama.cpp's ``--split-mode``, ``--tensor-split`` and ``--main-gpu`` choose them. Devices are
    numbered as ``llmcore backends`` lists them; 0 is the backend's preferred one. Without
    ``tensor_split`` the layers are shared in proportion to the devices' free memory (their total
    memory where the free amount is unknown). ``split_mode`` is one :func:`check_split_mode` passed."""
    devices = availability(backend_cls.name).devices or (Device(backend_cls.name, "gpu"),)
    listed = ", ".join(f"{i}: {d.name}" for i, d in enumerate(devices))
    if not 0 <= main_gpu < len(devices):
        raise LLMCoreError(f"--main-gpu {main_gpu}: backend {backend_cls.name} has {len(devices)} device(s) ({listed})")
    if split_mode == "none":
        shares = [1.0 if i == main_gpu else 0.0 for i in range(len(devices))]
    elif tensor_split is None:
        shares = [float(d.memory_free or d.memory_total or 1) for d in devices]
    else:
        shares = [float(x) for x in tensor_split]
        if len(shares) > len(devices):
            raise LLMCoreError(f"--tensor-split gives {len(shares)} proportions, but backend {backend_cls.name} "
                               f"has {len(devices)} device(s) ({listed})")
        if any(not math.isfinite(x) or x < 0 for x in shares) or sum(shares) <= 0:
            raise LLMCoreError(f"--tensor-split proportions must be non-negative with a positive sum, got {list(tensor_split)}")
    used = [i for i, share in enumerate(shares) if share > 0]
    return used, [shares[i] for i in used]


@dataclass
class BackendMemory:
    """Bytes one backend is expected to allocate, by kind (as ``Backend.memory_used`` reports)."""

    weights: int = 0
    kv: int = 0
    compute: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.compute

    def as_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "kv": self.kv, "compute": self.compute}


@dataclass
class Speed:
    """Tokens per second of an ``n_prompt``-token prompt step and of ``n_gen`` 1-token decode steps
    from an empty cache (llama-bench's tg128): a plan's expectation, or what a run measured (0 for
    a speed it did not measure)."""

    prompt_tokens_per_s: float
    decode_tokens_per_s: float
    n_prompt: int
    decode_s_by_backend: dict[str, float] = field(default_factory=dict)
    n_gen: int = DECODE_TOKENS


@dataclass
class Plan:
    """A model placed on backends, not loaded. Build it with :meth:`build`."""

    model: Model
    backend: Backend  # the backend asked for (or chosen by auto)
    backend_reason: str
    placement: LayerPlacement
    n_ctx: int
    n_batch: int
    cache: CacheConfig  # the K and V cache types and whether attention is flash attention
    layer_reasons: dict[str, str] = field(default_factory=dict)  # backend name -> why it runs its layers
    flash_attn_reason: str = ""  # how -fa was resolved
    _splits: dict[int, list[Split]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, model: Model, backend: str = "auto", *, n_gpu_layers: int | str | None = None,
              override_tensor: list[str] | None = None, n_ctx: int = 4096, n_batch: int = 512,
              cache_type_k: str = F16, cache_type_v: str = F16, flash_attn: str | bool | None = "off",
              n_threads: int | None = None, split_mode: str = "layer",
              tensor_split: Sequence[float] | None = None, main_gpu: int = 0) -> Plan:
        """Choose the backends as ``LLM`` does: the named (or best) backend, and for an
        accelerator, llama.cpp's ``-ngl`` rule with the best CPU backend for the rest, the offloaded
        layers on the devices that ``split_mode``, ``tensor_split`` and ``main_gpu`` name. The KV
        cache types and ``flash_attn`` ("on", "off" or "auto") are checked and resolved as
        llama.cpp's context does (see :func:`resolve_cache`)."""
        check_split_mode(split_mode)
        requested = check_cache_request(model, cache_type_k, cache_type_v, flash_attn)
        backend_cls, reason = choose_backend(backend)
        n_layer = model.hparams.n_layer
        reasons = {}
        if backend_cls.runs_on_host:
            main = backend_cls(n_threads=n_threads)
            placement = LayerPlacement.single(main, n_layer)
            reasons[main.name] = f"{reason}; a CPU backend runs every layer"
        else:
            n_gpu = parse_n_gpu_layers(n_gpu_layers, n_layer)
            devices, shares = choose_devices(backend_cls, split_mode, tensor_split, main_gpu)
            accelerators = [backend_cls(n_threads=n_threads, device=d) if len(devices) > 1 or d != 0
                            else backend_cls(n_threads=n_threads) for d in devices]
            main = accelerators[0]
            cpu = best_host_backend()(n_threads=n_threads)
            placement = LayerPlacement.offload(cpu, accelerators, n_layer, n_gpu, shares)
            for accelerator, share in zip(accelerators, shares):
                reasons[accelerator.name] = (
                    f"{reason}; -ngl {n_gpu}: the last {n_gpu} of {n_layer + 1} offloadable layers "
                    f"(the output head counts as one)"
                    + (f"; --split-mode layer: {share / sum(shares):.0%} of them on this device" if len(devices) > 1 else ""))
            reasons[cpu.name] = "the best usable CPU backend: the input embedding, the layers not offloaded, ops the accelerator lacks"
        in_use = {b.name: b for b in placement.backends.values()}
        for spec in override_tensor or []:
            # -ot may name any usable backend, as llama.cpp's may name any device: a third one joins
            name = spec.rpartition("=")[2]
            if name not in in_use and name in backend_classes() and availability(name).usable:
                in_use[name] = backend_classes()[name](n_threads=n_threads)
        placement.overrides = [parse_override(spec, in_use) for spec in override_tensor or []]
        reference = backend_classes().get("reference")
        if reference is not None and placement.cpu.name != reference.name:
            placement.last_resort = reference(n_threads=n_threads)
        plan = cls(model, main, reason, placement, n_ctx, n_batch, CacheConfig(cache_type_k, cache_type_v), reasons)
        plan.cache, plan.flash_attn_reason = resolve_cache(plan, requested)
        plan._splits.clear()
        if placement.last_resort is not None and placement.last_resort in plan.backends:
            reasons[placement.last_resort.name] = (f"the last resort: ops no other backend here supports "
                                                   f"(its numpy kernels run every op and weight type)")
        return plan

    # -- what runs where --------------------------------------------------------------------

    @property
    def backends(self) -> list[Backend]:
        placed = [*self.placement.backends.values(), self.placement.cpu, *(o.backend for o in self.placement.overrides)]
        last = self.placement.last_resort
        if last is not None and any(split.backend is last for split in self.splits(1)):
            placed.append(last)
        return list({id(b): b for b in placed}.values())

    def graph(self, n_tokens: int, n_outputs: int = 1) -> Graph:
        arch = self.model.architecture(self.model.hparams, self.model.weight_specs, self.n_ctx, self.cache)
        return arch.build_graph(n_tokens, n_outputs)

    def splits(self, n_tokens: int) -> list[Split]:
        """The splits the scheduler will cut an ``n_tokens`` step into (one output row)."""
        if n_tokens not in self._splits:
            self._splits[n_tokens] = split_graph(self.graph(n_tokens), self.placement, self.placement.fallbacks)
        return self._splits[n_tokens]

    def weights_by_backend(self) -> dict[str, dict[str, Node]]:
        """The weights each backend will be handed at load (as ``Context._load_weights`` does), by name."""
        owned: dict[str, dict[str, Node]] = {b.name: {} for b in self.backends}
        for split in self.splits(1):
            owned[split.backend.name].update((w.name, w) for w in split.subgraph.weights)
        return owned

    def fallbacks(self) -> dict[str, dict[str, int]]:
        """Ops placed on a backend that does not support them, so the CPU backend runs them:
        ``{"backend -> cpu_backend": {op: count}}`` over a 1-token step."""
        moved: dict[str, dict[str, int]] = {}
        for split in self.splits(1):
            for node in split.subgraph.nodes:
                wanted = self.placement(node)
                if split.backend is not wanted:
                    counts = moved.setdefault(f"{wanted.name} -> {split.backend.name}", {})
                    counts[node.op.value] = counts.get(node.op.value, 0) + 1
        return moved

    # -- memory -----------------------------------------------------------------------------

    def memory(self) -> dict[str, BackendMemory]:
        """Bytes each backend is expected to allocate once a prompt step of ``n_batch`` tokens and
        a decode step have run."""
        memory = {b.name: BackendMemory() for b in self.backends}
        for name, weights in self.weights_by_backend().items():
            memory[name].weights = sum(self.model.weight_bytes(w) for w in weights.values())
        shapes = [self.splits(n) for n in sorted({self.n_batch, 1})]
        for backend in self.backends:
            caches: dict[str, int] = {}
            arenas, staging = [], 0
            for splits in shapes:
                for split in (s for s in splits if s.backend is backend):
                    caches.update((c.name, kv_types.nbytes(c.dtype, c.shape)) for c in split.subgraph.caches)
                    arenas.append(_peak_live_bytes(split))
                    staging += sum(_nbytes(n) for n in split.subgraph.inputs)
            memory[backend.name].kv = sum(caches.values())
            memory[backend.name].compute = sum(arenas) if backend.runs_on_host else max(arenas, default=0) + staging
        return memory

    # -- speed ------------------------------------------------------------------------------

    def calibration_needs(self) -> dict[str, tuple[set[tuple[GGMLType, int]], set[str]]]:
        """Per backend, the weight types and row lengths it multiplies by and the attention it runs
        (``attention_key``: cache types and heads)."""
        needs: dict[str, tuple[set[tuple[GGMLType, int]], set[str]]] = {b.name: (set(), set()) for b in self.backends}
        for split in self.splits(1):
            products, attentions = needs[split.backend.name]
            for node in split.subgraph.nodes:
                if node.op in (Op.MUL_MAT, Op.MUL_MAT_ID) and node.srcs[0].op is Op.WEIGHT:
                    products.add((node.srcs[0].dtype, node.srcs[0].shape[-1]))
                elif node.op is Op.ATTENTION:
                    attentions.add(attention_key(node))
        return needs

    def speed(self, n_prompt: int | None = None, n_gen: int = DECODE_TOKENS) -> Speed:
        """Expected speeds from each backend's calibration (measured now if not cached): of an
        ``n_prompt``-token prompt and of ``n_gen`` tokens decoded from an empty cache."""
        from llmcore.engine.calibration import calibrate, engine_step_s

        needs = self.calibration_needs()
        speeds = {b.name: calibrate(b, *needs[b.name]) for b in self.backends}
        engine_s = engine_step_s()
        n_prompt = n_prompt or self.n_batch
        step = min(n_prompt, self.n_batch)
        prompt_s = (sum(self._step_seconds(step, speeds).values()) + engine_s) * math.ceil(n_prompt / step)
        # the k-th token's attention reads k cells: the mean step reads (n_gen + 1) / 2
        decode = self._step_seconds(1, speeds, (n_gen + 1) / 2)
        return Speed(n_prompt / prompt_s, 1 / (sum(decode.values()) + engine_s), n_prompt, decode, n_gen)

    def speed_missed(self, measured: Speed) -> bool:
        """Whether ``measured`` (speeds a run reached with this plan) misses the calibrated
        prediction: above it by more than ``calibration.FAST_MISS_FACTOR`` (a calibration that other
        work slowed: the next :meth:`speed` measures again, keeping the best of both of the figures
        that predict the speed that missed, prompt or decode) or below it by
        more than ``calibration.MISS_FACTOR`` (the calibrations are dropped and measured afresh).
        Only cached calibrations are compared: this never measures."""
        from llmcore.engine import calibration

        if not all(calibration.is_cached(b) for b in self.backends):
            return False
        expected = self.speed(measured.n_prompt, measured.n_gen)
        ratios = {part: m / e for part, e, m in (
            (calibration.DECODE, expected.decode_tokens_per_s, measured.decode_tokens_per_s),
            (calibration.PROMPT, expected.prompt_tokens_per_s, measured.prompt_tokens_per_s)) if m > 0}
        if any(r < 1 / calibration.MISS_FACTOR for r in ratios.values()):
            for backend in self.backends:
                calibration.forget(backend)
            return True
        fast = [part for part, r in ratios.items() if r > calibration.FAST_MISS_FACTOR]
        if fast:
            for backend in self.backends:
                calibration.remeasure(backend, fast)
            return True
        return False

    def _step_seconds(self, n_tokens: int, speeds: dict[str, BackendSpeed],
                      decode_window: float = 1.0) -> dict[str, float]:
        """Seconds each backend spends on one step of ``n_tokens`` from an empty cache, or of one
        token whose attention reads ``decode_window`` cells."""
        seconds = {b.name: 0.0 for b in self.backends}
        for split in self.splits(n_tokens):
            speed = speeds[split.backend.name]
            total = speed.run_s
            for node in split.subgraph.nodes:
                if node.op is Op.RESHAPE:
                    continue  # a view: no work
                total += speed.op_s
                w = node.srcs[0] if node.srcs else None
                if node.op is Op.MUL_MAT and w is not None and w.op is Op.WEIGHT:
                    total += speed.mul_mat_s(w.dtype, w.shape[-1], self.model.weight_bytes(w), math.prod(w.shape),
                                             node.shape[0])
                elif node.op is Op.MUL_MAT_ID and w is not None and w.op is Op.WEIGHT:
                    # each expert a step routes rows to is one product over its rows; the others are not read
                    n_expert, n_routed = w.shape[0], node.shape[0] * node.shape[1]
                    touched = min(n_expert, n_routed)
                    total += touched * speed.mul_mat_s(w.dtype, w.shape[-1], self.model.weight_bytes(w) // n_expert,
                                                       math.prod(w.shape[1:]), -(-n_routed // touched))
                elif node.op is Op.ATTENTION and n_tokens == 1:
                    total += speed.decode_attention_s(attention_key(node), decode_window)
                elif node.op is Op.ATTENTION:
                    n = node.srcs[0].shape[0]
                    # a step from an empty cache: n queries over a window of n cells, causally masked
                    total += speed.attention_s(attention_key(node), n, n * n)
            seconds[split.backend.name] += total
        return seconds


def _declines_flash(backend: Backend, node: Node) -> bool:
    """Whether flash attention would leave the layer's device: ``backend`` declines the flash
    attention ``node`` but runs it without flash attention, or is an accelerator that declines it
    (a host backend that runs neither leaves both to another host backend, as llama.cpp's CPU
    backend runs every flash attention)."""
    if backend.supports_op(node):
        return False
    plain = dataclasses.replace(node, params={**node.params, "flash": False})
    return not backend.runs_on_host or backend.supports_op(plain)


def _nbytes(node: Node) -> int:
    if node.dtype not in _ELEMENT_BYTES and node.dtype in kv_types.KV_CACHE_TYPES:
        return kv_types.nbytes(node.dtype, node.shape)  # a cache crossing a split boundary
    return math.prod(node.shape) * _ELEMENT_BYTES.get(node.dtype, 4)


def attention_key(node: Node) -> str:
    """What the cost of an attention node depends on besides its tokens and cells, the key of its
    calibration: the cache types and flash attention ("f16" for the plain f16 attention;
    "q8_0/q8_0/fa" ...), then its heads as n_head x n_head_kv x head_dim ("f16/f16/fa 9x3x64")."""
    k, v = node.srcs[1].dtype, node.srcs[2].dtype
    flash = node.params.get("flash")
    caches = str(k) if k == v and not flash else f"{k}/{v}" + ("/fa" if flash else "")
    _, n_head, head_dim = node.srcs[0].shape
    return f"{caches} {n_head}x{node.params['n_head_kv']}x{head_dim}"


def check_cache_request(model: Model, type_k: str, type_v: str, flash_attn: str | bool | None) -> str:
    """Refuse what llama.cpp's ``llama_init_from_model`` refuses: an unknown cache type, a quantized
    V cache with flash attention off, a block type whose block does not divide the head size.
    Returns ``flash_attn`` as "on", "off" or "auto"."""
    kv_types.check_cache_type(type_k, "-ctk/--cache-type-k")
    kv_types.check_cache_type(type_v, "-ctv/--cache-type-v")
    fa = kv_types.parse_flash_attn(flash_attn)
    if kv_types.is_quantized(type_v) and fa == "off":
        raise LLMCoreError(f"quantized V cache requires flash_attn to be enabled (-ctv {type_v} needs -fa on or auto)")
    head_dim = model.hparams.head_dim
    for flag, name in (("K", type_k), ("V", type_v)):
        if kv_types.is_quantized(name) and head_dim % kv_types.QK:
            raise LLMCoreError(f"{flag} cache type {name} with block size {kv_types.QK} does not divide "
                               f"n_embd_head_{flag.lower()}={head_dim}")
    return fa


def resolve_cache(plan: Plan, flash_attn: str) -> tuple[CacheConfig, str]:
    """The cache setup the context gets, and why: ``-fa on``/``off`` as asked; ``auto`` as llama.cpp's
    context resolves it, flash attention on when the backend placed on every layer runs it (on
    llama.cpp's CPU backend it always does), off when one declines it; a quantized V cache turns
    ``auto`` on in any case (llama.cpp: "enabling flash_attn since it is required for quantized V
    cache")."""
    cache = plan.cache
    if flash_attn != "auto":
        return dataclasses.replace(cache, flash_attn=flash_attn == "on"), f"-fa {flash_attn}"
    if kv_types.is_quantized(cache.type_v):
        return dataclasses.replace(cache, flash_attn=True), "-fa auto: a quantized V cache requires flash attention"
    plan.cache = dataclasses.replace(cache, flash_attn=True)
    plan._splits.clear()
    declined = sorted({plan.placement(node).name for node in plan.graph(1).nodes
                       if node.op is Op.ATTENTION and _declines_flash(plan.placement(node), node)})
    plan.cache = cache
    if declined:
        return cache, f"-fa auto: off, as {', '.join(declined)} does not run flash attention with these caches"
    return dataclasses.replace(cache, flash_attn=True), "-fa auto: on, every layer's backend runs flash attention"


def _peak_live_bytes(split: Split) -> int:
    """The most float32 activation bytes alive at once within ``split``: a value lives from the
    op writing it to its last reader (to the end when another split reads it). Reshapes alias
    their source and cache stores write the cache, so neither takes arena space."""
    nodes = split.subgraph.nodes
    storage = {n.id: n.srcs[0].id for n in nodes if n.op in (Op.RESHAPE, Op.KV_STORE)}

    def root(node_id: int) -> int:
        while node_id in storage:
            node_id = storage[node_id]
        return node_id

    last_read: dict[int, int] = {}
    for step, node in enumerate(nodes):
        for src in node.srcs:
            last_read[root(src.id)] = step
    for node in split.subgraph.outputs:
        last_read[root(node.id)] = len(nodes)
    live, peak = 0, 0
    frees: dict[int, int] = {}
    for step, node in enumerate(nodes):
        if node.op not in (Op.RESHAPE, Op.KV_STORE):
            size = 4 * math.prod(node.shape)
            live += size
            frees[last_read.get(node.id, step)] = frees.get(last_read.get(node.id, step), 0) + size
        peak = max(peak, live)
        live -= frees.pop(step, 0)
    return peak
