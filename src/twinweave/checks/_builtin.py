"""Registration of the synthetic problems of twinweave's own emulators."""

from __future__ import annotations

from twinweave.checks._checks import Settings
from twinweave.checks._problems import (
    LinearPartLoad,
    PumpCurve,
    RandomWalkTemperature,
    ReservoirBalance,
    TrendingTemperature,
    TurbinePowerCurve,
    bins_emulator,
    pump_emulator,
    pump_fleet_emulator,
    reservoir_emulator,
    temperature_emulator,
    trend_emulator,
    turbine_emulator,
)
from twinweave.checks._registry import register


def register_builtin() -> None:
    """Register a case for every emulator twinweave ships (done once, on import)."""
    register("pump", pump_emulator, PumpCurve())
    register("pump_fleet_prior", pump_fleet_emulator, PumpCurve())
    # 74 features and 50 noise bins: the smoothing and noise priors fade only with
    # thousands of readings, as a turbine's year of 10-minute data has.
    register("power_curve", turbine_emulator, TurbinePowerCurve(), Settings(n_train=10_000))
    register("method_of_bins", bins_emulator, LinearPartLoad())
    register("local_level", temperature_emulator, RandomWalkTemperature())
    register("local_linear_trend", trend_emulator, TrendingTemperature())
    register("reservoir", reservoir_emulator, ReservoirBalance())
