"""twinweave report: held-out scores against the baseline, fairly, and what it leaves out."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from cli_support import assert_user_error, one_line, report_of, scada_subset, twinweave

from twinweave.data import Store

pytestmark = pytest.mark.slow


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


def test_report_refuses_a_folder_it_cannot_write_before_scoring(fitted_store: Path) -> None:
    # As root, os.access said /proc was writable: the refusal came after minutes of
    # scoring, as a bare errno, with the store already changed.
    before = hashlib.sha256(fitted_store.read_bytes()).hexdigest()
    output = Path("/proc/twinweave-report")
    result = twinweave(
        "report", "--store", fitted_store, "--since", "2015-01-01", "--output", output, ok=False
    )
    assert_user_error(result, f"--output {output}: cannot create or write the folder")
    assert "score" not in result.stderr  # no progress: refused before scoring
    assert hashlib.sha256(fitted_store.read_bytes()).hexdigest() == before


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
    # Scored from before its birth, it has no readings to fit its baseline on: left out,
    # and named on the page and in metrics.json (only a warning said so).
    early = tmp_path / "r0"
    twinweave(
        "report", "--store", store, "--since", "2015-01-10", "--output", early,
        "--calibration-days", "30",
    )  # fmt: skip
    document = json.loads((early / "metrics.json").read_text())
    assert "R80790" not in document["turbines"]
    assert document["not_scored"]["R80790"].startswith("no readings before --since 2015-01-10")
    page = " ".join((early / "index.html").read_text(encoding="utf-8").split())
    assert "Not scored: R80790, no readings before --since 2015-01-10" in page
    assert document["not_scored"].keys() == {"R80790"}
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
