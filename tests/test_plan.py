"""``llmcore plan``: its placement is LayerPlacement's, its memory figures match what the backends
report they allocated, and its expected decode speed matches a measured one."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from llmcore.api import LLM
from llmcore.engine.registry import availability, backend_classes
from llmcore.engine.batch import Batch
from llmcore.cli import main
from llmcore.graph.placement import LayerPlacement
from llmcore.engine.model import Model
from llmcore.engine.plan import Plan

N_BATCH = 64
VULKAN_USABLE = "vulkan" in backend_classes() and availability("vulkan").usable
CASES = [("cpu_simd", None),
         pytest.param("vulkan", 15, marks=pytest.mark.skipif(not VULKAN_USABLE, reason="vulkan not usable here"))]


@pytest.fixture(autouse=True)
def calibration_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LLMCORE_CACHE", str(tmp_path_factory.getbasetemp() / "llmcore-cache"))


def warmed_llm(path, backend, ngl) -> LLM:
    """A model after an n_batch-token prompt step and a decode step, so every buffer exists."""
    llm = LLM(path, backend=backend, n_gpu_layers=ngl, n_batch=N_BATCH, n_threads=2)
    llm.context.decode(Batch.for_sequence(list(range(1, N_BATCH + 1)), 0))
    llm.context.decode(Batch.for_sequence([5], N_BATCH))
    return llm


def decode_seconds(llm: LLM, n: int = 24) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        llm.context.decode(Batch.for_sequence([5], N_BATCH + 1 + i))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_vulkan_ngl_15_layers_match_layer_placement(default_model_path):
    if not VULKAN_USABLE:
        pytest.skip("vulkan not usable here")
    plan = Plan.build(Model(default_model_path), "vulkan", n_gpu_layers=15, n_threads=2)
    cpu = plan.placement.cpu
    expected = LayerPlacement.offload(cpu, [plan.backend], 30, 15).describe()
    assert plan.placement.describe() == expected == [("input, 0-15", "cpu_simd"), ("16-29, output", "vulkan")]


@pytest.mark.parametrize("backend, ngl", CASES)
def test_memory_within_10_percent_of_reported(default_model_path, backend, ngl):
    plan = Plan.build(Model(default_model_path), backend, n_gpu_layers=ngl, n_batch=N_BATCH, n_threads=2)
    estimated = plan.memory()
    llm = warmed_llm(default_model_path, backend, ngl)
    assert llm.placement == plan.placement.describe()
    reported = llm.memory_used()
    assert set(reported) == set(estimated)
    for name, used in reported.items():
        assert estimated[name].weights == used["weights"]
        assert estimated[name].kv == used["kv"]
        assert estimated[name].total == pytest.approx(sum(used.values()), rel=0.10)


def speed_ratio(path, backend, ngl) -> float:
    plan = Plan.build(Model(path), backend, n_gpu_layers=ngl, n_batch=N_BATCH, n_threads=2)
    expected = plan.speed().decode_tokens_per_s
    measured = 1 / decode_seconds(warmed_llm(path, backend, ngl))
    return expected / measured


def test_a_short_batch_costs_the_cheaper_of_its_tokens_one_by_one_and_the_gemm():
    """A product's tokens streamed one by one (a decode step's cost each) or the GEMM (its setup, the
    weights' unpacking, plus each token's operations): the cheaper, never under one stream of the
    weights nor under the GEMM's operations."""
    from llmcore.engine.calibration import BackendSpeed, MatMulSpeed, mul_mat_key
    from llmcore.gguf import GGMLType

    weight_bytes, n_elements = 1e6, 2e6
    # 1 ms a stream, 8 ms of setup, 0.25 ms of operations a token
    speed = BackendSpeed(0.0, 0.0, {mul_mat_key(GGMLType.Q4_K, 1024): MatMulSpeed(1e9, 2 * n_elements / 2.5e-4, 8e-9)})
    seconds = lambda n: speed.mul_mat_s(GGMLType.Q4_K, 1024, weight_bytes, n_elements, n)  # noqa: E731
    assert seconds(1) == pytest.approx(1e-3)
    assert seconds(4) == pytest.approx(4e-3)  # one by one: 4 ms against the GEMM's 9
    assert seconds(16) == pytest.approx(8e-3 + 16 * 2.5e-4)  # the GEMM: 12 ms against 16
    assert seconds(512) == pytest.approx(8e-3 + 512 * 2.5e-4)


def test_expected_decode_is_the_time_to_stream_the_weights_once(default_model_path, monkeypatch):
    """The estimate is a roofline over the step's ops: with the calibration of a backend that only
    streams weight bytes, a decode step costs the bytes of every multiplied weight (all but the
    norms, the output head reading the tied token embedding) over the bandwidth. The measured
    speeds are checked against real decodes by the slow tests below: timings fail under load."""
    import llmcore.engine.calibration as calibration
    from llmcore.engine.calibration import AttentionSpeed, BackendSpeed, MatMulSpeed, mul_mat_key

    bandwidth = 1e9

    def streaming_only(backend, products, attentions):
        return BackendSpeed(0.0, 0.0, {mul_mat_key(t, n): MatMulSpeed(bandwidth, float("inf")) for t, n in products},
                            {key: AttentionSpeed(0.0, 0.0) for key in attentions})

    monkeypatch.setattr(calibration, "calibrate", streaming_only)
    monkeypatch.setattr(calibration, "engine_step_s", lambda: 0.0)
    model = Model(default_model_path)
    speed = Plan.build(model, "cpu_simd", n_batch=N_BATCH, n_threads=2).speed()
    assert "output.weight" not in model.reader.tensors  # tied: the head multiplies by token_embd
    multiplied = sum(t.n_bytes for name, t in model.reader.tensors.items() if not name.endswith("norm.weight"))
    assert 1 / speed.decode_tokens_per_s == pytest.approx(multiplied / bandwidth, rel=1e-9)
    assert speed.prompt_tokens_per_s == pytest.approx(N_BATCH * speed.decode_tokens_per_s, rel=1e-9)


def test_products_are_calibrated_at_the_models_row_lengths(default_model_path, monkeypatch):
    """A kernel's bytes/s depends on its rows' length: each weight type is timed at the row lengths
    the model multiplies by (SmolLM2: 576, and 1536 for ffn_down), the longest at MAX_ROW_LENGTH."""
    import llmcore.engine.calibration as calibration
    from llmcore.engine.calibration import MAX_ROW_LENGTH, mul_mat_key
    from llmcore.gguf import GGMLType

    timed = []
    fake_calibration(monkeypatch, 1e9)
    monkeypatch.setattr(calibration, "_mul_mat_speed", lambda probe, weight_type, row_length, fixed_s:
                        timed.append((weight_type, row_length)) or calibration.MatMulSpeed(1e9, 1e30))
    Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2).speed()
    assert sorted(timed) == [(GGMLType.Q4_1, 576), (GGMLType.Q4_1, 1536), (GGMLType.Q8_0, 576)]
    assert mul_mat_key(GGMLType.Q4_K, 4 * MAX_ROW_LENGTH) == f"Q4_K/{MAX_ROW_LENGTH}"


def test_each_step_costs_the_engines_work_once(default_model_path, monkeypatch):
    """Besides its backends' costs a step pays the engine's work around their runs, measured once
    per host on a one-layer model and cached."""
    import llmcore.engine.calibration as calibration

    assert 0 < calibration._engine_step_s() < 0.01  # a fraction of a millisecond
    fake_calibration(monkeypatch, float("inf"))
    measured = []
    monkeypatch.setattr(calibration, "_engine_step_s", lambda: measured.append(1) or 1e-3)
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    speed = plan.speed()
    assert speed.decode_tokens_per_s == pytest.approx(1e3, rel=1e-9)
    assert speed.prompt_tokens_per_s == pytest.approx(N_BATCH * 1e3, rel=1e-9)
    plan.speed()
    assert measured == [1]


def test_decode_attention_reads_the_mean_window_of_the_generation(default_model_path, monkeypatch):
    """The k-th token of a generation from an empty cache attends over k cells: n_gen tokens cost
    (n_gen + 1) / 2 cells each on average, per layer (calibrated with the model's heads)."""
    import llmcore.engine.calibration as calibration
    from llmcore.engine.calibration import AttentionSpeed

    cell_s = 1e-6
    fake_calibration(monkeypatch, float("inf"))
    monkeypatch.setattr(calibration, "_attention_speed",
                        lambda probe, key, fixed_s: AttentionSpeed(0.0, 0.0, 0.0, cell_s))
    model = Model(default_model_path)
    plan = Plan.build(model, "cpu_simd", n_batch=N_BATCH, n_threads=2)
    for n_gen in (1, 128):
        assert 1 / plan.speed(n_gen=n_gen).decode_tokens_per_s == pytest.approx(
            (n_gen + 1) / 2 * model.hparams.n_layer * cell_s, rel=1e-9)


@pytest.mark.slow  # a measured speed: a busy neighbour on a shared machine can halve it
@pytest.mark.parametrize("backend, ngl", CASES)
def test_expected_decode_speed_is_the_right_order(default_model_path, backend, ngl):
    assert 1 / 2 < speed_ratio(default_model_path, backend, ngl) < 2


@pytest.mark.slow
@pytest.mark.parametrize("backend, ngl", CASES)
def test_expected_decode_speed_within_30_percent(default_model_path, backend, ngl):
    assert speed_ratio(default_model_path, backend, ngl) == pytest.approx(1, rel=0.30)


def test_cli_json(default_model_path, capsys):
    assert main(["plan", "-m", str(default_model_path), "--backend", "cpu_simd", "-t", "2", "-b", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layers"] == [{"layers": "input, 0-29, output", "backend": "cpu_simd"}]
    model = Model(default_model_path)
    assert out["memory"]["cpu_simd"]["weights"] == model.size_bytes
    assert out["expected"]["decode_tokens_per_s"] > 0


def test_cli_device_choices_on_a_one_device_backend(default_model_path, capsys):
    """--split-mode none / --main-gpu 0 is the one device; anything naming a device it does not
    have is a one-line error with the devices listed, exit status 2."""
    if not VULKAN_USABLE:
        pytest.skip("vulkan not usable here")
    model = ["plan", "-m", str(default_model_path), "--backend", "vulkan", "--json"]
    assert main([*model, "-sm", "none", "-mg", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][-1]["backend"] == "vulkan"
    for flags, message in ((["-mg", "1"], "--main-gpu 1: backend vulkan has 1 device(s) (0: "),
                           (["-ts", "1,1"], "--tensor-split gives 2 proportions"),
                           (["-sm", "row"], "CUDA only")):
        assert main([*model, *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err


@pytest.mark.slow  # two vulkan contexts on lavapipe: about a minute
@pytest.mark.skipif(not VULKAN_USABLE, reason="vulkan not usable here")
def test_override_tensor_keeps_the_experts_on_the_cpu_backend():
    """llama.cpp's usual hybrid, ``-ot exps=cpu_simd``: the experts' stacked weights load on the
    CPU backend (and their routed products run there) while the rest is offloaded; the logits are
    those of the plain offload, where vulkan declines the routed products to the same backend."""
    path = Path(__file__).parent / "fixtures" / "arch" / "llama_moe.gguf"
    tokens = [1, 300, 45, 200, 511, 17]
    hybrid = LLM(path, backend="vulkan", n_gpu_layers="all", override_tensor=["exps=cpu_simd"], n_ctx=64)
    owned = hybrid.plan.weights_by_backend()
    experts = {name for name in Model(path).weight_specs if "_exps." in name}
    assert experts <= set(owned["cpu_simd"]) and not experts & set(owned["vulkan"])
    assert "blk.0.attn_q.weight" in owned["vulkan"]
    offloaded = LLM(path, backend="vulkan", n_gpu_layers="all", n_ctx=64)
    np.testing.assert_array_equal(hybrid.logits(tokens), offloaded.logits(tokens))


def fake_calibration(monkeypatch, bandwidth: float | list[float], ops: float | list[float] = 1e30):
    """Calibrations measured as a backend streaming weights at ``bandwidth`` bytes/s, computing
    products at ``ops`` operations/s and nothing else (counted, so a test sees when one is measured
    again; each may be a list, one figure per calibration, the last one then kept)."""
    import llmcore.engine.calibration as calibration
    from llmcore.engine.calibration import AttentionSpeed, BackendSpeed, MatMulSpeed

    measured = []
    bandwidths = bandwidth if isinstance(bandwidth, list) else [bandwidth]
    ops_per_s = ops if isinstance(ops, list) else [ops]
    calibration._cache_path().unlink(missing_ok=True)  # another test's real calibration

    def measure(probe):
        measured.append(probe.name)
        return 0.0, 0.0

    monkeypatch.setattr(calibration, "_overheads", measure)
    monkeypatch.setattr(calibration, "_engine_step_s", lambda: 0.0)
    monkeypatch.setattr(calibration, "_mul_mat_speed", lambda probe, weight_type, row_length, fixed_s:
                        MatMulSpeed(bandwidths[min(len(measured), len(bandwidths)) - 1],
                                    ops_per_s[min(len(measured), len(ops_per_s)) - 1]))
    monkeypatch.setattr(calibration, "_attention_speed", lambda probe, key, fixed_s: AttentionSpeed(0.0, 0.0))
    return measured


def test_a_decode_speed_far_under_the_plan_drops_the_calibration(default_model_path, monkeypatch):
    """Under half the plan's speed: the calibration describes another machine (same CPU model,
    fewer cores or slower memory) and is measured afresh, not merged with the old figures."""
    from llmcore.engine.plan import Speed

    measured = fake_calibration(monkeypatch, [1e9, 2.5e8])
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    expected = plan.speed().decode_tokens_per_s
    assert measured == ["cpu_simd"]
    assert not plan.speed_missed(Speed(0.0, expected / 1.9, N_BATCH))
    plan.speed()
    assert measured == ["cpu_simd"]  # cached
    assert plan.speed_missed(Speed(0.0, expected / 2.1, N_BATCH))
    assert plan.speed().decode_tokens_per_s == pytest.approx(expected / 4, rel=1e-9)  # the new figure alone
    assert measured == ["cpu_simd", "cpu_simd"]


def test_a_decode_speed_over_the_plan_measures_again_keeping_the_best(default_model_path, monkeypatch):
    """Over 1.3x the plan's speed: a calibration that other work slowed. It is measured again and
    each figure keeps the best of both, so a second busy moment cannot make it worse."""
    from llmcore.engine.plan import Speed

    measured = fake_calibration(monkeypatch, [1e9, 5e8, 3e9])
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    expected = plan.speed().decode_tokens_per_s
    assert not plan.speed_missed(Speed(0.0, 1.25 * expected, N_BATCH))
    assert plan.speed_missed(Speed(0.0, 1.35 * expected, N_BATCH))
    assert plan.speed().decode_tokens_per_s == pytest.approx(expected, rel=1e-9)  # 5e8 measured, 1e9 kept
    assert measured == ["cpu_simd", "cpu_simd"]
    assert plan.speed_missed(Speed(0.0, 3 * expected, N_BATCH))
    assert plan.speed().decode_tokens_per_s == pytest.approx(3 * expected, rel=1e-9)
    assert measured == ["cpu_simd"] * 3
    plan.speed()
    assert measured == ["cpu_simd"] * 3  # cached again


def test_a_prompt_speed_over_the_plan_measures_again(default_model_path, monkeypatch):
    from llmcore.engine.plan import Speed

    measured = fake_calibration(monkeypatch, 1e9)
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    expected = plan.speed()
    assert plan.speed_missed(Speed(1.5 * expected.prompt_tokens_per_s, expected.decode_tokens_per_s, N_BATCH))
    plan.speed()
    assert measured == ["cpu_simd", "cpu_simd"]


def test_a_miss_measures_again_only_the_figures_of_the_speed_that_missed(default_model_path, monkeypatch):
    """A decode step faster than planned re-times decode's figures; the prompt's, which the run
    agreed with, stay as they were (a second calibration's luckier ones would make the plan
    promise more than runs reach), and the other way round."""
    from llmcore.engine.plan import Speed

    measured = fake_calibration(monkeypatch, [1e9, 2e9, 4e9], ops=[1e10, 2e10, 4e10])  # decode bytes-bound, prompt ops-bound
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    first = plan.speed()
    assert plan.speed_missed(Speed(first.prompt_tokens_per_s, 2 * first.decode_tokens_per_s, N_BATCH))
    second = plan.speed()
    assert measured == ["cpu_simd", "cpu_simd"]
    assert second.decode_tokens_per_s == pytest.approx(2 * first.decode_tokens_per_s, rel=1e-9)
    # ops 2e10 not taken (the prompt's last-token output product streams its bytes: a little faster)
    assert second.prompt_tokens_per_s == pytest.approx(first.prompt_tokens_per_s, rel=0.02)
    assert plan.speed_missed(Speed(4 * first.prompt_tokens_per_s, second.decode_tokens_per_s, N_BATCH))
    third = plan.speed()
    assert third.prompt_tokens_per_s == pytest.approx(4 * first.prompt_tokens_per_s, rel=0.05)  # 4e10 taken
    assert third.decode_tokens_per_s == pytest.approx(second.decode_tokens_per_s, rel=1e-9)  # 4e9 not taken


def test_other_kernels_are_calibrated_anew(default_model_path, monkeypatch):
    """A backend's calibration is kept per build (its kernels): figures timed on other code are not
    reused, and both are kept."""
    import llmcore.engine.calibration as calibration
    from llmcore_cpu_simd.backend import CpuSimdBackend

    measured = fake_calibration(monkeypatch, 1e9)
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    plan.speed()
    built = CpuSimdBackend(n_threads=1).build_id()
    assert built.startswith("llmcore_cpu_simd-")
    monkeypatch.setattr(CpuSimdBackend, "build_id", lambda self: "llmcore_cpu_simd-avx2-0123456789abcdef")
    plan.speed()
    plan.speed()
    assert measured == ["cpu_simd", "cpu_simd"]
    keys = list(json.loads((calibration.cache_dir() / calibration.CACHE_NAME).read_text()))
    assert any(f"|build={built}|" in key for key in keys) and any("|build=llmcore_cpu_simd-avx2-0123" in key for key in keys)


def test_speed_missed_never_measures(default_model_path, monkeypatch):
    from llmcore.engine.plan import Speed

    measured = fake_calibration(monkeypatch, 1e9)
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    assert not plan.speed_missed(Speed(0.0, 1e-3, N_BATCH))
    assert measured == []


def test_calibration_is_kept_per_cpu_model(default_model_path, monkeypatch):
    import llmcore.engine.calibration as calibration

    measured = fake_calibration(monkeypatch, 1e9)
    plan = Plan.build(Model(default_model_path), "cpu_simd", n_batch=N_BATCH, n_threads=2)
    plan.speed()
    monkeypatch.setattr(calibration, "host_cpu", lambda: "Another CPU family 6 model 143 stepping 8 flags 0123abcd")
    plan.speed()
    assert measured == ["cpu_simd", "cpu_simd"]
    key = next(iter(json.loads((calibration.cache_dir() / calibration.CACHE_NAME).read_text())))
    assert "cpu=" in key


def test_host_cpu_names_the_model_and_its_flags():
    from llmcore.host import host_cpu

    name = host_cpu()
    assert name
    if Path("/proc/cpuinfo").exists() and "model name" in Path("/proc/cpuinfo").read_text():
        first = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        assert name.startswith(first.split(":", 1)[1].strip())
        assert " flags " in name


def test_calibration_takes_the_best_run(monkeypatch):
    """A run slowed by other work on the machine does not make the machine look slow."""
    import llmcore.engine.calibration as calibration

    durations = iter([0.0, 0.2, 0.001, 0.3, 0.002, 0.4] + [0.001] * 1000)

    class Executable:
        def run(self, fed, n_kv):
            time.sleep(next(durations))

    assert calibration._best_run(Executable(), {}, 0) < 0.1  # the slowed runs took 0.2-0.4 s, their mean 0.18


def test_bench_prints_the_plan_beside_the_measurement(default_model_path, capsys):
    assert main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-t", "2", "-r", "1",
                 "-p", "16", "-n", "8"]) == 0
    out = capsys.readouterr().out
    assert "pp: llmcore plan expected" in out and "tg: llmcore plan expected" in out
