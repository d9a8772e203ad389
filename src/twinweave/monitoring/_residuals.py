"""Residuals and anomaly scores of observations under a twin's predictive distribution.

A twin's predictive is a censored normal, possibly with the bounds' probabilities given:
a density between the bounds and point masses at them (power piles up at zero and at
rated). Residuals and scores here are defined
through the predictive cumulative distribution function, so readings at a bound and
readings between the bounds are judged on one scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special

from twinweave.core import CensoredNormal

FloatArray = NDArray[np.float64]

_LOG10 = np.log(10.0)


def _observed(predictive: CensoredNormal, y: ArrayLike) -> FloatArray:
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.shape != predictive.loc.shape:
        raise ValueError(
            f"y: expected shape {predictive.loc.shape} (one value per predictive point), "
            f"got {y_arr.shape}"
        )
    return y_arr


def _standardise(
    predictive: CensoredNormal, y: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``y``, the lower and the upper bound in latent standard deviations from ``loc``."""
    s = np.maximum(predictive.latent_std, 1e-300)
    return (
        (y - predictive.loc) / s,
        (predictive.lower - predictive.loc) / s,
        (predictive.upper - predictive.loc) / s,
    )


def _probits(
    predictive: CensoredNormal, y: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The probit of the CDF at ``y`` between the bounds, and the log probabilities of
    the lower and the upper bound.

    For the censored normal the probit is the latent standard score and the bounds'
    probabilities are the latent tails; with given bound masses (a hurdle) both come
    from the distribution's CDF and survival function, each from its nearer tail.
    """
    z, a, b = _standardise(predictive, y)
    if not predictive.is_hurdle:
        return z, special.log_ndtr(a), special.log_ndtr(-b)
    below, above = predictive.cdf(y), predictive.sf(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        probit = np.where(below < 0.5, special.ndtri(below), -special.ndtri(above))
        return (
            np.asarray(probit, dtype=np.float64),
            np.log(predictive.mass_at_lower),
            np.log(predictive.mass_at_upper),
        )


def standardised_residuals(
    predictive: CensoredNormal,
    y: ArrayLike,
    *,
    seed: int | np.random.Generator | None = None,
) -> FloatArray:
    """Probit of the randomised probability integral transform of ``y``.

    Between the bounds the residual is the probit of the predictive CDF (for the
    censored normal, ``(y - loc) / latent_std``). At a bound the CDF jumps (the bound
    holds probability mass), so the PIT is drawn uniformly over the jump,
    ``u ~ U(F(y-), F(y))``, and the residual is ``Phi^-1(u)``: the randomised PIT of
    Czado, Gneiting and Held (2009), "Predictive model assessment for count data",
    Biometrics 65:1254-1261, doi:10.1111/j.1541-0420.2009.01191.x. When ``y`` is drawn
    from ``predictive`` the residuals are then exactly independent standard normal,
    bounds included, so a shift in their mean is evidence against the twin.

    Parameters
    ----------
    predictive
        The twin's predictive distribution per point [units].
    y
        Observed values, one per point [units].
    seed
        Randomness for readings at a bound.

    Returns
    -------
    numpy.ndarray
        Residuals [standard deviations]; NaN where ``y`` is NaN, ``-inf``/``+inf``
        where ``y`` lies below/above the bounds (impossible under the predictive: clip
        such readings first when the excursion is a recording artefact, such as the
        small negative power of an idle turbine).

    Examples
    --------
    >>> p = CensoredNormal([100.0, 2100.0], [50.0**2, 50.0**2], lower=0, upper=2050)
    >>> r = standardised_residuals(p, [150.0, 2050.0], seed=0)
    >>> float(r[0])  # between the bounds: (150 - 100) / 50
    1.0
    >>> bool(r[1] > (2050.0 - 2100.0) / 50.0)  # at rated: drawn above the bound's z
    True
    """
    y_arr = _observed(predictive, y)
    rng = np.random.default_rng(seed)
    inside, log_low, log_high = _probits(predictive, y_arr)
    # V in (0, 1]: the position of the PIT inside the jump, measured from the tail end.
    log_v = np.log(1.0 - rng.random(y_arr.shape))
    # In log probabilities, so that a bound far in the predictive's tail (a turbine at
    # rated power where the twin expected 400 kW) gives a large finite residual instead
    # of an underflow to infinity.
    with np.errstate(divide="ignore"):
        # Lower atom: u = V * P(Y = lower).
        at_lower = special.ndtri_exp(log_v + log_low)
        # Upper atom: 1 - u = V * P(Y = upper), written in the upper tail so that a tiny
        # mass does not round to u = 1.
        at_upper = -special.ndtri_exp(log_v + log_high)
    out = np.where(y_arr <= predictive.lower, at_lower, inside)
    out = np.where(y_arr >= predictive.upper, at_upper, out)
    out = np.where(y_arr < predictive.lower, -np.inf, out)
    out = np.where(y_arr > predictive.upper, np.inf, out)
    return np.asarray(np.where(np.isnan(y_arr), np.nan, out), dtype=np.float64)


def anomaly_score(predictive: CensoredNormal, y: ArrayLike) -> FloatArray:
    """How surprising each reading is: ``-log10`` of its two-sided tail probability.

    The tail probability is ``p = min(1, 2 min(P(Y <= y), P(Y >= y)))`` under the
    predictive; at a bound it includes the bound's probability mass, so a reading at
    rated power when rated was likely scores near zero. A score of ``s`` means a reading
    as extreme as a two-sided ``10^-s`` event: under the predictive,
    ``P(score >= s) <= 10^-s`` (with equality between the bounds).

    Why not ``-log_prob(y)``: the log density has units (per kW) and mixes with the log
    probability of the mass at a bound, so neither its scale nor a threshold carries over
    between readings, variables or twins; and a wide predictive makes every typical
    reading look improbable. The tail probability is unitless, and as calibrated as the
    predictive is: the bound above holds where the readings follow the predictive. Real
    residuals have heavier tails than a normal's. On La Haute Borne 2015 under the
    monitor's week-ahead predictives (``twinweave monitor --since 2015-01-01 --output``,
    199,502 scored readings), 0.65 % scored 3 or more and 0.385 % scored 4 or more, where
    the bound gives 0.1 % and 0.01 %: read a score as a ranking of surprise, not as a
    probability, in the far tail.

    Parameters
    ----------
    predictive
        The twin's predictive distribution per point [units].
    y
        Observed values, one per point [units].

    Returns
    -------
    numpy.ndarray
        Scores >= 0 [decades of probability]; ``inf`` for a value outside the bounds,
        NaN where ``y`` is NaN.

    Examples
    --------
    >>> p = CensoredNormal([1000.0, 1000.0, 2100.0], [100.0**2] * 3, lower=0, upper=2050)
    >>> anomaly_score(p, [1000.0, 1329.0, 2050.0]).round(2)
    array([0., 3., 0.])
    """
    y_arr = _observed(predictive, y)
    probit, log_low, log_high = _probits(predictive, y_arr)
    with np.errstate(divide="ignore"):
        log_tail = special.log_ndtr(-np.abs(probit))
        log_tail = np.where(y_arr <= predictive.lower, log_low, log_tail)
        log_tail = np.where(y_arr >= predictive.upper, log_high, log_tail)
    log_p = np.minimum(np.log(2.0) + log_tail, 0.0)
    outside = (y_arr < predictive.lower) | (y_arr > predictive.upper)
    # Adding 0.0 turns the -0.0 of a certain event into 0.0.
    score = np.where(outside, np.inf, -log_p / _LOG10 + 0.0)
    return np.asarray(np.where(np.isnan(y_arr), np.nan, score), dtype=np.float64)


def loss_sensitivity(
    predictive: CensoredNormal, loss: float, *, max_sensitivity: float = 4.0
) -> FloatArray:
    """How far a relative loss would move each standardised residual down [sd].

    If the quantity were scaled by ``1 - loss`` (a turbine delivering 8 % less power),
    a reading at the predictive median ``m`` would read ``(1 - loss) m`` and its
    standardised residual would drop by ``loss * m / latent_std``. This is the expected
    shift a change detector weighs each reading by: large where the twin is sharp and the
    quantity is large (a turbine near rated), zero where the loss cannot show (an idle
    turbine). The shift is capped at ``max_sensitivity`` so that no single reading
    dominates the evidence; a negative median gives zero.

    Parameters
    ----------
    predictive
        The twin's predictive distribution per point [units].
    loss
        Relative loss to be detected, in (0, 1) [-].
    max_sensitivity
        Upper limit of the shift [sd].

    Returns
    -------
    numpy.ndarray
        Expected downward shift of each residual [sd], in ``[0, max_sensitivity]``.

    Examples
    --------
    >>> p = CensoredNormal([0.0, 500.0, 2300.0], [40.0**2] * 3, lower=0, upper=2050)
    >>> loss_sensitivity(p, 0.08)
    array([0., 1., 4.])
    """
    if not 0.0 < loss < 1.0:
        raise ValueError(f"loss: expected a fraction in (0, 1), got {loss}")
    if not max_sensitivity > 0.0:
        raise ValueError(f"max_sensitivity: expected a positive number, got {max_sensitivity}")
    median = predictive.quantile(0.5)
    shift = loss * median / np.maximum(predictive.latent_std, 1e-300)
    return np.asarray(np.clip(shift, 0.0, max_sensitivity), dtype=np.float64)


def fleet_contrast(residuals: pd.DataFrame, *, min_others: int = 2) -> pd.DataFrame:
    """Each asset's residual minus the median residual of the other assets at that time.

    Assets of one fleet share weather and season, and their twins share the errors those
    cause (a cold month, an unusual wind regime, drift that every twin has yet to
    assimilate). Subtracting the fleet's residual at the same time removes that common
    part and keeps what is particular to one asset, such as its own loss of performance.
    The median, rather than the mean, keeps one faulty neighbour from shifting everyone
    else's reference.

    Parameters
    ----------
    residuals
        Standardised residuals [sd], one column per asset, one row per time.
    min_others
        Fewest other assets with a residual at that time for the contrast to be
        defined; otherwise it is NaN. ``0`` compares no asset with the others: the
        residuals are returned as they are (a farm of one turbine).

    Returns
    -------
    pandas.DataFrame
        Contrasts [sd], same shape, index and columns as ``residuals``.

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [1.0, -2.0], "b": [1.0, 0.0], "c": [1.5, 0.2],
    ...                       "d": [0.5, None]})
    >>> fleet_contrast(frame)
         a    b    c    d
    0  0.0  0.0  0.5 -0.5
    1 -2.1  0.9  1.2  NaN
    """
    if residuals.shape[1] < min_others + 1:
        raise ValueError(
            f"residuals: expected at least {min_others + 1} asset columns for "
            f"min_others={min_others}, got {list(residuals.columns)}"
        )
    if min_others < 0:
        raise ValueError(f"min_others: expected an integer >= 0, got {min_others}")
    values = residuals.to_numpy(dtype=np.float64)
    if min_others == 0:
        return pd.DataFrame(values.copy(), index=residuals.index, columns=residuals.columns)
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        others = np.delete(values, j, axis=1)
        enough = np.isfinite(others).sum(axis=1) >= min_others
        with np.errstate(all="ignore"):
            reference = np.nanmedian(np.where(enough[:, None], others, 0.0), axis=1)
        out[:, j] = np.where(enough, values[:, j] - reference, np.nan)
    return pd.DataFrame(out, index=residuals.index, columns=residuals.columns)
