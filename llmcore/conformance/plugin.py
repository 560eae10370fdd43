"""The conformance kit's pytest plugin: ``pytest --llmcore-backend NAME [--llmcore-backend NAME2 ...]``.

Registered through llmcore's ``pytest11`` entry point, so it is active wherever llmcore is
installed; without ``--llmcore-backend`` it does nothing. With it, pytest collects the kit's checks
(``check_ops``: every op case the backend claims, against the reference backend; ``check_goldens``:
the default model end to end against llama.cpp's goldens) instead of the project's own tests, or
besides the paths given explicitly on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from llmcore.graph.backend import Backend
    from llmcore.conformance.cases import OpCase

KIT_MODULES = [Path(__file__).with_name("check_ops.py"), Path(__file__).with_name("check_goldens.py")]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmcore", "llmcore backend conformance kit")
    group.addoption("--llmcore-backend", action="append", default=[], metavar="NAME",
                    help="check backend NAME against the reference backend and llama.cpp's goldens "
                         "(repeat for several backends)")
    group.addoption("--llmcore-goldens", metavar="DIR", default=None,
                    help="directory of llama.cpp goldens for the end-to-end checks (default: the "
                         "checkout's tests/fixtures/golden/smollm2-135m-instruct-q4_1, when present)")
    group.addoption("--llmcore-model", metavar="GGUF", default=None,
                    help="the model the goldens were made with (default: llmcore's default model)")
    group.addoption("--llmcore-threads", type=int, default=None, metavar="N",
                    help="threads of the backends under test (default: theirs)")


def pytest_configure(config: pytest.Config) -> None:
    names = config.getoption("llmcore_backend")
    if not names:
        return
    from llmcore.engine.registry import choose_backend
    from llmcore.errors import LLMCoreError

    kit = Kit(names, config.getoption("llmcore_threads"))
    for name in names:
        try:
            choose_backend(name)  # raises, naming the extra to install or why it cannot run here
            kit.backend(name)
        except LLMCoreError as error:
            raise pytest.UsageError(f"--llmcore-backend {name}: {error}") from None
    config.stash[KIT_KEY] = kit
    kit_paths = [str(p) for p in KIT_MODULES]
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        if not any(Path(arg.split("::")[0]).resolve().parent == KIT_MODULES[0].parent for arg in config.args):
            config.args.extend(kit_paths)
    else:  # no paths given: run the kit, not the project's testpaths
        config.args = kit_paths


def pytest_report_header(config: pytest.Config) -> list[str]:
    kit = config.stash.get(KIT_KEY, None)
    return kit.describe() if kit is not None else []


@dataclass
class Kit:
    """The backends under test, each instantiated once per session, and the reference oracle.
    llmcore is imported lazily: this plugin is loaded by every pytest run where llmcore is installed."""

    names: list[str]
    n_threads: int | None
    _backends: dict[str, Backend] = field(default_factory=dict)
    _reference: Backend | None = None
    _claimed: dict[str, list[OpCase]] = field(default_factory=dict)

    def backend(self, name: str) -> Backend:
        """The session's instance of backend ``name`` (the one op cases load their weights into)."""
        if name not in self._backends:
            from llmcore.engine.registry import backend_classes

            self._backends[name] = backend_classes()[name](n_threads=self.n_threads)
        return self._backends[name]

    def reference(self) -> Backend:
        """A reference backend of its own, even when the reference itself is under test."""
        if self._reference is None:
            from llmcore.engine.registry import backend_classes

            self._reference = backend_classes()["reference"]()
        return self._reference

    def claimed_cases(self, name: str) -> list[OpCase]:
        """The op cases backend ``name`` claims through ``supports_op``."""
        if name not in self._claimed:
            from llmcore.conformance.cases import op_cases

            backend = self.backend(name)
            self._claimed[name] = [case for case in op_cases() if backend.supports_op(case.node)]
        return self._claimed[name]

    def describe(self) -> list[str]:
        from llmcore.engine.registry import availability
        from llmcore.conformance.cases import op_cases

        lines = []
        all_cases = op_cases()
        for name in self.names:
            devices = ", ".join(f"{d.name} ({d.kind})" for d in availability(name).devices) or "no device listed"
            claimed = {c.id for c in self.claimed_cases(name)}
            lines.append(f"llmcore conformance: {name} on {devices}: claims {len(claimed)} of {len(all_cases)} op cases")
            unclaimed = _unclaimed_types(all_cases, claimed)
            if unclaimed:
                lines.append(f"  left to the scheduler's fallback: {unclaimed}")
        return lines


def _unclaimed_types(cases: list[OpCase], claimed: set[str]) -> str:
    """'mul_mat Q4_0 Q4_K, rope (all)': per op, the types of the cases not claimed."""
    by_op: dict[str, tuple[set[str], set[str]]] = {}
    for case in cases:
        every, left = by_op.setdefault(case.op.value, (set(), set()))
        every.add(case.type_name)
        if case.id not in claimed:
            left.add(case.type_name)
    return ", ".join(f"{op} {'(all)' if left == every else ' '.join(sorted(left))}"
                     for op, (every, left) in by_op.items() if left)


KIT_KEY = pytest.StashKey[Kit]()


@pytest.fixture(scope="session")
def llmcore_kit(pytestconfig: pytest.Config) -> Kit:
    """The conformance kit's session state (only with ``--llmcore-backend``)."""
    kit = pytestconfig.stash.get(KIT_KEY, None)
    if kit is None:
        pytest.skip("the llmcore conformance kit runs with --llmcore-backend NAME")
    return kit
