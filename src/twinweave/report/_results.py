"""Typed inputs of the demo report: one turbine's evaluation, one what-if."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd

#: Data attribution required by the Etalab Open Licence 2.0 for La Haute Borne.
LA_HAUTE_BORNE_ATTRIBUTION = (
    "Contains La Haute Borne wind farm data published by ENGIE "
    "(opendata-renewables.engie.com) under the Etalab Open Licence 2.0."
)

#: Accepted range of the held-out coverage of a nominal 90 % interval.
COVERAGE_TARGET = (0.87, 0.93)
#: Accepted range of the 90 % coverage within one 1 m/s wind-speed bin (fewer points).
BIN_COVERAGE_TARGET = (0.85, 0.95)

EVALUATION_COLUMNS = (
    "time",
    "wind_speed",
    "power",
    "mean",
    "q05",
    "q95",
    "baseline_mean",
    "anomaly_score",
    "alarm",
)
POWER_CURVE_COLUMNS = ("wind_speed", "mean", "q05", "q95", "baseline_mean")
#: Scores every turbine reports for the twin; each also appears prefixed ``baseline_``.
SCORE_NAMES = ("rmse_kw", "crps_kw", "coverage90", "log_likelihood")
REQUIRED_METRICS = SCORE_NAMES + tuple("baseline_" + name for name in SCORE_NAMES)
#: Scores of the live twin (each prefixed ``live_``), shown where every turbine has them.
LIVE_SCORES = tuple("live_" + name for name in (*SCORE_NAMES, "coverage90_min_bin"))
#: How the page names a what-if's two branches (its columns say ``baseline_`` and
#: ``scenario_``): "baseline" alone is the IEC method of bins elsewhere on the page.
BRANCH_LABELS = {"baseline": "live twin", "scenario": "what-if branch"}
WHATIF_COLUMNS = (
    "metric",
    "units",
    "baseline_mean",
    "baseline_lo",
    "baseline_hi",
    "scenario_mean",
    "scenario_lo",
    "scenario_hi",
    "difference_mean",
    "difference_lo",
    "difference_hi",
)
WHATIF_SERIES_COLUMNS = (
    "time",
    "baseline_mean",
    "baseline_lo",
    "baseline_hi",
    "scenario_mean",
    "scenario_lo",
    "scenario_hi",
)


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}, got {list(frame.columns)}")


def _require_utc(frame: pd.DataFrame, name: str) -> None:
    dtype = frame["time"].dtype
    if not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) != "UTC":
        raise ValueError(f"{name}: expected column time as datetime64[ns, UTC], got {dtype}")


@dataclass(frozen=True, eq=False)
class TurbineResult:
    """One turbine's held-out evaluation: readings, predictions, scores, curves.

    Parameters
    ----------
    asset_id
        The turbine's name, e.g. ``"R80711"``.
    evaluation
        One row per held-out reading, columns: ``time`` (datetime64, UTC), ``wind_speed``
        [m/s], ``power`` [kW] observed; ``mean``, ``q05``, ``q95`` [kW] of the twin's
        predictive distribution; ``baseline_mean`` [kW] of the IEC 61400-12-1 baseline;
        ``anomaly_score`` [-] of the monitor; ``alarm`` (bool, inside a detected
        underperformance alarm). NaN marks a missing value.
    metrics
        Scores on the held-out readings, for the twin: ``rmse_kw``, ``crps_kw`` [kW],
        ``coverage90`` [-] (fraction inside the central 90 % interval),
        ``log_likelihood`` [nats per reading]; and the same prefixed ``baseline_`` for
        the baseline. ``n`` (readings scored) weights the pooled scores when present;
        other entries are written to ``metrics.json`` unchanged.
    power_curve
        The curves on a grid of ``wind_speed`` [m/s]: ``mean``, ``q05``, ``q95`` [kW] of
        the twin and ``baseline_mean`` [kW] of the baseline.

    Raises
    ------
    ValueError
        If a column or score is missing, or ``time`` is not in UTC.
    """

    asset_id: str
    evaluation: pd.DataFrame
    metrics: Mapping[str, float]
    power_curve: pd.DataFrame

    def __post_init__(self) -> None:
        _require_columns(self.evaluation, EVALUATION_COLUMNS, "evaluation")
        _require_utc(self.evaluation, "evaluation")
        _require_columns(self.power_curve, POWER_CURVE_COLUMNS, "power_curve")
        missing = [name for name in REQUIRED_METRICS if name not in self.metrics]
        if missing:
            raise ValueError(f"metrics: missing scores {missing}, got {sorted(self.metrics)}")
        # A read-only copy, so the result cannot change after it was checked.
        frozen = MappingProxyType({k: float(v) for k, v in self.metrics.items()})
        object.__setattr__(self, "metrics", frozen)


@dataclass(frozen=True, eq=False)
class WhatIfSummary:
    """A what-if's quantities side by side, each with its central interval.

    Parameters
    ----------
    title
        Short name of the scenario, e.g. ``"Derate R80711 to 1500 kW"``.
    description
        What was changed and over which period, in a sentence or two.
    table
        One row per quantity, columns ``metric``, ``units`` and the mean, lower and
        upper interval bounds (``_mean``, ``_lo``, ``_hi``) of ``baseline``, ``scenario``
        and ``difference`` (scenario minus baseline), in the quantity's units; the frame
        of :meth:`twinweave.core.WhatIfResult.to_frame`.
    series
        Optional time series of the predicted target under both branches: ``time``
        (datetime64, UTC) and ``baseline_mean``, ``baseline_lo``, ``baseline_hi``,
        ``scenario_mean``, ``scenario_lo``, ``scenario_hi``, in the units of
        ``series_label``.
    series_label
        Axis label of ``series``: the quantity and its units.
    level
        Nominal probability of the intervals, e.g. 0.9.

    Raises
    ------
    ValueError
        If a column is missing, ``series.time`` is not in UTC or ``level`` is not in
        (0, 1).
    """

    title: str
    description: str
    table: pd.DataFrame
    series: pd.DataFrame | None = None
    series_label: str = "power [kW]"
    level: float = 0.9

    def __post_init__(self) -> None:
        _require_columns(self.table, WHATIF_COLUMNS, "table")
        if self.series is not None:
            _require_columns(self.series, WHATIF_SERIES_COLUMNS, "series")
            _require_utc(self.series, "series")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level: expected a probability in (0, 1), got {self.level}")


def utc_time_text(time: pd.Timestamp) -> str:
    """A UTC time as short as it can be said, the same in the terminal and on the page:
    the day alone at midnight (``2015-01-05``), else ``2015-06-01 06:00 UTC``."""
    time = time.tz_convert("UTC")
    return f"{time:%Y-%m-%d}" if time == time.normalize() else f"{time:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class MonitorWindow:
    """When the underperformance monitor learned, calibrated and watched.

    Parameters
    ----------
    calibrated_from
        Start of the calibration period (UTC): the monitor's twins learn the readings
        before it, then run live through the period, on which the detectors calibrate.
    monitored_from
        End of the calibration period and start of monitoring (UTC).
    monitored_until
        Time of the last reading monitored (UTC).

    Raises
    ------
    ValueError
        If a time is not time-zone aware or the times are not in order.
    """

    calibrated_from: pd.Timestamp
    monitored_from: pd.Timestamp
    monitored_until: pd.Timestamp

    def __post_init__(self) -> None:
        for name in ("calibrated_from", "monitored_from", "monitored_until"):
            value = getattr(self, name)
            if not isinstance(value, pd.Timestamp) or value.tz is None:
                raise ValueError(
                    f"{name}: expected a time-zone-aware pandas Timestamp, got {value!r}"
                )
            object.__setattr__(self, name, value.tz_convert("UTC"))
        if not self.calibrated_from < self.monitored_from <= self.monitored_until:
            raise ValueError(
                f"monitored_from: expected calibrated_from < monitored_from <= monitored_until, "
                f"got {self.calibrated_from}, {self.monitored_from}, {self.monitored_until}"
            )

    def describe(self) -> str:
        """The window in one sentence, for the page."""
        return (
            f"Underperformance monitor: its twins learn the readings before "
            f"{utc_time_text(self.calibrated_from)}, run live from then and calibrate the "
            f"detectors up to {utc_time_text(self.monitored_from)}; readings are monitored "
            f"from {utc_time_text(self.monitored_from)} to the last, "
            f"{self.monitored_until:%Y-%m-%d %H:%M} UTC."
        )

    def to_json(self) -> dict[str, str]:
        """The three times as ISO 8601 strings, for ``metrics.json``."""
        return {
            "calibrated_from": self.calibrated_from.isoformat(),
            "monitored_from": self.monitored_from.isoformat(),
            "monitored_until": self.monitored_until.isoformat(),
        }
