"""The provenance recorder: links, chains, forks, PROV-JSON."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC
from pathlib import Path

import numpy as np
import prov.model
import pytest

from twinweave.core import ProvenanceSink, Telemetry, Twin, TwinSchema
from twinweave.models import BayesianBasisRegression, SplineTerm
from twinweave.provenance import ProvRecord, Recorder


def small_twin(recorder: Recorder) -> Twin:
    schema = TwinSchema(
        name="Pump",
        telemetry=[Telemetry(name="flow", unit="m^3/h"), Telemetry(name="power", unit="kW")],
    )
    emulator = BayesianBasisRegression(
        target="power", terms=(SplineTerm("flow", 0, 10, 6),), noise_source="flow",
        noise_edges=[0, 10], units="kW",
    )  # fmt: skip
    return Twin("pump-1", schema, emulator, recorder=recorder)


def readings(n: int = 200) -> dict[str, np.ndarray]:
    flow = np.linspace(0, 10, n)
    return {"flow": flow, "power": 3 * flow + np.sin(flow)}


def test_recorder_meets_the_sink_protocol() -> None:
    assert isinstance(Recorder(), ProvenanceSink)


def test_ids_are_kind_prefixed_short_and_unique() -> None:
    recorder = Recorder()
    ids = [recorder.entity("prediction") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"prediction:[0-9a-f]{12}", i) for i in ids)


def test_an_id_the_store_holds_already_is_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store keeps the first record of an id: a second recorder that drew the same
    # id lost its record, and the chain showed the first file's (review 2026-12-01).
    from twinweave.data import Store

    draws = iter(["aaaaaaaaaaaa", "aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr("secrets.token_hex", lambda _: next(draws))
    with Store(tmp_path / "s.duckdb") as store:
        first = Recorder(store=store).entity("file", {"path": "a.csv"})
        second = Recorder(store=store).entity("file", {"path": "b.csv"})
        assert (first, second) == ("file:aaaaaaaaaaaa", "file:bbbbbbbbbbbb")
        found = store.read_provenance(second)
        assert found is not None and found.attributes["path"] == "b.csv"


def test_record_links_activity_used_generated_and_times_are_utc() -> None:
    recorder = Recorder()
    source = recorder.entity("observations", {"n_rows": np.int64(10)})
    model = recorder.record("fit", used=[source], generated="model_version", attributes={"a": 1})
    entity = recorder.get(model)
    assert entity is not None and entity.category == "entity"
    assert entity.kind == "model_version"
    activity = recorder.get(entity.generated_by or "")
    assert activity is not None
    assert activity.kind == "fit" and activity.used == (source,)
    assert activity.generated == (model,) and activity.attributes == {"a": 1}
    assert entity.time.tzinfo is not None and entity.time.utcoffset() == UTC.utcoffset(None)
    # numpy scalars become plain numbers (JSON-able)
    observations = recorder.get(source)
    assert observations is not None
    assert type(observations.attributes["n_rows"]) is int
    # An entity used twice (four turbines of one file's observations) is used once: the
    # monitor's record listed it four times, and PROV-JSON four usage relations.
    twice = recorder.record("monitor", used=[source, model, source, source], generated="alarms")
    monitor = recorder.get(recorder.get(twice).generated_by or "")  # type: ignore[union-attr]
    assert monitor is not None and monitor.used == (source, model)


def test_bad_kind_or_attribute_name_is_refused() -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match="provenance kind"):
        recorder.entity("Bad Kind")
    with pytest.raises(ValueError, match="provenance kind"):
        recorder.entity("prov")
    with pytest.raises(ValueError, match="provenance kind"):
        recorder.entity("fit\n")  # $ once let a final newline in
    with pytest.raises(ValueError, match="attribute name"):
        recorder.entity("file", {"rows\n": 1})
    with pytest.raises(ValueError, match="attribute name"):
        recorder.entity("file", {"Not OK": 1})
    with pytest.raises(TypeError, match="sequence of entity ids"):
        recorder.record("fit", used="file:0123", generated="model_version")


def test_file_entity_records_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "scada.csv"
    path.write_bytes(b"time,power\n2024-01-01T00:00Z,1.5\n")
    recorder = Recorder()
    file_id = recorder.file_entity(path)
    record = recorder.get(file_id)
    assert record is not None and record.kind == "file"
    assert record.attributes["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.attributes["path"] == str(path.resolve())
    assert record.generated_by is None
    # Given the bytes that were read, those are recorded, whatever the file holds now
    # (review 2026-12-01: a file read, then hashed again, could be hashed changed).
    read = path.read_bytes()
    path.write_bytes(b"time,power\n")
    record = recorder.get(recorder.file_entity(path, read))
    assert record is not None
    assert record.attributes["sha256"] == hashlib.sha256(read).hexdigest()
    assert record.attributes["n_bytes"] == len(read)


def test_chain_walks_from_a_prediction_back_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "scada.csv"
    path.write_text("a,b\n1,2\n")
    recorder = Recorder()
    file_id = recorder.file_entity(path)
    raw = recorder.record("ingest", used=[file_id], generated="raw_observations")
    clean, _ = recorder.record_many("clean", used=[raw], generated=["observations", "quarantine"])
    twin = small_twin(recorder)
    twin.update(readings(), source=clean)
    twin.update(readings(50), source=clean)
    twin.predict({"flow": [5.0]})
    prediction = recorder.records()[-1]
    assert prediction.kind == "prediction"
    chain = recorder.chain(prediction.id)
    kinds = [r.kind for r in chain]
    assert kinds[0] == "file" and kinds[-1] == "prediction"
    assert chain[0].attributes["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # both fits, the ingest and the cleaning are on the way; the quarantine is not
    assert kinds.count("fit") == 2 and "ingest" in kinds and "clean" in kinds
    assert "quarantine" not in kinds
    # every record comes after everything it used or was generated by
    position = {r.id: i for i, r in enumerate(chain)}
    for record in chain:
        parents = record.used if record.category == "activity" else (record.generated_by,)
        assert all(position[p] < position[record.id] for p in parents if p is not None)
    with pytest.raises(KeyError, match="unknown provenance id"):
        recorder.chain("prediction:000000000000")


def test_fork_reads_parent_but_writes_only_to_itself() -> None:
    parent = Recorder()
    model = parent.entity("model_version")
    fork = parent.fork()
    branch_model = fork.record("branch", used=[model], generated="model_version")
    assert fork.get(model) is not None
    assert parent.get(branch_model) is None
    assert [r.kind for r in fork.chain(branch_model)] == [
        "model_version",
        "branch",
        "model_version",
    ]
    assert len(parent.records()) == 1
    # the parent's later records are visible to the fork, not the other way round
    later = parent.entity("report")
    assert later in fork


def test_twin_branch_writes_to_a_fork_only() -> None:
    recorder = Recorder()
    twin = small_twin(recorder)
    twin.update(readings())
    before = [r.id for r in recorder.records()]
    branch = twin.branch()
    branch.update(readings(20))
    branch.predict({"flow": [1.0, 2.0]})
    assert [r.id for r in recorder.records()] == before
    assert isinstance(branch.recorder, Recorder)
    assert {r.kind for r in branch.recorder.own_records()} >= {"branch", "fit", "predict"}


def test_prov_json_export_parses_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "scada.csv"
    path.write_text("x\n1\n")
    recorder = Recorder()
    file_id = recorder.file_entity(path)
    twin = small_twin(recorder)
    twin.update(readings(), source=file_id)
    twin.predict({"flow": [3.0]})
    text = recorder.to_json()
    data = json.loads(text)
    assert {"entity", "activity", "used", "wasGeneratedBy", "wasDerivedFrom"} <= set(data)
    assert file_id in data["entity"]
    assert data["entity"][file_id]["tw:sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    document = prov.model.ProvDocument.deserialize(content=text, format="json")
    assert document == recorder.to_document()
    derived = [
        (v["prov:generatedEntity"], v["prov:usedEntity"]) for v in data["wasDerivedFrom"].values()
    ]
    assert any(used == file_id for _, used in derived)


def test_record_json_round_trip() -> None:
    recorder = Recorder()
    entity = recorder.entity("file", {"path": "a.csv", "sizes": [1, 2]})
    record = recorder.get(entity)
    assert record is not None
    assert ProvRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_adopt_skips_known_records() -> None:
    source = Recorder()
    model = source.record("fit", used=[], generated="model_version")
    target = Recorder()
    target.adopt(source.records())
    target.adopt(source.records())
    assert len(target.own_records()) == 2
    assert target.chain(model)[-1].id == model
