"""The command line as a user runs it: real processes, the shipped data, a DuckDB file."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import duckdb
import numpy as np
import pandas as pd
import pytest

from twinweave import cli
from twinweave.cli import UTC_TIME
from twinweave.core import Derate, Twin
from twinweave.data import Store, clean, read_source
from twinweave.domains.water import reservoir_schema
from twinweave.domains.wind import LA_HAUTE_BORNE, normal_operation_checks, scada_path
from twinweave.models import StateSpaceEmulator
from twinweave.provenance import sha256_file

pytestmark = pytest.mark.slow

RATED_POWER = 2050.0


#: Run as root, a command still meets file permissions as a user would without the
#: capabilities that override them.
AS_A_USER = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
     "--inh-caps=-dac_override,-dac_read_search"]
    if os.geteuid() == 0
    else []
)  # fmt: skip


def twinweave(
    *args: str | Path,
    ok: bool = True,
    env: dict[str, str] | None = None,
    as_a_user: bool = False,
) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("twinweave", path=str(Path(sys.executable).parent))
    assert executable is not None, "the twinweave entry point is not installed"
    result = subprocess.run(
        [*(AS_A_USER if as_a_user else []), executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def predict(
    store: Path, inputs: Path, output: Path, *, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """``twinweave predict`` of R80711, the twin most tests ask."""
    return twinweave(
        "predict", "--store", store, "--twin", "R80711", "--input", inputs, "--output", output,
        ok=ok,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fitted_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("cli") / "S.duckdb"
    # The exact form the issue asks for.
    result = twinweave("fit", scada_path(), "--store", store, "--train-until", "2015-01-01")
    for turbine in ("R80711", "R80721", "R80736", "R80790"):
        assert turbine in result.stdout
    return store


def test_fit_builds_one_twin_per_turbine_and_refuses_nothing_twice(fitted_store: Path) -> None:
    again = twinweave("fit", scada_path(), "--store", fitted_store, "--train-until", "2015-01-01")
    assert "already in the store" in again.stdout


def test_predict_writes_bounded_quantiles_and_a_provenance_chain(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "X.csv"
    pd.DataFrame({"wind_speed": [0.0, 3.5, 7.0, 11.0, 15.0, 24.0]}).to_csv(inputs, index=False)
    output = tmp_path / "Y.csv"
    result = twinweave(
        "predict",
        "--store",
        fitted_store,
        "--twin",
        "R80711",
        "--input",
        inputs,
        "--output",
        output,
    )
    predictions = pd.read_csv(output)
    assert {"wind_speed", "mean", "q05", "q50", "q95"} <= set(predictions.columns)
    q = predictions[["q05", "q50", "q95"]].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0)
    assert q.min() >= 0.0 and q.max() <= RATED_POWER
    # The power curve rises: a twin of a real turbine, not a constant.
    assert predictions["mean"].iloc[3] > predictions["mean"].iloc[2] > predictions["mean"].iloc[1]
    assert predictions["mean"].iloc[5] > 1500.0  # rated region, above the data seen
    # ... which the twin says: 24 m/s is beyond the strongest wind of its training year.
    assert re.search(
        r"warning: 1 of 6 inputs are at wind speeds the twin has no readings", result.stderr
    )

    # The id printed is the output file's: Y.csv leads back to its numbers.
    file_id = re.search(r"provenance (file:[0-9a-f]+) --store", result.stdout)
    assert file_id is not None, result.stdout
    prov_json = tmp_path / "prov.json"
    chain = twinweave(
        "provenance", file_id.group(1), "--store", fitted_store, "--json", prov_json
    ).stdout
    # From the raw file (with its hash) through ingest, clean, fit to the number, and
    # the number to the file written.
    for step in ("sha256=", "ingest:", "clean:", "fit:", "model_version:", "prediction:"):
        assert step in chain
    assert chain.index("ingest:") < chain.index("fit:") < chain.index("prediction:")
    (last,) = [line for line in chain.splitlines() if f"Z  {file_id.group(1)}" in line]
    assert chain.index("prediction:") < chain.index(last), chain
    assert f"path={output.resolve()}" in last and f"sha256={sha256_file(output)}" in last
    document = json.loads(prov_json.read_text())
    assert {"entity", "activity", "used", "wasGeneratedBy"} <= set(document)
    # The export is the chain printed, not the whole store's provenance (other twins'
    # fits, later what-ifs): as many entities and activities as records printed.
    n_printed = int(re.search(r"(\d+) records, raw files first", chain).group(1))  # type: ignore[union-attr]
    assert len(document["entity"]) + len(document["activity"]) == n_printed
    assert f"wrote the chain's {n_printed} records as PROV-JSON" in chain


def test_predict_writes_csv_to_stdout_with_output_dash(fitted_store: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "X.csv"
    # A text column too: what is said about it goes to stderr, not into the table.
    frame = pd.DataFrame({"asset": ["R80711"] * 3, "wind_speed": [4.0, 8.0, 12.0]})
    frame.to_csv(inputs, index=False)
    to_file = tmp_path / "Y.csv"
    predict(fitted_store, inputs, to_file)
    piped = twinweave(
        "predict", "--store", fitted_store, "--twin", "R80711", "--input", inputs, "--output", "-"
    )  # fmt: skip
    # stdout is the table alone, the same as the file; what is said goes to stderr.
    assert piped.stdout == to_file.read_text()
    assert "inputs read: ['wind_speed']" in piped.stderr
    assert "not used as model inputs (not numeric): ['asset']" in piped.stderr
    assert "wrote 3 predictions to stdout" in piped.stderr
    assert re.search(r"provenance prediction:[0-9a-f]+ --store", piped.stderr)


def test_predict_says_which_columns_it_reads_and_ignores_the_others(
    fitted_store: Path, tmp_path: Path
) -> None:
    # A raw export: temperature under another name, a pitch far outside the schema's
    # bounds. Neither is read, the prediction is made from wind speed, and the user is
    # told so rather than refused.
    inputs = tmp_path / "export.csv"
    pd.DataFrame(
        {"wind_speed": [6.0, 9.0], "temperature": [-5.0, 25.0], "pitch": [0.0, 200.0]}
    ).to_csv(inputs, index=False)
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"wind_speed": [6.0, 9.0]}).to_csv(plain, index=False)
    runs, means = [], []
    for source in (inputs, plain):
        output = source.with_suffix(".out.csv")
        runs.append(predict(fitted_store, source, output))
        means.append(pd.read_csv(output)["mean"].to_numpy())
    export_run, plain_run = runs
    assert "columns the twin does not read: ['temperature', 'pitch']" in export_run.stdout
    assert "temp_air" in export_run.stdout  # what it would have read
    assert "inputs read: ['wind_speed']" in plain_run.stdout
    assert "does not read" not in plain_run.stdout
    # The twin's optional inputs that are missing are named: the prediction differs.
    assert (
        "inputs the twin reads that are not given: ['temp_air', 'wind_direction']"
        in plain_run.stdout
    )
    np.testing.assert_array_equal(means[0], means[1])
    # A pressure without a temperature is read, and changes nothing: said so.
    pressure = tmp_path / "pressure.csv"
    pd.DataFrame({"wind_speed": [6.0, 9.0], "pressure": [95_000.0, 101_000.0]}).to_csv(
        pressure, index=False
    )
    run = predict(fitted_store, pressure, pressure.with_suffix(".out.csv"))
    assert "'pressure' is used only with 'temp_air'" in run.stderr, run.stderr
    assert "air density the site's mean" in plain_run.stdout
    # A density given is read: the site's mean is not what the prediction uses.
    density = tmp_path / "density.csv"
    pd.DataFrame({"wind_speed": [6.0, 9.0], "air_density": [1.30, 1.10]}).to_csv(
        density, index=False
    )
    run = predict(fitted_store, density, density.with_suffix(".out.csv"))
    assert "inputs read: ['wind_speed', 'air_density']" in run.stdout, run.stdout
    assert "not given: ['temp_air', 'wind_direction']" in run.stdout
    assert "the site's mean" not in run.stdout
    mean = pd.read_csv(pressure.with_suffix(".out.csv"))["mean"].to_numpy()
    np.testing.assert_array_equal(mean, means[1])


def test_predict_names_the_missing_column(fitted_store: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "bad.csv"
    pd.DataFrame({"speed": [5.0]}).to_csv(inputs, index=False)
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(result, "bad.csv", "'wind_speed'")
    assert "separated by" not in result.stderr
    # Separated by semicolons, as European spreadsheets write it: said.
    inputs.write_text("wind_speed;temp_air\n5;10\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(
        result,
        "got ['wind_speed;temp_air']; the file seems separated by ';': the inputs are read "
        "as comma-separated",
    )


def test_whatif_reports_quantities_side_by_side_with_their_provenance(
    fitted_store: Path,
) -> None:
    result = twinweave(
        "whatif",
        "--store",
        fitted_store,
        "--twin",
        "R80721",
        "--derate",
        "1000",
        "--start",
        "2015-03-01",
        "--end",
        "2015-03-08",
        "--samples",
        "200",
    )
    for quantity in ("energy", "capacity_factor", "hours_at_rated"):
        assert quantity in result.stdout
    assert "no 'time' column" not in result.stdout  # stored readings carry their times
    result_id = re.search(r"provenance (whatif_result:[0-9a-f]+)", result.stdout)
    assert result_id is not None, result.stdout
    chain = twinweave("provenance", result_id.group(1), "--store", fitted_store).stdout
    # Raw file (with its hash), ingest, clean, the week selected, fit, the branch with its
    # intervention, both predictions and the what-if, in that order.
    steps = ("sha256=", "ingest:", "clean:", "select:", "fit:", "branch:", "whatif:")
    positions = [chain.index(step) for step in steps]
    assert positions == sorted(positions), chain
    assert chain.count("predict:") == 2
    assert "interventions=derate to 1000" in chain
    assert chain.rstrip().endswith(result_id.group(1))


def test_monitor_and_report_record_their_provenance(fitted_store: Path, tmp_path: Path) -> None:
    # With --output -, the scores are stdout's only content and the rest goes to stderr.
    monitored = twinweave(
        "monitor", "--store", fitted_store, "--since", "2015-06-01", "--until", "2015-08-01",
        "--output", "-",
    )  # fmt: skip
    scores = pd.read_csv(io.StringIO(monitored.stdout))
    assert list(scores.columns)[-1] == "asset_id" and len(scores) > 4 * 8_000
    assert "wrote per-reading scores to stdout" in monitored.stderr
    alarms_id = re.search(r"provenance (alarms:[0-9a-f]+)", monitored.stderr)
    assert alarms_id is not None, monitored.stderr
    chain = twinweave("provenance", alarms_id.group(1), "--store", fitted_store).stdout
    assert chain.index("sha256=") < chain.index("clean:") < chain.index("monitor:")
    assert "since=2015-06-01" in chain and "n_alarms=" in chain
    reported = twinweave(
        "report", "--store", fitted_store, "--since", "2015-11-01", "--output", tmp_path / "r"
    )
    report_id = re.search(r"provenance (report:[0-9a-f]+)", reported.stdout)
    assert report_id is not None, reported.stdout
    chain = twinweave("provenance", report_id.group(1), "--store", fitted_store).stdout
    assert chain.index("sha256=") < chain.index("fit:") < chain.index("write_report:")
    assert str((tmp_path / "r" / "index.html").resolve()) in chain
    assert chain.count("model_version:") >= 4  # one per twin scored


def test_monitor_joins_alarms_that_follow_one_another_into_periods() -> None:
    # A persistent loss raised 22 alarms a few days apart (the CUSUM restarts after each),
    # listed one by one, where the report said one period.
    from twinweave.monitoring import Alarm

    def alarm(start: str, time: str) -> Alarm:
        return Alarm(pd.Timestamp(time, tz="UTC"), pd.Timestamp(start, tz="UTC"), 2, 7.0)

    persistent = [alarm("2015-06-01", "2015-06-03"), alarm("2015-06-03", "2015-06-05")]
    later = alarm("2015-09-01", "2015-09-02")
    periods = cli._alarm_periods([later, *persistent])
    assert [(f"{a:%m-%d}", f"{b:%m-%d}") for a, b in periods] == [
        ("06-01", "06-05"),
        ("09-01", "09-02"),
    ]
    assert cli._alarm_periods([]) == []


def test_quarantine_lists_reasons(fitted_store: Path, tmp_path: Path) -> None:
    rows = tmp_path / "q.csv"
    twinweave("quarantine", "--store", fitted_store, "--check", "downtime", "--output", rows)
    listed = pd.read_csv(rows)
    assert len(listed) > 0 and set(listed["check"]) == {"downtime"}
    assert listed["reason"].str.len().min() > 10
    # - writes the same rows to stdout, and the summary and sample to stderr.
    piped = twinweave("quarantine", "--store", fitted_store, "--check", "downtime", "--output", "-")
    assert piped.stdout == rows.read_text()
    assert f"wrote {len(listed):,} rows to stdout" in piped.stderr
    assert "failed checks of" in piped.stderr


def other_layout(tmp_path: Path) -> tuple[Path, Path]:
    """A CSV with other column names and units (W, km/h, K), one turbine, naive local time,
    and its mapping."""
    rng = np.random.default_rng(0)
    n = 3000
    speed = rng.uniform(0, 20, n)  # [m/s]
    power = np.clip(RATED_POWER * ((speed - 3) / 10).clip(0, 1) ** 3, 0, RATED_POWER)
    frame = pd.DataFrame(
        {
            "stamp": pd.date_range("2020-01-01", periods=n, freq="10min").strftime(
                "%Y-%m-%d %H:%M"
            ),
            "ws_kmh": speed * 3.6,
            "p_w": (power + rng.normal(0, 20, n)) * 1000.0,
            "t_k": 283.15 + rng.normal(0, 3, n),
        }
    )
    data = tmp_path / "other.csv"
    frame.to_csv(data, index=False)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "asset_id": "T1",
                "time_column": "stamp",
                "time_zone": "Europe/Berlin",
                "columns": {
                    "wind_speed": {"source": "ws_kmh", "unit": "km/h"},
                    "power": {"source": "p_w", "unit": "W"},
                    "temp_air": {"source": "t_k", "unit": "K"},
                },
            }
        )
    )
    return data, mapping


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


def test_fit_warns_of_a_twin_fitted_on_few_of_its_readings(tmp_path: Path) -> None:
    # Power in W declared as kW: the range check sets all but idle readings aside, and
    # the twin was fitted on those few, saved without a word from fit.
    data, mapping = other_layout(tmp_path)
    layout = json.loads(mapping.read_text())
    layout["columns"]["power"]["unit"] = "kW"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(layout))
    store = tmp_path / "wrong.duckdb"
    fit = ("fit", data, "--store", store, "--train-until", "2020-01-20", "--rated-power", "2050")
    warned = twinweave(*fit, "--mapping", wrong).stderr
    with Store(store, read_only=True) as db:
        kept = db.count_observations("T1", end="2020-01-20")
        read = db.count_observations("T1", end="2020-01-20", raw=True)
    # 19 days and an hour of 10-minute readings (Berlin midnight is 23:00 UTC).
    assert 0 < kept < 0.25 * read and read == 2742
    assert f"asset 'T1': fitted on {kept} of its {read} readings before --train-until" in warned, (
        warned
    )
    assert f"twinweave quarantine --store {store} --asset T1" in " ".join(warned.split())
    # With the right unit nothing is said of it.
    right = tmp_path / "right.duckdb"
    quiet = twinweave("fit", data, "--store", right, "--train-until", "2020-01-20",
                      "--rated-power", "2050", "--mapping", mapping).stderr  # fmt: skip
    assert "fitted on" not in quiet, quiet


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
    import duckdb

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


# -- a user's mistakes: one line naming what is wrong, exit code 2, no traceback ----------
def assert_user_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # On stderr, so that whatever is piped on from stdout is never an error message.
    assert result.stderr.startswith("error: "), result.stderr
    assert "error" not in result.stdout, result.stdout
    for text in expected:
        assert text in result.stderr, result.stderr


DEBUG_HINT = "TWINWEAVE_DEBUG=1"


def test_predict_names_file_column_row_and_value_of_a_bad_input(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "typo.csv"
    # A blank line (which pandas skips) puts 'abc' on line 4 of the file.
    inputs.write_text("wind_speed\n5.0\n\nabc\n7.0\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(result, "typo.csv", "'wind_speed'", "row 1 (line 4)", "got 'abc'")
    # An error raised only for bad input needs no hint that it may be a bug.
    assert DEBUG_HINT not in result.stderr
    # A number beyond the physical bounds: the line too (walk-through 2026-11-30).
    inputs.write_text("wind_speed\n5.0\n\n-1\n7.0\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv", ok=False)
    assert_user_error(
        result,
        "typo.csv: column 'wind_speed', row 1 (line 4): expected a value within [0, 60] m/s, "
        "got '-1.0'",
    )


def test_an_unknown_twin_or_store_is_named_and_no_store_is_created(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "X.csv"
    inputs.write_text("wind_speed\n5.0\n")
    unknown_twin = twinweave(
        "predict", "--store", fitted_store, "--twin", "R99999", "--input", inputs,
        "--output", tmp_path / "out.csv", ok=False,
    )  # fmt: skip
    assert_user_error(unknown_twin, "no twin 'R99999'", "R80711")
    # The user's to fix, not a possible bug: no hint to look at a traceback.
    assert DEBUG_HINT not in unknown_twin.stderr
    missing = tmp_path / "nope.duckdb"
    for command in (
        ("predict", "--twin", "R80711", "--input", inputs, "--output", tmp_path / "o.csv"),
        ("whatif", "--twin", "R80711", "--stop"),
        ("monitor", "--since", "2015-01-01"),
        ("provenance",),
        ("quarantine",),
    ):
        assert_user_error(twinweave(*command, "--store", missing, ok=False), "no such store")
    assert not missing.exists()


def test_a_whatif_of_a_saved_branch_points_to_its_live_twin(
    fitted_store: Path, tmp_path: Path
) -> None:
    # It looked for readings of asset 'R80711-derated' and said so as if it were a bug;
    # with --input it put the branch in the live twin's column.
    store = tmp_path / "branches.duckdb"
    shutil.copy(fitted_store, store)
    with Store(store) as db:
        db.save_twin(db.load_twin("R80711").branch(Derate(1500.0), name="R80711-derated"))
    refused = twinweave(
        "whatif", "--store", store, "--twin", "R80711-derated", "--derate", "1800", ok=False
    )  # fmt: skip
    assert_user_error(
        refused,
        "--twin R80711-derated: a saved branch of R80711 (derate to 1500)",
        "a what-if starts from a live twin: --twin R80711",
    )
    assert "TWINWEAVE_DEBUG" not in refused.stderr


def test_a_twin_of_another_domain_is_named_not_read_as_a_turbine(tmp_path: Path) -> None:
    # A reservoir's twin saved from Python: the commands read wind speeds and write kW,
    # and took its file for one missing wind_speed, or its store for one without twins.
    emulator = StateSpaceEmulator.reservoir(
        capacity=1e4, initial_storage=5e3, initial_var=1e6, process_var=100.0, noise_var=400.0
    )
    store = tmp_path / "water.duckdb"
    with Store(store) as db:
        db.save_twin(Twin("dam", reservoir_schema(1e4), emulator))
    inputs = tmp_path / "flows.csv"
    inputs.write_text("inflow,outflow\n100,90\n")
    said = "twin 'dam': a twin of 'storage' [m^3] (schema 'Reservoir'), not of a wind turbine's"
    result = twinweave(
        "predict", "--store", store, "--twin", "dam", "--input", inputs, "--output",
        tmp_path / "out.csv", ok=False,
    )  # fmt: skip
    assert_user_error(result, said, "docs/RESERVOIRS.md")
    whatif = twinweave("whatif", "--store", store, "--twin", "dam", "--stop", ok=False)
    assert_user_error(whatif, said)
    report = twinweave(
        "report", "--store", store, "--since", "2015-01-01", "--output", tmp_path / "r", ok=False
    )
    # The twin left out is warned of, then the store refused for want of turbines.
    assert report.returncode == 2 and "Traceback" not in report.stderr
    assert report.stderr.startswith(f"warning: {said}")
    assert "left out\nerror: " in report.stderr and "no turbine twins" in report.stderr


def test_nonsense_interventions_are_refused(fitted_store: Path) -> None:
    for option, value in (("--derate", "-100"), ("--scale", "-2")):
        result = twinweave(
            "whatif", "--store", fitted_store, "--twin", "R80711", option, value, ok=False
        )
        assert_user_error(result, option, value)


def test_provenance_takes_a_twin_id_and_lists_ids(fitted_store: Path) -> None:
    chain = twinweave("provenance", "R80736", "--store", fitted_store).stdout
    assert "sha256=" in chain and "fit:" in chain
    assert re.search(r"model_version:[0-9a-f]+\s*$", chain.rstrip()), chain
    listed = twinweave("provenance", "--store", fitted_store, "--limit", "3").stdout
    assert len(re.findall(r"^\S+Z  \w+:[0-9a-f]{12}", listed, flags=re.MULTILINE)) == 3, listed
    unknown = twinweave("provenance", "prediction:000000000000", "--store", fitted_store, ok=False)
    assert_user_error(unknown, "prediction:000000000000", "R80711")
    assert "did you mean" not in unknown.stderr
    # A mistyped id is answered with the ids it may have meant.
    version = re.search(r"(model_version:[0-9a-f]{12})\s*$", chain.rstrip())
    assert version is not None
    digest = version.group(1).partition(":")[2]
    for typed in (version.group(1).upper(), f" {version.group(1)}", f"model_version:{digest[:-1]}",
                  f"fit:{digest}", "r80736", version.group(1).replace("_", "")):  # fmt: skip
        meant = twinweave("provenance", typed, "--store", fitted_store, ok=False)
        expected = "R80736" if typed == "r80736" else version.group(1)
        assert_user_error(meant, f"(did you mean {expected}")


def test_provenance_json_goes_to_stdout_with_a_dash_and_a_bad_path_is_refused_first(
    fitted_store: Path, tmp_path: Path
) -> None:
    # '-' used to write a file named '-'; a missing folder failed after the chain was
    # printed, with a bare "[Errno 2]".
    piped = twinweave("provenance", "R80736", "--store", fitted_store, "--json", "-")
    document = json.loads(piped.stdout)
    assert "entity" in document and "activity" in document
    assert "sha256=" in piped.stderr and "as PROV-JSON to stdout" in piped.stderr
    assert not Path("-").exists()
    missing = tmp_path / "nodir" / "p.json"
    refused = twinweave(
        "provenance", "R80736", "--store", fitted_store, "--json", missing, ok=False
    )
    assert_user_error(refused, f"--json {missing}: no such directory")
    assert "records, raw files first" not in refused.stdout


def test_quarantine_names_the_checks_there_are(fitted_store: Path) -> None:
    result = twinweave("quarantine", "--store", fitted_store, "--check", "nosuch", ok=False)
    assert_user_error(result, "--check nosuch", "downtime", "curtailment")
    # A check and an asset each in the quarantine, but not together: said in a line.
    with Store(fitted_store, read_only=True) as db:
        entries = db.quarantine(None, None)
    pairs = set(zip(entries["asset_id"], entries["check"], strict=True))
    apart = [
        (a, c)
        for a in set(entries["asset_id"])
        for c in set(entries["check"])
        if (a, c) not in pairs
    ]
    assert apart, "the fitted store has every check at every asset: choose another pair"
    asset, check = apart[0]
    result = twinweave("quarantine", "--store", fitted_store, "--asset", asset, "--check", check)
    assert result.stdout == f"quarantine: no entries for --asset {asset} --check {check}\n"


def test_help_keeps_the_units() -> None:
    assert "[kW]" in twinweave("predict", "--help").stdout
    assert "[m/s]" in twinweave("predict", "--help").stdout


# -- what a new user ran into (walk-through of 2026-11-28) --------------------------------
def whatif_energy(result: subprocess.CompletedProcess[str]) -> float:
    """The live twin's energy [MWh] from the what-if table."""
    found = re.search(r"energy \[MWh\]\s*│\s*([-0-9.e+]+)", result.stdout)
    assert found is not None, result.stdout
    return float(found.group(1))


def test_whatif_counts_each_reading_for_its_own_time_step(
    fitted_store: Path, tmp_path: Path
) -> None:
    # One day at a steady 10 m/s, given hourly and every ten minutes: the same energy.
    energies, titles = {}, {}
    for step, n in (("1h", 24), ("10min", 144)):
        inputs = tmp_path / f"day_{step}.csv"
        times = pd.date_range("2015-06-01", periods=n, freq=step, tz="UTC")
        pd.DataFrame({"time": times, "wind_speed": 10.0}).to_csv(inputs, index=False)
        result = twinweave(
            "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
            "--input", inputs, "--samples", "200",
        )  # fmt: skip
        energies[step] = whatif_energy(result)
        titles[step] = result.stdout
        assert "hours_at_rated [h]" in result.stdout  # units are text, not markup
    assert "24 readings of 60 minutes" in titles["1h"]
    assert "144 readings of 10 minutes" in titles["10min"]
    assert energies["1h"] == pytest.approx(energies["10min"], rel=0.01), energies
    # Two readings ten minutes apart and one two days later: ten minutes each, and the
    # gap is said (the median step of two, a day, counted each reading for 24 hours).
    sparse = tmp_path / "sparse.csv"
    times = pd.to_datetime(["2015-06-01T00:00Z", "2015-06-01T00:10Z", "2015-06-03T00:00Z"])
    pd.DataFrame({"time": times, "wind_speed": 10.0}).to_csv(sparse, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
        "--input", sparse, "--samples", "200",
    )  # fmt: skip
    assert "3 readings of 10 minutes" in result.stdout, result.stdout
    assert (
        "the readings cover 0.5 h of the 48 h from the first to the last (1%)" in result.stderr
    ), result.stderr
    assert "the inputs step by" not in result.stderr  # a gap is not a second cadence
    # Nor are many: a fifth of the 10-minute readings missing at random (review
    # 2026-11-30: counted by frequency, their 20-minute steps were taken for one).
    gappy = tmp_path / "gappy.csv"
    times = pd.date_range("2015-06-01", periods=600, freq="10min", tz="UTC")
    kept = np.random.default_rng(2).random(600) > 0.2
    pd.DataFrame({"time": times[kept], "wind_speed": 10.0}).to_csv(gappy, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
        "--input", gappy, "--samples", "200",
    )  # fmt: skip
    assert "the inputs step by" not in result.stderr, result.stderr
    # Twelve hours every ten minutes, then twelve hourly readings: each counted for ten
    # minutes, which is said rather than taken for missing readings only.
    mixed = tmp_path / "mixed.csv"
    times = pd.date_range("2015-06-01", periods=72, freq="10min", tz="UTC").append(
        pd.date_range("2015-06-01T12:00", periods=12, freq="1h", tz="UTC")
    )
    pd.DataFrame({"time": times, "wind_speed": 10.0}).to_csv(mixed, index=False)
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--scale", "0.97",
        "--input", mixed, "--samples", "200",
    )  # fmt: skip
    assert (
        "column 'time': the inputs step by 10 minutes 72 times and by 60 minutes 11 times; "
        "every reading is counted for 10 minutes" in result.stderr
    ), result.stderr


def test_whatif_warns_of_its_inputs_as_predict_does(fitted_store: Path, tmp_path: Path) -> None:
    # Wind beyond any the twin has seen (km/h in the m/s column), a blank temperature, one
    # colder than any it has seen and a power column it does not read: said as predict
    # says them (walk-through 2026-11-29).
    inputs = tmp_path / "storm.csv"
    times = pd.date_range("2015-06-01", periods=6, freq="10min", tz="UTC")
    frame = pd.DataFrame({"time": times, "wind_speed": 36.0, "temp_air": 12.0, "power": 0.0})
    frame.loc[2, "temp_air"] = np.nan
    frame.loc[3, "temp_air"] = -35.0  # colder than any reading it learned from
    frame.to_csv(inputs, index=False)
    for command in ("predict", "whatif"):
        options = ("--output", tmp_path / "y.csv") if command == "predict" else ("--stop",)
        result = twinweave(
            command, "--store", fitted_store, "--twin", "R80711", "--input", inputs, *options
        )
        assert "6 of 6 inputs are at wind speeds the twin has no readings near" in result.stderr
        assert "column 'temp_air': 1 of 6 rows are missing" in result.stderr, result.stderr
        assert re.search(
            r"input 'temp_air': 1 of 6 rows are outside -?[0-9.]+ to [0-9.]+ degC, the values "
            r"the twin has assimilated; there the effect of temp_air on the curve is "
            r"extrapolated",
            result.stderr,
        ), result.stderr
        assert "columns the twin does not read: ['power']" in result.stdout, result.stdout
        assert "the twin reads that are not given: ['wind_direction']" in result.stdout
    # The output repeats the times in the ISO 8601 form the commands read and print.
    written = (tmp_path / "y.csv").read_text().splitlines()
    assert written[1].startswith("2015-06-01T00:00:00+00:00,"), written[:2]


def test_whatif_says_when_it_guesses_a_readings_length(fitted_store: Path, tmp_path: Path) -> None:
    # Two readings a day apart were counted as a day each, one reading as 10 minutes,
    # silently ("1 readings of 10 minutes").
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--derate", "500")
    two = tmp_path / "two.csv"
    two.write_text("time,wind_speed\n2015-06-01T00:00Z,9\n2015-06-02T00:00Z,9\n")
    result = twinweave(*base, "--input", two, "--samples", "50")
    assert (
        "column 'time': each reading is counted for 24 hours, the step between its 2 times, "
        "too few to be sure of it" in one_line(result.stderr)
    ), result.stderr
    one = tmp_path / "one.csv"
    one.write_text("time,wind_speed\n2015-06-01T00:00Z,9\n")
    result = twinweave(*base, "--input", one, "--samples", "50")
    assert "column 'time': one time only" in one_line(result.stderr), result.stderr
    assert "(1 reading of 10 minutes)" in one_line(result.stdout), result.stdout
    # Enough times: nothing said.
    times = pd.date_range("2015-06-01", periods=6, freq="10min", tz="UTC")
    six = tmp_path / "six.csv"
    pd.DataFrame({"time": times, "wind_speed": 9.0}).to_csv(six, index=False)
    assert "column 'time'" not in twinweave(*base, "--input", six, "--samples", "50").stderr


def test_whatif_says_when_its_sample_paths_do_not_fit_in_memory(
    fitted_store: Path, tmp_path: Path
) -> None:
    # 20,000 readings x 50,000 paths: 7.5 GiB an array, in a process allowed 4 GiB.
    inputs = tmp_path / "year.csv"
    times = pd.date_range("2015-01-01", periods=20_000, freq="10min", tz="UTC")
    pd.DataFrame({"time": times, "wind_speed": 8.0}).to_csv(inputs, index=False)
    executable = shutil.which("twinweave", path=str(Path(sys.executable).parent))
    assert executable is not None

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    result = subprocess.run(
        [executable, "whatif", "--store", str(fitted_store), "--twin", "R80711", "--stop",
         "--input", str(inputs), "--samples", "50000"],
        capture_output=True, text=True, timeout=300, preexec_fn=limit_memory,
        env={**os.environ, "COLUMNS": "200", "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    assert_user_error(
        result,
        "--samples 50000: not enough memory for 50000 sample paths of 20000 readings "
        "(7.5 GiB an array)",
    )


def test_whatif_says_when_the_period_runs_beyond_the_readings(fitted_store: Path) -> None:
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--stop", "--samples", "50")
    beyond = twinweave(*base, "--start", "2015-12-30", "--end", "2016-03-01")
    said = " ".join(beyond.stderr.split())
    assert "the stored readings of R80711 in the period asked for run from 2015-12-30" in said
    assert "the quantities are totals over those readings only" in said
    within = twinweave(*base, "--start", "2015-06-01", "--end", "2015-06-02")
    assert "in the period asked for" not in within.stderr, within.stderr


def test_whatif_refuses_what_it_cannot_mean(fitted_store: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "x.csv"
    inputs.write_text("wind_speed\n8\n")
    base = ("whatif", "--store", fitted_store, "--twin", "R80711")
    for factor in ("inf", "nan", "2"):
        assert_user_error(twinweave(*base, "--scale", factor, ok=False), "--scale", "[0, 1.25]")
    both = twinweave(*base, "--stop", "--input", inputs, "--start", "2015-01-01", ok=False)
    assert_user_error(both, "--start/--end", "--input")
    backwards = twinweave(*base, "--stop", "--start", "2015-07-01", "--end", "2015-06-01", ok=False)
    assert_user_error(backwards, "--end 2015-06-01", "after --start")
    no_samples = twinweave(*base, "--stop", "--samples", "19", ok=False)
    assert no_samples.returncode == 2 and "--samples" in no_samples.stderr
    assert "19 is not in the range x>=20" in one_line(no_samples.stderr)
    assert "Traceback" not in no_samples.stderr
    # Was "error: expected non-negative integer" from numpy, naming no option.
    negative_seed = twinweave(*base, "--stop", "--seed", "-1", ok=False)
    assert negative_seed.returncode == 2 and "--seed" in negative_seed.stderr
    assert "-1 is not in the range x>=0" in one_line(negative_seed.stderr)
    # The detectors need 30 days: --calibration-days 29 failed (or only warned, in report)
    # after the monitor ran, under a help that said x>=1.
    for command in ("monitor", "report"):
        short = twinweave(command, "--store", fitted_store, "--calibration-days", "29", ok=False)
        assert short.returncode == 2 and "--calibration-days" in short.stderr
        assert "29 is not in the range x>=30" in one_line(short.stderr), short.stderr
    # A period without stored readings names the twin and where its readings are.
    later = twinweave(*base, "--stop", "--start", "2017-01-01", "--end", "2017-02-01", ok=False)
    assert_user_error(
        later,
        "twin 'R80711': no stored readings from 2017-01-01 until 2017-02-01; its readings "
        "run from 2014-01-",
        " to 2015-12-31 ",
    )


def test_predict_refuses_bad_files_before_any_work(fitted_store: Path, tmp_path: Path) -> None:
    before = len(twinweave("provenance", "--store", fitted_store, "--limit", "1000").stdout)
    good = tmp_path / "good.csv"
    good.write_text("wind_speed\n8\n")
    (tmp_path / "adir").mkdir()
    files = {
        "empty.csv": ("", "empty"),
        "header.csv": ("wind_speed\n", "no rows"),
        "twice.csv": ("wind_speed,wind_speed\n5,6\n", "'wind_speed' appears more than once"),
        # Every row a field more than the header: not read with the first as an index.
        "more.csv": (
            "wind_speed,temp_air\n1,5,15\n2,6,16\n",
            "more.csv: rows have more fields than the header",
        ),
        # A last line cut short: its missing temperature is not a blank cell.
        "cut.csv": (
            "wind_speed,temp_air\n5,15\n6",
            "cut.csv: row has fewer fields than the header (a line cut short?) (no column, "
            "row 1 (line 3), value '1 field'); expected 2 fields",
        ),
        "data.json": ('[{"wind_speed": 5}]', "expected a CSV"),
        "negative.csv": (
            "wind_speed\n-3\n",
            "negative.csv: column 'wind_speed', row 0 (line 2): expected a value within [0, 60]",
        ),
    }
    for name, (text, expected) in files.items():
        (tmp_path / name).write_text(text)
        result = predict(fitted_store, tmp_path / name, tmp_path / "out.csv", ok=False)
        assert_user_error(result, expected)
    for output, expected in (
        (tmp_path / "adir", "is a directory"),
        (tmp_path / "missing" / "out.csv", "no such directory"),
        (tmp_path / "out.xlsx", "expected a CSV"),
        (good, "the --input file; expected another file name"),
    ):
        result = predict(fitted_store, good, output, ok=False)
        assert_user_error(result, expected)
    assert good.read_text() == "wind_speed\n8\n"  # the input was overwritten before
    # Refused before predicting: no prediction was recorded for an output never written.
    after = len(twinweave("provenance", "--store", fitted_store, "--limit", "1000").stdout)
    assert after == before
    parquet = tmp_path / "out.parquet"
    predict(fitted_store, good, parquet)
    assert list(pd.read_parquet(parquet).columns) == ["wind_speed", "mean", "q05", "q50", "q95"]


def test_predict_warns_where_an_input_it_reads_is_missing(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "gaps.csv"
    inputs.write_text("wind_speed,temp_air\n5,15\n5,\n")
    result = predict(fitted_store, inputs, tmp_path / "out.csv")
    assert "column 'temp_air': 1 of 2 rows are missing" in result.stderr


def test_report_refuses_to_call_training_readings_held_out(
    fitted_store: Path, tmp_path: Path
) -> None:
    result = twinweave(
        "report", "--store", fitted_store, "--since", "2014-06-01", "--output", tmp_path / "r",
        ok=False,
    )  # fmt: skip
    assert_user_error(result, "--since 2014-06-01", "not be held out", "--train-until")
    assert not (tmp_path / "r").exists()
    # Nothing to score after the last reading: said with where the readings end.
    result = twinweave(
        "report", "--store", fitted_store, "--since", "2016-01-01", "--output", tmp_path / "r",
        ok=False,
    )  # fmt: skip
    assert_user_error(
        result, "--since 2016-01-01T00:00:00+00:00: no twin has readings from then on to score"
    )
    assert re.search(r"the last stored reading is at 2015-\d\d-\d\d", result.stderr)
    assert not (tmp_path / "r").exists()


def test_monitor_names_its_options_when_the_period_is_wrong(fitted_store: Path) -> None:
    base = ("monitor", "--store", fitted_store)
    late = twinweave(*base, "--since", "2030-01-01", ok=False)
    assert_user_error(late, "--since 2030-01-01", "after the last stored reading")
    early = twinweave(*base, "--since", "2014-03-01", ok=False)
    assert_user_error(early, "--calibration-days 180", "start at")
    backwards = twinweave(*base, "--since", "2015-06-01", "--until", "2015-05-01", ok=False)
    assert_user_error(backwards, "--until", "after --since")


def test_fit_piped_into_head_still_saves_its_twins(tmp_path: Path) -> None:
    # The reader goes after two lines; the fit goes on and saves every twin, and says
    # on stderr that --train-until left nothing to score on.
    store = tmp_path / "piped.duckdb"
    executable = shutil.which("twinweave", path=str(Path(sys.executable).parent))
    assert executable is not None
    command = [executable, "fit", str(scada_path()), "--store", str(store)]
    process = subprocess.Popen(
        [*command, "--train-until", "2030-01-01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert process.stdout is not None and process.stderr is not None
    first = [process.stdout.readline() for _ in range(2)]
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0, stderr
    assert "ingested scada_2014_2015.parquet" in first[0], first
    assert "after the last reading" in stderr
    assert "ingest (rows written: raw, cleaned, quarantine)" in stderr  # progress goes to stderr
    with Store(store, read_only=True) as db:
        assert db.twin_ids() == ["R80711", "R80721", "R80736", "R80790"]


def test_an_error_from_below_the_cli_says_how_to_see_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ValueError the CLI did not raise for the user's input may be a bug: one line,
    # exit code 2, and the way to its traceback.
    from twinweave import cli

    def broken() -> None:
        raise ValueError("shapes (3,) and (4,) not aligned")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: shapes (3,) and (4,) not aligned"), stderr
    assert DEBUG_HINT in stderr
    monkeypatch.setenv("TWINWEAVE_DEBUG", "1")
    with pytest.raises(ValueError, match="not aligned"):
        cli.main()


def test_inputs_the_twin_reads_are_numbers_and_times_are_times(
    fitted_store: Path, tmp_path: Path
) -> None:
    cases = {
        "steps.csv": (
            "time,wind_speed\n0,8\n1.5,9\n",
            "column 'time': expected times such as 2015-06-01T00:10:00Z, got numbers ('0.0', ...)",
        ),
        "no_times.csv": (
            "time,wind_speed\n,8\n,9\n",
            "column 'time', row 0 (line 2): expected an ISO 8601 time such as "
            "2015-06-01T00:10:00Z or 2015-06-01 00:10 (UTC), got a missing value (2 of 2 rows",
        ),
        "blank_time.csv": (
            "time,wind_speed\n2015-06-01T00:00Z,8\n,9\n",
            "column 'time', row 1 (line 3): expected an ISO 8601 time",
        ),
        "text_temp.csv": (
            "wind_speed,temp_air\n8,abc\n9,12\n",
            "column 'temp_air', row 0 (line 2): expected a number [degC] or a blank cell",
        ),
        # 22:10 UTC then 00:20 read as UTC, where ten minutes later was meant.
        "mixed_offsets.csv": (
            "time,wind_speed\n2015-06-01T00:10:00+02:00,8\n2015-06-01T00:20:00,9\n"
            "2015-06-01T00:30:00+02:00,9\n",
            "column 'time', row 1 (line 3): expected a UTC offset in every time or in none "
            "(times without one are UTC), got '2015-06-01T00:20:00' (1 of 3 rows are not)",
        ),
        # 1 June to some, 6 January to others: refused, not guessed.
        "day_first.csv": (
            "time,wind_speed\n2015-06-01T00:00Z,8\n01/06/2015 00:10,9\n",
            "column 'time', row 1 (line 3): expected an ISO 8601 time such as 2015-06-01T00:10:00Z",
        ),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        for command in (
            ("predict", "--output", tmp_path / "out.csv"),
            ("whatif", "--stop", "--samples", "50"),
        ):
            result = twinweave(
                command[0], "--store", fitted_store, "--twin", "R80711",
                "--input", tmp_path / name, *command[1:], ok=False,
            )  # fmt: skip
            assert_user_error(result, expected)
    repeated = tmp_path / "repeated.csv"
    repeated.write_text(
        "time,wind_speed\n2015-06-01T00:00Z,8\n2015-06-01T00:00Z,8\n2015-06-01T00:10Z,9\n"
    )
    result = twinweave(
        "whatif", "--store", fitted_store, "--twin", "R80711", "--stop", "--input", repeated,
        "--samples", "50",
    )  # fmt: skip
    assert "1 readings repeat an earlier reading's time" in result.stderr


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


# -- small stores built from parts of the shipped data: seconds, not minutes ---------------
def scada_subset(path: Path, *parts: tuple[str, str, str]) -> Path:
    """The shipped readings of each (turbine, from, until) in ``parts``, as Parquet."""
    frame = pd.read_parquet(scada_path())
    time = pd.to_datetime(frame["Date_time"], utc=True)
    keep = np.zeros(len(frame), dtype=bool)
    for turbine, start, end in parts:
        keep |= (
            (frame["Wind_turbine_name"] == turbine)
            & (time >= pd.Timestamp(start, tz="UTC"))
            & (time < pd.Timestamp(end, tz="UTC"))
        ).to_numpy()
    frame[keep].to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def two_turbine_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("two")
    data = scada_subset(
        folder / "two.parquet",
        ("R80711", "2014-11-01", "2015-02-01"),
        ("R80721", "2014-11-01", "2015-02-01"),
    )
    store = folder / "two.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2015-01-01")
    return store


def test_fit_skips_a_turbine_without_training_readings_and_saves_the_others(
    tmp_path: Path,
) -> None:
    data = scada_subset(
        tmp_path / "late.parquet",
        ("R80711", "2014-11-01", "2015-02-01"),
        ("R80721", "2015-01-10", "2015-02-01"),
    )
    store = tmp_path / "late.duckdb"
    fit = ("fit", data, "--store", store)
    for run in (1, 2):
        result = twinweave(*fit, "--train-until", "2015-01-01")
        assert (
            "warning: asset 'R80721': not fitted: no readings before --train-until "
            "2015-01-01T00:00:00+00:00; its readings start at 2015-01-10" in result.stderr
        ), result.stderr
        assert f"saved 1 of 2 twins to {store}: R80711; not fitted" in result.stdout
        with Store(store, read_only=True) as db:
            assert db.twin_ids() == ["R80711"]
            assert db.versions("R80711")["version"].max() == run
    # No turbine to fit: an error, and nothing saved.
    refused = twinweave(*fit, "--train-until", "2014-06-01", ok=False)
    assert_user_error(refused, "--train-until 2014-06-01", "no twin was fitted")
    with Store(store, read_only=True) as db:
        assert db.versions("R80711")["version"].max() == 2


def report_of(store: Path, output: Path, *options: str) -> tuple[str, dict[str, Any]]:
    """``twinweave report --since 2014-12-15`` (or 2015-01-01 for two turbines): stderr
    and metrics.json."""
    since = "2015-01-01" if store.name == "two.duckdb" else "2014-12-15"
    result = twinweave("report", "--store", store, "--since", since, "--output", output, *options)
    assert (output / "index.html").exists()
    return result.stderr, json.loads((output / "metrics.json").read_text())


def test_report_leaves_out_a_twin_without_readings_since_and_says_so(tmp_path: Path) -> None:
    data = scada_subset(
        tmp_path / "ends.parquet",
        ("R80711", "2014-12-01", "2015-02-01"),
        ("R80721", "2014-12-01", "2015-01-10"),
    )
    store = tmp_path / "ends.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2015-01-01")
    output = tmp_path / "r"
    result = twinweave("report", "--store", store, "--since", "2015-01-15", "--output", output)
    assert "twin R80721: no readings from --since 2015-01-15" in result.stderr, result.stderr
    metrics = json.loads((output / "metrics.json").read_text())
    assert list(metrics["turbines"]) == ["R80711"]
    # Nor does the report's provenance use it.
    report_id = re.search(r"provenance (report:[0-9a-f]+)", result.stdout)
    assert report_id is not None, result.stdout
    chain = twinweave("provenance", report_id.group(1), "--store", store).stdout
    assert "twin=R80711" in chain and "twin=R80721" not in chain, chain


def test_report_takes_calibration_days_and_says_when_the_monitor_cannot_run(
    tmp_path: Path,
) -> None:
    # Three turbines from 2014-09-01 (R80736 from 2014-10-01), fitted before 2014-12-15.
    data = scada_subset(
        tmp_path / "three.parquet",
        ("R80711", "2014-09-01", "2015-02-01"),
        ("R80721", "2014-09-01", "2015-02-01"),
        ("R80736", "2014-10-01", "2015-02-01"),
    )
    store = tmp_path / "three.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2014-12-15")
    # 180 days of calibration by default: the twins would learn before 2014-06-18.
    stderr, metrics = report_of(store, tmp_path / "short")
    assert "warning: Monitoring did not run: --since 2014-12-15" in stderr, stderr
    assert "--calibration-days 180" in stderr and "start at 2014-09-01" in stderr
    assert metrics["monitoring"]["ran"] is False
    assert "--calibration-days 180" in metrics["monitoring"]["reason"]
    page = (tmp_path / "short" / "index.html").read_text()
    assert "Monitoring did not run: --since 2014-12-15" in page
    # 60 days: the twins learn September to mid-October, and the monitor runs.
    stderr, metrics = report_of(store, tmp_path / "ran", "--calibration-days", "60")
    assert "Monitoring did not run" not in stderr
    assert metrics["monitoring"] == {
        "ran": True,
        "reason": None,
        "caveat": None,
        # 60 days before --since; the subset's readings end before 2015-02-01.
        "window": {
            "calibrated_from": "2014-10-16T00:00:00+00:00",
            "monitored_from": "2014-12-15T00:00:00+00:00",
            "monitored_until": metrics["monitoring"]["window"]["monitored_until"],
        },
    }
    assert metrics["monitoring"]["window"]["monitored_until"] < "2015-02-01"
    assert (
        "calibrate the detectors up to 2014-12-15" in (tmp_path / "ran" / "index.html").read_text()
    )
    assert all("n_alarms" in scores for scores in metrics["turbines"].values())
    assert "anomaly score (daily max)" in (tmp_path / "ran" / "index.html").read_text()
    # 75 days: R80736 has no readings to learn from before the calibration period; the
    # others are monitored, and it is named as not (the whole command used to stop).
    late = twinweave(
        "monitor", "--store", store, "--since", "2014-12-15", "--calibration-days", "75"
    )
    said = " ".join(late.stderr.split())
    assert (
        "turbine R80736: no readings before the calibration period (before "
        "2014-10-01T00:00:00+00:00) to fit the monitor's twin on; not monitored"
    ) in said, said
    assert "alarms for R80711, R80721 from 2014-12-15" in " ".join(late.stdout.split())


def test_a_farm_of_fewer_than_three_turbines_is_monitored_with_a_warning(
    two_turbine_store: Path, tmp_path: Path
) -> None:
    help_text = twinweave("monitor", "--help").stdout
    assert "Works best with 3 turbines or more" in help_text
    # Readings from 2014-11-01: 180 days of calibration before 2015-01-01 is too many.
    stderr, metrics = report_of(two_turbine_store, tmp_path / "r")
    expected = "the store's readings start at 2014-11-01"
    assert "warning: Monitoring did not run" in stderr and expected in stderr, stderr
    # No caveat about alarms that were not raised.
    assert "each is compared with the other" not in stderr
    assert metrics["monitoring"]["ran"] is False and expected in metrics["monitoring"]["reason"]
    assert not any("n_alarms" in scores for scores in metrics["turbines"].values())
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Monitoring did not run" in page
    # Neither "0 alarms" nor an empty anomaly-score panel, as if it had run.
    assert "readings inside underperformance alarms" not in page
    assert "anomaly score" not in page
    # With 45 days it runs: each turbine compared with the other, and the user told what
    # that costs.
    stderr, metrics = report_of(two_turbine_store, tmp_path / "r45", "--calibration-days", "45")
    assert "each is compared with the other, not with the median of a fleet" in stderr, stderr
    assert "57 of 72 injected -8 % losses within 7 days" in stderr
    assert all("n_alarms" in scores for scores in metrics["turbines"].values())
    # The page and metrics.json keep what the warning said.
    page = (tmp_path / "r45" / "index.html").read_text()
    assert "Monitor: 2 turbines in the store (R80711, R80721): each is compared" in page
    assert "each is compared with the other" in metrics["monitoring"]["caveat"]
    # One turbine is watched on its own residuals.
    alone = tmp_path / "one.duckdb"
    data = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-11-01", "2015-02-01"))
    twinweave("fit", data, "--store", alone, "--train-until", "2015-01-01")
    scores = tmp_path / "scores.csv"
    result = twinweave(
        "monitor", "--store", alone, "--since", "2015-01-01", "--calibration-days", "45",
        "--output", scores,
    )  # fmt: skip
    assert "each is compared with its own twin only" in result.stderr, result.stderr
    assert "1.26 false alarms per turbine-year" in result.stderr
    readings = pd.read_csv(scores)
    assert set(readings["asset_id"]) == {"R80711"} and readings["anomaly_score"].notna().any()
    # Its contrast is its residual.
    np.testing.assert_array_equal(readings["contrast"], readings["residual"])
    # The scores' file is recorded, after the alarms it was written with.
    record = re.search(
        rf"wrote per-reading scores to {re.escape(str(scores))} \(its record: (file:[0-9a-f]+)\)",
        result.stdout,
    )
    assert record is not None, result.stdout
    chain = twinweave("provenance", record.group(1), "--store", alone).stdout
    assert chain.index("monitor:") < chain.index("alarms:") < chain.index(f"Z  {record.group(1)}")
    assert f"path={scores.resolve()} sha256={sha256_file(scores)}" in chain


def test_text_from_the_user_is_printed_as_given(two_turbine_store: Path, tmp_path: Path) -> None:
    # Rich read ':1234:' and ':ok:' as emoji codes and '[b]' as markup.
    for entity in ("nonsense:1234", "prediction:ok"):
        result = twinweave("provenance", entity, "--store", two_turbine_store, ok=False)
        assert_user_error(result, f"error: '{entity}': no such provenance id")
    inputs = tmp_path / "x[b].csv"
    pd.DataFrame({"wind_speed": [5.0, 8.0, 11.0]}).to_csv(inputs, index=False)
    output = tmp_path / "o[b]:ok:.csv"
    result = predict(two_turbine_store, inputs, output)
    assert output.exists()
    assert f"wrote 3 predictions to {output}\n" in result.stdout, result.stdout


def test_monitor_of_a_store_without_turbines_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    result = twinweave("monitor", "--store", empty, "--since", "2015-01-01", ok=False)
    assert result.returncode == 2
    assert "error: the store holds no turbine to monitor" in result.stderr, result.stderr


def test_python_dash_m_twinweave_is_the_command() -> None:
    # Where the venv's scripts are not on PATH, the module runs the same command.
    result = subprocess.run(
        [sys.executable, "-m", "twinweave", "version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert '"twinweave"' in result.stdout


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
    assert [int(n) for n in re.findall(r"\d+", row.replace("R80711", ""))] == [
        counts["raw"],
        counts["observations"],
        counts["quarantined"],
    ]
    by_check = quarantined["check"].value_counts().to_dict()
    by_check.pop("duplicate_across_sources", None)
    printed = re.search(r"quarantine by check: (\{.*\})", result.stdout)
    assert printed is not None and ast.literal_eval(printed.group(1)) == by_check
    assert "already stored from another file" in result.stdout


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``twinweave demo`` as ``make demo`` runs it, into a folder of its own."""
    output = tmp_path_factory.mktemp("demo") / "report"
    return twinweave("demo", "--output", output), output


def test_demo_prints_results_on_stdout_and_progress_on_stderr(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, output = demo_run
    for progress in ("> reading scada_2014_2015.parquet", "> ingested ", "> R80711: score 2015"):
        assert progress in result.stderr, result.stderr
        assert progress not in result.stdout, result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith(">")]
    assert "2015 held-out scores" in result.stdout
    assert f"report: {output / 'index.html'}" in result.stdout


def test_demo_states_the_window_it_monitors(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, output = demo_run
    assert (
        "from 2015-01-05, the first Monday of 2015; its twins learn the readings before "
        "2014-07-07 and its detectors calibrate on 2014-07-07 to 2015-01-05"
    ) in result.stderr, result.stderr
    assert "> monitored 2015-01-05 to the last reading, 2015-12-31" in result.stderr
    page = (output / "index.html").read_text(encoding="utf-8")
    assert (
        "its twins learn the readings before 2014-07-07, run live from then and calibrate "
        "the detectors up to 2015-01-05; readings are monitored from 2015-01-05"
    ) in page
    window = json.loads((output / "metrics.json").read_text())["monitoring"]["window"]
    assert window["calibrated_from"] == "2014-07-07T00:00:00+00:00"
    assert window["monitored_from"] == "2015-01-05T00:00:00+00:00"


def page_cell(page: str, table_id: str, turbine: str, index: int) -> float:
    """The number in cell ``index`` (after the turbine's name) of a row of a page table."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert table is not None, f"the page has no table {table_id}"
    row = re.search(rf'<tr><th scope="row">{turbine}</th>(.*?)</tr>', table[1], re.S)
    assert row is not None, f"{table_id} has no row {turbine}"
    cell = re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", row[1])[index])
    return float(cell.split()[0].replace(",", ""))


def test_the_demo_page_holds_every_score_the_terminal_printed(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, output = demo_run
    page = (output / "index.html").read_text(encoding="utf-8")
    # The terminal's columns, in order, and where the page shows each: table, cell
    # (readings first) and decimals.
    where = [
        ("metrics-table", 1, 1),  # RMSE [kW]
        ("metrics-table", 2, 1),  # IEC RMSE [kW]
        ("metrics-table", 3, 1),  # CRPS [kW]
        ("metrics-table", 4, 1),  # IEC CRPS [kW]
        ("metrics-table", 5, 3),  # cov90
        ("live-table", 2, 1),  # live RMSE [kW]
        ("live-table", 6, 3),  # live cov90
        ("live-table", 8, 3),  # live min bin cov90
    ]
    rows = [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in result.stdout.splitlines()
        if re.match(r"^│\s*R80\d{3}\s*│", line)
    ]
    assert [row[0] for row in rows] == ["R80711", "R80721", "R80736", "R80790"], result.stdout
    for turbine, *printed in rows:
        assert len(printed) == len(where)
        for value, (table_id, index, decimals) in zip(printed, where, strict=True):
            shown = page_cell(page, table_id, turbine, index)
            # Printed to 3 decimals, shown to ``decimals``: equal but for the rounding.
            assert abs(shown - float(value)) <= 0.5 * 10.0**-decimals + 5e-4, (
                turbine, table_id, index, value, shown,
            )  # fmt: skip


# -- what a new user ran into (walk-through of 2026-11-29) --------------------------------
def one_line(text: str) -> str:
    """Click's error panel as one line: its frame and wrapping removed."""
    return " ".join(text.replace("│", " ").split())


def test_time_options_take_iso_times_with_z_or_an_offset(
    fitted_store: Path, tmp_path: Path
) -> None:
    data = scada_subset(tmp_path / "nov.parquet", ("R80711", "2014-11-01", "2014-12-01"))
    # One hour past midnight in Paris is midnight UTC.
    fitted = twinweave(
        "fit", data, "--store", tmp_path / "S.duckdb", "--train-until", "2014-11-20T01:00:00+01:00"
    )
    assert "twins fitted on readings before 2014-11-20T00:00:00+00:00" in fitted.stdout
    # --start and --end: the same day, however it is written, has the same readings.
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--stop", "--samples", "50")
    naive = twinweave(*base, "--start", "2015-06-01", "--end", "2015-06-02 00:00:00")
    aware = twinweave(*base, "--start", "2015-06-01T00:00:00Z", "--end", "2015-06-02T02:00+02:00")
    count = re.search(r"\((\d+) readings of", naive.stdout)
    assert count is not None and count.group(1) != "0", naive.stdout
    assert f"({count.group(1)} readings of" in aware.stdout
    # --since and --until.
    monitored = twinweave(
        "monitor", "--store", fitted_store, "--since", "2015-06-01T00:00:00Z",
        "--until", "2015-08-01T02:00:00+02:00",
    )  # fmt: skip
    assert "from 2015-06-01 until 2015-08-01" in monitored.stdout
    # A month or a year alone (ISO 8601's reduced precision) is its first instant.
    by_month = twinweave(
        "monitor", "--store", fitted_store, "--since", "2015-06", "--until", "2015-08"
    )
    assert "from 2015-06-01 until 2015-08-01" in by_month.stdout
    assert UTC_TIME.convert("2016", None, None) == datetime(2016, 1, 1, tzinfo=UTC)
    # A time that is not one says what is wrong with it.
    bad = twinweave(
        "fit", data, "--store", tmp_path / "T.duckdb", "--train-until", "2015-13-01", ok=False
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    message = one_line(bad.stderr)
    assert "'--train-until': '2015-13-01' (month must be in 1..12)" in message, message
    assert "2015-01-01T00:00:00Z" in message and "2015-01-01T01:00:00+01:00" in message
    assert not (tmp_path / "T.duckdb").exists()
    with pytest.raises(click.BadParameter, match=r"'2015-13' \(month must be in 1\.\.12\)"):
        UTC_TIME.convert("2015-13", None, None)


def test_monitor_says_there_were_no_alarms_in_the_window_it_watched(fitted_store: Path) -> None:
    quiet = twinweave(
        "monitor", "--store", fitted_store, "--since", "2015-06-01", "--until", "2015-08-01"
    )
    assert (
        "no underperformance alarms for R80711, R80721, R80736, R80790 from 2015-06-01 "
        "until 2015-08-01 (exclusive)" in quiet.stdout
    ), quiet.stdout
    assert "┏" not in quiet.stdout  # no empty table
    # Without --until, to the last reading; R80711 and R80790 raise alarms in the autumn.
    to_the_end = twinweave("monitor", "--store", fitted_store, "--since", "2015-06-01")
    assert (
        "underperformance alarms from 2015-06-01 to the last reading, 2015-12-31 23:50 UTC"
        in to_the_end.stdout
    ), to_the_end.stdout
    assert "R80711" in to_the_end.stdout and "no underperformance alarms" not in to_the_end.stdout


def test_whatif_says_the_unit_of_a_derate_and_that_one_above_rated_changes_nothing(
    fitted_store: Path,
) -> None:
    base = ("whatif", "--store", fitted_store, "--twin", "R80711", "--samples", "50")
    period = ("--start", "2015-06-01", "--end", "2015-06-02")
    capped = twinweave(*base, *period, "--derate", "1500")
    assert "what-if for R80711: derate to 1500 kW (" in capped.stdout, capped.stdout
    above = twinweave(*base, *period, "--derate", "3000")
    assert "derate to 3000 kW" in above.stdout
    assert "warning: --derate 3000 kW is at or above rated power (2050 kW)" in above.stderr
    assert "warning: --derate" not in capped.stderr
    # Its hours at rated are none: they count hours at the nameplate rating, not the cap.
    said = " ".join(capped.stdout.split())
    assert (
        "hours_at_rated counts hours at 98% or more of the rated power, 2009 of 2050 kW; the "
        "branch's power stays at or below 1500 kW, so it has none" in said
    ), said
    assert "hours_at_rated counts" not in above.stdout
    # A cap in MW where kW is meant: taken as given, and questioned.
    in_mw = twinweave(*base, *period, "--derate", "1.5")
    assert "warning: --derate 1.5 kW is under 1 % of rated power (2050 kW)" in in_mw.stderr


def test_quarantine_says_how_many_rows_it_does_not_show(fitted_store: Path, tmp_path: Path) -> None:
    base = ("quarantine", "--store", fitted_store, "--check", "downtime")
    with Store(fitted_store, read_only=True) as opened:
        n_rows = len(opened.quarantine(None, "downtime"))
    assert n_rows > 20
    shown = twinweave(*base)
    assert f"showing 20 of {n_rows:,}; --limit N or --output FILE for all" in shown.stdout
    assert "showing" not in twinweave(*base, "--limit", str(n_rows)).stdout
    written = twinweave(*base, "--output", tmp_path / "q.csv")
    assert f"showing 20 of {n_rows:,}\n" in written.stdout
    assert f"wrote {n_rows:,} rows to" in written.stdout


def test_a_store_that_is_a_directory_or_another_kind_of_file_is_named_as_such(
    tmp_path: Path,
) -> None:
    inputs = tmp_path / "X.csv"
    inputs.write_text("wind_speed\n5.0\n")
    folder = tmp_path / "reports"
    folder.mkdir()
    expected = "expected a twinweave store (a DuckDB file such as S.duckdb)"
    for store, what in (
        (inputs, "a file that is not a DuckDB database (a CSV file, by its name)"),
        (folder, "a directory"),
    ):
        for command in (
            ("predict", "--twin", "R80711", "--input", inputs, "--output", tmp_path / "o.csv"),
            ("quarantine",),
            ("fit", inputs, "--train-until", "2015-01-01"),
        ):
            result = twinweave(*command, "--store", store, ok=False)
            assert_user_error(result, f"store {store}: {what}; {expected}")
            assert "another process" not in result.stderr
            assert DEBUG_HINT not in result.stderr
    assert inputs.read_text() == "wind_speed\n5.0\n"


def test_fit_fleet_gives_a_new_turbine_what_its_fleet_knows(tmp_path: Path) -> None:
    # R80736 has a day of readings before --train-until, the others two months, and
    # R80790 none: a turbine commissioned on the first of January.
    data = scada_subset(
        tmp_path / "fleet.parquet",
        ("R80711", "2014-11-01", "2015-02-01"),
        ("R80721", "2014-11-01", "2015-02-01"),
        ("R80736", "2014-12-31", "2015-02-01"),
        ("R80790", "2015-01-01", "2015-02-01"),
    )
    fit = ("fit", data, "--train-until", "2015-01-01")
    alone_fit = twinweave(*fit, "--store", tmp_path / "alone.duckdb")
    assert "saved 3 of 4 twins" in alone_fit.stdout
    assert "asset 'R80790': not fitted: no readings before --train-until" in alone_fit.stderr
    born = twinweave(*fit, "--store", tmp_path / "fleet.duckdb", "--fleet")
    assert "each starting from the other turbines' fleet model" in born.stdout
    said = " ".join(born.stdout.split())
    assert "saved 4 of 4 twins" in said, said
    assert "born into the fleet with no readings before --train-until" in said, said
    assert "not fitted" not in born.stderr, born.stderr
    # Each fleet fit's progress says whose fleet it is: the newcomer's is everyone's.
    assert "R80736's fleet: R80711, R80721" in born.stderr, born.stderr
    assert "R80790's fleet: R80711, R80721, R80736" in born.stderr, born.stderr
    # January, predicted by each store's R80736 twin.
    january = pd.read_parquet(data)
    january = january[
        (january["Wind_turbine_name"] == "R80736") & (january["Date_time"] >= "2015-01-01")
    ]
    inputs = tmp_path / "january.csv"
    frame = pd.DataFrame({"wind_speed": january["Ws_avg"], "power": january["P_avg"]})
    frame = frame[(frame["wind_speed"] > 4.0) & (frame["power"] > 0.0)].dropna()
    frame[["wind_speed"]].to_csv(inputs, index=False)
    errors = {}
    for name in ("alone", "fleet"):
        output = tmp_path / f"{name}.csv"
        result = twinweave(
            "predict", "--store", tmp_path / f"{name}.duckdb", "--twin", "R80736",
            "--input", inputs, "--output", output,
        )  # fmt: skip
        predicted = pd.read_csv(output)["mean"].to_numpy()
        errors[name] = float(np.sqrt(np.mean((predicted - frame["power"].to_numpy()) ** 2)))
        file_id = re.search(r"provenance (file:[0-9a-f]+)", result.stdout)
        assert file_id is not None
        chain = twinweave("provenance", file_id.group(1), "--store", tmp_path / f"{name}.duckdb")
        # Born into its fleet, its numbers come from the other turbines' readings too.
        assert ("fleet_fit:" in chain.stdout) == (name == "fleet"), chain.stdout
    assert errors["fleet"] < 0.7 * errors["alone"], errors
    # The newcomer predicts its January from the fleet alone, as a new turbine of it.
    newcomer = pd.read_parquet(data)
    newcomer = newcomer[newcomer["Wind_turbine_name"] == "R80790"]
    frame = pd.DataFrame({"wind_speed": newcomer["Ws_avg"], "power": newcomer["P_avg"]})
    frame = frame[(frame["wind_speed"] > 4.0) & (frame["power"] > 0.0)].dropna()
    frame[["wind_speed"]].to_csv(inputs, index=False)
    output = tmp_path / "newcomer.csv"
    said = twinweave(
        "predict", "--store", tmp_path / "fleet.duckdb", "--twin", "R80790", "--input", inputs,
        "--output", output,
    ).stderr  # fmt: skip
    # Not an extrapolation: it rests on the population its fleet's readings shaped.
    said = " ".join(said.split())
    assert "wind speeds the twin has no readings of its own near" in said, said
    assert "it predicts from its fleet's population, as a new turbine of the fleet" in said
    assert "extrapolates" not in said and "cut-out" not in said, said
    predicted = pd.read_csv(output)
    rmse = float(np.sqrt(np.mean((predicted["mean"] - frame["power"].to_numpy()) ** 2)))
    assert rmse < 1.5 * errors["fleet"], (rmse, errors)
    covered = (predicted["q05"] <= frame["power"].to_numpy()) & (
        frame["power"].to_numpy() <= predicted["q95"]
    )
    assert covered.mean() > 0.7, covered.mean()
    # A report scores the others and says why the newcomer is not scored.
    report = twinweave(
        "report", "--store", tmp_path / "fleet.duckdb", "--since", "2015-01-01",
        "--output", tmp_path / "report",
    )  # fmt: skip
    said = " ".join(report.stderr.split())
    assert "twin R80790: no readings before --since 2015-01-01T00:00:00+00:00 to fit" in said
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert sorted(metrics["turbines"]) == ["R80711", "R80721", "R80736"], metrics.keys()
    # One turbine has no fleet.
    alone = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-12-01", "2015-01-10"))
    twinweave("ingest", alone, "--store", tmp_path / "one.duckdb")  # its bar on stderr first
    refused = twinweave(
        "fit", alone, "--store", tmp_path / "one.duckdb", "--train-until", "2015-01-01",
        "--fleet", ok=False,
    )  # fmt: skip
    assert_user_error(
        refused,
        "--fleet",
        "needs at least 2 other turbines",
        "found 1 in all (R80711)",
        "the fleet is the turbines of DATA, which may be several files",
    )


def test_a_store_it_cannot_write_is_refused_before_any_work(tmp_path: Path) -> None:
    data = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-12-30", "2015-01-01"))
    assert_user_error(
        twinweave("ingest", data, "--store", tmp_path / "nowhere" / "s.duckdb", ok=False),
        "nowhere/s.duckdb: no such folder",
    )
    folder = tmp_path / "shared"
    folder.mkdir()
    twinweave("ingest", data, "--store", folder / "s.duckdb")
    folder.chmod(0o555)
    try:
        # DuckDB opened it and failed at the first commit, with a traceback: its log
        # goes beside the store.
        refused = twinweave(
            "ingest", data, "--store", folder / "s.duckdb", ok=False, as_a_user=True
        )
        assert_user_error(refused, "its folder", "is not writable", "s.duckdb.wal")
        listed = twinweave("quarantine", "--store", folder / "s.duckdb", as_a_user=True)
        assert listed.returncode == 0
        folder.chmod(0o755)
        (folder / "s.duckdb").chmod(0o444)
        refused = twinweave(
            "ingest", data, "--store", folder / "s.duckdb", ok=False, as_a_user=True
        )
        assert_user_error(refused, "the store is not writable, and this command writes to it")
        (folder / "s.duckdb").chmod(0o644)
        # A link to the store: DuckDB writes its log beside the file linked to.
        links = tmp_path / "links"
        links.mkdir()
        (links / "link.duckdb").symlink_to(folder / "s.duckdb")
        links.chmod(0o555)
        twinweave("ingest", data, "--store", links / "link.duckdb", as_a_user=True)
        links.chmod(0o755)
        folder.chmod(0o555)
        refused = twinweave(
            "ingest", data, "--store", links / "link.duckdb", ok=False, as_a_user=True
        )
        assert_user_error(refused, f"its folder {folder} is not writable", "s.duckdb.wal")
    finally:
        folder.chmod(0o755)


def test_a_fleet_of_two_turbines_is_refused_before_its_file_is_stored(tmp_path: Path) -> None:
    # The file was ingested, and only then was the fleet found too small: a command
    # that refused to run had changed the store.
    data = scada_subset(
        tmp_path / "two.parquet",
        ("R80711", "2014-12-20", "2015-01-03"),
        ("R80721", "2014-12-20", "2015-01-03"),
    )
    store = tmp_path / "s.duckdb"
    refused = twinweave(
        "fit", data, "--store", store, "--train-until", "2015-01-01", "--fleet", ok=False
    )  # fmt: skip
    assert_user_error(
        refused,
        "--fleet: a twin born into its fleet needs at least 2 other turbines",
        "found 2 in all (R80711, R80721)",
        "the fleet is the turbines of DATA, which may be several files",
    )
    assert not store.exists() or Store(store, read_only=True).count_observations(raw=True) == 0


def test_a_fleet_of_several_rated_powers_is_refused_before_its_files_are_stored(
    tmp_path: Path,
) -> None:
    # A rated power mistyped in --assets was fixed in the store's cleaning of the file
    # before --fleet refused it, and the store then refused the table corrected.
    data = scada_subset(
        tmp_path / "two.parquet",
        ("R80711", "2014-12-20", "2015-01-03"),
        ("R80721", "2014-12-20", "2015-01-03"),
    )
    table = tmp_path / "assets.csv"
    table.write_text("asset_id,rated_power\nR80711,2050\nR80721,3000\n")
    store = tmp_path / "s.duckdb"
    fit = ("fit", data, "--store", store, "--train-until", "2015-01-01")
    refused = twinweave(*fit, "--fleet", "--assets", table, ok=False)
    assert_user_error(refused, "--fleet: expected turbines of one rated power", "3000 kW: R80721")
    table.write_text("asset_id,rated_power\nR80711,2050\nR80721,2050\n")
    assert "saved 2 of 2 twins" in twinweave(*fit, "--assets", table).stdout
    # A file per turbine: the second file's turbine shows the first's rated power wrong
    # before the first is stored.
    files = [
        scada_subset(tmp_path / f"{turbine}.parquet", (turbine, "2014-12-20", "2015-01-03"))
        for turbine in ("R80711", "R80721")
    ]
    table.write_text("asset_id,rated_power\nR80711,2500\nR80721,2050\n")
    store = tmp_path / "files.duckdb"
    per_file = ("fit", *files, "--store", store, "--train-until", "2015-01-01")
    refused = twinweave(*per_file, "--fleet", "--assets", table, ok=False)
    assert_user_error(refused, "--fleet: expected turbines of one rated power", "2500 kW: R80711")
    table.write_text("asset_id,rated_power\nR80711,2050\nR80721,2050\n")
    assert "saved 2 of 2 twins" in twinweave(*per_file, "--assets", table).stdout


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
    assert_user_error(twinweave(*twice, ok=False), "named twice, with two different mappings")


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
    printed = re.search(r"quarantine by check: (\{.*\})", ingested)
    assert printed is not None and "frozen_sensor" not in printed.group(1)


def test_fit_takes_a_file_per_turbine(two_turbine_store: Path, tmp_path: Path) -> None:
    # The two turbines of two_turbine_store, a file each: the same twins, to the bit.
    files = [
        scada_subset(tmp_path / f"{turbine}.parquet", (turbine, "2014-11-01", "2015-02-01"))
        for turbine in ("R80711", "R80721")
    ]
    store = tmp_path / "files.duckdb"
    result = twinweave("fit", *files, files[0], "--store", store, "--train-until", "2015-01-01")
    assert "saved 2 of 2 twins" in result.stdout, result.stdout
    inputs = tmp_path / "x.csv"
    pd.DataFrame({"wind_speed": [4.0, 8.0, 12.0]}).to_csv(inputs, index=False)
    for turbine in ("R80711", "R80721"):
        means = [
            twinweave(
                "predict", "--store", where, "--twin", turbine, "--input", inputs,
                "--output", "-",
            ).stdout
            for where in (store, two_turbine_store)
        ]  # fmt: skip
        assert means[0] == means[1]
    with Store(store, read_only=True) as db:
        assert len(db.sources()) == 2  # a file named twice is read once
    # A copy under another name is the same file, and the name it was read as is said.
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(files[0].read_bytes())
    again = twinweave("ingest", copy, "--store", store)
    said = " ".join(again.stdout.split())
    assert f"read from {files[0].resolve()}); not ingested again" in said, said
    # What the user gives replaces the shipped table's values for its turbines.
    given = tmp_path / "given.duckdb"
    twinweave("ingest", files[0], "--store", given, "--rated-power", "3000")
    with Store(given, read_only=True) as db:
        (sha256,) = db.sources()["sha256"]
        assert db.source_settings(sha256)["rated_power_kw"] == {"R80711": 3000.0}


@pytest.mark.parametrize(
    "error",
    [
        duckdb.InterruptException("INTERRUPT Error: Interrupted!"),
        RuntimeError("Query interrupted"),
        duckdb.TransactionException("Current transaction is aborted (please ROLLBACK)"),
    ],
)
def test_ctrl_c_while_duckdb_runs_exits_130_with_one_line(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # DuckDB turns SIGINT during a query into an error of its own (a SIGINT sent to a
    # real ingest gave these three, by timing); a traceback and exit 1 said "crash".
    def interrupted() -> None:
        raise error

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 130
    said = " ".join(capsys.readouterr().err.split())
    assert said.startswith("error: interrupted: the store is as it was before"), said
    # Another error of DuckDB's is not taken for an interrupt.
    monkeypatch.setattr(cli, "app", lambda: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):
        cli.main()


def test_fit_skips_a_turbine_whose_readings_cannot_be_fitted_and_saves_the_others(
    tmp_path: Path,
) -> None:
    # A turbine whose only training readings are two idle ones: its fit failed with
    # "posterior precision: expected positive definite", naming no turbine, and the
    # other turbine's twin was not saved either.
    frame = pd.read_parquet(scada_path())
    frame = frame[
        (frame["Wind_turbine_name"] == "R80711")
        & (frame["Date_time"] >= "2014-11-01")
        & (frame["Date_time"] < "2015-01-10")
    ]
    idle = frame.iloc[:2].assign(Wind_turbine_name="R80790", P_avg=0.0, Ws_avg=[1.93, 2.35])
    data = tmp_path / "idle.parquet"
    pd.concat([frame, idle]).to_parquet(data, index=False)
    store = tmp_path / "idle.duckdb"
    result = twinweave("fit", data, "--store", store, "--train-until", "2015-01-01")
    assert re.search(
        r"warning: asset 'R80790': not fitted: .*\(2 readings before 2015-01-01T00:00:00\+00:00\)",
        result.stderr,
    ), result.stderr
    assert f"saved 1 of 2 twins to {store}: R80711; not fitted" in result.stdout
    with Store(store, read_only=True) as db:
        assert db.twin_ids() == ["R80711"]


def test_fit_fleet_leaves_out_a_turbine_whose_readings_cannot_be_fitted(tmp_path: Path) -> None:
    # With --fleet the same turbine stopped the whole fit ("twin 2: posterior precision
    # is not positive definite (potrf 72)"): a twin's first fleet round is its fit alone.
    frame = pd.read_parquet(scada_path())
    frame = frame[
        frame["Wind_turbine_name"].isin(["R80711", "R80721", "R80736"])
        & (frame["Date_time"] >= "2014-11-01")
        & (frame["Date_time"] < "2015-01-03")
    ]
    # The two idle readings of the test above (they pass the checks).
    first = frame[frame["Wind_turbine_name"] == "R80711"].iloc[:2]
    idle = first.assign(Wind_turbine_name="R80790", P_avg=0.0, Ws_avg=[1.93, 2.35])
    data = tmp_path / "idle.parquet"
    pd.concat([frame, idle]).to_parquet(data, index=False)
    store = tmp_path / "idle.duckdb"
    result = twinweave("fit", data, "--store", store, "--train-until", "2015-01-01", "--fleet")
    assert re.search(
        r"warning: asset 'R80790': not fitted: .*\(2 readings before 2015-01-01T00:00:00\+00:00\)",
        result.stderr,
    ), result.stderr
    assert "R80721's fleet: R80711, R80736" in result.stderr
    assert f"saved 3 of 4 twins to {store}: R80711, R80721, R80736; not fitted" in result.stdout, (
        result.stdout
    )
    with Store(store, read_only=True) as db:
        assert db.twin_ids() == ["R80711", "R80721", "R80736"]


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


def test_fit_on_a_store_ingested_from_python_says_the_rated_power_is_unchecked(
    tmp_path: Path,
) -> None:
    # Store.ingest from Python keeps no settings: a --rated-power of 3000 kW for
    # readings cleaned at 2050 kW was taken without a word (a CLI ingest refuses it).
    data = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-11-01", "2015-01-10"))
    store = tmp_path / "python.duckdb"
    info, raw = read_source(data, LA_HAUTE_BORNE)
    observations, quarantine = clean(raw, normal_operation_checks(rated_power=2050.0))
    with Store(store) as db:
        db.ingest(info, raw, observations, quarantine)
    result = twinweave(
        "fit", data, "--store", store, "--rated-power", "3000", "--train-until", "2015-01-01"
    )
    assert (
        f"warning: {data}: in the store without the settings it was read and cleaned with "
        "(ingested from Python, or by an older twinweave), so whether these rated powers "
        "(R80711 3000 kW) are the ones that cleaned its readings cannot be checked"
    ) in " ".join(result.stderr.split()), result.stderr


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


# -- walk-through of the reports (2026-11-30) ---------------------------------------------
def test_report_after_the_training_end_scores_the_baseline_and_live_twin_fairly(
    fitted_store: Path, tmp_path: Path
) -> None:
    from twinweave.domains.wind import (
        TurbineSpec,
        evaluation_scores,
        fit_baseline,
        live_predictions,
        model_inputs,
    )

    # Twins fitted on 2014, scored from July 2015.
    output = tmp_path / "r"
    twinweave("report", "--store", fitted_store, "--since", "2015-07-01", "--output", output)
    metrics = json.loads((output / "metrics.json").read_text())
    page = (output / "index.html").read_text()
    end, since = pd.Timestamp("2015-01-01", tz="UTC"), pd.Timestamp("2015-07-01", tz="UTC")
    with Store(fitted_store, read_only=True) as db:
        twin = db.load_twin("R80711")
        spec = TurbineSpec.from_twin(twin)
        training = db.observations("R80711", end=end)
        scored = db.observations("R80711", start=since)
        # The baseline learns what the twin learned (2014), not the six months after.
        baseline = fit_baseline(spec, training).predict(model_inputs(scored, spec.rated_power))
        # The live twin has run since its training: it assimilated January to June.
        running = twin.branch()
        running.update(model_inputs(db.observations("R80711", start=end, end=since), 2050.0))
        live = live_predictions(running, scored, spec.rated_power)
    scores = metrics["turbines"]["R80711"]
    expected_baseline = evaluation_scores(baseline, scored, spec.rated_power)["rmse"]
    assert scores["baseline_rmse_kw"] == pytest.approx(expected_baseline, rel=1e-9)
    expected_live = evaluation_scores(live, scored, spec.rated_power)["rmse"]
    assert scores["live_rmse_kw"] == pytest.approx(expected_live, rel=1e-9)
    # Both periods, on the page and in metrics.json.
    periods = metrics["periods"]["R80711"]
    assert periods["trained_until"] == "2015-01-01T00:00:00+00:00"
    assert periods["scored_from"] == "2015-07-01T00:00:00+00:00"
    assert periods["n_trained"] == len(training)
    assert (
        "Twins fitted on the readings before 2015-01-01 (twinweave fit --train-until); each "
        "IEC baseline on the same readings as its twin. The live twins assimilate the "
        "readings from 2015-01-01 to 2015-07-01 before they are scored"
    ) in page
    assert "The live twin first assimilates the readings from 2015-01-01 to 2015-07-01" in page


def test_report_says_when_a_turbine_has_too_few_readings_to_judge(tmp_path: Path) -> None:
    data = scada_subset(
        tmp_path / "few.parquet",
        ("R80711", "2014-11-01", "2015-02-01"),
        ("R80790", "2014-11-01", "2015-01-03"),
    )
    store = tmp_path / "few.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2015-01-01")
    output = tmp_path / "r"
    result = twinweave("report", "--store", store, "--since", "2015-01-01", "--output", output)
    warning = re.search(
        r"warning: twin R80790: scored on (\d+) readings, from 2015-01-01 to 2015-01-02 "
        r"23:50 UTC: too few \(under 400\) to judge its 90 % coverage",
        one_line(result.stderr),
    )
    assert warning is not None, result.stderr
    assert "twin R80711: scored on" not in result.stderr
    metrics = json.loads((output / "metrics.json").read_text())
    n = int(warning.group(1))
    assert metrics["periods"]["R80790"]["n_scored"] == n < 400
    assert metrics["periods"]["R80790"]["too_few_to_judge_coverage"] is True
    page = (output / "index.html").read_text()
    assert "<title>twinweave report: 2 twins scored from 2015-01-01</title>" in page
    row = re.search(r'<table id="metrics-table">.*?R80790</th>(.*?)</tr>', page, re.S)
    assert row is not None and "too few" in row[1]
    assert 'verdict">fail' not in row[1] and 'verdict">pass' not in row[1]
    assert f"Scored on {n} readings, from 2015-01-01 00:00 to 2015-01-02 23:50 UTC" in page


def test_monitor_says_which_turbines_had_no_readings_to_watch(tmp_path: Path) -> None:
    data = scada_subset(
        tmp_path / "gap.parquet",
        ("R80711", "2014-06-01", "2015-02-01"),
        ("R80711", "2015-02-15", "2015-03-01"),
        ("R80721", "2014-06-01", "2015-03-01"),
    )
    store = tmp_path / "gap.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2014-08-01")
    result = twinweave(
        "monitor", "--store", store, "--since", "2015-02-02", "--until", "2015-02-14",
        "--calibration-days", "150",
    )  # fmt: skip
    assert (
        "R80711: no readings to watch from 2015-02-02 until 2015-02-14 (exclusive)" in result.stdout
    ), result.stdout
    assert "no underperformance alarms for R80711" not in result.stdout
    assert "no readings to watch" not in result.stdout.replace("R80711: no readings", "")


def test_the_demo_page_says_what_the_whatif_and_the_curves_rest_on(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, output = demo_run
    page = (output / "index.html").read_text(encoding="utf-8")
    section = page[page.index('<section id="whatif">') :]
    # What `twinweave whatif` warns of for February 2015 at R80711.
    assert "The readings cover 634 h of the 672 h from the first to the last (94%)" in section
    assert re.search(
        r"19 of \d+ inputs are at wind speeds the twin has no readings near "
        r"\(15\.9\d*-17\.\d+ m/s\)",
        section,
    ), section[:2000]
    # The power curves beyond the 2014 readings' wind speeds are marked.
    assert page.count("wind speeds the twin has no training readings near") == 4
    periods = json.loads((output / "metrics.json").read_text())["periods"]
    assert {p["trained_until"] for p in periods.values()} == {"2015-01-01T00:00:00+00:00"}
    assert {p["scored_from"] for p in periods.values()} == {"2015-01-01T00:00:00+00:00"}


def test_report_of_a_twin_born_into_its_fleet_states_what_its_baseline_saw(
    tmp_path: Path,
) -> None:
    """A turbine whose readings all come after --train-until is born into its fleet
    (fit --fleet): its training end is its birth, its live twin assimilates the readings
    from then to --since, and its IEC baseline, which needs readings, is fitted on those
    and says so (it was fitted on them silently, and the live twin skipped them)."""
    data = scada_subset(
        tmp_path / "late.parquet",
        ("R80711", "2014-11-01", "2015-04-01"),
        ("R80721", "2014-11-01", "2015-04-01"),
        ("R80736", "2014-11-01", "2015-04-01"),
        ("R80790", "2015-01-15", "2015-04-01"),
    )
    store = tmp_path / "late.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2015-01-01", "--fleet")
    output = tmp_path / "r"
    result = twinweave(
        "report", "--store", store, "--since", "2015-03-01", "--output", output,
        "--calibration-days", "60",
    )  # fmt: skip
    # Its monitor has no readings to learn from before 2014-12-31; the others are watched.
    said = " ".join(result.stderr.split())
    assert "turbine R80790: no readings before the calibration period" in said, said
    assert "Monitoring did not run" not in said
    periods = json.loads((output / "metrics.json").read_text())["periods"]["R80790"]
    with Store(store, read_only=True) as db:
        between = db.count_observations("R80790", start=pd.Timestamp("2015-01-01", tz="UTC"),
                                        end=pd.Timestamp("2015-03-01", tz="UTC"))  # fmt: skip
    assert periods["trained_from"] is None and periods["n_trained"] == 0
    assert periods["n_baseline"] == between > 0
    assert periods["live_assimilates_from"] == "2015-01-01T00:00:00+00:00"
    page = " ".join((output / "index.html").read_text(encoding="utf-8").split())
    assert "The twin was born into its fleet with no readings of its own before 2015-01-01" in page
    assert "Not monitored for underperformance: R80790 (no readings before the monitor cali" in page
    # Older readings of the born turbine ingested later: it still had none of its own.
    older = scada_subset(tmp_path / "older.parquet", ("R80790", "2014-12-01", "2015-01-01"))
    twinweave("ingest", older, "--store", store)
    again = twinweave(
        "report", "--store", store, "--since", "2015-03-01", "--output", tmp_path / "r2",
        "--calibration-days", "60",
    )  # fmt: skip
    periods = json.loads((tmp_path / "r2" / "metrics.json").read_text())["periods"]["R80790"]
    assert periods["trained_from"] is None and periods["n_trained"] == 0
    assert periods["n_baseline"] == between
    said = " ".join(again.stderr.split())
    assert "twin R80790: " in said and "before 2015-01-01 came from files ingested after" in said


def test_report_fits_the_baseline_on_what_the_twin_was_fitted_on_after_a_backfill(
    tmp_path: Path,
) -> None:
    """Readings of a twin's training period ingested after its fit (older ones, or ones
    filling a gap) were not the twin's: its baseline and the page's count of its
    training leave them out (they used to take them in silently), and the page and a
    warning say so."""
    from twinweave.domains.wind import TurbineSpec, evaluation_scores, fit_baseline, model_inputs

    fitted = scada_subset(
        tmp_path / "fitted.parquet",
        ("R80711", "2014-11-01", "2014-12-01"),
        ("R80711", "2014-12-10", "2015-02-01"),
        ("R80721", "2014-11-01", "2015-02-01"),
    )
    store = tmp_path / "S.duckdb"
    twinweave("fit", fitted, "--store", store, "--train-until", "2015-01-01")
    with Store(store, read_only=True) as db:
        twin = db.load_twin("R80711")
        training = db.observations("R80711", end=pd.Timestamp("2015-01-01", tz="UTC"))
        scored = db.observations("R80711", start=pd.Timestamp("2015-01-01", tz="UTC"))
    spec = TurbineSpec.from_twin(twin)
    baseline = fit_baseline(spec, training).predict(model_inputs(scored, spec.rated_power))
    expected = evaluation_scores(baseline, scored, spec.rated_power)["rmse"]
    report = ("report", "--store", store, "--since", "2015-01-01", "--output")
    older = scada_subset(tmp_path / "older.parquet", ("R80711", "2014-09-01", "2014-11-01"))
    gap = scada_subset(tmp_path / "gap.parquet", ("R80711", "2014-12-01", "2014-12-10"))
    for backfill, output in ((older, tmp_path / "r"), (gap, tmp_path / "r2")):
        twinweave("ingest", backfill, "--store", store)
        said = " ".join(twinweave(*report, output).stderr.split())
        metrics = json.loads((output / "metrics.json").read_text())
        periods = metrics["periods"]["R80711"]
        assert periods["n_trained"] == len(training)
        assert periods["trained_from"] == training["time"].min().isoformat()
        scores = metrics["turbines"]["R80711"]
        assert scores["baseline_rmse_kw"] == pytest.approx(expected, rel=1e-9)
        with Store(store, read_only=True) as db:
            later = db.count_observations("R80711", end=pd.Timestamp("2015-01-01", tz="UTC"))
        warning = (
            f"twin R80711: {later - len(training):,} readings before 2015-01-01 came from "
            "files ingested after its fit"
        )
        assert f"warning: {warning}" in said, said
        page = " ".join((output / "index.html").read_text(encoding="utf-8").split())
        assert "T" + warning[1:] in page
        assert "R80721" not in said


def test_a_fit_notes_what_it_was_fitted_on_and_the_report_reads_it_back() -> None:
    from twinweave.demo import TrainingRecord

    until = pd.Timestamp("2015-01-01", tz="UTC")
    for record in (TrainingRecord(until), TrainingRecord(until, born=True)):
        assert TrainingRecord.from_note(record.note()) == record
    # A time without a zone (a fit from Python) is UTC, as the store takes it; one with
    # an offset is converted.
    assert TrainingRecord.from_note("trained until 2015-01-01T00:00:00") == TrainingRecord(until)
    paris = TrainingRecord.from_note("trained until 2015-01-01T01:00:00+01:00")
    assert paris is not None and paris.until == until and str(paris.until.tz) == "UTC"
    for note in (
        "trained until 2015-01-01T00:00:00Z",
        # The form of the notes written for a while on 2026-11-30.
        "trained until 2015-01-01T00:00:00+00:00 on 7051 readings from 2014-11-01T00:00:00+00:00",
    ):
        assert TrainingRecord.from_note(note) == TrainingRecord(until)
    # Notes written otherwise are not a record, rather than a wrong one.
    for note in ("saved by hand", "trained until 2015-01-01, then tuned", "trained until soon"):
        assert TrainingRecord.from_note(note) is None


def test_report_warns_of_a_twin_whose_version_does_not_say_what_it_was_fitted_on(
    tmp_path: Path,
) -> None:
    data = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-11-01", "2015-02-01"))
    store = tmp_path / "S.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2015-01-01")
    with Store(store) as db:
        db.save_twin(db.load_twin("R80711"), note="tuned by hand")
    result = twinweave("report", "--store", store, "--since", "2015-01-01", "--output",
                       tmp_path / "r")  # fmt: skip
    said = " ".join(result.stderr.split())
    assert (
        "warning: twin R80711: its version does not say what it was fitted on (saved other "
        "than by twinweave fit)"
    ) in said, said
    assert (
        json.loads((tmp_path / "r" / "metrics.json").read_text())["periods"]["R80711"].get(
            "trained_until"
        )
        is None
    )
