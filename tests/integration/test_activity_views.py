"""Task, target and user use views against oracles computed in Python from the real CHT sample
docs (tests/support/oracles_activity.py), loaded into CouchDB, replicated and built by the assets."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from tests.integration.pipeline import (
    SUFFIXES,
    Deployment,
    materialize,
    materialize_only,
    metadata,
    new_empty_deployment,
)
from tests.integration.test_cht_sample_docs import load, sample_docs
from tests.integration.test_views import check_population
from tests.support import oracles_activity as oracle

VIEWS = ("useview_user", "useview_task", "useview_task_monthly", "useview_target", "useview_target_area")
LABEL_VIEWS = ("useview_translation", "useview_label", "useview_form_label")
# What a change of the dashboards' language rebuilds (DASHBOARD_LANGUAGE is read with the definitions).
LANGUAGE_ASSETS = (
    "dashboard_language",
    *LABEL_VIEWS,
    "useview_task",
    "useview_target",
    "useview_target_area",
    "useview_chw_activity",  # a rollup table: the form labels are in its rows
)
USERS_SUFFIX = "-users"


def today() -> date:
    return datetime.now(UTC).date()


def extra_docs() -> dict[str, list[dict[str, Any]]]:
    """Docs the samples lack, written here: recent telemetry and reports (activity as of today), a
    multi-place user known only partly to user-settings, and tasks around an end date's last minute."""
    now = datetime.now(UTC)
    ms = int((now - timedelta(days=2)).timestamp() * 1000)
    end = (now - timedelta(days=20)).date()
    last_minute = datetime.combine(end, datetime.max.time(), UTC) - timedelta(seconds=30)

    def task(suffix: str, state: str, at: datetime) -> dict[str, Any]:
        return {
            "_id": f"task~org.couchdb.user:brinda~x~{suffix}",
            "type": "task",
            "user": "org.couchdb.user:brinda",
            "owner": "69763819-beff-516a-bf7a-7a178f298fb4",
            "requester": "69763819-beff-516a-bf7a-7a178f298fb4",
            "authoredOn": ms - 40 * 86_400_000,
            "state": state,
            "stateHistory": [
                {"state": "Ready", "timestamp": ms - 30 * 86_400_000},
                {"state": state, "timestamp": int(at.timestamp() * 1000)},
            ],
            "emission": {
                "_id": f"x~{suffix}",
                "title": "task.x",
                "actions": [{"form": "assessment"}],
                "dueDate": end.isoformat(),
                "startDate": end.isoformat(),
                "endDate": end.isoformat(),
            },
        }

    return {
        "": [
            {
                "_id": "org.couchdb.user:dora",
                "type": "user-settings",
                "name": "dora",
                "roles": ["chw_supervisor"],
                "facility_id": [
                    "2112ab72-448a-50bb-a15d-0b19d2927ab7",
                    "0b465c41-ef04-51a0-89fe-b61b5cf76e4b",
                ],
                "contact_id": "745b50c4-9ebe-5515-b0cd-eec1d5438004",
                "known": False,
            },
            {
                "_id": "activity-report-1",
                "type": "data_record",
                "form": "assessment",
                "reported_date": ms,
                "contact": {"_id": "00a37402-7bc9-5619-92b0-99ade2056cb2"},
            },
            {
                "_id": "messages-fr",
                "type": "translations",
                "code": "fr",
                "name": "Français",
                "enabled": False,
                "generic": {"task.x": "Tâche X", "contact.deceased.title": "Décédé", "n": 3},
                "custom": {"task.x": "Tâche X (projet)", "targets.births.title": ""},
            },
            task("on-time", "Completed", last_minute),
            task("late", "Completed", last_minute + timedelta(minutes=1)),
            task("cancelled", "Cancelled", last_minute),
        ],
        "-users-meta": [
            {
                "_id": f"telemetry-{now.year}-{now.month}-{now.day}-andra-dev",
                "type": "telemetry",
                "metadata": {
                    "year": now.year,
                    "month": now.month,
                    "day": now.day,
                    "user": "andra",
                    "deviceId": "dev",
                    "versions": {"app": "4.5.0"},
                },
            },
        ],
        USERS_SUFFIX: [
            {
                "_id": "org.couchdb.user:dora",
                "type": "user",
                "name": "dora",
                "roles": ["chw"],
                "email": "dora@example.org",
                "facility_id": "ignored-user-settings-wins",
            }
        ],
    }


def with_target_definitions(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sample settings doc, with target definitions as a default config has them."""
    items = [
        {
            "id": "active-pregnancies-1+-visits",
            "type": "percent",
            "goal": 80,
            "translation_key": "targets.anc.visits",
        },
        {
            "id": "facility-deliveries",
            "type": "percent",
            "goal": 40,
            "translation_key": "targets.births.facility",
        },
        {"id": "births-this-month", "type": "count", "goal": -1, "translation_key": "targets.births.title"},
        {"id": "pregnancy-registrations-this-month", "type": "count", "goal": 6, "name": "Registrations"},
    ]
    out = []
    for doc in docs:
        if doc.get("_id") == "settings":
            doc = copy.deepcopy(doc)
            doc.setdefault("settings", {}).setdefault("tasks", {}).setdefault("targets", {})["items"] = items
            doc.pop("_rev", None)
        out.append(doc)
    return out


def deploy(deployment: Deployment, databases: dict[str, list[dict[str, Any]]]) -> None:
    for suffix, docs in databases.items():
        if docs:
            load(deployment.client(suffix), docs)


@pytest.fixture
def deployment(couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return new_empty_deployment(couch_server.url, pg_url, monkeypatch)


def rows(pg_url: str, view: str) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {view}").fetchall()  # noqa: S608 - our own view names


def same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, Decimal) or isinstance(expected, float):
        return (
            actual is not None
            and expected is not None
            and math.isclose(float(actual), float(expected), abs_tol=1e-4)
        )
    return actual == expected


def assert_rows_equal(
    view: str, actual: list[dict[str, Any]], expected: list[dict[str, Any]], key: Callable
) -> None:
    assert sorted(map(key, actual), key=str) == sorted(map(key, expected), key=str), view
    by_key = {key(row): row for row in actual}
    for want in expected:
        got = by_key[key(want)]
        missing = set(want) - set(got)
        assert not missing, f"{view}: columns {missing} absent"
        wrong = {c: (got[c], want[c]) for c in want if not same(got[c], want[c])}
        assert not wrong, f"{view} {key(want)}: (view, oracle) {wrong}"


def assert_checks_passed(result: dg.ExecuteInProcessResult) -> None:
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] in VIEWS]
    assert {e.asset_key.path[-1] for e in evaluations} == set(VIEWS)
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]


def test_activity_views_equal_the_oracles(deployment: Deployment, shared_dir: Path) -> None:
    root = shared_dir / "cht-sample-docs"
    databases = {
        "": with_target_definitions(sample_docs(root, "medic/*.json", "medic/forms/*.json")),
        "-sentinel": sample_docs(root, "medic-sentinel/*.json"),
        "-users-meta": sample_docs(root, "medic-users-meta/*.json"),
        USERS_SUFFIX: sample_docs(root, "_users/*.json"),
    }
    extras = extra_docs()
    for suffix, docs in extras.items():
        databases[suffix] += docs
    deploy(deployment, databases)
    assert_checks_passed(materialize(deployment))
    docs = [doc for suffix in databases for doc in deployment.docs(suffix)]
    check_population(deployment, deployment.docs())  # the rollup table on the real contacts

    users = oracle.user_rows(docs, today())
    assert {u["user_name"] for u in users} == {"andra", "brinda", "carla", "admin", "dora"}
    dora = next(u for u in users if u["user_name"] == "dora")
    assert (
        dora["facility_uuid"] == "2112ab72-448a-50bb-a15d-0b19d2927ab7"
        and dora["email"] == "dora@example.org"
    )
    assert [u["active_7d"] for u in sorted(users, key=lambda u: u["user_name"])] == [
        False,
        True,
        False,
        True,
        False,
    ]
    tasks = oracle.task_rows(docs)
    assert sorted(t["completed_on_time"] for t in tasks) == [False] * 4 + [True] * 2, (
        "on-time boundary exercised"
    )
    targets = oracle.target_rows(docs)
    assert {t["met_goal"] for t in targets} == {True, False, None}, "goals exercised"
    # The sample's messages-en (pre-4 `values`) lacks the task and target keys, and French is not
    # the locale: the dashboards show the keys (a name where a definition has one).
    assert {(t["title"], t["title_label"]) for t in tasks} == {
        ("task.anc.pregnancy_home_visit.title", "task.anc.pregnancy_home_visit.title"),
        ("task.x", "task.x"),
    }
    assert {t["target_label"] for t in targets} >= {
        "targets.births.title",
        "Registrations",
        "deaths-this-month",
    }
    assert {"lang": "en", "key": "contact.deceased.title", "text": "Deceased"} in oracle.translation_rows(
        docs
    )
    assert {"lang": "fr", "key": "task.x", "text": "Tâche X (projet)"} in oracle.translation_rows(docs)
    assert_views_equal_oracles(deployment, docs)

    # Tasks are maintained incrementally: a task completed now, one deleted, and a new target revision.
    client = deployment.client()
    ready = client.get_doc(next(t["uuid"] for t in tasks if t["state"] == "Ready"))
    ready["state"] = "Completed"
    ready["stateHistory"].append(
        {"state": "Completed", "timestamp": int(datetime.now(UTC).timestamp() * 1000)}
    )
    gone = client.get_doc(next(t["uuid"] for t in tasks if t["state"] == "Failed"))
    target = client.get_doc(targets[0]["uuid"].split("/")[0])
    target["targets"][0]["value"] = {"pass": 3, "total": 7}
    # Their CHW and the CHW's place renamed (their own docs unchanged): the task and target rows
    # that show them are rewritten too.
    chw = client.get_doc(next(t["chw_uuid"] for t in targets if t["chw_uuid"] and t["area_uuids"]))
    place = client.get_doc(chw["parent"]["_id"])
    center = next(t["health_center_uuid"] for t in tasks if t["health_center_uuid"])
    renamed = [{**chw, "name": "Renamed ' CHW"}, {**place, "name": "Renamed ' place"}]
    if center != place["_id"]:  # and a task's health center
        renamed.append({**client.get_doc(center), "name": "Renamed ' center"})
    assert all("ok" in row for row in client.bulk_docs([ready, {**gone, "_deleted": True}, target, *renamed]))
    assert_checks_passed(materialize(deployment))
    docs = [doc for suffix in databases for doc in deployment.docs(suffix)]
    assert len(oracle.task_rows(docs)) == len(tasks) - 1
    shown = [t for t in oracle.target_rows(docs) if t["chw_uuid"] == chw["_id"]]
    names = {(t["chw_name"], t["health_center_name"], t["clinic_name"]) for t in shown}
    assert shown and {n[0] for n in names} == {"Renamed ' CHW"} and all("Renamed ' place" in n for n in names)
    assert any(
        t["health_center_name"] in ("Renamed ' place", "Renamed ' center") for t in oracle.task_rows(docs)
    )
    assert (
        next(u for u in oracle.user_rows(docs, today()) if u["user_name"] == "andra")[
            "days_since_last_activity"
        ]
        == 0
    )
    assert_views_equal_oracles(deployment, docs)

    # The place edited but for its name: no task or target row shows a difference, none is rewritten.
    place = client.get_doc(place["_id"])
    assert "ok" in client.bulk_docs([{**place, "phone": "+254700000001"}])[0]
    unrelated = materialize(deployment)
    assert_checks_passed(unrelated)
    for view in ("useview_task", "useview_target"):
        assert (metadata(unrelated, view)["changed_docs"], metadata(unrelated, view)["rewritten_docs"]) == (
            1,
            0,
        )
    assert_views_equal_oracles(deployment, [doc for suffix in databases for doc in deployment.docs(suffix)])


def assert_views_equal_oracles(
    deployment: Deployment, docs: list[dict[str, Any]], language: str | None = None
) -> None:
    """Every row and column of the five views and of the translations against the oracles over
    `docs`, labels in `language` (DASHBOARD_LANGUAGE; None: the deployment's locale)."""
    pg = deployment.pg_url
    assert_rows_equal(
        "useview_translation",
        rows(pg, "useview_translation"),
        oracle.translation_rows(docs),
        itemgetter("lang", "key"),
    )
    words = oracle.dashboard_words(docs, language)
    assert {r["key"]: r["label"] for r in rows(pg, "useview_label")} == words
    assert_rows_equal(
        "useview_user", rows(pg, "useview_user"), oracle.user_rows(docs, today()), itemgetter("user_name")
    )
    assert_rows_equal(
        "useview_task", rows(pg, "useview_task"), oracle.task_rows(docs, language), itemgetter("uuid")
    )
    assert_rows_equal(
        "useview_task_monthly",
        rows(pg, "useview_task_monthly"),
        oracle.task_monthly_rows(docs),
        itemgetter("user_name", "month"),
    )
    assert_rows_equal(
        "useview_target", rows(pg, "useview_target"), oracle.target_rows(docs, language), itemgetter("uuid")
    )
    assert_rows_equal(
        "useview_target_area",
        rows(pg, "useview_target_area"),
        oracle.target_area_rows(docs, language),
        itemgetter("health_center_uuid", "reporting_period", "target_id"),
    )


def test_activity_views_equal_the_oracles_on_generated_data(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo generator's tasks, targets, definitions, translations and users (its `_users` docs
    in `<prefix>-users`); then the same labels in French (DASHBOARD_LANGUAGE=fr)."""
    load_deployment(
        couch_clients(deployment.couch_url), generate(7, 30, today=today()), db_prefix=deployment.prefix
    )
    assert_checks_passed(materialize(deployment))
    docs = [doc for suffix in SUFFIXES for doc in deployment.docs(suffix)]
    assert any(doc.get("type") == "user" for doc in docs), "the generator's _users docs are replicated"
    assert oracle.task_rows(docs) and oracle.target_rows(docs), "the generator wrote tasks and targets"
    assert any(u["active_7d"] for u in oracle.user_rows(docs, today()))
    assert_views_equal_oracles(deployment, docs)
    titles = {t["title"]: t["title_label"] for t in rows(deployment.pg_url, "useview_task")}
    assert titles["task.anc.pregnancy_home_visit.title"] == "Pregnancy home visit"
    assert all(label != key for key, label in titles.items()), "every demo task title is translated"
    targets = {t["target_id"]: t["target_label"] for t in rows(deployment.pg_url, "useview_target")}
    assert targets["births-this-month"] == "Live births", "custom words win over generic ones"
    assert_form_labels(deployment, docs, "en")

    monkeypatch.setenv("DASHBOARD_LANGUAGE", "fr")
    result = materialize_only(deployment, LANGUAGE_ASSETS)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert_views_equal_oracles(deployment, docs, "fr")
    titles = {t["title"]: t["title_label"] for t in rows(deployment.pg_url, "useview_task")}
    assert titles["task.anc.pregnancy_home_visit.title"] == "Visite à domicile de grossesse"
    assert titles["task.anc.delivery.title"] == "Delivery", "untranslated in French: the English words"
    assert_form_labels(deployment, docs, "fr")


def assert_form_labels(deployment: Deployment, docs: list[dict[str, Any]], language: str) -> None:
    """useview_form_label: each XForm's translation key in the language, else English, else its title."""
    words = oracle.dashboard_words(docs, language)
    forms = [d for d in docs if d.get("type") == "form" and not d["_id"].startswith("form:contact:")]
    expected = {d["internalId"]: words.get(d.get("translation_key", "")) or d["title"] for d in forms}
    sms = (next(d for d in docs if d["_id"] == "settings")["settings"].get("forms") or {}).items()
    expected |= {
        code: form["meta"]["label"].get(language) or form["meta"]["label"]["en"] for code, form in sms
    }
    assert {r["form"]: r["label"] for r in rows(deployment.pg_url, "useview_form_label")} == expected
    activity = rows(deployment.pg_url, "useview_chw_activity")
    assert activity and all(r["form_label"] == expected.get(r["form"], r["form"]) for r in activity)


def test_activity_views_build_empty_without_task_target_and_user_docs(
    deployment: Deployment, shared_dir: Path
) -> None:
    root = shared_dir / "cht-sample-docs"
    deploy(deployment, {"": sample_docs(root, "medic/contacts.json", "medic/reports.json")})
    assert_checks_passed(materialize(deployment))
    for view in (*VIEWS, *LABEL_VIEWS):
        assert rows(deployment.pg_url, view) == [], view
