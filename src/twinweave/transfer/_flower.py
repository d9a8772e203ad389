"""Federated fleet fits over Flower: one SuperLink and one SuperNode per twin, on loopback.

:class:`LoopbackFederation` starts the Flower deployment runtime as real processes on
``127.0.0.1`` (Flower 1.42 names: ``flower-superlink``, ``flower-supernode`` and the
``flwr run`` command line; Beutel et al., *Flower: A Friendly Federated Learning
Research Framework*, arXiv:2007.14390, 2020), runs the app in
:mod:`twinweave.transfer.flower_app` on it and collects the result. Every SuperNode is
told which twin it is through its node configuration: the twin's identifier and the path
of the file holding that twin's :class:`~twinweave.transfer.TwinStatistics`. The
statistics file stays on the twin's side; only the summaries that
:class:`~twinweave.transfer.FleetPooling` documents travel.

What runs where::

    flower-superlink       Fleet, Control and Runtime APIs on one HTTP port
      flower-superexec     starts one flwr-serverapp per run (subprocess isolation)
    flower-supernode  x N  one per twin, polls the SuperLink, --node-config node.toml
      flower-superexec     starts one flwr-clientapp per message
    flwr run               submits the app (a FAB built from a generated pyproject.toml)

The launcher writes the coordinator's knowledge (the prior and the kinds) into the run's
directory; the ServerApp writes the result (``population.npz``, then ``result.json``),
its round log (``rounds.jsonl``) and, when asked, a log of every message there, and the
launcher reads them back. Processes are started with a marker in their environment,
which their children inherit, so that :meth:`LoopbackFederation.close` finds and ends
all of them, including those Flower starts detached, whatever state a test left them in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import numpy as np
from numpy.typing import NDArray

from twinweave.core._arguments import check_count, check_flag, check_number
from twinweave.transfer._federated import (
    FederatedResult,
    RoundReport,
    check_round_settings,
    warn_if_not_converged,
)
from twinweave.transfer._hierarchy import starting_population
from twinweave.transfer._progress import round_progress
from twinweave.transfer._records import (
    FleetPrior,
    Population,
    TwinStatistics,
    check_shapes,
    check_type,
    listed_ids,
    readings_digest,
    refuse_empty_ids,
    warn_repeated,
)

__all__ = [
    "FlowerRun",
    "FlowerRunError",
    "FlowerSettings",
    "LoggedMessage",
    "LoopbackFederation",
    "load_population",
    "load_statistics",
    "read_message_log",
    "save_population",
    "save_statistics",
]

# Environment variable set on every process of one federation; children inherit it.
_MARKER = "TWINWEAVE_FLOWER_FEDERATION"
_HOST = "127.0.0.1"
_CONNECTION = "twinweave-loopback"
_APP_NAME = "twinweave-fleet"
# Import paths of the two components, as Flower loads them in its app processes.
SERVER_APP = "twinweave.transfer.flower_app:server_app"
CLIENT_APP = "twinweave.transfer.flower_app:client_app"
# Files in a run's directory: the launcher writes the fleet, the ServerApp the rest.
FLEET_FILE = "fleet.npz"
RESULT_FILE = "result.json"
RESULT_ARRAYS = "population.npz"
ERROR_FILE = "error.json"
ROUNDS_FILE = "rounds.jsonl"
SERVER_MESSAGES_DIR = "messages"
_MESSAGE_INDEX = "index.jsonl"
# The key of the run directory in the app's run configuration.
_RUN_DIR_KEY = "run-dir"


class FlowerRunError(RuntimeError):
    """A Flower run that failed, timed out or left no result."""


class _PortTaken(FlowerRunError):
    """A process could not bind its port: another listener took it after
    :func:`_free_ports` found it free (a race that a fresh port avoids)."""


@dataclass(frozen=True)
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]
    # Where this process's lines begin: a log reused (a retry, an earlier federation in
    # the same directory) holds other processes' lines before them.
    log_start: int = 0


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports on loopback that nothing listens on now (the kernel's choice).

    The sockets are held until all are bound: a port closed before the next is asked for
    can be handed out again, and two SuperNodes would then race for it.
    """
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)
        ]
        for sock in sockets:
            sock.bind((_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((_HOST, port)) == 0


# How uvicorn (and the OS) report EADDRINUSE, in the SuperLink's and SuperNode's logs.
_BIND_FAILED = "address already in use"


def _listener_inodes(port: int) -> set[str] | None:
    """Inodes of the TCP sockets listening on ``port``, or ``None`` where the kernel does
    not list them (Linux's ``/proc/net/tcp``)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    inodes: set[str] = set()
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl local_address rem_address st ... inode; 0A is LISTEN, ports in hex.
            fields = row.split()
            listening = len(fields) > 9 and fields[3] == "0A"
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _holds_socket(pids: Sequence[int], inodes: set[str]) -> bool:
    """Whether one of ``pids`` has one of the sockets ``inodes`` open."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        fd_dir = Path("/proc") / str(pid) / "fd"
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue  # gone meanwhile
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in wanted:
                    return True
    return False


def _exit_status(returncode: int) -> str:
    """``code 1``, or ``code -9 (killed by SIGKILL)`` for a process a signal ended."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"code {returncode} (killed by {signal.Signals(-returncode).name})"
    return f"code {returncode}"


def _log_since(process: _Process) -> str:
    """What ``process`` has written to its log (not what others wrote there before)."""
    try:
        with process.log.open("rb") as handle:
            handle.seek(process.log_start)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _toml_string(value: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(value)


def _tail(path: Path, n_lines: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n_lines:])


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) off for the block and raise KeyboardInterrupt after it if
    one came; only in the main thread, where Python handles signals, and only where
    Python's own handler can be put back."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def _marked_pids(token: str) -> list[int]:
    """Live (not zombie) processes whose environment carries this federation's marker."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    needle = f"{_MARKER}={token}".encode()
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _savez(handle: IO[bytes], arrays: Mapping[str, NDArray[Any]]) -> None:
    """``np.savez`` of named arrays (pickles are never written, nor read back)."""
    np.savez(handle, allow_pickle=False, **arrays)


def save_statistics(statistics: TwinStatistics, path: str | os.PathLike[str]) -> Path:
    """Write a twin's statistics to an ``.npz`` file (no pickles), for its SuperNode.

    Parameters
    ----------
    statistics
        The twin's statistics.
    path
        Where to write; the file stays on the twin's side.

    Returns
    -------
    Path
        The path written.
    """
    check_type(statistics, TwinStatistics, "statistics")
    path = Path(path)
    arrays: dict[str, NDArray[Any]] = {
        "gram": statistics.gram,
        "moment": statistics.moment,
        "sum_sq": statistics.sum_sq,
        "count": statistics.count,
        "kind": np.asarray(statistics.kind),
    }
    for name in _PERIOD_FIELDS:
        value = getattr(statistics, name)
        if value is not None:
            arrays[name] = value
    if statistics.basis_fingerprint is not None:
        arrays["basis_fingerprint"] = np.asarray(statistics.basis_fingerprint)
    # A ClientApp reads the file for every message: a twin may refresh it during a run.
    with written_aside(path) as partial, partial.open("wb") as handle:
        _savez(handle, arrays)
    return path


# The optional period statistics of TwinStatistics (all three or none).
_PERIOD_FIELDS = ("period_count", "period_sum", "period_features")


def load_statistics(path: str | os.PathLike[str]) -> TwinStatistics:
    """Read statistics written by :func:`save_statistics` (a file written before
    statistics had a basis fingerprint gives ``None`` for it)."""
    path = Path(path)
    expected = "expected twin statistics written by save_statistics (an .npz file)"
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        # Not numpy's formats (an empty file: EOFError); errors of the file system name
        # the path themselves and pass.
        raise ValueError(f"{path}: {expected}, got a file numpy cannot read as one") from error
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: {expected}, got a single array (.npy)")
    with loaded as data:
        missing = [n for n in ("gram", "moment", "sum_sq", "count", "kind") if n not in data.files]
        if missing:
            raise ValueError(f"{path}: {expected}, got an .npz file without {missing}")
        periods = {name: data[name] for name in _PERIOD_FIELDS if name in data.files}
        fingerprint = str(data["basis_fingerprint"]) if "basis_fingerprint" in data.files else None
        return TwinStatistics(
            data["gram"],
            data["moment"],
            data["sum_sq"],
            data["count"],
            str(data["kind"]),
            **periods,
            basis_fingerprint=fingerprint,
        )


def save_fleet(
    prior: FleetPrior, kinds: Sequence[str], path: Path, start: Population | None = None
) -> None:
    """Write what the coordinator knows before round 1: the prior, the kinds and, when
    the rounds start from a population fitted before, that population."""
    arrays = {f"prior.{k}": v for k, v in prior.to_arrays().items()}
    if start is not None:
        # Its values only: the rounds take their settings from ``prior``.
        values = start.to_arrays().items()
        arrays |= {f"start.{k}": v for k, v in values if not k.startswith("prior.")}
    # The basis fingerprint is text, not one of a message's numbers: kept beside them.
    arrays["basis_fingerprint"] = np.asarray(prior.basis_fingerprint or "", dtype=str)
    with path.open("wb") as handle:
        _savez(handle, {"kinds": np.asarray(list(kinds), dtype=str), **arrays})


def load_fleet(path: Path) -> tuple[FleetPrior, tuple[str, ...], Population | None]:
    """Inverse of :func:`save_fleet`."""
    with np.load(path, allow_pickle=False) as data:
        saved_prior = {k: data[k] for k in data.files if k.startswith("prior.")}
        prior = with_fingerprint(
            FleetPrior.from_arrays({k.removeprefix("prior."): v for k, v in saved_prior.items()}),
            str(data["basis_fingerprint"]) if "basis_fingerprint" in data.files else "",
        )
        kinds = tuple(str(k) for k in data["kinds"])
        start = {k.removeprefix("start."): data[k] for k in data.files if k.startswith("start.")}
        if not start:
            return prior, kinds, None
        population = Population.from_arrays({**saved_prior, **start}, kinds)
        return prior, kinds, dataclasses.replace(population, prior=prior)


def save_population(population: Population, path: str | os.PathLike[str]) -> Path:
    """Write a fitted fleet's population to an ``.npz`` file (no pickles): what the
    fleet knows without any twin's statistics, for a twin born into it later
    (:func:`~twinweave.transfer.fleet_emulator`, ``build_turbine_twin(population=)``),
    a new twin's prediction (:func:`~twinweave.transfer.population_twins`) or a refit's
    ``start=``.

    Returns
    -------
    Path
        The path written.
    """
    check_type(population, Population, "population", "a Population (a fit's .population)")
    path = Path(path)
    with written_aside(path) as partial:
        save_fleet(population.prior, population.kinds, partial, start=population)
    return path


def load_population(path: str | os.PathLike[str]) -> Population:
    """Read a population written by :func:`save_population`, equal to it bit for bit."""
    path = Path(path)
    expected = "expected a population written by save_population (an .npz file)"
    try:
        _, _, population = load_fleet(path)
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: {expected}, got a file that is not one") from error
    if population is None:
        raise ValueError(f"{path}: {expected}, got a fleet's prior without a population")
    return population


def with_fingerprint(prior: FleetPrior, fingerprint: str) -> FleetPrior:
    """``prior`` with the basis fingerprint a file or a message kept beside its arrays
    ("" for none: a prior built by hand, files written before fingerprints were kept)."""
    return dataclasses.replace(prior, basis_fingerprint=fingerprint) if fingerprint else prior


def write_result(directory: Path, result: FederatedResult) -> None:
    """Write a result for :func:`read_result`; ``result.json`` last, so that its presence
    means the whole result is there."""
    with (directory / RESULT_ARRAYS).open("wb") as handle:
        _savez(handle, result.population.to_arrays())
    summary = {
        "kinds": list(result.population.kinds),
        "rounds": [r.to_dict() for r in result.rounds],
        "converged": result.converged,
        "twin_ids": list(result.twin_ids),
        "basis_fingerprint": result.population.prior.basis_fingerprint,
    }
    write_text_atomically(directory / RESULT_FILE, json.dumps(summary))


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of the complete lines of ``path`` (none if it does not exist).

    Another process may be appending to it: a last line without its newline is still
    being written, and is left for the next read."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


@contextlib.contextmanager
def written_aside(path: Path) -> Iterator[Path]:
    """A file to write ``path``'s new content to, renamed to ``path`` once written: a
    process that polls for ``path`` or reads it meanwhile never finds it half-written."""
    if path.is_dir():
        raise IsADirectoryError(f"path: expected a file to write, got the directory {path}")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"path: expected a file in an existing folder, got {path} (no folder {path.parent})"
        )
    partial = path.with_name(path.name + ".part")
    try:
        yield partial
        partial.replace(path)
    finally:
        # Written or not, no partial file is left behind.
        partial.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`written_aside` (the submitter polls for a
    run's result and error files)."""
    with written_aside(path) as partial:
        partial.write_text(text)


def read_result(directory: Path) -> FederatedResult:
    """Inverse of :func:`write_result`."""
    summary = json.loads((directory / RESULT_FILE).read_text())
    with np.load(directory / RESULT_ARRAYS, allow_pickle=False) as data:
        population = Population.from_arrays({k: data[k] for k in data.files}, summary["kinds"])
    prior = with_fingerprint(population.prior, summary.get("basis_fingerprint") or "")
    population = dataclasses.replace(population, prior=prior)
    return FederatedResult(
        population=population,
        rounds=tuple(RoundReport.from_dict(r) for r in summary["rounds"]),
        converged=bool(summary["converged"]),
        twin_ids=tuple(str(t) for t in summary["twin_ids"]),
    )


@dataclass(frozen=True)
class LoggedMessage:
    """One message as a side of the federation sent or received it.

    Attributes
    ----------
    side
        ``"server"`` (the ServerApp) or ``"twin"`` (a ClientApp).
    direction
        ``"sent"`` or ``"received"``, from that side.
    server_round
        The round.
    node_id
        The SuperNode the message went to or came from (for a twin: its own).
    twin_id
        The twin, when known (``None`` for the server's outgoing messages).
    config
        Every ``ConfigRecord`` value, by ``record/key``.
    arrays
        Every array of every ``ArrayRecord``, by ``record/key``.
    error
        The error reason of an error reply, else ``None``.
    """

    side: str
    direction: str
    server_round: int
    node_id: int
    twin_id: str | None
    config: dict[str, object]
    arrays: dict[str, NDArray[Any]]
    error: str | None = None


class MessageLogWriter:
    """Appends messages to a log directory (an index line and an ``.npz`` of arrays each).

    Parameters
    ----------
    directory
        The log directory (created if needed).
    side
        ``"server"`` or ``"twin"``.
    """

    def __init__(self, directory: Path, side: str) -> None:
        self.directory = directory
        self.side = side

    def write(
        self,
        direction: str,
        server_round: int,
        node_id: int,
        twin_id: str | None,
        config: Mapping[str, object],
        arrays: Mapping[str, NDArray[Any]],
        error: str | None = None,
    ) -> None:
        """Append one message."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.npz"
        with (self.directory / name).open("wb") as handle:
            _savez(handle, {key.replace("/", "|"): value for key, value in arrays.items()})
        line = {
            "side": self.side,
            "direction": direction,
            "server_round": server_round,
            "node_id": node_id,
            "twin_id": twin_id,
            "config": dict(config),
            "arrays": name,
            "error": error,
        }
        with (self.directory / _MESSAGE_INDEX).open("a") as handle:
            handle.write(json.dumps(line) + "\n")


def read_message_log(directory: str | os.PathLike[str]) -> list[LoggedMessage]:
    """Every message of a log directory, in the order written."""
    directory = Path(directory)
    out: list[LoggedMessage] = []
    for entry in read_json_lines(directory / _MESSAGE_INDEX):
        with np.load(directory / entry["arrays"], allow_pickle=False) as data:
            arrays = {key.replace("|", "/"): data[key] for key in data.files}
        out.append(
            LoggedMessage(
                side=str(entry["side"]),
                direction=str(entry["direction"]),
                server_round=int(entry["server_round"]),
                node_id=int(entry["node_id"]),
                twin_id=None if entry["twin_id"] is None else str(entry["twin_id"]),
                config=dict(entry["config"]),
                arrays=arrays,
                error=entry["error"],
            )
        )
    return out


@dataclass(frozen=True)
class FlowerSettings:
    """What the ServerApp reads from its run configuration (``[tool.flwr.app.config]``).

    Attributes
    ----------
    n_rounds, tol, max_missed_rounds, accelerate
        Those of :class:`~twinweave.transfer.FleetPooling` (the defaults of
        :func:`~twinweave.transfer.fit_central` for the first two and the last).
    min_twins
        SuperNodes that must be connected before the first round.
    round_timeout : [s]
        How long a round waits for replies; twins that have not answered by then have
        missed the round.
    connect_timeout : [s]
        How long the ServerApp waits for ``min_twins`` SuperNodes. Each SuperNode is a
        Python process importing Flower: in one `make test` on two cores, four of them
        had not all connected after 60 s.
    poll_interval : [s]
        How often the ServerApp asks the SuperLink for replies.
    record_messages
        Log every message the ServerApp sends and receives
        (:meth:`FlowerRun.server_messages`).
    """

    n_rounds: int = 1000
    tol: float = 1e-6
    max_missed_rounds: int = 3
    accelerate: bool = True
    min_twins: int = 1
    round_timeout: float = 60.0
    connect_timeout: float = 180.0
    poll_interval: float = 0.02
    record_messages: bool = False

    def __post_init__(self) -> None:
        # Checked here, in the user's process, rather than in the ServerApp's log.
        check_round_settings(self.n_rounds, self.tol, self.max_missed_rounds)
        check_count(self.min_twins, "min_twins")
        for name in ("accelerate", "record_messages"):
            check_flag(getattr(self, name), name)
        for name in ("round_timeout", "connect_timeout", "poll_interval"):
            check_number(getattr(self, name), name, finite=False, unit=" [s]")

    def as_toml(self, run_dir: Path) -> str:
        """The ``[tool.flwr.app.config]`` table of the generated app (keys with dashes)."""
        lines = [f"{_RUN_DIR_KEY} = {_toml_string(str(run_dir))}"]
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.generic):  # repr would be np.int64(5), not TOML
                value = value.item()
            text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
            lines.append(f"{item.name.replace('_', '-')} = {text}")
        return "\n".join(lines)

    @classmethod
    def from_run_config(cls, config: Mapping[str, bool | float | int | str]) -> Self:
        """Inverse of :meth:`as_toml`: the settings (:func:`run_directory`: the run's
        directory)."""
        defaults = cls()  # every field has a default, of the field's type
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            kind = type(getattr(defaults, item.name))
            values[item.name] = kind(config[item.name.replace("_", "-")])
        return cls(**values)


def run_directory(config: Mapping[str, bool | float | int | str]) -> Path:
    """The run directory of a run configuration written by :meth:`FlowerSettings.as_toml`."""
    return Path(str(config[_RUN_DIR_KEY]))


def _app_pyproject(settings: FlowerSettings, run_dir: Path) -> str:
    return f"""[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{_APP_NAME}"
version = "1.0.0"
description = "twinweave fleet pooling as Flower rounds (generated by LoopbackFederation)"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "twinweave"

[tool.flwr.app.components]
serverapp = "{SERVER_APP}"
clientapp = "{CLIENT_APP}"

[tool.flwr.app.config]
{settings.as_toml(run_dir)}
"""


class FlowerRun:
    """One submitted run: its directory, progress and result.

    Parameters
    ----------
    run_id
        Flower's run identifier, as ``flwr run`` reported it.
    directory
        Where the ServerApp writes the round log and the result.
    federation
        The federation the run belongs to (for stopping it and for log tails).
    """

    def __init__(
        self,
        run_id: str,
        directory: Path,
        federation: LoopbackFederation,
        *,
        tol: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.directory = directory
        self._federation = federation
        self._tol = tol  # named in a warning that the rounds ran out

    def _round_lines(self) -> list[dict[str, Any]]:
        return read_json_lines(self.directory / ROUNDS_FILE)

    def rounds(self) -> list[RoundReport]:
        """The rounds the ServerApp has aggregated so far, in order."""
        return [RoundReport.from_dict(line) for line in self._round_lines()]

    def exchange_seconds(self) -> list[float]:
        """Per round so far, the wall time [s] from pushing the round's messages to
        having every reply (or the round timeout)."""
        return [float(line["exchange_seconds"]) for line in self._round_lines()]

    def errors(self) -> list[dict[str, str]]:
        """Per round so far, by node number, why each SuperNode sent no summary: a
        ClientApp that raised, a node the SuperLink found unavailable, or no reply
        within ``round_timeout``; the reason names the twin where it is known."""
        return [dict(line["errors"]) for line in self._round_lines()]

    def wait_for_round(self, server_round: int, timeout: float) -> RoundReport:
        """Block until round ``server_round`` has been aggregated, and return its report."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for report in self.rounds():
                if report.server_round == server_round:
                    return report
            self._raise_if_failed(f"waiting for round {server_round}")
            time.sleep(0.02)
        raise FlowerRunError(
            f"round {server_round} of run {self.run_id} not aggregated within {timeout:g} s\n"
            + self._federation.log_tails()
        )

    def _raise_if_failed(self, waiting_for: str) -> None:
        # A dead SuperLink first: it explains whatever else failed, and no timeout need
        # run out (a run's can be an hour) before it is noticed.
        self._federation._check_running(f"{waiting_for} of run {self.run_id}")
        error = self.directory / ERROR_FILE
        if error.exists():
            raise FlowerRunError(
                f"the ServerApp of run {self.run_id} failed:\n"
                + json.loads(error.read_text())["traceback"]
            )

    def result(self, timeout: float, *, progress: bool = False) -> FederatedResult:
        """Block until the run has written its result (at most ``timeout`` seconds);
        ``progress`` draws its rounds on stderr as they are aggregated, as the in-process
        fits do.

        Raises
        ------
        FlowerRunError
            If the ServerApp failed, or no result appeared in time (the run is then
            asked to stop, which may take up to 30 s more: the time ``flwr stop`` is
            given; the message says how long it took).
        """
        return self._result(timeout, progress)

    def _result(self, timeout: float, progress: bool) -> FederatedResult:
        # Called directly by result() and LoopbackFederation.fit, so that warnings name
        # the user's line at the same depth.
        deadline = time.monotonic() + timeout
        path = self.directory / RESULT_FILE
        n_shown = 0
        with round_progress(progress, f"Flower run {self.run_id}", self._tol) as report:

            def show_new_rounds() -> None:
                nonlocal n_shown
                aggregated = self.rounds() if progress else []
                for done in aggregated[n_shown:]:
                    report(done.server_round, done.change)
                n_shown = max(n_shown, len(aggregated))

            while time.monotonic() < deadline:
                show_new_rounds()
                if path.exists():
                    show_new_rounds()
                    result = read_result(self.directory)
                    self._warn(result)
                    return result
                self._raise_if_failed("waiting for the result")
                time.sleep(0.02)
        # flwr stop may take up to its own timeout: the message says so, not the caller's.
        stopping = time.monotonic()
        self._federation.stop_run(self.run_id)
        stopped = time.monotonic() - stopping
        raise FlowerRunError(
            f"run {self.run_id} wrote no result within {timeout:g} s; asking Flower to stop "
            f"it (flwr stop) took {stopped:.1f} s more\n" + self._federation.log_tails()
        )

    def _warn(self, result: FederatedResult) -> None:
        """Warn of rounds that ran out (``ConvergenceWarning``, as in process), and of
        SuperNodes that sent no summary in the last round, with an error or none in
        time (their twins are not in ``result.twin_ids`` unless another node answered
        for them, though the run may have converged)."""
        # 4: this, _result, result or LoopbackFederation.fit, the user's line.
        warn_if_not_converged(result, tol=self._tol, stacklevel=4)
        errors = self.errors()
        if errors and errors[-1]:
            reasons = "; ".join(f"{node}: {reason}" for node, reason in sorted(errors[-1].items()))
            warnings.warn(
                f"run {self.run_id}: {len(errors[-1])} SuperNode(s) sent no summary in the "
                f"last round ({reasons}); the result pools {list(result.twin_ids)}",
                stacklevel=4,
            )

    def server_messages(self) -> list[LoggedMessage]:
        """Every message the ServerApp sent or received (with ``record_messages``)."""
        return read_message_log(self.directory / SERVER_MESSAGES_DIR)


@dataclass(frozen=True)
class _Shape:
    """A twin's kind, statistics' shapes, basis fingerprint and a digest of its readings:
    what a run's checks need of it."""

    kind: str
    n_features: int
    n_bins: int
    basis_fingerprint: str | None
    # To warn of one twin's statistics under two identifiers, as the fits do.
    readings_digest: bytes | None

    @classmethod
    def of(cls, statistics: TwinStatistics) -> _Shape:
        return cls(
            statistics.kind,
            statistics.n_features,
            statistics.n_bins,
            statistics.basis_fingerprint,
            readings_digest(statistics),
        )


class LoopbackFederation:
    """A Flower SuperLink and one SuperNode per twin, as processes on 127.0.0.1.

    Use it as a context manager: leaving the ``with`` block ends every process the
    federation started, directly or through Flower, also after a failure.

    Parameters
    ----------
    directory
        Working directory: Flower's home directories, the generated app, logs, runs.
    startup_timeout : [s]
        How long a process may take to open its port.
    shutdown_timeout : [s]
        How long processes get to end after SIGTERM before they are killed.

    Examples
    --------
    >>> from twinweave.transfer import FlowerSettings, LoopbackFederation
    >>> with LoopbackFederation(tmp_dir) as federation:  # doctest: +SKIP
    ...     for twin_id, stats in statistics.items():
    ...         federation.add_twin(twin_id, save_statistics(stats, f"{tmp_dir}/{twin_id}.npz"))
    ...     result = federation.fit(prior, ["default"], FlowerSettings(min_twins=4))
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        # Checked as FlowerSettings checks its timeouts (infinity waits for ever).
        for name, value in (
            ("startup_timeout", startup_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            check_number(value, name, finite=False, unit=" [s]")
        self.directory = Path(directory)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.token = uuid.uuid4().hex
        self._superlink: _Process | None = None
        self._supernodes: dict[str, _Process] = {}
        # Each twin's kind and shapes, read from its statistics when it was added, to
        # refuse a run they do not fit (the statistics themselves stay in their files).
        self._shapes: dict[str, _Shape] = {}
        self._stopped: list[_Process] = []
        self._port: int | None = None
        self._n_runs = 0
        self._n_supernodes = 0

    # -- processes -------------------------------------------------------------------

    def _environment(self, flwr_home: Path) -> dict[str, str]:
        env = dict(os.environ)
        # Flower starts its helpers (flower-superexec, flwr-serverapp, flwr-clientapp)
        # by name: they must come from this interpreter's environment.
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["FLWR_HOME"] = str(flwr_home)
        env["FLWR_TELEMETRY_ENABLED"] = "0"
        env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
        # SuperExec asks for new app processes every second by default; rounds are short.
        env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = "0.05"
        env[_MARKER] = self.token
        return env

    def _spawn(self, name: str, command: Sequence[str], flwr_home: Path) -> _Process:
        logs = self.directory / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        flwr_home.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        log_start = log.stat().st_size if log.exists() else 0
        log_file = log.open("ab")
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=self._environment(flwr_home),
            cwd=self.directory,
            start_new_session=True,  # its own process group, ended as one
        )
        return _Process(name, popen, log, log_file, log_start)

    def _wait_listening(self, process: _Process, port: int) -> None:
        """Wait until ``process`` (or a process it started) listens on ``port``.

        Raises
        ------
        _PortTaken
            If it could not bind the port (another listener took it).
        FlowerRunError
            If it exited, or did not listen within ``startup_timeout``.
        """
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                self._raise_if_bind_failed(process, port)
                raise FlowerRunError(
                    f"{process.name} exited with {_exit_status(process.popen.returncode)} "
                    f"before listening on {_HOST}:{port}:\n" + _tail(process.log)
                )
            # Anyone's listener answers a connection: the port counts as ours only when
            # one of our processes holds the listening socket (where /proc tells).
            if _listening(port) and self._listens_on(port, process):
                return
            time.sleep(0.05)
        self._raise_if_bind_failed(process, port)
        raise FlowerRunError(
            f"{process.name} did not listen on {_HOST}:{port} within "
            f"{self.startup_timeout:g} s:\n" + _tail(process.log)
        )

    def _listens_on(self, port: int, process: _Process) -> bool:
        inodes = _listener_inodes(port)
        if inodes is None:
            # No /proc: a listener is taken as ours unless the log says the bind failed.
            return _BIND_FAILED not in _log_since(process).lower()
        ours = _holds_socket([process.popen.pid], inodes)
        if not (ours or _holds_socket(_marked_pids(self.token), inodes)):
            # Another process's listener: ours will fail to bind, and say so.
            self._raise_if_bind_failed(process, port)
            return False
        return True

    @staticmethod
    def _raise_if_bind_failed(process: _Process, port: int) -> None:
        if _BIND_FAILED in _log_since(process).lower():
            raise _PortTaken(
                f"{process.name} could not bind {_HOST}:{port}: address already in use (another "
                "process took the port after it was found free); expected the port free:\n"
                + _tail(process.log)
            )

    def _discard(self, process: _Process) -> None:
        """End a process at once (SIGKILL to its process group) and keep its log."""
        self._stopped.append(process)  # close() closes its log, also if the wait fails
        self._signal_group(process, signal.SIGKILL)
        process.popen.wait(timeout=self.shutdown_timeout)

    def _check_running(self, waiting_for: str, *, supernodes: bool = True) -> None:
        """Raise if what ``waiting_for`` needs has gone: the SuperLink, or (with
        ``supernodes``) every SuperNode, so no twin can answer a round.

        SuperNodes ended by :meth:`kill_twin` do not count: their twins were removed.
        """
        superlink = self._superlink
        if superlink is None:
            raise FlowerRunError(
                f"the federation is closed while {waiting_for}; expected it started"
            )
        returncode = superlink.popen.poll()
        if returncode is not None:
            raise FlowerRunError(
                f"the SuperLink exited with {_exit_status(returncode)} while {waiting_for}; "
                "expected it running:\n" + _tail(superlink.log)
            )
        nodes = self._supernodes
        if supernodes and nodes and all(p.popen.poll() is not None for p in nodes.values()):
            exits = ", ".join(
                f"{twin_id!r} with {_exit_status(p.popen.returncode)}"
                for twin_id, p in nodes.items()
            )
            raise FlowerRunError(
                f"every SuperNode exited ({exits}) while {waiting_for}; expected at least one "
                "running, to answer the rounds:\n" + self.log_tails()
            )

    def start(self) -> Self:
        """Start the SuperLink (idempotent) and write the ``flwr`` CLI's connection.

        If the SuperLink does not come up, everything started is ended before the error
        propagates (``__exit__`` does not run when ``__enter__`` fails).
        """
        if self._superlink is not None:
            return self
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        home = self.directory / "superlink-home"
        for attempt in (1, 2):
            (port,) = _free_ports(1)
            process = self._spawn(
                "superlink",
                [
                    "flower-superlink",
                    "--insecure",
                    "--host",
                    _HOST,
                    "--port",
                    str(port),
                    # The app's dependencies are this environment's; never run `uv sync`.
                    "--disable-runtime-dependency-installation",
                ],
                home,
            )
            self._superlink = process
            self._port = port
            try:
                self._wait_listening(process, port)
                break
            except _PortTaken:
                if attempt == 2:
                    raise
                # Taken between _free_ports and the bind: a race, not a fault; a fresh
                # port avoids it.
                self._superlink = None
                self._discard(process)
        cli_home = self.directory / "cli-home"
        cli_home.mkdir(parents=True, exist_ok=True)
        (cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{_CONNECTION}"\n\n'
            f'[superlink.{_CONNECTION}]\naddress = "{_HOST}:{port}"\ninsecure = true\n'
        )
        return self

    @property
    def address(self) -> str:
        """The SuperLink's address, ``127.0.0.1:PORT``."""
        if self._port is None:
            raise FlowerRunError("the federation has not been started")
        return f"{_HOST}:{self._port}"

    @property
    def twin_ids(self) -> list[str]:
        """Twins whose SuperNode is running."""
        return [t for t, p in self._supernodes.items() if p.popen.poll() is None]

    def add_twin(
        self,
        twin_id: str,
        statistics: str | os.PathLike[str],
        *,
        message_log: str | os.PathLike[str] | None = None,
    ) -> None:
        """Start a SuperNode for one twin (see :meth:`add_twins`)."""
        logs = None if message_log is None else {twin_id: message_log}
        self.add_twins({twin_id: statistics}, message_logs=logs)

    def add_twins(
        self,
        statistics: Mapping[str, str | os.PathLike[str]],
        *,
        message_logs: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        """Start one SuperNode per twin, all at once, and wait until each listens.

        Parameters
        ----------
        statistics
            Per twin identifier (which its replies carry), the file with the twin's
            statistics (:func:`save_statistics`).
        message_logs
            Per twin, a directory where its ClientApp logs every message it receives and
            every reply it sends (:func:`read_message_log`); twins not named log nothing.
        """
        if not isinstance(statistics, Mapping):
            raise TypeError(
                f"statistics: expected a mapping from twin identifier to statistics file, "
                f"got {type(statistics).__name__}"
            )
        for twin_id in statistics:
            if not isinstance(twin_id, str):
                raise TypeError(f"statistics: expected twin identifiers as text, got {twin_id!r}")
        refuse_empty_ids(statistics, "statistics")
        # Every twin is checked before any SuperNode starts: a refusal starts none.
        running = sorted(set(statistics) & set(self.twin_ids))
        if running:
            raise ValueError(
                f"statistics: twins {running} already have a running SuperNode; expected "
                "twins without one (kill_twin first to replace one)"
            )
        # A twin whose file cannot be read would answer every round with an error and
        # never be pooled (a twin is expected once it has answered): refuse it here.
        loaded = {twin_id: _Shape.of(load_statistics(path)) for twin_id, path in statistics.items()}
        self.start()
        message_logs = message_logs or {}
        started: list[tuple[str, Path, int]] = []
        ports = _free_ports(len(statistics))
        for (twin_id, path), port in zip(statistics.items(), ports, strict=True):
            self._n_supernodes += 1
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in twin_id)
            node_dir = self.directory / "supernodes" / f"{self._n_supernodes}-{safe}"
            node_dir.mkdir(parents=True, exist_ok=True)
            config = [
                f"twin-id = {_toml_string(twin_id)}",
                f"statistics = {_toml_string(str(Path(path).resolve()))}",
            ]
            if twin_id in message_logs:
                log_dir = str(Path(message_logs[twin_id]).resolve())
                config.append(f"message-log = {_toml_string(log_dir)}")
            node_config = node_dir / "node.toml"
            node_config.write_text("\n".join(config) + "\n")
            name = f"supernode-{self._n_supernodes}-{safe}"
            self._supernodes[twin_id] = self._spawn_supernode(name, node_config, port)
            self._shapes[twin_id] = loaded[twin_id]
            started.append((twin_id, node_config, port))
        for twin_id, node_config, port in started:
            process = self._supernodes[twin_id]
            try:
                self._wait_listening(process, port)
            except _PortTaken:
                # The race of _start: once more, on a fresh port.
                self._discard(process)
                (port,) = _free_ports(1)
                process = self._spawn_supernode(process.name, node_config, port)
                self._supernodes[twin_id] = process
                self._wait_listening(process, port)

    def _spawn_supernode(self, name: str, node_config: Path, port: int) -> _Process:
        return self._spawn(
            name,
            [
                "flower-supernode",
                "--insecure",
                "--superlink",
                self.address,
                "--host",
                _HOST,
                "--port",
                str(port),
                "--node-config",
                str(node_config),
            ],
            node_config.parent / "home",
        )

    def kill_twin(self, twin_id: str) -> None:
        """End a twin's SuperNode at once (SIGKILL to its process group), as a crash would.

        The SuperLink is not told; the twin misses the rounds that follow.
        """
        if twin_id not in self._supernodes:
            raise ValueError(
                f"twin_id: expected a twin with a running SuperNode, one of "
                f"{sorted(self._supernodes)}, got {twin_id!r}"
            )
        self._discard(self._supernodes.pop(twin_id))

    # -- runs ------------------------------------------------------------------------

    def _flwr(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["flwr", *args],
            capture_output=True,
            text=True,
            env=self._environment(self.directory / "cli-home"),
            cwd=self.directory,
            timeout=timeout,
            check=False,
        )

    def submit(
        self,
        prior: FleetPrior,
        kinds: Sequence[str],
        settings: FlowerSettings | None = None,
        *,
        start: Population | None = None,
    ) -> FlowerRun:
        """Submit the fleet-pooling app with ``flwr run`` and return at once.

        Parameters
        ----------
        prior
            The fleet prior, which the coordinator holds.
        kinds
            The kinds pooled, in the order :func:`~twinweave.transfer.fit_central`
            meets them.
        settings
            Rounds, tolerance, drop-out rule and timeouts.
        start
            A population fitted before, to start round 1 from (as
            :func:`~twinweave.transfer.fit_central`'s ``start``); default the prior's.

        Returns
        -------
        FlowerRun
            The submitted run; :meth:`FlowerRun.result` waits for its result.
        """
        return self._submit(prior, kinds, settings, start=start)

    def _submit(
        self,
        prior: FleetPrior,
        kinds: Sequence[str],
        settings: FlowerSettings | None,
        *,
        start: Population | None,
    ) -> FlowerRun:
        # Called directly by submit() and fit(), so that warnings name the user's line
        # at the same depth.
        # Refused here, before a run is submitted or anything written for it (the
        # ServerApp would refuse it too).
        check_type(prior, FleetPrior, "prior")
        settings = FlowerSettings() if settings is None else settings
        check_type(
            settings, FlowerSettings, "settings", "FlowerSettings (or None for the defaults)"
        )
        pooled = starting_population(prior, kinds, start).kinds
        # A twin of another kind would answer every round with an error, never be
        # pooled, and be dropped after max_missed_rounds with only a warning.
        for twin_id in self.twin_ids:
            kind = self._shapes[twin_id].kind
            if kind not in pooled:
                raise ValueError(
                    f"twin {twin_id!r}: kind {kind!r} is not one the run pools {pooled}; "
                    "list it in kinds"
                )
        # Nor could a twin of another basis or other noise bins ever answer a round, and
        # one of the same shapes but another fingerprint would be pooled wrongly.
        twin_ids = self.twin_ids
        if twin_ids:
            labels = [f"twin {t!r}" for t in twin_ids]
            check_shapes([self._shapes[t] for t in twin_ids], prior, labels=labels, pooled=True)
        else:
            # The run would wait connect_timeout (3 minutes by default) for none.
            raise ValueError(
                "expected twins to pool: add_twin or add_twins before submit, got none"
            )
        if settings.min_twins > len(twin_ids):
            # Nor could it start with fewer SuperNodes than min_twins.
            raise ValueError(
                f"min_twins: expected at most the {len(twin_ids)} twins the federation has "
                f"({listed_ids(twin_ids)}), got {settings.min_twins}; add_twin or add_twins "
                "before submit"
            )
        # One twin's file under two identifiers: warned as the in-process fits warn.
        digests = [self._shapes[t].readings_digest for t in twin_ids]
        warn_repeated(digests, labels)
        self.start()
        # A directory used before holds earlier runs: a new run never shares theirs, or
        # its submitter would find their result (or error) before its own is written.
        self._n_runs += 1
        while (self.directory / "runs" / f"run-{self._n_runs}").exists():
            self._n_runs += 1
        run_dir = (self.directory / "runs" / f"run-{self._n_runs}").resolve()
        run_dir.mkdir(parents=True)
        save_fleet(prior, kinds, run_dir / FLEET_FILE, start)
        app_dir = self.directory / "apps" / f"run-{self._n_runs}" / "twinweave_fleet"
        app_dir.mkdir(parents=True, exist_ok=True)
        (app_dir / "pyproject.toml").write_text(_app_pyproject(settings, run_dir))
        # flwr run would only say that the SuperLink is unavailable.
        self._check_running("submitting a run", supernodes=False)
        completed = self._flwr("run", str(app_dir), _CONNECTION, "--format", "json")
        try:
            answer = json.loads(completed.stdout[completed.stdout.index("{") :])
            if not isinstance(answer, dict):
                raise TypeError(f"a JSON {type(answer).__name__}")
        except (ValueError, TypeError) as error:
            raise FlowerRunError(
                f"flwr run gave no answer (exit code {completed.returncode}); expected JSON with "
                f"the run's identifier:\n{completed.stdout}\n{completed.stderr}"
            ) from error
        run_id = str(answer.get("run-id"))
        if not answer.get("success") or run_id == "None":
            # It says why in its answer (and may exit with 0 all the same).
            self._check_running("flwr run was submitting a run", supernodes=False)
            reason = answer.get("error-message") or completed.stdout
            code = f" (exit code {completed.returncode})" if completed.returncode else ""
            raise FlowerRunError(
                f"flwr run did not start a run{code}: {reason}\n{completed.stderr}".rstrip()
            )
        return FlowerRun(run_id, run_dir, self, tol=settings.tol)

    def fit(
        self,
        prior: FleetPrior,
        kinds: Sequence[str],
        settings: FlowerSettings | None = None,
        *,
        start: Population | None = None,
        timeout: float = 600.0,
        progress: bool = False,
    ) -> FederatedResult:
        """Submit the app (:meth:`submit`) and wait at most ``timeout`` [s] for its result;
        ``progress`` draws the rounds on stderr (:meth:`FlowerRun.result`)."""
        return self._submit(prior, kinds, settings, start=start)._result(timeout, progress)

    def stop_run(self, run_id: str) -> None:
        """Ask the SuperLink to stop a run (best effort)."""
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self._flwr("stop", run_id, _CONNECTION, timeout=30.0)

    # -- teardown --------------------------------------------------------------------

    def _processes(self) -> Iterator[_Process]:
        yield from self._supernodes.values()
        if self._superlink is not None:
            yield self._superlink

    @staticmethod
    def _signal_group(process: _Process, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signum)

    def pids(self) -> list[int]:
        """Live processes this federation started, directly or through Flower (Linux).

        Elsewhere, only the processes the federation started itself.
        """
        if Path("/proc").is_dir():
            return _marked_pids(self.token)
        return sorted(p.popen.pid for p in self._processes() if p.popen.poll() is None)

    def close(self) -> None:
        """End every process of the federation: SIGTERM, then SIGKILL after the timeout.

        A Ctrl-C while it runs is held until every process has ended, then raised: a
        second Ctrl-C used to cut it short and leave a ServerApp running."""
        with _interrupts_held():
            self._close()

    def _close(self) -> None:
        processes = list(self._processes())
        for process in processes:
            self._signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout
        for process in processes:
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.popen.wait(timeout=self.shutdown_timeout)
        # What Flower started detached (its SuperExec, app processes) is asked to end at
        # once (waiting for it to end with its parent took the whole timeout for a
        # ServerApp, in its own session); what is left after the timeout is killed.
        for pid in _marked_pids(self.token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout
        while (left := _marked_pids(self.token)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # A killed process is listed until it has exited: return when none is.
        deadline = time.monotonic() + self.shutdown_timeout
        while _marked_pids(self.token) and time.monotonic() < deadline:
            time.sleep(0.05)
        for process in [*processes, *self._stopped]:
            process.log_file.close()
        self._supernodes.clear()
        self._stopped.clear()
        self._superlink = None
        self._port = None

    def log_tails(self, n_lines: int = 15) -> str:
        """The last lines of every process's log, for error messages."""
        parts = [
            f"--- {p.name} ({p.log}):\n{_tail(p.log, n_lines)}"
            for p in [*self._processes(), *self._stopped]
        ]
        return "\n".join(parts)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
