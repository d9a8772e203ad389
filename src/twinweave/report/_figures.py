"""Plotly figures of the demo report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import NDArray

from twinweave.report._results import (
    BIN_COVERAGE_TARGET,
    BRANCH_LABELS,
    MIN_BIN_READINGS,
    MIN_READINGS,
    SEEN_COLUMN,
    TurbineResult,
    WhatIfSummary,
    coverage_verdict,
)
from twinweave.report._summary import (
    alarm_flags,
    alarm_periods,
    coverage_by_wind_speed,
    daily_residuals,
    has_live_scores,
    n_scored,
    subsample_rows,
    unseen_runs,
)

TWIN = "#1f77b4"
TWIN_BAND = "rgba(31, 119, 180, 0.22)"
BASELINE = "#ff7f0e"
SCENARIO = "#2ca02c"
SCENARIO_BAND = "rgba(44, 160, 44, 0.2)"
OBSERVED = "rgba(90, 90, 90, 0.35)"
#: The twin's curve where it has no readings near: an extrapolation.
UNSEEN = "#8c8c8c"
UNSEEN_BAND = "rgba(140, 140, 140, 0.18)"
UNSEEN_SHADE = "rgba(120, 120, 120, 0.10)"
ALARM = "#d62728"
ALARM_SHADE = "rgba(214, 39, 40, 0.12)"
TARGET_SHADE = "rgba(44, 160, 44, 0.15)"
#: A bin's coverage on too few readings to judge: a hollow grey ring, filled white to
#: hide the line's dot beneath it.
TOO_FEW_MARKER = {"color": "white", "size": 10, "line": {"color": "#8c8c8c", "width": 2}}
TURBINE_COLOURS = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22")


def _layout(figure: Any, height: int, **kwargs: Any) -> Any:
    figure.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        # Filled areas would otherwise reverse the legend's order.
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "x": 0,
            "traceorder": "normal",
            "itemsizing": "constant",
        },
        **kwargs,
    )
    return figure


def _naive_utc(times: pd.Series) -> pd.DatetimeIndex:
    # Plotly draws naive timestamps as given; the axes say the times are UTC.
    return pd.DatetimeIndex(times).tz_convert("UTC").tz_localize(None)


def add_band(
    figure: Any, x: Any, lo: Any, hi: Any, colour: str, name: str, *, showlegend: bool = True
) -> None:
    """A filled interval: its upper edge, then its lower edge filled up to it."""
    figure.add_trace(
        go.Scatter(x=x, y=hi, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip")
    )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=lo,
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor=colour,
            name=name,
            legendgroup=name,
            showlegend=showlegend,
            hoverinfo="skip",
        )
    )


def _curve_segments(curve: pd.DataFrame) -> list[tuple[bool, pd.DataFrame]]:
    """The curve cut where the twin's having readings near (``seen``) changes, each
    piece with whether it is seen; an unseen piece takes the seen grid point before and
    after it, so the pieces join."""
    if SEEN_COLUMN not in curve.columns:
        return [(True, curve)]
    seen = np.asarray(curve[SEEN_COLUMN], dtype=np.bool_)
    cuts = np.flatnonzero(seen[1:] != seen[:-1]) + 1
    pieces = []
    for start, stop in zip(np.r_[0, cuts], np.r_[cuts, seen.size], strict=True):
        if seen[start]:
            pieces.append((True, curve.iloc[start:stop]))
        else:
            pieces.append((False, curve.iloc[max(start - 1, 0) : stop + 1]))
    return pieces


def _add_twin_curve(figure: Any, curve: pd.DataFrame) -> None:
    """The twin's 90 % band and mean: in its colours where it has readings near, dashed
    and grey where it extrapolates, over a grey shade with a label."""
    shown: set[bool] = set()
    for seen, piece in _curve_segments(curve):
        band = "twin 90 % interval" if seen else "twin 90 % interval, extrapolated"
        mean = "twin mean" if seen else "twin mean, extrapolated (no readings near)"
        add_band(
            figure,
            piece["wind_speed"],
            piece["q05"],
            piece["q95"],
            TWIN_BAND if seen else UNSEEN_BAND,
            band,
            showlegend=seen not in shown,
        )
        figure.add_trace(
            go.Scatter(
                x=piece["wind_speed"],
                y=piece["mean"],
                mode="lines",
                line=(
                    {"color": TWIN, "width": 2}
                    if seen
                    else {"color": UNSEEN, "width": 2, "dash": "dash"}
                ),
                name=mean,
                legendgroup=mean,
                showlegend=seen not in shown,
                hovertemplate="%{x:.1f} m/s, %{y:.0f} kW<extra>" + mean + "</extra>",
            )
        )
        shown.add(seen)
    runs = unseen_runs(curve)
    # One label, on the widest region: a narrow gap's label beside another overlaps it.
    widest = max(runs, key=lambda run: run[1] - run[0], default=None)
    for low, high in runs:
        label = (
            {
                "annotation": {
                    "text": "no readings near:<br>extrapolated",
                    "font": {"size": 11, "color": "#555555"},
                },
                "annotation_position": "top left",
            }
            if (low, high) == widest
            else {}
        )
        figure.add_vrect(
            x0=low, x1=high, fillcolor=UNSEEN_SHADE, line_width=0, layer="below", **label
        )


def power_curve_figure(turbine: TurbineResult, max_points: int, rng: np.random.Generator) -> Any:
    """Observed readings (a subsample) over the twin's 90 % band and the baseline."""
    ev = turbine.evaluation
    speed = np.asarray(pd.to_numeric(ev["wind_speed"], errors="coerce"), dtype=np.float64)
    power = np.asarray(pd.to_numeric(ev["power"], errors="coerce"), dtype=np.float64)
    ok = np.isfinite(speed) & np.isfinite(power)
    speed, power = speed[ok], power[ok]
    alarm = alarm_flags(ev)[ok]
    rows = subsample_rows(speed.size, alarm, max_points, rng)
    shown_alarm = alarm[rows]
    curve = turbine.power_curve.sort_values("wind_speed")
    figure = go.Figure()
    figure.add_trace(
        go.Scattergl(
            x=speed[rows][~shown_alarm],
            y=power[rows][~shown_alarm],
            mode="markers",
            marker={"size": 3, "color": OBSERVED},
            name="observed",
            hovertemplate="%{x:.1f} m/s, %{y:.0f} kW<extra>observed</extra>",
        )
    )
    if shown_alarm.any():
        figure.add_trace(
            go.Scattergl(
                x=speed[rows][shown_alarm],
                y=power[rows][shown_alarm],
                mode="markers",
                marker={"size": 4, "color": ALARM, "opacity": 0.6},
                name="observed, in alarm",
                hovertemplate="%{x:.1f} m/s, %{y:.0f} kW<extra>in alarm</extra>",
            )
        )
    _add_twin_curve(figure, curve)
    figure.add_trace(
        go.Scatter(
            x=curve["wind_speed"],
            y=curve["baseline_mean"],
            mode="lines",
            line={"color": BASELINE, "width": 2, "dash": "dash"},
            name="IEC 61400-12-1 baseline",
            hovertemplate="%{x:.1f} m/s, %{y:.0f} kW<extra>baseline</extra>",
        )
    )
    return _layout(
        figure,
        440,
        xaxis_title="wind speed [m/s]",
        yaxis_title="power [kW]",
    )


def _isolated(values: pd.Series) -> NDArray[np.bool_]:
    """Finite values with no finite neighbour: a line through them draws nothing."""
    finite = np.isfinite(np.asarray(values, dtype=np.float64))
    before = np.r_[False, finite[:-1]]
    after = np.r_[finite[1:], False]
    return np.asarray(finite & ~before & ~after, dtype=np.bool_)


def _line_and_points(values: pd.Series, width: float) -> dict[str, Any]:
    """A daily series as a line, with a marker on each day alone between gaps."""
    sizes = np.where(_isolated(values), 2.5 * width + 3.0, 0.0)
    return {"mode": "lines+markers", "marker": {"size": sizes.tolist()}}


def _say_empty(figure: Any, row: int, text: str, *, subplots: bool) -> None:
    """A message in the middle of a panel that has nothing to draw."""
    axis = "" if row == 1 else str(row)
    figure.add_annotation(
        text=text,
        xref=f"x{axis} domain" if subplots else "x domain",
        yref=f"y{axis} domain" if subplots else "y domain",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 13, "color": "#555555"},
    )


def residual_figure(turbine: TurbineResult, *, monitored: bool = True) -> Any:
    """Daily mean residuals of twin and baseline; if ``monitored``, below them the peak
    anomaly score, and the alarm periods (else no score panel: an empty one would look
    like a monitor that saw nothing). A day alone between days without readings is a
    marker; a panel with nothing to draw says so."""
    from plotly.subplots import make_subplots  # plotly's figure classes: only to draw

    days = daily_residuals(turbine.evaluation)
    periods = alarm_periods(days)
    # Each day's mean is drawn at noon, inside the day's shading.
    days.index = days.index + pd.Timedelta(hours=12)
    if monitored:
        figure = make_subplots(
            rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06
        )
    else:
        figure = make_subplots(rows=1, cols=1)
    figure.add_trace(
        go.Scatter(
            x=days.index,
            y=days["baseline_residual"],
            **_line_and_points(days["baseline_residual"], 1.0),
            line={"color": BASELINE, "width": 1},
            name="baseline residual",
            hovertemplate="%{x|%Y-%m-%d}: %{y:.0f} kW<extra>baseline</extra>",
        ),
        row=1,
        col=1,
    )
    # Beside a live twin's scores, which twin's residuals these are.
    twin = "frozen twin" if has_live_scores([turbine]) else "twin"
    figure.add_trace(
        go.Scatter(
            x=days.index,
            y=days["residual"],
            **_line_and_points(days["residual"], 1.5),
            line={"color": TWIN, "width": 1.5},
            name=f"{twin} residual",
            hovertemplate=f"%{{x|%Y-%m-%d}}: %{{y:.0f}} kW<extra>{twin}</extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_hline(y=0.0, line={"color": "#999999", "width": 1}, row=1, col=1)
    figure.update_yaxes(title_text="residual [kW]<br>(daily mean)", row=1, col=1)
    if days.empty or not np.isfinite(days["residual"].to_numpy(np.float64)).any():
        _say_empty(figure, 1, "no scored readings to draw", subplots=monitored)
    if not monitored:
        figure.update_xaxes(title_text="day (UTC)", row=1, col=1)
        return _layout(figure, 320)
    alarm_days = days[days["alarm"].to_numpy(dtype=bool)]
    figure.add_trace(
        go.Scatter(
            x=alarm_days.index,
            y=alarm_days["residual"],
            mode="markers",
            marker={"color": ALARM, "size": 6, "symbol": "x"},
            name="day with alarm",
            hovertemplate="%{x|%Y-%m-%d}: %{y:.0f} kW<extra>alarm</extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=days.index,
            y=days["anomaly_score"],
            **_line_and_points(days["anomaly_score"], 1.0),
            line={"color": "#555555", "width": 1},
            name="anomaly score (daily max)",
            hovertemplate="%{x|%Y-%m-%d}: %{y:.3g}<extra>score</extra>",
        ),
        row=2,
        col=1,
    )
    if days.empty or not np.isfinite(days["anomaly_score"].to_numpy(np.float64)).any():
        # The monitor does not watch readings below its icing temperature or before it
        # starts: their scores are missing, not zero.
        _say_empty(figure, 2, "no readings scored by the monitor", subplots=True)
    for start, end in periods:
        figure.add_vrect(x0=start, x1=end, fillcolor=ALARM_SHADE, line_width=0, layer="below")
    figure.update_yaxes(title_text="anomaly score [-log10 p]", row=2, col=1)
    figure.update_xaxes(title_text="day (UTC)", row=2, col=1)
    return _layout(figure, 460)


def calibration_figure(turbines: Sequence[TurbineResult]) -> Any:
    """Coverage of the twin's 90 % interval per 1 m/s wind-speed bin, per turbine; a bin
    the calibration table shows as too few to judge (:func:`coverage_verdict`) is a
    hollow grey marker, named in the legend and on hover."""
    figure = go.Figure()
    lo, hi = BIN_COVERAGE_TARGET
    figure.add_hrect(y0=lo, y1=hi, fillcolor=TARGET_SHADE, line_width=0, layer="below")
    figure.add_hline(y=0.9, line={"color": "#2ca02c", "width": 1, "dash": "dot"})
    all_coverage = [1.0, lo]
    any_few = False
    for k, turbine in enumerate(turbines):
        binned = coverage_by_wind_speed(turbine.evaluation)
        all_coverage.extend(binned.coverage[np.isfinite(binned.coverage)].tolist())
        scored = n_scored(turbine)
        few = np.array(
            [
                coverage_verdict(float(value), int(count), BIN_COVERAGE_TARGET, scored) == "few"
                for value, count in zip(binned.coverage, binned.counts, strict=True)
            ],
            dtype=np.bool_,
        )
        any_few |= bool(few.any())
        colour = TURBINE_COLOURS[k % len(TURBINE_COLOURS)]
        figure.add_trace(
            go.Scatter(
                x=binned.centres,
                y=binned.coverage,
                text=[
                    f"too few readings to judge (n={n})" if f else f"n={n}"
                    for f, n in zip(few, binned.counts, strict=True)
                ],
                mode="lines+markers",
                line={"color": colour},
                marker={"color": colour, "size": 6},
                name=turbine.asset_id,
                legendgroup=turbine.asset_id,
                hovertemplate="%{x:.1f} m/s: %{y:.3f}, %{text}<extra>%{fullData.name}</extra>",
            )
        )
        if few.any():
            figure.add_trace(
                go.Scatter(
                    x=binned.centres[few],
                    y=binned.coverage[few],
                    mode="markers",
                    marker=TOO_FEW_MARKER,
                    name=f"{turbine.asset_id}, too few readings to judge",
                    legendgroup=turbine.asset_id,
                    showlegend=False,
                    # The line's points say it on hover.
                    hoverinfo="skip",
                )
            )
    if any_few:
        # A legend entry alone: the hollow markers are drawn on each turbine's line.
        figure.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=TOO_FEW_MARKER,
                name=f"too few readings to judge (a bin under {MIN_BIN_READINGS}, or a "
                f"turbine under {MIN_READINGS})",
                hoverinfo="skip",
            )
        )
    return _layout(
        figure,
        400,
        xaxis={"title": {"text": "wind speed bin centre [m/s]"}, "dtick": 1},
        yaxis={
            "title": {"text": "fraction inside 90 % interval"},
            "range": [min(all_coverage) - 0.02, 1.005],
        },
    )


def _quantity_title(metric: str, units: str) -> str:
    """A quantity's name in words, with its units unless it has none ("capacity
    factor", "hours at rated [h]")."""
    name = metric.replace("_", " ")
    return name if units in ("", "1", "-") else f"{name} [{units}]"


def whatif_interval_figure(whatif: WhatIfSummary) -> Any:
    """Live twin and what-if branch per quantity, each with its interval, one panel each."""
    from plotly.subplots import make_subplots  # plotly's figure classes: only to draw

    table = whatif.table
    figure = make_subplots(
        rows=1,
        cols=len(table),
        subplot_titles=[
            _quantity_title(str(m), str(u))
            for m, u in zip(table["metric"], table["units"], strict=True)
        ],
        horizontal_spacing=0.12,
    )
    for k, record in enumerate(table.to_dict("records"), start=1):
        # One trace per branch: plotly colours error bars by a single colour, not by a
        # list of them (a list draws them black and logs a warning in the browser).
        for branch, colour in (("baseline", TWIN), ("scenario", SCENARIO)):
            mean = float(record[f"{branch}_mean"])
            figure.add_trace(
                go.Scatter(
                    x=[BRANCH_LABELS[branch]],
                    y=[mean],
                    mode="markers",
                    marker={"color": colour, "size": 11},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [float(record[f"{branch}_hi"]) - mean],
                        "arrayminus": [mean - float(record[f"{branch}_lo"])],
                        "color": colour,
                        "thickness": 2,
                        "width": 8,
                    },
                    showlegend=False,
                    hovertemplate="%{x}: %{y:.4g}<extra></extra>",
                ),
                row=1,
                col=k,
            )
    return _layout(figure, 340)


def whatif_series_figure(whatif: WhatIfSummary, max_points: int) -> Any:
    """The predicted target for stored twin and what-if branch over time, with intervals."""
    if whatif.series is None:
        raise ValueError("whatif.series: expected a series to plot, got None")
    series = whatif.series.sort_values("time")
    # Every k-th row keeps each drawn value exact; averaging would blur the intervals.
    step = max(1, -(-len(series) // max_points))
    series = series.iloc[::step]
    times = _naive_utc(series["time"])
    figure = go.Figure()
    level = f"{100 * whatif.level:g} %"
    for label, colour, band in (
        ("baseline", TWIN, TWIN_BAND),
        ("scenario", SCENARIO, SCENARIO_BAND),
    ):
        add_band(
            figure,
            times,
            series[f"{label}_lo"],
            series[f"{label}_hi"],
            band,
            f"{BRANCH_LABELS[label]} {level} interval",
        )
        figure.add_trace(
            go.Scatter(
                x=times,
                y=series[f"{label}_mean"],
                mode="lines",
                line={"color": colour, "width": 1.5},
                name=f"{BRANCH_LABELS[label]} mean",
            )
        )
    return _layout(
        figure,
        400,
        xaxis_title="time (UTC)",
        yaxis_title=whatif.series_label,
    )
