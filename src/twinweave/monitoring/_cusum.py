"""Page's CUSUM for a persistent downward shift in a twin's standardised residuals.

The detector watches residuals (for a fleet, their contrasts with the other assets; see
:func:`~twinweave.monitoring.fleet_contrast`) and raises an alarm when the evidence for
a persistent downward shift, accumulated since it was last at zero, crosses a threshold.

Why periods. Ten-minute residuals of a power curve are strongly autocorrelated (the
lag-one correlation is about 0.7 at La Haute Borne, and it takes hours to decay), so a
CUSUM fed one reading at a time would treat hundreds of correlated readings as
independent evidence and alarm far too often. The detector therefore sums the evidence
within fixed periods (a day by default) and estimates the variance of a period's sum
from calibration data by the method of batch means (Schmeiser 1982, "Batch size effects
in the analysis of simulation output", Operations Research 30:556-568): the calibrated
variance factor ``c`` is the mean over calibration periods of ``S^2 / M`` (below), which
absorbs whatever autocorrelation there is within a period without modelling it.

The statistic. In period ``d`` with readings ``t``, residuals ``r_t`` (winsorised at
``+-clip``) and sensitivities ``mu_t`` (the downward shift of ``r_t`` that the change to
be detected would cause, for example from
:func:`~twinweave.monitoring.loss_sensitivity`), let ``S_d = sum mu_t r_t`` and
``M_d = sum mu_t^2``. Without a change ``S_d ~ N(0, c M_d)``; after it
``S_d ~ N(-M_d, c M_d)``, and the log-likelihood ratio of the period is

    ``llr_d = -(S_d + M_d / 2) / c``.

Page's CUSUM (Page 1954, "Continuous inspection schemes", Biometrika 41:100-115) in its
log-likelihood-ratio form (Basseville and Nikiforov 1993, *Detection of Abrupt
Changes*, section 2.2) is ``G_d = max(0, G_{d-1} + llr_d)``, with an alarm when
``G_d > h``. With a constant sensitivity this is the textbook one-sided CUSUM on the
standardised period mean with reference value ``k`` equal to half the design shift;
with per-reading sensitivities, windy days (where a power loss shows) weigh more than
calm ones, each period's reference value being half its own expected shift. By Lorden's
bound (Lorden 1971, Ann. Math. Statist. 42:1897-1908) the mean number of periods
between false alarms is at least ``exp(h)`` for independent periods: ``h = 6`` gives
more than a year of daily periods. Residual correlation between days shortens it, so
check the false-alarm rate on held-out data.

After an alarm the statistic restarts from zero, so a change that persists alarms
again. Each alarm reports the start of its run (the period after the statistic was last
at zero, Page's estimate of when the change began) and the run length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
#: Times of readings: anything :class:`pandas.DatetimeIndex` accepts.
Times = pd.DatetimeIndex | pd.Series | NDArray[np.datetime64] | list[pd.Timestamp]


def _ns(time: pd.Timestamp) -> int:
    return int(time.as_unit("ns").value)


@dataclass(frozen=True)
class Alarm:
    """An alarm raised by a :class:`CusumDetector`.

    Attributes
    ----------
    time
        End of the period whose evidence crossed the threshold: when the alarm could
        first be raised.
    start
        Start of the run that ended in the alarm: the estimated time of the change.
    run_length
        Periods evaluated from ``start`` to ``time`` (skipped periods not counted).
    statistic
        CUSUM statistic at the alarm [log-likelihood ratio, nats].
    """

    time: pd.Timestamp
    start: pd.Timestamp
    run_length: int
    statistic: float


#: Usable readings a period needs by default to be judged (and to count towards
#: calibration): fewer are too little to judge.
MIN_PERIOD_READINGS = 12
#: Calibration periods a detector needs by default: fewer leave the variance of a
#: period's sum, which scales the CUSUM, too uncertain for its false-alarm rate.
MIN_CALIBRATION_PERIODS = 30


class CusumDetector:
    """One-sided CUSUM on period sums of residuals, for a persistent downward shift.

    Parameters
    ----------
    threshold
        Alarm threshold ``h`` on the log-likelihood ratio [nats]; ``exp(h)`` is a lower
        bound on the mean number of periods between false alarms.
    period
        Length of the periods evidence is summed over, a fixed pandas offset such as
        ``"1D"`` or ``"12h"``; periods are aligned to midnight UTC (the Unix epoch).
    min_count
        Periods with fewer usable readings are skipped: too little to judge.
    shift
        Sensitivity used when ``update``/``calibrate`` get none: the per-reading
        downward shift of the residuals to be detected [sd]. The reference value ``k``
        of the textbook CUSUM is half the resulting shift of each period's standardised
        mean.
    clip
        Residuals are winsorised to ``[-clip, clip]`` [sd], so that a single wild
        reading cannot raise an alarm on its own.
    min_calibration_periods
        Fewest usable periods ``calibrate`` accepts.

    Attributes
    ----------
    variance_factor_ : float or None
        Batch-means variance factor ``c`` from :meth:`calibrate` [sd^2].
    statistic_ : float
        Current CUSUM statistic [nats].
    run_start_ : pandas.Timestamp or None
        Start of the current run (the statistic is above zero since then).
    run_length_ : int
        Periods evaluated in the current run.
    alarms_ : list of Alarm
        Every alarm raised since the last :meth:`reset`.
    n_periods_ : int
        Periods evaluated since the last :meth:`reset`.

    Examples
    --------
    A twin's residuals that drop by half a standard deviation on day 40:

    >>> rng = np.random.default_rng(1)
    >>> times = pd.date_range("2015-01-01", periods=144 * 60, freq="10min", tz="UTC")
    >>> residuals = rng.standard_normal(times.size)
    >>> residuals[times >= "2015-02-10"] -= 0.5
    >>> detector = CusumDetector(threshold=6.0, shift=0.5)
    >>> detector = detector.calibrate(times[:144 * 30], residuals[:144 * 30])
    >>> alarms = detector.update(times[144 * 30:], residuals[144 * 30:])
    >>> first = alarms[0]
    >>> str(first.start.date()), str(first.time.date()), first.run_length
    ('2015-02-10', '2015-02-11', 1)
    """

    def __init__(
        self,
        *,
        threshold: float = 6.0,
        period: str = "1D",
        min_count: int = MIN_PERIOD_READINGS,
        shift: float = 0.5,
        clip: float = 5.0,
        min_calibration_periods: int = MIN_CALIBRATION_PERIODS,
    ) -> None:
        self.threshold = threshold
        self.period = period
        self.min_count = min_count
        self.shift = shift
        self.clip = clip
        self.min_calibration_periods = min_calibration_periods
        self._step = self._validate_params()
        self.variance_factor_: float | None = None
        self.n_calibration_periods_ = 0
        self.reset()

    def _validate_params(self) -> int:
        if not self.threshold > 0:
            raise ValueError(f"threshold: expected a positive number, got {self.threshold}")
        try:
            step = int(pd.Timedelta(self.period).value)
        except ValueError:
            step = 0
        if step <= 0:
            raise ValueError(
                f"period: expected a positive fixed-length pandas offset such as '1D' or "
                f"'12h', got {self.period!r}"
            )
        if self.min_count < 1:
            raise ValueError(f"min_count: expected at least 1, got {self.min_count}")
        if not self.shift > 0 or not self.clip > 0:
            raise ValueError(
                f"shift, clip: expected positive numbers, got {self.shift}, {self.clip}"
            )
        if self.min_calibration_periods < 2:
            raise ValueError(
                f"min_calibration_periods: expected at least 2, got {self.min_calibration_periods}"
            )
        return step

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, unchanged."""
        return {
            "threshold": self.threshold,
            "period": self.period,
            "min_count": self.min_count,
            "shift": self.shift,
            "clip": self.clip,
            "min_calibration_periods": self.min_calibration_periods,
        }

    def reset(self) -> Self:
        """Forget the monitoring state (statistic, run, alarms); keep the calibration."""
        self.statistic_ = 0.0
        self.run_start_: pd.Timestamp | None = None
        self.run_length_ = 0
        self.alarms_: list[Alarm] = []
        self.n_periods_ = 0
        # The period still receiving readings, as its start [ns since the epoch], and
        # its running sums; and the end of the last period closed.
        self._open: int | None = None
        self._open_sums = np.zeros(3)
        self._closed_until: int | None = None
        self._utc: bool | None = None
        return self

    # -- aggregation -------------------------------------------------------------------
    def _nanoseconds(self, times: Times) -> NDArray[np.int64]:
        index = pd.DatetimeIndex(times)
        utc = index.tz is not None
        if self._utc is None:
            self._utc = utc
        elif utc != self._utc:
            raise ValueError(
                "times: expected time-zone-aware times throughout or naive times "
                f"throughout; got {'aware' if utc else 'naive'} times after "
                f"{'aware' if self._utc else 'naive'} ones"
            )
        if utc:
            index = index.tz_convert("UTC")
        # Nanoseconds whatever the index's resolution (pandas 3 defaults to microseconds).
        return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)

    def _timestamp(self, nanoseconds: int) -> pd.Timestamp:
        return pd.Timestamp(nanoseconds, tz="UTC" if self._utc else None)

    def _period_sums(
        self,
        times: Times,
        residuals: ArrayLike,
        sensitivity: ArrayLike | None,
    ) -> tuple[NDArray[np.int64], FloatArray]:
        """Period starts [ns] and, per period, ``(S, M, n)`` of the usable readings."""
        ns = self._nanoseconds(times)
        r = np.atleast_1d(np.asarray(residuals, dtype=np.float64))
        if ns.shape != r.shape:
            raise ValueError(
                f"residuals: expected one value per time ({ns.shape[0]}), got {r.shape}"
            )
        shifts = np.asarray(self.shift if sensitivity is None else sensitivity, dtype=np.float64)
        if shifts.size != 1 and shifts.shape != r.shape:
            raise ValueError(
                f"sensitivity: expected one shift or one per residual ({r.shape[0]}), got "
                f"shape {shifts.shape}"
            )
        mu = np.broadcast_to(shifts.reshape(-1) if shifts.size == 1 else shifts, r.shape)
        if np.any(np.diff(ns) < 0):
            row = int(np.flatnonzero(np.diff(ns) < 0)[0]) + 1
            raise ValueError(
                f"times: expected non-decreasing times, got {self._timestamp(int(ns[row]))} "
                f"after {self._timestamp(int(ns[row - 1]))} at row {row}"
            )
        if np.any(mu < 0):
            raise ValueError("sensitivity: expected non-negative shifts, got a negative one")
        r = np.clip(r, -self.clip, self.clip)
        usable = np.isfinite(r) & np.isfinite(mu)
        r = np.where(usable, r, 0.0)
        mu = np.where(usable, mu, 0.0)
        starts = ns - np.mod(ns, self._step)
        if starts.size == 0:
            return starts, np.zeros((0, 3))
        first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
        sums = np.column_stack(
            [
                np.add.reduceat(mu * r, first),
                np.add.reduceat(mu * mu, first),
                np.add.reduceat(usable.astype(np.float64), first),
            ]
        )
        return starts[first], sums

    # -- calibration -------------------------------------------------------------------
    def calibrate(
        self,
        times: Times,
        residuals: ArrayLike,
        sensitivity: ArrayLike | None = None,
    ) -> Self:
        """Estimate the variance factor of period sums from residuals without change.

        Parameters
        ----------
        times
            Time of each residual, non-decreasing.
        residuals
            Standardised residuals (or fleet contrasts) of a period in which the asset is
            believed healthy [sd].
        sensitivity
            Per-reading shift to be detected [sd]; ``None`` uses ``shift``.

        Notes
        -----
        The factor is the mean of ``S_d^2 / M_d`` over periods with at least
        ``min_count`` readings: the batch-means estimate of the variance of a period's
        weighted sum per unit weight, assuming residuals of mean zero. A non-zero mean
        in the calibration data inflates it, which errs towards fewer alarms. The
        monitoring state is left as it is.
        """
        starts, sums = self._period_sums(times, residuals, sensitivity)
        usable = (sums[:, 2] >= self.min_count) & (sums[:, 1] > 0)
        n_usable = int(usable.sum())
        if n_usable < self.min_calibration_periods:
            raise ValueError(
                f"calibrate: expected at least {self.min_calibration_periods} periods of "
                f"{self.period} with >= {self.min_count} usable readings, got {n_usable} "
                f"(of {starts.size} periods)"
            )
        ratio = sums[usable, 0] ** 2 / sums[usable, 1]
        if not ratio.mean() > 0.0:
            # Every period's weighted sum is zero (residuals all zero, as when copied from
            # the prediction): a CUSUM scaled by a zero variance would divide by it.
            raise ValueError(
                f"calibrate: expected period sums of residuals that are not all zero, got "
                f"zero in all {n_usable} periods (residuals all zero?)"
            )
        self.variance_factor_ = float(ratio.mean())
        self.n_calibration_periods_ = n_usable
        return self

    # -- monitoring --------------------------------------------------------------------
    def update(
        self,
        times: Times,
        residuals: ArrayLike,
        sensitivity: ArrayLike | None = None,
    ) -> list[Alarm]:
        """Add readings (a batch, or a stream one at a time) and return new alarms.

        A period is judged when the first reading of a later period arrives (or at
        :meth:`flush`), so an alarm for a period appears with the next period's first
        reading.

        Parameters
        ----------
        times
            Time of each residual; not earlier than the period still open, nor, after
            :meth:`flush`, in the period it judged.
        residuals
            Standardised residuals or fleet contrasts [sd]; NaN readings are ignored.
        sensitivity
            Per-reading shift to be detected [sd], for example
            :func:`~twinweave.monitoring.loss_sensitivity`; ``None`` uses ``shift``.

        Returns
        -------
        list of Alarm
            Alarms raised by the periods closed during this call.
        """
        if self.variance_factor_ is None:
            raise RuntimeError(
                "CusumDetector: calibrate() first; the variance of period sums is unknown"
            )
        starts, sums = self._period_sums(times, residuals, sensitivity)
        alarms: list[Alarm] = []
        for start, row in zip(starts.tolist(), sums, strict=True):
            judged = self._closed_until
            if self._open is None and judged is not None and start < judged:
                # After flush(): a period is judged once (counted twice, it would inflate
                # the statistic and n_periods_, on which run lengths rest).
                raise ValueError(
                    f"times: expected readings from {self._timestamp(judged)} on (the "
                    f"periods before it are judged, the last by flush()), got one in the "
                    f"period from {self._timestamp(start)}; reset() to start over"
                )
            if self._open is not None and start < self._open:
                raise ValueError(
                    f"times: expected readings from {self._timestamp(self._open)} on (the "
                    f"open period), got one in the period from {self._timestamp(start)}"
                )
            if self._open is not None and start > self._open:
                alarms.extend(self._close())
            if self._open is None:
                self._open = start
                self._open_sums = np.zeros(3)
            self._open_sums = self._open_sums + row
        return alarms

    def flush(self) -> list[Alarm]:
        """Judge the open period now (at the end of the data) and return any alarm."""
        return self._close() if self._open is not None else []

    def _close(self) -> list[Alarm]:
        assert self._open is not None and self.variance_factor_ is not None
        start = self._open
        weighted_sum, weight, count = (float(v) for v in self._open_sums)
        self._open = None
        self._closed_until = start + self._step
        if count < self.min_count or weight <= 0:
            return []
        self.n_periods_ += 1
        llr = -(weighted_sum + 0.5 * weight) / self.variance_factor_
        statistic = self.statistic_ + llr
        if statistic <= 0:
            self.statistic_, self.run_start_, self.run_length_ = 0.0, None, 0
            return []
        if self.run_start_ is None:
            self.run_start_ = self._timestamp(start)
        self.statistic_ = statistic
        self.run_length_ += 1
        if statistic <= self.threshold:
            return []
        alarm = Alarm(
            time=self._timestamp(start + self._step),
            start=self.run_start_,
            run_length=self.run_length_,
            statistic=statistic,
        )
        self.alarms_.append(alarm)
        self.statistic_, self.run_start_, self.run_length_ = 0.0, None, 0
        return [alarm]

    # -- what a twin may learn from ----------------------------------------------------
    def rejected(self, times: Times) -> BoolArray:
        """Readings inside an alarm's run ``[start, time)``: evidence of the change.

        A twin that keeps assimilating should not learn from these, or it would absorb
        the underperformance into its notion of normal.
        """
        ns = self._nanoseconds(times)
        out = np.zeros(ns.shape, dtype=np.bool_)
        for alarm in self.alarms_:
            out |= (ns >= _ns(alarm.start)) & (ns < _ns(alarm.time))
        return out

    def cleared(self, times: Times) -> BoolArray:
        """Readings the detector has judged and found no change in.

        True for readings in closed periods that belong neither to an alarm's run nor to
        the current run (which may still end in an alarm); a twin can assimilate these.
        Readings neither cleared nor :meth:`rejected` are pending: hold them back until a
        later call decides.
        """
        ns = self._nanoseconds(times)
        if self._closed_until is None:
            return np.zeros(ns.shape, dtype=np.bool_)
        out = (ns < self._closed_until) & ~self.rejected(times)
        if self.run_start_ is not None:
            out &= ns < _ns(self.run_start_)
        return np.asarray(out, dtype=np.bool_)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
