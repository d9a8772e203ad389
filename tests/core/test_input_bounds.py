"""A twin refuses inputs outside its schema's physical bounds instead of extrapolating."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from twinweave.core import CensoredNormal, Columns, SetInputs, Telemetry, Twin, TwinSchema
from twinweave.domains.wind import power_curve_emulator, turbine_schema
from twinweave.models import BayesianBasisRegression, SplineTerm

RATED = 2050.0  # [kW]


def turbine() -> Twin:
    """A turbine twin fitted on synthetic readings with wind, temperature and direction."""
    rng = np.random.default_rng(0)
    n = 5000
    wind_speed = rng.uniform(0.0, 20.0, n)
    power = np.clip(RATED * ((wind_speed - 3.0) / 10.0) ** 3, 0.0, RATED)
    twin = Twin("T1", turbine_schema(RATED), power_curve_emulator(RATED))
    return twin.update(
        {
            "wind_speed": wind_speed,
            "power": np.clip(power + rng.normal(0.0, 30.0, n), 0.0, RATED),
            "temp_air": rng.uniform(-10.0, 30.0, n),
            "wind_direction": rng.uniform(0.0, 360.0, n),
        }
    )


@pytest.fixture(scope="module")
def twin() -> Twin:
    return turbine()


def test_out_of_bounds_wind_speed_is_rejected_with_where_and_how_many(twin: Twin) -> None:
    wind_speed = np.linspace(0.0, 20.0, 14)
    wind_speed[[3, 9]] = [-5.0, 1e9]
    message = (
        "wind_speed: 2 of 14 values outside the physical bounds [0, 60] m/s; first at row 3: -5"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        twin.predict({"wind_speed": wind_speed})
    with pytest.raises(ValueError, match=re.escape("first at row 0: 1000000000")):
        twin.predict({"wind_speed": [1e9]})


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        # A pressure in hPa, a density in g/m^3: they predicted about 0 kW at 9 m/s.
        (
            {"temp_air": [10.0], "pressure": [1013.0]},
            "pressure: 1 of 1 values outside the physical bounds [50000, 110000] Pa; "
            "first at row 0: 1013",
        ),
        (
            {"air_density": [1225.0]},
            "air_density: 1 of 1 values outside the physical bounds [0.5, 2] kg/m^3; "
            "first at row 0: 1225",
        ),
    ],
)
def test_density_inputs_in_the_wrong_unit_are_rejected(
    twin: Twin, inputs: dict[str, list[float]], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        twin.predict({"wind_speed": [9.0], **inputs})
    # In their units they are read: a denser air gives more power.
    thin, dense = (twin.predict({"wind_speed": [9.0], "air_density": [rho]}) for rho in (1.0, 1.3))
    assert dense.mean[0] > thin.mean[0]


def test_update_refuses_what_predict_refuses_and_learns_nothing() -> None:
    twin = turbine()
    before = twin.emulator.state()
    readings = {"wind_speed": np.array([5.0, -2.0, 9.0]), "power": np.array([100.0, 0.0, 900.0])}
    message = "wind_speed: 1 of 3 values outside the physical bounds [0, 60] m/s; first at row 1"
    with pytest.raises(ValueError, match=re.escape(message)):
        twin.update(readings)
    # A streamed reading (a number, or a one-element array) is held to the same bounds.
    with pytest.raises(ValueError, match=re.escape("first at row 0: -2")):
        twin.update({"wind_speed": -2.0, "power": 0.0})
    with pytest.raises(ValueError, match=re.escape("temp_air: 1 of 1 values outside")):
        twin.update({"wind_speed": 5.0, "power": 80.0, "temp_air": np.array([70.0])})
    after = twin.emulator.state()
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_a_target_beyond_its_bounds_is_taken_as_at_them() -> None:
    # An idle turbine's auxiliary draw (-20 kW) is 0 kW of output; 2060 kW is rated.
    raw, clipped = turbine(), turbine()
    speeds = np.array([2.0, 14.0, 8.0])
    raw.update({"wind_speed": speeds, "power": np.array([-20.0, 2060.0, 700.0])})
    clipped.update({"wind_speed": speeds, "power": np.array([0.0, RATED, 700.0])})
    probe = {"wind_speed": np.linspace(0.0, 20.0, 41)}
    np.testing.assert_array_equal(raw.predict(probe).mean, clipped.predict(probe).mean)


@pytest.mark.parametrize(
    ("name", "value", "bounds"),
    [("temp_air", -92.0, "[-60, 60] degC"), ("wind_direction", 361.0, "[0, 360] degree")],
)
def test_every_bounded_input_the_emulator_reads_is_checked(
    twin: Twin, name: str, value: float, bounds: str
) -> None:
    values = np.full(5, 10.0)
    values[4] = value
    with pytest.raises(ValueError, match=re.escape(f"{name}: 1 of 5 values outside")) as error:
        twin.predict({"wind_speed": np.full(5, 8.0), name: values})
    assert f"{bounds}; first at row 4: {value:g}" in str(error.value)


def test_columns_the_emulator_does_not_read_are_not_checked(twin: Twin) -> None:
    # A raw export's other signals: a pitch of 200 degrees is outside the schema's
    # [-10, 130], but the power curve never reads pitch, so it cannot mislead it.
    assert "pitch" in [v.name for v in twin.schema.telemetry]
    assert "pitch" not in twin.emulator.inputs
    inputs = {"wind_speed": np.full(3, 8.0), "pitch": np.array([0.0, 200.0, -50.0])}
    np.testing.assert_array_equal(
        twin.predict(inputs).mean, twin.predict({"wind_speed": np.full(3, 8.0)}).mean
    )


def test_the_power_curve_declares_what_it_reads() -> None:
    emulator = power_curve_emulator(RATED)
    assert set(emulator.inputs) == {
        "wind_speed",
        "air_density",
        "temp_air",
        "pressure",
        "wind_direction",
    }


def test_values_at_the_bounds_and_missing_values_pass(twin: Twin) -> None:
    inputs = {
        "wind_speed": np.array([0.0, 8.0, 8.0, 60.0]),
        "temp_air": np.array([-60.0, np.nan, 60.0, 10.0]),
        "wind_direction": np.array([0.0, 90.0, 360.0, np.nan]),
    }
    assert np.isfinite(twin.predict(inputs).mean).all()
    # A missing optional input is a prediction without it (from wind speed alone), as
    # before the check existed.
    with_nan = twin.predict({"wind_speed": [8.0], "temp_air": [np.nan]}).mean
    without = twin.predict({"wind_speed": [8.0]}).mean
    np.testing.assert_array_equal(with_nan, without)


def test_a_missing_wind_speed_is_left_to_the_emulator(twin: Twin) -> None:
    # The bounds check lets NaN through: whatever the emulator does with it stands.
    inputs = {"wind_speed": [np.nan, 8.0]}

    def outcome(predict: Callable[[Columns], CensoredNormal]) -> object:
        try:
            return repr(predict(inputs).mean.tolist())
        except ValueError as error:
            return str(error)

    assert outcome(twin.predict) == outcome(twin.emulator.predict)


def test_the_target_is_not_an_input_and_is_not_checked(twin: Twin) -> None:
    # A power column among the inputs (a file of readings) neither fails nor changes
    # the prediction.
    with_power = twin.predict({"wind_speed": [8.0], "power": [-50.0]})
    np.testing.assert_array_equal(with_power.mean, twin.predict({"wind_speed": [8.0]}).mean)


def test_branches_check_their_callers_inputs(twin: Twin) -> None:
    branch = twin.branch(SetInputs({"temp_air": 15.0}))
    with pytest.raises(ValueError, match=r"^wind_speed: 1 of 1 values"):
        branch.predict({"wind_speed": [-1.0]})


def test_unbounded_and_one_sided_variables() -> None:
    schema = TwinSchema(
        name="Pump",
        telemetry=[
            Telemetry(name="head", unit="m"),
            Telemetry(name="flow", unit="m^3/h", lower=0),
            Telemetry(name="power", unit="kW", lower=0, upper=50),
        ],
    )
    emulator = BayesianBasisRegression(
        target="power",
        terms=(SplineTerm("flow", 0, 10, 8),),
        noise_source="flow",
        noise_edges=[0, 10],
        lower=0,
        upper=50,
        units="kW",
    )
    flow = np.linspace(0, 10, 200)
    twin = Twin("pump", schema, emulator).update({"flow": flow, "power": 4 * flow})
    # No bound on head, none above on flow: nothing refused. Head is not an input.
    far = twin.predict({"flow": [1e6], "head": [-1e6]})
    np.testing.assert_array_equal(far.mean, twin.predict({"flow": [1e6]}).mean)
    with pytest.raises(ValueError, match=re.escape("[0, inf] m^3/h; first at row 1: -0.5")):
        twin.predict({"flow": [1.0, -0.5]})


class WithoutDeclaredInputs:
    """An emulator written before the protocol declared its inputs."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inputs":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_an_emulator_that_declares_no_inputs_has_every_bounded_column_checked(
    twin: Twin,
) -> None:
    older = Twin("T1", twin.schema, WithoutDeclaredInputs(twin.emulator))  # type: ignore[arg-type]
    inputs = {"wind_speed": np.full(2, 8.0), "pitch": np.array([0.0, 200.0])}
    with pytest.raises(ValueError, match=re.escape("pitch: 1 of 2 values outside")):
        older.predict(inputs)


def test_set_inputs_keep_one_prediction_per_row_and_meet_the_bounds(twin: Twin) -> None:
    x = {"wind_speed": np.array([3.0, 9.0, 13.0, 18.0])}
    one_value = twin.branch(SetInputs({"wind_speed": 8.0})).predict(x)
    assert len(one_value) == 4
    np.testing.assert_array_equal(
        one_value.mean, twin.predict({"wind_speed": np.full(4, 8.0)}).mean
    )
    with pytest.raises(ValueError, match=r"SetInputs 'wind_speed': expected one value or 4"):
        twin.branch(SetInputs({"wind_speed": np.array([8.0, 9.0])})).predict(x)
    # A hypothetical input is held to the schema's bounds as a real one is.
    with pytest.raises(ValueError, match="wind_speed: 4 of 4 values outside"):
        twin.branch(SetInputs({"wind_speed": -8.0})).predict(x)
    # A misspelt input would change nothing: refused when the branch is made.
    with pytest.raises(ValueError, match=r"does not read \['windspeed'\]"):
        twin.branch(SetInputs({"windspeed": 8.0}))


def test_a_missing_wind_speed_is_named_by_the_column_to_give(twin: Twin) -> None:
    # The power curve reads a derived input; the message names the columns behind it.
    with pytest.raises(KeyError, match=r"computed from columns 'wind_speed'"):
        twin.predict({"windspeed": [8.0]})


def test_a_column_of_the_wrong_length_is_named(twin: Twin) -> None:
    inputs = {"wind_speed": [5.0, 6.0, 7.0], "wind_direction": [10.0, 20.0]}
    with pytest.raises(ValueError, match=r"wind_direction: expected 3 values .* got 2"):
        twin.predict(inputs)
