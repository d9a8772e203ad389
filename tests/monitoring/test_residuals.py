"""Statistical contracts of residuals, anomaly scores, sensitivities and fleet contrasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twinweave.core import CensoredNormal
from twinweave.monitoring import (
    anomaly_score,
    fleet_contrast,
    loss_sensitivity,
    standardised_residuals,
)


@pytest.fixture
def predictive() -> CensoredNormal:
    """Points from idle to deep in rated: many draws land on a bound."""
    rng = np.random.default_rng(7)
    n = 20_000
    return CensoredNormal(
        rng.uniform(-200.0, 2400.0, n),
        rng.uniform(20.0, 150.0, n) ** 2,
        lower=0.0,
        upper=2050.0,
        units="kW",
    )


def test_residuals_of_draws_from_the_predictive_are_standard_normal(
    predictive: CensoredNormal,
) -> None:
    y = predictive.sample(1, seed=1)[0]
    at_bound = (y == 0.0) | (y == 2050.0)
    assert 0.2 < at_bound.mean() < 0.5  # the randomisation at the bounds is exercised
    r = standardised_residuals(predictive, y, seed=2)
    assert stats.kstest(r, "norm").pvalue > 0.01
    assert stats.kstest(r[at_bound], "norm").pvalue > 0.01
    assert abs(r.mean()) < 4 / np.sqrt(r.size)
    assert abs(r.var() - 1.0) < 0.05


def test_residuals_between_the_bounds_are_the_latent_z(predictive: CensoredNormal) -> None:
    y = np.clip(predictive.loc + 0.5 * predictive.latent_std, 1.0, 2049.0)
    r = standardised_residuals(predictive, y, seed=0)
    np.testing.assert_allclose(r, (y - predictive.loc) / predictive.latent_std)


def test_residuals_at_a_bound_fall_in_its_tail(predictive: CensoredNormal) -> None:
    s = predictive.latent_std
    low = standardised_residuals(predictive, np.zeros(len(predictive)), seed=3)
    high = standardised_residuals(predictive, np.full(len(predictive), 2050.0), seed=3)
    assert np.all(low <= (0.0 - predictive.loc) / s)
    assert np.all(high >= (2050.0 - predictive.loc) / s)


def test_residuals_at_a_bound_far_in_the_tail_are_finite() -> None:
    # Rated power where the twin expected 100 kW, zero where it expected 1950 kW: the
    # bounds' masses underflow in linear probabilities.
    p = CensoredNormal([100.0, 1950.0], [5.0**2] * 2, lower=0.0, upper=2050.0)
    r = standardised_residuals(p, [2050.0, 0.0], seed=0)
    assert np.all(np.isfinite(r)), r
    assert r[0] >= (2050.0 - 100.0) / 5.0 and r[1] <= (0.0 - 1950.0) / 5.0
    assert r[0] < (2050.0 - 100.0) / 5.0 + 1.0 and r[1] > (0.0 - 1950.0) / 5.0 - 1.0


def test_residuals_are_reproducible_with_a_seed(predictive: CensoredNormal) -> None:
    y = predictive.sample(1, seed=4)[0]
    first = standardised_residuals(predictive, y, seed=5)
    np.testing.assert_array_equal(first, standardised_residuals(predictive, y, seed=5))
    generator = np.random.default_rng(5)
    np.testing.assert_array_equal(first, standardised_residuals(predictive, y, seed=generator))


def test_residuals_outside_the_bounds_are_infinite_and_missing_stays_missing() -> None:
    p = CensoredNormal([100.0, 100.0, 100.0], [25.0] * 3, lower=0.0, upper=2050.0)
    r = standardised_residuals(p, [-1.0, 2051.0, np.nan], seed=0)
    assert r[0] == -np.inf and r[1] == np.inf and np.isnan(r[2])


def test_residuals_check_the_shape(predictive: CensoredNormal) -> None:
    with pytest.raises(ValueError, match=r"y: expected shape \(20000,\)"):
        standardised_residuals(predictive, np.zeros(3))


def test_anomaly_scores_are_calibrated_tail_probabilities(predictive: CensoredNormal) -> None:
    y = predictive.sample(1, seed=6)[0]
    score = anomaly_score(predictive, y)
    assert np.all(score >= 0.0)
    inside = (y > 0.0) & (y < 2050.0)
    n = int(inside.sum())
    for level in (1.0, 2.0):
        rate = float(np.mean(score[inside] >= level))
        expected = 10.0**-level
        assert abs(rate - expected) < 4 * np.sqrt(expected / n), (level, rate)
    # At a bound the tail includes the bound's mass: never more surprising than claimed.
    assert np.mean(score[~inside] >= 1.0) <= 0.1


def test_anomaly_score_grows_with_distance_and_is_infinite_off_the_support() -> None:
    p = CensoredNormal(np.full(5, 1000.0), np.full(5, 100.0**2), lower=0.0, upper=2050.0)
    score = anomaly_score(p, [1000.0, 1100.0, 800.0, 600.0, 2100.0])
    assert score[0] == 0.0
    assert score[1] < score[2] < score[3]
    assert score[4] == np.inf
    # Two-sided: a deviation of one sd is a p = 0.3173 event.
    assert score[1] == pytest.approx(-np.log10(2 * stats.norm.sf(1.0)))


def test_anomaly_score_at_a_likely_bound_is_unremarkable() -> None:
    # Deep in rated the bound holds nearly all the mass; deep in idle likewise.
    p = CensoredNormal([2400.0, -300.0], [50.0**2] * 2, lower=0.0, upper=2050.0)
    assert np.all(anomaly_score(p, [2050.0, 0.0]) == 0.0)


def test_loss_sensitivity_is_the_shift_a_loss_causes() -> None:
    p = CensoredNormal([-50.0, 400.0, 1000.0, 2300.0], [50.0**2] * 4, lower=0.0, upper=2050.0)
    mu = loss_sensitivity(p, 0.1, max_sensitivity=10.0)
    np.testing.assert_allclose(mu, [0.0, 0.8, 2.0, 4.1])
    # The shift is what the loss does to the residual of the median reading.
    y = np.array([400.0, 1000.0])
    before = standardised_residuals(p[np.array([1, 2])], y)
    after = standardised_residuals(p[np.array([1, 2])], 0.9 * y)
    np.testing.assert_allclose(before - after, mu[1:3])
    np.testing.assert_allclose(loss_sensitivity(p, 0.1, max_sensitivity=1.0), [0, 0.8, 1, 1])


@pytest.mark.parametrize(("loss", "cap"), [(0.0, 4.0), (1.0, 4.0), (0.1, 0.0)])
def test_loss_sensitivity_rejects_bad_arguments(loss: float, cap: float) -> None:
    p = CensoredNormal([100.0], [1.0])
    with pytest.raises(ValueError, match="expected"):
        loss_sensitivity(p, loss, max_sensitivity=cap)


def test_fleet_contrast_removes_what_the_fleet_shares() -> None:
    rng = np.random.default_rng(8)
    own = pd.DataFrame(rng.standard_normal((5000, 5)), columns=list("abcde"))
    shared = rng.standard_normal((5000, 1)) * 3.0 + np.linspace(-2, 2, 5000)[:, None]
    contrast = fleet_contrast(own + shared)
    np.testing.assert_allclose(contrast.to_numpy(), fleet_contrast(own).to_numpy())
    # The shared part dominated the raw residuals; it is gone from the contrasts.
    assert (own + shared).std().min() > 3.0
    assert contrast.std().max() < 1.5


def test_fleet_contrast_keeps_one_asset_s_own_shift() -> None:
    rng = np.random.default_rng(9)
    residuals = pd.DataFrame(rng.standard_normal((20_000, 4)), columns=list("abcd"))
    residuals["a"] -= 1.0
    contrast = fleet_contrast(residuals).mean()
    assert contrast["a"] == pytest.approx(-1.0, abs=0.05)
    # The median reference moves only part way when a neighbour is low.
    assert np.all((contrast[["b", "c", "d"]] > 0.0) & (contrast[["b", "c", "d"]] < 0.5))


def test_fleet_contrast_needs_enough_other_assets() -> None:
    frame = pd.DataFrame({"a": [1.0, 1.0], "b": [0.0, 0.0], "c": [0.5, np.nan]})
    contrast = fleet_contrast(frame)
    assert contrast.loc[0, "a"] == pytest.approx(0.75)
    assert np.isnan(contrast.loc[1, "a"])  # only one other asset at that time
    assert fleet_contrast(frame, min_others=1).loc[1, "a"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3 asset columns"):
        fleet_contrast(frame[["a", "b"]])
    # Without others (a farm of one turbine) the residuals are their own contrast.
    alone = fleet_contrast(frame[["a"]], min_others=0)
    pd.testing.assert_frame_equal(alone, frame[["a"]])
    with pytest.raises(ValueError, match="min_others: expected an integer >= 0, got -1"):
        fleet_contrast(frame, min_others=-1)


# -- with the bounds' probabilities given (a hurdle) ----------------------------------------
@pytest.fixture
def hurdle(predictive: CensoredNormal) -> CensoredNormal:
    """The same points with masses at the bounds unrelated to the latent tails."""
    rng = np.random.default_rng(8)
    low = rng.uniform(0.0, 0.8, len(predictive))
    high = rng.uniform(0.0, 0.2, len(predictive))
    return CensoredNormal(
        predictive.loc,
        predictive.latent_var,
        lower=0.0,
        upper=2050.0,
        units="kW",
        lower_mass=low,
        upper_mass=high,
    )


def test_hurdle_residuals_of_its_draws_are_standard_normal(hurdle: CensoredNormal) -> None:
    y = hurdle.sample(1, seed=9)[0]
    at_bound = (y == 0.0) | (y == 2050.0)
    assert 0.3 < at_bound.mean() < 0.7
    r = standardised_residuals(hurdle, y, seed=10)
    assert stats.kstest(r, "norm").pvalue > 0.01
    # Between the bounds the PIT is uniform over the interior's share of probability.
    share = (stats.norm.cdf(r) - hurdle.mass_at_lower) / (
        1.0 - hurdle.mass_at_lower - hurdle.mass_at_upper
    )
    assert stats.kstest(share[~at_bound], "uniform").pvalue > 0.01
    assert abs(r.mean()) < 4 / np.sqrt(r.size)
    # Under the censored normal with the same latent Gaussian they are not.
    latent = CensoredNormal(hurdle.loc, hurdle.latent_var, lower=0.0, upper=2050.0)
    assert stats.kstest(standardised_residuals(latent, y, seed=10), "norm").pvalue < 1e-6


def test_hurdle_anomaly_scores_are_calibrated(hurdle: CensoredNormal) -> None:
    y = hurdle.sample(1, seed=11)[0]
    score = anomaly_score(hurdle, y)
    inside = (y > 0.0) & (y < 2050.0)
    for level in (0.5, 1.0):
        # Between the bounds the CDF runs from the mass at 0 to 1 less the mass at
        # rated, so a reading there falls in the lower tail of 10^-s / 2 with
        # probability max(0, 10^-s / 2 - mass at 0), and likewise in the upper one.
        half = 10.0**-level / 2
        chance = np.maximum(0.0, half - hurdle.mass_at_lower) + np.maximum(
            0.0, half - hurdle.mass_at_upper
        )
        count = int(np.sum(inside & (score >= level)))
        tolerance = 4 * np.sqrt(np.sum(chance * (1 - chance)))
        assert abs(count - chance.sum()) < tolerance, (level, count, chance.sum())
    assert np.all(
        score[y == 0.0]
        == pytest.approx(-np.log10(np.minimum(1.0, 2 * hurdle.mass_at_lower[y == 0.0])))
    )


def test_hurdle_sensitivity_is_zero_where_the_median_is_idle() -> None:
    p = CensoredNormal([10.0, 10.0], [20.0**2] * 2, lower=0.0, upper=2050.0, lower_mass=[0.9, 0.1])
    sensitivity = loss_sensitivity(p, 0.08)
    assert sensitivity[0] == 0.0 and sensitivity[1] > 0.0
