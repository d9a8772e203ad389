"""Condition monitoring: anomaly scores and persistent-underperformance detection.

A twin that predicts with calibrated uncertainty can judge what its asset does:

- :func:`anomaly_score` says how surprising each reading is under the twin's predictive
  distribution (a two-sided tail probability, in decades);
- :func:`standardised_residuals` turns readings into residuals that are standard normal
  while the asset behaves as the twin expects (randomised PIT, bounds included);
- :func:`fleet_contrast` compares each asset of a fleet with the others at the same
  time, removing the weather and season every twin shares;
- :func:`loss_sensitivity` weighs each reading by how far a relative loss would move it;
- :class:`CusumDetector` accumulates the evidence per day and raises an :class:`Alarm`
  when a persistent downward shift is likely; its ``cleared``/``rejected`` masks tell a
  twin that keeps assimilating which readings it may learn from, so that it does not
  absorb an underperformance as the new normal.
"""

from twinweave.monitoring._cusum import (
    MIN_CALIBRATION_PERIODS,
    MIN_PERIOD_READINGS,
    Alarm,
    CusumDetector,
)
from twinweave.monitoring._residuals import (
    anomaly_score,
    fleet_contrast,
    loss_sensitivity,
    standardised_residuals,
)

__all__ = [
    "MIN_CALIBRATION_PERIODS",
    "MIN_PERIOD_READINGS",
    "Alarm",
    "CusumDetector",
    "anomaly_score",
    "fleet_contrast",
    "loss_sensitivity",
    "standardised_residuals",
]
