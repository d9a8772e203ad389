"""The hierarchical fleet model as rounds: a twin's local step and the aggregation.

Partial pooling of power curves across a fleet (Bull et al. 2023, *Computer-Aided Civil
and Infrastructure Engineering* 38(7), 821-848, doi:10.1111/mice.12901; Brealy et al.
2025, arXiv:2502.14527): each twin's basis weights are drawn around its kind's mean,
the kinds' means around a global mean, and each twin's per-bin noise variance is shrunk
towards its kind's. With period statistics, the readings of one twin in one period and
noise bin also share a level shift, a random intercept whose variance is learned per
kind and bin (Laird and Ware 1982, *Biometrics* 38(4), 963-974): a deviation seen in a
short window is then not all taken as the twin's own, lasting curve. The population is
fitted by variational EM for hierarchical linear
models (Dempster, Laird and Rubin 1977, *JRSS B* 39(1), 1-38; Gelman et al., *Bayesian
Data Analysis*, 3rd ed., 2013, chapter 15): the E-step runs on every twin from its own
statistics (:func:`local_step`), the M-step on the sum of the twins' summaries
(:func:`aggregate`). The equations are in ``docs/FLEET_MODEL.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, wraps
from typing import ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from twinweave.transfer._records import (
    FleetPrior,
    FloatArray,
    LocalSummary,
    Population,
    TwinPosterior,
    TwinStatistics,
    check_fleet,
    check_kinds,
    check_type,
    fleet_fingerprint,
    sum_summaries,
)

_LOG_2PI = float(np.log(2.0 * np.pi))
# Floor of a variance [units^2]: keeps a covariance positive definite when every twin
# agrees exactly.
_MIN_VARIANCE = 1e-12
# Weights up to which the twins' posteriors use numpy's stacked inverse (per-call
# overhead dominates) rather than a loop of LAPACK Cholesky inverses (faster beyond).
_STACKED_INVERSE_MAX_FEATURES = 32
# Floats of stacked gram matrices handled at once by a batched local step.
_BATCH_FLOATS = 1 << 24


def _symmetric(matrix: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (matrix + np.swapaxes(matrix, -1, -2)), dtype=np.float64)


def _inverse(matrix: FloatArray) -> FloatArray:
    """Inverse of a symmetric positive-definite matrix (or a stack), through Cholesky."""
    chol = np.linalg.cholesky(matrix)
    eye = np.broadcast_to(np.eye(matrix.shape[-1]), matrix.shape)
    inv_chol = np.linalg.solve(chol, eye)
    return _symmetric(np.swapaxes(inv_chol, -1, -2) @ inv_chol)


def _log_det(matrix: FloatArray) -> float:
    return float(2.0 * np.log(np.diagonal(np.linalg.cholesky(matrix))).sum())


@dataclass(frozen=True)
class _Blocks:
    """A twin's (period, noise bin) blocks that hold readings: each shares a period
    effect ``u ~ N(0, omega2_j)``."""

    bin: NDArray[np.intp]  # (C,)
    count: FloatArray  # (C,) readings
    total: FloatArray  # (C,) sum y
    features: FloatArray  # (C, p) sum phi
    n_per_bin: FloatArray  # (K,) blocks per bin

    @classmethod
    def of(cls, stats: TwinStatistics) -> _Blocks | None:
        if stats.period_count is None or stats.period_sum is None:
            return None
        if stats.period_features is None:
            return None
        period, bins = np.nonzero(stats.period_count > 0)
        return cls(
            bins.astype(np.intp),
            stats.period_count[period, bins],
            stats.period_sum[period, bins],
            stats.period_features[period, bins],
            np.bincount(bins, minlength=stats.n_bins).astype(np.float64),
        )


@dataclass(frozen=True)
class _PeriodTerms:
    """Per block of a twin, given its noise ``s2`` and the period variance ``omega2``
    of the block's bin: ``weight = omega2 / (s2 (s2 + n omega2))`` (the rank-one
    correction of the block's information), ``shrink = omega2 / (s2 + n omega2)``
    (``E[u | w] = shrink * r``, ``r = sum y - sum phi . w``) and ``variance =
    omega2 s2 / (s2 + n omega2)`` (``Var[u | w]``)."""

    weight: FloatArray
    shrink: FloatArray
    variance: FloatArray

    @classmethod
    def of(cls, blocks: _Blocks, noise: FloatArray, period_var: FloatArray) -> _PeriodTerms:
        s2, omega2 = noise[blocks.bin], period_var[blocks.bin]
        denominator = s2 + blocks.count * omega2
        shrink = omega2 / denominator
        return cls(shrink / s2, shrink, s2 * shrink)


@dataclass(frozen=True)
class _Batch:
    """Statistics of several twins of one kind, stacked along a leading axis."""

    gram: FloatArray  # (n, K, p * p)
    moment: FloatArray  # (n, K, p)
    sum_sq: FloatArray  # (n, K)
    count: FloatArray  # (n, K)
    periods: tuple[_Blocks | None, ...]  # (n,) each twin's period blocks
    labels: tuple[str, ...]  # (n,) each twin's name in messages

    @classmethod
    def of(cls, stats: Sequence[TwinStatistics], labels: Sequence[str]) -> _Batch:
        n_bins, p = stats[0].n_bins, stats[0].n_features
        return cls(
            np.stack([s.gram.reshape(n_bins, p * p) for s in stats]),
            np.stack([s.moment for s in stats]),
            np.stack([s.sum_sq for s in stats]),
            np.stack([s.count for s in stats]),
            tuple(_Blocks.of(s) for s in stats),
            tuple(labels),
        )

    @property
    def n_features(self) -> int:
        return int(self.moment.shape[2])


@dataclass(frozen=True)
class _EStep:
    """Posteriors of a batch of twins given their population."""

    mean: FloatArray  # (n, p)
    covariance: FloatArray  # (n, p, p)
    data_rhs: FloatArray  # (n, p): sum_j b_ij / sigma2_ij
    noise_var: FloatArray  # (n, K)
    residual_ss: FloatArray  # (n, K)
    period_ss: FloatArray  # (n, K): sum of E[u^2] over each bin's blocks
    log_evidence: FloatArray  # (n,)


def _posterior(
    batch: _Batch,
    noise: FloatArray,
    precision: FloatArray,
    prior_rhs: FloatArray,
    period_var: FloatArray | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Mean, covariance, right-hand side and log-determinant of the precision of each
    twin's weights given its noise (and the period effects' variance ``period_var``).

    A (period, bin) block of ``n`` readings has covariance ``s2 I + omega2 1 1^T``
    (Laird and Ware 1982, *Biometrics* 38(4), 963-974): its information about the
    weights is ``G / s2`` less the rank-one ``weight s s^T`` (``s = sum phi``,
    :class:`_PeriodTerms`), its right-hand side ``b / s2 - weight (sum y) s``.

    Each twin's numbers are computed alone, by a method that depends on the number of
    weights only, so a twin's local step gives the same bits in a batch of any size.
    """
    inv_noise = 1.0 / noise
    n, p = inv_noise.shape[0], batch.n_features
    data_precision = (inv_noise[:, None, :] @ batch.gram).reshape(n, p, p)
    rhs = prior_rhs + (inv_noise[:, None, :] @ batch.moment)[:, 0, :]
    if period_var is not None:
        for k, blocks in enumerate(batch.periods):
            if blocks is None:
                continue
            terms = _PeriodTerms.of(blocks, noise[k], period_var)
            weighted = terms.weight[:, None] * blocks.features
            data_precision[k] -= _symmetric(blocks.features.T @ weighted)
            rhs[k] -= weighted.T @ blocks.total
    full = precision + data_precision
    if p <= _STACKED_INVERSE_MAX_FEATURES:
        # Small matrices: numpy's stacked Cholesky and inverse loop over twins in C.
        try:
            chol_stack = np.linalg.cholesky(full)
        except np.linalg.LinAlgError:
            failed = next(k for k in range(n) if lapack.dpotrf(full[k], lower=True)[1] != 0)
            raise _not_positive_definite(batch, failed, noise) from None
        covariance = _symmetric(np.asarray(np.linalg.inv(full), dtype=np.float64))
        log_det = 2.0 * np.log(np.diagonal(chol_stack, axis1=1, axis2=2)).sum(axis=1)
    else:
        covariance = np.empty((n, p, p))
        log_det = np.empty(n)
        for k in range(n):
            # LAPACK's Cholesky factor and triangular inverse (potrf, trtri), then
            # C = L^-T L^-1: about twice as fast as a general inverse at this size.
            chol, info = lapack.dpotrf(full[k], lower=True)
            if info != 0:
                raise _not_positive_definite(batch, k, noise)
            inv_chol, info = lapack.dtrtri(np.tril(chol), lower=True)
            if info != 0:
                raise _not_positive_definite(batch, k, noise)
            covariance[k] = inv_chol.T @ inv_chol
            log_det[k] = 2.0 * np.log(np.diagonal(chol)).sum()
    mean = (covariance @ rhs[:, :, None])[:, :, 0]
    return mean, covariance, rhs, log_det


def _not_positive_definite(batch: _Batch, k: int, noise: FloatArray) -> np.linalg.LinAlgError:
    """The error for twin ``k`` of ``batch`` whose weights' posterior precision is not
    positive definite in float64, with the likely cause: a noise variance next to
    nothing against the prior (``_MIN_VARIANCE`` where readings are fitted exactly)."""
    return np.linalg.LinAlgError(
        f"{batch.labels[k]}: the posterior precision of its weights is not positive "
        f"definite; its {batch.count[k].sum():.0f} readings leave a smallest noise variance "
        f"of {noise[k].min():.3g}: readings that a curve of the basis fits exactly (a few "
        "idle readings all at 0, say) give the noise next to nothing to learn from, and "
        "their weight swamps the prior's in float64; expected readings that vary, or "
        "leave this twin out of the fleet until it has more"
    )


def _residual_ss(
    batch: _Batch,
    mean: FloatArray,
    covariance: FloatArray,
    noise: FloatArray,
    period_var: FloatArray | None,
) -> tuple[FloatArray, FloatArray]:
    """Expected residual sum of squares per bin under the posterior of the weights (and
    of the period effects), and the period effects' summed ``E[u^2]`` per bin.

    Without period effects, ``s_j - 2 b_j.m + tr(G_j (C + m m^T))``. With them, a
    block's residuals about ``phi . w + u`` lose ``(2 k - n k^2) E[r^2]`` and gain
    ``n v`` (``k``: :class:`_PeriodTerms`' ``shrink``, ``v`` its ``variance``,
    ``r = sum y - s . w``, ``E[r^2] = (sum y - s . m)^2 + s^T C s``), and
    ``E[u^2] = k^2 E[r^2] + v``. Before the period variance is known
    (``period_var is None``), ``E[u^2]`` is taken with every block's level free
    (``omega2`` infinite: ``k = 1 / n``, ``v = s2 / n``), an upper start for its EM.
    """
    n, n_bins, p = batch.moment.shape
    linear = (batch.moment @ mean[:, :, None])[:, :, 0]
    second = covariance + mean[:, :, None] * mean[:, None, :]
    quadratic = (batch.gram @ second.reshape(n, p * p, 1))[:, :, 0]
    rss = batch.sum_sq - 2.0 * linear + quadratic
    period_ss = np.zeros((n, n_bins))
    for k, blocks in enumerate(batch.periods):
        if blocks is None:
            continue
        residual = blocks.total - blocks.features @ mean[k]
        spread = np.einsum("ca,ca->c", blocks.features @ covariance[k], blocks.features)
        residual_sq = residual * residual + spread
        if period_var is None:
            shrink = 1.0 / blocks.count
            variance = noise[k][blocks.bin] * shrink
        else:
            terms = _PeriodTerms.of(blocks, noise[k], period_var)
            shrink, variance = terms.shrink, terms.variance
            change = blocks.count * variance - (2.0 - blocks.count * shrink) * shrink * residual_sq
            rss[k] += np.bincount(blocks.bin, weights=change, minlength=n_bins)
        period_ss[k] = np.bincount(
            blocks.bin, weights=shrink * shrink * residual_sq + variance, minlength=n_bins
        )
    return np.asarray(np.maximum(rss, 0.0)), period_ss


def _period_evidence(batch: _Batch, noise: FloatArray, period_var: FloatArray | None) -> FloatArray:
    """What the period effects add to each twin's ``-2 log p(y)`` beyond the noise's:
    ``sum_c log(1 + n_c omega2 / s2) - sum_c weight_c (sum y)_c^2`` (the determinant
    and quadratic of ``s2 I + omega2 1 1^T``)."""
    out = np.zeros(noise.shape[0])
    if period_var is None:
        return out
    for k, blocks in enumerate(batch.periods):
        if blocks is None:
            continue
        terms = _PeriodTerms.of(blocks, noise[k], period_var)
        s2 = noise[k][blocks.bin]
        out[k] = float(
            np.log1p(blocks.count * period_var[blocks.bin] / s2).sum()
            - (terms.weight * blocks.total * blocks.total).sum()
        )
    return out


_P = ParamSpec("_P")
_R = TypeVar("_R")


@cache
def _thread_pools() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once (about 1 ms)


def _on_one_blas_thread(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` with BLAS on one thread.

    A twin's local step, and the fleet's M-step, are many products and factorisations
    of matrices of a few dozen to a few hundred rows, too small for threads to pay:
    OpenBLAS's threads wait on each other at every call, and on a machine whose cores
    are busy that wait dominates. La Haute Borne's
    four-turbine fleet fit (README's tour, 73 rounds) took 6.2 s with OpenBLAS's two
    threads on an idle two-core machine, 7.3 s on one; with both cores busy, 25 s
    against 9.9 s (and five minutes against 28 s for ``twinweave fit --fleet`` in a
    review on a loaded machine). Limiting costs about 0.03 ms a call.
    """

    @wraps(function)
    def on_one_thread(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _thread_pools().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return on_one_thread


@_on_one_blas_thread
def _e_step(
    batch: _Batch,
    precision: FloatArray,
    prior_mean: FloatArray,
    noise_target: FloatArray | None,
    prior: FleetPrior,
    period_var: FloatArray | None = None,
) -> _EStep:
    """Each twin's posterior of its weights and MAP noise given the prior
    ``N(prior_mean, precision^-1)``, its kind's per-bin ``noise_target`` (``None``:
    each twin's own pooled variance, the single twin's model) and per-bin period
    variance ``period_var`` (``None``: no period effects in the posterior), by the EM of
    :func:`~twinweave.models.posterior_from_statistics`, vectorised over twins.

    A twin's per-bin variance is shrunk with ``twin_noise_prior_count`` pseudo-readings
    towards ``w target_j + (1 - w) pooled_i``, ``w = own_noise_count / (n_i +
    own_noise_count)``: a twin with few readings borrows its kind's per-bin variances,
    a twin with many keeps the single twin's model (whose shrinkage towards its pooled
    variance also keeps the bins where power sits at a bound from looking noiseless)."""
    n, n_bins = batch.count.shape
    prior_rhs = precision @ prior_mean
    n_total = batch.count.sum(axis=1)
    has_data = n_total > 0
    safe_total = np.where(has_data, n_total, 1.0)
    nu = prior.noise_prior_count
    if noise_target is None:
        second = np.maximum(batch.sum_sq.sum(axis=1) / safe_total, _MIN_VARIANCE)
        noise = np.repeat(np.where(has_data, second, 1.0)[:, None], n_bins, axis=1)
    else:
        noise = np.tile(noise_target, (n, 1))
    # A twin stops iterating once its noise has converged, as a single twin would.
    active = has_data.copy()
    for _ in range(prior.n_noise_iterations):
        if not active.any():
            break
        mean, covariance, _, _ = _posterior(batch, noise, precision, prior_rhs, period_var)
        rss, _ = _residual_ss(batch, mean, covariance, noise, period_var)
        pooled = np.maximum(rss.sum(axis=1) / safe_total, _MIN_VARIANCE)[:, None]
        if noise_target is None:
            updated = (rss + nu * pooled) / (batch.count + nu)
        else:
            # The centre of the twin's noise prior moves from its kind's per-bin variance
            # to its own pooled variance (the single twin's model) as its readings grow.
            own = (n_total / (n_total + prior.own_noise_count))[:, None]
            centre = own * pooled + (1.0 - own) * noise_target
            weight = prior.twin_noise_prior_count
            updated = (rss + weight * centre) / (batch.count + weight)
        updated = np.maximum(updated, _MIN_VARIANCE)
        change = np.max(np.abs(updated - noise) / noise, axis=1)
        noise = np.where(active[:, None], updated, noise)
        active &= change >= prior.noise_tol
    mean, covariance, rhs, log_det = _posterior(batch, noise, precision, prior_rhs, period_var)
    rss, period_ss = _residual_ss(batch, mean, covariance, noise, period_var)
    # log N(y | F mu, F Sigma F^T + D) from the statistics (Bishop 2006, eq. 3.86).
    quadratic = (
        (batch.sum_sq / noise).sum(axis=1)
        + float(prior_mean @ prior_rhs)
        - np.einsum("np,np->n", mean, rhs)
    )
    log_evidence = -0.5 * (
        (batch.count * (_LOG_2PI + np.log(noise))).sum(axis=1)
        + quadratic
        - _log_det(precision)
        + log_det
        + _period_evidence(batch, noise, period_var)
    )
    return _EStep(
        mean,
        covariance,
        rhs - prior_rhs,
        noise,
        rss,
        period_ss,
        np.asarray(log_evidence, dtype=np.float64),
    )


def _population_prior(
    population: Population, kind: str
) -> tuple[int, FloatArray, FloatArray, FloatArray | None, FloatArray | None]:
    t = population.kind_index(kind)
    noise = None if population.noise_var is None else population.noise_var[t]
    period = None if population.period_var is None else population.period_var[t]
    return t, _inverse(population.covariance[t]), population.mean[t], noise, period


_Batches = list[tuple[str, list[int], _Batch]]
"""Twins' statistics stacked by kind: ``(kind, positions in the fleet, batch)``."""


def _batches(stats: Sequence[TwinStatistics], labels: Sequence[str] | None = None) -> _Batches:
    """Twins grouped by kind (in order of first appearance), in chunks that fit memory;
    ``labels`` name them in messages (default ``stats[i]``).

    The caller has checked that ``stats`` share one basis (:func:`check_fleet`).
    """
    names = list(labels) if labels is not None else [f"stats[{i}]" for i in range(len(stats))]
    order: dict[str, list[int]] = {}
    for i, s in enumerate(stats):
        order.setdefault(s.kind, []).append(i)
    out: _Batches = []
    for kind, members in order.items():
        first = stats[members[0]]
        size = max(1, _BATCH_FLOATS // max(1, first.n_bins * first.n_features**2))
        for lo in range(0, len(members), size):
            chunk = members[lo : lo + size]
            batch = _Batch.of([stats[i] for i in chunk], [names[i] for i in chunk])
            out.append((kind, chunk, batch))
    return out


def _marginal(precision: FloatArray, step: _EStep) -> tuple[FloatArray, FloatArray]:
    """What the twins' data say about their kind's mean with their own weights
    integrated out: precision ``P - P C_i P`` and right-hand side ``P C_i h_i``."""
    marginal_precision = _symmetric(precision - precision @ step.covariance @ precision)
    marginal_shift = (precision @ (step.covariance @ step.data_rhs[:, :, None]))[:, :, 0]
    return marginal_precision, marginal_shift


def _block_quadratic(prior: FleetPrior, mean: FloatArray, covariance: FloatArray) -> FloatArray:
    """``tr(K_b^-1 (C_i + m_i m_i^T)_bb)`` per twin and term block, ``(n, B)``."""
    out = np.empty((mean.shape[0], len(prior.blocks)))
    for b, block in enumerate(prior.block_slices):
        structure = prior.structure_precision[block, block]
        m = mean[:, block]
        out[:, b] = np.einsum("ab,nba->n", structure, covariance[:, block, block]) + np.einsum(
            "na,ab,nb->n", m, structure, m
        )
    return out


def _twin_sums(
    population: Population, kind: str, batch: _Batch
) -> tuple[int, dict[str, FloatArray], FloatArray]:
    """Each twin's contribution to its kind's row of every summary field, stacked over
    the batch's twins, and each twin's log evidence."""
    _check_population(population, batch)
    t, precision, mean, noise, period = _population_prior(population, kind)
    step = _e_step(batch, precision, mean, noise, population.prior, period)
    marginal_precision, marginal_shift = _marginal(precision, step)
    n = step.mean.shape[0]
    sums = {
        "n_twins": np.ones(n),
        "sum_mean": step.mean,
        "sum_quadratic": _block_quadratic(population.prior, step.mean, step.covariance),
        "sum_precision": marginal_precision,
        "sum_shift": marginal_shift,
        "residual_ss": step.residual_ss,
        "count": batch.count,
        "period_ss": step.period_ss,
        "period_blocks": np.stack(
            [np.zeros(batch.count.shape[1]) if b is None else b.n_per_bin for b in batch.periods]
        ),
    }
    return t, sums, step.log_evidence


def _in_row(population: Population, t: int, value: FloatArray, n_leading: int) -> FloatArray:
    """``value`` in row ``t`` of a per-kind field (zeros in the other kinds' rows)."""
    lead, rest = value.shape[:n_leading], value.shape[n_leading:]
    out = np.zeros((*lead, population.n_kinds, *rest))
    out[(slice(None),) * n_leading + (t,)] = value
    return out


def _summaries(population: Population, kind: str, batch: _Batch) -> list[LocalSummary]:
    """Each twin's :func:`local_step`, computed together for a batch of one kind."""
    t, sums, log_evidence = _twin_sums(population, kind, batch)
    stacked = {name: _in_row(population, t, value, 1) for name, value in sums.items()}
    return LocalSummary._rows(population.kinds, stacked, log_evidence)


def _batch_total(population: Population, kind: str, batch: _Batch) -> LocalSummary:
    """The sum of the summaries of a batch of twins, without building each (the central
    fit of a large fleet)."""
    t, sums, log_evidence = _twin_sums(population, kind, batch)
    return LocalSummary(
        population.kinds,
        **{name: _in_row(population, t, value.sum(axis=0), 0) for name, value in sums.items()},
        log_evidence=float(log_evidence.sum()),
    )


def _check_population(population: Population, batch: _Batch) -> None:
    """Refuse a population of another basis or other noise bins than the twins' (what a
    twin checks of what it receives: over Flower it sees no other twin)."""
    p, n_bins = population.prior.n_features, batch.count.shape[1]
    noise_bins = None if population.noise_var is None else population.noise_var.shape[1]
    if p != batch.n_features or noise_bins not in (None, n_bins):
        raise ValueError(
            f"population: expected {batch.n_features} features and {n_bins} noise bins (the "
            f"twin's statistics'), got {p} and {noise_bins or 'no noise yet'}: the fleet's "
            "prior and every twin need the same emulator settings"
        )


def local_step(stats: TwinStatistics, population: Population) -> LocalSummary:
    """The E-step a twin runs on its own statistics: its summary for the M-step.

    Parameters
    ----------
    stats
        The twin's statistics (they do not leave the twin).
    population
        The population broadcast for this round.

    Returns
    -------
    LocalSummary
        Sums only: the twin's posterior mean ``m_i`` and second moment
        ``C_i + m_i m_i^T`` of its weights, its expected per-bin residual sums of
        squares and counts, its log evidence; all in its kind's row.

    Examples
    --------
    >>> from twinweave.models import BayesianBasisRegression, SplineTerm
    >>> emulator = BayesianBasisRegression(
    ...     target="y", terms=(SplineTerm("x", 0, 1, 4),), noise_source="x",
    ...     noise_edges=[0.0, 0.5, 1.0])
    >>> x = np.linspace(0, 1, 50)
    >>> stats = TwinStatistics.from_emulator(emulator.update({"x": x, "y": x}))
    >>> population = initial_population(FleetPrior.from_emulator(emulator), ["default"])
    >>> summary = local_step(stats, population)
    >>> summary.n_twins.tolist(), summary.sum_mean.shape
    ([1.0], (1, 7))
    """
    check_type(stats, TwinStatistics, "stats")
    check_type(population, Population, "population")
    return named_local_step(stats, population, "stats")


def named_local_step(stats: TwinStatistics, population: Population, label: str) -> LocalSummary:
    """:func:`local_step`, whose errors name the twin ``label`` (a gossip node)."""
    (summary,) = _summaries(population, stats.kind, _Batch.of([stats], [label]))
    return summary


def local_steps(stats: Sequence[TwinStatistics], population: Population) -> list[LocalSummary]:
    """:func:`local_step` of every twin in ``stats``, in the order of ``stats``.

    Vectorised over the twins of a kind, and each twin's summary is bit for bit the one
    it computes alone: simulating many twins in one process changes no number.
    """
    check_fleet(stats)
    check_type(population, Population, "population")
    return _local_steps(_batches(stats), len(stats), population)


def _local_steps(batches: _Batches, n_twins: int, population: Population) -> list[LocalSummary]:
    out: list[LocalSummary | None] = [None] * n_twins
    for kind, members, batch in batches:
        for i, summary in zip(members, _summaries(population, kind, batch), strict=True):
            out[i] = summary
    return [s for s in out if s is not None]


def twin_posterior(stats: TwinStatistics, population: Population) -> TwinPosterior:
    """The twin's own posterior given the population, kept locally: the E-step's mean,
    and its covariance widened by the population mean's uncertainty (``Cov[mu]``) as
    far as the twin's weights lean on the mean (where it has no readings)."""
    check_type(stats, TwinStatistics, "stats")
    return twin_posteriors([stats], population)[0]


def twin_posteriors(stats: Sequence[TwinStatistics], population: Population) -> list[TwinPosterior]:
    """:func:`twin_posterior` of every twin, vectorised over twins of a kind."""
    check_type(population, Population, "population")
    check_fleet(stats, population.prior)  # the population's basis, not just its sizes
    fingerprint = fleet_fingerprint(stats, population.prior)
    return _twin_posteriors(_batches(stats), len(stats), population, fingerprint)


def _twin_posteriors(
    batches: _Batches, n_twins: int, population: Population, fingerprint: str | None
) -> list[TwinPosterior]:
    """Every twin's posterior; ``fingerprint`` is the fleet's basis, which their
    predictions then require of a design."""
    out: list[TwinPosterior | None] = [None] * n_twins
    for kind, members, batch in batches:
        _check_population(population, batch)
        t, precision, mean, noise, period = _population_prior(population, kind)
        step = _e_step(batch, precision, mean, noise, population.prior, period)
        # The E-step conditions on the population mean's estimate; given all the data
        # the weights also carry its uncertainty, as far as they lean on it: from
        # E[w | mu] = C (Sigma^-1 mu + h), C Sigma^-1 Cov[mu] Sigma^-1 C (Lindley and
        # Smith 1972). Small where the twin has readings; where neither it nor its fleet
        # has any (winds above all seen), the twin is as unsure as its kind's mean.
        lean = step.covariance @ precision
        carried = lean @ population.mean_covariance[t] @ lean.swapaxes(-1, -2)
        covariance = step.covariance + 0.5 * (carried + carried.swapaxes(-1, -2))
        for j, i in enumerate(members):
            # A twin without period statistics is modelled without period effects.
            own_period = None if batch.periods[j] is None else period
            out[i] = TwinPosterior(
                kind, step.mean[j], covariance[j], step.noise_var[j], own_period, fingerprint
            )
    return [p for p in out if p is not None]


def kinds_of(stats: Sequence[TwinStatistics]) -> tuple[str, ...]:
    """The twins' kinds in order of first appearance."""
    return tuple(dict.fromkeys(s.kind for s in stats))


def initial_population(prior: FleetPrior, kinds: Sequence[str]) -> Population:
    """Where the rounds start: every twin alone under the single-twin prior.

    Weights ``N(prior_mean, prior_precision^-1)`` for every kind and no population noise
    yet, so the first local step of each twin is exactly its no-pooling posterior.
    """
    check_type(prior, FleetPrior, "prior")
    kinds = check_kinds(kinds)
    n_kinds, p = len(kinds), prior.n_features
    prior_covariance = _inverse(prior.prior_precision)
    return Population(
        prior=prior,
        kinds=kinds,
        mean=np.tile(prior.prior_mean, (n_kinds, 1)),
        mean_covariance=np.zeros((n_kinds, p, p)),
        covariance=np.tile(prior_covariance, (n_kinds, 1, 1)),
        noise_var=None,
        global_mean=prior.prior_mean,
        global_covariance=prior_covariance,
        between_covariance=prior_covariance if n_kinds > 1 else None,
    )


def check_start_bins(start: Population, n_bins: int) -> None:
    """Refuse a starting population of other noise bins than the twins' ``n_bins``."""
    for name, values in (("noise_var", start.noise_var), ("period_var", start.period_var)):
        if values is not None and values.shape[1] != n_bins:
            raise ValueError(
                f"start: expected {name} for the twins' {n_bins} noise bins, got {values.shape[1]}"
            )


def starting_population(
    prior: FleetPrior,
    kinds: Sequence[str],
    start: Population | None,
    *,
    n_bins: int | None = None,
) -> Population:
    """Where the rounds start: :func:`initial_population`, or ``start``, a population
    fitted before (a refit after a twin joined or gathered readings), checked against
    the fleet.

    ``start`` gives the values; ``prior`` the settings the rounds use from here on
    (it replaces ``start.prior``, which must share its basis and term blocks).
    ``n_bins``, where known, is the twins' number of noise bins.
    """
    kinds = check_kinds(kinds)
    if start is None:
        return initial_population(prior, kinds)
    check_type(start, Population, "start", "a Population (a fit's .population)")
    if start.prior.n_features != prior.n_features or start.prior.blocks != prior.blocks:
        raise ValueError(
            f"start: expected a population of the prior's basis ({prior.n_features} weights "
            f"in term blocks {prior.blocks}), got {start.prior.n_features} weights in "
            f"{start.prior.blocks}"
        )
    if set(start.kinds) != set(kinds):
        raise ValueError(
            f"start: expected the fleet's kinds {kinds}, got {start.kinds}; a fleet with a "
            "kind the start does not know fits from the prior (start=None)"
        )
    if n_bins is not None:
        check_start_bins(start, n_bins)
    # The kinds in the fleet's order (a newcomer listed first changes it).
    order = [start.kinds.index(kind) for kind in kinds]
    return dataclasses.replace(
        start,
        prior=prior,
        kinds=kinds,
        mean=start.mean[order],
        mean_covariance=start.mean_covariance[order],
        covariance=start.covariance[order],
        noise_var=None if start.noise_var is None else start.noise_var[order],
        period_var=None if start.period_var is None else start.period_var[order],
    )


def _block_scales(prior: FleetPrior, scatter: FloatArray) -> FloatArray:
    """``tr(K_b^-1 X_bb) / p_b`` for each block ``b`` of the scatter ``X``: the scale
    that makes ``s2_b K_b`` match ``X`` (the maximum-likelihood scale of ``n`` deviations
    with scatter ``n X``)."""
    out = np.empty(len(prior.blocks))
    for b, block in enumerate(prior.block_slices):
        size = block.stop - block.start
        precision = prior.structure_precision[block, block]
        out[b] = np.einsum("ab,ba->", precision, scatter[block, block]) / size
    return out


def _scatter_scales(
    prior: FleetPrior,
    quadratic: FloatArray,
    sum_mean: FloatArray,
    n_twins: float,
    mean: FloatArray,
) -> FloatArray:
    """:func:`_block_scales` of the scatter ``E = sum_i E[(w_i - mu)(w_i - mu)^T]`` of
    ``n_twins`` twins about ``mean``, from their summed block quadratics
    ``Q_b = sum_i tr(K_b^-1 (C_i + m_i m_i^T)_bb)`` and means ``M = sum_i m_i``:
    ``tr(K_b^-1 E_bb) = Q_b - 2 mu_b^T K_b^-1 M_b + N mu_b^T K_b^-1 mu_b``."""
    out = np.empty(len(prior.blocks))
    for b, block in enumerate(prior.block_slices):
        structure = prior.structure_precision[block, block]
        mu = mean[block]
        cross = mu @ structure @ sum_mean[block]
        trace = quadratic[b] - 2.0 * cross + n_twins * (mu @ structure @ mu)
        out[b] = trace / (block.stop - block.start)
    return out


def _structured(prior: FleetPrior, scales: FloatArray) -> FloatArray:
    """``blockdiag(s2_b K_b)``."""
    out = np.zeros((prior.n_features, prior.n_features))
    for scale, block in zip(scales, prior.block_slices, strict=True):
        out[block, block] = (
            max(float(scale), _MIN_VARIANCE) * prior.structure_covariance[block, block]
        )
    return out


def _means(
    population: Population, total: LocalSummary
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """The joint Gaussian posterior of the global mean and the kinds' means given the
    covariances and noise: the kinds' means and covariances, the global mean and
    covariance, and each kind's covariance with the global mean.

    Each twin's weights are integrated out exactly (its summary carries the precision
    and right-hand side its data give its kind's mean), so the means reach their
    conditional optimum in one round instead of crawling there by EM (an ECME step,
    Liu and Rubin 1994, *Biometrika* 81(4), 633-648).
    """
    prior = population.prior
    p, n_kinds = prior.n_features, population.n_kinds
    p0, mu0 = prior.mean_prior_weight * prior.prior_precision, prior.prior_mean
    if n_kinds == 1:
        covariance = _inverse(p0 + total.sum_precision[0])
        mean = covariance @ (p0 @ mu0 + total.sum_shift[0])
        return mean[None], covariance[None], mean, covariance, covariance[None]
    if population.between_covariance is None:
        raise ValueError("population: expected a between-kind covariance with several kinds")
    between_precision = _inverse(population.between_covariance)
    size = (n_kinds + 1) * p
    precision = np.zeros((size, size))
    rhs = np.zeros(size)
    precision[:p, :p] = p0 + n_kinds * between_precision
    rhs[:p] = p0 @ mu0
    for t in range(n_kinds):
        block = slice((t + 1) * p, (t + 2) * p)
        precision[block, block] = between_precision + total.sum_precision[t]
        precision[:p, block] = -between_precision
        precision[block, :p] = -between_precision
        rhs[block] = total.sum_shift[t]
    covariance = _inverse(precision)
    mean = covariance @ rhs
    kinds_mean = mean[p:].reshape(n_kinds, p)
    kinds_cov = np.stack(
        [covariance[(t + 1) * p : (t + 2) * p, (t + 1) * p : (t + 2) * p] for t in range(n_kinds)]
    )
    cross = np.stack([covariance[(t + 1) * p : (t + 2) * p, :p] for t in range(n_kinds)])
    return kinds_mean, kinds_cov, mean[:p], covariance[:p, :p], cross


@_on_one_blas_thread
def aggregate(
    summaries: LocalSummary | Sequence[LocalSummary], population: Population
) -> Population:
    """The M-step: the next population from the twins' summaries (or their sum).

    Parameters
    ----------
    summaries
        The summaries the twins returned for ``population``, or their sum: the result
        depends on the sum only (``aggregate(list) == aggregate(sum_summaries(list))``).
        Twins absent from the sum are left out of this round's estimate.
    population
        The population the round was configured with.

    Returns
    -------
    Population
        The kinds' means and the global mean (their joint Gaussian posterior given the
        covariances), the covariance of twins within each kind and of the kinds about
        the global mean (structured, ``blockdiag(s2_b K_b)``, with the scales' EM
        updates), each kind's per-bin noise variance (the kind's pooled residual
        variance per bin, shrunk towards its all-bin pooled variance) and, where twins
        hold period statistics, each kind's per-bin variance of the period effects.
    """
    check_type(population, Population, "population")
    total = summaries if isinstance(summaries, LocalSummary) else sum_summaries(summaries)
    if total.kinds != population.kinds:
        raise ValueError(
            f"summaries: expected kinds {population.kinds}, got {total.kinds}; were they "
            "computed for this population?"
        )
    prior = population.prior
    if total.n_features != prior.n_features:
        raise ValueError(f"summaries: expected {prior.n_features} features, got {total.n_features}")
    if total.sum_quadratic.shape[1] != len(prior.blocks):
        raise ValueError(
            f"summaries: expected {len(prior.blocks)} term blocks, got "
            f"{total.sum_quadratic.shape[1]}"
        )
    n_all = float(total.n_twins.sum())
    if not n_all > 0:
        raise ValueError("summaries: expected at least one twin, got none")
    kinds_mean, kinds_cov, global_mean, global_cov, cross = _means(population, total)
    # Scatter of each kind's twins about its mean, through each block's quadratic
    # form. The kind's mean enters as a point (the EM of BDA3 section 15.4 treats it as
    # a parameter): adding its posterior covariance as well would count the twins'
    # common uncertainty twice, once in each C_i (computed given the mean) and once more
    # here, and inflate Sigma round after round in directions the data do not reach.
    # One scale per term block and kind, each kind's shrunk towards the fleet's with
    # scale_prior_count pseudo-twins (with one kind: the EM update of the scales).
    raw = np.stack(
        [
            _scatter_scales(
                prior, total.sum_quadratic[t], total.sum_mean[t], total.n_twins[t], kinds_mean[t]
            )
            for t in range(population.n_kinds)
        ]
    )
    fleet_scales = raw.sum(axis=0) / n_all
    nu = prior.scale_prior_count
    covariance = np.stack(
        [
            _structured(prior, (raw[t] + nu * fleet_scales) / (total.n_twins[t] + nu))
            for t in range(population.n_kinds)
        ]
    )
    between = population.between_covariance
    # Only kinds with twins in this round's sum say how the kinds spread: a kind without
    # (none yet, or all gone) has a mean the data do not reach, and counting it let
    # Sigma_B drift round after round. With fewer than two such kinds nothing does, and
    # Sigma_B keeps its value.
    held = [t for t in range(population.n_kinds) if total.n_twins[t] > 0]
    if population.n_kinds > 1 and len(held) > 1:
        # The kinds' means are latent here: their joint posterior covariance enters.
        between_scatter = np.zeros_like(global_cov)
        for t in held:
            d = kinds_mean[t] - global_mean
            between_scatter += np.outer(d, d) + kinds_cov[t] + global_cov - cross[t] - cross[t].T
        scales = _block_scales(prior, _symmetric(between_scatter)) / len(held)
        between = _structured(prior, scales)
    return Population(
        prior=prior,
        kinds=population.kinds,
        mean=kinds_mean,
        mean_covariance=kinds_cov,
        covariance=covariance,
        noise_var=_noise(total, population.noise_var, prior.population_noise_prior_count),
        global_mean=global_mean,
        global_covariance=global_cov,
        between_covariance=between,
        period_var=_period_var(total, prior.period_prior_count),
    )


def _period_var(total: LocalSummary, prior_count: float) -> FloatArray | None:
    """Each kind's per-bin variance of the period effects: the EM update
    ``omega2_tj = sum E[u_c^2] / (number of blocks)`` over the kind's blocks in bin
    ``j`` (Laird and Ware 1982, *Biometrics* 38(4), 963-974), shrunk with
    ``prior_count`` pseudo-blocks towards the kind's all-bin value (so a bin without
    blocks takes that value); a kind without blocks takes the fleet's. ``None`` where
    no twin has period statistics: the model without period effects."""
    n_all = float(total.period_blocks.sum())
    if not n_all > 0:
        return None
    fleet = max(float(total.period_ss.sum()) / n_all, _MIN_VARIANCE)
    blocks_of_kind = total.period_blocks.sum(axis=1, keepdims=True)
    kind = np.where(
        blocks_of_kind > 0,
        total.period_ss.sum(axis=1, keepdims=True) / np.maximum(blocks_of_kind, 1.0),
        fleet,
    )
    blocks = total.period_blocks + prior_count
    per_bin = np.where(
        blocks > 0,
        (total.period_ss + prior_count * kind) / np.where(blocks > 0, blocks, 1.0),
        kind,
    )
    return np.asarray(np.maximum(per_bin, _MIN_VARIANCE), dtype=np.float64)


def _noise(
    total: LocalSummary, previous: FloatArray | None, prior_count: float
) -> FloatArray | None:
    """Each kind's per-bin noise variance: what a typical twin of the kind would estimate
    alone. Per twin, the kind's residual sum of squares and count in each bin, shrunk
    with ``prior_count`` pseudo-readings towards the kind's all-bin pooled variance, as
    :class:`~twinweave.models.BayesianBasisRegression` shrinks its own; a kind without
    readings takes the fleet's."""
    n_all = float(total.count.sum())
    if not n_all > 0:
        return previous
    n_twins = total.n_twins[:, None]
    has_twins = (total.n_twins > 0)[:, None]
    per_twin_rss = np.where(
        has_twins,
        total.residual_ss / np.where(has_twins, n_twins, 1.0),
        total.residual_ss.sum(axis=0) / total.n_twins.sum(),
    )
    per_twin_count = np.where(
        has_twins,
        total.count / np.where(has_twins, n_twins, 1.0),
        total.count.sum(axis=0) / total.n_twins.sum(),
    )
    n_kind = per_twin_count.sum(axis=1, keepdims=True)
    fleet_pooled = max(float(total.residual_ss.sum()) / n_all, _MIN_VARIANCE)
    pooled = np.where(
        n_kind > 0,
        per_twin_rss.sum(axis=1, keepdims=True) / np.maximum(n_kind, 1e-300),
        fleet_pooled,
    )
    pooled = np.maximum(pooled, _MIN_VARIANCE)
    weight = per_twin_count + prior_count
    shrunk = (per_twin_rss + prior_count * pooled) / np.where(weight > 0, weight, 1.0)
    return np.asarray(np.maximum(np.where(weight > 0, shrunk, pooled), _MIN_VARIANCE))


def _relative(old: FloatArray | None, new: FloatArray | None) -> float:
    if old is None or new is None:
        return 0.0 if old is None and new is None else float("inf")
    scale = float(np.linalg.norm(old))
    return float(np.linalg.norm(new - old)) / scale if scale > 0 else float(np.linalg.norm(new))


def _relative_to(old: FloatArray | None, new: FloatArray | None, scale: FloatArray) -> float:
    if old is None or new is None:
        return _relative(old, new)
    return float(np.linalg.norm(new - old)) / max(float(np.linalg.norm(scale)), 1e-300)


def _in_kind_order(population: Population, kinds: tuple[str, ...]) -> Population:
    """``population`` with its kinds in the order ``kinds``, which must be its kinds."""
    if population.kinds == kinds:
        return population
    if sorted(population.kinds) != sorted(kinds):
        raise ValueError(
            f"new: expected a population of the same kinds as old, {list(kinds)}, got "
            f"{list(population.kinds)}"
        )
    order = [population.kinds.index(kind) for kind in kinds]
    per_kind = ("mean", "mean_covariance", "covariance", "noise_var", "period_var")
    changes = {
        name: getattr(population, name)[order]
        for name in per_kind
        if getattr(population, name) is not None
    }
    return dataclasses.replace(population, kinds=kinds, **changes)


def population_change(old: Population, new: Population) -> float:
    """Largest relative change between two populations: of the kinds' means, the
    covariances (Frobenius norms), and every per-bin noise variance.

    The rounds stop when it falls below a tolerance; every runner (central, federated,
    gossip) uses this rule, so they stop at the same round.

    A covariance is measured against the covariance it enters a prediction with: the
    twins' ``Sigma_t`` against a new twin's weights' ``Sigma_t + Cov[mu_t]``, the
    kinds' ``Sigma_B`` against a new kind's mean's ``Sigma_B + Cov[mu_g]``. Where the
    twins (or kinds) do not differ beyond what their data can tell, EM takes ``Sigma``
    towards zero by about ``1 / round`` of itself per round and a change relative to
    ``Sigma`` alone would never settle; beside the uncertainty of the mean, a
    vanishing ``Sigma`` no longer changes what the fleet predicts.

    The two populations' kinds are matched by name (a fleet listed in another order
    has its kinds in another order); populations of different kinds are refused.
    """
    new = _in_kind_order(new, old.kinds)
    noise = (
        _relative(old.noise_var, new.noise_var)
        if old.noise_var is None or new.noise_var is None
        else float(np.max(np.abs(new.noise_var - old.noise_var) / old.noise_var))
    )
    # A period variance is measured against a reading's whole variance about the
    # curve: where it heads for zero (bins where power sits at a bound), EM approaches
    # the boundary slowly and its own relative change would never settle.
    period = (
        _relative(old.period_var, new.period_var)
        if old.period_var is None or new.period_var is None or old.noise_var is None
        else float(
            np.max(np.abs(new.period_var - old.period_var) / (old.noise_var + old.period_var))
        )
    )
    between = (
        _relative(old.between_covariance, new.between_covariance)
        if old.between_covariance is None
        else _relative_to(
            old.between_covariance,
            new.between_covariance,
            old.between_covariance + old.global_covariance,
        )
    )
    return max(
        _relative(old.mean, new.mean),
        _relative_to(old.covariance, new.covariance, old.covariance + old.mean_covariance),
        between,
        noise,
        period,
    )
