"""The maternal use views on CHT's default config: the real sample docs and form docs of
shared/cht-sample-docs through the real Dagster graph, every column of every row against an
oracle computed from the docs in Python (tests/support/oracles_maternal.py)."""

from __future__ import annotations

import base64
import copy
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from cht_assets.defs import views
from cht_assets.defs.dictionary import DICTIONARY_PAGE_KEY
from tests.integration.pipeline import SUFFIXES, Deployment, materialize, new_deployment
from tests.integration.test_cht_sample_docs import load, sample_docs
from tests.support.oracles_maternal import maternal_oracle

MATERNAL_VIEWS = ("useview_pregnancy", "useview_delivery", "useview_death")
MATERNAL_FORMS = {
    "pregnancy", "delivery", "pregnancy_home_visit", "pregnancy_danger_sign", "death_report", "undo_death_report",
}  # fmt: skip
PREGNANCY_COLUMNS = (
    "uuid", "patient_uuid", "patient_name", "reported", "lmp_date", "edd", "gestational_age_weeks", "lmp_method",
    "lmp_method_label", "anc_visits", "danger_signs", "delivered", "delivery_uuid", "delivery_date",
    "delivery_place", "delivery_place_label", "babies_alive", "babies_deceased", "woman_outcome",
    "woman_outcome_label", "state",
)  # fmt: skip
HIERARCHY_COLUMNS = (
    "area_uuids", "district_hospital_uuid", "district_hospital_name", "health_center_uuid", "health_center_name",
    "clinic_uuid", "clinic_name",
)  # fmt: skip


def medic_docs(shared_dir: Path) -> list[dict[str, Any]]:
    """The sample contacts, reports and the default config's form docs."""
    root = shared_dir / "cht-sample-docs"
    return sample_docs(root, "medic/*.json", "medic/forms/*.json")


def form_id(doc: dict[str, Any]) -> str | None:
    return doc["_id"].removeprefix("form:") if doc.get("type") == "form" else None


def deploy(deployment: Deployment, docs: list[dict[str, Any]]) -> None:
    for suffix in SUFFIXES:
        deployment.client(suffix).create_db()
    load(deployment.client(), docs)


def rows(pg_url: str, view: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        return {row["uuid"]: row for row in conn.execute(f"SELECT * FROM {view}").fetchall()}  # noqa: S608


def database_today(pg_url: str) -> tuple[date, ZoneInfo]:
    with psycopg.connect(pg_url) as conn:
        today, zone = conn.execute("SELECT current_date, current_setting('TimeZone')").fetchone()
    return today, ZoneInfo(zone)


def exists(pg_url: str, name: str) -> bool:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None


@pytest.fixture
def deployment(couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return new_deployment(couch_server.url, pg_url, monkeypatch)


def visits_during_pregnancy(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sample's home visits all precede their patient's registrations (cht-core's e2e
    fixtures): copies of them dated an hour after the patient's last registration, so that
    visits in a pregnancy are counted on real report shapes too."""
    registered: dict[str, int] = {}
    for doc in docs:
        if doc.get("form") == "pregnancy":
            patient = doc["fields"]["patient_uuid"]
            registered[patient] = max(registered.get(patient, 0), doc["reported_date"])
    visits = [doc for doc in docs if doc.get("form") == "pregnancy_home_visit"]
    assert visits and all(doc["reported_date"] < registered[doc["fields"]["patient_uuid"]] for doc in visits)
    return [
        {
            **{key: value for key, value in doc.items() if key != "_rev"},
            "_id": f"{doc['_id']}-during-pregnancy",
            "reported_date": registered[doc["fields"]["patient_uuid"]] + 3_600_000,
        }
        for doc in visits
    ]


# Registrations of new patients dated around today, by EDD relative to today (None: no EDD),
# so that every state is met: the sample's own are from 2023-2024.
RECENT_EDDS = {"active": 100, "overdue": -20, "lost": -60, "undated": None}


def recent_pregnancies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    template = next(doc for doc in docs if doc.get("form") == "pregnancy" and doc["fields"]["edd_8601"])
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    recent = []
    for name, days in RECENT_EDDS.items():
        fields = copy.deepcopy(template["fields"])
        fields["patient_uuid"] = fields["inputs"]["contact"]["_id"] = f"recent-patient-{name}"
        fields["edd_8601"] = "" if days is None else (date.today() + timedelta(days=days)).isoformat()
        doc = {key: value for key, value in template.items() if key != "_rev"}
        recent.append(
            {**doc, "_id": f"recent-{name}", "fields": fields, "reported_date": now_ms - 10 * 86_400_000}
        )
    return recent


def assert_dictionary_lineage(result: dg.ExecuteInProcessResult) -> None:
    """The data dictionary page says where each view column comes from: a formview column from
    its report field, a hand-written one from what its SQL reads (document fields included)."""
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == DICTIONARY_PAGE_KEY]
    page = Path(event.materialization.metadata["html_path"].value).read_text()

    def sources(view: str, column: str) -> list[str]:
        table = page.split(f"<code>public.{view}</code>", 1)[1].split("</table>", 1)[0]
        row = re.search(rf"<tr><td><code>{column}</code></td>(.*?)</tr>", table)
        assert row, (view, column)
        return re.findall(r"<code>(.*?)</code>", row.group(1).split("</td><td>")[-1])

    assert sources("formview_pregnancy", "lmp_date_8601") == ["doc.fields.lmp_date_8601"]
    assert sources("person", "sex") == ["doc.sex"]
    assert sources("data_record", "grandparent_uuid") == ["doc.contact.parent.parent._id"]
    assert sources("document_metadata", "uuid") == ["raw.couchdb_docs._id"]
    assert sorted(sources("useview_pregnancy", "patient_name")) == [
        "contactview_contact.name",
        "useinput_pregnancy_registration.patient_name",
    ]


def test_maternal_views_equal_the_oracle_over_the_real_sample_docs(
    deployment: Deployment, shared_dir: Path
) -> None:
    docs = medic_docs(shared_dir)
    docs += visits_during_pregnancy(docs) + recent_pregnancies(docs)
    deploy(deployment, docs)
    result = materialize(deployment)
    assert result.success
    assert_dictionary_lineage(result)
    expected = maternal_oracle(deployment.docs(), *database_today(deployment.pg_url))
    # The sample holds what the oracle must be tested on: the counts of the issue.
    assert (
        len(expected["useview_pregnancy"]) == 15 + len(RECENT_EDDS)
        and len(expected["useview_delivery"]) == 24
    )
    assert 0 < len(expected["useview_death"]) < 6  # some of the 6 death reports are undone
    # The forms' words for their codes (form_choices, from the XForms), in the locale's language.
    outcomes = {(r["woman_outcome"], r["woman_outcome_label"]) for r in expected["useview_delivery"].values()}
    assert ("alive_well", "Alive and well") in outcomes
    pregnancies = expected["useview_pregnancy"].values()
    assert any(row["delivered"] for row in pregnancies) and not all(row["delivered"] for row in pregnancies)
    assert any(row["anc_visits"] for row in pregnancies) and any(row["danger_signs"] for row in pregnancies)
    assert any(row["area_uuids"] for row in pregnancies)
    assert {row["state"] for row in pregnancies} == {"active", "overdue", "delivered", "lost_to_follow_up"}
    for view in MATERNAL_VIEWS:
        actual = rows(deployment.pg_url, view)
        assert set(actual) == set(expected[view]), view
        for uuid, row in expected[view].items():
            assert actual[uuid] == row, (view, uuid)
    columns = list(rows(deployment.pg_url, "useview_pregnancy").values())[0]
    assert tuple(columns) == (*PREGNANCY_COLUMNS, *HIERARCHY_COLUMNS)
    checks = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] in MATERNAL_VIEWS]
    assert {e.check_name for e in checks if e.asset_key.path[-1] == "useview_pregnancy"} >= {
        "unique_key",
        "registrations_equal_input",
        "delivery_closes_one_pregnancy",
    }
    assert all(e.passed for e in checks), [e.check_name for e in checks if not e.passed]


def test_without_the_maternal_forms_the_rest_builds_and_the_views_say_what_they_wait_for(
    deployment: Deployment, shared_dir: Path
) -> None:
    docs = [doc for doc in medic_docs(shared_dir) if form_id(doc) not in MATERNAL_FORMS]
    deploy(deployment, docs)
    result = materialize(deployment)
    assert result.success
    for view in MATERNAL_VIEWS:
        assert not exists(deployment.pg_url, view)
    observed = {
        event.asset_key.path[-1]: event.asset_observation_data.asset_observation.metadata["waiting"].value
        for event in result.get_asset_observation_events()
        if "waiting" in event.asset_observation_data.asset_observation.metadata
    }
    assert observed == {
        "useinput_pregnancy_registration": "waiting for formview_pregnancy",
        "useinput_delivery_report": "waiting for formview_delivery",
        "useinput_death_report": "waiting for formview_death_report",
    }
    # The use views read the waiting inputs (their steps are skipped) and say what they wait for.
    waiting = {
        spec.key.path[-1]: spec
        for asset in views.build_view_assets()
        for spec in asset.specs
        if spec.tags.get(views.WAITING_TAG)
    }
    assert waiting["useview_pregnancy"].tags[views.WAITING_TAG] == "delivery__pregnancy"
    assert waiting["useview_delivery"].description.startswith("Waiting for form `delivery`: ")
    assert waiting["useview_death"].tags[views.WAITING_TAG] == "death_report"
    assert rows(deployment.pg_url, "formview_pnc_danger_sign_follow_up_mother")
    with psycopg.connect(deployment.pg_url) as conn:
        reports = conn.execute("SELECT sum(reports) FROM useview_chw_activity").fetchone()[0]
    live = deployment.docs()
    assert reports == sum(1 for doc in live if doc.get("type") == "data_record" and doc.get("form"))


def renamed(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deployment calls the delivery form `birth` and the woman's outcome `mother_status`."""
    out = []
    for doc in map(copy.deepcopy, docs):
        if doc.get("type") == "data_record" and doc.get("form") == "delivery":
            doc["form"] = "birth"
            doc["fields"]["condition"]["mother_status"] = doc["fields"]["condition"].pop("woman_outcome")
        elif doc.get("_id") == "form:delivery":
            doc["_id"], doc["internalId"] = "form:birth", "birth"
            doc.pop("_rev", None)
            attachment = doc["_attachments"]["xml"]
            xml = base64.b64decode(attachment["data"]).decode()
            assert '<data id="delivery"' in xml and "woman_outcome" in xml
            xml = xml.replace('<data id="delivery"', '<data id="birth"').replace(
                "woman_outcome", "mother_status"
            )
            attachment["data"] = base64.b64encode(xml.encode()).decode()
        out.append(doc)
    return out


def default_named(doc: dict[str, Any]) -> dict[str, Any]:
    if doc.get("form") != "birth":
        return doc
    condition = {**doc["fields"]["condition"], "woman_outcome": doc["fields"]["condition"]["mother_status"]}
    return {**doc, "form": "delivery", "fields": {**doc["fields"], "condition": condition}}


def test_a_renamed_form_and_field_work_after_editing_the_mapping(
    deployment: Deployment, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(deployment, renamed(medic_docs(shared_dir)))
    result = materialize(deployment)
    assert result.success and rows(deployment.pg_url, "formview_birth")
    assert not exists(deployment.pg_url, "useview_delivery")  # the mapping still says `delivery`

    root = tmp_path / "sql"
    shutil.copytree(views.SQL_ROOT, root)
    inputs = root / "useviews" / "useview_delivery.inputs.yaml"
    text = inputs.read_text()
    assert "form: delivery" in text and "/data/condition/woman_outcome" in text
    inputs.write_text(
        text.replace("form: delivery", "form: birth").replace(
            "condition/woman_outcome", "condition/mother_status"
        )
    )
    monkeypatch.setattr(views, "SQL_ROOT", root)
    assert materialize(deployment).success

    # The oracle reads the default config: the live docs with the renaming undone.
    expected = maternal_oracle(
        list(map(default_named, deployment.docs())), *database_today(deployment.pg_url)
    )
    for view in ("useview_delivery", "useview_pregnancy"):
        actual = rows(deployment.pg_url, view)
        assert actual == expected[view], view
    assert {row["woman_outcome"] for row in rows(deployment.pg_url, "useview_delivery").values()} == {
        "alive_well",
        "deceased",
    }
