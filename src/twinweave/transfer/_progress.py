"""A progress bar for a fleet fit's rounds (the fits' ``progress=True``).

A fit runs until the relative change of its population falls below ``tol``, so the
number of rounds is not known ahead; how far the change has come down is. The bar runs
on a log scale from the first finite change (round 2's: round 1 starts from the prior)
down to ``tol``, beside the round and the change itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from twinweave.core._arguments import check_flag

RoundCallback = Callable[[int, float], None]
"""Told each round's number (from 1) and its population change."""


def converged_fraction(change: float, reference: float, tol: float) -> float:
    """How far ``change`` has come from ``reference`` down to ``tol``, on a log scale, in
    ``[0, 1]`` (1 once below ``tol``; 0 while not finite)."""
    if change < tol:
        return 1.0
    if not math.isfinite(change) or not reference > tol:
        return 0.0
    return min(max(math.log(reference / change) / math.log(reference / tol), 0.0), 1.0)


def _ignore(server_round: int, change: float) -> None:
    del server_round, change


@contextmanager
def round_progress(show: bool, label: str, tol: float | None) -> Iterator[RoundCallback]:
    """A callback for each round that draws the bar on stderr while the block runs;
    with ``show`` false it does nothing (and rich is not imported here). Without a
    ``tol`` the bar stays empty and the round and change are shown."""
    check_flag(show, "progress")
    if not show:
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("round {task.fields[server_round]}, change {task.fields[change]}"),
        TextColumn("" if tol is None else f"(stops below {tol:.2g})"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=1.0, server_round=0, change="-")
        reference = math.inf

        def update(server_round: int, change: float) -> None:
            nonlocal reference
            if not math.isfinite(reference) and math.isfinite(change):
                reference = change
            bar.update(
                task,
                completed=0.0 if tol is None else converged_fraction(change, reference, tol),
                server_round=server_round,
                change=f"{change:.2e}",
            )

        yield update
