"""The cpu_simd backend end to end on the default model: llama.cpp's goldens, bit-identical
results across ISA levels and thread counts, and decode rows that do not depend on their batch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import golden_names, load_golden
from llmcore.engine.batch import Batch
from llmcore.engine.context import Context, LayerPlacement
from llmcore.engine.model import Model
from llmcore.plugin_api import GGMLType, WeightData

pytest.importorskip("llmcore_cpu_simd", reason="the cpu_simd plugin is not installed")

from llmcore_cpu_simd import CpuSimdBackend, buffers  # noqa: E402
from llmcore_cpu_simd.isa import supported_levels  # noqa: E402

_status = CpuSimdBackend.probe()
if not _status.usable:
    pytest.skip(f"cpu_simd cannot run here: {_status.reason}", allow_module_level=True)

NEAR_TIE = 0.1


@pytest.fixture(scope="module")
def model(default_model_path):
    return Model(default_model_path)


@pytest.fixture(scope="module")
def backend():
    return CpuSimdBackend(n_threads=2)


def make_context(model: Model, backend: CpuSimdBackend, n_ctx: int = 256) -> Context:
    return Context(model, LayerPlacement.single(backend, model.hparams.n_layer), n_ctx=n_ctx)


def all_logits(model: Model, backend: CpuSimdBackend, tokens: list[int]) -> np.ndarray:
    return make_context(model, backend).decode(Batch.for_sequence(tokens, 0, all_logits=True))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    peak = logits.max(axis=1, keepdims=True)
    return logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))


def test_logits_match_llama_cpp_goldens(model, backend):
    """Pass marks: top-1 agrees on >= 98% of rows, p99 |logprob error| <= 0.25 on the golden
    top-1 and <= 0.6 over the golden top-10 (what llama.cpp itself meets on another CPU)."""
    hits = rows = 0
    top1_errors, top10_errors = [], []
    for name in golden_names():
        record, topk = load_golden(name)
        tokens = (record["prompt_tokens"] + record["greedy_tokens"])[: record["logits_rows"]]
        ours = log_softmax(all_logits(model, backend, tokens))
        gold = topk["val"] - topk["lse"][:, None]
        idx = topk["idx"].astype(np.int64)
        hits += int((ours.argmax(axis=1) == idx[:, 0]).sum())
        rows += len(tokens)
        picked = np.take_along_axis(ours, idx[:, :10], axis=1)
        top1_errors.append(np.abs(picked[:, 0] - gold[:, 0]))
        top10_errors.append(np.abs(picked - gold[:, :10]).max(axis=1))
    assert rows > 0, "no goldens found"
    assert hits / rows >= 0.98
    assert np.percentile(np.concatenate(top1_errors), 99) <= 0.25
    assert np.percentile(np.concatenate(top10_errors), 99) <= 0.6


@pytest.mark.parametrize("name", golden_names()[:3])
def test_greedy_continuation_follows_llama_cpp(model, backend, name):
    record, topk = load_golden(name)
    prompt, expected = record["prompt_tokens"], record["greedy_tokens"]
    ctx = make_context(model, backend)
    logits = ctx.decode(Batch.for_sequence(prompt, 0))
    for step, want in enumerate(expected):
        got = int(logits[-1].argmax())
        if got != want:
            row = len(prompt) - 1 + step
            gap = float(topk["val"][row, 0] - topk["val"][row, 1])
            assert gap < NEAR_TIE, f"step {step}: got {got}, llama.cpp {want} with a top-2 gap of {gap:.3f}"
            return  # a near tie decided by rounding: the rest legitimately differs
        logits = ctx.decode(Batch.for_sequence([want], len(prompt) + step))


def test_every_isa_level_and_thread_count_gives_the_same_bits(model):
    """Every kernel adds up in llama.cpp's order whatever the ISA, and work is split by output
    rows only, so the logits are bit-identical across levels and thread counts."""
    record, _ = load_golden(golden_names()[0])
    tokens = record["prompt_tokens"][:12]
    results = {(level, threads): all_logits(model, CpuSimdBackend(n_threads=threads, isa_level=level), tokens)
               for level in supported_levels() for threads in (1, 3)}
    first = next(iter(results.values()))
    for key, logits in results.items():
        np.testing.assert_array_equal(logits, first, err_msg=f"{key} differs")


def test_decode_rows_do_not_depend_on_the_batch(model, backend):
    """A token decoded alone and the same token inside a 5-token batch of other sequences give
    bit-identical logits."""
    tokens = [1, 504, 3458, 282, 2114]
    alone = make_context(model, backend).decode(Batch.for_sequence([tokens[2]], 0))[0]
    batch = Batch(np.array(tokens, np.int32), np.zeros(5, np.int32), np.arange(5, dtype=np.int32), np.ones(5, bool))
    together = make_context(model, backend).decode(batch)
    np.testing.assert_array_equal(together[2], alone)
    # and after some history, one step of three sequences against each alone
    history = make_context(model, backend)
    for seq, token in enumerate(tokens[:3]):
        history.decode(Batch(np.array([token, 17], np.int32), np.array([0, 1], np.int32),
                             np.full(2, seq, np.int32), np.zeros(2, bool)))
    step = history.decode(Batch(np.array([42, 43, 44], np.int32), np.full(3, 2, np.int32),
                                np.arange(3, dtype=np.int32), np.ones(3, bool)))
    single = make_context(model, backend)
    single.decode(Batch(np.array([tokens[1], 17], np.int32), np.array([0, 1], np.int32), np.zeros(2, np.int32),
                        np.zeros(2, bool)))
    np.testing.assert_array_equal(single.decode(Batch.for_sequence([43], 2))[0], step[1])


def small_weights() -> list[WeightData]:
    rng = np.random.default_rng(0)
    norm = rng.standard_normal(100).astype(np.float32)
    rows = np.frombuffer(rng.bytes(3 * 34), np.uint8).reshape(3, 34)  # three Q8_0 rows of 32 values
    return [WeightData("norm", GGMLType.F32, (100,), norm), WeightData("rows", GGMLType.Q8_0, (3, 32), rows)]


def test_weights_are_copied_into_an_arena_of_huge_pages_where_the_kernel_offers_them(monkeypatch):
    """The copies hold the same bytes, read-only, each on a cache line, the first on a 2 MB page."""
    monkeypatch.delenv(buffers.HUGE_PAGES_ENV, raising=False)
    # skipped by the kernel's own setting, not by the function under test: where THP is offered the
    # arena must come
    if not buffers.THP_MODE.exists() or "[never]" in buffers.THP_MODE.read_text():
        pytest.skip("transparent huge pages are off or absent in this kernel")
    weights, backend = small_weights(), CpuSimdBackend(n_threads=1)
    backend.load_weights(weights)
    for w in weights:
        copy = backend._weights[w.name]
        assert not np.shares_memory(copy, w.raw) and not copy.flags.writeable
        assert copy.ctypes.data % buffers.ALIGN == 0
        np.testing.assert_array_equal(copy, w.raw)
    assert backend._weights["norm"].ctypes.data % buffers.HUGE_PAGE == 0


def test_weights_stay_views_of_the_file_where_huge_pages_are_off(tmp_path, monkeypatch):
    mode = tmp_path / "enabled"
    mode.write_text("always madvise [never]\n")
    monkeypatch.setattr(buffers, "THP_MODE", mode)
    weights, backend = small_weights(), CpuSimdBackend(n_threads=1)
    backend.load_weights(weights)
    assert all(np.shares_memory(backend._weights[w.name], w.raw) for w in weights)


def test_weights_stay_views_of_the_file_where_the_environment_turns_huge_pages_off(monkeypatch):
    """``LLMCORE_CPU_SIMD_HUGE_PAGES=0``: the 4 KB-page path even where the kernel offers huge pages."""
    monkeypatch.setenv(buffers.HUGE_PAGES_ENV, "0")
    weights, backend = small_weights(), CpuSimdBackend(n_threads=1)
    backend.load_weights(weights)
    assert all(np.shares_memory(backend._weights[w.name], w.raw) for w in weights)
