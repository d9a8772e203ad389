"""The store from the command line: provenance, quarantine, stores it cannot use, Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from cli_support import DEBUG_HINT, assert_user_error, scada_subset, twinweave

from twinweave import cli
from twinweave.data import Store

pytestmark = pytest.mark.slow


def test_quarantine_lists_reasons(fitted_store: Path, tmp_path: Path) -> None:
    rows = tmp_path / "q.csv"
    written = twinweave(
        "quarantine", "--store", fitted_store, "--check", "downtime", "--output", rows
    ).stdout
    listed = pd.read_csv(rows)
    assert len(listed) > 0 and set(listed["check"]) == {"downtime"}
    assert listed["reason"].str.len().min() > 10
    # The file written is recorded, back to the file its rows came from (it was not:
    # review 2026-12-01).
    record = re.search(rf"to {re.escape(str(rows))} \(its record: (file:[0-9a-f]+)\)", written)
    assert record is not None, written
    chain = twinweave("provenance", record.group(1), "--store", fitted_store).stdout
    steps = ("sha256=", "ingest:", "clean:", "select:", "export:")
    positions = [chain.index(step) for step in steps]
    assert positions == sorted(positions), chain
    assert "check=downtime" in chain and f"n_rows={len(listed)}" in chain, chain
    assert f"sha256={hashlib.sha256(rows.read_bytes()).hexdigest()}" in chain, chain
    # - writes the same rows to stdout, and the summary and sample to stderr.
    piped = twinweave("quarantine", "--store", fitted_store, "--check", "downtime", "--output", "-")
    assert piped.stdout == rows.read_text()
    assert f"wrote {len(listed):,} rows to stdout" in piped.stderr
    assert "failed checks of" in piped.stderr
    nowhere = twinweave("quarantine", "--store", fitted_store, "--output", os.devnull)
    assert "rows to /dev/null" in nowhere.stdout


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
        assert_user_error(
            refused, "the store is not writable (Permission denied), and this command writes"
        )
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


def test_a_folder_only_root_seems_to_write_is_refused_before_any_work(tmp_path: Path) -> None:
    # os.access grants root /proc: the store's refusal came from DuckDB, the output's
    # after the predictions were made (review of 2026-12-01).
    data = scada_subset(tmp_path / "one.parquet", ("R80711", "2014-12-30", "2015-01-01"))
    refused = twinweave("ingest", data, "--store", "/proc/twinweave.duckdb", ok=False)
    assert_user_error(refused, "its folder /proc is not writable (")
    store = tmp_path / "s.duckdb"
    twinweave("fit", data, "--store", store, "--train-until", "2015-01-01")
    inputs = tmp_path / "in.csv"
    inputs.write_text("wind_speed\n5.0\n")
    predict = ("predict", "--store", store, "--twin", "R80711", "--input", inputs)
    refused = twinweave(*predict, "--output", "/proc/twinweave.csv", ok=False)
    assert_user_error(refused, "--output /proc/twinweave.csv: not writable (")


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
    def interrupted(**_: object) -> None:
        raise error

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 130
    said = " ".join(capsys.readouterr().err.split())
    assert said.startswith("error: interrupted: the store is as it was before"), said
    # Another error of DuckDB's is not taken for an interrupt.
    monkeypatch.setattr(cli, "app", lambda **_: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):
        cli.main()
