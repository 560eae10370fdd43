"""Seeded fuzzing of the GGUF reader: 1,000 mutated or truncated real files (and, slow-marked,
100,000 coverage-guided inputs from scripts/fuzz_gguf.py).

Every case must either load (header, metadata, tensor infos, and every tensor dequantized or
touched) or raise GGUFError: nothing else, no crash, no hang, and no case allocating more than 1 GiB
(RLIMIT_AS = the interpreter's address space, about 0.1 GB, plus 1 GiB). The loop runs in a
subprocess (this file run as a script) so that the limit and a crash cannot affect pytest. That no
case takes over 5 s, and all of them under 60 s, is a slow-marked check: timings fail under load.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
SOURCES = [FIXTURES / "tiny-llama.gguf", FIXTURES / "ggml-vocab-bert-bge.gguf"]
N_CASES = 1000
SEED = 20240611
CASE_SECONDS = 5
TOTAL_SECONDS = 60
HANG_SECONDS = 120  # a case still running after this is stuck, however loaded the machine
ALLOCATION_LIMIT_BYTES = 1 << 30
EXTREMES = [0, 1, 7, 31, 33, 255, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]


def fuzz(workdir: Path) -> tuple[dict, float]:
    """The worker's report on the N_CASES cases, and the seconds it took."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    worker = subprocess.run(
        [sys.executable, __file__, str(workdir), str(N_CASES), str(SEED)],
        capture_output=True, text=True, env=env, timeout=10 * HANG_SECONDS,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert worker.returncode == 0, worker.stderr[-3000:]
    return json.loads(worker.stdout.splitlines()[-1]), elapsed


def test_fuzzed_files_load_or_raise_gguf_error(tmp_path: Path) -> None:
    report, _ = fuzz(tmp_path)
    assert report["unexpected"] == []
    assert report["loaded"] + report["rejected"] == N_CASES
    assert report["loaded"] >= 100 and report["rejected"] >= 300, report  # the mix exercises both paths


@pytest.mark.slow
def test_fuzzed_files_are_read_fast(tmp_path: Path) -> None:
    report, elapsed = fuzz(tmp_path)
    assert report["slowest_case_s"] < CASE_SECONDS
    assert elapsed < TOTAL_SECONDS, f"fuzzing took {elapsed:.1f} s"


ATHERIS_RUNS = 100_000


@pytest.mark.slow
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path: Path) -> None:
    """scripts/fuzz_gguf.py: atheris (libFuzzer) over the reader and the model checks, 100,000
    inputs, none raising anything but GGUFError/ModelError, running over 2 s or allocating past 1 GiB."""
    pytest.importorskip("atheris")
    script = Path(__file__).parent.parent / "scripts" / "fuzz_gguf.py"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "LLMCORE_FUZZ_FILE": str(tmp_path / "input.gguf")}
    command = [sys.executable, str(script), "--runs", str(ATHERIS_RUNS), "--corpus", str(tmp_path / "corpus")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {ATHERIS_RUNS} runs" in done.stderr
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))


def structural_offsets(path: Path) -> list[int]:
    """Byte offsets of header, key/value and tensor-info fields (first parts of each), from gguf-py."""
    import gguf

    reader = gguf.GGUFReader(path)
    offsets = {0, 4, 8, 16}
    for field in [*reader.fields.values(), *(t.field for t in reader.tensors)]:
        position = field.offset
        for part in field.parts[:48]:
            offsets.add(position)
            position += part.nbytes
    return sorted(o for o in offsets if o < path.stat().st_size)


def mutate(rng: random.Random, original: bytes, fields: list[int]) -> bytes:
    data = bytearray(original)
    kind = rng.choice(["truncate", "flip", "field", "field", "splice"])
    if kind == "truncate":
        limit = fields[-1] + 64 if rng.random() < 0.5 else len(data)
        return bytes(data[: rng.randrange(min(limit, len(data)))])
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            at = rng.choice(fields) + rng.randrange(8) if rng.random() < 0.5 else rng.randrange(len(data))
            data[min(at, len(data) - 1)] = rng.randrange(256)
        return bytes(data)
    at = rng.choice(fields)
    if kind == "field":
        width = rng.choice([1, 4, 8])
        value = rng.choice(EXTREMES + [rng.getrandbits(64), len(data), rng.randrange(64)]) % (1 << (8 * width))
        data[at : at + width] = value.to_bytes(width, "little")
        return bytes(data[: len(original)])
    if rng.random() < 0.5:  # splice: shift everything after a field by inserting or deleting bytes
        return bytes(data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 9))) + data[at:])
    return bytes(data[:at] + data[at + rng.randint(1, 9) :])


def vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout()


def load_everything(path: Path) -> None:
    import numpy as np

    from llmcore.gguf import SUPPORTED_TYPES, GGUFReader

    with GGUFReader(path) as reader:
        for name, info in reader.tensors.items():
            if info.type in SUPPORTED_TYPES:
                values = reader.dequantize(name)
                assert values.dtype == np.float32 and values.shape == info.shape
            else:
                assert len(reader.raw(name).tobytes()) == info.n_bytes


def run_worker(workdir: Path, n_cases: int, seed: int) -> None:
    from llmcore.errors import GGUFError

    originals = [(source.read_bytes(), structural_offsets(source)) for source in SOURCES]
    limit = vm_size_bytes() + ALLOCATION_LIMIT_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    rng = random.Random(seed)
    path = workdir / "fuzz.gguf"
    report: dict = {"loaded": 0, "rejected": 0, "unexpected": [], "slowest_case_s": 0.0}
    for case in range(n_cases):
        original, fields = originals[case % len(originals)]
        path.write_bytes(mutate(rng, original, fields))
        start = time.perf_counter()
        signal.alarm(HANG_SECONDS)
        try:
            load_everything(path)
            report["loaded"] += 1
        except GGUFError:
            report["rejected"] += 1
        except _Timeout:
            report["unexpected"].append([case, f"over {HANG_SECONDS} s"])
        except BaseException as error:  # noqa: BLE001 - anything else is the failure being hunted
            report["unexpected"].append([case, repr(error)[:300]])
        finally:
            signal.alarm(0)
            report["slowest_case_s"] = max(report["slowest_case_s"], time.perf_counter() - start)
    report["address_space_limit_mb"] = limit >> 20
    print(json.dumps(report))


if __name__ == "__main__":
    run_worker(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
