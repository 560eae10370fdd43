"""The server soak (scripts/soak_server.py) for two minutes: normal traffic mixed with issue 15's attacks
gets no 5xx and no transport error, and the server's memory stays flat. Slow-marked: run with
``pytest -m slow tests/test_soak.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "scripts" / "soak_server.py"


@pytest.mark.slow
def test_a_soak_with_attacks_mixed_in_stays_clean():
    result = subprocess.run([sys.executable, str(SOAK), "--duration", "120", "--warmup", "30", "--clients", "4"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "statuses:" in result.stdout
