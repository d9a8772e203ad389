"""Against river's ``BayesianLinearRegression`` on the same basis features.

Target (issue): >= 50x river's throughput, the same posterior mean to 1e-6.

Like with like: a :class:`~twinweave.models.BayesianBasisRegression` with the power
curve's basis terms, one noise bin and no roughness penalty (``smoothing=0``), so its
prior precision is ``ridge * I`` and, given its noise variance, its posterior is the
conjugate one of Bishop (2006), equations 3.53-3.54. After twinweave's fit, river gets
``alpha = ridge`` and ``beta = 1 / sigma2`` (twinweave's estimated noise variance) and
the same design-matrix rows, one ``learn_one`` at a time.

What river's source says (``river/linear_model/bayesian_lin_reg.py``, river 0.26):
``learn_one`` keeps the covariance by Sherman-Morrison updates started from
``I / alpha``, so ``alpha`` is the prior precision, as in Bishop; ``beta`` is the noise
precision. Its ``learn_many`` instead inverts a precision accumulator that is also
started from ``I / alpha``, i.e. a prior precision of ``1 / alpha``: the two agree only
for ``alpha = 1``. The benchmark uses ``learn_one`` (the streaming path the issue
names) and records how far ``learn_many`` lands with ``alpha`` and with ``1 / alpha``.

River is fed each row as a dict of its non-zero features (a B-spline row has few), the
cheapest input for it; building the dicts is not timed.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._data import Columns, Fleet
from benchmarks._harness import Result, measure, one_core, per_call
from twinweave.models import BayesianBasisRegression

TOPIC = "river"


def comparable_model(template: BayesianBasisRegression, ridge: float) -> BayesianBasisRegression:
    """``template``'s basis with one noise bin and the prior ``ridge * I``."""
    edges = template.noise_edges
    return BayesianBasisRegression(
        target=template.target,
        terms=template.terms,
        noise_source=template.noise_source,
        noise_edges=[float(edges[0]), float(edges[-1])],
        lower=template.lower,
        upper=template.upper,
        units=template.units,
        smoothing=0.0,
        ridge=ridge,
    )


def sparse_rows(features: np.ndarray) -> list[dict[int, float]]:
    """Each row's non-zero features as ``{column: value}``."""
    rows = []
    for row in features:
        columns = np.flatnonzero(row)
        rows.append(dict(zip(columns.tolist(), row[columns].tolist(), strict=True)))
    return rows


def river_mean(model: Any, n_features: int) -> np.ndarray:
    """River's posterior mean, in twinweave's feature order (unseen features: 0).

    River exposes no accessor for the weights' mean; its ``_ss_inv_arr @ _eta_arr`` is
    what ``predict_one`` uses (``_ensure_m``).
    """
    mean = np.zeros(n_features)
    full = model._ss_inv_arr @ model._eta_arr
    for feature, index in model._idx.items():
        mean[int(feature)] = full[index]
    return mean


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max |b|``."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def run(
    fleet: Fleet,
    *,
    n_readings: int = 20_000,
    asset_id: str | None = None,
    year: int = 2014,
    ridge: float = 1e-6,
    n_repeats: int = 7,
) -> list[Result]:
    """Compare throughput and posterior mean with river on ``n_readings`` readings."""
    from river.linear_model import BayesianLinearRegression

    asset = asset_id or fleet.asset_ids[0]
    full = fleet.inputs(asset, year)
    n = min(n_readings, len(full["power"]))
    columns: Columns = {name: values[:n] for name, values in full.items()}
    template = fleet.emulator(asset, year)
    singles = [{name: values[i : i + 1] for name, values in columns.items()} for i in range(n)]

    holder: list[BayesianBasisRegression] = []

    def fresh() -> None:
        holder[:] = [comparable_model(template, ridge)]

    def assimilate() -> None:
        # The posterior solve is timed too: river's learn_one keeps its mean current.
        holder[0].update(columns)
        holder[0].posterior_mean_  # noqa: B018 (a lazy property: the solve)

    with one_core() as threads:
        batch = measure(assimilate, repeats=n_repeats, setup=fresh)
        fresh()
        load_average = os.getloadavg()
        one_by_one = per_call(holder[0].update, singles)
        streamed_mean = holder[0].posterior_mean_
        fresh()
        holder[0].update(columns)
        model = holder[0]
        mean = model.posterior_mean_
        sigma2 = float(model.noise_var_[0])

        features, _ = model.design(columns)
        y = columns["power"]
        rows = sparse_rows(features)
        targets = y.tolist()
        rivers: list[BayesianLinearRegression] = []

        def fresh_river() -> None:
            rivers[:] = [BayesianLinearRegression(alpha=ridge, beta=1.0 / sigma2)]

        def feed_river() -> None:
            for x, target in zip(rows, targets, strict=True):
                rivers[0].learn_one(x, target)

        # As many passes as twinweave's, each from a fresh model: both sides warm.
        river_time = measure(feed_river, repeats=n_repeats, setup=fresh_river)
        river = rivers[0]

    river_weights = river_mean(river, model.n_features)
    # Both against the conjugate posterior mean solved directly.
    precision = ridge * np.eye(model.n_features) + features.T @ features / sigma2
    exact = np.linalg.solve(precision, features.T @ y / sigma2)
    # river's public predictions, from its own mean, at the first 1000 readings.
    check_rows = min(n, 1000)
    river_predictions = np.array([river.predict_one(x) for x in rows[:check_rows]])
    ours_predictions = features[:check_rows] @ mean

    learn_many: dict[str, float] = {}
    frame = pd.DataFrame(features)
    for label, alpha in (("alpha=ridge", ridge), ("alpha=1/ridge", 1.0 / ridge)):
        batch_river = BayesianLinearRegression(alpha=alpha, beta=1.0 / sigma2)
        batch_river.learn_many(frame, pd.Series(y))
        learn_many[label] = relative_difference(river_mean(batch_river, model.n_features), mean)

    river_rate = n / river_time.cpu_median
    batch_rate = n / batch.cpu_median
    single_rate = n / float(one_by_one.cpu.sum())
    agreement = relative_difference(river_weights, mean)
    common = {
        "threads": threads,
        "asset_id": asset,
        "year": year,
        "n_readings": n,
        "n_features": model.n_features,
        "ridge": ridge,
        "sigma2": sigma2,
        "river_alpha": ridge,
        "river_beta": 1.0 / sigma2,
    }
    subset = f"{n:,} readings of {asset} in {year}"
    return [
        Result(
            TOPIC,
            "batch update and posterior solve vs river learn_one loop",
            batch_rate,
            "readings/s",
            "higher",
            target=50.0,
            target_on="ratio",
            competitor="river BayesianLinearRegression.learn_one",
            competitor_value=river_rate,
            note=f"{subset}; medians of {n_repeats} passes each: twinweave's batch update "
            "and posterior solve (design included), river's learn_one over pre-built dicts; "
            "twinweave one reading at a time is the next row",
            details={
                **common,
                "twinweave": batch.summary(n),
                "river": river_time.summary(n),
            },
        ),
        Result(
            TOPIC,
            "one reading at a time vs river learn_one loop",
            single_rate,
            "readings/s",
            "higher",
            competitor="river BayesianLinearRegression.learn_one",
            competitor_value=river_rate,
            note=f"{subset}; twinweave update() per reading (design included), its "
            "posterior solved once at the end, untimed; river's kept current per reading",
            details={
                **common,
                "twinweave_latency": one_by_one.percentiles(),
                "load_average_1_5_15": list(load_average),
                "streamed_vs_batch_mean": relative_difference(streamed_mean, mean),
            },
        ),
        Result(
            TOPIC,
            "posterior mean, river vs twinweave",
            agreement,
            "max rel diff",
            "lower",
            target=1e-6,
            note="max |river - twinweave| / max |twinweave| over the weights' means",
            details={
                **common,
                "twinweave_vs_exact": relative_difference(mean, exact),
                "river_vs_exact": relative_difference(river_weights, exact),
                "predict_one_vs_twinweave": relative_difference(
                    river_predictions, ours_predictions
                ),
                "river_learn_many_vs_twinweave": learn_many,
            },
        ),
    ]
