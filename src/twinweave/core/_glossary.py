"""One glossary of variable names, used everywhere (pvlib's habit).

Each entry gives the canonical unit (a pint expression) and a one-line description.
Data sources map their own column names onto these names; emulators, filters and the
CLI speak only these.
"""

from __future__ import annotations

from typing import Final

GLOSSARY: Final[dict[str, tuple[str, str]]] = {
    "time": ("", "timestamp of the end of the averaging interval, UTC"),
    "wind_speed": ("m/s", "horizontal wind speed at hub height (nacelle anemometer)"),
    "wind_direction": ("degree", "absolute wind direction, clockwise from north"),
    "power": ("kW", "active electrical power of the asset (a turbine's output)"),
    "temp_air": ("degC", "outdoor air temperature"),
    "air_density": ("kg/m^3", "air density at hub height"),
    "pressure": ("Pa", "air pressure"),
    "pitch": ("degree", "blade pitch angle"),
    "nacelle_angle": ("degree", "nacelle orientation, clockwise from north"),
    "vane_position": ("degree", "wind vane position relative to the nacelle"),
    "storage": ("m^3", "water stored in a reservoir"),
    "inflow": ("m^3/day", "flow into a reservoir"),
    "outflow": ("m^3/day", "flow out of a reservoir (release plus spill)"),
}


def canonical_unit(name: str) -> str:
    """Return the canonical unit of glossary variable ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not in the glossary; the message lists the known names.
    """
    try:
        return GLOSSARY[name][0]
    except KeyError:
        known = ", ".join(sorted(GLOSSARY))
        raise KeyError(f"unknown variable {name!r}; the glossary knows: {known}") from None
