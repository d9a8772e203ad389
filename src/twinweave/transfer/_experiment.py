"""The new-turbine experiment: how much a fleet helps a twin with little data.

Each turbine of a fleet in turn is the new one, with only the first day, week, month or
year of its training year (or no data at all); the other turbines have the whole
training year. Partial pooling (:func:`~twinweave.transfer.fit_central`), no pooling and
complete pooling are fitted from the same statistics and scored on the new turbine's
readings of the evaluation year, as in the fleet studies of Bull et al. (2023),
*Computer-Aided Civil and Infrastructure Engineering* 38(7), 821-848, and Brealy et al.
(2025), arXiv:2502.14527.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from twinweave.core import CensoredNormal
from twinweave.core._scores import observed_values
from twinweave.domains.wind import (
    TurbineSpec,
    model_inputs,
    power_curve_emulator,
    site_mean_density,
)
from twinweave.models import BayesianBasisRegression
from twinweave.transfer._fit import FleetPosterior, complete_pooling, fit_central, no_pooling
from twinweave.transfer._records import FleetPrior, TwinStatistics

#: How much of the training year the new turbine has: its first readings within this
#: span from the year's start (UTC); ``None`` is the whole year, zero no data.
HISTORIES: dict[str, pd.Timedelta | None] = {
    "no data": pd.Timedelta(0),
    "1 day": pd.Timedelta(days=1),
    "1 week": pd.Timedelta(days=7),
    "1 month": pd.Timedelta(days=31),
    "1 year": None,
}
METHODS = ("partial pooling", "no pooling", "complete pooling")

#: Labels readings by period from their times (UTC, ``datetime64[ns]``): the readings
#: of one label share a period effect in the fleet model.
PeriodLabels = Callable[[NDArray[np.datetime64]], NDArray[np.int64]]


Times = NDArray[np.datetime64] | pd.Series | pd.DatetimeIndex


def _utc(times: Times) -> NDArray[np.datetime64]:
    """Times as UTC ``datetime64[ns]`` (pandas times with a zone are converted), with
    none missing: a missing time would make a period of its own."""
    if isinstance(times, pd.Series | pd.DatetimeIndex):
        index = pd.DatetimeIndex(times)
        if index.tz is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        values = index.to_numpy("datetime64[ns]")
    else:
        raw = np.asarray(times)
        if raw.dtype.kind in "biuf":
            # numpy would read numbers as nanoseconds since 1970, every time in 1970.
            raise TypeError(
                f"times: expected datetimes (datetime64 or pandas times), got numbers of "
                f"dtype {raw.dtype} (seconds since 1970? pd.to_datetime(times, unit='s'))"
            )
        values = np.asarray(raw, dtype="datetime64[ns]")
    missing = np.flatnonzero(np.isnat(values))
    if missing.size:
        raise ValueError(
            f"times: expected no missing times, got {missing.size} NaT (first at position "
            f"{int(missing[0])})"
        )
    return values


def calendar_weeks(times: Times) -> NDArray[np.int64]:
    """Calendar week (Monday to Sunday, UTC) of each time, as weeks since 1970-01-05.

    ``times`` are UTC ``datetime64`` values, or pandas times (with a zone: converted).
    """
    days = _utc(times).astype("datetime64[D]").astype(np.int64)
    # 1970-01-01 was a Thursday: day 4 is the first Monday.
    return np.asarray((days - 4) // 7, dtype=np.int64)


def calendar_months(times: Times) -> NDArray[np.int64]:
    """Calendar month (UTC) of each time, as months since 1970-01 (times as for
    :func:`calendar_weeks`)."""
    return np.asarray(_utc(times).astype("datetime64[M]").astype(np.int64), dtype=np.int64)


def joint_log_likelihood(predictive: CensoredNormal, y: ArrayLike) -> float:
    """Log-likelihood of all points together under the predictive, per point [nats].

    Points strictly inside the bounds are scored with their joint Gaussian density,
    the shared factor (the weights' uncertainty) included: ``log N(y | loc, D + F F^T)``
    by the matrix determinant lemma and the Woodbury identity, ``O(n k^2)``. Points at a
    bound (censored: idle or at rated power) add their marginal probability mass; their
    correlation with the rest is left out (it would need a multivariate normal
    probability over thousands of dimensions).

    Unlike the mean of marginal log densities, this score penalises a curve that is
    wrong everywhere at once more than independent errors: it rewards honest parameter
    uncertainty.
    """
    y_arr = np.asarray(y, dtype=np.float64)
    inside = (y_arr > predictive.lower) & (y_arr < predictive.upper)
    total = float(predictive[~inside].log_prob(y_arr[~inside]).sum()) if (~inside).any() else 0.0
    if inside.any():
        residual = y_arr[inside] - predictive.loc[inside]
        noise = predictive.noise_var[inside]
        total += -0.5 * float(residual.size * np.log(2.0 * np.pi) + np.log(noise).sum())
        quadratic = float((residual * residual / noise).sum())
        if predictive.factor is not None:
            factor = predictive.factor[inside]
            scaled = factor / noise[:, None]
            capacitance = np.eye(factor.shape[1]) + factor.T @ scaled
            chol = np.linalg.cholesky(capacitance)
            projected = np.linalg.solve(chol, scaled.T @ residual)
            quadratic -= float(projected @ projected)
            total -= float(np.log(np.diagonal(chol)).sum())
        total -= 0.5 * quadratic
    return total / y_arr.size


def transfer_scores(
    predictive: CensoredNormal, y: ArrayLike, *, level: float = 0.9
) -> dict[str, float]:
    """NMSE, CRPS, joint log-likelihood, interval coverage and width.

    Returns
    -------
    dict
        ``nmse`` (mean squared error over the variance of ``y``), ``crps`` [units],
        ``joint_log_likelihood`` [nats per point], ``coverage`` (of the central
        ``level`` interval), ``interval_width`` (its mean width) [units].
    """
    y_arr = observed_values(predictive, y)
    if y_arr.size < 2 or not np.ptp(y_arr) > 0:
        raise ValueError(
            f"y: expected at least two different values (NMSE divides by their variance), "
            f"got {y_arr.size} value(s), all {y_arr.flat[0] if y_arr.size else 'absent'}"
        )
    lower, upper = predictive.interval(level)
    return {
        "nmse": float(np.mean((y_arr - predictive.mean) ** 2) / np.var(y_arr)),
        "crps": float(np.mean(predictive.crps(y_arr))),
        "joint_log_likelihood": joint_log_likelihood(predictive, y_arr),
        "coverage": float(np.mean((y_arr >= lower) & (y_arr <= upper))),
        "interval_width": float(np.mean(upper - lower)),
    }


@dataclass(frozen=True)
class TransferRow:
    """One method's scores for one new turbine and history.

    Parameters
    ----------
    asset_id
        The new turbine.
    history
        How much of the training year it had (a key of :data:`HISTORIES`).
    method
        ``"partial pooling"``, ``"no pooling"`` or ``"complete pooling"``.
    n_readings
        The new turbine's training readings.
    n_evaluated
        Its readings in the evaluation year.
    nmse, crps, joint_log_likelihood, coverage, interval_width
        See :func:`transfer_scores`; ``crps`` and ``interval_width`` [kW],
        ``joint_log_likelihood`` [nats per point].
    n_rounds
        Rounds of the partial-pooling fit (0 for the baselines): with the new turbine's
        readings, of the refit that starts from the other turbines' population (with the
        whole year every new turbine's fleet is the same, fitted once: from the first new
        turbine's); with no data, of that population's fit from the prior.
    """

    asset_id: str
    history: str
    method: str
    n_readings: int
    n_evaluated: int
    nmse: float
    crps: float
    joint_log_likelihood: float
    coverage: float
    interval_width: float
    n_rounds: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _first(readings: pd.DataFrame, span: pd.Timedelta | None, start: pd.Timestamp) -> pd.DataFrame:
    if span is None:
        return readings
    return readings[readings["time"] < start + span]


def _statistics(
    emulator: BayesianBasisRegression,
    columns: dict[str, np.ndarray],
    periods: PeriodLabels | None,
) -> TwinStatistics:
    fresh = BayesianBasisRegression(**emulator.get_params())
    if columns["power"].size:
        fresh.update(columns)
    if periods is None:
        return TwinStatistics.from_emulator(fresh)
    return TwinStatistics.from_emulator(fresh, readings=columns, periods=periods(columns["time"]))


def _chosen(name: str, values: Sequence[str], allowed: Sequence[str]) -> list[str]:
    """``values`` as a list, each one of ``allowed``; a lone string is refused (it would
    be read letter by letter)."""
    if isinstance(values, str):
        raise TypeError(f"{name}: expected a list of names, got the string {values!r}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"{name}: expected names among {list(allowed)}, got {unknown[0]!r}")
    return list(values)


def _window(year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    return (
        pd.Timestamp(year=year, month=1, day=1, tz="UTC"),
        pd.Timestamp(year=year + 1, month=1, day=1, tz="UTC"),
    )


def new_turbine_experiment(
    observations: pd.DataFrame,
    specs: Mapping[str, TurbineSpec],
    *,
    histories: Sequence[str] = tuple(HISTORIES),
    new_turbines: Sequence[str] | None = None,
    training_year: int = 2014,
    evaluation_year: int = 2015,
    training_window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    evaluation_window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    periods: PeriodLabels | None = calendar_weeks,
    smoothness: float = 4.0,
    twin_noise_prior_count: float = 300.0,
    tol: float = 1e-5,
) -> list[TransferRow]:
    """Score partial, no and complete pooling for each new turbine and history.

    Parameters
    ----------
    observations
        Cleaned normal-operation readings of the fleet (``asset_id``, ``time`` (UTC),
        ``wind_speed`` [m/s], ``power`` [kW], optionally ``temp_air`` [degC],
        ``wind_direction`` [degree]).
    specs
        Every turbine of the fleet, by asset id.
    histories
        Keys of :data:`HISTORIES` to run.
    new_turbines
        Which turbines take the new one's part (default: all, in sorted order).
    training_year, evaluation_year
        Calendar years (UTC) of training and scoring.
    training_window, evaluation_window
        ``[start, end)`` (UTC) of training and scoring, instead of the years (for
        choosing settings within one year). A history is the first readings from the
        training window's start.
    periods
        How partial pooling groups each twin's readings into periods that share a
        period effect (:func:`calendar_weeks`, :func:`calendar_months`); ``None``: no
        period effects (the baselines never have them).
    smoothness, twin_noise_prior_count
        :meth:`FleetPrior.from_emulator`'s.
    tol
        Tolerance of the partial-pooling rounds.

    Returns
    -------
    list of TransferRow
        One per new turbine, history and method. With no data, no pooling is the
        emulator's prior (a generic curve) and partial pooling predicts from the
        population of the other turbines; with data, partial pooling is refitted from
        that population (``fit_central``'s ``start``).
    """
    assets = sorted(specs)
    # Checked before the fits, which take minutes: a slip should not cost them.
    histories = _chosen("histories", histories, list(HISTORIES))
    new_turbines = None if new_turbines is None else _chosen("new_turbines", new_turbines, assets)
    train_start, train_end = training_window or _window(training_year)
    eval_start, eval_end = evaluation_window or _window(evaluation_year)
    emulators: dict[str, BayesianBasisRegression] = {}
    training: dict[str, pd.DataFrame] = {}
    evaluation: dict[str, pd.DataFrame] = {}
    full: dict[str, TwinStatistics] = {}
    # Without period effects partial pooling reads the same statistics as the baselines.
    full_periods: dict[str, TwinStatistics] = {}
    for asset in assets:
        spec = specs[asset]
        frame = observations[observations["asset_id"] == asset].sort_values("time")
        time = frame["time"]
        training[asset] = frame[(time >= train_start) & (time < train_end)]
        evaluation[asset] = frame[(time >= eval_start) & (time < eval_end)]
        emulators[asset] = power_curve_emulator(
            spec.rated_power,
            site_pressure=spec.site_pressure,
            fallback_density=site_mean_density(training[asset], spec.site_pressure),
        )
        columns = model_inputs(training[asset], spec.rated_power)
        full[asset] = _statistics(emulators[asset], columns, None)
        full_periods[asset] = (
            full[asset] if periods is None else _statistics(emulators[asset], columns, periods)
        )
    prior = FleetPrior.from_emulator(
        emulators[assets[0]], smoothness=smoothness, twin_noise_prior_count=twin_noise_prior_count
    )
    rows: list[TransferRow] = []
    # With the whole year, every turbine's fleet is the same: fit it once.
    whole_year: FleetPosterior | None = None
    for new in new_turbines if new_turbines is not None else assets:
        spec = specs[new]
        target = evaluation[new]
        inputs = model_inputs(target, spec.rated_power)
        y = inputs["power"]
        # The fleet before the new turbine came: each fit with its readings starts from
        # this population, as a fleet takes in a new twin (fewer rounds, same answer).
        before = fit_central({a: full_periods[a] for a in assets if a != new}, prior, tol=tol)
        for history in histories:
            span = HISTORIES[history]
            few = _first(training[new], span, train_start)
            n_readings = len(few)
            if n_readings == 0:
                others = {a: full[a] for a in assets if a != new}
                fits = {
                    "partial pooling": before,
                    "no pooling": no_pooling(others, prior),
                    "complete pooling": complete_pooling(others, prior),
                }
                predicted: str | None = None
            else:
                few_columns = model_inputs(few, spec.rated_power)
                stats = {
                    a: full[a]
                    if a != new or span is None
                    else _statistics(emulators[a], few_columns, None)
                    for a in assets
                }
                stats_periods = (
                    stats
                    if periods is None
                    else {
                        a: full_periods[a]
                        if a != new or span is None
                        else _statistics(emulators[a], few_columns, periods)
                        for a in assets
                    }
                )
                if span is None and whole_year is None:
                    whole_year = fit_central(stats_periods, prior, tol=tol, start=before.population)
                partial = (
                    whole_year
                    if span is None and whole_year is not None
                    else fit_central(stats_periods, prior, tol=tol, start=before.population)
                )
                fits = {
                    "partial pooling": partial,
                    "no pooling": no_pooling(stats, prior),
                    "complete pooling": complete_pooling(stats, prior),
                }
                predicted = new
            for method in METHODS:
                fit = fits[method]
                predictive = fit.predict(predicted, inputs, emulators[new])
                rows.append(
                    TransferRow(
                        asset_id=new,
                        history=history,
                        method=method,
                        n_readings=n_readings,
                        n_evaluated=int(y.size),
                        **transfer_scores(predictive, y),
                        n_rounds=fit.n_rounds,
                    )
                )
    return rows


def markdown_table(rows: Sequence[TransferRow]) -> str:
    """The rows as a Markdown table, one line per new turbine, history and method."""
    lines = [
        "| new turbine | history | readings | method | NMSE | CRPS [kW] | joint log-lik "
        "[nats/pt] | 90 % coverage | 90 % width [kW] | rounds |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.asset_id} | {r.history} | {r.n_readings} | {r.method} | {r.nmse:.4f} | "
            f"{r.crps:.1f} | {r.joint_log_likelihood:.3f} | {r.coverage:.3f} | "
            f"{r.interval_width:.0f} | {r.n_rounds or '-'} |"
        )
    return "\n".join(lines)
