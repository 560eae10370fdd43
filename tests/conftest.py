"""Shared fixtures: the default model (fetched once into the user cache, as `llmcore run` does)
and the llama.cpp goldens copied from ../shared/fixtures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN_DIR = FIXTURES / "golden" / "smollm2-135m-instruct-q4_1"


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    from llmcore.hub import default_model_path as fetch

    return fetch(progress=False)


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py imported as a module: a goldens script whose case table and input makers
    its test reuses."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def golden_names() -> list[str]:
    return sorted(p.stem for p in GOLDEN_DIR.glob("*.json"))


def load_golden(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    record = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
    topk = np.load(GOLDEN_DIR / f"{name}.topk.npz")
    return record, {k: topk[k] for k in ("idx", "val", "lse")}


def rows_unlike_llama_cpp(llm, name: str) -> list[int]:
    """The rows of golden ``name`` whose logits differ from llama.cpp's in any bit, the tokens
    evaluated as the goldens were made: the prompt in one batch, the continuation one at a time."""
    from llmcore.engine.batch import Batch

    record, topk = load_golden(name)
    prompt = record["prompt_tokens"]
    rows = [llm.logits(prompt)]
    for step, token in enumerate(record["greedy_tokens"][: record["logits_rows"] - len(prompt)]):
        rows.append(llm.context.decode(Batch.for_sequence([token], len(prompt) + step)))
    ours = np.concatenate(rows)
    at_golden_ids = np.take_along_axis(ours, topk["idx"].astype(np.int64), axis=1)
    return np.flatnonzero((at_golden_ids != topk["val"]).any(axis=1)).tolist()
