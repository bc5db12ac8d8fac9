"""Task docs as the default config's rules engine writes them (``task~...``), from a CHW's reports."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from cht_assets.demo.base import DAY_MS, Doc, local_ms, make_rev
from cht_assets.demo.reports import (
    MAX_DAYS_IN_PREGNANCY,
    by_patient,
    field,
    field_date,
    midnight_ms,
    pregnancy_end_ms,
)

_LOOKAHEAD_DAYS = 14  # Draft tasks exist only for the next couple of weeks


@dataclass(frozen=True)
class _Rule:
    name: str
    title: str
    icon: str
    form: str
    label: str | None


_HOME_VISIT = _Rule(
    "anc.pregnancy_home_visit.known_lmp",
    "task.anc.pregnancy_home_visit.title",
    "icon-pregnancy",
    "pregnancy_home_visit",
    "Pregnancy home visit",
)
_DANGER = _Rule(
    "anc.pregnancy_danger_sign_followup",
    "task.anc.pregnancy_danger_sign_followup.title",
    "icon-pregnancy-danger",
    "pregnancy_danger_sign_follow_up",
    None,
)
_DELIVERY = _Rule("anc.delivery", "task.anc.delivery.title", "icon-mother-child", "delivery", None)
_HOME_VISIT_WEEKS = (
    (12, 7, 14),
    (20, 7, 14),
    (26, 7, 14),
    (30, 7, 14),
    (34, 6, 7),
    (36, 6, 7),
    (38, 6, 7),
    (40, 6, 7),
)
_DANGER_FORMS = (
    "pregnancy",
    "pregnancy_home_visit",
    "pregnancy_danger_sign",
    "pregnancy_danger_sign_follow_up",
)


@dataclass(frozen=True)
class _Emission:
    rule: _Rule
    event: str
    source: Doc
    due: date
    start: int
    end: int
    after_ms: int  # resolving reports must be later than this
    ended_ms: int | None  # the pregnancy stopped being followed


def task_docs(
    seed: int, rng: random.Random, username: str, chw_contact_id: str, reports: Sequence[Doc], today: date
) -> list[Doc]:
    """One task doc per emission of the CHW's pregnancies that has been (or is about to be) shown."""
    now_ms = local_ms(today, 20 * 60)
    docs: list[Doc] = []
    for history in by_patient(reports).values():
        for emission in _emissions(history):
            doc = _task_doc(seed, rng, username, chw_contact_id, emission, history, now_ms)
            if doc is not None:
                docs.append(doc)
    return docs


def _emissions(history: Sequence[Doc]) -> list[_Emission]:
    emissions: list[_Emission] = []
    for report in history:
        form, reported = report.get("form"), int(report["reported_date"])
        pregnancy = _pregnancy_of(report, history)
        ended = pregnancy_end_ms(pregnancy, history) if pregnancy is not None else None
        lmp = field_date(report, "lmp_date_8601")
        if form == "pregnancy" and lmp is not None:
            for week, start, end in _HOME_VISIT_WEEKS:
                due = lmp + timedelta(days=week * 7)
                if midnight_ms(due) > reported:
                    emissions.append(
                        _Emission(
                            _HOME_VISIT,
                            f"pregnancy-home-visit-week{week}",
                            report,
                            due,
                            start,
                            end,
                            reported - 1,
                            ended,
                        )
                    )
            due = lmp + timedelta(days=MAX_DAYS_IN_PREGNANCY)
            emissions.append(
                _Emission(_DELIVERY, "delivery-reminder", report, due, 28, 42, reported - 1, ended)
            )
        follow_up = field_date(report, "t_danger_signs_referral_follow_up_date")
        if (
            form in _DANGER_FORMS
            and field(report, "t_danger_signs_referral_follow_up") == "yes"
            and follow_up
        ):
            emissions.append(
                _Emission(
                    _DANGER, "pregnancy-danger-sign-follow-up", report, follow_up, 3, 7, reported, ended
                )
            )
    return emissions


def _pregnancy_of(report: Doc, history: Sequence[Doc]) -> Doc | None:
    """The newest pregnancy registration submitted no later than ``report``."""
    pregnancies = [
        r for r in history if r.get("form") == "pregnancy" and r["reported_date"] <= report["reported_date"]
    ]
    return pregnancies[-1] if pregnancies else None


def _task_doc(
    seed: int,
    rng: random.Random,
    username: str,
    chw_contact_id: str,
    emission: _Emission,
    history: Sequence[Doc],
    now_ms: int,
) -> Doc | None:
    source = emission.source
    window_start = max(midnight_ms(emission.due - timedelta(days=emission.start)), emission.after_ms + 1)
    window_end = midnight_ms(emission.due + timedelta(days=emission.end + 1))
    if window_start > now_ms + _LOOKAHEAD_DAYS * DAY_MS:
        return None
    calculated = window_start - rng.randint(1, 7) * DAY_MS + rng.randint(0, 59) * 60_000
    authored = max(source["reported_date"] + 60_000, min(calculated, now_ms - rng.randint(1, 600) * 60_000))
    if emission.ended_ms is not None and emission.ended_ms <= authored:
        return None  # the pregnancy was over before the task was ever calculated
    done = next(
        (
            int(r["reported_date"])
            for r in history
            if r.get("form") == emission.rule.form and window_start <= r["reported_date"] < window_end
        ),
        None,
    )
    history_states = [{"state": "Draft", "timestamp": authored}] if authored < window_start else []
    ready = max(window_start, authored)
    final: tuple[str, int] | None = None
    if done is not None and done <= now_ms and (emission.ended_ms is None or done <= emission.ended_ms):
        final = ("Completed", done)
    elif emission.ended_ms is not None and emission.ended_ms < min(window_end, now_ms):
        final = ("Cancelled", emission.ended_ms)
    elif window_end <= now_ms:
        final = ("Failed", min(window_end + rng.randint(1, 20) * 3_600_000, now_ms))
    if ready <= now_ms and (final is None or final[1] >= ready):
        history_states.append({"state": "Ready", "timestamp": ready})
    if final is not None:
        history_states.append({"state": final[0], "timestamp": final[1]})
    if not history_states:
        history_states.append({"state": "Draft", "timestamp": authored})
    return _doc(seed, username, chw_contact_id, emission, authored, history_states)


def _doc(
    seed: int, username: str, chw_contact_id: str, emission: _Emission, authored: int, states: list[Doc]
) -> Doc:
    source, rule = emission.source, emission.rule
    user = f"org.couchdb.user:{username}"
    emission_id = f"{source['_id']}~{emission.event}~{rule.name}"
    doc_id = f"task~{user}~{emission_id}~{authored}"
    owner = str(field(source, "patient_uuid") or field(source, "inputs.contact._id"))
    action: Doc = {
        "type": "report",
        "form": rule.form,
        **({"label": rule.label} if rule.label else {}),
        "content": {"source": "task", "source_id": source["_id"]},
    }
    day = emission.due.isoformat()
    state = states[-1]["state"]
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, len(states)),
        "type": "task",
        "authoredOn": authored,
        "stateHistory": states,
        "user": user,
        "requester": owner,
        "owner": owner,
        "emission": {
            "_id": emission_id,
            "title": rule.title,
            "icon": rule.icon,
            "deleted": False,
            "resolved": state in ("Completed", "Cancelled"),
            "actions": [action],
            "contact": {
                "name": str(field(source, "patient_name") or field(source, "inputs.contact.name") or "")
            },
            "dueDate": day,
            "startDate": (emission.due - timedelta(days=emission.start)).isoformat(),
            "endDate": (emission.due + timedelta(days=emission.end)).isoformat(),
            "forId": owner,
        },
        "state": state,
    }
