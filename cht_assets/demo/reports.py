"""Reading demo reports the way the default config's nools-extras do (shared by tasks and targets)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from cht_assets.demo.base import DAY_MS, Doc, local_ms

MAX_DAYS_IN_PREGNANCY = 42 * 7
_ENDED_VISITS = ("miscarriage", "abortion", "refused", "migrated")


def field(report: Doc, path: str) -> Any:
    """``getField``: a dotted path under ``fields`` (None when absent)."""
    value: Any = report.get("fields") or {}
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def field_date(report: Doc, path: str) -> date | None:
    value = field(report, path)
    return date.fromisoformat(value[:10]) if isinstance(value, str) and value else None


def patient(report: Doc) -> str:
    return str(field(report, "patient_uuid") or field(report, "inputs.contact._id") or "")


def midnight_ms(day: date) -> int:
    return local_ms(day, 0)


def by_patient(reports: Sequence[Doc]) -> dict[str, list[Doc]]:
    """Reports per patient, oldest first."""
    grouped: dict[str, list[Doc]] = defaultdict(list)
    for report in sorted(reports, key=lambda r: (r["reported_date"], r["_id"])):
        grouped[patient(report)].append(report)
    return grouped


def pregnancy_end_ms(pregnancy: Doc, history: Sequence[Doc]) -> int | None:
    """When the pregnancy stopped being followed: delivery, new pregnancy, death, or an ending visit."""
    for report in history:
        if report["reported_date"] <= pregnancy["reported_date"]:
            continue
        form = report.get("form")
        ending_visit = form == "pregnancy_home_visit" and (
            field(report, "pregnancy_summary.visit_option") in _ENDED_VISITS
        )
        if form in ("delivery", "pregnancy", "death_report") or ending_visit:
            return int(report["reported_date"])
    return None


def is_active_pregnancy(pregnancy: Doc, history: Sequence[Doc], at_ms: int) -> bool:
    """``isActivePregnancy`` as of ``at_ms`` (only reports submitted by then count)."""
    lmp = field_date(pregnancy, "lmp_date_8601")
    if lmp is None or pregnancy["reported_date"] > at_ms:
        return False
    if midnight_ms(lmp + timedelta(days=MAX_DAYS_IN_PREGNANCY)) + DAY_MS <= at_ms:
        return False
    ended = pregnancy_end_ms(pregnancy, history)
    return ended is None or ended > at_ms


def anc_facility_visits(pregnancy: Doc, history: Sequence[Doc], at_ms: int) -> int:
    """``countANCFacilityVisits``: past visits at registration plus those reported at home visits."""
    count = int(field(pregnancy, "anc_visits_hf.anc_visits_hf_past.visited_hf_count") or 0)
    for visit in history:
        if (
            visit.get("form") != "pregnancy_home_visit"
            or not pregnancy["reported_date"] < visit["reported_date"] <= at_ms
        ):
            continue
        past = "anc_visits_hf.anc_visits_hf_past."
        if field(visit, past + "last_visit_attended") == "yes":
            count += 1
        if field(visit, past + "report_other_visits") == "yes":
            count += int(field(visit, past + "visited_hf_count") or 0)
    return count
