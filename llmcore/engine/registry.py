"""Discovery of backend plugins through pluggy and the ``llmcore.backends`` entry points."""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path

from llmcore.plugin_api import ENTRY_POINT_GROUP, discover_backends, probe_backend
from llmcore.graph.backend import Availability, Backend
from llmcore.errors import BackendError

__all__ = ["ENTRY_POINT_GROUP", "availability", "backend_classes", "best_host_backend", "choose_backend",
           "configure_backend", "install_commands"]

#: backends llmcore knows of, and the extra that installs each
KNOWN_BACKENDS = {
    "reference": None,
    "cpu_simd": "cpu",
    "vulkan": "vulkan",
    "cuda": "cuda",
    "hip": "hip",
    "metal": "metal",
    "sycl": "sycl",
    "ray": "ray",
}
#: known backends built on the GPU kernels they share (plugins/gpu_kernels, also in the clone only)
GPU_KERNEL_PLUGINS = {"cuda", "hip", "metal", "sycl"}


def install_commands(name: str) -> list[str]:
    """The command that installs a known backend: its extra together with the plugin's folder that
    satisfies it, from a clone of llmcore (the ``llmcore`` on PyPI is another project); none for an
    unknown backend or where this source checkout has no such plugin yet."""
    extra = KNOWN_BACKENDS.get(name)
    if not extra:
        return []
    root = Path(__file__).resolve().parents[2]
    kernels = "-e plugins/gpu_kernels " if name in GPU_KERNEL_PLUGINS else ""
    command = f"pip install -e '.[{extra}]' {kernels}-e plugins/{name}"
    if not (root / "pyproject.toml").is_file():  # installed from a built wheel: the clone is elsewhere
        return [f"in a clone of llmcore: {command}"]
    if not (root / "plugins" / name / "pyproject.toml").is_file():
        return []
    return [f"cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} -m {command}"]


@functools.cache
def backend_classes() -> dict[str, type[Backend]]:
    """Every backend class the installed plugins provide, by name (discovered once per process)."""
    return discover_backends()


@functools.cache
def availability(name: str) -> Availability:
    """Whether backend ``name`` can run here (probed once per process)."""
    return probe_backend(backend_classes()[name])


def configure_backend(name: str, setting: str) -> None:
    """Hand the user's ``--<name> SETTING`` (``LLM(<name>=SETTING)``) to backend ``name`` before it
    is probed: ``--ray auto`` connects the ray backend to a cluster, whose nodes it then lists."""
    classes = backend_classes()
    if name not in classes:
        commands = install_commands(name)
        hint = f": install it with {commands[0]}" if commands else ""
        raise BackendError(f"--{name} needs the {name} backend, which is not installed{hint}")
    classes[name].configure(setting)
    availability.cache_clear()


def choose_backend(name: str = "auto") -> tuple[type[Backend], str]:
    """The class for ``--backend NAME`` and why it was chosen; ``auto`` picks the usable backend
    of highest priority and names the better ones it had to pass over."""
    classes = backend_classes()
    if name == "auto":
        ranked = sorted(classes.values(), key=lambda cls: -cls.priority)
        skipped = []
        for cls in ranked:
            status = availability(cls.name)
            if status.usable and _only_cpu_devices(cls, status):
                # llama.cpp's Vulkan backend skips CPU-type devices such as lavapipe too
                skipped.append(f"{cls.name}: only CPU-type devices ({_device_names(status)}), used only when named")
            elif status.usable:
                why = "chosen by --backend auto: the best usable backend"
                if skipped:
                    why += "; skipped " + "; ".join(skipped)
                return cls, why
            else:
                skipped.append(f"{cls.name}: {status.reason}")
        raise BackendError("no usable backend: " + "; ".join(skipped))
    if name not in classes:
        commands = install_commands(name)
        if commands:
            hint = f" (install it with: {commands[0]})"
        elif name in KNOWN_BACKENDS:
            hint = f" (this checkout of llmcore has no plugins/{name} yet)"
        else:
            hint = ""
        installed = ", ".join(sorted(classes))
        raise BackendError(f"backend {name!r} is not installed{hint}; installed: {installed}")
    status = availability(name)
    if not status.usable:
        raise BackendError(f"backend {name!r} cannot run here: {status.reason}")
    return classes[name], f"chosen by --backend {name}"


def best_host_backend() -> type[Backend]:
    """The best usable backend that computes on the CPU: it runs what is not offloaded."""
    host = [cls for cls in backend_classes().values() if cls.runs_on_host and availability(cls.name).usable]
    return max(host, key=lambda cls: cls.priority)


def _only_cpu_devices(cls: type[Backend], status: Availability) -> bool:
    return not cls.runs_on_host and bool(status.devices) and all(d.kind == "cpu" for d in status.devices)


def _device_names(status: Availability) -> str:
    return ", ".join(d.name for d in status.devices)
