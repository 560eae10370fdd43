"""``llmcore run -cnv`` in a real terminal: tmux types as a person would and reads the screen.

Needs the ``tmux`` program (Debian package ``tmux``); skipped with that reason when it is absent.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

EXIT_LINE = re.compile(r"^EXIT=(\d+)$", re.MULTILINE)
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Terminal:
    """A detached tmux session running a plain shell, 160x50."""

    def __init__(self, name: str) -> None:
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "50",
                        "env PS1='$ ' HISTFILE=/dev/null bash --norc --noprofile"], check=True)
        subprocess.run(["tmux", "set-option", "-t", name, "history-limit", "5000"], check=True)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)

    def press(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        result = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", self.name, "-S", "-5000"],
                                capture_output=True, text=True, check=True)
        # -J joins wrapped lines but keeps trailing spaces: drop them, and the empty rows below
        return "\n".join(line.rstrip() for line in result.stdout.splitlines()).rstrip("\n")

    def wait_for(self, condition: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if condition(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False, capture_output=True)


@pytest.fixture
def terminal():
    term = Terminal(f"llmcore-test-{os.getpid()}-{time.monotonic_ns()}")
    yield term
    term.close()


def _prompts(screen: str) -> list[int]:
    """Line numbers of the conversation's `> ` prompts."""
    return [i for i, line in enumerate(screen.splitlines()) if line == ">" or line.startswith("> ")]


def _at_prompt(count: int) -> Callable[[str], bool]:
    """The screen shows ``count`` prompts and the last one waits for input."""
    def check(screen: str) -> bool:
        lines = screen.splitlines()
        return len(_prompts(screen)) == count and lines[-1] == ">"
    return check


def _reply_after(screen: str, question: str) -> str:
    """What the screen shows between the last ``question`` and the next prompt (or the end)."""
    lines = screen.splitlines()
    asked = [i for i, line in enumerate(lines) if line == f"> {question}"]
    if not asked:
        return ""
    end = next((i for i in _prompts(screen) if i > asked[-1]), len(lines))
    return "\n".join(lines[asked[-1] + 1:end]).strip()


def _start(terminal: Terminal, model, *flags: str) -> None:
    command = [sys.executable, "-m", "llmcore", "run", "-m", str(model), "-c", "1024", "--temp", "0", *flags]
    terminal.type(f"{shlex.join(command)} 2>/dev/null; echo EXIT=$?")
    terminal.press("Enter")


def _exit_status(terminal: Terminal) -> int:
    """The status the shell's ``echo EXIT=$?`` reports once the command has ended."""
    screen = terminal.wait_for(lambda s: EXIT_LINE.search(s) is not None, "the session to end", timeout=15)
    return int(EXIT_LINE.search(screen).group(1))


def test_a_person_chats_interrupts_a_reply_and_leaves(terminal, default_model_path):
    _start(terminal, default_model_path, "-cnv", "-n", "200")
    terminal.wait_for(_at_prompt(1), "the first prompt")

    # turn 1, typed on two lines joined by a trailing backslash
    terminal.type("What is the capital\\")
    terminal.press("Enter")
    terminal.type("of France?")
    terminal.press("Enter")
    screen = terminal.wait_for(_at_prompt(2), "the first reply")
    assert "Paris" in _reply_after(screen, "What is the capital\\")

    terminal.type("And of Italy?")
    terminal.press("Enter")
    screen = terminal.wait_for(_at_prompt(3), "the second reply")
    assert _reply_after(screen, "And of Italy?")

    # a long reply, stopped with Ctrl+C once it is under way
    story = "Write a long story about a brave knight and a dragon."
    terminal.type(story)
    terminal.press("Enter")
    terminal.wait_for(lambda s: len(_reply_after(s, story)) >= 20, "the story to start")
    assert not _at_prompt(4)(terminal.screen()), "the story ended before Ctrl+C could stop it"
    terminal.press("C-c")
    screen = terminal.wait_for(_at_prompt(4), "the prompt after Ctrl+C")
    # stopped where it was, not run on to its -n 200 tokens (some 150 words); no timing: load varies
    assert len(_reply_after(screen, story).split()) < 100, _reply_after(screen, story)

    terminal.type("What is 2+2?")
    terminal.press("Enter")
    screen = terminal.wait_for(_at_prompt(5), "the reply after the interrupted one")
    assert _reply_after(screen, "What is 2+2?")

    terminal.press("C-d")
    assert _exit_status(terminal) == 0


def test_ctrl_c_at_the_prompt_quits_with_130(terminal, default_model_path):
    _start(terminal, default_model_path, "-cnv", "-n", "8")
    terminal.wait_for(_at_prompt(1), "the first prompt")
    terminal.press("C-c")
    assert _exit_status(terminal) == 130
