"""`llmcore gguf-info`: the text dump matches gguf-py's gguf_dump.py; JSON carries the same facts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from llmcore.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
TINY = FIXTURES / "tiny-llama.gguf"
VOCAB = FIXTURES / "ggml-vocab-bert-bge.gguf"
GGUF_DUMP = Path(gguf.__file__).parent / "scripts" / "gguf_dump.py"


def reference_dump(path: Path, *flags: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(GGUF_DUMP), str(path), *flags], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


@pytest.mark.parametrize("path", [TINY, VOCAB], ids=lambda p: p.name)
def test_text_matches_gguf_dump(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gguf-info", str(path)]) == 0
    ours = capsys.readouterr().out.splitlines()
    reference = reference_dump(path)
    assert ours[0] == f"* {path}: GGUF version 3, alignment 32"
    # gguf_dump flattens nested arrays in its previews; compare every other line exactly
    nested = ("test.nested",)
    assert [line for line in ours[1:] if not line.split("| ")[-1].startswith(nested)] == [
        line for line in reference[1:] if not line.split("| ")[-1].startswith(nested)
    ]


def test_no_tensors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gguf-info", "--no-tensors", str(TINY)]) == 0
    out = capsys.readouterr().out
    assert "tensor(s)" not in out and "token_embd.weight" not in out
    assert "tokenizer.ggml.tokens = ['<|endoftext|>'" in out


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gguf-info", "--json", str(TINY)]) == 0
    doc = json.loads(capsys.readouterr().out)
    oracle = gguf.GGUFReader(TINY)
    assert doc["version"] == 3 and doc["alignment"] == 32
    assert doc["metadata"]["general.architecture"] == {"index": 0, "type": "STRING", "value": "llama"}
    tokens = doc["metadata"]["tokenizer.ggml.tokens"]
    assert tokens["type"] == "ARRAY" and tokens["array_type"] == "STRING" and "value" not in tokens
    assert tokens["count"] == len(oracle.fields["tokenizer.ggml.tokens"].contents())
    assert list(doc["tensors"]) == [t.name for t in oracle.tensors]
    for tensor in oracle.tensors:
        entry = doc["tensors"][tensor.name]
        assert entry["shape"] == tensor.shape.tolist() and entry["type"] == tensor.tensor_type.name
        assert entry["offset"] == tensor.data_offset


def test_json_array(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gguf-info", "--json", "--json-array", "--no-tensors", str(VOCAB)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "tensors" not in doc
    field = gguf.GGUFReader(VOCAB).fields["tokenizer.ggml.tokens"]
    assert doc["metadata"]["tokenizer.ggml.tokens"]["value"] == field.contents()
