"""Placement and the scheduler's splits: llama.cpp's -ngl rule, tensor overrides, and a graph cut
across two backends computing exactly what one backend computes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from llmcore.plugin_api import Backend
from llmcore.backends.reference import ReferenceBackend
from llmcore.errors import LLMCoreError
from llmcore.graph.placement import LayerPlacement, parse_n_gpu_layers, parse_override, split_layers


class Accelerator(ReferenceBackend):
    """A second, distinct backend instance with the reference numerics; ``device`` as a plugin
    with several devices takes it."""

    name = "accel"
    runs_on_host = False
    api_version = "2.0"

    def __init__(self, n_threads: int | None = None, device: int | None = None) -> None:
        super().__init__(n_threads)
        Backend.__init__(self, n_threads, device)


def test_ngl_counts_layers_from_the_output_as_llama_cpp():
    cpu, acc = ReferenceBackend(), Accelerator()
    placement = LayerPlacement.offload(cpu, [acc], n_layer=30, n_gpu_layers=15)
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
    from llmcore.engine.batch import Batch
    from llmcore.engine.context import Context
    from llmcore.engine.model import Model

    model = Model(default_model_path)
    ids = model.tokenizer.tokenize("The quick brown fox jumps over the lazy dog", add_special=True)
    n_layer = model.hparams.n_layer

    single = Context(model, LayerPlacement.single(ReferenceBackend(), n_layer), n_ctx=64)
    cpu, acc = ReferenceBackend(), Accelerator()
    split = Context(model, LayerPlacement.offload(cpu, [acc], n_layer, 15), n_ctx=64)
    expected = single.decode(Batch.for_sequence(ids, 0, all_logits=True))
    got = split.decode(Batch.for_sequence(ids, 0, all_logits=True))
    plan = split.compiled(len(ids), len(ids))
    assert [s.backend for s in plan.splits] == [cpu, acc]
    assert acc.memory_used()["kv"] > 0 and cpu.memory_used()["kv"] > 0  # each holds its layers' caches
    np.testing.assert_array_equal(got, expected)
    # one more decode step reads the caches that live on both backends
    step = Batch.for_sequence([ids[-1]], len(ids))
    np.testing.assert_array_equal(split.decode(step), single.decode(step))


# ---- several devices of one accelerator backend: --split-mode, --tensor-split, --main-gpu --------

@pytest.mark.parametrize(("n_gpu_layers", "shares", "expected"), [
    # llama.cpp's llama_model::load_tensors: upper_bound of (il - first) / n_offloaded in the cumulative shares
    (31, [1, 1], {0: range(0, 16), 1: range(16, 31)}),
    (31, [3, 1], {0: range(0, 24), 1: range(24, 31)}),
    (15, [1, 1], {0: range(16, 24), 1: range(24, 31)}),
    (15, [1, 0.0001], {0: range(16, 31)}),
    (4, [1, 1, 1, 1], {0: [27], 1: [28], 2: [29], 3: [30]}),
])
def test_split_layers_as_llama_cpp(n_gpu_layers, shares, expected):
    got = split_layers(30, n_gpu_layers, shares)
    assert {d: [il for il, dev in got.items() if dev == d] for d in sorted(set(got.values()))} == \
        {d: list(layers) for d, layers in expected.items()}


def test_layers_split_over_two_devices_compute_what_one_backend_computes(default_model_path):
    from llmcore.engine.batch import Batch
    from llmcore.engine.context import Context
    from llmcore.engine.model import Model

    model = Model(default_model_path)
    ids = model.tokenizer.tokenize("The quick brown fox jumps over the lazy dog", add_special=True)
    n_layer = model.hparams.n_layer
    single = Context(model, LayerPlacement.single(ReferenceBackend(), n_layer), n_ctx=64)
    cpu, first, second = ReferenceBackend(), Accelerator(device=0), Accelerator(device=1)
    placement = LayerPlacement.offload(cpu, [first, second], n_layer, 20, shares=[1, 1])
    assert placement.describe() == [("input, 0-10", "reference"), ("11-20", "accel0"), ("21-29, output", "accel1")]
    split = Context(model, placement, n_ctx=64)
    np.testing.assert_array_equal(split.decode(Batch.for_sequence(ids, 0, all_logits=True)),
                                  single.decode(Batch.for_sequence(ids, 0, all_logits=True)))
    assert [s.backend for s in split.compiled(len(ids), len(ids)).splits] == [cpu, first, second]


@pytest.fixture
def two_device_accelerator(monkeypatch):
    """The Plan sees an accelerator backend with two devices (3 GiB and 1 GiB free)."""
    import llmcore.engine.plan
    from llmcore.plugin_api import Availability, Device

    devices = (Device("big", "gpu", memory_free=3 << 30), Device("small", "gpu", memory_free=1 << 30))
    monkeypatch.setattr(llmcore.engine.plan, "choose_backend", lambda name: (Accelerator, "chosen by the test"))
    monkeypatch.setattr(llmcore.engine.plan, "availability", lambda name: Availability(True, devices=devices))


@pytest.mark.parametrize(("options", "expected"), [
    ({}, [("input", "cpu"), ("0-23", "accel0"), ("24-29, output", "accel1")]),  # by free memory, 3:1
    ({"tensor_split": [1, 1]}, [("input", "cpu"), ("0-15", "accel0"), ("16-29, output", "accel1")]),
    ({"tensor_split": [0, 1]}, [("input", "cpu"), ("0-29, output", "accel1")]),
    ({"split_mode": "none"}, [("input", "cpu"), ("0-29, output", "accel")]),
    ({"split_mode": "none", "main_gpu": 1}, [("input", "cpu"), ("0-29, output", "accel1")]),
])
def test_plan_places_layers_on_the_devices_asked_for(default_model_path, two_device_accelerator, options, expected):
    from llmcore.engine.model import Model
    from llmcore.engine.plan import Plan

    plan = Plan.build(Model(default_model_path), "accel", **options)
    described = plan.placement.describe()
    assert described[0] == ("input", plan.placement.cpu.name)  # the best CPU backend installed
    assert described[1:] == expected[1:]


@pytest.mark.parametrize(("options", "message"), [
    ({"split_mode": "row"}, "CUDA only"),
    ({"split_mode": "tensor"}, "--split-mode tensor (weights and the KV cache split across devices"),
    ({"split_mode": "sideways"}, "must be one of none, layer, row, tensor"),
    ({"main_gpu": 2}, "has 2 device(s) (0: big, 1: small)"),
    ({"tensor_split": [1, 1, 1]}, "gives 3 proportions"),
    ({"tensor_split": [0, 0]}, "positive sum"),
])
def test_plan_rejects_impossible_device_choices(default_model_path, two_device_accelerator, options, message):
    from llmcore.engine.model import Model
    from llmcore.engine.plan import Plan

    with pytest.raises(LLMCoreError, match=re.escape(message)):
        Plan.build(Model(default_model_path), "accel", **options)



@pytest.mark.parametrize("split_mode", ["row", "tensor"])
def test_split_modes_not_supported_are_refused_on_cpu_only_runs_too(default_model_path, capsys, split_mode):
    """llama.cpp's row and tensor splits are refused on a CPU-only run, which has no devices to
    split across, as on an accelerator (above): a command line does not start failing on the
    machine that has a GPU."""
    from llmcore.cli import main
    from llmcore.engine.model import Model
    from llmcore.engine.plan import Plan

    model = Model(default_model_path)
    for backend in ("reference", "cpu_simd"):
        with pytest.raises(LLMCoreError, match=re.escape(f"--split-mode {split_mode} (")) as refused:
            Plan.build(model, backend, split_mode=split_mode)
        assert str(refused.value).endswith("is not supported yet: llmcore splits by layer; "
                                           "use --split-mode layer or none")
    assert main(["plan", "-m", str(default_model_path), "--backend", "reference", "-sm", split_mode]) == 2
    assert capsys.readouterr().err == f"llmcore plan: error: {refused.value}\n"
