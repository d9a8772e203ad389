"""The censored normal with the bounds' probabilities given (a hurdle): the same
contracts as the censored one, checked against sampling from its definition."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import stats

from twinweave.core import CensoredNormal, ExponentialCorrelation

LOWER, UPPER = 0.0, 2050.0


@pytest.fixture
def hurdle() -> CensoredNormal:
    rng = np.random.default_rng(11)
    n = 60
    loc = rng.uniform(-100, 2200, n)
    low = rng.uniform(0.0, 0.9, n)
    high = rng.uniform(0.0, 1.0, n) * (1.0 - low) * 0.5
    return CensoredNormal(
        loc,
        rng.uniform(30, 150, n) ** 2,
        lower=LOWER,
        upper=UPPER,
        units="kW",
        lower_mass=low,
        upper_mass=high,
    )


def draw_from_definition(p: CensoredNormal, n: int, seed: int) -> np.ndarray:
    """Draws by the definition: a bound with its probability, else the latent Gaussian
    truncated to the open interval between the bounds."""
    rng = np.random.default_rng(seed)
    s = p.latent_std
    a, b = (p.lower - p.loc) / s, (p.upper - p.loc) / s
    inside = stats.truncnorm.rvs(a, b, loc=p.loc, scale=s, size=(n, len(p)), random_state=rng)
    u = rng.random((n, len(p)))
    out = np.where(u < p.mass_at_lower, p.lower, inside)
    return np.where(u > 1.0 - p.mass_at_upper, p.upper, out)


def test_moments_quantiles_and_masses_match_the_definition(hurdle: CensoredNormal) -> None:
    draws = draw_from_definition(hurdle, 40_000, seed=1)
    se = draws.std(axis=0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - hurdle.mean) < 4 * np.maximum(se, 1e-9))
    rel = np.abs(draws.var(axis=0) - hurdle.var) / np.maximum(hurdle.var, 1.0)
    assert np.median(rel) < 0.02
    # Each quantile has the claimed probability below it (ties at a bound count).
    for q in (0.05, 0.5, 0.95):
        value = hurdle.quantile(q)
        at_or_below = (draws <= value + 1e-9).mean(axis=0)
        strictly_below = (draws < value - 1e-9).mean(axis=0)
        assert np.all(at_or_below >= q - 0.015)
        assert np.all(strictly_below <= q + 0.015)
    np.testing.assert_allclose((draws == LOWER).mean(axis=0), hurdle.mass_at_lower, atol=0.01)
    np.testing.assert_allclose((draws == UPPER).mean(axis=0), hurdle.mass_at_upper, atol=0.01)


def test_sampling_and_cdf_agree_with_the_definition(hurdle: CensoredNormal) -> None:
    sampled = hurdle.sample(20_000, seed=2)
    reference = draw_from_definition(hurdle, 20_000, seed=3)
    for value in (LOWER, 500.0, 1500.0, UPPER - 1.0):
        cdf = hurdle.cdf(np.full(len(hurdle), value))
        np.testing.assert_allclose((sampled <= value).mean(axis=0), cdf, atol=0.015)
        np.testing.assert_allclose((reference <= value).mean(axis=0), cdf, atol=0.015)


def test_log_prob_integrates_to_one_and_gives_the_masses() -> None:
    grid = np.linspace(LOWER, 300.0, 30_001)[1:-1]
    p = CensoredNormal(
        np.full(grid.size, 20.0), 40.0**2, lower=LOWER, upper=300.0, lower_mass=0.7, upper_mass=0.05
    )
    inside = np.trapezoid(np.exp(p.log_prob(grid)), grid)
    assert inside == pytest.approx(0.25, abs=1e-4)
    assert np.exp(p.log_prob(np.zeros(grid.size))[0]) == pytest.approx(0.7)
    assert np.exp(p.log_prob(np.full(grid.size, 300.0))[0]) == pytest.approx(0.05)


def test_crps_matches_its_expectation_form(hurdle: CensoredNormal) -> None:
    part = hurdle[np.arange(6)]
    y = np.array([0.0, 2050.0, 700.0, 1200.0, 30.0, 1900.0])
    s = draw_from_definition(part, 200_000, seed=4)
    s2 = draw_from_definition(part, 200_000, seed=5)
    expected = np.abs(s - y).mean(axis=0) - 0.5 * np.abs(s - s2).mean(axis=0)
    np.testing.assert_allclose(part.crps(y), expected, rtol=0.02, atol=0.3)


def test_given_masses_equal_to_the_tails_are_the_censored_normal() -> None:
    rng = np.random.default_rng(5)
    loc, var = rng.uniform(-200, 2300, 50), rng.uniform(40, 200, 50) ** 2
    censored = CensoredNormal(loc, var, lower=LOWER, upper=UPPER)
    same = CensoredNormal(
        loc,
        var,
        lower=LOWER,
        upper=UPPER,
        lower_mass=censored.mass_at_lower,
        upper_mass=censored.mass_at_upper,
    )
    y = np.clip(loc + rng.normal(0, 100, 50), LOWER, UPPER)
    for name in ("mean", "var"):
        np.testing.assert_allclose(getattr(same, name), getattr(censored, name), rtol=1e-9)
    np.testing.assert_allclose(
        same.quantile([0.05, 0.5, 0.95]), censored.quantile([0.05, 0.5, 0.95]), atol=1e-6
    )
    np.testing.assert_allclose(same.log_prob(y), censored.log_prob(y), atol=1e-9)
    np.testing.assert_allclose(same.cdf(y), censored.cdf(y), atol=1e-12)
    np.testing.assert_allclose(same.crps(y), censored.crps(y), rtol=1e-9)


def test_clipping_to_new_bounds_is_the_distribution_of_the_clipped_value(
    hurdle: CensoredNormal,
) -> None:
    draws = draw_from_definition(hurdle, 40_000, seed=6)
    derated = hurdle.clipped(LOWER, 1200.0)
    assert derated.upper == 1200.0
    clipped = np.minimum(draws, 1200.0)
    np.testing.assert_allclose((clipped == 1200.0).mean(axis=0), derated.mass_at_upper, atol=0.01)
    np.testing.assert_allclose(clipped.mean(axis=0), derated.mean, rtol=0.02, atol=2.0)
    stopped = hurdle.clipped(LOWER, LOWER)
    assert np.all(stopped.quantile([0.01, 0.99]) == 0.0)
    assert np.all(stopped.mean == 0.0)


def test_probability_between_counts_included_bounds(hurdle: CensoredNormal) -> None:
    n = len(hurdle)
    everything = hurdle.probability_between(np.full(n, LOWER), np.full(n, UPPER))
    np.testing.assert_allclose(everything, 1.0, atol=1e-12)
    lo, hi = hurdle.interval(0.9)
    draws = draw_from_definition(hurdle, 40_000, seed=7)
    covered = ((draws >= lo) & (draws <= hi)).mean(axis=0)
    np.testing.assert_allclose(covered, hurdle.probability_between(lo, hi), atol=0.012)
    # At least the level: a bound's mass can only add to a central interval.
    assert np.all(hurdle.probability_between(lo, hi) >= 0.9 - 1e-9)


def test_concatenate_keeps_the_masses(hurdle: CensoredNormal) -> None:
    censored = CensoredNormal([100.0], [50.0**2], lower=LOWER, upper=UPPER, units="kW")
    joined = CensoredNormal.concatenate([hurdle, censored])
    assert len(joined) == len(hurdle) + 1
    np.testing.assert_allclose(joined.mass_at_lower[:-1], hurdle.mass_at_lower)
    assert joined.mass_at_lower[-1] == pytest.approx(censored.mass_at_lower[0])
    with pytest.raises(ValueError, match="same bounds"):
        CensoredNormal.concatenate([hurdle, CensoredNormal([1.0], [1.0])])


def test_rejects_impossible_masses() -> None:
    with pytest.raises(ValueError, match=r"lower_mass: expected probabilities in \[0, 1\]"):
        CensoredNormal([0.0], [1.0], lower=0.0, upper=1.0, lower_mass=[1.5])
    with pytest.raises(ValueError, match="sum to at most 1"):
        CensoredNormal([0.0], [1.0], lower=0.0, upper=1.0, lower_mass=[0.7], upper_mass=[0.6])
    with pytest.raises(ValueError, match="infinite bound"):
        CensoredNormal([0.0], [1.0], lower_mass=[0.1])


def test_sample_paths_are_the_copula_of_the_latent_paths_block_by_block() -> None:
    # The copula runs on blocks of 64 paths (to bound the memory): 150 paths cross two
    # block edges, and every value is the whole-array transform's, bit for bit.
    rng = np.random.default_rng(5)
    n = 40
    loc = rng.uniform(-100, 2200, n)
    factor = rng.normal(0.0, 30.0, (n, 3))
    times = 600.0 * np.arange(n)
    correlation = ExponentialCorrelation((0.5, 0.2), (1_200.0, 86_400.0))
    p = CensoredNormal(
        loc,
        rng.uniform(30, 150, n) ** 2,
        lower=LOWER,
        upper=UPPER,
        factor=factor,
        times=times,
        correlation=correlation,
        lower_mass=rng.uniform(0.0, 0.3, n),
        upper_mass=rng.uniform(0.0, 0.3, n),
    )
    draws = np.random.default_rng(9)
    noise = correlation.sample(times, 150, draws)
    latent = loc + np.sqrt(p.noise_var) * noise + draws.standard_normal((150, 3)) @ factor.T
    u = stats.norm.cdf((latent - loc) / p.latent_std)
    expected = p._inverse_cdf(np.clip(u, 1e-300, 1.0 - 1e-16))
    np.testing.assert_array_equal(p.sample(150, seed=9), expected)


def test_sample_paths_take_few_arrays_of_their_size() -> None:
    # A year of 10-minute points times 1,000 paths is 400 MB per array: sampling took
    # 7.1 arrays at its peak (a what-if over a year 3.5 GB), now 2.6 (measured with
    # tracemalloc, which counts numpy's allocations whatever the machine).
    rng = np.random.default_rng(5)
    n, n_paths = 20_000, 200
    p = CensoredNormal(
        rng.uniform(-100, 2200, n),
        rng.uniform(30, 150, n) ** 2,
        lower=LOWER,
        upper=UPPER,
        factor=rng.normal(0.0, 30.0, (n, 3)),
        times=600.0 * np.arange(n),
        correlation=ExponentialCorrelation((0.5, 0.2), (1_200.0, 86_400.0)),
        lower_mass=rng.uniform(0.0, 0.3, n),
        upper_mass=rng.uniform(0.0, 0.3, n),
    )
    p.quantile(0.5)  # the per-point constants the copula caches, computed before
    tracemalloc.start()
    try:
        p.sample(n_paths, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3.0 * n * n_paths * 8, peak / (n * n_paths * 8)


@pytest.mark.parametrize("beyond", [-30.0, -9.0, 9.0, 30.0])
def test_a_latent_mean_far_beyond_a_bound_keeps_its_quantiles(beyond: float) -> None:
    # The quantile was solved in the tail that q lies in, not the one z lies in: with
    # the latent mean 9 sd above rated power, Phi(-b) rounded to 1 and the quantiles
    # fell to 800 kW, and the samples with them.
    loc = UPPER + beyond * 40.0 if beyond > 0 else LOWER + beyond * 40.0
    p = CensoredNormal(
        [loc], [1600.0], lower=LOWER, upper=UPPER, lower_mass=[0.05], upper_mass=[0.3]
    )
    q = np.linspace(0.01, 0.99, 99)
    values = p.quantile(q)[:, 0]
    assert np.all(np.diff(values) >= 0.0)
    inside = (values > LOWER) & (values < UPPER)
    assert inside.sum() >= 60
    cdf = [p.cdf(value)[0] for value in values[inside]]
    np.testing.assert_allclose(cdf, q[inside], atol=1e-9)
    # The interior lies within a standard deviation or so of the nearer bound.
    nearer = UPPER if beyond > 0 else LOWER
    assert np.abs(values[inside] - nearer).max() < 2 * 40.0
    draws = p.sample(40_000, seed=5)[:, 0]
    error = draws.std() / np.sqrt(draws.size)
    assert abs(draws.mean() - p.mean[0]) < 4 * error, (draws.mean(), p.mean[0])


def test_mass_with_no_latent_probability_between_the_bounds_sits_on_the_nearer_one() -> None:
    # The latent Gaussian 100 sd above rated power has no probability between the bounds
    # in floating point: the mean said 615 kW while every sample and quantile was 2050.
    above = CensoredNormal([3000.0], [100.0], lower=LOWER, upper=UPPER, lower_mass=[0.0],
                           upper_mass=[0.3])  # fmt: skip
    assert above.mass_at_upper[0] == 1.0 and above.mass_at_lower[0] == 0.0
    assert above.mean[0] == UPPER and above.var[0] == 0.0
    np.testing.assert_array_equal(above.quantile([0.1, 0.9])[:, 0], [UPPER, UPPER])
    below = CensoredNormal([-4304.7], [3600.0], lower=LOWER, upper=UPPER, lower_mass=[0.0],
                           upper_mass=[0.416])  # fmt: skip
    np.testing.assert_allclose(below.mass_at_lower, [0.584])
    np.testing.assert_allclose(below.mean, [0.416 * UPPER])
    draws = below.sample(20_000, seed=3)[:, 0]
    assert set(np.unique(draws)) == {LOWER, UPPER}
    assert abs((draws == LOWER).mean() - 0.584) < 0.015
    np.testing.assert_allclose(below.cdf([LOWER]) + below.sf([LOWER]), [1.0])


def test_empty_quantiles_and_a_level_that_is_no_number(hurdle: CensoredNormal) -> None:
    assert hurdle.quantile(np.array([])).shape == (0, len(hurdle))
    with pytest.raises(ValueError, match=r"level: expected a probability in \(0, 1\), got '0.9'"):
        hurdle.interval("0.9")  # type: ignore[arg-type]


def test_a_latent_mean_between_37_and_39_sd_beyond_a_bound_is_no_special_case() -> None:
    # There the probability between the bounds was a subnormal below the floor the
    # interior's density was divided by: the interior mass shrank, and cdf(200) said
    # 0.30 where 90 % of the samples were at most 200.
    for beyond in (36.0, 37.3, 38.2, 40.0):
        p = CensoredNormal([-beyond * 40.0], [1600.0], lower=LOWER, upper=UPPER,
                           lower_mass=[0.3], upper_mass=[0.1])  # fmt: skip
        np.testing.assert_allclose(p.cdf([LOWER]) + p.sf([LOWER]), [1.0])
        draws = p.sample(20_000, seed=2)[:, 0]
        assert abs((draws <= 200.0).mean() - p.cdf([200.0])[0]) < 0.015, beyond


def test_a_missing_location_leaves_the_masses_as_given() -> None:
    # A NaN location counted as "no latent probability between the bounds" and put the
    # rest on the lower bound.
    p = CensoredNormal([np.nan, 1000.0], [100.0, 100.0], lower=LOWER, upper=UPPER,
                       lower_mass=[0.1, 0.1], upper_mass=[0.2, 0.2])  # fmt: skip
    np.testing.assert_array_equal(p.mass_at_lower, [0.1, 0.1])
    assert np.isnan(p.quantile(0.5)[0]) and np.isfinite(p.quantile(0.5)[1])
