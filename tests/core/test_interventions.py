"""Control setpoints on a predictive: limits a user can get wrong."""

from __future__ import annotations

import numpy as np
import pytest

from twinweave.core import CensoredNormal, Derate, ScaleTarget, SetInputs, Stop


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
def test_a_scale_the_predictive_cannot_follow_is_refused(factor: float) -> None:
    # Past about 1.3 the scaled curve crosses rated power where the kept bound masses no
    # longer describe it: samples and quantiles would contradict the mean.
    with pytest.raises(ValueError, match=r"factor: expected a scale in \[0, 1.25\]"):
        ScaleTarget(factor)


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
