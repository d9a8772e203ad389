"""SQUAREM on the fleet rounds (``twinweave.transfer._acceleration``): the same answer as
plain EM in fewer rounds, every runner alike, and a schedule that keeps no step that
moves the fit away from its answer."""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pytest
from tests.transfer.test_periods import period_readings, prior, twin_weights, with_periods

from twinweave.transfer import (
    FitIns,
    FleetPooling,
    Population,
    TwinStatistics,
    aggregate,
    fit_central,
    fit_federated,
    fit_gossip,
    initial_population,
    local_step,
    local_steps,
    population_change,
    sum_summaries,
)
from twinweave.transfer._acceleration import Squarem

FIELDS = ("mean", "covariance", "noise_var", "period_var")


def slow_fleet(seed: int = 0) -> dict[int, TwinStatistics]:
    """Six twins that differ little (weights' spread 0.05) with period effects, where
    plain EM is slow: 119 rounds to 1e-8."""
    rng = np.random.default_rng(seed)
    weights = twin_weights(rng, 6, scale=0.05)
    return {k: with_periods(*period_readings(rng, w, 20, 100)) for k, w in enumerate(weights)}


def largest_difference(ours: Population, exact: Population) -> float:
    return max(
        float(np.max(np.abs(getattr(ours, name) - getattr(exact, name))))
        / float(np.max(np.abs(getattr(exact, name))))
        for name in FIELDS
    )


def test_accelerated_rounds_reach_plain_ems_answer_in_fewer_rounds() -> None:
    stats = slow_fleet()
    reference = fit_central(stats, prior(), tol=1e-12, n_rounds=5000, accelerate=False)
    plain = fit_central(stats, prior(), tol=1e-8, n_rounds=5000, accelerate=False)
    fast = fit_central(stats, prior(), tol=1e-8, n_rounds=5000)
    assert reference.converged and plain.converged and fast.converged
    assert reference.population is not None
    assert plain.population is not None and fast.population is not None
    # Measured: 40 rounds against 119.
    assert fast.n_rounds < 0.6 * plain.n_rounds, (fast.n_rounds, plain.n_rounds)
    # Both stop where EM moves the population by less than 1e-8, and lie as near the
    # answer by the stopping rule's measure: measured 8.8e-8 (plain) and 6.0e-8 from
    # the plain fit to 1e-12. By each field's own largest value, the twins' covariance
    # (small here, and measured by the rule against what it enters a prediction with)
    # is 3.7e-9 and 4.8e-7 away, the other fields 2e-9 to 4e-9 and 2e-10 to 4e-10.
    for fit in (plain, fast):
        assert fit.population is not None
        assert population_change(reference.population, fit.population) < 2e-7
        assert largest_difference(fit.population, reference.population) < 2e-6


@pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")
def test_without_acceleration_a_fit_is_plain_em_rounds() -> None:
    stats = slow_fleet(seed=1)
    fit = fit_central(stats, prior(), tol=1e-300, n_rounds=7, accelerate=False)
    population = initial_population(prior(), ("default",))
    for _ in range(7):
        population = aggregate(
            sum_summaries([local_step(s, population) for s in stats.values()]), population
        )
    assert fit.population is not None
    for name in FIELDS:
        np.testing.assert_allclose(
            getattr(fit.population, name), getattr(population, name), rtol=1e-12, err_msg=name
        )


@pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")
def test_accelerated_federated_and_gossip_fits_equal_the_central_fit() -> None:
    stats = slow_fleet(seed=2)
    central = fit_central(stats, prior(), tol=1e-9)
    labelled = {str(k): s for k, s in stats.items()}
    federated = fit_federated(FleetPooling(prior(), ["default"], tol=1e-9), labelled)
    gossip = fit_gossip(stats, nx.cycle_graph(len(stats)), prior(), tol=1e-9, seed=0)
    assert central.converged and federated.converged and gossip.converged
    assert central.population is not None
    assert federated.rounds[-1].server_round == central.n_rounds
    for name in FIELDS:
        np.testing.assert_array_equal(
            getattr(federated.population, name), getattr(central.population, name), name
        )
    # Every twin extrapolates its own copy, which differs from the central population by
    # the gossip's error: measured 7.4e-9 apart after 43 rounds (plain EM: 1.7e-8 after
    # 190), 5.8e-10 by the stopping rule's measure.
    assert gossip.n_rounds == central.n_rounds
    for population in gossip.populations.values():
        assert largest_difference(population, central.population) < 1e-7
        assert population_change(central.population, population) < 1e-8


def _step(stats: dict[int, TwinStatistics], population: Population) -> Population:
    """One plain EM round."""
    return aggregate(sum_summaries([local_step(s, population) for s in stats.values()]), population)


@pytest.mark.parametrize("kept", [True, False])
def test_an_extrapolation_is_kept_only_if_em_moves_it_no_more_than_the_step_before(
    kept: bool,
) -> None:
    stats = slow_fleet(seed=3)
    twins = list(stats)
    schedule = Squarem()
    population = initial_population(prior(), ("default",))
    # The first round is a plain step; so is the first cycle, whose step limit of 1
    # makes theta' = theta2, and which raises the limit to 4.
    for _ in range(4):
        new = _step(stats, population)
        sent = schedule.next_population(population, new, population_change(population, new), twins)
        assert sent is new
        population = new
    theta1 = population
    theta2 = _step(stats, theta1)
    reference = population_change(theta1, theta2)
    candidate = schedule.next_population(theta1, theta2, reference, twins)
    assert schedule.n_extrapolated == 1
    assert candidate is not theta2
    assert candidate.noise_var is not None and theta2.noise_var is not None
    assert not np.allclose(candidate.noise_var, theta2.noise_var, rtol=1e-6)
    result = _step(stats, candidate)
    nxt = schedule.next_population(candidate, result, reference if kept else 2.0 * reference, twins)
    if kept:
        assert nxt is result and schedule.n_rejected == 0
    else:
        # The round on theta' is spent; the next cycle starts from theta2.
        assert nxt is theta2 and schedule.n_rejected == 1


def test_another_set_of_twins_starts_a_new_cycle() -> None:
    stats = slow_fleet(seed=4)
    schedule = Squarem()
    population = initial_population(prior(), ("default",))
    for _ in range(4):
        new = _step(stats, population)
        schedule.next_population(population, new, population_change(population, new), list(stats))
        population = new
    # The round that would extrapolate is answered by five twins of six: a plain step.
    fewer = {k: s for k, s in stats.items() if k != 0}
    new = _step(fewer, population)
    sent = schedule.next_population(
        population, new, population_change(population, new), list(fewer)
    )
    assert sent is new and schedule.n_extrapolated == 0


def test_a_kind_without_twins_keeps_the_between_kind_covariance() -> None:
    # Four twins of kind "a" in a fleet of kinds "a" and "b": no round updates the
    # between-kind covariance (it takes two kinds with twins), which stays the prior's,
    # and is not block-structured; an extrapolation must leave it so.
    rng = np.random.default_rng(0)
    stats = {
        str(k): dataclasses.replace(with_periods(*period_readings(rng, w, 10, 50)), kind="a")
        for k, w in enumerate(twin_weights(rng, 4, scale=0.1))
    }
    fits = {
        accelerate: fit_federated(
            FleetPooling(prior(), ["a", "b"], tol=1e-6, n_rounds=3000, accelerate=accelerate),
            stats,
        )
        for accelerate in (False, True)
    }
    plain, fast = fits[False], fits[True]
    assert plain.converged and fast.converged
    # Measured: 157 rounds against 717.
    assert len(fast.rounds) < 0.5 * len(plain.rounds)
    start = initial_population(prior(), ("a", "b"))
    np.testing.assert_array_equal(fast.population.between_covariance, start.between_covariance)
    np.testing.assert_array_equal(plain.population.between_covariance, start.between_covariance)
    # Measured 2.7e-5 apart (plain EM stops far from its answer here), the means 2.7e-7.
    assert population_change(plain.population, fast.population) < 1e-4
    np.testing.assert_allclose(fast.population.mean, plain.population.mean, rtol=1e-5)


def _same(a: Population, b: Population) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in FIELDS)


@pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")
def test_the_last_round_runs_on_an_aggregate() -> None:
    stats = {str(k): s for k, s in slow_fleet(seed=5).items()}
    twins = [stats[t] for t in sorted(stats)]

    def step(population: Population) -> Population:
        return aggregate(sum_summaries(local_steps(twins, population)), population)

    def rounds(n_rounds: int, reached: int) -> tuple[dict[int, Population], Population]:
        """The population each round ran on, and the result, when rounds after
        ``reached`` reach nobody."""
        sent: dict[int, Population] = {}

        def record(direction: str, twin: str, message: object) -> None:
            if isinstance(message, FitIns):
                sent[message.server_round] = message.population

        result = fit_federated(
            FleetPooling(prior(), ["default"], tol=1e-300, n_rounds=n_rounds),
            stats,
            available=lambda r: sorted(stats) if r <= reached else [],
            on_message=record,
        )
        return sent, result.population

    # Rounds 2-5 run on plain aggregates (the step limit starts at 1); round 6 on
    # theta', extrapolated from rounds 4 and 5.
    sent, _ = rounds(7, reached=7)
    for k in range(1, 5):
        assert _same(sent[k + 1], step(sent[k])), k
    assert not _same(sent[6], step(sent[5]))
    # Round 7, the last, runs on an aggregate: theta''s (kept) or theta2 (dropped).
    assert _same(sent[7], step(sent[6])) or _same(sent[7], step(sent[5]))
    # If rounds 6 and 7 reach nobody, the result is not theta', which no round ran on,
    # but theta2, the aggregate of round 5.
    sent, result = rounds(7, reached=5)
    assert sorted(sent) == [1, 2, 3, 4, 5]
    assert _same(result, step(sent[5]))
