"""``llmcore gguf-split`` against llama.cpp's llama-gguf-split: the same files, byte for byte.

The goldens (tests/fixtures/gguf_split/goldens.json, made by scripts/make_gguf_split_goldens.py
with llama.cpp 0.3.36's llama-gguf-split) hold, per case, the sha256 of every split the oracle wrote,
its ``--dry-run`` plan, and the sha256 of ``--merge`` of its splits. The inputs are committed
fixtures (a file with every metadata value type and many tensor types, one with
``general.alignment = 64`` and split keys among its keys, two tiny models) and the default model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llmcore.cli import main
from llmcore.hub.cache import sha256_file as sha256

FIXTURES = Path(__file__).parent / "fixtures"
SPLIT_DIR = FIXTURES / "gguf_split"
GOLDENS = json.loads((SPLIT_DIR / "goldens.json").read_text())
SMALL_CASES = [name for name, case in GOLDENS.items() if case["input"] != "default-model"]


def source(case: dict) -> Path:
    name = case["input"]
    path = FIXTURES / name if name.startswith("arch/") else SPLIT_DIR / name
    assert sha256(path) == case["input_sha256"], f"{path} changed since the goldens were made"
    return path


def gguf_split(capsys, *args) -> tuple[int, str, str]:
    """Run ``llmcore gguf-split`` in-process: exit code, stdout, stderr."""
    try:
        code = main(["gguf-split", "--no-progress", *map(str, args)])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def split_files(directory: Path, prefix: str = "out") -> dict[str, str]:
    return {path.name: sha256(path) for path in sorted(directory.glob(f"{prefix}-*-of-*.gguf"))}


def check_split(capsys, case: dict, path: Path, tmp_path: Path) -> list[str]:
    """Split ``path`` as the case says; the files must be the oracle's. Returns their names, in order."""
    code, out, err = gguf_split(capsys, *case["args"], path, tmp_path / "out")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith(("n_split", "split "))] == case["plan"]
    assert split_files(tmp_path) == case["files"]
    return sorted(case["files"])


@pytest.mark.parametrize("name", SMALL_CASES)
def test_split_writes_llama_gguf_splits_files(name, tmp_path, capsys):
    check_split(capsys, GOLDENS[name], source(GOLDENS[name]), tmp_path)


@pytest.mark.parametrize("name", SMALL_CASES)
def test_merge_writes_llama_gguf_splits_file(name, tmp_path, capsys):
    case = GOLDENS[name]
    first = tmp_path / check_split(capsys, case, source(case), tmp_path)[0]
    code, _, err = gguf_split(capsys, "--merge", first, tmp_path / "merged.gguf")
    if "merge_error" in case:  # llama-gguf-split cannot read back what it wrote for this input: neither can we
        assert code == 2 and "not a multiple of the alignment 64" in err
        assert not (tmp_path / "merged.gguf").exists()
    else:
        assert code == 0, err
        assert sha256(tmp_path / "merged.gguf") == case["merged_sha256"]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    case = GOLDENS["gemma3_max_size_1M_no_first"]
    code, out, err = gguf_split(capsys, "--dry-run", *case["args"], source(case), tmp_path / "out")
    assert code == 0 and out.splitlines() == case["plan"]
    assert "3 gguf split written with a total of" in err
    check_split(capsys, case, source(case), tmp_path)
    code, out, err = gguf_split(capsys, "--merge", "--dry-run", tmp_path / sorted(case["files"])[0], tmp_path / "m.gguf")
    assert code == 0 and "merged from 3 split" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(case["files"])


def test_merged_model_gives_the_original_logits(tmp_path, capsys):
    from llmcore import LLM

    case = GOLDENS["llama_max_tensors_5"]
    original = source(case)
    first = tmp_path / check_split(capsys, case, original, tmp_path)[0]
    assert gguf_split(capsys, "--merge", first, tmp_path / "merged.gguf")[0] == 0
    tokens = [1, 5, 17, 42, 99, 3]
    expected = LLM(original, backend="reference", n_ctx=32).logits(tokens)
    for path in (first, tmp_path / "merged.gguf"):
        np.testing.assert_array_equal(LLM(path, backend="reference", n_ctx=32).logits(tokens), expected)


def test_merge_deletes_the_splits_when_asked(tmp_path, capsys):
    case = GOLDENS["mixed_max_tensors_3_no_first"]
    first = tmp_path / check_split(capsys, case, source(case), tmp_path)[0]
    code, _, err = gguf_split(capsys, "--merge", "--delete-splits", first, tmp_path / "merged.gguf")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["merged.gguf"]
    assert sha256(tmp_path / "merged.gguf") == case["merged_sha256"]


@pytest.fixture
def splits(tmp_path, capsys) -> list[Path]:
    case = GOLDENS["mixed_max_tensors_3"]
    return [tmp_path / name for name in check_split(capsys, case, source(case), tmp_path)]


def test_merge_refuses_an_existing_output(splits, capsys):
    output = splits[0].parent / "merged.gguf"
    output.write_bytes(b"keep me")
    code, _, err = gguf_split(capsys, "--merge", splits[0], output)
    assert code == 2 and err.strip().endswith(f"error: output file {output} already exists")
    assert output.read_bytes() == b"keep me"
    code, _, err = gguf_split(capsys, "--merge", splits[0], splits[1])  # nor overwrites an input
    assert code == 2 and "already exists" in err


def test_merge_names_a_missing_split(splits, tmp_path, capsys):
    splits[2].unlink()
    code, _, err = gguf_split(capsys, "--merge", splits[0], tmp_path / "merged.gguf")
    assert code == 2 and str(splits[2]) in err and "No such file" in err and len(err.strip().splitlines()) == 2
    assert not (tmp_path / "merged.gguf").exists()


def test_merge_refuses_a_split_of_another_count(splits, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    assert gguf_split(capsys, "--split-max-tensors", "4", source(GOLDENS["mixed_max_tensors_3"]), other / "out")[0] == 0
    shutil.copy(other / "out-00002-of-00004.gguf", splits[1])  # split.count 4 among splits of 5
    code, _, err = gguf_split(capsys, "--merge", splits[0], tmp_path / "merged.gguf")
    assert code == 2 and str(splits[1]) in err and "expected split 1 of 5" in err


def test_merge_refuses_what_is_not_a_first_split(splits, tmp_path, capsys):
    code, _, err = gguf_split(capsys, "--merge", source(GOLDENS["mixed_default"]), tmp_path / "m.gguf")
    assert code == 2 and "does not contain split.count metadata" in err
    code, _, err = gguf_split(capsys, "--merge", splits[1], tmp_path / "m.gguf")
    assert code == 2 and "open the first split" in err
    assert gguf_split(capsys, "--merge", splits[0], tmp_path / "m.gguf")[0] == 0
    code, _, err = gguf_split(capsys, "--merge", tmp_path / "m.gguf", tmp_path / "m2.gguf")
    assert code == 2 and "valid split count 0" in err
    renamed = tmp_path / "renamed-00001-of-00001.gguf"
    shutil.copy(source(GOLDENS["mixed_default"]), renamed)
    code, _, err = gguf_split(capsys, "--merge", renamed, tmp_path / "m3.gguf")
    assert code == 2 and "split.count" in err


def test_split_refuses_a_split_model_and_never_overwrites_its_input(splits, tmp_path, capsys):
    code, _, err = gguf_split(capsys, splits[0], tmp_path / "again")
    assert code == 2 and "first of 5 splits; merge them first" in err
    single = tmp_path / "single" / "x-00001-of-00001.gguf"
    single.parent.mkdir()
    assert gguf_split(capsys, source(GOLDENS["mixed_default"]), single.parent / "x")[0] == 0
    before = single.read_bytes()
    code, _, err = gguf_split(capsys, single, single.parent / "x")  # would write x-00001-of-00001.gguf
    assert code == 2 and "is one of the input files" in err
    assert single.read_bytes() == before and [p.name for p in single.parent.iterdir()] == [single.name]


def test_a_tensor_larger_than_the_split_size_is_an_error(tmp_path):
    from llmcore.errors import LLMCoreError
    from llmcore.gguf import GGUFReader
    from llmcore.tools.gguf_split import plan_split

    with GGUFReader(source(GOLDENS["mixed_default"])) as reader:
        with pytest.raises(LLMCoreError, match="'odd.f32' .* one of the splits would have 0 tensors"):
            plan_split(reader, str(tmp_path / "out"), max_bytes=16)
        assert len(plan_split(reader, str(tmp_path / "out"), max_bytes=1024)) > 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split-max-size", "50K"], "supported units are M (megabytes) or G (gigabytes), but got: K"),
        (["--split-max-size", "0M"], "size must be a positive value"),
        (["--split-max-size", "xM"], "not a size"),
        (["--split-max-tensors", "0"], "not a positive number of tensors"),
        (["--split-max-tensors", "2", "--split-max-size", "1G"], "not allowed with argument"),
        (["--split", "--merge"], "not allowed with argument"),
    ],
)
def test_bad_flags_are_one_line_errors(args, message, tmp_path, capsys):
    code, _, err = gguf_split(capsys, *args, source(GOLDENS["mixed_default"]), tmp_path / "out")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_split_size_reads_like_llama_cpp():
    from llmcore.tools.gguf_split import parse_split_size

    assert parse_split_size("50M") == 50_000_000
    assert parse_split_size("2G") == 2_000_000_000
    assert parse_split_size("1.5G") == 1_000_000_000  # sscanf("%d") stops at the dot


def test_default_model_split_by_size_runs_from_its_first_split(default_model_path, tmp_path, capsys):
    case = GOLDENS["smollm2_max_size_50M"]
    assert sha256(default_model_path) == case["input_sha256"]
    first = tmp_path / check_split(capsys, case, default_model_path, tmp_path)[0]
    run = ["run", "-p", "The three primary colors are", "-n", "12", "--temp", "0", "--no-display-prompt"]
    assert main([*run, "-m", str(default_model_path)]) == 0
    expected = capsys.readouterr().out
    assert main([*run, "-m", str(first)]) == 0
    assert capsys.readouterr().out == expected and expected.strip()
    code, _, err = gguf_split(capsys, "--merge", first, tmp_path / "merged.gguf")
    assert code == 0, err
    assert sha256(tmp_path / "merged.gguf") == case["merged_sha256"]
