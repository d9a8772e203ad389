"""File sources: a declared mapping from a file's columns to glossary variables.

A :class:`SourceSpec` says which column holds the asset, which holds the time and how
times are written, and which columns hold which glossary variables in which units with
which missing-value codes. :func:`read_source` reads a CSV or Parquet file under such a
spec into the raw frame of ``docs/CONTRACTS.md``: one row per reading, times in UTC,
values in the glossary's canonical units, missing codes turned into NaN.

Structural problems (a missing column, an unparseable time, an all-missing column, a
non-numeric value) raise :class:`~twinweave.data.DataError` naming the file, column, row
and value. Problems with individual readings (duplicated times, values out of range)
are not errors here: the raw frame keeps every row, and :func:`~twinweave.data.clean`
quarantines the readings that fail a check.

``docs/MAPPING.md`` describes the mapping file format with a complete example.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import datetime as dt
import difflib
import gzip
import hashlib
import io
import json
import lzma
import math
import os
import re
import tomllib
import warnings
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pint
import pyarrow as pa  # type: ignore[import-untyped]
import zstandard
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from twinweave.core import GLOSSARY, canonical_unit, parse_unit
from twinweave.core._schema import did_you_mean, unit_registry
from twinweave.data._errors import DataError

FloatArray = NDArray[np.float64]

#: Columns every raw or observation frame starts with; glossary variables follow.
RECORD_COLUMNS: Final[tuple[str, ...]] = ("asset_id", "time", "source_row")

#: Missing codes match a value within this relative tolerance, so that a code written
#: ``-273.2`` matches the float32 value ``-273.20001`` a SCADA export stores.
_CODE_RTOL: Final = 1e-6

# A trailing UTC offset or "Z" after a time of day marks an ISO 8601 time as zone-aware;
# requiring the time ("T01:00", " 0100") keeps a date's "-01" from passing for an offset.
_OFFSET_PATTERN: Final = (
    r"[Tt\s]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
)


def has_utc_offset(times: pd.Series[str]) -> NDArray[np.bool_]:
    """Per time written as text, whether it ends in a UTC offset or ``Z`` (is
    zone-aware); missing times are ``False``.

    Examples
    --------
    >>> has_utc_offset(pd.Series(["2015-06-01T00:10Z", "2015-06-01 00:10", "2015-06-01"]))
    array([ True, False, False])
    """
    text = times.astype("string").str.strip()
    return text.str.contains(_OFFSET_PATTERN, regex=True).to_numpy(dtype=bool, na_value=False)


CSV_SUFFIXES: Final = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz", ".txt")
PARQUET_SUFFIXES: Final = (".parquet", ".pq")


class _SpecProblem(ValueError):
    """A mapping problem with the field, value and expectation kept apart.

    Pydantic wraps it in a ``ValidationError``; :meth:`SourceSpec.from_file` unwraps it
    into a :class:`DataError` naming the mapping file.
    """

    def __init__(self, problem: str, *, field: str, value: object, expected: str) -> None:
        self.problem = problem
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: {problem}; found {value!r}, expected {expected}")


_UNIT_EXAMPLES: Final = "a pint unit expression such as 'kW', 'm/s', 'km/h', 'degC'"


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's keys and values, refusing a key given twice (TOML refuses it
    too; JSON would keep the last value, a column mapped twice read from one of them)."""
    content: dict[str, Any] = {}
    for key, value in pairs:
        if key in content:
            raise _DuplicateKey(key)
        content[key] = value
    return content


def _scaled_unit(expression: str) -> str | None:
    """For a unit with a number, the unit without it: ``", such as 'kW' for '1000*W'"``,
    or ``""`` when there is none; ``None`` for an expression without a number.

    pint reads such an expression as a quantity, which a unit cannot be.
    """
    try:
        quantity = unit_registry().parse_expression(expression)
        if not isinstance(quantity, pint.Quantity) or quantity.magnitude == 1:
            return None
        compact = quantity.to_compact()
        unit = f"{compact.units:~}"
        parse_unit(unit)
    except Exception:  # pint fails in many ways on text that is no expression: not scaled
        return None
    if unit and math.isclose(float(compact.magnitude), 1.0):
        return f", such as {unit!r} for {expression!r}"
    return ""


# A fixed UTC offset as loggers' manuals write it: "+01:00", "UTC+1", "GMT+0100".
_FIXED_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def _fixed_offset_hint(value: str) -> str:
    """For a fixed UTC offset, the IANA zone that keeps it all year (POSIX signs:
    ``Etc/GMT-1`` is UTC+1), since a logger that never changes to summer time is common
    and 'CET' or 'Europe/Paris' would shift its summer readings by an hour."""
    match = _FIXED_OFFSET.match(value.strip())
    if match is None:
        return ""
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours == minutes == 0:
        return "; for times that stay at UTC all year, 'UTC'"
    zone = f"Etc/GMT{'-' if sign == '+' else '+'}{hours}"
    offset = f"UTC{sign}{hours:02d}:{minutes:02d}"
    try:
        if minutes:
            raise ValueError(zone)  # the Etc zones keep whole hours only
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return (
            f"; no Etc zone keeps {offset} all year: write the offset into the times (a "
            "time_format with %z), or name the place's zone if it keeps no summer time"
        )
    return (
        f"; for times that stay at {offset} all year, {zone!r} (POSIX's sign, the "
        "opposite of the offset's)"
    )


class ColumnSpec(BaseModel):
    """Where a glossary variable is found in a file, and in which unit.

    Parameters
    ----------
    source
        Column name in the file, for example ``"Ws_avg"``.
    unit
        pint unit expression of the values in the file, for example ``"km/h"``; values
        are converted to the glossary's canonical unit on reading.
    missing_codes
        Values meaning "no reading", in the file's unit (for example ``-273.2`` for a
        temperature, ``"n/a"`` for text); they become NaN. A boolean is neither a number
        nor text and is refused (``true`` is not the code 1). Numeric codes match within a
        relative tolerance of 1e-6, so a code matches the float32 rounding of itself.
        Empty cells and pandas' usual NA spellings (``"NA"``, ``"NaN"``, ``"null"``) are
        missing without being declared.

    Examples
    --------
    >>> ColumnSpec(source="Ot_avg", unit="degC", missing_codes=(-273.2,)).unit
    'degC'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1)
    unit: str
    # Strict: pydantic would otherwise read a code written `true` as the number 1.0,
    # and every reading of exactly 1 would become NaN.
    missing_codes: tuple[StrictFloat | StrictStr, ...] = ()

    @field_validator("missing_codes", mode="before")
    @classmethod
    def _numpy_booleans_are_booleans(cls, value: object) -> object:
        # A strict float takes numpy's bool as 1.0; as Python's bool it is refused.
        if isinstance(value, list | tuple):
            return tuple(bool(code) if isinstance(code, np.bool_) else code for code in value)
        return value

    @field_validator("unit")
    @classmethod
    def _unit_is_known(cls, value: str) -> str:
        # pint reads "" as dimensionless, which no glossary variable is: say what is missing.
        if not value.strip():
            raise _SpecProblem(
                "unit is required", field="unit", value=value, expected=_UNIT_EXAMPLES
            )
        try:
            parse_unit(value)
        except ValueError:
            scaled = _scaled_unit(value)
            if scaled is not None:
                raise _SpecProblem(
                    "a unit with a scale factor is not supported",
                    field="unit",
                    value=value,
                    expected=f"a pint unit without a number{scaled}",
                ) from None
            raise _SpecProblem(
                "unknown unit",
                field="unit",
                value=value,
                expected=_UNIT_EXAMPLES + did_you_mean(value),
            ) from None
        return value

    @property
    def numeric_codes(self) -> tuple[float, ...]:
        """Missing codes that are numbers (text codes that read as numbers included)."""
        codes: list[float] = []
        for code in self.missing_codes:
            if isinstance(code, str):
                try:
                    codes.append(float(code))
                except ValueError:
                    continue
            else:
                codes.append(float(code))
        return tuple(codes)

    @property
    def text_codes(self) -> tuple[str, ...]:
        """Missing codes as they would be written in a text cell."""
        return tuple(code if isinstance(code, str) else repr(code) for code in self.missing_codes)


class SourceSpec(BaseModel):
    """How to read one kind of file: asset, time, variables, units, missing codes.

    Parameters
    ----------
    time_column
        Column holding the time of each reading (the end of its averaging interval).
    columns
        Glossary variable name -> where it is in the file and in which unit; each
        variable is read from a column of its own.
    asset_column
        Column holding the asset id (turbine name); give this or ``asset_id``.
    asset_id
        Fixed asset id, for files holding one asset only.
    time_zone
        IANA time zone (``"Europe/Paris"``, ``"UTC"``) of naive local times. Leave
        ``None`` when times carry UTC offsets (``2014-03-30T03:00:00+02:00``) or are
        zone-aware Parquet timestamps.
    time_format
        ``strftime`` format of the times; ``None`` reads ISO 8601. A format without
        ``%z`` needs ``time_zone``. pandas reads the times, so a directive it does not
        know (``%s``, epoch seconds) is refused.
    delimiter
        Field delimiter of CSV files.

    Notes
    -----
    Naive local times are converted to UTC with the zone's rules. A local time skipped
    when clocks go forward cannot be a real reading and raises :class:`DataError`. In the
    hour repeated when clocks go back, the first reading of an asset at a given local
    time is taken as summer time and the next as winter time, the order in which a
    logger writes them; where the asset's readings run backwards in time (an export
    newest first, judged from the steps between its local times), the first is winter
    time. An asset whose readings run neither way keeps the logger's order, with a
    warning. A single reading in that hour is taken as summer time, with a warning (it
    is an hour early if it was written in winter time).

    Examples
    --------
    >>> spec = SourceSpec(
    ...     asset_id="pump-1", time_column="t", time_zone="Europe/Paris",
    ...     columns={"power": ColumnSpec(source="P", unit="W")})
    >>> spec.source_columns()
    ('t', 'P')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_column: str = Field(min_length=1)
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    asset_column: str | None = None
    asset_id: str | None = None
    time_zone: str | None = None
    time_format: str | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @field_validator("columns")
    @classmethod
    def _variables_are_known(cls, columns: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for name, column in columns.items():
            if name not in GLOSSARY or name == "time":
                known = sorted(n for n in GLOSSARY if n != "time")
                raise _SpecProblem(
                    "variable not in the glossary",
                    field=f"columns.{name}",
                    value=name,
                    expected=f"a glossary variable name, one of {known}",
                )
            canonical = canonical_unit(name)
            if not _converts(column.unit, canonical):
                raise _SpecProblem(
                    f"unit of column {column.source!r} cannot be converted to {name}'s "
                    f"unit {canonical!r}",
                    field=f"columns.{name}.unit",
                    value=column.unit,
                    expected=f"a unit convertible to {canonical!r}"
                    + _convertible_suggestion(column.unit, canonical),
                )
        return columns

    @field_validator("time_format")
    @classmethod
    def _format_is_readable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # pandas reads times with directives of its own (not %s): a time written with the
        # format must read back with it, or every file read with the mapping would fail.
        try:
            written = _FORMAT_PROBE.strftime(value)
            pd.to_datetime(pd.Series([written]), format=value, utc=True, errors="raise")
        except ValueError as error:
            bad = re.match(r"'(.)' is a bad directive", str(error))
            raise _SpecProblem(
                f"time_format has a directive pandas cannot read, %{bad.group(1)}"
                if bad is not None
                else f"time_format cannot read the times it writes ({error})",
                field="time_format",
                value=value,
                expected="a format of strftime directives pandas reads, such as "
                "'%d/%m/%Y %H:%M' (%Y %m %d %H %M %S %f %z and the like); epoch seconds "
                "(%s) are not supported: convert them to ISO 8601 times first",
            ) from None
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone_is_known(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _SpecProblem(
                "unknown time zone",
                field="time_zone",
                value=value,
                expected="an IANA time zone name such as 'Europe/Paris' or 'UTC'"
                + _fixed_offset_hint(value),
            ) from None
        return value

    @model_validator(mode="after")
    def _asset_and_time_are_declared(self) -> SourceSpec:
        if (self.asset_column is None) == (self.asset_id is None):
            raise _SpecProblem(
                "the asset is declared twice or not at all",
                field="asset_column",
                value={"asset_column": self.asset_column, "asset_id": self.asset_id},
                expected="exactly one of asset_column (a column of asset ids) or "
                "asset_id (one asset for the whole file)",
            )
        # One column read as two variables, or as a variable and the time or asset, is a
        # copying slip (the wind speed's column given for the direction too): both would
        # be filled with the same readings.
        read_as = {self.time_column: "time_column", self.asset_column: "asset_column"}
        for name, column in self.columns.items():
            earlier = read_as.setdefault(column.source, name)
            if earlier == name:
                continue
            if earlier.endswith("_column"):
                problem = (
                    f"column {column.source!r} is both the {earlier.removesuffix('_column')} "
                    f"column and {name}'s"
                )
                expected = f"a column of its own for {name}, not the {earlier}"
            else:
                problem = f"column {column.source!r} is read as both {earlier} and {name}"
                expected = (
                    f"a column of its own for each variable ({name}'s column, not {earlier}'s)"
                )
            raise _SpecProblem(
                problem, field=f"columns.{name}.source", value=column.source, expected=expected
            )
        if self.time_format is not None:
            aware = "%z" in self.time_format or "%Z" in self.time_format
            if aware and self.time_zone is not None:
                raise _SpecProblem(
                    "time_format reads UTC offsets but time_zone is also declared",
                    field="time_format",
                    value=self.time_format,
                    expected="either a format with %z, or naive times with time_zone",
                )
            if not aware and self.time_zone is None:
                raise _SpecProblem(
                    "time_format reads naive times but no time_zone is declared",
                    field="time_format",
                    value=self.time_format,
                    expected="a time_zone such as 'Europe/Paris' or 'UTC', or %z in the format",
                )
        return self

    def source_columns(self) -> tuple[str, ...]:
        """The file columns this spec reads, each once, asset and time first."""
        names = [self.asset_column] if self.asset_column is not None else []
        names.append(self.time_column)
        names.extend(column.source for column in self.columns.values())
        return tuple(dict.fromkeys(names))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SourceSpec:
        """Load a mapping file (``.json`` or ``.toml``) holding a spec's fields.

        A TOML mapping for the La Haute Borne file reads::

            asset_column = "Wind_turbine_name"
            time_column = "Date_time"

            [columns.wind_speed]
            source = "Ws_avg"
            unit = "m/s"

            [columns.temp_air]
            source = "Ot_avg"
            unit = "degC"
            missing_codes = [-273.2]

        Raises
        ------
        DataError
            If the file is not valid JSON or TOML, or its content is not a valid spec;
            the error names the file, the key at fault, the value and what was expected.
        """
        name = os.fspath(path)
        suffix = Path(name).suffix.lower()
        # A byte-order mark (Notepad and Excel write one) is no part of the content.
        data = Path(name).read_bytes().removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line_start = data.rfind(b"\n", 0, error.start) + 1
            line_end = data.find(b"\n", error.start)
            raise DataError(
                f"mapping file is not UTF-8: byte {data[error.start]:#04x} (byte "
                f"{error.start - line_start + 1} of its line) cannot be decoded",
                path=name,
                column=None,
                row=None,
                line=data.count(b"\n", 0, error.start) + 1,
                value=data[line_start : line_end if line_end >= 0 else len(data)].rstrip(b"\r"),
                expected=_UTF8_EXPECTED,
            ) from None
        content: object
        if suffix == ".json":
            try:
                content = json.loads(text, object_pairs_hook=_unique_keys)
            except _DuplicateKey as duplicate:
                raise DataError(
                    f"mapping file gives {duplicate.key!r} twice (JSON keeps the last one "
                    "silently)",
                    path=name,
                    column=None,
                    row=None,
                    value=duplicate.key,
                    expected="each key once in an object",
                ) from None
            except json.JSONDecodeError as error:
                lines = text.splitlines()
                line = lines[error.lineno - 1] if 0 < error.lineno <= len(lines) else ""
                # Around the fault: a file written on one line is that line.
                start = max(0, error.colno - 1 - _JSON_CONTEXT)
                line = line[start : error.colno - 1 + _JSON_CONTEXT]
                raise DataError(
                    f"mapping file is not valid JSON: {error.msg} at line {error.lineno}, "
                    f"column {error.colno}",
                    path=name,
                    column=None,
                    row=None,
                    value=line,
                    expected="a JSON object with the fields of SourceSpec",
                ) from None
        elif suffix == ".toml":
            try:
                content = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                raise DataError(
                    f"mapping file is not valid TOML: {error}",
                    path=name,
                    column=None,
                    row=None,
                    value=None,
                    expected="a TOML document with the fields of SourceSpec",
                ) from None
        else:
            raise DataError(
                "unknown mapping file type",
                path=name,
                column=None,
                row=None,
                value=suffix,
                expected="a .json or .toml file",
            )
        if not isinstance(content, dict):
            raise DataError(
                "mapping file does not hold an object",
                path=name,
                column=None,
                row=None,
                value=type(content).__name__,
                expected="a JSON object or TOML table with the fields of SourceSpec",
            )
        try:
            return cls.model_validate(content)
        except ValidationError as error:
            raise _mapping_error(error, name) from None


#: A time written with a ``time_format`` to check that pandas reads it back.
_FORMAT_PROBE: Final = dt.datetime(2014, 3, 30, 13, 45, 56, 789000, tzinfo=dt.UTC)


def _converts(unit: str, canonical: str) -> bool:
    """Whether values in ``unit`` convert to ``canonical`` (``delta_degC`` to ``degC`` do
    not, though both are temperatures; ``percent`` does not convert to ``degree``)."""
    registry = unit_registry()
    try:
        registry.Quantity(1.0, unit).to(canonical)
    except pint.errors.PintTypeError:
        return False
    # pint takes an angle for a plain number (a radian has no dimension), so it converts
    # 'percent' to degrees (179.72 % to 103 degrees); the base units tell them apart.
    base = (registry.Quantity(1.0, u).to_base_units().units for u in (unit, canonical))
    return next(base) == next(base)


def _convertible_suggestion(unit: str, canonical: str) -> str:
    """``"; did you mean 'degC'?"`` for a unit that does not convert, or nothing."""
    suggestion = did_you_mean(unit, like=canonical)
    if suggestion:
        return suggestion
    absolute = unit.removeprefix("delta_")
    if absolute != unit and _converts(absolute, canonical):
        return f"; {unit!r} is a unit of differences: did you mean {absolute!r}?"
    return ""


#: What each key of a mapping holds, for errors pydantic finds (a wrong type, an empty
#: value); "missing_codes[]" is one code, "columns[]" one variable's table.
_KEY_EXPECTED: Final = {
    "time_column": "the name of the file's time column",
    "asset_column": "the name of the file's asset id column",
    "asset_id": "an asset id, as text",
    "time_zone": "an IANA time zone name such as 'Europe/Paris' or 'UTC'",
    "time_format": "a strftime format such as '%d/%m/%Y %H:%M'",
    "delimiter": "one character, such as ',' or ';'",
    "columns": "a table of glossary variables (wind_speed, power, ...), each with its "
    "source and unit",
    "columns[]": "a table with source and unit (and optionally missing_codes)",
    "source": "the name of the column in the file",
    "unit": _UNIT_EXAMPLES,
    "missing_codes": "a list of numbers or text, such as [-999, 'n/a']",
    "missing_codes[]": "a number or text, such as -999 or 'n/a'",
}

#: What a value of the wrong type should have been, by pydantic's error type.
_TYPE_WANTED: Final = {
    "string_type": "text",
    "float_type": "a number",
    "float_parsing": "a number",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
}


def _key_path(loc: tuple[int | str, ...]) -> tuple[str, str]:
    """``("columns.power.missing_codes[0]", "missing_codes[]")``: where a pydantic error
    is, written as in the mapping, and which kind of key (of :data:`_KEY_EXPECTED`)."""
    where = ""
    kind = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            where += f"[{part}]"
            kind += "[]"
        elif position > 0 and isinstance(loc[position - 1], int):
            continue  # the member of a union (float | str) pydantic tried: not a key
        elif loc[:1] == ("columns",) and position == 1:
            where += f".{part}"
            kind = "columns[]"
        else:
            where += f".{part}" if where else part
            kind = part
    return where, kind


def _mapping_error(error: ValidationError, path: str) -> DataError:
    """The first problem of a failed validation, as a :class:`DataError`."""
    problems = error.errors()
    # A misspelt key is named first: the "field required" it also causes (``units`` for
    # ``unit``) does not say what to fix.
    first = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    # A value that is none of a union's types (float | str) fails once for each of them.
    places = dict.fromkeys(_key_path(p["loc"])[0] or "the mapping" for p in problems)
    others = [place for place in places if place != (_key_path(first["loc"])[0] or "the mapping")]
    more = (
        f" (and a problem at {others[0]})"
        if len(others) == 1
        else f" (and {len(others)} more problems, at {', '.join(others)})"
        if others
        else ""
    )
    original = first.get("ctx", {}).get("error")
    if isinstance(original, _SpecProblem):
        # Field validators know only their own field; pydantic knows where it sits.
        location = ".".join(str(part) for part in first["loc"])
        field = original.field
        if location and not field.startswith(location):
            field = location if location.endswith(field) else f"{location}.{field}"
        return DataError(
            original.problem + more,
            path=path,
            column=field,
            row=None,
            value=original.value,
            expected=original.expected,
        )
    location = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        *parents, key = (str(part) for part in first["loc"])
        model: type[BaseModel] = ColumnSpec if parents else SourceSpec
        keys = list(model.model_fields)
        close = difflib.get_close_matches(key, keys, n=1)
        return DataError(
            f"unknown key {key!r} in {'.'.join(parents) or 'the mapping'}{more}",
            path=path,
            column=location,
            row=None,
            value=key,
            expected=f"one of {', '.join(keys)}"
            + (f" (did you mean {close[0]!r}?)" if close else ""),
        )
    # Any other problem is pydantic's, in its words; here in the mapping's.
    where, key = _key_path(first["loc"])
    name = where.rpartition(".")[2]
    expected = _KEY_EXPECTED.get(key, first["msg"])
    value: Any = first.get("input")
    kind = first["type"]
    if kind == "missing":
        problem = f"missing key {name!r} in {where.rpartition('.')[0] or 'the mapping'}"
        value = None
    elif key == "missing_codes[]":
        if value is None:
            problem = "missing code is null"
        elif isinstance(value, bool):
            problem = "missing code is a boolean, not a number or text"
        else:
            problem = "missing code is not a number or text"
    elif kind in ("too_short", "string_too_short"):
        problem = f"{name} is empty"
        if key == "columns":
            expected = "at least one glossary variable (wind_speed, power, ...), each with its "
            expected += "source and unit"
    elif kind == "string_too_long":
        problem = f"{name} is too long"
    elif kind in _TYPE_WANTED:
        problem = f"{name} is not {_TYPE_WANTED[kind]}"
    else:
        problem = f"{name} is invalid: {first['msg']}"
    return DataError(
        problem + more,
        path=path,
        column=where or None,
        row=None,
        value=value,
        expected=expected,
    )


@dataclass(frozen=True)
class SourceInfo:
    """Identity of a file that was read: where, which content, how many rows.

    Parameters
    ----------
    path
        The file's absolute path (resolved when read), so that the provenance of what
        came of it leads back to it from any working directory.
    sha256
        SHA-256 of the file's bytes (hex), for provenance.
    n_rows
        Number of data rows (header excluded).
    """

    path: str
    sha256: str
    n_rows: int


def _sha256(file: Path) -> str:
    with file.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_source(path: str | os.PathLike[str], spec: SourceSpec) -> tuple[SourceInfo, pd.DataFrame]:
    """Read a CSV or Parquet file into a raw frame (``docs/CONTRACTS.md``).

    Parameters
    ----------
    path
        A ``.csv`` (optionally compressed) or ``.parquet`` file.
    spec
        Which columns hold what, in which units and time zone.

    Returns
    -------
    info
        The file's path, SHA-256 and number of rows.
    raw
        One row per data row of the file, in file order: ``asset_id`` (string),
        ``time`` (UTC), ``source_row`` (0-based), then the declared variables in the
        glossary's canonical units, missing codes as NaN.

    Raises
    ------
    DataError
        If a declared column is missing, a time cannot be parsed, has no offset when no
        time zone is declared, or does not exist in the declared zone; if a value is not
        a number; if a declared column holds no value at all; if an asset id is missing.
        The error names the 0-based data row (the row's ``source_row``) and, for a CSV
        file, the 1-based line of the file it starts on: ``row 3 (line 5)``; for a
        Parquet file, ``row 3, counting data rows from 0``.

    Notes
    -----
    A single unparseable time fails the whole file rather than quarantining the row:
    the raw frame has no time to give it, and a time column that does not parse
    usually means a wrong ``time_format`` or ``time_zone``, which quarantining would
    hide. The error names the first bad row and how many there are. Duplicated times
    are not an error here; :class:`~twinweave.data.DuplicateTimestamps` quarantines
    them in :func:`~twinweave.data.clean`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "pump.csv").write_text(
    ...     "t,P\\n2014-03-30 01:50,1500\\n2014-03-30 03:00,1600\\n")
    >>> spec = SourceSpec(asset_id="pump-1", time_column="t", time_zone="Europe/Paris",
    ...                   columns={"power": ColumnSpec(source="P", unit="W")})
    >>> info, raw = read_source(folder / "pump.csv", spec)
    >>> raw[["time", "power"]]
                           time  power
    0 2014-03-30 00:50:00+00:00    1.5
    1 2014-03-30 01:00:00+00:00    1.6
    """
    name = os.fspath(path)
    file = Path(name)
    kind = file_kind(name)
    present = _header(file, kind, spec, name)
    for role, source in _roles(spec):
        if source not in present:
            # One column holding the names joined by another separator: say which.
            others = [sep for sep in (";", ",", "\t", "|") if sep != spec.delimiter]
            joined = [sep for sep in others if len(present) == 1 and sep in present[0]]
            # The delimiter read with is named: the command line's --delimiter replaces
            # the mapping's, and a hint to declare one the mapping holds misleads.
            hint = (
                f" (separated by {joined[0]!r}? the file was read as separated by "
                f"{spec.delimiter!r}: declare delimiter in the mapping, or give twinweave "
                f"--delimiter {joined[0]!r}, which replaces the mapping's)"
                if joined
                else ""
            )
            raise DataError(
                f"missing column; the file has columns {present}{hint}",
                path=name,
                column=source,
                row=None,
                value=None,
                expected=f"a column named {source!r} holding {role}",
            )
    # Hashed before and after parsing: the hash recorded is of the bytes parsed, or the
    # file is refused (another process was writing or replacing it).
    sha256 = _sha256(file)
    frame = _read_columns(file, kind, spec, name)
    if _sha256(file) != sha256:
        raise DataError(
            "the file changed while it was read",
            path=name,
            column=None,
            row=None,
            value=None,
            expected="a file no other process writes while it is read; read it again once "
            "it is complete",
        )
    n_rows = len(frame)
    if n_rows == 0:
        raise DataError(
            "no data rows",
            path=name,
            column=None,
            row=None,
            value=0,
            expected="at least one data row below the header",
        )
    try:
        asset = _assets(frame, spec, name)
        times = _times(frame[spec.time_column], asset, spec, name)
        data: dict[str, Any] = {
            "asset_id": asset.array,
            "time": times.array,
            "source_row": np.arange(n_rows, dtype=np.int64),
        }
        for variable, column in spec.columns.items():
            data[variable] = _values(frame[column.source], column, variable, name)
    except DataError as error:
        raise at_csv_line(error, file, spec.delimiter) from None
    # Absolute: provenance must lead to the file from wherever the chain is read.
    return SourceInfo(path=str(file.resolve()), sha256=sha256, n_rows=n_rows), pd.DataFrame(data)


def at_csv_line(error: DataError, file: Path, delimiter: str = ",") -> DataError:
    """``error`` with the line of its row where ``file`` is a CSV: errors name the 0-based
    data row, and a CSV's reader also wants the line to go to."""
    if error.row is None or error.line is not None or not file.name.lower().endswith(CSV_SUFFIXES):
        return error
    return error.with_line(csv_line(file, error.row, delimiter))


# -- reading ------------------------------------------------------------------------------
def file_kind(name: str) -> Literal["csv", "parquet"]:
    """``"csv"`` or ``"parquet"`` by a file's name; any other raises :class:`DataError`."""
    lower = name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    raise DataError(
        "unknown file type",
        path=name,
        column=None,
        row=None,
        value=Path(name).suffix,
        expected=f"one of {[*CSV_SUFFIXES, *PARQUET_SUFFIXES]}",
    )


def _roles(spec: SourceSpec) -> list[tuple[str, str]]:
    roles = [] if spec.asset_column is None else [("the asset id", spec.asset_column)]
    roles.append(("the time", spec.time_column))
    roles.extend(
        (f"{variable} [{column.unit}]", column.source) for variable, column in spec.columns.items()
    )
    return roles


def _unreadable(file: Path, name: str, kind: str, error: Exception, spec: SourceSpec) -> DataError:
    ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if ragged is not None:
        n_expected, record, n_found = (int(group) for group in ragged.groups())
        row, line = _ragged_position(file, record, spec.delimiter)
        # Where the file cannot be read again as text, pandas' own count is all there is.
        counted = "" if row is not None else f" in record {record} (header 1, blank lines counted)"
        return DataError(
            "row has more fields than the header",
            path=name,
            column=None,
            row=row,
            line=line,
            value=f"{n_found} fields{counted}",
            expected=f"{n_expected} fields separated by {spec.delimiter!r}, as in the header",
        )
    expected = (
        "a Parquet file"
        if kind == "parquet"
        else f"CSV with one header line and fields separated by {spec.delimiter!r}"
    )
    return DataError(
        f"file cannot be read as {kind}: {error}",
        path=name,
        column=None,
        row=None,
        value=None,
        expected=expected,
    )


def _header(file: Path, kind: str, spec: SourceSpec, name: str) -> list[str]:
    wanted = set(spec.source_columns())
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq  # type: ignore[import-untyped]  # 0.1 s: on use

            names = [str(column) for column in pq.read_schema(file).names]
            _refuse_repeated(names, wanted, name, line=None)
            return names
        # A byte that is not UTF-8 matters only in a column the mapping reads.
        header = pd.read_csv(file, sep=spec.delimiter, nrows=0, encoding_errors="replace")
        # pandas renames a repeated name ('Ws_avg.1'); the header as written says.
        written = pd.read_csv(
            file,
            sep=spec.delimiter,
            nrows=1,
            header=None,
            dtype=str,
            keep_default_na=False,
            encoding_errors="replace",
        )
    except (pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise _unreadable(file, name, kind, error, spec) from None
    names = [str(column) for column in header.columns]
    if len(written) and len(written.columns) == len(names):
        as_written = [str(column) for column in written.iloc[0]]
        _refuse_repeated(as_written, wanted, name, line=1)
        # A repeated name listed as written (a missing column's message), not renamed.
        names = [
            w if w.strip() and as_written.count(w) > 1 else n
            for w, n in zip(as_written, names, strict=True)
        ]
    if any(_REPLACEMENT in n for n in names) and not wanted <= set(names):
        undecodable = _not_utf8(file, name, spec.delimiter)
        if undecodable is not None:
            raise undecodable
    return names


def _refuse_repeated(names: list[str], wanted: set[str], name: str, line: int | None) -> None:
    """Refuse a header that names a column the mapping reads more than once: which of
    them holds the readings cannot be known (pandas would read the first, and rename
    the others ``Ws_avg.1``). A repeated name the mapping does not read is left alone."""
    for column in [c for c in wanted if names.count(c) > 1]:
        positions = [str(i + 1) for i, c in enumerate(names) if c == column]
        raise DataError(
            f"column name appears {len(positions)} times in the header, at positions "
            f"{', '.join(positions[:-1])} and {positions[-1]} (counting from 1)",
            path=name,
            column=column,
            row=None,
            line=line,
            value=column,
            expected="each column the mapping reads named once in the header: which of "
            "the columns holds the readings is not known; rename or remove the others",
        )


# An asset id is missing only where its cell is empty.
_ONLY_EMPTY_IS_MISSING: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}


def _read_columns(file: Path, kind: str, spec: SourceSpec, name: str) -> pd.DataFrame:
    columns = list(spec.source_columns())
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table: pd.DataFrame = pq.read_table(file, columns=columns).to_pandas()
            return table
        # Asset and time stay text: "007" is an asset id, not the number 7, and times
        # are parsed below with the declared format and zone.
        text = {spec.time_column: str}
        if spec.asset_column is not None:
            text[spec.asset_column] = str
        # All columns are read, with no index column guessed, so that a row with more
        # fields than the header is an error rather than silently shifted or cut.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                file,
                sep=spec.delimiter,
                dtype=text,
                index_col=False,
                encoding_errors="replace",
            )
    except (
        pa.ArrowException,
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
    ) as error:
        raise _unreadable(file, name, kind, error, spec) from None
    asset = spec.asset_column
    if asset is not None and frame[asset].isna().any():
        # pandas reads "NA", "N/A", "None", "null" as missing: as ids they are text.
        frame[asset] = pd.read_csv(
            file,
            sep=spec.delimiter,
            usecols=[asset],
            dtype=str,
            index_col=False,
            encoding_errors="replace",
            **_ONLY_EMPTY_IS_MISSING,
        )[asset]
    if kind == "csv" and len(frame.columns) and frame.iloc[:, -1].isna().any():
        # pandas reads a row with fewer fields than the header (a line cut short, as
        # where a copy stopped) as missing values; only such rows can be short.
        refuse_short_rows(file, spec.delimiter, name)
    # Bytes that are not UTF-8 were replaced: refused in the columns read only.
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            continue
        if values.astype(str).str.contains(_REPLACEMENT, regex=False).any():
            undecodable = _not_utf8(file, name, spec.delimiter, only=columns)
            if undecodable is not None:
                raise undecodable
            break
    return frame[columns]


def refuse_short_rows(file: Path, delimiter: str = ",", name: str | None = None) -> None:
    """Raise :class:`DataError` at the first record of a CSV file with fewer fields than
    its header names (empty names at the header's end, from a trailing delimiter, are
    not counted): pandas reads the fields a row lacks as missing values, so a line cut
    short would pass for readings with gaps. ``name`` is the file's name in the
    message (its path by default)."""
    name = str(file) if name is None else name
    handle = _open_text(file, errors="replace")
    if handle is None:
        return
    n_fields = 0
    with handle:
        try:
            for data_row, start, fields, _ in _csv_records(handle, delimiter):
                if data_row < 0:
                    named = [i for i, field in enumerate(fields) if field.strip()]
                    n_fields = named[-1] + 1 if named else 0
                elif len(fields) < n_fields:
                    raise DataError(
                        "row has fewer fields than the header (a line cut short?)",
                        path=name,
                        column=None,
                        row=data_row,
                        line=start,
                        value=f"{len(fields)} field{'' if len(fields) == 1 else 's'}",
                        expected=f"{n_fields} fields separated by {delimiter!r}, as in the header",
                    )
        except (csv.Error, OSError, EOFError):
            return


def _open_text(file: Path, errors: str = "strict") -> IO[str] | None:
    """The file as UTF-8 text, decompressed; ``None`` for a compression we cannot open
    here. ``errors`` as for :func:`open`."""
    suffix = file.suffix.lower()
    if suffix == ".gz":
        return gzip.open(file, "rt", encoding="utf-8", errors=errors, newline="")
    if suffix == ".bz2":
        return bz2.open(file, "rt", encoding="utf-8", errors=errors, newline="")
    if suffix == ".xz":
        return lzma.open(file, "rt", encoding="utf-8", errors=errors, newline="")
    if suffix == ".zst":
        # Every frame, as pandas reads them (older zstandard stopped after the first).
        binary = zstandard.ZstdDecompressor().stream_reader(
            file.open("rb"), closefd=True, read_across_frames=True
        )
        return io.TextIOWrapper(binary, encoding="utf-8", errors=errors, newline="")
    if suffix in (".csv", ".txt"):
        return file.open(encoding="utf-8", errors=errors, newline="")
    return None


#: Characters shown either side of where a JSON mapping stops parsing.
_JSON_CONTEXT: Final = 40

#: What a file that is not UTF-8 should be, and how to make it so.
_UTF8_EXPECTED: Final = (
    "UTF-8 text; convert the file, for example from Latin-1 with "
    "`iconv -f latin1 -t utf-8 OLD > NEW`"
)


#: A byte that is not UTF-8, as ``surrogateescape`` keeps it in text.
_UNDECODED: Final = re.compile("[\udc80-\udcff]")

#: What pandas reads such a byte as with ``encoding_errors="replace"`` (its strings,
#: Arrow's, cannot hold the surrogates): a file may also hold the character itself.
_REPLACEMENT: Final = "\ufffd"


def _not_utf8(
    file: Path, name: str, delimiter: str, only: Collection[str] | None = None
) -> DataError | None:
    """The first byte of a CSV file that is not UTF-8, by its line, data row and column;
    with ``only``, the first in the header or in one of those columns (the others are
    not read, so their bytes do not matter). ``None`` if there is none there (a
    replacement character written in the file); an error naming no line if the file
    cannot be read again as text.

    The file is read again with each undecodable byte kept as a lone surrogate
    (``surrogateescape``), so that the csv reader finds the field it is in.
    """
    handle = _open_text(file, errors="surrogateescape")
    if handle is not None:
        with handle:
            header: list[str] = []
            try:
                for row, start, fields, text in _csv_records(handle, delimiter):
                    for bad in _UNDECODED.finditer(text):
                        index = next(
                            (
                                i
                                for i, field in enumerate(fields)
                                if bad.group() in field
                                and (
                                    row < 0
                                    or only is None
                                    or (i < len(header) and header[i] in only)
                                )
                            ),
                            None,
                        )
                        if index is None:
                            continue
                        in_line = text[text.rfind("\n", 0, bad.start()) + 1 : bad.start()]
                        where = (
                            f"byte {ord(bad.group()) - 0xDC00:#04x} (byte "
                            f"{len(in_line.encode('utf-8', 'surrogateescape')) + 1} of its line)"
                        )
                        return DataError(
                            f"{'header' if row < 0 else 'text'} is not UTF-8: {where} "
                            "cannot be decoded",
                            path=name,
                            column=header[index] if row >= 0 and index < len(header) else None,
                            row=row if row >= 0 else None,
                            line=start + text.count("\n", 0, bad.start()),
                            value=fields[index].encode("utf-8", "surrogateescape"),
                            expected=_UTF8_EXPECTED,
                        )
                    if row < 0:
                        header = fields
                return None
            except (csv.Error, OSError, EOFError):
                pass
    return DataError(
        "file is not UTF-8",
        path=name,
        column=None,
        row=None,
        value=None,
        expected=_UTF8_EXPECTED,
    )


def _ragged_position(file: Path, record: int, delimiter: str) -> tuple[int | None, int | None]:
    """0-based data row and 1-based line of the ``record``-th record pandas complains of.

    pandas counts records and blank lines, not lines: a quoted line break does not count.
    ``(None, None)`` where the file cannot be read again as text.
    """
    handle = _open_text(file)
    if handle is None:
        return None, None
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
        data_row = -1  # the header
        start = 1
        try:
            for count, fields in enumerate(reader, start=1):
                if count == record:
                    return data_row, start
                if fields and not (len(fields) == 1 and not fields[0].strip()):
                    data_row += 1
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError, OSError, EOFError):
            return None, None
    return None, None


def csv_line(file: Path, row: int, delimiter: str = ",") -> int | None:
    """1-based line of a CSV file where 0-based data row ``row`` starts.

    Counted as pandas reads: the first non-blank line is the header, blank lines are
    skipped, and a quoted field may span lines. ``None`` if the line cannot be found
    (an unsupported compression, or text pandas and :mod:`csv` read differently), so
    that an error never names a wrong line.
    """
    handle = _open_text(file)
    if handle is None:
        return None
    with handle:
        try:
            for data_row, start, _, _ in _csv_records(handle, delimiter):
                if data_row == row:
                    return start
        except (csv.Error, UnicodeDecodeError, OSError, EOFError):
            return None
    return None


def _csv_records(handle: IO[str], delimiter: str) -> Iterator[tuple[int, int, list[str], str]]:
    """Each record pandas reads as a row, as ``(data row, first line, fields, raw
    text)``: the header is data row -1, lines are 1-based, and a record of blanks is
    skipped as pandas skips it (not one of an empty quoted field, '""', a missing
    value, which csv reads alike: hence the raw text)."""
    pending: list[str] = []

    def lines() -> Iterator[str]:
        for line in handle:
            pending.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    data_row = -1
    start = 1
    for fields in reader:
        text = "".join(pending)
        pending.clear()
        if text.strip():
            yield data_row, start, fields, text
            data_row += 1
        start = reader.line_num + 1


def _first(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _cell(values: pd.Series[Any], row: int) -> object:
    """The value of one cell for an error: a Python scalar, a missing cell as NaN."""
    value = values.iloc[row]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return value


def asset_ids(path: str | os.PathLike[str], spec: SourceSpec) -> list[str]:
    """The asset ids a file holds, sorted, read from its asset column alone: for what a
    command checks of a set of files before it reads any whole.

    Raises what reading that column raises (``OSError``, ``ValueError``): the file's
    full read says more of it.
    """
    if spec.asset_column is None:
        return [str(spec.asset_id)]
    name = os.fspath(path)
    column = spec.asset_column
    if file_kind(name) == "parquet":
        values = pd.read_parquet(name, columns=[column])[column]
    else:
        values = pd.read_csv(
            name,
            sep=spec.delimiter,
            usecols=[column],
            dtype="string",
            encoding_errors="replace",
            **_ONLY_EMPTY_IS_MISSING,
        )[column]
    text = _asset_text(values).str.strip()
    return sorted(str(a) for a in pd.unique(text[text.notna() & (text != "")]))


def _asset_text(values: pd.Series[Any]) -> pd.Series[str]:
    """Asset ids as text; whole numbers stored as floats (a Parquet column of numbers
    with a gap is float64) are written as whole numbers, so that turbine 11 of one file
    is not turbine "11.0" of another."""
    if pd.api.types.is_float_dtype(values.dtype):
        present = values.dropna()
        # Whole numbers a float holds exactly; others (inf, 1e20) stay as written.
        whole = (present == np.round(present)) & (present.abs() < 2.0**53)
        if bool(whole.all()):
            return values.astype("Int64").astype("string")
    return values.astype("string")


def _assets(frame: pd.DataFrame, spec: SourceSpec, name: str) -> pd.Series[str]:
    if spec.asset_column is None:
        return pd.Series([spec.asset_id] * len(frame), dtype="string")
    assets = _asset_text(frame[spec.asset_column])
    missing = (assets.isna() | (assets.str.strip() == "")).to_numpy(dtype=bool, na_value=True)
    if missing.any():
        row = _first(missing)
        raise DataError(
            f"asset id is missing ({int(missing.sum())} of {len(frame)} rows)",
            path=name,
            column=spec.asset_column,
            row=row,
            value=_cell(frame[spec.asset_column], row),
            expected="a non-empty asset id in every row",
        )
    # Padding is no part of an id: 'T01 ' beside 'T01' made a second asset.
    return assets.str.strip()


# -- times --------------------------------------------------------------------------------
def _times(
    values: pd.Series[Any], asset: pd.Series[str], spec: SourceSpec, name: str
) -> pd.Series[pd.Timestamp]:
    column = spec.time_column
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        if spec.time_zone is not None:
            raise DataError(
                "times carry a time zone but the mapping also declares time_zone",
                path=name,
                column=column,
                row=0,
                value=str(values.iloc[0]),
                expected="no time_zone in the mapping (the times' own zone is used)",
            )
        # A missing time went on as NaT: stored without a time, or two as duplicates.
        _require_times(values.isna().to_numpy(), values, column, name)
        times = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        if spec.time_zone is None:
            raise DataError(
                "times have no time zone",
                path=name,
                column=column,
                row=0,
                value=str(values.iloc[0]),
                expected="zone-aware timestamps, or a time_zone in the mapping "
                "(for example 'UTC' or 'Europe/Paris')",
            )
        _require_times(values.isna().to_numpy(), values, column, name)
        times = _localise(values, values, asset, spec.time_zone, column, name)
    else:
        times = _parse_text_times(values, asset, spec, name)
    converted: pd.Series[pd.Timestamp] = times.astype("datetime64[ns, UTC]")
    return converted


def _require_times(
    missing: NDArray[np.bool_], values: pd.Series[Any], column: str, name: str
) -> None:
    if missing.any():
        row = _first(missing)
        raise DataError(
            f"time is missing ({int(missing.sum())} of {missing.size} rows)",
            path=name,
            column=column,
            row=row,
            value=_cell(values, row),
            expected="a time in every row",
        )


def _parse_text_times(
    values: pd.Series[Any], asset: pd.Series[str], spec: SourceSpec, name: str
) -> pd.Series[pd.Timestamp]:
    column = spec.time_column
    # Padding is no part of a time (a trailing space hid the offset from the check).
    text = values.astype("string").str.strip()
    _require_times(text.isna().to_numpy(dtype=bool, na_value=True), values, column, name)
    aware = spec.time_zone is None
    parsed = _parse_iso_strictly(text, aware=aware) if spec.time_format is None else None
    if parsed is None:
        parsed = _parse_with_pandas(text, values, spec, name)
    if aware:
        return parsed
    assert spec.time_zone is not None  # aware is False exactly when a zone is declared
    return _localise(parsed, values, asset, spec.time_zone, column, name)


def _parse_iso_strictly(text: pd.Series[str], *, aware: bool) -> pd.Series[pd.Timestamp] | None:
    """Arrow's strict ISO 8601 cast, or ``None`` if any time is outside its dialect.

    Arrow parses ten times faster than pandas but only all-or-nothing, and insists on
    offsets for zone-aware times and on none for naive ones; when it refuses, pandas
    parses (or names the first bad row).
    """
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    target = pa.timestamp("ns", tz="UTC") if aware else pa.timestamp("ns")
    try:
        cast = pc.cast(pa.array(text.array), target)
    except pa.ArrowInvalid:
        return None
    parsed: pd.Series[pd.Timestamp] = pd.Series(cast.to_pandas())
    return parsed


def _parse_with_pandas(
    text: pd.Series[str], values: pd.Series[Any], spec: SourceSpec, name: str
) -> pd.Series[pd.Timestamp]:
    column = spec.time_column
    example = "2014-01-01T01:00:00+01:00"
    if spec.time_format is not None:
        expected = f"a time in the format {spec.time_format!r}"
    elif spec.time_zone is None:
        expected = f"an ISO 8601 time with a UTC offset such as {example!r}"
    else:
        expected = f"an ISO 8601 local time such as '2014-01-01 01:00:00' in {spec.time_zone}"
    # utc=True reads naive and offset times alike (naive ones as UTC), so a time that
    # does not parse is told apart from one that parses but has or lacks an offset.
    parsed = pd.to_datetime(text, format=spec.time_format or "ISO8601", utc=True, errors="coerce")
    unparseable = parsed.isna().to_numpy()
    wrong_kind = np.zeros(len(text), dtype=bool)
    if spec.time_format is None:
        has_offset = has_utc_offset(text)
        wrong_kind = ~unparseable & (has_offset if spec.time_zone is not None else ~has_offset)
    # The first bad row in file order decides which error describes it.
    if unparseable.any() and not (wrong_kind.any() and _first(wrong_kind) < _first(unparseable)):
        row = _first(unparseable)
        # A count of seconds or milliseconds since 1970 (Unix time, 2001-2286) is a
        # number, not a time: say it is not read.
        # Parquet's float columns hold them as 1388534400.0.
        whole = re.fullmatch(r"(\d+)(?:\.0*)?", str(text.iloc[row]).strip())
        epoch = whole is not None and len(whole[1]) in (9, 10, 12, 13)
        raise DataError(
            f"time cannot be parsed ({int(unparseable.sum())} of {len(text)} rows)"
            + (
                "; it looks like a count since 1970 (Unix time in seconds or milliseconds), "
                "which is not read: convert it to ISO 8601 times first"
                if epoch
                else ""
            ),
            path=name,
            column=column,
            row=row,
            value=_cell(values, row),
            expected=expected,
        )
    if wrong_kind.any() and spec.time_zone is None:
        row = _first(wrong_kind)
        raise DataError(
            f"time has no UTC offset ({int(wrong_kind.sum())} of {len(text)} rows)",
            path=name,
            column=column,
            row=row,
            value=_cell(values, row),
            expected=f"{expected}, or a time_zone in the mapping for naive local times",
        )
    if wrong_kind.any():
        row = _first(wrong_kind)
        raise DataError(
            "time carries a UTC offset but the mapping declares time_zone",
            path=name,
            column=column,
            row=row,
            value=_cell(values, row),
            expected=f"naive local times in {spec.time_zone} (or no time_zone, to use the offsets)",
        )
    if spec.time_zone is not None:
        # Naive times were read as UTC above; drop that zone to get the local wall time.
        parsed = parsed.dt.tz_localize(None)
    return parsed


def _localise(
    naive: pd.Series[pd.Timestamp],
    written: pd.Series[Any],
    asset: pd.Series[str],
    zone: str,
    column: str,
    name: str,
) -> pd.Series[pd.Timestamp]:
    """Naive local times in ``zone`` -> zone-aware times (see :class:`SourceSpec` notes).

    ``written`` holds the cells as the file has them, which an error quotes (a user
    searches the file for ``30/03/2014 02:30``, not for the parsed time).
    """
    first = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    unresolved = first.isna().to_numpy()
    if not unresolved.any():
        return first
    n_rows = len(naive)
    summer = naive.dt.tz_localize(zone, ambiguous=np.ones(n_rows, dtype=bool), nonexistent="NaT")
    nonexistent = summer.isna().to_numpy()
    if nonexistent.any():
        row = _first(nonexistent)
        raise DataError(
            f"local time does not exist in {zone}: the clocks jump forward over it "
            f"({int(nonexistent.sum())} of {n_rows} rows)",
            path=name,
            column=column,
            row=row,
            value=_cell(written, row),
            expected=f"a local time that exists in {zone} (a time in the skipped hour "
            "usually means the file is not in that zone, or carries offsets)",
        )
    # The repeated hour: of an asset's two readings at a local time, the one written
    # first is summer time in a file running forward in time (loggers write them in
    # that order), winter time in one running backwards (an export newest first).
    positions = np.flatnonzero(unresolved)
    repeated = pd.DataFrame(
        {"asset": asset.to_numpy()[positions], "time": naive.to_numpy()[positions]}
    )
    groups = repeated.groupby(["asset", "time"], sort=False)
    n_at_time = groups["time"].transform("size").to_numpy()
    backwards = _runs_backwards(naive, unresolved, asset, repeated["asset"].unique())
    unclear = [a for a, b in backwards.items() if b is None]
    paired = (n_at_time > 1) & repeated["asset"].isin(unclear).to_numpy()
    if paired.any():
        row = int(positions[_first(paired)])
        warnings.warn(
            f"{name}: column {column!r}: the readings of {len(set(repeated['asset'][paired]))} "
            f"asset(s) with two readings at a local time in the hour that repeats when "
            f"{zone} puts its clocks back run neither forward nor backwards in time "
            f"(first: row {row}, {_cell(written, row)!r}, asset {asset.iloc[row]!r}); the "
            "first of each two is taken as summer time, as in a file in time order, and "
            "the two are swapped if the file was written otherwise (times with UTC "
            "offsets leave no doubt)",
            UserWarning,
            stacklevel=2,
        )
    in_reverse = repeated["asset"].map(backwards).eq(True).to_numpy(dtype=bool)
    occurrence = np.where(
        in_reverse, groups.cumcount(ascending=False).to_numpy(), groups.cumcount().to_numpy()
    )
    alone = n_at_time == 1
    if alone.any():
        row = int(positions[_first(alone)])
        warnings.warn(
            f"{name}: column {column!r}: {int(alone.sum())} readings in the hour that "
            f"repeats when {zone} puts its clocks back are alone at their local time for "
            f"their asset (first: row {row}, {_cell(written, row)!r}, asset "
            f"{asset.iloc[row]!r}); each is taken as summer time, the first of the two, "
            "and is an hour early if it was written in winter time (times with UTC "
            "offsets leave no doubt)",
            UserWarning,
            stacklevel=2,
        )
    is_summer = np.ones(n_rows, dtype=bool)
    is_summer[positions] = occurrence == 0
    return naive.dt.tz_localize(zone, ambiguous=is_summer, nonexistent="NaT")


def _runs_backwards(
    naive: pd.Series[pd.Timestamp],
    ambiguous: NDArray[np.bool_],
    asset: pd.Series[str],
    assets: Collection[str],
) -> dict[str, bool | None]:
    """For each of ``assets``, whether its readings run backwards in time in the file
    (``True``), forward (``False``) or neither (``None``).

    Judged by the steps from each of the asset's readings to its next in the file:
    backwards if more than half go back in local time, forward if more than half go
    forward (a repeated time is not a step). A step between two ``ambiguous`` local
    times (both in a repeated hour) is not counted: which is earlier is what is to be
    found. Any other step goes the same way in local time as in UTC.
    """
    wanted = asset.isin(list(assets)).to_numpy(dtype=bool, na_value=False)
    readings = pd.DataFrame(
        {
            "asset": asset.to_numpy()[wanted],
            "time": naive.to_numpy()[wanted].astype("datetime64[ns]").view(np.int64),
            "ambiguous": ambiguous[wanted],
        }
    )
    by_asset = readings.groupby("asset", sort=False)
    step = np.sign(by_asset["time"].diff().to_numpy())
    after_ambiguous = by_asset["ambiguous"].shift(fill_value=False).to_numpy(dtype=bool)
    # A repeated time (a duplicated row) goes neither way: not a step.
    counted = ~np.isnan(step) & (step != 0) & ~(readings["ambiguous"].to_numpy() & after_ambiguous)
    counts = (
        pd.DataFrame(
            {
                "asset": readings["asset"],
                "back": counted & (step < 0),
                "forward": counted & (step > 0),
                "n": counted,
            }
        )
        .groupby("asset")
        .sum()
    )
    runs: dict[str, bool | None] = dict.fromkeys(assets)
    for name, n_back, n_forward, n_steps in counts.itertuples():
        if 2 * n_back > n_steps:
            runs[name] = True
        elif 2 * n_forward > n_steps:
            runs[name] = False
    return runs


# -- values -------------------------------------------------------------------------------
def _values(values: pd.Series[Any], column: ColumnSpec, variable: str, name: str) -> FloatArray:
    """Values of one column as floats in the glossary unit of ``variable``."""
    dtype = values.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    else:
        text = values.astype("string")
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan, copy=True
        )
        is_code = text.isin(column.text_codes).to_numpy(dtype=bool, na_value=False)
        bad = np.isnan(numbers) & text.notna().to_numpy(dtype=bool) & ~is_code
        if bad.any():
            row = _first(bad)
            value = _cell(values, row)
            comma = (
                isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d*,\d+\s*", value) is not None
            )
            raise DataError(
                f"value is not a number ({int(bad.sum())} of {len(values)} rows)",
                path=name,
                column=column.source,
                row=row,
                value=value,
                expected=f"a number in {column.unit}, an empty cell, or a declared "
                f"missing code (missing_codes = {list(column.missing_codes)})"
                + ("; a decimal comma? the file must use '.'" if comma else ""),
            )
    for code in column.numeric_codes:
        numbers[np.abs(numbers - code) <= _CODE_RTOL * abs(code)] = np.nan
    if np.isnan(numbers).all():
        codes = f" after missing codes {list(column.missing_codes)}" if column.missing_codes else ""
        raise DataError(
            f"column holds no value: all {len(numbers)} rows are missing{codes}",
            path=name,
            column=column.source,
            row=None,
            value=math.nan,
            expected=f"at least one {variable} value (an empty column usually means a "
            "wrong column mapping)",
        )
    canonical = canonical_unit(variable)
    if parse_unit(column.unit) != parse_unit(canonical):
        # pint converts whole arrays, offsets included (degC -> K).
        quantity = unit_registry().Quantity(numbers, column.unit)
        numbers = np.asarray(quantity.to(canonical).magnitude, dtype=np.float64)
    return numbers
