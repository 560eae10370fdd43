"""`llmcore perplexity` against llama.cpp's llama-perplexity on the same model, text and -c
(tests/fixtures/perplexity: the text and llama-perplexity's printed results)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "fixtures" / "perplexity"
TEXT = HERE / "build-doc.txt"
LLAMA_CPP = json.loads((HERE / "build-doc.llama-cpp.json").read_text())


def run_perplexity(model: Path, backend: str) -> tuple[list[float], float, float]:
    out = subprocess.run(
        [sys.executable, "-m", "llmcore", "perplexity", "-m", str(model), "-f", str(TEXT),
         "-c", str(LLAMA_CPP["n_ctx"]), "--backend", backend],
        capture_output=True, text=True, check=True, timeout=900,
    ).stdout
    chunks_line, final_line = [line for line in out.splitlines() if line.strip()][-2:]
    chunks = [float(part.split("]")[1]) for part in chunks_line.rstrip(",").split(",")]
    words = final_line.split()  # Final estimate: PPL = X +/- Y
    return chunks, float(words[4]), float(words[6])


@pytest.mark.parametrize("backend", ["auto", pytest.param("reference", marks=pytest.mark.slow)])
def test_perplexity_matches_llama_cpp(default_model_path, backend):
    chunks, ppl, uncertainty = run_perplexity(default_model_path, backend)
    assert len(chunks) == len(LLAMA_CPP["chunk_ppls"])
    assert abs(ppl / LLAMA_CPP["ppl"] - 1) < 0.01
    assert abs(uncertainty / LLAMA_CPP["uncertainty"] - 1) < 0.02


def test_perplexity_needs_two_chunks_of_text(default_model_path, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Too short for a context of 256 tokens.")
    result = subprocess.run([sys.executable, "-m", "llmcore", "perplexity", "-m", str(default_model_path),
                             "-f", str(short), "-c", "256"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "you need at least 512 tokens" in result.stderr
    assert len(result.stderr.strip().splitlines()) >= 1 and "Traceback" not in result.stderr
