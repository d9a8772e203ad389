"""Predictive distributions: what every ``predict`` returns.

A :class:`CensoredNormal` is a Gaussian latent variable clipped to physical bounds, the
usual model for a quantity such as turbine power that piles up at zero (idle) and at rated
power (the controller caps it). Quantiles and samples never leave the bounds; the bounds
carry probability mass equal to the latent tail beyond them.

The latent Gaussian may carry a shared low-rank ``factor``: the part of the uncertainty
that is common to all points (an emulator's parameter uncertainty). Sampling draws it once
per sample path, so sums over time (energy, hours at rated) get honest, correlated
uncertainty, while marginal summaries (mean, var, quantile) use only its row norms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

FloatArray = NDArray[np.float64]

_SQRT2 = np.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


@runtime_checkable
class Predictive(Protocol):
    """What a prediction is: a distribution per point, with units.

    Every emulator's ``predict`` returns an object with these members; a point estimate
    is ``.mean``.
    """

    @property
    def units(self) -> str: ...

    @property
    def mean(self) -> FloatArray: ...

    @property
    def var(self) -> FloatArray: ...

    def quantile(self, q: ArrayLike) -> FloatArray: ...

    def interval(self, level: float = 0.9) -> tuple[FloatArray, FloatArray]: ...

    def sample(
        self, n_samples: int, seed: int | np.random.Generator | None = None
    ) -> FloatArray: ...

    def log_prob(self, y: ArrayLike) -> FloatArray: ...


def _norm_cdf(z: FloatArray) -> FloatArray:
    return np.asarray(special.ndtr(z), dtype=np.float64)


def _norm_logcdf(z: FloatArray) -> FloatArray:
    return np.asarray(special.log_ndtr(z), dtype=np.float64)


def _norm_pdf(z: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-0.5 * z * z - _LOG_SQRT_2PI), dtype=np.float64)


@dataclass(frozen=True)
class CensoredNormal:
    """Gaussian latent variable censored to ``[lower, upper]``.

    Parameters
    ----------
    loc
        Latent mean per point [units].
    noise_var
        Latent variance per point that is independent between points [units^2].
    factor
        Optional ``(n_points, k)`` loading of shared standard-normal factors; adds
        ``sum(factor**2, axis=1)`` to the latent variance and correlates the points.
    lower, upper
        Censoring bounds [units]; ``-inf``/``inf`` for none.
    units
        A pint unit expression, for example ``"kW"``.

    Notes
    -----
    Moments of the censored normal follow Greene, *Econometric Analysis*, 7th ed.,
    section 19.3 (censored normal distribution); the CRPS is evaluated by Gauss-Legendre
    quadrature of the threshold decomposition of Gneiting and Raftery (2007),
    doi:10.1198/016214506000001437.

    Examples
    --------
    >>> p = CensoredNormal(loc=[100.0, 2000.0], noise_var=[400.0, 10000.0],
    ...                    lower=0.0, upper=2050.0, units="kW")
    >>> bool((p.quantile(0.99) <= 2050.0).all())
    True
    >>> p.interval(0.9)[0].round(1)
    array([  67.1, 1835.5])
    """

    loc: FloatArray
    noise_var: FloatArray
    lower: float = -np.inf
    upper: float = np.inf
    units: str = ""
    factor: FloatArray | None = field(default=None)

    def __init__(
        self,
        loc: ArrayLike,
        noise_var: ArrayLike,
        *,
        lower: float = -np.inf,
        upper: float = np.inf,
        units: str = "",
        factor: ArrayLike | None = None,
    ) -> None:
        loc_arr = np.atleast_1d(np.asarray(loc, dtype=np.float64))
        var_arr = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), loc_arr.shape).copy()
        if np.any(var_arr < 0):
            raise ValueError("noise_var: expected non-negative variances, got a negative one")
        if not lower <= upper:
            raise ValueError(f"bounds: expected lower <= upper, got [{lower}, {upper}]")
        object.__setattr__(self, "loc", loc_arr)
        object.__setattr__(self, "noise_var", var_arr)
        object.__setattr__(self, "lower", float(lower))
        object.__setattr__(self, "upper", float(upper))
        object.__setattr__(self, "units", units)
        if factor is not None:
            factor_arr = np.asarray(factor, dtype=np.float64)
            if factor_arr.ndim != 2 or factor_arr.shape[0] != loc_arr.shape[0]:
                raise ValueError(
                    f"factor: expected shape ({loc_arr.shape[0]}, k), got {factor_arr.shape}"
                )
            object.__setattr__(self, "factor", factor_arr)
        else:
            object.__setattr__(self, "factor", None)

    def __len__(self) -> int:
        return int(self.loc.shape[0])

    def __getitem__(self, index: slice | NDArray[np.bool_] | NDArray[np.intp]) -> CensoredNormal:
        """The distribution at a subset of points (keeps their shared factor)."""
        return CensoredNormal(
            self.loc[index],
            self.noise_var[index],
            lower=self.lower,
            upper=self.upper,
            units=self.units,
            factor=None if self.factor is None else self.factor[index],
        )

    # -- the latent Gaussian ------------------------------------------------------------
    @property
    def latent_var(self) -> FloatArray:
        """Variance of the uncensored Gaussian [units^2]."""
        if self.factor is None:
            return self.noise_var
        shared = np.einsum("ij,ij->i", self.factor, self.factor)
        return np.asarray(self.noise_var + shared, dtype=np.float64)

    @property
    def latent_std(self) -> FloatArray:
        return np.sqrt(self.latent_var)

    def _standardised_bounds(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        s = np.maximum(self.latent_std, 1e-300)
        a = (self.lower - self.loc) / s
        b = (self.upper - self.loc) / s
        return a, b, s

    # -- moments --------------------------------------------------------------------------
    @property
    def mean(self) -> FloatArray:
        """Mean of the censored variable [units]."""
        a, b, s = self._standardised_bounds()
        pa, pb = _norm_cdf(a), _norm_cdf(b)
        inside = self.loc * (pb - pa) + s * (_norm_pdf(a) - _norm_pdf(b))
        low = self.lower * pa if np.isfinite(self.lower) else 0.0
        high = self.upper * (1.0 - pb) if np.isfinite(self.upper) else 0.0
        return np.asarray(low + inside + high, dtype=np.float64)

    @property
    def var(self) -> FloatArray:
        """Variance of the censored variable [units^2]."""
        a, b, s = self._standardised_bounds()
        pa, pb = _norm_cdf(a), _norm_cdf(b)
        fa, fb = _norm_pdf(a), _norm_pdf(b)
        # E[X^2; a < Z < b] for X = loc + s Z, written with finite-safe products.
        # An infinite bound has zero density there; zero it before the product, as
        # inf * 0 is NaN (and warns) even where np.where then discards it.
        a_fa = np.where(np.isfinite(a), a, 0.0) * fa
        b_fb = np.where(np.isfinite(b), b, 0.0) * fb
        mu, s2 = self.loc, s * s
        second_inside = (mu * mu + s2) * (pb - pa) + 2 * mu * s * (fa - fb) + s2 * (a_fa - b_fb)
        low = self.lower**2 * pa if np.isfinite(self.lower) else 0.0
        high = self.upper**2 * (1.0 - pb) if np.isfinite(self.upper) else 0.0
        m = self.mean
        return np.asarray(np.maximum(low + second_inside + high - m * m, 0.0), dtype=np.float64)

    # -- quantiles and intervals -------------------------------------------------------
    def quantile(self, q: ArrayLike) -> FloatArray:
        """Quantiles [units]; ``q`` scalar gives shape ``(n,)``, a vector ``(len(q), n)``."""
        q_arr = np.asarray(q, dtype=np.float64)
        if np.any((q_arr <= 0) | (q_arr >= 1)):
            raise ValueError(f"q: expected probabilities in (0, 1), got {q_arr.tolist()}")
        z = _SQRT2 * special.erfinv(2 * q_arr - 1)
        s = self.latent_std
        if q_arr.ndim == 0:
            out = self.loc + s * z
        else:
            out = self.loc[None, :] + s[None, :] * z.reshape(-1, 1)
        return np.asarray(np.clip(out, self.lower, self.upper), dtype=np.float64)

    def interval(self, level: float = 0.9) -> tuple[FloatArray, FloatArray]:
        """Central interval holding probability ``level`` [units]."""
        if not 0 < level < 1:
            raise ValueError(f"level: expected a probability in (0, 1), got {level}")
        tail = (1 - level) / 2
        return self.quantile(tail), self.quantile(1 - tail)

    # -- sampling and scores -------------------------------------------------------------
    def sample(self, n_samples: int, seed: int | np.random.Generator | None = None) -> FloatArray:
        """Joint sample paths, shape ``(n_samples, n_points)`` [units].

        The shared factor is drawn once per path, so points within a path are correlated
        exactly as the emulator's parameter uncertainty implies.
        """
        rng = np.random.default_rng(seed)
        n = len(self)
        latent = self.loc[None, :] + np.sqrt(self.noise_var)[None, :] * rng.standard_normal(
            (n_samples, n)
        )
        if self.factor is not None:
            latent += rng.standard_normal((n_samples, self.factor.shape[1])) @ self.factor.T
        return np.asarray(np.clip(latent, self.lower, self.upper), dtype=np.float64)

    def log_prob(self, y: ArrayLike) -> FloatArray:
        """Log density at ``y``; at a bound, the log of the probability mass there."""
        y_arr = np.broadcast_to(np.asarray(y, dtype=np.float64), self.loc.shape)
        a, b, s = self._standardised_bounds()
        z = (y_arr - self.loc) / s
        density = -0.5 * z * z - _LOG_SQRT_2PI - np.log(s)
        out = np.where(y_arr <= self.lower, _norm_logcdf(a), density)
        out = np.where(y_arr >= self.upper, _norm_logcdf(-b), out)
        outside = (y_arr < self.lower) | (y_arr > self.upper)
        return np.asarray(np.where(outside, -np.inf, out), dtype=np.float64)

    def cdf(self, y: ArrayLike) -> FloatArray:
        """Cumulative probability at ``y``."""
        y_arr = np.broadcast_to(np.asarray(y, dtype=np.float64), self.loc.shape)
        c = _norm_cdf((y_arr - self.loc) / np.maximum(self.latent_std, 1e-300))
        c = np.where(y_arr < self.lower, 0.0, c)
        return np.asarray(np.where(y_arr >= self.upper, 1.0, c), dtype=np.float64)

    def crps(self, y: ArrayLike, n_nodes: int = 64) -> FloatArray:
        """Continuous ranked probability score at ``y`` [units]; lower is better.

        ``CRPS(F, y) = integral of (F(z) - 1{y <= z})^2 dz``; the integrand is zero outside
        the bounds and the span where the Gaussian has mass, so the integral is taken by
        Gauss-Legendre quadrature over ``[lo, y]`` and ``[y, hi]`` with ``lo``/``hi`` the
        bounds or ``loc -/+ 9 std``, whichever is tighter.
        """
        y_arr = np.broadcast_to(np.asarray(y, dtype=np.float64), self.loc.shape)
        s = self.latent_std
        lo = np.maximum(self.lower, self.loc - 9 * s)
        hi = np.minimum(self.upper, self.loc + 9 * s)
        lo = np.minimum(lo, y_arr)
        hi = np.maximum(hi, y_arr)
        nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
        total = np.zeros(y_arr.shape, dtype=np.float64)
        for left, right, indicator in ((lo, y_arr, 0.0), (y_arr, hi, 1.0)):
            half = 0.5 * (right - left)
            z = 0.5 * (right + left)[:, None] + half[:, None] * nodes[None, :]
            f = _norm_cdf((z - self.loc[:, None]) / np.maximum(s, 1e-300)[:, None])
            f = np.where(z < self.lower, 0.0, np.where(z >= self.upper, 1.0, f))
            total += half * ((f - indicator) ** 2 @ weights)
        return np.asarray(total, dtype=np.float64)
