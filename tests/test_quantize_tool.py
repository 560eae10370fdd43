"""``llmcore quantize`` against llama.cpp's llama-quantize: the same bytes for every case of
scripts/make_quantize_goldens.py (its sha256 goldens in tests/fixtures/quantize/goldens.json; where
llama-quantize refused, a one-line error here too), and one-line errors for bad input.

The inputs are made again here by the script's own functions (three random F16 llamas, one of them
a mixture of experts, importance matrices in both formats) and checked against the digests the
goldens recorded; the default model
(SmolLM2-135M Q4_1) is requantized to Q4_K_M and Q8_0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_script
from llmcore.cli import main
from llmcore.hub.cache import sha256_file

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = json.loads((ROOT / "tests" / "fixtures" / "quantize" / "goldens.json").read_text())
SCRIPT = load_script("make_quantize_goldens")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The inputs' directory and the paths the cases name (relative to it), checked by digest."""
    directory = tmp_path_factory.mktemp("quantize")
    paths = SCRIPT.make_inputs(directory)
    for name, digest in GOLDENS["inputs"].items():
        assert sha256_file(directory / paths[name]) == digest, f"input {name} differs from the goldens' one"
    return directory, paths


def _quantize(directory: Path, args: list[str], monkeypatch) -> int:
    monkeypatch.chdir(directory)  # the imatrix's path (relative) is written into the file
    return main(["quantize", "--no-progress", *args])


# the slowest cases (mostly the one-off set-up of the IQ1/IQ2 grids, seconds each) run with -m slow;
# the MoE llama's IQ2_XS and IQ1_M cases cover those quantizers in the default run
SLOW = {"smollm2_IQ4_XS", *(f"main_{t}_imatrix" for t in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M"))}


@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.slow) if case in SLOW else case
                                  for case in GOLDENS["cases"]])
def test_same_bytes_as_llama_quantize(case, inputs, monkeypatch, capsys):
    directory, paths = inputs
    golden = GOLDENS["cases"][case]
    assert SCRIPT.CASES[case] == (golden["input"], golden["options"], golden["type"])
    if golden["input"] == "q4_0" and not (directory / paths["q4_0"]).exists():
        args = SCRIPT.case_arguments("main_Q4_0", paths, paths["q4_0"])
        assert _quantize(directory, args, monkeypatch) == 0
    output = directory / f"{case}.gguf"
    code = _quantize(directory, SCRIPT.case_arguments(case, paths, output), monkeypatch)
    stderr = capsys.readouterr().err
    if "error" in golden:  # llama-quantize refused
        assert code != 0
        errors = [line for line in stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0].startswith("llmcore quantize: error: "), stderr
        assert not output.exists()
        return
    assert code == 0, stderr
    assert sha256_file(output) == golden["sha256"]
    output.unlink()


def _fails(args: list[str], capsys) -> str:
    """Run ``llmcore quantize ARGS``: it must exit nonzero with a one-line error; returns it."""
    try:
        code = main(["quantize", "--no-progress", *args])
    except SystemExit as exit:  # argparse's errors
        code = exit.code
    assert code not in (0, None)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines[-1:]) == 1 and "error" in lines[-1], lines
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1, lines
    return errors[0]


def test_bad_input_is_one_line_error(inputs, tmp_path, capsys, monkeypatch):
    directory, paths = inputs
    main_model = str(directory / paths["main"])
    assert "unknown quantization type 'Q9_Z'" in _fails([main_model, "Q9_Z"], capsys)
    assert "invalid ftype 'Q9_Z'" in _fails([main_model, str(tmp_path / "out.gguf"), "Q9_Z"], capsys)
    assert "No such file" in _fails([str(tmp_path / "missing.gguf"), str(tmp_path / "out.gguf"), "Q4_K_M"], capsys)
    assert "are the same" in _fails([main_model, main_model, "Q4_K_M"], capsys)
    assert "bad arguments" in _fails([main_model], capsys)
    assert "invalid nthread" in _fails([main_model, str(tmp_path / "o.gguf"), "Q8_0", "many"], capsys)
    assert "cannot be used together" in _fails(
        ["--include-weights", "a", "--exclude-weights", "b", main_model, str(tmp_path / "o.gguf"), "Q8_0"], capsys)
    assert "invalid ggml_type" in _fails(["--output-tensor-type", "q9", main_model, "Q8_0"], capsys)
    assert "KV override" in _fails(["--override-kv", "a=long:1", main_model, "Q8_0"], capsys)
    assert "not supported yet" in _fails(["--keep-split", main_model, str(tmp_path / "o.gguf"), "Q8_0"], capsys)
    not_gguf = tmp_path / "text.gguf"
    not_gguf.write_text("hello")
    assert "not a GGUF" in _fails([str(not_gguf), str(tmp_path / "o.gguf"), "Q8_0"], capsys)
    assert not list(tmp_path.glob("o.gguf*")) and not list(tmp_path.glob("out.gguf*"))


def test_help_lists_the_file_types(capsys):
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    text = capsys.readouterr().out
    assert "  15  or  Q4_K_M  :  4.58G, +0.1754 ppl @ Llama-3-8B" in text
    assert "          COPY    : only copy tensors, no quantizing" in text
    assert "  30  or  IQ4_XS  :  4.25 bpw non-linear quantization\n" in text
    assert "(not supported yet)" not in text  # every file type is


def test_dry_run_and_default_output_name(inputs, monkeypatch, capsys):
    directory, paths = inputs
    assert _quantize(directory, ["--dry-run", str(paths["main"]), "Q4_K_M"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "blk.0.attn_v.weight" in out and "(Q6_K)" in out
    assert not (directory / "ggml-model-Q4_K_M.gguf").exists()
    assert _quantize(directory, [str(paths["main"]), "q8_0", "1"], monkeypatch) == 0
    assert sha256_file(directory / "ggml-model-Q8_0.gguf") == GOLDENS["cases"]["main_Q8_0"]["sha256"]
