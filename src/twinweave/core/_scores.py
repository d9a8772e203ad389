"""Proper scores and calibration of predictive distributions against observations."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from twinweave.core._predictive import CensoredNormal

FloatVector = np.ndarray[tuple[int, ...], np.dtype[np.float64]]


def observed_values(predictive: CensoredNormal, y: ArrayLike) -> FloatVector:
    """``y`` as floats, checked against the predictive it is scored by: one finite value
    per predicted point (a NaN would count as outside every interval)."""
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.shape != predictive.loc.shape:
        raise ValueError(f"y: expected shape {predictive.loc.shape}, got {y_arr.shape}")
    bad = np.flatnonzero(~np.isfinite(y_arr))
    if bad.size:
        raise ValueError(
            f"y: expected finite values, got {bad.size} not finite (first at index "
            f"{int(bad[0])}: {y_arr.flat[bad[0]]}); drop those points from y and the inputs"
        )
    return y_arr


def scores(predictive: CensoredNormal, y: ArrayLike, *, level: float = 0.9) -> dict[str, float]:
    """RMSE of the mean, mean CRPS, mean log-likelihood and interval coverage.

    Parameters
    ----------
    predictive
        Predictive distribution per point [units].
    y
        Observed values [units].
    level
        Nominal probability of the central interval whose coverage is reported.

    Returns
    -------
    dict
        ``rmse``, ``crps`` [units]; ``log_likelihood`` [nats per point]; ``coverage``
        (fraction of ``y`` inside the interval) and ``n``.

    Notes
    -----
    CRPS and the log score are strictly proper (Gneiting and Raftery 2007,
    doi:10.1198/016214506000001437): they reward calibration and sharpness together.
    """
    y_arr = observed_values(predictive, y)
    lo, hi = predictive.interval(level)
    return {
        "rmse": float(np.sqrt(np.mean((y_arr - predictive.mean) ** 2))),
        "crps": float(np.mean(predictive.crps(y_arr))),
        "log_likelihood": float(np.mean(predictive.log_prob(y_arr))),
        "coverage": float(np.mean((y_arr >= lo) & (y_arr <= hi))),
        "n": y_arr.size,
    }


def coverage_by_bin(
    predictive: CensoredNormal,
    y: ArrayLike,
    x: ArrayLike,
    edges: ArrayLike,
    *,
    level: float = 0.9,
) -> tuple[
    np.ndarray[tuple[int], np.dtype[np.float64]], np.ndarray[tuple[int], np.dtype[np.int64]]
]:
    """Interval coverage and count in each bin ``[edges[i], edges[i+1])`` of ``x``.

    Empty bins give NaN coverage.
    """
    y_arr = observed_values(predictive, y)
    x_arr = np.asarray(x, dtype=np.float64)
    if x_arr.shape != y_arr.shape:
        raise ValueError(
            f"x: expected shape {y_arr.shape} (one value per point), got {x_arr.shape}"
        )
    edges_arr = np.asarray(edges, dtype=np.float64)
    lo, hi = predictive.interval(level)
    inside = ((y_arr >= lo) & (y_arr <= hi)).astype(np.float64)
    index = np.searchsorted(edges_arr, x_arr, side="right") - 1
    valid = (index >= 0) & (index < edges_arr.size - 1)
    n_bins = edges_arr.size - 1
    counts = np.bincount(index[valid], minlength=n_bins).astype(np.int64)
    hits = np.bincount(index[valid], inside[valid], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return coverage.astype(np.float64), counts
