"""What the command-line tests share: running ``twinweave`` as a user would, and reading
what it wrote."""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
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
    """Run ``twinweave ARGS`` in a process of its own, as a user would: forked from a
    process that has imported twinweave already (``cli_server.py``), unless it needs an
    environment or credentials other than that process's."""
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    if as_a_user or not _COMMANDS.can_run_in(environment):
        result = exec_twinweave(*args, env=environment, as_a_user=as_a_user)
    else:
        result = _COMMANDS.run(entry_point(), [str(a) for a in args], timeout=300)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def entry_point() -> str:
    executable = shutil.which("twinweave", path=str(Path(sys.executable).parent))
    assert executable is not None, "the twinweave entry point is not installed"
    return executable


def exec_twinweave(
    *args: str | Path, env: dict[str, str] | None = None, as_a_user: bool = False
) -> subprocess.CompletedProcess[str]:
    """``twinweave ARGS`` in a new interpreter, as the console script starts."""
    return subprocess.run(
        [*(AS_A_USER if as_a_user else []), entry_point(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or {**os.environ, "COLUMNS": "200"},
    )


class _Commands:
    """The worker's ``cli_server.py`` process, started at its first command; it ends
    when the worker does (its input closes)."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._environment: dict[str, str] = {}
        self._replies = b""  # read from the server, not yet taken
        self._lock = threading.Lock()

    def can_run_in(self, environment: dict[str, str]) -> bool:
        """Whether a command forked from the server would see ``environment``: the one
        the server started in (the worker's at its first command), but for pytest's name
        of the running test."""

        def compared(variables: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in variables.items() if k != "PYTEST_CURRENT_TEST"}

        return self._server is None or compared(environment) == compared(self._environment)

    def run(
        self, executable: str, args: list[str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        with self._lock, tempfile.TemporaryDirectory(prefix="twinweave-cli-") as folder:
            server = self._start()
            assert server.stdin is not None and server.stdout is not None
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"argv0": executable, "args": args, "cwd": os.getcwd()}
            request["environment"] = {**os.environ, "COLUMNS": "200"}
            request |= {"stdout": str(out), "stderr": str(err)}
            server.stdin.write(json.dumps(request).encode() + b"\n")
            server.stdin.flush()
            pid = int(self._reply(server, timeout)["pid"])
            try:
                returncode = int(self._reply(server, timeout)["returncode"])
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._reply(server, timeout)
                raise
            return subprocess.CompletedProcess(
                [executable, *args], returncode, out.read_text(), err.read_text()
            )

    def _start(self) -> subprocess.Popen[bytes]:
        if self._server is None:
            self._environment = {**os.environ, "COLUMNS": "200"}
            self._server = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("cli_server.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self._environment,
            )
            atexit.register(self._stop)
        return self._server

    def _stop(self) -> None:
        if self._server is not None and self._server.stdin is not None:
            self._server.stdin.close()  # its loop ends, and with it the server
            self._server.wait(timeout=30)

    def _reply(self, server: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        """The server's next line (read unbuffered: a buffered reader could hold both
        replies while ``select`` waits for the second)."""
        assert server.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._replies:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([server.stdout], [], [], left)
            if not ready:
                raise subprocess.TimeoutExpired(server.args, timeout)
            chunk = os.read(server.stdout.fileno(), 65536)
            assert chunk, f"cli_server.py exited with code {server.wait()}"
            self._replies += chunk
        line, self._replies = self._replies.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply


_COMMANDS = _Commands()


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
