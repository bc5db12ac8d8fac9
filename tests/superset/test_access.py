"""Managers see their area only; the PostgreSQL roles read the view layers only."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from cht_assets.bi.access import provision_access
from cht_assets.bi.access_config import load_access
from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.bi.datasets import DatasetSource, dataset_uuid
from cht_assets.bi.rls import AREA_COLUMN, rls_clause
from cht_assets.defs.superset import ACCESS_KEY, build_superset_assets, dashboard_key, dataset_key
from cht_assets.servers.superset import SupersetServer
from tests.superset import expect, standin
from tests.superset.conftest import (
    ACCESS_YAML,
    MANAGERS,
    NURSE_ROLE,
    SESSION,
    SOURCES,
    Analytics,
    Manager,
    Provisioning,
)
from tests.support import dagster as support

pytestmark = pytest.mark.superset


def visible_slugs(manager: Manager, provisioned: Provisioning) -> set[str]:
    return set(manager.dashboards or (spec.slug for spec in provisioned.specs))


def dataset_id(admin: SupersetClient, provisioned: Provisioning, relation: str) -> int:
    source = next(s for s in SOURCES if s.relation == relation)
    return admin.find("dataset", uuid=dataset_uuid(provisioned.database, source))[0]["id"]


@pytest.mark.parametrize("who", sorted(MANAGERS))
def test_manager_chart_data_holds_only_their_area(
    who: str,
    admin: SupersetClient,
    manager_clients: dict[str, SupersetClient],
    provisioned: Provisioning,
    analytics: Analytics,
) -> None:
    manager, client = MANAGERS[who], manager_clients[who]
    slugs = visible_slugs(manager, provisioned)
    assert {d["slug"] for d in client.list_all("dashboard")} == slugs
    assert_only_their_area(manager, client, admin, provisioned, analytics, slugs)


def assert_only_their_area(
    manager: Manager,
    client: SupersetClient,
    admin: SupersetClient,
    provisioned: Provisioning,
    analytics: Analytics,
    slugs: set[str],
) -> None:
    """Every chart of the dashboards `slugs` holds only the manager's area, and so does every row
    of every hierarchy dataset of those dashboards."""
    for spec in provisioned.specs:
        if spec.slug not in slugs:
            continue
        dashboard_id = admin.get(f"/api/v1/dashboard/{spec.slug}")["result"]["id"]
        ids = {
            c["slice_name"]: c["id"] for c in admin.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]
        }
        for chart in spec.charts:
            result = client.get(f"/api/v1/chart/{ids[chart.title]}/data/")["result"][0]
            labels, want = expect.expected(analytics.url, chart, manager.places)
            got = expect.actual(labels, result["data"])
            assert expect.same(got, want), f"{manager.username} {spec.slug}/{chart.key}:\n{got}\n!=\n{want}"
            if chart.dataset in standin.HIERARCHY_VIEWS:
                assert AREA_COLUMN in result["query"], result["query"]
    # The rows themselves: every row of every hierarchy dataset they can query is under their places
    # (a view per health center, such as target aggregates, has none for a clinic's manager).
    seen = 0
    for view in standin.HIERARCHY_VIEWS:
        if not any(spec.slug in slugs and view in spec.datasets for spec in provisioned.specs):
            continue
        rows = raw_rows(
            client, dataset_id(admin, provisioned, view), ["area_uuids", "district_hospital_uuid"]
        )
        allowed = analytics.data.where(view, manager.sees)
        assert len(rows) == len(allowed), view
        assert all(set(json.loads(row["area_uuids"])) & set(manager.places) for row in rows)
        seen += len(rows)
    assert seen > 0


def raw_rows(
    client: SupersetClient, dataset: int, columns: list[str], where: str = "", filters: list | None = None
) -> list[dict]:
    query = {
        "datasource": {"id": dataset, "type": "table"},
        "queries": [
            {
                "columns": columns,
                "metrics": None,  # rows as they are, not grouped
                "filters": filters or [],
                "extras": {"where": where},
                "row_limit": 100000,
                "orderby": [],
            }
        ],
        "result_format": "json",
        "result_type": "full",
    }
    return client.post("/api/v1/chart/data", query)["result"][0]["data"]


def test_a_manager_cannot_read_another_area(
    admin: SupersetClient, manager_clients: dict[str, SupersetClient], provisioned: Provisioning
) -> None:
    stmary = manager_clients["stmary"]
    activity = dataset_id(admin, provisioned, "useview_chw_activity")
    north = [{"col": "district_hospital_uuid", "op": "==", "val": "dh-north"}]
    assert raw_rows(admin, activity, ["chw_uuid"], filters=north)  # the rows exist
    assert raw_rows(stmary, activity, ["chw_uuid"], filters=north) == []
    # Escaping the WHERE clause to OR around the RLS filter: refused, or still filtered.
    for trick in ["1=1) OR (1=1", "true OR true", "area_uuids IS NOT NULL OR 1=1"]:
        try:
            rows = raw_rows(stmary, activity, ["district_hospital_uuid"], where=trick)
        except SupersetAPIError as error:
            assert error.status in (400, 403, 422), error
        else:
            assert {r["district_hospital_uuid"] for r in rows} <= {"dh-south"}, trick
    # A subquery in an ad-hoc metric or column would read the view without the RLS filter.
    subquery = "(SELECT count(*) FROM public.useview_chw_activity)"
    adhoc_metric = {"expressionType": "SQL", "sqlExpression": subquery, "label": "all rows"}
    adhoc_column = {"expressionType": "SQL", "sqlExpression": subquery, "label": "all rows"}
    for columns, metrics in [([], [adhoc_metric]), ([adhoc_column], None)]:
        query = {
            "datasource": {"id": activity, "type": "table"},
            "queries": [{"columns": columns, "metrics": metrics, "row_limit": 10}],
            "result_format": "json",
            "result_type": "full",
        }
        with pytest.raises(SupersetAPIError) as refused:
            stmary.post("/api/v1/chart/data", query)
        assert "sub-queries" in refused.value.message, refused.value
    # A dataset outside their dashboards: no access at all.
    pregnancy = dataset_id(admin, provisioned, "useview_pregnancy")
    with pytest.raises(SupersetAPIError) as denied:
        raw_rows(stmary, pregnancy, ["uuid"])
    assert denied.value.status in (403, 404)


def test_rls_rules_cover_every_hierarchy_dataset(admin: SupersetClient, provisioned: Provisioning) -> None:
    hierarchy_ids = {dataset_id(admin, provisioned, view) for view in standin.HIERARCHY_VIEWS}
    rules = {r["name"]: r for r in admin.list_all("rowlevelsecurity")}
    expected = {
        "cht: cht_manager_mgr_north": ["dh-north"],
        "cht: cht_manager_mgr_stmary": ["hc-s1"],
        "cht: cht_manager_mgr_stmary_a": ["cl-s1'a"],
        f"cht: {NURSE_ROLE}": ["cl-n1a", "cl-n1b"],
    }
    assert expected.keys() <= rules.keys()
    for name, places in expected.items():
        rule = rules[name]
        assert {t["id"] for t in rule["tables"]} == hierarchy_ids
        assert len(rule["roles"]) == 1 and rule["filter_type"] == "Regular" and rule["group_key"] == "area"
        assert rule["clause"] == rls_clause(places)
    assert rules["cht: cht_manager_mgr_stmary_a"]["clause"] == "area_uuids @> ARRAY['cl-s1''a']::text[]"


def test_a_manager_removed_from_access_yaml_loses_access(
    admin: SupersetClient, provisioned: Provisioning, analytics: Analytics, superset_server: SupersetServer
) -> None:
    config = load_access(provisioned.access_path)
    fewer = type(config)(
        tuple(m for m in config.managers if m.name != "mgr_stmary"),
        config.levels,
        config.view_schemas,
        config.view_prefixes,
    )
    gone = MANAGERS["stmary"]
    args = (admin, analytics.url)
    kwargs = {"db_roles": provisioned.roles}
    try:
        report = provision_access(*args, fewer, provisioned.database, SOURCES, provisioned.specs, **kwargs)
        assert "RLS rule cht: cht_manager_mgr_stmary" in report.removed
        assert "role cht_manager_mgr_stmary" in report.removed
        with SupersetClient(superset_server.url, gone.username, gone.password) as client:
            assert list(client.list_all("dashboard")) == []
            with pytest.raises(SupersetAPIError):
                raw_rows(client, dataset_id(admin, provisioned, "useview_chw_activity"), ["chw_uuid"])
    finally:
        report = provision_access(*args, config, provisioned.database, SOURCES, provisioned.specs, **kwargs)
    assert "role cht_manager_mgr_stmary" in report.created
    again = provision_access(*args, config, provisioned.database, SOURCES, provisioned.specs, **kwargs)
    assert (again.created, again.updated, again.removed) == ([], [], [])


def connect_as(analytics: Analytics, role: str) -> psycopg.Connection:
    # The embedded server trusts local connections, so this tests privileges, not passwords.
    return psycopg.connect(psycopg.conninfo.make_conninfo(analytics.url, user=role), autocommit=True)


def test_the_superset_role_cannot_write(provisioned: Provisioning, analytics: Analytics) -> None:
    with connect_as(analytics, provisioned.roles.superset.name) as conn:
        assert conn.execute("SELECT count(*) FROM public.useview_population").fetchone()[0] > 0
        statements = [
            "INSERT INTO public.useview_refresh_status (object, layer) VALUES ('x', 'y')",
            "UPDATE public.useview_population SET persons = 0",
            "DELETE FROM public.useview_population",
            "CREATE TABLE public.superset_was_here (x int)",
            "SET default_transaction_read_only = off; INSERT INTO public.useview_refresh_status (object) VALUES ('x')",
            "SELECT * FROM standin.useview_population",
        ]
        for statement in statements:
            with pytest.raises(psycopg.Error):
                conn.execute(statement)
    with psycopg.connect(analytics.url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM public.useview_refresh_status WHERE object = 'x'").fetchone()[
                0
            ]
            == 0
        )


def test_the_analyst_role_reads_views_but_not_raw(provisioned: Provisioning, analytics: Analytics) -> None:
    with connect_as(analytics, provisioned.roles.analyst.name) as conn:
        for view in standin.COLUMNS:
            conn.execute(f"SELECT count(*) FROM public.{view}")
        for relation in ["raw.couchdb_docs", "public.couchdb_medic_users"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT doc FROM {relation}")
        with pytest.raises(psycopg.Error):
            conn.execute("INSERT INTO public.useview_refresh_status (object) VALUES ('x')")
    with psycopg.connect(analytics.url) as conn:
        for role in (provisioned.roles.superset.name, provisioned.roles.analyst.name):
            privileges = conn.execute(
                "SELECT has_schema_privilege(%s, 'raw', 'USAGE'), has_table_privilege(%s, 'raw.couchdb_docs', 'SELECT')",
                (role, role),
            ).fetchone()
            assert privileges == (False, False), role


# --- access never waits for every dataset; no dataset is readable before it is filtered -----------

ABSENT = DatasetSource(("useviews", "useview_not_deployed"), standin.VIEW_SCHEMA, "useview_not_deployed")
KONDELE = Manager("mgr_kondele", f"kondele-{SESSION}", ("hc-n1",), ("chw-activity", "population"))


@contextlib.contextmanager
def renamed(url: str, view: str, name: str) -> Iterator[None]:
    """The view is gone under its name (its dataset's asset fails) until the block ends."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER VIEW {standin.VIEW_SCHEMA}.{view} RENAME TO {name}")
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER VIEW {standin.VIEW_SCHEMA}.{name} RENAME TO {view}")


def restore(provisioned: Provisioning) -> None:
    """The session's own assets and access.yaml, materialized again."""
    assets = build_superset_assets(SOURCES, access_path=provisioned.access_path)
    assert support.materialize(assets, provisioned.resources).success


def test_access_runs_when_a_dataset_fails_or_is_absent(
    admin: SupersetClient,
    manager_clients: dict[str, SupersetClient],
    provisioned: Provisioning,
    analytics: Analytics,
    superset_server: SupersetServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """useview_pregnancy's relation is gone (its dataset asset fails, its dashboard is skipped) and
    useview_not_deployed never existed; a manager is new in access.yaml. superset/access still
    runs: the new manager gets a role, a user and RLS, and every manager sees only their rows on
    every other dataset and dashboard. Once the view is back, its dataset's asset alone gives its
    managers their filtered rows again."""
    access_path = tmp_path / "access.yaml"
    entry = {
        "user": KONDELE.username,
        "password_env": "CHT_TEST_PW_KONDELE",
        "places": [{"health_center": "Kondele Health Center"}],
        "dashboards": list(KONDELE.dashboards or ()),
    }
    access_path.write_text(yaml.safe_dump({**ACCESS_YAML, "managers": [*ACCESS_YAML["managers"], entry]}))
    monkeypatch.setenv("CHT_TEST_PW_KONDELE", KONDELE.password)
    gone = "useview_pregnancy"
    assets = build_superset_assets([*SOURCES, ABSENT], access_path=access_path)
    try:
        with renamed(analytics.url, gone, f"{gone}_away"):
            result = support.materialize(assets, provisioned.resources, raise_on_error=False)
            done = {
                e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
            }
            assert not result.success
            dashboard = next(spec for spec in provisioned.specs if gone in spec.datasets)
            source = next(s for s in SOURCES if s.relation == gone)
            assert {dataset_key(ABSENT), dataset_key(source), dashboard_key(dashboard)}.isdisjoint(done)
            skipped = done[ACCESS_KEY]["skipped_datasets"].value
            assert [s.split(":")[0] for s in skipped] == [gone, ABSENT.relation], skipped

            slugs_of = {spec.slug: set(spec.datasets) for spec in provisioned.specs}
            clients = {
                **manager_clients,
                "kondele": SupersetClient(superset_server.url, KONDELE.username, KONDELE.password),
            }
            with clients["kondele"]:
                for who, client in clients.items():
                    manager = KONDELE if who == "kondele" else MANAGERS[who]
                    slugs = {s for s in visible_slugs(manager, provisioned) if slugs_of[s] != {gone}}
                    assert {d["slug"] for d in client.list_all("dashboard")} == slugs, who
                    assert_only_their_area(manager, client, admin, provisioned, analytics, slugs)
                    with pytest.raises(SupersetAPIError) as denied:
                        raw_rows(client, dataset_id(admin, provisioned, gone), ["uuid"])
                    assert denied.value.status in (403, 404)
        # The view is back: its dataset's own asset shares it again, filtered, without access.
        run = support.materialize(assets, provisioned.resources, selection=[dataset_key(source)])
        (event,) = run.get_asset_materialization_events()
        readers = event.materialization.metadata["readers"].value
        assert sorted(readers) == sorted([NURSE_ROLE, "cht_manager_mgr_north"]), readers
        north = MANAGERS["north"]
        rows = raw_rows(manager_clients["north"], dataset_id(admin, provisioned, gone), ["area_uuids"])
        assert len(rows) == len(analytics.data.where(gone, north.sees)) > 0
        assert all(set(json.loads(row["area_uuids"])) & set(north.places) for row in rows)
    finally:
        restore(provisioned)
    kondele_rules = [r for r in admin.list_all("rowlevelsecurity") if r["name"].endswith("mgr_kondele")]
    assert kondele_rules == []  # gone again with the session's access.yaml


def test_a_new_dataset_is_filtered_before_any_manager_can_read_it(
    admin: SupersetClient,
    manager_clients: dict[str, SupersetClient],
    provisioned: Provisioning,
    analytics: Analytics,
) -> None:
    """The dataset asset alone (access not run) puts a new hierarchy dataset in every manager's
    RLS rule: no manager can read it yet, and even a role given datasource_access on it by hand
    the moment it exists reads only its own area. Access then takes the hand-made grant away (the
    dataset is on none of the manager's dashboards)."""
    view = "useview_chw_activity_copy"
    source = DatasetSource(("useviews", view), standin.VIEW_SCHEMA, view)
    with psycopg.connect(analytics.url, autocommit=True) as conn:
        conn.execute(f"CREATE VIEW public.{view} AS SELECT * FROM public.useview_chw_activity")
    assets = build_superset_assets([*SOURCES, source], access_path=provisioned.access_path)
    north, client = MANAGERS["north"], manager_clients["north"]
    try:
        run = support.materialize(assets, provisioned.resources, selection=[dataset_key(source)])
        (event,) = run.get_asset_materialization_events()
        new_id = admin.find("dataset", uuid=dataset_uuid(provisioned.database, source))[0]["id"]
        managed = {r["name"]: r for r in admin.list_all("rowlevelsecurity") if r["name"].startswith("cht: ")}
        assert len(managed) == len(MANAGERS)
        assert all(new_id in {t["id"] for t in r["tables"]} for r in managed.values())
        assert sorted(event.materialization.metadata["rls_rules"].value) == sorted(managed)

        with pytest.raises(SupersetAPIError) as denied:
            raw_rows(client, new_id, ["area_uuids"])
        assert denied.value.status in (403, 404)

        role = next(r for r in admin.list_all("security/roles") if r["name"] == "cht_manager_mgr_north")
        held = [p["id"] for p in admin.get(f"/api/v1/security/roles/{role['id']}/permissions/")["result"]]
        permission = next(
            p["id"]
            for p in admin.list_all("security/permissions-resources")
            if p["permission"]["name"] == "datasource_access"
            and p["view_menu"]["name"].endswith(f"(id:{new_id})")
        )
        admin.post(
            f"/api/v1/security/roles/{role['id']}/permissions",
            {"permission_view_menu_ids": [*held, permission]},
        )
        rows = raw_rows(client, new_id, ["area_uuids"])
        assert len(rows) == len(analytics.data.where("useview_chw_activity", north.sees)) > 0
        assert all(set(json.loads(row["area_uuids"])) & set(north.places) for row in rows)

        support.materialize(assets, provisioned.resources, selection=[ACCESS_KEY])
        with pytest.raises(SupersetAPIError) as denied:
            raw_rows(client, new_id, ["area_uuids"])
        assert denied.value.status in (403, 404)
    finally:
        for item in admin.find("dataset", uuid=dataset_uuid(provisioned.database, source)):
            admin.delete(f"/api/v1/dataset/{item['id']}")
        with psycopg.connect(analytics.url, autocommit=True) as conn:
            conn.execute(f"DROP VIEW IF EXISTS public.{view}")
