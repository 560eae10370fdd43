"""The compiled library, opened through cffi in ABI mode. Its declarations are not copied here:
cffi reads them from the C headers, the blocks between ``/* cffi-cdef: begin */`` and
``/* cffi-cdef: end */``, so the Python side and the C build see one text. Opening a library also
decides whether its AMX kernels run (:func:`use_amx`), which one-token path each weight type takes
and how products cut their rows into chunks (timed on this CPU: ``tuning``)."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from cffi import FFI

from llmcore_cpu_simd import isa, tuning
from llmcore_cpu_simd.build import SOURCE_DIR, build

#: the headers that declare the library's interface, in the order cffi must read them
#: (lc_graph.h, lc_mm_packed.h and lc_kv.h use lc_types.h's types)
INTERFACE_HEADERS = ("lc_types.h", "lc_graph.h", "lc_mm_packed.h", "lc_amx.h", "lc_kv.h")
#: ``0`` keeps the AMX kernels off where the OS would grant them (the fallback, on purpose)
AMX_ENV = "LLMCORE_AMX"
#: the /proc/cpuinfo flags of AMX-INT8's tiles
AMX_FLAGS = ("amx_tile", "amx_int8")
_CDEF_BLOCK = re.compile(r"/\* cffi-cdef: begin \*/(.*?)/\* cffi-cdef: end \*/", re.DOTALL)


def header_declarations() -> str:
    """The cdef: the marked blocks of :data:`INTERFACE_HEADERS`, in order."""
    blocks = []
    for name in INTERFACE_HEADERS:
        found = _CDEF_BLOCK.findall((SOURCE_DIR / name).read_text())
        if not found:
            raise RuntimeError(f"cpu_simd: csrc/{name} has no cffi-cdef block")
        blocks.extend(found)
    return "\n".join(blocks)


ffi = FFI()
ffi.cdef(header_declarations())


_amx_states: dict[str, str] = {}


def use_amx(lib) -> str:
    """Switches ``lib``'s AMX kernels on where the CPU advertises AMX-INT8, ``$LLMCORE_AMX`` is not
    ``0`` and the OS grants the tile state, off otherwise; returns which, as the features line says it.
    A CPU can advertise AMX that the OS refuses (a VM whose hypervisor leaves the tile state out):
    there the request fails and the vector kernels run, with the same bits."""
    lib.lc_amx_use(0)
    if not all(flag in isa.cpu_flags() for flag in AMX_FLAGS):
        return "not on this CPU"
    if os.environ.get(AMX_ENV) == "0":
        return f"off ({AMX_ENV}=0)"
    if not lib.lc_amx_request():
        return "refused by the OS"
    if not lib.lc_amx_use(1):
        return f"granted, but the {ffi.string(lib.lc_isa()).decode()} build has no AMX kernels"
    return "granted"


_tuned: dict[str, dict[str, dict]] = {}
_paths: dict[str, Path] = {}


@functools.cache
def load(level: str):
    """The library built for ISA ``level`` (compiled on first use), as a cffi lib object, its AMX
    kernels on or off (:func:`use_amx`), its one-token paths, product chunking and GEMM tiles those
    timed on this CPU (:func:`tuning.one_token_paths`, :func:`tuning.mul_mat_chunks`,
    :func:`tuning.tile_tokens`)."""
    path = _paths[level] = build(level)
    lib = ffi.dlopen(str(path))
    _amx_states[level] = use_amx(lib)
    _tuned[level] = {"one-token paths": tuning.one_token_paths(lib, ffi, path),
                     "mul_mat chunks": tuning.mul_mat_chunks(lib, ffi, path),
                     "tile tokens": tuning.tile_tokens(lib, ffi, path)}
    return lib


def tuned(level: str) -> dict[str, dict]:
    """What ``tuning`` chose for the library of ``level``: "one-token paths", "mul_mat chunks" and
    "tile tokens"."""
    load(level)
    return _tuned[level]


def library_name(level: str) -> str:
    """The file name (without suffix) of the library of ``level``: its ISA level and the digest of
    its sources, flags and compiler."""
    load(level)
    return _paths[level].stem


def amx_state(level: str) -> str:
    """What :func:`use_amx` decided for the library of ``level``."""
    load(level)
    return _amx_states[level]
