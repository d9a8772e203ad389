"""Write the demo report: a static page, its scores as JSON, the plotly bundle beside it."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import plotly.offline

from twinweave import __version__
from twinweave.report._figures import (
    calibration_figure,
    power_curve_figure,
    residual_figure,
    whatif_interval_figure,
    whatif_series_figure,
)
from twinweave.report._html import (
    PLOTLY_FILE,
    calibration_table,
    fmt,
    live_table,
    metrics_table,
    page,
    plot_block,
    whatif_table,
)
from twinweave.report._results import (
    BIN_COVERAGE_TARGET,
    COVERAGE_TARGET,
    MIN_BIN_READINGS,
    MIN_READINGS,
    MonitorWindow,
    TurbineResult,
    WhatIfSummary,
)
from twinweave.report._summary import (
    alarm_flags,
    alarm_periods,
    coverage_by_wind_speed,
    daily_residuals,
    has_live_scores,
    n_scored,
    period_days,
    periods_text,
    pooled_scores,
    scored_span,
    unseen_wind_speeds,
    was_monitored,
)

#: The scores' file written beside the page.
METRICS_FILE = "metrics.json"


def _json_number(value: float) -> float | None:
    # JSON has no NaN or infinity; a missing score is null.
    return value if math.isfinite(value) else None


def _json_count(value: float) -> int | None:
    # A count is an integer in JSON (50004, not 50004.0), even where a frame held it as
    # a float beside the scores.
    return int(value) if math.isfinite(value) else None


def _is_count(key: str) -> bool:
    # "n", "n_alarms", and prefixed or per-bin counts ("live_n", "coverage90_min_bin_n").
    return key == "n" or key.startswith("n_") or key.endswith("_n")


def _json_scores(scores: Mapping[str, float]) -> dict[str, float | int | None]:
    return {
        key: _json_count(float(value)) if _is_count(key) else _json_number(float(value))
        for key, value in scores.items()
    }


def _scored_json(turbine: TurbineResult, *, monitor_ran: bool) -> dict[str, Any]:
    """Which readings a turbine was scored on, whether the monitor watched it, and what
    it was fitted on where known."""
    span = scored_span(turbine)
    n = n_scored(turbine)
    monitored = was_monitored(turbine, monitor_ran=monitor_ran)
    # First and last day (UTC) of each run of days with an alarm, as on the page.
    periods = alarm_periods(daily_residuals(turbine.evaluation)) if monitored else []
    alarms = {"alarm_days": [list(days) for days in period_days(periods)]} if monitored else {}
    return {
        "n_scored": _json_count(n),
        "first_scored": None if span is None else span[0].isoformat(),
        "last_scored": None if span is None else span[1].isoformat(),
        # Too few readings to judge the coverage (shown without a verdict).
        "too_few_to_judge_coverage": not n >= MIN_READINGS,
        # False where the monitor did not run (monitoring.ran) or left this turbine out:
        # then it has no n_alarms, which is not "no alarms".
        "monitored": monitored,
        **alarms,
        **({} if turbine.periods is None else turbine.periods.to_json()),
    }


def metrics_document(
    turbines: Sequence[TurbineResult],
    whatif: WhatIfSummary | None,
    *,
    title: str,
    attribution: str,
    not_monitored: str | None = None,
    monitor_caveat: str | None = None,
    monitor_window: MonitorWindow | None = None,
    not_scored: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The content of ``metrics.json``: scores per turbine and pooled, targets, what-if,
    whether the underperformance monitor ran and over which window (``monitoring``), and
    the twins left unscored with the reason (``not_scored``)."""
    calibration = {t.asset_id: coverage_by_wind_speed(t.evaluation) for t in turbines}
    edges = next(iter(calibration.values())).edges
    document: dict[str, Any] = {
        "title": title,
        "attribution": attribution,
        "targets": {
            "coverage90": list(COVERAGE_TARGET),
            "coverage90_per_wind_speed_bin": list(BIN_COVERAGE_TARGET),
            # Fewest readings (of a turbine, of a bin) whose coverage is judged.
            "min_readings": MIN_READINGS,
            "min_readings_per_wind_speed_bin": MIN_BIN_READINGS,
        },
        # Without the monitor there is no n_alarms: said here, not left to be guessed.
        "monitoring": {
            "ran": not_monitored is None,
            "reason": not_monitored,
            "caveat": monitor_caveat,
            "window": None if monitor_window is None else monitor_window.to_json(),
        },
        "turbines": {t.asset_id: _json_scores(t.metrics) for t in turbines},
        "not_scored": dict(not_scored or {}),
        # Per turbine: the readings scored, whether the monitor watched it and, where
        # known, those the twin and the baseline were fitted on (the same) and from when
        # the live twin assimilates.
        "periods": {
            t.asset_id: _scored_json(t, monitor_ran=not_monitored is None) for t in turbines
        },
        "overall": _json_scores(pooled_scores(turbines)),
        "calibration": {
            "wind_speed_edges": edges.tolist(),
            "coverage90": {
                asset: [_json_number(float(c)) for c in binned.coverage]
                for asset, binned in calibration.items()
            },
            "n": {asset: binned.counts.tolist() for asset, binned in calibration.items()},
        },
    }
    if whatif is not None:
        quantities = []
        for record in whatif.table.to_dict("records"):
            row: dict[str, Any] = {"metric": str(record["metric"]), "units": str(record["units"])}
            for branch in ("baseline", "scenario", "difference"):
                for part in ("mean", "lo", "hi"):
                    row[f"{branch}_{part}"] = _json_number(float(record[f"{branch}_{part}"]))
            quantities.append(row)
        document["whatif"] = {
            "title": whatif.title,
            "description": whatif.description,
            "level": whatif.level,
            "caveats": list(whatif.caveats),
            "quantities": quantities,
        }
    return document


def _turbine_section(
    turbine: TurbineResult,
    anchor: str,
    max_points: int,
    rng: np.random.Generator,
    *,
    monitored: bool,
) -> str:
    m = turbine.metrics
    days = daily_residuals(turbine.evaluation)
    n_alarm_readings = int(alarm_flags(turbine.evaluation).sum())
    alarms = alarm_periods(days)
    n_periods = len(alarms)
    summary = (
        f"RMSE {fmt(m['rmse_kw'], '.1f')} kW (baseline {fmt(m['baseline_rmse_kw'], '.1f')} kW), "
        f"CRPS {fmt(m['crps_kw'], '.1f')} kW (baseline {fmt(m['baseline_crps_kw'], '.1f')} kW), "
        f"90 % coverage {fmt(m['coverage90'], '.3f')}. "
    )
    # Without the monitor, no alarm is not "0 alarms": the page's notes say why.
    summary += (
        (
            f"{n_alarm_readings:,} readings inside underperformance alarms, "
            f"over {n_periods} period{'s' if n_periods != 1 else ''} of consecutive days "
            f"(UTC): {periods_text(alarms)}."
            if n_alarm_readings
            else "No underperformance alarm."
        )
        if monitored
        else "Not monitored for underperformance."
    )
    span = scored_span(turbine)
    n = n_scored(turbine)
    scored = (
        f"Scored on {n:,.0f} readings, from {span[0]:%Y-%m-%d %H:%M} to "
        f"{span[1]:%Y-%m-%d %H:%M} UTC"
        if span is not None
        else f"Scored on {n:,.0f} readings"
    )
    if not n >= MIN_READINGS:
        scored += (
            f": too few (under {MIN_READINGS}) to judge the 90 % coverage, shown without a verdict"
        )
    periods = (
        turbine.periods.describe()
        if turbine.periods is not None
        else "The period the twin was fitted on is not known."
    )
    summary = f"{periods} {scored}. {summary}"
    n_finite = int(
        (turbine.evaluation["power"].notna() & turbine.evaluation["wind_speed"].notna()).sum()
    )
    n_shown = min(n_finite, max_points)
    unseen = unseen_wind_speeds(turbine)
    curve = plot_block(
        power_curve_figure(turbine, max_points, rng),
        f"{anchor}-power-curve",
        f"Power curve of {turbine.asset_id}: {n_shown:,} of {n_finite:,} held-out readings "
        "(a random subsample when there are more; readings in alarm kept visible), the "
        "twin's mean and 90 % predictive interval, and the IEC 61400-12-1 binned baseline."
        + (
            f" Shaded grey, {unseen}: wind speeds the twin has no training readings near; "
            "there its curve and interval (dashed, grey) extrapolate its power curve and "
            "prior, and know nothing of cut-out."
            if unseen
            else ""
        ),
    )
    residuals = plot_block(
        residual_figure(turbine, monitored=monitored),
        f"{anchor}-residuals",
        f"Residuals of {turbine.asset_id} (observed minus predicted power, daily means) "
        "for twin and baseline"
        + (
            "; below, the monitor's anomaly score (daily maximum: -log10 of a reading's "
            "two-sided tail probability under the twin's predictive). Shaded red: days "
            "inside a detected underperformance alarm. The score flags single surprising "
            "readings; an alarm needs a shortfall that persists for days (a CUSUM of "
            "daily evidence), so a spike alone raises none and "
            "a small steady loss can raise one on low scores. Readings below the monitor's "
            "icing temperature (2 °C unless set otherwise) are not watched."
            if monitored
            else "."
        ),
    )
    return (
        f'<section id="{anchor}"><h2>Turbine {escape(turbine.asset_id)}</h2>'
        f"<p>{escape(summary)}</p>{curve}{residuals}</section>"
    )


def _whatif_section(whatif: WhatIfSummary, max_points: int) -> str:
    blocks = [
        f"<h2>What-if: {escape(whatif.title)}</h2>",
        f"<p>{escape(whatif.description)}</p>",
        *(
            [
                '<ul class="caveats">'
                + "".join(f"<li>{escape(c)}</li>" for c in whatif.caveats)
                + "</ul>"
            ]
            if whatif.caveats
            else []
        ),
        whatif_table(whatif),
        plot_block(
            whatif_interval_figure(whatif),
            "whatif-quantities",
            f"Each quantity for the stored twin and the what-if branch, with its "
            f"{100 * whatif.level:g} % interval.",
        ),
    ]
    if whatif.series is not None:
        blocks.append(
            plot_block(
                whatif_series_figure(whatif, max_points),
                "whatif-series",
                "The predicted target over time for the stored twin and the what-if branch, "
                "with intervals.",
            )
        )
    return f'<section id="whatif">{"".join(blocks)}</section>'


def write_demo_report(
    output_dir: str | os.PathLike[str],
    turbines: Sequence[TurbineResult],
    whatif: WhatIfSummary | None,
    *,
    title: str,
    notes: Sequence[str] = (),
    attribution: str,
    not_monitored: str | None = None,
    monitor_caveat: str | None = None,
    monitor_window: MonitorWindow | None = None,
    not_scored: Mapping[str, str] | None = None,
    max_points: int = 5000,
    seed: int | np.random.Generator | None = 0,
) -> Path:
    """Write ``index.html``, ``metrics.json`` and ``plotly.min.js`` into ``output_dir``.

    The page is static and works offline: plotly.js is copied from the installed plotly
    package and loaded by a relative path, and every table is plain HTML, readable
    without JavaScript. It shows the scores of twin and baseline per turbine against
    the coverage target, those of frozen and live twin where the turbines have live
    scores, the calibration per wind-speed bin, per turbine the power
    curve and the residuals with detected alarms, and the what-if.

    Parameters
    ----------
    output_dir
        Directory to write into; created if missing, files in it are replaced.
    turbines
        One result per turbine, with distinct ``asset_id``. Where the monitor ran, a
        turbine it left out (``monitored`` false) shows neither alarms nor the
        anomaly-score panel, and ``metrics.json`` has ``periods.<asset_id>.monitored``
        false (true for those it watched).
    whatif
        The what-if to show, or None to leave its section out.
    title
        Heading of the page.
    notes
        Sentences shown under the heading: the data, the periods, the models.
    attribution
        The data's attribution, shown at the top and bottom of the page and written
        to ``metrics.json``; for La Haute Borne, ``LA_HAUTE_BORNE_ATTRIBUTION``.
    not_monitored
        Why the underperformance monitor did not run, or None if it ran. The reason is
        the page's first note and goes to ``metrics.json``; the turbine sections then
        show neither alarms nor the anomaly-score panel.
    monitor_caveat
        What the monitor's alarms are worth where it ran on fewer turbines than a
        fleet, or None: a note on the page and ``monitoring.caveat`` in
        ``metrics.json``.
    monitor_window
        When the monitor calibrated and watched, or None: stated in the page's notes and
        written to ``monitoring.window`` in ``metrics.json``.
    not_scored
        Twins of the report that have no scores, with the reason (a twin born into its
        fleet without readings before the period, say): named in the page's notes and
        in ``not_scored`` of ``metrics.json``, so that none is left out unsaid.
    max_points
        Most readings drawn per power-curve scatter (a random subsample beyond), and
        most times drawn in the what-if series; bounds the page's size.
    seed
        Randomness of the subsample.

    Returns
    -------
    pathlib.Path
        The path of ``index.html``.

    Raises
    ------
    ValueError
        If there is no turbine, two share an ``asset_id``, ``max_points`` is below 1,
        ``attribution`` is empty, or a ``monitor_window`` is given with ``not_monitored``.
    """
    if not turbines:
        raise ValueError("turbines: expected at least one turbine, got none")
    ids = [t.asset_id for t in turbines]
    if len(set(ids)) != len(ids):
        raise ValueError(f"turbines: expected distinct asset_id, got {ids}")
    if max_points < 1:
        raise ValueError(f"max_points: expected at least 1, got {max_points}")
    if not attribution.strip():
        raise ValueError("attribution: expected the data's attribution, got an empty string")
    if not_monitored is not None and monitor_window is not None:
        raise ValueError(
            f"monitor_window: expected None where the monitor did not run "
            f"(not_monitored={not_monitored!r}), got {monitor_window}"
        )
    rng = np.random.default_rng(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    overall = pooled_scores(turbines)
    anchors = [f"turbine-{k}-{re.sub(r'[^A-Za-z0-9_-]', '-', t)}" for k, t in enumerate(ids)]
    live = has_live_scores(turbines)
    contents = [
        ("metrics", "Scores"),
        *([("live", "Frozen and live")] if live else []),
        ("calibration", "Calibration"),
        *((a, f"Turbine {t}") for a, t in zip(anchors, ids, strict=True)),
    ]
    sections = [
        '<section id="metrics"><h2>Twin against the IEC 61400-12-1 baseline</h2>'
        f"{metrics_table(turbines, overall)}</section>",
        *(
            [
                '<section id="live"><h2>Frozen and live twin</h2>'
                f"{live_table(turbines, overall)}</section>"
            ]
            if live
            else []
        ),
        '<section id="calibration"><h2>Calibration by wind speed</h2>'
        + plot_block(
            calibration_figure(turbines),
            "calibration-plot",
            "Fraction of held-out readings inside the twin's 90 % predictive interval per "
            f"1 m/s wind-speed bin; green band {BIN_COVERAGE_TARGET[0]:.2f}–"
            f"{BIN_COVERAGE_TARGET[1]:.2f}, dotted line the nominal 0.90; hollow grey, a "
            "bin outside the band on too few readings to judge (as in the table below; "
            "hover for its number of readings).",
        )
        + calibration_table(turbines)
        + "</section>",
        *(
            _turbine_section(
                t, a, max_points, rng, monitored=was_monitored(t, monitor_ran=not_monitored is None)
            )
            for t, a in zip(turbines, anchors, strict=True)
        ),
    ]
    if whatif is not None:
        contents.append(("whatif", "What-if"))
        sections.append(_whatif_section(whatif, max_points))

    generator = (
        f"Written by twinweave {__version__} with plotly.js "
        f"{plotly.offline.get_plotlyjs_version()}, loaded from {PLOTLY_FILE} beside this page."
    )
    index = out / "index.html"
    index.write_text(
        page(
            title=title,
            notes=[
                *([] if not_monitored is None else [not_monitored]),
                *notes,
                *([] if monitor_window is None else [monitor_window.describe()]),
                *([] if monitor_caveat is None else [f"Monitor: {monitor_caveat}."]),
                *(f"Not scored: {twin}, {why}." for twin, why in (not_scored or {}).items()),
            ],
            attribution=attribution,
            contents=contents,
            sections=sections,
            generator=generator,
        ),
        encoding="utf-8",
    )
    (out / PLOTLY_FILE).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    document = metrics_document(
        turbines,
        whatif,
        title=title,
        attribution=attribution,
        not_monitored=not_monitored,
        monitor_caveat=monitor_caveat,
        monitor_window=monitor_window,
        not_scored=not_scored,
    )
    (out / METRICS_FILE).write_text(
        json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return index
