"""Predictive distributions: what every ``predict`` returns.

A :class:`CensoredNormal` is a Gaussian latent variable clipped to physical bounds, the
usual model for a quantity such as turbine power that piles up at zero (idle) and at rated
power (the controller caps it). Quantiles and samples never leave the bounds; the bounds
carry probability mass equal to the latent tail beyond them, or, where an emulator knows
better (a turbine idles below cut-in far more often than the tail says), a given
probability, the rest of the Gaussian truncated between them.

The latent Gaussian may carry a shared low-rank ``factor``: the part of the uncertainty
that is common to all points (an emulator's parameter uncertainty). Sampling draws it once
per sample path, so sums over time (energy, hours at rated) get honest, correlated
uncertainty, while marginal summaries (mean, var, quantile) use only its row norms. An
emulator may hand it over as a :class:`DeferredFactor`, its row norms computed and the
factor itself built only when a joint quantity (a sample path, a joint likelihood) needs
it: a year of ten-minute predictions of a 93-weight emulator would otherwise carry a
40 MB matrix that marginals never read.

The independent part of the noise may be correlated in time: given the points' ``times``
and a :class:`ExponentialCorrelation`, sample paths carry that correlation (a wind
turbine's 10-minute residuals have lag-one autocorrelation about 0.6, and some of it lasts
for days), so the uncertainty of a month's energy is as wide as it should be. Marginals
do not depend on it. :class:`ResidualCorrelation` learns the correlation from a twin's
residuals.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from twinweave.core._arguments import check_count, described, is_real

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


_NAT = int(np.iinfo(np.int64).min)  # NaT, as datetime64's integers hold it


def time_seconds(values: ArrayLike) -> FloatArray:
    """Times as seconds since 1970-01-01 UTC [s].

    Numbers are taken to be seconds already; datetimes without a time zone are taken to
    be UTC.

    Examples
    --------
    >>> time_seconds(["2015-01-01T00:00", "2015-01-01T00:10"])
    array([1.4200704e+09, 1.4200710e+09])
    """
    array = np.atleast_1d(np.asarray(values))
    if array.dtype.kind in "iuf":
        return np.asarray(array, dtype=np.float64).ravel()
    if array.dtype.kind == "M" and array.size == 1:
        # One time, as a stream gives each reading's: pandas' column parser below costs
        # 0.2-0.9 ms, several times a reading's update. Without a zone it is UTC.
        given = array.ravel()[:1]
        in_ns = given.astype("datetime64[ns]")
        # NaT, or beyond nanoseconds' years 1677-2262 (the cast wraps around silently):
        # the column parser below says which.
        if in_ns.view(np.int64)[0] != _NAT and in_ns.astype(given.dtype)[0] == given[0]:
            return np.asarray(in_ns.view(np.int64), dtype=np.float64) / 1e9
    # Imported here: a process that never parses times (a Flower ClientApp) skips pandas.
    import pandas as pd

    if array.size == 1 and isinstance(array.ravel()[0], str | datetime.datetime):
        try:
            stamp = pd.Timestamp(array.ravel()[0])
        except (TypeError, ValueError, OverflowError):
            pass  # said below, by the column parser
        else:
            if not pd.isna(stamp):
                return np.array([stamp.as_unit("ns").value / 1e9])  # UTC where zoned
    # Coerced, so that a value that is no time is named below with its row.
    stamps = pd.to_datetime(array.ravel(), utc=True, errors="coerce")
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna())[0])
        value = array.ravel()[row]
        # As the user wrote it: 'notatime', not np.str_('notatime').
        shown = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"time, row {row}: expected a time, got {shown!r}")
    return np.asarray(stamps.as_unit("ns").asi8, dtype=np.float64) / 1e9


@dataclass(frozen=True)
class ExponentialCorrelation:
    """Correlation in time of standardised noise: white noise plus exponential components.

    Between two distinct points ``dt`` seconds apart the correlation is::

        corr(dt) = sum_k weights[k] * exp(-|dt| / time_constants[k])

    and the rest of the variance, ``1 - sum(weights)``, is white noise. Each component is
    an Ornstein-Uhlenbeck process, the continuous-time AR(1): at regular steps of length
    ``step`` it is an AR(1) with coefficient ``rho = exp(-step / time_constant)``, and over
    an irregular gap ``dt`` its coefficient is ``rho ** (dt / step)``. A long gap (a
    turbine stopped for a week) therefore leaves components with short time constants
    independent across it without any separate reset. Because each component is Markov
    in time, any subset of points (a slice, a mask) has exactly the joint distribution
    the full set implies.

    Mixtures of exponentials model residuals whose correlation decays fast at first and
    then slowly (Granger, 1980, *Journal of Econometrics* 14(2):227-238,
    doi:10.1016/0304-4076(80)90092-5, shows that sums of AR(1) processes give such long
    memory); wind turbine power residuals are an example (lag-one autocorrelation about
    0.6 at 10 minutes, still about 0.08 after a day).

    Parameters
    ----------
    weights
        Share of the variance of each component [-]; non-negative, summing to at most 1.
    time_constants
        Time constant of each component [s]; positive.

    Examples
    --------
    >>> c = ExponentialCorrelation.ar1(0.7, step=600.0)
    >>> c([0.0, 600.0, 1200.0]).round(3)
    array([1.  , 0.7 , 0.49])
    """

    weights: tuple[float, ...]
    time_constants: tuple[float, ...]

    def __post_init__(self) -> None:
        weights = tuple(float(w) for w in self.weights)
        constants = tuple(float(t) for t in self.time_constants)
        if len(weights) != len(constants):
            raise ValueError(
                f"weights, time_constants: expected one weight per time constant, got "
                f"{len(weights)} and {len(constants)}"
            )
        if any(not w >= 0 for w in weights) or sum(weights) > 1 + 1e-12:
            raise ValueError(
                f"weights: expected non-negative shares summing to at most 1, got {weights}"
            )
        if any(not 0 < t < np.inf for t in constants):
            raise ValueError(f"time_constants: expected positive seconds, got {constants}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "time_constants", constants)

    @classmethod
    def ar1(cls, rho: float, step: float) -> ExponentialCorrelation:
        """An AR(1) with coefficient ``rho`` per ``step`` [s] and no white part."""
        if not 0 <= rho < 1:
            raise ValueError(f"rho: expected a coefficient in [0, 1), got {rho}")
        if not step > 0:
            raise ValueError(f"step: expected positive seconds, got {step}")
        if rho == 0:
            return cls((), ())
        return cls((1.0,), (-step / float(np.log(rho)),))

    @property
    def white(self) -> float:
        """Share of the variance that is white noise [-]."""
        return max(0.0, 1.0 - sum(self.weights))

    def __call__(self, lag: ArrayLike) -> FloatArray:
        """Correlation at ``lag`` [s] (1 at lag 0, the same point)."""
        dt = np.abs(np.asarray(lag, dtype=np.float64))
        out = np.where(dt == 0, self.white, 0.0)
        for weight, constant in zip(self.weights, self.time_constants, strict=True):
            out = out + weight * np.exp(-dt / constant)
        return np.asarray(out, dtype=np.float64)

    def sample(
        self,
        times: ArrayLike,
        n_samples: int,
        seed: int | np.random.Generator | None = None,
        *,
        on_block: Callable[[int], None] | None = None,
    ) -> FloatArray:
        """Standard normal paths with this correlation, shape ``(n_samples, len(times))``.

        Each component runs as an AR(1) through the points in time order, started from
        its stationary distribution; equal times get equal component values.
        ``on_block``, if given, is told the number of points drawn after each block of
        them (for a progress bar: a year of 10-minute points takes seconds).
        """
        rng = np.random.default_rng(seed)
        t = np.asarray(times, dtype=np.float64).ravel()
        n, k = t.size, len(self.weights)
        if not np.isfinite(t).all():
            raise ValueError("times: expected finite seconds")
        order = np.argsort(t, kind="stable")
        gaps = np.diff(t[order], prepend=t[order[:1]])
        tau = np.asarray(self.time_constants, dtype=np.float64)
        phi = np.exp(-gaps[:, None] / tau[None, :])
        phi[:1] = 0.0  # the first point: a draw from the stationary distribution
        # Weights folded into the innovations: component k has variance weights[k].
        innovation = np.sqrt(np.asarray(self.weights)[None, :] * (1.0 - phi * phi))
        phi, innovation = phi[:, :, None], innovation[:, :, None]
        white = np.sqrt(self.white)
        in_order = np.empty((n, n_samples), dtype=np.float64)
        state = np.zeros((k, n_samples), dtype=np.float64)
        for start in range(0, n, _SAMPLE_CHUNK):
            stop = min(start + _SAMPLE_CHUNK, n)
            draws = rng.standard_normal((stop - start, k + 1, n_samples))
            for i in range(start, stop):
                step = draws[i - start]
                state *= phi[i]
                state += innovation[i] * step[:k]
                np.add.reduce(state, axis=0, out=in_order[i])
                in_order[i] += white * step[k]
            if on_block is not None:
                on_block(stop - start)
        if np.array_equal(order, np.arange(n)):
            return in_order.T  # already in time order: no second copy of the paths
        paths = np.empty((n_samples, n), dtype=np.float64)
        paths[:, order] = in_order.T
        return paths


# Points per block of random draws when sampling correlated paths (bounds the memory).
_SAMPLE_CHUNK = 256
# The latent probability between a hurdle's bounds below which there is none: the
# interior's density is divided by it, and a subnormal one has lost its digits (the
# latent mean some 37 standard deviations beyond a bound).
_MIN_BETWEEN = 1e-300
# Paths per block of the copula's transform in CensoredNormal.sample (bounds the memory).
_COPULA_ROWS = 64

#: Default lag bins of :class:`ResidualCorrelation`: 1 s to about 15 months, 8 per decade.
DEFAULT_LAG_EDGES = np.geomspace(1.0, 4e7, 61)
#: Default candidate time constants: 1 minute to 90 days, 25 spaced geometrically.
DEFAULT_TIME_CONSTANTS = np.geomspace(60.0, 90 * 86400.0, 25)


class ResidualCorrelation:
    """Learns the :class:`ExponentialCorrelation` of a twin's residuals in time.

    Each :meth:`update` takes a predictive, the readings it predicted and their times,
    and adds the products ``z_i z_j`` of standardised latent residuals
    ``z = (y - loc) / sqrt(noise_var)`` of every pair of the batch's readings to the bin
    of their time lag (bins spaced geometrically in seconds), computed by FFT on the
    batch's time grid; pairs across batches are not formed. Readings on a bound (a
    turbine idle or at rated power) do not show their latent residual and are left out,
    as are pairs that a gap separates by more than the longest lag bin. The correlation
    at each lag is the mean product over the mean square (the residuals are not
    centred: a lasting bias is correlation too). The weights of components with fixed
    ``time_constants``, restricted to those within the lags seen, are fitted to it by
    least squares with each weight in ``[0, 1]`` (bounded-variable least squares: Stark
    and Parker, 1995, *Computational Statistics* 10(2):129-141), one equation per lag
    bin; the rest of the variance is white noise.

    The statistics add up over updates, so a twin that keeps assimilating keeps refining
    its estimate, and it restores exactly from :meth:`state`. Residuals of the readings
    a model was fitted to understate slow errors somewhat (the fit absorbs part of them),
    and nothing in them foresees a change of the asset after the fit.

    Parameters
    ----------
    time_constants
        Candidate time constants of the components [s].
    lag_edges
        Increasing edges of the lag bins [s].
    min_pairs
        Lag bins with fewer pairs are not used in the fit.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = ExponentialCorrelation.ar1(0.7, step=600.0)
    >>> times = 600.0 * np.arange(20_000)
    >>> z = truth.sample(times, 1, rng)[0]
    >>> learner = ResidualCorrelation().update(CensoredNormal(np.zeros(z.size), 1.0), z, times)
    >>> round(float(learner.correlation_(600.0)[()]), 1)
    0.7
    """

    def __init__(
        self,
        *,
        time_constants: ArrayLike = DEFAULT_TIME_CONSTANTS,
        lag_edges: ArrayLike = DEFAULT_LAG_EDGES,
        min_pairs: int = 100,
    ) -> None:
        self.time_constants = np.asarray(time_constants, dtype=np.float64).copy()
        self.lag_edges = np.asarray(lag_edges, dtype=np.float64).copy()
        self.min_pairs = min_pairs
        if self.lag_edges.ndim != 1 or self.lag_edges.size < 2:
            raise ValueError("lag_edges: expected at least two increasing edges [s]")
        if np.any(np.diff(self.lag_edges) <= 0) or self.lag_edges[0] <= 0:
            raise ValueError("lag_edges: expected positive, increasing edges [s]")
        if np.any(self.time_constants <= 0) or self.time_constants.ndim != 1:
            raise ValueError("time_constants: expected positive seconds")
        n_bins = self.lag_edges.size - 1
        self.products_: FloatArray = np.zeros(n_bins)
        self.n_pairs_: FloatArray = np.zeros(n_bins)
        self.lag_sums_: FloatArray = np.zeros(n_bins)
        self.square_sum_: float = 0.0
        self.n_squares_: float = 0.0
        self.weights_: FloatArray = np.zeros(self.time_constants.size)

    @property
    def correlation_(self) -> ExponentialCorrelation | None:
        """The correlation learnt so far; ``None`` before any lag bin had enough pairs."""
        used = self.weights_ > 0
        if not used.any():
            return None
        return ExponentialCorrelation(
            tuple(self.weights_[used].tolist()), tuple(self.time_constants[used].tolist())
        )

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, unchanged."""
        return {
            "time_constants": self.time_constants.copy(),
            "lag_edges": self.lag_edges.copy(),
            "min_pairs": self.min_pairs,
        }

    def state(self) -> dict[str, FloatArray | float]:
        """Learned state, as arrays and numbers."""
        return {
            "products_": self.products_.copy(),
            "n_pairs_": self.n_pairs_.copy(),
            "lag_sums_": self.lag_sums_.copy(),
            "square_sum_": self.square_sum_,
            "n_squares_": self.n_squares_,
            "weights_": self.weights_.copy(),
        }

    @classmethod
    def from_state(
        cls, params: Mapping[str, Any], state: Mapping[str, FloatArray | float | int]
    ) -> ResidualCorrelation:
        """A learner built from ``params`` holding exactly ``state``."""
        learner = cls(**params)
        for name in ("products_", "n_pairs_", "lag_sums_", "weights_"):
            value = np.array(state[name], dtype=np.float64)
            expected = getattr(learner, name).shape
            if value.shape != expected:
                raise ValueError(f"state {name}: expected shape {expected}, got {value.shape}")
            setattr(learner, name, value)
        learner.square_sum_ = float(state["square_sum_"])
        learner.n_squares_ = float(state["n_squares_"])
        return learner

    def copy(self) -> ResidualCorrelation:
        """An independent learner with the same configuration and state."""
        return ResidualCorrelation.from_state(self.get_params(), self.state())

    def update(
        self, predictive: CensoredNormal, observed: ArrayLike, times: ArrayLike
    ) -> ResidualCorrelation:
        """Add the residuals of one batch of readings and refit; return ``self``.

        Parameters
        ----------
        predictive
            What was predicted for the readings (a twin's fit to them).
        observed
            The readings [predictive units].
        times
            Their times (datetimes, or seconds since the epoch).
        """
        y = np.broadcast_to(np.asarray(observed, dtype=np.float64), predictive.loc.shape)
        t = time_seconds(times)
        if t.shape != y.shape:
            raise ValueError(f"times: expected {y.size} times (one per reading), got {t.size}")
        scale = np.sqrt(predictive.noise_var)
        inside = (
            (y > predictive.lower)
            & (y < predictive.upper)
            & (scale > 0)
            & np.isfinite(y)
            & np.isfinite(t)
        )
        if inside.sum() < 2:
            return self
        z = (y[inside] - predictive.loc[inside]) / scale[inside]
        t = t[inside]
        order = np.argsort(t, kind="stable")
        z, t = z[order], t[order]
        self.square_sum_ += float(z @ z)
        self.n_squares_ += float(z.size)
        # Stretches apart by more than the longest lag bin hold no pair in common.
        breaks = np.flatnonzero(np.diff(t) > self.lag_edges[-1]) + 1
        gaps = np.diff(t)
        step = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 0.0
        if step == 0.0:
            return self
        for part_t, part_z in zip(np.split(t, breaks), np.split(z, breaks), strict=True):
            self._add_pairs(part_t, part_z, step)
        self._refit()
        return self

    def _add_pairs(self, t: FloatArray, z: FloatArray, step: float) -> None:
        if t.size < 2:
            return
        # Readings on a grid of the batch's typical step; a sparse stretch gets a coarser
        # grid, so the FFT stays at most a few times longer than the stretch's readings.
        step = max(step, float(t[-1] - t[0]) / (8.0 * t.size))
        cell = np.rint((t - t[0]) / step).astype(np.int64)
        first = np.concatenate(([True], np.diff(cell) > 0))  # one reading per cell
        cell, z = cell[first], z[first]
        n_cells = int(cell[-1]) + 1
        values = np.zeros(n_cells)
        present = np.zeros(n_cells)
        values[cell] = z
        present[cell] = 1.0
        size = 1 << int(np.ceil(np.log2(2 * n_cells)))
        fz = np.fft.rfft(values, size)
        fp = np.fft.rfft(present, size)
        products = np.fft.irfft(fz * np.conj(fz), size)[1:n_cells]
        counts = np.rint(np.fft.irfft(fp * np.conj(fp), size)[1:n_cells])
        lags = step * np.arange(1, n_cells)
        bins = np.searchsorted(self.lag_edges, lags, side="right") - 1
        keep = (bins >= 0) & (bins < self.products_.size) & (counts > 0)
        n_bins = self.products_.size
        self.products_ += np.bincount(bins[keep], products[keep], minlength=n_bins)
        self.n_pairs_ += np.bincount(bins[keep], counts[keep], minlength=n_bins)
        self.lag_sums_ += np.bincount(bins[keep], lags[keep] * counts[keep], minlength=n_bins)

    def _refit(self) -> None:
        used = self.n_pairs_ >= max(self.min_pairs, 1)
        if not used.any() or self.square_sum_ <= 0:
            self.weights_ = np.zeros(self.time_constants.size)
            return
        lag = self.lag_sums_[used] / self.n_pairs_[used]
        target = (self.products_[used] / self.n_pairs_[used]) / (self.square_sum_ / self.n_squares_)
        # Components faster than the shortest lag seen are white noise there; slower
        # than the longest, a constant: neither can be told apart, so neither is fitted.
        candidate = (self.time_constants >= lag.min()) & (self.time_constants <= lag.max())
        weights = np.zeros(self.time_constants.size)
        if candidate.any():
            design = np.exp(-lag[:, None] / self.time_constants[None, candidate])
            from scipy import optimize  # here: most processes never fit a correlation

            fitted = optimize.lsq_linear(design, target, bounds=(0.0, 1.0), method="bvls").x
            # Shares below a millionth are the solver's rounding, not components.
            weights[candidate] = np.where(fitted < 1e-6, 0.0, np.minimum(fitted, 1.0))
            total = weights.sum()
            if total > 1.0:
                weights /= total
        self.weights_ = weights

    def __repr__(self) -> str:
        return f"ResidualCorrelation({self.correlation_!r})"


def _part_of_factor(
    root: CensoredNormal, rows: NDArray[np.intp] | None, scale: float
) -> FloatArray:
    """Rows ``rows`` (``None``: all) of ``root``'s shared factor times ``scale``
    (module-level: it pickles)."""
    factor = root.factor
    assert factor is not None  # called only for a root with a deferred factor
    part = factor if rows is None else factor[rows]
    return np.asarray(part * scale, dtype=np.float64)


def _part(
    parent: CensoredNormal,
    build: functools.partial[FloatArray],
    *,
    index: Any = None,
    scale: float = 1.0,
) -> functools.partial[FloatArray]:
    """The build of a part of ``parent``'s partial-built factor, from the root factor:
    a slice of a scaled slice reads the root once, and pickles one level deep."""
    root, rows, factor_scale = parent, None, 1.0
    if build.func is _part_of_factor:
        root, rows, factor_scale = build.args
    if index is not None:
        positions = np.arange(len(parent)) if rows is None else rows
        rows = np.asarray(positions[index], dtype=np.intp)
    return functools.partial(_part_of_factor, root, rows, factor_scale * scale)


def _censored_normal(arguments: dict[str, Any]) -> CensoredNormal:
    """Unpickles a :class:`CensoredNormal` from its constructor arguments."""
    return CensoredNormal(**arguments)


@dataclass(frozen=True)
class DeferredFactor:
    """A shared factor built on first use, its rows' sums of squares known beforehand.

    Parameters
    ----------
    build
        Returns the ``(n_points, k)`` loading; called at most once per predictive.
    row_var
        ``sum(loading**2, axis=1)``, shape ``(n_points,)`` [units^2]: the variance the
        factor adds to each point, which is all that marginals need.
    """

    build: Callable[[], FloatArray]
    row_var: FloatArray

    def __post_init__(self) -> None:
        row_var = np.asarray(self.row_var, dtype=np.float64)
        if row_var.ndim != 1 or np.any(row_var < 0):
            raise ValueError(
                f"row_var: expected one non-negative variance per point, got shape {row_var.shape}"
            )
        object.__setattr__(self, "row_var", row_var)


@dataclass(frozen=True)
class CensoredNormal:
    """Gaussian latent variable censored to ``[lower, upper]``, optionally with the
    bounds' probabilities given (a hurdle).

    Parameters
    ----------
    loc
        Latent mean per point [units].
    noise_var
        Latent variance per point that is independent between points [units^2].
    factor
        Optional ``(n_points, k)`` loading of shared standard-normal factors; adds
        ``sum(factor**2, axis=1)`` to the latent variance and correlates the points. A
        :class:`DeferredFactor` gives the same, built only when first read.
    lower, upper
        Censoring bounds [units]; ``-inf``/``inf`` for none.
    units
        A pint unit expression, for example ``"kW"``.
    times
        Optional time of each point (seconds since the epoch, or datetimes; see
        :func:`time_seconds`).
    correlation
        Optional correlation in time of the independent noise ``noise_var`` (it needs
        ``times``). Only joint sample paths use it; marginals do not depend on it.
    lower_mass, upper_mass
        Optional probability of exactly ``lower`` / ``upper`` per point. Without them the
        bounds carry the latent tails beyond them (censoring). With them, the value lies
        at a bound with the given probability and otherwise follows the latent Gaussian
        truncated to ``(lower, upper)``: Cragg's (1971) two-part generalisation of the
        Tobit model, for quantities whose pile-up at a bound has its own cause (a turbine
        idles below cut-in far more often than a Gaussian spread of power around zero
        says). A bound that is infinite carries no mass.

    Notes
    -----
    Moments of the censored normal follow Greene, *Econometric Analysis*, 7th ed.,
    section 19.3 (censored normal distribution); with given masses the part between the
    bounds is the censored one scaled by ``(1 - lower_mass - upper_mass) / (Phi(b) -
    Phi(a))`` (the generalised truncated/censored normal of Jordan, Krueger and Lerch
    2019, *Journal of Statistical Software* 90(12), doi:10.18637/jss.v090.i12). The
    CRPS is evaluated by Gauss-Legendre quadrature of the threshold decomposition of
    Gneiting and Raftery (2007), doi:10.1198/016214506000001437. Cragg (1971),
    *Econometrica* 39(5), 829-844, doi:10.2307/1909582.

    Examples
    --------
    >>> p = CensoredNormal(loc=[100.0, 2000.0], noise_var=[400.0, 10000.0],
    ...                    lower=0.0, upper=2050.0, units="kW")
    >>> bool((p.quantile(0.99) <= 2050.0).all())
    True
    >>> p.interval(0.9)[0].round(1)
    array([  67.1, 1835.5])
    >>> idle = CensoredNormal([0.0], [100.0], lower=0.0, upper=2050.0, lower_mass=[0.9],
    ...                       upper_mass=[0.0])
    >>> idle.quantile([0.85, 0.95]).ravel().round(2)
    array([0.  , 6.74])
    """

    loc: FloatArray
    noise_var: FloatArray
    lower: float = -np.inf
    upper: float = np.inf
    units: str = ""
    _factor: FloatArray | DeferredFactor | None = field(default=None, repr=False)
    times: FloatArray | None = field(default=None)
    correlation: ExponentialCorrelation | None = field(default=None)
    lower_mass: FloatArray | None = field(default=None)
    upper_mass: FloatArray | None = field(default=None)

    def __init__(
        self,
        loc: ArrayLike,
        noise_var: ArrayLike,
        *,
        lower: float = -np.inf,
        upper: float = np.inf,
        units: str = "",
        factor: ArrayLike | DeferredFactor | None = None,
        times: ArrayLike | None = None,
        correlation: ExponentialCorrelation | None = None,
        lower_mass: ArrayLike | None = None,
        upper_mass: ArrayLike | None = None,
    ) -> None:
        # Derived per-point arrays (latent spread, bounds' masses), computed once, read-only.
        object.__setattr__(self, "_derived", {})
        loc_arr = np.atleast_1d(np.asarray(loc, dtype=np.float64))
        if loc_arr.ndim != 1:
            # A column (X @ beta[:, None]) gave intervals of columns and quantiles of
            # the wrong shape, or numpy's broadcast errors.
            raise ValueError(
                f"loc: expected one location per point (1-D), got shape {loc_arr.shape}; "
                "flatten a column with .ravel()"
            )
        var_in = np.asarray(noise_var, dtype=np.float64)
        try:
            var_arr = np.broadcast_to(var_in, loc_arr.shape).copy()
        except ValueError:
            raise ValueError(
                f"noise_var: expected one variance or one per point of loc {loc_arr.shape}, "
                f"got shape {var_in.shape}"
            ) from None
        if np.any(var_arr < 0):
            at = int(np.flatnonzero(var_arr.ravel() < 0)[0])
            raise ValueError(
                f"noise_var: expected non-negative variances, got {var_arr.ravel()[at]:g} at "
                f"point {at}"
            )
        if not lower <= upper:
            raise ValueError(f"bounds: expected lower <= upper, got [{lower}, {upper}]")
        object.__setattr__(self, "loc", loc_arr)
        object.__setattr__(self, "noise_var", var_arr)
        object.__setattr__(self, "lower", float(lower))
        object.__setattr__(self, "upper", float(upper))
        object.__setattr__(self, "units", units)
        if isinstance(factor, DeferredFactor):
            if factor.row_var.shape != loc_arr.shape:
                raise ValueError(
                    f"factor: expected a row variance per point ({loc_arr.shape[0]}), got "
                    f"{factor.row_var.size}"
                )
            object.__setattr__(self, "_factor", factor)
        elif factor is not None:
            factor_arr = np.asarray(factor, dtype=np.float64)
            if factor_arr.ndim != 2 or factor_arr.shape[0] != loc_arr.shape[0]:
                raise ValueError(
                    f"factor: expected shape ({loc_arr.shape[0]}, k), got {factor_arr.shape}"
                )
            object.__setattr__(self, "_factor", factor_arr)
        else:
            object.__setattr__(self, "_factor", None)
        times_arr = None if times is None else time_seconds(times)
        if times_arr is not None and times_arr.shape != loc_arr.shape:
            raise ValueError(
                f"times: expected one time per point ({loc_arr.shape[0]}), got {times_arr.size}"
            )
        if correlation is not None and times_arr is None:
            raise ValueError("correlation: needs the points' times; pass times as well")
        object.__setattr__(self, "times", times_arr)
        object.__setattr__(self, "correlation", correlation)
        masses = {"lower_mass": (lower_mass, lower), "upper_mass": (upper_mass, upper)}
        for name, (mass, bound) in masses.items():
            object.__setattr__(self, name, _checked_mass(name, mass, bound, loc_arr.shape))
        if self.lower_mass is not None or self.upper_mass is not None:
            total = self.mass_at_lower + self.mass_at_upper
            if np.any(total > 1.0 + 1e-9):
                row = int(np.argmax(total))
                raise ValueError(
                    f"lower_mass, upper_mass: expected the bounds' probabilities to sum to "
                    f"at most 1, got {total[row]!r} at point {row}"
                )

    def __len__(self) -> int:
        return int(self.loc.shape[0])

    def __getitem__(self, index: slice | NDArray[np.bool_] | NDArray[np.intp]) -> CensoredNormal:
        """The distribution at a subset of points.

        The subset keeps its shared factor, times and correlation, so its joint
        distribution is the full one's restricted to the subset.
        """
        factor: FloatArray | DeferredFactor | None = None
        if isinstance(index, np.ndarray):
            # The deferred build reads it later: a caller's array may change by then.
            index = index.copy()
        if isinstance(self._factor, DeferredFactor):
            whole = self._factor
            if isinstance(whole.build, functools.partial):
                # Stays picklable without building (see __reduce__), and reads the
                # parent's factor (built once, its shape checked).
                factor = DeferredFactor(_part(self, whole.build, index=index), whole.row_var[index])
            else:
                factor = DeferredFactor(
                    lambda: self._built_factor(whole)[index], whole.row_var[index]
                )
        elif self._factor is not None:
            factor = self._factor[index]
        return CensoredNormal(
            self.loc[index],
            self.noise_var[index],
            lower=self.lower,
            upper=self.upper,
            units=self.units,
            factor=factor,
            times=None if self.times is None else self.times[index],
            correlation=self.correlation,
            lower_mass=None if self.lower_mass is None else self.lower_mass[index],
            upper_mass=None if self.upper_mass is None else self.upper_mass[index],
        )

    def __reduce__(self) -> tuple[Callable[..., CensoredNormal], tuple[dict[str, Any]]]:
        # A deferred factor built by a module-level function with its arguments
        # (functools.partial) travels deferred: it may be far larger than its arguments.
        # One built by a closure, which pickle cannot take, travels built.
        factor = self._factor
        if isinstance(factor, DeferredFactor) and not isinstance(factor.build, functools.partial):
            factor = self.factor
        return _censored_normal, (self._arguments(factor=factor),)

    def _arguments(self, **changes: Any) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "loc": self.loc,
            "noise_var": self.noise_var,
            "lower": self.lower,
            "upper": self.upper,
            "units": self.units,
            "factor": self._factor,
            "times": self.times,
            "correlation": self.correlation,
            "lower_mass": self.lower_mass,
            "upper_mass": self.upper_mass,
        }
        unknown = sorted(set(changes) - set(arguments))
        if unknown:
            raise TypeError(
                f"replace: unknown arguments {unknown}; expected some of {list(arguments)}"
            )
        return {**arguments, **changes}

    def replace(self, **changes: Any) -> CensoredNormal:
        """A copy with the given constructor arguments changed (``factor`` included; a
        deferred factor stays deferred)."""
        return CensoredNormal(**self._arguments(**changes))

    def scaled(self, factor: float) -> CensoredNormal:
        """The distribution of ``factor * Y``, for ``factor > 0``.

        The latent Gaussian (mean, noise and shared factor; a deferred factor stays
        deferred) and the bounds scale; given bound masses stay, as the mass at a bound
        moves with it. Clip the result (:meth:`clipped`) to keep it within the old bounds.
        """
        if not factor > 0.0:
            raise ValueError(f"factor: expected a positive scale, got {factor}")
        shared = self._factor
        if isinstance(shared, DeferredFactor):
            deferred = shared
            build: Callable[[], FloatArray] = (
                _part(self, deferred.build, scale=factor)
                if isinstance(deferred.build, functools.partial)
                else lambda: self._built_factor(deferred) * factor
            )
            shared = DeferredFactor(build, deferred.row_var * factor**2)
        elif shared is not None:
            shared = shared * factor
        return self.replace(
            loc=self.loc * factor,
            noise_var=self.noise_var * factor**2,
            factor=shared,
            lower=self.lower * factor,
            upper=self.upper * factor,
        )

    def with_bound_masses(
        self, lower_mass: FloatArray | None, upper_mass: FloatArray | None
    ) -> CensoredNormal:
        """The same latent Gaussian with the bounds' probabilities given (``None``: the
        latent tail). What only the latent Gaussian determines is not computed again."""
        out = self.replace(lower_mass=lower_mass, upper_mass=upper_mass)
        kept = {
            *("factor", "latent_var", "latent_std", "scale", "a", "b"),
            *("lower_tail", "upper_tail", "latent_between"),
        }
        derived: dict[str, FloatArray] = self.__dict__["_derived"]
        out.__dict__["_derived"].update({k: v for k, v in derived.items() if k in kept})
        return out

    @classmethod
    def concatenate(cls, parts: Sequence[CensoredNormal]) -> CensoredNormal:
        """The marginals of consecutive predictives joined into one (shared factors,
        times and correlation are dropped: the parts' joint structure is not kept)."""
        if not parts:
            raise ValueError("parts: expected at least one predictive, got none")
        first = parts[0]
        for part in parts[1:]:
            if (part.lower, part.upper, part.units) != (first.lower, first.upper, first.units):
                raise ValueError(
                    f"parts: expected the same bounds and units, got [{first.lower}, "
                    f"{first.upper}] {first.units!r} and [{part.lower}, {part.upper}] "
                    f"{part.units!r}"
                )
        hurdle = any(p.lower_mass is not None or p.upper_mass is not None for p in parts)
        return cls(
            np.concatenate([p.loc for p in parts]),
            np.concatenate([p.latent_var for p in parts]),
            lower=first.lower,
            upper=first.upper,
            units=first.units,
            lower_mass=np.concatenate([p.mass_at_lower for p in parts]) if hurdle else None,
            upper_mass=np.concatenate([p.mass_at_upper for p in parts]) if hurdle else None,
        )

    # -- the latent Gaussian ------------------------------------------------------------
    def _once(self, name: str, compute: Callable[[], FloatArray]) -> FloatArray:
        """``compute()``, kept read-only for the next call: the parameters never change."""
        derived: dict[str, FloatArray] = self.__dict__["_derived"]
        if name not in derived:
            value = np.asarray(compute(), dtype=np.float64)
            value.flags.writeable = False
            derived[name] = value
        return derived[name]

    @property
    def factor(self) -> FloatArray | None:
        """``(n_points, k)`` loading of the shared factors, or ``None`` [units]."""
        if isinstance(self._factor, DeferredFactor):
            return self._built_factor(self._factor)
        return self._factor

    def _built_factor(self, deferred: DeferredFactor) -> FloatArray:
        def build() -> FloatArray:
            loading = np.asarray(deferred.build(), dtype=np.float64)
            if loading.ndim != 2 or loading.shape[0] != len(self):
                raise ValueError(
                    f"factor: expected its build to give shape ({len(self)}, k), got "
                    f"{loading.shape}"
                )
            return loading

        return self._once("factor", build)

    @property
    def latent_var(self) -> FloatArray:
        """Variance of the uncensored Gaussian [units^2]."""
        factor = self._factor
        if factor is None:
            return self.noise_var
        if isinstance(factor, DeferredFactor):
            return self._once("latent_var", lambda: self.noise_var + factor.row_var)
        return self._once(
            "latent_var", lambda: self.noise_var + np.einsum("ij,ij->i", factor, factor)
        )

    @property
    def latent_std(self) -> FloatArray:
        return self._once("latent_std", lambda: np.sqrt(self.latent_var))

    def _standardised_bounds(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        s = self._once("scale", lambda: np.maximum(self.latent_std, 1e-300))
        a = self._once("a", lambda: (self.lower - self.loc) / s)
        b = self._once("b", lambda: (self.upper - self.loc) / s)
        return a, b, s

    # -- the bounds' probabilities ------------------------------------------------------
    @property
    def is_hurdle(self) -> bool:
        """Whether a bound's probability is given rather than the latent tail."""
        return self.lower_mass is not None or self.upper_mass is not None

    @property
    def mass_at_lower(self) -> FloatArray:
        """``P(Y = lower)`` per point."""
        if self.is_hurdle:
            return self._once("mass_at_lower", lambda: self._hurdle_masses()[0])
        return self._lower_tail()

    @property
    def mass_at_upper(self) -> FloatArray:
        """``P(Y = upper)`` per point."""
        if self.is_hurdle:
            return self._once("mass_at_upper", lambda: self._hurdle_masses()[1])
        return self._upper_tail()

    def _lower_tail(self) -> FloatArray:
        """The latent Gaussian's probability below ``lower``."""
        return self._once("lower_tail", lambda: _norm_cdf(self._standardised_bounds()[0]))

    def _upper_tail(self) -> FloatArray:
        """The latent Gaussian's probability above ``upper``."""
        return self._once("upper_tail", lambda: _norm_cdf(-self._standardised_bounds()[1]))

    def _latent_between(self) -> FloatArray:
        """The latent Gaussian's probability between the bounds."""
        return self._once("latent_between", lambda: _norm_between(*self._standardised_bounds()[:2]))

    def _hurdle_masses(self) -> tuple[FloatArray, FloatArray]:
        """The bounds' probabilities of a hurdle: those given (a bound without one
        carries the latent tail), and, where the latent Gaussian has no probability
        between the bounds to speak of (:data:`_MIN_BETWEEN`: its mean some 37 standard
        deviations or more beyond one), the rest on the bound nearer its mean, which is where the
        truncated Gaussian's mass goes in the limit."""
        low = self.lower_mass if self.lower_mass is not None else self._lower_tail()
        high = self.upper_mass if self.upper_mass is not None else self._upper_tail()
        # NaN (a missing input's location) is left as it is: no bound is nearer.
        none_between = self._latent_between() <= _MIN_BETWEEN
        stranded = np.where(none_between, np.maximum(1.0 - low - high, 0.0), 0.0)
        if not stranded.any():
            return low, high
        a, b, _ = self._standardised_bounds()
        with np.errstate(invalid="ignore"):  # inf - inf: no bound is finite, none stranded
            nearer_upper = a + b < 0.0
        return (
            np.asarray(low + np.where(nearer_upper, 0.0, stranded), dtype=np.float64),
            np.asarray(high + np.where(nearer_upper, stranded, 0.0), dtype=np.float64),
        )

    def _interior_scale(self) -> FloatArray:
        """Probability between the bounds over the latent Gaussian's there: the factor
        that turns the censored normal's interior into this distribution's (1 without
        given masses)."""
        if not self.is_hurdle:
            return np.ones_like(self.loc)
        return self._once("interior_scale", self._hurdle_interior_scale)

    def _hurdle_interior_scale(self) -> FloatArray:
        inside = np.maximum(1.0 - self.mass_at_lower - self.mass_at_upper, 0.0)
        latent = self._latent_between()
        # Where there is none (by the floor that put the mass on a bound), nothing.
        return np.asarray(
            np.where(latent > _MIN_BETWEEN, inside / np.maximum(latent, _MIN_BETWEEN), 0.0),
            dtype=np.float64,
        )

    # -- moments --------------------------------------------------------------------------
    @property
    def mean(self) -> FloatArray:
        """Mean [units]."""
        a, b, s = self._standardised_bounds()
        inside = self._interior_scale() * (
            self.loc * _norm_between(a, b) + s * (_norm_pdf(a) - _norm_pdf(b))
        )
        low = self.lower * self.mass_at_lower if np.isfinite(self.lower) else 0.0
        high = self.upper * self.mass_at_upper if np.isfinite(self.upper) else 0.0
        return np.asarray(low + inside + high, dtype=np.float64)

    @property
    def var(self) -> FloatArray:
        """Variance [units^2]."""
        a, b, s = self._standardised_bounds()
        fa, fb = _norm_pdf(a), _norm_pdf(b)
        # E[X^2; a < Z < b] for X = loc + s Z, written with finite-safe products.
        # An infinite bound has zero density there; zero it before the product, as
        # inf * 0 is NaN (and warns) even where np.where then discards it.
        a_fa = np.where(np.isfinite(a), a, 0.0) * fa
        b_fb = np.where(np.isfinite(b), b, 0.0) * fb
        mu, s2 = self.loc, s * s
        second_inside = self._interior_scale() * (
            (mu * mu + s2) * _norm_between(a, b) + 2 * mu * s * (fa - fb) + s2 * (a_fa - b_fb)
        )
        low = self.lower**2 * self.mass_at_lower if np.isfinite(self.lower) else 0.0
        high = self.upper**2 * self.mass_at_upper if np.isfinite(self.upper) else 0.0
        m = self.mean
        return np.asarray(np.maximum(low + second_inside + high - m * m, 0.0), dtype=np.float64)

    # -- quantiles and intervals -------------------------------------------------------
    def quantile(self, q: ArrayLike) -> FloatArray:
        """Quantiles [units]; ``q`` scalar gives shape ``(n,)``, a vector ``(len(q), n)``."""
        given = np.asarray(q)
        if given.dtype.kind not in "iuf":
            # numpy would read "0.5" as 0.5 and True as 1; a list mixing kinds is an
            # object array, taken when every entry is a number.
            wrong = [v for v in given.ravel().tolist() if not is_real(v)]
            if wrong:
                raise ValueError(
                    f"q: expected probabilities in (0, 1) as numbers, got {described(wrong[0])}"
                )
        q_arr = given.astype(np.float64)
        if not np.all((q_arr > 0) & (q_arr < 1)):  # NaN fails both comparisons
            raise ValueError(f"q: expected probabilities in (0, 1), got {q_arr.tolist()}")
        return self._inverse_cdf(q_arr if q_arr.ndim == 0 else q_arr.reshape(-1, 1))

    def _inverse_cdf(self, q: FloatArray) -> FloatArray:
        """Quantile function at ``q``, broadcast against the points (last axis)."""
        s = self.latent_std
        if not self.is_hurdle:
            z = _SQRT2 * special.erfinv(2 * q - 1)
            return np.asarray(np.clip(self.loc + s * z, self.lower, self.upper), dtype=np.float64)
        low, high = self.mass_at_lower, self.mass_at_upper
        scale = self._once("safe_scale", lambda: np.maximum(self._interior_scale(), 1e-300))
        below_a, above_b = self._lower_tail(), self._upper_tail()

        # Between the bounds F(y) = low + scale (Phi(z) - Phi(a)); solved for z in the
        # latent tail that z lies in, where Phi(z) or 1 - Phi(z) is small and keeps its
        # digits (a latent mean far beyond a bound puts every z of the interior in one
        # tail, whatever q is).
        with np.errstate(invalid="ignore", divide="ignore"):
            # In place: the copula maps blocks of sample paths through this.
            below = np.subtract(q, low)
            below /= scale
            below += below_a
            above = np.subtract(1.0 - high, q)
            above /= scale
            above += above_b
            in_upper_tail = below >= 0.5
            # One inverse normal of each point's tail probability: it is most of the work.
            np.copyto(below, above, where=in_upper_tail)
            z = special.ndtri(below, out=below)
            np.negative(z, out=z, where=in_upper_tail)
            del above, in_upper_tail
        # Probabilities of the masses make z NaN or infinite; the bounds replace those.
        np.clip(np.nan_to_num(z, copy=False), -40.0, 40.0, out=z)
        value = z
        value *= s
        value += self.loc
        np.clip(value, self.lower, self.upper, out=value)
        np.copyto(value, self.lower, where=q <= low)
        np.copyto(value, self.upper, where=q >= 1.0 - high)
        return value

    def interval(self, level: float = 0.9) -> tuple[FloatArray, FloatArray]:
        """Central interval holding probability ``level`` [units]."""
        if isinstance(level, np.ndarray) and level.ndim == 0:
            level = level.item()
        if not is_real(level) or not 0 < level < 1:
            raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
        tail = (1 - level) / 2
        return self.quantile(tail), self.quantile(1 - tail)

    def probability_between(self, lo: ArrayLike, hi: ArrayLike) -> FloatArray:
        """``P(lo <= Y <= hi)`` per point, counting a bound's mass when it is included."""
        lo_arr = np.broadcast_to(np.asarray(lo, dtype=np.float64), self.loc.shape)
        hi_arr = np.broadcast_to(np.asarray(hi, dtype=np.float64), self.loc.shape)
        mass_at_lo = np.where(lo_arr == self.lower, self.mass_at_lower, 0.0)
        mass_at_lo = np.where(lo_arr == self.upper, self.mass_at_upper, mass_at_lo)
        below = np.where(lo_arr <= self.lower, 0.0, self.cdf(lo_arr) - mass_at_lo)
        return np.asarray(np.maximum(self.cdf(hi_arr) - below, 0.0), dtype=np.float64)

    def clipped(self, lower: float, upper: float) -> CensoredNormal:
        """The distribution of ``Y`` clipped to ``[lower, upper]`` (a derating, a stop).

        The new bounds' masses are the probabilities of ``Y`` at or beyond them; between
        them the density is unchanged. Bounds outside the current ones change nothing.
        """
        if not lower <= upper:
            raise ValueError(f"bounds: expected lower <= upper, got [{lower}, {upper}]")
        new_lower = min(max(lower, self.lower), self.upper)
        new_upper = max(min(upper, self.upper), new_lower)
        if not self.is_hurdle:
            return self.replace(lower=new_lower, upper=new_upper)
        if new_upper == new_lower:
            # Everything sits on one value: all of the mass on the (single) bound.
            at = np.ones_like(self.loc)
            return self.replace(
                lower=new_lower,
                upper=new_upper,
                lower_mass=at,
                upper_mass=np.zeros_like(at),
            )
        at_lower = self.cdf(np.full_like(self.loc, new_lower))
        at_upper = np.where(
            new_upper < self.upper,
            1.0 - self.cdf(np.full_like(self.loc, new_upper)),
            self.mass_at_upper,
        )
        return self.replace(
            lower=new_lower, upper=new_upper, lower_mass=at_lower, upper_mass=at_upper
        )

    # -- sampling and scores -------------------------------------------------------------
    def sample(self, n_samples: int, seed: int | np.random.Generator | None = None) -> FloatArray:
        """Joint sample paths, shape ``(n_samples, n_points)`` [units].

        The shared factor is drawn once per path, so points within a path are correlated
        exactly as the emulator's parameter uncertainty implies. With ``times`` and a
        ``correlation``, the independent noise of a path is correlated in time as the
        correlation says; without, it is independent between points. With given bound
        masses each latent draw is mapped through its probability to this
        distribution's quantile (a Gaussian copula: marginals exact, dependence that of
        the latent paths).
        """
        noise, shared = self.standard_draws(n_samples, seed)
        return self.paths_from(noise, shared)

    def standard_draws(
        self,
        n_samples: int,
        seed: int | np.random.Generator | None = None,
        *,
        on_block: Callable[[int], None] | None = None,
    ) -> tuple[FloatArray, FloatArray | None]:
        """The standard normal draws :meth:`sample` maps to paths: the noise,
        ``(n_samples, n_points)`` (correlated in time as ``correlation`` says, if given),
        and the shared factors, ``(n_samples, k)`` or ``None`` without a factor.

        Distributions with equal times, correlation and number of factors take the
        same draws from the same seed: mapping one set through each
        (:meth:`paths_from`) is sampling them with common random numbers, as
        :func:`~twinweave.core.compare` does. ``on_block`` is told the number of points
        drawn after each block of them.
        """
        check_count(n_samples, "n_samples", minimum=0)
        rng = np.random.default_rng(seed)
        n = len(self)
        if self.correlation is None or self.times is None:
            noise = rng.standard_normal((n_samples, n))
            if on_block is not None:
                on_block(n)
        else:
            noise = self.correlation.sample(self.times, n_samples, rng, on_block=on_block)
        factor = self.factor
        shared = None if factor is None else rng.standard_normal((n_samples, factor.shape[1]))
        return noise, shared

    def paths_from(self, noise: FloatArray, shared: FloatArray | None) -> FloatArray:
        """Sample paths from :meth:`standard_draws`' draws (or rows of them: each path
        uses its own rows only), computed in ``noise``, which is overwritten [units]."""
        factor = self.factor
        if noise.ndim != 2 or noise.shape[1] != len(self):
            raise ValueError(f"noise: expected shape (n_samples, {len(self)}), got {noise.shape}")
        if (factor is None) != (shared is None) or (
            shared is not None
            and factor is not None
            and shared.shape != (noise.shape[0], factor.shape[1])
        ):
            expected = None if factor is None else (noise.shape[0], factor.shape[1])
            got = None if shared is None else shared.shape
            raise ValueError(f"shared: expected draws of shape {expected}, got {got}")
        # In place, and the copula below a block of paths at a time: a year of 10-minute
        # points times 1,000 paths is 400 MB per array, and whole-array temporaries
        # took a what-if over a year to 3.5 GB. The values are the same.
        latent = noise
        latent *= np.sqrt(self.noise_var)[None, :]
        latent += self.loc[None, :]
        if factor is not None and shared is not None:
            latent += shared @ factor.T
        if not self.is_hurdle:
            return np.asarray(np.clip(latent, self.lower, self.upper, out=latent), dtype=np.float64)
        scale = np.maximum(self.latent_std, 1e-300)
        for start in range(0, latent.shape[0], _COPULA_ROWS):
            block = latent[start : start + _COPULA_ROWS]
            u = _norm_cdf((block - self.loc[None, :]) / scale)
            block[...] = self._inverse_cdf(np.clip(u, 1e-300, 1.0 - 1e-16))
        return np.asarray(latent, dtype=np.float64)

    def _observed(self, y: ArrayLike) -> FloatArray:
        """``y`` as one value per point (a single value for all of them broadcast)."""
        y_arr = np.asarray(y, dtype=np.float64)
        if y_arr.size not in (1, len(self)) or y_arr.ndim > 1:
            raise ValueError(
                f"y: expected {len(self)} values (one per point) or one, got shape {y_arr.shape}"
            )
        return np.broadcast_to(y_arr.reshape(-1) if y_arr.ndim else y_arr, self.loc.shape)

    def log_prob(self, y: ArrayLike) -> FloatArray:
        """Log density at ``y``; at a bound, the log of the probability mass there."""
        y_arr = self._observed(y)
        a, b, s = self._standardised_bounds()
        z = (y_arr - self.loc) / s
        density = -0.5 * z * z - _LOG_SQRT_2PI - np.log(s)
        with np.errstate(divide="ignore"):
            if self.is_hurdle:
                density = density + np.log(self._interior_scale())
                at_lower, at_upper = np.log(self.mass_at_lower), np.log(self.mass_at_upper)
            else:
                at_lower, at_upper = _norm_logcdf(a), _norm_logcdf(-b)
        out = np.where(y_arr <= self.lower, at_lower, density)
        out = np.where(y_arr >= self.upper, at_upper, out)
        if self.lower == self.upper:
            # One value only (a stop): the lower and the upper mass are both on it.
            out = np.where(y_arr == self.lower, 0.0, out)
        outside = (y_arr < self.lower) | (y_arr > self.upper)
        return np.asarray(np.where(outside, -np.inf, out), dtype=np.float64)

    def cdf(self, y: ArrayLike) -> FloatArray:
        """Cumulative probability at ``y``."""
        y_arr = self._observed(y)
        z = (y_arr - self.loc) / np.maximum(self.latent_std, 1e-300)
        return self._cdf_at(y_arr, z)

    def sf(self, y: ArrayLike) -> FloatArray:
        """Survival probability ``P(Y > y)``, computed in the upper tail (no ``1 - cdf``
        rounding for values far above the mean)."""
        y_arr = self._observed(y)
        _, b, s = self._standardised_bounds()
        z = (y_arr - self.loc) / s
        if self.is_hurdle:
            above = self.mass_at_upper + self._interior_scale() * _norm_between(z, b)
        else:
            above = _norm_cdf(-z)
        above = np.where(y_arr < self.lower, 1.0, np.minimum(above, 1.0))
        return np.asarray(np.where(y_arr >= self.upper, 0.0, above), dtype=np.float64)

    def _cdf_at(self, y: FloatArray, z: FloatArray, *, per_row: bool = False) -> FloatArray:
        """The CDF at values ``y`` whose latent standard scores are ``z``: one per point,
        or with ``per_row`` a grid of shape ``(n_points, m)``, a row per point."""
        if self.is_hurdle:
            a, _, _ = self._standardised_bounds()
            low, scale = self.mass_at_lower, self._interior_scale()
            if per_row:
                a, low, scale = a[:, None], low[:, None], scale[:, None]
            c = low + scale * _norm_between(a, z)
        else:
            c = _norm_cdf(z)
        c = np.where(y < self.lower, 0.0, c)
        return np.asarray(np.where(y >= self.upper, 1.0, np.minimum(c, 1.0)), dtype=np.float64)

    def crps(self, y: ArrayLike, n_nodes: int = 64) -> FloatArray:
        """Continuous ranked probability score at ``y`` [units]; lower is better.

        ``CRPS(F, y) = integral of (F(z) - 1{y <= z})^2 dz``; the integrand is zero outside
        the bounds and the span where the Gaussian has mass, so the integral is taken by
        Gauss-Legendre quadrature over ``[lo, y]`` and ``[y, hi]`` with ``lo``/``hi`` the
        bounds or ``loc -/+ 9 std``, whichever is tighter; with given bound masses the
        flat stretches between a bound and that span are added exactly.
        """
        y_arr = self._observed(y)
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
            standard = (z - self.loc[:, None]) / np.maximum(s, 1e-300)[:, None]
            f = self._cdf_at(z, standard, per_row=True)
            total += half * ((f - indicator) ** 2 @ weights)
        if self.is_hurdle:
            # Beyond the Gaussian's span the CDF is flat at a bound's mass, which a
            # hurdle makes large: those stretches add their length times the square.
            if np.isfinite(self.lower):
                total += self.mass_at_lower**2 * (lo - self.lower)
            if np.isfinite(self.upper):
                total += self.mass_at_upper**2 * (self.upper - hi)
        return np.asarray(total, dtype=np.float64)


def _norm_between(lo: FloatArray, hi: FloatArray) -> FloatArray:
    """``Phi(hi) - Phi(lo)``, from the upper tail where both lie above zero (no
    cancellation there)."""
    lo, hi = np.broadcast_arrays(lo, hi)
    out = np.asarray(_norm_cdf(hi) - _norm_cdf(lo), dtype=np.float64)
    upper_tail = lo > 0.0
    if upper_tail.any():
        out[upper_tail] = _norm_cdf(-lo[upper_tail]) - _norm_cdf(-hi[upper_tail])
    return np.asarray(np.maximum(out, 0.0), dtype=np.float64)


def _checked_mass(
    name: str, mass: ArrayLike | None, bound: float, shape: tuple[int, ...]
) -> FloatArray | None:
    if mass is None:
        return None
    values = np.broadcast_to(np.asarray(mass, dtype=np.float64), shape).copy()
    bad = ~((values >= 0.0) & (values <= 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: expected probabilities in [0, 1], got {values[row]!r}")
    if not np.isfinite(bound) and np.any(values > 0.0):
        raise ValueError(f"{name}: expected 0 at an infinite bound ({bound}), got a mass")
    return values
