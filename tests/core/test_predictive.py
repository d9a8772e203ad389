"""Statistical contracts of the censored normal predictive distribution."""

from __future__ import annotations

import datetime
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twinweave.core import (
    CensoredNormal,
    DeferredFactor,
    ExponentialCorrelation,
    Predictive,
    ResidualCorrelation,
    time_seconds,
)


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
    # Each end leaves 5 % of the latent normal beyond it (scipy's), unless it sits at a
    # bound whose censored mass is 5 % or more; an interval wider or narrower by 0.1 %
    # fails.
    below, above = stats.norm.cdf(lo, loc, 100.0), stats.norm.sf(hi, loc, 100.0)
    np.testing.assert_allclose(below[lo > 0.0], 0.05, rtol=1e-9)
    np.testing.assert_allclose(above[hi < 2050.0], 0.05, rtol=1e-9)
    assert np.all(below[lo == 0.0] >= 0.05) and np.all(above[hi == 2050.0] >= 0.05)
    # So an interval holds 0.9 of the censored normal, more where an end is at a bound;
    # the readings drawn from it are covered that often (a sum of Bernoullis).
    claimed = np.where(hi == 2050.0, 1.0, 1.0 - above) - np.where(lo == 0.0, 0.0, below)
    covered = int(np.sum((y >= lo) & (y <= hi)))
    assert abs(covered - claimed.sum()) < 3 * np.sqrt(np.sum(claimed * (1 - claimed)))


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


def deferred(factor: np.ndarray, builds: list[int]) -> DeferredFactor:
    """``factor`` handed over deferred; ``builds`` counts the calls of its build."""

    def build() -> np.ndarray:
        builds.append(1)
        return factor

    return DeferredFactor(build, np.einsum("ij,ij->i", factor, factor))


def test_a_deferred_factor_is_built_once_and_only_for_joint_quantities(
    predictive: CensoredNormal,
) -> None:
    dense = predictive.factor
    assert dense is not None
    builds: list[int] = []
    lazy = predictive.replace(factor=deferred(dense, builds))
    for name in ("mean", "var", "latent_var"):
        np.testing.assert_array_equal(getattr(lazy, name), getattr(predictive, name))
    np.testing.assert_array_equal(lazy.quantile([0.05, 0.95]), predictive.quantile([0.05, 0.95]))
    np.testing.assert_array_equal(
        lazy.with_bound_masses(None, None).interval()[0], lazy.interval()[0]
    )
    assert builds == []
    # Sample paths need the factor itself; the same seed gives the same paths.
    np.testing.assert_array_equal(lazy.sample(3, seed=2), predictive.sample(3, seed=2))
    lazy.sample(3, seed=3)
    assert builds == [1]


def test_a_deferred_factor_stays_deferred_through_slices_and_replace() -> None:
    rng = np.random.default_rng(4)
    dense = rng.normal(0.0, 2.0, (6, 2))
    builds: list[int] = []
    lazy = CensoredNormal(np.zeros(6), np.ones(6), factor=deferred(dense, builds))
    part = lazy[np.array([4, 1])].replace(units="kW")
    np.testing.assert_array_equal(part.latent_var, 1.0 + np.sum(dense[[4, 1]] ** 2, axis=1))
    assert builds == []
    assert part.factor is not None
    np.testing.assert_array_equal(part.factor, dense[[4, 1]])
    assert builds == [1]


def test_a_slice_of_a_deferred_factor_does_not_follow_a_changed_index() -> None:
    dense = np.arange(12.0).reshape(6, 2)
    lazy = CensoredNormal(np.zeros(6), np.ones(6), factor=deferred(dense, []))
    index = np.array([4, 1])
    part = lazy[index]
    index[:] = [0, 0]  # the caller reuses its array before the factor is built
    assert part.factor is not None
    np.testing.assert_array_equal(part.factor, dense[[4, 1]])


def test_scaling_keeps_a_deferred_factor_deferred_and_scales_it() -> None:
    dense = np.arange(12.0).reshape(6, 2)
    builds: list[int] = []
    lazy = CensoredNormal(np.ones(6), np.ones(6), factor=deferred(dense, builds))
    scaled = lazy.scaled(0.5)
    np.testing.assert_allclose(scaled.latent_var, 0.25 * lazy.latent_var)
    np.testing.assert_allclose(scaled.loc, 0.5)
    assert builds == []
    assert scaled.factor is not None
    np.testing.assert_array_equal(scaled.factor, 0.5 * dense)


def test_a_deferred_factor_is_pickled_built() -> None:
    dense = np.arange(12.0).reshape(6, 2)
    lazy = CensoredNormal(np.ones(6), np.ones(6), lower=0.0, factor=deferred(dense, []))[1:5]
    restored = pickle.loads(pickle.dumps(lazy))
    assert restored.factor is not None
    np.testing.assert_array_equal(restored.factor, dense[1:5])
    np.testing.assert_array_equal(restored.quantile(0.9), lazy.quantile(0.9))


def test_rejects_a_deferred_factor_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"factor: expected a row variance per point \(3\), got 2"):
        CensoredNormal(
            np.zeros(3), np.ones(3), factor=DeferredFactor(lambda: np.ones((3, 1)), np.ones(2))
        )
    with pytest.raises(ValueError, match="row_var: expected one non-negative variance per point"):
        DeferredFactor(lambda: np.ones((3, 1)), -np.ones(3))
    wrong = CensoredNormal(
        np.zeros(3), np.ones(3), factor=DeferredFactor(lambda: np.ones((2, 1)), np.ones(3))
    )
    with pytest.raises(
        ValueError, match=r"factor: expected its build to give shape \(3, k\), got \(2, 1\)"
    ):
        wrong.sample(1)
    with pytest.raises(TypeError, match=r"replace: unknown arguments \['scale'\]"):
        wrong.replace(scale=2.0)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="noise_var"):
        CensoredNormal([0.0], [-1.0])
    with pytest.raises(ValueError, match="lower <= upper"):
        CensoredNormal([0.0], [1.0], lower=2.0, upper=1.0)
    with pytest.raises(ValueError, match=r"q: expected probabilities in \(0, 1\)"):
        CensoredNormal([0.0], [1.0]).quantile(1.5)


# -- correlation in time ------------------------------------------------------------------
STEP = 600.0  # [s], 10-minute readings


def ar1_sum_variance(times: np.ndarray, std: np.ndarray, rho: float) -> float:
    """Var(sum) of an AR(1) with coefficient rho per STEP at ``times``: sum_ij s_i s_j rho^|dt|."""
    lag = np.abs(times[:, None] - times[None, :]) / STEP
    return float(std @ rho**lag @ std)


def test_sums_of_correlated_paths_have_the_variance_of_an_ar1_sum() -> None:
    rng = np.random.default_rng(7)
    n, rho = 400, 0.7
    # Regular 10-minute steps with irregular gaps (stops of 20 min to a day).
    steps = np.where(rng.random(n) < 0.05, rng.integers(2, 144, n), 1)
    times = 1.42e9 + STEP * np.cumsum(steps)
    std = rng.uniform(20.0, 120.0, n)
    p = CensoredNormal(
        np.zeros(n), std**2, times=times, correlation=ExponentialCorrelation.ar1(rho, STEP)
    )
    n_paths = 20_000
    totals = p.sample(n_paths, seed=8).sum(axis=1)
    expected = ar1_sum_variance(times, std, rho)
    # The sample variance of 20,000 Gaussian sums has relative standard error
    # sqrt(2 / 20,000) = 1 %; independent noise would give a third of the variance.
    assert totals.var() == pytest.approx(expected, rel=0.04)
    assert np.sum(std**2) < 0.4 * expected
    # Lag-one correlation of the paths at one step apart, as the AR(1) says.
    paths = p.sample(4_000, seed=9) / std
    adjacent = np.flatnonzero(np.diff(times) == STEP)
    r = np.mean(paths[:, adjacent] * paths[:, adjacent + 1])
    assert r == pytest.approx(rho, abs=0.01)


def test_correlation_changes_sample_paths_but_no_marginal() -> None:
    rng = np.random.default_rng(10)
    n = 300
    loc = rng.uniform(-300, 2300, n)
    noise = rng.uniform(50, 200, n) ** 2
    factor = rng.normal(0, 30, (n, 2))
    times = STEP * np.arange(n)
    plain = CensoredNormal(loc, noise, lower=0.0, upper=2050.0, factor=factor)
    correlated = CensoredNormal(
        loc,
        noise,
        lower=0.0,
        upper=2050.0,
        factor=factor,
        times=times,
        correlation=ExponentialCorrelation((0.5, 0.2), (1_200.0, 86_400.0)),
    )
    y = np.clip(loc + rng.normal(0, 100, n), 0, 2050)
    for name in ("mean", "var", "latent_var"):
        assert np.array_equal(getattr(plain, name), getattr(correlated, name))
    assert np.array_equal(plain.quantile([0.05, 0.5, 0.95]), correlated.quantile([0.05, 0.5, 0.95]))
    for method in ("log_prob", "cdf", "crps"):
        assert np.array_equal(getattr(plain, method)(y), getattr(correlated, method)(y))
    # Sample marginals agree too; only the joint (here: the spread of sums) differs.
    samples = correlated.sample(40_000, seed=11)
    rel = np.abs(samples.var(axis=0) - plain.var) / np.maximum(plain.var, 1.0)
    assert np.median(rel) < 0.02
    se_mean = samples.std(axis=0) / np.sqrt(samples.shape[0])
    # Sample means of the points err together (shared factor, correlation): allow a few
    # beyond 4 standard errors, not a bias.
    assert np.mean(np.abs(samples.mean(axis=0) - plain.mean) < 4 * se_mean + 1e-9) > 0.98
    assert samples.sum(axis=1).var() > 3 * plain.sample(40_000, seed=11).sum(axis=1).var()


def test_a_slice_keeps_the_joint_distribution_of_its_points() -> None:
    n, rho = 600, 0.8
    times = 1.42e9 + STEP * np.arange(n)
    std = np.full(n, 50.0)
    p = CensoredNormal(
        np.zeros(n), std**2, times=times, correlation=ExponentialCorrelation.ar1(rho, STEP)
    )
    keep = (np.arange(n) % 3 != 0) & (np.arange(n) < 450)
    part = p[keep]
    assert part.times is not None and np.array_equal(part.times, times[keep])
    assert part.correlation == p.correlation
    totals = part.sample(20_000, seed=12).sum(axis=1)
    # An AR(1) seen at a subset of its times is the same process at those times.
    assert totals.var() == pytest.approx(ar1_sum_variance(times[keep], std[keep], rho), rel=0.04)
    assert np.array_equal(p[10:20].times, times[10:20])


def test_ar1_and_mixture_correlation_functions() -> None:
    c = ExponentialCorrelation.ar1(0.5, STEP)
    assert c([0.0, STEP, 3 * STEP]) == pytest.approx([1.0, 0.5, 0.125])
    # A gap of 2.5 steps: rho ** 2.5.
    assert float(c(2.5 * STEP)[()]) == pytest.approx(0.5**2.5)
    mixed = ExponentialCorrelation((0.3, 0.2), (STEP, 10 * STEP))
    assert mixed.white == pytest.approx(0.5)
    assert float(mixed(STEP)[()]) == pytest.approx(0.3 * np.exp(-1) + 0.2 * np.exp(-0.1))
    with pytest.raises(ValueError, match="summing to at most 1"):
        ExponentialCorrelation((0.7, 0.6), (STEP, STEP))
    with pytest.raises(ValueError, match="needs the points' times"):
        CensoredNormal([0.0], [1.0], correlation=c)
    with pytest.raises(ValueError, match="one time per point"):
        CensoredNormal([0.0, 1.0], [1.0], times=[0.0], correlation=c)


def test_residual_correlation_recovers_the_correlation_of_residuals() -> None:
    """Censored AR(1)-plus-slow-component residuals with gaps: the fitted correlation
    matches the truth at every lag, and so the variance of daily sums."""
    rng = np.random.default_rng(13)
    truth = ExponentialCorrelation((0.55, 0.1), (1_500.0, 2 * 86_400.0))
    n = 60_000
    steps = np.where(rng.random(n) < 0.01, rng.integers(2, 300, n), 1)
    times = 1.42e9 + STEP * np.cumsum(steps)
    loc = rng.uniform(0.0, 2000.0, n)
    std = rng.uniform(30.0, 150.0, n)
    y = np.clip(loc + std * truth.sample(times, 1, rng)[0], 0.0, 2050.0)
    predictive = CensoredNormal(loc, std**2, lower=0.0, upper=2050.0)
    # In two batches: the statistics add up.
    learner = ResidualCorrelation()
    half = n // 2
    learner.update(predictive[:half], y[:half], times[:half])
    learner.update(predictive[half:], y[half:], times[half:])
    fitted = learner.correlation_
    assert fitted is not None
    lags = STEP * np.array([1, 2, 6, 36, 144, 288, 720])
    np.testing.assert_allclose(fitted(lags), truth(lags), atol=0.03)
    day = STEP * np.arange(144)
    lag = np.abs(day[:, None] - day[None, :])
    assert fitted(lag).sum() == pytest.approx(truth(lag).sum(), rel=0.15)
    # Restored from its state, it is the same learner.
    again = ResidualCorrelation.from_state(learner.get_params(), learner.state())
    assert again.correlation_ == fitted


def test_residual_correlation_needs_pairs_before_it_claims_any() -> None:
    learner = ResidualCorrelation()
    assert learner.correlation_ is None
    learner.update(CensoredNormal([1.0, 2.0], [1.0, 1.0]), [1.5, 1.0], [0.0, STEP])
    assert learner.correlation_ is None  # two readings: far fewer pairs than min_pairs
    independent = np.random.default_rng(14).standard_normal(20_000)
    learner.update(CensoredNormal(np.zeros(20_000), 1.0), independent, STEP * np.arange(20_000))
    fitted = learner.correlation_
    assert fitted is None or float(fitted(STEP)[()]) < 0.03


def test_a_nan_probability_is_refused(predictive: CensoredNormal) -> None:
    with pytest.raises(ValueError, match=r"q: expected probabilities in \(0, 1\)"):
        predictive.quantile(np.nan)


@pytest.mark.parametrize("wrong", ["0.5", ["0.05", "0.95"], True, [0.5, None]])
def test_a_probability_that_is_not_a_number_is_refused(
    predictive: CensoredNormal, wrong: object
) -> None:
    # numpy reads "0.5" as 0.5 and True as 1: a quantile of a string is a caller's slip.
    with pytest.raises(ValueError, match=r"q: expected probabilities in \(0, 1\) as numbers"):
        predictive.quantile(wrong)


def test_probabilities_of_any_kind_of_number_are_taken(predictive: CensoredNormal) -> None:
    expected = predictive.quantile([0.1, 0.9])
    for given in (np.array([0.1, 0.9], dtype=object), [np.float32(0.1), 0.9], (0.1, 0.9)):
        np.testing.assert_allclose(predictive.quantile(given), expected, rtol=1e-6)
    # The entry that is not a number is named, not the whole list.
    with pytest.raises(ValueError, match=r"as numbers, got '0.5'$"):
        predictive.quantile(["0.5"] * 100_000)


def test_sizes_that_cannot_be_are_named(predictive: CensoredNormal) -> None:
    with pytest.raises(ValueError, match="n_samples: expected an integer >= 0, got -1"):
        predictive.sample(-1)
    for wrong in ("3", 2.5, True):
        expected = rf"n_samples: expected an integer >= 0, got {wrong!r}"
        with pytest.raises(ValueError, match=expected):
            predictive.sample(wrong)  # type: ignore[arg-type]
    n = len(predictive)
    with pytest.raises(ValueError, match=rf"y: expected {n} values \(one per point\) or one"):
        predictive.log_prob(np.zeros(n + 1))
    # One value for every point is still taken.
    assert predictive.log_prob(0.0).shape == (n,)


def test_sample_paths_are_the_standard_draws_mapped_row_by_row() -> None:
    """sample() is standard_draws() mapped by paths_from(); a block of the draws' rows
    maps to the same rows of paths (compare maps a block at a time), and draws of
    another shape are refused by name."""
    rng = np.random.default_rng(4)
    n = 500
    predictive = CensoredNormal(
        rng.uniform(-300, 2300, n),
        rng.uniform(50, 200, n) ** 2,
        lower=0.0,
        upper=2050.0,
        factor=rng.normal(0, 30, (n, 3)),
        times=STEP * np.arange(n),
        correlation=ExponentialCorrelation((0.5, 0.2), (1_200.0, 86_400.0)),
        lower_mass=np.full(n, 0.1),
        upper_mass=np.full(n, 0.05),
    )
    drawn: list[int] = []
    noise, shared = predictive.standard_draws(90, seed=2, on_block=drawn.append)
    assert shared is not None and shared.shape == (90, 3)
    assert sum(drawn) == n  # every point told, block by block
    whole = predictive.sample(90, seed=2)
    rows = predictive.paths_from(noise[30:60].copy(order="K"), shared[30:60])
    np.testing.assert_array_equal(rows, whole[30:60])
    np.testing.assert_array_equal(predictive.paths_from(noise, shared), whole)
    with pytest.raises(ValueError, match=r"noise: expected shape \(n_samples, 500\), got"):
        predictive.paths_from(noise[:, 1:], shared)
    with pytest.raises(ValueError, match=r"shared: expected draws of shape \(90, 3\), got None"):
        predictive.paths_from(noise, None)


@pytest.mark.parametrize(
    "value",
    [
        "2015-03-29T02:30+02:00",
        "2015-01-01T00:10Z",
        "2015-01-01",
        np.datetime64("2015-01-01T00:10:00.5", "ms"),
        np.datetime64("2015-01-01", "D"),
        pd.Timestamp("2015-10-25 00:30", tz="UTC").tz_convert("Europe/Paris"),  # 02:30 CEST
        datetime.datetime(2015, 1, 1, 0, 10),
        datetime.datetime(2015, 1, 1, 0, 10, tzinfo=datetime.UTC),
    ],
)
def test_one_time_is_read_as_in_a_column(value: object) -> None:
    """A single time (a stream's reading) skips pandas' column parser: the same seconds."""
    assert time_seconds(value) == time_seconds([value, value])[:1]


def test_one_time_beyond_nanoseconds_is_refused_as_in_a_column() -> None:
    # Cast to nanoseconds, 2300 wraps round to 1715 without a word.
    for value in (np.datetime64("2300-01-01", "s"), [np.datetime64("2300-01-01", "s")] * 2):
        with pytest.raises(ValueError, match="Out of bounds"):
            time_seconds(value)


def test_variances_of_the_wrong_shape_or_sign_are_named() -> None:
    with pytest.raises(
        ValueError,
        match=r"noise_var: expected one variance or one per point of "
        r"loc \(3,\), got shape \(2,\)",
    ):
        CensoredNormal([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(
        ValueError,
        match=r"noise_var: expected non-negative variances, got -4 "
        r"at point 1",
    ):
        CensoredNormal([1.0, 2.0], [1.0, -4.0])


def test_a_single_possible_value_has_log_probability_zero() -> None:
    # Review: a stopped turbine's prediction (all of it at 0 kW) had log_prob(0) of
    # log P(Y* >= 0), one of the bounds' halves: -1.35e-3 for 3 +- 1 kW, -0.693 at 0.
    stopped = CensoredNormal([3.0, 0.0], [1.0, 1.0], lower=0.0, upper=2050.0).clipped(0.0, 0.0)
    np.testing.assert_array_equal(stopped.log_prob([0.0, 0.0]), [0.0, 0.0])
    assert np.all(stopped.log_prob([1.0, -1.0]) == -np.inf)
    pinned = CensoredNormal([5.0], [4.0], lower=5.0, upper=5.0)
    assert pinned.log_prob([5.0])[0] == 0.0


def test_a_column_of_locations_is_refused_by_name() -> None:
    # X @ beta[:, None] gave (n, 1) intervals and quantiles of the wrong shape.
    with pytest.raises(
        ValueError, match=r"loc: expected one location per point \(1-D\), got shape \(3, 1\)"
    ):
        CensoredNormal(np.ones((3, 1)), 4.0, lower=0.0, upper=12.0)
