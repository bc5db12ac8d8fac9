"""Independent Python oracles of cht-pipeline's base models (sql/base), computed from CHT docs as
CouchDB returns them, each with the database it came from, never from the tables.

Docs are read with `parse_float=Decimal`, so that numbers print the way PostgreSQL prints the
jsonb numbers it was given. `saved_timestamp` is when the replica stored a doc: the oracles take
it from the caller (`saved`, by source and id), the one value no doc holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.support.oracles_activity import telemetry_date

Doc = dict[str, Any]
Row = dict[str, Any]
CONTACT_TYPES = ("contact", "clinic", "district_hospital", "health_center", "person")
EPOCH_MS = re.compile(r"^\s*([0-9]{1,15}|-[0-9]{1,14})(\.[0-9]+)?\s*$")


@dataclass(frozen=True)
class Sourced:
    """A live doc and the database (raw.couchdb_docs.source) it was replicated from."""

    source: str
    doc: Doc


Saved = Mapping[tuple[str, str], datetime]


def jsonb_text(value: Any) -> str:
    """PostgreSQL's text of a jsonb value: object keys by length then bytes, `, ` and `: `."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return (
            "{"
            + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(value[k])}" for k in keys)
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(map(jsonb_text, value)) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return scalar_text(value)


def scalar_text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return "null" if value is None else str(value)


def text(value: Any) -> str | None:
    """`->>` / `#>>`: strings as they are, other values as jsonb text, JSON null as NULL."""
    if value is None or isinstance(value, str):
        return value
    return jsonb_text(value) if isinstance(value, (dict, list)) else scalar_text(value)


def at(doc: Doc, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def path_text(doc: Doc, *path: str) -> str | None:
    return text(at(doc, *path))


def reported(doc: Doc) -> datetime | None:
    """`reported_date` (epoch ms, a number or a numeric string) to the whole second, toward zero."""
    value = text(doc.get("reported_date"))
    if value is None or not EPOCH_MS.match(value):
        return None
    seconds = int(Decimal(value.strip()) / 1000)  # int() truncates toward zero, like bigint / 1000
    return datetime.fromtimestamp(seconds, UTC)


def winners(docs: Iterable[Sourced], keep: Callable[[Doc], bool] = lambda doc: True) -> list[Sourced]:
    """One doc per `_id` among those kept: a `_users` account (type `user`) yields to any other doc,
    then the database first by name (bytewise)."""
    by_id: dict[str, Sourced] = {}
    for item in docs:
        if keep(item.doc):
            current = by_id.get(item.doc["_id"])
            if current is None or precedence(item) < precedence(current):
                by_id[item.doc["_id"]] = item
    return list(by_id.values())


def precedence(item: Sourced) -> tuple[bool, bytes]:
    return item.doc.get("type") == "user", item.source.encode()


def is_contact(doc: Doc) -> bool:
    return doc.get("type") in CONTACT_TYPES


def contact_type(doc: Doc) -> str | None:
    return first_text(doc, ("contact_type",), ("type",))


def configured_types(docs: Iterable[Sourced]) -> list[Doc]:
    """The settings docs' `settings.contact_types` entries."""
    found: list[Doc] = []
    for item in docs:
        if item.doc["_id"] == "settings":
            types = at(item.doc, "settings", "contact_types")
            found += [entry for entry in types if isinstance(entry, dict)] if isinstance(types, list) else []
    return found


def person_types(docs: Iterable[Sourced]) -> set[str]:
    configured = configured_types(docs)
    flagged = {text(e.get("id")) for e in configured if text(e.get("person")) == "true"}
    return {"person"} | (flagged - {None})


def base_rows(docs: Sequence[Sourced], saved: Saved) -> dict[str, list[Row]]:
    """Every base relation's rows, by relation name."""

    def row(item: Sourced, key: str = "uuid") -> Row:
        return {key: item.doc["_id"], "saved_timestamp": saved[(item.source, item.doc["_id"])]}

    persons = person_types(docs)
    contacts = winners(docs, is_contact)
    person_docs = [c for c in contacts if contact_type(c.doc) in persons]
    telemetry = winners(docs, lambda d: d.get("type") == "telemetry")
    return {
        "document_metadata": [
            {
                **row(item),
                "_deleted": False,
                "doc_type": path_text(item.doc, "type"),
                "instance": item.source.split("/")[0] if "/" in item.source else None,
                "dbname": item.source.split("/")[-1],
            }
            for item in winners(docs)
        ],
        "contact": [
            {
                **row(item),
                "reported": reported(item.doc),
                "parent_uuid": path_text(item.doc, "parent", "_id"),
                "name": path_text(item.doc, "name"),
                "contact_type": contact_type(item.doc),
                "active": path_text(item.doc, "is_active"),
                "notes": path_text(item.doc, "notes"),
                "muted": path_text(item.doc, "muted") or None,
            }
            for item in contacts
        ],
        "contact_type": contact_type_rows(docs, {contact_type(c.doc) for c in contacts}),
        "person": [
            {
                **row(item),
                "sex": path_text(item.doc, "sex"),
                "patient_id": path_text(item.doc, "patient_id"),
                "phone": path_text(item.doc, "phone"),
                "phone2": path_text(item.doc, "alternative_phone"),
            }
            for item in person_docs
        ],
        "place": [
            {
                **row(item),
                "place_id": path_text(item.doc, "place_id"),
                "contact_id": path_text(item.doc, "contact", "_id"),
            }
            for item in contacts
            if contact_type(item.doc) not in persons
        ],
        "patient": [
            {**row(item), "patient_id": path_text(item.doc, "patient_id")}
            for item in person_docs
            if item.doc.get("patient_id") is not None
        ],
        "data_record": [
            data_record_row(item, row(item))
            for item in winners(docs, lambda d: d.get("type") == "data_record")
        ],
        "user": [
            {
                **row(item, "user_id"),
                "contact_uuid": first_text(item.doc, ("contact_id",), ("facility_id",)),
                "language": path_text(item.doc, "language"),
                "roles": path_text(item.doc, "roles"),
            }
            for item in winners(docs, lambda d: d.get("type") == "user-settings")
        ],
        "feedback": [
            {
                **row(item),
                "source": path_text(item.doc, "meta", "source"),
                "url": path_text(item.doc, "meta", "url"),
                "user_name": path_text(item.doc, "meta", "user", "name"),
                "period_start": path_text(item.doc, "meta", "time"),
                "cause": first_text(item.doc, ("info", "cause"), ("info",)),
                "message": path_text(item.doc, "info", "message"),
            }
            for item in winners(docs, lambda d: d.get("type") == "feedback")
        ],
        "telemetry": [telemetry_row(item, row(item)) for item in telemetry],
        "telemetry_devices": [devices_row(item, row(item)) for item in telemetry],
    }


def first_text(doc: Doc, *paths: tuple[str, ...]) -> str | None:
    """COALESCE over paths: the first that is not NULL."""
    return next((found for path in paths if (found := path_text(doc, *path)) is not None), None)


def contact_type_rows(docs: Sequence[Sourced], used: set[str | None]) -> list[Row]:
    configured = configured_types(docs)
    ids = {text(entry.get("id")) for entry in configured}
    rows = [
        {
            "id": text(entry.get("id")),
            "person": text(entry.get("id")) == "person" or text(entry.get("person")) == "true",
            "configured": True,
        }
        for entry in configured
    ]
    return rows + [{"id": t, "person": t == "person", "configured": False} for t in used - ids]


def data_record_row(item: Sourced, row: Row) -> Row:
    doc = item.doc
    return {
        **row,
        "reported": reported(doc),
        "form": path_text(doc, "form"),
        "from_phone": path_text(doc, "from"),
        "patient_id": first_text(doc, ("patient_id",), ("fields", "patient_id"), ("fields", "patient_uuid")),
        "place_id": first_text(doc, ("place_id",), ("fields", "place_id")),
        "contact_uuid": path_text(doc, "contact", "_id"),
        "parent_uuid": path_text(doc, "contact", "parent", "_id"),
        "grandparent_uuid": path_text(doc, "contact", "parent", "parent", "_id"),
    }


def period_start(doc: Doc) -> datetime | None:
    meta = doc.get("metadata")
    day = telemetry_date(meta) if isinstance(meta, dict) else None
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


def telemetry_row(item: Sourced, row: Row) -> Row:
    doc = item.doc
    return {
        **row,
        "period_start": period_start(doc),
        "user_name": path_text(doc, "metadata", "user"),
        "app_version": path_text(doc, "metadata", "versions", "app"),
        "boot_time_min": path_text(doc, "metrics", "boot_time", "min"),
        "boot_time_max": path_text(doc, "metrics", "boot_time", "max"),
        "boot_time_count": path_text(doc, "metrics", "boot_time", "count"),
        "doc_count_on_local_db": path_text(doc, "dbInfo", "doc_count"),
    }


def devices_row(item: Sourced, row: Row) -> Row:
    info = at(item.doc, "device", "deviceInfo")
    return {
        **row,
        "period_start": period_start(item.doc),
        "device_manufacturer": path_text(info, "hardware", "manufacturer"),
        "device_model": path_text(info, "hardware", "model"),
        "user_agent": path_text(item.doc, "device", "userAgent"),
        "cht_android_version": path_text(info, "app", "version"),
        "android_version": path_text(info, "software", "androidVersion"),
        "storage_free": path_text(info, "storage", "free"),
        "storage_total": path_text(info, "storage", "total"),
        "network_up_speed": path_text(info, "network", "upSpeed"),
        "network_down_speed": path_text(info, "network", "downSpeed"),
    }


def dangling_contacts(rows: Iterable[Row], column: str, docs: Sequence[Sourced]) -> set[str]:
    """Values of `column` that name no live contact doc (what the WARN reference checks find)."""
    contact_ids = {item.doc["_id"] for item in docs if is_contact(item.doc)}
    return {row[column] for row in rows if row[column] is not None and row[column] not in contact_ids}
