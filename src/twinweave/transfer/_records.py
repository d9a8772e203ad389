"""The typed records of fleet learning: what a twin holds, what travels, what is learned.

A twin keeps its :class:`TwinStatistics` (binned sufficient statistics of its readings);
a coordinator, or every peer, broadcasts a :class:`Population`; a twin answers with a
:class:`LocalSummary`, which holds only sums, so that summaries of any set of twins add
up element-wise (in any order, by a coordinator or by gossip). ``docs/FLEET_MODEL.md``
lists what travels in each message.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import warnings
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from twinweave.core import CensoredNormal, Columns, ConvergenceWarning
from twinweave.core._arguments import check_count, check_number, described
from twinweave.models import BayesianBasisRegression
from twinweave.models._basis import block_diagonal

FloatArray = NDArray[np.float64]

#: The kind of a twin whose statistics do not name one.
DEFAULT_KIND = "default"


def _array(value: Any, name: str, ndim: int) -> FloatArray:
    try:
        out = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name}: expected a {ndim}-d array of numbers, got {described(value)}"
        ) from error
    if out.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {out.shape}")
    _first_bad(out, ~np.isfinite(out), name, "finite values", "not finite")
    out.setflags(write=False)
    return out


def _first_bad(
    values: FloatArray, bad: NDArray[np.bool_], name: str, expected: str, what: str
) -> None:
    """Refuse ``values`` where ``bad`` holds, naming how many and the first index and value
    (a record's arrays are sums a user may have built by hand)."""
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}: expected {expected}, got {int(bad.sum())} {what} (first at index "
            f"{list(index)}: {values[index]:.6g})"
        )


def _check_period_sums(
    count: FloatArray, sums: FloatArray, totals: FloatArray, name: str, total_name: str
) -> None:
    """Refuse per-period sums that the bin's totals of squares cannot hold: within a
    block of ``n`` readings ``(sum x)^2 <= n sum x^2`` (Cauchy and Schwarz), so summed
    over the periods ``sum_c sums_c^2 / n_c`` is at most the total. Sums in other units
    than the totals (W beside kW) break it, and the fit's precisions with it."""
    empty = (count == 0).reshape(count.shape + (1,) * (sums.ndim - count.ndim))
    stray = empty & (sums != 0)
    if stray.any():
        period, bin_ = (int(i) for i in np.argwhere(stray)[0][:2])
        raise ValueError(
            f"{name}: expected 0 where period_count is 0, got a sum in period {period}, bin {bin_}"
        )
    with np.errstate(divide="ignore"):
        inverse = np.where(count > 0, 1.0 / count, 0.0)
    held = (sums**2 * inverse.reshape(empty.shape)).sum(axis=0)
    # With room for statistics stored in float32 (1e-7); other units are orders off.
    over = held > totals * (1.0 + 1e-6) + 1e-300
    if over.any():
        where = tuple(int(i) for i in np.argwhere(over)[0])
        bin_ = where[0]
        raise ValueError(
            f"{name}: expected sums that {total_name} can hold (over the periods, "
            f"sum^2 / period_count at most {total_name}; are both in the same units?), "
            f"got {float(held[where]):.9g} against {float(totals[where]):.9g} in bin {bin_}"
        )


def _check_gram(gram: FloatArray) -> None:
    """A sum of outer products ``phi phi^T`` per bin is symmetric with a non-negative
    diagonal; anything else is not a twin's statistics (positive semi-definiteness in
    full would cost an eigendecomposition per bin)."""
    scale = np.abs(gram).max(axis=(1, 2), keepdims=True)
    asymmetric = np.abs(gram - gram.transpose(0, 2, 1)) > 1e-9 * np.maximum(scale, 1e-300)
    if asymmetric.any():
        bin_, row, col = (int(i) for i in np.argwhere(asymmetric)[0])
        raise ValueError(
            f"gram: expected symmetric matrices (sums of phi phi^T), got bin {bin_} with "
            f"[{row}, {col}] = {gram[bin_, row, col]:.6g} and [{col}, {row}] = "
            f"{gram[bin_, col, row]:.6g}"
        )
    diagonal = np.diagonal(gram, axis1=1, axis2=2)
    if np.any(diagonal < 0):
        bin_, feature = (int(i) for i in np.argwhere(diagonal < 0)[0])
        raise ValueError(
            f"gram: expected a non-negative diagonal (sums of squares), got bin {bin_} "
            f"feature {feature} = {diagonal[bin_, feature]:.6g}"
        )


def _shape(value: FloatArray, name: str, shape: tuple[int, ...]) -> None:
    if value.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")


@runtime_checkable
class Design(Protocol):
    """What turns inputs into a twin's features: the twin's own emulator.

    :class:`~twinweave.models.BayesianBasisRegression` is one; twins at different sites
    have different designs (their density-normalised wind speed) but weights of the
    same meaning.
    """

    @property
    def lower(self) -> float: ...

    @property
    def upper(self) -> float: ...

    @property
    def units(self) -> str: ...

    @property
    def n_bins(self) -> int: ...

    def design(self, data: Columns) -> tuple[FloatArray, NDArray[np.intp]]: ...

    def check_prediction_inputs(self, inputs: Columns) -> None: ...


def twin_list(value: object, given: str) -> list[Any]:
    """``value``, a collection of twins, as a list; ``given`` starts a refusal's message
    with where the value came from (``"nodes: got"``, ``"available: round 3 returned"``).

    Raises
    ------
    TypeError
        If it is a string (its letters would be taken for twins) or not a collection
        (``None`` from a function that forgot to return).
    """
    if isinstance(value, str):
        raise TypeError(
            f"{given} the string {value!r}; expected a collection of twins (its letters "
            f"would be taken for twins; [{value!r}] is one twin)"
        )
    if not isinstance(value, Iterable):
        raise TypeError(
            f"{given} {value!r}; expected a collection of twins (a function that returns "
            "nothing gives None)"
        )
    return list(value)


def warn_never_available(
    mode: str,
    everyone: Iterable[Hashable],
    present: Collection[Hashable],
    pooled: Sequence[Hashable],
) -> None:
    """Warn of twins that hold statistics but were available in no round: not expected,
    so not missing, and the rounds may converge without them."""
    never = sorted((twin for twin in everyone if twin not in present), key=repr)
    if never and present:
        warnings.warn(
            f"{mode}: twins {never} have statistics but were never available, so the "
            f"result does not pool them (it pools {list(pooled)})",
            stacklevel=3,
        )


def refuse_empty_ids(ids: Iterable[Hashable], name: str) -> None:
    """Refuse the empty string as a twin's identifier: it names no twin in messages,
    round reports and file names (and over Flower in no node configuration).

    Raises
    ------
    ValueError
        Naming the argument ``name``.
    """
    if any(isinstance(twin, str) and not twin for twin in ids):
        raise ValueError(
            f"{name}: expected non-empty twin identifiers, got the empty string '' (it "
            "would name no twin in round reports and messages)"
        )


def refuse_bool(value: object, keys: Iterable[Hashable], name: str, expected: str) -> None:
    """Refuse ``True`` or ``False`` as an identifier unless one of ``keys`` is that bool.

    ``True == 1`` and ``False == 0`` with equal hashes, so a mapping keyed by integers
    would take a bool for the twin ``1`` or ``0``.

    Raises
    ------
    TypeError
        Naming the argument ``name``, what was ``expected`` and the bool.
    """
    if isinstance(value, bool | np.bool_) and not any(key is value for key in keys):
        raise TypeError(
            f"{name}: expected {expected}, got the bool {value!r} (a bool is not taken for "
            "an identifier: True == 1 and False == 0 in Python)"
        )


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def listed_ids(ids: Iterable[Hashable], shown: int = 4) -> str:
    """Identifiers for a summary: the first ``shown`` and how many in all."""
    every = list(ids)
    head = ", ".join(repr(i) for i in every[:shown])
    return f"{head}, ... ({len(every)} in all)" if len(every) > shown else head


class ReadOnlyMapping(Mapping[_K, _V]):
    """A fitted fleet's mapping (twins by identifier, populations, kinds): cannot be
    changed through its interface and, unlike :class:`types.MappingProxyType`, pickles
    and copies.

    A bool is refused as a key unless one of the keys is that bool (:func:`refuse_bool`):
    a fleet keyed by integers would otherwise answer ``fleet.twins[True]`` with twin 1.
    The refusal names the key as ``key_name``, expected to be ``expected``, and so does
    the :class:`KeyError` of a key it does not hold, with the keys it does.
    """

    __slots__ = ("_expected", "_items", "_key_name")

    def __init__(
        self,
        items: Mapping[_K, _V],
        key_name: str = "twin",
        expected: str = "a twin's identifier",
    ) -> None:
        self._items = dict(items)
        self._key_name = key_name
        self._expected = expected

    def __getitem__(self, key: _K) -> _V:
        refuse_bool(key, self._items, self._key_name, self._expected)
        try:
            return self._items[key]
        except KeyError:
            # Python's own KeyError shows the key alone; say which keys there are.
            raise KeyError(
                f"{self._key_name} {key!r}: expected {self._expected} ({listed_ids(self._items)})"
            ) from None

    def __contains__(self, key: object) -> bool:
        refuse_bool(key, self._items, self._key_name, self._expected)
        return key in self._items

    def __iter__(self) -> Iterator[_K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)


def check_type(value: object, expected: type, name: str, description: str | None = None) -> None:
    """Refuse an argument of a public function that is not an ``expected`` (``None`` or
    a string for a prior, say), by name, before it fails deep inside on an attribute.

    Raises
    ------
    TypeError
        ``{name}: expected {description}, got ...``; ``description`` defaults to the
        type's name.
    """
    if not isinstance(value, expected):
        wanted = description or f"a {expected.__name__}"
        raise TypeError(f"{name}: expected {wanted}, got {described(value)}")


def check_rounds(n_rounds: int, tol: float) -> None:
    """Refuse a round limit that is not a positive integer, or a tolerance that is not
    a positive finite number (the rounds would never stop on 0; on infinity they stop
    after the first change, reporting convergence)."""
    check_count(n_rounds, "n_rounds")
    check_number(tol, "tol")


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The kinds a population pools, in order: a sequence of distinct non-empty names
    (a string alone is refused: it would be read as one kind per letter)."""
    if isinstance(kinds, str):
        raise TypeError(f"kinds: expected a sequence of kinds, got the string {kinds!r}")
    listed = tuple(kinds)
    if not listed:
        raise ValueError("kinds: expected at least one kind, got none")
    for kind in listed:
        check_kind(kind, "kinds")
    if len(set(listed)) != len(listed):
        raise ValueError(f"kinds: expected distinct names, got {listed}")
    return listed


def check_kind(kind: object, name: str = "kind") -> None:
    """Refuse a kind that is not a non-empty string (kinds travel as text to twins
    and through saved files, so ``5`` and ``"5"`` would become one)."""
    if not isinstance(kind, str):
        raise TypeError(f"{name}: expected a kind's name (a non-empty str), got {kind!r}")
    if not kind:
        raise ValueError(f"{name}: expected a kind's name (a non-empty str), got ''")


def check_fingerprint(value: object, name: str = "basis_fingerprint") -> None:
    """Refuse a basis fingerprint that is neither ``None`` nor a non-empty string (an
    emulator's ``basis_fingerprint``)."""
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(
            f"{name}: expected None or an emulator's basis_fingerprint (a non-empty str), "
            f"got {described(value)}"
        )


def check_same_basis(fingerprint: str | None, emulator: object, name: str) -> None:
    """Refuse an emulator whose ``basis_fingerprint`` is not the fleet's
    ``fingerprint``: of the same sizes, its features would be read with the fleet's
    weights and give another curve without a word. Nothing is checked where either is
    unknown (``None``; a design without the attribute)."""
    theirs = getattr(emulator, "basis_fingerprint", None)
    if fingerprint is not None and theirs is not None and theirs != fingerprint:
        raise ValueError(
            f"{name}: expected the fleet's basis, fingerprint {fingerprint!r}, got "
            f"{theirs!r}: other knots, noise-bin edges, inputs or units of the same sizes"
        )


def fleet_fingerprint(stats: Sequence[TwinStatistics], prior: FleetPrior) -> str | None:
    """The basis a fleet was fitted on: the prior's fingerprint, or without one the
    fingerprint most of the twins' statistics hold (:func:`check_fleet` has refused
    any other), or ``None``."""
    if prior.basis_fingerprint is not None:
        return prior.basis_fingerprint
    known = Counter(s.basis_fingerprint for s in stats if s.basis_fingerprint is not None)
    return known.most_common(1)[0][0] if known else None


def with_fleet_fingerprint(prior: FleetPrior, stats: Sequence[TwinStatistics]) -> FleetPrior:
    """``prior``, given the fingerprint of its twins' statistics where it has none (a
    prior built by hand), so that the population fitted with it, and what is predicted
    from that population, know the fleet's basis."""
    fingerprint = fleet_fingerprint(stats, prior)
    if prior.basis_fingerprint is not None or fingerprint is None:
        return prior
    return dataclasses.replace(prior, basis_fingerprint=fingerprint)


def warn_not_converged(
    fit: str, n_rounds: int, last_change: float, *, tol: float | None = None, stacklevel: int = 3
) -> None:
    """Say that ``fit`` ran out of rounds; its result is the last round's, not a fixed
    point. ``stacklevel`` 3 names the line that called the function that calls this."""
    against = "" if tol is None else f", tol {tol:g}"
    warnings.warn(
        f"{fit}: no convergence in {n_rounds} rounds (last relative change "
        f"{last_change:.3g}{against}); raise n_rounds or tol, or see docs/FLEET_MODEL.md "
        "on slow rounds",
        ConvergenceWarning,
        stacklevel=stacklevel,
    )


def check_readings(stats: Iterable[TwinStatistics]) -> None:
    """Refuse a fleet in which no twin has a reading (nothing to learn a population
    from)."""
    if not any(s.n_observations > 0 for s in stats):
        raise ValueError("stats: expected readings in at least one twin, every count is 0")


#: A twin's identifier in a fleet: a name, a graph node.
TwinId = TypeVar("TwinId", bound=Hashable)


def fleet_entries(
    stats: Mapping[TwinId, TwinStatistics], argument: str = "stats"
) -> tuple[list[TwinStatistics], list[str]]:
    """A fleet's statistics in the mapping's order, and the twins' labels for
    :func:`check_fleet` (``stats['R80711']``). A fleet that is not a mapping from twin
    identifier to statistics, the one form every fleet fit takes, is refused with what
    to write instead."""
    if not isinstance(stats, Mapping):
        raise TypeError(
            f"{argument}: expected a mapping from twin identifier to TwinStatistics, got "
            f"{type(stats).__name__}; for twins known by position, dict(enumerate(...))"
        )
    return list(stats.values()), [f"{argument}[{twin!r}]" for twin in stats]


def check_fleet(
    stats: Sequence[TwinStatistics],
    prior: FleetPrior | None = None,
    *,
    argument: str = "stats",
    names: Sequence[str] | None = None,
    pooled: bool = False,
) -> None:
    """Refuse a fleet whose twins do not share one basis and one set of noise bins, or
    whose prior was built for another basis; where the fit pools twins by kind
    (``pooled``), warn of a kind that looks like a typo of another.

    ``argument`` is the caller's name for ``stats`` and ``names`` label the twins in
    messages (default ``stats[i]``). A twin is compared with
    the prior's number of weights and with the noise bins most twins have, so that the
    odd one is named. Two bases of the same size (other knots, other noise edges, other
    inputs or units) are told apart by their ``basis_fingerprint``: a twin's is compared
    with the prior's, or without one with most twins'. Statistics without a fingerprint
    (built by hand from arrays, or files written before it) are compared by shape only.
    """
    if not stats:
        raise ValueError(f"{argument}: expected at least one twin, got none")
    labels = list(names) if names is not None else [f"stats[{i}]" for i in range(len(stats))]
    for label, s in zip(labels, stats, strict=True):
        if not isinstance(s, TwinStatistics):
            raise TypeError(f"{label}: expected TwinStatistics, got {type(s).__name__}")
    check_shapes(stats, prior, labels=labels, pooled=pooled)
    if pooled:
        _warn_alone(stats, labels)
        _warn_mixed_periods(stats, labels)
        warn_repeated([readings_digest(s) for s in stats], labels)
        _warn_other_scale(stats, labels)


#: Twins with readings below which a fit learns no spread between twins: from one, EM
#: drives it towards zero, and a new twin's intervals are far too narrow (on a synthetic
#: fleet of pumps, 90 % intervals covering 0.14-0.28 when born from one other, 0.95 from
#: three). ``twinweave fit --fleet`` refuses such fleets.
MIN_TWINS_WITH_READINGS = 2


def _warn_alone(stats: Sequence[TwinStatistics], labels: Sequence[str]) -> None:
    """Warn of a fleet with fewer than :data:`MIN_TWINS_WITH_READINGS` twins that have
    readings: partial pooling then learns no spread between twins."""
    with_readings = [label for label, s in zip(labels, stats, strict=True) if s.n_observations]
    # None at all is not a small fleet but no fleet: the fits refuse it (check_readings).
    if 0 < len(with_readings) < MIN_TWINS_WITH_READINGS:
        warnings.warn(
            f"{len(with_readings)} twin(s) with readings ({', '.join(with_readings)}) of "
            f"{len(stats)}: the spread between twins is learned from the twins' readings, "
            f"and from fewer than {MIN_TWINS_WITH_READINGS} it tends to zero, so a new "
            "twin's intervals come out far too narrow; expected a fleet of "
            f"{MIN_TWINS_WITH_READINGS} twins with readings or more (docs/FLEET_MODEL.md)",
            UserWarning,
            stacklevel=4,
        )


#: How far a twin's root mean square reading may lie from its fleet's median one in the
#: same noise bins before it is taken for readings in other units: MW beside kW is a
#: factor of 1000, while turbines of one fleet differ by their rated powers (a few times).
_SCALE_RATIO = 100.0


def _warn_other_scale(stats: Sequence[TwinStatistics], labels: Sequence[str]) -> None:
    """Warn of a twin whose readings are on another scale than its fleet's (readings in
    MW beside kW): the basis fingerprint holds the units an emulator declares, not
    those of the readings it was given, and the fit would pool them as they are.

    Readings are compared within noise bins (for a turbine, wind-speed bins), where
    twins of one fleet read alike: a turbine that has only seen calm days reads a few kW,
    and beside its fleet's readings at all winds it would pass for one in MW.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.sqrt(np.stack([s.sum_sq / s.count for s in stats]))  # (twins, bins)
    rms[~(rms > 0)] = np.nan  # bins without readings, or with readings of 0 alone
    # A bin's fleet median from three twins or more: no fleet to speak of otherwise.
    shared = np.count_nonzero(~np.isnan(rms), axis=0) >= 3
    if not shared.any():
        return
    fleet = np.nanmedian(rms[:, shared], axis=0)
    odd = {}
    for label, own in zip(labels, rms[:, shared], strict=True):
        seen = ~np.isnan(own)
        if seen.any():
            factor = float(np.median(own[seen] / fleet[seen]))
            if not 1.0 / _SCALE_RATIO <= factor <= _SCALE_RATIO:
                odd[label] = factor
    if odd:
        label, factor = next(iter(odd.items()))
        warnings.warn(
            f"{label}: readings {factor:.3g} times the fleet's (root mean square against "
            f"the twins' median in the same noise bins; {len(odd)} twin(s) off by more "
            f"than {_SCALE_RATIO:g} times): expected every twin's target in the same units "
            "(MW beside kW is a factor of 1000); the statistics carry no units, so the fit "
            "pools them as they are",
            UserWarning,
            stacklevel=4,
        )


def readings_digest(statistics: TwinStatistics) -> bytes | None:
    """A digest of a twin's readings (its kind, and counts and sums in every noise bin),
    equal for equal statistics, for :func:`warn_repeated`; ``None`` for a twin without
    readings (twins without readings are alike by nature)."""
    if statistics.n_observations == 0:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(statistics.kind.encode())
    for part in (statistics.count, statistics.sum_sq, statistics.moment):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.digest()


def warn_repeated(digests: Sequence[bytes | None], labels: Sequence[str]) -> None:
    """Warn of two twins with the same statistics (one twin's file loaded under two
    names, say), by their :func:`readings_digest`: the fleet takes them for two twins that
    agree exactly, counting those readings twice and their spread as none.

    The warning names the line that called the fit (through :func:`check_fleet`) or the
    Flower run (:meth:`LoopbackFederation.submit
    <twinweave.transfer.LoopbackFederation.submit>` or ``fit``)."""
    seen: dict[bytes, str] = {}
    for label, key in zip(labels, digests, strict=True):
        if key is None:
            continue
        if key in seen:
            warnings.warn(
                f"{seen[key]} and {label}: the same statistics (kind, readings and sums equal "
                "in every noise bin): the fleet counts these readings twice, as two "
                "twins that agree exactly, and learns too small a spread between twins; "
                "expected each twin's own readings",
                UserWarning,
                stacklevel=4,
            )
            return
        seen[key] = label


def _warn_mixed_periods(stats: Sequence[TwinStatistics], labels: Sequence[str]) -> None:
    """Warn of twins summarised without period labels in a fleet whose other twins have
    them: the shortest call (``from_emulator(emulator)``) leaves them out, and such a
    twin is then modelled without period effects, its intervals narrower than its
    fleet's by a new period's variance."""
    without = [label for label, s in zip(labels, stats, strict=True) if not s.has_periods]
    if without and len(without) < len(stats):
        listed = ", ".join(without[:3]) + (" ..." if len(without) > 3 else "")
        warnings.warn(
            f"{listed}: statistics without period labels, in a fleet where "
            f"{len(stats) - len(without)} of {len(stats)} twins have them: these twins are "
            "modelled without period effects, so their intervals leave out a new period's "
            "variance; summarise them with periods= as the others are",
            UserWarning,
            stacklevel=4,
        )


class StatisticsShape(Protocol):
    """What :func:`check_shapes` reads of a twin's statistics."""

    @property
    def kind(self) -> str: ...

    @property
    def n_features(self) -> int: ...

    @property
    def n_bins(self) -> int: ...

    @property
    def basis_fingerprint(self) -> str | None: ...


def check_shapes(
    stats: Sequence[StatisticsShape],
    prior: FleetPrior | None,
    *,
    labels: Sequence[str],
    pooled: bool,
) -> None:
    """:func:`check_fleet` once the twins are known to be statistics: from their kinds
    and shapes alone (what a holder of many twins' files keeps of them)."""
    features = Counter(s.n_features for s in stats)
    if prior is not None and len(features) == 1 and prior.n_features not in features:
        raise ValueError(
            f"prior: expected {next(iter(features))} features (the twins' statistics'), got "
            f"{prior.n_features}: build the FleetPrior from the twins' emulator"
        )
    p, source = (
        (prior.n_features, "the prior's")
        if prior is not None
        else (features.most_common(1)[0][0], "most twins'")
    )
    n_bins = Counter(s.n_bins for s in stats).most_common(1)[0][0]
    for label, s in zip(labels, stats, strict=True):
        if s.n_features != p or s.n_bins != n_bins:
            raise ValueError(
                f"{label}: expected {p} features ({source}) and {n_bins} noise bins (most "
                f"twins'), got {s.n_features} and {s.n_bins}: every twin of a fleet needs the "
                "same emulator settings (basis terms and noise edges) as the prior"
            )
    _check_fingerprints(stats, prior, labels)
    if pooled:
        _warn_lonely_kinds(stats, labels)


def _check_fingerprints(
    stats: Sequence[StatisticsShape], prior: FleetPrior | None, labels: Sequence[str]
) -> None:
    """Refuse twins (or a prior) whose basis fingerprint differs from the prior's, or
    without one from most twins': statistics of the same shapes from emulators of
    other knots, noise edges, inputs or units. ``None`` is compared by shape only."""
    known = Counter(s.basis_fingerprint for s in stats if s.basis_fingerprint is not None)
    ours = None if prior is None else prior.basis_fingerprint
    advice = (
        "the emulators differ in settings of the same size (spline knots or inputs, "
        "noise-bin edges or their input, or the target's name or units); summarise "
        "every twin with the same emulator settings and build the FleetPrior from one "
        "of them"
    )
    # The prior is the odd one where twins agree among themselves (one twin alone is
    # compared with the prior).
    if ours is not None and len(known) == 1 and sum(known.values()) > 1 and ours not in known:
        raise ValueError(
            f"prior: expected basis fingerprint {next(iter(known))!r} (the twins' "
            f"statistics'), got {ours!r}: {advice}"
        )
    expected, source = (ours, "the prior's") if ours is not None else (None, "most twins'")
    if expected is None:
        if not known:
            return
        ranked = known.most_common(2)
        expected = ranked[0][0]
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            source = "the first twin's: no fingerprint is held by most twins"
    for label, s in zip(labels, stats, strict=True):
        if s.basis_fingerprint is not None and s.basis_fingerprint != expected:
            raise ValueError(
                f"{label}: expected basis fingerprint {expected!r} ({source}), got "
                f"{s.basis_fingerprint!r}: {advice}"
            )


def _warn_lonely_kinds(stats: Sequence[StatisticsShape], labels: Sequence[str]) -> None:
    """Warn of a kind held by one twin whose name looks like a slip of another kind's:
    such a twin would share only the fleet's top level with the others. (A kind of one
    twin is legitimate: the first turbine of a new type.) A slip: the same letters and
    digits up to case, spaces and punctuation ("mm-82" for "MM82"), or two neighbouring
    letters swapped ("defualt"). Names that differ otherwise are taken as models of
    their own: a letter or digit changed is how variants are named ("GE1.5sle" and
    "GE1.5xle", "MM82" and "MM92")."""
    sizes = Counter(s.kind for s in stats)

    def plain(kind: str) -> str:
        return "".join(c for c in kind.casefold() if c.isalnum())

    def slip(a: str, b: str) -> bool:
        if a == b:
            return True
        differ = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
        return (
            len(a) == len(b)
            and len(differ) == 2
            and differ[1] == differ[0] + 1
            and a[differ[0]] == b[differ[1]]
            and a[differ[1]] == b[differ[0]]
            and not (a[differ[0]] + a[differ[1]]).isdigit()
        )

    for label, s in zip(labels, stats, strict=True):
        if sizes[s.kind] != 1:
            continue
        close = [k for k in sizes if k != s.kind and slip(plain(s.kind), plain(k))]
        if close:
            warnings.warn(
                f"{label}: kind {s.kind!r} is this twin's alone and looks like kind "
                f"{close[0]!r} ({sizes[close[0]]} twins); a kind of its own shares only the "
                "fleet's top level. If it is a typo, correct the kind of its statistics",
                UserWarning,
                stacklevel=4,
            )


@dataclass(frozen=True, eq=False)
class TwinStatistics:
    """What a twin exposes to fleet learning: per-noise-bin sufficient statistics.

    Parameters
    ----------
    gram
        ``sum phi phi^T`` per bin, shape ``(K, p, p)``.
    moment
        ``sum phi y`` per bin, ``(K, p)`` [units].
    sum_sq
        ``sum y^2`` per bin, ``(K,)`` [units^2].
    count
        Number of (possibly discounted) readings per bin, ``(K,)``.
    kind
        The twin's type (for a turbine: its model); twins of one kind share a population.
    period_count
        Readings per period (say, calendar week) and bin, ``(M, K)``, or ``None``: the
        blocks that share a period effect (``docs/FLEET_MODEL.md``). Summed over
        periods, equal to ``count``.
    period_sum
        ``sum y`` per period and bin, ``(M, K)`` [units], or ``None``.
    period_features
        ``sum phi`` per period and bin, ``(M, K, p)``, or ``None``.
    basis_fingerprint
        The emulator's
        :attr:`~twinweave.models.BayesianBasisRegression.basis_fingerprint` (what the
        columns and noise bins mean), or ``None`` (statistics built by hand): fleet fits
        refuse twins of other fingerprints, and compare ``None`` by shape only.

    Notes
    -----
    These never leave the twin in federated or gossip fits: only
    :class:`LocalSummary` does. Two sets of readings with equal statistics give equal
    fits, however the readings arrived (one batch or a stream). Without the period
    fields (all three ``None``) the fleet model has no period effects.
    """

    gram: FloatArray
    moment: FloatArray
    sum_sq: FloatArray
    count: FloatArray
    kind: str = DEFAULT_KIND
    period_count: FloatArray | None = None
    period_sum: FloatArray | None = None
    period_features: FloatArray | None = None
    basis_fingerprint: str | None = None

    def __repr__(self) -> str:
        # The arrays run to thousands of numbers: print what they describe.
        periods = "" if self.period_count is None else f", {self.period_count.shape[0]} periods"
        return (
            f"TwinStatistics(kind={self.kind!r}, {self.n_observations:.6g} readings, "
            f"{self.n_features} features, {self.n_bins} noise bins{periods})"
        )

    def __post_init__(self) -> None:
        gram = _array(self.gram, "gram", 3)
        n_bins, n_features = gram.shape[0], gram.shape[1]
        _shape(gram, "gram", (n_bins, n_features, n_features))
        moment = _array(self.moment, "moment", 2)
        _shape(moment, "moment", (n_bins, n_features))
        sum_sq = _array(self.sum_sq, "sum_sq", 1)
        _shape(sum_sq, "sum_sq", (n_bins,))
        count = _array(self.count, "count", 1)
        _shape(count, "count", (n_bins,))
        for name, value in (("count", count), ("sum_sq", sum_sq)):
            _first_bad(value, value < 0, name, "non-negative values (one per bin)", "negative")
        check_kind(self.kind)
        check_fingerprint(self.basis_fingerprint)
        _check_gram(gram)
        empty = np.flatnonzero(count == 0)
        if empty.size and (np.any(gram[empty]) or np.any(moment[empty]) or np.any(sum_sq[empty])):
            raise ValueError(
                f"gram, moment, sum_sq: expected zeros in bins without readings (count 0 in "
                f"bins {empty.tolist()[:8]}), got non-zero sums there"
            )
        for name, value in (("gram", gram), ("moment", moment), ("sum_sq", sum_sq)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "count", count)
        self._check_periods()

    def _check_periods(self) -> None:
        fields = (self.period_count, self.period_sum, self.period_features)
        if all(f is None for f in fields):
            return
        if any(f is None for f in fields):
            raise ValueError(
                "period_count, period_sum, period_features: expected all three or none"
            )
        n_bins, p = self.n_bins, self.n_features
        period_count = _array(self.period_count, "period_count", 2)
        n_periods = period_count.shape[0]
        _shape(period_count, "period_count", (n_periods, n_bins))
        period_sum = _array(self.period_sum, "period_sum", 2)
        _shape(period_sum, "period_sum", (n_periods, n_bins))
        period_features = _array(self.period_features, "period_features", 3)
        _shape(period_features, "period_features", (n_periods, n_bins, p))
        _first_bad(
            period_count,
            period_count < 0,
            "period_count",
            "non-negative values (one per period and bin)",
            "negative",
        )
        summed = period_count.sum(axis=0)
        unequal = ~np.isclose(summed, self.count, rtol=1e-9, atol=1e-9)
        if unequal.any():
            bin_ = int(np.argmax(unequal))
            raise ValueError(
                f"period_count: expected its sum over periods to equal count, got "
                f"{summed[bin_]:.6g} and count {self.count[bin_]:.6g} in bin {bin_}"
            )
        _check_period_sums(period_count, period_sum, self.sum_sq, "period_sum", "sum_sq")
        _check_period_sums(
            period_count,
            period_features,
            np.diagonal(self.gram, axis1=1, axis2=2),
            "period_features",
            "the diagonal of gram",
        )
        object.__setattr__(self, "period_count", period_count)
        object.__setattr__(self, "period_sum", period_sum)
        object.__setattr__(self, "period_features", period_features)

    @classmethod
    def from_emulator(
        cls,
        emulator: BayesianBasisRegression,
        kind: str = DEFAULT_KIND,
        *,
        readings: Columns | None = None,
        periods: ArrayLike | None = None,
    ) -> Self:
        """The statistics an emulator has accumulated (its forgetting folded in).

        Parameters
        ----------
        emulator
            The twin's emulator.
        kind
            The twin's type.
        readings, periods
            With period effects: the readings the emulator has assimilated (without
            forgetting) and each reading's period label (any values; equal labels are
            one period, for instance the calendar week). Each (period, noise bin) block
            adds its count, ``sum y`` and ``sum phi``. Readings whose count or sum of
            squared targets per noise bin differ from the emulator's are refused.
        """
        check_type(emulator, BayesianBasisRegression, "emulator")
        stats = emulator.statistics()
        blocks: dict[str, FloatArray] = {}
        if periods is None:
            if readings is not None:
                raise ValueError("readings: expected periods with them")
        else:
            if readings is None:
                raise ValueError("periods: expected the readings they label")
            if emulator.forgetting != 1.0:
                raise ValueError("periods: expected an emulator without forgetting")
            count, total, features = _period_blocks(emulator, readings, periods, stats)
            blocks = {"period_count": count, "period_sum": total, "period_features": features}
        return cls(
            stats["gram"],
            stats["moment"],
            stats["sum_sq"],
            stats["count"],
            kind,
            **blocks,
            basis_fingerprint=emulator.basis_fingerprint,
        )

    @classmethod
    def pooled(cls, stats: Sequence[TwinStatistics], kind: str | None = None) -> Self:
        """The statistics of all readings of ``stats`` together (complete pooling), of
        ``kind``: by default the kind they share, or :data:`DEFAULT_KIND` if they are of
        several. Their basis fingerprint, if any of them has one (:func:`check_fleet` has
        refused others)."""
        check_fleet(stats)
        kinds = {s.kind for s in stats}
        if kind is None:
            kind = kinds.pop() if len(kinds) == 1 else DEFAULT_KIND
        return cls(
            np.sum([s.gram for s in stats], axis=0),
            np.sum([s.moment for s in stats], axis=0),
            np.sum([s.sum_sq for s in stats], axis=0),
            np.sum([s.count for s in stats], axis=0),
            kind,
            basis_fingerprint=next(
                (s.basis_fingerprint for s in stats if s.basis_fingerprint is not None), None
            ),
        )

    @property
    def n_features(self) -> int:
        return int(self.gram.shape[1])

    @property
    def n_bins(self) -> int:
        return int(self.gram.shape[0])

    @property
    def n_observations(self) -> float:
        return float(self.count.sum())

    @property
    def has_periods(self) -> bool:
        return self.period_count is not None


# More periods than this, and nearly as many as readings, are labels that group
# nothing (a label per reading, as the readings' times are).
_MANY_PERIODS = 100
_ONE_EACH = 0.9


def _period_blocks(
    emulator: BayesianBasisRegression,
    readings: Columns,
    periods: ArrayLike,
    assimilated: Mapping[str, FloatArray],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Count, ``sum y`` and ``sum phi`` of ``readings`` per period and noise bin, the
    readings checked against the emulator's statistics (``assimilated``)."""
    features, bins = emulator.design(readings)
    # As the emulator assimilates them: a reading beyond a bound counts as at it.
    y = np.clip(
        np.asarray(readings[emulator.target], dtype=np.float64), emulator.lower, emulator.upper
    )
    labels = np.asarray(periods)
    if labels.shape != y.shape:
        raise ValueError(f"periods: expected one label per reading, {y.shape}, got {labels.shape}")
    import pandas as pd  # here: a Flower ClientApp process never labels periods

    unlabelled = np.flatnonzero(pd.isna(labels))
    if unlabelled.size:
        raise ValueError(
            f"periods: expected a label for every reading, got {unlabelled.size} missing "
            f"(NaN or NaT; first at reading {int(unlabelled[0])})"
        )
    _check_assimilated(assimilated, y, bins, emulator.target)
    try:
        _, period = np.unique(labels, return_inverse=True)
    except TypeError as error:
        kinds = sorted({type(label).__name__ for label in labels.ravel()})
        raise ValueError(
            "periods: expected labels that compare with each other (of one type; times "
            "all with a time zone or all without; periods of one frequency), got labels "
            f"of type {', '.join(kinds)} ({error})"
        ) from None
    n_periods = int(period.max()) + 1 if period.size else 0
    if n_periods > max(_MANY_PERIODS, _ONE_EACH * y.size):
        # Every reading its own period, as with the readings' times for labels: the
        # period effects are then the noise, and the blocks take a reading's features
        # each.
        raise ValueError(
            f"periods: expected labels that group readings (a calendar week, say: "
            f"calendar_weeks(times)), got {n_periods} periods for {y.size} readings, "
            "nearly one each"
        )
    n_bins, p = emulator.n_bins, features.shape[1]
    block = period.ravel() * n_bins + bins
    size = n_periods * n_bins
    count = np.bincount(block, minlength=size).astype(np.float64)
    total = np.asarray(np.bincount(block, weights=y, minlength=size), dtype=np.float64)
    indicator = sparse.csr_matrix(
        (np.ones(y.size), (block, np.arange(y.size))), shape=(size, y.size)
    )
    summed = np.asarray(indicator @ features, dtype=np.float64)
    return (
        count.reshape(n_periods, n_bins),
        total.reshape(n_periods, n_bins),
        summed.reshape(n_periods, n_bins, p),
    )


def _check_assimilated(
    assimilated: Mapping[str, FloatArray], y: FloatArray, bins: NDArray[np.intp], target: str
) -> None:
    """Refuse readings that are not those the emulator assimilated: their count and sum
    of squares per noise bin (two of its sufficient statistics, cheap to recompute)
    would differ. Period blocks of other readings would otherwise fit silently beside
    the emulator's sums."""
    n_bins = assimilated["count"].shape[0]
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    sum_sq = np.bincount(bins, weights=y * y, minlength=n_bins)
    held_count, held_sum_sq = assimilated["count"], assimilated["sum_sq"]
    scale = float(np.abs(held_sum_sq).max(initial=0.0))
    differ = ~np.isclose(count, held_count, rtol=1e-9, atol=1e-9) | ~np.isclose(
        sum_sq, held_sum_sq, rtol=1e-9, atol=1e-9 * scale
    )
    if differ.any():
        bin_ = int(np.argmax(differ))
        raise ValueError(
            f"readings: expected the readings the emulator assimilated, got {count.sum():.6g} "
            f"readings with a sum of squared {target} of {sum_sq.sum():.6g} where the "
            f"emulator holds {held_count.sum():.6g} and {held_sum_sq.sum():.6g} (first "
            f"difference in noise bin {bin_}: {count[bin_]:.6g} and {sum_sq[bin_]:.6g} "
            f"against {held_count[bin_]:.6g} and {held_sum_sq[bin_]:.6g})"
        )


@dataclass(frozen=True, eq=False)
class FleetPrior:
    """The hyperprior and settings of the hierarchy (configuration, not learned).

    Parameters
    ----------
    prior_mean
        Mean of the top-level (global) mean of the weights, ``(p,)`` [units]: the single
        twin's prior mean (for a power curve, a generic curve).
    prior_precision
        The single twin's P-spline prior precision, ``(p, p)`` [1/units^2]: where the
        rounds start (every twin alone) and the no-pooling baseline.
    structure_precision
        Block-diagonal ``(p, p)`` precision of the shape of deviations between twins (and
        between kinds): on each basis term's block, ``smoothness * D2^T D2 + I`` (the
        term's own ``penalty(smoothness, 1)``) [dimensionless]. The covariances are this
        shape's inverse, ``K_b``, times one learned scale per block.
    blocks
        Number of weights of each basis term, in order; each block's deviations get
        their own scale.
    scale_prior_count
        Pseudo-twins with which a kind's block scales shrink towards the fleet's (a kind
        of one twin takes mostly the fleet's scales; with one kind it has no effect).
    mean_prior_weight
        The global mean's precision is ``mean_prior_weight * prior_precision``: a weak
        prior, since a population mean is better known than any one twin's curve. With
        the single twin's full prior it would overrule the twins wherever ``Sigma`` is
        wide, and EM would settle where it is wide because the mean is wrong.
    noise_prior_count
        The single twin's pseudo-readings (its emulator's): each bin's variance shrinks
        with them towards the twin's pooled variance in the first round and in the
        no-pooling and complete-pooling baselines.
    twin_noise_prior_count
        Pseudo-readings with which a twin's per-bin noise variance shrinks towards the
        centre of its noise prior: its kind's per-bin variance for a twin with few
        readings, its own pooled variance (the single twin's model) for one with many.
        Larger than a single twin's count: ten-minute readings of a few days are
        strongly correlated, and a calm week says less about a turbine's noise than its
        number of readings suggests.
    own_noise_count
        Readings at which a twin's own pooled variance and its kind's per-bin variance
        weigh equally in that centre.
    population_noise_prior_count
        Pseudo-readings with which a kind's per-bin variance shrinks towards its pooled
        variance.
    period_prior_count
        Pseudo-periods with which a kind's per-bin variance of the period effects
        shrinks towards its all-bin value; 0 (the default) is the plain EM update. A few
        make the rounds converge several times faster where bins that few periods reach
        (near cut-out) head for zero, where EM crawls (docs/FLEET_MODEL.md: on La Haute
        Borne, 4 took 1.1 to 11 times fewer rounds, and moved the scores by up to 0.006
        nats per reading).
    n_noise_iterations
        Upper bound on a twin's EM iterations for its noise in one local step.
    noise_tol
        Relative change at which a twin's noise iterations stop.
    basis_fingerprint
        The emulator's
        :attr:`~twinweave.models.BayesianBasisRegression.basis_fingerprint`, or ``None``
        (a prior built by hand): fleet fits refuse twins' statistics of another. Checked
        where the twins' statistics are known, before round 1; it is not among
        :meth:`to_arrays` (a message's numbers), so a prior read back from them has
        ``None``.
    """

    prior_mean: FloatArray
    prior_precision: FloatArray
    structure_precision: FloatArray
    blocks: tuple[int, ...]
    scale_prior_count: float = 4.0
    mean_prior_weight: float = 1e-2
    noise_prior_count: float = 10.0
    twin_noise_prior_count: float = 300.0
    own_noise_count: float = 1000.0
    population_noise_prior_count: float = 10.0
    period_prior_count: float = 0.0
    n_noise_iterations: int = 50
    noise_tol: float = 1e-10
    basis_fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"FleetPrior({self.n_features} features, {len(self.blocks)} term blocks)"

    def __post_init__(self) -> None:
        mean = _array(self.prior_mean, "prior_mean", 1)
        p = mean.shape[0]
        precision = _array(self.prior_precision, "prior_precision", 2)
        _shape(precision, "prior_precision", (p, p))
        structure = _array(self.structure_precision, "structure_precision", 2)
        _shape(structure, "structure_precision", (p, p))
        for size in self.blocks:
            check_count(size, "blocks")
        blocks = tuple(int(b) for b in self.blocks)
        if sum(blocks) != p:
            raise ValueError(f"blocks: expected positive sizes adding up to {p}, got {blocks}")
        # Checked here, not where a fit first divides by them several rounds later.
        for name in ("mean_prior_weight", "scale_prior_count", "noise_tol"):
            check_number(getattr(self, name), name)
        for name in (
            "noise_prior_count",
            "twin_noise_prior_count",
            "own_noise_count",
            "population_noise_prior_count",
            "period_prior_count",
        ):
            check_number(getattr(self, name), name, zero=True)
        check_count(self.n_noise_iterations, "n_noise_iterations")
        check_fingerprint(self.basis_fingerprint)
        object.__setattr__(self, "prior_mean", mean)
        object.__setattr__(self, "prior_precision", precision)
        object.__setattr__(self, "structure_precision", structure)
        object.__setattr__(self, "blocks", blocks)

    @classmethod
    def from_emulator(
        cls,
        emulator: BayesianBasisRegression,
        *,
        smoothness: float = 4.0,
        scale_prior_count: float = 4.0,
        mean_prior_weight: float = 1e-2,
        noise_prior_count: float | None = None,
        twin_noise_prior_count: float = 300.0,
        own_noise_count: float = 1000.0,
        population_noise_prior_count: float | None = None,
        period_prior_count: float = 0.0,
    ) -> Self:
        """The hierarchy for twins that all use ``emulator``'s basis.

        Parameters
        ----------
        emulator
            Any twin's emulator (configuration only; its data are not read).
        smoothness
            Weight of the second-difference roughness against the ridge in the shape of
            between-twin deviations: larger is smoother (deviations correlated over about
            ``smoothness ** 0.25`` neighbouring weights).
        scale_prior_count, mean_prior_weight, twin_noise_prior_count, own_noise_count
            See the class.
        period_prior_count
            See the class.
        noise_prior_count, population_noise_prior_count
            See the class; by default the emulator's ``noise_prior_count``.
        """
        check_type(emulator, BayesianBasisRegression, "emulator")
        # A negative smoothness makes the structure indefinite: a fit would fail later.
        check_number(smoothness, "smoothness", zero=True)
        prior_mean = (
            np.zeros(emulator.n_features) if emulator.prior_mean is None else emulator.prior_mean
        )
        return cls(
            prior_mean=prior_mean,
            prior_precision=emulator.prior_precision(),
            structure_precision=block_diagonal(
                [term.penalty(smoothness, 1.0) for term in emulator.terms]
            ),
            blocks=tuple(term.n_features for term in emulator.terms),
            scale_prior_count=scale_prior_count,
            mean_prior_weight=mean_prior_weight,
            noise_prior_count=(
                emulator.noise_prior_count if noise_prior_count is None else noise_prior_count
            ),
            population_noise_prior_count=(
                emulator.noise_prior_count
                if population_noise_prior_count is None
                else population_noise_prior_count
            ),
            twin_noise_prior_count=twin_noise_prior_count,
            own_noise_count=own_noise_count,
            period_prior_count=period_prior_count,
            n_noise_iterations=emulator.n_em_iterations,
            basis_fingerprint=emulator.basis_fingerprint,
        )

    @property
    def n_features(self) -> int:
        return int(self.prior_mean.shape[0])

    @functools.cached_property
    def block_slices(self) -> tuple[slice, ...]:
        edges = np.cumsum([0, *self.blocks])
        return tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(edges))

    @functools.cached_property
    def structure_covariance(self) -> FloatArray:
        """Inverse of ``structure_precision`` (block by block)."""
        out = np.zeros_like(self.structure_precision)
        for block in self.block_slices:
            out[block, block] = np.linalg.inv(self.structure_precision[block, block])
        out = 0.5 * (out + out.T)
        out.setflags(write=False)
        return out

    def to_arrays(self) -> dict[str, FloatArray]:
        """Every field as a float64 array (scalars 0-d), for a message."""
        return {
            "prior_mean": self.prior_mean,
            "prior_precision": self.prior_precision,
            "structure_precision": self.structure_precision,
            "blocks": np.asarray(self.blocks, dtype=np.float64),
            **{
                name: np.asarray(getattr(self, name), dtype=np.float64)
                for name in (
                    "scale_prior_count",
                    "mean_prior_weight",
                    "noise_prior_count",
                    "twin_noise_prior_count",
                    "own_noise_count",
                    "population_noise_prior_count",
                    "period_prior_count",
                    "n_noise_iterations",
                    "noise_tol",
                )
            },
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]]) -> Self:
        """The inverse of :meth:`to_arrays`."""
        return cls(
            prior_mean=arrays["prior_mean"],
            prior_precision=arrays["prior_precision"],
            structure_precision=arrays["structure_precision"],
            blocks=tuple(int(b) for b in np.asarray(arrays["blocks"])),
            scale_prior_count=float(arrays["scale_prior_count"]),
            mean_prior_weight=float(arrays["mean_prior_weight"]),
            noise_prior_count=float(arrays["noise_prior_count"]),
            twin_noise_prior_count=float(arrays["twin_noise_prior_count"]),
            own_noise_count=float(arrays["own_noise_count"]),
            population_noise_prior_count=float(arrays["population_noise_prior_count"]),
            period_prior_count=float(arrays["period_prior_count"]),
            n_noise_iterations=int(arrays["n_noise_iterations"]),
            noise_tol=float(arrays["noise_tol"]),
        )


@dataclass(frozen=True, eq=False)
class Population:
    """The learned population: what a coordinator (or every peer) broadcasts.

    Parameters
    ----------
    prior
        The hyperprior and settings (travels with the population, so a twin needs no
        other configuration).
    kinds
        Names of the kinds, in order; row ``t`` of every per-kind array is kind ``t``.
    mean
        Posterior mean of each kind's mean weights ``E[mu_t]``, ``(T, p)`` [units].
    mean_covariance
        Posterior covariance of each kind's mean ``Cov[mu_t]``, ``(T, p, p)``
        [units^2].
    covariance
        Covariance of the twins' weights about their kind's mean ``Sigma_t``,
        ``(T, p, p)`` [units^2].
    noise_var
        Each kind's per-bin noise variance ``tau2_t``, ``(T, K)`` [units^2]; ``None``
        before the first aggregation (each twin then shrinks towards its own pooled
        variance, as a single twin does).
    global_mean, global_covariance
        Posterior mean and covariance of the global mean ``mu_g``, ``(p,)`` [units] and
        ``(p, p)`` [units^2]; with one kind, the same as that kind's.
    between_covariance
        Covariance of the kinds' means about the global mean ``Sigma_B``, ``(p, p)``
        [units^2]; ``None`` with one kind.
    period_var
        Each kind's per-bin variance of the period effects ``omega2_t``, ``(T, K)``
        [units^2]; ``None`` where no twin has period statistics, or before the first
        aggregation.
    """

    prior: FleetPrior
    kinds: tuple[str, ...]
    mean: FloatArray
    mean_covariance: FloatArray
    covariance: FloatArray
    noise_var: FloatArray | None
    global_mean: FloatArray
    global_covariance: FloatArray
    between_covariance: FloatArray | None = None
    period_var: FloatArray | None = None

    def __repr__(self) -> str:
        bins = None if self.noise_var is None else self.noise_var.shape[1]
        noise = "no noise yet" if bins is None else f"{bins} noise bins"
        periods = "" if self.period_var is None else ", period effects"
        return (
            f"Population(kinds={self.kinds!r}, {self.prior.n_features} features, {noise}{periods})"
        )

    def __post_init__(self) -> None:
        kinds = check_kinds(self.kinds)
        n_kinds, p = len(kinds), self.prior.n_features
        checks: list[tuple[str, int, tuple[int, ...]]] = [
            ("mean", 2, (n_kinds, p)),
            ("mean_covariance", 3, (n_kinds, p, p)),
            ("covariance", 3, (n_kinds, p, p)),
            ("global_mean", 1, (p,)),
            ("global_covariance", 2, (p, p)),
        ]
        if self.noise_var is not None:
            noise = _array(self.noise_var, "noise_var", 2)
            if noise.shape[0] != n_kinds or np.any(noise <= 0):
                raise ValueError(
                    f"noise_var: expected positive values, shape ({n_kinds}, K), got {noise.shape}"
                )
            object.__setattr__(self, "noise_var", noise)
        if self.period_var is not None:
            period = _array(self.period_var, "period_var", 2)
            if period.shape[0] != n_kinds or np.any(period <= 0):
                raise ValueError(
                    f"period_var: expected positive values, shape ({n_kinds}, K), got "
                    f"{period.shape}"
                )
            object.__setattr__(self, "period_var", period)
        if self.between_covariance is not None:
            checks.append(("between_covariance", 2, (p, p)))
        elif n_kinds > 1:
            raise ValueError("between_covariance: expected a (p, p) array with several kinds")
        for name, ndim, shape in checks:
            value = _array(getattr(self, name), name, ndim)
            _shape(value, name, shape)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "kinds", kinds)

    @property
    def n_kinds(self) -> int:
        return len(self.kinds)

    def kind_index(self, kind: str) -> int:
        try:
            return self.kinds.index(kind)
        except ValueError:
            raise KeyError(f"kind {kind!r}: not in the population's kinds {self.kinds}") from None

    def to_arrays(self) -> dict[str, FloatArray]:
        """Every numeric field as a float64 array; the prior's under ``prior.``."""
        out = {f"prior.{k}": v for k, v in self.prior.to_arrays().items()}
        for name in (
            "mean",
            "mean_covariance",
            "covariance",
            "noise_var",
            "global_mean",
            "global_covariance",
            "between_covariance",
            "period_var",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], kinds: Sequence[str]) -> Self:
        """The inverse of :meth:`to_arrays` (absent optional arrays are ``None``)."""
        prior = FleetPrior.from_arrays(
            {k.removeprefix("prior."): v for k, v in arrays.items() if k.startswith("prior.")}
        )
        return cls(
            prior=prior,
            kinds=tuple(kinds),
            mean=arrays["mean"],
            mean_covariance=arrays["mean_covariance"],
            covariance=arrays["covariance"],
            noise_var=arrays.get("noise_var"),
            global_mean=arrays["global_mean"],
            global_covariance=arrays["global_covariance"],
            between_covariance=arrays.get("between_covariance"),
            period_var=arrays.get("period_var"),
        )


@dataclass(frozen=True, eq=False)
class LocalSummary:
    """A twin's answer to a round (or the sum of several twins' answers).

    Every field is a sum over twins, with one row per kind, so summaries add up
    element-wise; the M-step (:func:`~twinweave.transfer.aggregate`) needs only the total.
    For twin ``i`` with posterior precision ``Lambda_i``, covariance ``C_i`` and mean
    ``m_i`` of its weights given the population's ``mu`` and ``Sigma`` (``P = Sigma^-1``),
    and data part ``h_i = sum_j b_ij / sigma2_ij`` of the right-hand side:

    Parameters
    ----------
    kinds
        The population's kinds (rows of every per-kind array).
    n_twins
        Twins per kind, ``(T,)``.
    sum_mean
        ``sum_i m_i``, ``(T, p)`` [units].
    sum_quadratic
        ``sum_i tr(K_b^-1 (C_i + m_i m_i^T)_bb)`` for each term block ``b`` of the
        prior (``K_b^-1``: the block of ``FleetPrior.structure_precision``), ``(T, B)``
        [units^2]: ``E[w_ib^T K_b^-1 w_ib]``, all the M-step needs of the weights'
        second moments (it updates one scale per block).
    sum_precision
        ``sum_i (P - P C_i P)``: the precision each twin's data give its kind's mean
        once its own weights are integrated out, ``(T, p, p)`` [1/units^2].
    sum_shift
        ``sum_i P C_i h_i``: the matching right-hand side, ``(T, p)`` [1/units].
    residual_ss
        ``sum_i R_ij``, expected residual sums of squares per bin, ``(T, K)``
        [units^2].
    count
        ``sum_i n_ij``, readings per bin, ``(T, K)``.
    period_ss
        ``sum_i sum_c E[u_c^2]`` over the twin's (period, bin) blocks ``c`` of each bin:
        the period effects' expected second moments, ``(T, K)`` [units^2] (zero
        without period statistics).
    period_blocks
        ``sum_i`` the number of (period, bin) blocks with readings in each bin,
        ``(T, K)``.
    log_evidence
        ``sum_i log p(y_i | population, sigma2_i)`` [nats]: for monitoring only.
    """

    kinds: tuple[str, ...]
    n_twins: FloatArray
    sum_mean: FloatArray
    sum_quadratic: FloatArray
    sum_precision: FloatArray
    sum_shift: FloatArray
    residual_ss: FloatArray
    count: FloatArray
    period_ss: FloatArray
    period_blocks: FloatArray
    log_evidence: float = 0.0

    #: The summed array fields, in order, with their number of dimensions.
    ARRAYS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("n_twins", 1),
        ("sum_mean", 2),
        ("sum_quadratic", 2),
        ("sum_precision", 3),
        ("sum_shift", 2),
        ("residual_ss", 2),
        ("count", 2),
        ("period_ss", 2),
        ("period_blocks", 2),
    )

    def __repr__(self) -> str:
        twins = ", ".join(f"{k}: {n:g}" for k, n in zip(self.kinds, self.n_twins, strict=True))
        return f"LocalSummary(twins by kind {{{twins}}}, log_evidence={self.log_evidence:.6g})"

    def __post_init__(self) -> None:
        kinds = tuple(str(k) for k in self.kinds)
        arrays = {name: _array(getattr(self, name), name, ndim) for name, ndim in self.ARRAYS}
        _check_summary_shapes(kinds, arrays, 0)
        for name, value in arrays.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "log_evidence", float(self.log_evidence))

    @classmethod
    def _rows(
        cls,
        kinds: Sequence[str],
        stacked: Mapping[str, FloatArray],
        log_evidence: FloatArray,
    ) -> list[Self]:
        """One summary per row of fields stacked along a leading axis.

        For the local steps of many twins computed together (one row per twin): the
        stack is checked once, and each summary holds read-only views of its row, so
        building a twin's summary costs no copy and no check of its own.

        Parameters
        ----------
        kinds
            The population's kinds.
        stacked
            Every field of :attr:`ARRAYS` with a leading axis of ``n`` rows.
        log_evidence
            ``(n,)`` each row's log evidence [nats].

        Returns
        -------
        list of LocalSummary
            ``n`` summaries, row by row.
        """
        kinds = tuple(str(k) for k in kinds)
        arrays = {name: _array(stacked[name], name, ndim + 1) for name, ndim in cls.ARRAYS}
        evidence = _array(log_evidence, "log_evidence", 1)
        n = evidence.shape[0]
        _check_summary_shapes(kinds, arrays, 1)
        if any(value.shape[0] != n for value in arrays.values()):
            raise ValueError(f"stacked: expected {n} rows in every field")
        out: list[Self] = []
        for i in range(n):
            # The checks of __post_init__ hold for every row of the checked stack.
            summary = object.__new__(cls)
            object.__setattr__(summary, "kinds", kinds)
            for name, value in arrays.items():
                object.__setattr__(summary, name, value[i])
            object.__setattr__(summary, "log_evidence", float(evidence[i]))
            out.append(summary)
        return out

    def __add__(self, other: LocalSummary) -> LocalSummary:
        if other.kinds != self.kinds:
            raise ValueError(f"kinds: cannot add summaries of {self.kinds} and {other.kinds}")
        summed: dict[str, Any] = {
            name: getattr(self, name) + getattr(other, name) for name, _ in self.ARRAYS
        }
        return LocalSummary(
            self.kinds, **summed, log_evidence=self.log_evidence + other.log_evidence
        )

    def scaled(self, factor: float) -> LocalSummary:
        """Every field times ``factor`` (an average of ``N`` summaries times ``N`` is their
        sum): a count of twins, at least 0."""
        check_number(factor, "factor", zero=True)
        scaled: dict[str, Any] = {name: getattr(self, name) * factor for name, _ in self.ARRAYS}
        return LocalSummary(self.kinds, **scaled, log_evidence=self.log_evidence * factor)

    @property
    def n_features(self) -> int:
        return int(self.sum_mean.shape[1])

    def to_arrays(self) -> dict[str, FloatArray]:
        """Every numeric field as a float64 array (``log_evidence`` 0-d)."""
        out: dict[str, FloatArray] = {name: getattr(self, name) for name, _ in self.ARRAYS}
        out["log_evidence"] = np.asarray(self.log_evidence, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], kinds: Sequence[str]) -> Self:
        """The inverse of :meth:`to_arrays`."""
        fields: dict[str, Any] = {name: arrays[name] for name, _ in cls.ARRAYS}
        return cls(tuple(kinds), **fields, log_evidence=float(arrays["log_evidence"]))


def _check_summary_shapes(
    kinds: tuple[str, ...], arrays: Mapping[str, FloatArray], n_leading: int
) -> None:
    """The shapes of a summary's fields (after ``n_leading`` stacking axes) agree."""
    lead = arrays["sum_mean"].shape[:n_leading]
    n_kinds, p = arrays["sum_mean"].shape[n_leading:]
    n_blocks = arrays["sum_quadratic"].shape[-1]
    n_bins = arrays["count"].shape[-1]
    if len(kinds) != n_kinds:
        raise ValueError(f"kinds: expected {n_kinds} names, got {kinds}")
    expected = {
        "n_twins": (n_kinds,),
        "sum_mean": (n_kinds, p),
        "sum_quadratic": (n_kinds, n_blocks),
        "sum_precision": (n_kinds, p, p),
        "sum_shift": (n_kinds, p),
        "residual_ss": (n_kinds, n_bins),
        "count": (n_kinds, n_bins),
        "period_ss": (n_kinds, n_bins),
        "period_blocks": (n_kinds, n_bins),
    }
    for name, value in arrays.items():
        _shape(value, name, lead + expected[name])


def sum_summaries(summaries: Iterable[LocalSummary]) -> LocalSummary:
    """The sum of ``summaries``.

    Field by field over the summaries stacked in the given order (numpy's reduction:
    the same order gives the same bits); the log evidence is added one by one.
    """
    items = list(summaries)
    if not items:
        raise ValueError("summaries: expected at least one, got none")
    first = items[0]
    if len(items) == 1:
        return first
    for summary in items[1:]:
        if summary.kinds != first.kinds:
            raise ValueError(f"kinds: cannot add summaries of {first.kinds} and {summary.kinds}")
        for name, _ in LocalSummary.ARRAYS:
            if getattr(summary, name).shape != getattr(first, name).shape:
                raise ValueError(
                    f"{name}: cannot add shapes {getattr(first, name).shape} and "
                    f"{getattr(summary, name).shape}"
                )
    summed: dict[str, Any] = {
        name: np.sum([getattr(s, name) for s in items], axis=0) for name, _ in LocalSummary.ARRAYS
    }
    log_evidence = first.log_evidence
    for summary in items[1:]:
        log_evidence += summary.log_evidence
    return LocalSummary(first.kinds, **summed, log_evidence=log_evidence)


@dataclass(frozen=True, eq=False)
class TwinPosterior:
    """One twin's posterior of its weights and its noise (it stays with the twin).

    Parameters
    ----------
    kind
        The twin's kind.
    mean
        Posterior mean of the weights, ``(p,)`` [units].
    covariance
        Posterior covariance of the weights given the fleet's data, ``(p, p)``
        [units^2] (a fitted twin's includes the population mean's uncertainty).
    noise_var
        Noise variance per bin, ``(K,)`` [units^2].
    period_var
        Variance of a period effect per bin, ``(K,)`` [units^2], or ``None`` (a model
        without period effects).
    basis_fingerprint
        The ``basis_fingerprint`` of the emulators whose statistics it was fitted to
        (the fleet's), or ``None`` (not known: a prior or statistics built by hand);
        :meth:`predict` refuses a design of another basis.
    """

    kind: str
    mean: FloatArray
    covariance: FloatArray
    noise_var: FloatArray
    period_var: FloatArray | None = None
    basis_fingerprint: str | None = None

    def __repr__(self) -> str:
        periods = "" if self.period_var is None else ", period effects"
        return (
            f"TwinPosterior(kind={self.kind!r}, {self.mean.shape[0]} weights, noise "
            f"variance {float(self.noise_var.min()):.4g} to {float(self.noise_var.max()):.4g} "
            f"over {self.noise_var.shape[0]} bins{periods})"
        )

    def __post_init__(self) -> None:
        check_fingerprint(self.basis_fingerprint)
        mean = _array(self.mean, "mean", 1)
        covariance = _array(self.covariance, "covariance", 2)
        _shape(covariance, "covariance", (mean.shape[0], mean.shape[0]))
        noise = _array(self.noise_var, "noise_var", 1)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", covariance)
        object.__setattr__(self, "noise_var", noise)
        if self.period_var is not None:
            period = _array(self.period_var, "period_var", 1)
            _shape(period, "period_var", noise.shape)
            object.__setattr__(self, "period_var", period)

    @property
    def reading_var(self) -> FloatArray:
        """Variance of a reading about the curve per bin, ``(K,)`` [units^2]: the noise
        plus, with period effects, the variance of a new period's effect."""
        if self.period_var is None:
            return self.noise_var
        return np.asarray(self.noise_var + self.period_var, dtype=np.float64)

    def predict(self, inputs: Columns, design: Design) -> CensoredNormal:
        """Predictive distribution at ``inputs`` with ``design``'s features [units].

        The weights' uncertainty is the shared factor (points are correlated through
        it); the noise is independent between points. With period effects, each
        point's variance adds a new period's effect (:attr:`reading_var`): the points
        are taken as from periods not seen in training, and their correlation within
        a period is left out (it would need one more shared factor per period).

        ``inputs`` are checked as the design's own prediction checks them
        (:meth:`~twinweave.models.BayesianBasisRegression.check_prediction_inputs`).
        """
        check_type(design, Design, "design", "the twins' emulator (a Design)")
        # design() is also how readings are summarised; it checks nothing of a prediction.
        design.check_prediction_inputs(inputs)
        features, bins = design.design(inputs)
        if features.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"design: expected {self.mean.shape[0]} features, got {features.shape[1]}"
            )
        if design.n_bins != self.noise_var.shape[0]:
            raise ValueError(
                f"design: expected {self.noise_var.shape[0]} noise bins (the twin's), got "
                f"{design.n_bins}: predict with the twins' emulator"
            )
        check_same_basis(self.basis_fingerprint, design, "design")  # sizes named first
        return CensoredNormal(
            features @ self.mean,
            self.reading_var[bins],
            lower=design.lower,
            upper=design.upper,
            units=design.units,
            factor=features @ _factor(self.covariance),
        )


def _factor(covariance: FloatArray) -> FloatArray:
    """A square root ``A`` with ``A A^T = covariance`` (Cholesky; eigenvalues if the
    matrix is only semi-definite)."""
    try:
        return np.asarray(np.linalg.cholesky(covariance), dtype=np.float64)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(0.5 * (covariance + covariance.T))
        return np.asarray(vectors * np.sqrt(np.clip(values, 0.0, None)), dtype=np.float64)
