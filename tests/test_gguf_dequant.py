"""Dequantization is bit-exact against the gguf package's reference (gguf.quants.dequantize)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as reference_quantize

from llmcore.errors import GGUFError
from llmcore.gguf import GGML_QUANT_SIZES, SUPPORTED_TYPES, GGMLType, GGUFReader, dequantize

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
TINY = FIXTURES / "tiny-llama.gguf"

BLOCK_TYPES = [
    GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
]  # fmt: skip
GGUF_QUANTIZABLE = [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0, GGMLType.BF16]


def reference_dequantize(raw: np.ndarray, qtype: GGMLType) -> np.ndarray:
    with np.errstate(all="ignore"):  # random scales overflow in the reference too
        return gguf_dequantize(raw, qtype)


def assert_bit_exact(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    if np.array_equal(ours.view(np.uint32), reference.view(np.uint32)):
        return
    nan = np.isnan(ours)  # otherwise only NaN payloads may differ
    np.testing.assert_array_equal(nan, np.isnan(reference))
    np.testing.assert_array_equal(ours.view(np.uint32)[~nan], reference.view(np.uint32)[~nan])


@pytest.mark.parametrize("qtype", BLOCK_TYPES + [GGMLType.BF16], ids=lambda t: t.name)
def test_random_blocks_match_reference(qtype: GGMLType) -> None:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(int(qtype))
    n_rows, blocks_per_row = 5, 41  # every byte pattern matters: scales may be inf/nan/subnormal
    raw = rng.integers(0, 256, size=(n_rows, blocks_per_row * type_size), dtype=np.uint8)
    shape = (n_rows, blocks_per_row * block_size)
    assert_bit_exact(dequantize(raw, qtype, shape), reference_dequantize(raw, qtype))


@pytest.mark.parametrize("qtype", GGUF_QUANTIZABLE, ids=lambda t: t.name)
def test_quantized_normal_data_matches_reference(qtype: GGMLType) -> None:
    values = np.random.default_rng(7).standard_normal((16, 512)).astype(np.float32)
    raw = reference_quantize(values, qtype)
    assert_bit_exact(dequantize(raw, qtype, values.shape), reference_dequantize(raw, qtype))


@pytest.mark.parametrize("qtype", [GGMLType.F32, GGMLType.F16], ids=lambda t: t.name)
def test_float_types_match_reference(qtype: GGMLType) -> None:
    dtype = np.float32 if qtype == GGMLType.F32 else np.float16
    bits = np.random.default_rng(3).integers(0, 256, size=(7, 64 * dtype().itemsize), dtype=np.uint8)
    typed = bits.view(dtype)
    assert_bit_exact(dequantize(typed, qtype, typed.shape), reference_dequantize(typed, qtype).astype(np.float32))


def test_integer_types_cast_exactly() -> None:
    values = np.array([[-128, 0, 127]], dtype=np.int8)
    np.testing.assert_array_equal(dequantize(values, GGMLType.I8, (1, 3)), values.astype(np.float32))
    big = np.array([2**24 + 1], dtype=np.int64)
    assert dequantize(big, GGMLType.I64, (1,)).tolist() == [float(np.float32(2**24 + 1))]


def assert_file_matches_reference(path: Path, layers: tuple[str, ...] | None = None) -> None:
    oracle = gguf.GGUFReader(path)
    with GGUFReader(path) as reader:
        for tensor in oracle.tensors:
            if layers is not None and tensor.name.startswith("blk.") and not tensor.name.startswith(layers):
                continue
            expected = reference_dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            assert_bit_exact(reader.dequantize(tensor.name), expected.reshape(reader.tensors[tensor.name].shape))


def test_fixture_file_tensors_match_reference() -> None:
    # real SmolLM2 slices (Q8_0, Q4_1, F32), gguf-py re-quantizations and seeded k-quant blocks
    assert_file_matches_reference(TINY)


def test_default_model_tensors_match_reference(default_model_path: Path) -> None:
    assert_file_matches_reference(default_model_path, layers=("blk.0.", "blk.29."))


@pytest.mark.slow
def test_every_default_model_tensor_matches_reference(default_model_path: Path) -> None:
    assert_file_matches_reference(default_model_path)


def test_unsupported_type_names_tensor_and_type(tmp_path: Path) -> None:
    path = tmp_path / "q8k.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    block_size, type_size = GGML_QUANT_SIZES[GGMLType.Q8_K]
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((2, type_size), np.uint8), raw_dtype=GGMLType.Q8_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert GGMLType.Q8_K not in SUPPORTED_TYPES
    with GGUFReader(path) as reader:
        assert reader.raw("blk.0.ffn_up.weight").shape == (2, type_size)
        with pytest.raises(GGUFError, match=r"q8k\.gguf: offset \d+: tensor 'blk\.0\.ffn_up\.weight': .*Q8_K"):
            reader.dequantize("blk.0.ffn_up.weight")
    with pytest.raises(GGUFError, match="Q8_K"):
        dequantize(np.zeros(type_size, np.uint8), GGMLType.Q8_K, (block_size,))


def test_wrong_byte_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs 34 bytes"):
        dequantize(np.zeros(33, np.uint8), GGMLType.Q8_0, (32,))
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize(np.zeros(34, np.uint8), GGMLType.Q8_0, (31,))


def test_large_tensor_is_chunked_correctly() -> None:
    # more blocks than one processing chunk, so chunk boundaries are exercised
    raw = np.random.default_rng(11).integers(0, 256, size=(40_000, 34), dtype=np.uint8)
    raw[:, :2] = np.array([0.01], np.float16).view(np.uint8)
    assert_bit_exact(
        dequantize(raw, GGMLType.Q8_0, (1000, 1280)), reference_dequantize(raw, GGMLType.Q8_0).reshape(1000, 1280)
    )
