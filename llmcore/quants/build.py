"""Compiling ``csrc/`` on first use into a shared library cached under ``cache_dir()/kernels``, named
by a digest of the sources, the command and the compiler's version (an edit or another compiler
builds a new one); a file lock keeps two processes from compiling it at once.

The flags are ggml-base's (``-O3 -std=gnu11 -DNDEBUG``, no ``-march``, no ``-ffast-math``) with FMA
contraction off, so the quantizers round every float operation as llama.cpp's do; with OpenMP where
the compiler has it (``-fopenmp``, as ggml is built), which only spreads the one-off set-up of the
i-quants' grids over the cores."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from llmcore.errors import LLMCoreError
from llmcore.paths import cache_dir

SOURCE_DIR = Path(__file__).parent / "csrc"
FLAGS = ("-O3", "-std=gnu11", "-DNDEBUG", "-fPIC", "-shared", "-pthread", "-ffp-contract=off")
OPENMP = ("-fopenmp", "-DGGML_USE_OPENMP")


def _command(cc: str, output: Path, openmp: bool = True) -> list[str]:
    flags = (*FLAGS, *OPENMP) if openmp else FLAGS
    return [cc, *flags, "-o", str(output), *sorted(str(p) for p in SOURCE_DIR.glob("*.c")), "-lm"]


def library_path(cc: str) -> Path:
    """Where the library built by ``cc`` is (or will be) cached."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.glob("*.[ch]")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(shlex.join(_command(cc, Path("out"))).encode())
    try:
        digest.update(subprocess.run([cc, "--version"], capture_output=True, timeout=30).stdout)
    except (OSError, subprocess.SubprocessError):
        pass
    return cache_dir() / "kernels" / f"llmcore_quants-{digest.hexdigest()[:16]}.so"


def build() -> Path:
    """The path of the compiled library, compiling it first when it is not cached."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise LLMCoreError(f"quantizing needs a C compiler: {os.environ.get('CC', 'cc')} not found (set $CC)")
    target = library_path(cc)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # built by another process while this one waited
            return target
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        command = _command(cc, Path(tmp))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:  # a compiler without OpenMP (clang without libomp)
            command = _command(cc, Path(tmp), openmp=False)
            result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            os.unlink(tmp)
            raise LLMCoreError(f"compiling the quantizers failed: {shlex.join(command)}\n{result.stderr.strip()}")
        os.replace(tmp, target)  # atomic: no process ever opens a half-written library
    return target
