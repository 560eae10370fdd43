"""cpu_simd's one-token paths (the GEMV with its own prefetching near or farther ahead or without it,
or row by row, per weight type), its products' chunks per thread and its prompt GEMM's tile tokens are timed on this CPU, kept
per CPU beside the compiled library, said in the features line, and every choice gives the same
bits."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from llmcore.api import LLM
from llmcore.cli import main
from llmcore.engine.batch import Batch
from llmcore.gguf import GGMLType
from llmcore.plugin_api import host_cpu

from llmcore_cpu_simd import library, tuning
from llmcore_cpu_simd.backend import selected_level
from llmcore_cpu_simd.build import build


@pytest.fixture
def lib():
    level = selected_level()
    lib = library.load(level)
    yield lib
    tuning.one_token_paths(lib, library.ffi, build(level))  # the timed choices back, whatever a test set
    tuning.mul_mat_chunks(lib, library.ffi, build(level))
    tuning.tile_tokens(lib, library.ffi, build(level))


KQUANT_MODEL = Path(__file__).parent / "fixtures" / "kquant" / "q4_k_m.gguf"


def test_the_paths_are_timed_once_per_cpu_and_kept(lib, tmp_path, monkeypatch):
    timed = []
    real = tuning._time_type
    monkeypatch.setattr(tuning, "_time_type", lambda lib, ffi, t: timed.append(t) or real(lib, ffi, t))
    library_path = tmp_path / "llmcore_cpu_simd-test.so"
    first = tuning.one_token_paths(lib, library.ffi, library_path)
    with_gemv = [t for t in GGMLType if lib.lc_has_one_token_gemv(int(t))]
    assert sorted(first) == sorted(t.name for t in with_gemv) and timed == with_gemv
    for choice in first.values():
        paths = ("gemv", "gemv, prefetch farther", "gemv, hardware prefetch", "row by row")
        assert choice["path"] in paths
        assert all(choice[f"{path} ns/row"] > 0 for path in paths)
    assert tuning.one_token_paths(lib, library.ffi, library_path) == first and len(timed) == len(with_gemv)  # cached
    stored = json.loads(library_path.with_suffix(".tuning.json").read_text())
    assert list(stored) == [host_cpu()]
    monkeypatch.setattr(tuning, "host_cpu", lambda: "Another CPU family 6 model 143 stepping 8 flags 0123abcd")
    tuning.one_token_paths(lib, library.ffi, library_path)
    assert len(timed) == 2 * len(with_gemv)  # another CPU: timed again, both kept
    assert len(json.loads(library_path.with_suffix(".tuning.json").read_text())) == 2


def test_every_path_gives_the_same_logits(lib, default_model_path):
    """The default model's products are Q4_1 and Q8_0 (its output head): one-token logits through the
    GEMVs, prefetching near, far or not, and row by row are the same bits."""
    llm = LLM(default_model_path, backend="cpu_simd", n_ctx=256, n_threads=2)
    prompt = llm.tokenize("The three primary colors are")

    def decode_logits() -> np.ndarray:
        llm.reset()
        llm.context.decode(Batch.for_sequence(prompt[:-1], 0))
        return llm.context.decode(Batch.for_sequence(prompt[-1:], len(prompt) - 1)).copy()

    logits = []
    for path in (lib.LC_ONE_TOKEN_GEMV, lib.LC_ONE_TOKEN_GEMV_FAR_PREFETCH, lib.LC_ONE_TOKEN_GEMV_HARDWARE_PREFETCH,
                 lib.LC_ONE_TOKEN_ROW_BY_ROW):
        for t in GGMLType:
            if lib.lc_has_one_token_gemv(int(t)):
                lib.lc_set_one_token_path(int(t), path)
        logits.append(decode_logits().view(np.uint32))
    assert all(np.array_equal(logits[0], other) for other in logits[1:])


def test_the_timed_paths_compute_the_product(lib):
    """What the tuning times is what a product runs: its chain's product through every path gives
    the same bits, each row vec_dot's."""
    ffi = library.ffi
    pool, threads = tuning._timed_pool(lib, ffi)
    for t in (t for t in GGMLType if lib.lc_has_one_token_gemv(int(t))):
        chain = tuning._Chain(lib, ffi, pool, threads, t, 1, 1)
        outputs = []
        for path in (lib.LC_ONE_TOKEN_GEMV, lib.LC_ONE_TOKEN_GEMV_FAR_PREFETCH, lib.LC_ONE_TOKEN_GEMV_HARDWARE_PREFETCH,
                 lib.LC_ONE_TOKEN_ROW_BY_ROW):
            lib.lc_set_one_token_path(int(t), path)
            chain.out[:] = np.nan
            assert lib.lc_graph_run(chain.program, 0) == 0
            outputs.append(chain.out[0].copy())
        row_bytes = chain.weights.nbytes // tuning.CHAIN_ROWS
        dots = np.zeros(tuning.CHAIN_ROWS, np.float32)
        for r in range(tuning.CHAIN_ROWS):
            lib.lc_traits[int(t)].vec_dot(tuning.WIDTH, ffi.cast("float *", ffi.from_buffer(dots[r:])),
                                          ffi.from_buffer(chain.weights[r * row_bytes:]),
                                          ffi.from_buffer(chain.activations))
        assert np.isfinite(dots).all(), t.name
        for y in outputs:
            assert np.array_equal(y.view(np.uint32), dots.view(np.uint32)), t.name


class Recorded:
    """The library, with the arguments its setter ``setter`` is given recorded."""

    def __init__(self, lib, setter: str):
        self._lib, self._setter, self.set_to = lib, setter, []

    def __getattr__(self, name):
        if name != self._setter:
            return getattr(self._lib, name)

        def record(*args):
            self.set_to.append(args)
            getattr(self._lib, name)(*args)
        return record


def test_the_chunk_counts_are_timed_once_per_cpu_kept_and_applied(lib, tmp_path, monkeypatch):
    timed = []
    real = tuning._time_chunks
    monkeypatch.setattr(tuning, "_time_chunks", lambda lib, ffi: timed.append(1) or real(lib, ffi))
    library_path = tmp_path / "llmcore_cpu_simd-test.so"
    recorded = Recorded(lib, "lc_set_mul_mat_chunks")
    start = time.perf_counter()
    first = tuning.mul_mat_chunks(recorded, library.ffi, library_path)
    assert time.perf_counter() - start < 4  # about 1 s; a loaded machine's runs take longer
    assert sorted(first) == ["batch", "one token"] and len(timed) == 1
    for choice in first.values():
        assert choice["chunks"] in tuning.CHUNK_COUNTS
        assert all(choice[f"{count} ms"] > 0 for count in tuning.CHUNK_COUNTS)
    assert recorded.set_to[-1] == (first["one token"]["chunks"], first["batch"]["chunks"])
    cache = library_path.with_suffix(".tuning.json")
    stored = json.loads(cache.read_text())
    assert stored[host_cpu()]["mul_mat chunks per thread"] == first
    stored[host_cpu()]["mul_mat chunks per thread"]["one token"]["chunks"] = 16
    stored[host_cpu()]["mul_mat chunks per thread"]["batch"]["chunks"] = 1
    cache.write_text(json.dumps(stored))
    assert tuning.mul_mat_chunks(recorded, library.ffi, library_path)["one token"]["chunks"] == 16
    assert len(timed) == 1 and recorded.set_to[-1] == (16, 1)  # read from the cache, not timed, applied


def test_every_chunk_count_gives_the_same_logits(lib, default_model_path):
    """Rows are independent: a prompt's logits (every row) and one token's are the same bits however
    many chunks the products' rows are cut into."""
    llm = LLM(default_model_path, backend="cpu_simd", n_ctx=256, n_threads=2)
    prompt = llm.tokenize("The three primary colors are red, yellow and blue; mixing two of them gives")

    def logits() -> np.ndarray:
        llm.reset()
        rows = llm.context.decode(Batch.for_sequence(prompt[:-1], 0, all_logits=True)).copy()
        last = llm.context.decode(Batch.for_sequence(prompt[-1:], len(prompt) - 1)).copy()
        return np.concatenate([rows.reshape(-1), last.reshape(-1)])

    runs = {}
    for count in tuning.CHUNK_COUNTS:
        lib.lc_set_mul_mat_chunks(count, count)
        runs[count] = logits()
    for count, values in runs.items():
        assert np.array_equal(values.view(np.uint32), runs[tuning.DEFAULT_CHUNKS].view(np.uint32)), count


def test_the_tile_tokens_are_timed_once_per_cpu_kept_and_applied(lib, tmp_path):
    library_path = tmp_path / "llmcore_cpu_simd-test.so"
    recorded = Recorded(lib, "lc_set_tile_tokens")
    first = tuning.tile_tokens(recorded, library.ffi, library_path)
    assert list(first) == list(tuning.TILE_TOKENS)
    for family, (_, options) in tuning.TILE_TOKENS.items():
        assert first[family]["tokens"] in options
        assert all(first[family][f"{n} ms"] > 0 for n in options)  # an AVX2 or AVX-512 build: timed
    assert recorded.set_to[-1] == tuple(first[family]["tokens"] for family in tuning.TILE_TOKENS)
    cache = library_path.with_suffix(".tuning.json")
    stored = json.loads(cache.read_text())
    stored[host_cpu()]["tile tokens"]["32-block types"]["tokens"] = 1
    stored[host_cpu()]["tile tokens"]["K-quants"]["tokens"] = 2
    cache.write_text(json.dumps(stored))
    calls = len(recorded.set_to)
    assert tuning.tile_tokens(recorded, library.ffi, library_path)["K-quants"]["tokens"] == 2
    assert recorded.set_to[calls:] == [(1, 2)]  # read from the cache, not timed, applied


@pytest.mark.parametrize("model", ["default", "k-quants"])
def test_every_tile_gives_the_same_logits(lib, default_model_path, model):
    """A tile's tokens only group the columns: a prompt's logits (every row: Q4_1 and Q8_0 products in
    the default model, Q4_K, Q5_0 and Q6_K in the K-quant one) are the same bits with every count."""
    llm = LLM(default_model_path if model == "default" else KQUANT_MODEL, backend="cpu_simd", n_ctx=256, n_threads=2)
    prompt = llm.tokenize("The three primary colors are red, yellow and blue; mixing two of them gives green, "
                          "orange or purple, and all three give brown")
    assert len(prompt) >= 16 and len(prompt) % 4  # the packed GEMM's batches, with tokens past whole tiles

    def logits() -> np.ndarray:
        llm.reset()
        return llm.context.decode(Batch.for_sequence(prompt, 0, all_logits=True)).copy()

    runs = []
    for legacy, k_quants in ((2, 4), (1, 2)):
        lib.lc_set_tile_tokens(legacy, k_quants)
        runs.append(logits())
    assert np.isfinite(runs[0]).all()
    assert np.array_equal(runs[0].view(np.uint32), runs[1].view(np.uint32))


def test_verbose_bench_says_what_was_picked(default_model_path, capsys):
    assert main(["bench", "-m", str(default_model_path), "--backend", "cpu_simd", "-t", "2", "-r", "1",
                 "-p", "0", "-n", "4", "-v"]) == 0
    err = capsys.readouterr().err
    assert "one-token products (timed here):" in err
    chunks = re.search(r"product chunks per thread \(timed here\): one token (\d+), batch (\d+)", err)
    assert chunks and {int(c) for c in chunks.groups()} <= set(tuning.CHUNK_COUNTS)
    tiles = re.search(r"prompt GEMM tile tokens \(timed here\): 32-block types (\d), K-quants (\d)", err)
    assert tiles and int(tiles[1]) in (1, 2) and int(tiles[2]) in (2, 4)


def test_a_timed_choice_leaves_the_default_unless_it_wins_every_round():
    """One round's winner on a busy machine is noise: another option replaces the default only where
    it beats it by 5% in every round (the rule of both the one-token paths and the chunk counts)."""
    from llmcore_cpu_simd.tuning import choice

    steady = [{"gemv": 1.0, "row by row": 0.90}, {"gemv": 1.1, "row by row": 0.99},
              {"gemv": 0.9, "row by row": 0.80}]
    assert choice(steady, "gemv") == "row by row"
    one_slow_minute = [{"gemv": 1.0, "row by row": 0.90}, {"gemv": 1.0, "row by row": 0.97},
                       {"gemv": 1.0, "row by row": 0.80}]
    assert choice(one_slow_minute, "gemv") == "gemv"
    assert choice([{1: 1.0, 4: 1.0, 8: 0.5}, {1: 0.9, 4: 1.0, 8: 0.6}], 4) == 8
    assert choice([{1: 0.5, 4: 1.0}, {1: 1.2, 4: 1.0}], 4) == 4
