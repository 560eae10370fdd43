"""Make the dequantization goldens of tests/test_gguf_dequant_iq.py: for each i-quant, ternary, FP4
and 1/2-bit type, a few rows of blocks and the float32 values llama.cpp's C ``dequantize_row_*``
gives for them (through libggml's type traits), checked here against the vendored gguf-py's
dequantizer wherever it has one.

    PYTHONPATH=/path/to/llama.cpp/gguf-py /work/venv-oracle/bin/python scripts/make_iq_goldens.py

Needs llama-cpp-python 0.3.36 (for libggml-base) and llama.cpp's gguf-py (the vendored one of the same
release). Writes ``tests/fixtures/gguf/iq_dequant.npz`` with, per type name T: ``T.random`` (random
blocks whose f16 scales are finite), ``T.random.values``, ``T.quantized`` (normal data quantized
by ggml_quantize_chunk, with a unit importance matrix where the type needs one) and
``T.quantized.values``: uint8 [rows, row bytes] and float32 [rows, row values].
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gguf" / "iq_dequant.npz"
ROWS, ROW_VALUES = 3, 512

# ggml type id, (values per block, bytes per block), byte offsets of the block's f16 scale(s)
TYPES = {
    "IQ2_XXS": (16, (256, 66), (0,)),
    "IQ2_XS": (17, (256, 74), (0,)),
    "IQ3_XXS": (18, (256, 98), (0,)),
    "IQ1_S": (19, (256, 50), (0,)),
    "IQ4_NL": (20, (32, 18), (0,)),
    "IQ3_S": (21, (256, 110), (0,)),
    "IQ2_S": (22, (256, 82), (0,)),
    "IQ4_XS": (23, (256, 136), (0,)),
    "IQ1_M": (29, (256, 56), ()),  # its f16 scale is spread over the top nibbles of 4 uint16 (bytes 48-55)
    "TQ1_0": (34, (256, 54), (52,)),
    "TQ2_0": (35, (256, 66), (64,)),
    "MXFP4": (39, (32, 17), ()),  # E8M0 scale, a power of two: kept within 2^-28 .. 2^21 below
    "NVFP4": (40, (64, 36), ()),  # UE4M3 scales: every byte is finite
    "Q1_0": (41, (128, 18), (0,)),
    "Q2_0": (42, (64, 18), (0,)),
}
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"}


class TypeTraits(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p), ("from_float_ref", ctypes.c_void_p)]


def load_ggml() -> ctypes.CDLL:
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib


def c_dequantize(lib: ctypes.CDLL, type_id: int, raw: np.ndarray) -> np.ndarray:
    traits = lib.ggml_get_type_traits(type_id).contents
    to_float = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(traits.to_float)
    n = raw.shape[1] // traits.type_size * traits.blck_size
    out = np.empty((raw.shape[0], n), np.float32)
    for row in range(raw.shape[0]):
        src = np.ascontiguousarray(raw[row])
        to_float(src.ctypes.data, out[row].ctypes.data, n)
    return out


def random_blocks(rng: np.random.Generator, name: str) -> np.ndarray:
    _, (block_values, block_bytes), scale_offsets = TYPES[name]
    blocks = rng.integers(0, 256, size=(ROWS, ROW_VALUES // block_values, block_bytes), dtype=np.uint8)
    scales = (rng.standard_normal(blocks.shape[:2]) * 0.02).astype(np.float16)
    for offset in scale_offsets:
        blocks[:, :, offset:offset + 2] = scales.view(np.uint8).reshape(*scales.shape, 2)
    if name == "MXFP4":
        blocks[:, :, 0] = rng.integers(100, 150, size=blocks.shape[:2], dtype=np.uint8)
    if name == "IQ1_M":
        words = np.ascontiguousarray(blocks[:, :, 48:56]).view("<u2")
        bits = np.abs(scales).view(np.uint16)
        for i in range(4):
            words[..., i] = (words[..., i] & 0x0FFF) | (((bits >> (4 * i)) & 0xF) << 12)
        blocks[:, :, 48:56] = words.view(np.uint8).reshape(*words.shape[:2], 8)
    return blocks.reshape(ROWS, -1)


def quantized_blocks(lib: ctypes.CDLL, rng: np.random.Generator, name: str) -> np.ndarray:
    type_id, (block_values, block_bytes), _ = TYPES[name]
    values = rng.standard_normal((ROWS, ROW_VALUES)).astype(np.float32)
    out = np.zeros((ROWS, ROW_VALUES // block_values * block_bytes), np.uint8)
    imatrix = np.ones(ROW_VALUES, np.float32)
    lib.ggml_quantize_chunk(type_id, values.ctypes.data, out.ctypes.data, 0, ROWS, ROW_VALUES,
                            imatrix.ctypes.data if name in NEEDS_IMATRIX else None)
    return out


def gguf_py_dequantize(name: str, raw: np.ndarray) -> np.ndarray | None:
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize

    if name not in GGMLQuantizationType.__members__:
        return None
    try:
        return dequantize(raw, GGMLQuantizationType[name])
    except NotImplementedError:
        return None


def main() -> int:
    lib = load_ggml()
    arrays: dict[str, np.ndarray] = {}
    for name in TYPES:
        rng = np.random.default_rng(TYPES[name][0])
        for kind, raw in (("random", random_blocks(rng, name)), ("quantized", quantized_blocks(lib, rng, name))):
            values = c_dequantize(lib, TYPES[name][0], raw)
            assert np.isfinite(values).all(), f"{name} {kind}: non-finite values"
            reference = gguf_py_dequantize(name, raw)
            if reference is not None:
                assert np.array_equal(reference.view(np.uint32), values.view(np.uint32)), f"{name} {kind}: gguf-py differs"
            arrays[f"{name}.{kind}"], arrays[f"{name}.{kind}.values"] = raw, values
        print(f"{name}: C reference{' = gguf-py' if reference is not None else ' (gguf-py has no dequantizer)'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
