"""Steps in flight through stages on backends that pipeline (llmcore.graph.scheduler.Pipeline,
Context.decode_async, the server's batcher), without a cluster: a tiny llama's layers on two
cpu_simd instances that declare ``pipelines`` as the ray backend's nodes do, the input on a third.
Their logits must be those of one cpu_simd running the same steps one by one; tests/test_ray.py
does the same with the default model over a real cluster (slow)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llmcore.api import Batch
from llmcore.engine.context import Context
from llmcore.engine.registry import backend_classes
from llmcore.errors import BackendError
from llmcore.graph.backend import Executable, Subgraph
from llmcore.graph.placement import LayerPlacement

pytestmark = pytest.mark.skipif("cpu_simd" not in backend_classes(), reason="needs the cpu_simd plugin")
PROMPTS = ["The three primary colors are", "Once upon a time", "def fibonacci(n):"]
N_CTX = 256
BASE = Path(__file__).parent / "fixtures" / "adapters" / "base.gguf"  # 4 layers of width 64, random


def stage_class() -> type:
    class Stage(backend_classes()["cpu_simd"]):
        """A cpu_simd instance standing for a node: it pipelines, and ``hook(n)`` runs before its
        n-th step."""

        pipelines = True

        def __init__(self, name: str, hook: Callable[[int], None] | None = None) -> None:
            super().__init__(n_threads=1)
            self.name, self.hook, self.runs = name, hook, 0

        def compile(self, subgraph: Subgraph) -> Executable:
            return Hooked(self, super().compile(subgraph))

    return Stage


class Hooked(Executable):
    def __init__(self, stage, inner: Executable) -> None:
        self.stage, self.inner = stage, inner

    def run(self, inputs, n_kv):
        self.stage.runs += 1
        if self.stage.hook is not None:
            self.stage.hook(self.stage.runs)
        return self.inner.run(inputs, n_kv)


@pytest.fixture(scope="module")
def solo():
    from llmcore import LLM

    return LLM(BASE, backend="cpu_simd", n_ctx=N_CTX, n_threads=1)


def pipelined(solo, *hooks: Callable[[int], None] | None) -> Context:
    """A context of ``solo``'s model: the input on cpu_simd, the layers and the output cut in two
    stages (``hooks[i]`` runs before each step of stage i)."""
    stage = stage_class()
    stages = [stage(f"stage{i}", hook) for i, hook in enumerate(hooks)]
    cpu = backend_classes()["cpu_simd"](n_threads=1)
    n_layer = solo.model.hparams.n_layer
    placement = LayerPlacement.offload(cpu, stages, n_layer, n_layer + 1, (1, 1))
    return Context(solo.model, placement, N_CTX, cache=solo.plan.cache)


def test_steps_in_flight_give_the_logits_of_running_them_one_by_one(solo):
    """Three sequences read their prompts and then decode 4 tokens each, every step of all three in
    flight before any logits are read: each row as one cpu_simd gives it, step after step."""
    context = pipelined(solo, None, None)
    assert [name for _, name in context.placement.describe()] == ["cpu_simd", "stage0", "stage1"]
    prompts = [solo.tokenize(p) for p in PROMPTS]
    steps = [[Batch.for_sequence(ids, 0, seq) for seq, ids in enumerate(prompts)]]
    solo.reset()
    expected = [[solo.context.decode(batch) for batch in steps[0]]]
    for _ in range(4):  # the next token of each sequence, greedy
        steps.append([Batch.for_sequence([int(np.argmax(rows[-1]))], int(batch.positions[-1]) + 1, seq)
                      for seq, (batch, rows) in enumerate(zip(steps[-1], expected[-1]))])
        expected.append([solo.context.decode(batch) for batch in steps[-1]])
    pending = [[context.decode_async(batch) for batch in step] for step in steps]
    for got, want in zip(pending, expected):
        for logits, rows in zip(got, want):
            assert np.array_equal(logits.result(), rows)


def test_a_stage_computes_the_next_step_while_the_next_stage_computes_the_previous_one(solo):
    """Stage 1 holds its first step until stage 0 has started its second: run one after another,
    the steps would wait for each other (20 s, then the test fails)."""
    second_started = threading.Event()
    waited: list[bool] = []
    context = pipelined(solo, lambda n: n == 2 and second_started.set(),
                        lambda n: n == 1 and waited.append(second_started.wait(timeout=20)))
    ids = solo.tokenize(PROMPTS[0])
    steps = [Batch.for_sequence(ids, 0, seq) for seq in (0, 1)]
    pending = [context.decode_async(batch) for batch in steps]
    solo.reset()
    for logits, batch in zip(pending, steps):
        assert np.array_equal(logits.result(), solo.context.decode(batch))
    assert waited == [True]


def test_a_failed_stage_fails_the_steps_behind_it_and_every_sequence_starts_over(solo):
    def fail_second(n: int) -> None:
        if n == 2:
            raise BackendError("stage1: the node is gone")

    context = pipelined(solo, None, fail_second)
    ids = solo.tokenize(PROMPTS[0])
    pending = [context.decode_async(Batch.for_sequence(ids, 0, seq)) for seq in range(3)]
    solo.reset()
    expected = solo.context.decode(Batch.for_sequence(ids, 0))
    assert np.array_equal(pending[0].result(), expected)
    for failed in pending[1:]:  # the step that failed, and the one in flight behind it
        with pytest.raises(BackendError, match="stage1: the node is gone"):
            failed.result()
    assert context.cells.n_used == 0
    assert np.array_equal(context.decode(Batch.for_sequence(ids, 0, 2)), expected)  # serving on
    assert context.seq_pos_max(2) == len(ids) - 1 and context.seq_pos_max(0) == -1


def serve(llm, prompts: list[str], n_parallel: int) -> tuple[list[list[int]], float]:
    """Each prompt's 8 greedy tokens from the server's batcher over ``llm``, all submitted at once,
    and the busy slots per decode step."""
    from llmcore.server.batcher import Batcher, Job, TokenEvent

    batcher = Batcher(llm, n_parallel)
    replies: list[list[int]] = [[] for _ in prompts]
    ended = [threading.Event() for _ in prompts]
    for reply, event, prompt in zip(replies, ended, prompts):
        def emit(e, reply=reply, event=event):
            reply.append(e.token) if isinstance(e, TokenEvent) else event.set()

        batcher.submit(Job(llm.tokenize(prompt), llm.sampler(temperature=0), emit, max_tokens=8, ignore_eos=True))
    batcher.start()  # every job is waiting: the first step takes them all
    try:
        assert all(event.wait(60) for event in ended)
    finally:
        batcher.stop()
    return replies, batcher.metrics.n_busy_slots_total / batcher.metrics.n_decode_total


def test_the_server_keeps_a_step_in_flight_per_stage_with_the_replies_of_one_machine(solo):
    """Two stages, two busy slots: each step takes one slot and the next step the other while it
    passes the stages; the tokens are those of the one-machine batcher stepping both together."""
    from llmcore import LLM

    one_machine = LLM(BASE, backend="cpu_simd", n_ctx=N_CTX, n_threads=1)  # the batcher partitions its cells
    two_stages = copy.copy(one_machine)
    two_stages.context = pipelined(one_machine, None, None)
    assert two_stages.context.pipeline_depth == 2
    expected, together = serve(one_machine, PROMPTS[:2], 2)
    replies, shared = serve(two_stages, PROMPTS[:2], 2)
    assert replies == expected and all(len(reply) == 8 for reply in replies)
    assert together == 2 and shared == 1
