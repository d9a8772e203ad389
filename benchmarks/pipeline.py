"""Ingest, clean, store and fit of the two La Haute Borne years, in a fresh process.

Target (issue): ingest, clean and fit of the full two years (420,480 rows) in <= 15 s,
peak RSS <= 1 GiB.

The child process does what ``twinweave`` does with a new SCADA file: ``read_source``
with ``LA_HAUTE_BORNE``, ``clean`` with ``normal_operation_checks(2050)``,
``Store.ingest`` into a new DuckDB file (raw readings, observations, quarantine and
their provenance), then one ``power_curve_emulator`` per turbine fitted on
``store.observations(asset_id)`` (update and posterior). Wall time is measured by the
parent around the whole process (interpreter start and imports included); peak RSS is
the child's own high-water mark (``VmHWM``, read by the child at the end): the
``ru_maxrss`` that ``os.wait4`` or ``getrusage`` report for a child on Linux includes the
parent's size at the time it was started, which here is the benchmark runner's.

Beside it, the plain pandas + OpenOA way (in OpenOA's environment): read the Parquet
file, parse the times, apply the same filters with pandas and OpenOA's
``unresponsive_flag``, fit OpenOA's IEC curve per turbine. It keeps nothing: no store,
no quarantine, no provenance.

Run the child alone with ``python -m benchmarks.pipeline --child OUT.json STORE.duckdb
[SOURCE]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import REPO_ROOT, Result, peak_rss_kib
from benchmarks._openoa_env import WORKER, OpenOAPython

TOPIC = "pipeline"
RATED_POWER = 2050.0


def twinweave_pipeline(source: Path, store_path: Path) -> dict[str, Any]:
    """Read, clean, store and fit; seconds per stage and counts."""
    from twinweave.data import Store, clean, read_source
    from twinweave.domains.wind import (
        LA_HAUTE_BORNE,
        TurbineSpec,
        asset_table,
        model_inputs,
        normal_operation_checks,
        power_curve_emulator,
        site_mean_density,
    )

    stages: dict[str, float] = {}
    start = time.perf_counter()
    info, raw = read_source(source, LA_HAUTE_BORNE)
    stages["read_s"] = time.perf_counter() - start

    mark = time.perf_counter()
    observations, quarantine = clean(raw, normal_operation_checks(RATED_POWER))
    stages["clean_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    with Store(store_path) as store:
        store.ingest(info, raw, observations, quarantine)
        stages["ingest_s"] = time.perf_counter() - mark
        del raw, observations, quarantine

        mark = time.perf_counter()
        elevation = {str(r.asset_id): float(r.elevation) for r in asset_table().itertuples()}
        n_fitted = 0
        n_assimilated = 0
        for asset_id in store.asset_ids():
            spec = TurbineSpec(asset_id, RATED_POWER, elevation.get(asset_id, 0.0))
            readings = store.observations(asset_id)
            emulator = power_curve_emulator(
                spec.rated_power,
                site_pressure=spec.site_pressure,
                fallback_density=site_mean_density(readings, spec.site_pressure),
            )
            emulator.update(model_inputs(readings, spec.rated_power))
            emulator.posterior_mean_  # noqa: B018 - the property runs the fit
            n_fitted += 1
            n_assimilated += len(readings)
        stages["fit_s"] = time.perf_counter() - mark
    stages["total_s"] = time.perf_counter() - start
    return {
        "stages": stages,
        "n_raw": info.n_rows,
        "n_observations": n_assimilated,
        "n_fitted": n_fitted,
        "peak_rss_kib": peak_rss_kib(),
    }


@dataclass(frozen=True)
class ProcessRun:
    """A child process's exit code, wall time [s] and ``ru_maxrss`` from ``os.wait4``
    [KiB] (on Linux at least the parent's size when the child started)."""

    returncode: int
    wall_s: float
    wait4_maxrss_kib: int
    stderr: str


def run_measured(command: list[str], *, env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``command``; its exit code, wall time and ``os.wait4`` resource usage."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    return ProcessRun(process.returncode, wall, int(usage.ru_maxrss), text)


def run(openoa: OpenOAPython, *, source: Path | None = None) -> list[Result]:
    """Measure the twinweave pipeline and the pandas + OpenOA one, each in a fresh process."""
    from twinweave.domains.wind import scada_path

    scada = scada_path() if source is None else source
    with tempfile.TemporaryDirectory(prefix="twinweave-pipeline-") as folder:
        work = Path(folder)
        ours = run_measured(
            [
                sys.executable,
                "-m",
                "benchmarks.pipeline",
                "--child",
                str(work / "twinweave.json"),
                str(work / "store.duckdb"),
                str(scada),
            ]
        )
        if ours.returncode != 0:
            raise RuntimeError(f"pipeline child exited {ours.returncode}:\n{ours.stderr[-3000:]}")
        child = json.loads((work / "twinweave.json").read_text())
        store_bytes = (work / "store.duckdb").stat().st_size

        theirs: ProcessRun | None = None
        their_child: dict[str, Any] = {}
        problem = openoa.problem
        if openoa.python is not None:
            theirs = run_measured(
                [str(openoa.python), str(WORKER), "pipeline", str(scada), str(work / "oa.json")]
            )
            if theirs.returncode == 0:
                their_child = json.loads((work / "oa.json").read_text())
            else:
                problem = f"OpenOA pipeline exited {theirs.returncode}:\n{theirs.stderr[-3000:]}"
                theirs = None

    competitor = "pandas + OpenOA IEC (no store)"
    note_openoa = f"; OpenOA unavailable: {problem.splitlines()[0]}" if problem else ""
    stages = child["stages"]
    details = {
        "source": str(scada),
        "twinweave": {
            **child,
            "wall_s": ours.wall_s,
            "wait4_maxrss_kib": ours.wait4_maxrss_kib,
            "store_bytes": store_bytes,
        },
        "pandas_openoa": {
            **their_child,
            **(
                {}
                if theirs is None
                else {"wall_s": theirs.wall_s, "wait4_maxrss_kib": theirs.wait4_maxrss_kib}
            ),
        },
    }
    if problem:
        details["openoa_problem"] = problem
    return [
        Result(
            TOPIC,
            "ingest + clean + store + fit, two years (wall)",
            ours.wall_s,
            "s",
            "lower",
            target=15.0,
            competitor=competitor,
            competitor_value=None if theirs is None else theirs.wall_s,
            note=f"{child['n_raw']:,} rows, fresh process incl. start-up; read "
            f"{stages['read_s']:.1f} s, clean {stages['clean_s']:.1f} s, ingest "
            f"{stages['ingest_s']:.1f} s, fit {stages['fit_s']:.1f} s" + note_openoa,
            details=details,
        ),
        Result(
            TOPIC,
            "the same, the work alone (start-up and imports not counted)",
            stages["total_s"],
            "s",
            "lower",
            competitor=competitor,
            competitor_value=their_child["stages"]["total_s"] if their_child else None,
            note="each side's own clock around its stages: OpenOA's environment takes "
            "seconds longer to start and import, which the wall times above include; "
            "twinweave's ingest also writes the store, which the other keeps none of" + note_openoa,
        ),
        Result(
            TOPIC,
            "peak RSS of the same",
            child["peak_rss_kib"] / 1024,
            "MiB",
            "lower",
            target=1024.0,
            competitor=competitor,
            competitor_value=their_child["peak_rss_kib"] / 1024 if their_child else None,
            note="the child's own VmHWM (its peak resident memory)" + note_openoa,
        ),
    ]


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5) or argv[1] != "--child":
        print(__doc__, file=sys.stderr)
        return 2
    from twinweave.domains.wind import scada_path

    source = Path(argv[4]) if len(argv) == 5 else scada_path()
    result = twinweave_pipeline(source, Path(argv[3]))
    Path(argv[2]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
