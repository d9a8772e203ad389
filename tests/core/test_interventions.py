"""Control setpoints on a predictive: limits a user can get wrong."""

from __future__ import annotations

import numpy as np
import pytest

from twinweave.core import (
    CensoredNormal,
    Derate,
    ScaleTarget,
    SetInputs,
    Stop,
    Telemetry,
    Twin,
    TwinSchema,
)
from twinweave.domains.water import reservoir_schema
from twinweave.models import StateSpaceEmulator


def power() -> CensoredNormal:
    return CensoredNormal(
        [100.0, 1500.0, 2040.0], [50.0**2] * 3, lower=0.0, upper=2050.0, units="kW"
    )


def test_a_limit_below_the_lower_bound_is_refused_and_points_to_stop() -> None:
    with pytest.raises(
        ValueError,
        match=r"lower bound 0 kW, got -100; a stop is Stop\(\)",
    ):
        Derate(-100.0).apply_predictive(power())
    stopped = Stop().apply_predictive(power())
    np.testing.assert_array_equal(stopped.quantile(0.99), 0.0)


@pytest.mark.parametrize("limit", [float("nan"), "1500", None, True, np.True_])
def test_a_limit_must_be_a_number(limit: object) -> None:
    with pytest.raises(ValueError, match=r"limit: expected a number \[target units\], got"):
        Derate(limit)  # type: ignore[arg-type]


def test_a_limit_at_or_above_the_upper_bound_changes_nothing() -> None:
    before = power()
    after = Derate(3000.0).apply_predictive(before)
    np.testing.assert_array_equal(
        after.quantile([0.05, 0.5, 0.95]), before.quantile([0.05, 0.5, 0.95])
    )
    np.testing.assert_array_equal(after.mean, before.mean)


def test_a_limit_given_in_a_unit_says_it_and_must_be_the_targets() -> None:
    assert Derate(1500.0, units="kW").describe() == "derate to 1500 kW"
    assert Derate(1500.0).describe() == "derate to 1500"
    capped = Derate(1500.0, units="kW").apply_predictive(power())
    assert float(np.max(capped.quantile(0.99))) <= 1500.0
    with pytest.raises(ValueError, match=r"target's unit 'kW', got 2000 W"):
        Derate(2000.0, units="W").apply_predictive(power())


@pytest.mark.parametrize("factor", ["0.9", None, True, np.True_])
def test_a_scale_must_be_a_number(factor: object) -> None:
    with pytest.raises(ValueError, match=r"factor: expected a number \(0.97 .*\), got"):
        ScaleTarget(factor)  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", [-0.1, 1.5, float("nan"), float("inf")])
def test_a_scale_outside_its_range_is_refused(factor: float) -> None:
    with pytest.raises(ValueError, match=r"factor: expected a scale in \[0, 1.25\]"):
        ScaleTarget(factor)


def turbine_hurdle() -> CensoredNormal:
    """Power at cut-in, mid curve and near rated, with given masses at 0 and rated."""
    return CensoredNormal(
        [20.0, 900.0, 2000.0],
        [40.0**2, 120.0**2, 90.0**2],
        lower=0.0,
        upper=2050.0,
        lower_mass=[0.4, 0.0, 0.0],
        upper_mass=[0.0, 0.01, 0.55],
        units="kW",
    )


@pytest.mark.parametrize("make", [power, turbine_hurdle])
@pytest.mark.parametrize("factor", [0.0, 0.5, 0.97, 1.0, 1.1, 1.25])
def test_a_scaled_target_is_the_scaled_power_clipped_to_its_bounds(
    make: object, factor: float
) -> None:
    before = make()  # type: ignore[operator]
    after = ScaleTarget(factor).apply_predictive(before)
    # Quantiles follow a monotone map: those of min(factor * Y, rated).
    levels = np.array([0.01, 0.05, 0.3, 0.5, 0.7, 0.95, 0.99])
    np.testing.assert_allclose(
        after.quantile(levels),
        np.minimum(factor * before.quantile(levels), 2050.0),
        rtol=1e-9,
        atol=1e-9,
    )
    # So does the mean where nothing is clipped; above 1 it loses what passes rated.
    if factor <= 1.0:
        np.testing.assert_allclose(after.mean, factor * before.mean, rtol=1e-9, atol=1e-9)
    draws = np.minimum(factor * before.sample(200_000, seed=3), 2050.0)
    np.testing.assert_allclose(after.mean, draws.mean(axis=0), rtol=0.01, atol=0.5)
    for value in (0.5 * 2050.0, 0.9 * 2050.0):
        np.testing.assert_allclose(
            after.cdf(np.full(3, value)), (draws <= value).mean(axis=0), atol=0.005
        )


def test_half_the_power_halves_a_turbine_at_rated_and_zero_stops_it() -> None:
    # The branch the walk-through found: at 20 m/s a turbine sits at rated power.
    at_rated = CensoredNormal(
        [2300.0], [60.0**2], lower=0.0, upper=2050.0, lower_mass=[0.0], upper_mass=[0.97]
    )
    assert float(ScaleTarget(0.5).apply_predictive(at_rated).mean[0]) == pytest.approx(
        0.5 * float(at_rated.mean[0])
    )
    stopped = ScaleTarget(0.0).apply_predictive(at_rated)
    assert float(stopped.mean[0]) == 0.0
    np.testing.assert_array_equal(stopped.quantile([0.05, 0.95]), 0.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fast", "expected a number or numbers, got 'fast'"),
        ("5", "expected a number or numbers, got '5'"),
        (True, "expected a number or numbers, got True"),
        ([1.0, "2"], "expected a number or numbers, got \\[1.0, '2'\\]"),
        ([[1.0, 2.0]], "expected one value or one per input row, got an array of shape"),
    ],
)
def test_hypothetical_inputs_are_numbers_named_when_not(value: object, expected: str) -> None:
    with pytest.raises(ValueError, match=f"SetInputs 'wind_speed': {expected}"):
        SetInputs({"wind_speed": value})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("lower", "factor", "bound"),
    [(100.0, 0.5, 100.0), (100.0, 0.0, 100.0), (130.0, 1.25, 150.0)],
)
def test_a_scale_that_takes_every_value_beyond_a_bound_puts_it_on_that_bound(
    lower: float, factor: float, bound: float
) -> None:
    # A target within [100, 150] halved would lie within [50, 75], below its bounds.
    target = CensoredNormal([140.0, 145.0], [10.0**2] * 2, lower=lower, upper=150.0)
    scaled = ScaleTarget(factor).apply_predictive(target)
    np.testing.assert_array_equal(scaled.quantile([0.01, 0.5, 0.99]), bound)
    np.testing.assert_allclose(scaled.mean, bound)


def test_a_state_carried_from_step_to_step_is_changed_through_its_inputs_only() -> None:
    # A reservoir's storage: Stop() emptied it at once and Derate capped it, water
    # vanishing rather than staying behind the dam.
    emulator = StateSpaceEmulator.reservoir(
        capacity=1e4, initial_storage=5e3, initial_var=1e6, process_var=100.0, noise_var=400.0
    )
    dam = Twin("dam", reservoir_schema(1e4), emulator)
    for setpoint in (Stop(), Derate(3e3), ScaleTarget(0.9)):
        with pytest.raises(
            ValueError,
            match=rf"{setpoint.describe()}: sets the target, 'storage', which this twin "
            r"carries .* as a balance of its inputs; .* SetInputs\(\{...\}\) of \['inflow', "
            r"'outflow'\]",
        ):
            dam.branch(setpoint)
        # Nor can a twin be built holding one (a stored branch restored).
        with pytest.raises(ValueError, match=r"as a balance of its inputs"):
            Twin("dam/branch", reservoir_schema(1e4), emulator, interventions=(setpoint,))
    # Releases stopped: the storage rises by the inflow, day by day.
    flows = {"inflow": [100.0] * 3, "outflow": [50.0] * 3}
    held = dam.branch(SetInputs({"outflow": 0.0})).predict(flows).mean
    np.testing.assert_allclose(np.diff(held), 100.0, rtol=1e-3)
    # A forecaster of power with no inputs takes a setpoint as any twin does.
    schema = TwinSchema(name="Meter", telemetry=[Telemetry(name="power", unit="kW", upper=100.0)])
    level = StateSpaceEmulator.local_level(
        "power", level_var=1.0, noise_var=1.0, lower=0.0, upper=100.0, units="kW"
    )
    meter = Twin("m1", schema, level).update({"power": [50.0, 52.0, 51.0]})
    capped = meter.branch(Derate(20.0)).predict({"power": [np.nan] * 3})
    assert capped.quantile(0.999).max() == 20.0
