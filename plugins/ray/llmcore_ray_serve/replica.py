"""One replica: a whole engine (an ``LLM`` and the server's continuous ``Batcher`` over its slots)
in a Ray actor. The pool sends it jobs; :meth:`Replica.stream` yields each job's events as the
batcher emits them. Plain Python, no Ray: the pool wraps it in ``ray.remote``."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmcore.api.llm import LLM
from llmcore.server.batcher import Batcher, ErrorEvent, Event, Job, TokenEvent
from llmcore.server.metrics import Metrics

_CANCELLED = object()


@dataclass(frozen=True)
class RemoteError:
    """An ``ErrorEvent``'s error as it travels (``APIError`` does not pickle: its constructor takes
    the status first)."""

    status: int
    message: str
    param: str | None
    type: str


class Replica:
    """``LLM(**options)`` with ``n_parallel`` slots, batching every job it is sent."""

    def __init__(self, options: dict[str, Any], n_parallel: int, batcher_options: dict[str, Any]) -> None:
        self.llm = LLM(**options)
        self.batcher = Batcher(self.llm, n_parallel, **batcher_options)
        self.batcher.start()
        self._jobs: dict[int, tuple[Job, queue.SimpleQueue]] = {}
        self._lock = threading.Lock()

    def ready(self) -> dict[str, Any]:
        """What the pool shows in /health, once the model is loaded."""
        return {"pid": os.getpid(), "host": os.uname().nodename, "n_ctx_slot": self.batcher.n_ctx_slot,
                "placement": self.llm.placement}

    def stream(self, key: int, job: Job) -> Iterator[Event | RemoteError]:
        """Run ``job`` on a slot and yield its events up to its end (or until :meth:`cancel`)."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        job.emit = events.put
        with self._lock:
            self._jobs[key] = (job, events)
        self.batcher.submit(job)
        try:
            while True:
                event = events.get()
                if event is _CANCELLED:
                    return
                if isinstance(event, ErrorEvent):
                    error = event.error
                    yield RemoteError(error.status, error.message, error.param, error.type)
                    return
                yield event
                if not isinstance(event, TokenEvent):
                    return
        finally:
            with self._lock:
                self._jobs.pop(key, None)

    def cancel(self, key: int) -> None:
        """The client is gone: free the job's slot and end its stream."""
        with self._lock:
            found = self._jobs.get(key)
        if found is not None:
            job, events = found
            self.batcher.cancel(job)
            events.put(_CANCELLED)

    def slot_states(self) -> list[dict[str, Any]]:
        return self.batcher.slot_states()

    def metrics_state(self) -> tuple[Metrics, dict[str, int]]:
        return self.batcher.metrics_state()

    def shut_down(self) -> None:
        self.batcher.shut_down()
