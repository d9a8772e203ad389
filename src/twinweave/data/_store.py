"""The embedded store: one DuckDB file with observations, twins and their provenance.

DuckDB (Raasveldt and Muehleisen, "DuckDB: an Embeddable Analytical Database", SIGMOD
2019, doi:10.1145/3299869.3320212) gives transactions that are atomic across tables,
so an ingest interrupted at any point (an exception, Ctrl-C, a killed process) leaves
the file as it was before, and columnar scans fast enough that a fleet's years of
10-minute SCADA data need no separate warehouse.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import pickle
import re
import secrets
import time as clock
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import duckdb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from twinweave.core import (
    Emulator,
    Intervention,
    ProvenanceSink,
    ResidualCorrelation,
    State,
    Twin,
    TwinSchema,
)
from twinweave.data._errors import DataError
from twinweave.data._quality import QUARANTINE_COLUMNS, quarantine_rows
from twinweave.data._sources import RECORD_COLUMNS, SourceInfo
from twinweave.provenance import ProvRecord, Recorder

#: Version of the table layout written by this code; a store written by a newer layout
#: is refused rather than misread, one written by an older layout is upgraded when
#: opened for writing, as every command but ``provenance`` and ``quarantine`` opens it
#: (version 2 added ``sources.n_skipped`` and the twins' residual
#: correlation to ``model_versions``, version 3 the parent of a branch,
#: ``model_versions.parent_id``, version 4 the settings a file was read and cleaned
#: with, ``sources.settings``, version 5 ``quarantine.blanked``, whether an entry
#: blanked one value of a reading that was kept; from version 4 on, a model version may
#: hold parameters a twinweave older than the fleet prior cannot construct its emulator from,
#: ``prior_covariance`` and ``noise_target``, and a reader of format 3 is told to
#: upgrade instead of failing on them).
FORMAT_VERSION = 5

#: Check name of a reading whose asset and time are already stored from another file
#: with different values.
DUPLICATE_ACROSS_SOURCES = "duplicate_across_sources"

# Columns added by each upgrade of the layout, as (table, column definition).
_UPGRADES: dict[int, tuple[tuple[str, str], ...]] = {
    2: (
        ("sources", "n_skipped BIGINT NOT NULL DEFAULT 0"),
        ("model_versions", "correlation_params BLOB"),
        ("model_versions", "correlation_state BLOB"),
        ("model_versions", "correlation_state_kinds VARCHAR"),
    ),
    3: (("model_versions", "parent_id VARCHAR"),),
    4: (("sources", "settings VARCHAR"),),
    5: (("quarantine", "blanked BOOLEAN NOT NULL DEFAULT FALSE"),),
}

# Columns that identify a reading in raw and observation frames (docs/CONTRACTS.md).
KEY_COLUMNS = RECORD_COLUMNS

_VARIABLE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,63}\Z")  # \Z: $ lets a final newline in


def _settings_json(settings: Mapping[str, Any]) -> str:
    try:
        return json.dumps(settings, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"settings: expected JSON-serialisable values ({error})") from None


# Stored alongside each reading so rows of different files stay apart; not a variable.
_SOURCE_COLUMN = "source_sha256"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    sha256 VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    n_raw BIGINT NOT NULL,
    n_observations BIGINT NOT NULL,
    n_quarantine BIGINT NOT NULL,
    file_entity VARCHAR NOT NULL,
    raw_entity VARCHAR NOT NULL,
    observations_entity VARCHAR NOT NULL,
    quarantine_entity VARCHAR NOT NULL,
    n_skipped BIGINT NOT NULL DEFAULT 0,
    settings VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_observations (
    {_SOURCE_COLUMN} VARCHAR NOT NULL,
    asset_id VARCHAR NOT NULL,
    time TIMESTAMPTZ,
    source_row BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS observations (
    {_SOURCE_COLUMN} VARCHAR NOT NULL,
    asset_id VARCHAR NOT NULL,
    time TIMESTAMPTZ,
    source_row BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    {_SOURCE_COLUMN} VARCHAR NOT NULL,
    asset_id VARCHAR,
    time TIMESTAMPTZ,
    source_row BIGINT,
    variable VARCHAR,
    value DOUBLE,
    "check" VARCHAR NOT NULL,
    reason VARCHAR,
    blanked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS model_versions (
    twin_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    emulator VARCHAR NOT NULL,
    n_observations DOUBLE,
    params BLOB NOT NULL,
    state BLOB NOT NULL,
    state_kinds VARCHAR NOT NULL,
    schema VARCHAR NOT NULL,
    interventions BLOB NOT NULL,
    provenance_id VARCHAR,
    note VARCHAR NOT NULL,
    correlation_params BLOB,
    correlation_state BLOB,
    correlation_state_kinds VARCHAR,
    parent_id VARCHAR,
    PRIMARY KEY (twin_id, version)
);
CREATE TABLE IF NOT EXISTS provenance (
    id VARCHAR PRIMARY KEY,
    category VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    attributes VARCHAR NOT NULL,
    used VARCHAR NOT NULL,
    generated VARCHAR NOT NULL,
    generated_by VARCHAR
);
"""

#: Tables of a store, in the order they are created.
TABLES = (
    "meta",
    "sources",
    "raw_observations",
    "observations",
    "quarantine",
    "model_versions",
    "provenance",
)

TimeLike = str | datetime | pd.Timestamp | np.datetime64


@dataclass(frozen=True)
class IngestSummary:
    """What one :meth:`Store.ingest` wrote.

    Parameters
    ----------
    source
        The file ingested.
    n_raw, n_observations, n_quarantine
        Rows written to the raw, cleaned and quarantine tables.
    n_skipped
        Readings not stored (as observations or in the quarantine) because an earlier
        file holds the same reading (same asset, time and values).
    asset_ids
        Assets with readings in the file.
    new_variables
        Variables the store had not seen before (columns added to its tables).
    file_entity, raw_entity, observations_entity, quarantine_entity
        Provenance ids of the file and of the three frames derived from it.
    seconds
        Wall-clock time of the transaction [s].
    """

    source: SourceInfo
    n_raw: int
    n_observations: int
    n_quarantine: int
    n_skipped: int
    asset_ids: tuple[str, ...]
    new_variables: tuple[str, ...]
    file_entity: str
    raw_entity: str
    observations_entity: str
    quarantine_entity: str
    seconds: float


#: Bytes 8 to 12 of every DuckDB database file.
_DUCKDB_MAGIC = b"DUCK"
_EXPECTED_STORE = (
    "expected a twinweave store (a DuckDB file such as S.duckdb), or a new file name to create one"
)


def _refuse_what_is_not_a_store(path: Path) -> None:
    """Refuse a directory or an existing file that is not a DuckDB database, saying
    which: DuckDB's own errors ("Is a directory") read as a lock, and DuckDB 2 opens a
    CSV file as a database of its rows."""
    if path.is_dir():
        raise IsADirectoryError(f"store {path}: a directory; {_EXPECTED_STORE}")
    if not path.is_file():
        return
    with path.open("rb") as file:
        head = file.read(12)
    if head[8:12] == _DUCKDB_MAGIC:
        return
    if not head:
        # DuckDB writes its header after creating the file: another process may be
        # creating this store right now.
        what = (
            "an empty file, not a DuckDB database (unless another process is creating it right now)"
        )
    elif head.startswith(b"PAR1"):
        what = "a Parquet file, not a DuckDB database"
    elif head.startswith(b"SQLite format"):
        what = "a SQLite database, not a DuckDB one"
    elif re.search(r"\.(csv|txt)(\.\w+)?$", path.name, re.IGNORECASE):
        what = "a file that is not a DuckDB database (a CSV file, by its name)"
    else:
        what = "a file that is not a DuckDB database"
    raise OSError(f"store {path}: {what}; {_EXPECTED_STORE}")


#: How far two values of one reading may differ and be the same value: a file's values
#: converted from another unit differ from the same values read in the glossary's unit
#: in their last bits (about 1e-15 relative), and an absolute term covers values at 0.
_SAME_VALUE_RTOL: Final = 1e-9
_SAME_VALUE_ATOL: Final = 1e-12


class Store:
    """Observations, quarantine, twin versions and provenance in one DuckDB file.

    Every write is one transaction: a failed or interrupted :meth:`ingest` or
    :meth:`save_twin` leaves the file exactly as before it. A file is open either to
    one process for writing or to any number for reading only (DuckDB's file lock).

    Twin versions store the emulator's configuration with :mod:`pickle`, because it
    holds objects (basis terms, derived inputs) rather than plain values. Loading a
    twin therefore runs code named in the file: open only stores you trust, as you
    would a pickle or a Python script. Learned state is stored as ``.npz`` arrays and
    restores bit for bit.

    Parameters
    ----------
    path
        The DuckDB file; created with the store's tables if it does not exist.
    read_only
        Open for reading only (the file must exist).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with Store(Path(folder) / "fleet.duckdb") as store:
    ...         store.asset_ids()
    []
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"store {self.path}: no such file to open read-only")
        _refuse_what_is_not_a_store(self.path)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as error:
            # Files of another kind were refused above; DuckDB says which of the rest.
            if "not a valid DuckDB database file" in str(error):
                raise OSError(
                    f"store {self.path}: DuckDB cannot read it as a database ({error}); "
                    f"{_EXPECTED_STORE}"
                ) from error
            if "lock" in str(error).lower():
                raise OSError(
                    f"store {self.path}: cannot open ({error}); another process may have "
                    f"it open for writing"
                ) from error
            raise OSError(f"store {self.path}: cannot open ({error})") from error
        try:
            # Timestamps come back in UTC whatever the machine's local time zone.
            self._con.execute("SET TimeZone = 'UTC'")
            # DuckDB draws a bar on descriptor 1 for a query over 2 s, terminal or not:
            # into a table piped on from stdout (or whatever file holds descriptor 1).
            self._con.execute("SET enable_progress_bar = false")
            if not read_only:
                self._create_tables()
            version = self._check_format()
            if not read_only:
                self._upgrade(version)
        except BaseException:
            self._con.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the file; the store cannot be used afterwards."""
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"Store({str(self.path)!r}{mode})"

    def _create_tables(self) -> None:
        tables = {
            str(r[0])
            for r in self._con.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
        if "meta" in tables:
            return
        if tables:
            # Someone else's DuckDB file: adding our tables to it would be a surprise.
            raise ValueError(
                f"store {self.path}: a DuckDB file with other tables ({sorted(tables)[:5]}), "
                f"not a twinweave store; choose a new file"
            )
        with self._transaction():
            self._con.execute(_SCHEMA)
            self._con.execute(
                "INSERT INTO meta VALUES ('format_version', $1)", [str(FORMAT_VERSION)]
            )

    def _check_format(self) -> int:
        try:
            row = self._con.execute(
                "SELECT value FROM meta WHERE key = 'format_version'"
            ).fetchone()
        except duckdb.CatalogException:
            row = None
        if row is None:
            raise ValueError(f"store {self.path}: not a twinweave store (no meta table)")
        if int(row[0]) > FORMAT_VERSION:
            raise ValueError(
                f"store {self.path}: written in format {row[0]}, this twinweave reads up "
                f"to format {FORMAT_VERSION}; upgrade twinweave"
            )
        return int(row[0])

    def _upgrade(self, version: int) -> None:
        """Add the columns of later layouts that a store of format ``version`` lacks,
        whatever version it says it is (a store written between two changes of one
        version lacks some)."""
        present = {
            (str(table), str(column))
            for table, column in self._con.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
            ).fetchall()
        }
        missing = [
            (table, definition)
            for version in sorted(_UPGRADES)
            for table, definition in _UPGRADES[version]
            if (table, definition.split()[0]) not in present
        ]
        if not missing and version == FORMAT_VERSION:
            return
        with self._transaction():
            for table, definition in missing:
                self._con.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")
            self._con.execute(
                "UPDATE meta SET value = $1 WHERE key = 'format_version'", [str(FORMAT_VERSION)]
            )

    def _has_blanked(self) -> bool:
        # A store of format 4 or older opened read-only has no ``blanked``: it blanked none.
        return "blanked" in self._columns("quarantine")

    def _columns(self, table: str) -> list[str]:
        rows = self._con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [str(r[0]) for r in rows]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._require_writable()
        self._con.begin()
        try:
            yield
        except BaseException:
            # BaseException: a KeyboardInterrupt mid-ingest must roll back too.
            self._con.rollback()
            raise
        self._con.commit()

    def _require_writable(self) -> None:
        if self.read_only:
            raise PermissionError(f"store {self.path} is open read-only; open it to write")

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        """Row count and content digest of every table, to show that nothing changed.

        The digest covers the table's columns (names and types) and the multiset of
        its rows, so it does not depend on the order rows are stored in.
        """
        result: dict[str, tuple[int, str]] = {}
        for table in TABLES:
            columns = self._con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = $1 ORDER BY ordinal_position",
                [table],
            ).fetchall()
            n_rows, total = self._con.execute(
                f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {table} AS t"
            ).fetchone() or (0, 0)
            digest = hashlib.sha256(json.dumps([columns, str(total)]).encode()).hexdigest()
            result[table] = (int(n_rows), digest[:16])
        return result

    # -- observations ------------------------------------------------------------------
    def ingest(
        self,
        info: SourceInfo,
        raw: pd.DataFrame,
        observations: pd.DataFrame,
        quarantine: pd.DataFrame,
        *,
        recorder: Recorder | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
        chunk_rows: int = 50_000,
    ) -> IngestSummary:
        """Write one file's raw readings, cleaned readings and quarantine, atomically.

        Frames follow ``docs/CONTRACTS.md``. Variables not yet in the store become new
        ``DOUBLE`` columns. The provenance of the ingest (the file with its SHA-256,
        ``ingest`` to the raw frame, ``clean`` to the observations and quarantine) is
        written in the same transaction, so the store never holds data without its
        provenance or the reverse.

        Files may overlap (monthly exports sharing a day, a re-export of a period). A
        cleaned reading whose asset and time are already among the raw readings of a
        file stored before is not stored as a second observation:

        - with the same value of every variable (missing equals missing) it is the same
          reading, and is *skipped*: counted in ``n_skipped``, not stored again, and
          its earlier verdict (observation or quarantine) stands. A reading this file's
          checks failed is skipped in the same way, so the quarantine lists it once,
          under the file it was first stored from;
        - with any value different it is *quarantined* with check
          ``"duplicate_across_sources"`` and a reason naming both files, rows and the
          values that differ. The reading stored first is kept; nothing is overwritten,
          and which one is right is for a person to decide.

        Every row of the file stays in the raw table, so for each file
        ``n_raw = n_observations + quarantined readings + n_skipped``, where a
        quarantined reading is one set aside (a reading kept with a value blanked is an
        observation, and its ``blanked`` quarantine rows say which and why).

        Parameters
        ----------
        info
            The file: path, SHA-256 of its bytes, number of data rows.
        raw, observations, quarantine
            Every row as read; the rows that passed every check; one row per failed
            check.
        recorder
            Also receives the provenance records, once the transaction has committed.
        settings
            How the file was read and cleaned (JSON-serialisable: the column mapping,
            the checks' parameters), kept with it (:meth:`source_settings`) and on the
            ingest's provenance, so that the same file met again with other settings can
            be told from a repeat.
        progress
            Called as ``progress(n_done, n_total)`` [rows] after each chunk is written,
            inside the transaction; an exception raised by it aborts the ingest.
        chunk_rows
            Rows written per chunk.

        Raises
        ------
        DataError
            If a file with the same SHA-256 is already in the store; nothing is written.
        ValueError
            If a frame does not follow the contract; nothing is written.
        """
        self._require_writable()
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows: expected a positive number, got {chunk_rows}")
        _check_frame(raw, "raw")
        _check_frame(observations, "observations")
        _check_quarantine(quarantine)
        self._refuse_duplicate(info)
        settings_text = None if settings is None else _settings_json(settings)
        started = clock.perf_counter()
        variables = _variables(raw, observations)
        known = set(self.variables())
        new_variables = tuple(v for v in variables if v not in known)
        asset_ids = tuple(sorted(pd.unique(raw["asset_id"].astype(str))))
        observations, conflicts, skipped, overlapping = self._against_stored(
            info, raw, observations
        )
        # A skipped reading's earlier verdict stands, values blanked in it included.
        quarantine = quarantine.loc[
            ~(quarantine["blanked"].to_numpy(dtype=bool) & quarantine["source_row"].isin(skipped))
        ]
        quarantine, n_copies, also_overlapping = self._without_stored_copies(raw, quarantine)
        n_skipped = len(skipped) + n_copies
        overlapping = list(dict.fromkeys([*overlapping, *also_overlapping]))
        if len(conflicts):
            quarantine = pd.concat([quarantine, conflicts], ignore_index=True)
        checks = sorted(pd.unique(quarantine["check"].astype(str)))
        total = len(raw) + len(observations) + len(quarantine)
        done = 0

        def advance(n_rows: int) -> None:
            nonlocal done
            done += n_rows
            if progress is not None:
                progress(done, total)

        # Records are made on a fork so that nothing reaches ``recorder`` (or its
        # store) unless the transaction commits.
        staging = Recorder() if recorder is None else recorder.fork()
        file_entity = staging.entity(
            "file", {"path": info.path, "sha256": info.sha256, "n_rows": info.n_rows}
        )
        raw_entity = staging.record(
            "ingest",
            used=[file_entity],
            generated="raw_observations",
            attributes={
                "store": str(self.path),
                "n_rows": len(raw),
                "asset_ids": list(asset_ids),
                "variables": list(variables),
                **({} if settings_text is None else {"settings": settings_text}),
            },
        )
        # Readings compared with those of earlier files: their raw frames were used too.
        earlier = [self._raw_entity(sha256) for sha256 in overlapping]
        observations_entity, quarantine_entity = staging.record_many(
            "clean",
            used=[raw_entity, *earlier],
            generated=["observations", "quarantine"],
            attributes={
                "n_observations": len(observations),
                # Entries (one per failed check) and the readings they are about: a
                # reading can fail several checks.
                "n_quarantine": len(quarantine),
                "n_quarantined_readings": int(
                    quarantine.loc[
                        ~quarantine["blanked"].to_numpy(dtype=bool), "source_row"
                    ].nunique()
                ),
                "n_skipped": n_skipped,
                "n_duplicates_across_sources": len(conflicts),
                "checks": checks,
            },
        )
        with self._transaction():
            for name in new_variables:
                for table in ("raw_observations", "observations"):
                    self._con.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(name)} DOUBLE")
            for frame, table in ((raw, "raw_observations"), (observations, "observations")):
                columns = ", ".join(_quote(c) for c in (*KEY_COLUMNS, *_frame_variables(frame)))
                self._insert_chunks(
                    frame, table, columns, f"{_SOURCE_COLUMN}, {columns}", info, chunk_rows, advance
                )
            self._insert_chunks(
                quarantine,
                "quarantine",
                'asset_id, time, source_row, variable, CAST(value AS DOUBLE), "check", reason, '
                "CAST(blanked AS BOOLEAN)",
                f'{_SOURCE_COLUMN}, asset_id, time, source_row, variable, value, "check", reason, '
                "blanked",
                info,
                chunk_rows,
                advance,
            )
            self._con.execute(
                "INSERT INTO sources (sha256, path, n_rows, ingested_at, n_raw, "
                "n_observations, n_quarantine, file_entity, raw_entity, observations_entity, "
                "quarantine_entity, n_skipped, settings) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                [
                    info.sha256,
                    info.path,
                    info.n_rows,
                    datetime.now(UTC),
                    len(raw),
                    len(observations),
                    len(quarantine),
                    file_entity,
                    raw_entity,
                    observations_entity,
                    quarantine_entity,
                    n_skipped,
                    settings_text,
                ],
            )
            self._insert_provenance(staging.own_records())
        if recorder is not None:
            recorder.adopt(staging.own_records())
        return IngestSummary(
            source=info,
            n_raw=len(raw),
            n_observations=len(observations),
            n_quarantine=len(quarantine),
            n_skipped=n_skipped,
            asset_ids=asset_ids,
            new_variables=new_variables,
            file_entity=file_entity,
            raw_entity=raw_entity,
            observations_entity=observations_entity,
            quarantine_entity=quarantine_entity,
            seconds=clock.perf_counter() - started,
        )

    def _against_stored(
        self, info: SourceInfo, raw: pd.DataFrame, observations: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame, NDArray[np.int64], list[str]]:
        """Split cleaned readings by whether an earlier file holds their asset and time.

        Each is compared as read (its row of ``raw``: a value the checks blanked is
        compared as it was) with the stored raw readings. Returns the readings to store,
        quarantine rows of those whose values differ from the stored reading's, the
        source rows of the identical ones skipped, and the SHA-256 of the earlier files
        that hold any of them (oldest first).
        """
        none = observations.iloc[:0]
        # A source row is one data row of the file, so the index is unique.
        at = pd.Index(raw["source_row"]).get_indexer(observations["source_row"])
        if (at < 0).any():
            row = int(observations["source_row"].to_numpy()[np.argmax(at < 0)])
            raise ValueError(
                f"observations: source_row {row} is not a row of the raw frame; expected "
                "the cleaned readings of the raw frame given"
            )
        # As read: a value the checks blanked as it was, and a variable only the
        # observations have (derived in cleaning) as missing, as in the raw table.
        matches, same, differences = self._stored_matches(raw.iloc[at].reset_index(drop=True))
        if matches.empty:
            return observations, none, np.zeros(0, dtype=np.int64), []
        rows = matches["row"].to_numpy(np.int64)
        identical = pd.Series(same).groupby(rows).any()
        skipped = identical.index.to_numpy()[identical.to_numpy()]
        conflicting = identical.index.to_numpy()[~identical.to_numpy()]
        # The first stored match of each conflicting reading names the earlier file.
        first = ~pd.Series(rows).duplicated().to_numpy()
        detail = matches.loc[first].set_index("row")
        detail["differences"] = [text[2:] for text in differences[first]]
        detail["source_row"] = detail["source_row"].astype(np.int64).astype(str)
        detail["sha256"] = detail["sha256"].astype(str).str[:12]
        mask = np.zeros(len(observations), dtype=bool)
        mask[conflicting] = True
        fields = {
            name: detail[column].reindex(np.arange(len(observations))).to_numpy()
            for name, column in (
                ("stored_path", "path"),
                ("stored_sha", "sha256"),
                ("stored_row", "source_row"),
                ("differences", "differences"),
            )
        }
        fields["path"] = np.full(len(observations), info.path, dtype=object)
        conflicts = quarantine_rows(
            observations,
            mask,
            check=DUPLICATE_ACROSS_SOURCES,
            variable="*",
            reason="duplicate timestamp across sources: asset {asset_id} at {time} is "
            "already stored from {stored_path} (sha256 {stored_sha}, row {stored_row}) "
            "with other values ({differences}); this reading of {path} (row "
            "{source_row}) is set aside and the stored one kept",
            fields=fields,
        )
        keep = np.ones(len(observations), dtype=bool)
        keep[skipped] = False
        keep[conflicting] = False
        overlapping = list(dict.fromkeys(matches["sha256"].astype(str)))
        kept = observations.loc[keep].reset_index(drop=True)
        skipped_rows = observations["source_row"].to_numpy(np.int64)[skipped]
        return kept, conflicts.reset_index(drop=True), skipped_rows, overlapping

    def _stored_matches(
        self, frame: pd.DataFrame
    ) -> tuple[pd.DataFrame, NDArray[np.bool_], NDArray[np.object_]]:
        """Raw readings of earlier files at the asset and time of each reading of ``frame``.

        Returns the matches (``row``, the reading's position in ``frame``; ``sha256``
        and ``path`` of the earlier file; the stored reading's ``source_row`` and
        values), by reading and then oldest file first; whether each match has the same
        value of every variable as the reading (missing equals missing); and the values
        that differ, as text starting with ``"; "``.
        """
        if frame.empty:
            return pd.DataFrame(), np.zeros(0, dtype=bool), np.zeros(0, dtype=object)
        stored = self.variables()
        keys = pd.DataFrame(
            {
                "row": np.arange(len(frame), dtype=np.int64),
                "asset_id": frame["asset_id"].astype(str).to_numpy(),
                # The column itself, not .to_numpy(): a zone-aware column would become
                # an array of Timestamp objects, which took a second for two years.
                "time": frame["time"].reset_index(drop=True),
            }
        )
        view = f"keys_{secrets.token_hex(4)}"
        self._con.register(view, keys)
        try:
            matches = self._con.execute(
                f"SELECT k.row, s.sha256, s.path, r.source_row, "
                f"{', '.join(f'r.{_quote(v)}' for v in stored) or 'NULL AS none'} "
                f"FROM {view} AS k JOIN raw_observations AS r "
                "ON r.asset_id = k.asset_id AND r.time = k.time "
                f"JOIN sources AS s ON s.sha256 = r.{_SOURCE_COLUMN} "
                "ORDER BY k.row, s.ingested_at, r.source_row"
            ).df()
        finally:
            self._con.unregister(view)
        # Every variable of either side; one the other side lacks is missing there.
        names = list(dict.fromkeys([*stored, *_frame_variables(frame)]))
        new = frame.iloc[matches["row"].to_numpy(np.int64)].reset_index(drop=True)
        same = np.ones(len(matches), dtype=bool)
        differences = np.full(len(matches), "", dtype=object)
        for name in names:
            ours = _floats(new, name)
            theirs = _floats(matches, name)
            # Equal to float rounding: a file in degF or MW, converted, gives 11.880000000000052
            # where one in degC gave 11.88; a difference in the data is far larger.
            equal = np.isclose(ours, theirs, rtol=_SAME_VALUE_RTOL, atol=_SAME_VALUE_ATOL)
            differ = ~(equal | (np.isnan(ours) & np.isnan(theirs)))
            same &= ~differ
            for at in np.flatnonzero(differ):
                differences[at] += (
                    f"; {name}: stored {_number(theirs[at])}, this file {_number(ours[at])}"
                )
        return matches, same, differences

    def _without_stored_copies(
        self, raw: pd.DataFrame, quarantine: pd.DataFrame
    ) -> tuple[pd.DataFrame, int, list[str]]:
        """Leave out of ``quarantine`` the readings equal to a raw reading of an earlier
        file.

        Such a reading is skipped as an identical cleaned one is: the earlier file's
        verdict on it stands (a quarantined copy is listed there with its reason), and
        quarantining it again would list one reading twice. A quarantined reading whose
        values differ from the stored one's keeps its quarantine rows.

        Returns the quarantine rows to store, the number of readings skipped, and the
        SHA-256 of the earlier files that hold any quarantined reading of this file.
        """
        # A reading is one data row of the file: its ``source_row``. One kept with a value
        # blanked is an observation, compared with the stored readings as one.
        set_aside = quarantine.loc[~quarantine["blanked"].to_numpy(dtype=bool), "source_row"]
        readings = raw.loc[raw["source_row"].isin(set_aside)]
        matches, same, _ = self._stored_matches(readings.reset_index(drop=True))
        if matches.empty:
            return quarantine, 0, []
        identical = pd.Series(same).groupby(matches["row"].to_numpy(np.int64)).any()
        at = identical.index.to_numpy()[identical.to_numpy()]
        copies = readings["source_row"].to_numpy()[at]
        kept = quarantine.loc[~quarantine["source_row"].isin(copies)].reset_index(drop=True)
        return kept, int(copies.size), list(dict.fromkeys(matches["sha256"].astype(str)))

    def _raw_entity(self, sha256: str) -> str:
        row = self._con.execute(
            "SELECT raw_entity FROM sources WHERE sha256 = $1", [sha256]
        ).fetchone()
        if row is None:
            raise KeyError(f"no source with sha256 {sha256} in {self.path}")
        return str(row[0])

    def _refuse_duplicate(self, info: SourceInfo) -> None:
        row = self._con.execute(
            "SELECT path, ingested_at FROM sources WHERE sha256 = $1", [info.sha256]
        ).fetchone()
        if row is not None:
            raise DataError(
                f"already in store {self.path} (ingested from {row[0]} at "
                f"{row[1]:%Y-%m-%d %H:%M} UTC); nothing written",
                path=info.path,
                column=None,
                row=None,
                value=f"sha256 {info.sha256}",
                expected="a file whose content is not yet in the store",
            )

    def _insert_chunks(
        self,
        frame: pd.DataFrame,
        table: str,
        select: str,
        into: str,
        info: SourceInfo,
        chunk_rows: int,
        advance: Callable[[int], None],
    ) -> None:
        # Whole chunks go through DuckDB's pandas scan: one INSERT ... SELECT per chunk,
        # never row by row. A random view name cannot replace a view of the caller's.
        view = f"ingest_{secrets.token_hex(4)}"
        for start in range(0, len(frame), chunk_rows):
            chunk = frame.iloc[start : start + chunk_rows]
            self._con.register(view, chunk)
            try:
                self._con.execute(
                    f"INSERT INTO {table} ({into}) SELECT $1, {select} FROM {view}",
                    [info.sha256],
                )
            finally:
                self._con.unregister(view)
            advance(len(chunk))

    def has_source(self, sha256: str) -> bool:
        """Whether a file with this content (SHA-256, hex) is in the store."""
        found = self._con.execute("SELECT 1 FROM sources WHERE sha256 = $1", [sha256])
        return found.fetchone() is not None

    def source_settings(self, sha256: str) -> dict[str, Any] | None:
        """The settings a file was ingested with (:meth:`ingest`'s ``settings``);
        ``None`` if none were given (or the store is older than format 4).

        Raises
        ------
        KeyError
            If no file with this SHA-256 is in the store.
        """
        columns = self._columns("sources")
        wanted = "settings" if "settings" in columns else "NULL"
        row = self._con.execute(
            f"SELECT {wanted} FROM sources WHERE sha256 = $1", [sha256]
        ).fetchone()
        if row is None:
            raise KeyError(f"source {sha256[:12]}: not in the store")
        return None if row[0] is None else dict(json.loads(row[0]))

    def sources(self) -> pd.DataFrame:
        """Files ingested, oldest first, with row counts and provenance ids."""
        return self._con.execute("SELECT * FROM sources ORDER BY ingested_at").df()

    def source_summary(self, sha256: str) -> pd.DataFrame:
        """What one file put in the store, per asset.

        Returns
        -------
        pandas.DataFrame
            ``asset_id``; ``raw`` (rows of the file), ``observations`` (cleaned readings
            stored from it) and ``quarantined`` (its rows set aside by a quarantine entry;
            one kept with a value blanked is an observation), sorted by asset. A reading
            an earlier file already holds is in ``raw`` only.
        """
        set_aside = "AND NOT blanked" if self._has_blanked() else ""
        return self._con.execute(
            "SELECT r.asset_id, count(*) AS raw, "
            "  count(o.source_row) AS observations, count(q.source_row) AS quarantined "
            f"FROM raw_observations r "
            f"LEFT JOIN (SELECT DISTINCT asset_id, source_row FROM observations "
            f"  WHERE {_SOURCE_COLUMN} = $1) o "
            "  ON o.asset_id = r.asset_id AND o.source_row = r.source_row "
            f"LEFT JOIN (SELECT DISTINCT asset_id, source_row FROM quarantine "
            f"  WHERE {_SOURCE_COLUMN} = $1 {set_aside}) q "
            "  ON q.asset_id = r.asset_id AND q.source_row = r.source_row "
            f"WHERE r.{_SOURCE_COLUMN} = $1 GROUP BY r.asset_id ORDER BY r.asset_id",
            [sha256],
        ).df()

    def variables(self) -> list[str]:
        """Variables (glossary names) the observation tables have columns for."""
        rows = self._con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'raw_observations' ORDER BY ordinal_position"
        ).fetchall()
        skip = {_SOURCE_COLUMN, *KEY_COLUMNS}
        return [str(r[0]) for r in rows if r[0] not in skip]

    def asset_ids(self) -> list[str]:
        """Assets with raw readings in the store, sorted."""
        rows = self._con.execute(
            "SELECT DISTINCT asset_id FROM raw_observations ORDER BY asset_id"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def observations(
        self,
        asset_id: str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        raw: bool = False,
        ingested_before: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Readings of ``asset_id`` with ``start <= time < end``, sorted by time.

        Parameters
        ----------
        asset_id
            The asset.
        start, end
            Bounds in UTC; a time without a zone is taken as UTC. ``None``: unbounded.
        raw
            Read the raw readings (every row as read) instead of the cleaned ones.
        ingested_before
            Only the readings of files ingested before this time: what the store held
            then (a model version's ``created_at``: the readings a fit could read).

        Returns
        -------
        pandas.DataFrame
            ``asset_id``, ``time`` (datetime64[ns, UTC]; the store keeps microseconds),
            ``source_row`` and one float column per variable of the store, NaN where a
            file did not have the variable [canonical units].

        Raises
        ------
        KeyError
            If the store has no readings of ``asset_id``.
        """
        table = "raw_observations" if raw else "observations"
        known = self.asset_ids()
        if asset_id not in known:
            raise KeyError(f"no readings of asset {asset_id!r} in {self.path}; it has {known}")
        where, parameters = self._window(asset_id, start, end, ingested_before)
        columns = ", ".join(_quote(c) for c in (*KEY_COLUMNS, *self.variables()))
        frame = self._con.execute(
            f"SELECT {columns} FROM {table} WHERE {where} "
            f"ORDER BY time, {_SOURCE_COLUMN}, source_row",
            parameters,
        ).df()
        return _contract_dtypes(frame)

    def count_observations(
        self,
        asset_id: str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        ingested_before: TimeLike | None = None,
        raw: bool = False,
    ) -> int:
        """How many readings ``observations(asset_id, start=, end=, ingested_before=)``
        returns, without reading them; with ``raw``, how many times the raw readings
        hold (a reading in two files counts once), whether kept or quarantined."""
        where, parameters = self._window(asset_id, start, end, ingested_before)
        counted, table = ("DISTINCT time", "raw_observations") if raw else ("*", "observations")
        found = self._con.execute(
            f"SELECT COUNT({counted}) FROM {table} WHERE {where}", parameters
        ).fetchone()
        return 0 if found is None else int(found[0])

    def observation_span(self, asset_id: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Times (UTC) of the first and last cleaned reading of ``asset_id``, without
        reading them; ``None`` if there is none."""
        where, parameters = self._window(asset_id, None, None)
        found = self._con.execute(
            f"SELECT MIN(time), MAX(time) FROM observations WHERE {where}", parameters
        ).fetchone()
        if found is None or found[0] is None:
            return None
        return pd.Timestamp(found[0]).tz_convert("UTC"), pd.Timestamp(found[1]).tz_convert("UTC")

    def observations_entity(
        self, asset_id: str, *, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> str:
        """Provenance id of the readings ``observations(asset_id, start=, end=)`` returns.

        Pass it as ``source`` to :meth:`Twin.update <twinweave.core.Twin.update>`. When
        all of one file's readings are meant it is that file's cleaned-observations
        entity; for a time window or several files, a new ``observations`` entity
        derived from each file's is recorded in the store by a ``select`` activity with
        the asset, start and end.

        Raises
        ------
        KeyError
            If the store has no cleaned readings of ``asset_id`` in the window.
        PermissionError
            If a ``select`` must be recorded and the store is open read-only.
        """
        where, parameters = self._window(asset_id, start, end)
        rows = self._con.execute(
            "SELECT s.observations_entity FROM sources AS s WHERE s.sha256 IN "
            f"(SELECT DISTINCT {_SOURCE_COLUMN} FROM observations WHERE {where}) "
            "ORDER BY s.ingested_at",
            parameters,
        ).fetchall()
        entities = [str(r[0]) for r in rows]
        if not entities:
            raise KeyError(
                f"no cleaned readings of asset {asset_id!r} in {self.path}"
                + ("" if start is None and end is None else f" between {start} and {end}")
            )
        if len(entities) == 1 and start is None and end is None:
            return entities[0]
        # A window or several files: record which readings were selected, so the chain
        # says what a twin was trained on (asset, start, end and the files).
        return self.recorder().record(
            "select",
            used=entities,
            generated="observations",
            attributes={
                "asset_id": asset_id,
                "start": None if start is None else _utc(start),
                "end": None if end is None else _utc(end),
            },
        )

    def _window(
        self,
        asset_id: str,
        start: TimeLike | None,
        end: TimeLike | None,
        ingested_before: TimeLike | None = None,
    ) -> tuple[str, dict[str, object]]:
        where = ["asset_id = $asset"]
        parameters: dict[str, object] = {"asset": asset_id}
        if start is not None:
            where.append("time >= $start")
            parameters["start"] = _utc(start)
        if end is not None:
            where.append("time < $end")
            parameters["end"] = _utc(end)
        if ingested_before is not None:
            where.append(
                f"{_SOURCE_COLUMN} IN (SELECT sha256 FROM sources WHERE ingested_at < $before)"
            )
            parameters["before"] = _utc(ingested_before)
        return " AND ".join(where), parameters

    def quarantine(
        self,
        asset_id: str | None = None,
        check: str | None = None,
        *,
        source_sha256: str | None = None,
    ) -> pd.DataFrame:
        """Quarantined readings, optionally of one asset, one check and/or one file
        (``source_sha256``, the SHA-256 of its content).

        Returns
        -------
        pandas.DataFrame
            The quarantine frame of ``docs/CONTRACTS.md``, sorted by asset and time,
            and ``source_file`` and ``source_sha256``: the file each reading came from
            (its ``source_row`` counts that file's rows) and its content's hash, which
            tells apart two versions of a file under one name.
        """
        where = ["TRUE"]
        parameters: dict[str, object] = {}
        if asset_id is not None:
            where.append("q.asset_id = $asset")
            parameters["asset"] = asset_id
        if check is not None:
            where.append('q."check" = $check')
            parameters["check"] = check
        if source_sha256 is not None:
            where.append(f"q.{_SOURCE_COLUMN} = $source")
            parameters["source"] = source_sha256
        columns = ", ".join(
            f"FALSE AS {_quote(c)}"
            if c == "blanked" and not self._has_blanked()
            else f"q.{_quote(c)}"
            for c in QUARANTINE_COLUMNS
        )
        frame = self._con.execute(
            f"SELECT {columns}, s.path AS source_file, q.{_SOURCE_COLUMN} FROM quarantine q "
            f"LEFT JOIN sources s ON s.sha256 = q.{_SOURCE_COLUMN} "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY q.asset_id, q.time, q.{_SOURCE_COLUMN}, q.source_row, q.variable",
            parameters,
        ).df()
        for name in ("source_file", _SOURCE_COLUMN):
            frame[name] = frame[name].astype("string")
        return _contract_dtypes(frame)

    # -- twins -------------------------------------------------------------------------
    def save_twin(self, twin: Twin, *, note: str = "") -> int:
        """Save the twin's emulator, residual correlation, schema, interventions and, for
        a branch, its parent's identifier as a new version.

        The provenance chain of the twin's model version is copied into the store
        (when its recorder is a :class:`~twinweave.provenance.Recorder`), so the chain
        from raw files to the twin's predictions can be read back from the file alone.

        Returns
        -------
        int
            The new version number, 1 for a twin's first version.
        """
        self._require_writable()
        emulator = twin.emulator
        state, kinds = _encode_state(emulator.state())
        params = pickle.dumps(emulator.get_params(), protocol=pickle.HIGHEST_PROTOCOL)
        interventions = pickle.dumps(twin.interventions, protocol=pickle.HIGHEST_PROTOCOL)
        learner = twin.residual_correlation
        correlation: list[bytes | str | None] = [None, None, None]
        if learner is not None:
            learner_state, learner_kinds = _encode_state(dict(learner.state()))
            correlation = [
                pickle.dumps(learner.get_params(), protocol=pickle.HIGHEST_PROTOCOL),
                learner_state,
                json.dumps(learner_kinds),
            ]
        lineage: list[ProvRecord] = []
        model_version = twin.model_version_
        recorder = twin.recorder
        if (
            isinstance(recorder, Recorder)
            and model_version is not None
            and model_version in recorder
        ):
            lineage = recorder.chain(model_version)
        with self._transaction():
            found = self._con.execute(
                "SELECT version, parent_id FROM model_versions WHERE twin_id = $1 "
                "ORDER BY version DESC LIMIT 1",
                [twin.twin_id],
            ).fetchone()
            if found is not None and found[1] != twin.parent_id:
                raise ValueError(_other_kind_message(twin, found[1]))
            version = 1 + (0 if found is None else int(found[0]))
            self._con.execute(
                "INSERT INTO model_versions (twin_id, version, created_at, emulator, "
                "n_observations, params, state, state_kinds, schema, interventions, "
                "provenance_id, note, correlation_params, correlation_state, "
                "correlation_state_kinds, parent_id) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                [
                    twin.twin_id,
                    version,
                    datetime.now(UTC),
                    _class_path(type(emulator)),
                    float(emulator.n_observations_),
                    params,
                    state,
                    json.dumps(kinds),
                    twin.schema.model_dump_json(),
                    interventions,
                    model_version,
                    note,
                    *correlation,
                    twin.parent_id,
                ],
            )
            self._insert_provenance(lineage)
        return version

    def load_twin(
        self, twin_id: str, version: int | None = None, *, recorder: ProvenanceSink | None = None
    ) -> Twin:
        """Restore a saved twin; it predicts bit-identically to the twin saved.

        Parameters
        ----------
        twin_id
            The twin.
        version
            Version number; ``None`` for the latest.
        recorder
            Provenance sink of the restored twin. A :class:`Recorder` that does not
            see the version's provenance is given its chain from this store.

        Raises
        ------
        KeyError
            If the twin or version is not in the store.
        """
        # A store of an older format opened read-only lacks the later columns: those of
        # the correlation (format 2) and the parent of a branch (format 3).
        columns = self._columns("model_versions")
        correlation = (
            "correlation_params, correlation_state, correlation_state_kinds"
            if "correlation_params" in columns
            else "NULL, NULL, NULL"
        )
        parent = "parent_id" if "parent_id" in columns else "NULL"
        query = (
            "SELECT version, emulator, params, state, state_kinds, schema, interventions, "
            f"provenance_id, {correlation}, {parent} FROM model_versions WHERE twin_id = $1"
        )
        if version is None:
            found = self._con.execute(f"{query} ORDER BY version DESC LIMIT 1", [twin_id])
        else:
            found = self._con.execute(f"{query} AND version = $2", [twin_id, version])
        row = found.fetchone()
        if row is None:
            versions = [] if twin_id not in self.twin_ids() else self._version_numbers(twin_id)
            raise KeyError(
                f"no twin {twin_id!r}"
                + ("" if version is None else f" version {version}")
                + f" in {self.path}; "
                + (f"versions: {versions}" if versions else f"twins: {self.twin_ids()}")
            )
        (
            _,
            class_path,
            params,
            state,
            kinds,
            schema,
            interventions,
            provenance_id,
            correlation_params,
            correlation_state,
            correlation_kinds,
            parent_id,
        ) = row
        emulator_class = _import_class(class_path)
        emulator = emulator_class.from_state(
            pickle.loads(params), _decode_state(bytes(state), json.loads(kinds))
        )
        restored_interventions: tuple[Intervention, ...] = pickle.loads(interventions)
        learner = (
            None
            if correlation_params is None
            else ResidualCorrelation.from_state(
                pickle.loads(correlation_params),
                _decode_state(bytes(correlation_state), json.loads(correlation_kinds)),
            )
        )
        if learner is not None and getattr(emulator, "forecasts", False):
            # Saved before twins refused one: it was learnt from forecasts, not residuals.
            warnings.warn(
                f"twin {twin_id!r}: its residual correlation, learnt from the forecasts of "
                f"its {type(emulator).__name__} rather than from residuals, is left out",
                UserWarning,
                stacklevel=2,
            )
            learner = None
        twin = Twin(
            twin_id,
            TwinSchema.model_validate_json(schema),
            emulator,
            recorder=recorder,
            residual_correlation=learner,
            interventions=restored_interventions,
            parent_id=parent_id,
        )
        twin.model_version_ = provenance_id
        if (
            isinstance(recorder, Recorder)
            and provenance_id is not None
            and provenance_id not in recorder
            and self.read_provenance(provenance_id) is not None
        ):
            recorder.adopt(self.recorder().chain(provenance_id))
        return twin

    def twin_ids(self) -> list[str]:
        """Twins with at least one saved version, sorted."""
        rows = self._con.execute(
            "SELECT DISTINCT twin_id FROM model_versions ORDER BY twin_id"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def _version_numbers(self, twin_id: str) -> list[int]:
        rows = self._con.execute(
            "SELECT version FROM model_versions WHERE twin_id = $1 ORDER BY version", [twin_id]
        ).fetchall()
        return [int(r[0]) for r in rows]

    def versions(self, twin_id: str) -> pd.DataFrame:
        """Saved versions of ``twin_id``, oldest first.

        Returns
        -------
        pandas.DataFrame
            ``version``, ``created_at`` (UTC), ``emulator`` (class), ``n_observations``,
            ``provenance_id`` and ``note``.

        Raises
        ------
        KeyError
            If the twin has no saved version.
        """
        frame = self._con.execute(
            "SELECT version, created_at, emulator, n_observations, provenance_id, note "
            "FROM model_versions WHERE twin_id = $1 ORDER BY version",
            [twin_id],
        ).df()
        if frame.empty:
            raise KeyError(f"no twin {twin_id!r} in {self.path}; twins: {self.twin_ids()}")
        return frame

    # -- provenance (the RecordStore protocol) -----------------------------------------
    def recorder(self) -> Recorder:
        """A recorder that writes through to this store and reads its records."""
        return Recorder(store=self)

    def write_provenance(self, records: Sequence[ProvRecord]) -> None:
        """Persist ``records`` (those already present are left as they are)."""
        with self._transaction():
            self._insert_provenance(records)

    def _insert_provenance(self, records: Sequence[ProvRecord]) -> None:
        if not records:
            return
        self._con.executemany(
            "INSERT INTO provenance VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            [
                [
                    r.id,
                    r.category,
                    r.kind,
                    r.time,
                    json.dumps(r.attributes),
                    json.dumps(list(r.used)),
                    json.dumps(list(r.generated)),
                    r.generated_by,
                ]
                for r in records
            ],
        )

    def read_provenance(self, record_id: str) -> ProvRecord | None:
        """The provenance record ``record_id``, or ``None``."""
        rows = self._con.execute("SELECT * FROM provenance WHERE id = $1", [record_id]).fetchall()
        return _record(rows[0]) if rows else None

    def provenance_records(self) -> list[ProvRecord]:
        """Every provenance record in the store, oldest first."""
        rows = self._con.execute("SELECT * FROM provenance ORDER BY time, rowid").fetchall()
        return [_record(row) for row in rows]


# -- helpers -----------------------------------------------------------------------------
def _other_kind_message(twin: Twin, stored_parent: str | None) -> str:
    """Why ``twin`` may not be a new version of the stored twin of its identifier."""

    def kind(parent: str | None) -> str:
        return "a live twin" if parent is None else f"a branch of {parent!r}"

    return (
        f"twin {twin.twin_id!r}: the store holds {kind(stored_parent)} under this name, "
        f"and {kind(twin.parent_id)} saved as its next version would replace it in every "
        "later load, predict, monitor and whatif; expected another name "
        "(Twin.branch(..., name=...))"
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(value: TimeLike) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    result: datetime = stamp.to_pydatetime()
    return result


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Column ``name`` as floats, all missing if the frame lacks it."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _number(value: float) -> str:
    return "missing" if np.isnan(value) else repr(float(value))


def _frame_variables(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns if c not in KEY_COLUMNS]


def _variables(*frames: pd.DataFrame) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for frame in frames:
        seen.update((name, None) for name in _frame_variables(frame))
    return tuple(seen)


def _check_frame(frame: pd.DataFrame, name: str) -> None:
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} frame: missing columns {missing}; expected {list(KEY_COLUMNS)} and "
            f"one float column per variable (docs/CONTRACTS.md), got {list(frame.columns)}"
        )
    if not isinstance(frame["time"].dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"{name} frame: column 'time' must be datetime64[ns, UTC], got "
            f"{frame['time'].dtype}; localise times to UTC before storing them"
        )
    for column in _frame_variables(frame):
        if not _VARIABLE.match(column) or column == _SOURCE_COLUMN:
            raise ValueError(
                f"{name} frame: column {column!r} is not a valid variable name "
                f"(letters, digits and '_', starting with a letter; not {_SOURCE_COLUMN!r})"
            )
        if not pd.api.types.is_numeric_dtype(frame[column].dtype):
            raise ValueError(
                f"{name} frame: variable {column!r} must be numeric (float64), got "
                f"{frame[column].dtype}"
            )


def _check_quarantine(frame: pd.DataFrame) -> None:
    missing = [c for c in QUARANTINE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"quarantine frame: missing columns {missing}; expected "
            f"{list(QUARANTINE_COLUMNS)} (docs/CONTRACTS.md), got {list(frame.columns)}"
        )
    if len(frame) and frame["check"].isna().any():
        raise ValueError("quarantine frame: every row needs the name of its 'check'")


def _contract_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    # DuckDB keeps microseconds; the frame contract is nanoseconds in UTC.
    frame["time"] = frame["time"].astype("datetime64[ns, UTC]")
    return frame


def _record(row: tuple[Any, ...]) -> ProvRecord:
    record_id, category, kind, time, attributes, used, generated, generated_by = row
    return ProvRecord.from_json(
        {
            "id": record_id,
            "category": category,
            "kind": kind,
            "time": time.isoformat(),
            "attributes": json.loads(attributes),
            "used": json.loads(used),
            "generated": json.loads(generated),
            "generated_by": generated_by,
        }
    )


def _encode_state(state: State) -> tuple[bytes, dict[str, str]]:
    """``.npz`` bytes of the state and which entries were Python numbers."""
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    kinds: dict[str, str] = {}
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            kinds[name] = "array"
        elif isinstance(value, bool | int | np.integer):
            kinds[name] = "int"
        elif isinstance(value, float | np.floating):
            kinds[name] = "float"
        else:
            raise TypeError(
                f"state {name!r}: expected an array or a number, got {type(value).__name__}"
            )
        arrays[name] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue(), kinds


def _decode_state(data: bytes, kinds: Mapping[str, str]) -> State:
    state: State = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        for name, kind in kinds.items():
            value = arrays[name]
            if kind == "array":
                state[name] = np.array(value)
            elif kind == "int":
                state[name] = int(value[()])
            else:
                state[name] = float(value[()])
    return state


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> type[Emulator]:
    module_name, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ImportError(
            f"emulator class {path!r} of a saved twin cannot be imported ({error}); "
            f"install the package that defines it"
        ) from error
    if not isinstance(target, type) or not hasattr(target, "from_state"):
        raise TypeError(f"{path!r} is not an emulator class (no from_state)")
    return target
