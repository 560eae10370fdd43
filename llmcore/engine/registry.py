"""Discovery of backend plugins through pluggy and the ``llmcore.backends`` entry points."""

from __future__ import annotations

import functools
import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import pluggy

from llmcore import plugin_api
from llmcore.plugin_api import PLUGIN_API_VERSION
from llmcore.graph.backend import Availability, Backend
from llmcore.errors import BackendError

ENTRY_POINT_GROUP = "llmcore.backends"

#: backends llmcore knows of, and the extra that installs each
KNOWN_BACKENDS = {
    "reference": None,
    "cpu_simd": "cpu",
    "vulkan": "vulkan",
    "cuda": "cuda",
    "hip": "hip",
    "metal": "metal",
    "sycl": "sycl",
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
    """Every backend class the installed plugins provide, by name. A plugin that fails to import
    (a missing dependency, a failed build) is listed as an unusable backend named after its entry
    point, with the error as its reason, rather than hiding the others."""
    manager = pluggy.PluginManager("llmcore")
    manager.add_hookspecs(plugin_api)
    classes: dict[str, type[Backend]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry.name) is not None:
            continue  # the same distribution found twice on sys.path
        try:
            manager.register(entry.load(), name=entry.name)
        except Exception as error:  # any failure of third-party code at import
            reason = f"plugin module {entry.value} failed to import: {type(error).__name__}: {error}"
            classes[entry.name] = type(f"Unloadable[{entry.name}]", (_Unloadable,), {"name": entry.name, "reason": reason})
    for provided in manager.hook.llmcore_backends():
        for cls in provided:
            classes[cls.name] = cls
    return classes


@functools.cache
def availability(name: str) -> Availability:
    """Whether backend ``name`` can run here: refused when it targets an incompatible plugin API,
    else what its ``probe`` says (a probe that raises is reported as the reason)."""
    cls = backend_classes()[name]
    problem = api_mismatch(cls)
    if problem:
        return Availability(False, problem)
    try:
        return cls.probe()
    except Exception as error:  # a bug in third-party code must not break listing or choosing
        return Availability(False, f"probe raised {type(error).__name__}: {error}")


def targeted_api(cls: type[Backend]) -> tuple[int, ...] | None:
    """(major, minor) of the plugin API ``cls`` declares, or None when it is not MAJOR.MINOR."""
    try:
        return tuple(int(part) for part in cls.api_version.split("."))[:2]
    except ValueError:
        return None


def api_mismatch(cls: type[Backend]) -> str | None:
    """Why ``cls`` cannot work with this llmcore's plugin API, or None. It must target the same
    major version, and a minor version no newer than llmcore's."""
    wanted = targeted_api(cls)
    if wanted is None:
        return f"declares api_version {cls.api_version!r}, not MAJOR.MINOR"
    have = tuple(int(part) for part in PLUGIN_API_VERSION.split("."))
    if wanted[0] != have[0]:
        return (f"written for plugin API {cls.api_version}, but this llmcore provides {PLUGIN_API_VERSION}: "
                f"install a release of the plugin built for API {have[0]}.x")
    if wanted > have:
        return (f"needs plugin API {cls.api_version}, but this llmcore provides {PLUGIN_API_VERSION}: "
                f"upgrade llmcore")
    return None


class _Unloadable(Backend):
    """Stands for a plugin that failed to import: never usable, its probe says why."""

    priority = -(10**9)
    api_version = PLUGIN_API_VERSION  # its import failed, not its API: the probe gives the reason
    reason: ClassVar[str] = ""

    @classmethod
    def probe(cls) -> Availability:
        return Availability(False, cls.reason)


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
