"""HTML of the demo report: tables readable without JavaScript, plot blocks, the page."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
import plotly.io as pio

from twinweave.report._results import (
    BIN_COVERAGE_TARGET,
    BRANCH_LABELS,
    COVERAGE_TARGET,
    LIVE_INTERVAL_COLUMNS,
    MIN_BIN_READINGS,
    MIN_READINGS,
    WHATIF_COLUMNS,
    TurbineResult,
    WhatIfSummary,
    coverage_verdict,
)
from twinweave.report._summary import (
    coverage_by_wind_speed,
    n_scored,
)

#: File name of the plotly bundle written next to the page.
PLOTLY_FILE = "plotly.min.js"

PLOT_CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  margin: 0 auto; max-width: 1120px; padding: 0 1.2em 2em; color: #222; line-height: 1.45; }
header { border-bottom: 2px solid #1f77b4; margin-bottom: 1em; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; list-style: none; padding: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; text-align: left; font-size: 0.88em; color: #555;
  padding-top: 0.4em; max-width: 60em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f1f4f8; }
td.num { text-align: right; }
td.pass { background: #dff3df; }
td.fail { background: #f8dada; }
td.few, span.few { color: #777; font-style: italic; }
td .verdict { font-size: 0.8em; font-weight: bold; }
tfoot td, tfoot th { border-top: 2px solid #888; }
figure.plot { margin: 0.6em 0 1.4em; }
figure.plot figcaption { font-size: 0.88em; color: #555; }
.attribution { font-size: 0.9em; color: #444; }
.scroll { overflow-x: auto; }
footer { margin-top: 2.5em; border-top: 1px solid #ddd; font-size: 0.88em; color: #555; }
"""


def fmt(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``; a dash when it is not finite."""
    return format(value, spec) if math.isfinite(value) else "–"


def quantity_decimals(values: Sequence[float], widths: Sequence[float]) -> int:
    """Decimals that show two significant digits of the narrowest interval's width.

    One digit rounded the ends themselves (an interval of 3.5 to 22 hours shown as 4 to
    22). Without a positive width, three significant digits of the largest value.

    Examples
    --------
    >>> quantity_decimals([410.0, 380.0], [30.0, 28.0])
    0
    >>> quantity_decimals([13.4, 3.5, 22.0], [18.5, 3.6])
    1
    >>> quantity_decimals([0.28, -0.02], [0.02, 0.004])
    4
    """
    positive = [w for w in widths if math.isfinite(w) and w > 0]
    if positive:
        scale = min(positive)
        digits = 2
    else:
        finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
        if not finite:
            return 0
        scale = max(finite)
        digits = 3
    return min(6, max(0, digits - 1 - math.floor(math.log10(scale))))


def fmt_quantity(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` and thousands separators; a dash when not finite."""
    return format(value, f",.{decimals}f") if math.isfinite(value) else "–"


def _pair(twin: float, baseline: float, spec: str, higher_is_better: bool) -> str:
    cells = [fmt(twin, spec), fmt(baseline, spec)]
    if math.isfinite(twin) and math.isfinite(baseline) and twin != baseline:
        best = 0 if (twin > baseline) == higher_is_better else 1
        cells[best] = f"<strong>{cells[best]}</strong>"
    return "".join(f'<td class="num">{c}</td>' for c in cells)


def coverage_text(value: float, band: tuple[float, float]) -> str:
    """A coverage to three decimals, never rounded onto its target ``band``: a value
    outside it shows outside it (0.8495 under 0.85-0.95 reads 0.849, not 0.850)."""
    text = f"{value:.3f}"
    lo, hi = band
    if value < lo <= float(text):
        return f"{lo - 0.001:.3f}"
    if value > hi >= float(text):
        return f"{hi + 0.001:.3f}"
    return text


def _few_cell(value: float, why: str, band: tuple[float, float]) -> str:
    """A coverage shown without a verdict: too few readings to judge it."""
    return (
        f'<td class="num few" title="{escape(why)}">{coverage_text(value, band)} '
        '<span class="verdict">too few</span></td>'
    )


def _coverage_cell(value: float, n: float, judged_on: float | None = None) -> str:
    """A coverage of ``n`` readings and its verdict, judged as on ``judged_on`` readings
    if given (the pooled row: as on its largest turbine's, since turbines read in the
    same weather are not independent)."""
    on = n if judged_on is None else judged_on
    verdict = coverage_verdict(value, on, COVERAGE_TARGET)
    if not verdict:
        return '<td class="num">–</td>'
    if verdict == "few":
        why = f"{on:,.0f} readings: too few to judge (fewer than {MIN_READINGS})"
        return _few_cell(value, why, COVERAGE_TARGET)
    shown = coverage_text(value, COVERAGE_TARGET)
    return f'<td class="num {verdict}">{shown} <span class="verdict">{verdict}</span></td>'


#: A row's cells from its label, number of readings, scores, and turbine (None for the
#: pooled row, whose coverage is judged as on its largest turbine's readings).
Row = Callable[[str, float, Mapping[str, float], TurbineResult | None, float], str]


def _score_row(
    label: str, n: float, metrics: Mapping[str, float], _: TurbineResult | None, judged_on: float
) -> str:
    return (
        f'<th scope="row">{escape(label)}</th><td class="num">{fmt(n, ",.0f")}</td>'
        + _pair(metrics["rmse_kw"], metrics["baseline_rmse_kw"], ".1f", False)
        + _pair(metrics["crps_kw"], metrics["baseline_crps_kw"], ".1f", False)
        + _coverage_cell(metrics["coverage90"], n, judged_on)
        + _coverage_cell(metrics["baseline_coverage90"], n, judged_on)
        + _pair(metrics["log_likelihood"], metrics["baseline_log_likelihood"], ".3f", True)
    )


def _paired_table(
    table_id: str,
    caption: str,
    groups: Sequence[str],
    pair: tuple[str, str],
    row: Row,
    turbines: Sequence[TurbineResult],
    overall: Mapping[str, float],
) -> str:
    """A row per turbine and the pooled row last, each score in ``groups`` as two
    columns named by ``pair``; ``row`` gives a row's cells (:data:`Row`)."""
    head = (
        '<tr><th rowspan="2" scope="col">turbine</th><th rowspan="2" scope="col">readings</th>'
        + "".join(f'<th colspan="2" scope="colgroup">{g}</th>' for g in groups)
        + "</tr><tr>"
        + f'<th scope="col">{pair[0]}</th><th scope="col">{pair[1]}</th>' * len(groups)
        + "</tr>"
    )
    body = "".join(
        f"<tr>{row(t.asset_id, n_scored(t), t.metrics, t, n_scored(t))}</tr>" for t in turbines
    )
    largest = max((n_scored(t) for t in turbines), default=0.0)
    foot = f"<tr>{row('all turbines', overall['n'], overall, None, largest)}</tr>"
    return (
        f'<div class="scroll"><table id="{table_id}"><caption>{caption}</caption>'
        f"<thead>{head}</thead><tbody>{body}</tbody><tfoot>{foot}</tfoot></table></div>"
    )


def metrics_table(turbines: Sequence[TurbineResult], overall: Mapping[str, float]) -> str:
    """Twin against baseline per turbine, with the pooled scores as the last row."""
    lo, hi = COVERAGE_TARGET
    caption = (
        "Scores on the held-out readings. Lower RMSE and CRPS are better, higher mean "
        "log-likelihood per reading is better; the better of twin and baseline is in bold. "
        f"Coverage of the nominal 90 % interval passes within {lo:.2f}–{hi:.2f}; on "
        f"fewer than {MIN_READINGS} readings (the pooled row: its largest turbine's) one "
        "outside the band is shown as too few to judge. "
        "The last row pools the readings of all turbines."
    )
    groups = ("RMSE [kW]", "CRPS [kW]", "90 % interval coverage", "log-likelihood [nats]")
    return _paired_table(
        "metrics-table", caption, groups, ("twin", "IEC baseline"), _score_row, turbines, overall
    )


def _min_bin_cell(turbine: TurbineResult, interval: tuple[str, str], lowest: float) -> str:
    """The lowest coverage over the wind-speed bins, ``lowest`` (the score printed in
    the terminal), with a verdict. Where a bin of enough readings falls under the band,
    the lowest such bin is shown, marked "under", and ``lowest`` beside it if a bin of
    too few readings is lower; where only bins of too few readings do, ``lowest`` is
    marked "too few". Bins of too few readings are listed on hover. Without the
    interval's columns, ``lowest`` is marked as it is."""
    if not set(interval) <= set(turbine.evaluation.columns):
        if math.isfinite(lowest) and lowest < BIN_COVERAGE_TARGET[0]:
            shown = coverage_text(lowest, BIN_COVERAGE_TARGET)
            return f'<td class="num fail">{shown} <span class="verdict">under</span></td>'
        return f'<td class="num">{fmt(lowest, ".3f")}</td>'
    bins = coverage_by_wind_speed(turbine.evaluation, interval=interval)
    if not math.isfinite(lowest):
        populated = bins.coverage[bins.counts > 0]
        lowest = float(populated.min()) if populated.size else math.nan
    judged = (bins.counts >= MIN_BIN_READINGS) & (n_scored(turbine) >= MIN_READINGS)
    small = (bins.counts > 0) & ~judged
    listed = "; ".join(
        f"{bins.edges[k]:g}–{bins.edges[k + 1]:g} m/s: {bins.coverage[k]:.3f} of "
        f"{bins.counts[k]} readings"
        for k in np.flatnonzero(small)
    )
    hover = escape(f"too few to judge: {listed}" if listed else "every bin judged")
    failing = judged & (bins.coverage < BIN_COVERAGE_TARGET[0])
    if failing.any():
        worst = int(np.flatnonzero(failing)[np.argmin(bins.coverage[failing])])
        shown = coverage_text(float(bins.coverage[worst]), BIN_COVERAGE_TARGET)
        lowest_text = coverage_text(lowest, BIN_COVERAGE_TARGET)
        also = (
            f' <span class="few">(lowest {lowest_text}: too few)</span>'
            if math.isfinite(lowest) and float(lowest_text) < float(shown)
            else ""
        )
        return (
            f'<td class="num fail" title="{hover}">{shown} '
            f'<span class="verdict">under</span>{also}</td>'
        )
    if math.isfinite(lowest) and lowest < BIN_COVERAGE_TARGET[0]:
        return _few_cell(lowest, f"too few to judge: {listed}", BIN_COVERAGE_TARGET)
    return f'<td class="num" title="{hover}">{fmt(lowest, ".3f")}</td>'


def _live_row(
    label: str,
    n: float,
    metrics: Mapping[str, float],
    turbine: TurbineResult | None,
    judged_on: float,
) -> str:
    nan = float("nan")
    # Per turbine only: bins of several turbines do not pool.
    lowest = (
        '<td class="num">–</td>' * 2
        if turbine is None
        else _min_bin_cell(turbine, ("q05", "q95"), metrics.get("coverage90_min_bin", nan))
        + _min_bin_cell(turbine, LIVE_INTERVAL_COLUMNS, metrics.get("live_coverage90_min_bin", nan))
    )
    return (
        f'<th scope="row">{escape(label)}</th><td class="num">{fmt(n, ",.0f")}</td>'
        + _pair(metrics["rmse_kw"], metrics["live_rmse_kw"], ".1f", False)
        + _pair(metrics["crps_kw"], metrics["live_crps_kw"], ".1f", False)
        + _coverage_cell(metrics["coverage90"], n, judged_on)
        + _coverage_cell(metrics["live_coverage90"], n, judged_on)
        + lowest
        + _pair(metrics["log_likelihood"], metrics["live_log_likelihood"], ".3f", True)
    )


def live_table(turbines: Sequence[TurbineResult], overall: Mapping[str, float]) -> str:
    """Frozen against live twin per turbine, with the pooled scores as the last row."""
    lo, hi = COVERAGE_TARGET
    caption = (
        "The frozen twin predicts every held-out reading as it stood at the end of "
        "training; the live twin predicts each week from everything before it, then "
        "assimilates it (where scoring starts after the end of training, it first "
        "assimilates the readings in between; each turbine's section gives the periods). "
        "Lower RMSE and CRPS, higher log-likelihood are better; the better "
        f"of the two is in bold. Coverage passes within {lo:.2f}–{hi:.2f}. The lowest "
        "coverage of a 1 m/s wind-speed bin (3–15 m/s) is marked under where a bin of "
        f"{MIN_BIN_READINGS} readings or more falls below {BIN_COVERAGE_TARGET[0]:.2f}, and "
        "too few where only bins of fewer do (hover for them; the calibration table shows "
        "every bin); it is per turbine, so the pooled row has none. A coverage outside the "
        f"band is shown as too few to judge for a turbine scored on fewer than "
        f"{MIN_READINGS} readings."
    )
    groups = (
        "RMSE [kW]",
        "CRPS [kW]",
        "90 % interval coverage",
        "lowest 90 % coverage of a wind-speed bin",
        "log-likelihood [nats]",
    )
    return _paired_table(
        "live-table", caption, groups, ("frozen", "live"), _live_row, turbines, overall
    )


def calibration_table(turbines: Sequence[TurbineResult]) -> str:
    """Coverage per wind-speed bin and turbine; cells outside the band are marked."""
    lo, hi = BIN_COVERAGE_TARGET
    rows = []
    edges = None
    for turbine in turbines:
        binned = coverage_by_wind_speed(turbine.evaluation)
        edges = binned.edges
        scored = n_scored(turbine)
        cells = []
        for value, count in zip(binned.coverage, binned.counts, strict=True):
            if count == 0:
                cells.append('<td class="num">–</td>')
                continue
            verdict = coverage_verdict(float(value), count, BIN_COVERAGE_TARGET, scored)
            if verdict == "few":
                cells.append(
                    f'<td class="num few" title="too few to judge, n={count}">'
                    f"{coverage_text(float(value), BIN_COVERAGE_TARGET)}</td>"
                )
                continue
            # Three decimals, never rounded onto the band: at two, 0.849 read 0.85 in red.
            shown = coverage_text(float(value), BIN_COVERAGE_TARGET)
            cells.append(f'<td class="num {verdict}" title="{verdict}, n={count}">{shown}</td>')
        rows.append(f'<tr><th scope="row">{escape(turbine.asset_id)}</th>{"".join(cells)}</tr>')
    if edges is None:
        return ""
    head = "".join(f'<th scope="col">{a:g}–{b:g}</th>' for a, b in itertools.pairwise(edges))
    caption = (
        "Fraction of readings inside the twin's 90 % interval per wind-speed bin [m/s]; "
        f"green within {lo:.2f}–{hi:.2f}, red outside; grey italic, outside the band but "
        f"too few to judge: the bin has fewer than {MIN_BIN_READINGS} readings or the "
        f"turbine was scored on fewer than {MIN_READINGS}; hover a cell for its number of "
        "readings."
    )
    return (
        f'<div class="scroll"><table id="calibration-table"><caption>{caption}</caption>'
        f'<thead><tr><th scope="col">turbine</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def whatif_table(whatif: WhatIfSummary) -> str:
    """The what-if quantities side by side: mean and interval per branch."""
    level = f"{100 * whatif.level:g} %"
    rows = []
    branches = ("baseline", "scenario", "difference")
    for record in whatif.table.to_dict("records"):
        value = {key: float(record[key]) for key in WHATIF_COLUMNS[2:]}
        decimals = quantity_decimals(
            list(value.values()), [value[f"{b}_hi"] - value[f"{b}_lo"] for b in branches]
        )
        cells = "".join(
            f'<td class="num">{fmt_quantity(value[f"{b}_mean"], decimals)}</td>'
            f'<td class="num">[{fmt_quantity(value[f"{b}_lo"], decimals)}, '
            f"{fmt_quantity(value[f'{b}_hi'], decimals)}]</td>"
            for b in branches
        )
        rows.append(
            f'<tr><th scope="row">{escape(str(record["metric"]))}</th>'
            f"<td>{escape(str(record['units']))}</td>{cells}</tr>"
        )
    live, branch = BRANCH_LABELS["baseline"], BRANCH_LABELS["scenario"]
    titles = (live, branch, f"difference ({branch} − {live})")
    head = (
        '<tr><th rowspan="2" scope="col">quantity</th><th rowspan="2" scope="col">units</th>'
        + "".join(f'<th colspan="2" scope="colgroup">{t}</th>' for t in titles)
        + "</tr><tr>"
        + f'<th scope="col">mean</th><th scope="col">{level} interval</th>' * len(titles)
        + "</tr>"
    )
    caption = (
        f"Each quantity with its central {level} interval; the quantities are reported "
        "side by side, not folded into one score."
    )
    return (
        f'<div class="scroll"><table id="whatif-table"><caption>{caption}</caption>'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def plot_block(figure: Any, div_id: str, caption: str) -> str:
    """A figure drawn by the page's plotly bundle, with a caption."""
    height = int(figure.layout.height)
    div = pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=f"{height}px",
        config=PLOT_CONFIG,
    )
    return f'<figure class="plot">{div}<figcaption>{escape(caption)}</figcaption></figure>'


def page(
    *,
    title: str,
    notes: Sequence[str],
    attribution: str,
    contents: Sequence[tuple[str, str]],
    sections: Sequence[str],
    generator: str,
) -> str:
    """The whole page; ``contents`` pairs section ids with their headings."""
    nav = "".join(f'<li><a href="#{escape(i)}">{escape(h)}</a></li>' for i, h in contents)
    notes_html = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
<script src="{PLOTLY_FILE}" charset="utf-8"></script>
</head>
<body>
<header>
<h1>{escape(title)}</h1>
<p class="attribution">{escape(attribution)}</p>
</header>
<noscript><p>The plots need JavaScript; every table below is complete without it.</p></noscript>
{f'<ul class="notes">{notes_html}</ul>' if notes else ""}
<nav><ul>{nav}</ul></nav>
{"".join(sections)}
<footer>
<p class="attribution">{escape(attribution)}</p>
<p>{escape(generator)}</p>
</footer>
</body>
</html>
"""
