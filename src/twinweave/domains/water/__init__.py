"""Water twins: reservoirs as mass balances, with the Upper Snake River cascade's data."""

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
    "upper_snake_path",
    "upper_snake_source",
]
