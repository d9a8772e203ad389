"""Which synthetic problem each emulator is checked on, and finding emulators to check."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

from twinweave.checks._checks import EmulatorFactory, Settings
from twinweave.checks._problems import SyntheticProblem
from twinweave.core import Emulator

#: What an emulator class must have to be checked (the :class:`~twinweave.core.Emulator`
#: members that live on the class; ``target`` and ``n_observations_`` may be set per
#: instance).
_CLASS_MEMBERS = ("get_params", "update", "predict", "state", "from_state")


@dataclass(frozen=True)
class Case:
    """An emulator configuration and the synthetic problem it is checked on.

    Parameters
    ----------
    name
        Short identifier, used in test ids (``"pump"``, ``"reservoir"``).
    factory
        Builds a fresh, unfitted emulator; called once per check.
    problem
        The truth the emulator's data are drawn from.
    settings
        Sizes and tolerances of the checks: enough readings for the emulator's priors
        to stop mattering, so calibration is judged where the emulator claims it.
    """

    name: str
    factory: EmulatorFactory
    problem: SyntheticProblem
    settings: Settings = field(default_factory=Settings)

    @property
    def emulator_type(self) -> type:
        return type(self.factory())


_CASES: dict[type, list[Case]] = {}


def register(
    name: str,
    factory: EmulatorFactory,
    problem: SyntheticProblem,
    settings: Settings | None = None,
) -> Case:
    """Declare that emulators built by ``factory`` are checked on ``problem``.

    The emulator class is that of ``factory()`` (constructors do no fitting, so this is
    cheap). Register a problem for every new emulator class: the conformance test fails
    for an exported emulator without one.

    Raises
    ------
    TypeError
        If ``factory()`` does not meet the :class:`~twinweave.core.Emulator` protocol,
        or ``problem`` is not a :class:`SyntheticProblem`.
    ValueError
        If the class already has a case called ``name``.
    """
    emulator = factory()
    if not isinstance(emulator, Emulator):
        raise TypeError(
            f"factory: expected a callable returning a twinweave.core.Emulator, got "
            f"{type(emulator).__name__}"
        )
    if not isinstance(problem, SyntheticProblem):
        raise TypeError(
            f"problem: expected a twinweave.checks.SyntheticProblem, got {type(problem).__name__}"
        )
    cases = _CASES.setdefault(type(emulator), [])
    if any(case.name == name for case in cases):
        raise ValueError(f"name: {type(emulator).__name__} already has a case called {name!r}")
    case = Case(name, factory, problem, Settings() if settings is None else settings)
    cases.append(case)
    return case


def registered_cases(emulator_type: type | None = None) -> tuple[Case, ...]:
    """The cases registered for exactly ``emulator_type``, or all cases.

    A subclass is a new emulator: it needs cases of its own.
    """
    if emulator_type is None:
        return tuple(case for cases in _CASES.values() for case in cases)
    return tuple(_CASES.get(emulator_type, ()))


def is_emulator_class(candidate: object) -> bool:
    """Whether ``candidate`` is a concrete class whose instances meet the Emulator protocol."""
    if not isinstance(candidate, type) or getattr(candidate, "_is_protocol", False):
        return False
    return all(callable(getattr(candidate, member, None)) for member in _CLASS_MEMBERS)


def find_emulators(modules: Iterable[ModuleType]) -> list[type]:
    """Every emulator class exported (listed in ``__all__``) by ``modules``, deduplicated."""
    found: dict[type, None] = {}
    for module in modules:
        for name in getattr(module, "__all__", ()):
            candidate = getattr(module, name)
            if is_emulator_class(candidate):
                found[candidate] = None
    return list(found)


def unregistered_emulators(modules: Iterable[ModuleType]) -> list[type]:
    """Emulator classes exported by ``modules`` that have no registered case."""
    return [kind for kind in find_emulators(modules) if not registered_cases(kind)]
