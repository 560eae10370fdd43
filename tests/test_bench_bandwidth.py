"""``llmcore bench`` puts decode against the memory-bandwidth limit: the weight bytes one decode step
streams, the bandwidth a streaming read reaches here, and the fraction of it decode achieves."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from llmcore.cli import main
from llmcore.engine.model import Model
from llmcore.engine.plan import Plan
from llmcore.tools.bench import decode_weight_bytes, streaming_read_bandwidth

ARCH = Path(__file__).parent / "fixtures" / "arch"


def matrix_bytes_from_the_tensor_table(model: Model) -> int:
    """Every matrix's bytes from the GGUF tensor table (and the shared expert's gate, a vector used
    as a one-row matrix): the input embedding only where it is also the output head (no
    output.weight), a stacked expert tensor for its routed share."""
    tensors = model.reader.tensors
    hp = model.hparams
    total = 0
    for name, t in tensors.items():
        is_matrix = len(t.shape) >= 2 or name.endswith(".ffn_gate_inp_shexp.weight")
        if not is_matrix or name == "token_embd.weight" and "output.weight" in tensors:
            continue
        total += t.n_bytes * hp.n_expert_used // hp.n_expert if "_exps." in name else t.n_bytes
    return total


@pytest.mark.parametrize("path", ["default", ARCH / "llama.gguf", ARCH / "qwen3moe.gguf", ARCH / "qwen2moe.gguf"],
                         ids=["default-tied", "llama-untied", "qwen3moe", "qwen2moe-shared-expert"])
def test_decode_reads_each_matrix_once_and_the_routed_experts_share(path, default_model_path):
    model = Model(default_model_path if path == "default" else path)
    try:
        graph = Plan.build(model, "reference", n_ctx=64).graph(1)
        assert decode_weight_bytes(model, graph) == matrix_bytes_from_the_tensor_table(model)
    finally:
        model.close()


def test_streaming_read_bandwidth_is_a_memory_speed():
    bandwidth = streaming_read_bandwidth(2)
    assert math.isfinite(bandwidth) and 1e8 < bandwidth < 1e13  # 100 MB/s to 10 TB/s


def test_bench_prints_the_fraction_of_the_bandwidth_decode_reaches(default_model_path, capsys):
    assert main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-t", "2", "-r", "1",
                 "-p", "0", "-n", "8"]) == 0
    out = capsys.readouterr().out
    model = Model(default_model_path)
    expected_mb = matrix_bytes_from_the_tensor_table(model) / 1e6
    model.close()
    mb, gb_s, limit = map(float, re.search(
        r"decode reads ([\d.]+) MB of weights per token; streaming read ([\d.]+) GB/s \(2 threads, median of 5\): "
        r"limit ([\d.]+) t/s", out).groups())
    assert mb == pytest.approx(expected_mb, abs=5e-4)
    assert limit == pytest.approx(gb_s * 1e3 / mb, rel=1e-3)
    tokens_s, mb_again, achieved_gb_s, fraction = map(float, re.search(
        r"tg8 cpu_simd: ([\d.]+) t/s x ([\d.]+) MB = ([\d.]+) GB/s, ([\d.]+) of the memory bandwidth", out).groups())
    table_tokens_s = float(re.search(r"\| +tg8 \| +([\d.]+) ±", out).group(1))
    assert tokens_s == table_tokens_s and mb_again == mb
    assert achieved_gb_s == pytest.approx(tokens_s * mb / 1e3, abs=1e-3)
    assert 0 < fraction == pytest.approx(achieved_gb_s / gb_s, abs=2e-3)


def test_bench_depth_fills_the_context_before_each_test(default_model_path, capsys):
    """``-d`` as llama-bench's: the tests run after that many tokens, named "pp8 @ d40", and the
    plan and bandwidth lines (an empty cache's) are left out."""
    from llmcore.api import LLM
    from llmcore.tools.bench import generation_speed, prompt_speed

    llm = LLM(default_model_path, backend="cpu_simd", n_ctx=128, n_threads=2)
    rng = np.random.default_rng(0)
    assert prompt_speed(llm, 8, rng, depth=40) > 0 and llm.context.seq_pos_max(0) == 47
    assert generation_speed(llm, 4, rng, depth=40) > 0 and llm.context.seq_pos_max(0) == 43
    assert generation_speed(llm, 4, rng) > 0 and llm.context.seq_pos_max(0) == 3

    assert main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-t", "2", "-r", "1",
                 "-p", "8", "-n", "4", "-d", "40"]) == 0
    out = capsys.readouterr().out
    speeds = dict(re.findall(r"\|\s+((?:pp8|tg4) @ d40) \|\s+([\d.]+) ±", out))
    assert set(speeds) == {"pp8 @ d40", "tg4 @ d40"} and all(float(v) > 0 for v in speeds.values())
    assert "plan expected" not in out and "memory bandwidth" not in out

    # lists, as llama-bench takes them: every test at every depth; the plan and bandwidth lines for depth 0
    assert main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-t", "2", "-r", "1",
                 "-p", "0", "-n", "4,6", "-d", "0,20"]) == 0
    out = capsys.readouterr().out
    tests = re.findall(r"\|\s+(tg\d+(?: @ d\d+)?) \|\s+[\d.]+ ±", out)
    assert tests == ["tg4", "tg4 @ d20", "tg6", "tg6 @ d20"]
    assert re.search(r"^tg: llmcore plan expected [\d.]+ t/s, measured [\d.]+", out, re.M)
    assert re.findall(r"^(tg\S*) cpu_simd: [\d.]+ t/s x", out, re.M) == ["tg4"]


def test_bench_depth_past_the_context_is_a_one_line_error(default_model_path, capsys):
    assert main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-c", "256", "-r", "1",
                 "-p", "0", "-n", "8", "-d", "250"]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "depth of 250 tokens and a test of 8 need 258 cells" in err and "-c is 256" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-d", "0,-1"])
    assert exit_info.value.code == 2 and "token counts are 0 or more: '0,-1'" in capsys.readouterr().err
