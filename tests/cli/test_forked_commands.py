"""The tests' commands are forked from a process that has imported twinweave
(``cli_server.py``): what each prints, writes and exits with is what the console script
started anew gives."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cli_support
import pandas as pd
import pytest
from cli_support import ForkServer, forked_twinweave, fresh_twinweave, twinweave

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="commands are forked on Linux only"),
]


def assert_same(args: list[str | Path]) -> subprocess.CompletedProcess[str]:
    fresh, fork = fresh_twinweave(*args), forked_twinweave(*args)

    def printed(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
        # Each prediction recorded has an identifier of its own.
        stderr = re.sub(r"prediction:[0-9a-f]+", "prediction:ID", result.stderr)
        return result.returncode, result.stdout, stderr

    assert printed(fork) == printed(fresh)
    return fork


def test_help_usage_errors_and_user_errors_are_the_console_scripts(tmp_path: Path) -> None:
    assert assert_same(["--help"]).returncode == 0
    # Click's usage error: SystemExit(2) raised inside the command.
    assert assert_same(["predict", "--no-such-option"]).returncode == 2
    # twinweave's own: one line on stderr, code 2.
    missing = ["predict", "--store", tmp_path / "none.duckdb", "--twin", "T"]
    assert assert_same([*missing, "--input", "x.csv", "--output", "y.csv"]).returncode == 2


def test_a_prediction_with_a_warning_prints_and_writes_the_same(
    fitted_store: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "X.csv"
    frame = pd.DataFrame({"wind_speed": [2.0, 7.5, 13.0], "unused": [1, 2, 3]})
    frame.to_csv(inputs, index=False)
    args = ["predict", "--store", fitted_store, "--twin", "R80711", "--input", inputs]
    result = assert_same([*args, "--output", "-"])
    assert result.returncode == 0 and "unused" in result.stderr
    written = {how: tmp_path / f"{how}.csv" for how in ("fresh", "fork")}
    fresh_twinweave(*args, "--output", written["fresh"])
    forked_twinweave(*args, "--output", written["fork"])
    assert written["fresh"].read_bytes() == written["fork"].read_bytes()


def test_a_command_runs_in_the_callers_folder(
    fitted_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"wind_speed": [7.5]}).to_csv("X.csv", index=False)
    args = ["predict", "--store", fitted_store, "--twin", "R80711", "--input", "X.csv"]
    assert forked_twinweave(*args, "--output", "Y.csv").returncode == 0
    assert (tmp_path / "Y.csv").exists()


def test_an_uncaught_error_leaves_as_the_console_scripts_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With TWINWEAVE_DEBUG=1 an error in the user's file is raised on, past the entry
    # point.
    monkeypatch.setenv("TWINWEAVE_DEBUG", "1")
    data = tmp_path / "bad.csv"
    data.write_text("a,b\n1,2\n")
    args = ["ingest", str(data), "--store", str(tmp_path / "s.duckdb")]
    server = ForkServer()
    try:
        fork, fresh = server.run(args), fresh_twinweave(*args)
    finally:
        server.close()
    assert fork.returncode == fresh.returncode == 1
    assert fork.stdout == fresh.stdout == ""
    # Typer's traceback in both, ending with the error.
    error = "DataError: " + str(data)
    assert error in fork.stderr and error in fresh.stderr
    assert fork.stderr.split(error)[1] == fresh.stderr.split(error)[1]


def test_a_command_in_another_environment_is_started_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even as the worker's first command, before its server has started.
    monkeypatch.setattr(cli_support, "_FORK_SERVER", ForkServer())
    data = tmp_path / "bad.csv"
    data.write_text("a,b\n1,2\n")
    debug = {"TWINWEAVE_DEBUG": "1"}
    result = twinweave("ingest", data, "--store", tmp_path / "s.duckdb", ok=False, env=debug)
    assert result.returncode == 1 and "Traceback" in result.stderr
