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

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self, cast

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from twinweave.core import CensoredNormal, Columns, State
from twinweave.models._basis import (
    BasisTerm,
    EvaluatedInputs,
    Input,
    LocalBasisTerm,
    RowSlice,
    block_diagonal,
    design_matrix,
    input_name,
    read_input,
    term_width,
)

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

# Stored statistics are kept divided by a running decay scale; fold the scale back in
# before it underflows.
_MIN_SCALE = 1e-150
# Rows per pass of a batch update or prediction: the windowed features of a chunk stay in
# cache, and memory stays bounded whatever the batch size.
_CHUNK_ROWS = 1 << 15
# Largest grouping-key space counted with a dense bincount; beyond it, np.unique.
_MAX_DENSE_KEYS = 1 << 24
# Window layouts whose indices single-reading updates keep at hand.
_MAX_CACHED_LAYOUTS = 4096


class _Windows:
    """Where each term's non-zero features sit, and how rows sharing them are grouped.

    Every term contributes a window of adjacent columns per row (a whole-block window for
    terms that are not :class:`~twinweave.models._basis.LocalBasisTerm`). Rows whose
    windows (and, when accumulating, noise bins) coincide form a group whose statistics
    are one small dense product, added into the full matrices at the window's columns.
    """

    def __init__(self, terms: tuple[BasisTerm, ...]) -> None:
        self.terms = terms
        self.local = tuple(isinstance(t, LocalBasisTerm) for t in terms)
        self.widths = tuple(term_width(t) for t in terms)
        offsets = np.cumsum([0, *(t.n_features for t in terms)])
        self.offsets = tuple(int(o) for o in offsets[:-1])
        self.span = int(sum(self.widths))
        # Column index of each windowed value, relative to the window starts.
        self.columns = [np.arange(w, dtype=np.intp) for w in self.widths]
        self.n_starts = tuple(t.n_features - w + 1 for t, w in zip(terms, self.widths, strict=True))
        self.n_features = int(offsets[-1])
        self._layouts: dict[tuple[int, ...], tuple[IndexArray, IndexArray]] = {}

    def evaluate(self, data: Columns, n_rows: int) -> tuple[list[IndexArray], list[FloatArray]]:
        """Absolute first column and values of each term's window."""
        starts: list[IndexArray] = []
        values: list[FloatArray] = []
        for term, local, offset in zip(self.terms, self.local, self.offsets, strict=True):
            if local:
                start, value = cast(LocalBasisTerm, term).local_design(data, n_rows)
                starts.append(start + offset if offset else start)
            else:
                value = term.design(data, n_rows)
                starts.append(np.full(n_rows, offset, dtype=np.intp))
            values.append(value)
        return starts, values

    def window_columns(self, starts: list[IndexArray], row: int) -> IndexArray:
        return np.concatenate(
            [start[row] + cols for start, cols in zip(starts, self.columns, strict=True)]
        )

    def layout(self, starts: list[IndexArray]) -> tuple[IndexArray, IndexArray]:
        """Columns of the first row's windows, and their flat positions in a ``(p, p)``
        matrix; kept, since a stream revisits the same few layouts."""
        key = tuple(int(start[0]) for start in starts)
        found = self._layouts.get(key)
        if found is None:
            cols = self.window_columns(starts, 0)
            found = (cols, (cols[:, None] * self.n_features + cols).ravel())
            if len(self._layouts) >= _MAX_CACHED_LAYOUTS:
                self._layouts.clear()
            self._layouts[key] = found
        return found

    def groups(
        self, starts: list[IndexArray], extra: IndexArray | None, n_extra: int
    ) -> tuple[IndexArray, IndexArray]:
        """Row order that makes groups contiguous, and the groups' boundaries in it."""
        n_rows = starts[0].shape[0]
        key = np.zeros(n_rows, dtype=np.int64) if extra is None else extra.astype(np.int64)
        size = 1 if extra is None else n_extra
        for start, offset, n_starts in zip(starts, self.offsets, self.n_starts, strict=True):
            if n_starts > 1:
                key = key * n_starts + (start - offset)
                size *= n_starts
        if size <= _MAX_DENSE_KEYS:
            counts = np.bincount(key, minlength=size)
            present = np.flatnonzero(counts)
            # Renumber the groups 0..G-1 so the sort is a radix sort on small integers.
            number = np.zeros(size, dtype=np.uint16 if present.size < 1 << 16 else np.int64)
            number[present] = np.arange(present.size)
            group_counts = counts[present]
            order = np.argsort(number[key], kind="stable")
        else:
            _, inverse, group_counts = np.unique(key, return_inverse=True, return_counts=True)
            order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(group_counts)]).astype(np.intp)
        return order.astype(np.intp, copy=False), bounds

    def gather(self, values: list[FloatArray], order: IndexArray) -> FloatArray:
        """The windowed values of all terms stacked feature-major, ``(span, n_rows)``,
        rows in ``order``."""
        out = np.empty((self.span, order.shape[0]), dtype=np.float64)
        top = 0
        for value, width in zip(values, self.widths, strict=True):
            np.take(value.T, order, axis=1, out=out[top : top + width])
            top += width
        return out


def posterior_from_statistics(
    gram: FloatArray,
    moment: FloatArray,
    sum_sq: FloatArray,
    count: FloatArray,
    prior_precision: FloatArray,
    prior_mean: FloatArray,
    *,
    noise_prior_count: float,
    n_em_iterations: int,
    noise_target: FloatArray | None = None,
    tol: float = 1e-10,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Conjugate posterior of the weights and EM noise variances from binned statistics.

    The weights' prior is ``N(prior_mean, prior_precision^-1)``; each bin's noise
    variance is shrunk with ``noise_prior_count`` pseudo-readings towards
    ``noise_target`` (one variance per bin), or, without a target, towards the pooled
    residual variance of all bins (the single twin's own model). Variational EM
    (Bishop 2006, sections 3.3 and 9.3) alternates the Gaussian posterior of the weights
    given the noise and the noise given the expected residual sums of squares, from
    ``noise_target`` (or the pooled second moment of the target) until the largest
    relative change is below ``tol`` or after ``n_em_iterations``.

    Parameters
    ----------
    gram, moment, sum_sq, count
        Per-bin statistics ``sum phi phi^T``, ``sum phi y`` [units], ``sum y^2``
        [units^2] and the number of readings, shapes ``(K, p, p)``, ``(K, p)``, ``(K,)``,
        ``(K,)``.
    prior_precision
        ``(p, p)`` [1/units^2].
    prior_mean
        ``(p,)`` [units].
    noise_prior_count
        Pseudo-readings of the shrinkage of each bin's variance.
    n_em_iterations
        Upper bound on EM iterations.
    noise_target
        Per-bin variance to shrink towards [units^2]; ``None`` for the pooled variance.
    tol
        Relative change of every variance at which EM stops.

    Returns
    -------
    tuple
        Posterior mean ``(p,)`` [units], inverse Cholesky factor ``L^-1`` of the posterior
        precision ``L L^T`` (so the covariance is ``L^-T L^-1``), noise variances ``(K,)``
        [units^2]. Without readings the noise is ``noise_target`` (or ones).
    """
    n_bins = count.shape[0]
    prior_rhs = prior_precision @ prior_mean
    n_total = count.sum()
    if n_total <= 0:
        noise = np.ones(n_bins) if noise_target is None else noise_target.copy()
        return (*_solve(prior_precision, prior_rhs, gram, moment, None), noise)
    if noise_target is None:
        # Start from the pooled second moment of y; EM then refines per bin.
        noise_var = np.full(n_bins, max(float(sum_sq.sum() / n_total), 1e-12))
    else:
        noise_var = noise_target.copy()
    nu = noise_prior_count
    for _ in range(n_em_iterations):
        mean, inv_chol = _solve(prior_precision, prior_rhs, gram, moment, noise_var)
        covariance = inv_chol.T @ inv_chol
        residual_ss = (
            sum_sq
            - 2.0 * moment @ mean
            + np.einsum("a,jab,b->j", mean, gram, mean)
            + np.einsum("jab,ab->j", gram, covariance)
        )
        residual_ss = np.maximum(residual_ss, 0.0)
        if noise_target is None:
            pooled = max(float(residual_ss.sum() / n_total), 1e-12)
            updated = (residual_ss + nu * pooled) / (count + nu)
        else:
            updated = (residual_ss + nu * noise_target) / (count + nu)
        converged = np.max(np.abs(updated - noise_var) / noise_var) < tol
        noise_var = updated
        if converged:
            break
    return (*_solve(prior_precision, prior_rhs, gram, moment, noise_var), noise_var)


def _solve(
    prior: FloatArray,
    prior_rhs: FloatArray,
    gram: FloatArray,
    moment: FloatArray,
    noise_var: FloatArray | None,
) -> tuple[FloatArray, FloatArray]:
    """Posterior mean and inverse Cholesky factor of the precision given the noise."""
    precision, rhs = prior, prior_rhs
    if noise_var is not None:
        precision = prior + np.einsum("j,jab->ab", 1.0 / noise_var, gram)
        rhs = prior_rhs + np.einsum("j,ja->a", 1.0 / noise_var, moment)
    chol = linalg.cholesky(precision, lower=True)
    mean = linalg.cho_solve((chol, True), rhs)
    inv_chol = linalg.solve_triangular(chol, np.eye(prior.shape[0]), lower=True)
    return np.asarray(mean, dtype=np.float64), np.asarray(inv_chol, dtype=np.float64)


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
    prior_mean
        Prior mean of the weights (``n_features`` values; default zeros): what the
        model predicts where it has no data, e.g. a generic power curve [units].

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
        prior_mean: Sequence[float] | FloatArray | None = None,
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
        self.prior_mean = None if prior_mean is None else np.asarray(prior_mean, np.float64)
        self._validate_params()
        self.n_features = sum(term.n_features for term in self.terms)
        self._prior_mean = self._checked_prior_mean()
        self._windows = _Windows(self.terms)
        self._edges = tuple(float(e) for e in self.noise_edges)
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
            "prior_mean": None if self.prior_mean is None else self.prior_mean.copy(),
            "n_em_iterations": self.n_em_iterations,
        }

    def _checked_prior_mean(self) -> FloatArray:
        if self.prior_mean is None:
            return np.zeros(self.n_features)
        if self.prior_mean.shape != (self.n_features,):
            raise ValueError(
                f"prior_mean: expected {self.n_features} values (one per feature), "
                f"got shape {self.prior_mean.shape}"
            )
        return self.prior_mean

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
        if n_rows == 1 and x.shape[0] == 1:
            # One reading: bisect on the edges gives searchsorted's answer (NaN included).
            one = bisect.bisect_right(self._edges, float(x[0])) - 1
            return np.array([min(max(one, 0), self.n_bins - 1)], dtype=np.intp)
        if x.shape[0] != n_rows:
            x = np.broadcast_to(x, (n_rows,))
        index = np.searchsorted(self.noise_edges, x, side="right") - 1
        return np.minimum(np.maximum(index, 0), self.n_bins - 1).astype(np.intp, copy=False)

    def _n_rows(self, data: Columns) -> int:
        first = read_input(data, self.noise_source)
        return 1 if first is None else int(first.shape[0])

    def design(self, data: Columns) -> tuple[FloatArray, NDArray[np.intp]]:
        """Feature matrix and noise-bin index for ``data``."""
        data = EvaluatedInputs(data)
        n_rows = self._n_rows(data)
        return design_matrix(self.terms, data, n_rows), self.noise_bin(data, n_rows)

    def update(self, observations: Columns) -> Self:
        y = read_input(observations, self.target)
        if y is None:
            raise KeyError(
                f"missing target {self.target!r}: expected a column of that name, "
                f"got {sorted(observations)}"
            )
        n = y.shape[0]
        if n == 1:
            starts, values, bins = self._windowed(EvaluatedInputs(observations), y, 0, observations)
            cols, flat = self._windows.layout(starts)
            x = np.concatenate([value[0] for value in values])
            y0 = float(y[0])
            if not math.isfinite(y0 + float(x.sum())):
                self._check_finite(y, values, 0)
            weight = self._advance(1)
            j = int(bins[0])
            xw = weight * x
            gram = self.gram_[j]
            if gram.flags.c_contiguous:
                gram.reshape(-1)[flat] += np.multiply.outer(xw, x).ravel()
            else:
                gram[cols[:, None], cols] += np.multiply.outer(xw, x)
            self.moment_[j, cols] += y0 * xw
            self.sum_sq_[j] += weight * y0 * y0
            self.count_[j] += weight
            self._posterior = None
            return self
        # Reading i of n is discounted by lambda^(n-1-i) relative to the newest.
        decay = (
            None
            if self.forgetting == 1.0
            else np.exp(np.arange(n - 1, -1, -1) * np.log(self.forgetting))
        )
        if n <= _CHUNK_ROWS:
            starts, values, bins = self._windowed(EvaluatedInputs(observations), y, 0, observations)
            self._check_finite(y, values, 0)
            inv_scale = self._advance(n)
            weights = inv_scale if decay is None else decay * inv_scale
            self._accumulate(starts, values, y, bins, weights, self._state_arrays())
            self._posterior = None
            return self
        # Larger batches go by chunks of rows, into scratch statistics that are added to
        # the state only once every chunk has passed validation.
        scratch = (
            np.zeros_like(self.gram_),
            np.zeros_like(self.moment_),
            np.zeros_like(self.sum_sq_),
            np.zeros_like(self.count_),
        )
        for lo in range(0, n, _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, n)
            chunk = EvaluatedInputs(RowSlice(observations, lo, hi, n))
            starts, values, bins = self._windowed(chunk, y[lo:hi], lo, observations)
            self._check_finite(y[lo:hi], values, lo)
            weights = 1.0 if decay is None else decay[lo:hi]
            self._accumulate(starts, values, y[lo:hi], bins, weights, scratch)
        inv_scale = self._advance(n)
        for state, added in zip(self._state_arrays(), scratch, strict=True):
            state += added * inv_scale
        self._posterior = None
        return self

    def _state_arrays(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        return self.gram_, self.moment_, self.sum_sq_, self.count_

    def _advance(self, n: int) -> float:
        """Discount the state for ``n`` new readings; the weight of an undiscounted one."""
        if self.forgetting < 1.0:
            self.scale_ *= self.forgetting**n
            if self.scale_ < _MIN_SCALE:
                self._fold_scale()
        return 1.0 / self.scale_

    def _windowed(
        self, data: EvaluatedInputs, y: FloatArray, first_row: int, observations: Columns
    ) -> tuple[list[IndexArray], list[FloatArray], IndexArray]:
        """Feature windows and noise bins of the rows of ``observations`` from
        ``first_row`` on that ``data`` holds, validated."""
        n_rows = y.shape[0]
        source = read_input(data, self.noise_source)
        if source is not None and source.shape[0] != n_rows:
            n_target = np.atleast_1d(np.asarray(observations[self.target])).shape[0]
            raise ValueError(
                f"{self.target}: expected {self._n_rows(observations)} values, got {n_target}"
            )
        starts, values = self._windows.evaluate(data, n_rows)
        return starts, values, self.noise_bin(data, n_rows)

    def _check_finite(self, y: FloatArray, values: list[FloatArray], first_row: int) -> None:
        # One sum is finite only if every term is; the row-by-row check runs on failure.
        total = float(y.sum()) + sum(float(value.sum()) for value in values)
        if math.isfinite(total):
            return
        ok = np.isfinite(y)
        for value in values:
            ok &= np.isfinite(value).all(axis=1)
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"row {first_row + row}: expected finite {self.target} and inputs, got "
                f"{self.target}={y[row]!r}; quarantine or drop missing readings first"
            )

    def _accumulate(
        self,
        starts: list[IndexArray],
        values: list[FloatArray],
        y: FloatArray,
        bins: IndexArray,
        weights: FloatArray | float,
        into: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    ) -> None:
        """Add the weighted statistics of these rows to ``into`` (gram, moment, sum_sq,
        count)."""
        gram, moment, sum_sq, count = into
        windows = self._windows
        order, bounds = windows.groups(starts, bins, self.n_bins)
        x_sorted = windows.gather(values, order)
        if isinstance(weights, float):
            scale = weights
            xw_sorted = x_sorted
            yw_sorted = y[order]
            sum_sq += weights * np.bincount(bins, y * y, minlength=self.n_bins)
            count += weights * np.bincount(bins, minlength=self.n_bins)
        else:
            scale = 1.0
            w_sorted = weights[order]
            xw_sorted = x_sorted * w_sorted
            yw_sorted = y[order] * w_sorted
            sum_sq += np.bincount(bins, weights * y * y, minlength=self.n_bins)
            count += np.bincount(bins, weights, minlength=self.n_bins)
        for lo, hi in itertools.pairwise(bounds):
            first = int(order[lo])
            j = int(bins[first])
            cols = windows.window_columns(starts, first)
            x = x_sorted[:, lo:hi]
            block = xw_sorted[:, lo:hi] @ x.T
            block_moment = x @ yw_sorted[lo:hi]
            if scale != 1.0:
                block *= scale
                block_moment *= scale
            gram[j][np.ix_(cols, cols)] += block
            moment[j, cols] += block_moment

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
        return posterior_from_statistics(
            stats["gram"],
            stats["moment"],
            stats["sum_sq"],
            stats["count"],
            self.prior_precision(),
            self._prior_mean,
            noise_prior_count=self.noise_prior_count,
            n_em_iterations=self.n_em_iterations,
        )

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
        data = EvaluatedInputs(inputs)
        n_rows = self._n_rows(data)
        starts, values = self._windows.evaluate(data, n_rows)
        bins = self.noise_bin(data, n_rows)
        # Column 0 gives the latent mean, the rest the shared factor ``features @ inv_chol.T``.
        projection = np.column_stack([mean, inv_chol.T])
        out = np.empty((n_rows, 1 + self.n_features), dtype=np.float64)
        for lo in range(0, n_rows, _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, n_rows)
            self._project(
                [start[lo:hi] for start in starts],
                [value[lo:hi] for value in values],
                projection,
                out[lo:hi],
            )
        return CensoredNormal(
            out[:, 0],
            noise_var[bins],
            lower=self.lower,
            upper=self.upper,
            units=self.units,
            factor=out[:, 1:],
        )

    def _project(
        self,
        starts: list[IndexArray],
        values: list[FloatArray],
        projection: FloatArray,
        out: FloatArray,
    ) -> None:
        """``out = features @ projection`` from the windowed features."""
        windows = self._windows
        order, bounds = windows.groups(starts, None, 1)
        x_sorted = windows.gather(values, order)
        for lo, hi in itertools.pairwise(bounds):
            rows = order[lo:hi]
            cols = windows.window_columns(starts, int(rows[0]))
            out[rows] = x_sorted[:, lo:hi].T @ projection[cols]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, n_features={self.n_features}, "
            f"n_bins={self.n_bins}, n_observations_={self.n_observations_:.0f})"
        )
