"""The tests' commands are forked from a process that has imported twinweave
(``cli_server.py``): what each prints, writes and exits with is what the console script
started anew gives."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from cli_support import _COMMANDS, entry_point, exec_twinweave

pytestmark = pytest.mark.slow


def forked(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return _COMMANDS.run(entry_point(), [str(a) for a in args], timeout=300)


def assert_same(args: list[str | Path]) -> subprocess.CompletedProcess[str]:
    fresh, fork = exec_twinweave(*args), forked(*args)

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
    exec_twinweave(*args, "--output", written["fresh"])
    forked(*args, "--output", written["fork"])
    assert written["fresh"].read_bytes() == written["fork"].read_bytes()


def test_a_command_runs_in_the_callers_folder(
    fitted_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"wind_speed": [7.5]}).to_csv("X.csv", index=False)
    args = ["predict", "--store", fitted_store, "--twin", "R80711", "--input", "X.csv"]
    assert forked(*args, "--output", "Y.csv").returncode == 0
    assert (tmp_path / "Y.csv").exists()
