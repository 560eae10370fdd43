"""The host CPU as /proc/cpuinfo describes it: what tells one kind of CPU from another, for the caches
whose contents depend on it (libraries compiled with ``-march=native``, speed calibrations, the
kernels' timed choices)."""

from __future__ import annotations

import hashlib
import platform

#: the /proc/cpuinfo fields that tell CPUs apart (x86, then Arm): what ``-march=native`` compiles for
CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags",
              "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "Features")


def cpuinfo() -> str:
    """The first processor's identifying lines of /proc/cpuinfo ('' where there is none)."""
    try:
        with open("/proc/cpuinfo") as file:
            lines = []
            for line in file:  # the first processor's block only
                if not line.strip():
                    break
                lines.append(line)
    except OSError:
        return ""
    return "".join(line for line in lines if line.partition(":")[0].strip() in CPU_FIELDS)


def host_cpu() -> str:
    """This CPU in one line: its model name, family, model and stepping and a digest of its feature
    flags (one model name covers CPUs of other generations and ISA levels), or what ``platform``
    knows where there is no /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in cpuinfo().splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    if not fields:
        return platform.processor() or platform.machine()
    flags = fields.get("flags") or fields.get("Features", "")
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:8]
    name = fields.get("model name") or f"CPU part {fields.get('CPU part', '-')}"
    return (f"{name} family {fields.get('cpu family', '-')} model {fields.get('model', '-')} "
            f"stepping {fields.get('stepping', '-')} flags {digest}")
