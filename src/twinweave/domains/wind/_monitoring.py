"""Persistent-underperformance monitoring of a wind farm: one live twin per turbine.

The pipeline, as a running fleet runs it, one block of readings (a week by default) at
a time:

1. Each turbine's twin (:func:`~twinweave.domains.wind.power_curve_emulator` with a
   forgetting factor, memory about half a year) predicts the coming week before it
   assimilates it. A twin frozen on last year would alarm on the ordinary drift from
   one year to the next.
2. Each reading becomes a randomised-PIT residual [sd] under the twin's predictive
   (Czado, Gneiting and Held 2009, "Predictive model assessment for count data",
   Biometrics 65:1254-1261): standard normal while the turbine behaves as its twin
   expects, readings at zero and at rated power included.
3. Readings below the icing temperature (2 degC by default) are not monitored: blades
   can ice then, a real but separate cause of underperformance, seasonal, and the job of
   an icing detector (IEC 61400-12-1:2017 treats cold-climate power performance in its
   informative Annex O). At La Haute Borne in 2015 one turbine lost 4-6 % against its
   neighbours for days in sub-zero weather; without the guard the monitor flags it
   three times.
4. Each residual becomes a fleet contrast: the residual minus the median residual of the
   other turbines at the same time. Turbines of one farm share weather and season, and
   their twins share the errors these cause (a cold month, an unusual wind regime, the
   drift every twin has yet to learn); the contrast removes that common part and keeps
   what is particular to one turbine, such as its own loss. A farm of two compares each
   turbine with the other; a turbine alone is watched on its own residuals, with more
   false alarms (:func:`monitor_fleet`).
5. Each reading is weighted by its loss sensitivity: how far a loss of ``loss`` (8 %)
   would move its residual [sd]. Windy readings, where a power loss shows, weigh most;
   an idle turbine's readings weigh nothing.
6. Page's CUSUM (Page 1954, "Continuous inspection schemes", Biometrika 41:100-115) sums
   the weighted contrasts per day; the variance of a day's sum comes from the live
   period before monitoring starts by the method of batch means (Schmeiser 1982, "Batch
   size effects in the analysis of simulation output", Operations Research 30:556-568),
   which absorbs the strong autocorrelation of 10-minute residuals.
7. Once monitoring, a twin assimilates only the readings its detector has cleared, so it
   does not learn an underperformance as its new normal; readings in an alarm's run are
   dropped, readings in a run that may still end in an alarm wait.

On the La Haute Borne data of 2015 (twins fitted on January-June 2014, calibrated on
July-December 2014), a -8 % loss injected for 30 days is flagged after a median of 3 days,
21 of 24 injections within 7 days, with 0.25 false alarms per turbine-year
(``tests/monitoring/test_underperformance.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from twinweave.core import Twin, clone_emulator
from twinweave.domains.wind._fleet import (
    READINGS_PER_YEAR,
    TurbineSpec,
    build_turbine_twin,
    model_inputs,
)
from twinweave.monitoring import (
    MIN_CALIBRATION_PERIODS,
    MIN_PERIOD_READINGS,
    Alarm,
    CusumDetector,
    anomaly_score,
    fleet_contrast,
    loss_sensitivity,
    standardised_residuals,
)

#: Times accepted for ``start``, ``stop`` and the like: a time-zone-aware timestamp, or a
#: string such as ``"2015-01-05"`` (read as UTC).
TimeLike = pd.Timestamp | str

#: Columns of :attr:`MonitorResult.readings`, in order.
_READING_COLUMNS = ("time", "residual", "contrast", "sensitivity", "anomaly_score", "alarm")

_REQUIRED = ("asset_id", "time", "wind_speed", "power")


@dataclass(frozen=True)
class MonitorResult:
    """What the monitor found for one turbine.

    Attributes
    ----------
    readings
        One row per reading, in time order, with columns ``time`` (UTC); ``residual``,
        the randomised-PIT residual under the twin's week-ahead predictive [sd], NaN
        below the icing temperature; ``contrast``, the residual minus the median of the
        other turbines' at that time [sd], NaN where fewer than ``min_others`` others
        have one (with ``min_others=0``, the residual itself); ``sensitivity``, the
        downward shift of the residual that the design loss would cause [sd];
        ``anomaly_score``, how surprising the reading is under the predictive
        (:func:`~twinweave.monitoring.anomaly_score`) [decades of probability]; and
        ``alarm``, True for readings inside an alarm's run (from its estimated start
        up to the alarm).
    alarms
        Every alarm raised, in time order.
    """

    readings: pd.DataFrame
    alarms: list[Alarm]


def _utc(value: TimeLike, name: str) -> pd.Timestamp:
    time = pd.Timestamp(value)
    if time.tz is None:
        if isinstance(value, str):
            return time.tz_localize("UTC")
        raise ValueError(f"{name}: expected a time-zone-aware timestamp, got naive {time}")
    return time.tz_convert("UTC")


def _fixed_step(value: str, name: str) -> pd.Timedelta:
    try:
        step = pd.Timedelta(value)
    except ValueError:
        step = pd.Timedelta(0)
    if step <= pd.Timedelta(0):
        raise ValueError(
            f"{name}: expected a positive fixed-length pandas offset such as '7D', got {value!r}"
        )
    return step


def _check_aware(time: pd.Series) -> None:
    if not isinstance(time.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"observations['time']: expected time-zone-aware UTC times "
            f"(datetime64[ns, UTC]), got {time.dtype}"
        )


class FleetMonitor:
    """Live twins and CUSUM detectors for a fleet of turbines, run block by block.

    Use: :meth:`fit` the twins on an initial period; :meth:`run` them live over a period
    the turbines are believed healthy in (they learn everything then); :meth:`calibrate`
    the detectors on that period; :meth:`run` on, monitoring; :meth:`flush` at the end of
    the data; read :meth:`results`. :func:`monitor_fleet` does all of this in one call.

    Parameters
    ----------
    loss
        Relative power loss to be detected, in (0, 1) [-]: it sets each reading's
        weight (:func:`~twinweave.monitoring.loss_sensitivity`) and the shift the CUSUM
        looks for.
    icing_temperature
        Readings with an air temperature below this are not monitored (their residual
        is NaN) [degC]: blades can ice, a separate cause of underperformance left to
        icing detection. Readings without a temperature are monitored.
    forgetting
        Per-reading discount of each twin's memory, in (0, 1]; the default remembers
        about half a year of 10-minute readings [-].
    horizon
        How far ahead a twin predicts before it assimilates: :meth:`run` cuts its period
        into blocks of this length, a fixed pandas offset such as ``"7D"``.
    threshold
        CUSUM alarm threshold [nats]; see :class:`~twinweave.monitoring.CusumDetector`.
    period
        Length of the periods the CUSUM sums evidence over, such as ``"1D"``.
    min_count
        Periods with fewer usable readings are skipped by the CUSUM.
    clip
        Contrasts are winsorised to ``[-clip, clip]`` in the CUSUM [sd].
    max_sensitivity
        Upper limit of a reading's loss sensitivity [sd].
    min_others
        Fewest other turbines with a residual at the same time for a contrast to be
        defined; the fleet needs at least ``min_others + 1`` turbines. ``0`` watches
        each turbine on its own residuals (a farm of one turbine; more false alarms,
        see :func:`monitor_fleet`).
    min_calibration_periods
        Fewest usable periods each turbine needs in the calibration period.
    seed
        Randomness of the randomised PIT at readings on a bound; each turbine draws
        from its own stream, spawned at :meth:`fit` in the order of the turbine names,
        so a turbine's residuals do not depend on which others are monitored.

    Attributes
    ----------
    specs_ : dict of str to TurbineSpec
        The turbines, by name.
    twins_ : dict of str to Twin
        Each turbine's live twin.
    detectors_ : dict of str to CusumDetector
        Each turbine's detector (uncalibrated before :meth:`calibrate`).
    calibrated_ : bool
        Whether the detectors are calibrated, so that :meth:`update` monitors.
    last_time_ : dict of str to pandas.Timestamp
        Each turbine's latest reading processed so far.

    Notes
    -----
    Before :meth:`calibrate` the twins assimilate every reading and the residuals,
    contrasts and sensitivities are kept for calibration. The fleet contrast is what the
    detector watches: a loss on one turbine moves its contrast down and its neighbours'
    contrasts up, so it cannot raise an alarm on a neighbour.
    """

    def __init__(
        self,
        *,
        loss: float = 0.08,
        icing_temperature: float = 2.0,
        forgetting: float = 1.0 - 2.0 / READINGS_PER_YEAR,
        horizon: str = "7D",
        threshold: float = 6.0,
        period: str = "1D",
        min_count: int = MIN_PERIOD_READINGS,
        clip: float = 5.0,
        max_sensitivity: float = 4.0,
        min_others: int = 2,
        min_calibration_periods: int = MIN_CALIBRATION_PERIODS,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.loss = loss
        self.icing_temperature = icing_temperature
        self.forgetting = forgetting
        self.horizon = horizon
        self.threshold = threshold
        self.period = period
        self.min_count = min_count
        self.clip = clip
        self.max_sensitivity = max_sensitivity
        self.min_others = min_others
        self.min_calibration_periods = min_calibration_periods
        self.seed = seed
        self._step = self._validate_params()
        self.specs_: dict[str, TurbineSpec] = {}
        self.twins_: dict[str, Twin] = {}
        self.detectors_: dict[str, CusumDetector] = {}
        self.calibrated_ = False
        self.last_time_: dict[str, pd.Timestamp] = {}
        self._rngs: dict[str, np.random.Generator] = {}
        # Per turbine: the per-reading frames of every block since fit, and the readings
        # its detector has neither cleared nor rejected yet (held back from the twin).
        self._readings: dict[str, list[pd.DataFrame]] = {}
        self._pending: dict[str, pd.DataFrame] = {}

    # -- configuration ---------------------------------------------------------------------
    def _validate_params(self) -> pd.Timedelta:
        if not 0.0 < self.loss < 1.0:
            raise ValueError(f"loss: expected a fraction in (0, 1), got {self.loss}")
        if not 0.0 < self.forgetting <= 1.0:
            raise ValueError(f"forgetting: expected a value in (0, 1], got {self.forgetting}")
        if not np.isfinite(self.icing_temperature):
            raise ValueError(
                f"icing_temperature: expected a finite temperature [degC], got "
                f"{self.icing_temperature}"
            )
        if not self.max_sensitivity > 0.0:
            raise ValueError(
                f"max_sensitivity: expected a positive number, got {self.max_sensitivity}"
            )
        if self.min_others < 0:
            raise ValueError(f"min_others: expected at least 0, got {self.min_others}")
        self._new_detector()  # checks the detector's parameters
        return _fixed_step(self.horizon, "horizon")

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, unchanged."""
        return {
            "loss": self.loss,
            "icing_temperature": self.icing_temperature,
            "forgetting": self.forgetting,
            "horizon": self.horizon,
            "threshold": self.threshold,
            "period": self.period,
            "min_count": self.min_count,
            "clip": self.clip,
            "max_sensitivity": self.max_sensitivity,
            "min_others": self.min_others,
            "min_calibration_periods": self.min_calibration_periods,
            "seed": self.seed,
        }

    def _new_detector(self) -> CusumDetector:
        return CusumDetector(
            threshold=self.threshold,
            period=self.period,
            min_count=self.min_count,
            clip=self.clip,
            min_calibration_periods=self.min_calibration_periods,
        )

    # -- input checks ----------------------------------------------------------------------
    def _checked(self, observations: pd.DataFrame, known: Mapping[str, object]) -> pd.DataFrame:
        missing = [c for c in _REQUIRED if c not in observations]
        if missing:
            raise ValueError(
                f"observations: expected columns {list(_REQUIRED)} (docs/CONTRACTS.md), "
                f"missing {missing}; got {list(observations.columns)}"
            )
        time = observations["time"]
        _check_aware(time)
        unknown = sorted(set(observations["asset_id"].astype(str)) - set(known))
        if unknown:
            raise ValueError(
                f"observations['asset_id']: {unknown} have no TurbineSpec; expected only "
                f"turbines of the fleet {sorted(known)}"
            )
        frame = observations.assign(
            asset_id=observations["asset_id"].astype(str), time=time.dt.tz_convert("UTC")
        )
        duplicated = frame.duplicated(["asset_id", "time"])
        if duplicated.any():
            row = frame[duplicated].iloc[0]
            raise ValueError(
                f"observations: expected one reading per turbine and time, got "
                f"{int(duplicated.sum())} repeated, first {row['asset_id']!r} at {row['time']}"
            )
        return frame

    def _check_fitted(self) -> None:
        if not self.twins_:
            raise RuntimeError("FleetMonitor: fit() first; there are no twins yet")

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, observations: pd.DataFrame, specs: Mapping[str, TurbineSpec]) -> Self:
        """Build and fit one twin per turbine on an initial period.

        Forgets any earlier fit, readings and alarms.

        Parameters
        ----------
        observations
            Cleaned readings of every turbine over the initial period (frame contract of
            ``docs/CONTRACTS.md``: ``asset_id``, ``time`` in UTC, ``wind_speed`` [m/s],
            ``power`` [kW]; ``temp_air`` [degC] and ``wind_direction`` [degree] used
            when present). Power is clipped to ``[0, rated_power]``.
        specs
            The turbines, keyed by their ``asset_id``.

        Raises
        ------
        ValueError
            If a key differs from its spec's ``asset_id``, if the fleet has fewer than
            ``min_others + 1`` turbines, if a turbine has no readings or a reading's
            turbine has no spec.
        """
        for key, spec in specs.items():
            if key != spec.asset_id:
                raise ValueError(
                    f"specs[{key!r}]: expected the key to be the spec's asset_id, got "
                    f"asset_id={spec.asset_id!r}"
                )
        if len(specs) < self.min_others + 1:
            raise ValueError(
                f"specs: expected at least {self.min_others + 1} turbines for "
                f"min_others={self.min_others} (each is compared with the others), got "
                f"{sorted(specs)}"
            )
        frame = self._checked(observations, specs)
        by_turbine = {str(t): g for t, g in frame.groupby("asset_id", sort=True)}
        names = sorted(specs)
        empty = [t for t in names if t not in by_turbine]
        if empty:
            raise ValueError(
                f"observations: no readings of turbine(s) {empty}; expected readings of "
                f"every turbine in specs {names} to fit its twin on"
            )
        streams = np.random.default_rng(self.seed).spawn(len(names))
        self.specs_ = {t: specs[t] for t in names}
        self.twins_ = {}
        self.last_time_ = {}
        for t in names:
            training = by_turbine[t].sort_values("time", kind="stable")
            twin = build_turbine_twin(specs[t], training, forgetting=self.forgetting)
            self.twins_[t] = twin.update(model_inputs(training, specs[t].rated_power))
            self.last_time_[t] = training["time"].iloc[-1]
        self.detectors_ = {t: self._new_detector() for t in names}
        self.calibrated_ = False
        self._rngs = dict(zip(names, streams, strict=True))
        self._readings = {t: [] for t in names}
        self._pending = {t: frame.iloc[:0] for t in names}
        return self

    # -- running ---------------------------------------------------------------------------
    def update(self, observations: pd.DataFrame) -> dict[str, list[Alarm]]:
        """Judge one block of the fleet's readings, then let each twin learn from it.

        Each twin predicts the block from what it assimilated before it; the block's
        residuals, contrasts and sensitivities are kept. Before :meth:`calibrate` each
        twin then assimilates the whole block; after it, the detectors see the block
        and each twin assimilates only the readings its detector has cleared.

        Parameters
        ----------
        observations
            Cleaned readings of any of the fleet's turbines (``fit`` describes the
            columns), all later than the turbine's readings processed before.

        Returns
        -------
        dict of str to list of Alarm
            Alarms raised during this call, per turbine.
        """
        self._check_fitted()
        frame = self._checked(observations, self.specs_)
        blocks = {
            str(t): rows.sort_values("time", kind="stable")
            for t, rows in frame.groupby("asset_id", sort=True)
        }
        for t, block in blocks.items():
            first = block["time"].iloc[0]
            if first <= self.last_time_[t]:
                raise ValueError(
                    f"observations['time']: expected readings of turbine {t!r} after "
                    f"{self.last_time_[t]} (its latest reading processed), got {first}"
                )
        scored = {t: self._score(t, blocks[t]) for t in blocks}
        # Every turbine is a column, NaN where it has no reading: the others' reference.
        residuals = pd.DataFrame(
            {t: frame.set_index("time")["residual"] for t, frame in scored.items()},
            columns=list(self.specs_),
            dtype=np.float64,
        )
        contrast = fleet_contrast(residuals, min_others=self.min_others)
        alarms: dict[str, list[Alarm]] = {t: [] for t in self.specs_}
        for t, block in blocks.items():
            times = scored[t]["time"]
            readings = scored[t].assign(contrast=contrast[t].reindex(times).to_numpy())
            self._readings[t].append(readings)
            self.last_time_[t] = times.iloc[-1]
            if not self.calibrated_:
                self.twins_[t].update(model_inputs(block, self.specs_[t].rated_power))
                continue
            alarms[t] = self.detectors_[t].update(
                pd.DatetimeIndex(times), readings["contrast"], readings["sensitivity"]
            )
            self._assimilate(t, block)
        return alarms

    def _score(self, turbine: str, block: pd.DataFrame) -> pd.DataFrame:
        """Week-ahead residual [sd], loss sensitivity [sd] and anomaly score of readings."""
        inputs = model_inputs(block, self.specs_[turbine].rated_power)
        predictive = self.twins_[turbine].predict(inputs)
        power = inputs["power"]
        residual = standardised_residuals(predictive, power, seed=self._rngs[turbine])
        if "temp_air" in block:
            cold = block["temp_air"].to_numpy(np.float64) < self.icing_temperature
            residual = np.where(cold, np.nan, residual)
        return pd.DataFrame(
            {
                "time": pd.DatetimeIndex(block["time"]),
                "residual": residual,
                "sensitivity": loss_sensitivity(
                    predictive, self.loss, max_sensitivity=self.max_sensitivity
                ),
                "anomaly_score": anomaly_score(predictive, power),
            }
        )

    def _assimilate(self, turbine: str, block: pd.DataFrame) -> None:
        """Learn from the readings the detector cleared; drop those it rejected."""
        waiting = self._pending[turbine]
        pending = pd.concat([waiting, block]) if len(waiting) else block
        times = pd.DatetimeIndex(pending["time"])
        detector = self.detectors_[turbine]
        cleared = detector.cleared(times)
        rejected = detector.rejected(times)
        if cleared.any():
            rated = self.specs_[turbine].rated_power
            self.twins_[turbine].update(model_inputs(pending[cleared], rated))
        self._pending[turbine] = pending[~cleared & ~rejected]

    def run(
        self, observations: pd.DataFrame, start: TimeLike, stop: TimeLike | None = None
    ) -> dict[str, list[Alarm]]:
        """:meth:`update` with the readings in ``[start, stop)``, one ``horizon`` at a time.

        Parameters
        ----------
        observations
            Cleaned readings of the fleet; only those in ``[start, stop)`` are used.
        start
            Start of the first block (strings are read as UTC).
        stop
            End of the period, exclusive; ``None`` runs through the latest reading.

        Returns
        -------
        dict of str to list of Alarm
            Alarms raised during the run, per turbine.
        """
        self._check_fitted()
        begin = _utc(start, "start")
        time = observations["time"]
        _check_aware(time)
        alarms: dict[str, list[Alarm]] = {t: [] for t in self.specs_}
        if stop is None and time.empty:
            return alarms
        end = time.max() + pd.Timedelta(1, "ns") if stop is None else _utc(stop, "stop")
        if not begin < end:
            raise ValueError(f"stop: expected a time after start={begin}, got {end}")
        period = observations[(time >= begin) & (time < end)]
        # Blocks of horizon from begin, those with readings only: walking every block to
        # a far-off stop (--until 9999) took minutes and held the store's lock.
        block = ((period["time"] - begin) // self._step).to_numpy()
        for index in np.unique(block):
            for t, new in self.update(period[block == index]).items():
                alarms[t].extend(new)
        return alarms

    def calibrate(self) -> Self:
        """Calibrate each turbine's detector on the readings processed so far.

        The readings since :meth:`fit` (the twins live, learning everything) are taken
        as healthy: each detector's batch-means variance factor comes from their
        contrasts and sensitivities. From now on :meth:`update` monitors.

        Raises
        ------
        ValueError
            If a turbine has fewer than ``min_calibration_periods`` usable periods; the
            message names the turbine.
        """
        self._check_fitted()
        if self.calibrated_:
            raise RuntimeError("FleetMonitor: already calibrated; fit() again to start over")
        for t, detector in self.detectors_.items():
            parts = self._readings[t]
            if not parts:
                raise ValueError(
                    f"calibration readings of turbine {t!r}: expected at least "
                    f"{self.min_calibration_periods} periods of {self.period}, got none: "
                    "the twins have run live over no reading of it (has it readings in the "
                    "calibration period? run() the twins live over a healthy period first)"
                )
            readings = pd.concat(parts, ignore_index=True)
            try:
                detector.calibrate(
                    pd.DatetimeIndex(readings["time"]),
                    readings["contrast"],
                    readings["sensitivity"],
                )
            except ValueError as error:
                raise ValueError(
                    f"calibration readings of turbine {t!r} ({readings['time'].iloc[0]} to "
                    f"{readings['time'].iloc[-1]}): {error}"
                ) from error
        self.calibrated_ = True
        return self

    def flush(self) -> dict[str, list[Alarm]]:
        """Judge every detector's open period now (at the end of the data).

        Readings the judgement clears stay held back until the next :meth:`update`,
        which takes readings after the periods judged only (the rest of a day flushed
        at noon is refused: each period is judged once).

        Returns
        -------
        dict of str to list of Alarm
            Alarms raised, per turbine.
        """
        self._check_fitted()
        if not self.calibrated_:
            return {t: [] for t in self.specs_}
        return {t: detector.flush() for t, detector in self.detectors_.items()}

    # -- results ---------------------------------------------------------------------------
    @property
    def alarms_(self) -> dict[str, list[Alarm]]:
        """Every alarm raised so far, per turbine."""
        return {t: list(detector.alarms_) for t, detector in self.detectors_.items()}

    def results(self, start: TimeLike | None = None) -> dict[str, MonitorResult]:
        """Per-reading residuals, contrasts, scores and alarm flags, and alarms.

        Parameters
        ----------
        start
            Keep the readings from this time on; ``None`` keeps every reading processed
            since :meth:`fit`, the calibration period included.
        """
        self._check_fitted()
        begin = None if start is None else _utc(start, "start")
        out: dict[str, MonitorResult] = {}
        for t, parts in self._readings.items():
            frame = pd.concat(parts, ignore_index=True) if parts else _empty_readings()
            if begin is not None:
                frame = frame[frame["time"] >= begin].reset_index(drop=True)
            detector = self.detectors_[t]
            frame["alarm"] = detector.rejected(pd.DatetimeIndex(frame["time"]))
            out[t] = MonitorResult(frame[list(_READING_COLUMNS)], list(detector.alarms_))
        return out

    # -- copies ----------------------------------------------------------------------------
    def copy(self) -> FleetMonitor:
        """An independent copy with the same configuration and state.

        Running the copy (on other data, say with a loss injected) leaves this monitor
        as it is, and vice versa; both draw the same random numbers from here on.
        """
        other = type(self)(**self.get_params())
        other.specs_ = dict(self.specs_)
        other.twins_ = {
            t: Twin(twin.twin_id, twin.schema, clone_emulator(twin.emulator))
            for t, twin in self.twins_.items()
        }
        other.detectors_ = copy.deepcopy(self.detectors_)
        other.calibrated_ = self.calibrated_
        other.last_time_ = dict(self.last_time_)
        other._rngs = copy.deepcopy(self._rngs)
        # Frames are never changed in place, so copies of the lists suffice.
        other._readings = {t: list(parts) for t, parts in self._readings.items()}
        other._pending = dict(self._pending)
        return other

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _empty_readings() -> pd.DataFrame:
    frame = pd.DataFrame({c: np.zeros(0, dtype=np.float64) for c in _READING_COLUMNS[1:-1]})
    frame.insert(0, "time", pd.DatetimeIndex([], tz="UTC"))
    return frame


def monitor_fleet(
    observations: pd.DataFrame,
    specs: Mapping[str, TurbineSpec],
    *,
    live_from: TimeLike,
    monitor_from: TimeLike,
    stop: TimeLike | None = None,
    seed: int | np.random.Generator | None = 0,
    min_others: int = 2,
) -> dict[str, MonitorResult]:
    """Monitor a fleet for persistent underperformance, with :class:`FleetMonitor`'s
    defaults, in one call.

    The twins are fitted on the readings before ``live_from``, run live (learning
    everything) until ``monitor_from``, which is the period the detectors are
    calibrated on, and monitored from ``monitor_from`` until ``stop``.

    Parameters
    ----------
    observations
        Cleaned readings of every turbine (``asset_id``, ``time`` in UTC,
        ``wind_speed`` [m/s], ``power`` [kW], ``temp_air`` [degC], ``wind_direction``
        [degree]), covering all three periods.
    specs
        The turbines, keyed by ``asset_id``.
    live_from, monitor_from
        Ends of the fitting and of the calibration period (strings are read as UTC).
        The calibration period needs at least 30 days of readings per turbine.
    stop
        End of monitoring, exclusive; ``None`` monitors through the latest reading.
    seed
        Randomness of the randomised PIT.
    min_others
        Fewest other turbines each turbine's residual is compared with
        (:class:`FleetMonitor`): 2 by default; 1 for a farm of two turbines, 0 for a
        turbine on its own residuals. With fewer, weather that all twins mispredict
        alike is not removed: on La Haute Borne in 2015, pairs of turbines kept 0.25
        false alarms per turbine-year and flagged 57 of 72 injected losses within 7
        days, turbines alone raised 1.26 false alarms per turbine-year and flagged 13
        of 24 (``docs/RESULTS.md``).

    Returns
    -------
    dict of str to MonitorResult
        Per turbine, the readings from ``monitor_from`` on and the alarms raised.

    Raises
    ------
    ValueError
        If ``monitor_from`` is not after ``live_from``, a turbine has no readings before
        ``live_from``, or :meth:`FleetMonitor.fit` or :meth:`FleetMonitor.calibrate`
        refuses the fleet or its readings.
    """
    live, monitored = _utc(live_from, "live_from"), _utc(monitor_from, "monitor_from")
    if not live < monitored:
        raise ValueError(f"monitor_from: expected a time after live_from={live}, got {monitored}")
    time = observations["time"]
    initial = observations[time < live]
    # FleetMonitor.fit would name only the missing turbines; here the period is known.
    missing = sorted(set(specs) - set(initial["asset_id"].astype(str)))
    if missing:
        raise ValueError(
            f"observations: no readings of turbine(s) {missing} before live_from={live}; "
            f"expected readings of every turbine before the calibration period ({live} to "
            f"monitor_from={monitored}) to fit its twin on"
        )
    monitor = FleetMonitor(seed=seed, min_others=min_others).fit(initial, specs)
    monitor.run(observations, live, monitored)
    monitor.calibrate()
    monitor.run(observations, monitored, stop)
    monitor.flush()
    return monitor.results(start=monitored)
