"""The continuous-batching engine. One thread owns the model's Context (which is not thread-safe);
each step it decodes ONE batch holding the next token of every generating slot and prompt chunks
of the slots still reading their prompts, then samples every slot whose logits came back. With
speculative decoding (``-md`` or ``--spec-type``, ``LLM.speculation``) a generating slot's next
token comes with a draft, and its sampler walks the draft's rows, keeping drafted tokens while it
samples them (as ``LLM.generation`` does): the text is the plain decoding's, in fewer steps.

HTTP handlers talk to it through :class:`JobStream`: a job goes in through a thread-safe queue and
its tokens come back on the handler's asyncio loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmcore.api.llm import LLM
from llmcore.api.types import FinishReason, Timings
from llmcore.engine import mtmd, state
from llmcore.engine.batch import Batch
from llmcore.engine.context import PendingLogits
from llmcore.errors import LLMCoreError
from llmcore.engine.sampling import CandidateProbs, Sampler, pre_sampling_probs
from llmcore.engine.sequence import Generation, StopType, context_shift_span
from llmcore.server.errors import APIError, api_error_from
from llmcore.server.metrics import Metrics
from llmcore.server.slots import Slot, choose_slot

log = logging.getLogger("llmcore.server")

@dataclass
class TokenEvent:
    """One generated token and the text it makes safe to show (possibly empty: a held-back
    half character or a possible start of a stop string)."""

    token: int
    text: str
    probs: CandidateProbs | None = None


@dataclass
class DoneEvent:
    """The end of a job: the last held-back text, why it ended, and what it cost."""

    text: str
    finish_reason: FinishReason
    stop_type: StopType
    prompt_tokens: int
    completion_tokens: int
    tokens_cached: int  # prompt tokens whose keys and values were reused from the slot's cache
    timings: Timings
    id_slot: int
    interrupted: bool = False  # ended early because the server is shutting down
    truncated: bool = False  # the context shifted: the reply no longer sees all of its prompt


@dataclass
class ErrorEvent:
    error: APIError


Event = TokenEvent | DoneEvent | ErrorEvent


@dataclass(eq=False)
class Job:
    """A generation request as the engine sees it."""

    prompt_tokens: list[int]
    sampler: Sampler
    emit: Callable[[Event], None] = lambda event: None  # called on the engine thread; must not block
    max_tokens: int = -1  # -1: until the slot's context is full
    stops: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    n_probs: int = 0
    want_probs: bool = False  # report each token's probability (and the n_probs most likely)
    post_sampling_probs: bool = False  # probabilities after the sampler chain instead of the raw softmax
    cache_prompt: bool = True
    id_slot: int = -1
    n_keep: int = 0  # prompt tokens after the BOS a context shift keeps (-1: all)
    n_discard: int = 0  # tokens a context shift drops (0: half of what is not kept)
    lora: list[float] | None = None  # each LoRA adapter's scale; None: the server's (POST /lora-adapters)
    #: the prompt cut into text and image chunks when it holds images (prompt_tokens are then
    #: mtmd.prompt_ids of them: an image's positions hold an id derived from its pixels)
    chunks: list[mtmd.Chunk] | None = None
    cancelled: bool = False  # set by the handler's thread when the client is gone


@dataclass(eq=False)
class SlotAction:
    """``POST /slots/{id}?action=save|restore|erase``: run on the engine thread once the slot is
    idle (llama-server defers it while the slot works); ``done`` gets llama-server's reply."""

    action: str
    id_slot: int
    path: Path | None = None
    done: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass(eq=False)
class Run:
    """A job in progress on a slot: its generation (the engine's one per-sequence loop)."""

    job: Job
    generation: Generation
    n_reused: int
    pending: int | None = None  # the last sampled token, to decode next step
    truncated: bool = False
    draft_n: int = 0  # tokens speculative decoding proposed for this reply
    draft_n_accepted: int = 0  # of those, the tokens the sampler kept
    images: dict[int, mtmd.ImageChunk] = field(default_factory=dict)  # the prompt's images by their first position

    def text_end(self, position: int) -> int:
        """Where the prompt's text from ``position`` on ends: at its next image, or its end."""
        return min((start for start in self.images if start >= position), default=len(self.job.prompt_tokens))


@dataclass(eq=False)
class Step:
    """A batch decoded for some slots, its logits maybe still being computed (a pipelined context)."""

    logits: PendingLogits
    fed: list[tuple[Slot, list[int]]]  # each slot's tokens in the batch, in batch order
    sampled: list[tuple[Slot, list[int]]]  # the slots sampled from its rows, with their drafted tokens
    n_busy: int  # busy slots that took part


_STOP = object()
_WAKE = object()
_SHUT_DOWN = object()
_SHUTTING_DOWN = "the server is shutting down"


class Batcher:
    """Runs jobs on ``n_parallel`` slots sharing the context of ``llm``: slot i is sequence i and
    owns its own range of about n_ctx / n_parallel cells (llama.cpp's per-sequence KV cache)."""

    def __init__(self, llm: LLM, n_parallel: int, *, context_shift: bool = False,
                 lora_init_without_apply: bool = False) -> None:
        if n_parallel < 1:
            raise LLMCoreError(f"--parallel must be at least 1, got {n_parallel}")
        n_ctx_slot = llm.n_ctx // n_parallel
        if n_ctx_slot < 8:
            raise LLMCoreError(f"-c {llm.n_ctx} leaves {n_ctx_slot} tokens per slot with -np {n_parallel}; raise -c")
        self.llm = llm
        self.context = llm.context
        self.context_shift = context_shift
        # an embedding context generates nothing: its sequences are the inputs of one request at a time
        n_ctx_slot = self.context.cells.partition(n_parallel) if llm.pooling is None else n_ctx_slot
        #: the LoRA scales of a request that names none (``GET/POST /lora-adapters``); with
        #: ``lora_init_without_apply`` the adapters start at 0 until a POST applies them
        self.lora_scales = [0.0] * len(llm.lora_adapters) if lora_init_without_apply else list(llm.lora_scales)
        self.slots = [Slot(i, n_ctx_slot, lora=list(self.lora_scales)) for i in range(n_parallel)]
        self.metrics = Metrics()
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Job] = deque()
        self._actions: list[SlotAction] = []
        # steps in flight, oldest first: with a context whose stages pipeline, a step takes a share of
        # the slots and the next one others while it passes the stages
        self._in_flight: deque[Step] = deque()
        self._thread: threading.Thread | None = None
        self._shutting_down = False

    @property
    def n_ctx_slot(self) -> int:
        return self.slots[0].n_ctx

    @property
    def n_processing(self) -> int:
        return sum(s.busy for s in self.slots)

    @property
    def n_deferred(self) -> int:
        return len(self._waiting) + self._inbox.qsize()

    # -- the handlers' side -------------------------------------------------------------------

    def start(self) -> None:
        self.llm.reset()  # the engine now owns every sequence of the cache
        self.llm.tokenize("warm up")  # builds the tokenizer's encoder before handlers use it from threads
        self._thread = threading.Thread(target=self._loop, name="llmcore-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def shut_down(self) -> None:
        """End every job at the next step, and each later one at once: a running job with the text it
        has (``DoneEvent.interrupted``), a waiting one with a 503. Safe to call from a signal handler."""
        self._shutting_down = True
        self._inbox.put(_SHUT_DOWN)  # SimpleQueue.put is reentrant

    def submit(self, job: Job | SlotAction) -> None:
        self._inbox.put(job)

    def cancel(self, job: Job) -> None:
        """Stop ``job`` and free its slot at the start of the next step (its events are dropped)."""
        job.cancelled = True
        self._inbox.put(_WAKE)

    def health(self) -> dict[str, Any]:
        """What ``/health`` reports: one engine in this process serves while the server runs."""
        return {"status": "ok"}

    def metrics_state(self) -> tuple[Metrics, dict[str, int]]:
        """The counters and the gauges ``/metrics`` shows (``Metrics.render``'s arguments)."""
        return self.metrics, {"requests_processing": self.n_processing, "requests_deferred": self.n_deferred,
                              "kv_cache_tokens": self.context.cells.n_used, "kv_cache_size": self.llm.n_ctx}

    def render_metrics(self) -> str:
        """``/metrics``: the Prometheus text."""
        metrics, gauges = self.metrics_state()
        return metrics.render(**gauges)

    def slot_states(self) -> list[dict[str, Any]]:
        """What ``/slots`` reports: each slot's size, whether it is busy and what its cache holds."""
        states = []
        for slot in self.slots:
            run = slot.run
            states.append({
                "id": slot.id, "n_ctx": slot.n_ctx, "is_processing": run is not None,
                "n_cached": len(slot.cached), "n_decoded": run.generation.n_generated if run else 0,
                "n_prompt_tokens": len(run.job.prompt_tokens) if run else 0,
            })
        return states

    # -- the engine thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                # wait for the inbox only when there is nothing to do: jobs left waiting when the last
                # busy slots finished together are assigned now, not when the next request comes
                idle = not any(s.busy for s in self.slots) and not self._actions and not self._waiting
                if not self._collect(block=idle):
                    return
                self._drop_cancelled()
                self._run_actions()
                self._assign()
                if self._ready() and len(self._in_flight) < self.context.pipeline_depth:
                    self._step()
                elif self._in_flight:
                    self._land(self._in_flight.popleft())
            except Exception as error:  # a bug: fail what is running, but keep serving
                log.exception("engine step failed")
                self.context.synchronize()
                self._in_flight.clear()
                for slot in self.slots:
                    if slot.busy:
                        self._fail(slot, error, drop_cache=True)

    def _collect(self, block: bool) -> bool:
        """Move new jobs from the inbox to the waiting line; False once the server stops."""
        try:
            item = self._inbox.get(block=block)
        except queue.Empty:
            return True
        while True:
            if item is _STOP:
                return False
            if isinstance(item, Job):
                self._waiting.append(item)
            elif isinstance(item, SlotAction):
                self._actions.append(item)
            if self._shutting_down:
                self._end_all()
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return True

    def _end_all(self) -> None:
        while self._in_flight:
            self._land(self._in_flight.popleft())
        for job in self._waiting:
            _emit(job, ErrorEvent(APIError(503, _SHUTTING_DOWN)))
        self._waiting.clear()
        for action in self._actions:
            action.done.set_exception(APIError(503, _SHUTTING_DOWN))
        self._actions.clear()
        for slot in self.slots:
            if slot.busy:
                self._finish(slot, interrupted=True)

    def _drop_cancelled(self) -> None:
        if any(job.cancelled for job in self._waiting):
            self._waiting = deque(job for job in self._waiting if not job.cancelled)
        for slot in self._ready():  # a slot in flight is released when its step lands
            if slot.run.job.cancelled:
                slot.release()

    def _run_actions(self) -> None:
        for action in [a for a in self._actions if not self.slots[a.id_slot].busy]:
            self._actions.remove(action)
            try:
                action.done.set_result(self._slot_action(self.slots[action.id_slot], action))
            except Exception as error:  # noqa: BLE001 - the client gets it (a bad file is a 400)
                action.done.set_exception(error)

    def _slot_action(self, slot: Slot, action: SlotAction) -> dict[str, Any]:
        """llama-server's slot save, restore and erase, and their replies: a slot's tokens and its
        cells' keys and values in a state file (engine.state) naming the model, which another
        model refuses."""
        started = time.perf_counter()
        if action.action == "erase":
            n_erased = len(slot.cached)
            slot.keep_prefix(self.context, 0)
            return {"id_slot": slot.id, "n_erased": n_erased}
        model = self.llm.model
        if action.action == "save":
            if any(token < 0 for token in slot.cached):  # a state file holds token ids only
                raise APIError(501, "saving a slot that holds images is not supported")
            state.save_state(action.path, self.context, model, slot.cached, seq_id=slot.id)
            return {"id_slot": slot.id, "filename": action.path.name, "n_saved": len(slot.cached),
                    "n_written": action.path.stat().st_size,
                    "timings": {"save_ms": 1e3 * (time.perf_counter() - started)}}
        try:
            slot.cached = state.load_state(action.path, self.context, model, seq_id=slot.id)
        except LLMCoreError as error:
            slot.keep_prefix(self.context, 0)  # as llama-server, a failed restore leaves the slot empty
            raise APIError(400, f"Unable to restore slot: {error}") from None
        return {"id_slot": slot.id, "filename": action.path.name, "n_restored": len(slot.cached),
                "n_read": action.path.stat().st_size,
                "timings": {"restore_ms": 1e3 * (time.perf_counter() - started)}}

    def _assign(self) -> None:
        still_waiting: deque[Job] = deque()
        for job in self._waiting:
            slot = choose_slot(self.slots, job)
            if slot is None:
                still_waiting.append(job)
            else:
                self._start(slot, job)
        self._waiting = still_waiting

    def _start(self, slot: Slot, job: Job) -> None:
        if job.lora is None:
            job.lora = list(self.lora_scales)
        if job.lora != slot.lora:  # keys and values made with other adapters: llama-server clears the slot
            slot.keep_prefix(self.context, 0)
            slot.lora = list(job.lora)
        n_keep = slot.reusable_prefix(job.prompt_tokens) if job.cache_prompt else 0
        if job.chunks:  # an image is decoded whole: the cache is kept up to the first one that differs
            n_keep = mtmd.cached_prefix(job.chunks, n_keep)
        n_keep = slot.keep_prefix(self.context, n_keep)
        generation = Generation(self.llm.tokenizer, job.sampler, job.prompt_tokens, n_ctx=slot.n_ctx,
                                max_tokens=job.max_tokens, stops=job.stops, ignore_eos=job.ignore_eos,
                                context_shift=self.context_shift)
        slot.run = Run(job, generation, n_keep, images=dict(mtmd.image_spans(job.chunks or [])))

    def _ready(self) -> list[Slot]:
        """The busy slots whose last step has landed."""
        flying = {id(slot) for step in self._in_flight for slot, _ in step.fed}
        return [s for s in self.slots if s.busy and id(s) not in flying]

    def _step(self) -> None:
        """Decode one batch: every generating slot's pending token, then prompt chunks within n_batch.
        One batch runs with one set of LoRA scales: those of the slot that started first; slots
        with others wait for a later step (as llama-server batches only slots of equal adapters).
        Where the context's stages pipeline (layers on other machines), the batch takes 1 / depth
        of the busy slots and stays in flight while the next steps take the others."""
        busy = self._ready()
        lora = min(busy, key=lambda s: s.run.generation.t_start).lora
        busy = [s for s in busy if s.lora == lora]
        depth = self.context.pipeline_depth
        if depth > 1:
            busy = busy[:-(-sum(s.busy for s in self.slots) // depth)]
        self.context.set_lora_scales(lora)
        tokens: list[int] = []
        positions: list[int] = []
        seq_ids: list[int] = []
        wants: list[bool] = []
        fed: list[tuple[Slot, list[int]]] = []
        # in batch order, which is the order of the logits rows: each slot sampled with the tokens
        # drafted after its pending one (a row each)
        sampled: list[tuple[Slot, list[int]]] = []
        generating = [s for s in busy if s.run.pending is not None]
        for slot in generating:
            if len(slot.cached) + 1 >= slot.n_ctx:  # only with context shift, else the generation stopped
                self._shift(slot)
            drafted = self._draft(slot, self.context.n_batch - len(tokens) - (len(generating) - len(sampled)))
            n = 1 + len(drafted)
            tokens += [slot.run.pending, *drafted]
            positions += range(len(slot.cached), len(slot.cached) + n)
            seq_ids += [slot.id] * n
            wants += [True] * n
            fed.append((slot, [slot.run.pending]))
            sampled.append((slot, drafted))
        budget = self.context.n_batch - len(tokens)
        for slot in sorted((s for s in busy if s.run.pending is None), key=lambda s: s.run.generation.t_start):
            if slot.run.images:
                self._decode_images(slot)
                if slot.run is None or slot.run.pending is not None:  # failed, or its prompt ended with an image
                    continue
            prompt = slot.run.job.prompt_tokens
            chunk = prompt[len(slot.cached):min(slot.run.text_end(len(slot.cached)), len(slot.cached) + max(budget, 0))]
            if not chunk:
                continue
            budget -= len(chunk)
            last = len(slot.cached) + len(chunk) == len(prompt)
            tokens += chunk
            positions += range(len(slot.cached), len(slot.cached) + len(chunk))
            seq_ids += [slot.id] * len(chunk)
            wants += [False] * (len(chunk) - 1) + [last]
            fed.append((slot, chunk))
            if last:
                sampled.append((slot, []))
        if not tokens:  # the prompts read this step were images
            return
        batch = Batch(np.array(tokens), np.array(positions), np.array(seq_ids), np.array(wants))
        try:
            step = Step(self.context.decode_async(batch), fed, sampled, len(busy))
        except Exception as error:  # noqa: BLE001 - logged by _fail; the cache of every slot in this batch is now in doubt
            for slot, _ in fed:
                self._fail(slot, error, drop_cache=True)
            return
        if depth > 1:
            self._in_flight.append(step)
        else:
            self._land(step)

    def _land(self, step: Step) -> None:
        """Take a step's logits: its slots' tokens join their caches, and the slots sample."""
        try:
            logits = step.logits.result()
        except Exception as error:  # noqa: BLE001 - logged by _fail; the cache of every slot in this batch is now in doubt
            for slot, _ in step.fed:
                self._fail(slot, error, drop_cache=True)
            return
        self.metrics.add_step(step.n_busy)
        for slot, chunk in step.fed:
            slot.cached += chunk
            slot.run.pending = None
        row = 0
        for slot, drafted in step.sampled:
            rows = logits[row:row + 1 + len(drafted)]
            row += len(rows)
            if slot.run.job.cancelled:
                slot.release()
            else:
                self._sample_draft(slot, rows, drafted)
            if drafted:  # the cells of the drafted tokens not kept
                self.context.seq_remove(slot.id, len(slot.cached))

    def _draft(self, slot: Slot, room: int) -> list[int]:
        """The tokens speculative decoding proposes after the slot's pending one: none without a
        drafter, and no more than the batch (``room`` tokens) and the slot's context can take."""
        speculation = self.llm.speculation
        if speculation is None:
            return []
        room = min(room, slot.n_ctx - len(slot.cached)) - 1
        drafted = speculation.draft(slot.cached, slot.run.pending, room)
        slot.run.draft_n += len(drafted)
        return drafted

    def _sample_draft(self, slot: Slot, rows: np.ndarray, drafted: list[int]) -> None:
        """Sample row i (the logits after the pending token and drafted[:i]) while the tokens
        sampled are the drafted ones: those are decoded already and join the slot's cache."""
        for i, logits in enumerate(rows):
            self._sample(slot, logits)
            run = slot.run
            if run is None or i == len(drafted) or run.pending != drafted[i]:
                return
            slot.cached.append(run.pending)
            run.pending = None
            run.draft_n_accepted += 1

    def _decode_images(self, slot: Slot) -> None:
        """Decode the images that come next in the slot's prompt, each encoded and decoded as a batch
        of its own embeddings for the slot's sequence (as llama-server's process_mtmd_chunk, before
        the slot's text joins the shared batch); sample at once when an image ends the prompt."""
        run = slot.run
        prompt = run.job.prompt_tokens
        while (image := run.images.get(len(slot.cached))) is not None:
            start = len(slot.cached)
            last = start + image.n_tokens == len(prompt)
            try:
                logits = mtmd.decode_image(self.context, self.llm.projector, image, start, slot.id, last)
            except Exception as error:  # noqa: BLE001 - logged by _fail; this slot's cache is now in doubt
                self._fail(slot, error, drop_cache=True)
                return
            slot.cached += prompt[start:start + image.n_tokens]
            if last:
                self._sample(slot, logits[-1])
                return

    def _shift(self, slot: Slot) -> None:
        job = slot.run.job
        keep, discard = context_shift_span(len(slot.cached), len(job.prompt_tokens), slot.n_ctx, n_keep=job.n_keep,
                                           n_discard=job.n_discard, add_bos=self.llm.tokenizer.add_bos)
        self.context.seq_shift_out(slot.id, keep, discard)
        del slot.cached[keep:keep + discard]
        slot.run.truncated = True

    def _sample(self, slot: Slot, logits: np.ndarray) -> None:
        run = slot.run
        job = run.job
        try:
            step = run.generation.step(logits)
            probs = self._probs(job, logits, step.token) if job.want_probs else None
        except Exception as error:  # noqa: BLE001 - logged by _fail; this request's parameters: fail it alone
            self._fail(slot, error)
            return
        if step.stop == "eos":
            self._finish(slot)
            return
        _emit(job, TokenEvent(step.token, step.text, probs))
        if step.stop:
            self._finish(slot)
        else:
            run.pending = step.token

    @staticmethod
    def _probs(job: Job, logits: np.ndarray, token: int) -> CandidateProbs:
        if job.post_sampling_probs:
            return job.sampler.last_candidates
        return pre_sampling_probs(logits, token, job.n_probs)

    def _finish(self, slot: Slot, interrupted: bool = False) -> None:
        run = slot.run
        generation = run.generation
        tail = generation.finish()
        prompt_n = len(run.job.prompt_tokens) - run.n_reused
        timings = Timings(prompt_n=prompt_n, prompt_ms=generation.prompt_ms,
                          predicted_n=generation.n_generated, predicted_ms=generation.predicted_ms,
                          draft_n=run.draft_n, draft_n_accepted=run.draft_n_accepted)
        self.metrics.add_run(prompt_n, timings.prompt_ms, generation.n_generated, timings.predicted_ms)
        _emit(run.job, DoneEvent(
            text=tail, finish_reason=generation.finish_reason, stop_type=generation.stop or "limit",
            prompt_tokens=len(run.job.prompt_tokens), completion_tokens=generation.n_generated,
            tokens_cached=run.n_reused, timings=timings, id_slot=slot.id, interrupted=interrupted,
            truncated=run.truncated))
        slot.release()

    def _fail(self, slot: Slot, error: Exception, drop_cache: bool = False) -> None:
        self.metrics.requests_failed_total += 1
        _emit(slot.run.job, ErrorEvent(api_error_from(error)))
        if drop_cache:
            slot.keep_prefix(self.context, 0)
        slot.release()


def _emit(job: Job, event: Event) -> None:
    try:
        job.emit(event)
    except RuntimeError:  # the handler's event loop is closed: nobody is listening any more
        job.cancelled = True


class JobStream:
    """The HTTP handler's end of a job: the engine's events, delivered on the handler's event loop.

    Create it inside the handler's loop, :meth:`start` it, read events with :meth:`next`, and
    always :meth:`close` it (a job closed before its end is cancelled, freeing its slot).
    """

    def __init__(self, engine: Batcher, job: Job) -> None:
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        job.emit = lambda event: loop.call_soon_threadsafe(self._queue.put_nowait, event)
        self.job = job
        self._engine = engine
        self._getter: asyncio.Future[Event] | None = None
        self.ended = False

    def start(self) -> None:
        self._engine.submit(self.job)

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None if none came within ``timeout`` seconds (call again to keep waiting)."""
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({self._getter}, timeout=timeout)
        if not done:
            return None
        event = self._getter.result()
        self._getter = None
        self.ended = not isinstance(event, TokenEvent)
        return event

    def close(self) -> None:
        if self._getter is not None:
            self._getter.cancel()
            self._getter = None
        if not self.ended:
            self._engine.cancel(self.job)
            self.ended = True
