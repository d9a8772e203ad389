"""The drift check on the real 2014 data: what docs/RESULTS.md says it shows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmarks._data import load_fleet

from benchmarks import drift


def test_robust_spread_of_a_standard_normal_is_one() -> None:
    z = np.random.default_rng(3).standard_normal(200_000)
    assert drift._robust_spread(z) == pytest.approx(1.0, abs=0.01)
    assert drift._robust_spread(2.0 * z) == pytest.approx(2.0, abs=0.02)


@pytest.mark.slow
def test_frozen_twins_lose_calibration_in_the_second_quarter_ahead() -> None:
    fleet = load_fleet()
    readings, by_bin = drift.frozen_residuals(fleet)
    ahead = fleet.observations[
        (fleet.observations["time"] >= drift.FIT_UNTIL)
        & (fleet.observations["time"] < drift.PREDICT_UNTIL)
    ]
    assert len(readings) == len(ahead)
    assert sorted(readings["month"].unique()) == list(range(7, 13))
    early = readings["month"] < 10
    # One to three months ahead the twins cover a little more than the nominal 0.90 in
    # every month at every turbine (0.925-0.952 measured; RESULTS.md: 0.93-0.95)...
    monthly_coverage = readings[early].groupby(["asset_id", "month"])["covered"].mean()
    assert monthly_coverage.between(0.92, 0.96).all(), monthly_coverage
    # ...four to six months ahead they are not, and their residuals are wider.
    assert readings.loc[~early, "covered"].mean() < 0.87
    monthly = drift.monthly_table(readings)
    assert (monthly.loc["spread"][12] > monthly.loc["spread"][8]).all()
    assert by_bin.shape == (2 * len(fleet.asset_ids), drift.BIN_EDGES.size - 1)
    assert np.nanmax(by_bin.to_numpy()) <= 1.0


@pytest.mark.slow
def test_the_result_is_written_as_json() -> None:
    (result,) = drift.run(load_fleet())
    text = json.dumps(result.details)
    assert "R80711 Oct-Dec" in text and "coverage R80711" in text
    assert 0.0 < result.value < 1.0
