"""Peer-to-peer averaging of twin summaries: push-sum gossip over running sums.

Each twin holds a payload (an array, or a dict / dataclass / tuple of arrays) and a peer
graph says who may talk to whom. With no coordinator, every twin ends holding the
average of all payloads: push-sum (Kempe, Dobra & Gehrke 2003) in its synchronous
"ratio consensus" form, each twin splitting its numerator and weight equally between
itself and its neighbours every round, its estimate being numerator / weight. With an
*initiator* (the only twin to start with weight one) the estimates converge to the sum
instead, with no twin knowing how many twins there are.

Messages can be lost. Plain push-sum then loses mass and converges to a wrong answer;
here every link carries *running sums* instead (Hadjicostis, Vaidya & Domínguez-García
2016): a twin sends the total it has ever sent on that link, the receiver keeps the last
total it received, and the difference is what arrives, so a lost message is not lost
mass, only late mass, delivered with the next message that gets through. The average is
then exact with any loss probability below one.

Membership changes:

* **join** -- a twin arrives with its payload and its own weight (one for a mean, zero
  for a sum); the answer becomes the average (sum) including it. Nothing else changes.
* **leave** (graceful) -- the twin settles its links (it takes back what it sent that
  did not arrive, returns what was sent to it that did not arrive) and hands its
  holdings minus its own payload and weight to its neighbours: it takes exactly its own
  contribution away, and the answer becomes the survivors' average (sum).
* **crash** -- a twin vanishes with whatever mass it held. Its neighbours detect the
  loss and start a new *epoch*: every twin that hears of a newer epoch restarts from
  its own payload and discards messages of older epochs, so the network converges on
  the survivors' average, at the price of a restart. An epoch is named by the round it
  began in and the twin that began it, so a later restart always wins.

Where every twin knows the graph's spectral gap (a bound on it: a random regular graph's
follows from its degree), lossless rounds can be *accelerated*: each twin sends the same
shares, but combines what it received with its last two states by Chebyshev's
recurrence (Golub & Varga 1961; for consensus Montijano, Montijano & Sagüés 2013 and
Cavalcante, Rogers & Jennings 2011), so the error shrinks like ``(1 - sqrt(2 gap))^k`` or
faster rather than ``(1 - gap)^k``: 29 rounds to 1e-6 instead of 102 on a random 4-regular
graph of 10,000 twins. A gap that is wrong costs rounds, never the answer.

The simulation is synchronous and vectorised: a round is one sparse matrix product over
all twins at once, plus bookkeeping for the links whose message was lost, applied to a
block of payload columns at a time so that the block stays in cache for many rounds.
``docs/GOSSIP.md`` describes the protocol, its messages and its rounds.

References
----------
.. [1] D. Kempe, A. Dobra and J. Gehrke, "Gossip-based computation of aggregate
   information", 44th IEEE Symposium on Foundations of Computer Science (FOCS), 2003,
   pp. 482-491. doi:10.1109/SFCS.2003.1238221
.. [2] C. N. Hadjicostis, N. H. Vaidya and A. D. Domínguez-García, "Robust distributed
   average consensus via exchange of running sums", IEEE Transactions on Automatic
   Control 61(6), 2016, pp. 1492-1507. doi:10.1109/TAC.2015.2471695
.. [3] G. H. Golub and R. S. Varga, "Chebyshev semi-iterative methods, successive
   overrelaxation iterative methods, and second order Richardson iterative methods,
   Part I", Numerische Mathematik 3, 1961, pp. 147-156.
.. [4] E. Montijano, J. I. Montijano and C. Sagüés, "Chebyshev polynomials in
   distributed consensus applications", IEEE Transactions on Signal Processing 61(3),
   2013, pp. 693-706. arXiv:1111.4825
.. [5] R. L. G. Cavalcante, A. Rogers and N. R. Jennings, "Consensus acceleration in
   multiagent systems with the Chebyshev semi-iterative method", Proceedings of AAMAS
   2011.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from twinweave.core._arguments import check_count, check_number, is_real
from twinweave.core._emulator import ConvergenceWarning
from twinweave.transfer._records import refuse_bool, twin_list


def _matvecs_kernel() -> Callable[..., None] | None:
    """scipy's own kernel for a sparse matrix times a dense one (see _product_into);
    ``None`` in a scipy that renamed it, where ``@`` is used."""
    try:
        from scipy.sparse._sparsetools import csr_matvecs
    except ImportError:  # pragma: no cover - no such scipy yet
        return None
    return csr_matvecs


_csr_matvecs = _matvecs_kernel()

__all__ = [
    "GossipMessages",
    "GossipResult",
    "PeerGraph",
    "PushSum",
    "gossip_mean",
    "predicted_rounds",
    "spectral_gap",
]

#: What :func:`numpy.random.default_rng` takes.
Seed = (
    int
    | Sequence[int]
    | np.random.SeedSequence
    | np.random.BitGenerator
    | np.random.Generator
    | None
)
Payload = Any
"""An array-like, or a (nested) mapping, dataclass, tuple or list of array-likes."""


def random_generator(seed: Seed) -> np.random.Generator:
    """``np.random.default_rng(seed)`` (a Generator is itself), with what numpy refuses
    named by the argument (numpy's own message names none)."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as error:
        raise TypeError(
            "seed: expected what numpy.random.default_rng takes (None, an integer >= 0, a "
            f"SeedSequence, a bit generator or a Generator), got {seed!r} ({error})"
        ) from None


_NO_EPOCH = np.iinfo(np.int64).min
# An epoch is (round it began, slot of the twin that began it), packed in one integer.
_EPOCH_ROUND = np.int64(2**32)
_DENSE_EIGEN_MAX_NODES = 200


# -- payloads: nested arrays <-> one flat vector per twin -----------------------------------
class _Spec(ABC):
    """The structure of a payload: flattens it to floats and rebuilds it.

    One subclass per kind of node (array leaf, mapping, dataclass record, sequence).
    """

    size: int

    @abstractmethod
    def flatten(self, value: Payload, out: list[NDArray[np.float64]]) -> None: ...

    @abstractmethod
    def unflatten(self, vector: NDArray[np.float64], start: int) -> Payload: ...


class _Leaf(_Spec):
    def __init__(self, value: ArrayLike) -> None:
        array = np.asarray(value)
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise TypeError(f"gossip averages numbers; got an array of {array.dtype}")
        self.shape = array.shape
        self.scalar = array.ndim == 0 and not isinstance(value, np.ndarray)
        self.size = int(array.size)

    def flatten(self, value: Payload, out: list[NDArray[np.float64]]) -> None:
        array = np.asarray(value, dtype=np.float64)
        if array.shape != self.shape:
            raise ValueError(f"payload part has shape {array.shape}, expected {self.shape}")
        out.append(array.reshape(-1))

    def unflatten(self, vector: NDArray[np.float64], start: int) -> Payload:
        part = vector[start : start + self.size]
        return float(part[0]) if self.scalar else part.reshape(self.shape).copy()


class _Mapping(_Spec):
    def __init__(self, value: Mapping[Any, Payload]) -> None:
        self.keys = tuple(value)
        self.parts = tuple(_spec(value[k]) for k in self.keys)
        self.size = sum(p.size for p in self.parts)

    def flatten(self, value: Payload, out: list[NDArray[np.float64]]) -> None:
        if set(value) != set(self.keys):
            raise ValueError(f"payload keys {sorted(map(str, value))} differ from the first")
        for key, part in zip(self.keys, self.parts, strict=True):
            part.flatten(value[key], out)

    def unflatten(self, vector: NDArray[np.float64], start: int) -> Payload:
        result: dict[Any, Payload] = {}
        for key, part in zip(self.keys, self.parts, strict=True):
            result[key] = part.unflatten(vector, start)
            start += part.size
        return result


class _Record(_Spec):
    """A dataclass instance: rebuilt with :func:`dataclasses.replace` on the first one."""

    def __init__(self, value: Any) -> None:
        self.template = value
        self.names = tuple(f.name for f in dataclasses.fields(value) if f.init)
        self.parts = tuple(_spec(getattr(value, name)) for name in self.names)
        self.size = sum(p.size for p in self.parts)

    def flatten(self, value: Payload, out: list[NDArray[np.float64]]) -> None:
        if type(value) is not type(self.template):
            raise TypeError(f"payload is {type(value).__name__}, expected {type(self.template)}")
        for name, part in zip(self.names, self.parts, strict=True):
            part.flatten(getattr(value, name), out)

    def unflatten(self, vector: NDArray[np.float64], start: int) -> Payload:
        values: dict[str, Payload] = {}
        for name, part in zip(self.names, self.parts, strict=True):
            values[name] = part.unflatten(vector, start)
            start += part.size
        return dataclasses.replace(self.template, **values)


class _Sequence(_Spec):
    def __init__(self, value: Sequence[Payload]) -> None:
        self.rebuild: Callable[[list[Payload]], Payload] = (
            type(value)._make  # a named tuple
            if isinstance(value, tuple) and hasattr(value, "_make")
            else tuple
            if isinstance(value, tuple)
            else list
        )
        self.parts = tuple(_spec(v) for v in value)
        self.size = sum(p.size for p in self.parts)

    def flatten(self, value: Payload, out: list[NDArray[np.float64]]) -> None:
        if len(value) != len(self.parts):
            raise ValueError(f"payload has {len(value)} parts, expected {len(self.parts)}")
        for item, part in zip(value, self.parts, strict=True):
            part.flatten(item, out)

    def unflatten(self, vector: NDArray[np.float64], start: int) -> Payload:
        items = []
        for part in self.parts:
            items.append(part.unflatten(vector, start))
            start += part.size
        return self.rebuild(items)


def _spec(value: Payload) -> _Spec:
    if isinstance(value, Mapping):
        return _Mapping(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _Record(value)
    if isinstance(value, tuple | list):
        return _Sequence(value)
    return _Leaf(value)


def _flatten(
    spec: _Spec, value: Payload, twin: Hashable, argument: str = "payloads"
) -> NDArray[np.float64]:
    """``value``, twin ``twin``'s payload, as one vector; refused, naming ``argument``
    and the twin, where its structure is not the first twin's (``spec``)."""
    parts: list[NDArray[np.float64]] = []
    try:
        spec.flatten(value, parts)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"{argument}: twin {twin!r}'s {error} (every payload has the first twin's structure)"
        ) from None
    return np.concatenate(parts) if parts else np.zeros(0)


# -- what travels -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GossipMessages:
    """Every message of one round (or of one departure), for inspection.

    Message ``i`` goes from ``sender[i]`` to ``receiver[i]`` (twin labels) and carries
    ``numerator[i]`` (the payload-sized running sum, or for a departure the settled
    amount), ``weight[i]`` and ``epoch[i]``: nothing else. Gossip messages are
    broadcast, one running sum per sender, repeated for each of its links.

    Attributes
    ----------
    round
        Number of rounds completed before these messages were sent
    kind
        ``"gossip"`` for a round's running sums, ``"farewell"`` for what a departing
        twin hands its neighbours
    sender, receiver
        Twin labels, one per message
    delivered
        Whether each message arrived (farewells always do)
    numerator
        (n_messages, n_values) flattened payload-sized vectors
    weight
        (n_messages,) push-sum weights
    epoch
        (n_messages,) the sender's epoch: 0 before any crash, then the round its
        restart began times 2**32 plus the index of the twin that began it among all
        twins in the order they came (the start's, then each that joined)
    """

    round: int
    kind: Literal["gossip", "farewell"]
    sender: tuple[Hashable, ...]
    receiver: tuple[Hashable, ...]
    delivered: NDArray[np.bool_]
    numerator: NDArray[np.float64]
    weight: NDArray[np.float64]
    epoch: NDArray[np.int64]


@dataclass(frozen=True)
class GossipResult:
    """Where a gossip run stopped.

    Attributes
    ----------
    nodes
        The twins present at the end, in the order of ``estimates``' rows
    estimates
        (n_nodes, n_values) every twin's estimate of the average, flattened
    n_rounds
        Rounds run in this call
    converged
        Every twin's own stopping test passed at the same check
    settled_at
        (n_nodes,) total round since ``start`` from which each twin's test has
        passed at every check, ``-1`` if it did not pass at the last one
    """

    nodes: tuple[Hashable, ...]
    estimates: NDArray[np.float64]
    n_rounds: int
    converged: bool
    settled_at: NDArray[np.int64]

    def relative_error(self, reference: ArrayLike) -> float:
        """Largest disagreement of any twin with ``reference``, relative to its size.

        ``max_i max_k |estimate[i, k] - reference[k]| / max_k |reference[k]|``: norm-wise,
        so that entries near zero (a covariance's off-diagonal) do not dominate.
        """
        return _relative_error(self.estimates, np.asarray(reference, dtype=np.float64))


def _relative_error(estimates: NDArray[np.float64], reference: NDArray[np.float64]) -> float:
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    deviation = float(np.max(np.abs(estimates - reference))) if estimates.size else 0.0
    return deviation / scale if scale > 0 else deviation


# -- the graph --------------------------------------------------------------------------------
class PeerGraph(Protocol):
    """A peer graph as gossip reads it: its twins, by iteration, and its links.

    A :class:`networkx.Graph` is one; links are undirected, self-loops are ignored.
    """

    def __iter__(self) -> Iterator[Hashable]: ...

    @property
    def edges(self) -> Iterable[tuple[Hashable, Hashable]]: ...


@dataclass(frozen=True)
class _Links:
    """A peer graph given by its node and edge lists."""

    nodes: tuple[Hashable, ...]
    edges: tuple[tuple[Hashable, Hashable], ...]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.nodes)


def _neighbours(graph: PeerGraph) -> dict[Hashable, set[Hashable]]:
    adjacency: dict[Hashable, set[Hashable]] = {}
    for node in graph:
        if node in adjacency:
            raise ValueError(f"graph: expected each twin once among its nodes, got {node!r} twice")
        adjacency[node] = set()
    for u, v in graph.edges:
        for end in (u, v):
            if end not in adjacency:
                raise ValueError(
                    f"graph: expected links between its twins, got the link {(u, v)!r} to "
                    f"{end!r}, which is not among its nodes"
                )
        if u != v:
            adjacency[u].add(v)
            adjacency[v].add(u)
    return adjacency


def _induced(graph: PeerGraph, nodes: Iterable[Hashable]) -> PeerGraph:
    """The peer graph of ``nodes`` and the links among them, in the graph's node order."""
    keep = set(nodes)
    return _Links(
        tuple(node for node in graph if node in keep),
        tuple((u, v) for u, v in graph.edges if u in keep and v in keep),
    )


def _adjacency_matrix(adjacency: Mapping[Hashable, set[Hashable]]) -> sp.csr_array:
    index = {node: i for i, node in enumerate(adjacency)}
    rows = [index[u] for u, links in adjacency.items() for _ in links]
    columns = [index[v] for links in adjacency.values() for v in links]
    n = len(index)
    return sp.csr_array((np.ones(len(rows)), (rows, columns)), shape=(n, n))


def _n_parts(graph: PeerGraph) -> int:
    """Connected parts of the graph (0 without twins)."""
    adjacency = _neighbours(graph)
    if not adjacency:
        return 0
    n_components, _ = csgraph.connected_components(_adjacency_matrix(adjacency), directed=False)
    return int(n_components)


def parts_text(graph: PeerGraph, limit: int = 3) -> str:
    """The graph's connected parts, for a message: ``[A, B] and [C]`` (the first
    ``limit`` twins of each of the first ``limit`` parts)."""
    adjacency = _neighbours(graph)
    nodes = list(adjacency)
    _, label = csgraph.connected_components(_adjacency_matrix(adjacency), directed=False)
    parts: dict[int, list[Hashable]] = {}
    for node, part in zip(nodes, label.tolist(), strict=True):
        parts.setdefault(part, []).append(node)

    def listed(items: Sequence[Any]) -> str:
        shown = ", ".join(repr(item) for item in items[:limit])
        return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")

    texts = [f"[{listed(part)}]" for part in parts.values()]
    return " and ".join(texts[:limit]) + (
        f" and {len(texts) - limit} more parts" if len(texts) > limit else ""
    )


def _is_connected(graph: PeerGraph) -> bool:
    """Whether every twin can reach every other through links (and there is a twin)."""
    return _n_parts(graph) == 1


def check_peer_graph(graph: object) -> None:
    """Refuse what is not an undirected peer graph (a fleet's statistics or prior given
    in its place, a list of edges, a directed graph, a multigraph).

    Every link carries messages both ways (the round matrix is ``(I + A)(I + D)^-1``
    with ``A`` symmetric), so a :class:`networkx.DiGraph` would silently be read as its
    undirected version.
    """
    if not isinstance(graph, Iterable) or not hasattr(graph, "edges"):
        raise TypeError(
            "graph: expected a peer graph (a networkx.Graph, or twins by iteration and "
            f"links in .edges), got {type(graph).__name__}"
        )
    is_directed = getattr(graph, "is_directed", None)
    if callable(is_directed) and is_directed():
        raise TypeError(
            f"graph: expected an undirected peer graph, got a directed {type(graph).__name__}: "
            "gossip sends on every link both ways; pass graph.to_undirected() if the "
            "twins' links do carry messages both ways"
        )
    is_multigraph = getattr(graph, "is_multigraph", None)
    if callable(is_multigraph) and is_multigraph():
        raise TypeError(
            f"graph: expected a peer graph with one link per pair of twins, got a "
            f"{type(graph).__name__}: a twin shares its mass once per neighbour; pass "
            "networkx.Graph(graph) to merge parallel links"
        )


def check_connected(graph: PeerGraph) -> None:
    """Refuse a peer graph gossip cannot average over: not an undirected peer graph,
    without twins, or of several parts (each part would settle on its own average and
    call it converged)."""
    check_peer_graph(graph)
    n_parts = _n_parts(graph)
    if n_parts == 0:
        raise ValueError("graph: expected a peer graph of twins, got one without nodes")
    if n_parts != 1:
        raise ValueError(
            "graph: expected a connected peer graph (every twin reachable from every other "
            f"through links), got one of {n_parts} parts, {parts_text(graph)}: twins in "
            "different parts never mix"
        )


def check_loss(loss: object) -> None:
    """Refuse a message-loss probability outside ``[0, 1)``: with every message lost
    nothing mixes."""
    if not is_real(loss) or not 0.0 <= loss < 1.0:
        raise ValueError(f"loss: expected a probability in [0, 1), got {loss!r}")


def check_stopping(
    tol: object, patience: object, max_rounds: object, names: tuple[str, str, str]
) -> None:
    """Refuse a gossip stopping test that could not stop as documented: ``tol`` not a
    positive number, ``patience`` or ``max_rounds`` not a positive integer. ``names``
    are the caller's names of the three settings."""
    check_number(tol, names[0])
    check_count(patience, names[1])
    check_count(max_rounds, names[2])


def spectral_gap(graph: PeerGraph) -> float:
    """One minus the second-largest eigenvalue modulus of the gossip matrix.

    The matrix is push-sum's ``W = (I + A)(I + D)^(-1)``: each twin keeps a share of
    ``1 / (1 + degree)`` and sends one to each neighbour. ``W`` is similar to a
    symmetric matrix, so its eigenvalues are real; the error of every twin's estimate
    shrinks like ``(1 - gap)^rounds``, so about ``log(1 / eps) / gap`` rounds reach a
    relative error ``eps``.

    Parameters
    ----------
    graph
        An undirected peer graph

    Returns
    -------
    float
        In ``[0, 1]``; zero for a disconnected graph. One for a single twin: the gap
        bounds how fast an estimate's error leaves the consensus, and a twin alone
        holds the average from the start (``W = [1]``, nothing left once the consensus
        is projected out).

    Raises
    ------
    ValueError
        For a graph without twins, which has no gossip matrix.
    TypeError
        For what is not an undirected peer graph.

    Examples
    --------
    >>> import networkx as nx
    >>> round(spectral_gap(nx.complete_graph(5)), 12)
    1.0
    >>> round(spectral_gap(nx.cycle_graph(4)), 6)  # eigenvalues (1 + 2 cos(pi k / 2)) / 3
    0.666667
    """
    check_peer_graph(graph)
    adjacency = _adjacency_matrix(_neighbours(graph))
    n = adjacency.shape[0]
    if n == 0:
        raise ValueError("graph: expected a peer graph of twins, got one without nodes")
    if n == 1:
        return 1.0
    if int(csgraph.connected_components(adjacency, directed=False)[0]) > 1:
        return 0.0
    # W = (I + A)(I + D)^-1 is similar to the symmetric (I + D)^-1/2 (I + A) (I + D)^-1/2.
    root_weight = np.sqrt(1.0 + np.asarray(adjacency.sum(axis=1)).ravel())
    scale = sp.diags_array(1.0 / root_weight)
    matrix = sp.csr_array(scale @ (sp.eye_array(n) + adjacency) @ scale)
    # The top eigenvector is known exactly: sqrt(1 + degree). Project it out.
    top = root_weight / np.linalg.norm(root_weight)
    if n <= _DENSE_EIGEN_MAX_NODES:
        dense = matrix.toarray() - np.outer(top, top)
        second = float(np.max(np.abs(np.linalg.eigvalsh(dense))))
    else:

        def deflated(x: NDArray[np.float64]) -> NDArray[np.float64]:
            x = np.asarray(x, dtype=np.float64).reshape(-1)
            return np.asarray(matrix @ x - top * (top @ x))

        operator = spla.LinearOperator((n, n), matvec=deflated, dtype=np.float64)
        values = spla.eigsh(operator, k=1, which="LM", tol=1e-10, return_eigenvectors=False)
        second = float(np.max(np.abs(values)))
    return max(0.0, 1.0 - second)


# -- push-sum ---------------------------------------------------------------------------------
_ROUNDS_PER_BATCH = 16
# Messages every link into a twin must deliver within one window of its stopping test.
# With one, small graphs at heavy loss still stopped early (a path of three twins at loss
# 0.97: 5 of 30 runs, errors up to 0.5 %): a twin left with little mass of its own copies
# its neighbour's estimate, which the next message alone then does not move. With three,
# 1 of 900 runs on paths of 2-4 twins at loss 0.9-0.995 (error 9e-5); a lossless window
# of three rounds or more is no longer.
_DELIVERIES = 3
# Rounds are applied to a block of payload columns at a time, all rounds of a batch while
# the block stays in cache: n_twins x width x 8 bytes of at most about this size, the
# width a multiple of 8 columns (64 bytes, a cache line per twin; the product gathers
# neighbours' rows). 10,000 twins, 4,762 columns, 120 rounds on an Intel Xeon
# (2026-12-01): 8 columns 28.5 s, 10 30.8 s, 26 (2 MiB blocks) 31.4 s, 6 38.8 s.
_BLOCK_BYTES = 2**19
_BLOCK_STEP = 8


def _block_width(n_twins: int) -> int:
    return max(_BLOCK_STEP, _BLOCK_BYTES // (8 * n_twins) // _BLOCK_STEP * _BLOCK_STEP)


def _csr(
    rows: NDArray[np.intp],
    columns: NDArray[np.intp],
    data: NDArray[np.float64],
    shape: tuple[int, int],
) -> sp.csr_array:
    """A sparse matrix from entries whose ``rows`` are sorted (no conversion needed)."""
    indptr = np.zeros(shape[0] + 1, dtype=np.intp)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return sp.csr_array((data, columns, indptr), shape=shape)


def _selection(
    rows: NDArray[np.intp], columns: NDArray[np.intp], n_rows: int, n_columns: int
) -> sp.csr_array | None:
    """A 0/1 matrix adding column ``columns[k]`` of its operand into row ``rows[k]``."""
    if rows.size == 0:
        return None
    return _csr(rows, columns, np.ones(rows.size), (n_rows, n_columns))


# Chebyshev acceleration: the weights omega converge to their limit; within this relative
# difference of the last one, the last round's product is used again.
_OMEGA_SETTLED = 1e-15


def check_known_gap(known_gap: object, loss: object) -> None:
    """Refuse a known spectral gap outside ``(0, 1]``, or given with a message loss
    (accelerated rounds need every message)."""
    if known_gap is None:
        return
    if not is_real(known_gap) or not 0.0 < known_gap <= 1.0:
        raise ValueError(f"known_gap: expected a spectral gap in (0, 1], got {known_gap!r}")
    if loss != 0.0:
        raise ValueError(
            f"known_gap: accelerated rounds need every message, got known_gap={known_gap!r} "
            f"with loss={loss!r}: leave known_gap out where messages are lost"
        )


def _chebyshev_matrix(
    mixing: sp.csr_array,
    degree: NDArray[np.float64],
    alive: NDArray[np.bool_],
    known_gap: float | None,
) -> tuple[sp.csr_array, float] | None:
    """The matrix and ``mu`` of Chebyshev-accelerated rounds (None: not accelerated).

    The gossip matrix ``W`` has the eigenvalue 1 (the consensus) and the others in
    ``[lower, upper]``: ``upper = 1 - known_gap``; ``lower`` the larger of
    ``-1 + 2 / (1 + d_max)``, which holds for every graph of largest degree ``d_max``
    (``W`` is similar to ``(I + D)^-1/2 (I + A) (I + D)^-1/2``, and ``D + A`` is
    positive semidefinite), and ``-(1 - known_gap)``, since the gap bounds every
    eigenvalue's modulus (a complete graph's 0 then lies inside, not on the edge where
    the polynomial is largest).
    Mapping that interval onto ``[-1, 1]`` sends 1 to ``mu > 1``; the rounds apply
    ``T_k(M) / T_k(mu)`` to the twins' first state, the degree-``k`` polynomial
    smallest on the interval while keeping the consensus (Golub and Varga 1961;
    Montijano, Montijano and Sagüés 2013 for consensus). With ``S = (2 W - (lower +
    upper) I) / (2 - lower - upper)`` (columns still summing to one, so no mass is made or
    lost), round ``k`` is ``x_k = omega_k S x_(k-1) + (1 - omega_k) x_(k-2)``.

    Eigenvalues outside the interval (a gap given too large) still shrink, more slowly:
    each lies above ``lower + upper - 1 >= -1`` and below 1, where ``|T_k(M)| /
    T_k(mu)`` still goes to zero. So any gap in ``(0, 1]`` converges to the same
    average. With ``known_gap = 1``, or where the degree bound meets ``upper``, the
    interval is empty and the rounds are plain.
    """
    if known_gap is None:
        return None
    present = degree[alive]
    if present.size < 2:
        return None
    upper = 1.0 - known_gap
    lower = max(-1.0 + 2.0 / (1.0 + float(present.max())), -upper)
    if upper <= lower:
        # Every other eigenvalue is upper (two twins, a complete graph: 0), which one
        # plain round removes.
        return None
    mu = (2.0 - lower - upper) / (upper - lower)
    shift = sp.diags_array(np.where(alive, lower + upper, 0.0))
    matrix = sp.csr_array((2.0 * mixing - shift) / (2.0 - lower - upper))
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix, mu


def _chebyshev_rounds(mu: float, factor: float) -> int:
    """Accelerated rounds after which ``1 / T_k(mu)``, the most any error component
    within the interval can have kept of its size, is below ``factor``:
    ``T_k(mu) >= rho^k / 2`` with ``rho = mu + sqrt(mu^2 - 1)``."""
    return math.ceil(math.log(2.0 / factor) / math.log(mu + math.sqrt(mu * mu - 1.0)))


def _chebyshev_omega(k: int, last: float, mu: float) -> float:
    """Weight ``omega`` of the ``k``-th accelerated round (from 0), ``last`` that of the
    one before: ``omega = 2 mu T_(k-1)(mu) / T_k(mu)`` by Chebyshev's recurrence."""
    if k == 0:
        return 1.0
    if k == 1:
        return 2.0 * mu * mu / (2.0 * mu * mu - 1.0)
    return 1.0 / (1.0 - last / (4.0 * mu * mu))


def _product_into(
    matrix: sp.csr_array,
    x: NDArray[np.float64],
    out: NDArray[np.float64],
    *,
    accumulate: bool = False,
) -> NDArray[np.float64]:
    """``matrix @ x`` written into ``out`` (C-contiguous, of the product's shape, not
    sharing ``x``'s memory), or added to it with ``accumulate``.

    Gossip spends its time in this product, tens of thousands of times a run on blocks
    that stay in cache: scipy's ``@`` allocates and zeroes a new array each time and
    checks its operands in Python, together 12 % of a run of 10,000 twins (profile of
    2026-12-01). Its own kernel, ``csr_matvecs`` (``out += matrix @ x``), is called
    directly where scipy has it under that private name (scipy.sparse._sparsetools).
    (Keeping the diagonal out of the product, as a scaling of ``x`` written into
    ``out`` in place of the zeroing, was slower: 27-37 s against 26-29 s.)
    """
    if (
        _csr_matvecs is None
        or matrix.indices.dtype != matrix.indptr.dtype
        or not (x.flags.c_contiguous and out.flags.c_contiguous)
    ):
        if accumulate:
            out += matrix @ x
        else:
            np.copyto(out, matrix @ x)
        return out
    n_rows, n_columns = matrix.shape
    if out.shape != (n_rows, x.shape[1]) or x.shape[0] != n_columns:
        # The kernel checks nothing: a buffer a row short would be written past its end.
        raise ValueError(
            f"product of {matrix.shape} and {x.shape} into {out.shape}: shapes do not match"
        )
    if not accumulate:
        out.fill(0.0)
    _csr_matvecs(
        n_rows,
        n_columns,
        x.shape[1],
        matrix.indptr,
        matrix.indices,
        matrix.data,
        x.reshape(-1),
        out.reshape(-1),
    )
    return out


@dataclass(frozen=True)
class _RoundPlan:
    """One round as linear maps, the same for every payload column.

    ``state' = transfer @ state + from_pending @ pending`` (plus the own payload on the
    rows of restarting twins) and ``pending' = to_pending @ state + carried @ pending``,
    where ``pending`` has one row per link whose mass waits for a message to get through.
    An accelerated round adds ``previous_weight`` times the state before ``state``,
    which ``apply`` is given as ``out``.
    """

    transfer: sp.csr_array
    n_pending: int = 0
    from_pending: sp.csr_array | None = None
    to_pending: sp.csr_array | None = None
    carried: sp.csr_array | None = None
    reset: NDArray[np.intp] = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    delivered: NDArray[np.bool_] | None = None
    # Delivered and of the receiver's epoch (not discarded): mass that arrived.
    accepted: NDArray[np.bool_] | None = None
    sender_epoch: NDArray[np.int64] | None = None
    previous_weight: float = 0.0

    def apply(
        self,
        state: NDArray[np.float64],
        pending: NDArray[np.float64],
        own: NDArray[np.float64],
        out: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The round's new state (written into ``out``, of ``state``'s shape and not
        sharing its memory) and new pending mass."""
        if self.previous_weight:
            out *= self.previous_weight
            new_state = _product_into(self.transfer, state, out, accumulate=True)
        else:
            new_state = _product_into(self.transfer, state, out)
        if self.from_pending is not None:
            new_state += self.from_pending @ pending
        if self.reset.size:
            new_state[self.reset] += own[self.reset]
        if self.to_pending is None:
            return new_state, pending
        new_pending = np.asarray(self.to_pending @ state)
        if self.carried is not None:
            new_pending += self.carried @ pending
        return new_state, new_pending


class _Movement:
    """How far each twin's estimate moved since its reference, block by block.

    A twin's reference is its estimate at the last check by which every link into it
    had delivered ``_DELIVERIES`` messages since the reference before (its window
    "closed"): under heavy loss an estimate stands still between deliveries, and a
    window in which nothing arrived says nothing of convergence (at loss 0.99 a ring
    "converged" on estimates 60-80 % off).
    """

    def __init__(self, blocks: list[NDArray[np.float64]], dst: NDArray[np.intp]) -> None:
        weight = blocks[-1][:, -1]
        last = len(blocks) - 1
        self.previous = [self._estimate(b, weight, i == last) for i, b in enumerate(blocks)]
        self.moved = np.zeros(weight.size)
        self.size = np.zeros(weight.size)
        # Each link's receiver (a twin that left took its links along), and the messages
        # the link delivered since the receiver's reference.
        self.dst = dst
        self.heard = np.zeros(dst.size, dtype=np.int64)
        self.closing = np.zeros(weight.size, dtype=bool)

    def hear(self, accepted: NDArray[np.bool_], times: int = 1) -> None:
        """Count a round's messages that arrived (``accepted`` over every link), for
        ``times`` rounds alike."""
        self.heard += accepted if times == 1 else times * accepted

    def _close_windows(self) -> None:
        """The twins every one of whose links has delivered since their reference."""
        silent = np.bincount(self.dst[self.heard < _DELIVERIES], minlength=self.closing.size)
        self.closing = silent == 0
        self.heard[self.closing[self.dst]] = 0

    @staticmethod
    def _estimate(
        block: NDArray[np.float64], weight: NDArray[np.float64], last: bool
    ) -> NDArray[np.float64]:
        # Column-major, twins along the contiguous axis: the per-twin maxima below then
        # reduce long runs rather than a block's short rows (several times faster).
        numerator = block[:, :-1] if last else block
        out = np.empty(numerator.shape, order="F")
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(numerator, weight[:, None], out=out)
        return out

    def clear(self) -> None:
        self.moved[:] = 0.0
        self.size[:] = 0.0

    def update(
        self, index: int, block: NDArray[np.float64], weight: NDArray[np.float64], last: bool
    ) -> None:
        if index == len(self.previous) - 1:
            self._close_windows()  # the weights' block comes first at every check
        estimate = self._estimate(block, weight, last)
        reference = self.previous[index]
        every = bool(self.closing.all())
        if estimate.shape[1]:
            with np.errstate(invalid="ignore"):
                # In place on the references where every twin takes a new one (the usual
                # case): this runs on every block at every check.
                change = np.subtract(estimate, reference, out=reference if every else None)
                np.abs(change, out=change)
                moved = change.max(axis=1)
                np.maximum(self.moved, moved, out=self.moved)
                np.maximum(self.size, estimate.max(axis=1), out=self.size)
                np.maximum(self.size, -estimate.min(axis=1), out=self.size)
            # A twin with no weight yet has no estimate: it has not settled.
            self.moved[~np.isfinite(moved)] = np.inf
        if every:
            self.previous[index] = estimate
        else:
            reference[self.closing] = estimate[self.closing]

    def settled(self, tol: float) -> NDArray[np.bool_]:
        """Twins whose estimate is finite and has moved by at most ``tol`` relative to
        its size since their reference."""
        size = self.size
        return np.isfinite(size) & (self.moved <= tol * size)


class PushSum:
    """Loss-robust push-sum over a peer graph, simulated round by round.

    Parameters
    ----------
    graph
        Undirected, connected peer graph; twins are its nodes, links its edges. It is
        copied on :meth:`start` and never modified.
    loss
        Probability ``[0, 1)`` that any one message is lost, independently
    seed
        Randomness of the losses
    initiator
        By default every twin starts with weight one and the estimates converge
        to the *mean* of the payloads. Given a twin, only it starts with weight one and
        they converge to the *sum* (Kempe et al. 2003): no twin needs to know how many
        twins there are. After a crash the twin that names the winning epoch takes the
        initiator's part.
    on_messages
        Called with every round's (and every departure's) messages, for
        inspecting what travels; costs ``n_links x n_values`` memory per round.
    known_gap
        A spectral gap every twin knows in advance, as :func:`spectral_gap` gives it or a
        lower bound on it: from the graph's design (a random ``d``-regular graph's is
        close to ``(d - 2 sqrt(d - 1)) / (d + 1)``) or measured once. Given, lossless
        rounds are Chebyshev-accelerated: each twin combines what it received with its
        last two states, and about ``log(1 / eps) / sqrt(2 gap)`` rounds reach an error
        ``eps`` instead of ``log(1 / eps) / gap`` (a random 4-regular graph of 10,000
        twins: 29 rounds to 1e-6 instead of 102). A gap that is wrong only costs rounds:
        the rounds converge to the same average whatever it is, but one far too large
        gains little or nothing over plain push-sum, and one far too small can take
        many more rounds than the gap needs.
        Weights can turn negative on the way (estimates pass through infinity). Needs
        ``loss=0``; rounds that restart an epoch after a crash are not accelerated; with
        ``known_gap=1`` no round is. Also costs a second copy of the twins' state.

    Examples
    --------
    >>> import networkx as nx
    >>> import numpy as np
    >>> graph = nx.cycle_graph(6)
    >>> values = {node: np.array([float(node), 1.0]) for node in graph}
    >>> result = PushSum(graph, loss=0.2, seed=0).start(values).run(tol=1e-12)
    >>> bool(result.converged), result.relative_error([2.5, 1.0]) < 1e-9
    (True, True)
    """

    def __init__(
        self,
        graph: PeerGraph,
        *,
        loss: float = 0.0,
        seed: Seed = None,
        initiator: Hashable | None = None,
        on_messages: Callable[[GossipMessages], None] | None = None,
        known_gap: float | None = None,
    ) -> None:
        self.graph = graph
        self.loss = loss
        self.seed = seed
        self.initiator = initiator
        self.on_messages = on_messages
        self.known_gap = known_gap

    # -- setting up ----------------------------------------------------------------------
    def start(self, payloads: Mapping[Hashable, Payload] | ArrayLike) -> Self:
        """Give every twin its payload and reset the gossip state.

        Parameters
        ----------
        payloads
            A payload per twin (keys: the graph's nodes), every payload of the
            same structure; or an array of shape ``(n_nodes, n_values)`` whose rows
            follow ``list(graph)``

        Returns
        -------
        PushSum
            ``self``, ready to :meth:`step` or :meth:`run`.

        Raises
        ------
        TypeError
            If ``graph`` is not an undirected peer graph (a directed one included).
        ValueError
            If ``graph`` has no twins or several parts (each would settle on its own
            average), ``loss`` is not in ``[0, 1)``, or ``known_gap`` is not in
            ``(0, 1]`` or given with a loss.
        """
        check_loss(self.loss)
        check_known_gap(self.known_gap, self.loss)
        check_connected(self.graph)
        if not hasattr(self, "_rng"):
            # Kept across starts: a fit that gossips every round draws fresh losses.
            self._rng = random_generator(self.seed)
        nodes = list(self.graph)
        if isinstance(payloads, Mapping):
            missing = set(nodes) - set(payloads)
            extra = set(payloads) - set(nodes)
            if missing or extra:
                raise ValueError(_payload_keys_message(missing, extra, "the graph's nodes"))
            self._spec: _Spec = _spec(payloads[nodes[0]])
            values = np.stack([_flatten(self._spec, payloads[node], node) for node in nodes])
        else:
            values = _payload_rows(payloads, nodes, "list(graph)")
            if values.ndim != 2 or values.shape[0] != len(nodes):
                raise ValueError(
                    f"payload array must be (n_nodes={len(nodes)}, n_values), got {values.shape}"
                )
            self._spec = _Leaf(values[0])
        if values.shape[1] == 0:
            raise ValueError("payloads hold no numbers")
        _check_finite_payloads(values, nodes)
        n, d = values.shape
        self._neighbours = _neighbours(self.graph)
        self._slot: dict[Hashable, int] = {node: i for i, node in enumerate(nodes)}
        self._label: list[Hashable] = list(nodes)
        # The last column is the push-sum weight: numerator and weight travel together.
        # A twin's own weight is what it takes away when it leaves: for a sum, none.
        self._own_weight = 1.0 if self.initiator is None else 0.0
        self._own = np.hstack([values, np.full((n, 1), self._own_weight)])
        width = _block_width(n)
        self._bounds = [(a, min(a + width, d + 1)) for a in range(0, d + 1, width)]
        self._blocks = self._split(self._own)
        if self.initiator is not None:
            refuse_bool(self.initiator, self._neighbours, "initiator", "a twin of the graph")
            if self.initiator not in self._neighbours:
                raise ValueError(
                    f"initiator: expected a twin of the graph, got {self.initiator!r}, which "
                    "is not among its nodes"
                )
            self._blocks[-1][nodes.index(self.initiator), -1] = 1.0
        self._pending = self._split(np.zeros((0, d + 1)))
        self._sent = np.zeros_like(self._own) if self.on_messages is not None else None
        # Accelerated rounds read the state before the last round: each block's second
        # buffer, kept from round to round (plain rounds share one spare).
        self._previous: list[NDArray[np.float64]] | None = None
        self._alive = np.ones(n, dtype=bool)
        self._epoch = np.zeros(n, dtype=np.int64)
        self._pending_arcs = np.zeros(0, dtype=np.intp)
        self._n_rounds = 0
        self._clock = 0
        self._keys = np.zeros(0, dtype=np.int64)
        self._rebuild_links()
        return self

    def _split(self, matrix: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        # Copies, never views: the blocks are updated in place.
        return [np.array(matrix[:, a:b], order="C") for a, b in self._bounds]

    @staticmethod
    def _join(blocks: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        return np.hstack(blocks)

    def _rebuild_links(self) -> None:
        """Arcs sorted by (receiver, sender), the lossless round, pending mass remapped."""
        self._restart_lossless()
        old_keys = self._keys
        capacity = len(self._label)
        arcs = np.array(
            [
                (self._slot[u], self._slot[v])
                for u, links in self._neighbours.items()
                for v in links
            ],
            dtype=np.intp,
        ).reshape(-1, 2)
        src, dst = arcs[:, 0], arcs[:, 1]
        order = np.lexsort((src, dst))
        self._src, self._dst = src[order], dst[order]
        self._keys = self._dst.astype(np.int64) * _EPOCH_ROUND + self._src
        # The arcs and every twin's own loop, sorted by (receiver, sender): the entries
        # of a round's matrix; _arc_of maps each to its arc (a loop to any arc).
        loops = np.arange(capacity)
        every_dst = np.concatenate([self._dst, loops])
        every_src = np.concatenate([self._src, loops])
        order = np.lexsort((every_src, every_dst))
        self._loop_dst, self._loop_src = every_dst[order], every_src[order]
        self._loop = order >= self._dst.size
        self._arc_of = np.where(self._loop, 0, order)
        degree = np.bincount(self._src, minlength=capacity).astype(np.float64)
        self._share = np.where(self._alive, 1.0 / (1.0 + degree), 0.0)
        # A lossless round is state <- W @ state, W = (I + A) diag(share).
        self._mixing = sp.csr_array(
            sp.csr_array(
                (self._share[self._src], (self._dst, self._src)), shape=(capacity, capacity)
            )
            + sp.diags_array(self._share)
        )
        self._accelerated = _chebyshev_matrix(self._mixing, degree, self._alive, self.known_gap)
        if self._accelerated is None:
            self._previous = None  # plain rounds from now on: the memory goes back
        if self._pending_arcs.size:
            # Pending mass follows its link; a removed link was settled before removal.
            keys = old_keys[self._pending_arcs]
            where = np.searchsorted(self._keys, keys)
            found = where < self._keys.size
            found[found] = self._keys[where[found]] == keys[found]
            self._pending_arcs = where[found].astype(np.intp)
            self._pending = [p[found] for p in self._pending]

    # -- state -----------------------------------------------------------------------------
    def _require_started(self) -> None:
        if not hasattr(self, "_blocks"):
            raise RuntimeError("call start(payloads) first")

    @property
    def nodes_(self) -> tuple[Hashable, ...]:
        """The twins present now, in the order of :attr:`estimates_`' rows."""
        self._require_started()
        return tuple(self._label[i] for i in np.flatnonzero(self._alive))

    @property
    def estimates_(self) -> NDArray[np.float64]:
        """(n_nodes, n_values) every present twin's estimate: numerator / weight."""
        self._require_started()
        rows = slice(None) if self._alive.all() else np.flatnonzero(self._alive)
        weight = self._blocks[-1][rows, -1:]
        out = np.empty((weight.shape[0], self._own.shape[1] - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            for block, (a, b) in zip(self._blocks, self._bounds, strict=True):
                columns = min(b, out.shape[1]) - a
                np.divide(block[rows, :columns], weight, out=out[:, a : a + columns])
        return out

    @property
    def n_rounds_(self) -> int:
        """Rounds run since :meth:`start`."""
        self._require_started()
        return self._n_rounds

    def estimate(self, node: Hashable) -> Payload:
        """One twin's estimate of the average, in the structure of the payloads (inf or
        NaN, as in :attr:`estimates_`, while no weight has reached the twin)."""
        self._require_started()
        slot = self._present_slot(node, "node")
        row = np.concatenate([block[slot] for block in self._blocks])
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._spec.unflatten(row[:-1] / row[-1], 0)

    def update(self, payloads: Mapping[Hashable, Payload] | ArrayLike) -> Self:
        """Give the present twins new payloads, keeping the gossip's state.

        Each twin adds the change of its payload to its numerator and keeps its weight,
        so the totals are those of the new payloads at once and every estimate moves on
        from where it was. When the payloads changed little (a fleet's summaries from
        one round to the next) far fewer rounds reach a tolerance than after a fresh
        :meth:`start`. Mass waiting on links, epochs and the round count are kept.

        Parameters
        ----------
        payloads
            A payload per present twin, of the structure given to :meth:`start`; or an
            array of shape ``(n_present, n_values)`` whose rows follow :attr:`nodes_`

        Returns
        -------
        PushSum
            ``self``, ready to :meth:`step` or :meth:`run`.
        """
        self._require_started()
        present = np.flatnonzero(self._alive)
        nodes = [self._label[i] for i in present]
        n_values = self._own.shape[1] - 1
        if isinstance(payloads, Mapping):
            missing = set(nodes) - set(payloads)
            extra = set(payloads) - set(nodes)
            if missing or extra:
                raise ValueError(_payload_keys_message(missing, extra, "the present twins"))
            values = np.stack([_flatten(self._spec, payloads[node], node) for node in nodes])
        else:
            values = _payload_rows(payloads, nodes, "nodes_")
            if values.shape != (len(nodes), n_values):
                raise ValueError(
                    f"payload array must be (n_present={len(nodes)}, {n_values}), "
                    f"got {values.shape}"
                )
        _check_finite_payloads(values, nodes)
        change = values - self._own[present, :-1]
        for block, (a, b) in zip(self._blocks, self._bounds, strict=True):
            # The last block also holds the weights, which keep their values.
            width = min(b, n_values) - a
            block[present, :width] += change[:, a : a + width]
        self._own[present, :-1] = values
        # The states before this change do not hold its totals: the recurrence of
        # accelerated rounds starts again from here.
        self._lossless_rounds = 0
        return self

    # -- rounds ------------------------------------------------------------------------------
    def step(self, n_rounds: int = 1) -> Self:
        """Run ``n_rounds`` synchronous rounds (none for zero)."""
        self._require_started()
        check_count(n_rounds, "n_rounds", minimum=0)
        self._advance(n_rounds, None)
        return self

    def _advance(self, n_rounds: int, movement: _Movement | None) -> None:
        batch = 1 if self.on_messages is not None else _ROUNDS_PER_BATCH
        done = 0
        while done < n_rounds:
            n = min(batch, n_rounds - done)
            done += n
            plans = [self._plan_round() for _ in range(n)]
            if movement is not None:
                if all(plan is plans[0] for plan in plans):  # lossless rounds: one plan
                    assert plans[0].accepted is not None
                    movement.hear(plans[0].accepted, times=n)
                else:
                    for plan in plans:
                        assert plan.accepted is not None  # every plan says what arrived
                        movement.hear(plan.accepted)
            self._apply(plans, movement if done == n_rounds else None)

    def _plan_round(self) -> _RoundPlan:
        """Draw one round's losses and work out who receives what; payload-free."""
        src, dst, share, epoch = self._src, self._dst, self._share, self._epoch
        self._n_rounds += 1
        if self.loss == 0.0 and not self._pending_arcs.size:
            lossless = self._lossless_round()
            if lossless is not None:
                return lossless
        alive_epochs = epoch[self._alive]
        one_epoch = alive_epochs.size == 0 or alive_epochs.min() == alive_epochs.max()
        n = epoch.size
        delivered = self._rng.random(src.size) >= self.loss
        if one_epoch:
            accepted = delivered
            reset = np.zeros(n, dtype=bool)
            new_epoch = epoch
        else:
            # A receiver adopts the newest epoch among the messages reaching it and
            # restarts from its own payload; messages of other epochs are discarded.
            heard = np.full(n, _NO_EPOCH, dtype=np.int64)
            np.maximum.at(heard, dst[delivered], epoch[src[delivered]])
            new_epoch = np.maximum(epoch, heard)
            reset = (new_epoch > epoch) & self._alive
            accepted = delivered & (epoch[src] == new_epoch[dst])
        # Each twin keeps its share (a restarting twin its payload instead) and receives
        # the shares carried by accepted messages, and the mass waiting on their links.
        # A twin alone (no arcs at all) has no arc for its loop to point at.
        entries = self._loop | accepted[self._arc_of] if src.size else self._loop
        rows, columns = self._loop_dst[entries], self._loop_src[entries]
        data = share[columns]
        if reset.any():
            data[(rows == columns) & reset[rows]] = 0.0
        transfer = _csr(rows, columns, data, (n, n))
        old_arcs = self._pending_arcs
        arrive = accepted[old_arcs]
        from_pending = _selection(dst[old_arcs[arrive]], np.flatnonzero(arrive), n, old_arcs.size)
        # A lost message's share waits on its link, added to what already waited there;
        # a restarting twin's unsent old-epoch mass is void.
        lost_arcs = np.flatnonzero(~delivered)
        lost_arcs = lost_arcs[~reset[src[lost_arcs]]]
        to_pending = _csr(
            np.arange(lost_arcs.size), src[lost_arcs], share[src[lost_arcs]], (lost_arcs.size, n)
        )
        where = np.searchsorted(lost_arcs, old_arcs)
        waiting = where < lost_arcs.size
        waiting[waiting] = lost_arcs[where[waiting]] == old_arcs[waiting]
        carried = _selection(where[waiting], np.flatnonzero(waiting), lost_arcs.size, old_arcs.size)
        self._pending_arcs = lost_arcs
        self._epoch = new_epoch
        self._restart_lossless()
        return _RoundPlan(
            transfer,
            n_pending=lost_arcs.size,
            from_pending=from_pending,
            to_pending=to_pending,
            carried=carried,
            reset=np.flatnonzero(reset),
            delivered=delivered,
            accepted=accepted,
            sender_epoch=epoch[src],
        )

    def _restart_lossless(self) -> None:
        """Forget the lossless round: the links or epochs changed, or a round was not
        lossless. Accelerated rounds start their recurrence again."""
        self._lossless_plan: _RoundPlan | None = None
        self._lossless_rounds = 0
        self._omega = 1.0

    def _lossless_round(self) -> _RoundPlan | None:
        """The next round where nothing is lost or pending and every present twin is of
        one epoch (else ``None``): the whole round is one product, the same each round
        until the links or epochs change; accelerated, its weight ``omega`` changes over
        the first rounds of the recurrence."""
        plan = self._lossless_plan
        if plan is None:
            alive_epochs = self._epoch[self._alive]
            if alive_epochs.size and alive_epochs.min() != alive_epochs.max():
                return None
            everything = np.ones(self._src.size, dtype=bool)
            plan = _RoundPlan(
                self._mixing,
                delivered=everything,
                accepted=everything,
                sender_epoch=self._epoch[self._src],
            )
        if self._accelerated is not None:
            matrix, mu = self._accelerated
            omega = _chebyshev_omega(self._lossless_rounds, self._omega, mu)
            # The weights settle on their limit within tens of rounds; the plan is kept
            # from then on.
            if plan.transfer is self._mixing or abs(omega - self._omega) > _OMEGA_SETTLED * omega:
                scaled = sp.csr_array(
                    (matrix.data * omega, matrix.indices, matrix.indptr), shape=matrix.shape
                )
                plan = dataclasses.replace(plan, transfer=scaled, previous_weight=1.0 - omega)
                self._omega = omega
        self._lossless_plan = plan
        self._lossless_rounds += 1
        return plan

    def _apply(self, plans: list[_RoundPlan], movement: _Movement | None) -> None:
        """Apply planned rounds, block of columns by block; the weights' block first."""
        if self._sent is not None:
            # Inspection only (one plan at a time): the running sums the messages carry.
            (plan,) = plans
            assert plan.delivered is not None and plan.sender_epoch is not None
            self._sent += self._join(self._blocks) * self._share[:, None]
            self._emit(
                "gossip",
                self._n_rounds - 1,
                self._src,
                self._dst,
                plan.delivered,
                self._sent[self._src],
                plan.sender_epoch,
            )
            self._sent[plan.reset] = 0.0
        last = len(self._blocks) - 1
        weight = np.zeros(0)
        spares: dict[tuple[int, ...], NDArray[np.float64]] = {}
        previous = None
        if self._accelerated is not None:
            previous = self._previous
            # A twin that joined since has made the blocks a row longer.
            if previous is None or any(
                p.shape != b.shape for p, b in zip(previous, self._blocks, strict=True)
            ):
                previous = [np.zeros_like(b, order="C") for b in self._blocks]
            self._previous = previous
        for index in range(last, -1, -1):
            a, b = self._bounds[index]
            own = self._own[:, a:b]
            state, pending = self._blocks[index], self._pending[index]
            # Rounds alternate between the block and a second buffer: the block's own
            # where rounds are accelerated (it holds the state before the last round),
            # else a spare of its shape, which the next block of that shape takes over.
            spare = spares.pop(state.shape, None) if previous is None else previous[index]
            if spare is None:
                spare = np.empty_like(state, order="C")
            for plan in plans:
                new_state, pending = plan.apply(state, pending, own, spare)
                state, spare = new_state, state
            if previous is None:
                spares[state.shape] = spare
            else:
                previous[index] = spare
            self._blocks[index], self._pending[index] = state, pending
            if movement is not None:
                if index == last:
                    weight = state[:, -1].copy()
                movement.update(index, state, weight, index == last)

    def _emit(
        self,
        kind: Literal["gossip", "farewell"],
        round_index: int,
        src: NDArray[np.intp],
        dst: NDArray[np.intp],
        delivered: NDArray[np.bool_],
        carried: NDArray[np.float64],
        epoch: NDArray[np.int64],
    ) -> None:
        assert self.on_messages is not None
        self.on_messages(
            GossipMessages(
                round=round_index,
                kind=kind,
                sender=tuple(self._label[i] for i in src),
                receiver=tuple(self._label[i] for i in dst),
                delivered=np.array(delivered, dtype=bool),
                numerator=np.array(carried[:, :-1]),
                weight=np.array(carried[:, -1]),
                epoch=np.array(epoch, dtype=np.int64),
            )
        )

    def run(
        self, *, tol: float = 1e-10, patience: int = 10, max_rounds: int = 1_000_000
    ) -> GossipResult:
        """Gossip until every twin's own stopping test passes, or ``max_rounds``.

        A twin's test uses only its own estimates and which of its links delivered:
        its estimate is finite and moved by at most ``tol`` relative to its size (max
        norm) over a window in which every link into it delivered three messages
        (``patience`` rounds without loss, longer with), and has not moved more since.
        The test is evaluated every ``patience`` rounds; the run ends at the first check
        where every twin passes. Accelerated rounds (``known_gap``) also run at least
        until Chebyshev's polynomial has shrunk every error it rotates by ``tol``
        (``log(2 / tol) / acosh(mu)`` rounds since the recurrence last started, known to
        every twin). In a deployment a twin would fix its answer then but keep relaying
        until its neighbours have too, since gossip only mixes while twins forward.

        The test bounds the movement, not the error: about ``tol / min(1, patience *
        gap)`` is left for a gossip matrix of spectral gap ``gap`` (``sqrt(2 gap)`` in
        its place where the rounds are accelerated), so a poorly connected graph (a long
        ring) needs a smaller ``tol``.

        Parameters
        ----------
        tol
            Relative movement allowed over ``patience`` rounds
        patience
            Rounds between a twin's checks
        max_rounds
            Guard on the rounds of this call

        Returns
        -------
        GossipResult

        Raises
        ------
        ValueError
            If ``tol`` is not a number > 0 or ``patience`` or ``max_rounds`` not an
            integer >= 1; if no twin is present, or departures and crashes have split
            the present twins into parts that cannot mix.
        """
        self._require_started()
        check_stopping(tol, patience, max_rounds, ("tol", "patience", "max_rounds"))
        alive = self._alive
        if not alive.any():
            raise ValueError("no twin is present: every twin has left or crashed")
        self._require_connected()
        movement = _Movement(self._blocks, self._dst)
        # A twin passes once its estimate held still over a window in which every link
        # into it delivered, and while it holds still since.
        verified = np.zeros(alive.size, dtype=bool)
        since = np.full(int(alive.sum()), -1, dtype=np.int64)
        n_rounds = 0
        converged = False
        while n_rounds < max_rounds:
            batch = min(patience, max_rounds - n_rounds)
            movement.clear()
            self._advance(batch, movement)
            n_rounds += batch
            still = movement.settled(tol)
            verified = np.where(movement.closing, still, verified & still)
            passed = verified[alive]
            since = np.where(passed, np.where(since < 0, self._n_rounds, since), -1)
            if batch == patience and passed.all() and self._polynomial_shrunk(tol):
                converged = True
                break
        return GossipResult(
            nodes=self.nodes_,
            estimates=self.estimates_,
            n_rounds=n_rounds,
            converged=converged,
            settled_at=since,
        )

    def _polynomial_shrunk(self, tol: float) -> bool:
        """Whether accelerated rounds have run long enough since their recurrence last
        started to have shrunk every error component within the interval by ``tol``
        (always, for plain rounds). An error that the recurrence rotates can stand at
        the same place at two checks, ``patience`` rounds apart: with a gap given 1e-5
        times too small, twins stopped 1.2 % off at ``tol = 1e-6``."""
        if self._accelerated is None:
            return True
        return self._lossless_rounds >= _chebyshev_rounds(self._accelerated[1], tol)

    # -- membership --------------------------------------------------------------------------
    def join(self, node: Hashable, payload: Payload, neighbours: Iterable[Hashable]) -> Self:
        """A twin arrives with its payload and links to some present twins.

        It takes the newest epoch among its neighbours; the average the network converges
        to now includes its payload.
        """
        self._require_started()
        refuse_bool(node, self._slot, "node", "a label that is not a bool")
        if node in self._slot and self._alive[self._slot[node]]:
            raise ValueError(
                f"node: expected a twin that is not present, got {node!r}, which is present "
                "(a twin joins once; leave() first to rejoin it)"
            )
        links = [v for v in neighbours if v != node]
        if not links:
            raise ValueError(
                f"neighbours: expected at least one present twin for {node!r} to link to; "
                "a twin without links can neither send nor receive"
            )
        slots = [self._present_slot(v, "neighbours") for v in links]
        own = np.append(_flatten(self._spec, payload, node, "payload"), self._own_weight)
        _check_finite_payloads(own[None, :-1], [node])
        slot = len(self._label)
        self._label.append(node)
        self._slot[node] = slot
        self._own = np.vstack([self._own, own])
        self._blocks = [
            np.vstack([blk, own[a:b]])
            for blk, (a, b) in zip(self._blocks, self._bounds, strict=True)
        ]
        if self._sent is not None:
            self._sent = np.vstack([self._sent, np.zeros_like(own)])
        self._alive = np.append(self._alive, True)
        self._epoch = np.append(self._epoch, max((self._epoch[s] for s in slots), default=0))
        self._neighbours[node] = set(links)
        for v in links:
            self._neighbours[v].add(node)
        self._rebuild_links()
        return self

    def leave(self, nodes: Iterable[Hashable]) -> Self:
        """Twins leave gracefully, each taking exactly its own contribution with it.

        The departing twin takes back what it sent that has not arrived, returns to each
        neighbour what that neighbour sent it that has not arrived, and hands its
        holdings minus its own payload (numerator and weight) in equal parts to its
        neighbours of its epoch that stay (those that leave with it, if no other); with
        no such neighbour the departure counts as a :meth:`crash`, unless the twin holds
        just its own payload and no neighbour is of an older epoch than its own. Twins
        leaving together leave one after the other, the farthest from those that stay
        first; the survivors must stay connected for their average to be reached.
        """
        self._require_started()
        leaving = set(self._present_slots(nodes))
        for slot in self._departure_order(leaving):
            self._leave_one(slot, leaving)
            leaving.discard(slot)
        return self

    def _departure_order(self, leaving: set[int]) -> list[int]:
        """``leaving`` by their distance from the twins that stay, farthest first: each
        then hands its holdings towards those that stay, through the others leaving
        (on a path 0-1-2-3, 2 leaving before 3 gave 3 a share that it took away, 3
        having no neighbour left to hand it to, and the survivors settled wrongly)."""
        staying = [i for i in np.flatnonzero(self._alive).tolist() if i not in leaving]
        distance = dict.fromkeys(staying, 0)
        frontier = staying
        while frontier:
            nearer = []
            for slot in frontier:
                for label in self._neighbours[self._label[slot]]:
                    other = self._slot[label]
                    if other not in distance:
                        distance[other] = distance[slot] + 1
                        nearer.append(other)
            frontier = nearer
        # Those no path joins to the survivors go first (as crashes, their mass lost).
        return sorted(leaving, key=lambda slot: -distance.get(slot, len(self._label) + 1))

    def _leave_one(self, slot: int, leaving: set[int]) -> None:
        state = self._join(self._blocks)
        pending = self._join(self._pending)
        outgoing = self._src[self._pending_arcs] == slot
        incoming = self._dst[self._pending_arcs] == slot
        account = state[slot] + pending[outgoing].sum(axis=0)
        senders = self._src[self._pending_arcs[incoming]]
        returned = pending[incoming]
        np.add.at(state, senders, returned)
        keep = ~(outgoing | incoming)
        self._pending_arcs = self._pending_arcs[keep]
        self._pending = self._split(pending[keep])
        neighbours = [self._slot[v] for v in self._neighbours[self._label[slot]]]
        same_epoch = [n for n in neighbours if self._epoch[n] == self._epoch[slot]]
        # To those that stay, else to those that leave after it (who pass it on).
        peers = np.array(
            [n for n in same_epoch if n not in leaving] or same_epoch,
            dtype=np.intp,
        )
        residual = account - self._own[slot]
        # A twin that has just restarted after a crash holds just its own payload, yet is
        # its epoch's only holder: leaving quietly took the restart along, and the others
        # kept the epoch short of the crashed twin's mass (review: a path 0-1-2-3, 3
        # crashed, 2 left; the survivors settled on 1.272 for 0.5).
        carries_restart = any(self._epoch[n] < self._epoch[slot] for n in neighbours)
        if peers.size == 0 and (carries_restart or np.any(residual != 0.0)):
            self._blocks = self._split(state)
            self._crash_slots([slot])
            return
        part = residual / max(peers.size, 1)
        state[peers] += part
        self._blocks = self._split(state)
        if self._sent is not None:
            n_messages = senders.size + peers.size
            self._emit(
                "farewell",
                self._n_rounds,
                np.full(n_messages, slot, dtype=np.intp),
                np.concatenate([senders, peers]),
                np.ones(n_messages, dtype=bool),
                np.vstack([returned, np.tile(part, (peers.size, 1))]),
                np.full(n_messages, self._epoch[slot], dtype=np.int64),
            )
        self._remove([slot])

    def crash(self, nodes: Iterable[Hashable]) -> Self:
        """Twins vanish with whatever mass they held; their neighbours start a new epoch.

        Each present neighbour of a crashed twin restarts from its own payload in a new
        epoch, named after the round and itself; the restart spreads with the messages
        and the network converges on the survivors' average.
        """
        self._require_started()
        self._crash_slots(self._present_slots(nodes))
        return self

    def _crash_slots(self, slots: list[int]) -> None:
        gone = set(slots)
        detectors = sorted(
            {
                self._slot[v]
                for s in slots
                for v in self._neighbours[self._label[s]]
                if self._slot[v] not in gone
            }
        )
        self._remove(slots)
        if not detectors:
            return
        # Later restarts must have larger names: a clock that follows the rounds and
        # moves on when two restarts begin between the same two rounds.
        self._clock = max(self._clock + 1, self._n_rounds + 1)
        restarted = np.array(detectors, dtype=np.intp)
        self._epoch[restarted] = self._clock * _EPOCH_ROUND + restarted
        self._restart_lossless()
        for block, (a, b) in zip(self._blocks, self._bounds, strict=True):
            block[restarted] = self._own[restarted, a:b]
        # Whichever restart wins, the twin that named it holds the one unit of weight.
        self._blocks[-1][restarted, -1] = 1.0
        if self._sent is not None:
            self._sent[restarted] = 0.0
        void = np.isin(self._src[self._pending_arcs], restarted)
        self._pending_arcs = self._pending_arcs[~void]
        self._pending = [p[~void] for p in self._pending]

    def _require_connected(self) -> None:
        """Refuse to run once departures or crashes have split the present twins: each
        part would settle on its own average and the run would call it converged."""
        # Removed twins have no links left: each is a part of its own, not counted.
        _, part = csgraph.connected_components(self._mixing, directed=False)
        n_parts = np.unique(part[self._alive]).size
        if n_parts > 1:
            raise ValueError(
                f"the present twins are not connected (the graph among them has {n_parts} "
                "parts, after twins left or crashed): twins in different parts never mix; "
                "join a twin that links the parts"
            )

    def _present_slots(self, nodes: Iterable[Hashable]) -> list[int]:
        """The slots of ``nodes``, each checked present and named once before any twin
        leaves or crashes (one bad label left the others gone and the call refused)."""
        slots: dict[int, None] = {}  # in the order given
        for node in twin_list(nodes, "nodes: got"):
            slot = self._present_slot(node, "nodes")
            if slot in slots:
                raise ValueError(f"nodes: expected each twin once, got {node!r} more than once")
            slots[slot] = None
        return list(slots)

    def _present_slot(self, node: Hashable, name: str) -> int:
        refuse_bool(node, self._slot, name, "a present twin's label")
        slot = self._slot.get(node)
        if slot is None or not self._alive[slot]:
            present = [self._label[i] for i in np.flatnonzero(self._alive)]
            listed = f"{present[:8]}{' ...' if len(present) > 8 else ''}"
            raise ValueError(f"{name}: expected a present twin, one of {listed}, got {node!r}")
        return slot

    def _remove(self, slots: list[int]) -> None:
        for slot in slots:
            self._alive[slot] = False
            for block in self._blocks:
                block[slot] = 0.0
            for v in self._neighbours.pop(self._label[slot]):
                self._neighbours[v].discard(self._label[slot])
        self._rebuild_links()


def _payload_keys_message(missing: set[Hashable], extra: set[Hashable], whose: str) -> str:
    """Which twins a payload mapping lacks and which it should not have."""
    parts = []
    if missing:
        parts.append(f"missing for {sorted(missing, key=repr)}")
    if extra:
        parts.append(f"given for twins that are not, {sorted(extra, key=repr)}")
    return f"payloads: expected one per twin of {whose}; " + ", ".join(parts)


def _payload_rows(
    payloads: ArrayLike, nodes: Sequence[Hashable], order: str
) -> NDArray[np.float64]:
    """Payloads given as rows in the ``nodes`` order (``order`` names it), as one array;
    a row of text, or of another length than most rows, is refused naming its twin."""
    try:
        return np.asarray(payloads, dtype=np.float64)
    except ValueError:
        if not isinstance(payloads, Sequence) or isinstance(payloads, str):
            raise
        rows = list(payloads)

        def whose(index: int) -> str:
            return f"twin {nodes[index]!r}" if index < len(nodes) else "past the twins"

        for index, row in enumerate(rows):
            if _holds_text(row):
                raise ValueError(
                    f"payloads: expected numbers in every row, got {row!r} in row {index} "
                    f"({whose(index)})"
                ) from None
        sizes = [int(np.size(row)) for row in rows]
        usual = Counter(sizes).most_common(1)[0][0] if sizes else 0
        odd = next((i for i, size in enumerate(sizes) if size != usual), None)
        if odd is None:
            raise
        raise ValueError(
            f"payloads: expected rows of equal length, one per twin in {order} order; "
            f"row {odd} ({whose(odd)}) has {sizes[odd]} numbers, most rows {usual}"
        ) from None


def _holds_text(row: object) -> bool:
    """Whether a payload row holds a string anywhere (numpy would say only that it
    could not convert it)."""
    if isinstance(row, str | bytes):
        return True
    if isinstance(row, Sequence | np.ndarray):
        return any(_holds_text(item) for item in row)
    return False


def _check_finite_payloads(values: NDArray[np.float64], nodes: Sequence[Hashable]) -> None:
    """Refuse a NaN or infinite payload, naming the twin, the position and the value."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"payloads: expected finite numbers, got {float(values[row, column])!r} at position "
            f"{column} of twin {nodes[row]!r} ({int(bad.any(axis=1).sum())} twin(s) affected)"
        )


def gossip_mean(
    payloads: Mapping[Hashable, Payload] | ArrayLike,
    graph: PeerGraph,
    *,
    loss: float = 0.0,
    tol: float = 1e-10,
    patience: int = 10,
    max_rounds: int = 1_000_000,
    seed: Seed = None,
    known_gap: float | None = None,
) -> GossipResult:
    """Average payloads over a peer graph by loss-robust push-sum, with no coordinator.

    Parameters
    ----------
    payloads
        A payload per twin, or an ``(n_nodes, n_values)`` array in ``list(graph)``
        order; see :meth:`PushSum.start`
    graph
        Undirected, connected peer graph
    loss
        Probability that any one message is lost
    tol, patience, max_rounds
        The stopping test; see :meth:`PushSum.run`
    seed
        Randomness of the losses
    known_gap
        A spectral gap known to every twin, for accelerated rounds; see :class:`PushSum`

    Returns
    -------
    GossipResult

    Warns
    -----
    ConvergenceWarning
        If the twins' stopping test has not passed within ``max_rounds`` (the result's
        ``converged`` is then ``False`` and its estimates are the last round's).

    Examples
    --------
    >>> import networkx as nx
    >>> import numpy as np
    >>> graph = nx.random_regular_graph(4, 100, seed=1)
    >>> values = np.arange(200.0).reshape(100, 2)
    >>> result = gossip_mean(values, graph, loss=0.2, seed=2)
    >>> result.relative_error(values.mean(axis=0)) < 1e-8
    True
    """
    # Before any payload is read; the graph and loss are checked by PushSum.start.
    check_stopping(tol, patience, max_rounds, ("tol", "patience", "max_rounds"))
    if hasattr(payloads, "edges") and not hasattr(graph, "edges"):
        # PushSum, fit_gossip and spectral_gap take the graph first; this takes it second.
        raise TypeError(
            "gossip_mean(payloads, graph): expected the payloads first and the graph "
            f"second, got a {type(payloads).__name__} first and a {type(graph).__name__} "
            "second"
        )
    result = (
        PushSum(graph, loss=loss, seed=seed, known_gap=known_gap)
        .start(payloads)
        .run(tol=tol, patience=patience, max_rounds=max_rounds)
    )
    if not result.converged:
        warnings.warn(
            f"gossip_mean: the twins' stopping test did not pass in max_rounds={max_rounds} "
            f"rounds (tol {tol:g}); the estimates are the last round's: raise max_rounds",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result


def predicted_rounds(gap: float, eps: float) -> float:
    """Rounds for an error to shrink by ``eps`` at rate ``1 - gap``.

    ``log(eps) / log(1 - gap)``: the theory behind :func:`spectral_gap`.

    Parameters
    ----------
    gap
        A spectral gap, in ``[0, 1]`` as :func:`spectral_gap` returns it; zero (a
        disconnected graph) takes infinitely many rounds
    eps
        The factor, in ``(0, 1)``

    Returns
    -------
    float
        At least one round.
    """
    if not is_real(gap) or not 0.0 <= gap <= 1.0:
        raise ValueError(f"gap: expected a spectral gap in [0, 1], got {gap!r}")
    if not is_real(eps) or not 0.0 < eps < 1.0:
        raise ValueError(f"eps: expected a factor in (0, 1), got {eps!r}")
    if gap <= 0.0:
        return math.inf
    if gap >= 1.0:
        return 1.0
    return max(1.0, math.log(eps) / math.log1p(-gap))
