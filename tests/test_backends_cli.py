"""``llmcore backends``: the installed plugins (as importlib.metadata's entry points list them) with
what their probes report, the choice of ``--backend auto``, and the known backends that are not
installed with the extra that installs each (as llmcore's own package metadata declares it).
Plugins with known devices and known failures are installed into a temporary directory."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from importlib.metadata import entry_points, metadata
from pathlib import Path

from test_conformance import install_plugin, run_python

from llmcore.engine import registry
from llmcore.cli import main

FAKE_PLUGINS = {
    "fakegpu": """
        from llmcore.plugin_api import Availability, Backend, Device, hookimpl

        class FakeGpu(Backend):
            name = "fakegpu"
            api_version = "2.0"
            priority = 100

            @classmethod
            def probe(cls):
                return Availability(True, devices=(
                    Device("Fake GPU 0", "gpu", 8 * 2**30, 6 * 2**30, ("fp16", "int8 dot")),
                    Device("Fake GPU 1", "igpu", 2**31, 0, ()),
                ))

        @hookimpl
        def llmcore_backends():
            return [FakeGpu]
    """,
    "nodriver": """
        from llmcore.plugin_api import Availability, Backend, hookimpl

        class NoDriver(Backend):
            name = "nodriver"
            api_version = "2.0"

            @classmethod
            def probe(cls):
                return Availability(False, "no Vulkan driver: libvulkan.so.1 not found")

        @hookimpl
        def llmcore_backends():
            return [NoDriver]
    """,
}

# failures the registry turns into reasons (API version, a raising probe, an import error)
FAILING_PLUGINS = {
    "futureapi": """
        from llmcore.plugin_api import Availability, Backend, hookimpl

        class FutureApi(Backend):
            name = "futureapi"
            api_version = "3.0"

            @classmethod
            def probe(cls):
                return Availability(True)

        @hookimpl
        def llmcore_backends():
            return [FutureApi]
    """,
    "crashprobe": """
        from llmcore.plugin_api import Backend, hookimpl

        class CrashProbe(Backend):
            name = "crashprobe"
            api_version = "2.0"

            @classmethod
            def probe(cls):
                raise RuntimeError("vkEnumeratePhysicalDevices returned -3")

        @hookimpl
        def llmcore_backends():
            return [CrashProbe]
    """,
    "badimport": """
        raise ImportError("libggml-fake.so: cannot open shared object file")
    """,
}


def _site_with(tmp_path: Path, plugins: dict[str, str]) -> Path:
    site = tmp_path / "site"
    for name, source in plugins.items():
        (site / f"llmcore_{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (site / f"llmcore_{name}.py").write_text(textwrap.dedent(source))
        install_plugin(site, name, f"llmcore_{name}")
    return site


def test_json_lists_installed_plugins_their_probes_and_missing_extras(capsys):
    assert main(["backends", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    listed = {b["name"]: b for b in report["backends"]}
    assert set(listed) == {entry.name for entry in entry_points(group="llmcore.backends")}
    for name, entry in listed.items():
        status = registry.availability(name)
        assert (entry["usable"], entry["reason"]) == (status.usable, status.reason)
        assert [d["name"] for d in entry["devices"]] == [d.name for d in status.devices]
    assert listed["reference"]["plugin"] == f"llmcore {metadata('llmcore')['Version']}"
    assert report["auto"]["backend"] == registry.choose_backend("auto")[0].name

    extras = set(metadata("llmcore").get_all("Provides-Extra"))
    missing = {m["name"]: m for m in report["not_installed"]}
    assert {"cuda", "hip", "metal"} <= set(missing)
    assert not set(missing) & set(listed)
    for name, entry in missing.items():
        assert entry["extra"] in extras
        assert entry["install"] == registry.install_commands(name) != []  # plugins/<name> is in this checkout


def test_install_command_works_from_the_clone():
    """The extra with the plugin's folder beside it, run from the clone by this interpreter's pip:
    the ``llmcore`` on PyPI is another project."""
    from llmcore.engine.registry import install_commands

    root = Path(__file__).resolve().parents[1]
    assert install_commands("vulkan") == [
        f"cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} -m pip install -e '.[vulkan]' -e plugins/vulkan"]
    # a GPU plugin needs the kernels it shares with the others, from the clone too
    assert install_commands("cuda") == [f"cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} -m pip install "
                                        f"-e '.[cuda]' -e plugins/gpu_kernels -e plugins/cuda"]


def test_text_shows_devices_memory_features_and_the_reason_a_backend_cannot_run(tmp_path):
    site = _site_with(tmp_path, FAKE_PLUGINS)
    result = run_python(["-m", "llmcore", "backends"], tmp_path, [site])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row = next(line for line in lines if line.startswith("fakegpu "))
    assert row.split()[1:] == ["usable", "100", "llmcore-fakegpu", "0.1.0"]
    assert "    device: Fake GPU 0 [gpu], memory 8.0 GiB (6.0 GiB free), features: fp16, int8 dot" in lines
    assert "    device: Fake GPU 1 [igpu], memory 2.0 GiB" in lines
    row = lines.index(next(line for line in lines if line.startswith("nodriver ")))
    assert lines[row].split()[1] == "unusable"
    assert lines[row + 1] == "    reason: no Vulkan driver: libvulkan.so.1 not found"
    assert any(line.startswith("--backend auto: fakegpu (") for line in lines)
    assert any(line.startswith("  cuda   ") and line.endswith("-e plugins/gpu_kernels -e plugins/cuda") for line in lines)


def test_json_of_plugins_installed_in_a_temporary_site(tmp_path):
    site = _site_with(tmp_path, FAKE_PLUGINS)
    result = run_python(["-m", "llmcore", "backends", "--json"], tmp_path, [site])
    report = json.loads(result.stdout)
    listed = {b["name"]: b for b in report["backends"]}
    assert listed["fakegpu"]["devices"][0] == {"name": "Fake GPU 0", "kind": "gpu", "memory_total": 8 * 2**30,
                                               "memory_free": 6 * 2**30, "features": ["fp16", "int8 dot"]}
    assert (listed["nodriver"]["usable"], listed["nodriver"]["reason"]) == (False, "no Vulkan driver: libvulkan.so.1 not found")
    assert report["backends"][0]["name"] == "fakegpu"  # best first


def test_api_mismatch_raising_probe_and_import_error_are_reasons_not_crashes(tmp_path):
    site = _site_with(tmp_path, {**FAKE_PLUGINS, **FAILING_PLUGINS})
    result = run_python(["-m", "llmcore", "backends", "--json"], tmp_path, [site])
    assert result.returncode == 0, result.stderr
    listed = {b["name"]: b for b in json.loads(result.stdout)["backends"]}
    assert not any(listed[name]["usable"] for name in FAILING_PLUGINS)
    assert "written for plugin API 3.0, but this llmcore provides 2." in listed["futureapi"]["reason"]
    assert listed["crashprobe"]["reason"] == "probe raised RuntimeError: vkEnumeratePhysicalDevices returned -3"
    assert listed["badimport"]["reason"] == ("plugin module llmcore_badimport failed to import: ImportError: "
                                             "libggml-fake.so: cannot open shared object file")
    assert listed["fakegpu"]["usable"]  # the broken ones hide nothing
