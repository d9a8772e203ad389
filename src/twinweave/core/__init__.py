"""Core contracts: schema, predictive distributions, emulator protocol, twin, what-if."""

from typing import TYPE_CHECKING

from twinweave._lazy import lazy_exports

# Imported when first used (twinweave/_lazy.py): a process takes only what it needs.
if TYPE_CHECKING:
    from twinweave.core._dtdl import to_dtdl, validate_dtdl
    from twinweave.core._emulator import Columns, Emulator, State, column
    from twinweave.core._glossary import GLOSSARY, canonical_unit
    from twinweave.core._predictive import (
        CensoredNormal,
        DeferredFactor,
        ExponentialCorrelation,
        Predictive,
        ResidualCorrelation,
        time_seconds,
    )
    from twinweave.core._schema import Property, Telemetry, TwinSchema, Variable, parse_unit
    from twinweave.core._scores import coverage_by_bin, scores
    from twinweave.core._twin import Intervention, ProvenanceSink, Twin, clone_emulator
    from twinweave.core._whatif import (
        Derate,
        Metric,
        ScaleTarget,
        SetInputs,
        Stop,
        WhatIfResult,
        compare,
    )

__getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "GLOSSARY",
    "CensoredNormal",
    "Columns",
    "DeferredFactor",
    "Derate",
    "Emulator",
    "ExponentialCorrelation",
    "Intervention",
    "Metric",
    "Predictive",
    "Property",
    "ProvenanceSink",
    "ResidualCorrelation",
    "ScaleTarget",
    "SetInputs",
    "State",
    "Stop",
    "Telemetry",
    "Twin",
    "TwinSchema",
    "Variable",
    "WhatIfResult",
    "canonical_unit",
    "clone_emulator",
    "column",
    "compare",
    "coverage_by_bin",
    "parse_unit",
    "scores",
    "time_seconds",
    "to_dtdl",
    "validate_dtdl",
]
