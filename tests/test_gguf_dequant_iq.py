"""Dequantization of the i-quants, ternary, FP4 and 1/2-bit types, bit for bit: against llama.cpp's
C ``dequantize_row_*`` (goldens made by scripts/make_iq_goldens.py through libggml, where the
vendored gguf-py agreed with it for every type it has) and against the installed ``gguf`` package's
dequantizer on fully random bytes (inf/NaN scales included) wherever it has one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize

from llmcore.gguf import GGML_QUANT_SIZES, SUPPORTED_TYPES, GGMLType, dequantize

GOLDENS = Path(__file__).parent / "fixtures" / "gguf" / "iq_dequant.npz"
TYPES = ["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "IQ4_NL", "IQ4_XS",
         "TQ1_0", "TQ2_0", "MXFP4", "NVFP4", "Q1_0", "Q2_0"]


def assert_bit_exact(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    nan = np.isnan(ours)  # only NaN payloads may differ
    np.testing.assert_array_equal(nan, np.isnan(reference))
    np.testing.assert_array_equal(ours.view(np.uint32)[~nan], reference.view(np.uint32)[~nan])


def test_every_type_is_supported():
    assert {GGMLType[name] for name in TYPES} <= SUPPORTED_TYPES


@pytest.mark.parametrize("kind", ["random", "quantized"])
@pytest.mark.parametrize("name", TYPES)
def test_matches_llama_cpp_c_reference(name, kind):
    goldens = np.load(GOLDENS)
    raw, expected = goldens[f"{name}.{kind}"], goldens[f"{name}.{kind}.values"]
    ours = dequantize(raw, GGMLType[name], expected.shape)
    assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32)), (
        f"{np.count_nonzero(ours != expected)} of {ours.size} values differ")


def _gguf_has_dequantizer(qtype: GGMLType) -> bool:
    try:
        gguf_dequantize(np.zeros((1, GGML_QUANT_SIZES[qtype][1]), np.uint8), qtype)
    except (NotImplementedError, KeyError, ValueError):
        return False
    return True


@pytest.mark.parametrize("name", TYPES)
def test_random_bytes_match_gguf_package(name):
    qtype = GGMLType[name]
    if not _gguf_has_dequantizer(qtype):
        pytest.skip(f"the installed gguf package cannot dequantize {name} (the C goldens cover it)")
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(int(qtype))
    raw = rng.integers(0, 256, size=(5, 9 * type_size), dtype=np.uint8)
    with np.errstate(all="ignore"):
        expected = gguf_dequantize(raw, qtype)
    assert_bit_exact(dequantize(raw, qtype, (5, 9 * block_size)), expected)


@pytest.mark.parametrize("name", ["IQ4_XS", "IQ2_XXS", "TQ1_0"])
def test_chunked_large_tensor_matches_rowwise(name):
    """More blocks than one chunk of the vectorised kernel: the chunks join without a seam."""
    qtype = GGMLType[name]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    goldens = np.load(GOLDENS)
    raw = np.tile(goldens[f"{name}.quantized"], (7000, 1))  # 3 x 7000 rows of 2 blocks
    whole = dequantize(raw, qtype, (raw.shape[0], raw.shape[1] // type_size * block_size))
    expected = goldens[f"{name}.quantized.values"]
    assert np.array_equal(whole[-3:], expected) and np.array_equal(whole[:3], expected)
