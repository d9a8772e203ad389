"""The one error the data pathway raises for bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad input: names the file, column, row and value, and what was expected.

    Parameters
    ----------
    problem
        What was found wrong, for example ``"time cannot be parsed"``.
    path
        The file read (a data file or a mapping file).
    column
        The column of the file (or the key of a mapping file) at fault; ``None`` when
        the problem is not with one column.
    row
        0-based data row (header excluded, the numbering of ``source_row``); ``None``
        when the problem is not with one row (a missing column, an unknown unit, the
        header: then ``line`` may say which line).
    value
        The offending value as found; ``None`` when there is none (a missing column).
        A missing cell (NaN, NA, NaT) is written "a missing value (NaN)".
    expected
        What would have been accepted.
    line
        1-based line of a text file (CSV) where ``row`` starts, header line included;
        ``None`` for Parquet files or when not known, and then the message says that
        rows count data rows from 0.

    Examples
    --------
    >>> error = DataError("time cannot be parsed", path="scada.csv", column="Date_time",
    ...                   row=3, line=5, value="2014-13-01", expected="an ISO 8601 time")
    >>> print(error)
    scada.csv: time cannot be parsed (column 'Date_time', row 3 (line 5), value '2014-13-01'); expected an ISO 8601 time
    >>> print(DataError("asset id is missing", path="scada.parquet", column="turbine",
    ...                 row=3, value=float("nan"), expected="an asset id"))
    scada.parquet: asset id is missing (column 'turbine', row 3, counting data rows from 0, a missing value (NaN)); expected an asset id
    """  # noqa: E501

    def __init__(
        self,
        problem: str,
        *,
        path: str,
        column: str | None,
        row: int | None,
        value: object,
        expected: str,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.path = path
        self.column = column
        self.row = row
        self.line = line
        self.value = value
        self.expected = expected
        where_column = "no column" if column is None else f"column {column!r}"
        super().__init__(
            f"{path}: {problem} ({where_column}, {describe_row(row, line)}, "
            f"{describe_value(value)}); expected {expected}"
        )

    def with_line(self, line: int | None) -> DataError:
        """The same error, with the file line of its row."""
        return DataError(
            self.problem,
            path=self.path,
            column=self.column,
            row=self.row,
            value=self.value,
            expected=self.expected,
            line=line,
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments need help to survive pickling (multiprocessing, Ray).
        return (
            _rebuild,
            (self.problem, self.path, self.column, self.row, self.value, self.expected, self.line),
        )


def describe_row(row: int | None, line: int | None) -> str:
    """``"row 3 (line 5)"`` for a CSV row, ``"row 3, counting data rows from 0"`` else;
    ``"line 1"`` for a line that is no data row (a header).

    Examples
    --------
    >>> describe_row(3, 5), describe_row(3, None), describe_row(None, None)
    ('row 3 (line 5)', 'row 3, counting data rows from 0', 'row n/a')
    >>> describe_row(None, 1)
    'line 1'
    """
    if row is None:
        return "row n/a" if line is None else f"line {line}"
    if line is None:
        return f"row {row}, counting data rows from 0"
    return f"row {row} (line {line})"


def describe_value(value: object) -> str:
    """A value as a reader wants it: text quoted, numbers plain, missing said in words.

    Examples
    --------
    >>> describe_value("fast"), describe_value(np.float64(2.5)), describe_value(np.nan)
    ("value 'fast'", 'value 2.5', 'a missing value (NaN)')
    >>> describe_value(pd.NaT), describe_value(None)
    ('a missing value (NaT)', 'value n/a')
    """
    if value is None:
        return "value n/a"
    if value is pd.NaT or (isinstance(value, np.datetime64) and np.isnat(value)):
        return "a missing value (NaT)"
    if value is pd.NA:
        return "a missing value (NaN)"
    plain: Any = value.item() if isinstance(value, np.generic) else value
    if isinstance(plain, float) and math.isnan(plain):
        return "a missing value (NaN)"
    if isinstance(plain, str):
        return f"value {plain!r}"
    return f"value {plain}"


def _rebuild(
    problem: str,
    path: str,
    column: str | None,
    row: int | None,
    value: object,
    expected: str,
    line: int | None = None,
) -> DataError:
    return DataError(
        problem, path=path, column=column, row=row, value=value, expected=expected, line=line
    )
