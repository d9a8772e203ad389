"""Federated rounds in process: equal to the central fit, drop-outs as documented, and
nothing but the documented summaries leaving a twin."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    ConvergenceWarning,
    FitIns,
    FitRes,
    FleetPooling,
    FleetPrior,
    LocalSummary,
    Population,
    TwinStatistics,
    fit_central,
    fit_federated,
    local_step,
    run_rounds,
)

# A tolerance no round meets: a fit runs exactly its ``n_rounds``.
NEVER = 1e-300
# What a twin may send: the summary's documented fields (docs/FLEET_MODEL.md).
SUMMARY_FIELDS = {name for name, _ in LocalSummary.ARRAYS} | {"log_evidence"}


# For tests that cap the rounds on purpose: the fits warn that they did not converge.
rounds_capped = pytest.mark.filterwarnings("ignore::twinweave.transfer.ConvergenceWarning")


def _emulator() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 1.0, 4),),
        noise_source="x",
        noise_edges=[0.0, 0.5, 1.0],
    )


Fleet = tuple[dict[str, TwinStatistics], FleetPrior, dict[str, np.ndarray]]


def make_fleet(
    n_readings: Sequence[int],
    seed: int = 1,
    kinds: Sequence[str] | None = None,
    n_periods: int | None = None,
) -> Fleet:
    """A synthetic fleet: scaled sine curves with noise; statistics, prior, raw ``y``.

    With ``n_periods``, each twin's readings fall in that many consecutive periods and
    its statistics hold the period blocks."""
    rng = np.random.default_rng(seed)
    stats: dict[str, TwinStatistics] = {}
    readings: dict[str, np.ndarray] = {}
    for k, n in enumerate(n_readings):
        x = rng.uniform(0.0, 1.0, n)
        y = (1.0 + 0.3 * rng.standard_normal()) * np.sin(2.0 * x) + rng.normal(0.0, 0.02, n)
        kind = "default" if kinds is None else kinds[k]
        columns = {"x": x, "y": y}
        model = _emulator().update(columns)
        if n_periods is None:
            stats[f"T{k}"] = TwinStatistics.from_emulator(model, kind)
        else:
            periods = np.arange(n) * n_periods // n
            stats[f"T{k}"] = TwinStatistics.from_emulator(
                model, kind, readings=columns, periods=periods
            )
        readings[f"T{k}"] = y
    return stats, FleetPrior.from_emulator(_emulator()), readings


def relative(a: np.ndarray | None, b: np.ndarray | None) -> float:
    assert a is not None and b is not None
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def assert_same_population(a: Population, b: Population, rtol: float) -> None:
    assert a.kinds == b.kinds
    for name in ("mean", "mean_covariance", "covariance", "noise_var", "global_mean"):
        assert relative(getattr(a, name), getattr(b, name)) <= rtol, name


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return make_fleet([3_000, 5_000, 8_000, 12_000, 20_000])


def test_the_strategy_stops_as_the_central_fit_does_by_default() -> None:
    defaults = inspect.signature(fit_central).parameters
    strategy = inspect.signature(FleetPooling).parameters
    for name in ("n_rounds", "tol"):
        assert strategy[name].default == defaults[name].default


def test_in_process_rounds_equal_the_central_fit(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    central = fit_central(stats, prior, tol=1e-10)
    result = fit_federated(FleetPooling(prior, ["default"], tol=1e-10), stats)
    assert central.converged and result.converged
    assert result.n_rounds == central.n_rounds
    assert central.population is not None
    assert_same_population(result.population, central.population, 1e-9)
    assert result.twin_ids == tuple(stats)
    assert all(r.answered == tuple(stats) and not r.missing for r in result.rounds)


@rounds_capped
def test_two_kinds_take_the_central_fits_rounds() -> None:
    kinds = ["A", "B", "A", "B", "A", "B"]
    stats, prior, _ = make_fleet([4_000] * 6, seed=3, kinds=kinds)
    # The same rounds, whether or not they have converged by then.
    central = fit_central(stats, prior, n_rounds=50, tol=NEVER)
    result = fit_federated(FleetPooling(prior, ["A", "B"], n_rounds=50, tol=NEVER), stats)
    assert result.n_rounds == central.n_rounds == 50
    assert central.population is not None and central.population.between_covariance is not None
    assert_same_population(result.population, central.population, 1e-9)
    between = result.population.between_covariance
    assert relative(between, central.population.between_covariance) <= 1e-9


def test_a_twin_missing_two_rounds_comes_back_to_the_central_fit(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    everyone = list(stats)
    schedule = {3: everyone[:2] + everyone[3:], 4: everyone[:2] + everyone[3:]}
    result = fit_federated(
        FleetPooling(prior, ["default"], tol=1e-12, max_missed_rounds=3),
        stats,
        available=lambda r: schedule.get(r, everyone),
    )
    central = fit_central(stats, prior, tol=1e-12)
    assert central.population is not None
    assert [r.missing for r in result.rounds[2:5]] == [("T2",), ("T2",), ()]
    assert not any(r.gone for r in result.rounds)
    assert result.converged and result.twin_ids == tuple(everyone)
    # Other iterates than the central fit's, the same fixed point.
    assert result.n_rounds != central.n_rounds
    assert_same_population(result.population, central.population, 1e-9)


def test_a_twin_that_stays_away_is_gone_and_the_fit_is_the_survivors(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    survivors = [t for t in stats if t != "T2"]
    result = fit_federated(
        FleetPooling(prior, ["default"], tol=1e-12, max_missed_rounds=2),
        stats,
        available=lambda r: list(stats) if r < 3 else survivors,
    )
    assert result.rounds[2].missing == ("T2",) and result.rounds[2].gone == ()
    assert result.rounds[3].gone == ("T2",) and result.rounds[3].missing == ()
    assert result.converged and result.twin_ids == tuple(survivors)
    central = fit_central({t: stats[t] for t in survivors}, prior, tol=1e-12)
    assert central.population is not None
    assert_same_population(result.population, central.population, 1e-9)
    whole = fit_central(stats, prior, tol=1e-12).population
    assert whole is not None and relative(result.population.mean, whole.mean) > 1e-4


def test_a_twin_never_available_is_named_though_the_rounds_converge(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    present = [t for t in stats if t != "T4"]
    # Never expected, so never missing: the rounds converge on the others, as documented.
    with pytest.warns(UserWarning, match=r"twins \['T4'\] have statistics but were never"):
        result = fit_federated(FleetPooling(prior, ["default"]), stats, available=lambda _: present)
    assert result.converged and result.twin_ids == tuple(present)


def test_a_fleet_that_stops_answering_says_since_when(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    everyone = list(stats)
    strategy = FleetPooling(prior, ["default"], tol=NEVER, n_rounds=10, max_missed_rounds=1)
    # It said "no convergence in 10 rounds (last relative change nan); raise n_rounds
    # or tol", which no setting would mend.
    with pytest.warns(
        ConvergenceWarning,
        match=r"no twin answered after round 2 of 10 \(every twin counted as gone: "
        r"\['T0', .*'T4'\]\); the population is round 2's",
    ):
        result = fit_federated(strategy, stats, available=lambda r: everyone if r <= 2 else [])
    with pytest.warns(ConvergenceWarning, match=r"no convergence in 2 rounds"):
        two = fit_federated(FleetPooling(prior, ["default"], tol=NEVER, n_rounds=2), stats)
    assert_same_population(result.population, two.population, 0.0)


def test_the_fit_does_not_stop_while_a_twin_is_missing_and_takes_it_back(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    everyone = list(stats)
    # Away for longer than the survivors need to converge, then back.
    result = fit_federated(
        FleetPooling(prior, ["default"], tol=1e-10, max_missed_rounds=1_000),
        stats,
        available=lambda r: everyone if r < 3 or r > 300 else everyone[1:],
    )
    away = result.rounds[2:300]
    assert all(r.missing == ("T0",) and not r.converged for r in away)
    assert min(r.change for r in away) < 1e-10  # the survivors had converged meanwhile
    assert result.converged and result.n_rounds > 300
    central = fit_central(stats, prior, tol=1e-10)
    assert central.population is not None
    assert_same_population(result.population, central.population, 1e-8)


def test_a_gone_twin_that_answers_again_is_pooled_again(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    everyone = list(stats)
    result = fit_federated(
        FleetPooling(prior, ["default"], tol=1e-12, max_missed_rounds=1),
        stats,
        available=lambda r: everyone[:-1] if 2 <= r <= 5 else everyone,
    )
    assert result.rounds[1].gone == ("T4",)
    assert all("T4" not in r.answered and not r.missing for r in result.rounds[2:5])
    assert result.rounds[5].answered == tuple(everyone)
    central = fit_central(stats, prior, tol=1e-12)
    assert central.population is not None
    assert_same_population(result.population, central.population, 1e-9)


def test_aggregation_ignores_answer_order_late_answers_and_grouping(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    strategy = FleetPooling(prior, ["default"])
    population = strategy.initialize()
    answers = [FitRes(1, (t,), local_step(s, population)) for t, s in stats.items()]
    forward, _ = strategy.aggregate_fit(1, population, answers)
    strategy.initialize()
    backward, _ = strategy.aggregate_fit(1, population, answers[::-1])
    assert_same_population(forward, backward, 0.0)
    # A wrapper (secure summation) may hand over several twins' summaries summed.
    strategy.initialize()
    summed = FitRes(1, ("T0", "T1"), answers[0].summary + answers[1].summary)
    grouped, report = strategy.aggregate_fit(1, population, [summed, *answers[2:]])
    assert report.answered == tuple(stats)
    assert_same_population(grouped, forward, 1e-13)
    # A twin counts once, however many answers name it.
    strategy.initialize()
    twice, report = strategy.aggregate_fit(1, population, [*answers, answers[2], summed])
    assert report.answered == tuple(stats)
    assert_same_population(twice, forward, 0.0)
    # Answers to another round are not this round's.
    kept, report = strategy.aggregate_fit(2, forward, answers)
    assert kept is forward and report.answered == () and np.isnan(report.change)
    assert report.missing == tuple(stats) and not report.converged


def _payloads(
    stats: dict[str, TwinStatistics], prior: FleetPrior, n_rounds: int
) -> list[tuple[str, str, FitIns | FitRes]]:
    messages: list[tuple[str, str, FitIns | FitRes]] = []
    fit_federated(
        FleetPooling(prior, ["default"], n_rounds=n_rounds, tol=NEVER),
        stats,
        on_message=lambda direction, twin, record: messages.append((direction, twin, record)),
    )
    return messages


@rounds_capped
def test_only_the_documented_summaries_leave_a_twin() -> None:
    few, prior, _ = make_fleet([40, 60, 90], seed=5, n_periods=3)
    many, _, _ = make_fleet([30_000, 50_000, 70_000], seed=5, n_periods=20)
    shapes: dict[str, set[tuple[tuple[str, tuple[int, ...]], ...]]] = {}
    for name, stats in (("few", few), ("many", many)):
        messages = _payloads(stats, prior, n_rounds=5)
        assert len(messages) == 2 * 5 * len(stats)  # one instruction, one answer each
        shapes[name] = set()
        for direction, twin, record in messages:
            if direction == "to_twin":
                assert isinstance(record, FitIns)
                continue
            assert direction == "from_twin" and isinstance(record, FitRes)
            assert record.twin_ids == (twin,)
            arrays = record.summary.to_arrays()
            assert set(arrays) == SUMMARY_FIELDS
            shapes[name].add(tuple(sorted((k, v.shape) for k, v in arrays.items())))
    # One shape for every answer, whatever the number of readings behind it: every
    # dimension is the number of kinds, of weights or of noise bins.
    assert len(shapes["few"]) == 1 and shapes["few"] == shapes["many"]
    p, k, n_blocks = prior.n_features, many["T0"].n_bins, len(prior.blocks)
    for name, shape in next(iter(shapes["many"])):
        if name == "log_evidence":
            assert shape == ()
        else:
            assert shape[0] == 1 and set(shape[1:]) <= {p, k, n_blocks}, name
    sent = dict(next(iter(shapes["many"])))
    # Of the weights' second moments only one number per term block travels.
    assert sent["sum_precision"] == (1, p, p) and sent["sum_quadratic"] == (1, n_blocks)


@rounds_capped
def test_an_answer_is_the_twins_local_step_and_holds_no_reading() -> None:
    stats, prior, readings = make_fleet([2_000, 3_000, 4_000], seed=7, n_periods=8)
    populations: dict[int, Population] = {}
    for direction, twin, record in _payloads(stats, prior, n_rounds=4):
        if isinstance(record, FitIns):
            # The same population to every twin: nothing about any other twin.
            seen = populations.setdefault(record.server_round, record.population)
            assert seen is record.population
            continue
        assert direction == "from_twin"
        alone = local_step(stats[twin], populations[record.server_round])
        for key, value in record.summary.to_arrays().items():
            np.testing.assert_allclose(value, alone.to_arrays()[key], rtol=1e-12, atol=0)
            assert not np.isin(value, readings[twin]).any()
        # The raw statistics stay behind too (only the per-bin counts of readings and
        # of period blocks travel).
        arrays = record.summary.to_arrays()
        values = np.concatenate([v.ravel() for v in arrays.values()])
        own = stats[twin]
        assert own.period_count is not None and (arrays["period_ss"] > 0).all()
        np.testing.assert_array_equal(
            arrays["period_blocks"][0], (own.period_count > 0).sum(axis=0)
        )
        for private in (own.gram, own.moment, own.sum_sq, own.period_sum, own.period_features):
            assert private is not None
            assert not np.isin(private.ravel(), values).any()


def test_a_federation_of_no_twins_is_refused() -> None:
    prior = FleetPrior.from_emulator(_emulator())
    with pytest.raises(ValueError, match="statistics: expected at least one twin, got none"):
        fit_federated(FleetPooling(prior, ["default"]), {})


def test_records_of_the_wrong_type_or_value_are_refused_where_they_are_built(
    fleet: Fleet,
) -> None:
    stats, prior, _ = fleet
    population = FleetPooling(prior, ["default"]).initialize()
    summary = local_step(stats["T0"], population)
    round_number = r"server_round: expected an integer >= 1, got"
    cases: list[tuple[object, type[Exception], str]] = [
        # The string was pooled as twins 'T' and '0'.
        (
            lambda: FitRes(1, "T0", summary),
            TypeError,
            r"twin_ids: expected a tuple of twin identifiers, got 'T0' \(\('T0',\) is one",
        ),
        # Dropped without a word as an answer to another round.
        (lambda: FitRes("1", ("T0",), summary), ValueError, rf"{round_number} '1'"),
        (lambda: FitRes(0, ("T0",), summary), ValueError, rf"{round_number} 0"),
        (lambda: FitRes(1, (), summary), ValueError, r"twin_ids: expected at least one twin"),
        (lambda: FitRes(1, ("",), summary), ValueError, r"twin_ids: expected non-empty twin"),
        (lambda: FitRes(1, ("T0", "T0"), summary), ValueError, r"twin_ids: expected distinct"),
        (lambda: FitRes(1, ("T0",), None), TypeError, r"summary: expected a LocalSummary .*None"),
        # Failed in the aggregation with "not iterable".
        (
            lambda: FitRes(1, ("T0",), stats["T0"]),
            TypeError,
            r"summary: expected a LocalSummary \(local_step .*\), got TwinStatistics",
        ),
        (lambda: FitIns("x", population), ValueError, rf"{round_number} 'x'"),
        (lambda: FitIns(1, None), TypeError, r"population: expected a Population, got None"),
    ]
    for build, error, message in cases:
        with pytest.raises(error, match=message):
            build()  # type: ignore[operator]


def test_a_strategy_and_its_driver_refuse_what_is_not_a_record(fleet: Fleet) -> None:
    stats, prior, _ = fleet
    strategy = FleetPooling(prior, ["default"])
    population = strategy.initialize()
    summary = local_step(stats["T0"], population)
    # Each failed deep inside, or not at all (instructions for twins 'T' and '0').
    with pytest.raises(TypeError, match=r"available: got the string 'T0'; expected a collection"):
        strategy.configure_fit(1, population, "T0")
    with pytest.raises(TypeError, match=r"results\[0\]: expected a FitRes .*, got LocalSummary"):
        strategy.aggregate_fit(1, population, [summary])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"results: expected a sequence of FitRes, got FitRes"):
        strategy.aggregate_fit(1, population, FitRes(1, ("T0",), summary))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"server_round: expected an integer >= 1, got '1'"):
        strategy.aggregate_fit("1", population, [])  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=r"strategy: expected a strategy such as FleetPooling .*, "
        "got FleetPrior",
    ):
        run_rounds(prior, lambda r, i: ([], []), lambda r: ["T0"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"exchange: expected a function from round number"):
        run_rounds(strategy, None, lambda r: ["T0"])  # type: ignore[arg-type]
    # An exchange that forgets to return its answers.
    with pytest.raises(TypeError, match=r"exchange: round 1 returned None; expected a pair"):
        run_rounds(strategy, lambda r, i: None, lambda r: ["T0"])  # type: ignore[arg-type,return-value]


def test_an_empty_twin_identifier_is_refused(fleet: Fleet) -> None:
    # It was pooled as the twin '' (LoopbackFederation.add_twins refused it as not text).
    stats, prior, _ = fleet
    with pytest.raises(
        ValueError,
        match=r"statistics: expected non-empty twin identifiers, got "
        "the empty string ''",
    ):
        fit_federated(FleetPooling(prior, ["default"]), {"": stats["T0"], "b": stats["T1"]})


@rounds_capped
def test_a_refit_takes_a_start_whose_kinds_come_in_another_order() -> None:
    kinds = ["A", "B", "A", "B", "A", "B"]
    stats, prior, _ = make_fleet([3_000] * 6, seed=9, kinds=kinds)
    start = fit_central(stats, prior, n_rounds=3, tol=NEVER).population
    assert start is not None and start.kinds == ("A", "B")
    # A newcomer of kind B listed first: the fleet's kinds are now (B, A).
    newcomer, _, _ = make_fleet([200], seed=10, kinds=["B"])
    ab = {**stats, "new": newcomer["T0"]}
    ba = {"new": newcomer["T0"], **stats}
    refit_ab = fit_central(ab, prior, n_rounds=3, tol=NEVER, start=start).population
    refit_ba = fit_central(ba, prior, n_rounds=3, tol=NEVER, start=start).population
    assert refit_ab is not None and refit_ba is not None and refit_ba.kinds == ("B", "A")
    for name in ("mean", "covariance", "noise_var"):
        ours, theirs = getattr(refit_ba, name)[::-1], getattr(refit_ab, name)
        assert relative(ours, theirs) <= 1e-12, name
