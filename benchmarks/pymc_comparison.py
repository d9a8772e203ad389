"""Against PyMC: the fleet's hierarchical power-curve model by NUTS, on the same data.

Targets (issue 3, point 4): on 4 La Haute Borne turbines x 5,000 readings of 2014 normal
operation and a 14-weight cubic B-spline power curve, twinweave's population posterior
means lie within 2 PyMC posterior standard deviations of PyMC's, the held-out
predictive log-likelihood (2015 normal operation of the same turbines) is within 1 %,
and twinweave is at least 1,000 times faster.

The model (``docs/FLEET_MODEL.md``, one kind), written for PyMC as twinweave fits it::

    mu     ~ N(mu_0, (mean_prior_weight x P)^-1)     P: the emulator's P-spline precision
    w_i    ~ N(mu, s^2 K)                            K^-1 = smoothness D2^T D2 + I
    power  ~ N(phi(x) . w_i, sigma2_i[j(x)])         j(x): the reading's 0.5 m/s noise bin

Differences, by design:

- twinweave is empirical Bayes: ``s^2`` and every twin's per-bin noise ``sigma2_i`` are
  point estimates (variational EM), and ``mu`` and the ``w_i`` are Gaussian given them.
  PyMC is full Bayes over ``mu``, ``s`` and the ``w_i``, with the weakly informative
  ``s ~ HalfNormal(0.1 x rated power)`` (deviations between turbines of one type are
  expected to be a small fraction of rated power).
- The noise is not sampled: PyMC's ``sigma2_i[j]`` are twinweave's fitted ones, fixed
  (200 variances that are a shrinkage estimator, not a generative model, in twinweave;
  with 5,000 readings per turbine they are well determined). Fixed noise makes PyMC's
  problem smaller and faster, so the time ratio is, if anything, in PyMC's favour.
- PyMC's likelihood reads the readings (the model as a PyMC user writes it); twinweave's
  reads each twin's sufficient statistics.

Both fits use the same design matrix: ``BayesianBasisRegression`` with one
``SplineTerm`` of density-normalised wind speed on 0-25 m/s, 11 segments (14 weights), and
otherwise ``power_curve_emulator``'s settings (generic prior curve, 0.5 m/s noise bins).
The 5,000 readings are a seeded uniform sample of each turbine's 2014 normal operation.
Held-out scores are the mean pointwise log predictive density [nats per reading] of all
2015 normal-operation readings of the same turbines under each method's predictive for
that turbine (censored to ``[0, rated]``, as the readings are); PyMC's is averaged over
``N_PREDICTIVE_DRAWS`` posterior draws.

Times: twinweave's from the readings (statistics by ``update``, then ``fit_central``),
median of repeats, on one core; PyMC's from the readings to the posterior (design
matrices, model, compilation, ``pm.sample``). ``pm.sample`` runs with its defaults (1,000
tuning steps and 1,000 draws per chain, NUTS with ``jitter+adapt_diag``) but for
``chains=4`` and ``cores`` = every logical CPU (PyMC's defaults take half the logical CPUs
for hyperthreads: on 2 of them, 2 chains one after the other). Where the machine has
fewer cores than chains, the "one core per chain" time is the wall-clock outside sampling
(design, model, compilation, convergence checks) plus the slowest chain's CPU time: what
PyMC would take with a dedicated core per chain. The machine's load average is recorded
with every time.

PyMC's run is long: each chain reaches NUTS's maximum tree depth (``mu``'s prior is nearly
flat where no reading reaches, above about 18 m/s) and takes about 10 minutes of CPU, so
this topic takes about 25 minutes on 2 free CPUs, 35 on a shared machine. The figures
measured and what they mean: ``docs/TRANSFER.md``, "Against PyMC".

Run alone: ``python -m benchmarks.pymc_comparison`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from benchmarks._data import Columns, Fleet, load_fleet
from benchmarks._harness import Result, gc_paused, measure, one_core
from twinweave.core import CensoredNormal
from twinweave.domains.wind import generic_power_curve, power_curve_emulator, site_mean_density
from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import FleetPosterior, FleetPrior, TwinStatistics, fit_central

TOPIC = "pymc"
N_READINGS = 5_000
#: Knot intervals of the spline: 11 + 3 = 14 weights.
N_SEGMENTS = 11
CUT_OUT = 25.0
TRAINING_YEAR = 2014
EVALUATION_YEAR = 2015
#: PyMC's prior on the between-turbine scale: ``s ~ HalfNormal(fraction x rated power)``.
SCALE_PRIOR_FRACTION = 0.1
N_CHAINS = 4
N_PREDICTIVE_DRAWS = 1_000
N_REPEATS = 5
#: Targets of the issue.
MAX_SD_DISTANCE = 2.0
MAX_LPD_RELATIVE = 0.01
MAX_TIME_RATIO = 1e-3


def spline_emulator(fleet: Fleet, asset_id: str, training_year: int) -> BayesianBasisRegression:
    """An unfitted 14-weight power curve of density-normalised wind speed [m/s] for the
    turbine's site: ``power_curve_emulator`` without the direction and temperature
    modulations, with 11 spline segments on 0-25 m/s instead of 50."""
    spec = fleet.specs[asset_id]
    base = power_curve_emulator(
        spec.rated_power,
        site_pressure=spec.site_pressure,
        fallback_density=site_mean_density(
            fleet.readings(asset_id, training_year), spec.site_pressure
        ),
        use_direction=False,
        use_temperature=False,
        cut_out=CUT_OUT,
    )
    speed = base.terms[0]
    if not isinstance(speed, SplineTerm):
        raise TypeError(f"power_curve_emulator: expected a SplineTerm first, got {speed!r}")
    main = SplineTerm(speed.source, 0.0, CUT_OUT, N_SEGMENTS)
    params = base.get_params()
    params["terms"] = (main,)
    params["prior_mean"] = generic_power_curve(np.clip(main.centres(), 0.0, None), spec.rated_power)
    return BayesianBasisRegression(**params)


@dataclass(frozen=True)
class Problem:
    """The turbines' training and held-out readings and their (unfitted) emulators.

    Parameters
    ----------
    asset_ids
        The turbines, in order.
    emulators
        Each turbine's configured emulator: its design (features, noise bins, bounds).
    train, test
        Each turbine's training and held-out input columns, with the target.
    rated_power
        The target's upper bound [kW]; PyMC's scale prior is ``SCALE_PRIOR_FRACTION`` of it.
    """

    asset_ids: tuple[str, ...]
    emulators: tuple[BayesianBasisRegression, ...]
    train: tuple[Columns, ...]
    test: tuple[Columns, ...]
    rated_power: float

    @property
    def n_features(self) -> int:
        return self.emulators[0].n_features

    def n_readings(self, readings: Sequence[Columns]) -> int:
        return sum(
            int(np.size(columns[e.target]))
            for e, columns in zip(self.emulators, readings, strict=True)
        )


def _rows(columns: Columns, index: np.ndarray) -> Columns:
    return {name: values[index] for name, values in columns.items()}


def build_problem(
    fleet: Fleet,
    *,
    n_readings: int = N_READINGS,
    n_test: int | None = None,
    seed: int = 0,
    training_year: int = TRAINING_YEAR,
    evaluation_year: int = EVALUATION_YEAR,
) -> Problem:
    """``n_readings`` readings per turbine drawn uniformly (seeded) from its training
    year, in time order, and its evaluation year's readings (all, or ``n_test`` drawn
    likewise)."""
    rng = np.random.default_rng(seed)
    emulators, train, test = [], [], []
    for asset in fleet.asset_ids:
        columns = fleet.inputs(asset, training_year)
        n_train = columns["power"].size
        if n_train < n_readings:
            raise ValueError(
                f"{asset}: expected at least {n_readings} readings in {training_year}, "
                f"got {n_train}"
            )
        train.append(_rows(columns, np.sort(rng.choice(n_train, n_readings, replace=False))))
        held_out = fleet.inputs(asset, evaluation_year)
        size = held_out["power"].size
        if n_test is not None and n_test < size:
            held_out = _rows(held_out, np.sort(rng.choice(size, n_test, replace=False)))
        test.append(held_out)
        emulators.append(spline_emulator(fleet, asset, training_year))
    rated = {fleet.specs[a].rated_power for a in fleet.asset_ids}
    if len(rated) != 1:
        raise ValueError(f"fleet: expected one turbine type, got rated powers {sorted(rated)}")
    return Problem(tuple(fleet.asset_ids), tuple(emulators), tuple(train), tuple(test), *rated)


# -- twinweave ------------------------------------------------------------------------------
def twin_statistics(problem: Problem) -> dict[int, TwinStatistics]:
    """Each turbine's statistics, by its position in the problem: a fresh emulator
    updated with its training readings."""
    return {
        i: TwinStatistics.from_emulator(BayesianBasisRegression(**e.get_params()).update(columns))
        for i, (e, columns) in enumerate(zip(problem.emulators, problem.train, strict=True))
    }


def fleet_prior(problem: Problem) -> FleetPrior:
    return FleetPrior.from_emulator(problem.emulators[0])


def fit_twinweave(problem: Problem) -> FleetPosterior:
    """Partial pooling from the readings: statistics, then ``fit_central``."""
    return fit_central(twin_statistics(problem), fleet_prior(problem))


# -- PyMC -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TwinData:
    """One twin's training readings as PyMC reads them."""

    features: np.ndarray  # (n, p)
    power: np.ndarray  # (n,) [kW]
    noise_sd: np.ndarray  # (n,) [kW], the twin's fitted noise in the reading's bin


def twin_data(problem: Problem, fit: FleetPosterior) -> list[TwinData]:
    """Each twin's design matrix and readings, with twinweave's fitted noise."""
    out = []
    for i, (emulator, columns) in enumerate(zip(problem.emulators, problem.train, strict=True)):
        phi, bins = emulator.design(columns)
        power = np.asarray(columns[emulator.target], dtype=np.float64)
        out.append(TwinData(phi, power, np.sqrt(fit.twins[i].noise_var[bins])))
    return out


def pymc_model(data: Sequence[TwinData], prior: FleetPrior, scale_prior_sd: float) -> Any:
    """The fleet model in PyMC: population mean ``mu``, one scale ``s`` per basis term,
    each twin's weights ``w_i`` (stacked in the deterministic ``w``), and readings with
    fixed per-bin noise.

    Parameters
    ----------
    data
        Per twin: features, readings and noise standard deviations [kW].
    prior
        twinweave's hierarchy settings: the mean's prior ``N(prior_mean,
        (mean_prior_weight x prior_precision)^-1)`` and the shape ``K`` of deviations
        between twins (``structure_covariance``, one block per basis term).
    scale_prior_sd
        ``s_b ~ HalfNormal(scale_prior_sd)`` [kW], for each block ``b``.

    Notes
    -----
    One ``MvNormal`` per twin and one ``dot`` per twin: in PyTensor 2.38 a batched
    ``MvNormal`` whose Cholesky factor depends on a parameter, and indexing the weights
    by each reading's twin, cost 10 to 100 times more per gradient than this.
    """
    import pymc as pm
    import pytensor.tensor as pt

    mean_covariance = np.linalg.inv(prior.mean_prior_weight * prior.prior_precision)
    mean_covariance = 0.5 * (mean_covariance + mean_covariance.T)
    shape_chol = np.linalg.cholesky(prior.structure_covariance)
    # Block of each weight: the Cholesky factor of blockdiag(s_b^2 K_b) is blockdiag(s_b L_b).
    block_of = np.repeat(np.arange(len(prior.blocks)), prior.blocks)
    with pm.Model() as model:
        mu = pm.MvNormal("mu", mu=prior.prior_mean, chol=np.linalg.cholesky(mean_covariance))
        scale = pm.HalfNormal("scale", sigma=scale_prior_sd, shape=len(prior.blocks))
        chol = shape_chol * scale[block_of][:, None]
        weights = [pm.MvNormal(f"w_{i}", mu=mu, chol=chol) for i in range(len(data))]
        pm.Deterministic("w", pt.stack(weights))
        pm.Normal(
            "power",
            mu=pt.concatenate([pt.dot(d.features, w) for d, w in zip(data, weights, strict=True)]),
            sigma=np.concatenate([d.noise_sd for d in data]),
            observed=np.concatenate([d.power for d in data]),
        )
    return model


@dataclass(frozen=True)
class PyMCRun:
    """Posterior draws and how they were obtained."""

    mu: np.ndarray  # (n_draws, p)
    weights: np.ndarray  # (n_draws, n_twins, p)
    scale: np.ndarray  # (n_draws, n_blocks)
    wall_s: float
    setup_s: float
    chain_cpu_s: tuple[float, ...]
    chain_wall_s: tuple[float, ...]
    n_divergent: int
    max_rhat: float
    min_ess_bulk: float
    chains: int
    cores: int
    mean_tree_depth: float
    max_tree_depth: int
    n_gradients: int  # leapfrog steps, tuning included
    draws: int
    tune: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def one_core_per_chain_s(self) -> float:
        """Setup (design, model, compilation, after sampling the convergence checks)
        plus the slowest chain's CPU time: the wall-clock with one free core per chain."""
        return self.setup_s + max(self.chain_cpu_s)


def sample_pymc(
    problem: Problem,
    fit: FleetPosterior,
    *,
    chains: int = N_CHAINS,
    cores: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int = 0,
    scale_prior_sd: float | None = None,
) -> PyMCRun:
    """NUTS on the fleet model (``pm.sample`` defaults unless ``draws``, ``tune`` given),
    timed from the readings to the posterior draws."""
    import arviz as az
    import pymc as pm

    load_before = os.getloadavg()
    start = time.perf_counter()
    model = pymc_model(
        twin_data(problem, fit),
        fleet_prior(problem),
        SCALE_PRIOR_FRACTION * problem.rated_power if scale_prior_sd is None else scale_prior_sd,
    )
    extra: dict[str, int] = {}
    if draws is not None:
        extra["draws"] = draws
    if tune is not None:
        extra["tune"] = tune
    if cores is None:
        # Every logical CPU: PyMC's default (half of them, taking the rest for
        # hyperthreads) would run the chains one after another on a 2-CPU machine.
        cores = min(chains, len(os.sched_getaffinity(0)))
    # Tuning draws are kept (not used) for their timings: a chain's CPU time includes them.
    idata = pm.sample(
        chains=chains,
        cores=cores,
        random_seed=seed,
        progressbar=False,
        discard_tuned_samples=False,
        model=model,
        **extra,
    )
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    posterior = idata.posterior
    stats = idata.sample_stats
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    rhat = az.rhat(idata, var_names=["mu", "scale", "w"])
    ess = az.ess(idata, var_names=["mu", "scale", "w"], method="bulk")
    every_step = [stats, *([idata.warmup_sample_stats] if "warmup_sample_stats" in idata else [])]
    chain_cpu = sum(s["process_time_diff"].sum("draw").to_numpy() for s in every_step)
    chain_wall = sum(s["perf_counter_diff"].sum("draw").to_numpy() for s in every_step)
    n_tuned = int(posterior.attrs.get("tuning_steps", 0))
    return PyMCRun(
        mu=posterior["mu"].to_numpy().reshape(n_chains * n_draws, -1),
        weights=posterior["w"].to_numpy().reshape(n_chains * n_draws, *posterior["w"].shape[2:]),
        scale=posterior["scale"].to_numpy().reshape(n_chains * n_draws, -1),
        wall_s=wall,
        setup_s=wall - float(posterior.attrs["sampling_time"]),
        chain_cpu_s=tuple(float(c) for c in chain_cpu),
        chain_wall_s=tuple(float(c) for c in chain_wall),
        n_divergent=int(stats["diverging"].sum()),
        max_rhat=float(max(float(rhat[v].max()) for v in rhat.data_vars)),
        min_ess_bulk=float(min(float(ess[v].min()) for v in ess.data_vars)),
        chains=n_chains,
        cores=cores,
        mean_tree_depth=float(stats["tree_depth"].mean()),
        max_tree_depth=int(stats["tree_depth"].max()),
        n_gradients=int(sum(float(s["n_steps"].sum()) for s in every_step)),
        draws=n_draws,
        tune=n_tuned,
        load_before=load_before,
        load_after=load_after,
    )


# -- held-out scores ------------------------------------------------------------------------
def lpd_twinweave(problem: Problem, fit: FleetPosterior) -> float:
    """Mean pointwise log predictive density of the held-out readings [nats/reading]."""
    total, count = 0.0, 0
    for i, (emulator, columns) in enumerate(zip(problem.emulators, problem.test, strict=True)):
        y = np.asarray(columns[emulator.target], dtype=np.float64)
        total += float(fit.predict(i, columns, emulator).log_prob(y).sum())
        count += y.size
    return total / count


def lpd_pymc(
    problem: Problem,
    fit: FleetPosterior,
    weights: np.ndarray,
    *,
    n_draws: int = N_PREDICTIVE_DRAWS,
    chunk: int = 4_096,
) -> float:
    """The same score under PyMC's posterior: per reading, the log of the mean over
    ``n_draws`` evenly spaced draws of the censored-normal density given the draw's
    weights and the (fixed) noise."""
    pick = np.linspace(0, weights.shape[0] - 1, min(n_draws, weights.shape[0])).astype(int)
    draws = weights[pick]
    total, count = 0.0, 0
    for i, (emulator, columns) in enumerate(zip(problem.emulators, problem.test, strict=True)):
        y = np.asarray(columns[emulator.target], dtype=np.float64)
        phi, bins = emulator.design(columns)
        noise = fit.twins[i].noise_var[bins]
        for lo in range(0, y.size, chunk):
            hi = min(lo + chunk, y.size)
            loc = phi[lo:hi] @ draws[:, i, :].T  # (points, draws)
            density = CensoredNormal(
                loc.ravel(),
                np.repeat(noise[lo:hi], pick.size),
                lower=emulator.lower,
                upper=emulator.upper,
            ).log_prob(np.repeat(y[lo:hi], pick.size))
            per_point = logsumexp(density.reshape(hi - lo, pick.size), axis=1) - math.log(pick.size)
            total += float(per_point.sum())
        count += y.size
    return total / count


# -- the comparison -------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """Everything measured, for the rows and the Markdown table."""

    sd_distance: np.ndarray  # (p,) |twinweave - PyMC| / PyMC sd of each population weight
    sd_ratio: np.ndarray  # (p,) twinweave sd / PyMC sd of each population weight
    twin_sd_distance: float  # the largest of the same over every twin's weights
    lpd_twinweave: float
    lpd_pymc: float
    twinweave_wall_s: float
    twinweave_cpu_s: float
    twinweave_fit_wall_s: float
    twinweave_scale: np.ndarray  # (n_blocks,) s_b [kW]
    pymc_scale: np.ndarray  # (n_blocks,) posterior mean of s_b [kW]
    n_rounds: int
    fit: FleetPosterior
    run: PyMCRun
    n_readings: int
    n_test: int

    @property
    def lpd_relative(self) -> float:
        return abs(self.lpd_twinweave - self.lpd_pymc) / abs(self.lpd_pymc)


def _timed(run: Any, repeats: int) -> tuple[float, float]:
    with one_core(), gc_paused():
        timing = measure(run, repeats=repeats)
    return timing.wall_median, timing.cpu_median


def compare(
    problem: Problem,
    *,
    chains: int = N_CHAINS,
    cores: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int = 0,
    n_repeats: int = N_REPEATS,
) -> Comparison:
    """Fit both, time both, score both (``sample_pymc``'s arguments for PyMC)."""
    fit = fit_twinweave(problem)
    population = fit.population
    if population is None:
        raise RuntimeError("fit_central: expected a population")
    wall, cpu = _timed(lambda: fit_twinweave(problem), n_repeats)
    stats = twin_statistics(problem)
    prior = fleet_prior(problem)
    fit_wall, _ = _timed(lambda: fit_central(stats, prior), n_repeats)
    run = sample_pymc(problem, fit, chains=chains, cores=cores, draws=draws, tune=tune, seed=seed)
    pymc_mean, pymc_sd = run.mu.mean(axis=0), run.mu.std(axis=0, ddof=1)
    ours_sd = np.sqrt(np.diag(population.mean_covariance[0]))
    twin_distance = max(
        float(
            np.max(
                np.abs(twin.mean - run.weights[:, i].mean(axis=0))
                / run.weights[:, i].std(axis=0, ddof=1)
            )
        )
        for i, twin in fit.twins.items()
    )
    k_diag = np.diag(prior.structure_covariance)
    scales = np.array(
        [
            math.sqrt(float(np.mean(np.diag(population.covariance[0])[b] / k_diag[b])))
            for b in prior.block_slices
        ]
    )
    return Comparison(
        sd_distance=np.abs(population.mean[0] - pymc_mean) / pymc_sd,
        sd_ratio=ours_sd / pymc_sd,
        twin_sd_distance=twin_distance,
        lpd_twinweave=lpd_twinweave(problem, fit),
        lpd_pymc=lpd_pymc(problem, fit, run.weights),
        twinweave_wall_s=wall,
        twinweave_cpu_s=cpu,
        twinweave_fit_wall_s=fit_wall,
        twinweave_scale=scales,
        pymc_scale=run.scale.mean(axis=0),
        n_rounds=fit.n_rounds,
        fit=fit,
        run=run,
        n_readings=problem.n_readings(problem.train),
        n_test=problem.n_readings(problem.test),
    )


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def summarise(c: Comparison, asset_ids: Sequence[str]) -> list[Result]:
    """The comparison as benchmark rows: times as ratios, agreement against targets."""
    run = c.run
    setting = (
        f"{len(asset_ids)} turbines x {c.n_readings // len(asset_ids)} readings, "
        f"{c.sd_distance.size} weights; PyMC {run.chains} chains x {run.draws} draws "
        f"({run.tune} tuning) on {run.cores} cores"
    )
    diagnostics = (
        f"PyMC: {run.n_divergent} divergent transitions, max r-hat {run.max_rhat:.3f}, "
        f"min bulk ESS {run.min_ess_bulk:.0f}; load average {_load(run.load_before)} "
        f"before, {_load(run.load_after)} after"
    )
    common: dict[str, Any] = {
        "assets": list(asset_ids),
        "versions": {name: _version(name) for name in ("pymc", "pytensor", "arviz")},
        "n_readings": c.n_readings,
        "n_test": c.n_test,
        "pymc_chains": run.chains,
        "pymc_draws": run.draws,
        "pymc_tune": run.tune,
        "pymc_divergent": run.n_divergent,
        "pymc_max_rhat": run.max_rhat,
        "pymc_min_ess_bulk": run.min_ess_bulk,
        "pymc_mean_tree_depth": run.mean_tree_depth,
        "pymc_max_tree_depth": run.max_tree_depth,
        "pymc_gradients_in_draws": run.n_gradients,
        "pymc_wall_s": run.wall_s,
        "pymc_setup_s": run.setup_s,
        "pymc_chain_cpu_s": list(run.chain_cpu_s),
        "pymc_chain_wall_s": list(run.chain_wall_s),
        "load_before": list(run.load_before),
        "load_after": list(run.load_after),
        "twinweave_wall_s": c.twinweave_wall_s,
        "twinweave_cpu_s": c.twinweave_cpu_s,
        "twinweave_fit_central_wall_s": c.twinweave_fit_wall_s,
        "twinweave_rounds": c.n_rounds,
    }
    return [
        Result(
            TOPIC,
            "fit wall-clock from readings, twinweave vs PyMC NUTS",
            c.twinweave_wall_s,
            "s",
            "lower",
            target=MAX_TIME_RATIO,
            target_on="ratio",
            competitor="PyMC NUTS (as run)",
            competitor_value=run.wall_s,
            note=f"{setting}; twinweave: statistics + fit_central, median of repeats, one "
            f"core; PyMC: design, model, compile, pm.sample. {diagnostics}",
            details=common,
        ),
        Result(
            TOPIC,
            "fit time, twinweave CPU vs PyMC with one core per chain",
            c.twinweave_cpu_s,
            "s",
            "lower",
            target=MAX_TIME_RATIO,
            target_on="ratio",
            competitor="PyMC NUTS (setup + slowest chain's CPU)",
            competitor_value=run.one_core_per_chain_s,
            note="what each would take on dedicated cores, the load left out",
            details=common,
        ),
        Result(
            TOPIC,
            "fit_central from statistics vs PyMC NUTS",
            c.twinweave_fit_wall_s,
            "s",
            "lower",
            competitor="PyMC NUTS (as run)",
            competitor_value=run.wall_s,
            note="twinweave's rounds alone, the statistics already on the twins",
            details=common,
        ),
        Result(
            TOPIC,
            "population mean: max |twinweave - PyMC| / PyMC sd",
            float(c.sd_distance.max()),
            "sd",
            "lower",
            target=MAX_SD_DISTANCE,
            note=f"over the {c.sd_distance.size} weights of mu; twinweave sd / PyMC sd from "
            f"{c.sd_ratio.min():.2f} to {c.sd_ratio.max():.2f}; twins' weights: max "
            f"{c.twin_sd_distance:.2f} sd; scale s twinweave "
            f"{', '.join(f'{s:.1f}' for s in c.twinweave_scale)} kW, PyMC "
            f"{', '.join(f'{s:.1f}' for s in c.pymc_scale)} kW",
            details={
                **common,
                "sd_distance": c.sd_distance.tolist(),
                "sd_ratio": c.sd_ratio.tolist(),
                "twin_sd_distance_max": c.twin_sd_distance,
                "twinweave_scale_kw": c.twinweave_scale.tolist(),
                "pymc_scale_kw": c.pymc_scale.tolist(),
            },
        ),
        Result(
            TOPIC,
            "held-out log predictive density: |twinweave - PyMC| / |PyMC|",
            c.lpd_relative,
            "",
            "lower",
            target=MAX_LPD_RELATIVE,
            note=f"{c.n_test} readings of {EVALUATION_YEAR}: twinweave {c.lpd_twinweave:.4f}, "
            f"PyMC {c.lpd_pymc:.4f} nats/reading",
            details={**common, "lpd_twinweave": c.lpd_twinweave, "lpd_pymc": c.lpd_pymc},
        ),
    ]


def run(
    fleet: Fleet,
    *,
    n_readings: int = N_READINGS,
    chains: int = N_CHAINS,
    draws: int | None = None,
    tune: int | None = None,
    seed: int = 0,
) -> list[Result]:
    """The comparison on the benchmark fleet; a single "skipped" row without PyMC."""
    try:
        import pymc  # noqa: F401
    except ImportError:
        return [
            Result(
                TOPIC,
                "skipped",
                None,
                "",
                "lower",
                note="pymc is not installed: pip install -e '.[bench]'",
            )
        ]
    problem = build_problem(fleet, n_readings=n_readings, seed=seed)
    comparison = compare(problem, chains=chains, draws=draws, tune=tune, seed=seed)
    return summarise(comparison, problem.asset_ids)


def markdown(c: Comparison) -> str:
    """The measured figures as a Markdown table."""
    run = c.run
    ratio = run.wall_s / c.twinweave_wall_s
    ratio_cores = run.one_core_per_chain_s / c.twinweave_cpu_s
    rows = [
        (
            "population means, max \\|twinweave - PyMC\\| / PyMC sd",
            f"{c.sd_distance.max():.2f}",
            "<= 2",
            c.sd_distance.max() <= MAX_SD_DISTANCE,
        ),
        (
            "held-out log predictive density [nats/reading], twinweave / PyMC",
            f"{c.lpd_twinweave:.4f} / {c.lpd_pymc:.4f} ({c.lpd_relative:.2%})",
            "within 1 %",
            c.lpd_relative <= MAX_LPD_RELATIVE,
        ),
        (
            "wall-clock, as run: PyMC / twinweave",
            f"{run.wall_s:.1f} s / {c.twinweave_wall_s * 1e3:.1f} ms = {ratio:,.0f}x",
            ">= 1,000x",
            ratio >= 1 / MAX_TIME_RATIO,
        ),
        (
            "one core per chain: PyMC (setup + slowest chain CPU) / twinweave CPU",
            f"{run.one_core_per_chain_s:.1f} s / {c.twinweave_cpu_s * 1e3:.1f} ms = "
            f"{ratio_cores:,.0f}x",
            ">= 1,000x",
            ratio_cores >= 1 / MAX_TIME_RATIO,
        ),
    ]
    lines = ["| measure | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {t} | {'yes' if ok else 'MISS'} |" for a, b, t, ok in rows]
    lines += [
        "",
        f"Per weight of mu, \\|twinweave - PyMC\\| / PyMC sd: "
        f"{', '.join(f'{d:.2f}' for d in c.sd_distance)}; twinweave sd / PyMC sd: "
        f"{', '.join(f'{r:.2f}' for r in c.sd_ratio)}. Twins' weights: max "
        f"{c.twin_sd_distance:.2f} sd. Between-turbine scale s: twinweave "
        f"{', '.join(f'{s:.1f}' for s in c.twinweave_scale)} kW (point estimate), PyMC "
        f"{', '.join(f'{s:.1f}' for s in c.pymc_scale)} kW (posterior mean).",
        "",
        f"twinweave: {c.n_rounds} rounds; fit_central alone {c.twinweave_fit_wall_s * 1e3:.1f} "
        f"ms. PyMC {run.chains} chains x {run.draws} draws ({run.tune} tuning) on "
        f"{run.cores} cores: setup {run.setup_s:.1f} s, chains' CPU "
        f"{', '.join(f'{s:.0f}' for s in run.chain_cpu_s)} s, {run.n_divergent} divergent "
        f"transitions, max r-hat {run.max_rhat:.3f}, min bulk ESS {run.min_ess_bulk:.0f}. "
        f"Load average (1/5/15 min) {_load(run.load_before)} before PyMC, "
        f"{_load(run.load_after)} after, on {os.cpu_count()} logical CPUs.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pymc_comparison", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--readings", type=int, default=N_READINGS, help="per turbine")
    parser.add_argument("--chains", type=int, default=N_CHAINS)
    parser.add_argument("--draws", type=int, help="default: pm.sample's")
    parser.add_argument("--tune", type=int, help="default: pm.sample's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fleet = load_fleet()
    problem = build_problem(fleet, n_readings=args.readings, seed=args.seed)
    comparison = compare(
        problem, chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed
    )
    print(markdown(comparison))
    for result in summarise(comparison, problem.asset_ids):
        if result.met is False:
            print(f"MISS: {result.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
