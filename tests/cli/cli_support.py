"""What the command-line tests share: running ``twinweave`` as a user would, and reading
what it wrote."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
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


#: Seconds a command may take before the test fails.
COMMAND_TIMEOUT = 300


def twinweave(
    *args: str | Path,
    ok: bool = True,
    env: dict[str, str] | None = None,
    as_a_user: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``twinweave ARGS`` in a process of its own, as a user would: forked from a
    process that has imported twinweave already (``cli_server.py``), or started anew
    where it needs an environment or credentials other than that process's."""
    environment = command_environment(env)
    if as_a_user or not _FORK_SERVER.serves(environment):
        result = fresh_twinweave(*args, env=env, as_a_user=as_a_user)
    else:
        result = forked_twinweave(*args)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def command_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment, with rich's tables 200 columns wide, and ``env``."""
    return {**os.environ, "COLUMNS": "200", **(env or {})}


def entry_point() -> str:
    """The installed ``twinweave`` console script."""
    executable = shutil.which("twinweave", path=str(Path(sys.executable).parent))
    assert executable is not None, "the twinweave entry point is not installed"
    return executable


def fresh_twinweave(
    *args: str | Path, env: dict[str, str] | None = None, as_a_user: bool = False
) -> subprocess.CompletedProcess[str]:
    """``twinweave ARGS`` started anew: the console script in a new interpreter."""
    return subprocess.run(
        [*(AS_A_USER if as_a_user else []), entry_point(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=command_environment(env),
    )


def forked_twinweave(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``twinweave ARGS`` forked from the worker's ``cli_server.py``."""
    return _FORK_SERVER.run([str(a) for a in args])


class ForkServer:
    """A ``cli_server.py`` process, started at its first command in the environment of
    the moment; it ends when its input closes (with the worker, at the latest)."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._environment: dict[str, str] = {}
        self._folder = Path()  # the commands' output files and the server's log
        self._replies = b""  # read from the server, not yet taken

    def serves(self, environment: Mapping[str, str]) -> bool:
        """Whether a command forked from the server runs in ``environment``: the server's
        (the worker's, if it has not started), but for pytest's name of the running
        test."""

        def compared(variables: Mapping[str, str]) -> dict[str, str]:
            return {k: v for k, v in variables.items() if k != "PYTEST_CURRENT_TEST"}

        # Elsewhere a fork without exec is not safe with every library (macOS's
        # frameworks): there each command starts anew.
        linux = sys.platform == "linux"
        return linux and compared(environment) == compared(
            self._environment or command_environment()
        )

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        server = self._start()
        assert server.stdin is not None
        out, err = self._folder / "stdout", self._folder / "stderr"
        out.write_bytes(b"")
        err.write_bytes(b"")
        request = {"argv0": entry_point(), "args": args, "cwd": os.getcwd()}
        request |= {"stdout": str(out), "stderr": str(err)}
        pid = None
        try:
            server.stdin.write(json.dumps(request).encode() + b"\n")
            server.stdin.flush()
            pid = int(self._reply(server)["pid"])
            returncode = int(self._reply(server)["returncode"])
        except BaseException:
            # A timeout or an interruption leaves replies out of step: start anew.
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            server.kill()
            server.wait()
            self._server = None
            raise
        return subprocess.CompletedProcess(
            [entry_point(), *args], returncode, out.read_text(), err.read_text()
        )

    def _start(self) -> subprocess.Popen[bytes]:
        if self._server is None:
            self._environment = command_environment()
            self._replies = b""
            self._folder = Path(tempfile.mkdtemp(prefix="twinweave-cli-server-"))
            atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
            # Its stderr is a file, as the commands' are: rich decides at import whether
            # to colour what it prints from the stream it finds then.
            with open(self._folder / "server.log", "ab") as log:
                self._server = subprocess.Popen(
                    [sys.executable, str(Path(__file__).with_name("cli_server.py"))],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=self._environment,
                )
        return self._server

    def close(self) -> None:
        """End the server (its loop ends with its input)."""
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=COMMAND_TIMEOUT)
            self._server = None

    def _reply(self, server: subprocess.Popen[bytes]) -> dict[str, Any]:
        """The server's next line (read unbuffered: a buffered reader could hold both
        replies while ``select`` waits for the second)."""
        assert server.stdout is not None
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while b"\n" not in self._replies:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([server.stdout], [], [], left)
            if not ready:
                raise subprocess.TimeoutExpired(server.args, COMMAND_TIMEOUT)
            chunk = os.read(server.stdout.fileno(), 65536)
            if not chunk:
                log = (self._folder / "server.log").read_text()
                raise AssertionError(f"cli_server.py exited with code {server.wait()}:\n{log}")
            self._replies += chunk
        line, self._replies = self._replies.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply


_FORK_SERVER = ForkServer()


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
    """Text as one line: a panel's frame and line wrapping removed."""
    return " ".join(text.replace("│", " ").split())
