"""Numbers the report derives from the turbines' evaluations: pooled scores, bins, days."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from twinweave.report._results import LIVE_SCORES, SCORE_NAMES, SEEN_COLUMN, TurbineResult

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Edges [m/s] of the 1 m/s wind-speed bins of the calibration plot.
CALIBRATION_EDGES = np.arange(3.0, 16.0, 1.0)


def _values(frame: pd.DataFrame, column: str) -> FloatArray:
    return np.asarray(pd.to_numeric(frame[column], errors="coerce"), dtype=np.float64)


def alarm_flags(frame: pd.DataFrame) -> NDArray[np.bool_]:
    """The ``alarm`` column as booleans, missing values read as no alarm."""
    return np.asarray(frame["alarm"].astype("boolean").fillna(False), dtype=np.bool_)


def n_scored(turbine: TurbineResult) -> float:
    """Readings behind a turbine's scores: ``metrics["n"]``, else the finite readings."""
    if "n" in turbine.metrics:
        return turbine.metrics["n"]
    ev = turbine.evaluation
    return float(np.count_nonzero(np.isfinite(_values(ev, "power") + _values(ev, "mean"))))


def was_monitored(turbine: TurbineResult, *, monitor_ran: bool) -> bool:
    """Whether the underperformance monitor watched ``turbine``: it ran, and did not
    leave the turbine out (:attr:`TurbineResult.monitored`)."""
    return monitor_ran and turbine.monitored


def scored_span(turbine: TurbineResult) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Times (UTC) of the first and last reading scored (observed power and a twin's
    prediction), or None without any."""
    ev = turbine.evaluation
    scored = np.isfinite(_values(ev, "power") + _values(ev, "mean"))
    if not scored.any():
        return None
    times = ev["time"][scored]
    return pd.Timestamp(times.min()), pd.Timestamp(times.max())


def unseen_runs(curve: pd.DataFrame) -> list[tuple[float, float]]:
    """The wind-speed ranges [m/s] of a power curve where the twin has no readings near
    (``seen`` False), as ``(first, last)`` grid points; none without a ``seen`` column."""
    if SEEN_COLUMN not in curve.columns:
        return []
    curve = curve.sort_values("wind_speed")
    unseen = ~np.asarray(curve[SEEN_COLUMN], dtype=np.bool_)
    speed = curve["wind_speed"].to_numpy(np.float64)
    starts = np.flatnonzero(unseen & ~np.r_[False, unseen[:-1]])
    ends = np.flatnonzero(unseen & ~np.r_[unseen[1:], False])
    return [(float(speed[a]), float(speed[b])) for a, b in zip(starts, ends, strict=True)]


def unseen_wind_speeds(turbine: TurbineResult) -> str:
    """Where the twin's power curve rests on no readings, in words ("above 16.5 m/s"),
    or an empty string where it has readings near every wind speed drawn."""
    curve = turbine.power_curve
    if curve.empty:
        return ""
    low, high = curve["wind_speed"].min(), curve["wind_speed"].max()
    words = []
    for a, b in unseen_runs(curve):
        if b == high and a > low:
            words.append(f"from {a:g} m/s up")
        elif a == low and b < high:
            words.append(f"up to {b:g} m/s")
        else:
            words.append(f"{a:g}–{b:g} m/s")
    return ", ".join(words)


def pooled_scores(turbines: Sequence[TurbineResult]) -> dict[str, float]:
    """Scores over every turbine's readings together, from the per-turbine scores.

    Each turbine is weighted by its number of readings (:func:`n_scored`), so the mean
    scores (CRPS, coverage, log-likelihood) are those of the pooled readings and the
    RMSE is the root of the pooled mean square error. The live twin's scores (prefixed
    ``live_``) are pooled too where every turbine has them.

    Examples
    --------
    >>> import pandas as pd
    >>> from twinweave.report import TurbineResult
    >>> curve = pd.DataFrame(columns=["wind_speed", "mean", "q05", "q95", "baseline_mean"])
    >>> evaluation = pd.DataFrame(
    ...     {"time": pd.to_datetime([], utc=True)}
    ...     | {c: [] for c in ["wind_speed", "power", "mean", "q05", "q95"]}
    ...     | {"baseline_mean": [], "anomaly_score": [], "alarm": []}
    ... )
    >>> scores = {"rmse_kw": 30.0, "crps_kw": 10.0, "coverage90": 0.9, "log_likelihood": -5.0}
    >>> scores |= {"baseline_" + k: v for k, v in scores.items()}
    >>> a = TurbineResult("A", evaluation, scores | {"n": 1.0}, curve)
    >>> b = TurbineResult("B", evaluation, scores | {"n": 3.0, "rmse_kw": 50.0}, curve)
    >>> pooled = pooled_scores([a, b])
    >>> round(pooled["rmse_kw"], 3), pooled["crps_kw"], pooled["n"]
    (45.826, 10.0, 4.0)
    """
    weights = np.array([n_scored(t) for t in turbines], dtype=np.float64)
    total = float(weights.sum())
    pooled: dict[str, float] = {"n": total, "n_turbines": float(len(turbines))}
    prefixes = ["", "baseline_"] + (["live_"] if has_live_scores(turbines) else [])
    for prefix in prefixes:
        for name in SCORE_NAMES:
            key = prefix + name
            values = np.array([t.metrics[key] for t in turbines], dtype=np.float64)
            if total <= 0:
                pooled[key] = float("nan")
            elif name == "rmse_kw":
                pooled[key] = float(np.sqrt(np.sum(weights * values**2) / total))
            else:
                pooled[key] = float(np.sum(weights * values) / total)
    return pooled


def has_live_scores(turbines: Sequence[TurbineResult]) -> bool:
    """Whether every turbine reports the live twin's scores (:data:`LIVE_SCORES`)."""
    return bool(turbines) and all(all(name in t.metrics for name in LIVE_SCORES) for t in turbines)


def within(value: float, target: tuple[float, float]) -> bool:
    """Whether ``value`` lies in the closed interval ``target`` (NaN never does)."""
    return bool(target[0] <= value <= target[1])


@dataclass(frozen=True)
class BinnedCoverage:
    """Coverage of the twin's 90 % interval in each wind-speed bin."""

    edges: FloatArray
    coverage: FloatArray
    counts: IntArray

    @property
    def centres(self) -> FloatArray:
        return np.asarray((self.edges[:-1] + self.edges[1:]) / 2, dtype=np.float64)


def coverage_by_wind_speed(
    evaluation: pd.DataFrame,
    edges: FloatArray = CALIBRATION_EDGES,
    interval: tuple[str, str] = ("q05", "q95"),
) -> BinnedCoverage:
    """Fraction of ``power`` inside the ``interval`` columns (the twin's 90 % interval
    by default) per bin ``[edges[i], edges[i+1])``.

    Readings with a missing value are left out; empty bins give NaN.
    """
    edges = np.asarray(edges, dtype=np.float64)
    speed = _values(evaluation, "wind_speed")
    power = _values(evaluation, "power")
    lo = _values(evaluation, interval[0])
    hi = _values(evaluation, interval[1])
    ok = np.isfinite(speed) & np.isfinite(power) & np.isfinite(lo) & np.isfinite(hi)
    inside = ((power >= lo) & (power <= hi))[ok].astype(np.float64)
    index = np.searchsorted(edges, speed[ok], side="right") - 1
    valid = (index >= 0) & (index < edges.size - 1)
    counts = np.bincount(index[valid], minlength=edges.size - 1).astype(np.int64)
    hits = np.bincount(index[valid], inside[valid], minlength=edges.size - 1)
    coverage = np.full(edges.size - 1, np.nan)
    np.divide(hits, counts, out=coverage, where=counts > 0)
    return BinnedCoverage(edges=edges, coverage=coverage, counts=counts)


def daily_residuals(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Per UTC day: mean residuals of twin and baseline [kW], peak anomaly score, alarm.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``day`` (midnight UTC, without time zone), columns ``residual`` and
        ``baseline_residual`` (mean of observed minus predicted power [kW]), ``n``
        (readings in the mean), ``anomaly_score`` (the day's maximum) and ``alarm``
        (any reading of the day inside an alarm). Days without readings are rows of
        NaN, so plots show the gap.
    """
    power = _values(evaluation, "power")
    frame = pd.DataFrame(
        {
            "day": evaluation["time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("D"),
            "residual": power - _values(evaluation, "mean"),
            "baseline_residual": power - _values(evaluation, "baseline_mean"),
            "anomaly_score": _values(evaluation, "anomaly_score"),
            "alarm": alarm_flags(evaluation),
        }
    )
    days = frame.groupby("day").agg(
        residual=("residual", "mean"),
        baseline_residual=("baseline_residual", "mean"),
        n=("residual", "count"),
        anomaly_score=("anomaly_score", "max"),
        alarm=("alarm", "any"),
    )
    if days.empty:
        return days
    every_day = pd.date_range(days.index.min(), days.index.max(), freq="D", name="day")
    days = days.reindex(every_day)
    days["n"] = days["n"].fillna(0).astype(np.int64)
    days["alarm"] = days["alarm"].astype("boolean").fillna(False).astype(bool)
    return days


def alarm_periods(days: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of consecutive alarm days of :func:`daily_residuals`, as ``[start, end)``."""
    alarm_days = days.index[days["alarm"].to_numpy(dtype=bool)]
    periods: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    one_day = pd.Timedelta(days=1)
    for day in alarm_days:
        start = pd.Timestamp(day)
        if periods and periods[-1][1] == start:
            periods[-1] = (periods[-1][0], start + one_day)
        else:
            periods.append((start, start + one_day))
    return periods


def period_days(periods: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> list[tuple[str, str]]:
    """First and last day (UTC, ``YYYY-MM-DD``) of each ``[start, end)`` of
    :func:`alarm_periods`."""
    one_day = pd.Timedelta(days=1)
    return [(f"{start:%Y-%m-%d}", f"{end - one_day:%Y-%m-%d}") for start, end in periods]


def periods_text(periods: Sequence[tuple[pd.Timestamp, pd.Timestamp]], limit: int = 4) -> str:
    """Days of :func:`alarm_periods`, first and last day (UTC) of each, the first
    ``limit`` named: ``"2015-03-04 to 2015-03-09, 2015-11-21 and 2 more"``."""
    named = [
        first if first == last else f"{first} to {last}"
        for first, last in period_days(periods[:limit])
    ]
    more = f" and {len(periods) - limit} more" if len(periods) > limit else ""
    return ", ".join(named) + more


def subsample_rows(
    n_rows: int, alarm: NDArray[np.bool_], max_points: int, rng: np.random.Generator
) -> NDArray[np.intp]:
    """Sorted row indices, at most ``max_points``, keeping alarm rows visible.

    Alarm rows take up to a quarter of the points, so a rare alarm still shows among
    tens of thousands of normal readings.
    """
    if n_rows <= max_points:
        return np.arange(n_rows)
    alarm_rows = np.flatnonzero(alarm)
    normal_rows = np.flatnonzero(~alarm)
    n_alarm = min(alarm_rows.size, max_points // 4)
    n_normal = min(normal_rows.size, max_points - n_alarm)
    chosen = np.concatenate(
        [
            rng.choice(alarm_rows, n_alarm, replace=False),
            rng.choice(normal_rows, n_normal, replace=False),
        ]
    )
    return np.sort(chosen)
