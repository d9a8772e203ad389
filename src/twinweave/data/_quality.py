"""Quality checks and quarantine: readings that fail a check are set aside with a reason.

A check is a small frozen dataclass with a ``name`` and a ``__call__(frame)`` that returns
the quarantine rows (``docs/CONTRACTS.md``) of the readings it rejects, indexed by the
labels of those readings in ``frame``. :func:`clean` runs a chain of checks over a raw
frame and splits it into observations (readings no check rejected) and the quarantine
(one row per failed check of a reading). Nothing is dropped silently: every raw reading
is either an observation or has at least one quarantine row saying why not, and a value
a check blanked (a reading kept without one faulty variable, as by
:class:`FrozenSensor`) has its row, with the value as read.

Every check is vectorised over the whole frame; there is no per-row Python.
"""

from __future__ import annotations

import math
import string
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from twinweave.core import GLOSSARY, parse_unit
from twinweave.core._schema import unit_registry
from twinweave.data._errors import DataError
from twinweave.data._sources import RECORD_COLUMNS, SourceSpec, at_csv_line

FloatArray = NDArray[np.float64]

#: Columns of a quarantine frame, in order.
QUARANTINE_COLUMNS: Final[tuple[str, ...]] = (
    "asset_id",
    "time",
    "source_row",
    "variable",
    "value",
    "check",
    "reason",
    "blanked",
)


@runtime_checkable
class Check(Protocol):
    """A quality check: which readings of a frame to quarantine, and why.

    ``__call__`` returns a quarantine frame (columns :data:`QUARANTINE_COLUMNS`) with one
    row per rejected reading, indexed by that reading's label in ``frame``; build it with
    :func:`quarantine_rows`. A row with ``blanked`` true sets only its ``variable`` to
    missing and keeps the reading (unless another row sets the reading aside).
    """

    @property
    def name(self) -> str:
        """Short name written in the quarantine's ``check`` column."""
        ...

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame: ...


def _unit_of(variable: str) -> str:
    """Canonical unit of a glossary variable, ``""`` for other columns (for messages)."""
    entry = GLOSSARY.get(variable)
    return "" if entry is None else entry[0]


def require_column(frame: pd.DataFrame, name: str, check: str) -> FloatArray:
    """Column ``name`` of ``frame`` as floats.

    Raises
    ------
    KeyError
        If the column is missing; the message names the check and the columns present.
    """
    if name not in frame.columns:
        raise KeyError(
            f"check {check!r} needs column {name!r}; the frame has {list(frame.columns)}"
        )
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _as_text(values: Any) -> pd.Series[str]:
    """Readable text of values, vectorised: floats rounded to 4 decimals."""
    series = pd.Series(values)
    if pd.api.types.is_float_dtype(series.dtype):
        series = series.round(4)
    return series.astype("string").fillna("NaN")


def quarantine_rows(
    frame: pd.DataFrame,
    mask: ArrayLike,
    *,
    check: str,
    variable: str,
    reason: str,
    value: ArrayLike | float = math.nan,
    fields: Mapping[str, ArrayLike] | None = None,
    blanked: bool = False,
) -> pd.DataFrame:
    """Quarantine rows for the readings of ``frame`` where ``mask`` is true.

    Parameters
    ----------
    frame
        A raw or observation frame.
    mask
        Boolean, one per row of ``frame``: the readings to quarantine.
    check
        The check's name.
    variable
        The variable that failed, ``"*"`` for the whole record.
    reason
        A template of what was found and what was expected. ``{value}``, ``{name}`` of
        any column of ``frame`` and any key of ``fields`` are filled in per reading
        (vectorised), for example ``"power = {value} kW at wind_speed = {wind_speed}
        m/s; expected power > 0 kW"``.
    value
        The offending value per row of ``frame`` (or one for all) [variable's unit].
    fields
        Extra per-row arrays, aligned with ``frame``, for the ``reason`` template.
    blanked
        Whether the check blanks ``variable`` (sets it to missing) and keeps the
        reading, rather than setting the reading aside.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`QUARANTINE_COLUMNS`, indexed by the labels of the rejected
        readings in ``frame``.
    """
    selected = np.flatnonzero(np.asarray(mask, dtype=bool))
    rows = frame.iloc[selected]
    n_selected = selected.size
    values = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(frame),))[selected]

    def field(key: str) -> pd.Series[str]:
        if key == "value":
            return _as_text(values)
        if fields is not None and key in fields:
            return _as_text(np.asarray(fields[key])[selected])
        if key in frame.columns:
            return _as_text(rows[key].to_numpy())
        raise KeyError(f"reason template of {check!r} names {key!r}, which is no column")

    text = pd.Series([""] * n_selected, dtype="string")
    for literal, key, spec, _ in string.Formatter().parse(reason):
        if spec:
            raise ValueError(f"reason template of {check!r}: format specs are not supported")
        text = text + literal
        if key is not None:
            text = text + field(key).to_numpy()
    index = rows.index
    return pd.DataFrame(
        {
            "asset_id": rows["asset_id"].astype("string").array,
            "time": rows["time"].astype("datetime64[ns, UTC]").array,
            "source_row": rows["source_row"].to_numpy(dtype=np.int64),
            "variable": pd.array([variable] * n_selected, dtype="string"),
            "value": values,
            "check": pd.array([check] * n_selected, dtype="string"),
            "reason": text.array,
            "blanked": np.full(n_selected, blanked),
        },
        index=index,
    )


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "asset_id": pd.array([], dtype="string"),
            "time": pd.array([], dtype="datetime64[ns, UTC]"),
            "source_row": np.array([], dtype=np.int64),
            "variable": pd.array([], dtype="string"),
            "value": np.array([], dtype=np.float64),
            "check": pd.array([], dtype="string"),
            "reason": pd.array([], dtype="string"),
            "blanked": np.array([], dtype=bool),
        }
    )


def _concat(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    non_empty = [part for part in parts if len(part)]
    if not non_empty:
        return _empty_quarantine()
    return non_empty[0] if len(non_empty) == 1 else pd.concat(non_empty)


def clean(raw: pd.DataFrame, checks: Sequence[Check]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a raw frame into observations and quarantine.

    Every check sees the whole raw frame, so a reading failing several checks has one
    quarantine row per failed check. A reading whose only rows are ``blanked`` is kept
    with those variables set to missing.

    Parameters
    ----------
    raw
        A raw frame (``docs/CONTRACTS.md``), for example from
        :func:`~twinweave.data.read_source`.
    checks
        The checks to run, in order.

    Returns
    -------
    observations
        The readings no check set aside, in raw order, with a fresh index; the values
        checks blanked are missing.
    quarantine
        One row per failed check of a reading, ordered by reading then check.

    Examples
    --------
    >>> raw = pd.DataFrame({
    ...     "asset_id": ["T1"] * 3,
    ...     "time": pd.date_range("2014-01-01", periods=3, freq="10min", tz="UTC"),
    ...     "source_row": [0, 1, 2],
    ...     "wind_speed": [5.0, 55.0, float("nan")]})
    >>> observations, quarantine = clean(
    ...     raw, [RequireFinite(("wind_speed",)), RangeCheck("wind_speed", 0.0, 40.0)])
    >>> len(observations), quarantine["check"].tolist()
    (1, ['range', 'missing'])
    >>> print(quarantine["reason"][0])
    wind_speed = 55.0 m/s is outside [0.0, 40.0] m/s; expected a value within it
    """
    work = raw.reset_index(drop=True)
    parts = []
    for check in checks:
        part = check(work)
        if tuple(part.columns) != QUARANTINE_COLUMNS:
            raise TypeError(
                f"check {check.name!r} returned columns {list(part.columns)}; expected "
                f"{list(QUARANTINE_COLUMNS)} (build them with quarantine_rows)"
            )
        parts.append(part)
    quarantine = _concat(parts)
    # A stable sort by reading keeps each reading's rows in check order.
    quarantine = quarantine.iloc[np.argsort(quarantine.index.to_numpy(), kind="stable")]
    labels = quarantine.index.to_numpy(dtype=np.intp)
    blanked = quarantine["blanked"].to_numpy(dtype=bool)
    failed = np.zeros(len(work), dtype=bool)
    failed[labels[~blanked]] = True
    if blanked.any():
        work = work.copy()
        variables = quarantine["variable"].to_numpy(dtype=object)
        for variable in pd.unique(variables[blanked]):
            at = labels[blanked & (variables == variable)]
            work.loc[at, str(variable)] = np.nan
    observations = work.loc[~failed].reset_index(drop=True)
    return observations, quarantine.reset_index(drop=True)


def quarantine_summary(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Counts of quarantine rows per check and variable, largest first.

    Returns
    -------
    pandas.DataFrame
        Columns ``check``, ``variable``, ``n_rows`` (quarantine rows) and ``n_assets``.
    """
    if len(quarantine) == 0:
        return pd.DataFrame(
            {
                "check": pd.array([], dtype="string"),
                "variable": pd.array([], dtype="string"),
                "n_rows": np.array([], dtype=np.int64),
                "n_assets": np.array([], dtype=np.int64),
            }
        )
    summary = (
        quarantine.groupby(["check", "variable"], observed=True)
        .agg(n_rows=("source_row", "size"), n_assets=("asset_id", "nunique"))
        .reset_index()
        .sort_values(["n_rows", "check"], ascending=[False, True], kind="stable")
    )
    return summary.reset_index(drop=True)


# -- generic checks -----------------------------------------------------------------------
@dataclass(frozen=True)
class RequireFinite:
    """Quarantine readings where any of ``variables`` is missing (NaN) or infinite.

    Parameters
    ----------
    variables
        Glossary names of the variables a reading must have, for example
        ``("wind_speed", "power")``.
    """

    variables: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.variables, str):
            raise TypeError(
                f"variables: expected a tuple of names, got the string {self.variables!r}; "
                f"write ({self.variables!r},)"
            )
        object.__setattr__(self, "variables", tuple(self.variables))

    @property
    def name(self) -> str:
        return "missing"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        parts = []
        for variable in self.variables:
            values = require_column(frame, variable, self.name)
            unit = _unit_of(variable)
            parts.append(
                quarantine_rows(
                    frame,
                    ~np.isfinite(values),
                    check=self.name,
                    variable=variable,
                    value=values,
                    reason=f"{variable} is {{value}}; expected a finite value"
                    + (f" [{unit}]" if unit else ""),
                )
            )
        return _concat(parts)


@dataclass(frozen=True)
class RangeCheck:
    """Quarantine readings with ``variable`` outside ``[lower, upper]`` (inclusive).

    Missing values are left to :class:`RequireFinite`; this check does not flag NaN.

    Parameters
    ----------
    variable
        Glossary name.
    lower, upper
        Physical bounds in the variable's canonical unit [unit of ``variable``].
    """

    variable: str
    lower: float = -math.inf
    upper: float = math.inf

    def __post_init__(self) -> None:
        if not self.lower <= self.upper:
            raise ValueError(
                f"RangeCheck({self.variable!r}): expected lower <= upper, "
                f"got [{self.lower}, {self.upper}]"
            )

    @property
    def name(self) -> str:
        return "range"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = require_column(frame, self.variable, self.name)
        unit = _unit_of(self.variable)
        suffix = f" {unit}" if unit else ""
        return quarantine_rows(
            frame,
            (values < self.lower) | (values > self.upper),
            check=self.name,
            variable=self.variable,
            value=values,
            reason=f"{self.variable} = {{value}}{suffix} is outside "
            f"[{self.lower}, {self.upper}]{suffix}; expected a value within it",
        )


#: Fewest finite readings of a variable that, all out of its physical range, refuse a
#: file (:func:`refuse_out_of_range`): a sensor fault or an outage puts a few readings
#: out of range, 20 in a row all out (over three hours of 10-minute readings) is the unit.
MIN_READINGS_ALL_OUT: Final[int] = 20

#: The units a variable is usually written in, tried when all of its readings are out
#: of range, to suggest the one that would put them in it.
_USUAL_UNITS: Final[dict[str, tuple[str, ...]]] = {
    "power": ("W", "kW", "MW"),
    "wind_speed": ("m/s", "km/h"),
    "temp_air": ("degC", "K"),
}


def refuse_out_of_range(
    raw: pd.DataFrame,
    checks: Sequence[Check],
    *,
    path: str,
    spec: SourceSpec,
    min_readings: int = MIN_READINGS_ALL_OUT,
) -> None:
    """Raise :class:`DataError` if every finite reading of a variable is out of its
    physical range (the bounds of a :class:`RangeCheck` among ``checks``).

    One reading out of range is quarantined; all of them (``min_readings`` or more, so
    that it cannot be chance) is a wrong unit that still converts (power in W read as
    kW), or a wrong rated power. Quarantining them all stores a file with no
    observation, and a store refuses the same file read again with the corrected
    mapping; so the file is refused before anything is stored.

    Parameters
    ----------
    raw
        Readings of one file as read by :func:`~twinweave.data.read_source` (all of
        them, or those of one asset when the bounds depend on the asset).
    checks
        The checks the readings are cleaned with; only :class:`RangeCheck` is used.
    path
        The file, for the message.
    spec
        The mapping the file was read with: which column and unit, for the message.
    min_readings
        Fewest finite readings of a variable for the refusal.

    Raises
    ------
    DataError
        Naming the file, the column, its unit, the first reading's row and value (in
        the mapping's unit) and the range expected; where one of the usual units of the
        variable (W, kW, MW; m/s, km/h; degC, K) would put nearly all in range, it is
        suggested.
    """
    for check in checks:
        if not isinstance(check, RangeCheck) or check.variable not in raw.columns:
            continue
        variable = check.variable
        values = require_column(raw, variable, check.name)
        finite = np.isfinite(values)
        if finite.sum() < min_readings:
            continue
        inside = finite & (values >= check.lower) & (values <= check.upper)
        if inside.any():
            continue
        column = spec.columns.get(variable)
        source = variable if column is None else column.source
        unit = _unit_of(variable) if column is None else column.unit
        canonical = _unit_of(variable)
        # Shown as in the file: in the mapping's unit, not the canonical one.
        as_read = _converted(values[finite], canonical, unit)
        first = int(np.flatnonzero(finite)[0])
        row = int(raw["source_row"].iloc[first]) if "source_row" in raw else first
        suggested = _unit_in_range(as_read, unit, check)
        if suggested is None:
            fix = "is the column's unit right (--mapping)"
        else:
            candidate, share = suggested
            fix = (
                f"read in {candidate!r}, {share:.0%} of them would be within it: is the "
                f"column's unit {candidate!r} (--mapping)"
            )
        rated = ", and the rated power (--rated-power, --assets)" if variable == "power" else ""
        error = DataError(
            f"all {int(finite.sum())} readings of {variable}, read in {unit!r}, are out of "
            "its physical range",
            path=path,
            column=source,
            row=row,
            value=float(f"{as_read[0]:.6g}"),
            expected=f"{variable} within [{check.lower:g}, {check.upper:g}] {canonical}; "
            f"{fix}{rated}?",
        )
        file = Path(path)
        raise at_csv_line(error, file, spec.delimiter) if file.is_file() else error


def _converted(values: FloatArray, unit: str, to: str) -> FloatArray:
    if not unit or not to or parse_unit(unit) == parse_unit(to):
        return values
    quantity = unit_registry().Quantity(values, unit)
    return np.asarray(quantity.to(to).magnitude, dtype=np.float64)


def _unit_in_range(as_read: FloatArray, unit: str, check: RangeCheck) -> tuple[str, float] | None:
    """The usual unit of ``check.variable`` other than ``unit`` in which 90 % or more
    of ``as_read`` (numbers as in the file) are within the check's range, with that
    share."""
    canonical = _unit_of(check.variable)
    for candidate in _USUAL_UNITS.get(check.variable, ()):
        if parse_unit(candidate) == parse_unit(unit):
            continue
        values = _converted(as_read, candidate, canonical)
        share = float(np.mean((values >= check.lower) & (values <= check.upper)))
        if share >= 0.9:
            return candidate, share
    return None


def _asset_codes(frame: pd.DataFrame) -> NDArray[np.intp]:
    if "asset_id" not in frame.columns:
        raise KeyError(
            f"quality checks need column 'asset_id'; the frame has {list(frame.columns)}"
        )
    codes, _ = pd.factorize(frame["asset_id"])
    return np.asarray(codes, dtype=np.intp)


def _time_ns(frame: pd.DataFrame) -> NDArray[np.int64]:
    if "time" not in frame.columns:
        raise KeyError(f"quality checks need column 'time'; the frame has {list(frame.columns)}")
    return np.asarray(pd.DatetimeIndex(frame["time"]).as_unit("ns").asi8, dtype=np.int64)


@dataclass(frozen=True)
class DuplicateTimestamps:
    """Quarantine the copies of a reading whose asset and time are not unique.

    Copies that differ are all quarantined: when two readings of one asset share a time
    with different values, nothing in the data says which one is right. (In the La
    Haute Borne SCADA file, readings from the hour skipped by the spring clock change
    were relabelled onto the next hour, so pairs of readings share one UTC time with
    different values.) Copies with the same values (a row exported twice) are one
    reading: the first is kept and the others are quarantined as its copies.
    """

    @property
    def name(self) -> str:
        return "duplicate_timestamp"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        keys = pd.DataFrame({"asset": _asset_codes(frame), "time": _time_ns(frame)})
        duplicated = keys.duplicated(keep=False).to_numpy()
        if not duplicated.any():
            return _empty_quarantine()
        # Only the rows that share an asset and time with another are compared (a few
        # hundred in two years of a farm): comparing every row's values cost more than
        # every other check together.
        shared = np.flatnonzero(duplicated)
        values = frame.drop(columns=[c for c in RECORD_COLUMNS if c in frame.columns])
        readings = pd.concat(
            [keys.iloc[shared].reset_index(drop=True), values.iloc[shared].reset_index(drop=True)],
            axis=1,
        )
        # A time held by one distinct reading (NaN equal to NaN) has only exact copies.
        n_distinct = readings.drop_duplicates().groupby(["asset", "time"]).size()
        alike_shared = (
            readings[["asset", "time"]]
            .join(n_distinct.rename("n"), on=["asset", "time"])["n"]
            .to_numpy()
            == 1
        )
        alike = np.zeros(len(frame), dtype=bool)
        alike[shared] = alike_shared
        later_copy = np.zeros(len(frame), dtype=bool)
        later_copy[shared] = readings.duplicated(keep="first").to_numpy() & alike_shared
        first = np.zeros(len(frame), dtype=np.int64)
        first[shared] = _first_rows(readings, frame["source_row"].to_numpy()[shared])
        copies = (
            quarantine_rows(
                frame,
                later_copy,
                check=self.name,
                variable="*",
                reason="a copy of source row {first} (asset {asset_id} at {time}, the same "
                "values); expected one reading per asset and time, so the first is kept",
                fields={"first": first},
            )
            if later_copy.any()
            else _empty_quarantine()
        )
        # Indexed by row of the frame, as clean() expects of every check's rows.
        return _concat([copies, self._differing(frame, keys, duplicated & ~alike)])

    def _differing(
        self, frame: pd.DataFrame, keys: pd.DataFrame, duplicated: NDArray[np.bool_]
    ) -> pd.DataFrame:
        if not duplicated.any():
            return _empty_quarantine()
        copies = keys[duplicated].assign(row=frame["source_row"].to_numpy()[duplicated].astype(str))
        group = copies.groupby(["asset", "time"], sort=False).ngroup().to_numpy()
        # One join per group of copies, not per row: the rows listed in every reason.
        listed = copies.groupby(group, sort=False)["row"].agg(", ".join)
        counts = np.bincount(group)
        n_copies = np.zeros(len(frame), dtype=np.int64)
        rows = np.empty(len(frame), dtype=object)
        n_copies[duplicated] = counts[group]
        rows[duplicated] = listed.reindex(group).to_numpy()
        differences = np.empty(len(frame), dtype=object)
        differences[duplicated] = _differences(frame.loc[duplicated], group)
        return quarantine_rows(
            frame,
            duplicated,
            check=self.name,
            variable="*",
            reason="{n_copies} readings of asset {asset_id} at {time} (source rows {rows}) "
            "with other values ({differences}); expected one reading per asset and time",
            fields={"n_copies": n_copies, "rows": rows, "differences": differences},
        )


def _differences(copies: pd.DataFrame, group: NDArray[np.integer[Any]]) -> NDArray[np.object_]:
    """Per row of ``copies`` (readings sharing an asset and time, ``group`` telling
    which), the variables whose values differ within its group with those values in
    row order: ``"power = 198.05, 345.22 kW"``, missing equal to missing."""
    names = [c for c in copies.columns if c not in RECORD_COLUMNS]
    text = {name: _as_text(copies[name].to_numpy()).to_numpy() for name in names}
    per_group: dict[Hashable, str] = {}
    # Loops over the groups of copies only: a few hundred in two years of a farm.
    for key, at in pd.Series(np.arange(len(copies))).groupby(group, sort=False).indices.items():
        listed = []
        for name in names:
            shown = [str(t) for t in text[name][at]]
            if len(set(shown)) == 1 and copies[name].iloc[at].nunique(dropna=False) > 1:
                # Equal to 4 decimals, not to the last digit: shown in full.
                shown = [repr(float(v)) for v in copies[name].iloc[at]]
            if len(set(shown)) > 1:
                unit = _unit_of(name)
                listed.append(f"{name} = {', '.join(shown)}{f' {unit}' if unit else ''}")
        per_group[key] = "; ".join(listed)
    return np.array([per_group[g] for g in group.tolist()], dtype=object)


def _first_rows(keys: pd.DataFrame, source_rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per row of ``keys`` (columns ``asset`` and ``time``), the source row of the first
    reading with its asset and time."""
    group = keys.groupby(["asset", "time"], sort=False).ngroup().to_numpy()
    first_of_group = pd.Series(source_rows).groupby(group).transform("first")
    return np.asarray(first_of_group.to_numpy(), dtype=np.int64)


@dataclass(frozen=True)
class StuckSensor:
    """Quarantine readings where ``variable`` repeats on ``n_repeats`` or more readings.

    Readings are taken per asset in time order; a run of exactly equal values of
    length ``n_repeats`` or more is quarantined whole. A live sensor's 10-minute average
    practically never repeats to the last digit; a frozen or unresponsive one does.
    Missing values never form a run. This is the unresponsive-sensor filter of OpenOA
    (``openoa.utils.filters.unresponsive_flag``, default threshold 3; Perr-Sauer et al.
    2021, *OpenOA: An Open-Source Codebase For Operational Analysis of Wind Farms*,
    JOSS 6(58), 2171, doi:10.21105/joss.02171), applied per asset.

    Parameters
    ----------
    variable
        Glossary name, for example ``"wind_speed"``.
    n_repeats
        Shortest run of equal consecutive values that counts as stuck (at least 2).
    """

    variable: str
    n_repeats: int = 3

    def __post_init__(self) -> None:
        if self.n_repeats < 2:
            raise ValueError(
                f"StuckSensor({self.variable!r}): expected n_repeats >= 2, got {self.n_repeats}"
            )

    @property
    def name(self) -> str:
        return "stuck_sensor"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = require_column(frame, self.variable, self.name)
        runs = _EqualRuns.of(frame, values)
        length = runs.ends - runs.starts + 1
        stuck = runs.per_reading(length >= self.n_repeats)
        unit = _unit_of(self.variable)
        suffix = f" {unit}" if unit else ""
        return quarantine_rows(
            frame,
            stuck,
            check=self.name,
            variable=self.variable,
            value=values,
            reason=f"{self.variable} = {{value}}{suffix} on {{length}} consecutive readings "
            "of this asset (source rows {first} to {last}); expected a value that changes "
            f"within {self.n_repeats} readings",
            fields={
                "length": runs.per_reading(length),
                "first": runs.per_reading(runs.source_rows[runs.starts]),
                "last": runs.per_reading(runs.source_rows[runs.ends]),
            },
        )


@dataclass(frozen=True)
class FrozenSensor:
    """Blank ``variable`` where it holds one value for ``min_hours`` or longer; the
    reading is kept.

    Readings are taken per asset in time order. A run is consecutive readings of one
    asset with exactly the same value, each within ``max_gap_hours`` of the one before
    (a longer gap in the data ends it; missing values never form one). Where a run lasts
    ``min_hours`` or longer from its first reading to its last, ``variable`` is blanked
    in each of its readings: set to missing in the observations, with a quarantine row
    (``blanked`` true) giving the value as read and why. The other variables of those
    readings are kept, so a frozen thermometer costs the readings their temperature (the
    power-curve emulator then uses the site's mean air density), not their power.

    It is the persistence test of automatic weather stations' quality control
    (Zahumenský 2004, *Guidelines on Quality Control Procedures for Data from Automatic
    Weather Stations*, WMO CBS/OPAG-IOS/ET AWS-3/Doc. 4(1)), which flags an air
    temperature that moves less than 0.1 degC in 60 minutes, with a longer span: 10-minute
    averages on La Haute Borne, in 0.1 degC steps, hold one value for up to 2.5 hours on a
    calm night, while R80721's thermometer stood at 32.2 and then 34.5 degC for 6.3 and
    12 hours on 8-9 June 2014, through the night. Time, not a count of readings, sets
    the span, so data sampled every minute or every hour is judged alike.

    Parameters
    ----------
    variable
        Glossary name, for example ``"temp_air"``.
    min_hours
        Shortest time [h] from first to last reading of a run that counts as frozen.
    max_gap_hours
        Longest time [h] between two readings of one run.
    """

    variable: str
    min_hours: float = 4.0
    max_gap_hours: float = 1.0

    def __post_init__(self) -> None:
        _check_hours(f"FrozenSensor({self.variable!r})", self.min_hours, self.max_gap_hours)

    @property
    def name(self) -> str:
        return "frozen_sensor"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = require_column(frame, self.variable, self.name)
        held = _HeldRuns.of(frame, values, self.min_hours, self.max_gap_hours)
        unit = _unit_of(self.variable)
        suffix = f" {unit}" if unit else ""
        return quarantine_rows(
            frame,
            held.per_reading(held.long),
            check=self.name,
            variable=self.variable,
            value=values,
            reason=f"{self.variable} = {{value}}{suffix} held for {{hours}} h on {{length}} "
            "readings of this asset, {first} to {last} UTC; expected a live sensor's value "
            f"to change within {self.min_hours:g} h ({self.variable} blanked, the reading "
            "kept)",
            fields=held.fields(),
            blanked=True,
        )


@dataclass(frozen=True)
class DeadChannel:
    """Quarantine readings where ``variable`` holds one value above ``idle`` for
    ``min_hours`` or longer.

    A turbine's power is never the same 10-minute average twice while it runs; it
    holds one value only when idle (at or below ``idle``: stopped, or drawing its own
    consumption). On La Haute Borne power holds one value for an hour or more only at
    -0.84 to -0.01 kW, for at most 2.2 hours, and never above 0 kW; a power channel that
    reads one positive value for hours is dead, and a twin fitted on it would learn a
    flat curve. Runs are taken as :class:`FrozenSensor` takes them (per asset, time
    order, a gap over ``max_gap_hours`` ends one), and the readings are quarantined
    whole: the value is the target, not an input that can be left out. Times, not
    counts, set the span, so any cadence is judged alike.

    Parameters
    ----------
    variable
        Glossary name, for example ``"power"``.
    min_hours
        Shortest time [h] from first to last reading of a run that counts as dead.
    max_gap_hours
        Longest time [h] between two readings of one run.
    idle
        Highest value held by a live channel [the variable's glossary unit].
    """

    variable: str
    min_hours: float = 3.0
    max_gap_hours: float = 1.0
    idle: float = 0.0

    def __post_init__(self) -> None:
        _check_hours(f"DeadChannel({self.variable!r})", self.min_hours, self.max_gap_hours)

    @property
    def name(self) -> str:
        return "dead_channel"

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = require_column(frame, self.variable, self.name)
        held = _HeldRuns.of(frame, values, self.min_hours, self.max_gap_hours)
        running = values[held.runs.order[held.runs.starts]] > self.idle
        unit = _unit_of(self.variable)
        suffix = f" {unit}" if unit else ""
        return quarantine_rows(
            frame,
            held.per_reading(held.long & running),
            check=self.name,
            variable=self.variable,
            value=values,
            reason=f"{self.variable} = {{value}}{suffix} held for {{hours}} h on {{length}} "
            "readings of this asset, {first} to {last} UTC; expected a live channel's value "
            f"to change within {self.min_hours:g} h above {self.idle:g}{suffix}",
            fields=held.fields(),
        )


def _check_hours(owner: str, min_hours: float, max_gap_hours: float) -> None:
    """Refuse a held run's span or gap that is no positive number of hours."""
    for field, value in (("min_hours", min_hours), ("max_gap_hours", max_gap_hours)):
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"{owner}: {field}: expected a positive number of hours, got {value}")


@dataclass(frozen=True)
class _HeldRuns:
    """Runs of one value, per asset in time order, and which last ``min_hours``."""

    runs: _EqualRuns
    duration_ns: NDArray[np.int64]
    long: NDArray[np.bool_]

    @classmethod
    def of(
        cls, frame: pd.DataFrame, values: FloatArray, min_hours: float, max_gap_hours: float
    ) -> _HeldRuns:
        runs = _EqualRuns.of(frame, values, max_gap_ns=round(max_gap_hours * _HOUR_NS))
        duration = runs.times[runs.ends] - runs.times[runs.starts]
        return cls(runs, duration, duration >= round(min_hours * _HOUR_NS))

    def per_reading(self, per_run: NDArray[Any]) -> NDArray[Any]:
        return self.runs.per_reading(per_run)

    def fields(self) -> dict[str, NDArray[Any]]:
        """Per reading: the run's hours, length, and first and last time as text."""
        runs = self.runs
        # Times as text for the long runs only: formatting every run's would be slow.
        first, last = (np.full(len(runs.starts), "", dtype=object) for _ in range(2))
        for text, at in ((first, runs.starts), (last, runs.ends)):
            times = pd.to_datetime(runs.times[at[self.long]], utc=True)
            text[self.long] = np.asarray(times.strftime("%Y-%m-%d %H:%M"), dtype=object)
        return {
            "hours": runs.per_reading(np.round(self.duration_ns / _HOUR_NS, 1)),
            "length": runs.per_reading(runs.ends - runs.starts + 1),
            "first": runs.per_reading(first),
            "last": runs.per_reading(last),
        }


_HOUR_NS = 3_600 * 10**9


@dataclass(frozen=True)
class _EqualRuns:
    """Runs of exactly equal consecutive values, per asset in time order.

    ``order`` sorts the frame's rows by asset, time and source row; ``starts`` and
    ``ends`` are the sorted positions of each run's first and last reading; ``times``
    [ns] and ``source_rows`` are in sorted order.
    """

    order: NDArray[np.intp]
    run: NDArray[np.intp]
    starts: NDArray[np.intp]
    ends: NDArray[np.intp]
    times: NDArray[np.int64]
    source_rows: NDArray[np.int64]

    @classmethod
    def of(
        cls, frame: pd.DataFrame, values: FloatArray, max_gap_ns: int | None = None
    ) -> _EqualRuns:
        asset = _asset_codes(frame)
        time = _time_ns(frame)
        source_row = frame["source_row"].to_numpy(dtype=np.int64)
        order = np.lexsort((source_row, time, asset))
        sorted_values, sorted_asset, times = values[order], asset[order], time[order]
        # NaN != NaN, so missing values never continue a run.
        continues = (sorted_values[1:] == sorted_values[:-1]) & (
            sorted_asset[1:] == sorted_asset[:-1]
        )
        if max_gap_ns is not None:
            continues &= np.diff(times) <= max_gap_ns
        breaks = np.concatenate(([True], ~continues))
        starts = np.flatnonzero(breaks)
        ends = np.concatenate((starts[1:], [len(order)])) - 1
        return cls(
            order=order,
            run=np.cumsum(breaks) - 1,
            starts=starts,
            ends=ends,
            times=times,
            source_rows=source_row[order],
        )

    def per_reading(self, per_run: NDArray[Any]) -> NDArray[Any]:
        """A value per run, spread to each reading of the run, in the frame's row order."""
        spread = np.empty(len(self.order), dtype=per_run.dtype)
        spread[self.order] = per_run[self.run]
        return spread
