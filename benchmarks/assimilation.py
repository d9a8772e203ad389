"""Assimilation and prediction speed of the turbine twin's emulator, on one core.

Targets (issue): batch assimilation >= 2 million readings/s once parsed; a single-reading
streaming update p99 <= 100 us; prediction with quantiles >= 1 million points/s. The
posterior fit (EM on the noise variances, run lazily on the first prediction) is
reported on its own, cold (after the batch) and warm (a prediction after each streamed
reading, EM started from the previous fit).

Per-call latencies are thread CPU time with the garbage collector on; the same calls
with it paused, and the load average around them, are in the details (on a shared
machine other processes inflate the tail even of CPU time, through caches).

Readings are the La Haute Borne normal-operation readings, already in memory as NumPy
columns (``once parsed``): wind speed, power, temperature, wind direction, the default
inputs of :func:`~twinweave.domains.wind.power_curve_emulator`. Each turbine has its own
emulator, as a fleet of twins would.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks._data import Columns, Fleet
from benchmarks._harness import Result, gc_paused, measure, one_core, per_call
from twinweave.models import BayesianBasisRegression

TOPIC = "assimilation"
QUANTILES = (0.05, 0.5, 0.95)


def single_readings(columns: Columns, n: int) -> list[Columns]:
    """The first ``n`` readings as one-reading column mappings, as a stream delivers them."""
    n = min(n, len(columns["power"]))
    return [{name: values[i : i + 1] for name, values in columns.items()} for i in range(n)]


def as_floats(reading: Columns) -> dict[str, float]:
    """A one-reading mapping as Python floats, as a message from a broker decodes."""
    return {name: float(values[0]) for name, values in reading.items()}


def refit_times(
    twin: BayesianBasisRegression, readings: list[Columns]
) -> tuple[np.ndarray, np.ndarray]:
    """CPU seconds of the posterior fit after each reading is assimilated: warm (EM from
    the previous fit, as the twin does) and cold (the same statistics, no start)."""
    warm, cold = np.empty(len(readings)), np.empty(len(readings))
    params = twin.get_params()
    for i, reading in enumerate(readings):
        twin.update(reading)
        state = twin.state()
        del state["noise_start_"]
        scratch = BayesianBasisRegression.from_state(params, state)
        start = time.thread_time()
        twin.posterior_mean_  # noqa: B018 - the property runs the fit
        warm[i] = time.thread_time() - start
        start = time.thread_time()
        scratch.posterior_mean_  # noqa: B018
        cold[i] = time.thread_time() - start
    return warm, cold


def run(
    fleet: Fleet,
    *,
    n_repeats: int = 7,
    n_single: int = 20_000,
    n_warmup: int = 1_000,
    n_refits: int = 200,
    training_year: int = 2014,
    evaluation_year: int = 2015,
) -> list[Result]:
    """Measure batch and streaming assimilation, posterior fit and prediction."""
    assets = fleet.asset_ids
    everything = {a: fleet.inputs(a) for a in assets}
    training = {a: fleet.inputs(a, training_year) for a in assets}
    evaluation = {a: fleet.inputs(a, evaluation_year) for a in assets}
    n_readings = sum(len(c["power"]) for c in everything.values())
    fresh: dict[str, BayesianBasisRegression] = {}

    def new_emulators() -> None:
        fresh.clear()
        fresh.update({a: fleet.emulator(a, training_year) for a in assets})

    def assimilate_all() -> None:
        for a in assets:
            fresh[a].update(everything[a])

    def fit_all() -> None:
        for a in assets:
            fresh[a].posterior_mean_  # noqa: B018 - the property runs the fit

    def new_assimilated() -> None:
        new_emulators()
        assimilate_all()

    with one_core() as threads:
        batch = measure(assimilate_all, repeats=n_repeats, setup=new_emulators)
        fit = measure(fit_all, repeats=n_repeats, setup=new_assimilated)

        fitted = {a: fleet.emulator(a, training_year).update(training[a]) for a in assets}
        for emulator in fitted.values():
            emulator.posterior_mean_  # noqa: B018 - fit before timing predictions
        n_points = sum(len(c["power"]) for c in evaluation.values())

        def predict_all() -> None:
            for a in assets:
                fitted[a].predict(evaluation[a]).quantile(QUANTILES)

        def predict_mean_only() -> None:
            for a in assets:
                fitted[a].predict(evaluation[a]).mean  # noqa: B018

        prediction = measure(predict_all, repeats=n_repeats)
        prediction_mean = measure(predict_mean_only, repeats=n_repeats)

        # Streaming: a twin fitted on the training year takes the next year one reading
        # at a time; the first readings warm the caches and are not timed.
        streamer = fitted[assets[0]]
        stream = single_readings(evaluation[assets[0]], n_warmup + n_single)
        for reading in stream[:n_warmup]:
            streamer.update(reading)
        timed = stream[n_warmup:]
        load_before = os.getloadavg()
        latencies = per_call(streamer.update, timed)
        load_after = os.getloadavg()
        with gc_paused():
            latencies_no_gc = per_call(streamer.update, timed)
        floats = [as_floats(reading) for reading in timed]
        latencies_floats = per_call(streamer.update, floats)

        # Predicting after every reading (the year's first readings again): the refit
        # is warm-started.
        warm, cold = refit_times(streamer, single_readings(evaluation[assets[0]], n_refits))

    common = {"threads": threads, "turbines": assets}
    batch_rate = batch.summary(n_readings)
    stream_stats = latencies.percentiles()
    return [
        Result(
            TOPIC,
            "batch assimilation (update, one core)",
            batch_rate["cpu_median_per_s"],
            "readings/s",
            "higher",
            target=2e6,
            note=f"{n_readings:,} readings, one emulator per turbine; median of "
            f"{n_repeats}, thread CPU time",
            details={**common, "n_readings": n_readings, **batch_rate},
        ),
        Result(
            TOPIC,
            "posterior fit (EM), per turbine",
            fit.cpu_median / len(assets) * 1e3,
            "ms",
            "lower",
            note="first posterior_mean_ after the batch update (cold); refit after one "
            f"streamed reading: warm median {np.median(warm) * 1e3:.1f} ms, cold "
            f"{np.median(cold) * 1e3:.1f} ms; reported, no target",
            details={
                **common,
                **{k: v / len(assets) for k, v in fit.summary().items()},
                "refit_after_one_reading": {
                    "n_refits": len(warm),
                    "warm_cpu_median_ms": float(np.median(warm) * 1e3),
                    "warm_cpu_p90_ms": float(np.percentile(warm, 90) * 1e3),
                    "cold_cpu_median_ms": float(np.median(cold) * 1e3),
                    "cold_cpu_p90_ms": float(np.percentile(cold, 90) * 1e3),
                },
            },
        ),
        Result(
            TOPIC,
            "single-reading update p99",
            stream_stats["cpu_p99_us"],
            "us",
            "lower",
            target=100.0,
            note=f"{len(timed):,} readings (one-row arrays) streamed into a fitted twin, GC "
            f"on; p50 {stream_stats['cpu_p50_us']:.0f} us, wall p99 "
            f"{stream_stats['wall_p99_us']:.0f} us; load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after",
            details={
                **common,
                "n_readings": len(timed),
                "n_warmup": n_warmup,
                **stream_stats,
                "load_average_1_5_15_before": list(load_before),
                "load_average_1_5_15_after": list(load_after),
                "gc_paused": latencies_no_gc.percentiles(),
                "python_floats": latencies_floats.percentiles(),
            },
        ),
        Result(
            TOPIC,
            "prediction with quantiles (one core)",
            prediction.summary(n_points)["cpu_median_per_s"],
            "points/s",
            "higher",
            target=1e6,
            note=f"{n_points:,} points of {evaluation_year}: predict() then "
            f"quantile({list(QUANTILES)}); median of {n_repeats}",
            details={
                **common,
                "n_points": n_points,
                **prediction.summary(n_points),
                "mean_only": prediction_mean.summary(n_points),
            },
        ),
    ]
