"""Synthetic problems whose truth is known, one or more per shipped emulator.

Each problem draws data from a process the emulator it is paired with can represent
exactly (or nearly: a piecewise-linear curve for the method of bins), so a calibration
failure points at the emulator, not at the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from twinweave.core import Telemetry, TwinSchema
from twinweave.domains.wind import MethodOfBins, power_curve_emulator, turbine_schema
from twinweave.models import BayesianBasisRegression, SplineTerm, StateSpaceEmulator

FloatArray = NDArray[np.float64]
Seed = int | np.random.Generator | None


@runtime_checkable
class SyntheticProblem(Protocol):
    """A data-generating process with known truth, to check an emulator against.

    ``observations`` are draws from the truth: for a static emulator, independent
    readings of inputs and target; for a dynamic one (``sequential``), a fresh stream of
    consecutive readings starting from the emulator's initial state distribution.
    Held-out observations are the truth the calibration check compares intervals with.
    """

    @property
    def schema(self) -> TwinSchema:
        """Schema with the target's unit and physical bounds."""
        ...

    @property
    def sequential(self) -> bool:
        """Whether ``predict`` forecasts the next steps of a stream.

        Calibration is then judged one step ahead, predicting each held-out reading
        before assimilating it; otherwise all held-out readings are predicted at once.
        """
        ...

    @property
    def streaming_rtol(self) -> float | None:
        """Relative tolerance within which one batch and the same readings one at a time
        give the same predictions (0 for bit-identical); ``None`` if not promised."""
        ...

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        """``n`` readings: the target and every input, one array per column."""
        ...

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        """Inputs of ``n`` predictions (for a dynamic emulator, the next ``n`` steps)."""
        ...


# -- static regression problems ------------------------------------------------------------
@dataclass(frozen=True)
class PumpCurve:
    """Pump power [kW] against flow [m^3/h]: a smooth curve, noise growing with flow.

    The noise standard deviation is constant on each of five flow bins, the emulator's
    noise bins, so :func:`pump_emulator` can represent the truth exactly.
    """

    sequential: bool = False
    streaming_rtol: float | None = 1e-9
    noise_edges: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    noise_sd: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0)

    @property
    def schema(self) -> TwinSchema:
        return TwinSchema(
            name="Pump",
            telemetry=(
                Telemetry(name="flow", unit="m^3/h", lower=0.0, upper=10.0),
                Telemetry(name="power", unit="kW", lower=0.0, upper=50.0),
            ),
        )

    def curve(self, flow: FloatArray) -> FloatArray:
        """True mean power [kW] at ``flow`` [m^3/h]."""
        return np.asarray(20.0 + 2.0 * flow + 6.0 * np.sin(0.8 * flow), dtype=np.float64)

    def sd(self, flow: FloatArray) -> FloatArray:
        """True noise standard deviation [kW] at ``flow`` [m^3/h]."""
        edges = np.asarray(self.noise_edges)
        index = np.clip(np.searchsorted(edges, flow, side="right") - 1, 0, len(self.noise_sd) - 1)
        return np.asarray(self.noise_sd, dtype=np.float64)[index]

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        return {"flow": np.random.default_rng(seed).uniform(0.0, 10.0, n)}

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        flow = rng.uniform(0.0, 10.0, n)
        power = self.curve(flow) + self.sd(flow) * rng.standard_normal(n)
        return {"flow": flow, "power": power}


def pump_emulator() -> BayesianBasisRegression:
    """The :class:`~twinweave.models.BayesianBasisRegression` :class:`PumpCurve` checks."""
    problem = PumpCurve()
    return BayesianBasisRegression(
        target="power",
        terms=(SplineTerm("flow", 0.0, 10.0, 20),),
        noise_source="flow",
        noise_edges=problem.noise_edges,
        lower=0.0,
        upper=50.0,
        units="kW",
        smoothing=1e-2,
        ridge=1e-6,
    )


def pump_fleet_emulator() -> BayesianBasisRegression:
    """:func:`pump_emulator` with a full prior covariance and per-bin noise target, as a
    twin that starts from its fleet's knowledge has them (a smooth covariance about a
    flat 25 kW curve and 1 kW^2 in every bin here)."""
    plain = pump_emulator()
    smooth = plain.terms[0].penalty(1e-2, 1e-4)
    return BayesianBasisRegression(
        **{
            **plain.get_params(),
            "prior_mean": np.full(plain.n_features, 25.0),
            "prior_covariance": np.linalg.inv(smooth),
            "noise_target": np.ones(plain.n_bins),
        }
    )


@dataclass(frozen=True)
class TurbinePowerCurve:
    """Turbine power [kW] against wind speed [m/s]: a logistic curve, noise largest mid-curve.

    Readings are drawn at part load, where few of them are censored: the emulator's
    likelihood is Gaussian, not censored, so where many readings sit on a bound (below
    cut-in, at rated power) its noise estimate shrinks and its intervals there cover
    less than they claim. Predictions are asked for from calm to cut-out, so the bounds
    check sees forecasts piled on both bounds. Density is left out: the emulator then
    uses its fallback density, the reference one, and the curve is in measured speed.

    Parameters
    ----------
    rated_power
        Upper bound of power [kW].
    wind_low, wind_high
        Range of the uniformly drawn wind speeds of readings [m/s].
    noise_floor
        Noise standard deviation away from the steep part of the curve [kW].
    """

    rated_power: float = 2050.0
    wind_low: float = 4.5
    wind_high: float = 13.5
    noise_floor: float = 40.0
    sequential: bool = False
    streaming_rtol: float | None = 1e-9

    @property
    def schema(self) -> TwinSchema:
        return turbine_schema(self.rated_power)

    def curve(self, wind_speed: FloatArray) -> FloatArray:
        """True latent mean power [kW]."""
        share = 1.0 / (1.0 + np.exp(-(wind_speed - 8.5) / 1.1))
        return np.asarray(30.0 + 0.95 * self.rated_power * share, dtype=np.float64)

    def sd(self, wind_speed: FloatArray) -> FloatArray:
        """True latent noise standard deviation [kW]."""
        share = 1.0 / (1.0 + np.exp(-(wind_speed - 8.5) / 1.1))
        return np.asarray(self.noise_floor + 200.0 * share * (1.0 - share), dtype=np.float64)

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        return {"wind_speed": np.random.default_rng(seed).uniform(0.0, 25.0, n)}

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        speed = rng.uniform(self.wind_low, self.wind_high, n)
        latent = self.curve(speed) + self.sd(speed) * rng.standard_normal(n)
        return {"wind_speed": speed, "power": np.clip(latent, 0.0, self.rated_power)}


def turbine_emulator() -> BayesianBasisRegression:
    """:func:`~twinweave.domains.wind.power_curve_emulator` of a 2050 kW turbine."""
    return power_curve_emulator(2050.0)


@dataclass(frozen=True)
class LinearPartLoad:
    """Power [kW] linear in wind speed [m/s] over part load, well inside the bounds.

    The method of bins interpolates linearly between bin means, so a linear curve is
    one it represents exactly; the noise is large next to the slope times the bin width,
    so the spread of the mean within a bin barely widens the per-bin deviation.
    """

    rated_power: float = 2050.0
    slope: float = 100.0
    noise_sd: float = 100.0
    sequential: bool = False
    streaming_rtol: float | None = 1e-9

    @property
    def schema(self) -> TwinSchema:
        return turbine_schema(self.rated_power)

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        # Keep clear of the outermost half bins, where interpolation turns extrapolation.
        return {"wind_speed": np.random.default_rng(seed).uniform(4.0, 11.0, n)}

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        speed = rng.uniform(3.5, 11.5, n)
        power = 200.0 + self.slope * (speed - 3.0) + self.noise_sd * rng.standard_normal(n)
        return {"wind_speed": speed, "power": power}


def bins_emulator() -> MethodOfBins:
    """:class:`~twinweave.domains.wind.MethodOfBins` of a 2050 kW turbine."""
    return MethodOfBins(rated_power=2050.0)


# -- dynamic problems ------------------------------------------------------------------
@dataclass(frozen=True)
class RandomWalkTemperature:
    """Air temperature [degC] as a random walk read by a noisy sensor (a local level)."""

    level_var: float = 0.02
    noise_var: float = 0.3
    initial_level: float = 10.0
    initial_var: float = 4.0
    sequential: bool = True
    streaming_rtol: float | None = 0.0

    @property
    def schema(self) -> TwinSchema:
        return TwinSchema(
            name="Weather",
            telemetry=(Telemetry(name="temp_air", unit="degC", lower=-60.0, upper=60.0),),
        )

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        return {"step": np.arange(1.0, n + 1.0)}

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        start = self.initial_level + np.sqrt(self.initial_var) * rng.standard_normal()
        level = start + np.cumsum(np.sqrt(self.level_var) * rng.standard_normal(n))
        reading = level + np.sqrt(self.noise_var) * rng.standard_normal(n)
        return {"step": np.arange(1.0, n + 1.0), "temp_air": reading}


def temperature_emulator() -> StateSpaceEmulator:
    """The local-level :class:`~twinweave.models.StateSpaceEmulator` of
    :class:`RandomWalkTemperature`."""
    problem = RandomWalkTemperature()
    return StateSpaceEmulator.local_level(
        "temp_air",
        level_var=problem.level_var,
        noise_var=problem.noise_var,
        initial_level=problem.initial_level,
        initial_var=problem.initial_var,
        lower=-60.0,
        upper=60.0,
        units="degC",
    )


@dataclass(frozen=True)
class TrendingTemperature:
    """Air temperature [degC] with a slowly drifting trend (a local linear trend)."""

    level_var: float = 0.01
    slope_var: float = 2e-9
    noise_var: float = 0.2
    initial_level: float = 5.0
    initial_var: float = 1.0
    sequential: bool = True
    streaming_rtol: float | None = 0.0

    @property
    def schema(self) -> TwinSchema:
        return TwinSchema(
            name="Weather",
            telemetry=(Telemetry(name="temp_air", unit="degC", lower=-60.0, upper=60.0),),
        )

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        return {"step": np.arange(1.0, n + 1.0)}

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        level0 = self.initial_level + np.sqrt(self.initial_var) * rng.standard_normal()
        # Small enough that a few thousand steps stay well inside [-60, 60] degC.
        slope0 = 1e-3 * rng.standard_normal()
        slope = slope0 + np.cumsum(np.sqrt(self.slope_var) * rng.standard_normal(n))
        # level_t = level_{t-1} + slope_{t-1} + w_t, with slope_0 driving the first step.
        previous_slope = np.concatenate([[slope0], slope[:-1]])
        level = level0 + np.cumsum(
            previous_slope + np.sqrt(self.level_var) * rng.standard_normal(n)
        )
        reading = level + np.sqrt(self.noise_var) * rng.standard_normal(n)
        return {"step": np.arange(1.0, n + 1.0), "temp_air": reading}


def trend_emulator() -> StateSpaceEmulator:
    """The local-linear-trend :class:`~twinweave.models.StateSpaceEmulator` of
    :class:`TrendingTemperature`; its prior on the slope is vaguer than the truth's,
    which only widens the first few forecasts."""
    problem = TrendingTemperature()
    return StateSpaceEmulator.local_linear_trend(
        "temp_air",
        level_var=problem.level_var,
        slope_var=problem.slope_var,
        noise_var=problem.noise_var,
        initial_level=problem.initial_level,
        initial_var=problem.initial_var,
        lower=-60.0,
        upper=60.0,
        units="degC",
    )


@dataclass(frozen=True)
class ReservoirBalance:
    """Reservoir storage [m^3] from a mass balance with daily inflow and outflow [m^3/day].

    The operator releases the inflow plus a share of the excess over the target storage
    (plus some scatter), so storage stays near the target; the releases are known
    inputs, and the filter's errors do not depend on how they were chosen.
    """

    capacity: float = 100_000.0
    target_storage: float = 50_000.0
    process_var: float = 900.0
    noise_var: float = 2500.0
    initial_var: float = 40_000.0
    reversion: float = 0.05
    sequential: bool = True
    streaming_rtol: float | None = 0.0

    @property
    def schema(self) -> TwinSchema:
        return TwinSchema(
            name="Reservoir",
            telemetry=(
                Telemetry(name="storage", unit="m^3", lower=0.0, upper=self.capacity),
                Telemetry(name="inflow", unit="m^3/day", lower=0.0),
                Telemetry(name="outflow", unit="m^3/day", lower=0.0),
            ),
        )

    def inputs(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        inflow = rng.gamma(4.0, 250.0, n)
        # A release cannot be negative (the schema's lower bound on outflow).
        return {"inflow": inflow, "outflow": np.maximum(inflow + rng.normal(0.0, 100.0, n), 0.0)}

    def observations(self, n: int, seed: Seed = None) -> dict[str, FloatArray]:
        rng = np.random.default_rng(seed)
        inflow = rng.gamma(4.0, 250.0, n)
        outflow = np.empty(n)
        storage = np.empty(n)
        current = self.target_storage + np.sqrt(self.initial_var) * rng.standard_normal()
        for t in range(n):
            excess = current - self.target_storage
            release = inflow[t] + self.reversion * excess + rng.normal(0.0, 20.0)
            outflow[t] = max(release, 0.0)
            current = (
                current
                + (inflow[t] - outflow[t])
                + np.sqrt(self.process_var) * rng.standard_normal()
            )
            storage[t] = current
        reading = storage + np.sqrt(self.noise_var) * rng.standard_normal(n)
        return {"storage": reading, "inflow": inflow, "outflow": outflow}


def reservoir_emulator() -> StateSpaceEmulator:
    """:meth:`~twinweave.models.StateSpaceEmulator.reservoir` of :class:`ReservoirBalance`."""
    problem = ReservoirBalance()
    return StateSpaceEmulator.reservoir(
        capacity=problem.capacity,
        initial_storage=problem.target_storage,
        initial_var=problem.initial_var,
        process_var=problem.process_var,
        noise_var=problem.noise_var,
    )
