"""Basis functions for regression emulators: cubic B-splines and their modulations.

A term turns input columns into a block of features. Terms are small frozen objects
(a type checker sees them; no string dispatch) and are combined additively by
:class:`~twinweave.models.BayesianBasisRegression`.

Cubic B-splines on uniform knots follow de Boor, *A Practical Guide to Splines* (1978);
the second-difference roughness penalty is the P-spline of Eilers and Marx (1996),
doi:10.1214/ss/1038425655.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from twinweave.core._emulator import refuse_text

FloatArray = NDArray[np.float64]
Columns = Mapping[str, ArrayLike]
T = TypeVar("T")


@runtime_checkable
class DerivedInput(Protocol):
    """An input computed from other columns (for example density-normalised wind speed).

    Returns ``None`` when the columns it needs are absent. Row ``i`` of the result depends
    on row ``i`` of the columns only, so a batch may be evaluated in chunks of rows.
    """

    @property
    def name(self) -> str: ...

    @property
    def sources(self) -> tuple[str, ...]:
        """Names of the columns it reads."""
        ...

    def __call__(self, data: Columns) -> FloatArray | None: ...


Input = str | DerivedInput


class RowSlice(Mapping[str, ArrayLike]):
    """Rows ``lo:hi`` of the columns that have ``n_rows`` rows; other columns (a scalar to
    broadcast) as they are."""

    def __init__(self, data: Columns, lo: int, hi: int, n_rows: int) -> None:
        self._data = data
        self._lo = lo
        self._hi = hi
        self._n_rows = n_rows

    def __getitem__(self, key: str) -> ArrayLike:
        value = np.asarray(self._data[key])
        if value.ndim >= 1 and value.shape[0] == self._n_rows:
            return value[self._lo : self._hi]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class EvaluatedInputs(Mapping[str, ArrayLike]):
    """Columns that remember what was computed from them during one call.

    Several terms and the noise model often share one derived input (a power curve's
    density-normalised wind speed feeds three of them) and one spline (the coarse spline
    of two modulated terms); wrapping the columns once per call computes each once.
    """

    def __init__(self, data: Columns) -> None:
        self._data = data
        # Keyed by identity and holding the owner, so the id cannot be reused meanwhile.
        self._derived: dict[int, tuple[DerivedInput, FloatArray | None]] = {}
        self._memo: dict[tuple[int, int], tuple[object, Any]] = {}

    def __getitem__(self, key: str) -> ArrayLike:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def derived(self, source: DerivedInput) -> FloatArray | None:
        found = self._derived.get(id(source))
        if found is None:
            found = (source, source(self))
            self._derived[id(source)] = found
        return found[1]

    def remember(self, owner: object, n_rows: int, compute: Callable[[], T]) -> T:
        """``compute()``, evaluated once per ``owner`` and row count."""
        key = (id(owner), n_rows)
        found = self._memo.get(key)
        if found is None:
            found = (owner, compute())
            self._memo[key] = found
        return cast(T, found[1])


class NotOneReading(Exception):
    """A column of what was offered as one reading holds other than one number."""


class OneReading(Mapping[str, float]):
    """One reading as Python floats, for the streaming update.

    Columns are converted when first read (a reading may carry columns a model never
    reads, such as a timestamp). NumPy's overhead per call would dominate the work of a
    single reading, so the terms evaluate it with Python floats (:class:`OneReadingTerm`),
    by the same IEEE operations as their batch path. Reading a column that holds other
    than one number raises :class:`NotOneReading`, for the caller to take the general
    path, which names the problem.
    """

    __slots__ = ("_data", "_floats", "_memo")

    def __init__(self, data: Columns) -> None:
        self._data = data
        self._floats: dict[str, float] = {}
        # Keyed by identity and holding the owner, so the id cannot be reused meanwhile.
        self._memo: dict[int, tuple[object, Any]] = {}

    def __getitem__(self, key: str) -> float:
        found = self._get(key)
        if found is None:
            raise KeyError(key)
        return found

    def get(self, key: str, default: Any = None) -> Any:
        found = self._get(key)
        return default if found is None else found

    def _get(self, key: str) -> float | None:
        found = self._floats.get(key)
        if found is None:
            value = self._data.get(key)
            if value is None:
                return None
            found = self._floats[key] = _one_float(value)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def value(self, source: Input) -> float | None:
        """``source`` for this reading: a column by name, or a derived input (once)."""
        if isinstance(source, str):
            return self._get(source)
        found = self._memo.get(id(source))
        if found is None:
            found = self._memo[id(source)] = (source, _first(source(self)))
        return cast(float | None, found[1])

    def remember(self, owner: object, compute: Callable[[OneReading], T]) -> T:
        """``compute(self)``, evaluated once per ``owner`` for this reading."""
        found = self._memo.get(id(owner))
        if found is None:
            found = self._memo[id(owner)] = (owner, compute(self))
        return cast(T, found[1])


def _one_float(value: object) -> float:
    if type(value) is float:
        return value
    try:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except ValueError as error:  # a ragged list
        raise NotOneReading from error
    # Text (numpy reads "1e1" as 10) and objects go to the general path, which refuses
    # what is not a number by name.
    if array.size != 1 or array.dtype.kind not in "biuf":
        raise NotOneReading
    return float(array.reshape(-1)[0])


def _first(values: FloatArray | None) -> float | None:
    if values is None:
        return None
    if values.size != 1:
        raise NotOneReading
    return float(values.item())


def read_input(data: Columns, source: Input) -> FloatArray | None:
    """Evaluate ``source`` on ``data``: a column by name, or a derived input."""
    if isinstance(source, str):
        if source not in data:
            return None
        refuse_text(data[source], source)
        value = np.asarray(data[source], dtype=np.float64)
        return value if value.ndim else value.reshape(1)
    if isinstance(data, EvaluatedInputs):
        return data.derived(source)
    return source(data)


def input_name(source: Input) -> str:
    return source if isinstance(source, str) else source.name


def describe_input(source: Input) -> str:
    """An input as a message names it: a derived input with the columns it comes from."""
    if isinstance(source, str):
        return repr(source)
    return f"{source.name!r} (computed from columns {', '.join(map(repr, source.sources))})"


def input_sources(source: Input) -> tuple[str, ...]:
    """Names of the columns an input reads: itself, or a derived input's sources."""
    return (source,) if isinstance(source, str) else tuple(source.sources)


def unique(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` without repeats, in first-seen order."""
    return tuple(dict.fromkeys(names))


@runtime_checkable
class BasisTerm(Protocol):
    """A block of features computed from the inputs."""

    @property
    def n_features(self) -> int: ...

    @property
    def required(self) -> bool:
        """Whether predictions need this term's inputs (else missing means zero)."""
        ...

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the columns the term reads."""
        ...

    def design(self, data: Columns, n_rows: int) -> FloatArray:
        """Feature block, shape ``(n_rows, n_features)``."""
        ...

    def penalty(self, smoothing: float, ridge: float) -> FloatArray:
        """Prior precision of this block's weights, ``(n_features, n_features)``."""
        ...


@runtime_checkable
class LocalBasisTerm(BasisTerm, Protocol):
    """A term whose features are zero outside a window of ``width`` adjacent columns.

    Lets the regression accumulate and predict from the window alone (a cubic B-spline
    row has 4 non-zero features whatever the number of knots).
    """

    @property
    def width(self) -> int: ...

    def local_design(self, data: Columns, n_rows: int) -> tuple[NDArray[np.intp], FloatArray]:
        """First column of each row's window, ``(n_rows,)``, and the window's values,
        ``(n_rows, width)``; ``design`` is these values scattered into their columns."""
        ...


def term_width(term: BasisTerm) -> int:
    """Columns of ``term``'s window: all of them for a term without windows."""
    return term.width if isinstance(term, LocalBasisTerm) else term.n_features


@runtime_checkable
class OneReadingTerm(LocalBasisTerm, Protocol):
    """A local term that also evaluates one reading with Python floats (the streaming
    update's fast path); terms without it take the general path for a single reading."""

    def local_one(self, reading: OneReading) -> tuple[int, list[float]] | None:
        """First column and values of the reading's window, equal to ``local_design``'s
        row; ``None`` where the general path must decide (a missing or non-finite
        input), which then raises or evaluates as usual."""
        ...


# Power-series coefficients of the four uniform cubic B-spline pieces on [0, 1): row k
# holds the coefficients of u^k (de Boor 1978, chapter IX), the pieces in columns.
_BSPLINE_COEFFICIENTS = (
    np.array(
        [
            [1.0, 4.0, 1.0, 0.0],
            [-3.0, 0.0, 3.0, 0.0],
            [3.0, -6.0, 3.0, 0.0],
            [-1.0, 3.0, -3.0, 1.0],
        ]
    )
    / 6.0
)


_BSPLINE_COLUMNS = tuple(tuple(float(v) for v in column) for column in _BSPLINE_COEFFICIENTS.T)


def _cubic_bspline_weights(u: FloatArray) -> FloatArray:
    """Values of the four uniform cubic B-splines non-zero at position ``u`` in [0, 1),
    shape ``(len(u), 4)``.

    Computed piece by piece (each a contiguous row, then transposed: a view), which
    NumPy runs several times faster than across rows of four.
    """
    weights = np.empty((4, u.shape[0]), dtype=np.float64)
    for piece, (c0, c1, c2, c3) in zip(weights, _BSPLINE_COLUMNS, strict=True):
        # Horner's rule, in place: ((c3 u + c2) u + c1) u + c0.
        np.multiply(c3, u, out=piece)
        piece += c2
        piece *= u
        piece += c1
        piece *= u
        piece += c0
    return weights.T


def _cubic_bspline_weights_one(u: float) -> list[float]:
    """:func:`_cubic_bspline_weights` of one value, with the same operations in Python
    floats (the same IEEE results, without NumPy's overhead per call)."""
    return [((c3 * u + c2) * u + c1) * u + c0 for c0, c1, c2, c3 in _BSPLINE_COLUMNS]


def _second_difference_penalty(n: int) -> FloatArray:
    d = np.diff(np.eye(n), n=2, axis=0)
    return np.asarray(d.T @ d, dtype=np.float64)


@dataclass(frozen=True)
class SplineTerm:
    """Cubic B-spline basis of one input on ``n_segments`` uniform segments.

    Values outside ``[lower, upper]`` are clamped to the ends (the power curve is flat
    beyond them). The basis is a partition of unity, so no intercept is needed.

    Parameters
    ----------
    source
        Input column name or :class:`DerivedInput`.
    lower, upper
        Range of the knots [input units].
    n_segments
        Number of knot intervals; the term has ``n_segments + 3`` features.

    Examples
    --------
    >>> term = SplineTerm("wind_speed", 0.0, 25.0, 50)
    >>> x = term.design({"wind_speed": [0.0, 7.3, 30.0]}, 3)
    >>> x.shape, np.allclose(x.sum(axis=1), 1.0)
    ((3, 53), True)
    """

    source: Input
    lower: float
    upper: float
    n_segments: int

    def __post_init__(self) -> None:
        if not self.upper > self.lower:
            raise ValueError(
                f"SplineTerm({input_name(self.source)!r}): expected upper > lower, "
                f"got [{self.lower}, {self.upper}]"
            )
        if self.n_segments < 1:
            raise ValueError(f"n_segments: expected >= 1, got {self.n_segments}")

    @property
    def n_features(self) -> int:
        return self.n_segments + 3

    @property
    def required(self) -> bool:
        return True

    @property
    def inputs(self) -> tuple[str, ...]:
        return input_sources(self.source)

    def centres(self) -> FloatArray:
        """Where each basis function peaks [input units]; with a partition of unity a
        weight is about the function's value there, which is how prior means are set."""
        width = (self.upper - self.lower) / self.n_segments
        return np.asarray(self.lower + (np.arange(self.n_features) - 1.0) * width, np.float64)

    @property
    def width(self) -> int:
        return 4

    def locate(self, x: FloatArray) -> tuple[NDArray[np.intp], FloatArray]:
        """Segment index and position within it, for clamped ``x``.

        A NaN ``x`` gets the last segment and a NaN position, so its features are NaN.
        """
        width = (self.upper - self.lower) / self.n_segments
        # maximum/minimum rather than np.clip: the same values, less overhead per call.
        position = (np.minimum(np.maximum(x, self.lower), self.upper) - self.lower) / width
        # fmin ignores NaN; truncation commutes with the minimum for position >= 0.
        segment = np.fmin(position, self.n_segments - 1).astype(np.intp)
        return segment, position - segment

    def local_design(self, data: Columns, n_rows: int) -> tuple[NDArray[np.intp], FloatArray]:
        if isinstance(data, EvaluatedInputs):
            # Shared by the terms that modulate this spline; callers do not write to it.
            return data.remember(self, n_rows, lambda: self._local_design(data, n_rows))
        return self._local_design(data, n_rows)

    def _local_design(self, data: Columns, n_rows: int) -> tuple[NDArray[np.intp], FloatArray]:
        x = read_input(data, self.source)
        if x is None:
            raise KeyError(
                f"missing input {describe_input(self.source)}: the spline term needs it; "
                f"got columns {sorted(data)}"
            )
        if n_rows == 1 and x.shape[0] == 1 and not math.isnan(x[0]):
            first, weights = self._locate_one(float(x[0]))
            return np.array([first], dtype=np.intp), np.array([weights], dtype=np.float64)
        if x.shape[0] != n_rows:
            x = np.broadcast_to(x, (n_rows,))
        segment, u = self.locate(x)
        return segment, _cubic_bspline_weights(u)

    def local_one(self, reading: OneReading) -> tuple[int, list[float]] | None:
        # Shared, like local_design, by the terms that modulate this spline.
        return reading.remember(self, self._one)

    def _one(self, reading: OneReading) -> tuple[int, list[float]] | None:
        x = reading.value(self.source)
        if x is None or math.isnan(x):
            return None
        return self._locate_one(x)

    def _locate_one(self, x: float) -> tuple[int, list[float]]:
        """:meth:`locate` and the weights of one value not NaN, in Python floats (the
        same IEEE operations, without NumPy's overhead per call)."""
        width = (self.upper - self.lower) / self.n_segments
        at = (min(max(x, self.lower), self.upper) - self.lower) / width
        first = int(min(at, self.n_segments - 1))
        return first, _cubic_bspline_weights_one(at - first)

    def design(self, data: Columns, n_rows: int) -> FloatArray:
        segment, weights = self.local_design(data, n_rows)
        out = np.zeros((n_rows, self.n_features), dtype=np.float64)
        rows = np.arange(n_rows)[:, None]
        out[rows, segment[:, None] + np.arange(4)[None, :]] = weights
        return out

    def penalty(self, smoothing: float, ridge: float) -> FloatArray:
        return smoothing * _second_difference_penalty(self.n_features) + ridge * np.eye(
            self.n_features
        )


@dataclass(frozen=True)
class Harmonics:
    """Fourier features of an angle [degree]: sin and cos of 1..``n_harmonics`` times it.

    An absent or non-finite angle gives zero features (each feature averages to zero
    over a full turn); predictions without an angle average over the angles assimilated
    instead (see :class:`ModulatedSpline`).
    """

    #: Periodic: no angle lies beyond those assimilated, nothing is extrapolated.
    extrapolates: ClassVar[bool] = False

    source: Input
    n_harmonics: int = 2

    @property
    def n_features(self) -> int:
        return 2 * self.n_harmonics

    @property
    def inputs(self) -> tuple[str, ...]:
        return input_sources(self.source)

    def values(self, data: Columns, n_rows: int) -> FloatArray:
        angle = read_input(data, self.source)
        if angle is None:
            return np.zeros((n_rows, self.n_features), dtype=np.float64)
        if n_rows == 1 and angle.shape[0] == 1:
            return np.array([self._values_one(float(angle[0]))], dtype=np.float64)
        if angle.shape[0] != n_rows:
            angle = np.broadcast_to(angle, (n_rows,))
        theta = np.deg2rad(angle)
        # Filled feature by feature (contiguous rows), returned as the transposed view.
        out = np.empty((self.n_features, n_rows), dtype=np.float64)
        for k in range(self.n_harmonics):
            multiple = theta if k == 0 else (k + 1) * theta
            np.sin(multiple, out=out[2 * k])
            np.cos(multiple, out=out[2 * k + 1])
        # A sum is finite only if every term is; the mask is built only when needed.
        if not math.isfinite(theta.sum()):
            out[:, ~np.isfinite(theta)] = 0.0
        return out.T

    def values_one(self, reading: OneReading) -> list[float]:
        """:meth:`values` of one reading, in Python floats."""
        angle = reading.value(self.source)
        return [0.0] * self.n_features if angle is None else self._values_one(angle)

    def _values_one(self, angle: float) -> list[float]:
        # The same IEEE operations as the batch path, without NumPy's overhead per call.
        if not math.isfinite(angle):
            return [0.0] * self.n_features
        theta = math.radians(angle)
        row: list[float] = []
        for k in range(self.n_harmonics):
            times = theta if k == 0 else (k + 1) * theta
            row += [math.sin(times), math.cos(times)]
        return row

    def missing(self, data: Columns, n_rows: int) -> NDArray[np.bool_] | None:
        """Rows whose angle is absent or not finite; ``None`` if there are none."""
        return _missing(read_input(data, self.source), n_rows)


@dataclass(frozen=True)
class Centred:
    """A linear feature ``(x - centre) / scale``; absent or not finite means zero (the
    centre) in the features, and is marginalised when predicting (see
    :class:`~twinweave.models.BayesianBasisRegression`)."""

    #: Linear: beyond the values assimilated its effect is extrapolated.
    extrapolates: ClassVar[bool] = True

    source: Input
    centre: float
    scale: float

    @property
    def n_features(self) -> int:
        return 1

    @property
    def inputs(self) -> tuple[str, ...]:
        return input_sources(self.source)

    def values(self, data: Columns, n_rows: int) -> FloatArray:
        x = read_input(data, self.source)
        if x is None:
            return np.zeros((n_rows, 1), dtype=np.float64)
        if n_rows == 1 and x.shape[0] == 1:
            return np.array([self._values_one(float(x[0]))], dtype=np.float64)
        if x.shape[0] != n_rows:
            x = np.broadcast_to(x, (n_rows,))
        z = (x - self.centre) / self.scale
        if not np.isfinite(z).all():
            z = np.where(np.isfinite(z), z, 0.0)
        return z.reshape(n_rows, 1)

    def values_one(self, reading: OneReading) -> list[float]:
        """:meth:`values` of one reading, in Python floats."""
        x = reading.value(self.source)
        return [0.0] if x is None else self._values_one(x)

    def _values_one(self, x: float) -> list[float]:
        z = (x - self.centre) / self.scale
        return [z] if math.isfinite(z) else [0.0]

    def missing(self, data: Columns, n_rows: int) -> NDArray[np.bool_] | None:
        """Rows whose value is absent or not finite; ``None`` if there are none."""
        return _missing(read_input(data, self.source), n_rows)


def _missing(x: FloatArray | None, n_rows: int) -> NDArray[np.bool_] | None:
    if x is None:
        return np.ones(n_rows, dtype=np.bool_)
    # A sum is finite only if every value is; the mask is built only when needed.
    if math.isfinite(float(x.sum())):
        return None
    return np.broadcast_to(~np.isfinite(x), (n_rows,))


Modulator = Harmonics | Centred


@dataclass(frozen=True)
class ModulatedSpline:
    """A coarse spline of one input multiplied by a modulator (angle or centred value).

    Lets the effect of, say, wind direction change with wind speed: features are the
    outer product of the spline basis and the modulator's features. The modulator's
    inputs are optional: a reading assimilated without them has zero modulator features
    (its reference value), and a prediction without them is marginalised over the
    readings assimilated (:class:`~twinweave.models.BayesianBasisRegression`).
    """

    spline: SplineTerm
    modulator: Modulator

    @property
    def n_features(self) -> int:
        return self.spline.n_features * self.modulator.n_features

    @property
    def required(self) -> bool:
        return False

    @property
    def inputs(self) -> tuple[str, ...]:
        return unique((*self.spline.inputs, *self.modulator.inputs))

    @property
    def width(self) -> int:
        return self.spline.width * self.modulator.n_features

    def local_design(self, data: Columns, n_rows: int) -> tuple[NDArray[np.intp], FloatArray]:
        # Feature (spline i, modulator k) is column i * m + k, so the spline's window
        # [s, s + 4) becomes the contiguous columns [s * m, (s + 4) * m).
        segment, weights = self.spline.local_design(data, n_rows)
        mod = self.modulator.values(data, n_rows)
        m = self.modulator.n_features
        if n_rows == 1:
            return segment * m, np.multiply.outer(weights[0], mod[0]).reshape(1, self.width)
        # Built feature-major, (spline piece, modulator feature, row), then transposed.
        values = (weights.T[:, None, :] * mod.T[None, :, :]).reshape(self.width, n_rows)
        return segment * m, values.T

    def local_one(self, reading: OneReading) -> tuple[int, list[float]] | None:
        found = self.spline.local_one(reading)
        if found is None:
            return None
        segment, weights = found
        mod = self.modulator.values_one(reading)
        return segment * len(mod), [w * v for w in weights for v in mod]

    def design(self, data: Columns, n_rows: int) -> FloatArray:
        base = self.spline.design(data, n_rows)
        mod = self.modulator.values(data, n_rows)
        return (base[:, :, None] * mod[:, None, :]).reshape(n_rows, self.n_features)

    def penalty(self, smoothing: float, ridge: float) -> FloatArray:
        # Smooth along the spline for each modulator feature; shrink the rest.
        along = self.spline.penalty(smoothing, ridge)
        return np.asarray(np.kron(along, np.eye(self.modulator.n_features)), dtype=np.float64)


def design_matrix(terms: tuple[BasisTerm, ...], data: Columns, n_rows: int) -> FloatArray:
    """Concatenate the feature blocks of ``terms``."""
    blocks = [term.design(data, n_rows) for term in terms]
    return blocks[0] if len(blocks) == 1 else np.hstack(blocks)


def block_diagonal(blocks: list[FloatArray]) -> FloatArray:
    size = sum(b.shape[0] for b in blocks)
    out = np.zeros((size, size), dtype=np.float64)
    start = 0
    for block in blocks:
        stop = start + block.shape[0]
        out[start:stop, start:stop] = block
        start = stop
    return out


def canonical_text(value: object) -> str:
    """``value`` as text that is the same in every process and run: what a basis
    fingerprint (:attr:`~twinweave.models.BayesianBasisRegression.basis_fingerprint`)
    digests.

    Numbers as the shortest text of their float (``0`` and ``0.0`` alike, equal bits
    give equal text), strings quoted, sequences and frozen dataclasses (the terms) field
    by field under their class's name, functions by module and qualified name (lambdas
    alike). A :class:`DerivedInput` is known by its class, name and source columns, and
    if a dataclass by its fields, less those its class lists in ``site_settings``: those
    (a site's pressure for a density-normalised wind speed) differ between twins whose
    weights mean the same. Any other object gives its class's name (and ``n_features``
    if it has them): never its ``id``, nor ``hash()`` of a string, which Python salts
    per process.
    """
    if value is None:
        return "None"
    if isinstance(value, bool | np.bool_):
        return repr(bool(value))
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value))
    if isinstance(value, np.ndarray):
        return canonical_text(value.tolist())
    if isinstance(value, tuple | list):
        return "(" + ", ".join(canonical_text(item) for item in value) + ")"
    name = type(value).__name__
    if callable(value) and hasattr(value, "__name__") and not isinstance(value, DerivedInput):
        qualified = getattr(value, "__qualname__", value.__name__)
        return f"{getattr(value, '__module__', None) or name}.{qualified}"
    fields = ""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        left_out = set(getattr(value, "site_settings", ()))
        fields = ", ".join(
            f"{field.name}={canonical_text(getattr(value, field.name))}"
            for field in dataclasses.fields(value)
            if field.name not in left_out
        )
    if isinstance(value, DerivedInput):
        known = f"name={value.name!r}, sources={canonical_text(tuple(value.sources))}"
        return f"{name}({known}{', ' + fields if fields else ''})"
    if fields or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return f"{name}({fields})"
    size = getattr(value, "n_features", None)
    return name if size is None else f"{name}(n_features={canonical_text(size)})"
