"""How long a turbine twin should remember: the forgetting factor, chosen from data.

A twin's forgetting factor ``lambda`` discounts each reading by ``lambda`` per newer
reading, so the twin remembers about ``1 / (1 - lambda)`` readings. A long memory averages
more readings; a short one follows the turbine as it drifts (a changed anemometer, a
controller update, seasons). Which is better is an empirical question about the turbine,
answered here as a twin is used: by prequential evaluation (Dawid 1984, "Present position
and potential developments: some personal views. Statistical theory: the prequential
approach", JRSS A 147:278-292). Each candidate twin is fitted on the first part of the
training period and then predicts each coming week before it assimilates it, through the
rest; the log score of those predictions is what the memories are compared on.

Among memories whose mean log score is within one standard error of the best, the
longest is chosen (the one-standard-error rule: Hastie, Tibshirani and Friedman 2009,
*The Elements of Statistical Learning*, 2nd ed., section 7.10): it averages most. The
standard error of a difference in mean log score comes from daily batch means (Schmeiser
1982, "Batch size effects in the analysis of simulation output", Operations Research
30:556-568), since 10-minute log scores are strongly autocorrelated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twinweave.domains.wind._fleet import (
    TurbineSpec,
    build_turbine_twin,
    live_predictions,
    model_inputs,
)

#: Candidate memories [readings]: none (``inf``), a year, then halving down to ~11 days.
MEMORIES: tuple[float, ...] = (math.inf, 52_560.0, 26_280.0, 13_140.0, 6_570.0, 3_285.0, 1_642.5)


def forgetting_for(memory: float) -> float:
    """Forgetting factor that remembers about ``memory`` readings (``inf``: 1.0)."""
    if not memory > 1.0:
        raise ValueError(f"memory: expected more than 1 reading, got {memory}")
    return 1.0 if math.isinf(memory) else 1.0 - 1.0 / memory


@dataclass(frozen=True)
class MemoryScore:
    """Prequential score of one candidate memory, pooled over the turbines.

    Attributes
    ----------
    memory
        Readings remembered (``inf``: no forgetting).
    forgetting
        The forgetting factor [-].
    log_score
        Mean log predictive density of the week-ahead predictions [nats per reading].
    difference
        ``log_score`` minus the best candidate's [nats per reading] (0 for the best).
    standard_error
        Standard error of ``difference`` from daily batch means [nats per reading].
    crps
        Mean CRPS of the week-ahead predictions [kW], for comparison (not used to choose).
    coverage90
        Coverage of the central 90 % intervals of the week-ahead predictions.
    n_readings
        Readings scored.
    """

    memory: float
    forgetting: float
    log_score: float
    difference: float
    standard_error: float
    crps: float
    coverage90: float
    n_readings: int


@dataclass(frozen=True)
class MemorySelection:
    """The chosen forgetting factor and every candidate's score."""

    forgetting: float
    memory: float
    scores: tuple[MemoryScore, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, with a ``chosen`` column."""
        frame = pd.DataFrame([s.__dict__ for s in self.scores])
        frame["chosen"] = frame["memory"] == self.memory
        return frame


def select_forgetting(
    specs: Mapping[str, TurbineSpec],
    observations: pd.DataFrame,
    *,
    validate_from: pd.Timestamp,
    until: pd.Timestamp,
    memories: Sequence[float] = MEMORIES,
    progress: Callable[[str], None] | None = None,
) -> MemorySelection:
    """Choose one forgetting factor for a fleet's twins by prequential log score.

    Every turbine's twin is fitted on its readings before ``validate_from``, then
    predicts each week from ``validate_from`` to ``until`` before assimilating it
    (:func:`~twinweave.domains.wind.live_predictions`). The log scores of all turbines
    are pooled; the longest memory within one standard error of the best is chosen.

    Parameters
    ----------
    specs
        The turbines, by name (``asset_id`` in ``observations``).
    observations
        Cleaned readings of the turbines (``asset_id``, ``time``, ``power`` and the
        emulator's inputs).
    validate_from, until
        The period scored; only readings before ``until`` are used at all.
    memories
        Candidate memories [readings]; ``inf`` for no forgetting.
    progress
        Called with a line of text per candidate.

    Returns
    -------
    MemorySelection

    Raises
    ------
    ValueError
        If a turbine has no readings before ``validate_from`` or none to score.
    """
    if not validate_from < until:
        raise ValueError(
            f"validate_from: expected a time before until ({until.isoformat()}), got "
            f"{validate_from.isoformat()}"
        )
    if not memories:
        raise ValueError("memories: expected at least one candidate, got none")
    periods: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for asset_id in specs:
        mine = observations[observations["asset_id"] == asset_id]
        fit = mine[mine["time"] < validate_from]
        scored = mine[(mine["time"] >= validate_from) & (mine["time"] < until)]
        if fit.empty or scored.empty:
            raise ValueError(
                f"asset {asset_id!r}: expected readings both before {validate_from.isoformat()}"
                f" and from then until {until.isoformat()}, got {len(fit)} and {len(scored)}"
            )
        periods[asset_id] = (fit, scored)

    # Batch means over days (pooled across turbines): one mean difference per day. The
    # scored readings are the same for every candidate, in the same order.
    day_codes = pd.factorize(
        np.concatenate([scored["time"].dt.floor("1D").to_numpy() for _, scored in periods.values()])
    )[0]
    log_scores: list[np.ndarray] = []
    crps: list[float] = []
    covered: list[float] = []
    for memory in memories:
        forgetting = forgetting_for(memory)
        parts, crps_parts, hits = [], [], []
        for asset_id, spec in specs.items():
            fit, scored = periods[asset_id]
            twin = build_turbine_twin(spec, fit, forgetting=forgetting)
            twin.update(model_inputs(fit, spec.rated_power))
            predictive = live_predictions(twin, scored, spec.rated_power)
            y = np.clip(scored["power"].to_numpy(np.float64), 0.0, spec.rated_power)
            low, high = predictive.interval(0.9)
            parts.append(predictive.log_prob(y))
            crps_parts.append(predictive.crps(y))
            hits.append((y >= low) & (y <= high))
        log_scores.append(np.concatenate(parts))
        crps.append(float(np.concatenate(crps_parts).mean()))
        covered.append(float(np.concatenate(hits).mean()))
        if progress is not None:
            progress(
                f"memory {memory:g} readings: log score {log_scores[-1].mean():.4f} nats/reading"
            )
    means = np.array([s.mean() for s in log_scores])
    best = int(np.argmax(means))
    scores: list[MemoryScore] = []
    for memory, values, mean_crps, coverage in zip(
        memories, log_scores, crps, covered, strict=True
    ):
        difference = values - log_scores[best]
        daily = np.bincount(day_codes, difference) / np.bincount(day_codes)
        error = float(daily.std(ddof=1) / math.sqrt(daily.size)) if daily.size > 1 else 0.0
        scores.append(
            MemoryScore(
                memory=float(memory),
                forgetting=forgetting_for(memory),
                log_score=float(values.mean()),
                difference=float(difference.mean()),
                standard_error=error,
                crps=mean_crps,
                coverage90=coverage,
                n_readings=int(values.size),
            )
        )
    eligible = [s for s in scores if s.difference >= -s.standard_error]
    chosen = max(eligible, key=lambda s: s.memory)
    return MemorySelection(chosen.forgetting, chosen.memory, tuple(scores))
