"""The twin learns how its residuals are correlated in time and carries it into predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from twinweave.core import (
    CensoredNormal,
    Derate,
    ExponentialCorrelation,
    ResidualCorrelation,
    Stop,
    Telemetry,
    Twin,
    TwinSchema,
    WhatIfResult,
    column,
    compare,
    same_unit,
    time_steps_hours,
    usual_step_hours,
)
from twinweave.domains.wind import Energy
from twinweave.models import BayesianBasisRegression, SplineTerm

STEP = 600.0  # [s]
RHO = 0.7


def pump(
    correlation: ResidualCorrelation | None = None, *, unit: str = "kW", rated: float = 50
) -> Twin:
    schema = TwinSchema(
        name="Pump",
        telemetry=[
            Telemetry(name="flow", unit="m^3/h"),
            Telemetry(name="power", unit=unit, lower=0, upper=rated),
        ],
    )
    emulator = BayesianBasisRegression(
        target="power",
        terms=(SplineTerm("flow", 0, 10, 8),),
        noise_source="flow",
        noise_edges=[0, 10],
        lower=0,
        upper=rated,
        units=unit,
    )
    return Twin("pump-1", schema, emulator, residual_correlation=correlation)


def readings(n: int, seed: int, start: float = 1.42e9) -> dict[str, np.ndarray]:
    """Pump power with AR(1) noise (coefficient RHO per 10 minutes) [kW]."""
    rng = np.random.default_rng(seed)
    times = start + STEP * np.arange(n)
    flow = 5 + 3 * np.sin(np.arange(n) / 50) + rng.normal(0, 0.3, n)
    noise = 1.5 * ExponentialCorrelation.ar1(RHO, STEP).sample(times, 1, rng)[0]
    return {
        "time": times.astype("datetime64[s]"),
        "flow": flow,
        "power": np.clip(4 * flow + noise, 0, 50),
    }


def test_twin_learns_the_correlation_and_predictions_carry_it() -> None:
    twin = pump(ResidualCorrelation()).update(readings(20_000, seed=1))
    learnt = twin.noise_correlation_
    assert learnt is not None
    assert float(learnt(STEP)[()]) == pytest.approx(RHO, abs=0.03)
    assert float(learnt(6 * STEP)[()]) == pytest.approx(RHO**6, abs=0.03)
    new = readings(100, seed=2, start=1.5e9)
    predictive = twin.predict(new)
    assert predictive.correlation == learnt
    assert predictive.times is not None and predictive.times[1] - predictive.times[0] == STEP
    without_time = twin.predict({"flow": new["flow"]})
    assert without_time.correlation is None
    assert np.array_equal(without_time.mean, predictive.mean)


def test_a_twin_without_a_learner_or_times_keeps_noise_independent() -> None:
    assert pump().update(readings(2_000, seed=3)).noise_correlation_ is None
    data = readings(2_000, seed=3)
    del data["time"]
    assert pump(ResidualCorrelation()).update(data).noise_correlation_ is None


def test_a_branch_learns_apart_from_its_parent() -> None:
    twin = pump(ResidualCorrelation()).update(readings(5_000, seed=4))
    before = twin.noise_correlation_
    branch = twin.branch(Derate(20.0))
    assert branch.noise_correlation_ == before
    branch.update(readings(5_000, seed=5, start=1.6e9))
    assert twin.noise_correlation_ == before
    assert branch.noise_correlation_ != before
    # Interventions keep the times and the correlation of the prediction.
    predictive = branch.predict(readings(50, seed=6, start=1.7e9))
    assert predictive.upper == 20.0 and predictive.correlation == branch.noise_correlation_


def test_compare_samples_paths_correlated_in_time() -> None:
    twin = pump(ResidualCorrelation()).update(readings(20_000, seed=7))
    learnt = twin.noise_correlation_
    assert learnt is not None
    week = readings(1_008, seed=8, start=1.5e9)

    def total(paths: np.ndarray) -> np.ndarray:
        return paths.sum(axis=1)

    class Total:
        name, units = "total", "kW"

        def __call__(self, paths: np.ndarray) -> np.ndarray:
            return total(paths)

    branch = twin.branch(Derate(60.0))  # never binds: the difference must be zero
    result = compare(twin, branch, week, [Total()], n_samples=4_000, seed=9)
    spread = result.baseline[:, 0].std()
    predictive = twin.predict(week)
    times = predictive.times
    assert times is not None
    std = np.sqrt(predictive.noise_var)
    expected = np.sqrt(std @ learnt(times[:, None] - times[None, :]) @ std)
    # Points sit far from the bounds, so the sum's spread is the latent one.
    assert spread == pytest.approx(expected, rel=0.06)
    assert np.array_equal(result.baseline, result.scenario)
    del week["time"]
    with pytest.warns(UserWarning, match="no 'time' column"):
        narrow = compare(twin, branch, week, [Total()], n_samples=4_000, seed=9)
    # Independent noise: the spread of a week's sum is about 2.4 times too small.
    assert narrow.baseline[:, 0].std() < 0.5 * spread
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = pump().update(readings(500, seed=10))
        compare(plain, plain.branch(), week, [Total()], n_samples=20)


def test_an_update_refused_for_its_times_leaves_the_twin_as_it_was() -> None:
    twin = pump(ResidualCorrelation()).update(readings(2_000, seed=7))
    grid = {"flow": np.linspace(0.5, 9.5, 10)}
    before = twin.predict(grid).mean.copy()
    n_before = twin.emulator.n_observations_
    bad = readings(500, seed=8, start=1.5e9)
    bad["time"] = bad["time"][:-1]  # one time short
    with pytest.raises(ValueError, match="time: expected 500 times"):
        twin.update(bad)
    assert twin.emulator.n_observations_ == n_before
    np.testing.assert_array_equal(twin.predict(grid).mean, before)


def test_compare_refuses_no_samples_and_a_level_outside_zero_one() -> None:
    twin = pump().update(readings(500, seed=12))
    week = readings(100, seed=13, start=1.5e9)

    class Total:
        name, units = "total", "kW"

        def __call__(self, paths: np.ndarray) -> np.ndarray:
            return paths.sum(axis=1)

    with pytest.raises(ValueError, match=r"n_samples: expected at least 20 .* got 0"):
        compare(twin, twin.branch(), week, [Total()], n_samples=0)
    # Fewer than 20 paths put less than one path in each tail of a 90 % interval.
    with pytest.raises(ValueError, match=r"n_samples: expected at least 20 .*90%.* got 19"):
        compare(twin, twin.branch(), week, [Total()], n_samples=19)
    with pytest.raises(ValueError, match=r"n_samples: expected at least 40 .*95%.* got 39"):
        compare(twin, twin.branch(), week, [Total()], n_samples=39, level=0.95)
    compare(twin, twin.branch(), week, [Total()], n_samples=40, level=0.95)
    with pytest.raises(ValueError, match=r"level: expected a probability in \(0, 1\)"):
        compare(twin, twin.branch(), week, [Total()], n_samples=10, level=1.5)
    with pytest.raises(ValueError, match=r"level: expected a probability in \(0, 1\), got '0.9'"):
        compare(twin, twin.branch(), week, [Total()], level="0.9")  # type: ignore[arg-type]
    # The least number of paths the level needs, not 0.
    with pytest.raises(ValueError, match=r"n_samples: expected an integer >= 20, got 500.0"):
        compare(twin, twin.branch(), week, [Total()], n_samples=500.0)  # type: ignore[arg-type]
    # numpy's own errors named no argument.
    for seed in (-1, 1.5, "1"):
        with pytest.raises(ValueError, match=r"seed \(or None, or a numpy Generator\): expected"):
            compare(twin, twin.branch(), week, [Total()], seed=seed)  # type: ignore[arg-type]
    # A branch of a branch compared with its parent differs by its own interventions.
    derated = twin.branch(Derate(40.0))
    result = compare(derated, derated.branch(Stop()), week, [Total()], n_samples=20)
    assert result.interventions == "stop", result.interventions
    # The other way round, and between two branches, the label still says what differs
    # (it said 'derate to 40' of two twins both derated, and '' of the branch and live).
    stopped = derated.branch(Stop())
    said = compare(stopped, derated, week, [Total()], n_samples=20).interventions
    assert said == "without the baseline's stop", said
    said = compare(derated, twin, week, [Total()], n_samples=20).interventions
    assert said.startswith("without the baseline's derate to 40"), said
    said = compare(derated, twin.branch(Stop()), week, [Total()], n_samples=20).interventions
    assert said.startswith("stop (without the baseline's derate to 40"), said
    # No rows: no quantity to report, where the mean of none was NaN with warnings.
    empty = {name: column[:0] for name, column in week.items()}
    for no_rows in (empty, {"flow": np.empty(0), "temp": 10.0}, {}):
        with pytest.raises(ValueError, match=r"inputs: expected at least one row, got none"):
            compare(twin, twin.branch(), no_rows, [Total()])


def test_a_derate_below_the_targets_lower_bound_is_refused_at_branching() -> None:
    twin = pump().update(readings(200, seed=14))
    with pytest.raises(ValueError, match=r"derate: .* lower bound 0 kW, got -5; a stop is"):
        twin.branch(Derate(-5.0))
    with pytest.raises(ValueError, match=r"derate: .* target's unit 'kW', got 1500 W"):
        twin.branch(Derate(1500.0, units="W"))
    twin.branch(Derate(0.0))


def test_a_what_if_table_reports_the_samples_own_quantiles_at_its_level() -> None:
    """Each row's interval is the central ``level`` of its samples, and the difference
    is taken path by path (common random numbers), not between the two intervals."""
    rng = np.random.default_rng(14)
    baseline = rng.normal(100.0, 10.0, (2_001, 2))
    scenario = baseline - rng.uniform(0.0, 5.0, (2_001, 2))
    result = WhatIfResult(("energy", "hours"), ("MWh", "h"), baseline, scenario, 0.8, "x")
    frame = result.to_frame().set_index("metric")
    for k, name in enumerate(("energy", "hours")):
        for label, values in (
            ("baseline", baseline[:, k]),
            ("scenario", scenario[:, k]),
            ("difference", scenario[:, k] - baseline[:, k]),
        ):
            ordered = np.sort(values)
            # With 2,001 samples the 10 % and 90 % quantiles are order statistics.
            assert frame.loc[name, f"{label}_lo"] == ordered[200]
            assert frame.loc[name, f"{label}_hi"] == ordered[1_800]
            assert frame.loc[name, f"{label}_mean"] == pytest.approx(values.mean())
        # Path by path the difference lies in [-5, 0]; between intervals it would not.
        assert -5.0 <= frame.loc[name, "difference_lo"] < frame.loc[name, "difference_hi"] <= 0
    assert list(frame["units"]) == ["MWh", "h"]


def test_a_what_if_names_the_provenance_of_both_predictions() -> None:
    from twinweave.provenance import Recorder

    live = pump()
    recorder = Recorder()
    twin = Twin("pump-1", live.schema, live.emulator, recorder=recorder)
    twin.update(readings(500, seed=15))
    branch = twin.branch(Derate(30.0))

    class Total:
        name, units = "total", "kW"

        def __call__(self, paths: np.ndarray) -> np.ndarray:
            return np.asarray(paths.sum(axis=1))

    result = compare(twin, branch, readings(144, seed=16, start=1.5e9), [Total()], seed=3)
    assert result.predictions == (twin.last_prediction_, branch.last_prediction_)
    assert None not in result.predictions
    # The live twin's prediction is in its recorder; the branch's in the branch's fork,
    # whose chain leads through the branch to the live twin's fit.
    assert recorder.get(result.predictions[0]).kind == "prediction"
    assert branch.recorder is not None
    kinds = [r.kind for r in branch.recorder.chain(result.predictions[1])]
    assert kinds[-1] == "prediction" and "branch" in kinds and "fit" in kinds
    assert compare(pump(), pump().branch(), readings(3, seed=17), [Total()]).predictions == (
        None,
        None,
    )


def test_a_fit_record_counts_the_readings_and_the_weight_held() -> None:
    from twinweave.provenance import Recorder

    live = pump()
    emulator = live.emulator
    assert isinstance(emulator, BayesianBasisRegression)
    recorder = Recorder()
    twin = Twin(
        "pump-1",
        live.schema,
        BayesianBasisRegression(**{**emulator.get_params(), "forgetting": 0.99}),
        recorder=recorder,
    )
    for seed in (1, 2):
        twin.update(readings(500, seed=seed))
    fits = [r for r in recorder.records() if r.kind == "fit"]
    assert len(fits) == 2
    # The readings of this update, and the weight the emulator holds after forgetting
    # (about 1 / (1 - 0.99) readings), not a count of the readings ever seen.
    assert fits[-1].attributes["n_readings"] == 500
    assert 90 < float(fits[-1].attributes["weight_of_readings_held"]) < 101  # type: ignore[arg-type]
    # And the forgetting factor that weight depends on (the fit's record left it out).
    assert fits[-1].attributes["forgetting"] == 0.99


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"units": "W"}, r"predicts power in 'W', expected the unit schema 'Pump' gives it, 'kW'"),
        ({"units": ""}, r"predicts power in '', expected"),
        ({"units": "kilowattz"}, r"unknown unit 'kilowattz'"),
        (
            {"upper": 60.0},
            r"bounds power to \[0, 60.0\], expected within the bounds schema 'Pump' gives it, \[0",
        ),
        ({"lower": -np.inf}, r"bounds power to \[-inf, 50\]"),
    ],
)
def test_an_emulator_that_breaks_the_schemas_promise_is_refused(
    changes: dict[str, object], message: str
) -> None:
    # The schema says power is in kW within [0, 50]: an emulator predicting in another
    # unit, or censoring to wider bounds, would put numbers outside it.
    params = pump().emulator.get_params()
    params.update(changes)
    with pytest.raises(ValueError, match=message):
        Twin("pump-1", pump().schema, BayesianBasisRegression(**params))


def test_an_emulator_with_narrower_bounds_or_the_same_unit_spelt_otherwise_is_taken() -> None:
    params = pump().emulator.get_params()
    params.update(upper=45.0, units="kilowatt")
    twin = Twin("pump-1", pump().schema, BayesianBasisRegression(**params))
    assert twin.predict({"flow": [9.0]}).quantile(0.999)[0] <= 45.0
    # Spelt as another unit of factor 1 (review: "kW*h" for a schema's "kWh" was refused).
    params.update(units="J/ms")
    Twin("pump-1", pump().schema, BayesianBasisRegression(**params))


def test_one_unit_is_told_from_another_by_factor_and_offset() -> None:
    assert same_unit("kWh", "kW*h") and same_unit("W", "J/s") and same_unit("percent", "%")
    assert not same_unit("kW", "W") and not same_unit("degC", "K")
    assert not same_unit("N*m", "m")


def test_columns_read_pandas_missing_values_as_missing() -> None:
    # A nullable boolean (a switch's state) with a gap: NaN, as a float column's gap is.
    switch = pd.array([True, None, False], dtype="boolean")
    np.testing.assert_array_equal(column({"on": switch}, "on"), [1.0, np.nan, 0.0])
    # Text is refused, numbers written as text too ("1e1" was read as 10), as SetInputs
    # and the data pathway refuse it; the first text is named.
    for text in (["1", "off"], np.array(["1e1"]), pd.Series([2.0, "x"], dtype=object)):
        with pytest.raises(ValueError, match=r"on: expected numbers, got the text '(1|1e1|x)'"):
            column({"on": text}, "on")
    np.testing.assert_array_equal(column({"on": [True, False]}, "on"), [1.0, 0.0])


def test_time_steps_group_a_loggers_jitter_and_keep_steps_as_they_are() -> None:
    # One second and two, 70 s and 90 s: each its own step, exactly.
    for first, second in ((1.0, 2.0), (70.0, 90.0)):
        seconds = np.cumsum(np.r_[0.0, np.full(300, first), np.full(200, second)])
        assert usual_step_hours(seconds) == first / 3600.0
        assert sorted(set(time_steps_hours(seconds) * 3600.0)) == [first, second]
    # 10-minute stamps each up to a second late: one step, within the jitter of 600 s.
    rng = np.random.default_rng(3)
    jittered = 600.0 * np.arange(500) + rng.uniform(0.0, 1.0, 500)
    assert np.unique(time_steps_hours(jittered)).size == 1
    assert usual_step_hours(jittered) == pytest.approx(600.0 / 3600.0, abs=1.0 / 3600.0)
    # Steps growing by 0.9 % each are not one step: a group spans 1 % of its shortest
    # (grouping each step with the one before chained 600 s to 3,569 s into one).
    chain = np.cumsum(np.r_[0.0, 600.0 * 1.009 ** np.arange(200)])
    assert usual_step_hours(chain) == pytest.approx(600.0 / 3600.0, rel=0.01)
    assert np.unique(time_steps_hours(chain)).size == 100  # pairs, not one group
    with pytest.raises(ValueError, match="time: expected times, got NaN"):
        time_steps_hours([0.0, np.nan, 600.0])


def test_a_branchs_emulator_handed_out_is_its_own() -> None:
    # The branch shared the live twin's emulator object: updating it through the
    # attribute changed the live twin's predictions.
    twin = pump().update(readings(2_000, seed=20))
    flow = {"flow": np.array([2.0, 5.0, 8.0])}
    before = twin.predict(flow).mean.copy()
    branch = twin.branch(Derate(30.0))
    branch.emulator.update({"flow": np.full(300, 5.0), "power": np.full(300, 1.0)})
    np.testing.assert_array_equal(twin.predict(flow).mean, before)
    assert branch.predict(flow).mean[1] < before[1] - 5.0
    # The other way: the live twin's emulator, handed out, is not the branch's either.
    other = twin.branch(Derate(30.0))
    capped = other.predict(flow).mean.copy()
    twin.emulator.update({"flow": np.full(300, 5.0), "power": np.full(300, 1.0)})
    np.testing.assert_array_equal(other.predict(flow).mean, capped)


def test_a_what_if_of_two_twins_of_other_units_or_targets_is_refused() -> None:
    twin = pump().update(readings(500, seed=21))
    in_watts = pump(unit="W", rated=50_000.0)
    inputs = {"flow": np.full(10, 5.0)}
    with pytest.raises(
        ValueError,
        match=r"scenario: expected a twin of the baseline's target, "
        r"power in kW \(a branch of it\), got 'pump-1' of power in W",
    ):
        compare(twin, in_watts, inputs, [Energy(1.0 / 6.0)])
    with pytest.raises(TypeError, match="metrics: expected a sequence of metrics"):
        compare(twin, twin.branch(Derate(30.0)), inputs, Energy(1.0 / 6.0))  # type: ignore[arg-type]


def test_a_what_if_says_when_the_scenario_differs_by_more_than_its_interventions() -> None:
    twin = pump().update(readings(500, seed=22))
    inputs = readings(144, seed=23, start=1.5e9)
    energy = [Energy(1.0 / 6.0)]
    branch = twin.branch(Derate(30.0))
    twin.update(readings(144, seed=24, start=1.45e9))
    twin.update(readings(144, seed=25, start=1.46e9))
    assert branch.updates_since(twin) == 2
    assert branch.branch(Stop()).updates_since(twin) == 2  # through its parent
    stale = r"baseline 'pump-1' and scenario 'pump-1/branch' stand for 'pump-1' 2 batch"
    with pytest.warns(UserWarning, match=stale):
        compare(twin, branch, inputs, energy, n_samples=20)
    # Two scenarios side by side, branched with the live twin between.
    with pytest.warns(UserWarning, match=r"stand for 'pump-1' 2 batch\(es\) of readings apart"):
        compare(branch, twin.branch(Stop()), inputs, energy, n_samples=20)
    other = Twin("pump-2", twin.schema, twin.emulator)
    with pytest.warns(UserWarning, match=r"'pump-2' is no branch of the baseline 'pump-1' "):
        compare(twin, other, inputs, energy, n_samples=20)
    # Branched again, or assimilating on its own, a branch differs by its interventions;
    # so do branches made together, and a branch taken for the baseline.
    fresh = twin.branch(Derate(30.0))
    fresh.update(readings(144, seed=26, start=1.47e9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(twin, fresh, inputs, energy, n_samples=20)
        compare(twin, fresh.branch(Stop()), inputs, energy, n_samples=20)
        compare(twin.branch(Stop()), fresh, inputs, energy, n_samples=20)
        compare(fresh, twin, inputs, energy, n_samples=20)
    assert fresh.updates_since(twin) == 0 and twin.updates_since(fresh) is None


def test_a_what_if_of_copies_of_one_twin_says_when_they_differ() -> None:
    inputs = readings(144, seed=27, start=1.5e9)
    energy = [Energy(1.0 / 6.0)]
    # Loaded twice, say: one copy learned more before the other was branched.
    learned, copy = pump().update(readings(500, seed=28)), pump().update(readings(500, seed=28))
    learned.update(readings(144, seed=29, start=1.45e9))
    with pytest.warns(UserWarning, match=r"two copies of 'pump-1', 1 batch\(es\) of readings ap"):
        compare(learned, copy.branch(Derate(30.0)), inputs, energy, n_samples=20)
    other_version = pump()
    other_version.model_version_ = "model_version:0123"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare(pump(), other_version.branch(), inputs, energy, n_samples=20)
    # One warning, naming the versions.
    assert [str(w.message).split(":")[0] for w in caught] == [
        "baseline 'pump-1' and scenario 'pump-1/branch' come from two copies of 'pump-1', "
        "versions None and model_version"
    ]
    # A branch restored from a store (its parent not at hand) has nothing to compare...
    restored = Twin("pump-1/mid/derate", learned.schema, learned.emulator, parent_id="pump-1/mid")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(learned, restored, inputs, energy, n_samples=20)
        compare(pump(), pump().branch(), inputs, energy, n_samples=20)
    # ... unless it is another turbine's.
    stranger = Twin("pump-2/branch", learned.schema, learned.emulator, parent_id="pump-2")
    with pytest.warns(UserWarning, match=r"'pump-2/branch' is no branch of the baseline 'pump-1'"):
        compare(learned, stranger, inputs, energy, n_samples=20)


def test_a_derate_names_its_unit_when_it_is_no_unit() -> None:
    # 'kw' was refused as an unknown unit without saying it was the derate's (review).
    with pytest.raises(ValueError, match=r"units: unknown unit 'kw'.*did you mean 'kW'"):
        Derate(1500.0, units="kw")
    with pytest.raises(TypeError, match=r"units: expected a unit such as 'kW', got 1"):
        Derate(1500.0, units=1)  # type: ignore[arg-type]
    assert Derate(-0.0, units="kW").describe() == "derate to 0 kW"


def test_a_branch_may_not_take_the_name_of_a_twin_it_comes_from() -> None:
    # Saved, a branch named 'pump-1' became pump-1's latest version: the live twin was
    # replaced by a derated one without a word (review).
    live = pump()
    child = live.branch(Derate(30.0), name="pump-1/cap")
    restored = Twin("pump-1/cap", live.schema, live.emulator, parent_id="pump-1")
    cases = ((live, "pump-1"), (child, "pump-1"), (child, "pump-1/cap"), (restored, "pump-1"))
    for parent, name in cases:
        refused = rf"name: a branch cannot take the name '{name}' of the twin it branches from"
        with pytest.raises(ValueError, match=refused + rf".*such as '{name}/whatif'"):
            parent.branch(Stop(), name=name)
    for name in ("", "  ", 7):
        with pytest.raises(ValueError, match="name: expected a non-empty text naming the branch"):
            live.branch(name=name)  # type: ignore[arg-type]
    assert child.branch(Stop(), name="pump-1/stop").parent_id == "pump-1/cap"


@pytest.mark.parametrize("given", ["derate", 1500.0, Derate])
def test_a_branch_refuses_what_is_no_intervention(given: object) -> None:
    with pytest.raises(TypeError, match="interventions: expected interventions such as"):
        pump().branch(given)  # type: ignore[arg-type]


def test_a_time_that_is_no_time_is_named_with_its_row() -> None:
    twin = pump().update(readings(500, seed=22))
    with pytest.raises(ValueError, match=r"time, row 1: expected a time, got 'notatime'"):
        twin.predict({"time": ["2015-01-05", "notatime"], "flow": [5.0, 6.0]})


def test_a_derate_in_the_targets_unit_spelt_otherwise_is_taken() -> None:
    params = pump().emulator.get_params()
    params.update(units="kilowatt")
    twin = Twin("pump-1", pump().schema, BayesianBasisRegression(**params))
    capped = twin.update(readings(500, seed=23)).branch(Derate(20.0, units="kW"))
    assert capped.predict({"flow": [9.0]}).quantile(0.999)[0] <= 20.0


def test_a_stop_of_a_target_without_a_lower_bound_sits_at_zero() -> None:
    # Stop() on an unbounded target kept its lower tail: negative power, mean -2.2.
    unbounded = CensoredNormal([3.0, -1.0, 40.0], [4.0, 9.0, 1.0], units="kW")
    stopped = Stop().apply_predictive(unbounded)
    np.testing.assert_array_equal(stopped.quantile([0.01, 0.5, 0.99]), 0.0)
    np.testing.assert_array_equal(stopped.mean, 0.0)
