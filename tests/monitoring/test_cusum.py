"""Contracts of the CUSUM detector: calibration, false-alarm rate, detection, streaming."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy import signal

from twinweave.monitoring import Alarm, CusumDetector

PER_DAY = 144  # 10-minute readings
PHI = 0.7  # lag-one autocorrelation of 10-minute power-curve residuals


def ar1(n: int, seed: int, phi: float = PHI) -> NDArray[np.float64]:
    """Stationary AR(1) with unit variance: residuals as autocorrelated as real ones."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n) * np.sqrt(1.0 - phi * phi)
    start = rng.standard_normal()
    out, _ = signal.lfilter([1.0], [1.0, -phi], noise, zi=[phi * start])
    return np.asarray(out, dtype=np.float64)


def times(n_days: float, start: str = "2015-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=int(n_days * PER_DAY), freq="10min", tz="UTC")


def calibrated(seed: int = 0, **params: float | int | str) -> CusumDetector:
    t = times(120, start="2014-09-03")
    return CusumDetector(**params).calibrate(t, ar1(t.size, seed))  # type: ignore[arg-type]


def test_calibration_recovers_the_batch_means_variance() -> None:
    t = times(600)
    detector = CusumDetector(shift=0.5).calibrate(t, ar1(t.size, seed=1))
    # var(daily sum) / n for AR(1): (1 + phi) / (1 - phi) less a finite-n correction.
    n = PER_DAY
    expected = (1 + PHI) / (1 - PHI) - 2 * PHI * (1 - PHI**n) / (n * (1 - PHI) ** 2)
    assert detector.variance_factor_ == pytest.approx(expected, rel=0.2)
    assert detector.n_calibration_periods_ == 600
    # The factor does not depend on the design shift (it is per unit weight).
    other = CusumDetector(shift=2.0).calibrate(t, ar1(t.size, seed=1))
    assert other.variance_factor_ == pytest.approx(detector.variance_factor_)


def test_false_alarms_respect_lordens_bound_on_autocorrelated_residuals() -> None:
    detector = calibrated(threshold=3.0)
    t = times(1500)
    alarms = detector.update(t, ar1(t.size, seed=2)) + detector.flush()
    # Mean periods between false alarms >= exp(h) = 20: at most 1500 / 20 = 75 alarms.
    assert detector.n_periods_ == 1500
    assert len(alarms) <= detector.n_periods_ * np.exp(-3.0)


def test_judging_single_readings_would_alarm_far_too_often() -> None:
    # Calibrated per reading, the variance factor misses the autocorrelation.
    t = times(60)
    r = ar1(t.size, seed=3)
    daily = calibrated(threshold=3.0)
    per_reading = CusumDetector(threshold=3.0, period="10min", min_count=1).calibrate(
        times(120, start="2014-09-03"), ar1(120 * PER_DAY, seed=0)
    )
    n_daily = len(daily.update(t, r) + daily.flush())
    n_per_reading = len(per_reading.update(t, r) + per_reading.flush())
    assert n_per_reading > 60 * 0.5  # more than one every other day
    assert n_per_reading > 10 * max(n_daily, 1)


def test_a_persistent_shift_is_detected_and_its_start_estimated() -> None:
    detector = calibrated()
    t = times(60)
    r = ar1(t.size, seed=4)
    change = pd.Timestamp("2015-01-31", tz="UTC")
    r[t >= change] -= 0.5
    alarms = detector.update(t, r) + detector.flush()
    assert alarms, "expected an alarm after the shift"
    first = alarms[0]
    assert first.time > change
    assert first.time - change <= pd.Timedelta(days=7)
    assert abs(first.start - change) <= pd.Timedelta(days=3)
    assert first.run_length == (first.time - first.start) / pd.Timedelta(days=1)
    assert first.statistic > detector.threshold


def test_the_statistic_restarts_after_each_alarm() -> None:
    detector = calibrated()
    t = times(60)
    r = ar1(t.size, seed=5) - 0.5
    alarms = detector.update(t, r)
    assert len(alarms) >= 5  # a change that persists alarms again and again
    for before, after in itertools.pairwise(alarms):
        assert after.start >= before.time
    assert detector.alarms_ == alarms
    assert detector.statistic_ <= detector.threshold


def assert_same(alarms: list[Alarm], expected: list[Alarm]) -> None:
    """Equal up to the summation order of the statistic."""
    assert [(a.time, a.start, a.run_length) for a in alarms] == [
        (a.time, a.start, a.run_length) for a in expected
    ]
    assert [a.statistic for a in alarms] == pytest.approx([a.statistic for a in expected])


def test_streaming_one_reading_at_a_time_equals_one_batch() -> None:
    t = times(12)
    r = ar1(t.size, seed=6) - 0.4
    batch = calibrated()
    expected = batch.update(t, r) + batch.flush()
    stream = calibrated()
    streamed: list[Alarm] = []
    for i in range(t.size):
        streamed += stream.update(t[i : i + 1], r[i : i + 1])
    streamed += stream.flush()
    assert_same(streamed, expected)
    assert stream.statistic_ == pytest.approx(batch.statistic_)
    chunks = calibrated()
    cuts = np.sort(np.random.default_rng(0).choice(t.size, 40, replace=False))
    chunked: list[Alarm] = []
    for part_t, part_r in zip(np.split(t, cuts), np.split(r, cuts), strict=True):
        chunked += chunks.update(part_t, part_r)
    assert_same(chunked + chunks.flush(), expected)


def test_a_period_is_judged_when_the_next_one_begins() -> None:
    detector = calibrated()
    t = times(2)
    r = np.full(t.size, -3.0)
    assert detector.update(t[:PER_DAY], r[:PER_DAY]) == []  # day one still open
    assert detector.n_periods_ == 0
    assert len(detector.update(t[PER_DAY:], r[PER_DAY:])) == 1  # day one judged
    assert detector.n_periods_ == 1
    assert len(detector.flush()) == 1  # day two judged at the end of the data


def test_readings_without_sensitivity_carry_no_evidence() -> None:
    t = times(10)
    r = ar1(t.size, seed=7)
    windy = np.asarray(t.hour >= 12)  # the loss only shows in the afternoons
    r[windy] -= 1.0
    r[~windy] -= 50.0  # whatever happens when the loss cannot show is ignored
    sensitivity = np.where(windy, 0.5, 0.0)
    weighted = calibrated()
    weighted.calibrate(times(120, "2014-09-03"), ar1(120 * PER_DAY, 0), np.tile(sensitivity, 12))
    assert weighted.update(t, r, sensitivity)  # the afternoons' shift is found
    r[windy] += 1.0
    quiet = calibrated()
    quiet.calibrate(times(120, "2014-09-03"), ar1(120 * PER_DAY, 0), np.tile(sensitivity, 12))
    assert quiet.update(t, r, sensitivity) + quiet.flush() == []


def test_wild_readings_are_winsorised() -> None:
    t = times(3)
    r = ar1(t.size, seed=8)
    r[PER_DAY + 10] = -1e6  # one broken reading
    robust = calibrated()
    assert robust.update(t, r) + robust.flush() == []
    fragile = calibrated(clip=1e9)
    assert len(fragile.update(t, r) + fragile.flush()) == 1


def test_sparse_periods_are_skipped() -> None:
    t = times(4)
    keep = np.ones(t.size, dtype=bool)
    keep[PER_DAY : PER_DAY + PER_DAY - 5] = False  # day two keeps 5 readings
    r = np.where(keep, ar1(t.size, seed=9), np.nan)
    detector = calibrated(min_count=12)
    detector.update(t, r)
    detector.flush()
    assert detector.n_periods_ == 3


def test_what_the_twin_may_learn_from() -> None:
    detector = calibrated()
    t = times(30)
    r = ar1(t.size, seed=10)
    change = pd.Timestamp("2015-01-16", tz="UTC")
    r[t >= change] -= 0.6
    alarms = detector.update(t, r)
    assert alarms
    rejected = detector.rejected(t)
    cleared = detector.cleared(t)
    assert not (rejected & cleared).any()
    for alarm in alarms:
        inside = (t >= alarm.start) & (t < alarm.time)
        assert rejected[inside].all()
    # Before the first run everything judged is cleared; the open period never is.
    assert cleared[t < alarms[0].start].all()
    assert not cleared[t >= t[-1].floor("1D")].any()
    if detector.run_start_ is not None:
        assert not cleared[t >= detector.run_start_].any()


def test_configuration_is_kept_apart_from_state() -> None:
    detector = calibrated(threshold=5.0, period="12h", min_count=6, shift=0.3, clip=4.0)
    params = detector.get_params()
    assert params == {
        "threshold": 5.0,
        "period": "12h",
        "min_count": 6,
        "shift": 0.3,
        "clip": 4.0,
        "min_calibration_periods": 30,
    }
    assert CusumDetector(**params).get_params() == params
    t = times(20)
    detector.update(t, ar1(t.size, seed=11) - 1.0)
    assert detector.alarms_
    factor = detector.variance_factor_
    detector.reset()
    assert detector.alarms_ == [] and detector.statistic_ == 0.0 and detector.n_periods_ == 0
    assert detector.variance_factor_ == factor


def test_update_needs_calibration() -> None:
    with pytest.raises(RuntimeError, match=r"calibrate\(\) first"):
        CusumDetector().update(times(1), np.zeros(PER_DAY))


def test_calibration_needs_enough_periods() -> None:
    with pytest.raises(ValueError, match="at least 30 periods of 1D with >= 12 usable readings"):
        CusumDetector().calibrate(times(10), np.zeros(10 * PER_DAY))


def test_times_must_not_go_back() -> None:
    detector = calibrated()
    t = times(3)
    shuffled = t[[0, 2, 1]]
    with pytest.raises(ValueError, match="expected non-decreasing times, got 2015-01-01 00:10"):
        detector.update(shuffled, np.zeros(3))
    detector.update(t[PER_DAY : PER_DAY + 3], np.zeros(3))
    with pytest.raises(ValueError, match=r"expected readings from 2015-01-02 00:00:00\+00:00 on"):
        detector.update(t[:3], np.zeros(3))


def test_a_period_flush_judged_is_not_judged_again() -> None:
    # After flush() earlier days were taken again and counted twice (review 2026-12-01:
    # n_periods_ 13 for 10 days); so was the rest of a day flushed at noon.
    detector = calibrated()
    t = times(10)
    detector.update(t, np.zeros(t.size))
    detector.flush()
    assert detector.n_periods_ == 10
    for again in (t[: 3 * PER_DAY], t[-5:]):
        with pytest.raises(
            ValueError,
            match=r"expected readings from 2015-01-11 00:00:00\+00:00 on \(the periods "
            r"before it are judged, the last by flush\(\)\), got one in the period from",
        ):
            detector.update(again, np.zeros(again.size))
    assert detector.n_periods_ == 10
    later = times(1, start="2015-01-11")
    detector.update(later, np.zeros(later.size))
    detector.flush()
    assert detector.n_periods_ == 11
    # reset() starts over.
    detector.reset().update(t, np.zeros(t.size))


def test_time_zones_must_not_be_mixed() -> None:
    detector = calibrated()
    with pytest.raises(ValueError, match="time-zone-aware times throughout"):
        detector.update(times(1).tz_localize(None), np.zeros(PER_DAY))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"period": "1M"}, "period"),
        ({"period": "fortnight"}, "period"),
        ({"min_count": 0}, "min_count"),
        ({"shift": -1.0}, "shift"),
        ({"min_calibration_periods": 1}, "min_calibration_periods"),
    ],
)
def test_bad_configuration_is_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CusumDetector(**params)  # type: ignore[arg-type]


def test_negative_sensitivity_is_refused() -> None:
    with pytest.raises(ValueError, match="sensitivity: expected non-negative"):
        calibrated().update(times(1), np.zeros(PER_DAY), np.full(PER_DAY, -0.1))


def test_residuals_that_never_vary_are_refused_at_calibration() -> None:
    # All zero (residuals copied from the prediction): no variance to scale the CUSUM by.
    t = times(40)
    with pytest.raises(ValueError, match=r"calibrate: expected period sums of residuals that"):
        CusumDetector().calibrate(t, np.zeros(t.size))


def test_a_sensitivity_of_another_length_is_named() -> None:
    with pytest.raises(ValueError, match=r"sensitivity: expected one shift or one per residual"):
        calibrated().update(times(1), np.zeros(PER_DAY), np.full(3, 0.1))
    # One shift, as a number or in an array of one, stands for every reading.
    calibrated().update(times(1), np.zeros(PER_DAY), np.array([0.1]))
