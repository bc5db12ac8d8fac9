"""Access: the read-only PostgreSQL roles on a real pipeline database (views, raw, _users docs),
and, where the Superset venv exists, managers through SQL Lab and explore. What
tests/superset/test_access.py covers already (chart data per area, WHERE-clause and sub-query
tricks, RLS rules) is not repeated."""

from __future__ import annotations

import json
import re
import uuid

import psycopg
import pytest
import requests

from cht_assets.bi.access_config import DEFAULT_VIEW_PREFIXES, DEFAULT_VIEW_SCHEMAS
from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.warehouse.roles import (
    DICTIONARY_TABLES,
    DbRoles,
    PgRole,
    base_model_names,
    sync_database_roles,
)
from tests.integration.pipeline import materialize_all, new_deployment

WRITES = [
    "INSERT INTO public.contactview_contact (uuid) VALUES ('x')",
    "UPDATE public.contactview_contact SET name = 'x'",
    "DELETE FROM public.form_metadata",
    "TRUNCATE public.form_metadata",
    "CREATE TABLE public.analyst_was_here (x int)",
    "CREATE VIEW public.analyst_view AS SELECT 1 AS x",
    "CREATE FUNCTION public.analyst_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE SCHEMA analyst_schema",
    "COMMENT ON TABLE public.contactview_contact IS 'x'",
    "ALTER TABLE public.contactview_contact ADD COLUMN x int",
    "DROP VIEW public.contactview_hierarchy",
    "SELECT nextval('raw.couchdb_change_seq')",
    "UPDATE raw.couchdb_progress SET seq = '0'",
    "INSERT INTO cht_meta.refresh_state (object, layer, kind, code_version) VALUES ('x', 'x', 'x', 'x')",
    "GRANT SELECT ON public.contactview_contact TO PUBLIC",
]
# The same after switching the role's read-only default off (any session may): only missing
# privileges stand in the way then.
READ_WRITE = "SET default_transaction_read_only = off"
ESCAPES = [*WRITES[:5], "CREATE TEMP TABLE t (x int)", "SELECT lo_create(0)"]
SECRET_READS = [
    "SELECT doc FROM raw.couchdb_docs LIMIT 1",
    "SELECT xml FROM raw.couchdb_form_xml LIMIT 1",
    "SELECT doc FROM public.couchdb_medic_users LIMIT 1",
    "SELECT doc FROM public.couchdb LIMIT 1",
    "SELECT doc FROM public.couchdb_users_meta LIMIT 1",
    "SELECT doc FROM public.raw_contacts LIMIT 1",
    "SELECT * FROM cht_meta.formview_columns LIMIT 1",
]


def attempt(conn: psycopg.Connection, statement: str, *, read_write: bool = False) -> str | None:
    """None when the statement went through, else the error's class."""
    conn.execute(READ_WRITE if read_write else "RESET default_transaction_read_only")
    try:
        conn.execute(statement)
        return None
    except psycopg.Error as error:
        return type(error).__name__


def test_database_roles_read_views_only_and_write_nothing(
    couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    load_deployment(couch_clients(couch_server.url), generate(7, 3), db_prefix=deployment.prefix)
    assert materialize_all(deployment)[1].success
    tag = uuid.uuid4().hex[:8]
    roles = DbRoles(PgRole(f"hostile_superset_{tag}", "pw-s"), PgRole(f"hostile_analyst_{tag}", "pw-a"))
    changes = sync_database_roles(pg_url, roles, DEFAULT_VIEW_SCHEMAS, DEFAULT_VIEW_PREFIXES)
    public = next(c for c in changes if c.role == "PUBLIC")
    # The test server's superuser may revoke all (lo_import is superuser-only already).
    assert public.warnings == () and "EXECUTE on pg_catalog.lo_create(oid) from PUBLIC" in public.revoked, (
        public
    )
    assert "TEMPORARY on the database from PUBLIC" in public.revoked

    outcomes: dict[str, dict[str, str | None]] = {}
    for role in (roles.superset.name, roles.analyst.name):
        url = psycopg.conninfo.make_conninfo(pg_url, user=role)
        with psycopg.connect(url, autocommit=True) as conn:
            readable = [
                r[0]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'v', 'm') "
                    "AND has_table_privilege(c.oid, 'SELECT')"
                )
            ]
            for relation in readable:
                assert conn.execute(f'SELECT count(*) FROM public."{relation}"').fetchone()[0] >= 0
            jsonb = conn.execute(
                "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relname = ANY(%s) AND a.atttypid IN ('jsonb'::regtype, 'json'::regtype) AND a.attnum > 0",
                (readable,),
            ).fetchall()
            outcomes[role] = {s: attempt(conn, s) for s in WRITES + SECRET_READS}
            outcomes[role] |= {f"{READ_WRITE}; {s}": attempt(conn, s, read_write=True) for s in ESCAPES}
            assert outcomes[role][WRITES[0]] == "ReadOnlySqlTransaction"
            assert outcomes[role][SECRET_READS[0]] == "InsufficientPrivilege"
            assert outcomes[role][f"{READ_WRITE}; {WRITES[0]}"] == "InsufficientPrivilege"
        assert readable and all(
            r.startswith(("contactview_", "formview_", "useview_"))
            or r in base_model_names() | DICTIONARY_TABLES
            for r in readable
        ), readable
        assert base_model_names() <= set(readable)  # cht-pipeline's queries run for analysts
        assert {"contactview_contact", "form_metadata"} - set(readable) == {"form_metadata"}, readable
        assert jsonb == [], f"{role} reads raw JSON through {jsonb}"
    went_through = {role: [s for s, error in o.items() if error is None] for role, o in outcomes.items()}
    assert went_through == {roles.superset.name: [], roles.analyst.name: []}, json.dumps(
        went_through, indent=1
    )
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'analyst%%'").fetchone() == (0,)
    print(f"\nroles: {len(WRITES + ESCAPES + SECRET_READS)} statements refused for each of two roles")


# --- Superset: a manager through SQL Lab and explore ---------------------------------------------


def dataset_ids(admin: SupersetClient) -> dict[str, int]:
    return {d["table_name"]: d["id"] for d in admin.list_all("dataset")}


@pytest.mark.superset
def test_a_manager_cannot_use_sql_lab(manager_clients: dict[str, SupersetClient], provisioned, admin) -> None:
    stmary = manager_clients["stmary"]
    database_id = next(
        d["id"] for d in admin.list_all("database") if d["database_name"] == provisioned.database.name
    )
    query = {
        "database_id": database_id,
        "sql": "SELECT chw_uuid, district_hospital_uuid FROM public.useview_chw_activity",
        "schema": "public",
        "runAsync": False,
        "select_as_cta": False,
    }
    refused = []
    for method, path, body in [
        ("POST", "/api/v1/sqllab/execute/", query),
        ("POST", "/api/v1/sqllab/estimate/", {"database_id": database_id, "sql": query["sql"]}),
        ("GET", f"/api/v1/database/{database_id}/select_star/useview_chw_activity/", None),
        (
            "GET",
            f"/api/v1/database/{database_id}/table_metadata/?name=useview_chw_activity&schema=public",
            None,
        ),
        ("GET", "/api/v1/query/", None),
        ("GET", "/api/v1/saved_query/", None),
    ]:
        try:
            answer = stmary.post(path, body) if method == "POST" else stmary.get(path)
        except SupersetAPIError as error:
            refused.append((path, error.status))
            continue
        text = json.dumps(answer)
        assert "dh-north" not in text, f"{path} answered with another area's rows"
        assert method == "GET" and path.endswith(("/query/", "/saved_query/")), (
            f"{path} answered: {text[:300]}"
        )
        assert answer.get("count", 0) == 0 or all(
            item.get("user", {}).get("username") in (None, "mgr_stmary") for item in answer.get("result", [])
        )
    assert {p for p, _ in refused} >= {"/api/v1/sqllab/execute/", "/api/v1/sqllab/estimate/"}, refused
    assert all(status in (400, 401, 403, 404, 422) for _, status in refused), refused


class WebSession:
    """A browser's session: the login form, a session cookie and its CSRF token (the explore
    page's legacy endpoints take no JWT)."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url, self.session = url, requests.Session()
        page = self.session.get(f"{url}/login/", timeout=30)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page.text
        )
        assert token, "no CSRF token on the login page"
        login = self.session.post(
            f"{url}/login/",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            allow_redirects=False,
            timeout=30,
        )
        assert login.status_code in (302, 303), login.status_code
        self.session.headers.update(
            {"X-CSRFToken": token.group(1), "Referer": url, "Accept": "application/json"}
        )

    def call(self, method: str, path: str, **kwargs: object) -> tuple[int, str]:
        response = self.session.request(method, self.url + path, timeout=60, allow_redirects=False, **kwargs)
        return response.status_code, response.text


@pytest.mark.superset
def test_a_manager_cannot_read_another_area_through_explore(
    superset_server, manager_clients: dict[str, SupersetClient], admin: SupersetClient, provisioned
) -> None:
    """The explore page's own data paths, as a logged-in browser: the samples pane, the filter
    dropdowns' distinct values, the legacy explore_json endpoint, and the explore bootstrap. Each
    is first shown to return the north's rows to an admin (so a refusal means something)."""
    from cht_assets.servers.superset import admin_credentials
    from tests.superset.conftest import MANAGERS

    ids = dataset_ids(admin)
    activity, pregnancy = ids["useview_chw_activity"], ids["useview_pregnancy"]
    form_data = {
        "datasource": f"{activity}__table",
        "viz_type": "table",
        "query_mode": "raw",
        "all_columns": ["chw_uuid", "district_hospital_uuid"],
        "row_limit": 1000,
    }
    probes = {
        "samples": (
            "POST",
            f"/datasource/samples?datasource_id={activity}&datasource_type=table&force=true",
            {"json": {}},
        ),
        "filtered samples": (
            "POST",
            f"/datasource/samples?datasource_id={activity}&datasource_type=table&force=true",
            {"json": {"filters": [{"col": "district_hospital_uuid", "op": "==", "val": "dh-north"}]}},
        ),
        "filter values": (
            "GET",
            f"/api/v1/datasource/table/{activity}/column/district_hospital_uuid/values/",
            {},
        ),
        "explore_json": ("POST", "/superset/explore_json/", {"data": {"form_data": json.dumps(form_data)}}),
        "explore bootstrap": ("GET", f"/api/v1/explore/?datasource_type=table&datasource_id={activity}", {}),
    }
    manager = MANAGERS["stmary"]
    as_admin = WebSession(superset_server.url, *admin_credentials())
    as_manager = WebSession(superset_server.url, manager.username, manager.password)
    outcome: dict[str, tuple[int, int]] = {}
    leaked, meaningful = [], []
    for name, (method, path, kwargs) in probes.items():
        admin_status, admin_text = as_admin.call(method, path, **kwargs)
        status, text = as_manager.call(method, path, **kwargs)
        outcome[name] = (admin_status, status)
        if admin_status == 200 and "dh-north" in admin_text:
            meaningful.append(name)
        if "dh-north" in text:
            leaked.append(name)
    assert leaked == [], f"another area's rows through {leaked}: {outcome}"
    assert {"samples", "filtered samples"} <= set(meaningful), outcome
    # A dataset outside the manager's dashboards: explore refuses it outright.
    with pytest.raises(SupersetAPIError) as refused:
        manager_clients["stmary"].get(f"/api/v1/explore/?datasource_type=table&datasource_id={pregnancy}")
    assert refused.value.status in (403, 404)
    print(
        f"\nexplore probes (admin status, manager status): {outcome}; admin saw the north through {meaningful}"
    )
