"""What-if quantities for a turbine, computed from sample paths of power [kW]."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twinweave.core._arguments import is_real

FloatArray = NDArray[np.float64]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (is_real(value) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: expected a positive, finite number, got {value!r}")


#: How far a metric's rated power may lie from the twin's upper bound on power before it
#: is taken for another unit (MW for kW is a factor of 1000; a bound set a little above
#: rated to allow the controller's overshoot is well within).
_RATED_TO_BOUND = 2.0
#: A rated power given to fewer digits than the bound (2.05 MW beside 2050.4 kW).
_ROUNDING = 1e-3


def _check_rated(metric: str, rated_power: float, upper: float, units: str) -> None:
    """Refuse a rated power far from the twin's physical bound on power, ``upper``, or
    above it: the twin's power never reaches it, so hours at rated would be none and the
    capacity factor too low."""
    if not (math.isfinite(upper) and upper > 0):
        return
    units = units or "the twin's units"
    expected = f"expected the rated power in {units} (turbine_metrics({upper:g}) for this twin)"
    if not upper / _RATED_TO_BOUND <= rated_power <= upper * _RATED_TO_BOUND:
        raise ValueError(
            f"{metric}: rated_power {rated_power:g} is far from the twin's bound on power, "
            f"{upper:g} [{units}]; {expected}"
        )
    if rated_power > upper * (1.0 + _ROUNDING):
        raise ValueError(
            f"{metric}: rated_power {rated_power:g} is above the twin's bound on power, "
            f"{upper:g} [{units}], which its predictions never pass; {expected}"
        )


@dataclass(frozen=True)
class Energy:
    """Energy delivered over the paths [MWh].

    Parameters
    ----------
    interval_hours
        Length of each reading's averaging interval [h] (10-minute data: 1/6).
    """

    interval_hours: float = 1.0 / 6.0
    name: str = "energy"
    units: str = "MWh"

    def __post_init__(self) -> None:
        _check_positive(interval_hours=self.interval_hours)

    def __call__(self, paths: FloatArray) -> FloatArray:
        return np.asarray(paths.sum(axis=1) * self.interval_hours / 1000.0, dtype=np.float64)


@dataclass(frozen=True)
class CapacityFactor:
    """Mean power over rated power, per path [-].

    The mean is over the readings present: where readings are missing (quarantined, or
    a gap) it is the rate of the readings there are, not energy over rated power times
    the whole period, which would count the missing time as idle.
    """

    rated_power: float
    name: str = "capacity_factor"
    units: str = "1"

    def __post_init__(self) -> None:
        _check_positive(rated_power=self.rated_power)

    def check(self, upper: float, units: str) -> None:
        _check_rated(self.name, self.rated_power, upper, units)

    def __call__(self, paths: FloatArray) -> FloatArray:
        return np.asarray(paths.mean(axis=1) / self.rated_power, dtype=np.float64)


@dataclass(frozen=True)
class HoursAtRated:
    """Hours with power at or above ``fraction`` of rated power [h].

    The default 0.98 treats the controller's small excursions below the cap as rated
    operation.
    """

    rated_power: float
    interval_hours: float = 1.0 / 6.0
    fraction: float = 0.98
    name: str = "hours_at_rated"
    units: str = "h"

    def __post_init__(self) -> None:
        _check_positive(rated_power=self.rated_power, interval_hours=self.interval_hours)
        if not (is_real(self.fraction) and 0.0 < self.fraction <= 1.0):
            raise ValueError(
                f"fraction: expected a share of rated power in (0, 1], got {self.fraction!r}"
            )

    def check(self, upper: float, units: str) -> None:
        _check_rated(self.name, self.rated_power, upper, units)

    def __call__(self, paths: FloatArray) -> FloatArray:
        at_rated = paths >= self.fraction * self.rated_power
        return np.asarray(at_rated.sum(axis=1) * self.interval_hours, dtype=np.float64)


#: Hours one reading stands for where the inputs do not say: SCADA's 10-minute averages.
READING_HOURS = 1.0 / 6.0


def turbine_metrics(
    rated_power: float, interval_hours: float = READING_HOURS
) -> tuple[Energy, CapacityFactor, HoursAtRated]:
    """The quantities a turbine what-if reports side by side."""
    return (
        Energy(interval_hours),
        CapacityFactor(rated_power),
        HoursAtRated(rated_power, interval_hours),
    )


def coverage_note(times: ArrayLike, n_readings: int, step_hours: float) -> str | None:
    """What a what-if over readings at ``times`` (datetimes) must say when they cover
    less of their span than ``n_readings`` of ``step_hours`` each would: energy and
    hours at rated count only the readings there are."""
    stamps = np.asarray(times, dtype="datetime64[ns]")
    if n_readings < 2 or stamps.size < 2:
        return None
    span = float((stamps.max() - stamps.min()) / np.timedelta64(1, "s")) / 3600.0 + step_hours
    covered = n_readings * step_hours
    if covered >= 0.99 * span:
        return None
    return (
        f"the readings cover {covered:,.{1 if covered < 10 else 0}f} h of the "
        f"{span:,.{1 if span < 10 else 0}f} h from the first to the last "
        f"({covered / span:.0%}): energy and hours at rated count only the readings "
        "present, and capacity factor is their mean power over rated; missing or "
        "quarantined ones are not filled in"
    )


#: Wind speed [m/s] from which turbines cut out: a power curve beyond it knows nothing
#: of that (IEC 61400-1 class turbines cut out at 20-25 m/s).
CUT_OUT_FROM = 20.0


def unseen_note(
    seen: NDArray[np.bool_], wind_speed: ArrayLike, *, from_fleet: bool = False
) -> str | None:
    """What a prediction at ``wind_speed`` must say where the twin has no readings near
    (``seen`` false, from ``BayesianBasisRegression.seen``): there it rests on the
    prior, not on readings. ``from_fleet``: the prior is its fleet's population (a twin
    born into its fleet), which other turbines' readings shaped."""
    if seen.all():
        return None
    unseen = np.asarray(wind_speed, dtype=np.float64)[~seen]
    low, high = unseen.min(), unseen.max()
    where = f"{low:g} m/s" if low == high else f"{low:g}-{high:g} m/s"
    rests_on = (
        "there it predicts from its fleet's population, as a new turbine of the fleet "
        "(an extrapolation too where the fleet had no readings)"
        if from_fleet
        else "there it extrapolates its power curve and prior"
    )
    cut_out = f", and knows nothing of cut-out (from about {CUT_OUT_FROM:g} m/s)"
    return (
        f"{unseen.size} of {seen.size} inputs are at wind speeds the twin has no readings "
        f"{'of its own ' if from_fleet else ''}near ({where}): {rests_on}"
        f"{cut_out if high >= CUT_OUT_FROM else ''}"
    )
