"""twinweave monitor: alarms, the window it watches, and farms too small to compare."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from cli_support import assert_user_error, one_line, report_of, scada_subset, twinweave

from twinweave import cli
from twinweave.cli import UTC_TIME
from twinweave.data import Store
from twinweave.provenance import sha256_file

pytestmark = pytest.mark.slow


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


def test_monitor_names_its_options_when_the_period_is_wrong(fitted_store: Path) -> None:
    base = ("monitor", "--store", fitted_store)
    late = twinweave(*base, "--since", "2030-01-01", ok=False)
    assert_user_error(late, "--since 2030-01-01", "after the last stored reading")
    early = twinweave(*base, "--since", "2014-03-01", ok=False)
    assert_user_error(early, "--calibration-days 180", "start at")
    backwards = twinweave(*base, "--since", "2015-06-01", "--until", "2015-05-01", ok=False)
    assert_user_error(backwards, "--until", "after --since")


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


def test_monitor_of_a_store_without_turbines_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    result = twinweave("monitor", "--store", empty, "--since", "2015-01-01", ok=False)
    assert result.returncode == 2
    assert "error: the store holds no turbine to monitor" in result.stderr, result.stderr


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


def test_a_turbine_with_too_few_days_to_calibrate_on_is_left_out_not_fatal(
    tmp_path: Path,
) -> None:
    # Twelve days of R80736 in the calibration period stopped the whole farm's monitor
    # (review 2026-12-01).
    data = scada_subset(
        tmp_path / "sparse.parquet",
        ("R80711", "2014-08-01", "2015-01-15"),
        ("R80721", "2014-08-01", "2015-01-15"),
        ("R80736", "2014-08-01", "2014-10-01"),
        ("R80736", "2014-12-01", "2014-12-13"),
    )
    store = tmp_path / "sparse.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2014-10-01")
    result = twinweave(
        "monitor", "--store", store, "--since", "2015-01-01", "--calibration-days", "60"
    )  # fmt: skip
    assert (
        "warning: turbine R80736 (12 days): fewer than 30 days with 12 readings or more in the "
        "calibration period (2014-11-02T00:00:00+00:00 to 2015-01-01T00:00:00+00:00) to "
        "calibrate the detector on; not monitored" in one_line(result.stderr)
    ), result.stderr
    assert "R80711" in result.stdout and "R80736" not in result.stdout, result.stdout
