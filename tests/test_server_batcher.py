"""The server's continuous batcher in process (llmcore.server.batcher), on a tiny random llama."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llmcore import LLM

pytest.importorskip("fastapi")  # llmcore.server needs the server extra

BASE = Path(__file__).parent / "fixtures" / "adapters" / "base.gguf"


def test_jobs_waiting_for_a_slot_start_when_the_busy_slots_end_together():
    """Three jobs at once on one slot: when the running one ends, the waiting ones start at once,
    without a new request to wake the engine (it used to sleep on its inbox with them waiting)."""
    from llmcore.server.batcher import Batcher, Job, TokenEvent

    llm = LLM(BASE, backend="cpu_simd", n_ctx=256)
    batcher = Batcher(llm, 1)
    batcher.start()
    ended = [threading.Event() for _ in range(3)]
    try:
        for event in ended:
            batcher.submit(Job(llm.tokenize("hello world"), llm.sampler(temperature=0), max_tokens=2, ignore_eos=True,
                               emit=lambda e, ended=event: None if isinstance(e, TokenEvent) else ended.set()))
        assert all(event.wait(60) for event in ended)
    finally:
        batcher.stop()
