"""Contracts of the fleet monitor on a synthetic farm: four turbines in one wind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from twinweave.domains.wind import (
    FleetMonitor,
    MonitorResult,
    TurbineSpec,
    generic_power_curve,
    monitor_fleet,
)

RATED_POWER = 2000.0  # [kW]
TURBINES = ("T1", "T2", "T3", "T4")
SPECS = {t: TurbineSpec(t, RATED_POWER) for t in TURBINES}
START = pd.Timestamp("2020-01-06", tz="UTC")
LIVE_FROM = START + pd.Timedelta(days=7)
MONITOR_FROM = LIVE_FROM + pd.Timedelta(days=30)
LOSS_FROM = MONITOR_FROM + pd.Timedelta(days=7)
N_DAYS = 58
LOSS = 0.08  # [-]
COLUMNS = ["time", "residual", "contrast", "sensitivity", "anomaly_score", "alarm"]


def synthetic_fleet(n_days: int = N_DAYS, seed: int = 0) -> pd.DataFrame:
    """Ten-minute readings of four turbines sharing one wind, in the observation contract.

    The wind is log-normal with hours of persistence; each turbine sees it with 2 %
    noise of its own and follows a generic power curve with heteroscedastic noise.
    """
    rng = np.random.default_rng(seed)
    n = n_days * 144
    phi = 0.995
    latent, _ = signal.lfilter(
        [1.0], [1.0, -phi], rng.standard_normal(n) * np.sqrt(1 - phi**2), zi=[0.0]
    )
    wind = 7.5 * np.exp(0.35 * latent)
    frame = {
        "time": pd.date_range(START, periods=n, freq="10min"),
        "temp_air": 12.0 + 4.0 * np.sin(2 * np.pi * np.arange(n) / 144),
        "wind_direction": np.mod(220.0 + np.cumsum(rng.normal(0.0, 2.0, n)), 360.0),
    }
    turbines = []
    for turbine in TURBINES:
        speed = wind * (1.0 + 0.02 * rng.standard_normal(n))
        power = generic_power_curve(speed, RATED_POWER, rated_wind_speed=12.5)
        power = np.clip(power + rng.normal(0.0, 25.0 + 0.03 * power), 0.0, RATED_POWER)
        turbines.append(
            pd.DataFrame({"asset_id": turbine, **frame, "wind_speed": speed, "power": power})
        )
    return pd.concat(turbines, ignore_index=True)


def with_loss(observations: pd.DataFrame, turbine: str = "T2") -> pd.DataFrame:
    """``turbine`` delivers ``LOSS`` less power from ``LOSS_FROM`` on."""
    out = observations.copy()
    hit = (out["asset_id"] == turbine) & (out["time"] >= LOSS_FROM)
    out.loc[hit, "power"] *= 1.0 - LOSS
    return out


@pytest.fixture(scope="module")
def observations() -> pd.DataFrame:
    return synthetic_fleet()


@pytest.fixture(scope="module")
def calibrated(observations: pd.DataFrame) -> FleetMonitor:
    """Fitted on the first week, live for 30 days, calibrated: ready to monitor."""
    monitor = FleetMonitor(seed=0).fit(observations[observations["time"] < LIVE_FROM], SPECS)
    monitor.run(observations, LIVE_FROM, MONITOR_FROM)
    return monitor.calibrate()


def monitored(calibrated: FleetMonitor, observations: pd.DataFrame) -> dict[str, MonitorResult]:
    """Results from ``MONITOR_FROM`` of a copy of ``calibrated`` run to the end."""
    monitor = calibrated.copy()
    monitor.run(observations, MONITOR_FROM)
    monitor.flush()
    return monitor.results(start=MONITOR_FROM)


def test_a_far_off_stop_ends_with_the_readings(
    calibrated: FleetMonitor, observations: pd.DataFrame
) -> None:
    # Every weekly block up to the stop was walked, readings or not: a stop in year 9999
    # (an open-ended --until in a script) ran for many minutes.
    lossy = with_loss(observations)
    expected = calibrated.copy()
    expected_alarms = expected.run(lossy, MONITOR_FROM)
    far = calibrated.copy()
    assert far.run(lossy, MONITOR_FROM, "9999-01-01") == expected_alarms
    assert expected_alarms["T2"], "expected the loss to be flagged"


def test_a_loss_is_flagged_within_days_on_its_turbine_only(
    calibrated: FleetMonitor, observations: pd.DataFrame
) -> None:
    results = monitored(calibrated, with_loss(observations))
    alarms = results["T2"].alarms
    assert alarms, "expected an alarm on T2"
    assert LOSS_FROM < alarms[0].time <= LOSS_FROM + pd.Timedelta(days=3)
    assert all(a.start >= LOSS_FROM - pd.Timedelta(days=1) for a in alarms), alarms
    readings = results["T2"].readings
    flagged = readings.loc[readings["alarm"], "time"]
    assert flagged.size > 0 and flagged.min() >= LOSS_FROM - pd.Timedelta(days=1)
    for turbine in ("T1", "T3", "T4"):
        assert results[turbine].alarms == [], turbine
        assert not results[turbine].readings["alarm"].any(), turbine


def test_without_a_loss_there_is_no_alarm_and_residuals_are_standard(
    calibrated: FleetMonitor, observations: pd.DataFrame
) -> None:
    results = monitored(calibrated, observations)
    for turbine, result in results.items():
        assert result.alarms == [], turbine
        assert list(result.readings.columns) == COLUMNS
        assert not result.readings["alarm"].any()
        residual = result.readings["residual"]
        # Week-ahead randomised-PIT residuals of a healthy turbine are standard normal.
        # About 3,000 per turbine: a standard error of 0.018 for the mean and 0.013 for
        # the spread were they independent; the twin's curve errors persist for hours,
        # so the bands allow about four times that. Residuals scaled by 0.92 or 1.05
        # (intervals 9 % too wide, 5 % too narrow) fail.
        assert abs(residual.mean()) < 0.08, (turbine, residual.mean())
        assert abs(residual.std() - 1.0) < 0.06, (turbine, residual.std())


def test_monitor_fleet_runs_the_same_pipeline_in_one_call(
    calibrated: FleetMonitor, observations: pd.DataFrame
) -> None:
    injected = with_loss(observations)
    expected = monitored(calibrated, injected)
    results = monitor_fleet(injected, SPECS, live_from=LIVE_FROM, monitor_from=MONITOR_FROM)
    assert sorted(results) == sorted(TURBINES)
    for turbine, result in results.items():
        assert result.readings["time"].min() >= MONITOR_FROM
        assert result.readings["alarm"].dtype == np.bool_
        pd.testing.assert_frame_equal(result.readings, expected[turbine].readings)
        assert result.alarms == expected[turbine].alarms
    assert results["T2"].alarms


def test_copies_leave_the_original_untouched(
    calibrated: FleetMonitor, observations: pd.DataFrame
) -> None:
    before = calibrated.results()
    grid = {"wind_speed": np.linspace(3.0, 15.0, 25)}
    curves = {t: twin.predict(grid).mean for t, twin in calibrated.twins_.items()}
    copy = calibrated.copy()
    copy.run(with_loss(observations), MONITOR_FROM)
    copy.flush()
    assert copy.alarms_["T2"]
    after = calibrated.results()
    for turbine in TURBINES:
        pd.testing.assert_frame_equal(after[turbine].readings, before[turbine].readings)
        np.testing.assert_array_equal(
            calibrated.twins_[turbine].predict(grid).mean, curves[turbine]
        )
        assert calibrated.detectors_[turbine].alarms_ == []
        assert calibrated.last_time_[turbine] < MONITOR_FROM


def test_a_seed_makes_runs_reproducible_and_changes_only_readings_at_a_bound(
    observations: pd.DataFrame,
) -> None:
    def live_week(seed: int) -> dict[str, MonitorResult]:
        monitor = FleetMonitor(seed=seed).fit(observations[observations["time"] < LIVE_FROM], SPECS)
        monitor.run(observations, LIVE_FROM, LIVE_FROM + pd.Timedelta(days=7))
        return monitor.results()

    first, again, other = live_week(0), live_week(0), live_week(1)
    power = observations.set_index(["asset_id", "time"])["power"]
    for turbine in TURBINES:
        pd.testing.assert_frame_equal(first[turbine].readings, again[turbine].readings)
        readings = first[turbine].readings
        at_bound = np.isin(power[turbine].reindex(readings["time"]).to_numpy(), [0, RATED_POWER])
        assert at_bound.any(), "the synthetic data should reach zero and rated power"
        differs = readings["residual"].to_numpy() != other[turbine].readings["residual"].to_numpy()
        np.testing.assert_array_equal(differs, at_bound)


def test_cold_readings_are_not_monitored(observations: pd.DataFrame) -> None:
    # The whole farm freezes while T2 loses power: guarded, the loss is not judged.
    icy = with_loss(observations)
    icy.loc[icy["time"] >= LOSS_FROM, "temp_air"] = -3.0
    guarded = monitor_fleet(icy, SPECS, live_from=LIVE_FROM, monitor_from=MONITOR_FROM)
    cold = guarded["T2"].readings["time"] >= LOSS_FROM
    assert guarded["T2"].readings.loc[cold, "residual"].isna().all()
    assert guarded["T2"].readings.loc[~cold, "residual"].notna().all()
    assert all(result.alarms == [] for result in guarded.values())
    # Without the guard the same readings raise alarms: the guard is what silences them.
    unguarded = FleetMonitor(icing_temperature=-10.0, seed=0)
    unguarded.fit(icy[icy["time"] < LIVE_FROM], SPECS).run(icy, LIVE_FROM, MONITOR_FROM)
    unguarded.calibrate().run(icy, MONITOR_FROM)
    unguarded.flush()
    assert unguarded.alarms_["T2"]


def test_power_is_clipped_to_the_bounds_before_it_is_judged(
    calibrated: FleetMonitor, observations: pd.DataFrame
) -> None:
    week = observations[
        (observations["time"] >= MONITOR_FROM)
        & (observations["time"] < MONITOR_FROM + pd.Timedelta(days=1))
    ].copy()
    week.iloc[::7, week.columns.get_loc("power")] = RATED_POWER + 60.0
    week.iloc[3::7, week.columns.get_loc("power")] = -15.0  # consumption while idle
    monitor = calibrated.copy()
    monitor.update(week)
    readings = monitor.results(start=MONITOR_FROM)
    for turbine in TURBINES:
        frame = readings[turbine].readings
        assert len(frame) == 144
        assert np.isfinite(frame["residual"]).all(), turbine
        assert np.isfinite(frame["anomaly_score"]).all(), turbine


# -- errors name the field, the value and the expectation -----------------------------------
@pytest.fixture(scope="module")
def two_weeks(observations: pd.DataFrame) -> pd.DataFrame:
    return observations[observations["time"] < START + pd.Timedelta(days=14)]


def test_a_turbine_without_readings_is_named(two_weeks: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"no readings of turbine\(s\) \['T4'\]; expected"):
        FleetMonitor().fit(two_weeks[two_weeks["asset_id"] != "T4"], SPECS)


def test_a_turbine_without_readings_before_the_calibration_period_is_named(
    two_weeks: pd.DataFrame,
) -> None:
    # T4's readings start inside the calibration period: none to fit its twin on.
    late = two_weeks[(two_weeks["asset_id"] != "T4") | (two_weeks["time"] >= LIVE_FROM)]
    with pytest.raises(
        ValueError,
        match=r"no readings of turbine\(s\) \['T4'\] before live_from=2020-01-13 00:00:00\+00:00; "
        r"expected readings of every turbine before the calibration period",
    ):
        monitor_fleet(late, SPECS, live_from=LIVE_FROM, monitor_from=MONITOR_FROM)


def test_a_reading_of_an_unknown_turbine_is_named(two_weeks: pd.DataFrame) -> None:
    specs = {t: SPECS[t] for t in ("T1", "T2", "T3")}
    with pytest.raises(ValueError, match=r"asset_id'\]: \['T4'\] have no TurbineSpec; expected"):
        FleetMonitor().fit(two_weeks, specs)


def test_too_little_calibration_data_is_named(two_weeks: pd.DataFrame) -> None:
    monitor = FleetMonitor().fit(two_weeks[two_weeks["time"] < LIVE_FROM], SPECS)
    monitor.run(two_weeks, LIVE_FROM)
    with pytest.raises(
        ValueError, match=r"turbine 'T1' .*expected at least 30 periods .* got 7 \(of 7"
    ):
        monitor.calibrate()


def test_naive_times_are_refused(two_weeks: pd.DataFrame) -> None:
    naive = two_weeks.assign(time=two_weeks["time"].dt.tz_localize(None))
    with pytest.raises(ValueError, match=r"time'\]: expected time-zone-aware UTC times"):
        FleetMonitor().fit(naive, SPECS)


def test_readings_already_processed_are_refused(two_weeks: pd.DataFrame) -> None:
    monitor = FleetMonitor().fit(two_weeks[two_weeks["time"] < LIVE_FROM], SPECS)
    with pytest.raises(ValueError, match=r"turbine 'T1' after 2020-01-12 23:50:00\+00:00"):
        monitor.update(two_weeks[two_weeks["time"] >= LIVE_FROM - pd.Timedelta(hours=1)])


def test_bad_configuration_and_fleets_are_refused(two_weeks: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"loss: expected a fraction in \(0, 1\), got 1.5"):
        FleetMonitor(loss=1.5)
    with pytest.raises(ValueError, match=r"horizon: expected a positive .* got 'weekly'"):
        FleetMonitor(horizon="weekly")
    with pytest.raises(ValueError, match=r"specs\['T9'\]: expected the key .* got asset_id='T1'"):
        FleetMonitor().fit(two_weeks, {**SPECS, "T9": SPECS["T1"]})
    with pytest.raises(ValueError, match=r"expected at least 3 turbines .* got \['T1', 'T2'\]"):
        FleetMonitor().fit(two_weeks, {t: SPECS[t] for t in ("T1", "T2")})
    with pytest.raises(RuntimeError, match="fit"):
        FleetMonitor().update(two_weeks)
    with pytest.raises(ValueError, match=r"monitor_from: expected a time after live_from"):
        monitor_fleet(two_weeks, SPECS, live_from=LIVE_FROM, monitor_from=START)
