"""Coverage-guided fuzzing of the GGUF reader and the model checks behind it, with atheris (libFuzzer).

Each input is written to a file and opened as a model would be: the reader parses header, metadata
and tensor infos, every tensor is dequantized (or its bytes touched), and the hyper-parameters and
the architecture's weight check run. A ``GGUFError`` or ``ModelError`` is a correct refusal;
anything else, an input running over 2 s (libFuzzer's -timeout) or an allocation past 1 GiB beyond
the interpreter's own address space (RLIMIT_AS, so it surfaces as a MemoryError) is a crash, and
libFuzzer stops with the input saved as ``crash-*``.

The corpus is seeded with the GGUF files under tests/fixtures and small models derived from them
(a cut vocabulary, one tiny tensor of each type), so that mutations reach the tensor table and
the dequantizers without megabyte-sized inputs.

    .venv/bin/pip install atheris
    .venv/bin/python scripts/fuzz_gguf.py --runs 100000 --corpus /tmp/gguf-corpus   # libFuzzer's stats
    .venv/bin/python -m coverage run --include='llmcore/gguf/*,llmcore/models/base.py' \
        scripts/fuzz_gguf.py --replay /tmp/gguf-corpus && .venv/bin/python -m coverage report
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["llmcore.gguf", "llmcore.models"]):
    from llmcore.errors import GGUFError, ModelError
    from llmcore.gguf import SUPPORTED_TYPES, GGMLType, GGUFReader, GGUFWriter
    from llmcore.gguf.types import GGML_QUANT_SIZES
    from llmcore.models import ARCHITECTURES, HParams, WeightSpec

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEEDS = [FIXTURES / "gguf" / "tiny-llama.gguf", FIXTURES / "gguf" / "ggml-vocab-bert-bge.gguf",
         FIXTURES / "arch" / "llama.gguf", FIXTURES / "arch" / "gemma.gguf"]
ALLOCATION_LIMIT_BYTES = 1 << 30
HANG_SECONDS = 2
SEED_VOCAB = 16  # tokens kept in the derived seeds

# the reader maps a file, so each input is written to one (in memory where /dev/shm exists)
_SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_INPUT_PATH = Path(os.environ.get("LLMCORE_FUZZ_FILE", f"{_SCRATCH_DIR}/llmcore-fuzz-{os.getpid()}.gguf"))


def open_as_model(path: Path) -> None:
    """What loading a model does with a file, short of the tokenizer and the backends."""
    with GGUFReader(path) as reader:
        for name, info in reader.tensors.items():
            if info.type in SUPPORTED_TYPES:
                reader.dequantize(name)
            else:
                reader.raw(name).tobytes()
        tokens = reader.metadata.get("tokenizer.ggml.tokens")
        hparams = HParams.from_metadata(reader.metadata, len(tokens) if isinstance(tokens, list) else 1)
        architecture = ARCHITECTURES.get(hparams.arch)
        if architecture is not None:
            weights = {name: WeightSpec(t.shape, t.type) for name, t in reader.tensors.items()}
            architecture(hparams, weights, n_ctx=1).check_weights()


def test_one_input(data: bytes) -> None:
    _INPUT_PATH.write_bytes(data)
    try:
        open_as_model(_INPUT_PATH)
    except (GGUFError, ModelError):
        pass
    finally:  # libFuzzer ends the process with exit(), past any Python cleanup
        _INPUT_PATH.unlink(missing_ok=True)


def derived_seeds(out_dir: Path) -> None:
    """Write two small well-formed files to ``out_dir``: the llama fixture's metadata with its
    vocabulary cut to SEED_VOCAB tokens, alone and with one block-sized tensor of every type
    llmcore decodes."""
    with GGUFReader(FIXTURES / "arch" / "llama.gguf") as reader:
        metadata = [(key, value, reader.metadata_types[key]) for key, value in reader.metadata.items()]
    rng = np.random.default_rng(0)
    for label, with_tensors in [("metadata-only", False), ("every-type", True)]:
        writer = GGUFWriter(out_dir / f"seed-{label}.gguf")
        for key, value, vtype in metadata:
            is_vocab_array = key.startswith("tokenizer.ggml.") and not isinstance(value, (str, int, float, bool))
            writer.add_metadata(key, value[:SEED_VOCAB] if is_vocab_array else value, vtype)
        for ggml_type in sorted(SUPPORTED_TYPES, key=int) if with_tensors else []:
            block_size, type_size = GGML_QUANT_SIZES[ggml_type]
            raw = rng.integers(0, 256, type_size, dtype=np.uint8)
            writer.add_tensor(f"t.{ggml_type.name}", raw, GGMLType(ggml_type), raw_shape=(block_size,))
        writer.write()


def vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def replay(corpus: Path) -> None:
    """Run every input of ``corpus`` once, without fuzzing (for coverage.py, see the module doc)."""
    inputs = sorted(p for p in corpus.iterdir() if p.is_file())
    for path in inputs:
        test_one_input(path.read_bytes())
    print(f"fuzz_gguf: replayed {len(inputs)} inputs of {corpus}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="inputs to run (default: 100000)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed (default: 1)")
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "llmcore-fuzz-gguf-corpus",
                        help="corpus folder, kept between runs (default: %(default)s)")
    parser.add_argument("--replay", type=Path, default=None, metavar="CORPUS",
                        help="run the inputs of CORPUS once instead of fuzzing (under coverage.py: line coverage)")
    args, libfuzzer_args = parser.parse_known_args()
    if args.replay:
        replay(args.replay)
        return
    corpus = args.corpus
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:  # the seeds live in the corpus, so that --replay covers them too
        (corpus / f"seed-{seed.parent.name}-{seed.name}").write_bytes(seed.read_bytes())
    derived_seeds(corpus)
    max_len = max(p.stat().st_size for p in corpus.iterdir())
    limit = vm_size_bytes() + ALLOCATION_LIMIT_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(f"fuzz_gguf: {args.runs} runs, corpus {corpus} ({len(list(corpus.iterdir()))} inputs), "
          f"RLIMIT_AS {limit >> 20} MiB, timeout {HANG_SECONDS} s", file=sys.stderr)
    atheris.Setup([sys.argv[0], f"-runs={args.runs}", f"-seed={args.seed}", f"-timeout={HANG_SECONDS}",
                   f"-max_len={max_len}", "-rss_limit_mb=0", "-print_final_stats=1", *libfuzzer_args,
                   str(corpus)], test_one_input)
    atheris.Fuzz()  # exits the process when the runs are done or on the first crash


if __name__ == "__main__":
    main()
