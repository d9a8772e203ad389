"""The ``twinweave`` command line: ingest, fit, predict, what-if, monitor, provenance, report.

Thin by design: every command composes the public API; no model logic lives here.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import io
import json
import math
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import click
import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from twinweave.core import (
    Derate,
    Intervention,
    ScaleTarget,
    Stop,
    Twin,
    compare,
    duration_text,
    parse_unit,
    time_seconds,
    usual_step_hours,
)
from twinweave.data import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    DataError,
    SourceSpec,
    Store,
    asset_ids,
    clean,
    csv_line,
    describe_row,
    file_kind,
    has_utc_offset,
    read_source,
    refuse_out_of_range,
    refuse_short_rows,
)
from twinweave.demo import (
    MEMORY,
    MIN_FLEET,
    TrainingRecord,
    check_fleet_turbines,
    check_one_rated_power,
    fit_fleet,
    record_monitor,
    record_report,
    record_whatif,
)
from twinweave.domains.wind import (
    LA_HAUTE_BORNE,
    READING_HOURS,
    HoursAtRated,
    MonitorResult,
    TurbineSpec,
    asset_table,
    coverage_note,
    forgetting_for,
    model_inputs,
    normal_operation_checks,
    turbine_emulator,
    turbine_metrics,
    unseen_note,
)
from twinweave.models import BayesianBasisRegression
from twinweave.monitoring import MIN_CALIBRATION_PERIODS, MIN_PERIOD_READINGS, Alarm
from twinweave.provenance import ProvRecord, Recorder, file_attributes
from twinweave.report import TurbineResult, utc_time_text

app = typer.Typer(
    help="Digital twins of assets from their sensor data, with calibrated uncertainty.",
    no_args_is_help=True,
    add_completion=False,
    # Help texts carry units in brackets ("[kW]"), which Rich markup would swallow.
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)


class _ReaderMayLeave(Console):
    """A console whose reader may go away (``twinweave fit ... | head``): it falls
    quiet, and the command's work (a fit saved to the store) still completes. Rich's own
    handler exits instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        # Python flushes the stream at exit; pointed at /dev/null that cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.file.fileno())
        os.close(devnull)


def _console(*, stderr: bool) -> _ReaderMayLeave:
    """A console that prints text as given: ids, paths and values come from the user or
    the data, and Rich would read ``o[b].csv`` as markup and ``prediction:ok`` as an
    emoji code. Styling is asked for where it is meant (``markup=True``)."""
    stream = sys.stderr if stderr else sys.stdout
    # Closed (``>&-``), Python gives None and Rich writes nowhere.
    interactive = stream is not None and stream.isatty()
    # Piped into a file or a log, lines are not wrapped at 80 columns: commands and
    # paths printed for copying stay whole.
    return _ReaderMayLeave(
        stderr=stderr,
        width=None if interactive else 200,
        soft_wrap=not interactive,
        markup=False,
        emoji=False,
    )


console = _console(stderr=False)
# Errors and warnings go to stderr, so that output piped on (a table, JSON) stays clean.
diagnostics = _console(stderr=True)

#: Errors whose message is written for the user (bad input, an unknown id, a missing or
#: locked file): ``main`` prints them as one line; anything else is a bug and keeps its
#: traceback.
USER_ERRORS = (ValueError, KeyError, OSError)
#: Of those, the ones raised only for the user's input or files; the others (a
#: ValueError, KeyError or OSError from deeper down) may be a bug, so their line says how
#: to see the traceback.
INPUT_ERRORS = (DataError, FileNotFoundError, IsADirectoryError, PermissionError)


def _fill_closed_descriptors() -> None:
    """Put /dev/null on a closed stdout or stderr (``>&-``). Left closed, the next file
    opened takes its descriptor, and whatever writes to the descriptor (a library
    printing to stdout) writes into that file: the store, say. ``sys.stdout`` stays
    None, which is how the commands know that stdout was closed."""
    for descriptor in (1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != descriptor:  # the lowest free descriptor; another if 0 is closed too
                os.dup2(null, descriptor)
                os.close(null)


def main() -> None:
    """The ``twinweave`` entry point: a user error prints ``error: ...`` and exits with
    code 2; ``TWINWEAVE_DEBUG=1`` shows its traceback instead. Ctrl-C while DuckDB runs
    a query (which it turns into an error of its own) exits with code 130."""
    # A library's warning reads as the CLI's own: one "warning:" line on stderr.
    warnings.showwarning = lambda message, *_, **__: _warn(str(message))
    _fill_closed_descriptors()
    try:
        # Not standalone: Click's own refusals of the command line come here, to be
        # printed as one error line like every other.
        code = app(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        raise SystemExit(error.exit_code) from None  # the help is printed already
    except click.ClickException as error:
        # An option's value that is not a number, an unknown option or command.
        context = getattr(error, "ctx", None)
        hint = "" if context is None else f" (`{context.command_path} --help` shows the usage)"
        _error(error.format_message() + hint)
        raise SystemExit(error.exit_code) from None
    except click.Abort:
        _error("aborted")
        raise SystemExit(1) from None
    except USER_ERRORS as error:
        if os.environ.get("TWINWEAVE_DEBUG"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        _error(str(message))
        for note in getattr(error, "__notes__", ()):
            diagnostics.print(note, highlight=False)
        if not isinstance(error, INPUT_ERRORS):
            diagnostics.print(
                "(if this looks like a bug rather than your input, rerun with "
                "TWINWEAVE_DEBUG=1 for the traceback)",
                style="dim",
                highlight=False,
            )
        raise SystemExit(2) from None
    except Exception as error:
        if not _interrupted(error) or os.environ.get("TWINWEAVE_DEBUG"):
            raise
        _error(
            "interrupted: the store is as it was before the step that was running, or "
            "holds that step complete (an ingest is never half-written); run the command "
            "again to finish"
        )
        raise SystemExit(130) from None
    # typer.Exit(code) (a command's own refusal, Ctrl-C: 130) comes back as its code.
    if isinstance(code, int) and code:
        raise SystemExit(code)


def _interrupted(error: Exception) -> bool:
    """Whether ``error`` is DuckDB's form of Ctrl-C: SIGINT while a query runs, raised
    as an error of its own, or found by the next statement as an aborted transaction."""
    import duckdb

    return (
        isinstance(error, duckdb.InterruptException)
        or (isinstance(error, RuntimeError) and "Query interrupted" in str(error))
        or (isinstance(error, duckdb.TransactionException) and "is aborted" in str(error))
    )


if TYPE_CHECKING:
    _TimeType = click.ParamType[datetime]
else:
    # Click is generic in its types only from 8.3; Typer accepts older ones.
    _TimeType = click.ParamType


_YEAR_OR_MONTH = re.compile(r"\d{4}(-\d{2})?")


class _UtcTime(_TimeType):
    """An ISO 8601 time, as UTC: one with ``Z`` or an offset is converted, one without
    is read as UTC. Click's ``DateTime`` (Typer's type for ``datetime``) refuses ``Z``
    and offsets, which the shipped data and ``isoformat()`` write. A year or a month
    alone (ISO 8601's reduced precision, ``2015`` or ``2015-02``) is its first instant,
    which Python's ``fromisoformat`` refuses."""

    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        text = str(value).strip()
        completed = text
        if _YEAR_OR_MONTH.fullmatch(text):
            completed += "-01-01" if len(text) == 4 else "-01"
        try:
            parsed = datetime.fromisoformat(completed)
        except ValueError as error:
            # Python names what is wrong ("month must be in 1..12"); its "Invalid
            # isoformat string" only repeats the value.
            why = "" if "isoformat" in str(error) else f" ({error})"
            self.fail(
                f"{text!r}{why}; expected an ISO 8601 time such as 2015-01, 2015-01-01, "
                "2015-01-01T00:00:00Z or 2015-01-01T01:00:00+01:00 (UTC unless it "
                "carries Z or an offset)",
                param,
                ctx,
            )
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


#: The type of every time option.
UTC_TIME = _UtcTime()
#: How every time option's help says what it takes.
_ZONE = "(ISO 8601; UTC unless it carries Z or an offset)"

StoreOption = Annotated[Path, typer.Option("--store", help="DuckDB store file.")]
TwinOption = Annotated[str, typer.Option("--twin", help="Twin id (the asset's name).")]


def _error(message: str) -> None:
    diagnostics.print("[bold red]error:[/] ", end="", markup=True)
    diagnostics.print(message, highlight=False)


def _warn(message: str) -> None:
    diagnostics.print("[yellow]warning:[/] ", end="", markup=True)
    diagnostics.print(message, highlight=False)


def _fail(message: str) -> typer.Exit:
    _error(message)
    return typer.Exit(code=2)


def _open_store(path: Path, *, create: bool = False, read_only: bool = False) -> Store:
    """The store at ``path``; commands that read twins never create an empty one, and a
    file that is not a store (or is locked) is named as the user's to fix."""
    if not create and not path.exists():
        raise _fail(
            f"{path}: no such store; create it with `twinweave fit DATA --store {path} "
            f"--train-until TIME` (or `twinweave ingest`)"
        )
    if not read_only:
        _check_writable(path)
    try:
        return Store(path, read_only=read_only)
    except OSError as error:
        raise _fail(str(error)) from None


def _cannot_add_to(folder: Path) -> str | None:
    """Why nothing can be created in ``folder``, or ``None``. A folder made and removed
    there is the test: ``os.access`` grants root every folder, /proc's and a read-only
    mount's too, so the refusal came only when the work was done."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder))
    except OSError as error:
        return error.strerror or str(error)
    return None


def _cannot_write(path: Path) -> str | None:
    """Why the existing file ``path`` cannot be opened for writing (it is opened, not
    changed), or ``None``; see :func:`_cannot_add_to`."""
    try:
        with path.open("r+b"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def _check_writable(path: Path) -> None:
    """Refuse a store this command cannot write before any work: DuckDB opens a
    read-only file with a bare 'Permission denied', and a file in a folder it cannot
    write to fails only at the first commit (its write-ahead log goes beside it, beside
    the file a link points to)."""
    store = path.resolve()
    folder = store.parent
    if not folder.is_dir():
        raise _fail(f"{path}: no such folder {folder}; create it first, or name a store in one")
    # Other kinds of file (a folder, a device) are named as such when opened.
    if store.is_file() and (why := _cannot_write(store)) is not None:
        raise _fail(
            f"{path}: the store is not writable ({why}), and this command writes to it "
            "(every command but provenance and quarantine records its provenance)"
        )
    if (why := _cannot_add_to(folder)) is not None:
        raise _fail(
            f"{path}: its folder {folder} is not writable ({why}), and DuckDB writes its log "
            f"({_wal(path).name}) beside a store it writes to; copy the store to a folder "
            "you can write to (provenance and quarantine only read it)"
        )


def _wal(path: Path) -> Path:
    """The write-ahead log DuckDB keeps beside the store (beside the file a link to it
    points to)."""
    store = path.resolve()
    return store.with_name(store.name + ".wal")


@contextmanager
def _store_to_write(path: Path) -> Iterator[Store]:
    """The store at ``path``, created if absent; a store this command created is
    removed again if the command fails before anything was stored in it (a bad input
    file would otherwise leave an empty store that later commands take for a real one)."""
    created = not path.exists()
    failed = empty = False
    db = _open_store(path, create=True)
    try:
        with db:
            try:
                yield db
            except BaseException:
                failed = True
                raise
            finally:
                if created and failed:
                    # A store that cannot say it is empty is kept: nothing may be lost.
                    with contextlib.suppress(Exception):
                        empty = db.sources().empty and not db.twin_ids()
    finally:
        if created and failed and empty:
            for leftover in (path, _wal(path)):
                leftover.unlink(missing_ok=True)


def _load_twin(db: Store, twin_id: str, recorder: Recorder | None = None) -> Twin:
    """The latest version of a stored turbine twin; an unknown id, or a twin of another
    domain (the commands read wind speeds and write kW), is the user's to fix."""
    try:
        twin = db.load_twin(twin_id, recorder=recorder)
    except KeyError as error:
        raise _fail(str(error.args[0] if error.args else error)) from None
    if (why := _not_a_turbine(twin)) is not None:
        raise _fail(why)
    return twin


def _turbine_twins(db: Store) -> dict[str, Twin]:
    """The store's turbine twins; others (a reservoir's, saved from Python) are warned
    of and left out."""
    twins = {}
    for twin_id in db.twin_ids():
        twin = db.load_twin(twin_id)
        if (why := _not_a_turbine(twin)) is None:
            twins[twin_id] = twin
        else:
            _warn(f"{why}; left out")
    return twins


def _not_a_turbine(twin: Twin) -> str | None:
    """Why ``twin`` is not one the commands serve, or ``None`` for a wind turbine's."""
    try:
        TurbineSpec.from_twin(twin)
    except ValueError:
        unit = twin.schema.variable(twin.target).unit
        return (
            f"twin {twin.twin_id!r}: a twin of {twin.target!r} [{unit}] (schema "
            f"{twin.schema.name!r}), not of a wind turbine's power; the command line serves "
            "turbine twins, others are used from Python (docs/RESERVOIRS.md for reservoirs)"
        )
    return None


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        # On stderr with the other diagnostics: stdout carries results only.
        console=diagnostics,
        transient=False,
    ) as progress:
        yield progress


def _turbine_specs(
    asset_ids: list[str],
    known: Mapping[str, TurbineSpec],
    rated_power: float | None,
    elevation: float | None,
) -> dict[str, TurbineSpec]:
    """Rated power and elevation per asset: from the turbines ``known``
    (:func:`_known_specs`), else ``--rated-power`` and ``--elevation`` (sea level if
    not given: :func:`_warn_sea_level`)."""
    specs: dict[str, TurbineSpec] = {}
    for asset_id in asset_ids:
        if asset_id in known:
            specs[asset_id] = known[asset_id]
        elif rated_power is not None:
            specs[asset_id] = TurbineSpec(asset_id, rated_power, elevation or 0.0)
        else:
            raise _fail(
                f"asset {asset_id!r}: no rated power known; expected it in --assets FILE "
                f"(columns asset_id, rated_power [kW], elevation [m]) or --rated-power"
            )
    return specs


def _warn_sea_level(
    asset_ids: Collection[str], known: Mapping[str, TurbineSpec], elevation: float | None
) -> None:
    """Say which turbines were placed at sea level for want of an ``--elevation``: the
    air pressure, so the density a power curve is normalised by, follows it."""
    if elevation is not None:
        return
    unknown = [a for a in asset_ids if a not in known]
    if unknown:
        shown = ", ".join(repr(a) for a in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        _warn(
            f"asset{'s' if len(unknown) > 1 else ''} {shown}{more}: no elevation given, "
            "taken as 0 m (sea level) for the air pressure; --elevation M or --assets FILE "
            "if the site is higher (at 400 m the air is about 5 % thinner)"
        )


def _known_specs(
    assets: Path | None, rated_power: float | None, elevation: float | None
) -> dict[str, TurbineSpec]:
    """The turbines of ``--assets FILE``, else of the shipped asset table, whose values
    ``--rated-power`` and ``--elevation`` replace (it is a default; the file is not);
    read once per command."""
    if rated_power is not None and not 0 < rated_power < math.inf:
        raise _fail(f"--rated-power: expected a finite number > 0 [kW], got {rated_power:g}")
    if assets is not None:
        normalised = _read_asset_table(assets)
        rated_power = elevation = None
    else:
        normalised = _normalise_asset_table(asset_table(), "the shipped asset table")
    return {
        str(asset_id): TurbineSpec(
            str(asset_id),
            float(rated) if rated_power is None else rated_power,
            float(elevation_m) if elevation is None else elevation,
        )
        for asset_id, rated, elevation_m in zip(
            normalised["asset_id"],
            normalised["rated_power"].to_numpy(np.float64),
            normalised["elevation"].to_numpy(np.float64),
            strict=True,
        )
    }


def _read_asset_table(path: Path) -> pd.DataFrame:
    """``--assets FILE``, checked: every rated power a number > 0 [kW] and every elevation
    a number [m], each refusal naming the file, column, row, line and value."""
    if not path.is_file():
        raise _fail(f"--assets {path}: no such file; expected a CSV file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise _fail(f"--assets {path}: cannot be read as CSV: {error}") from None
    table = _normalise_asset_table(table, f"--assets {path}")
    # A turbine listed twice would silently take the last row's values.
    twice = table["asset_id"].duplicated(keep=False).to_numpy()
    if twice.any():
        rows = np.flatnonzero(twice)
        asset_id = table["asset_id"].iloc[rows[0]]
        same = rows[table["asset_id"].iloc[rows].to_numpy() == asset_id]
        listed = ", ".join(describe_row(int(r), csv_line(path, int(r))) for r in same[:3])
        raise _fail(
            f"--assets {path}: column 'asset_id': {asset_id!r} is listed more than once "
            f"({listed}); expected one row per turbine"
        )
    for name, expected, lowest in (
        ("rated_power", "a number > 0 [kW]", 0.0),
        ("elevation", "a number [m]", -np.inf),
    ):
        text = table[name].astype(str)
        values = pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values <= lowest)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise _fail(
                f"--assets {path}: column {name!r}, "
                f"{describe_row(row, csv_line(path, row))}: expected {expected}, got "
                f"{text.iloc[row]!r}"
            )
        table[name] = values
    return table


def _normalise_asset_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    renames = {
        "Wind_turbine_name": "asset_id",
        "Rated_power": "rated_power",
        "elevation_m": "elevation",
    }
    table = table.rename(columns=renames)
    missing = {"asset_id", "rated_power"} - set(table.columns)
    if missing:
        raise _fail(
            f"{source}: expected columns asset_id, rated_power [kW] and optionally "
            f"elevation [m]; missing {sorted(missing)}, got {list(table.columns)}"
        )
    if "elevation" not in table:
        table = table.assign(elevation=0.0)
    return table


#: Wind speeds [m/s] at which a turbine in operation produces near its rated power.
_STRONG_WIND = (13.0, 25.0)
#: Wind speeds [m/s] from which a turbine in operation produces a good part of it.
_FAIR_WIND = (9.0, 25.0)
#: Share of a turbine's readings that, quarantined by one check, points at the source:
#: out of range in one variable (its unit), or a stuck sensor (too few digits).
_SUSPECT_SHARE = 0.1


def _warn_if_units_look_wrong(
    asset_id: str,
    rows: pd.DataFrame,
    rejected: pd.DataFrame,
    rated_power: float,
    spec: SourceSpec,
) -> None:
    """Warn where a turbine's readings look read in the wrong unit: most of them above
    its rated power (a rated power in MW, 2.05 for 2,050 kW, or power in W labelled kW),
    power far below rated in fair or strong wind (power in MW labelled kW, wind in km/h
    labelled m/s), or many readings of a variable out of its physical range (a unit
    mistyped, such as ``kmph``, which pint reads as kilo-miles per hour). Each
    quarantines or skews readings without any single one being wrong."""
    if not len(rows):
        return
    out_of_range = rejected[rejected["check"] == "range"]
    values = pd.to_numeric(out_of_range["value"], errors="coerce")
    above = out_of_range.loc[
        (out_of_range["variable"] == "power") & (values > rated_power), "source_row"
    ].nunique()
    if above > 0.5 * len(rows):
        _warn(
            f"asset {asset_id!r}: {above} of {len(rows)} readings are above its rated power "
            f"{rated_power:g} kW (quarantined as out of range); is the rated power in kW "
            "(--assets, --rated-power), and the power column's unit right (--mapping)?"
        )
    else:
        _warn_if_mostly_out_of_range(asset_id, rows, out_of_range, spec)
    # Between rated wind speed and cut-out a turbine in operation is at rated power most
    # of the time; well below it, the wind's unit (km/h) or power's (MW) is the suspect.
    # Producing readings only, and not those found curtailed or down: a turbine stopped
    # or capped through a stormy week is no unit error.
    held_back = rejected.loc[rejected["check"].isin(["curtailment", "downtime"]), "source_row"]
    running = rows[(rows["power"] > 0) & ~rows["source_row"].isin(held_back)]
    strong = running["power"][running["wind_speed"].between(*_STRONG_WIND)]
    fair = running["power"][running["wind_speed"].between(*_FAIR_WIND)]
    light = running["power"][running["wind_speed"].between(4.0, 7.0)]

    # Power in another unit still rises with the wind; a stopped turbine's readings of a
    # few kW either way do not.
    def rises(windy: pd.Series[float]) -> bool:
        return bool(light.count() < 20 or windy.median() >= 3.0 * light.median())

    if strong.count() >= 100 and strong.median() < 0.5 * rated_power and rises(strong):
        _warn(
            f"asset {asset_id!r}: at wind speeds of {_STRONG_WIND[0]:g}-{_STRONG_WIND[1]:g} "
            f"m/s half its readings with power are below {strong.median():.3g} kW, under "
            f"half its rated power {rated_power:g} kW; are the units of wind speed and power "
            "right (m/s or km/h; W, kW or MW: --mapping)?"
        )
    elif strong.count() >= 100 and strong.quantile(0.99) < 0.8 * rated_power:
        # Most but not all the way: a rated power given too high (3,000 for a 2,050 kW
        # machine) leaves the predictions' upper bound where the turbine never goes.
        _warn(
            f"asset {asset_id!r}: at wind speeds of {_STRONG_WIND[0]:g}-{_STRONG_WIND[1]:g} "
            f"m/s 99 % of its readings with power are below {strong.quantile(0.99):.4g} kW, "
            f"under 80 % of its rated power {rated_power:g} kW; is the rated power right "
            "(--rated-power, --assets)?"
        )
    elif fair.count() >= 100 and fair.quantile(0.99) < 0.1 * rated_power and rises(fair):
        # A sheltered site may see few strong winds in a file; from 9 m/s a turbine in
        # operation makes a third or more of its rated power, so 99 % of readings under a
        # tenth of it is a unit (or a rated power 1,000 times too large).
        _warn(
            f"asset {asset_id!r}: at wind speeds of {_FAIR_WIND[0]:g}-{_FAIR_WIND[1]:g} m/s "
            f"99 % of its readings with power are below {fair.quantile(0.99):.3g} kW, under "
            f"a tenth of its rated power {rated_power:g} kW; are the units of wind speed and "
            "power right (m/s or km/h; W, kW or MW: --mapping), and the rated power in kW?"
        )


def _warn_if_mostly_stuck(asset_id: str, rows: pd.DataFrame, rejected: pd.DataFrame) -> None:
    """Warn where many of a turbine's readings are quarantined as a stuck sensor: values
    written to few digits (wind speed to 0.1 m/s, or to 1 km/h: 17 % of a La Haute Borne
    turbine's readings then repeat three times in a row) repeat by chance, and a live
    sensor looks frozen."""
    stuck = rejected[rejected["check"] == "stuck_sensor"]
    n_stuck = stuck["source_row"].nunique()
    if n_stuck <= _SUSPECT_SHARE * len(rows):
        return
    _warn(
        f"asset {asset_id!r}: {n_stuck} of {len(rows)} readings quarantined as a stuck "
        f"sensor, for example {stuck['reason'].iloc[0]}; values written to few digits (0.1 "
        "m/s, 1 km/h) repeat by chance: does the source hold more digits? (`twinweave "
        "quarantine` lists them)"
    )


def _warn_if_mostly_out_of_range(
    asset_id: str, rows: pd.DataFrame, out_of_range: pd.DataFrame, spec: SourceSpec
) -> None:
    """Name each variable of which many of the turbine's readings were quarantined as
    out of its physical range, with the unit the mapping reads it in."""
    for variable, entries in out_of_range.groupby("variable", sort=True):
        n_out = entries["source_row"].nunique()
        if n_out <= _SUSPECT_SHARE * len(rows):
            continue
        column = spec.columns.get(str(variable))
        unit = (
            f" (read from column {column.source!r} in {column.unit!r}, which is "
            f"{parse_unit(column.unit)})"
            if column is not None
            else ""
        )
        rated = " and the rated power (--rated-power, --assets)" if variable == "power" else ""
        _warn(
            f"asset {asset_id!r}: {n_out} of {len(rows)} readings quarantined because "
            f"{variable}{unit} is out of range, for example {entries['reason'].iloc[0]}; "
            f"are its unit (--mapping){rated} right?"
        )


def _check_same_settings(
    data: Path, sha256: str, stored: dict[str, Any] | None, settings: dict[str, Any]
) -> None:
    """Refuse a file the store holds as read with other settings (another mapping or
    rated power): its stored readings would silently stand for the new reading."""
    if stored is None:
        # Not recorded: ingested from Python (Store.ingest without settings) or by a
        # store older than format 4. The rated power it was cleaned with is unknown.
        rated = settings.get("rated_power_kw", {})
        given = ", ".join(f"{a} {power:g} kW" for a, power in rated.items())
        _warn(
            f"{data}: in the store without the settings it was read and cleaned with "
            "(ingested from Python, or by an older twinweave), so whether these rated "
            f"powers ({given}) are the ones that cleaned its readings cannot be checked"
        )
        return
    before, now = _flat(_normalised(stored)), _flat(_normalised(settings))
    if before == now:
        return
    differing = [
        key for key in sorted(before.keys() | now.keys()) if before.get(key) != now.get(key)
    ]

    # Shown as written (a unit as spelt), compared as read.
    written_before, written_now = _flat(stored), _flat(settings)

    def shown(written: dict[str, Any], read: dict[str, Any], key: str) -> str:
        return repr(written.get(key, read.get(key))) if key in read else "none"

    listed = "; ".join(
        f"{key}: {shown(written_before, before, key)} then, {shown(written_now, now, key)} now"
        for key in differing[:3]
    )
    more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
    raise _fail(
        f"{data}: already in the store (sha256 {sha256[:12]}), read then with other "
        f"settings ({listed}{more}); the store keeps the readings as first read and a "
        "twin would be fitted on them. To read the file with these settings, use a new "
        "store (--store NEW.duckdb)"
    )


def _normalised(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with the mapping as this twinweave reads it: a key a later version added
    takes its default, so that files stored before are not taken as read otherwise."""
    try:
        mapping = SourceSpec.model_validate(settings.get("mapping", {})).model_dump(mode="json")
    except ValueError:
        return settings
    for column in mapping["columns"].values():
        # One unit however it is spelt ('km/h', 'kilometer/hour').
        column["unit"] = str(parse_unit(column["unit"]))
    return {**settings, "mapping": mapping}


def _settings_of(source: pd.Series) -> dict[str, Any] | None:
    """The settings a row of :meth:`Store.sources` was read with (``None`` if not kept:
    a store older than format 4)."""
    text = source.get("settings")
    return None if text is None or pd.isna(text) else dict(json.loads(text))


def _check_same_rated_power(sources: pd.DataFrame, specs: Mapping[str, TurbineSpec]) -> None:
    """Refuse a turbine whose rated power differs from the one its stored readings were
    cleaned with (from any file of ``sources``, :meth:`Store.sources`): they stay
    quarantined or kept by that one, and a twin would be fitted on them."""
    for _, source in sources.iterrows():
        stored = (_settings_of(source) or {}).get("rated_power_kw", {})
        path = source["path"]
        for asset_id, spec in specs.items():
            before = stored.get(asset_id)
            if before is not None and before != spec.rated_power:
                raise _fail(
                    f"asset {asset_id!r}: rated power {spec.rated_power!r} kW, but its "
                    f"readings from {path} were cleaned in this store with {before!r} kW; "
                    "the store keeps them as cleaned then and a twin would be fitted on "
                    "them. To clean them with this one, use a new store (--store NEW.duckdb)"
                )


def _flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"mapping.columns.power.unit": "kW", ...}``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _read_settings(spec: SourceSpec, specs: Mapping[str, TurbineSpec]) -> dict[str, Any]:
    """What the user chooses about reading and cleaning a file (the checks follow)."""
    return {
        "mapping": spec.model_dump(mode="json"),
        "rated_power_kw": {asset_id: s.rated_power for asset_id, s in specs.items()},
    }


def _skip_stored(data: Path, sha256: str, stored: pd.DataFrame, settings: dict[str, Any]) -> None:
    """Refuse a file the store holds as read with other settings, else say it is not
    ingested again."""
    first = stored.iloc[0]
    _check_same_settings(data, sha256, _settings_of(first), settings)
    read_as = "" if Path(first["path"]) == data.resolve() else f", read from {first['path']}"
    console.print(
        f"{data} is already in the store (sha256 {sha256[:12]}{read_as}); not ingested again",
        highlight=False,
    )


def _stored_specs(
    cleaned_with: Mapping[str, float],
    known: Mapping[str, TurbineSpec],
    rated_power: float | None,
    elevation: float | None,
) -> dict[str, TurbineSpec]:
    """The turbine specs of a file the store holds with its settings (not read again):
    its turbines are those it held, each rated as given now or else as its readings
    were cleaned (``cleaned_with``)."""
    # The elevation is not the cleaning's: as given now (_warn_sea_level if not).
    as_then = {
        a: TurbineSpec(a, float(rated), elevation or 0.0)
        for a, rated in cleaned_with.items()
        if a not in known and rated_power is None
    }
    return _turbine_specs(sorted(cleaned_with), {**as_then, **known}, rated_power, elevation)


def _ingest(
    store: Store,
    data: Path,
    spec: SourceSpec,
    known: Mapping[str, TurbineSpec],
    rated_power: float | None,
    elevation: float | None,
    recorder: Recorder,
) -> dict[str, TurbineSpec]:
    """Read, clean and store ``data`` once; return the turbine specs of its assets."""
    sources = store.sources()
    if data.is_file():  # anything else is refused by read_source, with the reason
        with data.open("rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        stored = sources[sources["sha256"] == sha256]
        then = _settings_of(stored.iloc[0]) if len(stored) else None
        if then is not None:  # the settings tell its turbines: not read again
            specs = _stored_specs(then.get("rated_power_kw", {}), known, rated_power, elevation)
            _check_same_rated_power(sources, specs)
            _skip_stored(data, sha256, stored, _read_settings(spec, specs))
            return specs
    # A str status would be read as markup; the path is text.
    with diagnostics.status(Text(f"reading {data}")):
        info, raw = read_source(data, spec)
    asset_ids = sorted(raw["asset_id"].unique())
    specs = _turbine_specs(asset_ids, known, rated_power, elevation)
    settings = _read_settings(spec, specs)
    _check_same_rated_power(sources, specs)
    stored = sources[sources["sha256"] == info.sha256]
    if len(stored):  # stored by a twinweave that did not keep the settings
        _skip_stored(data, info.sha256, stored, settings)
        return specs
    if "pitch" not in raw.columns:
        _warn(
            "no pitch column: curtailment and derating cannot be detected, so curtailed "
            "readings stay in the training data"
        )
    observations, quarantine = [], []
    for asset_id in asset_ids:
        rows = raw[raw["asset_id"] == asset_id]
        checks = normal_operation_checks(specs[asset_id].rated_power, raw.columns)
        # All of a variable out of range is its unit: refused before anything is
        # stored, or the store would refuse the file read again with the unit fixed.
        refuse_out_of_range(rows, checks, path=str(data), spec=spec)
        kept, rejected = clean(rows, checks)
        observations.append(kept)
        quarantine.append(rejected)
        _warn_if_units_look_wrong(asset_id, rows, rejected, specs[asset_id].rated_power, spec)
        _warn_if_mostly_stuck(asset_id, rows, rejected)
    cleaned = pd.concat(observations, ignore_index=True)
    rejected_all = pd.concat(quarantine, ignore_index=True)
    with _progress() as progress:
        # Rows written: the raw readings, the cleaned ones and the quarantine's entries.
        task = progress.add_task(
            "ingest (rows written: raw, cleaned, quarantine)",
            total=len(raw) + len(cleaned) + len(rejected_all),
        )
        summary = store.ingest(
            info,
            raw,
            cleaned,
            rejected_all,
            recorder=recorder,
            settings=settings,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    # Counted in the store: a reading an earlier file already holds is not stored again.
    stored = store.source_summary(info.sha256)
    # Each raw row is an observation, a reading quarantined, or one already stored
    # from an earlier file with the same values (not stored again).
    already = stored["raw"] - stored["observations"] - stored["quarantined"]
    columns = ["asset", "raw rows", "observations", "readings quarantined"]
    columns += ["already stored"] if bool((already > 0).any()) else []
    table = Table(title=f"ingested {data.name}")
    for column in columns:
        table.add_column(column, justify="right" if column != "asset" else "left")
    for row, n_already in zip(stored.itertuples(index=False), already, strict=True):
        counts = [row.raw, row.observations, row.quarantined, n_already][: len(columns) - 1]
        table.add_row(str(row.asset_id), *(str(n) for n in counts))
    console.print(table)
    quarantined = store.quarantine(source_sha256=info.sha256)
    across = quarantined["check"] == "duplicate_across_sources"
    blanked = quarantined["blanked"].to_numpy(dtype=bool)
    by_check = quarantined.loc[~across & ~blanked, "check"].value_counts().to_dict()
    console.print(f"failed checks, by check (a reading can fail several): {by_check}")
    kept = blanked & _in_readings_kept(quarantined)
    if kept.any():
        by_check = quarantined.loc[kept, "check"].value_counts().to_dict()
        console.print(f"values blanked in readings kept, by check: {by_check}")
    n_conflicts = int(across.sum())
    if summary.n_skipped or n_conflicts:
        console.print(
            f"already stored from another file: {summary.n_skipped} readings with the same "
            f"values (skipped), {n_conflicts} with other values (quarantined, check "
            f"duplicate_across_sources)"
        )
    n_raw = int(stored["raw"].sum())
    if spec.asset_id is not None and 2 * n_conflicts > n_raw:
        # One mapping naming a turbine, given for the files of several, stores them all
        # as that turbine: most of each later file is then at times it already has, with
        # other values (the same values are one turbine's file exported again).
        _warn(
            f"{data}: {n_conflicts} of {n_raw} readings are at times turbine "
            f"{spec.asset_id} already has, with other values, from another file. A "
            "mapping's asset_id names the turbine of every file it is given for: for files "
            "of several turbines give one --mapping per file, each naming its turbine"
        )
    return specs


MappingOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--mapping",
        help="Column mapping (JSON or TOML); default: La Haute Borne. One for every "
        "file, or one per file in their order (a file per turbine, each mapping naming "
        "its asset_id).",
        exists=True,
        dir_okay=False,
    ),
]
AssetsOption = Annotated[
    Path | None,
    typer.Option(
        "--assets",
        help="CSV with asset_id, rated_power [kW], elevation [m].",
        exists=True,
        dir_okay=False,
    ),
]
RatedOption = Annotated[
    float | None,
    typer.Option(
        "--rated-power",
        help="Rated power [kW] of assets not in --assets (it replaces the shipped La Haute "
        "Borne table's).",
    ),
]
ElevationOption = Annotated[
    float | None,
    typer.Option(
        "--elevation",
        help="Site elevation [m] of assets not in --assets (it replaces the shipped La "
        "Haute Borne table's); default 0 m.",
    ),
]


def _specs(
    mappings: list[Path] | None, files: list[Path], delimiter: str | None
) -> list[SourceSpec]:
    """Each file's source spec: one mapping for every file, or one per file in their
    order (La Haute Borne's without any)."""
    given = mappings or []
    if len(given) > 1 and len(given) != len(files):
        raise _fail(
            f"--mapping: expected one mapping for every file or one per file ({len(files)} "
            f"files), got {len(given)}: {', '.join(map(str, given))}"
        )
    if len(given) <= 1:
        return [_spec(given[0] if given else None, delimiter)] * len(files)
    return [_spec(mapping, delimiter) for mapping in given]


def _spec(mapping: Path | None, delimiter: str | None = None) -> SourceSpec:
    """The mapping's source spec (La Haute Borne's without one), with ``delimiter``
    in place of its CSV delimiter if given."""
    spec = LA_HAUTE_BORNE if mapping is None else _mapped(mapping)
    if delimiter is None:
        return spec
    # "\t" as typed on a command line is a tab.
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise _fail(f"--delimiter {delimiter!r}: expected one character, such as ';' or ','")
    return spec.model_copy(update={"delimiter": delimiter})


def _mapped(mapping: Path) -> SourceSpec:
    spec = SourceSpec.from_file(mapping)
    # A turbine twin reads both; without one the cleaning checks failed, naming neither
    # the mapping nor the variable.
    missing = [name for name in ("wind_speed", "power") if name not in spec.columns]
    if missing:
        raise _fail(
            f"{mapping}: no column for {' or '.join(missing)} (columns.{missing[0]}); "
            "expected a [columns.wind_speed] and a [columns.power] table: a turbine twin "
            "reads both (docs/MAPPING.md)"
        )
    return spec


DelimiterOption = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help="Field delimiter of CSV files, e.g. ';' (\\t or tab for a tab); default: the "
        "mapping's, else ','.",
    ),
]
DataArgument = Annotated[
    list[Path],
    typer.Argument(
        help="CSV or Parquet files (one or several: a file per turbine or per month).",
        exists=True,
    ),
]


def _ingest_all(
    store: Store,
    files: list[Path],
    sources: list[SourceSpec],
    assets: Path | None,
    rated_power: float | None,
    elevation: float | None,
    recorder: Recorder,
    vet: Callable[[Mapping[str, TurbineSpec], bool], None] | None = None,
) -> dict[str, TurbineSpec]:
    """:func:`_ingest` of each file in turn, read with its source spec (``sources``,
    one per file); the turbine specs of all their assets. ``vet`` may refuse the specs
    of all the files' assets before any file is stored; it is told whether every file
    could be read for them (its second argument)."""
    known = _known_specs(assets, rated_power, elevation)
    specs: dict[str, TurbineSpec] = {}
    each: dict[Path, SourceSpec] = {}
    for file, spec in zip(files, sources, strict=True):
        # A file named twice is read once; with two mappings, which one was meant?
        if each.setdefault(file, spec) != spec:
            raise _fail(
                f"{file}: named twice, with two different mappings (--mapping); expected "
                "each file once, read with one mapping. A wide file (a column per turbine) "
                "is not read as it is: split it into a file per turbine first "
                "(docs/MAPPING.md, 'Other layouts')"
            )
    if vet is not None:
        # Every file's turbines before any file is stored: a file per turbine would
        # else store the first with a rated power the second shows to be wrong.
        everyone: dict[str, TurbineSpec] = {}
        all_read = True
        for file, spec in each.items():
            try:
                found = asset_ids(file, spec)
            except (OSError, ValueError):
                all_read = False  # the file's own read says what is wrong with it
                continue
            everyone |= _turbine_specs(found, known, rated_power, elevation)
        vet(everyone, all_read)

    ordered = list(each)
    for i, (file, spec) in enumerate(each.items()):
        try:
            specs.update(_ingest(store, file, spec, known, rated_power, elevation, recorder))
        except (*USER_ERRORS, typer.Exit) as error:
            if len(ordered) > 1:
                _note_stopped(error, file, done=ordered[:i], not_read=ordered[i + 1 :])
            raise
    _warn_sea_level(specs, known, elevation)
    return specs


def _fleet_turbines(specs: Mapping[str, TurbineSpec], all_read: bool) -> None:
    """Refuse, before a file is stored, DATA's turbines that cannot be a --fleet: of
    several rated powers (a rated power mistyped in --assets would else be fixed in the
    store's cleaning of the file), or, where every file was read (``all_read``), fewer
    than a fleet (the fit would refuse them after storing the files)."""
    try:
        check_one_rated_power(specs, "--fleet")
    except ValueError as error:
        raise _fail(str(error)) from None
    if all_read and len(specs) < MIN_FLEET:
        try:
            check_fleet_turbines(specs, "--fleet")
        except ValueError as error:
            raise _fail(f"{error}{_FLEET_FILES}") from None


#: Turbines already in the store are not read: only DATA's are fitted.
_FLEET_FILES = (
    "; the fleet is the turbines of DATA, which may be several files "
    "(twinweave fit A.csv B.csv C.csv ...)"
)


def _note_stopped(error: BaseException, file: Path, done: list[Path], not_read: list[Path]) -> None:
    """Say which files an ingest stopped at ``file`` left stored and which unread."""
    listed = "; ".join(
        f"{what}: {', '.join(str(f) for f in files)}"
        for what, files in (("ingested", done), ("not read", not_read))
        if files
    )
    kept = "; the files ingested stay in the store and are skipped when named again"
    note = f"ingest stopped at {file} ({listed}){kept if done else ''}"
    if isinstance(error, typer.Exit):  # its message is printed already
        diagnostics.print(note, highlight=False)
    else:  # printed after the error's message by main()
        error.add_note(note)


@app.command()
def ingest(
    data: DataArgument,
    store: StoreOption,
    mapping: MappingOption = None,
    assets: AssetsOption = None,
    rated_power: RatedOption = None,
    elevation: ElevationOption = None,
    delimiter: DelimiterOption = None,
) -> None:
    """Read data files, check them, quarantine what fails, and store the rest."""
    specs = _specs(mapping, data, delimiter)
    with _store_to_write(store) as db:
        recorder = Recorder(store=db)
        _ingest_all(db, data, specs, assets, rated_power, elevation, recorder)


@app.command()
def fit(
    data: DataArgument,
    store: StoreOption,
    train_until: Annotated[
        datetime,
        typer.Option(
            "--train-until",
            click_type=UTC_TIME,
            help=f"Fit on readings before this time {_ZONE}.",
        ),
    ],
    mapping: MappingOption = None,
    assets: AssetsOption = None,
    rated_power: RatedOption = None,
    elevation: ElevationOption = None,
    memory: Annotated[
        float | None,
        typer.Option(
            "--memory",
            help="Readings a twin remembers (forgetting factor 1 - 1/MEMORY); 'inf' for "
            f"no forgetting. Default {MEMORY:g}, about three months of 10-minute readings, "
            "chosen on La Haute Borne 2014 (python -m benchmarks.memory); "
            "twinweave.domains.wind.select_forgetting chooses one for other data.",
        ),
    ] = None,
    fleet: Annotated[
        bool,
        typer.Option(
            "--fleet",
            help="Each twin starts from what the other turbines know (a hierarchical "
            "fleet model of their readings), so a turbine with a day of readings predicts "
            "nearly as well as one with a year, and a turbine whose readings all come "
            "after --train-until is born into the fleet with none. Needs three turbines "
            "or more with training readings, of one rated power.",
        ),
    ] = False,
    delimiter: DelimiterOption = None,
) -> None:
    """Ingest ``DATA`` (the files not yet in the store) and fit one twin per asset found
    in them on readings before ``--train-until``.

    An asset without such readings is skipped with a warning that says why; the command
    fails only if no asset can be fitted. With ``--fleet``, each twin is born into its
    fleet: its prior is the population that the other turbines' readings give
    (docs/FLEET_MODEL.md#a-twin-born-into-its-fleet); a turbine whose readings all come
    after ``--train-until`` is born into the fleet of all the others, with none.
    """
    try:
        forgetting = forgetting_for(MEMORY if memory is None else memory)
    except ValueError as error:
        raise _fail(f"--memory: {error}") from None
    until = _utc(train_until)
    sources = _specs(mapping, data, delimiter)
    with _store_to_write(store) as db:
        recorder = Recorder(store=db)
        specs = _ingest_all(
            db, data, sources, assets, rated_power, elevation, recorder,
            vet=_fleet_turbines if fleet else None,
        )  # fmt: skip
        # A turbine without training readings is skipped, not fatal: the others' twins
        # are still wanted (and one refusal after some twins were saved left them saved).
        skipped = {a: _why_not_fitted(db, a, until) for a in specs}
        skipped = {a: why for a, why in skipped.items() if why is not None}
        trainable = {a: spec for a, spec in specs.items() if a not in skipped}
        # With --fleet, a turbine whose readings all come after --train-until is born
        # into the fleet of the others with none: a new turbine, predicted from its fleet.
        newcomers = {
            a: specs[a] for a in skipped if fleet and trainable and db.count_observations(a) > 0
        }
        skipped = {a: why for a, why in skipped.items() if a not in newcomers}
        if fleet:
            # A twin's first fleet round is its fit alone: one that cannot be fitted
            # alone would stop the fleet's fit, so it is left out, as fit does without
            # --fleet.
            unfittable = _unfittable(db, trainable, until)
            skipped |= unfittable
            trainable = {a: spec for a, spec in trainable.items() if a not in unfittable}
        if not trainable:
            reasons = "; ".join(f"asset {a!r}: {why}" for a, why in skipped.items())
            raise _fail(
                f"--train-until {until.isoformat()}: no twin was fitted ({reasons}); "
                "expected a --train-until after some asset's first reading"
            )
        for asset_id, why in skipped.items():
            _warn(f"asset {asset_id!r}: not fitted: {why}")
        if fleet:
            try:
                check_fleet_turbines(trainable, "--fleet")
                check_fleet_turbines({**trainable, **newcomers}, "--fleet")
            except ValueError as error:
                files = _FLEET_FILES if len(trainable) < MIN_FLEET else ""
                raise _fail(f"{error}{files}") from None
        try:
            if fleet:
                # The fleet fits draw their rounds' progress on stderr.
                twins = fit_fleet(
                    db, recorder, trainable, until, forgetting=forgetting, pooled=True,
                    newcomers=newcomers, progress=True,
                )  # fmt: skip
            else:
                twins = _fit_each(db, recorder, trainable, until, forgetting)
        except ValueError as error:
            raise _fail(str(error)) from None
        _warn_few_kept(db, store, twins, until)
        if memory is None:
            _warn_default_memory(db, twins, until)
        if all(db.count_observations(a, start=until) == 0 for a in specs):
            _warn(
                f"--train-until {until.isoformat()} is after the last reading: the twins "
                "are fitted on every reading, and none is left to score them on "
                "(`twinweave report` needs readings after it)"
            )
        title = f"twins fitted on readings before {until.isoformat()}"
        if fleet:
            title += ", each starting from the other turbines' fleet model"
        table = Table(title=title)
        for column in ("twin", "readings fitted", "remembered (weighted)", "version"):
            table.add_column(column, justify="left" if column == "twin" else "right")
        for asset_id, twin in twins.items():
            version = db.versions(asset_id)["version"].max()
            n_fitted = db.count_observations(asset_id, end=until)
            remembered = f"{twin.emulator.n_observations_:.0f}"
            table.add_row(asset_id, str(n_fitted), remembered, str(version))
        console.print(table)
        console.print(
            "remembered: the readings' total weight after forgetting (--memory "
            f"{MEMORY if memory is None else memory:g}); older readings count less"
        )
        saved = f"saved {len(twins)} of {len(specs)} twins to {store}: {', '.join(twins)}"
        if newcomers:
            saved += (
                f"; born into the fleet with no readings before --train-until (they "
                f"predict as a new turbine of it): {', '.join(newcomers)}"
            )
        not_fitted = [*skipped, *(a for a in trainable if a not in twins)]
        if not_fitted:
            saved += f"; not fitted (see the warnings): {', '.join(not_fitted)}"
        console.print(saved, highlight=False)


#: Share of a turbine's training readings kept by the checks below which fit warns: La
#: Haute Borne keeps 95 %; a unit wrong in the mapping (power in W read as kW) keeps
#: a few, and the twin learns from those alone.
MIN_KEPT_SHARE = 0.25


def _warn_few_kept(db: Store, store: Path, twins: Mapping[str, Twin], until: pd.Timestamp) -> None:
    """Warn of twins fitted on a small share of their readings before ``until``."""
    for asset_id in twins:
        kept = db.count_observations(asset_id, end=until)
        read = db.count_observations(asset_id, end=until, raw=True)
        if read and kept < MIN_KEPT_SHARE * read:
            _warn(
                f"asset {asset_id!r}: fitted on {kept} of its {read} readings before "
                f"--train-until ({kept / read:.0%}); the checks set the rest aside "
                f"(`twinweave quarantine --store {store} --asset {asset_id}` lists why): a "
                "unit or column wrong in the mapping?"
            )


def _warn_default_memory(db: Store, twins: Mapping[str, Twin], until: pd.Timestamp) -> None:
    """Warn of twins whose readings step by other than 10 minutes: the default memory
    counts readings, so it is about three months of 10-minute readings only."""
    by_step: dict[float, list[str]] = {}
    for asset_id in twins:
        times = db.observations(asset_id, end=until)["time"]
        if len(times) < 2:  # born into its fleet: it will remember its first readings
            times = db.observations(asset_id)["time"]
        step = usual_step_hours(time_seconds(times.to_numpy()))
        if step is not None and not math.isclose(step, READING_HOURS, rel_tol=0.01):
            by_step.setdefault(step, []).append(asset_id)
    months = MEMORY * READING_HOURS / _HOURS_PER_MONTH
    for step, assets in by_step.items():
        span = MEMORY * step / _HOURS_PER_MONTH
        span_text = f"{span:.1f} months" if span < 24 else f"{span / 12:.1f} years"
        _warn(
            f"asset{'s' if len(assets) > 1 else ''} {', '.join(map(repr, assets))}: the "
            f"readings step by {duration_text(step)}, so the default --memory {MEMORY:g} "
            f"(about {months:.0f} months of 10-minute readings) remembers about "
            f"{span_text} of them; --memory {MEMORY * READING_HOURS / step:.0f} would "
            f"remember about {months:.0f} months"
        )


#: Average hours of a month (365.25 days / 12).
_HOURS_PER_MONTH = 730.5


def _fit_each(
    db: Store,
    recorder: Recorder,
    specs: Mapping[str, TurbineSpec],
    until: pd.Timestamp,
    forgetting: float,
) -> dict[str, Twin]:
    """One twin per turbine, each fitted and saved on its own: a turbine whose readings
    cannot be fitted (two idle readings, say) is skipped with a warning that says why,
    the others' twins are still saved; fails only if none can be fitted."""
    twins: dict[str, Twin] = {}
    failed: dict[str, str] = {}
    with diagnostics.status("fitting"):
        for asset_id, spec in specs.items():
            try:
                twins |= fit_fleet(db, recorder, {asset_id: spec}, until, forgetting=forgetting)
            except ValueError as error:
                n_readings = db.count_observations(asset_id, end=until)
                failed[asset_id] = f"{error} ({n_readings} readings before {until.isoformat()})"
    for asset_id, why in failed.items():
        _warn(f"asset {asset_id!r}: not fitted: {why}")
    if not twins:
        raise ValueError(f"no twin was fitted ({', '.join(failed)}: see the warnings above)")
    return twins


def _unfittable(db: Store, specs: Mapping[str, TurbineSpec], until: pd.Timestamp) -> dict[str, str]:
    """The turbines whose twin cannot be fitted on their readings before ``until``
    alone, with why."""
    out = {}
    for asset_id, spec in specs.items():
        training = db.observations(asset_id, end=until)
        emulator = turbine_emulator(spec, training)
        try:
            _ = emulator.update(model_inputs(training, spec.rated_power)).posterior_mean_
        except ValueError as error:
            out[asset_id] = f"{error} ({len(training)} readings before {until.isoformat()})"
    return out


def _why_not_fitted(db: Store, asset_id: str, until: pd.Timestamp) -> str | None:
    """Why ``asset_id`` has no twin fitted on its readings before ``until``; ``None``
    if it has readings to fit on."""
    if db.count_observations(asset_id, end=until) > 0:
        return None
    if db.count_observations(asset_id) == 0:
        return (
            "none of its readings passed the checks (`twinweave quarantine --asset "
            f"{asset_id}` lists why)"
        )
    span = db.observation_span(asset_id)
    assert span is not None  # it has readings (counted above)
    return (
        f"no readings before --train-until {until.isoformat()}; its readings start at "
        f"{span[0].isoformat()}"
    )


# Names of a time column other than 'time' (spreadsheets' and loggers' habits), in
# lower-case letters only: 'Date/Time', 'Timestamp', 'time_utc'.
_TIME_LOOKALIKES = frozenset(
    {"time", "timestamp", "datetime", "date", "timeutc", "datetimeutc", "timestamputc"}
)


def _letters(name: object) -> str:
    return "".join(c for c in str(name).casefold() if c.isalpha())


def _model_columns(frame: pd.DataFrame, out: Console = console) -> dict[str, np.ndarray]:
    """The numeric input columns and the readings' ``time`` (UTC; a time without a zone
    is taken as UTC); others (an asset name) are left out, said once on ``out``.

    The time lets sample paths carry the twin's correlation in time.
    """
    numeric = frame.select_dtypes("number")
    ignored = [c for c in frame.columns if c not in numeric.columns and c != "time"]
    if ignored:
        out.print(f"not used as model inputs (not numeric): {ignored}")
    # Only a column named exactly 'time' is read as the times; say so of a look-alike,
    # whose readings would otherwise each count for 10 minutes without a word about why.
    lookalike = [] if "time" in frame else [c for c in frame if _letters(c) in _TIME_LOOKALIKES]
    if lookalike:
        out.print(
            f"column {lookalike[0]!r} looks like the readings' times: name it 'time' (times "
            "with a zone, or taken as UTC) to have them used; each reading then counts for "
            "its own step"
        )
    columns = {c: numeric[c].to_numpy(np.float64) for c in numeric.columns if c != "time"}
    if "time" in frame:
        try:
            times = pd.to_datetime(frame["time"], utc=True)
        except (ValueError, TypeError) as error:
            raise _fail(f"column 'time': expected times (UTC), got {error}") from None
        columns["time"] = times.dt.tz_localize(None).to_numpy("datetime64[ns]")
    return columns


def _say_what_is_read(columns: dict[str, np.ndarray], twin: Twin, out: Console = console) -> None:
    """Name the input columns the twin reads and those it does not: a column named
    otherwise than the twin expects ('temperature' for 'temp_air') is not an error, but
    the prediction is made without it."""
    reads = twin.emulator.inputs
    used = [c for c in columns if c in reads]
    unread = [c for c in columns if c not in reads and c != "time"]
    # Optional inputs whose absence changes the prediction; pressure and air_density are
    # alternatives to them (density), said below.
    absent = [c for c in ("temp_air", "wind_direction") if c in reads and c not in columns]
    out.print(f"inputs read: {used}", highlight=False)
    if absent:
        # Not an error (wind speed alone will do), but the prediction can differ a lot.
        out.print(
            f"inputs the twin reads that are not given: {absent}; predicted without them "
            "(their effect averaged over the readings the twin has seen, the interval "
            "widened by its spread"
            + (
                "; air density the site's mean"
                if "temp_air" in absent and "air_density" not in columns
                else ""
            )
            + ")",
            highlight=False,
        )
    if "pressure" in used and "temp_air" not in columns and "air_density" not in columns:
        # The density normalisation (IEC 61400-12-1) needs the temperature with it.
        _warn("'pressure' is used only with 'temp_air' (air density from both); without it, not")
    if unread:
        out.print(
            f"columns the twin does not read: {unread} (it reads {list(reads)})",
            highlight=False,
        )


def _table_kind(path: Path, role: str) -> str:
    """``"csv"`` or ``"parquet"`` by the file's name, as the data pathway tells them;
    anything else is refused."""
    try:
        return file_kind(path.name)
    except DataError:
        raise _fail(
            f"{path}: expected a CSV ({', '.join(CSV_SUFFIXES)}) or Parquet "
            f"({', '.join(PARQUET_SUFFIXES)}) file for {role}, got "
            f"{path.suffix or 'no suffix'}"
        ) from None


#: Names of a process's own stdout, whatever it is redirected to.
_STDOUT_NAMES = ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def _to_stdout(path: Path | None) -> bool:
    """Whether an output option is ``-`` (or names the command's stdout, as
    ``/dev/stdout`` does): the table as CSV on stdout, and everything else the command
    says on stderr, so that the table can be piped on."""
    if path is None:
        return False
    if str(path) in ("-", *_STDOUT_NAMES):
        return True
    try:
        stdout = _stdout_stat()
        # A file stdout is redirected to stays a file, named and hashed (or refused).
        return (
            stdout is not None
            and not stat.S_ISREG(stdout.st_mode)
            and os.path.samestat(os.stat(path), stdout)
        )
    except OSError:  # no such file
        return False


def _stdout_stat() -> os.stat_result | None:
    """What the command's stdout is, or None when it was closed (``>&-``: descriptor 1
    then holds /dev/null, which an output may name as itself)."""
    if sys.stdout is None:
        return None
    try:
        return os.fstat(1)
    except OSError:
        return None


def _is_stream(path: Path) -> bool:
    """Whether an output is a named pipe or a character device (a FIFO a reader waits
    on, ``/dev/null``): written once, front to back, with no file left to hash."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _output_kind(path: Path) -> str:
    """``"csv"`` or ``"parquet"``: by the file's name; CSV on stdout, and on a stream
    whose name does not say (``/dev/null``)."""
    if _to_stdout(path):
        return "csv"
    if _is_stream(path):
        with contextlib.suppress(DataError):
            return file_kind(path.name)
        return "csv"
    return _table_kind(path, "the output")


def _check_output_table(path: Path, option: str) -> None:
    """Refuse an output table that cannot be written, before any work is done (and any
    provenance recorded for an output that would never exist)."""
    if _to_stdout(path):
        _check_stdout_open(path, option)
        return
    _check_output_path(path, option)
    if not _is_stream(path):
        _table_kind(path, f"{option}")


def _check_stdout_open(path: Path, option: str) -> None:
    """Refuse stdout as an output when it is closed (``>&-``): what was asked for would
    be written nowhere."""
    if sys.stdout is None:
        raise _fail(f"{option} {path}: stdout is closed; expected an open stdout or a file")


def _check_output_path(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    if path.is_dir():
        raise _fail(f"{option} {path}: is a directory; expected a file name")
    if path.exists() and not path.is_file() and not _is_stream(path):
        raise _fail(
            f"{option} {path}: is neither a file nor a stream; expected a file, a named "
            "pipe or a character device such as /dev/null"
        )
    stdout = _stdout_stat()
    with contextlib.suppress(OSError):
        if stdout is not None and os.path.samestat(os.stat(path), stdout):
            raise _fail(
                f"{option} {path}: is also where the command's output is redirected, so "
                f"the two would be mixed; use {option} - to write it there alone"
            )
    if _is_stream(path):
        # Written where it is: only the stream need take writing.
        if not os.access(path, os.W_OK):
            raise _fail(f"{option} {path}: not writable")
        return
    parent = path.resolve().parent
    if not parent.is_dir():
        raise _fail(f"{option} {path}: no such directory {parent}")
    why = _cannot_write(path) if path.exists() else _cannot_add_to(parent)
    if why is not None:
        raise _fail(f"{option} {path}: not writable ({why})")


def _write_table(frame: pd.DataFrame, path: Path) -> str:
    """Write ``frame`` to ``path`` (``-``: CSV to stdout); returns where it went, for
    the command's "wrote ... to" line."""
    if _to_stdout(path):
        console.out(_iso_times(frame).to_csv(index=False), end="", highlight=False)
        return "stdout"
    try:
        if _output_kind(path) == "csv":
            _iso_times(frame).to_csv(path, index=False)
        elif _is_stream(path):
            # Parquet's writer seeks; a stream takes the finished file front to back.
            written = io.BytesIO()
            frame.to_parquet(written, index=False)
            path.write_bytes(written.getvalue())
        else:
            frame.to_parquet(path, index=False)
    except OSError as error:
        raise _fail(f"--output {path}: {error.strerror or error}") from None
    return str(path)


def _iso_times(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its times as ISO 8601 text in UTC (``2015-06-01T00:10:00+00:00``,
    as the commands print times and read them back), not pandas' ``2015-06-01
    00:10:00+00:00``."""
    columns = {}
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            utc = frame[name].dt.tz_convert("UTC")
            whole = bool(((utc.dt.microsecond == 0) & (utc.dt.nanosecond == 0)).all())
            columns[name] = (
                utc.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
                if whole
                else utc.map(lambda time: time.isoformat(), na_action="ignore")
            )
    return frame.assign(**columns) if columns else frame


def _warn_missing_optional(columns: dict[str, np.ndarray], twin: Twin) -> None:
    """Say where a column the twin reads has gaps: there it predicts without it (wind
    speed alone, for example, without the air-density correction)."""
    for name in twin.emulator.inputs:
        values = columns.get(name)
        if name == "wind_speed" or values is None:
            continue
        missing = int(np.count_nonzero(~np.isfinite(values)))
        if missing:
            _warn(
                f"column {name!r}: {missing} of {values.size} rows are missing; those are "
                f"predicted without {name}"
            )


#: Compressions of CSV_SUFFIXES by the last suffix: pandas infers them from a path, not
#: from bytes.
_COMPRESSION: dict[str, Literal["gzip", "bz2", "zstd", "xz"]] = {
    ".gz": "gzip",
    ".bz2": "bz2",
    ".zst": "zstd",
    ".xz": "xz",
}


def _read_inputs(path: Path, twin: Twin, *, times_once: bool = False) -> tuple[pd.DataFrame, bytes]:
    """A user's input file, checked: ``wind_speed`` a finite number in every row, the
    other columns the twin reads numbers or blank, ``time`` (if there) a time in every
    row, and each time once if ``times_once``. Each refusal names the file, column, row
    and value. Also returns the file's bytes, read once: what the provenance hashes."""
    if not path.exists():
        raise _fail(f"{path}: no such file")
    if path.is_dir():
        raise _fail(f"{path}: is a directory; expected a CSV or Parquet file")
    if not path.is_file():
        # A pipe gives its bytes once: the file's record could not be of what was read.
        raise _fail(f"{path}: not a regular file (a pipe or a device); expected a file")
    is_parquet = _table_kind(path, "the inputs") == "parquet"
    content = path.read_bytes()
    compression = _COMPRESSION.get(path.suffix)
    try:
        # No index column guessed: where every row has a field more than the header,
        # pandas would take the first as the index and shift the columns.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = (
                pd.read_parquet(io.BytesIO(content))
                if is_parquet
                else pd.read_csv(io.BytesIO(content), index_col=False, compression=compression)
            )
    except pd.errors.EmptyDataError:
        raise _fail(f"{path}: empty; expected a header line with 'wind_speed' [m/s]") from None
    except pd.errors.ParserWarning:
        raise _fail(
            f"{path}: rows have more fields than the header; expected one field per column "
            "named in the header"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as error:
        kind = "Parquet" if is_parquet else "CSV"
        raise _fail(f"{path}: cannot be read as {kind}: {error}") from None
    if not is_parquet:
        if len(frame.columns) and frame.iloc[:, -1].isna().any():
            refuse_short_rows(path)
        # pandas renames a repeated column ('wind_speed.1'); the header as written says.
        header = pd.read_csv(
            io.BytesIO(content), nrows=1, header=None, dtype=str, compression=compression
        ).iloc[0]
        named = [str(c) for c in header if pd.notna(c) and str(c).strip()]
        repeated = sorted({c for c in named if named.count(c) > 1})
        if repeated:
            raise _fail(f"{path}: column {repeated[0]!r} appears more than once in the header")
    if "wind_speed" not in frame:
        # One column holding the names joined by another separator: say which.
        joined = [sep for sep in (";", "\t", "|") if any(sep in str(c) for c in frame.columns)]
        hint = (
            f"; the file seems separated by {joined[0]!r}: the inputs are read as comma-separated"
            if len(frame.columns) == 1 and joined
            else ""
        )
        raise _fail(
            f"{path}: expected a column 'wind_speed' [m/s], got {list(frame.columns)}{hint}"
        )
    if frame.empty:
        raise _fail(f"{path}: a header and no rows; expected one row per prediction")

    def refuse(name: str, bad: np.ndarray, expected: str, hint: str = "") -> typer.Exit:
        row = int(np.flatnonzero(bad)[0])
        value = frame[name].iloc[row]
        got = "a missing value" if pd.isna(value) else repr(str(value))
        where = describe_row(row, None if is_parquet else csv_line(path, row))
        return _fail(
            f"{path}: column {name!r}, {where}: expected {expected}, got {got} "
            f"({int(bad.sum())} of {len(frame)} rows are not){hint}"
        )

    for name in (c for c in twin.emulator.inputs if c in frame.columns):
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
        known = {v.name: v.unit for v in twin.schema.telemetry}
        unit = known.get(name, "")
        if name == "wind_speed":
            bad = ~np.isfinite(values)
            expected = "a finite number [m/s]"
        else:
            # A blank cell is a missing value (predicted without it, and said); text is
            # a mistake.
            bad = np.isnan(values) & frame[name].notna().to_numpy()
            expected = f"a number{f' [{unit}]' if unit else ''} or a blank cell"
        if bad.any():
            raise refuse(name, bad, expected)
        # The twin refuses values beyond the schema's physical bounds; said here, where
        # the file's line is known.
        if name in known:
            lower, upper = twin.schema.variable(name).bounds
            outside = (values < lower) | (values > upper)
            if outside.any():
                # Only speeds above the bound that 3.6 brings within it may be km/h (a
                # negative one is no unit's).
                hint = ""
                kmh = (values >= lower).all() and (values / 3.6 <= upper).all()
                if name == "wind_speed" and kmh:
                    hint = _kmh_hint(values, twin.emulator)
                raise refuse(name, outside, f"a value within [{lower:g}, {upper:g}] {unit}", hint)
        frame[name] = values
    if "time" in frame:
        numbers = frame["time"].dropna()
        if pd.api.types.is_numeric_dtype(frame["time"]) and len(numbers):
            raise _fail(
                f"{path}: column 'time': expected times such as 2015-06-01T00:10:00Z, got "
                f"numbers ({str(numbers.iloc[0])!r}, ...)"
            )
        # ISO 8601 only: 01/06/2015 is the 1st of June to some and the 6th of January to
        # others, and a guess would be silently wrong for one of them.
        times = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
        if times.isna().any():
            raise refuse(
                "time",
                times.isna().to_numpy(),
                "an ISO 8601 time such as 2015-06-01T00:10:00Z or 2015-06-01 00:10 (UTC)",
            )
        # A naive time is read as UTC; beside times with offsets it is more likely local
        # (22:10+02:00 then 00:20 were read two hours apart, ten minutes apart meant).
        offset = has_utc_offset(frame["time"])
        if offset.any() and not offset.all():
            minority = ~offset if offset.sum() > offset.size / 2 else offset
            raise refuse(
                "time",
                minority,
                "a UTC offset in every time or in none (times without one are UTC)",
            )
        given_twice = times.duplicated().to_numpy() if times_once else np.zeros(0, dtype=bool)
        if given_twice.any():
            raise refuse(
                "time",
                given_twice,
                "a time given once: energy and hours sum the readings over time, so a "
                "time given twice would be counted twice",
            )
        frame["time"] = times
    return frame, content


def _warn_unseen(
    emulator: BayesianBasisRegression, columns: dict[str, np.ndarray], *, users_file: bool
) -> None:
    """Say where a prediction rests on the prior, not on readings (and, of a user's
    file, whether its wind speeds may be km/h)."""
    wind_speed = columns["wind_speed"]
    from_fleet = emulator.prior_covariance is not None
    note = unseen_note(emulator.seen(columns), wind_speed, from_fleet=from_fleet)
    if note is not None:
        _warn(note + (_kmh_hint(wind_speed, emulator) if users_file else ""))


def _kmh_hint(wind_speed: np.ndarray, emulator: object) -> str:
    """A hint that wind speeds may be km/h: some where the twin has readings and half
    or more where it has none near (a storm in m/s has none where it has readings), and
    nine in ten where it has readings once divided by 3.6."""
    if not isinstance(emulator, BayesianBasisRegression):
        return ""
    as_read = wind_speed[np.isfinite(wind_speed) & (wind_speed >= 0.0)]
    if not as_read.size:
        return ""
    seen = float(np.mean(emulator.seen({"wind_speed": as_read})))
    seen_in_ms = float(np.mean(emulator.seen({"wind_speed": as_read / 3.6})))
    if not (0.2 <= seen <= 0.5 and seen_in_ms >= 0.9):
        return ""
    return (
        f"; if the speeds are km/h, divide them by 3.6: wind_speed is read in m/s, and "
        f"{seen_in_ms:.0%} of the speeds divided by 3.6 lie where the twin has readings"
    )


def _warn_outside_range(
    emulator: BayesianBasisRegression, columns: dict[str, np.ndarray], twin: Twin
) -> None:
    """Say where an input that shapes the curve (a temperature) lies beyond the values
    the twin has assimilated: there its effect is extrapolated."""
    units = {v.name: v.unit for v in twin.schema.telemetry}
    ranges = emulator.input_ranges_
    for name, outside in emulator.outside_range(columns).items():
        low, high = ranges[name]
        if outside.any():
            unit = f" {units[name]}" if name in units else ""
            seen = (
                f"outside {low:g} to {high:g}{unit}, the values the twin has assimilated"
                if low <= high
                else "values of an input the twin has assimilated none of"
            )
            _warn(
                f"input {name!r}: {int(outside.sum())} of {outside.size} rows are {seen}; "
                f"there the effect of {name} on the curve is extrapolated"
            )


@app.command()
def predict(
    store: StoreOption,
    twin: TwinOption,
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            help="CSV/Parquet with wind_speed [m/s], optionally the twin's other inputs and "
            "time (ISO 8601, such as 2015-06-01T00:10:00Z; UTC without a zone).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            help="CSV or Parquet file to write mean, q05, q50, q95 [kW] to; - writes CSV "
            "to stdout (and the rest to stderr).",
        ),
    ],
) -> None:
    """Predict power [kW] with uncertainty from wind speed (and optional inputs)."""
    say = diagnostics if _to_stdout(output) else console
    _check_output_table(output, "--output")
    if not _to_stdout(output) and output.resolve() == input.resolve():
        raise _fail(f"--output {output}: the --input file; expected another file name")
    with _open_store(store) as db:
        recorder = Recorder(store=db)
        loaded = _load_twin(db, twin, recorder)
        frame, content = _read_inputs(input, loaded)
        columns = _model_columns(frame, say)
        _say_what_is_read(columns, loaded, say)
        _warn_missing_optional(columns, loaded)
        try:
            # Checked before the file is recorded as read: nothing is recorded for inputs
            # that are refused.
            loaded.check_inputs(columns)
        except ValueError as error:
            raise _fail(f"{input}: {error}") from None
        predictive = loaded.predict(columns, source=recorder.file_entity(input, content))
        if isinstance(loaded.emulator, BayesianBasisRegression):
            _warn_unseen(loaded.emulator, columns, users_file=True)
            _warn_outside_range(loaded.emulator, columns, loaded)
        quantiles = predictive.quantile([0.05, 0.5, 0.95])
        result = frame.assign(
            mean=predictive.mean, q05=quantiles[0], q50=quantiles[1], q95=quantiles[2]
        )
        where = _write_table(result, output)
        assert loaded.last_prediction_ is not None  # the twin has the store's recorder
        origin = _record_export(recorder, output, loaded.last_prediction_)
    say.print(f"wrote {len(result)} predictions to {where}")
    say.print(f"where they came from: twinweave provenance {origin} --store {store}")


def _record_export(recorder: Recorder, path: Path, entity_id: str) -> str:
    """Record ``path``, a table a command wrote from entity ``entity_id`` (a prediction,
    a monitor's alarms), with its content's hash: the file then leads back to its
    numbers (its id, or its path in ``twinweave provenance``'s listing). Written to
    stdout or a stream, there is no file: the entity's own id."""
    if _to_stdout(path) or _is_stream(path):
        return entity_id
    return recorder.record(
        "export", used=[entity_id], generated="file", entity_attributes=file_attributes(path)
    )


@app.command()
def whatif(
    store: StoreOption,
    twin: TwinOption,
    derate: Annotated[float | None, typer.Option(help="Cap power at this value [kW].")] = None,
    stop: Annotated[bool, typer.Option(help="Stop the turbine.")] = False,
    scale: Annotated[
        float | None,
        typer.Option(
            help="Scale power by this factor in [0, 1.25], e.g. 0.97 for a 3 % loss (power "
            "at rated scales too)."
        ),
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(click_type=UTC_TIME, help=f"Period start from the store {_ZONE}."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(click_type=UTC_TIME, help=f"Period end from the store {_ZONE}."),
    ] = None,
    input: Annotated[
        Path | None, typer.Option("--input", help="Hypothetical inputs instead of stored ones.")
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            help="Monte Carlo sample paths (at least 20: on average one in each tail "
            "beyond the 90 % intervals).",
            min=20,
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.", min=0)] = 0,
) -> None:
    """Compare a branch with an intervention against the live twin, side by side.

    The branch, its intervention and the result are recorded in the store's provenance;
    the command prints the result's id for ``twinweave provenance``.
    """
    # The turbine changed first, then its setpoints: a 3 % loss derated to 1500 kW still
    # delivers 1500 kW where the wind allows (the cap scaled with it, 1455, would not).
    interventions: list[Intervention] = []
    if scale is not None:
        try:
            interventions.append(ScaleTarget(scale))
        except ValueError as error:
            raise _fail(f"--scale: {error}") from None
    if derate is not None:
        if not derate >= 0.0:
            raise _fail(f"--derate: expected a power cap >= 0 kW, got {derate:g}")
        derate += 0.0  # -0 is a cap of 0 kW, and printed as one
        interventions.append(Derate(derate, units="kW"))
    if stop:
        interventions.append(Stop())
    if not interventions:
        raise _fail("expected at least one intervention: --derate KW, --stop or --scale F")
    if input is not None and (start is not None or end is not None):
        raise _fail(
            "--start/--end choose stored readings; with --input the file's rows are the "
            "period: give one or the other"
        )
    period_start = None if start is None else _utc(start)
    period_end = None if end is None else _utc(end)
    if period_start is not None and period_end is not None and period_end <= period_start:
        raise _fail(
            f"--end {period_end.isoformat()}: expected a time after --start "
            f"{period_start.isoformat()}"
        )
    with _open_store(store) as db:
        recorder = Recorder(store=db)
        live = _load_twin(db, twin, recorder)
        if live.is_branch:
            # Its interventions would stand in the live twin's column, and its readings
            # are its parent's.
            if live.parent_id == twin:
                raise _fail(
                    f"--twin {twin}: the store's latest version of {twin} is a branch of "
                    f"{twin} saved under its parent's own name (refused since); fit {twin} "
                    "again to make a live twin its latest version"
                )
            raise _fail(
                f"--twin {twin}: a saved branch of {live.parent_id} "
                f"({'; '.join(i.describe() for i in live.interventions) or 'no interventions'}); "
                f"a what-if starts from a live twin: --twin {live.parent_id} with the "
                "interventions of both"
            )
        if input is not None:
            frame, content = _read_inputs(input, live, times_once=True)
        else:
            frame = db.observations(twin, start=period_start, end=period_end)
        if frame.empty:
            # Only stored readings can be empty here (an input file needs a row); say
            # where the twin's readings are, so the next try lands in them.
            span = db.observation_span(twin)
            asked = (
                f"from {'the first' if period_start is None else utc_time_text(period_start)} "
                f"until {'the last' if period_end is None else utc_time_text(period_end)}"
            )
            held = (
                f"its readings run from {utc_time_text(span[0])} to {utc_time_text(span[1])}"
                if span is not None
                else "the store holds no readings of it"
            )
            raise _fail(f"twin {twin!r}: no stored readings {asked}; {held}")
        if input is None and (period_start is not None or period_end is not None):
            # The quantities are totals over the readings: say where the period asked for
            # runs a day or more beyond them (the coverage warning below counts only gaps
            # between them).
            times, day = frame["time"], pd.Timedelta(days=1)
            early = period_start is not None and times.min() > period_start + day
            late = period_end is not None and times.max() < period_end - day
            if early or late:
                _warn(
                    f"the stored readings of {twin} in the period asked for run from "
                    f"{utc_time_text(times.min())} to {utc_time_text(times.max())}: the "
                    "quantities are totals over those readings only"
                )
        if input is None and (start is None or end is None):
            times = frame["time"]
            console.print(
                f"period: the stored readings of {twin} from {times.min():%Y-%m-%d %H:%M} "
                f"to {times.max():%Y-%m-%d %H:%M} UTC (--start/--end choose another)",
                highlight=False,
            )
        rated = float(live.schema.variable("power").bounds[1])
        if derate is not None and derate >= rated:
            _warn(f"--derate {derate:g} kW is at or above rated power ({rated:g} kW): no change")
        elif derate is not None and 0.0 < derate < 0.01 * rated:
            _warn(
                f"--derate {derate:g} kW is under 1 % of rated power ({rated:g} kW); --derate "
                "takes kW (a cap in MW is 1,000 times that; --stop stops the turbine)"
            )
        # A file's power column is listed as not read (a stored reading's is its own).
        stored_only = ["source_row", "asset_id"] + (["power"] if input is None else [])
        inputs = _model_columns(frame.drop(columns=stored_only, errors="ignore"))
        if input is not None:
            _say_what_is_read(inputs, live)
            inputs.pop("power", None)
            _warn_missing_optional(inputs, live)
            try:
                live.check_inputs(inputs)  # before the file is recorded as read
            except ValueError as error:
                raise _fail(f"{input}: {error}") from None
        if isinstance(live.emulator, BayesianBasisRegression):
            _warn_unseen(live.emulator, inputs, users_file=input is not None)
            _warn_outside_range(live.emulator, inputs, live)
        source = (
            recorder.file_entity(input, content)
            if input is not None
            else db.observations_entity(twin, start=period_start, end=period_end)
        )
        if "time" not in inputs:
            _warn(
                "inputs have no 'time' column: sample paths treat readings as independent, "
                "so intervals of energy and hours are too narrow; each row counts as "
                f"{duration_text(READING_HOURS)}"
            )
        step_hours = _reading_hours(inputs)
        branch = live.branch(*interventions)
        with warnings.catch_warnings():
            # Said above, in the command's words.
            warnings.filterwarnings("ignore", "inputs have no 'time' column")
            try:
                # A year of readings takes tens of seconds: a bar says how far it is.
                result = compare(
                    live,
                    branch,
                    inputs,
                    turbine_metrics(rated, interval_hours=step_hours),
                    n_samples=samples,
                    seed=seed,
                    source=source,
                    progress=True,
                )
            except MemoryError:
                # Each sample path holds every reading: the arrays grow as their product.
                gib = len(frame) * samples * 8 / 2**30
                raise _fail(
                    f"--samples {samples}: not enough memory for {samples} sample paths of "
                    f"{len(frame)} readings ({gib:.1f} GiB an array); expected fewer "
                    "--samples or a shorter period (--start/--end)"
                ) from None
        result_id = record_whatif(recorder, live, branch, result, len(frame), samples, seed)
    table = Table(
        title=f"what-if for {twin}: {result.interventions} ({len(frame)} "
        f"{'reading' if len(frame) == 1 else 'readings'} of {duration_text(step_hours)})"
    )
    for column in ("quantity", "live twin", "branch", "difference"):
        table.add_column(column, justify="right")
    for row in result.to_frame().to_dict("records"):
        cells = [
            f"{_number(row[f'{part}_mean'])} [{_number(row[f'{part}_lo'])}, "
            f"{_number(row[f'{part}_hi'])}]"
            for part in ("baseline", "scenario", "difference")
        ]
        table.add_row(f"{row['metric']} [{row['units']}]", *cells)
    console.print(table)
    _say_coverage(inputs, len(frame), step_hours)
    console.print("brackets: 90 % intervals; branch and live twin share random numbers")
    _say_rated_out_of_reach(rated, derate, scale, stop)
    console.print(f"where it came from: twinweave provenance {result_id} --store {store}")


def _say_rated_out_of_reach(
    rated: float, derate: float | None, scale: float | None, stop: bool
) -> None:
    """Say why a branch capped below rated power has no hours at rated: they count
    hours at the nameplate rating, not at the branch's cap."""
    at_rated = HoursAtRated(rated)
    threshold = at_rated.fraction * rated
    ceiling = min(
        rated,
        rated if derate is None else derate,
        rated if scale is None else scale * rated,
        0.0 if stop else rated,
    )
    if ceiling < threshold:
        console.print(
            f"hours_at_rated counts hours at {at_rated.fraction:.0%} or more of the rated "
            f"power, {threshold:g} of {rated:g} kW; the branch's power stays at or below "
            f"{ceiling:g} kW, so it has none",
            highlight=False,
        )


#: Steps between times below which the usual step is a guess, said as one.
_FEW_STEPS = 3


def _reading_hours(inputs: dict[str, np.ndarray]) -> float:
    """Hours one reading stands for: the usual step between the inputs' times (their
    most frequent difference, the shortest of equally frequent ones: a median would take
    a gap for the step when there are few readings), or :data:`READING_HOURS` without
    times."""
    if "time" not in inputs:
        return READING_HOURS
    times = np.unique(inputs["time"])
    seconds = time_seconds(times)
    hours = usual_step_hours(seconds)
    if hours is None:
        _warn(
            f"column 'time': one time only, so no step between readings to count each for; "
            f"counted for {duration_text(READING_HOURS)} (La Haute Borne's step)"
        )
        return READING_HOURS
    if times.size - 1 < _FEW_STEPS:  # steps between distinct times
        # Two readings a day apart are two days of readings, or a gap in a 10-minute log.
        _warn(
            f"column 'time': each reading is counted for {duration_text(hours)}, the step "
            f"between its {times.size} times, too few to be sure of it; give one "
            "reading per step if a reading stands for another length of time"
        )
    # A second cadence (hourly readings after 10-minute ones) is compare's to warn of.
    return hours


def _number(value: float) -> str:
    # Differences of equal quantities come out as 1e-19 rather than 0 after summation.
    return f"{0.0 if abs(value) < 1e-12 else value:.4g}"


def _say_coverage(inputs: dict[str, np.ndarray], n_readings: int, step_hours: float) -> None:
    """Say how much of the period the readings cover: energy and hours count only the
    readings there are (quarantined or missing ones are not filled in)."""
    note = None if "time" not in inputs else coverage_note(inputs["time"], n_readings, step_hours)
    if note is not None:
        _warn(note)


@app.command()
def provenance(
    store: StoreOption,
    entity_id: Annotated[
        str | None,
        typer.Argument(
            help="Entity id (a prediction's, a what-if result's, ...) or a twin id (its "
            "latest version); without one, the latest entities are listed."
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Also write PROV-JSON here: the chain printed, or without ENTITY_ID every "
            "record of the store; - writes it to stdout (and the rest to stderr).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Entities to list without an id.", min=1)] = 20,
) -> None:
    """Print the chain from raw file to ENTITY_ID: a prediction's, a what-if result's or
    any other entity's id, or a twin id (its latest version). Without one, list the
    latest entities."""
    to_stdout = _to_stdout(json_out)
    say = diagnostics if to_stdout else console
    if json_out is not None:
        if to_stdout:
            _check_stdout_open(json_out, "--json")
        else:
            _check_output_path(json_out, "--json")

    def write_json(records: list[ProvRecord], what: str) -> None:
        text = recorder.to_json(records)
        if to_stdout:
            console.out(text, highlight=False)
        elif json_out is not None:
            json_out.write_text(text)
        if json_out is not None:
            say.print(f"wrote {what} as PROV-JSON to {'stdout' if to_stdout else json_out}")

    with _open_store(store, read_only=True) as db:
        recorder = Recorder.from_store(db)
        twin_ids = set(db.twin_ids())
        if entity_id in twin_ids:
            entity_id = str(db.versions(entity_id)["provenance_id"].iloc[-1])
    if entity_id is None:
        entities = [r for r in recorder.records() if r.category == "entity"]
        say.print(
            f"{len(entities)} entities in {store}; the latest {min(limit, len(entities))} "
            f"(twins: {sorted(twin_ids)}):"
        )
        for record in entities[-limit:]:
            say.print(record.describe(), highlight=False)
        # Without an entity the export is the whole store's provenance.
        records = recorder.records()
        write_json(records, f"all {len(records)} records")
        return
    if entity_id not in recorder:
        twins = (
            f"a twin id ({', '.join(sorted(twin_ids))}) gives its latest version"
            if twin_ids
            else "the store has no twins yet (`twinweave fit`)"
        )
        known = [r.id for r in recorder.records() if r.category == "entity"]
        near = _near_ids(entity_id, [*known, *sorted(twin_ids)])
        meant = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise _fail(
            f"{entity_id!r}: no such provenance id in {store}{meant}; `twinweave provenance "
            f"--store {store}` lists the latest, and {twins}"
        )
    chain = recorder.chain(entity_id)
    say.print(f"{len(chain)} records, raw files first, {entity_id} last:")
    for record in chain:
        say.print(record.describe(), highlight=False)
    write_json(chain, f"the chain's {len(chain)} records")


@app.command()
def version() -> None:
    """Print the version."""
    from twinweave import __version__

    console.print(json.dumps({"twinweave": __version__, "at": datetime.now(UTC).isoformat()}))


def _near_ids(wanted: str, known: Sequence[str], most: int = 3) -> list[str]:
    """Ids of ``known`` that a mistyped ``wanted`` may have meant: the same but for case
    and spaces, one whose hash starts as ``wanted``'s (another kind's, or cut short),
    or a close spelling."""
    key = wanted.strip().lower()
    by_key = {k.lower(): k for k in known}
    digest = key.rpartition(":")[2]
    found = [by_key[key]] if key in by_key else []
    if len(digest) >= 6:
        found += [k for k in known if k.rpartition(":")[2].lower().startswith(digest)]
    found += [by_key[k] for k in difflib.get_close_matches(key, list(by_key), most, 0.8)]
    return list(dict.fromkeys(found))[:most]


@app.command()
def quarantine(
    store: StoreOption,
    asset: Annotated[str | None, typer.Option(help="Only this asset.")] = None,
    check: Annotated[str | None, typer.Option(help="Only this check, e.g. downtime.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write all rows to this CSV or Parquet file; - writes CSV to stdout (and "
            "the rest to stderr)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.", min=1)] = 20,
) -> None:
    """List quarantined readings with the check that failed and why."""
    say = diagnostics if _to_stdout(output) else console
    if output is not None:
        _check_output_table(output, "--output")
    with _open_store(store, read_only=True) as db:
        rows = db.quarantine(asset, check)
        # Listed by check, a reading may show without the row that set it aside.
        of_asset = rows if check is None else db.quarantine(asset, None)
        if rows.empty and (asset is not None or check is not None):
            everything = db.quarantine(None, None)
            for name, value, known in (
                ("--asset", asset, everything["asset_id"]),
                ("--check", check, everything["check"]),
            ):
                if value is not None and value not in set(known):
                    raise _fail(
                        f"{name} {value}: none in the quarantine; expected one of "
                        f"{sorted(set(known.astype(str)))}"
                    )
    if rows.empty:
        which = "".join(
            f" {name} {value}" for name, value in (("--asset", asset), ("--check", check)) if value
        )
        say.print(f"quarantine: no entries{f' for{which}' if which else ''}", highlight=False)
        if output is not None:
            where = _write_table(rows, output)
            say.print(
                f"wrote 0 rows to {where}{_quarantine_export(store, rows, output, asset, check)}"
            )
        return
    counts = rows.groupby(["asset_id", "check"]).size().rename("rows").reset_index()
    reading = ["source_sha256", "source_row"]
    n_readings = rows[reading].drop_duplicates().shape[0]
    kept = rows["blanked"].to_numpy(dtype=bool) & _in_readings_kept(rows, of_asset)
    n_kept = rows.loc[kept, reading].drop_duplicates().shape[0]
    table = Table(
        title=f"quarantine: {len(rows)} failed checks of {n_readings} readings "
        "(a reading can fail several"
        + (f"; {n_kept} of them kept, with a value blanked)" if n_kept else ")")
    )
    for column in ("asset_id", "check", "rows"):
        table.add_column(column)
    for record in counts.to_dict("records"):
        table.add_row(str(record["asset_id"]), str(record["check"]), str(record["rows"]))
    say.print(table)
    # Plain text: Rich's highlighting of a long table costs seconds and gigabytes.
    say.print(rows.head(limit).to_string(index=False), highlight=False)
    if len(rows) > limit:
        # Else the rows printed pass for all there are.
        rest = "; --limit N or --output FILE for all" if output is None else ""
        say.print(f"showing {limit:,} of {len(rows):,}{rest}", highlight=False)
    if output is not None:
        csv_out = _output_kind(output) == "csv"
        where = _write_table(_values_as_read(rows) if csv_out else rows, output)
        recorded = _quarantine_export(store, rows, output, asset, check)
        say.print(f"wrote {len(rows):,} rows to {where}{recorded}")


def _quarantine_export(
    store: Path, rows: pd.DataFrame, output: Path, asset: str | None, check: str | None
) -> str:
    """Record the quarantine rows written to ``output``, as every table a command writes
    is recorded: selected from the quarantine of the files they came from. Returns what
    to print after the file's name (nothing for stdout, which is no file)."""
    if _to_stdout(output) or _is_stream(output):
        return ""
    with _open_store(store) as db:
        sources = db.sources()
        from_files = sources["sha256"].isin(set(rows["source_sha256"].astype(str)))
        recorder = Recorder(store=db)
        selected = recorder.record(
            "select",
            used=sources.loc[from_files, "quarantine_entity"].astype(str).tolist(),
            generated="quarantine_rows",
            attributes={"asset_id": asset, "check": check, "n_rows": len(rows)},
        )
        return f" (its record: {_record_export(recorder, output, selected)})"


def _in_readings_kept(rows: pd.DataFrame, every: pd.DataFrame | None = None) -> np.ndarray:
    """Whether each quarantine row is of a reading kept (an observation): one that no
    row of ``every`` (by default ``rows``), blanking none, set aside."""
    every = rows if every is None else every
    reading = ["source_sha256", "source_row"]
    aside = every.loc[~every["blanked"].to_numpy(dtype=bool), reading].drop_duplicates()
    key = pd.MultiIndex.from_frame(rows[reading])
    return np.asarray(~key.isin(pd.MultiIndex.from_frame(aside)), dtype=bool)


def _values_as_read(rows: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows with ``value`` as text of the digits the source had, without the
    noise of the arithmetic or widening it went through.

    A value that is exactly a float32 (read from a float32 column, stored widened:
    -3.43 as -3.430000066757202) is written as that float32's shortest text (-3.43).
    Any other to 15 significant digits, the most any decimal keeps through a float64
    (the shipped file's -3.4300001000000004 is -3.4300001): every number a source wrote
    with 15 digits or fewer is written back as it was, and only digits past what a float64
    holds of a decimal are left out."""
    values = rows["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(over="ignore"):
        narrow = values.astype(np.float32)
    exact = narrow.astype(np.float64) == values
    # str() of a float32 is its shortest round-trip text; float() reads it as Python's.
    text = [
        "" if np.isnan(v) else repr(float(str(n))) if e else repr(float(f"{v:.15g}"))
        for v, n, e in zip(values, narrow, exact, strict=True)
    ]
    return rows.assign(value=text)


@app.command()
def demo(
    output: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports/demo"),
) -> None:
    """The main job: La Haute Borne twins fitted on 2014, evaluated on 2015, with a report."""
    from twinweave.demo import run_demo

    # Progress on stderr with the other diagnostics: stdout carries the results only.
    result = run_demo(
        output, step=lambda line: diagnostics.print(Text.assemble((">", "bold cyan"), " ", line))
    )
    columns = {
        "rmse_kw": "RMSE [kW]",
        "baseline_rmse_kw": "IEC RMSE [kW]",
        "crps_kw": "CRPS [kW]",
        "baseline_crps_kw": "IEC CRPS [kW]",
        "coverage90": "cov90",
        "live_rmse_kw": "live RMSE [kW]",
        "live_coverage90": "live cov90",
        "live_coverage90_min_bin": "live min bin cov90",
    }
    table = Table(title="2015 held-out scores (twin trained on 2014; IEC = method of bins)")
    table.add_column("turbine")
    for label in columns.values():
        table.add_column(label, justify="right")
    for asset_id, row in result.metrics.iterrows():
        table.add_row(str(asset_id), *(f"{float(row[c]):.3f}" for c in columns))
    console.print(table)
    console.print(f"report: {result.report}")
    console.print(f"store:  {result.store}")


SinceOption = Annotated[
    datetime,
    typer.Option(
        "--since", click_type=UTC_TIME, help=f"Start of the period to monitor or score {_ZONE}."
    ),
]


def _utc(value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


CalibrationDaysOption = Annotated[
    int,
    typer.Option(
        "--calibration-days",
        help="Days before --since the detectors calibrate on (each needs "
        f"{MIN_CALIBRATION_PERIODS} days with readings or more).",
        min=MIN_CALIBRATION_PERIODS,
    ),
]
#: Days of calibration by default, in ``monitor`` and ``report`` alike.
CALIBRATION_DAYS = 180
#: The monitor compares each turbine with the median of the others at the same time,
#: of at least two others where the farm has three turbines or more.
FLEET_OTHERS = 2


def _min_others(specs: Mapping[str, TurbineSpec]) -> int:
    """How many other turbines the monitor compares each one with, at least."""
    return min(FLEET_OTHERS, len(specs) - 1)


def _small_farm_caveat(specs: Mapping[str, TurbineSpec]) -> str | None:
    """What watching fewer than a fleet's turbines costs, or ``None`` for a fleet."""
    min_others = _min_others(specs)
    if min_others >= FLEET_OTHERS:
        return None
    # Measured on La Haute Borne 2015 (docs/RESULTS.md), so the user can weigh it.
    measured = (
        "pairs of turbines raised 0.25 false alarms per turbine-year and flagged 57 of "
        "72 injected -8 % losses within 7 days"
        if min_others == 1
        else "a turbine alone raised 1.26 false alarms per turbine-year and flagged 13 "
        "of 24 injected -8 % losses within 7 days"
    )
    return (
        f"{len(specs)} {'turbine' if len(specs) == 1 else 'turbines'} in the store "
        f"({', '.join(specs)}): each is compared "
        f"with {'the other' if min_others == 1 else 'its own twin only'}, not with the "
        f"median of a fleet, so weather all twins mispredict is not removed; on La "
        f"Haute Borne 2015 {measured} (a fleet of four: 0.25 and 21 of 24)"
    )


def _days_with_readings(
    observations: pd.DataFrame, start: pd.Timestamp, stop: pd.Timestamp
) -> dict[str, int]:
    """Per turbine, the UTC days from ``start`` until ``stop`` with at least
    :data:`MIN_PERIOD_READINGS` readings."""
    inside = observations[(observations["time"] >= start) & (observations["time"] < stop)]
    per_day = inside.groupby(
        [inside["asset_id"].astype(str), inside["time"].dt.floor("D")], observed=True
    ).size()
    full = per_day[per_day >= MIN_PERIOD_READINGS]
    return {str(a): int(n) for a, n in full.groupby(level=0).size().items()}


def _run_monitor(
    db: Store,
    specs: dict[str, TurbineSpec],
    start: pd.Timestamp,
    stop: pd.Timestamp | None,
    calibration_days: int,
) -> dict[str, MonitorResult]:
    """The monitor's results per turbine from ``start`` to ``stop``: the twins learn
    the readings before the calibration period (``calibration_days`` before ``start``)
    and run live through it. A ValueError says, in the options' words, why it cannot
    run."""
    from twinweave.demo import store_observations
    from twinweave.domains.wind import monitor_fleet

    if not specs:
        raise ValueError("the store holds no turbine to monitor; ingest readings first")
    observations = store_observations(db, specs)
    live_from = start - pd.Timedelta(days=calibration_days)
    first, last = observations["time"].min(), observations["time"].max()
    if start > last:
        raise ValueError(
            f"--since {start.isoformat()}: after the last stored reading ({last}); "
            "nothing to monitor"
        )
    if live_from <= first:
        raise ValueError(
            f"--since {start.isoformat()} with --calibration-days {calibration_days}: "
            f"the twins learn from the readings before {live_from.isoformat()}, and the "
            f"store's readings start at {first}; use a later --since or fewer "
            "--calibration-days"
        )
    # A turbine without readings before the calibration period (one born into its
    # fleet later) has no twin for the monitor to learn: the others are still watched.
    learnt = set(observations.loc[observations["time"] < live_from, "asset_id"].astype(str))
    unwatched = [a for a in specs if a not in learnt]
    if unwatched and len(unwatched) < len(specs):
        _warn(
            f"{'turbine' if len(unwatched) == 1 else 'turbines'} {', '.join(unwatched)}: no "
            "readings before the calibration period "
            f"(before {live_from.isoformat()}) to fit the monitor's twin on; not monitored"
        )
        specs = {a: spec for a, spec in specs.items() if a not in unwatched}
        observations = observations[observations["asset_id"].astype(str).isin(list(specs))]
    # Nor is one with too few days of readings in the calibration period to scale its
    # detector: refused, it stopped the whole farm's monitor (review 2026-12-01).
    days = _days_with_readings(observations, live_from, start)
    sparse = {a: days.get(a, 0) for a in specs if days.get(a, 0) < MIN_CALIBRATION_PERIODS}
    if sparse and len(sparse) < len(specs):
        listed = ", ".join(f"{a} ({n} days)" for a, n in sparse.items())
        _warn(
            f"{'turbine' if len(sparse) == 1 else 'turbines'} {listed}: fewer than "
            f"{MIN_CALIBRATION_PERIODS} days with {MIN_PERIOD_READINGS} readings or "
            f"more in the calibration period ({live_from.isoformat()} to "
            f"{start.isoformat()}) to calibrate the detector on; not monitored"
        )
        specs = {a: spec for a, spec in specs.items() if a not in sparse}
        observations = observations[observations["asset_id"].astype(str).isin(list(specs))]
    with diagnostics.status("monitoring"):
        try:
            results = monitor_fleet(
                observations,
                specs,
                live_from=live_from,
                monitor_from=start,
                stop=stop,
                min_others=_min_others(specs),
            )
        except ValueError as error:
            raise ValueError(
                f"monitor --since {start.isoformat()} --calibration-days "
                f"{calibration_days}: {error}"
            ) from None
    # Said once the monitor has run: its alarms are what the caveat is about.
    caveat = _small_farm_caveat(specs)
    if caveat is not None:
        _warn(caveat)
    return results


@app.command()
def monitor(
    store: StoreOption,
    since: SinceOption,
    calibration_days: CalibrationDaysOption = CALIBRATION_DAYS,
    until: Annotated[
        datetime | None, typer.Option(click_type=UTC_TIME, help=f"End, exclusive {_ZONE}.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="CSV or Parquet file of per-reading scores; - writes CSV to stdout (and "
            "the rest to stderr)."
        ),
    ] = None,
    assets: AssetsOption = None,
    rated_power: RatedOption = None,
    elevation: ElevationOption = None,
) -> None:
    """Persistent-underperformance alarms for every stored turbine; with ``--output``,
    every reading's anomaly score too.

    Twins learn the readings before the calibration period, run live through it (the
    detectors calibrate there), then watch from ``--since``. The run and its alarms are
    recorded in the store's provenance.

    Works best with 3 turbines or more: each turbine's residuals are compared with the
    median of the others' at the same time, so that weather they all see is not taken
    for a loss. With two, each is compared with the other; with one, it is watched on
    its own residuals, which raises more false alarms (a warning gives the measured
    rates).

    Columns of ``--output``, one row per reading: ``time`` (UTC);
    ``residual``, the reading's randomised-PIT residual under the twin's week-ahead
    predictive [standard deviations], empty below 2 degC (icing is not watched);
    ``contrast``, the residual minus the other turbines' median at that time (with two
    turbines, minus the other's; with one, the residual itself) [sd];
    ``sensitivity``, how far an 8 % power loss would lower the residual [sd];
    ``anomaly_score``, how surprising the reading is [decades of probability];
    ``alarm``, whether the reading lies inside an alarm's run; ``asset_id``.
    """
    start = _utc(since)
    stop = None if until is None else _utc(until)
    if stop is not None and stop <= start:
        raise _fail(
            f"--until {stop.isoformat()}: expected a time after --since {start.isoformat()}"
        )
    say = diagnostics if _to_stdout(output) else console
    if output is not None:
        _check_output_table(output, "--output")
    with _open_store(store) as db:
        stored = _turbine_twins(db)
        every_twin = set(db.twin_ids())  # a twin of another domain is neither kind
        with_readings = db.asset_ids()
        specs = {a: TurbineSpec.from_twin(stored[a]) for a in with_readings if a in stored}
        unstored = [a for a in with_readings if a not in every_twin]
        known = _known_specs(assets, rated_power, elevation)
        new_specs = _turbine_specs(unstored, known, rated_power, elevation)
        _check_same_rated_power(db.sources(), new_specs)
        _warn_sea_level(unstored, known, elevation)
        specs |= new_specs
        try:
            results = _run_monitor(db, specs, start, stop, calibration_days)
        except ValueError as error:
            raise _fail(str(error)) from None
        # The turbines monitored: one without readings before the calibration is not.
        monitored = {a: specs[a] for a in results}
        recorder = Recorder(store=db)
        alarms_id = record_monitor(
            recorder,
            db,
            results,
            {
                "since": start,
                "until": stop,
                "calibration_days": calibration_days,
                # None for a fleet; else what these alarms are worth (fewer turbines).
                "caveat": _small_farm_caveat(monitored),
            },
        )
        n_alarms = sum(len(result.alarms) for result in results.values())
        # Where the scores went, and the record of the file written there.
        written: tuple[str, str] | None = None
        if output is not None:
            frames = [r.readings.assign(asset_id=a) for a, r in results.items()]
            where = _write_table(pd.concat(frames, ignore_index=True), output)
            written = (where, _record_export(recorder, output, alarms_id))
    window = _monitored_window(results, start, stop)
    if n_alarms:
        table = Table(title=f"underperformance alarms {window}")
        for column in ("turbine", "alarm at", "run started", "days in run", "CUSUM"):
            table.add_column(column)
        for asset_id, result in results.items():
            for alarm in result.alarms:
                table.add_row(
                    asset_id,
                    f"{alarm.time:%Y-%m-%d}",
                    f"{alarm.start:%Y-%m-%d}",
                    str(alarm.run_length),
                    f"{alarm.statistic:.1f}",
                )
        say.print(table)
        # A persistent loss raises an alarm every few days (the CUSUM restarts after
        # each): the periods are what the report counts, and what an engineer acts on.
        for asset_id, result in results.items():
            periods = _alarm_periods(result.alarms)
            if periods:
                spans = ", ".join(f"{a:%Y-%m-%d} to {b:%Y-%m-%d}" for a, b in periods)
                say.print(
                    f"{asset_id}: {len(result.alarms)} "
                    f"{'alarm' if len(result.alarms) == 1 else 'alarms'} in {len(periods)} "
                    f"{'period' if len(periods) == 1 else 'periods'} of underperformance "
                    f"(runs that follow one another joined): {spans}",
                    highlight=False,
                )
    else:
        # An empty table reads as a failure to show something; the answer is "none",
        # where there were readings to watch.
        watched = [a for a, r in results.items() if _watched(r, start, stop)]
        if watched:
            say.print(
                f"no underperformance alarms for {', '.join(watched)} {window}", highlight=False
            )
    # A turbine without readings in the window was not watched: no alarm is no news.
    for asset_id, result in results.items():
        if not _watched(result, start, stop):
            say.print(
                f"{asset_id}: no readings to watch "
                f"{_monitored_window({asset_id: result}, start, stop)}",
                highlight=False,
            )
    if written is not None:
        where, scores_id = written
        record = "" if where == "stdout" else f" (its record: {scores_id})"
        say.print(f"wrote per-reading scores to {where}{record}")
    say.print(f"where they came from: twinweave provenance {alarms_id} --store {store}")


def _alarm_periods(alarms: Sequence[Alarm]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The alarms' runs, ``[start, time]``, joined where one starts by the time the one
    before raised its alarm."""
    periods: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for alarm in sorted(alarms, key=lambda a: a.start):
        if periods and alarm.start <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], alarm.time))
        else:
            periods.append((alarm.start, alarm.time))
    return periods


def _watched(result: MonitorResult, start: pd.Timestamp, stop: pd.Timestamp | None) -> bool:
    """Whether the monitor had readings of a turbine from ``start`` until ``stop``."""
    times = result.readings["time"]
    inside = times >= start if stop is None else (times >= start) & (times < stop)
    return bool(inside.any())


def _monitored_window(
    results: Mapping[str, MonitorResult], start: pd.Timestamp, stop: pd.Timestamp | None
) -> str:
    """The period the monitor watched, in words: to ``--until``, or without it to the
    last reading it scored."""
    if stop is not None:
        return f"from {utc_time_text(start)} until {utc_time_text(stop)} (exclusive)"
    scored = [r.readings["time"].max() for r in results.values() if not r.readings.empty]
    if not scored:
        return f"from {utc_time_text(start)}"
    last = max(scored)
    return f"from {utc_time_text(start)} to the last reading, {last:%Y-%m-%d %H:%M} UTC"


def _training_record(db: Store, twin_id: str) -> TrainingRecord | None:
    """What the latest version of a twin was fitted on, as ``twinweave fit`` notes it,
    and when it was saved; ``None`` for a twin saved with another note."""
    latest = db.versions(twin_id).iloc[-1]
    return TrainingRecord.from_note(str(latest["note"]), pd.Timestamp(latest["created_at"]))


def _ingested_since_fit(db: Store, twin_id: str, record: TrainingRecord) -> str | None:
    """A warning where readings of a twin's training period (for a twin born into its
    fleet: before its birth) came from files ingested after its fit."""
    if record.fitted_at is None:
        return None
    held = db.count_observations(twin_id, end=record.until)
    later = held - db.count_observations(
        twin_id, end=record.until, ingested_before=record.fitted_at
    )
    if later <= 0:
        return None
    one = later == 1
    return (
        f"twin {twin_id}: {later:,} {'reading' if one else 'readings'} before "
        f"{utc_time_text(record.until)} came from files ingested after its fit "
        f"({record.fitted_at:%Y-%m-%d %H:%M:%S} UTC); neither the twin nor its IEC "
        f"baseline uses {'it' if one else 'them'} (fit again to use {'it' if one else 'them'})"
    )


def _training_note(trained: Mapping[str, pd.Timestamp | None], start: pd.Timestamp) -> str:
    """Which readings the twins (and so their IEC baselines) were fitted on, for the page."""
    known = {until for until in trained.values() if until is not None}
    unknown = [a for a, until in trained.items() if until is None]
    if len(known) == 1 and not unknown:
        until = next(iter(known))
        text = (
            f"Twins fitted on the readings before {utc_time_text(until)} "
            "(twinweave fit --train-until); each IEC baseline on the same readings as its twin."
        )
        if until < start:
            text += (
                f" The live twins assimilate the readings from {utc_time_text(until)} to "
                f"{utc_time_text(start)} before they are scored; the frozen twins and the "
                "baselines do not."
            )
        return text
    listed = "; ".join(
        f"{a}: before {utc_time_text(until)}" if until is not None else f"{a}: not known"
        for a, until in trained.items()
    )
    return (
        f"Twins fitted on the readings ({listed}); each IEC baseline on the same readings as "
        f"its twin, or where that is not known on every reading before {utc_time_text(start)}. "
        "Each turbine's section gives its periods."
    )


def _too_few_to_judge(result: TurbineResult) -> str | None:
    """A warning where a twin was scored on too few readings to judge its coverage, as
    the report counts them (:func:`~twinweave.report.n_scored`)."""
    from twinweave.report import MIN_READINGS, n_scored, scored_span

    n = n_scored(result)
    if n >= MIN_READINGS:
        return None
    span = scored_span(result)
    when = "" if span is None else f", from {utc_time_text(span[0])} to {utc_time_text(span[1])}"
    return (
        f"twin {result.asset_id}: scored on {n:,.0f} {'reading' if n == 1 else 'readings'}"
        f"{when}: too few (under {MIN_READINGS}) to judge its 90 % coverage; the report shows "
        "it without a verdict"
    )


@app.command()
def report(
    store: StoreOption,
    since: SinceOption,
    output: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports/twinweave"),
    calibration_days: CalibrationDaysOption = CALIBRATION_DAYS,
) -> None:
    """Score every stored twin on the readings from ``--since`` and write the HTML report.

    The report shows the underperformance monitor's alarms as ``twinweave monitor``
    finds them (with fewer than 3 turbines, with its warning); where it cannot run (for
    example too few readings before or in the calibration period) the report is written
    without them and says why. A twin with no readings from ``--since`` on is left out,
    with a warning.

    Each twin's IEC baseline is fitted on the readings the twin was fitted on (before its
    ``fit --train-until``, of the files ingested before the fit: readings of that period
    ingested later, a backfill, are left out, and the page and a warning say so); where
    ``--since`` is later, the live twin first assimilates
    the readings in between, as a running twin would have. The page and
    ``metrics.json`` state both periods. A twin scored on too few readings to judge its
    coverage is warned of, and its coverage shown without a verdict.

    The report is recorded in the store's provenance, derived from the twins' versions
    and the readings scored.
    """
    from twinweave.demo import evaluate_turbine
    from twinweave.report import MonitorWindow, write_demo_report

    start = _utc(since)
    if output.exists() and not output.is_dir():
        raise _fail(f"--output {output}: a file; expected a folder for the report")
    writable = next((p for p in (output, *output.resolve().parents) if p.exists()), None)
    # Before minutes of scoring.
    why = (
        os.strerror(errno.ENOTDIR)
        if writable is None or not writable.is_dir()
        else _cannot_add_to(writable)
    )
    if why is not None:
        raise _fail(
            f"--output {output}: cannot create or write the folder (making a folder in "
            f"{writable}: {why})"
        )
    with _open_store(store) as db:
        twins = _turbine_twins(db)
        specs = {a: TurbineSpec.from_twin(twin) for a, twin in twins.items()}
        if not specs:
            raise _fail(f"{store}: no turbine twins; run `twinweave fit` first")
        # The report scores held-out readings: none a twin was fitted on.
        records = {a: _training_record(db, a) for a in specs}
        trained = {a: None if r is None else r.until for a, r in records.items()}
        for asset_id in [a for a, record in records.items() if record is None]:
            _warn(
                f"twin {asset_id}: its version does not say what it was fitted on (saved "
                "other than by twinweave fit): its IEC baseline is fitted on every reading "
                "before --since, and --since is not checked to be after its training"
            )
        for asset_id, until in trained.items():
            if until is not None and until > start:
                raise _fail(
                    f"--since {start.isoformat()}: twin {asset_id} was fitted on readings "
                    f"before {until.isoformat()}, so its scores from --since on would not "
                    f"be held out; use --since {until.isoformat()} or later, or fit with "
                    f"--train-until {start.isoformat()}"
                )
        unscored = [a for a in specs if db.count_observations(a, start=start) == 0]
        if len(unscored) == len(specs):
            spans = [db.observation_span(a) for a in specs]
            last = max((span[1] for span in spans if span is not None), default=None)
            held = (
                "the store holds no readings"
                if last is None
                else f"the last stored reading is at {utc_time_text(last)}"
            )
            raise _fail(
                f"--since {start.isoformat()}: no twin has readings from then on to score "
                f"({held}); expected an earlier --since"
            )
        # Each twin left out is named on the page and in metrics.json with why.
        not_scored: dict[str, str] = {}
        for asset_id in unscored:
            not_scored[asset_id] = f"no readings from --since {start.isoformat()} on"
        # The IEC baseline is fitted on the readings the twin was fitted on (before
        # --since where that is not known); for a twin born into its fleet without
        # readings (fit --fleet), on those from its birth to --since: without any, none.
        for asset_id in [a for a in specs if a not in not_scored]:
            if db.count_observations(asset_id, end=start) == 0:
                not_scored[asset_id] = (
                    f"no readings before --since {start.isoformat()} to fit the IEC baseline "
                    "on (a twin born into its fleet without any)"
                )
        for asset_id, why in not_scored.items():
            _warn(f"twin {asset_id}: {why}; not scored")
            del specs[asset_id]
        if not specs:
            raise _fail(
                f"--since {start.isoformat()}: no twin has readings both before it (for the "
                "baseline) and after it (to score)"
            )
        # Readings ingested into a training period after the fit were not the twin's.
        later = [
            said
            for a in specs
            if (record := records[a]) is not None
            and (said := _ingested_since_fit(db, a, record)) is not None
        ]
        for said in later:
            _warn(said)
        not_monitored: str | None = None
        try:
            monitored = _run_monitor(db, specs, start, None, calibration_days)
        except ValueError as error:
            # The scores stand without the monitor: the report says it did not run.
            monitored, not_monitored = {}, f"Monitoring did not run: {error}"
            _warn(not_monitored)
        results = []
        with _progress() as progress:
            task = progress.add_task("score (twins)", total=len(specs))
            for asset_id, spec in specs.items():
                try:
                    result, _ = evaluate_turbine(
                        db,
                        spec,
                        twins[asset_id],
                        start,
                        monitored.get(asset_id),
                        trained=records[asset_id],
                    )
                except ValueError as error:
                    raise _fail(str(error)) from None
                results.append(result)
                progress.advance(task)
        for result in results:
            few = _too_few_to_judge(result)
            if few is not None:
                _warn(few)
        # Turbines the monitor left out (no readings before its calibration period).
        unwatched = [] if not_monitored is not None else [a for a in specs if a not in monitored]
        # The report keeps what the warning said of a monitor on fewer than a fleet.
        caveat = (
            None
            if not_monitored is not None
            else _small_farm_caveat({a: specs[a] for a in monitored})
        )
        monitored_times = [r.readings["time"].max() for r in monitored.values() if len(r.readings)]
        window = (
            MonitorWindow(start - pd.Timedelta(days=calibration_days), start, max(monitored_times))
            if monitored_times
            else None
        )
        sources = db.sources()
        # The files' names: a shared report need not carry the reader's directories.
        attribution = "; ".join(Path(path).name for path in sources["path"]) or store.name
        title = (
            f"twinweave report: {len(results)} {'twin' if len(results) == 1 else 'twins'} "
            f"scored from {start:%Y-%m-%d}"
        )
        page = write_demo_report(
            output,
            results,
            None,
            title=title,
            notes=[
                f"Store {store}; readings from {start.isoformat()} on.",
                _training_note({a: trained[a] for a in specs}, start),
                *(f"{said[0].upper()}{said[1:]}." for said in later),
                *(
                    [
                        f"Not monitored for underperformance: {', '.join(unwatched)} (no "
                        "readings before the monitor calibration period to fit its twin on)."
                    ]
                    if unwatched
                    else []
                ),
            ],
            attribution=f"Data: {attribution}",
            not_monitored=not_monitored,
            monitor_caveat=caveat,
            monitor_window=window,
            not_scored=not_scored,
        )
        # The twins scored: one without readings since is not in the report.
        scored = [twins[a] for a in specs]
        versions = [t.model_version_ for t in scored if t.model_version_ is not None]
        report_id = record_report(
            Recorder(store=db),
            Path(page),
            [*versions, *(db.observations_entity(a, start=start) for a in specs)],
            {
                "title": title,
                "since": start,
                "twins": list(specs),
                "trained_until": {a: trained[a] for a in specs},
                "calibration_days": calibration_days,
                "not_monitored": not_monitored,
                "monitor_caveat": caveat,
            },
        )
    console.print(f"report: {page}")
    console.print(f"where it came from: twinweave provenance {report_id} --store {store}")
