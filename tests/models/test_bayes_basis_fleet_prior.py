"""A prior covariance and per-bin noise target in place of the penalties: the conjugate
posterior a twin has when it starts from what its fleet knows."""

from __future__ import annotations

import numpy as np
import pytest

from twinweave.checks._problems import PumpCurve, pump_emulator
from twinweave.models import BayesianBasisRegression


def with_prior(
    mean: np.ndarray, covariance: np.ndarray, noise: np.ndarray, count: float
) -> BayesianBasisRegression:
    return BayesianBasisRegression(
        **{
            **pump_emulator().get_params(),
            "prior_mean": mean,
            "prior_covariance": covariance,
            "noise_target": noise,
            "noise_prior_count": count,
        }
    )


def prior(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = pump_emulator().n_features
    root = rng.normal(size=(p, p))
    return rng.normal(25.0, 5.0, p), root @ root.T / p + 0.5 * np.eye(p)


def test_the_posterior_is_the_conjugate_one_under_the_given_prior() -> None:
    mean, covariance = prior(1)
    noise = np.array([0.3, 1.0, 2.0, 4.0, 9.0])
    # Pseudo-readings beyond any data: the noise stays at its target, so the weights'
    # posterior is the closed form, computed here from the readings themselves.
    model = with_prior(mean, covariance, noise, count=1e15)
    data = PumpCurve().observations(400, seed=2)
    model.update(data)
    features, bins = model.design(data)
    inv_noise = 1.0 / noise[bins]
    precision = np.linalg.inv(covariance) + features.T @ (features * inv_noise[:, None])
    expected_cov = np.linalg.inv(precision)
    expected_mean = expected_cov @ (
        np.linalg.solve(covariance, mean) + features.T @ (inv_noise * data["power"])
    )
    np.testing.assert_allclose(model.noise_var_, noise, rtol=1e-9)
    np.testing.assert_allclose(model.posterior_mean_, expected_mean, rtol=1e-8)
    np.testing.assert_allclose(model.posterior_covariance_, expected_cov, rtol=1e-7, atol=1e-12)


def test_without_readings_it_predicts_from_the_prior_and_the_noise_target() -> None:
    mean, covariance = prior(3)
    noise = np.array([0.3, 1.0, 2.0, 4.0, 9.0])
    model = with_prior(mean, covariance, noise, count=10.0)
    flow = np.array([1.0, 5.0, 9.0])
    features, bins = model.design({"flow": flow})
    predictive = model.predict({"flow": flow})
    np.testing.assert_allclose(model.noise_var_, noise)
    # Far from the bounds [0, 50] kW the censored normal is the latent one.
    latent_var = np.einsum("np,pq,nq->n", features, covariance, features) + noise[bins]
    np.testing.assert_allclose(predictive.loc, features @ mean, rtol=1e-10)
    np.testing.assert_allclose(predictive.latent_var, latent_var, rtol=1e-8)


def test_the_noise_shrinks_towards_its_target_bin_by_bin() -> None:
    mean, covariance = prior(4)
    truth = np.square(PumpCurve().noise_sd)
    target = 4.0 * truth
    data = PumpCurve().observations(20_000, seed=5)
    few = with_prior(mean, covariance, target, count=1.0).update(data).noise_var_
    many = with_prior(mean, covariance, target, count=1e5).update(data).noise_var_
    # With a pseudo-reading the readings (about 4,000 a bin) decide; with 10^5 the
    # target mostly does.
    np.testing.assert_allclose(few, truth, rtol=0.08)
    assert np.all(np.abs(many - target) < np.abs(many - truth))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prior_covariance": np.eye(3)}, r"prior_covariance: expected shape \(23, 23\)"),
        ({"prior_covariance": -np.eye(23)}, "prior_covariance: expected a positive definite"),
        ({"prior_covariance": np.triu(np.ones((23, 23)))}, "expected a finite symmetric"),
        ({"noise_target": np.ones(4)}, r"noise_target: expected 5 variances .* shape \(4,\)"),
        ({"noise_target": [1.0, 1.0, 0.0, 1.0, 1.0]}, "noise_target: expected positive .* 0.0"),
    ],
)
def test_a_prior_of_the_wrong_shape_or_sign_is_refused_by_name(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BayesianBasisRegression(**{**pump_emulator().get_params(), **change})


def test_the_model_keeps_its_own_copies_of_the_prior() -> None:
    mean, covariance = prior(6)
    noise = np.ones(5)
    model = with_prior(mean, covariance, noise, count=10.0)
    before = model.predict({"flow": np.array([5.0])})
    # The caller's arrays changed afterwards change neither the model nor its clones.
    mean += 100.0
    covariance *= 50.0
    noise *= 9.0
    clone = BayesianBasisRegression(**model.get_params())
    for again in (model.predict({"flow": np.array([5.0])}), clone.predict({"flow": [5.0]})):
        np.testing.assert_array_equal(again.loc, before.loc)
        np.testing.assert_array_equal(again.latent_var, before.latent_var)
