"""What the command-line tests share: running ``twinweave`` as a user would, and reading
what it wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twinweave.domains.wind import scada_path

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


# -- what a new user ran into (walk-through of 2026-11-28) --------------------------------
def whatif_energy(result: subprocess.CompletedProcess[str]) -> float:
    """The live twin's energy [MWh] from the what-if table."""
    found = re.search(r"energy \[MWh\]\s*│\s*([-0-9.e+]+)", result.stdout)
    assert found is not None, result.stdout
    return float(found.group(1))


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


def report_of(store: Path, output: Path, *options: str) -> tuple[str, dict[str, Any]]:
    """``twinweave report --since 2014-12-15`` (or 2015-01-01 for two turbines): stderr
    and metrics.json."""
    since = "2015-01-01" if store.name == "two.duckdb" else "2014-12-15"
    result = twinweave("report", "--store", store, "--since", since, "--output", output, *options)
    assert (output / "index.html").exists()
    return result.stderr, json.loads((output / "metrics.json").read_text())


def page_cell(page: str, table_id: str, turbine: str, index: int) -> float:
    """The number in cell ``index`` (after the turbine's name) of a row of a page table."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert table is not None, f"the page has no table {table_id}"
    row = re.search(rf'<tr><th scope="row">{turbine}</th>(.*?)</tr>', table[1], re.S)
    assert row is not None, f"{table_id} has no row {turbine}"
    cell = re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", row[1])[index])
    return float(cell.split()[0].replace(",", ""))


# -- what a new user ran into (walk-through of 2026-11-29) --------------------------------
def one_line(text: str) -> str:
    """Click's error panel as one line: its frame and wrapping removed."""
    return " ".join(text.replace("│", " ").split())
