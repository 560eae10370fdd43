"""The probe's findings, kept on disk between processes.

Creating a VkInstance loads every installed driver (ICD): with Mesa's drivers that maps libLLVM and
costs about 60 MB of resident memory and 0.1 s, for the life of the process. Most runs only need to
know which devices exist (``--backend auto`` passes over CPU-type devices), so the answer is kept under
``cache_dir()/vulkan`` and reused while nothing it depends on has changed: the ICD manifests and the
driver libraries they name (paths, sizes, modification times), the device nodes under /dev/dri, the
loader's environment variables and the code that reads the devices (device.py).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from llmcore.plugin_api import Availability, Device, cache_dir

_MANIFEST_DIRS = ("/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d",
                  "~/.local/share/vulkan/icd.d")
_LOADER_ENV = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES", "VK_LOADER_DRIVERS_SELECT",
               "VK_LOADER_DRIVERS_DISABLE", "LLMCORE_VULKAN_DEVICE")
_FORMAT = 1  # bump when what is stored changes


def cached_probe(probe: Callable[[], Availability]) -> Availability:
    """``probe()``'s answer, from the disk cache when it is still valid, else computed and stored."""
    path = cache_dir() / "vulkan" / f"probe-{_fingerprint()}.json"
    try:
        return _decode(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    status = probe()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(status)))
        os.replace(tmp, path)  # readers never see half a file
    except OSError:
        pass  # a read-only cache only costs the next process a real probe
    return status


def _fingerprint() -> str:
    digest = hashlib.sha256(f"{_FORMAT}".encode())
    digest.update(Path(__file__).with_name("device.py").read_bytes())
    manifests = set()
    for name in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES"):
        manifests.update(p for p in os.environ.get(name, "").split(os.pathsep) if p)
    for folder in _MANIFEST_DIRS:
        manifests.update(glob.glob(os.path.join(os.path.expanduser(folder), "*.json")))
    for manifest in sorted(manifests):
        digest.update(_stat_line(manifest))
        try:
            library = json.loads(Path(manifest).read_text())["ICD"]["library_path"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        digest.update(_stat_line(library if os.path.isabs(library) else os.path.join(os.path.dirname(manifest), library)))
    for node in sorted(glob.glob("/dev/dri/*")):
        digest.update(node.encode())
    for name in _LOADER_ENV:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()[:20]


def _stat_line(path: str) -> bytes:
    try:
        st = os.stat(path)
        return f"{path} {st.st_size} {st.st_mtime_ns}\n".encode()
    except OSError:
        return f"{path} -\n".encode()


def _decode(data: dict) -> Availability:
    devices = tuple(Device(**{**d, "features": tuple(d["features"])}) for d in data["devices"])
    return Availability(bool(data["usable"]), str(data["reason"]), devices)
