"""Wind turbine twins: power-curve emulators, the IEC baseline, what-if metrics."""

from twinweave.domains.wind._power_curve import (
    REFERENCE_DENSITY,
    MethodOfBins,
    NormalisedWindSpeed,
    air_density,
    power_curve_emulator,
    pressure_at_elevation,
    turbine_schema,
)

__all__ = [
    "REFERENCE_DENSITY",
    "MethodOfBins",
    "NormalisedWindSpeed",
    "air_density",
    "power_curve_emulator",
    "pressure_at_elevation",
    "turbine_schema",
]
