"""One provenance recorder for everything a twin does, exported as W3C PROV.

Every ingest (with the file's SHA-256), transformation, fit, prediction and branch is an
*activity* that *used* some entities and *generated* one new entity; the generated entity
was *derived from* each used one. These are the three relations of the PROV data model
(W3C, *PROV-DM: The PROV Data Model*, 2013, https://www.w3.org/TR/prov-dm/) that a chain
from a raw file to a predicted number needs. Export goes through the ``prov`` package
to PROV-JSON (W3C Member Submission, https://www.w3.org/submissions/prov-json/).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import prov.model

#: Namespace of twinweave's PROV attributes and types; each kind also gets a namespace
#: ``urn:twinweave:<kind>:`` so that an id such as ``prediction:3f2a9c1e07bd`` is itself
#: a PROV qualified name.
NAMESPACE = "urn:twinweave:"

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")  # \Z: $ lets a final newline in
# Prefixes the PROV serialisations reserve; a kind of that name would shadow them.
_RESERVED = frozenset({"prov", "xsd", "xml", "xsi", "tw"})

#: JSON-compatible attribute value.
Value = str | int | float | bool | None | list[Any]


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the bytes of ``path``, read in blocks (files may be large)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_attributes(path: str | Path, content: bytes | None = None) -> dict[str, Any]:
    """What a file's record holds: its absolute ``path``, ``sha256`` and ``n_bytes``; of
    ``content``, the bytes read from it, when given (else of the file as it is now)."""
    resolved = Path(path).resolve()
    if content is None:
        digest, size = sha256_file(resolved), resolved.stat().st_size
    else:
        digest, size = hashlib.sha256(content).hexdigest(), len(content)
    return {"path": str(resolved), "sha256": digest, "n_bytes": size}


def _check_kind(kind: str) -> str:
    if not _KIND.match(kind) or kind in _RESERVED:
        raise ValueError(
            f"provenance kind {kind!r}: expected lower-case letters, digits and '_' "
            f"starting with a letter (at most 32), not one of {sorted(_RESERVED)}; "
            f"for example 'prediction' or 'fit'"
        )
    return kind


def _plain(value: Any) -> Value:
    """``value`` as something JSON and PROV can hold without losing what it was."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        item: Value = value.item()
        return item
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        # As JSON text (a Python repr was stored before): keys as text, values plain.
        return json.dumps({str(k): _plain(v) for k, v in value.items()})
    if isinstance(value, Sequence | np.ndarray | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Value]:
    if not attributes:
        return {}
    plain: dict[str, Value] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not _KIND.match(key):
            raise ValueError(
                f"provenance attribute name {key!r}: expected lower-case letters, digits "
                f"and '_' starting with a letter, for example 'sha256' or 'n_rows'"
            )
        plain[key] = _plain(value)
    return plain


@dataclass(frozen=True)
class ProvRecord:
    """One entity or activity, with the links PROV needs.

    Parameters
    ----------
    id
        ``"<kind>:<12 hex digits>"``, for example ``"prediction:3f2a9c1e07bd"``.
    category
        ``"entity"`` (a thing: a file, a frame, a model version, a prediction) or
        ``"activity"`` (something done: ingest, clean, fit, predict, branch).
    kind
        Entity or activity kind; see ``docs/CONTRACTS.md``.
    time
        When it was recorded, UTC.
    attributes
        JSON-compatible details (``sha256``, ``n_rows``, ``twin``, ...).
    used
        Activity only: ids of the entities it used.
    generated
        Activity only: ids of the entities it generated.
    generated_by
        Entity only: id of the activity that generated it; ``None`` for an origin such
        as a raw file.
    """

    id: str
    category: Literal["entity", "activity"]
    kind: str
    time: datetime
    attributes: dict[str, Value] = field(default_factory=dict)
    used: tuple[str, ...] = ()
    generated: tuple[str, ...] = ()
    generated_by: str | None = None

    def __hash__(self) -> int:
        # Ids are unique; the attributes dict is not hashable.
        return hash(self.id)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line for people: time, id, and the attributes or links that matter.

        Examples
        --------
        >>> record = ProvRecord("file:0123456789ab", "entity", "file",
        ...     datetime(2024, 1, 1, tzinfo=UTC), {"path": "a.csv", "sha256": "ff00"})
        >>> record.describe()
        '2024-01-01T00:00:00Z  file:0123456789ab  path=a.csv sha256=ff00'
        """
        stamp = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"
        parts = [f"{k}={v}" for k, v in self.attributes.items()]
        if self.category == "activity":
            parts.append(f"used=[{', '.join(self.used)}]")
        return f"{stamp}  {self.id}  {' '.join(parts)}".rstrip()

    def to_json(self) -> dict[str, Any]:
        """Plain form of the record (what a store keeps)."""
        return {
            "id": self.id,
            "category": self.category,
            "kind": self.kind,
            "time": self.time.astimezone(UTC).isoformat(),
            "attributes": self.attributes,
            "used": list(self.used),
            "generated": list(self.generated),
            "generated_by": self.generated_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProvRecord:
        """Inverse of :meth:`to_json`."""
        category = data["category"]
        if category not in ("entity", "activity"):
            raise ValueError(f"record {data.get('id')!r}: unknown category {category!r}")
        time = datetime.fromisoformat(str(data["time"]))
        return cls(
            id=str(data["id"]),
            category=category,
            kind=str(data["kind"]),
            time=time.astimezone(UTC),
            attributes=dict(data.get("attributes") or {}),
            used=tuple(data.get("used") or ()),
            generated=tuple(data.get("generated") or ()),
            generated_by=data.get("generated_by"),
        )


@runtime_checkable
class RecordStore(Protocol):
    """Where a :class:`Recorder` persists records (``twinweave.data.Store`` is one)."""

    def write_provenance(self, records: Sequence[ProvRecord]) -> None:
        """Persist ``records``; records already present (same id) are left as they are."""
        ...

    def read_provenance(self, record_id: str) -> ProvRecord | None:
        """The record with ``record_id``, or ``None``."""
        ...

    def provenance_records(self) -> list[ProvRecord]:
        """Every persisted record, oldest first."""
        ...


class Recorder:
    """Records entities and activities; implements :class:`twinweave.core.ProvenanceSink`.

    Records are kept in memory and, with ``store``, written through to it as they are
    made. A :meth:`fork` reads everything its parent can read but writes only to itself,
    which is how a twin's what-if branch leaves the live twin's store untouched.

    Parameters
    ----------
    store
        Where records are persisted; ``None`` keeps them in memory only.

    Examples
    --------
    >>> recorder = Recorder()
    >>> raw = recorder.entity("file", {"path": "scada.csv", "sha256": "ab12"})
    >>> model = recorder.record("fit", used=[raw], generated="model_version")
    >>> number = recorder.record("predict", used=[model], generated="prediction")
    >>> [r.kind for r in recorder.chain(number)]
    ['file', 'fit', 'model_version', 'predict', 'prediction']
    >>> branch = recorder.fork()
    >>> _ = branch.record("branch", used=[model], generated="model_version")
    >>> len(recorder.records()), len(branch.records())
    (5, 7)
    """

    def __init__(self, store: RecordStore | None = None) -> None:
        self.store = store
        self._parent: Recorder | None = None
        self._own: dict[str, ProvRecord] = {}

    @classmethod
    def from_store(cls, store: RecordStore) -> Recorder:
        """An in-memory recorder holding every record of ``store``, read once.

        It stays usable after the store is closed, and writes to memory only; use
        ``Recorder(store=store)`` to record into the store.
        """
        recorder = cls()
        recorder._own = {r.id: r for r in store.provenance_records()}
        return recorder

    # -- writing (the ProvenanceSink protocol) -----------------------------------------
    def entity(self, kind: str, attributes: Mapping[str, Any] | None = None) -> str:
        """Record a new entity of ``kind`` (``file``, ``observations``, ...); return its id."""
        record = ProvRecord(
            id=self._new_id(_check_kind(kind)),
            category="entity",
            kind=kind,
            time=datetime.now(UTC),
            attributes=_attributes(attributes),
        )
        self._write([record])
        return record.id

    def record(
        self,
        activity: str,
        *,
        used: Sequence[str],
        generated: str,
        attributes: Mapping[str, Any] | None = None,
        entity_attributes: Mapping[str, Any] | None = None,
    ) -> str:
        """Record ``activity`` using entities ``used``; return the id of the new entity.

        Parameters
        ----------
        activity
            Activity kind: ``ingest``, ``clean``, ``fit``, ``predict``, ``branch``, ...
        used
            Ids of the entities the activity read. Ids this recorder cannot resolve are
            kept as given; :meth:`chain` stops at them.
        generated
            Kind of the entity the activity produced, for example ``"prediction"``.
        attributes
            Details of the activity (``twin``, ``n_points``, ...).
        entity_attributes
            Details of the new entity (a file written: its ``path`` and ``sha256``).
        """
        (entity_id,) = self.record_many(
            activity,
            used=used,
            generated=[generated],
            attributes=attributes,
            entity_attributes=[entity_attributes],
        )
        return entity_id

    def record_many(
        self,
        activity: str,
        *,
        used: Sequence[str],
        generated: Sequence[str],
        attributes: Mapping[str, Any] | None = None,
        entity_attributes: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> tuple[str, ...]:
        """Like :meth:`record` for an activity that produced several entities.

        Cleaning, for example, produces both the observations and the quarantine.
        Returns the new entities' ids in the order of ``generated``;
        ``entity_attributes``, if given, holds the details of each.
        """
        if isinstance(used, str):
            raise TypeError(f"used: expected a sequence of entity ids, got the string {used!r}")
        details = [None] * len(generated) if entity_attributes is None else entity_attributes
        if len(details) != len(generated):
            raise ValueError(
                f"entity_attributes: expected one per generated entity ({len(generated)}), "
                f"got {len(details)}"
            )
        time = datetime.now(UTC)
        activity_id = self._new_id(_check_kind(activity))
        outputs = [
            ProvRecord(
                id=self._new_id(_check_kind(kind)),
                category="entity",
                kind=kind,
                time=time,
                attributes=_attributes(detail),
                generated_by=activity_id,
            )
            for kind, detail in zip(generated, details, strict=True)
        ]
        action = ProvRecord(
            id=activity_id,
            category="activity",
            kind=activity,
            time=time,
            attributes=_attributes(attributes),
            # Once each: turbines read from one file share its observations' entity.
            used=tuple(dict.fromkeys(used)),
            generated=tuple(r.id for r in outputs),
        )
        self._write([action, *outputs])
        return action.generated

    def fork(self) -> Recorder:
        """A recorder that sees this one's records but writes only to itself (in memory)."""
        child = Recorder()
        child._parent = self
        return child

    def file_entity(self, path: str | Path, content: bytes | None = None) -> str:
        """Record a raw file as an entity, with its SHA-256 and size; return its id.

        ``content``, the bytes that were read from ``path``, is what is hashed when
        given: the record is then of the bytes used, even if the file changed since.
        """
        return self.entity("file", file_attributes(path, content))

    # -- reading -----------------------------------------------------------------------
    def get(self, record_id: str) -> ProvRecord | None:
        """The record ``record_id`` as this recorder sees it, or ``None``."""
        found = self._own.get(record_id)
        if found is None and self.store is not None:
            found = self.store.read_provenance(record_id)
        if found is None and self._parent is not None:
            found = self._parent.get(record_id)
        return found

    def __contains__(self, record_id: object) -> bool:
        return isinstance(record_id, str) and self.get(record_id) is not None

    def records(self) -> list[ProvRecord]:
        """Every record this recorder sees (its parent's, its store's, its own)."""
        seen: dict[str, ProvRecord] = {}
        if self._parent is not None:
            seen.update((r.id, r) for r in self._parent.records())
        if self.store is not None:
            seen.update((r.id, r) for r in self.store.provenance_records())
        seen.update(self._own)
        return sorted(seen.values(), key=lambda r: r.time)

    def chain(self, entity_id: str) -> list[ProvRecord]:
        """The records from the raw files to ``entity_id``, each after what it used.

        Walks back from the entity to the activity that generated it, to the entities
        that activity used, and so on to entities nobody generated (raw files). This is
        what ``twinweave provenance ID`` prints.

        Raises
        ------
        KeyError
            If this recorder does not know ``entity_id``.
        """
        if self.get(entity_id) is None:
            raise KeyError(
                f"unknown provenance id {entity_id!r}: not recorded by this recorder"
                + ("" if self.store is None else " nor in its store")
            )
        ordered: dict[str, ProvRecord] = {}
        # Depth-first with an explicit stack: chains of many fits would exceed the
        # recursion limit. A node is emitted after its inputs (post-order).
        stack: list[tuple[str, bool]] = [(entity_id, False)]
        while stack:
            record_id, expanded = stack.pop()
            if record_id in ordered:
                continue
            record = self.get(record_id)
            if record is None:
                continue
            if expanded:
                ordered[record_id] = record
                continue
            stack.append((record_id, True))
            parents: Iterable[str] = (
                record.used
                if record.category == "activity"
                else ([] if record.generated_by is None else [record.generated_by])
            )
            stack.extend((p, False) for p in reversed(tuple(parents)) if p not in ordered)
        return list(ordered.values())

    # -- export ------------------------------------------------------------------------
    def to_document(self, records: Iterable[ProvRecord] | None = None) -> prov.model.ProvDocument:
        """A PROV document of ``records`` (default: every record this recorder sees).

        Entities and activities carry ``prov:type`` ``tw:<kind>`` and their attributes
        as ``tw:<name>``; generation, usage and derivation are PROV relations.
        """
        chosen = self.records() if records is None else list(records)
        document = prov.model.ProvDocument()
        tw = document.add_namespace("tw", NAMESPACE)
        for kind in sorted({r.kind for r in chosen}):
            document.add_namespace(kind, f"{NAMESPACE}{kind}:")
        by_id = {r.id: r for r in chosen}

        def attributes(record: ProvRecord) -> dict[Any, Any]:
            values: dict[Any, Any] = {prov.model.PROV_TYPE: tw[record.kind]}
            for key, value in record.attributes.items():
                if value is None:
                    continue
                values[tw[key]] = json.dumps(value) if isinstance(value, list) else value
            return values

        for record in chosen:
            if record.category == "entity":
                document.entity(record.id, attributes(record))
            else:
                document.activity(record.id, record.time, record.time, attributes(record))
        for record in chosen:
            if record.category != "activity":
                continue
            inputs = [u for u in record.used if u in by_id]
            for used in inputs:
                document.used(record.id, used, record.time)
            for output in record.generated:
                if output not in by_id:
                    continue
                document.wasGeneratedBy(output, record.id, record.time)
                for used in inputs:
                    document.wasDerivedFrom(output, used, record.id)
        return document

    def to_json(self, records: Iterable[ProvRecord] | None = None, *, indent: int = 2) -> str:
        """PROV-JSON of ``records`` (default: every record this recorder sees)."""
        buffer = io.StringIO()
        self.to_document(records).serialize(buffer, format="json", indent=indent)
        return buffer.getvalue()

    # -- internals ---------------------------------------------------------------------
    def _new_id(self, kind: str) -> str:
        # 48 random bits: short enough to read and type; a collision is likely only
        # after about 16 million ids (birthday bound). One taken already, here, in the
        # store or by the parent, is drawn again: the store keeps the first record of
        # an id (a chain copied in again is left as it is), so a second would be lost.
        while True:
            candidate = f"{kind}:{secrets.token_hex(6)}"
            if candidate not in self:
                return candidate

    def _write(self, records: Sequence[ProvRecord]) -> None:
        if self.store is not None:
            self.store.write_provenance(records)
        for record in records:
            self._own[record.id] = record

    def adopt(self, records: Iterable[ProvRecord]) -> None:
        """Take in records made elsewhere (by a store's ingest, or another recorder).

        Records this recorder already sees are skipped; the rest are kept and, if this
        recorder has a store, persisted there.
        """
        new = [r for r in records if self.get(r.id) is None]
        if new:
            self._write(new)

    def own_records(self) -> list[ProvRecord]:
        """Records written by this recorder itself (for a fork: what the branch did)."""
        return list(self._own.values())

    def __repr__(self) -> str:
        where = "memory" if self.store is None else repr(self.store)
        fork = ", fork" if self._parent is not None else ""
        return f"Recorder({len(self._own)} own records, {where}{fork})"
