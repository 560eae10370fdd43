"""Discovery of backend plugins through pluggy and the ``llmcore.backends`` entry points."""

from __future__ import annotations

import functools

import pluggy

from llmcore.backends import hookspecs
from llmcore.backends.base import Availability, Backend
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


@functools.cache
def backend_classes() -> dict[str, type[Backend]]:
    """Every backend class the installed plugins provide, by name."""
    manager = pluggy.PluginManager("llmcore")
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    classes: dict[str, type[Backend]] = {}
    for provided in manager.hook.llmcore_backends():
        for cls in provided:
            classes[cls.name] = cls
    return classes


@functools.cache
def availability(name: str) -> Availability:
    return backend_classes()[name].probe()


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
        extra = KNOWN_BACKENDS.get(name)
        hint = f" (install it with: pip install 'llmcore[{extra}]')" if extra else ""
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
