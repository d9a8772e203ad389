"""Statistical contracts of BayesianBasisRegression."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm

EDGES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
SD = np.array([0.5, 1.0, 1.5, 2.0, 3.0])


def curve(flow: np.ndarray) -> np.ndarray:
    return 20.0 + 2.0 * flow + 6.0 * np.sin(0.8 * flow)


def noise_sd(flow: np.ndarray) -> np.ndarray:
    return SD[np.clip(np.searchsorted(EDGES, flow, side="right") - 1, 0, SD.size - 1)]


def readings(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    flow = rng.uniform(0.0, 10.0, n)
    power = curve(flow) + shift + noise_sd(flow) * rng.standard_normal(n)
    return {"flow": flow, "power": power}


def model(**changes: Any) -> BayesianBasisRegression:
    params: dict[str, Any] = {
        "target": "power",
        "terms": (SplineTerm("flow", 0.0, 10.0, 20),),
        "noise_source": "flow",
        "noise_edges": EDGES,
        "lower": 0.0,
        "upper": 80.0,
        "units": "kW",
        "smoothing": 1e-2,
        "ridge": 1e-6,
    }
    params.update(changes)
    return BayesianBasisRegression(**params)


def assert_relatively_close(a: np.ndarray, b: np.ndarray, rtol: float) -> None:
    # Relative to the largest entry: small off-diagonal covariances carry no scale.
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(a).max()))


@pytest.mark.parametrize("forgetting", [1.0, 0.999])
def test_batch_equals_stream_posterior(forgetting: float) -> None:
    data = readings(1500, seed=0)
    batch = model(forgetting=forgetting).update(data)
    stream = model(forgetting=forgetting)
    for flow, power in zip(data["flow"], data["power"], strict=True):
        stream.update({"flow": float(flow), "power": float(power)})
    assert stream.n_observations_ == pytest.approx(batch.n_observations_, rel=1e-9)
    assert_relatively_close(batch.posterior_mean_, stream.posterior_mean_, 1e-9)
    assert_relatively_close(batch.posterior_covariance_, stream.posterior_covariance_, 1e-9)
    assert_relatively_close(batch.noise_var_, stream.noise_var_, 1e-9)
    if forgetting < 1.0:
        # The discount is real: about 1 / (1 - lambda) readings' worth remain.
        assert batch.n_observations_ == pytest.approx((1 - forgetting**1500) / (1 - forgetting))


@pytest.mark.parametrize("forgetting", [1.0, 0.999])
def test_warm_refits_agree_with_a_cold_fit(forgetting: float) -> None:
    warm = model(forgetting=forgetting).update(readings(3000, seed=9))
    stream = readings(40, seed=10)
    for flow, power in zip(stream["flow"], stream["power"], strict=True):
        before = warm.noise_var_  # a fit: cold the first time, warm after
        warm.update({"flow": float(flow), "power": float(power)})
        # The next fit starts from the last answer.
        np.testing.assert_array_equal(warm.state()["noise_start_"], before)
    state = warm.state()
    cold_state = {name: value for name, value in state.items() if name != "noise_start_"}
    cold = BayesianBasisRegression.from_state(warm.get_params(), cold_state)
    assert np.isnan(cold.state()["noise_start_"]).all()
    # The same fixed point, to EM's tolerance (1e-10 relative change per step).
    assert_relatively_close(warm.noise_var_, cold.noise_var_, 1e-9)
    assert_relatively_close(warm.posterior_mean_, cold.posterior_mean_, 1e-9)
    assert_relatively_close(warm.posterior_covariance_, cold.posterior_covariance_, 1e-9)


def test_a_warm_started_twin_restores_bit_for_bit() -> None:
    warm = model().update(readings(2000, seed=11))
    warm.predict({"flow": [1.0]})
    warm.update(readings(10, seed=12))
    restored = BayesianBasisRegression.from_state(warm.get_params(), warm.state())
    grid = {"flow": np.linspace(0.0, 10.0, 41)}
    a, b = warm.predict(grid), restored.predict(grid)
    assert a.factor is not None and b.factor is not None
    for left, right in ((a.loc, b.loc), (a.noise_var, b.noise_var), (a.factor, b.factor)):
        np.testing.assert_array_equal(left, right)


def test_predictions_defer_the_shared_factor_and_it_matches_the_dense_one() -> None:
    fitted = model().update(readings(3000, seed=14))
    grid = {"flow": np.linspace(-1.0, 11.0, 61)}
    predictive = fitted.predict(grid)
    features, _ = fitted.design(grid)
    root = np.linalg.cholesky(fitted.posterior_covariance_)
    weight_var = np.einsum("ij,ij->i", features @ fitted.posterior_covariance_, features)
    # Marginals come from the quadratic form alone; the factor, once built, is
    # features @ L^-T: the same covariance of the points as features @ chol(C).
    np.testing.assert_allclose(predictive.latent_var - predictive.noise_var, weight_var, rtol=1e-9)
    factor = predictive.factor
    assert factor is not None and factor.shape == (61, fitted.n_features)
    np.testing.assert_allclose(
        factor @ factor.T, (features @ root) @ (features @ root).T, rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(np.sum(factor**2, axis=1), weight_var, rtol=1e-9)


def test_deep_forgetting_rescales_streamed_readings_too() -> None:
    # lambda^n falls below the rescaling threshold (1e-150) every ~680 readings.
    data = readings(3000, seed=13)
    batch = model(forgetting=0.6).update(data)
    stream = model(forgetting=0.6)
    for flow, power in zip(data["flow"], data["power"], strict=True):
        stream.update({"flow": flow, "power": power})
    assert stream.scale_ > 1e-150
    assert stream.n_observations_ == pytest.approx(1 / (1 - 0.6), rel=1e-9)
    for name, value in batch.statistics().items():
        assert_relatively_close(stream.statistics()[name], value, 1e-12)


def test_batches_of_any_size_give_one_posterior() -> None:
    data = readings(3000, seed=1)
    whole = model(forgetting=0.9995).update(data)
    parts = model(forgetting=0.9995)
    for lo in range(0, 3000, 701):
        parts.update({name: values[lo : lo + 701] for name, values in data.items()})
    assert_relatively_close(whole.posterior_mean_, parts.posterior_mean_, 1e-9)
    assert_relatively_close(whole.posterior_covariance_, parts.posterior_covariance_, 1e-9)


def test_heteroscedastic_noise_is_recovered() -> None:
    fitted = model().update(readings(200_000, seed=2))
    # About 40,000 readings per bin: the sd estimate's standard error is ~0.4 %.
    np.testing.assert_allclose(np.sqrt(fitted.noise_var_), SD, rtol=0.03)
    grid = np.linspace(0.25, 9.75, 39)
    np.testing.assert_allclose(fitted.predict({"flow": grid}).mean, curve(grid), atol=0.1)


def test_forgetting_tracks_a_step_change() -> None:
    before, after = readings(5000, seed=3), readings(3000, seed=4, shift=5.0)
    grid = {"flow": np.linspace(0.5, 9.5, 50)}
    # A memory of about 500 readings: 3000 readings after the step, the old level
    # carries weight exp(-6).
    tracking = model(forgetting=1 - 1 / 500).update(before).update(after)
    frozen = model().update(before).update(after)
    predictive = tracking.predict(grid)
    error = predictive.mean - (curve(grid["flow"]) + 5.0)
    assert abs(error.mean()) < 0.15
    # Pointwise, the error is within what the posterior itself expects (~500 readings).
    assert predictive.factor is not None
    parameter_sd = np.sqrt(np.sum(predictive.factor**2, axis=1))
    assert np.max(np.abs(error) / parameter_sd) < 4.0
    # Without forgetting the fit sits between the old and new levels (3/8 of the way).
    shift = frozen.predict(grid).mean - curve(grid["flow"])
    assert shift.mean() == pytest.approx(5.0 * 3 / 8, abs=0.1)
    # The tracking model's intervals hold in the new regime.
    test = readings(4000, seed=5, shift=5.0)
    lo, hi = tracking.predict(test).interval(0.9)
    coverage = np.mean((test["power"] >= lo) & (test["power"] <= hi))
    assert abs(coverage - 0.9) < 3 * np.sqrt(0.9 * 0.1 / 4000) + 0.01


def test_coverage_is_nominal_in_every_region() -> None:
    fitted = model().update(readings(20_000, seed=6))
    test = readings(40_000, seed=7)
    region = np.clip(np.searchsorted(EDGES, test["flow"], side="right") - 1, 0, 4)
    predictive = fitted.predict(test)
    for level in (0.5, 0.9):
        lo, hi = predictive.interval(level)
        covered = (test["power"] >= lo) & (test["power"] <= hi)
        for j in range(5):
            inside = covered[region == j]
            se = np.sqrt(level * (1 - level) / inside.size)
            assert abs(inside.mean() - level) < 3 * se, (level, j, inside.mean())


def test_predictions_respect_bounds_and_units() -> None:
    fitted = model(upper=30.0).update(readings(5000, seed=8))
    predictive = fitted.predict({"flow": np.linspace(0, 10, 50)})
    assert predictive.units == "kW"
    quantiles = predictive.quantile([0.001, 0.999])
    assert quantiles.min() >= 0.0 and quantiles.max() == 30.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"forgetting": 1.5}, r"forgetting: expected a number in \(0, 1\], got 1.5"),
        # Settings of the wrong type are named, not compared with Python's own error.
        ({"forgetting": "0.9"}, r"forgetting: expected a number in \(0, 1\], got '0.9'"),
        ({"smoothing": "1e-3"}, r"smoothing: expected a number >= 0, got '1e-3'"),
        ({"noise_prior_count": -1.0}, r"noise_prior_count: expected a number >= 0, got -1.0"),
        ({"bound_prior_count": None}, r"bound_prior_count: expected a number > 0, got None"),
        ({"n_em_iterations": 2.5}, r"n_em_iterations: expected an integer >= 1, got 2.5"),
        ({"lower": None}, r"lower: expected a number, got None"),
        ({"upper": np.nan}, r"upper: expected a number, got nan"),
        (
            {"noise_edges": [0.0, 5.0, 3.0]},
            r"noise_edges: expected .* increasing .*\[0.0, 5.0, 3.0\]",
        ),
        ({"lower": 5.0, "upper": 1.0}, r"bounds: expected lower < upper, got \[5.0, 1.0\]"),
        ({"ridge": 0.0}, r"ridge: expected a number > 0, got 0.0"),
        ({"terms": ()}, r"terms: expected at least one basis term"),
    ],
)
def test_bad_configuration_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(**changes)


def test_a_switch_that_is_no_bool_is_refused() -> None:
    # "no" is true: without the check it would switch the bounds' masses on.
    with pytest.raises(TypeError, match=r"bound_masses: expected True or False, got 'no'"):
        model(bound_masses="no")


def test_a_state_missing_an_entry_is_named() -> None:
    fitted = model().update(readings(200, seed=3))
    state = dict(fitted.state())
    del state["gram_"]
    with pytest.raises(KeyError, match=r"state: missing entries \['gram_'\]: expected \["):
        BayesianBasisRegression.from_state(fitted.get_params(), state)


def test_bad_readings_are_named() -> None:
    fitted = model()
    with pytest.raises(ValueError, match=r"row 3: expected finite power .*power=.*nan"):
        fitted.update({"flow": [1.0, 2.0, 3.0, 4.0], "power": [1.0, 2.0, 3.0, np.nan]})
    with pytest.raises(
        ValueError, match=r"power: expected 2 values \(one per row, as 'flow' has\) .*got 3"
    ):
        fitted.update({"flow": [1.0, 2.0], "power": [1.0, 2.0, 3.0]})
    with pytest.raises(KeyError, match=r"missing target 'power'.*\['flow'\]"):
        fitted.update({"flow": [1.0]})
    with pytest.raises(KeyError, match=r"missing input 'flow'.*\['power'\]"):
        fitted.update({"power": [1.0]})
    # One target value but two inputs: not one reading, and said so.
    with pytest.raises(ValueError, match=r"power: expected 2 values, got 1"):
        fitted.update({"flow": [1.0, 2.0], "power": [1.0]})
    with pytest.raises(ValueError, match=r"row 0: expected finite power .*power=.*inf"):
        fitted.update({"flow": 1.0, "power": np.inf})
    # Nothing was assimilated by the failed calls.
    assert fitted.n_observations_ == 0


@pytest.mark.parametrize(
    "readings",
    [
        {"flow": np.inf, "power": 22.0},
        {"flow": [np.inf], "power": [22.0]},
        {"flow": [1.0, -np.inf], "power": [22.0, 24.0]},
    ],
)
def test_an_infinite_input_is_refused_not_clamped_to_the_spline_end(
    readings: dict[str, Any],
) -> None:
    # The spline clamps its input to its range, so an infinite flow gave finite
    # features and was assimilated as a reading at 10.
    fitted = model().update(readings_between(0.0, 10.0))
    before = fitted.state()
    with pytest.raises(
        ValueError, match=r"expected finite power and inputs.*non-finite \['flow'\]"
    ):
        fitted.update(readings)
    for name, value in fitted.state().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def readings_between(low: float, high: float) -> dict[str, np.ndarray]:
    flow = np.linspace(low, high, 50)
    return {"flow": flow, "power": curve(flow)}


@pytest.mark.parametrize(
    "readings",
    [
        {"flow": "1e1", "power": 22.0},
        {"flow": ["1e1"], "power": [22.0]},
        {"flow": np.array(["1", "2"]), "power": [22.0, 24.0]},
        {"flow": [1.0, 2.0], "power": [22.0, "24"]},
    ],
)
def test_text_is_refused_where_numbers_are_read(readings: dict[str, Any]) -> None:
    # numpy reads "1e1" as 10: text was assimilated and predicted from as numbers.
    fitted = model()
    with pytest.raises(ValueError, match=r"(flow|power): expected numbers, got the text"):
        fitted.update(readings)
    assert fitted.n_observations_ == 0
    with pytest.raises(ValueError, match=r"flow: expected numbers, got the text '1e1' at row 0"):
        fitted.predict({"flow": ["1e1"]})


def test_columns_of_other_lengths_are_named_before_inputs_are_combined() -> None:
    from twinweave.domains.wind import power_curve_emulator

    emulator = power_curve_emulator(2050.0)
    speeds = [5.0, 6.0, 7.0]
    # The density-normalised wind speed combined them first, and numpy's broadcasting
    # error named no column.
    expected = r"temp_air: expected 3 values \(one per row, as 'wind_speed' has\) or one"
    with pytest.raises(ValueError, match=expected):
        emulator.predict({"wind_speed": speeds, "temp_air": [1.0, 2.0]})
    with pytest.raises(ValueError, match=expected):
        emulator.update({"wind_speed": speeds, "temp_air": [1.0, 2.0], "power": [1.0] * 3})
    with pytest.raises(ValueError, match=r"wind_speed: expected one value per row \(1-D\)"):
        emulator.predict({"wind_speed": [speeds]})
    # One value for all rows is still one for all; a target column predict does not
    # read is not judged.
    assert len(emulator.predict({"wind_speed": speeds, "temp_air": 10.0})) == 3
    assert len(emulator.predict({"wind_speed": speeds, "power": [1.0] * 5})) == 3
    # An infinite temperature or density is no wind speed at the spline's end: the
    # density falls back to its standard value, as for a missing one.
    for column in ("temp_air", "air_density", "pressure"):
        for value in (np.inf, np.nan):
            reading = {"wind_speed": 8.0, "power": 500.0, column: value}
            emulator.update(reading)
            emulator.update({k: np.array([v, v]) for k, v in reading.items()})


def test_one_reading_may_carry_columns_the_model_does_not_read() -> None:
    fitted = model().update({"flow": 1.0, "power": 22.0, "asset_id": "pump-1"})
    assert fitted.n_observations_ == 1


def test_seen_is_true_where_readings_were_assimilated_and_false_beyond() -> None:
    # Data on [0, 10), noise bins to 20: the bins above 10 hold no reading.
    fitted = model(
        terms=(SplineTerm("flow", 0.0, 20.0, 20),), noise_edges=np.linspace(0.0, 20.0, 11)
    ).update(readings(500, seed=0))
    flow = np.array([0.5, 5.0, 9.9, 10.5, 15.0, 19.5, 30.0, -3.0, np.nan])
    expected = [True, True, True, False, False, False, False, True, False]
    assert fitted.seen({"flow": flow}).tolist() == expected
    assert fitted.seen({"flow": 15.0}).tolist() == [False]
    assert not model().seen({"flow": [5.0]}).any()


def test_seen_counts_effective_readings_and_survives_a_state_round_trip() -> None:
    fitted = model(noise_edges=np.linspace(0.0, 20.0, 11), forgetting=0.5)
    # One reading at 5, discounted to half a reading by the next one, at 15.
    fitted.update({"flow": 5.0, "power": 30.0}).update({"flow": 15.0, "power": 50.0})
    assert fitted.seen({"flow": [5.0, 15.0]}).tolist() == [False, True]
    restored = BayesianBasisRegression.from_state(fitted.get_params(), fitted.state())
    flow = {"flow": np.linspace(-1.0, 21.0, 45)}
    np.testing.assert_array_equal(restored.seen(flow), fitted.seen(flow))
    batch = model(noise_edges=np.linspace(0.0, 20.0, 11)).update(readings(200, seed=1))
    again = BayesianBasisRegression.from_state(batch.get_params(), batch.state())
    # Below the first edge is the first bin, which has readings.
    np.testing.assert_array_equal(again.seen(flow), flow["flow"] < 10.0)


def test_a_prediction_names_a_missing_noise_source() -> None:
    fitted = model().update(readings(500, seed=15))
    with pytest.raises(
        ValueError, match=r"flow: 2 of 3 values missing or not finite, first at row 1 \(nan\)"
    ):
        fitted.predict({"flow": [1.0, np.nan, np.inf]})


def test_a_prior_set_for_another_scale_of_the_target_warns() -> None:
    # The same readings in W against penalties set for kW: the prior holds the curve
    # towards zero, the fit takes most of the readings for noise and predicted 20,600 W
    # at flow 5 where the curve is 25,500 W, without a word.
    data = readings(2000, seed=9)
    in_watts = {"flow": data["flow"], "power": data["power"] * 1000.0}
    with pytest.warns(
        UserWarning,
        match=r"power: the prior holds the fit far from the readings: their mean squared "
        r"residual is \S+ \[W\^2\] about the posterior mean and \S+ about a least-squares "
        r"curve of the same basis; expected a prior that allows curves on the readings' scale",
    ):
        model(units="W", upper=np.inf, smoothing=1e2, ridge=1e-2).update(in_watts).predict(
            {"flow": [5.0]}
        )
    # On the readings' scale: no warning, and the curve followed.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = model().update(data).predict({"flow": [5.0]})
    assert fitted.mean[0] == pytest.approx(curve(np.array([5.0]))[0], abs=0.5)
