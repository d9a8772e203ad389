"""Normal-operation filters for wind turbine SCADA: downtime and curtailment.

A power curve describes a turbine that is available and free to produce. IEC
61400-12-1:2017, clause 8.5 (data rejection), excludes data recorded while the turbine
is not in normal operation: faults, manual stops, maintenance, test modes. SCADA
10-minute averages rarely carry reliable status codes, so the states are recognised
from the signals themselves, in the spirit of OpenOA's ``window_range_flag`` (a reading
is rejected when one signal lies in a window while another lies outside its normal
range; Perr-Sauer et al. 2021, JOSS 6(58), 2171, doi:10.21105/joss.02171).

The default thresholds were tuned on the La Haute Borne SCADA data shipped with
twinweave (Senvion MM82, 2050 kW rated).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from twinweave.data import (
    Check,
    DuplicateTimestamps,
    RangeCheck,
    RequireFinite,
    StuckSensor,
    quarantine_rows,
    require_column,
)


@dataclass(frozen=True)
class Downtime:
    """Quarantine readings of a stopped turbine: no power while the wind blows.

    A turbine producing nothing (``power <= power_max``) while the wind speed is well
    above cut-in (``wind_speed >= wind_speed_min``) is unavailable: stopped, faulted or
    in maintenance. IEC 61400-12-1:2017, clause 8.5, rejects such data; the test is
    OpenOA's ``window_range_flag`` applied with a window on wind speed and a floor on
    power.

    Parameters
    ----------
    wind_speed_min
        Wind speed above which an available turbine produces [m/s]; set well above
        cut-in (3 m/s for the MM82) so that start-up transients are not flagged.
    power_max
        Power at or below which the turbine counts as producing nothing [kW].
    """

    wind_speed_min: float = 4.0
    power_max: float = 0.0

    @property
    def name(self) -> str:
        return "downtime"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        wind_speed = require_column(frame, "wind_speed", self.name)
        power = require_column(frame, "power", self.name)
        return quarantine_rows(
            frame,
            (wind_speed >= self.wind_speed_min) & (power <= self.power_max),
            check=self.name,
            variable="power",
            value=power,
            reason="power = {value} kW at wind_speed = {wind_speed} m/s; expected power > "
            f"{self.power_max} kW when wind_speed >= {self.wind_speed_min} m/s "
            "(the turbine is unavailable: stopped, faulted or in maintenance)",
        )


@dataclass(frozen=True)
class Curtailment:
    """Quarantine readings of a turbine limited below what the wind allows.

    Below rated power a pitch-regulated turbine holds its blades near fine pitch (about
    0 degree) to extract all it can. Blades pitched out (``pitch > pitch_min``) while
    power is below ``power_fraction`` of rated and the wind is above cut-in mean the
    controller is shedding power: curtailment, derating or a power limitation. Such data
    is not normal operation (IEC 61400-12-1:2017, clause 8.5) and would bias a power
    curve low. The variable reported in the quarantine is ``pitch``.

    Parameters
    ----------
    rated_power
        Rated power of the turbine [kW].
    pitch_min
        Pitch above which blades count as pitched out below rated [degree].
    power_fraction
        Fraction of rated power below which pitching out is not explained by the power
        controller approaching rated [-].
    wind_speed_min
        Wind speed above which the turbine should be producing [m/s]; below it, blades
        rest feathered while idling.
    """

    rated_power: float
    pitch_min: float = 5.0
    power_fraction: float = 0.9
    wind_speed_min: float = 3.5

    def __post_init__(self) -> None:
        if not self.rated_power > 0:
            raise ValueError(f"Curtailment: expected rated_power > 0 kW, got {self.rated_power}")
        if not 0 < self.power_fraction <= 1:
            raise ValueError(
                f"Curtailment: expected power_fraction in (0, 1], got {self.power_fraction}"
            )

    @property
    def name(self) -> str:
        return "curtailment"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        pitch = require_column(frame, "pitch", self.name)
        power = require_column(frame, "power", self.name)
        wind_speed = require_column(frame, "wind_speed", self.name)
        limit = self.power_fraction * self.rated_power
        mask = (pitch > self.pitch_min) & (power < limit) & (wind_speed > self.wind_speed_min)
        return quarantine_rows(
            frame,
            mask,
            check=self.name,
            variable="pitch",
            value=pitch,
            reason="pitch = {value} degree with power = {power} kW at wind_speed = "
            f"{{wind_speed}} m/s; expected pitch <= {self.pitch_min} degree while power is "
            f"below {self.power_fraction:.0%} of rated ({limit:g} kW) and wind_speed > "
            f"{self.wind_speed_min} m/s (blades pitched out: curtailment or derating)",
        )


def normal_operation_checks(
    rated_power: float, variables: Collection[str] | None = None
) -> tuple[Check, ...]:
    """The default check chain for a turbine's SCADA readings, in the order run.

    1. ``RequireFinite(("wind_speed", "power"))``: the power curve needs both;
       ``temp_air`` may be missing (the emulator falls back to the site's mean density).
    2. Range checks: ``wind_speed`` in [0, 40] m/s (anemometer and cut-out limits),
       ``power`` in [-100, 1.05 * rated] kW (an idle turbine draws up to ~100 kW of
       auxiliary power, kept and clipped to zero by the model; the controller holds
       power within a few per cent of rated), ``temp_air`` in [-40, 50] degC (the
       operating envelope of standard turbines; a reading outside it is a sensor fault,
       and the whole reading is quarantined).
    3. :class:`~twinweave.data.DuplicateTimestamps`.
    4. ``StuckSensor("wind_speed", 3)``: a frozen anemometer (OpenOA's unresponsive
       sensor filter).
    5. :class:`Downtime` with its defaults (``wind_speed >= 4`` m/s, ``power <= 0`` kW).
    6. :class:`Curtailment` (``pitch > 5`` degree, ``power < 0.9 * rated`` and
       ``wind_speed > 3.5`` m/s).

    Parameters
    ----------
    rated_power
        Rated power of the turbine [kW].
    variables
        The variables the data has. When given, the checks of an absent optional
        variable are left out: without ``temp_air`` its range check, without ``pitch``
        the curtailment check (curtailed readings then stay in; say so to the user).
        ``wind_speed`` and ``power`` are always required.

    Examples
    --------
    >>> [check.name for check in normal_operation_checks(2050.0)]  # doctest: +NORMALIZE_WHITESPACE
    ['missing', 'range', 'range', 'range', 'duplicate_timestamp', 'stuck_sensor',
     'downtime', 'curtailment']
    """
    present = None if variables is None else set(variables)

    def has(name: str) -> bool:
        return present is None or name in present

    return (
        RequireFinite(("wind_speed", "power")),
        RangeCheck("wind_speed", 0.0, 40.0),
        RangeCheck("power", -100.0, 1.05 * rated_power),
        *((RangeCheck("temp_air", -40.0, 50.0),) if has("temp_air") else ()),
        DuplicateTimestamps(),
        StuckSensor("wind_speed", n_repeats=3),
        Downtime(),
        *((Curtailment(rated_power),) if has("pitch") else ()),
    )
