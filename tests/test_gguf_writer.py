"""GGUFWriter: byte-identical round trips, and files the gguf package reads back as written."""

from __future__ import annotations

import filecmp
from pathlib import Path

import gguf
import numpy as np
import pytest

from llmcore.gguf import GGMLType, GGUFReader, GGUFValueType, GGUFWriter

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
TINY = FIXTURES / "tiny-llama.gguf"
VOCAB = FIXTURES / "ggml-vocab-bert-bge.gguf"


def rewrite(source: Path, target: Path, **write_options: int) -> list[str]:
    with GGUFReader(source) as reader:
        writer = GGUFWriter(target)
        for key, value in reader.metadata.items():
            writer.add_metadata(key, value, reader.metadata_types[key])
        for name, info in reader.tensors.items():
            writer.add_tensor(name, reader.raw(name), info.type)
        return writer.write(**write_options)


@pytest.mark.parametrize("source", [TINY, VOCAB], ids=lambda p: p.name)
def test_round_trip_is_byte_identical(source: Path, tmp_path: Path) -> None:
    rewrite(source, tmp_path / "copy.gguf")
    assert filecmp.cmp(source, tmp_path / "copy.gguf", shallow=False)


def test_default_model_round_trip_is_byte_identical(default_model_path: Path, tmp_path: Path) -> None:
    rewrite(default_model_path, tmp_path / "copy.gguf")
    assert filecmp.cmp(default_model_path, tmp_path / "copy.gguf", shallow=False)


def test_raw_shape_round_trip(tmp_path: Path) -> None:
    with GGUFReader(TINY) as reader:
        writer = GGUFWriter(tmp_path / "copy.gguf")
        for key, value in reader.metadata.items():
            writer.add_metadata(key, value, reader.metadata_types[key])
        for name, info in reader.tensors.items():
            writer.add_tensor(name, reader.raw(name).reshape(-1).view(np.uint8), info.type, raw_shape=info.shape)
        writer.write()
    assert filecmp.cmp(TINY, tmp_path / "copy.gguf", shallow=False)


def oracle_fields(path: Path) -> dict[str, tuple[list[GGUFValueType], object]]:
    return {
        name: (f.types, f.contents())
        for name, f in gguf.GGUFReader(path).fields.items()
        if not name.startswith("GGUF.")
    }


def test_inferred_and_explicit_metadata_types(tmp_path: Path) -> None:
    path = tmp_path / "meta.gguf"
    writer = GGUFWriter(path, arch="llama")
    writer.add_metadata("int", 7)
    writer.add_metadata("big", 2**40)
    writer.add_metadata("huge", 2**64 - 1)
    writer.add_metadata("float", 0.5)
    writer.add_metadata("bool", False)
    writer.add_metadata("str", "ünïcode")
    writer.add_metadata("u16", 65535, GGUFValueType.UINT16)
    writer.add_metadata("f64", 0.1, GGUFValueType.FLOAT64)
    writer.add_metadata("np.u8", np.uint8(3))
    writer.add_metadata("strings", ["a", "b"])
    writer.add_metadata("ints", [1, -2])
    writer.add_metadata("wide ints", [-1, 2**40])
    writer.add_metadata("floats", [1, 2.5])
    writer.add_metadata("bools", [True])
    writer.add_metadata("u32s", [1, 2], GGUFValueType.UINT32)
    writer.add_metadata("scores", np.array([0.5, -1.0], np.float32))
    writer.add_metadata("i64s", np.array([-(2**40)], np.int64))
    writer.add_metadata("empty", [], GGUFValueType.INT32)
    writer.add_metadata("nested", [[1, 2], ["x"]])
    writer.write()
    T = GGUFValueType
    expected = {
        "general.architecture": ([T.STRING], "llama"),
        "int": ([T.INT32], 7), "big": ([T.INT64], 2**40), "huge": ([T.UINT64], 2**64 - 1),
        "float": ([T.FLOAT32], 0.5), "bool": ([T.BOOL], False), "str": ([T.STRING], "ünïcode"),
        "u16": ([T.UINT16], 65535), "f64": ([T.FLOAT64], 0.1), "np.u8": ([T.UINT8], 3),
        "strings": ([T.ARRAY, T.STRING], ["a", "b"]), "ints": ([T.ARRAY, T.INT32], [1, -2]),
        "wide ints": ([T.ARRAY, T.INT64], [-1, 2**40]),
        "floats": ([T.ARRAY, T.FLOAT32], [1.0, 2.5]), "bools": ([T.ARRAY, T.BOOL], [True]),
        "u32s": ([T.ARRAY, T.UINT32], [1, 2]), "scores": ([T.ARRAY, T.FLOAT32], [0.5, -1.0]),
        "i64s": ([T.ARRAY, T.INT64], [-(2**40)]), "empty": ([T.ARRAY], []),  # gguf-py drops empty arrays' types
    }  # fmt: skip
    fields = oracle_fields(path)
    for key, value in expected.items():
        assert fields[key] == value, key
    assert fields["nested"][0][:2] == [T.ARRAY, T.ARRAY]
    with GGUFReader(path) as reader:
        assert [a.tolist() if hasattr(a, "tolist") else a for a in reader.metadata["nested"]] == [[1, 2], ["x"]]
        assert reader.metadata_types["empty"] == T.INT32 and reader.metadata["empty"].dtype == np.int32


def test_metadata_errors_and_replacement(tmp_path: Path) -> None:
    writer = GGUFWriter(tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="out of range for UINT8"):
        writer.add_metadata("k", 256, GGUFValueType.UINT8)
    with pytest.raises(ValueError, match="out of range for UINT32"):
        writer.add_metadata("k", [1, -1], GGUFValueType.UINT32)
    with pytest.raises(TypeError):
        writer.add_metadata("k", object())
    with pytest.raises(TypeError):
        writer.add_metadata("k", 5, GGUFValueType.STRING)
    with pytest.raises(TypeError):
        writer.add_metadata("k", [5], GGUFValueType.STRING)
    with pytest.raises(ValueError, match="do not fit"):
        writer.add_metadata("k", [-1, 2**64 - 1])
    with pytest.raises(ValueError, match="power of two"):
        writer.add_metadata("general.alignment", 48, GGUFValueType.UINT32)
    writer.add_metadata("a", 1)
    writer.add_metadata("b", 2)
    writer.add_metadata("a", "replaced")
    writer.write()
    assert list(oracle_fields(tmp_path / "x.gguf").items()) == [
        ("a", ([GGUFValueType.STRING], "replaced")),
        ("b", ([GGUFValueType.INT32], 2)),
    ]


def test_tensors_read_back_by_gguf_package(tmp_path: Path) -> None:
    path = tmp_path / "t.gguf"
    values = np.arange(64, dtype=np.float32).reshape(2, 32)
    q8 = gguf.quants.quantize(values, GGMLType.Q8_0)
    writer = GGUFWriter(path, arch="llama", alignment=64)
    writer.add_tensor("f32", values)
    writer.add_tensor("f16", values, GGMLType.F16)
    writer.add_tensor("i32", np.array([1, 2, 3], np.int32))
    writer.add_tensor("q8", q8, GGMLType.Q8_0)
    writer.add_tensor("q8.flat", q8.reshape(-1), GGMLType.Q8_0, raw_shape=(2, 32))
    writer.write()
    oracle = gguf.GGUFReader(path)
    assert oracle.alignment == 64
    tensors = {t.name: t for t in oracle.tensors}
    assert [tuple(int(d) for d in t.shape) for t in oracle.tensors] == [(32, 2), (32, 2), (3,), (32, 2), (32, 2)]
    assert all(t.data_offset % 64 == 0 for t in oracle.tensors)
    np.testing.assert_array_equal(np.asarray(tensors["f32"].data), values)
    np.testing.assert_array_equal(np.asarray(tensors["f16"].data), values.astype(np.float16))
    assert tensors["q8"].tensor_type == GGMLType.Q8_0
    assert np.asarray(tensors["q8.flat"].data).tobytes() == q8.tobytes()
    with GGUFReader(path) as reader:
        np.testing.assert_array_equal(reader.dequantize("q8"), gguf.quants.dequantize(q8, GGMLType.Q8_0))


def test_tensor_errors(tmp_path: Path) -> None:
    writer = GGUFWriter(tmp_path / "x.gguf")
    writer.add_tensor("a", np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="duplicate"):
        writer.add_tensor("a", np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="longer than 63"):
        writer.add_tensor("x" * 64, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="no GGML type"):
        writer.add_tensor("b", np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="whole number of Q4_0 blocks"):
        writer.add_tensor("c", np.zeros((2, 17), np.uint8), GGMLType.Q4_0)
    with pytest.raises(ValueError, match="takes 36 bytes"):
        writer.add_tensor("d", np.zeros(35, np.uint8), GGMLType.Q4_0, raw_shape=(64,))
    with pytest.raises(ValueError, match="uint8"):
        writer.add_tensor("e", np.zeros(32, np.float32), GGMLType.Q4_0)
    with pytest.raises(ValueError, match="out of range for I8"):
        writer.add_tensor("g", np.array([300], np.int32), GGMLType.I8)
    with pytest.raises(ValueError, match="cannot store int32 data as F32"):
        writer.add_tensor("f", np.zeros(4, np.int32), GGMLType.F32)


def test_split_by_size(tmp_path: Path) -> None:
    paths = rewrite(TINY, tmp_path / "tiny.gguf", split_max_bytes=40_000)
    assert len(paths) > 2
    with GGUFReader(paths[0]) as split, GGUFReader(TINY) as original:
        assert list(split.tensors) == list(original.tensors)
        for name in original.tensors:
            assert split.raw(name).tobytes() == original.raw(name).tobytes()
    for path in paths[1:]:  # later splits carry only the split keys, as llama.cpp's gguf-split writes
        assert list(oracle_fields(Path(path))) == ["split.no", "split.count", "split.tensors.count"]


def test_split_then_join_is_byte_identical(tmp_path: Path) -> None:
    paths = rewrite(TINY, tmp_path / "tiny.gguf", split_max_tensors=6)
    assert len(paths) == 3
    rewrite(Path(paths[0]), tmp_path / "joined.gguf")  # split.* keys are dropped from a single file
    assert filecmp.cmp(TINY, tmp_path / "joined.gguf", shallow=False)
