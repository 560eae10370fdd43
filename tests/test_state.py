"""LLM.save_state/load_state and ``llmcore run --prompt-cache``.

The oracle for a restored state is the uninterrupted run: evaluating the same continuation on the
live cache must give bit-identical logits, and only the continuation's tokens may be evaluated.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from llmcore.errors import LLMCoreError

PROMPT = "<|im_start|>system\nYou are a terse assistant who answers in one word.<|im_end|>\n"
FOLLOW_UP = "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"
PREAMBLE = struct.Struct("<8sII")


@pytest.fixture(scope="module")
def llm(default_model_path):
    from llmcore.api import LLM

    return LLM(default_model_path, n_ctx=128, seed=0)


@pytest.fixture(scope="module")
def saved(llm, tmp_path_factory) -> tuple[Path, list[int], np.ndarray, int]:
    """A state file of PROMPT, and the logits and evaluated-token count of the uninterrupted run
    that continues PROMPT with FOLLOW_UP on the live cache."""
    prompt = llm.tokenize(PROMPT, parse_special=True)
    full = prompt + llm.tokenize(FOLLOW_UP, add_special=False, parse_special=True)
    llm.reset()
    llm.eval_prompt(prompt)
    path = tmp_path_factory.mktemp("state") / "prompt.state"
    llm.save_state(path)
    logits = llm.eval_prompt(full)
    return path, full, logits, llm.last.timings.prompt_n


def test_round_trip_gives_the_uninterrupted_logits(llm, saved):
    path, full, expected, expected_n = saved
    n_prompt = len(llm.tokenize(PROMPT, parse_special=True))
    assert expected_n == len(full) - n_prompt
    llm.reset()
    llm.eval_prompt(llm.tokenize("Something else entirely, to overwrite the cells.", parse_special=True))
    restored = llm.load_state(path)
    assert restored == full[:n_prompt]
    logits = llm.eval_prompt(full)
    assert llm.last.timings.prompt_n == len(full) - n_prompt
    np.testing.assert_array_equal(logits, expected)


def test_same_prompt_after_load_evaluates_one_token(llm, saved):
    path = saved[0]
    prompt = llm.load_state(path)
    llm.eval_prompt(prompt)
    assert llm.last.timings.prompt_n == 1  # logits are not saved: the last token is replayed


def test_save_a_prefix_only(llm, saved, tmp_path):
    path, full, _, _ = saved
    llm.load_state(path)
    llm.eval_prompt(full)
    prefix = tmp_path / "prefix.state"
    llm.save_state(prefix, n_tokens=5)
    assert llm.load_state(prefix) == full[:5]


def _forge(source: Path, dest: Path, edit_header=None, body=None) -> Path:
    """A copy of a state file with its JSON header edited and a valid checksum (the layout is the
    one documented in llmcore/engine/state.py)."""
    data = source.read_bytes()
    magic, version, header_len = PREAMBLE.unpack_from(data)
    header = json.loads(data[PREAMBLE.size:PREAMBLE.size + header_len])
    rest = data[PREAMBLE.size + header_len:-4] if body is None else body
    if edit_header:
        edit_header(header)
    raw = json.dumps(header).encode()
    blob = PREAMBLE.pack(magic, version, len(raw)) + raw + rest
    dest.write_bytes(blob + struct.pack("<I", zlib.crc32(blob)))
    return dest


def _set(path: list[str], value):
    def edit(header):
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


@pytest.mark.parametrize("case, field", [
    ("model", "model"),
    ("cache_type", "cache_type"),
    ("too_many_tokens", "n_tokens"),
    ("bad_token", "tokens"),
    ("bad_json", "header"),
    ("flipped_byte", "checksum"),
    ("truncated", "truncated|checksum"),
    ("empty", "truncated"),
    ("not_a_state", "magic"),
    ("missing", "cannot read"),
])
def test_bad_state_files_are_clear_errors(llm, saved, tmp_path, case, field):
    path, full, _, _ = saved
    bad = tmp_path / f"{case}.state"
    data = path.read_bytes()
    if case == "model":
        _forge(path, bad, _set(["model", "sha256"], "0" * 64))
    elif case == "cache_type":
        _forge(path, bad, _set(["cache_type"], "f32"))
    elif case == "too_many_tokens":
        _forge(path, bad, _set(["n_tokens"], 10_000))
    elif case == "bad_token":
        n = json.loads(data[PREAMBLE.size:PREAMBLE.size + PREAMBLE.unpack_from(data)[2]])["n_tokens"]
        start = PREAMBLE.size + PREAMBLE.unpack_from(data)[2]
        body = bytearray(data[start:-4])
        body[0:4] = struct.pack("<i", 10**9)
        assert n > 0
        _forge(path, bad, body=bytes(body))
    elif case == "bad_json":
        raw = b"{not json"
        blob = PREAMBLE.pack(b"LLMCSTAT", 1, len(raw)) + raw
        bad.write_bytes(blob + struct.pack("<I", zlib.crc32(blob)))
    elif case == "flipped_byte":
        corrupt = bytearray(data)
        corrupt[len(corrupt) // 2] ^= 0x40
        bad.write_bytes(bytes(corrupt))
    elif case == "truncated":
        bad.write_bytes(data[: len(data) * 2 // 3])
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "not_a_state":
        bad.write_bytes(b"GGUF" + bytes(100))
    llm.load_state(path)
    llm.eval_prompt(full)
    before = llm.eval_prompt(full)  # the last token re-evaluated, as after the refusal below
    with pytest.raises(LLMCoreError, match=field) as error:
        llm.load_state(bad)
    assert str(bad) in str(error.value)
    # a refused file changes nothing: the cache still continues the conversation
    np.testing.assert_array_equal(llm.eval_prompt(full), before)
    assert llm.last.timings.prompt_n == 1


PERF = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")


def _run(model: Path, cache: Path, prompt: str) -> int:
    """`llmcore run` with a prompt cache; the number of prompt tokens its timings say it evaluated."""
    result = subprocess.run(
        [sys.executable, "-m", "llmcore", "run", "-m", str(model), "-c", "128", "-n", "1", "--temp", "0",
         "-p", prompt, "--prompt-cache", str(cache)],
        check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return int(PERF.search(result.stderr).group(1))


def test_second_run_with_a_prompt_cache_evaluates_only_new_tokens(default_model_path, llm, tmp_path):
    cache = tmp_path / "prompt.cache"
    n_prompt = len(llm.tokenize(PROMPT, parse_special=True))
    assert _run(default_model_path, cache, PROMPT) == n_prompt
    assert cache.stat().st_size > 0
    n_full = len(llm.tokenize(PROMPT + FOLLOW_UP, parse_special=True))
    assert _run(default_model_path, cache, PROMPT + FOLLOW_UP) == n_full - n_prompt
