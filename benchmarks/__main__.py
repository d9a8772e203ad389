"""Run every benchmark in one run: ``python -m benchmarks`` (``make bench``).

Prints a table of measured values, targets, competitors' values and ratios, and writes
``benchmarks/results.json`` (machine, date, every number with its details).

Options: ``--only TOPIC`` (repeatable: assimilation, river, openoa, pipeline, federated,
gossip, transfer, pymc, memory, drift, reservoirs),
``--output PATH``, ``--no-install`` (do not create ``.venv-openoa`` for OpenOA).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import (
    assimilation,
    drift,
    federated,
    gossip,
    memory,
    openoa_comparison,
    pipeline,
    pymc_comparison,
    reservoirs,
    river_comparison,
    transfer,
)
from benchmarks._data import Fleet, load_fleet
from benchmarks._harness import Result, machine_info, noise_floor
from benchmarks._openoa_env import OpenOAPython, find_openoa

TOPICS = (
    "assimilation",
    "river",
    "openoa",
    "pipeline",
    "federated",
    "gossip",
    "transfer",
    "pymc",
    "memory",
    "drift",
    "reservoirs",
)
DEFAULT_OUTPUT = Path(__file__).with_name("results.json")


def _number(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit.endswith("/s") and abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M{unit}"
    if unit.endswith("/s") and abs(value) >= 1e3:
        return f"{value / 1e3:.1f} k{unit}"
    if unit == "max rel diff" or (value != 0 and abs(value) < 1e-3):
        return f"{value:.1e}" + (f" {unit}" if unit != "max rel diff" else "")
    return f"{value:.3g} {unit}".strip()


def _target(result: Result) -> str:
    if result.target is None:
        return "-"
    sign = ">=" if result.better == "higher" else "<="
    if result.target_on == "ratio":
        return f"ratio {sign} {result.target:g}"
    return f"{sign} {_number(result.target, result.unit)}"


def render(results: list[Result], console: Console) -> None:
    """The table of numbers; each row's note is printed under it, numbered."""
    table = Table(title="twinweave benchmarks")
    for column in ("#", "benchmark", "measured", "target", "met", "competitor", "theirs"):
        table.add_column(column, overflow="fold")
    table.add_column("ratio (ours/theirs)", overflow="fold")
    for number, result in enumerate(results, start=1):
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[result.met]
        ratio = result.ratio
        table.add_row(
            str(number),
            f"{result.benchmark}: {result.name}",
            _number(result.value, result.unit),
            _target(result),
            met,
            result.competitor or "-",
            _number(result.competitor_value, result.unit),
            "-" if ratio is None else f"{ratio:.3g} ({result.better} is better)",
        )
    console.print(table)
    for number, result in enumerate(results, start=1):
        if result.note:
            console.print(f"[dim]{number}.[/] {result.note}", highlight=False)


def _failure(topic: str, error: BaseException) -> Result:
    return Result(
        topic,
        "benchmark failed",
        None,
        "",
        "lower",
        note=f"{type(error).__name__}: {error}",
        details={"traceback": traceback.format_exc()},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", action="append", choices=TOPICS, help="run only TOPIC")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-install", action="store_true", help="never create .venv-openoa")
    args = parser.parse_args(argv)
    topics = tuple(args.only or TOPICS)
    # Piped output (make bench | tee) gets a wide table rather than an 80-column one.
    console = Console(width=None if sys.stdout.isatty() else 160)

    machine = machine_info()
    machine["noise_floor"] = noise_floor()
    console.print(
        f"[bold]{machine['cpu']}[/], {machine['logical_cpus']} logical CPUs, load "
        f"{machine['load_average_1_5_15'][0]:.2f}; fixed-work p99/p50 "
        f"{machine['noise_floor']['p99_over_p50']:.2f}"
    )

    fleet: Fleet | None = None
    openoa: OpenOAPython | None = None

    def the_fleet() -> Fleet:
        nonlocal fleet
        if fleet is None:
            console.print("reading and cleaning La Haute Borne ...")
            fleet = load_fleet()
        return fleet

    def the_openoa() -> OpenOAPython:
        nonlocal openoa
        if openoa is None:
            openoa = find_openoa(install=not args.no_install)
        return openoa

    runners: dict[str, Callable[[], list[Result]]] = {
        "assimilation": lambda: assimilation.run(the_fleet()),
        "river": lambda: river_comparison.run(the_fleet()),
        "openoa": lambda: openoa_comparison.run(the_fleet(), the_openoa()),
        "pipeline": lambda: pipeline.run(the_openoa()),
        "federated": lambda: federated.run(),
        "gossip": lambda: gossip.run(),
        "transfer": lambda: transfer.run(the_fleet()),
        "pymc": lambda: pymc_comparison.run(the_fleet()),
        "memory": lambda: memory.run(the_fleet()),
        "drift": lambda: drift.run(the_fleet()),
        "reservoirs": reservoirs.run,
    }
    results: list[Result] = []
    durations: dict[str, float] = {}
    for topic in topics:
        console.print(f"running [bold]{topic}[/] ...")
        start = time.perf_counter()
        try:
            results.extend(runners[topic]())
        except Exception as error:  # one broken benchmark must not hide the others
            results.append(_failure(topic, error))
        durations[topic] = time.perf_counter() - start

    machine["load_average_at_end"] = list(os.getloadavg())
    render(results, console)
    record: dict[str, Any] = {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "durations_s": durations,
        "results": [r.as_dict() for r in results],
    }
    args.output.write_text(json.dumps(record, indent=2, default=str) + "\n")
    met = [r for r in results if r.met is True]
    missed = [r for r in results if r.met is False]
    console.print(
        f"{len(met)} targets met, {len(missed)} missed"
        + (": " + "; ".join(r.name for r in missed) if missed else "")
        + f". Written to {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
