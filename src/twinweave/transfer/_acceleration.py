"""SQUAREM for the fleet rounds: fewer rounds to the same answer.

Every runner's round is one step of an EM map ``F`` from a population to the next
(:func:`~twinweave.transfer.aggregate` of the twins' summaries). Where the twins, bins or
periods say little about a variance, EM creeps towards its answer by a small fraction of
the remaining distance a round: hundreds of rounds on La Haute Borne, each seconds long
over Flower. SQUAREM (Varadhan and Roland 2008, *Scandinavian Journal of Statistics*
35(2), 335-353; scheme S3, with the adaptive step bounds of Du and Varadhan 2020,
*Journal of Statistical Software* 92(7)) takes two EM steps ``theta1 = F(theta0)``,
``theta2 = F(theta1)``, extrapolates along them with ``r = theta1 - theta0``,
``v = theta2 - 2 theta1 + theta0`` and ``alpha = |r| / |v|``::

    theta' = theta0 + 2 alpha r + alpha^2 v

and runs its next round on ``theta'``, whose aggregate starts the next cycle. The step
is kept only if EM moves ``theta'`` by no more than it moved ``theta1`` (the change
:func:`~twinweave.transfer.population_change` measures, which the stopping rule reads);
otherwise the cycle continues from ``theta2``, one round spent. The twins' summed log
evidence, SQUAREM's usual test, is not what these rounds ascend (the hyperpriors'
shrinkage is not in it): on a synthetic fleet it fell by 0.1 nats over rounds 100 to
1,200 of plain EM, and the test on it rejected every extrapolation there. ``alpha`` is
bounded by a step limit that grows fourfold after a full step and shrinks fourfold after
a rejected one.

What is extrapolated: the kinds' means as they are and the variances on a log scale
(so that they stay positive): each kind's covariance scales per term block, per-bin noise
and period variances, and the kinds' between-covariance scales. The step length
``alpha`` is the means' (``|r|`` and ``|v|`` over the means alone; a ratio, so the
target's unit does not enter). Counted beside the means, variances heading for zero
lengthened the steps along them, and the next round undid them: on La Haute Borne's
four turbines with a year and calendar weeks (exploratory scripts, 2026-11-29, with the
evidence test above), extrapolating by the variances alone had not settled after 400
rounds, and by means (in units of the noise's standard deviation) and variances
together took 976 rounds to 1e-6 against 263.

Nothing changes for the twins: they receive a population and answer with their summary,
as in any round, and the rounds stop by the same rule (the change from the population
a round was run on to its aggregate below ``tol``), so a fit ends on a population that
the EM map leaves where it is. The extrapolation runs where the aggregation runs: at
the coordinator, or at every twin in gossip. A change in which twins answer starts a
new cycle (an extrapolation across two fleets' maps would aim at neither).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Hashable

import numpy as np

from twinweave.transfer._hierarchy import _MIN_VARIANCE, _block_scales, _structured
from twinweave.transfer._records import FloatArray, Population

__all__ = ["Squarem"]

# Du and Varadhan's step limit: it starts at a plain EM step and moves by a factor 4.
# Capped at 16: in a trial on La Haute Borne, steps of up to 50 took a day-old twin's
# posterior precision out of positive definiteness.
_FIRST_STEP_LIMIT = 1.0
_STEP_FACTOR = 4.0
_LARGEST_STEP_LIMIT = 16.0
_LOG_FLOOR = math.log(_MIN_VARIANCE)


def _coordinates(population: Population) -> FloatArray | None:
    """The population as one vector: the means, then the variances' logarithms; ``None``
    where it has no noise variances yet (before the first aggregation)."""
    if population.noise_var is None:
        return None
    prior = population.prior
    parts = [
        np.stack([_block_scales(prior, c) for c in population.covariance]).ravel(),
        population.noise_var.ravel(),
    ]
    if population.period_var is not None:
        parts.append(population.period_var.ravel())
    if population.between_covariance is not None:
        parts.append(_block_scales(prior, population.between_covariance))
    logs = np.log(np.maximum(np.concatenate(parts), _MIN_VARIANCE))
    return np.concatenate([population.mean.ravel(), logs])


def _from_coordinates(like: Population, vector: FloatArray, *, new_between: bool) -> Population:
    """The population at ``vector`` (laid out as :func:`_coordinates` lays it out), with
    ``like``'s other fields; variances floored where the aggregation floors them.

    ``new_between=False`` keeps ``like``'s between-kind covariance as it is: one that the
    rounds did not update (fewer than two kinds held twins) need not be block-structured
    (the prior's is not), and rebuilding it from its block scales would replace it.
    """
    prior = like.prior
    assert like.noise_var is not None  # as for the vector it came with
    n_kinds, n_blocks, n_bins = like.n_kinds, len(prior.blocks), like.noise_var.shape[1]
    mean = vector[: like.mean.size].reshape(like.mean.shape)
    values = np.exp(np.maximum(vector[like.mean.size :], _LOG_FLOOR))
    scales, values = values[: n_kinds * n_blocks], values[n_kinds * n_blocks :]
    noise, values = values[: n_kinds * n_bins], values[n_kinds * n_bins :]
    period = None
    if like.period_var is not None:
        period, values = values[: n_kinds * n_bins], values[n_kinds * n_bins :]
    return dataclasses.replace(
        like,
        mean=mean,
        covariance=np.stack([_structured(prior, s) for s in scales.reshape(n_kinds, n_blocks)]),
        noise_var=noise.reshape(n_kinds, n_bins),
        period_var=None if period is None else period.reshape(n_kinds, n_bins),
        between_covariance=(_structured(prior, values) if new_between else like.between_covariance),
    )


def _same_layout(a: Population, b: Population) -> bool:
    return (
        a.kinds == b.kinds
        and (a.noise_var is None) == (b.noise_var is None)
        and (a.period_var is None) == (b.period_var is None)
        and (a.between_covariance is None) == (b.between_covariance is None)
    )


@dataclasses.dataclass
class _Cycle:
    base: Population  # theta0
    base_vector: FloatArray
    reference_change: float  # of the round on theta1: what theta' must not exceed
    first: Population | None = None  # theta1
    second: Population | None = None  # theta2, kept while theta' is tried
    alpha: float = 1.0


class Squarem:
    """The SQUAREM schedule of a fleet's rounds (see the module notes).

    A runner calls :meth:`next_population` after every round it does not stop at, with
    the population the round ran on, its aggregate, the change between them and who
    answered; it returns the population to run the next round on. The schedule holds
    at most three populations.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the rounds so far: the next round is a plain EM step."""
        self._cycle: _Cycle | None = None
        self._sent: Population | None = None
        self._twins: frozenset[Hashable] | None = None
        self._step_limit = _FIRST_STEP_LIMIT
        self.n_extrapolated = 0
        self.n_rejected = 0

    def next_population(
        self,
        ran_on: Population,
        aggregated: Population,
        change: float,
        twins: Collection[Hashable],
        *,
        extrapolate: bool = True,
    ) -> Population:
        """The population for the next round.

        Parameters
        ----------
        ran_on
            The population the round ran on (what the last call returned, or where
            the rounds started).
        aggregated
            :func:`~twinweave.transfer.aggregate` of the round's summaries.
        change
            :func:`~twinweave.transfer.population_change` from ``ran_on`` to
            ``aggregated``.
        twins
            Who answered the round.
        extrapolate
            ``False`` when the next round is the last: its population is then an
            aggregate (the fit returns that round's aggregate, which a round on an
            extrapolation would leave untested).
        """
        answered = frozenset(twins)
        cycle = self._cycle
        if ran_on is not self._sent or answered != self._twins or cycle is None:
            # Rounds that this schedule did not set, or another fleet: start a cycle
            # here, the aggregate being a plain EM step.
            self._twins = answered
            self._cycle = None
            return self._start(aggregated)
        if cycle.first is None:
            cycle.first = aggregated
            return self._send(aggregated)
        if cycle.second is None:
            cycle.reference_change = change
            return self._extrapolate(cycle, aggregated) if extrapolate else self._start(aggregated)
        # The round ran on theta': keep it if EM moves it no more than it moved theta1.
        if change <= cycle.reference_change:
            self._grow_step_limit(cycle.alpha)
            return self._start(aggregated)
        self.n_rejected += 1
        if cycle.alpha >= self._step_limit:
            self._step_limit = max(_FIRST_STEP_LIMIT, self._step_limit / _STEP_FACTOR)
        return self._start(cycle.second)

    def evaluated(self, population: Population) -> Population:
        """``population``, or, where it is an extrapolation that no round has run on yet,
        the aggregate it was extrapolated from (``theta2``): what a fit can return when
        its last round brought no answers."""
        cycle = self._cycle
        if cycle is not None and cycle.second is not None and population is self._sent:
            return cycle.second
        return population

    def _grow_step_limit(self, alpha: float) -> None:
        """After a step of ``alpha`` that stands (kept, or theta2 itself): one as long as the
        limit allows raises it."""
        if alpha >= self._step_limit:
            self._step_limit = min(self._step_limit * _STEP_FACTOR, _LARGEST_STEP_LIMIT)

    def _send(self, population: Population) -> Population:
        self._sent = population
        return population

    def _start(self, base: Population) -> Population:
        vector = _coordinates(base)
        self._cycle = None if vector is None else _Cycle(base, vector, math.inf)
        return self._send(base)

    def _extrapolate(self, cycle: _Cycle, second: Population) -> Population:
        assert cycle.first is not None
        first = _coordinates(cycle.first)
        last = _coordinates(second)
        if (
            first is None
            or last is None
            or not (_same_layout(cycle.base, cycle.first) and _same_layout(cycle.first, second))
        ):
            return self._start(second)
        r = first - cycle.base_vector
        v = last - 2.0 * first + cycle.base_vector
        # The means' step length (see the module notes).
        n_means = cycle.base.mean.size
        r_norm, v_norm = float(np.linalg.norm(r[:n_means])), float(np.linalg.norm(v[:n_means]))
        alpha = r_norm / v_norm if v_norm > 0 else (self._step_limit if r_norm > 0 else 1.0)
        alpha = min(max(alpha, 1.0), self._step_limit)
        if alpha <= 1.0:
            # theta' would be theta2: the cycle ends there, and the limit grows.
            self._grow_step_limit(alpha)
            return self._start(second)
        cycle.second, cycle.alpha = second, alpha
        self.n_extrapolated += 1
        vector = cycle.base_vector + 2.0 * alpha * r + alpha**2 * v
        # A between-kind covariance the three rounds kept as it was stays so.
        b0, b1, b2 = (p.between_covariance for p in (cycle.base, cycle.first, second))
        new_between = not (
            b0 is None
            or b1 is None
            or b2 is None
            or (np.array_equal(b0, b1) and np.array_equal(b1, b2))
        )
        return self._send(_from_coordinates(second, vector, new_between=new_between))
