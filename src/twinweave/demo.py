"""The main job: turbine twins of La Haute Borne, fitted on 2014, evaluated on 2015.

``twinweave demo`` (and ``make demo``) runs :func:`run_demo`: ingest the shipped SCADA
data into a DuckDB store, fit one twin per turbine on 2014, evaluate on 2015 against the
IEC 61400-12-1 method of bins, run the twins live through 2015 (each week predicted from
everything before it, then assimilated) with the underperformance monitor, try one
what-if, and write ``index.html`` and ``metrics.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twinweave.core import CensoredNormal, Derate, Twin, WhatIfResult, compare
from twinweave.data import Store, clean, read_source
from twinweave.domains.wind import (
    LA_HAUTE_BORNE,
    READING_HOURS,
    MonitorResult,
    TurbineSpec,
    asset_table,
    build_turbine_twin,
    coverage_note,
    evaluation_scores,
    fit_baseline,
    forgetting_for,
    live_predictions,
    model_inputs,
    monitor_fleet,
    normal_operation_checks,
    scada_path,
    turbine_emulator,
    turbine_metrics,
    unseen_note,
)
from twinweave.models import BayesianBasisRegression, ModulatedSpline
from twinweave.provenance import Recorder, file_attributes
from twinweave.report import (
    LA_HAUTE_BORNE_ATTRIBUTION,
    METRICS_FILE,
    MonitorWindow,
    Periods,
    TurbineResult,
    WhatIfSummary,
    utc_time_text,
    write_demo_report,
)
from twinweave.transfer import (
    MIN_TWINS_WITH_READINGS,
    FleetPosterior,
    FleetPrior,
    Population,
    TwinStatistics,
    calendar_weeks,
    fit_central,
)

#: Training period ends (exclusive) and evaluation starts here.
SPLIT = pd.Timestamp("2015-01-01", tz="UTC")
#: The twins remember about 13,140 readings (three months; ``FORGETTING`` is the
#: per-reading discount): the memory that
#: :func:`~twinweave.domains.wind.select_forgetting` chooses on 2014 alone
#: (``python -m benchmarks.memory``; 2015 is not looked at).
MEMORY = 13_140.0
FORGETTING = forgetting_for(MEMORY)
#: The monitor's twins learn January-June 2014; its detectors calibrate on the rest of
#: 2014 and watch from the first Monday of 2015. The monitor steps in 7-day blocks from
#: ``MONITOR_LIVE_FROM``, a Monday: calibration is 26 whole weeks, and the monitored
#: blocks are calendar weeks (Monday to Sunday, UTC), like the live twins' weeks.
MONITOR_LIVE_FROM = pd.Timestamp("2014-07-07", tz="UTC")
MONITOR_FROM = pd.Timestamp("2015-01-05", tz="UTC")


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: the report's path and the scores per turbine."""

    report: Path
    store: Path
    metrics: pd.DataFrame


Step = Callable[[str], None]


def _specs() -> dict[str, TurbineSpec]:
    table = asset_table()
    return {
        str(asset_id): TurbineSpec(str(asset_id), float(rated), float(elevation))
        for asset_id, rated, elevation in zip(
            table["asset_id"],
            table["rated_power"].to_numpy(np.float64),
            table["elevation"].to_numpy(np.float64),
            strict=True,
        )
    }


def _interval_frame(predictive: CensoredNormal) -> dict[str, np.ndarray]:
    lo, hi = predictive.interval(0.9)
    return {"mean": predictive.mean, "q05": lo, "q95": hi}


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    names = {"rmse": "rmse_kw", "crps": "crps_kw", "coverage": "coverage90"}
    return {f"{prefix}{names.get(k, k)}": v for k, v in values.items()}


def run_demo(output_dir: Path, *, step: Step = print, n_samples: int = 1000) -> DemoResult:
    """Run the main job and write the report into ``output_dir``.

    Parameters
    ----------
    output_dir
        Where ``index.html``, ``metrics.json``, ``plotly.min.js`` and the store
        ``twinweave.duckdb`` are written. An existing store there is replaced, since the
        demo rebuilds it from the shipped data.
    step
        Called with a line of text at each stage (the CLI prints it on stderr).
    n_samples
        Sample paths for the what-if.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    store_path = output_dir / "twinweave.duckdb"
    for stale in (store_path, store_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    specs = _specs()
    with Store(store_path) as store:
        recorder = Recorder(store=store)
        step(f"reading {scada_path().name}")
        info, raw = read_source(scada_path(), LA_HAUTE_BORNE)
        kept, rejected = [], []
        for asset_id, rows in raw.groupby("asset_id", sort=True):
            good, bad = clean(rows, normal_operation_checks(specs[str(asset_id)].rated_power))
            kept.append(good)
            rejected.append(bad)
        observations = pd.concat(kept, ignore_index=True)
        quarantine = pd.concat(rejected, ignore_index=True)
        summary = store.ingest(info, raw, observations, quarantine, recorder=recorder)
        blanked = quarantine["blanked"].to_numpy(dtype=bool)
        blanked_rows = quarantine.loc[blanked, "source_row"]
        n_blanked = blanked_rows[blanked_rows.isin(observations["source_row"])].nunique()
        step(
            f"ingested {summary.n_raw} readings: {summary.n_observations} kept "
            f"({n_blanked} of them with a value blanked), "
            f"{summary.n_raw - summary.n_observations} quarantined with "
            f"{int((~blanked).sum())} failed checks (a reading can fail several; listed by "
            "`twinweave quarantine`)"
        )
        twins = fit_fleet(store, recorder, specs, SPLIT)
        step(
            f"monitoring 2015 for persistent underperformance (fleet CUSUM) from "
            f"{utc_time_text(MONITOR_FROM)}, the first Monday of 2015; its twins learn the "
            f"readings before {utc_time_text(MONITOR_LIVE_FROM)} and its detectors calibrate "
            f"on {utc_time_text(MONITOR_LIVE_FROM)} to {utc_time_text(MONITOR_FROM)}"
        )
        monitored = monitor_fleet(
            store_observations(store, specs),
            specs,
            live_from=MONITOR_LIVE_FROM,
            monitor_from=MONITOR_FROM,
        )
        window = MonitorWindow(
            MONITOR_LIVE_FROM,
            MONITOR_FROM,
            max(result.readings["time"].max() for result in monitored.values()),
        )
        n_alarms = sum(len(result.alarms) for result in monitored.values())
        alarms_id = record_monitor(
            recorder,
            store,
            monitored,
            {"live_from": MONITOR_LIVE_FROM, "since": MONITOR_FROM, "until": None},
        )
        step(
            f"monitored {utc_time_text(window.monitored_from)} to the last reading, "
            f"{window.monitored_until:%Y-%m-%d %H:%M} UTC: {n_alarms} "
            + ("alarm" if n_alarms == 1 else "alarms")
        )
        results, rows_out = [], []
        for asset_id, spec in specs.items():
            step(f"{asset_id}: score 2015 (frozen and live) against the IEC baseline")
            result, row = evaluate_turbine(
                store,
                spec,
                twins[asset_id],
                SPLIT,
                monitored[asset_id],
                trained=TrainingRecord(SPLIT),
            )
            results.append(result)
            rows_out.append(row)
        whatif, whatif_id = whatif_summary(
            store,
            recorder,
            specs["R80711"],
            start=pd.Timestamp("2015-02-01", tz="UTC"),
            end=pd.Timestamp("2015-03-01", tz="UTC"),
            limit=1500.0,
            n_samples=n_samples,
        )
    metrics = pd.DataFrame(rows_out).set_index("asset_id")
    notes = [
        "Twins fitted on 2014 normal-operation data (IEC 61400-12-1 clause 8.5 style "
        "filters: downtime, curtailment, icing, stuck sensors, range, duplicates) and "
        "scored on 2015 normal-operation data; power clipped to [0, rated].",
        "The twins remember about three months of readings (forgetting factor chosen on 2014 "
        "alone by week-ahead log score: python -m benchmarks.memory). Frozen: the twin "
        "as it stood at the end of 2014 predicts all of 2015. Live: the same twin "
        "predicts each week of 2015, then assimilates it, as a running twin does.",
        "The turbines' behaviour changed late in 2014: residuals from November on are "
        "wider than before at every turbine, and stay so through 2015. Intervals "
        "under-cover at 6-15 m/s in 2015; see docs/RESULTS.md.",
    ]
    title = "twinweave demo: La Haute Borne turbine twins"
    report = write_demo_report(
        output_dir,
        results,
        whatif,
        title=title,
        notes=notes,
        attribution=LA_HAUTE_BORNE_ATTRIBUTION,
        monitor_window=window,
    )
    with Store(store_path) as store:
        versions = [t.model_version_ for t in twins.values() if t.model_version_ is not None]
        record_report(
            Recorder(store=store),
            report,
            [
                *versions,
                *(store.observations_entity(a, start=SPLIT) for a in specs),
                alarms_id,
                whatif_id,
            ],
            {"title": title, "since": SPLIT, "twins": list(specs)},
        )
    return DemoResult(report=report, store=store_path, metrics=metrics)


def record_whatif(
    recorder: Recorder,
    live: Twin,
    branch: Twin,
    result: WhatIfResult,
    n_readings: int,
    n_samples: int,
    seed: int,
) -> str:
    """Record a what-if in ``recorder`` (a store's); return the id of its result.

    A branch records into a fork of its parent's recorder, so that nothing done to it
    changes the store; the result depends on it, so its records (the branch with its
    interventions, its prediction) are kept with the result.
    """
    if isinstance(branch.recorder, Recorder):
        recorder.adopt(branch.recorder.own_records())
    used = [p for p in result.predictions if p is not None]
    summary = [
        f"{row['metric']} [{row['units']}]: live {row['baseline_mean']:.4g}, branch "
        f"{row['scenario_mean']:.4g}, difference {row['difference_mean']:.4g} "
        f"[{row['difference_lo']:.4g}, {row['difference_hi']:.4g}]"
        for row in result.to_frame().to_dict("records")
    ]
    return recorder.record(
        "whatif",
        used=used,
        generated="whatif_result",
        attributes={
            "twin": live.twin_id,
            "branch": branch.twin_id,
            "interventions": result.interventions,
            "n_readings": n_readings,
            "n_samples": n_samples,
            "seed": seed,
            "level": result.level,
            "results": summary,
        },
    )


def record_monitor(
    recorder: Recorder,
    store: Store,
    results: Mapping[str, MonitorResult],
    attributes: Mapping[str, object],
) -> str:
    """Record a monitor run over the turbines of ``results`` (their stored readings) and
    the alarms it raised, each as text; return the id of the alarms."""
    alarms = [
        f"{asset_id} {alarm.time:%Y-%m-%d} (run from {alarm.start:%Y-%m-%d}, "
        f"{alarm.run_length} day{'' if alarm.run_length == 1 else 's'}, "
        f"CUSUM {alarm.statistic:.1f})"
        for asset_id, result in results.items()
        for alarm in result.alarms
    ]
    return recorder.record(
        "monitor",
        used=[store.observations_entity(a) for a in results],
        generated="alarms",
        attributes={
            "turbines": list(results),
            **attributes,
            "n_alarms": len(alarms),
            "alarms": alarms,
        },
    )


def record_report(
    recorder: Recorder, page: Path, used: Sequence[str], attributes: Mapping[str, object]
) -> str:
    """Record a report written to ``page`` (its ``index.html``) and the ``metrics.json``
    beside it, each with its hash, from the entities ``used``; return the page's id."""
    files = [page, page.parent / METRICS_FILE]
    page_id, _ = recorder.record_many(
        "write_report",
        used=used,
        generated=["report", "file"],
        attributes=attributes,
        entity_attributes=[file_attributes(path) for path in files],
    )
    return page_id


def store_observations(store: Store, specs: Mapping[str, TurbineSpec]) -> pd.DataFrame:
    """Every stored observation of the turbines in ``specs``, in one frame."""
    return pd.concat([store.observations(a) for a in specs], ignore_index=True)


def fit_fleet(
    store: Store,
    recorder: Recorder,
    specs: Mapping[str, TurbineSpec],
    until: pd.Timestamp,
    *,
    forgetting: float = FORGETTING,
    pooled: bool = False,
    newcomers: Mapping[str, TurbineSpec] | None = None,
    progress: bool = False,
) -> dict[str, Twin]:
    """Fit and save one twin per turbine on its observations before ``until``.

    ``forgetting`` is the twins' per-reading discount (:data:`FORGETTING` by default).
    With ``pooled``, each twin is born into its fleet
    (:func:`~twinweave.transfer.fleet_emulator`): it starts from the population of the
    *other* turbines (their calendar-week statistics fitted by
    :func:`~twinweave.transfer.fit_central`, so that its own readings are not counted
    twice), then assimilates its own readings; a turbine with a day of readings then
    predicts nearly as well as one with a year. The population is recorded in the
    provenance (activity ``fleet_fit``, using the other turbines' observations) as the
    twin's first model version. ``newcomers``, turbines without readings before
    ``until`` (only with ``pooled``), are born into the fleet of all of ``specs`` and
    saved with none: they predict as a new turbine of the fleet until readings come.
    ``progress`` draws the fleet fits' rounds on stderr.
    """
    newcomers = dict(newcomers or {})
    if newcomers and not pooled:
        raise ValueError(
            f"newcomers: a turbine without readings ({', '.join(newcomers)}) needs a fleet "
            "to be born into; expected pooled=True"
        )
    trainings = {}
    for asset_id in specs:
        training = store.observations(asset_id, end=until)
        if training.empty:
            raise ValueError(f"asset {asset_id!r}: no observations before {until.isoformat()}")
        trainings[asset_id] = training
    # One provenance entity per turbine's training readings, used by every fit of them.
    sources = {a: store.observations_entity(a, end=until) for a in specs}
    populations = (
        _leave_one_out_populations(recorder, specs, trainings, sources, list(newcomers), progress)
        if pooled
        else {}
    )
    twins = {}
    for asset_id, spec in {**specs, **newcomers}.items():
        born = asset_id in newcomers
        # A newcomer's frame is empty: it tells the twin which columns its turbine has.
        training = store.observations(asset_id, end=until) if born else trainings[asset_id]
        population, population_id = populations.get(asset_id, (None, None))
        twin = build_turbine_twin(
            spec, training, forgetting=forgetting, recorder=recorder, population=population
        )
        # The fleet's population is where the twin's model starts: its first version.
        twin.model_version_ = population_id
        if not born:
            twin.update(model_inputs(training, spec.rated_power), source=sources[asset_id])
        store.save_twin(twin, note=TrainingRecord(until, born=born).note())
        twins[asset_id] = twin
    return twins


#: Relative change at which a CLI fleet fit stops. docs/TRANSFER.md's table uses 1e-5;
#: 1e-4 moves its partial-pooling scores by at most 0.0001 NMSE, 0.002 nats and 0.001
#: coverage, in a third of the rounds (docs/FEDERATED.md).
FLEET_TOL = 1e-4
#: Turbines a fleet needs for ``pooled``: each twin starts from the *others*, and the
#: spread between twins cannot be learned from one
#: (:data:`~twinweave.transfer.MIN_TWINS_WITH_READINGS`).
MIN_FLEET = MIN_TWINS_WITH_READINGS + 1


def check_fleet_turbines(specs: Mapping[str, TurbineSpec], name: str) -> None:
    """Refuse turbines that cannot be a fleet whose twins are born into it: fewer than
    :data:`MIN_FLEET`, or of several rated powers (one population is one type; the
    fleet model takes types as kinds, which these twins do not say). ``name`` is the
    option or argument a message names."""
    if len(specs) < MIN_FLEET:
        raise ValueError(
            f"{name}: a twin born into its fleet needs at least {MIN_FLEET - 1} other "
            f"turbines with training readings (the spread between turbines is learned from "
            f"them); found {len(specs)} in all ({', '.join(specs)})"
        )
    check_one_rated_power(specs, name)


def check_one_rated_power(specs: Mapping[str, TurbineSpec], name: str) -> None:
    """Refuse turbines of several rated powers for one fleet (one population is one
    type); ``name`` is the option or argument a message names."""
    rated: dict[float, list[str]] = {}
    for asset_id, spec in specs.items():
        rated.setdefault(spec.rated_power, []).append(asset_id)
    if len(rated) > 1:
        kinds = "; ".join(f"{power:g} kW: {', '.join(ids)}" for power, ids in rated.items())
        raise ValueError(f"{name}: expected turbines of one rated power (one type), got {kinds}")


def leave_one_out_fits(
    specs: Mapping[str, TurbineSpec],
    trainings: Mapping[str, pd.DataFrame],
    *,
    newcomers: Sequence[str] = (),
    progress: bool = False,
) -> dict[str, FleetPosterior]:
    """Per turbine, the fleet fit of the *other* turbines (their calendar-week statistics,
    :func:`~twinweave.transfer.fit_central` to :data:`FLEET_TOL`): what a twin born into
    its fleet starts from, its own readings not counted twice. Each turbine is
    summarised once. Each of ``newcomers`` (turbines without training readings, not in
    ``specs``) gets the fit of all of ``specs``' turbines."""
    check_fleet_turbines(specs, "specs")
    designs = {a: turbine_emulator(specs[a], trainings[a]) for a in specs}
    # A turbine's curve varies with direction and temperature only if its readings have
    # them (turbine_emulator); a fleet's twins share one basis.
    varies = {a: _curve_varies_with(design) for a, design in designs.items()}
    if len(set(varies.values())) > 1:
        listed = "; ".join(f"{a}: {', '.join(names) or 'neither'}" for a, names in varies.items())
        raise ValueError(
            "turbines: expected readings of wind direction and temperature at every "
            f"turbine or at none (a fleet's twins share one power-curve basis), got {listed}"
        )
    stats = {a: fleet_statistics(specs[a], training) for a, training in trainings.items()}
    prior = FleetPrior.from_emulator(next(iter(designs.values())))
    fits = {}
    for asset_id in specs:
        others = {a: s for a, s in stats.items() if a != asset_id}
        if progress:
            # The bars all say fit_central: say whose fleet each one is.
            _say_on_stderr(f"{asset_id}'s fleet: {', '.join(others)}")
        fits[asset_id] = fit_central(others, prior, tol=FLEET_TOL, progress=progress)
    if newcomers:
        if progress:
            _say_on_stderr(f"{', '.join(newcomers)}'s fleet: {', '.join(stats)}")
        everyone = fit_central(stats, prior, tol=FLEET_TOL, progress=progress)
        fits.update({asset_id: everyone for asset_id in newcomers})
    return fits


def _curve_varies_with(design: BayesianBasisRegression) -> tuple[str, ...]:
    """The inputs that modulate the power curve of ``design``."""
    return tuple(
        name
        for term in design.terms
        if isinstance(term, ModulatedSpline)
        for name in term.modulator.inputs
    )


def _say_on_stderr(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False)


def _leave_one_out_populations(
    recorder: Recorder,
    specs: Mapping[str, TurbineSpec],
    trainings: Mapping[str, pd.DataFrame],
    sources: Mapping[str, str],
    newcomers: Sequence[str],
    progress: bool,
) -> dict[str, tuple[Population, str]]:
    """Per turbine, the population of the others and its provenance id."""
    out = {}
    fits = leave_one_out_fits(specs, trainings, newcomers=newcomers, progress=progress)
    for asset_id, fit in fits.items():
        assert fit.population is not None  # a central fit always has one
        others = [a for a in specs if a != asset_id]
        population_id = recorder.record(
            "fleet_fit",
            used=[sources[a] for a in others],
            generated="population",
            attributes={
                "for_twin": asset_id,
                "turbines": others,
                "periods": "calendar weeks (UTC)",
                "rounds": fit.n_rounds,
                "converged": fit.converged,
                "tol": FLEET_TOL,
            },
        )
        out[asset_id] = (fit.population, population_id)
    return out


def fleet_statistics(spec: TurbineSpec, training: pd.DataFrame) -> TwinStatistics:
    """A turbine's statistics by calendar week, from an emulator configured as its
    twin's (without forgetting: the fleet's model has its own period effects)."""
    columns = model_inputs(training, spec.rated_power)
    emulator = turbine_emulator(spec, training).update(columns)
    return TwinStatistics.from_emulator(
        emulator, readings=columns, periods=calendar_weeks(columns["time"])
    )


@dataclass(frozen=True)
class TrainingRecord:
    """What a twin saved by :func:`fit_fleet` was fitted on, from its model version:
    the note (``trained until X``, or for a twin born into its fleet ``born into its
    fleet with no readings before X``) and when the version was saved. The readings of
    files ingested after that (a backfill) were not the twin's: the report fits its
    baseline without them.

    Parameters
    ----------
    until
        End (exclusive) of the training readings (``--train-until``), in UTC; a time
        without a zone is taken as UTC.
    born
        Whether the twin was born into its fleet without readings of its own.
    fitted_at
        When the model version was saved (its ``created_at``); ``None`` where not known.
    """

    until: pd.Timestamp
    born: bool = False
    fitted_at: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        for name in ("until", "fitted_at"):
            value = getattr(self, name)
            if value is not None:
                stamp = pd.Timestamp(value)
                utc = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
                object.__setattr__(self, name, utc)

    def note(self) -> str:
        """The model version's note: what :meth:`from_note` reads back."""
        if self.born:
            return f"born into its fleet with no readings before {self.until.isoformat()}"
        return f"trained until {self.until.isoformat()}"

    @classmethod
    def from_note(cls, note: str, fitted_at: pd.Timestamp | None = None) -> TrainingRecord | None:
        """The record in a model version's note, saved at ``fitted_at``; ``None`` for a
        twin saved with another note."""
        found = re.fullmatch(
            r"(?:(?P<trained>trained until)|born into its fleet with no readings before) "
            # Notes of this form from 2026-11-30 also said how many readings, from when.
            r"(?P<until>\S+)(?: on \d+ readings from \S+)?",
            note.strip(),
        )
        if found is None:
            return None
        try:
            until = pd.Timestamp(found["until"])
        except ValueError:
            return None
        return cls(until, found["trained"] is None, fitted_at)


def evaluate_turbine(
    store: Store,
    spec: TurbineSpec,
    twin: Twin,
    since: pd.Timestamp,
    monitored: MonitorResult | None = None,
    *,
    trained: TrainingRecord | None = None,
) -> tuple[TurbineResult, dict[str, float | str]]:
    """Score ``twin``, fitted as ``trained`` says, on the readings from ``since`` on.

    Reports the frozen twin (as it stood at the end of its training, ``trained.until``),
    the IEC method of bins fitted on the same readings as the twin (those before
    ``trained.until`` of the files ingested before ``trained.fitted_at``), and a live
    twin that first assimilates the readings from ``trained.until`` to ``since``, then
    predicts each week from everything before it and assimilates it; ``monitored`` adds
    the monitor's anomaly scores and alarms. Without ``trained`` (a twin whose training
    is not known) the baseline is fitted on every reading before ``since`` and the
    result states no periods. A twin born into its fleet (``trained.born``) has no
    readings of its own: its baseline is fitted on the readings from ``trained.until``
    to ``since`` (those its live twin assimilates), as its periods say.
    """
    if trained is not None and trained.until > since:
        raise ValueError(
            f"asset {spec.asset_id!r}: trained until {trained.until.isoformat()}, after "
            f"{since.isoformat()}: its scores from then on would not be held out"
        )
    training_end = since if trained is None else trained.until
    born = trained is not None and trained.born
    # What the fit read: the readings before its end that the store held then.
    training = (
        store.observations(spec.asset_id, start=training_end, end=training_end)  # none
        if born
        else store.observations(
            spec.asset_id,
            end=training_end,
            ingested_before=None if trained is None else trained.fitted_at,
        )
    )
    evaluation = store.observations(spec.asset_id, start=since)
    if evaluation.empty:
        raise ValueError(f"asset {spec.asset_id!r}: no observations from {since.isoformat()}")
    between = store.observations(spec.asset_id, start=training_end, end=since)
    # A twin born into its fleet has no readings of its own before its training end:
    # its baseline is fitted on those its live twin assimilates before scoring.
    if (training.empty and not born) or (born and between.empty):
        raise ValueError(
            f"asset {spec.asset_id!r}: no observations before {since.isoformat()} to fit the "
            "IEC baseline on"
            + (
                f" (its twin was born into its fleet at {training_end.isoformat()}, without "
                "readings: give a later --since)"
                if born
                else ""
            )
        )
    baseline = fit_baseline(spec, between if born else training)
    test_inputs = model_inputs(evaluation, spec.rated_power)
    frozen = twin.predict(test_inputs, source=store.observations_entity(spec.asset_id, start=since))
    reference = baseline.predict(test_inputs)
    # The live twin is the same twin running on: a branch, so the frozen one stays. It
    # has run since the end of its training: what came in meanwhile, it has assimilated.
    running = twin.branch()
    if not between.empty:
        running.update(model_inputs(between, spec.rated_power))
    live = live_predictions(running, evaluation, spec.rated_power)
    metrics: dict[str, float] = {
        **_prefixed("", evaluation_scores(frozen, evaluation, spec.rated_power)),
        **_prefixed("baseline_", evaluation_scores(reference, evaluation, spec.rated_power)),
        **_prefixed("live_", evaluation_scores(live, evaluation, spec.rated_power)),
    }
    table = pd.DataFrame(
        {
            "time": pd.to_datetime(evaluation["time"].to_numpy(), utc=True),
            "wind_speed": evaluation["wind_speed"].to_numpy(np.float64),
            "power": test_inputs["power"],
            **_interval_frame(frozen),
            "baseline_mean": reference.mean,
            # The live twin's interval: the page judges its coverage per wind-speed bin.
            **{
                f"live_{name}": values
                for name, values in _interval_frame(live).items()
                if name != "mean"
            },
        }
    )
    table = _with_monitoring(table, monitored)
    if monitored is not None:
        metrics["n_alarms"] = float(len(monitored.alarms))
    grid = np.arange(0.0, 25.01, 0.25)
    curve = pd.DataFrame(
        {
            "wind_speed": grid,
            **_interval_frame(twin.emulator.predict({"wind_speed": grid})),
            "baseline_mean": baseline.predict({"wind_speed": grid}).mean,
        }
    )
    if isinstance(twin.emulator, BayesianBasisRegression):
        # Beyond the wind speeds of its readings the twin extrapolates: the page says so.
        curve["seen"] = twin.emulator.seen({"wind_speed": grid})
    periods = (
        None
        if trained is None
        else Periods(
            trained_from=None if born else pd.Timestamp(training["time"].min()),
            trained_until=trained.until,
            scored_from=since,
            n_trained=len(training),
            n_baseline=len(between) if born else None,
        )
    )
    row: dict[str, float | str] = {"asset_id": spec.asset_id, **metrics}
    result = TurbineResult(
        spec.asset_id, table, metrics, curve, periods, monitored=monitored is not None
    )
    return result, row


def _with_monitoring(table: pd.DataFrame, monitored: MonitorResult | None) -> pd.DataFrame:
    """Join the monitor's scores and alarms on time; unmonitored readings get NaN/False."""
    if monitored is None:
        return table.assign(anomaly_score=np.nan, alarm=False)
    scores = monitored.readings[["time", "anomaly_score", "alarm"]]
    joined = table.merge(scores, on="time", how="left")
    joined["alarm"] = joined["alarm"].astype("boolean").fillna(False).astype(bool)
    return joined


def _whatif_caveats(
    live: Twin, inputs: Mapping[str, np.ndarray], n_readings: int
) -> tuple[str, ...]:
    """What ``twinweave whatif`` warns of for the same question, as sentences for the
    page: gaps in the readings (energy and hours count only the readings present) and
    wind speeds where the twin has no readings near."""
    notes = [coverage_note(inputs["time"], n_readings, READING_HOURS)]
    if isinstance(live.emulator, BayesianBasisRegression):
        notes.append(unseen_note(live.emulator.seen(dict(inputs)), inputs["wind_speed"]))
    return tuple(note[0].upper() + note[1:] + "." for note in notes if note is not None)


def whatif_summary(
    store: Store,
    recorder: Recorder,
    spec: TurbineSpec,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    limit: float,
    n_samples: int = 1000,
) -> tuple[WhatIfSummary, str]:
    """Derate the stored twin to ``limit`` [kW] over ``[start, end)``, against the stored
    twin itself (as fitted: the frozen twin of the page's scores, not the live one);
    also the id of the what-if's record in ``recorder``.

    The series shown is the windiest day of the period, where the derate bites most.
    """
    live = store.load_twin(spec.asset_id, recorder=recorder)
    period = store.observations(spec.asset_id, start=start, end=end)
    if period.empty:
        raise ValueError(f"asset {spec.asset_id!r}: no observations in [{start}, {end})")
    inputs = model_inputs(period, spec.rated_power)
    inputs.pop("power")
    branch = live.branch(Derate(limit, units="kW"))
    seed = 0
    result = compare(
        live,
        branch,
        inputs,
        turbine_metrics(spec.rated_power),
        n_samples=n_samples,
        seed=seed,
        source=store.observations_entity(spec.asset_id, start=start, end=end),
    )
    result_id = record_whatif(recorder, live, branch, result, len(period), n_samples, seed)
    days = period["time"].dt.floor("D")
    daily = period.groupby(days)["wind_speed"].mean()
    windiest = pd.Timestamp(daily.index[int(np.argmax(daily.to_numpy()))])
    day = (days == windiest).to_numpy()
    day_inputs = {name: values[day] for name, values in inputs.items()}
    day_source = store.observations_entity(
        spec.asset_id, start=windiest, end=windiest + pd.Timedelta(days=1)
    )
    base_day = live.predict(day_inputs, source=day_source)
    scen_day = branch.predict(day_inputs, source=day_source)
    base_lo, base_hi = base_day.interval(0.9)
    scen_lo, scen_hi = scen_day.interval(0.9)
    series = pd.DataFrame(
        {
            "time": pd.to_datetime(period.loc[day, "time"].to_numpy(), utc=True),
            "baseline_mean": base_day.mean,
            "baseline_lo": base_lo,
            "baseline_hi": base_hi,
            "scenario_mean": scen_day.mean,
            "scenario_lo": scen_lo,
            "scenario_hi": scen_hi,
        }
    )
    summary = WhatIfSummary(
        caveats=_whatif_caveats(live, inputs, len(period)),
        title=f"Derate {spec.asset_id} to {limit:g} kW",
        description=(
            f"A branch of the {spec.asset_id} twin capped at {limit:g} kW, against the twin "
            "as stored (as fitted, not updated with these readings: the frozen twin of the "
            f"scores above), on the recorded wind from {start:%Y-%m-%d} to {end:%Y-%m-%d} "
            f"({len(period)} readings; the plot shows the windiest day, {windiest:%Y-%m-%d}); "
            f"{n_samples} joint sample paths with common random numbers."
        ),
        table=result.to_frame(),
        series=series,
    )
    return summary, result_id
