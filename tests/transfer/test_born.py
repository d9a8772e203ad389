"""A twin born into its fleet: an emulator whose prior is the fleet's population."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinweave.checks._problems import PumpCurve, pump_emulator
from twinweave.data import Store, clean, read_source
from twinweave.demo import check_fleet_turbines, fleet_statistics, leave_one_out_fits
from twinweave.domains.wind import (
    LA_HAUTE_BORNE,
    TurbineSpec,
    build_turbine_twin,
    generic_power_curve,
    model_inputs,
    normal_operation_checks,
    scada_path,
    turbine_emulator,
)
from twinweave.models import BayesianBasisRegression
from twinweave.transfer import (
    FleetPosterior,
    FleetPrior,
    TwinStatistics,
    fit_central,
    fleet_emulator,
    initial_population,
    load_population,
    save_population,
    save_statistics,
    transfer_scores,
)


def pump_fleet(n_twins: int, seed: int) -> tuple[dict[str, TwinStatistics], FleetPrior]:
    """Pumps whose curves differ by a scale (sd 10 %), 2,000 readings each."""
    rng = np.random.default_rng(seed)
    problem = PumpCurve()
    stats = {}
    for k in range(n_twins):
        data = problem.observations(2_000, seed=rng)
        data["power"] = (1.0 + 0.1 * rng.standard_normal()) * data["power"]
        stats[f"P{k}"] = TwinStatistics.from_emulator(pump_emulator().update(data))
    return stats, FleetPrior.from_emulator(pump_emulator())


@pytest.fixture(scope="module")
def pumps() -> FleetPosterior:
    stats, prior = pump_fleet(6, seed=1)
    return fit_central(stats, prior, tol=1e-8)


def test_before_any_reading_it_predicts_what_the_fleet_predicts_for_a_new_twin(
    pumps: FleetPosterior,
) -> None:
    born = fleet_emulator(pump_emulator(), pumps.population)
    flow = {"flow": np.linspace(0.0, 10.0, 41)}
    ours, fleets = born.predict(flow), pumps.predict(None, flow, pump_emulator())
    np.testing.assert_allclose(ours.loc, fleets.loc, rtol=1e-10)
    np.testing.assert_allclose(ours.latent_var, fleets.latent_var, rtol=1e-8)
    levels = [0.05, 0.5, 0.95]
    np.testing.assert_allclose(ours.quantile(levels), fleets.quantile(levels), rtol=1e-8)


def test_a_new_pump_with_few_readings_learns_its_curve_from_the_fleet(
    pumps: FleetPosterior,
) -> None:
    problem = PumpCurve()
    grid = np.linspace(0.5, 9.5, 19)
    errors: dict[str, list[float]] = {"born": [], "alone": []}
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        scale = 1.0 + 0.1 * rng.standard_normal()
        data = problem.observations(15, seed=rng)
        data["power"] = scale * data["power"]
        truth = scale * problem.curve(grid)
        for label, model in (
            ("born", fleet_emulator(pump_emulator(), pumps.population)),
            ("alone", pump_emulator()),
        ):
            mean = model.update(data).predict({"flow": grid}).mean
            errors[label].append(float(np.sqrt(np.mean((mean - truth) ** 2))))
    # Fifteen readings leave a lone pump's curve unknown between them; the fleet's
    # shape fills it in.
    # (A sign test: 30 of 40 has p = 0.001 were the two as good.)
    assert np.median(errors["born"]) < 0.7 * np.median(errors["alone"])
    assert np.count_nonzero(np.less(errors["born"], errors["alone"])) >= 30


def test_a_population_saved_and_loaded_gives_the_same_twin(
    pumps: FleetPosterior, tmp_path: Path
) -> None:
    # A fleet fitted today, a twin born into it next month: the population is kept in a
    # file, not the twins' statistics.
    assert pumps.population is not None
    path = save_population(pumps.population, tmp_path / "pumps.npz")
    loaded = load_population(path)
    assert loaded.kinds == pumps.population.kinds
    assert loaded.prior.basis_fingerprint == pumps.population.prior.basis_fingerprint
    for name, value in pumps.population.to_arrays().items():
        np.testing.assert_array_equal(loaded.to_arrays()[name], value, err_msg=name)
    flow = {"flow": np.linspace(0.0, 10.0, 41)}
    before = fleet_emulator(pump_emulator(), pumps.population).predict(flow)
    after = fleet_emulator(pump_emulator(), loaded).predict(flow)
    np.testing.assert_array_equal(after.mean, before.mean)
    np.testing.assert_array_equal(after.var, before.var)
    statistics = tmp_path / "statistics.npz"
    save_statistics(TwinStatistics.from_emulator(pump_emulator()), statistics)
    with pytest.raises(ValueError, match=r"statistics.npz: expected a population written by"):
        load_population(statistics)
    with pytest.raises(TypeError, match=r"population: expected a Population"):
        save_population(pumps, tmp_path / "fit.npz")  # type: ignore[arg-type]
    # It named the file written aside, "x.npz.part", as the one not found.
    with pytest.raises(FileNotFoundError, match=r"expected a file in an existing folder, got "):
        save_population(pumps.population, tmp_path / "no-such-folder" / "x.npz")


def test_it_refuses_a_population_it_cannot_start_from(pumps: FleetPosterior) -> None:
    unknown = r"kind 'turbine': expected one of the population's kinds \('default'\)"
    with pytest.raises(KeyError, match=unknown):
        fleet_emulator(pump_emulator(), pumps.population, "turbine")
    other = BayesianBasisRegression(**{**pump_emulator().get_params(), "noise_edges": [0, 5, 10]})
    with pytest.raises(ValueError, match=r"emulator: expected the fleet's basis \(23 features, 5"):
        fleet_emulator(other, pumps.population)
    before = initial_population(FleetPrior.from_emulator(pump_emulator()), ["default"])
    with pytest.raises(ValueError, match="population: expected one with noise variances"):
        fleet_emulator(pump_emulator(), before)
    with pytest.raises(TypeError, match="emulator"):
        fleet_emulator("pump", pumps.population)  # type: ignore[arg-type]
    # Configured otherwise than the fleet's twins: another prior curve (a turbine of
    # another rated power starts from another one).
    moved = {**pump_emulator().get_params(), "prior_mean": np.ones(pump_emulator().n_features)}
    with pytest.raises(ValueError, match=r"emulator: expected the settings the fleet's twins"):
        fleet_emulator(BayesianBasisRegression(**moved), pumps.population)


def test_a_fleet_to_be_born_into_is_three_turbines_or_more_of_one_rated_power() -> None:
    specs = {a: TurbineSpec(a, rated_power=2050.0, elevation=411.0) for a in ("A", "B", "C")}
    check_fleet_turbines(specs, "pooled")
    # From one other twin the spread between twins cannot be learned.
    with pytest.raises(ValueError, match=r"pooled: .* at least 2 other turbines .* found 2 in"):
        check_fleet_turbines({a: specs[a] for a in ("A", "B")}, "pooled")
    mixed = {**specs, "D": TurbineSpec("D", rated_power=3000.0, elevation=411.0)}
    with pytest.raises(ValueError, match=r"one rated power .* 2050 kW: A, B, C; 3000 kW: D"):
        check_fleet_turbines(mixed, "--fleet")


def test_a_fleet_whose_turbines_read_different_inputs_is_refused_by_name() -> None:
    # C's readings have no direction: its curve could not vary with it, the others' would.
    rng = np.random.default_rng(4)
    time = pd.date_range("2014-01-01", periods=500, freq="10min", tz="UTC")
    specs = {a: TurbineSpec(a, rated_power=2050.0, elevation=411.0) for a in ("A", "B", "C")}
    trainings = {
        a: pd.DataFrame(
            {
                "time": time,
                "wind_speed": rng.uniform(3.0, 15.0, time.size),
                "power": rng.uniform(0.0, 2050.0, time.size),
                "temp_air": rng.normal(10.0, 5.0, time.size),
                "wind_direction": rng.uniform(0.0, 360.0, time.size) if a != "C" else np.nan,
            }
        )
        for a in specs
    }
    expected = (
        r"turbines: expected readings of wind direction and temperature at every turbine "
        r"or at none .* got A: wind_direction, temp_air; B: wind_direction, temp_air; "
        r"C: temp_air"
    )
    with pytest.raises(ValueError, match=expected):
        leave_one_out_fits(specs, trainings)


def synthetic_turbine(seed: int, n: int = 3_000) -> pd.DataFrame:
    """Two weeks of 10-minute readings of a turbine with a generic curve, whose output
    falls with temperature and varies with direction (the truth is not what is tested)."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(2.0, 18.0, n)
    temperature = rng.uniform(-5.0, 25.0, n)
    direction = rng.uniform(0.0, 360.0, n)
    shape = 1.0 - 0.004 * (temperature - 10.0) + 0.03 * np.cos(np.radians(direction))
    power = generic_power_curve(speed, 2050.0) * shape + rng.normal(0.0, 30.0, n)
    return pd.DataFrame(
        {
            "time": pd.date_range("2014-01-06", periods=n, freq="10min", tz="UTC"),
            "wind_speed": speed,
            "power": np.clip(power, 0.0, 2050.0),
            "temp_air": temperature,
            "wind_direction": direction,
        }
    )


def test_a_turbine_born_before_any_reading_or_without_a_sensor_predicts_as_its_fleet() -> None:
    # Walk-through 2026-11-30: with no readings (or none of temperature) the twin's
    # emulator lacked the fleet's direction and temperature terms and was refused.
    spec = TurbineSpec("new", rated_power=2050.0, elevation=100.0)
    fleet = {f"T{i}": fleet_statistics(spec, synthetic_turbine(i)) for i in range(3)}
    prior = FleetPrior.from_emulator(turbine_emulator(spec, synthetic_turbine(0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a round limit is not what is tested here
        fitted = fit_central(fleet, prior, tol=1e-3, n_rounds=30)
    assert fitted.population is not None
    inputs = {
        "wind_speed": np.array([5.0, 9.0, 13.0]),
        "temp_air": np.array([0.0, 10.0, 20.0]),
        "wind_direction": np.array([0.0, 90.0, 180.0]),
    }
    design = turbine_emulator(spec, synthetic_turbine(0))
    expected = fitted.predict(None, inputs, design)
    no_temperature = synthetic_turbine(5, n=200).drop(columns=["temp_air"])
    for training in (synthetic_turbine(5, n=0), no_temperature):
        twin = build_turbine_twin(spec, training, population=fitted.population)
        predicted = twin.predict(inputs)
        np.testing.assert_allclose(predicted.mean, expected.mean, rtol=1e-8)
        np.testing.assert_allclose(predicted.var, expected.var, rtol=1e-8)
    # The fit itself, not its population: refused by name, not deep inside.
    with pytest.raises(TypeError, match=r"population: expected a Population \(a fit's .popul"):
        build_turbine_twin(spec, synthetic_turbine(5, n=0), population=fitted)  # type: ignore[arg-type]
    # A turbine of another rated power is not born from this fleet's curve.
    larger = TurbineSpec("new", rated_power=3000.0, elevation=100.0)
    with pytest.raises(ValueError, match=r"its prior mean differs from the fleet's by up to"):
        build_turbine_twin(larger, synthetic_turbine(5, n=0), population=fitted.population)


# -- on La Haute Borne -----------------------------------------------------------------------
SPEC = {a: TurbineSpec(a, rated_power=2050.0, elevation=411.0) for a in ("R80736", "R80790")}


@pytest.mark.slow
def test_a_new_turbine_born_into_its_fleet_beats_one_alone_and_restores_exactly(
    tmp_path: Path,
) -> None:
    _, raw = read_source(scada_path(), LA_HAUTE_BORNE)
    observations, _ = clean(raw, normal_operation_checks(2050.0))
    year_2014 = observations[observations["time"] < "2015-01-01"]
    held_out = observations[observations["time"] >= "2015-01-01"]
    for new, spec in SPEC.items():
        others = year_2014[year_2014["asset_id"] != new].groupby("asset_id")
        fleet = {asset: fleet_statistics(spec, readings) for asset, readings in others}
        prior = FleetPrior.from_emulator(turbine_emulator(spec, year_2014))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a round limit is not what is tested here
            population = fit_central(fleet, prior, tol=1e-4).population
        own = year_2014[year_2014["asset_id"] == new]
        target = model_inputs(held_out[held_out["asset_id"] == new], 2050.0)
        for until in ("2014-01-02", "2014-01-08"):  # a day, a week
            training = own[own["time"] < until]
            scored = {}
            for label, start in (("born", population), ("alone", None)):
                twin = build_turbine_twin(
                    spec, training, forgetting=1 - 1 / 13_140, population=start
                )
                twin.update(model_inputs(training, 2050.0))
                scored[label] = transfer_scores(twin.predict(target), target["power"])
            born, alone = scored["born"], scored["alone"]
            assert born["nmse"] < 0.6 * alone["nmse"], (new, until, born, alone)
            assert born["crps"] < 0.9 * alone["crps"], (new, until, born, alone)
        # Stored and restored, a born twin predicts bit for bit as before.
        twin = build_turbine_twin(spec, training, population=population)
        twin.update(model_inputs(training, 2050.0))
        with Store(tmp_path / f"{new}.duckdb") as store:
            store.save_twin(twin)
            restored = store.load_twin(new)
        np.testing.assert_array_equal(restored.predict(target).mean, twin.predict(target).mean)
        np.testing.assert_array_equal(restored.predict(target).var, twin.predict(target).var)
