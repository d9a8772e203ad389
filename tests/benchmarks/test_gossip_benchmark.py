"""The gossip benchmark on tiny inputs, for correctness only: no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import gossip


def test_gossip_benchmark_reports_every_number() -> None:
    timed, lossy, table = gossip.run(
        n_twins=60, n_values=20, n_values_lossy=10, table_sizes=(20, 40), seed=1
    )
    assert timed.value is not None and timed.value > 0 and timed.met is not None
    assert timed.details["converged"] and timed.details["relative_error"] < 1e-6
    # Beside the plain push-sum the twins run without the gap: fewer rounds, one answer.
    plain = timed.details["plain"]
    assert plain["converged"] and plain["relative_error"] < 1e-6 and plain["known_gap"] is None
    assert timed.details["rounds"] < plain["rounds"] and timed.ratio is not None
    assert lossy.details["lossy"]["relative_error"] < 1e-6
    # Lost messages cost rounds, never accuracy.
    assert lossy.value is not None and lossy.value > lossy.details["lossless"]["rounds"]
    rows = table.details["rows"]
    assert len(rows) == 6 and all(r["rounds"] is not None for r in rows)
    assert all(r["rounds_accelerated"] < r["rounds"] for r in rows)
    assert table.value is not None and 0.8 < table.value < 1.2


def test_gossip_table_skips_what_would_take_too_long() -> None:
    rows = gossip.gap_table([30], max_rounds=500)
    ring = next(r for r in rows if r["graph"] == "ring")
    assert ring["rounds"] is None and ring["predicted_rounds"] > 500
    text = gossip.markdown(rows, "python -m benchmarks.gossip --sizes 30")
    assert "not run" in text and text.count("\n| ") == len(rows) + 1


def test_the_table_goes_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "GOSSIP.md"
    page.write_text(f"before\n{gossip.TABLE_START}\nold\n{gossip.TABLE_END}\nafter\n")
    gossip.write_docs("| new |", page)
    assert page.read_text() == f"before\n{gossip.TABLE_START}\n| new |\n{gossip.TABLE_END}\nafter\n"
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        gossip.write_docs("| new |", page)


def test_the_payload_is_a_fleet_summary() -> None:
    # One packed 93 x 93 symmetric matrix and the vectors: some thousands of numbers.
    assert 93 * 94 // 2 < gossip.summary_size() < 20_000


def test_the_fleet_fit_by_gossip_is_compared_with_the_central_fit() -> None:
    agreement = gossip.fleet_fit_agreement(20, "random 4-regular")
    assert agreement["converged"]
    assert agreement["gossip_rounds"] == agreement["central_rounds"]
    assert agreement["max_relative_difference"] < 1e-6
