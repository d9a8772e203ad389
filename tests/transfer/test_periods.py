"""Period effects in the fleet model, on synthetic fleets with a known truth.

Every (twin, period, noise bin) block of readings shares a level shift
``u ~ N(0, omega2_j)`` on top of the twin's curve and its noise (docs/FLEET_MODEL.md).
"""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest
from scipy import stats as scipy_stats

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    ConvergenceWarning,
    FleetPooling,
    FleetPrior,
    LocalSummary,
    Population,
    TwinStatistics,
    fit_central,
    fit_federated,
    fit_gossip,
    initial_population,
    local_step,
    twin_posterior,
)

EDGES = np.linspace(0.0, 10.0, 6)
NOISE_SD = np.array([0.05, 0.1, 0.2, 0.15, 0.1])
PERIOD_SD = np.array([0.02, 0.15, 0.3, 0.2, 0.1])
# A tolerance no round meets: a fit runs exactly its ``n_rounds``.
NEVER = 1e-300


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


def twin_weights(rng: np.random.Generator, n_twins: int, scale: float = 0.3) -> np.ndarray:
    p = emulator().n_features
    mean = np.sin(np.linspace(-0.5, 3.5, p)) + 2.0
    covariance = scale**2 * prior().structure_covariance
    return rng.multivariate_normal(mean, covariance, size=n_twins)


def period_readings(
    rng: np.random.Generator,
    weights: np.ndarray,
    n_periods: int,
    n_per_period: int,
    period_sd: np.ndarray = PERIOD_SD,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Readings of one twin over ``n_periods`` periods, each (period, bin) block shifted
    by its own ``u ~ N(0, period_sd[bin]^2)``; the readings and their period labels."""
    periods = np.repeat(np.arange(n_periods), n_per_period)
    x = rng.uniform(0.0, 10.0, periods.size)
    features, bins = emulator().design({"x": x})
    shifts = rng.normal(0.0, 1.0, (n_periods, EDGES.size - 1)) * period_sd
    y = features @ weights + shifts[periods, bins] + rng.normal(0.0, NOISE_SD[bins])
    return {"x": x, "y": y}, periods


def with_periods(columns: dict[str, np.ndarray], periods: np.ndarray) -> TwinStatistics:
    model = emulator().update(columns)
    return TwinStatistics.from_emulator(model, readings=columns, periods=periods)


def period_fleet(
    seed: int, n_twins: int, n_periods: int, n_per_period: int
) -> tuple[list[TwinStatistics], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    stats, ys = [], []
    for weights in twin_weights(rng, n_twins):
        columns, periods = period_readings(rng, weights, n_periods, n_per_period)
        stats.append(with_periods(columns, periods))
        ys.append(columns["y"])
    return stats, ys


def test_period_statistics_add_up_to_the_twins_statistics() -> None:
    rng = np.random.default_rng(0)
    columns, periods = period_readings(rng, twin_weights(rng, 1)[0], 7, 60)
    stats = with_periods(columns, periods)
    assert stats.period_count is not None and stats.period_count.shape == (7, EDGES.size - 1)
    assert stats.period_sum is not None and stats.period_features is not None
    np.testing.assert_array_equal(stats.period_count.sum(axis=0), stats.count)
    features, bins = emulator().design(columns)
    for j in range(stats.n_bins):
        in_bin = bins == j
        assert stats.period_sum[:, j].sum() == pytest.approx(columns["y"][in_bin].sum())
        np.testing.assert_allclose(
            stats.period_features[:, j].sum(axis=0), features[in_bin].sum(axis=0), rtol=1e-12
        )
        # The block of period 3 in bin j is exactly its readings.
        block = in_bin & (periods == 3)
        assert stats.period_sum[3, j] == pytest.approx(columns["y"][block].sum(), rel=1e-12)
    # Period statistics that do not add up to the counts are refused.
    with pytest.raises(ValueError, match="period_count"):
        TwinStatistics(
            stats.gram,
            stats.moment,
            stats.sum_sq,
            stats.count,
            period_count=stats.period_count[1:],
            period_sum=stats.period_sum[1:],
            period_features=stats.period_features[1:],
        )


def test_period_statistics_take_a_reading_beyond_a_bound_as_at_it() -> None:
    # As the emulator assimilates it, so that the period sums match its statistics.
    rng = np.random.default_rng(1)
    columns, periods = period_readings(rng, twin_weights(rng, 1)[0], 5, 80)
    lower, upper = np.quantile(columns["y"], [0.1, 0.9])
    bounded = BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 10.0, 6),),
        noise_source="x",
        noise_edges=EDGES,
        lower=lower,
        upper=upper,
    ).update(columns)
    stats = TwinStatistics.from_emulator(bounded, readings=columns, periods=periods)
    assert stats.period_sum is not None
    clipped = np.clip(columns["y"], lower, upper)
    _, bins = bounded.design(columns)
    for j in range(stats.n_bins):
        assert stats.period_sum[:, j].sum() == pytest.approx(clipped[bins == j].sum(), rel=1e-12)
        # The B-splines sum to one, so the moments of a bin add up to its sum of y.
        assert stats.moment[j].sum() == pytest.approx(stats.period_sum[:, j].sum(), rel=1e-9)


def _known_population(omega2: np.ndarray, noise: np.ndarray) -> Population:
    """A population with period effects, as after some rounds (values set by hand)."""
    fleet_prior = prior()
    p = fleet_prior.n_features
    rng = np.random.default_rng(5)
    mean = twin_weights(rng, 1)[0]
    covariance = 0.09 * fleet_prior.structure_covariance
    return Population(
        prior=fleet_prior,
        kinds=("default",),
        mean=mean[None],
        mean_covariance=np.zeros((1, p, p)),
        covariance=covariance[None],
        noise_var=noise[None],
        global_mean=mean,
        global_covariance=covariance,
        period_var=omega2[None],
    )


def test_a_twins_step_is_the_gaussian_with_block_covariance_of_its_readings() -> None:
    """The rank-one algebra on statistics equals the model on the raw readings:
    ``y ~ N(F mu, F Sigma F^T + D + blockdiag(omega2 1 1^T))``."""
    rng = np.random.default_rng(2)
    columns, periods = period_readings(rng, twin_weights(rng, 1)[0], 4, 30)
    stats = with_periods(columns, periods)
    population = _known_population(PERIOD_SD**2, NOISE_SD**2)
    posterior = twin_posterior(stats, population)
    summary = local_step(stats, population)
    features, bins = emulator().design(columns)
    # The step's own noise (its MAP), with which it computed the posterior.
    covariance = np.diag(posterior.noise_var[bins])
    same_block = (periods[:, None] == periods[None, :]) & (bins[:, None] == bins[None, :])
    assert population.period_var is not None
    covariance += same_block * population.period_var[0][bins][:, None]
    inv_readings = np.linalg.inv(covariance)
    inv_prior = np.linalg.inv(population.covariance[0])
    precision = inv_prior + features.T @ inv_readings @ features
    expected_cov = np.linalg.inv(precision)
    expected_mean = expected_cov @ (
        inv_prior @ population.mean[0] + features.T @ inv_readings @ columns["y"]
    )
    np.testing.assert_allclose(posterior.covariance, expected_cov, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(posterior.mean, expected_mean, rtol=1e-9)
    marginal = features @ population.covariance[0] @ features.T + covariance
    evidence = scipy_stats.multivariate_normal(features @ population.mean[0], marginal).logpdf(
        columns["y"]
    )
    assert summary.log_evidence == pytest.approx(evidence, rel=1e-9)
    # The period effects' second moments: E[u^2 | y] summed over each bin's blocks,
    # from the joint Gaussian of (w, u) given y.
    n_blocks = stats.period_count.shape[0] if stats.period_count is not None else 0
    expected_ss = np.zeros(stats.n_bins)
    residual = columns["y"] - features @ expected_mean
    for m in range(n_blocks):
        for j in range(stats.n_bins):
            block = (periods == m) & (bins == j)
            if not block.any():
                continue
            # Cov(u, y) = omega2 1_block; u | y, w, then averaged over w | y.
            omega2 = population.period_var[0, j]
            gain = omega2 * inv_readings[block].sum(axis=0)
            mean_u = gain @ residual
            # Var[u | y] = omega2 - gain 1_block omega2 + the weights' uncertainty.
            lever = gain @ features
            var_u = omega2 - omega2 * gain[block].sum() + lever @ expected_cov @ lever
            expected_ss[j] += mean_u**2 + var_u
    np.testing.assert_allclose(summary.period_ss[0], expected_ss, rtol=1e-8)
    np.testing.assert_array_equal(summary.period_blocks[0], (stats.period_count > 0).sum(axis=0))


def test_em_recovers_the_period_variance_and_the_noise() -> None:
    stats, _ = period_fleet(seed=3, n_twins=20, n_periods=30, n_per_period=150)
    # Each twin's own per-bin noise, unshrunk: the shrinkage towards its pooled variance
    # (the single twin's model) inflates a quiet bin's noise, which then takes some of
    # the period effects' variance.
    unshrunk = FleetPrior.from_emulator(emulator(), twin_noise_prior_count=0.0)
    fit = fit_central(dict(enumerate(stats)), unshrunk, tol=1e-8, n_rounds=2000)
    assert fit.converged
    population = fit.population
    assert population is not None and population.period_var is not None
    assert population.noise_var is not None
    blocks = np.sum([s.period_count > 0 for s in stats if s.period_count is not None], axis=(0, 1))
    readings = np.sum([s.count for s in stats], axis=0)
    # Sampling error of the mean of squared block effects (each observed through the
    # mean of about n / blocks noisy readings): sqrt(2 / blocks) (omega2 + s2 n_block).
    per_block = readings / blocks
    standard_error = np.sqrt(2.0 / blocks) * (PERIOD_SD**2 + NOISE_SD**2 / per_block)
    error = population.period_var[0] - PERIOD_SD**2
    assert np.all(np.abs(error) < 4.0 * standard_error), (error, standard_error)
    np.testing.assert_allclose(np.sqrt(population.noise_var[0]), NOISE_SD, rtol=0.05)


def test_a_bin_few_periods_reach_shrinks_towards_the_all_bin_period_variance() -> None:
    # The last bin is reached in 2 of 30 periods by each of 3 twins: 6 blocks.
    rng = np.random.default_rng(5)
    stats = []
    for weights in twin_weights(rng, 3):
        columns, periods = period_readings(rng, weights, 30, 150)
        sparse = (columns["x"] >= EDGES[-2]) & (periods >= 2)
        stats.append(with_periods({k: v[~sparse] for k, v in columns.items()}, periods[~sparse]))
    shrunk = FleetPrior.from_emulator(emulator(), period_prior_count=4.0)
    fit = fit_central(dict(enumerate(stats)), shrunk, tol=1e-10, n_rounds=2000)
    plain = fit_central(dict(enumerate(stats)), prior(), tol=1e-10, n_rounds=2000)
    assert fit.converged and plain.converged
    assert fit.population is not None and fit.population.period_var is not None
    # At the fixed point each bin's variance is the shrunk EM update of the summaries
    # the twins send given it (docs/FLEET_MODEL.md, aggregation step 6).
    summaries = [local_step(s, fit.population) for s in stats]
    assert all(m.period_ss is not None and m.period_blocks is not None for m in summaries)
    ss = np.sum([m.period_ss for m in summaries], axis=0)[0]
    blocks = np.sum([m.period_blocks for m in summaries], axis=0)[0]
    assert blocks[-1] == 6 and blocks[0] == 90
    all_bins = ss.sum() / blocks.sum()
    expected = (ss + 4.0 * all_bins) / (blocks + 4.0)
    np.testing.assert_allclose(fit.population.period_var[0], expected, rtol=1e-6)
    # The sparse bin sits 40 % of the way to the all-bin value, the others under 5 %;
    # and the rounds are fewer than the plain EM update's (measured: 33 against 40).
    weight_of_all_bins = 4.0 / (blocks + 4.0)
    assert weight_of_all_bins[-1] == pytest.approx(0.4)
    assert np.all(weight_of_all_bins[:-1] < 0.05)
    assert fit.n_rounds < plain.n_rounds, (fit.n_rounds, plain.n_rounds)


def test_without_period_effects_in_the_data_the_period_variance_is_small() -> None:
    rng = np.random.default_rng(4)
    stats = []
    for weights in twin_weights(rng, 10):
        columns, periods = period_readings(rng, weights, 20, 100, period_sd=np.zeros(5))
        stats.append(with_periods(columns, periods))
    fit = fit_central(dict(enumerate(stats)), prior(), tol=1e-7, n_rounds=3000)
    assert fit.population is not None and fit.population.period_var is not None
    blocks = np.sum([s.period_count > 0 for s in stats if s.period_count is not None], axis=(0, 1))
    per_block = np.sum([s.count for s in stats], axis=0) / blocks
    # Zero within the sampling error of the block means' spread, sqrt(2 / blocks) s2 / n.
    standard_error = np.sqrt(2.0 / blocks) * NOISE_SD**2 / per_block
    assert np.all(fit.population.period_var[0] < 3.0 * standard_error)


def test_a_new_period_is_covered_at_the_nominal_rate() -> None:
    """A twin with its first two periods of data, in a fleet that has forty: its 90 %
    intervals for the readings of later periods cover about 90 % of them."""
    rng = np.random.default_rng(6)
    weights = twin_weights(rng, 13)
    stats = []
    for w in weights[:12]:
        columns, periods = period_readings(rng, w, 40, 100)
        stats.append(with_periods(columns, periods))
    columns, periods = period_readings(rng, weights[12], 2, 100)
    stats.append(with_periods(columns, periods))
    fit = fit_central(dict(enumerate(stats)), prior(), tol=1e-7, n_rounds=3000)
    later, _ = period_readings(rng, weights[12], 400, 50)
    predictive = fit.predict(12, later, emulator())
    lower, upper = predictive.interval(0.9)
    coverage = float(np.mean((later["y"] >= lower) & (later["y"] <= upper)))
    assert 0.87 <= coverage <= 0.93, coverage
    # The twin's posterior adds a new period's variance to every reading's.
    twin = fit.twins[12]
    assert twin.period_var is not None and fit.population is not None
    np.testing.assert_array_equal(twin.reading_var, twin.noise_var + twin.period_var)


def test_without_period_statistics_the_model_has_no_period_effects() -> None:
    rng = np.random.default_rng(7)
    plain = []
    for weights in twin_weights(rng, 4):
        columns, _ = period_readings(rng, weights, 5, 100)
        plain.append(TwinStatistics.from_emulator(emulator().update(columns)))
    fit = fit_central(dict(enumerate(plain)), prior(), tol=1e-8)
    assert fit.population is not None and fit.population.period_var is None
    assert all(t.period_var is None for t in fit.twins.values())
    summary = local_step(plain[0], fit.population)
    assert not summary.period_ss.any() and not summary.period_blocks.any()


def test_a_fleet_mixing_twins_with_and_without_periods_warns_naming_them() -> None:
    stats, _ = period_fleet(seed=8, n_twins=4, n_periods=4, n_per_period=50)
    rng = np.random.default_rng(9)
    columns, _ = period_readings(rng, twin_weights(rng, 1)[0], 4, 50)
    # The shortest call leaves the periods out: that twin's intervals would be narrower.
    mixed = {
        **dict(enumerate(stats)),
        "late": TwinStatistics.from_emulator(emulator().update(columns)),
    }
    message = r"stats\['late'\]: statistics without period labels, in a fleet where 4 of 5"
    with pytest.warns(UserWarning, match=message) as caught:
        fit_central(mixed, prior(), n_rounds=2, tol=1e-300)
    assert all(record.filename == __file__ for record in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit_central(dict(enumerate(stats)), prior(), n_rounds=2, tol=1e-300)


@rounds_capped
def test_federated_and_gossip_fits_with_periods_equal_the_central_fit() -> None:
    stats, _ = period_fleet(seed=8, n_twins=6, n_periods=12, n_per_period=80)
    fleet_prior = prior()
    # The same rounds, whether or not they have converged by then.
    central = fit_central(dict(enumerate(stats)), fleet_prior, tol=NEVER, n_rounds=60)
    assert central.population is not None and central.population.period_var is not None
    federated = fit_federated(
        FleetPooling(fleet_prior, ["default"], tol=NEVER, n_rounds=60), dict(enumerate(stats))
    )
    assert federated.n_rounds == central.n_rounds == 60
    for name in ("mean", "covariance", "noise_var", "period_var"):
        ours, theirs = getattr(federated.population, name), getattr(central.population, name)
        assert np.max(np.abs(ours - theirs) / np.abs(theirs)) <= 1e-9, name
    gossip = fit_gossip(
        dict(enumerate(stats)), nx.cycle_graph(6), fleet_prior, tol=NEVER, n_rounds=60, seed=2
    )
    assert gossip.n_rounds == 60
    for population in gossip.populations.values():
        assert population.period_var is not None
        np.testing.assert_allclose(population.period_var, central.population.period_var, rtol=1e-6)
        np.testing.assert_allclose(population.mean, central.population.mean, rtol=1e-6)


def _fleet_and_newcomer(seed: int) -> tuple[list[TwinStatistics], TwinStatistics]:
    """Five twins with twenty periods each, and a sixth with its first period."""
    rng = np.random.default_rng(seed)
    weights = twin_weights(rng, 6)
    fleet = [with_periods(*period_readings(rng, w, 20, 100)) for w in weights[:5]]
    return fleet, with_periods(*period_readings(rng, weights[5], 1, 100))


def test_a_refit_from_the_fleets_population_reaches_its_answer_in_fewer_rounds() -> None:
    fleet, newcomer = _fleet_and_newcomer(seed=4)
    fleet_prior = prior()
    before = fit_central(dict(enumerate(fleet)), fleet_prior, tol=1e-8, n_rounds=3000)
    assert before.population is not None
    stats = [*fleet, newcomer]
    cold = fit_central(dict(enumerate(stats)), fleet_prior, tol=1e-8, n_rounds=3000)
    warm = fit_central(
        dict(enumerate(stats)), fleet_prior, tol=1e-8, n_rounds=3000, start=before.population
    )
    reference = fit_central(dict(enumerate(stats)), fleet_prior, tol=1e-12, n_rounds=3000)
    assert cold.converged and warm.converged and reference.converged
    # Measured: 68 rounds from the prior, 28 from the fleet's population.
    assert warm.n_rounds < 0.6 * cold.n_rounds, (warm.n_rounds, cold.n_rounds)
    assert reference.population is not None
    for fit in (cold, warm):
        assert fit.population is not None
        for name in ("mean", "covariance", "noise_var", "period_var"):
            ours, exact = getattr(fit.population, name), getattr(reference.population, name)
            # Measured: 6e-10 to 1.6e-9 from the fit to 1e-12, either way.
            assert np.max(np.abs(ours - exact)) / np.max(np.abs(exact)) < 1e-8, name


@rounds_capped
def test_federated_and_gossip_refits_from_a_population_equal_the_central_refit() -> None:
    fleet, newcomer = _fleet_and_newcomer(seed=5)
    fleet_prior = prior()
    start = fit_central(dict(enumerate(fleet)), fleet_prior, tol=1e-6).population
    assert start is not None
    stats = [*fleet, newcomer]
    central = fit_central(dict(enumerate(stats)), fleet_prior, tol=NEVER, n_rounds=10, start=start)
    from_prior = fit_central(dict(enumerate(stats)), fleet_prior, tol=NEVER, n_rounds=10)
    federated = fit_federated(
        FleetPooling(fleet_prior, ["default"], tol=NEVER, n_rounds=10, start=start),
        dict(enumerate(stats)),
    )
    gossip = fit_gossip(
        dict(enumerate(stats)),
        nx.cycle_graph(len(stats)),
        fleet_prior,
        tol=NEVER,
        n_rounds=10,
        seed=3,
        start=start,
    )
    assert central.population is not None and from_prior.population is not None
    for name in ("mean", "covariance", "noise_var", "period_var"):
        theirs = getattr(central.population, name)
        scale = np.max(np.abs(theirs))
        assert np.max(np.abs(getattr(federated.population, name) - theirs)) <= 1e-9 * scale
        for population in gossip.populations.values():
            assert np.max(np.abs(getattr(population, name) - theirs)) <= 1e-6 * scale, name
        # Ten rounds from the prior are elsewhere: the start was used.
        assert np.max(np.abs(getattr(from_prior.population, name) - theirs)) > 1e-6 * scale


@rounds_capped
def test_a_twin_with_periods_sends_summaries_and_no_reading() -> None:
    stats, ys = period_fleet(seed=9, n_twins=3, n_periods=6, n_per_period=60)
    fleet_prior = prior()
    populations = [initial_population(fleet_prior, ["default"])]
    messages: list[tuple[int, LocalSummary]] = []
    fit_federated(
        FleetPooling(fleet_prior, ["default"], n_rounds=4, tol=NEVER),
        dict(enumerate(stats)),
        on_message=lambda direction, twin, record: (
            messages.append((int(twin), record.summary)) if direction == "from_twin" else None
        ),
    )
    assert len(messages) == 4 * 3
    for twin, summary in messages:
        arrays = summary.to_arrays()
        assert set(arrays) == {name for name, _ in LocalSummary.ARRAYS} | {"log_evidence"}
        # The period fields travel, one number per kind and bin, and carry the blocks.
        assert arrays["period_ss"].shape == arrays["period_blocks"].shape == (1, 5)
        assert (arrays["period_ss"] > 0).all()
        own = stats[twin]
        assert own.period_count is not None and own.period_sum is not None
        assert own.period_features is not None
        np.testing.assert_array_equal(
            arrays["period_blocks"][0], (own.period_count > 0).sum(axis=0)
        )
        values = np.concatenate([v.ravel() for v in arrays.values()])
        assert not np.isin(values, ys[twin]).any()
        for private in (own.gram, own.moment, own.sum_sq, own.period_sum, own.period_features):
            assert not np.isin(private.ravel(), values).any()
    assert populations[0].period_var is None
