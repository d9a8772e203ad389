"""Predictions without a modulator's inputs: marginalised over the readings assimilated.

The synthetic problem has a temperature-like modulator ``z`` whose mean rises with ``x``
(as temperature and wind speed are related at a site) and whose effect grows with ``x``,
so predicting at ``z``'s reference value is biased and too confident.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinweave.models import (
    BayesianBasisRegression,
    Centred,
    Harmonics,
    ModulatedSpline,
    SplineTerm,
)

EDGES = np.linspace(0.0, 10.0, 6)
Z_SD = 4.0


def z_mean(x: np.ndarray) -> np.ndarray:
    return 10.0 + 1.6 * (x - 5.0)


def effect(x: np.ndarray) -> np.ndarray:
    """Response to ``(z - 10) / 10``."""
    return 3.0 + 0.5 * x


def curve(x: np.ndarray) -> np.ndarray:
    return 20.0 + 2.0 * x + 6.0 * np.sin(0.8 * x)


def readings(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, n)
    z = z_mean(x) + Z_SD * rng.standard_normal(n)
    y = curve(x) + effect(x) * (z - 10.0) / 10.0 + rng.standard_normal(n)
    return {"x": x, "z": z, "y": y}


def expected_y(x: np.ndarray) -> np.ndarray:
    """``E[y | x]``: the curve at the mean of ``z`` given ``x``."""
    return curve(x) + effect(x) * (z_mean(x) - 10.0) / 10.0


def model() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(
            SplineTerm("x", 0.0, 10.0, 20),
            ModulatedSpline(SplineTerm("x", 0.0, 10.0, 4), Centred("z", 10.0, 10.0)),
        ),
        noise_source="x",
        noise_edges=EDGES,
        smoothing=1e-2,
        ridge=1e-6,
    )


@pytest.fixture(scope="module")
def fitted() -> BayesianBasisRegression:
    return model().update(readings(50_000, seed=0))


def test_the_mean_without_the_modulator_is_the_average_over_it(
    fitted: BayesianBasisRegression,
) -> None:
    # Away from the ends, where the spline weights average over data on one side only.
    grid = np.linspace(1.0, 9.0, 33)
    marginal = fitted.predict({"x": grid}).loc
    np.testing.assert_allclose(marginal, expected_y(grid), atol=0.1)
    # At the reference value instead (zero modulator features) it would be off by up to
    # 0.8 * effect: several units.
    features, _ = fitted.design({"x": grid})
    at_reference = features @ fitted.posterior_mean_
    assert np.max(np.abs(at_reference - expected_y(grid))) > 4.0


def test_intervals_without_the_modulator_hold_its_spread(
    fitted: BayesianBasisRegression,
) -> None:
    test = readings(40_000, seed=1)
    predictive = fitted.predict({"x": test["x"]})
    for level in (0.5, 0.9):
        lo, hi = predictive.interval(level)
        covered = np.mean((test["y"] >= lo) & (test["y"] <= hi))
        se = np.sqrt(level * (1 - level) / test["y"].size)
        assert abs(covered - level) < 3 * se + 0.01, (level, covered)
    # The spread added is the modulator's, about its local mean: effect * Z_SD / 10.
    added = predictive.noise_var - fitted.noise_var_[fitted.design(test)[1]]
    np.testing.assert_allclose(np.sqrt(added), effect(test["x"]) * Z_SD / 10.0, rtol=0.1, atol=0.05)


def test_rows_missing_the_modulator_are_predicted_as_without_it(
    fitted: BayesianBasisRegression,
) -> None:
    test = readings(500, seed=2)
    gaps = np.zeros(500, dtype=bool)
    gaps[::3] = True
    test["z"][gaps] = np.nan
    mixed = fitted.predict(test)
    without = fitted.predict({"x": test["x"][gaps]})
    complete = fitted.predict({k: v[~gaps] for k, v in test.items()})
    np.testing.assert_allclose(mixed.loc[gaps], without.loc, rtol=1e-12)
    np.testing.assert_allclose(mixed.latent_var[gaps], without.latent_var, rtol=1e-12)
    np.testing.assert_allclose(mixed.loc[~gaps], complete.loc, rtol=1e-12)
    np.testing.assert_allclose(mixed.latent_var[~gaps], complete.latent_var, rtol=1e-12)


def test_the_marginal_survives_restore_bit_for_bit(fitted: BayesianBasisRegression) -> None:
    grid = {"x": np.linspace(0.0, 10.0, 41)}
    restored = BayesianBasisRegression.from_state(fitted.get_params(), fitted.state())
    a, b = fitted.predict(grid), restored.predict(grid)
    for name in ("loc", "noise_var", "latent_var"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_an_unfitted_model_predicts_its_prior_without_the_modulators() -> None:
    empty = BayesianBasisRegression(
        target="y",
        terms=(
            SplineTerm("x", 0.0, 10.0, 10),
            ModulatedSpline(SplineTerm("x", 0.0, 10.0, 2), Harmonics("angle")),
            ModulatedSpline(SplineTerm("x", 0.0, 10.0, 2), Centred("z", 0.0, 1.0)),
        ),
        noise_source="x",
        noise_edges=EDGES,
    )
    predictive = empty.predict({"x": np.linspace(0.0, 10.0, 11)})
    np.testing.assert_array_equal(predictive.loc, 0.0)
    np.testing.assert_array_equal(predictive.noise_var, 1.0)


def test_a_modulator_outside_the_values_assimilated_is_flagged_and_kept_on_restore() -> None:
    data = readings(300, seed=4)
    data["z"][::7] = np.nan  # missing values neither count nor are outside
    low, high = np.nanmin(data["z"]), np.nanmax(data["z"])
    batch = model().update(data)
    stream = model()
    for i in range(300):
        stream.update({name: float(column[i]) for name, column in data.items()})
    assert batch.input_ranges_ == {"z": (low, high)}
    assert stream.input_ranges_ == batch.input_ranges_
    z = np.array([low, high, low - 0.1, high + 0.1, np.nan])
    flagged = batch.outside_range({"x": np.full(5, 5.0), "z": z})
    assert flagged["z"].tolist() == [False, False, True, True, False]
    assert batch.outside_range({"x": [5.0]}) == {}  # not given: nothing to say
    restored = BayesianBasisRegression.from_state(batch.get_params(), batch.state())
    assert restored.input_ranges_ == batch.input_ranges_
    # A state saved before the ranges were kept: unknown, so nothing is flagged, and it
    # stays unknown (the readings before are not known).
    older = {k: v for k, v in batch.state().items() if k != "input_ranges_"}
    unknown = BayesianBasisRegression.from_state(batch.get_params(), older)
    unknown.update(readings(50, seed=5))
    assert not unknown.outside_range({"x": [5.0], "z": [1e6]})["z"].any()
    # Before any reading every value is outside.
    assert model().outside_range({"x": [5.0], "z": [10.0]})["z"].tolist() == [True]


def test_ranges_are_the_same_by_chunks_and_leave_a_periodic_angle_out() -> None:
    # More rows than one chunk of the batch path, with forgetting (which ranges ignore).
    n = 40_000
    data = readings(n, seed=6)
    data["angle"] = np.linspace(0.0, 360.0, n)
    angled = BayesianBasisRegression(
        **{
            **model().get_params(),
            "terms": (
                *model().terms,
                ModulatedSpline(SplineTerm("x", 0.0, 10.0, 4), Harmonics("angle", 1)),
            ),
            "forgetting": 1 - 1e-4,
        }
    )
    whole = angled.update(data)
    halves = BayesianBasisRegression(**angled.get_params())
    for part in (slice(0, n // 2), slice(n // 2, n)):
        halves.update({name: column[part] for name, column in data.items()})
    assert whole.input_ranges_ == halves.input_ranges_
    assert whole.input_ranges_ == {"z": (data["z"].min(), data["z"].max())}
    # 360 degrees is 0 degrees: no angle lies beyond those assimilated.
    assert "angle" not in whole.outside_range({"x": [5.0], "z": [10.0], "angle": [400.0]})
