"""Slots: the server's parallel sequences. Slot i decodes into KV-cache sequence i and remembers
which tokens its cells hold, so that a request sharing a prefix with them skips re-reading it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmcore.engine.kv_cache import common_prefix

if TYPE_CHECKING:
    from llmcore.engine.context import Context
    from llmcore.server.batcher import Job, Run


@dataclass
class Slot:
    id: int
    n_ctx: int  # this slot's share of the context (-c divided by -np, as llama-server does)
    cached: list[int] = field(default_factory=list)  # tokens whose keys and values sit in sequence ``id``
    run: Run | None = None
    last_used: float = 0.0
    lora: list[float] = field(default_factory=list)  # the LoRA scales its cached keys and values were made with

    @property
    def busy(self) -> bool:
        return self.run is not None

    def reusable_prefix(self, prompt: Sequence[int]) -> int:
        """How many cached tokens ``prompt`` can keep; at least its last token is evaluated anew,
        since its logits are needed."""
        return common_prefix(self.cached, list(prompt), limit=len(prompt) - 1)

    def keep_prefix(self, context: Context, n_keep: int) -> int:
        """Forget every cached token after the first ``n_keep``; returns how many stay: none where
        the memory cannot cut the sequence there (a recurrent model's state, unless it ends at
        ``n_keep``), as llama-server then clears the slot."""
        if not context.seq_remove(self.id, n_keep):
            n_keep = 0
            context.seq_remove(self.id)
        del self.cached[n_keep:]
        return n_keep

    def release(self) -> None:
        self.run = None
        self.last_used = time.monotonic()


def choose_slot(slots: Sequence[Slot], job: Job) -> Slot | None:
    """The idle slot for ``job``: the one it asked for, else the one sharing the longest prefix with
    its prompt (least recently used among equals), as llama-server picks; None when all are busy."""
    if job.id_slot >= 0:
        wanted = slots[job.id_slot]
        return None if wanted.busy else wanted
    idle = [s for s in slots if not s.busy]
    if not idle:
        return None
    return max(idle, key=lambda s: (s.reusable_prefix(job.prompt_tokens) if job.cache_prompt else 0, -s.last_used))
