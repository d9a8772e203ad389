"""OpenOA's side of the benchmarks, run by the Python that has OpenOA installed.

OpenOA pins older pandas and SciPy than twinweave needs, so it lives in its own virtual
environment (``.venv-openoa``) and this script runs there as a subprocess. It imports
nothing from twinweave or the benchmarks package.

Usage::

    python _openoa_worker.py fit IN_DIR OUT_DIR
        IN_DIR holds train.parquet and test.parquet (asset_id, wind_speed [m/s],
        power [kW]); writes OUT_DIR/{method}__{asset}.npy (test predictions) and
        OUT_DIR/fits.json (fit times, versions).
    python _openoa_worker.py pipeline SCADA_PARQUET OUT_JSON
        The plain pandas + OpenOA way of the pipeline benchmark: read, parse times,
        filter to normal operation, fit OpenOA's IEC curve per turbine.
"""

from __future__ import annotations

import importlib.metadata
import json
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RATED_POWER = 2050.0


def _peak_rss_kib() -> int:
    """Peak resident memory of this program [KiB]: ``VmHWM`` on Linux (``ru_maxrss``
    there also counts the parent's size when the child started)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("openoa", "numpy", "pandas", "scipy", "pygam", "statsmodels"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _methods() -> dict[str, Callable[[pd.Series, pd.Series], Callable[[Any], Any]]]:
    from openoa.utils import power_curve

    return {
        "IEC": lambda v, p: power_curve.IEC(v, p),
        "IEC interpolated": lambda v, p: power_curve.IEC(v, p, interpolate=True),
        "logistic-5": lambda v, p: power_curve.logistic_5_parametric(v, p),
        "GAM": lambda v, p: power_curve.gam(v, p),
    }


def fit(in_dir: Path, out_dir: Path) -> None:
    train = pd.read_parquet(in_dir / "train.parquet")
    test = pd.read_parquet(in_dir / "test.parquet")
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"versions": _versions(), "fits": []}
    for method, fit_curve in _methods().items():
        for asset, rows in train.groupby("asset_id", sort=True):
            speed = rows["wind_speed"].reset_index(drop=True)
            power = rows["power"].reset_index(drop=True)
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            with warnings.catch_warnings():
                # logistic-5's optimiser overflows in trial regions; OpenOA's own concern.
                warnings.simplefilter("ignore", RuntimeWarning)
                curve = fit_curve(speed, power)
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
            target = test.loc[test["asset_id"] == asset, "wind_speed"].to_numpy(np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                predicted = np.asarray(curve(target), dtype=np.float64)
            np.save(out_dir / f"{method}__{asset}.npy", predicted)
            record["fits"].append(
                {
                    "method": method,
                    "asset_id": str(asset),
                    "n_train": len(rows),
                    "fit_cpu_s": cpu,
                    "fit_wall_s": wall,
                }
            )
    (out_dir / "fits.json").write_text(json.dumps(record, indent=2))


def pipeline(source: Path, out_json: Path) -> None:
    """Read, clean and fit the way a pandas + OpenOA script does it, stage by stage."""
    from openoa.utils import filters, power_curve

    stages: dict[str, float] = {}
    start = time.perf_counter()
    frame = pd.read_parquet(source)
    frame["time"] = pd.to_datetime(frame["Date_time"], utc=True)
    frame = frame.rename(
        columns={
            "Wind_turbine_name": "asset_id",
            "Ws_avg": "wind_speed",
            "P_avg": "power",
            "Ot_avg": "temp_air",
            "Ba_avg": "pitch",
        }
    )
    frame.loc[frame["temp_air"] < -273.0, "temp_air"] = np.nan
    stages["read_s"] = time.perf_counter() - start

    mark = time.perf_counter()
    wind, power, temp, pitch = (
        frame["wind_speed"],
        frame["power"],
        frame["temp_air"],
        frame["pitch"],
    )
    # The same checks as twinweave's normal_operation_checks, each on the whole frame.
    bad = wind.isna() | power.isna()
    bad |= ~wind.between(0.0, 40.0) & wind.notna()
    bad |= ~power.between(-100.0, 1.05 * RATED_POWER) & power.notna()
    bad |= ~temp.between(-40.0, 50.0) & temp.notna()
    bad |= frame.duplicated(["asset_id", "time"], keep=False)
    ordered = frame.sort_values(["asset_id", "time"], kind="stable")
    stuck = pd.Series(False, index=frame.index)
    for _, rows in ordered.groupby("asset_id", sort=False):
        stuck.loc[rows.index] = filters.unresponsive_flag(rows["wind_speed"], threshold=3)
    bad |= stuck
    bad |= (wind >= 4.0) & (power <= 0.0)
    bad |= (pitch > 5.0) & (power < 0.9 * RATED_POWER) & (wind > 3.5)
    clean = frame.loc[~bad].copy()
    clean["power"] = clean["power"].clip(0.0, RATED_POWER)
    stages["clean_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    n_fitted = 0
    for _, rows in clean.groupby("asset_id", sort=True):
        power_curve.IEC(rows["wind_speed"], rows["power"])
        n_fitted += 1
    stages["fit_s"] = time.perf_counter() - mark
    stages["total_s"] = time.perf_counter() - start
    out_json.write_text(
        json.dumps(
            {
                "stages": stages,
                "n_raw": len(frame),
                "n_observations": len(clean),
                "n_fitted": n_fitted,
                "peak_rss_kib": _peak_rss_kib(),
                "versions": _versions(),
            },
            indent=2,
        )
    )


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in {"fit", "pipeline"}:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "fit":
        fit(Path(argv[2]), Path(argv[3]))
    else:
        pipeline(Path(argv[2]), Path(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
