"""The Ray cluster the user named, and its nodes as devices.

Only the cluster named by ``--ray`` is ever joined: ``auto`` means the cluster started on this
machine (``ray start --head``), and a ``RAY_ADDRESS`` naming a cluster elsewhere is refused rather
than followed; ``HOST:PORT`` means that head and no other. A process already connected to another
cluster is refused too. Ray itself is imported only here and in the backend, on first use."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from llmcore.plugin_api import BackendError, Device

_ADDRESS = re.compile(r"^(?:ray://)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")
INSTALL = "pip install -e '.[ray]' -e plugins/ray (from a clone of llmcore)"


@dataclass(frozen=True)
class Node:
    """A node of the cluster that can host a stage: Ray's id, where it listens, its CPUs and memory."""

    node_id: str
    address: str
    port: int
    cpus: int
    gpus: int
    memory: int

    @property
    def device(self) -> Device:
        features = (f"{self.cpus} CPUs",) + ((f"{self.gpus} GPUs",) if self.gpus else ()) + (f"ray node {self.node_id[:8]}",)
        # "accel" rather than "cpu": --backend auto passes over CPU-type devices of a non-host backend
        return Device(f"{self.address}:{self.port}", "gpu" if self.gpus else "accel", self.memory, self.memory, features)


def check_address(setting: str) -> str:
    """``auto`` or a ``[ray://]HOST:PORT``, else a one-line refusal."""
    if setting == "auto" or _ADDRESS.match(setting):
        return setting
    raise BackendError(f"ray: --ray takes 'auto' or the head node's HOST:PORT (ray://HOST:PORT for Ray Client), "
                       f"got {setting!r}")


def is_this_machine(host: str) -> bool:
    """Whether ``host`` is a loopback address or one of this machine's own."""
    host = host.strip("[]")
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    own = {"127.0.0.1", "::1"}
    try:
        own |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback or a in own for a in resolved)


def connect(setting: str) -> str:
    """Join the cluster ``setting`` names (see the module's docstring); returns its address."""
    setting = check_address(setting)
    environment = os.environ.get("RAY_ADDRESS")
    if setting == "auto" and environment and environment not in ("auto", "local"):
        host = environment.removeprefix("ray://").rpartition(":")[0]
        if not is_this_machine(host):
            raise BackendError(f"ray: --ray auto means the cluster on this machine, but RAY_ADDRESS names {environment}: "
                               f"pass --ray {environment} to use that cluster")
    try:
        import ray
    except ImportError:
        raise BackendError(f"ray: the ray package is not installed: {INSTALL}") from None
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if setting != "auto" and not _same_address(current, setting):
            raise BackendError(f"ray: this process is already connected to the cluster at {current}, not {setting}")
        return current
    try:
        ray.init(address=setting, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        hint = " (start one with: ray start --head)" if setting == "auto" else ""
        raise BackendError(f"ray: cannot join the cluster at {setting}{hint}: {str(error).splitlines()[0]}") from None
    current = ray.get_runtime_context().gcs_address
    if setting == "auto" and not is_this_machine(current.rpartition(":")[0]):
        ray.shutdown()
        raise BackendError(f"ray: --ray auto found the cluster at {current}, which is not on this machine: "
                           f"name it with --ray {current} to use it")
    return current


def _same_address(current: str, named: str) -> bool:
    """Whether the GCS address Ray reports is the one named (Ray writes a loopback head as the
    machine's own address)."""
    host, _, port = named.removeprefix("ray://").rpartition(":")
    current_host, _, current_port = current.rpartition(":")
    if port != current_port:
        return named.startswith("ray://")  # Ray Client's port is not the GCS's
    return host == current_host or (is_this_machine(host) and is_this_machine(current_host))


def nodes() -> list[Node]:
    """The alive nodes with CPUs or GPUs, in a stable order: by address, then port."""
    import ray

    found = []
    for info in ray.nodes():
        resources: dict[str, Any] = info.get("Resources", {})
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if info.get("Alive") and (cpus or gpus):
            found.append(Node(info["NodeID"], info["NodeManagerAddress"], int(info["NodeManagerPort"]), cpus, gpus,
                              int(resources.get("memory", 0))))
    return sorted(found, key=lambda node: (node.address, node.port))
