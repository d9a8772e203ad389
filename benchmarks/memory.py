"""The turbine twins' memory (forgetting factor), chosen on 2014 alone.

:func:`twinweave.domains.wind.select_forgetting` fits every candidate twin on January-June
2014 and scores its week-ahead predictions through July-December 2014 (prequential log
score, pooled over the four turbines); the longest memory within one standard error of
the best is chosen. 2015 is not looked at. ``twinweave.demo.FORGETTING`` is the value
this chose; run ``python -m benchmarks.memory`` to see the table again.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import pandas as pd

from benchmarks._data import Fleet, load_fleet
from benchmarks._harness import Result
from twinweave.demo import FORGETTING
from twinweave.domains.wind import select_forgetting

TOPIC = "memory"
VALIDATE_FROM = pd.Timestamp("2014-07-01", tz="UTC")
UNTIL = pd.Timestamp("2015-01-01", tz="UTC")


def run(fleet: Fleet) -> list[Result]:
    """One result: the chosen memory [readings], with every candidate's score."""
    start = time.perf_counter()
    selection = select_forgetting(
        fleet.specs, fleet.observations, validate_from=VALIDATE_FROM, until=UNTIL
    )
    elapsed = time.perf_counter() - start
    table = selection.to_frame()
    agrees = math.isclose(selection.forgetting, FORGETTING, rel_tol=0.0, abs_tol=1e-12)
    return [
        Result(
            TOPIC,
            "memory chosen by prequential log score on 2014 [readings]",
            selection.memory,
            "readings",
            "higher",
            note=(
                "longest memory within one standard error of the best week-ahead log score"
                f" (July-December 2014); twinweave.demo.FORGETTING "
                f"{'matches' if agrees else 'DIFFERS: update it'}"
            ),
            details={"seconds": elapsed, "candidates": table.to_dict(orient="records")},
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.parse_args(argv)
    fleet = load_fleet()
    selection = select_forgetting(
        fleet.specs,
        fleet.observations,
        validate_from=VALIDATE_FROM,
        until=UNTIL,
        progress=print,
    )
    print(selection.to_frame().to_string(index=False))
    print(f"chosen: memory {selection.memory:g} readings, forgetting {selection.forgetting!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
