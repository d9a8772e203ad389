"""The fleet figure draws what the fit predicts, per twin and per kind's new twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.report import fleet_figure
from twinweave.transfer import FleetPrior, TwinStatistics, fit_central

GRID = {"x": np.linspace(0.0, 1.0, 41)}


def emulator() -> BayesianBasisRegression:
    return BayesianBasisRegression(
        target="y",
        terms=(SplineTerm("x", 0.0, 1.0, 4),),
        noise_source="x",
        noise_edges=[0.0, 1.0],
        units="kW",
    )


def test_each_twin_and_each_kinds_new_twin_is_drawn_as_predicted(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    stats = {}
    for k, kind in enumerate(["A", "A", "A", "B", "B"]):
        x = rng.uniform(0.0, 1.0, 400)
        slope = (1.0 if kind == "A" else 2.0) + 0.1 * rng.standard_normal()
        model = emulator().update({"x": x, "y": slope * x + rng.normal(0.0, 0.05, 400)})
        stats[f"T{k}"] = TwinStatistics.from_emulator(model, kind)
    fleet = fit_central(stats, FleetPrior.from_emulator(emulator()))
    figure = fleet_figure(fleet, emulator(), GRID, x="x", level=0.8)
    traces = {trace.name: trace for trace in figure.data if trace.name}
    for twin in stats:
        median = fleet.predict(twin, GRID, emulator()).quantile(0.5).ravel()
        np.testing.assert_array_equal(traces[twin].y, median, err_msg=twin)
    for kind in ("A", "B"):
        new = fleet.predict(None, GRID, emulator(), kind=kind)
        np.testing.assert_array_equal(
            traces[f"a new twin of {kind!r}: median"].y, new.quantile(0.5).ravel()
        )
        lo, hi = new.interval(0.8)
        band = traces[f"a new twin of {kind!r}: 80 % interval"]
        np.testing.assert_array_equal(band.y, lo)
        # The band is filled up to the trace before it: the upper end.
        upper = figure.data[list(figure.data).index(band) - 1]
        np.testing.assert_array_equal(upper.y, hi)
        assert band.fill == "tonexty"
    assert figure.layout.yaxis.title.text == "predicted median [kW]"
    # A page that needs no network.
    page = tmp_path / "fleet.html"
    figure.write_html(page, include_plotlyjs=True)
    text = page.read_text()
    assert "<script src=" not in text and "a new twin of 'B': median" in text


def test_the_column_to_draw_along_must_be_in_the_inputs() -> None:
    x = np.random.default_rng(0).uniform(0.0, 1.0, 100)
    model = emulator().update({"x": x, "y": x})
    fleet = fit_central(
        {"T0": TwinStatistics.from_emulator(model)}, FleetPrior.from_emulator(model)
    )
    with pytest.raises(KeyError, match=r"inputs: expected the column x='wind_speed', got \['x'\]"):
        fleet_figure(fleet, emulator(), GRID)
