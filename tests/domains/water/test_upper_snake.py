"""Reservoir twins on the Upper Snake River's real daily records (2009-2016)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from twinweave.domains.water import UPPER_SNAKE_RESERVOIRS, load_upper_snake, upper_snake_path
from twinweave.models import StateSpaceEmulator
from twinweave.models._state_space import kalman_filter

MINIDOKA = UPPER_SNAKE_RESERVOIRS[3]


def columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: frame[name].to_numpy() for name in ("storage", "inflow", "outflow")}


def minidoka_twin(first_storage: float, **variances: float | None) -> StateSpaceEmulator:
    """Minidoka's mass balance from a vague start; ``variances`` as ``reservoir`` takes."""
    return StateSpaceEmulator.reservoir(
        capacity=MINIDOKA.capacity, initial_storage=first_storage, initial_var=1e16, **variances
    )


def test_every_reservoir_reads_through_the_data_pathway_day_by_day() -> None:
    for reservoir in UPPER_SNAKE_RESERVOIRS:
        frame = load_upper_snake(reservoir.asset_id)
        assert len(frame) == 2922, reservoir.name
        assert (frame["asset_id"] == reservoir.asset_id).all()
        local = frame["time"].dt.tz_convert("America/Denver")
        assert (local.dt.normalize() == local).all()  # local midnights
        assert (local.dt.date.diff().iloc[1:] == pd.Timedelta(days=1)).all()
        values = frame[["storage", "inflow", "outflow"]].to_numpy()
        assert np.isfinite(values).all()
        # Storage is within the dam's capacity from gages.csv, in m^3 (not million m^3).
        assert frame["storage"].min() > 0 and frame["storage"].max() <= reservoir.capacity


def test_a_wrong_reservoir_is_named() -> None:
    with pytest.raises(ValueError, match=r"asset_id: expected one of .*'ID00275'.*got 'ID0'"):
        upper_snake_path("ID0")


@pytest.mark.parametrize("unmeasured_flow", [False, True])
def test_the_filters_log_likelihood_equals_statsmodels(unmeasured_flow: bool) -> None:
    """A mass balance is a local level (with the unmeasured flow, a local linear trend)
    of storage minus the cumulative gauged balance; statsmodels' Kalman filter, started
    from the same state, gives the same likelihood on Minidoka's record."""
    frame = load_upper_snake(MINIDOKA.asset_id)
    data = columns(frame)
    twin = minidoka_twin(
        data["storage"][0],
        process_var=4e10,
        noise_var=1e10,
        unmeasured_flow_var=1e11 if unmeasured_flow else None,
    )
    model = twin.model
    controls = np.stack([data["inflow"], data["outflow"]], axis=-1)
    ours = float(kalman_filter(model, data["storage"], controls=controls).log_likelihood)

    level = data["storage"] - np.cumsum(data["inflow"] - data["outflow"])
    theirs = sm.tsa.UnobservedComponents(
        level, level="local linear trend" if unmeasured_flow else "local level"
    )
    # Our initial state is one step before the first reading; theirs is the first step's.
    transition = model.transition
    theirs.ssm.initialize_known(
        transition @ model.initial_mean,
        transition @ model.initial_cov @ transition.T + model.process_noise,
    )
    theirs.ssm.loglikelihood_burn = 0
    params = [1e10, 4e10] + ([1e11] if unmeasured_flow else [])
    assert theirs.param_names[:2] == ["sigma2.irregular", "sigma2.level"]
    assert ours == pytest.approx(theirs.loglike(np.array(params)), rel=1e-12)


def test_em_reaches_the_maximum_statsmodels_finds_at_minidoka() -> None:
    """Minidoka's storage noise heads for zero, where plain EM creeps (200 plain
    iterations stopped 7 nats short); accelerated EM reaches statsmodels' maximum
    likelihood, both evaluated by twinweave's filter from the same initial state."""
    frame = load_upper_snake(MINIDOKA.asset_id)
    training = frame[frame["time"] < pd.Timestamp("2013-01-01", tz="America/Denver")]
    data = columns(training)
    start = minidoka_twin(
        data["storage"][0],
        process_var=1e12,
        noise_var=1e12,
        unmeasured_flow_var=1e10,
        initial_unmeasured_flow_var=1e14,
    )
    fitted = start.estimate_noise(data, n_iterations=300, diagonal=True)

    level = data["storage"] - np.cumsum(data["inflow"] - data["outflow"])
    # In million m^3, as statsmodels' optimiser expects numbers of order one.
    found = sm.tsa.UnobservedComponents(level / 1e6, level="local linear trend").fit(disp=False)
    noise, level_var, flow_var = 1e12 * found.params
    theirs = start.model._with(
        process_noise=np.diag([level_var, flow_var]), observation_noise=np.array([[noise]])
    )
    controls = np.stack([data["inflow"], data["outflow"]], axis=-1)

    def log_likelihood(model: object) -> float:
        return float(kalman_filter(model, data["storage"], controls=controls).log_likelihood)

    assert log_likelihood(fitted.model) > log_likelihood(theirs) - 0.5
    # The unmeasured flow's day-to-day change, which carries the fit: the same.
    assert np.sqrt(fitted.process_noise[1, 1]) == pytest.approx(np.sqrt(flow_var), rel=0.02)


@pytest.mark.parametrize("split", ["2013-03-11", "2013-11-04"])
def test_the_record_in_two_halves_is_taken_across_a_daylight_saving_change(split: str) -> None:
    """Local midnights are 23 h (spring) or 25 h (autumn) apart in UTC where the second
    half starts: the halves continue, and equal one batch; a missed week is refused."""
    frame = load_upper_snake(MINIDOKA.asset_id)
    first = frame["time"] < pd.Timestamp(split, tz="America/Denver")
    halves = [frame[first], frame[~first]]
    step = halves[1]["time"].iloc[0] - halves[0]["time"].iloc[-1]
    assert step == pd.Timedelta(hours=23 if split.endswith("03-11") else 25)

    def with_times(part: pd.DataFrame) -> dict[str, np.ndarray]:
        return columns(part) | {"time": part["time"].to_numpy()}

    def twin() -> StateSpaceEmulator:
        return minidoka_twin(frame["storage"].iloc[0], process_var=4e10, noise_var=1e10)

    batch = twin().update(with_times(frame))
    two = twin().update(with_times(halves[0])).update(with_times(halves[1]))
    np.testing.assert_array_equal(two.mean_, batch.mean_)
    np.testing.assert_array_equal(two.cov_, batch.cov_)
    assert two.log_likelihood_ == pytest.approx(batch.log_likelihood_, rel=1e-12)
    assert two.last_time_ == batch.last_time_ == frame["time"].iloc[-1].timestamp()
    late = twin().update(with_times(halves[0]))
    with pytest.raises(ValueError, match=r"give the 7 missed readings as rows with NaN"):
        late.update(with_times(halves[1].iloc[7:]))
    with pytest.raises(ValueError, match=r"a time already assimilated"):
        late.update(with_times(halves[0].iloc[-30:]))
