"""``llmcore backends``: every backend plugin found, whether it can run here and on which devices
(or exactly why not), which one ``--backend auto`` picks, and how to install the known backends
that are missing. ``--json`` prints the same as one JSON document."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backends",
        help="list backend plugins, their devices, and how to install missing ones",
        description="List the installed backend plugins with their devices (memory, features), the "
                    "reason each unusable one cannot run, the choice of --backend auto, and the "
                    "known backends that are not installed with the command that installs each.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--ray", default=None, metavar="auto|HOST:PORT",
                        help="connect the ray backend to this Ray cluster first, so that its nodes are listed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.ray is not None:
        from llmcore.engine.registry import configure_backend

        configure_backend("ray", args.ray)
    report = backends_report()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(format_report(report))
    return 0


def backends_report() -> dict[str, Any]:
    """What ``llmcore backends --json`` prints: ``backends`` (installed, best first), ``auto`` and
    ``not_installed``."""
    from importlib.metadata import entry_points

    from llmcore.engine import registry
    from llmcore.errors import LLMCoreError

    classes = registry.backend_classes()
    plugins = list(entry_points(group=registry.ENTRY_POINT_GROUP))
    installed = []
    for name, cls in sorted(classes.items(), key=lambda item: (-item[1].priority, item[0])):
        status = registry.availability(name)
        installed.append({
            "name": name,
            "usable": status.usable,
            "reason": status.reason,
            "priority": cls.priority,
            "runs_on_host": cls.runs_on_host,
            "plugin": _distribution(cls.__module__, plugins),
            "devices": [
                {"name": d.name, "kind": d.kind, "memory_total": d.memory_total, "memory_free": d.memory_free,
                 "features": list(d.features)}
                for d in status.devices
            ],
        })
    try:
        chosen, why = registry.choose_backend("auto")
        auto = {"backend": chosen.name, "reason": why}
    except LLMCoreError as error:
        auto = {"backend": None, "reason": str(error)}
    not_installed = [{"name": name, "extra": extra, "install": registry.install_commands(name)}
                     for name, extra in registry.KNOWN_BACKENDS.items() if extra and name not in classes]
    return {"backends": installed, "auto": auto, "not_installed": not_installed}


def format_report(report: dict[str, Any]) -> str:
    rows = [("BACKEND", "STATUS", "PRIORITY", "PLUGIN")]
    details: list[list[str]] = []
    for b in report["backends"]:
        rows.append((b["name"], "usable" if b["usable"] else "unusable", str(b["priority"]), b["plugin"] or "-"))
        lines = [f"reason: {b['reason']}"] if not b["usable"] else []
        lines += [f"device: {_describe_device(d)}" for d in b["devices"]]
        details.append(lines)
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        if index:
            out += [f"    {line}" for line in details[index - 1]]
    auto = report["auto"]
    out.append("")
    out.append(f"--backend auto: {auto['backend']} ({auto['reason']})" if auto["backend"]
               else f"--backend auto: none ({auto['reason']})")
    if report["not_installed"]:
        out.append("")
        out.append("Known backends not installed:")
        width = max(len(m["name"]) for m in report["not_installed"])
        for missing in report["not_installed"]:
            how = (missing["install"][0] if missing["install"]
                   else f"no plugin in this checkout yet (plugins/{missing['name']})")
            out.append(f"  {missing['name'].ljust(width)}  {how}")
    return "\n".join(out)


def _describe_device(device: dict[str, Any]) -> str:
    parts = [f"{device['name']} [{device['kind']}]"]
    if device["memory_total"]:
        memory = f"memory {_gib(device['memory_total'])}"
        if device["memory_free"]:
            memory += f" ({_gib(device['memory_free'])} free)"
        parts.append(memory)
    if device["features"]:
        parts.append("features: " + ", ".join(device["features"]))
    return ", ".join(parts)


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _distribution(module: str, plugins: list) -> str | None:
    """'name version' of the distribution whose entry point provides ``module``."""
    for entry in plugins:
        if (module == entry.module or module.startswith(entry.module + ".")) and entry.dist is not None:
            return f"{entry.dist.metadata['Name']} {entry.dist.version}"
    return None
