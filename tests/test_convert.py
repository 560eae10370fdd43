"""``llmcore convert`` against llama.cpp's convert_hf_to_gguf.py: tiny checkpoints made again by
scripts/make_convert_fixtures.py's own functions (checked against the digests its goldens recorded),
converted to each outtype, must give key for key and tensor for tensor (type, shape, bytes) what
convert_hf_to_gguf.py gave, in the same order (tests/fixtures/convert/goldens.json)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import load_script
from llmcore.cli import main

SCRIPT = load_script("make_convert_fixtures")
GOLDENS = json.loads((SCRIPT.OUT / "goldens.json").read_text())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, default_model_path):
    directory = tmp_path_factory.mktemp("convert")
    for case in SCRIPT.CASES:
        SCRIPT.make_checkpoint(directory / case, case, default_model_path)
        made = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((directory / case).iterdir())}
        assert made == GOLDENS["checkpoints"][case], f"checkpoint {case} differs from the goldens' one"
    return directory


@pytest.mark.parametrize("output", list(GOLDENS["outputs"]))
def test_same_gguf_as_convert_hf_to_gguf(output, checkpoints, tmp_path, capsys):
    case, outtype = output.rsplit("-", 1)
    path = tmp_path / f"{output}.gguf"
    assert main(["convert", "--no-progress", str(checkpoints / case), str(path), "--outtype", outtype]) == 0
    ours, theirs = SCRIPT.summarize(path), GOLDENS["outputs"][output]
    assert list(ours["metadata"]) == list(theirs["metadata"])
    for key, value in theirs["metadata"].items():
        assert ours["metadata"][key] == value, key
    assert ours["tensors"] == theirs["tensors"]


def test_bad_input_is_one_line_error(checkpoints, tmp_path, capsys):
    def fails(args: list[str]) -> str:
        assert main(["convert", "--no-progress", *args]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1, errors
        return errors[0]

    assert "config.json" in fails([str(tmp_path / "missing"), str(tmp_path / "o.gguf")])
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"architectures": ["MambaForCausalLM"]}))
    assert "not supported" in fails([str(odd), str(tmp_path / "o.gguf")])
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((checkpoints / "llama" / name).read_bytes())
    (broken / "model.safetensors").write_bytes((checkpoints / "llama" / "model.safetensors").read_bytes()[:5000])
    assert "model.safetensors" in fails([str(broken), str(tmp_path / "o.gguf")])
    assert not list(tmp_path.glob("o.gguf*"))
