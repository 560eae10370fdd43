"""Kit checks, end to end: the default model run on the backend as ``LLM(backend=NAME)`` runs it
(every layer it can take, ops it does not claim on the best CPU backend) against llama.cpp's
goldens, with the pass marks of ``compare``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcore import LLM
from llmcore.conformance import compare
from llmcore.conformance.goldens import (
    Golden,
    LogitErrors,
    default_goldens_dir,
    golden_names,
    load_golden,
)
from llmcore.conformance.plugin import KIT_KEY, Kit
from llmcore.errors import LLMCoreError


def _goldens_dir(config: pytest.Config) -> Path | None:
    option = config.getoption("llmcore_goldens")
    return Path(option) if option else default_goldens_dir()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", metafunc.config.stash[KIT_KEY].names, scope="module")
    if "golden_name" in metafunc.fixturenames:
        directory = _goldens_dir(metafunc.config)
        names = golden_names(directory) if directory is not None and directory.is_dir() else []
        metafunc.parametrize("golden_name", names or [pytest.param("", id="no-goldens")])


@pytest.fixture(scope="session")
def goldens(pytestconfig: pytest.Config) -> list[Golden]:
    directory = _goldens_dir(pytestconfig)
    if directory is None:
        pytest.skip("llama.cpp goldens not found: pass --llmcore-goldens DIR (a checkout's "
                    "tests/fixtures/golden/smollm2-135m-instruct-q4_1)")
    names = golden_names(directory) if directory.is_dir() else []
    if not names:
        pytest.skip(f"--llmcore-goldens {directory}: no <name>.json goldens there")
    return [load_golden(directory, name) for name in names]


@pytest.fixture(scope="session")
def model_path(pytestconfig: pytest.Config, goldens: list[Golden]) -> Path:
    option = pytestconfig.getoption("llmcore_model")
    if option:
        path = Path(option)
    else:
        from llmcore.hub import default_model_path

        try:
            path = default_model_path(progress=False)
        except LLMCoreError as error:
            pytest.skip(f"the default model is unavailable ({error}); pass --llmcore-model GGUF")
    wanted = {g.model for g in goldens}
    if path.name not in wanted:
        pytest.skip(f"the goldens were made with {', '.join(sorted(wanted))}, not {path.name}")
    return path


@pytest.fixture(scope="module")
def llm(llmcore_kit: Kit, backend_name: str, model_path: Path) -> Iterator[LLM]:
    loaded = LLM(model_path, backend=backend_name, n_ctx=512, n_threads=llmcore_kit.n_threads)
    yield loaded
    loaded.model.close()


def test_golden_logits(llm: LLM, goldens: list[Golden], backend_name: str) -> None:
    errors = LogitErrors.measure([(g, llm.logits(g.scored_tokens)) for g in goldens])
    summary = (f"{backend_name} on {len(goldens)} goldens ({errors.rows} rows): top-1 agreement "
               f"{errors.top1_rate:.4f} (bound >= {compare.GOLDEN_TOP1_RATE}); p99 log-prob error of "
               f"llama.cpp's top-1 {errors.p99_top1:.4f} (bound {compare.GOLDEN_P99_TOP1_ERROR}), "
               f"of its top-10 {errors.p99_top10:.4f} (bound {compare.GOLDEN_P99_TOP10_ERROR})")
    print(summary)
    assert (errors.top1_rate >= compare.GOLDEN_TOP1_RATE and errors.p99_top1 <= compare.GOLDEN_P99_TOP1_ERROR
            and errors.p99_top10 <= compare.GOLDEN_P99_TOP10_ERROR), summary


def test_golden_greedy(llm: LLM, goldens: list[Golden], golden_name: str, backend_name: str) -> None:
    golden = next(g for g in goldens if g.name == golden_name)
    greedy = llm.sampler(temperature=0.0)
    ours = list(llm.generate_tokens(golden.prompt_tokens, greedy, max_tokens=len(golden.greedy_tokens)))
    for step, (got, want) in enumerate(zip(ours, golden.greedy_tokens)):
        if got != want:
            row = len(golden.prompt_tokens) - 1 + step
            gap = float(golden.val[row, 0] - golden.val[row, 1])
            assert gap < compare.GOLDEN_NEAR_TIE, (
                f"{backend_name}, golden {golden_name}: greedy step {step} gave token {got}, llama.cpp {want} "
                f"with a top-2 logit gap of {gap:.3f} (only near ties under {compare.GOLDEN_NEAR_TIE} may differ)")
            return  # a near tie decided by rounding: the rest legitimately differs
    if len(ours) < len(golden.greedy_tokens) and not llm.tokenizer.is_eog(golden.greedy_tokens[len(ours)]):
        pytest.fail(f"{backend_name}, golden {golden_name}: generation ended after {len(ours)} tokens, "
                    f"llama.cpp went on with {golden.greedy_tokens[len(ours)]}", pytrace=False)
