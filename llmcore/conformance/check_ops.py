"""Kit checks, op by op: every case a backend claims, run on it and on the reference backend, must
agree within the op's NMSE bound (``compare.NMSE_BOUNDS``)."""

from __future__ import annotations

import pytest

from llmcore.conformance.cases import OpCase
from llmcore.conformance.plugin import KIT_KEY, Kit
from llmcore.conformance.runner import check_case


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "op_case" in metafunc.fixturenames:
        kit = metafunc.config.stash[KIT_KEY]
        params = [pytest.param(name, case, id=f"{name}-{case.id}")
                  for name in kit.names for case in kit.claimed_cases(name)]
        metafunc.parametrize(("backend_name", "op_case"), params)


def test_op_matches_reference(llmcore_kit: Kit, backend_name: str, op_case: OpCase) -> None:
    backend = llmcore_kit.backend(backend_name)
    what = f"{backend_name}: {op_case.description}"
    try:
        problems = check_case(backend, llmcore_kit.reference(), op_case)
    except Exception as error:  # a plugin's own exception: name the case, keep its traceback
        raise AssertionError(f"{what}: raised {type(error).__name__}: {error}") from error
    if problems:
        pytest.fail("\n".join([what, *(f"  {p}" for p in problems)]), pytrace=False)
