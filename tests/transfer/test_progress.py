"""The fits' progress bar: how far the rounds have come, and nothing else changed."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import networkx as nx
import numpy as np
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    FederatedResult,
    FitIns,
    FitRes,
    FleetPooling,
    FleetPosterior,
    FleetPrior,
    GossipFit,
    Population,
    RoundReport,
    TwinStatistics,
    fit_central,
    fit_federated,
    fit_gossip,
)
from twinweave.transfer._progress import converged_fraction


def test_the_bar_runs_on_a_log_scale_from_the_first_change_down_to_tol() -> None:
    assert converged_fraction(math.inf, math.inf, 1e-6) == 0.0
    assert converged_fraction(1e-2, 1e-2, 1e-6) == 0.0
    # Half way in orders of magnitude: 1e-2 -> 1e-4 of 1e-2 -> 1e-6.
    assert converged_fraction(1e-4, 1e-2, 1e-6) == pytest.approx(0.5)
    assert converged_fraction(1e-6, 1e-2, 1e-6) == pytest.approx(1.0)
    assert converged_fraction(5e-7, 1e-2, 1e-6) == 1.0
    # A change that grows again moves the bar back, never below empty.
    assert converged_fraction(1.0, 1e-2, 1e-6) == 0.0


def _fleet() -> tuple[dict[str, TwinStatistics], FleetPrior]:
    rng = np.random.default_rng(5)
    stats = {}
    for k in range(4):
        model = BayesianBasisRegression(
            target="y", terms=(SplineTerm("x", 0, 1, 4),), noise_source="x", noise_edges=[0, 1]
        )
        x = rng.uniform(0, 1, 300)
        stats[f"T{k}"] = TwinStatistics.from_emulator(
            model.update({"x": x, "y": (1.0 + 0.1 * k) * x + rng.normal(0, 0.1, 300)})
        )
    return stats, FleetPrior.from_emulator(model)


def _population(fit: FleetPosterior | FederatedResult | GossipFit) -> Population:
    population = fit.populations["T0"] if isinstance(fit, GossipFit) else fit.population
    assert population is not None
    return population


def test_each_fit_shows_its_rounds_on_stderr_and_gives_the_same_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stats, prior = _fleet()
    graph = nx.cycle_graph(list(stats))
    fits = {
        "fit_central": lambda shown: fit_central(stats, prior, progress=shown),
        "fit_federated": lambda shown: fit_federated(
            FleetPooling(prior, ["default"]), stats, progress=shown
        ),
        "fit_gossip": lambda shown: fit_gossip(stats, graph, prior, seed=1, progress=shown),
    }
    for name, fit in fits.items():
        quiet = fit(False)
        assert capsys.readouterr().err == ""
        shown = fit(True)
        captured = capsys.readouterr()
        for population in ("mean", "covariance", "noise_var"):
            np.testing.assert_array_equal(
                getattr(_population(shown), population), getattr(_population(quiet), population)
            )
        assert shown.n_rounds == quiet.n_rounds > 1
        assert captured.out == ""
        # The last state drawn: the fit's name, the round it stopped at, the tolerance.
        assert name in captured.err and "stops below 1e-06" in captured.err
        rounds = [int(r) for r in re.findall(r"round (\d+), change", captured.err)]
        assert rounds and rounds[-1] == shown.n_rounds, captured.err


class _Wrapped:
    """A strategy that wraps another (as a privacy layer would) and says no tolerance."""

    def __init__(self, inner: FleetPooling) -> None:
        self._inner = inner

    @property
    def n_rounds(self) -> int:
        return self._inner.n_rounds

    def initialize(self) -> Population:
        return self._inner.initialize()

    def configure_fit(
        self, server_round: int, population: Population, available: Sequence[str]
    ) -> dict[str, FitIns]:
        return self._inner.configure_fit(server_round, population, available)

    def aggregate_fit(
        self,
        server_round: int,
        population: Population,
        results: Sequence[FitRes],
        failures: Sequence[str],
    ) -> tuple[Population, RoundReport]:
        return self._inner.aggregate_fit(server_round, population, results, failures)


def test_a_wrapping_strategy_without_a_tolerance_shows_its_rounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stats, prior = _fleet()
    plain = fit_federated(FleetPooling(prior, ["default"]), stats)
    wrapped = fit_federated(_Wrapped(FleetPooling(prior, ["default"])), stats, progress=True)
    np.testing.assert_array_equal(wrapped.population.mean, plain.population.mean)
    shown = capsys.readouterr().err
    assert f"round {plain.n_rounds}, change" in shown and "stops below" not in shown
