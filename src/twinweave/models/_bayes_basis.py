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

After an update the posterior is refitted when next needed, with EM started from the
previous fit's noise variances (a warm start): a few readings move the fixed point little,
so EM needs a fraction of the iterations of a fit from scratch and reaches the same
answer within its tolerance.

A prediction without the inputs of a :class:`~twinweave.models.ModulatedSpline` (wind
direction, say) averages the modulation over the readings assimilated near the same
value of the first :class:`~twinweave.models.SplineTerm`'s input, and adds the spread of
the modulation to the predictive variance; see
:meth:`BayesianBasisRegression.predict`.

The statistics are what later fleet learning shares: they summarise a twin's data
without revealing any single reading once the counts are large.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, cast

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import blas, lapack

from twinweave.core import CensoredNormal, Columns, DeferredFactor, State
from twinweave.core._arguments import check_count, check_flag, check_number, is_real
from twinweave.core._emulator import check_columns
from twinweave.models._basis import (
    BasisTerm,
    EvaluatedInputs,
    Input,
    LocalBasisTerm,
    ModulatedSpline,
    NotOneReading,
    OneReading,
    OneReadingTerm,
    RowSlice,
    SplineTerm,
    block_diagonal,
    canonical_text,
    describe_input,
    design_matrix,
    input_name,
    input_sources,
    read_input,
    term_width,
    unique,
)

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]
# Smallest probability a bound is given (the smallest normal double).
_TINY = float(np.finfo(np.float64).tiny)
# gram, moment, sum_sq, count, count at the lower and at the upper bound, per noise bin.
_Statistics = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]

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
# Blocks of single readings awaiting addition to the statistics (a stream fills one per
# noise bin and window layout, a few dozen for a power curve).
_MAX_PENDING_BLOCKS = 1024
# Pseudo-readings with which the local mean of a modulator's features (for predictions
# without its inputs) is shrunk to its overall mean: it matters only where few readings
# were assimilated.
_MARGINAL_PRIOR_COUNT = 10.0
# The first fit warns that its prior overrules its readings where they lie this many
# times farther (mean squared) from the posterior curve than from a least-squares curve,
# judged only with this many readings per weight (fewer, and least squares follows the
# noise).
_PRIOR_CONFLICT_RATIO = 100.0
_READINGS_PER_WEIGHT = 5


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
        # Terms that evaluate one reading in Python floats, when all of them do.
        self.one_reading: tuple[OneReadingTerm, ...] | None = (
            cast(tuple[OneReadingTerm, ...], terms)
            if all(isinstance(t, OneReadingTerm) for t in terms)
            else None
        )
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

    def evaluate_one(self, reading: OneReading) -> tuple[tuple[int, ...], list[float]] | None:
        """Absolute first column of each term's window, and the windows' values one after
        another, for one reading; ``None`` where the general path must take it."""
        if self.one_reading is None:
            return None
        firsts: list[int] = []
        values: list[float] = []
        for term, offset in zip(self.one_reading, self.offsets, strict=True):
            found = term.local_one(reading)
            if found is None:
                return None
            firsts.append(found[0] + offset)
            values += found[1]
        return tuple(firsts), values

    def layout(self, firsts: tuple[int, ...]) -> tuple[IndexArray, IndexArray]:
        """Columns of the windows starting at ``firsts``, and their flat positions in a
        ``(p, p)`` matrix; kept, since a stream revisits the same few layouts."""
        found = self._layouts.get(firsts)
        if found is None:
            cols = np.concatenate(
                [first + c for first, c in zip(firsts, self.columns, strict=True)]
            )
            found = (cols, (cols[:, None] * self.n_features + cols).ravel())
            if len(self._layouts) >= _MAX_CACHED_LAYOUTS:
                self._layouts.clear()
            self._layouts[firsts] = found
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


def _chunks(
    starts: list[IndexArray], values: list[FloatArray], n_rows: int
) -> Iterator[tuple[slice, list[IndexArray], list[FloatArray]]]:
    """The windowed features in blocks of ``_CHUNK_ROWS`` rows (bounded scratch memory)."""
    for lo in range(0, n_rows, _CHUNK_ROWS):
        rows = slice(lo, min(lo + _CHUNK_ROWS, n_rows))
        yield rows, [start[rows] for start in starts], [value[rows] for value in values]


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
    noise_start: FloatArray | None = None,
    tol: float = 1e-10,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Conjugate posterior of the weights and EM noise variances from binned statistics.

    The weights' prior is ``N(prior_mean, prior_precision^-1)``; each bin's noise
    variance is shrunk with ``noise_prior_count`` pseudo-readings towards
    ``noise_target`` (one variance per bin), or, without a target, towards the pooled
    residual variance of all bins (the single twin's own model). Variational EM
    (Bishop 2006, sections 3.3 and 9.3) alternates the Gaussian posterior of the weights
    given the noise and the noise given the expected residual sums of squares. It starts
    from ``noise_start``, else ``noise_target``, else the pooled second moment of the
    target, and stops at the first variances that an EM step changes by less than
    ``tol`` (relative, every bin), or after ``n_em_iterations`` steps.

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
    noise_start
        Per-bin variances to start EM from [units^2]: the answer for statistics that
        differ little from these (a warm start) needs a fraction of the iterations.
    tol
        Relative change of every variance at which EM stops.

    Returns
    -------
    tuple
        Posterior mean ``(p,)`` [units], inverse Cholesky factor ``L^-1`` of the posterior
        precision ``L L^T`` (so the covariance is ``L^-T L^-1``), both given the noise
        variances ``(K,)`` [units^2] returned. Without readings the noise is
        ``noise_target`` (or ones).
    """
    n_bins, n_features = moment.shape
    prior_rhs = prior_precision @ prior_mean
    n_total = count.sum()
    if n_total <= 0:
        noise = np.ones(n_bins) if noise_target is None else noise_target.copy()
        return (*_solve(prior_precision, prior_rhs), noise)
    if noise_start is not None:
        noise_var = noise_start.copy()
    elif noise_target is None:
        # Start from the pooled second moment of y; EM then refines per bin.
        noise_var = np.full(n_bins, max(float(sum_sq.sum() / n_total), 1e-12))
    else:
        noise_var = noise_target.copy()
    # Bins by flattened matrices: the sums over bins below are matrix-vector products.
    flat_gram = gram.reshape(n_bins, n_features * n_features)

    def given(noise: FloatArray) -> tuple[FloatArray, FloatArray]:
        precision = prior_precision + ((1.0 / noise) @ flat_gram).reshape(prior_precision.shape)
        return _solve(precision, prior_rhs + (1.0 / noise) @ moment)

    nu = noise_prior_count
    for _ in range(n_em_iterations):
        mean, inv_chol = given(noise_var)
        # E[w w^T] under the posterior; its inner product with each bin's Gram matrix is
        # the expected sum of (phi . w)^2 there.
        second = inv_chol.T @ inv_chol
        second += np.outer(mean, mean)
        residual_ss = sum_sq - 2.0 * (moment @ mean) + flat_gram @ second.ravel()
        residual_ss = np.maximum(residual_ss, 0.0)
        if noise_target is None:
            pooled = max(float(residual_ss.sum() / n_total), 1e-12)
            updated = (residual_ss + nu * pooled) / (count + nu)
        else:
            updated = (residual_ss + nu * noise_target) / (count + nu)
        if np.max(np.abs(updated - noise_var) / noise_var) < tol:
            return mean, inv_chol, noise_var
        noise_var = updated
    return (*given(noise_var), noise_var)


def _value_at(column: object, row: int) -> float:
    """A column's value at ``row`` as a float (NaN where it is not a number)."""
    values = np.atleast_1d(np.asarray(column))
    try:
        return float(values[row if values.shape[0] > 1 else 0])
    except (TypeError, ValueError):
        return math.nan


def _precision_of(covariance: FloatArray) -> FloatArray:
    """The inverse of a prior covariance, refused by name unless positive definite."""
    chol, info = lapack.dpotrf(covariance, lower=1, clean=1)
    if info != 0:
        raise ValueError(
            f"prior_covariance: expected a positive definite matrix, leading minor {info} is not"
        )
    inv_chol, _ = lapack.dtrtri(chol, lower=1)
    precision = inv_chol.T @ inv_chol
    return np.asarray(0.5 * (precision + precision.T), dtype=np.float64)


def _solve(precision: FloatArray, rhs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and inverse Cholesky factor of a Gaussian given its precision and
    ``precision @ mean``.

    LAPACK directly: ``dtrtri`` inverts the factor several times faster than a
    triangular solve against the identity, and the posterior is refitted often.
    """
    chol, info = lapack.dpotrf(precision, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"posterior precision: expected positive definite, leading minor {info} is not"
        )
    mean, _ = lapack.dpotrs(chol, rhs, lower=1)
    inv_chol, _ = lapack.dtrtri(chol, lower=1)
    return np.asarray(mean, dtype=np.float64), np.asarray(inv_chol, dtype=np.float64)


@dataclass(frozen=True)
class _Marginal:
    """Moments of the modulators' features over the readings assimilated.

    ``local_mean[c]`` is the mean near basis function ``c`` of the conditioning spline
    (weighted by it), shrunk towards the overall mean; ``covariance`` is the spread about
    the local means, averaged over the readings (the within part of the law of total
    variance). Columns are the modulated terms' modulator features one after another;
    ``columns[t]`` gives each term's.
    """

    local_mean: FloatArray
    covariance: FloatArray
    columns: tuple[tuple[int, int], ...]


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
        Physical bounds of the target; predictions are censored to them, and a reading
        beyond one is assimilated as a reading at it (range checks that quarantine wild
        values belong to the data pathway) [units].
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
    prior_covariance
        Prior covariance of the weights, ``(n_features, n_features)`` [units^2], in
        place of the roughness and ridge penalties (``smoothing`` and ``ridge`` are then
        not used): for a twin that starts from what its fleet knows
        (:func:`twinweave.transfer.fleet_emulator`). ``None``: the penalties.
    noise_target
        Per-bin variance that each bin's variance is shrunk towards with
        ``noise_prior_count`` pseudo-readings, and the noise before any reading
        (``n_bins`` values) [units^2]; ``None``: the pooled variance of all bins.

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
        bound_masses: bool = True,
        bound_prior_count: float = 10.0,
        prior_covariance: FloatArray | None = None,
        noise_target: Sequence[float] | FloatArray | None = None,
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
        # Copies: a caller's array changed later must not change this model or its clones.
        self.prior_mean = None if prior_mean is None else np.array(prior_mean, np.float64)
        self.bound_masses = bound_masses
        self.bound_prior_count = bound_prior_count
        self.prior_covariance = (
            None if prior_covariance is None else np.array(prior_covariance, np.float64)
        )
        self.noise_target = None if noise_target is None else np.array(noise_target, np.float64)
        self._validate_params()
        self.n_features = sum(term.n_features for term in self.terms)
        self._prior_mean = self._checked_prior_mean()
        self._check_fleet_prior()
        self._windows = _Windows(self.terms)
        # Fixed by the terms: worked out once, read on every prediction.
        self._inputs = unique(
            (
                *(name for term in self.terms for name in term.inputs),
                *input_sources(self.noise_source),
            )
        )
        # The inputs a spline clamps to its range (a column, or a derived input such as
        # a density-normalised wind speed), and the noise source: an infinite value
        # there would be taken as a reading at the range's end. Elsewhere (a
        # modulator's input) a value that is not finite counts as absent, as does a
        # density a derived input replaces by its fallback.
        splines = [
            spline
            for term in self.terms
            for spline in (
                [term]
                if isinstance(term, SplineTerm)
                else [term.spline]
                if isinstance(term, ModulatedSpline)
                else []
            )
        ]
        clamped = {input_name(s.source): s.source for s in splines}
        clamped.setdefault(input_name(self.noise_source), self.noise_source)
        self._clamped_inputs: tuple[Input, ...] = tuple(clamped.values())
        self._edges = tuple(float(e) for e in self.noise_edges)
        self._prior_precision = (
            block_diagonal([t.penalty(self.smoothing, self.ridge) for t in self.terms])
            if self.prior_covariance is None
            else _precision_of(self.prior_covariance)
        )
        # Predictions without a modulator's inputs average it given the first spline's.
        self._modulated = tuple(
            i for i, t in enumerate(self.terms) if isinstance(t, ModulatedSpline)
        )
        self._conditioning = next(
            (i for i, t in enumerate(self.terms) if isinstance(t, SplineTerm)), None
        )
        # The inputs of modulators whose effect extrapolates beyond the values
        # assimilated (a temperature; not a periodic angle): :meth:`outside_range`.
        modulators = [cast(ModulatedSpline, self.terms[t]).modulator for t in self._modulated]
        self._ranged_inputs: tuple[Input, ...] = tuple(
            dict.fromkeys(m.source for m in modulators if m.extrapolates)
        )
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
        # Settings are checked for type first: "0.9" < 1 would fail with Python's own
        # message, which names neither the setting nor what it should be.
        if not is_real(self.forgetting) or not 0 < self.forgetting <= 1:
            raise ValueError(f"forgetting: expected a number in (0, 1], got {self.forgetting!r}")
        check_number(self.smoothing, "smoothing", zero=True)
        check_number(self.ridge, "ridge")
        check_number(self.noise_prior_count, "noise_prior_count", zero=True)
        check_number(self.bound_prior_count, "bound_prior_count")
        check_count(self.n_em_iterations, "n_em_iterations")
        check_flag(self.bound_masses, "bound_masses")
        for name in ("lower", "upper"):
            if not is_real(getattr(self, name)) or np.isnan(getattr(self, name)):
                raise ValueError(f"{name}: expected a number, got {getattr(self, name)!r}")
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
            "bound_masses": self.bound_masses,
            "bound_prior_count": self.bound_prior_count,
            "prior_covariance": (
                None if self.prior_covariance is None else self.prior_covariance.copy()
            ),
            "noise_target": None if self.noise_target is None else self.noise_target.copy(),
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

    def _check_fleet_prior(self) -> None:
        p = self.n_features
        if self.prior_covariance is not None:
            covariance = self.prior_covariance
            if covariance.shape != (p, p):
                raise ValueError(
                    f"prior_covariance: expected shape ({p}, {p}) (one row and column per "
                    f"feature), got {covariance.shape}"
                )
            if not np.all(np.isfinite(covariance)) or not np.allclose(
                covariance, covariance.T, rtol=1e-10, atol=0.0
            ):
                raise ValueError("prior_covariance: expected a finite symmetric matrix")
        if self.noise_target is not None:
            target = self.noise_target
            if target.shape != (self.n_bins,):
                raise ValueError(
                    f"noise_target: expected {self.n_bins} variances (one per noise bin), "
                    f"got shape {target.shape}"
                )
            if not np.all(np.isfinite(target) & (target > 0)):
                bad = target[~(np.isfinite(target) & (target > 0))][0]
                raise ValueError(f"noise_target: expected positive variances, got {float(bad)!r}")

    @property
    def n_bins(self) -> int:
        return int(self.noise_edges.size - 1)

    @property
    def basis_fingerprint(self) -> str:
        """A short digest of what the columns and noise bins of this emulator's
        statistics mean: 16 hexadecimal digits, equal for equal settings in every
        process and run.

        It digests (BLAKE2b) the target's name and units, every basis term in order
        with its inputs, knots and scaling (:func:`~twinweave.models._basis.canonical_text`),
        and the noise bins' input and edges; not the prior (``smoothing``, ``ridge``,
        ``prior_mean``), the bounds (turbines of one fleet have their own rated power),
        forgetting or a derived input's site settings, which leave the columns' meaning
        alone. Fleet learning (:mod:`twinweave.transfer`) refuses to pool statistics of
        other fingerprints: two bases of the same size (other knots) look alike
        otherwise.

        Examples
        --------
        >>> from twinweave.models import SplineTerm
        >>> def model(upper: float) -> BayesianBasisRegression:
        ...     return BayesianBasisRegression(
        ...         target="y", terms=(SplineTerm("x", 0, upper, 20),), noise_source="x",
        ...         noise_edges=[0.0, 5.0, 10.0])
        >>> model(10).basis_fingerprint == model(10.0).basis_fingerprint
        True
        >>> model(10).basis_fingerprint == model(12).basis_fingerprint
        False
        """
        text = canonical_text(
            (
                ("target", self.target),
                ("units", self.units),
                ("terms", self.terms),
                ("noise_source", self.noise_source),
                ("noise_edges", self._edges),
            )
        )
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Names of the inputs a prediction cannot do without."""
        return (input_name(self.noise_source),)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the columns a prediction may read (those it needs, those it uses
        where present, and the columns of derived inputs)."""
        return self._inputs

    # -- learned state -----------------------------------------------------------------
    def _reset_state(self) -> None:
        p, k = self.n_features, self.n_bins
        self._gram: FloatArray = np.zeros((k, p, p))
        self._moment: FloatArray = np.zeros((k, p))
        self._sum_sq: FloatArray = np.zeros(k)
        self._count: FloatArray = np.zeros(k)
        # Readings exactly at the lower / upper bound, per bin (NaN: not counted, as in a
        # state saved before they were).
        self._count_lower: FloatArray = np.zeros(k)
        self._count_upper: FloatArray = np.zeros(k)
        # Single readings not yet added to the statistics, by noise bin and window layout:
        # the outer product of ``(window values, y, 1)`` summed in one small dense block,
        # so a reading costs one BLAS rank-one update of contiguous memory instead of a
        # scatter into the (p, p) matrix. Blocks are Fortran-ordered (BLAS then updates
        # them in place) and are added to the statistics before these are read.
        self._pending: dict[tuple[int, tuple[int, ...]], FloatArray] = {}
        self.scale_: float = 1.0
        # Where the next posterior fit starts EM: the noise of the last fit before the
        # latest update (a warm start), NaN before any (a cold start). It is state, so a
        # restored emulator refits from the same start to the same bits.
        self.noise_start_: FloatArray = np.full(k, np.nan)
        # Lowest and highest assimilated value of each modulator's input (inf, -inf
        # before any), as Python floats: a single reading compares them cheaply.
        self._input_low = [math.inf] * len(self._ranged_inputs)
        self._input_high = [-math.inf] * len(self._ranged_inputs)
        self._posterior: tuple[FloatArray, FloatArray, FloatArray] | None = None
        self._marginal: _Marginal | None = None

    @property
    def gram_(self) -> FloatArray:
        """Per-bin ``sum phi phi^T``, divided by ``scale_``."""
        self._settle()
        return self._gram

    @property
    def moment_(self) -> FloatArray:
        """Per-bin ``sum phi y`` [units], divided by ``scale_``."""
        self._settle()
        return self._moment

    @property
    def sum_sq_(self) -> FloatArray:
        """Per-bin ``sum y^2`` [units^2], divided by ``scale_``."""
        self._settle()
        return self._sum_sq

    @property
    def count_(self) -> FloatArray:
        """Per-bin (discounted) number of readings, divided by ``scale_``."""
        self._settle()
        return self._count

    @property
    def count_lower_(self) -> FloatArray:
        """Per-bin (discounted) number of readings at the lower bound, divided by
        ``scale_``."""
        return self._count_lower

    @property
    def count_upper_(self) -> FloatArray:
        """Per-bin (discounted) number of readings at the upper bound, divided by
        ``scale_``."""
        return self._count_upper

    @property
    def input_ranges_(self) -> dict[str, tuple[float, float]]:
        """Lowest and highest value ever assimilated (forgetting aside) of each input
        whose modulation extrapolates (not a periodic angle), by name; ``(inf, -inf)``
        before any, NaN where unknown: restored from a state saved before the ranges
        were kept, and then for good (the readings before are not known)."""
        bounds = zip(self._ranged_inputs, self._input_low, self._input_high, strict=True)
        return {input_name(source): (float(low), float(high)) for source, low, high in bounds}

    @property
    def n_observations_(self) -> float:
        return float(self.count_.sum() * self.scale_)

    def state(self) -> State:
        return {
            "gram_": self.gram_.copy(),
            "moment_": self.moment_.copy(),
            "sum_sq_": self.sum_sq_.copy(),
            "count_": self.count_.copy(),
            "count_lower_": self.count_lower_.copy(),
            "count_upper_": self.count_upper_.copy(),
            "scale_": self.scale_,
            "noise_start_": self.noise_start_.copy(),
            "input_ranges_": np.array([self._input_low, self._input_high]).T.reshape(-1, 2),
        }

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        """The emulator holding ``state``; a state saved before ``noise_start_`` existed
        restores with a cold start, which is how it was fitted, and one saved before the
        bounds' counts existed predicts the bounds' masses of the censored normal."""
        model = cls(**params)
        # State name and where it is kept.
        names = {"gram_": "_gram", "moment_": "_moment", "sum_sq_": "_sum_sq", "count_": "_count"}
        later = {
            "noise_start_": "noise_start_",
            "count_lower_": "_count_lower",
            "count_upper_": "_count_upper",
        }
        names.update({name: kept for name, kept in later.items() if name in state})
        required = [*names, "scale_"]
        if missing := [name for name in required if name not in state]:
            # KeyError, as for a missing column: the entry is absent, not wrong.
            raise KeyError(
                f"state: missing entries {missing}: expected {required}, got {sorted(state)}"
            )
        if "count_lower_" not in state:
            model._count_lower[:] = np.nan
            model._count_upper[:] = np.nan
        shape = (len(model._ranged_inputs), 2)
        ranges = np.asarray(state.get("input_ranges_", np.nan), dtype=np.float64)
        ranges = np.broadcast_to(ranges, shape) if ranges.ndim == 0 else ranges
        if ranges.shape != shape:
            raise ValueError(f"state input_ranges_: expected shape {shape}, got {ranges.shape}")
        model._input_low, model._input_high = ranges[:, 0].tolist(), ranges[:, 1].tolist()
        for name, attribute in names.items():
            # C order: single readings are added through flat views of these arrays.
            value = np.array(state[name], dtype=np.float64, order="C")
            expected = getattr(model, attribute).shape
            if value.shape != expected:
                raise ValueError(f"state {name}: expected shape {expected}, got {value.shape}")
            setattr(model, attribute, value)
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
                f"missing input {describe_input(self.noise_source)}: the noise model needs it; "
                f"got columns {sorted(data)}"
            )
        if n_rows == 1 and x.shape[0] == 1:
            return np.array([self._bin_one(float(x[0]))], dtype=np.intp)
        if x.shape[0] != n_rows:
            x = np.broadcast_to(x, (n_rows,))
        index = np.searchsorted(self.noise_edges, x, side="right") - 1
        return np.minimum(np.maximum(index, 0), self.n_bins - 1).astype(np.intp, copy=False)

    def check_prediction_inputs(self, inputs: Columns) -> None:
        """Refuse ``inputs`` that :meth:`predict` refuses, without predicting: a fleet's
        predictions from this emulator's basis (:mod:`twinweave.transfer`) check their
        inputs with it.

        Raises
        ------
        ValueError
            If a column read has neither one value per row nor one for all, or the
            ``noise_source`` is missing or not finite in some row (naming the input, how
            many rows, the first and its value).
        """
        check_columns(inputs, "inputs")
        self._prediction_rows(inputs)

    def _prediction_rows(self, inputs: Columns) -> tuple[EvaluatedInputs, int]:
        """``inputs`` evaluated and their number of rows, checked for a prediction."""
        self._check_lengths(inputs)
        data = EvaluatedInputs(inputs)
        n_rows = self._n_rows(data)
        self._check_noise_source(data, n_rows)
        return data, n_rows

    def _check_noise_source(self, data: Columns, n_rows: int) -> None:
        """A prediction needs the noise source in every row (it picks the noise)."""
        source = read_input(data, self.noise_source)
        if source is None:
            return
        values = np.broadcast_to(source, (n_rows,))
        missing = ~np.isfinite(values)
        if missing.any():
            row = int(np.argmax(missing))
            source_name = self.noise_source
            name = source_name if isinstance(source_name, str) else describe_input(source_name)
            raise ValueError(
                f"{name}: {int(missing.sum())} of {n_rows} values "
                f"missing or not finite, first at row {row} ({float(values[row])}); expected "
                "a number in every row: a prediction cannot do without it"
            )

    def seen(self, inputs: Columns) -> NDArray[np.bool_]:
        """Whether readings were assimilated near each input: its noise bin holds at
        least one (effective, i.e. discounted) reading.

        Where it does not, the prediction rests on the prior (``prior_mean``, with
        ``prior_covariance`` a fleet's) and the spline's extrapolation, not on readings,
        and its interval on the pooled noise (or on ``noise_target``): for a power curve,
        above the strongest wind the twin has seen. Values beyond the
        outer ``noise_edges`` fall in the end bins, so beyond the edges this tells
        whether an end bin has readings; a missing (NaN) ``noise_source`` is not seen.

        Examples
        --------
        >>> from twinweave.models import SplineTerm
        >>> model = BayesianBasisRegression(
        ...     target="y", terms=(SplineTerm("x", 0, 20, 10),), noise_source="x",
        ...     noise_edges=np.linspace(0, 20, 11),
        ... ).update({"x": np.linspace(0, 10, 100), "y": np.zeros(100)})
        >>> model.seen({"x": [5.0, 15.0]}).tolist()
        [True, False]
        """
        data = EvaluatedInputs(inputs)
        n_rows = self._n_rows(data)
        bins = self.noise_bin(data, n_rows)
        # The count is kept divided by the decay scale; put it back for readings' worth.
        seen = self.count_[bins] * self.scale_ >= 1.0
        source = read_input(data, self.noise_source)
        if source is not None:
            seen &= np.isfinite(np.broadcast_to(source, (n_rows,)))
        return np.asarray(seen, dtype=np.bool_)

    def _bin_one(self, x: float) -> int:
        # Bisect on the edges gives searchsorted's answer (NaN included).
        one = bisect.bisect_right(self._edges, x) - 1
        return min(max(one, 0), self.n_bins - 1)

    def _check_lengths(self, columns: Columns, *, with_target: bool = False) -> None:
        """Every column read (the target too, ``with_target``) is 1-D with a value per
        row, as many as the noise source's (first) column has, or one value for all of
        them: checked before derived inputs combine them, whose broadcasting would name
        no column."""
        sizes = {}
        for name in unique([*self.inputs, *([self.target] if with_target else [])]):
            if name in columns:
                shape = np.shape(columns[name])
                if len(shape) > 1:
                    raise ValueError(f"{name}: expected one value per row (1-D), got shape {shape}")
                sizes[name] = math.prod(shape)
        reference = input_sources(self.noise_source)[0]
        if reference not in sizes:
            return
        for name, size in sizes.items():
            if size not in (1, sizes[reference]):
                raise ValueError(
                    f"{name}: expected {sizes[reference]} values (one per row, as "
                    f"{reference!r} has) or one for all, got {size}"
                )

    def _n_rows(self, data: Columns) -> int:
        first = read_input(data, self.noise_source)
        return 1 if first is None else int(first.shape[0])

    def design(self, data: Columns) -> tuple[FloatArray, NDArray[np.intp]]:
        """Feature matrix and noise-bin index for ``data``."""
        check_columns(data, "data")
        data = EvaluatedInputs(data)
        n_rows = self._n_rows(data)
        return design_matrix(self.terms, data, n_rows), self.noise_bin(data, n_rows)

    def update(self, observations: Columns) -> Self:
        """Assimilate ``observations``: a batch of readings, or one reading (numbers or
        one-element arrays), which takes a path in Python floats whose rank-one update
        goes to a small block per noise bin and window layout, added to the statistics
        before they are next read."""
        check_columns(observations, "observations")
        if self._update_one(OneReading(observations)):
            return self
        y = read_input(observations, self.target)
        if y is None:
            raise KeyError(
                f"missing target {self.target!r}: expected a column of that name, "
                f"got {sorted(observations)}"
            )
        self._check_lengths(observations, with_target=True)
        n = y.shape[0]
        # Reading i of n is discounted by lambda^(n-1-i) relative to the newest.
        decay = (
            None
            if self.forgetting == 1.0
            else np.exp(np.arange(n - 1, -1, -1) * np.log(self.forgetting))
        )
        if n <= _CHUNK_ROWS:
            data = EvaluatedInputs(observations)
            starts, values, bins = self._windowed(data, y, 0, observations)
            self._check_finite(y, values, data, 0, observations)
            inv_scale = self._advance(n)
            weights = inv_scale if decay is None else decay * inv_scale
            self._accumulate(starts, values, y, bins, weights, self._state_arrays())
            self._extend_ranges([self._extremes(EvaluatedInputs(observations))])
            self._invalidate()
            return self
        # Larger batches go by chunks of rows, into scratch statistics that are added to
        # the state only once every chunk has passed validation.
        gram, moment, sum_sq, count, count_lower, count_upper = self._state_arrays()
        scratch: _Statistics = (
            np.zeros_like(gram),
            np.zeros_like(moment),
            np.zeros_like(sum_sq),
            np.zeros_like(count),
            np.zeros_like(count_lower),
            np.zeros_like(count_upper),
        )
        extremes = []
        for lo in range(0, n, _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, n)
            chunk = EvaluatedInputs(RowSlice(observations, lo, hi, n))
            starts, values, bins = self._windowed(chunk, y[lo:hi], lo, observations)
            self._check_finite(y[lo:hi], values, chunk, lo, observations)
            weights = 1.0 if decay is None else decay[lo:hi]
            self._accumulate(starts, values, y[lo:hi], bins, weights, scratch)
            extremes.append(self._extremes(chunk))
        inv_scale = self._advance(n)
        for state, added in zip(self._state_arrays(), scratch, strict=True):
            state += added * inv_scale
        self._extend_ranges(extremes)
        self._invalidate()
        return self

    def _extremes(self, data: EvaluatedInputs) -> list[tuple[float, float]]:
        """Lowest and highest finite value of each ranged input in ``data`` (``inf,
        -inf`` where there is none)."""
        out = []
        for source in self._ranged_inputs:
            values = read_input(data, source)
            finite = values[np.isfinite(values)] if values is not None else np.empty(0)
            out.append(
                (float(finite.min()), float(finite.max())) if finite.size else (math.inf, -math.inf)
            )
        return out

    def _extend_ranges(self, extremes: list[list[tuple[float, float]]]) -> None:
        """Widen the ranges to the extremes of the batches (or chunks) just assimilated."""
        for i in range(len(self._ranged_inputs)):
            for chunk in extremes:
                low, high = chunk[i]
                self._input_low[i] = min(self._input_low[i], low)
                self._input_high[i] = max(self._input_high[i], high)

    def outside_range(self, inputs: Columns) -> dict[str, NDArray[np.bool_]]:
        """Per input whose modulation extrapolates and that is in ``inputs``: whether
        each row's value lies outside :attr:`input_ranges_`, where the prediction
        extrapolates that input's effect (for a power curve, a temperature colder than
        any the twin has seen; a wind direction, periodic, never is). Missing values
        are not outside; before any reading every value is; an emulator whose ranges are
        unknown (restored from a state saved before they were kept) says none are.

        Examples
        --------
        >>> from twinweave.models import Centred, ModulatedSpline, SplineTerm
        >>> spline = SplineTerm("x", 0, 10, 5)
        >>> model = BayesianBasisRegression(
        ...     target="y", terms=(spline, ModulatedSpline(spline, Centred("t", 0, 1))),
        ...     noise_source="x", noise_edges=np.linspace(0, 10, 3),
        ... ).update({"x": np.linspace(0, 10, 50), "t": np.linspace(-1, 1, 50),
        ...           "y": np.zeros(50)})
        >>> model.outside_range({"x": [5.0, 5.0], "t": [0.5, 3.0]})["t"].tolist()
        [False, True]
        """
        check_columns(inputs, "inputs")
        out = {}
        bounds = zip(self._input_low, self._input_high, self._ranged_inputs, strict=True)
        for low, high, source in bounds:
            values = read_input(inputs, source)
            if values is None:
                continue
            with np.errstate(invalid="ignore"):
                outside = (values < low) | (values > high)
            out[input_name(source)] = np.asarray(outside, dtype=np.bool_)
        return out

    def _update_one(self, reading: OneReading) -> bool:
        """Assimilate one reading with Python floats and a rank-one update of the few
        statistics its feature windows touch; ``False``, with nothing changed, where the
        general path must take it (not one reading, a missing or non-finite value, a
        term without a one-reading path), which then assimilates it or says why not."""
        try:
            y = reading.value(self.target)
            window = self._windows.evaluate_one(reading)
            source = reading.value(self.noise_source)
        except NotOneReading:
            return False
        if y is None or window is None or source is None:
            return False
        firsts, values = window
        # One sum is finite only if every term is; a spline clamps an infinite input.
        if not math.isfinite(y + sum(values)) or any(
            math.isinf(reading.value(source) or 0.0) for source in self._clamped_inputs
        ):
            return False
        j = self._bin_one(source)
        weight = self._advance(1)
        if y <= self.lower:
            self._count_lower[j] += weight
            y = self.lower
        elif y >= self.upper:
            self._count_upper[j] += weight
            y = self.upper
        key = (j, firsts)
        block = self._pending.get(key)
        if block is None:
            if len(self._pending) >= _MAX_PENDING_BLOCKS:
                self._settle()
            size = len(values) + 2
            block = self._pending[key] = np.zeros((size, size), order="F")
        values += (y, 1.0)
        z = np.array(values)
        blas.dger(weight, z, z, a=block, overwrite_a=True)
        for i, modulating in enumerate(self._ranged_inputs):
            x = reading.value(modulating)
            # NaN compares false: a missing value moves neither end.
            if x is not None:
                if x < self._input_low[i]:
                    self._input_low[i] = x
                if x > self._input_high[i]:
                    self._input_high[i] = x
        self._invalidate()
        return True

    def _settle(self) -> None:
        """Add the pending single readings to the statistics."""
        if not self._pending:
            return
        for (j, firsts), block in self._pending.items():
            cols, flat = self._windows.layout(firsts)
            w = cols.shape[0]
            self._gram[j].reshape(-1)[flat] += block[:w, :w].ravel()
            self._moment[j][cols] += block[:w, w]
            self._sum_sq[j] += block[w, w]
            self._count[j] += block[w + 1, w + 1]
        self._pending.clear()

    def _invalidate(self) -> None:
        """The statistics changed: refit the posterior when next needed, from this one's
        noise variances."""
        if self._posterior is not None:
            self.noise_start_ = self._posterior[2]
            self._posterior = None
        self._marginal = None

    def _state_arrays(self) -> _Statistics:
        # Pending single readings may stay pending: the batch's statistics are added.
        return (
            self._gram,
            self._moment,
            self._sum_sq,
            self._count,
            self._count_lower,
            self._count_upper,
        )

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

    def _check_finite(
        self,
        y: FloatArray,
        values: list[FloatArray],
        rows: Columns,
        first_row: int,
        observations: Columns,
    ) -> None:
        """Refuse rows (``rows``, from ``first_row`` of ``observations``) whose target or
        features are not finite, or whose inputs that a spline clamps are infinite (an
        infinite wind speed would be a reading at the spline's end)."""
        # The columns of each clamped input that is infinite, and in which rows.
        infinite = []
        for source in self._clamped_inputs:
            read = read_input(rows, source)
            if read is not None and np.isinf(read).any():
                infinite.append((input_sources(source), np.broadcast_to(np.isinf(read), y.shape)))
        # One sum is finite only if every term is; the row-by-row check runs on failure.
        total = float(y.sum()) + sum(float(value.sum()) for value in values)
        if math.isfinite(total) and not infinite:
            return
        ok = np.isfinite(y)
        for value in values:
            ok &= np.isfinite(value).all(axis=1)
        for _, at in infinite:
            ok &= ~at
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            # The inputs of the terms that are not finite there; of those, the columns
            # given that are not finite, else (a derived input failed) all of them.
            suspects = unique(
                [
                    *(
                        name
                        for term, value in zip(self.terms, values, strict=True)
                        if not np.isfinite(value[row]).all()
                        for name in term.inputs
                    ),
                    *(name for names, at in infinite if at[row] for name in names),
                ]
            )
            culprits = [
                name
                for name in suspects
                if name in observations
                and not np.isfinite(_value_at(observations[name], first_row + row))
            ] or list(suspects)
            inputs = f" and non-finite {sorted(culprits)}" if culprits else ""
            raise ValueError(
                f"row {first_row + row}: expected finite {self.target} and inputs, got "
                f"{self.target}={float(y[row])!r}{inputs}; quarantine or drop missing "
                "readings first"
            )

    def _accumulate(
        self,
        starts: list[IndexArray],
        values: list[FloatArray],
        y: FloatArray,
        bins: IndexArray,
        weights: FloatArray | float,
        into: _Statistics,
    ) -> None:
        """Add the weighted statistics of these rows to ``into`` (gram, moment, sum_sq,
        count, counts at the lower and upper bound)."""
        gram, moment, sum_sq, count, count_lower, count_upper = into
        # Readings at a bound; an infinite bound has none, so no pass over the rows.
        row_weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), y.shape)
        if np.isfinite(self.lower):
            count_lower += np.bincount(bins, row_weights * (y <= self.lower), self.n_bins)
        if np.isfinite(self.upper):
            count_upper += np.bincount(bins, row_weights * (y >= self.upper), self.n_bins)
        if np.isfinite(self.lower) or np.isfinite(self.upper):
            # Beyond a bound is at it: the model is censored there (an idle turbine's
            # -20 kW of auxiliary draw is 0 kW of output), so it enters the sums as such.
            y = np.clip(y, self.lower, self.upper)
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
        self._settle()
        for name in ("_gram", "_moment", "_sum_sq", "_count", "_count_lower", "_count_upper"):
            setattr(self, name, getattr(self, name) * self.scale_)
        self.scale_ = 1.0

    # -- the posterior -------------------------------------------------------------------
    def prior_precision(self) -> FloatArray:
        return self._prior_precision.copy()

    def _fit(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Posterior mean, inverse Cholesky factor of the precision, noise variances."""
        stats = self.statistics()
        cold = bool(np.isnan(self.noise_start_).any())
        fitted = posterior_from_statistics(
            stats["gram"],
            stats["moment"],
            stats["sum_sq"],
            stats["count"],
            self._prior_precision,
            self._prior_mean,
            noise_prior_count=self.noise_prior_count,
            n_em_iterations=self.n_em_iterations,
            noise_target=self.noise_target,
            noise_start=None if cold else self.noise_start_,
        )
        if cold:
            # Once, on the first fit: later fits start from this one.
            self._warn_if_prior_overrules(stats, fitted[0])
        return fitted

    def _warn_if_prior_overrules(self, stats: Mapping[str, FloatArray], mean: FloatArray) -> None:
        """Warn where the posterior curve lies far from readings that a curve of the
        basis could follow: a prior set for another scale of the target (``ridge`` and
        ``smoothing`` are in 1/units^2; readings in W beside penalties for kW) makes the
        fit take the readings for noise, with nothing else to show for it."""
        gram, moment, sum_sq = stats["gram"], stats["moment"], stats["sum_sq"]
        n_readings = float(stats["count"].sum())
        if n_readings < _READINGS_PER_WEIGHT * self.n_features:
            return  # a least-squares curve would follow the noise too

        def residual_ss(weights: FloatArray) -> float:
            fitted_sq = np.einsum("i,kij,j->k", weights, gram, weights)
            return float(np.maximum(sum_sq - 2.0 * (moment @ weights) + fitted_sq, 0.0).sum())

        least_squares = np.linalg.lstsq(gram.sum(axis=0), moment.sum(axis=0), rcond=None)[0]
        about_curve = residual_ss(least_squares) / n_readings
        about_posterior = residual_ss(mean) / n_readings
        if about_posterior > _PRIOR_CONFLICT_RATIO * max(about_curve, 1e-300):
            warnings.warn(
                f"{self.target}: the prior holds the fit far from the readings: their mean "
                f"squared residual is {about_posterior:.3g} [{self.units or 'units'}^2] about "
                f"the posterior mean and {about_curve:.3g} about a least-squares curve of "
                f"the same basis; expected a prior that allows curves on the readings' "
                f"scale (root mean square {math.sqrt(float(sum_sq.sum()) / n_readings):.3g}), "
                f"or a prior meant to be this strict: smoothing={self.smoothing:g} and "
                f"ridge={self.ridge:g} are in 1/{self.units or 'units'}^2, a prior_mean or "
                "prior_covariance in the target's units",
                UserWarning,
                stacklevel=5,  # the caller of predict (predict, _posterior_parts, _fit)
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
        """Predictive distribution of the target at ``inputs``.

        Where the inputs of a :class:`~twinweave.models.ModulatedSpline`'s modulator are
        absent or not finite (a prediction from wind speed alone), its features are
        their expectation over the readings assimilated: ``E[phi(v) m(T)] =
        phi(v) E[m(T) | u]``, with ``u`` the input of the first
        :class:`~twinweave.models.SplineTerm` and the conditional mean taken with that
        spline's basis functions as weights. The model being linear, the mean is then
        the prediction averaged over the modulator's values seen at that ``u``; the
        spread of those predictions, ``a^T C a`` with ``a`` the modulation's weights at
        the posterior mean and ``C`` the covariance of ``m`` about its local means,
        averaged over all readings (one matrix for every ``u``), is added to the noise
        variance. Readings assimilated without the modulator's inputs count at its
        reference value (zero features).

        All of it comes from the Gram matrices, with no state of its own: the first
        spline's features sum to one in every row, so a row of the Gram matrix summed
        over them gives the sums of the features, and a modulated spline's features,
        summed over its spline, give the modulator's.
        """
        check_columns(inputs, "inputs")  # before the posterior is computed for nothing
        mean, inv_chol, noise_var = self._posterior_parts()
        data, n_rows = self._prediction_rows(inputs)
        starts, values = self._windows.evaluate(data, n_rows)
        bins = self.noise_bin(data, n_rows)
        spread = self._marginalise(data, n_rows, starts, values, mean)
        # The latent mean and the variance of ``features @ w``, from each row's few
        # nonzero features; the shared factor ``features @ inv_chol.T`` (n x p) is built
        # only if a joint quantity asks for it.
        covariance = inv_chol.T @ inv_chol
        loc = np.empty(n_rows, dtype=np.float64)
        weight_var = np.empty(n_rows, dtype=np.float64)
        for rows, chunk_starts, chunk_values in _chunks(starts, values, n_rows):
            self._mean_and_var(
                chunk_starts, chunk_values, mean, covariance, loc[rows], weight_var[rows]
            )
        root = inv_chol.T.copy()

        def build_factor() -> FloatArray:
            factor = np.empty((n_rows, self.n_features), dtype=np.float64)
            for rows, chunk_starts, chunk_values in _chunks(starts, values, n_rows):
                self._project(chunk_starts, chunk_values, root, factor[rows])
            return factor

        predictive = CensoredNormal(
            loc,
            noise_var[bins] if spread is None else noise_var[bins] + spread,
            lower=self.lower,
            upper=self.upper,
            units=self.units,
            factor=DeferredFactor(build_factor, np.maximum(weight_var, 0.0)),
        )
        if not self.bound_masses:
            return predictive
        return self._with_bound_masses(predictive, bins)

    def _with_bound_masses(self, predictive: CensoredNormal, bins: IndexArray) -> CensoredNormal:
        """``predictive`` with each finite bound's probability estimated per noise bin:
        the share of readings there, shrunk with ``bound_prior_count`` pseudo-readings
        towards the censored normal's own tail (which is also the answer where the bin
        has no readings, or its counts were never kept)."""
        # Single readings still pending hold part of the counts per bin.
        self._settle()
        lower = self._bound_mass(self.lower, self._count_lower, predictive.mass_at_lower, bins)
        upper = self._bound_mass(self.upper, self._count_upper, predictive.mass_at_upper, bins)
        if lower is None and upper is None:
            return predictive
        return predictive.with_bound_masses(lower, upper)

    def _bound_mass(
        self, bound: float, counted: FloatArray, tail: FloatArray, bins: IndexArray
    ) -> FloatArray | None:
        if not np.isfinite(bound):
            return None
        # Counts are kept divided by the decay scale; put it back so that the prior's
        # pseudo-readings weigh the same whatever the scale.
        at_bound = counted[bins] * self.scale_
        n = self._count[bins] * self.scale_
        c = self.bound_prior_count
        shrunk = (at_bound + c * tail) / (n + c)
        mass = np.where(np.isnan(at_bound), tail, shrunk)
        # Never exactly impossible: a reading at a bound the twin thought far away (the
        # tail underflowed) is then very surprising, with a finite residual and score.
        return np.asarray(np.maximum(mass, _TINY), dtype=np.float64)

    def _marginalise(
        self,
        data: EvaluatedInputs,
        n_rows: int,
        starts: list[IndexArray],
        values: list[FloatArray],
        mean: FloatArray,
    ) -> FloatArray | None:
        """Put the expected features of absent modulators into ``values``; the variance
        their spread adds per row, ``None`` where nothing is absent."""
        marginal: _Marginal | None = None
        coefficients: FloatArray | None = None
        for index, t in enumerate(self._modulated):
            term = cast(ModulatedSpline, self.terms[t])
            missing = term.modulator.missing(data, n_rows)
            if missing is None:
                continue
            if marginal is None:
                marginal = self._marginal_parts()
                if marginal is None:
                    return None
            c = cast(int, self._conditioning)
            rows = np.flatnonzero(missing)
            lo, hi = marginal.columns[index]
            # E[m | u] at each row: the local means of the conditioning spline's window
            # functions, weighted by their values there.
            window = starts[c][rows] - self._windows.offsets[c]
            local = marginal.local_mean[window[:, None] + self._windows.columns[c], lo:hi]
            expected = np.einsum("rc,rcm->rm", values[c][rows], local)
            segment, weights = term.spline.local_design(data, n_rows)
            spline_rows = weights[rows]
            filled = np.array(values[t])
            filled[rows] = (spline_rows[:, :, None] * expected[:, None, :]).reshape(
                rows.size, term.width
            )
            values[t] = filled
            # The modulation's weights at each row, sum_i phi_i(v) w_(i, k).
            m = hi - lo
            first = self._windows.offsets[t] + (segment[rows] * m)
            spline_cols = first[:, None] + m * np.arange(term.spline.width)
            weights_at = mean[spline_cols[:, :, None] + np.arange(m)]
            if coefficients is None:
                coefficients = np.zeros((n_rows, marginal.covariance.shape[0]))
            coefficients[rows, lo:hi] = np.einsum("ri,rim->rm", spline_rows, weights_at)
        if coefficients is None or marginal is None:
            return None
        spread = np.einsum("rq,qs,rs->r", coefficients, marginal.covariance, coefficients)
        return np.asarray(np.maximum(spread, 0.0), dtype=np.float64)

    def _marginal_parts(self) -> _Marginal | None:
        """Moments of the modulators' features from the Gram matrices (see
        :meth:`predict`); ``None`` without a modulated term or a spline to condition
        on."""
        if self._marginal is None and self._modulated and self._conditioning is not None:
            self._marginal = self._marginal_moments()
        return self._marginal

    def _marginal_moments(self) -> _Marginal:
        # The decay scale cancels in every ratio below.
        total = self.gram_.sum(axis=0)
        p = self.n_features
        blocks = []
        for t in self._modulated:
            term = cast(ModulatedSpline, self.terms[t])
            n, m = term.spline.n_features, term.modulator.n_features
            lo = self._windows.offsets[t]
            blocks.append((lo, n, m))
        # Sum each modulated block over its spline: columns become modulator features.
        by_feature = np.hstack(
            [total[:, lo : lo + n * m].reshape(p, n, m).sum(axis=1) for lo, n, m in blocks]
        )
        q = by_feature.shape[1]
        second = np.vstack(
            [by_feature[lo : lo + n * m].reshape(n, m, q).sum(axis=0) for lo, n, m in blocks]
        )
        c = cast(int, self._conditioning)
        lo_c = self._windows.offsets[c]
        hi_c = lo_c + self.terms[c].n_features
        near = by_feature[lo_c:hi_c]
        weight = total[lo_c:hi_c, lo_c:hi_c].sum(axis=1)
        n_total = float(weight.sum())
        columns = tuple(itertools.pairwise(np.cumsum([0, *(m for _, _, m in blocks)]).tolist()))
        if n_total <= 0:
            return _Marginal(np.zeros_like(near), np.zeros((q, q)), columns)
        overall = near.sum(axis=0) / n_total
        local = (near + _MARGINAL_PRIOR_COUNT * overall) / (weight + _MARGINAL_PRIOR_COUNT)[:, None]
        # The spread about the local means, averaged over the readings: the overall
        # second moment less that of the (unshrunk) local means, which by Cauchy-Schwarz
        # leaves a positive semi-definite matrix.
        seen = weight > 0
        between = (near[seen] / weight[seen, None]).T @ near[seen]
        return _Marginal(local, (second - between) / n_total, columns)

    def _groups(
        self, starts: list[IndexArray], values: list[FloatArray]
    ) -> Iterator[tuple[IndexArray, IndexArray, FloatArray]]:
        """Rows that share their nonzero feature columns: the rows, those columns, and
        the rows' values there ``(n_group, n_columns)``."""
        windows = self._windows
        order, bounds = windows.groups(starts, None, 1)
        x_sorted = windows.gather(values, order)
        for lo, hi in itertools.pairwise(bounds):
            rows = order[lo:hi]
            yield rows, windows.window_columns(starts, int(rows[0])), x_sorted[:, lo:hi].T

    def _mean_and_var(
        self,
        starts: list[IndexArray],
        values: list[FloatArray],
        mean: FloatArray,
        covariance: FloatArray,
        loc: FloatArray,
        var: FloatArray,
    ) -> None:
        """``loc = features @ mean`` and ``var = diag(features @ covariance @ features^T)``
        from the windowed features: each group's rows share their nonzero columns, so
        the quadratic form needs only that block of ``covariance``."""
        for rows, cols, x in self._groups(starts, values):
            loc[rows] = x @ mean[cols]
            var[rows] = np.einsum("ij,ij->i", x @ covariance[np.ix_(cols, cols)], x)

    def _project(
        self,
        starts: list[IndexArray],
        values: list[FloatArray],
        projection: FloatArray,
        out: FloatArray,
    ) -> None:
        """``out = features @ projection`` from the windowed features."""
        for rows, cols, x in self._groups(starts, values):
            out[rows] = x @ projection[cols]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, n_features={self.n_features}, "
            f"n_bins={self.n_bins}, n_observations_={self.n_observations_:.0f})"
        )
