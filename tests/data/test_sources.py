"""File sources: the raw frame contract, units, time zones, and errors naming the culprit."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from pydantic import ValidationError

from twinweave.core import canonical_unit, parse_unit
from twinweave.core._schema import suggest_unit, unit_registry
from twinweave.data import (
    RECORD_COLUMNS,
    ColumnSpec,
    DataError,
    SourceInfo,
    SourceSpec,
    _sources,
    asset_ids,
    read_source,
)
from twinweave.data._sources import csv_line
from twinweave.domains.wind import LA_HAUTE_BORNE

SPEC = SourceSpec(
    asset_column="turbine",
    time_column="time_utc",
    columns={
        "wind_speed": ColumnSpec(source="ws", unit="m/s"),
        "power": ColumnSpec(source="p", unit="kW"),
        "temp_air": ColumnSpec(source="t", unit="degC", missing_codes=(-273.2, "n/a")),
    },
)

GOOD_CSV = """turbine,time_utc,ws,p,t
T1,2014-01-01T01:00:00+01:00,5.5,300.0,4.0
T2,2014-01-01T01:00:00+01:00,6.0,350.0,-273.2
T1,2014-01-01T01:10:00+01:00,5.7,320.0,n/a
T2,2014-01-01T01:10:00+01:00,6.2,,4.5
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_names_everything(
    error: DataError,
    path: Path,
    column: str | None,
    row: int | None,
    value: object,
    line: int | None = None,
) -> None:
    """The message names the file, column, row, value and what was expected.

    ``row`` is the 0-based data row; ``line`` the 1-based line of a CSV file, which the
    message gives next to the row. Without a line (Parquet), the message says how rows
    are counted.
    """
    message = str(error)
    assert str(path) in message
    assert error.path == str(path)
    assert error.column == column
    assert error.row == row
    assert error.line == line
    assert error.value == value
    if column is not None:
        assert f"column {column!r}" in message
    if row is None:
        assert "row n/a" in message
    elif line is None:
        assert f", row {row}, counting data rows from 0," in message
    else:
        assert f", row {row} (line {line})," in message
    if value is None:
        assert "value n/a" in message
    elif isinstance(value, str):
        assert f"value {value!r}" in message
    else:
        assert f"value {value}" in message
    assert "np." not in message  # no numpy reprs such as np.float64(nan)
    assert error.expected
    assert f"expected {error.expected}" in message


# -- the raw frame -----------------------------------------------------------------------
def test_a_file_read_by_a_relative_path_is_known_by_its_absolute_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Provenance keeps this path: read from elsewhere, "scada.csv" would lead nowhere.
    write(tmp_path, "scada.csv", GOOD_CSV)
    monkeypatch.chdir(tmp_path)
    info, _ = read_source("scada.csv", SPEC)
    assert info.path == str(tmp_path.resolve() / "scada.csv")


def test_a_file_that_changes_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process appends to the file while it is parsed: the hash taken after the
    # parse would be of bytes never read. A fake: the reader's own parse is real.
    path = write(tmp_path, "scada.csv", GOOD_CSV)
    parse = _sources._read_columns

    def parse_then_append(*arguments: object) -> pd.DataFrame:
        frame = parse(*arguments)  # type: ignore[arg-type]
        with path.open("a", encoding="utf-8") as handle:
            handle.write("T1,2014-01-01T01:20:00+01:00,5.9,340.0,4.0\n")
        return frame

    monkeypatch.setattr(_sources, "_read_columns", parse_then_append)
    with pytest.raises(DataError, match=r"the file changed while it was read"):
        read_source(path, SPEC)


def test_csv_becomes_a_raw_frame_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "scada.csv", GOOD_CSV)
    info, raw = read_source(path, SPEC)

    assert info == SourceInfo(
        path=str(path.resolve()), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), n_rows=4
    )
    assert list(raw.columns) == [*RECORD_COLUMNS, "wind_speed", "power", "temp_air"]
    assert raw["asset_id"].dtype == "string"
    assert raw["time"].dtype == "datetime64[ns, UTC]"
    assert raw["source_row"].dtype == np.int64
    assert all(raw[name].dtype == np.float64 for name in ("wind_speed", "power", "temp_air"))
    assert raw["asset_id"].tolist() == ["T1", "T2", "T1", "T2"]
    assert raw["source_row"].tolist() == [0, 1, 2, 3]
    assert raw["time"].iloc[0] == pd.Timestamp("2014-01-01T00:00:00Z")
    # Empty cells, numeric and text missing codes all become NaN; nothing else does.
    assert raw["power"].isna().tolist() == [False, False, False, True]
    assert raw["temp_air"].isna().tolist() == [False, True, True, False]


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    csv = write(tmp_path, "scada.csv", GOOD_CSV)
    parquet = tmp_path / "scada.parquet"
    pd.read_csv(csv, dtype=str).to_parquet(parquet)
    _, from_csv = read_source(csv, SPEC)
    _, from_parquet = read_source(parquet, SPEC)
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_float32_missing_code_matches_its_declared_value(tmp_path: Path) -> None:
    # SCADA exports store -273.2 as float32, which reads back as -273.20001.
    table = pa.table(
        {
            "turbine": ["T1", "T1", "T1"],
            "time_utc": ["2014-01-01T00:00Z", "2014-01-01T00:10Z", "2014-01-01T00:20Z"],
            "ws": pa.array([5.0, 5.1, 5.2], pa.float32()),
            "p": pa.array([1.0, 2.0, 3.0], pa.float32()),
            "t": pa.array([-273.2, 3.0, -273.19], pa.float32()),
        }
    )
    path = tmp_path / "scada.parquet"
    pq.write_table(table, path)
    _, raw = read_source(path, SPEC)
    assert raw["temp_air"].isna().tolist() == [True, False, False]


def test_single_asset_file_takes_the_declared_asset_id(tmp_path: Path) -> None:
    path = write(tmp_path, "pump.csv", "t,P\n2014-06-01T00:00:00Z,1500\n2014-06-01T00:10:00Z,0\n")
    spec = SourceSpec(
        asset_id="pump-1", time_column="t", columns={"power": ColumnSpec(source="P", unit="W")}
    )
    _, raw = read_source(path, spec)
    assert raw["asset_id"].tolist() == ["pump-1", "pump-1"]
    assert raw["asset_id"].dtype == "string"


# -- units -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "unit", "given", "expected"),
    [
        ("power", "W", [1500.0, -20.0], [1.5, -0.02]),
        ("power", "MW", [2.05, 0.0], [2050.0, 0.0]),
        ("wind_speed", "km/h", [36.0, 0.0], [10.0, 0.0]),
        ("temp_air", "K", [273.15, 293.15], [0.0, 20.0]),
        ("temp_air", "degF", [32.0, 212.0], [0.0, 100.0]),
        ("temp_air", "degC", [-5.0, 20.0], [-5.0, 20.0]),
    ],
)
def test_values_come_out_in_the_glossary_unit(
    tmp_path: Path, variable: str, unit: str, given: list[float], expected: list[float]
) -> None:
    lines = ["time,x", *(f"2014-01-01T00:{10 * i:02d}:00Z,{v}" for i, v in enumerate(given))]
    path = write(tmp_path, "x.csv", "\n".join(lines) + "\n")
    spec = SourceSpec(
        asset_id="a", time_column="time", columns={variable: ColumnSpec(source="x", unit=unit)}
    )
    _, raw = read_source(path, spec)
    np.testing.assert_allclose(raw[variable].to_numpy(), expected, atol=1e-9)
    # ... which is pint's conversion to the glossary's canonical unit.
    canonical = unit_registry().Quantity(np.array(given), unit).to(canonical_unit(variable))
    np.testing.assert_allclose(raw[variable].to_numpy(), canonical.magnitude)


def test_unit_of_the_wrong_dimension_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"columns\.power\.unit.*'m/s'.*'kW'"):
        SourceSpec(
            asset_id="a", time_column="t", columns={"power": ColumnSpec(source="P", unit="m/s")}
        )


def test_a_unit_of_differences_is_refused_when_the_mapping_is_loaded(tmp_path: Path) -> None:
    # delta_degC is a temperature to pint too, but a difference: converting it to degC
    # failed only when the data was read, with pint's DimensionalityError.
    path = write(tmp_path, "map.toml", TOML_MAPPING.replace('"degC"', '"delta_degC"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.temp_air.unit", None, "delta_degC")
    assert caught.value.expected.startswith("a unit convertible to 'degC'")
    assert caught.value.expected.endswith("did you mean 'degC'?")
    with pytest.raises(ValidationError, match="cannot be converted"):
        SourceSpec(
            asset_id="a",
            time_column="t",
            columns={"temp_air": ColumnSpec(source="t", unit="delta_degF")},
        )


@pytest.mark.parametrize(("unit", "problem"), [("", "unit is required"), ("  ", "is required")])
def test_an_empty_unit_is_said_to_be_required(tmp_path: Path, unit: str, problem: str) -> None:
    path = write(tmp_path, "map.toml", TOML_MAPPING.replace('"kW"', f'"{unit}"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.power.unit", None, unit)
    assert problem in caught.value.problem
    assert "cannot be converted" not in str(caught.value)
    assert "pint unit expression such as 'kW'" in caught.value.expected


@pytest.mark.parametrize(("written", "meant"), [("1000*W", "kW"), ("kW/1000", "W")])
def test_a_unit_with_a_scale_factor_is_refused_with_the_unit_without_it(
    tmp_path: Path, written: str, meant: str
) -> None:
    path = write(tmp_path, "map.toml", TOML_MAPPING.replace('"kW"', f'"{written}"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.power.unit", None, written)
    assert "scale factor is not supported" in caught.value.problem
    assert caught.value.expected.endswith(f"such as {meant!r} for {written!r}")


# -- time zones --------------------------------------------------------------------------
def _dst_rows() -> tuple[list[str], list[str], list[str]]:
    """Paris local times across both 2014 clock changes, with their offsets and UTC."""
    local: list[str] = []
    offsets: list[str] = []
    utc: list[str] = []

    def add(day: str, hours: list[int], offset: str) -> None:
        for hour in hours:
            for minute in range(0, 60, 10):
                local.append(f"{day} {hour:02d}:{minute:02d}:00")
                offsets.append(offset)
                stamp = pd.Timestamp(f"{day} {hour:02d}:{minute:02d}:00{offset}")
                utc.append(str(stamp.tz_convert("UTC")))

    # 30 March: clocks jump from 02:00 to 03:00, no 02:xx readings.
    add("2014-03-30", [1], "+01:00")
    add("2014-03-30", [3], "+02:00")
    # 26 October: 02:xx happens twice, first in summer time, then in winter time.
    add("2014-10-26", [1, 2], "+02:00")
    add("2014-10-26", [2, 3], "+01:00")
    return local, offsets, utc


def _two_assets_csv(times: list[str]) -> str:
    lines = ["turbine,time_utc,ws,p,t"]
    for i, time in enumerate(times):
        for turbine in ("T1", "T2"):
            lines.append(f"{turbine},{time},{5 + i / 100},{100 + i},10")
    return "\n".join(lines) + "\n"


def test_paris_local_times_across_both_clock_changes_become_utc(tmp_path: Path) -> None:
    local, _, utc = _dst_rows()
    path = write(tmp_path, "paris.csv", _two_assets_csv(local))
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    _, raw = read_source(path, spec)

    for turbine in ("T1", "T2"):
        times = raw.loc[raw["asset_id"] == turbine, "time"]
        assert [str(t) for t in times] == utc
        assert times.is_unique
    # Readings stay 10 minutes apart through each change: nothing lost, nothing doubled.
    spring = raw.loc[(raw["asset_id"] == "T1") & (raw["time"] < "2014-06-01"), "time"]
    assert (spring.diff().dropna() == pd.Timedelta("10min")).all()
    autumn = raw.loc[(raw["asset_id"] == "T1") & (raw["time"] > "2014-06-01"), "time"]
    assert (autumn.diff().dropna() == pd.Timedelta("10min")).all()
    assert len(autumn) == 24


def test_a_reading_alone_in_the_repeated_hour_is_taken_as_summer_time_and_said(
    tmp_path: Path,
) -> None:
    local, _, utc = _dst_rows()
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both occurrences there: no doubt, no warning
        read_source(write(tmp_path, "both.csv", _two_assets_csv(local)), spec)
    # Without the summer-time 02:xx (as La Haute Borne's file lacks it in 2014), the
    # winter-time ones are alone: taken as summer time, an hour early, and said.
    first = local.index("2014-10-26 02:00:00")
    kept = local[:first] + local[first + 6 :]
    path = write(tmp_path, "one.csv", _two_assets_csv(kept))
    with pytest.warns(UserWarning, match=r"12 readings in the hour that repeats") as caught:
        _, raw = read_source(path, spec)
    message = str(caught[0].message)
    # Two turbines per time: T1's first lone reading is row 2 x its place in the list.
    assert f"first: row {2 * first}, '2014-10-26 02:00:00', asset 'T1'" in message
    assert "taken as summer time" in message
    times = raw.loc[raw["asset_id"] == "T1", "time"]
    # 00:00 UTC (summer time's 02:00), where 01:00 UTC (winter time's) was written.
    assert (str(times.iloc[first]), utc[first + 6]) == (utc[first], "2014-10-26 01:00:00+00:00")


def _autumn_csv(order: dict[str, str]) -> tuple[str, list[str]]:
    """A CSV of 26 October 2014 in Paris, both passes of 02:xx, each turbine's readings
    written in ``order`` ("ascending" or "descending"); power is the reading's place in
    time. Also the UTC time of each reading, by that place."""
    local, _, utc = _dst_rows()
    autumn = [i for i, time in enumerate(local) if time.startswith("2014-10-26")]
    lines = ["turbine,time_utc,ws,p,t"]
    for turbine, direction in order.items():
        places = range(len(autumn)) if direction == "ascending" else reversed(range(len(autumn)))
        lines += [f"{turbine},{local[autumn[k]]},5,{k},10" for k in places]
    return "\n".join(lines) + "\n", [utc[i] for i in autumn]


@pytest.mark.parametrize(
    "order",
    [
        {"T1": "ascending", "T2": "ascending"},
        {"T1": "descending", "T2": "descending"},
        {"T1": "ascending", "T2": "descending"},
    ],
    ids=["oldest first", "newest first", "one turbine each way"],
)
def test_a_file_newest_first_reads_the_repeated_hour_as_one_oldest_first(
    tmp_path: Path, order: dict[str, str]
) -> None:
    # Newest first, an asset's first reading at a repeated 02:xx is the winter-time one.
    text, utc = _autumn_csv(order)
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each turbine's order is clear: nothing to say
        _, raw = read_source(write(tmp_path, "autumn.csv", text), spec)
    for turbine in order:
        # Sorted by power, the reading's place in time: the UTC times in time order.
        readings = raw[raw["asset_id"] == turbine].sort_values("power")
        assert [str(t) for t in readings["time"]] == utc


def test_a_duplicated_row_does_not_hide_which_way_a_file_runs(tmp_path: Path) -> None:
    # Every row twice: the repeated times go neither way and are not counted as steps
    # (review 2026-11-30: the file was judged to run neither way, and said so).
    text, _ = _autumn_csv({"T1": "ascending"})
    header, *rows = text.splitlines()
    doubled = [row for row in rows for _ in range(2)]
    path = write(tmp_path, "twice.csv", "\n".join([header, *doubled]) + "\n")
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_source(path, spec)
    assert not [w for w in caught if "run neither" in str(w.message)], caught


def test_readings_in_no_clear_order_take_the_first_of_two_as_summer_time_and_say_so(
    tmp_path: Path,
) -> None:
    text, utc = _autumn_csv({"T1": "ascending"})
    header, *rows = text.splitlines()
    # Only the repeated hour, both passes: no other reading shows which way the file runs.
    repeated = [row for row in rows if " 02:" in row]
    path = write(tmp_path, "hour.csv", "\n".join([header, *repeated]) + "\n")
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    with pytest.warns(UserWarning, match="run neither forward nor backwards") as caught:
        _, raw = read_source(path, spec)
    assert "first: row 0, '2014-10-26 02:00:00', asset 'T1'" in str(caught[0].message)
    assert [str(t) for t in raw["time"]] == utc[6:18]


def test_offsets_and_local_times_give_the_same_utc(tmp_path: Path) -> None:
    local, offsets, _ = _dst_rows()
    with_offsets = [f"{t.replace(' ', 'T')}{o}" for t, o in zip(local, offsets, strict=True)]
    _, from_offsets = read_source(write(tmp_path, "a.csv", _two_assets_csv(with_offsets)), SPEC)
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    _, from_local = read_source(write(tmp_path, "b.csv", _two_assets_csv(local)), spec)
    pd.testing.assert_series_equal(from_offsets["time"], from_local["time"])


def test_explicit_time_format_with_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "when,P\n30/03/2014 01:50,1\n30/03/2014 03:00,2\n")
    spec = SourceSpec(
        asset_id="a",
        time_column="when",
        time_format="%d/%m/%Y %H:%M",
        time_zone="Europe/Paris",
        columns={"power": ColumnSpec(source="P", unit="kW")},
    )
    _, raw = read_source(path, spec)
    assert raw["time"].tolist() == [
        pd.Timestamp("2014-03-30T00:50Z"),
        pd.Timestamp("2014-03-30T01:00Z"),
    ]


def test_parquet_timestamps_with_and_without_zone(tmp_path: Path) -> None:
    naive = pd.to_datetime(["2014-10-26 01:50", "2014-10-26 02:00", "2014-10-26 02:00"])
    frame = pd.DataFrame({"turbine": ["T1"] * 3, "time_utc": naive, "ws": 1.0, "p": 2.0, "t": 3.0})
    path = tmp_path / "naive.parquet"
    frame.to_parquet(path)
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    _, raw = read_source(path, spec)
    assert [str(t) for t in raw["time"]] == [
        "2014-10-25 23:50:00+00:00",
        "2014-10-26 00:00:00+00:00",
        "2014-10-26 01:00:00+00:00",
    ]
    aware = frame.assign(time_utc=naive.tz_localize("Europe/Paris", ambiguous=[True, True, False]))
    aware_path = tmp_path / "aware.parquet"
    aware.to_parquet(aware_path)
    _, raw_aware = read_source(aware_path, SPEC)
    pd.testing.assert_series_equal(raw["time"], raw_aware["time"])

    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "time_utc", 0, "2014-10-26 01:50:00")
    assert "row 0, counting data rows from 0" in str(caught.value)


# -- bad input: each error names the file, column, row, value and expectation ------------
@pytest.mark.parametrize(
    ("time_format", "directive"), [("%s", "%s"), ("%d.%m.%Y %H:%Q", "%Q"), ("%E", "%E")]
)
def test_a_time_format_pandas_cannot_read_is_refused_when_the_mapping_is_loaded(
    tmp_path: Path, time_format: str, directive: str
) -> None:
    # It was refused only when a file was read, by pandas: "'s' is a bad directive in
    # format '%s'", naming neither the mapping nor its key.
    text = f'time_format = "{time_format}"\ntime_zone = "UTC"\n' + TOML_MAPPING
    path = write(tmp_path, "map.toml", text)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "time_format", None, time_format)
    assert caught.value.problem.endswith(f"a directive pandas cannot read, {directive}")
    assert "epoch seconds (%s) are not supported" in caught.value.expected


def test_formats_pandas_reads_are_accepted() -> None:
    for time_format in ("%d.%m.%Y", "%d/%m/%Y %I:%M %p", "%Y%m%d%H%M%S.%f", "%j %Y %H:%M"):
        SourceSpec(
            asset_id="a",
            time_column="t",
            time_format=time_format,
            time_zone="UTC",
            columns={"power": ColumnSpec(source="p", unit="kW")},
        )
    SourceSpec(
        asset_id="a",
        time_column="t",
        time_format="%Y-%m-%dT%H:%M%z",
        columns={"power": ColumnSpec(source="p", unit="kW")},
    )


def test_missing_column_names_the_columns_present(tmp_path: Path) -> None:
    path = write(tmp_path, "scada.csv", GOOD_CSV.replace(",ws,", ",wind,"))
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "ws", None, None)
    assert "['turbine', 'time_utc', 'wind', 'p', 't']" in str(caught.value)
    assert "wind_speed [m/s]" in caught.value.expected
    assert "separated by" not in str(caught.value)
    # Semicolons, as European spreadsheets write them: the header is one column, said.
    path = write(tmp_path, "semicolons.csv", GOOD_CSV.replace(",", ";"))
    said = (
        r"\(separated by ';'\? the file was read as separated by ',': declare delimiter in "
        r"the mapping, or give twinweave --delimiter ';', which replaces the mapping's\)"
    )
    with pytest.raises(DataError, match=said):
        read_source(path, SPEC)


def test_unparseable_time_names_the_first_bad_row(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("T1,2014-01-01T01:10:00+01:00", "T1,2014-13-01T01:10:00+01:00")
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "time_utc", 2, "2014-13-01T01:10:00+01:00", 4)
    assert "ISO 8601" in caught.value.expected
    assert "1 of 4 rows" in str(caught.value)


def test_time_in_the_wrong_format_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "when,P\n30/03/2014 01:50,1\n2014-03-30 03:00,2\n")
    spec = SourceSpec(
        asset_id="a",
        time_column="when",
        time_format="%d/%m/%Y %H:%M",
        time_zone="UTC",
        columns={"power": ColumnSpec(source="P", unit="kW")},
    )
    with pytest.raises(DataError) as caught:
        read_source(path, spec)
    assert_names_everything(caught.value, path, "when", 1, "2014-03-30 03:00", 3)
    assert "'%d/%m/%Y %H:%M'" in caught.value.expected


def test_time_without_offset_needs_a_time_zone(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("T2,2014-01-01T01:10:00+01:00", "T2,2014-01-01T01:10:00")
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "time_utc", 3, "2014-01-01T01:10:00", 5)
    assert "no UTC offset" in str(caught.value)
    assert "time_zone" in caught.value.expected


def test_local_time_in_the_skipped_hour_is_an_error(tmp_path: Path) -> None:
    text = "turbine,time_utc,ws,p,t\nT1,2014-03-30 01:50,1,1,1\nT1,2014-03-30 02:00,1,1,1\n"
    path = write(tmp_path, "paris.csv", text)
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    with pytest.raises(DataError) as caught:
        read_source(path, spec)
    # The cell as the file writes it, not as parsed (2014-03-30 02:00:00).
    assert_names_everything(caught.value, path, "time_utc", 1, "2014-03-30 02:00", 3)
    assert "Europe/Paris" in caught.value.expected
    day_first = write(tmp_path, "day_first.csv", text.replace("2014-03-30", "30/03/2014"))
    with pytest.raises(DataError) as caught:
        read_source(day_first, spec.model_copy(update={"time_format": "%d/%m/%Y %H:%M"}))
    assert_names_everything(caught.value, day_first, "time_utc", 1, "30/03/2014 02:00", 3)


def test_all_missing_column_is_an_error(tmp_path: Path) -> None:
    text = GOOD_CSV.replace(",4.0\n", ",n/a\n").replace(",4.5\n", ",\n")
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    error = caught.value
    assert error.path == str(path) and error.column == "t" and error.row is None
    assert np.isnan(error.value)  # type: ignore[arg-type]
    assert "all 4 rows are missing after missing codes [-273.2, 'n/a']" in str(error)
    assert "column 't', row n/a, a missing value (NaN))" in str(error)
    assert f"expected {error.expected}" in str(error) and "temp_air" in error.expected


def test_non_numeric_value_is_named(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("T1,2014-01-01T01:10:00+01:00,5.7", "T1,2014-01-01T01:10:00+01:00,fast")
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "ws", 2, "fast", 4)
    assert "a number in m/s" in caught.value.expected


def test_a_decimal_comma_is_named_as_such(tmp_path: Path) -> None:
    text = GOOD_CSV.replace(",", ";").replace(";5.7;", ";5,7;")
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC.model_copy(update={"delimiter": ";"}))
    assert_names_everything(caught.value, path, "ws", 2, "5,7", 4)
    assert caught.value.expected.endswith("; a decimal comma? the file must use '.'")
    other = write(tmp_path, "other.csv", GOOD_CSV.replace(",5.7,", ",fast,"))
    with pytest.raises(DataError) as caught:
        read_source(other, SPEC)
    assert "decimal comma" not in str(caught.value)


def test_row_with_more_fields_than_the_header_is_named(tmp_path: Path) -> None:
    text = GOOD_CSV.replace(
        "T1,2014-01-01T01:10:00+01:00,5.7,", "T1,2014-01-01T01:10:00+01:00,5,7,"
    )
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, None, 2, "6 fields", 4)
    assert caught.value.expected == "5 fields separated by ',', as in the header"


@pytest.mark.parametrize(
    ("text", "row", "n_fields"),
    [
        # The last line cut short, as where a copy stopped: no newline, fields lost.
        (GOOD_CSV.rstrip("\n")[: -len(",4.5")], 3, "4 fields"),
        # A row in the middle with its last two fields left out.
        (GOOD_CSV.replace(",5.7,320.0,n/a", ",5.7"), 2, "3 fields"),
    ],
)
def test_row_with_fewer_fields_than_the_header_is_named(
    tmp_path: Path, text: str, row: int, n_fields: str
) -> None:
    # pandas reads the fields a row lacks as missing values: refused, not read as gaps.
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, None, row, n_fields, row + 2)
    assert caught.value.expected == "5 fields separated by ',', as in the header"
    assert "fewer fields than the header" in str(caught.value)


def test_missing_values_at_the_end_of_a_row_are_not_a_short_row(tmp_path: Path) -> None:
    text = GOOD_CSV.replace(",320.0,n/a", ",320.0,") + "T1,2014-01-01T01:20:00+01:00,5.9,,\n"
    _, frame = read_source(write(tmp_path, "scada.csv", text), SPEC)
    assert len(frame) == 5
    assert frame["temp_air"].isna().sum() == 3 and frame["power"].isna().sum() == 2
    # A header ending in a delimiter names no more fields than it would without it.
    header, *rows = GOOD_CSV.splitlines(keepends=True)
    for text in (header.replace("\n", ",\n") + "".join(rows), GOOD_CSV.replace("\n", ",\n")):
        _, trailing = read_source(write(tmp_path, "trailing.csv", text), SPEC)
        pd.testing.assert_frame_equal(
            trailing, read_source(write(tmp_path, "g.csv", GOOD_CSV), SPEC)[1]
        )


def test_a_ragged_row_after_blank_lines_and_a_quoted_line_break_is_named(
    tmp_path: Path,
) -> None:
    # pandas counts records and blank lines ("line 6" here), not the file's lines: the
    # error names data row 2 on line 7 all the same.
    text = (
        "turbine,time_utc,ws,p,t\n"
        '"T\n1",2014-01-01T01:00:00+01:00,5.5,300.0,4.0\n'
        "\n"
        "T2,2014-01-01T01:00:00+01:00,6.0,350.0,4.2\n"
        "   \n"
        "T1,2014-01-01T01:10:00+01:00,5,7,320.0,4.1\n"
    )
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, None, 2, "6 fields", 7)


def test_missing_asset_id_is_named(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("T2,2014-01-01T01:10", ",2014-01-01T01:10")
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    error = caught.value
    assert error.column == "turbine" and error.row == 3 and error.line == 5
    assert "row 3 (line 5)" in str(error) and str(path) in str(error)
    assert "non-empty asset id" in str(error)
    assert "a missing value (NaN)" in str(error)


def test_a_header_that_is_not_utf8_is_named_by_its_line_and_byte(tmp_path: Path) -> None:
    # It was pandas' "'utf-8' codec can't decode byte 0xb0 in position 5", naming neither
    # the file nor the line.
    path = tmp_path / "scada.csv"
    path.write_bytes(GOOD_CSV.replace(",t\n", ",temp_°C\n", 1).encode("latin-1"))
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    error = caught.value
    assert error.path == str(path) and error.line == 1 and error.row is None
    assert error.value == b"temp_\xb0C" and error.column is None
    assert "header is not UTF-8: byte 0xb0 (byte 28 of its line)" in error.problem
    assert "UTF-8 text" in error.expected and "iconv -f latin1 -t utf-8" in error.expected
    assert f"{path}: " in str(error) and "(no column, line 1, value b'temp_\\xb0C')" in str(error)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_value_that_is_not_utf8_is_named_by_its_column_row_and_line(
    tmp_path: Path, suffix: str
) -> None:
    text = GOOD_CSV.replace(
        "T1,2014-01-01T01:10:00+01:00,5.7,320.0,n/a", 'T1,"2014-01-01T01:10\n:00+01:00",5.7,320.0,é'
    )
    data = ("\n" + text).encode("latin-1")
    path = tmp_path / f"scada.csv{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    # A blank line first, and a quoted line break: row 2 starts at line 5, é is on line 6.
    assert_names_everything(caught.value, path, "t", 2, b"\xe9", 6)
    assert "text is not UTF-8: byte 0xe9 (byte 22 of its line)" in caught.value.problem


def test_bytes_that_are_not_utf8_in_columns_not_read_do_not_matter(tmp_path: Path) -> None:
    # A Latin-1 header and value in a column the mapping does not read (MAPPING.md:
    # columns not named are ignored); a replacement character written as such in one it
    # reads is text like any other.
    text = GOOD_CSV.replace(",t\n", ",t,note_°C\n", 1)
    lines = text.splitlines()
    lines[1:] = [line + (",é" if i == 2 else ",") for i, line in enumerate(lines[1:])]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    _, raw = read_source(latin, SPEC)
    _, expected = read_source(write(tmp_path, "good.csv", GOOD_CSV), SPEC)
    pd.testing.assert_frame_equal(raw, expected)
    replaced = write(tmp_path, "replaced.csv", GOOD_CSV.replace("T2,", "T\ufffd2,"))
    _, raw = read_source(replaced, SPEC)
    assert "T\ufffd2" in set(raw["asset_id"])


def test_a_mapping_file_that_is_not_utf8_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_bytes(TOML_MAPPING.replace('"degC"', '"degC"  # °C').encode("latin-1"))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    error = caught.value
    assert error.path == str(path) and error.line == 15 and error.value == b'unit = "degC"  # \xb0C'
    assert "mapping file is not UTF-8: byte 0xb0" in error.problem and "line 15" in str(error)


def test_duplicated_timestamps_are_not_an_error_when_reading(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("T1,2014-01-01T01:10:00+01:00", "T1,2014-01-01T01:00:00+01:00")
    _, raw = read_source(write(tmp_path, "scada.csv", text), SPEC)
    assert len(raw) == 4  # every row kept; DuplicateTimestamps quarantines them in clean()


def test_empty_file_and_unknown_file_type(tmp_path: Path) -> None:
    path = write(tmp_path, "scada.csv", "turbine,time_utc,ws,p,t\n")
    with pytest.raises(DataError, match="no data rows"):
        read_source(path, SPEC)
    other = write(tmp_path, "scada.xlsx", "")
    with pytest.raises(DataError) as caught:
        read_source(other, SPEC)
    assert_names_everything(caught.value, other, None, None, ".xlsx")


# -- mapping files -----------------------------------------------------------------------
TOML_MAPPING = """
asset_column = "turbine"
time_column = "time_utc"

[columns.wind_speed]
source = "ws"
unit = "m/s"

[columns.power]
source = "p"
unit = "kW"

[columns.temp_air]
source = "t"
unit = "degC"
missing_codes = [-273.2, "n/a"]
"""


def test_mapping_files_in_toml_and_json_load_the_same_spec(tmp_path: Path) -> None:
    from_toml = SourceSpec.from_file(write(tmp_path, "map.toml", TOML_MAPPING))
    from_json = SourceSpec.from_file(write(tmp_path, "map.json", SPEC.model_dump_json()))
    assert from_toml == SPEC
    assert from_json == SPEC


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_boolean_missing_code_is_refused_not_read_as_1(tmp_path: Path, suffix: str) -> None:
    # Read as the number 1.0, `true` would turn every power of exactly 1 kW into NaN.
    if suffix == ".toml":
        text = TOML_MAPPING.replace('unit = "kW"', 'unit = "kW"\nmissing_codes = [-999, true]')
    else:
        content = json.loads(SPEC.model_dump_json())
        content["columns"]["power"]["missing_codes"] = [-999, True]
        text = json.dumps(content)
    path = write(tmp_path, f"map{suffix}", text)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.power.missing_codes[1]", None, True)
    assert caught.value.problem == "missing code is a boolean, not a number or text"
    assert caught.value.expected == "a number or text, such as -999 or 'n/a'"
    with pytest.raises(ValidationError):
        ColumnSpec(source="p", unit="kW", missing_codes=(False,))
    with pytest.raises(ValidationError):  # numpy's too (a strict float took it as 1.0)
        ColumnSpec(source="p", unit="kW", missing_codes=(np.bool_(True),))
    # Whole numbers are numbers still.
    assert ColumnSpec(source="p", unit="kW", missing_codes=(-999, "n/a")).numeric_codes == (-999.0,)


def test_unknown_unit_in_a_mapping_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "map.toml", TOML_MAPPING.replace('"m/s"', '"kmh"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.wind_speed.unit", None, "kmh")
    assert "pint unit" in caught.value.expected
    with pytest.raises(ValidationError, match="unknown unit"):
        ColumnSpec(source="ws", unit="kmh")
    assert caught.value.expected.endswith("; did you mean 'km/h'?")


@pytest.mark.parametrize(
    ("written", "meant"),
    [("KW", "kW"), ("kg/m3", "kg/m^3"), ("Watt", "watt"), ("kmh", "km/h"), ("m3/day", "m^3/day")],
)
def test_a_misspelt_unit_is_refused_with_the_unit_it_was_probably_meant_to_be(
    written: str, meant: str
) -> None:
    with pytest.raises(ValidationError, match=f"did you mean '{re.escape(meant)}'"):
        ColumnSpec(source="x", unit=written)
    with pytest.raises(ValueError, match=f"did you mean '{re.escape(meant)}'"):
        parse_unit(written)


def test_a_temperature_in_c_is_refused_as_a_charge_with_degc_suggested(tmp_path: Path) -> None:
    path = write(tmp_path, "map.toml", TOML_MAPPING.replace('"degC"', '"C"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.temp_air.unit", None, "C")
    assert caught.value.expected == "a unit convertible to 'degC'; did you mean 'degC'?"
    # "C" for a wind speed: pint's "c" is the speed of light, of the right kind but no
    # suggestion (a review's mapping got "did you mean 'c'?").
    path = write(tmp_path, "map.toml", TOML_MAPPING.replace('"m/s"', '"C"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert caught.value.expected == "a unit convertible to 'm/s'"
    # Two capitals are still tried in lower case (a review's: "KM" got kelvin, "MM" none).
    assert [suggest_unit(unit) for unit in ("KM", "MM", "KG")] == ["km", "mm", "kg"]
    # Nothing close: no suggestion, rather than a wrong one.
    with pytest.raises(ValueError) as unknown:
        parse_unit("zorkmid")
    assert "did you mean" not in str(unknown.value)


def test_variable_not_in_the_glossary_is_named(tmp_path: Path) -> None:
    content = json.loads(SPEC.model_dump_json())
    content["columns"]["windspeed"] = content["columns"].pop("wind_speed")
    path = write(tmp_path, "map.json", json.dumps(content))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.windspeed", None, "windspeed")
    assert "wind_speed" in caught.value.expected


def test_one_column_read_as_two_variables_is_refused(tmp_path: Path) -> None:
    # The wind speed's column given for the direction too: both would read its values.
    text = TOML_MAPPING + '\n[columns.wind_direction]\nsource = "ws"\nunit = "degree"\n'
    path = write(tmp_path, "map.toml", text)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, "columns.wind_direction.source", None, "ws")
    assert caught.value.problem == "column 'ws' is read as both wind_speed and wind_direction"
    with pytest.raises(ValidationError, match="read as both power and temp_air"):
        SourceSpec(
            asset_id="a",
            time_column="t",
            columns={
                "power": ColumnSpec(source="x", unit="kW"),
                "temp_air": ColumnSpec(source="x", unit="degC"),
            },
        )
    # So is the time or asset column read as a variable (review 2026-11-30).
    for role, spec in (
        ("time", {"asset_id": "a", "time_column": "x"}),
        ("asset", {"asset_column": "x", "time_column": "t"}),
    ):
        with pytest.raises(ValidationError, match=f"column 'x' is both the {role} column and"):
            SourceSpec(**spec, columns={"power": ColumnSpec(source="x", unit="kW")})


def test_a_misspelt_key_is_named_before_the_key_it_leaves_missing(tmp_path: Path) -> None:
    # "units" for "unit" also leaves "unit" missing; the misspelling is what to fix.
    typo = write(tmp_path, "typo.toml", TOML_MAPPING.replace('unit = "m/s"', 'units = "km/h"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(typo)
    assert_names_everything(caught.value, typo, "columns.wind_speed.units", None, "units")
    assert "unknown key 'units' in columns.wind_speed" in caught.value.problem
    assert "one of source, unit, missing_codes" in caught.value.expected
    assert "did you mean 'unit'?" in caught.value.expected
    top = write(tmp_path, "top.toml", 'time_zon = "UTC"\n' + TOML_MAPPING)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(top)
    assert_names_everything(caught.value, top, "time_zon", None, "time_zon")
    assert "unknown key 'time_zon' in the mapping" in caught.value.problem
    assert "did you mean 'time_zone'?" in caught.value.expected


@pytest.mark.parametrize(
    ("content", "key", "value", "problem", "expected"),
    [
        (
            {"columns": {}},
            "columns",
            {},
            "columns is empty",
            "at least one glossary variable (wind_speed, power, ...)",
        ),
        (
            {"columns": {"power": {"source": "p", "unit": "kW", "missing_codes": [None]}}},
            "columns.power.missing_codes[0]",
            None,
            "missing code is null",
            "a number or text, such as -999 or 'n/a'",
        ),
        (
            {"columns": {"power": {"source": "p", "unit": "kW", "missing_codes": [[1]]}}},
            "columns.power.missing_codes[0]",
            [1],
            "missing code is not a number or text",
            "a number or text, such as -999 or 'n/a'",
        ),
        (
            {"columns": {"power": {"source": "p", "unit": "kW", "missing_codes": -999}}},
            "columns.power.missing_codes",
            -999,
            "missing_codes is not a list",
            "a list of numbers or text, such as [-999, 'n/a']",
        ),
        (
            {"columns": {"power": "p"}},
            "columns.power",
            "p",
            "power is not a table",
            "a table with source and unit",
        ),
        (
            {"columns": {"power": {"unit": "kW"}}},
            "columns.power.source",
            None,
            "missing key 'source' in columns.power",
            "the name of the column in the file",
        ),
        (
            {"delimiter": ";;"},
            "delimiter",
            ";;",
            "delimiter is too long",
            "one character, such as ',' or ';'",
        ),
        (
            {"time_column": ""},
            "time_column",
            "",
            "time_column is empty",
            "the name of the file's time column",
        ),
    ],
    ids=[
        "no variable",
        "null code",
        "list code",
        "codes not a list",
        "column not a table",
        "no source",
        "long delimiter",
        "empty time column",
    ],
)
def test_mapping_errors_pydantic_finds_read_like_the_others(
    tmp_path: Path, content: dict[str, object], key: str, value: object, problem: str, expected: str
) -> None:
    mapping = {
        "asset_id": "a",
        "time_column": "t",
        "columns": {"power": {"source": "p", "unit": "kW"}},
    }
    path = write(tmp_path, "map.json", json.dumps(mapping | content))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(path)
    assert_names_everything(caught.value, path, key, None, value)
    # One problem (a code that is neither of float | str is not two), in our words.
    assert caught.value.problem == problem
    assert caught.value.expected.startswith(expected)
    assert "should" not in str(caught.value) and "Input" not in str(caught.value)


def test_a_mapping_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Notepad and Excel write one; TOML's parser stopped at line 1, column 1.
    for name, text in (("bom.toml", TOML_MAPPING), ("bom.json", SPEC.model_dump_json())):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        assert SourceSpec.from_file(path) == SourceSpec.from_file(write(tmp_path, name, text))


def test_a_json_error_shows_the_text_around_the_fault(tmp_path: Path) -> None:
    # A mapping on one line was quoted whole as the value.
    text = SPEC.model_dump_json()
    broken = write(tmp_path, "map.json", text[:-1] + ",}")
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(broken)
    assert len(text) > 150
    assert str(caught.value.value).endswith(",}") and len(str(caught.value.value)) <= 80


def test_mapping_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    broken = write(tmp_path, "map.json", '{"time_column": "t",\n "columns": {,}}')
    with pytest.raises(DataError, match=r"not valid JSON.*line 2"):
        SourceSpec.from_file(broken)
    broken_toml = write(tmp_path, "map.toml", "time_column = \n")
    with pytest.raises(DataError, match="not valid TOML"):
        SourceSpec.from_file(broken_toml)
    both = write(tmp_path, "both.toml", 'asset_id = "x"\n' + TOML_MAPPING)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(both)
    assert caught.value.column == "asset_column" and "exactly one" in caught.value.expected
    typo = write(tmp_path, "typo.toml", TOML_MAPPING.replace('unit = "kW"', 'units = "kW"'))
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(typo)
    assert caught.value.column is not None and caught.value.column.startswith("columns.power")
    assert str(typo) in str(caught.value)
    zone = write(tmp_path, "zone.toml", 'time_zone = "Europe/Pariss"\n' + TOML_MAPPING)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(zone)
    assert_names_everything(caught.value, zone, "time_zone", None, "Europe/Pariss")
    assert "Etc/GMT" not in caught.value.expected


def test_a_fixed_offset_time_zone_is_answered_with_the_zone_that_keeps_it(tmp_path: Path) -> None:
    # A logger on UTC+1 all year (no summer time) is common; 'CET' would shift its
    # summer readings by an hour, and '+01:00' was refused without a way out.
    answers = {
        "+01:00": "for times that stay at UTC+01:00 all year, 'Etc/GMT-1'",
        "UTC-5": "for times that stay at UTC-05:00 all year, 'Etc/GMT+5'",
        "+05:30": "no Etc zone keeps UTC+05:30 all year",
    }
    for given, answer in answers.items():
        mapping = write(tmp_path, "zone.toml", f'time_zone = "{given}"\n' + TOML_MAPPING)
        with pytest.raises(DataError) as caught:
            SourceSpec.from_file(mapping)
        assert answer in caught.value.expected, caught.value.expected
    # The zone named keeps the offset in summer as in winter.
    path = write(tmp_path, "fixed.csv", "t,p\n2014-01-15 12:00,1\n2014-07-15 12:00,2\n")
    spec = SourceSpec(
        asset_id="T1",
        time_column="t",
        time_zone="Etc/GMT-1",
        columns={"power": ColumnSpec(source="p", unit="kW")},
    )
    _, raw = read_source(path, spec)
    assert raw["time"].dt.hour.tolist() == [11, 11]


# -- times that do not parse are not called naive; values are written for people ---------
LHB_HEADER = "Wind_turbine_name,Date_time,Ws_avg,P_avg,Ot_avg,Wa_avg,Ba_avg,Ya_avg,Va_avg\n"


def _lhb_csv(times: list[str]) -> str:
    return LHB_HEADER + "".join(f"R80711,{time},5,300,4,1,1,1,1\n" for time in times)


def test_a_unix_time_is_named_as_one(tmp_path: Path) -> None:
    # Seconds since 1970 got the ISO 8601 message alone, as if mistyped.
    for count in ("1388534400", "1388534400000", "1388534400.0"):
        path = write(tmp_path, "epoch.csv", f"turbine,time_utc,ws,p,t\nT1,{count},5,300,4\n")
        with pytest.raises(DataError, match=r"looks like a count since 1970 \(Unix time"):
            read_source(path, SPEC)
    # A time that is no number is not taken for one.
    path = write(tmp_path, "typo.csv", "turbine,time_utc,ws,p,t\nT1,2014-13-45,5,300,4\n")
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert "1970" not in str(caught.value)


def test_unparseable_time_is_not_reported_as_a_missing_offset(tmp_path: Path) -> None:
    times = [f"2014-01-01T00:{m}0:00+01:00" for m in range(3)] + ["2014-13-45 25:99"]
    path = write(tmp_path, "lhb.csv", _lhb_csv(times))
    with pytest.raises(DataError) as caught:
        read_source(path, LA_HAUTE_BORNE)
    message = str(caught.value)
    assert_names_everything(caught.value, path, "Date_time", 3, "2014-13-45 25:99", 5)
    assert "time cannot be parsed (1 of 4 rows)" in message
    assert "no UTC offset" not in message
    assert "'2014-01-01T01:00:00+01:00'" in caught.value.expected


def test_unparseable_time_with_a_time_zone_is_not_reported_as_an_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", _lhb_csv(["2014-01-01 00:00", "2014-13-45T25:99+01:00"]))
    spec = LA_HAUTE_BORNE.model_copy(update={"time_zone": "Europe/Paris"})
    with pytest.raises(DataError) as caught:
        read_source(path, spec)
    assert_names_everything(caught.value, path, "Date_time", 1, "2014-13-45T25:99+01:00", 3)
    assert "time cannot be parsed" in str(caught.value)
    assert "Europe/Paris" in caught.value.expected


def test_first_bad_time_decides_the_error(tmp_path: Path) -> None:
    # A naive time before an unparseable one: the first problem is the missing offset.
    path = write(tmp_path, "x.csv", _lhb_csv(["2014-01-01 00:00", "2014-13-45 25:99"]))
    with pytest.raises(DataError) as caught:
        read_source(path, LA_HAUTE_BORNE)
    assert_names_everything(caught.value, path, "Date_time", 0, "2014-01-01 00:00", 2)
    assert "time has no UTC offset (1 of 2 rows)" in str(caught.value)


def test_a_date_is_not_mistaken_for_an_offset(tmp_path: Path) -> None:
    # "2014-01-01" ends in "-01", which is no UTC offset. (The basic-format time makes
    # Arrow's strict parser refuse the column, so pandas and the offset test read it.)
    path = write(tmp_path, "x.csv", _lhb_csv(["2014-01-01", "20140101T0010"]))
    _, raw = read_source(path, LA_HAUTE_BORNE.model_copy(update={"time_zone": "UTC"}))
    assert raw["time"].tolist() == [
        pd.Timestamp("2014-01-01T00:00", tz="UTC"),
        pd.Timestamp("2014-01-01T00:10", tz="UTC"),
    ]


def test_basic_format_offsets_are_offsets(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", _lhb_csv(["2014-01-01T00:00+01:00", "20140101T0010+0100"]))
    _, raw = read_source(path, LA_HAUTE_BORNE)
    assert raw["time"].tolist() == [
        pd.Timestamp("2013-12-31T23:00", tz="UTC"),
        pd.Timestamp("2013-12-31T23:10", tz="UTC"),
    ]


def test_missing_time_is_said_in_words(tmp_path: Path) -> None:
    path = write(tmp_path, "lhb.csv", _lhb_csv(["2014-01-01T00:00:00+01:00", ""]))
    with pytest.raises(DataError) as caught:
        read_source(path, LA_HAUTE_BORNE)
    message = str(caught.value)
    assert "time is missing" in message
    assert "column 'Date_time', row 1 (line 3), a missing value (NaN))" in message
    assert "nan" not in message


def test_a_missing_zoned_time_in_parquet_is_refused_as_a_naive_one_is(tmp_path: Path) -> None:
    # One was stored without a time (out of every query by time), two were quarantined
    # as readings "at NaN" duplicating each other (review).
    times = pd.to_datetime(["2014-01-01 00:00", None, "2014-01-01 00:20"])
    frame = pd.DataFrame({"turbine": ["T1"] * 3, "time_utc": times, "ws": 1.0, "p": 2.0, "t": 3.0})
    for zone in (None, "UTC", "Europe/Paris"):
        stamped = frame if zone is None else frame.assign(time_utc=times.tz_localize(zone))
        path = tmp_path / f"{zone or 'naive'}.parquet".replace("/", "-")
        stamped.to_parquet(path)
        spec = SPEC.model_copy(update={"time_zone": "UTC"}) if zone is None else SPEC
        with pytest.raises(DataError) as caught:
            read_source(path, spec)
        message = str(caught.value)
        assert message.startswith(f"{path}: time is missing (1 of 3 rows)")
        assert "(column 'time_utc', row 1, counting data rows from 0, a missing value (NaT))" in (
            message
        )


def test_an_asset_id_spelled_like_a_missing_value_is_an_id(tmp_path: Path) -> None:
    # pandas reads "NA", "N/A", "None" and "null" as missing: they were refused as
    # missing ids, the message quoting NaN (review). Only an empty cell is no id.
    ids = ["NA", "N/A", "None", "null", "T2"]
    rows = "".join(f"{a},2014-01-01T00:00:00Z,5.0,100.0,4.0\n" for a in ids)
    path = write(tmp_path, "ids.csv", "turbine,time_utc,ws,p,t\n" + rows)
    _, raw = read_source(path, SPEC)
    assert raw["asset_id"].tolist() == ids
    assert asset_ids(path, SPEC) == sorted(ids)
    empty = write(
        tmp_path, "empty.csv", "turbine,time_utc,ws,p,t\n" + rows + ",2014-01-01T00:10:00Z,5,1,4\n"
    )
    with pytest.raises(DataError, match="asset id is missing"):
        read_source(empty, SPEC)


def test_missing_numeric_asset_id_in_parquet_has_no_numpy_repr(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"turbine": [1.0, np.nan], "time_utc": ["2014-01-01T00:00Z"] * 2, "ws": 1.0, "p": 2.0}
    )
    frame["t"] = 3.0
    path = tmp_path / "scada.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    message = str(caught.value)
    assert "np.float64" not in message
    assert "(column 'turbine', row 1, counting data rows from 0, a missing value (NaN))" in message
    assert isinstance(caught.value.value, float) and np.isnan(caught.value.value)


def test_whole_numbers_stored_as_floats_are_the_same_assets_as_integers(tmp_path: Path) -> None:
    # pandas writes a column of numbers with a gap as float64: turbine 11 was "11.0" in
    # that file and "11" in the next, two assets of one turbine.
    frame = pd.DataFrame(
        {"turbine": [11, 21], "time_utc": ["2014-01-01T00:00Z"] * 2, "ws": 5.0, "p": 300.0}
    )
    frame["t"] = 4.0
    as_int, as_float = tmp_path / "int.parquet", tmp_path / "float.parquet"
    frame.to_parquet(as_int)
    frame.astype({"turbine": "float64"}).to_parquet(as_float)
    for path in (as_int, as_float):
        assert asset_ids(path, SPEC) == ["11", "21"]
        assert read_source(path, SPEC)[1]["asset_id"].tolist() == ["11", "21"]
    # Fractions are no whole numbers, and infinity none a float holds exactly: kept as
    # written (infinity made the conversion raise).
    for ids, written in (([11.5, 21.0], ["11.5", "21.0"]), ([np.inf, 21.0], ["21.0", "inf"])):
        frame.astype({"turbine": "float64"}).assign(turbine=ids).to_parquet(as_float)
        assert asset_ids(as_float, SPEC) == written


def test_a_key_given_twice_in_a_json_mapping_is_named(tmp_path: Path) -> None:
    # JSON keeps the last of two keys silently: power was read from the second column.
    text = (
        '{"asset_column": "turbine", "time_column": "time_utc", "columns": {'
        '"power": {"source": "pw_W", "unit": "W"}, "power": {"source": "junk", "unit": "kW"}}}'
    )
    twice = write(tmp_path, "twice.json", text)
    with pytest.raises(DataError) as caught:
        SourceSpec.from_file(twice)
    assert "gives 'power' twice" in str(caught.value) and str(twice) in str(caught.value)
    assert caught.value.expected == "each key once in an object"


# -- rows are named as data rows from 0, with the line of a CSV file --------------------
def test_csv_line_counts_blank_lines_and_quoted_line_breaks(tmp_path: Path) -> None:
    text = (
        "turbine,time_utc,ws,p,t\n"
        "\n"
        'T1,2014-01-01T00:00Z,5,300,"4"\n'
        '"T\n1",2014-01-01T00:10Z,5,300,4\n'
        "\n"
        "   \n"
        "T1,2014-01-01T00:20Z,fast,300,4\n"
    )
    path = write(tmp_path, "scada.csv", text)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    # Data row 2 starts on line 8: header, blank, row 0, row 1 over two lines, an empty
    # line and one of spaces (pandas skips both).
    assert_names_everything(caught.value, path, "ws", 2, "fast", 8)


def test_csv_line_counts_a_line_of_an_empty_quoted_field(tmp_path: Path) -> None:
    # '""' is a row with a missing value (pandas writes NaN so in a one-column file),
    # not a blank line: csv reads both as [''], and the line was named one too far.
    path = tmp_path / "x.csv"
    path.write_text('wind_speed\n5\n""\nfast\n   \n7\n')
    assert [csv_line(path, row) for row in range(4)] == [2, 3, 4, 6]


COMPRESSIONS = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zst": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize("suffix", list(COMPRESSIONS))
def test_compressed_csv_reads_as_the_plain_file_and_names_its_line(
    tmp_path: Path, suffix: str
) -> None:
    def compressed(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.csv{suffix}"
        path.write_bytes(COMPRESSIONS[suffix](text.encode()))
        return path

    _, plain = read_source(write(tmp_path, "scada.csv", GOOD_CSV), SPEC)
    _, raw = read_source(compressed("scada", GOOD_CSV), SPEC)
    pd.testing.assert_frame_equal(raw, plain)
    path = compressed("bad", GOOD_CSV.replace(",5.7,", ",fast,"))
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "ws", 2, "fast", 4)


def test_parquet_rows_say_how_they_are_counted(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "scada.csv", GOOD_CSV.replace(",5.7,", ",fast,"))
    path = tmp_path / "scada.parquet"
    pd.read_csv(csv_path, dtype=str).to_parquet(path)
    with pytest.raises(DataError) as caught:
        read_source(path, SPEC)
    assert_names_everything(caught.value, path, "ws", 2, "fast")
    assert "line" not in str(caught.value)


def test_error_with_a_line_survives_pickling() -> None:
    error = DataError("x", path="f.csv", column="c", row=3, line=5, value="v", expected="y")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.line == 5


# -- the example mapping of docs/MAPPING.md ----------------------------------------------
EXAMPLE_MAPPING = Path(__file__).resolve().parents[2] / "examples" / "mapping_example.toml"


FARM_CSV = """turbine;timestamp;ws_kmh;p_mw;temp_f;status
WT01;30/03/2014 01:50;36;1.2;50;ok
WT01;30/03/2014 03:00;-999;0.8;32;ok
WT02;30/03/2014 03:00;18;-;212;ok
"""


def test_example_mapping_file_reads_its_layout(tmp_path: Path) -> None:
    spec = SourceSpec.from_file(EXAMPLE_MAPPING)
    _, raw = read_source(write(tmp_path, "farm.csv", FARM_CSV), spec)
    assert list(raw.columns) == [*RECORD_COLUMNS, "wind_speed", "power", "temp_air"]
    assert raw["asset_id"].tolist() == ["WT01", "WT01", "WT02"]
    assert raw["source_row"].tolist() == [0, 1, 2]
    # Paris local times, 10 minutes apart across the spring clock change.
    assert raw["time"].tolist() == [
        pd.Timestamp("2014-03-30T00:50Z"),
        pd.Timestamp("2014-03-30T01:00Z"),
        pd.Timestamp("2014-03-30T01:00Z"),
    ]
    np.testing.assert_allclose(raw["wind_speed"], [10.0, np.nan, 5.0])  # km/h -> m/s
    np.testing.assert_allclose(raw["power"], [1200.0, 800.0, np.nan])  # MW -> kW
    np.testing.assert_allclose(raw["temp_air"], [10.0, 0.0, 100.0], atol=1e-9)  # degF -> degC


def test_the_decimal_comma_recipe_of_the_doc_converts_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recipe left "1,2" in p_mw, whose missing code "-" made pandas read it as text.
    doc = (EXAMPLE_MAPPING.parents[1] / "docs" / "MAPPING.md").read_text(encoding="utf-8")
    recipe = re.search(r"`(pd\.read_csv\(\"farm\.csv\".*?)`", doc)
    assert recipe is not None
    write(tmp_path, "farm.csv", FARM_CSV.replace(";1.2;", ";1,2;").replace(";0.8;", ";0,8;"))
    monkeypatch.chdir(tmp_path)
    exec(recipe[1], {"pd": pd})  # the doc's own line
    _, raw = read_source(tmp_path / "farm-dot.csv", SourceSpec.from_file(EXAMPLE_MAPPING))
    np.testing.assert_allclose(raw["power"], [1200.0, 800.0, np.nan])


def _message(error: DataError, path: Path) -> str:
    return str(error).replace(str(path), path.name)


def test_mapping_doc_shows_the_example_and_the_errors_users_get(tmp_path: Path) -> None:
    doc = (EXAMPLE_MAPPING.parents[1] / "docs" / "MAPPING.md").read_text(encoding="utf-8")
    example = EXAMPLE_MAPPING.read_text(encoding="utf-8")
    assert example.strip() in doc
    assert FARM_CSV.strip() in doc
    json_block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    from_json = SourceSpec.from_file(write(tmp_path, "mapping.json", json_block))
    assert from_json == SourceSpec.from_file(EXAMPLE_MAPPING)
    mapping_errors = {
        "unknown unit": ('unit = "km/h"', 'unit = "kmh"'),
        "wrong kind": ('unit = "km/h"', 'unit = "kW"'),
        "unknown zone": ('"Europe/Paris"', '"Europe/Pariss"'),
    }
    for old, new in mapping_errors.values():
        path = write(tmp_path, "mapping.toml", example.replace(old, new))
        with pytest.raises(DataError) as caught:
            SourceSpec.from_file(path)
        assert _message(caught.value, path) in doc
    # What is not supported is said where times and numbers are described.
    assert "Epoch seconds (`1388534400`) are not supported" in doc
    assert "Decimal commas (`24,732`) are not supported" in doc
    assert "must be UTF-8" in doc
    spec = SourceSpec.from_file(EXAMPLE_MAPPING)
    data_errors = {
        "time": ("WT01;30/03/2014 03:00", "WT01;2014-03-30 03:00"),
        "number": (";-999;", ";fast;"),
        "asset": ("WT02;", ";"),
    }
    for old, new in data_errors.values():
        path = write(tmp_path, "farm.csv", FARM_CSV.replace(old, new))
        with pytest.raises(DataError) as caught:
            read_source(path, spec)
        assert _message(caught.value, path) in doc


def test_padding_around_asset_ids_and_times_is_no_part_of_them(tmp_path: Path) -> None:
    # 'T1 ' beside 'T1' was stored as a second asset; a time with a trailing space was
    # refused as having no UTC offset (a leading space was read).
    text = GOOD_CSV.replace("T1,2014-01-01T01:10:00+01:00", "T1 ,2014-01-01T01:10:00+01:00 ")
    _, raw = read_source(write(tmp_path, "padded.csv", text), SPEC)
    _, plain = read_source(write(tmp_path, "plain.csv", GOOD_CSV), SPEC)
    assert raw["asset_id"].tolist() == plain["asset_id"].tolist() == ["T1", "T2", "T1", "T2"]
    assert raw["time"].tolist() == plain["time"].tolist()


@pytest.mark.parametrize("unit", ["percent", "dimensionless", "ppm", "kW/kW"])
def test_an_angle_is_not_taken_for_a_plain_number(unit: str) -> None:
    # pint reads a radian as dimensionless: 'percent' converted 179.72 to 103 degrees.
    with pytest.raises(
        ValidationError,
        match=rf"columns\.wind_direction\.unit: unit of column 'dir' cannot be converted to "
        rf"wind_direction's unit 'degree'; found '{re.escape(unit)}'",
    ):
        SourceSpec(
            asset_id="T1",
            time_column="time",
            columns={
                "wind_speed": ColumnSpec(source="ws", unit="m/s"),
                "wind_direction": ColumnSpec(source="dir", unit=unit),
            },
        )
    for angle in ("rad", "turn", "arcminute"):  # angles still convert
        SourceSpec(
            asset_id="T1",
            time_column="time",
            columns={"wind_direction": ColumnSpec(source="dir", unit=angle)},
        )


# -- walk-through of the data pathway (2026-11-30) ------------------------------------------
def test_a_header_naming_a_read_column_twice_is_refused_with_its_positions(
    tmp_path: Path,
) -> None:
    # pandas read the first 'ws' and renamed the second 'ws.1': its values were ignored
    # without a word, and a message about it named a column not in the file.
    twice = write(
        tmp_path,
        "twice.csv",
        "turbine,time_utc,ws,p,t,ws\n"
        "T1,2014-01-01T01:00:00+01:00,5.5,300.0,4.0,99.9\n"
        "T1,2014-01-01T01:10:00+01:00,5.7,320.0,4.1,99.9\n",
    )
    with pytest.raises(DataError) as refused:
        read_source(twice, SPEC)
    error = refused.value
    assert (error.path, error.column, error.line) == (str(twice), "ws", 1)
    assert "appears 2 times in the header, at positions 3 and 6" in str(error)
    assert "ws.1" not in str(error)
    # A repeated name the mapping does not read changes nothing read.
    unread = write(
        tmp_path,
        "unread.csv",
        "turbine,time_utc,ws,x,p,t,x\n"
        "T1,2014-01-01T01:00:00+01:00,5.5,a,300.0,4.0,b\n"
        "T1,2014-01-01T01:10:00+01:00,5.7,a,320.0,4.1,b\n",
    )
    assert list(read_source(unread, SPEC)[1]["wind_speed"]) == [5.5, 5.7]
    # Parquet allows a repeated name too; pyarrow then refused with its own words.
    table = pa.table(
        {"turbine": ["T1"], "time_utc": ["2014-01-01T00:00:00Z"], "ws": [5.0], "p": [1.0]}
    )
    table = table.append_column("ws", pa.array([99.9])).append_column("t", pa.array([4.0]))
    pq.write_table(table, tmp_path / "twice.parquet")
    with pytest.raises(DataError, match=r"appears 2 times in the header, at positions 3 and 5"):
        read_source(tmp_path / "twice.parquet", SPEC)


def test_a_mapping_error_names_the_other_problems_it_found(tmp_path: Path) -> None:
    two = {"power": {"source": "p", "unit": "Kw"}, "wind_speed": {"source": "w", "unit": "foo"}}
    three = {**two, "temp_air": {"source": "t", "unit": "nonsuch"}}
    for columns, more in (
        (two, "(and a problem at columns.wind_speed.unit)"),
        (three, "(and 2 more problems, at columns.wind_speed.unit, columns.temp_air.unit)"),
    ):
        mapping = tmp_path / "m.json"
        mapping.write_text(json.dumps({"asset_id": "x", "time_column": "t", "columns": columns}))
        with pytest.raises(DataError) as refused:
            SourceSpec.from_file(mapping)
        assert more in str(refused.value)
        assert "problem(s)" not in str(refused.value)
