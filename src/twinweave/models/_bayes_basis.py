"""Bayesian basis-function regression with heteroscedastic noise, from sufficient statistics.

The model, for a reading with features ``phi(x)`` falling in noise bin ``j(x)``::

    y = phi(x) . w + e,   e ~ N(0, sigma2[j(x)]),   w ~ N(0, P^-1)

with ``P`` a roughness (P-spline) plus ridge precision. For each noise bin the emulator
keeps the weighted sufficient statistics ``sum phi phi^T``, ``sum phi y``, ``sum y^2`` and
the count, so one batch and the same readings streamed one at a time give the same
posterior (up to floating-point summation order). The noise variances are set by
variational EM (Bishop, *Pattern Recognition and Machine Learning*, 2006, sections 3.3
and 9.3) with a weak inverse-gamma prior shared across bins; the weights' posterior is
the conjugate Gaussian given those variances.

A forgetting factor ``lambda < 1`` discounts old readings exponentially (recursive least
squares with exponential forgetting, Ljung and Soderstrom, *Theory and Practice of
Recursive Identification*, 1983), so the emulator tracks drift; the effective memory is
about ``1 / (1 - lambda)`` readings.

The statistics are what later fleet learning shares: they summarise a twin's data
without revealing any single reading once the counts are large.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from twinweave.core import CensoredNormal, Columns, State
from twinweave.models._basis import (
    BasisTerm,
    Input,
    block_diagonal,
    design_matrix,
    input_name,
    read_input,
)

FloatArray = NDArray[np.float64]

# Stored statistics are kept divided by a running decay scale; fold the scale back in
# before it underflows.
_MIN_SCALE = 1e-150


class BayesianBasisRegression:
    """Bayesian regression on basis features with binned (heteroscedastic) noise.

    Parameters
    ----------
    target
        Glossary name of the predicted variable, for example ``"power"``.
    terms
        Additive basis terms; see :mod:`twinweave.models` (``SplineTerm``,
        ``ModulatedSpline``).
    noise_source
        Input whose value selects the noise bin (for a power curve: wind speed).
    noise_edges
        Increasing bin edges of ``noise_source``; values beyond the ends fall in the first
        or last bin.
    lower, upper
        Physical bounds of the target; predictions are censored to them [units].
    units
        Unit of the target.
    smoothing
        Weight of the second-difference roughness penalty on spline weights
        [1/units^2].
    ridge
        Weight of the ridge penalty on all weights [1/units^2].
    forgetting
        Per-reading discount of older readings, in (0, 1]; 1 keeps everything.
    noise_prior_count
        Pseudo-readings with which each bin's variance is shrunk to the pooled variance.
    n_em_iterations
        Upper bound on EM iterations for the noise variances.

    Examples
    --------
    >>> from twinweave.models import SplineTerm
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(0, 10, 2000)
    >>> y = np.sin(x) + rng.normal(0, 0.1 + 0.02 * x)
    >>> model = BayesianBasisRegression(
    ...     target="y", terms=(SplineTerm("x", 0, 10, 20),), noise_source="x",
    ...     noise_edges=np.linspace(0, 10, 11), smoothing=1e-3, ridge=1e-8,
    ... ).update({"x": x, "y": y})
    >>> p = model.predict({"x": [2.0]})
    >>> bool(abs(p.mean[0] - np.sin(2.0)) < 0.05)
    True
    """

    def __init__(
        self,
        *,
        target: str,
        terms: Sequence[BasisTerm],
        noise_source: Input,
        noise_edges: Sequence[float] | FloatArray,
        lower: float = -np.inf,
        upper: float = np.inf,
        units: str = "",
        smoothing: float = 1e-3,
        ridge: float = 1e-6,
        forgetting: float = 1.0,
        noise_prior_count: float = 10.0,
        n_em_iterations: int = 50,
    ) -> None:
        self.target = target
        self.terms = tuple(terms)
        self.noise_source = noise_source
        self.noise_edges = np.asarray(noise_edges, dtype=np.float64)
        self.lower = lower
        self.upper = upper
        self.units = units
        self.smoothing = smoothing
        self.ridge = ridge
        self.forgetting = forgetting
        self.noise_prior_count = noise_prior_count
        self.n_em_iterations = n_em_iterations
        self._validate_params()
        self.n_features = sum(term.n_features for term in self.terms)
        self._reset_state()

    # -- configuration ---------------------------------------------------------------------
    def _validate_params(self) -> None:
        if not self.terms:
            raise ValueError("terms: expected at least one basis term, got none")
        edges = self.noise_edges
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(
                f"noise_edges: expected at least two increasing values, got {edges.tolist()}"
            )
        if not 0 < self.forgetting <= 1:
            raise ValueError(f"forgetting: expected a value in (0, 1], got {self.forgetting}")
        if self.smoothing < 0 or self.ridge <= 0:
            raise ValueError(
                f"smoothing, ridge: expected smoothing >= 0 and ridge > 0, got "
                f"{self.smoothing}, {self.ridge}"
            )
        if not self.lower < self.upper:
            raise ValueError(f"bounds: expected lower < upper, got [{self.lower}, {self.upper}]")

    def get_params(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "terms": self.terms,
            "noise_source": self.noise_source,
            "noise_edges": self.noise_edges.copy(),
            "lower": self.lower,
            "upper": self.upper,
            "units": self.units,
            "smoothing": self.smoothing,
            "ridge": self.ridge,
            "forgetting": self.forgetting,
            "noise_prior_count": self.noise_prior_count,
            "n_em_iterations": self.n_em_iterations,
        }

    @property
    def n_bins(self) -> int:
        return int(self.noise_edges.size - 1)

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Names of the inputs a prediction cannot do without."""
        return (input_name(self.noise_source),)

    # -- learned state -----------------------------------------------------------------
    def _reset_state(self) -> None:
        p, k = self.n_features, self.n_bins
        self.gram_: FloatArray = np.zeros((k, p, p))
        self.moment_: FloatArray = np.zeros((k, p))
        self.sum_sq_: FloatArray = np.zeros(k)
        self.count_: FloatArray = np.zeros(k)
        self.scale_: float = 1.0
        self._posterior: tuple[FloatArray, FloatArray, FloatArray] | None = None

    @property
    def n_observations_(self) -> float:
        return float(self.count_.sum() * self.scale_)

    def state(self) -> State:
        return {
            "gram_": self.gram_.copy(),
            "moment_": self.moment_.copy(),
            "sum_sq_": self.sum_sq_.copy(),
            "count_": self.count_.copy(),
            "scale_": self.scale_,
        }

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        model = cls(**params)
        for name in ("gram_", "moment_", "sum_sq_", "count_"):
            value = np.array(state[name], dtype=np.float64)
            expected = getattr(model, name).shape
            if value.shape != expected:
                raise ValueError(f"state {name}: expected shape {expected}, got {value.shape}")
            setattr(model, name, value)
        model.scale_ = float(state["scale_"])
        return model

    def statistics(self) -> dict[str, FloatArray]:
        """Sufficient statistics per noise bin, with the decay folded in."""
        s = self.scale_
        return {
            "gram": self.gram_ * s,
            "moment": self.moment_ * s,
            "sum_sq": self.sum_sq_ * s,
            "count": self.count_ * s,
        }

    # -- assimilation --------------------------------------------------------------------
    def noise_bin(self, data: Columns, n_rows: int) -> NDArray[np.intp]:
        x = read_input(data, self.noise_source)
        if x is None:
            raise KeyError(
                f"missing input {input_name(self.noise_source)!r}: the noise model needs it; "
                f"got columns {sorted(data)}"
            )
        x = np.broadcast_to(x, (n_rows,))
        index = np.searchsorted(self.noise_edges, x, side="right") - 1
        return np.clip(index, 0, self.n_bins - 1).astype(np.intp)

    def design(self, data: Columns) -> tuple[FloatArray, NDArray[np.intp]]:
        """Feature matrix and noise-bin index for ``data``."""
        first = read_input(data, self.noise_source)
        n_rows = 1 if first is None else int(first.shape[0])
        return design_matrix(self.terms, data, n_rows), self.noise_bin(data, n_rows)

    def update(self, observations: Columns) -> Self:
        y = read_input(observations, self.target)
        if y is None:
            raise KeyError(
                f"missing target {self.target!r}: expected a column of that name, "
                f"got {sorted(observations)}"
            )
        features, bins = self.design(observations)
        if features.shape[0] != y.shape[0]:
            raise ValueError(
                f"{self.target}: expected {features.shape[0]} values, got {y.shape[0]}"
            )
        bad = ~(np.isfinite(y) & np.isfinite(features).all(axis=1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"row {row}: expected finite {self.target} and inputs, got "
                f"{self.target}={y[row]!r}; quarantine or drop missing readings first"
            )
        n = y.shape[0]
        if self.forgetting < 1.0:
            self.scale_ *= self.forgetting**n
            if self.scale_ < _MIN_SCALE:
                self._fold_scale()
            # Reading i of n is discounted by lambda^(n-1-i) relative to the newest.
            log_w = (np.arange(n - 1, -1, -1) * np.log(self.forgetting)) - np.log(self.scale_)
            weights = np.exp(log_w)
        else:
            weights = np.full(n, 1.0 / self.scale_)
        if n == 1:
            x, j, w = features[0], int(bins[0]), float(weights[0])
            self.gram_[j] += w * np.outer(x, x)
            self.moment_[j] += (w * y[0]) * x
            self.sum_sq_[j] += w * y[0] * y[0]
            self.count_[j] += w
        else:
            self._accumulate(features, y, bins, weights)
        self._posterior = None
        return self

    def _accumulate(
        self, features: FloatArray, y: FloatArray, bins: NDArray[np.intp], weights: FloatArray
    ) -> None:
        order = np.argsort(bins, kind="stable")
        bins_sorted = bins[order]
        starts = np.searchsorted(bins_sorted, np.arange(self.n_bins + 1))
        for j in range(self.n_bins):
            lo, hi = starts[j], starts[j + 1]
            if lo == hi:
                continue
            rows = order[lo:hi]
            x = features[rows]
            w = weights[rows]
            xw = x * w[:, None]
            self.gram_[j] += xw.T @ x
            self.moment_[j] += xw.T @ y[rows]
            self.sum_sq_[j] += w @ (y[rows] * y[rows])
            self.count_[j] += w.sum()

    def _fold_scale(self) -> None:
        for name in ("gram_", "moment_", "sum_sq_", "count_"):
            setattr(self, name, getattr(self, name) * self.scale_)
        self.scale_ = 1.0

    # -- the posterior -------------------------------------------------------------------
    def prior_precision(self) -> FloatArray:
        return block_diagonal([t.penalty(self.smoothing, self.ridge) for t in self.terms])

    def _fit(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Posterior mean, inverse Cholesky factor of the precision, noise variances."""
        stats = self.statistics()
        gram, moment, sum_sq, count = (
            stats["gram"],
            stats["moment"],
            stats["sum_sq"],
            stats["count"],
        )
        prior = self.prior_precision()
        n_total = count.sum()
        if n_total <= 0:
            chol = linalg.cholesky(prior, lower=True)
            inv_chol = linalg.solve_triangular(chol, np.eye(self.n_features), lower=True)
            return np.zeros(self.n_features), inv_chol, np.ones(self.n_bins)
        # Start from the pooled variance of y; EM then refines per bin.
        pooled = max(float(sum_sq.sum() / n_total), 1e-12)
        noise_var = np.full(self.n_bins, pooled)
        nu = self.noise_prior_count
        for _ in range(self.n_em_iterations):
            precision = prior + np.einsum("j,jab->ab", 1.0 / noise_var, gram)
            chol = linalg.cholesky(precision, lower=True)
            rhs = np.einsum("j,ja->a", 1.0 / noise_var, moment)
            mean = linalg.cho_solve((chol, True), rhs)
            inv_chol = linalg.solve_triangular(chol, np.eye(self.n_features), lower=True)
            covariance = inv_chol.T @ inv_chol
            residual_ss = (
                sum_sq
                - 2.0 * moment @ mean
                + np.einsum("a,jab,b->j", mean, gram, mean)
                + np.einsum("jab,ab->j", gram, covariance)
            )
            residual_ss = np.maximum(residual_ss, 0.0)
            pooled = max(float(residual_ss.sum() / n_total), 1e-12)
            updated = (residual_ss + nu * pooled) / (count + nu)
            converged = np.max(np.abs(updated - noise_var) / noise_var) < 1e-10
            noise_var = updated
            if converged:
                break
        precision = prior + np.einsum("j,jab->ab", 1.0 / noise_var, gram)
        chol = linalg.cholesky(precision, lower=True)
        rhs = np.einsum("j,ja->a", 1.0 / noise_var, moment)
        mean = linalg.cho_solve((chol, True), rhs)
        inv_chol = linalg.solve_triangular(chol, np.eye(self.n_features), lower=True)
        return mean, inv_chol, noise_var

    def _posterior_parts(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._posterior is None:
            self._posterior = self._fit()
        return self._posterior

    @property
    def posterior_mean_(self) -> FloatArray:
        """Posterior mean of the weights."""
        return self._posterior_parts()[0].copy()

    @property
    def posterior_covariance_(self) -> FloatArray:
        """Posterior covariance of the weights."""
        inv_chol = self._posterior_parts()[1]
        return np.asarray(inv_chol.T @ inv_chol, dtype=np.float64)

    @property
    def noise_var_(self) -> FloatArray:
        """Noise variance per bin [units^2]."""
        return self._posterior_parts()[2].copy()

    def predict(self, inputs: Columns) -> CensoredNormal:
        mean, inv_chol, noise_var = self._posterior_parts()
        features, bins = self.design(inputs)
        return CensoredNormal(
            features @ mean,
            noise_var[bins],
            lower=self.lower,
            upper=self.upper,
            units=self.units,
            factor=features @ inv_chol.T,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, n_features={self.n_features}, "
            f"n_bins={self.n_bins}, n_observations_={self.n_observations_:.0f})"
        )
