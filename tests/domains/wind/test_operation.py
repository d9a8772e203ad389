"""Normal-operation filters for turbines, and the shipped La Haute Borne data."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from twinweave.data import Check, clean, quarantine_summary, read_source
from twinweave.domains.wind import (
    LA_HAUTE_BORNE,
    Curtailment,
    Downtime,
    Icing,
    asset_table,
    era5_path,
    normal_operation_checks,
    scada_path,
)

RATED = 2050.0


def readings(**columns: list[float]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    defaults = {"wind_speed": [8.0] * n, "power": [900.0] * n, "pitch": [0.0] * n}
    defaults |= {"temp_air": [10.0] * n, **columns}
    return pd.DataFrame(
        {
            "asset_id": pd.array(["T1"] * n, dtype="string"),
            "time": pd.date_range("2014-01-01", periods=n, freq="10min", tz="UTC"),
            "source_row": np.arange(n, dtype=np.int64),
            **{name: np.asarray(values, dtype=np.float64) for name, values in defaults.items()},
        }
    )


def test_downtime_is_no_power_in_a_wind_that_should_turn_the_rotor() -> None:
    frame = readings(wind_speed=[4.0, 12.0, 3.9, 6.0, 6.0], power=[0.0, -20.0, -20.0, 0.5, 1500.0])
    quarantine = Downtime()(frame)
    assert quarantine["source_row"].tolist() == [0, 1]
    assert set(quarantine["variable"]) == {"power"}
    assert quarantine["reason"].iloc[1] == (
        "power = -20.0 kW at wind_speed = 12.0 m/s; expected power > 0.0 kW when "
        "wind_speed >= 4.0 m/s (the turbine is unavailable: stopped, faulted or in maintenance)"
    )


def test_curtailment_is_pitched_out_blades_below_rated_power() -> None:
    frame = readings(
        wind_speed=[9.0, 14.0, 3.0, 9.1, 9.2, 9.3],
        power=[800.0, 2040.0, 10.0, 800.0, 1900.0, 800.0],
        pitch=[12.0, 12.0, 80.0, 4.9, 6.0, math.nan],
    )
    quarantine = Curtailment(RATED)(frame)
    # Pitching at rated power (row 1, 4) is the controller; idling below cut-in (2) is normal.
    assert quarantine["source_row"].tolist() == [0]
    assert quarantine["variable"].tolist() == ["pitch"]
    assert quarantine["value"].tolist() == [12.0]
    reason = quarantine["reason"].iloc[0]
    assert reason.startswith("pitch = 12.0 degree with power = 800.0 kW at wind_speed = 9.0 m/s")
    assert "below 90% of rated (1845 kW)" in reason
    with pytest.raises(ValueError, match="rated_power > 0"):
        Curtailment(0.0)


def test_filters_need_their_columns() -> None:
    frame = readings(wind_speed=[5.0]).drop(columns="pitch")
    with pytest.raises(KeyError, match="'curtailment' needs column 'pitch'"):
        Curtailment(RATED)(frame)


def test_default_chain_keeps_idle_self_consumption_and_missing_temperature() -> None:
    frame = readings(
        wind_speed=[2.0, 8.0, 8.1, 8.2, 8.3, 8.4, 50.0],
        power=[-60.0, 900.0, -150.0, 900.0, 2200.0, 900.0, 900.0],
        temp_air=[10.0, math.nan, 10.0, -60.0, 10.0, 10.0, 10.0],
    )
    checks = normal_operation_checks(RATED)
    assert all(isinstance(check, Check) for check in checks)
    observations, quarantine = clean(frame, checks)
    # Kept: an idle turbine drawing 60 kW; a reading without temperature.
    assert observations["source_row"].tolist() == [0, 1, 5]
    failed = dict(zip(quarantine["source_row"], quarantine["variable"], strict=True))
    assert failed == {2: "power", 3: "temp_air", 4: "power", 6: "wind_speed"}
    assert set(quarantine["check"]) == {"range", "downtime"}


def test_default_chain_flags_a_stuck_anemometer() -> None:
    frame = readings(wind_speed=[7.0, 7.0, 7.0, 8.0])
    _, quarantine = clean(frame, normal_operation_checks(RATED))
    assert quarantine["check"].tolist() == ["stuck_sensor"] * 3


def test_shipped_files_and_asset_table() -> None:
    assert scada_path().is_file() and era5_path().is_file()
    table = asset_table()
    assert table["asset_id"].tolist() == ["R80711", "R80721", "R80736", "R80790"]
    assert (table["rated_power"] == RATED).all()
    assert list(table.columns) == [
        "asset_id",
        "latitude",
        "longitude",
        "elevation",
        "rated_power",
        "hub_height",
        "rotor_diameter",
        "manufacturer",
        "model",
    ]


def _rules_counted_with_pandas(raw: pd.DataFrame) -> dict[str, int]:
    """How many raw readings each documented rule catches, written afresh in pandas
    (every check sees the whole raw frame), to check the checks' own vectorised code."""
    speed, power = raw["wind_speed"], raw["power"]
    counts = {
        "curtailment": (raw["pitch"] > 5.0) & (power < 0.9 * RATED) & (speed > 3.5),
        "downtime": (speed >= 4.0) & (power <= 0.0),
    }
    # A frozen anemometer: three or more equal wind speeds in a row, per turbine in time
    # order (file order between copies of a time); NaN never equals, so never a run.
    ordered = raw.sort_values(["asset_id", "time", "source_row"], kind="stable")
    turbine = ordered["asset_id"].astype(str)
    starts = (ordered["wind_speed"] != ordered["wind_speed"].shift()) | (turbine != turbine.shift())
    run = starts.astype(bool).cumsum()
    counts["stuck_sensor"] = ordered.groupby(run)["wind_speed"].transform("size") >= 3
    # A frozen thermometer: one temperature for 4 hours or more, per turbine in time
    # order, a run ending at a gap of more than an hour.
    gap = ordered["time"].diff() > pd.Timedelta(hours=1)
    starts = (ordered["temp_air"] != ordered["temp_air"].shift()) | (turbine != turbine.shift())
    time = ordered["time"].groupby((starts | gap).astype(bool).cumsum())
    counts["frozen_sensor"] = time.transform("max") - time.transform("min") >= pd.Timedelta(hours=4)
    # Icing (IEA Wind Task 19): under 0 degC, above 3.5 m/s and below the turbine's P10 of
    # power in its 0.5 m/s bin (from readings above 3 degC with power, 20 or more), for
    # three or more consecutive 10-minute readings.
    known = raw.dropna(subset=["wind_speed", "power", "temp_air"]).assign(
        turbine=lambda d: d["asset_id"].astype(str), speed_bin=lambda d: d["wind_speed"] // 0.5
    )
    warm = known[(known["temp_air"] > 3.0) & (known["power"] > 0.0)]
    reference = warm.groupby(["turbine", "speed_bin"])["power"].agg(
        n="size", p10=lambda p: p.quantile(0.1)
    )
    known = known.join(reference[reference["n"] >= 20]["p10"], on=["turbine", "speed_bin"])
    known = known.sort_values(["turbine", "time"], kind="stable")
    suspect = (
        (known["wind_speed"] > 3.5) & (known["temp_air"] < 0.0) & (known["power"] < known["p10"])
    )
    continues = (
        suspect
        & suspect.shift(fill_value=False)
        & (known["turbine"] == known["turbine"].shift())
        & (known["time"].diff() <= pd.Timedelta(minutes=10))
    )
    event = (~continues).cumsum()
    counts["icing"] = suspect & (suspect.groupby(event).transform("size") >= 3)
    return {name: int(mask.sum()) for name, mask in sorted(counts.items())}


@pytest.mark.slow
def test_la_haute_borne_reads_and_cleans_without_losing_a_reading() -> None:
    info, raw = read_source(scada_path(), LA_HAUTE_BORNE)
    observations, quarantine = clean(raw, normal_operation_checks(RATED))

    assert info.n_rows == len(raw) == 420_480
    assert len(info.sha256) == 64
    assert sorted(raw["asset_id"].unique()) == ["R80711", "R80721", "R80736", "R80790"]
    assert raw["time"].min() == pd.Timestamp("2014-01-01T00:00Z")
    assert raw["time"].max() == pd.Timestamp("2015-12-31T23:50Z")
    # Ot_avg = -273.2 (33 readings) is missing, on top of the 2569 empty rows.
    assert raw["temp_air"].isna().sum() == 2569 + 33

    # Spring-forward relabelling: per turbine, 2 days x 6 times x 2 copies = 24 rows.
    duplicates = quarantine[quarantine["check"] == "duplicate_timestamp"]
    assert len(duplicates) == 96
    assert duplicates.groupby("asset_id").size().tolist() == [24, 24, 24, 24]
    assert set(duplicates["time"].dt.strftime("%Y-%m-%d %H")) == {
        "2014-03-30 01",
        "2015-03-29 01",
    }

    counts = quarantine_summary(quarantine).set_index(["check", "variable"])["n_rows"]
    expected = _rules_counted_with_pandas(raw)
    # The figures docs/RESULTS.md quotes, derived here without the checks' code.
    assert expected == {
        "curtailment": 11700,
        "stuck_sensor": 6341,
        "frozen_sensor": 112,
        "downtime": 3824,
        "icing": 404,
    }
    assert counts.to_dict() == {
        ("curtailment", "pitch"): expected["curtailment"],
        ("stuck_sensor", "wind_speed"): expected["stuck_sensor"],
        ("frozen_sensor", "temp_air"): expected["frozen_sensor"],
        ("downtime", "power"): expected["downtime"],
        ("missing", "power"): 2569,
        ("missing", "wind_speed"): 2569,
        ("duplicate_timestamp", "*"): 96,
        ("range", "temp_air"): 1,
        ("icing", "power"): expected["icing"],
    }
    # Nothing lost: every raw reading is an observation or set aside, never both.
    set_aside = quarantine.loc[~quarantine["blanked"], "source_row"].unique()
    assert len(observations) + len(set_aside) == len(raw)
    assert not observations["source_row"].isin(set_aside).any()
    # R80721's frozen thermometer (8-9 June 2014): the readings kept, without temperature.
    frozen = quarantine[quarantine["check"] == "frozen_sensor"]
    assert frozen["blanked"].all() and set(frozen["asset_id"]) == {"R80721"}
    assert set(frozen["value"].round(1)) == {32.2, 34.5}
    kept = observations[observations["source_row"].isin(frozen["source_row"])]
    # 61 of them curtailed (59 of those also idle), and set aside for that.
    assert len(kept) == 112 - frozen["source_row"].isin(set_aside).sum() == 51
    assert kept["temp_air"].isna().all() and kept["power"].notna().all()


def test_checks_of_absent_optional_variables_are_left_out() -> None:
    names = [c.name for c in normal_operation_checks(2050.0, ["wind_speed", "power"])]
    assert "curtailment" not in names
    assert names.count("range") == 2
    full = [c.name for c in normal_operation_checks(2050.0, ["wind_speed", "power", "pitch"])]
    assert "curtailment" in full
    assert "icing" not in full
    assert "icing" in [c.name for c in normal_operation_checks(2050.0, ["temp_air"])]


def _icing_frame(power_cold: list[float], temp_cold: list[float]) -> pd.DataFrame:
    """40 ice-free readings at 8 m/s (power 900-939 kW), then the cold readings."""
    warm = list(np.linspace(900.0, 939.0, 40))
    n_cold = len(power_cold)
    return readings(
        wind_speed=[8.1] * (40 + n_cold),
        power=warm + power_cold,
        temp_air=[10.0] * 40 + temp_cold,
    )


def test_icing_is_sub_zero_power_loss_lasting_half_an_hour() -> None:
    # Ice-free P10 of the 8.0-8.5 m/s bin is about 904 kW.
    frame = _icing_frame(
        power_cold=[700.0, 700.0, 700.0, 950.0, 700.0, 700.0, 700.0, 700.0],
        temp_cold=[-2.0, -2.0, -2.0, -2.0, -2.0, 1.0, -2.0, -2.0],
    )
    quarantine = Icing()(frame)
    # Rows 40-42: three low readings below 0 degC in a row. Row 43 produces well; rows
    # 44 and 46-47 are too short a run once the 1 degC reading (45) breaks it.
    assert quarantine["source_row"].tolist() == [40, 41, 42]
    assert quarantine["variable"].tolist() == ["power"] * 3
    reason = quarantine["reason"].iloc[0]
    assert reason.startswith("power = 700.0 kW at wind_speed = 8.1 m/s and temp_air = -2.0 degC")
    assert "for 3 readings in a row" in reason
    assert "(probable rotor icing)" in reason


def test_icing_is_not_flagged_below_cut_in_or_without_a_reference() -> None:
    frame = _icing_frame(power_cold=[-5.0, -5.0, -5.0], temp_cold=[-3.0, -3.0, -3.0])
    frame.loc[40:, "wind_speed"] = 3.0
    assert Icing()(frame).empty
    # Too few ice-free readings in the bin: nothing to compare with.
    sparse = _icing_frame(power_cold=[500.0] * 3, temp_cold=[-3.0] * 3).iloc[30:]
    assert Icing()(sparse).empty


def test_icing_reads_an_infinite_or_absurd_wind_speed_without_a_warning() -> None:
    # An 'inf' cell (quarantined by the range check) overflowed in the speed binning,
    # with numpy's bare "overflow encountered in divide" on stderr.
    frame = _icing_frame(power_cold=[700.0] * 3, temp_cold=[-2.0] * 3)
    frame.loc[41, "wind_speed"] = np.inf
    frame.loc[42, "wind_speed"] = 1e300  # overflowed the integer cast
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quarantine = Icing()(frame)
    assert not {41, 42} & set(quarantine["source_row"].tolist())


def test_icing_runs_do_not_cross_gaps_or_assets() -> None:
    frame = _icing_frame(power_cold=[700.0] * 4, temp_cold=[-2.0] * 4)
    gap = frame.copy()
    gap.loc[42:, "time"] += pd.Timedelta(hours=1)
    assert Icing()(gap).empty
    other = frame.copy()
    other.loc[42:, "asset_id"] = "T2"
    # T2 has no ice-free reference of its own, and T1's run is two readings long.
    assert Icing()(other).empty
    assert len(Icing()(frame)) == 4


@pytest.mark.parametrize(("step", "flagged"), [("20min", [41, 42]), ("30min", [40, 41, 42])])
def test_icing_is_judged_by_time_at_any_cadence(step: str, flagged: list[int]) -> None:
    # Half an hour of sub-zero loss: three 10-minute readings, two of 20 minutes, one
    # of 30 or 60. With a reading count fixed for 10-minute data, coarser data never
    # formed a run and its iced readings went unflagged.
    frame = _icing_frame(
        power_cold=[950.0, 700.0, 700.0, 950.0, 700.0, 950.0],
        temp_cold=[-2.0] * 6,
    )
    frame.loc[40, "power"] = 700.0 if step == "30min" else 950.0
    frame["time"] = pd.date_range("2014-01-01", periods=len(frame), freq=step, tz="UTC")
    quarantine = Icing()(frame)
    # Row 44 alone is 20 minutes at 20-minute steps, 30 at 30-minute ones.
    expected = flagged + ([44] if step == "30min" else [])
    assert quarantine["source_row"].tolist() == expected
    hourly = _icing_frame(power_cold=[950.0, 700.0, 950.0], temp_cold=[-2.0] * 3)
    hourly["time"] = pd.date_range("2014-01-01", periods=len(hourly), freq="1h", tz="UTC")
    quarantine = Icing()(hourly)
    assert quarantine["source_row"].tolist() == [41]
    assert "for 1 readings in a row (60.0 min)" in quarantine["reason"].iloc[0]
    # A missing reading ends a run, at any cadence.
    gap = frame.drop(index=41)
    assert 41 not in Icing()(gap)["source_row"].tolist()


def test_icing_counts_a_reading_for_no_longer_than_its_neighbours_are_apart() -> None:
    # Hourly readings, then 10-minute ones: one low 10-minute reading is 10 minutes of
    # loss, not the hour the turbine's usual step would make of it.
    frame = _icing_frame(power_cold=[950.0, 950.0, 700.0, 950.0, 950.0], temp_cold=[-2.0] * 5)
    hourly = pd.date_range("2014-01-01", periods=40, freq="1h", tz="UTC")
    tens = pd.date_range(hourly[-1] + pd.Timedelta(hours=1), periods=5, freq="10min")
    frame["time"] = hourly.append(tens)
    assert Icing()(frame).empty
    frame.loc[41:43, "power"] = 700.0  # half an hour of it
    assert Icing()(frame)["source_row"].tolist() == [41, 42, 43]


def test_icing_leaves_readings_without_a_time_or_turbine_out_of_runs() -> None:
    frame = _icing_frame(power_cold=[700.0] * 3, temp_cold=[-2.0] * 3)
    lost = pd.concat([frame, frame.iloc[[42]].assign(source_row=43)], ignore_index=True)
    lost.loc[43, "time"] = pd.NaT
    assert Icing()(lost)["source_row"].tolist() == [40, 41, 42]
    nameless = frame.copy()
    nameless["asset_id"] = pd.array([pd.NA] * len(frame), dtype="string")
    assert Icing()(nameless).empty


def test_icing_flags_nothing_for_a_turbine_without_a_step() -> None:
    frame = _icing_frame(power_cold=[700.0] * 3, temp_cold=[-2.0] * 3)
    lonely = frame.copy()
    lonely.loc[42, "asset_id"] = "T2"  # one reading: no step, so no span
    assert 42 not in Icing()(lonely)["source_row"].tolist()
    assert Icing()(frame.iloc[:0]).empty


def test_icing_rejects_inconsistent_parameters() -> None:
    with pytest.raises(ValueError, match="reference_temp_min >= temp_max"):
        Icing(temp_max=5.0, reference_temp_min=3.0)
    with pytest.raises(ValueError, match="quantile in"):
        Icing(quantile=1.5)
    for minutes in (0.0, -10.0, float("nan")):
        with pytest.raises(ValueError, match=r"min_minutes: expected a positive number"):
            Icing(min_minutes=minutes)
