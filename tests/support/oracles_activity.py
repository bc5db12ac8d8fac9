"""Independent Python oracles of the task, target and user use views, computed from CHT docs
(any mix of medic, medic-users-meta and `_users` docs), never from the views."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

Doc = dict[str, Any]
Row = dict[str, Any]
PLACE_LEVELS = ("district_hospital", "health_center", "clinic")
H_KEYS = ("area_uuids",) + tuple(f"{level}_{part}" for level in PLACE_LEVELS for part in ("uuid", "name"))


def live(docs: Iterable[Doc], doc_type: str) -> list[Doc]:
    return [d for d in docs if d.get("type") == doc_type and not d.get("_deleted")]


def epoch_ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value) / 1000, UTC) if isinstance(value, (int, float)) else None


def iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def hierarchy(docs: Sequence[Doc], uuid: str | None) -> Row:
    """The H columns of one contact: its place chain (itself when a place, then its parents)."""
    by_id = {d["_id"]: d for d in docs if "_id" in d}
    contact = by_id.get(uuid or "")
    if contact is None:
        return dict.fromkeys(H_KEYS)
    chain: list[str] = [] if contact.get("type") == "person" else [contact["_id"]]
    parent = contact.get("parent")
    while isinstance(parent, dict) and parent.get("_id"):
        chain.append(parent["_id"])
        parent = parent.get("parent")
    row: Row = {"area_uuids": chain}
    for level in PLACE_LEVELS:
        found = next((by_id[p] for p in chain if by_id.get(p, {}).get("type") == level), None)
        row[f"{level}_uuid"] = found["_id"] if found else None
        row[f"{level}_name"] = found.get("name") if found else None
    return row


def user_of(doc: Doc) -> str | None:
    user = doc.get("user")
    return user.removeprefix("org.couchdb.user:") if isinstance(user, str) else None


def user_contacts(docs: Sequence[Doc]) -> dict[str, str | None]:
    return {d["name"]: d.get("contact_id") for d in live(docs, "user-settings") if d.get("name")}


def contact_name(docs: Sequence[Doc], uuid: str | None) -> str | None:
    return next((d.get("name") for d in docs if d.get("_id") == uuid and uuid), None)


def translation_rows(docs: Sequence[Doc]) -> list[Row]:
    """(lang, key, text) of CHT's translation docs `messages-<lang>`: per doc `custom` over
    `generic` over `values`, a later doc id over an earlier one; string values only."""
    words: dict[tuple[str, str], str] = {}
    for doc in sorted(
        (d for d in docs if str(d.get("_id", "")).startswith("messages-")), key=lambda d: d["_id"]
    ):
        if doc.get("_deleted"):
            continue
        code = doc.get("code")
        lang = code if isinstance(code, str) and code else doc["_id"].removeprefix("messages-")
        for section in ("values", "generic", "custom"):
            values = doc.get(section)
            if isinstance(values, dict):
                words.update({(lang, k): v for k, v in values.items() if isinstance(v, str)})
    return [{"lang": lang, "key": key, "text": text} for (lang, key), text in words.items()]


def dashboard_language(docs: Sequence[Doc], setting: str | None = None) -> str:
    """DASHBOARD_LANGUAGE, else the settings doc's locale, else en."""
    settings = next((d for d in docs if d.get("_id") == "settings" and not d.get("_deleted")), {})
    return setting or (settings.get("settings") or {}).get("locale") or settings.get("locale") or "en"


def dashboard_words(docs: Sequence[Doc], language: str | None = None) -> dict[str, str]:
    """key -> its words in the dashboards' language, else English (empty words do not count)."""
    chosen = dashboard_language(docs, language)
    rows = translation_rows(docs)
    english = {r["key"]: r["text"] for r in rows if r["lang"] == "en" and r["text"]}
    return {**english, **{r["key"]: r["text"] for r in rows if r["lang"] == chosen and r["text"]}}


def task_rows(docs: Sequence[Doc], language: str | None = None) -> list[Row]:
    contacts = user_contacts(docs)
    words = dashboard_words(docs, language)
    rows = []
    for doc in live(docs, "task"):
        emission, history = doc.get("emission") or {}, doc.get("stateHistory") or []
        user_name = user_of(doc)
        chw = contacts.get(user_name)
        state = doc.get("state")
        state_at = next(
            (epoch_ms(h["timestamp"]) for h in reversed(history) if h.get("state") == state), None
        )
        ready_at = min((epoch_ms(h["timestamp"]) for h in history if h.get("state") == "Ready"), default=None)
        due, end = iso_date(emission.get("dueDate")), iso_date(emission.get("endDate"))
        action = (emission.get("actions") or [{}])[0]
        owner_h = hierarchy(docs, doc.get("owner"))
        h = owner_h if owner_h["area_uuids"] is not None else hierarchy(docs, chw)
        end_of_day = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC) if end else None
        on_time = (
            state == "Completed" and state_at is not None and end_of_day is not None and state_at < end_of_day
        )
        rows.append(
            {
                "uuid": doc["_id"],
                "user_name": user_name,
                "chw_uuid": chw,
                "chw_name": contact_name(docs, chw),
                "owner_uuid": doc.get("owner"),
                "requester_uuid": doc.get("requester"),
                "emission_id": emission.get("_id"),
                "title": emission.get("title"),
                "title_label": words.get(emission.get("title"), emission.get("title")),
                "form": action.get("form"),
                "source_id": (action.get("content") or {}).get("source_id"),
                "authored": epoch_ms(doc.get("authoredOn")),
                "due_date": due,
                "start_date": iso_date(emission.get("startDate")),
                "end_date": end,
                "ready_at": ready_at,
                "state": state,
                "state_at": state_at,
                "completed_on_time": on_time,
                "month": due.replace(day=1) if due else None,
                **h,
            }
        )
    return rows


def task_monthly_rows(docs: Sequence[Doc]) -> list[Row]:
    contacts = user_contacts(docs)
    groups: dict[tuple[str, date | None], list[Row]] = {}
    for task in task_rows(docs):
        groups.setdefault((task["user_name"], task["month"]), []).append(task)
    rows = []
    for (user_name, month), tasks in groups.items():
        chw = contacts.get(user_name)
        completed = sum(t["state"] == "Completed" for t in tasks)
        rows.append(
            {
                "user_name": user_name,
                "chw_uuid": chw,
                "chw_name": contact_name(docs, chw),
                "month": month,
                "tasks_due": len(tasks),
                "completed": completed,
                "completed_on_time": sum(bool(t["completed_on_time"]) for t in tasks),
                "failed": sum(t["state"] == "Failed" for t in tasks),
                "cancelled": sum(t["state"] == "Cancelled" for t in tasks),
                "completion_rate": completed / len(tasks),
                **hierarchy(docs, chw),
            }
        )
    return rows


def target_definitions(docs: Sequence[Doc]) -> dict[str, Doc]:
    settings = next((d for d in docs if d.get("_id") == "settings"), {})
    items = ((settings.get("settings") or {}).get("tasks") or {}).get("targets", {}).get("items") or []
    return {item["id"]: item for item in items if isinstance(item, dict) and "id" in item}


def label(definition: Doc) -> str | None:
    """The definition's translation key, else its name when that is text."""
    return next(
        (v for v in (definition.get("translation_key"), definition.get("name")) if isinstance(v, str)), None
    )


def target_rows(docs: Sequence[Doc], language: str | None = None) -> list[Row]:
    definitions = target_definitions(docs)
    words = dashboard_words(docs, language)
    rows = []
    for doc in live(docs, "target"):
        owner, period = doc.get("owner"), doc.get("reporting_period")
        for target in doc.get("targets") or []:
            value, definition = target.get("value") or {}, definitions.get(target["id"], {})
            passed, total = value.get("pass"), value.get("total")
            percent = value.get("percent")
            if percent is None and total:
                percent = passed * 100 / total
            goal = definition.get("goal")
            goal = goal if isinstance(goal, (int, float)) and goal >= 0 else None
            target_type = definition.get("type") or ("percent" if "percent" in value else "count")
            measured = percent if target_type == "percent" else passed
            rows.append(
                {
                    "uuid": f"{doc['_id']}/{target['id']}",
                    "target_doc_uuid": doc["_id"],
                    "user_name": user_of(doc),
                    "chw_uuid": owner,
                    "chw_name": contact_name(docs, owner),
                    "reporting_period": period,
                    "month": date.fromisoformat(f"{period}-01"),
                    "target_id": target["id"],
                    "pass": passed,
                    "total": total,
                    "percent": percent,
                    "goal": goal,
                    "target_type": target_type,
                    "label": label(definition),
                    "target_label": words.get(label(definition) or "") or label(definition) or target["id"],
                    "met_goal": None if goal is None or measured is None else measured >= goal,
                    **hierarchy(docs, owner),
                }
            )
    return rows


def user_rows(docs: Sequence[Doc], today: date) -> list[Row]:
    accounts = {d["_id"]: d for d in live(docs, "user")}
    reports: dict[str, list[datetime]] = {}
    for report in live(docs, "data_record"):
        contact = report.get("contact")
        when = epoch_ms(report.get("reported_date"))
        if isinstance(contact, dict) and when is not None:  # to the second, as data_record's reported
            reports.setdefault(contact.get("_id"), []).append(when.replace(microsecond=0))
    telemetry: dict[str, tuple[date, str, str | None]] = {}
    for doc in live(docs, "telemetry"):
        meta = doc.get("metadata") or {}
        day = telemetry_date(meta)
        key = (day, doc["_id"], (meta.get("versions") or {}).get("app"))
        if day is not None and (meta.get("user") not in telemetry or key[:2] > telemetry[meta["user"]][:2]):
            telemetry[meta["user"]] = key
    tasks: dict[str, datetime] = {}
    for task in task_rows(docs):
        if task["state_at"] is not None:
            tasks[task["user_name"]] = max(task["state_at"], tasks.get(task["user_name"], task["state_at"]))
    rows = []
    for s in live(docs, "user-settings"):
        a = accounts.get(s["_id"], {})
        facility = s.get("facility_id", a.get("facility_id"))
        facilities = (
            facility if isinstance(facility, list) else [facility] if isinstance(facility, str) else []
        )
        contact = s.get("contact_id", a.get("contact_id"))
        submitted = reports.get(contact, [])
        tele = telemetry.get(s["name"])
        candidates = [
            max(submitted, default=None),
            datetime.combine(tele[0], datetime.min.time(), UTC) if tele else None,
            tasks.get(s["name"]),
        ]
        last = max((c for c in candidates if c is not None), default=None)
        days = (today - last.date()) if last else None
        rows.append(
            {
                "user_name": s["name"],
                "user_id": s["_id"],
                "fullname": s.get("fullname", a.get("fullname")),
                "email": s.get("email", a.get("email")),
                "phone": s.get("phone", a.get("phone")),
                "roles": sorted(set(s.get("roles") or []) | set(a.get("roles") or [])),
                "facility_uuid": facilities[0] if facilities else None,
                "facility_uuids": facilities,
                "contact_uuid": contact,
                "language": s.get("language"),
                "known": s.get("known"),
                "first_report": min(submitted, default=None),
                "last_report": max(submitted, default=None),
                "last_telemetry_date": tele[0] if tele else None,
                "app_version": tele[2] if tele else None,
                "last_activity": last,
                "days_since_last_activity": days.days if days is not None else None,
                "active_7d": days is not None and days.days < 7,
                **hierarchy(docs, facilities[0] if facilities else None),
            }
        )
    return rows


def telemetry_date(meta: Doc) -> date | None:
    """The first day a telemetry doc covers (months 0-based before app 3.8.0 when no day is given)."""
    try:
        year, month, day = int(meta["year"]), int(meta["month"]), meta.get("day")
    except (KeyError, TypeError, ValueError):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", str((meta.get("versions") or {}).get("app", "")))
    if day in (None, "") and (found is None or tuple(map(int, found.groups())) < (3, 8, 0)):
        month += 1
    try:
        return date(year, month, int(day or 1))
    except ValueError:
        return None


def target_area_rows(docs: Sequence[Doc], language: str | None = None) -> list[Row]:
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for target in target_rows(docs, language):
        groups.setdefault(
            (target["health_center_uuid"], target["reporting_period"], target["target_id"]), []
        ).append(target)
    rows = []
    for (center, period, target_id), targets in groups.items():
        first = targets[0]
        passed, total = sum(t["pass"] for t in targets), sum(t["total"] for t in targets)
        h = hierarchy(docs, center)
        rows.append(
            {
                "health_center_uuid": center,
                "health_center_name": h["health_center_name"],
                "district_hospital_uuid": h["district_hospital_uuid"],
                "district_hospital_name": h["district_hospital_name"],
                "area_uuids": h["area_uuids"],
                "month": first["month"],
                "reporting_period": period,
                "target_id": target_id,
                "label": first["label"],
                "target_label": min(
                    (t["target_label"] for t in targets if t["target_label"] is not None), default=None
                ),
                "target_type": first["target_type"],
                "goal": first["goal"],
                "chws": len({t["user_name"] for t in targets}),
                "pass": passed,
                "total": total,
                "percent": passed * 100 / total if total else None,
                "chws_meeting_goal": len({t["user_name"] for t in targets if t["met_goal"]}),
            }
        )
    return rows
