"""Statistical contracts of the censored normal predictive distribution."""

from __future__ import annotations

import numpy as np
import pytest

from twinweave.core import CensoredNormal, Predictive


@pytest.fixture
def predictive() -> CensoredNormal:
    rng = np.random.default_rng(1)
    loc = rng.uniform(-300, 2300, 200)
    return CensoredNormal(
        loc,
        rng.uniform(50, 200, 200) ** 2,
        lower=0.0,
        upper=2050.0,
        units="kW",
        factor=rng.normal(0, 30, (200, 3)),
    )


def test_is_a_predictive(predictive: CensoredNormal) -> None:
    assert isinstance(predictive, Predictive)
    assert predictive.units == "kW"


def test_quantiles_and_samples_stay_within_bounds(predictive: CensoredNormal) -> None:
    q = predictive.quantile([0.001, 0.05, 0.5, 0.95, 0.999])
    assert q.min() >= 0.0 and q.max() <= 2050.0
    s = predictive.sample(500, seed=0)
    assert s.min() >= 0.0 and s.max() <= 2050.0
    # Some points sit beyond a bound: their extreme quantiles must be exactly on it.
    assert (q == 0.0).any() and (q == 2050.0).any()


def test_moments_match_monte_carlo(predictive: CensoredNormal) -> None:
    samples = predictive.sample(40_000, seed=2)
    se_mean = samples.std(axis=0) / np.sqrt(samples.shape[0])
    z = (samples.mean(axis=0) - predictive.mean) / np.maximum(se_mean, 1e-9)
    assert np.mean(np.abs(z) < 4) == 1.0
    rel = np.abs(samples.var(axis=0) - predictive.var) / np.maximum(predictive.var, 1.0)
    assert np.median(rel) < 0.02


def test_interval_coverage_is_nominal() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    loc = rng.uniform(0, 2050, n)
    p = CensoredNormal(loc, np.full(n, 100.0**2), lower=0.0, upper=2050.0)
    y = np.clip(loc + rng.normal(0, 100, n), 0, 2050)
    lo, hi = p.interval(0.9)
    coverage = np.mean((y >= lo) & (y <= hi))
    # Binomial standard error at n=20,000 is 0.0021; censoring only adds mass inside.
    assert 0.895 <= coverage <= 0.92


def test_log_prob_integrates_to_one() -> None:
    grid = np.linspace(0, 300, 30_001)[1:-1]
    p = CensoredNormal(np.full(grid.size, 100.0), 80.0**2, lower=0.0, upper=300.0)
    inside = np.trapezoid(np.exp(p.log_prob(grid)), grid)
    mass = np.exp(p.log_prob(np.zeros(grid.size))[0]) + np.exp(
        p.log_prob(np.full(grid.size, 300.0))[0]
    )
    assert inside + mass == pytest.approx(1.0, abs=1e-4)
    assert p.log_prob(np.full(grid.size, -1.0))[0] == -np.inf


def test_crps_matches_its_expectation_form() -> None:
    # CRPS(F, y) = E|Y - y| - E|Y - Y'| / 2 (Gneiting and Raftery 2007, eq. 21).
    p = CensoredNormal([50.0, 1990.0, 900.0], [120.0**2, 90.0**2, 60.0**2], lower=0, upper=2050)
    y = np.array([0.0, 2050.0, 1000.0])
    s = p.sample(200_000, seed=4)
    s2 = p.sample(200_000, seed=5)
    expected = np.abs(s - y).mean(axis=0) - 0.5 * np.abs(s - s2).mean(axis=0)
    np.testing.assert_allclose(p.crps(y), expected, rtol=0.02, atol=0.2)


def test_shared_factor_correlates_sample_paths() -> None:
    n = 50
    p = CensoredNormal(np.zeros(n), np.full(n, 1.0), factor=np.full((n, 1), 3.0))
    totals = p.sample(20_000, seed=6).sum(axis=1)
    # Var(sum) = n * 1 + (3 n)^2 when the factor is shared; n * 10 if it were not.
    assert totals.var() == pytest.approx(n + (3 * n) ** 2, rel=0.05)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="noise_var"):
        CensoredNormal([0.0], [-1.0])
    with pytest.raises(ValueError, match="lower <= upper"):
        CensoredNormal([0.0], [1.0], lower=2.0, upper=1.0)
    with pytest.raises(ValueError, match=r"q: expected probabilities in \(0, 1\)"):
        CensoredNormal([0.0], [1.0]).quantile(1.5)
