"""The command line as a user runs it: a process per command, the shipped data, a DuckDB
file. The processes are forked from one that has imported twinweave already
(``cli_server.py``; ``test_forked_commands.py`` shows they print and write what the
console script started anew does).

The helpers are in ``cli_support.py`` beside this file, put on ``sys.path`` here. The
stores below are shared by every file of this folder that a worker runs (each starts
processes of its own, so the files are spread over the workers, and each worker fits the
store once)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from twinweave.domains.wind import scada_path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from cli_support import scada_subset, twinweave  # noqa: E402


@pytest.fixture(scope="session")
def fitted_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("cli") / "S.duckdb"
    # The exact form the issue asks for.
    result = twinweave("fit", scada_path(), "--store", store, "--train-until", "2015-01-01")
    for turbine in ("R80711", "R80721", "R80736", "R80790"):
        assert turbine in result.stdout
    return store


@pytest.fixture(scope="session")
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
