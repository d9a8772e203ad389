"""What a fleet fit does with input users get wrong: it refuses it by name, or warns.

From a new user's walk-through of the fleet API: each mistake here used to end in a
numpy error, a hang to the round limit, or a silently smaller fleet.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    ConvergenceWarning,
    FleetPooling,
    FleetPrior,
    FlowerSettings,
    LoopbackFederation,
    TwinStatistics,
    aggregate,
    calendar_months,
    calendar_weeks,
    complete_pooling,
    fit_central,
    fit_federated,
    fit_gossip,
    gossip_mean,
    initial_population,
    load_statistics,
    local_step,
    no_pooling,
    population_change,
    population_twins,
    save_statistics,
    twin_posterior,
)


def emulator(
    n_segments: int = 4, edges: tuple[float, ...] = (0.0, 0.5, 1.0)
) -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 1.0, n_segments),),
        noise_source="x",
        noise_edges=edges,
    )


def twin(slope: float, n: int = 300, **settings: object) -> BayesianBasisRegression:
    rng = np.random.default_rng(int(slope * 1000))
    x = rng.uniform(0.0, 1.0, n)
    return emulator(**settings).update({"x": x, "y": slope * x + rng.normal(0.0, 0.1, n)})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fleet() -> dict[str, TwinStatistics]:
    return {f"T{k}": TwinStatistics.from_emulator(twin(1.0 + 0.05 * k)) for k in range(4)}


@pytest.fixture(scope="module")
def prior() -> FleetPrior:
    return FleetPrior.from_emulator(emulator())


def test_twins_of_another_basis_are_named(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    # The odd twin comes first: it is named, not the first of the others.
    odd = TwinStatistics.from_emulator(twin(1.2, n_segments=6))
    stats = [odd, *fleet.values()]
    message = r"stats\[0\]: expected 7 features \(the prior's\) and 2 noise bins .* got 9 and 2"
    for fit in (fit_central, no_pooling, complete_pooling):
        with pytest.raises(ValueError, match=message):
            fit(dict(enumerate(stats)), prior)
    with pytest.raises(ValueError, match=r"stats\[0\]: expected 7 features \(most twins'\)"):
        TwinStatistics.pooled(stats)
    names = ["north", *fleet]
    with pytest.raises(ValueError, match=r"stats\['north'\]: expected 7 features"):
        fit_gossip(dict(zip(names, stats, strict=True)), nx.cycle_graph(names), prior)
    with pytest.raises(ValueError, match=r"statistics\['north'\]: expected 7 features"):
        fit_federated(FleetPooling(prior, ["default"]), dict(zip(names, stats, strict=True)))
    more_bins = TwinStatistics.from_emulator(twin(1.2, edges=(0.0, 0.3, 0.6, 1.0)))
    with pytest.raises(ValueError, match=r"stats\['T4'\]: expected .* 2 noise bins .* got 7 and 3"):
        fit_central({**fleet, "T4": more_bins}, prior)


def test_a_twin_refuses_a_population_of_other_noise_bins(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    # Over Flower a twin sees only the population it receives.
    population = fit_central(fleet, prior).population
    assert population is not None
    more_bins = TwinStatistics.from_emulator(twin(1.2, edges=(0.0, 0.3, 0.6, 1.0)))
    with pytest.raises(ValueError, match=r"population: expected 7 features and 3 noise bins"):
        local_step(more_bins, population)


def test_a_prior_of_another_basis_is_refused(fleet: dict[str, TwinStatistics]) -> None:
    other = FleetPrior.from_emulator(emulator(n_segments=6))
    message = r"prior: expected 7 features \(the twins' statistics'\), got 9"
    for fit in (fit_central, no_pooling, complete_pooling):
        with pytest.raises(ValueError, match=message):
            fit(fleet, other)
    # The coordinator's strategy holds the prior: refused by name before round 1, as
    # the central fit does (each twin would otherwise refuse what it is sent).
    with pytest.raises(ValueError, match=message):
        fit_federated(FleetPooling(other, ["default"]), fleet)
    with pytest.raises(ValueError, match=message):
        fit_gossip(dict(enumerate(fleet.values())), nx.cycle_graph(4), other)


def test_a_design_with_other_noise_bins_is_refused(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    fit = fit_central(fleet, prior)
    with pytest.raises(ValueError, match=r"design: expected 2 noise bins \(the twin's\)"):
        fit.predict("T0", {"x": np.array([0.1])}, emulator(edges=(0.0, 0.3, 0.6, 1.0)))
    with pytest.raises(ValueError, match=r"design: expected 2 noise bins \(the twin's\), got 1"):
        fit.predict("T0", {"x": np.array([0.9])}, emulator(edges=(0.0, 1.0)))


def test_a_design_of_another_basis_of_the_same_size_is_refused(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    # The same 7 features and 2 noise bins, a spline over [0, 2] instead of [0, 1]: its
    # features read with the fleet's weights gave another curve without a word.
    other = BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 2.0, 4),),
        noise_source="x",
        noise_edges=(0.0, 0.5, 1.0),
    )
    assert other.n_features == emulator().n_features and other.n_bins == emulator().n_bins
    inputs = {"x": np.array([0.5])}
    message = r"design: expected the fleet's basis, fingerprint '[0-9a-f]{16}', got"
    fits = {fit.__name__: fit(fleet, prior) for fit in (fit_central, no_pooling, complete_pooling)}
    for name, fit in fits.items():
        for twin in ("T0", None):
            with pytest.raises(ValueError, match=message):
                fit.predict(twin, inputs, other)
            assert np.isfinite(fit.predict(twin, inputs, emulator()).mean).all(), name
        with pytest.raises(ValueError, match=message):
            fit.twins["T0"].predict(inputs, other)
    central = fits["fit_central"]
    assert central.population is not None
    with pytest.raises(ValueError, match=message):
        population_twins(central.population)["default"].predict(inputs, other)
    with pytest.raises(ValueError, match=message):
        twin_posterior(fleet["T0"], central.population).predict(inputs, other)
    gossiped = fit_gossip(dict(enumerate(fleet.values())), nx.cycle_graph(4), prior)
    with pytest.raises(ValueError, match=message):
        gossiped.twins[0].predict(inputs, other)
    # A prior built by hand has no fingerprint: the statistics' is the fleet's.
    bare = dataclasses.replace(prior, basis_fingerprint=None)
    from_bare = fit_central(fleet, bare)
    assert from_bare.population is not None
    with pytest.raises(ValueError, match=message):
        from_bare.predict(None, inputs, other)
    # ... and the population it leaves, which is what a fleet saves and sends.
    assert from_bare.population.prior.basis_fingerprint == prior.basis_fingerprint
    with pytest.raises(ValueError, match=message):
        population_twins(from_bare.population)["default"].predict(inputs, other)
    gossiped = fit_gossip(dict(enumerate(fleet.values())), nx.cycle_graph(4), bare)
    assert gossiped.populations[0].prior.basis_fingerprint == prior.basis_fingerprint
    # A fingerprint that is not an emulator's is refused where it is set, not at the
    # first prediction with the twin's own emulator.
    posterior = central.twins["T0"]
    for wrong in ("", 123):
        with pytest.raises((TypeError, ValueError), match="basis_fingerprint: expected None or"):
            dataclasses.replace(posterior, basis_fingerprint=wrong)


def test_a_fleet_without_readings_is_refused(prior: FleetPrior) -> None:
    empty = TwinStatistics.from_emulator(emulator())
    with warnings.catch_warnings():
        # Refused, not first warned of as a fleet of too few twins with readings (0).
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="expected readings in at least one twin"):
            fit_central({"A": empty, "B": empty}, prior)
        with pytest.raises(ValueError, match="expected readings in at least one twin"):
            fit_federated(FleetPooling(prior, ["default"]), {"A": empty, "B": empty})
        with pytest.raises(ValueError, match="expected readings in at least one twin"):
            fit_gossip({0: empty, 1: empty}, nx.path_graph(2), prior)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_rounds": 2.5}, r"n_rounds: expected an integer >= 1, got 2.5"),
        ({"n_rounds": 0}, r"n_rounds: expected an integer >= 1, got 0"),
        ({"tol": 0.0}, r"tol: expected a number > 0, got 0.0"),
        ({"tol": float("nan")}, r"tol: expected a number > 0, got nan"),
        ({"tol": "1e-3"}, r"tol: expected a number > 0, got '1e-3'"),
        ({"tol": None}, r"tol: expected a number > 0, got None"),
        # With an infinite tolerance the rounds stopped after two, reporting convergence.
        ({"tol": float("inf")}, r"tol: expected a finite number > 0, got inf"),
    ],
)
def test_round_settings_are_checked_alike(
    fleet: dict[str, TwinStatistics],
    prior: FleetPrior,
    settings: dict[str, float],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_central(fleet, prior, **settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        FleetPooling(prior, ["default"], **settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        fit_gossip(dict(enumerate(fleet.values())), nx.cycle_graph(4), prior, **settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        FlowerSettings(**settings)  # type: ignore[arg-type]


def test_flower_settings_are_checked_as_the_strategys(tmp_path: Path) -> None:
    for bad in (True, 0):
        with pytest.raises(ValueError, match="max_missed_rounds: expected an integer >= 1"):
            FlowerSettings(max_missed_rounds=bad)
    with pytest.raises(ValueError, match=r"round_timeout: expected a number > 0 \[s\], got 0"):
        FlowerSettings(round_timeout=0)
    # min_twins is a count: 2.5 used to be read back as 2, "3" to fail in a comparison.
    for bad_count in (2.5, "3", 0, True):
        with pytest.raises(ValueError, match="min_twins: expected an integer >= 1"):
            FlowerSettings(min_twins=bad_count)  # type: ignore[arg-type]
    # A numpy integer is a valid setting and must reach the app as TOML.
    config = tomllib.loads(FlowerSettings(n_rounds=np.int64(5)).as_toml(tmp_path))  # type: ignore[arg-type]
    assert config["n-rounds"] == 5


def test_a_strategy_checks_its_kinds(prior: FleetPrior) -> None:
    with pytest.raises(TypeError, match="kinds: expected a sequence of kinds, got the string"):
        FleetPooling(prior, "default")
    with pytest.raises(ValueError, match="kinds: expected at least one kind"):
        FleetPooling(prior, [])
    assert FleetPooling(prior, np.array(["A", "B"])).kinds == ("A", "B")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_missed_rounds: expected an integer >= 1, got 0"):
        FleetPooling(prior, ["default"], max_missed_rounds=0)


def test_running_out_of_rounds_warns_at_the_callers_line(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    stats = list(fleet.values())
    # Each names the tolerance it did not reach.
    tol = r"no convergence in 2 rounds \(last relative change [0-9.e+-]+, tol 1e-06\)"
    with pytest.warns(ConvergenceWarning, match=rf"fit_central: {tol}") as a:
        assert not fit_central(fleet, prior, n_rounds=2).converged
    with pytest.warns(ConvergenceWarning, match=rf"federated rounds: {tol}") as b:
        assert not fit_federated(FleetPooling(prior, ["default"], n_rounds=2), fleet).converged
    with pytest.warns(ConvergenceWarning, match=r"fit_gossip: no convergence in 2 rounds") as c:
        assert not fit_gossip(
            dict(enumerate(stats)), nx.cycle_graph(4), prior, n_rounds=2
        ).converged
    for record in (*a, *b, *c):
        assert record.filename == __file__


def test_a_twin_missing_at_the_round_limit_is_named(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    strategy = FleetPooling(prior, ["default"], n_rounds=4, max_missed_rounds=10)
    others = ["T0", "T1", "T2"]
    with pytest.warns(ConvergenceWarning, match=r"twins \['T3'\] missed the last round"):
        fit_federated(strategy, fleet, available=lambda r: [*others, "T3"] if r == 1 else others)


def test_converged_fits_say_nothing(fleet: dict[str, TwinStatistics], prior: FleetPrior) -> None:
    stats = list(fleet.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert fit_central(fleet, prior).converged
        assert fit_federated(FleetPooling(prior, ["default"]), fleet).converged
        assert fit_gossip(dict(enumerate(stats)), nx.cycle_graph(4), prior).converged


def test_unknown_twins_in_available_are_refused(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    with pytest.raises(
        ValueError, match=r"available: round 1 names twins without statistics \['t3'\]"
    ):
        fit_federated(
            FleetPooling(prior, ["default"]), fleet, available=lambda _: ["T0", "T1", "T2", "t3"]
        )
    with pytest.raises(
        ValueError, match=r"available: round 1 names twins not in the graph \['7'\]"
    ):
        fit_gossip(
            {str(k): s for k, s in enumerate(fleet.values())},
            nx.relabel_nodes(nx.cycle_graph(4), str),
            prior,
            available=lambda _: ["0", "1", "2", "7"],
        )


def test_every_fleet_fit_takes_a_mapping_and_says_so(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    listed = list(fleet.values())
    hint = r"expected a mapping from twin identifier to TwinStatistics, got list; .*enumerate"
    with pytest.raises(TypeError, match=rf"statistics: {hint}"):
        fit_federated(FleetPooling(prior, ["default"]), listed)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"stats: {hint}"):
        fit_gossip(listed, nx.cycle_graph(4), prior)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"stats: {hint}"):
        fit_central(listed, prior)  # type: ignore[arg-type]


def test_gossip_that_cannot_settle_says_so(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    stats = dict(enumerate(fleet.values()))
    with pytest.raises(ValueError, match="gossip_tol: expected a number > 0, got 0"):
        fit_gossip(stats, nx.cycle_graph(4), prior, gossip_tol=0)
    # Nearly every message lost and few gossip rounds: the twins' sums are far off.
    with pytest.raises(
        RuntimeError, match=r"round 1: the gossip did not settle in max_gossip_rounds=3"
    ):
        fit_gossip(stats, nx.cycle_graph(4), prior, loss=0.99, max_gossip_rounds=3, seed=0)
    # Every round's gossip cut short: where the fleet's rounds then ran out, the only
    # warning said "raise n_rounds or tol".
    for n_rounds in (10, 1000):
        with pytest.warns(ConvergenceWarning) as caught:
            fit_gossip(stats, nx.cycle_graph(4), prior, max_gossip_rounds=3, n_rounds=n_rounds)
        said = [str(w.message) for w in caught]
        assert any(
            re.match(
                r"fit_gossip: the gossip of (\d+) of \1 round\(s\) stopped at max_gossip_rounds=3 "
                r"before gossip_tol 1e-13; raise max_gossip_rounds",
                message,
            )
            for message in said
        ), said


def test_period_labels_must_be_complete() -> None:
    times = np.array(["2014-01-01T00:00", "NaT", "2014-01-09T00:00"], dtype="datetime64[ns]")
    for labels in (calendar_weeks, calendar_months):
        with pytest.raises(
            ValueError, match=r"times: expected no missing times, got 1 NaT \(first at position 1\)"
        ):
            labels(times)
    readings = {"x": np.array([0.1, 0.5, 0.9]), "y": np.array([0.1, 0.5, 0.9])}
    with pytest.raises(
        ValueError, match=r"periods: expected a label for every reading, got 1 missing"
    ):
        TwinStatistics.from_emulator(
            emulator().update(readings), readings=readings, periods=np.array([1.0, np.nan, 2.0])
        )


def test_period_labels_take_pandas_times_with_a_zone() -> None:
    # Sunday 2014-03-30 22:00 in Paris (CEST) is 20:00 UTC: the week turns at the fifth
    # hour in UTC, at the third on Paris's wall clock.
    paris = pd.Series(pd.date_range("2014-03-30 22:00", periods=6, freq="h", tz="Europe/Paris"))
    utc = paris.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    for times in (paris, pd.DatetimeIndex(paris), utc):
        weeks = calendar_weeks(times)
        assert (weeks == weeks[0]).tolist() == [True] * 4 + [False] * 2
        months = calendar_months(times)
        assert (months == months[0]).all()


def test_unreadable_statistics_files_are_named(
    tmp_path: Path, fleet: dict[str, TwinStatistics]
) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not numpy at all")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    empty = tmp_path / "empty.npz"
    empty.touch()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(save_statistics(fleet["T0"], tmp_path / "T0.npz").read_bytes()[:100])
    for path, detail in (
        (garbage, "a file numpy cannot read as one"),
        (single, r"a single array \(.npy\)"),
        (other, r"an .npz file without \['gram', 'moment', 'sum_sq', 'count', 'kind'\]"),
        (truncated, "a file numpy cannot read as one"),
        (empty, "a file numpy cannot read as one"),
    ):
        with pytest.raises(ValueError, match=f"{path.name}: expected twin statistics .*{detail}"):
            load_statistics(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        load_statistics(tmp_path / "missing.npz")


def test_statistics_written_to_a_directory_are_refused_and_leave_nothing(
    tmp_path: Path, fleet: dict[str, TwinStatistics]
) -> None:
    folder = tmp_path / "stats"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=r"path: expected a file to write, got the dir"):
        save_statistics(fleet["T0"], folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats"]  # no stats.part


def test_a_missing_statistics_file_is_refused_before_any_flower_process(
    tmp_path: Path, fleet: dict[str, TwinStatistics]
) -> None:
    good = save_statistics(fleet["T0"], tmp_path / "T0.npz")
    federation = LoopbackFederation(tmp_path / "flower")
    try:
        with pytest.raises(FileNotFoundError, match=r"T1-typo\.npz"):
            federation.add_twins({"T0": good, "T1": tmp_path / "T1-typo.npz"})
        assert federation.pids() == []  # no SuperLink, no SuperNode (not even T0's)
    finally:
        federation.close()


def test_a_non_finite_input_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"row 1: expected finite y and inputs, got y=2.0 and non-finite \['x'\]"
    ):
        emulator().update({"x": np.array([0.1, np.nan, 0.3]), "y": np.array([1.0, 2.0, 3.0])})


def test_a_start_that_is_not_the_fleets_population_is_refused(
    fleet: dict[str, TwinStatistics], prior: FleetPrior, tmp_path: Path
) -> None:
    fitted = fit_central(fleet, prior)
    assert fitted.population is not None
    # The fit itself rather than its population: the likely slip.
    with pytest.raises(TypeError, match=r"start: expected a Population \(a fit's \.population\)"):
        fit_central(fleet, prior, start=fitted)  # type: ignore[arg-type]
    wider = initial_population(FleetPrior.from_emulator(emulator(n_segments=6)), ["default"])
    with pytest.raises(ValueError, match=r"start: expected a population of the prior's basis"):
        fit_central(fleet, prior, start=wider)
    edges = (0.0, 0.3, 0.6, 1.0)
    three_bins = TwinStatistics.from_emulator(twin(1.0, edges=edges))
    with pytest.warns(ConvergenceWarning):  # one round gives it noise variances
        binned = fit_central(
            {"T0": three_bins}, FleetPrior.from_emulator(emulator(edges=edges)), n_rounds=1
        )
    assert binned.population is not None
    with pytest.raises(ValueError, match=r"start: expected noise_var for the twins' 2 noise bins"):
        fit_central(fleet, prior, start=binned.population)
    with pytest.raises(ValueError, match=r"start: expected noise_var for the twins' 2 noise bins"):
        fit_federated(FleetPooling(prior, ["default"], start=binned.population), fleet)
    two_kinds = {"new": TwinStatistics.from_emulator(twin(1.37), kind="other"), **fleet}
    kinds = r"start: expected the fleet's kinds \('other', 'default'\)"
    with pytest.raises(ValueError, match=kinds):
        fit_central(two_kinds, prior, start=fitted.population)
    with pytest.raises(ValueError, match=r"start: expected the fleet's kinds"):
        FleetPooling(prior, ["other", "default"], start=fitted.population)
    with pytest.raises(ValueError, match=r"start: expected the fleet's kinds"):
        fit_gossip(
            two_kinds,
            nx.cycle_graph(list(two_kinds)),
            prior,
            start=fitted.population,
        )
    # Over Flower, before any process starts (submit starts the SuperLink otherwise).
    federation = LoopbackFederation(tmp_path / "federation")
    try:
        with pytest.raises(ValueError, match=r"start: expected the fleet's kinds"):
            federation.submit(prior, ["other", "default"], start=fitted.population)
        assert federation.pids() == []
    finally:
        federation.close()


@pytest.mark.filterwarnings(
    "ignore::twinweave.transfer.ConvergenceWarning"
)  # two rounds on purpose
def test_a_kind_that_looks_like_a_typo_of_another_is_named() -> None:
    def fleet_of(*kinds: str) -> dict[int, TwinStatistics]:
        return {
            k: TwinStatistics.from_emulator(twin(1.0 + 0.05 * k), kind)
            for k, kind in enumerate(kinds)
        }

    prior = FleetPrior.from_emulator(emulator())
    for kinds, odd in (
        (("MM82", "MM82", "mm-82"), "mm-82"),
        (("default",) * 3 + ("defualt",), "defualt"),
    ):
        with pytest.warns(
            UserWarning, match=rf"stats\[{len(kinds) - 1}\]: kind '{odd}' is this twin's alone"
        ):
            fit_central(fleet_of(*kinds), prior, n_rounds=2, tol=1e-300)
    typo = dict(
        zip(["A", "B", "C"], fleet_of("default", "default", "defualt").values(), strict=True)
    )
    with pytest.warns(UserWarning, match=r"statistics\['C'\]: kind 'defualt'"):
        fit_federated(FleetPooling(prior, ["default", "defualt"], n_rounds=2, tol=1e-300), typo)
    with pytest.warns(UserWarning, match=r"stats\['C'\]: kind 'defualt'"):
        fit_gossip(typo, nx.cycle_graph(["A", "B", "C"]), prior, n_rounds=2, tol=1e-300)
    # Variants of a model (a digit or a letter changed), other words, and a new type
    # with one twin: no warning.
    for kinds in (
        ("Senvion MM82", "Senvion MM92", "Senvion MM92"),
        ("GE1.5sle", "GE1.5xle", "GE1.5xle"),
        ("onshore", "offshore", "offshore"),
        ("MM82", "MM82", "V90"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit_central(fleet_of(*kinds), prior, n_rounds=2, tol=1e-300)


def test_kinds_are_names(prior: FleetPrior, tmp_path: Path) -> None:
    # Kinds travel as text (Flower's configuration, saved files): 5 and "5" would merge.
    model = twin(1.0)
    for bad in (5, None, ["A"]):
        with pytest.raises(TypeError, match=r"kind: expected a kind's name \(a non-empty str\)"):
            TwinStatistics.from_emulator(model, bad)  # type: ignore[arg-type]
    # A string, but empty: the type is right, the value is not.
    with pytest.raises(
        ValueError, match=r"kind: expected a kind's name \(a non-empty str\), got ''"
    ):
        TwinStatistics.from_emulator(model, "")
    with pytest.raises(TypeError, match=r"kinds: expected a kind's name .* got 5"):
        FleetPooling(prior, [5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="kinds: expected a sequence of kinds, got the string"):
        initial_population(prior, "default")
    with pytest.raises(ValueError, match="kinds: expected distinct names"):
        initial_population(prior, ["A", "A"])
    # Over Flower, refused in the user's process: before, "default" became seven kinds
    # of one letter, every twin refused every round and the run timed out.
    federation = LoopbackFederation(tmp_path / "federation")
    try:
        with pytest.raises(TypeError, match="kinds: expected a sequence of kinds, got the string"):
            federation.submit(prior, "default")
        assert federation.pids() == []
    finally:
        federation.close()


def test_a_twin_of_a_kind_the_strategy_does_not_pool_is_named(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    stats = {**fleet, "T9": TwinStatistics.from_emulator(twin(1.3), "other")}
    with pytest.raises(
        ValueError, match=r"statistics\['T9'\]: kind 'other' is not one the strategy pools"
    ):
        fit_federated(FleetPooling(prior, ["default"]), stats)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: g + np.triu(np.ones_like(g[0]), 1) * 100.0,
            r"gram: expected symmetric matrices .* bin 0 with \[0, 1\]",
        ),
        (lambda g: -g, r"gram: expected a non-negative diagonal .* bin 0 feature 0"),
    ],
)
def test_statistics_that_no_readings_give_are_refused(change: object, message: str) -> None:
    good = TwinStatistics.from_emulator(twin(1.0))
    with pytest.raises(ValueError, match=message):
        TwinStatistics(change(good.gram), good.moment, good.sum_sq, good.count)  # type: ignore[operator]
    # Sums over no readings are zero: non-zero sums in a bin counted empty are not
    # a twin's.
    with pytest.raises(ValueError, match=r"expected zeros in bins without readings .* \[1\]"):
        TwinStatistics(good.gram, good.moment, good.sum_sq, np.array([good.count[0], 0.0]))


def test_a_kind_without_twins_lets_the_rounds_settle(prior: FleetPrior) -> None:
    # A kind that no twin holds, or whose twins have all gone, has a mean the data do not
    # reach; it used to count in Sigma_B, which then drifted for ever (2,000 rounds
    # without settling at tol 1e-6 in both cases).
    stats = {f"A{k}": TwinStatistics.from_emulator(twin(1.0 + 0.05 * k), "A") for k in range(4)}
    stats |= {f"B{k}": TwinStatistics.from_emulator(twin(1.3 + 0.05 * k), "B") for k in range(4)}
    only_a = [name for name in stats if name.startswith("A")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        spare = fit_federated(
            FleetPooling(prior, ["A", "spare"]), {name: stats[name] for name in only_a}
        )
        gone = fit_federated(
            FleetPooling(prior, ["A", "B"]),
            stats,
            available=lambda r: list(stats) if r <= 2 else only_a,
        )
    assert spare.converged and gone.converged
    # With both kinds answering throughout, the federated fit is the central one.
    both = fit_federated(FleetPooling(prior, ["A", "B"]), stats)
    central = fit_central(stats, prior)
    assert both.n_rounds == central.n_rounds
    np.testing.assert_array_equal(both.population.mean, central.population.mean)


def test_federated_identifiers_must_sort_together(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    mixed = {0: fleet["T0"], "a": fleet["T1"]}
    assert fit_central(mixed, prior).converged  # the central fit keeps the mapping's order
    with pytest.raises(TypeError, match=r"twin identifiers that sort together .*\['int', 'str'\]"):
        fit_federated(FleetPooling(prior, ["default"]), mixed)


def test_available_is_a_function_of_the_round(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    strategy = FleetPooling(prior, ["default"])
    with pytest.raises(TypeError, match="available: expected a function from round number"):
        fit_federated(strategy, fleet, available=["T0"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="available: round 1 returned the string 'T0'"):
        fit_federated(strategy, fleet, available=lambda _: "T0")
    with pytest.warns(ConvergenceWarning, match="no twin answered in 3 rounds"):
        fit_federated(FleetPooling(prior, ["default"], n_rounds=3), fleet, available=lambda _: [])
    graph = nx.relabel_nodes(nx.cycle_graph(4), lambda k: f"T{k}")
    with pytest.raises(TypeError, match="available: expected a function from round number"):
        fit_gossip(fleet, graph, prior, available=["T0"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="available: round 1 returned the string 'T0'"):
        fit_gossip(fleet, graph, prior, available=lambda _: "T0")
    # A function that forgets to return its answer.
    for fit in (
        lambda forgetful: fit_federated(strategy, fleet, available=forgetful),
        lambda forgetful: fit_gossip(fleet, graph, prior, available=forgetful),
    ):
        with pytest.raises(TypeError, match=r"available: round 1 returned None; expected a coll"):
            fit(lambda _: None)
    with pytest.raises(ValueError, match="available: round 1 names no twin"):
        fit_gossip(fleet, graph, prior, available=lambda _: [])
    # T0 and T2 of a ring of four are not neighbours: each is a part of its own.
    split = r"round 1: the present twins are not connected .* 2 parts, \['T0'\] and \['T2'\]\)"
    with pytest.raises(ValueError, match=split):
        fit_gossip(fleet, graph, prior, available=lambda _: ["T0", "T2"])


def test_a_twin_never_present_in_the_gossip_is_named(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    # As fit_federated names it: never expected, so the gossip converges without it.
    graph = nx.relabel_nodes(nx.cycle_graph(4), lambda k: f"T{k}")
    present = ["T0", "T1", "T2"]
    with pytest.warns(UserWarning, match=r"fit_gossip: twins \['T3'\] have statistics but w"):
        result = fit_gossip(fleet, graph, prior, available=lambda _: present)
    assert sorted(result.twins) == present


def test_calendar_periods_refuse_numbers_for_times() -> None:
    # numpy reads numbers as nanoseconds since 1970: every week would be one.
    seconds = np.array([1_388_534_400, 1_389_139_200])  # 2014-01-01 and 01-08, UTC
    for periods in (calendar_weeks, calendar_months):
        with pytest.raises(TypeError, match=r"times: expected datetimes .* dtype int64"):
            periods(seconds)
    days = np.array(["2014-01-01", "2014-01-08"], dtype="datetime64[s]")
    assert np.diff(calendar_weeks(days)).tolist() == [1]


def test_a_fleet_prediction_checks_its_inputs_as_the_emulator_does(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    # A fleet's prediction used to read the design's features unchecked: a NaN speed gave
    # a NaN mean where the twin's own emulator refuses it.
    design = twin(1.0)
    bad = {"x": np.array([0.5, np.nan, 0.2])}
    with pytest.raises(
        ValueError, match=r"x: 1 of 3 values missing or not finite, first at row 1"
    ) as single:
        design.predict(bad)
    refused = str(single.value)
    fits = (fit_central(fleet, prior), no_pooling(fleet, prior), complete_pooling(fleet, prior))
    for fit in fits:
        for twin_id in ("T0", None):
            with pytest.raises(ValueError) as error:
                fit.predict(twin_id, bad, design)
            assert str(error.value) == refused
    # Beyond the basis's range neither refuses: one behaviour.
    far = {"x": np.array([-3.0, 5.0])}
    assert np.isfinite(design.predict(far).mean).all()
    assert np.isfinite(fits[0].predict("T0", far, design).mean).all()


def test_arguments_of_the_wrong_type_are_named(
    fleet: dict[str, TwinStatistics], prior: FleetPrior, tmp_path: Path
) -> None:
    # Each used to fail inside on an attribute ('NoneType' object has no attribute ...).
    population = initial_population(prior, ["default"])
    one = fleet["T0"]
    graph = nx.relabel_nodes(nx.cycle_graph(4), lambda k: f"T{k}")
    fitted = fit_central(fleet, prior)
    not_a_prior = "prior: expected a FleetPrior, got None"
    not_a_population = "population: expected a Population, got None"
    cases: list[tuple[object, str]] = [
        (lambda: fit_central(fleet, None), not_a_prior),
        (lambda: fit_central(fleet, "prior"), "prior: expected a FleetPrior, got 'prior'"),
        (lambda: no_pooling(fleet, None), not_a_prior),
        (lambda: complete_pooling(fleet, None), not_a_prior),
        (lambda: fit_gossip(fleet, graph, None), not_a_prior),
        (lambda: FleetPooling(None, ["default"]), not_a_prior),
        (lambda: initial_population(None, ["default"]), not_a_prior),
        (lambda: fit_federated(None, fleet), "strategy: expected a strategy such as FleetPooling"),
        (lambda: twin_posterior(one, None), not_a_population),
        (lambda: local_step(one, None), not_a_population),
        (lambda: local_step(None, population), "stats: expected a TwinStatistics, got None"),
        (lambda: population_twins(None), not_a_population),
        (lambda: aggregate(local_step(one, population), None), not_a_population),
        (
            lambda: save_statistics({}, tmp_path / "s.npz"),
            "statistics: expected a TwinStatistics, got dict",
        ),
        (
            lambda: TwinStatistics.from_emulator("e"),
            "emulator: expected a BayesianBasisRegression, got 'e'",
        ),
        (
            lambda: FleetPrior.from_emulator(None),
            "emulator: expected a BayesianBasisRegression, got None",
        ),
        (
            lambda: fitted.predict("T0", {"x": [0.5]}, "design"),
            r"design: expected the twins' emulator \(a Design\), got 'design'",
        ),
    ]
    for call, message in cases:
        with pytest.raises(TypeError, match=message):
            call()  # type: ignore[operator]
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("period_prior_count", "a", r"period_prior_count: expected a number >= 0, got 'a'"),
        ("mean_prior_weight", "a", r"mean_prior_weight: expected a number > 0, got 'a'"),
        ("scale_prior_count", float("inf"), r"scale_prior_count: expected a finite number > 0"),
        ("noise_prior_count", None, r"noise_prior_count: expected a number >= 0, got None"),
        ("own_noise_count", float("inf"), r"own_noise_count: expected a finite number >= 0"),
        ("n_noise_iterations", 2.5, r"n_noise_iterations: expected an integer >= 1, got 2.5"),
        ("n_noise_iterations", 0, r"n_noise_iterations: expected an integer >= 1, got 0"),
        ("noise_tol", float("inf"), r"noise_tol: expected a finite number > 0, got inf"),
        ("blocks", (3.5, 3.5), r"blocks: expected an integer >= 1, got 3.5"),
    ],
)
def test_prior_settings_are_checked_when_the_prior_is_built(
    prior: FleetPrior, setting: str, value: object, message: str
) -> None:
    # Each used to be accepted (2.5 iterations failed in a fit, 3.5 was read as 3) or to
    # raise a bare TypeError from a comparison.
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(prior, **{setting: value})


def test_a_negative_smoothness_is_refused_before_a_fit() -> None:
    # It made the deviations' structure indefinite: a LinAlgError in the fit.
    with pytest.raises(ValueError, match=r"smoothness: expected a number >= 0, got -1.0"):
        FleetPrior.from_emulator(emulator(), smoothness=-1.0)
    assert FleetPrior.from_emulator(emulator(), smoothness=0.0).n_features == 7


def test_statistics_errors_name_the_field_the_place_and_the_value(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    good = fleet["T0"]
    moment = good.moment.copy()
    moment[1, 3] = np.nan
    with pytest.raises(
        ValueError,
        match=r"moment: expected finite values, got 1 not finite \(first at index \[1, 3\]: nan\)",
    ):
        TwinStatistics(good.gram, moment, good.sum_sq, good.count)
    count = good.count.copy()
    count[1] = -2.0
    with pytest.raises(
        ValueError,
        match=r"count: expected non-negative values \(one per bin\), got 1 negative "
        r"\(first at index \[1\]: -2\)",
    ):
        TwinStatistics(good.gram, good.moment, good.sum_sq, count)
    with pytest.raises(ValueError, match=r"sum_sq: expected non-negative .* \[0\]: -1\)"):
        TwinStatistics(good.gram, good.moment, np.array([-1.0, 1.0]), good.count)
    with pytest.raises(ValueError, match=r"gram: expected a 3-d array of numbers, got 'abc'"):
        TwinStatistics("abc", good.moment, good.sum_sq, good.count)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"period_count: expected its sum .* got 1 and count \d+ in bin 0"
    ):
        TwinStatistics(
            good.gram,
            good.moment,
            good.sum_sq,
            good.count,
            period_count=np.array([[1.0, good.count[1]]]),
            period_sum=np.zeros((1, 2)),
            period_features=np.zeros((1, 2, 7)),
        )
    summary = local_step(good, initial_population(prior, ["default"]))
    with pytest.raises(ValueError, match=r"factor: expected a number >= 0, got -1.0"):
        summary.scaled(-1.0)
    with pytest.raises(ValueError, match=r"gossip_tol: expected a finite number > 0, got inf"):
        fit_gossip(dict(enumerate(fleet.values())), nx.cycle_graph(4), prior, gossip_tol=np.inf)


def test_period_readings_must_be_those_the_emulator_assimilated() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, 50)
    y = x + rng.normal(0.0, 0.1, 50)
    model = emulator().update({"x": x, "y": y})
    weeks = np.arange(50) // 10
    held = float(np.sum(y**2))
    # Other values, same count: accepted silently before, beside the emulator's sums.
    with pytest.raises(
        ValueError,
        match=rf"readings: expected the readings the emulator assimilated, got 50 readings "
        rf"with a sum of squared y of [\d.]+ where the emulator holds 50 and {held:.6g} "
        r"\(first difference in noise bin \d",
    ):
        TwinStatistics.from_emulator(model, readings={"x": x, "y": y + 1.0}, periods=weeks)
    # One reading more: refused before as a mismatch of period_count.
    more = {"x": np.append(x, 0.5), "y": np.append(y, 0.5)}
    with pytest.raises(ValueError, match=r"readings: expected .* got 51 readings"):
        TwinStatistics.from_emulator(model, readings=more, periods=np.append(weeks, 9))
    # The same readings in another order are the emulator's.
    stats = TwinStatistics.from_emulator(
        model, readings={"x": x[::-1], "y": y[::-1]}, periods=weeks[::-1]
    )
    assert stats.period_count is not None and stats.period_count.sum() == 50


def test_switches_take_only_true_or_false(
    fleet: dict[str, TwinStatistics], prior: FleetPrior
) -> None:
    # Any object has a truth value: accelerate="False" ran accelerated (20 rounds
    # against plain EM's 65), progress="no" drew the bar, and over Flower both strings
    # reached the ServerApp as True.
    message = r"{}: expected True or False, got 'False'"
    for name in ("accelerate", "progress"):
        with pytest.raises(TypeError, match=message.format(name)):
            fit_central(fleet, prior, **{name: "False"})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=message.format(name)):
            fit_gossip(fleet, nx.cycle_graph(list(fleet)), prior, **{name: "False"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message.format("accelerate")):
        FleetPooling(prior, ["default"], accelerate="False")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message.format("progress")):
        fit_federated(FleetPooling(prior, ["default"]), fleet, progress="False")  # type: ignore[arg-type]
    for name in ("accelerate", "record_messages"):
        with pytest.raises(TypeError, match=message.format(name)):
            FlowerSettings(**{name: "False"})  # type: ignore[arg-type]
    # numpy's bools are switches too.
    assert fit_central(fleet, prior, accelerate=np.bool_(False)).converged


def test_a_seed_is_refused_by_name(fleet: dict[str, TwinStatistics], prior: FleetPrior) -> None:
    # Was numpy's "SeedSequence expects int or sequence of ints for entropy not x".
    expected = r"seed: expected what numpy.random.default_rng takes \(None, an integer >= 0"
    for seed in ("x", 1.5, -1):
        with pytest.raises(TypeError, match=expected):
            fit_gossip(fleet, nx.cycle_graph(list(fleet)), prior, seed=seed)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=expected):
            gossip_mean(np.ones((4, 1)), nx.cycle_graph(4), seed=seed)  # type: ignore[arg-type]
    # What numpy takes still works: a SeedSequence spawns independent streams.
    for seed in (np.random.SeedSequence(3), np.int64(3), [1, 2, 3]):
        gossip_mean(np.ones((4, 1)), nx.cycle_graph(4), loss=0.1, seed=seed)  # type: ignore[arg-type]


def test_period_labels_that_do_not_compare_or_group_are_refused() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(0.0, 1.0, 400)
    readings = {"x": x, "y": x + rng.normal(0.0, 0.1, 400)}
    model = emulator().update(readings)
    # Week numbers with a string among them: was Python's "'<' not supported".
    mixed = np.array([*range(399), "last"], dtype=object)
    with pytest.raises(
        ValueError,
        match=r"periods: expected labels that compare with each other \(of one type; .*\), "
        r"got labels of type int, str",
    ):
        TwinStatistics.from_emulator(model, readings=readings, periods=mixed)
    # The readings' times for labels, not their weeks: every reading its own period
    # (the period effects then are the noise, and the blocks grew with the readings:
    # 164 MB for a month of a La Haute Borne turbine).
    times = np.datetime64("2014-01-01T00:00") + np.arange(400) * np.timedelta64(10, "m")
    with pytest.raises(
        ValueError,
        match=r"periods: expected labels that group readings \(a calendar week, say: "
        r"calendar_weeks\(times\)\), got 400 periods for 400 readings, nearly one each",
    ):
        TwinStatistics.from_emulator(model, readings=readings, periods=times)
    weekly = TwinStatistics.from_emulator(model, readings=readings, periods=calendar_weeks(times))
    assert weekly.period_count is not None and weekly.period_count.shape[0] == 1
    # Sparse readings, two a period on average: labels that group.
    sparse = TwinStatistics.from_emulator(model, readings=readings, periods=np.arange(400) // 2)
    assert sparse.period_count is not None and sparse.period_count.shape[0] == 200


def test_period_sums_in_other_units_than_the_totals_are_refused() -> None:
    # Hand-built statistics whose period sums were in W beside totals in kW: accepted,
    # and the fit failed with "a twin's posterior precision is not positive definite".
    rng = np.random.default_rng(5)
    x = rng.uniform(0.0, 1.0, 60)
    readings = {"x": x, "y": x + rng.normal(0.0, 0.1, 60)}
    stats = TwinStatistics.from_emulator(
        emulator().update(readings), readings=readings, periods=np.arange(60) // 20
    )
    assert stats.period_sum is not None and stats.period_features is not None
    for name, scaled, totals in (
        ("period_sum", stats.period_sum * 1000.0, "sum_sq"),
        ("period_features", stats.period_features * 10.0, "the diagonal of gram"),
    ):
        with pytest.raises(
            ValueError, match=rf"{name}: expected sums that {totals} can hold .* in bin \d"
        ):
            dataclasses.replace(stats, **{name: scaled})
    lone = stats.period_sum.copy()
    counts = stats.period_count.copy()  # type: ignore[union-attr]
    counts[0, 0], counts[1, 0] = 0.0, counts[1, 0] + counts[0, 0]
    with pytest.raises(
        ValueError, match=r"period_sum: expected 0 where period_count is 0, got a sum in period 0"
    ):
        dataclasses.replace(stats, period_count=counts, period_sum=lone)


def test_population_change_matches_kinds_by_name(prior: FleetPrior) -> None:
    # The same two-kind fleet listed in another order has its kinds in another order:
    # compared row by row, it "changed" by 0.458.
    stats = {
        f"{kind}{k}": dataclasses.replace(
            TwinStatistics.from_emulator(twin(slope + 0.05 * k)), kind=kind
        )
        for kind, slope in (("A", 1.0), ("B", 2.0))
        for k in range(3)
    }
    forwards = fit_central(stats, prior).population
    backwards = fit_central(dict(reversed(stats.items())), prior).population
    assert forwards.kinds == ("A", "B") and backwards.kinds == ("B", "A")
    assert population_change(forwards, backwards) < 1e-9
    single = fit_central({k: v for k, v in stats.items() if v.kind == "A"}, prior).population
    with pytest.raises(
        ValueError,
        match=r"new: expected a population of the same kinds as old, \['A', 'B'\], got \['A'\]",
    ):
        population_change(forwards, single)


@pytest.mark.parametrize("n_segments", [4, 40])  # numpy's stacked Cholesky; LAPACK's loop
def test_a_twin_whose_readings_leave_no_noise_is_named_in_every_mode(n_segments: int) -> None:
    # Two idle readings at 0 against a prior on the scale of kW: the noise floors at
    # 1e-12 and the posterior precision fails in float64. The fit said "a twin's
    # posterior precision is not positive definite" (or "twin 3", its place in a batch).
    def scaled_emulator() -> BayesianBasisRegression:
        return BayesianBasisRegression(
            target="y",
            terms=(SplineTerm("x", 0.0, 1.0, n_segments),),
            noise_source="x",
            noise_edges=(0.0, 0.5, 1.0),
            ridge=1e-8,
            smoothing=1e-8,
        )

    rng = np.random.default_rng(0)
    stats = {}
    for k in range(3):
        x = rng.uniform(0.0, 1.0, 300)
        y = 1000.0 * ((1.0 + 0.05 * k) * x + rng.normal(0.0, 0.1, 300))
        stats[f"T{k}"] = TwinStatistics.from_emulator(scaled_emulator().update({"x": x, "y": y}))
    idle = {"x": np.array([0.1, 0.2]), "y": np.zeros(2)}
    stats["idle"] = TwinStatistics.from_emulator(scaled_emulator().update(idle))
    prior = FleetPrior.from_emulator(scaled_emulator())
    cause = (
        r": the posterior precision of its weights is not positive definite; its 2 readings "
        r"leave a smallest noise variance of 1e-12: readings that a curve of the basis fits "
        r"exactly .* expected readings that vary, or leave this twin out"
    )
    with pytest.raises(np.linalg.LinAlgError, match=r"^stats\['idle'\]" + cause):
        fit_central(stats, prior)
    with pytest.raises(np.linalg.LinAlgError, match=r"^twin 'idle'" + cause):
        fit_federated(FleetPooling(prior, ["default"]), stats)
    with pytest.raises(np.linalg.LinAlgError, match=r"^twin 'idle'" + cause):
        fit_gossip(stats, nx.cycle_graph(list(stats)), prior)
    with pytest.raises(np.linalg.LinAlgError, match=r"^stats" + cause):
        local_step(stats["idle"], initial_population(prior, ["default"]))
    # Without the idle twin the fleet fits.
    del stats["idle"]
    assert fit_central(stats, prior).converged


def test_a_twin_with_readings_in_other_units_is_warned_of() -> None:
    # A twin in MW among twins in kW moved the population mean by a fifth of its scale,
    # silently: the statistics carry no units.
    stats = {f"T{k}": TwinStatistics.from_emulator(twin(1.0 + 0.1 * k)) for k in range(3)}
    rng = np.random.default_rng(4)
    x = rng.uniform(0.0, 1.0, 300)
    in_mw = emulator().update({"x": x, "y": (x + rng.normal(0.0, 0.1, 300)) / 1000.0})
    odd = {**stats, "MW": TwinStatistics.from_emulator(in_mw)}
    prior = FleetPrior.from_emulator(emulator())
    with pytest.warns(
        UserWarning,
        match=r"stats\['MW'\]: readings 0.00\d+ times the fleet's \(root mean square .* same "
        r"noise bins; 1 twin\(s\) off by more than 100 times\): expected every twin's target "
        r"in the same units",
    ):
        fit_central(odd, prior)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_central(stats, prior)
    # A twin that has only seen the low end (a turbine in a calm spell) reads two
    # hundred times less than its fleet over all x, and about what its fleet reads
    # there: it is compared bin by bin, and not warned of.
    edges = (0.0, 0.01, 0.5, 1.0)

    def proportional(slope: float, x: np.ndarray) -> TwinStatistics:
        y = slope * x * (1.0 + rng.normal(0.0, 0.1, x.size))  # no reading where x = 0
        return TwinStatistics.from_emulator(emulator(edges=edges).update({"x": x, "y": y}))

    fine = {f"T{k}": proportional(1.0 + 0.1 * k, rng.uniform(0.0, 1.0, 3000)) for k in range(3)}
    calm = proportional(1.0, rng.uniform(0.0, 0.005, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_central({**fine, "calm": calm}, FleetPrior.from_emulator(emulator(edges=edges)))


def stats_without(stats: dict[str, TwinStatistics], name: str) -> dict[str, TwinStatistics]:
    return {k: v for k, v in stats.items() if k != name}


def test_the_same_statistics_under_two_names_are_warned_of() -> None:
    # One twin's file loaded under two names was taken for two twins that agree
    # exactly, silently: its readings counted twice and the spread between twins shrank.
    stats = {f"T{k}": TwinStatistics.from_emulator(twin(1.0 + 0.1 * k)) for k in range(3)}
    stats["T0 again"] = stats["T0"]
    prior = FleetPrior.from_emulator(emulator())
    said = r"stats\['T0'\] and stats\['T0 again'\]: the same statistics .* readings twice"
    with pytest.warns(UserWarning, match=said) as caught:
        fit_central(stats, prior)
    assert [w.filename for w in caught if "same statistics" in str(w.message)] == [__file__]
    with pytest.warns(UserWarning, match=r"T0.* and .*T0 again.*: the same statistics"):
        fit_gossip(stats, nx.complete_graph(list(stats)), prior)
    with pytest.warns(UserWarning, match=r"T0.* and .*T0 again.*: the same statistics"):
        fit_federated(FleetPooling(prior, ["default"]), stats)
    # Twins at the same bound (rated power) at other wind speeds: equal counts and sums
    # of squares, other moments. Twins without readings are alike by nature.
    x = np.linspace(0.05, 0.2, 50)
    at_bound = {
        name: TwinStatistics.from_emulator(emulator().update({"x": x + shift, "y": np.ones(50)}))
        for name, shift in (("A", 0.0), ("B", 0.25))
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_central({**stats_without(stats, "T0 again"), **at_bound}, prior)
    empty = TwinStatistics.from_emulator(emulator())
    apart = {**stats_without(stats, "T0 again"), "new": empty, "new2": empty}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_central(apart, prior)


def test_fits_print_what_they_hold_not_their_arrays() -> None:
    # print(fit) dumped every twin's covariance matrix: 9,000 characters for three
    # twins of seven weights, megabytes for La Haute Borne's.
    stats = {f"T{k}": TwinStatistics.from_emulator(twin(1.0 + 0.1 * k)) for k in range(6)}
    prior = FleetPrior.from_emulator(emulator())
    fit = fit_central(stats, prior)
    federated = fit_federated(FleetPooling(prior, ["default"]), stats)
    gossip = fit_gossip(stats, nx.cycle_graph(list(stats)), prior)
    assert repr(fit) == (
        f"FleetPosterior(twins 'T0', 'T1', 'T2', 'T3', ... (6 in all), kinds ('default',), "
        f"{fit.n_rounds} rounds, converged=True)"
    )
    assert repr(no_pooling(stats, prior)).startswith("FleetPosterior(twins 'T0'")
    assert repr(stats["T0"]) == (
        "TwinStatistics(kind='default', 300 readings, 7 features, 2 noise bins)"
    )
    assert re.fullmatch(
        r"TwinPosterior\(kind='default', 7 weights, noise variance [0-9.e-]+ to [0-9.e-]+ "
        r"over 2 bins\)",
        repr(fit.twins["T0"]),
    )
    assert fit.population is not None
    summary = local_step(stats["T0"], fit.population)
    for shown in (federated, gossip, fit.population, prior, summary):
        assert "array(" not in repr(shown) and len(repr(shown)) < 200, repr(shown)


def test_a_fleet_of_one_twin_with_readings_is_warned_of() -> None:
    # The API fitted it silently, while `twinweave fit --fleet` refuses it: from one twin
    # the spread between twins tends to zero and a new twin's intervals are too narrow.
    prior = FleetPrior.from_emulator(emulator())
    one = {"T0": TwinStatistics.from_emulator(twin(1.0))}
    empty = TwinStatistics.from_emulator(emulator())
    said = r"1 twin\(s\) with readings \(stats\['T0'\]\) of 2: the spread between twins"
    with pytest.warns(UserWarning, match=said):
        fit_central({**one, "new": empty}, prior)
    with pytest.warns(UserWarning, match=r"1 twin\(s\) with readings .* of 1: the spread"):
        fit_gossip(one, nx.complete_graph(list(one)), prior)
    with pytest.warns(UserWarning, match=r"1 twin\(s\) with readings .* of 1: the spread"):
        fit_federated(FleetPooling(prior, ["default"]), one)
    two = {**one, "T1": TwinStatistics.from_emulator(twin(1.1))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_central(two, prior)
