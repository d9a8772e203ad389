"""Every exported emulator passes the shared conformance suite on its synthetic problem.

Emulators are discovered, not listed: any class that ``twinweave.models`` or a
``twinweave.domains`` subpackage exports and that meets the Emulator protocol is checked,
and one without a registered synthetic problem fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

import twinweave.domains
import twinweave.models
from twinweave.checks import find_emulators, registered_cases, yield_checks


def public_modules() -> list[ModuleType]:
    """``twinweave.models`` and every public subpackage of ``twinweave.domains``."""
    modules: list[ModuleType] = [twinweave.models]
    for info in pkgutil.walk_packages(twinweave.domains.__path__, "twinweave.domains."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            modules.append(importlib.import_module(info.name))
    return modules


EMULATORS = find_emulators(public_modules())


def test_discovery_finds_the_known_emulators() -> None:
    names = {kind.__name__ for kind in EMULATORS}
    assert {"BayesianBasisRegression", "StateSpaceEmulator", "MethodOfBins"} <= names


@pytest.mark.parametrize("emulator_type", EMULATORS, ids=lambda kind: kind.__name__)
def test_every_emulator_has_a_synthetic_problem(emulator_type: type) -> None:
    assert registered_cases(emulator_type), (
        f"{emulator_type.__module__}.{emulator_type.__name__} meets the Emulator protocol "
        "but has no synthetic problem: add one with twinweave.checks.register(name, "
        "factory, problem) so the conformance suite can check it"
    )


def conformance_checks() -> Iterator[object]:
    for emulator_type in EMULATORS:
        for case in registered_cases(emulator_type):
            for name, run in yield_checks(case.factory, case.problem, settings=case.settings):
                yield pytest.param(run, id=f"{emulator_type.__name__}-{case.name}-{name}")


@pytest.mark.parametrize("run", list(conformance_checks()))
def test_conformance(run: Callable[[], None]) -> None:
    run()
