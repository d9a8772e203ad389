"""The fleet fit peer to peer: the rounds of the central fit, push-sum in place of a server.

Every twin keeps its own copy of the population. A round is: each twin runs
:func:`~twinweave.transfer.local_step` on its statistics and its copy; the twins add up
their summaries by push-sum over the peer graph (:class:`~twinweave.transfer.PushSum`
with an initiator, so every twin ends holding the *sum*, with no twin counting the
fleet); each twin runs :func:`~twinweave.transfer.aggregate` on its own estimate of the
sum and tests :func:`~twinweave.transfer.population_change` on its own copy. While the
same twins are present, a round's push-sum continues the last one's, each twin adding
the change of its summary (:meth:`~twinweave.transfer.PushSum.update`), so that only
the change has to spread. The copies
differ from the central fit's population by the gossip's remaining error, which EM
contracts, so the fit agrees with :func:`~twinweave.transfer.fit_central` to about the
gossip tolerance. ``docs/FLEET_MODEL.md`` gives the model and what travels;
``docs/GOSSIP.md`` the protocol and its rounds.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass

import numpy as np

from twinweave.core import ConvergenceWarning
from twinweave.core._arguments import check_flag
from twinweave.transfer._acceleration import Squarem
from twinweave.transfer._gossip import (
    GossipMessages,
    PeerGraph,
    PushSum,
    Seed,
    _induced,
    _is_connected,
    _n_parts,
    _neighbours,
    check_known_gap,
    check_loss,
    check_peer_graph,
    check_stopping,
    parts_text,
    random_generator,
)
from twinweave.transfer._hierarchy import (
    aggregate,
    kinds_of,
    named_local_step,
    population_change,
    starting_population,
    twin_posterior,
)
from twinweave.transfer._progress import round_progress
from twinweave.transfer._records import (
    FleetPrior,
    FloatArray,
    LocalSummary,
    Population,
    ReadOnlyMapping,
    TwinId,
    TwinPosterior,
    TwinStatistics,
    check_fleet,
    check_readings,
    check_rounds,
    check_type,
    fleet_entries,
    listed_ids,
    twin_list,
    warn_never_available,
    warn_not_converged,
    with_fleet_fingerprint,
)

__all__ = ["GossipFit", "fit_gossip", "summary_from_payload", "summary_payload"]


_PACKED = "_upper"


def summary_payload(summary: LocalSummary) -> dict[str, FloatArray]:
    """What a twin gossips: the numbers of its summary, nothing else.

    The fields of :meth:`~twinweave.transfer.LocalSummary.to_arrays`; the per-kind
    ``(T, p, p)`` matrices (sums of symmetric matrices) travel as their upper triangles,
    row by row, under the field's name with ``_upper`` appended, which halves the
    message.

    Parameters
    ----------
    summary
        The twin's answer to a round.

    Returns
    -------
    dict of str to ndarray
        Every numeric field; a matrix field ``(T, p, p)`` as ``(T, p (p + 1) / 2)``.

    Raises
    ------
    ValueError
        If a matrix field is not symmetric, so that its upper triangle would not
        carry it.
    """
    out: dict[str, FloatArray] = {}
    for name, value in summary.to_arrays().items():
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 3 and array.shape[1] == array.shape[2]:
            transposed = np.swapaxes(array, 1, 2)
            if not np.allclose(array, transposed, rtol=1e-10, atol=1e-12 * np.abs(array).max()):
                raise ValueError(f"{name}: expected symmetric matrices to send their triangles")
            upper = np.triu_indices(array.shape[1])
            out[name + _PACKED] = array[:, upper[0], upper[1]]
        else:
            out[name] = array
    return out


def summary_from_payload(payload: Mapping[str, FloatArray], kinds: tuple[str, ...]) -> LocalSummary:
    """The inverse of :func:`summary_payload` (for a gossiped sum as for one twin's):
    ``payload`` is the mapping of names to arrays it returns, ``kinds`` the fleet's
    kinds in the population's order."""
    if not isinstance(payload, Mapping):
        raise TypeError(
            "payload: expected the mapping of names to arrays that summary_payload returns, "
            f"got {type(payload).__name__}"
        )
    if isinstance(kinds, str):
        raise TypeError(
            f"kinds: expected the population's kind names in order, got the string {kinds!r} "
            f"(({kinds!r},) is one kind)"
        )
    arrays: dict[str, FloatArray] = {}
    for name, value in payload.items():
        array = np.asarray(value, dtype=np.float64)
        if name.endswith(_PACKED):
            p = math.isqrt(8 * array.shape[-1] + 1) // 2
            if array.ndim != 2 or p * (p + 1) // 2 != array.shape[1]:
                raise ValueError(
                    f"payload: expected {name} of shape (kinds, p (p + 1) / 2), a row of upper "
                    f"triangles as summary_payload gives it, got shape {array.shape}"
                )
            upper = np.triu_indices(p)
            full = np.zeros((array.shape[0], p, p))
            full[:, upper[0], upper[1]] = array
            full[:, upper[1], upper[0]] = array
            arrays[name.removesuffix(_PACKED)] = full
        else:
            arrays[name] = array
    missing = [
        name + (_PACKED if ndim == 3 else "")
        for name, ndim in (*LocalSummary.ARRAYS, ("log_evidence", 0))
        if name not in arrays
    ]
    if missing:
        raise ValueError(f"payload: expected every field summary_payload gives, missing {missing}")
    return LocalSummary.from_arrays(arrays, kinds)


@dataclass(frozen=True, eq=False)
class GossipFit:
    """A fleet fitted by gossip: what each twin ends up holding.

    Parameters
    ----------
    populations
        Each present twin's own copy of the population (a read-only copy, as are
        ``twins``).
    twins
        Each present twin's posterior, from its statistics and its own population.
    n_rounds
        Rounds run (aggregations).
    converged
        Every twin's own stopping test passed in the same round, and every round's
        gossip met its tolerance.
    gossip_rounds
        Push-sum rounds used by each fleet round.
    """

    populations: Mapping[Hashable, Population]
    twins: Mapping[Hashable, TwinPosterior]
    n_rounds: int
    converged: bool
    gossip_rounds: tuple[int, ...]

    def __repr__(self) -> str:
        return (
            f"GossipFit(twins {listed_ids(self.twins)}, {self.n_rounds} rounds, "
            f"{sum(self.gossip_rounds)} gossip rounds, converged={self.converged})"
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "populations", ReadOnlyMapping(self.populations))
        object.__setattr__(self, "twins", ReadOnlyMapping(self.twins))


def fit_gossip(
    stats: Mapping[TwinId, TwinStatistics],
    graph: PeerGraph,
    prior: FleetPrior,
    *,
    loss: float = 0.0,
    n_rounds: int = 1000,
    tol: float = 1e-6,
    gossip_tol: float = 1e-13,
    patience: int = 10,
    max_gossip_rounds: int = 1_000_000,
    available: Callable[[int], Collection[Hashable]] | None = None,
    seed: Seed = None,
    on_messages: Callable[[GossipMessages], None] | None = None,
    start: Population | None = None,
    accelerate: bool = True,
    known_gap: float | None = None,
    progress: bool = False,
) -> GossipFit:
    """Partial pooling fitted peer to peer, with no coordinator.

    Parameters
    ----------
    stats
        Each twin's statistics, keyed by its node in ``graph`` (they never leave it).
        Kinds are ordered by first appearance, as :func:`~twinweave.transfer.fit_central`
        orders them: the fleet's configuration, known to every twin.
    graph
        Who talks to whom; the present twins' subgraph must be connected.
    prior
        The hierarchy's hyperprior and settings.
    loss
        Probability that any one gossip message is lost.
    n_rounds, tol
        Fleet rounds at most, and the tolerance of every twin's own test
        ``population_change(old, new) < tol``: the central fit's rule and defaults.
    gossip_tol, patience, max_gossip_rounds
        Each round's push-sum stopping test (:meth:`~twinweave.transfer.PushSum.run`).
    available
        The twins present at a round (numbered from 1); by default all, every round.
        A twin that arrives copies the population of a present neighbour.
    seed
        Randomness of the message losses.
    on_messages
        Called with every gossip message batch (:class:`GossipMessages`).
    start
        A population fitted before that every twin starts from (as
        :func:`~twinweave.transfer.fit_central`'s ``start``); default the prior's.
    accelerate
        Every twin extrapolates its own copy along the rounds (at most every third round), as
        :func:`~twinweave.transfer.fit_central` does by default; a round with other
        twins present starts a new cycle.
    known_gap
        A spectral gap of ``graph`` known to every twin: each round's gossip is then
        Chebyshev-accelerated (:class:`~twinweave.transfer.PushSum`); needs ``loss=0``.
    progress
        Show on stderr, as the rounds run, how far the largest change of a twin's
        population has come down towards ``tol``.

    Returns
    -------
    GossipFit

    Raises
    ------
    TypeError
        If ``graph`` is not an undirected peer graph or ``prior`` not a
        :class:`~twinweave.transfer.FleetPrior` (arguments in another order, say).
    ValueError
        If a setting is out of its range: ``loss`` in ``[0, 1)``, ``tol`` and
        ``gossip_tol`` > 0, ``n_rounds``, ``patience`` and ``max_gossip_rounds`` integers
        >= 1.
    RuntimeError
        When a round's gossip stopped at ``max_gossip_rounds`` so far from settled that a
        twin's estimate of the fleet's sums cannot be aggregated.

    Warns
    -----
    ConvergenceWarning
        When the rounds stop at ``n_rounds``, or a round's gossip at
        ``max_gossip_rounds`` before ``gossip_tol``.

    Examples
    --------
    >>> import networkx as nx
    >>> from twinweave.models import BayesianBasisRegression, SplineTerm
    >>> from twinweave.transfer import FleetPrior, TwinStatistics, fit_central
    >>> rng = np.random.default_rng(0)
    >>> def twin(slope):
    ...     x = rng.uniform(0, 1, 400)
    ...     model = BayesianBasisRegression(
    ...         target="y", terms=(SplineTerm("x", 0, 1, 4),), noise_source="x",
    ...         noise_edges=[0.0, 0.5, 1.0])
    ...     return model.update({"x": x, "y": slope * x + rng.normal(0, 0.1, 400)})
    >>> emulators = [twin(1.0 + 0.05 * k) for k in range(6)]
    >>> stats = {k: TwinStatistics.from_emulator(e) for k, e in enumerate(emulators)}
    >>> prior = FleetPrior.from_emulator(emulators[0])
    >>> fit = fit_gossip(stats, nx.cycle_graph(6), prior, loss=0.2, tol=1e-8, seed=1)
    >>> central = fit_central(stats, prior, tol=1e-8)
    >>> fit.converged, fit.n_rounds == central.n_rounds
    (True, True)
    >>> scale = np.abs(central.population.mean).max()
    >>> bool(np.abs(fit.populations[3].mean - central.population.mean).max() < 1e-9 * scale)
    True
    """
    twins, labels = fleet_entries(stats)
    check_peer_graph(graph)
    check_type(prior, FleetPrior, "prior")
    # Looked up by the graph's nodes.
    by_node: dict[Hashable, TwinStatistics] = dict(stats.items())
    nodes = list(graph)
    if set(stats) != set(nodes):
        without_stats = _listed(set(nodes) - set(stats))
        off_graph = _listed(set(stats) - set(nodes))
        raise ValueError(
            "stats: expected one entry per node of the graph; nodes without statistics: "
            f"{without_stats}, statistics of no node: {off_graph}"
        )
    check_fleet(twins, prior, names=labels, pooled=True)
    check_readings(twins)
    prior = with_fleet_fingerprint(prior, twins)
    check_rounds(n_rounds, tol)
    check_flag(accelerate, "accelerate")
    check_loss(loss)
    check_known_gap(known_gap, loss)
    check_stopping(
        gossip_tol, patience, max_gossip_rounds, ("gossip_tol", "patience", "max_gossip_rounds")
    )
    if available is not None and not callable(available):
        raise TypeError(
            "available: expected a function from round number to the twins present in "
            f"that round, got {type(available).__name__}"
        )
    rng = random_generator(seed)
    kinds = kinds_of(twins)
    first = starting_population(prior, kinds, start, n_bins=twins[0].n_bins)
    populations: dict[Hashable, Population] = {}
    gossip_rounds: list[int] = []
    n_unsettled = 0  # fleet rounds whose gossip missed gossip_tol
    converged = False
    n_done = 0
    present: list[Hashable] = []
    ever_present: set[Hashable] = set()
    gossip: PushSum | None = None
    gossip_nodes: list[Hashable] = []
    # Each twin's own schedule, made when it first needs one.
    schedules: defaultdict[Hashable, Squarem] = defaultdict(Squarem)
    with round_progress(progress, "fit_gossip", tol) as report:
        for round_number in range(1, n_rounds + 1):
            reachable = nodes if available is None else available(round_number)
            wanted = set(twin_list(reachable, f"available: round {round_number} returned"))
            strangers = wanted - set(nodes)
            if strangers:
                raise ValueError(
                    f"available: round {round_number} names twins not in the graph "
                    f"{_listed(strangers)}"
                )
            present = [node for node in nodes if node in wanted]
            ever_present.update(present)
            peers = _induced(graph, present)
            if not present:
                raise ValueError(f"available: round {round_number} names no twin; expected some")
            if not _is_connected(peers):
                raise ValueError(
                    f"round {round_number}: the present twins are not connected (the graph "
                    f"among them has {_n_parts(peers)} parts, {parts_text(peers)}); gossip "
                    "cannot mix their sums"
                )
            populations = _arrivals(populations, present, peers, first)
            payloads = {
                node: summary_payload(
                    named_local_step(by_node[node], populations[node], f"twin {node!r}")
                )
                for node in present
            }
            if gossip is not None and present == gossip_nodes:
                # The same twins: each adds the change of its summary to the sums it holds,
                # which are already close to the new total once the fit settles.
                gossip.update(payloads)
            else:
                gossip = PushSum(
                    peers,
                    loss=loss,
                    seed=rng,
                    initiator=present[0],
                    on_messages=on_messages,
                    known_gap=known_gap,
                ).start(payloads)
                gossip_nodes = present
            result = gossip.run(tol=gossip_tol, patience=patience, max_rounds=max_gossip_rounds)
            gossip_rounds.append(result.n_rounds)
            n_unsettled += not result.converged
            n_done += 1
            settled = True
            change = 0.0
            aggregates: dict[Hashable, tuple[Population, float]] = {}
            for node in present:
                try:
                    # A twin the gossip has not reached yet holds no weight: its estimate is
                    # 0/0, refused below with the reason.
                    with np.errstate(divide="ignore", invalid="ignore"):
                        estimate = gossip.estimate(node)
                    updated = aggregate(summary_from_payload(estimate, kinds), populations[node])
                except (np.linalg.LinAlgError, ValueError) as error:
                    if result.converged:
                        raise
                    raise RuntimeError(
                        f"round {round_number}: the gossip did not settle in "
                        f"max_gossip_rounds={max_gossip_rounds} (loss {loss}), and the "
                        f"estimate of the fleet's sums of twin {node!r} is too far off to "
                        "aggregate; raise max_gossip_rounds"
                    ) from error
                node_change = population_change(populations[node], updated)
                change = max(change, node_change)
                settled = node_change < tol and settled
                aggregates[node] = updated, node_change
            report(round_number, change)
            for node, (updated, node_change) in aggregates.items():
                populations[node] = (
                    updated
                    if settled or round_number == n_rounds or not accelerate
                    else schedules[node].next_population(
                        populations[node],
                        updated,
                        node_change,
                        present,
                        extrapolate=round_number < n_rounds - 1,
                    )
                )
            if settled:
                converged = True
                break
    if not converged:
        warn_not_converged("fit_gossip", n_rounds, change, tol=tol)
    if n_unsettled:
        # Said whether or not the rounds settled: rounds on sums the gossip had not
        # settled on may not settle however many there are.
        warnings.warn(
            f"fit_gossip: the gossip of {n_unsettled} of {n_done} round(s) stopped at "
            f"max_gossip_rounds={max_gossip_rounds} before gossip_tol {gossip_tol:g}; "
            "raise max_gossip_rounds",
            ConvergenceWarning,
            stacklevel=2,
        )
    warn_never_available("fit_gossip", nodes, ever_present, present)
    return GossipFit(
        populations={node: populations[node] for node in present},
        twins={node: twin_posterior(by_node[node], populations[node]) for node in present},
        n_rounds=n_done,
        converged=converged and not n_unsettled,
        gossip_rounds=tuple(gossip_rounds),
    )


def _listed(nodes: Collection[Hashable]) -> str:
    """Nodes of any type, sorted by their repr, as a list reads."""
    return "[" + ", ".join(sorted(map(repr, nodes))) + "]"


def _arrivals(
    populations: Mapping[Hashable, Population],
    present: list[Hashable],
    peers: PeerGraph,
    first: Population,
) -> dict[Hashable, Population]:
    """The present twins' populations; a twin that arrives copies a neighbour's."""
    out = {node: populations[node] for node in present if node in populations}
    missing = [node for node in present if node not in out]
    neighbours = _neighbours(peers)
    while missing:
        progressed = False
        for node in missing:
            known = [v for v in present if v in neighbours[node] and v in out]
            if known:
                out[node] = out[known[0]]
                progressed = True
        missing = [node for node in missing if node not in out]
        if missing and not progressed:
            # Nobody present holds a population yet: the fit starts here.
            out.update(dict.fromkeys(missing, first))
            missing = []
    return out
