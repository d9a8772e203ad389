"""The windowed assimilation and prediction of BayesianBasisRegression equal the dense
formulas they replace: per-bin Gram matrices and moments from the full design matrix,
predictive means and variances from the full posterior covariance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from twinweave.core import Columns
from twinweave.domains.wind import power_curve_emulator
from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.models._basis import read_input
from twinweave.models._bayes_basis import _CHUNK_ROWS

# More rows than one pass of a batch update handles, so chunks are exercised.
N_LARGE = _CHUNK_ROWS + 7_000


def _readings(n: int, seed: int = 0, *, missing: float = 0.05) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 27.0, n)  # beyond the knots (a negative speed is refused)
    power = np.clip(2050 / (1 + np.exp(-(speed - 8.0))) + rng.normal(0, 40, n), 0, 2050)
    temp = rng.normal(10.0, 8.0, n)
    temp[rng.random(n) < missing] = np.nan  # missing temperatures: zero features
    return {
        "wind_speed": speed,
        "power": power,
        "temp_air": temp,
        "wind_direction": rng.uniform(-30.0, 400.0, n),
    }


def _dense_statistics(
    model: BayesianBasisRegression, batches: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    features = np.vstack([model.design(b)[0] for b in batches])
    bins = np.concatenate([model.design(b)[1] for b in batches])
    y = np.concatenate([np.atleast_1d(b["power"]) for b in batches])
    weights = model.forgetting ** np.arange(len(y) - 1, -1, -1)
    gram = np.zeros((model.n_bins, model.n_features, model.n_features))
    moment = np.zeros((model.n_bins, model.n_features))
    for j in range(model.n_bins):
        rows = bins == j
        xw = features[rows] * weights[rows, None]
        gram[j] = xw.T @ features[rows]
        moment[j] = xw.T @ y[rows]
    count = np.bincount(bins, weights, minlength=model.n_bins)
    return {"gram": gram, "moment": moment, "count": count}


@pytest.mark.parametrize("forgetting", [1.0, 1 - 1 / 20_000])
def test_statistics_equal_the_dense_formulas(forgetting: float) -> None:
    model = power_curve_emulator(2050.0, forgetting=forgetting)
    big, small = _readings(N_LARGE, seed=1), _readings(300, seed=2)
    singles: list[dict[str, Any]] = [{k: v[i : i + 1] for k, v in small.items()} for i in range(50)]
    singles += [{k: float(v[i]) for k, v in small.items()} for i in range(50, 100)]
    model.update(big).update(small)
    for reading in singles:
        model.update(reading)
    expected = _dense_statistics(model, [big, small, *singles])
    got = model.statistics()
    for name in ("gram", "moment", "count"):
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12 * scale)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_one_reading_has_the_features_of_its_row_in_a_batch() -> None:
    model = power_curve_emulator(2050.0)
    batch = _readings(500, seed=3)
    batch["wind_direction"][:3] = [np.nan, np.inf, -720.0]
    features, bins = model.design(batch)
    for i in range(len(batch["power"])):
        one, one_bin = model.design({k: v[i : i + 1] for k, v in batch.items()})
        # The one-reading path does the same IEEE operations in Python floats.
        np.testing.assert_array_equal(one[0], features[i])
        assert one_bin[0] == bins[i]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_one_reading_adds_exactly_its_row_of_a_batch() -> None:
    batch = _readings(60, seed=10)
    batch["wind_direction"][:3] = [np.nan, np.inf, -720.0]
    template = power_curve_emulator(2050.0)
    features, bins = template.design(batch)
    for i in range(len(batch["power"])):
        as_floats = {k: float(v[i]) for k, v in batch.items()}
        as_arrays = {k: v[i : i + 1] for k, v in batch.items()}
        for reading in (as_floats, as_arrays):
            stats = power_curve_emulator(2050.0).update(reading).statistics()
            # A single product each, so the one-reading path must give the same bits.
            np.testing.assert_array_equal(
                stats["gram"][bins[i]], np.outer(features[i], features[i])
            )
            np.testing.assert_array_equal(stats["moment"][bins[i]], batch["power"][i] * features[i])
            assert stats["count"][bins[i]] == 1.0
            stats["gram"][bins[i]] = 0.0
            assert not stats["gram"].any(), "a bin other than the reading's changed"


def test_predictions_equal_the_dense_formulas() -> None:
    model = power_curve_emulator(2050.0).update(_readings(20_000, seed=4))
    # Every input present: absent ones are marginalised (test_bayes_basis_marginal.py).
    inputs = _readings(N_LARGE, seed=5, missing=0.0)
    features, bins = model.design(inputs)
    predictive = model.predict(inputs)
    covariance = model.posterior_covariance_
    latent_var = model.noise_var_[bins] + np.einsum("ij,jk,ik->i", features, covariance, features)
    np.testing.assert_allclose(predictive.loc, features @ model.posterior_mean_, atol=1e-9)
    np.testing.assert_allclose(predictive.latent_var, latent_var, rtol=1e-10)


def test_a_bad_reading_in_a_late_chunk_changes_nothing() -> None:
    model = power_curve_emulator(2050.0).update(_readings(1_000, seed=6))
    before = model.state()
    bad = _readings(N_LARGE, seed=7)
    bad["power"][N_LARGE - 10] = np.nan
    with pytest.raises(ValueError, match=f"row {N_LARGE - 10}: expected finite power"):
        model.update(bad)
    after = model.state()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value)


def test_a_missing_wind_speed_is_named_not_an_index_error() -> None:
    model = power_curve_emulator(2050.0)
    readings = _readings(10, seed=8)
    readings["wind_speed"][4] = np.nan
    with pytest.raises(ValueError, match="row 4: expected finite power and inputs"):
        model.update(readings)
    with pytest.raises(ValueError, match="row 0: expected finite"):
        model.update({k: v[4:5] for k, v in readings.items()})


@dataclass(frozen=True)
class DenseRamp:
    """A term with no window structure: every row has every feature."""

    source: str

    @property
    def n_features(self) -> int:
        return 2

    @property
    def required(self) -> bool:
        return False

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)

    def design(self, data: Columns, n_rows: int) -> np.ndarray:
        x = read_input(data, self.source)
        assert x is not None
        return np.column_stack([x, x * x]) / 100.0

    def penalty(self, smoothing: float, ridge: float) -> np.ndarray:
        return ridge * np.eye(2)


def test_terms_without_windows_are_accumulated_whole() -> None:
    model = BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 10.0, 10), DenseRamp("z")),
        noise_source="x",
        noise_edges=np.linspace(0.0, 10.0, 6),
    )
    rng = np.random.default_rng(9)
    data = {"x": rng.uniform(0, 10, 5_000), "z": rng.normal(0, 3, 5_000)}
    data["y"] = np.sin(data["x"]) + 0.1 * data["z"] + rng.normal(0, 0.1, 5_000)
    model.update(data).update({k: v[:1] for k, v in data.items()})
    both = [data, {k: v[:1] for k, v in data.items()}]
    features = np.vstack([model.design(b)[0] for b in both])
    bins = np.concatenate([model.design(b)[1] for b in both])
    expected = np.stack([features[bins == j].T @ features[bins == j] for j in range(5)])
    np.testing.assert_allclose(model.statistics()["gram"], expected, rtol=1e-12, atol=1e-9)
    predictive = model.predict(data)
    np.testing.assert_allclose(
        predictive.loc, model.design(data)[0] @ model.posterior_mean_, atol=1e-10
    )
