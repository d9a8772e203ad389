"""Against OpenOA's power-curve fits: RMSE on the next year and fit time.

Per turbine, each method is fitted on the 2014 normal-operation readings and predicts
the 2015 ones (the same readings for every method, cleaned by twinweave's pathway; see
:mod:`benchmarks._data`). Point predictions are clipped to ``[0, rated]`` as the
observations are; twinweave's point prediction is the predictive mean.

OpenOA (``openoa.utils.power_curve``) fits power against the measured wind speed only:
``IEC`` (0.5 m/s bin means; by default a step function, ``interpolate=True`` joins the
bins linearly), ``logistic_5_parametric`` (a 5-parameter logistic curve fitted by
differential evolution) and ``gam`` (pygam's ``LinearGAM`` with 20 splines). twinweave's
``power_curve_emulator`` also reads temperature (air density) and wind direction;
``MethodOfBins`` is the IEC 61400-12-1 curve on density-normalised wind speed.

Fit times are on one core (OpenOA's subprocess runs with ``OMP_NUM_THREADS=1`` and
friends), summed over the turbines; twinweave's include the lazy posterior fit.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._data import Columns, Fleet
from benchmarks._harness import Result, measure, one_core, single_thread_environment
from benchmarks._openoa_env import WORKER, OpenOAPython
from twinweave.domains.wind import MethodOfBins, site_mean_density

TOPIC = "openoa"
OPENOA_METHODS = ("IEC", "IEC interpolated", "logistic-5", "GAM")


def rmse(predicted: np.ndarray, observed: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - observed) ** 2)))


def _method_of_bins(fleet: Fleet, asset_id: str, training_year: int) -> MethodOfBins:
    spec = fleet.specs[asset_id]
    training = fleet.readings(asset_id, training_year)
    return MethodOfBins(
        rated_power=spec.rated_power,
        site_pressure=spec.site_pressure,
        fallback_density=site_mean_density(training, spec.site_pressure),
    )


def twinweave_fits(
    fleet: Fleet,
    train: dict[str, Columns],
    test: dict[str, Columns],
    *,
    training_year: int,
    n_repeats: int,
) -> dict[str, dict[str, Any]]:
    """Fit time [s] and test predictions of twinweave's two models, per turbine."""
    out: dict[str, dict[str, Any]] = {"twinweave emulator": {}, "twinweave MethodOfBins": {}}
    for asset in fleet.asset_ids:
        # Configuration (site pressure, mean density) is settled before the clock starts;
        # a fit is a fresh model from those parameters taking the training readings.
        configured: dict[str, Any] = {
            "twinweave emulator": fleet.emulator(asset, training_year),
            "twinweave MethodOfBins": _method_of_bins(fleet, asset, training_year),
        }
        for name, template in configured.items():
            fitted: list[Any] = []

            def fit(
                template: Any = template, fitted: list[Any] = fitted, asset: str = asset
            ) -> None:
                model = type(template)(**template.get_params()).update(train[asset])
                if isinstance(model, MethodOfBins):
                    model.curve()
                else:
                    model.posterior_mean_  # noqa: B018 - the property runs the fit
                fitted[:] = [model]

            timing = measure(fit, repeats=n_repeats)
            rated = fleet.specs[asset].rated_power
            predicted = np.clip(fitted[0].predict(test[asset]).mean, 0.0, rated)
            out[name][asset] = {
                "fit_cpu_s": timing.cpu_median,
                "fit_wall_s": timing.wall_median,
                "predicted": predicted,
            }
    return out


def openoa_fits(
    openoa: OpenOAPython,
    train: dict[str, Columns],
    test: dict[str, Columns],
    rated: dict[str, float],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Fit time [s] and test predictions of OpenOA's methods, per turbine, run by the
    OpenOA interpreter; and what it reported about itself."""
    assert openoa.python is not None
    with tempfile.TemporaryDirectory(prefix="twinweave-openoa-") as folder:
        work = Path(folder)
        for name, parts in (("train", train), ("test", test)):
            frame = pd.concat(
                [
                    pd.DataFrame(
                        {
                            "asset_id": asset,
                            "wind_speed": columns["wind_speed"],
                            "power": columns["power"],
                        }
                    )
                    for asset, columns in parts.items()
                ],
                ignore_index=True,
            )
            frame.to_parquet(work / f"{name}.parquet")
        done = subprocess.run(
            [str(openoa.python), str(WORKER), "fit", str(work), str(work / "out")],
            capture_output=True,
            text=True,
            env=single_thread_environment(),
            timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"OpenOA worker exited {done.returncode}:\n{done.stderr[-3000:]}")
        record = json.loads((work / "out" / "fits.json").read_text())
        out: dict[str, dict[str, Any]] = {m: {} for m in OPENOA_METHODS}
        for fit in record["fits"]:
            asset = fit["asset_id"]
            predicted = np.load(work / "out" / f"{fit['method']}__{asset}.npy")
            out[fit["method"]][asset] = {
                "fit_cpu_s": fit["fit_cpu_s"],
                "fit_wall_s": fit["fit_wall_s"],
                "predicted": np.clip(predicted, 0.0, rated[asset]),
            }
    return out, {"versions": record["versions"]}


def _summaries(
    fits: dict[str, dict[str, Any]], test: dict[str, Columns]
) -> dict[str, dict[str, Any]]:
    """Pooled RMSE [kW], per-turbine RMSE and total fit time [s] of each method."""
    out: dict[str, dict[str, Any]] = {}
    for method, per_asset in fits.items():
        if not per_asset:
            continue
        assets = sorted(per_asset)
        predicted = np.concatenate([per_asset[a]["predicted"] for a in assets])
        observed = np.concatenate([test[a]["power"] for a in assets])
        out[method] = {
            "rmse_kw": rmse(predicted, observed),
            "rmse_kw_per_turbine": {
                a: rmse(per_asset[a]["predicted"], test[a]["power"]) for a in assets
            },
            "fit_cpu_s": sum(per_asset[a]["fit_cpu_s"] for a in assets),
            "fit_wall_s": sum(per_asset[a]["fit_wall_s"] for a in assets),
        }
    return out


def run(
    fleet: Fleet,
    openoa: OpenOAPython,
    *,
    training_year: int = 2014,
    test_year: int = 2015,
    n_repeats: int = 3,
) -> list[Result]:
    """RMSE and fit-time ratios of twinweave's curves against OpenOA's."""
    train = {a: fleet.inputs(a, training_year) for a in fleet.asset_ids}
    test = {a: fleet.inputs(a, test_year) for a in fleet.asset_ids}
    with one_core() as threads:
        fits = twinweave_fits(fleet, train, test, training_year=training_year, n_repeats=n_repeats)
    worker: dict[str, Any] = {}
    problem = openoa.problem
    if openoa.python is not None:
        try:
            openoa_results, worker = openoa_fits(
                openoa, train, test, {a: s.rated_power for a, s in fleet.specs.items()}
            )
            fits.update(openoa_results)
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            problem = str(error)
    summary = _summaries(fits, test)
    common = {
        "threads": threads,
        "training_year": training_year,
        "test_year": test_year,
        "n_train": {a: len(c["power"]) for a, c in train.items()},
        "n_test": {a: len(c["power"]) for a, c in test.items()},
        "methods": summary,
        "openoa": {"python": str(openoa.python), "version": openoa.version, **worker},
    }
    if problem:
        common["openoa_problem"] = problem
    note_missing = f"OpenOA unavailable: {problem.splitlines()[0]}" if problem else ""
    ours = summary["twinweave emulator"]
    bins = summary["twinweave MethodOfBins"]
    results: list[Result] = []
    pairs = [("twinweave emulator", ours, m) for m in OPENOA_METHODS]
    pairs.append(("twinweave MethodOfBins", bins, "IEC interpolated"))
    for label, mine, theirs in pairs:
        other = summary.get(theirs)
        results.append(
            Result(
                TOPIC,
                f"{test_year} RMSE: {label.removeprefix('twinweave ')} vs OpenOA {theirs}",
                mine["rmse_kw"],
                "kW",
                "lower",
                competitor=f"OpenOA {theirs}",
                competitor_value=None if other is None else other["rmse_kw"],
                note=note_missing or f"fit on {training_year}, 4 turbines pooled",
                details=common if not results else {},
            )
        )
    for label, mine, theirs in pairs:
        other = summary.get(theirs)
        results.append(
            Result(
                TOPIC,
                f"fit time: {label.removeprefix('twinweave ')} vs OpenOA {theirs}",
                mine["fit_cpu_s"],
                "s",
                "lower",
                competitor=f"OpenOA {theirs}",
                competitor_value=None if other is None else other["fit_cpu_s"],
                note=note_missing or "one core, 4 turbines summed, thread CPU time",
            )
        )
    return results
