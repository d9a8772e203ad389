"""twinweave: digital twins that scale by aggregation.

Follows Pias, Bull, Brennan, Girolami and Crowcroft, "On the scaling of digital twins by
aggregation", Data & Policy 7:e9 (2025), doi:10.1017/dap.2024.86.
"""

from typing import TYPE_CHECKING

from twinweave.core._lazy import lazy_exports

# Imported when first used (twinweave/core/_lazy.py): a process takes only what it
# needs. The table lists the same names as the imports (tests/test_lazy_exports.py).
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
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "twinweave.core": (
                "CensoredNormal",
                "Derate",
                "Predictive",
                "ScaleTarget",
                "SetInputs",
                "Stop",
                "Telemetry",
                "Twin",
                "TwinSchema",
                "compare",
            ),
        },
        subpackages=(
            "checks",
            "cli",
            "core",
            "data",
            "demo",
            "domains",
            "models",
            "monitoring",
            "provenance",
            "report",
            "transfer",
        ),
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
