"""Assimilation and prediction speed of the turbine twin's emulator, on one core.

Targets (issue): batch assimilation >= 2 million readings/s once parsed; a single-reading
streaming update p99 <= 100 us; prediction with quantiles >= 1 million points/s. The
posterior fit (EM on the noise variances, run lazily on the first prediction) is
reported on its own.

Readings are the La Haute Borne normal-operation readings, already in memory as NumPy
columns (``once parsed``): wind speed, power, temperature, wind direction, the default
inputs of :func:`~twinweave.domains.wind.power_curve_emulator`. Each turbine has its own
emulator, as a fleet of twins would.
"""

from __future__ import annotations

from benchmarks._data import Columns, Fleet
from benchmarks._harness import Result, gc_paused, measure, one_core, per_call
from twinweave.models import BayesianBasisRegression

TOPIC = "assimilation"
QUANTILES = (0.05, 0.5, 0.95)


def single_readings(columns: Columns, n: int) -> list[Columns]:
    """The first ``n`` readings as one-reading column mappings, as a stream delivers them."""
    n = min(n, len(columns["power"]))
    return [{name: values[i : i + 1] for name, values in columns.items()} for i in range(n)]


def run(
    fleet: Fleet,
    *,
    n_repeats: int = 7,
    n_single: int = 20_000,
    n_warmup: int = 1_000,
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
        latencies = per_call(streamer.update, timed)
        with gc_paused():
            latencies_no_gc = per_call(streamer.update, timed)

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
            note="first posterior_mean_ after the batch update; reported, no target",
            details={**common, **{k: v / len(assets) for k, v in fit.summary().items()}},
        ),
        Result(
            TOPIC,
            "single-reading update p99",
            stream_stats["cpu_p99_us"],
            "us",
            "lower",
            target=100.0,
            note=f"{len(timed):,} readings streamed into a fitted twin, GC on; p50 "
            f"{stream_stats['cpu_p50_us']:.0f} us, wall p99 {stream_stats['wall_p99_us']:.0f} us",
            details={
                **common,
                "n_readings": len(timed),
                "n_warmup": n_warmup,
                **stream_stats,
                "gc_paused": latencies_no_gc.percentiles(),
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
