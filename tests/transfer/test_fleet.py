"""Statistical contracts of the hierarchical fleet model, on synthetic fleets."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import numpy as np
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    FleetPrior,
    LocalSummary,
    Population,
    TwinStatistics,
    aggregate,
    complete_pooling,
    fit_central,
    initial_population,
    local_step,
    local_steps,
    no_pooling,
    population_twins,
    sum_summaries,
    twin_posterior,
)

EDGES = np.linspace(0.0, 10.0, 6)
NOISE_SD = np.array([0.05, 0.1, 0.2, 0.15, 0.1])
GRID = {"x": np.linspace(0.0, 10.0, 201)}


# For tests that cap the rounds on purpose: the fits warn that they did not converge.
rounds_capped = pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")


def emulator() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 10.0, 6),),
        noise_source="x",
        noise_edges=EDGES,
        smoothing=1e-3,
        ridge=1e-6,
    )


def prior() -> FleetPrior:
    return FleetPrior.from_emulator(emulator(), smoothness=4.0)


def true_population(rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth mean curve and the model's structured covariance with ``scale``."""
    p = emulator().n_features
    mean = np.sin(np.linspace(-0.5, 3.5, p)) + 2.0
    return mean, scale**2 * prior().structure_covariance[:p, :p]


def readings(rng: np.random.Generator, weights: np.ndarray, n: int) -> dict[str, np.ndarray]:
    x = rng.uniform(0.0, 10.0, n)
    features, bins = emulator().design({"x": x})
    return {"x": x, "y": features @ weights + rng.normal(0.0, NOISE_SD[bins])}


def statistics(rng: np.random.Generator, weights: np.ndarray, n: int) -> TwinStatistics:
    model = emulator()
    if n:
        model.update(readings(rng, weights, n))
    return TwinStatistics.from_emulator(model)


def fleet(
    rng: np.random.Generator, n_twins: int, n_readings: int, scale: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[TwinStatistics]]:
    mean, covariance = true_population(rng, scale)
    weights = rng.multivariate_normal(mean, covariance, size=n_twins)
    return mean, covariance, weights, [statistics(rng, w, n_readings) for w in weights]


def curve(weights: np.ndarray) -> np.ndarray:
    features, _ = emulator().design(GRID)
    return np.asarray(features @ weights)


def test_recovers_the_population_mean_covariance_and_noise() -> None:
    rng = np.random.default_rng(1)
    mean, covariance, weights, stats = fleet(rng, n_twins=80, n_readings=400, scale=0.3)
    fit = fit_central(dict(enumerate(stats)), prior(), tol=1e-8)
    assert fit.converged and fit.population is not None
    population = fit.population
    # The mean is known to about sqrt(Sigma / N) per weight.
    error = np.abs(population.mean[0] - weights.mean(axis=0))
    assert np.all(error < 4.0 * np.sqrt(np.diag(covariance) / 80) + 1e-3)
    assert np.sqrt(np.mean((population.mean[0] - mean) ** 2)) < 0.15
    # The covariance's scale: 80 twins of p weights estimate it to a few per cent.
    ratio = np.trace(np.linalg.solve(covariance, population.covariance[0])) / len(mean)
    assert ratio == pytest.approx(1.0, abs=0.15)
    assert population.noise_var is not None
    # A typical twin's noise estimate: 80 readings per bin, shrunk with 10 pseudo-readings
    # towards the pooled variance, as one emulator alone would estimate it.
    pooled = np.mean(NOISE_SD**2)
    expected = (80 * NOISE_SD**2 + 10 * pooled) / (80 + 10)
    np.testing.assert_allclose(population.noise_var[0], expected, rtol=0.1)


def test_partial_pooling_shrinks_towards_the_population_and_helps_a_poor_twin() -> None:
    rng = np.random.default_rng(2)
    mean, covariance = true_population(rng, 0.3)
    rich = rng.multivariate_normal(mean, covariance, size=15)
    poor = rng.multivariate_normal(mean, covariance, size=12)
    stats = [statistics(rng, w, 500) for w in rich] + [statistics(rng, w, 6) for w in poor]
    partial = fit_central(dict(enumerate(stats)), prior())
    alone = no_pooling(dict(enumerate(stats)), prior())
    assert partial.population is not None
    population_curve = curve(partial.population.mean[0])
    errors_partial, errors_alone = [], []
    for k, w in enumerate(poor):
        i = len(rich) + k
        towards = np.linalg.norm(curve(partial.twins[i].mean) - population_curve)
        away = np.linalg.norm(curve(alone.twins[i].mean) - population_curve)
        assert towards < away
        errors_partial.append(np.sqrt(np.mean((curve(partial.twins[i].mean) - curve(w)) ** 2)))
        errors_alone.append(np.sqrt(np.mean((curve(alone.twins[i].mean) - curve(w)) ** 2)))
    assert np.mean(errors_partial) < 0.5 * np.mean(errors_alone)
    # Data-rich twins keep their own curves.
    for i in range(len(rich)):
        gap = np.abs(curve(partial.twins[i].mean) - curve(alone.twins[i].mean)).max()
        assert gap < 0.1


def test_with_huge_data_every_twin_approaches_its_own_posterior() -> None:
    rng = np.random.default_rng(3)
    _, _, _, stats = fleet(rng, n_twins=5, n_readings=200_000)
    partial = fit_central(dict(enumerate(stats)), prior())
    alone = no_pooling(dict(enumerate(stats)), prior())
    for mine, own in zip(partial.twins.values(), alone.twins.values(), strict=True):
        assert np.abs(curve(mine.mean) - curve(own.mean)).max() < 5e-3
        # The noise differs by about twin_noise_prior_count * pooled / n_j (300 * 0.017 /
        # 40,000 in the quietest bin, 5 % of its variance) and vanishes with more data.
        np.testing.assert_allclose(mine.noise_var, own.noise_var, rtol=0.06)


def test_the_fit_depends_only_on_the_statistics() -> None:
    rng = np.random.default_rng(4)
    mean, covariance = true_population(rng, 0.3)
    weights = rng.multivariate_normal(mean, covariance, size=4)
    batches = [readings(rng, w, 300) for w in weights]
    batch_stats = [TwinStatistics.from_emulator(emulator().update(b)) for b in batches]
    streamed = []
    for b in batches:
        model = emulator()
        for i in range(len(b["x"])):
            model.update({"x": b["x"][i : i + 1], "y": b["y"][i : i + 1]})
        streamed.append(TwinStatistics.from_emulator(model))
    one = fit_central(dict(enumerate(batch_stats)), prior(), tol=1e-10)
    other = fit_central(dict(enumerate(streamed)), prior(), tol=1e-10)
    assert one.population is not None and other.population is not None
    np.testing.assert_allclose(other.population.mean, one.population.mean, rtol=1e-9)
    np.testing.assert_allclose(
        other.population.covariance, one.population.covariance, rtol=1e-8, atol=1e-14
    )
    for a, b in zip(one.twins.values(), other.twins.values(), strict=True):
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-9, atol=1e-12)


@rounds_capped
def test_summaries_are_summable_in_any_order_and_grouping() -> None:
    rng = np.random.default_rng(5)
    _, _, _, stats = fleet(rng, n_twins=6, n_readings=200)
    population = fit_central(dict(enumerate(stats)), prior(), n_rounds=3, tol=1e-12).population
    assert population is not None
    summaries = [local_step(s, population) for s in stats]
    regrouped = sum_summaries(
        [summaries[5] + summaries[2], summaries[0] + summaries[4] + summaries[1], summaries[3]]
    )
    one = aggregate(summaries, population)
    other = aggregate(regrouped, population)
    for name in ("mean", "covariance", "noise_var", "mean_covariance"):
        np.testing.assert_allclose(getattr(other, name), getattr(one, name), rtol=1e-12)
    # An average of summaries times the number of twins is their sum.
    average = sum_summaries(summaries).scaled(1 / 6)
    np.testing.assert_allclose(aggregate(average.scaled(6), population).mean, one.mean, rtol=1e-12)
    # The vectorised local step gives each twin's own summary.
    for mine, own in zip(local_steps(stats, population), summaries, strict=True):
        for name, _ in LocalSummary.ARRAYS:
            np.testing.assert_allclose(
                getattr(mine, name), getattr(own, name), rtol=1e-12, atol=1e-12
            )


@rounds_capped
@pytest.mark.parametrize("n_knots", [6, 40])
def test_twins_computed_together_send_what_each_computes_alone(n_knots: int) -> None:
    """The central fit and the in-process federation compute many twins' local steps
    together; a twin alone (over Flower, in gossip) must send the very same numbers,
    with few weights (numpy's stacked inverse) and with many (LAPACK per twin)."""

    def wide() -> BayesianBasisRegression:
        return BayesianBasisRegression(
            target="y",
            terms=(SplineTerm("x", 0.0, 10.0, n_knots),),
            noise_source="x",
            noise_edges=EDGES,
        )

    rng = np.random.default_rng(12)
    stats = []
    for n in [0, 3, 40, *rng.integers(100, 3_000, size=37)]:
        x = rng.uniform(0.0, 10.0, n)
        y = (1.0 + 0.2 * rng.standard_normal()) * np.sin(x / 3.0) + rng.normal(0.0, 0.1, n)
        stats.append(TwinStatistics.from_emulator(wide().update({"x": x, "y": y})))
    fleet_prior = FleetPrior.from_emulator(wide())
    fitted = fit_central(dict(enumerate(stats)), fleet_prior, n_rounds=2).population
    assert fitted is not None
    for population in (initial_population(fleet_prior, ["default"]), fitted):
        together = local_steps(stats, population)
        for twin, summary in zip(stats, together, strict=True):
            alone = local_step(twin, population).to_arrays()
            for name, value in summary.to_arrays().items():
                np.testing.assert_array_equal(value, alone[name], err_msg=name)
    posteriors = fit_central(dict(enumerate(stats)), fleet_prior, n_rounds=2).twins.values()
    for twin, posterior in zip(stats, posteriors, strict=True):
        own = twin_posterior(twin, fitted)
        np.testing.assert_array_equal(posterior.mean, own.mean)
        np.testing.assert_array_equal(posterior.covariance, own.covariance)
        np.testing.assert_array_equal(posterior.noise_var, own.noise_var)


def test_a_new_twin_is_covered_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(6)
    mean, covariance, _, stats = fleet(rng, n_twins=60, n_readings=300, scale=0.3)
    fit = fit_central(dict(enumerate(stats)), prior())
    design = emulator()
    hits, widths_new, widths_known = [], [], []
    for w in rng.multivariate_normal(mean, covariance, size=400):
        data = readings(rng, w, 20)
        low, high = fit.predict(None, data, design).interval(0.9)
        hits.append((data["y"] >= low) & (data["y"] <= high))
        widths_new.append(np.mean(high - low))
    for i in range(5):
        low, high = fit.predict(i, readings(rng, mean, 20), design).interval(0.9)
        widths_known.append(np.mean(high - low))
    assert np.mean(hits) == pytest.approx(0.9, abs=0.02)
    # A twin with no data gets wider intervals than a twin with data.
    assert np.mean(widths_new) > 1.5 * np.mean(widths_known)


def test_no_pooling_is_the_emulators_own_posterior_and_the_first_round() -> None:
    rng = np.random.default_rng(7)
    mean, covariance = true_population(rng, 0.3)
    batches = [
        readings(rng, w, n)
        for w, n in zip(
            rng.multivariate_normal(mean, covariance, size=3), (50, 500, 5), strict=True
        )
    ]
    models = [emulator().update(b) for b in batches]
    stats = [TwinStatistics.from_emulator(m) for m in models]
    alone = no_pooling(dict(enumerate(stats)), prior())
    first = local_steps(stats, initial_population(prior(), ["default"]))
    for model, mine, summary in zip(models, alone.twins.values(), first, strict=True):
        np.testing.assert_allclose(mine.mean, model.posterior_mean_, rtol=1e-12)
        np.testing.assert_allclose(mine.noise_var, model.noise_var_, rtol=1e-12)
        np.testing.assert_allclose(summary.sum_mean[0], model.posterior_mean_, rtol=1e-8)
    pooled = emulator().update({k: np.concatenate([b[k] for b in batches]) for k in ("x", "y")})
    together = complete_pooling(dict(enumerate(stats)), prior())
    np.testing.assert_allclose(together.twins[1].mean, pooled.posterior_mean_, rtol=1e-8)
    np.testing.assert_allclose(
        together.predict(None, GRID, emulator()).mean, pooled.predict(GRID).mean, rtol=1e-8
    )


@rounds_capped
def test_records_travel_as_arrays() -> None:
    rng = np.random.default_rng(8)
    _, _, _, stats = fleet(rng, n_twins=3, n_readings=100)
    population = fit_central(dict(enumerate(stats)), prior(), n_rounds=2).population
    assert population is not None
    again = Population.from_arrays(population.to_arrays(), population.kinds)
    summary = local_step(stats[0], population)
    np.testing.assert_array_equal(local_step(stats[0], again).sum_mean, summary.sum_mean)
    back = LocalSummary.from_arrays(summary.to_arrays(), summary.kinds)
    np.testing.assert_array_equal(back.sum_quadratic, summary.sum_quadratic)
    assert back.log_evidence == summary.log_evidence
    assert set(summary.to_arrays()) == {name for name, _ in LocalSummary.ARRAYS} | {"log_evidence"}


def test_mismatched_summaries_are_named() -> None:
    rng = np.random.default_rng(9)
    _, _, _, stats = fleet(rng, n_twins=2, n_readings=50)
    population = initial_population(prior(), ["a"])
    other = initial_population(prior(), ["b"])
    with pytest.raises(KeyError, match="kind 'default'"):
        local_step(stats[0], population)
    relabelled = [TwinStatistics(s.gram, s.moment, s.sum_sq, s.count, kind="a") for s in stats]
    with pytest.raises(ValueError, match="kinds"):
        aggregate(local_steps(relabelled, population), other)
    with pytest.raises(ValueError, match="at least one"):
        fit_central({}, prior())


@pytest.mark.parametrize("method", [fit_central, no_pooling, complete_pooling])
def test_a_fitted_twin_is_predicted_by_its_identifier(method: Any) -> None:
    rng = np.random.default_rng(11)
    _, _, _, stats = fleet(rng, n_twins=3, n_readings=200)
    names = ["R80736", "R80711", "R80721"]  # not sorted: the mapping's order is kept
    by_name = method(dict(zip(names, stats, strict=True)), prior())
    by_position = method(dict(enumerate(stats)), prior())
    assert list(by_name.twins) == names
    data = readings(rng, np.zeros(emulator().n_features), 5)
    for index, name in enumerate(names):
        got = by_name.predict(name, data, emulator())
        expected = by_position.predict(index, data, emulator())
        np.testing.assert_array_equal(got.mean, expected.mean)
        np.testing.assert_array_equal(got.var, expected.var)
    with pytest.raises(KeyError, match=r"twin 'R80790': expected the identifier of a fitted"):
        by_name.predict("R80790", data, emulator())
    # An index is not an identifier of a fleet named otherwise (nor -1 the last twin).
    for index in (0, -1):
        with pytest.raises(KeyError, match=rf"twin {index}: .* one of \['R80736', 'R80711'"):
            by_name.predict(index, data, emulator())
    # Messages name a twin by its identifier.
    with pytest.raises(TypeError, match=r"stats\['R80721'\]: expected TwinStatistics"):
        method({"R80711": stats[0], "R80721": "statistics"}, prior())
    with pytest.raises(TypeError, match=r"twin: expected a fitted twin's identifier .* got list"):
        by_name.predict(["R80711"], data, emulator())
    with pytest.raises(TypeError, match=r"stats: expected a mapping .* got list; .*\(enumerate"):
        method(stats, prior())
    with pytest.raises(ValueError, match="stats: None is not a twin identifier"):
        method({None: stats[0]}, prior())


@pytest.mark.parametrize("method", [fit_central, no_pooling, complete_pooling])
def test_a_bool_is_not_taken_for_twin_1_or_0(method: Any) -> None:
    rng = np.random.default_rng(12)
    _, _, _, stats = fleet(rng, n_twins=3, n_readings=200)
    fit = method(dict(enumerate(stats)), prior())
    data = readings(rng, np.zeros(emulator().n_features), 5)
    # True == 1 and hash(True) == hash(1): a dict lookup would find twin 1.
    for flag in (True, False, np.True_):
        with pytest.raises(
            TypeError,
            match=rf"twin: expected one of the fleet's identifiers \[0, 1, 2\] .*, got the "
            rf"bool {flag!r}",
        ):
            fit.predict(flag, data, emulator())
        # Nor by the fitted twins' mapping.
        with pytest.raises(TypeError, match=r"twin: expected a twin's identifier, got the bool"):
            fit.twins[flag]
        with pytest.raises(TypeError, match=r"twin: expected a twin's identifier, got the bool"):
            flag in fit.twins  # noqa: B015 (the lookup is what is tested)
    # A fleet whose identifiers are bools is asked with them.
    by_flag = method({False: stats[0], True: stats[1]}, prior())
    by_number = method({0: stats[0], 1: stats[1]}, prior())
    got = by_flag.predict(True, data, emulator())
    np.testing.assert_array_equal(got.mean, by_number.predict(1, data, emulator()).mean)
    assert True in by_flag.twins
    np.testing.assert_array_equal(by_flag.twins[True].mean, by_number.twins[1].mean)
    # A kind is a string: a bool for one is named as a kind, not as a twin.
    with pytest.raises(TypeError, match=r"kind: expected one of the fleet's kinds, got the bool"):
        fit.predict(None, data, emulator(), kind=True)


def test_a_key_the_fleet_does_not_hold_is_named_with_those_it_does() -> None:
    rng = np.random.default_rng(14)
    _, _, _, stats = fleet(rng, n_twins=3, n_readings=200)
    fit = fit_central({f"T{i}": s for i, s in enumerate(stats)}, prior())
    with pytest.raises(
        KeyError, match=r"twin 'T9': expected a twin's identifier \('T0', 'T1', 'T2'\)"
    ):
        fit.twins["T9"]
    for kinds in (fit.new_twin, population_twins(fit.population)):
        with pytest.raises(
            KeyError, match=r"kind 'MM82': expected one of the .* kinds \('default'\)"
        ):
            kinds["MM82"]


def test_a_fitted_fleet_cannot_be_changed_by_accident_and_still_pickles() -> None:
    rng = np.random.default_rng(13)
    _, _, _, stats = fleet(rng, n_twins=3, n_readings=200)
    fit = fit_central(dict(enumerate(stats)), prior())
    data = readings(rng, np.zeros(emulator().n_features), 5)
    expected = fit.predict(1, data, emulator()).mean
    for copied in (fit, pickle.loads(pickle.dumps(fit)), copy.deepcopy(fit)):
        with pytest.raises(TypeError):
            copied.twins[1] = copied.twins[0]
        with pytest.raises(TypeError):
            copied.new_twin["default"] = copied.twins[0]
        with pytest.raises(AttributeError):
            copied.twins.clear()
        assert list(copied.twins) == [0, 1, 2] and list(copied.new_twin) == ["default"]
        np.testing.assert_array_equal(copied.predict(1, data, emulator()).mean, expected)


def _line_twin(slope: float, seed: int, kind: str) -> TwinStatistics:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, 300)
    y = slope * x + rng.normal(0.0, 0.1, 300)
    return TwinStatistics.from_emulator(_line_model().update({"x": x, "y": y}), kind)


def _line_model() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y", terms=(SplineTerm("x", 0, 1, 4),), noise_source="x", noise_edges=[0, 0.5, 1]
    )


@pytest.mark.parametrize(
    ("fleet", "vanishing"),
    [
        pytest.param({"only": (1.0, "default")}, "covariance", id="one twin"),
        pytest.param({f"T{k}": (1.0, "default") for k in range(5)}, "covariance", id="alike"),
        pytest.param(
            {f"{kind}{k}": (1.0 + 0.05 * k, kind) for kind in "AB" for k in range(3)},
            "between_covariance",
            id="two kinds alike",
        ),
    ],
)
def test_rounds_settle_where_twins_do_not_differ(
    fleet: dict[str, tuple[float, str]], vanishing: str
) -> None:
    # EM takes Sigma (or Sigma_B) towards zero by about 1/round of itself per round;
    # measured against Sigma alone the change never fell below 1e-6 (1,000 rounds and a
    # warning to raise n_rounds, for a fleet of one twin).
    stats = {
        name: _line_twin(slope, seed, kind)
        for seed, (name, (slope, kind)) in enumerate(fleet.items())
    }
    fit = fit_central(stats, FleetPrior.from_emulator(_line_model()))
    assert fit.converged
    assert fit.n_rounds < 500
    population = fit.population
    # It did head for zero: small beside what it is added to in a prediction.
    if vanishing == "covariance":
        spread = np.trace(population.covariance, axis1=1, axis2=2)
        of_mean = np.trace(population.mean_covariance, axis1=1, axis2=2)
    else:
        assert population.between_covariance is not None
        spread = np.trace(population.between_covariance)
        of_mean = np.trace(population.global_covariance)
    assert np.all(spread < 0.01 * (spread + of_mean))


def test_a_fitted_twin_carries_the_uncertainty_of_its_kinds_mean() -> None:
    """Given the covariance and noise, a twin's posterior is the marginal of the joint
    Gaussian of ``(mu, w_1..w_n)`` given every twin's readings: the E-step's mean, and its
    covariance plus what the population mean's uncertainty adds (Lindley and Smith 1972).
    So a twin is as unsure as its kind's mean where no twin has readings."""
    rng = np.random.default_rng(21)
    mean, covariance = true_population(rng, 0.3)
    weights = rng.multivariate_normal(mean, covariance, size=3)
    # No twin has readings above 6: there only the prior speaks for the mean.
    stats, readings_of = [], []
    for w, n in zip(weights, (40, 400, 2_000), strict=True):
        x = rng.uniform(0.0, 6.0, n)
        features, bins = emulator().design({"x": x})
        y = features @ w + rng.normal(0.0, NOISE_SD[bins])
        stats.append(TwinStatistics.from_emulator(emulator().update({"x": x, "y": y})))
        readings_of.append((features, bins, y))
    # The twins' noise pinned to the kind's (no shrinkage towards their own), so that
    # the dense model below has it exactly.
    fixed = FleetPrior.from_emulator(
        emulator(), smoothness=4.0, twin_noise_prior_count=1e12, own_noise_count=1e12
    )
    p = fixed.n_features
    start = Population(
        prior=fixed,
        kinds=("default",),
        mean=mean[None],
        mean_covariance=np.zeros((1, p, p)),
        covariance=covariance[None],
        noise_var=(NOISE_SD**2)[None],
        global_mean=mean,
        global_covariance=covariance,
    )
    # The mean's posterior given the covariance and noise: an aggregation's first step.
    given = aggregate(local_steps(stats, start), start)
    population = dataclasses.replace(start, mean=given.mean, mean_covariance=given.mean_covariance)
    posteriors = [twin_posterior(s, population) for s in stats]
    # The same from the joint precision of (mu, w_1, w_2, w_3) given all readings.
    inv_sigma = np.linalg.inv(covariance)
    inv_v0 = fixed.mean_prior_weight * fixed.prior_precision
    joint = np.zeros((4 * p, 4 * p))
    rhs = np.zeros(4 * p)
    joint[:p, :p] = inv_v0 + 3 * inv_sigma
    rhs[:p] = inv_v0 @ fixed.prior_mean
    for i, (features, bins, y) in enumerate(readings_of, start=1):
        own = slice(i * p, (i + 1) * p)
        weight = 1.0 / posteriors[i - 1].noise_var[bins]
        joint[:p, own] = joint[own, :p] = -inv_sigma
        joint[own, own] = inv_sigma + features.T @ (weight[:, None] * features)
        rhs[own] = features.T @ (weight * y)
    joint_cov = np.linalg.inv(joint)
    joint_mean = joint_cov @ rhs
    np.testing.assert_allclose(population.mean[0], joint_mean[:p], rtol=1e-6)
    np.testing.assert_allclose(population.mean_covariance[0], joint_cov[:p, :p], rtol=1e-6)
    grid, _ = emulator().design({"x": np.array([3.0, 9.0])})
    for i, posterior in enumerate(posteriors, start=1):
        own = slice(i * p, (i + 1) * p)
        np.testing.assert_allclose(posterior.mean, joint_mean[own], rtol=1e-6)
        np.testing.assert_allclose(posterior.covariance, joint_cov[own, own], rtol=1e-6)
        # At 9, beyond every reading, the twin is nearly as unsure as the kind's mean
        # plus its own deviation from it.
        at_nine = grid[1] @ posterior.covariance @ grid[1]
        unread = grid[1] @ (covariance + population.mean_covariance[0]) @ grid[1]
        assert 0.9 * unread < at_nine <= unread * (1 + 1e-9)


def test_local_steps_run_blas_on_one_thread() -> None:
    # Threads do not pay on matrices of a few dozen rows, and on a busy machine their
    # waits made a fleet fit of La Haute Borne ten times slower (review).
    from threadpoolctl import threadpool_info, threadpool_limits

    from twinweave.transfer._hierarchy import _e_step, _on_one_blas_thread, aggregate

    def blas_threads() -> set[int]:
        return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}

    assert _on_one_blas_thread(blas_threads)() == {1}
    # Every local step and M-step.
    assert all(getattr(f, "__wrapped__", None) is not None for f in (_e_step, aggregate))
    # And the limit is lifted after.
    with threadpool_limits(limits=2, user_api="blas"):
        _on_one_blas_thread(blas_threads)()
        assert blas_threads() == {2}
