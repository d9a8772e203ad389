"""The Flower app of fleet pooling: a ServerApp running :class:`FleetPooling` and a ClientApp
per twin.

Flower loads these two objects by import path (``[tool.flwr.app.components]`` of the
app that :class:`~twinweave.transfer.LoopbackFederation` generates): the ServerApp in a
``flwr-serverapp`` process started by the SuperLink, the ClientApp in a
``flwr-clientapp`` process started by a SuperNode for every message.

Messages (Flower's Message API, type ``train``, ``group_id`` the round):

* to a twin: ``RecordDict`` with ``"population"`` (an ``ArrayRecord`` of
  :meth:`Population.to_arrays <twinweave.transfer.Population.to_arrays>`) and
  ``"fit"`` (a ``ConfigRecord``: ``server-round``, ``kinds`` and ``basis-fingerprint``,
  the prior's :attr:`~twinweave.transfer.FleetPrior.basis_fingerprint` as text, ``""``
  for none);
* from a twin: ``"summary"`` (an ``ArrayRecord`` of
  :meth:`LocalSummary.to_arrays <twinweave.transfer.LocalSummary.to_arrays>`) and
  ``"fit"`` (``server-round``, ``twin-id``, ``kinds``).

Arrays travel as NumPy ``.npy`` bytes (``Array.from_numpy_ndarray``), so float64 values
arrive bit for bit. The ClientApp reads its twin's statistics from the file its node
configuration names (``statistics``), refuses a population fitted for another basis
(:func:`answer`) and sends only the summary.

This module imports Flower; :mod:`twinweave.transfer` itself does not.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from twinweave.transfer._federated import FitIns, FitRes, FleetPooling, RoundReport, run_rounds
from twinweave.transfer._flower import (
    ERROR_FILE,
    FLEET_FILE,
    ROUNDS_FILE,
    SERVER_MESSAGES_DIR,
    FlowerSettings,
    MessageLogWriter,
    load_fleet,
    load_statistics,
    run_directory,
    with_fingerprint,
    write_result,
    write_text_atomically,
)
from twinweave.transfer._hierarchy import local_step
from twinweave.transfer._records import LocalSummary, Population, TwinStatistics

__all__ = ["answer", "client_app", "server_app"]

POPULATION_RECORD = "population"
SUMMARY_RECORD = "summary"
FIT_RECORD = "fit"

server_app = ServerApp()
client_app = ClientApp()


def _array_record(arrays: Mapping[str, np.ndarray[Any, Any]]) -> ArrayRecord:
    return ArrayRecord(
        {name: Array.from_numpy_ndarray(np.asarray(v)) for name, v in arrays.items()}
    )


def _numpy(record: ArrayRecord) -> dict[str, np.ndarray[Any, Any]]:
    return {name: array.numpy() for name, array in record.items()}


def fit_ins_content(instruction: FitIns) -> RecordDict:
    """The content of a message to a twin."""
    population = instruction.population
    return RecordDict(
        {
            POPULATION_RECORD: _array_record(population.to_arrays()),
            FIT_RECORD: ConfigRecord(
                {
                    "server-round": instruction.server_round,
                    "kinds": list(population.kinds),
                    # Text, not one of the population's numbers: beside them, as in the
                    # fleet file; a twin checks it against its own statistics'.
                    "basis-fingerprint": population.prior.basis_fingerprint or "",
                }
            ),
        }
    )


def fit_ins_from_content(content: RecordDict) -> FitIns:
    """Inverse of :func:`fit_ins_content`."""
    config = content.config_records[FIT_RECORD]
    kinds = [str(k) for k in _strings(config["kinds"])]
    population = Population.from_arrays(_numpy(content.array_records[POPULATION_RECORD]), kinds)
    # A server of a version before fingerprints travelled sends none: shapes are checked.
    fingerprint = _string(config["basis-fingerprint"]) if "basis-fingerprint" in config else ""
    prior = with_fingerprint(population.prior, fingerprint)
    return FitIns(int(_int(config["server-round"])), dataclasses.replace(population, prior=prior))


def fit_res_content(result: FitRes) -> RecordDict:
    """The content of a twin's reply."""
    return RecordDict(
        {
            SUMMARY_RECORD: _array_record(result.summary.to_arrays()),
            FIT_RECORD: ConfigRecord(
                {
                    "server-round": result.server_round,
                    "twin-id": list(result.twin_ids),
                    "kinds": list(result.summary.kinds),
                }
            ),
        }
    )


def fit_res_from_content(content: RecordDict) -> FitRes:
    """Inverse of :func:`fit_res_content`."""
    config = content.config_records[FIT_RECORD]
    kinds = [str(k) for k in _strings(config["kinds"])]
    summary = LocalSummary.from_arrays(_numpy(content.array_records[SUMMARY_RECORD]), kinds)
    twin_ids = tuple(str(t) for t in _strings(config["twin-id"]))
    return FitRes(int(_int(config["server-round"])), twin_ids, summary)


def _strings(value: object) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise TypeError(f"expected a list of strings, got {value!r}")


def _string(value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}")


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {value!r}")


def _log_content(content: RecordDict) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """Config values and arrays of a message's content, for a message log."""
    config: dict[str, Any] = {}
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for name, record in content.items():
        if isinstance(record, ArrayRecord):
            arrays.update({f"{name}/{key}": a.numpy() for key, a in record.items()})
        else:
            config.update({f"{name}/{key}": value for key, value in record.items()})
    return config, arrays


# -- the ServerApp -------------------------------------------------------------------


@server_app.main()
def serve(grid: Grid, context: Context) -> None:
    """Wait for the twins' SuperNodes, run :class:`FleetPooling` rounds, write the result.

    Parameters
    ----------
    grid
        Flower's handle on the SuperLink.
    context
        The run configuration (``[tool.flwr.app.config]``, written by
        :class:`~twinweave.transfer.LoopbackFederation`).
    """
    # The run directory first, alone: whatever fails after it (the settings included)
    # is reported there, where the submitter looks, instead of leaving it to time out.
    run_dir = run_directory(context.run_config)
    try:
        _serve(grid, FlowerSettings.from_run_config(context.run_config), run_dir)
    except BaseException as error:
        write_text_atomically(
            run_dir / ERROR_FILE,
            json.dumps({"error": repr(error), "traceback": traceback.format_exc()}),
        )
        raise


def _serve(grid: Grid, settings: FlowerSettings, run_dir: Path) -> None:
    prior, kinds, start = load_fleet(run_dir / FLEET_FILE)
    strategy = FleetPooling(
        prior,
        kinds,
        n_rounds=settings.n_rounds,
        tol=settings.tol,
        max_missed_rounds=settings.max_missed_rounds,
        start=start,
        accelerate=settings.accelerate,
    )
    log = (
        MessageLogWriter(run_dir / SERVER_MESSAGES_DIR, "server")
        if settings.record_messages
        else None
    )
    deadline = time.monotonic() + settings.connect_timeout
    while len(list(grid.get_node_ids())) < settings.min_twins:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"fewer than {settings.min_twins} SuperNodes connected within "
                f"{settings.connect_timeout:g} s"
            )
        time.sleep(settings.poll_interval)
    timings: dict[int, float] = {}
    errors: dict[int, dict[str, str]] = {}
    # The twins each SuperNode answered for: Flower knows nodes only by number, and a
    # node that falls silent should be reported by the twin a user knows.
    twins_at_node: dict[int, str] = {}

    def exchange(
        server_round: int, instructions: Mapping[str, FitIns]
    ) -> tuple[list[FitRes], list[str]]:
        start = time.perf_counter()
        messages = []
        for address, instruction in instructions.items():
            content = fit_ins_content(instruction)
            messages.append(
                Message(
                    content,
                    dst_node_id=int(address),
                    message_type=MessageType.TRAIN,
                    group_id=str(server_round),
                    ttl=settings.round_timeout + 30.0,
                )
            )
            if log is not None:
                log.write("sent", server_round, int(address), None, *_log_content(content))
        pending = {
            mid: int(m.metadata.dst_node_id)
            for mid, m in zip(grid.push_messages(messages), messages, strict=True)
        }
        results: list[FitRes] = []
        failures: list[str] = []
        end = time.monotonic() + settings.round_timeout
        while pending and time.monotonic() < end:
            for reply in grid.pull_messages(list(pending)):
                node = pending.pop(reply.metadata.reply_to_message_id, None)
                if node is None:
                    continue
                reason = reply.error.reason if reply.has_error() else None
                if reason is None:
                    try:
                        result = fit_res_from_content(reply.content)
                    except (KeyError, TypeError, ValueError) as error:
                        reason = f"malformed reply: {error!r}"
                if reason is not None and node in twins_at_node:
                    reason = f"twin {twins_at_node[node]} (answered before): {reason}"
                if reason is not None:
                    failures.append(str(node))
                    errors.setdefault(server_round, {})[str(node)] = reason
                    if log is not None:
                        log.write("received", server_round, node, None, {}, {}, reason)
                    continue
                if log is not None:
                    log.write(
                        "received",
                        server_round,
                        node,
                        ",".join(result.twin_ids),
                        *_log_content(reply.content),
                    )
                twins_at_node[node] = ", ".join(repr(t) for t in result.twin_ids)
                results.append(result)
            if pending:
                time.sleep(settings.poll_interval)
        for node in pending.values():
            # No reply within the round: as silent as a node Flower reports unavailable.
            known = twins_at_node.get(node)
            known = "" if known is None else f"twin {known} (answered before): "
            errors.setdefault(server_round, {})[str(node)] = (
                f"{known}no reply within round_timeout {settings.round_timeout:g} s"
            )
            failures.append(str(node))
        timings[server_round] = time.perf_counter() - start
        return results, failures

    def on_round(report: RoundReport, population: Population) -> None:
        del population
        line = {
            **report.to_dict(),
            "exchange_seconds": timings.get(report.server_round),
            "errors": errors.get(report.server_round, {}),
        }
        with (run_dir / ROUNDS_FILE).open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    result = run_rounds(
        strategy,
        exchange,
        lambda _: [str(node) for node in grid.get_node_ids()],
        on_round=on_round,
    )
    write_result(run_dir, result)


# -- the ClientApp -------------------------------------------------------------------


@client_app.train()
def fit(message: Message, context: Context) -> Message:
    """A twin's answer to a round: its local step on its own statistics.

    Parameters
    ----------
    message
        The round's instruction (the population).
    context
        ``node_config`` names the twin (``twin-id``), its statistics file
        (``statistics``) and, optionally, a directory to log messages (``message-log``).

    Returns
    -------
    Message
        The reply: the twin's :class:`~twinweave.transfer.LocalSummary` only.
    """
    twin_id = str(context.node_config["twin-id"])
    result = answer(twin_id, Path(str(context.node_config["statistics"])), message.content)
    content = fit_res_content(result)
    log_dir = context.node_config.get("message-log")
    if log_dir:
        log = MessageLogWriter(Path(str(log_dir)), "twin")
        node = int(context.node_id)
        log.write("received", result.server_round, node, twin_id, *_log_content(message.content))
        log.write("sent", result.server_round, node, twin_id, *_log_content(content))
    return Message(content, reply_to=message)


def answer(twin_id: str, statistics: Path, content: RecordDict) -> FitRes:
    """A twin's answer to the content of a round's message: its local step on its own
    statistics, for the population received.

    Parameters
    ----------
    twin_id
        The twin, named in its answer and in its errors.
    statistics
        The file with the twin's statistics (:func:`~twinweave.transfer.save_statistics`),
        read for every message: a twin may refresh it during a run.
    content
        The message's content (:func:`fit_ins_content`).

    Returns
    -------
    FitRes
        The round and the twin's :class:`~twinweave.transfer.LocalSummary`.

    Raises
    ------
    RuntimeError
        Naming the twin, if its statistics cannot be read, the message is malformed, or
        the population does not fit the twin's statistics: other shapes or, where both
        carry one, another basis fingerprint.
    """
    try:
        own = load_statistics(statistics)
        instruction = fit_ins_from_content(content)
        _check_received_basis(own, instruction.population)
        summary = local_step(own, instruction.population)
    except Exception as error:
        # Flower reports an error by node number only: say which twin it was.
        raise RuntimeError(f"twin {twin_id!r}: {type(error).__name__}: {error}") from error
    return FitRes(instruction.server_round, (twin_id,), summary)


def _check_received_basis(statistics: TwinStatistics, population: Population) -> None:
    """Refuse a population fitted for another basis than the twin's statistics.

    A population of the same shapes but other knots, noise edges, inputs or units would
    pass :func:`~twinweave.transfer.local_step`'s checks and give a wrong summary. As the
    fleet fits do, a fingerprint that is ``None`` on either side (a prior or statistics
    built by hand, a file written before fingerprints) leaves the shapes alone to compare.
    """
    received = population.prior.basis_fingerprint
    expected = statistics.basis_fingerprint
    if received is not None and expected is not None and received != expected:
        raise ValueError(
            f"population: expected basis fingerprint {expected!r} (the twin's statistics'), "
            f"got {received!r} (the fleet prior's): the population was fitted for an emulator "
            "of other spline knots or inputs, noise-bin edges, or target name or units; "
            "summarise the twin with the fleet's emulator settings"
        )
