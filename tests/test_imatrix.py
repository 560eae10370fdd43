"""``llmcore imatrix`` against llama.cpp's llama-imatrix on the default model: for every case of
scripts/make_imatrix_goldens.py (tests/fixtures/imatrix: llama-imatrix's files and printed
perplexities) the same keys, tensors and values within float tolerance (the files are in fact byte for
byte llama-imatrix's), the same perplexities; ``llmcore quantize --imatrix`` takes our file as it
takes llama-imatrix's; the context's matrix-multiplication observer leaves plain runs untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from llmcore.cli import main
from llmcore.gguf import GGUFReader
from llmcore.gguf.imatrix import read_imatrix
from llmcore.hub.cache import sha256_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "imatrix"
GOLDENS = json.loads((FIXTURES / "goldens.json").read_text())
SCRIPT = load_script("make_imatrix_goldens")


def _imatrix(case: str, model: Path, output: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.chdir(SCRIPT.TEXT_DIR)  # the text's name, as given, is recorded in the file
    code = main(["imatrix", *SCRIPT.case_arguments(case, str(model), output)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", list(GOLDENS["cases"]))
def test_same_matrix_as_llama_imatrix(case, default_model_path, tmp_path, monkeypatch, capsys):
    golden = GOLDENS["cases"][case]
    assert SCRIPT.CASES[case] == golden["args"]
    output = tmp_path / golden["output"]
    code, out, err = _imatrix(case, default_model_path, output, monkeypatch, capsys)
    assert code == 0, err
    assert SCRIPT.printed_perplexities(out) == golden["chunk_ppls"]
    ours, theirs = read_imatrix(output), read_imatrix(FIXTURES / golden["output"])
    assert (ours.datasets, ours.chunk_count, ours.chunk_size, ours.legacy) == \
        (theirs.datasets, theirs.chunk_count, theirs.chunk_size, theirs.legacy)
    assert list(ours.entries) == list(theirs.entries)
    for name, (sums, counts) in theirs.entries.items():
        np.testing.assert_array_equal(ours.entries[name][1], counts, err_msg=name)
        np.testing.assert_allclose(ours.entries[name][0], sums, rtol=1e-5, atol=1e-6 * sums.max(), err_msg=name)
    if not theirs.legacy:
        with GGUFReader(output) as a, GGUFReader(FIXTURES / golden["output"]) as b:
            assert a.metadata == b.metadata and list(a.tensors) == list(b.tensors)
            assert [t.shape for t in a.tensors.values()] == [t.shape for t in b.tensors.values()]


@pytest.mark.slow  # quantizing SmolLM2 to IQ4_XS takes 30 s on 2 cores
def test_quantize_takes_our_matrix(default_model_path, tmp_path, monkeypatch, capsys):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir(), theirs.mkdir()
    (theirs / "c64.gguf").write_bytes((FIXTURES / "c64.gguf").read_bytes())
    assert _imatrix("c64", default_model_path, ours / "c64.gguf", monkeypatch, capsys)[0] == 0
    digests = []
    for directory in (ours, theirs):
        monkeypatch.chdir(directory)  # quantize records the imatrix's name as given: "c64.gguf" for both
        assert main(["quantize", "--no-progress", "--allow-requantize", "--imatrix", "c64.gguf",
                     str(default_model_path), "iq4_xs.gguf", "IQ4_XS", "2"]) == 0
        digests.append(sha256_file(directory / "iq4_xs.gguf"))
    assert digests[0] == digests[1]


def _fails(args: list[str], capsys) -> str:
    try:
        code = main(["imatrix", *args])
    except SystemExit as exit:  # argparse's errors
        code = exit.code
    assert code not in (0, None)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1, errors
    return errors[0]


def test_bad_input_is_one_line_error(default_model_path, tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("Too short for two chunks of 64 tokens.")
    model = str(default_model_path)
    assert "you need at least 128 tokens" in _fails(["-m", model, "-f", str(short), "-c", "64"], capsys)
    assert "no precomputed matrices" in _fails(["-m", model], capsys)
    assert "failed to open file" in _fails(["--in-file", str(tmp_path / "missing.gguf")], capsys)
    assert "failed to load imatrix" in _fails(["--in-file", str(short), "-o", str(tmp_path / "o.gguf")], capsys)
    assert "invalid choice" in _fails(["-m", model, "-f", str(short), "--output-format", "bin"], capsys)


def test_observer_sees_each_weight_matmul_and_plain_runs_are_untouched(default_model_path):
    from llmcore.api import LLM
    from llmcore.engine.batch import Batch

    llm = LLM(str(default_model_path), n_ctx=32)
    batch = Batch.for_sequence(llm.tokenize("The three primary colors are"), 0, all_logits=True)
    plain = llm.context.decode(batch)
    assert list(llm.context.compiled(len(batch), len(batch)).graph.outputs) == ["logits"]
    seen: list[tuple[str, tuple[int, ...]]] = []
    llm.reset()
    llm.context.observe_mul_mat_inputs(lambda name, x: seen.append((name, x.shape)))
    observed = llm.context.decode(batch)
    llm.context.observe_mul_mat_inputs(None)
    np.testing.assert_array_equal(observed, plain)
    names = [name for name, _ in seen]
    n_layer = llm.model.hparams.n_layer
    assert len([n for n in names if n.startswith("blk.")]) == 7 * n_layer  # q, k, v, output, gate, up, down
    assert ("blk.0.ffn_down.weight", (len(batch), 1536)) in seen
    assert "token_embd.weight" in names  # the tied output head
    llm.reset()
    assert list(llm.context.compiled(len(batch), len(batch)).graph.outputs) == ["logits"]
