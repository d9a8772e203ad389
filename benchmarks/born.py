"""A twin born into its fleet, against one alone, on La Haute Borne.

Each turbine in turn is the new one, with its first day, week or month of 2014 or all
of 2014; the other three are summarised (statistics by calendar week, from emulators
configured as their twins are) and fitted as a fleet (``fit_central``, tol 1e-4). The
new turbine's twin is built as the CLI builds it (``build_turbine_twin``, memory 13,140
readings), once from its fleet's population (``population=``) and once alone, updated
with its readings and scored on its 2015 normal operation. A last line per turbine
checks that a born twin without readings predicts what the fleet predicts for a new
twin. ``python -m benchmarks.born`` prints the table (about 70 s).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from benchmarks._data import Fleet, load_fleet
from twinweave.demo import FORGETTING, leave_one_out_fits
from twinweave.domains.wind import build_turbine_twin, model_inputs, turbine_emulator
from twinweave.transfer import (
    fleet_emulator,
    population_twins,
    transfer_scores,
)

HISTORIES = {"1 day": "2014-01-02", "1 week": "2014-01-08", "1 month": "2014-02-01"}


def rows(fleet: Fleet) -> list[str]:
    """The table's rows, a turbine and history at a time (markdown)."""
    out = []
    year_2014 = {a: fleet.readings(a, 2014) for a in fleet.asset_ids}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the round limit, said by fit_central
        fits = leave_one_out_fits(fleet.specs, year_2014)
    for new in fleet.asset_ids:
        spec = fleet.specs[new]
        own = year_2014[new]
        design = turbine_emulator(spec, own)
        population = fits[new].population
        assert population is not None  # a central fit always has one
        target = fleet.inputs(new, 2015)
        histories = {
            **{h: own[own["time"] < until] for h, until in HISTORIES.items()},
            "1 year": own,
        }
        for history, training in histories.items():
            cells = []
            for start in (population, None):
                twin = build_turbine_twin(spec, training, forgetting=FORGETTING, population=start)
                twin.update(model_inputs(training, spec.rated_power))
                s = transfer_scores(twin.predict(target), target["power"])
                cells += [f"{s['nmse']:.4f}", f"{s['crps']:.1f}", f"{s['coverage']:.3f}"]
            out.append(f"| {new} | {history} | {len(training)} | " + " | ".join(cells) + " |")
        # Before any reading, the born twin is the fleet's new twin.
        born = fleet_emulator(design, population).predict(target)
        new_twin = population_twins(population)["default"].predict(target, design)
        gap = float(np.max(np.abs(born.mean - new_twin.mean)))
        out.append(f"<!-- {new}: no readings, max |born - fleet's new twin| mean {gap:.2e} kW -->")
    return out


def main() -> int:
    started = time.perf_counter()
    fleet = load_fleet()
    print(
        "| new turbine | history | readings | born: NMSE | CRPS [kW] | 90 % coverage "
        "| alone: NMSE | CRPS [kW] | 90 % coverage |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows(fleet):
        print(row, flush=True)
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
