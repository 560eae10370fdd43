"""``--prompt-cache PATH`` writes only to a regular file or a new path, through a temporary file in
the same directory renamed over it; whatever else is at PATH (a FIFO, a device, a symlink, a
directory) is left alone and refused with a one-line error (issue 15, finding 6)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmcore import LLM
from llmcore.cli import main
from llmcore.engine.state import StateError

MODEL = Path(__file__).parent / "fixtures" / "arch" / "llama.gguf"


def run_with_cache(cache: Path) -> int:
    return main(["run", "-m", str(MODEL), "--backend", "reference", "-c", "64", "-p", "hi", "-n", "2",
                 "--temp", "0", "--prompt-cache", str(cache)])


def assert_refused(capsys: pytest.CaptureFixture[str], cache: Path, kind: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (f"llmcore run: error: {cache}: is a {kind}, not a regular file; a state is "
                                    f"only read from and written to a regular file or a new path")


def test_a_fifo_is_refused_and_kept(tmp_path, capsys):
    fifo = tmp_path / "cache.fifo"
    os.mkfifo(fifo)
    assert run_with_cache(fifo) == 2
    assert_refused(capsys, fifo, "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_refused_and_neither_it_nor_its_target_changes(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "cache.bin"
    link.symlink_to(target)
    assert run_with_cache(link) == 2
    assert_refused(capsys, link, "symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_a_character_device_is_refused_and_kept(tmp_path, capsys):
    """/dev/null's case, on a device node of our own: a test on the real one would clobber it as
    root the day this regressed."""
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
    assert run_with_cache(device) == 2
    assert_refused(capsys, device, "character device")
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_directory_is_refused(tmp_path, capsys):
    assert run_with_cache(tmp_path) == 2
    assert_refused(capsys, tmp_path, "directory")


def test_a_new_path_then_the_regular_file_it_became_are_used(tmp_path, capsys):
    cache = tmp_path / "cache.bin"
    assert run_with_cache(cache) == 0
    assert "does not exist yet; it will be created" in capsys.readouterr().err
    assert stat.S_ISREG(os.lstat(cache).st_mode)
    assert run_with_cache(cache) == 0
    assert f"prompt cache {cache}: loaded" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.bin"]  # no temporary file left behind


def test_the_temporary_file_is_never_a_predictable_name(tmp_path):
    """A symlink planted where a fixed temporary name would be is not followed."""
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    cache = tmp_path / "cache.bin"
    (tmp_path / f".{cache.name}.tmp").symlink_to(target)
    llm = LLM(MODEL, backend="reference", n_ctx=64)
    llm.logits(llm.tokenize("hi"))
    llm.save_state(cache)
    assert stat.S_ISREG(os.lstat(cache).st_mode)
    assert target.read_text() == "keep me"


def test_the_api_refuses_too(tmp_path):
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)
    llm = LLM(MODEL, backend="reference", n_ctx=64)
    llm.logits(llm.tokenize("hi"))
    with pytest.raises(StateError, match="is a FIFO, not a regular file"):
        llm.save_state(fifo)
    with pytest.raises(StateError, match="is a FIFO, not a regular file"):  # reading it would block
        llm.load_state(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
