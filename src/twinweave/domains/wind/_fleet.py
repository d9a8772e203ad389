"""Turbine twins for a fleet: build, fit and evaluate one twin per turbine.

This is the main job behind ``twinweave fit`` and ``make demo``: a frame of cleaned
SCADA observations goes in, one calibrated twin per turbine comes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from twinweave.core import (
    CensoredNormal,
    ProvenanceSink,
    ResidualCorrelation,
    Twin,
    coverage_by_bin,
    scores,
)
from twinweave.domains.wind._power_curve import (
    REFERENCE_DENSITY,
    MethodOfBins,
    air_density,
    power_curve_emulator,
    pressure_at_elevation,
    turbine_schema,
)
from twinweave.transfer import DEFAULT_KIND, Population, fleet_emulator
from twinweave.transfer._records import check_type

if TYPE_CHECKING:
    from twinweave.models import BayesianBasisRegression

#: One year of 10-minute readings: the memory of a live twin's forgetting factor.
READINGS_PER_YEAR = 52_560


@dataclass(frozen=True)
class TurbineSpec:
    """What a turbine twin needs to know about its asset.

    Parameters
    ----------
    asset_id
        The turbine's name in the data.
    rated_power
        [kW]
    elevation
        Site elevation above sea level [m], for the standard-atmosphere pressure.
    """

    asset_id: str
    rated_power: float
    elevation: float = 0.0

    @property
    def site_pressure(self) -> float:
        """[Pa]"""
        return pressure_at_elevation(self.elevation)

    @classmethod
    def from_twin(cls, twin: Twin) -> TurbineSpec:
        """The spec a turbine twin was built from, read back from its schema."""
        values = {p.name: p.value for p in twin.schema.properties}
        rated, elevation = values.get("rated_power"), values.get("elevation", 0.0)
        if not isinstance(rated, float | int) or not isinstance(elevation, float | int):
            raise ValueError(
                f"twin {twin.twin_id!r}: expected numeric properties rated_power and "
                f"elevation in its schema, got {values}"
            )
        return cls(twin.twin_id, float(rated), float(elevation))


def model_inputs(observations: pd.DataFrame, rated_power: float) -> dict[str, np.ndarray]:
    """Columns the power-curve emulator reads, power clipped to ``[0, rated_power]``.

    Negative SCADA power is the turbine's own consumption while idle; delivered power is
    zero then, which is the quantity the twin predicts. The readings' ``time`` (UTC, as
    ``datetime64[ns]``) is kept: the twin learns and applies its residuals' correlation
    in time from it.
    """
    columns: dict[str, np.ndarray] = {
        "wind_speed": observations["wind_speed"].to_numpy(np.float64),
        "power": np.clip(observations["power"].to_numpy(np.float64), 0.0, rated_power),
    }
    if "time" in observations:
        times = pd.to_datetime(observations["time"], utc=True).dt.tz_localize(None)
        columns["time"] = times.to_numpy("datetime64[ns]")
    for optional in ("temp_air", "wind_direction", "air_density", "pressure"):
        if optional in observations:
            columns[optional] = observations[optional].to_numpy(np.float64)
    return columns


def site_mean_density(observations: pd.DataFrame, site_pressure: float) -> float:
    """Mean air density [kg/m^3] over the readings with a temperature, else the reference."""
    if "temp_air" not in observations:
        return REFERENCE_DENSITY
    rho = air_density(observations["temp_air"].to_numpy(np.float64), site_pressure)
    finite = rho[np.isfinite(rho)]
    return float(finite.mean()) if finite.size else REFERENCE_DENSITY


def turbine_emulator(
    spec: TurbineSpec,
    training: pd.DataFrame,
    *,
    forgetting: float = 1.0,
    use_direction: bool | None = None,
    use_temperature: bool | None = None,
) -> BayesianBasisRegression:
    """The unfitted power-curve emulator of a turbine's twin, configured for its site
    (pressure from its elevation; the training period's mean air density where a
    prediction has no temperature).

    By default (``None``) the curve varies with wind direction and temperature only if
    the training readings have some: a variation learned from none would, given a
    direction or temperature in a prediction, move the curve by hundreds of kW on
    nothing but the prior.
    """
    if use_direction is None:
        use_direction = _has_readings(training, "wind_direction")
    if use_temperature is None:
        use_temperature = _has_readings(training, "temp_air")
    return power_curve_emulator(
        spec.rated_power,
        site_pressure=spec.site_pressure,
        fallback_density=site_mean_density(training, spec.site_pressure),
        use_direction=use_direction,
        use_temperature=use_temperature,
        forgetting=forgetting,
    )


def _has_readings(observations: pd.DataFrame, column: str) -> bool:
    return column in observations and bool(
        np.isfinite(observations[column].to_numpy(np.float64)).any()
    )


def build_turbine_twin(
    spec: TurbineSpec,
    training: pd.DataFrame,
    *,
    forgetting: float = 1.0,
    recorder: ProvenanceSink | None = None,
    population: Population | None = None,
    kind: str = DEFAULT_KIND,
) -> Twin:
    """An unfitted twin whose emulator is configured from the training period's site.

    The twin learns its residuals' correlation in time from the readings it assimilates
    (:class:`~twinweave.core.Twin`'s ``residual_correlation``): 10-minute power
    residuals have lag-one autocorrelation about 0.6 and some correlation that lasts for
    days, which is what the uncertainty of a month's energy depends on.

    With ``population`` (a fleet fit's, from statistics of twins built as this one is),
    the twin starts from what its fleet knows of turbines of ``kind`` rather than from
    a generic power curve (:func:`twinweave.transfer.fleet_emulator`): a new turbine
    with a day of readings predicts nearly as well as its fleet's turbines do. Its curve
    then varies with direction and temperature as the fleet's twins' do, even before it
    has readings of them (``training`` may be empty).
    """
    emulator = turbine_emulator(spec, training, forgetting=forgetting)
    if population is not None:
        check_type(population, Population, "population", "a Population (a fit's .population)")
        emulator = fleet_emulator(
            _with_fleet_terms(emulator, spec, training, forgetting, population), population, kind
        )
    schema = turbine_schema(spec.rated_power, elevation=spec.elevation)
    return Twin(
        spec.asset_id,
        schema,
        emulator,
        recorder=recorder,
        residual_correlation=ResidualCorrelation(),
    )


def _with_fleet_terms(
    emulator: BayesianBasisRegression,
    spec: TurbineSpec,
    training: pd.DataFrame,
    forgetting: float,
    population: Population,
) -> BayesianBasisRegression:
    """``emulator`` with the direction and temperature terms of the fleet's twins: a
    turbine born into its fleet has the variations the fleet learned, whether or not its
    own readings (none yet, or no temperature sensor) have those inputs."""
    n_features = population.prior.n_features
    if emulator.n_features == n_features:
        return emulator
    for use_direction, use_temperature in ((True, True), (True, False), (False, True)):
        candidate = turbine_emulator(
            spec,
            training,
            forgetting=forgetting,
            use_direction=use_direction,
            use_temperature=use_temperature,
        )
        if candidate.n_features == n_features:
            return candidate
    return emulator  # another design: fleet_emulator says how it differs


def fit_baseline(spec: TurbineSpec, training: pd.DataFrame) -> MethodOfBins:
    """The IEC 61400-12-1 method-of-bins curve on the same data (the comparison)."""
    baseline = MethodOfBins(
        rated_power=spec.rated_power,
        site_pressure=spec.site_pressure,
        fallback_density=site_mean_density(training, spec.site_pressure),
    )
    return baseline.update(model_inputs(training, spec.rated_power))


def weekly_blocks(observations: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Consecutive calendar weeks (Monday 00:00 UTC) of ``observations``."""
    # 1970-01-05 was a Monday: whole weeks since then, counted in UTC.
    since = observations["time"].dt.tz_convert("UTC") - pd.Timestamp("1970-01-05", tz="UTC")
    week = since // pd.Timedelta(days=7)
    for _, block in observations.groupby(week.to_numpy(), sort=True):
        yield block


def live_predictions(twin: Twin, evaluation: pd.DataFrame, rated_power: float) -> CensoredNormal:
    """Week-ahead predictions of a twin that keeps assimilating, as a twin runs.

    Each week is predicted from everything assimilated before it, then assimilated.
    The twin is updated in place (use a branch to keep the original).
    """
    parts: list[CensoredNormal] = []
    for block in weekly_blocks(evaluation):
        inputs = model_inputs(block, rated_power)
        parts.append(twin.predict(inputs))
        twin.update(inputs)
    return CensoredNormal.concatenate(parts)


def evaluation_scores(
    predictive: CensoredNormal, observations: pd.DataFrame, rated_power: float
) -> dict[str, float]:
    """Scores plus the lowest and highest per-bin coverage over 3-15 m/s (1 m/s bins),
    each with its bin's number of readings (``coverage90_min_bin_n``,
    ``coverage90_max_bin_n``): a bin of few readings may be far from 0.9 by chance."""
    y = np.clip(observations["power"].to_numpy(np.float64), 0.0, rated_power)
    result = scores(predictive, y)
    coverage, counts = coverage_by_bin(
        predictive, y, observations["wind_speed"].to_numpy(np.float64), np.arange(3.0, 16.0)
    )
    populated = counts > 0
    for name, pick in (("min", np.argmin), ("max", np.argmax)):
        if populated.any():
            k = int(np.flatnonzero(populated)[pick(coverage[populated])])
            result[f"coverage90_{name}_bin"] = float(coverage[k])
            result[f"coverage90_{name}_bin_n"] = float(counts[k])
        else:
            result[f"coverage90_{name}_bin"] = float("nan")
            result[f"coverage90_{name}_bin_n"] = 0.0
    return result
