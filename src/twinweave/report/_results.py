"""Typed inputs of the demo report: one turbine's evaluation, one what-if."""

from __future__ import annotations

import math
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


def _readings_to_judge(target: tuple[float, float]) -> int:
    # A calibrated 90 % interval covers n independent readings with a spread (standard
    # deviation) of sqrt(0.9 * 0.1 / n): from this many on, two spreads fit in the half
    # width of the target band, so a calibrated twin lands in it about 95 % of the time.
    # Readings 10 minutes apart are correlated, so fewer cannot be judged at all and this
    # many are the least to judge by, not a guarantee.
    half_width = (target[1] - target[0]) / 2.0
    return math.ceil(round(4.0 * 0.9 * 0.1 / half_width**2, 6))


#: Fewest readings whose 90 % coverage the report judges (pass/fail): 400.
MIN_READINGS = _readings_to_judge(COVERAGE_TARGET)
#: Fewest readings in a wind-speed bin whose coverage the report judges: 144.
MIN_BIN_READINGS = _readings_to_judge(BIN_COVERAGE_TARGET)


def coverage_verdict(
    value: float, n: float, target: tuple[float, float], n_scored: float | None = None
) -> str:
    """``"pass"`` within ``target``; outside it ``"fail"`` on enough readings
    (:func:`_readings_to_judge`), else ``"few"``: too few to tell from chance; ``""`` for
    no value. ``n_scored``: the readings scored in all where ``n`` are a part of them (a
    wind-speed bin's): under :data:`MIN_READINGS`, a part is not judged either (two days
    of readings lie too close in time to count for their number)."""
    if not math.isfinite(value):
        return ""
    if target[0] <= value <= target[1]:
        return "pass"
    enough = n >= _readings_to_judge(target)
    return "fail" if enough and (n_scored is None or n_scored >= MIN_READINGS) else "few"


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
#: Optional columns of ``evaluation``: the live twin's 90 % interval [kW].
LIVE_INTERVAL_COLUMNS = ("live_q05", "live_q95")
POWER_CURVE_COLUMNS = ("wind_speed", "mean", "q05", "q95", "baseline_mean")
#: Optional column of ``power_curve``: whether the twin has readings near the wind speed.
SEEN_COLUMN = "seen"
#: Scores every turbine reports for the twin; each also appears prefixed ``baseline_``.
SCORE_NAMES = ("rmse_kw", "crps_kw", "coverage90", "log_likelihood")
REQUIRED_METRICS = SCORE_NAMES + tuple("baseline_" + name for name in SCORE_NAMES)
#: Scores of the live twin (each prefixed ``live_``), shown where every turbine has them.
LIVE_SCORES = tuple("live_" + name for name in (*SCORE_NAMES, "coverage90_min_bin"))
#: How the page names a what-if's two branches (its columns say ``baseline_`` and
#: ``scenario_``): "baseline" alone is the IEC method of bins elsewhere on the page.
# "Stored", not "live": on the demo's page the live twin is the one that assimilates
# week by week, and the what-if's baseline is the twin as fitted (the frozen one).
BRANCH_LABELS = {"baseline": "stored twin", "scenario": "what-if branch"}
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


def _require_aware(value: object, name: str) -> pd.Timestamp:
    if not isinstance(value, pd.Timestamp) or value.tz is None:
        raise ValueError(f"{name}: expected a time-zone-aware pandas Timestamp, got {value!r}")
    return value.tz_convert("UTC")


@dataclass(frozen=True)
class Periods:
    """The readings a turbine's twin and IEC baseline were fitted on, and where its
    scoring starts.

    Parameters
    ----------
    trained_from
        Time of the first reading the twin and the baseline were fitted on (UTC), or
        ``None`` for a twin born into its fleet without readings of its own.
    trained_until
        End (exclusive) of the readings the twin was fitted on (UTC).
    scored_from
        Start of the scored readings (UTC), at or after ``trained_until``. The live
        twin assimilates the readings in between before it is scored; the frozen twin
        does not.
    n_trained
        Readings the twin was fitted on (and its baseline, unless ``n_baseline``).
    n_baseline
        For a twin without readings of its own (``n_trained`` 0): the readings from
        ``trained_until`` to ``scored_from`` the baseline was fitted on, which the live
        twin assimilates and the frozen twin never saw. ``None`` otherwise.

    Raises
    ------
    ValueError
        If a time is not time-zone aware, the times are not in order, or a twin without
        readings has no readings for its baseline.
    """

    trained_from: pd.Timestamp | None
    trained_until: pd.Timestamp
    scored_from: pd.Timestamp
    n_trained: int
    n_baseline: int | None = None

    def __post_init__(self) -> None:
        for name in ("trained_from", "trained_until", "scored_from"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _require_aware(getattr(self, name), name))
        start = self.trained_from
        if not (
            (start is None or start < self.trained_until)
            and (self.trained_until <= self.scored_from)
        ):
            raise ValueError(
                f"trained_until: expected trained_from < trained_until <= scored_from, got "
                f"{self.trained_from}, {self.trained_until}, {self.scored_from}"
            )
        born = start is None or self.n_trained == 0
        if born != (self.n_baseline is not None) or (born and not self.gap):
            raise ValueError(
                "n_baseline: expected the baseline's readings (between trained_until and "
                "scored_from) exactly for a twin without readings of its own (trained_from "
                f"None, n_trained 0), got n_baseline {self.n_baseline} with {self.n_trained} "
                "readings"
            )

    @property
    def gap(self) -> bool:
        """Whether readings between training and scoring are assimilated by the live
        twin only."""
        return self.trained_until < self.scored_from

    def describe(self) -> str:
        """The periods in a sentence, for the page."""
        until, scored = utc_time_text(self.trained_until), utc_time_text(self.scored_from)
        if self.n_baseline is not None:
            return (
                f"The twin was born into its fleet with no readings of its own before {until}: "
                "it predicts from what its fleet knows. The IEC baseline, which needs "
                f"readings, is fitted on the {self.n_baseline:,} readings from {until} to "
                f"before {scored}, which the live twin assimilates before it is scored and "
                f"the frozen twin never saw; scored from {scored}."
            )
        assert self.trained_from is not None  # a twin with readings has a first one
        text = (
            f"Twin and IEC baseline fitted on the same {self.n_trained:,} readings, from "
            f"{self.trained_from:%Y-%m-%d %H:%M} UTC to before {until}; scored from {scored}"
        )
        if self.gap:
            text += (
                f". The live twin first assimilates the readings from {until} to {scored}; "
                "the frozen twin and the baseline do not"
            )
        return text + "."

    def to_json(self) -> dict[str, str | int | None]:
        """The periods as ISO 8601 strings and counts, for ``metrics.json``."""
        return {
            "trained_from": None if self.trained_from is None else self.trained_from.isoformat(),
            "trained_until": self.trained_until.isoformat(),
            "scored_from": self.scored_from.isoformat(),
            "n_trained": self.n_trained,
            # The baseline's readings where they are not the twin's (a twin born without).
            "n_baseline": self.n_trained if self.n_baseline is None else self.n_baseline,
            "live_assimilates_from": self.trained_until.isoformat() if self.gap else None,
        }


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
        underperformance alarm); optionally ``live_q05``, ``live_q95`` [kW], the live
        twin's 90 % interval, whose coverage per wind-speed bin the page then judges.
        NaN marks a missing value.
    metrics
        Scores on the held-out readings, for the twin: ``rmse_kw``, ``crps_kw`` [kW],
        ``coverage90`` [-] (fraction inside the central 90 % interval),
        ``log_likelihood`` [nats per reading]; and the same prefixed ``baseline_`` for
        the baseline. ``n`` (readings scored) weights the pooled scores when present;
        other entries are written to ``metrics.json`` unchanged.
    power_curve
        The curves on a grid of ``wind_speed`` [m/s]: ``mean``, ``q05``, ``q95`` [kW] of
        the twin and ``baseline_mean`` [kW] of the baseline; optionally ``seen`` (bool,
        whether the twin has readings near the wind speed: elsewhere it extrapolates).
    periods
        What the twin and the baseline were fitted on and where scoring starts, or
        None where it is not known.
    monitored
        Whether the underperformance monitor watched the turbine (``anomaly_score`` and
        ``alarm`` are its); ``False`` for one it left out, whose section then says so.

    Raises
    ------
    ValueError
        If a column or score is missing, or ``time`` is not in UTC.
    """

    asset_id: str
    evaluation: pd.DataFrame
    metrics: Mapping[str, float]
    power_curve: pd.DataFrame
    periods: Periods | None = None
    monitored: bool = True

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
    caveats
        What the reader should know to weigh the quantities (gaps in the readings,
        wind speeds where the twin extrapolates), a sentence each.

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
    caveats: tuple[str, ...] = ()

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
            object.__setattr__(self, name, _require_aware(getattr(self, name), name))
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
            f"{self.monitored_until:%Y-%m-%d %H:%M} UTC, where a turbine has readings (the "
            "turbine sections say which each was scored on)."
        )

    def to_json(self) -> dict[str, str]:
        """The three times as ISO 8601 strings, for ``metrics.json``."""
        return {
            "calibrated_from": self.calibrated_from.isoformat(),
            "monitored_from": self.monitored_from.isoformat(),
            "monitored_until": self.monitored_until.isoformat(),
        }
