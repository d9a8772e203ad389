"""twinweave demo, as make demo runs it: results on stdout, progress on stderr, and the page."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from cli_support import page_cell, twinweave

pytestmark = pytest.mark.slow


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


def test_the_demo_records_what_it_did_down_to_the_files_it_wrote(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    # Its store held the fits and predictions but no monitor, what-if or report, and the
    # scores' predictions did not say what they were made on (review 2026-12-01).
    _, output = demo_run
    store = output / "twinweave.duckdb"
    listing = twinweave("provenance", "--store", store, "--limit", "1000").stdout
    report_id = re.search(r"(report:[0-9a-f]{12})", listing)
    assert report_id is not None, listing
    chain = twinweave("provenance", report_id.group(1), "--store", store).stdout
    for step in ("ingest:", "fit:", "monitor:", "alarms:", "branch:", "whatif:", "write_report:"):
        assert step in chain, (step, chain)
    # The page and metrics.json beside it, each with its hash.
    for written, where in (("index.html", chain), ("metrics.json", listing)):
        digest = hashlib.sha256((output / written).read_bytes()).hexdigest()
        assert f"path={(output / written).resolve()} sha256={digest}" in where, where
    # The frozen twin's scores are predictions on the stored 2015 readings.
    exported = json.loads(twinweave("provenance", "--store", store, "--json", "-").stdout)
    predictions = [a for a in exported["activity"] if a.startswith("predict:")]
    assert predictions, exported["activity"].keys()
    used = {(u["prov:activity"], u["prov:entity"]) for u in exported["used"].values()}
    on_readings = {a for a, e in used if a in predictions and e.startswith("observations:")}
    assert on_readings == set(predictions), sorted(set(predictions) - on_readings)
