"""View layers against values computed independently in Python from the docs in CouchDB."""

from __future__ import annotations

import collections
import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from cht_assets.defs.views import load_catalog
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import apply_mutations, couch_clients, load_deployment
from cht_assets.demo.xform import FORM_NAMES
from cht_assets.warehouse.comments import comment_statements, read_comments
from tests.integration.pipeline import Deployment, materialize, metadata, new_deployment
from tests.support import oracles_base
from tests.support.oracles_activity import telemetry_date
from tests.support.oracles_maternal import maternal_oracle

SEED, HOUSEHOLDS = 7, 40
HEALTH_CENTER = (
    "SELECT uuid FROM contactview_contact WHERE contact_type = 'health_center' ORDER BY uuid LIMIT 1"
)
CONTACT_TYPES = {"contact", "clinic", "district_hospital", "health_center", "person"}


@pytest.fixture
def deployment(couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    load_deployment(couch_clients(couch_server.url), generate(SEED, HOUSEHOLDS), db_prefix=deployment.prefix)
    return deployment


def query(pg_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql).fetchall()


def chain(doc: dict[str, Any]) -> list[str]:
    ids, node = [], doc.get("parent")
    while isinstance(node, dict) and node.get("_id"):
        ids.append(node["_id"])
        node = node.get("parent")
    return ids


def as_date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def as_int(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


def check_contacts(deployment: Deployment, docs: list[dict]) -> None:
    contacts = [d for d in docs if d.get("type") in CONTACT_TYPES]
    expected = {(d["_id"], d.get("name"), d["type"], (d.get("parent") or {}).get("_id")) for d in contacts}
    assert (
        set(query(deployment.pg_url, "SELECT uuid, name, type, parent_uuid FROM contactview_metadata"))
        == expected
    )
    types = {d["_id"]: d.get("contact_type") or d["type"] for d in contacts}
    hierarchy = {
        row[0]: row[1:]
        for row in query(
            deployment.pg_url,
            "SELECT uuid, area_uuids, health_center_uuid, district_hospital_uuid FROM contactview_hierarchy",
        )
    }
    assert set(hierarchy) == {d["_id"] for d in contacts}
    for doc in contacts:
        area = chain(doc) if doc["type"] == "person" else [doc["_id"], *chain(doc)]
        by_type = {types.get(place): place for place in area}
        assert hierarchy[doc["_id"]] == (
            area,
            by_type.get("health_center"),
            by_type.get("district_hospital"),
        ), doc["_id"]


def check_reports(deployment: Deployment, docs: list[dict]) -> None:
    reports = [d for d in docs if d.get("type") == "data_record" and d.get("form")]
    per_form = collections.Counter(d["form"] for d in reports)
    assert (
        dict(query(deployment.pg_url, "SELECT formname, count(*) FROM form_metadata GROUP BY 1")) == per_form
    )
    per_chw = collections.Counter((d.get("contact") or {}).get("_id") for d in reports)
    activity = dict(
        query(deployment.pg_url, "SELECT chw_uuid, sum(reports)::int FROM useview_chw_activity GROUP BY 1")
    )
    assert activity == per_chw


def check_formviews(deployment: Deployment, docs: list[dict]) -> None:
    pregnancies = {
        d["_id"]: d["fields"] for d in docs if d.get("type") == "data_record" and d.get("form") == "pregnancy"
    }
    rows = query(
        deployment.pg_url,
        "SELECT uuid, lmp_date_8601, edd_8601, gestational_age_register_method_lmp_method, "
        "anc_visits_hf_anc_visits_hf_past_visited_hf_count, weeks_since_lmp FROM formview_pregnancy",
    )
    assert {row[0] for row in rows} == set(pregnancies)
    for uuid, lmp, edd, method, visited, weeks in rows:
        fields = pregnancies[uuid]
        assert lmp == as_date(fields["lmp_date_8601"]) and edd == as_date(fields["edd_8601"])
        assert method == fields["gestational_age"]["register_method"]["lmp_method"]
        assert visited == as_int(fields["anc_visits_hf"]["anc_visits_hf_past"]["visited_hf_count"])
        assert (float(weeks) if weeks is not None else None) == (
            float(fields["weeks_since_lmp"]) if fields["weeks_since_lmp"] else None
        )
    babies = sum(
        len(d["fields"].get("babys_condition", {}).get("baby_repeat", []))
        for d in docs
        if d.get("type") == "data_record"
        and d.get("form") == "delivery"
        and isinstance(d["fields"].get("babys_condition", {}).get("baby_repeat"), list)
    )
    assert babies > 0
    assert query(
        deployment.pg_url, "SELECT count(*) FROM formview_delivery__babys_condition_baby_repeat"
    ) == [(babies,)]
    # The maternal use views over generated data, against the oracle the real samples use too.
    with psycopg.connect(deployment.pg_url) as conn:
        today, tz = conn.execute("SELECT current_date, current_setting('TimeZone')").fetchone()
    expected = maternal_oracle(docs, today, ZoneInfo(tz))
    assert all(expected.values()), {view: len(rows) for view, rows in expected.items()}
    for view, by_uuid in expected.items():
        with psycopg.connect(deployment.pg_url, row_factory=dict_row) as conn:
            actual = {row["uuid"]: row for row in conn.execute(f"SELECT * FROM {view}")}
        assert actual == by_uuid, view


def age_band(born: str | None, today: date) -> str:
    if not born:
        return "unknown"
    dob = date.fromisoformat(born[:10])
    years = today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
    return "00-04" if years < 5 else "05-14" if years < 15 else "15-49" if years < 50 else "50+"


# CHT's default hierarchy, where a deployment's settings configure no contact types.
DEFAULT_CONTACT_TYPES = [
    {"id": "district_hospital"},
    {"id": "health_center", "parents": ["district_hospital"]},
    {"id": "clinic", "parents": ["health_center"]},
    {"id": "person", "person": True, "parents": ["district_hospital", "health_center", "clinic"]},
]


def household_types(docs: list[dict]) -> tuple[set[str], set[str]]:
    """The person types, and the place types no place type sits under (households)."""
    sourced = [oracles_base.Sourced("", doc) for doc in docs]
    types = oracles_base.configured_types(sourced) or DEFAULT_CONTACT_TYPES
    persons = oracles_base.person_types(sourced)
    places = {t["id"] for t in types} - persons
    return persons, places - {parent for t in types if t["id"] in places for parent in t.get("parents") or []}


def check_population(deployment: Deployment, docs: list[dict]) -> None:
    """The rollup table (rebuilt on every refresh) against the docs: persons and households per
    area, sex and age band on the warehouse's date, for the deployment's own contact types."""
    by_id = {d["_id"]: d for d in docs}
    person_types, leaf_types = household_types(docs)
    (today,) = query(deployment.pg_url, "SELECT current_date")[0]
    persons: collections.Counter = collections.Counter()
    households: dict[tuple, set[str]] = collections.defaultdict(set)
    for doc in docs:
        household = by_id.get((doc.get("parent") or {}).get("_id"), {})
        if (
            oracles_base.is_contact(doc)
            and oracles_base.contact_type(doc) in person_types
            and oracles_base.contact_type(household) in leaf_types
            and not doc.get("date_of_death")
        ):
            key = (
                (household.get("parent") or {}).get("_id"),
                doc.get("sex") or "unknown",
                age_band(doc.get("date_of_birth"), today),
            )
            persons[key] += 1
            households[key].add(household["_id"])
    rows = query(
        deployment.pg_url, "SELECT area_uuid, sex, age_band, persons, households FROM useview_population"
    )
    assert {(area, sex, band): (n, h) for area, sex, band, n, h in rows} == {
        key: (n, len(households[key])) for key, n in persons.items()
    }
    assert query(
        deployment.pg_url,
        "SELECT c.relkind FROM pg_class c WHERE c.oid = 'public.useview_population'::regclass",
    ) == [("r",)]


def check_telemetry(deployment: Deployment) -> None:
    telemetry = [d for d in deployment.docs("-users-meta") if d.get("type") == "telemetry"]
    metrics = sum(
        len([m for m in (d.get("metrics") or {}).values() if isinstance(m, dict)]) for d in telemetry
    )
    assert query(deployment.pg_url, "SELECT count(*) FROM useview_telemetry_metrics") == [(metrics,)]
    assert query(deployment.pg_url, "SELECT count(*) FROM useview_telemetry") == [(len(telemetry),)]
    check_telemetry_devices(deployment, telemetry)


def check_telemetry_devices(deployment: Deployment, telemetry: list[dict]) -> None:
    """useview_telemetry_devices: per device and user, the doc of the earliest day (NULL days
    last; a tie may give either doc), its device fields and local doc count."""
    earliest: dict[tuple, list[tuple]] = {}
    for doc in telemetry:
        meta, device = doc.get("metadata") or {}, (doc.get("device") or {}).get("deviceInfo") or {}
        day = telemetry_date(meta)
        doc_count = (doc.get("dbInfo") or {}).get("doc_count")
        found = (
            day,
            (device.get("hardware") or {}).get("model"),
            None if doc_count is None else str(doc_count),
        )
        earliest.setdefault((meta.get("deviceId"), meta.get("user")), []).append(found)
    rows = query(
        deployment.pg_url,
        "SELECT device_id, user_name, period_start, device_model, doc_count FROM useview_telemetry_devices",
    )
    assert len(rows) == len(earliest) > 0
    for device_id, user, day, model, doc_count in rows:
        docs = earliest[(device_id, user)]
        first = min((d for d, *_ in docs), key=lambda d: (d is None, d or date.min))
        assert (day, model, doc_count) in [d for d in docs if d[0] == first], (device_id, user)


def choice_words(xml: str, ref: str) -> dict[str, str]:
    """code -> label of a select question written with plain labels (the demo's XForms)."""
    question = re.search(rf'<select1 ref="{re.escape(ref)}">(.*?)</select1>', xml)[1]
    return {
        value: label
        for label, value in re.findall(r"<item><label>([^<]*)</label><value>([^<]*)</value>", question)
    }


def check_choice_labels(deployment: Deployment, docs: list[dict]) -> None:
    """The delivery views show the delivery form's own words for its codes (form_choices, from the
    XForm; the locale is en, the demo's labels are plain), else the code."""
    form = next(d for d in docs if d.get("internalId") == "delivery")
    xml = deployment.client().get_attachment(form["_id"], "xml").decode()
    places = choice_words(xml, "/data/delivery_outcome/delivery_place")
    outcomes = choice_words(xml, "/data/condition/woman_outcome")
    assert places["health_facility"] == "Health facility" and outcomes["alive_well"] == "Alive and well"
    for view in ("useview_delivery", "useview_pregnancy"):
        rows = query(
            deployment.pg_url,
            f"SELECT delivery_place, delivery_place_label, woman_outcome, woman_outcome_label FROM {view}",  # noqa: S608
        )
        assert any(row[0] for row in rows), view
        for place, place_label, outcome, outcome_label in rows:
            assert place_label == (places.get(place, place) if place else place), (view, place)
            assert outcome_label == (outcomes.get(outcome, outcome) if outcome else outcome), (view, outcome)


def check_all(deployment: Deployment) -> None:
    docs = deployment.docs()
    check_contacts(deployment, docs)
    check_reports(deployment, docs)
    check_choice_labels(deployment, docs)
    check_formviews(deployment, docs)
    check_population(deployment, docs)
    check_telemetry(deployment)


def test_views_equal_python_and_follow_edits_and_deletes(deployment: Deployment) -> None:
    first = materialize(deployment)
    assert all(check.passed for check in first.get_asset_check_evaluations())
    check_all(deployment)
    assert metadata(first, "contactview_contact")["mode"] == "created"

    # Edits, deletes (full-body and stub), conflicts and new docs, as the generator writes them.
    apply_mutations(
        couch_clients(deployment.couch_url), generate(SEED, HOUSEHOLDS), 1, db_prefix=deployment.prefix
    )
    second = materialize(deployment)
    failed = [
        (c.asset_key.to_user_string(), c.check_name)
        for c in second.get_asset_check_evaluations()
        if not c.passed
    ]
    assert failed == []
    check_all(deployment)
    changed = metadata(second, "contactview_contact")
    assert changed["mode"] == "incremental" and changed["changed_docs"] > 0

    # A health center renamed: every contact below it carries the new name (their docs unchanged).
    client = deployment.client()
    center = client.get_doc(query(deployment.pg_url, HEALTH_CENTER)[0][0])
    assert "ok" in client.bulk_docs([{**center, "name": "Renamed ' center"}])[0]
    third = materialize(deployment)
    assert metadata(third, "formview_pregnancy")["rewritten_docs"] == 0
    hierarchy = metadata(third, "contactview_hierarchy")
    below = query(
        deployment.pg_url,
        f"SELECT count(*), count(*) FILTER (WHERE health_center_name = 'Renamed '' center') "
        f"FROM contactview_hierarchy WHERE health_center_uuid = '{center['_id']}'",
    )[0]
    assert below[0] > 1 and below == (below[0], below[0])
    assert (hierarchy["mode"], hierarchy["changed_docs"], hierarchy["rewritten_docs"]) == (
        "incremental",
        below[0],
        below[0],
    )
    assert all(check.passed for check in third.get_asset_check_evaluations())

    # The same center edited but for its name and type: only its own row is rewritten.
    center = client.get_doc(center["_id"])
    assert "ok" in client.bulk_docs([{**center, "phone": "+254700000000"}])[0]
    fourth = materialize(deployment)
    hierarchy = metadata(fourth, "contactview_hierarchy")
    assert (hierarchy["mode"], hierarchy["changed_docs"], hierarchy["rewritten_docs"]) == (
        "incremental",
        1,
        1,
    )
    assert all(check.passed for check in fourth.get_asset_check_evaluations())
    check_all(deployment)


def test_column_schema_and_lineage_metadata(deployment: Deployment) -> None:
    result = materialize(deployment)
    schema = metadata(result, "formview_pregnancy")["dagster/column_schema"]
    types = {column.name: column.type for column in schema.columns}
    assert types["reported"] == "timestamp with time zone" and types["lmp_date_8601"] == "date"
    assert types["anc_visits_hf_anc_visits_hf_past_visited_hf_count"] == "integer"
    assert types["risk_factors_risk_factors_present_primary_condition"] == "text[]"
    assert types["geolocation_latitude"] == "numeric"
    lineage = metadata(result, "contactview_hospital")["dagster/column_lineage"]
    assert lineage.deps_by_column["uuid"][0].asset_key.path == ["contactviews", "contactview_metadata"]
    assert metadata(result, "contactview_metadata")["dagster/row_count"] > 0
    assert query(
        deployment.pg_url, "SELECT count(*) > 0 FROM useview_refresh_status WHERE refreshed_at <= now()"
    ) == [(True,)]
    assert_column_descriptions(deployment, result)


def assert_column_descriptions(deployment: Deployment, result: dg.ExecuteInProcessResult) -> None:
    """Dagster's column schema shows the descriptions PostgreSQL holds as comments: a formview
    column's question label (read from the XForm here), a hand-written use view's, a base
    model's and the hierarchy's; every column of every view-layer object has one, and a
    refresh of an unchanged warehouse would set none."""
    form = next(d for d in deployment.docs() if d.get("internalId") == "pregnancy")
    xml = deployment.client().get_attachment(form["_id"], "xml").decode()
    label = re.search(
        r'<select1 ref="/data/gestational_age/register_method/lmp_method"><label>([^<]+)</label>', xml
    )[1]
    column = "gestational_age_register_method_lmp_method"
    described = {
        name: {c.name: c.description for c in metadata(result, name)["dagster/column_schema"].columns}
        for name in ("formview_pregnancy", "useview_pregnancy", "data_record", "contactview_hierarchy")
    }
    assert described["formview_pregnancy"][column].startswith(f"{label} (select1, field ")
    words = choice_words(xml, "/data/gestational_age/register_method/lmp_method")
    assert f"method_lmp = {words['method_lmp']}" in described["formview_pregnancy"][column]
    assert described["formview_pregnancy"]["uuid"] == "The report's doc id (`_id`)."
    assert described["useview_pregnancy"]["state"].startswith("As of today: delivered")
    assert described["data_record"]["from_phone"].startswith("The phone number an SMS report came from")
    assert "health_center place" in described["contactview_hierarchy"]["health_center_uuid"]
    comments = dict(
        query(
            deployment.pg_url,
            "SELECT c.relname || '.' || a.attname, col_description(c.oid, a.attnum) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname IN "
            "('formview_pregnancy', 'useview_pregnancy', 'data_record', 'contactview_hierarchy') "
            "AND a.attnum > 0 AND NOT a.attisdropped",
        )
    )
    for name, columns in described.items():
        assert all(comments[f"{name}.{c}"] == text for c, text in columns.items()), name
    ((couchdb_doc,),) = query(deployment.pg_url, "SELECT col_description('public.couchdb'::regclass, 1)")
    assert f"database {deployment.prefix}, {deployment.prefix}-sentinel" in couchdb_doc
    catalog = load_catalog()
    with psycopg.connect(deployment.pg_url, autocommit=True) as conn:
        for entry in catalog:
            if entry.obj.kind == "function" or entry.waiting_for:
                continue
            built = entry.build(conn)
            held = read_comments(conn, built.qualified)
            missing = [c.name for c in held.columns if not c.comment]
            assert not missing, f"{entry.name}: no description for {missing}"
            assert comment_statements(built, held) == [], entry.name


BIND_TYPES = {"int": ["integer"], "decimal": ["numeric"], "date": ["date"],
              "dateTime": ["timestamp with time zone"], "select": ["text[]"], "geopoint": ["numeric", "numeric"]}  # fmt: skip
KEY_COLUMNS = {"uuid", "reported", "form_version", "submitter_uuid", "submitter_parent_uuid", "patient_uuid",
               "patient_id", "parent_uuid", "repeat_index", "outer_repeat_index"}  # fmt: skip


def test_every_demo_form_gets_formviews_typed_by_its_binds(deployment: Deployment) -> None:
    """Counted independently: the typed binds of each demo XForm (a regex over the XML) against
    the typed columns of its formview and repeat views in the database."""
    materialize(deployment)
    forms = [d for d in deployment.docs() if d.get("type") == "form"]
    assert len(forms) == len(FORM_NAMES) == 10
    columns = query(
        deployment.pg_url,
        "SELECT table_name, column_name, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
        "JOIN pg_attribute a ON a.attrelid = ('public.' || quote_ident(c.table_name))::regclass "
        "AND a.attname = c.column_name WHERE c.table_schema = 'public' AND c.table_name LIKE 'formview\\_%'",
    )
    for form in forms:
        form_id = form["internalId"]
        xml = deployment.client().get_attachment(form["_id"], "xml").decode()
        expected = collections.Counter(
            sql_type
            for bind_type in re.findall(r'<bind\b[^>]*\btype="(?:xsd:)?([A-Za-z:]+)"', xml)
            for sql_type in BIND_TYPES.get(bind_type, [])
        )
        actual = collections.Counter(
            sql_type
            for table, column, sql_type in columns
            if (table == f"formview_{form_id}" or table.startswith(f"formview_{form_id}__"))
            and column not in KEY_COLUMNS
            and sql_type != "text"
        )
        assert actual == expected, form_id


def test_a_delivery_closes_only_the_latest_registration_before_it(deployment: Deployment) -> None:
    materialize(deployment)
    docs = deployment.docs()
    registration = next(d for d in docs if d.get("form") == "pregnancy")
    delivery = next(d for d in docs if d.get("form") == "delivery")
    day = 86_400_000
    start = registration["reported_date"]

    def report(template: dict, doc_id: str, reported: int) -> dict:
        fields = {**template["fields"], "patient_uuid": "patient-twice-pregnant"}
        if isinstance(fields.get("inputs"), dict):
            fields["inputs"] = {**fields["inputs"], "contact": {"_id": "patient-twice-pregnant"}}
        body = {k: v for k, v in template.items() if not k.startswith("_")}
        return {**body, "_id": doc_id, "fields": fields, "reported_date": reported}

    deployment.client().bulk_docs(
        [
            report(registration, "pregnancy-first", start),
            report(registration, "pregnancy-second", start + 300 * day),
            report(delivery, "delivery-after-second", start + 400 * day),
        ]
    )
    materialize(deployment)
    rows = query(
        deployment.pg_url,
        "SELECT uuid, delivered FROM useview_pregnancy WHERE patient_uuid = 'patient-twice-pregnant' ORDER BY uuid",
    )
    assert rows == [("pregnancy-first", False), ("pregnancy-second", True)]
