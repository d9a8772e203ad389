"""Power-curve physics: density normalisation, the IEC baseline, the physical prior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinweave.domains.wind import (
    MethodOfBins,
    NormalisedWindSpeed,
    TurbineSpec,
    air_density,
    build_turbine_twin,
    generic_power_curve,
    model_inputs,
    power_curve_emulator,
    pressure_at_elevation,
    turbine_emulator,
)
from twinweave.models import ModulatedSpline

RATED = 2050.0


@pytest.mark.parametrize(
    "reading",
    [
        {"wind_speed": 7.0},
        {"wind_speed": 7.0, "temp_air": -5.0},
        {"wind_speed": 7.0, "temp_air": float("nan")},
        {"wind_speed": 7.0, "temp_air": 5.0, "pressure": 95000.0},
        {"wind_speed": 7.0, "air_density": 1.3},
    ],
)
def test_one_reading_path_equals_the_array_path(reading: dict[str, float]) -> None:
    speed = NormalisedWindSpeed(pressure_at_elevation(411.0), fallback_density=1.17)
    one = speed(reading)
    many = speed({k: np.array([v, v]) for k, v in reading.items()})
    assert one is not None and many is not None
    np.testing.assert_allclose(one, many[:1], rtol=1e-14)


def test_normalisation_follows_iec_61400_12_1() -> None:
    # V_n = V (rho / 1.225)^(1/3), rho = p / (287.05 T): at 15 degC and 101325 Pa,
    # rho = 1.2250 kg/m^3 and V_n = V.
    rho = air_density(np.array([15.0]), 101325.0)
    assert rho[0] == pytest.approx(1.2250, abs=1e-4)
    speed = NormalisedWindSpeed(101325.0)
    assert speed({"wind_speed": [10.0], "temp_air": [15.0]})[0] == pytest.approx(10.0, abs=1e-3)
    cold = speed({"wind_speed": [10.0], "temp_air": [-15.0]})[0]
    assert cold == pytest.approx(10.0 * (288.15 / 258.15) ** (1 / 3), rel=1e-4)


def test_method_of_bins_is_the_bin_mean() -> None:
    model = MethodOfBins(rated_power=RATED, site_pressure=101325.0, fallback_density=1.225)
    v = np.array([6.9, 7.0, 7.1, 7.9, 8.0, 8.1])
    p = np.array([600.0, 610.0, 620.0, 900.0, 910.0, 920.0])
    model.update({"wind_speed": v, "power": p})
    speeds, powers, _ = model.curve()
    np.testing.assert_allclose(speeds, [7.0, 8.0])
    np.testing.assert_allclose(powers, [610.0, 910.0])
    assert model.predict({"wind_speed": [7.5]}).mean[0] == pytest.approx(760.0, abs=1e-6)


def test_the_twin_predicts_rated_power_above_the_winds_it_has_seen() -> None:
    rng = np.random.default_rng(0)
    v = rng.uniform(0.0, 14.0, 20_000)  # no wind above 14 m/s in the data
    p = np.clip(
        generic_power_curve(v, RATED, rated_wind_speed=12.5) + rng.normal(0, 30, v.size), 0, RATED
    )
    model = power_curve_emulator(RATED, site_pressure=101325.0).update(
        {"wind_speed": v, "power": p}
    )
    beyond = model.predict({"wind_speed": np.array([18.0, 22.0])})
    assert np.all(beyond.mean > 0.9 * RATED)
    seen = model.predict({"wind_speed": np.array([13.5])})
    # Less certain where there was no data.
    assert np.all(beyond.latent_std > seen.latent_std[0])


def test_a_missing_wind_speed_is_named_alone_among_the_inputs_read_from_it() -> None:
    # Every term reads the density-normalised wind speed; only the column that is NaN
    # is at fault, not the finite temperature and direction, nor absent columns.
    readings = {
        "wind_speed": np.array([6.0, np.nan, 9.0]),
        "temp_air": np.array([4.0, 4.3, 4.1]),
        "wind_direction": np.array([180.0, 182.0, 185.0]),
        "power": np.array([300.0, 560.0, 1200.0]),
    }
    with pytest.raises(ValueError, match=r"got power=560.0 and non-finite \['wind_speed'\];"):
        power_curve_emulator(2050.0).update(readings)


def test_a_negative_wind_speed_is_refused_not_read_as_calm() -> None:
    # The spline clamps its input: -5 m/s was predicted as 0 m/s (review).
    emulator = power_curve_emulator(2050.0)
    with pytest.raises(
        ValueError, match=r"wind_speed: expected speeds >= 0 m/s, got -5 first at row 1"
    ):
        emulator.predict({"wind_speed": np.array([3.0, -5.0, -50.0])})
    with pytest.raises(ValueError, match=r"got -0.5 first at row 0"):
        emulator.update({"wind_speed": -0.5, "power": 0.0})  # one reading, as streamed


def test_an_array_is_refused_where_columns_by_name_are_expected() -> None:
    emulator = power_curve_emulator(2050.0)
    for call, name in (
        (lambda: emulator.predict(np.array([8.0])), "inputs"),
        (lambda: emulator.update(np.array([8.0])), "observations"),
        (lambda: emulator.design([8.0]), "data"),
    ):
        with pytest.raises(TypeError, match=rf"{name}: expected columns by name .* got"):
            call()


def synthetic_scada(rng: np.random.Generator, n: int, **optional: np.ndarray) -> pd.DataFrame:
    """Cleaned observations of a turbine on the generic curve, with ``optional`` columns."""
    speed = rng.uniform(0.0, 16.0, n)
    power = generic_power_curve(speed, RATED) + rng.normal(0.0, 30.0, n)
    time = pd.date_range("2014-01-01", periods=n, freq="10min", tz="UTC")
    return pd.DataFrame({"time": time, "wind_speed": speed, "power": power, **optional})


@pytest.mark.parametrize("absent", ["column", "all NaN"])
def test_a_twin_varies_its_curve_only_with_inputs_its_readings_have(absent: str) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    nan = np.full(n, np.nan)
    optional = {} if absent == "column" else {"wind_direction": nan, "temp_air": nan}
    spec = TurbineSpec("T1", rated_power=RATED)
    training = synthetic_scada(rng, n, **optional)
    twin = build_turbine_twin(spec, training)
    twin.update(model_inputs(training, RATED))
    assert "wind_direction" not in twin.emulator.inputs
    speeds = {"wind_speed": np.array([5.0, 9.0, 13.0])}
    plain = twin.predict(speeds)
    # A direction it never saw changes nothing (it moved the mean at 5 m/s from about
    # 130 to 520 kW on the prior alone); a temperature only the air density.
    turned = twin.predict({**speeds, "wind_direction": np.array([0.0, 90.0, 180.0])})
    np.testing.assert_array_equal(turned.mean, plain.mean)
    cold = twin.predict({**speeds, "temp_air": np.full(3, 15.0)}).mean
    np.testing.assert_allclose(cold, plain.mean, rtol=0.05)
    # With readings of them, the curve varies with both.
    seen = synthetic_scada(
        rng, n, wind_direction=rng.uniform(0.0, 360.0, n), temp_air=rng.normal(10.0, 5.0, n)
    )
    modulators = {
        name
        for term in turbine_emulator(spec, seen).terms
        if isinstance(term, ModulatedSpline)
        for name in term.modulator.inputs
    }
    assert modulators == {"wind_direction", "temp_air"}


def test_evaluation_scores_give_the_extreme_bins_with_their_number_of_readings() -> None:
    from twinweave.core import CensoredNormal
    from twinweave.domains.wind import evaluation_scores

    # 200 readings at 5.5 m/s, half outside the interval; 10 at 9.5 m/s, all inside.
    speed = np.r_[np.full(200, 5.5), np.full(10, 9.5)]
    power = np.r_[np.where(np.arange(200) % 2 == 0, 500.0, 2000.0), np.full(10, 500.0)]
    predictive = CensoredNormal(np.full(210, 500.0), np.full(210, 100.0), lower=0.0, upper=RATED)
    observed = pd.DataFrame({"wind_speed": speed, "power": power})
    result = evaluation_scores(predictive, observed, RATED)
    assert result["coverage90_min_bin"] == 0.5 and result["coverage90_min_bin_n"] == 200
    assert result["coverage90_max_bin"] == 1.0 and result["coverage90_max_bin_n"] == 10
