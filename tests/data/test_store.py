"""The embedded store: round trips, atomic ingest, exact twin restore, provenance."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import prov.model
import pytest

from twinweave.core import Derate, ExponentialCorrelation, ResidualCorrelation, Twin, time_seconds
from twinweave.data import DataError, IngestSummary, SourceInfo, Store
from twinweave.data._store import FORMAT_VERSION
from twinweave.domains.wind import power_curve_emulator, turbine_schema
from twinweave.provenance import Recorder

RATED = 2050.0


def scada(
    n_per_asset: int,
    assets: Sequence[str] = ("T1", "T2"),
    *,
    start: str = "2024-01-01",
    seed: int = 0,
    extra: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Raw, cleaned and quarantine frames of synthetic 10-minute turbine SCADA."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=n_per_asset, freq="10min", tz="UTC").as_unit("ns")
    parts = []
    for asset in assets:
        wind_speed = 8.0 * rng.weibull(2.0, n_per_asset)
        power = RATED / (1 + np.exp(-(wind_speed - 9.0))) + rng.normal(0, 30, n_per_asset)
        part = pd.DataFrame(
            {
                "asset_id": pd.Series([asset] * n_per_asset, dtype="str"),
                "time": times,
                "wind_speed": wind_speed,
                "power": power,
                "temp_air": rng.normal(10, 5, n_per_asset),
                "wind_direction": rng.uniform(0, 360, n_per_asset),
            }
        )
        for name in extra:
            part[name] = rng.normal(size=n_per_asset)
        parts.append(part)
    raw = pd.concat(parts, ignore_index=True)
    raw.insert(2, "source_row", np.arange(len(raw), dtype=np.int64))
    raw.loc[rng.random(len(raw)) < 0.01, "temp_air"] = np.nan
    negative = raw["power"] < 0
    missing = raw["temp_air"].isna()

    def failed(mask: pd.Series, variable: str, check: str, reason: str) -> pd.DataFrame:
        rows = raw.loc[mask]
        return pd.DataFrame(
            {
                "asset_id": rows["asset_id"],
                "time": rows["time"],
                "source_row": rows["source_row"],
                "variable": variable,
                "value": rows[variable],
                "check": check,
                "reason": reason,
                "blanked": False,
            }
        )

    quarantine = pd.concat(
        [
            failed(negative, "power", "range", "power below 0 kW"),
            failed(missing, "temp_air", "missing", "temp_air is missing"),
        ],
        ignore_index=True,
    )
    observations = raw.loc[~(negative | missing)].reset_index(drop=True)
    return raw, observations, quarantine


def source(folder: Path, name: str, content: bytes, n_rows: int) -> SourceInfo:
    path = folder / name
    path.write_bytes(content)
    return SourceInfo(str(path), hashlib.sha256(content).hexdigest(), n_rows)


def fingerprint(path: Path) -> dict[str, tuple[int, str]]:
    with Store(path, read_only=True) as store:
        return store.fingerprint()


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, SourceInfo, IngestSummary]:
    raw, observations, quarantine = scada(500)
    info = source(tmp_path, "a.csv", b"first file", len(raw))
    path = tmp_path / "fleet.duckdb"
    with Store(path) as store:
        summary = store.ingest(info, raw, observations, quarantine)
    return path, info, summary


def fitted_twin(
    store: Store,
    summary: IngestSummary,
    recorder: Recorder | None,
    correlation: ResidualCorrelation | None = None,
) -> Twin:
    twin = Twin(
        "T1",
        turbine_schema(RATED),
        power_curve_emulator(RATED),
        recorder=recorder,
        residual_correlation=correlation,
    )
    twin.update(store.observations("T1"), source=summary.observations_entity)
    return twin


def window(
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], start: int, stop: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Readings ``start:stop`` of one asset's frames, as their own file (rows from 0)."""
    parts = []
    for frame in frames:
        part = frame[(frame["source_row"] >= start) & (frame["source_row"] < stop)].copy()
        part["source_row"] -= start
        parts.append(part.reset_index(drop=True))
    return parts[0], parts[1], parts[2]


def quarantined_readings(store: Store, info: SourceInfo) -> int:
    """Readings of a file with a quarantine row in the store: those its checks failed
    (and no earlier file holds) and those set aside as different from a reading an
    earlier file holds."""
    listed = store.quarantine()
    return int(listed.loc[listed["source_sha256"] == info.sha256, "source_row"].nunique())


# -- observations --------------------------------------------------------------------------
def test_ingest_round_trips_raw_observations_and_quarantine(tmp_path: Path) -> None:
    raw, observations, quarantine = scada(300)
    # A reading that fails two checks: two quarantine entries, one reading.
    quarantine = pd.concat(
        [quarantine, quarantine.iloc[[0]].assign(check="a_second_check")], ignore_index=True
    )
    info = source(tmp_path, "a.csv", b"some bytes", len(raw))
    with Store(tmp_path / "s.duckdb") as store:
        summary = store.ingest(info, raw, observations, quarantine)
        assert store.asset_ids() == ["T1", "T2"]
        assert summary.n_raw == len(raw) and summary.n_observations == len(observations)
        assert summary.n_quarantine == len(quarantine) > 0
        # The clean record counts the readings as well as the failed checks.
        recorder = store.recorder()
        clean = recorder.get(str(recorder.get(summary.quarantine_entity).generated_by))
        assert clean is not None
        n_readings = quarantine["source_row"].nunique()
        assert clean.attributes["n_quarantined_readings"] == n_readings < len(quarantine)
        assert set(summary.new_variables) == {"wind_speed", "power", "temp_air", "wind_direction"}
        for asset in ("T1", "T2"):
            for stored, expected in (
                (store.observations(asset), observations),
                (store.observations(asset, raw=True), raw),
            ):
                expected = expected[expected["asset_id"] == asset].reset_index(drop=True)
                assert stored["time"].dtype == "datetime64[ns, UTC]"
                assert stored["time"].is_monotonic_increasing
                pd.testing.assert_frame_equal(stored[expected.columns], expected, check_dtype=False)
        sources = store.sources()
        assert sources["sha256"].tolist() == [info.sha256]
        assert sources["n_rows"].tolist() == [info.n_rows]


def test_time_window_is_start_inclusive_end_exclusive(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, _ = filled
    with Store(path, read_only=True) as store:
        window = store.observations(
            "T1", start="2024-01-01 01:00", end=pd.Timestamp("2024-01-01 02:00", tz="UTC"), raw=True
        )
        assert window["time"].iloc[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")
        assert window["time"].iloc[-1] == pd.Timestamp("2024-01-01 01:50", tz="UTC")
        assert len(window) == 6
        with pytest.raises(KeyError, match="no readings of asset 'T9'"):
            store.observations("T9")


def test_the_span_of_an_assets_readings_is_read_without_reading_them(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, _ = filled
    with Store(path, read_only=True) as store:
        times = store.observations("T1")["time"]
        assert store.observation_span("T1") == (times.min(), times.max())
        assert store.observation_span("nobody") is None


def test_counting_readings_agrees_with_reading_them(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, _ = filled
    with Store(path, read_only=True) as store:
        for window in ({}, {"start": "2024-01-01 01:00"}, {"end": "2024-01-01 02:00"}):
            for asset in ("T1", "T2"):
                assert store.count_observations(asset, **window) == len(
                    store.observations(asset, **window)
                )
        assert store.count_observations("T9") == 0


def test_new_variables_become_columns_and_older_rows_read_as_nan(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path
) -> None:
    path, _, _ = filled
    raw, observations, quarantine = scada(50, ("T3",), extra=("pitch",), seed=1)
    with Store(path) as store:
        summary = store.ingest(
            source(tmp_path, "b.csv", b"second", len(raw)), raw, observations, quarantine
        )
        assert summary.new_variables == ("pitch",)
        assert "pitch" in store.variables()
        assert store.observations("T1")["pitch"].isna().all()
        assert store.observations("T3", raw=True)["pitch"].tolist() == raw["pitch"].tolist()
        assert store.asset_ids() == ["T1", "T2", "T3"]


def test_quarantine_lists_by_asset_and_check(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, info, _ = filled
    _, _, quarantine = scada(500)
    with Store(path, read_only=True) as store:
        everything = store.quarantine()
        assert len(everything) == len(quarantine)
        assert list(everything.columns) == [
            "asset_id", "time", "source_row", "variable", "value", "check", "reason",
            "blanked", "source_file", "source_sha256",
        ]  # fmt: skip
        # Which file a source_row counts in: a store holds several.
        assert set(everything["source_file"]) == {info.path}
        assert set(everything["source_sha256"]) == {info.sha256}
        t1_range = store.quarantine("T1", check="range")
        expected = quarantine[(quarantine["asset_id"] == "T1") & (quarantine["check"] == "range")]
        assert len(t1_range) == len(expected) > 0
        assert (t1_range["value"] < 0).all()
        assert set(t1_range["source_row"]) == set(expected["source_row"])
        assert set(store.quarantine(check="missing")["variable"]) == {"temp_air"}
        assert store.quarantine("T9").empty


def test_reingesting_the_same_content_is_refused_and_changes_nothing(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path
) -> None:
    path, info, _ = filled
    before = fingerprint(path)
    raw, observations, quarantine = scada(10, seed=5)
    renamed = SourceInfo(str(tmp_path / "copy.csv"), info.sha256, len(raw))
    with Store(path) as store, pytest.raises(DataError, match="already in store"):
        store.ingest(renamed, raw, observations, quarantine)
    assert fingerprint(path) == before


def test_the_settings_a_file_was_read_with_are_kept_with_it(tmp_path: Path) -> None:
    raw, observations, quarantine = scada(20)
    settings = {"mapping": {"columns": {"power": {"unit": "W"}}}, "rated_power_kw": {"T1": 2050.0}}
    with Store(tmp_path / "s.duckdb") as store:
        recorder = Recorder(store=store)
        with_settings = source(tmp_path, "a.csv", b"a", len(raw))
        summary = store.ingest(
            with_settings, raw, observations, quarantine, recorder=recorder, settings=settings
        )
        assert store.source_settings(with_settings.sha256) == settings
        # On the ingest's provenance too: how the number's raw readings were read.
        raw_entity = recorder.get(summary.raw_entity)
        assert raw_entity is not None and raw_entity.generated_by is not None
        ingest = recorder.get(raw_entity.generated_by)
        assert ingest is not None and ingest.kind == "ingest"
        assert json.loads(str(ingest.attributes["settings"])) == settings
        later, _, _ = scada(20, start="2025-01-01")
        without = source(tmp_path, "b.csv", b"b", len(later))
        store.ingest(without, later, later, quarantine.iloc[:0])
        assert store.source_settings(without.sha256) is None
        with pytest.raises(KeyError, match="not in the store"):
            store.source_settings("0" * 64)
        before = store.fingerprint()
        with pytest.raises(ValueError, match="settings: expected JSON-serialisable"):
            store.ingest(
                source(tmp_path, "c.csv", b"c", len(raw)),
                raw,
                observations,
                quarantine,
                settings={"when": pd.Timestamp("2024-01-01")},
            )
        assert store.fingerprint() == before


def test_frames_breaking_the_contract_are_refused_before_writing(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path
) -> None:
    path, _, _ = filled
    before = fingerprint(path)
    raw, observations, quarantine = scada(10, seed=6)
    info = source(tmp_path, "c.csv", b"third", len(raw))
    naive = raw.assign(time=raw["time"].dt.tz_localize(None))
    with Store(path) as store:
        with pytest.raises(ValueError, match="'time' must be datetime64"):
            store.ingest(info, naive, observations, quarantine)
        with pytest.raises(ValueError, match="missing columns"):
            store.ingest(info, raw.drop(columns="source_row"), observations, quarantine)
        with pytest.raises(ValueError, match="must be numeric"):
            store.ingest(info, raw.assign(power="high"), observations, quarantine)
        # A column name is a SQL identifier: $ once let a final newline in.
        renamed = {"power": "power\n"}
        with pytest.raises(ValueError, match="is not a valid variable name"):
            store.ingest(info, raw.rename(columns=renamed), observations, quarantine)
    assert fingerprint(path) == before


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_an_ingest_interrupted_midway_rolls_back_everything(
    filled: tuple[Path, SourceInfo, IngestSummary],
    tmp_path: Path,
    interruption: type[BaseException],
) -> None:
    path, _, _ = filled
    before = fingerprint(path)
    raw, observations, quarantine = scada(400, ("T1", "T4"), seed=2, extra=("pitch",))
    info = source(tmp_path, "d.csv", b"fourth", len(raw))
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 3:  # raw written, cleaned rows half written
            raise interruption("stop")

    recorder = Recorder()
    with Store(path) as store:
        with pytest.raises(interruption):
            store.ingest(
                info, raw, observations, quarantine, recorder=recorder, progress=progress,
                chunk_rows=400,
            )  # fmt: skip
        assert recorder.records() == []  # nothing recorded for an ingest that did not happen
    assert fingerprint(path) == before
    with Store(path) as store:
        summary = store.ingest(info, raw, observations, quarantine)
        assert summary.new_variables == ("pitch",)
        assert "T4" in store.asset_ids()


def test_progress_reports_every_chunk_up_to_the_total(tmp_path: Path) -> None:
    raw, observations, quarantine = scada(1000)
    info = source(tmp_path, "a.csv", b"x", len(raw))
    calls: list[tuple[int, int]] = []
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(
            info, raw, observations, quarantine, chunk_rows=300,
            progress=lambda done, total: calls.append((done, total)),
        )  # fmt: skip
    total = len(raw) + len(observations) + len(quarantine)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total
    assert len(calls) == -(-len(raw) // 300) + -(-len(observations) // 300) + 1


def test_read_only_store_refuses_writes(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path
) -> None:
    path, _, _ = filled
    raw, observations, quarantine = scada(5, seed=9)
    with Store(path, read_only=True) as store:
        with pytest.raises(PermissionError, match="read-only"):
            store.ingest(source(tmp_path, "e.csv", b"e", 10), raw, observations, quarantine)
        with pytest.raises(PermissionError, match="read-only"):
            store.recorder().entity("report")
    with pytest.raises(FileNotFoundError):
        Store(tmp_path / "absent.duckdb", read_only=True)


# -- twins ---------------------------------------------------------------------------------
def test_restored_twin_predicts_bit_identically(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, summary = filled
    grid = {
        "wind_speed": np.linspace(0, 26, 200),
        "temp_air": np.linspace(-5, 30, 200),
        "wind_direction": np.linspace(0, 359, 200),
    }
    with Store(path) as store:
        twin = fitted_twin(store, summary, recorder=None)
        assert store.save_twin(twin, note="first fit") == 1
        twin.update(store.observations("T2"))
        assert store.save_twin(twin) == 2
    expected = twin.predict(grid)
    with Store(path, read_only=True) as store:
        restored = store.load_twin("T1")
        first = store.load_twin("T1", 1)
        versions = store.versions("T1")
        assert store.twin_ids() == ["T1"]
    got = restored.predict(grid)
    assert np.array_equal(got.mean, expected.mean)
    assert np.array_equal(got.var, expected.var)
    for q in (0.05, 0.5, 0.95):
        assert np.array_equal(got.quantile(q), expected.quantile(q))
    assert restored.schema == twin.schema
    assert versions["version"].tolist() == [1, 2]
    assert versions["note"].tolist() == ["first fit", ""]
    assert versions["n_observations"].iloc[1] == twin.emulator.n_observations_
    assert first.emulator.n_observations_ < restored.emulator.n_observations_


def test_restored_twin_keeps_its_residual_correlation_bit_for_bit(tmp_path: Path) -> None:
    raw, observations, quarantine = scada(3_000, seed=9)
    # Residuals correlated in time (AR(1), 0.8 per 10 minutes), for the twin to learn.
    rng = np.random.default_rng(10)
    ar1 = ExponentialCorrelation.ar1(0.8, 600.0)
    for asset in ("T1", "T2"):
        rows = raw["asset_id"] == asset
        raw.loc[rows, "power"] += 80.0 * ar1.sample(time_seconds(raw.loc[rows, "time"]), 1, rng)[0]
    observations["power"] = (
        raw.set_index("source_row").loc[observations["source_row"], "power"].to_numpy()
    )
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        summary = store.ingest(
            source(tmp_path, "a.csv", b"a", len(raw)), raw, observations, quarantine
        )
        twin = fitted_twin(store, summary, recorder=None, correlation=ResidualCorrelation())
        store.save_twin(twin)
        inputs = store.observations("T2")
    assert twin.noise_correlation_ is not None
    assert float(twin.noise_correlation_(600.0)[()]) > 0.5
    with Store(path, read_only=True) as store:
        restored = store.load_twin("T1")
    assert restored.residual_correlation is not None
    assert restored.noise_correlation_ == twin.noise_correlation_
    for name, value in twin.residual_correlation.state().items():  # type: ignore[union-attr]
        assert np.array_equal(restored.residual_correlation.state()[name], value)
    expected, got = twin.predict(inputs), restored.predict(inputs)
    assert got.correlation == expected.correlation is not None
    assert np.array_equal(got.sample(20, seed=3), expected.sample(20, seed=3))
    # A restored twin goes on learning from the same statistics as the original.
    more = store_frame_later(inputs)
    assert restored.update(more).noise_correlation_ == twin.update(more).noise_correlation_


def store_frame_later(frame: pd.DataFrame) -> pd.DataFrame:
    """The same readings a year later."""
    return frame.assign(time=frame["time"] + pd.Timedelta(days=365))


def test_unknown_twin_or_version_is_a_clear_key_error(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, summary = filled
    with Store(path) as store:
        store.save_twin(fitted_twin(store, summary, recorder=None))
        with pytest.raises(KeyError, match=r"version 7 .*versions: \[1\]"):
            store.load_twin("T1", 7)
        with pytest.raises(KeyError, match="no twin 'T5'"):
            store.load_twin("T5")
        with pytest.raises(KeyError, match="no twin 'T5'"):
            store.versions("T5")


def test_saved_branch_keeps_its_interventions(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, summary = filled
    with Store(path) as store:
        branch = fitted_twin(store, summary, recorder=None).branch(Derate(1000.0), name="T1-cap")
        store.save_twin(branch)
        restored = store.load_twin("T1-cap")
    inputs = {"wind_speed": [15.0, 20.0]}
    assert np.array_equal(restored.predict(inputs).mean, branch.predict(inputs).mean)
    assert float(restored.predict(inputs).quantile(0.99).max()) <= 1000.0


def test_a_saved_branch_is_a_branch_when_loaded(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, summary = filled
    with Store(path) as store:
        twin = fitted_twin(store, summary, recorder=None)
        store.save_twin(twin)
        store.save_twin(twin.branch(Derate(1000.0), name="T1-cap"))
        store.save_twin(twin.branch(name="T1-copy"))  # a branch without interventions
    with Store(path, read_only=True) as store:
        capped, copied, parent = (store.load_twin(t) for t in ("T1-cap", "T1-copy", "T1"))
    assert capped.is_branch and copied.is_branch and not parent.is_branch
    assert capped.parent_id == copied.parent_id == "T1" and parent.parent_id is None
    assert capped.parent is None  # the parent object itself is not restored
    assert "branch of T1" in repr(capped)


def test_a_version_of_another_kind_under_a_twins_name_is_refused(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    # A branch of T1 saved as 'T2' became T2's latest version and replaced it (review).
    path, _, summary = filled
    with Store(path) as store:
        twin = fitted_twin(store, summary, recorder=None)
        store.save_twin(twin)
        other = Twin("T2", twin.schema, twin.emulator)
        store.save_twin(other)
        store.save_twin(twin.branch(Derate(1000.0), name="T1-cap"))
    before = fingerprint(path)
    with Store(path) as store:
        twin = store.load_twin("T1")
        replaces_live = r"twin 'T2': the store holds a live twin under this name, and a branch"
        with pytest.raises(ValueError, match=replaces_live):
            store.save_twin(twin.branch(Derate(900.0), name="T2"))
        with pytest.raises(ValueError, match=r"holds a branch of 'T1' under this name, and a live"):
            store.save_twin(Twin("T1-cap", twin.schema, twin.emulator))
        with pytest.raises(ValueError, match=r"and a branch of 'T2' saved as its next version"):
            store.save_twin(Twin("T1-cap", twin.schema, twin.emulator, parent_id="T2"))
    assert fingerprint(path) == before
    with Store(path) as store:
        # More versions of the same kind are what versions are for.
        assert store.save_twin(store.load_twin("T1").branch(Derate(800.0), name="T1-cap")) == 2
        assert store.save_twin(store.load_twin("T2")) == 2


# -- provenance ----------------------------------------------------------------------------
def test_chain_from_a_prediction_back_to_the_file_survives_reopening(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, info, summary = filled
    with Store(path) as store:
        twin = fitted_twin(store, summary, recorder=store.recorder())
        store.save_twin(twin)
    with Store(path) as store:
        recorder = store.recorder()
        restored = store.load_twin("T1", recorder=recorder)
        restored.predict({"wind_speed": [7.0]})
        prediction = recorder.own_records()[-1]
    with Store(path, read_only=True) as store:
        chain = store.recorder().chain(prediction.id)
    kinds = [r.kind for r in chain]
    assert kinds == [
        "file", "ingest", "raw_observations", "clean", "observations", "fit",
        "model_version", "predict", "prediction",
    ]  # fmt: skip
    assert chain[0].attributes["sha256"] == info.sha256
    assert chain[0].id == summary.file_entity


def test_save_twin_copies_the_chain_of_an_in_memory_recorder(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, info, summary = filled
    with Store(path) as store:
        memory = Recorder()
        memory.adopt(store.recorder().chain(summary.observations_entity))
        twin = fitted_twin(store, summary, recorder=memory)
        store.save_twin(twin)
        # a fresh in-memory recorder is given the chain when the twin is loaded
        fresh = Recorder()
        restored = store.load_twin("T1", recorder=fresh)
        restored.predict({"wind_speed": [5.0]})
        chain = fresh.chain(fresh.own_records()[-1].id)
    assert chain[0].attributes["sha256"] == info.sha256
    assert chain[-1].kind == "prediction"


def test_ingest_provenance_is_in_the_store_and_the_recorder(tmp_path: Path) -> None:
    raw, observations, quarantine = scada(100)
    info = source(tmp_path, "a.csv", b"abc", len(raw))
    recorder = Recorder()
    with Store(tmp_path / "s.duckdb") as store:
        summary = store.ingest(info, raw, observations, quarantine, recorder=recorder)
        stored = {r.id: r for r in store.provenance_records()}
    assert set(stored) == {r.id for r in recorder.records()}
    clean = stored[stored[summary.quarantine_entity].generated_by or ""]
    assert clean.kind == "clean"
    assert set(clean.generated) == {summary.observations_entity, summary.quarantine_entity}
    assert clean.attributes["checks"] == ["missing", "range"]
    assert stored[summary.file_entity].attributes["sha256"] == info.sha256


def test_branch_leaves_the_store_unchanged(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, summary = filled
    with Store(path) as store:
        store.save_twin(fitted_twin(store, summary, recorder=store.recorder()))
        before = store.fingerprint()
        twin = store.load_twin("T1", recorder=store.recorder())
        branch = twin.branch(Derate(1500.0))
        branch.update(store.observations("T2"))
        branch.predict({"wind_speed": [8.0, 12.0]})
        grandchild = branch.branch(Derate(800.0))
        grandchild.predict({"wind_speed": [8.0]})
        assert isinstance(branch.recorder, Recorder)
        assert len(branch.recorder.own_records()) >= 6
        assert store.fingerprint() == before
        # the live twin does write: the check above could have failed
        twin.predict({"wind_speed": [8.0]})
        assert store.fingerprint()["provenance"] != before["provenance"]


def test_fork_of_a_store_recorder_writes_nothing_to_the_store(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, summary = filled
    with Store(path) as store:
        recorder = store.recorder()
        before = store.fingerprint()
        fork = recorder.fork()
        made = fork.record("whatif", used=[summary.observations_entity], generated="report")
        assert made in fork and made not in recorder
        assert store.read_provenance(made) is None
        assert store.fingerprint() == before
        assert fork.chain(made)[0].id == summary.file_entity


def test_prov_json_of_a_store_parses(filled: tuple[Path, SourceInfo, IngestSummary]) -> None:
    path, info, summary = filled
    with Store(path, read_only=True) as store:
        text = store.recorder().to_json()
    data = json.loads(text)
    assert data["entity"][summary.file_entity]["tw:sha256"] == info.sha256
    document = prov.model.ProvDocument.deserialize(content=text, format="json")
    assert len(list(document.get_records(prov.model.ProvActivity))) == 2


# -- atomicity under a killed process, and speed -----------------------------------------
KILL_SCRIPT = """
import sys, time
import numpy as np, pandas as pd
from twinweave.data import SourceInfo, Store

path, n_rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
raw = pd.DataFrame({
    "asset_id": np.repeat(np.array(["K1", "K2"]), n_rows // 2),
    "time": pd.date_range("2020-01-01", periods=n_rows, freq="1min", tz="UTC").as_unit("ns"),
    "source_row": np.arange(n_rows, dtype=np.int64),
    "wind_speed": rng.uniform(0, 25, n_rows),
    "power": rng.uniform(0, 2050, n_rows),
    "pitch": rng.uniform(0, 90, n_rows),
})
quarantine = pd.DataFrame({
    "asset_id": raw["asset_id"].iloc[:1000], "time": raw["time"].iloc[:1000],
    "source_row": raw["source_row"].iloc[:1000], "variable": "power",
    "value": raw["power"].iloc[:1000], "check": "range", "reason": "test", "blanked": False,
})
info = SourceInfo("big.csv", "f" * 64, n_rows)

def progress(done, total):
    print(done, total, flush=True)
    # Once the raw rows are written (DuckDB has by then spilled uncommitted row groups
    # into the file), slow down so that the parent's SIGKILL lands mid-transaction.
    if done >= 1_000_000:
        time.sleep(0.2)

with Store(path) as store:
    store.ingest(info, raw, raw.iloc[1000:], quarantine, progress=progress)
    print("committed", flush=True)
"""


@pytest.mark.slow
def test_killed_ingest_leaves_the_store_as_before(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, _, _ = filled
    before = fingerprint(path)
    size_before = path.stat().st_size
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(path), "1000000"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.split()[0].isdigit() and int(line.split()[0]) >= 1_000_000:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    # DuckDB had written uncommitted rows into the file before the kill, so what is
    # tested below is recovery, not merely that nothing was written.
    assert path.stat().st_size > size_before
    assert "committed" not in lines and int(lines[-1].split()[0]) >= 1_000_000
    assert fingerprint(path) == before
    # A fresh ingest of the same file now succeeds (nothing of it was half-kept).
    child_info = SourceInfo("big.csv", "f" * 64, 10)
    raw, observations, quarantine = scada(5, ("K1",), seed=3, extra=("pitch",))
    with Store(path) as store:
        summary = store.ingest(child_info, raw, observations, quarantine)
        assert summary.new_variables == ("pitch",)
        assert store.asset_ids() == ["K1", "T1", "T2"]
        assert len(store.observations("K1", raw=True)) == 5


@pytest.mark.slow
def test_ingesting_a_year_of_a_fleet_keeps_every_row(tmp_path: Path) -> None:
    assets = [f"T{i}" for i in range(1, 9)]
    extra = ("pitch", "rotor_speed", "temp_nacelle", "yaw")
    raw, observations, quarantine = scada(52_560, assets, extra=extra)
    assert len(raw) == 420_480
    info = source(tmp_path, "year.csv", b"year", len(raw))
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(info, raw, observations, quarantine)
        assert len(store.observations("T8")) == (observations["asset_id"] == "T8").sum()


def test_a_duckdb_file_of_something_else_is_refused(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE accounts (id INTEGER)")
    with pytest.raises(ValueError, match="not a twinweave store"):
        Store(path)


def test_a_path_that_is_not_a_duckdb_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    parquet = tmp_path / "readings.duckdb"
    pd.DataFrame({"wind_speed": [5.0]}).to_parquet(parquet)
    csv = tmp_path / "X.csv"
    csv.write_text("wind_speed\n5.0\n")
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    for path, what in (
        (tmp_path, "a directory"),
        (parquet, "a Parquet file, not a DuckDB database"),
        (csv, "a file that is not a DuckDB database (a CSV file, by its name)"),
        (
            empty,
            "an empty file, not a DuckDB database (unless another process is creating it "
            "right now)",
        ),
    ):
        for read_only in (False, True):
            with pytest.raises(OSError, match=r"expected a twinweave store") as caught:
                Store(path, read_only=read_only)
            assert str(caught.value).startswith(f"store {path}: {what}; "), caught.value
    assert csv.read_text() == "wind_speed\n5.0\n"


def test_observations_entity_names_the_files_behind_the_readings(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path
) -> None:
    path, first, summary = filled
    raw, observations, quarantine = scada(100, ("T1",), start="2025-01-01", seed=4)
    second = source(tmp_path, "b.csv", b"second file", len(raw))
    with Store(path) as store:
        assert store.has_source(first.sha256) and not store.has_source(second.sha256)
        later = store.ingest(second, raw, observations, quarantine)
        assert store.has_source(second.sha256)
        # all of one file's readings: that file's cleaned observations
        assert store.observations_entity("T2") == summary.observations_entity
        # a window of one file: a selection that says which window, derived from it
        window = store.observations_entity("T1", start="2025-01-01")
        selected = store.recorder().get(window)
        select = store.recorder().get(str(selected.generated_by))
        assert select.kind == "select" and select.used == (later.observations_entity,)
        assert str(select.attributes["start"]).startswith("2025-01-01")
        with pytest.raises(KeyError, match="no cleaned readings of asset 'T2'"):
            store.observations_entity("T2", start="2025-01-01")
        # two files: a selection derived from both
        both = store.observations_entity("T1", end="2030-01-01")
        chain = store.recorder().chain(both)
    files = {r.attributes["sha256"] for r in chain if r.kind == "file"}
    assert files == {first.sha256, second.sha256}
    assert chain[-2].kind == "select" and chain[-2].attributes["asset_id"] == "T1"


def test_recorder_from_store_outlives_the_store(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    path, info, summary = filled
    with Store(path, read_only=True) as store:
        recorder = Recorder.from_store(store)
    chain = recorder.chain(summary.quarantine_entity)
    assert [r.kind for r in chain] == ["file", "ingest", "raw_observations", "clean", "quarantine"]
    assert info.sha256 in str(chain[0])
    assert json.loads(recorder.to_json())["entity"][summary.file_entity]


# -- files that overlap ----------------------------------------------------------------------
def test_the_same_reading_in_two_files_is_stored_once_and_counted(tmp_path: Path) -> None:
    frames = scada(300, ("T1",), seed=6)
    first, second = window(frames, 0, 200), window(frames, 100, 300)
    a = source(tmp_path, "a.csv", b"january", len(first[0]))
    b = source(tmp_path, "b.csv", b"january again", len(second[0]))
    with Store(tmp_path / "s.duckdb") as store:
        one = store.ingest(a, *first)
        two = store.ingest(b, *second)
        stored = store.observations("T1")
        raw = store.observations("T1", raw=True)
        sources = store.sources().set_index("sha256")
        assert store.quarantine(check="duplicate_across_sources").empty
        for summary, info in ((one, a), (two, b)):
            # Nothing lost: every raw reading is an observation, quarantined or skipped.
            n_quarantined = quarantined_readings(store, info)
            assert summary.n_raw == summary.n_observations + n_quarantined + summary.n_skipped
            assert sources.loc[info.sha256, "n_skipped"] == summary.n_skipped
        clean = store.recorder().get(str(store.recorder().get(two.quarantine_entity).generated_by))
    overlap = (frames[0]["source_row"] >= 100) & (frames[0]["source_row"] < 200)
    assert one.n_skipped == 0 and two.n_skipped == int(overlap.sum()) == 100
    assert not stored["time"].duplicated().any()
    pd.testing.assert_frame_equal(
        stored[frames[1].columns].drop(columns="source_row"),
        frames[1].drop(columns="source_row"),
        check_dtype=False,
    )
    assert len(raw) == 400  # the raw table keeps every row of both files
    assert clean is not None and one.raw_entity in clean.used
    assert clean.attributes["n_skipped"] == two.n_skipped


def test_a_quarantined_reading_in_two_files_is_listed_once(tmp_path: Path) -> None:
    frames = scada(300, ("T1",), seed=6)
    first, second = window(frames, 0, 200), window(frames, 100, 300)
    a = source(tmp_path, "a.csv", b"january", len(first[0]))
    b = source(tmp_path, "b.csv", b"january again", len(second[0]))
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(a, *first)
        two = store.ingest(b, *second)
        listed = store.quarantine()
    raw, quarantine = frames[0], frames[2]
    overlap = raw["source_row"].between(100, 199)
    failed_in_overlap = quarantine["source_row"].between(100, 199)
    assert quarantine.loc[failed_in_overlap, "source_row"].nunique() > 5
    # Each failed check of a reading is listed once, under the file that stored it first.
    assert not listed.duplicated(["asset_id", "time", "variable", "check"]).any()
    in_overlap = listed["time"].isin(raw.loc[overlap, "time"])
    assert set(listed.loc[in_overlap, "source_file"]) == {a.path}
    # Every reading of the overlap is skipped by the second file, cleaned or not.
    assert two.n_skipped == int(overlap.sum())
    assert two.n_quarantine == int((quarantine["source_row"] >= 200).sum())
    # What each file put in the store, per asset: the second file's overlap in raw only.
    counts = summary_of(tmp_path, b)
    assert counts["raw"] == two.n_raw == 200
    assert counts["observations"] == two.n_observations
    n_failed = quarantine.loc[quarantine["source_row"] >= 200, "source_row"].nunique()
    assert counts["quarantined"] == n_failed
    assert counts["raw"] == counts["observations"] + counts["quarantined"] + two.n_skipped


def summary_of(folder: Path, info: SourceInfo) -> dict[str, int]:
    """``Store.source_summary`` of the one asset, T1, of the file ``info``."""
    with Store(folder / "s.duckdb", read_only=True) as store:
        table = store.source_summary(info.sha256)
    assert table["asset_id"].tolist() == ["T1"]
    return {name: int(table[name].iloc[0]) for name in ("raw", "observations", "quarantined")}


def test_a_different_reading_at_a_stored_time_is_quarantined_not_overwritten(
    tmp_path: Path,
) -> None:
    frames = scada(300, ("T1",), seed=7)
    first = window(frames, 0, 200)
    raw, observations, quarantine = window(frames, 150, 300)
    # A re-export with corrected power in the overlap (readings 150-199).
    changed = raw["source_row"] < 50
    raw.loc[changed, "power"] += 5.0
    observations.loc[observations["source_row"] < 50, "power"] += 5.0
    a = source(tmp_path, "a.csv", b"export 1", len(first[0]))
    b = source(tmp_path, "b.csv", b"export 2", len(raw))
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(a, *first)
        before = store.observations("T1")
        summary = store.ingest(b, raw, observations, quarantine)
        after = store.observations("T1")
        duplicates = store.quarantine(check="duplicate_across_sources")
        n_quarantined = quarantined_readings(store, b)
    n_overlap = int((observations["source_row"] < 50).sum())
    assert len(duplicates) == n_overlap > 20 and summary.n_skipped == 0
    assert summary.n_raw == summary.n_observations + n_quarantined
    # The stored readings stand unchanged; the new ones are only in the quarantine.
    kept = after[after["time"].isin(before["time"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before)
    assert not after["time"].duplicated().any()
    reason = duplicates["reason"].iloc[0]
    assert "duplicate timestamp across sources" in reason
    assert a.path in reason and b.path in reason
    stored = before.loc[before["time"] == duplicates["time"].iloc[0], "power"].iloc[0]
    assert f"power: stored {float(stored)!r}, this file {float(stored) + 5.0!r}" in reason
    assert "wind_speed" not in reason  # only the values that differ are listed
    assert set(duplicates["variable"]) == {"*"}


def test_the_same_readings_converted_from_another_unit_are_the_same(tmp_path: Path) -> None:
    # An export in degF and MW, converted, differs from one in degC and kW in the last
    # bits (11.880000000000052 against 11.88): every reading of the overlap was quarantined
    # as a conflict.
    frames = scada(300, ("T1",), seed=8)
    first = window(frames, 0, 200)
    raw, observations, quarantine = window(frames, 100, 300)
    for frame in (raw, observations):
        frame["temp_air"] = ((frame["temp_air"] * 9.0 / 5.0 + 32.0) - 32.0) * 5.0 / 9.0
        frame["power"] = frame["power"] / 1000.0 * 1000.0 * (1.0 + 1e-15)
    assert (raw["temp_air"] != window(frames, 100, 300)[0]["temp_air"]).any()
    a = source(tmp_path, "a.csv", b"in degC and kW", len(first[0]))
    b = source(tmp_path, "b.csv", b"in degF and MW", len(raw))
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(a, *first)
        summary = store.ingest(b, raw, observations, quarantine)
        assert store.quarantine(check="duplicate_across_sources").empty
    assert summary.n_skipped == 100


# Columns each format added, to undo them and make a store of an older format.
ADDED_BY_FORMAT = {
    2: (
        ("sources", "n_skipped"),
        ("model_versions", "correlation_params"),
        ("model_versions", "correlation_state"),
        ("model_versions", "correlation_state_kinds"),
    ),
    3: (("model_versions", "parent_id"),),
    4: (("sources", "settings"),),
    5: (("quarantine", "blanked"),),
}


@pytest.mark.parametrize("old", [1, 2, 3, 4])
def test_a_store_of_an_older_format_is_read_and_upgraded(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path, old: int
) -> None:
    import duckdb

    path, info, summary = filled
    with Store(path) as store:
        store.save_twin(fitted_twin(store, summary, recorder=None))
        store.save_twin(fitted_twin(store, summary, recorder=None).branch(name="T1-copy"))
    with duckdb.connect(str(path)) as connection:
        for later, added in ADDED_BY_FORMAT.items():
            if later > old:
                for table, column in added:
                    connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        connection.execute(f"UPDATE meta SET value = '{old}' WHERE key = 'format_version'")
    with Store(path, read_only=True) as store:
        if old < 4:
            assert store.source_settings(info.sha256) is None  # not kept before format 4
        # Before format 5 no value was blanked: every entry set its reading aside.
        listed = store.quarantine()
        assert len(listed) == summary.n_quarantine and not listed["blanked"].any()
        counted = store.source_summary(info.sha256)
        assert counted["quarantined"].sum() == listed["source_row"].nunique()
        assert store.load_twin("T1").residual_correlation is None
        # A store older than format 3 did not say the twin was a branch.
        assert store.load_twin("T1-copy").is_branch == (old >= 3)
    raw, observations, quarantine = scada(20, ("T5",), seed=8)
    with Store(path) as store:
        later = store.ingest(
            source(tmp_path, "c.csv", b"later", len(raw)), raw, observations, quarantine
        )
        assert store.sources()["n_skipped"].tolist() == [0, 0]
        assert later.n_observations == len(observations)
        twin = fitted_twin(store, summary, recorder=None, correlation=ResidualCorrelation())
        store.save_twin(twin)
        learner = store.load_twin("T1").residual_correlation
        if old < 3:
            # Its T1-copy reads as a live twin, so a branch may not become its next version.
            with pytest.raises(ValueError, match="the store holds a live twin under this name"):
                store.save_twin(twin.branch(name="T1-copy"))
        else:
            store.save_twin(twin.branch(name="T1-copy"))
            assert store.load_twin("T1-copy").is_branch
    assert learner is not None and twin.residual_correlation is not None
    assert learner.n_squares_ == twin.residual_correlation.n_squares_ > 0
    with duckdb.connect(str(path), read_only=True) as connection:
        version = connection.execute(
            "SELECT value FROM meta WHERE key = 'format_version'"
        ).fetchone()
    assert version == (str(FORMAT_VERSION),)


def test_a_column_a_store_lacks_is_added_whatever_version_it_says(
    filled: tuple[Path, SourceInfo, IngestSummary], tmp_path: Path
) -> None:
    import duckdb

    # Written between two changes of format 4: the version, without sources.settings.
    path, info, _ = filled
    with duckdb.connect(str(path)) as connection:
        connection.execute("ALTER TABLE sources DROP COLUMN settings")
    with Store(path, read_only=True) as store:
        assert store.source_settings(info.sha256) is None
    raw, observations, quarantine = scada(20, ("T5",), seed=9)
    later = source(tmp_path, "later.csv", b"later", len(raw))
    with Store(path) as store:
        store.ingest(later, raw, observations, quarantine, settings={"rated_power_kw": {}})
        assert store.source_settings(later.sha256) == {"rated_power_kw": {}}


def test_a_store_of_a_newer_format_is_refused(
    filled: tuple[Path, SourceInfo, IngestSummary],
) -> None:
    import duckdb

    path, _, _ = filled
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            f"UPDATE meta SET value = '{FORMAT_VERSION + 1}' WHERE key = 'format_version'"
        )
    for read_only in (True, False):
        with pytest.raises(ValueError, match=f"format {FORMAT_VERSION + 1}.*upgrade twinweave"):
            Store(path, read_only=read_only)


def test_a_reservoir_twins_last_time_round_trips_and_an_older_state_loads(
    tmp_path: Path,
) -> None:
    """The state-space emulator's last time and step are saved with its state, bit for
    bit; a state saved before it remembered them loads, knowing no time."""
    import duckdb

    from twinweave.checks import ReservoirBalance, reservoir_emulator
    from twinweave.data._store import _encode_state
    from twinweave.models import StateSpaceEmulator

    problem = ReservoirBalance()
    data = problem.observations(40, seed=3)
    times = pd.date_range("2016-03-01", periods=40, freq="D", tz="America/Denver")

    def days(start: int, stop: int) -> dict[str, object]:
        return {name: values[start:stop] for name, values in data.items()} | {
            "time": times[start:stop]
        }

    twin = Twin("R1", problem.schema, reservoir_emulator())
    twin.update(days(0, 30))  # across the spring daylight-saving change
    path = tmp_path / "reservoirs.duckdb"
    with Store(path) as store:
        store.save_twin(twin)
    with Store(path, read_only=True) as store:
        restored = store.load_twin("R1")
    saved, loaded = twin.emulator.state(), restored.emulator.state()
    assert saved.keys() == loaded.keys() >= {"last_time_", "time_step_"}
    for name, value in saved.items():
        assert type(loaded[name]) is type(value)
        assert np.array_equal(loaded[name], value)
    assert loaded["last_time_"] == times[29].timestamp() and loaded["time_step_"] == 86400.0
    with pytest.raises(ValueError, match=r"time: expected observations to start one step"):
        restored.update(days(25, 40))
    restored.update(days(30, 40))

    # A store written before: the state has no entries for the time.
    older = {k: v for k, v in saved.items() if k not in ("last_time_", "time_step_")}
    state, kinds = _encode_state(older)
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "UPDATE model_versions SET state = $1, state_kinds = $2 WHERE twin_id = 'R1'",
            [state, json.dumps(kinds)],
        )
    with Store(path, read_only=True) as store:
        emulator = store.load_twin("R1").emulator
    assert isinstance(emulator, StateSpaceEmulator) and emulator.last_time_ is None
    np.testing.assert_array_equal(emulator.state()["mean_"], saved["mean_"])
    emulator.update(days(25, 40))  # no time known: not checked, as before


def test_a_forecasting_twins_correlation_saved_before_it_was_refused_is_left_out(
    tmp_path: Path,
) -> None:
    """Stores written before twins refused a residual correlation around a state space
    may hold one (learnt from forecasts): the twin loads without it, and says so."""
    from twinweave.checks import ReservoirBalance, reservoir_emulator

    problem = ReservoirBalance()
    twin = Twin("R1", problem.schema, reservoir_emulator())
    twin.residual_correlation = ResidualCorrelation()  # as an older twinweave allowed
    twin.update(problem.observations(20, seed=3))
    path = tmp_path / "older.duckdb"
    with Store(path) as store:
        store.save_twin(twin)
    with Store(path, read_only=True) as store, pytest.warns(UserWarning, match="is left out"):
        restored = store.load_twin("R1")
    assert restored.residual_correlation is None
    assert np.array_equal(restored.emulator.state()["mean_"], twin.emulator.state()["mean_"])


def frozen_thermometer_file(minutes: Sequence[int], power: float = 500.0) -> pd.DataFrame:
    """Raw readings of T1 every 10 minutes whose thermometer holds 9.0 degC throughout."""
    return pd.DataFrame(
        {
            "asset_id": pd.array(["T1"] * len(minutes), dtype="string"),
            "time": pd.Timestamp("2014-03-01", tz="UTC") + pd.to_timedelta(minutes, unit="min"),
            "source_row": np.arange(len(minutes), dtype=np.int64),
            "wind_speed": 5.0 + np.asarray(minutes) / 100.0,
            "power": np.full(len(minutes), power),
            "temp_air": np.full(len(minutes), 9.0),
        }
    )


def test_a_blanked_value_keeps_its_reading_in_the_store_and_in_its_counts(
    tmp_path: Path,
) -> None:
    from twinweave.data import FrozenSensor, RangeCheck, clean

    checks = [RangeCheck("power", 0.0, 2100.0), FrozenSensor("temp_air")]
    raw = frozen_thermometer_file(range(0, 300, 10))  # 5 h of one temperature
    raw.loc[4, "power"] = -50.0  # and one reading out of range
    observations, quarantine = clean(raw, checks)
    path = tmp_path / "s.duckdb"
    first = source(tmp_path, "first.csv", b"first", len(raw))
    with Store(path) as store:
        summary = store.ingest(first, raw, observations, quarantine)
        assert summary.n_observations == 29 and summary.n_quarantine == 31
        # Per file: n_raw = observations + readings set aside + n_skipped.
        assert store.source_summary(first.sha256).to_dict("records") == [
            {"asset_id": "T1", "raw": 30, "observations": 29, "quarantined": 1}
        ]
        stored = store.observations("T1")
        assert len(stored) == 29 and stored["temp_air"].isna().all()
        listed = store.quarantine(check="frozen_sensor")
        assert len(listed) == 30 and listed["blanked"].all()
        assert (listed["value"] == 9.0).all()
        assert not store.quarantine(check="range")["blanked"].any()
        recorder = store.recorder()
        clean_record = recorder.get(str(recorder.get(summary.quarantine_entity).generated_by))
        assert clean_record is not None
        assert clean_record.attributes["n_quarantined_readings"] == 1

    # A later export overlapping the last hour, its thermometer still frozen: the same
    # readings as read are skipped, not taken for copies with other values because the
    # stored ones' temp_air was blanked, nor listed twice in the quarantine.
    later_raw = frozen_thermometer_file(range(240, 600, 10))
    observations, quarantine = clean(later_raw, checks)
    assert observations["temp_air"].isna().all()
    later = source(tmp_path, "later.csv", b"later", len(later_raw))
    with Store(path) as store:
        summary = store.ingest(later, later_raw, observations, quarantine)
        assert summary.n_skipped == 6 and summary.n_observations == 30
        assert len(store.quarantine(check="duplicate_across_sources")) == 0
        frozen = store.quarantine(check="frozen_sensor")
        from_later = frozen[frozen["source_sha256"] == later.sha256]
        assert len(frozen) == 60 and from_later["source_row"].tolist() == list(range(6, 36))
        assert store.source_summary(later.sha256)["quarantined"].tolist() == [0]
        assert len(store.observations("T1")) == 29 + 30


def test_observations_may_hold_a_variable_the_raw_frame_lacks(tmp_path: Path) -> None:
    # Derived in cleaning (a density, say): stored, and compared with later files as read.
    raw = frozen_thermometer_file(range(0, 60, 10))
    observations = raw.assign(air_density=1.2)
    quarantine = scada(1)[2].iloc[:0]
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        store.ingest(source(tmp_path, "a.csv", b"a", len(raw)), raw, observations, quarantine)
        later = frozen_thermometer_file(range(30, 90, 10))
        summary = store.ingest(
            source(tmp_path, "b.csv", b"b", len(later)),
            later,
            later.assign(air_density=1.2),
            quarantine,
        )
        assert summary.n_skipped == 3 and summary.n_observations == 3
        assert store.observations("T1")["air_density"].tolist() == [1.2] * 9
        stray = later.assign(source_row=later["source_row"] + 100)
        with pytest.raises(ValueError, match="source_row 100 is not a row of the raw frame"):
            store.ingest(source(tmp_path, "c.csv", b"c", len(later)), later, stray, quarantine)


def test_a_long_query_draws_no_bar_on_stdout(tmp_path: Path) -> None:
    # DuckDB drew a progress bar on descriptor 1 for any query over 2 s, terminal or
    # not: into a table piped on from `--output -`, or into whatever file held
    # descriptor 1 (the store itself, with stdout closed). Asked of the setting, in a
    # process of its own: under pytest DuckDB starts with the bar off, and a query long
    # enough to show it takes seconds (lowering its delay switches it back on).
    script = textwrap.dedent(
        f"""
        from twinweave.data import Store
        for read_only in (False, True):
            with Store({str(tmp_path / "s.duckdb")!r}, read_only=read_only) as store:
                setting = "SELECT current_setting('enable_progress_bar')"
                print(store._con.execute(setting).fetchall())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[(False,)]", "[(False,)]"], result.stdout
