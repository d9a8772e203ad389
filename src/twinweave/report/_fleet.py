"""A fleet fit at a glance: each twin's curve and what a new twin would start from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from twinweave.core import GLOSSARY, Columns
from twinweave.report._figures import TURBINE_COLOURS, _layout, add_band

if TYPE_CHECKING:
    from twinweave.transfer import Design, FleetPosterior

#: Bands of new twins, one per kind: greys, so the twins' colours stay theirs.
KIND_BANDS = ("rgba(90, 90, 90, 0.18)", "rgba(140, 86, 75, 0.18)", "rgba(23, 190, 207, 0.18)")
KIND_LINES = ("#555555", "#8c564b", "#17becf")


def fleet_figure(
    fleet: FleetPosterior,
    design: Design,
    inputs: Columns,
    *,
    x: str = "wind_speed",
    level: float = 0.9,
) -> Any:
    """Each twin's predicted curve over ``inputs``, and for each kind the curve and central
    ``level`` interval of a new twin of it (:meth:`FleetPosterior.predict` with no twin).

    A curve is the predictive median: the latent curve clipped to the bounds. (The mean
    of a predictive censored at a bound rises with its variance there, and so would
    draw how unsure a twin is as a bend in its curve.) A fitted twin's curve lies in
    its kind's band where its readings agree with the fleet; the band's width is the
    spread a new twin should expect, between-twin differences and noise together.

    Parameters
    ----------
    fleet
        A fit (:func:`~twinweave.transfer.fit_central`, :func:`~twinweave.transfer.no_pooling`,
        :func:`~twinweave.transfer.complete_pooling`).
    design
        The twins' emulator, as for :meth:`FleetPosterior.predict`.
    inputs
        The points to draw the curves through, with column ``x``; the other columns the
        emulator reads, if any, held as given.
    x
        The column on the horizontal axis.
    level
        Probability of the new twins' central intervals.

    Returns
    -------
    plotly.graph_objects.Figure
        Write it with ``.write_html(path, include_plotlyjs=True)`` for a page that needs
        no network.
    """
    if x not in inputs:
        raise KeyError(f"inputs: expected the column x={x!r}, got {sorted(inputs)}")
    along = np.asarray(inputs[x], dtype=np.float64)
    units = design.units
    figure = go.Figure()
    for k, kind in enumerate(fleet.new_twin):
        predictive = fleet.predict(None, inputs, design, kind=kind)
        lo, hi = predictive.interval(level)
        band, line = KIND_BANDS[k % len(KIND_BANDS)], KIND_LINES[k % len(KIND_LINES)]
        name = f"a new twin of {kind!r}"
        add_band(figure, along, lo, hi, band, f"{name}: {round(100 * level)} % interval")
        figure.add_trace(
            go.Scatter(
                x=along,
                y=predictive.quantile(0.5).ravel(),
                mode="lines",
                line={"color": line, "width": 3, "dash": "dash"},
                name=f"{name}: median",
                hovertemplate=f"%{{x:.3g}}: %{{y:.4g}} {units}<extra>{name}</extra>",
            )
        )
    for k, (twin, posterior) in enumerate(fleet.twins.items()):
        figure.add_trace(
            go.Scatter(
                x=along,
                y=posterior.predict(inputs, design).quantile(0.5).ravel(),
                mode="lines",
                line={"color": TURBINE_COLOURS[k % len(TURBINE_COLOURS)], "width": 1.5},
                name=str(twin),
                hovertemplate=f"%{{x:.3g}}: %{{y:.4g}} {units}<extra>%{{fullData.name}}</extra>",
            )
        )
    x_unit = GLOSSARY[x][0] if x in GLOSSARY else ""
    x_title = f"{x.replace('_', ' ')} [{x_unit}]" if x_unit else x
    return _layout(figure, 480, xaxis_title=x_title, yaxis_title=f"predicted median [{units}]")
