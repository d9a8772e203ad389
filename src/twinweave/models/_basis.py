"""Basis functions for regression emulators: cubic B-splines and their modulations.

A term turns input columns into a block of features. Terms are small frozen objects
(a type checker sees them; no string dispatch) and are combined additively by
:class:`~twinweave.models.BayesianBasisRegression`.

Cubic B-splines on uniform knots follow de Boor, *A Practical Guide to Splines* (1978);
the second-difference roughness penalty is the P-spline of Eilers and Marx (1996),
doi:10.1214/ss/1038425655.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Columns = Mapping[str, ArrayLike]


@runtime_checkable
class DerivedInput(Protocol):
    """An input computed from other columns (for example density-normalised wind speed).

    Returns ``None`` when the columns it needs are absent.
    """

    @property
    def name(self) -> str: ...

    def __call__(self, data: Columns) -> FloatArray | None: ...


Input = str | DerivedInput


def read_input(data: Columns, source: Input) -> FloatArray | None:
    """Evaluate ``source`` on ``data``: a column by name, or a derived input."""
    if isinstance(source, str):
        if source not in data:
            return None
        return np.atleast_1d(np.asarray(data[source], dtype=np.float64))
    return source(data)


def input_name(source: Input) -> str:
    return source if isinstance(source, str) else source.name


@runtime_checkable
class BasisTerm(Protocol):
    """A block of features computed from the inputs."""

    @property
    def n_features(self) -> int: ...

    @property
    def required(self) -> bool:
        """Whether predictions need this term's inputs (else missing means zero)."""
        ...

    def design(self, data: Columns, n_rows: int) -> FloatArray:
        """Feature block, shape ``(n_rows, n_features)``."""
        ...

    def penalty(self, smoothing: float, ridge: float) -> FloatArray:
        """Prior precision of this block's weights, ``(n_features, n_features)``."""
        ...


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

    def locate(self, x: FloatArray) -> tuple[NDArray[np.intp], FloatArray]:
        """Segment index and position within it, for clamped ``x``."""
        width = (self.upper - self.lower) / self.n_segments
        position = (np.clip(x, self.lower, self.upper) - self.lower) / width
        segment = np.minimum(position.astype(np.intp), self.n_segments - 1)
        return segment, position - segment

    def design(self, data: Columns, n_rows: int) -> FloatArray:
        x = read_input(data, self.source)
        if x is None:
            raise KeyError(
                f"missing input {input_name(self.source)!r}: the spline term needs it; "
                f"got columns {sorted(data)}"
            )
        if x.shape[0] != n_rows:
            x = np.broadcast_to(x, (n_rows,))
        segment, u = self.locate(x)
        u2 = u * u
        u3 = u2 * u
        weights = np.empty((n_rows, 4), dtype=np.float64)
        weights[:, 0] = (1.0 - 3.0 * u + 3.0 * u2 - u3) / 6.0
        weights[:, 1] = (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0
        weights[:, 2] = (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0
        weights[:, 3] = u3 / 6.0
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

    Each feature averages to zero over a full turn, so an absent angle (features zero)
    predicts the direction-averaged response.
    """

    source: Input
    n_harmonics: int = 2

    @property
    def n_features(self) -> int:
        return 2 * self.n_harmonics

    def values(self, data: Columns, n_rows: int) -> FloatArray:
        angle = read_input(data, self.source)
        out = np.zeros((n_rows, self.n_features), dtype=np.float64)
        if angle is None:
            return out
        theta = np.deg2rad(np.broadcast_to(angle, (n_rows,)))
        for k in range(self.n_harmonics):
            out[:, 2 * k] = np.sin((k + 1) * theta)
            out[:, 2 * k + 1] = np.cos((k + 1) * theta)
        return np.nan_to_num(out, nan=0.0)


@dataclass(frozen=True)
class Centred:
    """A linear feature ``(x - centre) / scale``; absent or NaN means zero (the centre)."""

    source: Input
    centre: float
    scale: float

    @property
    def n_features(self) -> int:
        return 1

    def values(self, data: Columns, n_rows: int) -> FloatArray:
        x = read_input(data, self.source)
        if x is None:
            return np.zeros((n_rows, 1), dtype=np.float64)
        z = (np.broadcast_to(x, (n_rows,)) - self.centre) / self.scale
        return np.nan_to_num(z, nan=0.0).reshape(n_rows, 1)


Modulator = Harmonics | Centred


@dataclass(frozen=True)
class ModulatedSpline:
    """A coarse spline of one input multiplied by a modulator (angle or centred value).

    Lets the effect of, say, wind direction change with wind speed: features are the
    outer product of the spline basis and the modulator's features. The modulator's
    inputs are optional: missing values contribute nothing.
    """

    spline: SplineTerm
    modulator: Modulator

    @property
    def n_features(self) -> int:
        return self.spline.n_features * self.modulator.n_features

    @property
    def required(self) -> bool:
        return False

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
