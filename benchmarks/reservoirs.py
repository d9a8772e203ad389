"""Reservoir twins on real data: the state-space emulator on the Upper Snake cascade.

Each of the five reservoirs is a mass-balance twin (``StateSpaceEmulator.reservoir``):
its noise variances are fitted by EM on 2009-2012, it filters 2009-2012, and then runs
live through 2013-2016: every morning it forecasts the storage 1, 7 and 30 days ahead
from the flows recorded over those days (a what-if with known releases and a perfect
inflow forecast), then assimilates the day's reading. Two twins per reservoir: the
balance of the gauged flows alone, and the same with an unmeasured net flow in the state
(diversions, evaporation, ungauged inflow). Scores: RMSE, CRPS and 90 % coverage of the
forecasts, in million m^3.

Beside it, statsmodels (the tool a user would pick for a Kalman filter in Python) fits
the same models by maximum likelihood: a mass balance is a local level (or a local
linear trend, with the unmeasured flow) of storage minus the cumulative gauged balance.
Reported: both fits' log-likelihoods, evaluated by twinweave's filter with the same
initial state, their fit times, and the live scores of twins that use statsmodels'
variances.

``python -m benchmarks.reservoirs`` prints the table; ``--markdown FILE`` writes it
between the ``reservoir-table`` markers of FILE.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._harness import Result
from twinweave.core import CensoredNormal, scores
from twinweave.domains.water import UPPER_SNAKE_RESERVOIRS, Reservoir, load_upper_snake
from twinweave.models import StateSpaceEmulator
from twinweave.models._state_space import kalman_filter

TOPIC = "reservoirs"
LIVE_FROM = pd.Timestamp("2013-01-01", tz="America/Denver")
HORIZONS = (1, 7, 30)
EM_ITERATIONS = 300
MILLION = 1e6
# Vague priors: storage within about 100 million m^3, an unmeasured flow within about
# 10 million m^3/day, before the first reading.
INITIAL_STORAGE_VAR = 1e16
INITIAL_FLOW_VAR = 1e14
MODELS = ("gauged flows", "with unmeasured flow")


def reservoir_twin(
    reservoir: Reservoir,
    first_storage: float,
    *,
    unmeasured_flow: bool,
    process_var: float = 1e12,
    noise_var: float = 1e12,
    unmeasured_flow_var: float = 1e10,
) -> StateSpaceEmulator:
    """The mass-balance twin of ``reservoir``, before any reading, with these variances."""
    return StateSpaceEmulator.reservoir(
        capacity=reservoir.capacity,
        initial_storage=first_storage,
        initial_var=INITIAL_STORAGE_VAR,
        process_var=process_var,
        noise_var=noise_var,
        unmeasured_flow_var=unmeasured_flow_var if unmeasured_flow else None,
        initial_unmeasured_flow_var=INITIAL_FLOW_VAR if unmeasured_flow else None,
    )


def columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The twin's columns of a reservoir's record, as arrays."""
    return {name: frame[name].to_numpy() for name in ("storage", "inflow", "outflow")}


def live_scores(twin: StateSpaceEmulator, live: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Scores of the forecasts made each day of ``live`` before assimilating it."""
    data = columns(live)
    n = len(live)
    forecasts: dict[int, list[CensoredNormal]] = {h: [] for h in HORIZONS}
    for day in range(n):
        for horizon in HORIZONS:
            if day + horizon <= n:
                ahead = slice(day, day + horizon)
                forecast = twin.predict(
                    {"inflow": data["inflow"][ahead], "outflow": data["outflow"][ahead]}
                )
                forecasts[horizon].append(forecast[np.array([horizon - 1])])
        twin.update({name: values[day : day + 1] for name, values in data.items()})
    result = {}
    for horizon in HORIZONS:
        predictive = CensoredNormal.concatenate(forecasts[horizon])
        y = data["storage"][horizon - 1 :]
        lo, hi = predictive.interval(0.9)
        result[horizon] = scores(predictive, y) | {"width": float(np.mean(hi - lo))}
    return result


def _statsmodels_fit(
    training: pd.DataFrame, unmeasured_flow: bool
) -> tuple[float, float, float | None, float]:
    """statsmodels' maximum-likelihood variances (process, noise, unmeasured flow) and
    its fit time [s]."""
    import statsmodels.api as sm

    balance = np.cumsum(training["inflow"].to_numpy() - training["outflow"].to_numpy())
    level = training["storage"].to_numpy() - balance
    # statsmodels' optimiser expects numbers of order one: the level is fitted in units
    # of its daily change's spread (in million m^3, Jackson's variances were 1e-4 and
    # its fit stopped 1,350-2,670 nats short of the maximum).
    scale = float(np.std(np.diff(level))) or 1.0
    level = level / scale
    start = time.perf_counter()
    model = sm.tsa.UnobservedComponents(
        level, level="local linear trend" if unmeasured_flow else "local level"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(disp=False)
    seconds = time.perf_counter() - start
    params = dict(zip(model.param_names, fit.params, strict=True))
    square = scale**2
    flow = params["sigma2.trend"] * square if unmeasured_flow else None
    return params["sigma2.level"] * square, params["sigma2.irregular"] * square, flow, seconds


def _log_likelihood(twin: StateSpaceEmulator, training: pd.DataFrame) -> float:
    data = columns(training)
    controls = np.stack([data["inflow"], data["outflow"]], axis=-1)
    return float(kalman_filter(twin.model, data["storage"], controls=controls).log_likelihood)


@dataclass
class Row:
    reservoir: str
    model: str
    fit: str
    seconds: float
    log_likelihood: float
    sd: dict[str, float]
    scores: dict[int, dict[str, float]]


def run_reservoir(
    reservoir: Reservoir, *, compare: bool = True, em_iterations: int = EM_ITERATIONS
) -> list[Row]:
    """Every twin of one reservoir (each model, fitted by EM and, with ``compare``, with
    statsmodels' variances)."""
    frame = load_upper_snake(reservoir.asset_id)
    training = frame[frame["time"] < LIVE_FROM]
    live = frame[frame["time"] >= LIVE_FROM]
    first = float(training["storage"].iloc[0])
    rows = []
    for model in MODELS:
        unmeasured = model == MODELS[1]
        start = time.perf_counter()
        fitted = reservoir_twin(reservoir, first, unmeasured_flow=unmeasured).estimate_noise(
            columns(training), n_iterations=em_iterations, diagonal=True
        )
        fits = [("twinweave EM", fitted, time.perf_counter() - start)]
        if compare:
            process, noise, flow, seconds = _statsmodels_fit(training, unmeasured)
            twin = reservoir_twin(
                reservoir,
                first,
                unmeasured_flow=unmeasured,
                process_var=process,
                noise_var=noise,
                unmeasured_flow_var=flow if flow is not None else 1.0,
            )
            fits.append(("statsmodels MLE", twin, seconds))
        for label, twin, seconds in fits:
            sd = {
                "process": float(np.sqrt(twin.process_noise[0, 0])) / MILLION,
                "noise": float(np.sqrt(twin.observation_noise[0, 0])) / MILLION,
            }
            if unmeasured:
                sd["unmeasured flow"] = float(np.sqrt(twin.process_noise[1, 1])) / MILLION
            log_likelihood = _log_likelihood(twin, training)
            twin.update(columns(training))
            rows.append(
                Row(
                    reservoir.name,
                    model,
                    label,
                    seconds,
                    log_likelihood,
                    sd,
                    live_scores(twin, live),
                )
            )
    return rows


def run_all(*, compare: bool = True) -> list[Row]:
    return [row for r in UPPER_SNAKE_RESERVOIRS for row in run_reservoir(r, compare=compare)]


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (storage figures in million m^3)."""
    header = (
        "| reservoir | twin | noise fitted by | fit [s] | log-lik 2009-2012 | "
        + " | ".join(f"{h} d RMSE | {h} d CRPS | {h} d cov90" for h in HORIZONS)
        + " |"
    )
    lines = [header, "|" + "---|" * (5 + 3 * len(HORIZONS))]
    for row in rows:
        cells = [
            row.reservoir,
            row.model,
            row.fit,
            f"{row.seconds:.2f}",
            f"{row.log_likelihood:.1f}",
        ]
        for h in HORIZONS:
            s = row.scores[h]
            cells += [
                f"{s['rmse'] / MILLION:.2f}",
                f"{s['crps'] / MILLION:.2f}",
                f"{s['coverage']:.3f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run() -> list[Result]:
    """Results for ``make bench``: fit time and log-likelihood against statsmodels per
    reservoir (the twins with an unmeasured flow), the tables in the details."""
    start = time.perf_counter()
    rows = run_all()
    elapsed = time.perf_counter() - start
    results = []
    for reservoir in UPPER_SNAKE_RESERVOIRS:
        em, mle = (
            row for row in rows if row.reservoir == reservoir.name and row.model == MODELS[1]
        )
        details: dict[str, Any] = {
            "seconds_all_reservoirs": elapsed,
            "rows": [row.__dict__ for row in rows if row.reservoir == reservoir.name],
        }
        results.append(
            Result(
                TOPIC,
                f"{reservoir.name}: noise fit with an unmeasured flow, 2009-2012 (EM, "
                f"{EM_ITERATIONS} iterations)",
                em.seconds,
                "s",
                "lower",
                competitor="statsmodels UnobservedComponents MLE",
                competitor_value=mle.seconds,
                note=(
                    f"log-likelihood EM {em.log_likelihood:.1f}, statsmodels "
                    f"{mle.log_likelihood:.1f}; 1-day 90 % coverage 2013-2016 "
                    f"{em.scores[1]['coverage']:.3f} (statsmodels' variances "
                    f"{mle.scores[1]['coverage']:.3f})"
                ),
                details=details,
            )
        )
    return results


_BEGIN, _END = "<!-- reservoir-table:begin -->", "<!-- reservoir-table:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reservoirs", description=__doc__)
    parser.add_argument("--markdown", type=Path, help="write the table into this file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run_all()
    elapsed = time.perf_counter() - start
    text = (
        f"Produced by `python -m benchmarks.reservoirs --markdown {args.markdown}` "
        f"({elapsed:.0f} s).\n\n{table(rows)}\n"
        if args.markdown
        else table(rows)
    )
    print(text)
    if args.markdown:
        document = args.markdown.read_text()
        head, rest = document.split(_BEGIN)
        _, tail = rest.split(_END)
        args.markdown.write_text(f"{head}{_BEGIN}\n{text}{_END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
