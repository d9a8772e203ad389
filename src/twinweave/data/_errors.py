"""The one error the data pathway raises for bad input."""

from __future__ import annotations


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
        when the problem is not with one row (a missing column, an unknown unit).
    value
        The offending value as found; ``None`` when there is none (a missing column).
    expected
        What would have been accepted.

    Examples
    --------
    >>> error = DataError("time cannot be parsed", path="scada.csv", column="Date_time",
    ...                   row=4, value="2014-13-01", expected="an ISO 8601 time")
    >>> print(error)
    scada.csv: time cannot be parsed (column 'Date_time', row 4, value '2014-13-01'); expected an ISO 8601 time
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
    ) -> None:
        self.problem = problem
        self.path = path
        self.column = column
        self.row = row
        self.value = value
        self.expected = expected
        where_column = "no column" if column is None else f"column {column!r}"
        where_row = "row n/a" if row is None else f"row {row}"
        found = "value n/a" if value is None else f"value {value!r}"
        super().__init__(
            f"{path}: {problem} ({where_column}, {where_row}, {found}); expected {expected}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments need help to survive pickling (multiprocessing, Ray).
        return (
            _rebuild,
            (self.problem, self.path, self.column, self.row, self.value, self.expected),
        )


def _rebuild(
    problem: str, path: str, column: str | None, row: int | None, value: object, expected: str
) -> DataError:
    return DataError(problem, path=path, column=column, row=row, value=value, expected=expected)
