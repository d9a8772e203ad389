"""Normal-operation filters for wind turbine SCADA: downtime, curtailment and icing.

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

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from twinweave.core import usual_step_hours
from twinweave.data import (
    Check,
    DeadChannel,
    DuplicateTimestamps,
    FrozenSensor,
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


@dataclass(frozen=True)
class Icing:
    """Quarantine readings of a turbine whose rotor is probably iced.

    Ice on the blades spoils their profile: the turbine produces clearly less than its
    ice-free curve while the air is at or below freezing. Following the IEA Wind Task 19
    ice loss method (T19IceLossMethod; IEA Wind TCP Task 19, *Wind Energy in Cold
    Climates*), the ice-free reference is each turbine's own power at air temperatures
    above ``reference_temp_min``: its ``quantile`` (P10) of power per
    ``bin_width`` wind-speed bin. A reading belongs to an icing event when the air is
    below ``temp_max`` and power is below the reference P10 of its bin for at least
    ``min_minutes`` (Task 19: three consecutive 10-minute readings). IEC
    61400-12-1:2017, clause 8.5, rejects data taken in icing conditions.

    Time, not a count of readings, sets the span, so any cadence is judged alike: each
    reading stands for its turbine's usual step (the most frequent time between its
    readings), or less where its neighbours are closer; a run ends where a reading is
    missing (a gap over the usual step by more than 1 %), and lasts as long as its
    readings together. So three 10-minute readings make an event, and so does one
    hourly reading. A turbine with fewer than two readings has no step and flags
    nothing, and a stretch of hourly readings in a turbine's 10-minute file is read as
    10-minute readings with gaps (whether each stood for an hour the times cannot tell).

    The check needs ``temp_air``; the variable reported in the quarantine is ``power``.
    Bins with fewer than ``min_reference`` ice-free readings flag nothing. The reference
    is taken from the readings checked together (a file's, at ingest): a reading may be
    kept or quarantined depending on readings later than it in the same file, which a
    twin trained on the earlier part alone would not have seen.

    Parameters
    ----------
    temp_max
        Air temperature below which ice can form on the rotor [degC].
    wind_speed_min
        Wind speed above which the turbine should be producing [m/s]; below it, an idling
        rotor's power says nothing about ice.
    reference_temp_min
        Air temperature above which readings are taken as ice-free [degC].
    quantile
        Quantile of ice-free power per bin below which power counts as lost [-].
    min_minutes
        Shortest run of consecutive suspect readings that counts as an icing event
        [min].
    bin_width
        Width of the wind-speed bins of the reference [m/s].
    min_reference
        Fewest ice-free readings a bin needs to be used.
    """

    temp_max: float = 0.0
    wind_speed_min: float = 3.5
    reference_temp_min: float = 3.0
    quantile: float = 0.1
    min_minutes: float = 30.0
    bin_width: float = 0.5
    min_reference: int = 20

    def __post_init__(self) -> None:
        if not self.reference_temp_min >= self.temp_max:
            raise ValueError(
                f"Icing: expected reference_temp_min >= temp_max, got "
                f"{self.reference_temp_min} < {self.temp_max} degC"
            )
        if not 0 < self.quantile < 1:
            raise ValueError(f"Icing: expected quantile in (0, 1), got {self.quantile}")
        if not (math.isfinite(self.min_minutes) and self.min_minutes > 0):
            raise ValueError(
                f"Icing: min_minutes: expected a positive number of minutes, got {self.min_minutes}"
            )

    @property
    def name(self) -> str:
        return "icing"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        wind_speed = require_column(frame, "wind_speed", self.name)
        power = require_column(frame, "power", self.name)
        temp = require_column(frame, "temp_air", self.name)
        if "asset_id" not in frame.columns or "time" not in frame.columns:
            raise KeyError(
                f"check {self.name!r} needs columns 'asset_id' and 'time'; the frame has "
                f"{list(frame.columns)}"
            )
        asset = pd.factorize(frame["asset_id"])[0]
        finite = np.isfinite(wind_speed) & np.isfinite(power) & np.isfinite(temp)
        # Non-finite and absurd speeds (an inf or 1e300 cell, quarantined by the range
        # check) are bounded before binning: they overflowed the division or the integer
        # cast, with numpy's bare warnings on stderr.
        bounded = np.clip(np.where(finite, wind_speed, 0.0), -1e6, 1e6)
        speed_bin = np.where(finite, np.floor(bounded / self.bin_width), -1).astype(np.int64)
        reference = finite & (temp > self.reference_temp_min) & (power > 0.0)
        grouped = pd.Series(power[reference]).groupby([asset[reference], speed_bin[reference]])
        table = pd.DataFrame(
            {"p_ref": grouped.quantile(self.quantile), "n_ref": grouped.size()}
        ).query("n_ref >= @self.min_reference")
        index = pd.MultiIndex.from_arrays([asset, speed_bin])
        p_ref = table["p_ref"].reindex(index).to_numpy(np.float64)
        suspect = (
            finite
            & (wind_speed > self.wind_speed_min)
            & (temp < self.temp_max)
            & (power < np.nan_to_num(p_ref, nan=-np.inf))
        )
        # Runs of suspect readings, per asset in time order, without a missing reading;
        # a reading without a time or an asset belongs to no run.
        time_ns = np.asarray(pd.DatetimeIndex(frame["time"]).as_unit("ns").asi8)
        placed = np.flatnonzero((asset >= 0) & (time_ns != _NAT))
        order = placed[np.lexsort((time_ns[placed], asset[placed]))]
        sorted_time, sorted_asset = time_ns[order], asset[order]
        usual = _usual_steps_ns(sorted_time, sorted_asset)[sorted_asset]
        gap = np.diff(sorted_time).astype(np.float64)
        same_asset = sorted_asset[1:] == sorted_asset[:-1]
        # Within 1 %: a logger's jitter of a second is no missing reading.
        step_ok = gap <= 1.01 * usual[1:]
        sorted_suspect = suspect[order]
        continues = sorted_suspect[1:] & sorted_suspect[:-1] & step_ok & same_asset
        breaks = np.concatenate(([True], ~continues))[: sorted_time.size]  # none if empty
        run = np.cumsum(breaks) - 1
        run_length = np.bincount(run)[run]
        # Each reading lasts its asset's usual step, or less where its neighbours are
        # closer (10-minute readings in a file of hourly ones); NaN without a step.
        apart = np.where(same_asset & (gap > 0), gap, np.inf)
        nearest = np.minimum(np.append(apart, np.inf), np.insert(apart, 0, np.inf))
        lasts = np.minimum(usual, nearest)  # NaN stays NaN
        minutes = np.bincount(run, weights=lasts)[run] / 60e9
        iced = np.zeros(len(frame), dtype=bool)
        iced[order] = sorted_suspect & (minutes >= self.min_minutes)
        length = np.zeros(len(frame), dtype=np.int64)
        length[order] = run_length
        span = np.zeros(len(frame))
        span[order] = np.round(minutes, 1)
        return quarantine_rows(
            frame,
            iced,
            check=self.name,
            variable="power",
            value=power,
            reason="power = {value} kW at wind_speed = {wind_speed} m/s and temp_air = "
            "{temp_air} degC, below the ice-free P"
            f"{round(100 * self.quantile)}"
            " of {p_ref} kW for {run} readings in a row ({minutes} min); expected power at "
            f"or above the ice-free curve when temp_air < {self.temp_max} degC (probable "
            "rotor icing)",
            fields={"p_ref": np.round(p_ref, 1), "run": length, "minutes": span},
        )


_NAT = np.iinfo(np.int64).min  # NaT as integer nanoseconds


def _usual_steps_ns(time_ns: NDArray[np.int64], asset: NDArray[np.intp]) -> NDArray[np.float64]:
    """Each asset's usual step between readings [ns] (:func:`usual_step_hours`), NaN for
    an asset with no two readings at different times; ``asset`` sorted."""
    n_assets = int(asset.max()) + 1 if asset.size else 0
    bounds = np.searchsorted(asset, np.arange(n_assets + 1))
    steps = np.full(n_assets, np.nan)
    for index in range(n_assets):
        hours = usual_step_hours(time_ns[bounds[index] : bounds[index + 1]] / 1e9)
        if hours is not None:
            steps[index] = hours * 3600e9
    return steps


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
       sensor filter); ``DeadChannel("power")``: power held at one value above 0 kW for
       3 hours or more (a live turbine's never is); and ``FrozenSensor("temp_air")``: a
       thermometer that holds one value for 4 hours or more has its temperature
       blanked, and the reading is kept.
    5. :class:`Downtime` with its defaults (``wind_speed >= 4`` m/s, ``power <= 0`` kW).
    6. :class:`Curtailment` (``pitch > 5`` degree, ``power < 0.9 * rated`` and
       ``wind_speed > 3.5`` m/s).
    7. :class:`Icing` with its defaults (below 0 degC, power under the ice-free P10 for
       30 minutes or more).

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
     'dead_channel', 'frozen_sensor', 'downtime', 'curtailment', 'icing']
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
        DeadChannel("power"),
        *((FrozenSensor("temp_air"),) if has("temp_air") else ()),
        Downtime(),
        *((Curtailment(rated_power),) if has("pitch") else ()),
        *((Icing(),) if has("temp_air") else ()),
    )
