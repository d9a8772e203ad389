"""The interface of a reservoir's twin."""

from __future__ import annotations

from twinweave.core import Property, Telemetry, TwinSchema


def reservoir_schema(
    capacity: float,
    *,
    units: str = "m^3",
    flow_units: str = "m^3/day",
    name: str = "Reservoir",
) -> TwinSchema:
    """Schema of a reservoir twin: storage within ``[0, capacity]`` [``units``], the
    gauged inflow and outflow [``flow_units``], and the capacity as a property.

    The flows' unit is that of the balance :meth:`StateSpaceEmulator.reservoir
    <twinweave.models.StateSpaceEmulator.reservoir>` takes (storage per its ``dt``'s
    time unit): the schema says it, the emulator does not check it.
    """
    return TwinSchema(
        name=name,
        description="Reservoir twin: a mass balance of storage and gauged flows",
        telemetry=(
            Telemetry(name="storage", unit=units, lower=0.0, upper=capacity),
            Telemetry(name="inflow", unit=flow_units),
            Telemetry(name="outflow", unit=flow_units),
        ),
        properties=(Property(name="capacity", unit=units, lower=0.0, value=capacity),),
    )
