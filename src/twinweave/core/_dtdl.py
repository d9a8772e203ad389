"""A twin's schema as a DTDL v3 Interface, and a checker for the DTDL v3 rules.

DTDL (Digital Twins Definition Language) is the open modelling language of Azure Digital
Twins and IoT Plug and Play. The rules implemented here come from the normative DTDL v3
specification, ``DTDL/Docs/en-US/DTDL.Specification.v3.md`` in
github.com/Azure/opendigitaltwins-dtdl (sections "Interface", "Property", "Telemetry",
"Limits and exclusions", "Localizable string", "Standard schemas", "Reserved strings",
"Context", "Digital Twin Model Identifier"), from the explanatory reference
``DTDL/v3/DTDL.v3.md``, and from the QuantitativeTypes v1 extension
``DTDL/v3/DTDL.quantitativeTypes.v1.md`` (semantic types, unit types and units).

How a :class:`~twinweave.core.TwinSchema` is exported
-----------------------------------------------------
- Telemetry and properties become ``Telemetry`` and ``Property`` contents with schema
  ``double`` (a property whose value is text gets ``string``).
- A unit with an exact DTDL equivalent (same pint unit, not merely the same dimension)
  co-types the element with its QuantitativeTypes semantic type and sets ``unit``:
  ``kW`` gives ``["Telemetry", "Power"]`` with ``unit: "kilowatt"``, ``m/s`` gives
  ``Velocity``/``metrePerSecond``, ``degC`` gives ``Temperature``/``degreeCelsius``,
  ``degree`` gives ``Angle``/``degreeOfArc``.
- A unit without a DTDL equivalent (``m^3/day``, a dimensionless ratio, a torque in
  ``kN*m``, a temperature difference in ``delta_degC``) falls back to a plain
  ``double`` without semantic type (:func:`_spells` gives the rule). The export does
  not fail, because the pint unit is always written in the element's ``comment``
  (below), so nothing is lost; a consumer that needs a DTDL unit can see that there
  is none. Values are never converted: the unit declared is the unit the twin sends.
- Physical bounds have no DTDL member. The Annotation v1 extension
  (``DTDL/v3/DTDL.annotation.v1.md``) does not fit: a ``ValueAnnotation`` is itself a
  Property or Telemetry whose *value* lives in the running twin, not in the model, so it
  cannot state a constant bound. The bounds, the pint unit and a property's value are
  therefore written in the element's ``comment`` (a string for model authors, at most
  512 characters), in one machine-readable form::

      twinweave: unit=kW; lower=0; upper=2050

  with ``lower``/``upper`` omitted when unbounded and ``value=...`` added for a property
  with a value (a number, or JSON-quoted text). A text value too long for the comment's
  512 characters makes :func:`to_dtdl` fail, naming the property and the room left:
  the value is part of the model and has nowhere else to go.

What :func:`validate_dtdl` checks
---------------------------------
The rules that apply to what :func:`to_dtdl` emits and to the usual hand-written
mistakes; each problem names the element, the field, the value and what was expected.

- Document shape: a JSON object or an array of objects; every top-level element is an
  Interface with ``@context``.
- ``@context``: a string or array of strings, each a DTMI with a version;
  ``dtmi:dtdl:context;3`` present and first; extension contexts must be ones this
  checker knows (QuantitativeTypes v1, Annotation v1), otherwise the model is
  "contextually incomplete" for it and validity cannot be decided.
- ``@id``: DTMI syntax (the specification's regular expression: segments of letters,
  digits and underscores starting with a letter and not ending with an underscore;
  version of at most nine digits, optional minor part of at most six, no leading zeros),
  not under the reserved ``dtmi:dtdl:`` or ``dtmi:standard:`` prefixes, at most 128
  characters for an Interface and 2048 for other elements, unique in the document.
- ``@type``: a string or array of strings naming exactly one DTDL class; co-types must be
  semantic types of an extension in the active context (or ``ValueAnnotation``);
  strings with ``:`` must be DTMIs.
- Members: no keyword other than ``@context``, ``@id``, ``@type``; no member a class does
  not define (a misspelt ``displayname`` is caught).
- Names: present, a string matching ``^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?$``, at most
  512 characters (DTDL v3; v2 allowed 64), unique among an Interface's contents.
- Telemetry and Property: ``schema`` required and one of the primitive or geospatial
  schema terms (or their DTMIs), a complex schema object, or a reference to an element of
  the document; ``writable`` a boolean.
- Semantic types: ``unit`` must be a unit of the semantic type's unit type, ``schema``
  numeric (``double``, ``float``, ``integer``, ``long``); ``unit`` without a semantic type
  is an undefined member.
- Strings: ``comment`` at most 512 characters, each ``description`` at most 512,
  each ``displayName`` at most 64; localizable strings as a string, a language map with
  BCP 47-like tags, or an array of strings and language-tagged values with the same
  tags, each language once and at most one value in the default language (a string,
  an untagged value or one tagged ``en``).
- Command: the deprecated ``commandType``, if given, ``synchronous`` or
  ``asynchronous`` (the normative specification still lists it).
- No element has a path to itself (section "DTDL element"): no Interface extends
  itself, no Component has its own Interface as schema, and no longer loop through
  ``extends``, ``contents``, Component and schema references, within the documents
  given (a DTMI they do not define ends a path).
- Limits: at most 100,000 values under an Interface's ``contents`` hierarchy; the
  Interface's JSON text at most 1 MiB (measured on its compact serialisation, the
  smallest text that encodes it).

Not checked: Command and Relationship internals beyond names and ``commandType``,
complex schema internals (Array, Enum, Map, Object), the limits of ``extends``
hierarchies (1024 Interfaces, depth 10), and SHOULD-level recommendations.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pint
from pint.util import to_units_container

from twinweave.core._glossary import GLOSSARY
from twinweave.core._schema import (
    Property,
    TwinSchema,
    Variable,
    parse_unit,
    same_unit,
    unit_registry,
)

#: The DTDL v3 language context.
DTDL_CONTEXT: Final = "dtmi:dtdl:context;3"
#: The QuantitativeTypes v1 feature extension (semantic types and units).
QUANTITATIVE_TYPES_CONTEXT: Final = "dtmi:dtdl:extension:quantitativeTypes;1"
#: The Annotation v1 feature extension (``ValueAnnotation``).
ANNOTATION_CONTEXT: Final = "dtmi:dtdl:extension:annotation;1"

_KNOWN_EXTENSIONS: Final = frozenset({QUANTITATIVE_TYPES_CONTEXT, ANNOTATION_CONTEXT})

# \Z, not $: $ also matches before a final newline ("dtmi:a:b;1\n" is no DTMI).
_DTMI = re.compile(
    r"^dtmi:[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?"
    r"(?::[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?)*"
    r"(?:;[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,5})?)?\Z"
)
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?\Z")
_LANGUAGE = re.compile(r"^[a-z]{2,4}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?\Z")
_RESERVED_PREFIXES: Final = ("dtmi:dtdl:", "dtmi:standard:")

_MAX_NAME: Final = 512
_MAX_COMMENT: Final = 512
_MAX_DESCRIPTION: Final = 512
_MAX_DISPLAY_NAME: Final = 64
_MAX_INTERFACE_ID: Final = 128
_MAX_USER_DTMI: Final = 2048
_MAX_CONTENT_VALUES: Final = 100_000
_MAX_INTERFACE_BYTES: Final = 1024 * 1024


def _rows(table: str) -> list[list[str]]:
    """Whitespace-separated fields of each line of a text table."""
    return [line.split() for line in table.strip().splitlines()]


_PRIMITIVE_SCHEMAS: Final = tuple(
    [
        "boolean",
        "date",
        "dateTime",
        "double",
        "duration",
        "float",
        "integer",
        "long",
        "string",
        "time",
    ]
)
_GEOSPATIAL_SCHEMAS: Final = tuple(
    ["lineString", "multiLineString", "multiPoint", "multiPolygon", "point", "polygon"]
)


def _primitive_dtmi(name: str) -> str:
    return f"dtmi:dtdl:instance:Schema:{name};3"


_STANDARD_SCHEMAS: Final = frozenset(
    {*_PRIMITIVE_SCHEMAS, *(_primitive_dtmi(s) for s in _PRIMITIVE_SCHEMAS)}
    | {
        *_GEOSPATIAL_SCHEMAS,
        *(f"dtmi:standard:schema:geospatial:{s};3" for s in _GEOSPATIAL_SCHEMAS),
    }
)
_NUMERIC: Final = frozenset(
    {*("double", "float", "integer", "long")}
    | {_primitive_dtmi(s) for s in ("double", "float", "integer", "long")}
)
_COMPLEX_SCHEMAS: Final = ("Array", "Enum", "Map", "Object")

# Units of each QuantitativeTypes v1 unit type, and the unit type of each semantic type
# (DTDL.quantitativeTypes.v1.md, table "Semantic types and units").
_UNITS: Final[dict[str, frozenset[str]]] = {
    unit_type: frozenset(units.split())
    for unit_type, units in {
        "AccelerationUnit": "centimetrePerSecondSquared gForce metrePerSecondSquared",
        "AngleUnit": "degreeOfArc minuteOfArc radian secondOfArc turn",
        "AngularAccelerationUnit": "radianPerSecondSquared",
        "AngularVelocityUnit": (
            "degreePerSecond radianPerSecond revolutionPerMinute revolutionPerSecond"
        ),
        "ApparentEnergyUnit": (
            "gigavoltAmpereHour kilovoltAmpereHour megavoltAmpereHour voltAmpereHour"
        ),
        "ApparentPowerUnit": (
            "gigavoltAmpere kilovoltAmpere megavoltAmpere millivoltAmpere voltAmpere"
        ),
        "AreaUnit": (
            "acre hectare squareCentimetre squareFoot squareInch squareKilometre "
            "squareMetre squareMillimetre"
        ),
        "CapacitanceUnit": "farad microfarad millifarad nanofarad picofarad",
        "ChargeUnit": "ampereHour coulomb milliampereHour",
        "CurrentUnit": "ampere kiloampere microampere milliampere",
        "DataRateUnit": (
            "bitPerSecond bytePerSecond exbibitPerSecond exbibytePerSecond "
            "gibibitPerSecond gibibytePerSecond kibibitPerSecond kibibytePerSecond "
            "mebibitPerSecond mebibytePerSecond tebibitPerSecond tebibytePerSecond "
            "yobibitPerSecond yobibytePerSecond zebibitPerSecond zebibytePerSecond"
        ),
        "DataSizeUnit": (
            "bit byte exbibit exbibyte gibibit gibibyte kibibit kibibyte mebibit "
            "mebibyte tebibit tebibyte yobibit yobibyte zebibit zebibyte"
        ),
        "DensityUnit": (
            "gramPerCubicMetre kilogramPerCubicMetre microgramPerCubicMetre milligramPerCubicMetre"
        ),
        "EnergyUnit": (
            "britishThermalUnit electronvolt gigajoule gigawattHour joule "
            "kiloBritishThermalUnit kilojoule kilowattHour megaelectronvolt megajoule "
            "megawattHour milliwattHour terawattHour wattHour"
        ),
        "ForceUnit": "newton ounce pound ton",
        "FrequencyUnit": "gigahertz hertz kilohertz megahertz millihertz",
        "IlluminanceUnit": "footcandle lux",
        "InductanceUnit": "henry microhenry millihenry",
        "IonizingRadiationDoseUnit": ("gray microgray microsievert milligray millisievert sievert"),
        "IrradianceUnit": "wattPerSquareMetre",
        "LengthUnit": (
            "astronomicalUnit centimetre foot inch kilometre metre micrometre mile "
            "millimetre nanometre nauticalMile"
        ),
        "LuminanceUnit": "candelaPerSquareMetre",
        "LuminousFluxUnit": "lumen",
        "LuminousIntensityUnit": "candela",
        "MagneticFluxUnit": "maxwell weber",
        "MagneticInductionUnit": "gauss tesla",
        "MassUnit": "gram kilogram massPound microgram milligram slug tonne",
        "MassFlowRateUnit": (
            "gramPerHour gramPerSecond kilogramPerHour kilogramPerSecond massPoundPerHour"
        ),
        "PowerUnit": (
            "britishThermalUnitPerHour gigajoulePerHour gigawatt horsepower joulePerHour "
            "joulePerSecond kiloBritishThermalUnitPerHour kilojoulePerHour "
            "kilojoulePerSecond kilowatt kilowattHourPerYear megajoulePerHour megawatt "
            "microwatt milliwatt tonOfRefrigeration watt"
        ),
        "PressureUnit": (
            "bar decapascal hectopascal inchesOfMercury inchesOfWater kilopascal "
            "millibar millimetresOfMercury pascal poundPerSquareInch"
        ),
        "RadioactivityUnit": "becquerel gigabecquerel kilobecquerel megabecquerel",
        "ReactiveEnergyUnit": (
            "gigavoltAmpereReactiveHour kilovoltAmpereReactiveHour "
            "megavoltAmpereReactiveHour voltAmpereReactiveHour"
        ),
        "ReactivePowerUnit": (
            "gigavoltAmpereReactive kilovoltAmpereReactive megavoltAmpereReactive "
            "millivoltAmpereReactive voltAmpereReactive"
        ),
        "ResistanceUnit": "kiloohm megaohm milliohm ohm",
        "SoundPressureUnit": "bel decibel",
        "TemperatureUnit": "degreeCelsius degreeFahrenheit kelvin",
        "TimeUnit": "day hour microsecond millisecond minute nanosecond second year",
        "TorqueUnit": "newtonMetre",
        "Unitless": (
            "partsPerBillion partsPerMillion partsPerQuadrillion partsPerTrillion percent unity"
        ),
        "VelocityUnit": (
            "centimetrePerSecond kilometrePerHour kilometrePerSecond knot metrePerHour "
            "metrePerSecond milePerHour milePerSecond"
        ),
        "VoltageUnit": "kilovolt megavolt microvolt millivolt volt",
        "VolumeUnit": (
            "cubicCentimetre cubicFoot cubicInch cubicMetre fluidOunce gallon litre millilitre"
        ),
        "VolumeFlowRateUnit": (
            "cubicFootPerMinute cubicMetrePerHour cubicMetrePerMinute cubicMetrePerSecond "
            "gallonPerHour gallonPerMinute litrePerHour litrePerMinute litrePerSecond "
            "millilitrePerHour millilitrePerMinute millilitrePerSecond"
        ),
    }.items()
}

_SEMANTIC_TYPES: Final[dict[str, str]] = {
    semantic_type: unit_type
    for semantic_type, unit_type in _rows("""
    Acceleration AccelerationUnit
    Angle AngleUnit
    AngularAcceleration AngularAccelerationUnit
    AngularVelocity AngularVelocityUnit
    ApparentEnergy ApparentEnergyUnit
    ApparentPower ApparentPowerUnit
    Area AreaUnit
    Capacitance CapacitanceUnit
    Concentration Unitless
    Current CurrentUnit
    DataRate DataRateUnit
    DataSize DataSizeUnit
    Density DensityUnit
    Distance LengthUnit
    ElectricCharge ChargeUnit
    Energy EnergyUnit
    EnergyRate PowerUnit
    Force ForceUnit
    Frequency FrequencyUnit
    Humidity DensityUnit
    Illuminance IlluminanceUnit
    Inductance InductanceUnit
    IonizingRadiationDose IonizingRadiationDoseUnit
    Irradiance IrradianceUnit
    Latitude AngleUnit
    Length LengthUnit
    Longitude AngleUnit
    Luminance LuminanceUnit
    Luminosity PowerUnit
    LuminousFlux LuminousFluxUnit
    LuminousIntensity LuminousIntensityUnit
    MagneticFlux MagneticFluxUnit
    MagneticInduction MagneticInductionUnit
    Mass MassUnit
    MassFlowRate MassFlowRateUnit
    Power PowerUnit
    Pressure PressureUnit
    Radioactivity RadioactivityUnit
    ReactiveEnergy ReactiveEnergyUnit
    ReactivePower ReactivePowerUnit
    RelativeDensity Unitless
    RelativeHumidity Unitless
    Resistance ResistanceUnit
    SoundPressure SoundPressureUnit
    Temperature TemperatureUnit
    Thrust ForceUnit
    TimeSpan TimeUnit
    Torque TorqueUnit
    Velocity VelocityUnit
    Voltage VoltageUnit
    Volume VolumeUnit
    VolumeFlowRate VolumeFlowRateUnit
""")
}

# pint expression -> (semantic type, DTDL unit). Matched by unit identity after parsing,
# so "kilowatt" and "kW" both match, while "W" does not match "kilowatt".
_PINT_TO_DTDL: Final = _rows("""
    W          Power            watt
    mW         Power            milliwatt
    kW         Power            kilowatt
    MW         Power            megawatt
    GW         Power            gigawatt
    J          Energy           joule
    kJ         Energy           kilojoule
    MJ         Energy           megajoule
    GJ         Energy           gigajoule
    Wh         Energy           wattHour
    kWh        Energy           kilowattHour
    MWh        Energy           megawattHour
    GWh        Energy           gigawattHour
    TWh        Energy           terawattHour
    VA         ApparentPower    voltAmpere
    kVA        ApparentPower    kilovoltAmpere
    MVA        ApparentPower    megavoltAmpere
    m/s        Velocity         metrePerSecond
    cm/s       Velocity         centimetrePerSecond
    km/h       Velocity         kilometrePerHour
    km/s       Velocity         kilometrePerSecond
    m/h        Velocity         metrePerHour
    knot       Velocity         knot
    mph        Velocity         milePerHour
    degC       Temperature      degreeCelsius
    degF       Temperature      degreeFahrenheit
    K          Temperature      kelvin
    degree     Angle            degreeOfArc
    radian     Angle            radian
    arcminute  Angle            minuteOfArc
    arcsecond  Angle            secondOfArc
    turn       Angle            turn
    rpm        AngularVelocity  revolutionPerMinute
    rad/s      AngularVelocity  radianPerSecond
    degree/s   AngularVelocity  degreePerSecond
    Pa         Pressure         pascal
    hPa        Pressure         hectopascal
    kPa        Pressure         kilopascal
    bar        Pressure         bar
    mbar       Pressure         millibar
    psi        Pressure         poundPerSquareInch
    kg/m^3     Density          kilogramPerCubicMetre
    g/m^3      Density          gramPerCubicMetre
    mg/m^3     Density          milligramPerCubicMetre
    ug/m^3     Density          microgramPerCubicMetre
    m          Length           metre
    mm         Length           millimetre
    cm         Length           centimetre
    km         Length           kilometre
    m^2        Area             squareMetre
    km^2       Area             squareKilometre
    hectare    Area             hectare
    m^3        Volume           cubicMetre
    L          Volume           litre
    mL         Volume           millilitre
    m^3/s      VolumeFlowRate   cubicMetrePerSecond
    m^3/min    VolumeFlowRate   cubicMetrePerMinute
    m^3/h      VolumeFlowRate   cubicMetrePerHour
    L/s        VolumeFlowRate   litrePerSecond
    L/min      VolumeFlowRate   litrePerMinute
    L/h        VolumeFlowRate   litrePerHour
    kg/s       MassFlowRate     kilogramPerSecond
    kg/h       MassFlowRate     kilogramPerHour
    g          Mass             gram
    kg         Mass             kilogram
    tonne      Mass             tonne
    s          TimeSpan         second
    ms         TimeSpan         millisecond
    min        TimeSpan         minute
    h          TimeSpan         hour
    day        TimeSpan         day
    V          Voltage          volt
    mV         Voltage          millivolt
    kV         Voltage          kilovolt
    A          Current          ampere
    mA         Current          milliampere
    kA         Current          kiloampere
    Hz         Frequency        hertz
    kHz        Frequency        kilohertz
    N          Force            newton
    N*m        Torque           newtonMetre
    W/m^2      Irradiance       wattPerSquareMetre
""")


def _dtdl_unit(unit: str) -> tuple[str, str] | None:
    """The QuantitativeTypes semantic type and DTDL unit of a pint unit, if one exists.

    The match is on the unit itself, not its dimension: ``"W"`` maps to ``watt``,
    ``"kW"`` to ``kilowatt``; a unit with no DTDL spelling (``"m^3/day"``, a
    dimensionless ``""``) gives ``None``, and the export writes a plain ``double``.

    A unit is first looked up as the pint unit of a listed expression (``"kilowatt"``
    is ``"kW"``). Failing that, it may be another spelling of a listed unit
    (``"kW*h"`` for ``"kWh"``, ``"J/s"`` for ``"W"``), which :func:`_spells` decides:
    factor 1 and offset 0 are not enough, because pint's dimensions leave out what
    tells some DTDL quantities apart.

    Examples
    --------
    >>> _dtdl_unit("kW")
    ('Power', 'kilowatt')
    >>> _dtdl_unit("meter / second")
    ('Velocity', 'metrePerSecond')
    >>> _dtdl_unit("m^3/day") is None
    True
    >>> _dtdl_unit("kW*h"), _dtdl_unit("N*m")
    (('Energy', 'kilowattHour'), ('Torque', 'newtonMetre'))
    >>> _dtdl_unit("kN*m") is None, _dtdl_unit("delta_degC") is None, _dtdl_unit("1/s")
    (True, True, ('Frequency', 'hertz'))
    """
    if unit == "":
        return None
    parsed = parse_unit(unit)
    for expression, semantic_type, dtdl in _PINT_TO_DTDL:
        if parse_unit(expression) == parsed:
            return semantic_type, dtdl
    for expression, semantic_type, dtdl in _PINT_TO_DTDL:
        if _spells(unit, expression):
            return semantic_type, dtdl
    return None


def _spells(unit: str, listed: str) -> bool:
    """Whether ``unit`` is another spelling of the ``listed`` unit of ``_PINT_TO_DTDL``.

    It is when all of these hold:

    - the two are one unit by :func:`~twinweave.core.same_unit` (same dimension,
      factor 1, offset 0);
    - their pint root units agree, so also in the dimensionless base units pint's
      dimensions drop: an angle (radian, degree, revolution) or a count. ``"1/s"`` is a
      frequency (``hertz``), not ``radianPerSecond``; a becquerel is no hertz;
    - for an energy, both or neither is a product of a force and a length: the newton metre is the
      unit of torque, which the QuantitativeTypes extension lists only as
      ``newtonMetre``, so ``"kN*m"`` is a torque without a DTDL unit, not the
      ``kilojoule`` it equals;
    - neither is a temperature. DTDL's temperatures are absolute (``degreeCelsius``,
      ``degreeFahrenheit``, ``kelvin``) and are listed under their own spellings; what
      else has kelvin's size is a temperature difference (``"delta_degC"``), for which
      QuantitativeTypes v1 has no semantic type.

    Examples
    --------
    >>> _spells("kW*h", "kWh"), _spells("kN*m", "kJ"), _spells("1/s", "rad/s")
    (True, False, False)
    >>> _spells("N*m/s", "W")
    True
    """
    if not same_unit(listed, unit):
        return False
    registry = unit_registry()
    first, second = parse_unit(unit), parse_unit(listed)
    if registry.get_root_units(first)[1] != registry.get_root_units(second)[1]:
        return False
    # Only an energy can be a torque: N*m/s is a watt.
    energy = first.dimensionality == registry.get_dimensionality("[energy]")
    if energy and _force_times_length(first) != _force_times_length(second):
        return False
    return "[temperature]" not in first.dimensionality


def _force_times_length(unit: pint.Unit) -> bool:
    """Whether ``unit`` is written with a force and a length among its factors
    (``N*m``, ``kN*m``, ``lbf*ft``): a torque, though its dimension is an energy's."""
    registry = unit_registry()
    dimensions = {
        registry.get_dimensionality(name)
        for name, power in to_units_container(unit, registry).items()
        if isinstance(power, int | float) and power > 0
    }
    return {
        registry.get_dimensionality("[force]"),
        registry.get_dimensionality("[length]"),
    } <= dimensions


# -- export ------------------------------------------------------------------------------


def _number(value: float) -> str:
    # Shortest text that reads back as the same float, without a trailing ".0".
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _comment(variable: Variable) -> str:
    """The element's ``twinweave: ...`` comment.

    Raises
    ------
    ValueError
        If a property's value leaves the comment over the 512 characters DTDL allows.
    """
    parts = [f"unit={variable.unit}"]
    if variable.lower is not None:
        parts.append(f"lower={_number(variable.lower)}")
    if variable.upper is not None:
        parts.append(f"upper={_number(variable.upper)}")
    comment = "twinweave: " + "; ".join(parts)
    if not (isinstance(variable, Property) and variable.value is not None):
        return comment
    value = variable.value
    # Text is JSON-quoted so that a "; " inside it cannot split the field; non-ASCII
    # letters are kept, as \uXXXX escapes would take six of the 512 characters each.
    text = _number(value) if isinstance(value, float) else json.dumps(value, ensure_ascii=False)
    room = _MAX_COMMENT - len(comment) - len("; value=")
    if len(text) > room:
        # No other DTDL member holds a constant of the model (every string is limited
        # to 512 characters), and a value cut short would be a wrong value.
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(
            f"property {variable.name!r}: value = {shown}: expected at most {room} "
            f"characters as JSON text, got {len(text)} (the value is kept in the "
            f"element's comment, which DTDL v3 limits to {_MAX_COMMENT} characters, "
            f"after {comment!r})"
        )
    return f"{comment}; value={text}"


def _content(variable: Variable, kind: str) -> dict[str, Any]:
    text_value = isinstance(variable, Property) and isinstance(variable.value, str)
    semantic = None if text_value else _dtdl_unit(variable.unit)
    element: dict[str, Any] = {
        "@type": kind if semantic is None else [kind, semantic[0]],
        "name": variable.name,
        "schema": "string" if text_value else "double",
    }
    if semantic is not None:
        element["unit"] = semantic[1]
    description = variable.description or GLOSSARY.get(variable.name, ("", ""))[1]
    if description:
        element["description"] = description
    element["comment"] = _comment(variable)
    return element


def to_dtdl(schema: TwinSchema, dtmi: str) -> dict[str, Any]:
    """The schema as a DTDL v3 Interface (a JSON-ready dict).

    Parameters
    ----------
    schema
        The twin's schema: telemetry and properties with units and bounds.
    dtmi
        Digital twin model identifier of the Interface, for example
        ``"dtmi:org:twinweave:WindTurbine;1"``; without a version suffix, the schema's
        ``version`` is appended.

    Returns
    -------
    dict
        The Interface. Units map to QuantitativeTypes semantic types where an exact
        DTDL unit exists; bounds, pint units and property values are carried in each
        element's ``comment`` (see the module documentation for the format).

    Raises
    ------
    ValueError
        If the Interface would break a DTDL v3 rule (an invalid ``dtmi``, a description
        longer than 512 characters, ...); the message lists every problem found by
        :func:`validate_dtdl`. Also if a property's value is too long for the comment
        that carries it (512 characters in all): the message names the property, its
        length and the room left. No other DTDL member can hold the value (every string
        is limited to 512 characters) and a value cut short would be a wrong value, so
        the export fails rather than drop or truncate it.

    Examples
    --------
    >>> from twinweave.core import Telemetry, TwinSchema
    >>> schema = TwinSchema(name="Meter",
    ...                     telemetry=[Telemetry(name="power", unit="kW", lower=0)])
    >>> doc = to_dtdl(schema, "dtmi:org:example:Meter")
    >>> doc["@id"], doc["contents"][0]["@type"], doc["contents"][0]["unit"]
    ('dtmi:org:example:Meter;1', ['Telemetry', 'Power'], 'kilowatt')
    >>> doc["contents"][0]["comment"]
    'twinweave: unit=kW; lower=0'
    >>> validate_dtdl(doc)
    []
    """
    interface_id = dtmi if ";" in dtmi else f"{dtmi};{schema.version}"
    document: dict[str, Any] = {
        "@context": [DTDL_CONTEXT, QUANTITATIVE_TYPES_CONTEXT],
        "@id": interface_id,
        "@type": "Interface",
        "displayName": schema.name,
    }
    if schema.description:
        document["description"] = schema.description
    try:
        document["contents"] = [
            *(_content(t, "Telemetry") for t in schema.telemetry),
            *(_content(p, "Property") for p in schema.properties),
        ]
    except ValueError as error:
        raise ValueError(
            f"schema {schema.name!r} cannot be exported as DTDL v3 Interface "
            f"{interface_id!r}: {error}"
        ) from None
    problems = validate_dtdl(document)
    if problems:
        raise ValueError(
            f"schema {schema.name!r} cannot be exported as DTDL v3 Interface "
            f"{interface_id!r}: " + "; ".join(problems)
        )
    return document


# -- validation --------------------------------------------------------------------------

_CONTENT_CLASSES: Final = ("Command", "Component", "Property", "Relationship", "Telemetry")
_COMMON_MEMBERS: Final = frozenset({"comment", "description", "displayName"})
_MEMBERS: Final[dict[str, frozenset[str]]] = {
    "Interface": _COMMON_MEMBERS | {"contents", "extends", "schemas"},
    "Telemetry": _COMMON_MEMBERS | {"name", "schema"},
    "Property": _COMMON_MEMBERS | {"name", "schema", "writable"},
    "Command": _COMMON_MEMBERS | {"commandType", "name", "request", "response"},
    "Component": _COMMON_MEMBERS | {"name", "schema"},
    "Relationship": _COMMON_MEMBERS
    | {"name", "maxMultiplicity", "minMultiplicity", "properties", "target", "writable"},
}
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "Telemetry": ("name", "schema"),
    "Property": ("name", "schema"),
    "Command": ("name",),
    "Component": ("name", "schema"),
    "Relationship": ("name",),
}
# Members whose values count towards the 100,000-value limit ("Limits and exclusions").
_COUNTED_MEMBERS: Final = (
    "contents",
    "fields",
    "enumValues",
    "request",
    "response",
    "properties",
    "schema",
    "elementSchema",
    "mapValue",
)
_SEMANTIC_CLASSES: Final = frozenset({"Property", "Telemetry"})
# Values of a Command's deprecated "commandType" (DTDL.Specification.v3.md, "Command");
# both mean the same since v2.
_COMMAND_TYPES: Final = frozenset(
    {"asynchronous", "synchronous"}
    | {f"dtmi:dtdl:instance:CommandType:{t};3" for t in ("asynchronous", "synchronous")}
)
# Members whose values are DTDL elements or dependent references to them: the members
# a "path" follows (DTDL.Specification.v3.md, "DTDL element"). A Relationship's "target"
# takes DTMIs only, a non-dependent reference, and is no part of a path.
_ELEMENT_MEMBERS: Final = frozenset(
    {"contents", "extends", "schemas", "schema", "elementSchema", "fields", "enumValues"}
    | {"mapKey", "mapValue", "request", "response", "properties"}
)


def _class_dtmi(name: str) -> str:
    return f"dtmi:dtdl:class:{name};3"


def _member_dtmi(name: str) -> str:
    return f"dtmi:dtdl:property:{name};3"


@dataclass
class _Checker:
    """Walks a document once, collecting problems and identifiers."""

    problems: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    defined_ids: set[str] = field(default_factory=set)

    def report(self, where: str, member: str, value: object, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        self.problems.append(f"{where}: {member} = {shown}: expected {expected}")

    # -- scalar forms ------------------------------------------------------------------
    def dtmi(self, where: str, member: str, value: object, *, max_length: int) -> str | None:
        """``value`` if it is a valid DTMI of at most ``max_length`` characters."""
        if not isinstance(value, str):
            self.report(where, member, value, "a DTMI string such as 'dtmi:com:example:Thing;1'")
            return None
        if not _DTMI.match(value):
            self.report(
                where,
                member,
                value,
                "DTMI syntax 'dtmi:<segment>(:<segment>)*[;<version>]' with segments of "
                "letters, digits and underscores starting with a letter and not ending "
                "with '_', and a version of 1-9 digits (optionally '.' and 1-6 digits) "
                "without leading zeros",
            )
            return None
        if len(value) > max_length:
            self.report(where, member, value, f"at most {max_length} characters, got {len(value)}")
            return None
        return value

    def identifier(self, where: str, value: object, *, max_length: int) -> None:
        text = self.dtmi(where, "@id", value, max_length=max_length)
        if text is None:
            return
        if text.startswith(_RESERVED_PREFIXES):
            self.report(
                where,
                "@id",
                value,
                "an identifier outside the reserved 'dtmi:dtdl:' and 'dtmi:standard:' prefixes",
            )
        if text in self.ids:
            self.report(
                where,
                "@id",
                text,
                f"an identifier unique in the document (also on {self.ids[text]})",
            )
        else:
            self.ids[text] = where

    def plain_string(self, value: object) -> str | None:
        """The string of a representational string (a string or {"@value": ...})."""
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str):
            return value
        if (
            isinstance(value, Mapping)
            and isinstance(value.get("@value"), str)
            and set(value) <= {"@value", "@type"}
            and value.get("@type", "xsd:string")
            in ("xsd:string", "http://www.w3.org/2001/XMLSchema#string")
        ):
            return str(value["@value"])
        return None

    def comment(self, where: str, value: object) -> None:
        text = self.plain_string(value)
        if text is None:
            self.report(where, "comment", value, "a string")
        elif len(text) > _MAX_COMMENT:
            self.report(
                where, "comment", text, f"at most {_MAX_COMMENT} characters, got {len(text)}"
            )

    def localizable(self, where: str, member: str, value: object, max_length: int) -> None:
        texts: list[str] = []
        shape = (
            "a string, a language map such as {'en': '...'}, or an array of strings and "
            "{'@value': ..., '@language': ...} objects"
        )
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, Mapping):
            for tag, text in value.items():
                if not isinstance(tag, str) or not _LANGUAGE.match(tag):
                    self.report(where, member, value, f"{shape}; {tag!r} is not a language tag")
                    return
                if not isinstance(text, str):
                    self.report(
                        where, member, value, f"{shape}; the value for {tag!r} is not a string"
                    )
                    return
                texts.append(text)
        elif isinstance(value, list):
            # The array form's rules (DTDL.Specification.v3.md, "Localizable string"):
            # tags as in a language map, each language once, and at most one value in
            # the default language (a string, an untagged value or one tagged "en").
            languages: set[str] = set()
            n_default = 0
            for item in value:
                if isinstance(item, str):
                    texts.append(item)
                    n_default += 1
                    continue
                if not (
                    isinstance(item, Mapping)
                    and isinstance(item.get("@value"), str)
                    and set(item) <= {"@value", "@language"}
                ):
                    self.report(where, member, value, shape)
                    return
                texts.append(str(item["@value"]))
                if "@language" not in item:
                    n_default += 1
                    continue
                tag = item["@language"]
                if not isinstance(tag, str) or not _LANGUAGE.match(tag):
                    self.report(where, member, value, f"{shape}; {tag!r} is not a language tag")
                    return
                if tag in languages:
                    self.report(
                        where, member, value, f"{shape}; each language once, {tag!r} is twice"
                    )
                    return
                languages.add(tag)
                n_default += tag == "en"
            if n_default > 1:
                self.report(
                    where,
                    member,
                    value,
                    f"{shape}; at most one value in the default language (a string, or "
                    f"an object without '@language' or with '@language': 'en'), got {n_default}",
                )
                return
        else:
            self.report(where, member, value, shape)
            return
        for text in texts:
            if len(text) > max_length:
                self.report(
                    where, member, text, f"at most {max_length} characters, got {len(text)}"
                )

    # -- context and types -------------------------------------------------------------
    def context(
        self, where: str, value: object, inherited: frozenset[str], *, top: bool
    ) -> frozenset[str]:
        """Check ``@context`` and return the active context for the element."""
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            self.report(where, "@context", value, "a string or an array of strings")
            return inherited
        strings = [str(v) for v in values]
        for text in strings:
            if not _DTMI.match(text) or ";" not in text:
                self.report(
                    where, "@context", text, "a DTMI with a version, such as 'dtmi:dtdl:context;3'"
                )
        if top:
            if DTDL_CONTEXT not in strings:
                self.report(where, "@context", value, f"{DTDL_CONTEXT!r} in a top-level element")
            elif strings[0] != DTDL_CONTEXT:
                self.report(where, "@context", value, f"{DTDL_CONTEXT!r} first")
        active = {c.split(";")[0]: c for c in inherited}
        for text in strings:
            # A later value with the same de-versioned DTMI replaces an earlier one.
            active[text.split(";")[0]] = text
        for text in active.values():
            language = text.split(";")[0] == DTDL_CONTEXT.split(";")[0]
            if not language and text not in _KNOWN_EXTENSIONS and _DTMI.match(text):
                self.report(
                    where,
                    "@context",
                    text,
                    "a language extension known to this checker "
                    f"({', '.join(sorted(_KNOWN_EXTENSIONS))}); "
                    "with an unknown extension the model's validity cannot be decided",
                )
        return frozenset(active.values())

    def types(self, where: str, value: object) -> list[str] | None:
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            self.report(where, "@type", value, "a string or an array of strings")
            return None
        return [str(v) for v in values]

    # -- elements ----------------------------------------------------------------------
    def keywords(self, where: str, element: Mapping[str, Any]) -> None:
        for key in element:
            if (
                isinstance(key, str)
                and key.startswith("@")
                and key not in ("@context", "@id", "@type")
            ):
                self.report(
                    where, key, element[key], "no JSON-LD keyword other than @context, @id, @type"
                )

    def members(self, where: str, element: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for key in element:
            if not isinstance(key, str) or key.startswith("@"):
                continue
            term = key
            if key.startswith("dtmi:dtdl:property:"):
                term = key.removeprefix("dtmi:dtdl:property:").split(";")[0]
                if term in element:
                    self.report(
                        where,
                        key,
                        element[key],
                        f"the member written once, as {term!r} or {key!r}, not both",
                    )
                    continue
            if term not in allowed:
                known = ", ".join(sorted(allowed))
                self.report(where, key, element[key], f"a member this element defines ({known})")

    def value(self, element: Mapping[str, Any], name: str) -> object:
        if name in element:
            return element[name]
        return element.get(_member_dtmi(name))

    def has(self, element: Mapping[str, Any], name: str) -> bool:
        return name in element or _member_dtmi(name) in element

    def common(self, where: str, element: Mapping[str, Any]) -> None:
        if self.has(element, "comment"):
            self.comment(where, self.value(element, "comment"))
        if self.has(element, "description"):
            self.localizable(
                where, "description", self.value(element, "description"), _MAX_DESCRIPTION
            )
        if self.has(element, "displayName"):
            self.localizable(
                where, "displayName", self.value(element, "displayName"), _MAX_DISPLAY_NAME
            )

    def interface(
        self, where: str, element: object, inherited: frozenset[str], *, top: bool
    ) -> None:
        if not isinstance(element, Mapping):
            self.report(where, "element", element, "a JSON object (a DTDL Interface)")
            return
        identifier = element.get("@id")
        if "@id" not in element:
            self.report(where, "@id", None, "an @id (a DTMI) on every Interface")
        else:
            self.identifier(where, identifier, max_length=_MAX_INTERFACE_ID)
            if isinstance(identifier, str):
                where = f"Interface {identifier!r}"
        active = inherited
        if "@context" in element:
            active = self.context(where, element["@context"], inherited, top=top)
        elif top:
            self.report(
                where,
                "@context",
                None,
                f"a @context including {DTDL_CONTEXT!r} on a top-level Interface",
            )
        types = self.types(where, element.get("@type")) if "@type" in element else None
        if "@type" not in element:
            self.report(where, "@type", None, "'Interface'")
        elif types is not None:
            if "Interface" not in types and _class_dtmi("Interface") not in types:
                self.report(
                    where,
                    "@type",
                    element["@type"],
                    "'Interface' in a top-level element" if top else "'Interface'",
                )
            for extra in types if len(types) > 1 else ():
                if extra not in ("Interface", _class_dtmi("Interface")):
                    self.report(where, "@type", extra, "no co-type on an Interface")
        self.keywords(where, element)
        self.members(where, element, _MEMBERS["Interface"])
        self.common(where, element)
        self.extends(where, self.value(element, "extends"))
        self.schemas(where, self.value(element, "schemas"))
        contents = self.value(element, "contents")
        if contents is not None:
            self.contents(where, contents, active)
        counted = _count_values(element)
        if counted > _MAX_CONTENT_VALUES:
            self.report(
                where,
                "contents",
                f"{counted} values",
                f"at most {_MAX_CONTENT_VALUES} values in the contents hierarchy",
            )
        size = len(json.dumps(element, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > _MAX_INTERFACE_BYTES:
            self.report(
                where, "JSON text", f"{size} bytes", f"at most {_MAX_INTERFACE_BYTES} bytes (1 MiB)"
            )

    def extends(self, where: str, value: object) -> None:
        if value is None:
            return
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                self.dtmi(where, "extends", item, max_length=_MAX_INTERFACE_ID)
            elif not isinstance(item, Mapping):
                self.report(where, "extends", item, "an Interface DTMI or an Interface object")

    def schemas(self, where: str, value: object) -> None:
        if value is None:
            return
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            at = f"{where} schemas[{index}]"
            if not isinstance(item, Mapping):
                self.report(
                    at, "element", item, "a complex schema object (Array, Enum, Map or Object)"
                )
                continue
            if "@id" not in item:
                self.report(at, "@id", None, "an @id on every element of an Interface's schemas")
            else:
                self.identifier(at, item["@id"], max_length=_MAX_USER_DTMI)
            types = self.types(at, item.get("@type"))
            if types is not None and not any(t in _COMPLEX_SCHEMAS for t in types):
                self.report(
                    at, "@type", item.get("@type"), "one of 'Array', 'Enum', 'Map', 'Object'"
                )

    def contents(self, where: str, value: object, active: frozenset[str]) -> None:
        items = value if isinstance(value, list) else [value]
        names: dict[str, int] = {}
        elements: list[tuple[str, Mapping[str, Any], list[str]]] = []
        for index, item in enumerate(items):
            at = f"{where} contents[{index}]"
            if isinstance(item, str):
                reference = self.dtmi(at, "contents", item, max_length=_MAX_USER_DTMI)
                if reference is not None and reference not in self.defined_ids:
                    self.report(
                        at, "contents", item, "a reference to an element defined in the document"
                    )
                continue
            if not isinstance(item, Mapping):
                self.report(
                    at, "element", item, f"a content element object ({', '.join(_CONTENT_CLASSES)})"
                )
                continue
            name = self.plain_string(self.value(item, "name"))
            if name is not None:
                at = f"{at} {name!r}"
            checked = self.content(at, item, active)
            if checked is None:
                continue
            at, cotypes = checked
            elements.append((at, item, cotypes))
            if name is not None:
                if name in names:
                    self.report(
                        at,
                        "name",
                        name,
                        "a name unique among the Interface's contents "
                        f"(also contents[{names[name]}])",
                    )
                else:
                    names[name] = index
        for at, item, cotypes in elements:
            if "ValueAnnotation" in cotypes:
                target = item.get("annotates")
                if target not in names:
                    self.report(
                        at,
                        "annotates",
                        target,
                        f"the name of a sibling Property or Telemetry ({', '.join(sorted(names))})",
                    )

    def content(
        self, where: str, element: Mapping[str, Any], inherited: frozenset[str]
    ) -> tuple[str, list[str]] | None:
        """Check one content element; return where it is and its co-types (None if
        it has no usable class)."""
        active = inherited
        if "@context" in element:
            active = self.context(where, element["@context"], inherited, top=False)
        if "@type" not in element:
            self.report(
                where, "@type", None, f"one of {', '.join(repr(c) for c in _CONTENT_CLASSES)}"
            )
            return None
        types = self.types(where, element["@type"])
        if types is None:
            return None
        classes = [c for c in _CONTENT_CLASSES if c in types or _class_dtmi(c) in types]
        if len(classes) != 1:
            self.report(
                where,
                "@type",
                element["@type"],
                f"exactly one of {', '.join(repr(c) for c in _CONTENT_CLASSES)}",
            )
            return None
        kind = classes[0]
        where = f"{where} ({kind})"
        cotypes = [t for t in types if t not in (kind, _class_dtmi(kind))]
        semantic, informal = self.cotypes(where, kind, cotypes, active)
        if "@id" in element:
            self.identifier(where, element["@id"], max_length=_MAX_USER_DTMI)
        self.keywords(where, element)
        allowed = _MEMBERS[kind]
        if semantic is not None:
            allowed = allowed | {"unit"}
        if "ValueAnnotation" in cotypes:
            allowed = allowed | {"annotates"}
        if not informal:
            self.members(where, element, allowed)
        for required in _REQUIRED[kind]:
            if not self.has(element, required):
                self.report(where, required, None, f"a {required!r} member on every {kind}")
        if self.has(element, "name"):
            self.name(where, self.value(element, "name"))
        self.common(where, element)
        if kind in _SEMANTIC_CLASSES and self.has(element, "schema"):
            self.schema(where, self.value(element, "schema"))
        if kind == "Command" and self.has(element, "commandType"):
            self.command_type(where, self.value(element, "commandType"))
        if kind == "Property" and self.has(element, "writable"):
            writable = self.value(element, "writable")
            if not isinstance(writable, bool):
                self.report(where, "writable", writable, "true or false")
        if semantic is not None:
            self.semantic(where, element, semantic)
        return where, cotypes

    def cotypes(
        self, where: str, kind: str, cotypes: list[str], active: frozenset[str]
    ) -> tuple[str | None, bool]:
        """Check co-types; return the semantic type (if any) and whether one was bad.

        An element with a bad co-type is "informally co-typed": the specification then
        permits members this checker does not know, so they are not reported twice.
        """
        semantic: str | None = None
        n_problems = len(self.problems)
        for cotype in cotypes:
            if cotype in _SEMANTIC_TYPES:
                if QUANTITATIVE_TYPES_CONTEXT not in active:
                    self.report(
                        where,
                        "@type",
                        cotype,
                        f"the QuantitativeTypes context {QUANTITATIVE_TYPES_CONTEXT!r} "
                        "in @context before using its semantic types",
                    )
                elif kind not in _SEMANTIC_CLASSES:
                    self.report(
                        where, "@type", cotype, "a semantic type only on a Property or Telemetry"
                    )
                elif semantic is not None:
                    self.report(where, "@type", cotype, f"one semantic type (already {semantic!r})")
                else:
                    semantic = cotype
            elif cotype == "ValueAnnotation":
                if ANNOTATION_CONTEXT not in active:
                    self.report(
                        where,
                        "@type",
                        cotype,
                        f"the Annotation context {ANNOTATION_CONTEXT!r} in @context",
                    )
                elif kind not in _SEMANTIC_CLASSES:
                    self.report(
                        where, "@type", cotype, "ValueAnnotation only on a Property or Telemetry"
                    )
            elif ":" in cotype and not cotype.startswith("dtmi:"):
                self.report(where, "@type", cotype, "a term without ':' or a DTMI")
            elif cotype.startswith("dtmi:") and not _DTMI.match(cotype):
                self.report(where, "@type", cotype, "valid DTMI syntax")
            else:
                self.report(
                    where,
                    "@type",
                    cotype,
                    f"a co-type defined by an extension in the active context, such as a "
                    f"QuantitativeTypes semantic type ('Power', 'Temperature', ...); "
                    f"{cotype!r} is not one",
                )
        return semantic, len(self.problems) > n_problems

    def command_type(self, where: str, value: object) -> None:
        # Deprecated (a SHOULD NOT, not checked) but valid with one of its two values.
        if isinstance(value, list) and len(value) <= 1:
            value = value[0] if value else None
        if value is not None and not (isinstance(value, str) and value in _COMMAND_TYPES):
            self.report(
                where, "commandType", value, "'synchronous' or 'asynchronous' (or its DTMI)"
            )

    def name(self, where: str, value: object) -> None:
        text = self.plain_string(value)
        if text is None:
            self.report(where, "name", value, "a string")
            return
        if len(text) > _MAX_NAME:
            self.report(where, "name", text, f"at most {_MAX_NAME} characters, got {len(text)}")
        if not _NAME.match(text):
            self.report(
                where,
                "name",
                text,
                "letters, digits and underscores, starting with a letter and ending with a "
                "letter or digit (^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?$)",
            )

    def schema(self, where: str, value: object) -> None:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str):
            if value in _STANDARD_SCHEMAS:
                return
            if value.startswith("dtmi:") and _DTMI.match(value):
                if value not in self.defined_ids:
                    self.report(
                        where, "schema", value, "a reference to a schema defined in the document"
                    )
                return
            self.report(
                where,
                "schema",
                value,
                f"a primitive schema ({', '.join(_PRIMITIVE_SCHEMAS)}), a geospatial schema, "
                "a complex schema object or the DTMI of one",
            )
        elif isinstance(value, Mapping):
            types = self.types(where, value.get("@type"))
            if types is not None and not any(t in _COMPLEX_SCHEMAS for t in types):
                self.report(
                    where,
                    "schema",
                    value,
                    "a complex schema with @type 'Array', 'Enum', 'Map' or 'Object'",
                )
        else:
            self.report(where, "schema", value, "a schema term, a complex schema object or a DTMI")

    def semantic(self, where: str, element: Mapping[str, Any], semantic_type: str) -> None:
        schema = self.value(element, "schema")
        if isinstance(schema, list) and len(schema) == 1:
            schema = schema[0]
        if self.has(element, "schema") and not (isinstance(schema, str) and schema in _NUMERIC):
            self.report(
                where,
                "schema",
                schema,
                "a numeric schema (double, float, integer, long) with semantic type "
                f"{semantic_type!r}",
            )
        if "unit" in element:
            unit = element["unit"]
            unit_type = _SEMANTIC_TYPES[semantic_type]
            if not isinstance(unit, str) or unit not in _UNITS[unit_type]:
                self.report(
                    where,
                    "unit",
                    unit,
                    f"a {unit_type} for semantic type {semantic_type!r}: "
                    + ", ".join(sorted(_UNITS[unit_type])),
                )


def _term(key: object) -> str:
    """The term of a member name (``"schema"`` for ``"dtmi:dtdl:property:schema;3"``)."""
    return key.removeprefix("dtmi:dtdl:property:").split(";")[0] if isinstance(key, str) else ""


def _count_values(element: Mapping[str, Any]) -> int:
    """Values among the counted members in the hierarchy under ``element``."""
    total = 0
    for key, value in element.items():
        if _term(key) not in _COUNTED_MEMBERS:
            continue
        items = value if isinstance(value, list) else [value]
        total += len(items)
        for item in items:
            if isinstance(item, Mapping):
                total += _count_values(item)
    return total


def _collect_ids(value: object, found: set[str]) -> None:
    if isinstance(value, Mapping):
        identifier = value.get("@id")
        if isinstance(identifier, str):
            found.add(identifier)
        for item in value.values():
            _collect_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_ids(item, found)


def _steps(
    document: object, defined: set[str]
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """For each element with an ``@id``: the elements with an ``@id`` one step away on a
    path, each as (the members followed, the element's ``@id``); and how each element is
    named in problems (``Interface '<dtmi>'`` or ``element '<dtmi>'``).

    A step goes down the members of ``_ELEMENT_MEMBERS``, through elements without an
    ``@id``, to a nested element with one (inclusion) or to a DTMI string naming an
    element of the document (referential inclusion, a dependent reference).
    """
    steps: dict[str, list[tuple[str, str]]] = {}
    labels: dict[str, str] = {}

    def walk(element: Mapping[str, Any], owner: str | None, trail: str) -> None:
        identifier = element.get("@id")
        if isinstance(identifier, str):
            # A second element with one @id is reported as a duplicate, not as a path.
            if owner is not None and identifier not in steps:
                steps[owner].append((trail, identifier))
            steps.setdefault(identifier, [])
            types = element.get("@type")
            types = types if isinstance(types, list) else [types]
            interface = any(t in ("Interface", _class_dtmi("Interface")) for t in types)
            kind = "Interface" if interface else "element"
            labels.setdefault(identifier, f"{kind} {identifier!r}")
            owner, trail = identifier, ""
        for key, value in element.items():
            term = _term(key)
            if term not in _ELEMENT_MEMBERS:
                continue
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                step = f"{term}[{index}]" if isinstance(value, list) else term
                at = f"{trail}.{step}" if trail else step
                if isinstance(item, Mapping):
                    walk(item, owner, at)
                elif isinstance(item, str) and item in defined and owner is not None:
                    steps[owner].append((at, item))

    for top in document if isinstance(document, list) else [document]:
        if isinstance(top, Mapping):
            walk(top, None, "")
    return steps, labels


def _cycles(checker: _Checker, document: object) -> None:
    """Report each path from an element back to itself.

    "A DTDL element MUST NOT have a path to itself" (DTDL.Specification.v3.md, "DTDL
    element"): an Interface that extends itself, a Component whose schema is its own
    Interface, or longer loops through ``extends``, Component schemas and schema
    references. Only the elements of ``document`` are followed; a DTMI it does not
    define ends the path.
    """
    steps, labels = _steps(document, checker.defined_ids)
    for identifier in checker.defined_ids - steps.keys():
        # An element under a member no path follows (a misspelt one, say): a dead end.
        steps[identifier] = []
        labels[identifier] = f"element {identifier!r}"
    done: set[str] = set()
    for start in steps:
        if start in done:
            continue
        # Depth-first without recursion: a long chain of references must not overflow
        # Python's stack. "trail" holds the elements being visited and how each was left.
        trail: list[tuple[str, int]] = [(start, 0)]
        on_trail = {start}
        while trail:
            node, index = trail[-1]
            if index == len(steps[node]):
                trail.pop()
                on_trail.discard(node)
                done.add(node)
                continue
            trail[-1] = (node, index + 1)
            members, target = steps[node][index]
            if target in on_trail:
                loop = [entry for entry, _ in trail]
                loop = loop[loop.index(target) :]
                hops = [steps[n][i - 1][0] for n, i in trail[len(trail) - len(loop) :]]
                path = " -> ".join(f"{n} {h}" for n, h in zip(loop, hops, strict=True))
                checker.report(
                    labels[node],
                    members,
                    target,
                    f"no path from an element to itself (DTDL v3, 'DTDL element'), "
                    f"found {path} -> {target}",
                )
            elif target not in done:
                trail.append((target, 0))
                on_trail.add(target)


def validate_dtdl(document: object) -> list[str]:
    """Problems that make ``document`` an invalid (or undecidable) DTDL v3 model.

    Parameters
    ----------
    document
        A parsed JSON document: one Interface object or an array of them.

    Returns
    -------
    list of str
        Empty when no rule is broken. Each problem reads
        ``"<element>: <field> = <value>: expected <what the rule asks>"``; the module
        documentation lists the rules checked.

    Examples
    --------
    >>> validate_dtdl({
    ...     "@context": "dtmi:dtdl:context;3", "@id": "dtmi:com:example:Pump;1",
    ...     "@type": "Interface",
    ...     "contents": [{"@type": "Telemetry", "name": "flow-rate", "schema": "double"}]})
    ... # doctest: +NORMALIZE_WHITESPACE
    ["Interface 'dtmi:com:example:Pump;1' contents[0] 'flow-rate' (Telemetry): name =
      'flow-rate': expected letters, digits and underscores, starting with a letter and
      ending with a letter or digit (^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?$)"]
    """
    checker = _Checker()
    _collect_ids(document, checker.defined_ids)
    if isinstance(document, Mapping):
        checker.interface("document", document, frozenset(), top=True)
    elif isinstance(document, list) and document:
        for index, item in enumerate(document):
            checker.interface(f"document[{index}]", item, frozenset(), top=True)
    else:
        checker.report(
            "document", "root", document, "a JSON object or a non-empty array of objects"
        )
    _cycles(checker, document)
    return checker.problems
