"""The new-turbine experiment: its scores, and its targets on La Haute Borne."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twinweave.core import CensoredNormal, coverage_by_bin, scores
from twinweave.data import clean, read_source
from twinweave.domains.wind import (
    LA_HAUTE_BORNE,
    TurbineSpec,
    asset_table,
    normal_operation_checks,
    scada_path,
)
from twinweave.transfer import (
    TransferRow,
    joint_log_likelihood,
    new_turbine_experiment,
    transfer_scores,
)


def test_joint_log_likelihood_is_the_joint_gaussian_inside_the_bounds() -> None:
    rng = np.random.default_rng(0)
    n, k = 40, 3
    loc = rng.normal(50.0, 10.0, n)
    noise = rng.uniform(1.0, 4.0, n)
    factor = rng.normal(0.0, 2.0, (n, k))
    y = loc + rng.normal(0.0, 3.0, n)
    predictive = CensoredNormal(loc, noise, lower=0.0, upper=100.0, factor=factor)
    expected = stats.multivariate_normal(loc, np.diag(noise) + factor @ factor.T).logpdf(y)
    assert joint_log_likelihood(predictive, y) == pytest.approx(expected / n, rel=1e-10)
    # Without a shared factor it is the mean of the marginal log densities.
    independent = CensoredNormal(loc, noise, lower=0.0, upper=100.0)
    assert joint_log_likelihood(independent, y) == pytest.approx(
        float(np.mean(independent.log_prob(y))), rel=1e-12
    )
    # A point at a bound adds its probability mass.
    at_bound = y.copy()
    at_bound[0] = 0.0
    inside = CensoredNormal(loc[1:], noise[1:], lower=0.0, upper=100.0, factor=factor[1:])
    mass = predictive[np.array([0])].log_prob(np.array([0.0]))[0]
    assert joint_log_likelihood(predictive, at_bound) == pytest.approx(
        (joint_log_likelihood(inside, y[1:]) * (n - 1) + mass) / n, rel=1e-10
    )


def test_scores_name_every_metric() -> None:
    predictive = CensoredNormal([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    result = transfer_scores(predictive, [1.0, 2.5, 10.0])
    assert set(result) == {"nmse", "crps", "joint_log_likelihood", "coverage", "interval_width"}
    assert result["coverage"] == pytest.approx(2 / 3)
    assert result["interval_width"] == pytest.approx(2 * 1.6448536, rel=1e-6)


def test_scores_refuse_observations_they_cannot_score() -> None:
    predictive = CensoredNormal([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    # A NaN used to count as a reading outside the interval (coverage 2/3 here).
    with pytest.raises(ValueError, match=r"y: expected finite values, got 1 not finite .*index 1"):
        transfer_scores(predictive, [1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match=r"y: expected shape \(3,\), got \(2,\)"):
        transfer_scores(predictive, [1.0, 2.0])
    with pytest.raises(ValueError, match="y: expected at least two different values"):
        transfer_scores(predictive, [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="y: expected at least two different values"):
        transfer_scores(CensoredNormal(np.zeros(0), np.ones(0)), np.zeros(0))
    with pytest.raises(ValueError, match=r"x: expected shape \(3,\)"):
        coverage_by_bin(predictive, [1.0, 2.0, 3.0], [5.0, 6.0], [0.0, 10.0])
    with pytest.raises(ValueError, match="y: expected finite values"):
        scores(predictive, [np.inf, 2.0, 3.0])


def test_the_experiment_refuses_unknown_histories_and_turbines_before_fitting() -> None:
    frame = pd.DataFrame(
        {"asset_id": ["T1"], "time": [pd.Timestamp("2014-01-01", tz="UTC")], "power": [0.0]}
    )
    specs = {"T1": TurbineSpec("T1", 2050.0)}
    with pytest.raises(
        ValueError, match=r"histories: expected names among .*'1 week'.*, got '2 weeks'"
    ):
        new_turbine_experiment(frame, specs, histories=["1 day", "2 weeks"])
    with pytest.raises(ValueError, match=r"new_turbines: expected names among \['T1'\], got 'T9'"):
        new_turbine_experiment(frame, specs, new_turbines=["T9"])
    with pytest.raises(TypeError, match="new_turbines: expected a list of names, got the string"):
        new_turbine_experiment(frame, specs, new_turbines="T1")


def _by(rows: list[TransferRow], asset: str, history: str, method: str) -> TransferRow:
    (row,) = [r for r in rows if (r.asset_id, r.history, r.method) == (asset, history, method)]
    return row


@pytest.fixture(scope="module")
def experiment() -> list[TransferRow]:
    _, raw = read_source(scada_path(), LA_HAUTE_BORNE)
    observations, _ = clean(raw, normal_operation_checks(2050.0))
    specs = {
        str(row.asset_id): TurbineSpec(
            str(row.asset_id), float(row.rated_power), float(row.elevation)
        )
        for row in asset_table().itertuples()
    }
    return new_turbine_experiment(
        observations, specs, histories=("no data", "1 day", "1 week", "1 year"), tol=1e-4
    )


def _coverage_gap(rows: list[TransferRow], assets: list[str], history: str, method: str) -> float:
    return float(np.mean([abs(_by(rows, a, history, method).coverage - 0.9) for a in assets]))


@pytest.mark.slow
def test_la_haute_borne_targets(experiment: list[TransferRow]) -> None:
    """What docs/TRANSFER.md reports, on the real data (the table there lists every
    number; the targets that are not met are named there too)."""
    assets = sorted({r.asset_id for r in experiment})
    assert assets == ["R80711", "R80721", "R80736", "R80790"]
    for asset in assets:
        # A day or a week of data: partial pooling beats no pooling on every turbine in
        # accuracy, sharpness-with-calibration (CRPS) and joint log-likelihood.
        for history in ("1 day", "1 week"):
            partial = _by(experiment, asset, history, "partial pooling")
            alone = _by(experiment, asset, history, "no pooling")
            assert partial.nmse < alone.nmse, (asset, history)
            assert partial.crps < alone.crps, (asset, history)
            assert partial.joint_log_likelihood > alone.joint_log_likelihood, (asset, history)
        # At a day, its coverage is also closer to 90 % on every turbine (a week: every
        # turbine but R80790, test below).
        partial = _by(experiment, asset, "1 day", "partial pooling")
        alone = _by(experiment, asset, "1 day", "no pooling")
        assert abs(partial.coverage - 0.9) < abs(alone.coverage - 0.9), asset
        # A turbine with no data, from the population: about as accurate as the fleet's
        # one curve, with wider intervals than it and at least its coverage.
        new = _by(experiment, asset, "no data", "partial pooling")
        fleet_curve = _by(experiment, asset, "no data", "complete pooling")
        assert new.nmse < 1.15 * fleet_curve.nmse, asset
        assert new.interval_width > fleet_curve.interval_width, asset
        assert new.coverage > fleet_curve.coverage - 0.01, asset
        # A year: within a few per cent of the turbine's own curve, and above it on
        # joint log-likelihood (once fitted twins carried the population mean's
        # uncertainty: R80790 was 0.008 nats below before).
        partial = _by(experiment, asset, "1 year", "partial pooling")
        alone = _by(experiment, asset, "1 year", "no pooling")
        assert partial.nmse < 1.06 * alone.nmse, asset
        assert partial.crps < 1.04 * alone.crps, asset
        assert partial.joint_log_likelihood > alone.joint_log_likelihood, asset
    # ... and at R80711 above the fleet's one curve on it too (-4.830 against -4.819
    # before), though not on NMSE (the strict expected failure below).
    partial = _by(experiment, "R80711", "1 year", "partial pooling")
    fleet_curve = _by(experiment, "R80711", "1 year", "complete pooling")
    assert partial.joint_log_likelihood > fleet_curve.joint_log_likelihood
    for asset in ("R80711", "R80721", "R80736"):
        partial = _by(experiment, asset, "1 week", "partial pooling")
        alone = _by(experiment, asset, "1 week", "no pooling")
        assert abs(partial.coverage - 0.9) < abs(alone.coverage - 0.9), asset
    # Coverage: closer to 90 % than no pooling's, on average over the turbines.
    for history in ("1 day", "1 week"):
        assert _coverage_gap(experiment, assets, history, "partial pooling") < _coverage_gap(
            experiment, assets, history, "no pooling"
        ), history


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 3 asks partial pooling's coverage to be closer to 90 % than no pooling's "
    "at a week on every turbine; on R80790 it is not (0.71 against 0.81, whose intervals "
    "are nearly twice as wide): R80790's 2015 readings between 4 and 14 m/s scatter more "
    "than the fleet's 2014 noise and period effects allow, docs/TRANSFER.md. Strict: "
    "this fails loudly once the target holds.",
)
def test_a_week_of_data_covers_closer_to_90_percent_than_no_pooling_at_r80790(
    experiment: list[TransferRow],
) -> None:
    partial = _by(experiment, "R80790", "1 week", "partial pooling")
    alone = _by(experiment, "R80790", "1 week", "no pooling")
    assert abs(partial.coverage - 0.9) < abs(alone.coverage - 0.9)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 3 asks partial pooling at a year to be no worse than the better "
    "baseline; on R80711 complete pooling's NMSE is lower (0.0142 against 0.0163): its "
    "2014 curve describes its 2015 worse than the fleet's average does, docs/TRANSFER.md. "
    "Strict: this fails loudly once the target holds.",
)
def test_a_year_of_data_is_as_accurate_as_the_fleets_curve_at_r80711(
    experiment: list[TransferRow],
) -> None:
    partial = _by(experiment, "R80711", "1 year", "partial pooling")
    fleet_curve = _by(experiment, "R80711", "1 year", "complete pooling")
    assert partial.nmse <= fleet_curve.nmse


def test_histories_are_the_first_readings_of_the_year() -> None:
    times = pd.date_range("2014-01-01", periods=3 * 144, freq="10min", tz="UTC")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "asset_id": "T1",
            "time": list(times) + list(times + pd.Timedelta(days=365)),
            "wind_speed": rng.uniform(3.0, 15.0, 2 * times.size),
        }
    )
    curve = 20.0 * (frame["wind_speed"] - 3.0) ** 2
    frame["power"] = np.clip(curve + rng.normal(0.0, 30.0, len(frame)), 0.0, 2050.0)
    twin = frame.assign(
        asset_id="T2",
        power=np.clip(1.05 * curve + rng.normal(0.0, 30.0, len(frame)), 0.0, 2050.0),
    )
    rows = new_turbine_experiment(
        pd.concat([frame, twin], ignore_index=True),
        {"T1": TurbineSpec("T1", 2050.0), "T2": TurbineSpec("T2", 2050.0)},
        histories=("no data", "1 day", "1 year"),
        new_turbines=["T1"],
        tol=1e-3,
    )
    readings = {r.history: r.n_readings for r in rows if r.method == "partial pooling"}
    assert readings == {"no data": 0, "1 day": 144, "1 year": 3 * 144}
    assert {r.n_evaluated for r in rows} == {3 * 144}
