"""A worker process that runs untrusted template code within a time and memory budget.

jinja2's sandbox stops a template from reaching Python's internals, but not from spending: ``'a' *
300000000`` or nested loops over ``range`` are legal jinja. A model file's template therefore renders
in a separate process whose address space is capped (``RLIMIT_AS``) and which is killed when it
overruns its time; the next render starts a fresh one. The worker is spawned, not forked, because
the server renders from threads.
"""

from __future__ import annotations

import multiprocessing
import importlib
import resource
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from llmcore.chat.errors import ChatTemplateError


@dataclass(frozen=True)
class RenderBudget:
    """What one render of a jinja chat template may spend: wall time, memory beyond the worker's
    own, and the length of the prompt it produces."""

    seconds: float = 10.0
    memory_mib: int = 512
    max_chars: int = 16 * 2**20


DEFAULT_BUDGET = RenderBudget()


class _Worker:
    """One spawned process, fed calls over a pipe one at a time."""

    def __init__(self, memory_mib: int, preload: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, memory_mib, preload), daemon=True,
                                        name="llmcore-template-sandbox")
        self._process.start()
        child_end.close()

    def call(self, function: Callable[..., str], args: tuple, budget: RenderBudget) -> tuple[bool, Any]:
        """(True, result) or (False, the exception raised); TimeoutError after the budget's
        seconds, EOFError if the worker died (its memory cap ends it where Python cannot recover)."""
        self._conn.send((function, args, budget.max_chars))
        if not self._conn.poll(budget.seconds):
            raise TimeoutError
        return self._conn.recv()

    def kill(self) -> None:
        self._process.kill()
        self._process.join()
        self._conn.close()


def _serve(conn: Connection, memory_mib: int, preload: str) -> None:
    # Ctrl-C reaches the whole foreground process group; it interrupts the reply, not the sandbox.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    importlib.import_module(preload)  # before the cap, so that the cap is for renders alone

    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    cap = mapped + memory_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    while True:
        try:
            function, args, max_chars = conn.recv()
        except EOFError:
            return
        try:
            text = function(*args)
            reply = (True, text) if len(text) <= max_chars else (False, ChatTemplateError(
                f"chat template: the prompt has {len(text)} characters, more than its render budget's {max_chars}"))
        except MemoryError:
            conn.send((False, MemoryError()))
            return  # a fresh worker rather than one left in whatever state the failed allocation left
        except Exception as error:  # the template's own failure travels back to the caller
            reply = (False, error)
        conn.send(reply)


_workers: dict[int, _Worker] = {}
_lock = threading.Lock()


def run_bounded(function: Callable[..., str], args: tuple, budget: RenderBudget) -> str:
    """``function(*args)`` in the sandbox worker; a :class:`ChatTemplateError` naming the budget
    when it takes longer than ``budget.seconds``, needs more than ``budget.memory_mib`` or returns
    more than ``budget.max_chars`` characters. ``function`` must be importable by name."""
    with _lock:
        worker = _workers.get(budget.memory_mib)
        if worker is None:
            worker = _workers[budget.memory_mib] = _Worker(budget.memory_mib, function.__module__)
        try:
            ok, value = worker.call(function, args, budget)
        except TimeoutError:
            _retire(budget.memory_mib)
            raise ChatTemplateError(f"chat template: rendering took longer than {budget.seconds:g} s "
                                    "(its render budget)") from None
        except (EOFError, OSError):
            _retire(budget.memory_mib)
            ok, value = False, MemoryError()
    if isinstance(value, MemoryError):
        with _lock:
            _retire(budget.memory_mib)
        raise ChatTemplateError(f"chat template: rendering needed more than {budget.memory_mib} MiB "
                                "(its render budget)")
    if not ok:
        raise value
    return value


def _retire(memory_mib: int) -> None:
    worker = _workers.pop(memory_mib, None)
    if worker is not None:
        worker.kill()
