"""Which replica takes a request: the one that holds its prompt's prefix in cache, if it has a free
slot, else the least loaded. Plain Python, no Ray: the pool asks it once per request."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmcore.engine.kv_cache import common_prefix

#: the share of a prompt a replica's cache must hold for affinity to beat load: llama-server's
#: --slot-prompt-similarity default, which picks a slot the same way
PROMPT_SIMILARITY = 0.5


@dataclass
class ReplicaLoad:
    """What the router knows of one replica: whether it serves, how many requests it holds, its
    slots, and the prompts it read lately (what its slots' caches may still hold)."""

    index: int
    n_slots: int
    alive: bool = True
    in_flight: int = 0
    recent: deque[list[int]] = field(default_factory=deque)

    def remember(self, prompt: Sequence[int]) -> None:
        """Note a prompt this replica reads; the oldest is forgotten past four per slot (each slot
        keeps one sequence; the spare ones cover slots a later request has not overwritten yet)."""
        self.recent.append(list(prompt))
        while len(self.recent) > 4 * self.n_slots:
            self.recent.popleft()

    def cached_prefix(self, prompt: Sequence[int]) -> int:
        """The longest prefix of ``prompt`` one of its recent prompts shares."""
        tokens = list(prompt)
        return max((common_prefix(seen, tokens, len(tokens)) for seen in self.recent), default=0)


def choose_replica(replicas: Sequence[ReplicaLoad], prompt: Sequence[int], *,
                   exclude: frozenset[int] = frozenset()) -> ReplicaLoad | None:
    """The replica for ``prompt`` among the alive ones not in ``exclude``: the one whose cache holds
    the longest prefix of it, when that prefix is at least PROMPT_SIMILARITY of the prompt and the
    replica has an idle slot; else the least loaded (requests in flight per slot, then the lowest
    index). None when no replica is left."""
    usable = [r for r in replicas if r.alive and r.index not in exclude]
    if not usable:
        return None
    prefixes = {r.index: r.cached_prefix(prompt) for r in usable}
    affine = [r for r in usable if r.in_flight < r.n_slots and prefixes[r.index] > 0
              and prefixes[r.index] >= PROMPT_SIMILARITY * len(prompt)]
    if affine:
        return max(affine, key=lambda r: (prefixes[r.index], -r.in_flight / r.n_slots, -r.index))
    return min(usable, key=lambda r: (r.in_flight / r.n_slots, r.index))
