"""Wind turbine twins: power-curve emulators, the IEC baseline, what-if metrics, and
fleet monitoring for persistent underperformance."""

from twinweave.domains.wind._fleet import (
    READINGS_PER_YEAR,
    TurbineSpec,
    build_turbine_twin,
    evaluation_scores,
    fit_baseline,
    live_predictions,
    model_inputs,
    site_mean_density,
    turbine_emulator,
)
from twinweave.domains.wind._la_haute_borne import (
    LA_HAUTE_BORNE,
    asset_table,
    era5_path,
    scada_path,
)
from twinweave.domains.wind._memory import (
    MemoryScore,
    MemorySelection,
    forgetting_for,
    select_forgetting,
)
from twinweave.domains.wind._monitoring import FleetMonitor, MonitorResult, monitor_fleet
from twinweave.domains.wind._operation import (
    Curtailment,
    Downtime,
    Icing,
    normal_operation_checks,
)
from twinweave.domains.wind._power_curve import (
    REFERENCE_DENSITY,
    MethodOfBins,
    NormalisedWindSpeed,
    air_density,
    generic_power_curve,
    power_curve_emulator,
    pressure_at_elevation,
    turbine_schema,
)
from twinweave.domains.wind._whatif import (
    READING_HOURS,
    CapacityFactor,
    Energy,
    HoursAtRated,
    coverage_note,
    turbine_metrics,
    unseen_note,
)

__all__ = [
    "LA_HAUTE_BORNE",
    "READINGS_PER_YEAR",
    "READING_HOURS",
    "REFERENCE_DENSITY",
    "CapacityFactor",
    "Curtailment",
    "Downtime",
    "Energy",
    "FleetMonitor",
    "HoursAtRated",
    "Icing",
    "MemoryScore",
    "MemorySelection",
    "MethodOfBins",
    "MonitorResult",
    "NormalisedWindSpeed",
    "TurbineSpec",
    "air_density",
    "asset_table",
    "build_turbine_twin",
    "coverage_note",
    "era5_path",
    "evaluation_scores",
    "fit_baseline",
    "forgetting_for",
    "generic_power_curve",
    "live_predictions",
    "model_inputs",
    "monitor_fleet",
    "normal_operation_checks",
    "power_curve_emulator",
    "pressure_at_elevation",
    "scada_path",
    "select_forgetting",
    "site_mean_density",
    "turbine_emulator",
    "turbine_metrics",
    "turbine_schema",
    "unseen_note",
]
