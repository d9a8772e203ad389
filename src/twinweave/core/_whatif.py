"""What-if interventions and their comparison against the live twin's baseline.

Results are reported on several quantities side by side, each with uncertainty, never
folded into one score: the trade-offs are for a person to weigh (Pias et al. 2025,
EDI 2 and 3).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from twinweave.core._arguments import check_count, check_flag, is_integer, is_real
from twinweave.core._emulator import Columns
from twinweave.core._predictive import CensoredNormal, time_seconds
from twinweave.core._schema import parse_unit, same_unit

if TYPE_CHECKING:
    from twinweave.core._twin import Twin

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SetInputs:
    """Replace input columns by hypothetical values (a wind series, a fixed density)."""

    values: Mapping[str, ArrayLike] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here, by name, not in a prediction later with NumPy's words.
        for name, value in self.values.items():
            # Text and bools convert to floats without complaint ("5" is 5.0, True 1.0).
            array = np.asarray(value)
            if array.dtype.kind not in "iuf":
                raise ValueError(f"SetInputs {name!r}: expected a number or numbers, got {value!r}")
            if array.ndim > 1:
                raise ValueError(
                    f"SetInputs {name!r}: expected one value or one per input row, got an "
                    f"array of shape {array.shape}"
                )

    def apply_inputs(self, inputs: Columns) -> Columns:
        """The inputs with these columns replaced: one value for every row, or a value
        per row (as many as the inputs have)."""
        lengths = {np.size(inputs[name]) for name in inputs if np.ndim(inputs[name]) > 0}
        n_rows = max(lengths) if lengths else None
        merged: dict[str, ArrayLike] = {name: inputs[name] for name in inputs}
        for name, value in self.values.items():
            array = np.atleast_1d(np.asarray(value, dtype=np.float64))
            if n_rows is not None and array.size == 1:
                array = np.full(n_rows, array[0])
            elif n_rows is not None and array.size != n_rows:
                raise ValueError(
                    f"SetInputs {name!r}: expected one value or {n_rows} (one per input "
                    f"row), got {array.size}"
                )
            merged[name] = array
        return merged

    def apply_predictive(self, predictive: CensoredNormal) -> CensoredNormal:
        return predictive

    def describe(self) -> str:
        return "set inputs " + ", ".join(sorted(self.values))


@dataclass(frozen=True)
class Derate:
    """Control setpoint: the target may not exceed ``limit`` [target units].

    ``units``, if given, is the unit ``limit`` is written in (``"kW"``): the description
    says it, and a twin whose target is in another unit refuses the derate.
    """

    limit: float
    units: str = ""

    def __post_init__(self) -> None:
        if not is_real(self.limit) or np.isnan(self.limit):
            raise ValueError(f"limit: expected a number [target units], got {self.limit!r}")
        # + 0.0: a limit of -0.0 reads "derate to 0", not "-0".
        object.__setattr__(self, "limit", float(self.limit) + 0.0)
        if not isinstance(self.units, str):
            raise TypeError(f"units: expected a unit such as 'kW', got {self.units!r}")
        if self.units:
            try:
                parse_unit(self.units)
            except ValueError as error:
                raise ValueError(f"units: {error}") from None

    def apply_inputs(self, inputs: Columns) -> Columns:
        return inputs

    def check_limit(self, lower: float, units: str) -> None:
        """Refuse a limit in another unit than the target's, ``units``, or below
        ``lower``, the lowest value the target takes (a twin's branch checks it against
        its schema, before any prediction)."""
        if self.units and units and not same_unit(self.units, units):
            raise ValueError(
                f"derate: expected a limit in the target's unit {units!r}, got "
                f"{self.limit:g} {self.units}"
            )
        if not self.limit >= lower:
            raise ValueError(
                f"derate: expected a limit at or above the lower bound {lower:g} {units}, got "
                f"{self.limit:g}; a stop is Stop()"
            )

    def apply_predictive(self, predictive: CensoredNormal) -> CensoredNormal:
        self.check_limit(predictive.lower, predictive.units)
        return predictive.clipped(predictive.lower, self.limit)

    def describe(self) -> str:
        return f"derate to {self.limit:g}" + (f" {self.units}" if self.units else "")


@dataclass(frozen=True)
class Stop:
    """Control setpoint: the asset is stopped; the target sits at its lower bound."""

    def apply_inputs(self, inputs: Columns) -> Columns:
        return inputs

    def apply_predictive(self, predictive: CensoredNormal) -> CensoredNormal:
        # Without a lower bound, stopped is 0 (power, flow); all of the mass sits there.
        floor = predictive.lower if np.isfinite(predictive.lower) else 0.0
        return predictive.clipped(floor, floor)

    def describe(self) -> str:
        return "stop"


@dataclass(frozen=True)
class ScaleTarget:
    """Changed parameter: the target scales by ``factor`` (a 3 % loss is ``0.97``).

    The branch predicts ``factor * Y`` clipped to the target's bounds: every value
    scales, the bounds' masses with them (a stopped turbine still delivers zero; one at
    rated power delivers ``factor`` times rated, so 0.5 halves a turbine's energy, and
    0 is a stop). What would pass a bound sits on it: above 1, a turbine at rated power
    stays there.
    """

    factor: float

    #: Largest factor taken: a larger change of a power curve is a new twin.
    MAX_FACTOR: ClassVar[float] = 1.25

    def __post_init__(self) -> None:
        if not is_real(self.factor):
            raise ValueError(
                f"factor: expected a number (0.97 for a 3 % loss), got {self.factor!r}"
            )
        if not 0.0 <= self.factor <= self.MAX_FACTOR:
            raise ValueError(
                f"factor: expected a scale in [0, {self.MAX_FACTOR:g}] (0.97 for a 3 % loss), "
                f"got {self.factor}; a larger change is a new twin, not a branch"
            )

    def apply_inputs(self, inputs: Columns) -> Columns:
        return inputs

    def apply_predictive(self, predictive: CensoredNormal) -> CensoredNormal:
        lower, upper = predictive.lower, predictive.upper
        if self.factor == 0.0:
            # Every value is 0: all of it there, or on the bound nearest it.
            zero = min(max(0.0, lower), upper)
            return predictive.clipped(zero, zero)
        # Every scaled value beyond a bound (half of a target within [100, 150]): all of
        # it sits on that bound.
        if self.factor * upper < lower:
            return predictive.clipped(lower, lower)
        if self.factor * lower > upper:
            return predictive.clipped(upper, upper)
        return predictive.scaled(self.factor).clipped(lower, upper)

    def describe(self) -> str:
        return f"scale target by {self.factor:g}"


class Metric(Protocol):
    """A quantity computed from sample paths, one value per path.

    A metric may also have a method ``check(upper, units)`` that raises ``ValueError``
    for a twin it does not fit (a rated power in other units than the twin's);
    :func:`compare` calls it with the physical upper bound and units of the twins'
    target in their schema (a branch's derate aside) before sampling.
    """

    @property
    def name(self) -> str: ...

    @property
    def units(self) -> str: ...

    def __call__(self, paths: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class WhatIfResult:
    """Baseline, scenario and difference per metric, with central intervals.

    ``interventions`` says how the scenario's interventions differ from the baseline's:
    its own beyond those they share, and "without the baseline's ..." for those of the
    baseline it lacks. ``predictions`` are the provenance ids of the baseline's and the scenario's
    predictions (``None`` for a twin without a recorder). The baseline's is in its
    recorder; the scenario's in the branch's, a fork that writes nowhere else
    (``recorder.adopt(branch.recorder.own_records())`` keeps it, as the command line's
    ``whatif`` does with its store).
    """

    metrics: tuple[str, ...]
    units: tuple[str, ...]
    baseline: FloatArray  # (n_samples, n_metrics)
    scenario: FloatArray
    level: float
    interventions: str
    predictions: tuple[str | None, str | None] = (None, None)

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: mean and interval of baseline, scenario, difference."""
        tail = (1 - self.level) / 2
        rows = []
        for k, (name, unit) in enumerate(zip(self.metrics, self.units, strict=True)):
            row: dict[str, float | str] = {"metric": name, "units": unit}
            for label, values in (
                ("baseline", self.baseline[:, k]),
                ("scenario", self.scenario[:, k]),
                ("difference", self.scenario[:, k] - self.baseline[:, k]),
            ):
                row[f"{label}_mean"] = float(values.mean())
                row[f"{label}_lo"] = float(np.quantile(values, tail))
                row[f"{label}_hi"] = float(np.quantile(values, 1 - tail))
            rows.append(row)
        return pd.DataFrame(rows)


def _min_samples(level: float) -> int:
    """The fewest sample paths that put, on average, one path in each tail beyond a
    central ``level`` interval: with fewer, its ends are interpolated between the few
    most extreme paths (with one path, it has no width)."""
    # The tolerance keeps 2 / (1 - 0.9) = 19.999... at 20.
    return math.ceil(2.0 / (1.0 - level) - 1e-9)


def time_steps_hours(seconds: ArrayLike) -> FloatArray:
    """Steps between the distinct times given in seconds [h], each step replaced by the
    middle one of its group: sorted, steps within 1 % of the group's shortest form a
    group, so that a logger's jitter of a second does not make each 10-minute step its
    own.

    Raises
    ------
    ValueError
        If a time is NaN.
    """
    distinct = np.unique(np.asarray(seconds, dtype=np.float64))
    if np.isnan(distinct).any():
        raise ValueError("time: expected times, got NaN")
    steps = np.diff(distinct)
    if steps.size == 0:
        return steps
    order = np.argsort(steps, kind="stable")
    ordered = steps[order]
    # A group spans 1 % of its shortest step: grouping each step with the one before
    # would chain distinct cadences into one where the steps between them are dense.
    bounds = [0]
    while bounds[-1] < ordered.size:
        bounds.append(int(np.searchsorted(ordered, 1.01 * ordered[bounds[-1]], "right")))
    starts, ends = np.array(bounds[:-1]), np.array(bounds[1:])
    group = np.repeat(np.arange(starts.size), ends - starts)
    middle = ordered[(starts + ends - 1) // 2]
    grouped = np.empty_like(steps)
    grouped[order] = middle[group]
    return np.asarray(grouped / 3600.0, dtype=np.float64)


def usual_step_hours(seconds: ArrayLike) -> float | None:
    """The usual step between times given in seconds [h]: their most frequent difference
    (:func:`time_steps_hours`; the shortest of equally frequent ones: a median would
    take a gap for the step where readings are few), repeated times aside; ``None`` for
    fewer than two times."""
    return _most_frequent(time_steps_hours(seconds))


def _most_frequent(steps: FloatArray) -> float | None:
    """The most frequent of ``steps`` (the shortest of equally frequent ones)."""
    if steps.size == 0:
        return None
    values, counts = np.unique(steps, return_counts=True)
    return float(values[int(np.argmax(counts))])


def _check_same_target(baseline: Twin, scenario: Twin) -> None:
    """Refuse a scenario that predicts another quantity than the baseline, or the same in
    other units: their differences would mean nothing (a twin in W beside one in kW)."""
    ours, theirs = (t.schema.variable(t.target) for t in (baseline, scenario))
    if ours.name != theirs.name or not same_unit(ours.unit, theirs.unit):
        raise ValueError(
            f"scenario: expected a twin of the baseline's target, {ours.name} in {ours.unit} "
            f"(a branch of it), got {scenario.twin_id!r} of {theirs.name} in {theirs.unit}"
        )


def _check_lineage(baseline: Twin, scenario: Twin) -> None:
    """Warn of a scenario whose differences from the baseline are not its what-if alone
    (its interventions, and readings given to it or to a branch between): the two stand
    for a common ancestor at different points (a branch keeps its parent as it was when
    branched, and the parent has learned since), for two copies of one twin that differ,
    or for no common twin at all (another turbine's, say)."""
    points = {id(twin): n_updates for twin, n_updates in baseline._lineage()}
    for ancestor, n_updates in scenario._lineage():
        if id(ancestor) in points:
            _warn_apart(baseline, scenario, ancestor.twin_id, points[id(ancestor)] - n_updates)
            return
    # No common object: compare the twins each line starts from.
    *_, (base_root, base_point) = baseline._lineage()
    *_, (scenario_root, scenario_point) = scenario._lineage()
    restored = base_root.parent_id is not None or scenario_root.parent_id is not None
    if restored and _related(base_root, scenario_root):
        return  # a branch restored from a store, its parent not at hand to compare
    if not restored and base_root.twin_id == scenario_root.twin_id:
        # Two copies of one twin (loaded twice, say): alike unless either learned more.
        if base_root.model_version_ != scenario_root.model_version_:
            differ = f"versions {base_root.model_version_} and {scenario_root.model_version_}"
        elif base_point != scenario_point:
            differ = f"{abs(base_point - scenario_point)} batch(es) of readings apart"
        else:
            return
        warnings.warn(
            f"baseline {baseline.twin_id!r} and scenario {scenario.twin_id!r} come from "
            f"two copies of {base_root.twin_id!r}, {differ}: the differences include "
            "those between the copies, not only the what-if",
            stacklevel=3,
        )
        return
    warnings.warn(
        f"scenario {scenario.twin_id!r} is no branch of the baseline {baseline.twin_id!r} "
        "nor of its parent: the differences include everything in which the two twins "
        "differ, not only interventions",
        stacklevel=3,
    )


def _related(first: Twin, second: Twin) -> bool:
    """Whether two twins are one twin or its branches by their identifiers: equal, or one
    a branch's default name under the other (``R80711/branch``), or one's parent."""
    names = {n for n in (first.twin_id, first.parent_id) if n is not None}
    others = {n for n in (second.twin_id, second.parent_id) if n is not None}
    return any(
        a == b or a.startswith(f"{b}/") or b.startswith(f"{a}/") for a in names for b in others
    )


def _warn_apart(baseline: Twin, scenario: Twin, ancestor: str, apart: int) -> None:
    if apart:
        warnings.warn(
            f"baseline {baseline.twin_id!r} and scenario {scenario.twin_id!r} stand for "
            f"{ancestor!r} {abs(apart)} batch(es) of readings apart (a branch keeps its "
            "parent as it was when branched): the differences include what "
            f"{ancestor!r} learned between, not only the what-if; branch again from "
            f"{ancestor!r} to compare the interventions alone",
            stacklevel=4,
        )


def duration_text(hours: float) -> str:
    """``hours`` as people say it: ``10 minutes``, ``60 minutes``, ``3 hours``."""
    minutes = hours * 60.0
    if minutes == 1.0:
        return "1 minute"
    return f"{minutes:g} minutes" if minutes < 120 else f"{hours:g} hours"


def _other_cadences(step_hours: FloatArray, usual: float) -> list[tuple[float, int]]:
    """Steps other than ``usual`` that the inputs keep to for a while, with how often:
    ``[(1.0, 11)]`` for twelve hourly readings after 10-minute ones.

    Gaps make longer steps here and there (many, where a tenth of the readings are
    missing); a second cadence makes them one after the other. Counted: the steps in runs
    of three or more equal ones, where they are a tenth or more of all steps.
    """
    if step_hours.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, step_hours[1:] != step_hours[:-1]])
    lengths = np.diff(np.r_[starts, step_hours.size])
    long = lengths >= 3
    run_steps, which = np.unique(step_hours[starts][long], return_inverse=True)
    in_runs = np.bincount(which, weights=lengths[long], minlength=run_steps.size)
    return [
        (float(step), int(count))
        for step, count in zip(run_steps, in_runs, strict=True)
        if step != usual and count >= max(3, 0.1 * step_hours.size)
    ]


def _check_reading_step(seconds: FloatArray, metrics: Sequence[Metric]) -> None:
    """Refuse repeated times, which every metric would count twice (the totals of a day
    given twice exceed what the asset can do in a day), and metrics that count each
    reading for another time than the inputs' usual step (hourly inputs with 10-minute
    metrics give a sixth of the energy); warn of a second cadence, whose readings are
    counted for the usual step too."""
    _, first_at, counts = np.unique(seconds, return_index=True, return_counts=True)
    if (counts > 1).any():
        # The first row that repeats an earlier row's time, and that earlier row.
        repeats = np.ones(seconds.size, dtype=bool)
        repeats[first_at] = False
        row = int(np.flatnonzero(repeats)[0])
        earlier = int(np.flatnonzero(seconds == seconds[row])[0])
        raise ValueError(
            f"time, row {row}: expected one reading per time, got the time of row "
            f"{earlier} again ({int(repeats.sum())} of {seconds.size} rows repeat an "
            "earlier row's time); every metric sums the readings over time, so a time "
            "given twice would be counted twice"
        )
    steps = time_steps_hours(seconds)
    step = _most_frequent(steps)  # usual_step_hours(seconds), the steps found once
    if step is not None:
        other = _other_cadences(steps, step)
        if other:
            listed = ", ".join(f"{duration_text(h)} {n} times" for h, n in other)
            warnings.warn(
                f"column 'time': the inputs step by {duration_text(step)} "
                f"{int(np.sum(steps == step))} times and by {listed}; every reading is "
                f"counted for {duration_text(step)}, the most frequent step, in every "
                "metric (energy, hours at rated, and the mean that capacity factor "
                "takes): give inputs at one step (resample them) if some stand for longer",
                stacklevel=3,
            )
    for metric in metrics:
        interval = getattr(metric, "interval_hours", None)
        # Within 5 %: calendar months (31 / 30.4 days) and local days across a
        # daylight-saving change (23 / 24 hours) count as their usual length.
        if (
            step is not None
            and is_real(interval)
            and not math.isclose(interval, step, rel_tol=0.05)
        ):
            raise ValueError(
                f"metrics: {metric.name} counts each reading for {interval:g} h, expected "
                f"the inputs' usual step between times, {step:g} h (for a turbine: "
                f"turbine_metrics(rated_power, interval_hours={step:g}))"
            )


def compare(
    baseline: Twin,
    scenario: Twin,
    inputs: Columns,
    metrics: Sequence[Metric],
    *,
    n_samples: int = 1000,
    level: float = 0.9,
    seed: int | np.random.Generator | None = 0,
    source: str | None = None,
    progress: bool = False,
) -> WhatIfResult:
    """Sample both twins on ``inputs`` and report every metric side by side.

    Both are sampled with the same random numbers (common random numbers), so the
    difference reflects the intervention rather than sampling noise. Give ``inputs`` a
    ``time`` column: sample paths then carry the twins' correlation in time
    (:attr:`Twin.noise_correlation_ <twinweave.core.Twin.noise_correlation_>`), without
    which the intervals of sums over time (energy, hours at rated) are far too narrow.

    Parameters
    ----------
    baseline, scenario
        The live twin and a branch of it.
    inputs
        Columns the twins predict from, with a ``time`` column.
    metrics
        Quantities computed from sample paths, one value per path each.
    n_samples
        Sample paths per twin: at least ``2 / (1 - level)`` (20 for 90 %), so that on
        average a path lies in each tail beyond an interval.
    level
        Probability of the central intervals reported.
    seed
        Seed of the common random numbers.
    source
        Provenance entity id of ``inputs``, passed to both twins' ``predict``.
    progress
        Show a progress bar on stderr (a year of 10-minute readings takes seconds to
        tens of seconds).

    Notes
    -----
    Metrics are given blocks of paths (a few dozen rows at a time), so that a year of
    readings needs one set of draws in memory, not one per twin.
    """
    if not isinstance(metrics, Sequence):
        raise TypeError(
            f"metrics: expected a sequence of metrics, such as turbine_metrics(2050.0), got "
            f"{type(metrics).__name__}"
        )
    if not metrics:
        raise ValueError("metrics: expected at least one metric, got none")
    _check_same_target(baseline, scenario)
    _check_lineage(baseline, scenario)
    if not is_real(level) or not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    needed = _min_samples(level)
    # An integer too small is told why; anything else, what is expected.
    if is_integer(n_samples) and n_samples < needed:
        raise ValueError(
            f"n_samples: expected at least {needed} sample paths for central "
            f"{level:.0%} intervals (one path in each tail on average), got {n_samples}"
        )
    check_count(n_samples, "n_samples", minimum=needed)
    # A single value stands for every row (one reading if all are single values).
    rows = [int(np.size(inputs[name])) for name in inputs if np.ndim(inputs[name]) > 0]
    # list(): a DataFrame has no truth value, and its len() counts rows, not columns.
    if not list(inputs) or (rows and max(rows) == 0):
        raise ValueError(f"inputs: expected at least one row, got none (columns {list(inputs)})")
    if "time" not in inputs and baseline.noise_correlation_ is not None:
        warnings.warn(
            "inputs have no 'time' column: sample paths are drawn with noise independent "
            "between readings, so intervals of sums over time are too narrow",
            stacklevel=2,
        )
    if "time" in inputs:
        _check_reading_step(time_seconds(inputs["time"]), metrics)
    check_flag(progress, "progress")
    if not (seed is None or isinstance(seed, np.random.Generator)):
        check_count(seed, "seed (or None, or a numpy Generator)", minimum=0)
    seed_int = int(seed.integers(2**63)) if isinstance(seed, np.random.Generator) else seed
    target = baseline.schema.variable(baseline.target)
    for metric in metrics:
        check = getattr(metric, "check", None)
        if callable(check):
            check(target.bounds[1], target.unit)
    predictives, predictions = [], []
    for twin in (baseline, scenario):
        predictives.append(twin.predict(inputs, source=source))
        predictions.append(twin.last_prediction_)
    # Whether each predictive can take the draws of the one before (a branch mostly can).
    shared = [_share_draws(a, b) for a, b in itertools.pairwise(predictives)]
    with _sampling_progress(progress, predictives, shared, n_samples) as advance:
        values = _metric_values(predictives, shared, metrics, n_samples, seed_int, advance)
    return WhatIfResult(
        metrics=tuple(m.name for m in metrics),
        units=tuple(m.units for m in metrics),
        baseline=values[0],
        scenario=values[1],
        level=level,
        interventions=_difference_text(baseline, scenario),
        predictions=(predictions[0], predictions[1]),
    )


def _difference_text(baseline: Twin, scenario: Twin) -> str:
    """How the scenario's interventions differ from the baseline's: those beyond the ones
    they share (a branch of a branch compared with its parent differs by its own), and
    the baseline's that the scenario lacks ("without the baseline's ..."), as where the
    baseline is the branch and the scenario its parent."""
    theirs, own = baseline.interventions, scenario.interventions
    # Shared by identity: a branch holds its parent's intervention objects, and a
    # hypothetical input's arrays have no truth value to compare by.
    shared = 0
    while shared < min(len(theirs), len(own)) and theirs[shared] is own[shared]:
        shared += 1
    added = "; ".join(i.describe() for i in own[shared:])
    if shared == len(theirs):
        return added
    without = "without the baseline's " + "; ".join(i.describe() for i in theirs[shared:])
    return f"{added} ({without})" if added else without


#: Paths mapped and measured at a time: a year of 10-minute points is 400 MB per 1,000
#: paths, 20 MB per block.
_PATH_BLOCK = 50


def _share_draws(first: CensoredNormal, other: CensoredNormal) -> bool:
    """Whether ``first``'s standard draws serve ``other`` as they are: the same points in
    time with the same correlation and as many shared factors (a branch's predictive
    mostly has them; one whose inputs changed the times draws its own)."""
    width = [None if p.factor is None else p.factor.shape[1] for p in (first, other)]
    if len(first) != len(other) or first.correlation != other.correlation or width[0] != width[1]:
        return False
    if first.times is None or other.times is None:
        return first.times is None and other.times is None
    return bool(np.array_equal(first.times, other.times))


def _metric_values(
    predictives: Sequence[CensoredNormal],
    shared_with_next: Sequence[bool],
    metrics: Sequence[Metric],
    n_samples: int,
    seed: int | None,
    advance: Callable[[float], None],
) -> list[FloatArray]:
    """Each metric on each predictive's paths, ``(n_samples, n_metrics)`` per
    predictive, the paths from the same seed (common random numbers).

    Drawing is most of the work (a year of 10-minute points takes 9 normal draws per
    point and path with the twins' correlation): the draws are taken once for all the
    predictives that can share them (``shared_with_next``: whether each but the last
    can hand its draws to the next), and mapped to paths a block at a time, so that one
    set of draws is in memory, not one set of paths per twin. The values are those of
    sampling each predictive whole from the seed.
    """
    draws: tuple[FloatArray, FloatArray | None] | None = None
    values = []
    for predictive, shared_by_next in zip(predictives, [*shared_with_next, False], strict=True):
        if draws is None:
            draws = predictive.standard_draws(n_samples, seed, on_block=advance)
        noise, shared = draws
        rows = []
        for start in range(0, n_samples, _PATH_BLOCK):
            block = slice(start, start + _PATH_BLOCK)
            # A copy in the draws' own memory order where the next predictive reads them:
            # the metrics' sums then add in the same order as over the whole array.
            part = noise[block].copy(order="K") if shared_by_next else noise[block]
            paths = predictive.paths_from(part, None if shared is None else shared[block])
            rows.append(np.column_stack([metric(paths) for metric in metrics]))
            advance(len(predictive) * paths.shape[0] / n_samples)
        values.append(np.concatenate(rows) if rows else np.empty((0, len(metrics))))
        if not shared_by_next:
            draws = None  # the next predictive draws its own, from the same seed
    return values


@contextmanager
def _sampling_progress(
    show: bool,
    predictives: Sequence[CensoredNormal],
    shared_with_next: Sequence[bool],
    n_samples: int,
) -> Iterator[Callable[[float], None]]:
    """A callback told the work done, in points drawn or mapped to paths (a point of all
    the paths), that draws a bar on stderr while the block runs; with ``show`` false it
    does nothing."""
    if not show:
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not (console.is_terminal or console.is_jupyter):
        yield _ignore  # a log or a pipe gets the result, not a bar's last frame
        return

    # Draws once, or once per predictive that cannot share them; paths per predictive.
    n_draws = 1 + sum(not shared for shared in shared_with_next)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        # Gone once done: the result follows (or an error, which should come first).
        transient=True,
    ) as bar:
        task = bar.add_task(
            f"sampling {n_samples:,} paths of {len(predictives[0]):,} points",
            total=float((n_draws + len(predictives)) * len(predictives[0])),
        )
        yield lambda done: bar.advance(task, done)


def _ignore(done: float) -> None:
    del done
