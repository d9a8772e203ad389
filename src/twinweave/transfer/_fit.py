"""Fleet fits in one process: partial pooling by rounds, and the two baselines.

:func:`fit_central` runs the same rounds that federated and gossip runners run — a local
step on every twin, a sum, an aggregation — in one process. :func:`no_pooling` (every
twin alone, exactly :class:`~twinweave.models.BayesianBasisRegression`'s posterior) and
:func:`complete_pooling` (one curve for the summed statistics of the whole fleet) are
the baselines of Bull et al. (2023), *Computer-Aided Civil and Infrastructure
Engineering* 38(7), 821-848, doi:10.1111/mice.12901.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from twinweave.core import CensoredNormal, Columns
from twinweave.models import posterior_from_statistics
from twinweave.transfer._hierarchy import (
    _batch_total,
    _batches,
    _inverse,
    _twin_posteriors,
    aggregate,
    kinds_of,
    population_change,
    starting_population,
)
from twinweave.transfer._records import (
    Design,
    FleetPrior,
    Population,
    TwinPosterior,
    TwinStatistics,
    check_fleet,
    check_readings,
    check_rounds,
    sum_summaries,
    warn_not_converged,
)

#: A fleet's statistics: a mapping from twin identifier to statistics (the twins are then
#: known by identifier in the fit), or a sequence (known by index).
FleetStatistics = Sequence[TwinStatistics] | Mapping[str, TwinStatistics]


@dataclass(frozen=True, eq=False)
class FleetPosterior:
    """Posteriors of a fleet's twins, and what a new twin of each kind would start from.

    Parameters
    ----------
    twins
        Each twin's posterior, in the order of the statistics fitted.
    new_twin
        Per kind, the weights and noise of a twin of that kind with no data: for partial
        pooling, the population (``N(E[mu_t], Sigma_t + Cov[mu_t])``, noise ``tau2_t``,
        with period effects of variance ``omega2_t``).
    population
        The fitted population (``None`` for the baselines).
    n_rounds
        Rounds run (aggregations).
    converged
        Whether the rounds stopped on the tolerance rather than the round limit.
    log_evidence
        Sum of the twins' log evidence given each round's population [nats], for
        monitoring: the noise updates are shrinkage estimators rather than exact EM
        steps, so it need not rise every round.
    twin_ids
        The twins' identifiers, in the order of ``twins``, when the statistics were
        given as a mapping from identifier to statistics; empty for a sequence.
    """

    twins: tuple[TwinPosterior, ...]
    new_twin: Mapping[str, TwinPosterior]
    population: Population | None = None
    n_rounds: int = 0
    converged: bool = True
    log_evidence: tuple[float, ...] = ()
    twin_ids: tuple[str, ...] = ()

    def predict(
        self,
        twin: str | int | None,
        inputs: Columns,
        design: Design,
        *,
        kind: str | None = None,
    ) -> CensoredNormal:
        """Predictive distribution of a fitted twin, or of a new twin with no data.

        Parameters
        ----------
        twin
            A fitted twin: its identifier (statistics given as a mapping) or its index
            in the order fitted; ``None`` for a new twin of ``kind``.
        inputs
            Input columns (for a power curve: ``wind_speed`` [m/s] and optionally
            ``temp_air`` [degC], ``wind_direction`` [degree]).
        design
            The twin's emulator, whose basis gives the features at ``inputs``.
        kind
            A new twin's kind; by default the only kind of the fleet.

        Returns
        -------
        CensoredNormal
            Per point, censored to the design's bounds [units]; the weights' uncertainty
            is a shared factor (points are correlated through it).
        """
        if isinstance(twin, str):
            twin = self._index(twin)
        if twin is not None:
            if kind is not None:
                raise ValueError("kind: expected None for a fitted twin (it has its kind)")
            # A negative index would silently pick a twin from the end.
            if isinstance(twin, bool) or not isinstance(twin, int | np.integer):
                raise TypeError(
                    f"twin: expected an identifier (str), an index (int) or None, got {twin!r}"
                )
            if not 0 <= twin < len(self.twins):
                raise IndexError(
                    f"twin: expected an index in [0, {len(self.twins) - 1}] (the order the "
                    f"twins' statistics were given in) or None for a new twin, got {twin}"
                )
            return self.twins[twin].predict(inputs, design)
        if kind is None:
            if len(self.new_twin) != 1:
                raise ValueError(
                    f"kind: expected one of {sorted(self.new_twin)} for a new twin in a "
                    "fleet of several kinds"
                )
            (kind,) = self.new_twin
        if kind not in self.new_twin:
            raise KeyError(f"kind {kind!r}: not among the fleet's kinds {sorted(self.new_twin)}")
        return self.new_twin[kind].predict(inputs, design)

    def _index(self, twin_id: str) -> int:
        if not self.twin_ids:
            raise KeyError(
                f"twin {twin_id!r}: the statistics were fitted as a sequence, so the twins "
                "are known by index; fit a mapping {twin_id: statistics} to name them"
            )
        if twin_id not in self.twin_ids:
            raise KeyError(f"twin {twin_id!r}: expected one of {list(self.twin_ids)}")
        return self.twin_ids.index(twin_id)


def _fleet(
    stats: FleetStatistics,
) -> tuple[list[TwinStatistics], tuple[str, ...], list[str] | None]:
    """The statistics in order, the twins' identifiers (none for a sequence) and the
    twins' labels in messages (default: their index)."""
    if isinstance(stats, Mapping):
        for twin_id in stats:
            if not isinstance(twin_id, str):
                raise TypeError(f"stats: expected twin identifiers (str) as keys, got {twin_id!r}")
        return list(stats.values()), tuple(stats), [f"stats[{t!r}]" for t in stats]
    return list(stats), (), None


def population_twins(population: Population) -> dict[str, TwinPosterior]:
    """What a new twin of each kind, with no data, starts from: its kind's population."""
    if population.noise_var is None:
        raise ValueError("population: expected one with noise variances (after a round)")
    return {
        kind: TwinPosterior(
            kind,
            population.mean[t],
            population.covariance[t] + population.mean_covariance[t],
            population.noise_var[t],
            None if population.period_var is None else population.period_var[t],
        )
        for t, kind in enumerate(population.kinds)
    }


def fit_central(
    stats: FleetStatistics,
    prior: FleetPrior,
    *,
    n_rounds: int = 1000,
    tol: float = 1e-6,
    start: Population | None = None,
) -> FleetPosterior:
    """Partial pooling: the hierarchical fleet model fitted by rounds, in one process.

    Each round runs every twin's :func:`~twinweave.transfer.local_step` on the current
    population (vectorised over the twins of a kind), sums the summaries and
    :func:`~twinweave.transfer.aggregate` s them; the rounds stop when
    :func:`~twinweave.transfer.population_change` falls below ``tol`` or after
    ``n_rounds``. The same rounds run federated or by gossip give the same answer.

    Parameters
    ----------
    stats
        Every twin's statistics (any mix of kinds; kinds are ordered by first
        appearance): a mapping from twin identifier to statistics, as federated and
        gossip fits take them, or a sequence (twins then known by index).
    prior
        The hierarchy's hyperprior and settings.
    n_rounds
        Upper bound on rounds.
    tol
        Largest relative change of the population at which the rounds stop.
    start
        A population fitted before to start from (an earlier fit's ``population``, e.g.
        before a twin joined or gathered more readings), instead of the prior's
        (:func:`~twinweave.transfer.initial_population`). The rounds head for the same
        answer and need fewer of them. Its kinds must be the fleet's; ``prior``'s
        settings apply.

    Returns
    -------
    FleetPosterior
        Every twin's posterior given the final population, and the population.

    Examples
    --------
    >>> from twinweave.models import BayesianBasisRegression, SplineTerm
    >>> rng = np.random.default_rng(0)
    >>> def twin(slope, n):
    ...     x = rng.uniform(0, 1, n)
    ...     model = BayesianBasisRegression(
    ...         target="y", terms=(SplineTerm("x", 0, 1, 4),), noise_source="x",
    ...         noise_edges=[0.0, 0.5, 1.0])
    ...     return model.update({"x": x, "y": slope * x + rng.normal(0, 0.1, n)})
    >>> emulators = [twin(1.0 + 0.05 * k, 500) for k in range(5)] + [twin(1.1, 3)]
    >>> stats = [TwinStatistics.from_emulator(e) for e in emulators]
    >>> fleet = fit_central(stats, FleetPrior.from_emulator(emulators[0]))
    >>> fleet.converged
    True
    >>> p = fleet.predict(5, {"x": [0.9]}, emulators[5])
    >>> bool(abs(p.mean[0] - 0.99) < 0.1)
    True
    """
    stats, twin_ids, labels = _fleet(stats)
    check_fleet(stats, prior, pooled=True, names=labels)
    check_rounds(n_rounds, tol)
    check_readings(stats)
    population = starting_population(prior, kinds_of(stats), start, n_bins=stats[0].n_bins)
    # Stacked once: every round's local steps read the same statistics.
    batches = _batches(stats)
    history: list[float] = []
    converged = False
    n_done = 0
    change = np.inf
    for _ in range(n_rounds):
        total = sum_summaries(_batch_total(population, kind, batch) for kind, _, batch in batches)
        history.append(total.log_evidence)
        updated = aggregate(total, population)
        n_done += 1
        change = population_change(population, updated)
        population = updated
        if change < tol:
            converged = True
            break
    if not converged:
        warn_not_converged("fit_central", n_rounds, change, tol=tol)
    return FleetPosterior(
        twins=tuple(_twin_posteriors(batches, len(stats), population)),
        new_twin=population_twins(population),
        population=population,
        n_rounds=n_done,
        converged=converged,
        log_evidence=tuple(history),
        twin_ids=twin_ids,
    )


def _single(stats: TwinStatistics, prior: FleetPrior, kind: str) -> TwinPosterior:
    mean, inv_chol, noise_var = posterior_from_statistics(
        stats.gram,
        stats.moment,
        stats.sum_sq,
        stats.count,
        prior.prior_precision,
        prior.prior_mean,
        noise_prior_count=prior.noise_prior_count,
        n_em_iterations=prior.n_noise_iterations,
    )
    return TwinPosterior(kind, mean, inv_chol.T @ inv_chol, noise_var)


def no_pooling(stats: FleetStatistics, prior: FleetPrior) -> FleetPosterior:
    """Every twin alone: each twin's posterior is its own emulator's.

    A new twin has only the single-twin prior (unit noise variance, as an emulator
    without readings). ``stats`` as in :func:`fit_central`.
    """
    stats, twin_ids, labels = _fleet(stats)
    check_fleet(stats, prior, names=labels)
    empty = TwinPosterior(
        "",
        prior.prior_mean,
        _inverse(prior.prior_precision),
        np.ones(stats[0].n_bins),
    )
    return FleetPosterior(
        twins=tuple(_single(s, prior, s.kind) for s in stats),
        new_twin={
            kind: TwinPosterior(kind, empty.mean, empty.covariance, empty.noise_var)
            for kind in kinds_of(stats)
        },
        twin_ids=twin_ids,
    )


def complete_pooling(stats: FleetStatistics, prior: FleetPrior) -> FleetPosterior:
    """One curve for the whole fleet, fitted to the sum of every twin's statistics; a
    new twin gets the same curve. ``stats`` as in :func:`fit_central`."""
    stats, twin_ids, labels = _fleet(stats)
    check_fleet(stats, prior, names=labels)
    pooled = TwinStatistics.pooled(stats)
    posterior = _single(pooled, prior, pooled.kind)
    return FleetPosterior(
        twins=tuple(
            TwinPosterior(s.kind, posterior.mean, posterior.covariance, posterior.noise_var)
            for s in stats
        ),
        new_twin={
            kind: TwinPosterior(kind, posterior.mean, posterior.covariance, posterior.noise_var)
            for kind in kinds_of(stats)
        },
        twin_ids=twin_ids,
    )
