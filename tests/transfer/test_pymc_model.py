"""twinweave's empirical-Bayes fleet fit against the same model sampled by PyMC's NUTS.

On a small synthetic fleet with known truth, the benchmark's PyMC model
(``benchmarks/pymc_comparison.py``) and ``fit_central`` must agree: the population mean
within 2 PyMC posterior standard deviations, the held-out log predictive density within
1 %, and both must cover the truth. Needs the ``bench`` extra (PyMC).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymc")

# The benchmarks package sits at the repository root, beside src.
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.pymc_comparison import (  # noqa: E402
    Comparison,
    Problem,
    compare,
    lpd_pymc,
    markdown,
    summarise,
)

from twinweave.models import BayesianBasisRegression, SplineTerm  # noqa: E402
from twinweave.transfer import FleetPrior  # noqa: E402

Fitted = tuple[Problem, np.ndarray, Comparison]

N_TWINS = 4
N_READINGS = 300
NOISE_SD = (0.2, 0.4)  # per noise bin, x below and above 5
TRUE_SCALE = 0.3
N_DRAWS = 500


def _emulator() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 10.0, 4),),
        noise_source="x",
        noise_edges=[0.0, 5.0, 10.0],
    )


def _fleet(seed: int) -> tuple[Problem, np.ndarray]:
    """Twins whose weights are drawn around a known mean with the fleet model's shape;
    ``rated_power`` 10 puts PyMC's scale prior at ``HalfNormal(1)``."""
    rng = np.random.default_rng(seed)
    emulator = _emulator()
    centres = np.linspace(-2.5, 12.5, emulator.n_features)
    true_mean = 2.0 * np.sin(centres / 3.0) + 1.0
    shape_chol = np.linalg.cholesky(FleetPrior.from_emulator(emulator).structure_covariance)
    true_weights = true_mean + TRUE_SCALE * rng.standard_normal((N_TWINS, centres.size)) @ (
        shape_chol.T
    )

    def readings(weights: np.ndarray) -> dict[str, np.ndarray]:
        x = rng.uniform(0.0, 10.0, N_READINGS)
        features, bins = emulator.design({"x": x})
        noise = np.asarray(NOISE_SD)[bins] * rng.standard_normal(N_READINGS)
        return {"x": x, "y": features @ weights + noise}

    train = tuple(readings(w) for w in true_weights)
    test = tuple(readings(w) for w in true_weights)
    problem = Problem(
        tuple(f"twin {i}" for i in range(N_TWINS)),
        (emulator,) * N_TWINS,
        train,
        test,
        rated_power=10.0,
    )
    return problem, true_mean


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    problem, true_mean = _fleet(seed=3)
    comparison = compare(
        problem, chains=2, cores=1, draws=N_DRAWS, tune=N_DRAWS, seed=1, n_repeats=1
    )
    return problem, true_mean, comparison


@pytest.mark.slow
def test_sampler_converged(fitted: Fitted) -> None:
    problem, _, comparison = fitted
    assert comparison.fit.converged
    assert comparison.run.max_rhat < 1.05
    assert comparison.run.mu.shape == (2 * N_DRAWS, problem.n_features)
    assert comparison.run.tune == N_DRAWS


@pytest.mark.slow
def test_population_mean_agrees_with_full_bayes(fitted: Fitted) -> None:
    _, true_mean, comparison = fitted
    population = comparison.fit.population
    assert population is not None
    assert comparison.sd_distance.max() < 2.0
    # Empirical Bayes fixes the between-twin scale: its uncertainty about the mean may
    # be smaller than full Bayes's, but not by much with the scale this well determined.
    assert np.all(comparison.sd_ratio > 0.5)
    assert np.all(comparison.sd_ratio < 1.5)
    # Each twin's weights agree too.
    assert comparison.twin_sd_distance < 2.0
    # Both cover the truth.
    theirs = comparison.run.mu
    assert np.max(np.abs(theirs.mean(axis=0) - true_mean) / theirs.std(axis=0)) < 3.5
    ours_sd = np.sqrt(np.diag(population.mean_covariance[0]))
    assert np.max(np.abs(population.mean[0] - true_mean) / ours_sd) < 3.5


@pytest.mark.slow
def test_held_out_log_density_within_one_percent(fitted: Fitted) -> None:
    problem, _, comparison = fitted
    assert comparison.lpd_relative < 0.01
    # A worse curve scores worse: the contract is not trivially met.
    shifted = lpd_pymc(problem, comparison.fit, comparison.run.weights + 0.3)
    assert shifted < comparison.lpd_pymc - 0.01 * abs(comparison.lpd_pymc)


@pytest.mark.slow
def test_rows_report_every_target(fitted: Fitted) -> None:
    problem, _, comparison = fitted
    rows = summarise(comparison, problem.asset_ids)
    assert [r.target is not None for r in rows] == [True, True, False, True, True]
    assert all(r.value is not None and np.isfinite(r.value) for r in rows)
    agreement = {r.name: r.met for r in rows if r.unit in ("sd", "")}
    assert list(agreement.values()) == [True, True]
    # The table's first two rows are the agreement targets, below its header.
    table = markdown(comparison).splitlines()
    assert all(line.endswith("| yes |") for line in table[2:4])
