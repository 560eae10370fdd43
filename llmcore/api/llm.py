"""``LLM``: the public Python API, in the spirit of llama-cpp-python's ``Llama``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmcore.engine import state
from llmcore.api.types import (
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatDelta,
    ChatMessage,
    Completion,
    CompletionChoice,
    FinishReason,
    Timings,
    ToolCall,
    Usage,
)
from llmcore.api.embedding import EmbeddingMethods, context_pooling
from llmcore.engine.batch import Batch
from llmcore.chat import ChatTemplate
from llmcore.chat.messages import media_parts
from llmcore.chat.tools import parse_reply, tool_schema, with_instructions
from llmcore.engine.context import Context
from llmcore.errors import LLMCoreError
from llmcore.grammar import Grammar, grammar_for, schema_for_response_format
from llmcore.graph.kv_types import DEFAULT_FLASH_ATTN
from llmcore.hub import resolve_model
from llmcore.media.image import image_from_url
from llmcore.engine import mtmd
from llmcore.engine.kv_cache import common_prefix
from llmcore.engine.model import Model
from llmcore.engine.plan import Plan
from llmcore.engine.registry import configure_backend
from llmcore.engine.sampling import Sampler, SamplingParams
from llmcore.engine.sequence import Generation, Step, context_shift_span, sampler_for
from llmcore.engine.infill import ExtraChunk, infill_prompt
from llmcore.engine.speculative import SPEC_TYPES, DraftParams, ModelDrafter, NgramDrafter, Speculation
from llmcore.models.adapters import LoraAdapter, load_control_vector


@dataclass
class GenerationStats:
    """What the last generation did: token counts, times and why it ended."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason | None = None
    timings: Timings = field(default_factory=Timings)
    tail: str = ""  # text held back until the end (half a character, a possible stop string)
    context_shifts: int = 0  # times a full context was shifted (``context_shift``)


class LLM(EmbeddingMethods):
    """A model loaded onto a backend, ready to tokenize, score and generate, or to embed and rerank.

    ``model`` is a GGUF path, a cached model name, a URL or Hugging Face-style reference, or None
    for the default model (SmolLM2-135M-Instruct). ``backend`` is a backend name or ``"auto"``
    (the best usable one). ``seed`` is the default sampling seed (None: random).

    Placement follows llama.cpp (and llama-cpp-python's names): on an accelerator backend,
    ``n_gpu_layers`` of the model's ``n_layer + 1`` offloadable layers (counted from the output
    head down) run there and the rest on the best CPU backend; None or -1 means all.
    ``override_tensor`` is a list of ``REGEX=BACKEND`` pins for weights, as ``--override-tensor``.
    With several devices of the accelerator backend, ``split_mode`` ``"layer"`` (the default)
    shares the offloaded layers among them in ``tensor_split`` proportions (default: by free
    memory), ``"none"`` puts them all on device ``main_gpu``; devices are numbered as
    ``llmcore backends`` lists them.

    The KV cache holds keys in ``cache_type_k`` and values in ``cache_type_v``, any of llama.cpp's
    cache types (f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1); ``flash_attn`` is ``-fa``:
    "on", "off" or "auto" (or True/False, as llama-cpp-python takes it). A quantized V cache needs
    flash attention, which "auto" then turns on; otherwise "auto" turns it on where every layer's
    backend runs it, as llama.cpp does.

    ``n_seq_max`` is the number of sequences a recurrent model (Mamba) keeps a state for
    (llama.cpp's ``n_seq_max``; ``llmcore serve`` makes one per slot).

    ``embedding=True`` loads the model for :meth:`embed`, :meth:`create_embedding` and
    :meth:`rerank` instead of generation (an encoder such as BERT always is), pooled as
    ``pooling`` says (``none``, ``mean``, ``cls``, ``last``, ``rank``; default: the file's
    ``pooling_type``); an encoder's context is at most its trained length.

    ``lora`` lists LoRA adapters in llama.cpp's GGUF adapter format, each a path (scale 1) or a
    (path, scale) pair, applied as llama.cpp applies them (never merged into the weights);
    :meth:`set_lora_scales` changes the scales later. ``control_vectors`` lists llama.cpp's GGUF
    control vectors the same way, added to the outputs of layers ``control_vector_layer_range``
    (first, last; default: all but layer 0).

    Speculative decoding (llama.cpp's ``--spec-type``): ``draft_model`` (a smaller model of the
    same vocabulary, ``draft-simple``) or ``spec_type="ngram-simple"`` (drafts from the text so far)
    propose tokens that the model checks in one batch, within ``draft``'s limits
    (:class:`~llmcore.engine.speculative.DraftParams`); the output is what plain decoding samples,
    and ``last.timings`` counts the drafted and accepted tokens.

    ``mmproj`` is a multimodal projector file (llama.cpp's ``mmproj``, a CLIP vision encoder) that lets
    prompts hold images: :meth:`generate`'s ``images`` take the places of the prompt's media markers
    (``<__media__>``), and :meth:`create_chat_completion` takes OpenAI's ``image_url`` content parts
    (data URLs and file paths).

    ``ray`` (``"auto"`` or a cluster's ``HOST:PORT``) connects the ``ray`` backend plugin to a Ray
    cluster: its nodes become devices that ``backend``, ``n_gpu_layers``, ``tensor_split`` and
    ``override_tensor`` place layer ranges on, as on local GPUs (docs/ray.md).
    """

    def __init__(self, model: str | Path | None = None, *, backend: str = "auto", n_ctx: int = 4096,
                 n_batch: int = 512, n_threads: int | None = None, seed: int | None = None,
                 cache_type_k: str = "f16", cache_type_v: str = "f16", flash_attn: str | bool = DEFAULT_FLASH_ATTN,
                 chat_template: str | None = None,
                 n_gpu_layers: int | str | None = None, override_tensor: list[str] | None = None,
                 split_mode: str = "layer", tensor_split: list[float] | None = None, main_gpu: int = 0,
                 embedding: bool = False, pooling: str | int | None = None,
                 lora: Sequence[str | Path | tuple[str | Path, float]] = (),
                 control_vectors: Sequence[str | Path | tuple[str | Path, float]] = (),
                 control_vector_layer_range: tuple[int, int] | None = None,
                 draft_model: str | Path | None = None, spec_type: str | None = None,
                 draft: DraftParams | None = None, n_seq_max: int = 1, mmproj: str | Path | None = None,
                 ray: str | None = None) -> None:
        if n_ctx < 1 or n_batch < 1:
            raise LLMCoreError(f"n_ctx and n_batch must be positive (got {n_ctx}, {n_batch})")
        started = time.perf_counter()
        self.model_path = resolve_model(None if model is None else str(model))
        self.model = Model(self.model_path)
        pooling = context_pooling(self.model.architecture, self.model.hparams, embedding, pooling)
        if self.model.architecture.encoder_only:  # a micro-batch is the encoder's whole context
            n_ctx = min(n_ctx, self.model.hparams.n_ctx_train)
            n_batch = min(n_batch, n_ctx)
        self.tokenizer = self.model.tokenizer
        if ray is not None:  # the cluster's nodes become the ray backend's devices
            configure_backend("ray", ray)
        self.plan = Plan.build(self.model, backend, n_gpu_layers=n_gpu_layers, override_tensor=override_tensor,
                               n_ctx=n_ctx, n_batch=n_batch, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
                               flash_attn=flash_attn, n_threads=n_threads,
                               split_mode=split_mode, tensor_split=tensor_split, main_gpu=main_gpu)
        self.backend, self.backend_reason = self.plan.backend, self.plan.backend_reason
        hp = self.model.hparams
        adapters = [LoraAdapter(path, hp.arch, {n: w.shape for n, w in self.model.weight_specs.items()}, index)
                    for index, (path, _) in enumerate(_scaled(lora))]
        cvec = (load_control_vector(_scaled(control_vectors), hp.n_embd, hp.n_layer, control_vector_layer_range)
                if control_vectors else None)
        self.context = Context(self.model, self.plan.placement, n_ctx, n_batch, self.plan.cache, pooling,
                               adapters, cvec, n_seq_max)
        self.context.set_lora_scales([scale for _, scale in _scaled(lora)])
        self.projector = mtmd.Projector(mmproj, hp.n_embd, self.plan.placement) if mmproj is not None else None
        spec_type = spec_type or ("draft-simple" if draft_model is not None else "none")
        draft = draft or DraftParams()
        self.speculation: Speculation | None = None
        if spec_type == "draft-simple":
            if draft_model is None:
                raise LLMCoreError("--spec-type draft-simple needs a draft model (-md)")
            drafter = LLM(draft_model, backend=backend, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads,
                          cache_type_k=cache_type_k, cache_type_v=cache_type_v, flash_attn=flash_attn)
            self.speculation = Speculation(spec_type, ModelDrafter(drafter.context, drafter.tokenizer, self.tokenizer,
                                                                   draft.p_min), draft)
        elif spec_type == "ngram-simple":
            self.speculation = Speculation(spec_type, NgramDrafter(draft.ngram_size_n, draft.ngram_size_m), draft)
        elif spec_type != "none":
            raise LLMCoreError(f"--spec-type {spec_type!r} is not supported (llmcore has {', '.join(SPEC_TYPES)})")
        self.seed = seed
        self.chat_template = ChatTemplate.resolve(chat_template, self.metadata)
        self.load_ms = 1e3 * (time.perf_counter() - started)
        self.last = GenerationStats()
        self._cached_tokens: list[int] = []  # the tokens whose keys and values sit in sequence 0

    # -- adapters -------------------------------------------------------------------------------

    @property
    def lora_adapters(self) -> list[LoraAdapter]:
        return self.context.lora_adapters

    @property
    def lora_scales(self) -> list[float]:
        return self.context.lora_scales

    def set_lora_scales(self, scales: Sequence[float]) -> None:
        """Apply LoRA adapter i at ``scales[i]`` (0: not at all) from the next evaluation on; the
        cached prompt is forgotten when they change, as llama-server clears a slot's cache."""
        if [float(s) for s in scales] != self.lora_scales:
            self.context.set_lora_scales(scales)
            self.context.seq_remove(0)
            self._cached_tokens = []

    # -- properties ---------------------------------------------------------------------------

    @property
    def context_tokens(self) -> list[int]:
        """The tokens whose keys and values sequence 0 holds, in position order: after a generation,
        its prompt and every output token but the last (not decoded yet), less what a context
        shift dropped."""
        return list(self._cached_tokens)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.model.metadata

    @property
    def n_vocab(self) -> int:
        return self.model.hparams.n_vocab

    @property
    def n_ctx(self) -> int:
        return self.context.n_ctx

    def memory_used(self) -> dict[str, dict[str, int]]:
        """Bytes each backend allocated, by kind (``weights``, ``kv``, ``compute``), by backend name."""
        return self.context.memory_used()

    @property
    def placement(self) -> list[tuple[str, str]]:
        """Which backend runs which layers, e.g. ``[("input, 0-29, output", "cpu_simd")]``."""
        return self.context.placement.describe()

    # -- tokens -------------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.tokenizer.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.detokenize(ids)

    # -- scoring ------------------------------------------------------------------------------

    def logits(self, ids: list[int]) -> np.ndarray:
        """float32 logits [len(ids), n_vocab] for every position, from a fresh context."""
        self.reset()
        logits = self.context.decode(Batch.for_sequence(list(ids), 0, all_logits=True))
        self._cached_tokens = list(ids)
        return logits

    def infill_prompt(self, prefix: str, suffix: str, extra: Sequence[ExtraChunk] = (), prompt: str = "") -> list[int]:
        """The fill-in-the-middle prompt llama-server's ``/infill`` builds with the model's FIM
        tokens (the middle starts with ``prompt``), for :meth:`generate`; ``extra`` files
        (:class:`~llmcore.engine.infill.ExtraChunk`) go first where the context leaves room."""
        start = self.tokenize(prompt, add_special=False, parse_special=True) if prompt else []
        return infill_prompt(self.tokenizer, prefix, suffix, extra, start, n_batch=self.context.n_batch,
                             n_ctx=self.n_ctx)

    def reset(self) -> None:
        """Forget the KV cache."""
        self.context.cells.clear()
        self._cached_tokens = []

    def save_state(self, path: str | Path, n_tokens: int | None = None) -> None:
        """Save the tokens the KV cache holds (only the first ``n_tokens`` with it) and their keys
        and values to ``path``, for :meth:`load_state` in this or a later process."""
        tokens = self._cached_tokens if n_tokens is None else self._cached_tokens[:n_tokens]
        state.save_state(path, self.context, self.model, tokens)

    def load_state(self, path: str | Path) -> list[int]:
        """Replace the KV cache with the state saved in ``path`` and return its tokens; the next
        prompt starting with them evaluates only what follows. Raises ``LLMCoreError`` if the file
        is corrupt or was saved with another model, cache type or a context too small."""
        tokens = state.load_state(path, self.context, self.model)
        self._cached_tokens = tokens
        return list(tokens)

    def eval_prompt(self, tokens: list[int]) -> np.ndarray:
        """Bring sequence 0 to exactly ``tokens`` and return the logits of the last one.

        Keys and values of a common prefix with what the cache already holds are reused, so a
        conversation or a shared system prompt is evaluated once.
        """
        if not tokens:
            raise LLMCoreError("the prompt is empty")
        if len(tokens) > self.n_ctx:
            raise LLMCoreError(f"the prompt has {len(tokens)} tokens, more than the context size {self.n_ctx}")
        keep = common_prefix(self._tokens_held(), tokens, limit=len(tokens) - 1)
        if not self.context.seq_remove(0, keep):  # a recurrent state cannot forget its last tokens
            keep = 0
            self.context.seq_remove(0)
        self._cached_tokens = self._cached_tokens[:keep]
        logits = self.context.decode(Batch.for_sequence(tokens[keep:], keep))[-1]
        self._cached_tokens = list(tokens)
        self.last.timings.prompt_n = len(tokens) - keep
        return logits

    def _tokens_held(self) -> list[int]:
        """The cached tokens the context still holds: none after a failed step, which forgets the
        whole cache (a backend that failed mid-step may have lost or half-written it)."""
        return self._cached_tokens[:self.context.seq_pos_max(0) + 1]

    def eval_chunks(self, chunks: Sequence[mtmd.Chunk]) -> np.ndarray:
        """:meth:`eval_prompt` for a prompt cut into text and image chunks (:func:`llmcore.engine.mtmd.tokenize`):
        a cached prefix is reused up to the start of the first image or token that differs."""
        ids = mtmd.prompt_ids(chunks)
        if not ids:
            raise LLMCoreError("the prompt is empty")
        if len(ids) > self.n_ctx:
            raise LLMCoreError(f"the prompt has {len(ids)} positions (its images included), more than the context "
                               f"size {self.n_ctx}")
        keep = mtmd.cached_prefix(chunks, common_prefix(self._tokens_held(), ids, limit=len(ids) - 1))
        if not self.context.seq_remove(0, keep):
            keep = 0
            self.context.seq_remove(0)
        self._cached_tokens = self._cached_tokens[:keep]
        logits = mtmd.eval_chunks(self.context, self.projector, chunks, keep)
        self._cached_tokens = ids
        self.last.timings.prompt_n = len(ids) - keep
        return logits

    # -- generation ---------------------------------------------------------------------------

    def generation(self, prompt_tokens: list[int], sampler: Sampler, max_tokens: int = -1, *,
                   stop: list[str] | str | None = None, ignore_eos: bool = False,
                   context_shift: bool = False, n_keep: int = 0,
                   chunks: Sequence[mtmd.Chunk] | None = None) -> Iterator[Step]:
        """The steps of a generation of sequence 0 after ``prompt_tokens`` (the engine's
        :class:`~llmcore.engine.sequence.Generation`, the one loop the server runs per slot).

        Yields each step whose token is output (an end-of-generation token ends it unyielded);
        ends after the step that hits a stop string or ``max_tokens`` (-1: until the context is
        full), or when the consumer stops. ``self.last`` records the outcome; the text still held
        back at the end is its ``tail``. ``chunks``: the prompt holds images, cut into chunks (then
        ``prompt_tokens`` is :func:`llmcore.engine.mtmd.prompt_ids` of them).

        With ``context_shift`` a full context does not end it: as llama.cpp's ``--context-shift``,
        the first ``n_keep`` prompt tokens after the BOS stay (-1: the whole prompt), half of the
        rest is dropped and what follows moves back, its keys rotated to the new positions.
        """
        run = Generation(self.tokenizer, sampler, prompt_tokens, n_ctx=self.n_ctx, max_tokens=max_tokens,
                         stops=[stop] if isinstance(stop, str) else list(stop or ()), ignore_eos=ignore_eos,
                         context_shift=context_shift)
        self.last = GenerationStats(prompt_tokens=len(prompt_tokens))
        timings = self.last.timings
        n_decoded = 0
        try:
            rows, drafted = [self.eval_chunks(chunks) if chunks else self.eval_prompt(prompt_tokens)], []
            while True:
                # row i holds the logits after the token decoded last and drafted[:i]: the target's
                # sampler keeps drafted[i] while it samples it, and the first other token is new
                for i, logits in enumerate(rows):
                    step = run.step(logits)
                    if step.stop == "eos":
                        return
                    self.last.completion_tokens += 1
                    yield step
                    if step.stop:
                        return
                    if i == len(drafted) or step.token != drafted[i]:
                        break
                    self._cached_tokens.append(step.token)
                    n_decoded += 1
                    timings.draft_n_accepted += 1
                if drafted:  # forget the drafted tokens not kept (a step without drafts left none)
                    self.context.seq_remove(0, len(self._cached_tokens))
                if len(self._cached_tokens) + 1 >= self.n_ctx:  # only with context_shift, else Generation stopped
                    self.shift_context(len(prompt_tokens), n_keep)
                    self.last.context_shifts += 1
                room = self.n_ctx - len(self._cached_tokens) - 1
                drafted = self.speculation.draft(self._cached_tokens, step.token, room) if self.speculation else []
                timings.draft_n += len(drafted)
                batch = Batch.for_sequence([step.token, *drafted], len(self._cached_tokens), all_logits=bool(drafted))
                rows = self.context.decode(batch)
                self._cached_tokens.append(step.token)
                n_decoded += 1
        finally:
            self.context.seq_remove(0, len(self._cached_tokens))
            self.last.tail = run.finish()
            self.last.finish_reason = run.finish_reason
            timings.prompt_ms = run.prompt_ms
            timings.predicted_n, timings.predicted_ms = n_decoded, run.predicted_ms

    def shift_context(self, n_prompt: int, n_keep: int) -> int:
        """llama.cpp's context shift of sequence 0: the BOS and ``n_keep`` tokens after it stay (-1:
        the first ``n_prompt``), half of the rest is dropped and what follows moves back, its keys
        rotated. Returns how many tokens were dropped (0: nothing left to drop)."""
        keep, discard = context_shift_span(len(self._cached_tokens), n_prompt, self.n_ctx, n_keep=n_keep,
                                           add_bos=self.tokenizer.add_bos)
        if discard:
            self.context.seq_shift_out(0, keep, discard)
            del self._cached_tokens[keep:keep + discard]
        return discard

    def generate_tokens(self, prompt_tokens: list[int], sampler: Sampler, max_tokens: int = -1,
                        ignore_eos: bool = False, context_shift: bool = False, n_keep: int = 0,
                        chunks: Sequence[mtmd.Chunk] | None = None) -> Iterator[int]:
        """Sample tokens one by one after ``prompt_tokens`` (see :meth:`generation`)."""
        steps = self.generation(prompt_tokens, sampler, max_tokens, ignore_eos=ignore_eos,
                                context_shift=context_shift, n_keep=n_keep, chunks=chunks)
        for step in steps:
            yield step.token

    def sampler(self, *, grammar: Grammar | str | None = None, json_schema: dict | str | bool | None = None,
                **sampling: Any) -> Sampler:
        """A sampler with llama.cpp's defaults overridden by ``sampling`` (the fields of
        :class:`~llmcore.engine.sampling.SamplingParams`: ``temperature``, ``top_k``, ``top_p``,
        ``min_p``, ``repeat_penalty``, ``dry_multiplier``, ``seed``...), constrained by ``grammar``
        (a :class:`Grammar` or GBNF text) or ``json_schema``."""
        if sampling.get("seed") is None:
            sampling["seed"] = self.seed
        params = SamplingParams.from_settings(sampling)
        constraint = grammar_for(grammar, json_schema)
        matcher = constraint.matcher(self.tokenizer) if constraint else None
        return sampler_for(self.model, params, self.n_ctx, matcher)

    def generate(self, prompt: str | list[int], *, max_tokens: int = -1, stop: list[str] | str | None = None,
                 ignore_eos: bool = False, sampler: Sampler | None = None, context_shift: bool = False,
                 n_keep: int = 0, images: Sequence[np.ndarray] = (), **sampling: Any) -> Iterator[str]:
        """Stream the continuation of ``prompt`` as text pieces (never half a UTF-8 character).

        Sampling follows ``sampling`` (see :meth:`sampler`), or the ready ``sampler`` given;
        ``context_shift`` and ``n_keep`` as :meth:`generation`. ``images`` (uint8 [h, w, 3] RGB, see
        :mod:`llmcore.media.image`) take the places of the text prompt's media markers, in order."""
        chunks = None
        if images:
            if not isinstance(prompt, str):
                raise LLMCoreError("images go with a text prompt that marks their places (<__media__>)")
            chunks = mtmd.tokenize(self.tokenizer, self.projector, prompt, images)
        tokens = mtmd.prompt_ids(chunks) if chunks else self._prompt_tokens(prompt)
        steps = self.generation(tokens, sampler or self.sampler(**sampling), max_tokens,
                                stop=stop, ignore_eos=ignore_eos, context_shift=context_shift, n_keep=n_keep,
                                chunks=chunks)
        for step in steps:
            if step.text:
                yield step.text
        if self.last.tail:
            yield self.last.tail

    def create_completion(self, prompt: str | list[int], *, max_tokens: int | None = 16,
                          stop: list[str] | str | None = None, stream: bool = False,
                          **sampling: Any) -> Completion | Iterator[Completion]:
        """An OpenAI-shaped text completion (or, with ``stream=True``, an iterator of chunks)."""
        limit = -1 if max_tokens is None or max_tokens <= 0 else max_tokens
        pieces = self.generate(prompt, max_tokens=limit, stop=stop, **sampling)
        meta = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": self.model_path.name}
        if stream:
            return self._stream_chunks(pieces, meta)
        text = "".join(pieces)
        return Completion(**meta, choices=[CompletionChoice(text=text, finish_reason=self.last.finish_reason)],
                          usage=self._usage())

    def create_chat_completion(self, messages: list[dict[str, Any]], *, max_tokens: int | None = None,
                               stop: list[str] | str | None = None, stream: bool = False,
                               tools: list[dict[str, Any]] | None = None,
                               tool_choice: str | dict[str, Any] | None = "auto",
                               response_format: dict[str, Any] | None = None,
                               **sampling: Any) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """An OpenAI-shaped chat completion: ``messages`` rendered with the model's chat template
        (or ``chat_template`` given to the constructor), then completed. ``response_format`` is
        OpenAI's: ``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {"schema": ...}}``
        constrain the reply to JSON (of that schema). With ``tools`` (and ``tool_choice`` other than
        "none") the reply is a tool call or a plain answer in llama-server's generic format, returned
        as OpenAI ``tool_calls``."""
        use_tools = bool(tools) and tool_choice != "none"
        if use_tools:
            schema = tool_schema(tools, tool_choice)
            messages = with_instructions(messages, tools, schema)
            sampling["json_schema"] = schema
        elif response_format:
            sampling["json_schema"] = schema_for_response_format(response_format)
        urls: list[str] = []
        if self.projector is not None:  # image parts become media markers (else the template refuses them)
            messages, urls = media_parts(messages, mtmd.MEDIA_MARKER)
        images = [image_from_url(url) for url in urls]
        prompt = self.chat_template.render(messages, add_generation_prompt=True)
        limit = -1 if max_tokens is None or max_tokens <= 0 else max_tokens
        pieces = self.generate(prompt, max_tokens=limit, stop=stop, images=images, **sampling)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": self.model_path.name}
        if stream and not use_tools:
            return self._stream_chat_chunks(pieces, meta)
        message, finish = self._chat_message("".join(pieces), use_tools)
        if stream:  # a tool call is known only once its JSON is complete: one content/tool_calls delta
            return self._stream_chat_chunks(iter(()), meta, ChatDelta(content=message.content, tool_calls=message.tool_calls), finish)
        return ChatCompletion(**meta, choices=[ChatCompletionChoice(message=message, finish_reason=finish)], usage=self._usage())

    def _chat_message(self, text: str, use_tools: bool) -> tuple[ChatMessage, FinishReason | None]:
        if not use_tools:
            return ChatMessage(content=text), self.last.finish_reason
        content, calls = parse_reply(text)
        if calls:
            return ChatMessage(content=None, tool_calls=[ToolCall(**call) for call in calls]), "tool_calls"
        return ChatMessage(content=content), self.last.finish_reason

    def _stream_chat_chunks(self, pieces: Iterator[str], meta: dict[str, Any], last: ChatDelta | None = None,
                            finish: FinishReason | None = None) -> Iterator[ChatCompletionChunk]:
        yield ChatCompletionChunk(**meta, choices=[ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))])
        for piece in pieces:
            yield ChatCompletionChunk(**meta, choices=[ChatChunkChoice(delta=ChatDelta(content=piece))])
        if last is not None:
            yield ChatCompletionChunk(**meta, choices=[ChatChunkChoice(delta=last)])
        yield ChatCompletionChunk(**meta, choices=[ChatChunkChoice(delta=ChatDelta(), finish_reason=finish or self.last.finish_reason)],
                                  usage=self._usage())

    def _stream_chunks(self, pieces: Iterator[str], meta: dict[str, Any]) -> Iterator[Completion]:
        for piece in pieces:
            yield Completion(**meta, choices=[CompletionChoice(text=piece)])
        yield Completion(**meta, choices=[CompletionChoice(text="", finish_reason=self.last.finish_reason)],
                         usage=self._usage())

    def _usage(self) -> Usage:
        p, c = self.last.prompt_tokens, self.last.completion_tokens
        return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)

    def _prompt_tokens(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenize(prompt, add_special=True, parse_special=True)
        return list(prompt)


def _scaled(items: Sequence[str | Path | tuple[str | Path, float]]) -> list[tuple[str | Path, float]]:
    """Adapter files each with its scale: a bare path means scale 1."""
    return [(item, 1.0) if isinstance(item, (str, Path)) else (item[0], float(item[1])) for item in items]
