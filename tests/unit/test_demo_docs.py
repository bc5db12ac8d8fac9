"""Demo task, target and _users docs: CHT's shapes, consistent with the reports they come from."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cht_assets.demo import targets, tasks, users
from cht_assets.demo.generator import generate

TODAY = date(2024, 6, 30)
SEED = 11
EAT = timezone(timedelta(hours=3))
NOW_MS = int(datetime.combine(TODAY, time(20), EAT).timestamp() * 1000)
Doc = dict[str, Any]


def _midnight(day: str | date) -> int:
    return int(datetime.combine(date.fromisoformat(str(day)), time(), EAT).timestamp() * 1000)


@pytest.fixture(scope="module")
def reports_by_chw() -> dict[str, list[Doc]]:
    grouped: dict[str, list[Doc]] = defaultdict(list)
    for doc in generate(SEED, 150, TODAY)["medic"]:
        if doc.get("type") == "data_record" and doc.get("content_type") == "xml":
            grouped[doc["contact"]["_id"]].append(doc)
    assert grouped
    return dict(grouped)


@pytest.fixture(scope="module")
def task_list(reports_by_chw: dict[str, list[Doc]]) -> list[tuple[Doc, list[Doc]]]:
    return [
        (task, reports)
        for chw, reports in reports_by_chw.items()
        for task in tasks.task_docs(SEED, random.Random(chw), "chw", chw, reports, TODAY)
    ]


def _samples(shared_dir: Path, name: str, doc_type: str) -> list[Doc]:
    return [
        d
        for d in json.loads((shared_dir / "cht-sample-docs" / name).read_text())
        if d.get("type") == doc_type
    ]


def _fields(report: Doc) -> Doc:
    return report["fields"]


def test_task_shape_is_chts(shared_dir: Path, task_list: list[tuple[Doc, list[Doc]]]) -> None:
    sample = _samples(shared_dir, "medic/other.json", "task")[0]
    assert task_list
    for task, _ in task_list:
        assert task.keys() == sample.keys()
        assert task["emission"].keys() == sample["emission"].keys()
        assert (
            task["_id"]
            == f"{task['_id'].split('~')[0]}~org.couchdb.user:chw~{task['emission']['_id']}~{task['authoredOn']}"
        )
        source, _, name = task["emission"]["_id"].split("~")
        assert task["emission"]["actions"][0]["content"] == {"source": "task", "source_id": source}
        assert name.startswith(("anc.",))
        assert task["state"] == task["stateHistory"][-1]["state"]
        stamps = [s["timestamp"] for s in task["stateHistory"]]
        assert stamps == sorted(stamps) and stamps[-1] <= NOW_MS
        assert int(task["_rev"].split("-")[0]) == len(task["stateHistory"])


def test_task_states_follow_the_reports(task_list: list[tuple[Doc, list[Doc]]]) -> None:
    seen = set()
    for task, reports in task_list:
        emission = task["emission"]
        form, patient, state = emission["actions"][0]["form"], emission["forId"], task["state"]
        source = next(r for r in reports if r["_id"] == emission["actions"][0]["content"]["source_id"])
        opens = max(_midnight(emission["startDate"]), source["reported_date"])
        closes = _midnight(date.fromisoformat(emission["endDate"]) + timedelta(days=1))
        # the source itself never resolves its own task (a follow-up asking for another follow-up)
        mine = [r for r in reports if _fields(r).get("patient_uuid") == patient and r is not source]
        matching = [
            r["reported_date"] for r in mine if r["form"] == form and opens <= r["reported_date"] < closes
        ]
        final = task["stateHistory"][-1]["timestamp"]
        seen.add(state)
        if state == "Completed":
            assert final in matching
        elif state == "Failed":
            assert closes <= NOW_MS and not [m for m in matching if m <= final]
        elif state == "Cancelled":
            ended = [r for r in mine if r["reported_date"] == final]
            assert ended and ended[0]["form"] in (
                "delivery",
                "pregnancy",
                "death_report",
                "pregnancy_home_visit",
            )
            assert not [m for m in matching if m < final]
        elif state == "Ready":
            assert final <= NOW_MS < closes and not [m for m in matching if m <= NOW_MS]
        else:
            assert state == "Draft" and opens > NOW_MS
    assert seen == {"Draft", "Ready", "Completed", "Failed", "Cancelled"}


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, EAT).strftime("%Y-%m")


def _expected(reports: Sequence[Doc], period: str, at_ms: int) -> dict[str, tuple[int, int]]:
    done = [r for r in reports if r["reported_date"] <= at_ms]
    deliveries = [_fields(r)["delivery_outcome"] for r in done if r["form"] == "delivery"]
    deaths = {}
    for report in sorted(done, key=lambda r: r["reported_date"]):
        if report["form"] == "death_report":
            deaths[_fields(report)["patient_uuid"]] = _fields(report)["death_details"]["date_of_death"]
        elif report["form"] == "undo_death_report":
            deaths.pop(_fields(report)["patient_uuid"], None)
    registrations = sum(1 for r in done if r["form"] == "pregnancy" and _month(r["reported_date"]) == period)
    births = sum(int(d["babies_alive"]) for d in deliveries if d["delivery_date"].startswith(period))
    facility = sum(1 for d in deliveries if d["delivery_place"] == "health_facility")
    dead = sum(1 for day in deaths.values() if day.startswith(period))
    active = _active(done, set(deaths), at_ms)
    return {
        "active-pregnancies": (active, active),
        "deaths-this-month": (dead, dead),
        "pregnancy-registrations-this-month": (registrations, registrations),
        "births-this-month": (births, births),
        "facility-deliveries": (facility, len(deliveries)),
    }


def _active(done: Sequence[Doc], dead: set[str], at_ms: int) -> int:
    """Newest pregnancy of a living woman, under 42 weeks since LMP, nothing ending it since."""
    newest: dict[str, Doc] = {}
    for report in sorted(done, key=lambda r: r["reported_date"]):
        if report["form"] == "pregnancy":
            newest[_fields(report)["patient_uuid"]] = report
    count = 0
    for woman, pregnancy in newest.items():
        lmp = date.fromisoformat(_fields(pregnancy)["lmp_date_8601"])
        ending = [
            r
            for r in done
            if _fields(r).get("patient_uuid") == woman
            and r["reported_date"] > pregnancy["reported_date"]
            and (
                r["form"] in ("delivery", "death_report")
                or _fields(r).get("pregnancy_summary", {}).get("visit_option", "yes") != "yes"
            )
        ]
        count += woman not in dead and not ending and _midnight(lmp + timedelta(days=295)) > at_ms
    return count


def test_targets_recount_the_reports(shared_dir: Path, reports_by_chw: dict[str, list[Doc]]) -> None:
    sample = _samples(shared_dir, "medic/other.json", "target")[0]
    nonzero = set()
    for chw, reports in reports_by_chw.items():
        docs = targets.target_docs(SEED, random.Random(chw), "chw", chw, reports, TODAY, months=6)
        assert [d["reporting_period"] for d in docs] == [f"2024-{m:02d}" for m in range(1, 7)]
        for doc in docs:
            assert doc.keys() == sample.keys()
            assert doc["_id"] == f"target~{doc['reporting_period']}~{chw}~org.couchdb.user:chw"
            assert int(doc["_rev"].split("-")[0]) > 1
            assert _month(doc["updated_date"]) == doc["reporting_period"] and doc["updated_date"] <= NOW_MS
            values = {t["id"]: (t["value"]["pass"], t["value"]["total"]) for t in doc["targets"]}
            for target_id, expected in _expected(
                reports, doc["reporting_period"], doc["updated_date"]
            ).items():
                assert values[target_id] == expected, (doc["_id"], target_id)
                if expected[1]:
                    nonzero.add(target_id)
            assert values["active-pregnancies-1+-visits"][1] <= values["active-pregnancies"][1]
    assert {"pregnancy-registrations-this-month", "births-this-month", "facility-deliveries"} <= nonzero


def test_target_definitions_cover_every_target_doc_id() -> None:
    definitions = targets.target_definitions()
    assert {d["id"] for d in definitions} >= {
        "deaths-this-month",
        "pregnancy-registrations-this-month",
        "births-this-month",
        "active-pregnancies",
        "active-pregnancies-1+-visits",
        "facility-deliveries",
    }
    assert {d["type"] for d in definitions} == {"count", "percent"}
    ids = [t["id"] for t in targets.target_values([], TODAY.replace(day=1), NOW_MS)]
    assert ids == [d["id"] for d in definitions]


def test_user_doc_is_shaped_like_users_json(shared_dir: Path) -> None:
    sample = json.loads((shared_dir / "cht-sample-docs" / "_users" / "users.json").read_text())[0]
    settings = {
        "_id": "org.couchdb.user:andra",
        "_rev": "3-abc",
        "type": "user-settings",
        "name": "andra",
        "roles": ["chw"],
        "facility_id": "f1",
        "contact_id": "c1",
        "fullname": "Andra",
        "phone": "+254700000000",
        "language": "en",
        "known": True,
    }
    doc = users.user_doc(settings)
    assert doc.keys() == sample.keys()
    assert {k: doc[k] for k in ("_id", "name", "type", "roles", "facility_id", "contact_id")} == {
        "_id": "org.couchdb.user:andra",
        "name": "andra",
        "type": "user",
        "roles": ["chw"],
        "facility_id": "f1",
        "contact_id": "c1",
    }
    assert not {"password", "password_scheme", "derived_key", "salt"} & doc.keys()


def test_deterministic(reports_by_chw: dict[str, list[Doc]]) -> None:
    chw, reports = next(iter(reports_by_chw.items()))

    def run() -> tuple[list[Doc], list[Doc]]:
        return (
            tasks.task_docs(SEED, random.Random(5), "chw", chw, reports, TODAY),
            targets.target_docs(SEED, random.Random(5), "chw", chw, reports, TODAY),
        )

    assert run() == run()
