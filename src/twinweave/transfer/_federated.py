"""The fleet fit as federated rounds: a strategy of ``configure_fit`` / ``aggregate_fit``.

The variational EM of the fleet model (``docs/FLEET_MODEL.md``) splits into the twin's
E-step, :func:`~twinweave.transfer.local_step`, which needs only the twin's own
statistics, and the coordinator's M-step, :func:`~twinweave.transfer.aggregate`, which
needs only the *sum* of the twins' summaries. :class:`FleetPooling` runs it the way
Flower's strategies run federated learning (Beutel et al., *Flower: A Friendly
Federated Learning Research Framework*, arXiv:2007.14390, 2020): each round,
:meth:`~FleetPooling.configure_fit` says what every twin receives (a :class:`FitIns`:
the population), every twin answers with a :class:`FitRes` (its
:class:`~twinweave.transfer.LocalSummary`), and :meth:`~FleetPooling.aggregate_fit`
turns the answers into the next population. The strategy knows nothing of transport;
:func:`run_rounds` drives it over any exchange, :func:`fit_federated` in process and
:mod:`twinweave.transfer.flower_app` over Flower. A privacy layer (not built yet) would
wrap the strategy as another :class:`FitStrategy`: a :class:`FitRes` may carry the
already summed summary of several twins (``twin_ids``), which is all the M-step needs.

Drop-out semantics
------------------
A round aggregates the summaries that arrived for that round, and only those: a twin
that misses a round contributes nothing to it (its old summary is not re-used, so the
strategy never needs any single twin's summary beyond the round, and it works the same
under secure summation). Bookkeeping by twin identifier decides when the fit may stop:

* a twin is *expected* once it has answered a round;
* an expected twin that does not answer a round is *missing*; while any twin is
  missing, the fit does not stop (a transient drop-out cannot end the fit on the wrong
  fleet);
* after ``max_missed_rounds`` consecutive misses it is *gone*: no longer expected, and
  the fit converges to the central fit of the twins that still answer;
* a twin that answers again (a gone one included) is expected again from that round.

A twin counts once a round, however many answers name it. The fit stops after the
first round in which every expected twin answered and
:func:`~twinweave.transfer.population_change` fell below ``tol`` -- the stopping rule of
:func:`~twinweave.transfer.fit_central`. Because every round is an EM step on the twins
that answered it, the fixed point is the central fit of the twins that answer at the
end: when a missing twin comes back, the population returns to the central fit of the
whole fleet. Summaries are summed in order of twin identifier, so the result does not
depend on the order in which answers arrive.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from twinweave.core import ConvergenceWarning
from twinweave.core._arguments import check_count, check_flag, described
from twinweave.transfer._acceleration import Squarem
from twinweave.transfer._hierarchy import (
    _Batches,
    _batches,
    _local_steps,
    aggregate,
    check_start_bins,
    population_change,
    starting_population,
)
from twinweave.transfer._progress import round_progress
from twinweave.transfer._records import (
    FleetPrior,
    LocalSummary,
    Population,
    TwinStatistics,
    check_fleet,
    check_kinds,
    check_readings,
    check_rounds,
    check_type,
    fleet_entries,
    listed_ids,
    refuse_empty_ids,
    sum_summaries,
    twin_list,
    warn_never_available,
    warn_not_converged,
)

__all__ = [
    "FederatedResult",
    "FitIns",
    "FitRes",
    "FitStrategy",
    "FleetPooling",
    "RoundReport",
    "fit_federated",
    "run_rounds",
]


@dataclass(frozen=True)
class FitIns:
    """What the coordinator sends a twin at one round.

    Attributes
    ----------
    server_round
        The round, counted from 1.
    population
        The population (the prior included) the twin's local step conditions on.
    """

    server_round: int
    population: Population

    def __post_init__(self) -> None:
        # Refused where it is built: a transport would only fail on it rounds later.
        check_count(self.server_round, "server_round")
        check_type(self.population, Population, "population")


@dataclass(frozen=True)
class FitRes:
    """What comes back for one round: a summary and the twins it sums over.

    Attributes
    ----------
    server_round
        The round the summary answers; answers to other rounds are ignored.
    twin_ids
        The twins whose summaries ``summary`` adds up (one, unless a wrapper summed them).
    summary
        The sum of those twins' :class:`~twinweave.transfer.LocalSummary`.
    """

    server_round: int
    twin_ids: tuple[str, ...]
    summary: LocalSummary

    def __post_init__(self) -> None:
        check_count(self.server_round, "server_round")
        if not isinstance(self.twin_ids, tuple):
            # A string would be pooled as one twin per letter.
            hint = f" (({self.twin_ids!r},) is one twin)" if isinstance(self.twin_ids, str) else ""
            raise TypeError(
                f"twin_ids: expected a tuple of twin identifiers, got "
                f"{described(self.twin_ids)}{hint}"
            )
        if not self.twin_ids:
            raise ValueError("twin_ids: expected at least one twin, got ()")
        refuse_empty_ids(self.twin_ids, "twin_ids")
        if len(set(self.twin_ids)) != len(self.twin_ids):
            raise ValueError(
                f"twin_ids: expected distinct twins (each summary counted once), got "
                f"{self.twin_ids!r}"
            )
        check_type(
            self.summary,
            LocalSummary,
            "summary",
            "a LocalSummary (local_step of the twin's statistics, not the statistics)",
        )


@dataclass(frozen=True)
class RoundReport:
    """What happened in one round, as the strategy saw it.

    Attributes
    ----------
    server_round
        The round, counted from 1.
    answered
        Twins whose summary of this round was aggregated, sorted.
    missing
        Expected twins that did not answer this round.
    gone
        Twins that, with this round, missed ``max_missed_rounds`` in a row.
    change
        :func:`~twinweave.transfer.population_change` of the aggregation (``nan`` when
        nothing arrived and the population was kept).
    converged
        The stopping rule held: nobody missing and ``change < tol``.
    """

    server_round: int
    answered: tuple[str, ...]
    missing: tuple[str, ...]
    gone: tuple[str, ...]
    change: float
    converged: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``change`` as a string when not finite)."""
        return {
            "server_round": self.server_round,
            "answered": list(self.answered),
            "missing": list(self.missing),
            "gone": list(self.gone),
            "change": self.change if math.isfinite(self.change) else repr(self.change),
            "converged": self.converged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            server_round=int(data["server_round"]),
            answered=tuple(str(t) for t in data["answered"]),
            missing=tuple(str(t) for t in data["missing"]),
            gone=tuple(str(t) for t in data["gone"]),
            change=float(data["change"]),
            converged=bool(data["converged"]),
        )


@dataclass(frozen=True)
class FederatedResult:
    """The outcome of a federated fit.

    Attributes
    ----------
    population
        The final population (what the coordinator learned).
    rounds
        One report per round, in order.
    converged
        Whether the stopping rule held before ``n_rounds`` ran out.
    twin_ids
        The twins the final population pools: those that answered the last round.
    """

    population: Population
    rounds: tuple[RoundReport, ...]
    converged: bool
    twin_ids: tuple[str, ...]

    @property
    def n_rounds(self) -> int:
        """Rounds run."""
        return len(self.rounds)

    def __repr__(self) -> str:
        return (
            f"FederatedResult(twins {listed_ids(self.twin_ids)}, {self.n_rounds} rounds, "
            f"converged={self.converged}, {self.population!r})"
        )


@runtime_checkable
class FitStrategy(Protocol):
    """What :func:`run_rounds` drives: Flower's configure / aggregate pair, per round.

    :class:`FleetPooling` is the strategy; privacy layers are strategies that wrap one.
    """

    @property
    def n_rounds(self) -> int:
        """Rounds at most."""
        ...

    def initialize(self) -> Population:
        """Forget earlier rounds and return the population of round 1."""
        ...

    def configure_fit(
        self, server_round: int, population: Population, available: Sequence[str]
    ) -> dict[str, FitIns]:
        """What each of the ``available`` addresses receives this round."""
        ...

    def aggregate_fit(
        self,
        server_round: int,
        population: Population,
        results: Sequence[FitRes],
        failures: Sequence[str],
    ) -> tuple[Population, RoundReport]:
        """The next population from this round's answers, and the round's report."""
        ...


class FleetPooling:
    """Partial pooling of a fleet as federated rounds (variational EM, one step a round).

    Parameters
    ----------
    prior
        The fleet prior (the emulator's basis and priors), known to the coordinator.
    kinds
        The kinds (turbine types) pooled, in the order
        :func:`~twinweave.transfer.fit_central` would meet them.
    n_rounds
        Rounds at most (the default of :func:`~twinweave.transfer.fit_central`).
    tol
        Stop when :func:`~twinweave.transfer.population_change` falls below this and
        nobody is missing (the default of :func:`~twinweave.transfer.fit_central`).
    max_missed_rounds
        Consecutive rounds an expected twin may miss before it counts as gone.
    start
        A population fitted before, to start round 1 from (as
        :func:`~twinweave.transfer.fit_central`'s ``start``); default the prior's.
    accelerate
        Extrapolate along the rounds, at most every third round (as
        :func:`~twinweave.transfer.fit_central` does by default, and with the same
        result); a round in which another set of twins answers starts a new cycle.

    See Also
    --------
    fit_federated : the rounds in process, with an example.
    twinweave.transfer.LoopbackFederation : the rounds over Flower.
    """

    def __init__(
        self,
        prior: FleetPrior,
        kinds: Sequence[str],
        *,
        n_rounds: int = 1000,
        tol: float = 1e-6,
        max_missed_rounds: int = 3,
        start: Population | None = None,
        accelerate: bool = True,
    ) -> None:
        check_type(prior, FleetPrior, "prior")
        self.kinds = check_kinds(kinds)
        check_round_settings(n_rounds, tol, max_missed_rounds)
        check_flag(accelerate, "accelerate")
        self.prior = prior
        self.n_rounds = n_rounds
        self.tol = tol
        self.max_missed_rounds = max_missed_rounds
        self.start = starting_population(prior, self.kinds, start)
        self.accelerate = accelerate
        self.expected_: set[str] = set()
        self.missed_: dict[str, int] = {}
        self._schedule = Squarem()

    def initialize(self) -> Population:
        """Forget earlier rounds; the population of round 1 (``start``, or the prior's)."""
        self.expected_ = set()
        self.missed_ = {}
        self._schedule.reset()
        return self.start

    def configure_fit(
        self, server_round: int, population: Population, available: Sequence[str]
    ) -> dict[str, FitIns]:
        """Every available address receives the same population.

        Parameters
        ----------
        server_round
            The round, counted from 1.
        population
            The current population.
        available
            Addresses the transport can reach now (twin identifiers in process, node
            identifiers over Flower); which twin answers is learnt from its answer.

        Returns
        -------
        dict
            The instruction for each address.
        """
        instruction = FitIns(server_round, population)
        return dict.fromkeys(twin_list(available, "available: got"), instruction)

    def aggregate_fit(
        self,
        server_round: int,
        population: Population,
        results: Sequence[FitRes],
        failures: Sequence[str] = (),
    ) -> tuple[Population, RoundReport]:
        """The M-step on the summaries of this round, and the drop-out bookkeeping.

        Parameters
        ----------
        server_round
            The round being aggregated.
        population
            The population the round was configured with.
        results
            Answers that arrived; those for another round are ignored, and so is an
            answer naming a twin already counted this round.
        failures
            Addresses that did not answer or answered with an error (transport
            detail; drop-outs are decided by twin identifier, see the module notes).

        Returns
        -------
        population
            The population of the next round (the same object when nothing arrived;
            when accelerating, at most every third round an extrapolated one), or the round's
            aggregate when it converged or was the last.
        report
            What the round saw.
        """
        del failures  # who is missing is known by twin identifier, below
        check_count(server_round, "server_round")
        check_type(population, Population, "population")
        results = check_results(results)
        fresh: list[FitRes] = []
        counted: set[str] = set()
        for result in sorted(results, key=lambda r: r.twin_ids):
            # Each twin counts once a round (a second SuperNode claiming the same twin,
            # a duplicated message); answers to another round are late or early.
            if result.server_round == server_round and counted.isdisjoint(result.twin_ids):
                fresh.append(result)
                counted.update(result.twin_ids)
        answered = sorted(counted)
        missing: list[str] = []
        gone: list[str] = []
        for twin in sorted(self.expected_ - set(answered)):
            self.missed_[twin] = self.missed_.get(twin, 0) + 1
            if self.missed_[twin] >= self.max_missed_rounds:
                gone.append(twin)
            else:
                missing.append(twin)
        for twin in gone:
            self.expected_.discard(twin)
            self.missed_.pop(twin, None)
        for twin in answered:
            self.expected_.add(twin)
            self.missed_.pop(twin, None)
        if fresh:
            new = aggregate(sum_summaries([r.summary for r in fresh]), population)
            change = population_change(population, new)
        elif server_round >= self.n_rounds:
            # Nothing arrived in the last round: the result is not to be a population
            # that no round has run on (an extrapolation, when accelerating).
            new, change = self._schedule.evaluated(population), math.nan
        else:
            new, change = population, math.nan
        converged = not missing and bool(fresh) and change < self.tol
        report = RoundReport(
            server_round, tuple(answered), tuple(missing), tuple(gone), change, converged
        )
        if fresh and self.accelerate and not converged and server_round < self.n_rounds:
            # The last round runs on an aggregate, never on an extrapolation.
            new = self._schedule.next_population(
                population, new, change, answered, extrapolate=server_round < self.n_rounds - 1
            )
        return new, report


Exchange = Callable[[int, Mapping[str, FitIns]], tuple[list[FitRes], list[str]]]
"""Delivers a round's instructions; returns ``(answers, addresses that failed)``."""


def run_rounds(
    strategy: FitStrategy,
    exchange: Exchange,
    available: Callable[[int], Sequence[str]],
    *,
    on_round: Callable[[RoundReport, Population], None] | None = None,
) -> FederatedResult:
    """Drive a strategy over an exchange for at most ``strategy.n_rounds`` rounds.

    Parameters
    ----------
    strategy
        What configures and aggregates (:class:`FleetPooling`, or a wrapper of it).
    exchange
        Delivers a round's instructions and collects the answers (in process: the
        twins' local steps; over Flower: messages pushed and pulled).
    available
        The addresses reachable at a round.
    on_round
        Called after every aggregation with the round's report and the new population.

    Returns
    -------
    FederatedResult
        Converged when a round met the strategy's stopping rule.
    """
    check_type(strategy, FitStrategy, "strategy", "a strategy such as FleetPooling (a FitStrategy)")
    for function, name, expected in (
        (exchange, "exchange", "round number and instructions to (answers, failures)"),
        (available, "available", "round number to the addresses reachable in that round"),
    ):
        if not callable(function):
            raise TypeError(
                f"{name}: expected a function from {expected}, got {described(function)}"
            )
    population = strategy.initialize()
    reports: list[RoundReport] = []
    for server_round in range(1, strategy.n_rounds + 1):
        reachable = twin_list(available(server_round), f"available: round {server_round} returned")
        instructions = strategy.configure_fit(server_round, population, reachable)
        exchanged = exchange(server_round, instructions)
        if not isinstance(exchanged, tuple | list) or len(exchanged) != 2:
            raise TypeError(
                f"exchange: round {server_round} returned {described(exchanged)}; expected a "
                "pair (answers: a list of FitRes, failures: a list of addresses)"
            )
        results, failures = exchanged
        population, report = strategy.aggregate_fit(server_round, population, results, failures)
        reports.append(report)
        if on_round is not None:
            on_round(report, population)
        if report.converged:
            break
    last = reports[-1] if reports else None
    return FederatedResult(
        population=population,
        rounds=tuple(reports),
        converged=bool(last and last.converged),
        twin_ids=last.answered if last else (),
    )


def fit_federated(
    strategy: FitStrategy,
    statistics: Mapping[str, TwinStatistics],
    *,
    available: Callable[[int], Sequence[str]] | None = None,
    on_message: Callable[[str, str, FitIns | FitRes], None] | None = None,
    progress: bool = False,
) -> FederatedResult:
    """Run the fleet fit as federated rounds, every twin simulated in this process.

    Each twin holds its statistics and answers a :class:`FitIns` with a :class:`FitRes`
    carrying :func:`~twinweave.transfer.local_step` of its own statistics; only those
    records pass between twin and coordinator. As in Flower's simulation engine, the
    twins that receive the same instruction in a round are computed together
    (:func:`~twinweave.transfer.local_steps`, vectorised over twins, each summary
    from its own twin's statistics alone and bit for bit what the twin computes alone).

    Parameters
    ----------
    strategy
        The strategy (its ``n_rounds``, ``tol`` and drop-out rule apply).
    statistics
        Each twin's statistics, by twin identifier.
    available
        The twins reachable at a round (default: all, every round); simulates twins that
        drop out, leave or join.
    on_message
        Called with ``(direction, twin_id, record)`` for every record that crosses,
        ``direction`` being ``"to_twin"`` or ``"from_twin"``.
    progress
        Show on stderr, as the rounds run, how far the population's change has come
        down towards the strategy's ``tol`` (if it has one).

    Returns
    -------
    FederatedResult
        The population of :func:`~twinweave.transfer.fit_central` on the twins that
        answered the last round (the same rounds and stopping rule; when no twin
        dropped out, bit for bit when the twin identifiers sort in the order of the
        central fit's statistics, else to rounding: about 1e-9 relative on La Haute
        Borne, since the summaries are summed in another order).

    Examples
    --------
    >>> import numpy as np
    >>> from twinweave.models import BayesianBasisRegression, SplineTerm
    >>> from twinweave.transfer import FleetPrior, TwinStatistics, fit_central
    >>> rng = np.random.default_rng(0)
    >>> def twin(slope):
    ...     x = rng.uniform(0, 1, 400)
    ...     model = BayesianBasisRegression(
    ...         target="y", terms=(SplineTerm("x", 0, 1, 4),), noise_source="x",
    ...         noise_edges=[0.0, 0.5, 1.0])
    ...     return model.update({"x": x, "y": slope * x + rng.normal(0, 0.1, 400)})
    >>> emulators = {f"T{k}": twin(1.0 + 0.05 * k) for k in range(4)}
    >>> stats = {name: TwinStatistics.from_emulator(e) for name, e in emulators.items()}
    >>> prior = FleetPrior.from_emulator(emulators["T0"])
    >>> result = fit_federated(FleetPooling(prior, ["default"]), stats)
    >>> central = fit_central(stats, prior)
    >>> result.converged, result.n_rounds == central.n_rounds
    (True, True)
    >>> bool(np.allclose(result.population.mean, central.population.mean, rtol=1e-12))
    True
    """
    check_type(strategy, FitStrategy, "strategy", "a strategy such as FleetPooling (a FitStrategy)")
    twins, labels = fleet_entries(statistics, "statistics")
    refuse_empty_ids(statistics, "statistics")
    everyone = list(statistics)
    try:
        sorted(everyone)
    except TypeError:
        kinds_of_id = sorted({type(twin).__name__ for twin in everyone})
        raise TypeError(
            f"statistics: expected twin identifiers that sort together (the rounds add the "
            f"twins' summaries in identifier order), got a mix of {kinds_of_id}"
        ) from None
    if available is not None and not callable(available):
        raise TypeError(
            "available: expected a function from round number to the twins reachable in "
            f"that round, got {type(available).__name__}; for the same twins every round, "
            "lambda _: twins"
        )
    # Checked by name here rather than by each twin in its local step, one by one: the
    # prior's basis, round 1's noise bins and the kinds the strategy pools.
    first = strategy.initialize()
    check_fleet(twins, first.prior, argument="statistics", names=labels, pooled=True)
    check_readings(twins)
    check_start_bins(first, twins[0].n_bins)
    for label, twin_statistics in zip(labels, twins, strict=True):
        if twin_statistics.kind not in first.kinds:
            raise ValueError(
                f"{label}: kind {twin_statistics.kind!r} is not one the strategy pools "
                f"{first.kinds}; list it in the strategy's kinds"
            )
    # The twins computed together are usually the same from round to round: their
    # statistics stay stacked while they are (as each twin holds its own).
    stacked: dict[tuple[str, ...], _Batches] = {}

    def exchange(
        server_round: int, instructions: Mapping[str, FitIns]
    ) -> tuple[list[FitRes], list[str]]:
        nonlocal stacked
        groups: dict[int, tuple[FitIns, list[str]]] = {}
        unknown = sorted(set(instructions) - set(statistics))
        if unknown:
            raise ValueError(
                f"available: round {server_round} names twins without statistics {unknown}; "
                f"expected some of {sorted(statistics)}"
            )
        for address, instruction in instructions.items():
            if on_message is not None:
                on_message("to_twin", address, instruction)
            groups.setdefault(id(instruction), (instruction, []))[1].append(address)
        results: list[FitRes] = []
        kept, stacked = stacked, {}
        for instruction, twin_ids in groups.values():
            key = tuple(twin_ids)
            batches = (
                kept[key]
                if key in kept
                else _batches([statistics[t] for t in twin_ids], [f"twin {t!r}" for t in twin_ids])
            )
            stacked[key] = batches
            summaries = _local_steps(batches, len(twin_ids), instruction.population)
            for twin_id, summary in zip(twin_ids, summaries, strict=True):
                answer = FitRes(instruction.server_round, (twin_id,), summary)
                if on_message is not None:
                    on_message("from_twin", twin_id, answer)
                results.append(answer)
        return results, []  # every twin is in this process: none fails

    # A wrapping strategy need not say its tolerance; the bar then shows the change only.
    tol = getattr(strategy, "tol", None)
    with round_progress(progress, "fit_federated", tol) as report:
        result = run_rounds(
            strategy,
            exchange,
            available if available is not None else (lambda _: everyone),
            on_round=lambda done, _: report(done.server_round, done.change),
        )
    warn_if_not_converged(result, tol=tol, stacklevel=2)
    answered = {twin for done in result.rounds for twin in done.answered}
    warn_never_available("fit_federated", everyone, answered, result.twin_ids)
    return result


def check_results(results: object) -> list[FitRes]:
    """A round's answers as a list, each a :class:`FitRes` (a twin's bare
    :class:`~twinweave.transfer.LocalSummary` says neither round nor twin)."""
    if isinstance(results, FitRes | str) or not isinstance(results, Iterable):
        raise TypeError(f"results: expected a sequence of FitRes, got {described(results)}")
    listed = list(results)
    for index, result in enumerate(listed):
        if not isinstance(result, FitRes):
            raise TypeError(
                f"results[{index}]: expected a FitRes (server_round, twin_ids, summary), got "
                f"{described(result)}; a twin's summary travels as "
                "FitRes(server_round, (twin_id,), summary)"
            )
    return listed


def check_round_settings(n_rounds: int, tol: float, max_missed_rounds: int) -> None:
    """The checks of :class:`FleetPooling`'s settings (also run where a Flower run is
    configured, before any process starts)."""
    check_rounds(n_rounds, tol)
    check_count(max_missed_rounds, "max_missed_rounds")


def warn_if_not_converged(
    result: FederatedResult, *, tol: float | None = None, stacklevel: int
) -> None:
    """Warn when federated rounds ran out: because of twins missing in the last round
    (the rounds do not stop while one is), or because the population kept changing."""
    if result.converged or not result.rounds:
        return
    last = result.rounds[-1]
    if not any(report.answered for report in result.rounds):
        warnings.warn(
            f"federated rounds: no twin answered in {result.n_rounds} rounds (were any "
            "available?); the population is the start's",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
    elif not last.answered and not last.missing:
        answering = max(report.server_round for report in result.rounds if report.answered)
        gone = sorted({twin for report in result.rounds for twin in report.gone})
        warnings.warn(
            f"federated rounds: no twin answered after round {answering} of "
            f"{result.n_rounds} (every twin counted as gone: {gone}); the population is "
            f"round {answering}'s",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
    elif last.missing:
        warnings.warn(
            f"federated rounds: no convergence in {result.n_rounds} rounds; twins "
            f"{list(last.missing)} missed the last round, and the rounds do not stop while "
            "an expected twin is missing (it counts as gone after max_missed_rounds)",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
    else:
        warn_not_converged(
            "federated rounds", result.n_rounds, last.change, tol=tol, stacklevel=stacklevel + 2
        )
