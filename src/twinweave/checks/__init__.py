"""The shared conformance suite: every emulator meets one protocol, checked one way.

Each emulator class is paired with a :class:`SyntheticProblem` whose truth is known
(:func:`register`); :func:`check_emulator` (or :func:`yield_checks`, for a test runner)
then checks it: clone, restore, streaming equals batch, branch isolation, units, bounds,
calibration on synthetic data, provenance written, inputs declared. ``tests/checks``
runs the suite on every emulator that ``twinweave.models`` and ``twinweave.domains``
export, and fails for one without a registered problem.

Examples
--------
>>> from twinweave.checks import ReservoirBalance, Settings, check_emulator, reservoir_emulator
>>> check_emulator(reservoir_emulator, ReservoirBalance(),
...                settings=Settings(n_train=300, n_test=300))  # doctest: +ELLIPSIS
['clone', 'restore', 'streaming_equals_batch', ..., 'provenance', 'inputs']
"""

from twinweave.checks._builtin import register_builtin
from twinweave.checks._checks import (
    CHECKS,
    ConformanceError,
    EmulatorFactory,
    Settings,
    check_bounds,
    check_branch_isolation,
    check_calibration,
    check_clone,
    check_emulator,
    check_inputs,
    check_provenance,
    check_restore,
    check_streaming_equals_batch,
    check_units,
    yield_checks,
)
from twinweave.checks._problems import (
    LinearPartLoad,
    PumpCurve,
    RandomWalkTemperature,
    ReservoirBalance,
    SyntheticProblem,
    TrendingTemperature,
    TurbinePowerCurve,
    bins_emulator,
    pump_emulator,
    reservoir_emulator,
    temperature_emulator,
    trend_emulator,
    turbine_emulator,
)
from twinweave.checks._registry import (
    Case,
    find_emulators,
    is_emulator_class,
    register,
    registered_cases,
    unregistered_emulators,
)

register_builtin()

__all__ = [
    "CHECKS",
    "Case",
    "ConformanceError",
    "EmulatorFactory",
    "LinearPartLoad",
    "PumpCurve",
    "RandomWalkTemperature",
    "ReservoirBalance",
    "Settings",
    "SyntheticProblem",
    "TrendingTemperature",
    "TurbinePowerCurve",
    "bins_emulator",
    "check_bounds",
    "check_branch_isolation",
    "check_calibration",
    "check_clone",
    "check_emulator",
    "check_inputs",
    "check_provenance",
    "check_restore",
    "check_streaming_equals_batch",
    "check_units",
    "find_emulators",
    "is_emulator_class",
    "pump_emulator",
    "register",
    "registered_cases",
    "reservoir_emulator",
    "temperature_emulator",
    "trend_emulator",
    "turbine_emulator",
    "unregistered_emulators",
    "yield_checks",
]
