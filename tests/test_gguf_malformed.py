"""Malformed GGUF files: each defect is a GGUFError naming file, byte offset and field.

Defects are patched into the tiny fixture at field offsets found by the gguf package's reader.
"""

from __future__ import annotations

import re
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from llmcore.cli import main
from llmcore.errors import GGUFError
from llmcore.gguf import GGUFReader

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
TINY = FIXTURES / "tiny-llama.gguf"
ORACLE = gguf.GGUFReader(TINY)
KV_AT = {name: field.offset for name, field in ORACLE.fields.items() if not name.startswith("GGUF.")}
TENSOR_AT = {tensor.name: tensor.field.offset for tensor in ORACLE.tensors}


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def value_at(key: str) -> int:
    """Offset of a key's value type field (its value follows 4 bytes later)."""
    return KV_AT[key] + 8 + len(key.encode())


def tensor_field_at(name: str, field: str) -> int:
    """Offset of a tensor info's n_dims / ne / type / offset field."""
    tensor = next(t for t in ORACLE.tensors if t.name == name)
    n_dims_at = TENSOR_AT[name] + 8 + len(name.encode())
    return {
        "n_dims": n_dims_at,
        "ne": n_dims_at + 4,
        "type": n_dims_at + 4 + 8 * len(tensor.shape),
        "offset": n_dims_at + 8 + 8 * len(tensor.shape),
    }[field]


def patch(at: int, data: bytes) -> Callable[[bytearray], bytes]:
    def apply(buf: bytearray) -> bytes:
        buf[at : at + len(data)] = data
        return bytes(buf)

    return apply


def token_at(index: int) -> int:
    """Offset of the length field of token ``index`` in tokenizer.ggml.tokens."""
    data = TINY.read_bytes()
    token = ORACLE.fields["tokenizer.ggml.tokens"].contents()[index].encode()
    return data.index(u64(len(token)) + token, KV_AT["tokenizer.ggml.tokens"])


LAST_TENSOR = ORACLE.tensors[-1].name
SIZE = TINY.stat().st_size

CASES = {
    "bad magic": (patch(0, b"GGML"), 0, "magic", "not a GGUF file"),
    "version 1": (patch(4, u32(1)), 4, "version", "unsupported version 1"),
    "big-endian": (patch(4, u32(3 << 24)), 4, "version", "big-endian"),
    "truncated header": (lambda b: bytes(b[:20]), 16, "metadata count", "needs 8 bytes but only 4 remain"),
    "absurd tensor count": (patch(8, u64(2**62)), 8, "tensor count", "cannot fit"),
    "absurd metadata count": (patch(16, u64(2**40)), 16, "metadata count", "cannot fit"),
    "absurd key length": (patch(24, u64(2**60)), 24, "metadata key #0", "string length 1152921504606846976 exceeds"),
    "unknown value type": (
        patch(value_at("general.type"), u32(13)),
        value_at("general.type"),
        "metadata 'general.type' type",
        "unknown value type 13",
    ),
    "absurd string value length": (
        patch(value_at("general.type") + 4, u64(SIZE)),
        value_at("general.type") + 4,
        "metadata 'general.type'",
        "exceeds",
    ),
    "unknown array element type": (
        patch(value_at("tokenizer.ggml.tokens") + 4, u32(77)),
        value_at("tokenizer.ggml.tokens") + 4,
        "metadata 'tokenizer.ggml.tokens' element type",
        "unknown value type 77",
    ),
    "absurd array count": (
        patch(value_at("tokenizer.ggml.tokens") + 8, u64(2**59)),
        value_at("tokenizer.ggml.tokens") + 8,
        "metadata 'tokenizer.ggml.tokens' element count",
        "need at least",
    ),
    "absurd string length inside an array": (
        patch(token_at(5), u64(2**63)),
        token_at(5),
        "metadata 'tokenizer.ggml.tokens'[5]",
        "string length",
    ),
    "duplicate key": (
        patch(KV_AT["test.bool"] + 8, b"test.int8"),
        KV_AT["test.bool"],
        "metadata 'test.int8'",
        "duplicate key",
    ),
    "duplicate tensor name": (
        patch(TENSOR_AT["requant.q5_0"] + 8, b"requant.q4_0"),
        TENSOR_AT["requant.q5_0"],
        "tensor #5 'requant.q4_0'",
        "duplicate tensor name",
    ),
    "too many dimensions": (
        patch(tensor_field_at("output_norm.weight", "n_dims"), u32(5)),
        tensor_field_at("output_norm.weight", "n_dims"),
        "tensor #3 'output_norm.weight' n_dims",
        "5 dimensions",
    ),
    "absurd dimensions": (
        patch(tensor_field_at("token_embd.weight", "ne"), u64(2**40) + u64(2**40)),
        tensor_field_at("token_embd.weight", "n_dims"),
        "tensor #0 'token_embd.weight' dimensions",
        "overflow",
    ),
    "unknown tensor type": (
        patch(tensor_field_at("output_norm.weight", "type"), u32(99)),
        tensor_field_at("output_norm.weight", "type"),
        "tensor #3 'output_norm.weight' type",
        "unknown tensor type 99",
    ),
    "row not a whole number of blocks": (
        patch(tensor_field_at("token_embd.weight", "ne"), u64(577)),
        tensor_field_at("token_embd.weight", "n_dims"),
        "tensor #0 'token_embd.weight' ne[0]",
        "multiple of 32",
    ),
    "misaligned tensor offset": (
        patch(
            tensor_field_at("output_norm.weight", "offset"), u64(ORACLE.tensors[3].data_offset - ORACLE.data_offset + 4)
        ),
        tensor_field_at("output_norm.weight", "offset"),
        "tensor #3 'output_norm.weight' offset",
        "not a multiple of the alignment 32",
    ),
    "tensor offset past the end": (
        patch(tensor_field_at("output_norm.weight", "offset"), u64(2**40)),
        tensor_field_at("output_norm.weight", "offset"),
        "tensor 'output_norm.weight' offset",
        "lies outside",
    ),
    "truncated tensor data": (
        lambda b: bytes(b[:-100]),
        tensor_field_at(LAST_TENSOR, "offset"),
        f"tensor '{LAST_TENSOR}' offset",
        "lies outside",
    ),
    "long tensor name": (
        patch(TENSOR_AT["token_embd.weight"], u64(64)),
        TENSOR_AT["token_embd.weight"],
        "tensor #0",
        "longer than 63 bytes",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_defect_is_reported_with_offset_and_field(case: str, tmp_path: Path) -> None:
    mutate, offset, field, problem = CASES[case]
    path = tmp_path / "bad.gguf"
    path.write_bytes(mutate(bytearray(TINY.read_bytes())))
    with pytest.raises(GGUFError) as raised:
        GGUFReader(path)
    error = raised.value
    assert (error.path, error.offset) == (str(path), offset), str(error)
    assert error.field.startswith(field), str(error)
    assert problem in error.problem, str(error)
    assert str(error).startswith(f"{path}: offset {offset}: {error.field}: ")


def build(kvs: bytes, n_kv: int, tensors: bytes = b"", n_tensors: int = 0, version: int = 3) -> bytes:
    return b"GGUF" + u32(version) + u64(n_tensors) + u64(n_kv) + kvs + tensors


def key(name: str) -> bytes:
    return u64(len(name)) + name.encode()


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (build(key("general.alignment") + u32(4) + u32(48), 1), "metadata 'general.alignment'", "not a power of two"),
        (build(key("general.alignment") + u32(10) + u64(64), 1), "metadata 'general.alignment'", "must be UINT32"),
        (
            build(key("deep") + u32(9) + (u32(9) + u64(1)) * 9 + u32(4) + u64(0), 1),
            "metadata 'deep'" + "[0]" * 8,
            "nested deeper",
        ),
        (b"", "magic", "needs 4 bytes but only 0 remain"),
        (
            build(b"", 0, tensors=key("t") + u32(1) + u64(4) + u32(0) + u64(0), n_tensors=1),
            "tensor data",
            "past the end",
        ),
    ],
    ids=[
        "alignment not a power of two",
        "alignment not UINT32",
        "arrays nested too deep",
        "empty file",
        "no data section",
    ],
)
def test_handmade_defects(data: bytes, field: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(GGUFError) as raised:
        GGUFReader(path)
    assert raised.value.field == field and problem in raised.value.problem, str(raised.value)


def test_absurd_sizes_are_rejected_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    for mutate in (
        CASES["absurd array count"][0],
        CASES["absurd string length inside an array"][0],
        CASES["absurd key length"][0],
    ):
        path.write_bytes(mutate(bytearray(TINY.read_bytes())))
        tracemalloc.start()
        with pytest.raises(GGUFError):
            GGUFReader(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 << 20, f"peak {peak} bytes"


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="missing.gguf: file: No such file"):
        GGUFReader(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="file: Is a directory"):
        GGUFReader(tmp_path)


def test_cli_reports_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(CASES["absurd key length"][0](bytearray(TINY.read_bytes())))
    assert main(["gguf-info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        rf"llmcore gguf-info: error: {re.escape(str(path))}: offset 24: metadata key #0: string length \d+ exceeds .*",
        lines[0],
    )


def test_valid_values_in_odd_places_still_load(tmp_path: Path) -> None:
    """Zero-sized tensors and a zero-dimensional tensor are legal in ggml."""
    tensors = key("empty") + u32(2) + u64(0) + u64(7) + u32(0) + u64(0)
    tensors += key("scalar") + u32(0) + u32(0) + u64(0)
    head = build(b"", 0, tensors=tensors, n_tensors=2)
    path = tmp_path / "odd.gguf"
    path.write_bytes(head + bytes(-len(head) % 32) + struct.pack("<f", 2.5) + bytes(28))
    with GGUFReader(path) as reader:
        assert reader.raw("empty").shape == (7, 0)
        assert reader.dequantize("scalar").shape == () and float(reader.dequantize("scalar")) == 2.5
    assert np.asarray(gguf.GGUFReader(path).tensors[1].data).reshape(-1).tolist() == [2.5]
