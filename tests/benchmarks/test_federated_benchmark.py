"""The federated benchmark on tiny inputs, for correctness only: no timing is asserted."""

from __future__ import annotations

import math

import pytest

from benchmarks import federated


def test_in_process_benchmark_reports_both_fits_and_their_agreement() -> None:
    timing, agreement = federated.in_process(n_twins=12, n_readings=400, n_repeats=1)
    assert timing.value is not None and timing.value > 0
    assert timing.competitor_value is not None and timing.competitor_value > 0
    assert timing.target == 2.0 and timing.target_on == "ratio"
    assert timing.details["n_rounds_central"] == timing.details["n_rounds_federated"]
    assert agreement.unit == "max rel diff"
    assert agreement.value is not None and agreement.value <= 1e-9 and agreement.met


@pytest.mark.slow
@pytest.mark.service
def test_flower_benchmark_reports_one_latency_per_round() -> None:
    (latency,) = federated.flower_rounds(n_supernodes=2, n_readings=400, n_rounds=2)
    rounds = latency.details["round_seconds"]
    assert len(rounds) == 2 and all(s > 0 for s in rounds)
    assert latency.value is not None and math.isclose(latency.value, sum(rounds) / 2)
    assert latency.details["answered_per_round"] == [2, 2]
    assert latency.details["max_rel_diff_vs_central"] <= 1e-9
    assert latency.details["processes_left"] == []


def test_la_haute_borne_benchmark_counts_both_fits_rounds() -> None:
    rounds, seconds = federated.accelerated_rounds(tol=1e-3)
    assert rounds.unit == "rounds" and seconds.unit == "s"
    assert rounds.value is not None and rounds.value >= 1
    assert rounds.competitor_value is not None and rounds.competitor_value >= 1
    assert "both converged: True" in rounds.note
    assert seconds.details["population_change_between"] < 1e-2
