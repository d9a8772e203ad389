"""The Upper Snake River reservoirs shipped with twinweave (US Bureau of Reclamation).

Five dams in cascade on the Snake River in Wyoming and Idaho, daily storage, release
plus spill, and inflow, 2009-2016, as collected for Rougé et al. (2021), *Hydrology and
Earth System Sciences* (see ``datasets/upper_snake_reservoirs/ATTRIBUTION.md``).

Each record is one local day (Mountain Time); the data pathway places it at local
midnight, so a day is 23 or 25 hours long in UTC around the clock changes. The state
space emulator counts steps, not hours, and does not notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from twinweave.data import ColumnSpec, SourceSpec, read_source
from twinweave.domains._datasets import packaged_file


@dataclass(frozen=True)
class Reservoir:
    """One dam of the cascade: its record's identifier, name and capacity [m^3]."""

    asset_id: str
    name: str
    capacity: float


#: The five reservoirs, upstream to downstream; capacities from ``gages.csv``
#: (million m^3 there).
UPPER_SNAKE_RESERVOIRS: tuple[Reservoir, ...] = (
    Reservoir("WY9999", "Jackson", 1078e6),
    Reservoir("ID00273", "Palisades", 1503e6),
    Reservoir("ID9999", "American Falls", 2145e6),
    Reservoir("ID00275", "Minidoka", 123e6),
    Reservoir("ID83075", "Milner", 62e6),
)


def _data_file(name: str) -> Path:
    return packaged_file("upper_snake_reservoirs", name, "Upper Snake")


def _reservoir(asset_id: str) -> Reservoir:
    for reservoir in UPPER_SNAKE_RESERVOIRS:
        if reservoir.asset_id == asset_id:
            return reservoir
    known = [r.asset_id for r in UPPER_SNAKE_RESERVOIRS]
    raise ValueError(f"asset_id: expected one of {known}, got {asset_id!r}")


def upper_snake_source(asset_id: str) -> SourceSpec:
    """How to read one reservoir's file with :func:`~twinweave.data.read_source`.

    Examples
    --------
    >>> spec = upper_snake_source("ID00275")
    >>> spec.asset_id, spec.columns["outflow"].unit
    ('ID00275', 'm^3/day')
    """
    _reservoir(asset_id)
    return SourceSpec(
        asset_id=asset_id,
        time_column="DateTime",
        time_format="%m/%d/%Y",
        time_zone="America/Denver",
        columns={
            "storage": ColumnSpec(source="Storage_m3", unit="m^3"),
            "inflow": ColumnSpec(source="Q_in_m3d", unit="m^3/day"),
            "outflow": ColumnSpec(source="Q_out_m3d", unit="m^3/day"),
        },
    )


def upper_snake_path(asset_id: str) -> Path:
    """Path of one reservoir's daily record (CSV); read it with :func:`upper_snake_source`."""
    return _data_file(f"{_reservoir(asset_id).asset_id}.csv")


def load_upper_snake(asset_id: str) -> pd.DataFrame:
    """One reservoir's daily record through the data pathway, in time order.

    Returns
    -------
    pandas.DataFrame
        ``asset_id``, ``time`` (UTC, local midnight), ``source_row``, ``storage``
        [m^3], ``inflow`` and ``outflow`` [m^3/day], one row per day from 2009-01-01 to
        2016-12-31.

    Examples
    --------
    >>> frame = load_upper_snake("ID00275")
    >>> len(frame), str(frame["time"].iloc[0])
    (2922, '2009-01-01 07:00:00+00:00')
    """
    _, frame = read_source(upper_snake_path(asset_id), upper_snake_source(asset_id))
    return frame.sort_values("time", ignore_index=True)
