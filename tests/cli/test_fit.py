"""twinweave fit: a twin per turbine, a file per turbine, fleets, and the turbines it leaves out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import (
    assert_user_error,
    command_environment,
    entry_point,
    other_layout,
    scada_subset,
    twinweave,
)

from twinweave import cli
from twinweave.data import Store, clean, read_source
from twinweave.domains.wind import LA_HAUTE_BORNE, normal_operation_checks, scada_path

pytestmark = pytest.mark.slow


def test_fit_builds_one_twin_per_turbine_and_refuses_nothing_twice(
    fitted_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "S.duckdb"
    shutil.copy(fitted_store, store)  # the refit saves new versions: not in the shared store
    again = twinweave("fit", scada_path(), "--store", store, "--train-until", "2015-01-01")
    assert "already in the store" in again.stdout


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


def test_fit_piped_into_head_still_saves_its_twins(tmp_path: Path) -> None:
    # The reader goes after two lines; the fit goes on and saves every twin, and says
    # on stderr that --train-until left nothing to score on.
    store = tmp_path / "piped.duckdb"
    executable = entry_point()
    command = [executable, "fit", str(scada_path()), "--store", str(store)]
    process = subprocess.Popen(
        [*command, "--train-until", "2030-01-01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=command_environment(),
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


def test_fit_says_what_the_default_memory_is_for_hourly_readings(tmp_path: Path) -> None:
    # The default memory counts readings: 13,140 is about three months of 10-minute
    # readings, and was taken silently as 18 months of hourly ones.
    ten_minute = scada_subset(tmp_path / "ten.parquet", ("R80711", "2014-09-01", "2015-01-01"))
    frame = pd.read_parquet(ten_minute)
    on_the_hour = pd.to_datetime(frame["Date_time"], utc=True).dt.minute == 0
    hourly = tmp_path / "hourly.parquet"
    frame[on_the_hour.to_numpy()].to_parquet(hourly, index=False)
    fit = ("fit", "--train-until", "2015-01-01")
    said = " ".join(twinweave(*fit, hourly, "--store", tmp_path / "h.duckdb").stderr.split())
    assert (
        "warning: asset 'R80711': the readings step by 60 minutes, so the default --memory "
        "13140 (about 3 months of 10-minute readings) remembers about 18.0 months of them; "
        "--memory 2190 would remember about 3 months"
    ) in said, said
    # Said once a memory is given, or for 10-minute readings: nothing.
    given = twinweave(*fit, hourly, "--store", tmp_path / "g.duckdb", "--memory", "2190")
    assert "--memory" not in given.stderr, given.stderr
    ten = twinweave(*fit, ten_minute, "--store", tmp_path / "t.duckdb")
    assert "--memory" not in ten.stderr, ten.stderr
    assert "(--memory 13140)" in " ".join(ten.stdout.split())


def test_a_newcomers_memory_is_judged_by_the_readings_it_will_learn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # fit --fleet: a turbine born into its fleet has no readings before --train-until,
    # and its hourly readings after it went unremarked (the whole fleet fit takes a
    # minute, so the check is called on the store that fit would have made).
    frame = pd.read_parquet(
        scada_subset(tmp_path / "new.parquet", ("R80790", "2015-01-01", "2015-02-01"))
    )
    on_the_hour = pd.to_datetime(frame["Date_time"], utc=True).dt.minute == 0
    hourly = tmp_path / "hourly.parquet"
    frame[on_the_hour.to_numpy()].to_parquet(hourly, index=False)
    store = tmp_path / "s.duckdb"
    twinweave("ingest", hourly, "--store", store)
    capsys.readouterr()
    with Store(store, read_only=True) as db:
        newcomer = dict.fromkeys(["R80790"])  # only the twins' names are read
        cli._warn_default_memory(db, newcomer, pd.Timestamp("2015-01-01", tz="UTC"))  # type: ignore[arg-type]
    said = " ".join(capsys.readouterr().err.split())
    assert "asset 'R80790': the readings step by 60 minutes" in said, said
