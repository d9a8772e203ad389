"""The La Haute Borne readings the benchmarks run on, through twinweave's data pathway.

``read_source`` parses the SCADA file (UTC times, missing codes as NaN) and ``clean``
with :func:`~twinweave.domains.wind.normal_operation_checks` keeps normal operation:
finite wind speed and power, physical ranges, no duplicated (turbine, UTC time), no
stuck anemometer (3 equal readings), no downtime (``wind_speed >= 4`` m/s with
``power <= 0``), no curtailment (``pitch > 5`` degree, ``power < 0.9 * rated``,
``wind_speed > 3.5`` m/s). Power is clipped to ``[0, rated]`` when handed to a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twinweave.data import SourceInfo, clean, read_source
from twinweave.domains.wind import (
    LA_HAUTE_BORNE,
    TurbineSpec,
    asset_table,
    model_inputs,
    normal_operation_checks,
    power_curve_emulator,
    scada_path,
    site_mean_density,
)
from twinweave.models import BayesianBasisRegression

RATED_POWER = 2050.0

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Fleet:
    """Cleaned readings of the four turbines, with what a twin needs to know about each.

    Parameters
    ----------
    info
        The SCADA file read.
    raw
        Every row as read (420,480 for the full file).
    observations
        Normal-operation readings, in file order.
    specs
        Per turbine: rated power [kW] and elevation [m].
    """

    info: SourceInfo
    raw: pd.DataFrame
    observations: pd.DataFrame
    specs: dict[str, TurbineSpec]

    @property
    def asset_ids(self) -> list[str]:
        return sorted(self.specs)

    def readings(self, asset_id: str, year: int | None = None) -> pd.DataFrame:
        """Normal-operation readings of one turbine (in one UTC year), in time order."""
        frame = self.observations[self.observations["asset_id"] == asset_id]
        if year is not None:
            frame = frame[frame["time"].dt.year == year]
        return frame.sort_values("time", kind="stable").reset_index(drop=True)

    def inputs(self, asset_id: str, year: int | None = None) -> Columns:
        """The columns a power-curve model reads, power clipped to ``[0, rated]``."""
        spec = self.specs[asset_id]
        return model_inputs(self.readings(asset_id, year), spec.rated_power)

    def emulator(self, asset_id: str, training_year: int | None = None) -> BayesianBasisRegression:
        """An unfitted ``power_curve_emulator`` configured for the turbine's site."""
        spec = self.specs[asset_id]
        training = self.readings(asset_id, training_year)
        return power_curve_emulator(
            spec.rated_power,
            site_pressure=spec.site_pressure,
            fallback_density=site_mean_density(training, spec.site_pressure),
        )


def load_fleet(path: Path | None = None) -> Fleet:
    """Read and clean the La Haute Borne SCADA file (the shipped one by default)."""
    info, raw = read_source(scada_path() if path is None else path, LA_HAUTE_BORNE)
    present = set(raw["asset_id"].astype(str))
    specs = {
        str(row.asset_id): TurbineSpec(
            str(row.asset_id), float(row.rated_power), float(row.elevation)
        )
        for row in asset_table().itertuples()
        if str(row.asset_id) in present
    }
    checks = normal_operation_checks(RATED_POWER)
    observations, _ = clean(raw, checks)
    return Fleet(info, raw, observations, specs)
