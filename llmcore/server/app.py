"""The HTTP routes of ``llmcore serve``: OpenAI's API, llama-server's own endpoints and the chat page.

Every generating route turns its body into a :class:`~llmcore.server.batcher.Job`, hands it to the
batcher, and answers with the whole result or a server-sent-event stream. A client that goes away
(closed stream or connection) cancels its job at once, freeing the slot for the next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles

import llmcore
from llmcore.api.llm import LLM
from llmcore.engine.infill import missing_fim_tokens
from llmcore.engine.mtmd import MEDIA_MARKER
from llmcore.server.batcher import DoneEvent, Batcher, ErrorEvent, Event, Job, JobStream, SlotAction
from llmcore.server.embeddings import add_embedding_routes
from llmcore.server.errors import APIError, error_body, install_error_handlers
from llmcore.server.jobs import JobFactory
from llmcore.server.middleware import ApiKeyGuard, BodyGuard
from llmcore.server.responses import (
    ChatResponder,
    CompletionResponder,
    NativeResponder,
    Responder,
)
from llmcore.server.schemas import (
    ApplyTemplateRequest,
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    InfillRequest,
    LoraScale,
    NativeCompletionRequest,
    TokenizeRequest,
)

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 32 * 1024 * 1024
BODY_TIMEOUT_S = 30.0
# /tokenize and /detokenize answer in a worker thread; these bound the work (and the reply) of one call
MAX_TOKENIZE_CHARS = 4 * 1024 * 1024
MAX_DETOKENIZE_IDS = 1024 * 1024
_POLL_S = 0.25  # how often a waiting handler checks whether its client is still there
_CLIENT_GONE = 499  # nginx's "client closed request": logged, never seen by the client
#: paths that need no API key, as in llama-server (and the chat page, which asks for the key)
OPEN_PATHS = ("/", "/health", "/v1/health", "/models", "/v1/models", "/favicon.ico")

log = logging.getLogger("llmcore.server")


def create_app(llm: LLM, *, n_parallel: int = 1, api_key: str | None = None, timeout: float = 600.0,
               model_name: str | None = None, defaults: dict[str, Any] | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, body_timeout: float = BODY_TIMEOUT_S,
               metrics: bool = False, context_shift: bool = False, n_keep: int = 0,
               lora_init_without_apply: bool = False, slot_save_path: str | Path | None = None,
               media_path: str | Path | None = None, engine: Batcher | None = None) -> FastAPI:
    """The server's ASGI app for ``llm`` with ``n_parallel`` slots; the batcher's thread runs while the
    app's lifespan does. ``timeout`` (seconds) ends a request that gets no new token for that long.
    ``defaults`` are the ``LLM.sampler`` keywords a request starts from (sampling fields, ``grammar``
    or ``json_schema``); a request's own fields override them. A request body may have at most
    ``max_body_bytes`` and must arrive within ``body_timeout`` seconds; ``/metrics`` answers only
    with ``metrics`` (as llama-server's ``--metrics``). ``app.state.batcher.shut_down()`` ends every
    request cleanly (called on SIGTERM/SIGINT by ``llmcore serve``). The LoRA adapters ``llm`` was
    loaded with apply at its scales, or at 0 with ``lora_init_without_apply`` until
    ``POST /lora-adapters`` sets them. ``slot_save_path`` is the folder of ``POST /slots/{id}``'s
    files (llama-server's ``--slot-save-path``; None: that route answers 501).

    With ``llm``'s multimodal projector, chat messages may hold ``image_url`` parts: data URLs or
    base64, and ``file://NAME`` for a file inside ``media_path`` (llama-server's ``--media-path``;
    None: refused). Context shift is then off, as in llama-server (an image cannot be cut in half).

    ``engine`` replaces the batcher the app would make over ``llm``: an object with its interface
    (``llmcore serve --replicas``' pool of engines; ``llm`` then only tokenizes and renders templates,
    and ``n_parallel`` counts the slots of all its engines)."""
    if llm.projector is not None and context_shift:
        log.warning("context shift is not supported with a multimodal projector; it is disabled")
        context_shift = False
    batcher = engine or Batcher(llm, n_parallel, context_shift=context_shift,
                                lora_init_without_apply=lora_init_without_apply)
    jobs = JobFactory(llm, batcher.n_ctx_slot, n_parallel, defaults or {}, n_keep=n_keep,
                      media_path=None if media_path is None else Path(media_path))
    model = model_name or llm.model_path.name
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(title="llmcore", version=llmcore.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.state.batcher = batcher

    async def run_job(request: Request, job: Job, responder: Responder, stream: bool) -> Response:
        if llm.pooling is not None:
            raise APIError(501, "This server does not support completions. Start it without `--embeddings`")
        handle = JobStream(batcher, job)
        handle.start()
        events = _events(handle, request, timeout)
        if not stream:
            try:
                async for event in events:
                    if isinstance(event, ErrorEvent):
                        raise event.error
                    responder.add(event)
            finally:
                handle.close()
            if responder.done is None:
                return Response(status_code=_CLIENT_GONE)
            if responder.done.interrupted:  # a partial reply would pass for a whole one: let the client retry
                raise APIError(503, "the server is shutting down")
            return JSONResponse(responder.result())
        try:
            first = await anext(events, None)
        except BaseException:
            handle.close()
            raise
        if first is None or isinstance(first, ErrorEvent):  # failed before any output: a plain HTTP error
            handle.close()
            if first is None:
                return Response(status_code=_CLIENT_GONE)
            raise first.error
        return StreamingResponse(_sse(handle, events, first, responder), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- generation ---------------------------------------------------------------------------

    @app.post("/v1/completions")
    @app.post("/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        n_top = body.logprobs or 0
        job = await asyncio.to_thread(lambda: jobs.job(body, jobs.text_prompt(body.prompt), max_tokens=body.max_tokens,
                                                       n_probs=n_top, want_probs=body.logprobs is not None))
        responder = CompletionResponder(llm.tokenizer, model, n_top, logprobs=body.logprobs is not None)
        return await run_job(request, job, responder, body.stream)

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        n_top = (body.top_logprobs or 0) if body.logprobs else 0
        limit = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens

        def make_job() -> Job:  # images are decoded and resized here, off the event loop and the engine thread
            tokens, chunks = jobs.chat_prompt(body)
            return jobs.job(body, tokens, max_tokens=limit, n_probs=n_top, want_probs=body.logprobs, chunks=chunks)

        job = await asyncio.to_thread(make_job)
        responder = ChatResponder(llm.tokenizer, model, n_top, logprobs=body.logprobs, tools=body.uses_tools)
        return await run_job(request, job, responder, body.stream)

    @app.post("/completion")
    async def native_completion(body: NativeCompletionRequest, request: Request) -> Response:
        job = await asyncio.to_thread(lambda: jobs.job(body, jobs.text_prompt(body.prompt), max_tokens=body.n_predict,
                                                       n_probs=body.n_probs, want_probs=body.n_probs > 0,
                                                       post_sampling_probs=body.post_sampling_probs))
        responder = NativeResponder(llm.tokenizer, model, body.n_probs, post_sampling=body.post_sampling_probs)
        return await run_job(request, job, responder, body.stream)

    @app.post("/infill")
    async def infill(body: InfillRequest, request: Request) -> Response:
        missing = missing_fim_tokens(llm.tokenizer)
        if missing:
            raise APIError(501, f"Infill is not supported by this model: {missing}")
        job = await asyncio.to_thread(lambda: jobs.job(body, jobs.infill_prompt(body), max_tokens=body.n_predict,
                                                       n_probs=body.n_probs, want_probs=body.n_probs > 0,
                                                       post_sampling_probs=body.post_sampling_probs))
        responder = NativeResponder(llm.tokenizer, model, body.n_probs, post_sampling=body.post_sampling_probs)
        return await run_job(request, job, responder, body.stream)

    add_embedding_routes(app, llm, model)

    # -- tokens and templates -----------------------------------------------------------------

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> Response:
        _check_size(len(body.content), MAX_TOKENIZE_CHARS, "content", "characters")

        def work() -> Response:
            ids = llm.tokenize(body.content, body.add_special, body.parse_special)
            tokens = ([{"id": t, "piece": _piece_json(llm.tokenizer.token_to_piece(t))} for t in ids]
                      if body.with_pieces else ids)
            return Response(_json_object_of_list("tokens", tokens), media_type="application/json")

        return await asyncio.to_thread(work)

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> JSONResponse:
        _check_size(len(body.tokens), MAX_DETOKENIZE_IDS, "tokens", "token ids")
        return await asyncio.to_thread(
            lambda: JSONResponse({"content": llm.detokenize(jobs.check_ids(body.tokens, "tokens"))}))

    @app.post("/apply-template")
    async def apply_template(body: ApplyTemplateRequest) -> dict[str, Any]:
        messages, _ = jobs.with_media_markers(body.message_dicts())
        prompt = await asyncio.to_thread(llm.chat_template.render, messages, add_generation_prompt=True, tools=body.tools)
        return {"prompt": prompt}

    # -- state --------------------------------------------------------------------------------

    @app.get("/health")
    @app.get("/v1/health")
    async def health() -> JSONResponse:
        state = batcher.health()
        return JSONResponse(state, status_code=200 if state["status"] == "ok" else 503)

    @app.get("/v1/models")
    @app.get("/models")
    async def models() -> dict[str, Any]:
        meta = {"n_vocab": llm.n_vocab, "n_ctx_train": llm.model.hparams.n_ctx_train,
                "n_params": llm.model.n_params, "size": llm.model_path.stat().st_size}
        capabilities = ["completion", "multimodal"] if llm.projector is not None else ["completion"]
        return {"models": [{"name": model, "model": model, "type": "model", "capabilities": capabilities}],
                "object": "list",
                "data": [{"id": model, "object": "model", "created": created, "owned_by": "llmcore", "meta": meta}]}

    @app.get("/props")
    async def props() -> dict[str, Any]:
        params = jobs.default_params.model_dump()
        return {
            "default_generation_settings": {"n_ctx": batcher.n_ctx_slot, "params": {**params, "n_predict": -1}},
            "total_slots": n_parallel,
            "backends": [{"layers": layers, "backend": name} for layers, name in llm.placement],
            "model_alias": model,
            "model_path": str(llm.model_path),
            "chat_template": llm.chat_template.source or llm.chat_template.name,
            "bos_token": _token_text(llm, llm.tokenizer.bos_id),
            "eos_token": _token_text(llm, llm.tokenizer.eos_id),
            "modalities": {"vision": llm.projector is not None, "video": False, "audio": False},
            "media_marker": MEDIA_MARKER,
            "build_info": f"llmcore {llmcore.__version__}",
        }

    @app.get("/slots")
    async def slots() -> list[dict[str, Any]]:
        return await asyncio.to_thread(batcher.slot_states)  # a pool of replicas asks each of them

    @app.post("/slots/{id_slot}")
    async def slot_action(id_slot: str, request: Request, action: str = "") -> dict[str, Any]:
        """llama-server's slot save/restore/erase: ``{"filename": NAME}`` in ``--slot-save-path``."""
        if slot_save_path is None:
            raise APIError(501, "This server does not support slots action. Start it with `--slot-save-path`")
        try:
            slot = int(id_slot)
        except ValueError:
            raise APIError(400, "Invalid slot ID", param="id_slot") from None
        if not 0 <= slot < n_parallel:
            raise APIError(400, "Invalid slot ID", param="id_slot")
        if action not in ("save", "restore", "erase"):
            raise APIError(400, "Invalid action", param="action")
        path = None
        if action != "erase":
            body = await request.json() if await request.body() else {}
            filename = body.get("filename") if isinstance(body, dict) else None
            if not _valid_filename(filename):
                raise APIError(400, "Invalid filename", param="filename")
            path = Path(slot_save_path) / filename
        job = SlotAction(action, slot, path)
        batcher.submit(job)
        return await asyncio.wrap_future(job.done)

    @app.get("/lora-adapters")
    async def lora_adapters() -> list[dict[str, Any]]:
        return [{"id": i, "path": str(adapter.path), "scale": scale, "task_name": adapter.task_name,
                 "prompt_prefix": adapter.prompt_prefix}
                for i, (adapter, scale) in enumerate(zip(llm.lora_adapters, batcher.lora_scales))]

    @app.post("/lora-adapters")
    async def set_lora_adapters(body: list[LoraScale]) -> dict[str, bool]:
        """llama-server's: the scales of requests that name none from now on (adapters not listed: 0)."""
        batcher.lora_scales = jobs.lora_scales(body, "body")
        return {"success": True}

    @app.get("/metrics")
    async def prometheus_metrics() -> PlainTextResponse:
        if not metrics:
            raise APIError(501, "This server does not support metrics endpoint. Start it with `--metrics`")
        text = await asyncio.to_thread(batcher.render_metrics)  # a pool of replicas asks each of them
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    # -- the chat page ------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, timeout=body_timeout)
    if api_key:
        app.add_middleware(ApiKeyGuard, api_key=api_key, open_paths=OPEN_PATHS, open_prefixes=("/static/",))
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    return app


async def _events(handle: JobStream, request: Request, timeout: float) -> AsyncIterator[Event]:
    """The job's events up to its end; stops early if the client disconnects (checked every
    ``_POLL_S`` seconds, also while tokens flow), and ends with a 504 error if ``timeout``
    seconds pass without an event."""
    idle = 0.0
    checked = time.monotonic()
    while not handle.ended:
        event = await handle.next(_POLL_S)
        if time.monotonic() - checked >= _POLL_S:
            checked = time.monotonic()
            if await request.is_disconnected():
                return
        if event is not None:
            idle = 0.0
            yield event
        else:
            idle += _POLL_S
            if idle >= timeout:
                yield ErrorEvent(APIError(504, f"no new token for {timeout:g} s (--timeout)"))
                return


async def _sse(handle: JobStream, events: AsyncIterator[Event], first: Event, responder: Responder) -> AsyncIterator[str]:
    """Server-sent events: one ``data:`` line per chunk, then the stream's end marker."""
    try:
        for chunk in responder.stream_start():
            yield _data(chunk)
        event: Event | None = first
        while event is not None:
            if isinstance(event, ErrorEvent):
                yield _data(error_body(event.error.status, event.error.message, type=event.error.type))
                return
            for chunk in responder.stream(event):
                yield _data(chunk)
            if isinstance(event, DoneEvent):
                if responder.done_marker:
                    yield f"data: {responder.done_marker}\n\n"
                return
            event = await anext(events, None)
    finally:
        handle.close()


def _data(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _json_object_of_list(key: str, items: list[Any]) -> bytes:
    """``{key: items}`` as JSON, rendered in slices: one json.dumps of a million items would hold the
    GIL, and so stall the event loop, for the whole of it."""
    step = 4096
    slices = (json.dumps(items[i:i + step], ensure_ascii=False, separators=(",", ":"))[1:-1]
              for i in range(0, len(items), step))
    return f'{{"{key}":[{",".join(slices)}]}}'.encode()


def _check_size(size: int, limit: int, param: str, unit: str) -> None:
    if size > limit:
        raise APIError(413, f"field '{param}' has {size} {unit}; at most {limit} are allowed in one request",
                       param=param)


def _valid_filename(name: object) -> bool:
    """A plain file name inside the slot folder (llama.cpp's fs_validate_filename, in short): no
    separators, no '.' or '..', no control characters, at most 255 bytes."""
    return (isinstance(name, str) and 0 < len(name.encode()) <= 255 and name not in (".", "..")
            and not any(c in name for c in "/\\:") and all(ord(c) >= 32 for c in name) and not name.startswith(" "))


def _piece_json(piece: bytes) -> str | list[int]:
    """A token's text, or its bytes when they are not valid UTF-8 on their own (as llama-server)."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return list(piece)


def _token_text(llm: LLM, token: int | None) -> str:
    return "" if token is None else llm.tokenizer.token_to_piece(token).decode("utf-8", "replace")
