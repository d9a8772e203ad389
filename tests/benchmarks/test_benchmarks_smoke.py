"""Each benchmark on tiny inputs, for correctness only: no timing is asserted here.

The numbers themselves come from ``make bench`` on the full data.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks.__main__ import render
from benchmarks._data import Fleet, load_fleet
from benchmarks._harness import Result, machine_info, measure, per_call
from benchmarks._openoa_env import OpenOAPython
from rich.console import Console

from benchmarks import assimilation, openoa_comparison, pipeline, river_comparison
from twinweave.domains.wind import scada_path

N_EACH_END = 6_000
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first and last rows of the SCADA file: some of 2014 and some of 2015."""
    frame = pd.read_parquet(scada_path())
    tiny = pd.concat([frame.iloc[:N_EACH_END], frame.iloc[-N_EACH_END:]], ignore_index=True)
    path = tmp_path_factory.mktemp("scada") / "tiny.parquet"
    tiny.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def tiny_fleet(tiny_source: Path) -> Fleet:
    return load_fleet(tiny_source)


def test_tiny_fleet_keeps_normal_operation_of_both_years(tiny_fleet: Fleet) -> None:
    assert tiny_fleet.asset_ids == ["R80711", "R80721", "R80736", "R80790"]
    assert len(tiny_fleet.raw) == 2 * N_EACH_END
    assert 0 < len(tiny_fleet.observations) < len(tiny_fleet.raw)
    for year in (2014, 2015):
        columns = tiny_fleet.inputs("R80711", year)
        assert len(columns["power"]) > 100
        assert columns["power"].min() >= 0.0
        assert columns["power"].max() <= 2050.0


def test_assimilation_reports_every_number(tiny_fleet: Fleet) -> None:
    results = assimilation.run(tiny_fleet, n_repeats=1, n_single=50, n_warmup=10)
    names = [r.name for r in results]
    assert len(names) == 4
    assert all(r.value is not None and math.isfinite(r.value) and r.value > 0 for r in results)
    assert results[0].details["n_readings"] == len(tiny_fleet.observations)
    assert results[2].details["n_readings"] == 50
    assert all(r.met is not None for r in results if r.target is not None)


def test_river_posterior_mean_agrees_with_twinweave(tiny_fleet: Fleet) -> None:
    batch, single, agreement = river_comparison.run(tiny_fleet, n_readings=1_500, n_repeats=1)
    # The real contract: river, fed twinweave's design rows with alpha = ridge and
    # beta = 1 / sigma2, lands on twinweave's conjugate posterior mean.
    assert agreement.value is not None and agreement.value <= 1e-6
    assert agreement.details["twinweave_vs_exact"] <= 1e-8
    assert agreement.details["predict_one_vs_twinweave"] <= 1e-6
    # Streaming the readings one at a time gives the batch posterior.
    assert single.details["streamed_vs_batch_mean"] <= 1e-9
    assert batch.ratio is not None and batch.ratio > 0
    available = len(tiny_fleet.inputs(tiny_fleet.asset_ids[0], 2014)["power"])
    assert batch.details["n_readings"] == min(1_500, available)


def test_river_rows_hold_only_nonzero_features() -> None:
    rows = river_comparison.sparse_rows(np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]))
    assert rows == [{1: 2.0}, {0: 1.0, 2: 3.0}]


def test_openoa_comparison_without_openoa_still_scores_twinweave(tiny_fleet: Fleet) -> None:
    missing = OpenOAPython(None, "not installed in this test")
    results = openoa_comparison.run(tiny_fleet, missing, n_repeats=1)
    assert len(results) == 2 * (len(openoa_comparison.OPENOA_METHODS) + 1)
    assert all(r.competitor_value is None and r.ratio is None for r in results)
    assert all("OpenOA unavailable: not installed" in r.note for r in results)
    methods = results[0].details["methods"]
    for name in ("twinweave emulator", "twinweave MethodOfBins"):
        # A fitted power curve misses 10-minute power by tens of kW, not by the rating.
        assert 5.0 < methods[name]["rmse_kw"] < 400.0
        assert set(methods[name]["rmse_kw_per_turbine"]) == set(tiny_fleet.asset_ids)


def test_rmse() -> None:
    assert openoa_comparison.rmse(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(
        math.sqrt(2.0)
    )


def test_pipeline_child_ingests_cleans_and_fits(tiny_source: Path, tmp_path: Path) -> None:
    result = pipeline.twinweave_pipeline(tiny_source, tmp_path / "store.duckdb")
    assert result["n_raw"] == 2 * N_EACH_END
    assert result["n_fitted"] == 4
    assert 0 < result["n_observations"] < result["n_raw"]
    assert set(result["stages"]) == {"read_s", "clean_s", "ingest_s", "fit_s", "total_s"}
    assert result["peak_rss_kib"] > 0


def _child_peak_mib(tmp_path: Path, code: str) -> float:
    out = tmp_path / "peak.txt"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from benchmarks._harness import "
        f"peak_rss_kib; {code}; open(sys.argv[2], 'w').write(str(peak_rss_kib()))"
    )
    done = pipeline.run_measured([sys.executable, "-c", script, str(REPO), str(out)])
    assert done.returncode == 0, done.stderr
    return int(out.read_text()) / 1024


def test_a_childs_peak_memory_is_its_own(tmp_path: Path) -> None:
    # 2**25 doubles are 256 MiB: only the second child's peak holds them, whatever the
    # size of this test process.
    small = _child_peak_mib(tmp_path, "pass")
    large = _child_peak_mib(tmp_path, "import numpy; a = numpy.ones(2**25); a += 1")
    assert small < 100.0
    assert large - small > 200.0
    failed = pipeline.run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.returncode == 3


def test_result_reads_targets_and_ratios() -> None:
    faster = Result(
        "t",
        "rate",
        200.0,
        "1/s",
        "higher",
        target=50.0,
        target_on="ratio",
        competitor="c",
        competitor_value=2.0,
    )
    assert faster.ratio == 100.0 and faster.met is True
    slow = Result("t", "p99", 120.0, "us", "lower", target=100.0)
    assert slow.met is False and slow.ratio is None
    unmeasured = Result("t", "x", None, "s", "lower", target=1.0)
    assert unmeasured.met is None
    out = io.StringIO()
    render([faster, slow, unmeasured], Console(file=out, width=200))
    table = out.getvalue()
    assert "ratio >= 50" in table and "100 (higher is better)" in table


def test_timing_helpers_count_every_call() -> None:
    calls: list[int] = []
    timing = measure(lambda: calls.append(1), repeats=3, setup=lambda: calls.append(0))
    assert calls == [0, 1, 0, 1, 0, 1]
    assert len(timing.cpu) == len(timing.wall) == 3
    latencies = per_call(lambda item: item, range(10))
    assert latencies.cpu.shape == (10,) and (latencies.wall >= 0).all()
    info = machine_info()
    assert info["logical_cpus"] >= 1 and "numpy" in info["packages"]
