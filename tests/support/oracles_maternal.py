"""The maternal use views computed in Python straight from CHT docs (never from the views).

`maternal_oracle(docs, today, tz)` takes the live docs of a deployment (contacts and reports;
CHT's default config field paths) and returns, per use view, its rows by uuid, with the
columns contracted for useview_pregnancy, useview_delivery and useview_death. It reads the
docs the way CHT writes them, so it serves the real sample docs and generated demo data alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

Doc = Mapping[str, Any]
Row = dict[str, Any]
PLACE_LEVELS = ("district_hospital", "health_center", "clinic")
CONTACT_TYPES = {"contact", "person", "clinic", "health_center", "district_hospital"}
DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})")
INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OVERDUE_AFTER_EDD = timedelta(weeks=2)
LOST_AFTER_EDD = timedelta(weeks=6)
LOST_WITHOUT_EDD = timedelta(weeks=48)


def field(doc: Doc, path: str) -> Any:
    """`fields` value at a slash path (`delivery_outcome/delivery_date`); '' and absent are None."""
    node: Any = doc.get("fields") or {}
    for key in path.split("/"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return None if node == "" else node


def as_date(value: Any) -> date | None:
    match = DATE.match(value) if isinstance(value, str) else None
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None


def as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and INTEGER.match(value) else None


def reported(doc: Doc) -> datetime:
    return EPOCH + timedelta(milliseconds=doc["reported_date"])


def patient_of(doc: Doc) -> str | None:
    return field(doc, "patient_uuid") or field(doc, "inputs/contact/_id")


def lineage(doc: Doc) -> list[str]:
    ids, node = [], doc.get("parent")
    while isinstance(node, Mapping) and node.get("_id"):
        ids.append(node["_id"])
        node = node.get("parent")
    return ids


class Deployment:
    """The docs of one deployment: contacts by id and live reports by form, oldest first."""

    def __init__(self, docs: Iterable[Doc]) -> None:
        live = [doc for doc in docs if not doc.get("_deleted")]
        self.contacts = {doc["_id"]: doc for doc in live if doc.get("type") in CONTACT_TYPES}
        self.reports: dict[str, list[Doc]] = defaultdict(list)
        for doc in live:
            if doc.get("type") == "data_record" and doc.get("form") and "reported_date" in doc:
                self.reports[doc["form"]].append(doc)
        for reports in self.reports.values():
            reports.sort(key=lambda doc: (reported(doc), doc["_id"]))

    def contact_type(self, uuid: str) -> str | None:
        contact = self.contacts.get(uuid)
        return (contact.get("contact_type") or contact.get("type")) if contact else None

    def patient(self, doc: Doc) -> Row:
        """patient_uuid, patient_name and the hierarchy columns of the report's patient."""
        uuid = patient_of(doc)
        contact = self.contacts.get(uuid) if uuid else None
        row: Row = {
            "patient_uuid": uuid,
            "patient_name": (contact or {}).get("name") or field(doc, "patient_name"),
        }
        area = lineage(contact) if contact else None
        row["area_uuids"] = area
        for level in PLACE_LEVELS:
            place = next((p for p in area or () if self.contact_type(p) == level), None)
            row[f"{level}_uuid"] = place
            row[f"{level}_name"] = self.contacts[place].get("name") if place else None
        return row


# The English labels (itext, lang en) of the default config's choices, as written in its XForms
# (delivery.xml: places, woman outcomes; pregnancy.xml: how the pregnancy was dated). The
# dashboards' language is the sample's locale, en.
CHOICE_WORDS = {
    "health_facility": "Health facility",
    "home": "Home",
    "other": "Other",
    "alive_well": "Alive and well",
    "alive_unwell": "Alive and unwell",
    "deceased": "Deceased",
    "method_lmp": "Last menstrual period (LMP)",
    "method_approx": "Current weeks or months pregnant",
    "method_edd": "Expected date of delivery (EDD)",
    "method_none": "No information is known",
}


def words(code: Any) -> Any:
    """A choice's words, else the code itself (NULL stays NULL)."""
    return CHOICE_WORDS.get(code, code) if isinstance(code, str) else code


def delivery_row(deployment: Deployment, doc: Doc) -> Row:
    return {
        "uuid": doc["_id"],
        **deployment.patient(doc),
        "reported": reported(doc),
        "delivery_date": as_date(field(doc, "delivery_outcome/delivery_date")),
        "delivery_place": field(doc, "delivery_outcome/delivery_place"),
        "delivery_place_label": words(field(doc, "delivery_outcome/delivery_place")),
        "babies_delivered": as_int(field(doc, "delivery_outcome/babies_delivered_num")),
        "babies_alive": as_int(field(doc, "delivery_outcome/babies_alive_num")),
        "babies_deceased": as_int(field(doc, "delivery_outcome/babies_deceased_num")),
        "woman_outcome": field(doc, "condition/woman_outcome"),
        "woman_outcome_label": words(field(doc, "condition/woman_outcome")),
    }


def has_danger_sign(doc: Doc) -> bool:
    return field(doc, "danger_signs/r_danger_sign_present") == "yes"


def pregnancy_state(delivered: bool, edd: date | None, registered: date, today: date) -> str:
    if delivered:
        return "delivered"
    if (edd and today > edd + LOST_AFTER_EDD) or (edd is None and today > registered + LOST_WITHOUT_EDD):
        return "lost_to_follow_up"
    if edd and today > edd + OVERDUE_AFTER_EDD:
        return "overdue"
    return "active"


def in_span(doc: Doc, patient: str | None, start: datetime, end: datetime | None) -> bool:
    """A report of the patient from `start` up to (not including) `end`, the next registration."""
    at = reported(doc)
    return patient is not None and patient_of(doc) == patient and at >= start and (end is None or at < end)


def pregnancy_rows(deployment: Deployment, today: date, tz: tzinfo) -> dict[str, Row]:
    by_patient: dict[str | None, list[Doc]] = defaultdict(list)
    for doc in deployment.reports["pregnancy"]:
        by_patient[patient_of(doc)].append(doc)
    visits = deployment.reports["pregnancy_home_visit"]
    follow_ups = [*visits, *deployment.reports["pregnancy_danger_sign"]]
    rows = {}
    for patient, registrations in by_patient.items():
        for index, doc in enumerate(registrations):
            start = reported(doc)
            end = reported(registrations[index + 1]) if index + 1 < len(registrations) else None

            delivery = next(
                (d for d in deployment.reports["delivery"] if in_span(d, patient, start, end)), None
            )
            closed = reported(delivery) if delivery else None
            span = [
                f
                for f in follow_ups
                if in_span(f, patient, start, end) and (closed is None or reported(f) <= closed)
            ]
            edd = as_date(field(doc, "edd_8601"))
            outcome = delivery_row(deployment, delivery) if delivery else {}
            rows[doc["_id"]] = {
                "uuid": doc["_id"],
                **deployment.patient(doc),
                "reported": start,
                "lmp_date": as_date(field(doc, "lmp_date_8601")),
                "edd": edd,
                "gestational_age_weeks": as_int(field(doc, "weeks_since_lmp_rounded")),
                "lmp_method": field(doc, "gestational_age/register_method/lmp_method"),
                "lmp_method_label": words(field(doc, "gestational_age/register_method/lmp_method")),
                "anc_visits": sum(1 for f in span if f.get("form") == "pregnancy_home_visit"),
                "danger_signs": sum(map(has_danger_sign, span)) + has_danger_sign(doc),
                "delivered": delivery is not None,
                "delivery_uuid": outcome.get("uuid"),
                "delivery_date": outcome.get("delivery_date"),
                "delivery_place": outcome.get("delivery_place"),
                "delivery_place_label": outcome.get("delivery_place_label"),
                "babies_alive": outcome.get("babies_alive"),
                "babies_deceased": outcome.get("babies_deceased"),
                "woman_outcome": outcome.get("woman_outcome"),
                "woman_outcome_label": outcome.get("woman_outcome_label"),
                "state": pregnancy_state(delivery is not None, edd, start.astimezone(tz).date(), today),
            }
    return rows


def death_rows(deployment: Deployment) -> dict[str, Row]:
    undos = [u for u in deployment.reports["undo_death_report"] if field(u, "undo/undo_information") == "yes"]
    rows = {}
    for doc in deployment.reports["death_report"]:
        patient = patient_of(doc)
        if any(patient_of(u) == patient and reported(u) > reported(doc) for u in undos if patient):
            continue
        rows[doc["_id"]] = {
            "uuid": doc["_id"],
            **deployment.patient(doc),
            "reported": reported(doc),
            "date_of_death": as_date(field(doc, "death_details/date_of_death")),
            "place_of_death": field(doc, "death_details/place_of_death"),
        }
    return rows


def maternal_oracle(docs: Sequence[Doc], today: date, tz: tzinfo = UTC) -> dict[str, dict[str, Row]]:
    """Rows by uuid of useview_pregnancy, useview_delivery and useview_death; `today` and `tz`
    are the database's current_date and TimeZone (the state depends on them)."""
    deployment = Deployment(docs)
    return {
        "useview_pregnancy": pregnancy_rows(deployment, today, tz),
        "useview_delivery": {d["_id"]: delivery_row(deployment, d) for d in deployment.reports["delivery"]},
        "useview_death": death_rows(deployment),
    }
