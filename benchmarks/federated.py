"""Fleet fits of 1,000 twins: central, federated in process against central, and the
latency of a round over Flower.

Targets (issue 3): the central fit of 1,000 twins that hold the statistics of 50,000
readings each takes at most 1 s, and at most 60 s from the raw readings end to end
(summarising every twin's readings, then the fit); the federated fit in process takes
at most twice the central fit's time; the latency of one Flower round with 10
SuperNodes is reported.

The fleet is synthetic and of the issue's size: 1,000 twins, each holding the statistics
of 50,000 readings of a power-curve-like response (a scaled sine of ``x`` in [0, 1] with
Gaussian noise) under a 13-weight cubic B-spline emulator with four noise bins. Both
fits start from the statistics (the readings are summarised once, untimed) and use the
same stopping rule, so they run the same rounds. Over Flower, a SuperLink and one
SuperNode per twin run as processes on 127.0.0.1 (:class:`LoopbackFederation`); a round's
latency is the ServerApp's wall time from pushing the round's messages to holding every
reply, which includes the ClientApp process Flower starts for every message.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks._data import load_fleet
from benchmarks._harness import Result, Timing, measure
from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    ConvergenceWarning,
    FleetPooling,
    FleetPrior,
    FlowerSettings,
    LoopbackFederation,
    TwinStatistics,
    calendar_weeks,
    fit_central,
    fit_federated,
    population_change,
    save_statistics,
    twin_posteriors,
)

TOPIC = "federated"
# A tolerance no round meets: the Flower run does exactly the rounds asked for.
_NEVER = 1e-300


def emulator() -> BayesianBasisRegression:
    """The twins' emulator: 13 B-spline weights on ``x``, noise in four bins of ``x``."""
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 1.0, 10),),
        noise_source="x",
        noise_edges=[0.0, 0.25, 0.5, 0.75, 1.0],
    )


def summarised_fleet(
    n_twins: int, n_readings: int, seed: int = 0
) -> tuple[dict[str, TwinStatistics], FleetPrior, Timing]:
    """Statistics of ``n_twins`` twins with ``n_readings`` readings each, the prior, and
    the time spent turning the readings into statistics (drawing them left out)."""
    rng = np.random.default_rng(seed)
    stats: dict[str, TwinStatistics] = {}
    cpu = wall = 0.0
    for k in range(n_twins):
        x = rng.uniform(0.0, 1.0, n_readings)
        y = (1.0 + 0.2 * rng.standard_normal()) * np.sin(3.0 * x) + rng.normal(
            0.0, 0.05, n_readings
        )
        wall_start, cpu_start = time.perf_counter(), time.thread_time()
        stats[f"T{k:05d}"] = TwinStatistics.from_emulator(emulator().update({"x": x, "y": y}))
        cpu += time.thread_time() - cpu_start
        wall += time.perf_counter() - wall_start
    return stats, FleetPrior.from_emulator(emulator()), Timing((cpu,), (wall,))


def synthetic_fleet(
    n_twins: int, n_readings: int, seed: int = 0
) -> tuple[dict[str, TwinStatistics], FleetPrior]:
    """Statistics of ``n_twins`` twins with ``n_readings`` readings each, and the prior."""
    stats, prior, _ = summarised_fleet(n_twins, n_readings, seed)
    return stats, prior


def _max_relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def central(n_twins: int = 1_000, n_readings: int = 50_000, *, n_repeats: int = 3) -> list[Result]:
    """The central fit from the twins' statistics, and from their raw readings."""
    stats, prior, summarising = summarised_fleet(n_twins, n_readings)
    fit = fit_central(stats, prior)
    fit_time = measure(lambda: fit_central(stats, prior), repeats=n_repeats)
    end_to_end = summarising.wall_median + fit_time.wall_median
    sizes = f"{n_twins:,} twins x {n_readings:,} readings"
    return [
        Result(
            TOPIC,
            f"central fit from statistics, {sizes} (wall time)",
            fit_time.wall_median,
            "s",
            "lower",
            target=1.0,
            note=(
                f"{fit.n_rounds} rounds to tol 1e-6 and every twin's posterior; "
                f"{prior.n_features} weights, {prior.n_noise_iterations} noise iterations "
                f"at most per local step; median of {n_repeats}; thread CPU "
                f"{fit_time.cpu_median:.2f} s"
            ),
            details={
                "n_twins": n_twins,
                "n_readings_per_twin": n_readings,
                "n_rounds": fit.n_rounds,
                "fit": fit_time.summary(),
            },
        ),
        Result(
            TOPIC,
            f"central fit from raw readings, {sizes}, end to end (wall time)",
            end_to_end,
            "s",
            "lower",
            target=60.0,
            note=(
                f"every twin's readings summarised by its emulator ({summarising.wall_median:.1f}"
                f" s, thread CPU {summarising.cpu_median:.1f} s; drawing the synthetic readings "
                f"not counted), then the fit ({fit_time.wall_median:.2f} s)"
            ),
            details={"summarise": summarising.summary(), "fit": fit_time.summary()},
        ),
    ]


def in_process(
    n_twins: int = 1_000, n_readings: int = 50_000, *, n_repeats: int = 3
) -> list[Result]:
    """Federated rounds in process against the central fit, on the same statistics."""
    stats, prior = synthetic_fleet(n_twins, n_readings)
    central = fit_central(stats, prior)
    federated = fit_federated(FleetPooling(prior, ["default"]), stats)
    assert central.population is not None
    difference = max(
        _max_relative(getattr(federated.population, name), getattr(central.population, name))
        for name in ("mean", "covariance", "noise_var")
    )

    def federated_fit() -> None:
        fit = fit_federated(FleetPooling(prior, ["default"]), stats)
        # fit_central ends with every twin's posterior; federated, each twin works out its
        # own from the final population: timed too, in turn, so both do the same work.
        assert fit.population is not None
        twin_posteriors(list(stats.values()), fit.population)

    central_time = measure(lambda: fit_central(stats, prior), repeats=n_repeats)
    federated_time = measure(federated_fit, repeats=n_repeats)
    details = {
        "n_twins": n_twins,
        "n_readings_per_twin": n_readings,
        "n_features": prior.n_features,
        "n_rounds_central": central.n_rounds,
        "n_rounds_federated": federated.n_rounds,
        "central": central_time.summary(),
        "federated": federated_time.summary(),
    }
    return [
        Result(
            TOPIC,
            f"federated fit in process, {n_twins:,} twins (wall time)",
            federated_time.wall_median,
            "s",
            "lower",
            target=2.0,
            target_on="ratio",
            competitor="central fit, same statistics",
            competitor_value=central_time.wall_median,
            note=(
                f"{federated.n_rounds} rounds each (fit_central's stopping rule and defaults), "
                f"median of {n_repeats}; every twin answers a FitIns with a FitRes and the "
                "strategy aggregates; both end with every twin's posterior (the federated "
                "twins' own, in turn); a synthetic fleet, 13 B-spline weights a twin"
            ),
            details=details,
        ),
        Result(
            TOPIC,
            f"federated vs central population, {n_twins:,} twins",
            difference,
            "max rel diff",
            "lower",
            target=1e-9,
            note="largest relative difference of the kinds' means, covariances and noise",
            details={"n_rounds": federated.n_rounds},
        ),
    ]


def flower_rounds(
    n_supernodes: int = 10,
    n_readings: int = 50_000,
    *,
    n_rounds: int = 3,
    directory: Path | None = None,
    timeout: float = 900.0,
) -> list[Result]:
    """Round latency over Flower with one SuperNode per twin, all on loopback."""
    stats, prior = synthetic_fleet(n_supernodes, n_readings, seed=1)
    with tempfile.TemporaryDirectory(prefix="twinweave-flower-") as scratch:
        root = Path(scratch) if directory is None else directory
        start = time.perf_counter()
        with LoopbackFederation(root / "federation") as federation:
            federation.add_twins(
                {t: save_statistics(s, root / f"{t}.npz") for t, s in stats.items()}
            )
            startup = time.perf_counter() - start
            run = federation.submit(
                prior,
                ["default"],
                FlowerSettings(
                    n_rounds=n_rounds, tol=_NEVER, min_twins=n_supernodes, round_timeout=300.0
                ),
            )
            submitted = time.perf_counter()
            with warnings.catch_warnings():  # the rounds are capped on purpose
                warnings.simplefilter("ignore", ConvergenceWarning)
                result = run.result(timeout)
            total = time.perf_counter() - submitted
            latencies = run.exchange_seconds()
        left = federation.pids()
    with warnings.catch_warnings():  # the rounds are capped on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
        central = fit_central(stats, prior, n_rounds=n_rounds, tol=_NEVER)
    assert central.population is not None
    difference = _max_relative(result.population.mean, central.population.mean)
    answered = [len(r.answered) for r in result.rounds]
    return [
        Result(
            TOPIC,
            f"Flower round latency, {n_supernodes} SuperNodes (median of {n_rounds})",
            float(np.median(latencies)),
            "s",
            "lower",
            note=(
                f"rounds {', '.join(f'{s:.1f}' for s in latencies)} s; a ClientApp process "
                "per message (Flower's subprocess isolation) and the SuperNode's 3 s poll "
                f"dominate; start of {n_supernodes} SuperNodes {startup:.1f} s, run "
                f"{total:.1f} s; population vs central after {n_rounds} rounds: max rel "
                f"diff {difference:.1e}"
            ),
            details={
                "round_seconds": latencies,
                "startup_s": startup,
                "run_s": total,
                "answered_per_round": answered,
                "max_rel_diff_vs_central": difference,
                "processes_left": left,
            },
        )
    ]


def accelerated_rounds(tol: float = 1e-6) -> list[Result]:
    """Rounds and time of La Haute Borne's fleet fit, accelerated (the default) against
    plain EM: the four turbines with 2014's normal operation and calendar weeks'
    period effects, from the prior to ``tol``, one process."""
    fleet = load_fleet()
    stats: dict[str, TwinStatistics] = {}
    emulators = []
    for asset in fleet.asset_ids:
        columns = fleet.inputs(asset, 2014)
        fitted = fleet.emulator(asset, 2014).update(columns)
        emulators.append(fitted)
        stats[asset] = TwinStatistics.from_emulator(
            fitted, readings=columns, periods=calendar_weeks(columns["time"])
        )
    prior = FleetPrior.from_emulator(emulators[0], smoothness=4.0, twin_noise_prior_count=300.0)
    fits, seconds = {}, {}
    for accelerate in (True, False):
        start = time.perf_counter()
        fits[accelerate] = fit_central(stats, prior, tol=tol, n_rounds=5_000, accelerate=accelerate)
        seconds[accelerate] = time.perf_counter() - start
    fast, plain = fits[True], fits[False]
    assert fast.population is not None and plain.population is not None
    apart = population_change(plain.population, fast.population)
    note = (
        f"to tol {tol:g}, both converged: {fast.converged and plain.converged}; the two "
        f"answers {apart:.1e} apart by the stopping rule's measure"
    )
    return [
        Result(
            TOPIC,
            "La Haute Borne fleet fit (weekly periods): rounds, accelerated vs plain EM",
            float(fast.n_rounds),
            "rounds",
            "lower",
            competitor="plain EM rounds",
            competitor_value=float(plain.n_rounds),
            note=note,
        ),
        Result(
            TOPIC,
            "La Haute Borne fleet fit (weekly periods): time, accelerated vs plain EM",
            seconds[True],
            "s",
            "lower",
            competitor="plain EM rounds",
            competitor_value=seconds[False],
            note=note,
            details={"population_change_between": apart},
        ),
    ]


def run(
    *,
    n_twins: int = 1_000,
    n_readings: int = 50_000,
    n_repeats: int = 3,
    n_supernodes: int = 10,
    n_flower_rounds: int = 3,
) -> list[Result]:
    """Every measurement."""
    return [
        *central(n_twins, n_readings, n_repeats=n_repeats),
        *in_process(n_twins, n_readings, n_repeats=n_repeats),
        *flower_rounds(n_supernodes, n_readings, n_rounds=n_flower_rounds),
        *accelerated_rounds(),
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.federated``: the in-process rows (Flower with ``--flower``),
    printed with the machine's load average before and after."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.federated", description=__doc__)
    parser.add_argument("--twins", type=int, default=1_000)
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flower", action="store_true", help="also time Flower rounds")
    parser.add_argument(
        "--la-haute-borne",
        action="store_true",
        help="also count the rounds of La Haute Borne's fleet fit, accelerated and plain",
    )
    args = parser.parse_args(argv)
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}")
    results = [
        *central(args.twins, args.readings, n_repeats=args.repeats),
        *in_process(args.twins, args.readings, n_repeats=args.repeats),
    ]
    if args.flower:
        results.extend(flower_rounds(n_readings=args.readings))
    if args.la_haute_borne:
        results.extend(accelerated_rounds())
    for result in results:
        ratio = "" if result.ratio is None else f", ratio {result.ratio:.2f}"
        value = "-" if result.value is None else f"{result.value:.3g}"
        print(
            f"{result.name}: {value} {result.unit} (target {result.target}{ratio}, "
            f"met {result.met}); {result.note}"
        )
    print(f"load average (1, 5, 15 min) at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
