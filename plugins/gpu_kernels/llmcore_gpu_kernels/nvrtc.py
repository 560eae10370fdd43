"""Compile-check of the kernels' CUDA rendering with NVRTC alone (PyPI's nvidia-cuda-nvrtc, or the
CUDA toolkit's libnvrtc), without a GPU or CuPy: what CI runs in place of a device.

``python -m llmcore_gpu_kernels.nvrtc [sm_75 sm_80 ...]`` compiles every kernel for each architecture to
machine code and prints, per kernel, the registers, spill bytes and stack ptxas reports.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import sys
from dataclasses import dataclass

from llmcore.plugin_api import BackendError

from llmcore_gpu_kernels.render import render

#: the architectures CI compiles for: Turing, Ampere, Ada, Hopper
ARCHITECTURES = ("sm_75", "sm_80", "sm_89", "sm_90")
_PTXAS_LINE = re.compile(r"Function properties for (?P<name>\w+)\n[^\n]*?(?P<stack>\d+) bytes stack frame, "
                         r"(?P<stores>\d+) bytes spill stores, (?P<loads>\d+) bytes spill loads\n"
                         r"[^\n]*?Used (?P<registers>\d+) registers")


@dataclass(frozen=True)
class KernelReport:
    name: str
    registers: int
    stack_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int


def load_nvrtc() -> ctypes.CDLL:
    """libnvrtc from the nvidia-cuda-nvrtc wheel (any nvidia/cu*/lib), else the system's."""
    import_dirs = [os.path.join(p, "nvidia") for p in sys.path if os.path.isdir(os.path.join(p, "nvidia"))]
    candidates = sorted(c for d in import_dirs for c in glob.glob(os.path.join(d, "*", "lib", "libnvrtc.so.*"))
                        if "builtins" not in c)
    for name in [*candidates, "libnvrtc.so"]:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendError("NVRTC not found: pip install nvidia-cuda-nvrtc (or pip install -e 'plugins/gpu_kernels[nvrtc]')")


def compile_kernels(arch: str, nvrtc: ctypes.CDLL | None = None) -> list[KernelReport]:
    """Compile the CUDA rendering for ``arch`` (e.g. "sm_89") to machine code; BackendError with
    NVRTC's log when it fails."""
    nvrtc = nvrtc or load_nvrtc()
    source = render("cuda").source.encode()
    program = ctypes.c_void_p()
    _check(nvrtc, nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, b"llmcore.cu", 0, None, None))
    options = [f"--gpu-architecture={arch}".encode(), b"--std=c++17", b"--ptxas-options=--verbose"]
    try:
        status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
        log = _log(nvrtc, program)
        if status != 0:
            raise BackendError(f"nvrtc {arch}: {next((l for l in log.splitlines() if 'error' in l), log.strip())}")
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    return [KernelReport(m["name"], int(m["registers"]), int(m["stack"]), int(m["stores"]), int(m["loads"]))
            for m in _PTXAS_LINE.finditer(log)]


def _log(nvrtc: ctypes.CDLL, program: ctypes.c_void_p) -> str:
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    buffer = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, buffer)
    return buffer.value.decode(errors="replace")


def _check(nvrtc: ctypes.CDLL, status: int) -> None:
    if status != 0:
        nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise BackendError(f"nvrtc: {nvrtc.nvrtcGetErrorString(status).decode()}")


def main(argv: list[str]) -> int:
    nvrtc = load_nvrtc()
    for arch in argv or ARCHITECTURES:
        for r in compile_kernels(arch, nvrtc):
            print(f"{arch} {r.name:28s} {r.registers:3d} registers, {r.stack_bytes:5d} B stack, "
                  f"spills {r.spill_store_bytes}/{r.spill_load_bytes} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
