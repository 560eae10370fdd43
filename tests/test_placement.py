"""Placement and the scheduler's splits: llama.cpp's -ngl rule, tensor overrides, and a graph cut
across two backends computing exactly what one backend computes."""

from __future__ import annotations

import numpy as np
import pytest

from llmcore.backends.reference import ReferenceBackend
from llmcore.errors import LLMCoreError
from llmcore.graph.placement import LayerPlacement, parse_n_gpu_layers, parse_override


class Accelerator(ReferenceBackend):
    """A second, distinct backend instance with the reference numerics."""

    name = "accel"
    runs_on_host = False


def test_ngl_counts_layers_from_the_output_as_llama_cpp():
    cpu, acc = ReferenceBackend(), Accelerator()
    placement = LayerPlacement.offload(cpu, acc, n_layer=30, n_gpu_layers=15)
    on_acc = [il for il, b in placement.backends.items() if b is acc]
    assert on_acc == list(range(16, 31))  # blocks 16-29 and the output head (layer 30)
    assert placement.describe() == [("input, 0-15", "reference"), ("16-29, output", "accel")]


@pytest.mark.parametrize("value, expected", [(None, 31), ("all", 31), ("auto", 31), (-1, 31), ("0", 0), (15, 15), (99, 31)])
def test_parse_n_gpu_layers(value, expected):
    assert parse_n_gpu_layers(value, 30) == expected


@pytest.mark.parametrize("bad", ["many", -2, "1.5"])
def test_parse_n_gpu_layers_rejects_bad_values(bad):
    with pytest.raises(LLMCoreError):
        parse_n_gpu_layers(bad, 30)


def test_override_tensor_validation():
    cpu = ReferenceBackend()
    assert parse_override(r"ffn_(up|down)=reference", {"reference": cpu}).backend is cpu
    for bad in ["noequals", "=reference", "(=reference", "ffn=vulkan"]:
        with pytest.raises(LLMCoreError):
            parse_override(bad, {"reference": cpu})


def test_split_across_backends_equals_single_backend(default_model_path):
    from llmcore.batch import Batch
    from llmcore.context import Context
    from llmcore.model import Model

    model = Model(default_model_path)
    ids = model.tokenizer.tokenize("The quick brown fox jumps over the lazy dog", add_special=True)
    n_layer = model.hparams.n_layer

    single = Context(model, LayerPlacement.single(ReferenceBackend(), n_layer), n_ctx=64)
    cpu, acc = ReferenceBackend(), Accelerator()
    split = Context(model, LayerPlacement.offload(cpu, acc, n_layer, 15), n_ctx=64)
    expected = single.decode(Batch.for_sequence(ids, 0, all_logits=True))
    got = split.decode(Batch.for_sequence(ids, 0, all_logits=True))
    plan = split.plan(len(ids), len(ids))
    assert [s.backend for s in plan.splits] == [cpu, acc]
    assert acc.memory_used()["kv"] > 0 and cpu.memory_used()["kv"] > 0  # each holds its layers' caches
    np.testing.assert_array_equal(got, expected)
    # one more decode step reads the caches that live on both backends
    step = Batch.for_sequence([ids[-1]], len(ids))
    np.testing.assert_array_equal(split.decode(step), single.decode(step))
