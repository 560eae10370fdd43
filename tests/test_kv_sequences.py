"""The KV cache's sequence operations on a real context (llama.h's llama_memory_seq_*): copy
(shared cells, or copied rows when each sequence has its own range), keep, remove and shift."""

from __future__ import annotations

import numpy as np
import pytest

from llmcore.engine.batch import Batch
from llmcore.errors import LLMCoreError

PROMPT = "Once upon a time, in a quiet village by the sea,"
NEXT = " there"


@pytest.fixture(scope="module")
def llm(default_model_path):
    from llmcore.api import LLM

    return LLM(default_model_path, n_ctx=256)


@pytest.fixture()
def context(llm):
    llm.reset()
    llm.context.cells.range_size = None
    yield llm.context
    llm.context.cells.range_size = None
    llm.reset()


def _decode(context, tokens, start, seq_id):
    return context.decode(Batch.for_sequence(tokens, start, seq_id))[-1]


def test_a_copied_sequence_continues_exactly_as_the_original(llm, context):
    prompt, nxt = llm.tokenize(PROMPT), llm.tokenize(NEXT, add_special=False)
    n = len(prompt)
    _decode(context, prompt, 0, 0)
    context.seq_copy(0, 1)
    assert context.cells.n_used == n  # shared cells, not copies
    on_copy = _decode(context, nxt, n, 1)
    context.seq_remove(1, n)
    assert context.seq_pos_max(1) == n - 1
    on_original = _decode(context, nxt, n, 0)
    np.testing.assert_array_equal(on_copy, on_original)

    context.seq_keep(1)
    assert context.seq_pos_max(0) == -1 and context.seq_pos_max(1) == n - 1
    assert context.cells.n_used == n  # sequence 0's own cell at position n is free again
    context.seq_remove(1, 3)
    assert context.seq_pos_max(1) == 2


def test_copying_across_partitioned_ranges_copies_keys_and_values(llm, context):
    prompt, nxt = llm.tokenize(PROMPT), llm.tokenize(NEXT, add_special=False)
    n = len(prompt)
    size = context.cells.partition(2)
    _decode(context, prompt, 0, 0)
    context.seq_copy(0, 1)
    assert context.cells.n_used == 2 * n
    assert context.cells.holds(1)[size:size + n].all()
    views = context.cache_views()
    name = next(iter(views))
    np.testing.assert_array_equal(views[name][size:size + n], views[name][:n])
    np.testing.assert_array_equal(_decode(context, nxt, n, 1), _decode(context, nxt, n, 0))


def test_shift_rotates_keys_as_if_computed_at_the_new_positions(llm, context):
    first, second = llm.tokenize("A long preamble that will scroll out of the window."), llm.tokenize(
        " The sea was calm that night.", add_special=False)
    a = len(first)
    _decode(context, first + second, 0, 0)
    context.seq_remove(0, 0, a)
    context.seq_shift(0, a, None, -a)
    shifted = context.cache_views()["cache_k.0"][a:a + len(second)].astype(np.float32)
    assert context.seq_pos_max(0) == len(second) - 1

    context.seq_remove(0)
    _decode(context, second, 0, 0)  # layer 0's keys depend on each token alone: a fresh reference
    fresh = context.cache_views()["cache_k.0"][:len(second)].astype(np.float32)
    scale = np.abs(fresh).max()
    assert np.abs(shifted - fresh).max() < 0.01 * scale  # f16 rounding of the stored keys only
    context.seq_remove(0)
    _decode(context, first + second, 0, 0)
    unshifted = context.cache_views()["cache_k.0"][a:a + len(second)].astype(np.float32)
    assert np.abs(unshifted - fresh).max() > 0.1 * scale  # the rotation is what made them agree


def test_bad_sequence_ids_are_refused(context):
    with pytest.raises(LLMCoreError, match="sequence id 64 is outside 0..63"):
        context.seq_copy(0, 64)
    with pytest.raises(LLMCoreError, match="outside 0..63"):
        context.decode(Batch.for_sequence([1], 0, seq_id=-1))
