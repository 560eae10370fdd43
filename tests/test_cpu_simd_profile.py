"""``LLMCORE_PROFILE=1``: cpu_simd's per-op profile at exit, thread 0's time in each op and at the
barriers (waiting for the other threads' shares, or while another thread ran a serial phase), the
shares adding up to the whole."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

DECODE = """
import sys
from llmcore.api import LLM
from llmcore.engine.batch import Batch
llm = LLM(sys.argv[1], backend="cpu_simd", n_ctx=128, n_threads=2)
tokens = llm.tokenize("The three primary colors are")
llm.context.decode(Batch.for_sequence(tokens, 0))
for step in range(8):
    llm.context.decode(Batch.for_sequence([42], len(tokens) + step))
"""


def test_the_profile_splits_thread_0s_time_into_ops_and_barrier_waits(default_model_path):
    result = subprocess.run([sys.executable, "-c", DECODE, str(default_model_path)], capture_output=True, text=True,
                            env={**os.environ, "LLMCORE_PROFILE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "cpu_simd profile (" in out and "2 threads; thread 0's time" in out
    ops = {name: (float(ms), float(share), int(calls))
           for name, ms, share, calls in re.findall(r"^  (\w+)\s+([\d.]+) ms\s+([\d.]+)% +(\d+) calls$", out, re.M)}
    assert {"mul_mat", "attention", "rms_norm"} <= set(ops) and all(ms > 0 for ms, _, _ in ops.values())
    wait, wait_share, serial, serial_share = map(float, re.search(
        r"^  barriers\s+([\d.]+) ms\s+([\d.]+)% waiting for the other threads' shares, ([\d.]+) ms \(([\d.]+)%\) "
        r"while another ran a serial phase$", out, re.M).groups())
    assert wait >= 0 and serial >= 0
    assert sum(share for _, share, _ in ops.values()) + wait_share + serial_share == pytest.approx(100, abs=1)
    runs, nodes, barriers = re.search(r"^  (\d+) runs: ([\d.]+) nodes and ([\d.]+) barriers per run$", out, re.M).groups()
    assert int(runs) >= 9 and float(barriers) > 0
