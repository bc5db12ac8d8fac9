"""Hostile names, end to end: form ids, XForm field names, place types and place names with
quotes, semicolons, `$$`, backslashes, `%` placeholders, 300-byte names, unicode and reserved
words go from pouchdb-server through the Dagster assets into formviews and the hierarchy. The
views build with quoted identifiers, the values come back verbatim, and no injected statement
ever runs: the canary table survives and no object appears that the pipeline did not name."""

from __future__ import annotations

import base64
import re
from datetime import date
from typing import Any
from xml.sax.saxutils import quoteattr

import psycopg
import pytest

from cht_assets.defs.forms import current_forms_version
from cht_assets.defs.views import load_catalog
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.warehouse.dictionary import CHOICES_TABLE, FIELDS_TABLE
from cht_assets.xforms.formview import formview_name
from tests.integration.pipeline import Deployment, new_deployment
from tests.support import dagster as support

CANARY = "hostile_canary"
INJECTED = "DROP TABLE hostile_canary; CREATE TABLE pwned (x int); CREATE ROLE pwned_role"
LONG_UNICODE = "формуляр_" * 20  # 340 bytes in UTF-8
FORM_IDS = [
    f"q'); {INJECTED}; --",
    f'dq"; {INJECTED}; --',
    f"$$; {INJECTED}; $$ back\\slash\\' %s %(ids)s",
    "select",
    LONG_UNICODE + "'",
]
# XML element names can hold no quote or `;`: reserved words, unicode, dots and dashes, a name
# PostgreSQL would truncate, two names that clean to the same, and the view's own columns.
FIELDS = ["select", "from", "user", "名前", "données", "a.b-c", "a_b_c", "uuid", "patient_id", "x" * 300]
VALUES = {
    "select": f"'; {INJECTED}; --",
    "from": f"$$ {INJECTED} $$",
    "user": "back\\slash \\' \\\\",
    "名前": "名前 🙂",
    "données": '"dq" %s %(ids)s',
    "a.b-c": "a.b-c",
    "a_b_c": "a_b_c",
    "uuid": "not-the-uuid",
    "patient_id": "p-1",
    "x" * 300: "long",
}
PLACE_TYPES = [f"area'; {INJECTED}; --", 'zone"x', "$$dollar$$", "select", "村" * 40, "t" * 300]


def xform(form_id: str) -> bytes:
    leaves = "".join(f"<{name}/>" for name in FIELDS)
    return f"""<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa">
<h:head><h:title>hostile</h:title><model>
<instance><data id={quoteattr(form_id)} version="1">{leaves}<order><n/><when/></order>
<table jr:template=""><v/></table><meta><instanceID/></meta></data></instance>
<bind nodeset="/data/order/n" type="int"/><bind nodeset="/data/order/when" type="date"/>
</model></h:head><h:body/></h:html>""".encode()


def form_doc(form_id: str) -> dict[str, Any]:
    return {
        "_id": f"form:{form_id}",
        "type": "form",
        "internalId": form_id,
        "_attachments": {
            "xml": {"content_type": "application/xml", "data": base64.b64encode(xform(form_id)).decode()}
        },
    }


def report(index: int, form_id: str, chw: str) -> dict[str, Any]:
    return {
        "_id": f"hostile-report-{index}",
        "type": "data_record",
        "form": form_id,
        "reported_date": 1_750_000_000_000 + index,
        "contact": {"_id": chw},
        "fields": {
            **VALUES,
            "order": {"n": "42", "when": "2025-02-03"},
            "table": [{"v": f"row 1 of {form_id}"}, {"v": "row 2 '); --"}],
        },
    }


def places(hc: str) -> list[dict[str, Any]]:
    docs = []
    for index, place_type in enumerate(PLACE_TYPES):
        docs.append(
            {
                "_id": f"hostile-place-{index}",
                "type": "contact",
                "contact_type": place_type,
                "name": f"{place_type} name '; {INJECTED}; -- $$ \\",
                "parent": {"_id": hc},
            }
        )
    return docs


def settings_with_types(settings: dict[str, Any]) -> dict[str, Any]:
    types = list(settings.get("settings", {}).get("contact_types") or [])
    types += [{"id": t, "name_key": t, "parents": ["health_center"]} for t in PLACE_TYPES]
    return {**settings, "settings": {**settings.get("settings", {}), "contact_types": types}}


def catalog(conn: psycopg.Connection) -> dict[str, set[str]]:
    return {
        "schemas": {
            r[0]
            for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_'")
        },
        "roles": {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")},
        "relations": {
            f"{s}.{r}"
            for s, r in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            )
        },
        "functions": {
            f"{s}.{p}"
            for s, p in conn.execute(
                "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            )
        },
    }


@pytest.fixture
def deployment(couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    load_deployment(couch_clients(couch_server.url), generate(7, 3), db_prefix=deployment.prefix)
    docs = deployment.docs()
    hc = next(d["_id"] for d in docs if d.get("type") == "health_center")
    chw = next(d["_id"] for d in docs if d.get("type") == "person" and d["parent"]["_id"] == hc)
    settings = next((d for d in docs if d["_id"] == "settings"), {"_id": "settings", "settings": {}})
    hostile = [form_doc(form_id) for form_id in FORM_IDS]
    hostile += [report(i, form_id, chw) for i, form_id in enumerate(FORM_IDS)]
    hostile += [*places(hc), settings_with_types(settings)]
    results = deployment.client().bulk_docs(hostile)
    assert all(r.get("ok") for r in results), results
    return deployment


def test_hostile_names_build_safe_views_and_inject_nothing(deployment: Deployment) -> None:
    with psycopg.connect(deployment.pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {CANARY} (x integer)")
        conn.execute(f"INSERT INTO {CANARY} VALUES (1)")
        before = catalog(conn)

    # The forms arrive live: the definitions are loaded before the first sync, so the hostile
    # forms are read from CouchDB, and one run syncs and builds everything.
    catalog_before_sync = load_catalog()
    assert {formview_name(form_id) for form_id in FORM_IDS} <= set(catalog_before_sync.entries)
    result = support.materialize(support.location_assets(), deployment.resources())
    assert result.success
    # The synced forms give the catalog the definitions were built from: no reload asked for.
    assert current_forms_version(deployment.pg_url, catalog_before_sync) == catalog_before_sync.forms_version
    failing = [
        (c.asset_key.path[-1], c.check_name)
        for c in result.get_asset_check_evaluations()
        if not c.passed and c.severity.value == "ERROR"
    ]
    assert failing == []

    built = {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}
    with psycopg.connect(deployment.pg_url, autocommit=True) as conn:
        assert conn.execute(f"SELECT x FROM {CANARY}").fetchall() == [(1,)], "the canary was touched"
        after = catalog(conn)
        known_columns = dict(conn.execute("SELECT view, columns FROM cht_meta.formview_columns").fetchall())
        indexed = {
            f"public.{r[0]}"
            for r in conn.execute(
                "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
                "WHERE n.nspname = 'public' AND t.relname = ANY(%s)",
                (sorted(built),),
            )
        }
        hierarchy_columns = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'public.contactview_hierarchy'::regclass "
                "AND attnum > 0 ORDER BY attnum"
            )
        ]

        # Nothing the pipeline did not name: no pwned table, role or schema; every new
        # relation in `public` is an asset, an index of one, or a couch2pg compatibility view.
        assert after["roles"] == before["roles"]
        assert after["schemas"] - before["schemas"] == {"raw", "cht_meta"}
        assert "public.pwned" not in after["relations"] and "pwned_role" not in after["roles"]
        compat = {
            "couchdb",
            "couchdb_users_meta",
            "couchdb_medic_logs",
            "couchdb_medic_users",
            "couchdb_progress",
        }
        new_public = {
            r.removeprefix("public.")
            for r in after["relations"] - before["relations"]
            if r.startswith("public.")
        }
        # The data dictionary's tables (their names bound in no document) and their indexes.
        dictionary = {f"{t}{suffix}" for t in (FIELDS_TABLE, CHOICES_TABLE) for suffix in ("", "_form_field")}
        unexpected = new_public - built - compat - dictionary - {i.removeprefix("public.") for i in indexed}
        assert unexpected == set(), unexpected
        assert {
            f.split(".")[1] for f in after["functions"] - before["functions"] if f.startswith("public.")
        } <= built

        # One formview (and one repeat view) per hostile form, safe names, values verbatim.
        views = {}
        for index, form_id in enumerate(FORM_IDS):
            matches = [
                view
                for view in known_columns
                if conn.execute(
                    f'SELECT count(*) FROM "{view}" WHERE {"uuid" if "__" not in view else "parent_uuid"} = %s',
                    (f"hostile-report-{index}",),
                ).fetchone()[0]
            ]
            assert len(matches) == 2, (form_id, matches)
            views[form_id] = matches
        for form_id, pair in views.items():
            (main,), (repeat,) = [v for v in pair if "__" not in v], [v for v in pair if "__" in v]
            for view in (main, repeat):
                assert re.fullmatch(r"[a-z0-9_]{1,63}", view), view
            columns = {c["json_path"][-1]: c["name"] for c in known_columns[main]}
            assert set(FIELDS) <= set(columns), set(FIELDS) - set(columns)
            assert all(re.fullmatch(r"[a-z0-9_]{1,63}", name) for name in columns.values()), columns
            assert columns["uuid"] != "uuid" and columns["patient_id"] != "patient_id"
            assert columns["a.b-c"] != columns["a_b_c"]
            select = ", ".join(f'"{columns[field]}"' for field in FIELDS)
            got = conn.execute(f'SELECT uuid, {select}, order_n, order_when FROM "{main}"').fetchall()
            index = FORM_IDS.index(form_id)
            assert got == [
                (f"hostile-report-{index}", *[VALUES[field] for field in FIELDS], 42, date(2025, 2, 3))
            ]
            rows = conn.execute(f'SELECT repeat_index, v FROM "{repeat}" ORDER BY 1').fetchall()
            assert rows == [(1, f"row 1 of {form_id}"), (2, "row 2 '); --")]
            forms = conn.execute(
                "SELECT formname FROM form_metadata WHERE uuid = %s", (f"hostile-report-{index}",)
            )
            assert forms.fetchone() == (form_id,)

        # Hierarchy: a column pair per hostile place type, the names come back verbatim.
        for index, place_type in enumerate(PLACE_TYPES):
            name = f"{place_type} name '; {INJECTED}; -- $$ \\"
            found = conn.execute(
                "SELECT name, contact_type FROM contactview_hierarchy WHERE uuid = %s",
                (f"hostile-place-{index}",),
            ).fetchone()
            assert found == (name, place_type)
        assert len(hierarchy_columns) == len(set(hierarchy_columns)) >= 9 + 2 * (3 + len(PLACE_TYPES))
        assert all(re.fullmatch(r"[a-z0-9_]{1,63}", column) for column in hierarchy_columns), (
            hierarchy_columns
        )
    print(f"\nhostile names: {len(views)} forms -> {sorted(v for pair in views.values() for v in pair)}")
