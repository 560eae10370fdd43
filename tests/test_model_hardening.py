"""Mutated models are refused at load with one line naming the file and the key or tensor, never a
traceback, and no header value sizes an allocation before it is validated (issue 15, findings 4
and 5): the tiny llama fixture with one metadata value or one tensor's type or shape changed, run
through ``llmcore run``."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmcore.cli import main
from llmcore.gguf import GGMLType, GGUFReader, GGUFValueType, GGUFWriter
from llmcore.gguf.types import tensor_bytes

MODEL = Path(__file__).parent / "fixtures" / "arch" / "llama.gguf"
U32, I32, U64, F32, STR = (GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.UINT64,
                           GGUFValueType.FLOAT32, GGUFValueType.STRING)
NAN, INF = math.nan, math.inf

Metadata = dict[str, tuple[Any, GGUFValueType]]
Tensors = dict[str, tuple[GGMLType, tuple[int, ...]]]


def mutated(path: Path, metadata: Metadata | None = None, tensors: Tensors | None = None) -> Path:
    """The fixture with ``metadata`` keys set (added when absent) and ``tensors`` given another type
    and shape (their bytes: the original ones repeated or cut to the new size)."""
    metadata, tensors = dict(metadata or {}), tensors or {}
    with GGUFReader(MODEL) as reader:
        writer = GGUFWriter(path)
        for key, value in reader.metadata.items():
            value, vtype = metadata.pop(key, (value, reader.metadata_types[key]))
            writer.add_metadata(key, value, vtype)
        for key, (value, vtype) in metadata.items():
            writer.add_metadata(key, value, vtype)
        for name, info in reader.tensors.items():
            ggml_type, shape = tensors.get(name, (info.type, info.shape))
            data = np.resize(reader.raw(name).reshape(-1).view(np.uint8), tensor_bytes(ggml_type, shape))
            writer.add_tensor(name, data, ggml_type, raw_shape=shape)
        writer.write()
    return path


def run(path: Path, *flags: str) -> int:
    return main(["run", "-m", str(path), "--backend", "reference", "-c", "64", "-p", "hi", "-n", "2", "--temp", "0",
                 *flags])


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr (the lines before it are the load's progress)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("llmcore run: error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err
    return errors[0]


# -- finding 4: a header field that would size memory -------------------------------------------

def test_block_count_2_to_the_32_is_refused_within_a_second(tmp_path, capsys):
    path = mutated(tmp_path / "m.gguf", {"llama.block_count": (2**32 - 1, U32)})
    start = time.perf_counter()
    assert run(path) == 2
    assert time.perf_counter() - start < 1.0
    assert error_line(capsys) == (f"llmcore run: error: {path}: metadata 'llama.block_count': 4294967295 is outside "
                                  "1..512 (llama.cpp's LLAMA_MAX_LAYERS)")


def test_block_count_2_to_the_32_allocates_nothing_in_a_fresh_process(tmp_path):
    """The CLI as a user runs it, with 1 GiB of address space beyond the interpreter's: before the
    fix it grew to 21.5 GB until the OOM killer ended it."""
    path = mutated(tmp_path / "m.gguf", {"llama.block_count": (2**32 - 1, U32)})
    code = ("import resource, sys; from llmcore.cli import main; "
            "vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize:')).split()[1]) * 1024; "
            "resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY)); "
            f"sys.exit(main(['run', '-m', {str(path)!r}, '--backend', 'reference', '-p', 'hi', '-n', '2']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].endswith("'llama.block_count': 4294967295 is outside 1..512 "
                                                 "(llama.cpp's LLAMA_MAX_LAYERS)")


@pytest.mark.parametrize(("key", "value", "vtype", "problem"), [
    ("llama.block_count", 10**7, U32, "10000000 is outside 1..512 (llama.cpp's LLAMA_MAX_LAYERS)"),
    ("llama.embedding_length", 2**32 - 1, U32, "4294967295 is outside 1..1048576"),
    ("llama.context_length", 2**63, U64, "9223372036854775808 is outside 1..134217728"),
    ("llama.vocab_size", 2**31 - 1, U32, "2147483647 is outside 1..16777216"),
    ("llama.expert_count", 2**32 - 1, U32, "4294967295 is outside 0..512"),
    ("llama.attention.head_count", [4] * 3, U32, "3 per-layer values for 2 layers"),
    ("llama.feed_forward_length", 2**32 - 1, U32, "4294967295 is outside 0..16777216"),
    ("llama.attention.key_length", 2**32 - 1, U32, "4294967295 is outside 1..65536"),
])
def test_header_sizes_are_bounded(tmp_path, capsys, key, value, vtype, problem):
    path = mutated(tmp_path / "m.gguf", {key: (value, vtype)})
    assert run(path) == 2
    assert error_line(capsys) == f"llmcore run: error: {path}: metadata '{key}': {problem}"


# -- finding 5: impossible hyper-parameters, swapped tensors, a context that cannot fit ---------

@pytest.mark.parametrize(("key", "value", "vtype", "problem"), [
    ("llama.attention.head_count", 0, U32, "0 heads, but llama needs attention heads (only recurrent models have none)"),
    ("llama.attention.head_count_kv", 0, U32, "0 is outside 1..4"),
    ("llama.attention.head_count_kv", 3, U32, "4 query heads cannot be shared among 3 key/value heads"),
    ("llama.attention.layer_norm_rms_epsilon", NAN, F32, "nan is not a finite value in (0, 1)"),
    ("llama.attention.layer_norm_rms_epsilon", -1e-6, F32, "-9.999999974752427e-07 is not a finite value in (0, 1)"),
    ("llama.rope.freq_base", NAN, F32, "nan is not a finite value in (0, inf)"),
    ("llama.rope.freq_base", 0.0, F32, "0.0 is not a finite value in (0, inf)"),
    ("llama.rope.freq_base", -10000.0, F32, "-10000.0 is not a finite value in (0, inf)"),
    ("llama.rope.freq_base", INF, F32, "inf is not a finite value in (0, inf)"),
    ("llama.rope.dimension_count", 0, U32, "0 is outside 2..16"),
    ("llama.rope.scaling.factor", NAN, F32, "nan is not a finite value in [0, inf)"),
    ("llama.block_count", "two", STR, "'two' is not an integer"),
    ("general.architecture", 7, U32, "7 is not an architecture name"),
])
def test_impossible_hyperparameters_are_named(tmp_path, capsys, key, value, vtype, problem):
    path = mutated(tmp_path / "m.gguf", {key: (value, vtype)})
    assert run(path) == 2
    assert error_line(capsys) == f"llmcore run: error: {path}: metadata '{key}': {problem}"


@pytest.mark.parametrize(("tensor", "ggml_type", "problem"), [
    ("blk.0.attn_norm.weight", GGMLType.Q8_0,
     "is Q8_0; the mul reading it needs F32 (it scales or shifts activations)"),
    ("output_norm.weight", GGMLType.F16, "is F16; the mul reading it needs F32 (it scales or shifts activations)"),
    ("blk.0.attn_q.weight", GGMLType.I32, "is I32; the mul_mat reading it needs a float or quantized type"),
    ("token_embd.weight", GGMLType.F64, "is F64; the get_rows reading it needs a float or quantized type"),
])
def test_a_tensor_of_the_wrong_type_is_named(tmp_path, capsys, tensor, ggml_type, problem):
    shape = GGUFReader(MODEL).tensors[tensor].shape
    path = mutated(tmp_path / "m.gguf", tensors={tensor: (ggml_type, shape)})
    assert run(path) == 2
    assert error_line(capsys) == f"llmcore run: error: {path}: tensor {tensor} {problem}"


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path, capsys):
    path = mutated(tmp_path / "m.gguf", tensors={"blk.1.ffn_down.weight": (GGMLType.F32, (64, 160))})
    assert run(path) == 2
    assert error_line(capsys) == (f"llmcore run: error: {path}: mul_mat blk.1.ffn_down: activations (1, 128) do "
                                  "not match weight blk.1.ffn_down.weight (64, 160)")


def test_embeddings_must_span_the_vocabulary(tmp_path, capsys):
    path = mutated(tmp_path / "m.gguf", tensors={"token_embd.weight": (GGMLType.F32, (256, 64))})
    assert run(path) == 2
    assert error_line(capsys) == (f"llmcore run: error: {path}: tensor token_embd.weight has 256 rows for a "
                                  "vocabulary of 512")


def test_a_context_that_cannot_fit_is_refused_with_the_bytes_needed(capsys):
    assert run(MODEL, "-c", "1000000000") == 2  # 238 GiB of KV cache for this tiny model
    line = error_line(capsys)
    assert line.startswith("llmcore run: error: -c 1000000000: the KV cache needs 238.42 GiB (4 caches)")
    assert "bytes in all; only" in line and line.endswith("of memory is available; lower -c/--ctx-size")


def test_the_memory_check_respects_an_address_space_limit(tmp_path):
    """-c 100000000 needs about 231 GB; under a 2 GiB RLIMIT_AS it is refused before numpy's MemoryError."""
    code = ("import resource, sys; from llmcore.cli import main; "
            "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY)); "
            f"sys.exit(main(['run', '-m', {str(MODEL)!r}, '--backend', 'reference', '-c', '100000000', "
            "'-p', 'hi', '-n', '2']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    last = done.stderr.splitlines()[-1]
    available_gib = float(last.split("only ")[1].split(" GiB")[0])
    assert 0 < available_gib < 2, last  # what the limit leaves beyond the interpreter's own mappings


# -- the 111-mutation attack, widened: every case ends in a result or one error line -------------

def _metadata_mutations() -> list[tuple[str, Metadata]]:
    cases = []
    integer_keys = ["block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                    "attention.head_count_kv", "context_length", "rope.dimension_count", "vocab_size",
                    "expert_count", "attention.key_length", "rope.scaling.original_context_length"]
    for key in integer_keys:
        for label, value, vtype in [("0", 0, U32), ("2^31-1", 2**31 - 1, U32), ("2^32-1", 2**32 - 1, U32),
                                    ("-1", -1, I32), ("2^63", 2**63, U64), ("nan", NAN, F32), ("text", "x", STR),
                                    ("[]", [], U32), ("[0,0]", [0, 0], U32)]:
            cases.append((f"{key}={label}", {f"llama.{key}": (value, vtype)}))
    float_keys = ["rope.freq_base", "attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon",
                  "rope.scaling.factor", "rope.scaling.attn_factor", "rope.scaling.yarn_beta_fast"]
    for key in float_keys:
        for label, value, vtype in [("-1", -1.0, F32), ("nan", NAN, F32), ("inf", INF, F32), ("-inf", -INF, F32),
                                    ("text", "x", STR), ("[1.0]", [1.0], F32)]:
            cases.append((f"{key}={label}", {f"llama.{key}": (value, vtype)}))
    return cases


def _tensor_mutations() -> list[tuple[str, Tensors]]:
    shapes = {name: info.shape for name, info in GGUFReader(MODEL).tensors.items()}
    cases = []
    for name in ["token_embd.weight", "output.weight", "blk.0.attn_norm.weight", "blk.0.attn_k.weight",
                 "blk.1.ffn_down.weight", "output_norm.weight"]:
        shape = shapes[name]
        for ggml_type in [GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.I8, GGMLType.I32,
                          GGMLType.I64, GGMLType.F64]:
            cases.append((f"{name} as {ggml_type.name}", {name: (ggml_type, shape)}))
        cases.append((f"{name} transposed", {name: (GGMLType.F32, tuple(reversed(shape)))}))
        cases.append((f"{name} wider", {name: (GGMLType.F32, (*shape[:-1], shape[-1] + 32))}))
    return cases


MUTATIONS = [(label, metadata, {}) for label, metadata in _metadata_mutations()] + [
    (label, {}, tensors) for label, tensors in _tensor_mutations()]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # garbage weights overflow in the reference kernels
@pytest.mark.parametrize(("metadata", "tensors"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_a_mutated_model_runs_or_fails_in_one_line(tmp_path, capsys, metadata, tensors):
    """Refused (exit code 2, one line) or, where the mutation leaves a valid model (a value of a
    key this architecture ignores, garbage in an F16 or quantized weight), run."""
    path = mutated(tmp_path / "m.gguf", metadata, tensors)
    code = run(path)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2), err
    if code == 2:
        last = err.splitlines()[-1]
        assert [line for line in err.splitlines() if "error" in line] == [last]
        # the file is named, or garbage weights gave logits no token can be sampled from (finding 5's NaN part)
        assert last.startswith(f"llmcore run: error: {path}: ") or last.startswith("llmcore run: error: sampling: ")
