"""``llmcore serve``: the OpenAI-compatible HTTP server (llama-server), with a web chat page at ``/``."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from llmcore.cli._common import (
    _positive_int,
    add_context_shift_args,
    add_mmproj_arg,
    add_model_args,
    add_pooling_arg,
    add_speculative_args,
    llm_options,
    load_llm,
)
from llmcore.cli.sampling_args import add_sampling_args, sampling_from_args
from llmcore.errors import LLMCoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve the model over an OpenAI-compatible HTTP API (llama-server)",
                              description="Serve a model over an OpenAI-compatible HTTP API, with continuous "
                                          "batching of parallel requests and a web chat page at /. "
                                          "The sampling flags set the defaults of requests, which may "
                                          "override each one.")
    add_model_args(p)
    add_mmproj_arg(p)
    add_speculative_args(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    g.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one (default: 8080)")
    g.add_argument("-np", "--parallel", type=_positive_int, default=1, metavar="N",
                   help="slots: requests decoded together; each gets ctx-size / N tokens (default: 1)")
    g.add_argument("--replicas", type=_positive_int, default=None, metavar="N",
                   help="run N engines, each with -np slots, as Ray actors behind this one endpoint: a request goes "
                        "to the replica holding its prompt's prefix, else the least loaded; --ray names the cluster "
                        "(default: a private local one). Needs the ray plugin (docs/ray.md)")
    g.add_argument("--api-key", default=os.environ.get("LLMCORE_API_KEY"), metavar="KEY",
                   help="require 'Authorization: Bearer KEY' on every route but /health, /models and the chat page "
                        "(default: $LLMCORE_API_KEY, else none)")
    g.add_argument("-to", "--timeout", type=float, default=600.0, metavar="N",
                   help="end a request that gets no new token for N seconds (default: 600)")
    g.add_argument("-a", "--alias", default=None, metavar="NAME", help="model name reported by the API")
    g.add_argument("--max-body", type=_positive_int, default=32 * 1024 * 1024, metavar="BYTES",
                   help="largest request body, whatever its transfer encoding; a larger one gets 413 "
                        "(default: 33554432, 32 MiB)")
    g.add_argument("--body-timeout", type=_positive_seconds, default=30.0, metavar="N",
                   help="a request's body must arrive within N seconds of its headers, else 408; a connection "
                        "whose next request's headers take longer is closed (default: 30)")
    g.add_argument("--metrics", action="store_true",
                   help="serve Prometheus metrics at /metrics (default: off, /metrics answers 501)")
    add_context_shift_args(g)
    g.add_argument("--slot-save-path", default=None, metavar="PATH",
                   help="folder where POST /slots/{id}?action=save|restore keeps slots' states (default: none, "
                        "the route answers 501)")
    g.add_argument("--media-path", default=None, metavar="PATH",
                   help="folder whose files chat messages may name as image_url file://NAME (NAME relative to it; "
                        "default: none, file:// URLs are refused and images come as data URLs)")
    g.add_argument("--lora-init-without-apply", action="store_true",
                   help="load LoRA adapters without applying them (apply later via POST /lora-adapters)")
    g.add_argument("--embedding", "--embeddings", action="store_true",
                   help="serve embeddings (/v1/embeddings, /embedding) instead of completions")
    g.add_argument("--reranking", "--rerank", action="store_true",
                   help="serve a reranker at /rerank and /v1/rerank (--embedding with --pooling rank)")
    add_pooling_arg(g)
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from llmcore.server import create_app
    except ImportError as error:
        raise LLMCoreError(f"llmcore serve needs {error.name}: install the server extra from llmcore's clone "
                           "(pip install -e '.[server]'; the llmcore on PyPI is another project)") from None
    if args.reranking:
        args.embedding, args.pooling = True, "rank"
    if args.slot_save_path:  # created up front, as llama-server does
        try:
            Path(args.slot_save_path).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LLMCoreError(f"--slot-save-path {args.slot_save_path}: {error.strerror}") from None
    if args.media_path and not Path(args.media_path).is_dir():
        raise LLMCoreError(f"--media-path {args.media_path}: not a directory")
    listener = _listen(args.host, args.port)
    defaults = sampling_from_args(args)
    seed = defaults.pop("seed", None)
    seed = None if seed is None or seed < 0 else seed
    cluster = args.ray
    if args.replicas:
        _check_replica_flags(args)
        args.ray = None  # --ray names where the replicas run; this process only tokenizes
    llm = load_llm(args, seed=seed)
    engine = _replica_pool(args, llm, seed, cluster) if args.replicas else None
    app = create_app(llm, n_parallel=args.parallel * (args.replicas or 1), engine=engine, api_key=args.api_key,
                     timeout=args.timeout, model_name=args.alias,
                     defaults=defaults, max_body_bytes=args.max_body, body_timeout=args.body_timeout,
                     metrics=args.metrics, context_shift=args.context_shift, n_keep=args.keep,
                     lora_init_without_apply=args.lora_init_without_apply, slot_save_path=args.slot_save_path,
                     media_path=args.media_path)
    host, port = listener.getsockname()[:2]
    n_ctx_slot = app.state.batcher.n_ctx_slot
    replicas = f"{args.replicas} replica(s) of " if args.replicas else ""
    print(f"llmcore: {replicas}{args.parallel} slot(s) of {n_ctx_slot} tokens; chat page and API at "
          f"http://{_url_host(host)}:{port}/", file=sys.stderr, flush=True)
    # idle keep-alive connections close after 5 s; requests in flight get 5 s to end after a signal
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=5, timeout_graceful_shutdown=5,
                            http=_headers_deadline_protocol(args.body_timeout))
    server = _graceful_server()(config, on_exit=app.state.batcher.shut_down)
    # uvicorn re-raises the signal that stopped it once it has shut down; a requested stop is a clean exit
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    server.run(sockets=[listener])
    return 0


def _check_replica_flags(args: argparse.Namespace) -> None:
    for flag, given in (("--embedding", args.embedding), ("--slot-save-path", args.slot_save_path)):
        if given:
            raise LLMCoreError(f"--replicas does not support {flag} yet")


def _replica_pool(args: argparse.Namespace, llm: object, seed: int | None, cluster: str | None) -> object:
    """``--replicas``: the engines as Ray actors (plugins/ray's llmcore_ray_serve), each loading the
    model this process loaded, with the same flags."""
    try:
        from llmcore_ray_serve.pool import ReplicaPool
    except ImportError:
        raise LLMCoreError("--replicas needs the ray plugin: pip install -e '.[ray]' -e plugins/ray "
                           "(from llmcore's clone)") from None
    options = {**llm_options(args, seed=seed), "model": str(llm.model_path)}
    lora_scales = [0.0] * len(llm.lora_adapters) if args.lora_init_without_apply else list(llm.lora_scales)
    return ReplicaPool(options, args.replicas, args.parallel, address=cluster, lora_scales=lora_scales,
                       batcher_options={"context_shift": args.context_shift,
                                        "lora_init_without_apply": args.lora_init_without_apply})


def _exit_cleanly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _graceful_server() -> type:
    """uvicorn's Server, which on SIGTERM/SIGINT first has every request end cleanly (``on_exit``:
    streams get their final chunk and ``[DONE]``, waiting clients a 503), so that the graceful
    shutdown finishes at once instead of cancelling handlers at its deadline."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        def __init__(self, config: object, on_exit: Callable[[], None]) -> None:
            super().__init__(config)
            self._on_exit = on_exit

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self._on_exit()
            super().handle_exit(sig, frame)

    return GracefulServer


def _headers_deadline_protocol(seconds: float) -> type:
    """uvicorn's HTTP/1.1 protocol, which also closes a connection whose request headers have not all
    arrived ``seconds`` after it opened or after its last response (uvicorn waits for them forever;
    the body's own deadline is ``BodyGuard``'s)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadersDeadlineProtocol(H11Protocol):
        def connection_made(self, transport: object) -> None:
            super().connection_made(transport)
            self._arm_headers_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_headers_deadline()

        def _arm_headers_deadline(self) -> None:
            cycle = self.cycle  # a request whose headers are complete starts a new cycle
            self.loop.call_later(seconds, lambda: self.cycle is cycle and self.transport.close())

    return HeadersDeadlineProtocol


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the model loads so that a busy port fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise LLMCoreError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
