"""The transfer benchmark's summary: one result per history and metric, targets judged."""

from __future__ import annotations

from benchmarks.transfer import summarise

from twinweave.transfer import TransferRow


def row(
    history: str, method: str, nmse: float, coverage: float, width: float, asset_id: str = "T1"
) -> TransferRow:
    return TransferRow(
        asset_id=asset_id,
        history=history,
        method=method,
        n_readings=10,
        n_evaluated=100,
        nmse=nmse,
        crps=100 * nmse,
        joint_log_likelihood=-5.0 - nmse,
        coverage=coverage,
        interval_width=width,
        n_rounds=0,
    )


def test_partial_pooling_is_judged_against_the_right_baseline() -> None:
    rows = [
        row("no data", "partial pooling", 0.02, 0.9, 150.0),
        row("no data", "no pooling", 0.3, 1.0, 1400.0),
        row("no data", "complete pooling", 0.015, 0.85, 110.0),
        row("1 day", "partial pooling", 0.02, 0.88, 120.0),
        row("1 day", "no pooling", 0.2, 0.80, 600.0),
        row("1 day", "complete pooling", 0.015, 0.85, 110.0),
        row("1 year", "partial pooling", 0.0170, 0.85, 110.0),
        row("1 year", "no pooling", 0.0160, 0.85, 110.0),
        row("1 year", "complete pooling", 0.0140, 0.85, 110.0),
    ]
    results = {r.name: r for r in summarise(rows)}
    day = results["NMSE, 1 day, worst turbine: partial - no pooling"]
    assert day.met is True and day.value is not None and day.value < 0
    assert results["|90 % coverage - 0.9|, 1 day, worst turbine: partial - no pooling"].met
    assert results["joint log-likelihood, 1 day, worst turbine: partial - no pooling"].met
    # At a year the better baseline is complete pooling, and 0.017 is not within 5 %.
    year = results["NMSE, 1 year, worst turbine: partial - better baseline"]
    assert year.met is False
    assert year.value == 0.0170 - 0.0140 - 0.05 * 0.0140
    width = results["no data: 90 % interval width, partial / complete pooling"]
    assert width.met is True and width.ratio is not None and width.ratio > 1.3


def test_every_turbine_must_meet_the_target_not_their_average() -> None:
    # T1 gains much, T2 loses a little: better on average, not at every turbine.
    rows = [
        row("1 week", "partial pooling", 0.02, 0.90, 120.0, "T1"),
        row("1 week", "no pooling", 0.20, 0.70, 600.0, "T1"),
        row("1 week", "complete pooling", 0.02, 0.85, 110.0, "T1"),
        row("1 week", "partial pooling", 0.02, 0.70, 120.0, "T2"),
        row("1 week", "no pooling", 0.20, 0.80, 600.0, "T2"),
        row("1 week", "complete pooling", 0.02, 0.85, 110.0, "T2"),
    ]
    results = {r.name: r for r in summarise(rows)}
    coverage = results["|90 % coverage - 0.9|, 1 week, worst turbine: partial - no pooling"]
    assert coverage.met is False
    assert coverage.value is not None and abs(coverage.value - 0.1) < 1e-12
    assert "worst T2" in coverage.note
    assert results["NMSE, 1 week, worst turbine: partial - no pooling"].met is True
