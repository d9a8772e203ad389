"""Water twins: reservoirs as mass balances, with the Upper Snake River cascade's data.

Examples
--------
Minidoka's twin, with the flow its gauges miss (its canal diversions), its noise fitted
on 2009-2012; then a what-if for the first week of 2013: the same inflow of 3 million
m^3/day, released as it comes or 20 % faster [million m^3]:

>>> import numpy as np
>>> import pandas as pd
>>> from twinweave.domains.water import UPPER_SNAKE_RESERVOIRS, load_upper_snake
>>> from twinweave.models import StateSpaceEmulator
>>> minidoka = UPPER_SNAKE_RESERVOIRS[3]
>>> record = load_upper_snake(minidoka.asset_id)
>>> history = record[record["time"] < pd.Timestamp("2013-01-01", tz="America/Denver")]
>>> columns = {name: history[name].to_numpy() for name in ("storage", "inflow", "outflow")}
>>> twin = StateSpaceEmulator.reservoir(
...     capacity=minidoka.capacity, initial_storage=columns["storage"][0], initial_var=1e16,
...     process_var=1e12, noise_var=1e12, unmeasured_flow_var=1e10,
... ).estimate_noise(columns, diagonal=True).update(columns)
>>> as_it_comes = twin.predict({"inflow": [3e6] * 7, "outflow": [3e6] * 7})
>>> faster = twin.predict({"inflow": [3e6] * 7, "outflow": [3.6e6] * 7})
>>> np.round(as_it_comes.mean / 1e6, 1)
array([37.9, 37.9, 37.9, 37.9, 37.9, 37.9, 37.9])
>>> np.round(faster.mean / 1e6, 1)
array([37.3, 36.7, 36.1, 35.5, 34.9, 34.3, 33.7])
>>> lower, upper = faster.interval(0.9)
>>> float(np.round((upper[-1] - lower[-1]) / 1e6, 1))  # a week ahead, 90 %
12.7
"""

from twinweave.domains.water._schema import reservoir_schema
from twinweave.domains.water._upper_snake import (
    UPPER_SNAKE_RESERVOIRS,
    Reservoir,
    load_upper_snake,
    upper_snake_path,
    upper_snake_source,
)

__all__ = [
    "UPPER_SNAKE_RESERVOIRS",
    "Reservoir",
    "load_upper_snake",
    "reservoir_schema",
    "upper_snake_path",
    "upper_snake_source",
]
