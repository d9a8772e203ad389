"""Quality checks and quarantine: nothing dropped silently, every rejection explained."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinweave.data import (
    MIN_READINGS_ALL_OUT,
    QUARANTINE_COLUMNS,
    Check,
    ColumnSpec,
    DataError,
    DeadChannel,
    DuplicateTimestamps,
    FrozenSensor,
    RangeCheck,
    RequireFinite,
    SourceSpec,
    StuckSensor,
    clean,
    quarantine_rows,
    quarantine_summary,
    refuse_out_of_range,
    require_column,
)


def frame(
    wind_speed: list[float],
    *,
    assets: list[str] | None = None,
    minutes: list[int] | None = None,
    power: list[float] | None = None,
) -> pd.DataFrame:
    n = len(wind_speed)
    minutes = list(range(0, 10 * n, 10)) if minutes is None else minutes
    return pd.DataFrame(
        {
            "asset_id": pd.array(["T1"] * n if assets is None else assets, dtype="string"),
            "time": pd.Timestamp("2014-01-01", tz="UTC") + pd.to_timedelta(minutes, unit="min"),
            "source_row": np.arange(n, dtype=np.int64),
            "wind_speed": np.asarray(wind_speed, dtype=np.float64),
            "power": np.asarray([100.0] * n if power is None else power, dtype=np.float64),
        }
    )


def test_checks_meet_the_protocol() -> None:
    checks = [RequireFinite(("power",)), RangeCheck("power"), DuplicateTimestamps()]
    checks.append(StuckSensor("wind_speed"))
    assert all(isinstance(check, Check) for check in checks)
    assert [check.name for check in checks] == [
        "missing",
        "range",
        "duplicate_timestamp",
        "stuck_sensor",
    ]


def test_clean_partitions_raw_into_observations_and_quarantine() -> None:
    raw = frame([5.0, math.nan, 45.0, 6.0, -1.0], power=[1.0, 2.0, math.nan, 4.0, 5.0])
    raw.index = pd.Index([10, 20, 30, 40, 50])  # labels of the caller's frame do not matter
    checks = (RequireFinite(("wind_speed", "power")), RangeCheck("wind_speed", 0.0, 40.0))
    observations, quarantine = clean(raw, checks)

    assert observations["source_row"].tolist() == [0, 3]
    assert list(observations.index) == [0, 1]
    assert tuple(quarantine.columns) == QUARANTINE_COLUMNS
    assert quarantine.dtypes.astype(str).tolist() == [
        "string",
        "datetime64[ns, UTC]",
        "int64",
        "string",
        "float64",
        "string",
        "string",
        "bool",
    ]
    # Ordered by reading, then by check; one row per failed check.
    assert list(
        zip(quarantine["source_row"], quarantine["check"], quarantine["variable"], strict=True)
    ) == [
        (1, "missing", "wind_speed"),
        (2, "missing", "power"),
        (2, "range", "wind_speed"),
        (4, "range", "wind_speed"),
    ]
    # A reading is an observation iff it has no quarantine row.
    assert set(observations["source_row"]).isdisjoint(quarantine["source_row"])
    assert len(observations) + quarantine["source_row"].nunique() == len(raw)


def test_require_finite_flags_nan_and_infinity_per_variable() -> None:
    raw = frame([5.0, math.nan, math.inf], power=[math.nan, 1.0, 2.0])
    quarantine = RequireFinite(("wind_speed", "power"))(raw)
    assert sorted(zip(quarantine["source_row"], quarantine["variable"], strict=True)) == [
        (0, "power"),
        (1, "wind_speed"),
        (2, "wind_speed"),
    ]
    reasons = dict(zip(quarantine["source_row"], quarantine["reason"], strict=True))
    assert reasons[1] == "wind_speed is NaN; expected a finite value [m/s]"
    assert reasons[2] == "wind_speed is inf; expected a finite value [m/s]"
    with pytest.raises(TypeError, match="tuple of names"):
        RequireFinite("power")  # type: ignore[arg-type]


def test_range_check_is_inclusive_and_leaves_missing_values_alone() -> None:
    raw = frame([-0.01, 0.0, 40.0, 40.01, math.nan])
    quarantine = RangeCheck("wind_speed", 0.0, 40.0)(raw)
    assert quarantine["source_row"].tolist() == [0, 3]
    assert quarantine["value"].tolist() == [-0.01, 40.01]
    assert quarantine["reason"].iloc[1] == (
        "wind_speed = 40.01 m/s is outside [0.0, 40.0] m/s; expected a value within it"
    )
    with pytest.raises(ValueError, match="lower <= upper"):
        RangeCheck("power", 10.0, 0.0)
    with pytest.raises(KeyError, match="needs column 'temp_air'"):
        RangeCheck("temp_air", -40.0, 50.0)(raw)


def exact_and_differing_copies() -> pd.DataFrame:
    """Rows 0 and 3 are the same reading (NaN power in both); rows 1 and 4 share T2's
    time with different values; row 2 and row 5 with the same wind but other power."""
    return frame(
        [5.0, 5.1, 5.2, 5.0, 5.4, 5.2],
        assets=["T1", "T2", "T1", "T1", "T2", "T1"],
        minutes=[0, 0, 10, 0, 0, 10],
        power=[math.nan, 10.0, 20.0, math.nan, 11.0, 21.0],
    )


def test_a_row_exported_twice_is_one_reading() -> None:
    raw = exact_and_differing_copies()
    observations, quarantine = clean(raw, [DuplicateTimestamps()])
    # The first copy is kept; conflicting copies are all quarantined, as before.
    assert observations["source_row"].tolist() == [0]
    assert sorted(quarantine["source_row"]) == [1, 2, 3, 4, 5]
    reasons = dict(zip(quarantine["source_row"], quarantine["reason"], strict=True))
    assert reasons[3] == (
        "a copy of source row 0 (asset T1 at 2014-01-01 00:00:00+00:00, the same values); "
        "expected one reading per asset and time, so the first is kept"
    )
    assert reasons[5].startswith("2 readings of asset T1 at 2014-01-01 00:10:00+00:00")


def test_copies_are_told_apart_by_position_whatever_the_frames_index() -> None:
    # The same rows under a shuffled index of other labels: only the readings that
    # share an asset and time are compared, and found by position.
    raw = exact_and_differing_copies()
    plain = DuplicateTimestamps()(raw)
    shuffled = raw.set_axis([50, 10, 40, 20, 30, 0])
    quarantine = DuplicateTimestamps()(shuffled)
    assert sorted(quarantine["source_row"]) == [1, 2, 3, 4, 5]
    pd.testing.assert_frame_equal(
        quarantine.sort_values("source_row").reset_index(drop=True),
        plain.sort_values("source_row").reset_index(drop=True),
    )
    observations, _ = clean(shuffled, [DuplicateTimestamps()])
    assert observations["source_row"].tolist() == [0]


def test_every_copy_of_a_duplicated_timestamp_is_quarantined() -> None:
    raw = frame(
        [5.0, 5.1, 5.2, 5.3, 5.4, 5.5],
        assets=["T1", "T2", "T1", "T1", "T2", "T1"],
        minutes=[0, 0, 10, 0, 10, 10],
    )
    quarantine = DuplicateTimestamps()(raw)
    assert sorted(quarantine["source_row"]) == [0, 2, 3, 5]
    assert set(quarantine["variable"]) == {"*"}
    assert quarantine["value"].isna().all()
    reasons = dict(zip(quarantine["source_row"], quarantine["reason"], strict=True))
    assert (
        reasons[0]
        == reasons[3]
        == (
            "2 readings of asset T1 at 2014-01-01 00:00:00+00:00 (source rows 0, 3) with "
            "other values (wind_speed = 5.0, 5.3 m/s); expected one reading per asset and time"
        )
    )
    assert "(source rows 2, 5)" in reasons[5]

    three = frame([1.0, 2.0, 3.0], minutes=[0, 0, 0])
    assert DuplicateTimestamps()(three)["reason"].iloc[0].startswith("3 readings")
    assert len(DuplicateTimestamps()(frame([1.0, 2.0]))) == 0


def test_stuck_sensor_flags_runs_of_n_repeats_per_asset_in_time_order() -> None:
    # T1 in time order: 5, 5, 5, 6, 7, 7 ; T2: 5, 5, nan, nan, nan. File order is mixed.
    raw = frame(
        [5.0, 5.0, 6.0, 5.0, 5.0, 5.0, 7.0, math.nan, 7.0, math.nan, math.nan],
        assets=["T1", "T2", "T1", "T1", "T2", "T1", "T1", "T2", "T1", "T2", "T2"],
        minutes=[20, 0, 30, 0, 10, 10, 40, 20, 50, 30, 40],
    )
    quarantine = StuckSensor("wind_speed", n_repeats=3)(raw)
    assert sorted(quarantine["source_row"]) == [0, 3, 5]
    assert quarantine["reason"].iloc[0] == (
        "wind_speed = 5.0 m/s on 3 consecutive readings of this asset (source rows 3 to 0); "
        "expected a value that changes within 3 readings"
    )
    # T2's run of two 5.0 is long enough at n_repeats=2; NaN never forms a run.
    pairs = StuckSensor("wind_speed", n_repeats=2)(raw)
    assert sorted(pairs["source_row"]) == [0, 1, 3, 4, 5, 6, 8]
    with pytest.raises(ValueError, match="n_repeats >= 2"):
        StuckSensor("wind_speed", n_repeats=1)


def test_stuck_runs_do_not_cross_assets() -> None:
    raw = frame([4.0, 4.0, 4.0, 4.0], assets=["T1", "T1", "T2", "T2"], minutes=[0, 10, 0, 10])
    assert len(StuckSensor("wind_speed", n_repeats=3)(raw)) == 0


def thermometer(
    temps: list[float], minutes: list[int], assets: list[str] | None = None
) -> pd.DataFrame:
    raw = frame([6.0] * len(temps), assets=assets, minutes=minutes, power=[400.0] * len(temps))
    return raw.assign(temp_air=np.asarray(temps, dtype=np.float64))


def test_a_frozen_thermometer_is_blanked_and_its_readings_kept() -> None:
    # T1 holds 12.5 degC for 4 h (25 readings) then moves; T2 for 3 h 50 min only.
    hours_4 = list(range(0, 250, 10))
    raw = thermometer(
        [12.5] * 25 + [12.6] + [8.0] * 24,
        minutes=[*hours_4, 250, *range(0, 240, 10)],
        assets=["T1"] * 26 + ["T2"] * 24,
    )
    observations, quarantine = clean(raw, [FrozenSensor("temp_air")])
    # Every reading is kept; only T1's run loses its temperature.
    assert observations["source_row"].tolist() == list(range(50))
    assert observations["temp_air"].isna().tolist() == [True] * 25 + [False] * 25
    assert observations["power"].tolist() == [400.0] * 50
    assert quarantine["source_row"].tolist() == list(range(25))
    assert quarantine["blanked"].all() and set(quarantine["variable"]) == {"temp_air"}
    assert quarantine["value"].tolist() == [12.5] * 25  # the value as read
    assert quarantine["reason"].iloc[0] == (
        "temp_air = 12.5 degC held for 4.0 h on 25 readings of this asset, 2014-01-01 "
        "00:00 to 2014-01-01 04:00 UTC; expected a live sensor's value to change within "
        "4 h (temp_air blanked, the reading kept)"
    )


def test_a_frozen_run_is_judged_by_time_not_by_readings() -> None:
    # Hourly readings: 5 equal ones span 4 h; minute readings: 200 equal span 3 h 19 min.
    hourly = thermometer([3.0] * 5, minutes=[60 * i for i in range(5)])
    assert len(FrozenSensor("temp_air")(hourly)) == 5
    by_minute = thermometer([3.0] * 200, minutes=list(range(200)))
    assert len(FrozenSensor("temp_air")(by_minute)) == 0
    # A gap of more than max_gap_hours ends a run; so does a missing value.
    gapped = thermometer([3.0] * 6, minutes=[0, 60, 120, 300, 360, 420])
    assert len(FrozenSensor("temp_air")(gapped)) == 0
    assert len(FrozenSensor("temp_air", max_gap_hours=3.0)(gapped)) == 6
    holed = thermometer([3.0, 3.0, 3.0, math.nan, 3.0, 3.0], minutes=[0, 60, 120, 180, 240, 300])
    assert len(FrozenSensor("temp_air", min_hours=2.0)(holed)) == 3
    for field in ("min_hours", "max_gap_hours"):
        with pytest.raises(ValueError, match=f"{field}: expected a positive number of hours"):
            FrozenSensor("temp_air", **{field: 0.0})


def test_a_dead_power_channel_is_quarantined_and_an_idle_one_is_not() -> None:
    # A power column that reads 1.0 kW for 5 h while the wind blows 3 to 15 m/s: a
    # dead channel, on which a twin learned a flat curve. An idle turbine holding its
    # consumption (-0.5 kW) as long, or a live one holding 1.0 kW for 2 h, is kept.
    winds = list(np.linspace(3.0, 15.0, 31))
    dead = frame(winds, power=[1.0] * 31)
    quarantine = DeadChannel("power")(dead)
    assert quarantine["source_row"].tolist() == list(range(31))
    assert set(quarantine["check"]) == {"dead_channel"} and not quarantine["blanked"].any()
    assert quarantine["reason"].iloc[0] == (
        "power = 1.0 kW held for 5.0 h on 31 readings of this asset, 2014-01-01 00:00 to "
        "2014-01-01 05:00 UTC; expected a live channel's value to change within 3 h above 0 kW"
    )
    observations, _ = clean(dead, [DeadChannel("power")])
    assert observations.empty
    assert len(DeadChannel("power")(frame(winds, power=[-0.5] * 31))) == 0
    assert len(DeadChannel("power")(frame(winds[:13], power=[1.0] * 13))) == 0
    # Time sets the span: five hourly readings are 4 h.
    hourly = frame(winds[:5], power=[1.0] * 5, minutes=[60 * i for i in range(5)])
    assert len(DeadChannel("power")(hourly)) == 5
    with pytest.raises(ValueError, match="min_hours: expected a positive number of hours"):
        DeadChannel("power", min_hours=-1.0)


def test_a_reading_set_aside_by_another_check_stays_aside_when_a_value_is_blanked() -> None:
    raw = thermometer([7.0] * 30, minutes=list(range(0, 300, 10)))
    raw.loc[3, "wind_speed"] = 55.0
    observations, quarantine = clean(
        raw, [RangeCheck("wind_speed", 0, 40), FrozenSensor("temp_air")]
    )
    assert 3 not in observations["source_row"].tolist() and len(observations) == 29
    assert observations["temp_air"].isna().all()
    assert quarantine[quarantine["source_row"] == 3]["check"].tolist() == ["range", "frozen_sensor"]
    # The raw frame given to clean is left as it was.
    assert raw["temp_air"].notna().all()


@dataclass(frozen=True)
class NegativePower:
    """A user's own check, built with the public helpers."""

    @property
    def name(self) -> str:
        return "negative_power"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        power = require_column(frame, "power", self.name)
        return quarantine_rows(
            frame,
            power < 0,
            check=self.name,
            variable="power",
            value=power,
            reason="power = {value} kW on {asset_id} at wind_speed = {wind_speed} m/s; "
            "expected power >= 0 kW",
        )


def test_user_checks_join_the_chain() -> None:
    raw = frame([5.0, 6.0], power=[-3.25, 10.0])
    observations, quarantine = clean(raw, [NegativePower()])
    assert observations["source_row"].tolist() == [1]
    assert quarantine["reason"].tolist() == [
        "power = -3.25 kW on T1 at wind_speed = 5.0 m/s; expected power >= 0 kW"
    ]


@dataclass(frozen=True)
class Broken:
    @property
    def name(self) -> str:
        return "broken"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[:1]


def test_clean_refuses_a_check_that_does_not_return_quarantine_rows() -> None:
    with pytest.raises(TypeError, match="check 'broken' returned columns"):
        clean(frame([1.0]), [Broken()])


def test_quarantine_summary_counts_rows_per_check_and_variable() -> None:
    raw = frame([math.nan, 50.0, 50.0, 50.0], assets=["T1", "T1", "T1", "T1"])
    _, quarantine = clean(raw, [RequireFinite(("wind_speed",)), RangeCheck("wind_speed", 0, 40)])
    summary = quarantine_summary(quarantine)
    assert summary.to_dict("records") == [
        {"check": "range", "variable": "wind_speed", "n_rows": 3, "n_assets": 1},
        {"check": "missing", "variable": "wind_speed", "n_rows": 1, "n_assets": 1},
    ]
    assert len(quarantine_summary(quarantine.iloc[:0])) == 0


def test_clean_with_no_checks_keeps_everything() -> None:
    raw = frame([1.0, 2.0])
    observations, quarantine = clean(raw, [])
    pd.testing.assert_frame_equal(observations, raw)
    assert len(quarantine) == 0 and tuple(quarantine.columns) == QUARANTINE_COLUMNS


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["T1", "T2"]),
            st.integers(0, 5),
            st.one_of(st.just(math.nan), st.sampled_from([0.0, 3.0, 50.0]), st.floats(0, 45)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_no_reading_is_lost_or_kept_wrongly(rows: list[tuple[str, int, float]]) -> None:
    raw = frame(
        [speed for _, _, speed in rows],
        assets=[asset for asset, _, _ in rows],
        minutes=[10 * step for _, step, _ in rows],
    )
    checks = (
        RequireFinite(("wind_speed",)),
        RangeCheck("wind_speed", 0.0, 40.0),
        DuplicateTimestamps(),
        StuckSensor("wind_speed"),
    )
    observations, quarantine = clean(raw, checks)
    quarantined = set(quarantine["source_row"])
    assert set(observations["source_row"]) == set(raw["source_row"]) - quarantined
    assert quarantine["reason"].str.contains("expected").all()
    finite = observations["wind_speed"]
    assert finite.between(0.0, 40.0).all()
    assert not observations.duplicated(["asset_id", "time"]).any()


def test_clean_is_vectorised_on_a_two_year_fleet() -> None:

    rng = np.random.default_rng(0)
    n = 420_480
    raw = pd.DataFrame(
        {
            "asset_id": pd.array(np.repeat(["A", "B", "C", "D"], n // 4), dtype="string"),
            "time": np.tile(pd.date_range("2014-01-01", periods=n // 4, freq="10min", tz="UTC"), 4),
            "source_row": np.arange(n, dtype=np.int64),
            "wind_speed": np.round(rng.weibull(2.0, n) * 8.0, 1),
            "power": rng.uniform(-50, 2100, n),
        }
    )
    observations, quarantine = clean(
        raw,
        (
            RequireFinite(("wind_speed", "power")),
            RangeCheck("wind_speed", 0.0, 40.0),
            DuplicateTimestamps(),
            StuckSensor("wind_speed"),
        ),
    )
    assert len(observations) + quarantine["source_row"].nunique() == n
    assert (quarantine["check"] == "stuck_sensor").sum() > 0  # rounded speeds do repeat


# -- walk-through of the data pathway (2026-11-30) ------------------------------------------
def test_duplicate_timestamps_name_the_values_that_differ() -> None:
    # The reason said only that two readings shared a time: which values, the reader had
    # to look up in the file.
    raw = frame([5.0, 6.0, 6.0, 7.0], minutes=[0, 10, 10, 20], power=[1.0, 343.68, 843.68, 2.0])
    quarantine = DuplicateTimestamps()(raw)
    assert list(quarantine["source_row"]) == [1, 2]
    for reason in quarantine["reason"]:
        assert "(source rows 1, 2) with other values (power = 343.68, 843.68 kW)" in reason
        assert "wind_speed" not in reason  # the same in both
    # Equal to 4 decimals, not to the last digit: shown in full, never as "equal".
    close = frame([6.0, 6.0], minutes=[0, 0], power=[1.00001, 1.00002])
    assert "power = 1.00001, 1.00002 kW" in DuplicateTimestamps()(close)["reason"][0]


def test_every_reading_out_of_range_refuses_the_file_with_the_unit_that_fits() -> None:
    spec = SourceSpec(
        asset_id="T1",
        time_column="t",
        time_zone="UTC",
        columns={
            "wind_speed": ColumnSpec(source="ws", unit="m/s"),
            "power": ColumnSpec(source="P", unit="kW"),
        },
    )
    checks = [RangeCheck("wind_speed", 0.0, 40.0), RangeCheck("power", -100.0, 2152.5)]
    n = MIN_READINGS_ALL_OUT
    in_watts = frame([5.0] * n, power=list(np.linspace(3_000.0, 1_900_000.0, n)))
    with pytest.raises(DataError) as refused:
        refuse_out_of_range(in_watts, checks, path="w.csv", spec=spec)
    error = refused.value
    assert (error.path, error.column, error.row, error.value) == ("w.csv", "P", 0, 3000.0)
    message = str(error)
    assert f"all {n} readings of power, read in 'kW', are out of its physical range" in message
    assert "power within [-100, 2152.5] kW" in message
    assert "read in 'W', 100% of them would be within it" in message
    # One short of the minimum may be chance (an outage's readings): left to quarantine.
    refuse_out_of_range(in_watts.iloc[1:], checks, path="w.csv", spec=spec)
    # One reading within range: the unit reads some right, the rest is quarantined.
    mostly = in_watts.assign(power=[500.0, *in_watts["power"].iloc[1:]])
    refuse_out_of_range(mostly, checks, path="w.csv", spec=spec)
    # No usual unit fits: none suggested.
    absurd = frame([5.0] * n, power=[1e12] * n)
    with pytest.raises(DataError, match="is the column's unit right") as refused:
        refuse_out_of_range(absurd, checks, path="w.csv", spec=spec)
    assert "would be within it" not in str(refused.value)
    # Missing readings are not counted: they are RequireFinite's.
    sparse = frame([5.0] * (n + 5), power=[np.nan] * 6 + [1e6] * (n - 1))
    refuse_out_of_range(sparse, checks, path="w.csv", spec=spec)
