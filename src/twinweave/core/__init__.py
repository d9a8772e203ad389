"""Core contracts: schema, predictive distributions, emulator protocol, twin, what-if."""

from typing import TYPE_CHECKING

from twinweave.core._lazy import lazy_exports

# Imported when first used (twinweave/core/_lazy.py): a process takes only what it
# needs. The table lists the same names as the imports (tests/test_lazy_exports.py).
if TYPE_CHECKING:
    from twinweave.core._dtdl import to_dtdl, validate_dtdl
    from twinweave.core._emulator import Columns, ConvergenceWarning, Emulator, State, column
    from twinweave.core._glossary import GLOSSARY, canonical_unit
    from twinweave.core._predictive import (
        CensoredNormal,
        DeferredFactor,
        ExponentialCorrelation,
        Predictive,
        ResidualCorrelation,
        time_seconds,
    )
    from twinweave.core._schema import (
        Property,
        Telemetry,
        TwinSchema,
        Variable,
        parse_unit,
        same_unit,
    )
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
        duration_text,
        time_steps_hours,
        usual_step_hours,
    )
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "twinweave.core._dtdl": (
                "to_dtdl",
                "validate_dtdl",
            ),
            "twinweave.core._emulator": (
                "Columns",
                "ConvergenceWarning",
                "Emulator",
                "State",
                "column",
            ),
            "twinweave.core._glossary": (
                "GLOSSARY",
                "canonical_unit",
            ),
            "twinweave.core._predictive": (
                "CensoredNormal",
                "DeferredFactor",
                "ExponentialCorrelation",
                "Predictive",
                "ResidualCorrelation",
                "time_seconds",
            ),
            "twinweave.core._schema": (
                "Property",
                "Telemetry",
                "TwinSchema",
                "Variable",
                "parse_unit",
                "same_unit",
            ),
            "twinweave.core._scores": (
                "coverage_by_bin",
                "scores",
            ),
            "twinweave.core._twin": (
                "Intervention",
                "ProvenanceSink",
                "Twin",
                "clone_emulator",
            ),
            "twinweave.core._whatif": (
                "Derate",
                "Metric",
                "ScaleTarget",
                "SetInputs",
                "Stop",
                "WhatIfResult",
                "compare",
                "duration_text",
                "time_steps_hours",
                "usual_step_hours",
            ),
        },
    )

__all__ = [
    "GLOSSARY",
    "CensoredNormal",
    "Columns",
    "ConvergenceWarning",
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
    "duration_text",
    "parse_unit",
    "same_unit",
    "scores",
    "time_seconds",
    "time_steps_hours",
    "to_dtdl",
    "usual_step_hours",
    "validate_dtdl",
]
