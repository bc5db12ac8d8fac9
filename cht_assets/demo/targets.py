"""Target docs (``target~YYYY-MM~...``) and definitions of the default config's targets."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from cht_assets.demo.base import Doc, local_ms, make_rev
from cht_assets.demo.reports import anc_facility_visits, by_patient, field, field_date, is_active_pregnancy

_THIS_MONTH = "targets.this_month.subtitle"
_ALL_TIME = "targets.all_time.subtitle"


def target_definitions() -> list[Doc]:
    """``settings.tasks.targets.items`` as cht-conf compiles the default config's targets.js."""

    def item(target_id: str, kind: str, icon: str, goal: int, key: str, subtitle: str) -> Doc:
        return {
            "id": target_id,
            "type": kind,
            "icon": icon,
            "goal": goal,
            "translation_key": key,
            "subtitle_translation_key": subtitle,
        }

    return [
        item(
            "deaths-this-month",
            "count",
            "icon-death-general",
            0,
            "targets.death_reporting.deaths.title",
            _THIS_MONTH,
        ),
        item(
            "pregnancy-registrations-this-month",
            "count",
            "icon-pregnancy",
            20,
            "targets.anc.new_pregnancy_registrations.title",
            _THIS_MONTH,
        ),
        item("births-this-month", "count", "icon-infant", -1, "targets.births.title", _THIS_MONTH),
        item(
            "active-pregnancies",
            "count",
            "icon-pregnancy",
            -1,
            "targets.anc.active_pregnancies.title",
            _ALL_TIME,
        ),
        item(
            "active-pregnancies-1+-visits",
            "count",
            "icon-clinic",
            -1,
            "targets.anc.active_pregnancies_1p_visits.title",
            _ALL_TIME,
        ),
        item(
            "facility-deliveries",
            "percent",
            "icon-mother-child",
            -1,
            "targets.anc.facility_deliveries.title",
            _ALL_TIME,
        ),
        item(
            "active-pregnancies-4+-visits",
            "count",
            "icon-clinic",
            -1,
            "targets.anc.active_pregnancies_4p_visits.title",
            _ALL_TIME,
        ),
        item(
            "active-pregnancies-8+-contacts",
            "count",
            "icon-follow-up",
            -1,
            "targets.anc.active_pregnancies_8p_contacts.title",
            _ALL_TIME,
        ),
    ]


def target_docs(
    seed: int,
    rng: random.Random,
    username: str,
    chw_contact_id: str,
    reports: Sequence[Doc],
    today: date,
    months: int = 6,
) -> list[Doc]:
    """One doc per month (the last ``months``, this one included), values as of the month's last update."""
    user = f"org.couchdb.user:{username}"
    docs = []
    for first in _months(today, months):
        last = min(_next_month(first) - timedelta(days=1), today)
        updated = local_ms(last, rng.randint(17 * 60, 20 * 60 - 1))
        period = first.strftime("%Y-%m")
        doc_id = f"target~{period}~{chw_contact_id}~{user}"
        generation = min(2 + (last - first).days // 3, 2 + rng.randint(3, 9))
        docs.append(
            {
                "_id": doc_id,
                "_rev": make_rev(seed, doc_id, generation),
                "type": "target",
                "user": user,
                "owner": chw_contact_id,
                "reporting_period": period,
                "updated_date": updated,
                "targets": target_values(reports, first, updated),
            }
        )
    return docs


def target_values(reports: Sequence[Doc], month: date, at_ms: int) -> list[Doc]:
    """The default config's target values for ``month`` as calculated at ``at_ms``."""
    submitted = [r for r in reports if r["reported_date"] <= at_ms]
    deliveries = [r for r in submitted if r.get("form") == "delivery"]
    in_month = _in_month(month)
    deaths = _dead(submitted)
    births = sum(
        int(field(r, "delivery_outcome.babies_alive") or 0)
        for r in deliveries
        if in_month(field_date(r, "delivery_outcome.delivery_date"))
    )
    registrations = sum(
        1
        for r in submitted
        if r.get("form") == "pregnancy" and field(r, "lmp_date_8601") and in_month(_day(r["reported_date"]))
    )
    active = _active_pregnancies(submitted, at_ms)
    with_place = [r for r in deliveries if field(r, "delivery_outcome.delivery_place")]
    at_facility = sum(
        1 for r in with_place if field(r, "delivery_outcome.delivery_place") == "health_facility"
    )
    return [
        _count("deaths-this-month", sum(1 for day in deaths.values() if in_month(day))),
        _count("pregnancy-registrations-this-month", registrations),
        _count("births-this-month", births),
        _count("active-pregnancies", len(active)),
        _count("active-pregnancies-1+-visits", sum(1 for visits, _ in active if visits > 0)),
        _percent("facility-deliveries", at_facility, len(with_place)),
        _count("active-pregnancies-4+-visits", sum(1 for visits, _ in active if visits > 3)),
        _count(
            "active-pregnancies-8+-contacts", sum(1 for visits, contacts in active if visits + contacts > 7)
        ),
    ]


def _active_pregnancies(reports: Sequence[Doc], at_ms: int) -> list[tuple[int, int]]:
    """(facility visits, 1 + home visits) per active pregnancy of a living woman."""
    dead = _dead(reports)
    active = []
    for woman, history in by_patient(reports).items():
        pregnancies = [r for r in history if r.get("form") == "pregnancy"]
        if not pregnancies or woman in dead or not is_active_pregnancy(pregnancies[-1], history, at_ms):
            continue
        pregnancy = pregnancies[-1]
        home_visits = sum(
            1
            for r in history
            if r.get("form") == "pregnancy_home_visit" and r["reported_date"] > pregnancy["reported_date"]
        )
        active.append((anc_facility_visits(pregnancy, history, at_ms), 1 + home_visits))
    return active


def _dead(reports: Sequence[Doc]) -> dict[str, date]:
    """Date of death per person, from death reports not undone by a later undo_death_report."""
    deaths: dict[str, date] = {}
    for person, history in by_patient(reports).items():
        for report in history:
            if report.get("form") == "death_report":
                died = field_date(report, "death_details.date_of_death")
                if died is not None:
                    deaths[person] = died
            elif report.get("form") == "undo_death_report":
                deaths.pop(person, None)
    return deaths


def _count(target_id: str, value: int) -> Doc:
    return {"id": target_id, "value": {"pass": value, "total": value}}


def _percent(target_id: str, passed: int, total: int) -> Doc:
    percent = round(passed * 100 / total) if total else 0
    return {"id": target_id, "value": {"pass": passed, "total": total, "percent": percent}}


def _day(ms: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + (ms + 3 * 3_600_000) // 86_400_000)


def _in_month(month: date) -> Callable[[date | None], bool]:
    return lambda day: day is not None and (day.year, day.month) == (month.year, month.month)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _months(today: date, months: int) -> list[date]:
    firsts = [today.replace(day=1)]
    while len(firsts) < months:
        firsts.insert(0, (firsts[0] - timedelta(days=1)).replace(day=1))
    return firsts
