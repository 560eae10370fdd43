"""``--prompt-cache FILE``: llama.cpp's session file, on the engine's state files."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmcore.engine.state import check_state_path

if TYPE_CHECKING:
    from llmcore.api import LLM


class PromptCache:
    """``--prompt-cache FILE``: the state of a run's prompt, reloaded by the next run so that only
    the tokens after the common prefix are evaluated (llama.cpp's session file).

    ``save_all`` (``--prompt-cache-all``) also keeps the generated tokens; ``read_only``
    (``--prompt-cache-ro``) uses the file without updating it.
    """

    def __init__(self, path: str | os.PathLike[str], *, save_all: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        check_state_path(self.path)  # refused before anything is read from it or written to it
        self.save_all = save_all
        self.read_only = read_only
        self.loaded: list[int] = []

    def load(self, llm: LLM) -> None:
        """Restore the file into ``llm`` if it exists and is not empty (a new cache otherwise)."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            print(f"llmcore: prompt cache {self.path} does not exist yet; it will be created", file=sys.stderr)
            return
        self.loaded = llm.load_state(self.path)
        print(f"llmcore: prompt cache {self.path}: loaded {len(self.loaded)} tokens", file=sys.stderr)

    def save(self, llm: LLM, prompt_tokens: Sequence[int]) -> None:
        """Save ``prompt_tokens``' state (with ``save_all``, everything sequence 0 holds), unless the
        file is read-only or already holds exactly that prompt."""
        if self.read_only or (not self.save_all and self.loaded == list(prompt_tokens)):
            return
        llm.save_state(self.path, None if self.save_all else len(prompt_tokens))
