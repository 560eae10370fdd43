"""llama.cpp's goldens for the kit's end-to-end checks: loading them and measuring how far a
backend's logits are from them.

A golden set is a directory of ``<name>.json`` (prompt tokens, greedy tokens, the model's file
name) and ``<name>.topk.npz`` (llama.cpp's 256 largest logits per row and each row's log-sum-exp),
as the repository's ``tests/fixtures/golden/<model>/`` holds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import llmcore

#: where the goldens of the default model lie in a source checkout
_CHECKOUT_GOLDENS = Path("tests") / "fixtures" / "golden" / "smollm2-135m-instruct-q4_1"


@dataclass(frozen=True)
class Golden:
    """One prompt's llama.cpp outputs."""

    name: str
    model: str  # the model's file name
    prompt_tokens: list[int]
    greedy_tokens: list[int]
    idx: np.ndarray  # int32 [rows, 256]: llama.cpp's top logits' token ids, largest first
    val: np.ndarray  # float32 [rows, 256]: their values
    lse: np.ndarray  # float32 [rows]: log-sum-exp of each whole row

    @property
    def scored_tokens(self) -> list[int]:
        """The tokens whose logits llama.cpp recorded (a final EOS was not fed)."""
        return (self.prompt_tokens + self.greedy_tokens)[: len(self.lse)]


def default_goldens_dir() -> Path | None:
    """The default model's goldens in a source checkout of llmcore (an editable install) or under
    the current directory; None when neither has them."""
    for root in (Path(llmcore.__file__).resolve().parents[1], Path.cwd()):
        if (root / _CHECKOUT_GOLDENS).is_dir():
            return root / _CHECKOUT_GOLDENS
    return None


def golden_names(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json"))


def load_golden(directory: Path, name: str) -> Golden:
    record = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    with np.load(directory / f"{name}.topk.npz") as topk:
        return Golden(name, record["model"], record["prompt_tokens"], record["greedy_tokens"],
                      topk["idx"], topk["val"], topk["lse"])


def log_softmax(logits: np.ndarray) -> np.ndarray:
    peak = logits.max(axis=1, keepdims=True)
    return logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class LogitErrors:
    """How a backend's log-probabilities differ from llama.cpp's over some goldens' rows."""

    rows: int
    top1_rate: float  # share of rows whose argmax is llama.cpp's top-1
    p99_top1: float  # 99th percentile of |log-prob error| of llama.cpp's top-1 token
    p99_top10: float  # 99th percentile of the largest |log-prob error| over llama.cpp's top 10

    @classmethod
    def measure(cls, pairs: list[tuple[Golden, np.ndarray]]) -> LogitErrors:
        """``pairs``: each golden with the backend's logits for its ``scored_tokens``."""
        hits, top1, top10 = 0, [], []
        for golden, logits in pairs:
            ours = log_softmax(logits.astype(np.float64))
            gold = golden.val - golden.lse[:, None]
            hits += int((ours.argmax(axis=1) == golden.idx[:, 0]).sum())
            picked = np.take_along_axis(ours, golden.idx[:, :10].astype(np.int64), axis=1)
            top1.append(np.abs(picked[:, 0] - gold[:, 0]))
            top10.append(np.abs(picked - gold[:, :10]).max(axis=1))
        rows = sum(len(g.lse) for g, _ in pairs)
        return cls(rows, hits / rows, float(np.percentile(np.concatenate(top1), 99)),
                   float(np.percentile(np.concatenate(top10), 99)))


__all__ = ["Golden", "LogitErrors", "default_goldens_dir", "golden_names", "load_golden",
           "log_softmax"]
