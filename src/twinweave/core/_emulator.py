"""The contract every emulator meets (checked by :mod:`twinweave.checks`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twinweave.core._predictive import CensoredNormal

#: Observations and inputs are column mappings: a pandas DataFrame, a dict of arrays or
#: a single reading as a dict of floats all work.
Columns = Mapping[str, ArrayLike]

#: Learned state: named arrays and numbers, enough to restore the emulator exactly.
State = dict[str, NDArray[np.float64] | float | int]


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at its limit before its tolerance was met: a fleet fit's
    rounds, a state-space EM's M-steps."""


@runtime_checkable
class Emulator(Protocol):
    """A probabilistic model of one target variable given inputs.

    Configuration is what the constructor took (``get_params``); learned state ends in
    ``_`` and round-trips through ``state`` / ``from_state`` exactly.
    """

    @property
    def target(self) -> str:
        """Glossary name of the predicted variable."""
        ...

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the columns a prediction may read: those it needs and those it uses
        where present. A twin checks these against its schema's bounds."""
        ...

    @property
    def n_observations_(self) -> float:
        """(Effective) number of readings assimilated so far."""
        ...

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, unchanged."""
        ...

    def update(self, observations: Columns) -> Self:
        """Assimilate a batch (a stream is a batch of one) and return ``self``."""
        ...

    def predict(self, inputs: Columns) -> CensoredNormal:
        """Predictive distribution of the target at ``inputs``."""
        ...

    def state(self) -> State:
        """Learned state, as arrays and numbers."""
        ...

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        """An emulator built from ``params`` holding exactly ``state``."""
        ...


def check_columns(data: object, name: str) -> None:
    """Refuse ``data`` unless it is columns by name (a mapping or a DataFrame): an array
    alone says nothing of which input is which."""
    if isinstance(data, np.ndarray) or not hasattr(data, "keys"):
        raise TypeError(
            f"{name}: expected columns by name (a mapping such as {{'wind_speed': [8.0]}}, "
            f"or a DataFrame), got {type(data).__name__}"
        )


def column(data: Columns, name: str, *, required: bool = True) -> NDArray[np.float64] | None:
    """Read column ``name`` of ``data`` as a 1-D float array.

    Raises
    ------
    KeyError
        If a required column is missing; the message lists the columns present.
    ValueError
        If the column is not one value per row, or a value is not a number; the message
        names the column and, for a value, its row.
    """
    if name not in data:
        if required:
            raise KeyError(
                f"missing input {name!r}: expected a column of that name, got {sorted(data)}"
            )
        return None
    refuse_text(data[name], name)
    try:
        # pandas turns the missing values of its nullable dtypes (NA) into NaN here.
        values = np.atleast_1d(np.asarray(data[name], dtype=np.float64))
    except (TypeError, ValueError):
        raw = np.atleast_1d(np.asarray(data[name], dtype=object))
        if raw.ndim != 1:
            raise ValueError(
                f"{name}: expected one value per row (1-D), got shape {raw.shape}"
            ) from None
        for row, value in enumerate(raw):
            try:
                float(value)
            except (TypeError, ValueError):
                shown = value.item() if isinstance(value, np.generic) else value
                raise ValueError(f"{name}: expected numbers, got {shown!r} at row {row}") from None
        raise
    if values.ndim != 1:
        raise ValueError(f"{name}: expected one value per row (1-D), got shape {values.shape}")
    return values


def refuse_text(value: object, name: str) -> None:
    """Refuse text where numbers are read: numpy reads "1e1" as 10, where SetInputs and
    the data pathway refuse it. True and False are read as 1 and 0 (a switch's state).

    Judged by the column's dtype where it has one (no copy: this runs on every update
    and prediction), else by its items; objects (pandas' nullable columns) are looked
    at only when pandas infers something other than numbers or flags.
    """
    dtype = getattr(value, "dtype", None)
    items: Iterable[object]
    if dtype is None:
        # A list keeps its items' types (numpy would turn [1.0, "abc"] into two texts).
        items = value if isinstance(value, list | tuple) else [value]
    elif dtype.kind in "US":
        items = np.ravel(np.asarray(value))
    elif dtype.kind == "O":
        # Imported here: object columns come from pandas, and a process that reads only
        # numbers (a Flower ClientApp) does not load it.
        import pandas as pd

        items = np.ravel(np.asarray(value, dtype=object))
        if pd.api.types.infer_dtype(items, skipna=True) not in (
            "string",
            "bytes",
            "mixed",
            "mixed-integer",
        ):
            return
    else:
        return
    for row, item in enumerate(items):
        if isinstance(item, str | bytes):
            shown = item.item() if isinstance(item, np.generic) else item
            raise ValueError(f"{name}: expected numbers, got the text {shown!r} at row {row}")
