"""Ingest and the files it reads: mappings for other layouts, units, delimiters, asset
tables, and what the checks question."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from cli_support import (
    DEBUG_HINT,
    RATED_POWER,
    assert_user_error,
    one_line,
    other_layout,
    scada_subset,
    twinweave,
)

from twinweave.data import Store
from twinweave.domains.wind import LA_HAUTE_BORNE, scada_path

pytestmark = pytest.mark.slow


def test_fit_with_a_mapping_for_another_layout(tmp_path: Path) -> None:
    data, mapping = other_layout(tmp_path)
    store = tmp_path / "other.duckdb"
    fit = ("fit", data, "--store", store, "--train-until", "2020-01-20", "--mapping", mapping)
    twinweave(*fit, "--rated-power", str(RATED_POWER), "--memory", "inf")
    with Store(store, read_only=True) as db:
        assert db.load_twin("T1").emulator.get_params()["forgetting"] == 1.0
    refused = twinweave(*fit, "--rated-power", str(RATED_POWER), "--memory", "0.5", ok=False)
    assert refused.returncode != 0
    assert (
        "--memory: memory: expected more than 1 reading, got 0.5" in refused.stdout + refused.stderr
    )
    inputs = tmp_path / "x.csv"
    pd.DataFrame({"wind_speed": [8.0]}).to_csv(inputs, index=False)
    out = tmp_path / "y.csv"
    twinweave("predict", "--store", store, "--twin", "T1", "--input", inputs, "--output", out)
    expected = RATED_POWER * 0.5**3  # the synthetic curve at 8 m/s [kW]
    assert pd.read_csv(out)["mean"].iloc[0] == pytest.approx(expected, abs=40.0)


def test_a_library_warning_is_one_warning_line(tmp_path: Path) -> None:
    # Paris local time without the summer-time 02:xx of 26 October 2014: the winter-time
    # readings are alone in the repeated hour, taken as summer time, and that is said.
    local = pd.date_range("2014-10-26 01:00", periods=12, freq="10min").strftime("%Y-%m-%d %H:%M")
    frame = pd.DataFrame({"stamp": local, "ws_kmh": 18.0, "p_w": 3e5, "t_k": 283.15})
    data = tmp_path / "paris.csv"
    frame.to_csv(data, index=False)
    mapping = tmp_path / "mapping.json"
    columns = {
        "wind_speed": {"source": "ws_kmh", "unit": "km/h"},
        "power": {"source": "p_w", "unit": "W"},
        "temp_air": {"source": "t_k", "unit": "K"},
    }
    mapping.write_text(
        json.dumps(
            {
                "asset_id": "T1",
                "time_column": "stamp",
                "time_zone": "Europe/Paris",
                "columns": columns,
            }
        )
    )
    store = tmp_path / "paris.duckdb"
    result = twinweave(
        "ingest", data, "--store", store, "--mapping", mapping, "--rated-power", "2050"
    )
    assert "warning: " in result.stderr and "taken as summer time" in result.stderr
    assert "UserWarning" not in result.stderr, result.stderr
    # Stored, the file is not read again (nothing to warn of), and its turbine keeps the
    # rated power its readings were cleaned with (walk-through 2026-11-30: refused).
    again = twinweave("ingest", data, "--store", store, "--mapping", mapping)
    assert "not ingested again" in again.stdout, again.stdout + again.stderr
    assert "summer time" not in again.stderr, again.stderr


def test_an_asset_table_is_checked_and_a_rated_power_in_mw_is_questioned(
    tmp_path: Path,
) -> None:
    data, mapping = other_layout(tmp_path)
    assets = tmp_path / "assets.csv"
    fit = ("fit", data, "--train-until", "2020-01-20", "--mapping", mapping, "--assets", assets)
    assets.write_text("asset_id,rated_power,elevation\nT1,2.05MW,411\n")
    assert_user_error(
        twinweave(*fit, "--store", tmp_path / "a.duckdb", ok=False),
        f"--assets {assets}: column 'rated_power', row 0 (line 2): expected a number > 0 "
        "[kW], got '2.05MW'",
    )
    # A turbine listed twice would take the last row's values unnoticed.
    assets.write_text("asset_id,rated_power\nT1,2050\nT2,2050\nT1,2300\n")
    assert_user_error(
        twinweave(*fit, "--store", tmp_path / "twice.duckdb", ok=False),
        f"--assets {assets}: column 'asset_id': 'T1' is listed more than once (row 0 (line "
        "2), row 2 (line 4)); expected one row per turbine",
    )
    assets.write_text("turbine,rated_power\nT1,2050\n")
    assert_user_error(
        twinweave(*fit, "--store", tmp_path / "b.duckdb", ok=False),
        "missing ['asset_id'], got ['turbine', 'rated_power']",
    )
    # In MW it is a number, and most readings are above it: fitted, but questioned.
    assets.write_text("asset_id,rated_power,elevation\nT1,2.05,411\n")
    in_mw = twinweave(*fit, "--store", tmp_path / "c.duckdb")
    assert "readings are above its rated power 2.05 kW" in in_mw.stderr, in_mw.stderr
    assert "is the rated power in kW" in in_mw.stderr
    # Too high (another model's): the turbine never comes near it in strong wind.
    assets.write_text(f"asset_id,rated_power,elevation\nT1,{1.5 * RATED_POWER},411\n")
    too_high = twinweave(*fit, "--store", tmp_path / "high.duckdb")
    assert f"under 80 % of its rated power {1.5 * RATED_POWER:g} kW" in too_high.stderr
    assets.write_text(f"asset_id,rated_power,elevation\nT1,{RATED_POWER},411\n")
    in_kw = twinweave(*fit, "--store", tmp_path / "d.duckdb")
    assert "rated power" not in in_kw.stderr, in_kw.stderr
    # Corrected, into the store that holds the turbine's readings as cleaned with the
    # rated power in MW: refused, since the twin would be fitted on the readings the
    # wrong one quarantined; from the same file or another one holding them.
    copy = tmp_path / "copy.csv"
    copy.write_text(data.read_text() + "\n")
    for again in (data, copy):
        assert_user_error(
            twinweave(*fit[:1], again, *fit[2:], "--store", tmp_path / "c.duckdb", ok=False),
            f"asset 'T1': rated power {RATED_POWER!r} kW, but its readings from {data} were "
            "cleaned in this store with 2.05 kW",
            "use a new store",
        )
    # So is another mapping; the same settings are a repeat, not ingested again.
    other_unit = tmp_path / "kw.json"
    layout = json.loads(mapping.read_text())
    layout["columns"]["power"]["unit"] = "kW"
    other_unit.write_text(json.dumps(layout))
    assert_user_error(
        twinweave(*fit[:5], other_unit, *fit[6:], "--store", tmp_path / "d.duckdb", ok=False),
        "(mapping.columns.power.unit: 'W' then, 'kW' now)",
    )
    # Settings stored without a key (as before a later twinweave added it, with its
    # default) are the same settings.

    with duckdb.connect(str(tmp_path / "d.duckdb")) as connection:
        (text,) = connection.execute("SELECT settings FROM sources").fetchone()
        settings = json.loads(text)
        del settings["mapping"]["delimiter"]
        connection.execute("UPDATE sources SET settings = $1", [json.dumps(settings)])
    again = twinweave(*fit, "--store", tmp_path / "d.duckdb")
    assert "already in the store" in again.stdout and "not ingested again" in again.stdout
    # So is a unit spelt otherwise.
    layout["columns"]["power"]["unit"] = "watt"
    other_unit.write_text(json.dumps(layout))
    spelt = twinweave(*fit[:5], other_unit, *fit[6:], "--store", tmp_path / "d.duckdb")
    assert "not ingested again" in spelt.stdout, spelt.stdout + spelt.stderr


def test_readings_that_look_read_in_the_wrong_unit_are_questioned(tmp_path: Path) -> None:
    data, mapping = other_layout(tmp_path)
    right = twinweave(
        "ingest", data, "--store", tmp_path / "right.duckdb", "--mapping", mapping,
        "--rated-power", str(RATED_POWER),
    )  # fmt: skip
    assert "units" not in right.stderr, right.stderr
    # Placed at sea level for want of an elevation, and told so; not with one.
    assert "asset 'T1': no elevation given, taken as 0 m (sea level)" in right.stderr
    placed = twinweave(
        "ingest", data, "--store", tmp_path / "placed.duckdb", "--mapping", mapping,
        "--rated-power", str(RATED_POWER), "--elevation", "411",
    )  # fmt: skip
    assert "elevation" not in placed.stderr, placed.stderr
    assert_user_error(
        twinweave(
            "ingest", data, "--store", tmp_path / "negative.duckdb", "--mapping", mapping,
            "--rated-power", "-5", ok=False,
        ),
        "--rated-power: expected a finite number > 0 [kW], got -5",
    )  # fmt: skip
    # monitor builds twins of stored turbines without one: from their readings as cleaned.
    assert_user_error(
        twinweave(
            "monitor", "--store", tmp_path / "placed.duckdb", "--since", "2020-01-15",
            "--rated-power", "3000", ok=False,
        ),
        f"asset 'T1': rated power 3000.0 kW, but its readings from {data} were cleaned in "
        f"this store with {RATED_POWER!r} kW",
    )  # fmt: skip
    # Stopped whenever the wind is strong (a storm's shutdowns): no unit is questioned.
    frame = pd.read_csv(data)
    stopped = tmp_path / "stopped.csv"
    frame.assign(p_w=frame["p_w"].where(frame["ws_kmh"] < 13 * 3.6, 0.0)).to_csv(
        stopped, index=False
    )
    calm = twinweave(
        "ingest", stopped, "--store", tmp_path / "stopped.duckdb", "--mapping", mapping,
        "--rated-power", str(RATED_POWER), "--elevation", "411",
    )  # fmt: skip
    assert "units" not in calm.stderr, calm.stderr
    assert "out of range" not in calm.stderr, calm.stderr
    # km/h read as m/s; power in MW read as kW.
    in_mw = tmp_path / "mw.csv"
    frame.assign(p_mw=frame["p_w"] / 1e6).to_csv(in_mw, index=False)
    strong_wind = "at wind speeds of 13-25 m/s half its readings with power are below"
    # Few strong winds (a sheltered site, a short file): power in MW read as kW is still
    # questioned, from the fair winds (walk-through 2026-11-30: a year passed unnoticed).
    sheltered = tmp_path / "sheltered.csv"
    frame.assign(p_mw=frame["p_w"] / 1e6, ws_kmh=frame["ws_kmh"].clip(upper=12.5 * 3.6)).to_csv(
        sheltered, index=False
    )
    # A unit that pint reads otherwise than meant ('kmph': kilo-miles per hour): most
    # readings out of range, the variable named with its unit as read.
    cases = {
        "kmh": (data, {"wind_speed": {"source": "ws_kmh", "unit": "m/s"}}, strong_wind),
        "mw": (in_mw, {"power": {"source": "p_mw", "unit": "kW"}}, strong_wind),
        "sheltered_mw": (
            sheltered,
            {"power": {"source": "p_mw", "unit": "kW"}},
            "at wind speeds of 9-25 m/s 99 % of its readings with power are below",
        ),
        "kmph": (
            data,
            {"wind_speed": {"source": "ws_kmh", "unit": "kmph"}},
            "readings quarantined because wind_speed (read from column 'ws_kmh' in 'kmph', "
            "which is kilomile_per_hour) is out of range, for example wind_speed = ",
        ),
    }
    for name, (source, columns, expected) in cases.items():
        layout = json.loads(mapping.read_text())
        layout["columns"].update(columns)
        wrong = tmp_path / f"{name}.json"
        wrong.write_text(json.dumps(layout))
        result = twinweave(
            "ingest", source, "--store", tmp_path / f"{name}.duckdb", "--mapping", wrong,
            "--rated-power", str(RATED_POWER),
        )  # fmt: skip
        assert expected in result.stderr, result.stderr
        assert "--mapping)" in result.stderr  # each points to the mapping's units
    # A turbine out of service, reading a few kW either way, is not a unit error.
    out_of_service = tmp_path / "out_of_service.csv"
    noise = np.random.default_rng(1).uniform(-5.0, 3.0, len(frame))
    frame.assign(p_w=noise * 1000.0).to_csv(out_of_service, index=False)
    quiet = twinweave(
        "ingest", out_of_service, "--store", tmp_path / "out.duckdb", "--mapping", mapping,
        "--rated-power", str(RATED_POWER),
    )  # fmt: skip
    assert "units" not in quiet.stderr, quiet.stderr


def test_a_failed_first_ingest_leaves_no_store_behind(tmp_path: Path) -> None:
    frame = pd.read_parquet(scada_path()).head(50)
    frame.loc[7, "Date_time"] = "not a time"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    store = tmp_path / "S.duckdb"
    for command in (("ingest",), ("fit", "--train-until", "2015-01-01")):
        failed = twinweave(*command, bad, "--store", store, ok=False)
        assert failed.returncode == 2
        assert "Date_time" in failed.stderr and "not a time" in failed.stderr
        # An empty store would have been taken for a real one by the next command.
        assert not store.exists()
    no_mapping = tmp_path / "no.toml"
    missing = twinweave("ingest", bad, "--store", store, "--mapping", no_mapping, ok=False)
    assert missing.returncode == 2 and "--mapping" in missing.stderr


def test_ingest_counts_what_a_file_put_in_the_store_when_files_overlap(tmp_path: Path) -> None:
    first = scada_subset(tmp_path / "a.parquet", ("R80711", "2014-11-01", "2014-11-21"))
    second = scada_subset(tmp_path / "b.parquet", ("R80711", "2014-11-10", "2014-12-01"))
    store = tmp_path / "S.duckdb"
    twinweave("ingest", first, "--store", store)
    result = twinweave("ingest", second, "--store", store)
    with Store(store, read_only=True) as opened:
        sha256 = opened.sources()["sha256"].iloc[-1]
        counts = opened.source_summary(sha256).iloc[0]
        quarantined = opened.quarantine()
    quarantined = quarantined[quarantined["source_sha256"] == sha256]
    with Store(store, read_only=True) as opened:
        assert opened.quarantine(source_sha256=sha256).equals(quarantined.reset_index(drop=True))
    # The readings of 11-10 to 11-21 are already stored: raw rows, not observations.
    assert counts["raw"] > counts["observations"] + counts["quarantined"]
    row = next(line for line in result.stdout.splitlines() if "R80711" in line)
    # Each raw row is counted once: observation, quarantined or already stored.
    assert [int(n) for n in re.findall(r"\d+", row.replace("R80711", ""))] == [
        counts["raw"],
        counts["observations"],
        counts["quarantined"],
        counts["raw"] - counts["observations"] - counts["quarantined"],
    ]
    assert re.search(r"readings quarantined .* already stored", result.stdout.replace("\n", " "))
    by_check = quarantined["check"].value_counts().to_dict()
    by_check.pop("duplicate_across_sources", None)
    printed = re.search(
        r"failed checks, by check \(a reading can fail several\): (\{.*\})", result.stdout
    )
    assert printed is not None and ast.literal_eval(printed.group(1)) == by_check
    assert "already stored from another file" in result.stdout


def test_a_file_per_turbine_takes_a_mapping_per_file(tmp_path: Path) -> None:
    # Files without an asset column, each mapping naming its turbine: one --mapping for
    # all named them all after the first (their readings then clashed), and a fleet
    # could not be fitted from them.
    layout = LA_HAUTE_BORNE.model_dump(mode="json", exclude_none=True)
    del layout["asset_column"]
    files, mappings = [], []
    for turbine in ("R80711", "R80721", "R80736"):
        data = scada_subset(tmp_path / f"{turbine}.parquet", (turbine, "2014-12-17", "2015-01-03"))
        pd.read_parquet(data).drop(columns="Wind_turbine_name").to_parquet(data, index=False)
        mapping = tmp_path / f"{turbine}.json"
        mapping.write_text(json.dumps({**layout, "asset_id": turbine}))
        files.append(data)
        mappings += ["--mapping", mapping]
    fit = ("fit", *files, "--train-until", "2015-01-01", "--fleet")
    fitted = twinweave(*fit, "--store", tmp_path / "s.duckdb", *mappings)
    assert "saved 3 of 3 twins" in " ".join(fitted.stdout.split()), fitted.stdout
    assert "R80736's fleet: R80711, R80721" in fitted.stderr, fitted.stderr
    with Store(tmp_path / "s.duckdb", read_only=True) as db:
        assert db.quarantine(check="duplicate_across_sources").empty
    refused = twinweave(*fit, "--store", tmp_path / "t.duckdb", *mappings[:4], ok=False)
    assert_user_error(
        refused, "--mapping: expected one mapping for every file or one per file (3 files), got 2"
    )
    # One file named twice with two mappings: which was meant is not guessed.
    twice = ("ingest", files[0], files[0], *mappings[:4], "--store", tmp_path / "u.duckdb")
    assert_user_error(
        twinweave(*twice, ok=False),
        "named twice, with two different mappings",
        "A wide file (a column per turbine) is not read as it is",
    )
    # One mapping naming R80711 given for the files of two turbines: both are read as
    # R80711, which a review found only as an informational line; now a warning.
    one = ("ingest", files[0], files[1], *mappings[:2], "--store", tmp_path / "v.duckdb")
    warned = twinweave(*one)
    assert f"warning: {files[1]}: " in warned.stderr, warned.stderr
    assert "at times turbine R80711 already has, with other values, from" in warned.stderr
    assert "give one --mapping per file" in warned.stderr


def test_one_turbines_exports_that_overlap_are_no_shared_mapping_mistake(tmp_path: Path) -> None:
    # A cumulative export (each file restating earlier days) repeats readings with the
    # same values: the warning of one mapping given for several turbines (which repeat
    # times with other values) fired on it (review).
    layout = LA_HAUTE_BORNE.model_dump(mode="json", exclude_none=True)
    del layout["asset_column"]
    mapping = tmp_path / "R80711.json"
    mapping.write_text(json.dumps({**layout, "asset_id": "R80711"}))
    files = []
    for name, end in (("first", "2014-12-15"), ("second", "2014-12-21")):
        data = scada_subset(tmp_path / f"{name}.parquet", ("R80711", "2014-12-01", end))
        pd.read_parquet(data).drop(columns="Wind_turbine_name").to_parquet(data, index=False)
        files.append(data)
    ingested = twinweave("ingest", *files, "--mapping", mapping, "--store", tmp_path / "s.duckdb")
    assert "warning" not in ingested.stderr, ingested.stderr
    assert "readings with the same values (skipped)" in ingested.stdout, ingested.stdout


def test_a_semicolon_csv_is_read_with_delimiter(tmp_path: Path) -> None:
    # ENGIE's own La Haute Borne exports separate fields by ';': that took a whole mapping.
    parquet = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-12-01", "2015-01-10"))
    data = tmp_path / "R80711.csv"
    pd.read_parquet(parquet).to_csv(data, sep=";", index=False)
    fit = ("fit", data, "--train-until", "2015-01-01")
    refused = twinweave(*fit, "--store", tmp_path / "a.duckdb", ok=False)
    assert_user_error(refused, "separated by ';'?", "--delimiter ';'")
    fitted = twinweave(*fit, "--store", tmp_path / "b.duckdb", "--delimiter", ";")
    assert "saved 1 of 1 twins" in fitted.stdout, fitted.stdout
    reference = twinweave(*fit[:1], parquet, *fit[2:], "--store", tmp_path / "c.duckdb")
    assert "saved 1 of 1 twins" in reference.stdout
    with Store(tmp_path / "b.duckdb", read_only=True) as csv_store:
        from_csv = csv_store.observations("R80711")
    with Store(tmp_path / "c.duckdb", read_only=True) as parquet_store:
        from_parquet = parquet_store.observations("R80711")
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    wrong = twinweave(*fit, "--store", tmp_path / "d.duckdb", "--delimiter", ";;", ok=False)
    assert_user_error(wrong, "--delimiter ';;': expected one character")


def test_a_frozen_thermometer_is_listed_as_values_blanked_in_readings_kept(
    fitted_store: Path, tmp_path: Path
) -> None:
    # R80721's thermometer, 8-9 June 2014: 112 readings lose their temperature; 61 of
    # them are set aside by other checks, and were counted as kept.
    listed = one_line(
        twinweave("quarantine", "--store", fitted_store, "--check", "frozen_sensor").stdout
    )
    assert (
        "quarantine: 112 failed checks of 112 readings (a reading can fail several; 51 of "
        "them kept, with a value blanked)" in listed
    ), listed
    june = scada_subset(tmp_path / "june.parquet", ("R80721", "2014-06-01", "2014-06-15"))
    ingested = twinweave("ingest", june, "--store", tmp_path / "june.duckdb").stdout
    assert "values blanked in readings kept, by check: {'frozen_sensor': 51}" in ingested
    printed = re.search(
        r"failed checks, by check \(a reading can fail several\): (\{.*\})", ingested
    )
    assert printed is not None and "frozen_sensor" not in printed.group(1)


def test_a_mapping_without_power_is_named(tmp_path: Path) -> None:
    # Was "check 'missing' needs column 'power'", naming neither mapping nor variable,
    # and suggesting a bug.
    data = tmp_path / "nopower.csv"
    data.write_text("time,ws\n2014-01-01T00:00:00Z,8\n2014-01-01T00:10:00Z,9\n")
    mapping = tmp_path / "nopower.toml"
    mapping.write_text(
        'asset_id = "WT1"\ntime_column = "time"\n'
        '[columns.wind_speed]\nsource = "ws"\nunit = "m/s"\n'
    )
    for command in ("ingest", "fit"):
        extra = ("--train-until", "2014-01-02") if command == "fit" else ()
        result = twinweave(
            command, data, "--store", tmp_path / "s.duckdb", "--mapping", mapping,
            "--rated-power", "2050", *extra, ok=False,
        )  # fmt: skip
        assert_user_error(
            result, f"{mapping}: no column for power (columns.power); expected a "
            "[columns.wind_speed] and a [columns.power] table",
        )  # fmt: skip
        assert DEBUG_HINT not in result.stderr


def test_ingest_warns_when_many_readings_look_stuck(tmp_path: Path) -> None:
    # Wind speeds written to 1 m/s repeat by chance: a third of the readings were
    # quarantined as a frozen anemometer without a word.
    data = scada_subset(tmp_path / "month.parquet", ("R80711", "2014-11-01", "2014-12-01"))
    coarse = tmp_path / "coarse.parquet"
    frame = pd.read_parquet(data)
    frame.assign(Ws_avg=frame["Ws_avg"].round(0)).to_parquet(coarse, index=False)
    for path, warned in ((data, False), (coarse, True)):
        result = twinweave("ingest", path, "--store", tmp_path / f"{path.stem}.duckdb")
        stderr = " ".join(result.stderr.split())
        assert (
            re.search(
                r"warning: asset 'R80711': \d+ of \d+ readings quarantined as a stuck sensor, "
                r"for example wind_speed = .*; values written to few digits",
                stderr,
            )
            is not None
        ) == warned, stderr
