"""Where llmcore keeps files between runs: models, calibrations and compiled kernels."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache: ``$LLMCORE_CACHE``, else ``$XDG_CACHE_HOME/llmcore``, else ``~/.cache/llmcore``."""
    if explicit := os.environ.get("LLMCORE_CACHE"):
        return Path(explicit).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "llmcore"
    return Path.home() / ".cache" / "llmcore"
