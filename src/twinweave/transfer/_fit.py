"""Fleet fits in one process: partial pooling by rounds, and the two baselines.

:func:`fit_central` runs the same rounds that federated and gossip runners run — a local
step on every twin, a sum, an aggregation — in one process. :func:`no_pooling` (every
twin alone, exactly :class:`~twinweave.models.BayesianBasisRegression`'s posterior) and
:func:`complete_pooling` (one curve for the summed statistics of the whole fleet) are
the baselines of Bull et al. (2023), *Computer-Aided Civil and Infrastructure
Engineering* 38(7), 821-848, doi:10.1111/mice.12901.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from twinweave.core import CensoredNormal, Columns
from twinweave.core._arguments import check_flag
from twinweave.models import BayesianBasisRegression, SplineTerm, posterior_from_statistics
from twinweave.transfer._acceleration import Squarem
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
from twinweave.transfer._progress import round_progress
from twinweave.transfer._records import (
    DEFAULT_KIND,
    Design,
    FleetPrior,
    FloatArray,
    Population,
    ReadOnlyMapping,
    TwinId,
    TwinPosterior,
    TwinStatistics,
    check_fleet,
    check_readings,
    check_rounds,
    check_same_basis,
    check_type,
    fleet_entries,
    fleet_fingerprint,
    listed_ids,
    refuse_bool,
    sum_summaries,
    warn_not_converged,
    with_fleet_fingerprint,
)


@dataclass(frozen=True, eq=False)
class FleetPosterior:
    """Posteriors of a fleet's twins, and what a new twin of each kind would start from.

    Parameters
    ----------
    twins
        Each twin's posterior by its identifier, in the order of the statistics fitted;
        kept as a read-only copy, so a fitted fleet cannot be changed by accident.
    new_twin
        Per kind, the weights and noise of a twin of that kind with no data: for partial
        pooling, the population (``N(E[mu_t], Sigma_t + Cov[mu_t])``, noise ``tau2_t``,
        with period effects of variance ``omega2_t``); a read-only copy too.
    population
        The fitted population (``None`` for the baselines).
    n_rounds
        Rounds run (aggregations).
    converged
        Whether the rounds stopped on the tolerance rather than the round limit.
    log_evidence
        Sum of the twins' log evidence given each round's population [nats], for
        monitoring: the noise updates are shrinkage estimators rather than exact EM
        steps, so it need not rise every round. With ``accelerate`` it includes the
        rounds run on extrapolated populations, dropped ones too.
    """

    twins: Mapping[Hashable, TwinPosterior]
    new_twin: Mapping[str, TwinPosterior]
    population: Population | None = None
    n_rounds: int = 0
    converged: bool = True
    log_evidence: tuple[float, ...] = ()

    def __repr__(self) -> str:
        fitted = "" if self.population is None else f", {self.n_rounds} rounds"
        return (
            f"FleetPosterior(twins {listed_ids(self.twins)}, kinds {tuple(self.new_twin)}"
            f"{fitted}, converged={self.converged})"
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "twins", ReadOnlyMapping(self.twins))
        object.__setattr__(
            self, "new_twin", ReadOnlyMapping(self.new_twin, "kind", "one of the fleet's kinds")
        )

    def predict(
        self,
        twin: Hashable | None,
        inputs: Columns,
        design: Design,
        *,
        kind: str | None = None,
    ) -> CensoredNormal:
        """Predictive distribution of a fitted twin, or of a new twin with no data.

        Parameters
        ----------
        twin
            A fitted twin's identifier, or ``None`` for a new twin of ``kind``. A bool
            is refused unless the fleet's identifiers are bools (``True == 1``).
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
        if twin is not None:
            if kind is not None:
                raise ValueError("kind: expected None for a fitted twin (it has its kind)")
            if not isinstance(twin, Hashable):
                raise TypeError(
                    "twin: expected a fitted twin's identifier or None for a new twin, got "
                    f"{type(twin).__name__}"
                )
            known = list(self.twins)
            listed = f"{known[:8]}{' ...' if len(known) > 8 else ''} ({len(known)} twins)"
            expected = f"one of the fleet's identifiers {listed} or None for a new twin"
            refuse_bool(twin, known, "twin", expected)
            if twin not in self.twins:
                raise KeyError(
                    f"twin {twin!r}: expected the identifier of a fitted twin, one of "
                    f"{listed}, or None for a new twin"
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


def _fleet(stats: Mapping[TwinId, TwinStatistics]) -> tuple[list[TwinStatistics], list[str]]:
    """:func:`fleet_entries`, refusing ``None`` as an identifier."""
    entries = fleet_entries(stats)
    if None in stats:
        raise ValueError("stats: None is not a twin identifier (predict(None) is a new twin)")
    return entries


def _keyed(
    stats: Mapping[TwinId, TwinStatistics], posteriors: Sequence[TwinPosterior]
) -> dict[Hashable, TwinPosterior]:
    """The posteriors by the identifiers of ``stats``, in its order."""
    return dict(zip(stats, posteriors, strict=True))


def population_twins(population: Population) -> Mapping[str, TwinPosterior]:
    """What a new twin of each kind, with no data, starts from: its kind's population."""
    check_type(population, Population, "population")
    fingerprint = population.prior.basis_fingerprint
    if population.noise_var is None:
        raise ValueError("population: expected one with noise variances (after a round)")
    twins = {
        kind: TwinPosterior(
            kind,
            population.mean[t],
            population.covariance[t] + population.mean_covariance[t],
            population.noise_var[t],
            None if population.period_var is None else population.period_var[t],
            fingerprint,
        )
        for t, kind in enumerate(population.kinds)
    }
    return ReadOnlyMapping(twins, "kind", "one of the population's kinds")


def fleet_emulator(
    emulator: BayesianBasisRegression, population: Population, kind: str = DEFAULT_KIND
) -> BayesianBasisRegression:
    """A new, unfitted copy of ``emulator`` that starts from what ``population`` knows
    of twins of ``kind``: a twin born into its fleet.

    Its weights' prior is the kind's population, ``N(mu, Sigma + Cov[mu])`` (a new
    member of the kind, the kind's mean as uncertain as the fleet left it), and each
    bin's noise shrinks towards the kind's variance of a reading about its curve (the
    noise plus, with period effects, a new period's effect) with the fleet's
    ``twin_noise_prior_count`` pseudo-readings. Before any reading it predicts what
    :meth:`FleetPosterior.predict` predicts for a new twin of the kind; its readings
    then update it as any twin's do (forgetting, the bounds' counts, streaming), and a
    :class:`~twinweave.core.Twin` built on it is stored, branched and monitored like
    any other.

    Where it differs from the fleet model's own posterior of a twin in the fleet
    (:func:`twin_posterior`): the twin's readings do not move the population it started
    from (it is not in the fleet's fit), its noise prior stays centred on its kind's
    per-bin variances however many readings it has, and its readings are taken as
    independent (no period effects). docs/FLEET_MODEL.md#a-twin-born-into-its-fleet.

    Parameters
    ----------
    emulator
        The twin's own emulator, configured as the twins of its kind were (its readings,
        if any, are not used): in a fleet of several kinds, with its kind's bounds.
    population
        A fitted fleet's population (``FleetPosterior.population``, a federated or a
        gossip fit's).
    kind
        The kind the new twin belongs to.
    """
    check_type(emulator, BayesianBasisRegression, "emulator")
    start = population_twins(population)[kind]  # an unknown kind is named with the kinds
    if emulator.n_features != start.mean.shape[0] or emulator.n_bins != start.noise_var.shape[0]:
        raise ValueError(
            f"emulator: expected the fleet's basis ({start.mean.shape[0]} features, "
            f"{start.noise_var.shape[0]} noise bins), got {emulator.n_features} features "
            f"and {emulator.n_bins} noise bins"
        )
    check_same_basis(population.prior.basis_fingerprint, emulator, "emulator")
    if len(population.kinds) == 1:
        _check_prior_curve(emulator, population.prior.prior_mean)
    else:
        t = population.kinds.index(kind)
        _check_kind_within_bounds(
            emulator, start.mean, np.sqrt(np.diag(population.mean_covariance[t])), kind
        )
    return BayesianBasisRegression(
        **{
            **emulator.get_params(),
            "prior_mean": start.mean,
            "prior_covariance": start.covariance,
            "noise_target": start.reading_var,
            "noise_prior_count": population.prior.twin_noise_prior_count,
        }
    )


def _check_prior_curve(emulator: BayesianBasisRegression, fleets: FloatArray) -> None:
    """Refuse an emulator whose prior mean is not the fleet's: the fingerprint leaves
    out the prior, and a power curve for another rated power starts from another one."""
    own = FleetPrior.from_emulator(emulator).prior_mean
    if not np.allclose(own, fleets, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(fleets)))):
        raise ValueError(
            "emulator: expected the settings the fleet's twins were built with; its prior "
            f"mean differs from the fleet's by up to {float(np.max(np.abs(own - fleets))):.4g} "
            f"{emulator.units} (another rated power, or another prior curve?)"
        )


def _check_kind_within_bounds(
    emulator: BayesianBasisRegression, kind_mean: FloatArray, kind_sd: FloatArray, kind: str
) -> None:
    """Refuse an emulator whose bounds cut off its kind's curve.

    In a fleet of several kinds the fleet's prior mean is the shared top level's, which
    twins of another kind (another rated power) were not built with, so the emulator is
    judged by the kind's population instead. A spline's weights are its curve's values
    near the knots, so where the curve is one plain spline (a power curve, the
    modulations aside), weights beyond the bounds by more than a twentieth of their
    range belong to a curve the emulator would clip: one of another rated power. Only
    weights the kind's twins pin down count: beyond by more than three standard
    deviations of the kind's mean (``kind_sd``). Where the twins have few readings (a
    power curve's last knots, by cut-out) a weight is its prior's, free to wander past
    the bounds: the kinds' own emulators were refused for one such weight (review,
    three windpowerlib types of four twins each: up to 3,283 kW by 25 m/s, where the
    kind's mean has a standard deviation of about 400 kW, under one past an E-82's
    2,350 kW bound and its margin; a bound of another rated power, 2,050 kW, was
    passed by 11 to 50 standard deviations). Two plain splines add up, a constant in
    either, and are not judged.
    """
    offsets = np.cumsum([0, *(term.n_features for term in emulator.terms)])
    plain = [i for i, term in enumerate(emulator.terms) if isinstance(term, SplineTerm)]
    if len(plain) != 1:
        return
    margin = 0.05 * (emulator.upper - emulator.lower)
    spline = slice(offsets[plain[0]], offsets[plain[0] + 1])
    weights, sd = kind_mean[spline], kind_sd[spline]
    beyond = np.maximum(weights - (emulator.upper + margin), (emulator.lower - margin) - weights)
    if np.any(beyond > 3.0 * sd):
        low, high = float(weights.min()), float(weights.max())
        raise ValueError(
            f"emulator: expected bounds that hold kind {kind!r}'s curve; its population's "
            f"curve spans {low:.4g} to {high:.4g} {emulator.units}, the emulator's bounds "
            f"[{emulator.lower:.4g}, {emulator.upper:.4g}] (another rated power? pass the "
            "emulator the kind's twins were built with)"
        )


def fit_central(
    stats: Mapping[TwinId, TwinStatistics],
    prior: FleetPrior,
    *,
    n_rounds: int = 1000,
    tol: float = 1e-6,
    start: Population | None = None,
    accelerate: bool = True,
    progress: bool = False,
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
        Every twin's statistics by its identifier, as federated and gossip fits take
        them (any mix of kinds; kinds are ordered by first appearance).
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
    accelerate
        Extrapolate along the rounds, at most every third round (SQUAREM; FLEET_MODEL.md):
        the same stopping rule, met in up to four times fewer rounds where EM is slow
        (La Haute Borne with period effects); ``False``: plain EM rounds.
    progress
        Show on stderr, as the rounds run, how far the population's change has come
        down towards ``tol`` (the number of rounds is not known ahead).

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
    >>> stats = {f"T{k}": TwinStatistics.from_emulator(e) for k, e in enumerate(emulators)}
    >>> fleet = fit_central(stats, FleetPrior.from_emulator(emulators[0]))
    >>> fleet.converged
    True
    >>> p = fleet.predict("T5", {"x": [0.9]}, emulators[5])
    >>> bool(abs(p.mean[0] - 0.99) < 0.1)
    True
    """
    fleet, labels = _fleet(stats)
    check_type(prior, FleetPrior, "prior")
    check_fleet(fleet, prior, pooled=True, names=labels)
    check_rounds(n_rounds, tol)
    check_flag(accelerate, "accelerate")
    check_readings(fleet)
    prior = with_fleet_fingerprint(prior, fleet)
    population = starting_population(prior, kinds_of(fleet), start, n_bins=fleet[0].n_bins)
    # Stacked once: every round's local steps read the same statistics.
    batches = _batches(fleet, labels)
    schedule = Squarem() if accelerate else None
    history: list[float] = []
    converged = False
    n_done = 0
    change = np.inf
    with round_progress(progress, "fit_central", tol) as report:
        for _ in range(n_rounds):
            total = sum_summaries(
                _batch_total(population, kind, batch) for kind, _, batch in batches
            )
            history.append(total.log_evidence)
            updated = aggregate(total, population)
            n_done += 1
            change = population_change(population, updated)
            report(n_done, change)
            if change < tol or n_done == n_rounds or schedule is None:
                population = updated
            else:
                # The last round runs on an aggregate, never on an extrapolation.
                population = schedule.next_population(
                    population, updated, change, labels, extrapolate=n_done < n_rounds - 1
                )
            if change < tol:
                converged = True
                break
    if not converged:
        warn_not_converged("fit_central", n_rounds, change, tol=tol)
    return FleetPosterior(
        twins=_keyed(
            stats,
            _twin_posteriors(batches, len(fleet), population, prior.basis_fingerprint),
        ),
        new_twin=population_twins(population),
        population=population,
        n_rounds=n_done,
        converged=converged,
        log_evidence=tuple(history),
    )


def _single(
    stats: TwinStatistics, prior: FleetPrior, kind: str, fingerprint: str | None
) -> TwinPosterior:
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
    return TwinPosterior(kind, mean, inv_chol.T @ inv_chol, noise_var, None, fingerprint)


def no_pooling(stats: Mapping[TwinId, TwinStatistics], prior: FleetPrior) -> FleetPosterior:
    """Every twin alone: each twin's posterior is its own emulator's.

    A new twin has only the single-twin prior (unit noise variance, as an emulator
    without readings). ``stats`` as in :func:`fit_central`.
    """
    fleet, labels = _fleet(stats)
    check_type(prior, FleetPrior, "prior")
    check_fleet(fleet, prior, names=labels)
    fingerprint = fleet_fingerprint(fleet, prior)
    covariance = _inverse(prior.prior_precision)
    no_noise = np.ones(fleet[0].n_bins)
    return FleetPosterior(
        twins=_keyed(stats, [_single(s, prior, s.kind, fingerprint) for s in fleet]),
        new_twin={
            kind: TwinPosterior(kind, prior.prior_mean, covariance, no_noise, None, fingerprint)
            for kind in kinds_of(fleet)
        },
    )


def complete_pooling(stats: Mapping[TwinId, TwinStatistics], prior: FleetPrior) -> FleetPosterior:
    """One curve for the whole fleet, fitted to the sum of every twin's statistics; a
    new twin gets the same curve. ``stats`` as in :func:`fit_central`.

    Kinds are pooled too: complete pooling ignores every grouping. The baseline per kind
    is ``complete_pooling`` of each kind's twins.
    """
    fleet, labels = _fleet(stats)
    check_type(prior, FleetPrior, "prior")
    check_fleet(fleet, prior, names=labels)
    pooled = TwinStatistics.pooled(fleet)
    posterior = _single(pooled, prior, pooled.kind, fleet_fingerprint(fleet, prior))
    return FleetPosterior(
        twins=_keyed(stats, [dataclasses.replace(posterior, kind=s.kind) for s in fleet]),
        new_twin={kind: dataclasses.replace(posterior, kind=kind) for kind in kinds_of(fleet)},
    )
