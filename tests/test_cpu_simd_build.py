"""cpu_simd's first-use compile: every source compiled (in parallel) and linked into one cached
library, nothing left beside it, and a compiler's failure reported with its command and message."""

import stat

import pytest

pytest.importorskip("llmcore_cpu_simd")
from llmcore.plugin_api import BackendError  # noqa: E402
from llmcore_cpu_simd import build  # noqa: E402

LEVEL = "scalar"  # the quickest level to compile, and one every x86-64 CPU runs


def test_the_library_is_compiled_once_and_alone_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCORE_CACHE", str(tmp_path))
    library = build.build(LEVEL)
    assert library == build.library_path(LEVEL) and library.stat().st_size > 0
    built_at = library.stat().st_mtime_ns
    assert build.build(LEVEL).stat().st_mtime_ns == built_at  # cached: not compiled again
    left = {p.name for p in library.parent.iterdir()} - {library.name, library.with_suffix(".lock").name}
    assert all(name.startswith("tables-") for name in left), left  # no object files, no temporary folder


def test_a_compiler_error_names_the_command_and_its_message(tmp_path, monkeypatch):
    failing = tmp_path / "failing-cc"
    failing.write_text("#!/bin/sh\necho 'cc: error: out of disk' >&2\nexit 1\n")
    failing.chmod(failing.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("LLMCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(failing))
    with pytest.raises(BackendError, match=r"compiling the scalar kernels failed: .*failing-cc .*-c .*\.c.*\n"
                                           r"cc: error: out of disk"):
        build.build(LEVEL)
    kernels = tmp_path / "cache" / "kernels"
    assert not [p for p in kernels.iterdir() if p.suffix == ".so" or p.is_dir() and not p.name.startswith("tables-")]


def test_every_level_this_cpu_runs_compiles():
    """The op and model tests skip where the backend cannot start; a kernel source that fails to compile
    at a level this CPU runs fails here instead (the default cache: levels built before are reused)."""
    from llmcore_cpu_simd.isa import supported_levels

    for level in supported_levels():
        assert build.build(level).stat().st_size > 0
