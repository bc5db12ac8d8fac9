"""The demo deployment generator and loader: determinism, references, XForm typing, scale.

No servers: the loader runs against a small in-memory stand-in that keeps CouchDB revision trees.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import time
import tracemalloc

# Only this repository's own XForms are parsed here (trusted files).
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cht_assets.demo import base
from cht_assets.demo import generator as gen
from cht_assets.demo.generator import DATABASES, FORM_NAMES, Deployment, generate
from cht_assets.demo.loader import apply_mutations, database_name, load_deployment

FORMS_DIR = Path(gen.__file__).parent / "forms"
XF = "{http://www.w3.org/2002/xforms}"
XH = "{http://www.w3.org/1999/xhtml}"
JR_TEMPLATE = "{http://openrosa.org/javarosa}template"
PLACE_TYPES = {"district_hospital", "health_center", "clinic"}
CONTACT_TYPES = PLACE_TYPES | {"person", "contact"}


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def small() -> Deployment:
    return generate(11, 20)


@pytest.fixture(scope="module")
def docs(small: Deployment) -> dict[str, list[dict[str, Any]]]:
    return {db: list(small[db]) for db in DATABASES}


@pytest.fixture(scope="module")
def medium_docs() -> dict[str, list[dict[str, Any]]]:
    deployment = generate(5, 300)
    return {db: list(deployment[db]) for db in DATABASES}


@pytest.fixture(scope="module")
def by_id(medium_docs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {doc["_id"]: doc for doc in medium_docs["medic"]}


@pytest.fixture(scope="module")
def spec() -> dict[str, FormSpec]:
    return {name: FormSpec(FORMS_DIR / f"{name}.xml") for name in FORM_NAMES}


def reports(docs: list[dict[str, Any]], form: str | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d.get("type") == "data_record" and d.get("content_type") == "xml" and form in (None, d["form"])
    ]


# ---------------------------------------------------------------------------------------------
# an independent reading of the XForms (not the generator's parser)


class FormSpec:
    """Instance layout, bind types, repeats and select choices of one XForm file."""

    def __init__(self, path: Path) -> None:
        self.xml = path.read_bytes()
        root = ET.fromstring(self.xml)
        model = root.find(f"{XH}head/{XF}model")
        assert model is not None
        self.data = model.find(f"{XF}instance")[0]
        self.binds = {b.get("nodeset"): b.get("type", "string") for b in model.iter(f"{XF}bind")}
        self.repeats = {r.get("nodeset") for r in root.iter(f"{XF}repeat")}
        self.choices: dict[str, set[str]] = {}
        body = root.find(f"{XH}body")
        for control in itertools.chain(body.iter(f"{XF}select1"), body.iter(f"{XF}select")):
            values = {item.findtext(f"{XF}value") for item in control.iter(f"{XF}item")}
            self.choices[control.get("ref")] = values
        self.leaves: set[str] = set()
        self.groups: set[str] = set()
        self.hidden: list[str] = []
        self._walk(self.data, "/data")

    def _walk(self, element: ET.Element, path: str) -> None:
        for child in element:
            name = child.tag.rsplit("}", 1)[-1]
            child_path = f"{path}/{name}"
            if child.get("tag") == "hidden":
                self.hidden.append(child_path[len("/data/") :].replace("/", "."))
            if len(child):
                self.groups.add(child_path)
                self._walk(child, child_path)
            else:
                self.leaves.add(child_path)

    def bind_type(self, path: str) -> str:
        return self.binds.get(path, "string")


def walk_fields(value: Any, path: str, out: list[tuple[str, Any]], spec: FormSpec) -> None:
    """(instance path, leaf value) pairs; repeat items are walked with the repeat's path."""
    if path in spec.repeats:
        assert isinstance(value, list) and value, f"{path} must be a non-empty list"
        for item in value:
            assert isinstance(item, dict)
            for key, child in item.items():
                walk_fields(child, f"{path}/{key}", out, spec)
    elif isinstance(value, dict):
        assert path == "/data" or path in spec.groups, f"{path} is not a group of the form"
        for key, child in value.items():
            walk_fields(child, f"{path}/{key}", out, spec)
    else:
        out.append((path, value))


def check_value(kind: str, value: str, choices: set[str] | None) -> bool:
    if value == "":
        return True
    if kind == "int":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "decimal":
        return re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    if kind == "date":
        return len(value) == 10 and date.fromisoformat(value) is not None
    if kind == "dateTime":
        return datetime.fromisoformat(value).tzinfo is not None
    if kind == "geopoint":
        lat, lon, alt, acc = (float(x) for x in value.split(" "))
        return -90 <= lat <= 90 and -180 <= lon <= 180 and acc >= 0
    if kind == "select1":
        return choices is None or value in choices
    if kind == "select":
        return choices is None or set(value.split(" ")) <= choices
    return kind in ("string", "db:person")


# ---------------------------------------------------------------------------------------------
# determinism and size


def test_same_seed_gives_byte_identical_docs() -> None:
    first = [json.dumps(doc, sort_keys=False) for _, doc in generate(3, 15).iter_all()]
    second = [json.dumps(doc, sort_keys=False) for _, doc in generate(3, 15).iter_all()]
    other = [json.dumps(doc) for _, doc in generate(4, 15).iter_all()]
    assert first == second
    assert first != other


def test_deployment_is_a_mapping_of_reiterable_streams(small: Deployment) -> None:
    assert list(small) == list(DATABASES)
    assert len(small) == 5
    assert [d["_id"] for d in small["medic-logs"]] == [d["_id"] for d in small["medic-logs"]]
    chunks = list(small["medic"].chunks(50))
    assert all(len(c) <= 50 for c in chunks)
    assert sum(len(c) for c in chunks) == len(list(small["medic"]))
    with pytest.raises(KeyError):
        small["medic-audit"]


def test_small_deployment_has_a_few_hundred_docs(docs: dict[str, list[dict[str, Any]]]) -> None:
    counts = {db: len(d) for db, d in docs.items()}
    assert 200 <= sum(counts.values()) <= 800, counts
    assert all(counts.values()), counts
    for db_docs in docs.values():
        ids = [d["_id"] for d in db_docs]
        assert len(ids) == len(set(ids))


def test_every_database_and_doc_kind_is_present(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    kinds = Counter((d.get("type"), d.get("form"), d.get("contact_type")) for d in medium_docs["medic"])
    for form in FORM_NAMES:
        assert kinds["data_record", form, None] > 0, form
    for kind in ("district_hospital", "health_center", "clinic", "person", "user-settings", "form"):
        assert any(k[0] == kind for k in kinds), kind
    assert kinds["contact", None, "community_group"] and kinds["contact", None, "group_member"]
    assert kinds["data_record", "P", None] and kinds["data_record", "V", None]
    assert any(d.get("kujua_message") and d["form"] is None for d in medium_docs["medic"])
    assert {d.get("type") for d in medium_docs["medic-users-meta"]} == {"telemetry", "feedback"}
    assert {d.get("type") for d in medium_docs["medic-sentinel"]} == {"info"}


def test_estimate_is_close(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    estimate = generate(5, 300).estimate_counts()
    for db, db_docs in medium_docs.items():
        assert abs(estimate[db] - len(db_docs)) <= 0.2 * len(db_docs) + 5, (db, estimate[db], len(db_docs))


def test_estimate_counts_task_target_and_users_docs() -> None:
    deployment = generate(7, 120)  # 6 areas
    actual = Counter(db for db, _ in deployment.iter_all())
    # every unit sampled: exact, but for a task doc or two (the area's households share one rng)
    estimate = deployment.estimate_counts(sample=120)
    assert {db: estimate[db] for db in DATABASES if db != "medic"} == {
        db: actual[db] for db in DATABASES if db != "medic"
    }
    assert abs(estimate["medic"] - actual["medic"]) <= 0.01 * actual["medic"]
    # 4 areas of 6 sampled: what every area has once (its CHW's user, logs) scales without loss
    estimate = deployment.estimate_counts(sample=4)
    assert (estimate["_users"], estimate["medic-logs"]) == (actual["_users"], actual["medic-logs"])


def test_dates_are_epoch_ms_in_the_window(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    clock = base.Clock(base.DEFAULT_TODAY)
    low = base.local_ms(clock.window_start - timedelta(days=92), 0)
    for doc in medium_docs["medic"]:
        if "reported_date" in doc:
            assert isinstance(doc["reported_date"], int)
            assert low <= doc["reported_date"] <= clock.now_ms, doc["_id"]


# ---------------------------------------------------------------------------------------------
# forms


def test_form_docs_carry_their_xforms(
    docs: dict[str, list[dict[str, Any]]], spec: dict[str, FormSpec]
) -> None:
    forms = {d["internalId"]: d for d in docs["medic"] if d.get("type") == "form"}
    assert set(forms) == set(FORM_NAMES)
    for name, doc in forms.items():
        assert doc["_id"] == f"form:{name}"
        xml = base64.b64decode(doc["_attachments"]["xml"]["data"])
        assert xml == spec[name].xml
        assert doc["_attachments"]["xml"]["content_type"] == "application/xml"
        assert doc["xmlVersion"]["sha256"] == hashlib.sha256(xml).hexdigest()
        assert spec[name].data.get("id") == name
        assert spec[name].data.tag == f"{XF}data"


def test_xforms_cover_the_bind_types(spec: dict[str, FormSpec]) -> None:
    types = set().union(*(set(s.binds.values()) for s in spec.values()))
    assert {"int", "decimal", "date", "dateTime", "select1", "select", "string", "geopoint"} <= types
    for name, form in spec.items():
        assert "/data/meta/instanceID" in form.leaves, name
        assert "/data/inputs/contact/_id" in form.leaves, name
        root = ET.fromstring(form.xml)
        assert any(b.get("calculate") for b in root.iter(f"{XF}bind")), name
        for repeat in form.repeats:
            element = form.data.find("/".join(XF + part for part in repeat.split("/")[2:]))
            assert element is not None and element.get(JR_TEMPLATE) is not None, (name, repeat)
    assert sum(len(s.repeats) for s in spec.values()) >= 3


def test_xform_binds_and_controls_point_into_the_instance(spec: dict[str, FormSpec]) -> None:
    for name, form in spec.items():
        nodes = form.leaves | form.groups
        assert set(form.binds) <= nodes, (name, set(form.binds) - nodes)
        body = ET.fromstring(form.xml).find(f"{XH}body")
        refs = {e.get("ref") for e in body.iter() if e.get("ref")} | form.repeats
        assert refs <= nodes, (name, refs - nodes)
        typed = {path for path in form.leaves if not path.startswith("/data/inputs/meta/")}
        assert typed <= set(form.binds), (name, typed - set(form.binds))
        for control in ("select1", "select"):
            for element in body.iter(f"{XF}{control}"):
                assert form.binds[element.get("ref")] == control, (name, element.get("ref"))


def test_every_report_points_at_a_form(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    forms = {d["internalId"]: d for d in medium_docs["medic"] if d.get("type") == "form"}
    settings = next(d for d in medium_docs["medic"] if d["_id"] == "settings")["settings"]
    for doc in medium_docs["medic"]:
        if doc.get("type") != "data_record":
            continue
        if doc.get("content_type") == "xml":
            assert doc["form_version"] == forms[doc["form"]]["xmlVersion"]
            assert doc["fields"]["meta"]["instanceID"].startswith("uuid:")
        elif doc.get("kujua_message"):
            assert doc["form"] is None and doc["tasks"][0]["messages"]
        elif "form" in doc:
            assert doc["form"] in settings["forms"]
            assert doc["sms_message"]["type"] == "sms_message"
            assert "content_type" not in doc


def test_report_fields_match_the_binds(
    medium_docs: dict[str, list[dict[str, Any]]], spec: dict[str, FormSpec]
) -> None:
    checked = Counter()
    for doc in reports(medium_docs["medic"]):
        form = spec[doc["form"]]
        leaves: list[tuple[str, Any]] = []
        walk_fields(doc["fields"], "/data", leaves, form)
        seen = {path for path, _ in leaves}
        outside_repeats = {p for p in form.leaves if not any(p.startswith(r + "/") for r in form.repeats)}
        assert outside_repeats <= seen, (doc["form"], outside_repeats - seen)
        assert seen <= form.leaves
        for path, value in leaves:
            assert isinstance(value, str), (doc["_id"], path, value)
            kind = form.bind_type(path)
            assert check_value(kind, value, form.choices.get(path)), (doc["form"], path, kind, value)
            if value:
                checked[kind] += 1
        assert doc["hidden_fields"] == form.hidden
    assert {"int", "decimal", "date", "dateTime", "select1", "select", "geopoint"} <= set(checked)


def test_repeats_are_arrays_of_objects(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    deliveries = [d["fields"] for d in reports(medium_docs["medic"], "delivery")]
    assert any("baby_repeat" in f["babys_condition"] for f in deliveries)
    for f in deliveries:
        alive = f["babys_condition"].get("baby_repeat", [])
        dead = f["baby_death"].get("baby_death_repeat", [])
        assert len(alive) == int(f["babys_condition"]["baby_repeat_count"])
        assert (
            len(alive) == int(f["delivery_outcome"]["babies_alive_num"]) == int(f["data"]["__babies_alive"])
        )
        assert (
            len(dead)
            == int(f["delivery_outcome"]["babies_deceased_num"])
            == int(f["data"]["__babies_deceased"])
        )
        assert len(alive) + len(dead) == int(f["delivery_outcome"]["babies_delivered_num"])
    doses = [d["fields"]["vaccines"] for d in reports(medium_docs["medic"], "immunization")]
    for group in doses:
        assert isinstance(group["dose"], list)
        assert len(group["dose"]) == int(group["doses_count"]) == len(group["vaccines_given"].split())
    past = [
        d["fields"]["anc_visits_hf"]["anc_visits_hf_past"] for d in reports(medium_docs["medic"], "pregnancy")
    ]
    for group in past:
        dates = group["visited_dates_group"].get("visited_dates", [])
        assert (
            len(dates)
            == int(group["visited_hf_count"])
            == int(group["visited_dates_group"]["visited_dates_count"])
        )


# ---------------------------------------------------------------------------------------------
# references and hierarchy


def lineage_ids(node: dict[str, Any] | None) -> list[str]:
    ids = []
    while node:
        assert set(node) <= {"_id", "parent"}, node
        ids.append(node["_id"])
        node = node.get("parent")
    return ids


def is_place(doc: dict[str, Any], settings: dict[str, Any]) -> bool:
    if doc.get("type") in PLACE_TYPES:
        return True
    types = {ct["id"]: ct for ct in settings["contact_types"]}
    return doc.get("type") == "contact" and not types[doc["contact_type"]].get("person", False)


def test_parent_chains_resolve_and_are_minified(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]]
) -> None:
    settings = by_id["settings"]["settings"]
    types = {ct["id"]: ct for ct in settings["contact_types"]}
    for doc in medium_docs["medic"]:
        if doc.get("type") not in CONTACT_TYPES:
            continue
        effective = doc.get("contact_type") or doc["type"]
        assert effective in types
        chain = lineage_ids(doc.get("parent"))
        if effective == "district_hospital":
            assert chain == []
            continue
        parent = by_id[chain[0]]
        assert is_place(parent, settings)
        assert (parent.get("contact_type") or parent["type"]) in types[effective]["parents"]
        assert chain[1:] == lineage_ids(parent.get("parent")), doc["_id"]
        if is_place(doc, settings) and "contact" in doc:
            person = by_id[doc["contact"]["_id"]]
            assert lineage_ids(doc["contact"]) == [person["_id"], *lineage_ids(person["parent"])]


def test_reports_reference_real_contacts(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]]
) -> None:
    users = {
        d["contact_id"]: d
        for d in medium_docs["medic"]
        if d.get("type") == "user-settings" and "contact_id" in d
    }
    for doc in medium_docs["medic"]:
        if doc.get("type") != "data_record" or "contact" not in doc:
            continue
        submitter = by_id[doc["contact"]["_id"]]
        assert lineage_ids(doc["contact"]) == [submitter["_id"], *lineage_ids(submitter["parent"])]
        assert doc["from"] == submitter["phone"]
        if doc.get("content_type") != "xml":
            continue
        assert doc["contact"]["_id"] in users
        fields = doc["fields"]
        patient = by_id[fields["patient_uuid"]]
        assert patient["type"] == "person"
        assert fields["patient_id"] == patient["patient_id"] == fields["inputs"]["contact"]["patient_id"]
        assert fields["inputs"]["contact"]["_id"] == patient["_id"]
        assert lineage_ids(fields["inputs"]["contact"]["parent"]) == lineage_ids(patient["parent"])
        assert fields["inputs"]["user"]["contact_id"] == doc["contact"]["_id"]
        assert patient["reported_date"] <= doc["reported_date"]


def test_users_logs_and_info_docs_resolve(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]]
) -> None:
    users = [d for d in medium_docs["medic"] if d.get("type") == "user-settings"]
    chws = [u for u in users if u["roles"] == ["chw"]]
    assert chws
    for user in users:
        assert user["_id"] == f"org.couchdb.user:{user['name']}"
        if "contact_id" in user:
            person = by_id[user["contact_id"]]
            assert person["parent"]["_id"] == user["facility_id"]
    area_users = {by_id[u["facility_id"]]["type"] for u in chws}
    assert area_users == {"health_center"}
    logs = {d["_id"] for d in medium_docs["medic-logs"]}
    for user in chws:
        assert f"connected-user-{user['name']}" in logs and f"replication-count-{user['name']}" in logs
    infos = medium_docs["medic-sentinel"]
    for info in infos:
        assert info["_id"] == info["doc_id"] + "-info"
        assert info["doc_id"] in by_id
        assert info["initial_replication_date"] <= info["latest_replication_date"]
    covered = len(infos) / sum(
        1 for d in medium_docs["medic"] if d.get("type") in CONTACT_TYPES | {"data_record"}
    )
    assert 0.6 < covered < 1.0


def test_shortcodes_are_unique_with_check_digits(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    length = next(d for d in medium_docs["medic"] if d["_id"] == "shortcode-id-length")["current_length"]
    codes = [
        d.get("patient_id") or d.get("place_id")
        for d in medium_docs["medic"]
        if d.get("type") in CONTACT_TYPES
    ]
    codes = [c for c in codes if c]
    assert len(codes) == len(set(codes)) > 100
    for code in codes:
        assert len(code) == length and code[-1] == base.check_digit(code[:-1])
    assert any(d.get("type") == "person" and "patient_id" not in d for d in medium_docs["medic"])
    assert any(d.get("type") == "clinic" and "place_id" not in d for d in medium_docs["medic"])


def test_sms_reports_reference_registered_patients(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]]
) -> None:
    codes = {
        d["patient_id"]: d for d in medium_docs["medic"] if d.get("type") == "person" and "patient_id" in d
    }
    sms = [d for d in medium_docs["medic"] if d.get("form") in ("P", "V")]
    for doc in sms:
        if not doc["errors"]:
            assert doc["patient_id"] in codes
        if doc["form"] == "V" and not doc["errors"]:
            assert by_id[doc["registration_id"]]["form"] == "P"
        if doc["form"] == "P":
            assert isinstance(doc["fields"]["last_menstrual_period"], int)


def test_telemetry_and_feedback_shapes(medium_docs: dict[str, list[dict[str, Any]]]) -> None:
    for doc in medium_docs["medic-users-meta"]:
        if doc["type"] == "telemetry":
            meta = doc["metadata"]
            expected = (
                f"telemetry-{meta['year']}-{meta['month']}-{meta['day']}-{meta['user']}-{meta['deviceId']}"
            )
            assert doc["_id"] == expected
            assert meta["versions"]["app"] and doc["dbInfo"]["doc_count"] > 0
            for stats in doc["metrics"].values():
                assert stats["min"] <= stats["max"]
                assert stats["count"] * stats["min"] <= stats["sum"] <= stats["count"] * stats["max"]
                assert stats["sumsqr"] >= stats["sum"] ** 2 / stats["count"] - 1e-6
        else:
            assert doc["_id"].startswith("feedback-") and doc["meta"]["time"] in doc["_id"]
            assert isinstance(doc["info"], dict | str)


# ---------------------------------------------------------------------------------------------
# clinical consistency


def years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def report_day(doc: dict[str, Any]) -> date:
    return datetime.fromisoformat(doc["fields"]["end"]).date()


def test_pregnancies_deliveries_and_visits_are_consistent(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]], spec: dict[str, FormSpec]
) -> None:
    danger_signs = pregnancy_danger_signs(spec)
    pregnancies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in reports(medium_docs["medic"], "pregnancy"):
        f = doc["fields"]
        lmp = date.fromisoformat(f["data"]["__lmp_date"])
        assert f["gestational_age"]["g_lmp_date_8601"] == f["lmp_date_8601"] == lmp.isoformat()
        assert (date.fromisoformat(f["data"]["__edd"]) - lmp).days == 280
        assert 4 * 7 <= (report_day(doc) - lmp).days <= 40 * 7
        assert f["data"]["__lmp_method"] == f["gestational_age"]["register_method"]["lmp_method"]
        born = date.fromisoformat(by_id[f["patient_uuid"]]["date_of_birth"])
        assert int(f["patient_age_in_years"]) == years(born, report_day(doc))
        signs = [f["danger_signs"][name] for name in danger_signs]
        assert f["data"]["__has_danger_sign"] == ("yes" if "yes" in signs else "no")
        pregnancies[f["patient_uuid"]].append(doc)
    deliveries = reports(medium_docs["medic"], "delivery")
    assert deliveries
    for doc in deliveries:
        f = doc["fields"]
        pregnancy = by_id[f["data"]["meta"]["__pregnancy_uuid"]]
        assert pregnancy in pregnancies[f["patient_uuid"]]
        assert pregnancy["reported_date"] < doc["reported_date"]
        lmp = date.fromisoformat(pregnancy["fields"]["data"]["__lmp_date"])
        delivered = date.fromisoformat(f["delivery_outcome"]["delivery_date"])
        assert 28 * 7 <= (delivered - lmp).days <= 44 * 7
        assert delivered <= report_day(doc)
        assert f["data"]["__delivery_place"] == f["delivery_outcome"]["delivery_place"]
        for item in f["babys_condition"].get("baby_repeat", []):
            baby = item["baby_details"]
            person = by_id[baby["child_doc"]]
            assert person["created_by_doc"] == doc["_id"] == baby["baby_profile"]["created_by_doc"]
            assert person["date_of_birth"] == delivered.isoformat()
            assert person["parent"] == by_id[f["patient_uuid"]]["parent"]
    for doc in reports(medium_docs["medic"], "pnc"):
        f = doc["fields"]
        delivery = by_id[f["data"]["meta"]["__delivery_uuid"]]
        assert delivery["fields"]["patient_uuid"] == f["patient_uuid"]
        assert doc["reported_date"] >= delivery["reported_date"]
        delivered = date.fromisoformat(f["visit"]["delivery_date"])
        assert (date.fromisoformat(f["visit"]["visit_date"]) - delivered).days == int(
            f["visit"]["days_since_delivery"]
        )


def pregnancy_danger_signs(spec: dict[str, FormSpec]) -> list[str]:
    """The pregnancy form's danger signs: the yes / no questions of its ``danger_signs`` group."""
    group = "/data/danger_signs/"
    signs = [ref[len(group) :] for ref in spec["pregnancy"].choices if ref.startswith(group)]
    assert signs
    return signs


def test_antenatal_reports_belong_to_a_pregnancy(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]], spec: dict[str, FormSpec]
) -> None:
    danger_signs = pregnancy_danger_signs(spec)
    counts: Counter[str] = Counter()
    for form in ("pregnancy_home_visit", "pregnancy_danger_sign", "pregnancy_danger_sign_follow_up"):
        for doc in reports(medium_docs["medic"], form):
            f = doc["fields"]
            pregnancy = by_id[f["data"]["meta"]["__pregnancy_uuid"]]
            assert pregnancy["form"] == "pregnancy"
            assert pregnancy["fields"]["patient_uuid"] == f["patient_uuid"]
            assert pregnancy["reported_date"] < doc["reported_date"]
            if "r_danger_sign_present" in f.get("danger_signs", {}):
                signs = [f["danger_signs"][name] for name in danger_signs]
                if f["danger_signs"]["r_danger_sign_present"] or form != "pregnancy_home_visit":
                    assert f["data"]["__has_danger_sign"] == ("yes" if "yes" in signs else "no")
            counts[form] += 1
            counts[f"{form}:{f['data'].get('__has_danger_sign')}"] += 1
    assert counts["pregnancy_home_visit"] > counts["pregnancy_danger_sign_follow_up"] > 0
    assert counts["pregnancy_home_visit:yes"] > 0
    assert counts["pregnancy_danger_sign:yes"] == counts["pregnancy_danger_sign"] > 0


def test_deaths_and_undone_deaths(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]]
) -> None:
    deaths = {d["fields"]["patient_uuid"]: d for d in reports(medium_docs["medic"], "death_report")}
    undone = {d["fields"]["patient_uuid"]: d for d in reports(medium_docs["medic"], "undo_death_report")}
    assert deaths and set(undone) < set(deaths)
    for patient, doc in deaths.items():
        f = doc["fields"]
        died = date.fromisoformat(f["death_details"]["date_of_death"])
        assert died <= report_day(doc)
        assert f["data"]["__place_of_death"] == f["death_details"]["place_of_death"]
        person = by_id[patient]
        if patient in undone:
            assert undone[patient]["reported_date"] > doc["reported_date"]
            assert "date_of_death" not in person
        else:
            assert person["date_of_death"] == died.isoformat()


def test_child_reports_match_the_childs_age(
    medium_docs: dict[str, list[dict[str, Any]]], by_id: dict[str, dict[str, Any]]
) -> None:
    for doc in reports(medium_docs["medic"], "assessment"):
        f = doc["fields"]
        born = date.fromisoformat(by_id[f["patient_uuid"]]["date_of_birth"])
        day = report_day(doc)
        months = (day.year - born.year) * 12 + day.month - born.month - (day.day < born.day)
        assert int(f["patient_age_in_months"]) == months and 2 <= months < 60
        fast = int(f["group_assess"]["resp_rate"]) >= (50 if months < 12 else 40)
        assert f["group_cough"]["fast_breathing"] == ("true" if fast else "false")
        malaria = f["group_fever"]["mrdt_result"] == "positive"
        assert ("malaria" in f["group_diagnosis"]["classification"].split()) == malaria
        assert (f["group_fever"]["patient_fever"] == "yes") == (
            float(f["group_assess"]["temperature_c"]) >= 37.5
        )
    for doc in reports(medium_docs["medic"], "immunization"):
        f = doc["fields"]
        born = date.fromisoformat(by_id[f["patient_uuid"]]["date_of_birth"])
        visit = date.fromisoformat(f["visit"]["visit_date"])
        assert int(f["patient_age_in_weeks"]) == (visit - born).days // 7
        assert all(dose["dose_date"] == f["visit"]["visit_date"] for dose in f["vaccines"]["dose"])


# ---------------------------------------------------------------------------------------------
# mutations


def test_mutation_rounds(small: Deployment, docs: dict[str, list[dict[str, Any]]]) -> None:
    current = {(db, d["_id"]): d for db, db_docs in docs.items() for d in db_docs}
    rounds = [small.mutations(n) for n in range(1, gen.MUTATION_ROUNDS + 1)]
    households = [set(small.mutation_households(n)) for n in range(1, gen.MUTATION_ROUNDS + 1)]
    assert not (households[0] & households[1]) and not (households[1] & households[2])
    assert small.mutations(1) == rounds[0]
    kinds = Counter(m.kind for m in rounds[0])
    assert {"create", "edit", "delete", "stub_delete", "conflict"} <= set(kinds), kinds
    for mutation in rounds[0]:
        doc = mutation.docs[0]
        before = current.get((mutation.db, doc["_id"]))
        if mutation.kind == "create":
            assert before is None
            assert gen.rev_generation(doc["_rev"]) == 1
            continue
        assert before is not None, mutation
        assert gen.rev_generation(doc["_rev"]) > gen.rev_generation(before["_rev"])
        if mutation.kind == "stub_delete":
            assert set(doc) == {"_id", "_rev", "_deleted"}
        if mutation.kind == "delete":
            assert doc["_deleted"] is True and doc["type"] == "data_record"
        if mutation.kind == "conflict":
            online, offline = mutation.docs
            assert online["_id"] == offline["_id"] and online["_rev"] != offline["_rev"]
            assert gen.rev_generation(online["_rev"]) == gen.rev_generation(offline["_rev"])
    sentinel_edits = [m for m in itertools.chain(*rounds) if m.note.startswith("Sentinel adds")]
    assert sentinel_edits
    for mutation in sentinel_edits:
        assert "patient_id" not in current["medic", mutation.doc_id]
        assert mutation.docs[0]["patient_id"]


class FakeCouch:
    """Revision trees of a CouchDB server, as far as ``_bulk_docs?new_edits=false`` goes."""

    def __init__(self) -> None:
        self.dbs: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.calls: list[tuple[str, int, bool]] = []

    def client(self, db: str) -> FakeClient:
        return FakeClient(self, db)


class FakeClient:
    def __init__(self, server: FakeCouch, db: str) -> None:
        self.server, self.db = server, db

    def create_db(self) -> None:
        self.server.dbs.setdefault(self.db, {})

    def db_info(self) -> dict[str, Any]:
        docs = self.server.dbs[self.db]
        live = sum(1 for leaves in docs.values() if any(not d.get("_deleted") for d in leaves.values()))
        return {"db_name": self.db, "doc_count": live}

    def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict[str, Any]]:
        self.server.calls.append((self.db, len(docs), new_edits))
        assert new_edits is False
        store = self.server.dbs[self.db]
        for doc in docs:
            history = doc["_revisions"]
            assert doc["_rev"] == f"{history['start']}-{history['ids'][0]}"
            leaves = store.setdefault(doc["_id"], {})
            if doc["_rev"] in leaves:
                continue
            parent = f"{history['start'] - 1}-{history['ids'][1]}" if len(history["ids"]) > 1 else None
            leaves.pop(parent, None)
            leaves[doc["_rev"]] = doc
        return []


def test_loader_writes_everything_and_rounds_extend_the_revision_trees(small: Deployment) -> None:
    server = FakeCouch()
    seen: list[Any] = []
    report = load_deployment(server.client, small, db_prefix="demo", chunk_size=100, progress=seen.append)
    assert set(server.dbs) == {"demo", "demo-sentinel", "demo-users-meta", "demo-logs", "demo-users"}
    expected = {db: len(list(small[db])) for db in DATABASES}
    assert {db: s.written for db, s in report.databases.items()} == expected
    assert {db: len(server.dbs[database_name("demo", db)]) for db in DATABASES} == expected
    assert all(n <= 100 for _, n, _ in server.calls)
    assert seen and seen[-1].docs == sum(expected.values()) and seen[-1].rate > 0
    assert report.error_count == 0

    medic = server.dbs["demo"]
    again = load_deployment(server.client, (11, 20), db_prefix="demo", chunk_size=100)
    assert again.written == report.written and all(len(leaves) == 1 for leaves in medic.values())

    mutations = small.mutations(1)
    result = apply_mutations(server.client, small, 1, db_prefix="demo")
    assert result.written == sum(len(m.docs) for m in mutations)
    for mutation in mutations:
        leaves = server.dbs[database_name("demo", mutation.db)][mutation.doc_id]
        if mutation.kind == "conflict":
            assert len(leaves) == 2, "both branches stay as leaves"
        else:
            assert list(leaves) == [mutation.docs[0]["_rev"]], mutation
    deleted = [m.doc_id for m in mutations if m.kind in ("delete", "stub_delete")]
    assert deleted and all(next(iter(medic[i].values()))["_deleted"] for i in deleted)
    apply_mutations(server.client, small, 1, db_prefix="demo")  # idempotent
    assert all(
        len(medic[m.doc_id]) == (2 if m.kind == "conflict" else 1) for m in mutations if m.db == "medic"
    )


# ---------------------------------------------------------------------------------------------
# scale and memory


def test_streaming_is_lazy_and_flat() -> None:
    deployment = generate(2, 50_000)
    tracemalloc.start()
    try:
        first = list(itertools.islice(deployment.iter_all(), 3_000))
        del first
        stream = deployment.iter_all()
        for _ in itertools.islice(stream, 10_000):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_two_thousand_households_make_over_twenty_thousand_docs_quickly() -> None:
    started = time.monotonic()
    total = sum(1 for _ in generate(9, 2000).iter_all())
    elapsed = time.monotonic() - started
    assert total > 20_000
    assert elapsed < 20, f"{total} docs took {elapsed:.1f}s"


def test_loader_reports_rejections_and_surfaces_failures(small: Deployment) -> None:
    class Rejecting(FakeClient):
        def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict[str, Any]]:
            super().bulk_docs(docs, new_edits=new_edits)
            return [{"id": docs[0]["_id"], "error": "forbidden", "reason": "nope"}]

    server = FakeCouch()
    report = load_deployment(lambda db: Rejecting(server, db), small, chunk_size=50)
    assert report.error_count == len(server.calls) and report.errors[0]["error"] == "forbidden"

    class Failing(FakeClient):
        def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict[str, Any]]:
            if len(self.server.calls) >= 3:
                raise ConnectionError("server went away")
            return super().bulk_docs(docs, new_edits=new_edits)

    with pytest.raises(ConnectionError):
        load_deployment(lambda db: Failing(FakeCouch(), db), generate(1, 400), chunk_size=20)


def test_cli_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    from cht_assets.demo.cli import main

    assert main(["--households", "5", "--seed", "2", "--dry-run", "--db-prefix", "demo"]) == 0
    out = capsys.readouterr().out
    assert "demo-sentinel" in out and "mutation round 1" in out


# ---------------------------------------------------------------------------------------------
# "today"


def local_day(ms: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms, hours=3)).date()


@pytest.mark.parametrize("today", [date(2026, 12, 1), date(2027, 3, 31), date(2025, 2, 14)])
def test_dates_follow_today_and_this_month_has_data(today: date) -> None:
    docs = list(generate(3, 60, today)["medic"])
    assert docs == list(generate(3, 60, today)["medic"])
    this_month: Counter[str] = Counter()
    for doc in docs:
        if isinstance(doc.get("reported_date"), int):
            day = local_day(doc["reported_date"])
            assert day <= today, doc["_id"]
            if (day.year, day.month) == (today.year, today.month):
                this_month[doc.get("form") or doc["type"]] += 1
    deliveries = [d for d in docs if d.get("form") == "delivery"]
    births = [
        d for d in deliveries if d["fields"]["delivery_outcome"]["delivery_date"][:7] == today.isoformat()[:7]
    ]
    deaths = [d for d in docs if d.get("form") == "death_report"]
    died = [d for d in deaths if d["fields"]["death_details"]["date_of_death"][:7] == today.isoformat()[:7]]
    assert this_month["pregnancy"] > 0 and births and died, this_month


def test_some_chws_have_not_synced_for_a_week() -> None:
    today = date(2026, 12, 4)
    deployment = generate(3, 60, today)
    last_seen: dict[str, date] = {}
    for doc in deployment["medic-users-meta"]:
        if doc.get("type") == "telemetry":
            user = doc["metadata"]["user"]
            day = date(doc["metadata"]["year"], doc["metadata"]["month"], doc["metadata"]["day"])
            last_seen[user] = max(day, last_seen.get(user, day))
    chws = {
        d["name"] for d in deployment["medic"] if d.get("type") == "user-settings" and "chw" in d["roles"]
    }
    idle = {user for user, day in last_seen.items() if (today - day).days > 7}
    assert idle and idle < chws
    reported = {
        d["contact"]["_id"]: local_day(d["reported_date"])
        for d in sorted(deployment["medic"], key=lambda d: d.get("reported_date", 0))
        if d.get("type") == "data_record" and "contact" in d
    }
    contacts = {
        d["name"]: d.get("contact_id") for d in deployment["medic"] if d.get("type") == "user-settings"
    }
    for user in idle:
        assert (today - reported[contacts[user]]).days > 7


def test_users_database_mirrors_the_user_settings(small: Deployment) -> None:
    settings = {d["_id"]: d for d in small["medic"] if d.get("type") == "user-settings"}
    users = list(small["_users"])
    assert {d["_id"] for d in users} == {i for i, d in settings.items() if "_admin" not in d["roles"]}
    facilities = {d["_id"] for d in small["medic"] if d.get("type") == "district_hospital"}
    for doc in users:
        assert doc["type"] == "user" and not {"password", "password_scheme", "derived_key", "salt"} & set(doc)
        assert doc["roles"] == settings[doc["_id"]]["roles"]
        if "chw_supervisor" in doc["roles"]:
            assert doc["facility_id"] in facilities
    assert {r for d in users for r in d["roles"]} == {"chw", "chw_supervisor"}


def test_tasks_and_targets_per_chw(small: Deployment) -> None:
    medic = list(small["medic"])
    chws = {d["name"] for d in medic if d.get("type") == "user-settings" and d["roles"] == ["chw"]}
    tasks = [d for d in medic if d.get("type") == "task"]
    assert tasks
    targets = [d for d in medic if d.get("type") == "target"]
    assert {d["user"].removeprefix("org.couchdb.user:") for d in tasks} <= chws
    assert {d["user"].removeprefix("org.couchdb.user:") for d in targets} == chws
    settings = next(d for d in medic if d["_id"] == "settings")
    ids = {item["id"] for item in settings["settings"]["tasks"]["targets"]["items"]}
    assert {t["id"] for d in targets for t in d["targets"]} <= ids
