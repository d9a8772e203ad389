"""Linear-Gaussian state-space models: Kalman filter, RTS smoother, EM for the noise.

The model, for time steps ``t = 1..n`` with a hidden state ``x_t`` of ``k`` values, known
control inputs ``u_t`` of ``c`` values and an observation ``y_t`` of ``p`` values::

    x_t = F x_{t-1} + B u_t + w_t,   w_t ~ N(0, Q)      (transition, process noise)
    y_t = H x_t + v_t,               v_t ~ N(0, R)      (observation, observation noise)
    x_0 ~ N(m_0, P_0)                                   (initial state, before y_1)

The filter is Kalman's (1960), doi:10.1115/1.3662552, with the covariance update in
Joseph's form so it stays symmetric and positive semi-definite; missing observations
(NaN) are skipped component by component, leaving the prediction step only, as in Durbin
and Koopman, *Time Series Analysis by State Space Methods*, 2nd ed., Oxford University
Press (2012), chapter 4. The smoother is that of Rauch, Tung and Striebel (1965), AIAA
Journal 3(8):1445-1450, doi:10.2514/3.3166; the lag-one smoothed covariance it also
returns is ``P_{t|n} J_{t-1}^T``. The noise covariances ``Q`` and ``R`` are estimated by
the EM algorithm of Shumway and Stoffer (1982), Journal of Time Series Analysis
3(4):253-264, doi:10.1111/j.1467-9892.1982.tb00349.x, with the modification for
partially missing observation vectors of Shumway and Stoffer, *Time Series Analysis and
Its Applications*, 4th ed. (2017), section 6.4.

The functional API (:func:`kalman_filter`, :func:`rts_smoother`, :func:`em_noise`) is
vectorised: arrays may carry leading batch dimensions of independent series, for example
observations of shape ``(n_series, n_time)``, and the model's matrices broadcast against
them; the only Python loop is over time. :class:`StateSpaceEmulator` wraps one series as
a twinweave emulator.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import reprlib
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twinweave.core import (
    CensoredNormal,
    Columns,
    ConvergenceWarning,
    DeferredFactor,
    State,
    column,
    time_seconds,
)
from twinweave.core._arguments import is_integer, is_real

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_LOG_2PI = float(np.log(2.0 * np.pi))
# Relative tolerance for symmetry and semi-definiteness of given covariance matrices.
_COV_RTOL = 1e-9


def _swap(a: FloatArray) -> FloatArray:
    return a.swapaxes(-1, -2)


def _matvec(a: FloatArray, x: FloatArray) -> FloatArray:
    return (a @ x[..., None])[..., 0]


def _symmetrise(a: FloatArray) -> FloatArray:
    # A 1 x 1 matrix is symmetric already; skipping it matters inside the time loop.
    if a.shape[-1] == 1:
        return a
    return 0.5 * (a + a.swapaxes(-1, -2))


def _floats(name: str, value: object) -> FloatArray:
    """``value`` as a float array; text or ragged lists are refused by ``name`` (numpy's
    own error names neither the argument nor the value)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name}: expected numbers in an array of regular shape, got "
            f"{reprlib.repr(value)} ({error})"
        ) from None


def _as_matrix(name: str, value: ArrayLike) -> FloatArray:
    array = _floats(name, value)
    if array.ndim < 2:
        array = np.atleast_2d(array)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values, got {array.tolist()}")
    return array


def _n_states(arrays: dict[str, FloatArray]) -> int:
    """The number of states, the size most of the arrays' last axes agree on; the first
    array that disagrees is named (taking the transition's size blamed the others)."""
    sizes = {name: int(array.shape[-1]) for name, array in arrays.items() if array.ndim}
    k = Counter(sizes.values()).most_common(1)[0][0]
    for name, size in sizes.items():
        if size != k:
            agree = [other for other, s in sizes.items() if s == k]
            raise ValueError(
                f"{name}: expected {k} state{'s' * (k != 1)}, as {', '.join(agree)} have, "
                f"got {size} in its last axis (shape {arrays[name].shape})"
            )
    return k


def _check_shape(name: str, array: FloatArray, expected: tuple[int, ...]) -> None:
    if array.shape[array.ndim - len(expected) :] != expected or array.ndim < len(expected):
        dims = ", ".join(str(d) for d in expected)
        raise ValueError(
            f"{name}: expected shape (..., {dims}) (leading dimensions for a batch of "
            f"series), got {array.shape}"
        )


def _check_covariance(name: str, array: FloatArray, *, definite: bool) -> None:
    scale = max(float(np.max(np.abs(array))), 1e-300)
    if not np.allclose(array, _swap(array), rtol=0.0, atol=_COV_RTOL * scale):
        raise ValueError(f"{name}: expected a symmetric matrix, got {array.tolist()}")
    # A variance below zero is refused however small beside the others: states in
    # different units (m^3 beside m^3/day) make a tolerance scaled by the largest
    # entry pass a negative one.
    diagonal = np.diagonal(array, axis1=-2, axis2=-1)
    if np.any(diagonal < 0.0):
        raise ValueError(
            f"{name}: expected non-negative variances on the diagonal, got "
            f"{float(diagonal[diagonal < 0.0][0]):g} in {array.tolist()}"
        )
    smallest = float(np.min(np.linalg.eigvalsh(_symmetrise(array))))
    if definite and smallest <= 0.0:
        raise ValueError(
            f"{name}: expected a positive definite matrix, got smallest eigenvalue "
            f"{smallest:g} in {array.tolist()}"
        )
    if smallest < -_COV_RTOL * scale:
        raise ValueError(
            f"{name}: expected a positive semi-definite matrix, got smallest eigenvalue "
            f"{smallest:g} in {array.tolist()}"
        )


@dataclass(frozen=True, eq=False)
class StateSpaceModel:
    """The matrices of a linear-Gaussian state-space model (see the module docstring).

    Each matrix may carry leading batch dimensions, which broadcast against those of the
    observations (one model per series, or one shared by all).

    Parameters
    ----------
    transition
        ``F``, shape ``(k, k)``.
    observation
        ``H``, shape ``(p, k)``; a vector of length ``k`` means ``p = 1``.
    process_noise
        ``Q``, symmetric positive semi-definite, shape ``(k, k)`` [state units^2].
    observation_noise
        ``R``, symmetric positive definite, shape ``(p, p)`` [observation units^2].
    initial_mean
        ``m_0``, mean of the state one step before the first observation, shape ``(k,)``.
    initial_cov
        ``P_0``, its covariance, shape ``(k, k)``; large for a vague start.
    control_matrix
        ``B``, shape ``(k, c)``, or ``None`` for a model without control inputs.

    Raises
    ------
    ValueError
        Naming the matrix, its value or shape, and what was expected.
    """

    transition: FloatArray
    observation: FloatArray
    process_noise: FloatArray
    observation_noise: FloatArray
    initial_mean: FloatArray
    initial_cov: FloatArray
    control_matrix: FloatArray | None = None

    def __init__(
        self,
        *,
        transition: ArrayLike,
        observation: ArrayLike,
        process_noise: ArrayLike,
        observation_noise: ArrayLike,
        initial_mean: ArrayLike,
        initial_cov: ArrayLike,
        control_matrix: ArrayLike | None = None,
    ) -> None:
        f = _as_matrix("transition", transition)
        h = _as_matrix("observation", observation)
        q = _as_matrix("process_noise", process_noise)
        m0 = np.atleast_1d(_floats("initial_mean", initial_mean))
        p0 = _as_matrix("initial_cov", initial_cov)
        k = _n_states(
            {"transition": f, "observation": h, "process_noise": q, "initial_mean": m0,
             "initial_cov": p0}
        )  # fmt: skip
        _check_shape("transition", f, (k, k))
        _check_shape("observation", h, (h.shape[-2], k))
        p = h.shape[-2]
        _check_shape("process_noise", q, (k, k))
        _check_covariance("process_noise", q, definite=False)
        r = _as_matrix("observation_noise", observation_noise)
        _check_shape("observation_noise", r, (p, p))
        _check_covariance("observation_noise", r, definite=True)
        _check_shape("initial_mean", m0, (k,))
        if not np.all(np.isfinite(m0)):
            raise ValueError(f"initial_mean: expected finite values, got {m0.tolist()}")
        _check_shape("initial_cov", p0, (k, k))
        _check_covariance("initial_cov", p0, definite=False)
        b = None
        if control_matrix is not None:
            b = _as_matrix("control_matrix", control_matrix)
            _check_shape("control_matrix", b, (k, b.shape[-1]))
        for name, value in (
            ("transition", f),
            ("observation", h),
            ("process_noise", q),
            ("observation_noise", r),
            ("initial_mean", m0),
            ("initial_cov", p0),
            ("control_matrix", b),
        ):
            object.__setattr__(self, name, value)

    @property
    def n_state(self) -> int:
        """Dimension ``k`` of the hidden state."""
        return int(self.transition.shape[-1])

    @property
    def n_obs(self) -> int:
        """Dimension ``p`` of an observation."""
        return int(self.observation.shape[-2])

    @property
    def n_controls(self) -> int:
        """Number ``c`` of control inputs (0 without a control matrix)."""
        return 0 if self.control_matrix is None else int(self.control_matrix.shape[-1])

    def replace(self, **changes: ArrayLike | None) -> StateSpaceModel:
        """A copy with some matrices replaced (validated like the constructor)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def _with(self, **changes: FloatArray) -> StateSpaceModel:
        """A copy with matrices replaced by ones already known to be valid.

        Used inside the filter loop and EM, where the replacements come from the
        algorithms themselves and re-validating each step would cost more than the step.
        """
        copy = object.__new__(StateSpaceModel)
        for field in dataclasses.fields(self):
            object.__setattr__(copy, field.name, changes.get(field.name, getattr(self, field.name)))
        return copy


@dataclass(frozen=True, eq=False)
class FilterResult:
    """Output of :func:`kalman_filter`; ``...`` stands for the batch dimensions.

    Attributes
    ----------
    predicted_mean, predicted_cov
        ``x_{t|t-1}`` and its covariance, shapes ``(..., n_time, k)``, ``(..., n_time, k, k)``.
    filtered_mean, filtered_cov
        ``x_{t|t}`` and its covariance, same shapes.
    log_likelihood
        ``log p(y_1..y_n)`` summed over observed components, shape ``(...)``.
    n_observed
        Number of observed (non-missing) components, shape ``(...)``.
    """

    predicted_mean: FloatArray
    predicted_cov: FloatArray
    filtered_mean: FloatArray
    filtered_cov: FloatArray
    log_likelihood: FloatArray
    n_observed: FloatArray


@dataclass(frozen=True, eq=False)
class SmootherResult:
    """Output of :func:`rts_smoother`; ``...`` stands for the batch dimensions.

    Attributes
    ----------
    smoothed_mean, smoothed_cov
        ``x_{t|n}`` and its covariance, shapes ``(..., n_time, k)``, ``(..., n_time, k, k)``.
    lag_one_cov
        ``Cov(x_t, x_{t-1} | y_1..y_n)``, shape ``(..., n_time, k, k)``; the first entry
        pairs ``x_1`` with the initial state ``x_0``.
    initial_mean, initial_cov
        The smoothed initial state ``x_{0|n}`` and its covariance.
    """

    smoothed_mean: FloatArray
    smoothed_cov: FloatArray
    lag_one_cov: FloatArray
    initial_mean: FloatArray
    initial_cov: FloatArray


@dataclass(frozen=True, eq=False)
class EMResult:
    """Output of :func:`em_noise`.

    Attributes
    ----------
    model
        The model with the estimated ``process_noise`` and ``observation_noise``.
    log_likelihood
        Log-likelihood at the start of each SQUAREM cycle (and of each plain EM step
        that a budget too small for a cycle leaves), and of the result, shape
        ``(n_cycles + n_plain_steps + 1, ...)``; the last entry is that of ``model``. Where
        the likelihood has a maximum, it never decreases by more than rounding (see
        :class:`StateSpaceEmulator`'s ``initial_cov`` on vague priors). Where the model
        can follow the readings without noise (a local level's readings that do not
        vary, a stuck sensor; an exact straight line for a trend), the likelihood grows
        without bound as the variances go to zero and this does not hold: in rounding at
        variances near 1e-30 it falls by thousands of nats, and EM does not converge
        (``estimate_noise`` then says so).
    converged
        Whether the relative change fell below the tolerance for every series.
    n_iterations
        Number of M-steps taken (three per cycle, two where no series keeps the
        cycle's extrapolation).
    """

    model: StateSpaceModel
    log_likelihood: FloatArray
    converged: bool
    n_iterations: int


# -- array preparation -----------------------------------------------------------------
def _series(name: str, values: ArrayLike, width: int, width_name: str) -> FloatArray:
    """``values`` as ``(..., n_time, width)``; with ``width == 1`` the last axis is absent."""
    array = _floats(name, values)
    if width == 1:
        if array.ndim >= 2 and array.shape[-1] == 1 and array.shape[-2] > 1:
            # By the layout, n series of one step each; far more often one series as a
            # column (a DataFrame's to_numpy()), silently read as n unrelated series.
            n = array.shape[-2]
            raise ValueError(
                f"{name}: expected shape (n_time,) or (n_series, n_time) for {width_name} = 1 "
                f"(the last axis left out), got {array.shape}, which would be {n} series of "
                f"one step each: for one series of {n} steps pass {name}.ravel()"
            )
        array = array[..., None]
    if array.ndim < 2 or array.shape[-1] != width:
        layout = "(n_time,) or (n_series, n_time)" if width == 1 else f"(..., n_time, {width})"
        raise ValueError(
            f"{name}: expected shape {layout} for {width_name} = {width}, got {np.shape(values)}"
        )
    return array


def _controls(model: StateSpaceModel, controls: ArrayLike | None, n_time: int) -> FloatArray:
    """Control inputs as ``(..., n_time, c)``; zero-width when the model has none."""
    if model.control_matrix is None:
        if controls is not None:
            raise ValueError(
                "controls: the model has no control_matrix, so expected None, got an array"
            )
        return np.zeros((n_time, 0))
    if controls is None:
        raise ValueError(
            f"controls: the model has a control_matrix with {model.n_controls} columns, "
            "expected control inputs, got None"
        )
    shape = np.shape(controls)
    if model.n_controls == 1 and len(shape) >= 2 and shape[-2] == n_time != shape[-1] != 1:
        # By the layout, series of shape[-1] steps; with n_time rows, it is columns.
        raise ValueError(
            f"controls: expected one column (the control_matrix has 1; the column axis "
            f"left out: shape (..., {n_time})), got shape {shape} with {shape[-1]} columns"
        )
    u = _series("controls", controls, model.n_controls, "n_controls")
    if u.shape[-2] != n_time:
        raise ValueError(
            f"controls: expected {n_time} time steps (as the observations), got {u.shape[-2]}"
        )
    if not np.all(np.isfinite(u)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(u))[0])
        raise ValueError(f"controls: expected finite values, got {u[index]} at index {index}")
    return u


def _model_batch_shapes(model: StateSpaceModel) -> list[tuple[int, ...]]:
    """The batch dimensions of each of the model's matrices."""
    shapes = [
        model.transition.shape[:-2],
        model.observation.shape[:-2],
        model.process_noise.shape[:-2],
        model.observation_noise.shape[:-2],
        model.initial_mean.shape[:-1],
        model.initial_cov.shape[:-2],
    ]
    if model.control_matrix is not None:
        shapes.append(model.control_matrix.shape[:-2])
    return shapes


def _batch_shape(model: StateSpaceModel, y: FloatArray, u: FloatArray) -> tuple[int, ...]:
    shapes = [y.shape[:-2], u.shape[:-2], *_model_batch_shapes(model)]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(
            f"batch dimensions: expected shapes that broadcast, got observations "
            f"{y.shape[:-2]}, controls {u.shape[:-2]} and model matrices "
            f"{[tuple(s) for s in shapes[2:]]}"
        ) from None


# -- the filter -----------------------------------------------------------------------------
def _condition(
    mean: FloatArray,
    cov: FloatArray,
    h: FloatArray,
    r: FloatArray,
    innovation: FloatArray,
    n_observed: FloatArray | float,
    eye_k: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Kalman update of ``(mean, cov)`` on ``innovation = y - H mean``; also the log-lik."""
    hp = h @ cov
    s = hp @ h.swapaxes(-1, -2) + r
    if s.shape[-1] == 1:
        # One observed variable: the innovation variance is a scalar, no solve needed.
        gain = hp.swapaxes(-1, -2) / s
        variance = s[..., 0, 0]
        mean = mean + gain[..., 0] * innovation
        quadratic = innovation[..., 0] ** 2 / variance
        log_det = np.log(variance)
    else:
        solved = np.linalg.solve(s, np.concatenate([hp, innovation[..., None]], axis=-1))
        gain = solved[..., :-1].swapaxes(-1, -2)
        mean = mean + _matvec(gain, innovation)
        quadratic = np.einsum("...i,...i->...", innovation, solved[..., -1])
        log_det = np.linalg.slogdet(s)[1]
    # Joseph's form keeps the covariance symmetric positive semi-definite.
    i_kh = eye_k - gain @ h
    cov = _symmetrise(i_kh @ cov @ i_kh.swapaxes(-1, -2) + gain @ r @ gain.swapaxes(-1, -2))
    log_lik = -0.5 * (n_observed * _LOG_2PI + log_det + quadratic)
    return mean, cov, np.asarray(log_lik, dtype=np.float64)


def _over_time(matrix: FloatArray) -> FloatArray:
    """A matrix ``(..., a, b)`` broadcast over the time axis of ``(..., n, b)`` arrays."""
    return matrix[..., None, :, :]


def _linear_recursion(a: FloatArray, start: FloatArray, drive: FloatArray) -> FloatArray:
    """``x_t = a x_{t-1} + drive_t`` for ``t = 1..m`` from ``x_0 = start``: the states
    ``x_1..x_m`` (``drive`` is ``(..., m, k)``) in ``log2(m)`` vectorised passes, each
    adding the sums over twice as many earlier steps (the prefix scan of Hillis and
    Steele 1986, Communications of the ACM 29(12):1170-1183)."""
    total = drive.copy()
    total[..., 0, :] += _matvec(a, start)
    power, shift = a, 1
    while shift < total.shape[-2]:
        total[..., shift:, :] = total[..., shift:, :] + _matvec(
            _over_time(power), total[..., :-shift, :]
        )
        power, shift = power @ power, 2 * shift
    return total


@dataclass(frozen=True)
class _SteadyRun:
    means: tuple[FloatArray, FloatArray]  # predicted, filtered: (..., m, k) each
    covs: tuple[FloatArray, FloatArray]  # predicted, filtered: (..., k, k), every step
    log_likelihood: FloatArray


def _contracts(matrix: FloatArray) -> bool:
    """Whether a linear recursion by ``matrix`` (every series') does not grow: powers of
    a matrix with a larger eigenvalue overflow in :func:`_linear_recursion`."""
    return bool(np.all(np.abs(np.linalg.eigvals(matrix)) <= 1.0 + 1e-9))


def _steady_run(
    model: StateSpaceModel, y: FloatArray, u: FloatArray, mean: FloatArray, cov: FloatArray
) -> _SteadyRun | None:
    """A run of complete steps from the filtered ``(mean, cov)`` before it, with the
    covariance held at the value one step from ``cov``: then the filtered means follow
    ``m_t = (I - K H) F m_{t-1} + (I - K H) B u_t + K y_t``, a linear recursion.
    ``None`` where that recursion grows (a state neither observed nor noisy whose
    transition grows it): the exact filter handles it."""
    f, h, r, b = model.transition, model.observation, model.observation_noise, model.control_matrix
    predicted_cov = _symmetrise(f @ cov @ _swap(f) + model.process_noise)
    hp = h @ predicted_cov
    s = hp @ _swap(h) + r
    gain = np.asarray(np.linalg.solve(s, hp).swapaxes(-1, -2), dtype=np.float64)
    i_kh = np.eye(model.n_state) - gain @ h
    filtered_cov = _symmetrise(i_kh @ predicted_cov @ _swap(i_kh) + gain @ r @ _swap(gain))
    if not _contracts(i_kh @ f):
        return None
    drive = _matvec(_over_time(gain), y)
    if b is not None:
        drive = drive + _matvec(_over_time(i_kh @ b), u)
    filtered_mean = _linear_recursion(i_kh @ f, mean, drive)
    before = np.concatenate([mean[..., None, :], filtered_mean[..., :-1, :]], axis=-2)
    predicted_mean = _matvec(_over_time(f), before)
    if b is not None:
        predicted_mean = predicted_mean + _matvec(_over_time(b), u)
    innovation = y - _matvec(_over_time(h), predicted_mean)
    solved = np.linalg.solve(_over_time(s), innovation[..., None])[..., 0]
    quadratic = np.einsum("...ti,...ti->...", innovation, solved)
    n_steps, p = y.shape[-2], y.shape[-1]
    log_lik = -0.5 * (n_steps * (p * _LOG_2PI + np.linalg.slogdet(s)[1]) + quadratic)
    return _SteadyRun(
        (predicted_mean, filtered_mean),
        (predicted_cov, filtered_cov),
        np.asarray(log_lik, dtype=np.float64),
    )


def _test_settled_at(steps_into_run: int) -> bool:
    """Whether to test if a covariance has settled this many steps into a run: at every
    one of the first 64 (where most settle), then every 16th, since a test costs about
    half an exact step and where nothing settles (a variance EM drives to zero) it
    never pays."""
    return steps_into_run < 64 or steps_into_run % 16 == 0


def _settled(current: FloatArray, previous: FloatArray, rtol: float) -> bool:
    """Whether a covariance recursion has stopped changing in every series: each entry
    ``(i, j)`` by at most ``rtol`` times ``sqrt(P_ii P_jj)`` of its own series, so a
    small state or series is not judged by a large one's scale."""
    sd = np.sqrt(np.maximum(np.diagonal(current, axis1=-2, axis2=-1), 0.0))
    scale = sd[..., :, None] * sd[..., None, :]
    return bool(np.all(np.abs(current - previous) <= rtol * scale))


def _run_filter(
    model: StateSpaceModel, y: FloatArray, u: FloatArray, *, steady_rtol: float | None = None
) -> FilterResult:
    """The filter on prepared arrays ``y (..., n, p)`` and ``u (..., n, c)``.

    With ``steady_rtol``, once the predicted covariance changes by less than that
    (relative) between two complete steps, the rest of the run of complete steps takes
    it as the steady state (Anderson and Moore, *Optimal Filtering*, 1979, chapter 4):
    one gain, and the means as a linear recursion done in vectorised passes. EM uses it
    (the moments then differ from the exact filter's by about ``steady_rtol`` over the
    rate at which the covariance settles); assimilation never does, so a batch and the
    same readings streamed agree bit for bit.
    """
    batch = _batch_shape(model, y, u)
    n_time, k, p = y.shape[-2], model.n_state, model.n_obs
    y = np.broadcast_to(y, (*batch, n_time, p))
    u = np.broadcast_to(u, (*batch, n_time, u.shape[-1]))
    observed = np.isfinite(y)
    n_observed = observed.sum(axis=-1).astype(np.float64)
    # Whether step t is complete (or empty) in every series; decided per step, so a step
    # takes the same path whether it arrives alone or in a batch.
    other_axes = (*range(observed.ndim - 2), observed.ndim - 1)
    complete = np.asarray(observed.all(axis=other_axes), dtype=bool)
    empty = ~np.asarray(observed.any(axis=other_axes), dtype=bool)
    f, q, h, r, b = (
        model.transition,
        model.process_noise,
        model.observation,
        model.observation_noise,
        model.control_matrix,
    )
    eye_p = np.eye(p, dtype=bool)
    eye_k = np.eye(k)
    predicted_mean = np.empty((*batch, n_time, k))
    predicted_cov = np.empty((*batch, n_time, k, k))
    filtered_mean = np.empty((*batch, n_time, k))
    filtered_cov = np.empty((*batch, n_time, k, k))
    log_lik = np.zeros(batch)
    mean = np.broadcast_to(model.initial_mean, (*batch, k)).copy()
    cov = np.broadcast_to(model.initial_cov, (*batch, k, k)).copy()
    # The first step at or after each step that is not complete.
    breaks = np.flatnonzero(~complete)
    run_end = np.append(breaks, n_time)[np.searchsorted(breaks, np.arange(n_time))]
    run_begin = np.insert(breaks + 1, 0, 0)[np.searchsorted(breaks, np.arange(n_time), "right")]
    t, blocked_until = 0, 0
    while t < n_time:
        if (
            steady_rtol is not None
            and _test_settled_at(t - int(run_begin[t]))
            and t >= max(2, blocked_until)
            and complete[t - 2 : t + 1].all()
            and _settled(
                predicted_cov[..., t - 1, :, :], predicted_cov[..., t - 2, :, :], steady_rtol
            )
        ):
            end = int(run_end[t])
            run = _steady_run(model, y[..., t:end, :], u[..., t:end, :], mean, cov)
            if run is None:
                blocked_until = end  # not in this run: its held recursion would grow
                continue
            predicted_mean[..., t:end, :], filtered_mean[..., t:end, :] = run.means
            predicted_cov[..., t:end, :, :] = run.covs[0][..., None, :, :]
            filtered_cov[..., t:end, :, :] = run.covs[1][..., None, :, :]
            log_lik += run.log_likelihood
            mean, cov = run.means[1][..., -1, :], run.covs[1]
            t = end
            continue
        mean = _matvec(f, mean)
        if b is not None:
            mean = mean + _matvec(b, u[..., t, :])
        cov = _symmetrise(f @ cov @ f.swapaxes(-1, -2) + q)
        predicted_mean[..., t, :] = mean
        predicted_cov[..., t, :, :] = cov
        if complete[t]:
            innovation = y[..., t, :] - _matvec(h, mean)
            mean, cov, step = _condition(mean, cov, h, r, innovation, float(p), eye_k)
            log_lik += step
        elif not empty[t]:
            # Missing components get a zero row in H and an identity block in R: the
            # gain's columns for them vanish, so the update is the one on the observed
            # subvector (Durbin and Koopman 2012, chapter 4).
            seen = observed[..., t, :]
            both = seen[..., :, None] & seen[..., None, :]
            h_seen = np.where(seen[..., :, None], h, 0.0)
            r_seen = np.where(both, r, 0.0) + (eye_p & ~seen[..., :, None])
            innovation = np.where(seen, np.nan_to_num(y[..., t, :]) - _matvec(h_seen, mean), 0.0)
            mean, cov, step = _condition(
                mean, cov, h_seen, r_seen, innovation, n_observed[..., t], eye_k
            )
            log_lik += step
        filtered_mean[..., t, :] = mean
        filtered_cov[..., t, :, :] = cov
        t += 1
    return FilterResult(
        predicted_mean,
        predicted_cov,
        filtered_mean,
        filtered_cov,
        log_lik,
        n_observed.sum(axis=-1),
    )


def _prepare(
    model: StateSpaceModel, observations: ArrayLike, controls: ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    y = _series("observations", observations, model.n_obs, "n_obs")
    if np.any(np.isinf(y)):
        index = tuple(int(i) for i in np.argwhere(np.isinf(y))[0])
        raise ValueError(
            f"observations: expected finite values or NaN for missing, got {y[index]} "
            f"at index {index}"
        )
    return y, _controls(model, controls, y.shape[-2])


def kalman_filter(
    model: StateSpaceModel, observations: ArrayLike, *, controls: ArrayLike | None = None
) -> FilterResult:
    """Kalman filter over a batch of series.

    Parameters
    ----------
    model
        The state-space matrices.
    observations
        Shape ``(..., n_time, p)`` [observation units]; with ``p = 1`` the last axis is
        left out, so one series is ``(n_time,)`` and a batch ``(n_series, n_time)``. NaN
        marks a missing component: the filter only predicts through it.
    controls
        Control inputs ``u_t``, shape ``(..., n_time, c)`` (``(..., n_time)`` when
        ``c = 1``) [control units]; required exactly when the model has a control matrix.

    Returns
    -------
    FilterResult
        Predicted and filtered state moments per step, and the log-likelihood.

    Examples
    --------
    A local level observed in noise, three series at once:

    >>> model = StateSpaceModel(transition=1.0, observation=1.0, process_noise=0.1,
    ...                         observation_noise=1.0, initial_mean=0.0, initial_cov=1e6)
    >>> y = np.random.default_rng(0).normal(5.0, 1.0, (3, 200))
    >>> result = kalman_filter(model, y)
    >>> result.filtered_mean.shape, result.log_likelihood.shape
    ((3, 200, 1), (3,))
    """
    y, u = _prepare(model, observations, controls)
    return _run_filter(model, y, u)


def rts_smoother(model: StateSpaceModel, filtered: FilterResult) -> SmootherResult:
    """Rauch-Tung-Striebel smoother: state moments given all observations.

    Parameters
    ----------
    model
        The model ``filtered`` was computed with.
    filtered
        Output of :func:`kalman_filter`.

    Returns
    -------
    SmootherResult
        Smoothed means and covariances (never larger than the filtered ones), the lag-one
        covariances EM needs, and the smoothed initial state.

    Raises
    ------
    ValueError
        If ``filtered`` is not shaped as a filter result of ``model`` (another model's).
    """
    _check_filtered(model, filtered)
    return _smooth(model, filtered)


def _check_filtered(model: StateSpaceModel, filtered: FilterResult) -> None:
    """Refuse a filter result whose shapes are not ``model``'s: the smoother would fail
    deep in numpy, or for a batch that broadcasts, pair other series' matrices."""
    k = model.n_state
    means = filtered.filtered_mean.shape
    shapes = {
        name: getattr(filtered, name).shape
        for name in ("predicted_mean", "predicted_cov", "filtered_mean", "filtered_cov")
    }
    fits = (
        len(means) >= 2
        and means[-1] == k
        and shapes["predicted_mean"] == means
        and shapes["predicted_cov"] == shapes["filtered_cov"] == (*means, k)
    )
    batch = means[:-2]
    try:
        fits = fits and np.broadcast_shapes(batch, *_model_batch_shapes(model)) == batch
    except ValueError:
        fits = False
    if not fits:
        model_batches = sorted(set(_model_batch_shapes(model)))
        raise ValueError(
            f"filtered: expected a filter result of this model (a state of size {k}: "
            f"means (..., n_time, {k}), covariances (..., n_time, {k}, {k}), batch "
            f"dimensions that the model's {model_batches} broadcast to), got shapes "
            f"{shapes} (a result of another model?)"
        )


# A singular predicted covariance is put down to the prior where it is more than this
# many times the noise variances: float64 keeps about 16 digits, and the small
# eigenvalues are lost in the rounding of the large ones (precision suffers from about
# 1e12 already, as initial_cov's docstring says).
_VAGUE_PRIOR_RATIO = 1e14


def _singular_prediction(model: StateSpaceModel, cov_p: FloatArray) -> ValueError:
    """The error for a predicted covariance the smoother cannot invert, saying why."""
    eigenvalues = np.linalg.eigvalsh(cov_p)
    lowest, highest = eigenvalues[..., 0], eigenvalues[..., -1]
    singular = lowest <= highest * np.finfo(np.float64).eps
    step = int(np.argmax(singular.reshape(-1, cov_p.shape[-3]).any(axis=0)))
    prior = float(np.max(np.linalg.eigvalsh(model.initial_cov)))
    noise = np.concatenate(
        [
            np.diagonal(model.process_noise, axis1=-2, axis2=-1).ravel(),
            np.diagonal(model.observation_noise, axis1=-2, axis2=-1).ravel(),
        ]
    )
    positive = noise[noise > 0.0]
    noise_scale = float(np.min(positive)) if positive.size else 0.0
    where = (
        f"the predicted state covariance at step {step + 1} of {cov_p.shape[-3]} is "
        "singular in floating point"
    )
    if noise_scale > 0.0 and prior > _VAGUE_PRIOR_RATIO * noise_scale:
        return ValueError(
            f"initial_cov: {where}: the prior variance {prior:.3g} is "
            f"{prior / noise_scale:.1e} times the smallest noise variance "
            f"({noise_scale:.3g}); expected a prior on the data's scale, at most about 1e12 "
            "times the noise variances (beyond, precision is lost; readings in other units "
            "than the variances were chosen for need the variances rescaled too)"
        )
    return ValueError(
        f"process_noise: {where}; the RTS smoother needs it invertible: expected process "
        "noise on every state to which the transition carries no uncertainty"
    )


def _smooth(
    model: StateSpaceModel, filtered: FilterResult, *, steady_rtol: float | None = None
) -> SmootherResult:
    """:func:`rts_smoother`; with ``steady_rtol``, where the filter's covariances are the
    same from step to step and the smoothed covariance has settled (relative change
    below ``steady_rtol``), the covariance is held and the means are a linear recursion
    done in vectorised passes, as in :func:`_run_filter`."""
    f = model.transition
    mean_f, cov_f = filtered.filtered_mean, filtered.filtered_cov
    mean_p, cov_p = filtered.predicted_mean, filtered.predicted_cov
    n_time = mean_f.shape[-2]
    batch = mean_f.shape[:-2]
    k = model.n_state
    initial_mean = np.broadcast_to(model.initial_mean, (*batch, k)).copy()
    initial_cov = np.broadcast_to(model.initial_cov, (*batch, k, k)).copy()
    if n_time == 0:
        empty = np.empty((*batch, 0, k, k))
        return SmootherResult(mean_f.copy(), cov_f.copy(), empty, initial_mean, initial_cov)
    # x_{t-1} for t = 1..n, with x_0 the initial state.
    prev_mean = np.concatenate([initial_mean[..., None, :], mean_f[..., :-1, :]], axis=-2)
    prev_cov = np.concatenate([initial_cov[..., None, :, :], cov_f[..., :-1, :, :]], axis=-3)
    # The gains J_{t-1} = P_{t-1|t-1} F^T P_{t|t-1}^{-1} need only the filter's output:
    # all of them in one vectorised solve, leaving the recursion itself in the loop.
    try:
        gains = np.linalg.solve(cov_p, f[..., None, :, :] @ prev_cov).swapaxes(-1, -2)
    except np.linalg.LinAlgError:
        raise _singular_prediction(model, cov_p) from None
    mean_s = np.empty((*batch, n_time + 1, k))
    cov_s = np.empty((*batch, n_time + 1, k, k))
    mean_s[..., n_time, :] = mean_f[..., -1, :]
    cov_s[..., n_time, :, :] = cov_f[..., -1, :, :]
    # Steps whose covariances (so gains) equal the next step's, and for each step the
    # first of the run of such equal steps it ends.
    same = np.all(
        (prev_cov[..., 1:, :, :] == prev_cov[..., :-1, :, :])
        & (cov_p[..., 1:, :, :] == cov_p[..., :-1, :, :]),
        axis=(*range(len(batch)), -2, -1),
    )
    changes = np.flatnonzero(~same) + 1
    where = np.searchsorted(changes, np.arange(n_time), "right")
    run_start = np.insert(changes, 0, 0)[where]
    run_last = np.append(changes - 1, n_time - 1)[where]
    t, blocked_from = n_time - 1, n_time
    while t >= 0:
        gain = gains[..., t, :, :]
        settled = (
            steady_rtol is not None
            and _test_settled_at(int(run_last[t]) - t)
            and t + 2 < n_time
            and t < blocked_from
            and run_start[t + 2] <= t
            and _settled(cov_s[..., t + 1, :, :], cov_s[..., t + 2, :, :], steady_rtol)
        )
        if settled and not _contracts(gain):
            # Not in this run: its held recursion would grow.
            settled, blocked_from = False, int(run_start[t])
        cov_s[..., t, :, :] = _symmetrise(
            prev_cov[..., t, :, :]
            + gain @ (cov_s[..., t + 1, :, :] - cov_p[..., t, :, :]) @ gain.swapaxes(-1, -2)
        )
        if settled:
            # m_{s|n} = J m_{s+1|n} + (m_{s|s} - J m_{s+1|s}) back to the run's start.
            first = int(run_start[t])
            drive = prev_mean[..., first : t + 1, :] - _matvec(
                _over_time(gain), mean_p[..., first : t + 1, :]
            )
            backwards = _linear_recursion(gain, mean_s[..., t + 1, :], drive[..., ::-1, :])
            mean_s[..., first : t + 1, :] = backwards[..., ::-1, :]
            cov_s[..., first:t, :, :] = cov_s[..., t, None, :, :]
            t = first - 1
            continue
        mean_s[..., t, :] = prev_mean[..., t, :] + _matvec(
            gain, mean_s[..., t + 1, :] - mean_p[..., t, :]
        )
        t -= 1
    lag_one = cov_s[..., 1:, :, :] @ gains.swapaxes(-1, -2)
    return SmootherResult(
        mean_s[..., 1:, :],
        cov_s[..., 1:, :, :],
        np.asarray(lag_one, dtype=np.float64),
        mean_s[..., 0, :],
        cov_s[..., 0, :, :],
    )


# -- EM for the noise covariances ------------------------------------------------------
# EM's passes hold the filter's and smoother's covariances once no entry changes by more
# than this (relative to its series' variances) from one step to the next: each pass is
# then mostly vectorised, and the moments differ from the exact recursions' by about
# this over the rate at which the covariance settles (1e-12 where it settles over
# 1,500 steps; within 3e-13 on the Upper Snake reservoirs), far below EM's tolerance.
_EM_STEADY_RTOL = 1e-15


def _m_step_process_noise(
    model: StateSpaceModel, smoothed: SmootherResult, u: FloatArray
) -> FloatArray:
    f = model.transition[..., None, :, :]
    prev_mean = np.concatenate(
        [smoothed.initial_mean[..., None, :], smoothed.smoothed_mean[..., :-1, :]], axis=-2
    )
    prev_cov = np.concatenate(
        [smoothed.initial_cov[..., None, :, :], smoothed.smoothed_cov[..., :-1, :, :]], axis=-3
    )
    residual = smoothed.smoothed_mean - _matvec(f, prev_mean)
    if model.control_matrix is not None:
        residual = residual - _matvec(model.control_matrix[..., None, :, :], u)
    f_lag = f @ _swap(smoothed.lag_one_cov)
    expected = (
        residual[..., :, None] * residual[..., None, :]
        + smoothed.smoothed_cov
        - f_lag
        - _swap(f_lag)
        + f @ prev_cov @ _swap(f)
    )
    return _symmetrise(np.asarray(expected.mean(axis=-3), dtype=np.float64))


def _m_step_observation_noise(
    model: StateSpaceModel, smoothed: SmootherResult, y: FloatArray
) -> FloatArray:
    h = model.observation[..., None, :, :]
    r = model.observation_noise[..., None, :, :]
    observed = np.isfinite(y)
    both = observed[..., :, None] & observed[..., None, :]
    residual = np.where(observed, np.nan_to_num(y) - _matvec(h, smoothed.smoothed_mean), 0.0)
    # E[e e^T | y] for the observed components, zero elsewhere.
    expected = np.where(
        both,
        residual[..., :, None] * residual[..., None, :] + h @ smoothed.smoothed_cov @ _swap(h),
        0.0,
    )
    if not observed.all():
        # A missing component's error is predicted from the observed ones under the
        # current R (Shumway and Stoffer 2017, section 6.4): with W the inverse of R's
        # observed block embedded in zeros, E[eps eps^T | y] = R W E W R + R - R W R.
        eye = np.eye(y.shape[-1], dtype=bool)
        r_observed = np.where(both, r, 0.0) + np.where(eye & ~observed[..., :, None], 1.0, 0.0)
        w = np.where(both, np.linalg.inv(r_observed), 0.0)
        rw = r @ w
        expected = rw @ expected @ _swap(rw) + r - rw @ r
    # Steps with nothing observed carry no information about R; leave them out.
    informative = observed.any(axis=-1)
    count = informative.sum(axis=-1)
    total = np.einsum("...t,...tij->...ij", informative.astype(np.float64), expected)
    safe = np.maximum(count, 1)[..., None, None]
    estimate = np.where(count[..., None, None] > 0, total / safe, model.observation_noise)
    return _symmetrise(np.asarray(estimate, dtype=np.float64))


#: Noise variances below this share of the readings' scale (their variance or squared
#: mean) are taken for EM's collapse towards zero rather than an estimate.
_COLLAPSED = 1e-12


def _check_em_settings(n_iterations: object, tol: object) -> None:
    """The checks of EM's budget, shared by :func:`em_noise` and ``estimate_noise``."""
    if not is_integer(n_iterations):
        raise ValueError(f"n_iterations: expected a whole number, got {n_iterations!r}")
    if n_iterations < 0:
        raise ValueError(f"n_iterations: expected >= 0, got {n_iterations}")
    if not is_real(tol):
        raise ValueError(f"tol: expected a number >= 0, got {tol!r}")
    if not tol >= 0:
        raise ValueError(f"tol: expected >= 0, got {tol}")


def _n_noise_parameters(
    model: StateSpaceModel,
    *,
    diagonal: bool,
    estimate_process_noise: bool,
    estimate_observation_noise: bool,
) -> int:
    """How many variances and covariances EM estimates (per series)."""

    def free(size: int) -> int:
        return size if diagonal else size * (size + 1) // 2

    return free(model.n_state) * estimate_process_noise + free(model.n_obs) * (
        estimate_observation_noise
    )


def _check_history(name: str, y: FloatArray, n_parameters: int) -> None:
    """Refuse a history ``y (..., n, p)`` that EM can estimate no noise from, naming the
    series of a batch.

    - No readings: no likelihood to maximise (EM would average over no steps: NaN).
    - Fewer readings than the ``n_parameters`` it estimates: refused rather than warned
      about, since the likelihood is then flat along some combination of the variances
      and EM returns a point set by its start, which the caller would use as an estimate
      (a warning is lost once the fitted twin is passed on).

    Readings that do not vary are not refused here: whether the model can follow them
    without noise depends on the model (a local level can; a state driven by controls
    or decaying towards zero cannot), and one such series of a batch leaves the others
    fittable. ``estimate_noise`` names them where EM's variances collapse.
    """
    n_time = y.shape[-2]
    observed = np.isfinite(y)
    counts = observed.sum(axis=(-2, -1))
    fewest = np.unravel_index(int(np.argmin(counts)), counts.shape)
    n_readings = int(counts[fewest])
    series = tuple(int(i) for i in fewest)
    where = f" in series {series if len(series) > 1 else series[0]}" if series else ""
    if n_readings == 0:
        got = "an empty history" if n_time == 0 else f"{n_time} time steps, all missing (NaN)"
        raise ValueError(
            f"{name}: expected readings to estimate the noise from, got no readings{where} ({got})"
        )
    if n_readings < n_parameters:
        raise ValueError(
            f"{name}: expected at least {n_parameters} readings (one per noise parameter "
            f"estimated), got {n_readings}{where}"
        )


def em_noise(
    model: StateSpaceModel,
    observations: ArrayLike,
    *,
    controls: ArrayLike | None = None,
    n_iterations: int = 100,
    tol: float = 1e-10,
    diagonal: bool = False,
    estimate_process_noise: bool = True,
    estimate_observation_noise: bool = True,
) -> EMResult:
    """Maximum-likelihood ``Q`` and ``R`` by EM (Shumway and Stoffer 1982).

    Each iteration smooths the series with the current matrices (E-step) and sets ``Q``
    and ``R`` to the expected second moments of the process and observation errors
    (M-step). The iterations are accelerated by SQUAREM (Varadhan and Roland 2008): two
    EM steps, an extrapolation along them, and an EM step from there, kept only where
    it does not lower the likelihood. Plain EM creeps towards a variance of zero; on
    the Upper Snake reservoirs (docs/RESERVOIRS.md) the acceleration reaches in 300
    M-steps what 200 plain iterations fell short of by up to 7 nats. Every series of a
    batch gets its own estimates. Within a run of complete steps the filter's and the
    smoother's covariances settle to a steady state (Anderson and Moore 1979, chapter
    4); once they change by less than 1e-15 (relative) from step to step, each pass
    holds them and computes the means as a linear recursion in vectorised passes: on
    the Upper Snake reservoirs 6-26x faster, to the same maximum (where the likelihood
    is flat, as when a variance heads for zero, the two may stop at different points
    within the tolerance).

    Parameters
    ----------
    model
        Starting point; its transition, observation, control and initial-state matrices
        are kept fixed.
    observations, controls
        As for :func:`kalman_filter`.
    n_iterations
        Upper bound on the number of M-steps (three per accelerated cycle).
    tol
        Stop when every series' log-likelihood changes by less than ``tol`` times its
        magnitude over a cycle. Far from the answer EM can crawl with small, steady
        gains (1.6e-4 nats a cycle, 63 nats below the maximum, on a four-year reservoir
        record that 1e-8 called converged): hence the small default.
    diagonal
        Keep ``Q`` and ``R`` diagonal (the constrained M-step is the diagonal of the
        unconstrained one); use it when components' noises are independent, or when
        some state has no noise of its own: a variance that starts at zero stays zero.
    estimate_process_noise, estimate_observation_noise
        Set either to ``False`` to keep that matrix at its starting value (for example a
        sensor noise known from its data sheet).

    Returns
    -------
    EMResult
        The fitted model, the log-likelihood at the start of each cycle and the number
        of M-steps taken.

    Raises
    ------
    ValueError
        For a series with no readings or with fewer readings than the variances and
        covariances estimated, as well as for bad arguments; the message names the
        series.

    Examples
    --------
    A random walk with step variance 0.25 read with noise variance 4:

    >>> rng = np.random.default_rng(3)
    >>> level = np.cumsum(rng.normal(0.0, 0.5, 1000))
    >>> y = level + rng.normal(0.0, 2.0, 1000)
    >>> start = StateSpaceModel(transition=1.0, observation=1.0, process_noise=1.0,
    ...                         observation_noise=1.0, initial_mean=0.0, initial_cov=1e4)
    >>> fit = em_noise(start, y, tol=1e-6)
    >>> q, r = fit.model.process_noise[0, 0], fit.model.observation_noise[0, 0]
    >>> fit.converged, round(float(q), 1), round(float(r), 1)
    (True, 0.3, 3.7)
    """
    _check_em_settings(n_iterations, tol)
    y, u = _prepare(model, observations, controls)
    n_parameters = _n_noise_parameters(
        model,
        diagonal=diagonal,
        estimate_process_noise=estimate_process_noise,
        estimate_observation_noise=estimate_observation_noise,
    )
    _check_history("observations", y, n_parameters)
    return _run_em(
        model,
        y,
        u,
        n_iterations=n_iterations,
        tol=tol,
        diagonal=diagonal,
        estimate_process_noise=estimate_process_noise,
        estimate_observation_noise=estimate_observation_noise,
    )


def _diagonal_update(estimate: FloatArray, current: FloatArray) -> FloatArray:
    """The diagonal of ``estimate``, non-negative, with the current zeros kept exactly.

    A variance that is zero is a fixed point of EM (the smoothed states then satisfy
    the noiseless equation exactly); keeping it at zero stops rounding from turning it
    into a tiny, possibly negative, variance.
    """
    variances = np.maximum(np.diagonal(estimate, axis1=-2, axis2=-1), 0.0)
    variances = np.where(np.diagonal(current, axis1=-2, axis2=-1) == 0.0, 0.0, variances)
    return np.asarray(np.eye(estimate.shape[-1]) * variances[..., None, :], dtype=np.float64)


def _em_step(
    model: StateSpaceModel,
    filtered: FilterResult,
    y: FloatArray,
    u: FloatArray,
    *,
    diagonal: bool,
    estimate_process_noise: bool,
    estimate_observation_noise: bool,
) -> StateSpaceModel:
    """One EM iteration from ``model``, whose filter pass ``filtered`` is."""
    smoothed = _smooth(model, filtered, steady_rtol=_EM_STEADY_RTOL)
    q, r = model.process_noise, model.observation_noise
    if estimate_process_noise:
        q = _m_step_process_noise(model, smoothed, u)
    if estimate_observation_noise:
        r = _m_step_observation_noise(model, smoothed, y)
    if diagonal:
        q = _diagonal_update(q, model.process_noise)
        r = _diagonal_update(r, model.observation_noise)
    return model._with(process_noise=q, observation_noise=r)


def _noise_parameters(model: StateSpaceModel, batch: tuple[int, ...], diagonal: bool) -> FloatArray:
    """``Q`` and ``R`` as one vector per series, where SQUAREM extrapolates: log
    variances when diagonal (a variance heading for zero stays positive; zeros are kept
    as -inf and restored as zeros), the entries otherwise."""
    parts = []
    for matrix in (model.process_noise, model.observation_noise):
        values = np.broadcast_to(matrix, (*batch, *matrix.shape[-2:]))
        if diagonal:
            with np.errstate(divide="ignore"):
                parts.append(np.log(np.diagonal(values, axis1=-2, axis2=-1)))
        else:
            parts.append(values.reshape(*batch, -1))
    return np.concatenate(parts, axis=-1)


def _with_noise_parameters(
    model: StateSpaceModel, theta: FloatArray, diagonal: bool
) -> StateSpaceModel:
    k, p = model.n_state, model.n_obs
    if diagonal:
        variances = np.exp(theta)
        q = np.eye(k) * variances[..., None, :k]
        r = np.eye(p) * variances[..., None, k:]
    else:
        q = theta[..., : k * k].reshape(*theta.shape[:-1], k, k)
        r = theta[..., k * k :].reshape(*theta.shape[:-1], p, p)
    return model._with(process_noise=q, observation_noise=r)


def _valid_noise(model: StateSpaceModel) -> NDArray[np.bool_]:
    """Per series: ``Q`` positive semi-definite and ``R`` positive definite."""
    q_low = np.linalg.eigvalsh(model.process_noise)[..., 0]
    r_low = np.linalg.eigvalsh(model.observation_noise)[..., 0]
    scale = np.abs(np.diagonal(model.process_noise, axis1=-2, axis2=-1)).max(axis=-1)
    return np.asarray((q_low >= -1e-12 * scale) & (r_low > 0), dtype=bool)


def _pick(
    accept: NDArray[np.bool_], chosen: StateSpaceModel, other: StateSpaceModel
) -> StateSpaceModel:
    """Per series, ``chosen``'s noise where ``accept``, ``other``'s elsewhere."""
    flag = accept[..., None, None]
    return chosen._with(
        process_noise=np.where(flag, chosen.process_noise, other.process_noise),
        observation_noise=np.where(flag, chosen.observation_noise, other.observation_noise),
    )


def _run_em(
    model: StateSpaceModel,
    y: FloatArray,
    u: FloatArray,
    *,
    n_iterations: int,
    tol: float,
    diagonal: bool,
    estimate_process_noise: bool = True,
    estimate_observation_noise: bool = True,
) -> EMResult:
    """EM on prepared arrays ``y (..., n, p)`` and ``u (..., n, c)``, accelerated by
    SQUAREM (Varadhan and Roland 2008, *Scandinavian Journal of Statistics* 35(2),
    335-353, scheme S3).

    Each cycle takes two EM steps from ``theta_0`` (``theta_1``, ``theta_2``),
    extrapolates along them, ``theta' = theta_0 - 2 a r + a^2 v`` with ``r = theta_1 -
    theta_0``, ``v = theta_2 - 2 theta_1 + theta_0`` and ``a = min(-|r|/|v|, -1)``, and
    takes one more EM step from ``theta'``. A series keeps that step only if the
    likelihood at ``theta'`` is no lower than at ``theta_0`` (and, for full matrices,
    ``theta'`` is a valid covariance); otherwise it keeps ``theta_2``. Either way its
    likelihood never decreases. Near a variance of zero, where plain EM creeps, this
    reaches the maximum in a fraction of the steps.
    """
    m_step = functools.partial(
        _em_step,
        diagonal=diagonal,
        estimate_process_noise=estimate_process_noise,
        estimate_observation_noise=estimate_observation_noise,
    )

    def step(start: StateSpaceModel) -> StateSpaceModel:
        return m_step(start, _run_filter(start, y, u, steady_rtol=_EM_STEADY_RTOL), y, u)

    batch = _batch_shape(model, y, u)
    history: list[FloatArray] = []
    converged = False
    m_steps = 0
    while True:
        filtered = _run_filter(model, y, u, steady_rtol=_EM_STEADY_RTOL)
        history.append(np.broadcast_to(filtered.log_likelihood, batch).copy())
        if len(history) > 1:
            change = np.abs(history[-1] - history[-2])
            if np.all(change <= tol * np.maximum(np.abs(history[-2]), 1.0)):
                converged = True
                break
        if m_steps >= n_iterations:
            break
        first = m_step(model, filtered, y, u)
        if m_steps + 3 > n_iterations:
            # Too few steps left for a cycle: plain EM steps up to the limit.
            model, m_steps = first, m_steps + 1
            continue
        second = step(first)
        theta = [_noise_parameters(m, batch, diagonal) for m in (model, first, second)]
        # A variance at zero is -inf in log space: no extrapolation along it.
        finite = np.isfinite(theta[0]) & np.isfinite(theta[1]) & np.isfinite(theta[2])
        t0, t1, t2 = (np.where(finite, t, 0.0) for t in theta)
        r, v = t1 - t0, t2 - 2 * t1 + t0
        r_norm, v_norm = np.linalg.norm(r, axis=-1), np.linalg.norm(v, axis=-1)
        a = np.minimum(-r_norm / np.where(v_norm > 0, v_norm, np.inf), -1.0)[..., None]
        extrapolated = np.where(finite, t0 - 2 * a * r + a**2 * v, theta[2])
        jumped = _with_noise_parameters(model, extrapolated, diagonal)
        valid = np.ones(batch, dtype=bool) if diagonal else _valid_noise(jumped)
        jumped = _pick(valid, jumped, second)
        jumped_filtered = _run_filter(jumped, y, u, steady_rtol=_EM_STEADY_RTOL)
        jumped_log_lik = np.broadcast_to(jumped_filtered.log_likelihood, batch)
        accept = valid & (jumped_log_lik >= history[-1])
        # The M-step runs only from jumps that are kept: a rejected jump can be far off
        # (variances many orders of magnitude from the data's), where the smoother's
        # covariances are singular in floating point. In a batch where some series keep
        # theirs, it runs from all of them unless that fails, then from the kept ones.
        if accept.all():
            model, m_steps = m_step(jumped, jumped_filtered, y, u), m_steps + 3
        elif accept.any():
            try:
                third = m_step(jumped, jumped_filtered, y, u)
            except ValueError:  # a rejected series' covariances are singular
                third = step(_pick(accept, jumped, second))
            model, m_steps = _pick(accept, third, second), m_steps + 3
        else:
            model, m_steps = second, m_steps + 2
    return EMResult(model, np.stack(history), converged, m_steps)


# -- the emulator --------------------------------------------------------------------------
# Largest shared factor a forecast builds (entries; 8 bytes each): 400 MB.
_MAX_FACTOR_ENTRIES = 50_000_000


def _forecast_factor(from_state: FloatArray, from_noise: FloatArray) -> FloatArray:
    """The shared factor of an ``n``-step forecast: the current state's columns, then
    each step's process noise (``r`` columns per step), which reaches every later step
    through ``from_noise[lag]``: a block-Toeplitz, lower-triangular loading."""
    n_rows, r = from_noise.shape
    width = from_state.shape[1] + n_rows * r
    if n_rows * width > _MAX_FACTOR_ENTRIES:
        longest = int(np.sqrt(_MAX_FACTOR_ENTRIES / r))
        raise ValueError(
            f"inputs: joint draws of a {n_rows}-step forecast need a {n_rows} x {width} "
            f"factor ({n_rows * width * 8 / 1e9:.1f} GB); forecast at most about {longest} "
            "steps at a time for sample paths (marginals of any horizon need no factor)"
        )
    noise = np.zeros((n_rows, n_rows, r))
    for lag in range(n_rows):
        steps = np.arange(lag, n_rows)
        noise[steps, steps - lag] = from_noise[lag]
    return np.hstack([from_state, noise.reshape(n_rows, n_rows * r)])


def _psd_sqrt(cov: FloatArray) -> FloatArray:
    """A matrix ``L`` with ``L L^T = cov`` for a positive semi-definite ``cov``."""
    try:
        return np.asarray(np.linalg.cholesky(cov), dtype=np.float64)
    except np.linalg.LinAlgError:
        # Singular (a state without uncertainty): the eigen-decomposition still works.
        values, vectors = np.linalg.eigh(cov)
        return np.asarray(vectors * np.sqrt(np.maximum(values, 0.0)), dtype=np.float64)


# Steps of one series may differ by up to this factor: local midnights across a
# daylight-saving change (23 to 25 hours in UTC), calendar months (28 to 31 days). A
# missed reading (two steps) or an extra one (a part of a step) differs by more.
_STEP_RATIO = 1.5


def _steps_fit(shortest: float, longest: float) -> bool:
    """Whether steps from ``shortest`` to ``longest`` [s] are those of one series."""
    return shortest > 0.0 and longest <= _STEP_RATIO * shortest


def _odd_step(steps: FloatArray) -> int | None:
    """Index of the step that breaks a series of time steps [s]: one that goes back or
    repeats, or, where steps differ by more than ``_STEP_RATIO``, the one farthest from
    the most frequent step (the shortest of equally frequent ones): a gap, or an extra
    reading. ``None`` when the steps are those of one series."""
    if steps.size == 0:
        return None
    shortest, longest = float(steps.min()), float(steps.max())
    if _steps_fit(shortest, longest):
        return None
    if shortest <= 0.0:
        return int(np.flatnonzero(steps <= 0.0)[0])
    values, counts = np.unique(steps, return_counts=True)
    usual = float(values[int(np.argmax(counts))])
    return int(np.argmax(np.abs(np.log(steps / usual))))


def _iso(seconds: float) -> str:
    """A time [s since 1970-01-01 UTC] as an ISO 8601 string in UTC."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g} s"


class StateSpaceEmulator:
    """A twinweave emulator of one dynamic quantity: a linear-Gaussian state space.

    Rows of ``observations`` are consecutive, equally spaced time steps, in time order;
    ``update`` filters them (a stream of single readings gives bit-for-bit the state of
    one batch); ``predict`` forecasts the next ``len(inputs)`` steps. The emulator has no
    clock of its own, but it checks the times it is given: a ``time`` column given to
    ``update`` must step forward without skipping a step (a missed reading is a row with
    NaN, not an absent row; steps may differ a little, as local days across a
    daylight-saving change or calendar months do), within the batch and from the last
    time assimilated (:attr:`last_time_`) to the batch's first; a ``time`` column given
    to ``predict`` must start one step after :attr:`last_time_`. A batch without times
    forgets the last time: the next batch's first time is then not checked.

    Parameters
    ----------
    target
        Glossary name of the observed variable, for example ``"storage"``.
    transition, observation, process_noise, observation_noise, initial_mean, initial_cov
        ``F``, ``H`` (one row: the target), ``Q`` [units^2], ``R`` (1 x 1) [units^2],
        ``m_0`` and ``P_0``; see :class:`StateSpaceModel`. The initial state is one step
        before the first reading. A vague ``P_0`` costs precision in float64 where the
        readings pin down states that ``P_0`` correlates: the smoother, and so
        :meth:`estimate_noise`, lose accuracy from about 1e12 times the noise
        variances and may fail (an error saying so) from about 1e16; give ``P_0`` on
        the data's scale, and rescale every variance with the data's units.
    control_matrix
        ``B``, shape ``(k, len(control_inputs))``, or ``None``.
    control_inputs
        Names of the input columns that form ``u_t``, in the order of ``B``'s columns;
        every reading and every forecast row needs them.
    lower, upper
        Physical bounds of the target; forecasts are censored to them [units]. The filter
        itself is linear-Gaussian and does not see them.
    units
        Unit of the target.

    Notes
    -----
    The forecast's latent variance is ``H P_h H^T + R`` with ``P_h`` the ``h``-step state
    covariance (Durbin and Koopman 2012, chapter 4). Only ``R`` is independent between
    steps: the current state's uncertainty and each forecast step's process noise are
    shared factors (step ``k``'s noise reaches step ``h >= k`` through ``H F^(h-k)``), so
    a sample path is one path of the state, and totals over the forecast (a month's mean
    storage, the days below a level) have the spread the model implies. The factor,
    ``len(inputs)`` rows by about ``len(inputs)`` times the state's size, is built only
    when a joint quantity needs it; marginals of any horizon do not.

    Examples
    --------
    A reservoir's storage [m^3] with daily inflow and outflow [m^3/day]:

    >>> twin = StateSpaceEmulator.reservoir(
    ...     capacity=10_000.0, initial_storage=5_000.0, initial_var=1e6,
    ...     process_var=100.0, noise_var=400.0)
    >>> _ = twin.update({"storage": [5_020.0, 5_110.0, np.nan, 5_180.0],
    ...                  "inflow": [120.0, 150.0, 90.0, 80.0],
    ...                  "outflow": [100.0, 60.0, 70.0, 90.0]})
    >>> forecast = twin.predict({"inflow": [100.0, 100.0], "outflow": [300.0, 300.0]})
    >>> forecast.units, np.round(forecast.mean, 0)
    ('m^3', array([4951., 4751.]))
    >>> bool(forecast.var[1] > forecast.var[0])
    True

    Attributes
    ----------
    mean_, cov_
        Filtered mean and covariance of the state after the last reading.
    n_observations_, n_steps_
        Readings assimilated (not NaN), and steps filtered.
    log_likelihood_
        Log-likelihood of the readings assimilated [nats].
    last_time_
        Time of the last step filtered [s since 1970-01-01 UTC]; ``None`` when the last
        batch had no ``time`` column.
    time_step_
        The first step between two times of readings [s], against which later steps
        are checked; ``None`` until two times are known.
    """

    #: ``predict`` forecasts the steps after the last reading (a twin learns no
    #: residual correlation from it: see :class:`~twinweave.core.Twin`).
    forecasts: ClassVar[bool] = True

    def __init__(
        self,
        *,
        target: str,
        transition: ArrayLike,
        observation: ArrayLike,
        process_noise: ArrayLike,
        observation_noise: ArrayLike,
        initial_mean: ArrayLike,
        initial_cov: ArrayLike,
        control_matrix: ArrayLike | None = None,
        control_inputs: Sequence[str] = (),
        lower: float = -np.inf,
        upper: float = np.inf,
        units: str = "",
    ) -> None:
        self.target = target
        self.transition = _floats("transition", transition).copy()
        self.observation = _floats("observation", observation).copy()
        self.process_noise = _floats("process_noise", process_noise).copy()
        self.observation_noise = _floats("observation_noise", observation_noise).copy()
        self.initial_mean = _floats("initial_mean", initial_mean).copy()
        self.initial_cov = _floats("initial_cov", initial_cov).copy()
        self.control_matrix = (
            None if control_matrix is None else _floats("control_matrix", control_matrix).copy()
        )
        self.control_inputs = tuple(control_inputs)
        self.lower = lower
        self.upper = upper
        self.units = units
        self.model = self._validate_params()
        self.mean_: FloatArray = self.model.initial_mean.copy()
        self.cov_: FloatArray = self.model.initial_cov.copy()
        self.n_observations_: float = 0.0
        self.n_steps_: int = 0
        self.log_likelihood_: float = 0.0
        self.last_time_: float | None = None
        self.time_step_: float | None = None

    # -- configuration -----------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the columns a forecast reads: the control inputs (without controls,
        any one column sets the number of steps and its values are not read)."""
        return self.control_inputs

    def _validate_params(self) -> StateSpaceModel:
        model = StateSpaceModel(
            transition=self.transition,
            observation=self.observation,
            process_noise=self.process_noise,
            observation_noise=self.observation_noise,
            initial_mean=self.initial_mean,
            initial_cov=self.initial_cov,
            control_matrix=self.control_matrix,
        )
        for name in ("transition", "process_noise", "initial_cov", "observation_noise"):
            if getattr(model, name).ndim != 2:
                raise ValueError(
                    f"{name}: expected a matrix without batch dimensions for one series, "
                    f"got shape {getattr(model, name).shape}"
                )
        if model.observation.shape[0] != 1 or model.observation.ndim != 2:
            raise ValueError(
                f"observation: expected one row (the target {self.target!r}), got shape "
                f"{self.observation.shape}"
            )
        if model.initial_mean.ndim != 1:
            raise ValueError(
                f"initial_mean: expected a vector, got shape {model.initial_mean.shape}"
            )
        if model.n_controls != len(self.control_inputs):
            raise ValueError(
                f"control_inputs: expected {model.n_controls} names (one per column of "
                f"control_matrix), got {list(self.control_inputs)}"
            )
        if model.control_matrix is not None and model.control_matrix.ndim != 2:
            raise ValueError(
                f"control_matrix: expected a matrix without batch dimensions, got shape "
                f"{model.control_matrix.shape}"
            )
        if len(set(self.control_inputs)) != len(self.control_inputs):
            raise ValueError(f"control_inputs: expected distinct names, got {self.control_inputs}")
        if self.target in self.control_inputs:
            raise ValueError(
                f"control_inputs: expected inputs other than the target {self.target!r}, "
                f"got {list(self.control_inputs)}"
            )
        for name in ("lower", "upper"):
            # A string compares with a float only by TypeError.
            if not is_real(getattr(self, name)):
                raise ValueError(f"{name}: expected a number, got {getattr(self, name)!r}")
        if not self.lower < self.upper:
            raise ValueError(f"bounds: expected lower < upper, got [{self.lower}, {self.upper}]")
        return model

    def get_params(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "transition": self.transition.copy(),
            "observation": self.observation.copy(),
            "process_noise": self.process_noise.copy(),
            "observation_noise": self.observation_noise.copy(),
            "initial_mean": self.initial_mean.copy(),
            "initial_cov": self.initial_cov.copy(),
            "control_matrix": None if self.control_matrix is None else self.control_matrix.copy(),
            "control_inputs": self.control_inputs,
            "lower": self.lower,
            "upper": self.upper,
            "units": self.units,
        }

    @property
    def n_state(self) -> int:
        return self.model.n_state

    # -- convenience constructors --------------------------------------------------------
    @classmethod
    def local_level(
        cls,
        target: str,
        *,
        level_var: float,
        noise_var: float,
        initial_level: float = 0.0,
        initial_var: float = 1e6,
        lower: float = -np.inf,
        upper: float = np.inf,
        units: str = "",
    ) -> Self:
        """Random walk observed in noise: ``level_t = level_{t-1} + w_t``, ``y_t = level_t + v_t``.

        Parameters
        ----------
        level_var
            Variance of the level's step [units^2].
        noise_var
            Variance of the measurement noise [units^2].
        initial_level, initial_var
            Prior mean [units] and variance [units^2] of the level before the first
            reading; the default variance is vague.
        """
        _check_variances({"level_var": level_var, "initial_var": initial_var}, noise_var)
        return cls(
            target=target,
            transition=[[1.0]],
            observation=[[1.0]],
            process_noise=[[level_var]],
            observation_noise=[[noise_var]],
            initial_mean=[initial_level],
            initial_cov=[[initial_var]],
            lower=lower,
            upper=upper,
            units=units,
        )

    @classmethod
    def local_linear_trend(
        cls,
        target: str,
        *,
        level_var: float,
        slope_var: float,
        noise_var: float,
        initial_level: float = 0.0,
        initial_slope: float = 0.0,
        initial_var: float = 1e6,
        lower: float = -np.inf,
        upper: float = np.inf,
        units: str = "",
    ) -> Self:
        """Level with a drifting slope (Durbin and Koopman 2012, section 3.2.1).

        ``level_t = level_{t-1} + slope_{t-1} + w_t``, ``slope_t = slope_{t-1} + z_t``,
        ``y_t = level_t + v_t``; the state is ``(level, slope)``.

        Parameters
        ----------
        level_var
            Variance of the level's own step [units^2].
        slope_var
            Variance of the slope's step [units^2/step^2].
        noise_var
            Variance of the measurement noise [units^2].
        initial_level, initial_slope
            Prior means [units], [units/step].
        initial_var
            Prior variance of both level and slope (vague by default).
        """
        _check_variances(
            {"level_var": level_var, "slope_var": slope_var, "initial_var": initial_var},
            noise_var,
        )
        return cls(
            target=target,
            transition=[[1.0, 1.0], [0.0, 1.0]],
            observation=[[1.0, 0.0]],
            process_noise=[[level_var, 0.0], [0.0, slope_var]],
            observation_noise=[[noise_var]],
            initial_mean=[initial_level, initial_slope],
            initial_cov=[[initial_var, 0.0], [0.0, initial_var]],
            lower=lower,
            upper=upper,
            units=units,
        )

    @classmethod
    def reservoir(
        cls,
        *,
        capacity: float,
        initial_storage: float,
        initial_var: float,
        process_var: float,
        noise_var: float,
        dt: float = 1.0,
        unmeasured_flow_var: float | None = None,
        initial_unmeasured_flow_var: float | None = None,
        target: str = "storage",
        inflow: str = "inflow",
        outflow: str = "outflow",
        units: str = "m^3",
    ) -> Self:
        """Mass balance of a store: ``storage_t = storage_{t-1} + dt (inflow_t - outflow_t) + w_t``.

        ``w_t`` lumps what the flows miss (evaporation, seepage, gauge error in the
        flows); the storage gauge reads ``storage_t + v_t``. Forecasts are censored to
        ``[0, capacity]``.

        Where the gauged flows miss a flow that lasts (a canal diversion, seasonal
        evaporation, an ungauged tributary), ``w_t`` is not white noise but a slowly
        changing net flow. With ``unmeasured_flow_var`` the state holds it as a second
        component, a random walk ``d_t = d_{t-1} + z_t`` [units/flow time unit] that
        enters the balance as ``dt d_{t-1}``; the twin learns it from the storage
        readings and a forecast carries today's value forward.

        The balance is linear: a forecast whose mean passes empty or full carries the
        difference on (water past full is kept, not spilled), so each step is censored
        but the steps after the first past a bound are the balance's, not the
        reservoir's; :meth:`predict` warns of it.

        Parameters
        ----------
        capacity
            Storage at the spillway crest [units].
        initial_storage, initial_var
            Prior mean [units] and variance [units^2] of storage before the first reading
            (vague, but on the data's scale: see the class's ``initial_cov``).
        process_var
            Variance of the unexplained change per step [units^2].
        noise_var
            Variance of the storage gauge's error [units^2].
        dt
            Length of a step in the flows' time unit [day for flows in m^3/day].
        unmeasured_flow_var
            Variance of the unmeasured net inflow's change per step [(units/flow time
            unit)^2]; ``None`` (the default) for a balance whose flows are all gauged.
        initial_unmeasured_flow_var
            Prior variance of the unmeasured net inflow (prior mean 0) [(units/flow
            time unit)^2]; ``None`` for ``initial_var / dt^2``, as vague as the
            storage's prior.
        target, inflow, outflow
            Column names (glossary: ``storage``, ``inflow``, ``outflow``).
        units
            Unit of storage.
        """
        if not (is_real(dt) and math.isfinite(dt) and dt > 0.0):
            raise ValueError(f"dt: expected a positive, finite step length, got {dt!r}")
        if not (is_real(capacity) and math.isfinite(capacity) and capacity > 0.0):
            raise ValueError(f"capacity: expected a positive, finite storage, got {capacity!r}")
        _check_variances(
            {
                "initial_var": initial_var,
                "process_var": process_var,
                "unmeasured_flow_var": unmeasured_flow_var,
                "initial_unmeasured_flow_var": initial_unmeasured_flow_var,
            },
            noise_var,
        )
        # Forecasts are censored to [0, capacity]: a prior outside it is a typo or a unit
        # mix-up (storage in m^3, capacity in million m^3), not a state.
        if not (is_real(initial_storage) and 0.0 <= initial_storage <= capacity):
            raise ValueError(
                f"initial_storage: expected a storage within [0, capacity] = [0, {capacity:g}], "
                f"got {initial_storage!r}"
            )
        if unmeasured_flow_var is None:
            if initial_unmeasured_flow_var is not None:
                raise ValueError(
                    "initial_unmeasured_flow_var: expected None without "
                    f"unmeasured_flow_var, got {initial_unmeasured_flow_var}"
                )
            # Storage alone.
            transition = [[1.0]]
            process, mean, cov = [process_var], [initial_storage], [initial_var]
        else:
            # Storage and the unmeasured net inflow, which enters the next step's balance.
            flow_var = (
                initial_var / dt**2
                if initial_unmeasured_flow_var is None
                else initial_unmeasured_flow_var
            )
            transition = [[1.0, dt], [0.0, 1.0]]
            process, mean = [process_var, unmeasured_flow_var], [initial_storage, 0.0]
            cov = [initial_var, flow_var]
        k = len(mean)
        return cls(
            target=target,
            transition=transition,
            observation=[[1.0] + [0.0] * (k - 1)],
            process_noise=np.diag(process),
            observation_noise=[[noise_var]],
            initial_mean=mean,
            initial_cov=np.diag(cov),
            control_matrix=[[dt, -dt]] + [[0.0, 0.0]] * (k - 1),
            control_inputs=(inflow, outflow),
            lower=0.0,
            upper=capacity,
            units=units,
        )

    # -- learned state -----------------------------------------------------------------
    def state(self) -> State:
        return {
            "mean_": self.mean_.copy(),
            "cov_": self.cov_.copy(),
            "n_observations_": self.n_observations_,
            "n_steps_": self.n_steps_,
            "log_likelihood_": self.log_likelihood_,
            # NaN for None: a store keeps numbers and arrays.
            "last_time_": math.nan if self.last_time_ is None else self.last_time_,
            "time_step_": math.nan if self.time_step_ is None else self.time_step_,
        }

    @classmethod
    def from_state(cls, params: Mapping[str, Any], state: State) -> Self:
        names = ("mean_", "cov_", "n_observations_", "n_steps_", "log_likelihood_")
        missing = [name for name in names if name not in state]
        if missing:
            # KeyError, as for a missing column: the entry is absent, not wrong.
            raise KeyError(
                f"state: missing entries {missing}: expected {list(names)}, got {sorted(state)}"
            )
        emulator = cls(**params)
        for name in ("mean_", "cov_"):
            value = _floats(f"state {name}", state[name]).copy()
            expected = getattr(emulator, name).shape
            if value.shape != expected:
                raise ValueError(f"state {name}: expected shape {expected}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"state {name}: expected finite values, got {value.tolist()}")
            setattr(emulator, name, value)
        _check_covariance("state cov_", emulator.cov_, definite=False)
        n_steps = _floats("state n_steps_", state["n_steps_"])
        if n_steps.ndim != 0 or not (np.isfinite(n_steps) and n_steps >= 0 and n_steps % 1 == 0):
            raise ValueError(
                f"state n_steps_: expected a whole number >= 0, got {state['n_steps_']!r}"
            )
        # One target: at most one observed value per step.
        n_observed = _floats("state n_observations_", state["n_observations_"])
        if n_observed.ndim != 0 or not 0 <= n_observed <= n_steps:
            raise ValueError(
                f"state n_observations_: expected a count from 0 to n_steps_ = "
                f"{int(n_steps)}, got {state['n_observations_']!r}"
            )
        emulator.n_observations_ = float(n_observed)
        emulator.n_steps_ = int(n_steps)
        log_likelihood = _floats("state log_likelihood_", state["log_likelihood_"])
        if log_likelihood.ndim != 0 or not np.isfinite(log_likelihood):
            raise ValueError(
                f"state log_likelihood_: expected one finite number, got "
                f"{state['log_likelihood_']!r}"
            )
        emulator.log_likelihood_ = float(log_likelihood)
        # Absent from states kept before the emulator remembered times: no time known.
        times: dict[str, float | None] = {}
        for name in ("last_time_", "time_step_"):
            value = _floats(f"state {name}", state.get(name, math.nan))
            if value.ndim != 0 or np.isinf(value) or (name == "time_step_" and value <= 0.0):
                what = "time" if name == "last_time_" else "step > 0"
                raise ValueError(
                    f"state {name}: expected a finite {what} [s] (NaN: none), got {state[name]!r}"
                )
            times[name] = None if np.isnan(value) else float(value)
        if times["last_time_"] is None and times["time_step_"] is not None:
            raise ValueError(
                f"state time_step_: expected NaN without a last_time_, got {state['time_step_']!r}"
            )
        if times["last_time_"] is not None and emulator.n_steps_ == 0:
            raise ValueError(
                f"state last_time_: expected NaN when no step was filtered (n_steps_ = 0), "
                f"got {state['last_time_']!r}"
            )
        emulator.last_time_, emulator.time_step_ = times["last_time_"], times["time_step_"]
        return emulator

    def _current_model(self) -> StateSpaceModel:
        """The model whose initial state is the current filtered state."""
        return self.model._with(initial_mean=self.mean_, initial_cov=self.cov_)

    # -- reading columns -------------------------------------------------------------------
    @staticmethod
    def _column(data: Columns, name: str) -> FloatArray:
        """Column ``name`` as :func:`~twinweave.core.column` reads it, refusing ``None``,
        which numpy would take for one missing value."""
        if name in data and data[name] is None:
            raise ValueError(
                f"{name}: expected a column of values (NaN for a missing one), got None"
            )
        array = column(data, name)
        assert array is not None  # column() raises for a missing required column
        return array

    def _read_controls(self, data: Columns, n_rows: int, role: str) -> FloatArray:
        """Control inputs as ``(n_rows, c)``, checked to be complete and finite."""
        arrays: list[FloatArray] = []
        for name in self.control_inputs:
            array = self._column(data, name)
            if array.shape[0] != n_rows:
                raise ValueError(
                    f"{name}: expected {n_rows} values (one per {role}), got {array.shape[0]}"
                )
            bad = ~np.isfinite(array)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                # A step moves the state by its controls: without them it cannot be
                # taken, where a missing reading of the target only goes unobserved.
                raise ValueError(
                    f"{name}: expected finite control inputs, got {float(array[row])!r} "
                    f"at row {row} ({int(bad.sum())} such rows); a step is taken with its "
                    f"controls, so give their best estimate where they were not recorded "
                    f"(a missed reading of {self.target!r} alone is NaN)"
                )
            arrays.append(array)
        if not arrays:
            return np.zeros((n_rows, 0))
        return np.stack(arrays, axis=-1)

    def _read_target(self, data: Columns) -> FloatArray:
        y = self._column(data, self.target)
        if np.any(np.isinf(y)):
            row = int(np.flatnonzero(np.isinf(y))[0])
            raise ValueError(
                f"{self.target}: expected finite readings or NaN for missing, got "
                f"{float(y[row])!r} at row {row}"
            )
        return y

    def _read_times(self, columns: Columns, n_rows: int, rows: str) -> FloatArray | None:
        """Times of the ``time`` column [s], or ``None`` without one; refuses a column of
        another length than the rows, or whose times do not step evenly
        (:meth:`_check_steps`)."""
        if "time" not in columns:
            return None
        n_times = int(np.size(columns["time"]))
        if n_times != n_rows:
            raise ValueError(f"time: expected {n_rows} times (one per {rows}), got {n_times}")
        seconds = time_seconds(columns["time"])
        if np.isnan(seconds).any():
            row = int(np.flatnonzero(np.isnan(seconds))[0])
            raise ValueError(
                f"time: expected a time in every row (each row is a step), got none at row {row}"
            )
        self._check_steps(seconds, forecast=rows == "forecast step")
        return seconds

    def _check_steps(self, seconds: FloatArray, *, forecast: bool = False) -> None:
        """Refuse times that go back, repeat, or skip a step: the filter takes each row
        for the next step, so a gap would be learnt as dynamics, and an extra reading
        as a whole step (a forecast's row ``h`` is ``h`` steps ahead). Steps may differ
        a little (local midnights across a daylight-saving change, 23 to 25 hours;
        calendar months, 28 to 31 days)."""
        steps = np.diff(seconds)
        bad = _odd_step(steps)
        if bad is not None:
            advice = (
                "a forecast's row h is h steps ahead: give every step in between"
                if forecast
                else f"a missed reading is a row with NaN for {self.target!r}"
            )
            raise ValueError(
                f"time: expected rows at one step in time order ({advice}), got steps from "
                f"{float(steps.min()):g} s to {float(steps.max()):g} s (a step of "
                f"{float(steps[bad]):g} s at row {bad + 1})"
            )

    def _check_continues(self, seconds: FloatArray, rows: str) -> None:
        """Refuse times whose first is not one step after :attr:`last_time_`, by the
        rule of :meth:`_check_steps` for the step from the last time to the first
        against the first step known (or, before one, the rows' own first step): rows
        given twice would be assimilated twice, a gap learnt as dynamics, and a
        forecast's row ``h`` would not be ``h`` steps ahead."""
        if self.last_time_ is None or seconds.size == 0:
            return
        step = float(seconds[0]) - self.last_time_
        usual = self.time_step_
        if usual is None and seconds.size > 1:
            usual = float(seconds[1] - seconds[0])
        # Floats, not arrays: a stream checks this once per reading.
        steps = (step,) if usual is None else (usual, step)
        if _steps_fit(min(steps), max(steps)):
            if usual is not None and seconds.size > 1:
                self._check_usual_step(np.diff(seconds), usual)
            return
        expected = "one step later" if usual is None else f"at {_iso(self.last_time_ + usual)}"
        if step <= 0.0:
            why = (
                "a time already assimilated (the same readings given twice, or older ones?)"
                if step < 0.0 or rows == "observations"
                else "the last time assimilated (a forecast starts one step after it)"
            )
        elif usual is not None and step > usual:
            n_missed = max(1, round(step / usual) - 1)
            why = f"a gap of {step:g} s after steps of {usual:g} s: " + (
                f"give the {n_missed} missed reading{'s' if n_missed > 1 else ''} as "
                f"rows with NaN for {self.target!r}"
                if rows == "observations"
                else "a forecast's row h is h steps after the last reading assimilated"
            )
        else:
            why = f"a step of {step:g} s after steps of {usual:g} s (an extra reading?)"
        raise ValueError(
            f"time: expected {rows} to start one step after the last time assimilated, "
            f"{_iso(self.last_time_)}, the next {expected}; got a first time of "
            f"{_iso(float(seconds[0]))}: {why}"
        )

    @staticmethod
    def _check_usual_step(steps: FloatArray, usual: float) -> None:
        """Refuse rows whose steps, even among themselves, are not those of the series
        so far (``usual``, the first step known), by the rule of :meth:`_check_steps`."""
        shortest, longest = min(float(steps.min()), usual), max(float(steps.max()), usual)
        if not _steps_fit(shortest, longest):
            raise ValueError(
                f"time: expected rows at the step of the readings before, {usual:g} s, got "
                f"steps from {float(steps.min()):g} s to {float(steps.max()):g} s"
            )

    # -- assimilation and forecasting ----------------------------------------------------
    def update(self, observations: Columns) -> Self:
        """Filter the readings of ``observations`` (rows are consecutive steps).

        Parameters
        ----------
        observations
            Column ``target`` [units] (NaN for a missed reading: the state is only
            predicted through it) and every column of ``control_inputs``; optionally
            ``time`` (datetimes, or seconds since 1970-01-01 UTC [s]), checked to step
            evenly from :attr:`last_time_` on.

        Raises
        ------
        ValueError
            If the times go back or repeat, skip a step, or do not start one step after
            :attr:`last_time_`; the emulator is then left as it was.
        """
        y = self._read_target(observations)
        u = self._read_controls(observations, y.shape[0], f"reading of {self.target}")
        seconds = self._read_times(observations, y.shape[0], f"reading of {self.target!r}")
        if seconds is not None:
            self._check_continues(seconds, "observations")
        result = _run_filter(self._current_model(), y[:, None], u)
        if y.shape[0] > 0:
            self.mean_ = result.filtered_mean[-1].copy()
            self.cov_ = result.filtered_cov[-1].copy()
            if seconds is None:
                # Steps of unknown times: the next batch's first time cannot be checked.
                self.last_time_ = self.time_step_ = None
            else:
                # The first step known stays the reference: compared with the last one
                # instead, steps could creep (each 1.4 times the one before) one
                # reading at a time where one batch of the same times is refused.
                if self.time_step_ is None and seconds.size > 1:
                    self.time_step_ = float(seconds[1] - seconds[0])
                elif self.time_step_ is None and self.last_time_ is not None:
                    self.time_step_ = float(seconds[0]) - self.last_time_
                self.last_time_ = float(seconds[-1])
        self.n_observations_ += float(result.n_observed)
        self.n_steps_ += int(y.shape[0])
        self.log_likelihood_ += float(result.log_likelihood)
        return self

    def _n_rows(self, inputs: Columns) -> int:
        lengths = {name: int(np.atleast_1d(np.asarray(v)).shape[0]) for name, v in inputs.items()}
        if not lengths:
            raise ValueError(
                "inputs: expected at least one column (one row per future step), got none"
            )
        if len(set(lengths.values())) != 1:
            raise ValueError(f"inputs: expected columns of one length, got lengths {lengths}")
        return next(iter(lengths.values()))

    def predict(self, inputs: Columns) -> CensoredNormal:
        """Forecast of the target for the next ``len(inputs)`` steps.

        Parameters
        ----------
        inputs
            One row per future step, in order: the columns of ``control_inputs`` for
            each step; without controls any column (a ``time`` column, say) sets the
            number of steps. A ``time`` column must step evenly from one step after
            :attr:`last_time_` (not read when no last time is known).

        Returns
        -------
        CensoredNormal
            Row ``h`` is the ``h``-step-ahead forecast from the current state [units].
        """
        n_rows = self._n_rows(inputs)
        u = self._read_controls(inputs, n_rows, "forecast step")
        if self.last_time_ is not None:
            seconds = self._read_times(inputs, n_rows, "forecast step")
            if seconds is not None:
                self._check_continues(seconds, "inputs")
        model = self.model
        f, h = model.transition, model.observation[0]
        noise = float(model.observation_noise[0, 0])
        mean = self.mean_
        shared = _psd_sqrt(self.cov_)
        root = _psd_sqrt(model.process_noise)
        root = root[:, np.any(root != 0.0, axis=0)]  # a state without noise adds no column
        propagated = root  # F^lag L: one step's noise, ``lag`` steps later
        accumulated = np.zeros_like(self.cov_)
        loc = np.empty(n_rows)
        row_var = np.empty(n_rows)
        from_state = np.empty((n_rows, self.n_state))
        # Row ``lag``: how a step's process noise reaches the target ``lag`` steps on.
        from_noise = np.empty((n_rows, root.shape[1]))
        # A transition that grows the state overflows far enough ahead; refused below.
        with np.errstate(over="ignore", invalid="ignore"):
            for step in range(n_rows):
                mean = f @ mean
                if model.control_matrix is not None:
                    mean = mean + model.control_matrix @ u[step]
                shared = f @ shared
                accumulated = _symmetrise(f @ accumulated @ f.T + model.process_noise)
                loc[step] = h @ mean
                from_state[step] = h @ shared
                from_noise[step] = h @ propagated
                propagated = f @ propagated
                row_var[step] = h @ accumulated @ h + float(from_state[step] @ from_state[step])
            # The forecast's moments need the second moment too.
            finite = (
                np.isfinite(loc * loc + row_var)
                & np.isfinite(from_state).all(axis=1)
                & np.isfinite(from_noise).all(axis=1)
            )
        if not finite.all():
            first = int(np.argmin(finite))
            growth = float(np.max(np.abs(np.linalg.eigvals(f))))
            raise ValueError(
                f"inputs: expected a horizon the forecast can reach in float64, got "
                f"{n_rows} steps: the forecast overflows at step {first + 1} (the "
                f"transition grows the state by a factor of {growth:.3g} per step); "
                f"forecast at most {first} steps"
            )
        beyond = np.flatnonzero((loc < self.lower) | (loc > self.upper))
        if beyond.size and beyond[0] < n_rows - 1:
            # Each step is censored, but the balance carries what is past a bound on: a
            # reservoir past full keeps the water it would have spilled (review: 100 for
            # about 300 after ten days empty and ten of inflow).
            # One text for every forecast, so that a loop of forecasts warns once.
            warnings.warn(
                "a forecast's mean passes a bound before its last step: the steps after "
                "carry what is past it (water a reservoir would have spilled, or released "
                "without having it), as a linear balance must, so read them as the "
                "balance's, not the asset's; the first step past a bound is the first "
                "whose latent mean (.loc) is outside [lower, upper]",
                UserWarning,
                stacklevel=2,
            )

        return CensoredNormal(
            loc,
            np.full(n_rows, noise),
            lower=self.lower,
            upper=self.upper,
            units=self.units,
            # A partial, not a closure: a pickled forecast carries these, not the factor.
            factor=DeferredFactor(
                functools.partial(_forecast_factor, from_state, from_noise),
                np.maximum(row_var, 0.0),
            ),
        )

    def smooth(self, observations: Columns) -> SmootherResult:
        """Smoothed states of the steps in ``observations``, continuing from this state.

        The emulator is not changed; call :meth:`update` to assimilate the readings.
        Times are checked as :meth:`update` checks them.
        """
        y = self._read_target(observations)
        u = self._read_controls(observations, y.shape[0], f"reading of {self.target}")
        seconds = self._read_times(observations, y.shape[0], f"reading of {self.target!r}")
        if seconds is not None:
            self._check_continues(seconds, "observations")
        model = self._current_model()
        return rts_smoother(model, _run_filter(model, y[:, None], u))

    def estimate_noise(
        self,
        observations: Columns,
        *,
        n_iterations: int = 100,
        tol: float = 1e-10,
        diagonal: bool = False,
    ) -> Self:
        """A new, unfitted emulator with ``Q`` and ``R`` estimated by EM (:func:`em_noise`).

        ``observations`` is a history that starts at the configured initial state; the
        result has this emulator's configuration otherwise, and has assimilated nothing
        (no :attr:`last_time_` either: its first update may start anywhere, the history
        or after it, from the configured initial state).
        Warns (:class:`~twinweave.core.ConvergenceWarning`) when EM stops at
        ``n_iterations`` before ``tol``, saying so where the variances collapsed towards
        zero (readings the model follows without noise: a stuck sensor's). Refuses, as
        :func:`em_noise` does, a history with no readings or with fewer readings than
        the variances estimated.
        """
        _check_em_settings(n_iterations, tol)
        y = self._read_target(observations)
        u = self._read_controls(observations, y.shape[0], f"reading of {self.target}")
        self._read_times(observations, y.shape[0], f"reading of {self.target!r}")
        n_parameters = _n_noise_parameters(
            self.model,
            diagonal=diagonal,
            estimate_process_noise=True,
            estimate_observation_noise=True,
        )
        _check_history(self.target, y[:, None], n_parameters)
        fit = _run_em(
            self.model, y[:, None], u, n_iterations=n_iterations, tol=tol, diagonal=diagonal
        )
        if not fit.converged:
            warnings.warn(self._not_converged(fit, y, n_iterations, tol), ConvergenceWarning, 2)
        params = self.get_params()
        params["process_noise"] = fit.model.process_noise
        params["observation_noise"] = fit.model.observation_noise
        return type(self)(**params)

    def _not_converged(self, fit: EMResult, y: FloatArray, n_iterations: int, tol: float) -> str:
        """What ``estimate_noise`` says of EM stopped at ``n_iterations``: where the
        variances collapsed, that more iterations will not help, and why."""
        change = float(np.abs(np.diff(fit.log_likelihood[-2:], axis=0)).max(initial=0.0))
        stopped = (
            f"estimate_noise: EM stopped at n_iterations={n_iterations} before its "
            f"tolerance (last change {change:.3g} nats per cycle, tol {tol:g} of "
            f"{abs(float(fit.log_likelihood[-1])):.6g})"
        )
        readings = y[np.isfinite(y)]
        scale = max(float(np.var(readings)), float(np.mean(readings)) ** 2, np.finfo(float).tiny)
        largest = max(
            float(np.diagonal(fit.model.process_noise).max()),
            float(np.diagonal(fit.model.observation_noise).max()),
        )
        if largest > _COLLAPSED * scale:
            return f"{stopped}; raise n_iterations, or start nearer the answer"
        units = f" [{self.units}^2]" if self.units else ""
        constant = (
            f"; its {readings.size} readings are all equal to {float(readings[0]):g} "
            "(a stuck sensor?)"
            if np.ptp(readings) == 0
            else ""
        )
        return (
            f"{stopped}: the noise variances went towards zero (the largest "
            f"{largest:.3g}{units}), as where the model follows the readings without noise"
            f"{constant}; more iterations will not converge: expected readings with noise"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, n_state={self.n_state}, "
            f"controls={list(self.control_inputs)}, n_observations_={self.n_observations_:.0f})"
        )


def _check_variances(variances: Mapping[str, object], noise_var: object) -> None:
    """Refuse a constructor's variance by its own name: each one non-negative, finite
    number (``None`` for one not used), and ``noise_var`` positive (a gauge without
    error would make the filter divide by zero). Checked as ``process_noise [[-1.0]]``,
    a matrix the caller never gave, the message named the wrong argument."""
    for name, value in variances.items():
        if value is not None and not (is_real(value) and 0.0 <= value < math.inf):
            raise ValueError(f"{name}: expected one non-negative, finite variance, got {value!r}")
    if not (is_real(noise_var) and 0.0 < noise_var < math.inf):
        raise ValueError(
            f"noise_var: expected one positive, finite variance (a gauge's error), got "
            f"{noise_var!r}"
        )
