"""The KV cache in llama.cpp's other types (-ctk/-ctv) and flash attention (-fa) against llama.cpp
0.3.36 (scripts/make_kv_type_goldens.py): the rows a cache stores, the logits of a prompt in one batch
and of tokens decoded one at a time for every combination llama.cpp allows (on SmolLM2 and on the tiny
K-quant llama), within tests/test_goldens.py's marks and bit for bit where the backend claims
llama.cpp's order; the bytes the cache takes and the line that says so; llama.cpp's refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmcore.conformance.compare import GOLDEN_P99_TOP1_ERROR, GOLDEN_P99_TOP10_ERROR, GOLDEN_TOP1_RATE
from llmcore.engine.registry import availability, backend_classes
from llmcore.errors import LLMCoreError
from llmcore.graph import kv_types

FIXTURES = Path(__file__).parent / "fixtures" / "kv_types"
KQUANT_MODEL = Path(__file__).parent / "fixtures" / "kquant" / "q4_k_m.gguf"
N_CTX = 512  # the goldens' context: their llama_kv_cache lines count these cells
HAS_CPU_SIMD = "cpu_simd" in backend_classes() and availability("cpu_simd").usable
#: combinations the (slow) reference backend runs on SmolLM2, one per path: flash attention's tiled
#: f16 path and its one-row path over block types with the Hadamard rotation, a quantized K without
#: flash attention, bf16 dot products
REFERENCE_COMBOS = ("f16_f16_fa", "q4_0_q4_0_fa", "q8_0_f16_nofa", "bf16_bf16_nofa")


def parse_combo(combo: str) -> tuple[str, str, bool]:
    """"q8_0_f16_nofa" -> ("q8_0", "f16", False)."""
    rest, _, fa = combo.rpartition("_")
    for type_k in kv_types.KV_CACHE_TYPES:
        if rest.startswith(type_k + "_") and rest[len(type_k) + 1:] in kv_types.KV_CACHE_TYPES:
            return type_k, rest[len(type_k) + 1:], fa == "fa"
    raise ValueError(combo)


def golden(model: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{model}.npz") as data:
        return dict(data)


COMBOS = [str(c) for c in golden("smollm2")["combos"]]


def logits(path: Path, backend: str, combo: str, g: dict[str, np.ndarray]) -> np.ndarray:
    """Our logits for the goldens' tokens: the prompt in one batch, then one token at a time."""
    from llmcore import LLM
    from llmcore.engine.batch import Batch

    type_k, type_v, flash = parse_combo(combo)
    # llama.cpp's thread count: its flash attention for one query over a long cache splits the cells among them
    llm = LLM(path, backend=backend, n_ctx=N_CTX, n_threads=int(g["n_threads"]), cache_type_k=type_k,
              cache_type_v=type_v, flash_attn="on" if flash else "off")
    tokens, n_prompt = g["tokens"].tolist(), int(g["n_prompt"])
    rows = [llm.logits(tokens[:n_prompt])]
    for step, token in enumerate(tokens[n_prompt:]):
        rows.append(llm.context.decode(Batch.for_sequence([token], n_prompt + step)))
    return np.concatenate(rows)


def check(ours: np.ndarray, g: dict[str, np.ndarray], combo: str, bit_exact: bool) -> None:
    idx, val, lse = g[f"{combo}_idx"].astype(np.int64), g[f"{combo}_val"], g[f"{combo}_lse"]
    peak = ours.max(axis=1, keepdims=True)
    our_lse = peak[:, 0] + np.log(np.exp(ours - peak).sum(axis=1))
    picked = np.take_along_axis(ours, idx, axis=1)
    errors = np.abs((picked - our_lse[:, None]) - (val - lse[:, None]))
    assert (ours.argmax(axis=1) == idx[:, 0]).mean() >= GOLDEN_TOP1_RATE
    assert np.percentile(errors[:, 0], 99) <= GOLDEN_P99_TOP1_ERROR
    assert np.percentile(errors[:, :10].max(axis=1), 99) <= GOLDEN_P99_TOP10_ERROR
    if bit_exact:
        differing = np.flatnonzero((picked != val).any(axis=1))
        assert differing.size == 0, f"{combo}: rows {differing.tolist()[:8]} differ from llama.cpp's logits"


# -- what a cache stores ---------------------------------------------------------------------


@pytest.mark.parametrize("cache_type", ["f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"])
def test_rows_are_stored_as_ggml_stores_them(cache_type):
    rows = np.load(FIXTURES / "rows.npz")
    ours = kv_types.store_rows(cache_type, rows["x"]).view(np.uint8).reshape(len(rows["x"]), -1)
    theirs = rows[cache_type]
    if cache_type == "iq4_nl":  # a block of ~zeros: scale 0, its nibbles are whatever ggml's stack held
        blocks, want = ours.reshape(len(ours), -1, 18), theirs.reshape(len(theirs), -1, 18)
        unset = (want[:, :, :2] == 0).all(axis=-1)
        blocks[unset, 2:] = want[unset, 2:]
    np.testing.assert_array_equal(ours, theirs)
    back = kv_types.load_rows(cache_type, kv_types.store_rows(cache_type, rows["x"]), rows["x"].shape[1])
    assert np.abs(back - rows["x"]).max() <= 0.2 * np.abs(rows["x"]).max()


def test_hadamard_is_orthonormal_and_its_own_inverse():
    x = np.random.default_rng(3).standard_normal((5, 128)).astype(np.float32)
    for n in (64, 128):
        y = kv_types.hadamard(x, n)
        np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)
        np.testing.assert_allclose(kv_types.hadamard(y, n), x, atol=1e-5)


# -- llama.cpp's logits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(default_model_path):
    return default_model_path, golden("smollm2")


@pytest.mark.skipif(not HAS_CPU_SIMD, reason="the cpu_simd plugin is not installed or cannot build its kernels here")
@pytest.mark.parametrize("combo", COMBOS)
def test_cpu_simd_gives_llama_cpps_logits(smollm2, combo):
    """cpu_simd runs the f32, f16 and block types itself (bf16 and iq4_nl attention on the
    reference backend): llama.cpp's numbers bit for bit, so within the goldens' marks too."""
    path, g = smollm2
    check(logits(path, "cpu_simd", combo, g), g, combo, bit_exact=True)


@pytest.mark.skipif(not HAS_CPU_SIMD, reason="the cpu_simd plugin is not installed or cannot build its kernels here")
@pytest.mark.parametrize("combo", COMBOS)
def test_cpu_simd_gives_llama_cpps_logits_on_the_tiny_k_quant_llama(combo):
    g = golden("kquant_q4_k_m")
    check(logits(KQUANT_MODEL, "cpu_simd", combo, g), g, combo, bit_exact=True)


@pytest.mark.parametrize("combo", REFERENCE_COMBOS)
def test_reference_gives_llama_cpps_logits(smollm2, combo):
    path, g = smollm2
    check(logits(path, "reference", combo, g), g, combo, bit_exact=True)


@pytest.mark.skipif(not HAS_CPU_SIMD, reason="the cpu_simd plugin is not installed or cannot build its kernels here")
@pytest.mark.parametrize("combo", [str(c) for c in golden("smollm2_long")["combos"]])
def test_a_long_prompt_and_its_decoded_tokens_give_llama_cpps_logits(default_model_path, combo):
    """321 prompt tokens: flash attention's tiled path over several tiles, then decoded tokens over a
    512-cell view, whose flash attention over f16 caches llama.cpp splits among its 2 threads."""
    g = golden("smollm2_long")
    check(logits(default_model_path, "cpu_simd", combo, g), g, combo, bit_exact=True)


@pytest.mark.skipif(not HAS_CPU_SIMD, reason="the cpu_simd plugin is not installed or cannot build its kernels here")
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("combo", ["f16_f16_fa", "f16_f16_nofa", "q8_0_q8_0_fa", "q8_0_f16_nofa"])
def test_the_backends_share_a_long_view_among_threads_alike(n_threads, combo):
    """One query's attention over 300 used cells (a 512-cell view) on the reference backend and on
    cpu_simd with ``n_threads`` threads, whose threads share it (flash attention over f16 caches split
    as llama.cpp splits the cells, a chunk a thread, the last merging them in order; the other paths
    query heads a thread): the same bits; a query that sees no cell gives zeros on cpu_simd."""
    from llmcore.backends.reference import ReferenceBackend
    from llmcore.graph.backend import Subgraph
    from llmcore.graph.builder import GraphBuilder
    from llmcore.graph.ir import F32
    from llmcore_cpu_simd.backend import CpuSimdBackend

    type_k, type_v, flash = parse_combo(combo)
    rng = np.random.default_rng(n_threads)
    g = GraphBuilder(1, 1)
    k, v = (g.cache(name, (N_CTX, 128), dtype) for name, dtype in (("k", type_k), ("v", type_v)))
    out = g.attention(g.input("q", (1, 6, 64), F32), k, v, g.input("mask", (1, N_CTX), F32), 0.125, flash=flash)
    graph = g.build({"out": out})
    sub = Subgraph([n for n in graph.nodes if not n.is_leaf], list(graph.inputs.values()), [out], [], graph.caches)
    mask = np.full((1, N_CTX), -np.inf, np.float32)
    mask[0, :300] = 0.0
    feeds = {graph.inputs["q"].id: rng.standard_normal((1, 6, 64)).astype(np.float32),
             graph.inputs["mask"].id: mask}
    results, hidden = [], []
    for backend in (ReferenceBackend(n_threads), CpuSimdBackend(n_threads)):
        executable = backend.compile(sub)
        for name, dtype in (("k", type_k), ("v", type_v)):  # the same 300 cells on both
            view = backend.cache_view(name)
            view[...] = 0
            rows = np.random.default_rng(ord(name)).standard_normal((300, 128)).astype(np.float32)
            view[:300] = kv_types.store_rows(dtype, rows).reshape(view[:300].shape)
        results.append(executable.run(feeds, 300)[0])
        with np.errstate(invalid="ignore"):  # the reference's softmax of no cell, as ggml's: NaN
            hidden.append(executable.run({**feeds, graph.inputs["mask"].id: np.full_like(mask, -np.inf)}, 300)[0])
    np.testing.assert_array_equal(*results)
    assert np.isfinite(results[1]).all() and np.abs(results[1]).max() > 0
    np.testing.assert_array_equal(hidden[1], np.zeros_like(hidden[1]))
    if flash:  # without flash attention ggml's softmax of a row with no cell is NaN; cpu_simd writes zeros
        np.testing.assert_array_equal(*hidden)


# -- what the cache costs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llms():
    from llmcore import LLM

    def make(combo: str, backend: str = "reference"):
        type_k, type_v, flash = parse_combo(combo)
        return LLM(KQUANT_MODEL, backend=backend, n_ctx=N_CTX, cache_type_k=type_k, cache_type_v=type_v,
                   flash_attn="on" if flash else "off")
    return make


@pytest.mark.parametrize("combo", COMBOS)
def test_kv_bytes_and_the_start_up_line_are_llama_cpps(tiny_llms, combo):
    g = golden("kquant_q4_k_m")
    line = dict(zip(g["combos"], g["kv_lines"]))[combo]
    llm = tiny_llms(combo)
    assert f"llama_kv_cache: {llm.context.kv_cache_line()}" == line
    k, v = llm.context.kv_bytes()
    llm.logits([1, 2, 3])  # the caches are allocated: the backend holds exactly those bytes
    assert sum(used.get("kv", 0) for used in llm.memory_used().values()) == k + v


def test_q8_0_cache_takes_34_64ths_of_f16(tiny_llms):
    f16 = sum(tiny_llms("f16_f16_fa").context.kv_bytes())
    q8_0 = sum(tiny_llms("q8_0_q8_0_fa").context.kv_bytes())
    assert q8_0 * 64 == f16 * 34


def test_the_cli_prints_the_cache_line(default_model_path):
    line = dict(zip(*(golden("smollm2")[k] for k in ("combos", "kv_lines"))))["q8_0_q8_0_fa"]
    result = subprocess.run([sys.executable, "-m", "llmcore", "run", "-m", str(default_model_path), "-c", str(N_CTX),
                             "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-p", "Hi", "-n", "1", "-no-cnv"],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert f"llmcore: kv cache: {line.removeprefix('llama_kv_cache: ')}; -fa on" in result.stderr


# -- what llama.cpp refuses, and what -fa auto picks -----------------------------------------------


def test_an_unknown_cache_type_is_a_one_line_error_naming_the_allowed_ones(default_model_path):
    from llmcore import LLM

    allowed = "allowed: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1"
    with pytest.raises(LLMCoreError, match=allowed):
        LLM(KQUANT_MODEL, backend="reference", cache_type_k="q4_k")
    result = subprocess.run([sys.executable, "-m", "llmcore", "run", "-m", str(default_model_path), "-ctv", "q6_K",
                             "-p", "Hi"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert "-ctv/--cache-type-v" in error and "'q6_K'" in error and allowed in error


def test_a_quantized_v_cache_needs_flash_attention(default_model_path):
    from llmcore import LLM

    with pytest.raises(LLMCoreError, match="quantized V cache requires flash_attn to be enabled"):
        LLM(KQUANT_MODEL, backend="reference", cache_type_v="q8_0", flash_attn="off")
    result = subprocess.run([sys.executable, "-m", "llmcore", "run", "-m", str(default_model_path), "-ctv", "q4_0",
                             "-fa", "off", "-p", "Hi"], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "quantized V cache requires flash_attn to be enabled (-ctv q4_0 needs -fa on or auto)")
    auto = LLM(KQUANT_MODEL, backend="reference", cache_type_v="q8_0", flash_attn="auto")
    assert auto.context.cache.flash_attn
    assert "a quantized V cache requires flash attention" in auto.plan.flash_attn_reason


@pytest.mark.parametrize("backend", ["reference"] + (["cpu_simd"] if HAS_CPU_SIMD else []))
@pytest.mark.parametrize("cache_type", ["f16", "bf16"])  # bf16: cpu_simd leaves it to the reference backend
def test_auto_turns_flash_attention_on_for_the_cpu_backends(backend, cache_type):
    from llmcore import LLM

    llm = LLM(KQUANT_MODEL, backend=backend, flash_attn="auto", cache_type_k=cache_type, cache_type_v=cache_type)
    assert llm.context.cache.flash_attn, llm.plan.flash_attn_reason


@pytest.mark.skipif("vulkan" not in backend_classes() or not availability("vulkan").usable,
                    reason="the vulkan plugin is not installed or has no device here")
def test_auto_leaves_flash_attention_off_where_an_accelerator_declines_it():
    """As llama.cpp's auto: the flash attention op would leave the layer's device, so it stays off."""
    from llmcore import LLM

    llm = LLM(KQUANT_MODEL, backend="vulkan", flash_attn="auto")
    assert not llm.context.cache.flash_attn
    assert "vulkan does not run flash attention" in llm.plan.flash_attn_reason


@pytest.mark.skipif(not HAS_CPU_SIMD, reason="the cpu_simd plugin is not installed or cannot build its kernels here")
def test_a_type_cpu_simd_lacks_runs_on_the_reference_backend_and_the_plan_says_so():
    from llmcore.engine.model import Model
    from llmcore.engine.plan import Plan

    plan = Plan.build(Model(KQUANT_MODEL), "cpu_simd", n_ctx=64, cache_type_k="bf16", cache_type_v="bf16",
                      flash_attn="on")
    assert plan.fallbacks() == {"cpu_simd -> reference": {"kv_store": 4, "attention": 2}}


def test_the_flags_reach_every_command():
    from llmcore.cli import build_parser

    parse = build_parser().parse_args
    for command in (["run"], ["serve"], ["bench"], ["perplexity", "-f", "x.txt"], ["plan"]):
        args = parse([*command, "-ctk", "q5_1", "-ctv", "iq4_nl", "-fa", "auto"])
        assert (args.cache_type_k, args.cache_type_v, args.flash_attn) == ("q5_1", "iq4_nl", "auto")
    assert parse(["run", "--flash-attn", "enabled"]).flash_attn == "on"


# -- state files ------------------------------------------------------------------------------------


def test_a_state_carries_its_cache_types_and_other_types_refuse_it(tiny_llms, tmp_path):
    saved, same, other = tiny_llms("q4_1_q4_1_fa"), tiny_llms("q4_1_q4_1_fa"), tiny_llms("q8_0_q8_0_fa")
    prompt = list(range(40, 60))
    saved.eval_prompt(prompt)
    path = tmp_path / "q4_1.state"
    saved.save_state(path)
    assert same.load_state(path) == prompt
    np.testing.assert_array_equal(same.eval_prompt(prompt + [7]), saved.eval_prompt(prompt + [7]))
    with pytest.raises(LLMCoreError) as error:
        other.load_state(path)
    assert str(error.value) == (f"{path}: cache_type: saved with K q4_1, V q4_1; the context uses K q8_0, V q8_0 "
                                "(-ctk/-ctv)")


def test_a_context_shift_requantizes_rotated_keys(tiny_llms):
    """seq_shift reads a quantized, Hadamard-rotated key back, rotates it to the model's basis, applies
    rope's shift and stores it rotated and quantized again (llama.cpp's build_rope_shift): shifting
    by +8 then -8 brings every cell back within the quantization's noise."""
    llm = tiny_llms("q8_0_q8_0_fa")
    llm.eval_prompt(list(range(40, 72)))
    before = {name: kv_types.load_rows("q8_0", view[:32].copy(), 128)
              for name, view in llm.context.cache_views().items() if name.startswith("cache_k")}
    llm.context.seq_shift(0, 0, None, 8)
    llm.context.seq_shift(0, 0, None, -8)
    for name, view in llm.context.cache_views().items():
        if name in before:
            after = kv_types.load_rows("q8_0", view[:32], 128)
            assert np.abs(after - before[name]).max() <= 0.05 * np.abs(before[name]).max()
