"""Compiling the C sources on first use: one shared library per ISA level, cached on disk under a
name that hashes the sources, the compiler and its flags, so an edit or another CPU rebuilds it.
A file lock keeps two processes from compiling the same library at once; the sources compile in
parallel, one compiler per CPU (a first run waits seconds, not the sum of every file's time). ggml's i-quant grids and
level tables come from the plugin API (``ggml_tables_header``, llmcore's one copy of them) as
``ggml_tables.h`` in a directory of its own on the include path."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llmcore.plugin_api import BackendError, cache_dir, ggml_tables_header

from llmcore_cpu_simd.isa import compiler_flags

SOURCE_DIR = Path(__file__).parent / "csrc"
_COMMON_FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-pthread", "-fno-math-errno",
                 # no silent a*b+c -> fma: the kernels pick their fused ops explicitly, so every
                 # ISA level rounds the scalar code the same way the reference does
                 "-ffp-contract=off")


def compiler() -> str | None:
    """The C compiler to use (``$CC`` or ``cc``), or None when there is none."""
    return shutil.which(os.environ.get("CC", "cc"))


def tables_dir() -> Path:
    """The directory holding ``ggml_tables.h`` (written on first use, named by its digest)."""
    text = ggml_tables_header()
    directory = cache_dir() / "kernels" / f"tables-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    header = directory / "ggml_tables.h"
    if not header.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".h", dir=directory)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, header)  # atomic: a concurrent compile never reads half a header
    return directory


def _compile_flags(cc: str, level: str, tables: Path) -> list[str]:
    return [cc, *_COMMON_FLAGS, *compiler_flags(level), f'-DLC_ISA_NAME="{level}"', f"-I{tables}"]


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.glob("*.c"))


def library_path(level: str) -> Path:
    """Where the library for ``level`` is (or will be) cached."""
    cc = compiler() or "cc"
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.glob("*.[ch]")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    # the tables by their folder's digest name, not by where the cache is: a cache reached through
    # another path (a link, $LLMCORE_CACHE elsewhere) finds its libraries
    digest.update(" ".join(_compile_flags(cc, level, Path(tables_dir().name))).encode())
    digest.update(_compiler_version(cc).encode())
    return cache_dir() / "kernels" / f"llmcore_cpu_simd-{level}-{digest.hexdigest()[:16]}.so"


def _compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def build(level: str) -> Path:
    """The path of the library for ``level``, compiling it first if it is not cached."""
    target = library_path(level)
    if target.exists():
        return target
    cc = compiler()
    if cc is None:
        raise BackendError(f"cpu_simd needs a C compiler to build its kernels: {os.environ.get('CC', 'cc')} not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # another process built it while we waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            flags = _compile_flags(cc, level, tables_dir())
            objects = [Path(work) / f"{source.stem}.o" for source in _sources()]
            commands = [[*flags, "-c", str(source), "-o", str(obj)] for source, obj in zip(_sources(), objects)]
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                results = list(pool.map(lambda command: subprocess.run(command, capture_output=True, text=True),
                                        commands))
            for command, result in zip(commands, results):
                if result.returncode != 0:
                    raise BackendError(f"cpu_simd: compiling the {level} kernels failed: {shlex.join(command)}\n"
                                       f"{result.stderr.strip()}")
            library = Path(work) / "library.so"
            command = [*flags, "-shared", "-o", str(library), *map(str, objects), "-lm"]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise BackendError(f"cpu_simd: linking the {level} kernels failed: {shlex.join(command)}\n"
                                   f"{result.stderr.strip()}")
            os.replace(library, target)  # atomic: readers never see a half-written library
    return target
