"""twinweave: digital twins that scale by aggregation.

Follows Pias, Bull, Brennan, Girolami and Crowcroft, "On the scaling of digital twins by
aggregation", Data & Policy 7:e9 (2025), doi:10.1017/dap.2024.86.
"""

from typing import TYPE_CHECKING

from twinweave._lazy import lazy_exports

# Imported when first used (twinweave/_lazy.py): a process takes only what it needs.
if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(__name__, __file__)

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
