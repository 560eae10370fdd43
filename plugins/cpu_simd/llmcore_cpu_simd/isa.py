"""What this CPU can run: the SIMD levels the plugin builds for, and the number of physical cores.

Each level is one build of the same C sources with different compiler flags; the best level the
CPU supports is used unless ``LLMCORE_CPU_ISA`` (or the backend's ``isa`` argument) names one.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

ISA_ENV = "LLMCORE_CPU_ISA"

#: the levels, lowest first, with the /proc/cpuinfo flags each needs
_REQUIRED_FLAGS: dict[str, tuple[str, ...]] = {
    "scalar": (),
    "avx2": ("avx2", "fma", "f16c"),
    "avx512": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq"),
}
ISA_LEVELS = tuple(_REQUIRED_FLAGS)

_BASE_FLAGS: dict[str, tuple[str, ...]] = {
    "scalar": (),
    "avx2": ("-mavx2", "-mfma", "-mf16c"),
    "avx512": ("-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"),
}
#: optional extensions of a level, added when the CPU has them (AVX-VNNI: the 256-bit byte dot
#: products of AVX2-only CPUs such as Intel's Alder Lake; AMX: the tiles of csrc/amx.c, compiled in
#: where the CPU advertises them but run only where the OS grants them, see library.use_amx)
_EXTRAS = {"avx2": {"avx_vnni": "-mavxvnni", "bmi2": "-mbmi2"},
           "avx512": {"avx512_vnni": "-mavx512vnni", "avx512_bf16": "-mavx512bf16",
                      "amx_tile": "-mamx-tile", "amx_int8": "-mamx-int8", "bmi2": "-mbmi2"}}


def _cpuinfo_field(*names: str) -> str:
    """The first CPU's value of the first of ``names`` in /proc/cpuinfo ("" where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return ""


def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    return frozenset(_cpuinfo_field("flags", "Features").split())


def _slow_pdep() -> bool:
    """AMD's CPUs before Zen 3 (family 25) run BMI2's pdep in microcode, hundreds of cycles each:
    the kernels' shift-and-mask paths win there."""
    family = _cpuinfo_field("cpu family")
    return _cpuinfo_field("vendor_id") == "AuthenticAMD" and family.isdigit() and int(family) < 25


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def supported_levels() -> list[str]:
    """The ISA levels this CPU can run, lowest first (non-x86 CPUs have only ``scalar``, which
    on aarch64 still compiles the NEON paths: NEON is part of the base architecture there)."""
    if not _is_x86():
        return ["scalar"]
    flags = cpu_flags()
    return [level for level, needed in _REQUIRED_FLAGS.items() if all(f in flags for f in needed)]


def compiler_flags(level: str) -> tuple[str, ...]:
    """The -m flags that build ``level`` for this CPU."""
    present = cpu_flags() - ({"bmi2"} if _slow_pdep() else set())
    return _BASE_FLAGS[level] + tuple(opt for flag, opt in _EXTRAS.get(level, {}).items() if flag in present)


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share a core's SIMD units, so
    llama.cpp defaults to one thread per core)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return max(1, len(allowed))
    return max(1, len(cores))
