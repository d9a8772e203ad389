"""The La Haute Borne wind farm data shipped with twinweave (ENGIE open data).

Four Senvion MM82 turbines (2050 kW rated, 80 m hub, 82 m rotor) in the Meuse, France,
10-minute SCADA averages for 2014-2015, Etalab Open Licence 2.0 (see
``datasets/la_haute_borne/ATTRIBUTION.md``).

Times are Paris local time written with their UTC offset. Around the clock changes the
export is not clean: on 2014-03-30 and 2015-03-29 the six readings of each turbine from
the skipped hour 02:xx were relabelled 03:xx+02:00, so each of those UTC times carries
two different readings (12 pairs per turbine); on 2014-10-26 and 2015-10-25 the first
pass through 02:xx (summer time) is absent, leaving a one-hour gap. The duplicates are
quarantined by :class:`~twinweave.data.DuplicateTimestamps`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from twinweave.data import ColumnSpec, SourceSpec
from twinweave.domains._datasets import packaged_file

#: How to read ``scada_2014_2015.parquet`` (``Ot_avg`` codes a missing temperature as
#: -273.2 degC, stored as the float32 value -273.20001).
LA_HAUTE_BORNE = SourceSpec(
    asset_column="Wind_turbine_name",
    time_column="Date_time",
    columns={
        "wind_speed": ColumnSpec(source="Ws_avg", unit="m/s"),
        "power": ColumnSpec(source="P_avg", unit="kW"),
        "temp_air": ColumnSpec(source="Ot_avg", unit="degC", missing_codes=(-273.2,)),
        "wind_direction": ColumnSpec(source="Wa_avg", unit="degree"),
        "pitch": ColumnSpec(source="Ba_avg", unit="degree"),
        "nacelle_angle": ColumnSpec(source="Ya_avg", unit="degree"),
        "vane_position": ColumnSpec(source="Va_avg", unit="degree"),
    },
)

_ASSET_COLUMNS = {
    "Wind_turbine_name": "asset_id",
    "Latitude": "latitude",
    "Longitude": "longitude",
    "elevation_m": "elevation",
    "Rated_power": "rated_power",
    "Hub_height_m": "hub_height",
    "Rotor_diameter_m": "rotor_diameter",
    "Manufacturer": "manufacturer",
    "Model": "model",
}


def _data_file(name: str) -> Path:
    return packaged_file("la_haute_borne", name, "La Haute Borne")


def scada_path() -> Path:
    """Path of the SCADA file (Parquet, 420,480 rows); read it with ``LA_HAUTE_BORNE``.

    Examples
    --------
    >>> scada_path().name
    'scada_2014_2015.parquet'
    """
    return _data_file("scada_2014_2015.parquet")


def era5_path() -> Path:
    """Path of the hourly ERA5 reanalysis at the farm, 2014-2015 (Parquet).

    Columns: ``datetime`` (naive UTC), ``u_100``, ``v_100`` [m/s] (wind components at
    100 m), ``t_2m`` [K], ``surf_pres`` [Pa], ``ws_100m`` [m/s], ``dens_100m`` [kg/m^3].
    """
    return _data_file("era5_2014_2015.parquet")


def asset_table() -> pd.DataFrame:
    """The four turbines: position, elevation and ratings.

    Returns
    -------
    pandas.DataFrame
        One row per turbine: ``asset_id``, ``latitude`` and ``longitude`` [degree],
        ``elevation`` [m], ``rated_power`` [kW], ``hub_height`` [m],
        ``rotor_diameter`` [m], ``manufacturer``, ``model``.

    Examples
    --------
    >>> table = asset_table()
    >>> table["asset_id"].tolist()
    ['R80711', 'R80721', 'R80736', 'R80790']
    >>> float(table["rated_power"].iloc[0])
    2050.0
    """
    table = pd.read_csv(
        _data_file("asset_table.csv"),
        dtype={"Wind_turbine_name": "string", "Manufacturer": "string", "Model": "string"},
    )
    table = table.rename(columns=_ASSET_COLUMNS)
    numbers = ["latitude", "longitude", "elevation", "rated_power", "hub_height", "rotor_diameter"]
    return table.astype(dict.fromkeys(numbers, "float64"))
