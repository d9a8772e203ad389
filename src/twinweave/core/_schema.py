"""A twin's schema: what it measures and what it is, with units and physical bounds.

Bounds are prior knowledge ("must not predict a negative age", Pias et al. 2025): the
schema carries them and emulators censor their predictive distributions to them.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import shutil
import sys
import uuid
from functools import cache
from pathlib import Path
from typing import Literal

import pint
import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


@cache
def unit_registry() -> pint.UnitRegistry[float]:
    """The one pint registry twinweave uses (created on first use, shared after).

    Parsing pint's definitions takes about 0.3 s, a large part of a short command's run,
    so the parsed form is kept in the user's cache folder (pint's own disk cache, under
    ``platformdirs.user_cache_path("twinweave")``). A cache is written whole into a
    folder of its own and then renamed into place, so no process reads one half-written.
    The cache only saves time: where it cannot be written or read (a read-only home),
    the definitions are parsed as without it. A registry read from pint's cache answers
    ``get_compatible_units`` with nothing (pint issue 1746); twinweave does not ask it.
    """
    folder = _unit_cache_folder()
    used = (
        folder
        if folder.is_dir()
        else folder.with_name(f".{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    )
    try:
        registry = pint.UnitRegistry[float](cache_folder=used)
    except Exception:  # any failure of the cache: the parse below is what it saves
        shutil.rmtree(used, ignore_errors=True)  # the next start writes it anew
        return pint.UnitRegistry[float]()
    if used != folder:
        try:
            used.rename(folder)
        except OSError:  # another process put its cache there first: this one is not needed
            shutil.rmtree(used, ignore_errors=True)
    return registry


#: The packages pint's parsed definitions are made of, besides pint.
PARSERS = ("flexparser", "flexcache")


def _unit_cache_folder() -> Path:
    """Where the parsed definitions are kept: one folder per pint installation, since
    pint's cache names the files it read by their path and its parsers' versions."""
    # pint imported its parsers (if it has them apart): their versions are at hand.
    parsers = (getattr(sys.modules.get(name), "__version__", "") for name in PARSERS)
    installation = "|".join([pint.__file__ or "", *parsers])
    key = hashlib.sha256(installation.encode()).hexdigest()[:12]
    return platformdirs.user_cache_path("twinweave") / f"pint-{pint.__version__}-{key}"


def parse_unit(expression: str) -> pint.Unit:
    """Parse a unit expression such as ``"kW"`` or ``"km/h"``.

    Raises
    ------
    ValueError
        Naming the expression, if pint does not know it, and the unit it was probably
        meant to be (:func:`suggest_unit`).
    """
    if expression == "":
        return unit_registry().dimensionless
    try:
        return unit_registry().Unit(expression)
    except (pint.errors.UndefinedUnitError, AttributeError, TypeError, ValueError) as error:
        raise ValueError(
            f"unknown unit {expression!r}: expected a pint unit expression such as "
            f"'kW', 'm/s', 'degC'{did_you_mean(expression)} ({error})"
        ) from None


def same_unit(first: str, second: str) -> bool:
    """Whether two unit expressions name one unit: the same pint unit, or the same
    dimension at factor 1 and offset 0 (``"kWh"`` and ``"kW*h"``, ``"W"`` and ``"J/s"``).

    Raises
    ------
    ValueError
        If either expression is not a unit (:func:`parse_unit`).

    Examples
    --------
    >>> same_unit("kWh", "kW*h"), same_unit("kW", "W"), same_unit("degC", "K")
    (True, False, False)
    """
    a, b = parse_unit(first), parse_unit(second)
    if a == b:
        return True
    if a.dimensionality != b.dimensionality:
        return False
    registry = unit_registry()
    try:
        zero = float(registry.Quantity(0.0, a).to(b).magnitude)
        one = float(registry.Quantity(1.0, a).to(b).magnitude)
    except pint.errors.PintError:  # offset units pint will not convert this way
        return False
    return math.isclose(zero, 0.0, abs_tol=1e-12) and math.isclose(one, 1.0, rel_tol=1e-12)


#: Units data files are often in: what a misspelt unit is compared with.
_COMMON_UNITS = (
    "W", "kW", "MW", "m/s", "km/h", "knot", "degC", "degF", "K", "Pa", "hPa", "kPa",
    "bar", "mbar", "kg/m^3", "degree", "rad", "percent", "m^3", "m^3/s", "m^3/day",
)  # fmt: skip


def suggest_unit(expression: str, like: str | None = None) -> str | None:
    """The unit that ``expression`` was probably meant to be, or ``None``.

    Tried in order: exponents written without ``^`` (``kg/m3``), a common unit in other
    letter case (``KW``), the expression in lower case (``Watt``), a temperature
    without ``deg`` (``C``, which pint reads as coulomb), and the closest common unit
    by spelling (``kmh``). With ``like``, only a unit of ``like``'s dimension is
    suggested.

    Examples
    --------
    >>> suggest_unit("kmh"), suggest_unit("KW"), suggest_unit("C", like="degC")
    ('km/h', 'kW', 'degC')
    """
    by_case = {unit.lower(): unit for unit in _COMMON_UNITS}
    candidates = [
        re.sub(r"(?<=[A-Za-z])([23])(?!\d)", r"^\1", expression),
        by_case.get(expression.lower(), ""),
        # Not one capital: "C" in lower case is the speed of light to pint.
        expression.lower() if len(expression) > 1 else "",
        f"deg{expression}",
        *difflib.get_close_matches(expression, _COMMON_UNITS, n=3, cutoff=0.6),
    ]
    registry = unit_registry()
    wanted = None if like is None else registry.Unit(like).dimensionality
    for candidate in candidates:
        if candidate in ("", expression):
            continue
        try:
            unit = registry.Unit(candidate)
        except (pint.errors.UndefinedUnitError, AttributeError, TypeError, ValueError):
            continue
        if wanted is None or unit.dimensionality == wanted:
            return candidate
    return None


def did_you_mean(expression: str, like: str | None = None) -> str:
    """``"; did you mean 'km/h'?"``, or nothing when no unit comes close."""
    suggestion = suggest_unit(expression, like)
    return "" if suggestion is None else f"; did you mean {suggestion!r}?"


class Variable(BaseModel):
    """A named quantity with a unit and optional physical bounds.

    Parameters
    ----------
    name
        Glossary name, for example ``"power"``.
    unit
        pint unit expression, for example ``"kW"``.
    lower, upper
        Physical bounds in ``unit``; ``None`` when unbounded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z](?:[a-zA-Z0-9_]*[a-zA-Z0-9])?$", max_length=64)
    unit: str = ""
    lower: float | None = None
    upper: float | None = None
    description: str = ""

    @field_validator("unit")
    @classmethod
    def _unit_is_known(cls, value: str) -> str:
        parse_unit(value)
        return value

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> Variable:
        for side, bound, wrong in (
            ("lower", self.lower, math.inf),
            ("upper", self.upper, -math.inf),
        ):
            if bound is not None and (math.isnan(bound) or bound == wrong):
                # An infinite bound on its wrong side leaves no value within the bounds.
                raise ValueError(
                    f"{self.name}: {side} bound: expected a number or none, got "
                    f"{'NaN' if math.isnan(bound) else bound}"
                )
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(
                f"{self.name}: expected lower <= upper, got [{self.lower}, {self.upper}]"
            )
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lower, upper)`` with infinities for missing bounds."""
        lower = -math.inf if self.lower is None else self.lower
        upper = math.inf if self.upper is None else self.upper
        return lower, upper


class Telemetry(Variable):
    """A quantity measured over time (a sensor channel)."""

    kind: Literal["telemetry"] = "telemetry"


class Property(Variable):
    """A fixed or slowly changing attribute of the asset (rated power, hub height)."""

    kind: Literal["property"] = "property"
    value: float | str | None = None

    @model_validator(mode="after")
    def _value_is_within_bounds(self) -> Property:
        if isinstance(self.value, float):
            lower, upper = self.bounds
            if not lower <= self.value <= upper:  # NaN is within no bounds
                raise ValueError(
                    f"{self.name}: value: expected a number within [{lower:g}, {upper:g}] "
                    f"{self.unit}, got {self.value}"
                )
        return self


class TwinSchema(BaseModel):
    """The interface of a twin: its telemetry and properties.

    Examples
    --------
    >>> schema = TwinSchema(
    ...     name="Turbine",
    ...     telemetry=[Telemetry(name="power", unit="kW", lower=0, upper=2050)],
    ... )
    >>> schema.variable("power").bounds
    (0.0, 2050.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z](?:[a-zA-Z0-9_]*[a-zA-Z0-9])?$", max_length=64)
    version: int = Field(default=1, ge=1)
    description: str = ""
    telemetry: tuple[Telemetry, ...] = ()
    properties: tuple[Property, ...] = ()

    @model_validator(mode="after")
    def _names_are_unique(self) -> TwinSchema:
        names = [v.name for v in (*self.telemetry, *self.properties)]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"{self.name}: duplicated variable names {duplicated}")
        return self

    def variable(self, name: str) -> Variable:
        """The telemetry or property called ``name``."""
        for variable in (*self.telemetry, *self.properties):
            if variable.name == name:
                return variable
        known = [v.name for v in (*self.telemetry, *self.properties)]
        raise KeyError(f"{self.name} has no variable {name!r}; it has {known}")
