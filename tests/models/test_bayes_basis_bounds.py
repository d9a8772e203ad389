"""The bounds' probabilities of BayesianBasisRegression: counted per noise bin, as
sufficient statistics, and predicted as a hurdle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from twinweave.core import CensoredNormal
from twinweave.models import BayesianBasisRegression, SplineTerm

EDGES = np.arange(0.0, 10.5, 1.0)
RATED = 100.0


def idle_share(speed: np.ndarray) -> np.ndarray:
    """The truth: a machine idles (reads exactly 0) mostly at low speed."""
    return np.clip(1.0 - speed / 3.0, 0.0, 1.0)


def readings(n: int, seed: int) -> dict[str, np.ndarray]:
    """Power that sits at 0 with :func:`idle_share` and at rated power above 8 units
    half of the time, otherwise a smooth curve with noise (clipped to the bounds)."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 10.0, n)
    power = np.clip(12.0 * speed + 5.0 * rng.standard_normal(n), 0.0, RATED)
    power = np.where(rng.random(n) < idle_share(speed), 0.0, power)
    power = np.where((speed > 8.0) & (rng.random(n) < 0.5), RATED, power)
    return {"speed": speed, "power": power}


def model(**changes: Any) -> BayesianBasisRegression:
    params: dict[str, Any] = {
        "target": "power",
        "terms": (SplineTerm("speed", 0.0, 10.0, 20),),
        "noise_source": "speed",
        "noise_edges": EDGES,
        "lower": 0.0,
        "upper": RATED,
        "units": "kW",
    }
    params.update(changes)
    return BayesianBasisRegression(**params)


def test_masses_are_the_shares_of_readings_at_the_bounds_per_bin() -> None:
    data = readings(60_000, seed=1)
    emulator = model().update(data)
    centres = EDGES[:-1] + 0.5
    predictive = emulator.predict({"speed": centres})
    assert predictive.is_hurdle
    bins = np.searchsorted(EDGES, data["speed"], side="right") - 1
    for j, centre in enumerate(centres):
        in_bin = bins == j
        at_zero = float(np.mean(data["power"][in_bin] == 0.0))
        at_rated = float(np.mean(data["power"][in_bin] == RATED))
        # The prior's 10 pseudo-readings among about 6,000 move a share by under 0.002.
        assert predictive.mass_at_lower[j] == pytest.approx(at_zero, abs=0.003), centre
        assert predictive.mass_at_upper[j] == pytest.approx(at_rated, abs=0.003), centre
    # The censored normal's masses are far off below cut-in (about one half at zero).
    censored = model(bound_masses=False).update(data).predict({"speed": centres})
    assert not censored.is_hurdle
    assert abs(censored.mass_at_lower[0] - predictive.mass_at_lower[0]) > 0.2


def coverage_gap(predictive: CensoredNormal, y: np.ndarray) -> float:
    """Covered readings minus the count the 90 % intervals claim, in standard errors."""
    lo, hi = predictive.interval(0.9)
    covered = (y >= lo) & (y <= hi)
    claimed = predictive.probability_between(lo, hi)
    return float((covered.sum() - claimed.sum()) / np.sqrt(np.sum(claimed * (1 - claimed))))


def censored_readings(n: int, seed: int) -> dict[str, np.ndarray]:
    """Power from a censored normal: a Gaussian around a ramp, clipped to the bounds."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 10.0, n)
    power = np.clip(15.0 * speed - 10.0 + 8.0 * rng.standard_normal(n), 0.0, RATED)
    return {"speed": speed, "power": power}


@pytest.mark.parametrize("make", [readings, censored_readings])
def test_hurdle_scores_held_out_readings_better(make: Any) -> None:
    train, test = make(40_000, seed=2), make(20_000, seed=3)
    hurdle = model().update(train).predict({"speed": test["speed"]})
    censored = model(bound_masses=False).update(train).predict({"speed": test["speed"]})
    y = test["power"]
    assert hurdle.log_prob(y).mean() > censored.log_prob(y).mean() + 0.1


@pytest.mark.xfail(
    strict=True,
    reason="known limit: the latent Gaussian is fitted by least squares to the clipped "
    "readings, bound readings included, so near a bound the part between the bounds is "
    "too narrow and pulled towards the bound; its intervals there cover less than they "
    "claim (a Tobit fit would mend it, but needs a pass over the readings)",
)
@pytest.mark.parametrize("make", [readings, censored_readings])
def test_intervals_cover_what_they_claim_near_the_bounds(make: Any) -> None:
    train, test = make(40_000, seed=2), make(20_000, seed=3)
    predictive = model().update(train).predict({"speed": test["speed"]})
    assert abs(coverage_gap(predictive, test["power"])) < 4.0


@pytest.mark.parametrize("forgetting", [1.0, 0.999])
def test_streamed_counts_equal_the_batch(forgetting: float) -> None:
    data = readings(1_500, seed=4)
    batch = model(forgetting=forgetting).update(data)
    stream = model(forgetting=forgetting)
    for speed, power in zip(data["speed"], data["power"], strict=True):
        stream.update({"speed": float(speed), "power": float(power)})
    for name in ("count_lower_", "count_upper_"):
        np.testing.assert_allclose(getattr(stream, name), getattr(batch, name), rtol=1e-9)
    grid = {"speed": np.linspace(0.1, 9.9, 50)}
    np.testing.assert_allclose(
        stream.predict(grid).mass_at_lower, batch.predict(grid).mass_at_lower, rtol=1e-9
    )


def test_counts_survive_a_round_trip_and_old_states_fall_back_to_the_tails() -> None:
    emulator = model().update(readings(5_000, seed=5))
    grid = {"speed": np.linspace(0.1, 9.9, 50)}
    restored = BayesianBasisRegression.from_state(emulator.get_params(), emulator.state())
    np.testing.assert_array_equal(
        restored.predict(grid).mass_at_lower, emulator.predict(grid).mass_at_lower
    )
    old = {k: v for k, v in emulator.state().items() if not k.startswith("count_")}
    old["count_"] = emulator.state()["count_"]
    legacy = BayesianBasisRegression.from_state(emulator.get_params(), old).predict(grid)
    tails = CensoredNormal(legacy.loc, legacy.latent_var, lower=0.0, upper=RATED)
    # The tails, floored at the smallest normal double (never exactly impossible).
    tiny = np.finfo(np.float64).tiny
    for mass, tail in (
        (legacy.mass_at_lower, tails.mass_at_lower),
        (legacy.mass_at_upper, tails.mass_at_upper),
    ):
        np.testing.assert_allclose(mass, np.maximum(tail, tiny), rtol=1e-12)


def test_without_finite_bounds_there_is_no_hurdle() -> None:
    data = readings(2_000, seed=6)
    free = model(lower=-np.inf, upper=np.inf).update(data).predict({"speed": [1.0, 5.0]})
    assert not free.is_hurdle


def test_bad_prior_count_is_named() -> None:
    with pytest.raises(ValueError, match="bound_prior_count: expected a number > 0"):
        model(bound_prior_count=0.0)


def test_readings_beyond_a_bound_are_assimilated_as_at_it() -> None:
    # Raw SCADA power dips below 0 (auxiliary draw when idle) and overshoots rated.
    data = readings(3_000, seed=7)
    rng = np.random.default_rng(8)
    raw = data["power"].copy()
    raw[raw == 0.0] -= rng.uniform(0.0, 30.0, int(np.sum(raw == 0.0)))
    raw[raw == RATED] += rng.uniform(0.0, 5.0, int(np.sum(raw == RATED)))
    assert raw.min() < 0.0 and raw.max() > RATED
    unclipped = {"speed": data["speed"], "power": raw}
    expected = model().update(data)
    batch = model().update(unclipped)
    one_at_a_time = model()
    for speed, power in zip(data["speed"][:500], raw[:500], strict=True):
        one_at_a_time.update({"speed": float(speed), "power": float(power)})
    one_at_a_time.update({"speed": data["speed"][500:], "power": raw[500:]})
    for name in ("gram_", "moment_", "sum_sq_", "count_", "count_lower_", "count_upper_"):
        np.testing.assert_allclose(getattr(batch, name), getattr(expected, name), rtol=1e-12)
        np.testing.assert_allclose(
            getattr(one_at_a_time, name), getattr(expected, name), rtol=1e-9, atol=1e-9
        )
