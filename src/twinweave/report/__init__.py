"""The demo report: a static, offline HTML page of a fleet's held-out evaluation.

:func:`write_demo_report` writes ``index.html`` (scores of twin and IEC 61400-12-1
baseline, and of frozen and live twin; calibration, power curves, residuals with alarms,
the monitor's window, a what-if), ``metrics.json`` and the installed plotly's
``plotly.min.js`` beside them. :func:`fleet_figure` draws a fleet fit's curves.
"""

from __future__ import annotations

from twinweave.report._fleet import fleet_figure
from twinweave.report._results import (
    BIN_COVERAGE_TARGET,
    COVERAGE_TARGET,
    LA_HAUTE_BORNE_ATTRIBUTION,
    MIN_BIN_READINGS,
    MIN_READINGS,
    MonitorWindow,
    Periods,
    TurbineResult,
    WhatIfSummary,
    utc_time_text,
)
from twinweave.report._summary import n_scored, pooled_scores, scored_span
from twinweave.report._writer import METRICS_FILE, write_demo_report

__all__ = [
    "BIN_COVERAGE_TARGET",
    "COVERAGE_TARGET",
    "LA_HAUTE_BORNE_ATTRIBUTION",
    "METRICS_FILE",
    "MIN_BIN_READINGS",
    "MIN_READINGS",
    "MonitorWindow",
    "Periods",
    "TurbineResult",
    "WhatIfSummary",
    "fleet_figure",
    "n_scored",
    "pooled_scores",
    "scored_span",
    "utc_time_text",
    "write_demo_report",
]
