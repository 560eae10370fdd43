"""GGUFReader against the gguf package's reader (the oracle) on real and purpose-built files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from llmcore.errors import GGUFError
from llmcore.gguf import GGMLType, GGUFReader, GGUFValueType, GGUFWriter

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
TINY = FIXTURES / "tiny-llama.gguf"
VOCAB = FIXTURES / "ggml-vocab-bert-bge.gguf"
SHARED_VOCABS = sorted(Path("/work/shared/fixtures/vocab").glob("*.gguf"))


def oracle_metadata(reader: gguf.GGUFReader) -> dict[str, tuple[list[GGUFValueType], object]]:
    return {
        name: (field.types, field.contents()) for name, field in reader.fields.items() if not name.startswith("GGUF.")
    }


def plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def flatten(value: object) -> list:
    return [leaf for item in value for leaf in (flatten(item) if isinstance(item, list) else [item])]


def assert_metadata_matches_oracle(path: Path, oracle: gguf.GGUFReader | None = None) -> None:
    expected = oracle_metadata(oracle or gguf.GGUFReader(path))
    with GGUFReader(path) as reader:
        assert list(reader.metadata) == list(expected)
        for key, (types, value) in expected.items():
            ours = plain(reader.metadata[key])
            if types[:2] == [GGUFValueType.ARRAY, GGUFValueType.ARRAY]:
                ours = flatten(ours)  # gguf-py flattens nested arrays
            assert ours == value, key
            assert reader.metadata_types[key] == (types[1] if types[0] == GGUFValueType.ARRAY else types[0]), key


@pytest.mark.parametrize("path", [TINY, VOCAB], ids=lambda p: p.name)
def test_metadata_matches_gguf_package(path: Path) -> None:
    assert_metadata_matches_oracle(path)


@pytest.mark.slow  # the oracle reader takes seconds per large vocabulary
@pytest.mark.parametrize("path", SHARED_VOCABS, ids=lambda p: p.name)
def test_every_llama_cpp_vocab_matches_gguf_package(path: Path) -> None:
    assert_metadata_matches_oracle(path)


def test_metadata_value_types() -> None:
    with GGUFReader(TINY) as reader:
        meta = reader.metadata
        assert meta["test.uint64"] == 2**64 - 1 and meta["test.int64"] == -(2**63)
        assert meta["test.string"] == "héllo ☃"
        assert meta["test.bool"] is True
        assert isinstance(meta["test.float32"], float) and meta["test.float32"] == float(np.float32(0.1))
        assert meta["test.array.bool"].dtype == np.bool_ and meta["test.array.bool"].tolist() == [True, False, True]
        assert meta["test.array.uint64"].dtype == np.uint64
        assert isinstance(meta["tokenizer.ggml.tokens"], list) and isinstance(meta["tokenizer.ggml.tokens"][0], str)
        assert [a.tolist() for a in meta["test.nested"]] == [[1, 2, 3], [4], [5, 6]]
        assert meta["test.nested.strings"] == [["a", "bc"], ["déf"]]
        assert reader.metadata_types["test.nested"] == GGUFValueType.ARRAY
        assert reader.metadata_types["tokenizer.ggml.token_type"] == GGUFValueType.INT32


def assert_tensors_match_oracle(path: Path, oracle: gguf.GGUFReader | None = None) -> None:
    oracle = oracle or gguf.GGUFReader(path)
    with GGUFReader(path) as reader:
        assert list(reader.tensors) == [t.name for t in oracle.tensors]
        for tensor in oracle.tensors:
            info = reader.tensors[tensor.name]
            assert info.type == tensor.tensor_type
            assert info.ne == tuple(int(d) for d in tensor.shape)
            assert info.shape == tuple(reversed(info.ne))
            assert (info.offset, info.n_elements, info.n_bytes) == (
                tensor.data_offset,
                tensor.n_elements,
                tensor.n_bytes,
            )
            raw = reader.raw(tensor.name)
            assert raw.tobytes() == np.asarray(tensor.data).tobytes()


def test_tensor_infos_match_gguf_package() -> None:
    assert_tensors_match_oracle(TINY)


def test_default_model_matches_gguf_package(default_model_path: Path) -> None:
    oracle = gguf.GGUFReader(default_model_path)
    assert_metadata_matches_oracle(default_model_path, oracle)
    assert_tensors_match_oracle(default_model_path, oracle)
    with GGUFReader(default_model_path) as reader:
        assert reader.tensors["token_embd.weight"].shape == (49152, 576)
        assert reader.tensors["token_embd.weight"].type == GGMLType.Q8_0
        assert len(reader.metadata["tokenizer.ggml.tokens"]) == 49152


def test_raw_views_are_zero_copy_and_read_only() -> None:
    with GGUFReader(TINY) as reader:
        expectations = {
            "output_norm.weight": (np.float32, (576,)),
            "requant.f16": (np.float16, (8, 1536)),
            "requant.bf16": (np.uint16, (8, 1536)),
            "token_embd.weight": (np.uint8, (32, 18 * 34)),
        }
        for name, (dtype, shape) in expectations.items():
            view = reader.raw(name)
            assert (view.dtype, view.shape) == (np.dtype(dtype), shape)
            assert not view.flags.writeable and not view.flags.owndata
            with pytest.raises(ValueError):
                view[...] = 0


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_opening_the_default_model_maps_lazily(default_model_path: Path) -> None:
    GGUFReader(default_model_path).close()  # warm imports and the page cache
    before = vm_rss_mb()
    reader = GGUFReader(default_model_path)
    grown = vm_rss_mb() - before
    reader.close()
    assert grown < 40, f"RSS grew by {grown:.1f} MB before any tensor was touched"


@pytest.mark.slow  # a timing: a loaded machine misses it
def test_opening_the_default_model_is_fast(default_model_path: Path) -> None:
    GGUFReader(default_model_path).close()  # warm imports and the page cache
    timings = []
    for _ in range(3):  # best of three: other processes share this machine's cores
        start = time.perf_counter()
        GGUFReader(default_model_path).close()
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.15, f"opening took {min(timings):.3f} s"  # the tokenizer must fit in the 0.3 s too


def test_version_2_files_are_read(tmp_path: Path) -> None:
    data = bytearray(TINY.read_bytes())
    data[4:8] = (2).to_bytes(4, "little")
    path = tmp_path / "v2.gguf"
    path.write_bytes(bytes(data))
    with GGUFReader(path) as reader, GGUFReader(TINY) as v3:
        assert reader.version == 2
        assert list(reader.metadata) == list(v3.metadata)
        assert all(plain(reader.metadata[k]) == plain(v3.metadata[k]) for k in v3.metadata)
        assert reader.tensors == v3.tensors


def test_alignment_key_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "aligned.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.data_alignment = 256
    writer.add_uint32("general.alignment", 256)
    writer.add_tensor("a", np.arange(3, dtype=np.float32))
    writer.add_tensor("b", np.arange(5, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with GGUFReader(path) as reader:
        assert reader.alignment == 256
        assert [info.offset % 256 for info in reader.tensors.values()] == [0, 0]
        assert reader.raw("b").tolist() == [0, 1, 2, 3, 4]
    assert_tensors_match_oracle(path)


def test_split_model_opens_as_one(tmp_path: Path) -> None:
    with GGUFReader(TINY) as original:
        writer = GGUFWriter(tmp_path / "tiny.gguf")
        for key, value in original.metadata.items():
            writer.add_metadata(key, value, original.metadata_types[key])
        for name, info in original.tensors.items():
            writer.add_tensor(name, original.raw(name), info.type)
        paths = writer.write(split_max_tensors=4)
        assert [Path(p).name for p in paths] == [f"tiny-{i:05d}-of-00004.gguf" for i in range(1, 5)]
        # each part is a valid GGUF with llama.cpp's split keys and types
        for index, path in enumerate(paths):
            fields = gguf.GGUFReader(path).fields
            assert fields["split.no"].contents() == index and fields["split.no"].types == [GGUFValueType.UINT16]
            assert fields["split.count"].contents() == 4 and fields["split.count"].types == [GGUFValueType.UINT16]
            assert fields["split.tensors.count"].contents() == 15
            assert fields["split.tensors.count"].types == [GGUFValueType.INT32]
        with GGUFReader(paths[0]) as split:
            assert split.part_paths == paths
            assert list(split.tensors) == list(original.tensors)
            assert [info.part for info in split.tensors.values()] == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 3
            for name in original.tensors:
                assert split.raw(name).tobytes() == original.raw(name).tobytes()
                assert split.tensors[name].shape == original.tensors[name].shape
        with pytest.raises(GGUFError, match="open the first split"):
            GGUFReader(paths[1])
        Path(paths[2]).unlink()
        with pytest.raises(GGUFError, match="00003-of-00004.gguf: file: No such file"):
            GGUFReader(paths[0])
        renamed = tmp_path / "renamed.gguf"
        shutil.copy(paths[0], renamed)
        with pytest.raises(GGUFError, match="file name"):
            GGUFReader(renamed)


def test_close_keeps_live_views_valid() -> None:
    reader = GGUFReader(TINY)
    view = reader.raw("output_norm.weight")
    expected = gguf.GGUFReader(TINY).get_tensor(3).data.tolist()
    reader.close()
    assert view.tolist() == expected
    del view
    with GGUFReader(TINY) as reader:
        assert reader.dequantize("output_norm.weight").tolist() == expected


def test_missing_tensor_is_a_key_error() -> None:
    with GGUFReader(TINY) as reader, pytest.raises(KeyError, match="nope"):
        reader.raw("nope")


def test_metadata_arrays_do_not_pin_the_mapping() -> None:
    reader = GGUFReader(VOCAB)
    tokens_types = reader.metadata["tokenizer.ggml.token_type"]
    reader.close()
    assert tokens_types.flags.owndata  # a copy: the array outlives the mapping
    assert tokens_types.tolist() == gguf.GGUFReader(VOCAB).fields["tokenizer.ggml.token_type"].contents()
