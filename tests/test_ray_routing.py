"""How ``llmcore serve --replicas`` picks a replica (plugins/ray's llmcore_ray_serve.routing): the
one whose cache holds the prompt's prefix while it has an idle slot, else the least loaded. Plain
Python, no cluster; tests/test_ray.py serves over a real one (slow)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llmcore_ray_serve") is None,
                                reason="the ray plugin is not installed: pip install -e '.[ray]' -e plugins/ray")

CONVERSATION = list(range(100, 140))


def loads(*in_flight: int, n_slots: int = 2):
    from llmcore_ray_serve.routing import ReplicaLoad

    return [ReplicaLoad(i, n_slots, in_flight=n) for i, n in enumerate(in_flight)]


def test_a_new_prompt_goes_to_the_least_loaded_replica():
    from llmcore_ray_serve.routing import choose_replica

    assert choose_replica(loads(2, 1, 0), [1, 2, 3]).index == 2
    assert choose_replica(loads(1, 0, 0), [1, 2, 3]).index == 1  # equals: the lowest index


def test_load_is_counted_per_slot():
    from llmcore_ray_serve.routing import ReplicaLoad, choose_replica

    replicas = [ReplicaLoad(0, n_slots=4, in_flight=2), ReplicaLoad(1, n_slots=1, in_flight=1)]
    assert choose_replica(replicas, [1, 2, 3]).index == 0


def test_a_conversation_goes_back_to_the_replica_holding_its_prefix_while_it_has_an_idle_slot():
    from llmcore_ray_serve.routing import choose_replica

    replicas = loads(1, 0)
    replicas[0].remember(CONVERSATION)
    next_turn = CONVERSATION + [7, 8, 9]
    assert choose_replica(replicas, next_turn).index == 0  # busier, but it holds the first turn
    replicas[0].in_flight = 2  # no idle slot: the prompt would wait there, so load wins
    assert choose_replica(replicas, next_turn).index == 1


def test_a_short_shared_prefix_does_not_outweigh_load():
    """Below llama-server's slot-prompt similarity (half the prompt), a shared system prompt or BOS
    is no reason to queue behind others."""
    from llmcore_ray_serve.routing import choose_replica

    replicas = loads(1, 0)
    replicas[0].remember(CONVERSATION)
    assert choose_replica(replicas, CONVERSATION[:10] + list(range(500, 520))).index == 1


def test_the_longest_cached_prefix_wins_among_replicas_holding_one():
    from llmcore_ray_serve.routing import choose_replica

    replicas = loads(0, 1)
    replicas[0].remember(CONVERSATION[:30])
    replicas[1].remember(CONVERSATION)
    assert choose_replica(replicas, CONVERSATION + [1]).index == 1


def test_dead_and_excluded_replicas_are_passed_over_and_none_left_is_none():
    from llmcore_ray_serve.routing import choose_replica

    replicas = loads(0, 1, 1)
    replicas[0].alive = False
    assert choose_replica(replicas, [1, 2]).index == 1
    assert choose_replica(replicas, [1, 2], exclude=frozenset({1})).index == 2
    assert choose_replica(replicas, [1, 2], exclude=frozenset({1, 2})) is None


def test_a_replica_remembers_four_prompts_per_slot():
    from llmcore_ray_serve.routing import ReplicaLoad

    replica = ReplicaLoad(0, n_slots=2)
    for start in range(0, 900, 100):
        replica.remember(list(range(start, start + 10)))
    assert len(replica.recent) == 8
    assert replica.cached_prefix(list(range(0, 10))) == 0  # the first one is forgotten
    assert replica.cached_prefix(list(range(800, 805)) + [1]) == 5


def test_serve_refuses_replicas_with_a_flag_they_do_not_support_in_one_line():
    result = subprocess.run([sys.executable, "-m", "llmcore", "serve", "--replicas", "2", "--embedding", "--port", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("--replicas does not support --embedding yet")
