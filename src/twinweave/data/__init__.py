"""Data pathway: file sources with declared units and time zones, quality checks, quarantine."""

from twinweave.data._errors import DataError, describe_row
from twinweave.data._quality import (
    QUARANTINE_COLUMNS,
    Check,
    DuplicateTimestamps,
    RangeCheck,
    RequireFinite,
    StuckSensor,
    clean,
    quarantine_rows,
    quarantine_summary,
    require_column,
)
from twinweave.data._sources import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    RECORD_COLUMNS,
    ColumnSpec,
    SourceInfo,
    SourceSpec,
    csv_line,
    file_kind,
    has_utc_offset,
    read_source,
    refuse_short_rows,
)
from twinweave.data._store import IngestSummary, Store

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "QUARANTINE_COLUMNS",
    "RECORD_COLUMNS",
    "Check",
    "ColumnSpec",
    "DataError",
    "DuplicateTimestamps",
    "IngestSummary",
    "RangeCheck",
    "RequireFinite",
    "SourceInfo",
    "SourceSpec",
    "Store",
    "StuckSensor",
    "clean",
    "csv_line",
    "describe_row",
    "file_kind",
    "has_utc_offset",
    "quarantine_rows",
    "quarantine_summary",
    "read_source",
    "refuse_short_rows",
    "require_column",
]
