"""twinweave: digital twins that scale by aggregation.

Follows Pias, Bull, Brennan, Girolami and Crowcroft, "On the scaling of digital twins by
aggregation", Data & Policy 7:e9 (2025), doi:10.1017/dap.2024.86.
"""

from twinweave.core import (
    CensoredNormal,
    Derate,
    Predictive,
    ScaleTarget,
    SetInputs,
    Stop,
    Telemetry,
    Twin,
    TwinSchema,
    compare,
)

__version__ = "0.1.0"

__all__ = [
    "CensoredNormal",
    "Derate",
    "Predictive",
    "ScaleTarget",
    "SetInputs",
    "Stop",
    "Telemetry",
    "Twin",
    "TwinSchema",
    "__version__",
    "compare",
]
