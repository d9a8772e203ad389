"""Choosing a twin's memory by prequential log score, on synthetic turbines whose drift
is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from twinweave.domains.wind import (
    TurbineSpec,
    forgetting_for,
    generic_power_curve,
    select_forgetting,
)

RATED = 2050.0
WEEKS = 8
START = pd.Timestamp("2014-01-06", tz="UTC")
VALIDATE_FROM = START + pd.Timedelta(weeks=WEEKS // 2)
UNTIL = START + pd.Timedelta(weeks=WEEKS)


def turbine(asset_id: str, drift: float, seed: int) -> pd.DataFrame:
    """Eight weeks of 10-minute readings; power scales linearly by ``1 + drift`` over them.

    Winds of 5-11 m/s keep power clear of 0 and rated, so that the readings are exactly
    the Gaussian model's (no point masses at the bounds).
    """
    rng = np.random.default_rng(seed)
    n = WEEKS * 1008
    wind_speed = rng.uniform(5.0, 11.0, n)
    scale = 1.0 + drift * np.linspace(0.0, 1.0, n)
    power = generic_power_curve(wind_speed, RATED) * scale + rng.normal(0.0, 30.0, n)
    return pd.DataFrame(
        {
            "asset_id": asset_id,
            "time": pd.date_range(START, periods=n, freq="10min"),
            "wind_speed": wind_speed,
            "power": np.clip(power, 0.0, RATED),
            "temp_air": np.full(n, 10.0),
        }
    )


def specs(*names: str) -> dict[str, TurbineSpec]:
    return {name: TurbineSpec(name, RATED, 100.0) for name in names}


def test_a_steady_turbine_keeps_its_whole_memory() -> None:
    observations = pd.concat([turbine("A", 0.0, 1), turbine("B", 0.0, 2)], ignore_index=True)
    selection = select_forgetting(
        specs("A", "B"),
        observations,
        validate_from=VALIDATE_FROM,
        until=UNTIL,
        memories=(math.inf, 1000.0),
    )
    assert selection.memory == math.inf
    assert selection.forgetting == 1.0
    frame = selection.to_frame()
    assert frame["chosen"].tolist() == [True, False]
    assert (frame["n_readings"] == 2 * 4 * 1008).all()


def test_a_drifting_turbine_gets_a_short_memory() -> None:
    # -20 % over eight weeks: a twin that remembers everything lags the turbine.
    observations = pd.concat([turbine("A", -0.2, 3), turbine("B", -0.2, 4)], ignore_index=True)
    selection = select_forgetting(
        specs("A", "B"),
        observations,
        validate_from=VALIDATE_FROM,
        until=UNTIL,
        memories=(math.inf, 1000.0),
    )
    assert selection.memory == 1000.0
    best, other = sorted(selection.scores, key=lambda s: -s.log_score)
    assert best.memory == 1000.0
    # Clearly better, not within noise: more than two standard errors.
    assert other.difference < -2.0 * other.standard_error
    # The long memory's intervals are too narrow for a curve that moved.
    assert other.coverage90 < best.coverage90


def test_bad_arguments_are_named() -> None:
    observations = turbine("A", 0.0, 5)
    with pytest.raises(ValueError, match="memory: expected more than 1 reading"):
        forgetting_for(0.5)
    with pytest.raises(ValueError, match="validate_from: expected a time before until"):
        select_forgetting(specs("A"), observations, validate_from=UNTIL, until=VALIDATE_FROM)
    with pytest.raises(ValueError, match="asset 'Z': expected readings both before"):
        select_forgetting(specs("Z"), observations, validate_from=VALIDATE_FROM, until=UNTIL)
    assert forgetting_for(math.inf) == 1.0
    assert forgetting_for(100.0) == pytest.approx(0.99)
