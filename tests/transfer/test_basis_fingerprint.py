"""A twin's statistics say which basis they belong to: two emulators of the same sizes
but other knots, noise edges, inputs or units give statistics that every fleet fit
(central, federated, gossip, from saved files) refuses by the odd twin's name."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

from twinweave.domains.wind import power_curve_emulator
from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.transfer import (
    FleetPooling,
    FleetPrior,
    TwinStatistics,
    fit_central,
    fit_federated,
    fit_gossip,
    fleet_emulator,
    load_statistics,
    save_statistics,
    twin_posterior,
)


def emulator(
    *,
    upper: float = 1.0,
    edges: tuple[float, ...] = (0.0, 0.5, 1.0),
    source: str = "x",
    units: str = "kW",
    **settings: Any,
) -> BayesianBasisRegression:
    """A spline of 7 weights in 2 noise bins, whatever the knots, edges, input or units."""
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm(source, 0.0, upper, 4),),
        noise_source=source,
        noise_edges=list(edges),
        units=units,
        **settings,
    )


# Settings of the same sizes that give the columns or bins another meaning.
OTHER = {
    "knots": lambda: emulator(upper=1.2),
    "noise edges": lambda: emulator(edges=(0.0, 0.3, 1.0)),
    "input": lambda: emulator(source="z"),
    "units": lambda: emulator(units="MW"),
}


def twin_statistics(model: BayesianBasisRegression, seed: int) -> TwinStatistics:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, 400)
    name = next(iter(model.inputs))
    y = (1.0 + 0.2 * rng.standard_normal()) * np.sin(2.0 * x) + rng.normal(0.0, 0.05, x.size)
    return TwinStatistics.from_emulator(model.update({name: x, "y": y}))


def fleet_with(odd: BayesianBasisRegression) -> dict[str, TwinStatistics]:
    """Three twins of the common emulator and, second, one of ``odd``."""
    return {
        "T0": twin_statistics(emulator(), 0),
        "odd": twin_statistics(odd, 1),
        "T2": twin_statistics(emulator(), 2),
        "T3": twin_statistics(emulator(), 3),
    }


def test_equal_settings_give_equal_fingerprints_in_this_and_another_process() -> None:
    first, second = emulator(), emulator(upper=1, edges=(0, 0.5, 1))
    assert first is not second
    assert first.basis_fingerprint == second.basis_fingerprint
    assert twin_statistics(first, 0).basis_fingerprint == first.basis_fingerprint
    assert FleetPrior.from_emulator(second).basis_fingerprint == first.basis_fingerprint
    # Not salted per process (as hash() of a string is): another interpreter agrees.
    code = (
        "from twinweave.models import BayesianBasisRegression, SplineTerm\n"
        "print(BayesianBasisRegression(target='y', terms=(SplineTerm('x', 0.0, 1.0, 4),),"
        " noise_source='x', noise_edges=[0.0, 0.5, 1.0], units='kW').basis_fingerprint)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert other == first.basis_fingerprint


def test_what_leaves_the_columns_meaning_alone_leaves_the_fingerprint_alone() -> None:
    # The prior, the bounds and forgetting are not what a weight or a bin means.
    plain = emulator().basis_fingerprint
    assert emulator(smoothing=1.0, ridge=1e-3, upper=1.0).basis_fingerprint == plain
    assert emulator(lower=0.0, forgetting=0.99, prior_mean=np.ones(7)).basis_fingerprint == plain
    # Turbines of other rated powers at other sites share one power-curve basis.
    assert (
        power_curve_emulator(2050.0).basis_fingerprint
        == power_curve_emulator(
            2300.0, site_pressure=96000.0, fallback_density=1.1
        ).basis_fingerprint
    )


@pytest.mark.parametrize("what", sorted(OTHER))
def test_settings_of_the_same_sizes_give_another_fingerprint(what: str) -> None:
    other = OTHER[what]()
    assert (other.n_features, other.n_bins) == (emulator().n_features, emulator().n_bins)
    assert other.basis_fingerprint != emulator().basis_fingerprint


@pytest.mark.parametrize("what", sorted(OTHER))
def test_the_central_fit_refuses_a_twin_of_another_basis_by_name(what: str) -> None:
    stats = fleet_with(OTHER[what]())
    prior = FleetPrior.from_emulator(emulator())
    with pytest.raises(ValueError, match=r"stats\['odd'\]: expected basis fingerprint .*knots"):
        fit_central(stats, prior)
    # A prior of the odd basis for a fleet of the common one is named as the prior.
    common = {k: s for k, s in stats.items() if k != "odd"}
    with pytest.raises(ValueError, match=r"prior: expected basis fingerprint .* \(the twins'"):
        fit_central(common, FleetPrior.from_emulator(OTHER[what]()))


def test_the_fit_names_the_twin_that_differs_from_most_without_a_prior_fingerprint() -> None:
    stats = fleet_with(OTHER["knots"]())
    # A prior built by hand has no fingerprint: the twins are compared with most twins'.
    built = FleetPrior.from_emulator(emulator())
    prior = FleetPrior(
        built.prior_mean, built.prior_precision, built.structure_precision, built.blocks
    )
    assert prior.basis_fingerprint is None
    common = stats["T0"].basis_fingerprint
    with pytest.raises(ValueError, match=rf"stats\['odd'\]: expected basis fingerprint '{common}'"):
        fit_central(stats, prior)


def test_federated_rounds_in_process_refuse_a_twin_of_other_knots_by_name() -> None:
    stats = fleet_with(OTHER["knots"]())
    strategy = FleetPooling(FleetPrior.from_emulator(emulator()), ["default"])
    with pytest.raises(ValueError, match=r"statistics\['odd'\]: expected basis fingerprint"):
        fit_federated(strategy, stats)


@pytest.mark.parametrize("what", ["knots", "noise edges"])
def test_gossip_refuses_a_twin_of_another_basis_by_name(what: str) -> None:
    stats = fleet_with(OTHER[what]())
    graph = nx.cycle_graph(list(stats))
    with pytest.raises(ValueError, match=r"\['odd'\]: expected basis fingerprint"):
        fit_gossip(stats, graph, FleetPrior.from_emulator(emulator()), seed=0)


@pytest.mark.parametrize("what", ["knots", "noise edges"])
def test_saved_statistics_keep_their_basis_and_are_refused_after_loading(
    what: str, tmp_path: Path
) -> None:
    stats = fleet_with(OTHER[what]())
    loaded = {
        twin: load_statistics(save_statistics(s, tmp_path / f"{twin}.npz"))
        for twin, s in stats.items()
    }
    assert loaded["odd"].basis_fingerprint == OTHER[what]().basis_fingerprint
    assert loaded["T0"].basis_fingerprint == emulator().basis_fingerprint
    with pytest.raises(ValueError, match=r"stats\['odd'\]: expected basis fingerprint"):
        fit_central(loaded, FleetPrior.from_emulator(emulator()))


def test_a_file_written_without_a_fingerprint_loads_and_is_compared_by_shape(
    tmp_path: Path,
) -> None:
    stats = twin_statistics(emulator(), 5)
    path = tmp_path / "old.npz"
    # What save_statistics wrote before statistics carried their basis.
    np.savez(
        path,
        gram=stats.gram,
        moment=stats.moment,
        sum_sq=stats.sum_sq,
        count=stats.count,
        kind=np.asarray(stats.kind),
    )
    old = load_statistics(path)
    assert old.basis_fingerprint is None
    np.testing.assert_array_equal(old.gram, stats.gram)
    fleet = {"T0": twin_statistics(emulator(), 0), "old": old}
    fit = fit_central(fleet, FleetPrior.from_emulator(emulator()), tol=1e-4)
    assert fit.n_rounds >= 1


@pytest.mark.parametrize(
    "build",
    [
        lambda s: TwinStatistics(s.gram, s.moment, s.sum_sq, s.count),
        lambda s: TwinStatistics(s.gram, s.moment, s.sum_sq, s.count, basis_fingerprint=None),
    ],
)
def test_statistics_built_by_hand_have_no_fingerprint_and_pool_by_shape(
    build: Callable[[TwinStatistics], TwinStatistics],
) -> None:
    by_hand = build(twin_statistics(emulator(), 6))
    assert by_hand.basis_fingerprint is None
    fleet = {"T0": twin_statistics(emulator(), 0), "hand": by_hand}
    assert fit_central(fleet, FleetPrior.from_emulator(emulator()), tol=1e-4).n_rounds >= 1
    # A twin of another basis is refused beside it all the same.
    fleet["odd"] = twin_statistics(OTHER["knots"](), 1)
    with pytest.raises(ValueError, match=r"stats\['odd'\]: expected basis fingerprint"):
        fit_central(fleet, FleetPrior.from_emulator(emulator()))


def test_pooled_statistics_keep_the_fingerprint_and_a_bad_one_is_refused() -> None:
    parts = [twin_statistics(emulator(), seed) for seed in (0, 1)]
    assert TwinStatistics.pooled(parts).basis_fingerprint == emulator().basis_fingerprint
    s = parts[0]
    with pytest.raises(TypeError, match="basis_fingerprint: expected None or"):
        TwinStatistics(s.gram, s.moment, s.sum_sq, s.count, basis_fingerprint=b"ab")  # type: ignore[arg-type]


@pytest.mark.parametrize("what", sorted(OTHER))
def test_a_twin_meeting_the_fleets_population_is_refused_of_another_basis(what: str) -> None:
    """A new twin born into the fleet (fleet_emulator) and a twin's posterior given the
    population (twin_posterior) compare with the population's basis, not its sizes."""
    stats = fleet_with(emulator())
    population = fit_central(stats, FleetPrior.from_emulator(emulator())).population
    odd = OTHER[what]()
    expected = emulator().basis_fingerprint
    with pytest.raises(ValueError, match=rf"emulator: expected the fleet's basis, .*'{expected}'"):
        fleet_emulator(odd, population, "default")
    with pytest.raises(ValueError, match=rf"stats\[0\]: expected .*'{expected}' \(the prior's\)"):
        twin_posterior(twin_statistics(odd, 5), population)
    fleet_emulator(emulator(), population, "default")
    twin_posterior(twin_statistics(emulator(), 5), population)


def test_twins_that_split_evenly_are_named_against_the_first() -> None:
    stats = {"a": twin_statistics(emulator(), 0), "b": twin_statistics(OTHER["knots"](), 1)}
    built = FleetPrior.from_emulator(emulator())
    no_fingerprint = FleetPrior(
        built.prior_mean, built.prior_precision, built.structure_precision, built.blocks
    )
    with pytest.raises(ValueError, match=r"stats\['b'\]: .* \(the first twin's: no fingerpr"):
        fit_central(stats, no_fingerprint)


def test_a_derived_inputs_meaning_is_in_the_fingerprint_its_site_is_not() -> None:
    from twinweave.domains.wind import NormalisedWindSpeed
    from twinweave.models._basis import canonical_text

    site = canonical_text(NormalisedWindSpeed(101_325.0))
    assert canonical_text(NormalisedWindSpeed(95_000.0, fallback_density=1.1)) == site
    assert canonical_text(NormalisedWindSpeed(101_325.0, reference_density=1.0)) != site
    # Functions by name: another transform is another basis.
    assert canonical_text(np.log) != canonical_text(np.sqrt)


def test_a_federated_runs_files_keep_the_fleets_basis(tmp_path: Path) -> None:
    """The coordinator's fleet file and a run's result keep the basis fingerprint, so a
    twin born from a population a Flower run returned is checked against it."""
    from twinweave.transfer import FederatedResult, initial_population
    from twinweave.transfer._flower import load_fleet, read_result, save_fleet, write_result

    prior = FleetPrior.from_emulator(emulator())
    start = initial_population(prior, ["default"])
    save_fleet(prior, ["default"], tmp_path / "fleet.npz", start)
    loaded, kinds, population = load_fleet(tmp_path / "fleet.npz")
    assert kinds == ("default",) and population is not None
    assert loaded.basis_fingerprint == population.prior.basis_fingerprint == prior.basis_fingerprint
    fitted = fit_central(fleet_with(emulator()), prior).population
    write_result(tmp_path, FederatedResult(fitted, (), True, ("T0",)))
    returned = read_result(tmp_path).population
    assert returned.prior.basis_fingerprint == prior.basis_fingerprint
    with pytest.raises(ValueError, match=r"emulator: expected the fleet's basis"):
        fleet_emulator(OTHER["knots"](), returned, "default")


@pytest.mark.parametrize("what", sorted(OTHER))
def test_a_twin_over_flower_refuses_a_population_of_another_basis(
    tmp_path: Path, what: str
) -> None:
    """The population a Flower round sends down carries the fleet's fingerprint beside its
    arrays, and a twin's ClientApp refuses one fitted for another basis, naming the twin
    and both fingerprints; one without a fingerprint (a prior built by hand) it takes."""
    from twinweave.transfer import initial_population, local_step
    from twinweave.transfer._federated import FitIns
    from twinweave.transfer.flower_app import answer, fit_ins_content, fit_ins_from_content

    prior = FleetPrior.from_emulator(emulator())
    population = fit_central(fleet_with(emulator()), prior, tol=1e-4).population
    content = fit_ins_content(FitIns(3, population))
    assert content.config_records["fit"]["basis-fingerprint"] == prior.basis_fingerprint
    assert fit_ins_from_content(content).population.prior.basis_fingerprint == (
        prior.basis_fingerprint
    )
    own = twin_statistics(emulator(), 7)
    result = answer("T7", save_statistics(own, tmp_path / "T7.npz"), content)
    assert (result.server_round, result.twin_ids) == (3, ("T7",))
    for key, value in local_step(own, population).to_arrays().items():
        np.testing.assert_array_equal(result.summary.to_arrays()[key], value)
    # Of the same shapes: local_step alone would pool it without a word.
    odd = OTHER[what]()
    path = save_statistics(twin_statistics(odd, 8), tmp_path / "odd.npz")
    with pytest.raises(
        RuntimeError,
        match=rf"twin 'odd': ValueError: population: expected basis fingerprint "
        rf"'{odd.basis_fingerprint}' \(the twin's statistics'\), got "
        rf"'{prior.basis_fingerprint}' \(the fleet prior's\)",
    ):
        answer("odd", path, content)
    by_hand = FleetPrior(
        prior.prior_mean, prior.prior_precision, prior.structure_precision, prior.blocks
    )
    content = fit_ins_content(FitIns(1, initial_population(by_hand, ["default"])))
    assert content.config_records["fit"]["basis-fingerprint"] == ""
    assert answer("odd", path, content).twin_ids == ("odd",)
    # A server of a version before fingerprints travelled: shapes alone, as by hand.
    del content.config_records["fit"]["basis-fingerprint"]
    assert answer("odd", path, content).twin_ids == ("odd",)
